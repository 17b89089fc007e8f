"""What the rules share: who is who, and the "inputs read" test."""

from __future__ import annotations

from mspbyte_dagster.lib.context import DIRECTORY_FILES, TenantContext


def is_enabled_member(user: dict) -> bool:
    """The MFA and policy rules cover enabled members only (not guests, not disabled accounts)."""
    return user.get("accountEnabled") is True and user.get("userType") != "Guest"


def display(user: dict) -> str:
    name = user.get("displayName") or user.get("id")
    upn = user.get("userPrincipalName")
    return f"{name} ({upn})" if upn else str(name)


def missing_inputs(context: TenantContext, *stems: str, directory: bool = False, sign_in: bool = False) -> list[str]:
    wanted = (*DIRECTORY_FILES, *stems) if directory else stems
    missing = [stem for stem in dict.fromkeys(wanted) if not context.is_complete(stem)]
    if sign_in and not context.sign_in_read:
        missing.append("sign-in data (signInActivity)")
    return missing
