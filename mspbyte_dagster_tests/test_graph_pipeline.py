"""Graph-backed tenants in the pipeline, in Dagster and at the command line; the secret stays secret."""

from __future__ import annotations

import importlib
import json
import logging
import os
import re
import ssl
import subprocess
import sys
import time
import zlib
from functools import partial
from pathlib import Path

import pytest
from dagster import AssetKey, DagsterEventType, DagsterInstance, EnvVar
from dagster_prometheus import PrometheusResource
from sqlalchemy import select

from mspbyte_dagster.defs.partitions import RANGE_END_TAG, RANGE_START_TAG, TENANTS
from mspbyte_dagster.defs.resources import GraphResource, resources_from_env
from mspbyte_dagster.lib.adapters.microsoft365.auth import GraphCredentials, graph_scope
from mspbyte_dagster.lib.adapters.microsoft365.client import GraphConnection, RetryPolicy
from mspbyte_dagster.lib.adapters.microsoft365.files import DATA_FILES
from mspbyte_dagster.lib.adapters.microsoft365.reader import read_tenant
from mspbyte_dagster.lib.graph_sync import refresh_graph_snapshot
from mspbyte_dagster.lib.pipeline import PassOptions, run_tenant_pass
from mspbyte_dagster.lib.store.db import engine_for
from mspbyte_dagster.lib.store.schema import entities, pipeline_ledger, quarantined_records, snapshot_files
from mspbyte_dagster_tests.graph_fixtures import (
    CLIENT_ID,
    SECRET,
    connect,
    register_graph_tenant,
    synthetic_graph,
    tenant_doc,
    use_graph,
)
from mspbyte_dagster_tests.snapshots import minimal_files, mspbyte, write_folder
from mspbyte_dev.fake_graph import FakeGraph

graph = pytest.fixture(synthetic_graph, name="graph")

GOOD, FILES, FAILING, ALSO_GOOD = "synth-3-000", "synth-3-001", "synth-3-002", "synth-3-003"


def add_from_folder(folder: Path, azure_id: str | None = None) -> None:
    doc = tenant_doc(folder)
    code, _, err = mspbyte(
        "tenants",
        "add",
        "--tenant",
        doc["id"],
        "--name",
        doc["name"],
        "--azure-tenant-id",
        azure_id or doc["azureTenantId"],
    )
    assert code == 0, err


def ledger_rows(tenant: str) -> list:
    with engine_for(os.environ["DATABASE_URL"]).connect() as conn:
        query = select(pipeline_ledger).where(pipeline_ledger.c.tenant == tenant).order_by(pipeline_ledger.c.id)
        return list(conn.execute(query))


@pytest.fixture
def mixed_world(app_env, monkeypatch, graph, synth_dir):
    """Graph tenants and a files tenant, in one partition range; one Graph tenant's Graph always answers 503."""
    use_graph(monkeypatch, graph)
    monkeypatch.setenv("GRAPH_CLIENT_ID", CLIENT_ID)
    add_from_folder(synth_dir / GOOD)
    assert mspbyte("tenants", "import", str(synth_dir / FILES))[0] == 0
    add_from_folder(synth_dir / FAILING)
    add_from_folder(synth_dir / ALSO_GOOD)
    graph.add_fault("unavailable", times=None, retry_after=0, tenant=FAILING)
    graph.add_fault("throttle", "/users", times=1, retry_after=1, tenant=ALSO_GOOD)
    return graph


