"""The whole project loads, touching no service, and holds what the design names."""

import socket

from dagster import AssetKey, Definitions

from mspbyte_dagster.defs.partitions import TENANTS


def test_definitions_hold_every_stage_job_and_resource():
    from mspbyte_dagster.definitions import defs

    Definitions.validate_loadable(defs)  # what `dagster dev` checks: unique op and job names, ...
    keys = set(defs.resolve_all_asset_keys())
    assert {AssetKey("m365_snapshot")} <= keys
    job = defs.resolve_job_def("tenant_pipeline")
    assert job.partitions_def.name == TENANTS
    assert job.executor_def.name == "in_process"
    assert set(defs.resources) >= {"database"}
    assets = defs.resolve_assets_def(AssetKey("m365_snapshot"))
    assert assets.can_subset and assets.backfill_policy.max_partitions_per_run == 50


def test_loading_definitions_opens_no_connection(monkeypatch):
    import importlib

    import mspbyte_dagster.definitions as module

    def refuse(*_args, **_kwargs):
        raise AssertionError("Definitions must not connect to anything at load")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setenv("DATABASE_URL", "postgresql://nobody@127.0.0.1:1/none")
    importlib.reload(module)
    module.defs.resolve_job_def("tenant_pipeline")
