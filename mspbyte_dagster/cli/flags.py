"""`mspbyte flags`: which path runs for which tenant."""

from __future__ import annotations

import click

from mspbyte_dagster.cli.common import echo_json, expected_errors, main, settings


@main.group()
def flags() -> None:
    """Feature flags: which path runs for which tenant."""


def flag_manager():
    from mspbyte_dagster.lib.flags import FeatureFlagManager

    return FeatureFlagManager(settings().flag_defaults)


@flags.command("list")
@click.option("--json", "as_json", is_flag=True)
def flags_list(as_json: bool) -> None:
    """Every flag with its global value, rollout and source."""
    statuses = flag_manager().statuses()
    if as_json:
        echo_json([status.as_json() for status in statuses])
        return
    for status in statuses:
        state = "on" if status.global_enabled else "off"
        click.echo(f"{status.flag:<24}{state:<5}rollout {status.rollout:>3}%  ({status.source})")


@flags.command("status")
@click.argument("flag")
@click.option("--tenant", help="Tenant key: shows the effective value and bucket for it.")
@click.option("--json", "as_json", is_flag=True)
@expected_errors
def flags_status(flag: str, tenant: str | None, as_json: bool) -> None:
    """The effective value of FLAG (for a tenant), and why."""
    status = flag_manager().status(flag, tenant)
    if as_json:
        echo_json(status.as_json())
        return
    where = f" for {tenant} (bucket {status.bucket})" if tenant else ""
    click.echo(f"{flag}{where}: {'on' if status.effective else 'off'} ({status.source})")
