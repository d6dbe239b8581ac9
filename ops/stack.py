"""The whole product on one machine: database, broker, worker, web, and the demo store.

``stockpulse up`` and the test fixtures both use :class:`Stack`, so the tests exercise the same
start-up path a user gets. ``up`` also supervises every part (:mod:`ops.supervisor`).
"""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

import httpx

from connectors.crypto import generate_key
from connectors.db.migrate import migrate
from connectors.db.shops import has_orders, install_shop
from connectors.kafka.admin import ensure_topics
from connectors.settings import get_settings
from ops.embedded import LocalBroker, LocalPostgres, free_port, port_open
from ops.processes import ManagedProcess
from ops.supervisor import Supervisor

DEMO_SHOP = "demo.myshopify.com"


class Stack:
    def __init__(
        self,
        data_dir: Path,
        *,
        web_port: int | None = None,
        durable: bool = True,
        database_url: str | None = None,
        bootstrap_servers: str | None = None,
        extra_env: dict[str, str] | None = None,
        pg_port: int | None = None,
        broker_port: int | None = None,
        web_workers: int = 1,
    ) -> None:
        self.data_dir = data_dir
        self.web_workers = web_workers
        self.web_port = web_port or free_port()
        self.postgres = (
            None
            if database_url
            else LocalPostgres(
                data_dir / "pg", pg_port, durable=durable, log_dir=data_dir / "logs" / "postgres"
            )
        )
        self.broker = (
            None
            if bootstrap_servers
            else LocalBroker(broker_port, log_path=data_dir / "logs" / "broker.log")
        )
        self._database_url = database_url
        self._bootstrap = bootstrap_servers
        self.extra_env = extra_env or {}
        self.worker: ManagedProcess | None = None
        self.web: ManagedProcess | None = None
        self.generated_key = False

    @property
    def database_url(self) -> str:
        if self.postgres is not None:
            return self.postgres.url()
        assert self._database_url
        return self._database_url

    @property
    def bootstrap_servers(self) -> str:
        if self.broker is not None:
            return self.broker.bootstrap
        assert self._bootstrap
        return self._bootstrap

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.web_port}"

    def env(self) -> dict[str, str]:
        return {
            "DATABASE_URL": self.database_url,
            "KAFKA_BOOTSTRAP_SERVERS": self.bootstrap_servers,
            "STOCKPULSE_BASE_URL": self.base_url,
            "STOCKPULSE_ENCRYPTION_KEYS": self.encryption_keys(),
            "PYTHONUNBUFFERED": "1",
            "STOCKPULSE_WORKER_DATADIR": str(self.data_dir / "worker"),
            **self.extra_env,
        }

    @property
    def key_file(self) -> Path:
        return self.data_dir / "encryption.key"

    def encryption_keys(self) -> str:
        """``STOCKPULSE_ENCRYPTION_KEYS`` when set; otherwise a key of this stack's own, made
        once in its data directory (readable by its owner only) and kept across restarts."""
        configured = self.extra_env.get("STOCKPULSE_ENCRYPTION_KEYS") or os.environ.get(
            "STOCKPULSE_ENCRYPTION_KEYS"
        )
        if configured:
            return configured
        if not self.key_file.exists():
            self.key_file.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as out:
                out.write(generate_key() + "\n")
            self.generated_key = True
        return self.key_file.read_text().strip()

    def start_infrastructure(self) -> None:
        (self.data_dir / "logs").mkdir(parents=True, exist_ok=True)
        if self.postgres is not None:
            self.postgres.start()
        if self.broker is not None:
            self.broker.start()
        self.prepare()

    def prepare(self) -> None:
        """What the worker and the web app expect to find: the schema and the topics."""
        migrate(self.database_url)
        self.ensure_topics()

    @property
    def topic_partitions(self) -> int:
        return int(
            self.extra_env.get("KAFKA_TOPIC_PARTITIONS", get_settings().kafka_topic_partitions)
        )

    def ensure_topics(self) -> None:
        ensure_topics(self.bootstrap_servers.split(","), self.topic_partitions)

    def start_worker(self) -> ManagedProcess:
        self.worker = ManagedProcess(
            "worker", ["worker"], self.env(), self.data_dir / "logs" / "worker.log"
        )
        self.worker.start()
        return self.worker

    def start_web(self, timeout_s: float = 60) -> ManagedProcess:
        self.web = ManagedProcess(
            "web",
            ["web", "--port", str(self.web_port), "--workers", str(self.web_workers)],
            self.env(),
            self.data_dir / "logs" / "web.log",
        )
        self.web.start()
        self.wait_ready(timeout_s)
        return self.web

    def wait_ready(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.web is not None and not self.web.running:
                raise RuntimeError(f"web exited:\n{self.web.log_tail()}")
            if port_open(self.web_port):
                try:
                    if httpx.get(f"{self.base_url}/readyz", timeout=5).status_code == 200:
                        return
                except httpx.HTTPError:
                    pass
            time.sleep(0.1)
        tail = self.web.log_tail() if self.web else ""
        raise TimeoutError(f"web not ready after {timeout_s}s:\n{tail}")

    def process_ids(self) -> dict[str, int]:
        """Top process of each running part, for CPU accounting (children are counted too)."""
        ids = {}
        for name, proc in (("web", self.web), ("worker", self.worker)):
            if proc is not None and proc.process is not None:
                ids[name] = proc.process.pid
        if self.broker is not None and self.broker.process is not None:
            ids["broker"] = self.broker.process.pid
        if self.postgres is not None:
            pid_file = self.postgres.data_dir / "postmaster.pid"
            if pid_file.exists():
                ids["postgres"] = int(pid_file.read_text().split()[0])
        return ids

    def stop(self, drain_s: float = 0.0) -> None:
        """Stop in dependency order: no new webhooks first, then let the worker catch up."""
        if self.web is not None:
            self.web.stop()
        if drain_s:
            time.sleep(drain_s)
        if self.worker is not None:
            self.worker.stop()
        if self.broker is not None:
            self.broker.stop()
        if self.postgres is not None:
            self.postgres.stop()


class _StopRequest:
    """SIGINT/SIGTERM handler. While starting up it interrupts whatever is in progress; once the
    stack runs, it only sets ``event``, so a restart in progress finishes (or fails) before the
    orderly stop instead of being cut in half."""

    def __init__(self) -> None:
        self.event = threading.Event()
        self.interrupt = True

    def __call__(self, signum: int, frame: object) -> None:
        # Only the first signal counts: uv forwards a SIGTERM it received, and a second one
        # landing in the middle of the orderly stop would end it in click's "Aborted!".
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        self.event.set()
        if self.interrupt:
            raise KeyboardInterrupt


def run_stack(*, port: int, data_dir: str, simulate: bool, orders_per_minute: float) -> int:
    # Explicit handlers: a shell may start us with SIGINT ignored, and SIGTERM (systemd, CI)
    # deserves the same orderly stop as Ctrl-C.
    stop = _StopRequest()
    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    settings = get_settings()
    database_url = os.environ.get("DATABASE_URL")
    bootstrap = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    if port_open(port):
        print(f"port {port} is already in use; pick another with --port")
        return 1
    stack = Stack(
        Path(data_dir), web_port=port, database_url=database_url, bootstrap_servers=bootstrap
    )
    supervisor = Supervisor(Path(data_dir) / "run")
    simulator: ManagedProcess | None = None
    t0 = time.monotonic()
    try:
        print("starting PostgreSQL…" if stack.postgres else f"using database {database_url}")
        print(
            "starting the Kafka-protocol broker…" if stack.broker else f"using Kafka at {bootstrap}"
        )
        (Path(data_dir) / "logs").mkdir(parents=True, exist_ok=True)
        if stack.postgres is not None:
            supervisor.start(stack.postgres)
        if stack.broker is not None:
            # Its storage is in memory: a restarted broker has no topics until we create them.
            supervisor.start(stack.broker, after_start=stack.ensure_topics)
        stack.prepare()
        install_shop(stack.database_url, DEMO_SHOP, name="Demo Store")
        print("starting the worker and the web app…")
        supervisor.adopt(stack.start_worker())
        supervisor.adopt(stack.start_web())
        secret = settings.webhook_secrets[0].decode()
        print()
        print(f"  Dashboard:  {stack.base_url}/shops/{DEMO_SHOP}")
        print(f"  Webhooks:   POST {stack.base_url}/webhooks/shopify")
        print(f"  Feed:       ws://127.0.0.1:{port}/ws/shops/{DEMO_SHOP}")
        if settings.uses_development_secret:
            print(f"  Webhook secret (development default, set SHOPIFY_API_SECRET): {secret}")
        if stack.generated_key:
            print(
                f"  Encryption: generated a key for shop secrets in {stack.key_file.resolve()}"
                " (set STOCKPULSE_ENCRYPTION_KEYS to use your own; keep the file)"
            )
        print(f"  Logs:       {Path(data_dir).resolve() / 'logs'}")
        print(f"  Pid files:  {Path(data_dir).resolve() / 'run'}")
        print(f"  Up in {time.monotonic() - t0:.1f}s. Crashed parts restart; Ctrl-C stops all.")
        print(flush=True)
        if simulate:
            backfill = 0 if has_orders(stack.database_url, DEMO_SHOP) else 28
            simulator = ManagedProcess(
                "simulator",
                [
                    "simulate",
                    "--url",
                    stack.base_url,
                    "--shop",
                    DEMO_SHOP,
                    "--orders-per-minute",
                    str(orders_per_minute),
                    "--backfill-days",
                    str(backfill),
                ],
                stack.env(),
                Path(data_dir) / "logs" / "simulator.log",
            )
            supervisor.start(simulator)
            simulator.args[-1] = "0"  # a restarted simulator must not send the history again
        stop.interrupt = False
        supervisor.run(stop.event)
    except KeyboardInterrupt:
        pass
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not strand children
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        print("\nstopping…", flush=True)
        started = {id(c) for c in supervisor.children}
        # Parts that were starting when the stop came were not handed to the supervisor yet.
        for part in (simulator, stack.web, stack.worker, stack.broker):
            if part is not None and id(part) not in started:
                part.stop()
        supervisor.stop_all(pause_before={"worker": 2.0})
        if stack.postgres is not None and id(stack.postgres) not in started:
            stack.postgres.stop()
        print("stopped.", flush=True)
    return 0
