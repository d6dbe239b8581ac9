"""The write path on its own: idempotent, order-safe, bounded in time, shop-bound."""

from __future__ import annotations

import itertools
import random
from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from connectors.db import inbox, ledger, shops
from connectors.db.pool import DictConnection
from connectors.db.shops import install_shop
from connectors.kafka.topics import SkuEvent

_ids = itertools.count(int(datetime.now(UTC).timestamp() * 1000) * 1000)
NOW = datetime.now(UTC)


def _event(shop: str, kind: str, event_id: str = "e", **data: object) -> SkuEvent:
    return SkuEvent(kind=kind, shop=shop, event_id=event_id, received_at=NOW.isoformat(), data=data)


def sale(shop: str, line: int, variant: int, qty: int, *, cancelled: bool = False) -> SkuEvent:
    return _event(
        shop,
        "sale_line",
        line_item_id=line,
        order_id=line + 1,
        variant_id=variant,
        product_id=None,
        sku="S",
        title="t",
        quantity=qty,
        price="2.50",
        ordered_at=(NOW - timedelta(hours=1)).isoformat(),
        cancelled=cancelled,
        test=False,
    )


def refund(shop: str, refund_id: int, line: int, qty: int) -> SkuEvent:
    return _event(
        shop,
        "refund_line",
        refund_id=refund_id,
        line_item_id=line,
        quantity=qty,
        restocked=True,
        created_at=NOW.isoformat(),
    )


def stock(shop: str, item: int, available: int, at: datetime) -> SkuEvent:
    return _event(
        shop,
        "stock",
        inventory_item_id=item,
        location_id=1,
        available=available,
        updated_at=at.isoformat(),
    )


async def apply(conn: DictConnection, events: list[SkuEvent]) -> None:
    async with conn.transaction():
        await ledger.apply_events(conn, events)


async def units(conn: DictConnection, shop: str, variant: int) -> int:
    cur = await conn.execute(
        "SELECT coalesce(sum(units), 0) AS n FROM daily_demand WHERE shop = %s AND variant_id = %s",
        (shop, variant),
    )
    row = await cur.fetchone()
    assert row is not None
    return int(row["n"])


async def level(conn: DictConnection, shop: str, item: int) -> int | None:
    cur = await conn.execute(
        "SELECT available FROM inventory_levels WHERE shop = %s AND inventory_item_id = %s",
        (shop, item),
    )
    row = await cur.fetchone()
    return None if row is None else row["available"]


async def test_any_order_and_any_repetition_ends_in_the_same_numbers(
    conn: DictConnection, shop: str
) -> None:
    variant, line_a, line_b = next(_ids), next(_ids), next(_ids)
    events = [
        sale(shop, line_a, variant, 5),
        sale(shop, line_b, variant, 2),
        refund(shop, next(_ids), line_a, 2),
        sale(shop, line_b, variant, 2, cancelled=True),
    ]
    rng = random.Random(3)
    for _ in range(5):
        shuffled = events * 2
        rng.shuffle(shuffled)
        await apply(conn, shuffled)
    assert await units(conn, shop, variant) == 3  # 5 - 2 restocked; line b cancelled


async def test_events_of_one_kind_sent_together_each_name_the_skus_they_changed(
    conn: DictConnection, shop: str
) -> None:
    """Consecutive events of a kind go to the database as one statement: each must still be
    applied once, and each SKU's change must name the events that made it, in their order."""
    one, two, line_a, line_b, line_c = (next(_ids) for _ in range(5))

    def named(event: SkuEvent, event_id: str) -> SkuEvent:
        return event.model_copy(update={"event_id": event_id})

    events = [
        named(sale(shop, line_a, one, 5), "a"),
        named(sale(shop, line_b, two, 1), "b"),
        named(sale(shop, line_a, one, 5), "a-again"),
        named(refund(shop, next(_ids), line_b, 1), "b-refunded"),
        named(sale(shop, line_c, two, 4), "c"),
        named(sale(shop, next(_ids), one, 2), "d"),
    ]
    async with conn.transaction():
        changes, _ = await ledger.apply_events(conn, events)
    assert await units(conn, shop, one) == 7
    assert await units(conn, shop, two) == 4
    assert {t.variant_id: t.event_ids for t in changes} == {
        one: ["a", "d"],  # the repeat changed nothing
        two: ["b", "b-refunded", "c"],
    }


