"""The adapter contract: what an integration (a data source kind: Microsoft 365, ...) declares, so that
the pipeline, the stores, the sensor and the CLI stay generic over integrations.

An integration is a package under lib/adapters/<integration>/ that builds one `Integration`: its
snapshot files and their validation, its entity types (file, key, display name, volatile fields,
sub-resources), and its empty-sync guard measures. lib/adapters/registry.py registers them; nothing
outside an integration's package names its files.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from mspbyte_dagster.lib.errors import InputError

if TYPE_CHECKING:
    from mspbyte_dagster.lib.adapters.snapshot_files import Snapshot


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


@dataclass(frozen=True)
class EntitySource:
    """Where an entity type's objects come from: a file of the snapshot, the field that keys them and
    the one that names them; `volatile` fields move without the object changing (left out of its hash)."""

    file: str
    key: str
    display: str
    volatile: tuple[str, ...] = ()
    items: Callable[[object], list[dict]] | None = None  # the file's objects of this type (default: its array)


@dataclass(frozen=True)
class SubResource:
    """A file whose objects describe an entity of another file (a group's members): stored on the owner
    under `field`; `listed`: an owner the file does not name has none (rather than unknown)."""

    owner_type: str
    file: str
    field: str
    listed: bool = False


@dataclass(frozen=True)
class Setting:
    """An environment variable an integration reads (settings.py builds a field of it): a secret is never
    shown; a URL must be http(s)."""

    variable: str
    default: str | None = None
    secret: bool = False
    url: bool = False


@dataclass(frozen=True)
class Integration:
    name: str  # "microsoft365": tenant.json `integration`, the data_sources table
    source_id: str  # "m365": the data source in sync subjects (mspbyte.sync.<tenant>.<source id>)
    data_files: tuple[str, ...]  # the snapshot's files beside tenant.json
    content_problems: Callable[[str, object], list[Problem]]  # per file, tenant.json included
    count: Callable[[str, object], int]  # what a file holds, for the figures
    entity_sources: dict[str, EntitySource]
    sub_resources: tuple[SubResource, ...] = ()
    # {owner id: value} of a sub-resource file (its layout is the integration's)
    owners: Callable[[Snapshot, str], dict[str, object]] = lambda snapshot, stem: {}
    # the tenant.json field naming the customer in the source system, kept in the data source's params:
    # fixed once known, so one customer's data never lands under another tenant
    binding: str | None = None
    # links this source's entities (to each other, and to the tenant's Microsoft 365 users): a class whose
    # link(tenant, data source id, now) syncs the edges
    linker: type | None = None
    # (context) -> (findings, rule evaluations): its rules, evaluated only when their inputs were read
    analyses: tuple[Callable, ...] = ()
    alert_types: tuple[str, ...] = ()
    settings: tuple[Setting, ...] = ()  # its environment variables (its reader's credential, its hosts)
    # its reader, for data sources read from its API: a connection made from the settings (closed after the
    # run), and refresh(engine, tenant, connect) -> the read's figures, or None when the tenant's source of
    # this integration is not read from the API
    connect: Callable[[object], object] | None = None
    refresh: Callable[..., dict | None] | None = None
    guard_counts: Callable[[Snapshot], dict] = lambda snapshot: {}
    hold_reason: Callable[[dict | None, dict], str | None] = lambda baseline, current: None

    @property
    def snapshot_files(self) -> tuple[str, ...]:
        return ("tenant", *self.data_files)

    @property
    def snapshot_asset(self) -> str:
        return f"{self.source_id}_snapshot"
