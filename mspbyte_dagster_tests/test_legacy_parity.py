"""The legacy path (and each single stage flag off) computes what the new path computes: the same
alerts, alert events, findings, entity states and relationships, on synthetic tenants, each path
on its own fresh database."""

from __future__ import annotations

import json
import shutil
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from mspbyte_dagster.lib.flags import FLAG_DEFAULTS, FeatureFlagManager, RuntimeFlag
from mspbyte_dagster.lib.onboarding import import_folders
from mspbyte_dagster.lib.pipeline import STAGES, PassOptions, run_tenant_pass
from mspbyte_dagster.lib.store.db import engine_for
from mspbyte_dagster.lib.store.schema import alert_events, alerts, entities, entity_relationships, findings
from mspbyte_dagster_tests.rules import iso
from mspbyte_dev.synthetic import CAPTURED_AT, write_snapshots

SIZES = (10, 60, 300)
NOW = CAPTURED_AT + timedelta(hours=1)
PATHS = {
    "legacy": {"new_pipeline": RuntimeFlag(rollout=0)},
    "batch_loading_off": {"batch_loading": RuntimeFlag(enabled=False)},
    "unified_analyzer_off": {"unified_analyzer": RuntimeFlag(enabled=False)},
    "alert_manager_off": {"alert_manager": RuntimeFlag(enabled=False)},
}


def picture(engine) -> dict[str, list]:
    """What a path wrote, without row ids: rows sorted, relationships by external ids."""
    parent, child = entities.alias("parent"), entities.alias("child")
    edge = entity_relationships
    with engine.connect() as conn:
        alert_rows = conn.execute(select(alerts)).all()
        fingerprints = {r.id: (r.tenant, r.alert_type, r.entity_id, r.sku_id) for r in alert_rows}
        return {
            "alerts": sorted(tuple(r._mapping[c] for c in r._mapping if c != "id") for r in alert_rows),
            "alert_events": sorted(
                (
                    fingerprints[r.alert_id],
                    r.action,
                    r.status,
                    r.severity,
                    json.dumps(r.details, sort_keys=True),
                    r.run_id,
                    r.at,
                )
                for r in conn.execute(select(alert_events))
            ),
            "findings": sorted(
                (
                    r.tenant,
                    r.alert_type,
                    r.entity_type,
                    r.entity_id,
                    r.sku_id or "",
                    r.severity,
                    r.message,
                    json.dumps(r.details, sort_keys=True),
                )
                for r in conn.execute(select(findings))
            ),
            "entities": sorted(
                (r.tenant, r.entity_type, r.external_id, r.state, r.deleted_at is None)
                for r in conn.execute(select(entities))
            ),
            "relationships": sorted(
                (
                    r.tenant,
                    r.relationship_type,
                    r.parent_type,
                    r.parent,
                    r.child_type,
                    r.child,
                    json.dumps(r.details, sort_keys=True),
                )
                for r in conn.execute(
                    select(
                        edge.c.tenant,
                        edge.c.relationship_type,
                        edge.c.details,
                        parent.c.entity_type.label("parent_type"),
                        parent.c.external_id.label("parent"),
                        child.c.entity_type.label("child_type"),
                        child.c.external_id.label("child"),
                    )
                    .join(parent, parent.c.id == edge.c.parent_id)
                    .join(child, child.c.id == edge.c.child_id)
                )
            ),
        }


class PathRun:
    """One path on its own fresh SQLite database: import snapshot folders, run every tenant's pass."""

    def __init__(self, root: Path, template: Path, runtime: dict):
        root.mkdir(parents=True)
        shutil.copyfile(template, root / "app.db")
        self.engine = engine_for(f"sqlite:///{root / 'app.db'}")
        quiet = {"performance_monitoring": RuntimeFlag(enabled=False)}  # the same on every path: not compared
        self.flags = FeatureFlagManager(FLAG_DEFAULTS, runtime=quiet | runtime)
        self.passes = 0

    def run(self, folders: list[Path], now=NOW) -> dict[str, list]:
        self.passes += 1
        for imported in import_folders(self.engine, folders):
            result = run_tenant_pass(
                self.engine,
                imported.tenant,
                STAGES,
                PassOptions(run_id=f"pass-{self.passes}", flags=self.flags, now=lambda: now),
            )
            assert result.status == "succeeded", result.reason
        return picture(self.engine)

    def close(self) -> None:
        self.engine.dispose()


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    """Per size: four synthetic tenants (every variant), written once."""
    return {
        size: write_snapshots(tmp_path_factory.mktemp(f"synth{size}"), tenants=4, users=size, seed=11) for size in SIZES
    }


