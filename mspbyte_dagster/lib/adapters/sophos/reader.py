"""Sophos Central -> the files of one Sophos snapshot (docs/snapshot-format-sophos.md), with what could
not be read whole.

A customer that refuses the partner (403: no Partner Assistance, a trial, not the partner's), or an
answer that cannot be read, leaves its file out, or keeps what came before the refusal, and says why in
tenant.json `sources`: never an empty file, which would delete every endpoint or firewall the pipeline
knows. A record that breaks the format's checks is left out and its file marked incomplete. Any other
failure (Central unreachable, a wait beyond the budget, a token refused twice) fails the customer's read.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from mspbyte_dagster.lib.adapters.http import ReadStats
from mspbyte_dagster.lib.adapters.sophos.client import MalformedAnswer, SophosClient, SophosConnection, SophosError
from mspbyte_dagster.lib.adapters.sophos.files import (
    ENDPOINTS,
    FIREWALL_LICENSES,
    FIREWALL_UPGRADES,
    FIREWALLS,
    INTEGRATION,
    TENANT,
    content_problems,
)

log = logging.getLogger(__name__)

ENDPOINTS_PATH = "/endpoint/v1/endpoints"
FIREWALLS_PATH = "/firewall/v1/firewalls"
UPGRADE_CHECK_PATH = "/firewall/v1/firewalls/actions/firmware-upgrade-check"
LICENSES_PATH = "/licenses/v1/licenses/firewalls"  # on the global host, for the customer of X-Tenant-ID
UPGRADE_BATCH = 50  # firewalls asked about in one firmware-upgrade-check


@dataclass
class SophosRead:
    """One customer as Central gave it: the snapshot's files (tenant.json included, stem -> content),
    every refusal and every record left out (`errors`), and what the read cost."""

    files: dict[str, object] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    stats: ReadStats = field(default_factory=ReadStats)
    sources: dict[str, dict] = field(default_factory=dict)  # tenant.json `sources`: the files not read whole

    def keep(self, stem: str, content: object | None, refusal: str | None = None) -> None:
        """A file as read (None: not read at all), with the refusal that cut it short. Records that break
        the format's checks are left out (a firewall_upgrades.json with any problem, whole)."""
        reasons = [refusal] if refusal else []
        if content is not None:
            problems = content_problems(stem, content)
            self.errors += [str(problem) for problem in problems]
            if problems and isinstance(content, list):
                bad = {problem.record for problem in problems}
                content = [record for index, record in enumerate(content) if index not in bad]
                reasons.append(f"{len(bad)} record(s) left out (first: {problems[0]})")
            elif problems:
                content = None
                reasons.append(f"left out: {problems[0]}")
        if content is not None:
            self.files[stem] = content
        if reasons:
            self.refused(stem, "; ".join(reasons))

    def refused(self, stem: str, reason: str) -> None:
        self.sources[stem] = {"complete": False, "reason": reason}
        self.errors.append(f"{stem}.json: {reason}")

    def collect(self, stem: str, pages: Iterable[list]) -> None:
        """An array file from its pages; a refusal keeps the records that came before it."""
        records: list = []
        try:
            for page in pages:
                records.extend(page)
        except SophosError as error:
            if not refusable(error):
                raise
            self.keep(stem, records or None, str(error))
        else:
            self.keep(stem, records)


def refusable(error: SophosError) -> bool:
    """What costs one file, not the customer's read: a refusal (403) or an answer that cannot be read."""
    return error.status == 403 or isinstance(error, MalformedAnswer)


def read_customer(
    connection: SophosConnection,
    customer_id: str,
    *,
    key: str,
    name: str,
    captured_at: datetime,
    upgrade_batch: int = UPGRADE_BATCH,
) -> SophosRead:
    """Every file of docs/snapshot-format-sophos.md for one of the partner's customers, as the tenant
    `key` (named `name`) of this project."""
    customer = connection.customer(customer_id, label=f"{key} ({customer_id})")
    read = SophosRead(stats=customer.stats)
    read.collect(ENDPOINTS, customer.keyed(ENDPOINTS_PATH, {"view": "full"}))
    read.collect(FIREWALLS, customer.numbered(FIREWALLS_PATH))
    if FIREWALLS in read.files:
        _upgrades(read, customer, [firewall["id"] for firewall in read.files[FIREWALLS]], upgrade_batch)
    else:
        read.refused(FIREWALL_UPGRADES, "not asked: firewalls.json was not read")
    read.collect(FIREWALL_LICENSES, customer.numbered(LICENSES_PATH, host=connection.global_url))
    tenant = {"id": key, "name": name, "integration": INTEGRATION, "sophosTenantId": customer_id}
    tenant |= {field: customer.record[field] for field in ("dataRegion", "apiHost") if field in customer.record}
    tenant["capturedAt"] = captured_at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    if read.sources:
        tenant["sources"] = dict(sorted(read.sources.items()))
    for stem, source in tenant.get("sources", {}).items():
        log.warning("Sophos customer %s: %s.json not read whole: %s", key, stem, source["reason"])
    read.files = {TENANT: tenant, **read.files}
    return read


def _upgrades(read: SophosRead, customer: SophosClient, firewall_ids: list[str], batch_size: int) -> None:
    """firmware-upgrade-check in batches, joined: firewalls in the order asked, firmware versions once
    each, in version order. A firewall the check does not know (404: removed since it was listed) is
    left out of its batch, and the file marked incomplete naming it."""
    firewalls, versions, notes = [], {}, []
    if FIREWALLS in read.sources:
        notes.append("asked only about the firewalls firewalls.json holds")
    pending = [firewall_ids[n : n + batch_size] for n in range(0, len(firewall_ids), batch_size)]
    try:
        while pending:
            batch = pending.pop(0)
            try:
                answer = customer.post(UPGRADE_CHECK_PATH, {"firewalls": batch})
            except SophosError as error:
                unknown = [firewall for firewall in batch if error.status == 404 and firewall in str(error)]
                if not unknown:
                    raise
                notes.append(f"firewall(s) {', '.join(unknown)} unknown to the check (removed since listed?)")
                rest = [firewall for firewall in batch if firewall not in unknown]
                pending[:0] = [rest] if rest else []
                continue
            problems = content_problems(FIREWALL_UPGRADES, answer)
            if problems:
                raise MalformedAnswer(f"Sophos Central {customer.who}: POST {UPGRADE_CHECK_PATH}: {problems[0]}", 200)
            firewalls += answer["firewalls"]
            for version in answer["firmwareVersions"]:
                versions.setdefault(version["version"], version)
    except SophosError as error:
        if not refusable(error):
            raise
        notes.append(str(error))
        read.keep(FIREWALL_UPGRADES, _joined(firewalls, versions) if firewalls else None, "; ".join(notes))
        return
    read.keep(FIREWALL_UPGRADES, _joined(firewalls, versions), "; ".join(notes) or None)


def _joined(firewalls: list, versions: dict[str, dict]) -> dict:
    return {"firewalls": firewalls, "firmwareVersions": [versions[v] for v in sorted(versions, key=_version_order)]}


def _version_order(version: str) -> list:
    """SFOS 19.5.3 before SFOS 20.0.1: the numbers in a version compared as numbers."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", version)]
