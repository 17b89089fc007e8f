"""Kept copies of tenant snapshots, so any pass can be replayed."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
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

        def copy(staging: Path) -> None:
            for stem in SNAPSHOT_FILES:
                source = snapshot.folder / f"{stem}.json"
                if source.exists():
                    shutil.copyfile(source, staging / source.name)

        return self._publish(snapshot, seq, copy)

    def write(self, snapshot: Snapshot, seq: int) -> Path:
        """Write a snapshot read here (from Graph) as its JSON files; the folder appears whole or not at all."""

        def dump(staging: Path) -> None:
            for stem, content in {"tenant": snapshot.tenant, **snapshot.files}.items():
                text = json.dumps(content, ensure_ascii=False, separators=(",", ":"))
                (staging / f"{stem}.json").write_text(text + "\n", encoding="utf-8")

        return self._publish(snapshot, seq, dump)

    def _publish(self, snapshot: Snapshot, seq: int, fill: Callable[[Path], None]) -> Path:
        target = self.folder_for(snapshot.key, seq, snapshot)
        if target.exists():
            raise FileExistsError(f"snapshot folder {target} exists already: the store and the database disagree")
        staging = target.with_name(f".{target.name}.partial")
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
        fill(staging)
        staging.rename(target)
        return target

    @staticmethod
    def discard(folder: Path) -> None:
        shutil.rmtree(folder, ignore_errors=True)
