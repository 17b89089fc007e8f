"""Retention: a tenant keeps its newest snapshots and a window of history, pruned after successful passes."""

from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select, update

from mspbyte_dagster.lib.pipeline import STAGES, PassOptions, run_tenant_pass
from mspbyte_dagster.lib.store import metric_totals
from mspbyte_dagster.lib.store.retention import Retention
from mspbyte_dagster.lib.store.schema import alert_events, alerts, pipeline_ledger, snapshot_files, snapshots
from mspbyte_dagster_tests.snapshots import import_files, minimal_files


def kept_seqs(engine) -> list[int]:
    with engine.connect() as conn:
        seqs = list(conn.execute(select(snapshots.c.seq).order_by(snapshots.c.seq)).scalars())
        with_files = set(
            conn.execute(
                select(snapshots.c.seq).join(snapshot_files, snapshot_files.c.snapshot_id == snapshots.c.id)
            ).scalars()
        )
    assert set(seqs) == with_files  # a pruned snapshot takes its files along
    return seqs


def test_the_newest_snapshots_are_kept_after_a_successful_pass(engine, tmp_path):
    for _ in range(13):
        import_files(engine, tmp_path / "store", minimal_files())
    assert run_tenant_pass(engine, "contoso", STAGES, PassOptions()).status == "succeeded"
    assert kept_seqs(engine) == list(range(4, 14))  # SNAPSHOT_RETENTION's default: 10


def test_the_snapshot_a_pass_reads_and_the_one_entities_came_from_are_never_pruned(engine, tmp_path):
    import_files(engine, tmp_path / "store", minimal_files())
    assert run_tenant_pass(engine, "contoso", STAGES, PassOptions()).status == "succeeded"  # processed: 1
    for _ in range(3):
        import_files(engine, tmp_path / "store", minimal_files())
    findings_alone = run_tenant_pass(engine, "contoso", ("findings",), PassOptions(retention=Retention(snapshots=1)))
    assert findings_alone.status == "succeeded"
    assert kept_seqs(engine) == [1, 4]  # the entities' snapshot and the current one


def test_a_pass_that_fails_prunes_nothing(engine, tmp_path):
    for _ in range(3):
        import_files(engine, tmp_path / "store", minimal_files())
    with engine.begin() as conn:
        conn.execute(update(snapshots).where(snapshots.c.seq == 3).values(unreadable="lost"))
    result = run_tenant_pass(engine, "contoso", STAGES, PassOptions(retention=Retention(snapshots=1)))
    assert result.status == "failed" and kept_seqs(engine) == [1, 2, 3]


def test_old_ledger_rows_and_events_of_resolved_alerts_are_pruned_the_guard_baseline_kept(engine, tmp_path):
    import_files(engine, tmp_path / "store", minimal_files())  # licence s1 unused, legacy auth not blocked
    assert run_tenant_pass(engine, "contoso", STAGES, PassOptions()).status == "succeeded"
    fixed = minimal_files()
    fixed["subscribed_skus"][0]["consumedUnits"] = 5  # every unit in use: license_unused resolves
    import_files(engine, tmp_path / "store", fixed)
    assert run_tenant_pass(engine, "contoso", STAGES, PassOptions()).status == "succeeded"  # they resolve
    long_ago = datetime.now(UTC) - timedelta(days=500)
    with engine.begin() as conn:
        resolved = set(conn.execute(select(alerts.c.id).where(alerts.c.status == "resolved")).scalars())
        active = set(conn.execute(select(alerts.c.id).where(alerts.c.status == "active")).scalars())
        assert resolved and active
        conn.execute(update(pipeline_ledger).values(started_at=long_ago))
        conn.execute(update(alert_events).values(at=long_ago))
        baseline = conn.execute(select(func.max(pipeline_ledger.c.id))).scalar()
        metric_totals.fold(conn, datetime.now(UTC))  # what the passes do about once an hour

    assert run_tenant_pass(engine, "contoso", STAGES, PassOptions()).status == "succeeded"
    with engine.connect() as conn:
        ledger_ids = set(conn.execute(select(pipeline_ledger.c.id)).scalars())
        events_of = set(conn.execute(select(alert_events.c.alert_id)).scalars())
        assert conn.execute(select(func.count()).select_from(alerts)).scalar() == len(resolved | active)
    assert len(ledger_ids) == 2 and baseline in ledger_ids  # the baseline and the pass just ended
    assert events_of.isdisjoint(resolved) and active <= events_of  # history of open alerts stays whole
