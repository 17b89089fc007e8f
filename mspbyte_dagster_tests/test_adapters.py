"""The adapter contract (lib/adapters/base.py): an integration declares its files, entity types and
guard; the generic code reads them from the one registration."""

import json

import pytest

from mspbyte_dagster.lib.adapters import registry
from mspbyte_dagster.lib.adapters.base import EntitySource, Integration, Problem, SubResource
from mspbyte_dagster.lib.adapters.snapshot_files import SnapshotError, read_snapshot
from mspbyte_dagster.lib.entities import snapshot_records
from mspbyte_dagster.lib.model import STAGES
from mspbyte_dagster_tests.snapshots import minimal_files, mspbyte, write_folder


def test_microsoft365_is_registered_and_its_snapshot_asset_starts_the_pipeline():
    assert list(registry.INTEGRATIONS) == ["microsoft365", "sophos"] and registry.DEFAULT.source_id == "m365"
    assert registry.DEFAULT.snapshot_asset == STAGES[0]
    assert registry.DEFAULT.snapshot_files[0] == "tenant" and "users" in registry.DEFAULT.data_files


def test_a_snapshot_of_no_registered_integration_is_refused_naming_the_known_ones(tmp_path):
    files = minimal_files()
    files["tenant"]["integration"] = "nonsense"
    with pytest.raises(SnapshotError) as refused:
        read_snapshot(write_folder(tmp_path / "in", files))
    assert "tenant.json field 'integration': 'nonsense' is no integration: use one of microsoft365, sophos" in str(
        refused.value
    )


def test_a_snapshot_names_its_integration_and_microsoft365_is_the_default(tmp_path):
    files = minimal_files()
    assert read_snapshot(write_folder(tmp_path / "a", files)).integration is registry.DEFAULT
    files["tenant"]["integration"] = "microsoft365"
    assert read_snapshot(write_folder(tmp_path / "b", files)).integration is registry.DEFAULT


def _things(stem: str, content: object) -> list[Problem]:
    return [] if isinstance(content, (list, dict)) else [Problem(stem, "must hold JSON")]


DEMO = Integration(
    name="demo",
    source_id="demo",
    data_files=("things", "thing_owners"),
    content_problems=_things,
    count=lambda stem, content: len(content),
    entity_sources={"thing": EntitySource("things", "serial", "label", volatile=("seenAt",))},
    sub_resources=(SubResource("thing", "thing_owners", "owners", listed=True),),
    owners=lambda snapshot, stem: snapshot.files[stem],
    binding="demoId",
)


def demo_folder(tmp_path, demo_id: str = "d-1", key: str = "contoso"):
    folder = tmp_path / f"demo-{demo_id}-{key}-{len(list(tmp_path.glob('demo-*')))}"
    folder.mkdir()
    documents = {
        "tenant": {
            "id": key,
            "name": "Contoso",
            "integration": "demo",
            "demoId": demo_id,
            "capturedAt": "2026-11-01T00:00:00Z",
        },
        "things": [{"serial": "s1", "label": "Printer", "seenAt": "x"}, {"serial": "s2", "label": "Router"}],
        "thing_owners": {"s1": ["alice"]},
        "ignored": [1, 2],
    }
    for stem, content in documents.items():
        (folder / f"{stem}.json").write_text(json.dumps(content))
    return folder


@pytest.fixture
def demo(monkeypatch):
    monkeypatch.setitem(registry.INTEGRATIONS, "demo", DEMO)
    return DEMO


def test_entities_come_from_what_an_integration_declares(tmp_path, demo):
    snapshot = read_snapshot(demo_folder(tmp_path))
    assert snapshot.integration is DEMO and set(snapshot.files) == {"things", "thing_owners"}
    assert snapshot.counts() == {"things": 2, "thing_owners": 1} and snapshot.missing() == []
    records = snapshot_records(snapshot)
    assert [(r.external_id, r.display_name, r.data.get("owners")) for r in records["thing"]] == [
        ("s1", "Printer", ["alice"]),
        ("s2", "Router", []),
    ]
    assert records["tenant"][0].data == {"id": "contoso", "name": "Contoso", "integration": "demo", "demoId": "d-1"}


def sources(env) -> dict[str, tuple]:
    from sqlalchemy import select

    from mspbyte_dagster.lib.store.db import engine_for
    from mspbyte_dagster.lib.store.schema import data_sources

    with engine_for(env["DATABASE_URL"]).connect() as conn:
        c = data_sources.c
        rows = conn.execute(select(c.integration, c.source_id, c.mode, c.params, c.current_snapshot_id))
        return {
            row.integration: (row.source_id, row.mode, row.params, row.current_snapshot_id is not None) for row in rows
        }


def test_another_integrations_snapshot_joins_a_registered_tenant_as_its_own_data_source(app_env, tmp_path, demo):
    code, _, err = mspbyte("tenants", "import", str(demo_folder(tmp_path)))
    assert code == 2 and "tenant 'contoso' is not registered" in err and "mspbyte tenants import" in err
    m365 = write_folder(tmp_path / "m365", minimal_files())
    assert mspbyte("tenants", "import", str(demo_folder(tmp_path, "d-1", "contoso")), str(m365))[0] == 0  # any order
    assert sources(app_env) == {
        "microsoft365": ("m365", "files", None, True),
        "demo": ("demo", "files", {"demoId": "d-1"}, True),
    }
    code, _, err = mspbyte("tenants", "import", str(demo_folder(tmp_path, "d-2")))
    assert code == 2 and "demo data source is demoId d-1, not d-2: refused" in err


def test_tenants_add_source_links_a_tenant_to_its_customer_elsewhere(app_env, tmp_path, demo):
    assert mspbyte("tenants", "import", str(write_folder(tmp_path / "m365", minimal_files())))[0] == 0
    code, _, err = mspbyte("tenants", "add-source", "contoso", "demo", "--param", "other=1")
    assert code == 2 and "takes exactly --param demo_id=VALUE (or demoId=VALUE)" in err
    assert mspbyte("tenants", "add-source", "contoso", "nothing", "--param", "demoId=1")[0] == 2
    assert mspbyte("tenants", "add-source", "nobody", "demo", "--param", "demoId=d-9")[0] == 2
    code, out, _ = mspbyte("tenants", "add-source", "contoso", "demo", "--param", "demoId=d-9")
    assert code == 0 and "demo data source demo with demoId=d-9" in out
    assert sources(app_env)["demo"] == ("demo", "api", {"demoId": "d-9"}, False)
    code, _, err = mspbyte("tenants", "add-source", "contoso", "demo", "--param", "demoId=d-8")
    assert code == 2 and "demo data source is demoId d-9, not d-8: refused, nothing was changed" in err
    code, _, err = mspbyte("tenants", "import", str(demo_folder(tmp_path, "d-1")))
    assert code == 2 and "not d-1" in err
