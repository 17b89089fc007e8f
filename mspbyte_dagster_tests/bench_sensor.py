"""What sync events and batched runs cost: sensor throughput and tick time, then 200 tenants through Dagster.

    .venv/bin/python -m mspbyte_dagster_tests.bench_sensor [--tenants 200] [--events 10000]
        [--single-runs 20] [--no-ui-backfill] [--postgres] [--json]

Everything runs in a scratch environment (a Dagster home with the repo's
dagster.yaml; SQLite for the app and Dagster, the embedded default, or with
--postgres scratch PostgreSQL databases for both, as in production) against
the servers the tests use (MSPBYTE_TEST_NATS_URL, MSPBYTE_TEST_POSTGRES_URL, or
private ones started for the benchmark when nothing answers there), in streams
of a namespace of its own, deleted afterwards.

- sensor: publish the events over the tenants, read them back raw, then one
  sync_event_sensor tick over all of them with the default 5-minute window (no
  window closes) and one where every tenant's window has closed (one run
  request per tenant, resolved by Dagster as the daemon does).
- batching: the refresh schedule's runs (ranges of 50) executed in this process,
  a sample of one-run-per-tenant runs, and a real UI backfill (the UI's GraphQL
  mutation on a dagster-webserver, runs launched by a dagster-daemon).
  Dagster's overhead per tenant = (run time - the tenants' pass time from the
  ledger) / tenants.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

import httpx
from sqlalchemy.engine import make_url

from mspbyte_dagster_tests import services

BACKFILL_MUTATION = """
mutation($params: LaunchBackfillParams!) {
  launchPartitionBackfill(backfillParams: $params) {
    __typename
    ... on LaunchBackfillSuccess { backfillId }
    ... on PythonError { message }
  }
}"""
BIN = Path(sys.executable).parent


def scratch_environment(folder: Path, nats_url: str, app_url: str | None, dagster_url: str | None) -> None:
    """A fresh `mspbyte` user: own data dir, app database, Dagster home with the repo's dagster.yaml."""
    from mspbyte_dagster.lib.store.db import engine_for, upgrade
    from mspbyte_dagster.settings import INSTANCE_CONFIG, current_settings

    home = folder / "dagster_home"
    home.mkdir()
    config = INSTANCE_CONFIG.read_text()
    if dagster_url:
        # psycopg2: dagster-postgres 0.29.27's `NOTIFY run_events, %(id)s` fails under psycopg 3,
        # SQLAlchemy 2.1's default driver for postgresql://.
        dagster_url = make_url(dagster_url).set(drivername="postgresql+psycopg2").render_as_string(hide_password=False)
        config += f"\nstorage:\n  postgres:\n    postgres_url: {json.dumps(dagster_url)}\n"
    (home / "dagster.yaml").write_text(config)
    os.environ.pop("DATABASE_URL", None)
    if app_url:
        os.environ["DATABASE_URL"] = app_url
    os.environ.update(
        MSPBYTE_DATA_DIR=str(folder / "data"),
        DAGSTER_HOME=str(home),
        MAX_CONCURRENT_JOBS=os.environ.get("MAX_CONCURRENT_JOBS", "5"),
        NATS_URL=nats_url,
    )
    upgrade(engine_for(current_settings().database_url))


def import_tenants(folder: Path, tenants: int, users: int) -> list[str]:
    from dagster import DagsterInstance

    from mspbyte_dagster.defs.partitions import TENANTS
    from mspbyte_dagster.lib.onboarding import import_folders
    from mspbyte_dagster.lib.store.db import engine_for
    from mspbyte_dagster.settings import current_settings
    from mspbyte_dev.synthetic import write_snapshots

    settings = current_settings()
    folders = write_snapshots(folder / "synth", tenants, users, seed=7)
    imported = import_folders(engine_for(settings.database_url), folders)
    keys = [item.tenant for item in imported]
    DagsterInstance.get().add_dynamic_partitions(TENANTS, keys)
    return keys


