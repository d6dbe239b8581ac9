"""The Litestar application: ingress, dashboard, JSON API, WebSocket feed and health."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import psycopg
from litestar import Litestar
from litestar.exceptions import HTTPException
from litestar.file_system import BaseLocalFileSystem
from litestar.logging.config import LoggingConfig
from litestar.openapi.config import OpenAPIConfig
from litestar.openapi.plugins import JsonRenderPlugin
from litestar.openapi.spec import Components, SecurityScheme
from litestar.plugins.jinja import JinjaTemplateEngine
from litestar.static_files import create_static_files_router
from litestar.template.config import TemplateConfig
from litestar.types import ASGIApp, FileInfo, Logger, PathType, Scope

from connectors.crypto import Keyring
from connectors.db.pool import open_pool
from connectors.kafka.admin import ensure_topics
from connectors.kafka.producer import DurableProducer
from connectors.outages import log_failure
from connectors.settings import Settings, get_settings
from models.combined import HORIZON
from web.accounts import AccountsController
from web.alerts import AlertsController
from web.auth import LoginRequired, login_redirect, unusable_input
from web.charts import ChartsController
from web.connect_form import ConnectFormController
from web.connection import ConnectionController
from web.dashboard import ApiController, DashboardController, shop_feed
from web.deadline import database_unavailable, request_deadline
from web.error_pages import http_error
from web.feed_access import FeedAccess
from web.head import HeadAsGet, allow_every_method
from web.health import HealthController
from web.hub import Hub
from web.inbox import FastPublisher, InboxWriter
from web.ingress import shopify_webhooks
from web.mailbox import MailboxController
from web.mailer import Mailer
from web.members import MembersController, MembersPages
from web.plan import PlanController
from web.product import ProductController
from web.reports import ReportsController
from web.security import add_security_headers
from web.settings import SettingsController
from web.shop_paths import lower_case_shop
from web.shopify_oauth import ShopifyOAuthController
from web.shops import ShopDirectory
from web.tokens import TokensController
from web.unsubscribe import UnsubscribeController
from web.verification import VerificationController

log = logging.getLogger(__name__)
HERE = Path(__file__).parent


def create_served_app() -> ASGIApp:
    """What ``stockpulse web`` serves: the app, with HEAD answered as GET."""
    return HeadAsGet(create_app())


def days_of_cover(days: float | None, stock: int | None) -> str:
    """Days of cover as every page shows it (web/static/feed.js says it alike): null is
    beyond what the forecast reaches, not never (an outside tester read "∞" as never runs
    out), unless the stock is not tracked at all.

    >>> days_of_cover(6.25, 10), days_of_cover(None, 500), days_of_cover(None, None)
    ('6.2', '> 90', '—')
    """
    if days is not None:
        return f"{days:.1f}"
    return "—" if stock is None else f"> {HORIZON}"


def create_app(settings: Settings | None = None) -> Litestar:
    settings = settings or get_settings()
    _quiet_when_the_database_cuts_a_response()
    # Refuse to start rather than store a shop's secrets unsealed.
    keyring = Keyring.parse(settings.stockpulse_encryption_keys)

    @contextlib.asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        # Not waiting for the database: with it down the app still answers, 503 (and a
        # probe's "database": false) until it is back, rather than not listening for 30 s
        # and then exiting with a traceback.
        pool = await open_pool(settings.database_url, max_size=10, wait=False)
        producer = DurableProducer(settings.bootstrap_servers)
        hub = Hub(settings.websocket_backlog)
        feed_access = FeedAccess(pool, settings.websocket_recheck_seconds)
        inbox = InboxWriter(pool)
        publisher = FastPublisher(producer)
        http = httpx.AsyncClient(timeout=15)
        app.state.update(
            settings=settings,
            pool=pool,
            hub=hub,
            feed_access=feed_access,
            inbox=inbox,
            publisher=publisher,
            http=http,
            keyring=keyring,
            mailer=Mailer(settings),
            shops=ShopDirectory(
                pool, settings.known_shops_refresh_seconds, settings.webhook_secrets, keyring
            ),
        )
        inbox.start()
        publisher.start()
        # The broker may come later than the web app; the hub keeps trying meanwhile.
        topics = asyncio.create_task(
            asyncio.to_thread(
                ensure_topics, settings.bootstrap_servers, settings.kafka_topic_partitions, 3600
            )
        )
        feed = asyncio.create_task(_after(topics, hub.run(settings.bootstrap_servers)))
        rechecks = asyncio.create_task(feed_access.run())
        try:
            yield
        finally:
            for task in (feed, rechecks):
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
            await inbox.stop()
            await publisher.stop()
            await http.aclose()
            await producer.close()
            await pool.close()

    return Litestar(
        route_handlers=[
            shopify_webhooks,
            AccountsController,
            VerificationController,
            DashboardController,
            ApiController,
            ChartsController,
            MembersController,
            MembersPages,
            TokensController,
            ReportsController,
            SettingsController,
            ProductController,
            ConnectionController,
            ConnectFormController,
            PlanController,
            AlertsController,
            HealthController,
            ShopifyOAuthController,
            UnsubscribeController,
            MailboxController,
            shop_feed,
            create_static_files_router(
                path="/static", directories=[HERE / "static"], file_system=_StaticFiles()
            ),
        ],
        lifespan=[lifespan],
        template_config=TemplateConfig(
            directory=HERE / "templates",
            engine=JinjaTemplateEngine,
            engine_callback=lambda engine: engine.engine.globals.update(cover=days_of_cover),
        ),
        request_max_body_size=settings.webhook_max_body_bytes,
        before_request=lower_case_shop,
        before_send=[add_security_headers, allow_every_method],
        middleware=[request_deadline(settings.request_timeout_seconds)],
        exception_handlers={
            LoginRequired: login_redirect,
            HTTPException: http_error,
            psycopg.OperationalError: database_unavailable,  # the pool's timeout included
            psycopg.DataError: unusable_input,
            RecursionError: unusable_input,
        },
        # The JSON API's schema at /schema/openapi.json (no HTML viewer: it would load scripts
        # from a CDN, which the Content-Security-Policy refuses).
        openapi_config=OpenAPIConfig(
            title="Stockpulse API",
            version="1.0.0",
            path="/schema",
            render_plugins=[JsonRenderPlugin()],
            security=[{"BearerToken": []}],
            components=Components(
                security_schemes={
                    "BearerToken": SecurityScheme(
                        type="http", scheme="bearer", description="An API token of your account"
                    )
                }
            ),
        ),
        logging_config=LoggingConfig(
            root={"level": "WARNING", "handlers": ["queue_listener"]},
            log_exceptions="always",
            exception_logging_handler=_log_exception,
        ),
        debug=False,
    )


class _StaticFiles(BaseLocalFileSystem):
    """The static directory, where a name no file can have is simply not found: Litestar
    answered 500 to /static/%00 and to a 300-character name."""

    async def info(self, path: PathType, **kwargs: Any) -> FileInfo:
        try:
            return await super().info(path, **kwargs)
        except (ValueError, OSError) as exc:  # embedded NUL; name too long
            if isinstance(exc, PermissionError):
                raise
            raise FileNotFoundError(str(path)) from None


def _log_exception(logger: Logger, scope: Scope, traceback: list[str]) -> None:
    """Litestar's exception logging: a client error (4xx) is one line, the database away is
    left to its own handler's line (a 503, not a bug: a traceback per request in flight when
    PostgreSQL went down, an outside test), anything else a traceback.

    Litestar calls this inside the ``except`` block of the exception it is handling.
    """
    exc = sys.exc_info()[1]
    if isinstance(exc, psycopg.OperationalError):
        return
    if isinstance(exc, HTTPException) and exc.status_code < 500:
        logger.info(
            "%s %s %r: %d %s",
            scope["type"],
            scope.get("method", "-"),
            scope["path"],
            exc.status_code,
            exc.detail,
        )
        return
    logger.exception(
        "Uncaught exception (connection_type=%s, path=%r):", scope["type"], scope["path"]
    )


class _DatabaseGoneMidResponse(logging.Filter):
    """uvicorn's "Exception in ASGI application", for a response the database cut short (a
    CSV report streaming when PostgreSQL went down), as one warning line: the connection is
    dropped, so the client sees the download unfinished, and it is no bug to trace (an
    outside test)."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if exc is not None and _from_the_database(exc, set()):
            record.msg, record.args = "a response was cut short: the database went away", ()
            record.exc_info, record.exc_text = None, None
            record.levelno, record.levelname = logging.WARNING, "WARNING"
        return True


def _from_the_database(exc: BaseException, seen: set[int]) -> bool:
    if id(exc) in seen:
        return False
    seen.add(id(exc))
    if isinstance(exc, psycopg.OperationalError):
        return True
    inner = list(exc.exceptions) if isinstance(exc, BaseExceptionGroup) else []
    return any(_from_the_database(e, seen) for e in (*inner, exc.__cause__, exc.__context__) if e)


def _quiet_when_the_database_cuts_a_response() -> None:
    server = logging.getLogger("uvicorn.error")
    if not any(isinstance(f, _DatabaseGoneMidResponse) for f in server.filters):
        server.addFilter(_DatabaseGoneMidResponse())


async def _after(first: asyncio.Task, then: object) -> None:
    try:
        await first
    except Exception:
        log_failure(log, "could not create Kafka topics; the feed will retry on its own")
    await then  # type: ignore[misc]
