"""CSV reports against PostgreSQL alone: what each holds, read back by the csv module and by
pandas; one shop's rows only; the formula guard; and flat memory over a long report."""

from __future__ import annotations

import csv
import io
import itertools
import random
import tracemalloc
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pandas as pd
import pytest
from litestar import Litestar
from litestar.datastructures import State
from litestar.testing import AsyncTestClient
from psycopg.pq import TransactionStatus

from connectors.db import accounts, ledger, locations
from connectors.db.pool import DictConnection, open_pool
from connectors.db.queries import sku_rows
from connectors.db.shops import install_shop
from connectors.kafka.topics import SkuEvent
from connectors.settings import Settings
from streams.forecasting import ForecastKeeper
from web.dashboard import figures
from web.reports import REPORTS, ReportsController, csv_cell, csv_chunks, report_csv

_ids = itertools.count(int(datetime.now(UTC).timestamp() * 1000) * 1000 + 700_000)
NOW = datetime.now(UTC).replace(microsecond=0)
HYPERLINK = '=HYPERLINK("http://evil.example","click")'

INVENTORY_COLUMNS = [
    "product_title",
    "variant_title",
    "sku",
    "variant_id",
    "location_id",
    "location_name",
    "available",
    "updated_at",
    "tracked",
]
FORECAST_COLUMNS = ["sku", "variant_id", "day", "mean", "lower", "upper", "method"]
REORDER_PLAN_COLUMNS = [
    "title",
    "sku",
    "variant_id",
    "location",
    "stock",
    "incoming",
    "lead_time_demand",
    "days_of_cover",
    "days_of_cover_basis",
    "stockout_date",
    "reorder_point",
    "reorder_quantity",
    "abc_class",
    "confidence",
    "method",
    "plan_as_of",
]


def _event(shop: str, kind: str, **data: object) -> SkuEvent:
    return SkuEvent(
        kind=kind, shop=shop, event_id=f"e{next(_ids)}", received_at=NOW.isoformat(), data=data
    )


def _variant(
    shop: str, variant: int, item: int, product: str, title: str, sku: str, tracked: bool = True
) -> SkuEvent:
    return _event(
        shop,
        "variant",
        variant_id=variant,
        product_id=variant + 1,
        sku=sku,
        product_title=product,
        variant_title=title,
        inventory_item_id=item,
        price="12.50",
        tracked=tracked,
        updated_at=NOW.isoformat(),
    )


def _stock(shop: str, item: int, location: int, available: int | None, at: datetime) -> SkuEvent:
    return _event(
        shop,
        "stock",
        inventory_item_id=item,
        location_id=location,
        available=available,
        updated_at=at.isoformat(),
    )


def _sale(shop: str, variant: int, quantity: int, at: datetime) -> SkuEvent:
    line = next(_ids)
    return _event(
        shop,
        "sale_line",
        line_item_id=line,
        order_id=line + 1,
        variant_id=variant,
        product_id=None,
        sku=None,
        title=None,
        quantity=quantity,
        price="12.50",
        ordered_at=at.isoformat(),
        cancelled=False,
        test=False,
    )


async def _apply(conn: DictConnection, events: list[SkuEvent]) -> None:
    async with conn.transaction():
        await ledger.apply_events(conn, events)


async def _csv(conn: DictConnection, shop: str, report: str) -> bytes:
    chunks = [
        c async for c in csv_chunks(REPORTS[report].columns, REPORTS[report].rows(conn, shop))
    ]
    return b"".join(chunks)


def _read(body: bytes) -> tuple[list[dict[str, str]], pd.DataFrame]:
    """The report as the csv module reads it, and as pandas does."""
    text = body.decode("utf-8")
    rows = list(csv.DictReader(io.StringIO(text, newline="")))
    return rows, pd.read_csv(io.BytesIO(body))


