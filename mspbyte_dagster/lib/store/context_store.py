"""The last TenantContext of each tenant, kept as one file, so a subset run need not reload it."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

from mspbyte_dagster.lib.context import TenantContext, TenantHeader

FORMAT = 1  # bump when TenantContext changes shape: older files are then ignored, not misread


class ContextStore:
    def __init__(self, root: Path):
        self.root = Path(root)

    def path(self, tenant: str) -> Path:
        return self.root / f"{tenant}.pickle"

    def save(self, context: TenantContext) -> Path:
        """Written whole or not at all (rename), after the pass that built it committed."""
        self.root.mkdir(parents=True, exist_ok=True)
        target = self.path(context.tenant)
        staging = target.with_suffix(".partial")
        with staging.open("wb") as handle:
            pickle.dump((FORMAT, context), handle, protocol=pickle.HIGHEST_PROTOCOL)
        os.replace(staging, target)
        return target

    def load(self, header: TenantHeader) -> TenantContext | None:
        """The kept context if it was built for this very header (snapshot, thresholds, inputs read);
        None means reload from the database."""
        try:
            with self.path(header.tenant).open("rb") as handle:
                version, context = pickle.load(handle)
        except (FileNotFoundError, EOFError, pickle.UnpicklingError, AttributeError, ValueError):
            return None
        if version != FORMAT or context.header != header:
            return None
        return context
