"""The one registration of integrations: the pipeline, stores, sensor and CLI ask here."""

from __future__ import annotations

from mspbyte_dagster.lib.adapters.base import Integration
from mspbyte_dagster.lib.adapters.microsoft365.integration import INTEGRATION as MICROSOFT365
from mspbyte_dagster.lib.adapters.sophos.integration import INTEGRATION as SOPHOS

INTEGRATIONS: dict[str, Integration] = {integration.name: integration for integration in (MICROSOFT365, SOPHOS)}
DEFAULT = MICROSOFT365  # a tenant.json without `integration` is a Microsoft 365 snapshot


def integration_named(name: str | None) -> Integration | None:
    return DEFAULT if name is None else INTEGRATIONS.get(name)
