"""The production stack end to end: `mspbyte prod up` with two Celery workers; sync events on NATS become
runs that the daemon launches and the workers execute; a run past JOB_TIMEOUT_MS, a pool child killed
mid-pass and a tenant whose lease is held each end as promised, and the tenant's next run succeeds."""

from __future__ import annotations

import itertools
import json
import os
import signal
import threading
import uuid
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select, text

from mspbyte_dagster.defs.partitions import TRIGGER_TAG
from mspbyte_dagster.defs.run_outcomes import REQUESTED_AGAIN_TAG
from mspbyte_dagster.lib.store.lease import advisory_key
from mspbyte_dagster.lib.store.schema import alerts, pipeline_ledger
from mspbyte_dagster_tests.services import RUN_ID
from mspbyte_dev.stack import FINISHED, scratch_stack, wait_for
from mspbyte_dev.synthetic import write_snapshots

pytestmark = [pytest.mark.services, pytest.mark.slow]

JOB_TIMEOUT_SECONDS = 30
TENANTS = [f"synth-11-00{n}" for n in range(6)]
FINE, STUCK, KILLED, HELD, TWICE = TENANTS[0], TENANTS[1], TENANTS[2], TENANTS[3], TENANTS[4]


@pytest.fixture
def stack(tmp_path, postgres_admin_url, redis_url, nats_url):
    with scratch_stack(
        tmp_path,
        postgres_admin_url,
        redis_url,
        nats_url,
        f"e2e-{RUN_ID}-{uuid.uuid4().hex[:6]}",
        JOB_TIMEOUT_MS=str(JOB_TIMEOUT_SECONDS * 1000),
        MAX_DEBOUNCE_WINDOW_MS="1000",
        MAX_CONCURRENT_JOBS="4",
    ) as stack:
        stack.mspbyte("db", "upgrade")
        write_snapshots(tmp_path / "synth", tenants=len(TENANTS), users=20, seed=11)
        stack.mspbyte("tenants", "import", *sorted(str(p) for p in (tmp_path / "synth").iterdir()))
        yield stack


def passes(stack, tenant: str) -> list:
    with stack.app().connect() as conn:
        return conn.execute(
            select(pipeline_ledger).where(pipeline_ledger.c.tenant == tenant).order_by(pipeline_ledger.c.id)
        ).all()


def open_alerts(stack, tenant: str) -> set:
    with stack.app().connect() as conn:
        return set(
            conn.execute(
                select(alerts.c.alert_type, alerts.c.entity_id, alerts.c.status, alerts.c.updated_at).where(
                    alerts.c.tenant == tenant
                )
            ).all()
        )


def finished(stack, run_ids: list[str]) -> dict[str, str] | None:
    """The runs' statuses through Dagster's GraphQL API, once every one has ended."""
    statuses = stack.run_statuses(run_ids)
    return statuses if all(status in FINISHED for status in statuses.values()) else None


def publish(stack, *tenants: str) -> None:
    for tenant in tenants:
        stack.mspbyte("events", "publish", "--tenant", tenant, "--data-source", "m365")


def newest_pass(stack, tenant: str, after: int, status: str | None = None):
    """The tenant's newest pass after ledger row `after` (of that status), or None."""
    found = [row for row in passes(stack, tenant) if row.id > after and (status is None or row.status == status)]
    return found[-1] if found else None


@contextmanager
def data_source_locked(stack, tenant: str):
    """A pass of this tenant blocks on its first write while the block runs (a stuck database)."""
    with stack.app().connect() as conn:
        conn.execute(text("SELECT 1 FROM data_sources WHERE tenant = :t FOR UPDATE"), {"t": tenant})
        yield
        conn.rollback()


@contextmanager
def lease_held(stack, tenant: str):
    with stack.app().connect() as conn:
        conn.execute(text("SELECT pg_advisory_lock(:key)"), {"key": advisory_key(tenant)})
        conn.commit()
        yield
        conn.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": advisory_key(tenant)})
        conn.commit()


def running(pid: int) -> bool:
    """A process that runs (a zombie waits only for its parent to read its status)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def run_tag(stack, run_id: str, key: str) -> str | None:
    with stack.dagster().connect() as conn:
        return conn.execute(
            text("SELECT value FROM run_tags WHERE run_id = :run AND key = :key"), {"run": run_id, "key": key}
        ).scalar()


def lease_span(row) -> tuple[datetime, datetime]:
    lease = row.details["lease"]
    return datetime.fromisoformat(lease["acquired_at"]), datetime.fromisoformat(lease["released_at"])


def jobs_served(stack) -> set[str]:
    """The jobs the stack's webserver offers, as a client submitting a run asks for them."""
    query = "{ repositoriesOrError { ... on RepositoryConnection { nodes { jobs { name } } } } }"
    answer = httpx.post(f"http://{stack.ports.host}:{stack.ports.webserver}/graphql", json={"query": query})
    return {job["name"] for repo in answer.json()["data"]["repositoriesOrError"]["nodes"] for job in repo["jobs"]}


