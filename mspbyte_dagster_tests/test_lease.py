"""One pass per tenant at a time: advisory lock on PostgreSQL, lease row on SQLite."""

import subprocess
import sys
import threading
import time
from datetime import datetime, timedelta

import pytest
from sqlalchemy import select

from mspbyte_dagster.lib.store.lease import LeaseUnavailable, tenant_lease
from mspbyte_dagster.lib.store.schema import pipeline_ledger, tenant_leases
from mspbyte_dagster.lib.store.tenants import upsert_tenant
from mspbyte_dagster_tests.snapshots import import_files, minimal_files

TTL = timedelta(minutes=5)

PASS_SCRIPT = """
import sys, time
from pathlib import Path
from mspbyte_dagster.lib.pipeline import STAGES, PassOptions, run_tenant_pass
from mspbyte_dagster.lib.store.db import engine_for
url, go, name = sys.argv[1], Path(sys.argv[2]), sys.argv[3]
engine = engine_for(url)
while not go.exists():
    time.sleep(0.01)
result = run_tenant_pass(engine, "contoso", STAGES, PassOptions(run_id=name, lease_wait_seconds=120))
print(result.status, result.reason)
"""


@pytest.fixture
def registered(engine):
    with engine.begin() as conn:
        upsert_tenant(conn, "contoso", "Contoso", None)
    return engine


def test_a_second_holder_waits_then_skips(registered):
    with tenant_lease(registered, "contoso", 1, TTL):
        started = time.monotonic()
        with pytest.raises(LeaseUnavailable, match="contoso"), tenant_lease(registered, "contoso", 0.5, TTL):
            pass
        assert time.monotonic() - started >= 0.5
    with tenant_lease(registered, "contoso", 0.5, TTL):  # released: free again
        pass


def test_the_lease_is_taken_when_the_holder_lets_go_within_the_wait(registered):
    entered = []

    def second():
        with tenant_lease(registered, "contoso", 10, TTL):
            entered.append(time.monotonic())

    with tenant_lease(registered, "contoso", 1, TTL):
        thread = threading.Thread(target=second)
        thread.start()
        time.sleep(0.5)
        released = time.monotonic()
    thread.join()
    assert entered and entered[0] >= released


def test_other_tenants_are_not_blocked(registered):
    with registered.begin() as conn:
        upsert_tenant(conn, "fabrikam", "Fabrikam", None)
    with tenant_lease(registered, "contoso", 1, TTL), tenant_lease(registered, "fabrikam", 0.2, TTL):
        pass


def test_an_expired_sqlite_lease_is_taken_over(sqlite_url):
    from mspbyte_dagster.lib.store.db import engine_for

    engine = engine_for(sqlite_url)
    with engine.begin() as conn:
        upsert_tenant(conn, "contoso", "Contoso", None)
        past = datetime.fromisoformat("2020-01-01T00:00:00+00:00")
        conn.execute(
            tenant_leases.insert().values(tenant="contoso", holder="crashed:1", acquired_at=past, expires_at=past + TTL)
        )
    with tenant_lease(engine, "contoso", 0.5, TTL), engine.connect() as conn:
        assert conn.execute(select(tenant_leases.c.holder)).scalar() != "crashed:1"


@pytest.mark.slow
def test_two_processes_never_overlap_on_one_tenant(engine, database_url, tmp_path):
    import_files(engine, tmp_path / "store", minimal_files(users=3000))
    go = tmp_path / "go"
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", PASS_SCRIPT, database_url, str(go), name],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for name in ("first", "second")
    ]
    time.sleep(1.5)  # both processes imported and waiting
    go.touch()
    outputs = [p.communicate(timeout=180) for p in processes]
    assert all(p.returncode == 0 for p in processes), outputs
    assert [out.split()[0] for out, _ in outputs] == ["succeeded", "succeeded"], outputs
    with engine.connect() as conn:
        leases = [row.details["lease"] for row in conn.execute(select(pipeline_ledger.c.details))]
    spans = sorted((datetime.fromisoformat(l["acquired_at"]), datetime.fromisoformat(l["released_at"])) for l in leases)
    assert len(spans) == 2
    assert spans[0][1] <= spans[1][0], spans
