"""RULES "Alert lifecycle" (AlertManager), one test per step, on SQLite and PostgreSQL."""

from datetime import timedelta

from sqlalchemy import select

from mspbyte_dagster.lib.store.schema import entities
from mspbyte_dagster_tests.rules import (
    CAPTURED,
    LIFECYCLE_COUNTS,
    admin,
    ca_policy,
    captured_later,
    damaged,
    person,
    poisoned_alert_events,
    signin,
    sku,
    tenant_files,
)

MFA_FOR_ALL = ca_policy("p-mfa")
BLOCK = ca_policy("p-block", grant=["block"])  # blocks legacy auth, applies to all, requires no MFA


def staff(*users, policies=(MFA_FOR_ALL, BLOCK), **files) -> dict:
    """A well-run tenant (no tenant-level alerts) holding the given users."""
    return tenant_files([person("ok"), *users], policies=policies, **files)


def counts(result) -> dict[str, int]:
    return {action: result.stages["alerts"][action] for action in LIFECYCLE_COUNTS}


def nothing_happened(result) -> bool:
    return counts(result) == dict.fromkeys(LIFECYCLE_COUNTS, 0)


def actions(tenant, row) -> list[str]:
    return [event.action for event in tenant.events(row.id)]


def test_step1_a_new_finding_creates_an_active_alert(tenant):
    result = tenant.sync(staff(person("off", enabled=False, skus=["e3"]), skus=[sku("e3", 1, prepaid=1)]))
    assert counts(result) == {"created": 1, "updated": 0, "resolved": 0, "reopened": 0}
    row = tenant.alert("license_waste", "off", "e3")
    assert (row.status, row.severity, row.analysis_type, row.entity_type) == ("active", "medium", "license", "user")
    assert row.first_seen_at == row.last_seen_at == CAPTURED and row.times_reopened == 0 and row.resolved_at is None
    (event,) = tenant.events(row.id)
    assert (event.action, event.status, event.severity, event.run_id) == ("created", "active", "medium", "pass-1")


def test_a_tenant_level_alert_is_keyed_by_the_tenant_and_has_no_sku(tenant):
    tenant.sync(staff(policies=[MFA_FOR_ALL]))
    row = tenant.alert("legacy_auth_not_blocked")
    assert (row.entity_type, row.entity_id, row.sku_id) == ("tenant", "contoso", "")


def test_step2_an_active_alert_is_updated_only_when_severity_or_details_change(tenant):
    files = staff(person("alice"), unregistered=["alice"])
    tenant.sync(files)
    first = tenant.alert("mfa_not_registered", "alice")
    assert nothing_happened(tenant.sync(files))
    result = tenant.sync(staff(person("alice"), unregistered=["alice"], assignments=[admin("alice")]))
    assert counts(result) == {"created": 0, "updated": 1, "resolved": 0, "reopened": 0}
    row = tenant.alert("mfa_not_registered", "alice")
    assert (row.id, row.severity, row.details, row.status) == (first.id, "high", {"admin": True}, "active")
    assert actions(tenant, row) == ["created", "updated"]


def test_step2_an_unchanged_tenant_captured_later_moves_last_seen_without_updating(tenant):
    files = staff(person("idle", skus=["e3"], sign_in=signin(200)), skus=[sku("e3", 1, prepaid=1)])
    tenant.sync(files)
    before = tenant.alerts()
    later = captured_later(files, 7)  # days since the last sign-in grow: not a change
    assert nothing_happened(tenant.sync(later))
    after = tenant.alerts()
    assert set(after) == set(before) and {k[0] for k in after} == {"stale_user", "license_waste"}
    for key, row in after.items():
        assert row.last_seen_at == CAPTURED + timedelta(days=7) and row.updated_at == before[key].updated_at
        assert (row.severity, row.details, row.status) == (before[key].severity, before[key].details, "active")
        assert actions(tenant, row) == ["created"]


def test_step3_a_suppressed_alert_stays_suppressed_and_its_last_seen_moves(tenant):
    files = staff(person("off", enabled=False, skus=["e3"]), skus=[sku("e3", 1, prepaid=1)])
    tenant.sync(files)
    tenant.suppress("license_waste", "off", sku_id="e3", until=CAPTURED + timedelta(days=30))
    result = tenant.sync(captured_later(files, 10))
    assert nothing_happened(result)
    row = tenant.alert("license_waste", "off", "e3")
    assert row.status == "suppressed" and row.last_seen_at == CAPTURED + timedelta(days=10)
    assert len(tenant.alerts()) == 1 and actions(tenant, row) == ["created"]  # no active twin


def test_step3_an_expired_suppression_becomes_active_again(tenant):
    files = staff(person("off", enabled=False, skus=["e3"]), skus=[sku("e3", 1, prepaid=1)])
    tenant.sync(files)
    tenant.suppress("license_waste", "off", sku_id="e3", until=CAPTURED + timedelta(days=30))
    tenant.run(now=CAPTURED + timedelta(days=29))
    assert tenant.alert("license_waste", "off", "e3").status == "suppressed"
    result = tenant.run(now=CAPTURED + timedelta(days=31))
    assert counts(result)["reopened"] == 1
    row = tenant.alert("license_waste", "off", "e3")
    assert row.status == "active" and actions(tenant, row) == ["created", "reopened"]


