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
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from mspbyte_dagster.lib.context import is_privileged
from mspbyte_dagster.lib.errors import InputError
from mspbyte_dagster.lib.model import TENANT_KEY_RE, is_tenant_key

CAPTURED_AT = datetime(2026, 11, 1, tzinfo=UTC)
MIN_USERS = 10
MAX_USERS = 50_000

FULL_SETUP, NOTHING_ENFORCED, SECURITY_DEFAULTS_ONLY, WEAK_POLICIES = range(4)

_DAY = 86_400
_USERS_PER_GROUP = 25

# --- roles -------------------------------------------------------------------

GLOBAL_ADMINISTRATOR = "62e90394-69f5-4237-9190-012177145e10"
USER_ADMINISTRATOR = "fe930be7-5e62-47db-91af-98c3a49a38b1"
HELPDESK_ADMINISTRATOR = "729827e3-9c14-49f7-bb1b-9608f156bbb8"
EXCHANGE_ADMINISTRATOR = "29232cdf-9323-42fd-ade2-1d097af3e4de"
SECURITY_READER = "5d6b6bb7-de71-4623-b4af-96380a352509"
GLOBAL_READER = "f2ef992c-3afb-46b9-b7cf-a126ee74c451"
MESSAGE_CENTER_READER = "790c1fb9-7f7d-4f88-86a1-ef1f95c05c1b"
DIRECTORY_SYNCHRONIZATION_ACCOUNTS = "d29b2b05-8046-44ba-8758-1e26182fcf32"
CUSTOM_ROLE_NAME = "Ticket Viewer (custom)"


@dataclass(frozen=True)
class _BuiltInRole:
    name: str
    template_id: str


# As Graph v1.0 serves them: no isPrivileged. Global Reader and Security Reader are privileged by
# Microsoft's list alone; Exchange Administrator (not on it) by its name.
_BUILT_IN_ROLES = (
    _BuiltInRole("Global Administrator", GLOBAL_ADMINISTRATOR),
    _BuiltInRole("User Administrator", USER_ADMINISTRATOR),
    _BuiltInRole("Helpdesk Administrator", HELPDESK_ADMINISTRATOR),
    _BuiltInRole("Exchange Administrator", EXCHANGE_ADMINISTRATOR),
    _BuiltInRole("Security Reader", SECURITY_READER),
    _BuiltInRole("Global Reader", GLOBAL_READER),
    _BuiltInRole("Message Center Reader", MESSAGE_CENTER_READER),
    _BuiltInRole("Directory Synchronization Accounts", DIRECTORY_SYNCHRONIZATION_ACCOUNTS),
)
_DRAWN_ROLES = (
    "Global Administrator",
    "User Administrator",
    "Helpdesk Administrator",
    "Exchange Administrator",
    "Security Reader",
    "Global Reader",
    "Message Center Reader",
    CUSTOM_ROLE_NAME,
)
# Delegated helpdesk work is scoped to an administrative unit; "any scope" counts.
_AU_SCOPED_ROLES = frozenset({"User Administrator", "Helpdesk Administrator"})

# --- licences ----------------------------------------------------------------

ENTERPRISEPACK = "ENTERPRISEPACK"
SPB = "SPB"
EMS = "EMS"
POWER_BI_STANDARD = "POWER_BI_STANDARD"
FLOW_FREE = "FLOW_FREE"
VISIOCLIENT = "VISIOCLIENT"


@dataclass(frozen=True)
class _Sku:
    part_number: str
    sku_id: str
    purchase: str  # under_used | fully_used | over_used | free | lapsing


