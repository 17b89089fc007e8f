"""What reports cost: one tenant's report at --users, and fleet_posture over --tenants small tenants.

    .venv/bin/python -m mspbyte_dagster_tests.bench_reports [--users 10000] [--tenants 1000]
        [--fleet-users 20] [--repeat 3] [--postgres URL] [--json]

- report: a --users tenant imported and passed once, then its report stage run alone --repeat times
  (a pass of its own: lease, ledger, build, render HTML/CSV/XLSX, store); median and spread, with the
  posture figures' own cost inside the findings stage (computed from the pass's context).
- fleet: --tenants tenants of --fleet-users users, each passed once, then fleet_posture built --repeat
  times (read, frame, Parquet and CSV, stored).

On a scratch SQLite database, or a scratch PostgreSQL database on the server of --postgres.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from statistics import median

from mspbyte_dagster.lib.adapters.microsoft365.analysis.unified import UnifiedAnalyzer
from mspbyte_dagster.lib.context import DataContextLoader
from mspbyte_dagster.lib.onboarding import import_folders
from mspbyte_dagster.lib.passes import REPORT
from mspbyte_dagster.lib.pipeline import STAGES, PassOptions, run_tenant_pass
from mspbyte_dagster.lib.reports.fleet import build_fleet_posture
from mspbyte_dagster.lib.reports.posture import posture
from mspbyte_dagster.lib.store.db import upgrade
from mspbyte_dev.bench import scratch_database
from mspbyte_dev.synthetic import write_snapshots


def _timed(step, repeat: int) -> dict:
    seconds = []
    for _ in range(repeat):
        started = time.perf_counter()
        step()
        seconds.append(time.perf_counter() - started)
    return {"median_s": round(median(seconds), 3), "spread_s": [round(min(seconds), 3), round(max(seconds), 3)]}


def bench(users: int, tenants: int, fleet_users: int, repeat: int, postgres: str | None) -> dict:
    figures: dict = {"database": "postgresql" if postgres else "sqlite", "repeat": repeat}
    with tempfile.TemporaryDirectory() as folder, scratch_database(postgres or "sqlite:///") as (engine, _kind):
        upgrade(engine)
        (big,) = import_folders(engine, write_snapshots(Path(folder) / "big", 1, users, seed=21))
        assert run_tenant_pass(engine, big.tenant, STAGES, PassOptions()).status == "succeeded"
        with engine.connect() as conn:
            context = DataContextLoader(conn).load(big.tenant)
        analysis = UnifiedAnalyzer().analyze(context)
        reports_made = []

        def report():
            result = run_tenant_pass(engine, big.tenant, (REPORT,), PassOptions())
            reports_made.append(result.stages[REPORT])

        figures["report"] = {"users": users, **_timed(report, repeat)}
        figures["report"]["kb"] = {k: v for k, v in reports_made[-1].items() if k.endswith("_kb")}
        figures["report"]["open_alerts"] = sum(reports_made[-1]["open_by_severity"].values())
        figures["posture_in_findings_stage"] = _timed(lambda: posture(context, analysis), repeat)
        fleet = import_folders(engine, write_snapshots(Path(folder) / "fleet", tenants, fleet_users, seed=22))
        started = time.perf_counter()
        for item in fleet:
            run_tenant_pass(engine, item.tenant, STAGES, PassOptions())
        figures["fleet_passes_s"] = round(time.perf_counter() - started, 1)

        def fleet_view():
            with engine.begin() as conn:
                build_fleet_posture(conn, datetime.now(UTC))

        figures["fleet_posture"] = {"tenants": tenants + 1, **_timed(fleet_view, repeat)}

    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=10_000)
    parser.add_argument("--tenants", type=int, default=1_000)
    parser.add_argument("--fleet-users", type=int, default=20)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--postgres", help="a PostgreSQL URL whose server gets a scratch database")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    figures = bench(args.users, args.tenants, args.fleet_users, args.repeat, args.postgres)
    print(json.dumps(figures, indent=2) if args.json else "\n".join(f"{k}: {v}" for k, v in figures.items()))


if __name__ == "__main__":
    main()
