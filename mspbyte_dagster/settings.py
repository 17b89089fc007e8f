"""Every environment variable of the project, typed, with its default.

Read once per process (`current_settings()`); a wrong value stops start-up with
an error naming the variable, so a typo never silently falls back to a default.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Mapping
from datetime import timedelta
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    create_model,
    model_validator,
)
from pydantic_core import ErrorDetails
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from mspbyte_dagster.lib.adapters.registry import INTEGRATIONS
from mspbyte_dagster.lib.errors import InputError
from mspbyte_dagster.lib.flags import FLAG_DEFAULTS, FlagDefault
from mspbyte_dagster.lib.notify.secrets import SecretBox, check_key
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
DAGSTER_EVENT_BATCH_SIZE = 1000  # events per batch Dagster hands its storage (instance_variables)
NAMESPACE = re.compile(r"[A-Za-z0-9_-]{1,32}")


class SettingsError(InputError):
    """A variable of the environment has a value the project cannot use."""


# Variables whose values never appear in an error, a log line or a repr.
SECRET_VARIABLES = frozenset(
    {"DATABASE_URL", "REDIS_URL", "GRAPH_CLIENT_SECRET", "CONVEX_API_KEY", "MSPBYTE_SECRET_KEY"}
    | {"DAGSTER_PG_URL", "CELERY_BROKER_URL", "CELERY_BACKEND_URL"}
    | {setting.variable for integration in INTEGRATIONS.values() for setting in integration.settings if setting.secret}
)


def _url_of(schemes: tuple[str, ...]) -> AfterValidator:
    def checked(value: str) -> str:
        scheme, sep, rest = value.partition("://")
        if not sep or scheme not in schemes or not rest:
            raise ValueError(f"must be a URL starting with {' or '.join(s + '://' for s in schemes)}")
        return value

    return AfterValidator(checked)


def _database_url(value: str) -> str:
    try:
        url = make_url(value)
    except ArgumentError:
        raise ValueError("is not a database URL: use postgresql://user@host:5432/db or sqlite:///path") from None
    if url.get_backend_name() not in DATABASE_DRIVERS:
        raise ValueError(f"names the unsupported database {url.get_backend_name()!r}: use postgresql:// or sqlite:///")
    if url.get_backend_name() == "postgresql" and not url.database:
        raise ValueError("names no database: add /<database> to the URL")
    return value


def _dagster_pg_url(value: str) -> str:
    """dagster-postgres sends `NOTIFY run_events, %(id)s`, which only psycopg2 accepts: with SQLAlchemy 2.1
    a bare postgresql:// picks psycopg 3 and every run event then fails with a syntax error."""
    try:
        url = make_url(value)
    except ArgumentError:
        raise ValueError("is not a database URL: use postgresql+psycopg2://user@host:5432/dagster") from None
    if url.drivername != "postgresql+psycopg2" or not url.database:
        raise ValueError(
            "must be postgresql+psycopg2://user@host:5432/<database> (dagster-postgres needs the psycopg2 driver "
            "and a database)"
        )
    return value


def _secret_key(value: SecretStr) -> SecretStr:
    check_key(value.get_secret_value())
    return value


def _namespace(value: str) -> str:
    if not NAMESPACE.fullmatch(value):
        raise ValueError("cannot name streams and keys: use 1 to 32 letters, digits, _ or -")
    return value


def _refresh_interval(minutes: int) -> int:
    """A cron schedule can only repeat evenly within a day."""
    if 60 % minutes and (minutes % 60 or MINUTES_PER_DAY % minutes):
        raise ValueError(
            "does not divide an hour or a day evenly: use a divisor of 60 "
            "(1, 2, 3, 4, 5, 6, 10, 12, 15, 20, 30, 60) or whole hours dividing 24 (120, 180, 240, 360, 480, 720, 1440)"
        )
    return minutes


HttpUrl = Annotated[str, _url_of(("http", "https"))]
Whole = Annotated[int, Field(ge=0)]
Positive = Annotated[int, Field(ge=1)]


def _default_data_dir(env: Mapping[str, str]) -> Path:
    """`.mspbyte` of a source checkout (make demo); for an installed package the user's data folder,
    never site-packages."""
    if (REPO_ROOT / "pyproject.toml").is_file():
        return REPO_ROOT / ".mspbyte"
    return Path(env.get("XDG_DATA_HOME") or Path.home() / ".local" / "share") / "mspbyte"


def _flag_variable(flag: str, part: str) -> str:
    return f"FEATURE_{flag.upper()}" + ("_ROLLOUT" if part == "rollout" else "")


