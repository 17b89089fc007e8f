"""Fixtures: real databases (a migrated SQLite file, the machine's PostgreSQL), real folders."""

from __future__ import annotations

import os
import shutil
import uuid
from contextlib import contextmanager
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from mspbyte_dagster.lib.store.db import engine_for, upgrade
from mspbyte_dagster.lib.store.schema import metadata
from mspbyte_dagster.lib.synthetic import write_snapshots

POSTGRES_ADMIN_URL = os.environ.get("MSPBYTE_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
DATABASES = ("sqlite", "postgresql")


@contextmanager
def scratch_postgres(suffix: str = ""):
    """A fresh, migrated PostgreSQL database on the test server, dropped afterwards."""
    name = f"mspbyte_test_{uuid.uuid4().hex[:10]}{suffix}"
    admin = create_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = make_url(POSTGRES_ADMIN_URL).set(database=name).render_as_string(hide_password=False)
    try:
        upgrade(engine_for(url))
        yield url
    finally:
        engine_for(url).dispose()
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(scope="session")
def postgres_url():
    """The test session's PostgreSQL database."""
    with scratch_postgres() as url:
        yield url


@pytest.fixture(scope="session")
def second_postgres_url():
    """A second database, for a path that must start from a database of its own."""
    with scratch_postgres("_b") as url:
        yield url


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory):
    """One migrated SQLite file; each test gets a copy (migrating per test is slow)."""
    path = tmp_path_factory.mktemp("template") / "app.db"
    engine = engine_for(f"sqlite:///{path}")
    upgrade(engine)
    engine.dispose()
    return path


def _empty_postgres(url: str) -> None:
    names = ", ".join(table.name for table in metadata.sorted_tables)
    with engine_for(url).begin() as conn:
        conn.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))


@pytest.fixture(params=DATABASES)
def database_url(request, tmp_path):
    """The app database of one test, empty and migrated, on SQLite and on PostgreSQL."""
    if request.param == "postgresql":
        url = request.getfixturevalue("postgres_url")
        _empty_postgres(url)
        yield url
        return
    path = tmp_path / "app.db"
    shutil.copyfile(request.getfixturevalue("sqlite_template"), path)
    url = f"sqlite:///{path}"
    yield url
    engine_for(url).dispose()


@pytest.fixture
def sqlite_url(tmp_path, sqlite_template):
    path = tmp_path / "app.db"
    shutil.copyfile(sqlite_template, path)
    url = f"sqlite:///{path}"
    yield url
    engine_for(url).dispose()


@pytest.fixture
def engine(database_url):
    return engine_for(database_url)


@pytest.fixture
def app_env(monkeypatch, tmp_path, database_url):
    """The environment of one `mspbyte` user: own data dir, app database and Dagster home."""
    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    env = {
        "MSPBYTE_DATA_DIR": str(tmp_path / "data"),
        "DATABASE_URL": database_url,
        "DAGSTER_HOME": str(home),
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return env


@pytest.fixture(scope="session")
def synth_dir(tmp_path_factory) -> Path:
    """Four small synthetic tenants (every variant), generated once per session."""
    out = tmp_path_factory.mktemp("synth")
    write_snapshots(out, tenants=4, users=40, seed=3)
    return out


@pytest.fixture
def tenant(engine, tmp_path):
    """The tenant `contoso` on the test's database (SQLite and PostgreSQL), driven pass by pass."""
    from mspbyte_dagster_tests.rules import Tenant

    return Tenant(engine, tmp_path)
