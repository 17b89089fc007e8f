"""Run-time flag changes: durable in the app database or Redis, seen by every process, env until reset."""

import json
import os
import subprocess
import sys
import uuid

import pytest
from click.testing import CliRunner

from mspbyte_dagster.cli import main
from mspbyte_dagster.lib.flag_store import (
    REDIS_PREFIX,
    DatabaseFlagStore,
    FlagStoreUnavailable,
    RedisFlagStore,
    flag_store,
    load_flags,
)
from mspbyte_dagster.lib.flags import FLAG_DEFAULTS, UnknownFlagError, run_tags
from mspbyte_dagster.lib.store.tenants import upsert_tenant
from mspbyte_dagster_tests.conftest import delete_keys
from mspbyte_dagster_tests.services import RUN_ID


@pytest.fixture
def down_redis_url(private_redis) -> str:
    """A Redis of this test's own, stopped: what the flag store meets when Redis is down."""
    private_redis.stop()
    return private_redis.url


@pytest.fixture
def tenants(engine):
    with engine.begin() as conn:
        for key in ("contoso", "fabrikam"):
            upsert_tenant(conn, key, key.title(), None)
    return engine


@pytest.fixture(params=["database", "redis"])
def store(request, tenants):
    if request.param == "database":
        yield DatabaseFlagStore(tenants)
        return
    url = request.getfixturevalue("redis_url")
    prefix = f"test-{RUN_ID}-{uuid.uuid4().hex[:8]}"
    yield RedisFlagStore(url, tenants, prefix=prefix)
    delete_keys(url, prefix)


def flags(store):
    return load_flags(store, FLAG_DEFAULTS)


def test_a_runtime_switch_beats_the_environment_until_reset(store):
    store.set_enabled("unified_analyzer", False)
    assert flags(store).status("unified_analyzer", "contoso").source == "global_off"
    store.reset("unified_analyzer")
    status = flags(store).status("unified_analyzer", "contoso")
    assert status.effective and status.source == "env"


def test_rollout_is_stored_and_reset(store):
    store.set_rollout("new_pipeline", 0)
    status = flags(store).status("new_pipeline", "contoso")
    assert (status.effective, status.source, status.rollout) == (False, "runtime", 0)
    store.reset("new_pipeline")
    assert flags(store).status("new_pipeline", "contoso").rollout == 100


def test_override_wins_over_rollout_but_not_over_global_off(store):
    store.set_rollout("batch_loading", 0)
    store.set_override("batch_loading", "contoso", True)
    assert flags(store).status("batch_loading", "contoso").source == "override"
    assert not flags(store).is_enabled("batch_loading", "fabrikam")
    store.set_enabled("batch_loading", False)
    assert flags(store).status("batch_loading", "contoso").source == "global_off"
    store.reset("batch_loading")  # reset keeps overrides
    assert flags(store).status("batch_loading", "contoso").override is True
    store.set_override("batch_loading", "contoso", None)
    assert flags(store).status("batch_loading", "contoso").override is None


def test_bad_changes_are_refused_and_nothing_is_applied(store):
    with pytest.raises(UnknownFlagError, match="new_pipeline"):
        store.set_enabled("turbo", True)
    with pytest.raises(ValueError, match="0..100"):
        store.set_rollout("new_pipeline", 101)
    with pytest.raises(LookupError, match="nobody"):
        store.set_override("new_pipeline", "nobody", True)
    manager = flags(store)
    assert all(s.source in ("env", "global_off") and s.override_count == 0 for s in manager.statuses("contoso"))


def test_redis_down_never_read_falls_back_to_the_environment_with_a_warning(tenants, caplog, down_redis_url):
    down = RedisFlagStore(down_redis_url, tenants)
    manager = load_flags(down, FLAG_DEFAULTS)
    assert manager.status("new_pipeline", "contoso").source == "env"
    assert "flag store unreachable" in caplog.text and manager.fallback.startswith("environment")


def test_redis_down_after_an_emergency_switch_keeps_the_flags_last_read(tenants, private_redis, caplog):
    """An emergency `new_pipeline off` must not turn back on because Redis went away."""
    store = RedisFlagStore(private_redis.url, tenants)
    store.set_enabled("new_pipeline", False)
    store.set_override("batch_loading", "contoso", False)
    assert load_flags(store, FLAG_DEFAULTS).fallback is None  # read, and kept in the app database
    private_redis.stop()
    manager = load_flags(store, FLAG_DEFAULTS)
    assert not manager.is_enabled("new_pipeline", "contoso")
    assert manager.status("batch_loading", "contoso").override is False
    assert manager.fallback.startswith("last read at") and "Redis unreachable" in manager.fallback
    assert run_tags(manager)["mspbyte/flags_fallback"] == manager.fallback
    assert "using the flags last read" in caplog.text


