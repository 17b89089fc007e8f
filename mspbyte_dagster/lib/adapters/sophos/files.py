"""Sophos snapshot files (docs/snapshot-format-sophos.md): which there are, and their checks.

Only what the format's "Validation" asks is checked: tenant.json's fields, each file's shape, and each
record's key (present, a string, not repeated). Every other field is Sophos's and kept as it came, so a
field Central adds or changes never refuses a folder. Pure functions: the import, the reader and the
synthetic generator's tests ask the same questions.
"""

from __future__ import annotations

import uuid
from urllib.parse import urlsplit

from mspbyte_dagster.lib.adapters.base import Problem
from mspbyte_dagster.lib.adapters.fields import CAPTURED_YEARS, timestamp_in
from mspbyte_dagster.lib.model import TENANT_KEY_PATTERN, is_tenant_key

INTEGRATION = "sophos"  # tenant.json `integration`
TENANT = "tenant"
ENDPOINTS = "endpoints"
FIREWALLS = "firewalls"
FIREWALL_UPGRADES = "firewall_upgrades"
FIREWALL_LICENSES = "firewall_licenses"
ARRAY_FILES = (ENDPOINTS, FIREWALLS, FIREWALL_LICENSES)
DATA_FILES = (ENDPOINTS, FIREWALLS, FIREWALL_UPGRADES, FIREWALL_LICENSES)
SNAPSHOT_FILES = (TENANT, *DATA_FILES)
RECORD_KEY = {ENDPOINTS: "id", FIREWALLS: "id", FIREWALL_LICENSES: "serialNumber"}
# firewall_upgrades.json is an object of two arrays; a firmware version is keyed by its version
UPGRADE_ARRAYS = {"firewalls": "id", "firmwareVersions": "version"}
_captured_at = timestamp_in(*CAPTURED_YEARS)


def problems(files: dict[str, object]) -> list[str]:
    """Everything wrong in a snapshot's files (stem -> parsed content, tenant.json included); none: valid."""
    found = [] if TENANT in files else [Problem(TENANT, "is missing: every snapshot needs tenant.json")]
    for stem, content in files.items():
        if stem in SNAPSHOT_FILES:
            found += content_problems(stem, content)
        else:
            found.append(Problem(stem, f"is no file of a Sophos snapshot (they are {', '.join(SNAPSHOT_FILES)})"))
    return [str(problem) for problem in found]


def content_problems(stem: str, content: object) -> list[Problem]:
    """The problems of one file's content; an array file's name the index of the record at fault."""
    if stem == TENANT:
        return _tenant_problems(content)
    if stem in ARRAY_FILES:
        return _record_problems(stem, content, RECORD_KEY[stem])
    if not isinstance(content, dict):
        return [Problem(stem, "must hold a JSON object: {firewalls: [...], firmwareVersions: [...]}")]
    found = []
    for name, key in UPGRADE_ARRAYS.items():
        if name not in content:
            found.append(Problem(stem, "is missing", field=name))
        else:
            found += _record_problems(stem, content[name], key, inside=name)
    return found


def _record_problems(stem: str, records: object, key: str, inside: str | None = None) -> list[Problem]:
    """A record that is no object, lacks its key or repeats one. `inside`: the array's field in an
    object file, which then names the record by its path (firewalls[2].id)."""
    if not isinstance(records, list):
        return [Problem(stem, "must be an array", field=inside) if inside else Problem(stem, "must hold a JSON array")]
    found, first_at = [], {}
    for index, record in enumerate(records):
        name, record_id = key, None
        if not isinstance(record, dict):
            message, name = "must be an object", None
        elif key not in record:
            message = "is missing"
        elif not isinstance(record[key], str) or not record[key]:
            message = "must be a non-empty string"
        elif record[key] in first_at:
            message, record_id = f"repeats the {key} of record {first_at[record[key]]}", record[key]
        else:
            first_at[record[key]] = index
            continue
        if inside:
            path = f"{inside}[{index}]" + (f".{name}" if name else "")
            found.append(Problem(stem, message, record_id=record_id, field=path))
        else:
            found.append(Problem(stem, message, index, record_id, name))
    return found


def _tenant_problems(tenant: object) -> list[Problem]:
    if not isinstance(tenant, dict):
        return [Problem(TENANT, "must hold a JSON object")]
    found = [Problem(TENANT, "is missing", field=name) for name in REQUIRED if name not in tenant]
    for name, check in TENANT_FIELDS.items():
        message = check(tenant[name]) if name in tenant else None
        if message:
            found.append(Problem(TENANT, message, field=name))
    return found


def _string(value: object) -> str | None:
    return None if isinstance(value, str) else "must be a string"


def _tenant_key(value: object) -> str | None:
    return None if is_tenant_key(value) else f"{value!r:.80} does not match {TENANT_KEY_PATTERN}"


def _integration(value: object) -> str | None:
    return None if value == INTEGRATION else f'{value!r:.80} must be "{INTEGRATION}" in a Sophos snapshot'


def _guid(value: object) -> str | None:
    """A GUID in the 8-4-4-4-12 form `GET /partner/v1/tenants` gives."""
    try:
        if isinstance(value, str) and str(uuid.UUID(value)) == value.lower():
            return None
    except ValueError:
        pass
    return f"{value!r:.80} is not a GUID in the 8-4-4-4-12 form"


def _https_url(value: object) -> str | None:
    parts = urlsplit(value) if isinstance(value, str) else None
    return None if parts and parts.scheme == "https" and parts.netloc else f"{value!r:.80} is not an https URL"


def _timestamp(value: object) -> str | None:
    if not isinstance(value, str):
        return "must be a string"
    try:
        _captured_at(value)
    except ValueError as wrong:
        return str(wrong)
    return None


def _sources(value: object) -> str | None:
    """file stem -> {"complete": bool, "reason": "..."}, for files of this format only."""
    if not isinstance(value, dict):
        return "must be an object: file stem -> {complete, reason}"
    for stem, source in value.items():
        if stem not in DATA_FILES:
            return f"{stem!r:.80} is no data file of a Sophos snapshot (they are {', '.join(DATA_FILES)})"
        if not isinstance(source, dict) or not isinstance(source.get("complete"), bool):
            return f"{stem!r}: must be an object whose 'complete' is true or false"
        if not isinstance(source.get("reason", ""), str):
            return f"{stem!r}: 'reason' must be a string"
    return None


REQUIRED = ("id", "name", "integration", "sophosTenantId", "capturedAt")
TENANT_FIELDS = {
    "id": _tenant_key,
    "name": _string,
    "integration": _integration,
    "sophosTenantId": _guid,
    "dataRegion": _string,
    "apiHost": _https_url,
    "capturedAt": _timestamp,
    "sources": _sources,
}
