"""Forecasts in the live pipeline and the nightly batch, against the real stack."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import uuid
from datetime import UTC, date, datetime, timedelta
from datetime import time as clock_time
from typing import Any

import psycopg

from connectors.db import forecasts as db
from connectors.db.migrate import migrate
from connectors.db.pool import open_pool
from connectors.db.shops import install_shop
from connectors.settings import Settings
from models.synthetic import generate
from ops.stack import Stack
from streams.forecasting import LEARN_DAYS, ForecastKeeper
from streams.refit_schedule import REFIT_COMMAND, RefitSchedule
from tests.support import (
    FeedClient,
    Ids,
    Variant,
    deliver_ok,
    make_variant,
    new_shop,
    one_utc_day,
    order_hook,
    product_hook,
    query,
    refund_hook,
    scalar,
    stock_hook,
    wait_until,
)

HISTORY_DAYS = 60
NIGHTLY_BY_HAND = (sys.executable, "-m", "ops.cli", "nightly", "--no-progress")


def seed_history(stack: Stack, shop: str, variant: Variant, units: list[int], end: date) -> None:
    """Closed days of demand as the pipeline would have stored them, ending the day before
    ``end``."""
    start = end - timedelta(days=len(units))
    with psycopg.connect(stack.database_url) as conn:
        conn.cursor().executemany(
            "INSERT INTO daily_demand (shop, variant_id, day, units, revenue) "
            "VALUES (%s, %s, %s, %s, %s)",
            [
                (shop, variant.variant_id, start + timedelta(days=i), n, n * 20)
                for i, n in enumerate(units)
            ],
        )


def insert_variant(stack: Stack, shop: str, variant: Variant) -> None:
    """The variant as the catalogue would have stored it, without a webhook's forecast round."""
    with psycopg.connect(stack.database_url) as conn:
        conn.execute(
            "INSERT INTO variants (shop, variant_id, product_id, sku, product_title, "
            "inventory_item_id, price) VALUES (%s, %s, %s, %s, %s, %s, 20)",
            (
                shop,
                variant.variant_id,
                variant.product_id,
                variant.sku,
                variant.sku.title(),
                variant.inventory_item_id,
            ),
        )


def is_forecast_for(variant: Variant, **expected: object):
    def matches(message: dict) -> bool:
        return (
            message["type"] == "forecast"
            and message["variant_id"] == variant.variant_id
            and all(message.get(k) == v for k, v in expected.items())
        )

    return matches


