"""Connecting to the app database and keeping its schema migrated."""

from __future__ import annotations

from functools import cache
from pathlib import Path

import orjson
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, UniqueConstraint, create_engine, event, inspect
from sqlalchemy.engine import make_url

from mspbyte_dagster.lib.store.query_stats import instrument
from mspbyte_dagster.lib.store.schema import metadata

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
SQLITE_BUSY_TIMEOUT_MS = 30_000


class DatabaseNotReadyError(RuntimeError):
    """The app database is missing or behind the code's migrations."""


def _sqlite_pragmas(dbapi_connection, _record) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def _sqlite_begin(conn) -> None:
    # BEGIN IMMEDIATE: a writer waits for the lock up front instead of failing
    # mid-transaction when two passes upgrade their read locks at once. A reader
    # (see `reading`) begins deferred, so it never waits behind a running pass.
    conn.exec_driver_sql("BEGIN" if conn.get_execution_options().get("read_only") else "BEGIN IMMEDIATE")


@cache
def engine_for(url: str) -> Engine:
    """One engine (and pool) per URL and process. JSON columns are parsed by orjson: a 10,000-user
    tenant's pass reads 50,000 JSON values, and the standard library took 0.6 s of it."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(
            url,
            connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000, "isolation_level": None},
            json_deserializer=orjson.loads,
        )
        event.listen(engine, "connect", _sqlite_pragmas)
        event.listen(engine, "begin", _sqlite_begin)
        return instrument(engine)
    return instrument(create_engine(url, pool_pre_ping=True, json_deserializer=orjson.loads))


def reading(engine: Engine) -> Engine:
    """The same engine for read-only work: on SQLite it does not take the write lock."""
    return engine.execution_options(read_only=True)


def _alembic_config(engine: Engine) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.attributes["engine"] = engine
    return config


def upgrade(engine: Engine, revision: str = "head") -> str:
    """Migrate the app database to the newest schema (or an older revision, for tests); returns the revision."""
    command.upgrade(_alembic_config(engine), revision)
    return current_revision(engine)


def downgrade(engine: Engine, revision: str) -> str:
    """Back to an older schema: each migration's way back is tested, so a bad release can be undone."""
    command.downgrade(_alembic_config(engine), revision)
    return current_revision(engine)


def head_revision() -> str:
    return ScriptDirectory(str(MIGRATIONS_DIR)).get_current_head()


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


@cache
def migrated_engine(url: str) -> Engine:
    """The engine of a database found at the code's schema, checked once per URL and process (a sensor
    tick or a run asks again and again; a refusal is not remembered, so an upgrade is seen)."""
    engine = engine_for(url)
    require_migrated(engine)
    return engine


def require_migrated(engine: Engine) -> None:
    """Refuse to work on a database whose schema is not the code's."""
    revision = current_revision(engine)
    if revision != head_revision():
        where = engine.url.render_as_string(hide_password=True)
        state = "has no schema" if revision is None else f"is at revision {revision}, not {head_revision()}"
        raise DatabaseNotReadyError(f"the app database {where} {state}: run `mspbyte db upgrade`")


def composite_indexes() -> dict[str, list[tuple[str, ...]]]:
    """Every multi-column index and unique constraint the schema declares, by table: the lookups the
    passes rely on (a tenant's entities by type, its edges, its open alerts by fingerprint, ...)."""
    found: dict[str, list[tuple[str, ...]]] = {}
    for table in metadata.sorted_tables:
        declared = [tuple(c.name for c in index.columns) for index in table.indexes]
        declared += [
            tuple(c.name for c in constraint.columns)
            for constraint in table.constraints
            if isinstance(constraint, UniqueConstraint)
        ]
        composite = sorted({columns for columns in declared if len(columns) > 1})
        if composite:
            found[table.name] = composite
    return found


def missing_indexes(engine: Engine) -> dict[str, list[tuple[str, ...]]]:
    """The composite indexes of `composite_indexes()` the database lacks (as an index, a unique
    constraint or a primary key on exactly those columns, in that order)."""
    inspector = inspect(engine)
    missing = {}
    for table, wanted in composite_indexes().items():
        present = {tuple(index["column_names"]) for index in inspector.get_indexes(table)}
        present |= {tuple(unique["column_names"]) for unique in inspector.get_unique_constraints(table)}
        present.add(tuple(inspector.get_pk_constraint(table)["constrained_columns"]))
        lacking = [columns for columns in wanted if columns not in present]
        if lacking:
            missing[table] = lacking
    return missing
