"""Invariants of the alert lifecycle under random sequences of snapshot changes (hypothesis, SQLite).

Each example starts from a fresh database and a small tenant, then applies a random sequence of
changes (accounts enabled or disabled, users added or removed, sign-ins, policy states, licences,
unread inputs, suppressions, the clock, a pass failing midway), each followed by a real tenant pass.
"""

from __future__ import annotations

import copy
import shutil
import uuid
from datetime import timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from mspbyte_dagster.lib.adapters.microsoft365.files import DATA_FILES
from mspbyte_dagster.lib.model import SEVERITY_RANK
from mspbyte_dagster.lib.store.db import engine_for
from mspbyte_dagster.lib.store.schema import entities, findings, pipeline_ledger
from mspbyte_dagster_tests.rules import (
    CAPTURED,
    LIFECYCLE_COUNTS,
    Tenant,
    admin,
    ca_policy,
    damaged,
    days_ago,
    members,
    person,
    poisoned_alert_events,
    signin,
    sku,
    tenant_files,
)

USERS = ("u0", "u1", "u2", "u3", "u4", "u5", "u6")
POLICIES = ("p-admin", "p-mfa", "p-sales")
STATES = ("enabled", "disabled", "enabledForReportingButNotEnforced")
SKU_IDS = ("e3", "ems")
OPEN = ("active", "suppressed")


def base_tenant() -> dict:
    """Five users (an admin, a sales member, a guest, licence holders), three policies, two skus."""
    return tenant_files(
        [
            person("u0", skus=["e3"]),
            person("u1", sign_in=signin(120)),
            person("u2", skus=["e3", "ems"]),
            person("u3", guest=True, sign_in=signin(None)),
            person("u4", enabled=False, skus=["ems"]),
        ],
        group_members={"g-sales": members("u1", "u2")},
        assignments=[admin("u0")],
        unregistered=["u1"],
        policies=[
            ca_policy("p-admin", include_users=["u0"], grant=["compliantDevice"]),
            ca_policy("p-mfa", exclude_groups=["g-sales"], state="disabled"),
            ca_policy("p-sales", include_users=[], include_groups=["g-sales"], apps=["office365"]),
        ],
        skus=[sku("e3", consumed=2, prepaid=3), sku("ems", consumed=2, prepaid=1)],
    )


def find_user(files: dict, uid: str) -> dict | None:
    return next((u for u in files["users"] if u["id"] == uid), None)


def change(files: dict, op: tuple) -> dict:
    """The snapshot after one change (a copy); unchanged for operations that are not snapshot changes."""
    files = copy.deepcopy(files)
    kind, *args = op
    if kind == "enabled" and (found := find_user(files, args[0])):
        found["accountEnabled"] = not found["accountEnabled"]
    elif kind == "add" and not find_user(files, args[0]):
        uid, days, skus = args
        files["users"].append(person(uid, sign_in=signin(days), skus=skus))
        files["user_registration_details"].append({"id": uid, "isMfaRegistered": days is not None})
    elif kind == "remove":
        uid = args[0]
        files["users"] = [u for u in files["users"] if u["id"] != uid]
        files["user_registration_details"] = [r for r in files["user_registration_details"] if r["id"] != uid]
        files["group_members"] = {g: [m for m in ms if m["id"] != uid] for g, ms in files["group_members"].items()}
        files["role_assignments"] = [a for a in files["role_assignments"] if a["principalId"] != uid]
    elif kind == "sign_in" and (found := find_user(files, args[0])):
        days = args[1]
        found.pop("signInActivity", None)
        if days != "absent":
            found["signInActivity"] = {"lastSignInDateTime": None if days is None else days_ago(days)}
    elif kind == "policy":
        next(p for p in files["conditional_access_policies"] if p["id"] == args[0])["state"] = args[1]
    elif kind == "licence" and (found := find_user(files, args[0])):
        held = {lic["skuId"] for lic in found["assignedLicenses"]} ^ {args[1]}
        found["assignedLicenses"] = [{"skuId": s, "disabledPlans": []} for s in sorted(held)]
    elif kind == "later":
        captured = CAPTURED + timedelta(days=args[0])
        files["tenant"]["capturedAt"] = captured.strftime("%Y-%m-%dT%H:%M:%SZ")
    return files


sign_in_days = st.sampled_from([None, "absent", 1, 60, 89, 90, 200])
snapshot_changes = st.one_of(
    st.tuples(st.just("enabled"), st.sampled_from(USERS)),
    st.tuples(
        st.just("add"),
        st.sampled_from(USERS[5:]),
        st.sampled_from([None, 5, 150]),
        st.lists(st.sampled_from(SKU_IDS), max_size=2, unique=True),
    ),
    st.tuples(st.just("remove"), st.sampled_from(USERS)),
    st.tuples(st.just("sign_in"), st.sampled_from(USERS), sign_in_days),
    st.tuples(st.just("policy"), st.sampled_from(POLICIES), st.sampled_from(STATES)),
    st.tuples(st.just("licence"), st.sampled_from(USERS), st.sampled_from(SKU_IDS)),
)
operations = st.one_of(
    snapshot_changes,
    st.tuples(
        st.just("unread"), st.sampled_from([*DATA_FILES, "signInActivity"]), st.sampled_from(["missing", "incomplete"])
    ),
    st.tuples(st.just("suppress"), st.integers(0, 30), st.sampled_from([-1, 1, 30, 90])),
    st.tuples(st.just("later"), st.integers(1, 120)),
    st.tuples(st.just("fail"), snapshot_changes),  # that change, in a pass failing on its first alert event
)


