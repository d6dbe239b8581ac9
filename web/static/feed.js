// The shop's live feed, shared by the dashboard and the product page: a WebSocket on
// /ws/shops/{shop} that reconnects with backoff (0.5 s doubling to 10 s) and shows its state in
// a "live" / "reconnecting…" indicator. Each message goes to onMessage, then is dispatched on
// the document as a "stockpulse:feed" CustomEvent (the message in event.detail), which
// charts.js follows. onOpen(reconnected) is told whether messages may have been missed.
window.stockpulseFeed = (shop, live, { onOpen = () => {}, onMessage = () => {} } = {}) => {
  let delay = 500;
  let connectedBefore = false;

  function connect() {
    const scheme = location.protocol === "https:" ? "wss" : "ws";
    const socket = new WebSocket(`${scheme}://${location.host}/ws/shops/${shop}`);
    socket.onopen = () => {
      live.dataset.state = "open"; live.textContent = "live"; delay = 500;
      onOpen(connectedBefore);
      connectedBefore = true;
    };
    socket.onmessage = (event) => {
      const message = JSON.parse(event.data);
      onMessage(message);
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
};

// Days of cover as every page shows it: null is "more than the 90-day forecast reaches",
// not never, unless the stock is not tracked at all. Same words as web/app.py's cover().
window.stockpulseCover = (days, message) => {
  if (days !== null) return days.toFixed(1);
  return message.stock === null ? "—" : "> 90";
};

// Writes a message's fields into the [data-field] cells given, formatted by format[field]
// (else the value, "—" for null), flashing each that changed; then calls also(cell, value)
// for page-specific touches. Shared so the dashboard and the product page show figures alike.
window.stockpulseShowFigures = (cells, message, format, also = () => {}) => {
  for (const cell of cells) {
    const field = cell.dataset.field;
    if (!(field in message)) continue;
    const value = message[field];
    const text = format[field] ? format[field](value, message) : (value ?? "—");
    if (cell.textContent !== text) {
      cell.textContent = text;
      cell.classList.remove("changed");
      void cell.offsetWidth;  // restart the highlight animation
      cell.classList.add("changed");
    }
    also(cell, value);
  }
};