def test_sync_events_run_on_celery_workers_and_failures_end_as_promised(stack):
    stack.up(workers=2)
    # `prod up` returns once the webserver serves the jobs: it answers before it has loaded them, and a run
    # submitted then found no job (`bench fleet` failed so in CI)
    assert "tenant_pipeline" in jobs_served(stack)
    status = stack.mspbyte("prod", "status", "--json")
    assert status.returncode == 0
    processes = json.loads(status.stdout)["processes"]
    workers = {process["pid"] for process in processes if process["name"].startswith("worker-")}
    assert len(workers) == 2
    stack.mspbyte("run", "--all")  # every tenant's first pass, in this process: the state failures must keep
    mark = {tenant: passes(stack, tenant)[-1].id for tenant in TENANTS}
    before = {tenant: open_alerts(stack, tenant) for tenant in (STUCK, KILLED)}
    assert all(before.values())

    # Sync events for three tenants: one goes through; one's database stays locked past JOB_TIMEOUT_MS;
    # one's pool child is killed mid-pass.
    with data_source_locked(stack, STUCK), data_source_locked(stack, KILLED):
        publish(stack, FINE, STUCK, KILLED)
        victim = wait_for(lambda: newest_pass(stack, KILLED, mark[KILLED], "running"), 120, "the killed pass to start")
        child = int(victim.details["process"].split(":")[1])
        assert os.getpgid(child) in workers  # a pool child of a worker this test started, nothing else
        os.kill(child, signal.SIGKILL)
        closed = {
            tenant: wait_for(lambda t=tenant: newest_pass(stack, t, mark[t], "failed"), 150, f"{tenant}'s pass closed")
            for tenant in (KILLED, STUCK)
        }
    done = wait_for(lambda: newest_pass(stack, FINE, mark[FINE], "succeeded"), 60, "the fine tenant's sync pass")
    runs = {FINE: done.run_id, STUCK: closed[STUCK].run_id, KILLED: closed[KILLED].run_id}
    ended = wait_for(lambda: finished(stack, list(runs.values())), 60, "the three runs to end")
    assert ended == {runs[FINE]: "SUCCESS", runs[STUCK]: "FAILURE", runs[KILLED]: "FAILURE"}
    assert f"Exceeded maximum runtime of {JOB_TIMEOUT_SECONDS} seconds" in closed[STUCK].reason
    assert runs[KILLED] in closed[KILLED].reason and "rolled back" in closed[KILLED].reason
    assert {tenant: open_alerts(stack, tenant) for tenant in (STUCK, KILLED)} == before  # as before the pass
    with stack.app().connect() as conn:
        assert conn.execute(select(func.count()).where(pipeline_ledger.c.status == "running")).scalar() == 0

    # Their next sync passes succeed; a sync pass that finds its tenant's lease held is requested again.
    mark = {tenant: passes(stack, tenant)[-1].id for tenant in TENANTS}
    with lease_held(stack, HELD):
        publish(stack, STUCK, KILLED, HELD)
        skipped = wait_for(lambda: newest_pass(stack, HELD, mark[HELD], "skipped"), 120, "the held tenant skipped")
    for tenant in (STUCK, KILLED, HELD):
        wait_for(lambda t=tenant: newest_pass(stack, t, mark[t], "succeeded"), 120, f"{tenant}'s next pass")
    again = newest_pass(stack, HELD, skipped.id, "succeeded")
    assert run_tag(stack, again.run_id, REQUESTED_AGAIN_TAG) == str(skipped.id)

    # Two triggers for one tenant at once (a sync event, and `mspbyte run` in a loop): passes never overlap.
    mark = passes(stack, TWICE)[-1].id
    publish(stack, TWICE)
    stop = threading.Event()

    def cli_passes():
        while not stop.is_set():
            stack.mspbyte("run", "--tenant", TWICE, check=False)

    looping = threading.Thread(target=cli_passes)
    looping.start()
    try:
        wait_for(
            lambda: any(run_tag(stack, row.run_id, TRIGGER_TAG) == "sync_event" for row in passes(stack, TWICE)
                        if row.id > mark and row.status == "succeeded"),
            120, "the sync pass of the tenant triggered twice",
        )  # fmt: skip
    finally:
        stop.set()
        looping.join()
    spans = sorted(lease_span(row) for row in passes(stack, TWICE) if row.id > mark and row.status == "succeeded")
    assert len(spans) >= 2 and all(one[1] <= other[0] for one, other in itertools.pairwise(spans))

    stack.down()
    pids = [process["pid"] for process in processes]
    assert wait_for(lambda: not any(map(running, pids)), 10, "every process of the stack to end", every=0.2)
