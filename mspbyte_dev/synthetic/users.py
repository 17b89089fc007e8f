"""Synthetic users: the archetypes every tenant starts with, then drawn profiles, their Graph user
objects and their MFA registration records."""

from __future__ import annotations

import random
from dataclasses import dataclass

from mspbyte_dev.synthetic.catalogue import (
    BACKGROUND,
    BREAK_GLASS_GROUP,
    CONTRACTORS_GROUP,
    CUSTOM_ROLE_NAME,
    DISTRIBUTION,
    DRAWN_ROLES,
    EMS,
    ENTERPRISEPACK,
    FIRST_NAMES,
    FLOW_FREE,
    HELPDESK_GROUP,
    LAST_NAMES,
    MARKETING_GROUP,
    MFA_METHOD_SETS,
    NEVER_NEW,
    NEVER_OLD,
    NON_INTERACTIVE,
    PARTNER_DOMAINS,
    POWER_BI_STANDARD,
    PROJECT_ALPHA_GROUP,
    PROJECT_BETA_GROUP,
    RECENT,
    SALES_EMEA_GROUP,
    SALES_GROUP,
    SALES_MUNICH_GROUP,
    SECURITY,
    SKU_IDS,
    SPB,
    STALE,
    UNIFIED,
    GroupSpec,
)
from mspbyte_dev.synthetic.common import days, guid, timestamp


@dataclass(frozen=True)
class Profile:
    """What a user is, decided before their Graph objects are drawn."""

    guest: bool = False
    enabled: bool = True
    sign_in: str = RECENT
    skus: tuple[str, ...] = ()
    direct_role: str | None = None
    groups: tuple[int, ...] = ()
    mfa_registered: bool = True
    registration_record: bool = True
    eligible_role: str | None = None  # PIM: may activate it, holds it not


# The first users of every tenant, so that even 10 users show every case.
ARCHETYPES = (
    # 0 break-glass Global Administrator, excluded from the MFA policies through its group
    Profile(skus=(ENTERPRISEPACK, EMS), direct_role="Global Administrator", groups=(BREAK_GLASS_GROUP,)),
    # 1 stale, licensed admin by an administrative-unit-scoped assignment
    Profile(sign_in=STALE, skus=(ENTERPRISEPACK,), direct_role="User Administrator", groups=(SALES_GROUP,)),
    # 2 admin only through the role-assignable group, MFA not registered
    Profile(skus=(SPB,), groups=(HELPDESK_GROUP, SALES_EMEA_GROUP), mfa_registered=False),
    # 3 and 4 guests, one of them stale
    Profile(guest=True, groups=(MARKETING_GROUP,)),
    Profile(guest=True, sign_in=STALE, groups=(MARKETING_GROUP,)),
    # 5 disabled user still holding a licence
    Profile(enabled=False, sign_in=STALE, skus=(ENTERPRISEPACK,), groups=(SALES_MUNICH_GROUP,)),
    # 6 never signed in, created long ago, licensed, eligible (PIM) for Global Administrator;
    # 7 never signed in, new, without a registration record
    Profile(
        sign_in=NEVER_OLD,
        skus=(SPB, POWER_BI_STANDARD),
        groups=(PROJECT_ALPHA_GROUP,),
        eligible_role="Global Administrator",
    ),
    Profile(sign_in=NEVER_NEW, groups=(PROJECT_BETA_GROUP,), registration_record=False),
    # 8 non-interactive sign-ins only; admin only because the role's displayName says so
    Profile(
        sign_in=NON_INTERACTIVE,
        skus=(ENTERPRISEPACK, FLOW_FREE),
        direct_role="Exchange Administrator",
        groups=(CONTRACTORS_GROUP,),
    ),
    # 9 stale, unlicensed, holds only the non-privileged custom role
    Profile(sign_in=STALE, direct_role=CUSTOM_ROLE_NAME, groups=(CONTRACTORS_GROUP,), mfa_registered=False),
)
BREAK_GLASS_USER, PILOT_USERS = 0, (6, 9)


def random_profile(rng: random.Random, group_specs: list[GroupSpec]) -> Profile:
    guest = rng.random() < 0.05
    enabled = rng.random() >= 0.08
    sign_in = rng.choices(
        (RECENT, STALE, NON_INTERACTIVE, BACKGROUND, NEVER_OLD, NEVER_NEW), weights=(72, 10, 6, 4, 4, 4)
    )[0]
    return Profile(
        guest=guest,
        enabled=enabled,
        sign_in=sign_in,
        skus=() if guest else _drawn_skus(rng, enabled, sign_in),
        direct_role=rng.choice(DRAWN_ROLES) if rng.random() < 0.003 else None,
        groups=_drawn_groups(rng, guest, group_specs),
        mfa_registered=rng.random() >= 0.15,
        registration_record=rng.random() >= 0.05,
    )