_SKUS = (
    _Sku(ENTERPRISEPACK, "6fd2c87f-b296-42f0-b197-1e91e994b900", "under_used"),
    _Sku(SPB, "cbdc14ab-d96c-4c30-b9f4-6ada7cdc1d46", "fully_used"),
    _Sku(EMS, "efccb6f7-5641-4e0e-bd10-b4976e1bf68e", "over_used"),
    _Sku(POWER_BI_STANDARD, "a403ebcc-fae0-4ca2-8c8c-7a907fd6c235", "free"),
    _Sku(FLOW_FREE, "f30db892-07e9-47e9-837c-80727f46fd3d", "free"),
    _Sku(VISIOCLIENT, "c5928f49-12ba-48f7-ada3-0d743a3601d5", "lapsing"),
)
_SKU_IDS = {sku.part_number: sku.sku_id for sku in _SKUS}
# Free and viral skus come with a huge allowance that license_unused skips.
_FREE_ALLOWANCE = {POWER_BI_STANDARD: 1_000_000, FLOW_FREE: 10_000}

# --- groups ------------------------------------------------------------------

SECURITY, ROLE_ASSIGNABLE, UNIFIED, DISTRIBUTION = "security", "role_assignable", "unified", "distribution"

BREAK_GLASS_GROUP, HELPDESK_GROUP, ALL_STAFF_GROUP, SALES_GROUP = 0, 1, 2, 3
SALES_EMEA_GROUP, SALES_MUNICH_GROUP, PROJECT_ALPHA_GROUP, PROJECT_BETA_GROUP = 4, 5, 6, 7
CONTRACTORS_GROUP, MARKETING_GROUP, NEWSLETTER_GROUP = 8, 9, 10

# (displayName, kind, parent groups): a group is a direct member of its parents.
_GroupSpec = tuple[str, str, tuple[int, ...]]
# Alpha and Beta hold each other: the one membership cycle of every tenant.
_FIXED_GROUPS: tuple[_GroupSpec, ...] = (
    ("Break-glass accounts", SECURITY, ()),
    ("Helpdesk Admins", ROLE_ASSIGNABLE, ()),
    ("All Staff", SECURITY, ()),
    ("Sales", SECURITY, (ALL_STAFF_GROUP,)),
    ("Sales – EMEA", SECURITY, (SALES_GROUP,)),
    ("Sales – München", SECURITY, (SALES_EMEA_GROUP,)),
    ("Project Ålpha & <Beta>", SECURITY, (ALL_STAFF_GROUP, PROJECT_BETA_GROUP)),
    ('Project "Beta"', SECURITY, (PROJECT_ALPHA_GROUP,)),
    ("Contractors", SECURITY, ()),
    ("Marketing Q4 – Kampagne", UNIFIED, ()),
    ("Newsletter <intern>", DISTRIBUTION, ()),
)
_TEAM_NAMES = ("Finance", "Équipe Lyon", "R&D <Labs>", "Support", "IT", "Einkauf", "Ops 'Nord'", "設計チーム")

# --- users -------------------------------------------------------------------

RECENT, STALE, NON_INTERACTIVE, BACKGROUND, NEVER_OLD, NEVER_NEW = (
    "recent",
    "stale",
    "non_interactive",
    "background",
    "never_old",
    "never_new",
)
_FIRST_NAMES = (
    "Anna",
    "José",
    "Zoë",
    "Łukasz",
    "Søren",
    "François",
    "Aiko",
    "Mohammed",
    "Seán",
    "Priya",
    "Björn",
    "Chloé",
)
_LAST_NAMES = (
    "Müller",
    "O'Brien",
    "García",
    "Nguyễn",
    "Kowalski",
    "Smith",
    "李",
    "Øvergaard",
    'de "la" Cruz',
    "Dubois",
)
_PARTNER_DOMAINS = ("fabrikam.com", "northwind.example", "adatum.net")
_MFA_METHOD_SETS = (
    ("microsoftAuthenticatorPush", "softwareOneTimePasscode"),
    ("microsoftAuthenticatorPush",),
    ("mobilePhone",),
    ("fido2", "microsoftAuthenticatorPush"),
    ("windowsHelloForBusiness",),
)


