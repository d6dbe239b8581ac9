"""Session fixtures: real PostgreSQL, a real Kafka-protocol broker, the real worker and web app."""

from __future__ import annotations

import os
import shutil
import signal
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, sync_playwright

from ops.stack import Stack
from tests.mailbox import MAILBOX
from tests.support import (
    SECRET,
    deliver_ok,
    make_variant,
    new_shop,
    product_hook,
    query,
    wait_until,
)

ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"
# Debian's Chromium, which the project's scripts install; driven by Playwright for Python.
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
STACK_ENV = {
    "SHOPIFY_API_SECRET": f"{SECRET},an-old-rotated-secret",
    "KAFKA_TOPIC_PARTITIONS": "4",
    # Tests run nightly refits themselves, when they need one.
    "NIGHTLY_AT": "off",
    # Settings changes replan a shop at the next check; tests should not wait the default 30 s.
    "STOCKPULSE_FORECAST_CHECK_S": "3",
    # Open feeds re-check their credentials; a test waits for a revocation to close one.
    "WEBSOCKET_RECHECK_SECONDS": "1",
}


def pytest_configure(config: pytest.Config) -> None:
    # A run stopped with SIGTERM (a CI timeout, `kill`) would end without its fixtures'
    # teardown and leave every stack it started running: PostgreSQL, broker, worker, web.
    # As Ctrl-C, pytest tears them down first.
    signal.signal(signal.SIGTERM, _interrupt)


def _interrupt(_signum: int, _frame: object) -> None:
    raise KeyboardInterrupt


def start_stack(name: str, env: dict[str, str] | None = None) -> Stack:
    """A whole Stockpulse on loopback in a fresh directory (throwaway, non-durable PostgreSQL)."""
    data_dir = Path(tempfile.mkdtemp(prefix=f"stockpulse-{name}-"))
    stack = Stack(data_dir, durable=False, extra_env={**STACK_ENV, **(env or {})})
    try:
        stack.start_infrastructure()
        stack.start_worker()
        stack.start_sender()
        stack.start_web()
        wait_for_pipeline(stack)
    except BaseException:
        stop_stack(stack, name)
        raise
    return stack


def wait_for_pipeline(stack: Stack, timeout_s: float = 120) -> None:
    """Block until a webhook makes it all the way into PostgreSQL (the worker has joined its
    consumer group), so tests time the product rather than the start-up."""
    shop = new_shop(stack)
    variant = make_variant("PROBE")
    deliver_ok(stack, product_hook(shop, variant))
    wait_until(
        lambda: query(stack, "SELECT 1 FROM variants WHERE shop = %s", shop),
        timeout_s=timeout_s,
        what="the worker to process a first webhook",
    )


def stop_stack(stack: Stack, name: str) -> None:
    stack.stop()
    # Keep the logs of every run where CI can show them; drop the database files.
    logs = stack.data_dir / "logs"
    if logs.exists():
        # Each pytest-xdist worker starts its own shared stack: keep both workers' logs.
        worker = os.environ.get("PYTEST_XDIST_WORKER")
        target = ARTIFACTS / (f"{name}-{worker}" if worker else name)
        shutil.rmtree(target, ignore_errors=True)
        shutil.copytree(logs, target)
    shutil.rmtree(stack.data_dir, ignore_errors=True)


@pytest.fixture(scope="session")
def stack() -> Iterator[Stack]:
    # The stack's mail (password resets) goes to a real SMTP server the tests can read.
    smtp_url = MAILBOX.start()
    running = start_stack("shared", {"SMTP_URL": smtp_url})
    yield running
    stop_stack(running, "shared")
    MAILBOX.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """A headless Chromium for the module's browser tests."""
    if not Path(CHROMIUM).exists():
        pytest.fail("chromium is not installed (Debian: apt-get install chromium)")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield launched
        launched.close()
