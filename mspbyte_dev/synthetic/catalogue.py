"""What synthetic tenants are drawn from: Microsoft's role and licence ids, app ids and authentication
strengths, and the names, groups and sign-in kinds of a tenant."""

from __future__ import annotations

from dataclasses import dataclass

# The four tenant variants (index % 4): which policies a tenant has, and whether it has Entra ID P1.
FULL_SETUP, NOTHING_ENFORCED, SECURITY_DEFAULTS_ONLY, WEAK_POLICIES = range(4)

# --- roles -------------------------------------------------------------------

GLOBAL_ADMINISTRATOR = "62e90394-69f5-4237-9190-012177145e10"
USER_ADMINISTRATOR = "fe930be7-5e62-47db-91af-98c3a49a38b1"
HELPDESK_ADMINISTRATOR = "729827e3-9c14-49f7-bb1b-9608f156bbb8"
EXCHANGE_ADMINISTRATOR = "29232cdf-9323-42fd-ade2-1d097af3e4de"
SECURITY_READER = "5d6b6bb7-de71-4623-b4af-96380a352509"
GLOBAL_READER = "f2ef992c-3afb-46b9-b7cf-a126ee74c451"
MESSAGE_CENTER_READER = "790c1fb9-7f7d-4f88-86a1-ef1f95c05c1b"
DIRECTORY_SYNCHRONIZATION_ACCOUNTS = "d29b2b05-8046-44ba-8758-1e26182fcf32"
CUSTOM_ROLE_NAME = "Ticket Viewer (custom)"


@dataclass(frozen=True)
class BuiltInRole:
    name: str
    template_id: str


# As Graph v1.0 serves them: no isPrivileged. Global Reader and Security Reader are privileged by
# Microsoft's list alone; Exchange Administrator (not on it) by its name.
BUILT_IN_ROLES = (
    BuiltInRole("Global Administrator", GLOBAL_ADMINISTRATOR),
    BuiltInRole("User Administrator", USER_ADMINISTRATOR),
    BuiltInRole("Helpdesk Administrator", HELPDESK_ADMINISTRATOR),
    BuiltInRole("Exchange Administrator", EXCHANGE_ADMINISTRATOR),
    BuiltInRole("Security Reader", SECURITY_READER),
    BuiltInRole("Global Reader", GLOBAL_READER),
    BuiltInRole("Message Center Reader", MESSAGE_CENTER_READER),
    BuiltInRole("Directory Synchronization Accounts", DIRECTORY_SYNCHRONIZATION_ACCOUNTS),
)
DRAWN_ROLES = (
    "Global Administrator",
    "User Administrator",
    "Helpdesk Administrator",
    "Exchange Administrator",
    "Security Reader",
    "Global Reader",
    "Message Center Reader",
    CUSTOM_ROLE_NAME,
)
# Delegated helpdesk work is scoped to an administrative unit; "any scope" counts.
AU_SCOPED_ROLES = frozenset({"User Administrator", "Helpdesk Administrator"})

# --- licences ----------------------------------------------------------------

ENTERPRISEPACK = "ENTERPRISEPACK"
SPB = "SPB"
EMS = "EMS"
POWER_BI_STANDARD = "POWER_BI_STANDARD"
FLOW_FREE = "FLOW_FREE"
VISIOCLIENT = "VISIOCLIENT"


@dataclass(frozen=True)
class Sku:
    part_number: str
    sku_id: str
    purchase: str  # under_used | fully_used | over_used | free | lapsing


SKUS = (
    Sku(ENTERPRISEPACK, "6fd2c87f-b296-42f0-b197-1e91e994b900", "under_used"),
    Sku(SPB, "cbdc14ab-d96c-4c30-b9f4-6ada7cdc1d46", "fully_used"),
    Sku(EMS, "efccb6f7-5641-4e0e-bd10-b4976e1bf68e", "over_used"),
    Sku(POWER_BI_STANDARD, "a403ebcc-fae0-4ca2-8c8c-7a907fd6c235", "free"),
    Sku(FLOW_FREE, "f30db892-07e9-47e9-837c-80727f46fd3d", "free"),
    Sku(VISIOCLIENT, "c5928f49-12ba-48f7-ada3-0d743a3601d5", "lapsing"),
)
SKU_IDS = {sku.part_number: sku.sku_id for sku in SKUS}
# Free and viral skus come with a huge allowance that license_unused skips.
FREE_ALLOWANCE = {POWER_BI_STANDARD: 1_000_000, FLOW_FREE: 10_000}

# --- groups ------------------------------------------------------------------

SECURITY, ROLE_ASSIGNABLE, UNIFIED, DISTRIBUTION = "security", "role_assignable", "unified", "distribution"