async def test_a_stale_level_never_overwrites_and_a_future_one_never_freezes(
    conn: DictConnection, shop: str
) -> None:
    item = next(_ids)
    await apply(conn, [stock(shop, item, 10, NOW)])
    await apply(conn, [stock(shop, item, 99, NOW - timedelta(hours=3))])
    assert await level(conn, shop, item) == 10
    # The SQL functions clamp to the database clock as well as the normaliser does.
    await apply(conn, [stock(shop, item, 500, datetime(9999, 1, 1, tzinfo=UTC))])
    assert await level(conn, shop, item) == 500
    await apply(conn, [stock(shop, item, 7, datetime.now(UTC) + timedelta(minutes=6))])
    assert await level(conn, shop, item) == 7


async def test_a_level_shopify_no_longer_lists_goes_unless_it_changed_since_the_export_began(
    conn: DictConnection, shop: str
) -> None:
    item = next(_ids)
    export_began = NOW - timedelta(minutes=10)

    def gone(unchanged_since: datetime) -> SkuEvent:
        return _event(
            shop,
            "level_gone",
            inventory_item_id=item,
            location_id=1,
            unchanged_since=unchanged_since.isoformat(),
        )

    # A webhook since the export began is newer than the export: the level stays.
    await apply(conn, [stock(shop, item, 12, NOW - timedelta(minutes=5))])
    await apply(conn, [gone(export_began)])
    assert await level(conn, shop, item) == 12
    # Unchanged since: it goes, and its location's history ends at zero.
    await apply(conn, [gone(NOW), gone(NOW)])  # a repeat changes nothing more
    assert await level(conn, shop, item) is None
    cur = await conn.execute(
        "SELECT available FROM stock_history WHERE shop = %s AND inventory_item_id = %s"
        " ORDER BY ts DESC LIMIT 1",
        (shop, item),
    )
    assert (await cur.fetchone()) == {"available": 0}
    # Connected again later: its next level is applied as any other.
    await apply(conn, [stock(shop, item, 3, datetime.now(UTC))])
    assert await level(conn, shop, item) == 3


async def test_another_shops_ids_are_refused_with_a_clear_reason(
    conn: DictConnection, shop: str, database_url: str
) -> None:
    from connectors.db.shops import install_shop

    other = f"o{shop}"
    install_shop(database_url, other)
    variant, line = next(_ids), next(_ids)
    await apply(conn, [sale(shop, line, variant, 1)])
    with pytest.raises(psycopg.errors.UniqueViolation) as refused:
        await apply(conn, [sale(other, line, variant, 1)])
    assert "another shop" in ledger.describe(refused.value)
    assert await units(conn, other, variant) == 0


async def _on_an_app_of_its_own(conn: DictConnection, shop: str) -> None:
    await conn.execute(
        "INSERT INTO shop_credentials (shop, mode, client_id, client_secret)"
        " VALUES (%s, 'client_credentials', 'its-own-app', %s)",
        (shop, b"sealed secret"),
    )


async def test_a_shop_on_an_app_of_its_own_claims_no_other_shops_ids(
    conn: DictConnection, shop: str, database_url: str
) -> None:
    """Its merchant holds its webhook secret, so can sign any body: one with the ids another
    shop will use (variant ids are public on a storefront) kept that shop's sales and stock
    out for good, dead-lettered as "another shop's" (an outside test)."""
    squatter, later = f"s{shop}", f"l{shop}"
    for domain in (squatter, later):
        install_shop(database_url, domain)
    await _on_an_app_of_its_own(conn, squatter)
    variant, line, item = next(_ids), next(_ids), next(_ids)
    await apply(conn, [sale(squatter, line, variant, 5), stock(squatter, item, 1, NOW)])
    await apply(conn, [refund(squatter, next(_ids), line, 1)])
    # The shops on this deployment's app use the same ids, and theirs are applied.
    await apply(conn, [sale(shop, line, variant, 2), stock(shop, item, 60, NOW)])
    assert await units(conn, shop, variant) == 2 and await level(conn, shop, item) == 60
    assert await units(conn, squatter, variant) == 4 and await level(conn, squatter, item) == 1
    # Among those shops, which share one secret, an id still belongs to one shop: a body
    # replayed under another of their domains is refused.
    with pytest.raises(psycopg.errors.UniqueViolation) as refused:
        await apply(conn, [sale(later, line, variant, 7)])
    assert "another shop" in ledger.describe(refused.value)
    assert await units(conn, later, variant) == 0


