"""A shop's settings page and API: planning settings (lead time, service level, target days of
cover, low-stock threshold) with per-product overrides, and alert settings (recipients, mode,
rules; parsed in ``web/alert_settings.py``) with a test email. Owners change them, everyone
reads them; the time zone and currency come from Shopify and are shown, never edited. A
planning change replans the shop within a forecast check (``STOCKPULSE_FORECAST_CHECK_S``)."""

from __future__ import annotations

import re
from typing import Annotated, Any

from litestar import Controller, Request, Response, delete, get, post, put
from litestar.datastructures import State
from litestar.enums import RequestEncodingType
from litestar.exceptions import NotFoundException, ValidationException
from litestar.params import Body, FromPath, JSONBody
from litestar.response import Redirect, Template
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from connectors.db import alerts as alert_db
from connectors.db import shop_settings
from connectors.db.queries import sku_rows
from connectors.db.shop_settings import Overrides
from web import alert_settings
from web.accounts import unprintable
from web.alert_settings import AlertSettingsIn, AlertSettingsOut, FormInput
from web.auth import known_id, require_shop
from web.json_numbers import JsonFloat, JsonInt

FormBody = Body(media_type=RequestEncodingType.URL_ENCODED)


class SettingsIn(BaseModel):
    """Settings as the API takes them; a missing or null field leaves the one below in force
    (a product → its shop → the deployment's defaults)."""

    model_config = ConfigDict(extra="forbid")
    # JSON numbers only: `true` was read as 1 and `false` as 0, and a low-stock threshold of 0
    # moves the alert line (an outside test).
    lead_time_days: JsonInt | None = Field(default=None, ge=1, le=365)
    # The column keeps four decimals: 0.99999 would be stored as 1, which no policy can meet.
    service_level: JsonFloat | None = Field(default=None, ge=0.5, le=0.9999)
    target_cover_days: JsonInt | None = Field(default=None, ge=1, le=730)
    low_stock_threshold: JsonInt | None = Field(default=None, ge=0, le=1_000_000)

    def overrides(self) -> Overrides:
        return Overrides(**self.model_dump())


def _from_form(data: dict[str, str]) -> SettingsIn:
    """The form's fields (service level in per cent, blanks meaning "inherit") as settings;
    raises ValidationException with every problem, so nothing is saved."""
    raw: dict[str, Any] = {}
    problems: list[str] = []
    for name, label in _LABELS.items():
        text = (data.get(name) or "").strip()
        if not text:
            continue
        # Plain digits only: float() also reads "1_0", "٣", "７", "1e400" and "nan".
        if _NUMBER.fullmatch(text) is None:
            problems.append(f"{label}: enter a number")
            continue
        number = float(text.replace(",", "."))
        if name == "service_level":
            raw[name] = number / 100
        elif number != int(number):
            problems.append(f"{label}: enter a whole number")
        else:
            raw[name] = int(number)
    try:
        parsed = SettingsIn(**raw)
    except ValidationError as exc:
        problems += [f"{_LABELS[str(e['loc'][0])]}: {_plain(e)}" for e in exc.errors()]
    if problems:
        raise ValidationException("; ".join(problems))
    return parsed


_NUMBER = re.compile(r"-?[0-9]{1,9}(?:[.,][0-9]{1,9})?")

_LABELS = {
    "lead_time_days": "Lead time (days)",
    "service_level": "Service level (%)",
    "target_cover_days": "Target days of cover",
    "low_stock_threshold": "Low-stock threshold (units)",
}


def _plain(error: Any) -> str:
    bounds = {
        "lead_time_days": "between 1 and 365",
        "service_level": "from 50 to 99.99",
        "target_cover_days": "between 1 and 730",
        "low_stock_threshold": "0 or more",
    }
    return f"must be {bounds.get(str(error['loc'][0]), 'valid')}"


