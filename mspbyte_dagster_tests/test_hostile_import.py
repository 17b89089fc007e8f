"""Imports an attacker (or a broken exporter) would try: refused whole, named, and nothing changes."""

import json
import os

import pytest
from dagster import AssetKey, DagsterInstance
from sqlalchemy import func, select

from mspbyte_dagster.lib.adapters.snapshot_files import parse_snapshot
from mspbyte_dagster.lib.pipeline import STAGES, PassOptions, run_tenant_pass
from mspbyte_dagster.lib.store.db import engine_for
from mspbyte_dagster.lib.store.retention import Retention
from mspbyte_dagster.lib.store.schema import pipeline_ledger, snapshots, tenant_changes, tenants
from mspbyte_dagster_tests.services import free_port
from mspbyte_dagster_tests.snapshots import import_files, minimal_files, mspbyte, user, write_folder

OTHER_AZURE = "11111111-2222-4333-8444-555555555555"


def counts(url: str) -> tuple[int, int]:
    with engine_for(url).connect() as conn:
        return (
            conn.execute(select(func.count()).select_from(tenants)).scalar(),
            conn.execute(select(func.count()).select_from(snapshots)).scalar(),
        )


def write_raw(folder, files: dict, overrides: dict[str, bytes]):
    """A folder whose files are JSON, but for the raw bytes given."""
    write_folder(folder, files)
    for stem, raw in overrides.items():
        (folder / f"{stem}.json").write_bytes(raw)
    return folder


def users_with(first_user: dict) -> bytes:
    files = minimal_files()
    files["users"][0].update(first_user)
    return json.dumps(files["users"]).encode()


TENANT = minimal_files()["tenant"]
HOSTILE = {
    "azure id of 65 characters": ({"tenant": json.dumps(TENANT | {"azureTenantId": "a" * 65}).encode()}, "not a GUID"),
    "an id too long for its column": ({"users": users_with({"id": "u" * 129})}, "at most 128 fit"),
    "a NUL byte": ({"users": users_with({"displayName": "Eve\x00"})}, "NUL character"),
    "a lone surrogate": ({"users": users_with({"displayName": "x"}).replace(b'"x"', b'"\\ud800"')}, "lone surrogate"),
    "a NUL byte in a key": ({"users": users_with({"extension\x00": 1})}, "NUL character"),
    "a lone low surrogate, upper case": (
        {"users": users_with({"displayName": "x"}).replace(b'"x"', b'"ok \\uDC00"')},
        "lone surrogate",
    ),
    "NaN": ({"subscribed_skus": b'[{"skuId": "s1", "consumedUnits": NaN}]'}, "NaN is not a JSON number"),
    "capturedAt in year 3000": (
        {"tenant": json.dumps(TENANT | {"capturedAt": "3000-01-01T00:00:00Z"}).encode()},
        "outside the years 2000 to 2099",
    ),
    "capturedAt in year 1": (
        {"tenant": json.dumps(TENANT | {"capturedAt": "0001-01-01T00:00:00Z"}).encode()},
        "outside the years",
    ),
    "a 5,000-digit number": (
        {"subscribed_skus": b'[{"skuId": "s1", "consumedUnits": ' + b"9" * 5000 + b"}]"},
        "digits",
    ),
    "an integer beyond 64 bits": ({"users": users_with({"extension": 2**64})}, "integer beyond 64 bits"),
    "a negative one": ({"users": users_with({"extension": -(2**63) - 1})}, "integer beyond 64 bits"),
    "deep nesting": ({"groups": b"[" * 100_000 + b"]" * 100_000}, "not valid JSON"),
    "sources as a list": ({"tenant": json.dumps(TENANT | {"sources": ["users"]}).encode()}, "must be an object"),
}


