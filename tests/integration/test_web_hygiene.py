"""Web hygiene: slow clients are cut off, client errors log no traceback, pages carry security
headers, and the Content-Security-Policy leaves the dashboard working."""

from __future__ import annotations

import logging
import socket
import threading
import time
from contextlib import closing
from pathlib import Path

import httpx
import pytest
import websockets.sync.client as ws
from playwright.sync_api import ConsoleMessage, expect, sync_playwright

from connectors.settings import Settings
from ops.stack import Stack
from tests.conftest import CHROMIUM, CHROMIUM_ARGS
from tests.support import (
    auth,
    browser_login,
    deliver_ok,
    make_variant,
    new_shop,
    product_hook,
    signed_in_client,
    wait_until,
)
from web.app import _log_exception
from web.security import CONTENT_SECURITY_POLICY
from web.server import MAX_HEADER_BYTES

HEADER_TIMEOUT_SECONDS = Settings().http_header_timeout_seconds
MARGIN_S = 3.0
KEEP_ALIVE_S = 5.0  # uvicorn's default timeout_keep_alive, which `stockpulse web` keeps

SECURITY_HEADERS = {
    "content-security-policy": CONTENT_SECURITY_POLICY,
    "x-frame-options": "DENY",
    "x-content-type-options": "nosniff",
    "referrer-policy": "same-origin",
}


def _web_log(stack: Stack) -> Path:
    return stack.data_dir / "logs" / "web.log"


def _open_for(stack: Stack, prefix: bytes, trickle: bytes, limit_s: float) -> tuple[float, bytes]:
    """Connect, send ``prefix`` at once and then ``trickle`` a byte every 0.4 s; return how long
    the server kept the connection open (``limit_s`` if it never closed) and what it answered."""
    received = b""
    with socket.create_connection(("127.0.0.1", stack.web_port), timeout=5) as sock:
        started = time.monotonic()
        sock.sendall(prefix)
        sock.settimeout(0.4)
        sent = 0
        while time.monotonic() - started < limit_s:
            try:
                if sent < len(trickle):
                    sock.send(trickle[sent : sent + 1])
                    sent += 1
                chunk = sock.recv(65536)
            except TimeoutError:
                continue
            except OSError:  # reset or broken pipe: closed as well
                return time.monotonic() - started, received
            if not chunk:
                return time.monotonic() - started, received
            received += chunk
    return limit_s, received


def test_slow_clients_are_cut_off_while_others_are_served(stack: Stack) -> None:
    limit_s = HEADER_TIMEOUT_SECONDS + MARGIN_S + 5
    request = b"GET /healthz HTTP/1.1\r\nHost: stockpulse\r\n"
    clients = {
        # Connects and never says a word.
        "silent": (b"", b""),
        # Slowloris: the request line and headers a byte at a time, never finished.
        "slow headers": (b"", request + b"X-Padding: " + b"a" * 200),
        # A body nobody reads (GET /healthz ignores it), trickled after the answer went out.
        "unread body": (request + b"Content-Length: 100000\r\n\r\n", b"b" * 200),
        # A normal keep-alive client that goes quiet after its answer.
        "idle keep-alive": (request + b"\r\n", b""),
    }
    results: dict[str, tuple[float, bytes]] = {}

    def run(name: str, prefix: bytes, trickle: bytes) -> None:
        results[name] = _open_for(stack, prefix, trickle, limit_s)

    threads = [
        threading.Thread(target=run, args=(name, *data), daemon=True)
        for name, data in clients.items()
    ]
    shop = new_shop(stack)
    feed_url = f"ws://127.0.0.1:{stack.web_port}/ws/shops/{shop}"
    with ws.connect(feed_url, open_timeout=10, additional_headers=auth(stack)) as feed:
        assert '"hello"' in str(feed.recv(timeout=10))
        for thread in threads:
            thread.start()
        # Meanwhile everybody else is served as usual.
        while any(thread.is_alive() for thread in threads):
            started = time.monotonic()
            response = httpx.get(f"{stack.base_url}/healthz", timeout=5)
            assert response.status_code == 200
            assert time.monotonic() - started < 2
            time.sleep(0.5)
        for thread in threads:
            thread.join()
        # The WebSocket left the HTTP protocol (and its deadline) at the handshake.
        assert feed.ping().wait(5), "the feed socket was closed"

    for name in ("silent", "slow headers"):
        open_s, answer = results[name]
        assert HEADER_TIMEOUT_SECONDS - 0.5 <= open_s <= HEADER_TIMEOUT_SECONDS + MARGIN_S, name
        assert answer == b"", name
    open_s, answer = results["unread body"]
    assert answer.startswith(b"HTTP/1.1 200 "), answer
    assert open_s <= HEADER_TIMEOUT_SECONDS + MARGIN_S, open_s
    # Keep-alive connections still go after uvicorn's own, shorter, idle timeout.
    open_s, answer = results["idle keep-alive"]
    assert answer.startswith(b"HTTP/1.1 200 "), answer
    assert KEEP_ALIVE_S - 0.5 <= open_s <= KEEP_ALIVE_S + MARGIN_S, open_s


