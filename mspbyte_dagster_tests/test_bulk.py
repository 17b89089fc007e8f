"""lib/store/bulk.py and the stage runner's collector pause: the shortcuts taken for speed (COPY text made
by hand, rows straight from psycopg, no cycle collection during a stage) must give what the plain way
gives, on SQLite and PostgreSQL."""

import gc
from datetime import UTC, datetime, timedelta
from itertools import chain

import pytest
from sqlalchemy import select

from mspbyte_dagster.lib import pipeline, stages
from mspbyte_dagster.lib.pipeline import STAGES, PassOptions, run_tenant_pass
from mspbyte_dagster.lib.store.bulk import batched_rows, bulk_insert
from mspbyte_dagster.lib.store.query_stats import QueryStats
from mspbyte_dagster.lib.store.schema import entity_relationships
from mspbyte_dagster_tests.snapshots import import_files, minimal_files

START = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)


def _edges(count: int) -> list[dict]:
    """Edges whose times and details differ from row to row, a few sharing one time, some without details."""
    return [
        {
            "tenant": "contoso",
            "data_source_id": 1,
            "relationship_type": "member_of" if i % 2 else "applies_to",
            "parent_id": i % 3,
            "child_id": i,
            "details": {"direct": i % 4 == 0, "via_groups": [f"g{i}", "ü\t\\n"]} if i % 5 else None,
            "created_at": START + timedelta(microseconds=i // 3),
        }
        for i in range(count)
    ]


def _stored(engine) -> list[dict]:
    with engine.connect() as conn:
        query = select(entity_relationships).order_by(entity_relationships.c.child_id)
        return [dict(row) for row in conn.execute(query).mappings()]


def test_a_bulk_insert_stores_every_value_as_given(engine):
    rows = _edges(40)
    with engine.begin() as conn:
        bulk_insert(conn, entity_relationships, rows)
    assert _stored(engine) == rows


def test_a_bulk_insert_writes_each_rows_own_json_when_rows_share_or_drop_theirs(engine):
    """One object shared by many rows, and fresh objects each row drops once written (CPython gives the
    next one the freed one's id): a shortcut keyed by object would mix them up."""
    shared = {"direct": True}
    rows = [edge | {"details": shared} for edge in _edges(20)]
    fresh = ({**edge, "details": {"child": edge["child_id"]}} for edge in _edges(40)[20:])
    with engine.begin() as conn:
        bulk_insert(conn, entity_relationships, chain(rows, fresh))
    assert [row["details"] for row in _stored(engine)] == [shared] * 20 + [{"child": i} for i in range(20, 40)]


def test_a_bulk_insert_refuses_a_time_without_a_zone(engine):
    row = _edges(1)[0] | {"created_at": START.replace(tzinfo=None)}
    with pytest.raises(Exception, match="naive datetime"), engine.begin() as conn:
        bulk_insert(conn, entity_relationships, [row])
    assert _stored(engine) == []


def test_batched_rows_are_the_rows_sqlalchemy_reads_across_batches(engine):
    with engine.begin() as conn:
        bulk_insert(conn, entity_relationships, _edges(10))
    c = entity_relationships.c
    query = select(c.relationship_type, c.parent_id, c.child_id, c.details).order_by(c.child_id)
    with engine.connect() as conn:
        plain = [tuple(row) for row in conn.execute(query)]
        batched = list(batched_rows(conn.execute(query), size=3))
    assert batched == plain
    assert batched[1][3] == {"direct": False, "via_groups": ["g1", "ü\t\\n"]}


def test_a_stage_runs_with_the_cycle_collector_paused_and_leaves_it_as_it_was(monkeypatch):
    seen = []
    monkeypatch.setitem(stages.STAGE_FUNCTIONS, "alerts", lambda state: seen.append(gc.isenabled()) or {})
    assert gc.isenabled()
    stages.run_stage(None, "alerts", QueryStats(timed=False))
    assert seen == [False] and gc.isenabled()
    gc.disable()
    try:
        stages.run_stage(None, "alerts", QueryStats(timed=False))
        assert not gc.isenabled()  # a caller that turned it off keeps it off
    finally:
        gc.enable()
    monkeypatch.setitem(stages.STAGE_FUNCTIONS, "alerts", lambda state: 1 / 0)
    with pytest.raises(ZeroDivisionError):
        stages.run_stage(None, "alerts", QueryStats(timed=False))
    assert gc.isenabled()


def test_a_pass_runs_with_the_cycle_collector_paused_from_its_first_stage_to_its_last(engine, tmp_path, monkeypatch):
    """Not only within each stage: turned on between stages, it scanned the pass's context each time."""
    seen = []
    open_pass = pipeline._open_pass
    monkeypatch.setattr(pipeline, "_open_pass", lambda *args: seen.append(gc.isenabled()) or open_pass(*args))
    import_files(engine, tmp_path / "store", minimal_files())
    assert run_tenant_pass(engine, "contoso", STAGES, PassOptions()).status == "succeeded"
    assert seen == [False] and gc.isenabled()
