"""`stockpulse up` as a merchant runs it, killed piece by piece in the middle of bursts.

Each of the worker, the web process, the broker and PostgreSQL is SIGKILLed in turn during a
burst of 2,000 webhooks, and finally the whole of `up` is stopped and started again. The sender
behaves like Shopify: it retries a delivery until it gets a 200. Every webhook that got one must
be applied exactly once (totals computed from what was sent), and the product must serve again
within 30 s of each kill without anyone touching it.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import psycopg
import pytest

from ops.embedded import free_port
from ops.shopify_payloads import SignedWebhook
from tests.support import SECRET, mixed_burst

SHOP = "demo.myshopify.com"  # installed by `up` itself
BURST = 2000
RECOVERY_S = 30.0
ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts" / "crash-everything"


class Up:
    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen | None = None
        self.output = data_dir / "up.out"

    def start(self) -> None:
        env = {
            **os.environ,
            "SHOPIFY_API_SECRET": SECRET,
            "NIGHTLY_AT": "off",
            "KAFKA_TOPIC_PARTITIONS": "4",
            "STOCKPULSE_KAFKA_SESSION_TIMEOUT": "10",
            "PYTHONUNBUFFERED": "1",
        }
        for inherited in ("DATABASE_URL", "KAFKA_BOOTSTRAP_SERVERS"):
            env.pop(inherited, None)
        out = open(self.output, "ab")  # noqa: SIM115 - handed to the child
        self.process = subprocess.Popen(
            [
                *(sys.executable, "-m", "ops.cli", "up", "--port", str(self.port)),
                *("--data-dir", str(self.data_dir), "--no-simulate"),
            ],
            env=env,
            cwd=ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        out.close()
        self.wait_ready(180)

    def wait_ready(self, timeout_s: float) -> float:
        started = time.monotonic()
        self.not_ready: list[str] = []  # why, as /readyz said it: kept for a slow start's report
        while time.monotonic() - started < timeout_s:
            assert self.process is not None and self.process.poll() is None, self.log()
            try:
                answer = httpx.get(f"{self.url}/readyz", timeout=2)
                if answer.status_code == 200:
                    return time.monotonic() - started
                said = f"{time.monotonic() - started:.1f}s {answer.text}"
                if not self.not_ready or self.not_ready[-1].split(" ", 1)[1] != answer.text:
                    self.not_ready.append(said)
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise AssertionError(f"not ready after {timeout_s}s:\n{self.log()}")

    def pid(self, name: str, timeout_s: float = 30) -> int:
        """The running part's pid; a part being restarted has no pid file until it is up."""
        path = self.data_dir / "run" / f"{name}.pid"
        deadline = time.monotonic() + timeout_s
        while not path.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        return int(path.read_text().split()[0])

    def database_url(self) -> str:
        port = (self.data_dir / "pg" / "postmaster.pid").read_text().splitlines()[3]
        return f"postgresql://postgres@127.0.0.1:{port.strip()}/stockpulse"

    def stop(self) -> int:
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(90)

    def log(self) -> str:
        return self.output.read_text(errors="replace")[-4000:] if self.output.exists() else ""


@pytest.fixture
def up() -> Iterator[Up]:
    data_dir = Path(tempfile.mkdtemp(prefix="stockpulse-crash-"))
    running = Up(data_dir)
    try:
        yield running
    finally:
        if running.process is not None and running.process.poll() is None:
            running.stop()
        shutil.rmtree(ARTIFACTS, ignore_errors=True)
        if (data_dir / "logs").exists():
            shutil.copytree(data_dir / "logs", ARTIFACTS)
            shutil.copy(running.output, ARTIFACTS / "up.out")
        shutil.rmtree(data_dir, ignore_errors=True)


async def _deliver_like_shopify(
    client: httpx.AsyncClient, url: str, hook: SignedWebhook, outages: list[float]
) -> None:
    """Retry until a 200, as Shopify does (its backoff shortened: the test has no 4 hours)."""
    first_failure: float | None = None
    while True:
        try:
            response = await client.post(url, content=hook.body, headers=hook.headers)
            if response.status_code == 200:
                break
            assert response.status_code == 503, (response.status_code, response.text)
        except httpx.TransportError:
            pass
        first_failure = first_failure or time.monotonic()
        await asyncio.sleep(0.25)
    if first_failure is not None:
        outages.append(time.monotonic() - first_failure)


async def _burst_with_a_kill(up: Up, hooks: list[SignedWebhook], kill: str | None) -> float:
    """Send ``hooks`` (catalogue first), SIGKILL ``kill`` a quarter of the way through; the
    longest time any delivery had to wait for a 200."""
    url = f"{up.url}/webhooks/shopify"
    outages: list[float] = []
    gate = asyncio.Semaphore(16)
    sent = 0
    async with httpx.AsyncClient(timeout=10) as client:

        async def send(hook: SignedWebhook) -> None:
            nonlocal sent
            async with gate:
                await _deliver_like_shopify(client, url, hook, outages)
                sent += 1
                if kill is not None and sent == len(hooks) // 4:
                    os.kill(up.pid(kill), signal.SIGKILL)

        await asyncio.gather(*(send(h) for h in hooks[:20]))
        await asyncio.gather(*(send(h) for h in hooks[20:]))
    return max(outages, default=0.0)


