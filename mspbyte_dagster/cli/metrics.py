"""`mspbyte metrics serve`: the Prometheus endpoint, read from the app database at each scrape."""

from __future__ import annotations

import signal
import sys
import threading

import click

from mspbyte_dagster.cli.common import app_engine, echo_json, fail, main, settings


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
    from mspbyte_dagster.lib.metrics.server import metrics_server

    current = settings()
    if not current.enable_prometheus:
        fail("ENABLE_PROMETHEUS is false: metrics are switched off; set ENABLE_PROMETHEUS=true to serve /metrics")
    port = current.metrics_port if port is None else port
    server = metrics_server(
        current.database_url, current.flag_defaults, current.redis_url, current.namespace, host, port, current.nats_url
    )
    try:
        server.start()
    except OSError as error:
        fail(f"cannot listen on {host}:{port}: {error.strerror or error}")
    healthy, body = server.checked()
    click.echo(f"Serving {server.url}/metrics and {server.url}/health")
    for name, part in body["parts"].items():
        required = "required" if part["required"] else "optional"
        click.echo(f"{name} ({required}): {part['detail']}")
    if not healthy:
        click.echo("/health answers 503 until every required part answers")
    click.echo("Ctrl-C stops it.")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()


@metrics.command("summary")
@click.option("--json", "as_json", is_flag=True)
def metrics_summary(as_json: bool) -> None:
    """Total and slow queries, average pass duration and success rate, per stage too (the guide's
    getSummary), from the same durable counts as /metrics."""
    from mspbyte_dagster.lib.metrics.collector import consistent_read
    from mspbyte_dagster.lib.metrics.server import read_engine
    from mspbyte_dagster.lib.metrics.summary import pipeline_summary
    from mspbyte_dagster.lib.store.metric_totals import current_figures

    app_engine(read_only=True)  # refuses a database not at the code's schema, naming what to do
    with consistent_read(read_engine(settings().database_url)) as conn:
        summary = pipeline_summary(current_figures(conn)["ledger"])
    if as_json:
        echo_json(summary)
        return
    shown = {key: "-" if value is None else value for key, value in summary.items()}
    click.echo(f"queries: {shown['total_queries']}, slow: {shown['slow_query_count']} ({shown['slow_query_share']})")
    click.echo(f"average pipeline duration: {shown['average_pipeline_duration_ms']} ms")
    click.echo(
        f"executions: {summary['executions']['success']} success, {summary['executions']['failure']} failure "
        f"(success rate {shown['success_rate']}); not run: "
        + ", ".join(f"{count} {reason}" for reason, count in summary["passes_not_run"].items())
    )
    click.echo(f"{'stage':<16}{'executions':>11}{'average ms':>12}{'queries':>9}")
    for stage, figures in summary["by_stage"].items():
        average = "-" if figures["average_ms"] is None else figures["average_ms"]
        click.echo(f"{stage:<16}{figures['executions']:>11}{average:>12}{figures['queries']:>9}")
