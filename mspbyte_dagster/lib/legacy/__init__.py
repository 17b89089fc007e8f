"""The old query pattern (one query per entity, edge and alert; one analyzer per type) applying
today's RULES: the baseline the benchmark and comparison mode measure, correct and only slow."""

from mspbyte_dagster.lib.legacy.alert_writer import LegacyAlertWriter
from mspbyte_dagster.lib.legacy.analyzers import LegacyAnalyzers
from mspbyte_dagster.lib.legacy.linker import LegacyLinker
from mspbyte_dagster.lib.legacy.loader import LegacyContextLoader

__all__ = ["LegacyAlertWriter", "LegacyAnalyzers", "LegacyContextLoader", "LegacyLinker"]