async def _plan(
    conn: DictConnection,
    shop: str,
    variant: int,
    *,
    first_day: date,
    mean: list[float],
    stock: int = 12,
) -> None:
    await conn.execute(
        "INSERT INTO sku_plans (shop, variant_id, first_day, mean, lower, upper, method, members,"
        " confidence, mase, stock, days_of_cover, stockout_date, safety_stock, reorder_point,"
        " reorder_quantity, overstock, dead_stock_days, abc_class, as_of)"
        " VALUES (%s, %s, %s, %s, %s, %s, 'combined',"
        ' \'[{"model": "prophet", "weight": 0.5}, {"model": "river", "weight": 0.5}]\','
        " 'high', 0.8, %s, 4.8, %s, 6.6, 22.6, 19, false, NULL, 'A', %s)",
        (
            shop,
            variant,
            first_day,
            mean,
            [max(m - 1, 0.0) for m in mean],
            [m + 1 for m in mean],
            stock,
            first_day + timedelta(days=4),
            NOW,
        ),
    )


@pytest.fixture
def other_shop(database_url: str) -> str:
    domain = f"t{uuid.uuid4().hex[:12]}.myshopify.com"
    install_shop(database_url, domain)
    return domain


@pytest.fixture
async def client(database_url: str, shop: str) -> AsyncIterator[AsyncTestClient]:
    """The reports app, called with an API token of a member of ``shop``."""
    pool = await open_pool(database_url, max_size=2)
    async with pool.connection() as conn:
        member = await accounts.create_user(
            conn, f"m{uuid.uuid4().hex[:10]}@example.com", "not-a-real-hash"
        )
        await accounts.add_member(conn, shop, member, "viewer")
        token = await accounts.create_api_token(conn, member, "reports test", read_only=True)
        await conn.commit()
    app = Litestar([ReportsController], state=State({"pool": pool}))
    try:
        async with AsyncTestClient(app) as test_client:
            test_client.headers["Authorization"] = f"Bearer {token}"
            yield test_client
    finally:
        await pool.close()


async def _other_shop_rows(conn: DictConnection, other_shop: str) -> None:
    """A shop whose every row says so, to prove it never shows up in another's reports."""
    variant, item = next(_ids), next(_ids)
    await locations.replace(conn, other_shop, [(1, "Other warehouse", True)])
    await _apply(
        conn,
        [
            _variant(other_shop, variant, item, "Other shop tee", "Other", "OTHER-SKU"),
            _stock(other_shop, item, 1, 99, NOW),
        ],
    )
    await _plan(conn, other_shop, variant, first_day=NOW.date(), mean=[9.0, 9.0])


async def test_inventory_lists_each_variant_at_each_location(
    conn: DictConnection, shop: str, other_shop: str
) -> None:
    guarded, untracked, unstocked = next(_ids), next(_ids), next(_ids)
    guarded_item, untracked_item = next(_ids), next(_ids)
    await locations.replace(conn, shop, [(1, "Warehouse", True), (2, "Shop floor", True)])
    at = NOW - timedelta(hours=2)
    await _apply(
        conn,
        [
            _variant(shop, guarded, guarded_item, HYPERLINK, "Red", "RED-1"),
            _variant(shop, untracked, untracked_item, "Mug", "Default Title", "MUG", False),
            _variant(shop, unstocked, next(_ids), "Zine", "Issue 1", "ZINE-1"),
            _stock(shop, guarded_item, 1, 5, at),
            _stock(shop, guarded_item, 2, -3, at),
            _stock(shop, untracked_item, 1, None, at),
        ],
    )
    await _other_shop_rows(conn, other_shop)

    body = await _csv(conn, shop, "inventory")
    rows, frame = _read(body)

    assert list(frame.columns) == INVENTORY_COLUMNS
    assert [(r["sku"], r["location_name"], r["available"]) for r in rows] == [
        ("RED-1", "Warehouse", "5"),
        ("RED-1", "Shop floor", "-3"),
        ("MUG", "Warehouse", ""),
        ("ZINE-1", "", ""),
    ]
    red = rows[0]
    assert red["product_title"] == "'" + HYPERLINK
    assert red["variant_title"] == "Red" and red["variant_id"] == str(guarded)
    assert red["location_id"] == "1" and red["tracked"] == "true"
    assert datetime.fromisoformat(red["updated_at"]) == at
    assert red["updated_at"].endswith("+00:00")
    assert rows[2]["variant_title"] == "" and rows[2]["tracked"] == "false"

    assert frame["available"].tolist()[:2] == [5, -3]
    assert frame.loc[1, "product_title"] == "'" + HYPERLINK
    assert frame["variant_id"].tolist() == [guarded, guarded, untracked, unstocked]
    assert b"OTHER" not in body and b"Other" not in body