def sensor_figures(keys: list[str], events: int) -> dict:
    from dagster import DagsterInstance

    from mspbyte_dagster_tests.test_sync_sensor import delete_streams, own_streams, sync_message, tick

    instance = DagsterInstance.get()
    jetstream = own_streams(os.environ["NATS_URL"])
    os.environ["MSPBYTE_NAMESPACE"] = jetstream.streams.namespace
    try:
        messages = [sync_message(jetstream.streams, keys[n % len(keys)], sync_id=str(n)) for n in range(events)]
        publishing = time.perf_counter()
        jetstream.publish(messages)
        published = time.perf_counter() - publishing
        started = time.perf_counter()
        read = len(jetstream.read(jetstream.streams.sync_stream, None, events, 60).messages)
        raw_read = time.perf_counter() - started

        os.environ["MAX_DEBOUNCE_WINDOW_MS"] = "300000"
        started = time.perf_counter()
        open_tick = tick(instance, None)
        open_seconds = time.perf_counter() - started

        # A window longer than the publishing took, already over: one closed window per tenant.
        window_ms = int(published * 1000) + 200
        os.environ["MAX_DEBOUNCE_WINDOW_MS"] = str(window_ms)
        time.sleep(max(0.0, publishing + window_ms / 1000 - time.perf_counter()))
        started = time.perf_counter()
        closing_tick = tick(instance, None)
        closing_seconds = time.perf_counter() - started
    finally:
        delete_streams(jetstream)
    return {
        "events": events,
        "tenants": len(keys),
        "publish_events_per_second": round(events / published),
        "raw_read_events_per_second": round(read / raw_read),
        "tick_all_windows_open": {
            "seconds": round(open_seconds, 2),
            "events_per_second": round(events / open_seconds),
            "run_requests": len(open_tick.run_requests),
        },
        "tick_every_window_closing": {
            "seconds": round(closing_seconds, 2),
            "events_per_second": round(events / closing_seconds),
            "run_requests": len(closing_tick.run_requests),
        },
    }


def pass_seconds(run_ids: list[str]) -> float:
    """The tenants' own pass time in these runs, from the pipeline ledger."""
    from sqlalchemy import func, select

    from mspbyte_dagster.lib.store.db import engine_for
    from mspbyte_dagster.lib.store.schema import pipeline_ledger
    from mspbyte_dagster.settings import current_settings

    with engine_for(current_settings().database_url).connect() as conn:
        total = conn.execute(
            select(func.sum(pipeline_ledger.c.duration_ms)).where(pipeline_ledger.c.run_id.in_(run_ids))
        ).scalar()
    return (total or 0) / 1000


def batch_summary(runs: list[tuple[str, float]], tenants: int, wall: float) -> dict:
    run_seconds = sum(seconds for _, seconds in runs)
    work = pass_seconds([run_id for run_id, _ in runs])
    return {
        "tenants": tenants,
        "runs": len(runs),
        "wall_seconds": round(wall, 1),
        "run_seconds": round(run_seconds, 1),
        "pass_seconds": round(work, 1),
        "dagster_overhead_per_tenant_seconds": round((run_seconds - work) / tenants, 3),
    }


def in_process(requests: list[dict]) -> list[tuple[str, float]]:
    """Execute runs in this process, as `mspbyte run` does; returns (run id, seconds) of each."""
    from dagster import DagsterInstance

    from mspbyte_dagster.definitions import defs

    job, instance, runs = defs.resolve_job_def("tenant_pipeline"), DagsterInstance.get(), []
    for request in requests:
        started = time.perf_counter()
        result = job.execute_in_process(instance=instance, raise_on_error=False, **request)
        runs.append((result.run_id, time.perf_counter() - started))
    return runs


def schedule_figures(keys: list[str]) -> dict:
    from dagster import DagsterInstance, build_schedule_context

    from mspbyte_dagster.defs.schedules import tenant_refresh_schedule

    started = time.perf_counter()
    tick = tenant_refresh_schedule.evaluate_tick(build_schedule_context(instance=DagsterInstance.get()))
    runs = in_process([{"tags": request.tags} for request in tick.run_requests])
    return batch_summary(runs, len(keys), time.perf_counter() - started)


