"""Issue #20, done when: a synthetic fleet with both sources runs through `mspbyte run --all` and through
the sync sensor (an event of a tenant's Sophos data source); every new alert type appears, and a tenant
without Sophos runs as before."""

import json
import time

import pytest
from dagster import AssetKey, DagsterInstance

from mspbyte_dagster.lib.adapters.sophos.analysis import ALERT_TYPES
from mspbyte_dagster_tests.snapshots import mspbyte
from mspbyte_dagster_tests.test_sync_sensor import streams, sync_runs, tick, window  # noqa: F401 (fixtures)

pytestmark = pytest.mark.slow


@pytest.fixture
def fleet(app_env, tmp_path):
    code, printed, err = mspbyte(
        "synth",
        "--tenants",
        "4",
        "--users",
        "40",
        "--seed",
        "3",
        "--sources",
        "m365,sophos",
        "--out",
        str(tmp_path / "synth"),
    )
    assert code == 0, err
    folders = printed.split()
    assert len(folders) == 8 and sum(folder.endswith("-sophos") for folder in folders) == 4
    assert mspbyte("tenants", "import", *folders[:3], *folders[4:7])[0] == 0  # the fourth tenant: no Sophos
    assert mspbyte("tenants", "import", folders[3])[0] == 0
    return sorted(folder.rsplit("/", 1)[1] for folder in folders[:4])


def test_a_fleet_with_both_sources_runs_through_mspbyte_run_all(fleet):
    code, _, err = mspbyte("run", "--all")
    assert code == 0, err
    listed = json.loads(mspbyte("alerts", "list", "--json")[1])
    fired = {row["alert_type"] for row in listed}
    assert set(ALERT_TYPES) <= fired
    without = fleet[3]
    assert not {row["alert_type"] for row in listed if row["tenant"] == without} & set(ALERT_TYPES)
    assert {row["alert_type"] for row in listed if row["tenant"] == without}  # its Microsoft 365 alerts, as before
    instance = DagsterInstance.get()
    materialized = {
        record.partition_key
        for record in instance.fetch_materializations(AssetKey("sophos_snapshot"), limit=100).records
    }
    assert materialized == set(fleet)


def test_a_sophos_sync_event_requests_its_tenants_run(fleet, streams, app_env, window):  # noqa: F811
    instance = DagsterInstance.get()
    tenant = fleet[0]
    code, out, err = mspbyte("events", "publish", "--tenant", tenant, "--data-source", "sophos", "--json")
    assert code == 0, err
    published = json.loads(out)
    assert (
        published["subject"].endswith(f"mspbyte.sync.{tenant}.sophos") and published["event"]["integration"] == "sophos"
    )
    time.sleep(window)
    result = tick(instance)
    assert sync_runs(result) == {f"sync:{tenant}:{published['sequence']}": 1}
    (request,) = result.run_requests
    assert request.tags["mspbyte/sources"] == "sophos"  # the run refreshes the source that synced


def test_an_api_read_sophos_source_is_refreshed_from_sophos_central_by_the_pass(
    definitions_reloaded_after, app_env, tmp_path, monkeypatch
):
    from mspbyte_dev.fake_sophos import FakeSophos

    out = tmp_path / "synth"
    code, printed, err = mspbyte(
        "synth", "--tenants", "1", "--users", "40", "--seed", "5", "--sources", "m365,sophos", "--out", str(out)
    )
    m365, sophos = printed.split()
    assert mspbyte("tenants", "import", m365)[0] == 0  # the Sophos folder is what the fake serves, not imported
    tenant = m365.rsplit("/", 1)[1]
    secret = "sophos-S3cret-77"
    with FakeSophos(out, page_size=5, client_id="partner-app", client_secret=secret) as fake:
        customer = json.loads((out / f"{tenant}-sophos" / "tenant.json").read_text())["sophosTenantId"]
        for name, value in {
            "SOPHOS_CLIENT_ID": "partner-app",
            "SOPHOS_CLIENT_SECRET": secret,
            "SOPHOS_AUTH_URL": fake.url,
            "SOPHOS_GLOBAL_URL": fake.url,
            "SSL_CERT_FILE": str(fake.ca_file),
        }.items():
            monkeypatch.setenv(name, value)
        assert mspbyte("tenants", "add-source", tenant, "sophos", "--param", f"sophos_tenant_id={customer}")[0] == 0
        code, out_text, err = mspbyte("run", "--tenant", tenant)
    assert code == 0, err
    listed = json.loads(mspbyte("alerts", "list", "--tenant", tenant, "--json")[1])
    assert {row["alert_type"] for row in listed} & set(ALERT_TYPES)
    instance = DagsterInstance.get()
    (record,) = instance.fetch_materializations(AssetKey("sophos_snapshot"), limit=1).records
    metadata = record.asset_materialization.metadata
    assert metadata["data_source"].value == "sophos" and metadata["counts"].value["endpoints"] == 20
    assert metadata["sophos_requests"].value > 0  # the read's figures, on the source's own asset
    logs = [str(entry) for run in instance.get_runs() for entry in instance.all_logs(run.run_id)]
    assert all(secret not in text for text in logs) and secret not in out_text + err
