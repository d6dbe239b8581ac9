"""Keep the embedded stack's processes running: whatever dies is restarted, with backoff.

A crash of one part (a worker bug, an OOM kill, an operator's ``kill -9``) must not take the
others down: PostgreSQL keeps the truth and the web app keeps acknowledging webhooks while the
worker comes back. Only the operator's stop request stops everything.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, runtime_checkable


class Child(Protocol):
    """A supervised process. ``start`` may be called again after it died, as a new run."""

    @property
    def name(self) -> str: ...

    @property
    def pid(self) -> int | None:
        """The current run's pid while it runs."""

    def start(self) -> None:
        """Return once it is up; raise if it cannot be."""

    def exit_status(self) -> str | None:
        """None while running; otherwise how the run ended ("exit code 1", "killed by SIGKILL")."""

    def stop(self) -> None: ...

    def recent_output(self, max_lines: int) -> str:
        """The end of what the current run logged, nothing from earlier runs."""


@runtime_checkable
class AskedToStop(Protocol):
    """A child that can be told to stop without waiting for it (:meth:`Supervisor.stop_all`)."""

    def ask_to_stop(self) -> None: ...


@dataclass(frozen=True)
class RestartPolicy:
    """Exponential backoff: a crash loop costs little, a rare crash is repaired at once."""

    initial_s: float = 0.5
    max_s: float = 30.0
    reset_after_s: float = 60.0  # up this long: the next crash is a new incident

    def delay(self, failures: int) -> float:
        return float(min(self.max_s, self.initial_s * 2 ** min(failures, 32)))


@dataclass
class _Entry:
    child: Child
    after_start: Callable[[], None] | None
    before_start: Callable[[], None] | None = None
    failures: int = 0
    started_at: float = 0.0
    pid: int | None = None
    restart_at: float | None = None  # set while it is down
    held: bool = False  # stopped until released: not restarted when found down


def _say(line: str) -> None:
    print(line, flush=True)