@pytest.mark.slow
def test_a_graph_tenant_that_keeps_failing_fails_its_pass_alone(mixed_world):
    from mspbyte_dagster.definitions import defs

    instance = DagsterInstance.get()
    assert instance.get_dynamic_partitions(TENANTS) == [GOOD, FILES, FAILING, ALSO_GOOD]
    result = defs.resolve_job_def("tenant_pipeline").execute_in_process(
        instance=instance, tags={RANGE_START_TAG: GOOD, RANGE_END_TAG: ALSO_GOOD}, raise_on_error=False
    )
    assert not result.success
    failure = next(e for e in result.all_events if e.event_type == DagsterEventType.STEP_FAILURE)
    message = failure.event_specific_data.error.message
    assert FAILING in message and GOOD not in message and FILES not in message
    for asset in ("m365_snapshot", "entities", "alerts"):
        assert instance.get_materialized_partitions(AssetKey(asset)) == {GOOD, FILES, ALSO_GOOD}
    failed = ledger_rows(FAILING)[-1]
    assert failed.status == "failed" and f"tenant {FAILING}" in failed.reason and "HTTP 503" in failed.reason

    figures = {
        event.partition: event.event_specific_data.materialization.metadata
        for event in result.get_asset_materialization_events()
        if event.asset_key == AssetKey("m365_snapshot")
    }
    throttled = figures[ALSO_GOOD]
    assert throttled["graph_pages"].value >= len(DATA_FILES) and throttled["graph_requests"].value >= len(DATA_FILES)
    assert throttled["graph_retries"].value == 1 and throttled["graph_throttled_waits"].value == 1
    assert throttled["graph_waited_seconds"].value >= 1 and throttled["quarantined_records"].value == 0
    assert "graph_requests" not in figures[FILES]  # read from its imported folder


@pytest.mark.slow
def test_the_client_secret_never_reaches_logs_metadata_run_config_or_errors(
    definitions_reloaded_after, mixed_world, monkeypatch, caplog, capfd, tmp_path
):
    definitions = definitions_reloaded_after
    caplog.set_level(logging.DEBUG)
    write_folder(tmp_path / "ghost", minimal_files("ghost"))  # a tenant the local Graph does not know: no token
    add_from_folder(tmp_path / "ghost", azure_id="99999999-8888-4777-8666-555555555555")
    importlib.reload(definitions)  # GRAPH_CLIENT_SECRET set: the resource takes it as an EnvVar
    assert isinstance(definitions.defs.resources["graph"].client_secret, EnvVar)
    code, out, err = mspbyte("run", "--all")
    assert code == 1 and f"{FAILING} (failed)" in err and "ghost (failed)" in err
    assert "GraphAuthError: tenant ghost: the authority" in ledger_rows("ghost")[-1].reason
    assert ledger_rows(GOOD)[-1].status == "succeeded"  # the secret was used: Graph handed out tokens

    instance = DagsterInstance.get()
    runs = instance.get_runs()
    seen = [out, err, *capfd.readouterr(), caplog.text, repr([r.args for r in caplog.records])]
    seen += [repr(run.run_config) + repr(run.tags) for run in runs]
    seen += [repr(instance.all_logs(run.run_id)) for run in runs]
    seen += [repr(row) for key in (GOOD, FILES, FAILING, ALSO_GOOD, "ghost") for row in ledger_rows(key)]
    with engine_for(os.environ["DATABASE_URL"]).connect() as conn:  # the snapshots Graph gave, as stored
        seen += [
            zlib.decompress(content).decode() for content in conn.execute(select(snapshot_files.c.content)).scalars()
        ]
    seen += [
        repr(GraphResource(client_id=CLIENT_ID, client_secret=SECRET)),
        repr(GraphCredentials("a", SECRET, scope=graph_scope("https://graph.microsoft.com/v1.0"))),
    ]
    assert all(SECRET not in text for text in seen)
    assert any("tenant ghost: the authority" in text for text in seen)


def test_a_graph_tenant_without_credentials_fails_naming_the_variables(engine, tmp_path, monkeypatch, synth_dir):
    for name in ("GRAPH_CLIENT_ID", "GRAPH_CLIENT_SECRET"):
        monkeypatch.delenv(name, raising=False)
    register_graph_tenant(engine, synth_dir / GOOD)
    options = PassOptions(refresh_snapshot=GraphResource().snapshot_refresher())
    result = run_tenant_pass(engine, GOOD, ("m365_snapshot",), options)
    assert result.status == "failed"
    assert "GRAPH_CLIENT_ID and GRAPH_CLIENT_SECRET not set" in result.reason


