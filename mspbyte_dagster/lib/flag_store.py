"""Run-time flag changes, stored durably and seen by every process at its next read.

Redis when REDIS_URL is set, the app database otherwise. A store holds only
what an operator changed (global switch, rollout, tenant overrides); the
environment stays the default underneath until `flags reset`.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime

import redis
from sqlalchemy import Engine, delete, insert, select, update

from mspbyte_dagster.lib.errors import InputError
from mspbyte_dagster.lib.flags import FLAGS, FeatureFlagManager, FlagDefault, RuntimeFlag, check_flag
from mspbyte_dagster.lib.store.schema import flag_overrides, flag_runtime, flags_last_read
from mspbyte_dagster.lib.store.tenants import require_tenant

log = logging.getLogger(__name__)
REDIS_PREFIX = "mspbyte:flags"

Overrides = dict[tuple[str, str], bool]


class FlagStoreUnavailable(RuntimeError):
    """A change could not be stored: nothing was applied."""


def check_rollout(percent: int) -> int:
    if not isinstance(percent, int) or not 0 <= percent <= 100:
        raise InputError(f"rollout {percent!r} is outside 0..100")
    return percent


BOOLEANS = {"1": True, "0": False}
ROLLOUTS = {str(percent): percent for percent in range(101)}


class DatabaseFlagStore:
    """Flag changes in the app database (tables flag_runtime and flag_overrides)."""

    def __init__(self, engine: Engine):
        self.engine = engine

    def load(self) -> tuple[dict[str, RuntimeFlag], Overrides]:
        with self.engine.connect() as conn:
            runtime = {row.flag: RuntimeFlag(row.enabled, row.rollout) for row in conn.execute(select(flag_runtime))}
            overrides = {(row.flag, row.tenant): row.enabled for row in conn.execute(select(flag_overrides))}
        return runtime, overrides

    def _set_runtime(self, flag: str, **values) -> None:
        with self.engine.begin() as conn:
            now = datetime.now(UTC)
            if conn.execute(select(flag_runtime.c.flag).where(flag_runtime.c.flag == flag)).first():
                conn.execute(update(flag_runtime).where(flag_runtime.c.flag == flag).values(updated_at=now, **values))
            else:
                conn.execute(insert(flag_runtime).values(flag=flag, updated_at=now, **values))

    def set_enabled(self, flag: str, enabled: bool) -> None:
        self._set_runtime(check_flag(flag), enabled=enabled)

    def set_rollout(self, flag: str, percent: int) -> None:
        self._set_runtime(check_flag(flag), rollout=check_rollout(percent))

    def reset(self, flag: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(delete(flag_runtime).where(flag_runtime.c.flag == check_flag(flag)))

    def set_override(self, flag: str, tenant: str, enabled: bool | None) -> None:
        """A tenant's own value (None clears it)."""
        check_flag(flag)
        with self.engine.begin() as conn:
            require_tenant(conn, tenant)
            conn.execute(delete(flag_overrides).where(flag_overrides.c.tenant == tenant, flag_overrides.c.flag == flag))
            if enabled is not None:
                conn.execute(
                    insert(flag_overrides).values(
                        flag=flag, tenant=tenant, enabled=enabled, updated_at=datetime.now(UTC)
                    )
                )


