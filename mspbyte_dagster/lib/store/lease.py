"""One pass per tenant at a time, across processes and machines.

PostgreSQL: a session advisory lock, released by the server if the process
dies. SQLite: a lease row naming its holder's host and pid, with an expiry: a
holder that died on this host is taken over at once, one elsewhere when the
lease expires.
"""

from __future__ import annotations

import hashlib
import os
import socket
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine, delete, insert, select, text
from sqlalchemy.exc import IntegrityError

from mspbyte_dagster.lib.store.schema import tenant_leases

POLL_SECONDS = 0.2


class LeaseUnavailable(RuntimeError):
    def __init__(self, tenant: str, waited: float):
        super().__init__(f"tenant {tenant!r} is being processed by another pass (waited {waited:.0f}s); skipped")
        self.tenant = tenant


def process_name() -> str:
    """This process, as leases and ledger rows record it: host and pid."""
    return f"{socket.gethostname()}:{os.getpid()}"


def holder_name() -> str:
    return f"{process_name()}:{uuid.uuid4().hex[:8]}"


def is_dead_here(process: str | None) -> bool:
    """A process recorded as `host:pid[:...]` that was on this host and has gone (a killed pass)."""
    host, _, rest = (process or "").partition(":")
    pid = rest.partition(":")[0]
    if host != socket.gethostname() or not pid.isdigit():
        return False  # another machine's: only its expiry tells
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def advisory_key(tenant: str) -> int:
    """A signed 64-bit lock id per tenant (pg advisory locks take bigint)."""
    return int.from_bytes(hashlib.sha256(f"mspbyte-tenant:{tenant}".encode()).digest()[:8], "big", signed=True)


def _poll(try_once, tenant: str, wait_seconds: float) -> None:
    deadline = time.monotonic() + wait_seconds
    while not try_once():
        if time.monotonic() >= deadline:
            raise LeaseUnavailable(tenant, wait_seconds)
        time.sleep(POLL_SECONDS)


@contextmanager
def _advisory_lease(engine: Engine, tenant: str, wait_seconds: float) -> Iterator[None]:
    key = advisory_key(tenant)
    with engine.connect() as conn:

        def try_once() -> bool:
            acquired = conn.execute(text("SELECT pg_try_advisory_lock(:key)"), {"key": key}).scalar()
            conn.commit()
            return bool(acquired)

        _poll(try_once, tenant, wait_seconds)
        try:
            yield
        finally:
            conn.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": key})
            conn.commit()


@contextmanager
def _row_lease(engine: Engine, tenant: str, wait_seconds: float, ttl: timedelta) -> Iterator[None]:
    holder = holder_name()

    def try_once() -> bool:
        now = datetime.now(UTC)
        try:
            with engine.begin() as conn:
                held_by = conn.execute(select(tenant_leases.c.holder).where(tenant_leases.c.tenant == tenant)).scalar()
                expired_or_dead = tenant_leases.c.expires_at < now
                if is_dead_here(held_by):  # taken over at once, not after JOB_TIMEOUT_MS
                    expired_or_dead = tenant_leases.c.holder == held_by
                conn.execute(delete(tenant_leases).where(tenant_leases.c.tenant == tenant, expired_or_dead))
                conn.execute(
                    insert(tenant_leases).values(tenant=tenant, holder=holder, acquired_at=now, expires_at=now + ttl)
                )
            return True
        except IntegrityError:
            return False

    _poll(try_once, tenant, wait_seconds)
    try:
        yield
    finally:
        with engine.begin() as conn:
            conn.execute(
                delete(tenant_leases).where(tenant_leases.c.tenant == tenant, tenant_leases.c.holder == holder)
            )


@contextmanager
def tenant_lease(engine: Engine, tenant: str, wait_seconds: float, ttl: timedelta) -> Iterator[None]:
    """Hold the tenant for the body; raises LeaseUnavailable after `wait_seconds`."""
    if engine.dialect.name == "postgresql":
        with _advisory_lease(engine, tenant, wait_seconds):
            yield
    else:
        with _row_lease(engine, tenant, wait_seconds, ttl):
            yield