async def test_forecasts_list_each_day_of_the_latest_forecast(
    conn: DictConnection, shop: str, other_shop: str
) -> None:
    planned, unplanned = next(_ids), next(_ids)
    await _apply(
        conn,
        [
            _variant(shop, planned, next(_ids), "Tee", "M", "TEE-M"),
            _variant(shop, unplanned, next(_ids), "Tee", "S", "TEE-S"),
        ],
    )
    first_day = date(2026, 3, 1)
    await _plan(conn, shop, planned, first_day=first_day, mean=[1.25, 2.5, 0.1])
    await _other_shop_rows(conn, other_shop)

    body = await _csv(conn, shop, "forecasts")
    rows, frame = _read(body)

    assert list(frame.columns) == FORECAST_COLUMNS
    assert [list(r.values()) for r in rows] == [
        ["TEE-M", str(planned), "2026-03-01", "1.25", "0.25", "2.25", "combined"],
        ["TEE-M", str(planned), "2026-03-02", "2.5", "1.5", "3.5", "combined"],
        ["TEE-M", str(planned), "2026-03-03", "0.1", "0.0", "1.1", "combined"],
    ]
    assert frame["mean"].tolist() == [1.25, 2.5, 0.1]
    assert pd.to_datetime(frame["day"]).dt.date.tolist() == [
        first_day + timedelta(days=d) for d in range(3)
    ]
    assert b"OTHER" not in body


async def test_the_reorder_plan_shows_what_the_plan_stored(
    conn: DictConnection, shop: str, other_shop: str
) -> None:
    variant, item = next(_ids), next(_ids)
    await locations.replace(conn, shop, [(1, "Warehouse", True), (2, "Shop floor", True)])
    await _apply(
        conn,
        [
            _variant(shop, variant, item, HYPERLINK, "Red", "RED-1"),
            _stock(shop, item, 1, 5, NOW),
            _stock(shop, item, 2, -8, NOW),
        ],
    )
    # Made for the stock it has (5 - 8): another stock would be walked down its forecast.
    await _plan(conn, shop, variant, first_day=NOW.date(), mean=[2.0] * 30, stock=-3)
    await _other_shop_rows(conn, other_shop)

    body = await _csv(conn, shop, "reorder-plan")
    (row,), frame = _read(body)

    assert list(frame.columns) == REORDER_PLAN_COLUMNS
    assert row == {
        "title": "'" + HYPERLINK + " / Red",
        "sku": "RED-1",
        "variant_id": str(variant),
        "location": "all locations",
        "stock": "-3",  # what the page shows: every location now, not the plan's 12
        "incoming": "0",
        "lead_time_demand": "16.0",  # reorder point 22.6 less safety stock 6.6
        "days_of_cover": "4.8",
        "days_of_cover_basis": "forecast",
        "stockout_date": (NOW.date() + timedelta(days=4)).isoformat(),
        "reorder_point": "22.6",
        "reorder_quantity": "19",
        "abc_class": "A",
        "confidence": "high",
        "method": "combined",
        "plan_as_of": NOW.isoformat(),
    }
    assert frame.loc[0, "stock"] == -3 and frame.loc[0, "reorder_point"] == 22.6
    assert b"OTHER" not in body


