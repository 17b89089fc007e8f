"""What announcing alerts costs a pass, and how fast the outbox drains to a receiver on loopback.

    .venv/bin/python -m mspbyte_dagster_tests.bench_notify [--tenants 200] [--users 100] [--big-users 10000]
        [--postgres URL] [--json]

- passes: every tenant's first pass (alerts created) without a route, then again on fresh copies of
  the tenants with two channels routed (one at once, one an hourly digest): the Outbox module's
  statements and statement milliseconds per pass, beside the AlertManager's, and the pass's.
- big: the first pass of one --big-users tenant with a route: the one message's events and bytes.
- delivery: rounds over every queued message to a local HTTP receiver (signed webhook): messages
  per second.

Runs on a scratch SQLite database (or a scratch PostgreSQL database at --postgres), deleted after.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from statistics import median

from sqlalchemy import func, select

from mspbyte_dagster.lib.notify.delivery import deliver_round
from mspbyte_dagster.lib.notify.routing import EVENTS
from mspbyte_dagster.lib.notify.secrets import SecretBox, new_key
from mspbyte_dagster.lib.onboarding import import_folders
from mspbyte_dagster.lib.pipeline import STAGES, PassOptions, run_tenant_pass
from mspbyte_dagster.lib.store import notifications
from mspbyte_dagster.lib.store.db import upgrade
from mspbyte_dagster.lib.store.schema import notification_outbox
from mspbyte_dagster_tests.receivers import Receiver
from mspbyte_dev.bench import scratch_database
from mspbyte_dev.synthetic import write_snapshots


def _passes(engine, keys: list[str]) -> dict:
    outbox_queries, outbox_ms, manager_ms, total_ms = [], [], [], []
    for key in keys:
        result = run_tenant_pass(engine, key, STAGES, PassOptions())
        modules = result_modules(engine, key)
        outbox_queries.append(modules.get("Outbox", {}).get("queries", 0))
        outbox_ms.append(modules.get("Outbox", {}).get("ms", 0.0))
        manager_ms.append(modules.get("AlertManager", {}).get("ms", 0.0))
        total_ms.append(result.duration_ms)
    return {
        "outbox_statements_per_pass": max(outbox_queries),
        "outbox_statement_ms_median": round(median(outbox_ms), 2),
        "alert_manager_statement_ms_median": round(median(manager_ms), 2),
        "pass_ms_median": median(total_ms),
    }


def result_modules(engine, tenant: str) -> dict:
    """Per module, statements and milliseconds of the tenant's latest pass (the ledger's query stats)."""
    from mspbyte_dagster.lib.store.schema import pipeline_ledger

    with engine.connect() as conn:
        details = conn.execute(
            select(pipeline_ledger.c.details)
            .where(pipeline_ledger.c.tenant == tenant)
            .order_by(pipeline_ledger.c.id.desc())
            .limit(1)
        ).scalar_one()
    stats = details["query_stats"]
    return {
        name: {"queries": count, "ms": stats.get("milliseconds_by_module", {}).get(name, 0.0)}
        for name, count in stats["by_module"].items()
    }


def _route(engine, url: str, box: SecretBox) -> None:
    """Two channels: one takes every event at once, the other an hourly digest."""
    now = datetime.now(UTC)
    chosen = {"tenant": None, "min_severity": "low", "alert_types": None, "events": list(EVENTS)}
    with engine.begin() as conn:
        for name, digest in (("at-once", None), ("digest", 60)):
            channel = notifications.add_channel(conn, name, "webhook", {"url": url}, box.seal("bench-secret"), now)
            notifications.add_route(conn, channel, now, digest_minutes=digest, **chosen)


def bench(tenants: int, users: int, big_users: int, postgres: str | None) -> dict:
    box = SecretBox(new_key())
    receiver = Receiver().start()
    figures: dict = {"tenants": tenants, "users": users, "database": "postgresql" if postgres else "sqlite"}
    with tempfile.TemporaryDirectory() as folder, scratch_database(postgres or "sqlite:///") as (engine, _kind):
        upgrade(engine)
        plain = import_folders(engine, write_snapshots(Path(folder) / "a", tenants, users, seed=11))
        figures["without_routes"] = _passes(engine, [item.tenant for item in plain])
        _route(engine, receiver.url, box)
        routed = import_folders(engine, write_snapshots(Path(folder) / "b", tenants, users, seed=12))
        figures["with_routes"] = _passes(engine, [item.tenant for item in routed])
        with engine.connect() as conn:
            figures["messages_queued"] = conn.execute(select(func.count()).select_from(notification_outbox)).scalar()
        started = time.perf_counter()
        later = datetime.now(UTC) + timedelta(hours=2)  # the digests are due too
        while True:
            round_figures = deliver_round(engine, box, timedelta(hours=24), now=lambda: later)
            if not round_figures.messages:
                break
        seconds = time.perf_counter() - started
        figures["delivery"] = {
            "messages": len(receiver.received),
            "seconds": round(seconds, 2),
            "messages_per_second": round(len(receiver.received) / seconds, 1),
        }
        if big_users:
            (big,) = import_folders(engine, write_snapshots(Path(folder) / "c", 1, big_users, seed=13))
            result = run_tenant_pass(engine, big.tenant, STAGES, PassOptions())
            with engine.connect() as conn:
                rows = list(conn.execute(select(notification_outbox).where(notification_outbox.c.tenant == big.tenant)))
            modules = result_modules(engine, big.tenant)
            figures["big"] = {
                "users": big_users,
                "alerts_created": result.stages["alerts"]["created"],
                "messages": len(rows),
                "events_in_message": max(len(row.items) for row in rows),
                "message_kb": round(max(len(json.dumps(row.items)) for row in rows) / 1024),
                "outbox_statement_ms": modules.get("Outbox", {}).get("ms"),
                "alert_manager_statement_ms": modules.get("AlertManager", {}).get("ms"),
            }
        receiver.stop()
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tenants", type=int, default=200)
    parser.add_argument("--users", type=int, default=100)
    parser.add_argument("--big-users", type=int, default=10_000)
    parser.add_argument("--postgres", help="a PostgreSQL URL whose server gets a scratch database")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    figures = bench(args.tenants, args.users, args.big_users, args.postgres)
    print(json.dumps(figures, indent=2) if args.json else "\n".join(f"{k}: {v}" for k, v in figures.items()))


if __name__ == "__main__":
    main()
