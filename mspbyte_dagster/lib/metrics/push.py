"""The Pushgateway side: one run's figures, for runs that end before a scrape would see them."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Protocol

from prometheus_client import CollectorRegistry, Gauge, push_to_gateway

from mspbyte_dagster.lib.metrics.collector import RUN_STATUSES

PUSH_JOB = "tenant_pipeline"


class PassFigures(Protocol):
    """What a run reports per tenant (lib.passes.TenantPass has it)."""

    tenant: str
    status: str
    duration_ms: int
    queries: int
    slow_queries: int


def push_run_figures(gateway_url: str, run_id: str, results: Sequence[PassFigures], timeout: float = 10.0) -> None:
    """Push one run's figures to a Pushgateway, grouped by job="tenant_pipeline" and run_id.

    PUT replaces the run's group, so pushing again for the same run never double counts. Raises
    OSError (urllib's URLError included) when the gateway cannot be reached or refuses.
    """
    registry = CollectorRegistry()
    by_status = Counter(result.status for result in results)
    tenants_gauge = Gauge(
        "mspbyte_run_tenants", "Tenants of the run, by how their pass ended.", ["status"], registry=registry
    )
    for status in dict.fromkeys([*RUN_STATUSES, *by_status]):
        tenants_gauge.labels(status).set(by_status[status])
    for name, documentation, value in (
        (
            "mspbyte_run_duration_seconds",
            "Seconds the run's tenant passes took, summed.",
            sum(r.duration_ms for r in results) / 1000,
        ),
        ("mspbyte_run_queries", "Database queries of the run's tenant passes.", sum(r.queries for r in results)),
        ("mspbyte_run_slow_queries", "Slow queries of the run's tenant passes.", sum(r.slow_queries for r in results)),
    ):
        Gauge(name, documentation, registry=registry).set(value)
    push_to_gateway(gateway_url, job=PUSH_JOB, registry=registry, grouping_key={"run_id": run_id}, timeout=timeout)