@pytest.mark.slow
def test_a_quarantined_user_is_not_swept_while_its_file_is_incomplete(engine, tmp_path):
    files = minimal_files("contoso", users=30)
    served = write_folder(tmp_path / "graph" / "contoso", files)
    register_graph_tenant(engine, served)

    def run_pass(fake):
        with connect(fake) as connection:
            refresh = partial(refresh_graph_snapshot, connect=lambda: connection)
            return run_tenant_pass(
                engine, "contoso", ("m365_snapshot", "entities"), PassOptions(refresh_snapshot=refresh)
            )

    def live_users():
        with engine.connect() as conn:
            query = select(entities.c.external_id).where(
                entities.c.tenant == "contoso", entities.c.entity_type == "user", entities.c.deleted_at.is_(None)
            )
            return set(conn.execute(query).scalars())

    with FakeGraph(tmp_path / "graph", client_secret=SECRET) as fake:
        assert run_pass(fake).status == "succeeded" and len(live_users()) == 30
        files["users"][5]["accountEnabled"] = "yes"  # u5 breaks the contract
        del files["users"][6]  # u6 is gone, but users are not read whole: nothing is swept
        write_folder(served, files)
        fake.reload()
        second = run_pass(fake)
        assert second.status == "succeeded" and live_users() == {f"u{n}" for n in range(30)}
        snapshot_figures = second.stages["m365_snapshot"]
        assert snapshot_figures["quarantined_records"] == 1 and "users" in snapshot_figures["incomplete_sources"]
        with engine.connect() as conn:
            [row] = conn.execute(select(quarantined_records)).all()
        assert row.source_file == "users" and json.loads(row.raw)["id"] == "u5"
        files["users"][5]["accountEnabled"] = True
        write_folder(served, files)
        fake.reload()
        assert run_pass(fake).status == "succeeded" and "u6" not in live_users() and len(live_users()) == 29


def test_tenants_add_registers_a_graph_tenant_and_prints_the_consent_url(app_env, monkeypatch):
    monkeypatch.setenv("GRAPH_CLIENT_ID", CLIENT_ID)
    monkeypatch.delenv("GRAPH_CONSENT_REDIRECT_URI", raising=False)
    code, out, err = mspbyte(
        "tenants",
        "add",
        "--tenant",
        "acme",
        "--name",
        "Acme & <Co>",
        "--azure-tenant-id",
        "72F988BF-86F1-41AF-91AB-2D7CD011DB47",
    )
    assert code == 0, err
    guid = "72f988bf-86f1-41af-91ab-2d7cd011db47"
    assert f"https://login.microsoftonline.com/{guid}/adminconsent?client_id={CLIENT_ID}" in out.splitlines()
    [warning] = [line for line in err.splitlines() if "GRAPH_CONSENT_REDIRECT_URI" in line]
    assert "is not set" in warning and "AADSTS500113" in warning
    assert DagsterInstance.get().get_dynamic_partitions(TENANTS) == ["acme"]
    [listed] = json.loads(mspbyte("tenants", "list", "--json")[1])
    assert listed["azure_tenant_id"] == guid and listed["name"] == "Acme & <Co>"
    assert [(s["id"], s["mode"]) for s in listed["data_sources"]] == [("m365", "graph")]

    code, _, err = mspbyte("tenants", "add", "--tenant", "other", "--name", "Other", "--azure-tenant-id", guid)
    assert code == 2 and "is already tenant 'acme'" in err


def test_tenants_add_puts_the_consent_redirect_uri_into_the_consent_url(app_env, monkeypatch):
    monkeypatch.setenv("GRAPH_CLIENT_ID", CLIENT_ID)
    monkeypatch.setenv("GRAPH_CONSENT_REDIRECT_URI", "https://portal.msp.example/consented?via=entra")
    guid = "72f988bf-86f1-41af-91ab-2d7cd011db47"
    code, out, err = mspbyte("tenants", "add", "--tenant", "acme", "--name", "Acme", "--azure-tenant-id", guid)
    assert code == 0, err
    redirect = "https%3A%2F%2Fportal.msp.example%2Fconsented%3Fvia%3Dentra"
    consent = f"https://login.microsoftonline.com/{guid}/adminconsent?client_id={CLIENT_ID}&redirect_uri={redirect}"
    assert consent in out.splitlines()
    assert "GRAPH_CONSENT_REDIRECT_URI" not in err


