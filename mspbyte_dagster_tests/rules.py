"""Builders for rule and lifecycle tests, on top of snapshots.py, so each test reads like its rule.

Snapshot pieces (`person`, `signin`, `ca_policy`, `role`, `sku`, `tenant_files`) are docs/snapshot-format.md
objects; `analyze` runs the UnifiedAnalyzer over a snapshot without a database (the entities built
exactly as `process_entities` stores them); `Tenant` imports snapshots and drives real tenant passes.
"""

from __future__ import annotations

import copy
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from itertools import chain
from pathlib import Path
from types import SimpleNamespace

from sqlalchemy import select, text, update

from mspbyte_dagster.lib.adapters.microsoft365.analysis.unified import Analysis, UnifiedAnalyzer
from mspbyte_dagster.lib.adapters.microsoft365.files import content_problems
from mspbyte_dagster.lib.adapters.microsoft365.linking import desired_edges
from mspbyte_dagster.lib.adapters.snapshot_files import Snapshot
from mspbyte_dagster.lib.context import DIRECTORY_FILES, EntityRow, TenantContext, build_context, tenant_header
from mspbyte_dagster.lib.entities import snapshot_records
from mspbyte_dagster.lib.model import RuleEvaluation
from mspbyte_dagster.lib.pipeline import STAGES, PassOptions, TenantPass, run_tenant_pass
from mspbyte_dagster.lib.store.schema import alert_events, alerts, entities, rule_evaluations, tenants
from mspbyte_dagster_tests.snapshots import CAPTURED_AT, import_files, tenant_doc, user

CAPTURED = datetime.fromisoformat(CAPTURED_AT.replace("Z", "+00:00"))
ABSENT = object()  # a field left out of the Graph object altogether
USER_ODATA, GROUP_ODATA = "#microsoft.graph.user", "#microsoft.graph.group"

# Role definition ids differ from their template ids, as in a real tenant: policies name templates.
GA_TEMPLATE = "62e90394-69f5-4237-9190-012177145e10"
READER_TEMPLATE = "790c1fb9-7f7d-4f88-86a1-ef1f95c05c1b"
MFA_FILES = (*DIRECTORY_FILES, "conditional_access_policies", "security_defaults")
MFA_POLICY_TYPES = (
    "mfa_not_enforced",
    "mfa_partial_enforced",
    "policy_gap",
    "no_conditional_access",
    "report_only_policy",
    "legacy_auth_not_blocked",
)
LIFECYCLE_COUNTS = ("created", "updated", "resolved", "reopened")


# --- snapshot pieces ---------------------------------------------------------------


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def days_ago(days: float, captured: datetime = CAPTURED) -> str:
    return iso(captured - timedelta(days=days))


def signin(days_before_capture: int | None, non_interactive: bool = False) -> dict:
    """signInActivity with one sign-in `days_before_capture` days before capturedAt; None: never signed in.

    Only the named field is set, so two can be merged: `signin(200) | signin(3, non_interactive=True)`.
    """
    if days_before_capture is None:
        return {
            "lastSignInDateTime": None,
            "lastNonInteractiveSignInDateTime": None,
            "lastSuccessfulSignInDateTime": None,
        }
    field = "lastNonInteractiveSignInDateTime" if non_interactive else "lastSignInDateTime"
    return {field: days_ago(days_before_capture)}


def person(
    uid: str, *, enabled: bool = True, guest: bool = False, skus=(), sign_in=ABSENT, created_days: int = 400, **extra
) -> dict:
    """A user; signed in yesterday unless `sign_in` says otherwise (None: no signInActivity at all, no P1)."""
    activity = signin(1) if sign_in is ABSENT else sign_in
    fields = {
        "assignedLicenses": [{"skuId": s, "disabledPlans": []} for s in skus],
        "createdDateTime": days_ago(created_days),
    } | extra
    if activity is not None:
        fields["signInActivity"] = activity
    return user(uid, enabled=enabled, user_type="Guest" if guest else "Member", **fields)


def role(rid: str, name: str, template: str, privileged=ABSENT) -> dict:
    definition = {"id": rid, "displayName": name, "templateId": template, "isBuiltIn": True}
    if privileged is not ABSENT:
        definition["isPrivileged"] = privileged
    return definition


