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


def test_a_time_zone_is_a_place_name_of_the_tz_database() -> None:
    from web.alert_settings import check_time_zone

    assert check_time_zone("Europe/Berlin") == "Europe/Berlin"
    assert check_time_zone(" ") is None  # the shop's own
    for name in ("Mars/Base", "posixrules", "right/UTC", "localtime", "Factory"):
        with pytest.raises(ValueError, match="unknown time zone"):
            check_time_zone(name)
