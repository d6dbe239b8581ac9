"""The whole product on one machine: database, broker, worker, web, and the demo store.

``stockpulse up`` and the test fixtures both use :class:`Stack`, so the tests exercise the same
start-up path a user gets. ``up`` also supervises every part (:mod:`ops.supervisor`).

The demo store is a shop connected like a merchant's own: a fake Shopify (``ops.fake_shopify``,
seeded by :mod:`ops.demo_store`) serves its Admin API, so the worker backfills its history from
a bulk export, and the simulator sends its live webhooks, signed with its own app's secret.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import shlex
import signal
import sys
import threading
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx

from connectors import links
from connectors.crypto import Keyring, generate_key
from connectors.db.migrate import migrate
from connectors.db.shops import install_shop
from connectors.kafka.admin import ensure_topics
from connectors.mail import parse_smtp_url
from connectors.settings import BadSetting, get_settings
from ops import demo_store
from ops.account_tools import ensure_demo_account, ensure_demo_alerts
from ops.demo_store import DemoApp, demo_app
from ops.embedded import LocalBroker, LocalPostgres, free_port, port_open
from ops.leftovers import AnotherUp, stop_leftovers, write_up_pid
from ops.processes import ManagedProcess, spawn
from ops.supervisor import Supervisor

DEMO_SHOP = demo_store.SHOP
ROOT = Path(__file__).resolve().parent.parent
# The demo's fake keeps this many orders, the newest: at 30 a minute it would otherwise grow for
# as long as the demo runs. Hours of live orders, which is what an hourly reconciliation reads;
# the history goes first, once the worker has read it.
FAKE_MAX_ORDERS = 20_000


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
        self.sender: ManagedProcess | None = None
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
            "STOCKPULSE_SECRET_KEY": self.secret_key(),
            "PYTHONUNBUFFERED": "1",
            "STOCKPULSE_WORKER_DATADIR": str(self.data_dir / "worker"),
            # The embedded broker keeps its log in memory.
            **({"BROKER_FORGETS_ON_RESTART": "1"} if self.broker is not None else {}),
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
        keys = self.key_file.read_text().strip()
        try:
            Keyring.parse(keys)
        except ValueError:
            raise BadSetting(
                f"{self.key_file} does not hold a base64 AES-256 key: restore it from a backup"
                " (the shop tokens stored are sealed with it), or set"
                " STOCKPULSE_ENCRYPTION_KEYS"
            ) from None
        return keys

    def secret_key(self) -> str:
        """``STOCKPULSE_SECRET_KEY`` when set; otherwise one of this stack's own, kept in its
        data directory, so unsubscribe links in mails already sent keep working after a
        restart and nobody can forge them from the published development default."""
        configured = self.extra_env.get("STOCKPULSE_SECRET_KEY") or os.environ.get(
            "STOCKPULSE_SECRET_KEY"
        )
        if configured:
            return configured
        path = self.data_dir / "secret.key"
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as out:
                out.write(secrets.token_urlsafe(32) + "\n")
        return path.read_text().strip()

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

    def start_sender(self) -> ManagedProcess:
        """The alert sender: alert emails through ``SMTP_URL``."""
        self.sender = ManagedProcess(
            "alert-sender", ["alert-sender"], self.env(), self.data_dir / "logs" / "sender.log"
        )
        self.sender.start()
        return self.sender

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
        for name, proc in (("web", self.web), ("worker", self.worker), ("sender", self.sender)):
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
        if self.sender is not None:
            self.sender.stop()
        if self.broker is not None:
            self.broker.stop()
        if self.postgres is not None:
            self.postgres.stop()


class ModuleProcess(ManagedProcess):
    """A supervised part that is a Python module of its own rather than a ``stockpulse``
    command. ``ready``, when given, tells when a run has come up; until then ``start`` waits."""

    def __init__(
        self,
        name: str,
        module: str,
        args: list[str],
        env: Mapping[str, str],
        log_path: Path,
        *,
        ready: Callable[[], bool] | None = None,
        ready_timeout_s: float = 30.0,
    ) -> None:
        super().__init__(name, args, env, log_path)
        self.module = module
        self.ready = ready
        self.ready_timeout_s = ready_timeout_s

    def start(self) -> None:
        self.process, self._pump = spawn(
            [sys.executable, "-m", self.module, *self.args],
            self.log_path,
            env={**os.environ, **self.env},
            cwd=ROOT,
        )
        if self.ready is None:
            return
        deadline = time.monotonic() + self.ready_timeout_s
        while not self.ready():
            if not self.running:
                raise RuntimeError(f"{self.name} exited:\n{self.log_tail()}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"{self.name} not up after {self.ready_timeout_s}s")
            time.sleep(0.05)


def mail_catcher_process(data_dir: Path) -> tuple[ModuleProcess, str, Path]:
    """The demo's SMTP catcher on a free loopback port: the process, its SMTP_URL and where it
    keeps the mail."""
    port = free_port()
    mail_dir = data_dir / "mail"
    process = ModuleProcess(
        "mail-catcher",
        "ops.mail_catcher",
        ["--port", str(port), "--dir", str(mail_dir)],
        {},
        data_dir / "logs" / "mail-catcher.log",
        ready=lambda: port_open(port),
    )
    return process, f"smtp://127.0.0.1:{port}?starttls=off", mail_dir


def fake_shopify_process(data_dir: Path, app: DemoApp) -> tuple[ModuleProcess, str]:
    """The demo shop's Shopify on a free loopback port (kept across its restarts), seeded with
    the demo store; the process and its base URL."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"

    def ready() -> bool:
        try:
            return httpx.get(f"{base}/_fake/shops/{DEMO_SHOP}", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    process = ModuleProcess(
        "fake-shopify",
        "ops.fake_shopify",
        [
            *("--port", str(port), "--shop", DEMO_SHOP),
            *("--client-id", app.client_id),
            *("--demo-history-days", str(demo_store.HISTORY_DAYS)),
            *("--max-orders", str(FAKE_MAX_ORDERS)),
            *("--state", str(data_dir / "fake-shopify.json")),
        ],
        {"FAKE_SHOPIFY_CLIENT_SECRET": app.client_secret, "PYTHONUNBUFFERED": "1"},
        data_dir / "logs" / "fake-shopify.log",
        ready=ready,
    )
    return process, base


def demo_connected(database_url: str) -> bool:
    import psycopg

    with psycopg.connect(database_url) as conn:
        row = conn.execute(
            "SELECT 1 FROM shop_credentials c JOIN shops s ON s.domain = c.shop"
            " WHERE c.shop = %s AND s.uninstalled_at IS NULL",
            (DEMO_SHOP,),
        ).fetchone()
        return row is not None


CLI_ENV = "env"
_CLI_VARIABLES = (
    "DATABASE_URL",
    "KAFKA_BOOTSTRAP_SERVERS",
    "STOCKPULSE_ENCRYPTION_KEYS",
    "STOCKPULSE_SECRET_KEY",
    "STOCKPULSE_BASE_URL",
    "SMTP_URL",
)


def write_cli_env(run_dir: Path, env: Mapping[str, str]) -> Path:
    """A shell file exporting what ``stockpulse`` commands need to act on the running stack
    (its database, broker and keys), readable by its owner only: it holds the keys."""
    path = (run_dir / CLI_ENV).resolve()
    lines = [f"export {k}={shlex.quote(env[k])}" for k in _CLI_VARIABLES if k in env]
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)  # a file left by an earlier `up` keeps its mode otherwise
    with os.fdopen(fd, "w") as f:
        f.write("\n".join(lines) + "\n")
    return path


