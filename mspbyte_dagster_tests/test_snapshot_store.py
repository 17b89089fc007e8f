"""Snapshots live in the app database: any machine runs any tenant, and upgrading keeps every byte."""

import json
import logging
import shutil
import zlib
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa
from sqlalchemy import select

from mspbyte_dagster.lib.onboarding import import_folders
from mspbyte_dagster.lib.pipeline import STAGES, PassOptions, run_tenant_pass
from mspbyte_dagster.lib.snapshots import load_snapshot
from mspbyte_dagster.lib.store.db import engine_for, upgrade
from mspbyte_dagster.lib.store.schema import snapshot_files, snapshots
from mspbyte_dagster.lib.store.snapshot_store import SnapshotUnreadable
from mspbyte_dagster_tests.services import scratch_database
from mspbyte_dagster_tests.snapshots import minimal_files, mspbyte, write_folder
from mspbyte_dev.synthetic import write_snapshots


def open_alerts() -> list[tuple]:
    code, out, err = mspbyte("alerts", "list", "--json")
    assert code == 0, err
    return sorted((a["tenant"], a["alert_type"], a["entity_id"], a["severity"]) for a in json.loads(out))


def test_a_tenant_imported_with_one_data_folder_runs_with_another_after_the_first_is_gone(
    app_env, tmp_path, monkeypatch, synth_dir
):
    folders = [str(p) for p in sorted(synth_dir.iterdir())]
    monkeypatch.setenv("MSPBYTE_DATA_DIR", str(tmp_path / "A"))
    assert mspbyte("tenants", "import", *folders)[0] == 0
    shutil.rmtree(tmp_path / "A", ignore_errors=True)
    monkeypatch.setenv("MSPBYTE_DATA_DIR", str(tmp_path / "B"))
    code, _, err = mspbyte("run", "--all")
    assert code == 0, err
    moved = open_alerts()

    # The same fleet imported and run with one folder throughout, on a database of its own.
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'single.db'}")
    monkeypatch.setenv("MSPBYTE_DATA_DIR", str(tmp_path / "single"))
    assert mspbyte("db", "upgrade")[0] == 0
    assert mspbyte("tenants", "import", *folders)[0] == 0
    assert mspbyte("run", "--all")[0] == 0
    assert moved == open_alerts() != []
    assert not list(tmp_path.rglob("*.pickle")) and not (tmp_path / "B" / "snapshots").exists()


def test_a_stored_snapshot_reads_back_as_imported_and_is_validated_again(engine, tmp_path):
    folder = write_folder(tmp_path / "contoso", minimal_files())
    [imported] = import_folders(engine, [folder])
    with engine.connect() as conn:
        snapshot = load_snapshot(conn, "contoso", imported.snapshot_id)
    assert snapshot.raw == {path.stem: path.read_bytes() for path in folder.glob("*.json")}
    assert snapshot.files["users"] == json.loads((folder / "users.json").read_text())
    with engine.begin() as conn:  # what someone changed in the database behind the contract's back
        conn.execute(
            sa.update(snapshot_files)
            .where(snapshot_files.c.snapshot_id == imported.snapshot_id, snapshot_files.c.name == "users")
            .values(content=zlib.compress(b'[{"id": 7}]'))
        )
    with engine.connect() as conn, pytest.raises(ValueError, match=r"(?s)snapshot 1 \(app database\).*users.json"):
        load_snapshot(conn, "contoso", imported.snapshot_id)


# --- migration 0006 ----------------------------------------------------------------------------------


