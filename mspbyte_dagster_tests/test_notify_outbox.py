"""The outbox is written in the pass's transaction: what a route names, once, and nothing a rolled-back
pass did (issue: alerts reach people). On SQLite and PostgreSQL."""

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from mspbyte_dagster.lib.notify.routing import outbox_rows, window_end
from mspbyte_dagster.lib.pipeline import STAGES, PassOptions, run_tenant_pass
from mspbyte_dagster.lib.store import notifications
from mspbyte_dagster.lib.store.retention import Retention, prune_tenant
from mspbyte_dagster.lib.store.schema import alert_events, notification_outbox
from mspbyte_dagster.lib.store.tenants import upsert_tenant
from mspbyte_dagster_tests.rules import admin, ca_policy, person, sku, tenant_files
from mspbyte_dagster_tests.snapshots import import_files, minimal_files

NOW = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
MFA_FOR_ALL, BLOCK = ca_policy("p-mfa"), ca_policy("p-block", grant=["block"])
EVERY_EVENT = ["created", "reopened", "severity_raised", "resolved", "pass_failed", "pass_held"]


def staff(*users, **files) -> dict:
    return tenant_files([person("ok"), *users], policies=(MFA_FOR_ALL, BLOCK), **files)


def route(engine, channel: str = "ops", **chosen) -> int:
    """A channel (created once) and a route to it; defaults: every tenant, severity, type and event."""
    with engine.begin() as conn:
        try:
            channel_id = notifications.channel(conn, channel).id
        except notifications.ChannelNotFound:
            channel_id = notifications.add_channel(conn, channel, "webhook", {"url": "http://x"}, "env:HOOK", NOW)
        values = {"tenant": None, "min_severity": "low", "alert_types": None, "events": EVERY_EVENT}
        values |= {"digest_minutes": None} | chosen
        return notifications.add_route(conn, channel_id, NOW, **values)


def outbox(engine) -> list:
    with engine.connect() as conn:
        return list(conn.execute(select(notification_outbox).order_by(notification_outbox.c.id)))


def announced(engine) -> list[tuple[str, str]]:
    """(event, alert type or tenant) of every item queued, in order."""
    return [(item["event"], item.get("alert_type") or item["tenant"]) for row in outbox(engine) for item in row.items]


WASTE = staff(person("off", enabled=False, skus=["e3"]), skus=[sku("e3", 1, prepaid=1)])


def test_a_pass_queues_one_message_per_channel_keyed_by_its_alert_events(tenant):
    route(tenant.engine)
    route(tenant.engine, channel="pager", min_severity="medium")
    tenant.sync(WASTE)
    rows = outbox(tenant.engine)
    assert [(row.channel_id, row.status, row.digest, row.run_id) for row in rows] == [
        (1, "pending", False, "pass-1"),
        (2, "pending", False, "pass-1"),
    ]
    with tenant.engine.connect() as conn:
        event_ids = list(conn.execute(select(alert_events.c.id).order_by(alert_events.c.id)).scalars())
    assert [item["key"] for item in rows[0].items] == [f"alert-event-{i}" for i in event_ids]
    (item,) = rows[0].items
    assert (item["event"], item["alert_type"], item["entity_id"], item["severity"]) == (
        "created",
        "license_waste",
        "off",
        "medium",
    )
    assert "is disabled and holds" in item["message"] and item["tenant"] == "contoso"


def test_two_identical_passes_announce_once(tenant):
    route(tenant.engine)
    tenant.sync(WASTE)
    tenant.sync(WASTE)
    assert announced(tenant.engine) == [("created", "license_waste")]


def test_a_pass_that_rolls_back_announces_none_of_its_alerts(tenant, monkeypatch):
    """Broken after the outbox write, inside the pass's transaction: the alerts and their messages go
    together; only the failed pass itself is announced (from the ledger's transaction)."""
    import mspbyte_dagster.lib.stages as stages

    route(tenant.engine)

    def broken(*args):
        raise RuntimeError("disk full")

    monkeypatch.setattr(stages, "open_alerts", broken)
    result = tenant.sync(WASTE, expect="failed")
    assert "disk full" in result.reason and tenant.alerts() == {}
    assert announced(tenant.engine) == [("pass_failed", "contoso")]
    assert "disk full" in outbox(tenant.engine)[0].items[0]["reason"]


def test_a_tenant_that_keeps_failing_is_announced_once_and_again_after_it_recovered(tenant, monkeypatch):
    import mspbyte_dagster.lib.stages as stages

    route(tenant.engine)
    working = stages.open_alerts
    monkeypatch.setattr(stages, "open_alerts", lambda *args: 1 / 0)
    tenant.sync(WASTE, expect="failed")
    tenant.run(expect="failed")
    assert announced(tenant.engine) == [("pass_failed", "contoso")]
    monkeypatch.setattr(stages, "open_alerts", working)
    tenant.run()
    monkeypatch.setattr(stages, "open_alerts", lambda *args: 1 / 0)
    tenant.run(expect="failed")
    assert [event for event, _ in announced(tenant.engine)] == ["pass_failed", "created", "pass_failed"]


