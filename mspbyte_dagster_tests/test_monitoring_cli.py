"""`mspbyte metrics summary` (the guide's getSummary) and `mspbyte db check` (its troubleshooting step)."""

from __future__ import annotations

import json

from sqlalchemy import select, text, update

from mspbyte_dagster.lib.pipeline import STAGES, PassOptions, run_tenant_pass
from mspbyte_dagster.lib.store.db import engine_for
from mspbyte_dagster.lib.store.schema import pipeline_ledger, snapshots
from mspbyte_dagster_tests.snapshots import import_files, minimal_files, mspbyte


def test_summary_gives_the_guides_figures_from_the_ledger(app_env, tmp_path):
    engine = engine_for(app_env["DATABASE_URL"])
    import_files(engine, tmp_path / "store", minimal_files("contoso"))
    assert run_tenant_pass(engine, "contoso", STAGES, PassOptions()).status == "succeeded"
    with engine.begin() as conn:  # the next pass cannot read its snapshot: it fails
        conn.execute(update(snapshots).where(snapshots.c.tenant == "contoso").values(unreadable="lost"))
    assert run_tenant_pass(engine, "contoso", STAGES, PassOptions()).status == "failed"
    code, out, err = mspbyte("metrics", "summary", "--json")
    assert code == 0, err
    summary = json.loads(out)
    with engine.connect() as conn:
        rows = conn.execute(select(pipeline_ledger)).all()
    assert summary["executions"] == {"success": 1, "failure": 1} and summary["success_rate"] == 0.5
    assert summary["total_queries"] == sum(r.queries for r in rows) > 0
    assert summary["average_pipeline_duration_ms"] == round(sum(r.duration_ms for r in rows) / 2, 1)
    assert summary["by_stage"]["alerts"]["executions"] == 1  # the failed pass completed no stage
    code, out, _ = mspbyte("metrics", "summary")
    assert code == 0 and "1 success, 1 failure (success rate 0.5)" in out


def test_db_check_names_a_missing_composite_index(app_env):
    engine = engine_for(app_env["DATABASE_URL"])
    code, out, err = mspbyte("db", "check")
    assert code == 0, err
    assert "ok      alerts (tenant, status)" in out and "MISSING" not in out
    with engine.begin() as conn:
        conn.execute(text("DROP INDEX ix_alerts_tenant_status"))
    code, out, err = mspbyte("db", "check")
    assert code == 1 and "MISSING alerts (tenant, status)" in out
    assert "1 composite index(es) missing" in err
