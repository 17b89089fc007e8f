"""`mspbyte tenants import|list` and `mspbyte run` on both databases and a real Dagster instance."""

import json
import os
import shutil
import zlib

import pytest
from dagster import AssetKey, DagsterInstance
from sqlalchemy import func, select

from mspbyte_dagster.cli.run import tenant_ranges
from mspbyte_dagster.defs.partitions import PROCESS_TAG
from mspbyte_dagster.lib.store.db import engine_for
from mspbyte_dagster.lib.store.schema import snapshot_files, snapshots, tenants
from mspbyte_dagster_tests.snapshots import minimal_files, mspbyte, write_folder


def row_counts(url: str) -> tuple[int, int]:
    with engine_for(url).connect() as conn:
        return (
            conn.execute(select(func.count()).select_from(tenants)).scalar(),
            conn.execute(select(func.count()).select_from(snapshots)).scalar(),
        )


def test_import_registers_tenants_snapshots_and_partitions(app_env, synth_dir):
    folders = sorted(str(p) for p in synth_dir.iterdir())
    code, out, err = mspbyte("tenants", "import", *folders, "--json")
    assert code == 0, err
    imported = json.loads(out)
    assert [item["snapshot"] for item in imported] == [1, 1, 1, 1]
    keys = [item["tenant"] for item in imported]
    assert DagsterInstance.get().get_dynamic_partitions("tenants") == keys

    code, out, _ = mspbyte("tenants", "list", "--json")
    listed = json.loads(out)
    assert [row["tenant"] for row in listed] == keys
    first = listed[0]
    assert {"tenant", "name", "azure_tenant_id", "data_sources", "current_snapshot", "captured_at"} <= first.keys()
    assert first["data_sources"][0]["id"] == "m365" and first["data_sources"][0]["mode"] == "files"
    assert first["captured_at"] == "2026-11-01T00:00:00Z"


def test_reimport_of_identical_content_becomes_the_current_snapshot(app_env, tmp_path):
    folder = write_folder(tmp_path / "contoso", minimal_files())
    assert mspbyte("tenants", "import", str(folder))[0] == 0
    assert mspbyte("tenants", "import", str(folder))[0] == 0
    listed = json.loads(mspbyte("tenants", "list", "--json")[1])
    assert listed[0]["current_snapshot"] == 2
    with engine_for(app_env["DATABASE_URL"]).connect() as conn:
        stored = conn.execute(
            select(snapshots.c.seq, snapshot_files.c.name, snapshot_files.c.content)
            .join(snapshot_files, snapshot_files.c.snapshot_id == snapshots.c.id)
            .where(snapshots.c.tenant == "contoso")
        ).all()
    on_disk = {path.stem: path.read_bytes() for path in folder.glob("*.json")}
    assert sorted({(seq, name) for seq, name, _ in stored}) == sorted((seq, name) for seq in (1, 2) for name in on_disk)
    assert all(zlib.decompress(content) == on_disk[name] for _, name, content in stored)  # byte for byte
    assert not (tmp_path / "data" / "snapshots").exists()  # nothing a run needs lives on local disk


def test_an_invalid_folder_changes_nothing(app_env, tmp_path):
    good = write_folder(tmp_path / "good", minimal_files("good"))
    files = minimal_files("bad")
    files["users"][0]["accountEnabled"] = "yes"
    bad = write_folder(tmp_path / "bad", files)
    code, _, err = mspbyte("tenants", "import", str(good), str(bad))
    assert code != 0
    assert "users.json record 0 (id 'u0') field 'accountEnabled'" in err and "nothing was imported" in err
    assert row_counts(app_env["DATABASE_URL"]) == (0, 0)
    assert not (tmp_path / "data" / "snapshots").exists()
    assert DagsterInstance.get().get_dynamic_partitions("tenants") == []


def test_import_into_an_unmigrated_database_says_what_to_run(app_env, tmp_path, monkeypatch):
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'fresh.db'}")
    code, _, err = mspbyte("tenants", "import", str(write_folder(tmp_path / "c", minimal_files())))
    assert code == 2 and "mspbyte db upgrade" in err


def test_bad_setting_stops_the_command_naming_the_variable(app_env, monkeypatch):
    monkeypatch.setenv("FEATURE_NEW_PIPELINE_ROLLOUT", "abc")
    code, _, err = mspbyte("flags", "list")
    assert code == 2 and "FEATURE_NEW_PIPELINE_ROLLOUT" in err


