"""A second data source in the pass: a tenant's Sophos Central snapshot is read under its own guard and
its entities written beside Microsoft 365's; a held Sophos source writes nothing while Microsoft 365 goes on."""

from datetime import UTC, datetime

from sqlalchemy import func, select

from mspbyte_dagster.lib.passes import PASS_STAGES
from mspbyte_dagster.lib.pipeline import PassOptions, run_tenant_pass
from mspbyte_dagster.lib.store.schema import data_sources, entities
from mspbyte_dagster_tests.snapshots import import_files, minimal_files

SOPHOS_ID = "6f7d2a4e-1b0c-4a39-9d55-2f0e8c7b1a11"
CAPTURED = "2026-11-01T00:00:00Z"


def sophos_files(endpoints: int, captured: str = CAPTURED) -> dict:
    return {
        "tenant": {
            "id": "contoso",
            "name": "Contoso",
            "integration": "sophos",
            "sophosTenantId": SOPHOS_ID,
            "dataRegion": "eu01",
            "apiHost": "https://api-eu01.central.sophos.com",
            "capturedAt": captured,
        },
        "endpoints": [
            {
                "id": f"ep-{n}",
                "type": "computer",
                "hostname": f"PC-{n}",
                "health": {"overall": "good"},
                "lastSeenAt": captured,
            }
            for n in range(endpoints)
        ],
        "firewalls": [{"id": "fw-1", "serialNumber": "SN1", "hostname": "gw", "status": {"connected": True}}],
        "firewall_upgrades": {
            "firewalls": [
                {"id": "fw-1", "serialNumber": "SN1", "firmwareVersion": "20.0", "upgradeToVersion": ["21.0"]}
            ],
            "firmwareVersions": [{"version": "21.0"}],
        },
        "firewall_licenses": [
            {
                "serialNumber": "SN1",
                "licenses": [
                    {"id": "l1", "licenseIdentifier": "XG-BASE", "perpetual": True},
                    {"id": "l2", "licenseIdentifier": "XG-NET", "perpetual": False, "endDate": "2026-11-20"},
                ],
            }
        ],
    }


def live(engine, entity_type: str) -> set[str]:
    with engine.connect() as conn:
        query = select(entities.c.external_id).where(
            entities.c.tenant == "contoso", entities.c.entity_type == entity_type, entities.c.deleted_at.is_(None)
        )
        return set(conn.execute(query).scalars())


def a_pass(engine):
    return run_tenant_pass(engine, "contoso", PASS_STAGES, PassOptions(now=lambda: datetime.now(UTC)))


def test_a_tenants_sophos_snapshot_is_read_and_its_entities_written_beside_microsoft_365(engine, tmp_path):
    import_files(engine, tmp_path / "m365", minimal_files())
    import_files(engine, tmp_path / "sophos", sophos_files(endpoints=3))
    result = a_pass(engine)
    assert result.status == "succeeded", result.reason
    assert result.stages["sophos_snapshot"]["data_source"] == "sophos" and not result.stages["sophos_snapshot"]["held"]
    assert result.stages["sophos_snapshot"]["counts"] == {
        "endpoints": 3,
        "firewalls": 1,
        "firewall_upgrades": 1,
        "firewall_licenses": 1,
    }
    assert (
        result.stages["entities"]["other_sources"]["sophos"]["created"] == 7
    )  # the tenant, 3 endpoints, 1 firewall, 2 licences
    assert live(engine, "endpoint") == {"ep-0", "ep-1", "ep-2"} and live(engine, "firewall_license") == {
        "SN1:l1",
        "SN1:l2",
    }
    with engine.connect() as conn:
        (firewall,) = conn.execute(select(entities.c.data).where(entities.c.entity_type == "firewall")).scalars()
        sources = dict(
            conn.execute(select(data_sources.c.integration, func.count()).group_by(data_sources.c.integration)).all()
        )
    assert firewall["upgradeCheck"]["upgradeToVersion"] == ["21.0"] and sources == {"microsoft365": 1, "sophos": 1}
    assert result.checks["sophos_empty_sync_guard"].passed and result.checks["empty_sync_guard"].passed


