"""A tenant pass's vocabulary: its options, the state its stages share, how it ended."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from sqlalchemy import Connection, Engine

from mspbyte_dagster.lib.adapters.base import Integration
from mspbyte_dagster.lib.adapters.registry import DEFAULT, INTEGRATIONS
from mspbyte_dagster.lib.adapters.snapshot_files import Snapshot
from mspbyte_dagster.lib.alerts import AlertOutcome
from mspbyte_dagster.lib.context import EntityRow, TenantContext
from mspbyte_dagster.lib.flags import FLAG_DEFAULTS, FeatureFlagManager
from mspbyte_dagster.lib.model import STAGES, Analysis
from mspbyte_dagster.lib.store.retention import Retention

PATH_STAGES = STAGES[2:]  # the stages with a legacy and a new implementation
COMPARISON = "comparison_report"
# A tenant whose last full successful pass is older than twice REFRESH_INTERVAL_MINUTES is overdue: each
# full pass passes this check, the freshness sensor fails it for a tenant that falls behind.
FRESHNESS_CHECK = "tenant_fresh"
# The customer report: after alerts, on its own schedule (a pass builds it only when it is selected).
REPORT = "tenant_report"
# The snapshot stages of the other integrations a tenant may have a data source of, after Microsoft 365's.
SOURCE_STAGES = {
    integration.snapshot_asset: integration for integration in INTEGRATIONS.values() if integration is not DEFAULT
}
PASS_STAGES = (STAGES[0], *SOURCE_STAGES, *STAGES[1:])  # every stage of a pass, in data-flow order
ASSETS = (*PASS_STAGES, REPORT, COMPARISON)
# The path each stage's flag selects: off runs the legacy query pattern (new_pipeline off: all of them).
STAGE_FLAGS = {
    "tenant_context": "batch_loading",
    "relationships": "batch_loading",
    "findings": "unified_analyzer",
    "alerts": "alert_manager",
}


def guard_check(integration: Integration) -> str:
    """The empty-sync guard's check of an integration's snapshot asset (Microsoft 365's keeps its name)."""
    return "empty_sync_guard" if integration is DEFAULT else f"{integration.source_id}_empty_sync_guard"


class NoSnapshotError(LookupError):
    def __init__(self, tenant: str):
        super().__init__(f"tenant {tenant!r} has no snapshot yet: import one with `mspbyte tenants import DIR`")


class TenantHeld(Exception):
    """The empty-sync guard stopped the pass before anything was written."""


@dataclass(frozen=True)
class PassOptions:
    run_id: str | None = None
    lease_wait_seconds: float = 10.0
    lease_ttl: timedelta = timedelta(minutes=10)
    slow_query_threshold_ms: float = 100.0
    flags: FeatureFlagManager = field(default_factory=lambda: FeatureFlagManager(FLAG_DEFAULTS))
    now: Callable[[], datetime] = lambda: datetime.now(UTC)
    # Graph-backed tenants: fetch a new snapshot before the pass transaction (figures, or None for files mode).
    refresh_snapshot: Callable[[Engine, str], dict | None] | None = None
    # The other integrations' sources read from an API: fetched the same way, figures by snapshot stage.
    refresh_sources: Callable[[Engine, str], dict[str, dict]] | None = None
    compare: bool = False  # run both paths whatever comparison_mode says (`mspbyte compare`)
    read_only: bool = False  # the whole pass rolled back, no ledger row (`mspbyte compare` outside Dagster)
    retention: Retention = field(default_factory=Retention)

    def paths(self, tenant: str) -> dict[str, str]:
        """Per stage, "new" or "legacy" for this tenant, as the flags decide."""
        whole = self.flags.is_enabled("new_pipeline", tenant)
        return {
            stage: "new" if whole and self.flags.is_enabled(flag, tenant) else "legacy"
            for stage, flag in STAGE_FLAGS.items()
        }


@dataclass
class SourceRead:
    """A data source of another integration, as its snapshot stage read it: its entities are written
    unless its own guard holds it (the tenant's other sources go on)."""

    integration: Integration
    data_source_id: int
    snapshot_id: int
    snapshot: Snapshot
    held: str | None = None


@dataclass
class PassState:
    """What the stages of one pass share."""

    conn: Connection
    tenant: str
    data_source_id: int
    snapshot_id: int
    options: PassOptions
    ledger_id: int | None = None
    paths: dict[str, str] = field(default_factory=dict)
    snapshot: Snapshot | None = None
    guard: dict = field(default_factory=dict)
    checks: dict[str, CheckOutcome] = field(default_factory=dict)
    entity_rows: list[EntityRow] | None = None  # the linker's read, for the context loader that comes next
    context: TenantContext | None = None
    analysis: Analysis | None = None
    alert_outcome: AlertOutcome | None = None
    sources: dict[str, SourceRead] = field(default_factory=dict)  # by snapshot stage


@dataclass(frozen=True)
class CheckOutcome:
    """One per-tenant check's result: shown in Dagster as an asset check evaluation."""

    passed: bool
    description: str
    metadata: dict = field(default_factory=dict)

    @classmethod
    def listing(cls, found: list, problem: str, fine: str, key: str) -> CheckOutcome:
        """Passed when nothing was found; else how many, and the first 50 under `key`."""
        return cls(
            passed=not found, description=f"{len(found)} {problem}" if found else fine, metadata={key: found[:50]}
        )


@dataclass
class TenantPass:
    """How one tenant's pass ended, with per stage the figures shown in the UI."""

    tenant: str
    status: str = "running"
    reason: str | None = None
    stages: dict[str, dict] = field(default_factory=dict)
    guard: dict = field(default_factory=dict)
    checks: dict[str, CheckOutcome] = field(default_factory=dict)
    comparison: dict | None = None
    queries: int = 0
    slow_queries: int = 0
    duration_ms: int = 0