def test_step4_a_resolved_alert_reopens_on_the_same_row(tenant):
    idle = staff(person("idle", sign_in=signin(200)))
    tenant.sync(idle)
    first = tenant.alert("stale_user", "idle")
    tenant.sync(captured_later(staff(person("idle", sign_in=signin(1))), 1))
    resolved = tenant.alert("stale_user", "idle")
    assert resolved.status == "resolved" and resolved.resolved_at == CAPTURED + timedelta(days=1)
    result = tenant.sync(captured_later(idle, 2))
    assert counts(result)["reopened"] == 1 and counts(result)["created"] == 0
    row = tenant.alert("stale_user", "idle")
    assert (row.id, row.status, row.times_reopened, row.resolved_at) == (first.id, "active", 1, None)
    assert row.first_seen_at == CAPTURED and row.last_seen_at == CAPTURED + timedelta(days=2)
    assert actions(tenant, row) == ["created", "resolved", "reopened"]


def test_step5_an_alert_resolves_when_its_rule_ran_and_found_nothing(tenant):
    tenant.sync(staff(person("alice"), policies=[BLOCK]))
    assert tenant.alert("mfa_not_enforced", "alice").status == "active"
    result = tenant.sync(staff(person("alice")))
    assert counts(result)["resolved"] == 2  # alice's and ok's mfa_not_enforced
    row = tenant.alert("mfa_not_enforced", "alice")
    assert row.status == "resolved" and row.resolved_at == CAPTURED and actions(tenant, row) == ["created", "resolved"]


def test_step5_a_suppressed_alert_resolves_when_its_rule_ran_and_found_nothing(tenant):
    tenant.sync(staff(person("alice"), policies=[BLOCK]))
    tenant.suppress("mfa_not_enforced", "alice", until=CAPTURED + timedelta(days=30))
    tenant.sync(staff(person("alice")))
    assert tenant.alert("mfa_not_enforced", "alice").status == "resolved"


def test_step5_an_alert_whose_rule_was_not_evaluated_is_left_exactly_as_it_is(tenant):
    tenant.sync(staff(person("alice"), policies=[BLOCK]))
    tenant.suppress("mfa_not_enforced", "ok", until=CAPTURED + timedelta(days=30))
    before = tenant.alerts()
    result = tenant.sync(damaged(captured_later(staff(person("alice")), 3), "conditional_access_policies", "missing"))
    assert nothing_happened(result)
    assert tenant.alerts() == before  # not even last seen moves: no finding, no evaluation


def test_step6_alerts_of_an_entity_removed_by_the_sweep_resolve_as_entity_removed(tenant):
    files = staff(person("off", enabled=False, skus=["e3", "ems"]), skus=[sku("e3", 1, 1), sku("ems", 1, 1)])
    tenant.sync(files)
    tenant.suppress("license_waste", "off", sku_id="ems", until=CAPTURED + timedelta(days=30))
    gone = files | {"users": [u for u in files["users"] if u["id"] != "off"]}
    result = tenant.sync(gone)
    assert counts(result)["resolved"] == 2
    for sku_id in ("e3", "ems"):
        row = tenant.alert("license_waste", "off", sku_id)
        assert (row.status, row.resolved_reason) == ("resolved", "entity_removed")


def test_alerts_resolved_in_one_pass_for_different_reasons_each_keep_their_own(tenant):
    """Written together (the same columns change), yet not to the same values."""
    holder = person("off", enabled=False, skus=["e3"])
    tenant.sync(staff(person("alice"), holder, policies=[BLOCK], skus=[sku("e3", 1, 1)]))
    later = captured_later(staff(person("alice"), skus=[sku("e3", 1, 1)]), 1)  # MFA for all again; off is gone
    assert counts(tenant.sync(later))["resolved"] == 3  # alice's and ok's mfa_not_enforced, off's licence
    for alert, reason in (
        (("mfa_not_enforced", "alice"), "not_found"),
        (("license_waste", "off", "e3"), "entity_removed"),
    ):
        row = tenant.alert(*alert)
        assert (row.status, row.resolved_reason, row.resolved_at) == ("resolved", reason, CAPTURED + timedelta(days=1))


def test_step6_a_policy_removed_by_the_sweep_takes_its_alert_with_it(tenant):
    pilot = ca_policy("p-pilot", state="enabledForReportingButNotEnforced")
    tenant.sync(staff(policies=[MFA_FOR_ALL, BLOCK, pilot]))
    tenant.sync(staff())
    row = tenant.alert("report_only_policy", "p-pilot")
    assert (row.status, row.resolved_reason) == ("resolved", "entity_removed")


