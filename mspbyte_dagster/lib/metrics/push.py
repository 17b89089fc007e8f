"""The Pushgateway side: each tenant's latest pass, for runs that end before a scrape would see them."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Protocol

from prometheus_client import CollectorRegistry, Gauge

from mspbyte_dagster.lib.metrics.collector import RUN_STATUSES

PUSH_JOB = "tenant_pipeline"


class PassFigures(Protocol):
    """What a run reports per tenant (lib.passes.TenantPass has it)."""

    tenant: str
    status: str
    duration_ms: int
    queries: int
    slow_queries: int


def push_pass_figures(
    registry: CollectorRegistry, push: Callable[[Mapping[str, str]], None], results: Sequence[PassFigures]
) -> None:
    """Each tenant's latest pass into its own group, `push({"tenant": id})` after the gauges hold it.

    One group per tenant, replaced by the tenant's next pass (a PUT): the Pushgateway holds as many
    groups as the fleet has tenants, never one per run. Raises OSError at the first push the gateway
    does not take, so an unreachable gateway costs one timeout, not one per tenant.
    """
    status = Gauge(
        "mspbyte_tenant_pass_status", "1 for how the tenant's latest pass ended.", ["status"], registry=registry
    )
    duration = Gauge("mspbyte_pipeline_duration_ms", "Milliseconds of the tenant's latest pass.", registry=registry)
    queries = Gauge("mspbyte_tenant_pass_queries", "Database queries of the latest pass.", registry=registry)
    slow = Gauge("mspbyte_tenant_pass_slow_queries", "Slow queries of the latest pass.", registry=registry)
    ended = Gauge(
        "mspbyte_tenant_pass_completed_timestamp_seconds", "When the latest pass was pushed.", registry=registry
    )
    for result in results:
        for name in RUN_STATUSES:
            status.labels(name).set(int(name == result.status))
        duration.set(result.duration_ms)
        queries.set(result.queries)
        slow.set(result.slow_queries)
        ended.set_to_current_time()
        push({"tenant": result.tenant})
