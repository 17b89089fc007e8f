"""`mspbyte prod up|down|status`: the production stack on this machine (`make prod-up WORKERS=N`)."""

from __future__ import annotations

import click

from mspbyte_dagster.cli.common import echo_json, expected_errors, fail, main, settings


@main.group()
def prod() -> None:
    """The production stack: code server, webserver, daemon, metrics and Celery workers."""


@prod.command("up")
@click.option("--workers", type=click.IntRange(1, 64), default=2, show_default=True, help="Celery workers to start.")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address the servers listen on.")
@click.option("--ui-port", type=click.IntRange(1, 65535), default=3000, show_default=True)
@click.option("--code-port", type=click.IntRange(1, 65535), default=4000, show_default=True)
@expected_errors
def prod_up(workers: int, host: str, ui_port: int, code_port: int) -> None:
    """Check every production variable and service, then start the stack and wait until it answers."""
    from mspbyte_dagster.lib.production import Ports, up, worker_concurrency

    current = settings()
    stack = up(current, Ports(host, ui_port, code_port), workers, echo=click.echo)
    click.echo(
        f"production stack up: UI http://{host}:{ui_port}, {workers} worker(s) x "
        f"{worker_concurrency(current, workers)} run slot(s) on queue {current.celery_queue}; "
        f"DAGSTER_HOME={stack.dagster_home}"
    )


@prod.command("down")
@expected_errors
def prod_down() -> None:
    """Stop exactly what `prod up` started."""
    from mspbyte_dagster.lib.production import down

    down(settings(), echo=click.echo)


@prod.command("status")
@click.option("--json", "as_json", is_flag=True)
@expected_errors
def prod_status(as_json: bool) -> None:
    """What `prod up` started, whether it runs and answers; exits 1 if any part is down."""
    from dataclasses import asdict

    from mspbyte_dagster.lib.production import stack_folder, status

    stack, rows = status(settings())
    if stack is None:
        fail(f"no production stack recorded in {stack_folder(settings())}: `make prod-up` starts one", code=1)
    if as_json:
        echo_json(
            {"dagster_home": stack.dagster_home, "started_at": stack.started_at, "processes": [asdict(r) for r in rows]}
        )
    else:
        click.echo(f"started {stack.started_at}, DAGSTER_HOME={stack.dagster_home}")
        for row in rows:
            answers = "" if row.answers is None else ", answers" if row.answers else ", NOT answering"
            click.echo(f"{row.name:<12} pid {row.pid:<8} {'running' if row.running else 'STOPPED'}{answers}  {row.log}")
    if not all(row.running and row.answers is not False for row in rows):
        raise SystemExit(1)
