"""Kept copies of tenant snapshots, so any pass can be replayed."""

from __future__ import annotations

import shutil
from pathlib import Path

from mspbyte_dagster.lib.adapters.snapshot_files import SNAPSHOT_FILES, Snapshot


class SnapshotStore:
    """`<root>/<tenant>/<seq>-<capturedAt>/`: one folder per imported or fetched snapshot."""

    def __init__(self, root: Path):
        self.root = Path(root)

    def folder_for(self, tenant: str, seq: int, snapshot: Snapshot) -> Path:
        stamp = snapshot.captured_at.strftime("%Y%m%dT%H%M%SZ")
        return self.root / tenant / f"{seq}-{stamp}"

    def add(self, snapshot: Snapshot, seq: int) -> Path:
        """Copy the snapshot's files in; the folder appears whole or not at all."""
        target = self.folder_for(snapshot.key, seq, snapshot)
        if target.exists():
            raise FileExistsError(f"snapshot folder {target} exists already: the store and the database disagree")
        staging = target.with_name(f".{target.name}.partial")
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
        for stem in SNAPSHOT_FILES:
            source = snapshot.folder / f"{stem}.json"
            if source.exists():
                shutil.copyfile(source, staging / source.name)
        staging.rename(target)
        return target

    @staticmethod
    def discard(folder: Path) -> None:
        shutil.rmtree(folder, ignore_errors=True)