@pytest.fixture(scope="module")
def new_path(tmp_path_factory, sqlite_template, synthetic):
    """Per size, what the new path writes (computed once, on its own database)."""
    pictures = {}
    for size in SIZES:
        path_run = PathRun(tmp_path_factory.mktemp(f"new{size}") / "db", sqlite_template, {})
        pictures[size] = path_run.run(synthetic[size])
        path_run.close()
    return pictures


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("path", PATHS)
@pytest.mark.slow
def test_each_path_writes_what_the_new_path_writes(tmp_path, sqlite_template, synthetic, new_path, path, size):
    expected = new_path[size]
    assert all(expected[table] for table in expected), "every table has rows to compare"
    path_run = PathRun(tmp_path / path, sqlite_template, PATHS[path])
    try:
        got = path_run.run(synthetic[size])
    finally:
        path_run.close()
    for table in expected:
        assert got[table] == expected[table], f"{path} differs from the new path in {table}"


def changed_copy(folder: Path, out: Path) -> Path:
    """The tenant a day later: its largest group and an enabled policy gone (their edges with them),
    a disabled licence holder gone (its license_waste alerts with it), a fifth of the users toggled."""
    files = {p.stem: json.loads(p.read_text()) for p in folder.glob("*.json")}
    gone_group = max(files["group_members"], key=lambda g: len(files["group_members"][g]))
    files["groups"] = [g for g in files["groups"] if g["id"] != gone_group]
    files["group_members"].pop(gone_group)
    gone_user = next(u["id"] for u in files["users"] if not u["accountEnabled"] and u["assignedLicenses"])
    enabled = [p for p in files["conditional_access_policies"] if p["state"] == "enabled"]
    if len(enabled) > 1:  # the last enabled policy would make the empty-sync guard hold the tenant
        files["conditional_access_policies"].remove(enabled[0])
    files["users"] = [u for u in files["users"] if u["id"] != gone_user]
    gone = (gone_user, gone_group)
    for group_id, group_members in files["group_members"].items():
        files["group_members"][group_id] = [m for m in group_members if m["id"] not in gone]
    files["role_assignments"] = [a for a in files["role_assignments"] if a["principalId"] not in gone]
    for user in files["users"][::5]:
        user["accountEnabled"] = not user["accountEnabled"]
    files["tenant"]["capturedAt"] = iso(CAPTURED_AT + timedelta(days=1))
    out.mkdir(parents=True)
    for stem, content in files.items():
        (out / f"{stem}.json").write_text(json.dumps(content))
    return out


def run_changes(path_run: PathRun, first: list[Path], later: list[Path]) -> list[dict[str, list]]:
    """What three passes write: the tenants, the tenants changed a day later, the tenants as they were."""
    return [
        path_run.run(first),
        path_run.run(later, now=NOW + timedelta(days=1)),
        path_run.run(first, now=NOW + timedelta(days=2)),
    ]


@pytest.fixture(scope="module")
def changed(tmp_path_factory, sqlite_template, synthetic):
    """The 10-user tenants changed a day later, and what the new path writes over the three passes."""
    root = tmp_path_factory.mktemp("changed")
    later = [changed_copy(folder, root / "later" / folder.name) for folder in synthetic[10]]
    path_run = PathRun(root / "new", sqlite_template, {})
    expected = run_changes(path_run, synthetic[10], later)
    path_run.close()
    return later, expected


@pytest.mark.parametrize("path", PATHS)
def test_each_path_writes_what_the_new_path_writes_over_changed_snapshots(
    tmp_path, sqlite_template, synthetic, changed, path
):
    later, expected = changed
    events = expected[-1]["alert_events"]
    assert {row[1] for row in events} >= {"created", "resolved", "reopened"}
    assert any("entity_removed" in row[4] for row in events), "the change removes entities"
    path_run = PathRun(tmp_path / path, sqlite_template, PATHS[path])
    try:
        got = run_changes(path_run, synthetic[10], later)
    finally:
        path_run.close()
    for number, (got_pass, expected_pass) in enumerate(zip(got, expected, strict=True), 1):
        for table in expected_pass:
            assert got_pass[table] == expected_pass[table], f"{path} differs in {table} after pass {number}"