def test_a_sophos_drop_holds_only_the_sophos_source_until_it_is_real(engine, tmp_path):
    import_files(engine, tmp_path / "m365", minimal_files(users=3))
    import_files(engine, tmp_path / "sophos", sophos_files(endpoints=30))
    assert a_pass(engine).status == "succeeded"
    import_files(engine, tmp_path / "m365", minimal_files(users=4))
    import_files(engine, tmp_path / "sophos", sophos_files(endpoints=5, captured="2026-11-02T00:00:00Z"))
    for _ in range(2):  # the held source's count never becomes the baseline
        result = a_pass(engine)
        assert result.status == "succeeded", result.reason
        assert (
            result.stages["sophos_snapshot"]["held_reason"]
            == "endpoints fell from 30 to 5 (below half of the previous successful sync)"
        )
        assert not result.checks["sophos_empty_sync_guard"].passed and result.checks["empty_sync_guard"].passed
        assert "held" in result.stages["entities"]["other_sources"]["sophos"]
        assert len(live(engine, "endpoint")) == 30 and len(live(engine, "user")) == 4  # Microsoft 365 went on


def test_a_tenant_without_sophos_passes_as_before(engine, tmp_path):
    import_files(engine, tmp_path / "m365", minimal_files())
    result = a_pass(engine)
    assert result.status == "succeeded" and result.stages["sophos_snapshot"] == result.stages["sophos_snapshot"] | {
        "data_source": None
    }
    assert "other_sources" not in result.stages["entities"] and live(engine, "endpoint") == set()


def test_comparison_mode_reports_a_new_integration_as_new_path_only(engine, tmp_path):
    import_files(engine, tmp_path / "m365", minimal_files())
    import_files(engine, tmp_path / "sophos", sophos_files(endpoints=3))
    result = run_tenant_pass(engine, "contoso", PASS_STAGES, PassOptions(compare=True))
    assert result.status == "succeeded", result.reason
    assert result.comparison["new_path_only"] == ["sophos"] and not result.comparison["has_discrepancies"]
    assert "New path only (no legacy pattern): sophos." in result.comparison["report_markdown"]


def test_reports_show_sophos_figures_where_the_tenant_has_the_source(engine, tmp_path):
    from mspbyte_dagster.lib.passes import REPORT
    from mspbyte_dagster.lib.reports.fleet import fleet_posture

    import_files(engine, tmp_path / "m365", minimal_files())
    import_files(engine, tmp_path / "m365b", minimal_files("fabrikam"))
    import_files(engine, tmp_path / "sophos", sophos_files(endpoints=3))
    a_pass(engine)
    assert run_tenant_pass(engine, "fabrikam", PASS_STAGES, PassOptions()).status == "succeeded"
    report = run_tenant_pass(engine, "contoso", (REPORT,), PassOptions())
    assert report.stages[REPORT]["posture"]["sophos"]["endpoints"] == 3
    assert report.stages[REPORT]["posture"]["sophos"]["firewall_license_expiring"] == 1
    with engine.begin() as conn:
        frame = fleet_posture(conn).set_index("tenant")
    assert frame.loc["contoso", "sophos_endpoints"] == 3 and frame.loc["contoso", "sophos_firewalls"] == 1
    assert frame.loc["fabrikam"].isna()["sophos_endpoints"]  # no Sophos source: not known, not 0


def test_each_data_source_keeps_its_own_newest_snapshots(engine, tmp_path):
    from mspbyte_dagster.lib.store.schema import snapshots

    for _ in range(3):  # three Microsoft 365 snapshots, then three newer Sophos ones
        import_files(engine, tmp_path / "m365", minimal_files())
    for day in range(1, 4):
        import_files(engine, tmp_path / "sophos", sophos_files(endpoints=3, captured=f"2026-11-0{day}T00:00:00Z"))
    retention = PassOptions().retention.__class__(snapshots=2)
    result = run_tenant_pass(engine, "contoso", PASS_STAGES, PassOptions(retention=retention))
    assert result.status == "succeeded"
    with engine.connect() as conn:
        query = select(snapshots.c.data_source_id, func.count()).group_by(snapshots.c.data_source_id)
        kept = dict(conn.execute(query).all())
    assert sorted(kept.values()) == [2, 2]  # not the tenant's newest two: each source's