async def test_orders_move_the_forecast_and_a_worker_restart_keeps_the_model(
    stack: Stack,
) -> None:
    one_utc_day()
    shop = new_shop(stack)
    variant = make_variant("FCST-1")
    today = datetime.now(UTC).date()
    deliver_ok(stack, product_hook(shop, variant))
    wait_until(lambda: query(stack, "SELECT 1 FROM variants WHERE shop = %s", shop))
    seed_history(stack, shop, variant, [4, 4, 5, 6, 8, 9, 6] * (HISTORY_DAYS // 7) + [5] * 4, today)

    async with FeedClient(stack, shop) as feed:
        deliver_ok(stack, stock_hook(shop, variant, 200, datetime.now(UTC)))
        first = await feed.wait_for(is_forecast_for(variant, stock=200))
        assert first["method"] == "river"
        assert first["mase"] is not None  # the online model's own one-day-ahead record
        # Trusted as far as that record goes: against a history that repeats its week,
        # seasonal naive is hard to beat.
        assert first["confidence"] == ("low" if first["mase"] >= 1 else "medium")
        assert len(first["mean"]) == 90 and first["first_day"] == today.isoformat()
        assert 3 < sum(first["mean"][1:8]) / 7 < 9  # the history's weekly mean is 6
        assert first["stockout_date"] is not None

        hook, _ = order_hook(shop, [(Ids.next(), variant, 30)])
        deliver_ok(stack, hook)
        deliver_ok(stack, stock_hook(shop, variant, 170, datetime.now(UTC)))
        after = await feed.wait_for(is_forecast_for(variant, stock=170))
        # Today's nowcast holds the 30 sold so far; the stock left runs out sooner.
        assert after["mean"][0] >= 30 > first["mean"][0]
        assert after["stockout_date"] < first["stockout_date"]
        assert after["days_of_cover"] < first["days_of_cover"]
        print("stockout before, after the order:", first["stockout_date"], after["stockout_date"])

    stored = query(
        stack,
        "SELECT days_learned, last_day, updated_at FROM sku_models "
        "WHERE shop = %s AND variant_id = %s",
        shop,
        variant.variant_id,
    )
    assert stored and stored[0][0] == HISTORY_DAYS and stored[0][1] == today - timedelta(days=1)

    assert stack.worker is not None
    stack.worker.kill()
    stack.start_worker()
    async with FeedClient(stack, shop) as feed:
        hook, _ = order_hook(shop, [(Ids.next(), variant, 2)])
        deliver_ok(stack, hook)
        deliver_ok(stack, stock_hook(shop, variant, 168, datetime.now(UTC)))
        restarted = await feed.wait_for(is_forecast_for(variant, stock=168), timeout_s=90)
    # The restarted worker loaded the stored model instead of relearning it: the same future.
    assert restarted["mean"][1:] == after["mean"][1:]
    assert (
        query(
            stack,
            "SELECT updated_at FROM sku_models WHERE shop = %s AND variant_id = %s",
            shop,
            variant.variant_id,
        )[0][0]
        == stored[0][2]
    )


def seed_store(stack: Stack, shop: str, n_skus: int, days: int, end: date) -> list[int]:
    skus = [s for s in generate(n_skus=n_skus, days=days, seed=5, end=end) if s.kind != "launch"]
    ids = []
    with psycopg.connect(stack.database_url) as conn:
        cur = conn.cursor()
        for s in skus:
            v = make_variant(s.sku)
            ids.append(v.variant_id)
            cur.execute(
                "INSERT INTO variants (shop, variant_id, product_id, sku, product_title, "
                "inventory_item_id, price) VALUES (%s, %s, %s, %s, %s, %s, %s)",
                (shop, v.variant_id, v.product_id, s.sku, s.sku, v.inventory_item_id, s.price),
            )
            cur.executemany(
                "INSERT INTO daily_demand (shop, variant_id, day, units, revenue) "
                "VALUES (%s, %s, %s, %s, %s)",
                [
                    (shop, v.variant_id, d, int(q), float(q) * s.price)
                    for d, q in zip(s.dates, s.sales, strict=True)
                    if q
                ],
            )
    return ids


def nightly(stack: Stack, shop: str, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [*NIGHTLY_BY_HAND, "--shop", shop, *args],
        env={**os.environ, **stack.env()},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # its fitting processes die with it
    )


def current_run(stack: Stack, shop: str) -> tuple[int, date] | None:
    rows = query(
        stack,
        "SELECT id, run_day FROM forecast_runs WHERE shop = %s AND status = 'committed' "
        "ORDER BY run_day DESC LIMIT 1",
        shop,
    )
    return rows[0] if rows else None


def test_a_nightly_run_killed_half_way_resumes_and_never_exposes_a_partial_run(
    stack: Stack,
) -> None:
    shop = new_shop(stack)
    today = datetime.now(UTC).date()
    ids = seed_store(stack, shop, n_skus=48, days=400, end=today - timedelta(days=1))

    yesterday_run = nightly(stack, shop, "--day", (today - timedelta(days=1)).isoformat())
    output, _ = yesterday_run.communicate(timeout=240)
    assert yesterday_run.returncode == 0, output
    previous = current_run(stack, shop)
    assert previous is not None and previous[1] == today - timedelta(days=1)
    rows_of_run = "SELECT variant_id, mean FROM run_forecasts WHERE run_id = %s ORDER BY 1"
    previous_rows = query(stack, rows_of_run, previous[0])
    assert len(previous_rows) == len(ids)

    interrupted = nightly(stack, shop)
    new_run = wait_until(
        lambda: scalar(
            stack,
            "SELECT r.id FROM forecast_runs r WHERE r.shop = %s AND r.run_day = %s "
            "AND (SELECT count(*) FROM run_forecasts f WHERE f.run_id = r.id) >= 25",
            shop,
            today,
        ),
        timeout_s=120,
        what="the nightly run to write its first batch",
    )
    os.killpg(interrupted.pid, signal.SIGKILL)
    interrupted.wait()
    written = scalar(stack, "SELECT count(*) FROM run_forecasts WHERE run_id = %s", new_run)
    assert 25 <= written < len(ids), "killed too late to prove anything"
    # The half-written run is invisible: yesterday's forecasts are still the current ones.
    assert current_run(stack, shop) == previous
    assert scalar(stack, "SELECT status FROM forecast_runs WHERE id = %s", new_run) == "running"
    assert query(stack, rows_of_run, previous[0]) == previous_rows

    rerun = nightly(stack, shop)
    output, _ = rerun.communicate(timeout=240)
    assert rerun.returncode == 0, output
    print(output)
    assert f"resumed past {written}" in output
    assert current_run(stack, shop) == (new_run, today)
    assert len(query(stack, rows_of_run, new_run)) == len(ids)
    # Both runs are kept (90 days of runs), so accuracy can be tracked over time; beside them,
    # the validation run of 28 days before yesterday's, which today's run used as well (a run
    # up to a week older than 28 days still serves).
    committed = "SELECT count(*) FROM forecast_runs WHERE shop = %s AND status = %s"
    assert scalar(stack, committed, shop, "committed") == 2
    assert scalar(stack, committed, shop, "validation") == 1


def test_nightly_weights_come_from_the_member_forecasts_of_earlier_runs(stack: Stack) -> None:
    """Each run stores its members' forecasts; four weeks later, once those days have sold,
    they weight the blend: no member is refitted for it. A new shop's first night
    makes the run it lacks, once."""
    shop = new_shop(stack)
    today = datetime.now(UTC).date()
    ids = seed_store(stack, shop, n_skus=30, days=400, end=today - timedelta(days=1))
    # Launched 50 days ago, fading: forecast from two weeks on sale, so the run of 28 days
    # ago forecast them too, and blended with how earlier launches sold on. Ten days on sale:
    # not yet.
    launches = [make_variant(f"LAUNCH-{i}") for i in range(3)]
    too_new = make_variant("TEN-DAYS-OLD")
    for variant in launches:
        insert_variant(stack, shop, variant)
        seed_history(stack, shop, variant, [max(1, 12 - d // 5) for d in range(50)], today)
    insert_variant(stack, shop, too_new)
    seed_history(stack, shop, too_new, [4] * 10, today)
    outputs = []
    for back in (56, 28, 0):
        run = nightly(stack, shop, "--day", (today - timedelta(days=back)).isoformat())
        output, _ = run.communicate(timeout=240)
        assert run.returncode == 0, output
        print(output)
        outputs.append(output)
    assert "members (wall, whole shop):" in output and "ets" in output
    # The first night had no run of 28 days before: it made one from the history as it stood
    # then. The later nights found theirs stored (the runs of the nights before) and made none.
    made = f"first made the validation run of {today - timedelta(days=84)}"
    assert made in outputs[0] and "validation run" not in outputs[1] + outputs[2]
    runs = "SELECT run_day, status, skus FROM forecast_runs WHERE shop = %s ORDER BY run_day"
    assert query(stack, runs, shop) == [
        (today - timedelta(days=84), "validation", len(ids)),
        (today - timedelta(days=56), "committed", len(ids)),
        (today - timedelta(days=28), "committed", len(ids) + len(launches)),
        (today, "committed", len(ids) + len(launches)),
    ]
    rows = query(
        stack,
        "SELECT f.variant_id, f.model, f.weights, f.members, f.demand_class, f.mean "
        "FROM run_forecasts f JOIN forecast_runs r ON r.id = f.run_id "
        "WHERE r.shop = %s AND r.run_day = %s",
        shop,
        today,
    )
    assert len(rows) == len(ids) + len(launches)
    launched = {v.variant_id for v in launches}
    assert {r[0] for r in rows if r[0] in launched} == launched
    assert all(("lifecycle" in r[3]) == (r[0] in launched) for r in rows), rows
    equal_blends = 0
    for _, model, weights, members, demand, mean in rows:
        assert model == "combined" and demand in ("smooth", "erratic", "intermittent", "lumpy")
        assert abs(sum(weights.values()) - 1) < 1e-3
        assert set(weights) <= set(members) and all(len(f) == 28 for f in members.values())
        assert len(mean) == 90
        equal_blends += len(set(weights.values())) == 1
    # With an earlier run to learn from, the weights are the members' records, not equal.
    assert equal_blends < len(rows) / 2, rows
    first = query(
        stack,
        "SELECT f.weights FROM run_forecasts f JOIN forecast_runs r ON r.id = f.run_id "
        "WHERE r.shop = %s AND r.run_day = %s",
        shop,
        today - timedelta(days=56),
    )
    # Even the first night weighted each SKU's members by their record, from its validation
    # run: equal weights are left for a shop too young to have one.
    assert len(first) == len(ids)
    assert sum(len(set(w.values())) == 1 for (w,) in first) < len(first) / 2, first
    # A day still to come is refused: its run would become the shop's latest, forecasting
    # from days not sold yet.
    ahead = today + timedelta(days=3)
    run = nightly(stack, shop, "--day", ahead.isoformat())
    output, _ = run.communicate(timeout=120)
    assert run.returncode == 1 and f"{ahead} is after the shop's today" in output, output
    # A day before the shop's history has nothing to forecast, and says so ("committed;
    # fitted 0" read as if forecasts had been made: an outside test).
    run = nightly(stack, shop, "--day", "1990-01-01")
    output, _ = run.communicate(timeout=120)
    assert run.returncode == 0 and "nothing to forecast" in output, output
    assert (
        query(stack, "SELECT 1 FROM forecast_runs WHERE shop = %s AND run_day = %s", shop, ahead)
        == []
    )


def zone_where_it_is(hour: int) -> str:
    """An IANA zone whose local hour is ``hour`` right now (Etc/GMT-3 is UTC+3)."""
    offset = (hour - datetime.now(UTC).hour + 12) % 24 - 12
    return "UTC" if offset == 0 else f"Etc/GMT{'-' if offset > 0 else '+'}{abs(offset)}"


async def wait_for_child(schedule: RefitSchedule, timeout_s: float = 120) -> None:
    deadline = time.monotonic() + timeout_s
    while schedule.running:
        assert time.monotonic() < deadline, "the scheduled nightly run did not finish"
        await asyncio.sleep(0.2)


async def test_the_worker_schedule_refits_each_shop_after_its_local_refit_time(
    stack: Stack,
) -> None:
    # Its own database, so the shared stack's other shops are never due here.
    database_url = stack.database_url.rsplit("/", 1)[0] + f"/schedule_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(stack.database_url, autocommit=True) as admin:
        admin.execute(f"CREATE DATABASE {database_url.rsplit('/', 1)[1]}")
    migrate(database_url)
    # At 12:00 local, a shop where it is 14:00 is due and one where it is 10:00 is not.
    due, early = "due.myshopify.com", "early.myshopify.com"
    install_shop(database_url, due, timezone=zone_where_it_is(14))
    install_shop(database_url, early, timezone=zone_where_it_is(10))
    local_today = scalar(stack, "SELECT (now() AT TIME ZONE %s)::date", zone_where_it_is(14))
    variant = make_variant("SCHEDULED")
    with psycopg.connect(database_url) as conn:
        conn.execute(
            "INSERT INTO variants (shop, variant_id, product_id, sku, product_title, "
            "inventory_item_id, price) VALUES (%s, %s, %s, 'SCHEDULED', 'Scheduled', %s, 20)",
            (due, variant.variant_id, variant.product_id, variant.inventory_item_id),
        )
        conn.cursor().executemany(
            "INSERT INTO daily_demand (shop, variant_id, day, units, revenue) "
            "VALUES (%s, %s, %s, %s, %s)",
            [
                (due, variant.variant_id, local_today - timedelta(days=d), 3 + d % 7, 60)
                for d in range(1, 61)
            ],
        )

    schedule = RefitSchedule(
        clock_time(12, 0),
        processes=1,
        retry_after_busy_s=2.0,
        env={**os.environ, "DATABASE_URL": database_url},
    )
    runs = "SELECT run_day, status FROM forecast_runs WHERE shop = %s"
    pool = await open_pool(database_url, max_size=2)
    try:
        async with pool.connection() as holder, pool.connection() as conn:
            # Another process (a second worker, an operator) already refitting the shop:
            # the scheduled run steps aside instead of fitting it twice.
            assert await db.try_lock_nightly(holder, due)
            await holder.commit()
            assert await schedule.tick(conn) == [due]
            assert await schedule.tick(conn) == [], "started a second run beside the first"
            await wait_for_child(schedule)
            with psycopg.connect(database_url) as check:
                assert check.execute(runs, (due,)).fetchall() == []
            assert await schedule.tick(conn) == [], "did not wait for the other run"
            await db.unlock_nightly(holder, due)
            await holder.commit()
            await asyncio.sleep(2.0)

            assert await schedule.tick(conn) == [due]
            await wait_for_child(schedule)
            with psycopg.connect(database_url) as check:
                # Its first night: the members as of 28 days ago weight its blend.
                assert sorted(check.execute(runs, (due,)).fetchall()) == [
                    (local_today - timedelta(days=28), "validation"),
                    (local_today, "committed"),
                ]
                assert check.execute(runs, (early,)).fetchall() == []
                fitted = check.execute(
                    "SELECT f.variant_id, f.model FROM run_forecasts f "
                    "JOIN forecast_runs r ON r.id = f.run_id "
                    "WHERE r.shop = %s AND r.status = 'committed'",
                    (due,),
                ).fetchall()
            assert fitted == [(variant.variant_id, "combined")]
            assert await schedule.tick(conn) == [], "refit a shop twice on one day"
    finally:
        await schedule.stop()
        await pool.close()

    # A shop that fails (here: not installed) costs the shops after it nothing, and the exit
    # code tells the schedule to retry.
    by_hand = subprocess.run(
        [*NIGHTLY_BY_HAND, "--shop", "missing.myshopify.com", "--shop", early],
        env={**os.environ, "DATABASE_URL": database_url},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert by_hand.returncode == 1, by_hand.stdout + by_hand.stderr
    assert "missing.myshopify.com : failed" in by_hand.stdout
    with psycopg.connect(database_url) as check:
        statuses = check.execute(
            "SELECT status FROM forecast_runs WHERE shop = %s", (early,)
        ).fetchall()
    assert statuses == [("committed",)]

    # A shop uninstalled (or its data erased) between the schedule's pick and its run was
    # asked for by no one: it is skipped, and the exit code does not hold the next scheduled
    # runs back.
    gone = "erased.myshopify.com"
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("UPDATE shops SET uninstalled_at = now() WHERE domain = %s", (due,))
    scheduled = subprocess.run(
        [*REFIT_COMMAND, "--shop", due, "--shop", gone, "--shop", early],  # as scheduled
        env={**os.environ, "DATABASE_URL": database_url},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert scheduled.returncode == 0, scheduled.stdout + scheduled.stderr
    for skipped in (f"{due} {local_today}", f"{gone} "):
        assert f"{skipped}: skipped: uninstalled since the schedule picked it" in (scheduled.stdout)


async def test_a_late_order_and_its_refund_rebuild_the_model_from_the_corrected_days(
    stack: Stack,
) -> None:
    shop = new_shop(stack)
    variant = make_variant("LATE-1")
    now = datetime.now(UTC)
    deliver_ok(stack, product_hook(shop, variant))
    wait_until(lambda: query(stack, "SELECT 1 FROM variants WHERE shop = %s", shop))
    seed_history(stack, shop, variant, [4, 4, 5, 6, 8, 9, 6] * (HISTORY_DAYS // 7), now.date())

    def future_of(message: dict) -> list[float]:
        return message["mean"][1:]

    async with FeedClient(stack, shop) as feed:
        deliver_ok(stack, stock_hook(shop, variant, 200, now))
        before = await feed.wait_for(is_forecast_for(variant, stock=200))
        assert before["abc_class"] == "A"  # the shop's only seller
        # An order from three days ago, delivered only now, lands on a day already learned.
        line = Ids.next()
        hook, order_id = order_hook(shop, [(line, variant, 60)], created_at=now - timedelta(days=3))
        deliver_ok(stack, hook)
        late = await feed.wait_for(
            lambda m: is_forecast_for(variant)(m) and future_of(m) != future_of(before)
        )
        assert sum(future_of(late)[:7]) > sum(future_of(before)[:7])
        # Returned in full, the corrected history is the original one again, and so is the
        # rebuilt model: the same future to the cent.
        deliver_ok(stack, refund_hook(shop, order_id, [(line, variant, 60)], restock_type="return"))
        await feed.wait_for(
            lambda m: is_forecast_for(variant)(m) and future_of(m) == future_of(before)
        )
        print(
            "7-day demand before, with the late order:",
            sum(future_of(before)[:7]),
            sum(future_of(late)[:7]),
        )
    assert scalar(stack, "SELECT count(*) FROM demand_corrections WHERE shop = %s", shop) == 0


async def test_a_sku_that_never_sold_is_read_once_per_closed_day_until_it_sells(
    stack: Stack,
) -> None:
    shop = new_shop(stack)
    variant = make_variant("NEVER-SOLD")
    insert_variant(stack, shop, variant)
    keeper = ForecastKeeper(Settings())
    pool = await open_pool(stack.database_url, max_size=1)
    try:
        async with pool.connection() as conn:
            demand_reads = 0  # reads of a SKU's daily history (not today's figures, not ABC)
            execute = conn.execute

            async def counting_execute(query: Any, params: Any = None, **kwargs: Any) -> Any:
                nonlocal demand_reads
                demand_reads += "day, units FROM daily_demand" in str(query)
                return await execute(query, params, **kwargs)

            conn.execute = counting_execute  # type: ignore[method-assign]
            for _ in range(3):  # three batches touching it on the same day
                ((_, first),) = await keeper.forecasts(conn, shop, [variant.variant_id])
            assert demand_reads == 1
            assert first.method == "moving_average_7" and first.mean[1] == 0

            # Sales land on closed days (a backfill, late webhooks): the model learns them.
            seed_history(stack, shop, variant, [3] * 10, datetime.now(UTC).date())
            ((_, after),) = await keeper.forecasts(conn, shop, [variant.variant_id])
            assert demand_reads == 2
            assert after.mean[1] == 3.0
    finally:
        await pool.close()


async def test_a_model_learns_at_most_the_last_two_years_even_after_a_backdated_sale(
    stack: Stack,
) -> None:
    """An order dated decades back (Shopify allows importing old orders; a hostile signed one
    touched 5,000 SKUs) corrects a day every model must relearn from: each relearns two years,
    not decades, so the messages behind it are not held up for minutes."""
    shop = new_shop(stack)
    variant = make_variant("LONG-HISTORY")
    insert_variant(stack, shop, variant)
    today = datetime.now(UTC).date()
    seed_history(stack, shop, variant, [2, 3, 2, 4, 5, 7, 3] * 500, today)  # ~9.6 years

    def days_learned() -> int:
        return int(
            scalar(
                stack,
                "SELECT days_learned FROM sku_models WHERE shop = %s AND variant_id = %s",
                shop,
                variant.variant_id,
            )
        )

    keeper = ForecastKeeper(Settings())
    pool = await open_pool(stack.database_url, max_size=1)
    try:
        async with pool.connection() as conn:
            ((_, first),) = await keeper.forecasts(conn, shop, [variant.variant_id])
            assert days_learned() == LEARN_DAYS
            with psycopg.connect(stack.database_url) as other:
                other.execute(
                    "INSERT INTO daily_demand (shop, variant_id, day, units, revenue) "
                    "VALUES (%s, %s, '2004-01-02', 5, 100)",
                    (shop, variant.variant_id),
                )
            ((_, rebuilt),) = await keeper.forecasts(conn, shop, [variant.variant_id])
            assert days_learned() == LEARN_DAYS
            # The day in 2004 is outside what the model learns: the same forecast.
            assert rebuilt.mean == first.mean
    finally:
        await pool.close()
    assert scalar(stack, "SELECT count(*) FROM demand_corrections WHERE shop = %s", shop) == 0


def test_a_december_night_stores_what_last_years_season_did_to_each_forecast(
    stack: Stack,
) -> None:
    """In the year-end season each combined forecast keeps, day by day, what the shop's own
    last year multiplied it by (models.season), for the plan to show."""
    shop = new_shop(stack)
    day = date(datetime.now(UTC).year - 1, 12, 10)
    seed_store(stack, shop, n_skus=12, days=730, end=day - timedelta(days=1))
    run = nightly(stack, shop, "--day", day.isoformat())
    output, _ = run.communicate(timeout=240)
    assert run.returncode == 0, output
    rows = query(
        stack,
        "SELECT f.season, f.mean FROM run_forecasts f JOIN forecast_runs r ON r.id = f.run_id "
        "WHERE r.shop = %s AND r.run_day = %s AND f.model = 'combined'",
        shop,
        day,
    )
    assert rows
    for season, mean in rows:
        # None: the season moved nothing in this SKU's blend (all its weight on Prophet).
        assert season is None or len(season) == len(mean)
        assert all(0.25 <= x <= 4 for x in season or [])
    changed = [x for season, _ in rows for x in season or [] if abs(x - 1) > 0.02]
    print(f"{len(changed)} of {sum(len(s or []) for s, _ in rows)} days moved by the season")
    assert changed