GLOBAL_ADMIN = role("rd-global-admin", "Global Administrator", GA_TEMPLATE, privileged=True)
READER = role("rd-reader", "Message Center Reader", READER_TEMPLATE, privileged=False)


def members(*user_ids: str, groups=()) -> list[dict]:
    """A group_members entry: direct users and nested groups."""
    return [{"@odata.type": USER_ODATA, "id": u} for u in user_ids] + [
        {"@odata.type": GROUP_ODATA, "id": g} for g in groups
    ]


def strength_policy(requirements: bool | str) -> dict:
    """An authentication strength: True is Microsoft's built-in MFA strength; a string is what a custom
    strength's requirementsSatisfied says ("absent": Graph left it out)."""
    if requirements is True:
        return {
            "id": "00000000-0000-0000-0000-000000000002",
            "displayName": "Multifactor authentication",
            "requirementsSatisfied": "mfa",
        }
    custom = {"id": "c0ffee00-0000-0000-0000-000000000001", "displayName": "Password and device (custom)"}
    return custom if requirements == "absent" else custom | {"requirementsSatisfied": requirements}


def ca_policy(
    pid: str,
    *,
    include_users=("All",),
    exclude_users=(),
    include_groups=(),
    exclude_groups=(),
    include_roles=(),
    exclude_roles=(),
    grant=("mfa",),
    operator="OR",
    strength=False,
    apps=("All",),
    client_types=("all",),
    state="enabled",
) -> dict:
    """A Conditional Access policy; by default: MFA for all users, all apps, all clients (full)."""
    grant_controls = (
        None
        if grant is None and not strength
        else {
            "operator": operator,
            "builtInControls": list(grant or ()),
            "authenticationStrength": strength_policy(strength) if strength else None,
        }
    )
    return {
        "id": pid,
        "displayName": f"Policy {pid}",
        "state": state,
        "conditions": {
            "users": {
                "includeUsers": list(include_users),
                "excludeUsers": list(exclude_users),
                "includeGroups": list(include_groups),
                "excludeGroups": list(exclude_groups),
                "includeRoles": list(include_roles),
                "excludeRoles": list(exclude_roles),
            },
            "applications": {"includeApplications": list(apps), "excludeApplications": []},
            "clientAppTypes": list(client_types),
        },
        "grantControls": grant_controls,
        "modifiedDateTime": "2026-01-01T00:00:00Z",
    }


BLOCK_LEGACY = ca_policy("p-block-legacy", grant=("block",), client_types=("exchangeActiveSync", "other"))


def sku(sku_id: str, consumed: int, prepaid=ABSENT) -> dict:
    found = {
        "skuId": sku_id,
        "skuPartNumber": f"PART_{sku_id}",
        "capabilityStatus": "Enabled",
        "consumedUnits": consumed,
    }
    if prepaid is not ABSENT:
        found["prepaidUnits"] = {"enabled": prepaid, "suspended": 0, "warning": 0, "lockedOut": 0}
    return found


def tenant_files(
    users,
    *,
    groups=None,
    group_members=None,
    roles=(GLOBAL_ADMIN, READER),
    assignments=(),
    eligible=(),
    policies=(),
    security_defaults=False,
    skus=(),
    unregistered=(),
    unrecorded=(),
    key="contoso",
    captured: datetime = CAPTURED,
) -> dict:
    """A whole, complete snapshot. `assignments` (active) and `eligible` (PIM): (principal id, role definition
    id) pairs; every user
    has a registration record (registered) except those in `unregistered` (not) and `unrecorded` (none)."""
    group_members = dict(group_members or {})
    users = list(users)
    return {
        "tenant": tenant_doc(key, capturedAt=iso(captured)),
        "users": users,
        "groups": [
            {"id": g, "displayName": f"Group {g}", "securityEnabled": True, "mailEnabled": False}
            for g in (groups if groups is not None else group_members)
        ],
        "group_members": group_members,
        "role_definitions": list(roles),
        "role_assignments": [
            {"id": f"as-{principal}-{rid}", "principalId": principal, "roleDefinitionId": rid, "directoryScopeId": "/"}
            for principal, rid in assignments
        ],
        "role_eligibilities": [
            {"id": f"el-{principal}-{rid}", "principalId": principal, "roleDefinitionId": rid, "endDateTime": None}
            for principal, rid in eligible
        ],
        "conditional_access_policies": list(policies),
        "security_defaults": {"id": "00000000-0000-0000-0000-000000000000", "isEnabled": security_defaults},
        "subscribed_skus": list(skus),
        "user_registration_details": [
            {
                "id": u["id"],
                "userPrincipalName": u["userPrincipalName"],
                "isAdmin": False,
                "isMfaCapable": u["id"] not in unregistered,
                "isMfaRegistered": u["id"] not in unregistered,
                "methodsRegistered": [] if u["id"] in unregistered else ["microsoftAuthenticatorPush"],
            }
            for u in users
            if u["id"] not in unrecorded
        ],
    }