def test_flags_status_json(app_env, monkeypatch, tmp_path):
    monkeypatch.setenv("FEATURE_BATCH_LOADING_ROLLOUT", "0")
    assert mspbyte("tenants", "import", str(write_folder(tmp_path / "c", minimal_files())))[0] == 0
    status = json.loads(mspbyte("flags", "status", "batch_loading", "--tenant", "contoso", "--json")[1])
    assert status["effective"] is False and status["source"] == "env" and 0 <= status["bucket"] < 100
    code, _, err = mspbyte("flags", "status", "warp_drive")
    assert code == 2 and "new_pipeline" in err
    code, _, err = mspbyte("flags", "status", "batch_loading", "--tenant", "nosuch")  # as every command does
    assert code == 2 and "unknown tenant 'nosuch'" in err


@pytest.mark.slow
def test_run_materializes_the_snapshot_stage_per_tenant(app_env, synth_dir):
    folders = sorted(str(p) for p in synth_dir.iterdir())
    mspbyte("tenants", "import", *folders)
    code, out, err = mspbyte("run", "--all")
    assert code == 0, err
    assert out.count("succeeded") == 1  # four contiguous tenants: one run
    instance = DagsterInstance.get()
    keys = instance.get_dynamic_partitions("tenants")
    assert instance.get_materialized_partitions(AssetKey("m365_snapshot")) == set(keys)
    event = instance.get_latest_materialization_event(AssetKey("m365_snapshot"))
    assert event.asset_materialization.metadata["counts"].value["users"] == 40


@pytest.mark.slow
def test_run_runs_ranges_side_by_side_in_worker_processes_on_postgresql_only(app_env, synth_dir):
    """Two tenants apart in the partition order are two ranges: on PostgreSQL each runs in a worker process
    (its run's process tag names the worker); on SQLite, one writer at a time, both run in this process."""
    mspbyte("tenants", "import", *sorted(str(p) for p in synth_dir.iterdir()))
    instance = DagsterInstance.get()
    first, skipped, third = instance.get_dynamic_partitions("tenants")[:3]
    code, out, err = mspbyte("run", "--tenant", third, "--tenant", first)
    assert code == 0, err
    assert sorted(line.split(" tenants ")[1] for line in out.splitlines()) == [
        f"{first}..{first}: 1 succeeded",
        f"{third}..{third}: 1 succeeded",
    ]
    assert instance.get_materialized_partitions(AssetKey("alerts")) == {first, third}
    pids = {int(run.tags[PROCESS_TAG].split(":")[1]) for run in instance.get_runs()}
    on_sqlite = app_env["DATABASE_URL"].startswith("sqlite")
    assert (pids == {os.getpid()}) if on_sqlite else (os.getpid() not in pids and len(pids) >= 1)
    code, out, err = mspbyte("run", "--tenant", skipped, "--jobs", "1")
    assert code == 0 and len(instance.get_runs()) == 3
    assert int(instance.get_runs()[0].tags[PROCESS_TAG].split(":")[1]) == os.getpid()


def test_run_names_unknown_tenants(app_env):
    code, _, err = mspbyte("run", "--tenant", "nobody")
    assert code == 2 and "nobody" in err


def test_tenant_ranges_split_non_contiguous_choices_and_cap_the_size():
    order = [f"t{n}" for n in range(10)]
    assert tenant_ranges(order, ["t1", "t2", "t5", "t9"]) == [["t1", "t2"], ["t5"], ["t9"]]
    assert tenant_ranges(order, order, size=4) == [order[:4], order[4:8], order[8:]]


def test_synth_writes_the_same_bytes_twice(tmp_path):
    for out in ("a", "b"):
        assert mspbyte("synth", "--tenants", "2", "--users", "20", "--seed", "9", "--out", str(tmp_path / out))[0] == 0
    for path in (tmp_path / "a").rglob("*.json"):
        assert path.read_bytes() == (tmp_path / "b" / path.relative_to(tmp_path / "a")).read_bytes()
    shutil.rmtree(tmp_path / "a")


def test_only_input_errors_end_as_one_line_and_a_bug_shows_as_one():
    from mspbyte_dagster.cli.common import expected_errors
    from mspbyte_dagster.lib.errors import InputError

    @expected_errors
    def refuses():
        raise InputError("tenant 'x' is not registered")

    @expected_errors
    def breaks():
        raise ValueError("an internal mistake")

    with pytest.raises(SystemExit) as refused:
        refuses()
    assert refused.value.code == 2
    with pytest.raises(ValueError, match="an internal mistake"):
        breaks()
