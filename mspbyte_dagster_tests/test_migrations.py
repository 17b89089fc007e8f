"""Migrations run on SQLite and PostgreSQL and create every table with its access paths."""

import pytest
from sqlalchemy import inspect, text

from mspbyte_dagster.lib.store.db import (
    DatabaseNotReadyError,
    current_revision,
    downgrade,
    engine_for,
    head_revision,
    require_migrated,
    upgrade,
)
from mspbyte_dagster_tests import services
from mspbyte_dagster_tests.conftest import DATABASES

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


EDGE_KEY = ["tenant", "relationship_type", "parent_id", "child_id"]


def test_relationships_are_keyed_by_what_they_join_and_nothing_else(engine):
    """One index to fill per edge: a large tenant writes tens of thousands of them per first pass."""
    inspector = inspect(engine)
    assert inspector.get_pk_constraint("entity_relationships")["constrained_columns"] == EDGE_KEY
    assert inspector.get_indexes("entity_relationships") == []
    assert "id" not in [c["name"] for c in inspector.get_columns("entity_relationships")]


@pytest.fixture(params=DATABASES)
def unmigrated_url(request, tmp_path):
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'app.db'}"
        return
    with services.scratch_database(request.getfixturevalue("postgres_admin_url"), "_m", migrate=False) as url:
        yield url


def test_keying_edges_by_what_they_join_keeps_every_edge_both_ways(unmigrated_url):
    engine = engine_for(unmigrated_url)
    upgrade(engine, "0013")
    rows = [(kind, parent, child) for kind in ("member_of", "applies_to") for parent in (1, 2) for child in (3, 4, 5)]
    insert = text(
        "INSERT INTO entity_relationships (tenant, data_source_id, relationship_type, parent_id, child_id, created_at)"
        " VALUES ('t1', 1, :kind, :parent, :child, CURRENT_TIMESTAMP)"
    )
    read = text("SELECT relationship_type, parent_id, child_id FROM entity_relationships")
    with engine.begin() as conn:
        conn.execute(insert, [{"kind": k, "parent": p, "child": c} for k, p, c in rows])
    upgrade(engine)
    with engine.connect() as conn:
        assert sorted(conn.execute(read).all()) == sorted(rows)
    downgrade(engine, "0013")
    with engine.connect() as conn:
        assert sorted(conn.execute(read).all()) == sorted(rows)
        ids = conn.execute(text("SELECT id FROM entity_relationships")).scalars().all()
    assert len(set(ids)) == len(rows) and None not in ids
    uniques = [u["column_names"] for u in inspect(engine).get_unique_constraints("entity_relationships")]
    assert EDGE_KEY in uniques
    upgrade(engine)
    with engine.connect() as conn:
        assert sorted(conn.execute(read).all()) == sorted(rows)
    engine.dispose()


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
