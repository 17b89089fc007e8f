"""Resources: built once in definitions.py, injected into assets and sensors."""

from __future__ import annotations

from pathlib import Path

from dagster import ConfigurableResource
from sqlalchemy import Engine

from mspbyte_dagster.lib.store.db import engine_for, require_migrated
from mspbyte_dagster.lib.store.snapshot_store import SnapshotStore
from mspbyte_dagster.settings import Settings


class DatabaseResource(ConfigurableResource):
    """The app database and snapshot store.

    Left unset, both come from the environment (DATABASE_URL, MSPBYTE_DATA_DIR)
    at run time, so a password in the URL never reaches run config or the UI.
    """

    database_url: str | None = None
    data_dir: str | None = None

    def engine(self) -> Engine:
        engine = engine_for(self.database_url or Settings.from_env().database_url)
        require_migrated(engine)
        return engine

    def snapshot_store(self) -> SnapshotStore:
        return SnapshotStore(Path(self.data_dir or Settings.from_env().data_dir) / "snapshots")
