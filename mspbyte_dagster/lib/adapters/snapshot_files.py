"""Tenant snapshot folders of any integration (docs/snapshot-format*.md): reading and validation.

tenant.json says which integration a snapshot is of (none: Microsoft 365); the integration's own
checks serve import (a bad record rejects the folder) and its reader (a bad record is quarantined and
its file marked incomplete); a problem names its file, record and field.
"""

from __future__ import annotations

import json
import re
import stat
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from mspbyte_dagster.lib.adapters.base import Integration, Problem, SnapshotError
from mspbyte_dagster.lib.adapters.registry import INTEGRATIONS, integration_named

MAX_FILE_BYTES = 256 * 2**20  # one snapshot file, far beyond the largest tenant's (docs/benchmarks.md)


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
    def integration(self) -> Integration:
        return integration_named(self.tenant.get("integration"))

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
        return {stem: self.integration.count(stem, content) for stem, content in self.files.items()}

    def missing(self) -> list[str]:
        return [stem for stem in self.integration.data_files if stem not in self.files]

    def incomplete(self) -> dict[str, str]:
        return {
            stem: source.get("reason", "")
            for stem, source in self.sources.items()
            if not source.get("complete", True) or source.get("unread")
        }


def _no_constant(name: str) -> None:
    raise ValueError(f"{name} is not a JSON number")


class _TooLarge(ValueError):
    """A JSON integer orjson cannot write (the records' JSON and their hashes): beyond 64 bits."""


def _integer(text: str) -> int:
    value = int(text)
    if not -(2**63) <= value < 2**64:
        raise _TooLarge(f"holds {text[:40]}, an integer beyond 64 bits: too large to store")
    return value


# Parsed JSON can only hold a NUL or half a UTF-16 pair through a \u escape (raw control characters and
# encoded surrogates are refused by the parser and the UTF-8 decoder): text without one needs no walk.
_MAYBE_UNSTORABLE = re.compile(r"\\u(?:0000|[dD][89a-fA-F])")


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


def _integration_of(raw_tenant: bytes | None) -> Integration | Problem:
    """The integration tenant.json names, or why it names none (a tenant.json that is no JSON object is
    reported by its own checks: Microsoft 365's, the default)."""
    try:
        document = json.loads(raw_tenant) if raw_tenant is not None else {}
    except ValueError:
        document = {}
    name = document.get("integration") if isinstance(document, dict) else None
    found = integration_named(name) if name is None or isinstance(name, str) else None
    known = ", ".join(INTEGRATIONS)
    return found or Problem("tenant", f"{name!r} is no integration: use one of {known}", field="integration")


def parse_snapshot(raw: dict[str, bytes], origin: str) -> Snapshot:
    """Parse and validate a snapshot's files (file stem -> bytes); raises SnapshotError naming every problem."""
    contents, problems = {}, []
    if "tenant" not in raw:
        problems.append(Problem("tenant", "is missing: every snapshot needs tenant.json"))
    integration = _integration_of(raw.get("tenant"))
    if isinstance(integration, Problem):
        raise SnapshotError(origin, [integration])
    for stem in integration.snapshot_files:
        if stem not in raw:
            continue
        try:
            text = raw[stem].decode("utf-8")
            contents[stem] = json.loads(text, parse_constant=_no_constant, parse_int=_integer)
        except _TooLarge as error:
            problems.append(Problem(stem, str(error)))
            continue
        except (ValueError, RecursionError) as error:  # bad UTF-8 or JSON, NaN, 5,000 digits, deep nesting
            problems.append(Problem(stem, f"is not valid JSON: {str(error)[:200] or type(error).__name__}"))
            continue
        unstorable = _unstorable(contents[stem]) if _MAYBE_UNSTORABLE.search(text) else None
        if unstorable:
            problems.append(Problem(stem, unstorable))
            continue
        problems.extend(integration.content_problems(stem, contents[stem]))
    if problems:
        raise SnapshotError(origin, problems)
    tenant = contents.pop("tenant")
    kept = {stem: raw[stem] for stem in integration.snapshot_files if stem in raw}
    return Snapshot(origin=origin, tenant=tenant, files=contents, raw=kept)


def read_snapshot(folder: Path) -> Snapshot:
    """Read and validate a snapshot folder: each file's bytes are read once, and those bytes are what
    is validated and what an import stores. tenant.json first: it says whose files to read."""
    folder = Path(folder)
    if not folder.is_dir():
        raise SnapshotError(folder, [Problem("tenant", f"{folder} is not a folder")])
    raw, problems = {}, []

    def read(stem: str) -> None:
        try:
            content = _read_regular(folder / f"{stem}.json")
        except ValueError as problem:
            problems.append(Problem(stem, str(problem)))
            return
        if content is not None:
            raw[stem] = content

    read("tenant")
    integration = _integration_of(raw.get("tenant"))
    for stem in integration.data_files if isinstance(integration, Integration) else ():
        read(stem)
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
    """A snapshot read elsewhere (an integration's API), with its files written as the JSON an import would take."""
    contents = {"tenant": tenant, **files}
    raw = {
        stem: (json.dumps(content, ensure_ascii=False, separators=(",", ":")) + "\n").encode("utf-8")
        for stem, content in contents.items()
    }
    return Snapshot(origin=origin, tenant=tenant, files=dict(files), raw=raw)
