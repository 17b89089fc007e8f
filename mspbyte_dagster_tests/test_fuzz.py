"""Property-based fuzzing of what comes from outside: snapshot files and sync events.

The properties: nothing raises but a refusal that names what is wrong; a refused import leaves the
database as it was; what validation accepts, a tenant pass accepts too (it does not fail).
"""

import copy
import json
from datetime import UTC, datetime

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from mspbyte_dagster.lib.adapters.registry import DEFAULT
from mspbyte_dagster.lib.adapters.snapshot_files import SnapshotError, parse_snapshot

SNAPSHOT_FILES = DEFAULT.snapshot_files
from mspbyte_dagster.lib.events import (
    MALFORMED_JSON,
    UNKNOWN_DATA_SOURCE,
    UNKNOWN_TENANT,
    WRONG_SCHEMA,
    Rejection,
    StreamMessage,
    SyncEvent,
    check_event,
    sync_event_payload,
)
from mspbyte_dagster.lib.onboarding import import_snapshot
from mspbyte_dagster.lib.pipeline import STAGES, PassOptions, run_tenant_pass
from mspbyte_dagster.lib.store.db import engine_for
from mspbyte_dagster.lib.store.schema import metadata
from mspbyte_dagster_tests.snapshots import minimal_files

pytestmark = pytest.mark.slow

BASE = minimal_files()
JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(10**12), 10**12)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=40),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4),
    max_leaves=12,
)
FIELDS = sorted({key for records in BASE.values() if isinstance(records, list) for r in records for key in r})


@st.composite
def mutated_files(draw) -> dict[str, bytes]:
    """The minimal snapshot with one to three things changed: a field's value, a field gone, a file gone,
    bytes cut or inserted."""
    files = copy.deepcopy(BASE)
    raw_edits = []
    for _ in range(draw(st.integers(1, 3))):
        stem = draw(st.sampled_from(SNAPSHOT_FILES))
        kind = draw(st.sampled_from(["value", "drop_field", "drop_file", "bytes"]))
        content = files.get(stem)
        if kind == "drop_file" and stem != "tenant":
            files.pop(stem, None)
        elif kind == "bytes":
            raw_edits.append((stem, draw(st.integers(0, 400)), draw(st.binary(max_size=8)), draw(st.integers(0, 3))))
        elif isinstance(content, list) and content:
            record = content[draw(st.integers(0, len(content) - 1))]
            name = draw(st.sampled_from(sorted(record) + FIELDS))
            if kind == "drop_field":
                record.pop(name, None)
            else:
                record[name] = draw(JSON_VALUES)
        elif isinstance(content, dict):
            name = draw(st.sampled_from(sorted(content) + ["sources", "x"]))
            if kind == "drop_field":
                content.pop(name, None)
            else:
                content[name] = draw(JSON_VALUES)
    raw = {stem: json.dumps(content).encode() for stem, content in files.items()}
    for stem, at, insert, cut in raw_edits:
        if stem in raw:
            data = raw[stem]
            raw[stem] = data[:at] + insert + data[at + cut :]
    return raw


def rows(engine) -> dict[str, int]:
    with engine.connect() as conn:
        return {t.name: conn.execute(select(func.count()).select_from(t)).scalar() for t in metadata.sorted_tables}


@pytest.fixture
def imported(sqlite_url):
    """A tenant with its first snapshot imported and passed: what a refusal must leave alone."""
    engine = engine_for(sqlite_url)
    with engine.begin() as conn:
        import_snapshot(conn, parse_snapshot({s: json.dumps(c).encode() for s, c in BASE.items()}, "base"))
    assert run_tenant_pass(engine, "contoso", STAGES, PassOptions()).status == "succeeded"
    return engine


@settings(max_examples=10_000, deadline=None, suppress_health_check=list(HealthCheck), database=None)
@given(raw=mutated_files())
def test_any_mutated_import_is_stored_whole_or_refused_naming_the_file_and_nothing_changes(imported, raw):
    before = rows(imported)
    try:
        snapshot = parse_snapshot(raw, "fuzz")
    except SnapshotError as refused:
        assert refused.problems and all(f"{p.file}.json" in str(refused) for p in refused.problems)
        assert rows(imported) == before
        return
    with imported.connect() as conn, conn.begin() as transaction:  # stored, then taken back: the next case
        import_snapshot(conn, snapshot)
        transaction.rollback()
    assert rows(imported) == before


@settings(max_examples=400, deadline=None, suppress_health_check=list(HealthCheck), database=None)
@given(raw=mutated_files())
def test_what_validation_accepts_a_pass_accepts(sqlite_url, raw):
    try:
        snapshot = parse_snapshot(raw, "fuzz")
    except SnapshotError:
        return
    engine = engine_for(sqlite_url)
    with engine.begin() as conn:
        import_snapshot(conn, snapshot)
    result = run_tenant_pass(engine, snapshot.key, STAGES, PassOptions())  # a mutation may rename the tenant
    assert result.status in ("succeeded", "held"), result.reason
    with engine.begin() as conn:  # the next case starts from an empty database again
        for table in reversed(metadata.sorted_tables):
            conn.execute(table.delete())


REGISTRY = {"alpha": {"m365": "microsoft365"}}
GOOD_EVENT = json.loads(sync_event_payload("alpha", "m365", "s1", datetime(2026, 11, 1, tzinfo=UTC)))


@st.composite
def event_bytes(draw) -> bytes:
    choice = draw(st.integers(0, 2))
    if choice == 0:
        return draw(st.binary(max_size=200))
    event = dict(GOOD_EVENT)
    for _ in range(draw(st.integers(1, 3))):
        key = draw(st.sampled_from(sorted(event) + ["extra"]))
        if draw(st.booleans()):
            event.pop(key, None)
        else:
            event[key] = draw(JSON_VALUES)
    data = json.dumps(event).encode()
    if choice == 2:
        at = draw(st.integers(0, len(data)))
        data = data[:at] + draw(st.binary(max_size=6)) + data[at + draw(st.integers(0, 3)) :]
    return data


@settings(max_examples=10_000, deadline=None, database=None)
@given(data=event_bytes(), subject_tenant=st.sampled_from(["alpha", "bravo", "alpha\n"]))
def test_any_sync_event_is_used_or_dead_lettered_with_a_reason_never_raises(data, subject_tenant):
    message = StreamMessage(7, 1_800_000_000_000, f"mspbyte.sync.{subject_tenant}.m365", data)
    verdict = check_event(message, REGISTRY)
    if isinstance(verdict, SyncEvent):
        assert verdict.tenant == "alpha" and verdict.data_source == "m365"
        return
    assert isinstance(verdict, Rejection)
    assert verdict.reason in (MALFORMED_JSON, WRONG_SCHEMA, UNKNOWN_TENANT, UNKNOWN_DATA_SOURCE)
    assert verdict.detail and "\n" not in verdict.header and len(verdict.header) < 400
