"""The whole project loads, touching no service, and holds what the design names."""

import json
import os
import subprocess
import sys
from pathlib import Path

from dagster import AssetKey, Definitions

import mspbyte_dagster.defs
from mspbyte_dagster.defs.partitions import TENANTS
from mspbyte_dagster.lib.passes import PASS_STAGES

SNAPSHOT = Path(__file__).parent / "definitions_snapshot.json"
DEFS_FOLDER = Path(mspbyte_dagster.defs.__file__).parent


def test_definitions_hold_every_stage_job_and_resource():
    from mspbyte_dagster.definitions import defs

    Definitions.validate_loadable(defs)  # what `dagster dev` checks: unique op and job names, ...
    keys = set(defs.resolve_all_asset_keys())
    stages = ("m365_snapshot", "entities", "relationships", "tenant_context", "findings", "alerts")
    assert {AssetKey(stage) for stage in stages} <= keys
    checks = {(key.asset_key.to_user_string(), key.name) for key in defs.resolve_asset_graph().asset_check_keys}
    assert checks >= {
        ("m365_snapshot", "empty_sync_guard"),
        ("findings", "finding_entities_exist"),
        ("alerts", "one_open_alert_per_fingerprint"),
    }
    job = defs.resolve_job_def("tenant_pipeline")
    assert job.partitions_def.name == TENANTS
    assert job.executor_def.name == "in_process"
    assert job.tags["dagster/max_runtime"] == "600"  # JOB_TIMEOUT_MS default, in seconds
    assert set(defs.resources) >= {"database"}
    assets = defs.resolve_assets_def(AssetKey("m365_snapshot"))
    assert assets.can_subset and assets.backfill_policy.max_partitions_per_run == 50


def test_definitions_hold_the_event_sensors_and_the_refresh_schedule():
    from mspbyte_dagster.definitions import defs

    assert defs.resolve_sensor_def("sync_event_sensor").job_name == "tenant_pipeline"
    assert defs.resolve_sensor_def("tenant_registry_sensor").name == "tenant_registry_sensor"
    assert defs.resolve_schedule_def("tenant_refresh_schedule").job_name == "tenant_pipeline"
    assert "nats" in defs.resources
    # UI materializations and backfills run in the implicit asset job: one process per run there too.
    assert defs.resolve_implicit_global_asset_job_def().executor_def.name == "in_process"


# Run in a new interpreter, so every module of the package is imported under the guard, not only
# the ones a test session has not imported yet.
IMPORT_UNDER_GUARD = """
import socket, sys

def refuse(*args, **kwargs):
    raise SystemExit(f"a connection at import: {args!r}")

socket.socket.connect = socket.socket.connect_ex = refuse
socket.create_connection = socket.getaddrinfo = refuse
import mspbyte_dagster.definitions as module
from dagster import Definitions

Definitions.validate_loadable(module.defs)
module.defs.resolve_job_def("tenant_pipeline")
module.defs.resolve_asset_graph()
import json
print(json.dumps(sorted(name for name in sys.modules if name.startswith("mspbyte_dagster.defs."))))
"""


def test_loading_definitions_opens_no_connection(tmp_path):
    environment = {
        **os.environ,
        "DATABASE_URL": "postgresql://nobody@127.0.0.1:1/none",
        "NATS_URL": "nats://127.0.0.1:1",
        "REDIS_URL": "redis://127.0.0.1:1",
        "DAGSTER_HOME": str(tmp_path),
    }
    done = subprocess.run(
        [sys.executable, "-c", IMPORT_UNDER_GUARD], env=environment, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-2000:]
    loaded = set(json.loads(done.stdout.splitlines()[-1]))
    every_defs_module = {f"mspbyte_dagster.defs.{path.stem}" for path in DEFS_FOLDER.glob("[!_]*.py")}
    assert every_defs_module <= loaded  # each one imported under the guard


def describe(defs) -> dict:
    """What the project offers in the UI, by name: a new or changed asset, check, job, sensor, schedule
    or resource shows as a diff of definitions_snapshot.json."""
    graph = defs.resolve_asset_graph()
    assets = {}
    for key in sorted(graph.get_all_asset_keys()):
        node = graph.get(key)
        assets[key.to_user_string()] = {
            "deps": sorted(parent.to_user_string() for parent in node.parent_keys),
            "partitions": node.partitions_def.name if node.partitions_def is not None else None,
            "group": node.group_name,
            "checks": sorted(check.name for check in node.check_keys),
        }
    jobs = {}
    for job in [defs.resolve_job_def(name) for name in sorted(j.name for j in defs.jobs)]:
        jobs[job.name] = {
            "partitions": job.partitions_def.name if job.partitions_def is not None else None,
            "executor": job.executor_def.name,
            "tags": {k: v for k, v in sorted(job.tags.items()) if k.startswith("dagster/")},
        }
    sensors = {
        sensor.name: {
            "job": sensor.job_name if sensor.has_jobs else None,
            "interval_seconds": sensor.minimum_interval_seconds,
            "default_status": sensor.default_status.value,
        }
        for sensor in sorted(defs.sensors, key=lambda s: s.name)
    }
    schedules = {
        schedule.name: {
            "cron": schedule.cron_schedule,
            "job": schedule.job_name,
            "default_status": schedule.default_status.value,
        }
        for schedule in sorted(defs.schedules, key=lambda s: s.name)
    }
    resources = {name: type(resource).__name__ for name, resource in sorted(defs.resources.items())}
    return {"assets": assets, "jobs": jobs, "sensors": sensors, "schedules": schedules, "resources": resources}


def test_the_whole_definitions_match_their_snapshot():
    """Regenerate after a deliberate change: MSPBYTE_UPDATE_SNAPSHOT=1 pytest -k definitions_match."""
    from mspbyte_dagster.definitions import defs

    found = describe(defs)
    if os.environ.get("MSPBYTE_UPDATE_SNAPSHOT"):
        SNAPSHOT.write_text(json.dumps(found, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    assert found == json.loads(SNAPSHOT.read_text(encoding="utf-8"))


def test_the_tenant_job_leaves_the_comparison_report_out():
    """Off by default, the report must never count as Missing on the job's partitions page; passes that
    compare materialize it anyway (test_comparison)."""
    from mspbyte_dagster.definitions import defs

    selected = defs.resolve_job_def("tenant_pipeline").asset_layer.selected_asset_keys
    assert sorted(key.to_user_string() for key in selected) == sorted(PASS_STAGES)