async def test_the_reorder_plan_agrees_with_the_dashboard(
    conn: DictConnection, shop: str, client: AsyncTestClient
) -> None:
    forecast, young = next(_ids), next(_ids)
    forecast_item, young_item = next(_ids), next(_ids)
    await _apply(
        conn,
        [
            _variant(shop, forecast, forecast_item, "Hoodie", "L", "HOOD-L"),
            _variant(shop, young, young_item, "Hoodie", "M", "HOOD-M"),
            _stock(shop, forecast_item, 1, 40, NOW),
            _stock(shop, young_item, 1, 9, NOW),
            *(_sale(shop, forecast, 3 + d % 4, NOW - timedelta(days=d)) for d in range(1, 61)),
            _sale(shop, young, 14, NOW - timedelta(days=2)),
        ],
    )
    # A real forecast round for one SKU; the other has no plan yet (28-day average cover).
    await ForecastKeeper(Settings()).forecasts(conn, shop, [forecast])

    # What /api/v1/shops/{shop}/skus answers and the page shows.
    dashboard = [f.model_dump(mode="json") for f in figures(await sku_rows(conn, shop))]
    report = await client.get(f"/api/v1/shops/{shop}/reports/reorder-plan.csv")
    rows, frame = _read(report.content)

    assert [r["variant_id"] for r in rows] == [str(s["variant_id"]) for s in dashboard]
    same = ["stock", "days_of_cover", "days_of_cover_basis", "stockout_date", "reorder_quantity"]
    same += ["abc_class", "confidence", "method"]
    for row, sku in zip(rows, dashboard, strict=True):
        assert {f: row[f] for f in same} == {f: "" if sku[f] is None else str(sku[f]) for f in same}
        expected_point = None if sku["reorder_point"] is None else round(sku["reorder_point"], 1)
        assert (float(row["reorder_point"]) if row["reorder_point"] else None) == expected_point
    by_sku = frame.set_index("sku")
    assert by_sku.loc["HOOD-L", "days_of_cover_basis"] == "forecast"
    assert by_sku.loc["HOOD-L", "lead_time_demand"] > 0
    assert by_sku.loc["HOOD-M", "days_of_cover_basis"] == "28-day average"
    assert by_sku.loc["HOOD-M", "days_of_cover"] == 18.0  # 9 in stock at 14 units / 28 days
    assert pd.isna(by_sku.loc["HOOD-M", "lead_time_demand"])


async def test_a_report_downloads_as_a_named_csv_attachment(
    conn: DictConnection, shop: str, client: AsyncTestClient
) -> None:
    await conn.execute(
        "UPDATE shops SET timezone = 'Pacific/Kiritimati' WHERE domain = %s", (shop,)
    )
    await _apply(conn, [_variant(shop, next(_ids), next(_ids), "Tee", "M", "TEE-M")])
    local_today = datetime.now(ZoneInfo("Pacific/Kiritimati")).date()

    response = await client.get(f"/api/v1/shops/{shop}/reports/inventory.csv")

    assert response.status_code == 200
    assert response.headers["content-type"] == "text/csv; charset=utf-8"
    assert response.headers["content-disposition"] == (
        f'attachment; filename="{shop}-inventory-{local_today.isoformat()}.csv"'
    )
    rows, _ = _read(response.content)
    assert [r["sku"] for r in rows] == ["TEE-M"]
    for name in ("forecasts", "reorder-plan"):
        assert (await client.get(f"/api/v1/shops/{shop}/reports/{name}.csv")).status_code == 200


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/shops/{shop}/reports/returns.csv",
        "/api/v1/shops/{shop}/reports/inventory",
        "/api/v1/shops/{shop}/reports/inventory.json",
        "/api/v1/shops/nobody.myshopify.com/reports/inventory.csv",
        "/api/v1/shops/not-a-shop/reports/inventory.csv",
    ],
)
async def test_an_unknown_report_or_shop_is_not_found(
    shop: str, client: AsyncTestClient, path: str
) -> None:
    assert (await client.get(path.format(shop=shop))).status_code == 404


