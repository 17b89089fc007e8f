"""RULES "mfa" rows, "Who is who" and "Which policies apply", over the stored entity shape (no database)."""

import pytest

from mspbyte_dagster_tests.rules import (
    GA_TEMPLATE,
    GLOBAL_ADMIN,
    READER,
    READER_TEMPLATE,
    admin,
    analyze,
    ca_policy,
    context_of,
    evaluation_of,
    members,
    person,
    raised,
    role,
    tenant_files,
)

STAFF = [person("boss"), person("alice")]  # boss is made an admin where a test says admin(...)


def mfa(files) -> dict[str, dict[str, str]]:
    """Each MFA alert type -> {user: severity}."""
    analysis = analyze(files)
    return {t: raised(analysis, t) for t in ("mfa_not_enforced", "mfa_partial_enforced", "mfa_not_registered")}


def enforcement(policies=(), **files) -> dict[str, dict[str, str]]:
    found = mfa(tenant_files(files.pop("users", STAFF), policies=policies, assignments=[admin("boss")], **files))
    return {t: found[t] for t in ("mfa_not_enforced", "mfa_partial_enforced")}


NOT_ENFORCED = {"mfa_not_enforced": {"boss": "critical", "alice": "high"}, "mfa_partial_enforced": {}}
PARTIAL = {"mfa_not_enforced": {}, "mfa_partial_enforced": {"boss": "high", "alice": "medium"}}
FULL = {"mfa_not_enforced": {}, "mfa_partial_enforced": {}}


def test_mfa_not_enforced_is_critical_for_admins_and_high_for_other_members():
    assert enforcement() == NOT_ENFORCED


def test_mfa_partial_enforced_is_high_for_admins_and_medium_for_other_members():
    assert enforcement([ca_policy("p", apps=["office365"])]) == PARTIAL


def test_an_mfa_policy_for_all_users_apps_and_clients_enforces_mfa_fully():
    assert enforcement([ca_policy("p")]) == FULL


@pytest.mark.parametrize(
    ("grant", "operator", "strength", "expected"),
    [
        (["mfa", "compliantDevice"], "OR", False, NOT_ENFORCED),  # MFA *or* a compliant device: not required
        (["mfa", "compliantDevice"], "AND", False, FULL),
        (["compliantDevice"], "OR", False, NOT_ENFORCED),
        ([], "OR", True, FULL),  # authentication strength, no built-in controls
        (["compliantDevice"], "OR", True, NOT_ENFORCED),  # strength *or* compliant device
        (["compliantDevice"], "AND", True, FULL),
        ([], "OR", "none", NOT_ENFORCED),  # a custom strength that a password alone satisfies
        (["compliantDevice"], "AND", "none", NOT_ENFORCED),
        ([], "OR", "absent", NOT_ENFORCED),  # a strength whose requirements Graph did not send
        (["block"], "OR", False, NOT_ENFORCED),
    ],
    ids=[
        "mfa-or-device",
        "mfa-and-device",
        "device-only",
        "strength-alone",
        "strength-or-device",
        "strength-and-device",
        "password-strength-alone",
        "password-strength-and-device",
        "strength-without-requirements",
        "block",
    ],
)
def test_a_policy_requires_mfa_only_when_mfa_is_the_only_way_to_satisfy_its_grant(grant, operator, strength, expected):
    assert enforcement([ca_policy("p", grant=grant, operator=operator, strength=strength)]) == expected


def test_a_policy_without_grant_controls_requires_nothing():
    assert enforcement([ca_policy("p", grant=None)]) == NOT_ENFORCED


@pytest.mark.parametrize(
    ("client_types", "expected"),
    [
        ([], FULL),
        (["all"], FULL),
        (["browser", "mobileAppsAndDesktopClients"], PARTIAL),
        (["browser", "mobileAppsAndDesktopClients", "exchangeActiveSync", "other"], PARTIAL),
    ],
    ids=["empty", "all", "modern-only", "every-type-listed"],
)
def test_mfa_for_some_client_app_types_is_partial(client_types, expected):
    assert enforcement([ca_policy("p", client_types=client_types)]) == expected


def test_a_full_policy_beats_a_partial_one():
    assert enforcement([ca_policy("partial", apps=["office365"]), ca_policy("full", include_users=["alice"])]) == {
        "mfa_not_enforced": {},
        "mfa_partial_enforced": {"boss": "high"},
    }


