"""`mspbyte dev`: tools for working without a real Microsoft 365 tenant or Sophos Central."""

from __future__ import annotations

import contextlib
import signal
import sys
import threading
from pathlib import Path

import click

from mspbyte_dagster.cli.common import dev_tool, fail, main
from mspbyte_dagster.lib.errors import InputError


@main.group()
def dev() -> None:
    """Development tools."""


@dev.command("fake-graph")
@click.argument("folder", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--port", type=click.IntRange(0, 65535), default=8443, show_default=True, help="0: any free port.")
@click.option(
    "--page-size",
    type=click.IntRange(1, 999),
    default=999,
    show_default=True,
    help="Most records a page holds, whatever $top asks (small values exercise nextLink).",
)
@click.option(
    "--throttle", "throttled", multiple=True, metavar="PATH", help="Answer 429 with Retry-After (repeatable)."
)
@click.option("--unavailable", multiple=True, metavar="PATH", help="Answer 503 (repeatable).")
@click.option("--slow", multiple=True, metavar="PATH", help="Answer after --delay seconds (repeatable).")
@click.option("--malformed", multiple=True, metavar="PATH", help="Answer a page that is not JSON (repeatable).")
@click.option("--expire-tokens", type=click.IntRange(0), default=0, help="Refuse this many valid tokens with 401.")
@click.option(
    "--no-p1",
    multiple=True,
    metavar="TENANT",
    help="Tenant key or azure id without Entra ID P1: 403 on signInActivity and the registration report.",
)
@click.option(
    "--times", type=click.IntRange(0), default=1, show_default=True, help="Requests each fault hits (0: every one)."
)
@click.option("--skip", type=click.IntRange(0), default=0, help="Matching requests each fault lets through first.")
@click.option("--retry-after", type=click.FloatRange(0), default=1.0, show_default=True)
@click.option("--delay", type=click.FloatRange(0), default=5.0, show_default=True)
@click.option(
    "--faithful",
    is_flag=True,
    help="Enforce the reports limit (5 requests per 10 s per tenant) and throttle some paths without Retry-After.",
)
def fake_graph(
    folder: Path,
    port: int,
    page_size: int,
    throttled: tuple[str, ...],
    unavailable: tuple[str, ...],
    slow: tuple[str, ...],
    malformed: tuple[str, ...],
    expire_tokens: int,
    no_p1: tuple[str, ...],
    times: int,
    skip: int,
    retry_after: float,
    delay: float,
    faithful: bool,
) -> None:
    """Serve the snapshot folders in FOLDER (one per tenant) as Microsoft Graph, over HTTPS on 127.0.0.1.

    PATH is a Graph path prefix such as /users, /groups/ (member reads, in $batch too) or /$batch.
    """
    graph = dev_tool("fake_graph", "dev fake-graph").FakeGraph(
        folder, port=port, page_size=page_size, faithful=faithful
    )
    if not graph.tenants():
        fail(f"{folder} holds no tenant folder (a folder with tenant.json, as `mspbyte synth` writes)")
    options = {"times": times or None, "skip": skip}
    for kind, paths, extra in (
        ("throttle", throttled, {"retry_after": retry_after}),
        ("unavailable", unavailable, {"retry_after": retry_after}),
        ("slow", slow, {"delay": delay}),
        ("malformed", malformed, {}),
    ):
        for path in paths:
            graph.add_fault(kind, path, **options, **extra)
    if expire_tokens:
        graph.add_fault("expired_token", times=expire_tokens)
    try:
        for tenant in no_p1:
            graph.remove_p1(tenant)
    except KeyError as unknown:
        fail(unknown.args[0])
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    with graph:
        click.echo(f"Local Microsoft Graph on {graph.authority_host} serving:")
        for key, azure_id in graph.tenants().items():
            click.echo(f"  {key}  azure tenant {azure_id}")
        click.echo("Point mspbyte at it (any client id and secret are accepted):")
        click.echo(f"  export GRAPH_AUTHORITY_HOST={graph.authority_host}")
        click.echo(f"  export GRAPH_BASE_URL={graph.base_url}")
        click.echo(f"  export SSL_CERT_FILE={graph.ca_file}")
        click.echo("  export GRAPH_CLIENT_ID=local GRAPH_CLIENT_SECRET=local")
        click.echo("Ctrl-C stops it.")
        with contextlib.suppress(KeyboardInterrupt):
            threading.Event().wait()


@dev.command("fake-sophos")
@click.argument("folder", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option(
    "--fault",
    "faults",
    multiple=True,
    metavar="STATUS[@SECONDS][:PATH]",
    help="Answer 429, 500, 502 or 503 (with SECONDS as Retry-After), or 401 to a valid token, on requests "
    "under the API path PATH (all: none given). Repeatable.",
)
@click.option(
    "--deny",
    multiple=True,
    metavar="CUSTOMER[:PATH]",
    help="Tenant key or Sophos id that refuses the partner (403), on every request or under PATH alone "
    "(such as /firewall/v1/firewalls/actions/firmware-upgrade-check). Repeatable.",
)
@click.option("--page-size", type=click.IntRange(1, 500), default=100, show_default=True, help="Most records a page.")
@click.option("--port", type=click.IntRange(0, 65535), default=8444, show_default=True, help="0: any free port.")
@click.option("--times", type=click.IntRange(0), default=1, show_default=True, help="Requests a fault hits (0: all).")
@click.option("--skip", type=click.IntRange(0), default=0, help="Matching requests each fault lets through first.")
def fake_sophos(
    folder: Path, faults: tuple[str, ...], deny: tuple[str, ...], page_size: int, port: int, times: int, skip: int
) -> None:
    """Serve the Sophos snapshot folders in FOLDER (one per customer) as Sophos Central, over HTTPS on 127.0.0.1.

    One port plays the identity service, the global host and every customer's regional host; pages hold
    at most --page-size records, so small values exercise both of Central's paging styles.
    """
    module = dev_tool("fake_sophos", "dev fake-sophos")
    sophos = module.FakeSophos(folder, port=port, page_size=page_size)
    if not sophos.customers():
        fail(f'{folder} holds no Sophos folder (a folder whose tenant.json says integration "sophos")')
    try:
        for spec in faults:
            sophos.inject(spec, times=times or None, skip=skip)
        for refusal in deny:
            customer, _, path = refusal.partition(":")
            sophos.deny(customer, path)
    except (InputError, KeyError) as wrong:
        fail(str(wrong.args[0]))
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    with sophos:
        click.echo(f"Local Sophos Central on {sophos.url}: the identity service, the global and each regional host.")
        for key, customer_id in sophos.customers().items():
            click.echo(f"  {key}  Sophos customer {customer_id}")
        click.echo(f"Partner {module.PARTNER_ID}: any client id and secret get a token.")
        click.echo(f"  auth URL and global URL: {sophos.url}")
        click.echo(f"  certificate to trust: {sophos.ca_file}")
        click.echo("Ctrl-C stops it.")
        with contextlib.suppress(KeyboardInterrupt):
            threading.Event().wait()
