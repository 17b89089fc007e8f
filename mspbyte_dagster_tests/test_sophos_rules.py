"""Sophos Central's rules and linkers (issue #20): every new alert type fires across the synthetic fleet,
links match as documented, and a rule whose inputs were not read (or whose source is held) leaves its
alerts as they are."""

from datetime import UTC, datetime

import pytest
from sqlalchemy import select

from mspbyte_dagster.lib.adapters.sophos.analysis import ALERT_TYPES
from mspbyte_dagster.lib.adapters.sophos.linking import login_keys
from mspbyte_dagster.lib.onboarding import import_folders
from mspbyte_dagster.lib.passes import PASS_STAGES
from mspbyte_dagster.lib.pipeline import PassOptions, run_tenant_pass
from mspbyte_dagster.lib.store.schema import alerts, entities, entity_relationships
from mspbyte_dagster.lib.store.tenants import set_threshold
from mspbyte_dagster_tests.snapshots import import_files, minimal_files, user
from mspbyte_dagster_tests.test_sophos_source import sophos_files
from mspbyte_dev.synthetic import write_snapshots
from mspbyte_dev.synthetic.sophos import write_sophos_snapshots


def a_pass(engine, key: str = "contoso"):
    result = run_tenant_pass(engine, key, PASS_STAGES, PassOptions(now=lambda: datetime.now(UTC)))
    assert result.status == "succeeded", result.reason
    return result


def open_alerts(engine, key: str = "contoso") -> dict[tuple[str, str], str]:
    with engine.connect() as conn:
        rows = conn.execute(
            select(alerts.c.alert_type, alerts.c.entity_id, alerts.c.severity).where(
                alerts.c.tenant == key, alerts.c.status == "active", alerts.c.alert_type.in_(ALERT_TYPES)
            )
        )
        return {(row.alert_type, row.entity_id): row.severity for row in rows}


def test_every_sophos_alert_type_fires_across_a_synthetic_fleet_and_microsoft_365_is_unchanged(engine, tmp_path):
    m365 = write_snapshots(tmp_path / "synth", 4, 40, 3)
    sophos = write_sophos_snapshots(tmp_path / "synth", 4, 20, 3)
    imported = import_folders(engine, [*m365, *sophos])
    keys = sorted({item.tenant for item in imported})
    fired = set()
    for key in keys:
        result = a_pass(engine, key)
        assert result.stages["relationships"]["other_sources"]["sophos"]["edges"]["has_license"] > 0
        fired |= {alert_type for alert_type, _ in open_alerts(engine, key)}
    assert fired == set(ALERT_TYPES)


def test_a_tenant_without_sophos_evaluates_none_of_its_rules(engine, tmp_path):
    import_files(engine, tmp_path / "m365", minimal_files())
    result = a_pass(engine)
    assert not set(result.stages["findings"]["not_evaluated"]) & set(ALERT_TYPES)
    assert not set(result.stages["findings"]["by_alert_type"]) & set(ALERT_TYPES)


@pytest.mark.parametrize(
    "login, key",
    [
        ("CONTOSO\\Alice", ("name", "alice")),
        ("alice@contoso.com", ("upn", "alice@contoso.com")),
        ("  Bob  ", ("name", "bob")),
    ],
)
def test_a_login_names_a_user_by_upn_or_by_the_part_before_at(login, key):
    assert login_keys(login) == key


def people() -> dict:
    files = minimal_files(users=0)
    files["users"] = [
        user("alice", userPrincipalName="alice@contoso.com"),
        user("gone", enabled=False, userPrincipalName="gone@contoso.com"),
        user("twin1", userPrincipalName="twin@contoso.com"),
        user("twin2", userPrincipalName="twin@fabrikam.com"),
        user("leaver", userPrincipalName="leaver@contoso.com"),
    ]
    files["user_registration_details"] = []
    return files


def used_by(engine) -> dict[str, str]:
    ids = {}
    with engine.connect() as conn:
        for row in conn.execute(select(entities.c.id, entities.c.external_id)):
            ids[row.id] = row.external_id
        edges = conn.execute(
            select(entity_relationships.c.parent_id, entity_relationships.c.child_id).where(
                entity_relationships.c.relationship_type == "used_by"
            )
        )
        return {ids[parent]: ids[child] for parent, child in edges}


def test_endpoints_link_to_the_one_user_their_login_names_and_a_removed_users_endpoint_is_a_finding(engine, tmp_path):
    import_files(engine, tmp_path / "m365", people())
    devices = sophos_files(endpoints=0)
    logins = {
        "e-alice": "CONTOSO\\alice",
        "e-upn": "Alice@Contoso.com",
        "e-gone": "gone@contoso.com",
        "e-twin": "DOMAIN\\twin",
        "e-nobody": "CONTOSO\\nobody",
        "e-leaver": "CONTOSO\\leaver",
    }
    devices["endpoints"] = [
        {"id": eid, "hostname": eid, "lastSeenAt": "2026-11-01T00:00:00Z", "associatedPerson": {"viaLogin": login}}
        for eid, login in logins.items()
    ] + [{"id": "e-none", "hostname": "kiosk", "lastSeenAt": "2026-11-01T00:00:00Z"}]
    import_files(engine, tmp_path / "sophos", devices)
    a_pass(engine)
    assert used_by(engine) == {"e-alice": "alice", "e-upn": "alice", "e-gone": "gone", "e-leaver": "leaver"}
    assert {eid for (kind, eid) in open_alerts(engine) if kind == "endpoint_user_disabled"} == {"e-gone"}
    later = people()
    later["users"] = [u for u in later["users"] if u["id"] != "leaver"]  # removed from Microsoft 365
    import_files(engine, tmp_path / "m365", later)
    a_pass(engine)
    assert {eid for (kind, eid) in open_alerts(engine) if kind == "endpoint_user_disabled"} == {"e-gone", "e-leaver"}


