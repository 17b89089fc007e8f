"""RULES "Inputs": a rule is evaluated only when its inputs were read; an alert whose rule was not
evaluated is left exactly as it is. One test per row of the table, on SQLite and PostgreSQL.

Each scenario raises alerts, then imports a snapshot that would resolve them but where one input
is missing or marked incomplete (the alerts must stay, the pass recording why), then the same
snapshot read whole (the alerts resolve: the scenario could have failed).
"""

import pytest

from mspbyte_dagster.lib.context import DIRECTORY_FILES
from mspbyte_dagster_tests.rules import (
    BLOCK_LEGACY,
    MFA_FILES,
    MFA_POLICY_TYPES,
    admin,
    ca_policy,
    damaged,
    members,
    person,
    signin,
    sku,
    tenant_files,
)

HOW = pytest.mark.parametrize("how", ["missing", "incomplete"])
REPORT_ONLY = "enabledForReportingButNotEnforced"
SKUS = [sku("e3", consumed=3, prepaid=5)]


def unread(*stems: str, first: str = "missing"):
    """Parametrize (stem, how) over every stem once, alternating missing and incomplete: both kinds per row."""
    kinds = ("missing", "incomplete") if first == "missing" else ("incomplete", "missing")
    return pytest.mark.parametrize(("stem", "how"), [(stem, kinds[n % 2]) for n, stem in enumerate(stems)])


def label(stem: str) -> str:
    """How a pass names an input it could not read."""
    return "sign-in data" if stem == "signInActivity" else stem


def unread_then_read(tenant, before: dict, after: dict, stem: str, how: str, keys: list) -> dict:
    """Alerts `keys` raised on `before` stay exactly as they were while `stem` is not read, then resolve.

    Returns the findings stage figures of the pass that could not read `stem`.
    """
    tenant.sync(before)
    raised = tenant.alerts()
    assert set(keys) <= set(raised), sorted(raised)
    figures = tenant.sync(damaged(after, stem, how)).stages["findings"]
    assert {k: tenant.alerts()[k] for k in keys} == {k: raised[k] for k in keys}
    evaluations = tenant.evaluations()
    for alert_type, entity_id, _sku in keys:
        evaluation = evaluations[alert_type]
        if evaluation.evaluated:
            assert entity_id in evaluation.skipped, (alert_type, entity_id)
        else:
            assert label(stem) in evaluation.reason and label(stem) in figures["not_evaluated"][alert_type]
            assert alert_type not in figures["by_alert_type"]
    tenant.sync(after)
    assert {k: tenant.alerts()[k].status for k in keys} == dict.fromkeys(keys, "resolved")
    return figures


# --- mfa_not_enforced, mfa_partial_enforced, policy_gap, no_conditional_access, report_only_policy,
#     legacy_auth_not_blocked: directory files, conditional_access_policies, security_defaults

STAFF = [person("boss"), person("alice"), person("bob")]
WEAK = tenant_files(
    STAFF,
    assignments=[admin("boss")],
    group_members={"g-sales": members("alice")},
    policies=[
        ca_policy("p-sales", include_users=[], include_groups=["g-sales"], apps=["office365"]),
        ca_policy("p-pilot", include_users=["None"], state=REPORT_ONLY),
    ],
)
NOTHING_ENABLED = tenant_files(
    STAFF,
    assignments=[admin("boss")],
    group_members={"g-sales": members("alice")},
    policies=[ca_policy("p-pilot", include_users=["None"], state=REPORT_ONLY)],
)
# Every member fully covered, legacy auth blocked, the pilot enforced (for nobody).
STRONG = tenant_files(
    STAFF,
    assignments=[admin("boss")],
    group_members={"g-sales": members("alice")},
    policies=[ca_policy("p-sales", apps=["All"]), ca_policy("p-pilot", include_users=["None"]), BLOCK_LEGACY],
)
WEAK_ALERTS = [
    ("mfa_not_enforced", "boss", ""),
    ("mfa_partial_enforced", "alice", ""),
    ("policy_gap", "bob", ""),
    ("report_only_policy", "p-pilot", ""),
    ("legacy_auth_not_blocked", "contoso", ""),
]


@unread(*MFA_FILES)
def test_mfa_and_policy_rules_need_the_directory_policies_and_security_defaults(tenant, stem, how):
    figures = unread_then_read(tenant, WEAK, STRONG, stem, how, WEAK_ALERTS)
    assert set(MFA_POLICY_TYPES) <= set(figures["not_evaluated"])
    assert "policy" not in figures["analyses_ran"]


@unread("users", "conditional_access_policies", "security_defaults", first="incomplete")
def test_no_conditional_access_needs_the_same_inputs(tenant, stem, how):
    unread_then_read(tenant, NOTHING_ENABLED, STRONG, stem, how, [("no_conditional_access", "contoso", "")])


# --- mfa_not_registered: directory files, user_registration_details (a user without a record: not evaluated)

NOT_REGISTERED = tenant_files(STAFF, policies=[ca_policy("p")], unregistered=["alice"])
REGISTERED = tenant_files(STAFF, policies=[ca_policy("p")])


@unread(*DIRECTORY_FILES, "user_registration_details", first="incomplete")
def test_mfa_not_registered_needs_the_directory_and_registration_details(tenant, stem, how):
    unread_then_read(tenant, NOT_REGISTERED, REGISTERED, stem, how, [("mfa_not_registered", "alice", "")])


