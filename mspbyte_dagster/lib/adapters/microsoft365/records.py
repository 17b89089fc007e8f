"""The records of a tenant snapshot as pydantic-validated TypedDicts: docs/snapshot-format.md and the
column limits of the app database in one place. Validation only: the pipeline keeps the objects as
Graph sent them, so unknown fields are ignored, never dropped, and nothing is coerced (every field type
is strict: "true" is no boolean here). TypedDicts, not models: a 10,000-user snapshot validates about
three times faster when no model object is built per record."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated, Literal, NotRequired

from pydantic import AfterValidator, Field, StringConstraints, TypeAdapter, ValidationError
from typing_extensions import TypedDict

from mspbyte_dagster.lib.adapters.fields import CAPTURED_YEARS, timestamp_in
from mspbyte_dagster.lib.model import TENANT_KEY_PATTERN, azure_tenant_guid, is_tenant_key

MAX_ID_LENGTH = 128  # entities.external_id
MAX_SKU_ID_LENGTH = 64  # alerts.sku_id
MAX_COUNT = 10**9
TIMESTAMP_YEARS = (1900, 2100)  # outside: a typo, or a clock that would mark every user stale


def _tenant_key(value: str) -> str:
    if not is_tenant_key(value):
        raise ValueError(f"{value!r} does not match {TENANT_KEY_PATTERN}")
    return value


def _guid(value: str) -> str:
    azure_tenant_guid(value)  # raises naming what is wrong
    return value


Id = Annotated[str, StringConstraints(strict=True, min_length=1, max_length=MAX_ID_LENGTH)]
SkuId = Annotated[str, StringConstraints(strict=True, min_length=1, max_length=MAX_SKU_ID_LENGTH)]
Name = Annotated[str, StringConstraints(strict=True, min_length=1)]
Text = Annotated[str, Field(strict=True)]
Flag = Annotated[bool, Field(strict=True)]
Count = Annotated[int, Field(strict=True, ge=0, le=MAX_COUNT)]
Timestamp = Annotated[str, Field(strict=True), AfterValidator(timestamp_in(*TIMESTAMP_YEARS))]


class SignInActivity(TypedDict):
    lastSignInDateTime: NotRequired[Timestamp | None]
    lastNonInteractiveSignInDateTime: NotRequired[Timestamp | None]
    lastSuccessfulSignInDateTime: NotRequired[Timestamp | None]


class AssignedLicence(TypedDict):
    skuId: SkuId


class User(TypedDict):
    id: Id
    displayName: NotRequired[Text | None]
    userPrincipalName: NotRequired[Text | None]
    accountEnabled: Flag
    userType: NotRequired[Text | None]
    createdDateTime: NotRequired[Timestamp | None]
    assignedLicenses: NotRequired[list[AssignedLicence] | None]
    signInActivity: NotRequired[SignInActivity | None]


class Group(TypedDict):
    id: Id
    displayName: NotRequired[Text | None]
    securityEnabled: NotRequired[Flag | None]
    mailEnabled: NotRequired[Flag | None]
    groupTypes: NotRequired[list[Text] | None]
    visibility: NotRequired[Text | None]


Member = TypedDict("Member", {"@odata.type": Name, "id": Id})


class RoleDefinition(TypedDict):
    id: Id
    displayName: Text
    templateId: NotRequired[Text | None]
    isBuiltIn: NotRequired[Flag | None]
    isPrivileged: NotRequired[Flag | None]


class RoleAssignment(TypedDict):
    id: Id
    principalId: Id
    roleDefinitionId: Id
    directoryScopeId: NotRequired[Text | None]


class RoleEligibility(RoleAssignment):
    startDateTime: NotRequired[Timestamp | None]
    endDateTime: NotRequired[Timestamp | None]


class GuestsOrExternalUsers(TypedDict):
    guestOrExternalUserTypes: NotRequired[Text | None]


class UserTargets(TypedDict):
    includeUsers: NotRequired[list[Text] | None]
    excludeUsers: NotRequired[list[Text] | None]
    includeGroups: NotRequired[list[Text] | None]
    excludeGroups: NotRequired[list[Text] | None]
    includeRoles: NotRequired[list[Text] | None]
    excludeRoles: NotRequired[list[Text] | None]
    includeGuestsOrExternalUsers: NotRequired[GuestsOrExternalUsers | None]
    excludeGuestsOrExternalUsers: NotRequired[GuestsOrExternalUsers | None]


class Applications(TypedDict):
    includeApplications: NotRequired[list[Text] | None]
    excludeApplications: NotRequired[list[Text] | None]


class Conditions(TypedDict):
    users: UserTargets
    applications: NotRequired[Applications | None]
    clientAppTypes: NotRequired[list[Text] | None]


class AuthenticationStrength(TypedDict):
    id: NotRequired[Text | None]
    requirementsSatisfied: NotRequired[Text | None]


class GrantControls(TypedDict):
    operator: NotRequired[Literal["OR", "AND"] | None]
    builtInControls: NotRequired[list[Text] | None]
    authenticationStrength: NotRequired[AuthenticationStrength | None]


class ConditionalAccessPolicy(TypedDict):
    id: Id
    displayName: NotRequired[Text | None]
    state: Literal["enabled", "disabled", "enabledForReportingButNotEnforced"]
    conditions: Conditions
    grantControls: NotRequired[GrantControls | None]


class PrepaidUnits(TypedDict):
    enabled: Count


class SubscribedSku(TypedDict):
    skuId: SkuId
    skuPartNumber: NotRequired[Text | None]
    consumedUnits: Count
    prepaidUnits: NotRequired[PrepaidUnits | None]


class RegistrationDetail(TypedDict):
    id: Id
    isMfaRegistered: Flag
    isAdmin: NotRequired[Flag | None]


class SecurityDefaults(TypedDict):
    isEnabled: Flag


class Source(TypedDict):
    complete: Flag
    unread: NotRequired[list[Id] | None]


class TenantDocument(TypedDict):
    id: Annotated[str, Field(strict=True), AfterValidator(_tenant_key)]
    name: Text
    azureTenantId: Annotated[str, Field(strict=True), AfterValidator(_guid)]
    capturedAt: Annotated[str, Field(strict=True), AfterValidator(timestamp_in(*CAPTURED_YEARS))]
    sources: NotRequired[dict[str, Source] | None]


# file stem -> the validator of its whole content
ARRAYS = {
    "users": User,
    "groups": Group,
    "role_definitions": RoleDefinition,
    "role_assignments": RoleAssignment,
    "role_eligibilities": RoleEligibility,
    "conditional_access_policies": ConditionalAccessPolicy,
    "subscribed_skus": SubscribedSku,
    "user_registration_details": RegistrationDetail,
}
ADAPTERS = {stem: TypeAdapter(list[model]) for stem, model in ARRAYS.items()} | {
    "group_members": TypeAdapter(dict[Id, list[Member]]),
    "security_defaults": TypeAdapter(SecurityDefaults),
    "tenant": TypeAdapter(TenantDocument),
}


def errors(stem: str, content: object) -> Iterator[tuple[tuple, str]]:
    """(where, what is wrong) for each problem of a file's content; `where` is pydantic's location."""
    try:
        ADAPTERS[stem].validate_python(content)
    except ValidationError as invalid:
        for error in invalid.errors(include_url=False):
            yield error["loc"], _message(error)


def _message(error: dict) -> str:
    """pydantic's error in the words of docs/snapshot-format.md."""
    kind, context, value = error["type"], error.get("ctx") or {}, error.get("input")
    if kind == "missing":
        return "is missing"
    if kind == "bool_type":
        return "must be true or false"
    if kind == "string_type":
        return "must be a string"
    if kind == "string_too_short":
        return "must be a non-empty string"
    if kind == "string_too_long":
        return f"is {len(value)} characters long, at most {context['max_length']} fit"
    if kind in ("int_type", "greater_than_equal", "less_than_equal"):
        return f"must be a whole number from 0 to {MAX_COUNT}"
    if kind == "list_type":
        return "must be an array"
    if kind in ("dict_type", "model_type", "model_attributes_type"):
        return "must be an object"
    if kind == "literal_error":
        return f"must be one of {context['expected']}"
    return error["msg"].removeprefix("Value error, ")
