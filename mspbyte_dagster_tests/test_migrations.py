"""Migrations run on SQLite and PostgreSQL and create every table with its access paths."""

import pytest
from sqlalchemy import inspect, text

from mspbyte_dagster.lib.store.db import (
    DatabaseNotReadyError,
    current_revision,
    engine_for,
    head_revision,
    require_migrated,
    upgrade,
)

TABLES = {
    "tenants",
    "data_sources",
    "snapshots",
    "entities",
    "entity_relationships",
    "findings",
    "alerts",
    "alert_events",
    "pipeline_ledger",
    "flag_runtime",
    "flag_overrides",
    "quarantined_records",
    "tenant_leases",
}


def test_upgrade_creates_every_table_at_head(engine):
    assert current_revision(engine) == head_revision()
    assert set(inspect(engine).get_table_names()) >= TABLES


def test_upgrade_twice_is_a_no_op(engine):
    assert upgrade(engine) == head_revision()


def test_entities_are_unique_on_their_key(engine):
    uniques = inspect(engine).get_unique_constraints("entities")
    assert ["tenant", "data_source_id", "entity_type", "external_id"] in [u["column_names"] for u in uniques]


def test_alerts_unique_on_the_fingerprint_and_indexed_by_tenant_and_status(engine):
    uniques = inspect(engine).get_unique_constraints("alerts")
    assert ["tenant", "alert_type", "entity_type", "entity_id", "sku_id"] in [u["column_names"] for u in uniques]
    indexes = [i["column_names"] for i in inspect(engine).get_indexes("alerts")]
    assert ["tenant", "status"] in indexes


def test_relationships_by_tenant_and_type(engine):
    uniques = [u["column_names"] for u in inspect(engine).get_unique_constraints("entity_relationships")]
    assert ["tenant", "relationship_type", "parent_id", "child_id"] in uniques


def test_every_tenant_data_table_leads_with_tenant(engine):
    inspector = inspect(engine)
    for table in TABLES - {"tenants", "flag_runtime"}:
        assert "tenant" in [c["name"] for c in inspector.get_columns(table)], table


def test_sqlite_runs_in_wal_mode_with_a_busy_timeout(sqlite_url):
    with engine_for(sqlite_url).connect() as conn:
        assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        assert conn.execute(text("PRAGMA busy_timeout")).scalar() >= 5000


def test_an_unmigrated_database_is_refused_with_the_command_to_run(tmp_path):
    engine = engine_for(f"sqlite:///{tmp_path / 'empty.db'}")
    with pytest.raises(DatabaseNotReadyError, match="mspbyte db upgrade"):
        require_migrated(engine)
    engine.dispose()