def single_run_figures(keys: list[str]) -> dict:
    from mspbyte_dagster.defs.partitions import TENANT_TAG

    started = time.perf_counter()
    runs = in_process([{"partition_key": key, "tags": {TENANT_TAG: key}} for key in keys])
    return batch_summary(runs, len(keys), time.perf_counter() - started)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def ui_backfill_figures(keys: list[str], folder: Path) -> dict:
    """A backfill of every tenant and stage through the UI's GraphQL mutation, launched by the real daemon."""
    from dagster import DagsterInstance

    from mspbyte_dagster.definitions import defs

    port = free_port()
    env = {name: value for name, value in os.environ.items() if name != "NATS_URL"}  # the daemon's sensor stays idle
    location = ["-m", "mspbyte_dagster.definitions"]
    with open(folder / "webserver.log", "w") as web_log, open(folder / "daemon.log", "w") as daemon_log:
        webserver = subprocess.Popen(
            [BIN / "dagster-webserver", *location, "-p", str(port)], env=env, stdout=web_log, stderr=subprocess.STDOUT
        )
        daemon = None
        try:
            wait_for(lambda: httpx.get(f"http://127.0.0.1:{port}/server_info").status_code == 200, "dagster-webserver")
            stages = [list(key.path) for key in defs.resolve_all_asset_keys()]
            params = {"partitionNames": keys, "assetSelection": [{"path": path} for path in stages]}
            started = time.perf_counter()
            answer = httpx.post(
                f"http://127.0.0.1:{port}/graphql",
                json={"query": BACKFILL_MUTATION, "variables": {"params": params}},
                timeout=120,
            ).json()["data"]["launchPartitionBackfill"]
            if answer["__typename"] != "LaunchBackfillSuccess":
                raise RuntimeError(f"the backfill was refused: {answer}")
            daemon = subprocess.Popen(
                [BIN / "dagster-daemon", "run", *location], env=env, stdout=daemon_log, stderr=subprocess.STDOUT
            )
            instance, backfill = DagsterInstance.get(), answer["backfillId"]

            def records():
                return [r for r in instance.get_run_records() if r.dagster_run.tags.get("dagster/backfill") == backfill]

            wait_for(
                lambda: len(records()) * 50 >= len(keys) and all(r.dagster_run.is_finished for r in records()),
                "the backfill's runs",
                timeout=1800,
            )
            wall = time.perf_counter() - started
        finally:
            for process in (daemon, webserver):
                if process is not None:
                    process.terminate()
                    process.wait(timeout=60)
    runs = [(r.dagster_run.run_id, r.end_time - r.start_time) for r in records()]
    return batch_summary(runs, len(keys), wall) | {
        "ranges": sorted(
            f"{r.dagster_run.tags['dagster/asset_partition_range_start']}..{r.dagster_run.tags['dagster/asset_partition_range_end']}"
            for r in records()
        ),
        "statuses": sorted({r.dagster_run.status.value for r in records()}),
    }


def wait_for(condition, what: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if condition():
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise RuntimeError(f"{what} not ready after {timeout:.0f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tenants", type=int, default=200)
    parser.add_argument("--users", type=int, default=10)
    parser.add_argument("--events", type=int, default=10_000)
    parser.add_argument("--single-runs", type=int, default=20, help="one-run-per-tenant sample size")
    parser.add_argument("--no-ui-backfill", action="store_true", help="skip the webserver + daemon backfill")
    parser.add_argument("--postgres", action="store_true", help="app and Dagster storage on scratch PostgreSQL")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    with ExitStack() as stack:
        folder = Path(stack.enter_context(tempfile.TemporaryDirectory()))
        nats_url = stack.enter_context(services.server_url(services.NATS))
        urls = [None, None]
        if args.postgres:
            admin_url = stack.enter_context(services.server_url(services.POSTGRES))
            urls = [
                stack.enter_context(services.scratch_database(admin_url, kind, migrate=False))
                for kind in ("_app", "_dagster")
            ]
        scratch_environment(folder, nats_url, *urls)
        figures = {"storage": "postgresql" if args.postgres else "sqlite"}
        keys = import_tenants(folder, args.tenants, args.users)
        figures |= {"sensor": sensor_figures(keys, args.events), "schedule": schedule_figures(keys)}
        figures["one_run_per_tenant"] = single_run_figures(keys[: args.single_runs])
        if not args.no_ui_backfill:
            figures["ui_backfill"] = ui_backfill_figures(keys, folder)
    if args.json:
        print(json.dumps(figures, indent=2))
        return
    print(f"storage: {figures.pop('storage')}")
    for section, values in figures.items():
        print(section)
        for name, value in values.items():
            print(f"  {name:<40} {value}")


if __name__ == "__main__":
    main()
