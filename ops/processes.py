"""Start and stop Stockpulse's own processes (worker, web) as children with their own logs.

A child's stdout and stderr go through a pipe that a thread in the parent copies into a
size-rotated log file, so a chatty child can neither fill the disk nor block on a full pipe, and
the parent keeps the latest output of each run in memory for crash reports.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import ClassVar

LOG_MAX_BYTES = 10 * 1024 * 1024
LOG_BACKUPS = 3


class RotatingLog:
    """An append-only log file rotated by size (``name.log`` → ``name.log.1`` … ``.N``).

    One instance per path, shared by reference count: a crashed child's grandchildren may still
    be writing while its successor starts, and two writers rotating the same file would each
    rename the other's output away.
    """

    _open: ClassVar[dict[Path, RotatingLog]] = {}
    _registry_lock: ClassVar[threading.Lock] = threading.Lock()

    def __init__(self, path: Path, max_bytes: int, backups: int) -> None:
        self.path = path
        self.max_bytes = max_bytes
        self.backups = backups
        self._lock = threading.Lock()
        self._users = 0
        path.parent.mkdir(parents=True, exist_ok=True)
        self._file = open(path, "ab")  # noqa: SIM115 - lives as long as its writers
        self._size = self._file.tell()

    @classmethod
    def acquire(
        cls, path: Path, max_bytes: int = LOG_MAX_BYTES, backups: int = LOG_BACKUPS
    ) -> RotatingLog:
        key = path.resolve()
        with cls._registry_lock:
            log = cls._open.get(key)
            if log is None:
                log = cls._open[key] = cls(key, max_bytes, backups)
            log._users += 1
            return log

    def release(self) -> None:
        with self._registry_lock:
            self._users -= 1
            if self._users > 0:
                return
            del self._open[self.path]
        with self._lock:
            self._file.close()

    def write(self, data: bytes) -> None:
        with self._lock:
            if self._size and self._size + len(data) > self.max_bytes:
                self._rotate()
            self._file.write(data)
            self._file.flush()
            self._size += len(data)

    def _rotate(self) -> None:
        self._file.close()
        for i in range(self.backups - 1, 0, -1):
            older = self.path.with_name(f"{self.path.name}.{i}")
            if older.exists():
                older.replace(self.path.with_name(f"{self.path.name}.{i + 1}"))
        if self.backups:
            self.path.replace(self.path.with_name(f"{self.path.name}.1"))
        self._file = open(self.path, "wb")  # noqa: SIM115
        self._size = 0


class OutputPump:
    """Drains a child's output pipe into its log, keeping this run's latest output in memory.

    The thread never stops reading while the pipe is open (a failing disk only loses log lines),
    so the child cannot block on a full pipe. It is a daemon thread and holds the only read end:
    if the parent dies, the child's next write fails instead of hanging.
    """

    def __init__(self, fd: int, log_path: Path | None, keep_bytes: int = 64 * 1024) -> None:
        self._fd = fd
        self._log = RotatingLog.acquire(log_path) if log_path is not None else None
        self._keep = keep_bytes
        self._recent = bytearray()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name=f"log-pump-{fd}", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            while True:
                try:
                    chunk = os.read(self._fd, 65536)
                except OSError:
                    break
                if not chunk:
                    break
                with self._lock:
                    self._recent += chunk
                    if len(self._recent) > self._keep:
                        del self._recent[: len(self._recent) - self._keep]
                if self._log is not None:
                    try:
                        self._log.write(chunk)
                    except OSError:
                        pass
        finally:
            os.close(self._fd)
            if self._log is not None:
                self._log.release()

    def finish(self, timeout_s: float = 2.0) -> None:
        """Wait for the child's last words (EOF), unless grandchildren keep the pipe open."""
        self._thread.join(timeout_s)

    def text(self) -> str:
        with self._lock:
            return self._recent.decode(errors="replace")


