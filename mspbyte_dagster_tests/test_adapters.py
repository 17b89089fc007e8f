"""The adapter contract (lib/adapters/base.py): an integration declares its files, entity types and
guard; the generic code reads them from the one registration."""

import json

import pytest

from mspbyte_dagster.lib.adapters import registry
from mspbyte_dagster.lib.adapters.base import EntitySource, Integration, Problem, SubResource
from mspbyte_dagster.lib.adapters.snapshot_files import SnapshotError, read_snapshot
from mspbyte_dagster.lib.entities import snapshot_records
from mspbyte_dagster.lib.model import STAGES
from mspbyte_dagster_tests.snapshots import minimal_files, write_folder


def test_microsoft365_is_registered_and_its_snapshot_asset_starts_the_pipeline():
    assert list(registry.INTEGRATIONS) == ["microsoft365"] and registry.DEFAULT.source_id == "m365"
    assert registry.DEFAULT.snapshot_asset == STAGES[0]
    assert registry.DEFAULT.snapshot_files[0] == "tenant" and "users" in registry.DEFAULT.data_files


def test_a_snapshot_of_no_registered_integration_is_refused_naming_the_known_ones(tmp_path):
    files = minimal_files()
    files["tenant"]["integration"] = "nonsense"
    with pytest.raises(SnapshotError) as refused:
        read_snapshot(write_folder(tmp_path / "in", files))
    assert "tenant.json field 'integration': 'nonsense' is no integration: use one of microsoft365" in str(
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
)


def test_entities_come_from_what_an_integration_declares(tmp_path, monkeypatch):
    monkeypatch.setitem(registry.INTEGRATIONS, "demo", DEMO)
    folder = tmp_path / "demo"
    folder.mkdir()
    documents = {
        "tenant": {"id": "contoso", "name": "Contoso", "integration": "demo", "capturedAt": "2026-11-01T00:00:00Z"},
        "things": [{"serial": "s1", "label": "Printer", "seenAt": "x"}, {"serial": "s2", "label": "Router"}],
        "thing_owners": {"s1": ["alice"]},
        "ignored": [1, 2],
    }
    for stem, content in documents.items():
        (folder / f"{stem}.json").write_text(json.dumps(content))
    snapshot = read_snapshot(folder)
    assert snapshot.integration is DEMO and set(snapshot.files) == {"things", "thing_owners"}
    assert snapshot.counts() == {"things": 2, "thing_owners": 1} and snapshot.missing() == []
    records = snapshot_records(snapshot)
    assert [(r.external_id, r.display_name, r.data.get("owners")) for r in records["thing"]] == [
        ("s1", "Printer", ["alice"]),
        ("s2", "Router", []),
    ]
    assert records["tenant"][0].data == {"id": "contoso", "name": "Contoso", "integration": "demo"}
