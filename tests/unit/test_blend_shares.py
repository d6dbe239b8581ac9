"""The product page's blend line: whole percentages that add up to 100."""

from __future__ import annotations

from web.product import blend_shares


def test_the_shares_add_up_to_a_hundred_and_a_trace_is_not_shown_at_zero() -> None:
    # Rounded one by one these read 33 + 33 + 33 = 99, and the trace as "tsb 0 %".
    shares = blend_shares({"ets": 1 / 3, "theta": 1 / 3, "prophet": 0.331, "tsb": 0.002})
    assert sum(s["percent"] for s in shares) == 100
    assert [s["model"] for s in shares] == ["ets", "theta", "prophet"]
    assert blend_shares({"ets": 0.675, "shop": 0.325}) == [
        {"model": "ets", "percent": 68},
        {"model": "shop", "percent": 32},
    ]
    assert blend_shares({}) == []