def spawn(
    cmd: Sequence[str],
    log_path: Path | None,
    *,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
) -> tuple[subprocess.Popen, OutputPump]:
    """Start ``cmd`` in its own session (the terminal's Ctrl-C stays with the parent, which decides
    the stop order), its output piped into ``log_path``."""
    read_end, write_end = os.pipe()
    try:
        process = subprocess.Popen(
            list(cmd),
            env=dict(env) if env is not None else None,
            stdin=subprocess.DEVNULL,
            stdout=write_end,
            stderr=write_end,
            start_new_session=True,
            cwd=cwd,
        )
    except BaseException:
        os.close(read_end)
        raise
    finally:
        os.close(write_end)
    return process, OutputPump(read_end, log_path)


def exit_description(returncode: int) -> str:
    if returncode < 0:
        try:
            return f"killed by {signal.Signals(-returncode).name}"
        except ValueError:
            return f"killed by signal {-returncode}"
    return f"exit code {returncode}"


def last_lines(text: str, max_lines: int) -> str:
    return "\n".join(text.rstrip("\n").splitlines()[-max_lines:])


def reap(process: subprocess.Popen) -> int | None:
    """The exit code once ``process`` has exited, after killing what is left of its process group
    (a worker's nightly run, uvicorn's workers): orphans would hold ports, locks and the log pipe.

    The group is killed while the leader is still an unreaped zombie, so its pid, which is the
    group id, cannot have been reused by an unrelated process.
    """
    if process.returncode is not None:
        return process.returncode
    try:
        exited = os.waitid(os.P_PID, process.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
    except ChildProcessError:
        return process.poll()
    if exited is None:
        return None
    kill_group(process.pid)
    return process.wait()


def kill_group(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def terminate(process: subprocess.Popen, timeout_s: float) -> None:
    """SIGTERM the leader and give it ``timeout_s`` to stop its own children; then SIGKILL."""
    if reap(process) is not None:
        return
    process.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + timeout_s
    while reap(process) is None:
        if time.monotonic() > deadline:
            kill_group(process.pid)
            process.wait()
            return
        time.sleep(0.05)


class ManagedProcess:
    """A ``stockpulse`` subcommand run as a child process with its own rotated log.

    ``start`` may be called again after the child died: each call is a new run, and
    :meth:`log_tail` covers the current run only.
    """

    def __init__(self, name: str, args: list[str], env: Mapping[str, str], log_path: Path) -> None:
        self.name = name
        self.args = args
        self.env = dict(env)
        self.log_path = log_path
        self.process: subprocess.Popen | None = None
        self._pump: OutputPump | None = None
        self._asked_at: float | None = None

    def start(self) -> None:
        self.process, self._pump = spawn(
            [sys.executable, "-m", "ops.cli", *self.args],
            self.log_path,
            env={**os.environ, **self.env},
            cwd=Path(__file__).resolve().parent.parent,
        )

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.running and self.process is not None else None

    @property
    def running(self) -> bool:
        return self.process is not None and reap(self.process) is None

    def exit_status(self) -> str | None:
        """None while running; otherwise how the current run ended."""
        if self.process is None:
            return "not started"
        code = reap(self.process)
        return None if code is None else exit_description(code)

    def ask_to_stop(self) -> None:
        """SIGTERM without waiting; :meth:`stop` then waits for it, counting from now."""
        if self.running:
            assert self.process is not None
            self.process.send_signal(signal.SIGTERM)
            self._asked_at = time.monotonic()

    def stop(self, timeout_s: float = 15) -> None:
        if self.process is None:
            return
        if self._asked_at is not None:
            timeout_s = max(timeout_s - (time.monotonic() - self._asked_at), 0.0)
            self._asked_at = None
        terminate(self.process, timeout_s)
        if self._pump is not None:
            self._pump.finish()

    def kill(self) -> None:
        """SIGKILL: no chance to clean up, as in a crash."""
        if self.running:
            assert self.process is not None
            kill_group(self.process.pid)
            self.process.wait()

    def log_tail(self, chars: int = 3000) -> str:
        """The end of what the current run wrote (complete once it has exited)."""
        if self._pump is None:
            return ""
        if not self.running:
            self._pump.finish()
        return self._pump.text()[-chars:]

    def recent_output(self, max_lines: int) -> str:
        return last_lines(self.log_tail(64 * 1024), max_lines)
