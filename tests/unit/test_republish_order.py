"""Which shops' forecasts the worker republishes, and in what order."""

from __future__ import annotations

from datetime import date

from streams.forecast_publishing import due_in_order

TODAY, YESTERDAY = date(2026, 12, 7), date(2026, 12, 6)


def test_a_settings_change_goes_before_runs_and_closed_days_and_nothing_unchanged_is_due() -> None:
    states = {
        "a-day-closed": ((TODAY, 4, 1), (YESTERDAY, 4, 1)),
        "b-never-published": ((TODAY, None, 0), None),
        "c-run-committed": ((TODAY, 5, 1), (TODAY, 4, 1)),
        "d-unchanged": ((TODAY, 4, 2), (TODAY, 4, 2)),
        # Its day closed too, but the merchant changed a setting: that is why it goes first.
        "z-settings-changed": ((TODAY, 4, 3), (YESTERDAY, 4, 2)),
    }
    assert [shop for shop, _ in due_in_order(states, skipped=set())] == [
        "z-settings-changed",
        "c-run-committed",
        "a-day-closed",
        "b-never-published",
    ]
    # Each is republished for the state read now, which is what gets recorded.
    assert dict(due_in_order(states, set()))["c-run-committed"] == (TODAY, 5, 1)
    assert "c-run-committed" not in dict(due_in_order(states, skipped={"c-run-committed"}))