def rule_files(**endpoint) -> dict:
    files = sophos_files(endpoints=0)
    files["endpoints"] = [
        {"id": "e1", "hostname": "srv", "type": "server", "lastSeenAt": "2026-11-01T00:00:00Z"} | endpoint
    ]
    return files


@pytest.mark.parametrize(
    "fields, expected",
    [
        ({"health": {"overall": "bad"}}, {("endpoint_health", "e1"): "high"}),
        ({"health": {"overall": "suspicious"}, "type": "computer"}, {("endpoint_health", "e1"): "medium"}),
        ({"health": {"overall": "unknown"}}, {}),
        ({"tamperProtectionEnabled": False}, {("endpoint_tamper_protection_off", "e1"): "high"}),
        ({"tamperProtectionEnabled": False, "type": "computer"}, {("endpoint_tamper_protection_off", "e1"): "medium"}),
        ({"tamperProtectionEnabled": False, "tamperProtectionSupported": False}, {}),
        ({"lastSeenAt": "2026-10-18T00:00:00Z"}, {("endpoint_stale", "e1"): "medium"}),
        ({"lastSeenAt": "2026-10-18T00:00:00Z", "type": "computer"}, {("endpoint_stale", "e1"): "low"}),
        ({"lastSeenAt": "2026-10-19T00:00:01Z"}, {}),
    ],
)
def test_endpoint_rules(engine, tmp_path, fields, expected):
    import_files(engine, tmp_path / "m365", minimal_files())
    import_files(engine, tmp_path / "sophos", rule_files(**fields))
    a_pass(engine)
    found = {key: severity for key, severity in open_alerts(engine).items() if key[0].startswith("endpoint")}
    assert found == expected


def test_endpoint_stale_days_is_a_threshold_per_tenant(engine, tmp_path):
    import_files(engine, tmp_path / "m365", minimal_files())
    import_files(engine, tmp_path / "sophos", rule_files(lastSeenAt="2026-10-10T00:00:00Z"))
    with engine.begin() as conn:
        set_threshold(conn, "contoso", "endpoint_stale_days", 30)
    a_pass(engine)
    assert ("endpoint_stale", "e1") not in open_alerts(engine)


def test_firewall_rules(engine, tmp_path):
    import_files(engine, tmp_path / "m365", minimal_files())
    files = sophos_files(endpoints=0)
    files["firewalls"].append(
        {"id": "fw-2", "serialNumber": "SN2", "hostname": "branch", "status": {"connected": False}}
    )
    files["firewall_licenses"][0]["licenses"] += [
        {"id": "l3", "licenseIdentifier": "XG-WEB", "perpetual": False, "endDate": "2026-10-31"},
        {"id": "l4", "licenseIdentifier": "XG-EMAIL", "perpetual": False, "endDate": "2027-06-01"},
    ]
    import_files(engine, tmp_path / "sophos", files)
    a_pass(engine)
    assert open_alerts(engine) == {
        ("firewall_disconnected", "fw-2"): "high",
        ("firewall_firmware_outdated", "fw-1"): "low",
        ("firewall_license_expiring", "SN1:l2"): "medium",  # ends 2026-11-20, within 30 days of capturedAt
        ("firewall_license_expiring", "SN1:l3"): "high",  # ended the day before capturedAt
    }


def test_rules_whose_inputs_were_not_read_or_whose_source_is_held_leave_their_alerts(engine, tmp_path):
    import_files(engine, tmp_path / "m365", minimal_files())
    import_files(engine, tmp_path / "sophos", rule_files(health={"overall": "bad"}))
    a_pass(engine)
    unread = rule_files()  # healthy now, but the endpoints file was not read whole
    unread["tenant"]["sources"] = {"endpoints": {"complete": False, "reason": "403"}}
    import_files(engine, tmp_path / "sophos", unread)
    result = a_pass(engine)
    assert "endpoint_health" in result.stages["findings"]["not_evaluated"]
    assert open_alerts(engine) == {
        ("endpoint_health", "e1"): "high",
        ("firewall_firmware_outdated", "fw-1"): "low",
        ("firewall_license_expiring", "SN1:l2"): "medium",
    }
    many = sophos_files(endpoints=25)
    import_files(engine, tmp_path / "sophos", many)
    a_pass(engine)
    import_files(engine, tmp_path / "sophos", sophos_files(endpoints=2))  # held: a drop below half
    before = open_alerts(engine)
    result = a_pass(engine)
    assert result.stages["sophos_snapshot"]["held"] and open_alerts(engine) == before
