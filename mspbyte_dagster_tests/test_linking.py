"""RULES "Who is who" and "Which policies apply", as the linker writes them to entity_relationships.

Each test imports a small snapshot and runs the pass up to `relationships`, on
SQLite and PostgreSQL, then reads the edges back by external id.
"""

import copy

import pytest
from sqlalchemy import literal_column, select

from mspbyte_dagster.lib.adapters.microsoft365.linking import RELATIONSHIP_TYPES
from mspbyte_dagster.lib.context import DataContextLoader
from mspbyte_dagster.lib.pipeline import PassOptions, run_tenant_pass
from mspbyte_dagster.lib.store.schema import entity_relationships
from mspbyte_dagster_tests.graph_builders import (
    assignment,
    directory,
    edges,
    groups_in,
    licensed,
    linked,
    policy,
    role,
    sku,
    users,
    users_in,
)
from mspbyte_dagster_tests.snapshots import import_files, user

LINK = ("m365_snapshot", "entities", "relationships", "tenant_context")
NONE = dict.fromkeys(RELATIONSHIP_TYPES, 0)


@pytest.fixture
def link(engine, tmp_path):
    """Import a snapshot (a callable: files -> the relationships stage's figures) and link it."""

    def run(files):
        import_files(engine, tmp_path / "store", files)
        result = run_tenant_pass(engine, "contoso", LINK, PassOptions(lease_wait_seconds=1))
        assert result.status == "succeeded", result.reason
        return result.stages["relationships"]

    return run


def applied(engine, policy_id: str) -> set[str]:
    """The users a policy applies to, as the context reads them from the edges the linker wrote (the same
    both ways: by policy, and by user)."""
    with engine.connect() as conn:
        context = DataContextLoader(conn).load("contoso")
    by_user = {uid for uid, policies in context.user_policies.items() if policy_id in policies}
    assert by_user == context.policy_users[policy_id]
    return by_user


def test_a_policy_for_all_users_applies_to_every_user(link, engine):
    link(
        directory(
            [*users("u0", "u1"), user("off", enabled=False), user("guest", user_type="Guest")],
            policies=[policy("p1", includeUsers=["All"])],
        )
    )
    assert applied(engine, "p1") == {"u0", "u1", "off", "guest"}


def test_an_excluded_group_wins_over_an_include(link, engine):
    link(
        directory(
            users("u0", "u1", "u2"),
            groups={"break-glass": users_in("u0")},
            policies=[
                policy("named", includeUsers=["u0", "u1"], excludeGroups=["break-glass"]),
                policy("all", includeUsers=["All"], excludeGroups=["break-glass"]),
            ],
        )
    )
    assert applied(engine, "named") == {"u1"}
    assert applied(engine, "all") == {"u1", "u2"}


def test_an_excluded_role_wins_over_all_users(link, engine):
    link(
        directory(
            users("u0", "u1", "u2"),
            roles=[role("r1")],
            assignments=[assignment("u0", "r1")],
            policies=[policy("p1", includeUsers=["All"], excludeRoles=["r1"])],
        )
    )
    assert applied(engine, "p1") == {"u1", "u2"}


def test_a_policy_for_most_users_is_written_as_the_users_it_does_not_apply_to(link, engine):
    """One edge and its exclusions, not one per user: seven policies for all users were 41,570 of a
    10,000-user tenant's 73,000 edges."""
    link(
        directory(
            users("u0", "u1", "u2", "u3"),
            policies=[policy("most", includeUsers=["All"], excludeUsers=["u0"]), policy("few", includeUsers=["u1"])],
        )
    )
    assert linked(engine, "applies_to_all") == {("most", "most")}
    assert linked(engine, "does_not_apply_to") == {("most", "u0")}
    assert linked(engine, "applies_to") == {("few", "u1")}
    assert applied(engine, "most") == {"u1", "u2", "u3"} and applied(engine, "few") == {"u1"}


def test_a_policy_that_comes_to_apply_to_most_users_changes_its_edges_not_whom_it_applies_to(link, engine):
    files = directory(users("u0", "u1", "u2", "u3"), policies=[policy("p1", includeUsers=["u0", "u1"])])
    link(files)
    assert linked(engine, "applies_to", "p1") == {"u0", "u1"} == applied(engine, "p1")
    files["conditional_access_policies"] = [policy("p1", includeUsers=["u0", "u1", "u2"])]
    counts = link(files)
    assert counts["removed"] == NONE | {"applies_to": 2}
    assert counts["created"] == NONE | {"applies_to_all": 1, "does_not_apply_to": 1}
    assert applied(engine, "p1") == {"u0", "u1", "u2"}


