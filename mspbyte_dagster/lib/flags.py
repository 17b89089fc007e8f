"""Feature flags: which path (new or legacy) runs for which tenant.

The manager is pure: it decides from the environment defaults plus whatever
run-time state a store loaded, so one run can decide every tenant from one
consistent read.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated

from annotated_types import Interval

FLAG_DESCRIPTIONS = {
    "new_pipeline": "run the new pipeline for the tenant; off runs the legacy path end to end",
    "unified_analyzer": "one analysis pass over the context; off runs one legacy analyzer per type",
    "alert_manager": "bulk AlertManager; off runs the legacy per-alert writer",
    "batch_loading": "constant-query context loading and linking; off runs the legacy N+1 loader",
    "performance_monitoring": "time every query and report slow ones",
    "comparison_mode": "run both paths, write with the selected one, report discrepancies",
}
FLAGS = tuple(FLAG_DESCRIPTIONS)


@dataclass(frozen=True)
class FlagDefault:
    enabled: bool
    rollout: Annotated[int, Interval(ge=0, le=100)]  # percent of tenants


FLAG_DEFAULTS = {flag: FlagDefault(enabled=True, rollout=100) for flag in FLAGS} | {
    "comparison_mode": FlagDefault(enabled=False, rollout=0)
}


@dataclass(frozen=True)
class RuntimeFlag:
    """A run-time change of a flag's global switch and/or rollout (None: not set)."""

    enabled: bool | None = None
    rollout: int | None = None


@dataclass(frozen=True)
class FlagStatus:
    flag: str
    tenant: str | None
    effective: bool
    source: str  # env | runtime | override | global_off
    bucket: int | None
    global_enabled: bool
    rollout: int
    override: bool | None
    override_count: int

    def as_json(self) -> dict:
        return {
            "flag": self.flag,
            "description": FLAG_DESCRIPTIONS[self.flag],
            "tenant": self.tenant,
            "effective": self.effective,
            "source": self.source,
            "bucket": self.bucket,
            "global_enabled": self.global_enabled,
            "rollout": self.rollout,
            "override": self.override,
            "override_count": self.override_count,
        }


class UnknownFlagError(KeyError):
    def __init__(self, flag: str):
        super().__init__(flag)
        self.flag = flag

    def __str__(self) -> str:
        return f"unknown flag {self.flag!r}; known flags: {', '.join(FLAGS)}"


def check_flag(flag: str) -> str:
    if flag not in FLAG_DESCRIPTIONS:
        raise UnknownFlagError(flag)
    return flag


def bucket(flag: str, tenant: str) -> int:
    """Stable 0..99 bucket: raising a rollout percentage only ever adds tenants."""
    digest = hashlib.sha256(f"{flag}:{tenant}".encode()).hexdigest()
    return int(digest[:8], 16) % 100


class FeatureFlagManager:
    """Effective flag values: global off, then tenant override, then rollout bucket."""

    def __init__(
        self,
        defaults: Mapping[str, FlagDefault],
        runtime: Mapping[str, RuntimeFlag] | None = None,
        overrides: Mapping[tuple[str, str], bool] | None = None,
        fallback: str | None = None,
    ):
        self._defaults = dict(defaults)
        self._runtime = dict(runtime or {})
        self._overrides = dict(overrides or {})
        # Why these values are not the run-time store's (it did not answer), or None when they are.
        self.fallback = fallback

    def status(self, flag: str, tenant: str | None = None) -> FlagStatus:
        check_flag(flag)
        default = self._defaults[flag]
        runtime = self._runtime.get(flag, RuntimeFlag())
        global_enabled = default.enabled if runtime.enabled is None else runtime.enabled
        rollout = default.rollout if runtime.rollout is None else runtime.rollout
        base_source = "env" if runtime == RuntimeFlag() else "runtime"
        override = self._overrides.get((flag, tenant)) if tenant is not None else None
        tenant_bucket = bucket(flag, tenant) if tenant is not None else None
        if not global_enabled:
            effective, source = False, "global_off"
        elif override is not None:
            effective, source = override, "override"
        elif tenant_bucket is None:
            effective, source = rollout > 0, base_source
        else:
            effective, source = tenant_bucket < rollout, base_source
        return FlagStatus(
            flag=flag,
            tenant=tenant,
            effective=effective,
            source=source,
            bucket=tenant_bucket,
            global_enabled=global_enabled,
            rollout=rollout,
            override=override,
            override_count=sum(1 for (f, _t) in self._overrides if f == flag),
        )

    def is_enabled(self, flag: str, tenant: str) -> bool:
        return self.status(flag, tenant).effective

    def statuses(self, tenant: str | None = None) -> list[FlagStatus]:
        return [self.status(flag, tenant) for flag in FLAGS]

    def tenant_values(self, tenant: str) -> dict[str, bool]:
        return {flag: self.is_enabled(flag, tenant) for flag in FLAGS}

    def state_hash(self) -> str:
        state = {
            "defaults": {f: [d.enabled, d.rollout] for f, d in sorted(self._defaults.items())},
            "runtime": {f: [r.enabled, r.rollout] for f, r in sorted(self._runtime.items())},
            "overrides": sorted([f, t, v] for (f, t), v in self._overrides.items()),
        }
        return hashlib.sha256(json.dumps(state, sort_keys=True).encode()).hexdigest()[:12]


FLAGS_TAG = "mspbyte/flags"


def run_tags(manager: FeatureFlagManager) -> dict[str, str]:
    """The flags a run started with, as one run tag: a hash of their whole state (overrides included),
    to tell two runs apart at a glance, and the values that differ from the code's defaults
    (`3f2a9c0d1e4b comparison_mode=on 100%, alert_manager=on 40%`; `... defaults` when none does).
    One tag, so the runs list keeps room for the tenant range."""
    changed = []
    for status in manager.statuses():
        default = FLAG_DEFAULTS[status.flag]
        if (status.global_enabled, status.rollout) != (default.enabled, default.rollout) or status.override_count:
            value = f"{'on' if status.global_enabled else 'off'} {status.rollout}%"
            changed.append(
                f"{status.flag}={value}" + (f" +{status.override_count} overrides" if status.override_count else "")
            )
    tags = {FLAGS_TAG: f"{manager.state_hash()} {', '.join(changed) or 'defaults'}"}
    if manager.fallback:
        tags["mspbyte/flags_fallback"] = manager.fallback
    return tags
