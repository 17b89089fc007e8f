"""The local Microsoft Graph of the Graph adapter tests: a real HTTPS server on 127.0.0.1, and ways into it."""

from __future__ import annotations

import json
import ssl
from pathlib import Path

from mspbyte_dagster.lib.adapters.microsoft365.auth import GraphCredentials, graph_scope
from mspbyte_dagster.lib.adapters.microsoft365.client import DEFAULT_LIMITS, GraphConnection, Limits, RetryPolicy
from mspbyte_dagster.lib.adapters.microsoft365.reader import read_tenant
from mspbyte_dagster.lib.graph_sync import add_graph_tenant
from mspbyte_dev.fake_graph import FakeGraph

CLIENT_ID = "0a1b2c3d-0000-4000-8000-00000000c1d0"
SECRET = "Zq7~graph-secret.never-shown~0x5EC"
# Short waits so retries are quick; Retry-After from the fake still wins. Seven records a page make
# many report pages: paced at 1,000 per 10 s, they do not wait (the pacing test sets its own).
QUICK = RetryPolicy(max_attempts=4, base_delay=0.05, max_delay=0.2, max_total_wait=60, timeout=10, reports_limit=1000)
REPORTS_LIMIT = "1000"  # GRAPH_REPORTS_LIMIT for `mspbyte` and Dagster runs


def synthetic_graph(synth_dir):
    """The four synthetic tenants served as Graph, seven records a page so every collection pages.

    A test module makes it its `graph` fixture: `graph = pytest.fixture(synthetic_graph, name="graph")`.
    """
    with FakeGraph(synth_dir, page_size=7, client_secret=SECRET) as fake:
        yield fake


def connect(
    fake: FakeGraph, policy: RetryPolicy = QUICK, secret: str = SECRET, limits: Limits = DEFAULT_LIMITS
) -> GraphConnection:
    credentials = GraphCredentials(CLIENT_ID, secret, fake.authority_host, scope=graph_scope(fake.base_url))
    trust = ssl.create_default_context(cafile=fake.ca_file)
    return GraphConnection(credentials, fake.base_url, policy, limits, verify=trust)


def read(fake: FakeGraph, key: str = "synth-3-000", policy: RetryPolicy = QUICK, **options):
    """One tenant read through the adapter (the full-setup synthetic tenant by default): (what it read,
    its client with the figures)."""
    with connect(fake, policy) as connection:
        client = connection.tenant(key, fake.tenants()[key])
        return read_tenant(client, **options), client


def tenant_doc(folder: Path) -> dict:
    return json.loads((folder / "tenant.json").read_text(encoding="utf-8"))


def folder_files(folder: Path) -> dict[str, object]:
    """Every file of a snapshot folder, parsed."""
    return {path.stem: json.loads(path.read_text(encoding="utf-8")) for path in sorted(folder.glob("*.json"))}


def register_graph_tenant(engine, folder: Path) -> dict:
    """Register the folder's tenant as Graph-backed, under its own key, name and azure id."""
    doc = tenant_doc(folder)
    add_graph_tenant(
        engine, doc["id"], doc["name"], doc["azureTenantId"], client_id=CLIENT_ID, authority_host="https://login.test"
    )
    return doc


def use_graph(monkeypatch, fake: FakeGraph) -> None:
    """The environment `mspbyte` and Dagster runs read Graph from (the fake's certificate trusted by httpx)."""
    for name, value in {
        "GRAPH_CLIENT_ID": CLIENT_ID,
        "GRAPH_CLIENT_SECRET": SECRET,
        "GRAPH_AUTHORITY_HOST": fake.authority_host,
        "GRAPH_BASE_URL": fake.base_url,
        "SSL_CERT_FILE": str(fake.ca_file),
        "GRAPH_REPORTS_LIMIT": REPORTS_LIMIT,
    }.items():
        monkeypatch.setenv(name, value)
