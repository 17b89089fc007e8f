"""`mspbyte synth` and `mspbyte tenants`: making, registering and listing tenants."""

from __future__ import annotations

import re
from pathlib import Path

import click

from mspbyte_dagster.cli.common import (
    app_engine,
    dagster_instance,
    dev_tool,
    echo_json,
    expected_errors,
    fail,
    main,
    settings,
)


@main.command()
@click.option("--tenants", "tenant_count", type=click.IntRange(1, 10_000), default=3, show_default=True)
@click.option("--users", type=click.IntRange(10, 50_000), default=100, show_default=True)
@click.option("--seed", type=int, default=1, show_default=True)
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), required=True)
@click.option(
    "--sources",
    default="m365",
    show_default=True,
    help="Data sources to generate, comma-separated (m365 always; e.g. m365,sophos: endpoints = users / 2).",
)
@expected_errors
def synth(tenant_count: int, users: int, seed: int, out: Path, sources: str) -> None:
    """Write deterministic synthetic tenant snapshots (same arguments, same bytes)."""
    chosen = [source.strip() for source in sources.split(",") if source.strip()]
    for folder in dev_tool("synthetic.sources", "synth").write_sources(out, tenant_count, users, seed, chosen):
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

    engine = app_engine()
    imported = import_folders(engine, list(folders))
    register_partitions([item.tenant for item in imported])
    if as_json:
        echo_json([item.as_json() for item in imported])
        return
    for item in imported:
        click.echo(f"{item.tenant}: snapshot {item.seq} ({item.counts.get('users', 0)} users) from {item.origin}")


@tenants.command("list")
@click.option("--json", "as_json", is_flag=True)
@expected_errors
def tenants_list(as_json: bool) -> None:
    """Registered tenants with their data sources and current snapshot."""
    from mspbyte_dagster.lib.store.tenants import list_tenants

    with app_engine(read_only=True).connect() as conn:
        rows = list_tenants(conn)
    if as_json:
        echo_json(rows)
        return
    for row in rows:
        click.echo(f"{row['tenant']}\t{row['name']!r}\tsnapshot {row['current_snapshot']}\t{row['captured_at']}")


@tenants.command("add")
@click.option("--tenant", "key", required=True, help="Tenant key (letters, digits, _ and -; a partition key).")
@click.option("--name", required=True, help="Display name; anything.")
@click.option("--azure-tenant-id", required=True, help="The customer's Directory (tenant) ID, a GUID.")
@click.option("--json", "as_json", is_flag=True)
@expected_errors
def tenants_add(key: str, name: str, azure_tenant_id: str, as_json: bool) -> None:
    """Register a tenant read from Microsoft Graph; prints the admin-consent URL its administrator must approve."""
    from mspbyte_dagster.lib.graph_sync import add_graph_tenant

    current = settings()
    if not current.graph_client_id:
        fail("GRAPH_CLIENT_ID is not set: the consent URL names the MSP's app registration (its Application ID)")
    added = add_graph_tenant(
        app_engine(),
        key,
        name,
        azure_tenant_id,
        client_id=current.graph_client_id,
        authority_host=current.graph_authority_host,
        consent_redirect_uri=current.graph_consent_redirect_uri,
    )
    register_partitions([added.tenant])
    if as_json:
        echo_json(added.as_json())
    else:
        click.echo(f"{added.tenant}: registered, read from Microsoft Graph (azure tenant {added.azure_tenant_id})")
        click.echo("The customer's administrator approves the app's permissions at:")
        click.echo(added.consent_url)
    if not current.graph_consent_redirect_uri:
        click.echo(
            "warning: GRAPH_CONSENT_REDIRECT_URI is not set: Entra refuses the consent (AADSTS500113) "
            "unless the app registration has a redirect URI",
            err=True,
        )


