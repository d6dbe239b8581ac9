"""The shop as Shopify reports it, read at the boundary."""

from __future__ import annotations

import pytest


def test_shopifys_shop_answer_is_read_once_and_an_unknown_zone_is_none() -> None:
    """A zone newer than this machine's tz database refused the install at the database, so
    the merchant could not connect; anything not a place's zone was stored as it came. None,
    not "UTC", so that it cannot overwrite a shop's own zone."""
    from connectors.shopify.shop_details import ShopDetails

    def read(zone: object) -> str | None:
        answer = {"name": "Demo", "ianaTimezone": zone, "currencyCode": "EUR"}
        return ShopDetails.model_validate(answer).timezone

    assert read("Europe/Berlin") == "Europe/Berlin"
    for zone in ("Mars/Base", "posixrules", "localtime", "", None, 7):
        assert read(zone) is None
    with pytest.raises(ValueError, match="currencyCode"):
        ShopDetails.model_validate({"name": "Demo", "ianaTimezone": "UTC", "currencyCode": ""})
