"""Forecasts owed after batches, and the outbox rows that wait for them."""

from __future__ import annotations

from streams.context import OwedForecasts


def test_outbox_rows_wait_until_their_round_is_paid_and_come_back_when_it_fails() -> None:
    owed = OwedForecasts()
    owed.owe("a", 1, [10])
    owed.owe("a", 1, [11])  # the same SKU changed again: one forecast, both rows wait for it
    owed.owe("a", 2, [12])
    owed.owe("b", 3, [13])
    shop, by_sku = owed.take_shop()
    assert (shop, by_sku) == ("a", {1: [10, 11], 2: [12]})
    # In the round: still this worker's, so the outbox timer does not take them as stale.
    assert owed.outbox_ids() == {10, 11, 12, 13}
    owed.owe("a", 2, [14])  # a batch committed during the round: owed for the next one
    owed.put_back(shop, by_sku)  # the round failed
    assert owed.take_shop() == ("b", {3: [13]})
    shop, by_sku = owed.take_shop()
    assert by_sku == {2: [14, 12], 1: [10, 11]}
    assert sorted(owed.paid(by_sku)) == [10, 11, 12, 14]
    assert owed.outbox_ids() == {13} and not owed
