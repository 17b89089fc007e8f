"""The `mspbyte` command: what an MSP engineer types in a terminal.

`--json` output is stable (scripts and tests read it); errors go to stderr,
name what is wrong, and exit non-zero.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from collections import Counter
from functools import wraps
from pathlib import Path

import click

from mspbyte_dagster.settings import REPO_ROOT, Settings, SettingsError

RUN_BATCH = 50


def fail(message: str, code: int = 2) -> None:
    click.echo(f"mspbyte: {message}", err=True)
    sys.exit(code)


def settings() -> Settings:
    context = click.get_current_context()
    if "settings" not in context.meta:
        try:
            context.meta["settings"] = Settings.from_env()
        except SettingsError as error:
            fail(f"bad setting: {error}")
    return context.meta["settings"]


def expected_errors(fn):
    """Known failures (bad input, unknown names, unmigrated database) end as one clear line."""
    from mspbyte_dagster.lib.flags import UnknownFlagError
    from mspbyte_dagster.lib.onboarding import ImportRejected
    from mspbyte_dagster.lib.store.db import DatabaseNotReadyError
    from mspbyte_dagster.lib.store.tenants import UnknownTenantError

    @wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except (ImportRejected, DatabaseNotReadyError, UnknownTenantError, UnknownFlagError, ValueError) as error:
            fail(str(error))

    return wrapper


def app_engine():
    from mspbyte_dagster.lib.store.db import engine_for, require_migrated

    engine = engine_for(settings().database_url)
    require_migrated(engine)
    return engine


def dagster_instance():
    """The Dagster instance of DAGSTER_HOME; the default home is created with our dagster.yaml."""
    from dagster import DagsterInstance

    current = settings()
    os.environ.setdefault("MAX_CONCURRENT_JOBS", str(current.max_concurrent_jobs))
    if not os.environ.get("DAGSTER_HOME"):
        current.dagster_home.mkdir(parents=True, exist_ok=True)
        config = current.dagster_home / "dagster.yaml"
        if not config.exists():
            config.symlink_to(REPO_ROOT / "dagster.yaml")
        os.environ["DAGSTER_HOME"] = str(current.dagster_home)
    elif not Path(os.environ["DAGSTER_HOME"]).is_dir():
        fail(f"DAGSTER_HOME={os.environ['DAGSTER_HOME']} is not a folder: create it or unset DAGSTER_HOME")
    return DagsterInstance.get()


def echo_json(value) -> None:
    click.echo(json.dumps(value, indent=2, sort_keys=False, default=str))


@click.group()
def main() -> None:
    """mspbyte: the security picture of every Microsoft 365 tenant an MSP looks after."""
    logging.basicConfig(level=settings().log_level.upper(), format="%(levelname)s %(message)s")
    logging.getLogger("alembic").setLevel(logging.WARNING)


@main.group()
def db() -> None:
    """The app database."""


@db.command("upgrade")
def db_upgrade() -> None:
    """Create or migrate the app database to the newest schema."""
    from mspbyte_dagster.lib.store.db import engine_for, upgrade

    engine = engine_for(settings().database_url)
    revision = upgrade(engine)
    click.echo(f"app database {engine.url.render_as_string(hide_password=True)} at revision {revision}")


@main.command()
@click.option("--tenants", "tenant_count", type=click.IntRange(1, 10_000), default=3, show_default=True)
@click.option("--users", type=click.IntRange(10, 50_000), default=100, show_default=True)
@click.option("--seed", type=int, default=1, show_default=True)
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), required=True)
def synth(tenant_count: int, users: int, seed: int, out: Path) -> None:
    """Write deterministic synthetic tenant snapshots (same arguments, same bytes)."""
    from mspbyte_dagster.lib.synthetic import write_snapshots

    for folder in write_snapshots(out, tenant_count, users, seed):
        click.echo(str(folder))


@main.group()
def tenants() -> None:
    """Register and list tenants."""


def register_partitions(keys: list[str]) -> list[str]:
    """Add the tenants' partitions the Dagster instance lacks; returns those added."""
    from mspbyte_dagster.defs.partitions import TENANTS

    instance = dagster_instance()
    known = set(instance.get_dynamic_partitions(TENANTS))
    missing = [key for key in dict.fromkeys(keys) if key not in known]
    if missing:
        instance.add_dynamic_partitions(TENANTS, missing)
    return missing


