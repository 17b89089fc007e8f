"""RULES "policy" rows: policy_gap, no_conditional_access, report_only_policy, legacy_auth_not_blocked."""

import pytest

from mspbyte_dagster_tests.rules import admin, analyze, ca_policy, person, raised, tenant_files

STAFF = [person("boss"), person("alice")]
REPORT_ONLY = "enabledForReportingButNotEnforced"


def policy(policies=(), users=STAFF, **files) -> dict[str, dict[str, str]]:
    """Each policy alert type -> {entity: severity}, boss being an admin."""
    analysis = analyze(tenant_files(users, policies=policies, assignments=[admin("boss")], **files))
    return {
        t: raised(analysis, t)
        for t in ("policy_gap", "no_conditional_access", "report_only_policy", "legacy_auth_not_blocked")
    }


def test_policy_gap_is_high_for_admins_and_medium_for_other_members():
    excluding_everyone = ca_policy("p", exclude_users=["boss", "alice"])
    assert policy([excluding_everyone])["policy_gap"] == {"boss": "high", "alice": "medium"}


def test_any_enabled_policy_that_applies_closes_the_gap_whatever_its_grant():
    assert policy([ca_policy("p", grant=["compliantDevice"], include_users=["alice"])])["policy_gap"] == {
        "boss": "high"
    }


@pytest.mark.parametrize("state", [REPORT_ONLY, "disabled"])
def test_a_policy_that_is_not_enabled_applies_to_nobody(state):
    assert policy([ca_policy("p", state=state)])["policy_gap"] == {"boss": "high", "alice": "medium"}


def test_policy_gap_is_not_raised_with_security_defaults_on():
    assert policy(security_defaults=True)["policy_gap"] == {}


def test_policy_gap_skips_disabled_users_and_guests():
    users = [person("off", enabled=False), person("guest", guest=True), person("alice")]
    assert policy(users=users)["policy_gap"] == {"alice": "medium"}


def test_no_conditional_access_is_high_when_no_policy_is_enabled():
    found = policy([ca_policy("p", state=REPORT_ONLY), ca_policy("q", state="disabled")])
    assert found["no_conditional_access"] == {"contoso": "high"}


@pytest.mark.parametrize(
    ("policies", "security_defaults"),
    [([ca_policy("p", grant=["compliantDevice"])], False), ([], True)],
    ids=["enabled-policy", "security-defaults"],
)
def test_no_conditional_access_is_not_raised_with_an_enabled_policy_or_security_defaults(policies, security_defaults):
    assert policy(policies, security_defaults=security_defaults)["no_conditional_access"] == {}


def test_report_only_policy_is_low_on_each_report_only_policy():
    found = policy([ca_policy("p", state=REPORT_ONLY), ca_policy("q", state="disabled"), ca_policy("r")])
    assert found["report_only_policy"] == {"p": "low"}


def test_report_only_policy_is_raised_with_security_defaults_on_too():
    assert policy([ca_policy("p", state=REPORT_ONLY)], security_defaults=True)["report_only_policy"] == {"p": "low"}


def test_legacy_auth_not_blocked_is_high_without_a_blocking_policy():
    assert policy([ca_policy("p")])["legacy_auth_not_blocked"] == {"contoso": "high"}


@pytest.mark.parametrize(
    ("client_types", "blocked"),
    [
        ([], True),
        (["all"], True),
        (["exchangeActiveSync", "other"], True),
        (["browser", "exchangeActiveSync", "other"], True),
        (["exchangeActiveSync"], False),
        (["other"], False),
        (["browser", "mobileAppsAndDesktopClients"], False),
    ],
    ids=["empty", "all", "both-legacy", "both-legacy-and-browser", "eas-only", "other-only", "modern-only"],
)
def test_a_block_for_all_users_blocks_legacy_auth_only_over_every_or_both_legacy_clients(client_types, blocked):
    found = policy([ca_policy("block", grant=["block"], client_types=client_types)])
    assert found["legacy_auth_not_blocked"] == ({} if blocked else {"contoso": "high"})


def test_a_blocking_policys_exclusions_do_not_matter():
    block = ca_policy("block", grant=["block"], client_types=["all"], exclude_users=["boss"], exclude_groups=["g"])
    assert policy([block], group_members={"g": []})["legacy_auth_not_blocked"] == {}


@pytest.mark.parametrize(
    "block",
    [
        ca_policy("block", grant=["block"], include_users=[], include_groups=["g"]),
        ca_policy("block", grant=["block"], include_users=["alice", "boss"]),
        ca_policy("block", grant=["block"], state=REPORT_ONLY),
        ca_policy("block", grant=["mfa"]),
    ],
    ids=["group", "named-users", "report-only", "not-a-block"],
)
def test_a_block_that_is_not_an_enabled_block_for_all_users_does_not_block_legacy_auth(block):
    found = policy([block], group_members={"g": []})
    assert found["legacy_auth_not_blocked"] == {"contoso": "high"}


def test_legacy_auth_not_blocked_is_not_raised_with_security_defaults_on():
    assert policy(security_defaults=True)["legacy_auth_not_blocked"] == {}
