"""The `mspbyte` command: what an MSP engineer types in a terminal. One module per command group."""

from mspbyte_dagster.cli import (  # noqa: F401  (importing registers the commands)
    alerts,
    bench,
    compare,
    db,
    dev,
    events,
    flags,
    metrics,
    notify,
    prod,
    report,
    run,
    tenants,
)
from mspbyte_dagster.cli.common import main

__all__ = ["main"]
