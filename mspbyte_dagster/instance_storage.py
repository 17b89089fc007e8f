"""Dagster's PostgreSQL storage with its connections kept, for the production instance (deploy/dagster.yaml).

dagster-postgres opens a connection per statement (NullPool) everywhere but in dagster-webserver; a
tenant pass stores about twenty events, and a run of 50 tenants opened 2,711 connections: 8.5 s of
its 21 s (docs/benchmarks.md, 2026-12-01). These classes keep one open per storage, and open more
only while threads need them, as the webserver's own optimization does.
"""

from __future__ import annotations

from dagster_postgres import PostgresEventLogStorage, PostgresRunStorage, PostgresScheduleStorage

POOL_RECYCLE_SECONDS = 3600
MAX_OVERFLOW = 10  # connections beyond the kept one, for the daemon's threads


def _pooled(storage):
    storage.optimize_for_webserver(statement_timeout=0, pool_recycle=POOL_RECYCLE_SECONDS, max_overflow=MAX_OVERFLOW)
    return storage


class PooledPostgresRunStorage(PostgresRunStorage):
    @classmethod
    def from_config_value(cls, inst_data, config_value):
        return _pooled(super().from_config_value(inst_data, config_value))


class PooledPostgresEventLogStorage(PostgresEventLogStorage):
    @classmethod
    def from_config_value(cls, inst_data, config_value):
        return _pooled(super().from_config_value(inst_data, config_value))


class PooledPostgresScheduleStorage(PostgresScheduleStorage):
    @classmethod
    def from_config_value(cls, inst_data, config_value):
        return _pooled(super().from_config_value(inst_data, config_value))
