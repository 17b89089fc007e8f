"""`mspbyte flags`: which path runs for which tenant, and the run-time switches that change it."""

from __future__ import annotations

import click

from mspbyte_dagster.cli.common import app_engine, echo_json, expected_errors, fail, main, settings


@main.group()
def flags() -> None:
    """Feature flags: which path runs for which tenant."""


def store():
    from mspbyte_dagster.lib.flag_store import flag_store

    current = settings()
    return flag_store(current.redis_url, app_engine(), current.namespace)


def flag_manager():
    from mspbyte_dagster.lib.flag_store import load_flags

    manager = load_flags(store(), settings().flag_defaults)
    if manager.fallback:
        click.echo(f"mspbyte: flags from {manager.fallback}", err=True)
    return manager


def show(flag: str, tenant: str | None, as_json: bool) -> None:
    status = flag_manager().status(flag, tenant)
    if as_json:
        echo_json(status.as_json())
        return
    where = f" for {tenant} (bucket {status.bucket})" if tenant else ""
    overrides = f", {status.override_count} tenant override(s)" if status.override_count else ""
    click.echo(
        f"{flag}{where}: {'on' if status.effective else 'off'} ({status.source}; global "
        f"{'on' if status.global_enabled else 'off'}, rollout {status.rollout}%{overrides})"
    )


def change(action) -> None:
    """Apply one change to the store; a store that refuses it leaves everything as it was."""
    from mspbyte_dagster.lib.flag_store import FlagStoreUnavailable

    try:
        action(store())
    except FlagStoreUnavailable as error:
        fail(str(error), code=1)


@flags.command("list")
@click.option("--json", "as_json", is_flag=True)
@expected_errors
def flags_list(as_json: bool) -> None:
    """Every flag with its global value, rollout and source."""
    statuses = flag_manager().statuses()
    if as_json:
        echo_json([status.as_json() for status in statuses])
        return
    for status in statuses:
        state = "on" if status.global_enabled else "off"
        click.echo(
            f"{status.flag:<24}{state:<5}rollout {status.rollout:>3}%  overrides {status.override_count:<4}"
            f"({status.source})"
        )


@flags.command("status")
@click.argument("flag")
@click.option("--tenant", help="Tenant key: shows the effective value and bucket for it.")
@click.option("--json", "as_json", is_flag=True)
@expected_errors
def flags_status(flag: str, tenant: str | None, as_json: bool) -> None:
    """The effective value of FLAG (for a tenant), and why."""
    if tenant is not None:
        from mspbyte_dagster.lib.store.tenants import require_tenant

        with app_engine(read_only=True).connect() as conn:
            require_tenant(conn, tenant)
    show(flag, tenant, as_json)


@flags.command("set")
@click.argument("flag")
@click.argument("value", type=click.Choice(["on", "off"]))
@click.option("--json", "as_json", is_flag=True)
@expected_errors
def flags_set(flag: str, value: str, as_json: bool) -> None:
    """The global switch; `off` is the emergency switch: off for every tenant, overrides included."""
    change(lambda s: s.set_enabled(flag, value == "on"))
    show(flag, None, as_json)


@flags.command("rollout")
@click.argument("flag")
@click.argument("percent", type=int)
@click.option("--json", "as_json", is_flag=True)
@expected_errors
def flags_rollout(flag: str, percent: int, as_json: bool) -> None:
    """On for tenants whose bucket is below PERCENT (raising it only adds tenants)."""
    change(lambda s: s.set_rollout(flag, percent))
    show(flag, None, as_json)


@flags.command("reset")
@click.argument("flag")
@click.option("--json", "as_json", is_flag=True)
@expected_errors
def flags_reset(flag: str, as_json: bool) -> None:
    """Drop the run-time switch and rollout: FEATURE_<FLAG> and FEATURE_<FLAG>_ROLLOUT apply again."""
    change(lambda s: s.reset(flag))
    show(flag, None, as_json)


@flags.command("override")
@click.argument("flag")
@click.argument("tenant")
@click.argument("value", type=click.Choice(["on", "off", "clear"]))
@click.option("--json", "as_json", is_flag=True)
@expected_errors
def flags_override(flag: str, tenant: str, value: str, as_json: bool) -> None:
    """A tenant's own value (clear: back to the rollout); global off still wins."""
    change(lambda s: s.set_override(flag, tenant, None if value == "clear" else value == "on"))
    show(flag, tenant, as_json)