async def test_a_shop_moving_to_the_shared_app_brings_no_claimed_ids_along(
    conn: DictConnection, shop: str, database_url: str
) -> None:
    """A row keeps the mark of the secret that signed it: a shop that claimed ids on an app of
    its own, then installed this deployment's app, kept another shop's genuine ids out again
    while migration 0041 moved its rows onto the shared list (an outside test)."""
    mover, later = f"m{shop}", f"l{shop}"
    for domain in (mover, later):
        install_shop(database_url, domain)
    await _on_an_app_of_its_own(conn, mover)
    claimed, variant = next(_ids), next(_ids)
    await apply(conn, [sale(mover, claimed, variant, 1)])
    await conn.execute(
        "UPDATE shop_credentials SET mode = 'authorization_code', client_secret = NULL"
        " WHERE shop = %s",
        (mover,),
    )
    await apply(conn, [sale(later, claimed, variant, 2)])
    assert await units(conn, later, variant) == 2
    # What it signs with the shared secret from now on is on the shared list like any shop's.
    own = next(_ids)
    await apply(conn, [sale(mover, own, next(_ids), 1)])
    with pytest.raises(psycopg.errors.UniqueViolation):
        await apply(conn, [sale(later, own, next(_ids), 1)])
    assert await units(conn, mover, variant) == 1


async def test_a_line_item_id_given_to_another_order_moves_no_units(
    conn: DictConnection, shop: str
) -> None:
    """An order reusing another order's line item id for another variant rewrote the first
    order's line: its SKU gained units it never sold (an outside test)."""
    line, first, second = next(_ids), next(_ids), next(_ids)
    await apply(conn, [edit(shop, line, first, 2, NOW - timedelta(hours=2))])
    later = edit(shop, line, second, 7, NOW - timedelta(hours=1))
    for reused in (later, later.model_copy(update={"data": {**later.data, "order_id": 1}})):
        with pytest.raises(psycopg.errors.IntegrityConstraintViolation) as refused:
            await apply(conn, [reused])
        reason = ledger.describe(refused.value)
        assert "already a line of another order" in reason and "CONTEXT" not in reason
    assert await units(conn, shop, first) == 2 and await units(conn, shop, second) == 0
    # The same line of the same order, edited, is applied as ever.
    await apply(conn, [edit(shop, line, first, 3, NOW - timedelta(hours=1))])
    assert await units(conn, shop, first) == 3


async def test_applying_an_event_clears_its_inbox_note(conn: DictConnection, shop: str) -> None:
    async with conn.transaction():
        (row,) = await inbox.insert(conn, [_delivery(shop)])
    assert row is not None
    async with conn.transaction():
        await inbox.mark_normalised(conn, [row.id], [(row.id, 0), (row.id, 1)])
    event = sale(shop, next(_ids), next(_ids), 1).model_copy(update={"inbox_id": row.id, "seq": 0})
    await apply(conn, [event])
    assert await conn.execute("SELECT 1") and await _notes(conn, row.id) == [1]
    async with conn.transaction():
        await ledger.dead_letter(
            conn, event.model_copy(update={"seq": 1}), ValueError("bad for ever")
        )
    assert await _notes(conn, row.id) == []


def _delivery(shop: str, event_id: str | None = None, signature: str = "sig") -> dict:
    return {
        "shop": shop,
        "topic": "orders/create",
        "event_id": event_id or f"ev-{next(_ids)}",
        "webhook_id": "w",
        "signature": signature,
        "triggered_at": None,
        "api_version": "2025-10",
        "payload": '{"id": 1}',
    }


async def _notes(conn: DictConnection, inbox_id: int) -> list[int]:
    cur = await conn.execute(
        "SELECT seq FROM inbox_pending WHERE inbox_id = %s ORDER BY seq", (inbox_id,)
    )
    return [r["seq"] for r in await cur.fetchall()]


def edit(shop: str, line: int, variant: int, qty: int, version: datetime) -> SkuEvent:
    event = sale(shop, line, variant, qty)
    return event.model_copy(update={"data": {**event.data, "version": version.isoformat()}})


