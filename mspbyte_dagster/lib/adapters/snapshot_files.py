"""Tenant snapshot folders (docs/snapshot-format.md): validation and reading.

The same record checks serve import (a bad record rejects the folder) and the
Graph adapter (a bad record is quarantined and its file marked incomplete).
"""

from __future__ import annotations

import json
import stat
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from mspbyte_dagster.lib.errors import InputError
from mspbyte_dagster.lib.model import TENANT_KEY_PATTERN, azure_tenant_guid, is_tenant_key

ARRAY_FILES = (
    "users",
    "groups",
    "role_definitions",
    "role_assignments",
    "role_eligibilities",
    "conditional_access_policies",
    "subscribed_skus",
    "user_registration_details",
)
OBJECT_FILES = ("group_members", "security_defaults")
DATA_FILES = ARRAY_FILES + OBJECT_FILES
SNAPSHOT_FILES = ("tenant", *DATA_FILES)
CA_STATES = ("enabled", "disabled", "enabledForReportingButNotEnforced")
# What the app database and a pass can take (what passes validation passes a pass).
MAX_FILE_BYTES = 256 * 2**20  # one snapshot file, far beyond the largest tenant's (docs/benchmarks.md)
MAX_ID_LENGTH = 128  # entities.external_id
MAX_SKU_ID_LENGTH = 64  # alerts.sku_id
MAX_COUNT = 10**9
TIMESTAMP_YEARS = (1900, 2100)  # outside: a typo, or a clock that would mark every user stale
CAPTURED_YEARS = (2000, 2100)

Check = Callable[[object], str | None]


def _optional(check: Check) -> Check:
    return lambda value: None if value is None else check(value)


def _string(value: object) -> str | None:
    return None if isinstance(value, str) and value else "must be a non-empty string"


def _id(limit: int = MAX_ID_LENGTH) -> Check:
    def check(value: object) -> str | None:
        if not isinstance(value, str) or not value:
            return "must be a non-empty string"
        return None if len(value) <= limit else f"is {len(value)} characters long, at most {limit} fit"

    return check


def _guid(value: object) -> str | None:
    if not isinstance(value, str):
        return "must be a GUID string"
    try:
        azure_tenant_guid(value)
    except ValueError as error:
        return str(error)
    return None


def _text(value: object) -> str | None:
    return None if isinstance(value, str) else "must be a string"


def _boolean(value: object) -> str | None:
    return None if isinstance(value, bool) else "must be true or false"


def _count(value: object) -> str | None:
    ok = isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= MAX_COUNT
    return None if ok else f"must be a whole number from 0 to {MAX_COUNT}"


def _timestamp_in(first: int, last: int) -> Check:
    def check(value: object) -> str | None:
        if not isinstance(value, str):
            return "must be an ISO-8601 timestamp string"
        shown = value if len(value) <= 40 else value[:37] + "..."
        try:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return f"{shown!r} is not an ISO-8601 timestamp"
        if parsed.tzinfo is None:
            return f"{shown!r} has no timezone (use Z for UTC)"
        if not first <= parsed.year < last:
            return f"{shown!r} is outside the years {first} to {last - 1}"
        return None

    return check


_timestamp = _timestamp_in(*TIMESTAMP_YEARS)


def _one_of(*allowed: str) -> Check:
    return lambda value: None if value in allowed else f"must be one of {', '.join(allowed)}"


def _strings(value: object) -> str | None:
    ok = isinstance(value, list) and all(isinstance(item, str) for item in value)
    return None if ok else "must be an array of strings"


def _object(fields: dict[str, Check], required: tuple[str, ...] = ()) -> Check:
    def check(value: object) -> str | None:
        if not isinstance(value, dict):
            return "must be an object"
        problems = record_problems(value, fields, required)
        return "; ".join(f"{name} {problem}" for name, problem in problems) or None

    return check


def _array_of(check: Check) -> Check:
    def checked(value: object) -> str | None:
        if not isinstance(value, list):
            return "must be an array"
        for index, item in enumerate(value):
            problem = check(item)
            if problem:
                return f"[{index}] {problem}"
        return None

    return checked