class SettingsController(Controller):
    @get("/shops/{shop_domain:str}/settings", include_in_schema=False)
    async def page(
        self, request: Request[Any, Any, Any], state: State, shop_domain: FromPath[str]
    ) -> Template:
        caller, shop, role = await require_shop(request, shop_domain)
        return await _page(
            state, shop, caller, role, notice=_NOTICES.get(request.query_params.get("saved", ""))
        )

    @post("/shops/{shop_domain:str}/settings", include_in_schema=False)
    async def save_form(
        self,
        request: Request[Any, Any, Any],
        state: State,
        shop_domain: FromPath[str],
        data: Annotated[dict[str, str], FormBody],
    ) -> Response[Any]:
        caller, shop, role = await require_shop(request, shop_domain, owner=True)
        variant = (data.get("variant_id") or "").strip()
        try:
            values = _from_form(data)
            variant_id = int(variant) if variant else None
        except (ValidationException, ValueError) as exc:
            detail = exc.detail if isinstance(exc, ValidationException) else "unknown product"
            return await _page(state, shop, caller, role, errors=detail, status_code=400)
        async with state.pool.connection() as conn:
            if variant_id is None:
                await shop_settings.save_shop(conn, shop_domain, values.overrides())
            else:
                await _known_variant(conn, shop_domain, variant_id)
                await shop_settings.save_product(conn, shop_domain, variant_id, values.overrides())
            await conn.commit()
        return Redirect(f"/shops/{shop_domain}/settings?saved=1", status_code=303)

    @post(
        "/shops/{shop_domain:str}/settings/products/{variant_id:int}/clear", include_in_schema=False
    )
    async def clear_form(
        self,
        request: Request[Any, Any, Any],
        state: State,
        shop_domain: FromPath[str],
        variant_id: FromPath[int],
    ) -> Redirect:
        await require_shop(request, shop_domain, owner=True)
        async with state.pool.connection() as conn:
            await _known_variant(conn, shop_domain, variant_id, deleted_ok=True)
            await shop_settings.save_product(conn, shop_domain, variant_id, None)
            await conn.commit()
        return Redirect(f"/shops/{shop_domain}/settings?saved=1", status_code=303)

    @post("/shops/{shop_domain:str}/settings/alerts", include_in_schema=False)
    async def save_alerts_form(
        self, request: Request[Any, Any, Any], state: State, shop_domain: FromPath[str]
    ) -> Response[Any]:
        caller, shop, role = await require_shop(request, shop_domain, owner=True)
        form = await request.form()
        sent = alert_settings.form_input(form, form.getall("rules", []))
        parsed, errors = alert_settings.parse_form(sent)
        if parsed is None:
            return await _page(
                state, shop, caller, role, alerts_form=sent, alert_errors=errors, status_code=400
            )
        async with state.pool.connection() as conn:
            await alert_db.save_settings(conn, shop_domain, parsed.over(alert_db.AlertSettings()))
            await alert_db.set_recipients(conn, shop_domain, parsed.recipients)
            await conn.commit()
        return Redirect(f"/shops/{shop_domain}/settings?saved=alerts#alerts", status_code=303)

    @post("/shops/{shop_domain:str}/settings/alerts/resubscribe", include_in_schema=False)
    async def resubscribe_form(
        self,
        request: Request[Any, Any, Any],
        state: State,
        shop_domain: FromPath[str],
        data: Annotated[dict[str, str], FormBody],
    ) -> Redirect:
        await require_shop(request, shop_domain, owner=True)
        email = data.get("email") or ""
        if unprintable(email):
            raise NotFoundException("unknown recipient")
        async with state.pool.connection() as conn:
            found = await alert_db.resubscribe(conn, shop_domain, email)
            await conn.commit()
        if not found:
            raise NotFoundException("unknown recipient")
        return Redirect(f"/shops/{shop_domain}/settings?saved=resubscribed#alerts", status_code=303)

    @post("/shops/{shop_domain:str}/settings/alerts/test", include_in_schema=False, status_code=200)
    async def test_email(
        self, request: Request[Any, Any, Any], state: State, shop_domain: FromPath[str]
    ) -> Template:
        # Answered with the page rather than a redirect: the outcomes are this request's own.
        caller, shop, role = await require_shop(request, shop_domain, owner=True)
        try:
            outcomes = await alert_settings.send_test(state.pool, state.settings, shop_domain)
        except alert_settings.TestTooSoon as wait:
            # htmx swaps no 4xx answer: the box kept the last test's "accepted", as if this
            # one had gone out too (an outside test). The button's request gets its answer in
            # the box; a form posted without JavaScript keeps the 429.
            return await _page(
                state,
                shop,
                caller,
                role,
                test_wait_s=wait.wait_s,
                status_code=200 if request.headers.get("hx-request") == "true" else 429,
            )
        return await _page(state, shop, caller, role, test_outcomes=outcomes)

    @get("/api/v1/shops/{shop_domain:str}/alert-settings")
    async def read_alerts(
        self, request: Request[Any, Any, Any], state: State, shop_domain: FromPath[str]
    ) -> AlertSettingsOut:
        _, shop, _ = await require_shop(request, shop_domain)
        async with state.pool.connection() as conn:
            values = await alert_db.settings_of(conn, shop_domain)
            people = await alert_db.recipients(conn, shop_domain)
            await conn.commit()
        return alert_settings.public(values, people, shop.get("timezone"))

    @put("/api/v1/shops/{shop_domain:str}/alert-settings")
    async def write_alerts(
        self,
        request: Request[Any, Any, Any],
        state: State,
        shop_domain: FromPath[str],
        data: JSONBody[AlertSettingsIn],
    ) -> AlertSettingsOut:
        _, shop, _ = await require_shop(request, shop_domain, owner=True)
        async with state.pool.connection() as conn:
            values = data.over(await alert_db.settings_of(conn, shop_domain))
            await alert_db.save_settings(conn, shop_domain, values)
            if "recipients" in data.model_fields_set:
                await alert_db.set_recipients(conn, shop_domain, data.recipients)
            people = await alert_db.recipients(conn, shop_domain)
            await conn.commit()
        return alert_settings.public(values, people, shop.get("timezone"))

    @get("/api/v1/shops/{shop_domain:str}/settings")
    async def read(
        self, request: Request[Any, Any, Any], state: State, shop_domain: FromPath[str]
    ) -> dict[str, Any]:
        await require_shop(request, shop_domain)
        return _public(await _context(state, shop_domain))

    @put("/api/v1/shops/{shop_domain:str}/settings")
    async def write(
        self,
        request: Request[Any, Any, Any],
        state: State,
        shop_domain: FromPath[str],
        data: JSONBody[SettingsIn],
    ) -> dict[str, Any]:
        await require_shop(request, shop_domain, owner=True)
        async with state.pool.connection() as conn:
            await shop_settings.save_shop(conn, shop_domain, data.overrides())
            await conn.commit()
        return _public(await _context(state, shop_domain))

    @put("/api/v1/shops/{shop_domain:str}/settings/products/{variant_id:int}")
    async def write_product(
        self,
        request: Request[Any, Any, Any],
        state: State,
        shop_domain: FromPath[str],
        variant_id: FromPath[int],
        data: JSONBody[SettingsIn],
    ) -> dict[str, Any]:
        await require_shop(request, shop_domain, owner=True)
        async with state.pool.connection() as conn:
            await _known_variant(conn, shop_domain, variant_id)
            await shop_settings.save_product(conn, shop_domain, variant_id, data.overrides())
            await conn.commit()
        return _public(await _context(state, shop_domain))

    @delete("/api/v1/shops/{shop_domain:str}/settings/products/{variant_id:int}", status_code=200)
    async def clear_product(
        self,
        request: Request[Any, Any, Any],
        state: State,
        shop_domain: FromPath[str],
        variant_id: FromPath[int],
    ) -> dict[str, Any]:
        await require_shop(request, shop_domain, owner=True)
        async with state.pool.connection() as conn:
            await _known_variant(conn, shop_domain, variant_id, deleted_ok=True)
            await shop_settings.save_product(conn, shop_domain, variant_id, None)
            await conn.commit()
        return _public(await _context(state, shop_domain))


