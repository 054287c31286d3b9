"""All settings, read once from PAYMENTS_* environment variables (secrets never logged)."""

from __future__ import annotations

from datetime import timedelta
from enum import StrEnum
from functools import cached_property
from typing import Literal
from urllib.parse import parse_qs, unquote, urlsplit

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from app.application import PaymentsConfig
from bootstrap import failpoints
from domain.disputes import Liability
from domain.recovery import RetryPolicy


class Role(StrEnum):
    CHECKOUT = "checkout"
    OPS = "ops"


class Settings(BaseSettings):
    """The service's configuration. Defaults suit production; tests shrink the timings."""

    model_config = SettingsConfigDict(env_prefix="PAYMENTS_", extra="ignore", frozen=True)

    database_url: str = "sqlite:///./payments.db"
    psp: Literal["simulator", "stripe"] = "simulator"
    """Which PSP connector: our simulator's contract (at PAYMENTS_PSP_URL), or Stripe."""
    psp_url: str | None = None
    stripe_secret_key: SecretStr = SecretStr("")
    stripe_webhook_secret: SecretStr = SecretStr("")
    stripe_api_base: str = "https://api.stripe.com"
    """Stripe's API; tests point it at localstripe (or at `payments psp-proxy` before it)."""
    psp_timeout_s: float = Field(default=10.0, gt=0, le=120)
    api_keys: SecretStr = SecretStr("")
    webhook_secret: SecretStr = SecretStr("")
    session_ttl_s: int = Field(default=1800, ge=1, le=7 * 24 * 3600)
    platform_fee_bps: int = Field(default=1000, ge=0, le=10_000)
    worker_interval_s: float = Field(default=1.0, gt=0, le=3600)
    retry_base_s: float = Field(default=1.0, gt=0, le=3600)
    retry_max_s: float = Field(default=60.0, gt=0, le=86_400)
    max_attempts: int = Field(default=5, ge=1, le=100)
    db_pool_size: int = Field(default=10, ge=1, le=200)
    db_connect_timeout_s: int = Field(default=5, ge=1, le=60)
    stale_after_s: float | None = Field(default=None, gt=0, le=86_400)
    reconcile_after_s: float = Field(default=3600.0, gt=0, le=30 * 86_400)
    failpoints: str = ""
    max_body_bytes: int = Field(default=64 * 1024, ge=1024, le=10 * 1024 * 1024)
    outbound_give_up_after_s: float = Field(default=3 * 24 * 3600.0, gt=0, le=30 * 86_400)
    """How long after its first try a webhook delivery is retried before its endpoint is
    disabled."""
    outbound_timeout_s: float = Field(default=10.0, gt=0, le=60)
    outbound_retry_base_s: float = Field(default=1.0, gt=0, le=3600)
    outbound_retry_max_s: float = Field(default=3600.0, gt=0, le=86_400)
    outbound_allow_private: bool = False
    """Allow webhook endpoints on loopback or private addresses in production mode (in
    development mode they are always allowed)."""
    reconcile_interval_s: float = Field(default=0, ge=0, le=31 * 24 * 3600)
    """How often the worker pulls the PSP's settlement report and reconciles it (0: never;
    run `payments reconcile` from a scheduler instead): the simulator's report, or
    Stripe's balance transactions."""
    settlement_grace_s: float = Field(default=3 * 24 * 3600, gt=0, le=90 * 24 * 3600)
    """A charge the PSP settles later than this after its capture is flagged `settled_late`
    (an auto-fixed break: timing, not money)."""
    dispute_liability: Literal["seller", "platform"] = "seller"
    """Who bears a lost dispute: the sellers, pro rata to their shares, or the platform."""
    public_url: str = "http://127.0.0.1:8000"
    """Where buyers reach this service: the default 3-D Secure `return_url` is the buyer's
    status page under it."""
    http_threads: int = Field(default=64, ge=1, le=4096)
    """Threads per server process for the routes that block (follow-up commands, replays):
    checkouts with the simulator's contract run on the event loop and need none; checkouts
    through Stripe's SDK wait for Stripe on one of these threads."""
    max_in_flight: int = Field(default=256, ge=0, le=100_000)
    """API requests one server process takes at once; past it, a fast 503 with Retry-After
    (0: no limit)."""
    access_log: bool = False
    """One log line per HTTP request (uvicorn's access log). Off by default: a checkout
    already logs one line that names its order and the PSP's outcome, and a second line per
    request costs a tenth of a status read's CPU (docs/performance.md). Turn it on where no
    proxy in front logs requests."""

    @field_validator("api_keys")
    @classmethod
    def _parsable_keys(cls, value: SecretStr) -> SecretStr:
        parse_api_keys(value.get_secret_value())
        return value

    @field_validator("failpoints")
    @classmethod
    def _known_failpoints(cls, value: str) -> str:
        failpoints.parse(value)
        return value

    @field_validator("database_url")
    @classmethod
    def _known_database(cls, value: str) -> str:
        database_env(value, 1)
        return value

    @field_validator("psp_url")
    @classmethod
    def _blank_is_none(cls, value: str | None) -> str | None:
        return value.rstrip("/") if value else None

    @field_validator("stripe_api_base", "public_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if urlsplit(value).scheme not in ("http", "https") or not urlsplit(value).hostname:
            raise ValueError("must be an http(s) URL")
        return value.rstrip("/")

    @cached_property
    def keys(self) -> dict[str, Role]:
        """PAYMENTS_API_KEYS parsed: `role:key,role:key` -> {key: role}."""
        return parse_api_keys(self.api_keys.get_secret_value())

    @property
    def development_mode(self) -> bool:
        """No API keys: authentication is off, and the server must stay on loopback."""
        return not self.keys

    def payments_config(self) -> PaymentsConfig:
        policy = RetryPolicy(self.retry_base_s, self.retry_max_s, self.max_attempts)
        stale = self.stale_after_s or 2 * self.psp_timeout_s + 1
        return PaymentsConfig(
            platform_fee_bps=self.platform_fee_bps,
            session_ttl=timedelta(seconds=self.session_ttl_s),
            psp_timeout_s=self.psp_timeout_s,
            policy=policy,
            stale_after=timedelta(seconds=stale),
            reconcile_after=timedelta(seconds=self.reconcile_after_s),
            dispute_liability=Liability(self.dispute_liability),
        )

    @property
    def outbound_private_ok(self) -> bool:
        return self.development_mode or self.outbound_allow_private

    def event_store_env(self, *, create_tables: bool = False) -> dict[str, str]:
        """The eventsourcing library's settings for PAYMENTS_DATABASE_URL."""
        env = database_env(self.database_url, self.db_pool_size, self.db_connect_timeout_s)
        env["CREATE_TABLE"] = "y" if create_tables else "n"
        return env


def parse_api_keys(text: str) -> dict[str, Role]:
    """Parse `role:key,role:key`; raises ValueError naming the bad entry's position."""
    keys: dict[str, Role] = {}
    for position, entry in enumerate(filter(None, (e.strip() for e in text.split(","))), 1):
        role, _, key = entry.partition(":")
        if role not in set(Role) or len(key) < 8:
            raise ValueError(
                f"entry {position} must be 'checkout:KEY' or 'ops:KEY' "
                "with a key of at least 8 characters"
            )
        keys[key] = Role(role)
    return keys


def database_env(url: str, pool_size: int, connect_timeout_s: int = 5) -> dict[str, str]:
    """Translate `sqlite:///path` or `postgresql://user:pw@host:port/db?schema=s`."""
    parts = urlsplit(url)
    if parts.scheme == "sqlite":
        path = unquote(parts.path[1:] if parts.path.startswith("/") else parts.path)
        if not path:
            raise ValueError("PAYMENTS_DATABASE_URL sqlite:///PATH needs a path")
        return {
            "PERSISTENCE_MODULE": "eventsourcing.sqlite",
            "SQLITE_DBNAME": path,
            "SQLITE_LOCK_TIMEOUT": str(connect_timeout_s),
        }
    if parts.scheme in ("postgres", "postgresql"):
        return _postgres_env(url, pool_size, connect_timeout_s)
    raise ValueError("PAYMENTS_DATABASE_URL must start with sqlite:/// or postgresql://")


def _postgres_env(url: str, pool_size: int, connect_timeout_s: int) -> dict[str, str]:
    parts = urlsplit(url)
    dbname = unquote(parts.path.lstrip("/"))
    if not dbname or not parts.hostname:
        raise ValueError(
            "PAYMENTS_DATABASE_URL postgresql://USER@HOST:PORT/DBNAME needs a host and a database"
        )
    schema = parse_qs(parts.query).get("schema", [""])[0]
    return {
        "PERSISTENCE_MODULE": "eventsourcing.postgres",
        "POSTGRES_DBNAME": dbname,
        "POSTGRES_HOST": parts.hostname,
        "POSTGRES_PORT": str(parts.port or 5432),
        "POSTGRES_USER": unquote(parts.username or "postgres"),
        "POSTGRES_PASSWORD": unquote(parts.password or ""),
        "POSTGRES_SCHEMA": schema,
        # Half the connections stay open, the other half open under load and close again.
        "POSTGRES_POOL_SIZE": str(max(1, pool_size // 2)),
        "POSTGRES_MAX_OVERFLOW": str(pool_size - max(1, pool_size // 2)),
        "POSTGRES_CONNECT_TIMEOUT": str(connect_timeout_s),
        "APPLICATION_RECORDER_TOPIC": "adapters.event_store:FailFastPostgresRecorder",
        "POSTGRES_PRE_PING": "n",  # a failed query checks the pool (adapters/event_store.py)
        "POSTGRES_LOCK_TIMEOUT": "5",
        "POSTGRES_IDLE_IN_TRANSACTION_SESSION_TIMEOUT": "10",
    }
