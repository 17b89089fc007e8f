"""Resources: built once in definitions.py, injected into assets and sensors."""

from __future__ import annotations

import os
from collections.abc import Callable
from functools import partial

from dagster import ConfigurableResource, EnvVar, InitResourceContext, ResourceDefinition
from dagster_prometheus import PrometheusResource
from pydantic import Field, PrivateAttr
from sqlalchemy import Engine

from mspbyte_dagster.lib.adapters.microsoft365.auth import GraphCredentials, graph_scope
from mspbyte_dagster.lib.adapters.microsoft365.client import GraphConnection, RetryPolicy
from mspbyte_dagster.lib.events import MAX_EVENTS_PER_TICK, READ_BUDGET_SECONDS, EventStreams
from mspbyte_dagster.lib.flag_store import flag_store, load_flags
from mspbyte_dagster.lib.flags import FeatureFlagManager
from mspbyte_dagster.lib.graph_sync import refresh_graph_snapshot
from mspbyte_dagster.lib.nats_client import JetStream
from mspbyte_dagster.lib.notify.delivery import RoundFigures, deliver_round
from mspbyte_dagster.lib.notify.secrets import SecretBox
from mspbyte_dagster.lib.passes import SOURCE_STAGES
from mspbyte_dagster.lib.store.db import migrated_engine
from mspbyte_dagster.settings import current_settings


class DatabaseResource(ConfigurableResource):
    """The app database: tenants, their snapshots and everything derived from them.

    Fed by EnvVar("DATABASE_URL"), so a password in it never reaches run config or the UI;
    left unset, the embedded SQLite file of the settings.
    """

    database_url: str | None = None

    def engine(self) -> Engine:
        settings = current_settings()  # a wrong variable stops the run here, named
        return migrated_engine(self.database_url or settings.database_url)


class FeatureFlagsResource(ConfigurableResource):
    """The flags of a run, read once at its start: environment defaults plus run-time changes
    (Redis when REDIS_URL is set, else the app database). Left unset, the URL comes from REDIS_URL."""

    redis_url: str | None = None

    def snapshot(self, engine: Engine) -> FeatureFlagManager:
        settings = current_settings()
        store = flag_store(self.redis_url or settings.redis_url, engine, settings.namespace)
        return load_flags(store, settings.flag_defaults)


class NatsResource(ConfigurableResource):
    """Sync events on NATS JetStream.

    Left unset, the URL comes from NATS_URL when a tick asks for it (credentials stay
    out of the UI); nothing connects before. Reads are bounded per tick.
    """

    url: str | None = None
    max_events_per_tick: int = MAX_EVENTS_PER_TICK
    read_budget_seconds: float = READ_BUDGET_SECONDS

    def jetstream(self) -> JetStream | None:
        """The streams, or None when no NATS URL is configured."""
        settings = current_settings()
        url = self.url or settings.nats_url
        return JetStream(url, EventStreams(settings.namespace)) if url else None


class GraphNotConfigured(RuntimeError):
    """A Graph-backed tenant's pass needs the MSP app's credentials, and they are not set."""


class GraphResource(ConfigurableResource):
    """Microsoft Graph for Graph-backed tenants: the MSP's multi-tenant app, client credentials.

    The secret is fed by EnvVar("GRAPH_CLIENT_SECRET"), so the UI and run config
    show its name, never its value, and no repr shows it; fields left unset come
    from GRAPH_* through the settings at run time. Nothing connects until a Graph-backed tenant's pass starts; the
    connection is shared by the run's tenants and closed with the run.
    """

    client_id: str | None = None
    client_secret: str | None = Field(default=None, repr=False)
    authority_host: str | None = None
    base_url: str | None = None
    _connection: GraphConnection | None = PrivateAttr(default=None)

    def connection(self) -> GraphConnection:
        if self._connection is None:
            settings = current_settings()
            app = {
                "GRAPH_CLIENT_ID": self.client_id or settings.graph_client_id,
                "GRAPH_CLIENT_SECRET": self.client_secret
                or (settings.graph_client_secret and settings.graph_client_secret.get_secret_value()),
            }
            unset = [name for name, value in app.items() if not value]
            if unset:
                raise GraphNotConfigured(
                    f"{' and '.join(unset)} not set: Graph-backed tenants are read with the MSP's app registration"
                )
            authority_host = self.authority_host or settings.graph_authority_host
            base_url = self.base_url or settings.graph_base_url
            credentials = GraphCredentials(
                app["GRAPH_CLIENT_ID"], app["GRAPH_CLIENT_SECRET"], authority_host, scope=graph_scope(base_url)
            )
            policy = RetryPolicy(reports_limit=settings.graph_reports_limit)
            self._connection = GraphConnection(credentials, base_url, policy)
        return self._connection

    def snapshot_refresher(self) -> Callable[[Engine, str], dict | None]:
        """For the tenant pass: a fresh snapshot from Graph for a graph-mode tenant, nothing for a files-mode one."""
        return partial(refresh_graph_snapshot, connect=self.connection)

    def teardown_after_execution(self, context: InitResourceContext) -> None:
        if self._connection is not None:
            self._connection.close()