_SIGN_IN = _object(
    {
        "lastSignInDateTime": _optional(_timestamp),
        "lastNonInteractiveSignInDateTime": _optional(_timestamp),
        "lastSuccessfulSignInDateTime": _optional(_timestamp),
    }
)
_USER_TARGETS = _object(
    {
        name: _optional(_strings)
        for name in (
            "includeUsers",
            "excludeUsers",
            "includeGroups",
            "excludeGroups",
            "includeRoles",
            "excludeRoles",
        )
    }
    | {
        name: _optional(_object({"guestOrExternalUserTypes": _optional(_text)}))
        for name in ("includeGuestsOrExternalUsers", "excludeGuestsOrExternalUsers")
    }
)
_CONDITIONS = _object(
    {
        "users": _optional(_USER_TARGETS),
        "applications": _optional(
            _object({"includeApplications": _optional(_strings), "excludeApplications": _optional(_strings)})
        ),
        "clientAppTypes": _optional(_strings),
    },
    required=("users",),
)
_GRANT = _object(
    {
        "operator": _optional(_one_of("OR", "AND")),
        "builtInControls": _optional(_strings),
        "authenticationStrength": _optional(
            _object({"id": _optional(_text), "requirementsSatisfied": _optional(_text)})
        ),
    }
)
_ASSIGNMENT = {"id": _id(), "principalId": _id(), "roleDefinitionId": _id(), "directoryScopeId": _optional(_text)}
_MEMBER = _object({"@odata.type": _string, "id": _id()}, required=("@odata.type", "id"))

# file stem -> (field checks, required fields)
RECORD_FIELDS: dict[str, tuple[dict[str, Check], tuple[str, ...]]] = {
    "users": (
        {
            "id": _id(),
            "displayName": _optional(_text),
            "userPrincipalName": _optional(_text),
            "accountEnabled": _boolean,
            "userType": _optional(_text),
            "createdDateTime": _optional(_timestamp),
            "assignedLicenses": _optional(_array_of(_object({"skuId": _id(MAX_SKU_ID_LENGTH)}, required=("skuId",)))),
            "signInActivity": _optional(_SIGN_IN),
        },
        ("id", "accountEnabled"),
    ),
    "groups": (
        {
            "id": _id(),
            "displayName": _optional(_text),
            "securityEnabled": _optional(_boolean),
            "mailEnabled": _optional(_boolean),
            "groupTypes": _optional(_strings),
            "visibility": _optional(_text),
        },
        ("id",),
    ),
    "role_definitions": (
        {
            "id": _id(),
            "displayName": _text,
            "templateId": _optional(_text),
            "isBuiltIn": _optional(_boolean),
            "isPrivileged": _optional(_boolean),
        },
        ("id", "displayName"),
    ),
    "role_assignments": (_ASSIGNMENT, ("id", "principalId", "roleDefinitionId")),
    "role_eligibilities": (
        _ASSIGNMENT | {"startDateTime": _optional(_timestamp), "endDateTime": _optional(_timestamp)},
        ("id", "principalId", "roleDefinitionId"),
    ),
    "conditional_access_policies": (
        {
            "id": _id(),
            "displayName": _optional(_text),
            "state": _one_of(*CA_STATES),
            "conditions": _CONDITIONS,
            "grantControls": _optional(_GRANT),
        },
        ("id", "state", "conditions"),
    ),
    "subscribed_skus": (
        {
            "skuId": _id(MAX_SKU_ID_LENGTH),
            "skuPartNumber": _optional(_text),
            "consumedUnits": _count,
            "prepaidUnits": _optional(_object({"enabled": _count}, required=("enabled",))),
        },
        ("skuId", "consumedUnits"),
    ),
    "user_registration_details": (
        {"id": _id(), "isMfaRegistered": _boolean, "isAdmin": _optional(_boolean)},
        ("id", "isMfaRegistered"),
    ),
}
RECORD_KEY = {stem: ("skuId" if stem == "subscribed_skus" else "id") for stem in ARRAY_FILES}


def record_problems(record: dict, fields: dict[str, Check], required: tuple[str, ...] = ()) -> list[tuple[str, str]]:
    """(field, problem) pairs for one record; unknown extra fields are kept and ignored."""
    problems = [(name, "is missing") for name in required if name not in record]
    for name, check in fields.items():
        if name in record:
            problem = check(record[name])
            if problem:
                problems.append((name, problem))
    return problems


@dataclass(frozen=True)
class Problem:
    """One thing wrong in a snapshot: which file, which record, which field."""

    file: str
    message: str
    record: int | None = None
    record_id: str | None = None
    field: str | None = None

    def __str__(self) -> str:
        where = f"{self.file}.json"
        if self.record is not None:
            where += f" record {self.record}"
            if self.record_id:
                where += f" (id {self.record_id!r})"
        if self.field:
            where += f" field {self.field!r}"
        return f"{where}: {self.message}"


class SnapshotError(InputError):
    """A snapshot breaks the contract; nothing of it was imported."""

    def __init__(self, origin: Path | str, problems: list[Problem]):
        self.origin = origin
        self.problems = problems
        shown = "\n".join(f"  - {p}" for p in problems[:20])
        more = f"\n  ... and {len(problems) - 20} more" if len(problems) > 20 else ""
        super().__init__(f"invalid tenant snapshot {origin}:\n{shown}{more}")


