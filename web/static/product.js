// Live product page: follows the shop's feed (feed.js) and applies this product's messages
// in place: stock, demand and forecast messages to the [data-field] figures, a forecast to
// its table (charts.js redraws the chart from the same feed events), an alert to the top of
// the alert history. A reconnect (messages may have been missed) reads the product's JSON.
(() => {
  const page = document.querySelector("section.product");
  const shop = page.dataset.shop;
  const variantId = page.dataset.variant;
  const count = (v) => String(v ?? 0);
  const format = {
    stock: (v) => (v === null ? "—" : String(v)),
    sold_today: count,
    sold_7d: count,
    sold_28d: count,
    days_of_cover: (v, message) => window.stockpulseCover(v, message),
    stockout_date: (v) => v ?? "—",
    reorder_point: (v) => (v === null ? "—" : v.toFixed(1)),
    reorder_quantity: (v) => (v === null ? "—" : String(v)),
  };

  function applyFigures(message) {
    window.stockpulseShowFigures(page.querySelectorAll("[data-field]"), message, format, (cell) => {
      // A forecast message's days of cover is the forecast's; an update says its basis.
      if (cell.dataset.field === "days_of_cover") {
        cell.dataset.basis = message.days_of_cover_basis ?? "forecast";
      }
    });
  }

  // ---- the forecast table: its first days, as the page renders them ----

  const forecastTable = document.getElementById("forecast-table");
  const forecastEmpty = document.getElementById("forecast-empty");

  function applyForecast(forecast) {
    const table = forecastTable.querySelector("table");
    const days = Math.min(Number(table.dataset.days) || 14, forecast.mean.length);
    const rows = [];
    for (let i = 0; i < days; i++) {
      const row = document.createElement("tr");
      const cells = [
        [`+${i} d`, ""],
        [forecast.mean[i].toFixed(1), "num"],
        [`${forecast.lower[i].toFixed(1)} – ${forecast.upper[i].toFixed(1)}`, "num"],
      ];
      for (const [text, cls] of cells) {
        const cell = document.createElement("td");
        if (cls) cell.className = cls;
        cell.textContent = text;
        row.append(cell);
      }
      rows.push(row);
    }
    table.tBodies[0].replaceChildren(...rows);
    table.querySelector("caption .method").textContent = forecast.method;
    forecastTable.hidden = false;
    forecastEmpty.hidden = true;
  }

  // ---- the alert history: newest first, at most data-max rows ----

  const history = document.getElementById("alert-history");
  const historyEmpty = document.getElementById("alert-history-empty");
  const alertTable = history.querySelector("table");
  const maxAlerts = Number(alertTable.dataset.max) || 50;
  const zone = alertTable.dataset.timezone || "UTC";
  const ruleTitles = JSON.parse(alertTable.dataset.ruleTitles || "{}");

  // As web/alerts.py's local_time: "2026-11-22 14:05 CET", in the shop's time zone.
  function localTime(iso) {
    const parts = {};
    const formatter = new Intl.DateTimeFormat("en-US", {
      timeZone: zone, year: "numeric", month: "2-digit", day: "2-digit",
      hour: "2-digit", minute: "2-digit", hourCycle: "h23", timeZoneName: "short",
    });
    for (const p of formatter.formatToParts(new Date(iso))) parts[p.type] = p.value;
    const name = zone === "UTC" ? "UTC" : parts.timeZoneName;
    return `${parts.year}-${parts.month}-${parts.day} ${parts.hour}:${parts.minute} ${name}`;
  }

  function cell(...children) {
    const td = document.createElement("td");
    td.append(...children);
    return td;
  }

  // An alert message, or an alert of the product's JSON (which adds its deliveries).
  function addAlert(alert) {
    const id = String(alert.id);
    const body = alertTable.tBodies[0];
    // Alerts are published at least once: a repeat is the same row.
    if (body.querySelector(`tr[data-alert-id="${CSS.escape(id)}"]`)) return;
    const row = document.createElement("tr");
    row.dataset.alertId = id;
    row.dataset.rule = alert.rule;
    const time = document.createElement("time");
    time.dateTime = alert.fired_at;
    time.textContent = localTime(alert.fired_at);
    const severity = document.createElement("span");
    severity.className = `severity severity-${alert.severity}`;
    severity.textContent = alert.severity;
    const headline = cell(alert.headline);
    headline.className = "wrap";
    const deliveries = cell();
    deliveries.className = "wrap";
    if (alert.deliveries && alert.deliveries.length) {
      const list = document.createElement("ul");
      list.className = "deliveries";
      for (const d of alert.deliveries) {
        const item = document.createElement("li");
        item.className = `delivery delivery-${d.state}`;
        item.dataset.state = d.state;
        item.textContent = `${d.recipient}: ${d.state}`;
        list.append(item);
      }
      deliveries.append(list);
    } else {
      // A fired alert's emails are decided after it is published: the alerts page has them.
      const hint = document.createElement("span");
      hint.className = "hint";
      hint.textContent = alert.deliveries ? "no recipients" : "just fired";
      deliveries.append(hint);
    }
    row.append(cell(time), cell(severity, ` ${ruleTitles[alert.rule] ?? alert.rule}`), headline, deliveries);
    body.prepend(row);
    while (body.rows.length > maxAlerts) body.lastElementChild.remove();
    alertTable.querySelector("caption .count").textContent = String(body.rows.length);
    history.hidden = false;
    historyEmpty.hidden = true;
  }

  // After a reconnect: what the page would show if it were loaded now.
  async function catchUp() {
    try {
      const response = await fetch(`/api/v1/shops/${shop}/products/${variantId}`, {
        headers: { Accept: "application/json" }, credentials: "same-origin",
      });
      if (!response.ok) throw new Error(`HTTP ${response.status}`);
      const story = await response.json();
      applyFigures(story.product);
      if (story.forecast) applyForecast(story.forecast);
      for (const alert of [...story.alerts].reverse()) addAlert(alert);  // the oldest first
    } catch (error) {
      console.error("product", error);
    }
  }

  stockpulseFeed(shop, document.getElementById("live"), {
    onOpen: (reconnected) => { if (reconnected) catchUp(); },
    onMessage: (message) => {
      if (String(message.variant_id) !== variantId) return;
      if (["stock", "demand", "forecast"].includes(message.type)) applyFigures(message);
      if (message.type === "forecast") applyForecast(message);
      if (message.type === "alert") addAlert(message);
    },
  });
})();