async def test_order_edits_move_demand_once_and_a_late_older_version_never_undoes_them(
    conn: DictConnection, shop: str
) -> None:
    variant, line, removed = next(_ids), next(_ids), next(_ids)
    created = NOW - timedelta(hours=2)
    await apply(
        conn, [edit(shop, line, variant, 5, created), edit(shop, removed, variant, 2, created)]
    )
    assert await units(conn, shop, variant) == 7
    edited = NOW - timedelta(hours=1)
    # orders/updated: the first line lowered to 3, the second removed (current quantity 0).
    for _ in range(2):  # redelivered
        await apply(
            conn, [edit(shop, line, variant, 3, edited), edit(shop, removed, variant, 0, edited)]
        )
    assert await units(conn, shop, variant) == 3
    # The orders/create webhook arrives hours late: older version, changes nothing.
    await apply(
        conn, [edit(shop, line, variant, 5, created), edit(shop, removed, variant, 2, created)]
    )
    assert await units(conn, shop, variant) == 3
    # A restocked refund of the edited line still counts against what it holds now.
    await apply(conn, [refund(shop, next(_ids), line, 1)])
    assert await units(conn, shop, variant) == 2


def ordered(
    shop: str, line: int, variant: int, ordered_qty: int, current: int, version: datetime
) -> SkuEvent:
    event = edit(shop, line, variant, current, version)
    return event.model_copy(update={"data": {**event.data, "ordered_quantity": ordered_qty}})


def refunded(shop: str, line: int, qty: int, restocked: bool) -> SkuEvent:
    event = refund(shop, next(_ids), line, qty)
    return event.model_copy(update={"data": {**event.data, "restocked": restocked}})


# Shopify's current quantity excludes every refunded and removed unit, but a refund webhook
# may come before, after or without the order update showing it.
@pytest.mark.parametrize(
    ("steps", "expected"),
    [
        # A restocked refund of 1 of 2, before and after the update showing it.
        ([("refund", 1, True)], 1),
        ([("refund", 1, True), ("update", 2, 1)], 1),
        ([("update", 2, 1), ("refund", 1, True)], 1),
        # Goodwill (no restock): the sale stays counted, whichever came first.
        ([("refund", 1, False)], 2),
        ([("update", 2, 1), ("refund", 1, False)], 2),
        ([("refund", 1, False), ("update", 2, 1)], 2),
        # An edit removing one, then a restocked refund of the other.
        ([("update", 2, 1), ("refund", 1, True), ("update", 2, 0)], 0),
    ],
)
async def test_a_refund_is_subtracted_once_whether_or_not_the_current_quantity_shows_it(
    conn: DictConnection, shop: str, steps: list[tuple], expected: int
) -> None:
    variant, line = next(_ids), next(_ids)
    await apply(conn, [ordered(shop, line, variant, 2, 2, NOW - timedelta(hours=3))])
    for minute, step in enumerate(steps):
        if step[0] == "refund":
            await apply(conn, [refunded(shop, line, step[1], step[2])])
        else:
            version = NOW - timedelta(hours=2) + timedelta(minutes=minute)
            await apply(conn, [ordered(shop, line, variant, step[1], step[2], version)])
    assert await units(conn, shop, variant) == expected


def variant(shop: str, variant_id: int, updated_at: datetime, **more: object) -> SkuEvent:
    return _event(
        shop,
        "variant",
        variant_id=variant_id,
        product_id=variant_id + 1,
        sku="V",
        product_title="p",
        variant_title="v",
        inventory_item_id=variant_id + 2,
        price="1.00",
        tracked=True,
        updated_at=updated_at.isoformat(),
        **more,
    )


