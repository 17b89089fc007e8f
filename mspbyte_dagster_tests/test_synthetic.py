"""The synthetic generator: deterministic, Graph-shaped, and rich enough that every
rule of docs/rules.md has something to find across the four variants."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import pytest

from mspbyte_dagster.lib.adapters.registry import DEFAULT
from mspbyte_dagster.lib.context import is_privileged
from mspbyte_dagster.lib.model import TENANT_KEY_RE
from mspbyte_dev.synthetic import (
    FULL_SETUP,
    NOTHING_ENFORCED,
    SECURITY_DEFAULTS_ONLY,
    WEAK_POLICIES,
    generate_snapshot,
    write_snapshots,
)

SEED = 42
CAPTURED_AT = datetime(2026, 11, 1, tzinfo=UTC)
STALE_DAYS = 90
USER_TYPE = "#microsoft.graph.user"
GROUP_TYPE = "#microsoft.graph.group"
NON_USER_TYPES = {"#microsoft.graph.servicePrincipal", "#microsoft.graph.device", "#microsoft.graph.orgContact"}
BUILT_IN_TEMPLATES = {
    "Global Administrator": "62e90394-69f5-4237-9190-012177145e10",
    "User Administrator": "fe930be7-5e62-47db-91af-98c3a49a38b1",
    "Helpdesk Administrator": "729827e3-9c14-49f7-bb1b-9608f156bbb8",
    "Exchange Administrator": "29232cdf-9323-42fd-ade2-1d097af3e4de",
    "Security Reader": "5d6b6bb7-de71-4623-b4af-96380a352509",
    "Global Reader": "f2ef992c-3afb-46b9-b7cf-a126ee74c451",
}
TIMESTAMP = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$")
GUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")


@pytest.fixture(scope="module")
def small() -> list[dict]:
    """The four variants at the smallest size, where only the archetypes exist."""
    return [generate_snapshot(index, 10, SEED) for index in range(4)]


@pytest.fixture(scope="module")
def large() -> list[dict]:
    return [generate_snapshot(index, 2000, SEED) for index in range(4)]


@pytest.fixture(scope="module", params=["small", "large"])
def tenants(request) -> list[dict]:
    return request.getfixturevalue(request.param)


def _age_days(timestamp: str | None) -> float | None:
    if timestamp is None:
        return None
    moment = datetime.strptime(timestamp, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    return (CAPTURED_AT - moment).total_seconds() / 86_400


def _child_groups(snapshot: dict) -> dict[str, list[str]]:
    return {
        group_id: [member["id"] for member in members if member["@odata.type"] == GROUP_TYPE]
        for group_id, members in snapshot["group_members"].items()
    }


def _reachable(children: dict[str, list[str]], start: str) -> set[str]:
    seen: set[str] = set()
    stack = list(children[start])
    while stack:
        group_id = stack.pop()
        if group_id not in seen:
            seen.add(group_id)
            stack.extend(children[group_id])
    return seen


def _nesting_depth(children: dict[str, list[str]], group_id: str, path: frozenset[str] = frozenset()) -> int:
    """Levels of groups below group_id, not walking round a cycle."""
    below = [child for child in children[group_id] if child not in path and child != group_id]
    return 1 + max((_nesting_depth(children, child, path | {group_id}) for child in below), default=0)


# Microsoft's list of privileged built-in roles, read from the shipped data file itself.
PRIVILEGED_DATA = (
    Path(__file__).resolve().parent.parent / "mspbyte_dagster/lib/adapters/microsoft365/privileged_roles.json"
)
PRIVILEGED_LIST = set(json.loads(PRIVILEGED_DATA.read_text())["roles"])


def _requires_mfa_fully(policy: dict) -> bool:
    grant = policy["grantControls"]
    if policy["state"] != "enabled" or grant is None:
        return False
    controls = grant["builtInControls"]
    requires = ("mfa" in controls and (grant["operator"] == "AND" or controls == ["mfa"])) or (
        (grant["authenticationStrength"] or {}).get("requirementsSatisfied") == "mfa"
        and (grant["operator"] == "AND" or not controls)
    )
    conditions = policy["conditions"]
    all_clients = not conditions["clientAppTypes"] or "all" in conditions["clientAppTypes"]
    return requires and "All" in conditions["applications"]["includeApplications"] and all_clients


def _blocks_legacy_auth(policy: dict) -> bool:
    grant = policy["grantControls"]
    clients = set(policy["conditions"]["clientAppTypes"])
    return (
        policy["state"] == "enabled"
        and grant is not None
        and "block" in grant["builtInControls"]
        and "All" in policy["conditions"]["users"]["includeUsers"]
        and (not clients or "all" in clients or {"exchangeActiveSync", "other"} <= clients)
    )


def _policy_shapes(policy: dict) -> set[str]:
    users = policy["conditions"]["users"]
    grant = policy["grantControls"] or {"operator": None, "builtInControls": [], "authenticationStrength": None}
    checks = {
        "all_users_with_exclusion": "All" in users["includeUsers"]
        and bool(users["excludeGroups"] or users["excludeUsers"]),
        "group_targeted": bool(users["includeGroups"]),
        "role_targeted": bool(users["includeRoles"]),
        "app_scoped": "All" not in policy["conditions"]["applications"]["includeApplications"],
        "mfa_or_compliant_device": grant["operator"] == "OR"
        and {"mfa", "compliantDevice"} <= set(grant["builtInControls"]),
        "authentication_strength": grant["authenticationStrength"] is not None,
        "guests": "GuestsOrExternalUsers" in users["includeUsers"]
        or bool((users["includeGuestsOrExternalUsers"] or {}).get("guestOrExternalUserTypes")),
        "report_only": policy["state"] == "enabledForReportingButNotEnforced",
        "disabled": policy["state"] == "disabled",
        "blocks_legacy_auth": _blocks_legacy_auth(policy),
    }
    return {shape for shape, present in checks.items() if present}


def _stale(user: dict) -> bool:
    activity = user["signInActivity"]
    ages = [_age_days(activity[key]) for key in ("lastSignInDateTime", "lastNonInteractiveSignInDateTime")]
    ages = [age for age in ages if age is not None]
    return (min(ages) if ages else _age_days(user["createdDateTime"])) >= STALE_DAYS


# --- determinism and layout ----------------------------------------------------


def _folder_bytes(folders: list[Path]) -> dict[str, bytes]:
    return {f"{folder.name}/{path.name}": path.read_bytes() for folder in folders for path in sorted(folder.iterdir())}


def test_same_arguments_write_identical_bytes(tmp_path):
    first = _folder_bytes(write_snapshots(tmp_path / "a", tenants=4, users=60, seed=SEED))
    second = _folder_bytes(write_snapshots(tmp_path / "b", tenants=4, users=60, seed=SEED))
    assert first == second
    assert len(first) == 4 * len(DEFAULT.snapshot_files)


def test_output_does_not_depend_on_the_interpreter_hash_seed(tmp_path):
    here = write_snapshots(tmp_path / "here", tenants=2, users=30, seed=SEED)
    script = (
        "import sys; from pathlib import Path; from mspbyte_dev.synthetic import write_snapshots; "
        f"write_snapshots(Path(sys.argv[1]), 2, 30, {SEED})"
    )
    root = Path(__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONHASHSEED": "12345", "PYTHONPATH": str(root)}
    subprocess.run([sys.executable, "-c", script, str(tmp_path / "there")], check=True, env=env, cwd=root)
    there = sorted((tmp_path / "there").iterdir())
    assert _folder_bytes(here) == _folder_bytes(there)


def test_another_seed_changes_every_generated_file(tmp_path):
    [one] = write_snapshots(tmp_path / "one", tenants=1, users=20, seed=1)
    [two] = write_snapshots(tmp_path / "two", tenants=1, users=20, seed=2)
    differing = {
        stem
        for stem in DEFAULT.snapshot_files
        if (one / f"{stem}.json").read_bytes() != (two / f"{stem}.json").read_bytes()
    }
    # Security Defaults is a constant singleton; everything else carries drawn ids.
    assert differing == set(DEFAULT.snapshot_files) - {"security_defaults"}


def test_tenant_folders_are_named_by_a_valid_tenant_key(tmp_path):
    folders = write_snapshots(tmp_path, tenants=3, users=10, seed=7)
    assert [folder.name for folder in folders] == ["synth-7-000", "synth-7-001", "synth-7-002"]
    azure_ids = set()
    for folder in folders:
        assert TENANT_KEY_RE.match(folder.name)
        tenant = json.loads((folder / "tenant.json").read_text(encoding="utf-8"))
        assert tenant["id"] == folder.name
        assert tenant["capturedAt"] == "2026-11-01T00:00:00Z"
        assert GUID.match(tenant["azureTenantId"])
        azure_ids.add(tenant["azureTenantId"])
    assert len(azure_ids) == 3


def test_every_snapshot_file_is_written_as_json(tmp_path):
    [folder] = write_snapshots(tmp_path, tenants=1, users=10, seed=SEED)
    assert sorted(path.name for path in folder.iterdir()) == sorted(f"{stem}.json" for stem in DEFAULT.snapshot_files)
    snapshot = generate_snapshot(0, 10, SEED)
    for stem in DEFAULT.snapshot_files:
        assert json.loads((folder / f"{stem}.json").read_bytes()) == snapshot[stem]


def test_display_names_survive_special_characters(tmp_path, small):
    names = " ".join(
        [snapshot["tenant"]["name"] for snapshot in small]
        + [group["displayName"] for group in small[0]["groups"]]
        + [user["displayName"] for user in small[0]["users"]]
    )
    for character in ("&", "<", '"', "'", "ü"):
        assert character in names
    assert any(ord(character) > 0x2FFF for character in names)  # CJK as well as Latin-1
    [folder] = write_snapshots(tmp_path, tenants=1, users=10, seed=SEED)
    assert json.loads((folder / "tenant.json").read_text(encoding="utf-8"))["name"] == small[0]["tenant"]["name"]


@pytest.mark.parametrize("users", [9, 50_001])
def test_user_count_outside_the_supported_range_is_refused(users):
    with pytest.raises(ValueError, match=f"users={users}"):
        generate_snapshot(0, users, SEED)


def test_zero_tenants_is_refused(tmp_path):
    with pytest.raises(ValueError, match="tenants=0"):
        write_snapshots(tmp_path, tenants=0, users=10, seed=SEED)


def test_a_seed_too_long_for_a_tenant_key_is_refused():
    with pytest.raises(ValueError, match="does not match"):
        generate_snapshot(0, 10, 10**70)


@pytest.mark.parametrize("users", [10, 2000])
def test_the_requested_number_of_users_is_generated(users):
    snapshot = generate_snapshot(1, users, SEED)
    assert len(snapshot["users"]) == users
    assert len({user["id"] for user in snapshot["users"]}) == users
    assert len(snapshot["groups"]) == max(11, users // 25)


# --- Graph shape -----------------------------------------------------------------


def test_users_are_graph_shaped(tenants):
    snapshot = tenants[FULL_SETUP]
    domain = re.escape(f"synth{SEED}t000.onmicrosoft.com")
    sku_ids = {sku["skuId"] for sku in snapshot["subscribed_skus"]}
    for user in snapshot["users"]:
        assert set(user) == {
            "id",
            "displayName",
            "userPrincipalName",
            "accountEnabled",
            "userType",
            "createdDateTime",
            "assignedLicenses",
            "onPremisesSyncEnabled",
            "signInActivity",
        }
        assert GUID.match(user["id"])
        assert isinstance(user["accountEnabled"], bool)
        assert user["userType"] in ("Member", "Guest")
        assert TIMESTAMP.match(user["createdDateTime"])
        pattern = rf"^user\d+_[a-z.]+#EXT#@{domain}$" if user["userType"] == "Guest" else rf"^user\d+@{domain}$"
        assert re.match(pattern, user["userPrincipalName"])
        for licence in user["assignedLicenses"]:
            assert licence == {"skuId": licence["skuId"], "disabledPlans": []}
            assert licence["skuId"] in sku_ids
        activity = user["signInActivity"]
        assert set(activity) == {
            "lastSignInDateTime",
            "lastNonInteractiveSignInDateTime",
            "lastSuccessfulSignInDateTime",
        }
        assert all(value is None or TIMESTAMP.match(value) for value in activity.values())
        assert all(_age_days(value) >= 0 for value in activity.values() if value is not None)


def test_group_members_name_existing_users_and_groups(tenants):
    snapshot = tenants[FULL_SETUP]
    user_ids = {user["id"] for user in snapshot["users"]}
    group_ids = {group["id"] for group in snapshot["groups"]}
    assert set(snapshot["group_members"]) == group_ids
    for group in snapshot["groups"]:
        assert isinstance(group["securityEnabled"], bool) and isinstance(group["mailEnabled"], bool)
        assert group["groupTypes"] in ([], ["Unified"])
    for members in snapshot["group_members"].values():
        for member in members:
            assert set(member) == {"@odata.type", "id"}
            if member["@odata.type"] in (USER_TYPE, GROUP_TYPE):
                assert member["id"] in (user_ids if member["@odata.type"] == USER_TYPE else group_ids)
            else:  # what Graph also lists as a member, and no rule analyses
                assert member["@odata.type"] in NON_USER_TYPES and member["id"] not in user_ids | group_ids
    kinds = {m["@odata.type"] for members in snapshot["group_members"].values() for m in members}
    assert kinds >= NON_USER_TYPES


def test_role_assignments_name_existing_principals_and_definitions(tenants):
    snapshot = tenants[FULL_SETUP]
    principals = {user["id"] for user in snapshot["users"]} | {group["id"] for group in snapshot["groups"]}
    definitions = {role["id"] for role in snapshot["role_definitions"]}
    for assignment in snapshot["role_assignments"]:
        assert set(assignment) == {"id", "principalId", "roleDefinitionId", "directoryScopeId"}
        assert assignment["principalId"] in principals
        assert assignment["roleDefinitionId"] in definitions
        scope = assignment["directoryScopeId"]
        assert scope == "/" or scope.startswith("/administrativeUnits/")
    assert any(a["directoryScopeId"] != "/" for a in snapshot["role_assignments"])


def test_registration_details_are_graph_shaped(tenants):
    snapshot = tenants[FULL_SETUP]
    users = {user["id"]: user for user in snapshot["users"]}
    for record in snapshot["user_registration_details"]:
        assert {
            "id",
            "userPrincipalName",
            "isAdmin",
            "isMfaCapable",
            "isMfaRegistered",
            "methodsRegistered",
            "userType",
        } <= set(record)
        assert record["userPrincipalName"] == users[record["id"]]["userPrincipalName"]
        assert record["userType"] == users[record["id"]]["userType"].lower()
        assert isinstance(record["methodsRegistered"], list)


def test_security_defaults_are_on_only_in_the_security_defaults_variant(small):
    for index, snapshot in enumerate(small):
        assert snapshot["security_defaults"]["id"] == "00000000-0000-0000-0000-000000000000"
        assert snapshot["security_defaults"]["isEnabled"] is (index == SECURITY_DEFAULTS_ONLY)


# --- who is who ------------------------------------------------------------------------


def test_guests_and_disabled_users_come_in_realistic_shares(large):
    for snapshot in large:
        users = snapshot["users"]
        guests = sum(user["userType"] == "Guest" for user in users) / len(users)
        disabled = sum(not user["accountEnabled"] for user in users) / len(users)
        assert 0.03 <= guests <= 0.08
        assert 0.05 <= disabled <= 0.12


def test_every_tenant_has_exactly_one_membership_cycle(tenants):
    for snapshot in tenants:
        children = _child_groups(snapshot)
        in_cycle = {group_id for group_id in children if group_id in _reachable(children, group_id)}
        assert len(in_cycle) == 2
        first, second = in_cycle
        assert second in children[first] and first in children[second]


def test_groups_nest_several_levels_deep(tenants):
    for snapshot in tenants:
        children = _child_groups(snapshot)
        assert max(_nesting_depth(children, group_id) for group_id in children) >= 4


def test_a_privileged_role_is_held_through_a_role_assignable_group(tenants):
    for snapshot in tenants:
        groups = {group["id"]: group for group in snapshot["groups"]}
        roles = {role["id"]: role for role in snapshot["role_definitions"]}
        held_by_groups = [a for a in snapshot["role_assignments"] if a["principalId"] in groups]
        assert held_by_groups
        for assignment in held_by_groups:
            assert groups[assignment["principalId"]]["isAssignableToRole"] is True
            assert is_privileged(roles[assignment["roleDefinitionId"]])
            members = snapshot["group_members"][assignment["principalId"]]
            assert any(member["@odata.type"] == USER_TYPE for member in members)
            assert not any(member["@odata.type"] == GROUP_TYPE for member in members)


def test_built_in_roles_carry_their_real_template_ids(small):
    roles = {role["displayName"]: role for role in small[0]["role_definitions"]}
    for name, template_id in BUILT_IN_TEMPLATES.items():
        assert roles[name]["id"] == roles[name]["templateId"] == template_id
        assert roles[name]["isBuiltIn"] is True


def test_roles_come_as_graph_v1_serves_them_privileged_by_list_or_by_name(large):
    """isPrivileged is beta only; the fleet assigns roles privileged by Microsoft's list alone (Global
    Reader, Security Reader) and by their name alone (Exchange Administrator is not on the list)."""
    assigned = set()
    for snapshot in large:
        assert not any("isPrivileged" in role for role in snapshot["role_definitions"])
        roles = {role["id"]: role for role in snapshot["role_definitions"]}
        assigned |= {
            roles[assignment["roleDefinitionId"]]["displayName"] for assignment in snapshot["role_assignments"]
        }
    by_list = {name for name in assigned if "administrator" not in name.lower() and is_privileged(_role(large, name))}
    by_name = {
        name
        for name in assigned
        if _role(large, name)["templateId"] not in PRIVILEGED_LIST and is_privileged(_role(large, name))
    }
    assert by_list and by_name


def _role(snapshots: list, name: str) -> dict:
    return next(role for role in snapshots[0]["role_definitions"] if role["displayName"] == name)


def test_a_custom_non_privileged_role_is_assigned(small):
    for snapshot in small:
        custom = [role for role in snapshot["role_definitions"] if not role["isBuiltIn"]]
        assert len(custom) == 1 and not is_privileged(custom[0])
        assert any(assignment["roleDefinitionId"] == custom[0]["id"] for assignment in snapshot["role_assignments"])


def test_registration_is_admin_matches_privileged_role_holding(tenants):
    for snapshot in tenants:
        roles = {role["id"]: role for role in snapshot["role_definitions"]}
        admins = set()
        for assignment in snapshot["role_assignments"]:
            if is_privileged(roles[assignment["roleDefinitionId"]]):
                members = snapshot["group_members"].get(assignment["principalId"])
                admins |= {member["id"] for member in members} if members is not None else {assignment["principalId"]}
        recorded = {record["id"] for record in snapshot["user_registration_details"] if record["isAdmin"]}
        registered = {record["id"] for record in snapshot["user_registration_details"]}
        assert recorded == admins & registered
        assert len(admins) >= 3


# --- sign-ins ----------------------------------------------------------------------------------


def test_a_tenant_without_p1_has_no_sign_in_activity(tenants):
    for index, snapshot in enumerate(tenants):
        carrying = sum("signInActivity" in user for user in snapshot["users"])
        assert carrying == (0 if index == SECURITY_DEFAULTS_ONLY else len(snapshot["users"]))


def test_every_kind_of_sign_in_history_is_present(tenants):
    for index in (FULL_SETUP, NOTHING_ENFORCED, WEAK_POLICIES):
        kinds = Counter()
        for user in tenants[index]["users"]:
            activity = user["signInActivity"]
            interactive = _age_days(activity["lastSignInDateTime"])
            background = _age_days(activity["lastNonInteractiveSignInDateTime"])
            if interactive is None and background is None:
                assert activity["lastSuccessfulSignInDateTime"] is None
                created_recently = _age_days(user["createdDateTime"]) < STALE_DAYS
                kinds["never, created recently" if created_recently else "never, created long ago"] += 1
            elif interactive is None:
                kinds["non-interactive only, recent" if background < STALE_DAYS else "non-interactive only, old"] += 1
            elif interactive >= STALE_DAYS and (background is None or background >= STALE_DAYS):
                kinds["stale guest" if user["userType"] == "Guest" else "stale member"] += 1
            elif interactive < STALE_DAYS:
                kinds["recent interactive"] += 1
        assert {
            "never, created recently",
            "never, created long ago",
            "non-interactive only, recent",
            "stale guest",
            "stale member",
            "recent interactive",
        } <= set(kinds)


def test_stale_enabled_users_hold_licences_or_none_and_some_are_admins(tenants):
    snapshot = tenants[FULL_SETUP]
    roles = {role["id"]: role for role in snapshot["role_definitions"]}
    direct_admins = {
        assignment["principalId"]
        for assignment in snapshot["role_assignments"]
        if is_privileged(roles[assignment["roleDefinitionId"]])
    }
    stale = [user for user in snapshot["users"] if user["accountEnabled"] and _stale(user)]
    assert any(user["assignedLicenses"] for user in stale)
    assert any(not user["assignedLicenses"] for user in stale)
    assert any(user["id"] in direct_admins for user in stale)


def test_disabled_users_keep_licences(tenants):
    for snapshot in tenants:
        assert any(user["assignedLicenses"] for user in snapshot["users"] if not user["accountEnabled"])


def test_some_users_have_no_registration_record_and_some_are_not_mfa_registered(tenants):
    for snapshot in tenants:
        records = snapshot["user_registration_details"]
        enabled = {user["id"] for user in snapshot["users"] if user["accountEnabled"]}
        assert {record["id"] for record in records} <= enabled  # Graph leaves disabled users out
        assert 0 < len(enabled) - len(records) <= max(1, len(snapshot["users"]) * 0.08)
        unregistered = sum(not record["isMfaRegistered"] for record in records)
        assert unregistered >= 2
        if len(records) > 1000:
            assert 0.10 <= unregistered / len(records) <= 0.20


# --- licences -------------------------------------------------------------------------


def test_consumed_units_count_every_holder(tenants):
    for snapshot in tenants:
        holders = Counter(licence["skuId"] for user in snapshot["users"] for licence in user["assignedLicenses"])
        for sku in snapshot["subscribed_skus"]:
            assert sku["consumedUnits"] == holders[sku["skuId"]]


def test_skus_are_over_under_fully_used_and_free(tenants):
    for snapshot in tenants:
        usage = set()
        for sku in snapshot["subscribed_skus"]:
            assert set(sku["prepaidUnits"]) == {"enabled", "suspended", "warning", "lockedOut"}
            assert re.match(r"^[A-Z0-9_]+$", sku["skuPartNumber"])
            enabled, consumed = sku["prepaidUnits"]["enabled"], sku["consumedUnits"]
            if enabled >= 10_000:
                usage.add("free")
            elif consumed > enabled:
                usage.add("over")
            elif consumed == enabled:
                usage.add("full")
            else:
                usage.add("under")
        assert usage == {"free", "over", "full", "under"}
        assert any(sku["prepaidUnits"]["enabled"] == 10_000 for sku in snapshot["subscribed_skus"])


# --- conditional access ---------------------------------------------------------------------


def test_full_setup_holds_every_policy_shape(tenants):
    policies = tenants[FULL_SETUP]["conditional_access_policies"]
    shapes = set().union(*(_policy_shapes(policy) for policy in policies))
    assert shapes == {
        "all_users_with_exclusion",
        "group_targeted",
        "role_targeted",
        "app_scoped",
        "mfa_or_compliant_device",
        "authentication_strength",
        "guests",
        "report_only",
        "disabled",
        "blocks_legacy_auth",
    }
    assert any(
        _requires_mfa_fully(policy) and "All" in policy["conditions"]["users"]["includeUsers"] for policy in policies
    )


def test_role_targeted_policies_name_role_templates(tenants):
    for snapshot in tenants:
        templates = {role["templateId"] for role in snapshot["role_definitions"]}
        for policy in snapshot["conditional_access_policies"]:
            assert set(policy["conditions"]["users"]["includeRoles"]) <= templates


def test_nothing_enforced_has_only_report_only_and_disabled_policies(tenants):
    policies = tenants[NOTHING_ENFORCED]["conditional_access_policies"]
    assert {policy["state"] for policy in policies} == {"enabledForReportingButNotEnforced", "disabled"}
    assert tenants[NOTHING_ENFORCED]["security_defaults"]["isEnabled"] is False


def test_security_defaults_variant_has_no_policies(tenants):
    assert tenants[SECURITY_DEFAULTS_ONLY]["conditional_access_policies"] == []


def test_weak_policies_never_require_mfa_for_all_users_nor_block_legacy_auth(tenants):
    policies = tenants[WEAK_POLICIES]["conditional_access_policies"]
    assert all(policy["state"] == "enabled" for policy in policies)
    assert not any(_blocks_legacy_auth(policy) for policy in policies)
    assert not any(
        _requires_mfa_fully(policy) and "All" in policy["conditions"]["users"]["includeUsers"] for policy in policies
    )
    shapes = set().union(*(_policy_shapes(policy) for policy in policies))
    assert {"group_targeted", "app_scoped", "mfa_or_compliant_device", "authentication_strength", "guests"} <= shapes
    # Block policies exist, just not ones that count as blocking legacy auth.
    assert any(policy["grantControls"] and "block" in policy["grantControls"]["builtInControls"] for policy in policies)


def test_policies_are_graph_shaped(tenants):
    for snapshot in tenants:
        for policy in snapshot["conditional_access_policies"]:
            assert GUID.match(policy["id"])
            assert set(policy["conditions"]["users"]) == {
                "includeUsers",
                "excludeUsers",
                "includeGroups",
                "excludeGroups",
                "includeRoles",
                "excludeRoles",
                "includeGuestsOrExternalUsers",
                "excludeGuestsOrExternalUsers",
            }
            assert set(policy["conditions"]["applications"]) >= {"includeApplications", "excludeApplications"}
            grant = policy["grantControls"]
            assert grant is None or {"operator", "builtInControls", "authenticationStrength"} <= set(grant)