class SourcesResource(ConfigurableResource):
    """The readers of the other integrations' data sources read from their APIs (Sophos Central): each
    connects with the settings its integration declares, when a tenant's pass first needs it; the
    connections are shared by the run's tenants and closed with the run. Secrets come from the settings at
    run time: never in run config or the UI."""

    # the integrations whose API-read sources are refreshed (None: every registered one with a reader)
    integrations: list[str] | None = None
    _connections: dict | None = PrivateAttr(default=None)

    def _connection(self, integration):
        if self._connections is None:
            self._connections = {}
        if integration.name not in self._connections:
            self._connections[integration.name] = integration.connect(current_settings())
        return self._connections[integration.name]

    def refresher(self, only: set[str] | None = None) -> Callable[[Engine, str], dict[str, dict]]:
        """For the tenant pass: each of its sources read from an API refreshed (`only`: those source ids);
        the reads' figures by snapshot stage."""

        def refresh(engine: Engine, tenant: str) -> dict[str, dict]:
            fetched = {}
            for stage, integration in SOURCE_STAGES.items():
                chosen = self.integrations is None or integration.name in self.integrations
                if (
                    not chosen
                    or integration.refresh is None
                    or (only is not None and integration.source_id not in only)
                ):
                    continue
                figures = integration.refresh(engine, tenant, connect=partial(self._connection, integration))
                if figures:
                    fetched[stage] = figures
            return fetched

        return refresh

    def teardown_after_execution(self, context: InitResourceContext) -> None:
        for connection in (self._connections or {}).values():
            connection.close()


class NotifierResource(ConfigurableResource):
    """Delivers the outbox. The key that opens the channels' secrets is fed by
    EnvVar("MSPBYTE_SECRET_KEY") (its name shows in the UI, never its value); left unset, the settings'."""

    secret_key: str | None = Field(default=None, repr=False)

    def deliver(self, engine: Engine) -> RoundFigures:
        settings = current_settings()
        box = SecretBox(self.secret_key) if self.secret_key else settings.secret_box()
        return deliver_round(engine, box, settings.notify_give_up)


def env_fed(resource: type[ConfigurableResource], **variables: str) -> ConfigurableResource:
    """`resource` with each field fed by EnvVar(variable) when that variable is set: the UI shows the
    name, never the value, and an unset one keeps the field's default (an unset EnvVar stops every run)."""
    return resource(**{field: EnvVar(name) for field, name in variables.items() if os.environ.get(name, "").strip()})


def pushgateway() -> ResourceDefinition | PrometheusResource:
    """dagster-prometheus's resource when PROMETHEUS_PUSHGATEWAY_URL is set; else a resource of None,
    and the run pushes nothing."""
    if not os.environ.get("PROMETHEUS_PUSHGATEWAY_URL", "").strip():
        return ResourceDefinition.none_resource(description="PROMETHEUS_PUSHGATEWAY_URL is not set: nothing is pushed")
    return PrometheusResource(gateway=EnvVar("PROMETHEUS_PUSHGATEWAY_URL"), timeout=10)


def resources_from_env() -> dict:
    """The resources of the Definitions: what may hold a secret (a password in a URL included) is fed
    by EnvVar when set where the code location loads; the rest comes from the settings at run time."""
    return {
        "database": env_fed(DatabaseResource, database_url="DATABASE_URL"),
        "feature_flags": env_fed(FeatureFlagsResource, redis_url="REDIS_URL"),
        "nats": env_fed(NatsResource, url="NATS_URL"),
        "graph": env_fed(GraphResource, client_secret="GRAPH_CLIENT_SECRET"),  # noqa: S106 (a variable's name)
        "prometheus": pushgateway(),
        "sources": SourcesResource(),
        "notifier": env_fed(NotifierResource, secret_key="MSPBYTE_SECRET_KEY"),  # noqa: S106 (a variable's name)
    }
