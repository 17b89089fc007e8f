"""`mspbyte db`: the app database's schema."""

from __future__ import annotations

import click

from mspbyte_dagster.cli.common import main, settings


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
