"""The records of a tenant snapshot as pydantic models: docs/snapshot-format.md and the column limits of
the app database in one place. Validation only: the pipeline keeps the objects as Graph sent them, so
unknown fields are ignored, never dropped, and nothing is coerced ("true" is no boolean here)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints, TypeAdapter, ValidationError

from mspbyte_dagster.lib.model import TENANT_KEY_PATTERN, azure_tenant_guid, is_tenant_key

MAX_ID_LENGTH = 128  # entities.external_id
MAX_SKU_ID_LENGTH = 64  # alerts.sku_id
MAX_COUNT = 10**9
TIMESTAMP_YEARS = (1900, 2100)  # outside: a typo, or a clock that would mark every user stale
CAPTURED_YEARS = (2000, 2100)


def _timestamp_in(first: int, last: int):
    def check(value: str) -> str:
        shown = value if len(value) <= 40 else value[:37] + "..."
        try:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            raise ValueError(f"{shown!r} is not an ISO-8601 timestamp") from None
        if parsed.tzinfo is None:
            raise ValueError(f"{shown!r} has no timezone (use Z for UTC)")
        if not first <= parsed.year < last:
            raise ValueError(f"{shown!r} is outside the years {first} to {last - 1}")
        return value

    return check


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
Timestamp = Annotated[str, Field(strict=True), AfterValidator(_timestamp_in(*TIMESTAMP_YEARS))]


class Record(BaseModel):
    model_config = ConfigDict(extra="ignore", strict=True)


class SignInActivity(Record):
    lastSignInDateTime: Timestamp | None = None
    lastNonInteractiveSignInDateTime: Timestamp | None = None
    lastSuccessfulSignInDateTime: Timestamp | None = None


class AssignedLicence(Record):
    skuId: SkuId


class User(Record):
    id: Id
    displayName: Text | None = None
    userPrincipalName: Text | None = None
    accountEnabled: Flag
    userType: Text | None = None
    createdDateTime: Timestamp | None = None
    assignedLicenses: list[AssignedLicence] | None = None
    signInActivity: SignInActivity | None = None


class Group(Record):
    id: Id
    displayName: Text | None = None
    securityEnabled: Flag | None = None
    mailEnabled: Flag | None = None
    groupTypes: list[Text] | None = None
    visibility: Text | None = None


class Member(Record):
    odata_type: Name = Field(alias="@odata.type")
    id: Id


class RoleDefinition(Record):
    id: Id
    displayName: Text
    templateId: Text | None = None
    isBuiltIn: Flag | None = None
    isPrivileged: Flag | None = None


class RoleAssignment(Record):
    id: Id
    principalId: Id
    roleDefinitionId: Id
    directoryScopeId: Text | None = None


class RoleEligibility(RoleAssignment):
    startDateTime: Timestamp | None = None
    endDateTime: Timestamp | None = None


class GuestsOrExternalUsers(Record):
    guestOrExternalUserTypes: Text | None = None


class UserTargets(Record):
    includeUsers: list[Text] | None = None
    excludeUsers: list[Text] | None = None
    includeGroups: list[Text] | None = None
    excludeGroups: list[Text] | None = None
    includeRoles: list[Text] | None = None
    excludeRoles: list[Text] | None = None
    includeGuestsOrExternalUsers: GuestsOrExternalUsers | None = None
    excludeGuestsOrExternalUsers: GuestsOrExternalUsers | None = None


class Applications(Record):
    includeApplications: list[Text] | None = None
    excludeApplications: list[Text] | None = None


class Conditions(Record):
    users: UserTargets
    applications: Applications | None = None
    clientAppTypes: list[Text] | None = None


class AuthenticationStrength(Record):
    id: Text | None = None
    requirementsSatisfied: Text | None = None


class GrantControls(Record):
    operator: Literal["OR", "AND"] | None = None
    builtInControls: list[Text] | None = None
    authenticationStrength: AuthenticationStrength | None = None


class ConditionalAccessPolicy(Record):
    id: Id
    displayName: Text | None = None
    state: Literal["enabled", "disabled", "enabledForReportingButNotEnforced"]
    conditions: Conditions
    grantControls: GrantControls | None = None


class PrepaidUnits(Record):
    enabled: Count


class SubscribedSku(Record):
    skuId: SkuId
    skuPartNumber: Text | None = None
    consumedUnits: Count
    prepaidUnits: PrepaidUnits | None = None


class RegistrationDetail(Record):
    id: Id
    isMfaRegistered: Flag
    isAdmin: Flag | None = None


class SecurityDefaults(Record):
    isEnabled: Flag


class Source(Record):
    complete: Flag
    unread: list[Id] | None = None


class TenantDocument(Record):
    id: Annotated[str, Field(strict=True), AfterValidator(_tenant_key)]
    name: Text
    azureTenantId: Annotated[str, Field(strict=True), AfterValidator(_guid)]
    capturedAt: Annotated[str, Field(strict=True), AfterValidator(_timestamp_in(*CAPTURED_YEARS))]
    sources: dict[str, Source] | None = None


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
