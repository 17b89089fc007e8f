"""Synthetic snapshots of every data source `mspbyte synth --sources` knows: Microsoft 365's tenants
(which register them) and, beside each, its other sources' folders."""

from __future__ import annotations

from pathlib import Path

from mspbyte_dagster.lib.errors import InputError
from mspbyte_dev.synthetic import write_snapshots
from mspbyte_dev.synthetic.sophos import write_sophos_snapshots

# source id -> (out, tenants, size, seed) -> folders; size: users of Microsoft 365, endpoints of the others
GENERATORS = {"m365": write_snapshots, "sophos": write_sophos_snapshots}
ENDPOINTS_PER_USER = 0.5


def write_sources(out: Path, tenants: int, users: int, seed: int, sources: list[str]) -> list[Path]:
    unknown = sorted(set(sources) - set(GENERATORS))
    if unknown or "m365" not in sources:
        raise InputError(f"--sources {','.join(sources)}: use m365 and any of {', '.join(sorted(GENERATORS))}")
    folders = []
    for source in dict.fromkeys(sources):
        size = users if source == "m365" else max(1, round(users * ENDPOINTS_PER_USER))
        folders += GENERATORS[source](out, tenants, size, seed)
    return folders