def test_client_errors_are_logged_in_one_line_without_a_traceback(stack: Stack) -> None:
    log_path = _web_log(stack)
    before = log_path.stat().st_size
    missing = "/no/such/page-" + str(time.monotonic_ns())
    assert httpx.get(stack.base_url + missing, timeout=5).status_code == 404
    unknown_shop = f"/shops/nobody{time.monotonic_ns()}.myshopify.com"
    assert (
        httpx.get(stack.base_url + unknown_shop, headers=auth(stack), timeout=5).status_code == 404
    )
    assert httpx.post(stack.base_url + "/healthz", timeout=5).status_code == 405

    def logged() -> str:
        with log_path.open("rb") as log:
            log.seek(before)
            return log.read().decode(errors="replace")

    # The lines show up (so the log was flushed), each on its own and without a traceback.
    text = wait_until(
        lambda: (t := logged()) and unknown_shop in t and missing in t and "405" in t and t,
        timeout_s=10,
        what="the client errors in the web log",
    )
    assert "Traceback" not in text, text


def test_server_errors_keep_their_traceback(caplog: pytest.LogCaptureFixture) -> None:
    logger = logging.getLogger("tests.web_hygiene")
    scope = {"type": "http", "method": "GET", "path": "/boom"}
    with caplog.at_level(logging.INFO, logger.name):
        try:
            raise RuntimeError("boom")
        except RuntimeError:
            _log_exception(logger, scope, [])
    [record] = caplog.records
    assert record.levelno == logging.ERROR
    assert record.exc_info is not None and record.exc_info[0] is RuntimeError


def test_pages_files_and_api_carry_security_headers(stack: Stack) -> None:
    shop = new_shop(stack)
    for path in (
        f"/shops/{shop}",
        f"/shops/{shop}/rows",
        "/static/dashboard.js",
        "/static/style.css",
        f"/api/v1/shops/{shop}/skus",
        "/no/such/page",
    ):
        response = httpx.get(stack.base_url + path, headers=auth(stack), timeout=5)
        assert response.status_code == (404 if path == "/no/such/page" else 200), path
        for name, value in SECURITY_HEADERS.items():
            assert response.headers.get_list(name) == [value], (path, name)
        # A shop's data is kept by no cache (the back button after a logout on a shared
        # machine showed it; found by an outside tester); the static files stay cacheable.
        private = "no-store" in response.headers.get("cache-control", "")
        assert private == (not path.startswith("/static/")), (path, response.headers)
    assert "cache-control" not in httpx.get(f"{stack.base_url}/healthz", timeout=5).headers
    # A browser that navigates to a page it cannot see reads a page, with the same status;
    # the API's clients (and htmx fragments) keep the JSON (found by an outside tester).
    browser = {**auth(stack), "Accept": "text/html,application/xhtml+xml"}
    page = httpx.get(f"{stack.base_url}/shops/nobody.myshopify.com", headers=browser, timeout=5)
    assert page.status_code == 404 and page.headers["content-type"].startswith("text/html")
    assert "<h1>Not found</h1>" in page.text
    api = httpx.get(
        f"{stack.base_url}/api/v1/shops/nobody.myshopify.com/skus", headers=browser, timeout=5
    )
    assert api.status_code == 404 and api.json()["status_code"] == 404
    fragment = httpx.get(
        f"{stack.base_url}/shops/nobody.myshopify.com/rows",
        headers={**browser, "HX-Request": "true"},
        timeout=5,
    )
    assert fragment.status_code == 404 and fragment.json()["status_code"] == 404
    # Every JSON error has one shape: a 401 said {"status", "message"}, a 404 {"status_code",
    # "detail"} (found by an outside tester).
    anonymous = httpx.get(f"{stack.base_url}/api/v1/shops/{shop}/skus", timeout=5)
    assert anonymous.status_code == 401
    assert set(anonymous.json()) == {"status_code", "detail"} == set(api.json())
    # Names no file can have are not found, not a 500.
    for path in ("/static/%00", "/static/a%00b.css", "/static/" + "x" * 300):
        assert httpx.get(stack.base_url + path, timeout=5).status_code == 404, path