class DeclaredSettings(BaseModel):
    """Each field is read from the variable its alias names; a blank variable counts as unset. `Settings`
    adds the fields the registered integrations declare."""

    model_config = ConfigDict(frozen=True, extra="ignore", populate_by_name=True)

    data_dir: Path = Field(alias="MSPBYTE_DATA_DIR")
    database_url: Annotated[str, AfterValidator(_database_url)] = Field(alias="DATABASE_URL", repr=False)
    dagster_home: Path = Field(alias="DAGSTER_HOME")
    redis_url: Annotated[str, _url_of(("redis", "rediss", "unix"))] | None = Field(None, alias="REDIS_URL", repr=False)
    nats_url: Annotated[str, _url_of(("nats", "tls", "ws", "wss"))] | None = Field(None, alias="NATS_URL")
    # Production (deploy/dagster.yaml): Dagster's own storage, and Celery's broker and result backend.
    dagster_pg_url: Annotated[str, AfterValidator(_dagster_pg_url)] | None = Field(
        None, alias="DAGSTER_PG_URL", repr=False
    )
    celery_broker_url: Annotated[str, _url_of(("redis", "rediss"))] | None = Field(
        None, alias="CELERY_BROKER_URL", repr=False
    )
    celery_backend_url: Annotated[str, _url_of(("redis", "rediss"))] | None = Field(
        None, alias="CELERY_BACKEND_URL", repr=False
    )
    celery_queue_name: Annotated[str, AfterValidator(_namespace)] | None = Field(None, alias="CELERY_QUEUE")
    # Prefix of NATS stream names, subjects and Redis keys: installations sharing a server stay apart.
    namespace: Annotated[str, AfterValidator(_namespace)] | None = Field(None, alias="MSPBYTE_NAMESPACE")
    flag_defaults: dict[str, FlagDefault]
    slow_query_threshold_ms: Whole = Field(100, alias="SLOW_QUERY_THRESHOLD_MS")
    max_debounce_window_ms: Whole = Field(300_000, alias="MAX_DEBOUNCE_WINDOW_MS")
    refresh_interval_minutes: Annotated[int, Field(ge=1, le=MINUTES_PER_DAY), AfterValidator(_refresh_interval)] = (
        Field(60, alias="REFRESH_INTERVAL_MINUTES")
    )
    max_concurrent_jobs: Positive = Field(5, alias="MAX_CONCURRENT_JOBS")
    job_timeout_ms: Annotated[int, Field(ge=1000)] = Field(600_000, alias="JOB_TIMEOUT_MS")
    log_level: Literal[LOG_LEVELS] = Field("info", alias="LOG_LEVEL")
    metrics_port: Annotated[int, Field(ge=1, le=65535)] = Field(9090, alias="METRICS_PORT")
    enable_prometheus: bool = Field(True, alias="ENABLE_PROMETHEUS")
    prometheus_pushgateway_url: HttpUrl | None = Field(None, alias="PROMETHEUS_PUSHGATEWAY_URL")
    graph_client_id: str | None = Field(None, alias="GRAPH_CLIENT_ID")
    graph_client_secret: SecretStr | None = Field(None, alias="GRAPH_CLIENT_SECRET")
    graph_authority_host: HttpUrl = Field("https://login.microsoftonline.com", alias="GRAPH_AUTHORITY_HOST")
    graph_base_url: HttpUrl = Field("https://graph.microsoft.com/v1.0", alias="GRAPH_BASE_URL")
    graph_consent_redirect_uri: HttpUrl | None = Field(None, alias="GRAPH_CONSENT_REDIRECT_URI")
    # Requests per 10 s to Graph's reports (sign-ins, registration), per tenant.
    graph_reports_limit: Positive = Field(5, alias="GRAPH_REPORTS_LIMIT")
    convex_api_key: SecretStr | None = Field(None, alias="CONVEX_API_KEY")
    snapshot_retention: Positive = Field(10, alias="SNAPSHOT_RETENTION")
    ledger_retention_days: Positive = Field(400, alias="LEDGER_RETENTION_DAYS")
    alert_event_retention_days: Positive = Field(400, alias="ALERT_EVENT_RETENTION_DAYS")
    # Encrypts notification channels' secrets at rest (a Fernet key: `mspbyte notify new-key`).
    secret_key: Annotated[SecretStr, AfterValidator(_secret_key)] | None = Field(None, alias="MSPBYTE_SECRET_KEY")
    # How long an undelivered notification is retried before it is dead-lettered.
    notify_give_up_hours: Annotated[int, Field(ge=1, le=720)] = Field(24, alias="NOTIFY_GIVE_UP_HOURS")

    @model_validator(mode="before")
    @classmethod
    def _from_variables(cls, env: Mapping[str, str]) -> dict:
        """Blank means unset; the defaults that follow the data folder, and the flag family
        FEATURE_<FLAG>[_ROLLOUT], are made here from the same variables."""
        values = {name: value.strip() for name, value in env.items() if isinstance(value, str) and value.strip()}
        data_dir = Path(values.get("MSPBYTE_DATA_DIR") or _default_data_dir(values)).resolve()
        values["MSPBYTE_DATA_DIR"] = data_dir
        values.setdefault("DATABASE_URL", f"sqlite:///{data_dir / 'app.db'}")
        values["DAGSTER_HOME"] = Path(values.get("DAGSTER_HOME") or data_dir / "dagster_home").resolve()
        if "LOG_LEVEL" in values:
            values["LOG_LEVEL"] = values["LOG_LEVEL"].lower()
        values["flag_defaults"] = {
            flag: {
                part: values.get(_flag_variable(flag, part), getattr(default, part)) for part in ("enabled", "rollout")
            }
            for flag, default in FLAG_DEFAULTS.items()
        }
        return values

    def instance_variables(self) -> dict[str, str]:
        """The {env: X} values a dagster.yaml of ours may name that have a default here: set where unset,
        so an instance loads wherever these settings do (the result backend defaults to the broker). And
        Dagster's DAGSTER_EVENT_BATCH_SIZE, so a new run's planned events reach the storage as batches
        (a 50-tenant run plans about 360: one per tenant and asset; instance_storage writes them at once)."""
        defaults = {
            "MAX_CONCURRENT_JOBS": str(self.max_concurrent_jobs),
            "CELERY_QUEUE": self.celery_queue,
            "DAGSTER_EVENT_BATCH_SIZE": str(DAGSTER_EVENT_BATCH_SIZE),
        }
        if self.celery_broker_url:
            defaults["CELERY_BACKEND_URL"] = self.celery_backend_url or self.celery_broker_url
        return defaults

    @property
    def celery_queue(self) -> str:
        """The Celery queue this installation's runs go to and its workers read: CELERY_QUEUE, else one
        per MSPBYTE_NAMESPACE (installations sharing a broker stay apart, like their streams and keys)."""
        return self.celery_queue_name or (f"{self.namespace}-mspbyte" if self.namespace else "mspbyte")

    @property
    def convex_api_key_set(self) -> bool:
        return self.convex_api_key is not None

    @property
    def retention(self) -> Retention:
        return Retention(self.snapshot_retention, self.ledger_retention_days, self.alert_event_retention_days)

    def secret_box(self) -> SecretBox:
        return SecretBox(self.secret_key.get_secret_value() if self.secret_key else None)

    @property
    def notify_give_up(self) -> timedelta:
        return timedelta(hours=self.notify_give_up_hours)

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
        try:
            settings = cls.model_validate(os.environ if env is None else env)
        except ValidationError as invalid:
            raise SettingsError("; ".join(_problem(error) for error in invalid.errors())) from None
        if settings.convex_api_key_set:
            log.warning("CONVEX_API_KEY is set but ignored: this project keeps its data in DATABASE_URL")
        return settings