async def _known_variant(
    conn: Any, shop: str, variant_id: int, *, deleted_ok: bool = False
) -> None:
    """NotFoundException unless the shop has the variant: a deleted one took an override
    no page shows (an outside test), though its override may still be cleared."""
    known_id(variant_id)
    cur = await conn.execute(
        "SELECT 1 FROM variants WHERE shop = %s AND variant_id = %s AND (%s OR NOT deleted)",
        (shop, variant_id, deleted_ok),
    )
    if await cur.fetchone() is None:
        raise NotFoundException("unknown product")


_NOTICES = {
    "alerts": "Alert settings saved.",
    "resubscribed": "Resubscribed: they get alert emails again.",
}


async def _page(
    state: State,
    shop: dict[str, Any],
    caller: Any,
    role: str,
    *,
    errors: str | None = None,
    alerts_form: FormInput | None = None,
    alert_errors: dict[str, str] | None = None,
    test_outcomes: list[alert_settings.TestOutcome] | None = None,
    test_wait_s: int | None = None,
    notice: str | None = None,
    status_code: int = 200,
) -> Template:
    """The settings page; a refused form comes back as it was typed, with its errors."""
    context = await _context(state, shop["domain"])
    async with state.pool.connection() as conn:
        alerts = await alert_settings.page_context(
            conn, shop["domain"], shop.get("timezone"), sent=alerts_form, errors=alert_errors
        )
        await conn.commit()
    return Template(
        "settings.html",
        context={
            **context,
            "shop": shop,
            "caller": caller,
            "role": role,
            "errors": errors,
            "alerts": alerts,
            "test_outcomes": test_outcomes,
            "test_wait_s": test_wait_s,
            "notice": notice,
        },
        status_code=status_code,
    )


