"""The old analyzers: one per analysis type, each loading the tenant itself before it runs."""

from __future__ import annotations

from sqlalchemy import Connection

from mspbyte_dagster.lib.adapters.microsoft365.analysis.unified import ANALYSES, Analysis
from mspbyte_dagster.lib.context import TenantContext
from mspbyte_dagster.lib.legacy.loader import LegacyContextLoader


class LegacyAnalyzers:
    def __init__(self, conn: Connection):
        self.conn = conn

    def analyze(self, context: TenantContext) -> Analysis:
        findings, evaluations = [], []
        for analyse in ANALYSES.values():
            found, evaluated = analyse(LegacyContextLoader(self.conn).load(context.tenant))
            findings.extend(found)
            evaluations.extend(evaluated)
        return Analysis(findings, evaluations)
