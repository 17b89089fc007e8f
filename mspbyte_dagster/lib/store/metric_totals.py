"""What the Prometheus counters add up: the ledger and alert_events, plus durable totals of the rows that
retention and offboarding delete, so a counter never goes down.

Per source table the invariant is: `metric_totals` = the figures of every row with id <= the source's
mark (deleted since or not) + the figures of every deleted row above the mark. A reader adds the live
rows above the mark (`current_figures`). `fold` moves the mark up to the rows started at least
`settle_after` ago: by then a pass has ended (JOB_TIMEOUT_MS is far shorter) and every lower id has
committed; a pass still `running` then counts as abandoned, as it always did. Only rows at or below the
mark are pruned; offboarding adds the figures of the rows it deletes above the mark (`retire`).
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Column, Connection, Numeric, Table, case, cast, func, insert, select, true, update

from mspbyte_dagster.lib.model import STAGES
from mspbyte_dagster.lib.store.schema import alert_events, metric_marks, metric_totals, pipeline_ledger

RUNNING = "running"
# Pass durations in seconds, from a small tenant's (docs/benchmarks.md) to JOB_TIMEOUT_MS's default
# 600 s. Steps of about x2 to x2.5 keep histogram_quantile within a factor of two anywhere in that
# range, with 12 buckets per status.
DURATION_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0)
SETTLE_AFTER = timedelta(days=1)
# A pass folds only when the oldest unfolded row is this much older than SETTLE_AFTER: about one fold an hour.
FOLD_EVERY = timedelta(hours=1)

Figures = Counter  # (figure name, *labels) -> value; sums over rows add up with +


def _json_number(dialect: str, value, key: str):
    """A number field of a JSON object column: the one place SQLite and PostgreSQL differ."""
    if dialect == "postgresql":
        return cast(value.op("->>")(key), Numeric)
    return func.json_extract(value, f"$.{key}")


def ledger_figures(conn: Connection, *where) -> Figures:
    """Ended passes among the ledger rows `where` selects: counts, durations, queries, and per stage."""
    c = pipeline_ledger.c
    ended = [c.status != RUNNING, *where]
    buckets = [func.sum(case((c.duration_ms <= round(le * 1000), 1), else_=0)) for le in DURATION_BUCKETS]
    per_status = (
        select(c.status, func.count(), func.sum(c.duration_ms), func.sum(c.queries), func.sum(c.slow_queries), *buckets)
        .where(*ended)
        .group_by(c.status)
    )
    figures = Figures()
    for status, passes, duration_ms, queries, slow, *in_buckets in conn.execute(per_status):
        figures["passes", status] += passes
        figures["duration_ms", status] += float(duration_ms or 0)
        figures["queries"] += int(queries or 0)
        figures["slow_queries"] += int(slow or 0)
        for le, count in zip(DURATION_BUCKETS, in_buckets, strict=True):
            figures["bucket", status, le] += int(count or 0)

    dialect = conn.dialect.name
    stage = func.json_each(c.stages).table_valued("key", "value")
    per_stage = (
        select(
            stage.c.key,
            func.count(),
            func.sum(_json_number(dialect, stage.c.value, "milliseconds")),
            func.sum(_json_number(dialect, stage.c.value, "queries")),
        )
        .select_from(pipeline_ledger.join(stage, true()))
        .where(*ended)
        .group_by(stage.c.key)
    )
    for name, runs, milliseconds, queries in conn.execute(per_stage):
        if name in STAGES:  # the comparison report sits in the same JSON and is no stage
            figures["stage_runs", name] += runs
            figures["stage_ms", name] += float(milliseconds or 0)
            figures["stage_queries", name] += int(queries or 0)
    return figures


def alert_event_figures(conn: Connection, *where) -> Figures:
    """The alert events `where` selects, by action."""
    query = select(alert_events.c.action, func.count()).where(*where).group_by(alert_events.c.action)
    return Figures({("alerts", action): count for action, count in conn.execute(query)})


@dataclass(frozen=True)
class Source:
    table: Table
    stamp: Column  # when a row was written: what `fold` settles by
    aggregate: Callable[..., Figures]


SOURCES = {
    "ledger": Source(pipeline_ledger, pipeline_ledger.c.started_at, ledger_figures),
    "alert_events": Source(alert_events, alert_events.c.at, alert_event_figures),
}


def _key(figure: tuple | str) -> str:
    return json.dumps(figure if isinstance(figure, str) else list(figure))


def _figure(key: str) -> tuple | str:
    value = json.loads(key)
    return value if isinstance(value, str) else tuple(value)


def _add(conn: Connection, source: str, figures: Figures) -> None:
    kept = {
        row.figure: row.value for row in conn.execute(select(metric_totals).where(metric_totals.c.source == source))
    }
    for figure, value in figures.items():
        if not value:
            continue
        key = _key(figure)
        if key in kept:
            conn.execute(
                update(metric_totals)
                .where(metric_totals.c.source == source, metric_totals.c.figure == key)
                .values(value=metric_totals.c.value + value)
            )
        else:
            conn.execute(insert(metric_totals).values(source=source, figure=key, value=value))


def _locked_mark(conn: Connection, source: str) -> int:
    """The source's mark, locked for a fold or a retire (0, and a row to lock, before anything was folded)."""
    mark = conn.execute(select(metric_marks.c.mark).where(metric_marks.c.source == source).with_for_update()).scalar()
    if mark is None:
        conn.execute(insert(metric_marks).values(source=source, mark=0))
    return mark or 0


