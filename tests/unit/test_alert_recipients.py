"""Alert recipients as stored: validated, and each mailbox once."""

from __future__ import annotations

import pytest

from web.alert_settings import normalise_recipients


def test_a_mailbox_is_stored_once_whatever_the_case_in_the_first_spelling_given() -> None:
    given = ["Bob@Example.com", "bob@example.com", " ann@x.org ", "BOB@EXAMPLE.COM"]
    assert normalise_recipients(given) == ["Bob@example.com", "ann@x.org"]


def test_bad_addresses_are_named() -> None:
    with pytest.raises(ValueError, match="not-an-address"):
        normalise_recipients(["ok@example.com", "not-an-address"])