@dataclass(frozen=True)
class _Profile:
    """What a user is, decided before their Graph objects are drawn."""

    guest: bool = False
    enabled: bool = True
    sign_in: str = RECENT
    skus: tuple[str, ...] = ()
    direct_role: str | None = None
    groups: tuple[int, ...] = ()
    mfa_registered: bool = True
    registration_record: bool = True
    eligible_role: str | None = None  # PIM: may activate it, holds it not


# The first users of every tenant, so that even 10 users show every case.
_ARCHETYPES = (
    # 0 break-glass Global Administrator, excluded from the MFA policies through its group
    _Profile(skus=(ENTERPRISEPACK, EMS), direct_role="Global Administrator", groups=(BREAK_GLASS_GROUP,)),
    # 1 stale, licensed admin by an administrative-unit-scoped assignment
    _Profile(sign_in=STALE, skus=(ENTERPRISEPACK,), direct_role="User Administrator", groups=(SALES_GROUP,)),
    # 2 admin only through the role-assignable group, MFA not registered
    _Profile(skus=(SPB,), groups=(HELPDESK_GROUP, SALES_EMEA_GROUP), mfa_registered=False),
    # 3 and 4 guests, one of them stale
    _Profile(guest=True, groups=(MARKETING_GROUP,)),
    _Profile(guest=True, sign_in=STALE, groups=(MARKETING_GROUP,)),
    # 5 disabled user still holding a licence
    _Profile(enabled=False, sign_in=STALE, skus=(ENTERPRISEPACK,), groups=(SALES_MUNICH_GROUP,)),
    # 6 never signed in, created long ago, licensed, eligible (PIM) for Global Administrator;
    # 7 never signed in, new, without a registration record
    _Profile(
        sign_in=NEVER_OLD,
        skus=(SPB, POWER_BI_STANDARD),
        groups=(PROJECT_ALPHA_GROUP,),
        eligible_role="Global Administrator",
    ),
    _Profile(sign_in=NEVER_NEW, groups=(PROJECT_BETA_GROUP,), registration_record=False),
    # 8 non-interactive sign-ins only; admin only because the role's displayName says so
    _Profile(
        sign_in=NON_INTERACTIVE,
        skus=(ENTERPRISEPACK, FLOW_FREE),
        direct_role="Exchange Administrator",
        groups=(CONTRACTORS_GROUP,),
    ),
    # 9 stale, unlicensed, holds only the non-privileged custom role
    _Profile(sign_in=STALE, direct_role=CUSTOM_ROLE_NAME, groups=(CONTRACTORS_GROUP,), mfa_registered=False),
)
BREAK_GLASS_USER, PILOT_USERS = 0, (6, 9)

# --- conditional access ------------------------------------------------------

EXCHANGE_ONLINE_APP = "00000002-0000-0ff1-ce00-000000000000"
AZURE_MANAGEMENT_APP = "797f4846-ba00-4fd7-ba43-dac1f8f63013"
LEGACY_CLIENTS = ("exchangeActiveSync", "other")
ADMIN_ROLES = (GLOBAL_ADMINISTRATOR, USER_ADMINISTRATOR, HELPDESK_ADMINISTRATOR, EXCHANGE_ADMINISTRATOR)
# Built-in authentication strengths as Graph serves them in a policy: each satisfies MFA.
_PHISHING_RESISTANT = {
    "id": "00000000-0000-0000-0000-000000000004",
    "displayName": "Phishing-resistant MFA",
    "policyType": "builtIn",
    "requirementsSatisfied": "mfa",
}
_MFA_STRENGTH = {
    "id": "00000000-0000-0000-0000-000000000002",
    "displayName": "Multifactor authentication",
    "policyType": "builtIn",
    "requirementsSatisfied": "mfa",
}
_ALL_GUEST_TYPES = {
    "guestOrExternalUserTypes": "internalGuest,b2bCollaborationGuest,b2bCollaborationMember,"
    "b2bDirectConnectUser,otherExternalUser,serviceProvider",
    "externalTenants": {"@odata.type": "#microsoft.graph.conditionalAccessAllExternalTenants", "membershipKind": "all"},
}

