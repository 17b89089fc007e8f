"""The migration guide's log lines, in Dagster's run logs, at LOG_LEVEL, with the tenant and figures."""

from __future__ import annotations

import importlib
import shutil

import pytest
from dagster import DagsterInstance

from mspbyte_dagster.defs.partitions import RANGE_END_TAG, RANGE_START_TAG, TENANTS
from mspbyte_dagster.lib.store.db import engine_for
from mspbyte_dagster.lib.store.schema import snapshots
from mspbyte_dagster.settings import INSTANCE_CONFIG
from mspbyte_dagster_tests.snapshots import import_files, minimal_files

pytestmark = [pytest.mark.slow, pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)]


@pytest.fixture
def packaged_instance(app_env, monkeypatch, tmp_path):
    """DAGSTER_HOME with the instance config the project ships (python_logs included); two tenants."""
    shutil.copy(INSTANCE_CONFIG, f"{app_env['DAGSTER_HOME']}/dagster.yaml")
    monkeypatch.setenv("MAX_CONCURRENT_JOBS", "5")
    engine = engine_for(app_env["DATABASE_URL"])
    for key in ("alpha", "bravo"):
        import_files(engine, tmp_path / key, minimal_files(key, users=5))
    with engine.begin() as conn:  # bravo's pass cannot read its snapshot: it fails
        conn.execute(snapshots.update().where(snapshots.c.tenant == "bravo").values(unreadable="lost"))
    with DagsterInstance.get() as instance:
        instance.add_dynamic_partitions(TENANTS, ["alpha", "bravo"])
    return engine


def run_logs(monkeypatch, **variables) -> list[str]:
    """One tenant_pipeline run over alpha and bravo, with the Definitions loaded under `variables`."""
    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    import mspbyte_dagster.definitions as definitions

    importlib.reload(definitions)  # as a run worker loads the code location
    with DagsterInstance.get() as instance:
        result = definitions.defs.resolve_job_def("tenant_pipeline").execute_in_process(
            instance=instance, tags={RANGE_START_TAG: "alpha", RANGE_END_TAG: "bravo"}, raise_on_error=False
        )
        return [record.user_message for record in instance.all_logs(result.run_id)]


def test_each_pass_logs_its_outcome_with_tenant_duration_and_figures(
    definitions_reloaded_after, packaged_instance, monkeypatch
):
    logged = run_logs(monkeypatch, LOG_LEVEL="info", SLOW_QUERY_THRESHOLD_MS="0")
    [completed] = [m for m in logged if m.startswith("Pipeline execution completed: tenant=alpha")]
    assert " duration_ms=" in completed and " queries=" in completed and completed.endswith("status=succeeded")
    [failed] = [m for m in logged if m.startswith("Pipeline execution failed: tenant=bravo")]
    assert " duration_ms=" in failed and "error=" in failed
    # every statement is slow at a 0 ms threshold: each names its tenant and the module the guide filters on
    slow = [m for m in logged if m.startswith("Slow query detected: tenant=alpha")]
    for module in ("DataContextLoader", "Microsoft365Linker", "AlertManager"):
        assert any(f" module={module} " in m for m in slow), module


def test_log_level_reaches_the_runs(definitions_reloaded_after, packaged_instance, monkeypatch):
    logged = run_logs(monkeypatch, LOG_LEVEL="error", SLOW_QUERY_THRESHOLD_MS="0")
    assert not any(m.startswith(("Pipeline execution completed", "Slow query detected")) for m in logged)
    assert any(m.startswith("Pipeline execution failed: tenant=bravo") for m in logged)  # errors still show
