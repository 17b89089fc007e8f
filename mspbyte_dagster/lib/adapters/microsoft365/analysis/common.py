"""What the rules share: who is who, time from the snapshot, and the "inputs read" test."""

from __future__ import annotations

from datetime import datetime, timedelta

from mspbyte_dagster.lib.context import DIRECTORY_FILES, TenantContext
from mspbyte_dagster.lib.rules import parse_time


def is_enabled_member(user: dict) -> bool:
    """The MFA and policy rules cover enabled members only (not guests, not disabled accounts)."""
    return user.get("accountEnabled") is True and user.get("userType") != "Guest"


def display(user: dict) -> str:
    name = user.get("displayName") or user.get("id")
    upn = user.get("userPrincipalName")
    return f"{name} ({upn})" if upn else str(name)


def last_sign_in(user: dict) -> datetime | None:
    """The latest of interactive and non-interactive sign-ins; None: never signed in."""
    activity = user.get("signInActivity") or {}
    times = [parse_time(activity.get(k)) for k in ("lastSignInDateTime", "lastNonInteractiveSignInDateTime")]
    times = [t for t in times if t is not None]
    return max(times) if times else None


def is_stale(context: TenantContext, user: dict) -> bool:
    """Enabled, and no sign-in (or, never signed in, no account) in the last stale_days before capturedAt."""
    if user.get("accountEnabled") is not True:
        return False
    cutoff = context.header.captured_at - timedelta(days=context.header.stale_days)
    seen = last_sign_in(user)
    if seen is not None:
        return seen <= cutoff
    created = parse_time(user.get("createdDateTime"))
    return created is not None and created <= cutoff


def missing_inputs(context: TenantContext, *stems: str, directory: bool = False, sign_in: bool = False) -> list[str]:
    wanted = (*DIRECTORY_FILES, *stems) if directory else stems
    missing = [stem for stem in dict.fromkeys(wanted) if not context.is_complete(stem)]
    if sign_in and not context.sign_in_read:
        missing.append("sign-in data (signInActivity)")
    return missing
