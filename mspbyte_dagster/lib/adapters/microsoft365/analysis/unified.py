"""UnifiedAnalyzer: every analysis type over one TenantContext, in one pass."""

from __future__ import annotations

from mspbyte_dagster.lib.adapters.microsoft365.analysis.license import license_findings
from mspbyte_dagster.lib.adapters.microsoft365.analysis.mfa import mfa_findings
from mspbyte_dagster.lib.adapters.microsoft365.analysis.policy import policy_findings
from mspbyte_dagster.lib.adapters.microsoft365.analysis.stale import stale_findings
from mspbyte_dagster.lib.context import TenantContext
from mspbyte_dagster.lib.model import Analysis

ANALYSES = {"mfa": mfa_findings, "policy": policy_findings, "license": license_findings, "stale": stale_findings}
# Every alert type the analyses can raise (each one evaluates all of its types on every pass).
ALERT_TYPES = (
    "mfa_not_enforced",
    "mfa_partial_enforced",
    "mfa_not_registered",
    "policy_gap",
    "no_conditional_access",
    "report_only_policy",
    "legacy_auth_not_blocked",
    "license_waste",
    "license_overuse",
    "license_unused",
    "stale_user",
)


class UnifiedAnalyzer:
    def analyze(self, context: TenantContext) -> Analysis:
        findings, evaluations = [], []
        for analyse in ANALYSES.values():
            found, evaluated = analyse(context)
            findings.extend(found)
            evaluations.extend(evaluated)
        return Analysis(findings, evaluations)
