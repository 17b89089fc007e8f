"""The `mspbyte` command: what an MSP engineer types in a terminal. One module per command group."""

from mspbyte_dagster.cli import db, flags, run, tenants  # noqa: F401  (importing registers the commands)
from mspbyte_dagster.cli.common import main

__all__ = ["main"]
