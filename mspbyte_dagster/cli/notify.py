"""`mspbyte notify`: where alerts are announced (channels, routes), what waits to go out (the outbox),
and one delivery round by hand. No secret is ever printed: a listing says where it lives."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import click

from mspbyte_dagster.cli.common import app_engine, echo_json, expected_errors, fail, main, settings
from mspbyte_dagster.lib.shown import terminal_text

STORED_AS_HELP = "The value, stored encrypted (needs MSPBYTE_SECRET_KEY), or env:NAME to read it from that variable."


def _now() -> datetime:
    return datetime.now(UTC)


@main.group()
def notify() -> None:
    """Announce alerts on webhooks, Microsoft Teams, Slack and e-mail."""


@notify.command("new-key")
def new_key() -> None:
    """Print a new MSPBYTE_SECRET_KEY (keep it where the delivery job runs; losing it loses the secrets)."""
    from mspbyte_dagster.lib.notify.secrets import new_key as make

    click.echo(make())


@notify.group()
def channels() -> None:
    """Where messages go."""


def _add_channel(name: str, kind: str, config: dict, secret: str | None) -> None:
    from mspbyte_dagster.lib.store import notifications

    sealed = settings().secret_box().seal(secret) if secret else None
    with app_engine().begin() as conn:
        notifications.add_channel(conn, name, kind, config, sealed, _now())
    click.echo(f"channel {name} ({kind}) added; `mspbyte notify routes add --channel {name}` sends it alerts")


def _name_option(fn):
    return click.option("--name", required=True, help="The channel's name (routes use it).")(fn)


@channels.group("add")
def channels_add() -> None:
    """Add a channel: webhook, teams, slack or email."""


@channels_add.command("webhook")
@_name_option
@click.option("--url", required=True, help="Where the JSON is POSTed.")
@click.option("--secret", required=True, help="Signs each message (X-Mspbyte-Signature). " + STORED_AS_HELP)
@expected_errors
def add_webhook(name: str, url: str, secret: str) -> None:
    """A generic webhook: JSON body, signed with HMAC-SHA256 over "<timestamp>.<body>"."""
    from mspbyte_dagster.lib.notify.channels import check_http_url

    _add_channel(name, "webhook", {"url": check_http_url(url, "--url")}, secret)


def _url_is_secret(kind: str, what: str, description: str) -> None:
    """Teams and Slack: the webhook URL is the channel's secret."""

    @channels_add.command(kind, help=description)
    @_name_option
    @click.option("--url", required=True, help=f"The {what} URL. " + STORED_AS_HELP)
    @expected_errors
    def add(name: str, url: str) -> None:
        from mspbyte_dagster.lib.notify.channels import check_http_url
        from mspbyte_dagster.lib.notify.secrets import is_reference

        _add_channel(name, kind, {}, url if is_reference(url) else check_http_url(url, "--url"))


_url_is_secret("teams", "Teams Workflows webhook", "Microsoft Teams through a Workflows webhook (an Adaptive Card).")
_url_is_secret("slack", "Slack incoming-webhook", "Slack through an incoming webhook (Block Kit).")


@channels_add.command("email")
@_name_option
@click.option("--host", required=True, help="SMTP server (STARTTLS is required).")
@click.option("--port", type=click.IntRange(1, 65535), default=587, show_default=True)
@click.option("--from", "sender", required=True)
@click.option("--to", "recipients", required=True, multiple=True, help="Recipient (repeatable).")
@click.option("--username")
@click.option("--password", help="SMTP password. " + STORED_AS_HELP)
@expected_errors
def add_email(
    name: str,
    host: str,
    port: int,
    sender: str,
    recipients: tuple[str, ...],
    username: str | None,
    password: str | None,
) -> None:
    """E-mail over SMTP with STARTTLS, plain text and HTML."""
    from mspbyte_dagster.lib.errors import InputError

    if bool(username) != bool(password):
        raise InputError("give --username and --password together, or neither")
    config = {"host": host, "port": port, "sender": sender, "recipients": list(recipients), "username": username}
    _add_channel(name, "email", config, password)


