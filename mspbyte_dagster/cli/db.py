"""`mspbyte db`: the app database's schema."""

from __future__ import annotations

import click

from mspbyte_dagster.cli.common import app_engine, fail, main, settings


@main.group()
def db() -> None:
    """The app database."""


@db.command("upgrade")
def db_upgrade() -> None:
    """Create or migrate the app database to the newest schema."""
    from mspbyte_dagster.lib.store.db import engine_for, upgrade

    engine = engine_for(settings().database_url)
    revision = upgrade(engine)
    click.echo(f"app database {engine.url.render_as_string(hide_password=True)} at revision {revision}")


@db.command("check")
def db_check() -> None:
    """Confirm the schema is the code's and every composite index the passes rely on exists."""
    from mspbyte_dagster.lib.store.db import composite_indexes, missing_indexes

    missing = missing_indexes(app_engine(read_only=True))
    for table, indexes in composite_indexes().items():
        for columns in indexes:
            state = "MISSING" if columns in missing.get(table, []) else "ok"
            click.echo(f"{state:<8}{table} ({', '.join(columns)})")
    if missing:
        count = sum(map(len, missing.values()))
        fail(
            f"{count} composite index(es) missing: recreate them as mspbyte_dagster/lib/store/schema.py declares",
            code=1,
        )