def admin(uid: str) -> tuple[str, str]:
    return (uid, GLOBAL_ADMIN["id"])


def damaged(files: dict, stem: str, how: str) -> dict:
    """A copy of the snapshot where one input was not read: its file `missing`, or marked `incomplete`.

    `signInActivity` is not a file: missing means no user carries it (no P1), incomplete means Graph
    refused it (users re-read without it, recorded in `sources`).
    """
    files = copy.deepcopy(files)
    if stem == "signInActivity":
        for found in files["users"]:
            found.pop("signInActivity", None)
    elif how == "missing":
        del files[stem]
    if how == "incomplete":
        files["tenant"].setdefault("sources", {})[stem] = {"complete": False, "reason": f"test: {stem} page 2 failed"}
    return files


def captured_later(files: dict, days: int) -> dict:
    """The same tenant captured `days` later (sign-ins keep their dates, so they age)."""
    files = copy.deepcopy(files)
    files["tenant"]["capturedAt"] = days_ago(-days, captured_of(files))
    return files


def captured_of(files: dict) -> datetime:
    return datetime.fromisoformat(files["tenant"]["capturedAt"].replace("Z", "+00:00"))


# --- analysis without a database -----------------------------------------------------


def context_of(files: dict, *, stale_days: int = 90, unused_license_threshold: int = 1) -> TenantContext:
    """The TenantContext the pipeline would build from this snapshot, as the first pass stores it."""
    problems = [p for stem, content in files.items() for p in content_problems(stem, content)]
    assert not problems, "test snapshot breaks docs/snapshot-format.md: " + "; ".join(map(str, problems))
    files = copy.deepcopy(files)
    snapshot = Snapshot("test data", files.pop("tenant"), files)
    header = tenant_header(
        SimpleNamespace(
            tenant=snapshot.key,
            name=snapshot.tenant["name"],
            stale_days=stale_days,
            unused_license_threshold=unused_license_threshold,
            endpoint_stale_days=14,
            data_source_id=1,
            snapshot_id=1,
            captured_at=snapshot.captured_at,
            counts=snapshot.counts(),
            sources=snapshot.sources,
        )
    )
    records = chain.from_iterable(snapshot_records(snapshot).values())
    rows = [EntityRow(n, r.entity_type, r.external_id, "normal", r.data) for n, r in enumerate(records, 1)]
    edges = [(*key, details) for key, details in desired_edges(rows).items()]  # what the linker writes
    return build_context(header, rows, edges)


def analyze(files: dict, **thresholds) -> Analysis:
    return UnifiedAnalyzer().analyze(context_of(files, **thresholds))


def raised(analysis: Analysis, alert_type: str) -> dict[str, str]:
    """{entity id (":sku" for license_waste): severity} of one alert type's findings."""
    return {
        f.entity_id + (f":{f.sku_id}" if f.sku_id else ""): f.severity
        for f in analysis.findings
        if f.alert_type == alert_type
    }


def evaluation_of(analysis: Analysis, alert_type: str) -> RuleEvaluation:
    (found,) = [e for e in analysis.evaluations if e.alert_type == alert_type]
    return found


# --- tenant passes on a real database --------------------------------------------------