def _units(up: Up) -> dict[int, int]:
    with psycopg.connect(up.database_url()) as conn:
        rows = conn.execute(
            "SELECT variant_id, sum(units) FROM daily_demand WHERE shop = %s GROUP BY 1", (SHOP,)
        ).fetchall()
    return {v: int(u) for v, u in rows if u}


def _stock(up: Up) -> dict[int, int]:
    with psycopg.connect(up.database_url()) as conn:
        rows = conn.execute(
            "SELECT inventory_item_id, available FROM inventory_levels WHERE shop = %s", (SHOP,)
        ).fetchall()
    return dict(rows)


def _alerts_reached_the_demo_mailbox(up: Up) -> None:
    """Stock of the bursts fell below the demo's low-stock line of 5: alert emails went to
    STOCKPULSE_DEMO_ALERT_TO through the embedded catcher, and the link `up` printed opens
    them on the Mailbox page; the demo login alone does not."""
    login = json.loads((up.data_dir / "demo-login.json").read_text())
    printed = up.output.read_text(errors="replace")
    opening = re.search(r"/mailbox\?key=(\S+)", printed)
    assert opening, printed[-2000:]
    with httpx.Client(base_url=up.url, timeout=10) as client:
        form = client.get("/login").text
        token = form.split('name="csrf_token" value="', 1)[1].split('"', 1)[0]
        answer = client.post("/login", data={**login, "csrf_token": token})
        assert answer.status_code == 303, answer.text
        assert client.get("/mailbox").status_code == 403
        assert client.get("/mailbox", params={"key": "forged.key"}).status_code == 403
        opened = client.get("/mailbox", params={"key": opening.group(1)})
        assert opened.status_code == 303 and opened.headers["cache-control"] == "no-store"
        deadline = time.monotonic() + 60
        page = ""
        while time.monotonic() < deadline:
            page = client.get("/mailbox").text
            if "merchant@example.com" in page:
                break
            time.sleep(1)
    assert "merchant@example.com" in page, page[-2000:]
    caught = list((up.data_dir / "mail").glob("*.eml"))
    assert caught and all(
        b"X-Stockpulse-Shop: demo.myshopify.com" in p.read_bytes() for p in caught
    )


def test_every_acknowledged_webhook_is_applied_once_through_kills_and_restarts(up: Up) -> None:
    up.start()
    rng = random.Random(2026)
    expected_units: Counter[int] = Counter()
    expected_stock: dict[int, int] = {}
    report = []
    for victim in ("worker", "web", "broker", "postgres", None):
        hooks, units, stock, _ = mixed_burst(SHOP, rng, BURST)
        before = up.pid(victim) if victim else None
        worst_wait = asyncio.run(_burst_with_a_kill(up, hooks, victim))
        expected_units.update(units)
        expected_stock.update(stock)  # each burst has SKUs of its own
        if victim is None:
            assert up.stop() == 0, up.log()
            restarted = time.monotonic()
            up.start()
            took = time.monotonic() - restarted
            assert took < RECOVERY_S, (
                f"up took {took:.1f}s to be ready again; /readyz said:\n"
                + "\n".join(up.not_ready)
                + f"\n{up.log()}"
            )
            report.append(f"full stop and start of up: ready again in {took:.1f}s")
            continue
        assert up.pid(victim) != before, f"{victim} was not restarted"
        assert victim in up.log(), f"up did not report the {victim} crash:\n{up.log()}"
        assert worst_wait < RECOVERY_S, f"{victim}: a delivery waited {worst_wait:.1f}s for 200"
        report.append(f"{victim} SIGKILLed: the longest wait for a 200 was {worst_wait:.1f}s")

    wanted = {v: n for v, n in expected_units.items() if n}
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and _units(up) != wanted:
        time.sleep(1)
    actual = _units(up)
    missing = {v: wanted[v] - actual.get(v, 0) for v in wanted if actual.get(v, 0) != wanted[v]}
    assert actual == wanted, f"units differ per SKU (wanted - actual): {missing}"
    assert _stock(up) == expected_stock
    worker_log = "".join(
        p.read_text(errors="replace") for p in (up.data_dir / "logs").glob("worker.log*")
    )
    assert "Deadlock" not in worker_log
    _alerts_reached_the_demo_mailbox(up)
    print("\n" + "\n".join(report))
    print(f"{5 * BURST} webhooks, {sum(wanted.values())} units over {len(wanted)} SKUs: exact")
