"""Tenant snapshot folders (docs/snapshot-format.md): validation and reading.

The same record checks (the pydantic models of snapshot_records.py) serve import (a bad record
rejects the folder) and the Graph adapter (a bad record is quarantined and its file marked
incomplete); a problem names its file, record and field.
"""

from __future__ import annotations

import json
import stat
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from mspbyte_dagster.lib.adapters.snapshot_records import errors
from mspbyte_dagster.lib.errors import InputError

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
MAX_FILE_BYTES = 256 * 2**20  # one snapshot file, far beyond the largest tenant's (docs/benchmarks.md)
OBJECT_SHAPES = {
    "tenant": "a JSON object",
    "group_members": "an object: group id -> array of members",
    "security_defaults": "an object: {isEnabled: bool}",
}
RECORD_KEY = {stem: ("skuId" if stem == "subscribed_skus" else "id") for stem in ARRAY_FILES}


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
