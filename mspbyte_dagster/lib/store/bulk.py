"""Bulk inserts: PostgreSQL COPY, SQLite executemany. One statement whatever the row count."""

from __future__ import annotations

import json
import time

from sqlalchemy import JSON, Connection, Table, insert

from mspbyte_dagster.lib.store.query_stats import record_statement


def bulk_insert(conn: Connection, table: Table, rows: list[dict]) -> None:
    if not rows:
        return
    if conn.dialect.name != "postgresql":
        conn.execute(insert(table), rows)
        return
    columns = list(rows[0])
    as_json = {name for name in columns if isinstance(table.c[name].type, JSON)}
    started = time.perf_counter()
    cursor = conn.connection.dbapi_connection.cursor()
    try:
        with cursor.copy(f"COPY {table.name} ({', '.join(columns)}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row([json.dumps(row[n]) if n in as_json and row[n] is not None else row[n] for n in columns])
    finally:
        cursor.close()
    record_statement(f"COPY {table.name}", time.perf_counter() - started)