async def _context(state: State, shop: str) -> dict[str, Any]:
    defaults = shop_settings.deployment_defaults(state.settings)
    async with state.pool.connection() as conn:
        own = await shop_settings.shop_overrides(conn, shop)
        products = await shop_settings.product_overrides(conn, shop)
        rows = await sku_rows(conn, shop)
        cur = await conn.execute("SELECT timezone, currency FROM shops WHERE domain = %s", (shop,))
        found = await cur.fetchone()
        await conn.commit()
    names = {r.variant_id: f"{r.title or ''} {r.sku or ''}".strip() for r in rows}
    return {
        "deployment": defaults,
        "own": own,
        "in_force": own.over(defaults),
        "products": [
            {
                "variant_id": v,
                "name": names.get(v, str(v)),
                "own": o,
                "in_force": o.over(own.over(defaults)),
            }
            for v, o in products.items()
        ],
        "variants": sorted(names.items(), key=lambda item: item[1].lower()),
        "timezone": found["timezone"] if found else "UTC",
        "currency": found["currency"] if found else None,
    }


def _public(context: dict[str, Any]) -> dict[str, Any]:
    def plain(value: Any) -> dict[str, Any]:
        return dict(vars(value))

    return {
        "timezone": context["timezone"],
        "currency": context["currency"],
        "deployment_defaults": plain(context["deployment"]),
        "shop": plain(context["own"]),
        "in_force": plain(context["in_force"]),
        "products": [
            {
                "variant_id": p["variant_id"],
                "own": plain(p["own"]),
                "in_force": plain(p["in_force"]),
            }
            for p in context["products"]
        ],
    }
