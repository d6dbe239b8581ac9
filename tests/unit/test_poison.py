"""Poison isolation: bad items are set aside after a few attempts, the rest is applied once."""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence

import psycopg
import pytest

from connectors.outages import log_failure
from streams.poison import ATTEMPTS, isolating


class Recorder:
    def __init__(
        self,
        bad: set[int],
        flaky: dict[int, int] | None = None,
        error: type[Exception] = ValueError,
    ) -> None:
        self.bad = bad
        self.error = error
        self.flaky = dict(flaky or {})  # item → failures before it succeeds
        self.applied: list[int] = []
        self.calls = 0
        self.set_aside: list[tuple[int, str]] = []

    async def apply(self, items: Sequence[int]) -> None:
        self.calls += 1
        for item in items:
            if item in self.bad:
                raise self.error(f"bad {item}")
            if self.flaky.get(item, 0) > 0:
                self.flaky[item] -= 1
                raise ValueError(f"flaky {item}")
        self.applied.extend(items)  # all or nothing, like a transaction

    async def aside(self, item: int, error: BaseException) -> None:
        self.set_aside.append((item, str(error)))


async def test_a_clean_batch_costs_one_call() -> None:
    r = Recorder(set())
    await isolating(list(range(100)), r.apply, r.aside)
    assert r.calls == 1 and r.applied == list(range(100)) and not r.set_aside


async def test_bad_items_are_set_aside_and_every_other_item_is_applied_once_in_order() -> None:
    r = Recorder({13, 77})
    await isolating(list(range(100)), r.apply, r.aside)
    assert r.applied == [i for i in range(100) if i not in (13, 77)]
    assert r.set_aside == [(13, "bad 13"), (77, "bad 77")]
    assert r.calls < 40  # about 2·log2(n) per bad item, plus its retries


async def test_an_item_gets_its_attempts_alone_before_it_is_set_aside() -> None:
    r = Recorder(set(), flaky={5: ATTEMPTS})
    await isolating([5], r.apply, r.aside)
    assert r.applied == [] and r.set_aside == [(5, "flaky 5")]
    r = Recorder(set(), flaky={5: ATTEMPTS - 1})
    await isolating([5], r.apply, r.aside)
    assert r.applied == [5] and not r.set_aside


async def test_data_the_database_refused_is_set_aside_without_more_attempts() -> None:
    # An outside test: one order of 3,000 refused lines held the worker for two minutes, each
    # line halved down to and then tried three times more.
    n = 3000
    r = Recorder(set(range(n)), error=psycopg.errors.IntegrityConstraintViolation)
    await isolating(list(range(n)), r.apply, r.aside)
    assert [item for item, _ in r.set_aside] == list(range(n)) and not r.applied
    print(f"{n} refused items: {r.calls} calls")
    assert r.calls <= 1.4 * n
    # Among good ones, one refused item still costs about 2·log2(n) calls.
    r = Recorder({1234}, error=psycopg.DataError)
    await isolating(list(range(n)), r.apply, r.aside)
    assert r.set_aside == [(1234, "bad 1234")] and len(r.applied) == n - 1
    assert r.calls <= 2 * math.log2(n) + 2


async def test_infrastructure_errors_are_not_the_items_fault() -> None:
    async def database_away(items: Sequence[int]) -> None:
        raise psycopg.OperationalError("connection refused")

    async def never(item: int, error: BaseException) -> None:
        raise AssertionError("nothing may be set aside while the database is away")

    with pytest.raises(psycopg.OperationalError):
        await isolating([1, 2, 3], database_away, never)


def test_an_outage_is_logged_as_a_line_and_a_bug_with_its_traceback(
    caplog: pytest.LogCaptureFixture,
) -> None:
    log = logging.getLogger("test.outages")
    with caplog.at_level(logging.WARNING, logger="test.outages"):
        try:
            raise psycopg.OperationalError("connection failed: 100% gone\nIs the server running?")
        except psycopg.OperationalError:
            log_failure(log, "flushing %s failed; will retry", "the outbox")
        try:
            raise KeyError("id")
        except KeyError:
            log_failure(log, "flushing %s failed; will retry", "the outbox")
    outage, bug = caplog.records
    assert outage.levelno == logging.WARNING and outage.exc_info is None
    assert outage.getMessage() == (
        "flushing the outbox failed; will retry (OperationalError: connection failed: 100% gone)"
    )
    assert bug.levelno == logging.ERROR and bug.exc_info is not None
