"""Counting and timing every statement, attributed to the part of the code that issued it.

SQLAlchemy engine events feed whichever `QueryStats` is active in this context,
so a tenant pass measures exactly its own statements, even with other work in
the same process.
"""

from __future__ import annotations

import logging
import re
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field

from sqlalchemy import Engine, event

# The pass's loggers: `mspbyte.<module>` (mspbyte.DataContextLoader, mspbyte.AlertManager, ...) and
# `mspbyte.pipeline`; the instance config hands `mspbyte` to Dagster's run logs (python_logs).
PIPELINE_LOGGER = "mspbyte"

_active: ContextVar[QueryStats | None] = ContextVar("query_stats", default=None)
_module: ContextVar[str] = ContextVar("query_module", default="other")
_LITERALS = re.compile(r"'(?:[^']|'')*'|\b\d+\b")
_SPACE = re.compile(r"\s+")


def fingerprint(statement: str) -> str:
    """The statement's shape: literals and numbers replaced, whitespace folded (no values)."""
    return _SPACE.sub(" ", _LITERALS.sub("?", statement)).strip()[:300]


@dataclass
class SlowQuery:
    module: str
    milliseconds: float
    statement: str


@dataclass
class QueryStats:
    """Statements of one unit of work: per module counts and times, and the slow ones."""

    slow_threshold_ms: float = 100.0
    timed: bool = True
    tenant: str = ""
    counts: Counter = field(default_factory=Counter)
    milliseconds: Counter = field(default_factory=Counter)
    slow: list[SlowQuery] = field(default_factory=list)

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def as_json(self) -> dict:
        return {
            "queries": self.total,
            "slow_queries": len(self.slow),
            "by_module": dict(self.counts),
            "milliseconds_by_module": {k: round(v, 1) for k, v in self.milliseconds.items()},
        }


@contextmanager
def measuring(stats: QueryStats) -> Iterator[QueryStats]:
    token = _active.set(stats)
    try:
        yield stats
    finally:
        _active.reset(token)


@contextmanager
def module(name: str) -> Iterator[None]:
    """Attribute the statements issued inside to `name` (DataContextLoader, AlertManager, ...)."""
    token = _module.set(name)
    try:
        yield
    finally:
        _module.reset(token)


def _before(conn, _cursor, _statement, _parameters, context, _executemany) -> None:
    if _active.get() is not None:
        conn.info.setdefault("query_started", []).append(time.perf_counter())


def _after(conn, _cursor, statement, _parameters, context, _executemany) -> None:
    if _active.get() is not None:
        record_statement(statement, time.perf_counter() - conn.info["query_started"].pop())


def record_statement(statement: str, seconds: float) -> None:
    """Count one statement (also those sent past SQLAlchemy, such as COPY) for the active stats."""
    stats = _active.get()
    if stats is None:
        return
    name = _module.get()
    stats.counts[name] += 1
    if not stats.timed:
        return
    elapsed = seconds * 1000
    stats.milliseconds[name] += elapsed
    if elapsed > stats.slow_threshold_ms:
        shape = fingerprint(statement)
        stats.slow.append(SlowQuery(name, round(elapsed, 1), shape))
        logging.getLogger(f"{PIPELINE_LOGGER}.{name}").warning(
            "Slow query detected: tenant=%s module=%s duration_ms=%.1f statement=%s", stats.tenant, name, elapsed, shape
        )


def instrument(engine: Engine) -> Engine:
    """Attach the counters to an engine, once."""
    if not event.contains(engine, "before_cursor_execute", _before):
        event.listen(engine, "before_cursor_execute", _before)
        event.listen(engine, "after_cursor_execute", _after)
    return engine