class RedisFlagStore:
    """Flag changes in Redis: one hash for global values, one per flag for overrides; writes are atomic."""

    def __init__(self, url: str, engine: Engine | None = None, prefix: str = REDIS_PREFIX):
        self.client = redis.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=2, decode_responses=True)
        self.engine = engine  # to check tenant keys of overrides
        self.prefix = prefix

    def _runtime_key(self) -> str:
        return f"{self.prefix}:runtime"

    def _overrides_key(self, flag: str) -> str:
        return f"{self.prefix}:overrides:{flag}"

    def load(self) -> tuple[dict[str, RuntimeFlag], Overrides]:
        pipe = self.client.pipeline(transaction=True)
        pipe.hgetall(self._runtime_key())
        for flag in FLAGS:
            pipe.hgetall(self._overrides_key(flag))
        values, *per_flag = pipe.execute()
        runtime = {}
        for flag in FLAGS:
            enabled = self._stored(f"{self._runtime_key()} {flag}:enabled", values.get(f"{flag}:enabled"), BOOLEANS)
            rollout = self._stored(f"{self._runtime_key()} {flag}:rollout", values.get(f"{flag}:rollout"), ROLLOUTS)
            if enabled is not None or rollout is not None:
                runtime[flag] = RuntimeFlag(enabled, rollout)
        overrides = {}
        for flag, found in zip(FLAGS, per_flag, strict=True):
            for tenant, value in found.items():
                enabled = self._stored(f"{self._overrides_key(flag)} {tenant}", value, BOOLEANS)
                if enabled is not None:
                    overrides[flag, tenant] = enabled
        return runtime, overrides

    @staticmethod
    def _stored(where: str, value: str | None, allowed: dict):
        """A value this store wrote; anything else (written by hand, or corrupt) is ignored, named in a
        warning, so one bad key cannot fail every run."""
        if value is None:
            return None
        if value not in allowed:
            log.warning("flag store: ignoring %r at Redis key %s: not a value mspbyte writes", value[:40], where)
            return None
        return allowed[value]

    def keep_last_read(self, runtime: dict[str, RuntimeFlag], overrides: Overrides) -> None:
        """What was read, in the app database, for when Redis does not answer (written when it changed)."""
        if self.engine is None:
            return
        state = {
            "runtime": {flag: [value.enabled, value.rollout] for flag, value in sorted(runtime.items())},
            "overrides": sorted([flag, tenant, value] for (flag, tenant), value in overrides.items()),
        }
        with self.engine.begin() as conn:
            kept = conn.execute(select(flags_last_read.c.state).where(flags_last_read.c.prefix == self.prefix)).scalar()
            if kept == state:
                return
            conn.execute(delete(flags_last_read).where(flags_last_read.c.prefix == self.prefix))
            conn.execute(insert(flags_last_read).values(prefix=self.prefix, state=state, read_at=datetime.now(UTC)))

    def last_read(self) -> tuple[dict[str, RuntimeFlag], Overrides, str] | None:
        if self.engine is None:
            return None
        with self.engine.connect() as conn:
            row = conn.execute(select(flags_last_read).where(flags_last_read.c.prefix == self.prefix)).first()
        if row is None:
            return None
        runtime = {flag: RuntimeFlag(*value) for flag, value in row.state["runtime"].items()}
        overrides = {(flag, tenant): value for flag, tenant, value in row.state["overrides"]}
        return runtime, overrides, row.read_at.isoformat(timespec="seconds")

    def _write(self, action) -> None:
        try:
            pipe = self.client.pipeline(transaction=True)
            action(pipe)
            pipe.execute()
        except redis.RedisError as error:
            raise FlagStoreUnavailable(
                f"Redis at REDIS_URL refused the change ({type(error).__name__}); nothing was applied"
            ) from None

    def set_enabled(self, flag: str, enabled: bool) -> None:
        key = f"{check_flag(flag)}:enabled"
        self._write(lambda pipe: pipe.hset(self._runtime_key(), key, "1" if enabled else "0"))

    def set_rollout(self, flag: str, percent: int) -> None:
        key = f"{check_flag(flag)}:rollout"
        self._write(lambda pipe: pipe.hset(self._runtime_key(), key, str(check_rollout(percent))))

    def reset(self, flag: str) -> None:
        check_flag(flag)
        self._write(lambda pipe: pipe.hdel(self._runtime_key(), f"{flag}:enabled", f"{flag}:rollout"))

    def set_override(self, flag: str, tenant: str, enabled: bool | None) -> None:
        check_flag(flag)
        if self.engine is not None:
            with self.engine.connect() as conn:
                require_tenant(conn, tenant)
        if enabled is None:
            self._write(lambda pipe: pipe.hdel(self._overrides_key(flag), tenant))
        else:
            self._write(lambda pipe: pipe.hset(self._overrides_key(flag), tenant, "1" if enabled else "0"))


def flag_store(
    redis_url: str | None, engine: Engine, namespace: str | None = None
) -> DatabaseFlagStore | RedisFlagStore:
    """Redis when a URL is set (keys under the namespace, when there is one), else the app database."""
    if not redis_url:
        return DatabaseFlagStore(engine)
    return RedisFlagStore(redis_url, engine, f"{namespace}:{REDIS_PREFIX}" if namespace else REDIS_PREFIX)


def load_flags(store, defaults: dict[str, FlagDefault]) -> FeatureFlagManager:
    """Every flag read once: the environment, plus what the store holds. Redis down: the flags last
    read from it (kept in the app database), so an emergency `new_pipeline off` holds; the environment
    only if they were never read."""
    try:
        runtime, overrides = store.load()
    except redis.RedisError as error:
        last = store.last_read() if isinstance(store, RedisFlagStore) else None
        if last is None:
            log.warning(
                "flag store unreachable (%s): no flags read before, the environment's only", type(error).__name__
            )
            return FeatureFlagManager(defaults, fallback="environment (Redis unreachable, no flags read before)")
        runtime, overrides, read_at = last
        log.warning(
            "flag store unreachable (%s): using the flags last read from it at %s", type(error).__name__, read_at
        )
        return FeatureFlagManager(defaults, runtime, overrides, fallback=f"last read at {read_at} (Redis unreachable)")
    if isinstance(store, RedisFlagStore):
        store.keep_last_read(runtime, overrides)
    return FeatureFlagManager(defaults, runtime, overrides)
