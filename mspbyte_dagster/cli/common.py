"""What every `mspbyte` command shares: settings, errors, the app database, the Dagster instance.

`--json` output is stable (scripts and tests read it); errors go to stderr,
name what is wrong, and exit non-zero.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import sys
from functools import wraps
from pathlib import Path

import click

from mspbyte_dagster.settings import INSTANCE_CONFIG, Settings, SettingsError, current_settings


def fail(message: str, code: int = 2) -> None:
    click.echo(f"mspbyte: {message}", err=True)
    sys.exit(code)


def dev_tool(module: str, command: str):
    """A development tool (mspbyte_dev: the generator, the local Graph, the benchmark); production
    installs leave it out, and the command then says so instead of failing on an import."""
    import importlib

    try:
        return importlib.import_module(f"mspbyte_dev.{module}")
    except ModuleNotFoundError as missing:
        if not (missing.name or "").startswith("mspbyte_dev"):
            raise
        fail(
            f"`mspbyte {command}` is a development tool and this installation has none: use a clone of the "
            "repository installed with `make install`"
        )


def settings() -> Settings:
    context = click.get_current_context()
    if "settings" not in context.meta:
        try:
            context.meta["settings"] = current_settings()
        except SettingsError as error:
            fail(f"bad setting: {error}")
    return context.meta["settings"]


def expected_errors(fn):
    """Known failures (bad input, unknown names, unmigrated database) end as one clear line; anything
    else is a bug and shows as one, traceback and all."""
    from sqlalchemy.exc import OperationalError

    from mspbyte_dagster.lib.errors import InputError
    from mspbyte_dagster.lib.flags import UnknownFlagError
    from mspbyte_dagster.lib.store.alert_store import AlertNotFound
    from mspbyte_dagster.lib.store.db import DatabaseNotReadyError
    from mspbyte_dagster.lib.store.tenants import UnknownTenantError

    known = (InputError, DatabaseNotReadyError, UnknownTenantError, UnknownFlagError, AlertNotFound)

    @wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except known as error:
            fail(str(error))
        except OperationalError as error:  # the database is down, unreachable or refuses us
            from sqlalchemy.engine import make_url

            where = make_url(settings().database_url).render_as_string(hide_password=True)
            cause = (str(error.orig or error).strip().splitlines() or ["no answer"])[0]
            fail(f"the app database {where} did not answer: {cause}", code=1)

    return wrapper


def app_engine(read_only: bool = False):
    """The app database, migrated; read_only: for commands that only read (no SQLite write lock)."""
    from mspbyte_dagster.lib.store.db import engine_for, reading, require_migrated

    engine = engine_for(settings().database_url)
    require_migrated(engine)
    return reading(engine) if read_only else engine


def dagster_instance():
    """The Dagster instance of DAGSTER_HOME; the default home is created with a copy of our dagster.yaml."""
    from dagster import DagsterInstance

    current = settings()
    for variable, value in current.instance_variables().items():
        os.environ.setdefault(variable, value)
    if not os.environ.get("DAGSTER_HOME"):
        current.dagster_home.mkdir(parents=True, exist_ok=True)
        config = current.dagster_home / "dagster.yaml"
        if not config.exists():
            shutil.copyfile(INSTANCE_CONFIG, config)
        os.environ["DAGSTER_HOME"] = str(current.dagster_home)
    elif not Path(os.environ["DAGSTER_HOME"]).is_dir():
        fail(f"DAGSTER_HOME={os.environ['DAGSTER_HOME']} is not a folder: create it or unset DAGSTER_HOME")
    return DagsterInstance.get()


def echo_json(value) -> None:
    click.echo(json.dumps(value, indent=2, sort_keys=False, default=str))


def configure_logging(log_level: str) -> None:
    """LOG_LEVEL for this process's log lines (also run by `mspbyte run`'s worker processes)."""
    logging.basicConfig(level=log_level.upper(), format="%(levelname)s %(message)s")
    for chatty in ("alembic", "httpx", "matplotlib"):  # per migration step, HTTP request, font: noise here
        logging.getLogger(chatty).setLevel(logging.WARNING)


@click.group()
def main() -> None:
    """mspbyte: the security picture of every Microsoft 365 tenant an MSP looks after."""
    configure_logging(settings().log_level)