def connect_demo_store(stack: Stack, admin_url: str, app: DemoApp) -> bool:
    """Connect the demo shop to its fake Shopify as ``stockpulse connect`` would, and ask the
    worker for its history unless a backfill of it was ever done; whether one was asked for.

    It is connected again on every start: the fake listens on a new port each time, and the
    shop's stored admin URL must name it (the shop's own override, so real shops connected to
    the same stack still go to Shopify)."""
    return asyncio.run(_connect_demo_store(stack, admin_url, app))


async def _connect_demo_store(stack: Stack, admin_url: str, app: DemoApp) -> bool:
    from connectors.db import backfills, credentials
    from connectors.db.pool import open_pool
    from connectors.shopify.connect import connect

    settings = get_settings().model_copy(
        update={"stockpulse_base_url": stack.env()["STOCKPULSE_BASE_URL"]}
    )
    creds = credentials.Credentials(
        shop=DEMO_SHOP,
        mode="client_credentials",
        client_id=app.client_id,
        client_secret=app.client_secret,
        admin_url=admin_url,
    )
    keyring = Keyring.parse(stack.encryption_keys())
    pool = await open_pool(stack.database_url, max_size=2)
    try:
        async with httpx.AsyncClient(timeout=15) as http:
            await connect(pool, keyring, http, settings, creds)
        async with pool.connection() as conn, conn.transaction():
            done = await backfills.state(conn, DEMO_SHOP)
            # A failed one is asked for again; one pending or running is the worker's already.
            if done is not None and done["status"] != "failed":
                return False
            since = (datetime.now(UTC) - timedelta(days=demo_store.HISTORY_DAYS)).date()
            await backfills.request(conn, DEMO_SHOP, since)
            return True
    finally:
        await pool.close()


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
    data = Path(data_dir)
    # Before the port is checked: a killed `up`'s web may be what holds it.
    try:
        stop_leftovers(data / "run", postgres_dir=data / "pg")
    except AnotherUp as exc:
        print(exc)
        return 1
    if port_open(port):
        print(f"port {port} is already in use; pick another with --port")
        return 1
    up_pid = write_up_pid(data / "run")
    stack = Stack(data, web_port=port, database_url=database_url, bootstrap_servers=bootstrap)
    supervisor = Supervisor(data / "run")
    simulator: ManagedProcess | None = None
    shopify: ManagedProcess | None = None
    shopify_url = ""
    demo_line = ""
    t0 = time.monotonic()
    try:
        print("starting PostgreSQL…" if stack.postgres else f"using database {database_url}")
        print(
            "starting the Kafka-protocol broker…" if stack.broker else f"using Kafka at {bootstrap}"
        )
        (data / "logs").mkdir(parents=True, exist_ok=True)
        if stack.postgres is not None:
            supervisor.start(stack.postgres)
        if stack.broker is not None:
            # Its storage is in memory: a restarted broker has no topics until we create them,
            # and its logs start again at offset 0. The worker's consumers would go on asking
            # for their old, higher offsets, which this broker answers with nothing rather than
            # "out of range", until new messages passed them (half an hour, in one black-box
            # run). So the worker is stopped before the broker starts again, and started once
            # its topics are back: it finds no committed offsets and reads the new logs from
            # the start, what the inbox relay republished and everything since. Stopped only
            # after the broker was back, the old worker reconnected first and committed its old
            # offsets into the new broker, and its successor skipped what lay before them (an
            # outside test: 2,192 accepted webhooks unapplied until the next full restart).
            def broker_starting() -> None:
                supervisor.hold("worker", "the broker is back with its topics")

            def broker_back() -> None:
                stack.ensure_topics()
                supervisor.release("worker")

            supervisor.start(stack.broker, before_start=broker_starting, after_start=broker_back)
        stack.prepare()
        install_shop(stack.database_url, DEMO_SHOP, name=demo_store.SHOP_NAME)
        login_email, login_password = ensure_demo_account(
            stack.database_url, data, DEMO_SHOP, settings.stockpulse_demo_api_token
        )
        alerted = ensure_demo_alerts(
            stack.database_url, DEMO_SHOP, settings.stockpulse_demo_alert_to
        )
        if "SMTP_URL" in os.environ:
            mail_line = f"  Mail:       through SMTP_URL ({parse_smtp_url(settings.smtp_url)})"
        else:
            # No mail server configured: mail stays on this machine, readable in the dashboard.
            catcher, smtp_url, mail_dir = mail_catcher_process(data)
            supervisor.start(catcher)
            stack.extra_env["SMTP_URL"] = smtp_url
            stack.extra_env["STOCKPULSE_MAIL_CATCHER_DIR"] = str(mail_dir)
            mail_line = (
                "  Mail:       caught on this machine, read it at"
                f" {stack.base_url}/mailbox?key={links.mailbox_key(stack.secret_key())}"
                " (set SMTP_URL to send for real)"
            )
        # Without the simulator the demo shop is an ordinary installed shop (webhooks signed
        # with the deployment's secret), unless an earlier run connected it to its fake.
        app: DemoApp | None = None
        if simulate or demo_connected(stack.database_url):
            app = demo_app(data)
            shopify, shopify_url = fake_shopify_process(data, app)
            supervisor.start(shopify)
            # Before the web app starts: from its first request it verifies the demo shop's
            # webhooks with the demo app's secret.
            backfilling = connect_demo_store(stack, f"{shopify_url}/shops/{{shop}}", app)
            demo_line = (
                f"  Demo store: served by the embedded fake Shopify at {shopify_url}"
                f" ({demo_store.HISTORY_DAYS} days of order history"
                + ("; the worker backfills it now)" if backfilling else ")")
            )
        print("starting the worker and the web app…")
        supervisor.adopt(stack.start_worker())
        supervisor.adopt(stack.start_sender())
        supervisor.adopt(stack.start_web())
        secret = settings.webhook_secrets[0].decode()
        print()
        print(f"  Dashboard:  {stack.base_url}/shops/{DEMO_SHOP}")
        print(
            f"  Log in:     {login_email} / {login_password}  (kept in {data / 'demo-login.json'})"
        )
        if settings.stockpulse_demo_api_token:
            print("  API token:  STOCKPULSE_DEMO_API_TOKEN acts for that account")
        print(
            f"  Alerts:     emails to {', '.join(alerted)} when stock runs low or a stockout is"
            " near (the demo shop's alert settings)"
            if alerted
            else "  Alerts:     nobody is emailed (the demo shop's alert settings list no one)"
        )
        print(mail_line)
        print(f"  Webhooks:   POST {stack.base_url}/webhooks/shopify")
        if app is not None:
            print(
                f"              the demo store's are signed with its own app's secret"
                f" (client_secret in {data / 'demo-app.json'}); other shops' with"
                " SHOPIFY_API_SECRET"
            )
        print(f"  Feed:       ws://127.0.0.1:{port}/ws/shops/{DEMO_SHOP}")
        if demo_line:
            print(demo_line)
        if settings.uses_development_secret:
            print(f"  Webhook secret (development default, set SHOPIFY_API_SECRET): {secret}")
        if stack.generated_key:
            print(
                f"  Encryption: generated a key for shop secrets in {stack.key_file.resolve()}"
                " (set STOCKPULSE_ENCRYPTION_KEYS to use your own; keep the file)"
            )
        cli_env = write_cli_env(data / "run", stack.env())
        print(f"  Commands:   . {cli_env} && uv run stockpulse --help  (they act on this stack)")
        print(f"  Logs:       {data.resolve() / 'logs'}")
        print(f"  Pid files:  {data.resolve() / 'run'}")
        print(f"  Up in {time.monotonic() - t0:.1f}s. Crashed parts restart; Ctrl-C stops all.")
        print(flush=True)
        if simulate and app is not None and shopify_url:
            simulator = ModuleProcess(
                "simulator",
                "ops.simulator",
                [
                    *("--url", stack.base_url, "--shop", DEMO_SHOP),
                    *("--orders-per-minute", str(orders_per_minute)),
                    *("--mirror-url", shopify_url),
                ],
                # It plays Shopify for the demo shop, whose webhooks verify with its app's
                # secret only.
                {**stack.env(), "SHOPIFY_API_SECRET": app.client_secret},
                data / "logs" / "simulator.log",
            )
            supervisor.start(simulator)
        stop.interrupt = False
        supervisor.run(stop.event)
    except KeyboardInterrupt:
        pass
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not strand children
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        print("\nstopping…", flush=True)
        left: list[str] = []
        started = {id(c) for c in supervisor.children}
        # Parts that were starting when the stop came were not handed to the supervisor yet.
        for part in (simulator, stack.web, stack.sender, stack.worker, shopify, stack.broker):
            if part is not None and id(part) not in started:
                part.stop()
        # The parts between the web and the infrastructure stop together: each has its own
        # deadline, which a hung database makes it wait out.
        left = supervisor.stop_all(
            pause_before={"worker": 2.0},
            together=("alert-sender", "worker", "fake-shopify", "mail-catcher"),
        )
        if stack.postgres is not None and id(stack.postgres) not in started:
            stack.postgres.stop()
            left += ["postgres"] if stack.postgres.pid is not None else []
        if left:
            # Their pid files stay: the next `up` on this data directory stops them first.
            print(f"could not stop: {', '.join(left)}; the next `up` will.", flush=True)
        else:
            up_pid.unlink(missing_ok=True)
            (data / "run" / CLI_ENV).unlink(missing_ok=True)
            print("stopped.", flush=True)
    return 1 if left else 0
