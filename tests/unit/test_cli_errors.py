"""Failures an operator can fix are a line, not a traceback (ops.cli._Commands)."""

from __future__ import annotations

from pathlib import Path

import click
import httpx
import pytest
from click.testing import CliRunner

from connectors.settings import BadSetting
from connectors.shopify.admin import AdminError, Unavailable
from ops.cli import _Commands
from ops.stack import Stack


def _failing(error: BaseException) -> click.Group:
    group = _Commands()

    @group.command("reconcile")
    def reconcile() -> None:
        raise error

    return group


def test_shopify_away_or_refusing_is_told_in_a_line() -> None:
    """`stockpulse reconcile` with Shopify unreachable printed a page of httpx traceback (an
    outside test)."""
    cases = [
        (Unavailable("gave up after 5 attempts"), "Shopify could not be reached"),
        (httpx.ConnectError("connection refused"), "Shopify could not be reached"),
        (AdminError("access denied"), "Shopify refused: access denied"),
    ]
    for error, says in cases:
        result = CliRunner().invoke(_failing(error), ["reconcile"])
        assert result.exit_code == 1 and says in result.output, result.output
        assert result.exc_info is None or result.exc_info[0] is SystemExit


def test_a_bug_keeps_its_traceback() -> None:
    result = CliRunner().invoke(_failing(KeyError("oops")), ["reconcile"])
    assert isinstance(result.exception, KeyError)


def test_a_shops_text_reaches_the_terminal_with_its_control_characters_escaped() -> None:
    """A signed product titled with an OSC sequence set the operator's window title through
    `stockpulse reconcile`, and a SKU with a newline faked a line (an outside test)."""
    from ops.cli import _printable

    title = "TTY\x1b[31mRED\x1b[0m\x1b]0;PWNED\x07 line\nfake\u2028 ok · Übergröße"
    shown = _printable(title)
    assert not any(ch in shown for ch in "\x1b\x07\n\u2028"), shown
    assert shown.startswith("TTY\\x1b[31mRED") and shown.endswith(" ok · Übergröße")


def test_a_damaged_key_file_is_named_in_a_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`up` on a data directory whose encryption.key was damaged ended in a page of traceback
    that blamed STOCKPULSE_ENCRYPTION_KEYS, not the file (an outside test)."""
    monkeypatch.delenv("STOCKPULSE_ENCRYPTION_KEYS", raising=False)
    stack = Stack(tmp_path, durable=False)
    stack.key_file.write_text("not-a-key\n")
    with pytest.raises(BadSetting) as raised:
        stack.encryption_keys()
    answer = CliRunner().invoke(_failing(raised.value), ["reconcile"])
    assert answer.exit_code == 1
    assert f"{stack.key_file} does not hold a base64 AES-256 key" in answer.output
    assert "Traceback" not in answer.output
