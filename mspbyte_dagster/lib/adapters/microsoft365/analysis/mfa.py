"""mfa: is MFA required of every enabled member, fully, and have they registered a method?"""

from __future__ import annotations

from mspbyte_dagster.lib.adapters.microsoft365.analysis.common import display, is_enabled_member, missing_inputs
from mspbyte_dagster.lib.context import TenantContext
from mspbyte_dagster.lib.model import Finding, RuleEvaluation
from mspbyte_dagster.lib.rules import evaluation

ANALYSIS = "mfa"
FULL, PARTIAL = "full", "partial"


def mfa_requirement(policy: dict) -> str | None:
    """full / partial when MFA is the only way to satisfy the policy's grant, else None."""
    if policy.get("state") != "enabled":
        return None
    grant = policy.get("grantControls") or {}
    controls = grant.get("builtInControls") or []
    and_operator = grant.get("operator") == "AND"
    strength = grant.get("authenticationStrength") or {}
    requires = ("mfa" in controls and (and_operator or set(controls) == {"mfa"})) or (
        strength.get("requirementsSatisfied") == "mfa" and (and_operator or not controls)
    )
    if not requires:
        return None
    conditions = policy.get("conditions") or {}
    apps = (conditions.get("applications") or {}).get("includeApplications") or []
    client_types = conditions.get("clientAppTypes") or []
    return FULL if "All" in apps and (not client_types or "all" in client_types) else PARTIAL


def user_requirement(context: TenantContext, user_id: str, requirements: dict[str, str | None]) -> str | None:
    """The strongest requirement on a user: any full policy wins; Security Defaults count too."""
    found = {requirements.get(pid) for pid in context.user_policies.get(user_id, ())}
    if context.security_defaults:
        found.add(FULL if user_id in context.admins else PARTIAL)
    if FULL in found:
        return FULL
    return PARTIAL if PARTIAL in found else None


def mfa_findings(context: TenantContext) -> tuple[list[Finding], list[RuleEvaluation]]:
    findings: list[Finding] = []
    enforced_missing = missing_inputs(context, "conditional_access_policies", "security_defaults", directory=True)
    registered_missing = missing_inputs(context, "user_registration_details", directory=True)
    evaluations = [
        evaluation(ANALYSIS, "mfa_not_enforced", enforced_missing),
        evaluation(ANALYSIS, "mfa_partial_enforced", enforced_missing),
    ]
    requirements = {pid: mfa_requirement(policy) for pid, policy in context.policies.items()}
    members = {uid: user for uid, user in context.users.items() if is_enabled_member(user)}
    for uid, user in members.items() if not enforced_missing else ():
        admin = uid in context.admins
        policies = sorted(pid for pid in context.user_policies.get(uid, ()) if requirements.get(pid))
        details = {"admin": admin, "policies": policies, "security_defaults": context.security_defaults}
        requirement = user_requirement(context, uid, requirements)
        if requirement is None:
            findings.append(
                Finding(
                    ANALYSIS,
                    "mfa_not_enforced",
                    "user",
                    uid,
                    "critical" if admin else "high",
                    f"No policy requires MFA for {display(user)}",
                    details,
                )
            )
        elif requirement == PARTIAL:
            findings.append(
                Finding(
                    ANALYSIS,
                    "mfa_partial_enforced",
                    "user",
                    uid,
                    "high" if admin else "medium",
                    f"MFA is required of {display(user)} only for some apps or clients",
                    details,
                )
            )
    # Graph's report leaves disabled users out: only a member without a record is unjudged
    without_record = {uid for uid, user in members.items() if user.get("registration") is None}
    evaluations.append(evaluation(ANALYSIS, "mfa_not_registered", registered_missing, without_record))
    for uid, user in members.items() if not registered_missing else ():
        record = user.get("registration")
        if record is not None and record.get("isMfaRegistered") is False:
            admin = uid in context.admins
            findings.append(
                Finding(
                    ANALYSIS,
                    "mfa_not_registered",
                    "user",
                    uid,
                    "high" if admin else "medium",
                    f"{display(user)} has not registered an MFA method",
                    {"admin": admin},
                )
            )
    return findings, evaluations
