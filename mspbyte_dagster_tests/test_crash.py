"""A killed `mspbyte run`: no half tenant, no lease left blocking, no run or ledger row `running` forever."""

import os
import signal
import socket
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta

import pytest
from dagster import DagsterInstance, DagsterRunStatus
from sqlalchemy import func, insert, select

from mspbyte_dagster.lib.store.db import engine_for, reading
from mspbyte_dagster.lib.store.lease import LeaseUnavailable, tenant_lease
from mspbyte_dagster.lib.store.schema import alerts, pipeline_ledger, tenant_leases
from mspbyte_dagster.lib.store.tenants import upsert_tenant
from mspbyte_dagster_tests.snapshots import minimal_files, mspbyte, write_folder
from mspbyte_dev.synthetic import write_snapshots

MSPBYTE = os.path.join(os.path.dirname(sys.executable), "mspbyte")
ALERT_KEY = (alerts.c.tenant, alerts.c.alert_type, alerts.c.entity_id, alerts.c.status)


def dead_pid() -> int:
    done = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    return int(done.stdout)


def test_a_lease_whose_holder_died_on_this_host_is_taken_over_at_once(sqlite_url):
    engine = engine_for(sqlite_url)
    with engine.begin() as conn:
        upsert_tenant(conn, "contoso", "Contoso", None)
    now = datetime.now(UTC)
    for holder, free in (
        (f"{socket.gethostname()}:{os.getpid()}:alive", False),
        (f"{socket.gethostname()}:{dead_pid()}:x", True),
    ):
        with engine.begin() as conn:
            conn.execute(tenant_leases.delete())
            conn.execute(
                insert(tenant_leases).values(
                    tenant="contoso", holder=holder, acquired_at=now, expires_at=now + timedelta(hours=1)
                )
            )
        if free:
            with tenant_lease(engine, "contoso", 1.0, timedelta(minutes=1)):
                pass
        else:
            with pytest.raises(LeaseUnavailable), tenant_lease(engine, "contoso", 0.5, timedelta(minutes=1)):
                pass


@pytest.mark.slow
def test_sigkill_mid_pass_then_the_next_run_closes_the_orphans_and_matches_an_uninterrupted_run(
    app_env, tmp_path, monkeypatch
):
    folders = write_snapshots(tmp_path / "synth", tenants=3, users=3000, seed=11)
    assert mspbyte("tenants", "import", *map(str, folders))[0] == 0
    engine = engine_for(app_env["DATABASE_URL"])
    for delay in (0.9, 0.4, 0.0):  # kill points along the passes; the last one surely mid-pass
        with engine.connect() as conn:
            before = conn.execute(select(func.max(pipeline_ledger.c.id))).scalar() or 0
        victim = subprocess.Popen(
            [MSPBYTE, "run", "--all"], env=dict(os.environ), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:  # once one of this victim's passes is under way
            with reading(engine).connect() as conn:  # a reader: never holds the write lock the victim needs
                started = select(pipeline_ledger.c.id).where(
                    pipeline_ledger.c.status == "running", pipeline_ledger.c.id > before
                )
                if conn.execute(started).first():
                    break
            time.sleep(0.05)
        time.sleep(delay)
        victim.send_signal(signal.SIGKILL)
        victim.wait()
    with engine.connect() as conn:
        running = (
            conn.execute(select(pipeline_ledger.c.tenant).where(pipeline_ledger.c.status == "running")).scalars().all()
        )
    assert running, "no pass was under way when the last run was killed"

    code, out, err = mspbyte("run", "--all")  # no lease blocks, no wait for JOB_TIMEOUT_MS
    assert code == 0, err
    assert "marked failed" in err
    with engine.connect() as conn:
        rows = conn.execute(select(pipeline_ledger.c.tenant, pipeline_ledger.c.status, pipeline_ledger.c.reason)).all()
    assert not [row for row in rows if row.status == "running"]
    assert any(row.status == "failed" and "died before it ended" in row.reason for row in rows)
    runs = DagsterInstance.get().get_runs()
    assert {run.status for run in runs} == {DagsterRunStatus.FAILURE, DagsterRunStatus.SUCCESS}

    with engine.connect() as conn:
        after_crash = sorted(conn.execute(select(*ALERT_KEY)).all())
    fresh = f"sqlite:///{tmp_path / 'fresh' / 'app.db'}"
    monkeypatch.setenv("DATABASE_URL", fresh)
    assert mspbyte("db", "upgrade")[0] == 0
    assert mspbyte("tenants", "import", *map(str, folders))[0] == 0
    assert mspbyte("run", "--all")[0] == 0
    with engine_for(fresh).connect() as conn:
        uninterrupted = sorted(conn.execute(select(*ALERT_KEY)).all())
    assert after_crash == uninterrupted != []


@pytest.mark.slow
def test_a_tenant_skipped_because_another_pass_holds_it_makes_run_exit_non_zero(app_env, tmp_path):
    assert mspbyte("tenants", "import", str(write_folder(tmp_path / "c", minimal_files())))[0] == 0
    engine = engine_for(app_env["DATABASE_URL"])
    with tenant_lease(engine, "contoso", 1.0, timedelta(minutes=10)):
        code, _, err = mspbyte("run", "--tenant", "contoso")
    assert code == 1 and "contoso (skipped)" in err
