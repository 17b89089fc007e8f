"""Sophos's rules (docs/rules.md, "Sophos Central"): the `endpoint` and `firewall` analysis types.

A rule is evaluated only when the files it reads were read whole; a tenant without a Sophos data
source evaluates none of them (the AlertManager then resolves nothing of theirs).
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta

from mspbyte_dagster.lib.adapters.sophos import files
from mspbyte_dagster.lib.context import TenantContext
from mspbyte_dagster.lib.model import Finding, RuleEvaluation
from mspbyte_dagster.lib.rules import evaluation, parse_time

ENDPOINT, FIREWALL = "endpoint", "firewall"
ALERT_TYPES = (
    "endpoint_health",
    "endpoint_tamper_protection_off",
    "endpoint_stale",
    "endpoint_user_disabled",
    "firewall_disconnected",
    "firewall_firmware_outdated",
    "firewall_license_expiring",
)
HEALTH = {"bad": "high", "suspicious": "medium"}
EXPIRY_WARNING = timedelta(days=30)


def _missing(context: TenantContext, *stems: str) -> list[str]:
    source = context.sources.get(files.INTEGRATION)
    return [stem for stem in stems if source is None or stem not in source.complete]


def _name(data: dict) -> str:
    return data.get("hostname") or data.get("name") or data.get("id") or "?"


def _is_server(endpoint: dict) -> bool:
    return endpoint.get("type") == "server"


def endpoint_findings(context: TenantContext) -> tuple[list[Finding], list[RuleEvaluation]]:
    source = context.sources.get(files.INTEGRATION)
    if source is None:
        return [], []
    missing = _missing(context, files.ENDPOINTS)
    endpoints = context.others.get("endpoint", {}) if not missing else {}
    findings: list[Finding] = []
    untold_tamper, unseen = set(), set()
    cutoff = source.captured_at - timedelta(days=context.header.endpoint_stale_days)
    for eid, endpoint in endpoints.items():
        name = _name(endpoint)
        severity = HEALTH.get((endpoint.get("health") or {}).get("overall"))
        if severity:
            found = Finding(
                ENDPOINT,
                "endpoint_health",
                "endpoint",
                eid,
                severity,
                f"{name} is in {endpoint['health']['overall']} health",
                {"health": endpoint["health"]["overall"]},
            )
            findings.append(found)
        if "tamperProtectionEnabled" not in endpoint:
            untold_tamper.add(eid)
        elif endpoint["tamperProtectionEnabled"] is False and endpoint.get("tamperProtectionSupported") is not False:
            severity = "high" if _is_server(endpoint) else "medium"
            findings.append(
                Finding(
                    ENDPOINT,
                    "endpoint_tamper_protection_off",
                    "endpoint",
                    eid,
                    severity,
                    f"Tamper protection is off on {name}",
                    {},
                )
            )
        seen = parse_time(endpoint.get("lastSeenAt"))
        if seen is None:
            unseen.add(eid)
        elif seen <= cutoff:
            severity = "medium" if _is_server(endpoint) else "low"
            days = (source.captured_at - seen).days
            findings.append(
                Finding(
                    ENDPOINT,
                    "endpoint_stale",
                    "endpoint",
                    eid,
                    severity,
                    f"{name} was last seen {days} days ago",
                    {"stale": True},
                )
            )
    user_missing = missing + ([] if context.users_read else ["Microsoft 365 users"])
    if not user_missing:
        for eid, uid in context.links.get("used_by", []):
            user = context.users.get(uid)
            if uid in context.removed_users or (user is not None and user.get("accountEnabled") is False):
                endpoint = endpoints.get(eid, {})
                how = "removed" if uid in context.removed_users else "disabled"
                findings.append(
                    Finding(
                        ENDPOINT,
                        "endpoint_user_disabled",
                        "endpoint",
                        eid,
                        "medium",
                        f"{_name(endpoint)} is used by {uid}, who is {how}",
                        {"user": uid, "user_state": how},
                    )
                )
    return findings, [
        evaluation(ENDPOINT, "endpoint_health", missing),
        evaluation(ENDPOINT, "endpoint_tamper_protection_off", missing, untold_tamper),
        evaluation(ENDPOINT, "endpoint_stale", missing, unseen),
        evaluation(ENDPOINT, "endpoint_user_disabled", user_missing),
    ]


def _end_of(day: str) -> datetime | None:
    try:
        return datetime.combine(date.fromisoformat(day[:10]), time.max, tzinfo=UTC)
    except (TypeError, ValueError):
        return None


def firewall_findings(context: TenantContext) -> tuple[list[Finding], list[RuleEvaluation]]:
    source = context.sources.get(files.INTEGRATION)
    if source is None:
        return [], []
    missing = _missing(context, files.FIREWALLS)
    firewalls = context.others.get("firewall", {}) if not missing else {}
    findings: list[Finding] = []
    for fid, firewall in firewalls.items():
        if (firewall.get("status") or {}).get("connected") is False:
            findings.append(
                Finding(
                    FIREWALL,
                    "firewall_disconnected",
                    "firewall",
                    fid,
                    "high",
                    f"Firewall {_name(firewall)} is disconnected",
                    {},
                )
            )
    upgrades_missing = missing + _missing(context, files.FIREWALL_UPGRADES)
    unchecked = set()
    for fid, firewall in firewalls.items() if not upgrades_missing else ():
        upgrade = (firewall.get("upgradeCheck") or {}).get("upgradeToVersion")
        if upgrade is None:
            unchecked.add(fid)
        elif upgrade:
            latest = sorted(upgrade)[-1]
            findings.append(
                Finding(
                    FIREWALL,
                    "firewall_firmware_outdated",
                    "firewall",
                    fid,
                    "low",
                    f"Firewall {_name(firewall)} can be upgraded to {latest}",
                    {"upgrade_to": sorted(upgrade)},
                )
            )
    licences_missing = _missing(context, files.FIREWALL_LICENSES)
    undated = set()
    for key, licence in context.others.get("firewall_license", {}).items() if not licences_missing else ():
        if licence.get("perpetual") is True:
            continue
        ends = _end_of(licence.get("endDate") or "")
        if ends is None:
            undated.add(key)
            continue
        if ends < source.captured_at:
            severity, state = "high", "expired"
        elif ends <= source.captured_at + EXPIRY_WARNING:
            severity, state = "medium", "expiring"
        else:
            continue
        product = (licence.get("product") or {}).get("name") or licence.get("licenseIdentifier") or key
        findings.append(
            Finding(
                FIREWALL,
                "firewall_license_expiring",
                "firewall_license",
                key,
                severity,
                f"{product} on firewall {licence.get('firewallSerialNumber')} {state} {licence['endDate'][:10]}",
                {"state": state, "end": licence["endDate"][:10]},
            )
        )
    return findings, [
        evaluation(FIREWALL, "firewall_disconnected", missing),
        evaluation(FIREWALL, "firewall_firmware_outdated", upgrades_missing, unchecked),
        evaluation(FIREWALL, "firewall_license_expiring", licences_missing, undated),
    ]
