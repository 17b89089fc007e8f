"""Deterministic synthetic Microsoft 365 tenants in the docs/snapshot-format.md layout.

The pipeline, its benchmarks and demos need tenants of any size whose findings
are known in advance, without a Graph connection. The same (index, users, seed)
always gives the same bytes, and the four variants (``index % 4``) together make
every rule of docs/rules.md fire:

- 0 FULL_SETUP: all-users MFA with a break-glass exclusion, legacy auth blocked,
  role-, group- and app-scoped policies, a guest authentication strength, a
  session-only, a report-only and a disabled policy.
- 1 NOTHING_ENFORCED: only report-only and disabled policies, Security Defaults off.
- 2 SECURITY_DEFAULTS_ONLY: Security Defaults on, no CA policy, and no
  ``signInActivity`` on any user (a tenant without Entra ID P1).
- 3 WEAK_POLICIES: only partial or weak policies, legacy auth not blocked.
"""

from __future__ import annotations

import json
import random
import re
import uuid
from pathlib import Path

from mspbyte_dagster.lib.context import is_privileged
from mspbyte_dagster.lib.errors import InputError
from mspbyte_dagster.lib.model import TENANT_KEY_RE, is_tenant_key
from mspbyte_dev.synthetic.catalogue import (
    AU_SCOPED_ROLES,
    BREAK_GLASS_GROUP,
    BUILT_IN_ROLES,
    CONTRACTORS_GROUP,
    CUSTOM_ROLE_NAME,
    DISTRIBUTION,
    FIXED_GROUPS,
    FREE_ALLOWANCE,
    FULL_SETUP,
    GLOBAL_ADMINISTRATOR,
    GLOBAL_READER,
    HELPDESK_GROUP,
    NEWSLETTER_GROUP,
    NOTHING_ENFORCED,
    ROLE_ASSIGNABLE,
    SECURITY,
    SECURITY_DEFAULTS_ONLY,
    SKUS,
    TEAM_NAMES,
    TENANT_NAMES,
    UNIFIED,
    WEAK_POLICIES,
    GroupSpec,
    Sku,
)
from mspbyte_dev.synthetic.common import CAPTURED_AT, DAY, days, guid, timestamp
from mspbyte_dev.synthetic.policies import conditional_access_policies
from mspbyte_dev.synthetic.users import (
    ARCHETYPES,
    Profile,
    draw_user,
    random_profile,
    registration_record,
)

__all__ = [  # what the tests and the benchmark use
    "CAPTURED_AT",
    "FULL_SETUP",
    "GLOBAL_ADMINISTRATOR",
    "GLOBAL_READER",
    "NOTHING_ENFORCED",
    "SECURITY_DEFAULTS_ONLY",
    "WEAK_POLICIES",
    "generate_snapshot",
    "write_snapshots",
]

MIN_USERS = 10
MAX_USERS = 50_000


_USERS_PER_GROUP = 25


def tenant_key(seed: int, index: int) -> str:
    """The folder name and tenant id, checked so a seed too long for a key fails here, not at `tenants import`."""
    key = f"synth-{seed}-{index:03d}"
    if not is_tenant_key(key):
        raise InputError(f"tenant key {key!r} (seed={seed}, index={index}) does not match {TENANT_KEY_RE.pattern}")
    return key


