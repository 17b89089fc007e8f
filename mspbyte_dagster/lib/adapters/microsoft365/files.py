"""Microsoft 365 snapshot files (docs/snapshot-format.md): which there are, their shapes and checks."""

from __future__ import annotations

from mspbyte_dagster.lib.adapters.base import Problem
from mspbyte_dagster.lib.adapters.microsoft365.records import errors

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
OBJECT_SHAPES = {
    "tenant": "a JSON object",
    "group_members": "an object: group id -> array of members",
    "security_defaults": "an object: {isEnabled: bool}",
}
RECORD_KEY = {stem: ("skuId" if stem == "subscribed_skus" else "id") for stem in ARRAY_FILES}
# The files that say who is who: rules about people need them read whole.
DIRECTORY_FILES = ("users", "groups", "group_members", "role_definitions", "role_assignments", "role_eligibilities")


def _path(parts: tuple) -> str | None:
    """pydantic's location as a field path: conditions.users.includeUsers, assignedLicenses[0].skuId."""
    shown = ""
    for part in parts:
        shown += f"[{part}]" if isinstance(part, int) else (f".{part}" if shown else str(part))
    return shown or None


def array_problems(stem: str, records: object) -> list[Problem]:
    """Problems of one array file: shape, fields and duplicate keys."""
    if not isinstance(records, list):
        return [Problem(stem, "must hold a JSON array")]
    key = RECORD_KEY[stem]
    problems = []
    for where, message in errors(stem, records):
        index = where[0]
        record = records[index]
        record_id = record.get(key) if isinstance(record, dict) and isinstance(record.get(key), str) else None
        problems.append(Problem(stem, message, index, record_id, _path(where[1:])))
    seen: set[str] = set()
    for index, record in enumerate(records):
        record_id = record.get(key) if isinstance(record, dict) else None
        if isinstance(record_id, str):
            if record_id in seen:
                problems.append(Problem(stem, f"duplicate {key}", index, record_id, key))
            seen.add(record_id)
    return sorted(problems, key=lambda p: p.record)


def content_problems(stem: str, content: object) -> list[Problem]:
    if stem in ARRAY_FILES:
        return array_problems(stem, content)
    if not isinstance(content, dict):
        return [Problem(stem, f"must hold {OBJECT_SHAPES[stem]}")]
    if stem == "group_members":  # the group is the record: its id names it
        return [
            Problem(stem, message, record_id=str(where[0]), field=_path(where))
            for where, message in errors(stem, content)
        ]
    return [Problem(stem, message, field=_path(where)) for where, message in errors(stem, content)]


def count(stem: str, content: object) -> int:
    if stem == "group_members":
        return sum(len(members) for members in content.values())
    return 1 if stem == "security_defaults" else len(content)
