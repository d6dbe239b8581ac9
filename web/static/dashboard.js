// Live dashboard: applies JSON feed messages (stock, demand and forecast) to the table cells in
// place. A SKU the table does not show yet, or a reconnect (messages may have been missed),
// makes htmx reload the rows. Each message is also dispatched on the document as a
// "stockpulse:feed" CustomEvent (the message in event.detail), which the charts follow.
(() => {
  const shop = document.currentScript.dataset.shop;
  const lowCover = Number(document.currentScript.dataset.lowCover);
  const rows = document.getElementById("sku-rows");
  const live = document.getElementById("live");
  const format = {
    stock: (v) => (v === null ? "—" : String(v)),
    avg_daily_demand: (v) => v.toFixed(2),
    days_of_cover: (v) => (v === null ? "∞" : v.toFixed(1)),
    stockout_date: (v) => v ?? "—",
    reorder_quantity: (v) => (v === null ? "—" : String(v)),
    confidence: (v) => v ?? "—",
  };
  let delay = 500;
  let connectedBefore = false;

  function refresh() { htmx.trigger(rows, "stockpulse:refresh"); }

  function apply(message) {
    const row = rows.querySelector(`tr[data-variant="${message.variant_id}"]`);
    // A capped table (a large shop) shows its most urgent SKUs only: another SKU's update
    // belongs to the reorder plan, not to a reload of this table.
    if (!row) { if (rows.dataset.limited !== "true") refresh(); return; }
    for (const cell of row.querySelectorAll("td[data-field]")) {
      const field = cell.dataset.field;
      if (!(field in message)) continue;
      const value = message[field];
      const text = format[field] ? format[field](value) : (value ?? "—");
      if (cell.textContent !== text) {
        cell.textContent = text;
        cell.classList.remove("changed");
        void cell.offsetWidth;  // restart the highlight animation
        cell.classList.add("changed");
      }
      if (field === "days_of_cover") {
        cell.classList.toggle("low", value !== null && value < lowCover);
        // A forecast message's days of cover is the forecast's; an update says its basis.
        cell.dataset.basis = message.days_of_cover_basis ?? "forecast";
      }
    }
  }

  function connect() {
    const scheme = location.protocol === "https:" ? "wss" : "ws";
    const socket = new WebSocket(`${scheme}://${location.host}/ws/shops/${shop}`);
    socket.onopen = () => {
      live.dataset.state = "open"; live.textContent = "live"; delay = 500;
      if (connectedBefore) refresh();
      connectedBefore = true;
    };
    socket.onmessage = (event) => {
      const message = JSON.parse(event.data);
      if (["stock", "demand", "forecast"].includes(message.type)) apply(message);
      // Every message, hello included, for the rest of the page (charts.js) to follow.
      document.dispatchEvent(new CustomEvent("stockpulse:feed", { detail: message }));
    };
    socket.onclose = () => {
      live.dataset.state = "closed"; live.textContent = "reconnecting…";
      setTimeout(connect, delay);
      delay = Math.min(delay * 2, 10000);
    };
  }
  connect();
})();
