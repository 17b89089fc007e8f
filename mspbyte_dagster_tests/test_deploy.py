"""The production instance config loads against a real PostgreSQL, with every {env: X} it names."""

import re
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from dagster import (
    AssetKey,
    AssetMaterialization,
    BackfillPolicy,
    DagsterInstance,
    Definitions,
    StaticPartitionsDefinition,
    asset,
    define_asset_job,
    materialize,
)
from dagster._core.storage.partition_status_cache import get_and_update_asset_status_cache_value
from sqlalchemy import create_engine, event, text
from sqlalchemy.engine import make_url

from mspbyte_dagster_tests.services import scratch_database

DEPLOY = Path(__file__).resolve().parent.parent / "deploy"
TENANTS = StaticPartitionsDefinition(["contoso", "fabrikam", "northwind"])


@asset
def probe() -> int:
    return 1


@asset(partitions_def=TENANTS, backfill_policy=BackfillPolicy.single_run())
def tenant_probe(context) -> None:
    raise RuntimeError(f"tenants {context.partition_keys} down")


def test_every_env_the_production_config_names_is_documented():
    names = set(re.findall(r"^\s+env: (\w+)$", (DEPLOY / "dagster.yaml").read_text(), re.MULTILINE))
    readme = (DEPLOY.parent / "README.md").read_text()
    assert names == {"DAGSTER_PG_URL", "MAX_CONCURRENT_JOBS", "CELERY_BROKER_URL", "CELERY_BACKEND_URL", "CELERY_QUEUE"}
    assert all(f"`{name}`" in readme for name in names)


@contextmanager
def production_instance(tmp_path, monkeypatch, postgres_admin_url) -> Iterator[tuple[DagsterInstance, str]]:
    """deploy/dagster.yaml on a scratch PostgreSQL database (and that database's URL)."""
    with scratch_database(postgres_admin_url, "_dagster", migrate=False) as database:
        shutil.copy(DEPLOY / "dagster.yaml", tmp_path / "dagster.yaml")
        # dagster-postgres speaks psycopg2: SQLAlchemy 2.1 would pick psycopg 3 for a bare postgresql://
        url = make_url(database).set(drivername="postgresql+psycopg2")
        monkeypatch.setenv("DAGSTER_PG_URL", url.render_as_string(hide_password=False))
        monkeypatch.setenv("MAX_CONCURRENT_JOBS", "3")
        for name in ("CELERY_BROKER_URL", "CELERY_BACKEND_URL"):
            monkeypatch.setenv(name, "redis://127.0.0.1:6379/0")  # named, not reached: nothing is launched here
        monkeypatch.setenv("CELERY_QUEUE", "mspbyte")
        with DagsterInstance.from_config(str(tmp_path)) as instance:
            yield instance, database


def test_production_instance_runs_on_postgres_with_queued_runs(tmp_path, monkeypatch, postgres_admin_url):
    with production_instance(tmp_path, monkeypatch, postgres_admin_url) as (instance, database):
        assert type(instance.run_storage).__name__ == "PostgresRunStorage"
        assert type(instance.event_log_storage).__name__ == "PooledPostgresEventLogStorage"
        assert type(instance.run_coordinator).__name__ == "QueuedRunCoordinator"
        assert type(instance.run_launcher).__name__ == "CeleryRunLauncher"
        assert instance.run_coordinator.get_run_queue_config().max_concurrent_runs == 3
        assert instance.run_monitoring_enabled
        instance.add_dynamic_partitions("tenants", ["contoso"])
        assert instance.get_dynamic_partitions("tenants") == ["contoso"]
        assert materialize([probe], instance=instance).success  # events stored (LISTEN/NOTIFY and all)
        assert instance.get_latest_materialization_event(AssetKey("probe")) is not None
        assert kept_connections(database) >= 1  # not one connection per statement


def test_a_runs_planned_events_are_written_at_once_and_its_failed_partitions_still_show_failed(
    tmp_path, monkeypatch, postgres_admin_url
):
    monkeypatch.setenv("DAGSTER_EVENT_BATCH_SIZE", "1000")  # as Settings.instance_variables sets it
    with production_instance(tmp_path, monkeypatch, postgres_admin_url) as (instance, _):
        inserts = statements_of(instance, "INSERT INTO event_logs")
        job = Definitions(assets=[tenant_probe], jobs=[define_asset_job("tenants", [tenant_probe])]).resolve_job_def(
            "tenants"
        )
        run = job.execute_in_process(
            instance=instance,
            tags={"dagster/asset_partition_range_start": "contoso", "dagster/asset_partition_range_end": "northwind"},
            raise_on_error=False,
        )
        assert not run.success
        for tenant in TENANTS.get_partition_keys():  # a planned event each, in its own row
            planned = instance.get_latest_planned_materialization_info(AssetKey("tenant_probe"), tenant)
            assert planned.run_id == run.run_id
        stored = len(instance.all_logs(run.run_id))
        assert len(inserts) == stored - 2  # the three planned events in one statement
        status = get_and_update_asset_status_cache_value(instance, AssetKey("tenant_probe"), TENANTS)
        assert set(status.deserialize_failed_partition_subsets(TENANTS).get_partition_keys()) == set(
            TENANTS.get_partition_keys()
        )


def test_an_asset_event_is_stored_with_what_it_indexes_or_not_at_all(tmp_path, monkeypatch, postgres_admin_url):
    """One transaction per asset event: when its index cannot be written, no event is left behind that the
    asset's latest materialization does not know of."""
    with production_instance(tmp_path, monkeypatch, postgres_admin_url) as (instance, _):
        assert materialize([probe], instance=instance).success
        storage = instance.event_log_storage

        def index_down(*_args):
            raise RuntimeError("index down")

        with monkeypatch.context() as patched:
            patched.setattr(storage, "_store_asset_event", index_down)
            with pytest.raises(RuntimeError, match="index down"):
                instance.report_runless_asset_event(AssetMaterialization("probe"))
        assert len(instance.fetch_materializations(AssetKey("probe"), limit=10).records) == 1
        instance.report_runless_asset_event(AssetMaterialization("probe"))
        latest = instance.get_latest_materialization_event(AssetKey("probe"))
        assert latest.run_id == "" and len(instance.fetch_materializations(AssetKey("probe"), limit=10).records) == 2


def test_the_event_log_asks_the_catalog_for_a_table_until_it_is_there(tmp_path, monkeypatch, postgres_admin_url):
    with production_instance(tmp_path, monkeypatch, postgres_admin_url) as (instance, _):
        asked = statements_of(instance, "pg_catalog")
        storage = instance.event_log_storage
        assert storage.has_table("asset_check_executions") and storage.has_table("asset_check_executions")
        assert len(asked) == 1
        assert not storage.has_table("no_such_table") and not storage.has_table("no_such_table")
        assert len(asked) == 3


def statements_of(instance: DagsterInstance, fragment: str) -> list[str]:
    """The statements containing `fragment` the instance's event log sends from now on (a list that grows)."""
    sent: list[str] = []
    event.listen(
        instance.event_log_storage._engine,
        "before_cursor_execute",
        lambda conn, cursor, statement, *_: sent.append(statement) if fragment in statement else None,
    )
    return sent


def kept_connections(database: str) -> int:
    """Connections to the database held open by others (this test process's instance)."""
    engine = create_engine(database)
    with engine.connect() as conn:
        held = conn.execute(
            text("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()")
        ).scalar()
    engine.dispose()
    return held
