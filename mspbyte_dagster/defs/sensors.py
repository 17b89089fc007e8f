"""Sensors: sync events on NATS become single-tenant runs; the app's tenant registry becomes partitions."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta

from dagster import (
    AssetCheckEvaluation,
    AssetKey,
    DefaultSensorStatus,
    RunRequest,
    SensorEvaluationContext,
    SensorResult,
    SkipReason,
    sensor,
)

from mspbyte_dagster.defs.check_targets import latest_materializations
from mspbyte_dagster.defs.checks import CHECKS
from mspbyte_dagster.defs.jobs import tenant_pipeline_job
from mspbyte_dagster.defs.partitions import (
    SOURCES_TAG,
    TENANT_TAG,
    TENANTS,
    TRIGGER_TAG,
    range_run_requests,
    tenants_partitions,
)
from mspbyte_dagster.defs.resources import DatabaseResource, NatsResource
from mspbyte_dagster.lib.events import Debounce, EventStreams, Registry, TickOutcome, Window, source_registry
from mspbyte_dagster.lib.nats_client import NatsUnavailableError, dead_letter
from mspbyte_dagster.lib.passes import FRESHNESS_CHECK
from mspbyte_dagster.lib.store.ledger import last_refreshed
from mspbyte_dagster.lib.store.tenants import list_tenants
from mspbyte_dagster.settings import current_settings

SYNC_EVENTS_TAG = "mspbyte/sync_events"
SYNC_SEQUENCES_TAG = "mspbyte/sync_sequences"
LOGGED_REJECTIONS = 20
NAMED_TENANTS = 10
MAX_REMOVED_SHARE_PERCENT = 10


def registered_sources(database: DatabaseResource) -> Registry:
    """Every tenant of the app database (registration order) with its data sources."""
    with database.engine().connect() as conn:
        return source_registry(list_tenants(conn))


def partition_changes(registered: list[str], known: list[str]) -> tuple[list[str], list[str]]:
    """Tenants to add as partitions (registration order) and partitions whose tenant is gone."""
    known_set, registered_set = set(known), set(registered)
    return [t for t in registered if t not in known_set], [t for t in known if t not in registered_set]


def removals_this_tick(registered: list[str], removed: list[str], known: int) -> list[str]:
    """Partitions to delete now: none while the registry is empty (a DATABASE_URL pointing at a new
    database must not wipe the fleet), else at most a tenth of the partitions per tick."""
    if not registered:
        return []
    return removed[: max(1, known * MAX_REMOVED_SHARE_PERCENT // 100)]


def window_run_request(window: Window) -> RunRequest:
    return RunRequest(
        run_key=window.run_key,
        partition_key=window.tenant,
        tags={
            TENANT_TAG: window.tenant,
            TRIGGER_TAG: "sync_event",
            SYNC_EVENTS_TAG: str(window.events),
            SYNC_SEQUENCES_TAG: f"{window.first_seq}-{window.last_seq}",
        }
        | ({SOURCES_TAG: ",".join(window.sources)} if window.sources else {}),
    )


def _warm_partition_cache(context: SensorEvaluationContext, tenants: list[str]) -> None:
    """Dagster checks each requested partition with a query of its own; one query for all of them fills
    the cache it checks first (figures: docs/benchmarks.md). The loader is not documented API (see the
    Dagster notes there); without it the check is only slower."""
    loader = getattr(context, "caching_dynamic_partitions_loader", None)
    if loader is not None and tenants:
        loader.get_existing_dynamic_partitions(TENANTS, tenants)


def _report(
    context: SensorEvaluationContext, outcome: TickOutcome, read: int, state: Debounce, streams: EventStreams
) -> str:
    """Log what needs a human (gaps, dead letters, dropped windows); return the tick's one-line summary."""
    for gap in outcome.gaps:
        context.log.warning(f"{gap.describe(streams.sync_stream)}: requesting a full refresh of every tenant")
    for rejection in outcome.rejections[:LOGGED_REJECTIONS]:
        message = rejection.message
        context.log.warning(
            f"dead-lettered {streams.sync_stream} sequence {message.seq} ({message.subject}): {rejection.header}"
        )
    if len(outcome.rejections) > LOGGED_REJECTIONS:
        context.log.warning(f"... and {len(outcome.rejections) - LOGGED_REJECTIONS} more dead-lettered event(s)")
    for window in outcome.orphaned:
        context.log.warning(
            f"tenant {window.tenant} is no longer registered: its {window.events} sync event(s) "
            f"(sequences {window.first_seq}-{window.last_seq}) start no run"
        )
    summary = (
        f"read {read} event(s): {outcome.events} folded, {len(outcome.rejections)} dead-lettered, "
        f"{len(outcome.gaps)} gap(s); {len(outcome.closed)} window(s) closed, {len(state.windows)} open; "
        f"next read after sequence {state.seq}"
    )
    context.log.info(summary)
    return summary