def generate_snapshot(index: int, users: int, seed: int) -> dict[str, object]:
    """One tenant snapshot: {file stem: JSON-able content}, in SNAPSHOT_FILES order."""
    if not MIN_USERS <= users <= MAX_USERS:
        raise InputError(f"users={users}: a synthetic tenant holds {MIN_USERS} to {MAX_USERS} users")
    if index < 0:
        raise InputError(f"index={index}: tenant indexes start at 0")
    key = tenant_key(seed, index)
    rng = random.Random(f"mspbyte-synthetic:{seed}:{index}")  # noqa: S311 - reproducible made-up data
    variant = index % 4
    domain = f"synth{seed}t{index:03d}".replace("-", "m") + ".onmicrosoft.com"
    azure_tenant_id = guid(rng)

    group_specs = _group_specs(rng, max(len(FIXED_GROUPS), users // _USERS_PER_GROUP))
    profiles = list(ARCHETYPES) + [random_profile(rng, group_specs) for _ in range(users - len(ARCHETYPES))]
    has_p1 = variant != SECURITY_DEFAULTS_ONLY
    user_objects = [draw_user(rng, number, profile, domain, has_p1) for number, profile in enumerate(profiles)]
    groups = [_group(rng, name, kind) for name, kind, _ in group_specs]
    roles = _role_definitions(rng)
    registrations = [
        registration_record(rng, user, profile, _is_admin(profile, roles))
        for user, profile in zip(user_objects, profiles, strict=False)
        if profile.registration_record and profile.enabled  # Graph's report leaves disabled users out
    ]

    return {
        "tenant": {
            "id": key,
            "name": f"{TENANT_NAMES[index % len(TENANT_NAMES)]} #{index}",
            "azureTenantId": azure_tenant_id,
            "capturedAt": timestamp(0),
        },
        "users": user_objects,
        "groups": groups,
        "group_members": _group_members(groups, group_specs, user_objects, profiles),
        "role_definitions": roles,
        "role_assignments": _role_assignments(rng, user_objects, profiles, groups, roles),
        "role_eligibilities": _role_eligibilities(user_objects, profiles, roles),
        "conditional_access_policies": conditional_access_policies(rng, variant, user_objects, groups),
        "security_defaults": {
            "id": "00000000-0000-0000-0000-000000000000",
            "displayName": "Security Defaults",
            "isEnabled": variant == SECURITY_DEFAULTS_ONLY,
        },
        "subscribed_skus": _subscribed_skus(rng, azure_tenant_id, user_objects),
        "user_registration_details": registrations,
    }


def write_snapshots(out_dir: Path, tenants: int, users: int, seed: int) -> list[Path]:
    """Writes tenants folders <out_dir>/<tenant key>/<stem>.json and returns the folder paths."""
    if tenants < 1:
        raise InputError(f"tenants={tenants}: write at least one tenant")
    folders = []
    for index in range(tenants):
        snapshot = generate_snapshot(index, users, seed)
        folder = Path(out_dir) / tenant_key(seed, index)
        folder.mkdir(parents=True, exist_ok=True)
        for stem, content in snapshot.items():
            text = json.dumps(content, ensure_ascii=False, separators=(",", ":")) + "\n"
            (folder / f"{stem}.json").write_bytes(text.encode("utf-8"))
        folders.append(folder)
    return folders


def _group_specs(rng: random.Random, count: int) -> list[GroupSpec]:
    """The fixed groups, then drawn ones; a drawn group only nests under an earlier
    security group, so Alpha ⇄ Beta stays the only cycle."""
    specs = list(FIXED_GROUPS)
    nestable = [number for number, (_, kind, _) in enumerate(specs) if kind == SECURITY and number != BREAK_GLASS_GROUP]
    for number in range(len(specs), count):
        kind = rng.choices((SECURITY, UNIFIED, DISTRIBUTION), weights=(50, 35, 15))[0]
        parents: tuple[int, ...] = ()
        if kind == SECURITY:
            if rng.random() < 0.5:
                parents = (rng.choice(nestable),)
            nestable.append(number)
        specs.append((f"{rng.choice(TEAM_NAMES)} {number}", kind, parents))
    return specs


def _group(rng: random.Random, name: str, kind: str) -> dict[str, object]:
    mail_enabled = kind in (UNIFIED, DISTRIBUTION)
    nickname = re.sub(r"[^A-Za-z0-9]", "", name) or "group"
    return {
        "id": guid(rng),
        "displayName": name,
        "createdDateTime": timestamp(days(rng, 30, 2000)),
        "groupTypes": ["Unified"] if kind == UNIFIED else [],
        "isAssignableToRole": True if kind == ROLE_ASSIGNABLE else None,
        "mail": None if not mail_enabled else f"{nickname.lower()}@example.com",
        "mailEnabled": mail_enabled,
        "mailNickname": nickname,
        "securityEnabled": kind in (SECURITY, ROLE_ASSIGNABLE),
        # Marketing hides its membership: Graph answers it empty to an app without Member.Read.Hidden
        "visibility": ("HiddenMembership" if name.startswith("Marketing") else "Private") if kind == UNIFIED else None,
    }


def _group_members(
    groups: list[dict[str, object]],
    group_specs: list[GroupSpec],
    users: list[dict[str, object]],
    profiles: list[Profile],
) -> dict[str, list[dict[str, str]]]:
    """Direct members per group id: nested groups first, then users, as Graph pages them."""
    members: list[list[dict[str, str]]] = [[] for _ in groups]
    for number, (_, _, parents) in enumerate(group_specs):
        for parent in parents:
            members[parent].append({"@odata.type": "#microsoft.graph.group", "id": groups[number]["id"]})
    for number, odata_type in _NON_USER_MEMBERS:  # members that are no user: never analysed
        kind = odata_type.rsplit(".", 1)[1]
        member_id = str(uuid.uuid5(uuid.NAMESPACE_URL, f"{groups[number]['id']}/{kind}"))
        members[number].append({"@odata.type": odata_type, "id": member_id})
    for user, profile in zip(users, profiles, strict=False):
        for number in profile.groups:
            members[number].append({"@odata.type": "#microsoft.graph.user", "id": user["id"]})
    return {group["id"]: direct for group, direct in zip(groups, members, strict=False)}


_NON_USER_MEMBERS = (
    (HELPDESK_GROUP, "#microsoft.graph.servicePrincipal"),
    (CONTRACTORS_GROUP, "#microsoft.graph.device"),
    (NEWSLETTER_GROUP, "#microsoft.graph.orgContact"),
)


def _role_definitions(rng: random.Random) -> list[dict[str, object]]:
    """Built-ins carry id == templateId as Graph returns them; the custom role does not."""
    definitions: list[dict[str, object]] = []
    for role in BUILT_IN_ROLES:
        definitions.append(
            {
                "id": role.template_id,
                "displayName": role.name,
                "isBuiltIn": True,
                "isEnabled": True,
                "templateId": role.template_id,
            }
        )
    custom_id = guid(rng)
    definitions.append(
        {
            "id": custom_id,
            "displayName": CUSTOM_ROLE_NAME,
            "isBuiltIn": False,
            "isEnabled": True,
            "templateId": custom_id,
        }
    )
    return definitions


def _role_named(roles: list[dict[str, object]], name: str) -> dict[str, object]:
    return next(role for role in roles if role["displayName"] == name)


def _is_admin(profile: Profile, roles: list[dict[str, object]]) -> bool:
    """Holds a privileged role directly or through the role-assignable group (which nests no groups)."""
    if HELPDESK_GROUP in profile.groups:
        return True
    return profile.direct_role is not None and is_privileged(_role_named(roles, profile.direct_role))


def _role_assignments(
    rng: random.Random,
    users: list[dict[str, object]],
    profiles: list[Profile],
    groups: list[dict[str, object]],
    roles: list[dict[str, object]],
) -> list[dict[str, object]]:
    administrative_unit = f"/administrativeUnits/{guid(rng)}"
    held = [
        (user["id"], profile.direct_role, administrative_unit if profile.direct_role in AU_SCOPED_ROLES else "/")
        for user, profile in zip(users, profiles, strict=False)
        if profile.direct_role
    ]
    held.append((groups[HELPDESK_GROUP]["id"], "Helpdesk Administrator", "/"))
    return [
        {
            "id": guid(rng),
            "principalId": principal_id,
            "roleDefinitionId": _role_named(roles, role_name)["id"],
            "directoryScopeId": scope,
        }
        for principal_id, role_name, scope in held
    ]


def _role_eligibilities(
    users: list[dict[str, object]], profiles: list[Profile], roles: list[dict[str, object]]
) -> list[dict[str, object]]:
    """PIM eligibility schedule instances (ids derived, so the other draws stay as they were)."""
    return [
        {
            "id": str(uuid.uuid5(uuid.NAMESPACE_URL, f"eligibility/{user['id']}")),
            "principalId": user["id"],
            "roleDefinitionId": _role_named(roles, profile.eligible_role)["id"],
            "directoryScopeId": "/",
            "memberType": "Direct",
            "startDateTime": timestamp(90 * DAY),
            "endDateTime": None,
        }
        for user, profile in zip(users, profiles, strict=False)
        if profile.eligible_role
    ]


def _subscribed_skus(
    rng: random.Random, azure_tenant_id: str, users: list[dict[str, object]]
) -> list[dict[str, object]]:
    """consumedUnits counts every holder, disabled users included."""
    holders = {sku.sku_id: 0 for sku in SKUS}
    for user in users:
        for licence in user["assignedLicenses"]:
            holders[licence["skuId"]] += 1
    return [
        {
            "accountId": azure_tenant_id,
            "appliesTo": "User",
            "capabilityStatus": "Warning" if sku.purchase == "lapsing" else "Enabled",
            "consumedUnits": holders[sku.sku_id],
            "id": f"{azure_tenant_id}_{sku.sku_id}",
            "prepaidUnits": _prepaid_units(sku, holders[sku.sku_id]),
            "skuId": sku.sku_id,
            "skuPartNumber": sku.part_number,
            "subscriptionIds": [guid(rng)],
        }
        for sku in SKUS
    ]


def _prepaid_units(sku: Sku, consumed: int) -> dict[str, int]:
    units = {"enabled": consumed, "suspended": 0, "warning": 0, "lockedOut": 0}
    if sku.purchase == "under_used":
        units["enabled"] = consumed + max(1, consumed // 20)
    elif sku.purchase == "over_used":
        units["enabled"] = max(0, consumed - max(1, consumed // 10))
    elif sku.purchase == "free":
        units["enabled"] = FREE_ALLOWANCE[sku.part_number]
    elif sku.purchase == "lapsing":
        units.update(enabled=3, warning=2)
    return units
