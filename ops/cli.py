"""The ``stockpulse`` command line."""

from __future__ import annotations

import asyncio
import logging
import os
import sys
import unicodedata
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from connectors.settings import get_settings

if TYPE_CHECKING:
    from rich.console import Console

WS_MAX_MESSAGE_BYTES = 4096  # a feed reads nothing from its client but the close


def _logging(level: str) -> None:
    logging.basicConfig(
        level=level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )


class _Commands(click.Group):
    """Failures an operator can fix are told in a line, not a traceback (one means a bug)."""

    def invoke(self, ctx: click.Context) -> Any:
        import httpx
        import psycopg
        from pydantic import ValidationError

        from connectors.crypto import CannotOpen
        from connectors.settings import BadSetting
        from connectors.shopify.admin import AdminError, Unavailable
        from connectors.shopify.oauth import GrantRefused

        try:
            return super().invoke(ctx)
        except ValidationError as exc:
            if exc.title != "Settings":
                raise
            raise click.ClickException(_bad_settings(exc)) from None
        except BadSetting as exc:
            raise click.ClickException(str(exc)) from None
        except psycopg.OperationalError as exc:
            # Only a connection that failed (SQLSTATE class 08, or none at all): a deadlock or
            # a cancelled statement is not "cannot reach".
            if exc.sqlstate is not None and not exc.sqlstate.startswith("08"):
                raise
            lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
            reason = lines[0] if lines else type(exc).__name__
            raise click.ClickException(
                f"cannot reach the database (DATABASE_URL): {reason}"
            ) from None
        except psycopg.errors.InvalidParameterValue as exc:  # a zone PostgreSQL does not know
            raise click.ClickException(str(exc).strip().splitlines()[0]) from None
        except (LookupError, GrantRefused) as exc:
            # What this code raises for "no such shop, account or token"; a KeyError or
            # IndexError is a bug, and keeps its traceback.
            if isinstance(exc, KeyError | IndexError):
                raise
            raise click.ClickException(str(exc)) from None
        except CannotOpen as exc:
            raise click.ClickException(
                f"{exc}: STOCKPULSE_ENCRYPTION_KEYS does not hold the key it was sealed with"
            ) from None
        except (Unavailable, httpx.TransportError) as exc:
            # Shopify away (an outside test got a page of httpx traceback from `reconcile`).
            raise click.ClickException(f"Shopify could not be reached: {exc}") from None
        except AdminError as exc:
            raise click.ClickException(f"Shopify refused: {exc}") from None


def _bad_settings(exc: Any) -> str:
    """What is wrong with the environment, by variable, without the values (a URL or secret
    may be among them)."""
    problems = [
        f"{str(error['loc'][0]).upper() if error['loc'] else '?'}: {error['msg']}"
        for error in exc.errors(include_url=False, include_input=False)
    ]
    return "bad setting(s) in the environment: " + "; ".join(problems)


@click.group(cls=_Commands)
def main() -> None:
    """Stockpulse: real-time inventory forecasting and alerting for Shopify stores."""


@main.command()
@click.option(
    "--port",
    default=8000,
    show_default=True,
    type=click.IntRange(1, 65535),
    help="Port of the dashboard and webhooks.",
)
@click.option(
    "--data-dir",
    default=".data",
    show_default=True,
    type=click.Path(),
    help="Where the embedded PostgreSQL cluster and logs live.",
)
@click.option(
    "--simulate/--no-simulate",
    default=True,
    show_default=True,
    help="Run the demo store that sends signed webhooks.",
)
@click.option("--orders-per-minute", default=30.0, show_default=True)
def up(port: int, data_dir: str, simulate: bool, orders_per_minute: float) -> None:
    """Run the whole product on embedded defaults (Ctrl-C stops everything)."""
    from ops.stack import run_stack

    _logging("warning")
    sys.exit(
        run_stack(
            port=port, data_dir=data_dir, simulate=simulate, orders_per_minute=orders_per_minute
        )
    )


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
# uvicorn takes a port past 65535 modulo 65536 (99999 listened on 34463, an outside test).
@click.option("--port", default=8000, show_default=True, type=click.IntRange(1, 65535))
@click.option(
    "--workers",
    default=1,
    show_default=True,
    type=click.IntRange(min=1),
    help="Web processes sharing the port.",
)
def web(host: str, port: int, workers: int) -> None:
    """Serve the web app (webhooks, dashboard, API, WebSocket feed)."""
    import uvicorn

    from web.server import DeadlineHttpToolsProtocol

    _warn_development_secret()
    _keyring()  # refuse to start without a key, before uvicorn's workers try
    uvicorn.run(
        "web.app:create_served_app",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_level="warning",
        access_log=False,
        loop="uvloop",
        # httptools with a deadline for request headers (uvicorn has none).
        http=DeadlineHttpToolsProtocol,
        ws="websockets-sansio",
        # Clients send the feed nothing it reads: 100 messages of 15 MB took 1.3 GB before.
        ws_max_size=WS_MAX_MESSAGE_BYTES,
        lifespan="on",
    )


@main.command()
@click.option("--loglevel", default="warn", show_default=True)
def worker(loglevel: str) -> None:
    """Run the stream worker (Faust)."""
    from connectors.db.migrate import migrate as apply_migrations
    from streams.worker import run_worker

    _keyring()  # the worker will handle shop credentials: no start without a key
    apply_migrations(get_settings().database_url)
    run_worker(loglevel)


