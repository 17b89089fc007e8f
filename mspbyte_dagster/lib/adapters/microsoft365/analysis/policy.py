"""policy: does Conditional Access cover every enabled member, and is legacy authentication blocked?"""

from __future__ import annotations

from mspbyte_dagster.lib.adapters.microsoft365.analysis.common import display, is_enabled_member, missing_inputs
from mspbyte_dagster.lib.context import TenantContext
from mspbyte_dagster.lib.model import Finding, RuleEvaluation
from mspbyte_dagster.lib.rules import evaluation

ANALYSIS = "policy"
REPORT_ONLY = "enabledForReportingButNotEnforced"
ALERT_TYPES = ("policy_gap", "no_conditional_access", "report_only_policy", "legacy_auth_not_blocked")


def blocks_legacy_auth(policy: dict) -> bool:
    """An enabled block for "All" users (exclusions aside) over every client, or the two legacy ones."""
    if policy.get("state") != "enabled":
        return False
    grant = policy.get("grantControls") or {}
    conditions = policy.get("conditions") or {}
    include_users = (conditions.get("users") or {}).get("includeUsers") or []
    client_types = set(conditions.get("clientAppTypes") or [])
    legacy_clients = not client_types or "all" in client_types or {"exchangeActiveSync", "other"} <= client_types
    return "block" in (grant.get("builtInControls") or []) and "All" in include_users and legacy_clients


def policy_findings(context: TenantContext) -> tuple[list[Finding], list[RuleEvaluation]]:
    missing = missing_inputs(context, "conditional_access_policies", "security_defaults", directory=True)
    evaluations = [evaluation(ANALYSIS, alert_type, missing) for alert_type in ALERT_TYPES]
    if missing:
        return [], evaluations
    findings: list[Finding] = []
    sd = context.security_defaults
    enabled = [pid for pid, p in context.policies.items() if p.get("state") == "enabled"]
    if not sd:
        for uid, user in context.users.items():
            if is_enabled_member(user) and not context.user_policies.get(uid):
                admin = uid in context.admins
                findings.append(
                    Finding(
                        ANALYSIS,
                        "policy_gap",
                        "user",
                        uid,
                        "high" if admin else "medium",
                        f"No Conditional Access policy applies to {display(user)}",
                        {"admin": admin},
                    )
                )
    tenant = context.tenant
    if not enabled and not sd:
        findings.append(
            Finding(
                ANALYSIS,
                "no_conditional_access",
                "tenant",
                tenant,
                "high",
                "No Conditional Access policy is enabled and Security Defaults are off",
            )
        )
    for pid, policy in context.policies.items():
        if policy.get("state") == REPORT_ONLY:
            findings.append(
                Finding(
                    ANALYSIS,
                    "report_only_policy",
                    "policy",
                    pid,
                    "low",
                    f"Policy {policy.get('displayName') or pid!r} only reports, it enforces nothing",
                )
            )
    if not sd and not any(blocks_legacy_auth(context.policies[pid]) for pid in enabled):
        findings.append(
            Finding(
                ANALYSIS,
                "legacy_auth_not_blocked",
                "tenant",
                tenant,
                "high",
                "Legacy authentication is not blocked for all users",
            )
        )
    return findings, evaluations
