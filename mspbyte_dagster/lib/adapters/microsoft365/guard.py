"""The empty-sync guard's measures for Microsoft 365 (RULES "Empty-sync guard")."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mspbyte_dagster.lib.adapters.snapshot_files import Snapshot

MIN_USERS_FOR_DROP_CHECK = 20


def guard_counts(snapshot: Snapshot) -> dict:
    """The figures the guard compares; None where the file was not read (nothing is deleted then)."""
    policies = snapshot.files.get("conditional_access_policies")
    return {
        "users": len(snapshot.files["users"]) if "users" in snapshot.files else None,
        "enabled_policies": sum(1 for p in policies if p["state"] == "enabled") if policies is not None else None,
    }


def hold_reason(baseline: dict | None, current: dict) -> str | None:
    """Why the pass must be held, or None to let it through."""
    if not baseline:
        return None
    before, now = baseline.get("users"), current["users"]
    if before is not None and now is not None and before >= MIN_USERS_FOR_DROP_CHECK and now < before / 2:
        return f"users fell from {before} to {now} (below half of the previous successful sync)"
    before, now = baseline.get("enabled_policies"), current["enabled_policies"]
    if before and now == 0:
        return f"enabled Conditional Access policies fell from {before} to 0"
    return None