async def test_a_stock_level_belongs_to_the_shop_whose_variant_holds_its_item(
    conn: DictConnection, shop: str, database_url: str
) -> None:
    """Shops on the shared app share a signing secret: a shop's stock update replayed under
    another's domain and applied before the genuine one kept the level, and the genuine update
    was dead-lettered (an outside test's replay; one CI run)."""
    other = f"r{shop}"
    install_shop(database_url, other)
    holder, _, item = next(_ids), next(_ids), next(_ids)  # variant() holds its id + 2
    # Before the shop's product is known, the replay is taken: nothing tells it apart yet.
    await apply(conn, [stock(other, item, 999, NOW - timedelta(minutes=5))])
    await apply(conn, [variant(shop, holder, NOW - timedelta(minutes=4))])
    # The genuine update takes the level over, its history with it.
    await apply(conn, [stock(shop, item, 12, NOW - timedelta(minutes=3))])
    assert await level(conn, shop, item) == 12
    assert await level(conn, other, item) is None
    cur = await conn.execute(
        "SELECT count(*) AS n FROM stock_history WHERE shop = %s AND inventory_item_id = %s",
        (other, item),
    )
    row = await cur.fetchone()
    assert row is not None and row["n"] == 0
    # Once the shop's variant is known, a replay is refused from the start, whatever its time.
    with pytest.raises(psycopg.errors.UniqueViolation) as refused:
        await apply(conn, [stock(other, item, 0, NOW)])
    assert "another shop" in ledger.describe(refused.value)
    assert await level(conn, shop, item) == 12 and await level(conn, other, item) is None
    # A shop on an app of its own signs its own bodies: its variants claim no shared level.
    squatter = f"q{shop}"
    install_shop(database_url, squatter)
    await _on_an_app_of_its_own(conn, squatter)
    claimed, _, its_item = next(_ids), next(_ids), next(_ids)
    await apply(conn, [variant(squatter, claimed, NOW - timedelta(minutes=2))])
    await apply(conn, [stock(shop, its_item, 7, NOW - timedelta(minutes=1))])
    assert await level(conn, shop, its_item) == 7


async def test_a_refund_belongs_to_the_shop_whose_order_holds_its_line(
    conn: DictConnection, shop: str, database_url: str
) -> None:
    """A shop's signed refund replayed under another shop and applied first kept the refund
    line, and the genuine one was dead-lettered: with a restock, the shop counted the
    refunded units as sold for good (an outside test)."""
    other = f"f{shop}"
    install_shop(database_url, other)
    variant, line, refund_id = next(_ids), next(_ids), next(_ids)
    await apply(conn, [sale(shop, line, variant, 5)])
    # The order is known: the replay is refused from the start.
    with pytest.raises(psycopg.errors.UniqueViolation) as refused:
        await apply(conn, [refund(other, refund_id, line, 2)])
    assert "another shop" in ledger.describe(refused.value)
    await apply(conn, [refund(shop, refund_id, line, 2)])
    assert await units(conn, shop, variant) == 3
    # A refund replayed before its order is known is taken, then taken over by the genuine
    # refund once the shop's order holds its line.
    later_variant, later_line, later_refund = next(_ids), next(_ids), next(_ids)
    await apply(conn, [refund(other, later_refund, later_line, 2)])
    await apply(conn, [sale(shop, later_line, later_variant, 5)])
    await apply(conn, [refund(shop, later_refund, later_line, 2)])
    assert await units(conn, shop, later_variant) == 3
    cur = await conn.execute("SELECT count(*) AS n FROM refund_lines WHERE shop = %s", (other,))
    row = await cur.fetchone()
    assert row is not None and row["n"] == 0


async def test_what_the_admin_api_lists_for_a_shop_is_taken_back_from_another_shop(
    conn: DictConnection, shop: str, database_url: str
) -> None:
    """A shop's product and order replayed under another shop of the shared app before the
    genuine ones kept the variant and the line there for good, and the genuine webhooks were
    dead-lettered (an outside test). The backfill and the reconciliation read the shop's own
    catalogue and orders with its token: what they list is taken back."""
    other = f"v{shop}"
    install_shop(database_url, other)
    held, _, item = next(_ids), next(_ids), next(_ids)  # variant() holds its id + 2
    line = next(_ids)
    replayed = [variant(other, held, NOW - timedelta(hours=2)), sale(other, line, held, 4)]
    await apply(conn, replayed)
    await apply(conn, [stock(other, item, 30, NOW - timedelta(hours=2))])
    for genuine in (variant(shop, held, NOW - timedelta(hours=2)), sale(shop, line, held, 4)):
        with pytest.raises(psycopg.errors.UniqueViolation):
            await apply(conn, [genuine])
    assert await units(conn, other, held) == 4
    await conn.execute(  # the plan the other shop's worker made of it
        "INSERT INTO sku_plans (shop, variant_id, first_day, mean, lower, upper, method, members,"
        " confidence, safety_stock, reorder_point, reorder_quantity, overstock, abc_class, as_of)"
        " VALUES (%s, %s, current_date, '{1}', '{0}', '{2}', 'river', '[]', 'low', 1, 2, 3,"
        " false, 'C', now())",
        (other, held),
    )
    # The reconciliation's pass: the shop's own catalogue, stock and orders.
    listed = [
        variant(shop, held, NOW - timedelta(hours=1)),
        sale(shop, line, held, 4),
        stock(shop, item, 12, NOW - timedelta(hours=1)),
    ]
    async with conn.transaction():
        assert await ledger.reclaim(conn, shop, listed) == 2  # the variant and its line
        await ledger.apply_events(conn, listed)
    assert await units(conn, shop, held) == 4 and await level(conn, shop, item) == 12
    assert await units(conn, other, held) == 0 and await level(conn, other, item) is None
    for table in ("variants", "order_lines", "inventory_levels", "stock_history", "sku_plans"):
        cur = await conn.execute(f"SELECT count(*) AS n FROM {table} WHERE shop = %s", (other,))
        row = await cur.fetchone()
        assert row is not None and row["n"] == 0, table
    # Nothing else to take back: a second pass finds nothing.
    async with conn.transaction():
        assert await ledger.reclaim(conn, shop, listed) == 0