_TENANT_NAMES = (
    "Müller & Söhne GmbH",
    'Café "Zürich" <Holding> AG',
    "O'Neill & Partners — 東京",
    "Ørsted Bygg & Anlegg AS",
)


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
    azure_tenant_id = _guid(rng)

    group_specs = _group_specs(rng, max(len(_FIXED_GROUPS), users // _USERS_PER_GROUP))
    profiles = list(_ARCHETYPES) + [_random_profile(rng, group_specs) for _ in range(users - len(_ARCHETYPES))]
    has_p1 = variant != SECURITY_DEFAULTS_ONLY
    user_objects = [_user(rng, number, profile, domain, has_p1) for number, profile in enumerate(profiles)]
    groups = [_group(rng, name, kind) for name, kind, _ in group_specs]
    roles = _role_definitions(rng)
    registrations = [
        _registration(rng, user, profile, _is_admin(profile, roles))
        for user, profile in zip(user_objects, profiles, strict=False)
        if profile.registration_record and profile.enabled  # Graph's report leaves disabled users out
    ]

    return {
        "tenant": {
            "id": key,
            "name": f"{_TENANT_NAMES[index % len(_TENANT_NAMES)]} #{index}",
            "azureTenantId": azure_tenant_id,
            "capturedAt": _timestamp(0),
        },
        "users": user_objects,
        "groups": groups,
        "group_members": _group_members(groups, group_specs, user_objects, profiles),
        "role_definitions": roles,
        "role_assignments": _role_assignments(rng, user_objects, profiles, groups, roles),
        "role_eligibilities": _role_eligibilities(user_objects, profiles, roles),
        "conditional_access_policies": _policies(rng, variant, user_objects, groups),
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


# --- helpers -----------------------------------------------------------------


def _guid(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def _timestamp(age_seconds: int) -> str:
    return (CAPTURED_AT - timedelta(seconds=age_seconds)).strftime("%Y-%m-%dT%H:%M:%SZ")


def _days(rng: random.Random, low: int, high: int) -> int:
    """An age in seconds between low and high days."""
    return rng.randint(low * _DAY, high * _DAY)


def _group_specs(rng: random.Random, count: int) -> list[_GroupSpec]:
    """The fixed groups, then drawn ones; a drawn group only nests under an earlier
    security group, so Alpha ⇄ Beta stays the only cycle."""
    specs = list(_FIXED_GROUPS)
    nestable = [number for number, (_, kind, _) in enumerate(specs) if kind == SECURITY and number != BREAK_GLASS_GROUP]
    for number in range(len(specs), count):
        kind = rng.choices((SECURITY, UNIFIED, DISTRIBUTION), weights=(50, 35, 15))[0]
        parents: tuple[int, ...] = ()
        if kind == SECURITY:
            if rng.random() < 0.5:
                parents = (rng.choice(nestable),)
            nestable.append(number)
        specs.append((f"{rng.choice(_TEAM_NAMES)} {number}", kind, parents))
    return specs


def _random_profile(rng: random.Random, group_specs: list[_GroupSpec]) -> _Profile:
    guest = rng.random() < 0.05
    enabled = rng.random() >= 0.08
    sign_in = rng.choices(
        (RECENT, STALE, NON_INTERACTIVE, BACKGROUND, NEVER_OLD, NEVER_NEW), weights=(72, 10, 6, 4, 4, 4)
    )[0]
    return _Profile(
        guest=guest,
        enabled=enabled,
        sign_in=sign_in,
        skus=() if guest else _drawn_skus(rng, enabled, sign_in),
        direct_role=rng.choice(_DRAWN_ROLES) if rng.random() < 0.003 else None,
        groups=_drawn_groups(rng, guest, group_specs),
        mfa_registered=rng.random() >= 0.15,
        registration_record=rng.random() >= 0.05,
    )


def _drawn_skus(rng: random.Random, enabled: bool, sign_in: str) -> tuple[str, ...]:
    """Most members hold a suite; disabled and dormant accounts often keep theirs."""
    dormant = sign_in in (STALE, NEVER_OLD, NEVER_NEW)
    if rng.random() >= (0.85 if not enabled else 0.7 if dormant else 0.97):
        return ()
    skus = [ENTERPRISEPACK if rng.random() < 0.6 else SPB]
    if skus[0] == ENTERPRISEPACK and rng.random() < 0.2:
        skus.append(EMS)
    if rng.random() < 0.25:
        skus.append(POWER_BI_STANDARD)
    if rng.random() < 0.08:
        skus.append(FLOW_FREE)
    return tuple(skus)


def _drawn_groups(rng: random.Random, guest: bool, group_specs: list[_GroupSpec]) -> tuple[int, ...]:
    """Members get a home security group (maybe outside All Staff) and sometimes a
    mail group; guests only join collaboration groups."""
    count = len(group_specs)
    if guest:
        number = rng.randrange(MARKETING_GROUP, count)
        return (number,) if group_specs[number][1] == UNIFIED and rng.random() < 0.5 else ()
    home = rng.randrange(SALES_GROUP, count)
    while group_specs[home][1] != SECURITY:
        home = rng.randrange(SALES_GROUP, count)
    extra = rng.randrange(MARKETING_GROUP, count)
    if rng.random() < 0.25 and group_specs[extra][1] in (UNIFIED, DISTRIBUTION):
        return (home, extra)
    return (home,)


def _user(rng: random.Random, number: int, profile: _Profile, domain: str, has_p1: bool) -> dict[str, object]:
    """A Graph user; signInActivity only exists in tenants with Entra ID P1/P2."""
    display_name = f"{rng.choice(_FIRST_NAMES)} {rng.choice(_LAST_NAMES)}"
    if number == BREAK_GLASS_USER:
        display_name = "Emergency Access (break-glass)"
    if profile.guest:
        principal_name = f"user{number}_{rng.choice(_PARTNER_DOMAINS)}#EXT#@{domain}"
    else:
        principal_name = f"user{number}@{domain}"
    interactive, non_interactive, created = _sign_in_ages(rng, profile.sign_in)
    user: dict[str, object] = {
        "id": _guid(rng),
        "displayName": display_name,
        "userPrincipalName": principal_name,
        "accountEnabled": profile.enabled,
        "userType": "Guest" if profile.guest else "Member",
        "createdDateTime": _timestamp(created),
        "assignedLicenses": [{"skuId": _SKU_IDS[sku], "disabledPlans": []} for sku in profile.skus],
        "onPremisesSyncEnabled": True if not profile.guest and rng.random() < 0.3 else None,
    }
    if has_p1:
        ages = [age for age in (interactive, non_interactive) if age is not None]
        user["signInActivity"] = {
            "lastSignInDateTime": None if interactive is None else _timestamp(interactive),
            "lastNonInteractiveSignInDateTime": None if non_interactive is None else _timestamp(non_interactive),
            "lastSuccessfulSignInDateTime": _timestamp(min(ages)) if ages else None,
        }
    return user


def _sign_in_ages(rng: random.Random, kind: str) -> tuple[int | None, int | None, int]:
    """(interactive, non-interactive, created) ages in seconds before capturedAt.

    Stale ages start at 120 days and recent ones end at 30, well clear of the
    default 90-day threshold, so a threshold test never hinges on a second.
    """
    interactive: int | None = None
    non_interactive: int | None = None
    if kind == RECENT:
        interactive = _days(rng, 0, 30)
        non_interactive = _days(rng, 0, 7) if rng.random() < 0.7 else None
    elif kind == STALE:
        interactive = _days(rng, 120, 700)
        non_interactive = interactive - _days(rng, 0, 20) if rng.random() < 0.6 else None
    elif kind == NON_INTERACTIVE:
        non_interactive = _days(rng, 0, 20)
    elif kind == BACKGROUND:
        interactive, non_interactive = _days(rng, 120, 400), _days(rng, 0, 5)
    elif kind == NEVER_NEW:
        return None, None, _days(rng, 1, 45)
    elif kind == NEVER_OLD:
        return None, None, _days(rng, 120, 1500)
    oldest = max(age for age in (interactive, non_interactive) if age is not None)
    return interactive, non_interactive, oldest + _days(rng, 1, 1500)


def _group(rng: random.Random, name: str, kind: str) -> dict[str, object]:
    mail_enabled = kind in (UNIFIED, DISTRIBUTION)
    nickname = re.sub(r"[^A-Za-z0-9]", "", name) or "group"
    return {
        "id": _guid(rng),
        "displayName": name,
        "createdDateTime": _timestamp(_days(rng, 30, 2000)),
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
    group_specs: list[_GroupSpec],
    users: list[dict[str, object]],
    profiles: list[_Profile],
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
    for role in _BUILT_IN_ROLES:
        definitions.append(
            {
                "id": role.template_id,
                "displayName": role.name,
                "isBuiltIn": True,
                "isEnabled": True,
                "templateId": role.template_id,
            }
        )
    custom_id = _guid(rng)
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


def _is_admin(profile: _Profile, roles: list[dict[str, object]]) -> bool:
    """Holds a privileged role directly or through the role-assignable group (which nests no groups)."""
    if HELPDESK_GROUP in profile.groups:
        return True
    return profile.direct_role is not None and is_privileged(_role_named(roles, profile.direct_role))


def _role_assignments(
    rng: random.Random,
    users: list[dict[str, object]],
    profiles: list[_Profile],
    groups: list[dict[str, object]],
    roles: list[dict[str, object]],
) -> list[dict[str, object]]:
    administrative_unit = f"/administrativeUnits/{_guid(rng)}"
    held = [
        (user["id"], profile.direct_role, administrative_unit if profile.direct_role in _AU_SCOPED_ROLES else "/")
        for user, profile in zip(users, profiles, strict=False)
        if profile.direct_role
    ]
    held.append((groups[HELPDESK_GROUP]["id"], "Helpdesk Administrator", "/"))
    return [
        {
            "id": _guid(rng),
            "principalId": principal_id,
            "roleDefinitionId": _role_named(roles, role_name)["id"],
            "directoryScopeId": scope,
        }
        for principal_id, role_name, scope in held
    ]


def _role_eligibilities(
    users: list[dict[str, object]], profiles: list[_Profile], roles: list[dict[str, object]]
) -> list[dict[str, object]]:
    """PIM eligibility schedule instances (ids derived, so the other draws stay as they were)."""
    return [
        {
            "id": str(uuid.uuid5(uuid.NAMESPACE_URL, f"eligibility/{user['id']}")),
            "principalId": user["id"],
            "roleDefinitionId": _role_named(roles, profile.eligible_role)["id"],
            "directoryScopeId": "/",
            "memberType": "Direct",
            "startDateTime": _timestamp(90 * _DAY),
            "endDateTime": None,
        }
        for user, profile in zip(users, profiles, strict=False)
        if profile.eligible_role
    ]


def _subscribed_skus(
    rng: random.Random, azure_tenant_id: str, users: list[dict[str, object]]
) -> list[dict[str, object]]:
    """consumedUnits counts every holder, disabled users included."""
    holders = {sku.sku_id: 0 for sku in _SKUS}
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
            "subscriptionIds": [_guid(rng)],
        }
        for sku in _SKUS
    ]


def _prepaid_units(sku: _Sku, consumed: int) -> dict[str, int]:
    units = {"enabled": consumed, "suspended": 0, "warning": 0, "lockedOut": 0}
    if sku.purchase == "under_used":
        units["enabled"] = consumed + max(1, consumed // 20)
    elif sku.purchase == "over_used":
        units["enabled"] = max(0, consumed - max(1, consumed // 10))
    elif sku.purchase == "free":
        units["enabled"] = _FREE_ALLOWANCE[sku.part_number]
    elif sku.purchase == "lapsing":
        units.update(enabled=3, warning=2)
    return units


def _registration(rng: random.Random, user: dict[str, object], profile: _Profile, admin: bool) -> dict[str, object]:
    methods = list(rng.choice(_MFA_METHOD_SETS)) if profile.mfa_registered else rng.choice(([], ["email"]))
    return {
        "id": user["id"],
        "userPrincipalName": user["userPrincipalName"],
        "userDisplayName": user["displayName"],
        "userType": "guest" if profile.guest else "member",
        "isAdmin": admin,
        "isMfaCapable": profile.mfa_registered,
        "isMfaRegistered": profile.mfa_registered,
        "methodsRegistered": methods,
    }


def _policy(
    rng: random.Random,
    name: str,
    *,
    state: str = "enabled",
    users: dict[str, object],
    applications: tuple[str, ...] = ("All",),
    client_app_types: tuple[str, ...] = ("all",),
    operator: str = "OR",
    controls: tuple[str, ...] = (),
    strength: dict[str, str] | None = None,
    session_controls: dict[str, object] | None = None,
) -> dict[str, object]:
    """A Graph conditionalAccessPolicy; grantControls is null for a session-only policy."""
    created = _days(rng, 200, 900)
    grant = None
    if controls or strength:
        grant = {
            "operator": operator,
            "builtInControls": list(controls),
            "customAuthenticationFactors": [],
            "termsOfUse": [],
            "authenticationStrength": strength,
        }
    user_conditions = {
        key: users.get(key, [])
        for key in ("includeUsers", "excludeUsers", "includeGroups", "excludeGroups", "includeRoles", "excludeRoles")
    } | {key: users.get(key) for key in ("includeGuestsOrExternalUsers", "excludeGuestsOrExternalUsers")}
    return {
        "id": _guid(rng),
        "displayName": name,
        "createdDateTime": _timestamp(created),
        "modifiedDateTime": _timestamp(created - _days(rng, 1, 150)),
        "state": state,
        "conditions": {
            "users": user_conditions,
            "applications": {"includeApplications": list(applications), "excludeApplications": []},
            "clientAppTypes": list(client_app_types),
            "userRiskLevels": [],
            "signInRiskLevels": [],
        },
        "grantControls": grant,
        "sessionControls": session_controls,
    }


def _policies(
    rng: random.Random, variant: int, users: list[dict[str, object]], groups: list[dict[str, object]]
) -> list[dict[str, object]]:
    break_glass = [groups[BREAK_GLASS_GROUP]["id"]]
    all_staff = [groups[ALL_STAFF_GROUP]["id"]]
    if variant == FULL_SETUP:
        return [
            _policy(
                rng,
                "CA001 – Require MFA for all users",
                users={
                    "includeUsers": ["All"],
                    "excludeGroups": break_glass,
                    "excludeRoles": [DIRECTORY_SYNCHRONIZATION_ACCOUNTS],
                },
                controls=("mfa",),
            ),
            _policy(
                rng,
                "CA002 – Block legacy authentication",
                users={"includeUsers": ["All"], "excludeUsers": [users[BREAK_GLASS_USER]["id"]]},
                client_app_types=LEGACY_CLIENTS,
                controls=("block",),
            ),
            _policy(
                rng,
                "CA003 – Admins: MFA and compliant device",
                users={"includeRoles": list(ADMIN_ROLES), "excludeGroups": break_glass},
                operator="AND",
                controls=("mfa", "compliantDevice"),
            ),
            _policy(
                rng,
                "CA004 – Guests: phishing-resistant MFA",
                users={"includeGuestsOrExternalUsers": _ALL_GUEST_TYPES},
                strength=_PHISHING_RESISTANT,
            ),
            _policy(
                rng,
                "CA005 – Azure management: require MFA",
                users={"includeUsers": ["All"], "excludeGroups": break_glass},
                applications=(AZURE_MANAGEMENT_APP,),
                controls=("mfa",),
            ),
            _policy(
                rng,
                "CA006 – Office 365 for staff: MFA or compliant device",
                users={"includeGroups": all_staff},
                applications=("Office365",),
                controls=("mfa", "compliantDevice"),
            ),
            _policy(
                rng,
                "CA007 – Sign-in frequency 12 h",
                users={"includeUsers": ["All"]},
                session_controls={"signInFrequency": {"value": 12, "type": "hours", "isEnabled": True}},
            ),
            _policy(
                rng,
                "CA008 – Require compliant device (report-only)",
                state="enabledForReportingButNotEnforced",
                users={"includeUsers": ["All"], "excludeGroups": break_glass},
                controls=("compliantDevice",),
            ),
            _policy(
                rng,
                "CA009 – Block sign-ins outside the EU",
                state="disabled",
                users={"includeUsers": ["All"], "excludeGroups": break_glass},
                controls=("block",),
            ),
        ]
    if variant == NOTHING_ENFORCED:
        return [
            _policy(
                rng,
                "Require MFA for all users",
                state="enabledForReportingButNotEnforced",
                users={"includeUsers": ["All"]},
                controls=("mfa",),
            ),
            _policy(
                rng,
                "Block legacy authentication",
                state="disabled",
                users={"includeUsers": ["All"]},
                client_app_types=LEGACY_CLIENTS,
                controls=("block",),
            ),
            _policy(
                rng,
                "Admins: require MFA",
                state="enabledForReportingButNotEnforced",
                users={"includeRoles": [GLOBAL_ADMINISTRATOR]},
                controls=("mfa",),
            ),
        ]
    if variant == SECURITY_DEFAULTS_ONLY:
        return []
    return [
        _policy(rng, "Staff: require MFA", users={"includeGroups": all_staff}, controls=("mfa",)),
        _policy(
            rng,
            "Exchange Online: require MFA",
            users={"includeUsers": ["All"], "excludeGroups": break_glass},
            applications=(EXCHANGE_ONLINE_APP,),
            controls=("mfa",),
        ),
        _policy(
            rng,
            "All users: MFA or compliant device",
            users={"includeUsers": ["All"], "excludeRoles": [DIRECTORY_SYNCHRONIZATION_ACCOUNTS]},
            controls=("mfa", "compliantDevice"),
        ),
        _policy(rng, "Guests: MFA strength", users={"includeUsers": ["GuestsOrExternalUsers"]}, strength=_MFA_STRENGTH),
        _policy(
            rng,
            "Admins: MFA in the browser",
            users={"includeRoles": list(ADMIN_ROLES)},
            client_app_types=("browser",),
            controls=("mfa",),
        ),
        _policy(
            rng,
            "Pilot: MFA for selected users",
            users={"includeUsers": [users[number]["id"] for number in PILOT_USERS]},
            controls=("mfa",),
        ),
        _policy(
            rng,
            "Block Exchange ActiveSync",
            users={"includeUsers": ["All"]},
            client_app_types=("exchangeActiveSync",),
            controls=("block",),
        ),
        _policy(
            rng,
            "Sales pilot: block legacy authentication",
            users={"includeGroups": [groups[SALES_GROUP]["id"]]},
            client_app_types=LEGACY_CLIENTS,
            controls=("block",),
        ),
    ]