@tenants.command("import")
@click.argument("folders", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True)
@expected_errors
def tenants_import(folders: tuple[Path, ...], as_json: bool) -> None:
    """Validate snapshot folders, store them, and make each its tenant's current snapshot."""
    from mspbyte_dagster.lib.onboarding import import_folders
    from mspbyte_dagster.lib.store.snapshot_store import SnapshotStore

    engine = app_engine()
    imported = import_folders(engine, SnapshotStore(settings().data_dir / "snapshots"), list(folders))
    register_partitions([item.tenant for item in imported])
    if as_json:
        echo_json([item.as_json() for item in imported])
        return
    for item in imported:
        click.echo(f"{item.tenant}: snapshot {item.seq} ({item.counts.get('users', 0)} users) -> {item.path}")


@tenants.command("list")
@click.option("--json", "as_json", is_flag=True)
@expected_errors
def tenants_list(as_json: bool) -> None:
    """Registered tenants with their data sources and current snapshot."""
    from mspbyte_dagster.lib.store.tenants import list_tenants

    with app_engine().connect() as conn:
        rows = list_tenants(conn)
    if as_json:
        echo_json(rows)
        return
    for row in rows:
        click.echo(f"{row['tenant']}\t{row['name']!r}\tsnapshot {row['current_snapshot']}\t{row['captured_at']}")


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


def tenant_ranges(order: list[str], chosen: list[str], size: int = RUN_BATCH) -> list[list[str]]:
    """Split the chosen tenants into contiguous ranges of the partition order, at most `size` each."""
    wanted, ranges, current = set(chosen), [], []
    for key in order:
        if key in wanted and len(current) < size:
            current.append(key)
            continue
        if current:
            ranges.append(current)
        current = [key] if key in wanted else []
    if current:
        ranges.append(current)
    return ranges


@main.command()
@click.option("--tenant", "tenant_keys", multiple=True, help="Tenant key (repeatable).")
@click.option("--all", "all_tenants", is_flag=True, help="Every registered tenant.")
@expected_errors
def run(tenant_keys: tuple[str, ...], all_tenants: bool) -> None:
    """Run job tenant_pipeline on the Dagster instance (visible in the UI) and wait for it."""
    from mspbyte_dagster.definitions import defs
    from mspbyte_dagster.defs.partitions import RANGE_END_TAG, RANGE_START_TAG, TENANTS
    from mspbyte_dagster.lib.store import ledger
    from mspbyte_dagster.lib.store import tenants as tenant_store

    if bool(tenant_keys) == all_tenants:
        fail("name tenants with --tenant ID (repeatable) or use --all")
    with app_engine().connect() as conn:
        registered = tenant_store.tenant_keys(conn)
    unknown = [key for key in tenant_keys if key not in registered]
    if unknown:
        fail(f"unknown tenant(s): {', '.join(unknown)}; `mspbyte tenants list` shows the registered ones")
    chosen = registered if all_tenants else list(dict.fromkeys(tenant_keys))
    register_partitions(registered)
    instance = dagster_instance()
    job = defs.resolve_job_def("tenant_pipeline")
    failed_runs, unfinished = [], {}
    for keys in tenant_ranges(instance.get_dynamic_partitions(TENANTS), chosen):
        result = job.execute_in_process(
            run_config={"loggers": {"console": {"config": {"log_level": settings().log_level.upper()}}}},
            instance=instance,
            tags={RANGE_START_TAG: keys[0], RANGE_END_TAG: keys[-1], "mspbyte/trigger": "cli"},
            raise_on_error=False,
        )
        with app_engine().connect() as conn:
            passes = ledger.passes_of_run(conn, keys, result.run_id)
        statuses = {row.tenant: row.status for row in passes}
        summary = ", ".join(f"{n} {s}" for s, n in sorted(Counter(statuses.values()).items()))
        click.echo(f"run {result.run_id} tenants {keys[0]}..{keys[-1]}: {summary or 'no pass recorded'}")
        for row in passes:
            if row.status != "succeeded":
                click.echo(f"  {row.tenant}: {row.status}: {row.reason}", err=True)
            if row.status in ("failed", "held"):
                unfinished[row.tenant] = row.status
        if not result.success:
            failed_runs.append(result.run_id)
    if unfinished or failed_runs:
        named = ", ".join(f"{tenant} ({status})" for tenant, status in unfinished.items())
        fail(f"not every tenant went through: {named or 'run(s) ' + ', '.join(failed_runs) + ' failed'}", code=1)


@tenants.command("accept-drop")
@click.argument("tenant")
@click.option("--reason", required=True, help="Why the drop is real (kept in the ledger).")
@expected_errors
def tenants_accept_drop(tenant: str, reason: str) -> None:
    """Let the tenant's next pass through the empty-sync guard: its current snapshot becomes the baseline."""
    from mspbyte_dagster.lib.guard import accept_drop

    if not reason.strip():
        fail("--reason must say why the drop is real")
    counts = accept_drop(app_engine(), tenant, reason.strip())
    click.echo(f"{tenant}: drop accepted ({counts['users']} users, {counts['enabled_policies']} enabled policies)")
