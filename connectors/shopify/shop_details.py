"""The shop as Shopify reports it (``shop { name ianaTimezone currencyCode }``), read once
here for the connect and reconcile paths alike."""

from __future__ import annotations

import logging

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from connectors.shopify.admin import AdminClient, AdminError
from connectors.zones import place_zone

log = logging.getLogger("stockpulse.shopify")

SHOP_QUERY = "{ shop { name ianaTimezone currencyCode } }"


class ShopDetails(BaseModel):
    model_config = ConfigDict(frozen=True)

    name: str
    # None: not a place's zone this machine knows (see _known_zone).
    timezone: str | None = Field(alias="ianaTimezone")
    currency: str = Field(alias="currencyCode", min_length=3, max_length=3)

    @field_validator("timezone", mode="before")
    @classmethod
    def _known_zone(cls, value: object) -> str | None:
        # A zone newer than this machine's tz database (or not a place's zone at all) cannot
        # bucket days here. The shop is still served rather than refused (its merchant could
        # not connect at all otherwise): on the zone it has, or UTC when it is new. Not "UTC"
        # itself, which would overwrite a shop's good zone, and the days of every order
        # written meanwhile, on a machine whose tz database is older than the last one's.
        known = place_zone(value if isinstance(value, str) else None)
        if known is None:
            log.warning("Shopify reported time zone %.60r, not known here: not changed", value)
        return known


async def shop_details(client: AdminClient) -> ShopDetails:
    answer = (await client.query(SHOP_QUERY)).get("shop")
    try:
        return ShopDetails.model_validate(answer)
    except ValidationError as exc:
        raise AdminError(f"Shopify's shop answer is not what its schema says: {exc}") from None
