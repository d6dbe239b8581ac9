"""Time zones by the names the tz database gives places, shared by everything that takes a
zone from outside: the CLI, the settings pages and what Shopify reports for a shop."""

from __future__ import annotations

from functools import cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones


@cache
def time_zones() -> frozenset[str]:
    """The IANA place names this machine knows: the only ones accepted, since whatever is
    saved must load wherever it is used. Factory (a placeholder zone) and localtime (this
    machine's own zone, whatever it is) load too, and are no shop's zone; files such as
    posixrules and right/UTC (leap seconds) are not in the list at all."""
    return frozenset(available_timezones() - {"Factory", "localtime"})


def place_zone(name: str | None) -> str | None:
    """``name`` without surrounding blanks when it names a place's zone here, else None."""
    name = (name or "").strip()
    return name if name in time_zones() else None


def zone_or_utc(name: str | None) -> ZoneInfo:
    """A stored zone to compute with; UTC for none (a zone saved by an older tz database)."""
    try:
        return ZoneInfo(place_zone(name) or "UTC")
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")