def test_redis_down_refuses_writes_clearly(tenants, down_redis_url):
    with pytest.raises(FlagStoreUnavailable, match="nothing was applied"):
        RedisFlagStore(down_redis_url, tenants).set_enabled("new_pipeline", False)


@pytest.mark.parametrize("backend", ["database", "redis"])
def test_a_second_process_sees_a_change(app_env, tmp_path, monkeypatch, request, backend):
    from mspbyte_dagster_tests.snapshots import minimal_files, write_folder

    namespace = f"test-{RUN_ID}-{uuid.uuid4().hex[:8]}"  # the keys of this test alone
    monkeypatch.setenv("MSPBYTE_NAMESPACE", namespace)
    if backend == "redis":
        monkeypatch.setenv("REDIS_URL", request.getfixturevalue("redis_url"))
    env = dict(os.environ)
    runner = CliRunner()
    assert runner.invoke(main, ["tenants", "import", str(write_folder(tmp_path / "c", minimal_files()))]).exit_code == 0
    result = runner.invoke(main, ["flags", "override", "alert_manager", "contoso", "off", "--json"])
    assert result.exit_code == 0, result.output
    other = subprocess.run(
        [
            os.path.join(os.path.dirname(sys.executable), "mspbyte"),
            "flags",
            "status",
            "alert_manager",
            "--tenant",
            "contoso",
            "--json",
        ],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    status = json.loads(other.stdout)
    assert (status["effective"], status["source"]) == (False, "override")
    if backend == "redis":
        delete_keys(env["REDIS_URL"], namespace)


def test_the_namespace_keeps_two_installations_apart_on_one_redis(tenants, redis_url):
    namespace = f"test-{RUN_ID}-{uuid.uuid4().hex[:8]}"
    ours, theirs = flag_store(redis_url, tenants, namespace), flag_store(redis_url, tenants, f"{namespace}-b")
    try:
        ours.set_enabled("new_pipeline", False)
        assert flags(theirs).status("new_pipeline", "contoso").source == "env"
        assert flags(ours).status("new_pipeline", "contoso").source == "global_off"
        assert ours.prefix == f"{namespace}:{REDIS_PREFIX}"
    finally:
        delete_keys(redis_url, namespace)
        delete_keys(redis_url, f"{namespace}-b")


def test_cli_refuses_a_write_when_redis_is_down(app_env, monkeypatch, down_redis_url):
    monkeypatch.setenv("REDIS_URL", down_redis_url)
    result = CliRunner().invoke(main, ["flags", "set", "new_pipeline", "off"])
    assert result.exit_code == 1 and "nothing was applied" in result.stderr


def test_a_corrupt_value_in_redis_is_ignored_with_a_warning_naming_it(tenants, redis_url, caplog):
    prefix = f"test-{RUN_ID}-{uuid.uuid4().hex[:8]}"
    store = RedisFlagStore(redis_url, tenants, prefix=prefix)
    try:
        store.set_rollout("new_pipeline", 30)
        store.set_override("batch_loading", "contoso", False)
        client = store.client
        client.hset(f"{prefix}:runtime", "unified_analyzer:rollout", "lots")  # written by hand, or corrupt
        client.hset(f"{prefix}:runtime", "alert_manager:enabled", "maybe")
        client.hset(f"{prefix}:overrides:batch_loading", "fabrikam", "\x00")
        manager = flags(store)  # a run starts: nothing raises
        assert manager.status("new_pipeline", "contoso").rollout == 30  # the good values still count
        assert manager.status("batch_loading", "contoso").override is False
        assert manager.status("unified_analyzer", "contoso").source == "env"
        assert manager.status("batch_loading", "fabrikam").override is None
        assert "'lots'" in caplog.text and f"{prefix}:runtime unified_analyzer:rollout" in caplog.text
        assert "'maybe'" in caplog.text and f"{prefix}:overrides:batch_loading fabrikam" in caplog.text
    finally:
        delete_keys(redis_url, prefix)