def array_problems(stem: str, records: object) -> list[Problem]:
    """Problems of one array file: shape, fields and duplicate keys."""
    if not isinstance(records, list):
        return [Problem(stem, "must hold a JSON array")]
    fields, required = RECORD_FIELDS[stem]
    key = RECORD_KEY[stem]
    problems, seen = [], set()
    for index, record in enumerate(records):
        if not isinstance(record, dict):
            problems.append(Problem(stem, "must be an object", record=index))
            continue
        record_id = record.get(key) if isinstance(record.get(key), str) else None
        for name, message in record_problems(record, fields, required):
            problems.append(Problem(stem, message, index, record_id, name))
        if record_id is not None:
            if record_id in seen:
                problems.append(Problem(stem, f"duplicate {key}", index, record_id, key))
            seen.add(record_id)
    return problems


def group_members_problems(members: object) -> list[Problem]:
    if not isinstance(members, dict):
        return [Problem("group_members", "must hold an object: group id -> array of members")]
    problems = []
    for group_id, group_members in members.items():
        problem = _id()(group_id) and f"group id {_id()(group_id)}" or _array_of(_MEMBER)(group_members)
        if problem:
            problems.append(Problem("group_members", problem, record_id=group_id, field=group_id))
    return problems


def security_defaults_problems(value: object) -> list[Problem]:
    problem = _object({"isEnabled": _boolean}, required=("isEnabled",))(value)
    return [Problem("security_defaults", problem)] if problem else []


def tenant_problems(value: object) -> list[Problem]:
    if not isinstance(value, dict):
        return [Problem("tenant", "must hold a JSON object")]
    fields = {
        "name": _text,
        "azureTenantId": _guid,
        "capturedAt": _timestamp_in(*CAPTURED_YEARS),
        "sources": _optional(_object({})),
    }
    problems = [Problem("tenant", m, field=f) for f, m in record_problems(value, fields, tuple(fields)[:3])]
    if "id" not in value:
        problems.append(Problem("tenant", "is missing", field="id"))
    elif not is_tenant_key(value["id"]):
        problems.append(Problem("tenant", f"{value['id']!r} does not match {TENANT_KEY_PATTERN}", field="id"))
    sources = value.get("sources")
    for stem, source in (sources if isinstance(sources, dict) else {}).items():
        if not isinstance(source, dict) or not isinstance(source.get("complete"), bool):
            problems.append(Problem("tenant", "must be {complete: bool, reason: str}", field=f"sources.{stem}"))
        elif _optional(_array_of(_id()))(source.get("unread")):
            problems.append(Problem("tenant", "unread must be an array of ids", field=f"sources.{stem}.unread"))
    return problems


def content_problems(stem: str, content: object) -> list[Problem]:
    if stem == "tenant":
        return tenant_problems(content)
    if stem == "group_members":
        return group_members_problems(content)
    if stem == "security_defaults":
        return security_defaults_problems(content)
    return array_problems(stem, content)


@dataclass
class Snapshot:
    """One tenant's snapshot as read: the files that were present, parsed, and the bytes they were
    parsed from (what the app database keeps, so a stored snapshot is exactly what was validated)."""

    origin: str  # where it came from, for messages: a folder, Microsoft Graph, or the app database
    tenant: dict
    files: dict[str, object] = field(default_factory=dict)
    raw: dict[str, bytes] = field(default_factory=dict, repr=False)

    @property
    def key(self) -> str:
        return self.tenant["id"]

    @property
    def captured_at(self) -> datetime:
        return datetime.fromisoformat(self.tenant["capturedAt"].replace("Z", "+00:00"))

    @property
    def sources(self) -> dict[str, dict]:
        return self.tenant.get("sources") or {}

    def is_complete(self, stem: str) -> bool:
        """Read whole: present and not marked incomplete in tenant.json `sources`."""
        return stem in self.files and self.sources.get(stem, {}).get("complete", True)

    def unread(self, stem: str) -> frozenset[str]:
        """Owners (groups) whose part of a file Graph did not give: their stored part is kept."""
        return frozenset(self.sources.get(stem, {}).get("unread") or ())

    def counts(self) -> dict[str, int]:
        counts = {}
        for stem, content in self.files.items():
            if stem == "group_members":
                counts[stem] = sum(len(members) for members in content.values())
            elif stem == "security_defaults":
                counts[stem] = 1
            else:
                counts[stem] = len(content)
        return counts

    def missing(self) -> list[str]:
        return [stem for stem in DATA_FILES if stem not in self.files]

    def incomplete(self) -> dict[str, str]:
        return {
            stem: source.get("reason", "")
            for stem, source in self.sources.items()
            if not source.get("complete", True) or source.get("unread")
        }

    def enabled_policies(self) -> int:
        policies = self.files.get("conditional_access_policies", [])
        return sum(1 for policy in policies if policy["state"] == "enabled")