@pytest.mark.parametrize(
    ("key", "azure_id", "complaint"),
    [
        ("acme corp", "72f988bf-86f1-41af-91ab-2d7cd011db47", "does not match"),
        ("acme", "not-a-guid", "is not a GUID"),
        ("acme", "{72f988bf-86f1-41af-91ab-2d7cd011db47}", "8-4-4-4-12"),
    ],
)
def test_tenants_add_refuses_a_bad_key_or_guid_and_registers_nothing(app_env, monkeypatch, key, azure_id, complaint):
    monkeypatch.setenv("GRAPH_CLIENT_ID", CLIENT_ID)
    code, _, err = mspbyte("tenants", "add", "--tenant", key, "--name", "Acme", "--azure-tenant-id", azure_id)
    assert code == 2 and complaint in err
    assert json.loads(mspbyte("tenants", "list", "--json")[1]) == []
    assert DagsterInstance.get().get_dynamic_partitions(TENANTS) == []


def test_tenants_add_without_the_app_id_names_the_variable(app_env, monkeypatch):
    monkeypatch.delenv("GRAPH_CLIENT_ID", raising=False)
    code, _, err = mspbyte(
        "tenants",
        "add",
        "--tenant",
        "acme",
        "--name",
        "Acme",
        "--azure-tenant-id",
        "72f988bf-86f1-41af-91ab-2d7cd011db47",
    )
    assert code == 2 and "GRAPH_CLIENT_ID is not set" in err


def test_resources_are_fed_by_env_vars_only_when_set(monkeypatch):
    for name in ("GRAPH_CLIENT_SECRET", "DATABASE_URL", "PROMETHEUS_PUSHGATEWAY_URL"):
        monkeypatch.delenv(name, raising=False)
    unset = resources_from_env()
    assert unset["graph"].client_secret is None and unset["database"].database_url is None
    assert not isinstance(unset["prometheus"], PrometheusResource)  # a resource of None: nothing pushed
    monkeypatch.setenv("GRAPH_CLIENT_SECRET", SECRET)
    monkeypatch.setenv("DATABASE_URL", "postgresql://app:pw-value@db/mspbyte")
    monkeypatch.setenv("PROMETHEUS_PUSHGATEWAY_URL", "http://gateway:9091")
    fed = resources_from_env()
    assert fed["graph"].client_secret == EnvVar("GRAPH_CLIENT_SECRET") and SECRET not in repr(fed["graph"])
    assert fed["database"].database_url == EnvVar("DATABASE_URL") and "pw-value" not in repr(fed["database"])
    assert isinstance(fed["prometheus"], PrometheusResource)
    assert fed["prometheus"].gateway == EnvVar("PROMETHEUS_PUSHGATEWAY_URL")


@pytest.mark.slow
def test_the_fake_graph_command_serves_folders_with_its_switches(synth_dir):
    command = [
        str(Path(sys.executable).parent / "mspbyte"),
        "dev",
        "fake-graph",
        str(synth_dir),
        "--port",
        "0",
        "--page-size",
        "5",
        "--throttle",
        "/users",
        "--retry-after",
        "1",
        "--no-p1",
        FILES,
    ]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        lines = []
        while not lines or not lines[-1].startswith("Ctrl-C"):
            line = process.stdout.readline()
            assert line, f"fake-graph ended early: {process.stderr.read()}"
            lines.append(line.strip())
        exports = dict(re.findall(r"export (\w+)=(\S+)", "\n".join(lines)))
        azure_ids = dict(re.findall(r"^(\S+)  azure tenant (\S+)$", "\n".join(lines), re.MULTILINE))
        base_url = exports["GRAPH_BASE_URL"]
        credentials = GraphCredentials(CLIENT_ID, "any", exports["GRAPH_AUTHORITY_HOST"], scope=graph_scope(base_url))
        trust = ssl.create_default_context(cafile=exports["SSL_CERT_FILE"])
        unpaced = RetryPolicy(reports_limit=1000)  # five records a page make many report pages
        with GraphConnection(credentials, base_url, unpaced, verify=trust) as connection:
            started = time.monotonic()
            client = connection.tenant(GOOD, azure_ids[GOOD])
            read = read_tenant(client)
            assert time.monotonic() - started >= 1 and client.stats.throttled_waits == 1
            assert len(read.files["users"]) == 40 and client.stats.pages > 40 / 5
            without_p1 = read_tenant(connection.tenant(FILES, azure_ids[FILES]))
            assert without_p1.sources["signInActivity"]["complete"] is False
    finally:
        process.terminate()
        process.wait(timeout=30)