async def deleted(conn: DictConnection, shop: str, variant_id: int) -> bool:
    cur = await conn.execute(
        "SELECT deleted FROM variants WHERE shop = %s AND variant_id = %s", (shop, variant_id)
    )
    row = await cur.fetchone()
    assert row is not None
    return bool(row["deleted"])


async def test_a_variant_an_export_found_gone_comes_back_only_for_a_newer_export(
    conn: DictConnection, shop: str
) -> None:
    v = next(_ids)
    described = NOW - timedelta(days=3)
    await apply(conn, [variant(shop, v, described)])
    # Gone from the export whose snapshot is after NOW - 1 h; a change since would keep it.
    gone_since = NOW - timedelta(hours=1)
    await apply(conn, [variant(shop, v + 10, NOW)])
    await apply(
        conn,
        [
            _event(
                shop, "variant_gone", "g1", variant_id=v, unchanged_since=gone_since.isoformat()
            ),
            _event(
                shop,
                "variant_gone",
                "g2",
                variant_id=v + 10,
                unchanged_since=gone_since.isoformat(),
            ),
        ],
    )
    assert await deleted(conn, shop, v) and not await deleted(conn, shop, v + 10)
    # Neither a redelivered webhook as old as what was held, nor an older export's listing
    # (a replayed dead letter, a slow backfill) brings it back.
    older_export = (NOW - timedelta(hours=2)).isoformat()
    await apply(
        conn, [variant(shop, v, described), variant(shop, v, described, listed_since=older_export)]
    )
    assert await deleted(conn, shop, v)
    # A later export that lists it does, though what it says of the variant is no newer.
    await apply(conn, [variant(shop, v, described, listed_since=NOW.isoformat())])
    assert not await deleted(conn, shop, v)
    # A deleted product's variants stay deleted, whatever lists them.
    await apply(conn, [_event(shop, "product_delete", "pd", product_id=v + 1)])
    await apply(
        conn, [variant(shop, v, described, listed_since=(NOW + timedelta(hours=1)).isoformat())]
    )
    assert await deleted(conn, shop, v)


async def test_an_uninstall_stops_what_came_after_it_and_a_late_one_never_undoes_a_reinstall(
    conn: DictConnection, shop: str, database_url: str
) -> None:
    """Webhooks accepted for a few seconds after an uninstall were applied; a retry of an
    uninstall from before a reinstall disconnected the reinstalled shop."""
    item, uninstalled_at = next(_ids), datetime.now(UTC)

    def uninstall(at: datetime) -> SkuEvent:
        return _event(shop, "app_uninstalled", at=at.isoformat())

    def stock_sent(available: int, received: datetime, triggered: datetime | None) -> SkuEvent:
        event = stock(shop, item, available, received)
        return event.model_copy(
            update={
                "received_at": received.isoformat(),
                "data": {**event.data, "triggered_at": triggered and triggered.isoformat()},
            }
        )

    # In one batch with the uninstall, behind it: left out all the same (the worker had
    # applied it when the uninstall came in a batch of its own only).
    sent_after = uninstalled_at + timedelta(milliseconds=900)
    await apply(conn, [stock_sent(4, sent_after, sent_after), uninstall(uninstalled_at)])
    assert await level(conn, shop, item) is None
    # Triggered before the uninstall, delivered after it: the shop's own past, kept.
    before = uninstalled_at - timedelta(milliseconds=500)
    await apply(conn, [stock_sent(5, uninstalled_at + timedelta(seconds=2), before)])
    assert await level(conn, shop, item) == 5
    # Sent after it: left out, whether its trigger time is known or only its receipt.
    await apply(conn, [stock_sent(6, uninstalled_at + timedelta(seconds=2), None)])
    after = uninstalled_at + timedelta(seconds=1)
    await apply(conn, [stock_sent(7, after + timedelta(seconds=2), after)])
    assert await level(conn, shop, item) == 5

    install_shop(database_url, shop)  # the merchant installs again
    await apply(conn, [uninstall(uninstalled_at)])  # Shopify's retry of the first uninstall
    cur = await conn.execute("SELECT uninstalled_at FROM shops WHERE domain = %s", (shop,))
    assert (await cur.fetchone()) == {"uninstalled_at": None}
    await apply(conn, [stock_sent(8, uninstalled_at + timedelta(seconds=4), None)])
    assert await level(conn, shop, item) == 8


