"""Migrations run on SQLite and PostgreSQL and create every table with its access paths."""

import hashlib
import json
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import event, inspect, select, text

from mspbyte_dagster.lib.entities import content_hash
from mspbyte_dagster.lib.pipeline import PassOptions, run_tenant_pass
from mspbyte_dagster.lib.store.alert_writes import reset_removed_states
from mspbyte_dagster.lib.store.db import (
    DatabaseNotReadyError,
    current_revision,
    downgrade,
    engine_for,
    head_revision,
    require_migrated,
    upgrade,
)
from mspbyte_dagster.lib.store.schema import entities, entity_relationships, metadata
from mspbyte_dagster_tests import services
from mspbyte_dagster_tests.conftest import DATABASES
from mspbyte_dagster_tests.graph_builders import directory
from mspbyte_dagster_tests.snapshots import import_files, user

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


def test_an_edge_written_without_its_time_gets_the_servers(engine):
    """Linkers leave created_at to the database: parsing it from every COPY line was a fifth of the COPY."""
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO entity_relationships (tenant, data_source_id, relationship_type, parent_id, child_id)"
                " VALUES ('t1', 1, 'member_of', 2, 3)"
            )
        )
        written = conn.execute(select(entity_relationships.c.created_at)).scalar_one()
    assert abs(written - datetime.now(UTC)) < timedelta(minutes=5)


def foreign_keys(engine, table: str) -> set[str]:
    return {key["referred_table"] for key in inspect(engine).get_foreign_keys(table)}


def test_tables_written_in_bulk_carry_no_foreign_keys(engine):
    """A pass writes entities, findings, alerts and alert events by the thousand, and PostgreSQL checks a key
    row by row."""
    assert foreign_keys(engine, "entities") == foreign_keys(engine, "findings") == set()
    assert foreign_keys(engine, "alerts") == foreign_keys(engine, "alert_events") == set()


BULK_ROWS = {
    "tenants": "INSERT INTO tenants (tenant, name, created_at) VALUES ('t1', 'T', CURRENT_TIMESTAMP)",
    "data_sources": "INSERT INTO data_sources (id, tenant, source_id, integration, mode, created_at)"
    " VALUES (1, 't1', 'm365', 'microsoft365', 'files', CURRENT_TIMESTAMP)",
    "alerts": "INSERT INTO alerts (id, tenant, alert_type, analysis_type, entity_type, entity_id, severity, status,"
    " message, details, first_seen_at, last_seen_at, updated_at)"
    " VALUES (7, 't1', 'MFA_NOT_ENABLED', 'mfa', 'user', 'u1', 'high', 'active', 'm', '{}',"
    " CURRENT_TIMESTAMP, CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)",
    "alert_events": "INSERT INTO alert_events (tenant, alert_id, action, at, status)"
    " VALUES ('t1', 7, 'created', CURRENT_TIMESTAMP, 'active')",
    "findings": "INSERT INTO findings (tenant, data_source_id, analysis_type, alert_type, entity_type, entity_id,"
    " severity, message, details) VALUES ('t1', 1, 'mfa', 'MFA_NOT_ENABLED', 'user', 'u1', 'high', 'm', '{}')",
    "entities": "INSERT INTO entities (tenant, data_source_id, entity_type, external_id, data_hash, data,"
    " first_seen_at, updated_at, last_seen_at) VALUES ('t1', 1, 'user', 'u1', 'h', '{}',"
    " CURRENT_TIMESTAMP, CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)",
}
# revision before, and the keys the next one drops
DROPPED_KEYS = {
    "0014": {"findings": {"tenants", "data_sources"}, "alert_events": {"tenants", "alerts"}},
    "0017": {"entities": {"tenants", "data_sources"}},
    "0018": {"alerts": {"tenants"}},
}


@pytest.mark.parametrize("before", DROPPED_KEYS)
def test_dropping_foreign_keys_keeps_the_rows_both_ways(unmigrated_url, before):
    engine = engine_for(unmigrated_url)
    upgrade(engine, before)
    with engine.begin() as conn:
        for statement in BULK_ROWS.values():
            conn.execute(text(statement))
    dropped = DROPPED_KEYS[before]

    def kept():
        with engine.connect() as conn:
            return {table: conn.execute(select(metadata.tables[table].c.tenant)).scalars().all() for table in dropped}

    upgrade(engine)
    assert kept() == dict.fromkeys(dropped, ["t1"])
    downgrade(engine, before)
    assert kept() == dict.fromkeys(dropped, ["t1"])
    assert {table: foreign_keys(engine, table) for table in dropped} == dropped
    upgrade(engine)
    assert {table: foreign_keys(engine, table) for table in dropped} == dict.fromkeys(dropped, set())
    engine.dispose()


def stored_hashes(engine) -> dict[str, tuple]:
    with engine.connect() as conn:
        rows = conn.execute(select(entities.c.external_id, entities.c.data, entities.c.data_hash, entities.c.seen_hash))
        return {external_id: (data, data_hash, seen_hash) for external_id, data, data_hash, seen_hash in rows}


def stdlib_hash(data: dict) -> str:
    """The hash of an entity before migration 0017."""
    return hashlib.sha256(json.dumps(data, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def test_hashing_entities_by_orjson_computes_the_stored_hashes_again_both_ways(unmigrated_url, tmp_path):
    """Else the first pass after the upgrade would count every entity as updated."""
    engine = engine_for(unmigrated_url)
    upgrade(engine)
    files = directory([user("u0", displayName="Seán Øvergaard", signInActivity={"lastSignInDateTime": None})])
    import_files(engine, tmp_path / "store", files)
    assert run_tenant_pass(engine, "contoso", ("m365_snapshot", "entities"), PassOptions()).status == "succeeded"
    downgrade(engine, "0016")
    data, data_hash, seen_hash = stored_hashes(engine)["u0"]
    assert seen_hash == stdlib_hash(data)
    assert data_hash == stdlib_hash({k: v for k, v in data.items() if k != "signInActivity"}) != seen_hash
    upgrade(engine)
    assert stored_hashes(engine)["u0"][1:] == (content_hash(data, ("signInActivity",)), content_hash(data))
    again = run_tenant_pass(engine, "contoso", ("m365_snapshot", "entities"), PassOptions())
    counts = again.stages["entities"]
    assert counts["updated"] == counts["refreshed"] == 0 and counts["unchanged"] == len(stored_hashes(engine))
    engine.dispose()


def test_the_reset_of_removed_entities_reads_the_index_of_them_not_every_entity(engine):
    """Each pass resets the states of removed entities (almost always none): its statement must match the
    partial index's condition, or it scans the tenant's entities (8-11 ms at 10,000 users)."""
    sent = []
    event.listen(
        engine, "before_cursor_execute", lambda _c, _cur, statement, params, *_: sent.append((statement, params))
    )
    with engine.begin() as conn:
        reset_removed_states(conn, "contoso")
        ((statement, params),) = [(statement, params) for statement, params in sent if statement.startswith("UPDATE")]
        if engine.dialect.name == "postgresql":
            conn.exec_driver_sql("SET LOCAL enable_seqscan = off")  # an empty table: any index but a scan
            plan = conn.exec_driver_sql(f"EXPLAIN {statement}", params).scalars().all()
        else:
            plan = [row[-1] for row in conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {statement}", params)]
    assert any("ix_entities_removed_not_normal" in line for line in plan), plan


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
