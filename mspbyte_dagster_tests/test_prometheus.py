"""The shipped rules and dashboard against a real Prometheus (Debian's `prometheus`), scraping the
exporter after real passes: the guide's queries answer as the README says."""

from __future__ import annotations

import json
import re
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import select, update

from mspbyte_dagster.lib.flags import FLAG_DEFAULTS
from mspbyte_dagster.lib.metrics.server import metrics_server
from mspbyte_dagster.lib.pipeline import STAGES, PassOptions, run_tenant_pass
from mspbyte_dagster.lib.store.db import engine_for
from mspbyte_dagster.lib.store.schema import pipeline_ledger, snapshots
from mspbyte_dagster.settings import REPO_ROOT
from mspbyte_dagster_tests.conftest import debian_binary, http_answers
from mspbyte_dagster_tests.snapshots import import_files, minimal_files
from mspbyte_dagster_tests.test_metrics import free_port

RULES = REPO_ROOT / "deploy" / "prometheus" / "rules.yml"
DASHBOARD = REPO_ROOT / "deploy" / "prometheus" / "dashboard.json"
SUCCESS_RATE = (
    'sum(rate(mspbyte_pipeline_executions_total{status="success"}[5m])) '
    "/ sum(rate(mspbyte_pipeline_executions_total[5m]))"
)

pytestmark = pytest.mark.slow


def test_promtool_accepts_the_rules():
    checked = subprocess.run(
        [debian_binary("promtool", "prometheus"), "check", "rules", str(RULES)], capture_output=True, text=True
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "SUCCESS: 8 rules found" in checked.stdout


class Prometheus:
    def __init__(self, url: str):
        self.url = url

    def get(self, path: str, **query) -> dict:
        address = f"{self.url}{path}" + (f"?{urllib.parse.urlencode(query)}" if query else "")
        with urllib.request.urlopen(address, timeout=10) as response:
            answer = json.loads(response.read())
        assert answer["status"] == "success", answer
        return answer["data"]

    def value(self, expression: str) -> float | None:
        result = self.get("/api/v1/query", query=expression)["result"]
        return float(result[0]["value"][1]) if result else None

    def until(self, what: Callable[[], object], timeout: float = 60.0) -> object:
        """`what()` once it is true (Prometheus scrapes and evaluates every second here)."""
        deadline = time.monotonic() + timeout
        while not (found := what()):
            assert time.monotonic() < deadline, "Prometheus never saw it"
            time.sleep(0.5)
        return found


@pytest.fixture
def prometheus(tmp_path, sqlite_url, request) -> Iterator[tuple[Prometheus, str]]:
    """Our exporter on the test's database, scraped every second by a Prometheus this test starts,
    with the shipped rules; `hold_alerts=False` (indirect) loads them without their `for:` holds, so an
    alert whose condition holds fires at once instead of after minutes."""
    program = debian_binary("prometheus", "prometheus")
    rules = RULES
    if not getattr(request, "param", True):
        rules = tmp_path / "rules.yml"
        rules.write_text(re.sub(r"for: \d+m", "for: 0s", RULES.read_text()))
    with metrics_server(sqlite_url, FLAG_DEFAULTS, port=0) as exporter:
        target = exporter.url.removeprefix("http://")
        config = tmp_path / "prometheus.yml"
        config.write_text(
            "global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
            f"rule_files: ['{rules}']\n"
            f"scrape_configs: [{{job_name: mspbyte, static_configs: [{{targets: ['{target}']}}]}}]\n"
        )
        port = free_port()
        log = (tmp_path / "prometheus.log").open("w")
        process = subprocess.Popen(
            [
                program,
                f"--config.file={config}",
                f"--storage.tsdb.path={tmp_path / 'data'}",
                f"--web.listen-address=127.0.0.1:{port}",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            server = Prometheus(f"http://127.0.0.1:{port}")
            server.until(lambda: http_answers(f"{server.url}/-/ready"))
            yield server, sqlite_url
        finally:
            process.terminate()
            process.wait(timeout=30)
            log.close()


@pytest.mark.parametrize("prometheus", [False], indirect=True)
def test_the_guides_queries_and_the_rules_answer_after_real_passes(prometheus, tmp_path):
    server, url = prometheus
    engine = engine_for(url)
    import_files(engine, tmp_path / "store", minimal_files("contoso"))
    # a first scrape holds the counters at 0, so the passes below are increases rate() can see
    server.until(lambda: server.value('mspbyte_pipeline_executions_total{status="success"}') == 0)
    for _ in range(2):
        assert run_tenant_pass(engine, "contoso", STAGES, PassOptions()).status == "succeeded"
    assert server.until(lambda: server.value(SUCCESS_RATE)) == 1.0
    assert server.until(lambda: server.value("mspbyte:pipeline_success_rate:5m") == 1.0)  # the rule agrees
    with engine.connect() as conn:
        last_ms = conn.execute(select(pipeline_ledger.c.duration_ms).order_by(pipeline_ledger.c.id.desc())).first()[0]
    assert server.until(lambda: server.value('mspbyte_pipeline_duration_ms{tenant="contoso"}') == last_ms)

    with engine.begin() as conn:  # the next pass cannot read its snapshot: it fails
        conn.execute(update(snapshots).where(snapshots.c.tenant == "contoso").values(unreadable="lost"))
    assert run_tenant_pass(engine, "contoso", STAGES, PassOptions()).status == "failed"
    rate = server.until(lambda: (value := server.value(SUCCESS_RATE)) is not None and value < 1 and value)
    assert 0 < rate < 1

    def success_rate_alert():
        alerts = server.get("/api/v1/alerts")["alerts"]
        return [a for a in alerts if a["labels"]["alertname"] == "MspbytePipelineSuccessRateLow"]

    [alert] = server.until(lambda: [a for a in success_rate_alert() if a["state"] == "firing"])
    assert 0 < float(alert["value"]) < 0.995 and alert["labels"]["severity"] == "critical"
    groups = {group["name"]: group for group in server.get("/api/v1/rules")["groups"]}
    assert set(groups) == {"mspbyte-recording", "mspbyte-alerts"}
    assert all(rule["health"] == "ok" for group in groups.values() for rule in group["rules"])


def test_every_dashboard_panel_queries_what_the_exporter_serves(prometheus, tmp_path):
    server, url = prometheus
    engine = engine_for(url)
    import_files(engine, tmp_path / "store", minimal_files("contoso"))
    assert run_tenant_pass(engine, "contoso", STAGES, PassOptions()).status == "succeeded"
    server.until(lambda: server.value('mspbyte_pipeline_duration_ms{tenant="contoso"}'))
    panels = json.loads(Path(DASHBOARD).read_text())["panels"]
    assert [p["title"] for p in panels] == [
        "Pipeline success rate (5 m)",
        "Latest pass duration by tenant (ms)",
        "Slow-query share (1 h, fleet)",
        "Alert actions per hour",
        "Open alerts by severity",
    ]
    for panel in panels:
        [target] = panel["targets"]
        assert server.get("/api/v1/query", query=target["expr"])["resultType"] == "vector", panel["title"]
    open_alerts = server.until(lambda: server.get("/api/v1/query", query=panels[4]["targets"][0]["expr"])["result"])
    assert {series["metric"]["severity"] for series in open_alerts} >= {"high", "medium", "low"}