def _integration_fields() -> dict:
    """A field per variable an integration declares (lib/adapters/registry.py): the one registration."""
    fields = {}
    for integration in INTEGRATIONS.values():
        for setting in integration.settings:
            kind = SecretStr if setting.secret else HttpUrl if setting.url else str
            annotation = kind if setting.default is not None else kind | None
            fields[setting.variable.lower()] = (annotation, Field(setting.default, alias=setting.variable))
    return fields


Settings = create_model("Settings", __base__=DeclaredSettings, **_integration_fields())


def _problem(error: ErrorDetails) -> str:
    """One wrong variable, by its name; the value too unless it is a secret."""
    location = error["loc"]
    variable = _flag_variable(*location[1:3]) if location[0] == "flag_defaults" else str(location[0])
    reason = (
        str(error["ctx"]["error"]) if error["type"] == "value_error" else error["msg"][:1].lower() + error["msg"][1:]
    )
    return f"{variable} {reason}" if variable in SECRET_VARIABLES else f"{variable}={error['input']!r} {reason}"


def apply_log_level(level: str) -> None:
    """LOG_LEVEL on the project's loggers wherever its code loads (CLI, code server, run workers, daemon):
    Dagster's python_log_level takes no {env:}, so the level is set here rather than in dagster.yaml."""
    for name in ("mspbyte", "mspbyte_dagster"):
        logging.getLogger(name).setLevel(level.upper())


def current_settings() -> Settings:
    """The process's settings, read once: built again only when the environment they come from changed
    (a test, or a long process whose variables someone set), so nothing re-reads or re-warns per call."""
    return _settings_of(tuple(sorted(os.environ.items())))


@lru_cache(maxsize=4)
def _settings_of(environment: tuple[tuple[str, str], ...]) -> Settings:
    return Settings.from_env(dict(environment))