@main.command("alert-sender")
@click.option("--loglevel", default="info", show_default=True)
def alert_sender(loglevel: str) -> None:
    """Send alert emails through SMTP_URL: immediate groups and daily digests."""
    from connectors.db.migrate import migrate as apply_migrations
    from streams.alert_delivery import main as run_alert_sender

    apply_migrations(get_settings().database_url)
    run_alert_sender(["--loglevel", loglevel])


@main.command()
def migrate() -> None:
    """Apply database migrations."""
    from connectors.db.migrate import migrate as apply_migrations

    _logging("info")
    applied = apply_migrations(get_settings().database_url)
    click.echo(f"applied {len(applied)} migration(s)" if applied else "database is up to date")


@main.group()
def shops() -> None:
    """Manage installed shops."""


def _shop_domain(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    """A store's domain as webhooks name it (lower case), or a usage error."""
    from connectors.db.shops import SHOP_DOMAIN

    if value is None:
        return None
    domain = value.strip().lower()
    if not SHOP_DOMAIN.match(domain):
        raise click.BadParameter(f"{value!r} is not a STORE.myshopify.com domain")
    return domain


def _time_zone(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    from connectors.zones import place_zone

    if value is None:
        return None
    known = place_zone(value)
    if known is None:
        raise click.BadParameter(
            f"{value.strip()[:60]!r} is not a time zone name such as Europe/Berlin"
            " or America/New_York"
        )
    return known


@shops.command("add")
@click.argument("domain", callback=_shop_domain)
@click.option("--name", default=None)
@click.option(
    "--timezone",
    default=None,
    callback=_time_zone,
    help="IANA name; a new shop without one gets UTC, a shop added again keeps its own.",
)
def shops_add(domain: str, name: str | None, timezone: str | None) -> None:
    """Install a shop by hand (the Shopify OAuth flow does this for real shops)."""
    from connectors.db.shops import held_shop, install_shop, rename_shop

    database_url = get_settings().database_url
    held = held_shop(database_url, domain)
    # A connected shop's zone is Shopify's: one typed here moved its "today" until the next
    # reconcile put it back, silently (an outside test).
    if held and held.connected and timezone not in (None, held.timezone):
        raise click.ClickException(
            f"{domain} is connected to Shopify, whose time zone for it ({held.timezone}) "
            "is the one it keeps; `stockpulse reconcile` reads it again"
        )
    if held is None or not held.installed:
        install_shop(database_url, domain, name=name, timezone=timezone)
        click.echo(f"installed {domain}{'' if held is None else ' again'}")
        return
    changed = [
        what
        for what, given, has in (("name", name, held.name), ("time zone", timezone, held.timezone))
        if given not in (None, has)
    ]
    if changed:
        rename_shop(database_url, domain, name=name, timezone=timezone)
    said = f"its {' and '.join(changed)} as given now" if changed else "nothing changed"
    click.echo(f"{domain} was installed already; {said}")


@shops.command("assign")
@click.option("--shop", required=True, callback=_shop_domain)
@click.option("--email", required=True, help="The account that gets the shop.")
@click.option("--role", type=click.Choice(["owner", "viewer"]), default="owner", show_default=True)
@click.option(
    "--unconfirmed-ok",
    is_flag=True,
    help="Also an account that has not confirmed its address (you know who made it).",
)
def shops_assign(shop: str, email: str, role: str, unconfirmed_ok: bool) -> None:
    """Give an account a shop (one connected from the command line has no owner yet)."""
    from connectors.db.accounts import LastOwner
    from ops.account_tools import assign

    try:
        assign(get_settings().database_url, shop, email, role, unconfirmed_ok=unconfirmed_ok)
    except LookupError as exc:
        raise click.ClickException(str(exc)) from None
    except LastOwner:
        raise click.ClickException(
            f"{email} is the only owner of {shop}: make someone else an owner first"
        ) from None
    click.echo(f"{email} is now {role} of {shop}")


@main.group()
def users() -> None:
    """Manage accounts (people sign up in the web app too)."""


@users.command("create")
@click.option("--email", required=True)
@click.password_option(help="Asked for when not given.")
def users_create(email: str, password: str) -> None:
    """Create an account."""
    from connectors.db.accounts import EmailTaken
    from ops.account_tools import create_user
    from web.accounts import email_problem

    # The web app's rules: an address no mail reaches would be marked confirmed all the same.
    problem = email_problem(email.strip())
    if problem:
        raise click.BadParameter(f"{email!r}: {problem}", param_hint="--email")
    try:
        create_user(get_settings().database_url, email.strip(), password)
    except (ValueError, EmailTaken) as exc:
        raise click.ClickException(
            f"an account uses {email} already" if isinstance(exc, EmailTaken) else str(exc)
        ) from None
    click.echo(f"created {email}")


@main.group()
def tokens() -> None:
    """API tokens, for scripts: sent as Authorization: Bearer <token>."""


def _token_name(_ctx: click.Context, _param: click.Parameter, value: str) -> str:
    """The API's rule for a token's name (the command line took an empty one)."""
    from web.tokens import NAME_MAX

    if not value.strip() or len(value) > NAME_MAX:
        raise click.BadParameter(f"a name of 1 to {NAME_MAX} characters, not all blank")
    return value


@tokens.command("create")
@click.option("--email", required=True, help="The account the token acts for.")
@click.option("--name", required=True, callback=_token_name, help="What it is for.")
@click.option("--read-only", is_flag=True, help="It may read, never change anything.")
def tokens_create(email: str, name: str, read_only: bool) -> None:
    """Create an API token; it is shown once (only its hash is stored)."""
    from ops.account_tools import create_token

    try:
        token = create_token(get_settings().database_url, email, name, read_only=read_only)
    except LookupError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(token)


@main.command()
@click.option("--url", default="http://127.0.0.1:8000", show_default=True)
@click.option("--shop", default="demo.myshopify.com", show_default=True, callback=_shop_domain)
@click.option(
    "--orders-per-minute", default=30.0, show_default=True, type=click.FloatRange(min=0.01)
)
@click.option("--backfill-days", default=0, show_default=True, type=click.IntRange(min=0))
@click.option("--seed", default=7, show_default=True)
@click.option("--duration", default=None, type=float, help="Stop after this many seconds.")
def simulate(
    url: str,
    shop: str,
    orders_per_minute: float,
    backfill_days: int,
    seed: int,
    duration: float | None,
) -> None:
    """Send a demo store's signed webhooks to a running Stockpulse."""
    from ops.simulator import Refused, StoreSimulator

    _logging("info")
    _answers_at(url)
    secret = get_settings().webhook_secrets[0].decode()
    # Unlike the demo of `up`, whose shop may be uninstalled on purpose, a refusal here is a
    # mistake in the command: a secret or shop another deployment's (an outside test).
    sim = StoreSimulator(
        url, shop, secret, seed=seed, orders_per_minute=orders_per_minute, stop_when_refused=True
    )
    try:
        asyncio.run(sim.run(backfill_days=backfill_days, duration_s=duration))
    except KeyboardInterrupt:
        pass
    except Refused as exc:
        hint = "; is SHOPIFY_API_SECRET the shop's webhook secret?" if exc.status == 401 else ""
        raise click.ClickException(f"{exc}{hint}") from None
    click.echo(f"sent {sim.sent} webhooks")


def _answers_at(url: str) -> None:
    """ClickException unless a Stockpulse answers at ``url``. The simulator retries each
    webhook for good, as Shopify does for hours, and a mistyped URL only ever logged retries
    (an outside test); a web app that goes away later is still waited for."""
    import httpx

    try:
        answer = httpx.get(f"{url.rstrip('/')}/healthz", timeout=5)
    except (httpx.HTTPError, ValueError) as exc:
        raise click.ClickException(f"nothing answers at {url} ({exc})") from None
    if answer.status_code != 200:
        raise click.ClickException(f"{url} is not a Stockpulse (/healthz: {answer.status_code})")


@main.group()
def keys() -> None:
    """Encryption keys for shop secrets at rest (STOCKPULSE_ENCRYPTION_KEYS)."""


@keys.command("generate")
def keys_generate() -> None:
    """Print a new key; put it first in STOCKPULSE_ENCRYPTION_KEYS, then `keys rotate`."""
    from connectors.crypto import generate_key

    click.echo(generate_key())


@keys.command("rotate")
def keys_rotate() -> None:
    """Re-seal every stored secret under the newest key; older keys can then be dropped."""
    from connectors.db import credentials

    keyring = _keyring()

    async def run() -> int:
        async with await _connect() as conn, conn.transaction():
            return await credentials.rotate(conn, keyring)

    click.echo(f"re-sealed {asyncio.run(run())} secret(s) under the newest key")


@main.command()
@click.option("--shop", required=True, help="The store's myshopify.com domain.")
@click.option("--client-id", default=None, help="Your Dev Dashboard app's client id.")
@click.option("--client-secret", default=None, help="… and its client secret.")
@click.option("--token", default=None, help="Or: an older custom app's static token (shpat_…).")
@click.option("--webhook-secret", default=None, help="With --token: its webhook secret.")
@click.option(
    "--admin-url",
    default=None,
    help="This store's Admin URL template, if not SHOPIFY_ADMIN_URL (a fake Shopify).",
)
@click.option("--backfill/--no-backfill", default=True, show_default=True)
@click.option("--months", default=24, show_default=True, help="Order history to backfill.")
@click.option(
    "--refit/--no-refit",
    default=True,
    show_default=True,
    help="Fit the forecasts once the history is in (else the nightly run does).",
)
def connect(
    shop: str,
    client_id: str | None,
    client_secret: str | None,
    token: str | None,
    webhook_secret: str | None,
    admin_url: str | None,
    backfill: bool,
    months: int,
    refit: bool,
) -> None:
    """Connect your own store: with your app's client id and secret (client credentials
    grant: tokens are renewed on their own), or with an older app's static token and webhook
    secret. Either way the store's webhooks then verify with that app's secret only."""
    import httpx

    from connectors.db import credentials
    from connectors.db.pool import open_pool
    from connectors.db.shops import SHOP_DOMAIN
    from connectors.shopify.connect import connect as connect_store

    if not SHOP_DOMAIN.match(shop):
        raise click.BadParameter("must be a STORE.myshopify.com domain", param_hint="--shop")
    if (client_id or client_secret) and (token or webhook_secret):
        # Which app's secret would its webhooks verify with? Neither is guessed.
        raise click.UsageError(
            "give either --client-id and --client-secret, or --token and --webhook-secret"
        )
    if client_id and client_secret:
        creds = credentials.Credentials(
            shop=shop.lower(),
            mode="client_credentials",
            client_id=client_id,
            client_secret=client_secret,
            admin_url=admin_url,
        )
    elif token and webhook_secret:
        creds = credentials.Credentials(
            shop=shop.lower(),
            mode="static",
            access_token=token,
            client_secret=webhook_secret,
            admin_url=admin_url,
        )
    else:
        raise click.UsageError(
            "give --client-id and --client-secret, or --token and --webhook-secret"
        )
    keyring = _keyring()
    settings = get_settings()

    async def run() -> Any:
        pool = await open_pool(settings.database_url, max_size=2)
        try:
            async with httpx.AsyncClient(timeout=15) as http:
                return await connect_store(pool, keyring, http, settings, creds)
        finally:
            await pool.close()

    try:
        done = asyncio.run(run())
    except Exception as exc:
        raise click.ClickException(f"not connected: {exc}") from None
    click.echo(
        f"connected {done.shop} ({done.name}, {done.timezone or 'its zone unknown here'},"
        f" {done.currency}, {creds.mode});"
        " its webhooks verify with its app's secret"
    )
    if backfill:
        _backfill(done.shop, months, progress=True, refit=refit)


@main.command("reconcile")
@click.option("--shop", required=True, callback=_shop_domain)
def reconcile_command(shop: str) -> None:
    """Compare a connected store with Shopify now (stock levels, and orders updated since the
    last pass) and correct what webhooks left wrong; the worker does this hourly."""
    from streams.reconcile import run_reconciliation

    _keyring()
    _installed(shop)
    try:
        report = asyncio.run(run_reconciliation(shop))
    except (LookupError, RuntimeError) as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(
        f"reconciled {report.shop} (pass {report.reconciliation_id}): {report.levels:,} stock"
        f" levels and {report.orders:,} orders checked, {len(report.corrections)} corrected"
    )
    for c in report.corrections[:50]:
        line = f"{c['subject']}: {c['old_value']} → {c['new_value']} ({c['reason']})"
        click.echo(f"  {_printable(line)}")
    if len(report.corrections) > 50:
        click.echo(f"  … and {len(report.corrections) - 50} more")
    if report.reclaimed:
        click.echo(
            f"  took back {report.reclaimed} row{'' if report.reclaimed == 1 else 's'} another"
            " shop held under this shop's ids"
            f" (a replayed body); {report.replayed} of its dead letters then replayed"
        )


@main.command("backfill")
@click.option("--shop", required=True, callback=_shop_domain)
@click.option(
    "--months",
    default=24,
    show_default=True,
    type=click.IntRange(1, 240),
    help="Order history to read.",
)
@click.option("--progress/--no-progress", default=True, show_default=True)
@click.option(
    "--refit/--no-refit",
    default=True,
    show_default=True,
    help="Fit the forecasts once the history is in (else the nightly run does).",
)
def backfill_command(shop: str, months: int, progress: bool, refit: bool) -> None:
    """Read a connected store's order history (GraphQL bulk export) into Stockpulse; resumable,
    never counting an order twice; then refit its forecasts."""
    _installed(shop)
    _backfill(shop, months, progress, refit)


def _backfill(shop: str, months: int, progress: bool, refit: bool) -> None:
    from streams.backfill import run_backfill
    from streams.refit import refit_and_report

    _keyring()  # a clear message when no key is set
    try:
        report = asyncio.run(run_backfill(shop, months, progress))
    except LookupError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(
        f"backfilled {shop}: {report.variants:,} variants, {report.levels:,} stock levels,"
        f" {report.orders:,} orders, {report.lines:,} order and refund lines"
        + (f" (resumed past {report.skipped:,})" if report.skipped else "")
        + (f"; {report.rejected} set aside in dead letters" if report.rejected else "")
    )
    if not refit:
        return
    # The history is in: forecasts from it now rather than at the next NIGHTLY_AT.
    code = refit_and_report([shop], progress=progress)
    if code not in (0, 75):
        sys.exit(code)


def _installed(shop: str) -> None:
    """A usage error unless ``shop`` is installed."""
    from connectors.db.shops import shop_held

    async def read() -> bool | None:
        async with await _connect() as conn:
            return await shop_held(conn, shop)

    installed = asyncio.run(read())
    if not installed:
        raise click.ClickException(
            f"{shop} is {'not known' if installed is None else 'uninstalled'}: connect it first"
        )


def _keyring() -> Any:
    from connectors.crypto import Keyring

    keys = get_settings().stockpulse_encryption_keys  # its own errors are not about the keys
    try:
        return Keyring.parse(keys)
    except ValueError as exc:
        raise click.ClickException(
            f"{exc}. Shop secrets are stored encrypted: set STOCKPULSE_ENCRYPTION_KEYS "
            "(`stockpulse keys generate` makes one; `stockpulse up` makes its own)."
        ) from None


@main.group("dead-letters")
def dead_letters_group() -> None:
    """Messages set aside because they can never succeed as they are."""


@dead_letters_group.command("list")
@click.option("--shop", default=None, callback=_shop_domain, help="Only this shop.")
@click.option("--all", "include_replayed", is_flag=True, help="Include replayed ones.")
@click.option("--limit", default=50, show_default=True, type=click.IntRange(1, 100_000))
def dead_letters_list(shop: str | None, include_replayed: bool, limit: int) -> None:
    """Newest first: id, stage, shop, topic or kind, when, and why."""
    from rich.table import Table

    from connectors.db import dead_letters

    async def read() -> list[dict[str, Any]]:
        async with await _connect() as conn:
            return await dead_letters.listing(
                conn, shop=shop, include_replayed=include_replayed, limit=limit
            )

    rows = asyncio.run(read())
    table = Table("id", "stage", "shop", "what", "when (UTC)", "reason", "replayed")
    for r in rows:
        table.add_row(
            str(r["id"]),
            r["stage"],
            r["shop"],
            r["topic"] or r["kind"],
            r["created_at"].strftime("%Y-%m-%d %H:%M:%S"),
            r["error"],
            r["replayed_at"].strftime("%Y-%m-%d %H:%M") if r["replayed_at"] else "",
        )
    _console().print(table if rows else "no dead letters")


@dead_letters_group.command("replay")
@click.argument("ids", nargs=-1, type=int)
@click.option("--all", "every", is_flag=True, help="Every open dead letter (with --shop: its).")
@click.option("--shop", default=None, callback=_shop_domain)
def dead_letters_replay(ids: tuple[int, ...], every: bool, shop: str | None) -> None:
    """Put dead letters back where they failed, once their cause is fixed."""
    from connectors.db import dead_letters
    from streams.replay import replay

    if not ids and not every:
        raise click.UsageError("name dead letter ids, or --all")
    # Both were taken, and --all replayed every letter whatever the ids said (an outside test).
    if ids and every:
        raise click.UsageError("name dead letter ids or --all, not both")
    if shop is not None and not every:
        raise click.UsageError("--shop goes with --all")

    async def run() -> list[Any]:
        async with await _connect() as conn:
            wanted = list(ids)
            if every:
                rows = await dead_letters.listing(conn, shop=shop, limit=1_000_000)
                wanted = [r["id"] for r in rows]
            return await replay(conn, sorted(wanted))

    results = asyncio.run(run())
    if every and not results:
        # It printed nothing, as if something had been done (an outside test).
        click.echo(f"no open dead letters{f' of {shop}' if shop else ''}: nothing to replay")
    missing = sorted(set(ids) - {r.id for r in results})
    for r in results:
        click.echo(f"{r.id}: {'replayed' if r.ok else 'still failing'}: {_printable(r.detail)}")
    if missing:
        click.echo(f"no open dead letter {', '.join(map(str, missing))}", err=True)
    if missing or any(not r.ok for r in results):
        sys.exit(1)


async def _connect() -> Any:
    from psycopg import AsyncConnection
    from psycopg.rows import dict_row

    return await AsyncConnection.connect(get_settings().database_url, row_factory=dict_row)


@main.group()
def bench() -> None:
    """Benchmarks against a running stack (figures go to docs/benchmarks.md)."""


@bench.command("ingest")
@click.option("--url", default="http://127.0.0.1:8000", show_default=True)
@click.option("--shop", default="demo.myshopify.com", show_default=True)
@click.option("-n", "--count", default=20000, show_default=True, help="Webhooks for throughput.")
@click.option("-c", "--concurrency", default=64, show_default=True)
@click.option("--e2e-rate", default=200.0, show_default=True, help="Webhooks/s for end-to-end.")
@click.option("--e2e-seconds", default=15.0, show_default=True)
@click.option("--json", "json_out", default=None, type=click.Path(), help="Write results here.")
@click.option(
    "--embedded",
    is_flag=True,
    help="Start a private stack (durable PostgreSQL, local broker) instead of --url.",
)
@click.option("--web-workers", default=1, show_default=True, help="With --embedded.")
def bench_ingest(
    url: str,
    shop: str,
    count: int,
    concurrency: int,
    e2e_rate: float,
    e2e_seconds: float,
    json_out: str | None,
    embedded: bool,
    web_workers: int,
) -> None:
    """Ingress throughput/latency, then end-to-end latency webhook → WebSocket."""
    import shutil
    import tempfile
    from pathlib import Path

    from connectors.db.shops import install_shop
    from ops.account_tools import bench_member
    from ops.bench import run_ingest_bench, write_results
    from ops.stack import Stack

    secret = get_settings().webhook_secrets[0].decode()
    stack = None
    cpu_of: dict[str, int] | None = None
    api_token = get_settings().stockpulse_demo_api_token
    if embedded:
        stack = Stack(
            Path(tempfile.mkdtemp(prefix="stockpulse-bench-")),
            web_workers=web_workers,
            # The bench shop is due for its first nightly refit the moment it is installed;
            # that would measure Prophet's start-up, not the live path.
            extra_env={"NIGHTLY_AT": "off"},
        )
        stack.start_infrastructure()
        install_shop(stack.database_url, shop)
        api_token = bench_member(stack.database_url, shop)
        stack.start_worker()
        stack.start_web()
        url = stack.base_url
        cpu_of = stack.process_ids()
    try:
        results = asyncio.run(
            run_ingest_bench(
                url,
                shop,
                secret,
                count=count,
                concurrency=concurrency,
                e2e_rate=e2e_rate,
                e2e_seconds=e2e_seconds,
                cpu_of=cpu_of,
                api_token=api_token,
            )
        )
        if json_out:
            write_results(results, json_out)
    finally:
        if stack is not None:
            stack.stop()
            shutil.rmtree(stack.data_dir, ignore_errors=True)


@main.command()
@click.option(
    "--shop",
    "shops",
    multiple=True,
    callback=lambda ctx, param, value: tuple(_shop_domain(ctx, param, v) for v in value),
    help="Only these shops (default: all installed).",
)
@click.option(
    "--processes",
    default=0,
    show_default=True,
    type=click.IntRange(0, 64),
    help="Fitting processes; 0: one/core.",
)
@click.option(
    "--day",
    type=click.DateTime(formats=["%Y-%m-%d"]),
    help="Forecast from this shop-local day instead of today (history before it).",
)
@click.option("--progress/--no-progress", default=True, show_default=True)
def nightly(shops: tuple[str, ...], processes: int, day: Any, progress: bool) -> None:
    """Refit every SKU with 14+ sellable days; resumable, committed atomically per shop."""
    from streams.refit import refit_and_report

    _logging("warning")
    # One connection first: the run's pool retries a database that is not there for 30 s,
    # with a warning a second, before it says so (an outside test).
    asyncio.run(_database_answers())
    sys.exit(refit_and_report(shops, processes, day.date() if day else None, progress))


async def _database_answers() -> None:
    """OperationalError (told in a line) unless the database takes a connection."""
    conn = await _connect()
    await conn.close()


# Controls, format characters, surrogates, private use, unassigned, line and paragraph breaks.
_UNPRINTABLE = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"})


def _printable(text: str) -> str:
    r"""``text`` with its control characters escaped: a shop's titles and SKUs come from signed
    webhooks, and an escape sequence in one must not reach the operator's terminal (an
    outside test set the window title through `reconcile`), nor a newline fake a line.

    >>> _printable("SKU\x1b]0;PWNED\x07 a\nb\tc · ü")
    'SKU\\x1b]0;PWNED\\x07 a\\nb\\tc · ü'
    """
    return "".join(
        ch.encode("unicode_escape").decode() if unicodedata.category(ch) in _UNPRINTABLE else ch
        for ch in text
    )


def _console() -> Console:
    """A console for a table: piped or redirected, rich would cut every row to 80 columns,
    wrapping figures and cutting reasons; a terminal keeps its own width."""
    from rich.console import Console

    return Console(width=None if sys.stdout.isatty() else 400)


@main.group()
def forecast() -> None:
    """Forecast accuracy tools."""


@forecast.command("evaluate")
@click.option(
    "--input",
    "input_path",
    required=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="CSV with columns sku,date,quantity (daily; missing days mean zero).",
)
@click.option("--horizon", default=28, show_default=True, type=click.IntRange(1, 366))
@click.option("--folds", default=4, show_default=True, type=click.IntRange(1, 52))
@click.option(
    "--json",
    "json_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write every figure here, by method, and by fold and by series too.",
)
@click.option("--processes", type=click.IntRange(1, 64), help="Default: one per core.")
@click.option(
    "--truth",
    "truth_path",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="CSV of the expected demand the input was drawn from (`forecast synthetic --truth`): "
    "scored as the reference row 'truth'.",
)
def forecast_evaluate(
    input_path: Path,
    horizon: int,
    folds: int,
    json_path: Path | None,
    processes: int | None,
    truth_path: Path | None,
) -> None:
    """Backtest the combined forecast against its peers (statsforecast, Prophet, River, naive)."""
    import time

    from models.members import PROPHET_AFTER_DAYS, PROPHET_AFTER_SALES
    from ops.evaluate import (
        LAUNCH_MIN_DAYS,
        Breakdown,
        InputError,
        check_backtestable,
        evaluate,
        print_table,
        read_demand_csv,
        skipped,
        write_json,
    )

    console = _console()
    if json_path is not None and not os.access(json_path.parent.resolve(), os.W_OK):
        # Found out before the backtest, not after minutes of fitting.
        raise click.ClickException(
            f"cannot write {json_path}: {json_path.parent} is not a writable directory"
        )
    notes: list[str] = []
    try:
        series = read_demand_csv(input_path, notes)
        expected = read_demand_csv(truth_path) if truth_path else None
        check_backtestable(series, horizon, folds)
    except InputError as exc:
        raise click.ClickException(str(exc)) from None
    for note in notes:
        console.print(f"{input_path}: {note}")
    too_short = skipped(series, horizon, folds)
    started = time.perf_counter()
    truth = [expected.get(sku) for sku in series] if expected is not None else None
    launches: dict[str, dict[str, float | None]] = {}
    breakdown = Breakdown()
    results = evaluate(
        list(series.values()),
        horizon,
        folds,
        processes,
        truth=truth,
        launches=launches,
        breakdown=breakdown,
    )
    elapsed = time.perf_counter() - started
    print_table(results, console)
    launch_folds = int(launches.get("combined", {}).get("scored") or 0)
    if launch_folds:
        print_table(
            launches,
            console,
            f"Launches: SKUs too young for every fold, scored in the folds after their first "
            f"{LAUNCH_MIN_DAYS} days of sales ({launch_folds} series × folds; Prophet alone "
            "only where it could fit)",
        )
    left_out = int(next(iter(results.values()))["left_out"] or 0)
    # Every series ends on the file's last date: a later day without rows is not known yet,
    # so the folds move with it (an outside test added one row a day later and every SKU's
    # scores moved, with nothing to say why).
    ends = [s.start + timedelta(days=s.y.size - 1) for s in series.values() if s.start]
    console.print(
        (f"History to {max(ends)}, the file's last date. " if ends else "")
        + f"{len(series)} series ({too_short} too short for {folds} "
        f"{'fold' if folds == 1 else 'folds'} of {horizon} days), {elapsed:.1f} s"
        + (
            f"; {left_out} series × folds left out for every method: one of them could not "
            f"forecast it (Prophet needs {PROPHET_AFTER_DAYS} days in stock and "
            f"{PROPHET_AFTER_SALES} with a sale), or its history gives MASE no scale"
            if left_out
            else ""
        )
    )
    if json_path:
        meta = {
            "input": str(input_path),
            "horizon": horizon,
            "folds": folds,
            "series": len(series),
            "too_short": too_short,
            "left_out": left_out,
            "seconds": round(elapsed, 2),
            "truth": str(truth_path) if truth_path else None,
        }
        write_json(
            results,
            json_path,
            meta,
            launches if launch_folds else None,
            breakdown.as_json(list(series)),
        )


def _kind_shares(
    _ctx: click.Context, _param: click.Parameter, value: str | None
) -> tuple[float, ...]:
    from models.synthetic import KIND_SHARES, kind_shares

    if not value:
        return KIND_SHARES
    chosen = {}
    for part in value.split(","):
        name, _, share = part.partition("=")
        try:
            chosen[name.strip()] = float(share)
        except ValueError:
            raise click.BadParameter(f"{part!r} is not KIND=SHARE") from None
    try:
        return kind_shares(chosen)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


@forecast.command("synthetic")
@click.option("--skus", default=100, show_default=True, type=click.IntRange(1, 100_000))
@click.option("--days", default=730, show_default=True, type=click.IntRange(14, 3650))
@click.option("--seed", default=42, show_default=True, type=int)
@click.option(
    "--output", required=True, type=click.Path(dir_okay=False, path_type=Path), help="Sales CSV."
)
@click.option(
    "--truth",
    "truth_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Also write the expected demand the sales were drawn from.",
)
@click.option(
    "--kinds",
    "shares",
    callback=_kind_shares,
    help="Shares of SKU kinds, e.g. intermittent=0.55,lumpy=0.2 (the kinds not named share "
    "the rest as usual); kinds: steady, seasonal, intermittent, lumpy, launch, promo.",
)
@click.option(
    "--end",
    type=click.DateTime(["%Y-%m-%d"]),
    help="The last day (default 2026-10-31); e.g. 2026-12-31 puts Christmas in the last fold.",
)
def forecast_synthetic(
    skus: int,
    days: int,
    seed: int,
    output: Path,
    truth_path: Path | None,
    shares: tuple[float, ...],
    end: datetime | None,
) -> None:
    """Write one synthetic shop's daily sales as the CSV `forecast evaluate` reads."""
    from models.synthetic import generate, write_csv, write_expected_csv

    # Checked before the shop is generated (minutes for a big one), and said in a line.
    if truth_path is not None and truth_path.resolve() == output.resolve():
        raise click.BadParameter("must not be the sales file", param_hint="--truth")
    for option, path in (("--output", output), ("--truth", truth_path)):
        if path is not None and not path.resolve().parent.is_dir():
            raise click.BadParameter(f"no folder {path.parent}", param_hint=option)
    shop = generate(skus, days, seed=seed, end=end.date() if end else None, shares=shares)
    write_csv(shop, output)
    if truth_path:
        write_expected_csv(shop, truth_path)
    click.echo(f"{skus} SKUs × {days} days (seed {seed}) → {output}")


@bench.command("shopify")
@click.option("--calls", default=200_000, show_default=True, help="Bookkeeping rounds timed.")
@click.option("--queries", default=2000, show_default=True, help="Burst against the fake.")
def bench_shopify(calls: int, queries: int) -> None:
    """The Admin API client: throttle bookkeeping per call, and a burst against the fake."""
    from ops.bench_admin import bookkeeping, burst

    b = bookkeeping(calls)
    click.echo(
        f"throttle bookkeeping: {b['per_call_us_p50']:.2f} µs per call (p50 of 1,000-call "
        f"rounds; worst round {b['per_call_us_max']:.2f} µs) over {calls:,} calls"
    )
    r = asyncio.run(burst(queries))
    click.echo(
        f"burst against the fake Shopify: {r['queries']:,} queries in {r['seconds']:.1f} s "
        f"({r['per_second']:,.0f}/s), {r['throttled_by_server']} throttled by the server"
    )


@bench.command("backfill")
@click.option("--orders", default=50_000, show_default=True)
@click.option("--products", default=2_000, show_default=True)
def bench_backfill(orders: int, products: int) -> None:
    """A store's catalogue and order history from a fake Shopify's bulk exports into a
    private, durable PostgreSQL."""
    import shutil
    import tempfile

    from ops.bench_admin import backfill_bench

    data_dir = tempfile.mkdtemp(prefix="stockpulse-bench-backfill-")
    try:
        r = asyncio.run(backfill_bench(orders, products, data_dir))
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)
    click.echo(
        f"backfill: {r['products']:,} products ({r['variants']:,} variants,"
        f" {r['stock_levels']:,} stock levels) and {r['orders']:,} orders"
        f" ({r['lines']:,} order and refund lines) in {r['seconds']:.1f} s"
        f" (catalogue {r['catalogue_seconds']:.1f} s, orders {r['orders_seconds']:.1f} s ="
        f" {r['order_lines_per_second']:,.0f} order lines/s; export, download, stitch,"
        f" validate, apply);"
        f" run again and checked: {'exactly once' if r['exact'] else 'NOT EXACT'}"
    )


@bench.command("feed")
@click.option("--clients", default=1000, show_default=True, help="Open WebSocket feeds.")
@click.option("--updates", default=30, show_default=True, help="Stock updates sent.")
@click.option("--gap", default=0.5, show_default=True, help="Seconds between updates.")
def bench_feed(clients: int, updates: int, gap: float) -> None:
    """Time one update reaching many open feeds of one shop, on an embedded stack."""
    import shutil
    import tempfile
    from pathlib import Path

    from connectors.db.shops import install_shop
    from ops.account_tools import bench_member
    from ops.bench_feed import feed_fanout
    from ops.stack import Stack

    shop = "bench-feed.myshopify.com"
    secret = get_settings().webhook_secrets[0].decode()
    stack = Stack(
        Path(tempfile.mkdtemp(prefix="stockpulse-bench-feed-")), extra_env={"NIGHTLY_AT": "off"}
    )
    try:
        stack.start_infrastructure()
        install_shop(stack.database_url, shop)
        token = bench_member(stack.database_url, shop)
        stack.start_worker()
        stack.start_web()
        r = asyncio.run(
            feed_fanout(
                stack.base_url, shop, secret, token, clients=clients, updates=updates, gap_s=gap
            )
        )
    finally:
        stack.stop()
        shutil.rmtree(stack.data_dir, ignore_errors=True)
    click.echo(
        f"feed: {r['updates']} updates to {r['clients']} clients: {r['delivered_percent']} %"
        f" delivered, p50 {r['p50_ms']} ms, p99 {r['p99_ms']} ms, max {r['max_ms']} ms"
        " (webhook 200 → each client's receipt)"
    )


@bench.command("alerts")
@click.option("--samples", default=200, show_default=True, help="Timed single crossings.")
@click.option("--shops", default=10, show_default=True, help="Shops the crossings rotate over.")
@click.option("--gap", default=0.3, show_default=True, help="Seconds between crossings.")
@click.option("--burst", default=1000, show_default=True, help="SKUs crossing at once.")
def bench_alerts(samples: int, shops: int, gap: float, burst: int) -> None:
    """Webhook → alert email accepted by the SMTP server; and a burst of alerts, on an
    embedded stack."""
    import json
    import shutil
    import tempfile
    from pathlib import Path

    from ops.bench_alerts import alert_bench

    data_dir = Path(tempfile.mkdtemp(prefix="stockpulse-bench-alerts-"))
    try:
        result = asyncio.run(
            alert_bench(data_dir, samples=samples, shops=shops, gap_s=gap, burst=burst)
        )
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)
    click.echo(json.dumps(result, indent=2))