@pytest.mark.parametrize("state", ["enabledForReportingButNotEnforced", "disabled"])
def test_a_report_only_or_disabled_policy_enforces_nothing(state):
    assert enforcement([ca_policy("p", state=state)]) == NOT_ENFORCED


def test_disabled_users_and_guests_are_not_put_through_the_mfa_rules():
    users = [person("off", enabled=False), person("guest", guest=True), person("alice")]
    found = mfa(tenant_files(users, unregistered=["off", "guest", "alice"]))
    assert found == {
        "mfa_not_enforced": {"alice": "high"},
        "mfa_partial_enforced": {},
        "mfa_not_registered": {"alice": "medium"},
    }


def test_a_policy_targets_roles_by_template_id_not_by_role_definition_id():
    by_template = ca_policy("p", include_users=[], include_roles=[GA_TEMPLATE])
    by_definition_id = ca_policy("q", include_users=[], include_roles=[GLOBAL_ADMIN["id"]])
    assert GLOBAL_ADMIN["id"] != GA_TEMPLATE
    assert enforcement([by_template])["mfa_not_enforced"] == {"alice": "high"}
    assert enforcement([by_definition_id]) == NOT_ENFORCED


def test_a_role_held_through_a_nested_group_is_targeted_and_makes_an_admin():
    files = tenant_files(
        STAFF,
        group_members={"g-admins": members(groups=["g-tier0"]), "g-tier0": members("alice")},
        assignments=[("g-admins", GLOBAL_ADMIN["id"])],
        policies=[ca_policy("p", include_users=[], include_roles=[GA_TEMPLATE], apps=["office365"])],
    )
    found = mfa(files)
    assert found["mfa_partial_enforced"] == {"alice": "high"}  # covered through the role, and an admin
    assert found["mfa_not_enforced"] == {"boss": "high"}


def test_an_excluded_role_wins_over_include_all():
    policy = ca_policy("p", exclude_roles=[GA_TEMPLATE])
    assert enforcement([policy]) == {"mfa_not_enforced": {"boss": "critical"}, "mfa_partial_enforced": {}}


def test_an_exclusion_group_wins_over_include_all():
    policy = ca_policy("p", exclude_groups=["g-break-glass"])
    found = enforcement([policy], group_members={"g-break-glass": members("boss")})
    assert found == {"mfa_not_enforced": {"boss": "critical"}, "mfa_partial_enforced": {}}


def test_an_excluded_user_wins_over_an_including_group():
    policy = ca_policy("p", include_users=[], include_groups=["g-staff"], exclude_users=["alice"])
    found = enforcement([policy], group_members={"g-staff": members("boss", "alice")})
    assert found == {"mfa_not_enforced": {"alice": "high"}, "mfa_partial_enforced": {}}


def test_guests_or_external_users_targets_guests_only():
    users = [person("guest", guest=True), person("alice")]
    context = context_of(
        tenant_files(
            users,
            policies=[
                ca_policy("guests", include_users=["GuestsOrExternalUsers"]),
                ca_policy("members", exclude_users=["GuestsOrExternalUsers"]),
            ],
        )
    )
    assert context.policy_users == {"guests": {"guest"}, "members": {"alice"}}


def test_none_includes_nobody():
    context = context_of(tenant_files(STAFF, policies=[ca_policy("p", include_users=["None"])]))
    assert context.policy_users == {"p": set()}
    assert enforcement([ca_policy("p", include_users=["None"])]) == NOT_ENFORCED


def test_group_membership_is_transitive_and_a_cycle_does_not_hang():
    cycle = {"g-a": members(groups=["g-b"]), "g-b": members("alice", groups=["g-c"]), "g-c": members(groups=["g-a"])}
    context = context_of(tenant_files(STAFF, group_members=cycle))
    assert context.group_users == {"g-a": {"alice"}, "g-b": {"alice"}, "g-c": {"alice"}}
    policy = ca_policy("p", include_users=[], include_groups=["g-c"])
    assert enforcement([policy], group_members=cycle)["mfa_not_enforced"] == {"boss": "critical"}


def test_security_defaults_enforce_mfa_fully_for_admins_and_partially_for_everyone_else():
    assert enforcement(security_defaults=True) == {"mfa_not_enforced": {}, "mfa_partial_enforced": {"alice": "medium"}}


def test_a_full_policy_beats_security_defaults_partial():
    assert enforcement([ca_policy("p", include_users=["alice"])], security_defaults=True) == FULL


