"""A production stack (`mspbyte prod up`) of its own: scratch PostgreSQL databases, free ports, a
namespace of its own on shared Redis and NATS. The fleet benchmark and the end-to-end test drive it
as an operator would: through `mspbyte`, NATS and Dagster's GraphQL API."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url

from mspbyte_dagster.lib.events import EventStreams
from mspbyte_dagster.lib.production import PRODUCTION_INSTANCE, Ports

FINISHED = ("SUCCESS", "FAILURE", "CANCELED")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class ScratchStack:
    """One stack's variables and folder; its `mspbyte` runs with them (DAGSTER_HOME: the stack's)."""

    def __init__(self, folder: Path, variables: dict[str, str]):
        self.folder = folder
        inherited = {k: v for k, v in os.environ.items() if not k.startswith(("MSPBYTE_", "DAGSTER_", "CELERY_"))}
        self.env = inherited | variables | {"MSPBYTE_DATA_DIR": str(folder / "data")}
        self.ports = Ports("127.0.0.1", free_port(), free_port())
        self.home = folder / "data" / "prod" / "dagster_home"
        self.home.mkdir(parents=True)  # the production instance for the CLI before the stack's first start
        shutil.copyfile(PRODUCTION_INSTANCE, self.home / "dagster.yaml")

    def mspbyte(self, *args: str, check: bool = True, timeout: float = 3600) -> subprocess.CompletedProcess:
        command = [str(Path(sys.executable).parent / "mspbyte"), *args]
        env = self.env | {"DAGSTER_HOME": str(self.home)}
        done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=timeout, check=False)  # noqa: S603
        if check and done.returncode != 0:
            raise RuntimeError(f"mspbyte {' '.join(args)} exited {done.returncode}: {done.stderr[-2000:]}")
        return done

    def up(self, workers: int) -> None:
        self.mspbyte(
            "prod", "up", "--workers", str(workers), "--ui-port", str(self.ports.webserver),
            "--code-port", str(self.ports.code_server), timeout=300,
        )  # fmt: skip

    def down(self) -> None:
        self.mspbyte("prod", "down", check=False, timeout=120)

    def graphql(self):
        from dagster_graphql import DagsterGraphQLClient

        return DagsterGraphQLClient(self.ports.host, port_number=self.ports.webserver)

    def app(self) -> Engine:
        return create_engine(self.env["DATABASE_URL"])

    def dagster(self) -> Engine:
        return create_engine(self.env["DAGSTER_PG_URL"])

    def run_statuses(self, run_ids: list[str]) -> dict[str, str]:
        """Each run's status as Dagster's GraphQL API reports it."""
        client = self.graphql()
        return {run_id: client.get_run_status(run_id).value for run_id in run_ids}


def wait_for(found: Callable[[], object], seconds: float, what: str, every: float = 1.0):
    """The first truthy value of `found`, polled; fails naming `what` after `seconds`."""
    deadline = time.monotonic() + seconds
    while True:
        value = found()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"waited {seconds:.0f} s for {what}")
        time.sleep(every)


@contextmanager
def postgres_database(server_url: str, name: str, driver: str | None = None) -> Iterator[str]:
    """A new database on the server of `server_url` (its URL, with `driver` if named), dropped afterwards
    whoever still holds a connection to it."""
    server = make_url(server_url)
    admin = create_engine(server.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield server.set(drivername=driver or server.drivername, database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def delete_streams(nats_url: str, namespace: str) -> None:
    """A namespace's sync and dead-letter streams, and nothing else."""
    import nats

    streams = EventStreams(namespace)

    async def delete():
        client = await nats.connect(nats_url)
        try:
            for stream in (streams.sync_stream, streams.dlq_stream):
                with contextlib.suppress(nats.js.errors.NotFoundError):
                    await client.jetstream().delete_stream(stream)
        finally:
            await client.close()

    asyncio.run(delete())


def _delete_celery_keys(stack: ScratchStack, queue: str) -> None:
    """The broker keys of this stack's queue and of its runs' tasks, and no other."""
    import redis

    with stack.dagster().connect() as conn:
        tasks = conn.execute(text("SELECT value FROM run_tags WHERE key = 'dagster-celery/task_id'")).scalars().all()
    client = redis.Redis.from_url(stack.env["CELERY_BROKER_URL"])
    ours = [queue, f"_kombu.binding.{queue}", f"_kombu.binding_permanent.{queue}"]
    client.delete(*ours, *(f"celery-task-meta-{task}" for task in tasks))
    client.close()


@contextmanager
def scratch_stack(
    folder: Path, admin_url: str, redis_url: str, nats_url: str, namespace: str, **variables: str
) -> Iterator[ScratchStack]:
    """A stack on databases, a queue and streams of its own; all of them gone afterwards (a stack left
    up is stopped first)."""
    suffix = uuid.uuid4().hex[:8]
    with (
        postgres_database(admin_url, f"mspbyte_stack_{suffix}", "postgresql+psycopg") as app,
        postgres_database(admin_url, f"mspbyte_stack_{suffix}_dagster", "postgresql+psycopg2") as dagster,
    ):
        stack = ScratchStack(
            folder,
            {
                "DATABASE_URL": app,
                "DAGSTER_PG_URL": dagster,
                "CELERY_BROKER_URL": redis_url,
                "NATS_URL": nats_url,
                "MSPBYTE_NAMESPACE": namespace,
                "METRICS_PORT": str(free_port()),
            }
            | variables,
        )
        try:
            yield stack
        finally:
            stack.down()
            with contextlib.suppress(Exception):  # a stack that never started has no Dagster tables
                _delete_celery_keys(stack, f"{namespace}-mspbyte")
            delete_streams(nats_url, namespace)