@pytest.mark.parametrize("case", list(HOSTILE))
def test_a_hostile_file_is_refused_naming_it_and_nothing_is_imported(case, app_env, tmp_path):
    overrides, named = HOSTILE[case]
    good = write_folder(tmp_path / "good", minimal_files("good"))
    bad = write_raw(tmp_path / "bad", minimal_files(), overrides)
    code, _, err = mspbyte("tenants", "import", str(good), str(bad))
    assert code == 2, err
    assert named in err and "nothing was imported" in err and "Traceback" not in err
    assert f"{next(iter(overrides))}.json" in err
    assert counts(app_env["DATABASE_URL"]) == (0, 0)


@pytest.mark.parametrize("kind", ["folder", "fifo", "device", "dangling link", "link loop"])
def test_a_data_file_that_is_no_regular_file_is_refused_without_reading_it(kind, app_env, tmp_path):
    folder = write_folder(tmp_path / "bad", minimal_files())
    target = folder / "users.json"
    target.unlink()
    if kind == "folder":
        target.mkdir()
    elif kind == "fifo":
        os.mkfifo(target)  # reading it would wait forever
    elif kind == "device":
        target.symlink_to("/dev/zero")  # reading it would fill memory
    elif kind == "dangling link":
        target.symlink_to(tmp_path / "nowhere.json")
    else:
        target.symlink_to(target)
    code, _, err = mspbyte("tenants", "import", str(folder))
    assert code == 2 and "users.json" in err and "nothing was imported" in err, err
    assert counts(app_env["DATABASE_URL"]) == (0, 0)


def test_one_import_is_all_or_nothing_across_folders(app_env, tmp_path):
    """`good good bad` (the bad one valid, but refused against what the database holds) imports none."""
    assert mspbyte("tenants", "import", str(write_folder(tmp_path / "known", minimal_files("charlie"))))[0] == 0
    folders = [write_folder(tmp_path / key, minimal_files(key)) for key in ("alpha", "bravo")]
    moved = minimal_files("charlie")
    moved["tenant"]["azureTenantId"] = OTHER_AZURE
    folders.append(write_folder(tmp_path / "charlie", moved))
    code, _, err = mspbyte("tenants", "import", *map(str, folders))
    assert code == 2 and OTHER_AZURE in err
    assert counts(app_env["DATABASE_URL"]) == (1, 1)  # charlie's first import alone


def test_another_customers_snapshot_under_a_tenants_key_is_refused_until_the_operator_moves_it(app_env, tmp_path):
    assert mspbyte("tenants", "import", str(write_folder(tmp_path / "first", minimal_files())))[0] == 0
    other = minimal_files()
    other["tenant"]["azureTenantId"] = OTHER_AZURE
    folder = write_folder(tmp_path / "other", other)
    code, _, err = mspbyte("tenants", "import", str(folder))
    assert code == 2 and OTHER_AZURE in err and minimal_files()["tenant"]["azureTenantId"] in err
    assert counts(app_env["DATABASE_URL"]) == (1, 1)
    code, _, err = mspbyte("tenants", "set-azure-id", "contoso", OTHER_AZURE, "--reason", "merged into group tenant")
    assert code == 0, err
    assert mspbyte("tenants", "import", str(folder))[0] == 0
    with engine_for(app_env["DATABASE_URL"]).connect() as conn:
        [change] = conn.execute(select(tenant_changes)).all()
    assert change.reason == "merged into group tenant" and change.details["to"] == OTHER_AZURE


