"""`mspbyte metrics serve`: the Prometheus endpoint, read from the app database at each scrape."""

from __future__ import annotations

import signal
import sys
import threading

import click

from mspbyte_dagster.cli.common import fail, main, settings


@main.group()
def metrics() -> None:
    """Prometheus metrics of the pipeline."""


@metrics.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=None,
    help="Port to listen on (default: METRICS_PORT, 9090; 0: any free port).",
)
def metrics_serve(host: str, port: int | None) -> None:
    """Serve /metrics (Prometheus text format) and /health until stopped.

    Starts even when the app database is down: /health then answers 503 with the reason.
    """
    from mspbyte_dagster.lib.metrics.server import database_health, metrics_server

    current = settings()
    if not current.enable_prometheus:
        fail("ENABLE_PROMETHEUS is false: metrics are switched off; set ENABLE_PROMETHEUS=true to serve /metrics")
    port = current.metrics_port if port is None else port
    server = metrics_server(
        current.database_url, current.flag_defaults, current.redis_url, current.namespace, host, port
    )
    try:
        server.start()
    except OSError as error:
        fail(f"cannot listen on {host}:{port}: {error.strerror or error}")
    healthy, detail = database_health(server.engine)
    click.echo(f"Serving {server.url}/metrics and {server.url}/health")
    click.echo(f"App database: {detail}" + ("" if healthy else " (/health answers 503 until it does)"))
    click.echo("Ctrl-C stops it.")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
