// Live reorder plan. A change to any SKU on the shop's feed re-fetches the rows on screen (at
// most once a second), keeping the filters, sort and page: a change can move a row to another
// page or out of the filters, which patching cells in place (as dashboard.js does) cannot
// show. A reconnect re-fetches too, since changes may have been missed meanwhile. The feed's
// protocol and reconnect backoff are dashboard.js's.
(() => {
  // htmx's history cache can bring the page back and run this script again; one feed is enough.
  if (window.stockpulsePlanLive) return;
  window.stockpulsePlanLive = true;

  const shop = document.currentScript.dataset.shop;
  const REFRESH_INTERVAL_MS = 1000;
  const SKU_CHANGES = ["stock", "demand", "forecast"];
  let delay = 500;
  let connectedBefore = false;
  let lastRefresh = 0;
  let scheduled = null;
  let retry = null;
  let shownBefore = null;  // "variant|field" → text before a refresh, to mark what it changed

  // Looked up each time: sorting and paging replace these elements.
  const rows = () => document.getElementById("plan-rows");

  function refresh() {
    scheduled = null;
    const target = rows();
    if (!target) return;
    lastRefresh = Date.now();
    htmx.trigger(target, "stockpulse:refresh");
  }

  function refreshSoon() {
    if (scheduled !== null) return;
    scheduled = setTimeout(refresh, Math.max(0, lastRefresh + REFRESH_INTERVAL_MS - Date.now()));
  }

  function cellTexts(tbody) {
    const texts = new Map();
    for (const cell of tbody.querySelectorAll("tr[data-variant] td[data-field]")) {
      texts.set(`${cell.parentElement.dataset.variant}|${cell.dataset.field}`, cell.textContent);
    }
    return texts;
  }

  function markChanged(tbody, before) {
    for (const [key, text] of cellTexts(tbody)) {
      if (!before.has(key) || before.get(key) === text) continue;
      const [variant, field] = key.split("|");
      const cell = tbody.querySelector(`tr[data-variant="${variant}"] td[data-field="${field}"]`);
      cell.classList.remove("changed");
      void cell.offsetWidth;  // restart the highlight animation
      cell.classList.add("changed");
    }
  }

  function showError(text, again) {
    const banner = document.getElementById("plan-error");
    if (!banner) return;
    banner.querySelector(".message").textContent = text;
    banner.hidden = false;
    retry = again;
  }

  function hideError() {
    const banner = document.getElementById("plan-error");
    if (banner) banner.hidden = true;
    retry = null;
  }

  // What to do again after a failed request: the same refresh, link or form.
  function againFor(elt) {
    if (elt.id === "plan-rows") return refresh;
    if (elt instanceof HTMLFormElement) return () => elt.requestSubmit();
    if (elt instanceof HTMLAnchorElement) return () => elt.click();
    return () => location.reload();
  }

  document.addEventListener("click", (event) => {
    if (event.target.closest("#plan-error .retry") && retry) retry();
  });

  document.body.addEventListener("htmx:configRequest", (event) => {
    // Blank filters would only lengthen the URL the page pushes: leave them out.
    if (!event.detail.elt.closest("form.plan-filters")) return;
    for (const [name, value] of Object.entries(event.detail.parameters)) {
      if (value === "") delete event.detail.parameters[name];
    }
  });

  document.body.addEventListener("htmx:beforeSwap", (event) => {
    const { xhr, target } = event.detail;
    // A session that has ended answers with the login page: go there instead of showing it
    // inside the table.
    if (xhr.responseURL && new URL(xhr.responseURL).pathname === "/login") {
      event.detail.shouldSwap = false;
      location.assign(xhr.responseURL);
      return;
    }
    // The page explains parameters it cannot show (400) itself, with the form to fix them.
    if (xhr.status === 400 && target.id === "plan") {
      event.detail.shouldSwap = true;
      event.detail.isError = false;
    }
    shownBefore = target.id === "plan-rows" && event.detail.shouldSwap ? cellTexts(target) : null;
  });

  document.body.addEventListener("htmx:afterSwap", (event) => {
    hideError();
    if (shownBefore && event.detail.target.id === "plan-rows") {
      markChanged(event.detail.target, shownBefore);
    }
    shownBefore = null;
  });

  document.body.addEventListener("htmx:responseError", (event) => {
    const status = event.detail.xhr.status;
    showError(`The plan could not be loaded (HTTP ${status}).`, againFor(event.detail.elt));
  });

  document.body.addEventListener("htmx:sendError", (event) => {
    showError("The server could not be reached.", againFor(event.detail.elt));
  });

  // A page from htmx's history cache is as old as when it was left.
  document.body.addEventListener("htmx:historyRestore", refreshSoon);

  function setLive(state, text) {
    const live = document.getElementById("live");
    if (!live) return;
    live.dataset.state = state;
    live.textContent = text;
  }

  function connect() {
    const scheme = location.protocol === "https:" ? "wss" : "ws";
    const socket = new WebSocket(`${scheme}://${location.host}/ws/shops/${shop}`);
    socket.onopen = () => {
      setLive("open", "live");
      delay = 500;
      if (connectedBefore) refreshSoon();
      connectedBefore = true;
    };
    socket.onmessage = (event) => {
      const message = JSON.parse(event.data);
      if (SKU_CHANGES.includes(message.type)) refreshSoon();
    };
    socket.onclose = () => {
      setLive("closed", "reconnecting…");
      setTimeout(connect, delay);
      delay = Math.min(delay * 2, 10000);
    };
  }
  connect();
})();
