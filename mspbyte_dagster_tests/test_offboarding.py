"""`mspbyte tenants remove`: a customer who leaves leaves no row behind, and nobody else loses one."""

import json
import uuid

import pytest
import redis
from dagster import DagsterInstance
from sqlalchemy import func, select

from mspbyte_dagster.lib.flag_store import REDIS_PREFIX
from mspbyte_dagster.lib.store import metric_totals
from mspbyte_dagster.lib.store.db import engine_for
from mspbyte_dagster.lib.store.lease import tenant_lease
from mspbyte_dagster.lib.store.schema import metadata
from mspbyte_dagster_tests.conftest import delete_keys
from mspbyte_dagster_tests.services import RUN_ID
from mspbyte_dagster_tests.snapshots import minimal_files, mspbyte, write_folder

GONE, STAYS = "contoso", "fabrikam"


def rows_of(engine, tenant: str) -> dict[str, int]:
    """Rows of the tenant in every table that has a tenant column (every table, listed by the schema)."""
    with engine.connect() as conn:
        return {
            table.name: conn.execute(select(func.count()).select_from(table).where(table.c.tenant == tenant)).scalar()
            for table in metadata.sorted_tables
            if "tenant" in table.c
        }


@pytest.fixture
def two_tenants(app_env, tmp_path):
    """Two tenants, each imported twice and run (alerts, events, edges, ledger), a flag override and a lease row."""
    for key in (GONE, STAYS):
        files = minimal_files(key)
        for number in (1, 2):
            assert mspbyte("tenants", "import", str(write_folder(tmp_path / f"{key}-{number}", files)))[0] == 0
    assert mspbyte("run", "--all")[0] == 0
    assert mspbyte("flags", "override", "alert_manager", GONE, "off")[0] == 0
    assert mspbyte("thresholds", "set", GONE, "stale_days", "30")[0] == 0
    return engine_for(app_env["DATABASE_URL"])


def test_without_confirmation_it_only_shows_what_would_go(two_tenants):
    before = rows_of(two_tenants, GONE)
    code, out, err = mspbyte("tenants", "remove", GONE, "--json")
    assert code == 0, err
    shown = json.loads(out)
    assert shown["removed"] is False and shown["rows"] == before
    assert before["snapshots"] == 2 and before["snapshot_files"] > 0 and before["alert_events"] > 0
    assert rows_of(two_tenants, GONE) == before and GONE in DagsterInstance.get().get_dynamic_partitions("tenants")
    code, _, err = mspbyte("tenants", "remove", GONE, "--confirm", STAYS)
    assert code == 2 and "does not repeat the tenant key" in err and rows_of(two_tenants, GONE) == before


def test_a_removed_tenant_leaves_no_row_in_any_table_and_the_counters_stay(two_tenants):
    others = rows_of(two_tenants, STAYS)
    with two_tenants.connect() as conn:
        counters = metric_totals.current_figures(conn)
    code, out, err = mspbyte("tenants", "remove", GONE, "--confirm", GONE, "--json")
    assert code == 0, err
    assert json.loads(out)["removed"] is True
    assert set(rows_of(two_tenants, GONE).values()) == {0}
    assert rows_of(two_tenants, STAYS) == others
    with two_tenants.connect() as conn:
        assert metric_totals.current_figures(conn) == counters  # what its passes counted is still counted
    assert DagsterInstance.get().get_dynamic_partitions("tenants") == [STAYS]
    code, _, err = mspbyte("thresholds", "get", GONE)
    assert code == 2 and "unknown tenant" in err


def test_a_tenant_whose_pass_runs_is_not_removed(two_tenants):
    before = rows_of(two_tenants, GONE)
    with tenant_lease(two_tenants, GONE, 1.0, metric_totals.SETTLE_AFTER):  # a pass of the tenant holds it
        code, _, err = mspbyte("tenants", "remove", GONE, "--confirm", GONE)
    assert code == 1 and "was not removed" in err
    assert rows_of(two_tenants, GONE) == before


def test_flag_overrides_kept_in_redis_go_too_and_redis_down_stops_the_removal(
    app_env, tmp_path, monkeypatch, redis_url, private_redis
):
    namespace = f"test-{RUN_ID}-{uuid.uuid4().hex[:8]}"
    monkeypatch.setenv("MSPBYTE_NAMESPACE", namespace)
    assert mspbyte("tenants", "import", str(write_folder(tmp_path / GONE, minimal_files(GONE))))[0] == 0
    engine = engine_for(app_env["DATABASE_URL"])
    before = rows_of(engine, GONE)
    private_redis.stop()
    monkeypatch.setenv("REDIS_URL", private_redis.url)  # Redis down: refused before anything is deleted
    code, _, err = mspbyte("tenants", "remove", GONE, "--confirm", GONE)
    assert code == 1 and "was not removed" in err and rows_of(engine, GONE) == before
    monkeypatch.setenv("REDIS_URL", redis_url)
    try:
        assert mspbyte("flags", "override", "batch_loading", GONE, "off")[0] == 0
        client = redis.Redis.from_url(redis_url)
        key = f"{namespace}:{REDIS_PREFIX}:overrides:batch_loading"
        assert client.hget(key, GONE) == b"0"
        assert mspbyte("tenants", "remove", GONE, "--confirm", GONE)[0] == 0
        assert client.hget(key, GONE) is None and set(rows_of(engine, GONE).values()) == {0}
    finally:
        delete_keys(redis_url, namespace)
