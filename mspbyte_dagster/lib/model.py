"""Domain names and keys shared by every stage."""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass, field
from datetime import timedelta

from mspbyte_dagster.lib.errors import InputError

TENANT_KEY_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$"
TENANT_KEY_RE = re.compile(TENANT_KEY_PATTERN)

MICROSOFT365 = "microsoft365"
M365_DATA_SOURCE = "m365"

ENTITY_TYPES = ("user", "group", "role", "policy", "sku", "tenant")
ALERT_STATUSES = ("active", "suppressed", "resolved")
MAX_SUPPRESSION = timedelta(days=90)  # the longest an operator may silence an alert
# A tenant pass's stages, in data-flow order (the Dagster assets, the ledger's figures, the bench).
SEVERITY_RANK = {"critical": 4, "high": 3, "medium": 2, "low": 1}
SEVERITIES = tuple(sorted(SEVERITY_RANK, key=SEVERITY_RANK.get, reverse=True))  # most severe first
STAGES = ("m365_snapshot", "entities", "relationships", "tenant_context", "findings", "alerts")


def is_tenant_key(value: object) -> bool:
    """A tenant key is a partition key and a NATS subject token, so its alphabet is narrow."""
    return isinstance(value, str) and TENANT_KEY_RE.fullmatch(value) is not None  # `$` alone would take "key\n"


def azure_tenant_guid(value: str) -> str:
    """The customer's Directory (tenant) ID in canonical form; anything else is refused."""
    try:
        guid = uuid.UUID(value.strip())
    except ValueError:
        raise InputError(
            f"azure tenant id {value!r} is not a GUID: use the customer's Directory (tenant) ID, "
            "e.g. 72f988bf-86f1-41af-91ab-2d7cd011db47"
        ) from None
    if str(guid) != value.strip().lower():
        raise InputError(f"azure tenant id {value!r} is not in the 8-4-4-4-12 GUID form")
    return str(guid)


@dataclass(frozen=True)
class Finding:
    """One rule firing on one entity: what the AlertManager turns into an alert."""

    analysis_type: str
    alert_type: str
    entity_type: str
    entity_id: str
    severity: str
    message: str
    details: dict = field(default_factory=dict)  # stable facts only: compared to decide "updated"
    sku_id: str | None = None

    @property
    def fingerprint(self) -> tuple[str, str, str, str]:
        return (self.alert_type, self.entity_type, self.entity_id, self.sku_id or "")


@dataclass(frozen=True)
class RuleEvaluation:
    """Whether a rule was evaluated in a pass, why not, and the entities it could not judge."""

    analysis_type: str
    alert_type: str
    evaluated: bool
    reason: str | None = None
    skipped: frozenset[str] = frozenset()

    def covers(self, entity_id: str) -> bool:
        return self.evaluated and entity_id not in self.skipped

    def as_json(self) -> dict:
        return {
            "analysis_type": self.analysis_type,
            "alert_type": self.alert_type,
            "evaluated": self.evaluated,
            "reason": self.reason,
            "skipped": sorted(self.skipped),
        }

    @classmethod
    def from_json(cls, data: dict) -> RuleEvaluation:
        return cls(
            data["analysis_type"],
            data["alert_type"],
            data["evaluated"],
            data.get("reason"),
            frozenset(data.get("skipped") or ()),
        )


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