def test_a_user_without_a_registration_record_is_not_evaluated_and_keeps_its_alert(tenant):
    tenant.sync(NOT_REGISTERED)
    before = tenant.alert("mfa_not_registered", "alice")
    tenant.sync(tenant_files(STAFF, policies=[ca_policy("p")], unrecorded=["alice"]))
    assert tenant.alert("mfa_not_registered", "alice") == before
    evaluation = tenant.evaluations()["mfa_not_registered"]
    assert evaluation.evaluated and "alice" in evaluation.skipped and "bob" not in evaluation.skipped


# --- license_overuse, license_unused: subscribed_skus


@HOW
def test_license_overuse_and_unused_need_subscribed_skus(tenant, how):
    bought = [sku("e3", consumed=6, prepaid=5), sku("ems", consumed=1, prepaid=5)]
    balanced = [sku("e3", consumed=5, prepaid=5), sku("ems", consumed=5, prepaid=5)]
    unread_then_read(
        tenant,
        tenant_files(STAFF, skus=bought),
        tenant_files(STAFF, skus=balanced),
        "subscribed_skus",
        how,
        [("license_overuse", "e3", ""), ("license_unused", "ems", "")],
    )


def test_a_sku_without_prepaid_units_is_not_judged_and_keeps_its_alerts(tenant):
    """RULES: a sku without prepaidUnits is skipped, so its rule was not evaluated for it (lifecycle step 5)."""
    tenant.sync(tenant_files(STAFF, skus=[sku("e3", consumed=6, prepaid=5), sku("ems", consumed=1, prepaid=5)]))
    before = tenant.alerts()
    tenant.sync(tenant_files(STAFF, skus=[sku("e3", consumed=6), sku("ems", consumed=1)]))
    for key in (("license_overuse", "e3", ""), ("license_unused", "ems", "")):
        assert tenant.alerts()[key] == before[key]


# --- license_waste for a disabled user: users, subscribed_skus


def disabled_holder(*licences, extra=()) -> dict:
    return tenant_files([*STAFF, person("off", enabled=False, skus=licences), *extra], skus=SKUS)


@unread("users", "subscribed_skus")
def test_license_waste_for_a_disabled_user_needs_users_and_subscribed_skus(tenant, stem, how):
    unread_then_read(tenant, disabled_holder("e3"), disabled_holder(), stem, how, [("license_waste", "off", "e3")])


def test_license_waste_for_a_disabled_user_needs_nothing_else(tenant):
    tenant.sync(disabled_holder("e3"))
    later = disabled_holder(extra=[person("left", enabled=False, skus=["e3"])])
    for stem in (*DIRECTORY_FILES[1:], "signInActivity"):
        later = damaged(later, stem, "missing")
    tenant.sync(later)
    assert tenant.alert("license_waste", "off", "e3").status == "resolved"
    assert tenant.alert("license_waste", "left", "e3").status == "active"


# --- license_waste for a stale user: directory files, subscribed_skus, sign-in data
# --- stale_user: directory files, sign-in data


def idle_holder(days_since_sign_in: int) -> dict:
    return tenant_files([*STAFF, person("idle", skus=["e3"], sign_in=signin(days_since_sign_in))], skus=SKUS)


STALE_WASTE, STALE_USER = ("license_waste", "idle", "e3"), ("stale_user", "idle", "")


@unread(*DIRECTORY_FILES, "signInActivity")
def test_stale_user_and_license_waste_for_a_stale_user_need_the_directory_and_sign_in_data(tenant, stem, how):
    unread_then_read(tenant, idle_holder(200), idle_holder(1), stem, how, [STALE_USER, STALE_WASTE])


@HOW
def test_license_waste_for_a_stale_user_needs_subscribed_skus_too(tenant, how):
    unread_then_read(tenant, idle_holder(200), idle_holder(1), "subscribed_skus", how, [STALE_WASTE])


def test_stale_user_does_not_need_subscribed_skus(tenant):
    tenant.sync(idle_holder(200))
    tenant.sync(damaged(idle_holder(1), "subscribed_skus", "missing"))
    assert tenant.alert(*STALE_USER).status == "resolved"
    assert tenant.alert(*STALE_WASTE).status == "active"


def test_a_tenant_without_p1_keeps_its_stale_alerts_and_still_judges_disabled_users(tenant):
    tenant.sync(
        tenant_files(
            [*STAFF, person("idle", skus=["e3"], sign_in=signin(200)), person("off", enabled=False, skus=["e3"])],
            skus=SKUS,
        )
    )
    kept = {k: tenant.alerts()[k] for k in (STALE_USER, STALE_WASTE)}
    no_p1 = [
        *STAFF,
        person("idle", skus=["e3"]),
        person("off", enabled=False),
        person("left", enabled=False, skus=["e3"]),
    ]
    figures = tenant.sync(damaged(tenant_files(no_p1, skus=SKUS), "signInActivity", "missing")).stages["findings"]
    assert {k: tenant.alerts()[k] for k in kept} == kept
    assert tenant.alert("license_waste", "off", "e3").status == "resolved"
    assert tenant.alert("license_waste", "left", "e3").status == "active"
    assert "sign-in data" in figures["not_evaluated"]["stale_user"]
    assert "stale" not in figures["analyses_ran"] and "license" in figures["analyses_ran"]
    assert "idle" in tenant.evaluations()["license_waste"].skipped


def test_a_group_member_missing_from_users_is_ignored(tenant):
    """Graph reads are not atomic: a member listed in group_members may be gone from users."""
    files = tenant_files(
        STAFF,
        group_members={"g-sales": members("alice", "ghost")},
        policies=[ca_policy("p", include_users=[], include_groups=["g-sales"])],
    )
    tenant.sync(files)
    assert set(tenant.alerts()) >= {("mfa_not_enforced", "bob", ""), ("policy_gap", "bob", "")}
    assert tenant.alert("mfa_not_enforced", "alice") is None
