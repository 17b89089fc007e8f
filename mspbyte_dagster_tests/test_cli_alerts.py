"""`mspbyte alerts` and `mspbyte thresholds` on both databases."""

import csv
import io
import json
from datetime import UTC, datetime, timedelta

import pytest

from mspbyte_dagster.lib.pipeline import STAGES, PassOptions, run_tenant_pass
from mspbyte_dagster.lib.store.db import engine_for
from mspbyte_dagster_tests.snapshots import minimal_files, mspbyte, user, write_folder

LIST_KEYS = {
    "id",
    "tenant",
    "alert_type",
    "analysis_type",
    "entity_type",
    "entity_id",
    "sku_id",
    "severity",
    "status",
    "first_seen_at",
    "last_seen_at",
    "resolved_at",
}


@pytest.fixture
def tenant_with_alerts(app_env, tmp_path):
    files = minimal_files(users=3)
    for active in files["users"]:
        active["signInActivity"] = {"lastSignInDateTime": "2026-10-30T00:00:00Z"}
    files["users"].append(
        user(
            "old", createdDateTime="2020-01-01T00:00:00Z", signInActivity={"lastSignInDateTime": "2025-01-01T00:00:00Z"}
        )
    )
    files["users"].append(user("gone", enabled=False, assignedLicenses=[{"skuId": "s1", "disabledPlans": []}]))
    assert mspbyte("tenants", "import", str(write_folder(tmp_path / "in", files)))[0] == 0
    result = run_tenant_pass(engine_for(app_env["DATABASE_URL"]), "contoso", STAGES, PassOptions())
    assert result.status == "succeeded", result.reason
    return json.loads(mspbyte("alerts", "list", "--tenant", "contoso", "--json")[1])


def test_list_json_has_the_documented_fields(tenant_with_alerts):
    assert tenant_with_alerts and all(row.keys() >= LIST_KEYS for row in tenant_with_alerts)
    by_type = {row["alert_type"]: row for row in tenant_with_alerts}
    assert by_type["license_waste"]["sku_id"] == "s1" and by_type["license_waste"]["entity_id"] == "gone"
    assert by_type["stale_user"]["entity_id"] == "old" and by_type["stale_user"]["status"] == "active"
    assert by_type["license_unused"]["sku_id"] is None


def test_list_filters_by_status_and_refuses_unknown_tenants(tenant_with_alerts):
    assert json.loads(mspbyte("alerts", "list", "--status", "resolved", "--json")[1]) == []
    code, _, err = mspbyte("alerts", "list", "--tenant", "nobody")
    assert code == 2 and "nobody" in err


def test_suppress_then_history(tenant_with_alerts):
    alert = next(r for r in tenant_with_alerts if r["alert_type"] == "stale_user")
    until = (datetime.now(UTC) + timedelta(days=30)).strftime("%Y-%m-%d")
    code, out, err = mspbyte("alerts", "suppress", str(alert["id"]), "--reason", "on leave", "--until", until, "--json")
    assert code == 0, err
    assert json.loads(out)["status"] == "suppressed"
    history = json.loads(mspbyte("alerts", "history", str(alert["id"]), "--json")[1])
    assert [e["action"] for e in history["events"]] == ["created", "suppressed"]
    assert history["events"][1]["details"]["reason"] == "on leave"


@pytest.mark.parametrize(
    ("days", "reason", "message"),
    [(120, "too long", "more than 90 days"), (-1, "in the past", "not in the future"), (10, " ", "needs a reason")],
)
def test_suppression_needs_a_reason_and_an_expiry_within_90_days(tenant_with_alerts, days, reason, message):
    alert = tenant_with_alerts[0]
    until = (datetime.now(UTC) + timedelta(days=days)).strftime("%Y-%m-%d")
    code, _, err = mspbyte("alerts", "suppress", str(alert["id"]), "--reason", reason, "--until", until)
    assert code == 2 and message in err
    assert json.loads(mspbyte("alerts", "list", "--status", "suppressed", "--json")[1]) == []


