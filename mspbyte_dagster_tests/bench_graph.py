"""What reading a large tenant from Graph costs: requests with and without `$batch`, wall time, and throttling.

    .venv/bin/python -m mspbyte_dagster_tests.bench_graph [--users 10000] [--json]

One synthetic tenant (as `mspbyte synth --tenants 1 --users N` writes it) is
served by the local Graph over HTTPS on 127.0.0.1 and read by the adapter with
its production retry policy, three times: group members through `$batch`, one
request per group, and `$batch` under injected throttling and outages.
"""

from __future__ import annotations

import argparse
import json
import ssl
import tempfile
import time
from pathlib import Path

from mspbyte_dagster.lib.adapters.microsoft365.auth import GraphCredentials, graph_scope
from mspbyte_dagster.lib.adapters.microsoft365.client import GraphConnection
from mspbyte_dagster.lib.adapters.microsoft365.fake_graph import FakeGraph
from mspbyte_dagster.lib.adapters.microsoft365.reader import read_tenant
from mspbyte_dagster.lib.synthetic import write_snapshots

# Injected in the throttled scenario: (kind, path prefix, options)
FAULTS = (
    ("throttle", "/users", {"times": 3, "retry_after": 1}),
    ("throttle", "/groups/", {"times": 40, "retry_after": 1}),  # sub-requests inside $batch answers
    ("unavailable", "/$batch", {"times": 2}),  # 503 without Retry-After: backoff with jitter
    ("unavailable", "/subscribedSkus", {"times": 1, "status": 504, "retry_after": 2}),
)


def measure(fake: FakeGraph, key: str, batch_members: bool) -> dict:
    trust = ssl.create_default_context(cafile=fake.ca_file)
    credentials = GraphCredentials("bench-app", "bench-secret", fake.authority_host, scope=graph_scope(fake.base_url))
    with GraphConnection(credentials, fake.base_url, verify=trust) as connection:
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


def run(users: int, seed: int) -> dict:
    with tempfile.TemporaryDirectory() as folder:
        [tenant] = write_snapshots(Path(folder), 1, users, seed)
        with FakeGraph(Path(folder)) as fake:
            figures = {"batch": measure(fake, tenant.name, True), "no_batch": measure(fake, tenant.name, False)}
            for kind, path, options in FAULTS:
                fake.add_fault(kind, path, **options)
            figures["batch_throttled"] = measure(fake, tenant.name, True)
    return {"users": users, "faults": [f"{k} {p} {o}" for k, p, o in FAULTS], "scenarios": figures}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    result = run(args.users, args.seed)
    if args.json:
        print(json.dumps(result, indent=2))
        return
    print(f"one tenant of {args.users} users served by the local Graph (page size 999)")
    columns = ("requests", "pages", "retries", "throttled_waits", "waited_seconds", "seconds", "users", "groups")
    print(f"{'scenario':<16}" + "".join(f"{c:>16}" for c in columns))
    for name, figures in result["scenarios"].items():
        print(f"{name:<16}" + "".join(f"{figures[c]:>16}" for c in columns))
    print("throttled scenario faults:", "; ".join(result["faults"]))


if __name__ == "__main__":
    main()
