"""license: licences held by disabled or stale users, and skus bought beyond or below use."""

from __future__ import annotations

from mspbyte_dagster.lib.adapters.microsoft365.analysis.common import display, missing_inputs
from mspbyte_dagster.lib.context import TenantContext
from mspbyte_dagster.lib.model import Finding, RuleEvaluation
from mspbyte_dagster.lib.rules import evaluation

ANALYSIS = "license"
FREE_SKU_UNITS = 10_000


def _sku_name(context: TenantContext, sku_id: str) -> str:
    return (context.skus.get(sku_id) or {}).get("skuPartNumber") or sku_id


def license_findings(context: TenantContext) -> tuple[list[Finding], list[RuleEvaluation]]:
    findings: list[Finding] = []
    sku_missing = missing_inputs(context, "subscribed_skus")
    waste_missing = missing_inputs(context, "users", "subscribed_skus")
    stale_missing = missing_inputs(context, "subscribed_skus", directory=True, sign_in=True)
    # Which part of license_waste applies follows the user's state: enabled users need the stale part.
    unjudged = {uid for uid, u in context.users.items() if u.get("accountEnabled") is True} if stale_missing else ()
    # Skus the sku rules skip are not judged: their earlier alerts are left as they are.
    prepaid_units = {sid: (sku.get("prepaidUnits") or {}).get("enabled") for sid, sku in context.skus.items()}
    unpriced = {sid for sid, units in prepaid_units.items() if units is None}
    free = {sid for sid, units in prepaid_units.items() if units is not None and units >= FREE_SKU_UNITS}
    evaluations = [
        evaluation(ANALYSIS, "license_waste", waste_missing, unjudged),
        evaluation(ANALYSIS, "license_overuse", sku_missing, unpriced),
        evaluation(ANALYSIS, "license_unused", sku_missing, unpriced | free),
    ]
    if not waste_missing:
        for uid, user in context.users.items():
            if uid in unjudged or not context.user_skus.get(uid):
                continue
            disabled = user.get("accountEnabled") is not True
            if not disabled and uid not in context.stale_users:
                continue
            reason, severity = ("disabled", "medium") if disabled else ("stale", "low")
            for sku_id in sorted(context.user_skus[uid]):
                findings.append(
                    Finding(
                        ANALYSIS,
                        "license_waste",
                        "user",
                        uid,
                        severity,
                        f"{display(user)} is {reason} and holds {_sku_name(context, sku_id)}",
                        {"reason": reason, "sku": sku_id},
                        sku_id=sku_id,
                    )
                )
    if sku_missing:
        return findings, evaluations
    threshold = context.header.unused_license_threshold
    for sku_id, sku in context.skus.items():
        prepaid = prepaid_units[sku_id]
        if sku_id in unpriced:
            continue
        consumed, name = sku.get("consumedUnits", 0), _sku_name(context, sku_id)
        details = {"prepaid": prepaid, "consumed": consumed}
        if consumed > prepaid:
            findings.append(
                Finding(
                    ANALYSIS,
                    "license_overuse",
                    "sku",
                    sku_id,
                    "high",
                    f"{name}: {consumed} assigned, {prepaid} bought",
                    details,
                )
            )
        elif sku_id not in free and prepaid - consumed >= threshold:
            findings.append(
                Finding(
                    ANALYSIS,
                    "license_unused",
                    "sku",
                    sku_id,
                    "low",
                    f"{name}: {prepaid - consumed} of {prepaid} unused",
                    details,
                )
            )
    return findings, evaluations
