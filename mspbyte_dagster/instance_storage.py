"""Dagster's PostgreSQL storage with its connections kept, for the production instance (deploy/dagster.yaml).

dagster-postgres opens a connection per statement (NullPool) everywhere but in dagster-webserver; a
tenant pass stores about twenty events, and a run of 50 tenants opened 2,711 connections: 8.5 s of
its 21 s (docs/benchmarks.md, 2026-12-01). These classes keep one open per storage, and open more
only while threads need them, as the webserver's own optimization does.

The event log also spares two kinds of statements a tenant's events cost (docs/benchmarks.md,
2026-12-01, fourth session): the catalog query before each asset check event, and a write per
partition and asset of the events a run plans. And it stores an asset or check event with what it
indexes in one transaction, not three (eighth session).
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from contextlib import nullcontext

from dagster import DagsterEventType, EventLogEntry
from dagster_postgres import PostgresEventLogStorage, PostgresRunStorage, PostgresScheduleStorage
from dagster_postgres.utils import get_token_provider_from_config, pg_url_from_config

POOL_RECYCLE_SECONDS = 3600
MAX_OVERFLOW = 10  # connections beyond the kept one, for the daemon's threads
# The events dagster-postgres indexes after storing them (an asset's latest event and tags, a check's execution)
INDEXED_EVENTS = {
    DagsterEventType.ASSET_MATERIALIZATION,
    DagsterEventType.ASSET_OBSERVATION,
    DagsterEventType.ASSET_MATERIALIZATION_PLANNED,
    DagsterEventType.ASSET_FAILED_TO_MATERIALIZE,
    DagsterEventType.ASSET_CHECK_EVALUATION,
    DagsterEventType.ASSET_CHECK_EVALUATION_PLANNED,
}


def _pooled(storage):
    storage.optimize_for_webserver(statement_timeout=0, pool_recycle=POOL_RECYCLE_SECONDS, max_overflow=MAX_OVERFLOW)
    return storage


class PooledPostgresRunStorage(PostgresRunStorage):
    @classmethod
    def from_config_value(cls, inst_data, config_value):
        return _pooled(super().from_config_value(inst_data, config_value))


class PooledPostgresEventLogStorage(PostgresEventLogStorage):
    def __init__(self, *args, **kwargs):
        self._tables_present: set[str] = set()
        self._storing = threading.local()  # the connection of the event this thread is storing
        super().__init__(*args, **kwargs)

    @classmethod
    def from_config_value(cls, inst_data, config_value):
        """An instance of this class: dagster-postgres' own `from_config_value` makes its base class."""
        return _pooled(
            cls(
                postgres_url=pg_url_from_config(config_value),
                should_autocreate_tables=config_value.get("should_autocreate_tables", True),
                inst_data=inst_data,
                token_provider=get_token_provider_from_config(config_value),
            )
        )

    def has_table(self, table_name: str) -> bool:
        """Dagster asks the catalog before every asset check event it stores; a table once there stays."""
        if table_name not in self._tables_present and super().has_table(table_name):
            self._tables_present.add(table_name)
        return table_name in self._tables_present

    def _connect(self):
        shared = getattr(self._storing, "conn", None)
        return nullcontext(shared) if shared is not None else super()._connect()

    def store_event(self, event: EventLogEntry) -> None:
        """An asset or check event, and what it indexes (the asset's latest event and tags, the check's
        execution), in one transaction: dagster-postgres commits the event, its NOTIFY and the index each on
        its own, and a tenant's pass stores about eleven such events."""
        if event.dagster_event_type not in INDEXED_EVENTS:
            super().store_event(event)
            return
        with self.index_transaction() as conn:
            self._storing.conn = conn
            try:
                super().store_event(event)
            finally:
                self._storing.conn = None

    def store_event_batch(self, events: Sequence[EventLogEntry]) -> None:
        """With DAGSTER_EVENT_BATCH_SIZE set (Settings.instance_variables), a new run's planned
        materializations in one INSERT, and the asset index updated once per asset
        (from its last one, as dagster-postgres does for a batch of materializations); dagster-postgres
        writes them one by one, three statements each. Each stays a row of its own with its partition:
        a failed run's partitions still show failed."""
        planned = [e for e in events if e.dagster_event_type == DagsterEventType.ASSET_MATERIALIZATION_PLANNED]
        others = [e for e in events if e.dagster_event_type != DagsterEventType.ASSET_MATERIALIZATION_PLANNED]
        if planned:
            insert = self.prepare_insert_event_batch(planned)
            with self._connect() as conn:
                event_ids = conn.execute(insert.returning(insert.table.c.id)).scalars().all()
            last_of_asset = {e.get_dagster_event().asset_key: (e, i) for e, i in zip(planned, event_ids, strict=True)}
            with self.index_transaction() as conn:
                for event, event_id in last_of_asset.values():
                    self._store_asset_event(conn, event, event_id)
        if others:
            super().store_event_batch(others)


class PooledPostgresScheduleStorage(PostgresScheduleStorage):
    @classmethod
    def from_config_value(cls, inst_data, config_value):
        return _pooled(super().from_config_value(inst_data, config_value))