def test_a_hostile_display_name_is_text_in_the_ui_table_and_the_terminal(app_env, tmp_path):
    files = minimal_files()
    hostile = (
        "Eve\n| x | [click](http://evil.example) ![pixel](http://evil.example/p.png) <b>\x1b[31mred\x1b]0;title\x07"
    )
    files["users"].append(user("leaver", enabled=False, displayName=hostile, assignedLicenses=[{"skuId": "s1"}]))
    assert mspbyte("tenants", "import", str(write_folder(tmp_path / "c", files)))[0] == 0
    assert mspbyte("run", "--all")[0] == 0
    [record] = DagsterInstance.get().fetch_materializations(AssetKey("alerts"), limit=1).records
    table = record.asset_materialization.metadata["new_alerts"].value
    [row] = [line for line in table.splitlines() if "leaver" in line]
    assert row.count(" | ") == 3  # no cell, row or line was added by the name
    assert "](" not in row and "<b>" not in row and "\x1b" not in row and "\n" not in row
    assert "\\[click\\]\\(http://evil.example\\)" in row  # the name is still there, as text
    code, out, _ = mspbyte("alerts", "list")
    [line] = [line for line in out.splitlines() if "leaver" in line]
    assert "\x1b" not in out and "\x07" not in out and "\\x1b[31mred" in line


def test_an_unreachable_database_and_an_absurd_alert_id_are_refused_in_one_line(app_env, monkeypatch):
    monkeypatch.setenv("DATABASE_URL", f"postgresql://postgres:hunter2@127.0.0.1:{free_port()}/none")
    for command in (["tenants", "list"], ["run", "--all"], ["alerts", "list"]):
        code, _, err = mspbyte(*command)
        assert code == 1 and "did not answer" in err and "Traceback" not in err and "hunter2" not in err
    code, _, err = mspbyte("alerts", "suppress", "9" * 20, "--reason", "x", "--until", "2026-12-10")
    assert code == 2 and "is not in the range" in err


def test_a_failure_after_the_commit_is_reported_as_what_it_is_not_as_a_rolled_back_pass(engine, tmp_path, caplog):
    """Retention runs after the pass committed: if it fails, the pass still succeeded (and says nothing
    was pruned), it is not reported failed and rolled back."""
    for _ in range(2):
        import_files(engine, tmp_path / "store", minimal_files())
    with engine.begin() as conn:  # the database refuses the prune, as a lock or a full disk would
        if conn.dialect.name == "sqlite":
            conn.exec_driver_sql(
                "CREATE TRIGGER refuse BEFORE DELETE ON snapshots BEGIN SELECT RAISE(ABORT, 'refused'); END"
            )
        else:
            conn.exec_driver_sql(
                "CREATE FUNCTION refuse() RETURNS trigger AS $$ BEGIN RAISE EXCEPTION 'refused'; END $$ LANGUAGE plpgsql"
            )
            conn.exec_driver_sql(
                "CREATE TRIGGER refuse BEFORE DELETE ON snapshots FOR EACH ROW EXECUTE FUNCTION refuse()"
            )
    try:
        result = run_tenant_pass(engine, "contoso", STAGES, PassOptions(retention=Retention(snapshots=1)))
        assert result.status == "succeeded" and result.stages["alerts"]
        assert "retention did not prune this time" in caplog.text
        with engine.connect() as conn:
            assert conn.execute(select(func.count()).select_from(snapshots)).scalar() == 2
            assert conn.execute(select(pipeline_ledger.c.status)).scalars().all() == ["succeeded"]
    finally:
        with engine.begin() as conn:
            conn.exec_driver_sql("DROP TRIGGER refuse" + ("" if conn.dialect.name == "sqlite" else " ON snapshots"))
            if conn.dialect.name == "postgresql":
                conn.exec_driver_sql("DROP FUNCTION refuse()")


def test_text_that_only_looks_unstorable_is_read_as_written():
    """A name with an emoji written as a surrogate pair and one holding the six characters \\u0000 (an
    escaped backslash) pass the NUL and surrogate check, and keep their text."""
    raw = {stem: json.dumps(content).encode() for stem, content in minimal_files().items()}
    names = ["smile \U0001f600", "path C:\\u0000"]
    raw["users"] = users_with({"displayName": names[0], "jobTitle": names[1]})
    snapshot = parse_snapshot(raw, "test")
    first = snapshot.files["users"][0]
    assert (first["displayName"], first["jobTitle"]) == (names[0], names[1])
