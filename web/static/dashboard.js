// Live dashboard: applies JSON feed messages (stock, demand and forecast) to the table cells in
// place, drops the row of a SKU deleted in Shopify (removed), and shows alerts as dismissible
// banners. A SKU the table does not show yet, or a reconnect (messages may have been missed),
// makes htmx reload the rows. The socket is feed.js's, which also dispatches each message as a
// "stockpulse:feed" event for the charts.
(() => {
  const shop = document.currentScript.dataset.shop;
  const lowCover = Number(document.currentScript.dataset.lowCover);
  const rows = document.getElementById("sku-rows");
  const live = document.getElementById("live");
  const format = {
    stock: (v) => (v === null ? "—" : String(v)),
    avg_daily_demand: (v) => v.toFixed(2),
    days_of_cover: (v, message) => window.stockpulseCover(v, message),
    stockout_date: (v) => v ?? "—",
    reorder_quantity: (v) => (v === null ? "—" : String(v)),
    confidence: (v) => v ?? "—",
  };

  function refresh() { htmx.trigger(rows, "stockpulse:refresh"); }

  function apply(message) {
    const row = rows.querySelector(`tr[data-variant="${message.variant_id}"]`);
    // A capped table (a large shop) shows its most urgent SKUs only: another SKU's update
    // belongs to the reorder plan, not to a reload of this table.
    if (!row) { if (rows.dataset.limited !== "true") refresh(); return; }
    // The title is the link in its cell: [data-field], not td[data-field], or a rename would
    // wait for a reload.
    window.stockpulseShowFigures(row.querySelectorAll("[data-field]"), message, format, (cell, value) => {
      if (cell.dataset.field !== "days_of_cover") return;
      cell.classList.toggle("low", value !== null && value < lowCover);
      // A forecast message's days of cover is the forecast's; an update says its basis.
      cell.dataset.basis = message.days_of_cover_basis ?? "forecast";
    });
  }

  // Alert banners: the day's latest (from the page) and the feed's new ones, at most
  // data-max. A dismissed one stays dismissed after a reload: its id is kept in localStorage.
  const banners = document.getElementById("alert-banners");
  const bannerList = banners.querySelector("ul");
  const maxBanners = Number(banners.dataset.max) || 5;
  const ruleTitles = JSON.parse(banners.dataset.ruleTitles || "{}");
  const dismissedKey = `stockpulse:dismissed-alerts:${shop}`;

  function dismissedIds() {
    try { return JSON.parse(localStorage.getItem(dismissedKey)) || []; } catch { return []; }
  }

  function dismiss(banner) {
    const ids = dismissedIds().filter((id) => id !== banner.dataset.alertId);
    ids.push(banner.dataset.alertId);
    // Ids only grow; the newest few hundred cover every banner the page can still show.
    try { localStorage.setItem(dismissedKey, JSON.stringify(ids.slice(-300))); } catch { /* private mode */ }
    banner.remove();
    banners.hidden = bannerList.children.length === 0;
  }

  function addBanner(alert) {
    const id = String(alert.id);
    // Alerts are published at least once: a repeat is the same banner.
    if (dismissedIds().includes(id) || bannerList.querySelector(`[data-alert-id="${id}"]`)) return;
    const item = document.createElement("li");
    item.className = "alert-banner";
    item.dataset.alertId = id;
    item.dataset.severity = alert.severity;
    const text = document.createElement("span");
    text.className = "text";
    const link = document.createElement("a");
    link.href = `/shops/${shop}/products/${Number(alert.variant_id)}`;
    link.textContent = alert.title || alert.sku || "a product";
    const when = document.createElement("span");
    when.className = "when";
    when.textContent = `${ruleTitles[alert.rule] ?? alert.rule} · just now`;
    text.append(link, `: ${alert.headline} `, when);
    const close = document.createElement("button");
    close.type = "button";
    close.className = "dismiss";
    close.title = "Dismiss";
    close.setAttribute("aria-label", "Dismiss this alert");
    close.textContent = "×";
    item.append(text, close);
    bannerList.prepend(item);
    while (bannerList.children.length > maxBanners) bannerList.lastElementChild.remove();
    banners.hidden = false;
  }

  bannerList.addEventListener("click", (event) => {
    const close = event.target.closest(".dismiss");
    if (close) dismiss(close.closest(".alert-banner"));
  });
  const dismissedBefore = dismissedIds();
  for (const banner of [...bannerList.children]) {
    if (dismissedBefore.includes(banner.dataset.alertId)) banner.remove();
  }
  banners.hidden = bannerList.children.length === 0;

  stockpulseFeed(shop, live, {
    // A reconnect may have missed messages: the rows are read again.
    onOpen: (reconnected) => { if (reconnected) refresh(); },
    onMessage: (message) => {
      if (["stock", "demand", "forecast"].includes(message.type)) apply(message);
      // Deleted in Shopify: the row goes, as it would on a reload.
      if (message.type === "removed") {
        rows.querySelector(`tr[data-variant="${Number(message.variant_id)}"]`)?.remove();
      }
      if (message.type === "alert") addBanner(message);
    },
  });
})();
