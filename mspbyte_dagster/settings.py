"""Every environment variable of the project, typed, with its default.

Read once per process (`current_settings()`); a wrong value stops start-up with
an error naming the variable, so a typo never silently falls back to a default.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from mspbyte_dagster.lib.errors import InputError
from mspbyte_dagster.lib.flags import FLAG_DEFAULTS, FlagDefault
from mspbyte_dagster.lib.store.retention import Retention

if TYPE_CHECKING:
    from mspbyte_dagster.lib.passes import PassOptions

log = logging.getLogger(__name__)

PACKAGE_ROOT = Path(__file__).resolve().parent
REPO_ROOT = PACKAGE_ROOT.parent
# The instance config a default DAGSTER_HOME starts with (embedded: SQLite, queued runs).
INSTANCE_CONFIG = PACKAGE_ROOT / "dagster.yaml"
LOG_LEVELS = ("debug", "info", "warning", "error", "critical")
DATABASE_DRIVERS = ("sqlite", "postgresql")
MINUTES_PER_DAY = 1440
NAMESPACE = re.compile(r"[A-Za-z0-9_-]{1,32}")


class SettingsError(InputError):
    """A variable of the environment has a value the project cannot use."""


def _text(env: Mapping[str, str], name: str) -> str | None:
    value = env.get(name, "").strip()
    return value or None


def _bool(env: Mapping[str, str], name: str, default: bool) -> bool:
    value = _text(env, name)
    if value is None:
        return default
    lowered = value.lower()
    if lowered in ("true", "1", "yes", "on"):
        return True
    if lowered in ("false", "0", "no", "off"):
        return False
    raise SettingsError(f"{name}={value!r} is not a boolean: use true or false")


def _int(env: Mapping[str, str], name: str, default: int, low: int, high: int | None = None) -> int:
    value = _text(env, name)
    if value is None:
        return default
    try:
        number = int(value)
    except ValueError:
        raise SettingsError(f"{name}={value!r} is not a whole number") from None
    if number < low or (high is not None and number > high):
        bound = f"{low}..{high}" if high is not None else f">= {low}"
        raise SettingsError(f"{name}={number} is out of range ({bound})")
    return number


def _url(env: Mapping[str, str], name: str, schemes: tuple[str, ...]) -> str | None:
    value = _text(env, name)
    if value is None:
        return None
    scheme, sep, rest = value.partition("://")
    if not sep or scheme not in schemes or not rest:
        raise SettingsError(f"{name} must be a URL starting with {' or '.join(s + '://' for s in schemes)}")
    return value


def _default_data_dir(env: Mapping[str, str]) -> Path:
    """`.mspbyte` of a source checkout (make demo); for an installed package the user's data folder,
    never site-packages."""
    if (REPO_ROOT / "pyproject.toml").is_file():
        return REPO_ROOT / ".mspbyte"
    return Path(_text(env, "XDG_DATA_HOME") or Path.home() / ".local" / "share") / "mspbyte"


def _database_url(env: Mapping[str, str], data_dir: Path) -> str:
    value = _text(env, "DATABASE_URL")
    if value is None:
        return f"sqlite:///{data_dir / 'app.db'}"
    try:
        url = make_url(value)
    except ArgumentError:
        raise SettingsError(
            "DATABASE_URL is not a database URL: use postgresql://user@host:5432/db or sqlite:///path"
        ) from None
    if url.get_backend_name() not in DATABASE_DRIVERS:
        raise SettingsError(
            f"DATABASE_URL names the unsupported database {url.get_backend_name()!r}: use postgresql:// or sqlite:///"
        )
    if url.get_backend_name() == "postgresql" and not url.database:
        raise SettingsError("DATABASE_URL names no database: add /<database> to the URL")
    return value


def _namespace(env: Mapping[str, str]) -> str | None:
    """Prefix of NATS stream names, subjects and Redis keys: installations sharing a server stay apart."""
    value = _text(env, "MSPBYTE_NAMESPACE")
    if value is not None and not NAMESPACE.fullmatch(value):
        raise SettingsError(
            f"MSPBYTE_NAMESPACE={value!r} cannot name streams and keys: use 1 to 32 letters, digits, _ or -"
        )
    return value


def _refresh_interval_minutes(env: Mapping[str, str]) -> int:
    """Minutes between two refreshes of every tenant; a cron schedule can only repeat evenly within a day."""
    minutes = _int(env, "REFRESH_INTERVAL_MINUTES", 60, 1, MINUTES_PER_DAY)
    if 60 % minutes and (minutes % 60 or MINUTES_PER_DAY % minutes):
        raise SettingsError(
            f"REFRESH_INTERVAL_MINUTES={minutes} does not divide an hour or a day evenly: use a divisor of 60 "
            "(1, 2, 3, 4, 5, 6, 10, 12, 15, 20, 30, 60) or whole hours dividing 24 (120, 180, 240, 360, 480, 720, 1440)"
        )
    return minutes


def _flag_defaults(env: Mapping[str, str]) -> dict[str, FlagDefault]:
    defaults = {}
    for flag, default in FLAG_DEFAULTS.items():
        prefix = f"FEATURE_{flag.upper()}"
        defaults[flag] = FlagDefault(
            enabled=_bool(env, prefix, default.enabled),
            rollout=_int(env, f"{prefix}_ROLLOUT", default.rollout, 0, 100),
        )
    return defaults


@dataclass(frozen=True)
class Settings:
    data_dir: Path
    database_url: str = field(repr=False)
    dagster_home: Path
    redis_url: str | None = field(repr=False)
    nats_url: str | None
    namespace: str | None
    flag_defaults: dict[str, FlagDefault]
    slow_query_threshold_ms: int
    max_debounce_window_ms: int
    refresh_interval_minutes: int
    max_concurrent_jobs: int
    job_timeout_ms: int
    log_level: str
    metrics_port: int
    enable_prometheus: bool
    prometheus_pushgateway_url: str | None
    graph_client_id: str | None
    graph_client_secret: str | None = field(repr=False)
    graph_authority_host: str
    graph_base_url: str
    graph_consent_redirect_uri: str | None
    graph_reports_limit: int  # requests per 10 s to Graph's reports (sign-ins, registration), per tenant
    convex_api_key_set: bool
    snapshot_retention: int
    ledger_retention_days: int
    alert_event_retention_days: int

    @property
    def retention(self) -> Retention:
        return Retention(self.snapshot_retention, self.ledger_retention_days, self.alert_event_retention_days)

    def pass_options(self, **choices) -> PassOptions:
        """The options of a tenant pass as these settings make them (Dagster, `mspbyte compare`, the
        bench); `choices` are what the caller decides (run id, flags, compare, ...)."""
        from mspbyte_dagster.lib.passes import PassOptions

        configured = {
            "lease_ttl": timedelta(milliseconds=self.job_timeout_ms),
            "slow_query_threshold_ms": self.slow_query_threshold_ms,
            "retention": self.retention,
        }
        return PassOptions(**(configured | choices))

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        data_dir = Path(_text(env, "MSPBYTE_DATA_DIR") or _default_data_dir(env)).resolve()
        log_level = (_text(env, "LOG_LEVEL") or "info").lower()
        if log_level not in LOG_LEVELS:
            raise SettingsError(f"LOG_LEVEL={log_level!r} is not one of {', '.join(LOG_LEVELS)}")
        settings = cls(
            data_dir=data_dir,
            database_url=_database_url(env, data_dir),
            dagster_home=Path(_text(env, "DAGSTER_HOME") or data_dir / "dagster_home").resolve(),
            redis_url=_url(env, "REDIS_URL", ("redis", "rediss", "unix")),
            nats_url=_url(env, "NATS_URL", ("nats", "tls", "ws", "wss")),
            namespace=_namespace(env),
            flag_defaults=_flag_defaults(env),
            slow_query_threshold_ms=_int(env, "SLOW_QUERY_THRESHOLD_MS", 100, 0),
            max_debounce_window_ms=_int(env, "MAX_DEBOUNCE_WINDOW_MS", 300_000, 0),
            refresh_interval_minutes=_refresh_interval_minutes(env),
            max_concurrent_jobs=_int(env, "MAX_CONCURRENT_JOBS", 5, 1),
            job_timeout_ms=_int(env, "JOB_TIMEOUT_MS", 600_000, 1000),
            log_level=log_level,
            metrics_port=_int(env, "METRICS_PORT", 9090, 1, 65535),
            enable_prometheus=_bool(env, "ENABLE_PROMETHEUS", True),
            prometheus_pushgateway_url=_url(env, "PROMETHEUS_PUSHGATEWAY_URL", ("http", "https")),
            graph_client_id=_text(env, "GRAPH_CLIENT_ID"),
            graph_client_secret=_text(env, "GRAPH_CLIENT_SECRET"),
            graph_authority_host=_url(env, "GRAPH_AUTHORITY_HOST", ("http", "https"))
            or "https://login.microsoftonline.com",
            graph_base_url=_url(env, "GRAPH_BASE_URL", ("http", "https")) or "https://graph.microsoft.com/v1.0",
            graph_consent_redirect_uri=_url(env, "GRAPH_CONSENT_REDIRECT_URI", ("http", "https")),
            graph_reports_limit=_int(env, "GRAPH_REPORTS_LIMIT", 5, 1),
            convex_api_key_set=_text(env, "CONVEX_API_KEY") is not None,
            snapshot_retention=_int(env, "SNAPSHOT_RETENTION", 10, 1),
            ledger_retention_days=_int(env, "LEDGER_RETENTION_DAYS", 400, 1),
            alert_event_retention_days=_int(env, "ALERT_EVENT_RETENTION_DAYS", 400, 1),
        )
        if settings.convex_api_key_set:
            log.warning("CONVEX_API_KEY is set but ignored: this project keeps its data in DATABASE_URL")
        return settings


def current_settings() -> Settings:
    """The process's settings, read once: built again only when the environment they come from changed
    (a test, or a long process whose variables someone set), so nothing re-reads or re-warns per call."""
    return _settings_of(tuple(sorted(os.environ.items())))


@lru_cache(maxsize=4)
def _settings_of(environment: tuple[tuple[str, str], ...]) -> Settings:
    return Settings.from_env(dict(environment))