class Tenant:
    """One tenant on a real database: import snapshots, run passes, read alerts, events and states."""

    def __init__(self, engine, root: Path, key: str = "contoso"):
        self.engine, self.root, self.key = engine, root, key
        self.clock = CAPTURED + timedelta(hours=1)
        self.passes = 0

    def sync(
        self, files: dict, *, now: datetime | None = None, expect: str | None = "succeeded", **options
    ) -> TenantPass:
        """Import the snapshot and run every stage over it (the clock: an hour after capturedAt)."""
        import_files(self.engine, self.root / "store", files, name=self.key)
        self.clock = now or captured_of(files) + timedelta(hours=1)
        return self.run(expect=expect, **options)

    def run(
        self, *, now: datetime | None = None, expect: str | None = "succeeded", stages=STAGES, **options
    ) -> TenantPass:
        """A pass over the current snapshot."""
        self.passes += 1
        clock = now or self.clock
        result = run_tenant_pass(
            self.engine,
            self.key,
            stages,
            PassOptions(run_id=f"pass-{self.passes}", lease_wait_seconds=1, now=lambda: clock, **options),
        )
        if expect is not None:
            assert result.status == expect, result.reason
        return result

    def alerts(self) -> dict[tuple[str, str, str], object]:
        """{(alert type, entity id, sku id): row} of every alert of the tenant."""
        with self.engine.connect() as conn:
            rows = conn.execute(select(alerts).where(alerts.c.tenant == self.key).order_by(alerts.c.id)).all()
        return {(r.alert_type, r.entity_id, r.sku_id): r for r in rows}

    def alert(self, alert_type: str, entity_id: str | None = None, sku_id: str = ""):
        return self.alerts().get((alert_type, entity_id or self.key, sku_id))

    def statuses(self) -> dict[tuple[str, str, str], str]:
        return {key: row.status for key, row in self.alerts().items()}

    def events(self, alert_id: int | None = None) -> list:
        query = select(alert_events).where(alert_events.c.tenant == self.key)
        if alert_id is not None:
            query = query.where(alert_events.c.alert_id == alert_id)
        with self.engine.connect() as conn:
            return conn.execute(query.order_by(alert_events.c.id)).all()

    def state(self, entity_type: str, external_id: str) -> str:
        with self.engine.connect() as conn:
            return conn.execute(
                select(entities.c.state).where(
                    entities.c.tenant == self.key,
                    entities.c.entity_type == entity_type,
                    entities.c.external_id == external_id,
                )
            ).scalar_one()

    def evaluations(self) -> dict[str, object]:
        """The rule_evaluations of the latest analysis, by alert type."""
        with self.engine.connect() as conn:
            rows = conn.execute(select(rule_evaluations).where(rule_evaluations.c.tenant == self.key)).all()
        return {r.alert_type: r for r in rows}

    def suppress(
        self,
        alert_type: str,
        entity_id: str | None = None,
        *,
        until: datetime,
        sku_id: str = "",
        reason: str = "accepted risk: break-glass account",
    ) -> None:
        """What the suppress command does to the row (the CLI is written elsewhere)."""
        row = self.alert(alert_type, entity_id, sku_id)
        with self.engine.begin() as conn:
            conn.execute(
                update(alerts)
                .where(alerts.c.tenant == self.key, alerts.c.id == row.id)
                .values(status="suppressed", suppressed_reason=reason, suppressed_until=until, suppressed_at=self.clock)
            )

    def thresholds(self, **values) -> None:
        """Per-tenant settings (stale_days, unused_license_threshold) after the first import."""
        with self.engine.begin() as conn:
            conn.execute(update(tenants).where(tenants.c.tenant == self.key).values(**values))


@contextmanager
def poisoned_alert_events(engine):
    """A real database error on the first alert event a pass writes: a trigger, on either database."""
    with engine.begin() as conn:
        if engine.dialect.name == "sqlite":
            conn.execute(
                text(
                    "CREATE TRIGGER poison_events BEFORE INSERT ON alert_events "
                    "BEGIN SELECT RAISE(ABORT, 'poisoned alert event'); END"
                )
            )
        else:
            conn.execute(
                text(
                    "CREATE OR REPLACE FUNCTION poison_events() RETURNS trigger AS $$ BEGIN "
                    "RAISE EXCEPTION 'poisoned alert event'; END $$ LANGUAGE plpgsql"
                )
            )
            conn.execute(
                text(
                    "CREATE TRIGGER poison_events BEFORE INSERT ON alert_events "
                    "FOR EACH ROW EXECUTE FUNCTION poison_events()"
                )
            )
    try:
        yield
    finally:
        with engine.begin() as conn:
            suffix = "" if engine.dialect.name == "sqlite" else " ON alert_events"
            conn.execute(text(f"DROP TRIGGER IF EXISTS poison_events{suffix}"))
