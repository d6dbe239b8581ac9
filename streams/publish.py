"""Build the public ``stockpulse.updates`` messages for SKUs that changed."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from datetime import UTC, datetime

from connectors.db.ledger import CHANGE_WEIGHT
from connectors.db.pool import DictConnection
from connectors.db.queries import removed_skus, sku_rows
from connectors.kafka.topics import SkuRemoved, SkuUpdate, sku_key
from models.inventory import cover


def merged(first: dict, second: dict) -> dict:
    """Two touches of one SKU as one (outbox rows flushed together may hold several; a
    removal among them must not be lost behind a later stock change)."""
    kind = max(first["type"], second["type"], key=lambda k: CHANGE_WEIGHT.get(k, 0))
    events = [*(first.get("event_ids") or []), *(second.get("event_ids") or [])]
    times = [t for t in (first.get("received_at"), second.get("received_at")) if t is not None]
    return {
        **first,
        "type": kind,
        "event_ids": list(dict.fromkeys(events))[-50:],
        "received_at": min(times) if times else None,
    }


async def build_updates(
    conn: DictConnection, touched: Iterable[dict]
) -> list[tuple[bytes, SkuUpdate | SkuRemoved]]:
    """One keyed message per touched SKU: its current numbers, or that it is gone.

    ``touched`` items have shop, variant_id, type, event_ids and received_at (outbox rows or
    ``Touched`` records as dicts).
    """
    by_shop: dict[str, dict[int, dict]] = defaultdict(dict)
    for t in touched:
        wanted = by_shop[t["shop"]]
        seen = wanted.get(t["variant_id"])
        wanted[t["variant_id"]] = t if seen is None else merged(seen, t)
    now = datetime.now(UTC).isoformat()
    out: list[tuple[bytes, SkuUpdate | SkuRemoved]] = []
    for shop, wanted in by_shop.items():
        for row in await sku_rows(conn, shop, list(wanted)):
            cause = wanted[row.variant_id]
            received_at = cause.get("received_at")
            figures = row.figures(
                *cover(row.stock, row.sold_28d, row.plan_days_of_cover, row.plan_as_of is not None)
            )
            update = SkuUpdate(
                # Removed and listed again in the same batch: it is back, with its numbers.
                type="stock" if cause["type"] == "removed" else cause["type"],
                shop=shop,
                as_of=now,
                events=list(cause.get("event_ids") or []),
                received_at=received_at.isoformat() if received_at else None,
                **figures.model_dump(),
            )
            out.append((sku_key(shop, str(row.variant_id)), update))
        # Only a SKU the rows left out can be gone: most batches need no second query. Its
        # removal is announced once, by what removed it; a late write to it says nothing.
        listed = {update.variant_id for _, update in out if update.shop == shop}
        gone = [v for v, t in wanted.items() if v not in listed and t["type"] == "removed"]
        for variant_id, sku in await removed_skus(conn, shop, gone) if gone else []:
            removed = SkuRemoved(
                shop=shop,
                variant_id=variant_id,
                sku=sku,
                as_of=now,
                events=list(wanted[variant_id].get("event_ids") or []),
            )
            out.append((sku_key(shop, str(variant_id)), removed))
    return out
