"""What an `up` that was killed outright (SIGKILL, OOM killer) left running, found by its pid
files and stopped by the next `up` on the same data directory.

Its children outlive it, reparented to init: PostgreSQL, the broker, the worker and the web
still serve, but nothing restarts them, the web holds the port and PostgreSQL its data
directory, so a new `up` could not start, and starting one elsewhere would shut down the
database under the orphaned web. The pid files (``run/<name>.pid``, written by
:class:`ops.supervisor.Supervisor`, and ``run/up.pid``) name them.

A pid file may outlive its process and its pid be reused (after a reboot): a process counts
only if it started no later than its pid file was written.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable
from pathlib import Path

from ops.embedded import kill_with_children, resume_with_children, serves_cluster

UP = "up"
# Stopped in this order, the database last: each part may still be talking to the ones after.
ORDER = ("simulator", "web", "alert-sender", "worker", "fake-shopify", "mail-catcher", "broker")
POSTGRES = "postgres"
STOP_S = 20.0
# How long a pid file may be written before its process counts as started (clock ticks of
# /proc are coarse, and the file is written just after the start).
START_SLACK_S = 2.0


class AnotherUp(RuntimeError):
    """An `up` is running on this data directory."""


def stop_leftovers(
    run_dir: Path, say: Callable[[str], None] = print, postgres_dir: Path | None = None
) -> list[str]:
    """Stop what a killed `up` left running on this data directory: the names stopped. Raises
    :class:`AnotherUp` when that `up` is in fact still running. ``postgres_dir``: the embedded
    cluster, whose own ``postmaster.pid`` names its server even when our pid file is gone (a
    stop that could not end it)."""
    found = {name: pid for name, pid in _pid_files(run_dir).items() if pid != os.getpid()}
    if POSTGRES not in found and postgres_dir is not None:
        server = _postmaster_of(postgres_dir)
        if server is not None:
            found[POSTGRES] = server
    if UP in found:
        raise AnotherUp(
            f"`up` is already running on this data directory (pid {found[UP]}): stop it with"
            f" Ctrl-C or `kill -INT {found[UP]}`"
        )
    stopped = []
    names = [n for n in ORDER if n in found] + [n for n in found if n not in (*ORDER, POSTGRES)]
    for name in names:
        say(f"stopping {name} (pid {found[name]}), left running by an `up` that was killed")
        _stop_group(found[name])
        stopped.append(name)
    if POSTGRES in found:
        say(f"stopping PostgreSQL (pid {found[POSTGRES]}), left running by an `up` that was killed")
        _stop_postmaster(found[POSTGRES])
        stopped.append(POSTGRES)
    for path in run_dir.glob("*.pid"):
        path.unlink(missing_ok=True)
    return stopped


def write_up_pid(run_dir: Path) -> Path:
    run_dir.mkdir(parents=True, exist_ok=True)
    path = run_dir / f"{UP}.pid"
    tmp = path.with_suffix(".pid.tmp")
    tmp.write_text(f"{os.getpid()}\n")
    os.replace(tmp, path)
    return path


def _pid_files(run_dir: Path) -> dict[str, int]:
    """Live processes the pid files name, by name."""
    found = {}
    for path in sorted(run_dir.glob("*.pid")) if run_dir.is_dir() else []:
        try:
            pid = int(path.read_text().strip())
            written = path.stat().st_mtime
        except (OSError, ValueError):
            continue
        started = _started_at(pid)
        if started is not None and started <= written + START_SLACK_S:
            found[path.stem] = pid
    return found


def _started_at(pid: int) -> float | None:
    """When ``pid`` started (epoch seconds); None if it is gone or a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        uptime = float(Path("/proc/uptime").read_text().split()[0])
    except (OSError, ValueError):
        return None
    fields = stat.rpartition(")")[2].split()
    if not fields or fields[0] == "Z":
        return None
    ticks = os.sysconf("SC_CLK_TCK")
    return time.time() - uptime + int(fields[19]) / ticks


def _stop_group(pid: int) -> None:
    """SIGTERM the process group the supervisor started ``pid`` as the leader of (its own
    children too: uvicorn's workers, a nightly run), then SIGKILL what is left after a while."""
    _signal_group(pid, signal.SIGTERM)
    if not _wait_gone(pid, STOP_S):
        _signal_group(pid, signal.SIGKILL)
        _wait_gone(pid, 5.0)


def _stop_postmaster(pid: int) -> None:
    """Fast shutdown (SIGINT: clients cut off, a clean checkpoint), then immediate (SIGQUIT),
    then SIGKILL; resumed first, in case it was left paused."""
    resume_with_children(pid)
    for signum, wait_s in ((signal.SIGINT, STOP_S), (signal.SIGQUIT, 10.0)):
        try:
            os.kill(pid, signum)
        except ProcessLookupError:
            return
        if _wait_gone(pid, wait_s):
            return
    kill_with_children(pid)


def _postmaster_of(cluster: Path) -> int | None:
    """The live server ``cluster/postmaster.pid`` names, if it serves that cluster."""
    try:
        pid = int((cluster / "postmaster.pid").read_text().split()[0])
    except (OSError, IndexError, ValueError):
        return None
    return pid if serves_cluster(pid, cluster) else None


def _signal_group(pid: int, signum: signal.Signals) -> None:
    try:
        os.killpg(pid, signum)
    except (ProcessLookupError, PermissionError):
        try:
            os.kill(pid, signum)
        except ProcessLookupError:
            pass


def _wait_gone(pid: int, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while _started_at(pid) is not None:
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True