def busy_tenant() -> dict:
    """Every analysis type fires: MFA partly enforced, a gap, a pilot, stale and disabled holders, skus off."""
    return tenant_files(
        [
            person("boss", sign_in=signin(100)),
            person("alice", skus=["e3"]),
            person("off", enabled=False, skus=["e3"]),
            person("guest", guest=True, sign_in=signin(None), created_days=200),
        ],
        assignments=[admin("boss")],
        unregistered=["alice"],
        policies=[
            ca_policy("p", include_users=["alice"], apps=["office365"]),
            ca_policy("p-pilot", state="enabledForReportingButNotEnforced"),
        ],
        skus=[sku("e3", consumed=3, prepaid=2), sku("ems", consumed=0, prepaid=5)],
    )


def test_a_second_pass_over_the_same_snapshot_changes_nothing(tenant):
    files = busy_tenant()
    tenant.sync(files)
    tenant.suppress("stale_user", "guest", until=CAPTURED + timedelta(days=30))
    tenant.sync(captured_later(files, 1) | {"subscribed_skus": [sku("e3", consumed=3, prepaid=3)]})
    alerts_before, events_before = tenant.alerts(), tenant.events()
    assert {row.status for row in alerts_before.values()} == {"active", "suppressed", "resolved"}
    assert len({k[0] for k in alerts_before}) >= 9
    assert nothing_happened(tenant.run())
    assert tenant.alerts() == alerts_before and tenant.events() == events_before


def test_alert_events_are_append_only_and_record_every_action(tenant):
    files = staff(person("alice"), unregistered=["alice"])
    steps = [
        (files, "created"),
        (staff(person("alice")), "resolved"),
        (files, "reopened"),
        (staff(person("alice"), unregistered=["alice"], assignments=[admin("alice")]), "updated"),
    ]
    logged = []
    for snapshot, action in steps:
        tenant.sync(snapshot)
        events = tenant.events()
        assert events[: len(logged)] == logged  # earlier events untouched
        assert [e.action for e in events[len(logged) :]] == [action]
        logged = events
    assert {e.alert_id for e in logged} == {tenant.alert("mfa_not_registered", "alice").id}
    assert [(e.run_id, e.status, e.severity) for e in logged] == [
        ("pass-1", "active", "medium"),
        ("pass-2", "resolved", "medium"),
        ("pass-3", "active", "medium"),
        ("pass-4", "active", "high"),
    ]


def test_each_alert_a_pass_creates_has_its_own_created_event(tenant):
    """A pass's new alerts and their events are written in bulk: each event names its own alert."""
    users = [person("off", enabled=False, skus=["e3"]), person("alice"), person("idle", sign_in=signin(200))]
    tenant.sync(staff(*users, unregistered=["alice"], skus=[sku("e3", 1, prepaid=1)]))
    rows = tenant.alerts()
    assert len({(row.severity, str(row.details)) for row in rows.values()}) >= 3
    for row in rows.values():
        (event,) = tenant.events(row.id)
        assert (event.action, event.severity, event.details) == ("created", row.severity, row.details)


def test_entity_state_is_the_highest_severity_of_its_active_alerts(tenant):
    policies = [ca_policy("p-block", grant=["block"], exclude_users=["boss"])]
    tenant.sync(staff(person("boss"), policies=policies, assignments=[admin("boss")], unregistered=["boss"]))
    assert tenant.state("user", "boss") == "critical"  # mfa_not_enforced critical, policy_gap high, not registered high
    assert tenant.state("tenant", "contoso") == "normal" and tenant.state("user", "ok") == "high"
    tenant.sync(
        staff(person("boss"), policies=[MFA_FOR_ALL, *policies], assignments=[admin("boss")], unregistered=["boss"])
    )
    assert tenant.state("user", "boss") == "high" and tenant.state("user", "ok") == "normal"
    tenant.suppress("mfa_not_registered", "boss", until=CAPTURED + timedelta(days=30))
    tenant.run()
    assert tenant.state("user", "boss") == "normal"  # a suppressed alert is not active


def test_an_entity_removed_by_the_sweep_goes_back_to_normal_with_its_alerts(tenant):
    files = staff(person("off", enabled=False, skus=["e3"]), skus=[sku("e3", 1, prepaid=1)])
    tenant.sync(files)
    assert tenant.state("user", "off") == "medium"
    tenant.sync(files | {"users": [u for u in files["users"] if u["id"] != "off"]})
    assert tenant.alert("license_waste", "off", "e3").status == "resolved"
    assert tenant.state("user", "off") == "normal"


def entity_rows(engine) -> list:
    with engine.connect() as conn:
        return conn.execute(select(entities).order_by(entities.c.id)).all()


def test_a_failed_pass_leaves_the_alerts_exactly_as_they_were(tenant, engine):
    tenant.sync(busy_tenant())
    alerts_before, entities_before = tenant.alerts(), entity_rows(engine)
    with poisoned_alert_events(engine):
        result = tenant.sync(staff(person("alice")), expect="failed")
    assert "poisoned alert event" in result.reason
    assert tenant.alerts() == alerts_before and entity_rows(engine) == entities_before
    assert counts(tenant.run())["resolved"] > 0  # the same snapshot, unpoisoned, did have alerts to write
