"""What every integration's rules share: time from a snapshot's fields, and the "inputs read" test."""

from __future__ import annotations

from datetime import datetime

from mspbyte_dagster.lib.model import RuleEvaluation


def parse_time(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value.replace("Z", "+00:00")) if value else None


def evaluation(analysis_type: str, alert_type: str, missing: list[str], skipped=frozenset()) -> RuleEvaluation:
    """A rule is evaluated only when every input it needs was read whole."""
    if missing:
        return RuleEvaluation(analysis_type, alert_type, False, f"not read whole: {', '.join(missing)}")
    return RuleEvaluation(analysis_type, alert_type, True, skipped=frozenset(skipped))
