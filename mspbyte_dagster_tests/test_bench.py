"""`mspbyte bench` keeps working and its statement counts hold (times are printed, never asserted)."""

import json

import pytest

from mspbyte_dagster_tests.snapshots import mspbyte


def test_bench_prints_both_paths_with_the_query_budgets(tmp_path, monkeypatch):
    monkeypatch.setenv("MSPBYTE_DATA_DIR", str(tmp_path))
    code, out, err = mspbyte("bench", "--users", "30", "--json", "--repeat", "2")
    assert code == 0, err
    result = json.loads(out)
    assert result["database"] == "sqlite" and result["users"] == 30
    kept = result["snapshots"]  # JSON compresses well: what the app database holds is smaller
    assert 0 < kept["stored_mb"] < kept["raw_mb"] and kept["load_seconds_per_tenant"] > 0
    stages = result["stages"]
    assert list(stages) == ["linking", "source_linking", "context", "analysis", "alerts"]  # the data flow's order
    assert result["repeat"] == 2 and result["floor_seconds"] > 0
    assert 0 <= result["collector_seconds"] < result["new_total_seconds"]  # the collection after the path counts
    low, high = result["new_total_seconds_spread"]
    assert low <= result["new_total_seconds_median"] <= high
    ratio = result["new_total_seconds_median"] / result["floor_seconds"]
    assert result["ratio_to_floor"] == pytest.approx(ratio, rel=0.25)  # of rounded figures
    assert all(stages[s][path]["peak_mb"] is not None for s in stages for path in ("new", "legacy"))  # both traced
    # the process's peak before tracing, and after it (the traces weigh on it)
    assert 0 < result["process_max_rss_mb"] <= result["traced_process_max_rss_mb"]
    assert stages["context"]["new"]["queries"] <= 7 and stages["linking"]["new"]["queries"] <= 8
    assert stages["alerts"]["new"]["queries"] <= 8
    assert stages["source_linking"]["new"]["queries"] == 1  # no other source: one read finds nothing to link
    for stage, figures in stages.items():
        if stage != "source_linking":
            assert figures["legacy"]["queries"] > figures["new"]["queries"]
            assert figures["ratio"]["queries"] > 1
    assert not (tmp_path / "app.db").exists()  # a scratch database, never the configured one


def test_bench_with_a_sophos_source_keeps_the_query_budgets(tmp_path, monkeypatch):
    monkeypatch.setenv("MSPBYTE_DATA_DIR", str(tmp_path))
    code, out, err = mspbyte(
        "bench", "--users", "60", "--sources", "m365,sophos", "--no-legacy", "--no-memory", "--repeat", "1", "--json"
    )
    assert code == 0, err
    result = json.loads(out)
    stages = result["stages"]
    assert result["traced_process_max_rss_mb"] is None and result["process_max_rss_mb"] > 0  # nothing traced
    assert 0 < stages["source_linking"]["new"]["queries"] <= 8 and stages["linking"]["new"]["queries"] <= 8
    assert stages["context"]["new"]["queries"] <= 7 and stages["alerts"]["new"]["queries"] <= 8


@pytest.mark.services
@pytest.mark.slow
def test_bench_fleet_refreshes_a_fleet_through_the_daemon_and_in_one_process(
    monkeypatch, postgres_admin_url, redis_url, nats_url
):
    for name, value in {
        "DATABASE_URL": postgres_admin_url,
        "CELERY_BROKER_URL": redis_url,
        "NATS_URL": nats_url,
    }.items():
        monkeypatch.setenv(name, value)
    code, out, err = mspbyte("bench", "fleet", "--tenants", "3", "--users", "10", "--workers", "1", "--json")
    assert code == 0, err
    result = json.loads(out)
    assert (result["tenants"], result["runs_launched"], result["tenants_succeeded"]) == (3, 1, 3)
    assert result["wall_seconds"] > 0 and result["in_process_seconds"] > 0 and result["events"] > 0
    assert 0 < result["tenant_work_seconds"] < result["run_seconds_total"]
    assert result["launch_seconds_median"] > 0 and result["queued_seconds_median"] >= 0
    # a tenant's events (7 materializations, its checks...) and Dagster's statements behind them
    assert result["events_per_tenant"] > 7
    assert result["in_process_dagster_transactions_per_tenant"] > result["events_per_tenant"] / 3


def test_bench_fleet_needs_the_production_services(monkeypatch, tmp_path):
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'app.db'}")
    code, _, err = mspbyte("bench", "fleet", "--tenants", "3")
    assert code == 2 and "bench fleet runs the production stack" in err
