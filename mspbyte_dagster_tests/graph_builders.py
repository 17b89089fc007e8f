"""Directory builders (groups, roles, CA policies, licences) in docs/snapshot-format.md, and edges read back.

Snapshots for the linker's rules stay a few lines long: `directory(...)` fills
in every file, so a test names only the objects its rule is about.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import aliased

from mspbyte_dagster.lib.store.schema import entities, entity_relationships
from mspbyte_dagster_tests.snapshots import tenant_doc, user

USER_MEMBER = "#microsoft.graph.user"
GROUP_MEMBER = "#microsoft.graph.group"
Edge = tuple[str, str, str]  # (relationship type, parent external id, child external id)


def users(*ids: str, **fields) -> list[dict]:
    return [user(user_id, **fields) for user_id in ids]


def licensed(user_id: str, *sku_ids: str, **fields) -> dict:
    return user(user_id, assignedLicenses=[{"skuId": sku, "disabledPlans": []} for sku in sku_ids], **fields)


def users_in(*ids: str) -> list[dict]:
    """Direct user members, as `group_members.json` lists them."""
    return [{"@odata.type": USER_MEMBER, "id": user_id} for user_id in ids]


def groups_in(*ids: str) -> list[dict]:
    """Nested groups, as `group_members.json` lists them."""
    return [{"@odata.type": GROUP_MEMBER, "id": group_id} for group_id in ids]


def role(role_id: str, template_id: str | None = None, name: str = "Helpdesk Administrator") -> dict:
    return {
        "id": role_id,
        "displayName": name,
        "templateId": template_id or role_id,
        "isBuiltIn": True,
        "isPrivileged": True,
    }


def assignment(principal_id: str, role_id: str) -> dict:
    return {
        "id": f"{role_id}-{principal_id}",
        "principalId": principal_id,
        "roleDefinitionId": role_id,
        "directoryScopeId": "/",
    }


def policy(policy_id: str, state: str = "enabled", **targets: list[str]) -> dict:
    """An MFA policy for all apps whose `conditions.users` are `targets` (includeUsers=[...], ...)."""
    return {
        "id": policy_id,
        "displayName": f"Policy {policy_id}",
        "state": state,
        "conditions": {"users": targets, "applications": {"includeApplications": ["All"]}, "clientAppTypes": ["all"]},
        "grantControls": {"operator": "OR", "builtInControls": ["mfa"]},
    }


def sku(sku_id: str) -> dict:
    return {"skuId": sku_id, "skuPartNumber": f"SKU_{sku_id}", "consumedUnits": 1, "prepaidUnits": {"enabled": 25}}


def directory(
    members: list[dict],
    groups: dict[str, list[dict]] | None = None,
    roles: list[dict] = (),
    assignments: list[dict] = (),
    policies: list[dict] = (),
    skus: list[dict] = (),
    key: str = "contoso",
    eligible: list[dict] = (),
) -> dict[str, object]:
    """A complete snapshot of tenant `key`: `groups` maps each group id to its direct members."""
    groups = groups or {}
    return {
        "tenant": tenant_doc(key),
        "users": list(members),
        "groups": [
            {"id": gid, "displayName": f"Group {gid}", "securityEnabled": True, "mailEnabled": False} for gid in groups
        ],
        "group_members": {gid: list(direct) for gid, direct in groups.items()},
        "role_definitions": list(roles),
        "role_assignments": list(assignments),
        "role_eligibilities": list(eligible),
        "conditional_access_policies": list(policies),
        "security_defaults": {"id": "sd", "isEnabled": False},
        "subscribed_skus": list(skus),
        "user_registration_details": [],
    }


def edges(engine, tenant: str = "contoso") -> dict[Edge, dict]:
    """The tenant's stored edges by external ids, with their details."""
    parent, child = aliased(entities), aliased(entities)
    with engine.connect() as conn:
        rows = conn.execute(
            select(
                entity_relationships.c.relationship_type,
                parent.c.external_id,
                child.c.external_id,
                entity_relationships.c.details,
            )
            .join(parent, parent.c.id == entity_relationships.c.parent_id)
            .join(child, child.c.id == entity_relationships.c.child_id)
            .where(entity_relationships.c.tenant == tenant)
        )
        return {(kind, parent_id, child_id): details or {} for kind, parent_id, child_id, details in rows}


def linked(engine, kind: str, parent_id: str | None = None, tenant: str = "contoso") -> set:
    """Edges of one type as (parent, child) pairs, or the children of one parent."""
    pairs = {(p, c) for (k, p, c) in edges(engine, tenant) if k == kind}
    return pairs if parent_id is None else {c for (p, c) in pairs if p == parent_id}