def test_a_held_tenant_is_announced(engine, tmp_path):
    route(engine, events=["pass_held"])
    import_files(engine, tmp_path / "a", minimal_files(users=200))
    assert run_tenant_pass(engine, "contoso", STAGES, PassOptions()).status == "succeeded"
    import_files(engine, tmp_path / "b", minimal_files(users=5))
    held = run_tenant_pass(engine, "contoso", STAGES, PassOptions())
    assert held.status == "held"
    ((row, item),) = [(row, item) for row in outbox(engine) for item in row.items]
    assert (item["event"], item["severity"], row.tenant) == ("pass_held", "high", "contoso")
    assert "users fell from 200 to 5" in item["reason"]


def registered(engine, key: str) -> None:
    with engine.begin() as conn:
        upsert_tenant(conn, key, key.title(), None)


def test_routes_choose_by_tenant_severity_type_and_event(tenant):
    registered(tenant.engine, "contoso")
    route(tenant.engine, tenant="contoso", min_severity="high")
    route(tenant.engine, channel="waste", alert_types=["license_waste"], events=["created"])
    route(tenant.engine, channel="resolved", events=["resolved"])
    tenant.sync(
        staff(
            person("alice"),
            person("off", enabled=False, skus=["e3"]),
            unregistered=["alice"],
            assignments=[admin("alice")],
            skus=[sku("e3", 1, prepaid=1)],
        )
    )
    by_channel = {}
    for row in outbox(tenant.engine):
        by_channel.setdefault(row.channel_id, []).extend((i["alert_type"], i["severity"]) for i in row.items)
    assert set(by_channel) == {1, 2}  # nothing resolved yet
    assert all(severity in ("high", "critical") for _type, severity in by_channel[1]) and by_channel[1]
    assert by_channel[2] == [("license_waste", "medium")]
    tenant.sync(staff())
    resolved = [i for row in outbox(tenant.engine) if row.channel_id == 3 for i in row.items]
    assert resolved and {i["event"] for i in resolved} == {"resolved"}


def test_a_route_for_another_tenant_takes_nothing(tenant):
    registered(tenant.engine, "fabrikam")
    route(tenant.engine, tenant="fabrikam")
    tenant.sync(WASTE)
    assert outbox(tenant.engine) == []


def test_a_raised_severity_is_announced_and_other_updates_are_not(tenant):
    route(tenant.engine, events=["severity_raised"])
    tenant.sync(staff(person("alice"), unregistered=["alice"]))
    assert outbox(tenant.engine) == []
    tenant.sync(staff(person("alice"), unregistered=["alice"], assignments=[admin("alice")]))
    ((item),) = [i for row in outbox(tenant.engine) for i in row.items]
    assert (item["event"], item["severity"], item["previous_severity"]) == ("severity_raised", "high", "medium")


def test_an_event_two_routes_send_to_one_channel_goes_once_and_not_again_in_its_digest():
    routes = [
        type(
            "Route",
            (),
            {
                "channel_id": 1,
                "digest_minutes": None,
                "events": EVERY_EVENT,
                "min_severity": "low",
                "alert_types": None,
            },
        ),
        type(
            "Route",
            (),
            {
                "channel_id": 1,
                "digest_minutes": None,
                "events": ["created"],
                "min_severity": "high",
                "alert_types": None,
            },
        ),
        type(
            "Route",
            (),
            {"channel_id": 1, "digest_minutes": 60, "events": EVERY_EVENT, "min_severity": "low", "alert_types": None},
        ),
    ]
    items = [
        {"key": "alert-event-1", "event": "created", "severity": "high", "alert_type": "policy_gap", "tenant": "t"},
        {"key": "alert-event-2", "event": "resolved", "severity": "low", "alert_type": "stale_user", "tenant": "t"},
    ]
    (row,) = outbox_rows("t", items, routes, "run", NOW)
    assert [item["key"] for item in row["items"]] == ["alert-event-1", "alert-event-2"] and not row["digest"]


def test_a_digest_route_waits_for_the_end_of_its_window(tenant):
    route(tenant.engine, digest_minutes=60)
    tenant.sync(WASTE)
    (row,) = outbox(tenant.engine)
    assert row.digest and row.due_at == window_end(row.queued_at, 60) and row.due_at > row.queued_at
    assert row.due_at.minute == 0 and row.due_at - row.queued_at <= timedelta(hours=1)


@pytest.mark.parametrize("status", ["delivered", "dead"])
def test_finished_messages_are_pruned_after_the_retention_and_waiting_ones_never(tenant, status):
    route(tenant.engine)
    tenant.sync(WASTE)
    tenant.sync(staff())  # resolves: a second message
    first, second = outbox(tenant.engine)
    with tenant.engine.begin() as conn:
        conn.execute(
            notification_outbox.update()
            .where(notification_outbox.c.id == first.id)
            .values(status=status, finished_at=NOW - timedelta(days=31))
        )
        gone = prune_tenant(conn, "contoso", Retention(alert_event_days=30), NOW)
    assert gone["notifications"] == 1
    assert [row.id for row in outbox(tenant.engine)] == [second.id]
    with tenant.engine.begin() as conn:
        assert (
            prune_tenant(conn, "contoso", Retention(alert_event_days=30), NOW + timedelta(days=400))["notifications"]
            == 0
        )
