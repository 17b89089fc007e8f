"""Microsoft 365 as an integration: its files, entity types and guard, as the adapter contract asks."""

from __future__ import annotations

from collections import defaultdict
from typing import TYPE_CHECKING

from mspbyte_dagster.lib.adapters.base import EntitySource, Integration, SubResource
from mspbyte_dagster.lib.adapters.microsoft365 import files, guard
from mspbyte_dagster.lib.model import M365_DATA_SOURCE, MICROSOFT365

if TYPE_CHECKING:
    from mspbyte_dagster.lib.adapters.snapshot_files import Snapshot

ENTITY_SOURCES = {
    "user": EntitySource("users", "id", "displayName", volatile=("signInActivity",)),
    "group": EntitySource("groups", "id", "displayName"),
    "role": EntitySource("role_definitions", "id", "displayName"),
    "policy": EntitySource(
        "conditional_access_policies", "id", "displayName", volatile=("modifiedDateTime", "createdDateTime")
    ),
    "sku": EntitySource("subscribed_skus", "skuId", "skuPartNumber"),
}
SUB_RESOURCES = (
    SubResource("group", "group_members", "members", listed=True),
    SubResource("role", "role_assignments", "assignments", listed=True),
    SubResource("role", "role_eligibilities", "eligibilities", listed=True),
    SubResource("user", "user_registration_details", "registration"),
    SubResource("tenant", "security_defaults", "securityDefaults"),
)


def owners(snapshot: Snapshot, stem: str) -> dict[str, object]:
    """A sub-resource file as {owner id: value}."""
    content = snapshot.files[stem]
    if stem == "group_members":
        return content
    if stem in ("role_assignments", "role_eligibilities"):
        by_role = defaultdict(list)
        for assignment in content:
            by_role[assignment["roleDefinitionId"]].append(assignment)
        return by_role
    if stem == "security_defaults":
        return {snapshot.key: content}
    return {record["id"]: record for record in content}


INTEGRATION = Integration(
    name=MICROSOFT365,
    source_id=M365_DATA_SOURCE,
    data_files=files.DATA_FILES,
    content_problems=files.content_problems,
    count=files.count,
    entity_sources=ENTITY_SOURCES,
    sub_resources=SUB_RESOURCES,
    owners=owners,
    guard_counts=guard.guard_counts,
    hold_reason=guard.hold_reason,
)
