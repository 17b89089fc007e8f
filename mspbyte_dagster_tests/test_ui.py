"""What an operator sees in the Dagster UI, in a headless Chromium (Debian's `chromium`, driven by
Playwright): a held tenant fails its run and its guard check's partition, the alerts page shows the
open-alerts table, and nothing that is off counts as Missing. Screenshots go to .test-artifacts/ui/."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from dagster import DagsterInstance

from mspbyte_dagster.settings import INSTANCE_CONFIG, REPO_ROOT
from mspbyte_dagster_tests.conftest import http_answers
from mspbyte_dagster_tests.snapshots import minimal_files, mspbyte, write_folder
from mspbyte_dagster_tests.test_metrics import free_port

ARTIFACTS = REPO_ROOT / ".test-artifacts" / "ui"

pytestmark = [pytest.mark.slow, pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)]


@pytest.fixture
def held_world(app_env, monkeypatch, tmp_path) -> str:
    """alpha and bravo passed once; then bravo's users fell to a third and its next run held it.
    Returns the held run's id."""
    shutil.copy(INSTANCE_CONFIG, Path(app_env["DAGSTER_HOME"]) / "dagster.yaml")
    monkeypatch.setenv("MAX_CONCURRENT_JOBS", "5")
    for key in ("alpha", "bravo"):
        assert (
            mspbyte("tenants", "import", str(write_folder(tmp_path / f"{key}-1", minimal_files(key, users=30))))[0] == 0
        )
    assert mspbyte("run", "--all")[0] == 0
    assert (
        mspbyte("tenants", "import", str(write_folder(tmp_path / "bravo-2", minimal_files("bravo", users=10))))[0] == 0
    )
    assert mspbyte("run", "--all")[0] == 1
    with DagsterInstance.get() as instance:
        return instance.get_runs(limit=1)[0].run_id


@pytest.fixture
def webserver(held_world) -> Iterator[str]:
    """dagster-webserver on the test's instance and code, on a free loopback port."""
    port = free_port()
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    command = [str(Path(sys.executable).parent / "dagster-webserver"), "-h", "127.0.0.1", "-p", str(port)]
    with open(ARTIFACTS / "webserver.log", "w") as log:
        process = subprocess.Popen(
            [*command, "-w", "workspace.yaml"], cwd=REPO_ROOT, stdout=log, stderr=subprocess.STDOUT
        )
        url = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 120
            while not http_answers(f"{url}/server_info"):
                assert process.poll() is None and time.monotonic() < deadline, "dagster-webserver did not start"
                time.sleep(0.5)
            yield url
        finally:
            process.terminate()
            process.wait(timeout=30)


@pytest.fixture
def page(webserver, chromium_page):
    return chromium_page


def kept(page, artifact: str) -> str:
    """A screenshot kept as a test artifact (past the UI's first-visit newsletter dialog), and the text."""
    page.wait_for_timeout(1500)
    skip = page.get_by_role("button", name="Skip")
    if skip.count():
        skip.first.click()
    page.screenshot(path=ARTIFACTS / f"{artifact}.png")
    return page.inner_text("body")


def visit(page, url: str, shown: str, artifact: str) -> str:
    """The page's text once `shown` (a regular expression) appears."""
    page.goto(url)
    page.get_by_text(re.compile(shown)).first.wait_for()
    return kept(page, artifact)


def test_a_held_tenant_is_as_visible_as_a_failure_and_the_open_alerts_show(page, webserver, held_world):
    run_text = visit(page, f"{webserver}/runs/{held_world}", r"^Failure$", "held-run")
    assert "Failure" in run_text and "Success" not in run_text

    page.goto(f"{webserver}/assets/m365_snapshot?view=checks&checkDetail=empty_sync_guard")
    page.get_by_text("empty_sync_guard").first.wait_for()
    page.get_by_role("tab", name="Partitions").last.click()
    page.get_by_text(re.compile(r"^Failed \(1\)$")).first.wait_for()
    check_text = kept(page, "guard-check-partitions")
    assert "Failed (1)" in check_text and "Passed (1)" in check_text and "Missing (0)" in check_text

    alerts_text = visit(page, f"{webserver}/assets/alerts?view=partitions&partition=alpha", "open_alerts", "alerts")
    assert "id\tseverity\ttype\tentity\tsince\tstatus" in alerts_text  # the table's schema
    assert re.search(r"\d+\thigh\tlegacy_auth_not_blocked\ttenant:alpha\t", alerts_text)
    assert re.search(r"tenant\s+alpha", alerts_text)

    job_text = visit(
        page, f"{webserver}/locations/mspbyte_dagster/jobs/tenant_pipeline/partitions", "Missing partitions", "job"
    )
    assert re.search(r"\b0\s+Missing partitions", job_text)  # comparison_report is off: not counted missing