async def test_an_uninstall_applied_after_a_reinstall_through_shopify_changes_nothing(
    conn: DictConnection, shop: str
) -> None:
    """The worker was behind (or Shopify retried an uninstall that got a 503): the merchant
    installed again through OAuth before the uninstall was applied, and it then disconnected
    the shop they had just connected."""
    uninstalled_at = datetime.now(UTC)
    async with conn.transaction():
        await shops.install(conn, shop, name=None, timezone="UTC", currency="EUR")
    await apply(conn, [_event(shop, "app_uninstalled", at=uninstalled_at.isoformat())])
    cur = await conn.execute("SELECT uninstalled_at FROM shops WHERE domain = %s", (shop,))
    assert (await cur.fetchone()) == {"uninstalled_at": None}


async def test_an_event_that_fails_again_after_a_restart_is_set_aside_once(
    conn: DictConnection, shop: str
) -> None:
    """A worker killed after dead-lettering but before committing its offsets applies the
    batch again: each failed event stayed once, not two or three times (an outside test
    counted 4,837 letters for a 2,000-line poison order)."""
    event = sale(shop, next(_ids), next(_ids), 1).model_copy(
        update={"event_id": f"ev-{next(_ids)}", "seq": 3}
    )

    async def letters() -> list[int]:
        cur = await conn.execute(
            "SELECT id FROM dead_letters WHERE shop = %s AND event_id = %s AND replayed_at IS NULL",
            (shop, event.event_id),
        )
        return [r["id"] for r in await cur.fetchall()]

    for _ in range(3):
        async with conn.transaction():
            await ledger.dead_letter(conn, event, ValueError("bad for ever"))
    (first,) = await letters()
    # Another event of the same webhook is another letter.
    async with conn.transaction():
        await ledger.dead_letter(conn, event.model_copy(update={"seq": 4}), ValueError("bad"))
    assert len(await letters()) == 2
    # Replayed and failing again later, it is set aside anew.
    async with conn.transaction():
        await conn.execute("UPDATE dead_letters SET replayed_at = now() WHERE id = %s", (first,))
        await ledger.dead_letter(conn, event, ValueError("still bad"))
    assert len(await letters()) == 2 and first not in await letters()


async def test_shop_redact_erases_only_an_uninstalled_shop_and_only_after_its_uninstall(
    conn: DictConnection, shop: str, database_url: str
) -> None:
    """Shopify sends shop/redact 48 hours after an uninstall. A redact from an earlier
    uninstall, replayed or retried after the merchant installed again, erased the live shop
    (an outside test)."""
    variant = next(_ids)
    await apply(conn, [sale(shop, next(_ids), variant, 2)])
    uninstalled_at = datetime.now(UTC)

    async def held() -> bool:
        cur = await conn.execute("SELECT count(*) AS n FROM shops WHERE domain = %s", (shop,))
        return bool((await cur.fetchone())["n"])

    def redact(at: datetime | None) -> SkuEvent:
        return _event(shop, "shop_redact", **({} if at is None else {"at": at.isoformat()}))

    await apply(conn, [redact(uninstalled_at - timedelta(days=400))])
    await apply(conn, [redact(None)])  # an event queued before redacts carried their moment
    assert await held() and await units(conn, shop, variant) == 2
    await apply(conn, [_event(shop, "app_uninstalled", at=uninstalled_at.isoformat())])
    await apply(conn, [redact(uninstalled_at - timedelta(hours=1))])
    assert await held() and await units(conn, shop, variant) == 2
    await apply(conn, [redact(uninstalled_at + timedelta(days=2))])
    assert not await held() and await units(conn, shop, variant) == 0
