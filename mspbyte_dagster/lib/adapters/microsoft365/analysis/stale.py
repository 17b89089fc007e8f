"""stale: enabled accounts nobody has used for stale_days (guests included)."""

from __future__ import annotations

from mspbyte_dagster.lib.adapters.microsoft365.analysis.common import display, missing_inputs
from mspbyte_dagster.lib.context import TenantContext
from mspbyte_dagster.lib.model import Finding, RuleEvaluation
from mspbyte_dagster.lib.rules import evaluation

ANALYSIS = "stale"


def stale_findings(context: TenantContext) -> tuple[list[Finding], list[RuleEvaluation]]:
    missing = missing_inputs(context, directory=True, sign_in=True)
    evaluations = [evaluation(ANALYSIS, "stale_user", missing)]
    if missing:
        return [], evaluations
    findings = []
    for uid, seen in context.stale_users.items():
        user = context.users[uid]
        admin, licensed = uid in context.admins, bool(context.user_skus.get(uid))
        severity = "high" if admin else ("medium" if licensed else "low")
        when = f"last signed in {seen:%Y-%m-%d}" if seen else "never signed in"
        findings.append(
            Finding(
                ANALYSIS,
                "stale_user",
                "user",
                uid,
                severity,
                f"{display(user)} {when}",
                {"admin": admin, "licensed": licensed, "never_signed_in": seen is None},
            )
        )
    return findings, evaluations
