"""Delivery of the outbox: a sensor that only looks (is anything due?) and a job that sends, so a slow
receiver never meets the sensor's 60 s tick limit."""

from datetime import UTC, datetime

from dagster import (
    DagsterRunStatus,
    DefaultSensorStatus,
    OpExecutionContext,
    RunRequest,
    RunsFilter,
    SensorEvaluationContext,
    SkipReason,
    in_process_executor,
    job,
    op,
    sensor,
)

from mspbyte_dagster.defs.jobs import run_tags
from mspbyte_dagster.defs.resources import DatabaseResource, NotifierResource
from mspbyte_dagster.lib.store.notifications import due_count

UNFINISHED = [
    DagsterRunStatus.QUEUED,
    DagsterRunStatus.NOT_STARTED,
    DagsterRunStatus.STARTING,
    DagsterRunStatus.STARTED,
]


@op(description="One delivery round: every due outbox message to its channel, with retries and dead letters.")
def deliver_notifications(context: OpExecutionContext, database: DatabaseResource, notifier: NotifierResource):
    figures = notifier.deliver(database.engine())
    for error in figures.errors:
        context.log.warning(f"not delivered: {error}")
    context.add_output_metadata(figures.as_json())
    context.log.info(
        f"{figures.messages} message(s): {figures.delivered} delivered, {figures.retried} to retry, "
        f"{figures.dead} dead-lettered"
    )
    return figures.as_json()


@job(
    executor_def=in_process_executor,
    tags=run_tags(),
    description="Sends the due notifications of the outbox (at least once).",
)
def notification_delivery():
    deliver_notifications()


@sensor(
    job=notification_delivery,
    minimum_interval_seconds=30,
    default_status=DefaultSensorStatus.RUNNING,
    description="Requests a notification_delivery run when outbox messages are due and no delivery run is going.",
)
def notification_outbox_sensor(context: SensorEvaluationContext, database: DatabaseResource):
    with database.engine().connect() as conn:
        due = due_count(conn, datetime.now(UTC))
    if not due:
        return SkipReason("no notification is due")
    going = context.instance.get_runs(
        filters=RunsFilter(job_name="notification_delivery", statuses=UNFINISHED), limit=1
    )
    if going:
        return SkipReason(f"{due} notification(s) due; delivery run {going[0].run_id} is still going")
    return RunRequest(tags={"mspbyte/due": str(due)})
