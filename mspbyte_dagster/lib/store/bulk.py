"""Bulk inserts: PostgreSQL COPY, SQLite executemany. One statement whatever the row count."""

from __future__ import annotations

import time

import orjson
from sqlalchemy import JSON, Connection, Table, insert

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
