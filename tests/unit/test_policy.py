from __future__ import annotations

import math

import pytest

from models.policy import (
    abc_classes,
    dead_stock_window,
    is_overstock,
    project_stockout,
    reorder_point,
    reorder_quantity,
    safety_stock,
    sales_velocity,
    service_level_z,
)


@pytest.mark.parametrize(
    ("level", "z"), [(0.90, 1.2816), (0.95, 1.6449), (0.975, 1.9600), (0.99, 2.3263)]
)
def test_z_matches_the_standard_normal_table(level: float, z: float) -> None:
    assert service_level_z(level) == pytest.approx(z, abs=1e-4)


def test_safety_stock_with_lead_time_uncertainty_textbook_example() -> None:
    # Chopra & Meindl's example: weekly demand 2,500 (σ 500), lead time 7 weeks (σ 7 weeks),
    # σ of lead-time demand = √(7·500² + 2500²·7²) = 17,550; at a 90 % cycle service level the
    # safety inventory is about 22,491 units.
    sigma = math.sqrt(7 * 500**2 + 2500**2 * 7**2)
    assert sigma == pytest.approx(17_550, abs=1)
    ss = safety_stock(0.90, demand_sd=500, lead_time_days=7, demand_mean=2500, lead_time_sd_days=7)
    assert ss == pytest.approx(22_491, abs=2)


def test_fixed_lead_time_safety_stock_and_reorder_point() -> None:
    ss = safety_stock(0.95, demand_sd=20, lead_time_days=16)
    assert ss == pytest.approx(1.6449 * 20 * 4, abs=0.01)
    assert reorder_point(100 * 16, ss) == pytest.approx(1600 + ss)


def test_velocity_ignores_out_of_stock_days_unless_overselling() -> None:
    assert sales_velocity([3, 3, 0, 0], in_stock=[True, True, False, False]) == 3.0
    assert sales_velocity([3, 3, 0, 0]) == 1.5
    assert sales_velocity([0, 0], in_stock=[False, False]) == 0.0
    with pytest.raises(ValueError):
        sales_velocity([1, 2], in_stock=[True])


def test_reorder_quantity_orders_up_to_target_cover() -> None:
    assert reorder_quantity(75, safety=5, on_hand=20) == 60
    assert reorder_quantity(75, safety=5, on_hand=200) == 0
    assert reorder_quantity(3.5, safety=0, on_hand=0) == 4  # rounds up


def test_an_order_covers_the_lead_time_and_then_the_target_cover() -> None:
    """A SKU below its reorder point was told to order 0 when its lead time (45 days) was
    longer than its target cover (30), and every order fell short by the lead time's demand
    (an outside test)."""
    from models.policy import inventory_plan

    def plan(stock: float, lead: int, cover: int) -> tuple[float, int]:
        p = inventory_plan(
            stock,
            [6.0] * 90,
            [0.0] * 90,
            lead_time_days=lead,
            service_level=0.95,
            target_cover_days=cover,
            overstock_days=180,
            days_since_last_sale=1,
        )
        return p.reorder_point, p.reorder_quantity

    point, quantity = plan(200, lead=45, cover=30)
    assert point == 270 and quantity == 75 * 6 - 200  # stock below its reorder point: order
    # Past the forecast's 90 days, at its last weeks' level.
    assert plan(0, lead=60, cover=60)[1] == 120 * 6
    # Enough on hand for the lead time and the cover: nothing to order.
    assert plan(500, lead=14, cover=30)[1] == 0


def test_stockout_projection_counts_incoming_and_fractional_days() -> None:
    assert project_stockout(5, [2, 2, 2], incoming=0).days_of_cover == pytest.approx(2.5)
    assert project_stockout(5, [2, 2, 2, 2], incoming=2).days_of_cover == pytest.approx(3.5)
    assert project_stockout(-3, [2, 2]).days_of_cover == 0.0  # oversold: out now
    assert project_stockout(5, [0, 0]).days_of_cover is None
    assert project_stockout(0, [0, 0]).days_of_cover == 0.0  # nothing to sell: out now


def test_overstock_and_dead_stock() -> None:
    assert is_overstock(200, stock=50, threshold_days=120)
    assert is_overstock(None, stock=50, threshold_days=120)  # stock but no demand
    assert not is_overstock(None, stock=0, threshold_days=120)
    assert dead_stock_window(None, stock=3) == 90
    assert dead_stock_window(30, stock=3) == 30
    assert dead_stock_window(120, stock=0) is None


def test_abc_classes_follow_the_80_15_5_split() -> None:
    revenue = {f"s{i}": v for i, v in enumerate([500, 300, 100, 50, 30, 20])}  # total 1000
    assert abc_classes(revenue) == {
        "s0": "A",
        "s1": "A",
        "s2": "B",
        "s3": "B",
        "s4": "C",
        "s5": "C",
    }
    assert abc_classes({}) == {}