@pytest.mark.parametrize(
    ("definition", "is_admin"),
    [
        (role("rd-x", "Exchange Administrator", "tmpl-x"), True),  # isPrivileged absent: the name decides
        (role("rd-x", "Exchange ADMINISTRATOR", "tmpl-x", privileged=None), True),  # null: likewise, any case
        (role("rd-x", "Ticket Viewer", "tmpl-x"), False),
        (role("rd-x", "Billing Administrator", "tmpl-x", privileged=False), False),  # false wins over the name
        (role("rd-x", "Security Reader", "tmpl-x", privileged=True), True),
    ],
    ids=["absent-administrator", "null-administrator", "absent-other-name", "false-administrator", "true-reader"],
)
def test_admin_is_a_holder_of_a_privileged_role(definition, is_admin):
    files = tenant_files([person("alice")], roles=[definition, READER], assignments=[("alice", "rd-x")])
    assert mfa(files)["mfa_not_enforced"] == {"alice": "critical" if is_admin else "high"}


def test_a_non_privileged_role_does_not_make_an_admin():
    files = tenant_files(
        [person("alice")],
        assignments=[("alice", READER["id"])],
        policies=[ca_policy("p", include_users=[], include_roles=[READER_TEMPLATE])],
    )
    assert mfa(files)["mfa_not_enforced"] == {}  # targeted through the role, and not an admin
    assert context_of(files).admins == set()


def test_mfa_not_registered_is_high_for_admins_and_medium_for_other_members():
    files = tenant_files(STAFF, assignments=[admin("boss")], policies=[ca_policy("p")], unregistered=["boss", "alice"])
    assert mfa(files)["mfa_not_registered"] == {"boss": "high", "alice": "medium"}


def test_mfa_not_registered_needs_a_registration_record():
    files = tenant_files(STAFF, policies=[ca_policy("p")], unrecorded=["alice"], unregistered=["boss"])
    analysis = analyze(files)
    assert raised(analysis, "mfa_not_registered") == {"boss": "medium"}
    evaluation = evaluation_of(analysis, "mfa_not_registered")
    assert evaluation.covers("boss") and not evaluation.covers("alice")


# --- PIM eligibility and guest objects (issue 14) -----------------------------------------------------


def test_a_user_eligible_for_a_privileged_role_is_an_admin_for_every_severity():
    files = tenant_files(STAFF, eligible=[admin("boss")])
    assert mfa(files)["mfa_not_enforced"] == {"boss": "critical", "alice": "high"}


def test_eligibility_through_a_group_makes_its_members_admins():
    files = tenant_files(STAFF, group_members={"pim": members("boss")}, eligible=[("pim", GLOBAL_ADMIN["id"])])
    assert context_of(files).admins == {"boss"}


def test_eligibility_for_a_role_that_is_not_privileged_makes_no_admin():
    files = tenant_files(STAFF, eligible=[("boss", READER["id"])])
    assert context_of(files).admins == set()


def test_role_targeted_policies_reach_active_holders_only():
    """Entra applies includeRoles to users who hold the role now; an eligible user must activate it first."""
    policy = ca_policy("admins", include_users=(), include_roles=(GA_TEMPLATE,))
    files = tenant_files(STAFF, policies=[policy], assignments=[admin("alice")], eligible=[admin("boss")])
    assert context_of(files).policy_users["admins"] == {"alice"}
    assert mfa(files)["mfa_not_enforced"] == {"boss": "critical"}


@pytest.mark.parametrize(
    ("types", "applies"),
    [("internalGuest,b2bCollaborationGuest", True), ("serviceProvider", True), ("none", False), ("", False)],
)
def test_a_policy_names_every_guest_when_its_guest_object_lists_any_guest_type(types, applies):
    users = [person("alice"), person("guest", guest=True)]
    policy = ca_policy("guests", include_users=())
    policy["conditions"]["users"]["includeGuestsOrExternalUsers"] = {"guestOrExternalUserTypes": types}
    everyone = ca_policy("all-but-guests")
    everyone["conditions"]["users"]["excludeGuestsOrExternalUsers"] = {"guestOrExternalUserTypes": types}
    context = context_of(tenant_files(users, policies=[policy, everyone]))
    assert context.policy_users["guests"] == ({"guest"} if applies else set())
    assert context.policy_users["all-but-guests"] == ({"alice"} if applies else {"alice", "guest"})
