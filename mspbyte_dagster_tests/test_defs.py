"""The whole project loads, touching no service, and holds what the design names."""

import socket

from dagster import AssetKey, Definitions

from mspbyte_dagster.defs.partitions import TENANTS


def test_definitions_hold_every_stage_job_and_resource():
    from mspbyte_dagster.definitions import defs

    Definitions.validate_loadable(defs)  # what `dagster dev` checks: unique op and job names, ...
    keys = set(defs.resolve_all_asset_keys())
    stages = ("m365_snapshot", "entities", "tenant_context", "relationships", "findings", "alerts")
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


def test_loading_definitions_opens_no_connection(monkeypatch):
    import importlib

    import mspbyte_dagster.definitions as module

    def refuse(*_args, **_kwargs):
        raise AssertionError("Definitions must not connect to anything at load")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setenv("DATABASE_URL", "postgresql://nobody@127.0.0.1:1/none")
    importlib.reload(module)
    module.defs.resolve_job_def("tenant_pipeline")
