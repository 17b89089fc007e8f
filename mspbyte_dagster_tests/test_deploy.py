"""The production instance config loads against a real PostgreSQL, with every {env: X} it names."""

import re
import shutil
from pathlib import Path

from dagster import AssetKey, DagsterInstance, asset, materialize
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from mspbyte_dagster_tests.services import scratch_database

DEPLOY = Path(__file__).resolve().parent.parent / "deploy"


@asset
def probe() -> int:
    return 1


def test_every_env_the_production_config_names_is_documented():
    names = set(re.findall(r"^\s+env: (\w+)$", (DEPLOY / "dagster.yaml").read_text(), re.MULTILINE))
    readme = (DEPLOY.parent / "README.md").read_text()
    assert names == {"DAGSTER_PG_URL", "MAX_CONCURRENT_JOBS", "CELERY_BROKER_URL", "CELERY_BACKEND_URL", "CELERY_QUEUE"}
    assert all(f"`{name}`" in readme for name in names)


def test_production_instance_runs_on_postgres_with_queued_runs(tmp_path, monkeypatch, postgres_admin_url):
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
            assert type(instance.run_storage).__name__ == "PostgresRunStorage"
            assert type(instance.run_coordinator).__name__ == "QueuedRunCoordinator"
            assert type(instance.run_launcher).__name__ == "CeleryRunLauncher"
            assert instance.run_coordinator.get_run_queue_config().max_concurrent_runs == 3
            assert instance.run_monitoring_enabled
            instance.add_dynamic_partitions("tenants", ["contoso"])
            assert instance.get_dynamic_partitions("tenants") == ["contoso"]
            assert materialize([probe], instance=instance).success  # events stored (LISTEN/NOTIFY and all)
            assert instance.get_latest_materialization_event(AssetKey("probe")) is not None
            assert kept_connections(database) >= 1  # not one connection per statement


def kept_connections(database: str) -> int:
    """Connections to the database held open by others (this test process's instance)."""
    engine = create_engine(database)
    with engine.connect() as conn:
        held = conn.execute(
            text("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()")
        ).scalar()
    engine.dispose()
    return held
