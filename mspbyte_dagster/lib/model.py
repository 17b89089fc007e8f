"""Domain names and keys shared by every stage."""

from __future__ import annotations

import re

TENANT_KEY_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$"
TENANT_KEY_RE = re.compile(TENANT_KEY_PATTERN)

MICROSOFT365 = "microsoft365"
M365_DATA_SOURCE = "m365"

ENTITY_TYPES = ("user", "group", "role", "policy", "sku", "tenant")
SEVERITIES = ("critical", "high", "medium", "low")
ALERT_STATUSES = ("active", "suppressed", "resolved")
LEDGER_STATUSES = ("succeeded", "failed", "held", "skipped", "accepted_drop")


def is_tenant_key(value: object) -> bool:
    """A tenant key is a partition key and a NATS subject token, so its alphabet is narrow."""
    return isinstance(value, str) and TENANT_KEY_RE.match(value) is not None
