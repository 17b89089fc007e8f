"""UnifiedAnalyzer: every analysis type over one TenantContext, in one pass."""

from __future__ import annotations

from dataclasses import dataclass

from mspbyte_dagster.lib.analysis.license import license_findings
from mspbyte_dagster.lib.analysis.mfa import mfa_findings
from mspbyte_dagster.lib.analysis.policy import policy_findings
from mspbyte_dagster.lib.analysis.stale import stale_findings
from mspbyte_dagster.lib.context import TenantContext
from mspbyte_dagster.lib.model import Finding, RuleEvaluation

ANALYSES = {"mfa": mfa_findings, "policy": policy_findings, "license": license_findings, "stale": stale_findings}


@dataclass
class Analysis:
    """The findings of one pass and, per rule, whether it was evaluated (and why not)."""

    findings: list[Finding]
    evaluations: list[RuleEvaluation]

    def ran(self) -> list[str]:
        """Analysis types of which at least one rule was evaluated."""
        return sorted({e.analysis_type for e in self.evaluations if e.evaluated})

    def summary(self) -> dict:
        by_type: dict[str, int] = {}
        for finding in self.findings:
            by_type[finding.alert_type] = by_type.get(finding.alert_type, 0) + 1
        not_evaluated = {e.alert_type: e.reason for e in self.evaluations if not e.evaluated}
        return {
            "findings": len(self.findings),
            "by_alert_type": by_type,
            "analyses_ran": self.ran(),
            "not_evaluated": not_evaluated,
        }


class UnifiedAnalyzer:
    def analyze(self, context: TenantContext) -> Analysis:
        findings, evaluations = [], []
        for analyse in ANALYSES.values():
            found, evaluated = analyse(context)
            findings.extend(found)
            evaluations.extend(evaluated)
        return Analysis(findings, evaluations)
