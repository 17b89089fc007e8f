"""Fixtures: real databases (a migrated SQLite file, a PostgreSQL server), Redis, NATS, real folders.

Each server is the configured one when it answers, else one this run starts (services.py).
Tests that need one are marked `services` by the fixtures they use: `make test-fast` leaves them out.
"""

from __future__ import annotations

import importlib
import os
import shutil
import urllib.request
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path

import pytest
import redis
from sqlalchemy import text

from mspbyte_dagster.lib.store.db import engine_for, upgrade
from mspbyte_dagster.lib.store.schema import metadata
from mspbyte_dagster_tests import services
from mspbyte_dev.synthetic import write_snapshots

DATABASES = ("sqlite", "postgresql")
# Fixtures that reach a server; a test using one (or the PostgreSQL variant of database_url) is marked.
SERVICE_FIXTURES = {"postgres_admin_url", "redis_url", "nats_url", "private_nats", "private_redis"}
SERVICE_PARAMS = {"postgresql", "redis"}


def pytest_configure(config):
    config.addinivalue_line("markers", "services: needs PostgreSQL, Redis or NATS (left out by make test-fast)")
    config.addinivalue_line(
        "markers", "slow: a second or more: whole Dagster runs, subprocesses, retries (left out too)"
    )
    # Every process of the run, `mspbyte` subprocesses included, names its streams and keys after the run.
    os.environ["MSPBYTE_NAMESPACE"] = f"test-{services.RUN_ID}"


def pytest_collection_modifyitems(items):
    for item in items:
        callspec = getattr(item, "callspec", None)
        params = [value for value in callspec.params.values() if isinstance(value, str)] if callspec else []
        if SERVICE_FIXTURES & set(item.fixturenames) or SERVICE_PARAMS & set(params):
            item.add_marker(pytest.mark.services)


@contextmanager
def obtained(server: AbstractContextManager):
    """A server for the tests: missing skips them naming the package (fails them in CI); a failed start
    ends the run with the server's log tail instead of hundreds of connection errors."""
    try:
        with server as value:
            yield value
    except services.ServiceMissing as missing:
        if os.environ.get("CI"):
            raise
        pytest.skip(str(missing))
    except services.ServiceFailed as failed:
        pytest.exit(str(failed), returncode=3)


@pytest.fixture(scope="session")
def postgres_admin_url() -> Iterator[str]:
    """The PostgreSQL server's admin database: tests create databases of their own on it."""
    with obtained(services.server_url(services.POSTGRES)) as url:
        yield url


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """A Redis server; the run's keys carry its namespace (and are deleted by the test that made them)."""
    with obtained(services.server_url(services.REDIS)) as url:
        yield url


@pytest.fixture(scope="session")
def nats_url() -> Iterator[str]:
    """A NATS server with JetStream; each test's streams carry a namespace of its own."""
    with obtained(services.server_url(services.NATS)) as url:
        yield url


@pytest.fixture
def private_nats() -> Iterator[services.PrivateServer]:
    """A NATS server of this test alone, which it may stop and start."""
    with obtained(services.private_server(services.NATS)) as server:
        yield server


@pytest.fixture
def private_redis() -> Iterator[services.PrivateServer]:
    """A Redis server of this test alone, which it may stop and start."""
    with obtained(services.private_server(services.REDIS)) as server:
        yield server


def delete_keys(url: str, prefix: str) -> None:
    """Remove the keys under a prefix this run wrote, and nothing else."""
    client = redis.Redis.from_url(url)
    for key in client.scan_iter(f"{prefix}:*"):
        client.delete(key)
    client.close()


@pytest.fixture(scope="session")
def postgres_url(postgres_admin_url):
    """The test session's PostgreSQL database."""
    with services.scratch_database(postgres_admin_url) as url:
        yield url


@pytest.fixture(scope="session")
def second_postgres_url(postgres_admin_url):
    """A second database, for a path that must start from a database of its own."""
    with services.scratch_database(postgres_admin_url, "_b") as url:
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


@pytest.fixture
def definitions_reloaded_after():
    """Reloads the Definitions after the test's environment is undone (list it first: set up first, torn
    down last), so later tests get resources fed by the session's variables, not the test's."""
    import mspbyte_dagster.definitions as definitions

    yield definitions
    importlib.reload(definitions)


def debian_binary(name: str, package: str) -> str:
    """A binary of a Debian package the tests drive (prometheus, chromium; .ci/run installs them):
    missing, the test is skipped naming it, and fails with CI set, like a missing service."""
    found = shutil.which(name)
    if found is None:
        message = f"`{name}` not found: install Debian's {package} package (apt-get install {package})"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return found


@pytest.fixture
def chromium_page():
    """A page of a headless Debian Chromium driven by Playwright (no browser download): what a person
    sees, asserted on what the page shows."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=debian_binary("chromium", "chromium"), args=["--no-sandbox"]
        )
        page = browser.new_page(viewport={"width": 1600, "height": 1000})
        page.set_default_timeout(60_000)
        yield page
        browser.close()


def http_answers(url: str) -> bool:
    """Whether a GET of `url` answers 200 within two seconds (a server the test started is up)."""
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status == 200
    except OSError:
        return False
