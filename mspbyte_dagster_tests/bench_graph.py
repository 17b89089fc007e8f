"""What reading a large tenant from Graph costs: requests with and without `$batch`, wall time, and throttling.

    .venv/bin/python -m mspbyte_dagster_tests.bench_graph [--users 10000] [--reports-limit 5] [--json]

One synthetic tenant (as `mspbyte synth --tenants 1 --users N` writes it) is
served by the local Graph over HTTPS on 127.0.0.1 and read by the adapter with
its production retry policy, three times: group members through `$batch`, one
request per group, and `$batch` under injected throttling and outages. Sign-in
listings (120 users a page) and the registration report are paced to
`--reports-limit` requests per 10 s, Graph's reports limit: at 5, the pacing is
most of a large tenant's read time (`paced_seconds`).
"""

from __future__ import annotations

import argparse
import json
import ssl
import tempfile
import time
from pathlib import Path

from mspbyte_dagster.lib.adapters.microsoft365.auth import GraphCredentials, graph_scope
from mspbyte_dagster.lib.adapters.microsoft365.client import GraphConnection, RetryPolicy
from mspbyte_dagster.lib.adapters.microsoft365.reader import read_tenant
from mspbyte_dev.fake_graph import FakeGraph
from mspbyte_dev.synthetic import write_snapshots

# Injected in the throttled scenario: (kind, path prefix, options)
FAULTS = (
    ("throttle", "/users", {"times": 3, "retry_after": 1}),
    ("throttle", "/groups/", {"times": 40, "retry_after": 1}),  # sub-requests inside $batch answers
    ("unavailable", "/$batch", {"times": 2}),  # 503 without Retry-After: backoff with jitter
    ("unavailable", "/subscribedSkus", {"times": 1, "status": 504, "retry_after": 2}),
)


def measure(fake: FakeGraph, key: str, batch_members: bool, reports_limit: int) -> dict:
    trust = ssl.create_default_context(cafile=fake.ca_file)
    credentials = GraphCredentials("bench-app", "bench-secret", fake.authority_host, scope=graph_scope(fake.base_url))
    policy = RetryPolicy(reports_limit=reports_limit)
    with GraphConnection(credentials, fake.base_url, policy, verify=trust) as connection:
        client = connection.tenant(key, fake.tenants()[key])
        started = time.perf_counter()
        read = read_tenant(client, batch_members=batch_members)
        seconds = time.perf_counter() - started
    return client.stats.as_json() | {
        "seconds": round(seconds, 2),
        "users": len(read.files["users"]),
        "groups": len(read.files["group_members"]),
        "incomplete": sorted(read.sources),
    }


def run(users: int, seed: int, reports_limit: int) -> dict:
    with tempfile.TemporaryDirectory() as folder:
        [tenant] = write_snapshots(Path(folder), 1, users, seed)
        with FakeGraph(Path(folder)) as fake:
            figures = {
                "batch": measure(fake, tenant.name, True, reports_limit),
                "no_batch": measure(fake, tenant.name, False, reports_limit),
            }
            for kind, path, options in FAULTS:
                fake.add_fault(kind, path, **options)
            figures["batch_throttled"] = measure(fake, tenant.name, True, reports_limit)
    return {"users": users, "faults": [f"{k} {p} {o}" for k, p, o in FAULTS], "scenarios": figures}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--reports-limit", type=int, default=5, help="requests per 10 s (GRAPH_REPORTS_LIMIT)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    result = run(args.users, args.seed, args.reports_limit)
    if args.json:
        print(json.dumps(result, indent=2))
        return
    print(f"one tenant of {args.users} users served by the local Graph, reports paced to {args.reports_limit} per 10 s")
    columns = ("requests", "pages", "retries", "throttled_waits", "waited_seconds", "paced_requests", "paced_seconds")
    columns += ("seconds", "users", "groups")
    print(f"{'scenario':<16}" + "".join(f"{c:>16}" for c in columns))
    for name, figures in result["scenarios"].items():
        print(f"{name:<16}" + "".join(f"{figures[c]:>16}" for c in columns))
    print("throttled scenario faults:", "; ".join(result["faults"]))


if __name__ == "__main__":
    main()
