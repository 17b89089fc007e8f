"""Reports an MSP sends its customers (tenant_report) and the fleet view (fleet_posture): their counts
agree with `alerts list`, a hostile name is text in HTML (headless Chromium) and never a formula in CSV
or XLSX, each holds one tenant's data, and they are kept as retention says."""

import io
import json
from datetime import UTC, datetime, timedelta

import openpyxl
import pandas as pd
import pytest
from dagster import DagsterInstance, RunRequest, SkipReason, build_sensor_context
from sqlalchemy import func, insert, select

from mspbyte_dagster.defs.resources import DatabaseResource
from mspbyte_dagster.lib.passes import REPORT
from mspbyte_dagster.lib.pipeline import STAGES, PassOptions, run_tenant_pass
from mspbyte_dagster.lib.store.db import engine_for
from mspbyte_dagster.lib.store.retention import Retention
from mspbyte_dagster.lib.store.schema import pipeline_ledger, tenant_reports
from mspbyte_dagster.settings import REPO_ROOT
from mspbyte_dagster_tests.snapshots import minimal_files, mspbyte, user, write_folder

ARTIFACTS = REPO_ROOT / ".test-artifacts" / "reports"
HOSTILE = '=HYPERLINK("http://evil.example/?x","click")<script>alert(1)</script>'
LICENCE = [{"skuId": "s1", "disabledPlans": []}]


def files(key: str, *extra: dict) -> dict:
    """A tenant with an admin without MFA registration, a leaver holding a licence, and `extra` users."""
    snapshot = minimal_files(key, users=3)
    snapshot["users"] += [user(f"{key}-leaver", enabled=False, assignedLicenses=LICENCE), *extra]
    return snapshot


def imported(tmp_path, key: str, snapshot: dict) -> None:
    assert (
        mspbyte(
            "tenants", "import", str(write_folder(tmp_path / f"in-{key}-{len(list(tmp_path.iterdir()))}", snapshot))
        )[0]
        == 0
    )


def full_pass(env, key: str) -> None:
    assert run_tenant_pass(engine_for(env["DATABASE_URL"]), key, STAGES, PassOptions()).status == "succeeded"


def report_files(tmp_path, key: str) -> dict[str, bytes]:
    out = tmp_path / f"out-{len(list(tmp_path.glob('out-*')))}"
    code, printed, err = mspbyte("report", "--tenant", key, "--out", str(out))
    assert code == 0, err
    return {path.rsplit(".", 1)[1]: open(path, "rb").read() for path in printed.split()}


@pytest.fixture
def contoso(app_env, tmp_path):
    imported(
        tmp_path,
        "contoso",
        files("contoso", user("hostile", enabled=False, assignedLicenses=LICENCE, displayName=HOSTILE)),
    )
    full_pass(app_env, "contoso")
    return app_env


def test_the_reports_open_alert_counts_equal_alerts_list(contoso, tmp_path):
    listed = json.loads(mspbyte("alerts", "list", "--tenant", "contoso", "--json")[1])
    active = pd.Series([row["severity"] for row in listed if row["status"] == "active"]).value_counts().to_dict()
    report = report_files(tmp_path, "contoso")
    from_csv = pd.read_csv(io.BytesIO(report["csv"]))
    assert sorted(from_csv["id"]) == sorted(row["id"] for row in listed if row["status"] != "resolved")
    assert from_csv[from_csv["status"] == "active"]["severity"].value_counts().to_dict() == active
    sheet = openpyxl.load_workbook(io.BytesIO(report["xlsx"]))["open alerts"]
    assert sheet.max_row - 1 == len(from_csv)
    with engine_for(contoso["DATABASE_URL"]).connect() as conn:
        figures = conn.execute(select(tenant_reports.c.figures)).scalar_one()
    assert {s: n for s, n in figures["open_by_severity"].items() if n} == active
    html = report["html"].decode()
    assert all(f">{severity}: {count}<" in html for severity, count in active.items())
    fetches = ("src=", "<link", "@import", "url(http", "url(//", 'href="http')  # self-contained: nothing fetched
    assert not [way for way in fetches if way in html] and "<svg" in html


@pytest.mark.slow
def test_a_hostile_display_name_is_text_in_the_browser_and_no_formula_in_csv_or_xlsx(contoso, tmp_path, chromium_page):
    report = report_files(tmp_path, "contoso")
    dialogs = []
    chromium_page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    page_file = tmp_path / "report.html"
    page_file.write_bytes(report["html"])
    chromium_page.goto(page_file.as_uri())
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    chromium_page.screenshot(path=ARTIFACTS / "tenant_report_hostile_name.png", full_page=True)
    shown = chromium_page.inner_text("body")
    assert HOSTILE in shown and "Security report: Contoso" in shown and "Open alerts over the last passes" in shown
    assert dialogs == [] and chromium_page.locator("script").count() == 0
    assert chromium_page.locator("svg").count() == 1  # the chart, inline
    cells = [
        cell for cell in pd.read_csv(io.BytesIO(report["csv"]), dtype=str).to_numpy().ravel() if isinstance(cell, str)
    ]
    assert any(HOSTILE in cell for cell in cells)
    assert not any(cell.startswith(("=", "+", "-", "@", "\t", "\r")) for cell in cells)
    book = openpyxl.load_workbook(io.BytesIO(report["xlsx"]))
    values = [cell for sheet in book for row in sheet.iter_rows() for cell in row if cell.value is not None]
    assert any(HOSTILE in str(cell.value) for cell in values)
    assert [cell.coordinate for cell in values if cell.data_type == "f"] == []
    exported = pd.read_csv(io.StringIO(mspbyte("alerts", "export", "--tenant", "contoso")[1]), dtype=str)
    (message,) = [text for text in exported["message"] if HOSTILE in text]
    assert message.startswith("'=HYPERLINK")