async def test_a_long_report_streams_in_flat_memory(database_url: str, shop: str) -> None:
    rows = 100_000
    # Shopify ids are unique over every shop; a range of its own keeps this one apart.
    first_id = random.randrange(4 * 10**18, 9 * 10**18)
    pool = await open_pool(database_url, max_size=1)
    try:
        async with pool.connection() as conn:
            await conn.execute(
                "INSERT INTO locations (shop, location_id, name) VALUES (%s, 1, 'Warehouse')",
                (shop,),
            )
            await conn.execute(
                """
                WITH v AS (
                    INSERT INTO variants (shop, variant_id, product_id, sku, product_title,
                                          variant_title, inventory_item_id)
                    SELECT %(shop)s, %(first)s + n, %(first)s + n, 'BULK-' || n,
                           'Bulk product ' || n, 'Size ' || n %% 5, %(first)s + n
                      FROM generate_series(0, %(rows)s - 1) n
                    RETURNING inventory_item_id)
                INSERT INTO inventory_levels (shop, inventory_item_id, location_id, available,
                                              updated_at)
                SELECT %(shop)s, inventory_item_id, 1, 7, now() FROM v
                """,
                {"shop": shop, "first": first_id, "rows": rows},
            )
            await conn.commit()

        size = lines = 0
        tracemalloc.start()
        try:
            async for chunk in report_csv(pool, shop, REPORTS["inventory"]):
                size += len(chunk)
                lines += chunk.count(b"\n")
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    finally:
        await pool.close()

    assert lines == rows + 1
    assert size > 8_000_000
    assert peak < size / 5, f"peak {peak} bytes for a CSV of {size}"


@pytest.mark.parametrize("report", sorted(REPORTS))
async def test_a_download_cut_short_gives_its_connection_back_at_once(
    database_url: str, shop: str, report: str, caplog: pytest.LogCaptureFixture
) -> None:
    first_id = random.randrange(4 * 10**18, 9 * 10**18)
    pool = await open_pool(database_url, max_size=1)
    try:
        async with pool.connection() as conn:
            # Enough rows for several chunks of every report.
            await conn.execute(
                "INSERT INTO variants (shop, variant_id, sku, product_title, inventory_item_id)"
                " SELECT %(shop)s, %(first)s + n, 'CUT-' || n, 'Cut ' || n, %(first)s + n"
                " FROM generate_series(0, 1199) n",
                {"shop": shop, "first": first_id},
            )
            for n in range(15):
                await _plan(conn, shop, first_id + n, first_day=NOW.date(), mean=[1.0] * 90)
            await conn.execute(
                "INSERT INTO alerts (shop, variant_id, rule, severity, digest_only, figures,"
                " published_at) SELECT %(shop)s, %(first)s + n, 'low_stock', 'warning', false,"
                " jsonb_build_object('stock', 1, 'low_stock_threshold', 5), now()"
                " FROM generate_series(0, 1199) n",
                {"shop": shop, "first": first_id},
            )
            await conn.commit()

        download = report_csv(pool, shop, REPORTS[report])
        await anext(download)  # the header
        await anext(download)  # rows: its cursor is open now
        await download.aclose()

        # Given back idle: the pool had nothing to roll back, and no cursor is left to close
        # later on a connection someone else may hold by then.
        assert "rolling back returned connection" not in caplog.text
        async with pool.connection(timeout=2) as conn:
            assert conn.info.transaction_status == TransactionStatus.IDLE
            cursors = await (await conn.execute("SELECT count(*) AS n FROM pg_cursors")).fetchone()
            assert cursors == {"n": 0}
    finally:
        await pool.close()


def test_a_text_cell_that_looks_like_a_formula_is_defused() -> None:
    for text in ("=1+1", "+1", "-1", "@SUM(A1)", "\tx", "\rx"):
        assert csv_cell(text) == "'" + text
    for number in (-3, -2.5, 0):
        assert csv_cell(number) == number
    assert csv_cell("Tee - red") == "Tee - red"
