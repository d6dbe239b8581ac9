from __future__ import annotations

import pytest

from models.inventory import average_daily_demand, days_of_cover


def test_days_of_cover() -> None:
    assert days_of_cover(40, 2.0) == 20.0
    assert days_of_cover(-3, 2.0) == 0.0  # oversold counts as none left
    assert days_of_cover(None, 2.0) is None
    assert days_of_cover(5, 0) is None


def test_average_daily_demand_needs_a_window() -> None:
    assert average_daily_demand(14, 7) == 2.0
    with pytest.raises(ValueError):
        average_daily_demand(1, 0)
