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
    low, high = result["new_total_seconds_spread"]
    assert low <= result["new_total_seconds_median"] <= high
    ratio = result["new_total_seconds_median"] / result["floor_seconds"]
    assert result["ratio_to_floor"] == pytest.approx(ratio, rel=0.25)  # of rounded figures
    assert all(stages[s][path]["peak_mb"] is not None for s in stages for path in ("new", "legacy"))  # both traced
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
    stages = json.loads(out)["stages"]
    assert 0 < stages["source_linking"]["new"]["queries"] <= 8 and stages["linking"]["new"]["queries"] <= 8
    assert stages["context"]["new"]["queries"] <= 7 and stages["alerts"]["new"]["queries"] <= 8