def test_a_report_says_what_opened_and_resolved_since_the_previous_one(contoso, tmp_path):
    first = report_files(tmp_path, "contoso")
    assert b"Since the first pass" in first["html"]
    imported(tmp_path, "contoso", files("contoso"))  # the hostile leaver is gone: its alert resolves
    full_pass(contoso, "contoso")
    second = report_files(tmp_path, "contoso")["html"].decode()
    assert "Since the previous report" in second and "0 opened, 1 resolved." in second
    assert "entity_removed" not in second and "user:hostile" in second


def test_a_report_holds_one_tenant_and_the_newest_are_kept(contoso, tmp_path, monkeypatch):
    imported(tmp_path, "fabrikam", files("fabrikam", user("fab-only", enabled=False, assignedLicenses=LICENCE)))
    full_pass(contoso, "fabrikam")
    monkeypatch.setenv("SNAPSHOT_RETENTION", "2")
    for _ in range(3):
        report = report_files(tmp_path, "contoso")
    assert b"fab-only" not in report["html"] + report["csv"] + report["xlsx"] and b"fabrikam" not in report["html"]
    with engine_for(contoso["DATABASE_URL"]).connect() as conn:
        kept = dict(conn.execute(select(tenant_reports.c.tenant, func.count()).group_by(tenant_reports.c.tenant)).all())
    assert kept == {"contoso": 2}
    assert Retention().snapshots == 10


def test_a_report_run_reads_no_snapshot_and_writes_only_the_report(contoso):
    engine = engine_for(contoso["DATABASE_URL"])
    result = run_tenant_pass(engine, "contoso", (REPORT,), PassOptions())
    assert result.status == "succeeded" and set(result.stages) == {REPORT}
    assert result.stages[REPORT]["html_kb"] > 1 and result.stages[REPORT]["opened"] > 0


def test_fleet_posture_has_one_row_per_tenant_most_in_need_first(definitions_reloaded_after, contoso, tmp_path):
    imported(tmp_path, "fabrikam", minimal_files("fabrikam", users=3))
    imported(tmp_path, "northwind", minimal_files("northwind", users=3))
    full_pass(contoso, "fabrikam")  # northwind: never passed, still a row
    from mspbyte_dagster.definitions import defs

    result = defs.resolve_job_def("fleet_posture_job").execute_in_process(instance=DagsterInstance.get())
    assert result.success
    (materialization,) = result.asset_materializations_for_node("fleet_posture")
    assert materialization.metadata["tenants"].value == 3
    assert "Contoso" in materialization.metadata["most_in_need"].value.splitlines()[2]
    out = tmp_path / "fleet"
    printed = mspbyte("report", "--fleet", "--out", str(out))[1].split()
    frame = pd.read_parquet(next(path for path in printed if path.endswith(".parquet")))
    assert list(frame["tenant"]) == ["contoso", "fabrikam", "northwind"] and frame["attention"].is_monotonic_decreasing
    row = frame.set_index("tenant").loc["contoso"]
    assert row["enabled_members"] == 3 and row["mfa_enforced_pct"] == 100.0 and row["licence_waste_units"] == 2
    assert pd.isna(frame.set_index("tenant").loc["northwind", "enabled_members"])
    assert len(pd.read_csv(next(path for path in printed if path.endswith(".csv")))) == 3


def test_fleet_posture_is_requested_once_tenant_runs_settle(contoso):
    from mspbyte_dagster.defs.reports import fleet_posture_sensor

    engine = engine_for(contoso["DATABASE_URL"])
    instance = DagsterInstance.get()

    def tick(cursor=None):
        context = build_sensor_context(instance=instance, cursor=cursor, resources={"database": DatabaseResource()})
        return fleet_posture_sensor(context), context.cursor

    outcome, _ = tick()
    assert isinstance(outcome, SkipReason) and "less than 2 minutes" in outcome.skip_message  # the pass just ran
    with engine.begin() as conn:
        conn.execute(pipeline_ledger.update().values(started_at=datetime.now(UTC) - timedelta(minutes=5)))
        running = conn.execute(
            insert(pipeline_ledger)
            .values(tenant="contoso", status="running", started_at=datetime.now(UTC), stages={}, details={})
            .returning(pipeline_ledger.c.id)
        ).scalar_one()
    assert isinstance(tick()[0], SkipReason)
    with engine.begin() as conn:
        conn.execute(
            pipeline_ledger.update()
            .where(pipeline_ledger.c.id == running)
            .values(status="failed", duration_ms=1, started_at=datetime.now(UTC) - timedelta(minutes=3))
        )
    request, cursor = tick()
    assert isinstance(request, RunRequest) and request.run_key == f"fleet:{running}" and cursor == str(running)
    assert isinstance(tick(cursor)[0], SkipReason)


def test_job_tenant_reports_materializes_each_tenants_report(definitions_reloaded_after, contoso):
    from mspbyte_dagster.definitions import defs

    instance = DagsterInstance.get()
    instance.add_dynamic_partitions("tenants", ["contoso"])
    result = defs.resolve_job_def("tenant_reports").execute_in_process(instance=instance, partition_key="contoso")
    assert result.success
    (materialization,) = result.asset_materializations_for_node("tenant_pass")
    assert materialization.asset_key.path == [REPORT] and materialization.partition == "contoso"
    assert materialization.metadata["html_kb"].value > 1 and materialization.metadata["tenant"].value == "contoso"
    assert instance.get_latest_materialization_event(materialization.asset_key) is not None