def _record_on_disk(conn, tenant: str, seq: int, folder) -> None:
    """A snapshot as revision 0005 recorded it: a row pointing at a folder of the old snapshot store."""
    now = datetime(2026, 11, 1, tzinfo=UTC).isoformat()
    tenants = sa.table("tenants", *(sa.column(c) for c in ("tenant", "name", "created_at")))
    sources = sa.table(
        "data_sources", *(sa.column(c) for c in ("id", "tenant", "source_id", "integration", "mode", "created_at"))
    )
    old_snapshots = sa.table(
        "snapshots",
        *(
            sa.column(c)
            for c in ("tenant", "data_source_id", "seq", "captured_at", "path", "imported_at", "counts", "sources")
        ),
    )
    if not conn.execute(sa.select(tenants.c.tenant).where(tenants.c.tenant == tenant)).first():
        conn.execute(sa.insert(tenants).values(tenant=tenant, name=tenant, created_at=now))
        conn.execute(
            sa.insert(sources).values(
                tenant=tenant, source_id="m365", integration="microsoft365", mode="files", created_at=now
            )
        )
    source_id = conn.execute(sa.select(sources.c.id).where(sources.c.tenant == tenant)).scalar_one()
    snapshot_id = conn.execute(
        sa.insert(old_snapshots)
        .values(
            tenant=tenant,
            data_source_id=source_id,
            seq=seq,
            captured_at=now,
            path=str(folder),
            imported_at=now,
            counts="{}",
            sources="{}",
        )
        .returning(sa.column("id"))
    ).scalar_one()
    current = sa.table("data_sources", sa.column("id"), sa.column("current_snapshot_id"))
    conn.execute(sa.update(current).where(current.c.id == source_id).values(current_snapshot_id=snapshot_id))


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
def test_migration_moves_every_snapshot_on_disk_into_the_database_byte_for_byte(tmp_path, caplog, old_database_url):
    engine = engine_for(old_database_url)
    upgrade(engine, "0005")
    store = tmp_path / "data" / "snapshots"
    written = write_snapshots(tmp_path / "synth", tenants=2, users=30, seed=5)
    on_disk = {}
    with engine.begin() as conn:
        for source in written:
            for seq in (1, 2):
                folder = store / source.name / f"{seq}-20261101T000000Z"
                shutil.copytree(source, folder)
                (folder / "role_eligibilities.json").unlink()  # a file snapshots had not yet when 0006 ran
                (folder / "users.json").write_bytes((folder / "users.json").read_bytes() + b" " * seq)  # differ
                _record_on_disk(conn, source.name, seq, folder)
                on_disk[source.name, seq] = {p.stem: p.read_bytes() for p in folder.glob("*.json")}
        _record_on_disk(conn, written[0].name, 3, store / written[0].name / "3-gone")  # its folder was deleted
    caplog.set_level(logging.WARNING)
    upgrade(engine)

    with engine.connect() as conn:
        stored = conn.execute(
            select(snapshots.c.tenant, snapshots.c.seq, snapshot_files.c.name, snapshot_files.c.content).join(
                snapshot_files, snapshot_files.c.snapshot_id == snapshots.c.id
            )
        ).all()
        moved = {}
        for tenant, seq, name, content in stored:
            moved.setdefault((tenant, seq), {})[name] = zlib.decompress(content)
        assert moved == on_disk  # every snapshot, every file, every byte
        gone = conn.execute(select(snapshots).where(snapshots.c.seq == 3)).one()
        assert "3-gone" in gone.unreadable and gone.origin.endswith("3-gone")
        with pytest.raises(SnapshotUnreadable, match=f"tenant {written[0].name} snapshot 3"):
            load_snapshot(conn, written[0].name, gone.id)
    assert f"tenant {written[0].name} snapshot 3" in caplog.text and "marked unreadable" in caplog.text
    shutil.rmtree(store)  # nothing needs the folders any more: a pass reads the database
    result = run_tenant_pass(engine, written[1].name, STAGES, PassOptions())
    assert result.status == "succeeded", result.reason
    lost = run_tenant_pass(engine, written[0].name, STAGES, PassOptions())  # its current snapshot is the lost one
    assert lost.status == "failed" and "snapshot 3 (app database) is unreadable" in lost.reason
    engine.dispose()


@pytest.fixture
def old_database_url(request, kind, tmp_path):
    """An empty database of the variant's kind, for a migration to start from an old revision."""
    if kind == "sqlite":
        yield f"sqlite:///{tmp_path / 'old.db'}"
        return
    with scratch_database(request.getfixturevalue("postgres_admin_url"), "_old", migrate=False) as url:
        yield url