@bench.command("dashboard")
@click.option("--skus", default=5000, show_default=True)
@click.option("--requests", default=200, show_default=True, help="Timed requests per page.")
def bench_dashboard(skus: int, requests: int) -> None:
    """Server time of the dashboard and reorder-plan pages for a shop of many SKUs."""
    import json
    import shutil
    import tempfile
    from pathlib import Path

    from ops.bench_dashboard import plan_page_bench

    data_dir = Path(tempfile.mkdtemp(prefix="stockpulse-bench-plan-"))
    try:
        result = asyncio.run(plan_page_bench(data_dir, skus=skus, requests=requests))
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)
    click.echo(json.dumps(result, indent=2))


@bench.command("forecast")
@click.option("--skus", default=1000, show_default=True, help="SKUs with 2 years of history.")
@click.option("--single-process-skus", default=200, show_default=True)
def bench_forecast(skus: int, single_process_skus: int) -> None:
    """Online updates/s and forecast latency; Prophet CPU per SKU, 1 vs 2 cores, and a whole
    nightly run of the combined forecast against PostgreSQL, with each member's time."""
    from ops.bench_forecast import bench_nightly, bench_nightly_stored, bench_online

    online = bench_online()
    click.echo(
        f"online: {online['updates_per_cpu_second']:,.0f} updates per CPU second "
        f"({online['updates']:,} updates); 90-day forecast p50 "
        f"{online['forecast_90d_p50_ms']:.3f} ms, p99 {online['forecast_90d_p99_ms']:.3f} ms"
    )
    one = bench_nightly(single_process_skus, 1)
    two = bench_nightly(single_process_skus, 2)
    for r in (one, two):
        click.echo(
            f"Prophet fits: {r['skus']} SKUs on {r['processes']} process(es) in "
            f"{r['wall_seconds']:.1f} s ({r['skus_per_second']:.2f} SKUs/s), "
            f"{r['cpu_seconds_per_sku']:.3f} s CPU per SKU"
        )
    click.echo(f"speed-up 2 vs 1 process: {one['wall_seconds'] / two['wall_seconds']:.2f}x")
    full = bench_nightly_stored(skus, os.cpu_count() or 1)
    for label, run in (("a shop's first night", full["first"]), ("a later night", full["night"])):
        made = (
            f"; it first made the validation run of {run['validation_run']} in "
            f"{run['validation_seconds']:.1f} s"
            if run["validation_run"]
            else ""
        )
        click.echo(
            f"stockpulse nightly against PostgreSQL, {label}: {full['skus']} SKUs "
            f"({run['fitted']} with 14+ sellable days, {run['written']} forecasts committed) on "
            f"{full['processes']} processes in {run['wall_seconds']:.1f} s, "
            f"{run['cpu_seconds_per_sku']:.3f} s CPU per SKU (process start-up included){made}"
        )
        members = ", ".join(f"{m} {s:.1f} s" for m, s in sorted(run["member_seconds"].items()))
        click.echo(f"  members, wall seconds over the whole shop: {members}")


def _warn_development_secret() -> None:
    settings = get_settings()
    if settings.uses_development_secret:
        click.echo(
            f"SHOPIFY_API_SECRET is not set: using the development secret "
            f"{settings.shopify_api_secret!r}. Never use it in production.",
            err=True,
        )


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main()