@channels.command("list")
@click.option("--json", "as_json", is_flag=True)
@expected_errors
def channels_list(as_json: bool) -> None:
    """Channels, with where each secret lives (encrypted, or env:NAME), never its value."""
    from mspbyte_dagster.lib.notify.secrets import SecretBox
    from mspbyte_dagster.lib.store import notifications

    with app_engine(read_only=True).connect() as conn:
        rows = [
            {"name": row.name, "kind": row.kind, "config": row.config, "secret": SecretBox.shown(row.secret)}
            for row in notifications.channels(conn)
        ]
    if as_json:
        echo_json(rows)
        return
    if not rows:
        click.echo("no channels: `mspbyte notify channels add --help`")
    for row in rows:
        where = {k: v for k, v in row["config"].items() if v}
        click.echo(f"{row['name']:<20} {row['kind']:<8} secret {row['secret']:<20} {terminal_text(str(where))}")


@channels.command("remove")
@click.argument("name")
@expected_errors
def channels_remove(name: str) -> None:
    """Remove a channel, its routes and its undelivered messages."""
    from mspbyte_dagster.lib.store import notifications

    with app_engine().begin() as conn:
        notifications.remove_channel(conn, name)
    click.echo(f"channel {name} removed")


@channels.command("test")
@click.argument("name")
@expected_errors
def channels_test(name: str) -> None:
    """Send a test message now and say how it went (exit 1 if it was not delivered)."""
    from mspbyte_dagster.lib.notify.channels import send
    from mspbyte_dagster.lib.notify.messages import Message, test_item
    from mspbyte_dagster.lib.store import notifications

    with app_engine(read_only=True).connect() as conn:
        found = notifications.channel(conn, name)
    secret = settings().secret_box().open(found.secret) if found.secret else None
    message = Message(f"mspbyte-test-{uuid.uuid4().hex[:12]}", [test_item(name)])
    outcome = send(found.kind, found.config, secret, message)
    if not outcome.delivered:
        fail(f"channel {name}: not delivered: {outcome.error}", code=1)
    click.echo(f"channel {name}: test message {message.key} delivered")


@notify.group()
def routes() -> None:
    """Which alert events go to which channel."""


@routes.command("add")
@click.option("--channel", "channel_name", required=True)
@click.option("--tenant", help="Only this tenant (default: every tenant).")
@click.option("--min-severity", default="low", show_default=True, help="low, medium, high or critical.")
@click.option("--types", help="Alert types, comma-separated (default: every type).")
@click.option(
    "--events",
    help="created, reopened, severity_raised, resolved, pass_failed, pass_held, comma-separated (default: all).",
)
@click.option("--digest", type=click.IntRange(1, 1440), help="Collect into one message per this many minutes.")
@expected_errors
def routes_add(
    channel_name: str, tenant: str | None, min_severity: str, types: str | None, events: str | None, digest: int | None
) -> None:
    """Send a channel the alert events that match."""
    from mspbyte_dagster.lib.notify.routing import checked_events, checked_severity, checked_types
    from mspbyte_dagster.lib.store import notifications
    from mspbyte_dagster.lib.store.tenants import require_tenant

    def listed(value: str | None) -> list[str] | None:
        return [part.strip() for part in value.split(",") if part.strip()] if value else None

    route = {
        "tenant": tenant,
        "min_severity": checked_severity(min_severity),
        "alert_types": checked_types(listed(types)),
        "events": checked_events(listed(events)),
        "digest_minutes": digest,
    }
    with app_engine().begin() as conn:
        if tenant:
            require_tenant(conn, tenant)
        route_id = notifications.add_route(conn, notifications.channel(conn, channel_name).id, _now(), **route)
    click.echo(f"route {route_id} added: {_route_text(route | {'channel': channel_name})}")


