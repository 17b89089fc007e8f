"""Bulk reads and inserts. Inserts: PostgreSQL COPY, SQLite executemany, one statement whatever the row
count. Reads: rows fetched in batches, not one at a time."""

from __future__ import annotations

import time
from collections.abc import Iterator

import orjson
from sqlalchemy import JSON, Connection, CursorResult, Table, insert

from mspbyte_dagster.lib.store.query_stats import record_statement


def _copied(value, is_json: bool):
    return orjson.dumps(value).decode() if is_json and value is not None else value


def bulk_insert(conn: Connection, table: Table, rows: list[dict]) -> None:
    if not rows:
        return
    if conn.dialect.name != "postgresql":
        conn.execute(insert(table), rows)
        return
    columns = list(rows[0])
    as_json = [isinstance(table.c[name].type, JSON) for name in columns]
    started = time.perf_counter()
    cursor = conn.connection.dbapi_connection.cursor()
    try:
        with cursor.copy(f"COPY {table.name} ({', '.join(columns)}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row([_copied(row[name], is_json) for name, is_json in zip(columns, as_json, strict=True)])
    finally:
        cursor.close()
    record_statement(f"COPY {table.name}", time.perf_counter() - started)


def batched_rows(result: CursorResult, size: int = 10_000) -> Iterator:
    """A large result's rows, fetched `size` at a time: psycopg's row-at-a-time fetch cost more than the
    rows' decoding, and a whole fetch holds every row object at once (370,000 edges at 50,000 users)."""
    for batch in result.partitions(size):
        yield from batch