BREAK_GLASS_GROUP, HELPDESK_GROUP, ALL_STAFF_GROUP, SALES_GROUP = 0, 1, 2, 3
SALES_EMEA_GROUP, SALES_MUNICH_GROUP, PROJECT_ALPHA_GROUP, PROJECT_BETA_GROUP = 4, 5, 6, 7
CONTRACTORS_GROUP, MARKETING_GROUP, NEWSLETTER_GROUP = 8, 9, 10

# (displayName, kind, parent groups): a group is a direct member of its parents.
GroupSpec = tuple[str, str, tuple[int, ...]]
# Alpha and Beta hold each other: the one membership cycle of every tenant.
FIXED_GROUPS: tuple[GroupSpec, ...] = (
    ("Break-glass accounts", SECURITY, ()),
    ("Helpdesk Admins", ROLE_ASSIGNABLE, ()),
    ("All Staff", SECURITY, ()),
    ("Sales", SECURITY, (ALL_STAFF_GROUP,)),
    ("Sales – EMEA", SECURITY, (SALES_GROUP,)),
    ("Sales – München", SECURITY, (SALES_EMEA_GROUP,)),
    ("Project Ålpha & <Beta>", SECURITY, (ALL_STAFF_GROUP, PROJECT_BETA_GROUP)),
    ('Project "Beta"', SECURITY, (PROJECT_ALPHA_GROUP,)),
    ("Contractors", SECURITY, ()),
    ("Marketing Q4 – Kampagne", UNIFIED, ()),
    ("Newsletter <intern>", DISTRIBUTION, ()),
)
TEAM_NAMES = ("Finance", "Équipe Lyon", "R&D <Labs>", "Support", "IT", "Einkauf", "Ops 'Nord'", "設計チーム")

# --- users -------------------------------------------------------------------

RECENT, STALE, NON_INTERACTIVE, BACKGROUND, NEVER_OLD, NEVER_NEW = (
    "recent",
    "stale",
    "non_interactive",
    "background",
    "never_old",
    "never_new",
)
FIRST_NAMES = (
    "Anna",
    "José",
    "Zoë",
    "Łukasz",
    "Søren",
    "François",
    "Aiko",
    "Mohammed",
    "Seán",
    "Priya",
    "Björn",
    "Chloé",
)
LAST_NAMES = (
    "Müller",
    "O'Brien",
    "García",
    "Nguyễn",
    "Kowalski",
    "Smith",
    "李",
    "Øvergaard",
    'de "la" Cruz',
    "Dubois",
)
PARTNER_DOMAINS = ("fabrikam.com", "northwind.example", "adatum.net")
MFA_METHOD_SETS = (
    ("microsoftAuthenticatorPush", "softwareOneTimePasscode"),
    ("microsoftAuthenticatorPush",),
    ("mobilePhone",),
    ("fido2", "microsoftAuthenticatorPush"),
    ("windowsHelloForBusiness",),
)

# --- conditional access ------------------------------------------------------

EXCHANGE_ONLINE_APP = "00000002-0000-0ff1-ce00-000000000000"
AZURE_MANAGEMENT_APP = "797f4846-ba00-4fd7-ba43-dac1f8f63013"
LEGACY_CLIENTS = ("exchangeActiveSync", "other")
ADMIN_ROLES = (GLOBAL_ADMINISTRATOR, USER_ADMINISTRATOR, HELPDESK_ADMINISTRATOR, EXCHANGE_ADMINISTRATOR)
# Built-in authentication strengths as Graph serves them in a policy: each satisfies MFA.
PHISHING_RESISTANT = {
    "id": "00000000-0000-0000-0000-000000000004",
    "displayName": "Phishing-resistant MFA",
    "policyType": "builtIn",
    "requirementsSatisfied": "mfa",
}
MFA_STRENGTH = {
    "id": "00000000-0000-0000-0000-000000000002",
    "displayName": "Multifactor authentication",
    "policyType": "builtIn",
    "requirementsSatisfied": "mfa",
}
ALL_GUEST_TYPES = {
    "guestOrExternalUserTypes": "internalGuest,b2bCollaborationGuest,b2bCollaborationMember,"
    "b2bDirectConnectUser,otherExternalUser,serviceProvider",
    "externalTenants": {"@odata.type": "#microsoft.graph.conditionalAccessAllExternalTenants", "membershipKind": "all"},
}

TENANT_NAMES = (
    "Müller & Söhne GmbH",
    'Café "Zürich" <Holding> AG',
    "O'Neill & Partners — 東京",
    "Ørsted Bygg & Anlegg AS",
)
