"""How tenants are grouped into runs: contiguous ranges of the partition order, at most RUN_BATCH each.

A run's tenants are a range (start and end tags), so any other set of tenants is
split; `mspbyte run`, the refresh schedule and the sync sensor's full refresh share this.
"""

from __future__ import annotations

RUN_BATCH = 50


def tenant_ranges(order: list[str], chosen: list[str], size: int = RUN_BATCH) -> list[list[str]]:
    """Split the chosen tenants into contiguous ranges of the partition order, at most `size` each."""
    wanted, ranges, current = set(chosen), [], []
    for key in order:
        if key in wanted and len(current) < size:
            current.append(key)
            continue
        if current:
            ranges.append(current)
        current = [key] if key in wanted else []
    if current:
        ranges.append(current)
    return ranges