def _drawn_skus(rng: random.Random, enabled: bool, sign_in: str) -> tuple[str, ...]:
    """Most members hold a suite; disabled and dormant accounts often keep theirs."""
    dormant = sign_in in (STALE, NEVER_OLD, NEVER_NEW)
    if rng.random() >= (0.85 if not enabled else 0.7 if dormant else 0.97):
        return ()
    skus = [ENTERPRISEPACK if rng.random() < 0.6 else SPB]
    if skus[0] == ENTERPRISEPACK and rng.random() < 0.2:
        skus.append(EMS)
    if rng.random() < 0.25:
        skus.append(POWER_BI_STANDARD)
    if rng.random() < 0.08:
        skus.append(FLOW_FREE)
    return tuple(skus)


def _drawn_groups(rng: random.Random, guest: bool, group_specs: list[GroupSpec]) -> tuple[int, ...]:
    """Members get a home security group (maybe outside All Staff) and sometimes a
    mail group; guests only join collaboration groups."""
    count = len(group_specs)
    if guest:
        number = rng.randrange(MARKETING_GROUP, count)
        return (number,) if group_specs[number][1] == UNIFIED and rng.random() < 0.5 else ()
    home = rng.randrange(SALES_GROUP, count)
    while group_specs[home][1] != SECURITY:
        home = rng.randrange(SALES_GROUP, count)
    extra = rng.randrange(MARKETING_GROUP, count)
    if rng.random() < 0.25 and group_specs[extra][1] in (UNIFIED, DISTRIBUTION):
        return (home, extra)
    return (home,)


def draw_user(rng: random.Random, number: int, profile: Profile, domain: str, has_p1: bool) -> dict[str, object]:
    """A Graph user; signInActivity only exists in tenants with Entra ID P1/P2."""
    display_name = f"{rng.choice(FIRST_NAMES)} {rng.choice(LAST_NAMES)}"
    if number == BREAK_GLASS_USER:
        display_name = "Emergency Access (break-glass)"
    if profile.guest:
        principal_name = f"user{number}_{rng.choice(PARTNER_DOMAINS)}#EXT#@{domain}"
    else:
        principal_name = f"user{number}@{domain}"
    interactive, non_interactive, created = _sign_in_ages(rng, profile.sign_in)
    user: dict[str, object] = {
        "id": guid(rng),
        "displayName": display_name,
        "userPrincipalName": principal_name,
        "accountEnabled": profile.enabled,
        "userType": "Guest" if profile.guest else "Member",
        "createdDateTime": timestamp(created),
        "assignedLicenses": [{"skuId": SKU_IDS[sku], "disabledPlans": []} for sku in profile.skus],
        "onPremisesSyncEnabled": True if not profile.guest and rng.random() < 0.3 else None,
    }
    if has_p1:
        ages = [age for age in (interactive, non_interactive) if age is not None]
        user["signInActivity"] = {
            "lastSignInDateTime": None if interactive is None else timestamp(interactive),
            "lastNonInteractiveSignInDateTime": None if non_interactive is None else timestamp(non_interactive),
            "lastSuccessfulSignInDateTime": timestamp(min(ages)) if ages else None,
        }
    return user


def _sign_in_ages(rng: random.Random, kind: str) -> tuple[int | None, int | None, int]:
    """(interactive, non-interactive, created) ages in seconds before capturedAt.

    Stale ages start at 120 days and recent ones end at 30, well clear of the
    default 90-day threshold, so a threshold test never hinges on a second.
    """
    interactive: int | None = None
    non_interactive: int | None = None
    if kind == RECENT:
        interactive = days(rng, 0, 30)
        non_interactive = days(rng, 0, 7) if rng.random() < 0.7 else None
    elif kind == STALE:
        interactive = days(rng, 120, 700)
        non_interactive = interactive - days(rng, 0, 20) if rng.random() < 0.6 else None
    elif kind == NON_INTERACTIVE:
        non_interactive = days(rng, 0, 20)
    elif kind == BACKGROUND:
        interactive, non_interactive = days(rng, 120, 400), days(rng, 0, 5)
    elif kind == NEVER_NEW:
        return None, None, days(rng, 1, 45)
    elif kind == NEVER_OLD:
        return None, None, days(rng, 120, 1500)
    oldest = max(age for age in (interactive, non_interactive) if age is not None)
    return interactive, non_interactive, oldest + days(rng, 1, 1500)


def registration_record(
    rng: random.Random, user: dict[str, object], profile: Profile, admin: bool
) -> dict[str, object]:
    methods = list(rng.choice(MFA_METHOD_SETS)) if profile.mfa_registered else rng.choice(([], ["email"]))
    return {
        "id": user["id"],
        "userPrincipalName": user["userPrincipalName"],
        "userDisplayName": user["displayName"],
        "userType": "guest" if profile.guest else "member",
        "isAdmin": admin,
        "isMfaCapable": profile.mfa_registered,
        "isMfaRegistered": profile.mfa_registered,
        "methodsRegistered": methods,
    }