class World:
    """The tenant of one example on its own SQLite file, and what its last pass left."""

    def __init__(self, tmp_path, template):
        folder = tmp_path / uuid.uuid4().hex
        folder.mkdir()
        shutil.copyfile(template, folder / "app.db")
        self.url = f"sqlite:///{folder / 'app.db'}"
        self.engine = engine_for(self.url)
        self.tenant = Tenant(self.engine, folder)
        self.files = base_tenant()
        self.days = 0

    def read(self, table, *where):
        with self.engine.connect() as conn:
            return conn.execute(select(table).where(table.c.tenant == "contoso", *where).order_by(table.c.id)).all()

    def live(self) -> dict[tuple[str, str], str]:
        return {(r.entity_type, r.external_id): r.state for r in self.read(entities, entities.c.deleted_at.is_(None))}

    def last_ledger_status(self) -> str:
        return self.read(pipeline_ledger)[-1].status


def check_pass(world: World, before: dict, result) -> None:
    """The lifecycle invariants of RULES over one pass, from the alerts before and after it."""
    after = world.tenant.alerts()
    assert len({(r.alert_type, r.entity_type, r.entity_id, r.sku_id) for r in after.values()}) == len(after)
    if result.status != "succeeded":
        assert result.status == "held", result.reason
        assert after == before
        return
    now, live = world.tenant.clock, world.live()
    evaluations = world.tenant.evaluations()
    found = {(f.alert_type, f.entity_id, f.sku_id or "") for f in world.read(findings)}

    def evaluated_for(row) -> bool:
        evaluation = evaluations[row.alert_type]
        return evaluation.evaluated and row.entity_id not in evaluation.skipped

    for key in found:
        row = after[key]
        old = before.get(key)
        kept_suppressed = old is not None and old.status == "suppressed" and old.suppressed_until > now
        assert row.status == ("suppressed" if kept_suppressed else "active"), (key, row.status)
        assert old is None or old.id == row.id  # never a twin
    for key, row in after.items():
        old = before.get(key)
        if key in found or old is None:
            continue
        if old.status in OPEN and row.status == "resolved":
            if row.resolved_reason == "entity_removed":
                assert (row.entity_type, row.entity_id) not in live
            else:
                assert evaluated_for(row), (key, "resolved although its rule was not evaluated for it")
        elif old.status in OPEN:
            assert (row.entity_type, row.entity_id) in live and not evaluated_for(row), key
            assert row == old, (key, "an alert whose rule was not evaluated must be left exactly as it is")
        else:
            assert row == old
    for entity, state in live.items():
        active = [
            SEVERITY_RANK[r.severity]
            for r in after.values()
            if (r.entity_type, r.entity_id) == entity and r.status == "active"
        ]
        expected = {rank: name for name, rank in SEVERITY_RANK.items()}.get(max(active, default=0), "normal")
        assert state == expected, entity


def check_idempotent(world: World) -> None:
    """The same snapshot again creates, updates, resolves and reopens nothing, and writes nothing."""
    alerts_before, events_before, states_before = world.tenant.alerts(), world.tenant.events(), world.live()
    result = world.tenant.run(expect=None)
    if result.status == "succeeded":
        assert {a: result.stages["alerts"][a] for a in LIFECYCLE_COUNTS} == dict.fromkeys(LIFECYCLE_COUNTS, 0)
    assert world.tenant.alerts() == alerts_before
    assert world.tenant.events() == events_before and world.live() == states_before


def step(world: World, op: tuple, unread: tuple | None) -> None:
    kind = op[0]
    before = world.tenant.alerts()
    if kind == "suppress":
        open_alerts = [row for row in before.values() if row.status == "active"]
        if open_alerts:
            target = open_alerts[op[1] % len(open_alerts)]
            world.tenant.suppress(
                target.alert_type,
                target.entity_id,
                sku_id=target.sku_id,
                until=world.tenant.clock + timedelta(days=op[2]),
            )
            before = world.tenant.alerts()
        result = world.tenant.run(expect=None)
    else:
        world.files = change(world.files, op[1] if kind == "fail" else op)
        snapshot = damaged(world.files, *unread) if unread else world.files
        if kind == "fail":
            with poisoned_alert_events(world.engine):
                result = world.tenant.sync(snapshot, expect=None)
            if result.status == "failed":
                assert "poisoned alert event" in result.reason and world.last_ledger_status() == "failed"
                assert world.tenant.alerts() == before
                result = world.tenant.run(expect=None)  # the same snapshot, the database fixed
            else:  # nothing to write: no event, so no error
                assert result.status in ("succeeded", "held"), result.reason
        else:
            result = world.tenant.sync(snapshot, expect=None)
    check_pass(world, before, result)
    check_idempotent(world)


@pytest.mark.slow
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=st.lists(operations, min_size=1, max_size=7))
def test_alert_lifecycle_invariants_hold_for_any_sequence_of_changes(tmp_path, sqlite_template, ops):
    world = World(tmp_path, sqlite_template)
    try:
        world.tenant.sync(world.files)
        check_idempotent(world)
        unread = None
        for op in ops:
            if op[0] == "unread":
                unread = op[1:]
                continue
            if op[0] == "later":
                world.days += op[1]
                op = ("later", world.days)
            step(world, op, unread)
            unread = None
    finally:
        world.engine.dispose()
