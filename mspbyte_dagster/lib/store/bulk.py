"""Bulk reads and inserts. Inserts: PostgreSQL COPY, SQLite executemany, one statement whatever the row
count. Reads: rows fetched in batches, not one at a time."""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator, Sized
from itertools import chain
from operator import itemgetter

import orjson
from sqlalchemy import JSON, Connection, CursorResult, Table, insert

from mspbyte_dagster.lib.store.query_stats import record_statement
from mspbyte_dagster.lib.store.schema import UTCDateTime


def _json_text(value) -> str:
    return orjson.dumps(value).decode()


def _time_texts(column: UTCDateTime, dialect):
    """A time column's COPY text, each distinct value formatted once: a bulk insert's rows mostly share
    the pass's `now`, and psycopg's datetime formatting was a third of a 73,000-edge COPY."""
    texts: dict = {}

    def text_of(value) -> str:
        if value not in texts:
            texts[value] = column.process_bind_param(value, dialect).isoformat()
        return texts[value]

    return text_of


def bulk_insert(conn: Connection, table: Table, rows: Iterable[dict]) -> None:
    """Rows as dicts of the same keys; a generator's rows are written as they come, none kept."""
    rows = iter(rows)
    first = next(rows, None)
    if first is None:
        return
    columns = list(first)
    values = itemgetter(*columns) if len(columns) > 1 else lambda row: (row[columns[0]],)
    bulk_insert_values(conn, table, columns, map(values, chain([first], rows)))


def bulk_insert_values(conn: Connection, table: Table, columns: list[str], rows: Iterable[tuple]) -> None:
    """Rows as tuples in the order of `columns`: a large insert skips building a dict per row (the rows
    may come one at a time: none is held longer than its COPY line takes)."""
    if isinstance(rows, Sized) and not rows:
        return
    if conn.dialect.name != "postgresql":
        conn.execute(insert(table), [dict(zip(columns, row, strict=True)) for row in rows])
        return
    converted = []  # (position, what turns a value into its COPY text), for the columns psycopg would be slow on
    for i, name in enumerate(columns):
        kind = table.c[name].type
        if isinstance(kind, JSON):
            converted.append((i, _json_text))
        elif isinstance(kind, UTCDateTime):
            converted.append((i, _time_texts(kind, conn.dialect)))
    started = time.perf_counter()
    cursor = conn.connection.dbapi_connection.cursor()
    try:
        with cursor.copy(f"COPY {table.name} ({', '.join(columns)}) FROM STDIN") as copy:
            for row in rows:
                if converted:
                    row = list(row)
                    for i, text_of in converted:
                        if row[i] is not None:
                            row[i] = text_of(row[i])
                copy.write_row(row)
    finally:
        cursor.close()
    record_statement(f"COPY {table.name}", time.perf_counter() - started)


def batched_rows(result: CursorResult, size: int = 10_000) -> Iterator[tuple]:
    """A large result's rows as plain tuples, fetched `size` at a time: psycopg's row-at-a-time fetch cost
    more than the rows' decoding, and a whole fetch holds every row object at once (370,000 edges at 50,000
    users). On PostgreSQL they come straight from psycopg, which decodes every column the callers read (ids,
    text, JSON) as SQLAlchemy would: SQLAlchemy's row objects cost 0.3 s of a 73,000-edge read."""
    if result.dialect.name != "postgresql":
        for batch in result.partitions(size):
            yield from map(tuple, batch)
        return
    cursor = result.cursor
    try:
        while batch := cursor.fetchmany(size):
            yield from batch
    finally:
        result.close()