def _no_constant(name: str) -> None:
    raise ValueError(f"{name} is not a JSON number")


def _unstorable(content: object) -> str | None:
    """Text no database column takes (a NUL byte, half a UTF-16 pair), anywhere in the file, by JSON path."""
    pending: list[tuple[str, object]] = [("$", content)]
    while pending:
        path, value = pending.pop()
        if isinstance(value, dict):
            pending.extend((f"{path}.{key}", key) for key in value)
            pending.extend((f"{path}.{key}", item) for key, item in value.items())
        elif isinstance(value, list):
            pending.extend((f"{path}[{index}]", item) for index, item in enumerate(value))
        elif isinstance(value, str):
            if "\x00" in value:
                return f"{path[:120]} holds a NUL character, which no database column stores"
            try:
                value.encode("utf-8")
            except UnicodeEncodeError:
                return f"{path[:120]} holds invalid Unicode (a lone surrogate)"
    return None


def parse_snapshot(raw: dict[str, bytes], origin: str) -> Snapshot:
    """Parse and validate a snapshot's files (file stem -> bytes); raises SnapshotError naming every problem."""
    contents, problems = {}, []
    if "tenant" not in raw:
        problems.append(Problem("tenant", "is missing: every snapshot needs tenant.json"))
    for stem in SNAPSHOT_FILES:
        if stem not in raw:
            continue
        try:
            contents[stem] = json.loads(raw[stem].decode("utf-8"), parse_constant=_no_constant)
        except (ValueError, RecursionError) as error:  # bad UTF-8 or JSON, NaN, 5,000 digits, deep nesting
            problems.append(Problem(stem, f"is not valid JSON: {str(error)[:200] or type(error).__name__}"))
            continue
        unstorable = _unstorable(contents[stem])
        if unstorable:
            problems.append(Problem(stem, unstorable))
            continue
        problems.extend(content_problems(stem, contents[stem]))
    if problems:
        raise SnapshotError(origin, problems)
    tenant = contents.pop("tenant")
    return Snapshot(
        origin=origin, tenant=tenant, files=contents, raw={stem: raw[stem] for stem in SNAPSHOT_FILES if stem in raw}
    )


def read_snapshot(folder: Path) -> Snapshot:
    """Read and validate a snapshot folder: each file's bytes are read once, and those bytes are what
    is validated and what an import stores."""
    folder = Path(folder)
    if not folder.is_dir():
        raise SnapshotError(folder, [Problem("tenant", f"{folder} is not a folder")])
    raw, problems = {}, []
    for stem in SNAPSHOT_FILES:
        path = folder / f"{stem}.json"
        try:
            content = _read_regular(path)
        except ValueError as problem:
            problems.append(Problem(stem, str(problem)))
            continue
        if content is not None:
            raw[stem] = content
    if problems:
        raise SnapshotError(folder, problems)
    return parse_snapshot(raw, str(folder))


def _read_regular(path: Path) -> bytes | None:
    """A snapshot file's bytes; None when absent. A FIFO, device, folder, broken link or a file beyond
    MAX_FILE_BYTES is refused before it is read (a FIFO would hang the import, /dev/zero fill memory)."""
    try:
        info = path.stat()
    except FileNotFoundError:
        if path.is_symlink():
            raise ValueError("is a link to nothing") from None
        return None
    except OSError as error:  # a link loop, a name too long, no permission
        raise ValueError(f"cannot be read ({error.strerror or type(error).__name__})") from None
    if not stat.S_ISREG(info.st_mode):
        raise ValueError("is not a regular file")
    if info.st_size > MAX_FILE_BYTES:
        raise ValueError(f"is {info.st_size} bytes, more than the {MAX_FILE_BYTES} a snapshot file may have")
    with path.open("rb") as handle:
        content = handle.read(MAX_FILE_BYTES + 1)
    if len(content) > MAX_FILE_BYTES:
        raise ValueError(f"grew past {MAX_FILE_BYTES} bytes while it was read")
    return content


def encode_snapshot(origin: str, tenant: dict, files: dict[str, object]) -> Snapshot:
    """A snapshot read elsewhere (Microsoft Graph), with its files written as the JSON an import would take."""
    contents = {"tenant": tenant, **files}
    raw = {
        stem: (json.dumps(contents[stem], ensure_ascii=False, separators=(",", ":")) + "\n").encode("utf-8")
        for stem in SNAPSHOT_FILES
        if stem in contents
    }
    return Snapshot(origin=origin, tenant=tenant, files=dict(files), raw=raw)