def current_figures(conn: Connection) -> dict[str, Figures]:
    """Per source, what the counters stand at: the durable totals plus the live rows above the mark.
    Read it in one consistent snapshot (a prune between the two reads would count rows twice or never)."""
    figures = {name: Figures() for name in SOURCES}
    for source, figure, value in conn.execute(select(metric_totals)):
        figures[source][_figure(figure)] += value
    kept = marks(conn)
    for name, source in SOURCES.items():
        figures[name] += source.aggregate(conn, source.table.c.id > kept[name])
    return figures


def fold_due(conn: Connection, now: datetime, kept: dict[str, int], settle_after: timedelta = SETTLE_AFTER) -> bool:
    """Whether a source has unfolded rows (above the `kept` marks) old enough, and old enough by FOLD_EVERY,
    to fold.

    Asked after every pass, so it reads one row per source: the first above the mark, by primary key.
    Rows are written in time order (give or take concurrent passes' seconds), so that row is the oldest;
    a min() over every unfolded row grew with the fleet (16 ms a pass at 1,000 tenants)."""
    for name, source in SOURCES.items():
        oldest = conn.execute(
            select(source.stamp).where(source.table.c.id > kept[name]).order_by(source.table.c.id).limit(1)
        ).scalar()
        if oldest is not None and oldest <= now - settle_after - FOLD_EVERY:
            return True
    return False


def fold(conn: Connection, now: datetime, settle_after: timedelta = SETTLE_AFTER) -> dict[str, int]:
    """Move each source's mark up to its rows started `settle_after` ago, their figures into the totals.
    The mark row is locked, so two processes folding at once fold each row once."""
    marks = {}
    for name, source in SOURCES.items():
        mark = _locked_mark(conn, name)
        upto = conn.execute(
            select(func.max(source.table.c.id)).where(source.table.c.id > mark, source.stamp <= now - settle_after)
        ).scalar()
        if upto is not None:
            _add(conn, name, source.aggregate(conn, source.table.c.id > mark, source.table.c.id <= upto))
            conn.execute(update(metric_marks).where(metric_marks.c.source == name).values(mark=upto))
            mark = upto
        marks[name] = mark
    return marks


def retire(conn: Connection, name: str, *where) -> None:
    """Before rows above the mark are deleted (offboarding): their figures go into the totals."""
    source = SOURCES[name]
    _add(conn, name, source.aggregate(conn, source.table.c.id > _locked_mark(conn, name), *where))


def marks(conn: Connection) -> dict[str, int]:
    kept = dict(conn.execute(select(metric_marks.c.source, metric_marks.c.mark)).all())
    return {name: kept.get(name, 0) for name in SOURCES}


def latest_durations(conn: Connection) -> dict[str, int]:
    """Each tenant's latest pass that ran (succeeded or failed), in milliseconds, among the rows not yet
    folded (about the last day): what `mspbyte_pipeline_duration_ms{tenant}` shows."""
    ledger = pipeline_ledger.c
    latest = (
        select(func.max(ledger.id))
        .where(ledger.id > marks(conn)["ledger"], ledger.status.in_(("succeeded", "failed")))
        .group_by(ledger.tenant)
    )
    return dict(conn.execute(select(ledger.tenant, ledger.duration_ms).where(ledger.id.in_(latest))).all())
