"""`mspbyte bench fleet`: a synthetic fleet refreshed through the production stack (daemon, Celery workers,
PostgreSQL instance), against the same fleet's `mspbyte run --all` in one process, measured in one run.

Both timed refreshes are second passes (the snapshots unchanged since a first, untimed-for-comparison
`run --all`), so they do the same work; the runs go as the schedule sends them, in ranges of tenants.
"""

from __future__ import annotations

import statistics
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import Engine, func, select, text

from mspbyte_dagster.defs.partitions import range_tags
from mspbyte_dagster.lib.batching import tenant_ranges
from mspbyte_dagster.lib.store.schema import pipeline_ledger
from mspbyte_dagster.lib.store.tenants import tenant_keys
from mspbyte_dev.stack import FINISHED, ScratchStack, scratch_stack, wait_for
from mspbyte_dev.synthetic import write_snapshots

TRIGGER = "bench_fleet"


def _timed(step) -> float:
    started = time.perf_counter()
    step()
    return time.perf_counter() - started


def _through_the_daemon(stack: ScratchStack, timeout: float) -> tuple[list[str], float]:
    """Submit the fleet as the schedule would (a run per range of tenants) and wait until every run ended."""
    with stack.app().connect() as conn:
        order = tenant_keys(conn)
    client = stack.graphql()
    started = time.perf_counter()
    runs = [
        client.submit_job_execution("tenant_pipeline", tags=range_tags(keys, TRIGGER))
        for keys in tenant_ranges(order, order)
    ]
    pending = set(runs)

    def all_ended() -> bool:
        pending.difference_update(
            run for run, status in stack.run_statuses(sorted(pending)).items() if status in FINISHED
        )
        return not pending

    wait_for(all_ended, timeout, f"{len(runs)} runs of the fleet", every=0.5)
    return runs, time.perf_counter() - started


def _where_the_time_went(stack: ScratchStack, runs: list[str]) -> dict:
    """From Dagster's run records and event log, and the app's ledger: launch latency, run time, the
    passes' own time, and what is left (Dagster's run start, event log, step machinery)."""
    with stack.dagster().connect() as conn:
        rows = conn.execute(
            text("SELECT create_timestamp, start_time, end_time FROM runs WHERE run_id = ANY(:ids)"), {"ids": runs}
        ).all()
        events = conn.execute(text("SELECT count(*) FROM event_logs WHERE run_id = ANY(:ids)"), {"ids": runs}).scalar()
        # the daemon hands a run to Celery (STARTING) until a worker's pool child begins it (START)
        launched = (
            conn.execute(
                text(
                    "SELECT max(timestamp) FILTER (WHERE dagster_event_type = 'PIPELINE_START')"
                    " - max(timestamp) FILTER (WHERE dagster_event_type = 'PIPELINE_STARTING')"
                    " FROM event_logs WHERE run_id = ANY(:ids) GROUP BY run_id"
                ),
                {"ids": runs},
            )
            .scalars()
            .all()
        )
    with stack.app().connect() as conn:
        succeeded, work_ms = conn.execute(
            select(
                func.count().filter(pipeline_ledger.c.status == "succeeded"), func.sum(pipeline_ledger.c.duration_ms)
            ).where(pipeline_ledger.c.run_id.in_(runs))
        ).one()
    queued = [row.start_time - row.create_timestamp.timestamp() for row in rows if row.start_time]
    launch = [gap.total_seconds() for gap in launched if gap is not None]
    run_seconds = sum(row.end_time - row.start_time for row in rows if row.start_time and row.end_time)
    work = (work_ms or 0) / 1000
    return {
        "tenants_succeeded": succeeded,
        "queued_seconds_median": round(statistics.median(queued), 1) if queued else None,
        "launch_seconds_median": round(statistics.median(launch), 2) if launch else None,
        "run_seconds_total": round(run_seconds, 1),
        "tenant_work_seconds": round(work, 1),
        "dagster_overhead_seconds": round(run_seconds - work, 1),
        "events": events,
    }


def _transactions(dagster: Engine) -> int:
    """Transactions committed on the Dagster database so far (dagster-postgres commits each statement on
    its own, so about its statements), as of now."""
    with dagster.connect() as conn:
        conn.execute(text("SELECT pg_stat_clear_snapshot()"))
        return conn.execute(
            text("SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()")
        ).scalar()


def _connected_since(dagster: Engine, since: datetime) -> int:
    """Connections to the Dagster database opened since `since` still open (a backend's statistics are
    flushed as it ends)."""
    with dagster.connect() as conn:
        return conn.execute(
            text(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
                " AND pid <> pg_backend_pid() AND backend_start >= :since"
            ),
            {"since": since},
        ).scalar()


def _in_process(stack: ScratchStack) -> tuple[float, int]:
    """The seconds of the fleet's `mspbyte run --all` in one process, and the transactions it cost Dagster's
    database (the runs' events and records, and the command's own reads)."""
    dagster = stack.dagster()
    try:
        before, since = _transactions(dagster), datetime.now(UTC)
        seconds = _timed(lambda: stack.mspbyte("run", "--all"))
        wait_for(lambda: not _connected_since(dagster, since), 30, "the run's connections to close", every=0.2)
        return seconds, _transactions(dagster) - before
    finally:
        dagster.dispose()


def run_fleet_bench(
    admin_url: str, redis_url: str, nats_url: str, tenants: int, users: int, workers: int, seed: int = 1
) -> dict:
    with tempfile.TemporaryDirectory() as folder, scratch_stack(
        Path(folder), admin_url, redis_url, nats_url, f"bench-{uuid.uuid4().hex[:8]}",
        MAX_CONCURRENT_JOBS=str(workers), JOB_TIMEOUT_MS=str(3_600_000),
    ) as stack:  # fmt: skip
        stack.mspbyte("db", "upgrade")
        folders = write_snapshots(Path(folder) / "synth", tenants, users, seed)
        stack.mspbyte("tenants", "import", *map(str, folders))
        first_pass = _timed(lambda: stack.mspbyte("run", "--all"))
        stack.up(workers)
        runs, wall = _through_the_daemon(stack, timeout=max(600.0, tenants * 2.0))
        time_went = _where_the_time_went(stack, runs)
        stack.down()
        in_process, transactions = _in_process(stack)
    return {
        "tenants": tenants,
        "users": users,
        "workers": workers,
        "runs_launched": len(runs),
        "wall_seconds": round(wall, 1),
        "tenants_per_second": round(tenants / wall, 2),
        "in_process_seconds": round(in_process, 1),
        "ratio_to_in_process": round(wall / in_process, 2),
        "first_pass_in_process_seconds": round(first_pass, 1),
        "events_per_tenant": round(time_went["events"] / tenants, 1),
        "in_process_dagster_transactions_per_tenant": round(transactions / tenants, 1),
    } | time_went
