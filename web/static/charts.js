// The dashboard's charts, drawn with uPlot (vendor/uplot) from the JSON API:
//   [data-chart="sales"]  units sold per shop-local day, then the forecast and its 80 % band
//   [data-chart="stock"]  stock per product, coloured by days of cover, the lowest cover first
// A container names its shop in data-shop (and, for sales of one SKU, data-variant-id).
// dashboard.js re-dispatches every feed message as a "stockpulse:feed" event; a sale, a stock
// level or a forecast makes the charts fetch their JSON again, at most once every 2 s each.
// What each chart shows is kept in window.stockpulseCharts (and the sales chart's today in
// data-today-units), so a test or a curious merchant can read it back.
(() => {
  const REFETCH_MS = 2000;
  const css = getComputedStyle(document.documentElement);
  const colour = (name, fallback) => css.getPropertyValue(name).trim() || fallback;
  const palette = {
    sold: colour("--chart-sold", "#102a43"),
    forecast: colour("--chart-forecast", "#2186eb"),
    band: colour("--chart-band", "rgba(33, 134, 235, 0.18)"),
    red: colour("--cover-red", "#e12d39"),
    amber: colour("--cover-amber", "#f0b429"),
    green: colour("--cover-green", "#3ebd93"),
  };
  const exposed = (window.stockpulseCharts = window.stockpulseCharts || {});

  // Shop-local dates as midnight UTC, shown in UTC, so a day is labelled as the shop's day
  // whatever the browser's own time zone.
  const dayToSeconds = (day) => Date.parse(`${day}T00:00:00Z`) / 1000;
  const utc = (ts) => uPlot.tzDate(new Date(ts * 1000), "Etc/UTC");
  const units = (v) => (v === null || v === undefined ? "—" : `${Math.round(v * 10) / 10}`);

  const AXIS_FONT = "12px system-ui, sans-serif";
  const measure = document.createElement("canvas").getContext("2d");
  measure.font = AXIS_FONT;

  // The text, cut short with an ellipsis to fit ``room`` CSS pixels in the axis font.
  function fit(text, room) {
    if (measure.measureText(text).width <= room) return text;
    let end = text.length;
    while (end > 1 && measure.measureText(`${text.slice(0, end)}…`).width > room) end--;
    return `${text.slice(0, end)}…`;
  }

  function narrow(element) { return element.clientWidth < 600; }

  function setState(figure, state, text) {
    figure.dataset.state = state;
    const status = figure.querySelector(".dash-chart-status");
    status.replaceChildren();
    status.hidden = state === "ready";
    if (text) status.append(text);
    return status;
  }

  function showError(figure, owner, response) {
    const signedOut = response && response.status === 401;
    const status = setState(
      figure,
      "error",
      signedOut
        ? "Signed out: reload the page to sign in again."
        : "Could not load this chart. ",
    );
    if (!signedOut) {
      const retry = document.createElement("button");
      retry.type = "button";
      retry.textContent = "Try again";
      retry.addEventListener("click", () => owner.load());
      status.append(retry);
    }
  }

  // Keeps a uPlot sized to its container: phone or desktop, and rotation or resizing later.
  function fitted(figure, makeOptions, data) {
    const plot = figure.querySelector(".dash-chart-plot");
    const sized = () => makeOptions(plot.clientWidth, narrow(plot));
    const chart = new uPlot(sized(), data, plot);
    let width = plot.clientWidth;
    const observer = new ResizeObserver(() => {
      if (plot.clientWidth === width) return;
      width = plot.clientWidth;
      const { width: w, height: h } = sized();
      chart.setSize({ width: w, height: h });
    });
    observer.observe(plot);
    return { chart, remove() { observer.disconnect(); chart.destroy(); } };
  }

  // ---- sales: actual units per day, then the forecast with its band ----

  function salesData(body, aheadDays) {
    const actual = body.actual;
    const ahead = body.forecast;
    const shownAhead = ahead.days.slice(0, aheadDays);
    const days = [...actual.days];
    for (const day of shownAhead) if (day > days[days.length - 1]) days.push(day);
    const at = new Map(days.map((d, i) => [d, i]));
    const blank = () => days.map(() => null);
    const sold = blank(), mean = blank(), lower = blank(), upper = blank();
    actual.days.forEach((d, i) => { sold[at.get(d)] = actual.units[i]; });
    shownAhead.forEach((d, i) => {
      const j = at.get(d);
      if (j === undefined) return;
      mean[j] = ahead.mean[i]; lower[j] = ahead.lower[i]; upper[j] = ahead.upper[i];
    });
    return [days.map(dayToSeconds), sold, mean, lower, upper];
  }

  function lastValue(values) {
    for (let i = values.length - 1; i >= 0; i--) if (values[i] !== null) return i;
    return 0;
  }

  function salesOptions(width, small) {
    return {
      width,
      height: small ? 220 : 280,
      tzDate: utc,
      cursor: { points: { size: 6 } },
      legend: { live: true },
      scales: { x: { time: true }, y: { range: (u, min, max) => [0, Math.max(1, max * 1.1)] } },
      axes: [
        { space: small ? 60 : 80, grid: { show: false } },
        { size: small ? 36 : 48, values: (u, splits) => splits.map((v) => units(v)) },
      ],
      series: [
        { label: "Day", value: (u, ts) => (ts === null ? "—" : uPlot.fmtDate("{YYYY}-{MM}-{DD}")(utc(ts))) },
        {
          label: "Sold", stroke: palette.sold, width: 2, value: (u, v) => units(v),
          // One dot, on today: its units are so far, not the day's total.
          points: { show: true, size: 7, fill: palette.sold, filter: (u) => [lastValue(u.data[1])] },
        },
        { label: "Forecast", stroke: palette.forecast, width: 2, dash: [6, 4], value: (u, v) => units(v), points: { show: false } },
        { label: "80 % low", stroke: palette.band, width: 0, value: (u, v) => units(v), points: { show: false } },
        { label: "80 % high", stroke: palette.band, width: 0, value: (u, v) => units(v), points: { show: false } },
      ],
      bands: [{ series: [4, 3], fill: palette.band }],
    };
  }

  function salesChart(figure) {
    const params = new URLSearchParams({ days: figure.dataset.days || "90" });
    if (figure.dataset.variantId) params.set("variant_id", figure.dataset.variantId);
    const url = `/api/v1/shops/${figure.dataset.shop}/charts/sales?${params}`;
    let plot = null;

    function show(body) {
      const today = body.actual.days.indexOf(body.today);
      const todayUnits = today >= 0 ? body.actual.units[today] : 0;
      const sold = body.actual.units.reduce((a, b) => a + b, 0);
      exposed.sales = { today: body.today, todayUnits, unitsInWindow: sold, body };
      figure.dataset.today = body.today;
      figure.dataset.todayUnits = String(todayUnits);
      if (sold === 0) {
        if (plot) { plot.remove(); plot = null; }
        setState(figure, "empty", "No sales yet — history is backfilling or the store is new.");
        return;
      }
      const data = salesData(body, Number(figure.dataset.ahead || "90"));
      setState(figure, "ready");  // first: a hidden container has no width to fit
      if (plot) plot.chart.setData(data);
      else plot = fitted(figure, salesOptions, data);
    }
    const made = chart(figure, url, show);
    // A chart of one SKU ignores the others' sales.
    made.follows = (variantId) => !figure.dataset.variantId || String(variantId) === figure.dataset.variantId;
    return made;
  }

  // ---- stock: a horizontal bar per product, coloured by its days of cover ----

  function stockData(body) {
    const rows = body.products;
    const pick = (colourName) => rows.map((p) => (p.colour === colourName ? p.stock : null));
    return [rows.map((_, i) => i), pick("red"), pick("amber"), pick("green")];
  }

  function stockOptions(body) {
    const rows = body.products;
    const label = (i, room) => (rows[i] ? fit(rows[i].title, room) : "");
    const cover = (p) => (p.days_of_cover === null ? "never runs out" : `${p.days_of_cover.toFixed(1)} days`);
    const bars = uPlot.paths.bars({ size: [0.75, 26], align: 0 });
    const series = (name, fill) => ({
      label: name, fill, stroke: fill, width: 0, paths: bars, points: { show: false },
      value: (u, v) => (v === null ? "—" : `${v} units`),
    });
    return (width, small) => {
      // Product names take up to 40 % of the width.
      const labelWidth = Math.min(220, Math.round(width * 0.4));
      const room = labelWidth - 10;
      return {
        width,
        height: Math.max(120, rows.length * (small ? 22 : 24) + 40),
        cursor: { points: { show: false }, drag: { x: false, y: false } },
        legend: { live: true },
        scales: {
          // A vertical category axis, the first product (the lowest cover) at the top.
          x: { time: false, ori: 1, dir: -1, range: [-0.5, rows.length - 0.5] },
          y: { ori: 0, range: (u, min, max) => [Math.min(0, min), Math.max(1, max * 1.05)] },
        },
        axes: [
          {
            scale: "x", side: 3, size: labelWidth, gap: 4, font: AXIS_FONT,
            grid: { show: false }, ticks: { show: false },
            splits: () => rows.map((_, i) => i),
            values: (u, splits) => splits.map((i) => label(i, room)),
          },
          { scale: "y", side: 2, size: 30 },
        ],
        series: [
          { label: "Product", value: (u, i) => (rows[i] ? `${rows[i].title} · ${cover(rows[i])}` : "—") },
          series(`Under ${body.low_cover_days} days`, palette.red),
          series(`Under the lead time (${body.lead_time_days} days)`, palette.amber),
          series("Covered", palette.green),
        ],
      };
    };
  }

  function stockChart(figure) {
    const limit = figure.dataset.limit || "30";
    const url = `/api/v1/shops/${figure.dataset.shop}/charts/stock?limit=${encodeURIComponent(limit)}`;
    let plot = null;

    function show(body) {
      exposed.stock = { products: body.products, body };
      if (plot) { plot.remove(); plot = null; }
      if (body.products.length === 0) {
        setState(figure, "empty", "No stock to show yet: levels arrive with the catalogue.");
        return;
      }
      setState(figure, "ready");
      // Rebuilt rather than updated: the number of bars sets the chart's height and labels.
      plot = fitted(figure, stockOptions(body), stockData(body));
    }
    return chart(figure, url, show);
  }

  // ---- fetching: at once on load, then at most once per REFETCH_MS while updates arrive ----

  function chart(figure, url, show) {
    let last = 0;
    let timer = null;
    let inFlight = false;
    let again = false;
    const self = {
      async load() {
        if (inFlight) { again = true; return; }
        inFlight = true;
        last = Date.now();
        let response = null;
        try {
          response = await fetch(url, { headers: { Accept: "application/json" }, credentials: "same-origin" });
          if (!response.ok) throw new Error(`HTTP ${response.status}`);
          show(await response.json());
        } catch (error) {
          console.error("chart", url, error);
          showError(figure, self, response);
        } finally {
          inFlight = false;
          if (again) { again = false; self.soon(); }
        }
      },
      soon() {
        if (timer !== null) return;
        timer = setTimeout(() => { timer = null; self.load(); }, Math.max(0, last + REFETCH_MS - Date.now()));
      },
    };
    return self;
  }

  const sales = [];
  const stock = [];
  for (const figure of document.querySelectorAll("[data-chart]")) {
    const made = figure.dataset.chart === "sales" ? salesChart(figure) : stockChart(figure);
    (figure.dataset.chart === "sales" ? sales : stock).push(made);
    made.load();
  }

  document.addEventListener("stockpulse:feed", (event) => {
    const message = event.detail || {};
    if (message.type === "hello") {
      // Whatever changed before the feed was (re)connected came with no message: read it.
      // On the page's first connection that is one more fetch, 2 s after the first.
      for (const c of [...sales, ...stock]) c.soon();
      return;
    }
    if (message.type === "demand" || message.type === "forecast") {
      for (const c of sales) if (c.follows(message.variant_id)) c.soon();
    }
    if (["stock", "demand", "forecast"].includes(message.type)) for (const c of stock) c.soon();
  });
})();