def test_an_unknown_alert_id_is_named(tenant_with_alerts):
    code, _, err = mspbyte("alerts", "history", "999999")
    assert code == 2 and "999999" in err


def test_export_writes_the_open_alerts_as_csv(tenant_with_alerts, tmp_path):
    target = tmp_path / "open.csv"
    assert mspbyte("alerts", "export", "--tenant", "contoso", "--out", str(target))[0] == 0
    rows = list(csv.DictReader(io.StringIO(target.read_text())))
    assert len(rows) == len(tenant_with_alerts)
    assert {row["alert_type"] for row in rows} == {row["alert_type"] for row in tenant_with_alerts}


def test_thresholds_change_the_next_pass(tenant_with_alerts, app_env):
    assert json.loads(mspbyte("thresholds", "get", "contoso", "--json")[1]) == {
        "stale_days": 90,
        "unused_license_threshold": 1,
        "endpoint_stale_days": 14,
    }
    code, _, err = mspbyte("thresholds", "set", "contoso", "stale_days", "0")
    assert code == 2 and "out of range" in err
    assert mspbyte("thresholds", "set", "contoso", "stale_days", "1000")[0] == 0
    run_tenant_pass(engine_for(app_env["DATABASE_URL"]), "contoso", STAGES, PassOptions())
    stale = [r for r in json.loads(mspbyte("alerts", "list", "--json")[1]) if r["alert_type"] == "stale_user"]
    assert [r["status"] for r in stale] == ["resolved"]


def test_list_has_a_header_and_puts_the_most_severe_first(tenant_with_alerts):
    code, out, _ = mspbyte("alerts", "list", "--tenant", "contoso")
    header, *lines = out.splitlines()
    assert code == 0 and header.split() == ["ID", "TENANT", "SEVERITY", "STATUS", "TYPE", "ENTITY", "MESSAGE"]
    ranks = {"critical": 4, "high": 3, "medium": 2, "low": 1}
    shown = [ranks[line.split()[2]] for line in lines]
    assert len(shown) == len(tenant_with_alerts) and shown == sorted(shown, reverse=True)


def test_unsuppress_makes_a_suppressed_alert_active_again(tenant_with_alerts):
    alert = tenant_with_alerts[0]["id"]
    until = (datetime.now(UTC) + timedelta(days=5)).strftime("%Y-%m-%d")
    assert mspbyte("alerts", "suppress", str(alert), "--reason", "change window", "--until", until)[0] == 0
    code, out, _ = mspbyte("alerts", "unsuppress", str(alert), "--json")
    row = json.loads(out)
    assert code == 0 and row["status"] == "active" and row["suppressed_until"] is None
    code, _, err = mspbyte("alerts", "unsuppress", str(alert))
    assert code == 2 and f"alert {alert} is active, not suppressed" in err
    history = json.loads(mspbyte("alerts", "history", str(alert), "--json")[1])
    assert [e["action"] for e in history["events"]][-2:] == ["suppressed", "unsuppressed"]


def test_acknowledge_records_who_and_shows_in_the_list_and_history(tenant_with_alerts):
    alert = tenant_with_alerts[0]["id"]
    code, out, _ = mspbyte("alerts", "acknowledge", str(alert), "--by", "Dana <script>")
    assert code == 0 and "acknowledged by Dana <script>" in out
    [row] = [r for r in json.loads(mspbyte("alerts", "list", "--json")[1]) if r["id"] == alert]
    assert row["acknowledged_by"] == "Dana <script>" and row["acknowledged_at"] and row["status"] == "active"
    assert "[acknowledged by Dana <script>]" in mspbyte("alerts", "list")[1]
    code, out, _ = mspbyte("alerts", "history", str(alert))
    assert code == 0 and "acknowledged" in out and '{"by": "Dana <script>"}' in out  # JSON, not a Python repr
    assert mspbyte("alerts", "acknowledge", str(alert), "--by", "  ")[0] == 2


def test_a_negative_threshold_is_refused_as_a_value(tenant_with_alerts):
    code, _, err = mspbyte("thresholds", "set", "contoso", "stale_days", "-5")
    assert code == 2 and "stale_days=-5 is out of range" in err
