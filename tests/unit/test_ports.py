"""Ports picked for local servers: free, and never one an outgoing connection can be given."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from ops import embedded
from ops.embedded import ephemeral_port_range, free_port


def bindable(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def test_picked_ports_are_free_and_outside_the_ephemeral_range() -> None:
    low, high = ephemeral_port_range()
    ports = [free_port() for _ in range(50)]
    assert all(not low <= port <= high for port in ports)
    assert all(embedded.LOWEST_PICKED_PORT <= port <= 65535 for port in ports)
    assert all(bindable(port) for port in ports)


def test_a_port_in_use_is_not_picked(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    # Leave two ports outside the range, one of them held by a listening server: forty picks
    # never return it (a picker that did not check would, with odds 1 - 2**-40).
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        port = held.getsockname()[1]
        held.listen()
        range_file = tmp_path / "ip_local_port_range"
        range_file.write_text(f"{port + 1}\t65535\n")
        monkeypatch.setattr(embedded, "EPHEMERAL_RANGE_FILE", range_file)
        monkeypatch.setattr(embedded, "LOWEST_PICKED_PORT", port - 1)
        monkeypatch.setattr(embedded, "NARROWEST_WINDOW", 1)
        picked = {free_port() for _ in range(40)}
    assert port not in picked
    assert all(bindable(p) for p in picked)


def test_an_unreadable_range_falls_back_to_linux_default(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(embedded, "EPHEMERAL_RANGE_FILE", tmp_path / "missing")
    assert ephemeral_port_range() == (32768, 60999)


def test_a_port_is_handed_out_once(monkeypatch: pytest.MonkeyPatch) -> None:
    # A stack picks its web, database and broker ports before any of them binds: all free at
    # that moment, so only the picker itself can keep them apart.
    monkeypatch.setattr(embedded, "_handed_out", set())
    monkeypatch.setattr(embedded, "LOWEST_PICKED_PORT", ephemeral_port_range()[0] - 40)
    monkeypatch.setattr(embedded, "NARROWEST_WINDOW", 1)
    monkeypatch.setattr(
        embedded, "ephemeral_port_range", lambda: (ephemeral_port_range()[0], 65535)
    )
    picked = [free_port() for _ in range(30)]
    assert len(set(picked)) == 30
