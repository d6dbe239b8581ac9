"""Poison never blocks: isolate a message that fails for itself, retry what failed for the world.

An error of the infrastructure (the database or the broker away, a deadlock, a lost connection)
says nothing about the message: the caller retries the whole batch until it succeeds. Any other
error may be the message's own. The batch is split in halves until the failing message stands
alone (a failing batch of :data:`ALONE_AT` or fewer is tried one message at a time); it gets a
few more attempts, unless the database refused its data outright, and then goes to dead
letters with its reason, and every message around it is applied as usual. So a batch with one
bad message costs about ``2·log2(n)`` extra transactions, a batch of nothing but bad ones about
``1.35·n``, and a batch without one costs nothing.

Faust's ``take()`` acknowledges a batch even when its body raises, so a batch body never lets
an exception escape: it runs under :func:`retrying`, which retries in place.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar

import psycopg

from connectors.outages import is_infrastructure, log_failure

__all__ = ["is_infrastructure", "isolating", "retrying"]

log = logging.getLogger("stockpulse.worker")
T = TypeVar("T")
ATTEMPTS = 3
RETRY_BACKOFF_MAX_S = 5.0
# A failing batch this small is tried one message at a time rather than halved: a batch of
# 3,000 bad messages then costs 4,023 attempts instead of 5,999, and one bad message among
# 3,000 good ones 25 either way (tests/unit/test_poison.py).
ALONE_AT = 6
# The database refused the message's data itself (a value out of range, a check, the write
# path's own refusals): another attempt gets the same answer. Retrying them made an order of
# 3,000 refused lines hold the worker for two minutes (an outside test).
REFUSED: tuple[type[Exception], ...] = (
    psycopg.DataError,
    psycopg.errors.CheckViolation,
    psycopg.errors.IntegrityConstraintViolation,
)


async def isolating(
    items: Sequence[T],
    apply: Callable[[Sequence[T]], Awaitable[None]],
    set_aside: Callable[[T, BaseException], Awaitable[None]],
) -> None:
    """``apply(items)``, splitting around any item that fails for itself; such an item is
    tried :data:`ATTEMPTS` times in all (once when the database :data:`REFUSED` it), then
    handed to ``set_aside`` with its last error.

    Infrastructure errors propagate (from ``set_aside`` too): the caller retries everything.
    """
    error = await _attempt(items, apply)
    if error is None:
        return
    if len(items) > ALONE_AT:
        middle = len(items) // 2
        await isolating(items[:middle], apply, set_aside)
        await isolating(items[middle:], apply, set_aside)
        return
    if len(items) > 1:
        for item in items:
            await isolating([item], apply, set_aside)
        return
    for _ in range(ATTEMPTS - 1):
        if isinstance(error, REFUSED):
            break
        error = await _attempt(items, apply)
        if error is None:
            return
    await set_aside(items[0], error)


async def _attempt(
    items: Sequence[T], apply: Callable[[Sequence[T]], Awaitable[None]]
) -> BaseException | None:
    """None when ``apply`` succeeded, the error when it failed for the items' own sake."""
    try:
        await apply(items)
    except asyncio.CancelledError:
        raise
    except Exception as exc:
        if is_infrastructure(exc):
            raise
        return exc
    return None


async def retrying(what: str, work: Callable[[], Awaitable[T]]) -> T:
    """Run ``work()`` until it succeeds; the worker must not skip a batch it could not apply."""
    delay = 0.1
    while True:
        try:
            return await work()
        except asyncio.CancelledError:
            raise
        except Exception:
            log_failure(log, "%s failed; retrying in %.1fs", what, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, RETRY_BACKOFF_MAX_S)