def test_the_dashboard_breaks_no_content_security_policy_rule(stack: Stack) -> None:
    if not Path(CHROMIUM).exists():
        pytest.fail("chromium is not installed (Debian: apt-get install chromium)")
    shop = new_shop(stack)
    variant = make_variant("CSP-CHECK")
    deliver_ok(stack, product_hook(shop, variant))
    complaints: list[str] = []

    def on_console(message: ConsoleMessage) -> None:
        if message.type in ("error", "warning"):
            complaints.append(message.text)

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page()
            page.on("console", on_console)
            # Violations are reported to the page too, with the directive that blocked them.
            page.add_init_script(
                "window.__csp = [];"
                "document.addEventListener('securitypolicyviolation',"
                " (e) => window.__csp.push(e.violatedDirective + ' ' + e.blockedURI));"
            )
            browser_login(page, stack, f"/shops/{shop}")
            # dashboard.js ran and its WebSocket connected; htmx can fetch the rows.
            expect(page.locator("#live")).to_have_attribute("data-state", "open")
            with page.expect_response(lambda r: r.url.endswith(f"/shops/{shop}/rows")):
                page.evaluate("htmx.trigger('#sku-rows', 'stockpulse:refresh')")
            expect(page.locator(f'tr[data-variant="{variant.variant_id}"]')).to_have_count(1)
            assert page.evaluate("window.__csp") == []
        finally:
            browser.close()
    assert not [c for c in complaints if "Content Security Policy" in c], complaints


def test_oversized_request_headers_are_refused_and_the_server_keeps_serving(stack: Stack) -> None:
    padding = "x" * (MAX_HEADER_BYTES + 1)
    response = httpx.get(f"{stack.base_url}/healthz", headers={"X-Padding": padding})
    assert response.status_code == 400
    assert httpx.get(f"{stack.base_url}/healthz").status_code == 200


def test_head_is_answered_as_get_without_a_body(stack: Stack) -> None:
    """Uptime monitors probe with HEAD; it was a 405 on every page."""
    shop = new_shop(stack)
    for path, headers in (
        ("/healthz", {}),
        ("/login", {}),
        ("/static/style.css", {}),
        (f"/api/v1/shops/{shop}/skus", auth(stack)),
    ):
        got = httpx.get(stack.base_url + path, headers=headers, timeout=5)
        head = httpx.head(stack.base_url + path, headers=headers, timeout=5)
        assert head.status_code == got.status_code == 200, (path, head.status_code)
        assert head.content == b""
        assert head.headers.get("content-type") == got.headers.get("content-type"), path
    assert httpx.head(f"{stack.base_url}/no/such/page", timeout=5).status_code == 404


def test_options_names_every_method_of_its_path(stack: Stack) -> None:
    """Litestar's OPTIONS named only the first handler's methods: /login answered
    ``Allow: OPTIONS, POST``, /api/v1/…/settings ``GET, OPTIONS`` without its PUT."""
    shop = new_shop(stack)
    for path, methods in (
        ("/login", "GET, HEAD, OPTIONS, POST"),
        (f"/api/v1/shops/{shop}/settings", "GET, HEAD, OPTIONS, PUT"),
        (f"/api/v1/shops/{shop}/settings/products/1", "DELETE, OPTIONS, PUT"),
        ("/healthz", "GET, HEAD, OPTIONS"),
    ):
        answer = httpx.options(stack.base_url + path, timeout=5)
        assert answer.status_code == 204 and answer.headers["allow"] == methods, (path, answer)
    refused = httpx.patch(f"{stack.base_url}/login", timeout=5)
    assert refused.status_code == 405 and refused.headers["allow"] == "GET, HEAD, OPTIONS, POST"
    assert httpx.options(f"{stack.base_url}/no/such/page", timeout=5).status_code == 404


def test_a_shop_path_in_capitals_is_sent_on_to_the_shop(stack: Stack) -> None:
    """`/shops/DEMO.myshopify.com` was a 404 (an outside merchant test): shops are named in
    lower case, so any other case is redirected there, method, query and all."""
    shop = new_shop(stack)
    shouted = shop.upper()
    with closing(signed_in_client(stack)) as client:
        page = client.get(f"/shops/{shouted}/alerts?rule=low_stock")
        assert page.status_code == 308
        assert page.headers["location"] == f"/shops/{shop}/alerts?rule=low_stock"
        assert client.get(f"/shops/{shouted}", follow_redirects=True).status_code == 200
    api = httpx.get(f"{stack.base_url}/api/v1/shops/{shouted}/skus", headers=auth(stack))
    assert api.status_code == 308 and api.headers["location"] == f"/api/v1/shops/{shop}/skus"
    # Not a shop domain in any case: left to the route, which says it is unknown.
    assert httpx.get(f"{stack.base_url}/shops/NOT_A_SHOP", headers=auth(stack)).status_code == 404
