"""What happens to a tenant after its run ended badly: a pass whose run failed around it (time limit,
killed worker, terminated) is closed `failed` with Dagster's reason, never `running` forever; a
sync-triggered pass that found its tenant's lease held is requested again, not dropped."""

from __future__ import annotations

from datetime import UTC, datetime

from dagster import (
    DagsterEventType,
    DagsterRunStatus,
    DefaultSensorStatus,
    RunRequest,
    RunsFilter,
    SensorEvaluationContext,
    SensorResult,
    SkipReason,
    sensor,
)

from mspbyte_dagster.defs.jobs import tenant_pipeline_job
from mspbyte_dagster.defs.partitions import SOURCES_TAG, TENANT_TAG, TRIGGER_TAG
from mspbyte_dagster.defs.resources import DatabaseResource
from mspbyte_dagster.lib.notify.routing import announce_pass
from mspbyte_dagster.lib.store import ledger

ENDED_BADLY = [DagsterRunStatus.FAILURE, DagsterRunStatus.CANCELED]
REQUESTED_AGAIN_TAG = "mspbyte/requested_again_for"  # the ledger row of the pass that found the lease held
CARRIED_TAGS = (TENANT_TAG, TRIGGER_TAG, SOURCES_TAG, "mspbyte/sync_events", "mspbyte/sync_sequences")


def run_end_reason(instance, run) -> str:
    """Dagster's own words for how the run ended (its failure message, or that it was canceled)."""
    if run.status == DagsterRunStatus.CANCELED:
        return f"run {run.run_id} was canceled before the pass ended; its transaction was rolled back"
    records = instance.get_records_for_run(run.run_id, of_type=DagsterEventType.RUN_FAILURE, ascending=False, limit=1)
    message = records.records[0].event_log_entry.message if records.records else "no failure message"
    return f"run {run.run_id} failed before the pass ended ({message}); its transaction was rolled back"


def close_ended_runs(instance, database: DatabaseResource) -> list[str]:
    """Close the `running` passes of runs that have ended; each closed pass is announced like a failed one."""
    with database.engine().connect() as conn:
        open_runs = ledger.running_runs(conn)
    if not open_runs:
        return []
    closed = []
    for record in instance.get_run_records(RunsFilter(run_ids=open_runs, statuses=ENDED_BADLY)):
        reason = run_end_reason(instance, record.dagster_run)
        with database.engine().begin() as conn:
            for ledger_id, tenant in ledger.close_passes_of_run(conn, record.dagster_run.run_id, reason):
                announce_pass(conn, tenant, "failed", reason, ledger_id, record.dagster_run.run_id, datetime.now(UTC))
                closed.append(tenant)
    return closed


def requested_again(instance, skipped: list) -> list[RunRequest]:
    """A sync-triggered pass skipped for its tenant's lease, asked for again with the tags that named
    what to refresh (a schedule, backfill or CLI pass comes again on its own)."""
    requests = []
    for row in skipped:
        run = instance.get_run_by_id(row.run_id) if row.run_id else None
        if run is None or run.tags.get(TRIGGER_TAG) != "sync_event":
            continue
        requests.append(
            RunRequest(
                run_key=f"sync-again:{row.tenant}:{row.id}",
                partition_key=row.tenant,
                tags={name: run.tags[name] for name in CARRIED_TAGS if name in run.tags}
                | {TENANT_TAG: row.tenant, REQUESTED_AGAIN_TAG: str(row.id)},
            )
        )
    return requests


@sensor(
    name="pass_outcomes_sensor",
    job=tenant_pipeline_job,
    minimum_interval_seconds=15,
    default_status=DefaultSensorStatus.RUNNING,
    description="Closes the passes of runs that ended badly; requests sync passes that found the lease held again.",
)
def pass_outcomes_sensor(context: SensorEvaluationContext, database: DatabaseResource):
    closed = close_ended_runs(context.instance, database)
    with database.engine().connect() as conn:
        if context.cursor is None:  # first tick: what was skipped before this sensor existed stays as it was
            return SensorResult(cursor=str(ledger.newest_id(conn)), skip_reason=SkipReason("started watching"))
        skipped = ledger.skipped_after(conn, int(context.cursor))
    requests = requested_again(context.instance, skipped)
    if closed:
        context.log.warning(f"passes closed as failed after their run ended: {', '.join(closed)}")
    cursor = str(skipped[-1].id) if skipped else context.cursor
    if not requests:
        return SensorResult(cursor=cursor, skip_reason=SkipReason(f"{len(closed)} pass(es) closed; none to request"))
    return SensorResult(run_requests=requests, cursor=cursor)