def test_membership_is_transitive_through_nested_groups(link, engine):
    link(
        directory(
            users("u0", "u1", "u2"),
            groups={"A": users_in("u0") + groups_in("B"), "B": users_in("u1") + groups_in("C"), "C": users_in("u2")},
        )
    )
    assert {(p, c): d for (k, p, c), d in edges(engine).items() if k == "member_of"} == {
        ("A", "u0"): {"direct": True},
        ("A", "u1"): {"direct": False},
        ("A", "u2"): {"direct": False},
        ("B", "u1"): {"direct": True},
        ("B", "u2"): {"direct": False},
        ("C", "u2"): {"direct": True},
    }


def test_a_policy_on_a_group_applies_to_the_members_of_its_nested_groups(link, engine):
    link(
        directory(
            users("u0", "u1", "u2"),
            groups={"A": groups_in("B"), "B": users_in("u1")},
            policies=[policy("p1", includeGroups=["A"])],
        )
    )
    assert applied(engine, "p1") == {"u1"}


def test_a_membership_cycle_ends_and_gives_both_memberships(link, engine):
    link(
        directory(
            users("u0", "u1"), groups={"A": users_in("u0") + groups_in("B"), "B": users_in("u1") + groups_in("A")}
        )
    )
    assert {(p, c): d for (k, p, c), d in edges(engine).items() if k == "member_of"} == {
        ("A", "u0"): {"direct": True},
        ("A", "u1"): {"direct": False},
        ("B", "u1"): {"direct": True},
        ("B", "u0"): {"direct": False},
    }


def test_policies_target_roles_by_template_id_and_assignments_name_the_definition_id(link, engine):
    link(
        directory(
            users("u0", "u1"),
            roles=[role("definition-7", template_id="template-7")],
            assignments=[assignment("u0", "definition-7")],
            policies=[
                policy("by-template", includeRoles=["template-7"]),
                policy("by-definition-id", includeRoles=["definition-7"]),
            ],
        )
    )
    assert linked(engine, "assigned_role") == {("definition-7", "u0")}
    assert applied(engine, "by-template") == {"u0"}
    assert applied(engine, "by-definition-id") == set()


def test_a_role_held_through_a_group_is_assigned_to_its_transitive_members(link, engine):
    link(
        directory(
            users("u0", "u1", "u2", "u3"),
            groups={"admins": users_in("u0") + groups_in("inner"), "inner": users_in("u1")},
            roles=[role("r1")],
            assignments=[assignment("admins", "r1"), assignment("u2", "r1")],
        )
    )
    assert {(p, c): d for (k, p, c), d in edges(engine).items() if k == "assigned_role"} == {
        ("r1", "u0"): {"direct": False, "via_groups": ["admins"]},
        ("r1", "u1"): {"direct": False, "via_groups": ["admins"]},
        ("r1", "u2"): {"direct": True, "via_groups": []},
    }


def test_a_role_targeted_policy_applies_to_holders_through_a_group(link, engine):
    link(
        directory(
            users("u0", "u1"),
            groups={"admins": users_in("u0")},
            roles=[role("r1")],
            assignments=[assignment("admins", "r1")],
            policies=[policy("p1", includeRoles=["r1"])],
        )
    )
    assert applied(engine, "p1") == {"u0"}


def test_guests_or_external_users_targets_guests_only(link, engine):
    link(
        directory(
            [*users("u0", "u1"), *users("g0", "g1", user_type="Guest")],
            policies=[policy("p1", includeUsers=["GuestsOrExternalUsers"])],
        )
    )
    assert applied(engine, "p1") == {"g0", "g1"}


@pytest.mark.parametrize("state", ["disabled", "enabledForReportingButNotEnforced"])
def test_a_policy_that_is_not_enabled_applies_to_nobody(link, engine, state):
    counts = link(
        directory(
            users("u0", "u1"),
            groups={"g1": users_in("u0")},
            policies=[policy("p1", state, includeUsers=["All"], includeGroups=["g1"])],
        )
    )
    assert applied(engine, "p1") == set()
    assert counts["edges"]["applies_to"] == counts["edges"]["applies_to_all"] == 0


def test_each_assigned_sku_gives_a_licence_edge(link, engine):
    link(
        directory(
            [licensed("u0", "s1", "s2"), licensed("u1", "s1"), licensed("u2"), licensed("u3", "unsubscribed")],
            skus=[sku("s1"), sku("s2"), sku("s3")],
        )
    )
    assert linked(engine, "has_license") == {("s1", "u0"), ("s2", "u0"), ("s1", "u1")}


