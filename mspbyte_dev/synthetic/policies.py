"""Synthetic Conditional Access policies, one set per tenant variant."""

from __future__ import annotations

import random

from mspbyte_dev.synthetic.catalogue import (
    ADMIN_ROLES,
    ALL_GUEST_TYPES,
    ALL_STAFF_GROUP,
    AZURE_MANAGEMENT_APP,
    BREAK_GLASS_GROUP,
    DIRECTORY_SYNCHRONIZATION_ACCOUNTS,
    EXCHANGE_ONLINE_APP,
    FULL_SETUP,
    GLOBAL_ADMINISTRATOR,
    LEGACY_CLIENTS,
    MFA_STRENGTH,
    NOTHING_ENFORCED,
    PHISHING_RESISTANT,
    SALES_GROUP,
    SECURITY_DEFAULTS_ONLY,
)
from mspbyte_dev.synthetic.common import days, guid, timestamp
from mspbyte_dev.synthetic.users import BREAK_GLASS_USER, PILOT_USERS


def _policy(
    rng: random.Random,
    name: str,
    *,
    state: str = "enabled",
    users: dict[str, object],
    applications: tuple[str, ...] = ("All",),
    client_app_types: tuple[str, ...] = ("all",),
    operator: str = "OR",
    controls: tuple[str, ...] = (),
    strength: dict[str, str] | None = None,
    session_controls: dict[str, object] | None = None,
) -> dict[str, object]:
    """A Graph conditionalAccessPolicy; grantControls is null for a session-only policy."""
    created = days(rng, 200, 900)
    grant = None
    if controls or strength:
        grant = {
            "operator": operator,
            "builtInControls": list(controls),
            "customAuthenticationFactors": [],
            "termsOfUse": [],
            "authenticationStrength": strength,
        }
    user_conditions = {
        key: users.get(key, [])
        for key in ("includeUsers", "excludeUsers", "includeGroups", "excludeGroups", "includeRoles", "excludeRoles")
    } | {key: users.get(key) for key in ("includeGuestsOrExternalUsers", "excludeGuestsOrExternalUsers")}
    return {
        "id": guid(rng),
        "displayName": name,
        "createdDateTime": timestamp(created),
        "modifiedDateTime": timestamp(created - days(rng, 1, 150)),
        "state": state,
        "conditions": {
            "users": user_conditions,
            "applications": {"includeApplications": list(applications), "excludeApplications": []},
            "clientAppTypes": list(client_app_types),
            "userRiskLevels": [],
            "signInRiskLevels": [],
        },
        "grantControls": grant,
        "sessionControls": session_controls,
    }


def conditional_access_policies(
    rng: random.Random, variant: int, users: list[dict[str, object]], groups: list[dict[str, object]]
) -> list[dict[str, object]]:
    break_glass = [groups[BREAK_GLASS_GROUP]["id"]]
    all_staff = [groups[ALL_STAFF_GROUP]["id"]]
    if variant == FULL_SETUP:
        return [
            _policy(
                rng,
                "CA001 – Require MFA for all users",
                users={
                    "includeUsers": ["All"],
                    "excludeGroups": break_glass,
                    "excludeRoles": [DIRECTORY_SYNCHRONIZATION_ACCOUNTS],
                },
                controls=("mfa",),
            ),
            _policy(
                rng,
                "CA002 – Block legacy authentication",
                users={"includeUsers": ["All"], "excludeUsers": [users[BREAK_GLASS_USER]["id"]]},
                client_app_types=LEGACY_CLIENTS,
                controls=("block",),
            ),
            _policy(
                rng,
                "CA003 – Admins: MFA and compliant device",
                users={"includeRoles": list(ADMIN_ROLES), "excludeGroups": break_glass},
                operator="AND",
                controls=("mfa", "compliantDevice"),
            ),
            _policy(
                rng,
                "CA004 – Guests: phishing-resistant MFA",
                users={"includeGuestsOrExternalUsers": ALL_GUEST_TYPES},
                strength=PHISHING_RESISTANT,
            ),
            _policy(
                rng,
                "CA005 – Azure management: require MFA",
                users={"includeUsers": ["All"], "excludeGroups": break_glass},
                applications=(AZURE_MANAGEMENT_APP,),
                controls=("mfa",),
            ),
            _policy(
                rng,
                "CA006 – Office 365 for staff: MFA or compliant device",
                users={"includeGroups": all_staff},
                applications=("Office365",),
                controls=("mfa", "compliantDevice"),
            ),
            _policy(
                rng,
                "CA007 – Sign-in frequency 12 h",
                users={"includeUsers": ["All"]},
                session_controls={"signInFrequency": {"value": 12, "type": "hours", "isEnabled": True}},
            ),
            _policy(
                rng,
                "CA008 – Require compliant device (report-only)",
                state="enabledForReportingButNotEnforced",
                users={"includeUsers": ["All"], "excludeGroups": break_glass},
                controls=("compliantDevice",),
            ),
            _policy(
                rng,
                "CA009 – Block sign-ins outside the EU",
                state="disabled",
                users={"includeUsers": ["All"], "excludeGroups": break_glass},
                controls=("block",),
            ),
        ]
    if variant == NOTHING_ENFORCED:
        return [
            _policy(
                rng,
                "Require MFA for all users",
                state="enabledForReportingButNotEnforced",
                users={"includeUsers": ["All"]},
                controls=("mfa",),
            ),
            _policy(
                rng,
                "Block legacy authentication",
                state="disabled",
                users={"includeUsers": ["All"]},
                client_app_types=LEGACY_CLIENTS,
                controls=("block",),
            ),
            _policy(
                rng,
                "Admins: require MFA",
                state="enabledForReportingButNotEnforced",
                users={"includeRoles": [GLOBAL_ADMINISTRATOR]},
                controls=("mfa",),
            ),
        ]
    if variant == SECURITY_DEFAULTS_ONLY:
        return []
    return [
        _policy(rng, "Staff: require MFA", users={"includeGroups": all_staff}, controls=("mfa",)),
        _policy(
            rng,
            "Exchange Online: require MFA",
            users={"includeUsers": ["All"], "excludeGroups": break_glass},
            applications=(EXCHANGE_ONLINE_APP,),
            controls=("mfa",),
        ),
        _policy(
            rng,
            "All users: MFA or compliant device",
            users={"includeUsers": ["All"], "excludeRoles": [DIRECTORY_SYNCHRONIZATION_ACCOUNTS]},
            controls=("mfa", "compliantDevice"),
        ),
        _policy(rng, "Guests: MFA strength", users={"includeUsers": ["GuestsOrExternalUsers"]}, strength=MFA_STRENGTH),
        _policy(
            rng,
            "Admins: MFA in the browser",
            users={"includeRoles": list(ADMIN_ROLES)},
            client_app_types=("browser",),
            controls=("mfa",),
        ),
        _policy(
            rng,
            "Pilot: MFA for selected users",
            users={"includeUsers": [users[number]["id"] for number in PILOT_USERS]},
            controls=("mfa",),
        ),
        _policy(
            rng,
            "Block Exchange ActiveSync",
            users={"includeUsers": ["All"]},
            client_app_types=("exchangeActiveSync",),
            controls=("block",),
        ),
        _policy(
            rng,
            "Sales pilot: block legacy authentication",
            users={"includeGroups": [groups[SALES_GROUP]["id"]]},
            client_app_types=LEGACY_CLIENTS,
            controls=("block",),
        ),
    ]