class Supervisor:
    """Polls its children; restarts one that died, after its backoff delay.

    Every running child's pid is in ``run_dir/<name>.pid`` so operators and tests can find it;
    the file is removed as soon as the process is seen dead, so it never names a pid that may
    already belong to someone else.
    """

    def __init__(
        self,
        run_dir: Path | None = None,
        *,
        policy: RestartPolicy | None = None,
        say: Callable[[str], None] = _say,
        clock: Callable[[], float] = time.monotonic,
        tail_lines: int = 40,
    ) -> None:
        self.run_dir = run_dir
        self.policy = policy or RestartPolicy()
        self._say = say
        self._clock = clock
        self.tail_lines = tail_lines
        self._entries: list[_Entry] = []

    @property
    def children(self) -> list[Child]:
        return [e.child for e in self._entries]

    def adopt(
        self,
        child: Child,
        *,
        before_start: Callable[[], None] | None = None,
        after_start: Callable[[], None] | None = None,
    ) -> None:
        """Watch ``child``, which is already running. ``before_start`` and ``after_start`` run
        around each restart, before it counts as up (a restart failing in either is retried
        like any other)."""
        entry = _Entry(child, after_start, before_start)
        self._entries.append(entry)
        self._mark_up(entry)

    def start(
        self,
        child: Child,
        *,
        before_start: Callable[[], None] | None = None,
        after_start: Callable[[], None] | None = None,
    ) -> None:
        if before_start is not None:
            before_start()
        child.start()
        if after_start is not None:
            after_start()
        self.adopt(child, before_start=before_start, after_start=after_start)

    def hold(self, name: str, until: str) -> None:
        """Stop ``name`` now and keep it stopped until :meth:`release`; nothing if it is not
        watched yet or held already. For a ``before_start`` hook: a consumer must not reach a
        broker that forgot its log before that broker is ready for it."""
        for entry in self._entries:
            if entry.child.name != name or entry.held:
                continue
            entry.held = True
            if entry.restart_at is None:
                self._say(f"stopping {name} until {until}")
                try:
                    entry.child.stop()
                except Exception as exc:
                    self._say(f"could not stop {name}: {exc}")
                self._remove_pid_file(name)
            entry.restart_at = None

    def release(self, name: str) -> None:
        """Start a held ``name`` at the next :meth:`check` (not counted as a failure); for an
        ``after_start`` hook, whose child counts as up without waiting for this one."""
        for entry in self._entries:
            if entry.child.name == name and entry.held:
                entry.held = False
                entry.restart_at = self._clock()

    def check(self, stop: threading.Event | None = None) -> None:
        """One pass: notice deaths, perform the restarts that are due."""
        for entry in self._entries:
            if stop is not None and stop.is_set():
                return
            if entry.held:
                continue
            if entry.restart_at is None:
                status = entry.child.exit_status()
                if status is None:
                    continue
                self._died(entry, status)
            if entry.restart_at is not None and self._clock() >= entry.restart_at:
                self._restart(entry)

    def run(self, stop: threading.Event, poll_s: float = 0.5) -> None:
        while not stop.wait(poll_s):
            self.check(stop)

    def stop_all(
        self,
        pause_before: Mapping[str, float] | None = None,
        together: Collection[str] = (),
    ) -> list[str]:
        """Stop in reverse start order; ``pause_before`` lets a consumer drain before it goes.
        The children named in ``together`` are asked to stop at once when the first of them is
        reached, so their shutdowns overlap: with the database hung each waits out its own
        deadline, and one after the other they would add up. Returns the names of children
        still running after their stop; their pid files stay, for the next `up` to find."""
        still_running = []
        group = [e for e in self._entries if e.child.name in together]
        for entry in reversed(self._entries):
            name = entry.child.name
            if entry in group[-1:]:  # the group's first to stop: pause for any, ask all
                self._pause(group, pause_before)
                for member in group:
                    if isinstance(member.child, AskedToStop):
                        member.child.ask_to_stop()
            elif entry not in group:
                self._pause([entry], pause_before)
            try:
                entry.child.stop()
            except Exception as exc:
                self._say(f"could not stop {name}: {exc}")
            if entry.child.pid is None:
                self._remove_pid_file(name)
            else:
                still_running.append(name)
        return still_running

    @staticmethod
    def _pause(entries: list[_Entry], pause_before: Mapping[str, float] | None) -> None:
        running = [e for e in entries if e.restart_at is None and not e.held]
        pause = max(((pause_before or {}).get(e.child.name, 0.0) for e in running), default=0.0)
        if pause:
            time.sleep(pause)

    def _mark_up(self, entry: _Entry) -> None:
        entry.restart_at = None
        entry.started_at = self._clock()
        entry.pid = entry.child.pid
        if entry.pid is not None:
            self._write_pid_file(entry.child.name, entry.pid)

    def _backoff(self, entry: _Entry) -> float:
        delay = self.policy.delay(entry.failures)
        entry.failures += 1
        entry.restart_at = self._clock() + delay
        return delay

    def _died(self, entry: _Entry, status: str) -> None:
        name = entry.child.name
        self._remove_pid_file(name)
        uptime = self._clock() - entry.started_at
        if uptime >= self.policy.reset_after_s:
            entry.failures = 0
        delay = self._backoff(entry)
        output = entry.child.recent_output(self.tail_lines)
        self._say(
            f"{name} (pid {entry.pid}) died after {uptime:.0f} s up: {status}; restarting it"
            f" in {delay:g} s. " + ("Its last output:" if output.strip() else "It logged nothing.")
        )
        if output.strip():
            self._say(_indent(output))

    def _restart(self, entry: _Entry) -> None:
        name = entry.child.name
        try:
            if entry.before_start is not None:
                entry.before_start()
            entry.child.start()
            if entry.after_start is not None:
                entry.after_start()
        except Exception as exc:
            try:
                entry.child.stop()  # half-started: do not leave it holding ports or files
            except Exception:
                pass
            delay = self._backoff(entry)
            self._say(f"{name} did not start; retrying in {delay:g} s:")
            self._say(_indent("\n".join(str(exc).strip().splitlines()[-10:]) or repr(exc)))
            return
        self._mark_up(entry)
        self._say(f"{name} restarted (pid {entry.pid}).")

    def _pid_file(self, name: str) -> Path | None:
        return None if self.run_dir is None else self.run_dir / f"{name}.pid"

    def _write_pid_file(self, name: str, pid: int) -> None:
        path = self._pid_file(name)
        if path is None:
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".pid.tmp")
        tmp.write_text(f"{pid}\n")
        os.replace(tmp, path)  # readers never see a half-written pid

    def _remove_pid_file(self, name: str) -> None:
        path = self._pid_file(name)
        if path is not None:
            path.unlink(missing_ok=True)


def _indent(text: str) -> str:
    return "\n".join(f"    {line}" for line in text.splitlines())
