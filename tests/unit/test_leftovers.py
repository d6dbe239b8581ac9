"""The next `up` finds what a killed one left running by its pid files, and only that."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import pytest

from ops.embedded import serves_cluster
from ops.leftovers import AnotherUp, stop_leftovers, write_up_pid


def _sleeper() -> subprocess.Popen:
    return subprocess.Popen(["sleep", "60"], start_new_session=True)


def test_a_killed_ups_parts_are_stopped_and_their_pid_files_cleared(tmp_path: Path) -> None:
    worker, web = _sleeper(), _sleeper()
    (tmp_path / "worker.pid").write_text(f"{worker.pid}\n")
    (tmp_path / "web.pid").write_text(f"{web.pid}\n")
    said: list[str] = []
    assert stop_leftovers(tmp_path, said.append) == ["web", "worker"]  # the web first
    assert worker.wait(5) is not None and web.wait(5) is not None
    assert not list(tmp_path.glob("*.pid"))
    assert "left running by an `up` that was killed" in said[0]


def test_a_pid_file_naming_a_later_or_dead_process_is_not_obeyed(tmp_path: Path) -> None:
    reused = _sleeper()
    stale = tmp_path / "worker.pid"
    stale.write_text(f"{reused.pid}\n")
    day_ago = time.time() - 86_400
    os.utime(stale, (day_ago, day_ago))  # written before the process started: pid reused
    gone = subprocess.Popen(["true"])
    gone.wait()
    (tmp_path / "web.pid").write_text(f"{gone.pid}\n")
    (tmp_path / "broker.pid").write_text("not a pid\n")
    try:
        assert stop_leftovers(tmp_path, lambda _: None) == []
        assert reused.poll() is None
    finally:
        reused.kill()
        reused.wait()


def test_an_up_still_running_on_the_data_directory_is_left_alone(tmp_path: Path) -> None:
    other_up, worker = _sleeper(), _sleeper()
    (tmp_path / "up.pid").write_text(f"{other_up.pid}\n")
    (tmp_path / "worker.pid").write_text(f"{worker.pid}\n")
    try:
        with pytest.raises(AnotherUp, match=f"pid {other_up.pid}"):
            stop_leftovers(tmp_path, lambda _: None)
        assert worker.poll() is None and other_up.poll() is None
    finally:
        for process in (other_up, worker):
            process.kill()
            process.wait()
    # Our own pid file is ours, not another up's.
    assert write_up_pid(tmp_path).read_text() == f"{os.getpid()}\n"
    (tmp_path / "worker.pid").unlink()
    assert stop_leftovers(tmp_path, lambda _: None) == []


def test_a_postmaster_pid_file_naming_anything_but_our_server_stops_nothing(
    tmp_path: Path,
) -> None:
    """PostgreSQL's own postmaster.pid outlives a killed server; the pid it names may be any
    process by now (here: a sleeper working in the cluster's directory, and a dead pid)."""
    cluster = tmp_path / "pg"
    cluster.mkdir()
    stranger = subprocess.Popen(["sleep", "60"], cwd=cluster)
    try:
        for named in (stranger.pid, 2**22 + 7):
            (cluster / "postmaster.pid").write_text(f"{named}\n{cluster}\n")
            assert not serves_cluster(named, cluster)
            assert stop_leftovers(tmp_path / "run", lambda _: None, postgres_dir=cluster) == []
        assert stranger.poll() is None
    finally:
        stranger.kill()
        stranger.wait()