@sensor(
    name="sync_event_sensor",
    job=tenant_pipeline_job,
    minimum_interval_seconds=30,
    default_status=DefaultSensorStatus.RUNNING,
    description="Sync events from NATS (MSPBYTE_SYNC), debounced per tenant: one run per tenant and window.",
)
def sync_event_sensor(context: SensorEvaluationContext, nats: NatsResource, database: DatabaseResource):
    jetstream = nats.jetstream()
    if jetstream is None:
        return SkipReason("not configured: NATS_URL is not set, so no sync events are read (e.g. nats://host:4222)")
    state = Debounce.from_cursor(context.cursor)
    resume_after = state.seq
    registry = registered_sources(database)
    now_ms = time.time_ns() // 1_000_000  # before reading: only closes windows the stream cannot (lib/events.py)
    try:
        streams = jetstream.streams
        batch = jetstream.read(
            streams.sync_stream, state.seq, nats.max_events_per_tick, nats.read_budget_seconds, state.stream_created
        )
        window_ms = current_settings().max_debounce_window_ms
        outcome = state.advance(batch, registry, window_ms, now_ms, streams=streams)
        if outcome.rejections:
            jetstream.publish([dead_letter(rejection, streams) for rejection in outcome.rejections])
    except NatsUnavailableError as error:
        where = f"after sequence {resume_after}" if resume_after is not None else "at the stream's first event"
        return SkipReason(f"{error}; the next tick resumes {where}")
    summary = _report(context, outcome, len(batch.messages), state, streams)
    known = context.instance.get_dynamic_partitions(TENANTS)
    added, _ = partition_changes(list(registry), known)
    requests = [window_run_request(window) for window in outcome.closed]
    _warm_partition_cache(context, [window.tenant for window in outcome.closed])
    if outcome.gaps:
        gap = outcome.gaps[0]
        requests += range_run_requests(known + added, list(registry), "sync_gap", f"refresh:{gap.after}-{gap.resumed}")
    return SensorResult(
        run_requests=requests,
        skip_reason=None if requests else summary,
        cursor=state.to_cursor(),
        dynamic_partitions_requests=[tenants_partitions.build_add_request(added)] if added else None,
    )


def _named(keys: list[str]) -> str:
    shown = ", ".join(keys[:NAMED_TENANTS]) or "none"
    return shown + (f" and {len(keys) - NAMED_TENANTS} more" if len(keys) > NAMED_TENANTS else "")


@sensor(
    name="tenant_registry_sensor",
    minimum_interval_seconds=60,
    default_status=DefaultSensorStatus.RUNNING,
    description="Keeps the tenants partitions equal to the tenants of the app database (adds and deletes).",
)
def tenant_registry_sensor(context: SensorEvaluationContext, database: DatabaseResource):
    registered = list(registered_sources(database))
    known = context.instance.get_dynamic_partitions(TENANTS)
    added, gone = partition_changes(registered, known)
    removed = removals_this_tick(registered, gone, len(known))
    for tenant in removed:
        context.log.info(f"tenant {tenant} is no longer registered: its partition is deleted")
    changes = []
    if added:
        changes.append(tenants_partitions.build_add_request(added))
    if removed:
        changes.append(tenants_partitions.build_delete_request(removed))
    waiting = len(gone) - len(removed)
    held_back = (
        f"; {waiting} more to remove on later ticks"
        + (" (the registry is empty: nothing is removed until it is not)" if not registered else "")
        if waiting
        else ""
    )
    return SensorResult(
        skip_reason=f"{len(registered)} tenant(s) registered; partitions added: {_named(added)}; "
        f"removed: {_named(removed)}{held_back}",
        dynamic_partitions_requests=changes,
    )


def overdue(refreshed: dict[str, datetime | None], now: datetime, max_age: timedelta) -> list[str]:
    """Tenants whose last full successful pass is older than `max_age`, or that never had one."""
    return sorted(tenant for tenant, at in refreshed.items() if at is None or now - at > max_age)


@sensor(
    name="tenant_freshness_sensor",
    minimum_interval_seconds=300,
    default_status=DefaultSensorStatus.RUNNING,
    description=(
        "Fails check tenant_fresh on each tenant not refreshed (a full successful pass) within twice "
        "REFRESH_INTERVAL_MINUTES, once when it falls behind; its next full pass passes it again."
    ),
)
def tenant_freshness_sensor(context: SensorEvaluationContext, database: DatabaseResource):
    tenants = context.instance.get_dynamic_partitions(TENANTS)
    max_age = timedelta(minutes=2 * current_settings().refresh_interval_minutes)
    with database.engine().connect() as conn:
        refreshed = last_refreshed(conn, tenants)
    late = overdue(refreshed, datetime.now(UTC), max_age)
    reported = set(json.loads(context.cursor or "[]"))
    newly_late = [tenant for tenant in late if tenant not in reported]
    targets = latest_materializations(context.instance, CHECKS[FRESHNESS_CHECK][0], newly_late)
    for tenant in newly_late:
        since = refreshed[tenant]
        context.instance.report_runless_asset_event(
            AssetCheckEvaluation(
                asset_key=AssetKey(CHECKS[FRESHNESS_CHECK][0]),
                check_name=FRESHNESS_CHECK,
                passed=False,
                partition=tenant,
                description=(
                    f"overdue: last refreshed {since:%Y-%m-%d %H:%M} UTC" if since else "overdue: never refreshed"
                )
                + f"; expected within {max_age.total_seconds() / 60:.0f} minutes",
                target_materialization_data=targets.get(tenant),
            )
        )
    context.update_cursor(json.dumps(late))
    if late:
        return SkipReason(f"{len(late)} tenant(s) overdue: {', '.join(late[:NAMED_TENANTS])}")
    return SkipReason(f"all {len(tenants)} tenant(s) refreshed within {max_age.total_seconds() / 60:.0f} minutes")