@tenants.command("add-source")
@click.argument("tenant")
@click.argument("integration")
@click.option(
    "--param",
    "params",
    multiple=True,
    metavar="NAME=VALUE",
    help="The integration's binding: the customer's id in its system.",
)
@expected_errors
def tenants_add_source(tenant: str, integration: str, params: tuple[str, ...]) -> None:
    """Link a registered tenant to its customer in another integration's source system (the generic form every
    integration but Microsoft 365 uses; its binding is then fixed)."""
    from mspbyte_dagster.lib.adapters.registry import DEFAULT, INTEGRATIONS
    from mspbyte_dagster.lib.onboarding import bind_source
    from mspbyte_dagster.lib.store import tenants as tenant_store

    found = INTEGRATIONS.get(integration)
    if found is None or found is DEFAULT:
        others = ", ".join(name for name, known in INTEGRATIONS.items() if known is not DEFAULT) or "none yet"
        fail(
            f"{integration!r} is no integration a source can be added for (Microsoft 365: `tenants add`); known: {others}"
        )
    # the binding by its tenant.json name (sophosTenantId) or in snake case (sophos_tenant_id)
    snake = re.sub(r"(?<!^)(?=[A-Z])", "_", found.binding).lower()
    given = {found.binding if name == snake else name: value for name, value in (p.partition("=")[::2] for p in params)}
    if set(given) != {found.binding} or not all(given.values()):
        fail(f"{integration} takes exactly --param {snake}=VALUE (or {found.binding}=VALUE)")
    with app_engine().begin() as conn:
        tenant_store.require_tenant(conn, tenant)
        bind_source(conn, tenant, found, given[found.binding], "api", "tenants add-source")
    click.echo(
        f"tenant {tenant}: {integration} data source {found.source_id} with {found.binding}={given[found.binding]}"
    )


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


@tenants.command("set-azure-id")
@click.argument("tenant")
@click.argument("azure_tenant_id")
@click.option("--reason", required=True, help="Why the customer moved (kept with the change).")
@expected_errors
def tenants_set_azure_id(tenant: str, azure_tenant_id: str, reason: str) -> None:
    """Bind a tenant to another Azure tenant: the one way a customer's snapshots may come from a new one."""
    from mspbyte_dagster.lib.model import azure_tenant_guid
    from mspbyte_dagster.lib.store.tenants import set_azure_tenant_id

    guid = azure_tenant_guid(azure_tenant_id)
    if not reason.strip():
        fail("--reason must say why the customer moved")
    with app_engine().begin() as conn:
        old = set_azure_tenant_id(conn, tenant, guid, reason.strip())
    click.echo(f"{tenant}: Azure tenant {old} -> {guid}")


@tenants.command("remove")
@click.argument("tenant")
@click.option("--confirm", metavar="TENANT", help="The tenant key again: without it, only what would go is shown.")
@click.option("--json", "as_json", is_flag=True)
@expected_errors
def tenants_remove(tenant: str, confirm: str | None, as_json: bool) -> None:
    """Offboard a customer: delete every row of the tenant (snapshots, entities, edges, findings, alerts and
    their events, ledger, leases, flag overrides, thresholds) in one transaction, and its partition."""
    from mspbyte_dagster.cli.flags import store
    from mspbyte_dagster.defs.partitions import TENANTS
    from mspbyte_dagster.lib.flag_store import FlagStoreUnavailable, RedisFlagStore
    from mspbyte_dagster.lib.flags import FLAGS
    from mspbyte_dagster.lib.offboarding import remove_tenant, tenant_rows
    from mspbyte_dagster.lib.store.lease import LeaseUnavailable

    engine = app_engine()
    with engine.connect() as conn:
        rows = tenant_rows(conn, tenant)
    if confirm is None:
        if as_json:
            echo_json({"tenant": tenant, "removed": False, "rows": rows})
            return
        click.echo(f"{tenant}: would delete {sum(rows.values())} row(s) and its partition:")
        for table, count in rows.items():
            click.echo(f"  {table:<24} {count}")
        click.echo(f"Run `mspbyte tenants remove {tenant} --confirm {tenant}` to delete them.")
        return
    if confirm != tenant:
        fail(f"--confirm {confirm!r} does not repeat the tenant key {tenant!r}: nothing was deleted")
    flags = store()

    def forget_overrides() -> None:  # with Redis down this stops the removal before anything is deleted
        for flag in FLAGS:
            flags.set_override(flag, tenant, None)

    try:
        deleted = remove_tenant(engine, tenant, forget_overrides if isinstance(flags, RedisFlagStore) else None)
    except (FlagStoreUnavailable, LeaseUnavailable) as error:
        fail(f"{tenant} was not removed: {error}", code=1)
    instance = dagster_instance()
    if tenant in instance.get_dynamic_partitions(TENANTS):
        instance.delete_dynamic_partition(TENANTS, tenant)
    if as_json:
        echo_json({"tenant": tenant, "removed": True, "rows": deleted})
        return
    click.echo(f"{tenant}: removed ({sum(deleted.values())} row(s) deleted, partition removed)")
