"""Typed settings read from the environment, with safe local defaults."""

from __future__ import annotations

import logging
from datetime import time
from functools import lru_cache

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

log = logging.getLogger(__name__)


class BadSetting(ValueError):
    """A setting (an environment variable, or a file standing for one) an operator must fix;
    the message says which and why."""


# Printed whenever it is in use so nobody mistakes a development install for a real one.
DEVELOPMENT_WEBHOOK_SECRET = "stockpulse-development-secret"


class Settings(BaseSettings):
    """Everything a Stockpulse process needs to know about its surroundings."""

    # No NaN or infinity in any number: every comparison with one is false, so no bound holds.
    model_config = SettingsConfigDict(
        env_file=".env", extra="ignore", populate_by_name=True, allow_inf_nan=False
    )

    database_url: str = Field(
        default="postgresql://postgres@127.0.0.1:5432/stockpulse",
        description="PostgreSQL/TimescaleDB connection URL.",
    )
    kafka_bootstrap_servers: str = Field(
        default="127.0.0.1:9092", description="Comma-separated Kafka bootstrap servers."
    )
    shopify_api_key: str = Field(default="", description="Shopify app client id.")
    shopify_api_secret: str = Field(
        default=DEVELOPMENT_WEBHOOK_SECRET,
        description="Shopify app client secret(s); comma-separated during rotation, newest first.",
    )
    shopify_api_version: str = Field(default="2025-10", description="Shopify Admin API version.")
    shopify_scopes: str = Field(
        default="read_products,read_inventory,read_locations,read_orders,read_all_orders",
        description="Access scopes the OAuth install asks for (read_all_orders: history > 60 d).",
    )
    shopify_admin_url: str = Field(
        default="https://{shop}",
        description="Template of every Admin API and OAuth endpoint; a shop may override it.",
    )
    smtp_url: str = Field(
        default="smtp://127.0.0.1:1025",
        description="Outgoing mail server: smtp://user:pass@host:587 (STARTTLS when offered;"
        " ?starttls=require to insist) or smtps://user:pass@host:465 (implicit TLS).",
    )
    mail_from: str = Field(
        default="Stockpulse <stockpulse@stockpulse.localhost>",
        description="The From address of password resets and alerts.",
    )
    stockpulse_secret_key: str = Field(
        default="development-only-secret-key",
        description="Signs the one-click unsubscribe links of alert emails and keys their"
        " Message-IDs. Sessions, CSRF and API tokens need none: they are random values checked"
        " against the database.",
    )
    stockpulse_encryption_keys: str = Field(
        default="", description="Base64 AES-256 keys for tokens at rest, newest first."
    )
    stockpulse_base_url: str = Field(
        default="http://127.0.0.1:8000", description="Public URL of the web app."
    )
    webhook_max_body_bytes: int = Field(
        default=1024 * 1024, description="Larger webhook bodies are refused with 413."
    )
    webhook_body_timeout_seconds: float = Field(
        default=10.0, description="A webhook body not received within this is refused (408)."
    )
    http_header_timeout_seconds: float = Field(
        default=10.0, gt=0, description="A request whose headers take longer is dropped."
    )
    request_timeout_seconds: float = Field(
        default=20.0,
        gt=0,
        description="A page or API request not answered within this gets 503 (a database that"
        " does not answer); webhooks and probes have their own limits.",
    )
    broker_forgets_on_restart: bool = Field(
        default=False,
        description="The broker's log does not outlive it (the embedded, in-memory one): a"
        " starting worker republishes every webhook not finished before it started at once,"
        " instead of after the relay's backoff.",
    )
    stall_seconds: float = Field(
        default=60.0,
        description="/readyz answers 503 once an accepted webhook has waited this long unapplied.",
    )
    kafka_topic_partitions: int = Field(
        default=8, description="Partitions for topics Stockpulse creates; the unit of scale-out."
    )
    websocket_backlog: int = Field(
        default=256, description="Messages kept per socket before the oldest are dropped."
    )
    websocket_feeds_per_account: int = Field(
        default=20,
        gt=0,
        description="Feeds one account may hold open at once, per web process; the next is"
        " closed with 4429.",
    )
    websocket_recheck_seconds: float = Field(
        default=10.0,
        gt=0,
        description="How often an open feed checks its session, token and membership still"
        " stand; it is closed (4401) within this long of a logout, revocation or removal.",
    )
    known_shops_refresh_seconds: float = Field(
        default=5.0, description="How stale the ingress's cached list of installed shops may be."
    )

    alert_batch_window_s: float = Field(
        default=1.0,
        ge=0,
        le=10,
        description="Immediate alerts of one shop go out as one email per recipient once none"
        " joined them for this many seconds (at most three windows after the first).",
    )

    # The same bounds as a shop's own settings (web/settings.py), finite: LEAD_TIME_DAYS=nan
    # passed and crashed the worker at every start, -5 shrank every reorder point (an
    # outside test).
    lead_time_days: float = Field(
        default=14,
        ge=1,
        le=365,
        description="Supplier lead time used for reorder points until set per SKU.",
    )
    service_level: float = Field(
        default=0.95, gt=0.5, lt=1, description="Cycle service level behind safety stock."
    )
    target_cover_days: float = Field(
        default=30, ge=1, le=730, description="Days of demand a suggested reorder should cover."
    )
    overstock_days: float = Field(
        default=180, ge=1, le=3650, description="More cover than this is overstock."
    )
    nightly_at: str = Field(
        default="02:00",
        description="Shop-local time (HH:MM) the worker starts the nightly refit; 'off' leaves "
        "it to an external scheduler running `stockpulse nightly`.",
    )
    nightly_processes: int = Field(
        default=0, description="Processes for the nightly refit; 0 means one per core."
    )

    stockpulse_kafka_session_timeout: float = Field(
        default=10.0, gt=0, description="Seconds before a stopped worker's partitions move on."
    )
    stockpulse_worker_datadir: str = Field(
        default=".data/worker", description="The worker's small local Faust files (no tables)."
    )
    stockpulse_forecast_check_s: float = Field(
        default=30.0, gt=0, description="How often the worker looks for closed days and new runs."
    )
    stockpulse_demo_api_token: str | None = Field(
        default=None,
        description="With `stockpulse up`: an API token of the demo account, for scripts and"
        " smoke tests.",
    )
    stockpulse_demo_alert_to: str = Field(
        default="merchant@example.com",
        description="With `stockpulse up`: who gets the demo shop's alert emails.",
    )
    stockpulse_mail_catcher_dir: str | None = Field(
        default=None,
        description="Where `stockpulse up`'s embedded SMTP catcher keeps mail (set by `up` when"
        " SMTP_URL is not): the Mailbox page shows it.",
    )
    reconcile_interval_s: float = Field(
        default=3600.0,
        description="How often each connected shop is compared with Shopify and corrected;"
        " 0 turns reconciliation off.",
    )
    reconcile_check_s: float = Field(
        default=30.0, gt=0, description="How often the worker looks for shops due a reconciliation."
    )
    stockpulse_nightly_check_s: float = Field(
        default=60.0, gt=0, description="How often the worker looks for shops due a nightly refit."
    )

    @field_validator("shopify_api_secret")
    @classmethod
    def _secret_not_blank(cls, value: str) -> str:
        if not [s for s in value.split(",") if s.strip()]:
            raise ValueError("SHOPIFY_API_SECRET needs at least one non-empty secret")
        return value

    # Checked here, at start, rather than at the first use: `alert-sender` ended in a
    # traceback on a bad SMTP_URL or MAIL_FROM, and any command on a DATABASE_URL that is no
    # connection string at all (an outside test).
    @field_validator("smtp_url")
    @classmethod
    def _smtp_url_readable(cls, value: str) -> str:
        from connectors.mail.endpoint import parse_smtp_url

        parse_smtp_url(value)
        return value

    @field_validator("mail_from")
    @classmethod
    def _mail_from_an_address(cls, value: str) -> str:
        from email.utils import parseaddr

        from connectors.mail.message import check_address

        check_address("MAIL_FROM", parseaddr(value)[1])
        return value

    @field_validator("database_url")
    @classmethod
    def _database_url_readable(cls, value: str) -> str:
        from psycopg.conninfo import conninfo_to_dict

        try:
            conninfo_to_dict(value)
        except Exception:
            # Not the parser's text: it quotes the string, and with it a password.
            raise ValueError("not a PostgreSQL URL or connection string") from None
        return value

    @field_validator("nightly_at")
    @classmethod
    def _nightly_at_is_a_time(cls, value: str) -> str:
        if value.strip().lower() != "off":
            time.fromisoformat(value.strip())
        return value.strip()

    @property
    def nightly_time(self) -> time | None:
        return None if self.nightly_at.lower() == "off" else time.fromisoformat(self.nightly_at)

    @property
    def webhook_secrets(self) -> list[bytes]:
        return [s.strip().encode() for s in self.shopify_api_secret.split(",") if s.strip()]

    @property
    def uses_development_secret(self) -> bool:
        return self.shopify_api_secret == DEVELOPMENT_WEBHOOK_SECRET

    @property
    def bootstrap_servers(self) -> list[str]:
        return [s.strip() for s in self.kafka_bootstrap_servers.split(",") if s.strip()]


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
