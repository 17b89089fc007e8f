"""A tenant's posture in a few figures, from the pass's context and analysis: computed in the findings
stage (cheap, the context is in memory), kept with the pass's figures, read by reports and the fleet view.

A figure whose inputs were not read whole is None ("not known"), never 0.
"""

from __future__ import annotations

from collections import Counter

from mspbyte_dagster.lib.adapters.microsoft365.analysis.common import is_enabled_member
from mspbyte_dagster.lib.adapters.microsoft365.analysis.mfa import FULL, mfa_requirement, user_requirement
from mspbyte_dagster.lib.adapters.registry import INTEGRATIONS
from mspbyte_dagster.lib.context import TenantContext
from mspbyte_dagster.lib.model import Analysis

FIGURES = (
    "enabled_members",
    "mfa_enforced_pct",
    "mfa_registered_pct",
    "ca_covered_pct",
    "stale_accounts",
    "licence_waste_units",
)


def shown_figure(value) -> str:
    """A figure as a person reads it: "not known" for a figure whose inputs were not read (None, or NaN in
    a frame), a float without a needless ".0" (a table of mixed figures would make every number a float)."""
    if value is None or (isinstance(value, float) and value != value):
        return "not known"
    return f"{value:g}" if isinstance(value, float) else str(value)


def _pct(part: int, whole: int) -> float | None:
    return round(100 * part / whole, 1) if whole else None


def posture(context: TenantContext, analysis: Analysis) -> dict:
    """Enabled members; % with MFA required for all apps, % registered for MFA, % under an enabled CA
    policy; stale accounts; licences wasted per SKU (units: users holding one they should not)."""
    evaluated = {e.alert_type for e in analysis.evaluations if e.evaluated}
    members = [uid for uid, user in context.users.items() if is_enabled_member(user)]
    requirements = {pid: mfa_requirement(policy) for pid, policy in context.policies.items()}
    enforced = sum(1 for uid in members if user_requirement(context, uid, requirements) == FULL)
    records = [context.users[uid].get("registration") for uid in members]
    judged = [record for record in records if record is not None]
    found = Counter(f.alert_type for f in analysis.findings)
    waste = Counter(
        (context.skus.get(f.sku_id) or {}).get("skuPartNumber") or f.sku_id
        for f in analysis.findings
        if f.alert_type == "license_waste"
    )
    return _other_sources(context, found) | {
        "enabled_members": len(members) if context.directory_read else None,
        "mfa_enforced_pct": _pct(enforced, len(members)) if "mfa_not_enforced" in evaluated else None,
        "mfa_registered_pct": _pct(sum(1 for r in judged if r.get("isMfaRegistered")), len(judged))
        if "mfa_not_registered" in evaluated
        else None,
        "ca_covered_pct": _pct(sum(1 for uid in members if context.user_policies.get(uid)), len(members))
        if "policy_gap" in evaluated
        else None,
        "stale_accounts": found["stale_user"] if "stale_user" in evaluated else None,
        "licence_waste_units": dict(sorted(waste.items())) if "license_waste" in evaluated else None,
    }


def _other_sources(context: TenantContext, found: Counter) -> dict:
    """Where the tenant has a data source of another integration (Sophos Central): how many of each of its
    entity types, and its findings per alert type, under `<integration>`."""
    figures = {}
    for name in context.sources:
        integration = INTEGRATIONS[name]
        counts = {f"{kind}s": len(context.others.get(kind, {})) for kind in integration.entity_sources}
        figures[name] = counts | {kind: found[kind] for kind in integration.alert_types}
    return figures