def _route_text(route: dict) -> str:
    types = ", ".join(route["alert_types"]) if route["alert_types"] else "every type"
    timing = f"digest every {route['digest_minutes']} min" if route["digest_minutes"] else "at once"
    return (
        f"{route['channel']} <- {route['tenant'] or 'every tenant'}, {route['min_severity']} and above, {types}, "
        f"{', '.join(route['events'])}; {timing}"
    )


@routes.command("list")
@click.option("--json", "as_json", is_flag=True)
@expected_errors
def routes_list(as_json: bool) -> None:
    """Routes, with their channel."""
    from mspbyte_dagster.lib.store import notifications

    fields = ("id", "channel", "tenant", "min_severity", "alert_types", "events", "digest_minutes")
    with app_engine(read_only=True).connect() as conn:
        rows = [{name: getattr(row, name) for name in fields} for row in notifications.routes(conn)]
    if as_json:
        echo_json(rows)
        return
    if not rows:
        click.echo("no routes: a channel that no route names receives nothing")
    for row in rows:
        click.echo(f"{row['id']:>4}  {_route_text(row)}")


@routes.command("remove")
@click.argument("route_id", type=click.IntRange(1, 2**63 - 1))
@expected_errors
def routes_remove(route_id: int) -> None:
    from mspbyte_dagster.lib.store import notifications

    with app_engine().begin() as conn:
        notifications.remove_route(conn, route_id)
    click.echo(f"route {route_id} removed")


@notify.group()
def outbox() -> None:
    """Messages waiting, delivered and dead-lettered."""


@outbox.command("list")
@click.option("--dead", is_flag=True, help="Only dead-lettered messages.")
@click.option("--status", type=click.Choice(["pending", "delivered", "dead"]))
@click.option("--json", "as_json", is_flag=True)
@expected_errors
def outbox_list(dead: bool, status: str | None, as_json: bool) -> None:
    """The newest 200 messages, newest first."""
    from mspbyte_dagster.lib.store import notifications

    fields = ("id", "tenant", "channel", "status", "digest", "attempts", "queued_at", "due_at", "finished_at")
    with app_engine(read_only=True).connect() as conn:
        rows = notifications.outbox_rows(conn, "dead" if dead else status)
    listed = [
        {name: getattr(row, name) for name in fields}
        | {"events": len(row.items), "keys": [item["key"] for item in row.items], "last_error": row.last_error}
        for row in rows
    ]
    if as_json:
        echo_json(listed)
        return
    if not listed:
        click.echo("the outbox is empty" if not (dead or status) else f"no {'dead' if dead else status} messages")
    for row in listed:
        error = f"  last error: {terminal_text(row['last_error'])}" if row["last_error"] else ""
        click.echo(
            f"{row['id']:>6} {row['tenant']:<20} {row['channel']:<16} {row['status']:<9} "
            f"{row['events']} event(s), {row['attempts']} attempt(s){error}"
        )


@outbox.command("retry")
@click.argument("row_id", type=click.IntRange(1, 2**63 - 1))
@expected_errors
def outbox_retry(row_id: int) -> None:
    """Make a dead (or waiting) message due now, with a fresh delivery window."""
    from mspbyte_dagster.lib.store import notifications

    with app_engine().begin() as conn:
        notifications.retry(conn, row_id, _now())
    click.echo(f"outbox row {row_id} is due now: the next delivery round sends it")


@notify.command("deliver")
@expected_errors
def deliver() -> None:
    """One delivery round, what the notification_delivery job does (exit 1 if a message went dead)."""
    from mspbyte_dagster.lib.notify.delivery import deliver_round

    current = settings()
    figures = deliver_round(app_engine(), current.secret_box(), current.notify_give_up)
    click.echo(
        f"{figures.messages} message(s): {figures.delivered} row(s) delivered, {figures.retried} to retry, "
        f"{figures.dead} dead-lettered"
    )
    for error in figures.errors:
        click.echo(f"  {terminal_text(error)}", err=True)
    if figures.dead:
        raise SystemExit(1)
