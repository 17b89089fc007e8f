"""A run that ends badly around a pass closes that pass `failed` with Dagster's reason; a sync pass that
found its tenant's lease held is requested again (pass_outcomes_sensor)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from dagster import DagsterInstance, DagsterRun, DagsterRunStatus, SensorResult, build_sensor_context
from sqlalchemy import select

from mspbyte_dagster.defs.partitions import SOURCES_TAG, TRIGGER_TAG
from mspbyte_dagster.defs.resources import DatabaseResource
from mspbyte_dagster.defs.run_outcomes import REQUESTED_AGAIN_TAG, pass_outcomes_sensor
from mspbyte_dagster.lib.store import ledger
from mspbyte_dagster.lib.store.db import engine_for
from mspbyte_dagster.lib.store.schema import pipeline_ledger
from mspbyte_dagster_tests.snapshots import import_files, minimal_files


def tick(instance: DagsterInstance, cursor: str | None) -> SensorResult:
    return pass_outcomes_sensor(
        build_sensor_context(instance=instance, cursor=cursor, resources={"database": DatabaseResource()})
    )


def a_run(instance: DagsterInstance, trigger: str, status=DagsterRunStatus.STARTED) -> DagsterRun:
    run = DagsterRun(
        job_name="tenant_pipeline",
        run_id=str(uuid.uuid4()),
        status=status,
        tags={TRIGGER_TAG: trigger, SOURCES_TAG: "m365"},
    )
    instance.add_run(run)
    return run


def a_pass(engine, tenant: str, run: DagsterRun, status: str = "running") -> int:
    with engine.begin() as conn:
        ledger_id = ledger.start_pass(conn, tenant, run.run_id, datetime.now(UTC), "worker-host:4242")
        if status != "running":
            ledger.finish_pass(conn, ledger_id, tenant, status=status, reason="tenant 'alpha' is being processed")
    return ledger_id


def row(engine, ledger_id: int):
    with engine.connect() as conn:
        return conn.execute(select(pipeline_ledger).where(pipeline_ledger.c.id == ledger_id)).one()


def test_the_pass_of_a_run_that_ended_badly_is_closed_failed_with_dagsters_reason(app_env, tmp_path):
    engine = engine_for(app_env["DATABASE_URL"])
    import_files(engine, tmp_path / "alpha", minimal_files("alpha", users=3))
    instance = DagsterInstance.get()
    cursor = tick(instance, None).cursor
    stopped, killed, going = (a_run(instance, "sync_event") for _ in range(3))
    stopped_pass, killed_pass, going_pass = (a_pass(engine, "alpha", run) for run in (stopped, killed, going))

    instance.report_run_failed(stopped, message="Exceeded maximum runtime of 30 seconds.")
    instance.report_run_canceled(killed, message="terminated from the UI")
    tick(instance, cursor)

    closed = row(engine, stopped_pass)
    assert closed.status == "failed" and "Exceeded maximum runtime of 30 seconds." in closed.reason
    assert stopped.run_id in closed.reason and "rolled back" in closed.reason
    canceled = row(engine, killed_pass)
    assert canceled.status == "failed" and "was canceled" in canceled.reason
    assert row(engine, going_pass).status == "running"  # its run still goes on: not touched


def test_a_sync_pass_that_found_the_lease_held_is_requested_again_once_with_its_tags(app_env, tmp_path):
    engine = engine_for(app_env["DATABASE_URL"])
    import_files(engine, tmp_path / "alpha", minimal_files("alpha", users=3))
    instance = DagsterInstance.get()
    before = a_pass(engine, "alpha", a_run(instance, "sync_event", DagsterRunStatus.SUCCESS), "skipped")
    started = tick(instance, None)
    assert started.run_requests == [] and started.cursor == str(before)  # history is left as it was

    from_sync = a_pass(engine, "alpha", a_run(instance, "sync_event", DagsterRunStatus.SUCCESS), "skipped")
    a_pass(engine, "alpha", a_run(instance, "schedule", DagsterRunStatus.SUCCESS), "skipped")  # comes again anyway
    result = tick(instance, started.cursor)
    [request] = result.run_requests
    assert request.partition_key == "alpha" and request.run_key == f"sync-again:alpha:{from_sync}"
    assert request.tags[TRIGGER_TAG] == "sync_event" and request.tags[SOURCES_TAG] == "m365"
    assert request.tags[REQUESTED_AGAIN_TAG] == str(from_sync)
    assert tick(instance, result.cursor).run_requests == []  # once
