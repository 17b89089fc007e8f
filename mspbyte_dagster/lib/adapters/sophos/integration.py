"""Sophos Central as an integration (docs/snapshot-format-sophos.md): endpoints, firewalls and
firewall licences, the firmware upgrade check on its firewall, and the guard on endpoints."""

from __future__ import annotations

from typing import TYPE_CHECKING

from mspbyte_dagster.lib.adapters.base import EntitySource, Integration, Setting, SubResource
from mspbyte_dagster.lib.adapters.sophos import files
from mspbyte_dagster.lib.adapters.sophos.analysis import ALERT_TYPES, endpoint_findings, firewall_findings
from mspbyte_dagster.lib.adapters.sophos.client import connect
from mspbyte_dagster.lib.adapters.sophos.linking import SophosLinker

if TYPE_CHECKING:
    from mspbyte_dagster.lib.adapters.snapshot_files import Snapshot

MIN_ENDPOINTS_FOR_DROP_CHECK = 20


def refresh(engine, tenant: str, *, connect) -> dict | None:
    """The source read from Sophos Central (imported here: the reader's snapshots ask the registration)."""
    from mspbyte_dagster.lib.adapters.sophos.sync import refresh_sophos_snapshot

    return refresh_sophos_snapshot(engine, tenant, connect=connect)


def licences(content: list[dict]) -> list[dict]:
    """One entity per licence of a firewall, keyed `<firewall serial>:<licence id>`."""
    return [
        licence
        | {
            "firewallSerialNumber": item["serialNumber"],
            "licenseKey": f"{item['serialNumber']}:{licence.get('id') or licence.get('licenseIdentifier') or index}",
        }
        for item in content
        for index, licence in enumerate(item.get("licenses") or [])
    ]


def owners(snapshot: Snapshot, stem: str) -> dict[str, object]:
    """firewall_upgrades: each firewall's upgrade check, by firewall id."""
    return {check["id"]: check for check in snapshot.files[stem]["firewalls"]}


def count(stem: str, content: object) -> int:
    return len(content["firewalls"]) if stem == files.FIREWALL_UPGRADES else len(content)


def guard_counts(snapshot: Snapshot) -> dict:
    endpoints = snapshot.files.get(files.ENDPOINTS)
    return {"endpoints": len(endpoints) if endpoints is not None else None}


def hold_reason(baseline: dict | None, current: dict) -> str | None:
    """Endpoints fell below half of a previous count of at least 20."""
    before, now = (baseline or {}).get("endpoints"), current["endpoints"]
    if before is not None and now is not None and before >= MIN_ENDPOINTS_FOR_DROP_CHECK and now < before / 2:
        return f"endpoints fell from {before} to {now} (below half of the previous successful sync)"
    return None


INTEGRATION = Integration(
    name=files.INTEGRATION,
    source_id=files.INTEGRATION,
    data_files=files.DATA_FILES,
    content_problems=files.content_problems,
    count=count,
    entity_sources={
        "endpoint": EntitySource(files.ENDPOINTS, "id", "hostname", volatile=("lastSeenAt",)),
        "firewall": EntitySource(files.FIREWALLS, "id", "hostname"),
        "firewall_license": EntitySource(files.FIREWALL_LICENSES, "licenseKey", "licenseIdentifier", items=licences),
    },
    sub_resources=(SubResource("firewall", files.FIREWALL_UPGRADES, "upgradeCheck"),),
    owners=owners,
    binding="sophosTenantId",
    linker=SophosLinker,
    analyses=(endpoint_findings, firewall_findings),
    alert_types=ALERT_TYPES,
    settings=(  # the partner's API credential, and where Central is (tests point these at the local one)
        Setting("SOPHOS_CLIENT_ID"),
        Setting("SOPHOS_CLIENT_SECRET", secret=True),
        Setting("SOPHOS_AUTH_URL", "https://id.sophos.com", url=True),
        Setting("SOPHOS_GLOBAL_URL", "https://api.central.sophos.com", url=True),
    ),
    connect=connect,
    refresh=refresh,
    guard_counts=guard_counts,
    hold_reason=hold_reason,
)
