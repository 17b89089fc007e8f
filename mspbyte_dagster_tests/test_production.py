"""`mspbyte prod up|down|status`: production starts only when every production variable and service is
right, and never on SQLite; what it refuses, it names."""

from __future__ import annotations

import socket

import pytest
from sqlalchemy.engine import make_url

from mspbyte_dagster.lib.production import child_environment, stack_folder, worker_concurrency
from mspbyte_dagster.settings import Settings
from mspbyte_dagster_tests.services import free_port
from mspbyte_dagster_tests.snapshots import mspbyte


@pytest.fixture
def production_env(app_env, monkeypatch, postgres_url, redis_url, nats_url):
    """Every production variable set to a server that answers (the stack is not started here)."""
    variables = {
        "DAGSTER_PG_URL": make_url(postgres_url).set(drivername="postgresql+psycopg2").render_as_string(False),
        "CELERY_BROKER_URL": redis_url,
        "NATS_URL": nats_url,
        "METRICS_PORT": str(free_port()),
    }
    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    return app_env | variables


def refused(*options: str) -> str:
    code, _, err = mspbyte("prod", "up", "--ui-port", str(free_port()), "--code-port", str(free_port()), *options)
    assert code == 2
    return err


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_production_never_starts_on_sqlite_or_without_its_variables(app_env, monkeypatch):
    for name in ("DAGSTER_PG_URL", "CELERY_BROKER_URL", "NATS_URL"):
        monkeypatch.delenv(name, raising=False)
    err = refused()
    assert "DATABASE_URL must name PostgreSQL in production" in err
    for name in ("DAGSTER_PG_URL", "CELERY_BROKER_URL", "NATS_URL"):
        assert f"{name} is not set" in err
    assert not (stack_folder(Settings.from_env()) / "stack.json").exists()  # nothing was started


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_a_dagster_url_without_the_psycopg2_driver_is_refused_by_name(production_env, monkeypatch):
    monkeypatch.setenv("DAGSTER_PG_URL", "postgresql://dagster:hunter2@db:5432/dagster")
    err = refused()
    assert "DAGSTER_PG_URL must be postgresql+psycopg2://" in err and "hunter2" not in err


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_a_service_that_does_not_answer_or_a_port_in_use_is_named(production_env, monkeypatch):
    monkeypatch.setenv("CELERY_BROKER_URL", f"redis://:s3cret@127.0.0.1:{free_port()}/0")
    err = refused()
    assert "CELERY_BROKER_URL: not usable" in err and "s3cret" not in err
    monkeypatch.setenv("CELERY_BROKER_URL", production_env["CELERY_BROKER_URL"])
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        err = refused("--ui-port", str(port))
    assert f"--ui-port: 127.0.0.1:{port} is already in use" in err
    assert not (stack_folder(Settings.from_env()) / "stack.json").exists()


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_status_and_down_without_a_stack_say_so(app_env):
    code, _, err = mspbyte("prod", "status")
    assert code == 1 and "no production stack recorded" in err
    code, out, _ = mspbyte("prod", "down")
    assert code == 0 and "no production stack recorded" in out


def test_workers_have_a_slot_for_every_run_the_coordinator_lets_start():
    settings = Settings.from_env({"MAX_CONCURRENT_JOBS": "5"})
    assert [worker_concurrency(settings, workers) for workers in (1, 2, 5, 8)] == [5, 3, 1, 1]


def test_the_stacks_processes_hand_a_runs_planned_events_to_the_storage_in_batches(tmp_path, monkeypatch):
    monkeypatch.delenv("DAGSTER_EVENT_BATCH_SIZE", raising=False)
    env = child_environment(Settings.from_env({}), tmp_path)
    assert env["DAGSTER_EVENT_BATCH_SIZE"] == "1000" and env["DAGSTER_HOME"] == str(tmp_path)
    monkeypatch.setenv("DAGSTER_EVENT_BATCH_SIZE", "0")  # an operator's own choice stays
    assert child_environment(Settings.from_env({}), tmp_path)["DAGSTER_EVENT_BATCH_SIZE"] == "0"