def everything() -> dict[str, object]:
    """Two users linked every way: a group, a role, a policy and a licence each."""
    return directory(
        [licensed("u0", "s1"), licensed("u1", "s1")],
        groups={"g1": users_in("u0", "u1")},
        roles=[role("r1")],
        assignments=[assignment("u0", "r1"), assignment("u1", "r1")],
        policies=[policy("p1", includeUsers=["All"])],
        skus=[sku("s1")],
        eligible=[assignment("u0", "r1"), assignment("u1", "r1")],
    )


def _leave_group(files):
    files["group_members"]["g1"] = users_in("u1")


def _lose_role(files):
    files["role_assignments"] = [a for a in files["role_assignments"] if a["principalId"] != "u0"]


def _lose_eligibility(files):
    files["role_eligibilities"] = [e for e in files["role_eligibilities"] if e["principalId"] != "u0"]


def _lose_licence(files):
    files["users"][0]["assignedLicenses"] = []


REMOVALS = {
    "membership": (_leave_group, ("member_of", "g1", "u0")),
    "role assignment": (_lose_role, ("assigned_role", "r1", "u0")),
    "eligibility": (_lose_eligibility, ("eligible_role", "r1", "u0")),
    "licence": (_lose_licence, ("has_license", "s1", "u0")),
}


@pytest.mark.parametrize("change", REMOVALS)
def test_an_edge_goes_when_its_membership_role_or_licence_goes(link, engine, change):
    files = everything()
    link(files)
    before = edges(engine)
    remove, gone = REMOVALS[change]
    changed = copy.deepcopy(files)
    remove(changed)
    counts = link(changed)
    assert gone in before
    assert edges(engine).keys() == before.keys() - {gone}
    assert counts["removed"] == NONE | {gone[0]: 1}
    assert counts["created"] == NONE


def test_a_user_removed_from_the_directory_loses_its_edges_even_while_a_group_still_lists_it(link, engine):
    """Graph's reads are not atomic: group_members may still name a user that users.json no longer has."""
    files = everything()
    link(files)
    gone = copy.deepcopy(files)
    gone["users"] = [u for u in gone["users"] if u["id"] != "u0"]
    counts = link(gone)
    assert edges(engine).keys() == {
        ("member_of", "g1", "u1"),
        ("assigned_role", "r1", "u1"),
        ("eligible_role", "r1", "u1"),
        ("applies_to_all", "p1", "p1"),
        ("has_license", "s1", "u1"),
    }
    assert counts["removed"] == NONE | dict.fromkeys(("member_of", "assigned_role", "eligible_role", "has_license"), 1)
    assert applied(engine, "p1") == {"u1"}


def test_an_unchanged_second_pass_creates_updates_and_removes_nothing(link, engine):
    files = everything()
    files["groups"].append({"id": "outer", "displayName": "Outer", "securityEnabled": True, "mailEnabled": False})
    files["group_members"]["outer"] = groups_in("g1")
    files["role_assignments"].append(assignment("outer", "r1"))
    first = link(files)
    before = edges(engine)
    second = link(copy.deepcopy(files))
    assert second["created"] == second["removed"] == NONE and second["updated"] == 0
    assert second["edges"] == first["edges"]
    assert edges(engine) == before


def test_a_first_link_writes_its_edges_in_the_key_order_of_their_table(link, engine):
    """Index entries then fill one page after another: out of order, the 73,000 edges of a 10,000-user
    tenant took a third longer to write (docs/benchmarks.md)."""
    files = everything()
    files["users"] += [licensed(f"u{n}", "s1") for n in range(2, 12)]
    files["group_members"]["g1"] = users_in(*(f"u{n}" for n in reversed(range(12))))
    files["conditional_access_policies"] = [
        policy("for-all", includeUsers=["All"], excludeUsers=["u3", "u1"]),
        policy("for-some", includeUsers=["u5", "u4"]),
    ]
    link(files)
    c = entity_relationships.c
    written_order = literal_column("ctid" if engine.dialect.name == "postgresql" else "rowid")
    with engine.connect() as conn:
        written = conn.execute(select(c.relationship_type, c.parent_id, c.child_id).order_by(written_order)).all()
    assert {row[0] for row in written} == set(RELATIONSHIP_TYPES) and len(written) == 2 * 12 + 2 * 2 + 1 + 2 + 2
    assert written == sorted(written)
