"""Tokens are asked for the Graph they are used on: national clouds refuse public-cloud tokens."""

from __future__ import annotations

import ssl
from urllib.parse import parse_qs

import httpx
import pytest

from mspbyte_dagster.defs.resources import GraphResource
from mspbyte_dagster.lib.adapters.microsoft365.auth import GraphCredentials, TenantTokens, graph_scope
from mspbyte_dagster_tests.graph_fixtures import CLIENT_ID, SECRET, synthetic_graph

graph = pytest.fixture(synthetic_graph, name="graph")

TENANT = "synth-3-000"


@pytest.mark.parametrize(
    ("base_url", "scope"),
    [
        ("https://graph.microsoft.com/v1.0", "https://graph.microsoft.com/.default"),
        ("https://graph.microsoft.us/v1.0", "https://graph.microsoft.us/.default"),
        ("https://microsoftgraph.chinacloudapi.cn/v1.0", "https://microsoftgraph.chinacloudapi.cn/.default"),
        ("https://127.0.0.1:8443/v1.0", "https://127.0.0.1:8443/.default"),
    ],
)
def test_the_scope_is_the_graph_host_with_default(base_url, scope):
    assert graph_scope(base_url) == scope


def test_a_base_url_without_scheme_or_host_is_refused():
    with pytest.raises(ValueError, match="graph.microsoft.us/v1.0"):
        graph_scope("graph.microsoft.us/v1.0")


def test_the_token_endpoint_is_asked_for_the_derived_scope(graph):
    asked = []

    def record_token_request(request: httpx.Request) -> None:
        if request.url.path.endswith("/oauth2/v2.0/token"):
            asked.append(parse_qs(request.content.decode())["scope"])

    credentials = GraphCredentials(CLIENT_ID, SECRET, graph.authority_host, scope=graph_scope(graph.base_url))
    trust = ssl.create_default_context(cafile=graph.ca_file)
    with httpx.Client(verify=trust, event_hooks={"request": [record_token_request]}) as http:
        assert TenantTokens(credentials, TENANT, graph.tenants()[TENANT], http).token()
    assert asked == [[graph_scope(graph.base_url)]]
    assert not graph_scope(graph.base_url).startswith("https://graph.microsoft.com")


def test_the_resource_takes_the_scope_from_graph_base_url(monkeypatch):
    for name, value in {
        "GRAPH_CLIENT_ID": CLIENT_ID,
        "GRAPH_CLIENT_SECRET": SECRET,
        "GRAPH_AUTHORITY_HOST": "https://login.microsoftonline.us",
        "GRAPH_BASE_URL": "https://graph.microsoft.us/v1.0",
    }.items():
        monkeypatch.setenv(name, value)
    resource = GraphResource()
    try:
        assert resource.connection().credentials.scope == "https://graph.microsoft.us/.default"
    finally:
        resource.connection().close()
