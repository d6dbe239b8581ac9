"""``stockpulse up`` restarts whatever dies and stops everything only when told to."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect as ws_connect

from ops.embedded import children_of, free_port
from ops.leftovers import stop_leftovers
from ops.processes import ManagedProcess, RotatingLog
from ops.stack import DEMO_SHOP
from ops.supervisor import RestartPolicy, Supervisor
from tests.conftest import ARTIFACTS
from tests.support import SECRET, make_variant, product_hook, wait_until

REPO = Path(__file__).resolve().parent.parent.parent
PARTS = ("postgres", "broker", "worker", "web")
# Who must not notice a kill. The worker may legitimately crash (and be restarted) when its
# broker or database vanishes under it.
UNAFFECTED = {
    "worker": ("postgres", "broker", "web"),
    "web": ("postgres", "broker", "worker"),
    "broker": ("postgres", "web"),
    "postgres": ("broker", "web"),
}

DEMO_TOKEN = "demo-token-for-the-supervisor-tests"
REQUEST_TIMEOUT_S = 3


def _alive(pid: int) -> bool:
    """Zombies count as gone: a killed postmaster is reparented to an init that may not reap."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rpartition(")")[2].split()[0] != "Z"


def _processes_mentioning(text: str) -> list[int]:
    """Live processes with ``text`` in their command line or environment (the worker's nightly
    runs, PostgreSQL's backends: processes no pid file names)."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) == os.getpid():
            continue
        try:
            seen = (proc / "cmdline").read_bytes() + (proc / "environ").read_bytes()
        except OSError:
            continue
        if text.encode() in seen and _alive(int(proc.name)):
            found.append(int(proc.name))
    return found


@dataclass
class Up:
    process: subprocess.Popen
    data_dir: Path
    port: int
    output_path: Path
    env: dict[str, str]

    def start_again(self) -> None:
        """Another `up` on the same data directory and port (after this one has gone)."""
        self.process = _start_up(self.data_dir, self.port, self.env, self.output_path)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def output(self) -> str:
        return self.output_path.read_text(errors="replace")

    def pid_of(self, name: str) -> int | None:
        try:
            return int((self.data_dir / "run" / f"{name}.pid").read_text())
        except (FileNotFoundError, ValueError):
            return None

    def wait_pid(self, name: str, timeout_s: float = 30) -> int:
        def pid() -> int | None:
            return self.pid_of(name)

        found = wait_until(pid, timeout_s=timeout_s, what=f"{name}.pid")
        assert found is not None
        return found

    def ready(self) -> bool:
        assert self.process.poll() is None, f"up exited:\n{self.output()}"
        try:
            return httpx.get(f"{self.base_url}/readyz", timeout=5).status_code == 200
        except httpx.HTTPError:
            return False


@pytest.fixture
def up() -> Iterator[Up]:
    data_dir = Path(tempfile.mkdtemp(prefix="stockpulse-supervisor-"))
    port = free_port()
    env = {
        **os.environ,
        "SHOPIFY_API_SECRET": SECRET,
        "NIGHTLY_AT": "off",
        "STOCKPULSE_DEMO_API_TOKEN": DEMO_TOKEN,
        "REQUEST_TIMEOUT_SECONDS": str(REQUEST_TIMEOUT_S),
        "KAFKA_TOPIC_PARTITIONS": "4",
        "STOCKPULSE_KAFKA_SESSION_TIMEOUT": "10",
        "PYTHONUNBUFFERED": "1",
    }
    for external in ("DATABASE_URL", "KAFKA_BOOTSTRAP_SERVERS"):
        env.pop(external, None)  # up must start its own
    output_path = data_dir / "up.out"
    running = Up(_start_up(data_dir, port, env, output_path), data_dir, port, output_path, env)
    try:
        yield running
    finally:
        process = running.process
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(60)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        # A test that failed after killing an `up` outright must not leave its parts running.
        stop_leftovers(data_dir / "run", say=print, postgres_dir=data_dir / "pg")
        for pid in _processes_mentioning(str(data_dir)):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        print(running.output())
        target = ARTIFACTS / "supervisor"
        shutil.rmtree(target, ignore_errors=True)
        if (data_dir / "logs").exists():
            shutil.copytree(data_dir / "logs", target)
            shutil.copy(output_path, target / "up.out")
        shutil.rmtree(data_dir, ignore_errors=True)


def _start_up(data_dir: Path, port: int, env: dict[str, str], output: Path) -> subprocess.Popen:
    with open(output, "ab") as out:
        return subprocess.Popen(
            [
                sys.executable,
                "-m",
                "ops.cli",
                "up",
                *("--port", str(port), "--data-dir", str(data_dir)),
                "--no-simulate",
            ],
            env=env,
            cwd=REPO,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


@pytest.mark.timeout(240)
def test_up_restarts_each_killed_part_and_stops_cleanly(up: Up) -> None:
    wait_until(up.ready, timeout_s=90, what="the stack to be ready")
    pids = {n: up.wait_pid(n) for n in PARTS}
    seen = set(pids.values())

    for name in ("worker", "web", "broker", "postgres"):
        old = pids[name]
        assert _alive(old), name
        os.kill(old, signal.SIGKILL)
        killed_at = time.monotonic()

        def restarted(name: str = name, old: int = old) -> int | None:
            assert up.process.poll() is None, f"up exited:\n{up.output()}"
            pid = up.pid_of(name)
            return pid if pid is not None and pid != old and _alive(pid) else None

        new = wait_until(restarted, timeout_s=30, what=f"a new {name}")
        left = 30 - (time.monotonic() - killed_at)
        wait_until(up.ready, timeout_s=max(left, 1), what=f"ready again after killing {name}")
        assert re.search(rf"^{name} \(pid {old}\) died\b.*", up.output(), re.M), up.output()
        assert f"{name} restarted (pid {new})" in up.output()
        for other in UNAFFECTED[name]:
            assert up.pid_of(other) == pids[other], (other, up.output())
        if name == "broker":  # back with empty logs: the worker must read them from the start
            wait_until(
                lambda: (
                    "stopping worker until the broker is back with its topics" in up.output()
                    and re.search(r"^worker restarted \(pid \d+\)", up.output(), re.M)
                ),
                timeout_s=30,
                what="the worker restarted after the broker",
            )
            wait_until(up.ready, timeout_s=30, what="ready again after the worker's restart")
        pids = {n: up.wait_pid(n) for n in PARTS}
        assert pids[name] == new
        seen.update(pids.values())

    # After all that, a webhook still makes it through the broker and the worker into PostgreSQL.
    variant = make_variant("SUPERVISED")
    hook = product_hook(DEMO_SHOP, variant)

    def accepted() -> bool:
        response = httpx.post(
            f"{up.base_url}/webhooks/shopify", content=hook.body, headers=hook.headers, timeout=10
        )
        return response.status_code == 200

    wait_until(accepted, timeout_s=30, what="the webhook to be accepted")

    def applied() -> bool:
        skus = httpx.get(
            f"{up.base_url}/api/v1/shops/{DEMO_SHOP}/skus",
            headers={"Authorization": f"Bearer {DEMO_TOKEN}"},
            timeout=10,
        ).json()
        return any(s["variant_id"] == variant.variant_id for s in skus["skus"])

    wait_until(applied, timeout_s=60, what="the worker to apply the webhook")

    # A second `up` on the same data directory, while this one runs, is refused and disturbs
    # nothing (on another port, or it would stop at the port already).
    second = up.data_dir / "second.out"
    assert _start_up(up.data_dir, free_port(), up.env, second).wait(60) == 1
    assert "already running on this data directory" in second.read_text(), second.read_text()
    assert up.ready()

    # Killed outright, `up` leaves its parts running unsupervised, holding the port and the
    # database. The next `up` on the same data directory stops them and starts afresh.
    orphans = {n: up.wait_pid(n) for n in PARTS}
    os.kill(up.process.pid, signal.SIGKILL)
    up.process.wait()
    assert all(_alive(pid) for pid in orphans.values())
    # Without our pid file, PostgreSQL's own postmaster.pid still names the server.
    (up.data_dir / "run" / "postgres.pid").unlink()
    up.start_again()
    wait_until(
        lambda: up.output().count("Up in") == 2 and up.ready(),
        timeout_s=90,
        what="the new up ready (the orphaned web answers /readyz meanwhile)",
    )
    assert "left running by an `up` that was killed" in up.output(), up.output()
    assert not [pid for pid in orphans.values() if _alive(pid)], up.output()
    wait_until(applied, timeout_s=60, what="what was applied before, still there")
    seen.update(up.wait_pid(n) for n in PARTS)

    # While its database hangs (paused), a request is told to retry after the deadline
    # rather than waiting for the database, and is answered again once it resumes.
    postmaster = up.wait_pid("postgres")
    paused = [postmaster, *children_of(postmaster)]

    def ask_for_skus() -> tuple[httpx.Response, float]:
        sent = time.monotonic()
        response = httpx.get(
            f"{up.base_url}/api/v1/shops/{DEMO_SHOP}/skus",
            headers={"Authorization": f"Bearer {DEMO_TOKEN}"},
            timeout=30,
        )
        return response, time.monotonic() - sent

    for pid in paused:
        os.kill(pid, signal.SIGSTOP)
    # The pipeline's state is read from the database: unknown, not "stalled" (a read of just
    # before the pause may still answer for a moment).
    ready = wait_until(
        lambda: (r := httpx.get(f"{up.base_url}/readyz", timeout=10)).status_code == 503 and r,
        timeout_s=15,
        what="/readyz to see the database paused",
    )
    assert ready.json()["checks"] == {"database": False, "kafka": True, "pipeline": None}
    for _ in range(2):
        response, took = ask_for_skus()
        print(f"with its database paused: {response.status_code} in {took:.2f} s")
        assert response.status_code == 503, response.text
        assert response.headers["retry-after"] and response.json()["detail"]
        assert took < REQUEST_TIMEOUT_S + 1.5
    # A feed's handshake too: closed with "try again later" (1013) rather than left waiting.
    sent = time.monotonic()
    with (
        ws_connect(
            f"ws://127.0.0.1:{up.port}/ws/shops/{DEMO_SHOP}",
            additional_headers={"Authorization": f"Bearer {DEMO_TOKEN}"},
            open_timeout=30,
        ) as feed,
        pytest.raises(ConnectionClosed) as closed,
    ):
        feed.recv(timeout=30)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1013
    assert time.monotonic() - sent < REQUEST_TIMEOUT_S + 1.5
    for pid in paused:
        os.kill(pid, signal.SIGCONT)
    wait_until(lambda: ask_for_skus()[0].status_code == 200, timeout_s=30, what="resumed")

    # Stopped while its database hangs: the stop neither waits on it for long nor leaves it
    # running.
    for pid in paused:
        os.kill(pid, signal.SIGSTOP)
    time.sleep(3)
    asked = time.monotonic()
    up.process.send_signal(signal.SIGTERM)
    assert up.process.wait(60) == 0, up.output()
    print(f"stopped with its database paused in {time.monotonic() - asked:.1f} s")
    assert time.monotonic() - asked < 40, up.output()
    assert "stopped." in up.output()
    assert not [pid for pid in paused if _alive(pid)], "PostgreSQL left running"
    assert not list((up.data_dir / "run").glob("*.pid")), "pid files left behind"
    lingering = [pid for pid in seen if _alive(pid)]
    assert not lingering, f"processes left behind: {lingering}"
    assert not _processes_mentioning(str(up.data_dir)), "processes left behind"


@dataclass
class FakeChild:
    """A child whose deaths and start failures the test scripts."""

    name: str
    next_pid: int = 100
    up: bool = False
    failing_starts: int = 0
    starts: int = 0

    @property
    def pid(self) -> int | None:
        return self.next_pid if self.up else None

    def start(self) -> None:
        self.starts += 1
        if self.failing_starts:
            self.failing_starts -= 1
            raise RuntimeError(f"{self.name} cannot start yet\nsecond line")
        self.next_pid += 1
        self.up = True

    def exit_status(self) -> str | None:
        return None if self.up else "killed by SIGKILL"

    def stop(self) -> None:
        self.up = False

    def recent_output(self, max_lines: int) -> str:
        return "\n".join(f"line {i}" for i in range(100 - max_lines, 100))


def test_backoff_doubles_caps_and_resets_after_a_long_run(tmp_path: Path) -> None:
    now = [0.0]
    said: list[str] = []
    supervisor = Supervisor(
        tmp_path / "run",
        policy=RestartPolicy(initial_s=0.5, max_s=4, reset_after_s=60),
        say=said.append,
        clock=lambda: now[0],
        tail_lines=5,
    )
    child = FakeChild("worker")
    other = FakeChild("web")
    supervisor.start(child)
    supervisor.start(other)
    assert (tmp_path / "run" / "worker.pid").read_text() == "101\n"

    def crash_and_time_restart() -> float:
        child.up = False
        died_at = now[0]
        supervisor.check()
        assert not (tmp_path / "run" / "worker.pid").exists()
        while not child.up:
            now[0] += 0.25
            supervisor.check()
        return now[0] - died_at

    assert [crash_and_time_restart() for _ in range(5)] == [0.5, 1.0, 2.0, 4.0, 4.0]
    assert other.starts == 1, "a crash of one child leaves the others alone"
    now[0] += 61
    assert crash_and_time_restart() == 0.5
    assert (tmp_path / "run" / "worker.pid").read_text() == f"{child.pid}\n"
    death = next(line for line in said if line.startswith("worker (pid 101) died"))
    assert "killed by SIGKILL" in death
    assert said[said.index(death) + 1].splitlines()[-1].strip() == "line 99"

    now[0] += 61
    child.failing_starts = 2
    assert crash_and_time_restart() == 0.5 + 1.0 + 2.0  # failed starts back off too
    assert any("worker did not start" in line for line in said)

    supervisor.stop_all()
    assert not child.up and not other.up
    assert not list((tmp_path / "run").glob("*.pid"))


def test_a_held_child_stays_stopped_until_released_and_is_no_failure(tmp_path: Path) -> None:
    """The worker is held while the broker, which forgot its log, starts again: stopped only
    after, the old worker committed its old offsets into the new broker first (an outside
    test)."""
    said: list[str] = []
    supervisor = Supervisor(tmp_path / "run", say=said.append, clock=lambda: 0.0)
    supervisor.hold("worker", "nothing to hold yet")  # not started: nothing happens
    supervisor.release("worker")
    worker, broker = FakeChild("worker"), FakeChild("broker")
    order: list[str] = []

    def broker_starting() -> None:
        order.append(f"hold, worker up: {worker.up}")
        supervisor.hold("worker", "the broker is back with its topics")
        order.append(f"held, worker up: {worker.up}")

    def broker_back() -> None:
        order.append(f"broker up: {broker.up}")
        supervisor.release("worker")

    supervisor.start(broker, before_start=broker_starting, after_start=broker_back)
    supervisor.start(worker)
    order.clear()
    broker.up = False  # killed
    supervisor.check()  # its death noticed: restarted after its backoff
    assert worker.up and not order
    for _ in range(3):
        supervisor.check()  # the clock stands still: the backoff is not over
    assert worker.up and worker.starts == 1
    supervisor._entries[0].restart_at = 0.0  # the backoff over
    supervisor.check()
    # Stopped before the broker started; started again once its topics were back.
    assert order == ["hold, worker up: True", "held, worker up: False", "broker up: True"]
    assert broker.up and worker.up and worker.starts == 2
    assert (tmp_path / "run" / "worker.pid").read_text() == f"{worker.pid}\n"
    assert "stopping worker until the broker is back with its topics" in said
    pid = worker.pid
    worker.up = False  # a crash right after still gets the first, shortest backoff
    supervisor.check()
    death = next(line for line in said if line.startswith(f"worker (pid {pid}) died"))
    assert "restarting it in 0.5 s" in death


def test_a_stop_request_interrupts_the_watch(tmp_path: Path) -> None:
    supervisor = Supervisor(tmp_path, say=lambda _: None)
    supervisor.start(FakeChild("web"))
    stop = threading.Event()
    threading.Timer(0.2, stop.set).start()
    started = time.monotonic()
    supervisor.run(stop, poll_s=0.05)
    assert time.monotonic() - started < 2


def test_logs_rotate_by_size_and_keep_three_old_files(tmp_path: Path) -> None:
    log = RotatingLog.acquire(tmp_path / "worker.log", max_bytes=1000, backups=3)
    try:
        for i in range(20):
            log.write(f"{i:03d}".encode() * 100 + b"\n")  # 301 bytes
    finally:
        log.release()
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["worker.log", "worker.log.1", "worker.log.2", "worker.log.3"]
    assert all(p.stat().st_size <= 1000 for p in tmp_path.iterdir())
    assert (tmp_path / "worker.log").read_text().endswith("019" * 100 + "\n")
    assert (tmp_path / "worker.log.3").read_text().startswith("009")


def test_log_tail_shows_the_current_run_only(tmp_path: Path) -> None:
    child = ManagedProcess("bogus", ["no-such-command"], {}, tmp_path / "bogus.log")
    for _ in range(2):
        child.start()
        wait_until(lambda: not child.running, timeout_s=30, what="the child to exit")
        assert child.exit_status() == "exit code 2"
    assert (tmp_path / "bogus.log").read_text().count("No such command") == 2
    assert child.log_tail().count("No such command") == 1


def test_a_chatty_child_neither_blocks_nor_outlives_a_killed_parent(tmp_path: Path) -> None:
    parent_code = (
        "import sys, time\n"
        "from pathlib import Path\n"
        "from ops.processes import spawn\n"
        "chatty = 'import itertools\\nfor i in itertools.count(): print(i, \"x\" * 200)'\n"
        "child, _ = spawn([sys.executable, '-c', chatty], Path(sys.argv[1]))\n"
        "print(child.pid, flush=True)\n"
        "time.sleep(60)\n"
    )
    parent = subprocess.Popen(
        [sys.executable, "-c", parent_code, str(tmp_path / "chatty.log")],
        cwd=REPO,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert parent.stdout is not None
    child_pid = int(parent.stdout.readline())
    log = tmp_path / "chatty.log"
    # Past a pipe buffer's worth (64 KiB) many times over: the parent's thread keeps draining.
    wait_until(lambda: log.exists() and log.stat().st_size > 4_000_000, timeout_s=30, what="output")
    parent.kill()
    parent.wait()
    # The child's next write hits a pipe nobody reads: it fails instead of hanging forever.
    wait_until(lambda: not _alive(child_pid), timeout_s=10, what="the orphaned child to exit")
