"""The pipeline spine in Dagster: many tenants per run, failure isolation, the guard, subsets."""

import pytest
from dagster import AssetKey, AssetRecordsFilter, DagsterEventType, DagsterInstance
from sqlalchemy import func, select, text

from mspbyte_dagster.definitions import defs
from mspbyte_dagster.defs.partitions import RANGE_END_TAG, RANGE_START_TAG, TENANTS
from mspbyte_dagster.lib.model import SEVERITY_RANK
from mspbyte_dagster.lib.pipeline import STAGES, PassOptions, run_tenant_pass
from mspbyte_dagster.lib.store.db import engine_for
from mspbyte_dagster.lib.store.ledger import BASELINE_PAGE
from mspbyte_dagster.lib.store.schema import alerts, entities, pipeline_ledger
from mspbyte_dagster_tests.snapshots import import_files, minimal_files, mspbyte, user, write_folder

KEYS = ["alpha", "bravo", "charlie"]


@pytest.fixture
def world(app_env, tmp_path):
    """Three imported tenants of 30 users each, on the instance of DAGSTER_HOME."""

    def import_tenant(key, files):
        folder = write_folder(tmp_path / "incoming" / f"{key}-{len(list(tmp_path.glob('incoming/*')))}", files)
        code, _, err = mspbyte("tenants", "import", str(folder))
        assert code == 0, err

    for key in KEYS:
        import_tenant(key, minimal_files(key, users=30))
    return import_tenant


def run(keys, selection=None):
    job = defs.resolve_job_def("tenant_pipeline")
    return job.execute_in_process(
        instance=DagsterInstance.get(),
        tags={RANGE_START_TAG: keys[0], RANGE_END_TAG: keys[-1]},
        asset_selection=selection,
        raise_on_error=False,
    )


def entity_count(tenant):
    with engine_for_env().connect() as conn:
        return conn.execute(
            select(func.count())
            .select_from(entities)
            .where(entities.c.tenant == tenant, entities.c.deleted_at.is_(None))
        ).scalar()


def engine_for_env():
    import os

    return engine_for(os.environ["DATABASE_URL"])


def ledger_rows(tenant):
    with engine_for_env().connect() as conn:
        return list(
            conn.execute(
                select(pipeline_ledger).where(pipeline_ledger.c.tenant == tenant).order_by(pipeline_ledger.c.id)
            )
        )


def materialized(asset):
    return DagsterInstance.get().get_materialized_partitions(AssetKey(asset))


def guard_evaluations(result):
    return {
        e.event_specific_data.partition: e.event_specific_data.passed
        for e in result.all_events
        if e.event_type == DagsterEventType.ASSET_CHECK_EVALUATION
        and e.event_specific_data.partition
        and e.event_specific_data.check_name == "empty_sync_guard"
    }


def poison(engine, external_id):
    """A real database error on inserting one entity: a trigger, on either database."""
    with engine.begin() as conn:
        if engine.dialect.name == "sqlite":
            conn.execute(
                text(
                    "CREATE TRIGGER poison BEFORE INSERT ON entities "
                    f"WHEN NEW.external_id = '{external_id}' BEGIN SELECT RAISE(ABORT, 'poisoned row'); END"
                )
            )
        else:
            conn.execute(
                text(
                    "CREATE OR REPLACE FUNCTION poison() RETURNS trigger AS $$ BEGIN "
                    f"IF NEW.external_id = '{external_id}' THEN RAISE EXCEPTION 'poisoned row'; END IF; "
                    "RETURN NEW; END $$ LANGUAGE plpgsql"
                )
            )
            conn.execute(text("DROP TRIGGER IF EXISTS poison ON entities"))
            conn.execute(text("CREATE TRIGGER poison BEFORE INSERT ON entities FOR EACH ROW EXECUTE FUNCTION poison()"))


@pytest.fixture
def cleanup_poison(app_env):
    yield
    engine = engine_for_env()
    with engine.begin() as conn:
        conn.execute(
            text("DROP TRIGGER IF EXISTS poison" + (" ON entities" if engine.dialect.name != "sqlite" else ""))
        )


@pytest.mark.slow
def test_one_run_carries_every_tenant_of_the_range(world):
    result = run(KEYS)
    assert result.success
    for stage in ("m365_snapshot", "entities", "relationships", "tenant_context", "findings", "alerts"):
        assert materialized(stage) == set(KEYS), stage
    checks = {
        (e.event_specific_data.check_name, e.event_specific_data.partition): e.event_specific_data.passed
        for e in result.all_events
        if e.event_type == DagsterEventType.ASSET_CHECK_EVALUATION and e.event_specific_data.partition
    }
    for name in ("finding_entities_exist", "one_open_alert_per_fingerprint"):
        assert all(checks[(name, key)] for key in KEYS), name
    assert all(entity_count(key) == 30 + 5 for key in KEYS)
    assert guard_evaluations(result) == {key: True for key in KEYS}
    assert [r.status for r in ledger_rows("bravo")] == ["succeeded"]
    assert ledger_rows("bravo")[0].all_stages and ledger_rows("bravo")[0].run_id == result.run_id


@pytest.mark.slow
def test_a_failing_tenant_is_rolled_back_named_and_alone(world, cleanup_poison):
    files = minimal_files("bravo", users=30)
    files["users"].append(user("poison-me"))
    world("bravo", files)
    poison(engine_for_env(), "poison-me")
    result = run(KEYS)
    assert not result.success
    failure = next(e for e in result.all_events if e.event_type == DagsterEventType.STEP_FAILURE)
    assert "bravo" in failure.event_specific_data.error.message
    assert "alpha" not in failure.event_specific_data.error.message
    assert materialized("entities") == {"alpha", "charlie"}
    assert entity_count("bravo") == 0  # users inserted before the poisoned row were rolled back
    assert entity_count("alpha") == entity_count("charlie") == 35
    failed = ledger_rows("bravo")[-1]
    assert failed.status == "failed" and "poisoned row" in failed.reason
    # fixed, it can be re-run alone
    with engine_for_env().begin() as conn:
        conn.execute(text("DROP TRIGGER IF EXISTS poison" + (" ON entities" if conn.dialect.name != "sqlite" else "")))
    assert run(["bravo"]).success and entity_count("bravo") == 36


@pytest.mark.slow
def test_users_falling_below_half_hold_the_tenant_and_only_it(world):
    assert run(KEYS).success
    world("bravo", minimal_files("bravo", users=14))  # 30 -> 14: below half
    result = run(KEYS)
    # as visible as a failure: the run is not green and says which tenant was held, and why
    assert not result.success
    [failure] = [e for e in result.all_events if e.event_type == DagsterEventType.STEP_FAILURE]
    message = failure.event_specific_data.error.message
    assert "1 of 3 tenant(s) did not pass: 1 held by the empty-sync guard: bravo" in message
    assert "failed:" not in message
    assert guard_evaluations(result) == {"alpha": True, "bravo": False, "charlie": True}
    snapshots_materialized = {
        e.event_specific_data.materialization.partition: e.event_specific_data.materialization.metadata
        for e in result.all_events
        if e.event_type == DagsterEventType.ASSET_MATERIALIZATION and e.asset_key == AssetKey("m365_snapshot")
    }
    assert snapshots_materialized["bravo"]["held"].value is True
    assert "users fell from 30 to 14" in snapshots_materialized["bravo"]["held_reason"].value
    assert snapshots_materialized["alpha"]["held"].value is False
    entities_this_run = {
        e.event_specific_data.materialization.partition
        for e in result.all_events
        if e.event_type == DagsterEventType.ASSET_MATERIALIZATION and e.asset_key == AssetKey("entities")
    }
    assert entities_this_run == {"alpha", "charlie"}  # nothing downstream for the held tenant
    # the guard's failed evaluation is about bravo's held snapshot: the UI shows it on that partition
    [evaluation] = [
        e.event_specific_data
        for e in result.all_events
        if e.event_type == DagsterEventType.ASSET_CHECK_EVALUATION
        and e.event_specific_data.partition == "bravo"
        and e.event_specific_data.check_name == "empty_sync_guard"
    ]
    [latest] = (
        DagsterInstance.get()
        .fetch_materializations(
            AssetRecordsFilter(asset_key=AssetKey("m365_snapshot"), asset_partitions=["bravo"]), limit=1
        )
        .records
    )
    assert evaluation.target_materialization_data.storage_id == latest.storage_id
    assert latest.run_id == result.run_id
    # every tenant's every evaluation, looked up together, names its own partition's latest materialization
    evaluations = [
        e.event_specific_data for e in result.all_events if e.event_type == DagsterEventType.ASSET_CHECK_EVALUATION
    ]
    targets = {
        (e.asset_key.to_user_string(), e.partition): e.target_materialization_data for e in evaluations if e.partition
    }
    assert {tenant for _, tenant in targets} == {"alpha", "bravo", "charlie"}
    for (asset, tenant), target in targets.items():
        [newest] = (
            DagsterInstance.get()
            .fetch_materializations(AssetRecordsFilter(asset_key=AssetKey(asset), asset_partitions=[tenant]), limit=1)
            .records
        )
        assert (target.storage_id, target.run_id) == (newest.storage_id, result.run_id), (asset, tenant)
    held = ledger_rows("bravo")[-1]
    assert held.status == "held" and "users fell from 30 to 14" in held.reason
    assert entity_count("bravo") == 35  # nothing written: the 16 users are not deleted
    # a held pass is never the baseline: the same snapshot is held again
    run(["bravo"])
    assert ledger_rows("bravo")[-1].status == "held"


@pytest.mark.slow
def test_exactly_half_or_a_small_tenant_is_not_held(world):
    assert run(KEYS).success
    world("alpha", minimal_files("alpha", users=15))  # 30 -> 15: not strictly below half
    assert run(["alpha"]).success and ledger_rows("alpha")[-1].status == "succeeded"
    world("alpha", minimal_files("alpha", users=5))  # previous 15 < 20: no check
    run(["alpha"])
    assert ledger_rows("alpha")[-1].status == "succeeded"


@pytest.mark.slow
def test_enabled_policies_falling_to_zero_hold_the_tenant(world):
    assert run(KEYS).success
    files = minimal_files("charlie", users=30)
    files["conditional_access_policies"][0]["state"] = "disabled"
    world("charlie", files)
    run(KEYS)
    held = ledger_rows("charlie")[-1]
    assert held.status == "held" and "enabled Conditional Access policies fell from 1 to 0" in held.reason


@pytest.mark.slow
def test_accept_drop_lets_the_next_pass_through(world):
    assert run(KEYS).success
    world("bravo", minimal_files("bravo", users=3))
    run(["bravo"])
    assert ledger_rows("bravo")[-1].status == "held"
    code, out, err = mspbyte("tenants", "accept-drop", "bravo", "--reason", "customer offboarded 27 staff")
    assert code == 0, err
    run(["bravo"])
    assert ledger_rows("bravo")[-1].status == "succeeded"
    assert entity_count("bravo") == 3 + 5


@pytest.mark.slow
def test_mspbyte_run_exits_non_zero_naming_held_tenants(world):
    assert mspbyte("run", "--all")[0] == 0
    world("charlie", minimal_files("charlie", users=2))
    code, out, err = mspbyte("run", "--all")
    verdict = err.strip().splitlines()[-1]
    assert code == 1 and "charlie (held)" in verdict and "alpha" not in verdict
    # one clear summary: no stack trace of Dagster's failure events before it (they stay in the UI)
    assert "Stack Trace" not in out + err and "Traceback" not in out + err


@pytest.mark.slow
def test_a_subset_run_of_one_stage_for_one_tenant(world):
    assert run(["alpha"]).success
    result = run(["bravo"], selection=[AssetKey("entities")])
    assert result.success
    planned = {
        (e.asset_key.to_user_string(), e.partition)
        for e in result.all_events
        if e.event_type == DagsterEventType.ASSET_MATERIALIZATION
    }
    assert planned == {("entities", "bravo")}
    assert entity_count("bravo") == 35
    assert not ledger_rows("bravo")[-1].all_stages  # a subset pass is no guard baseline


@pytest.mark.slow
def test_mspbyte_run_splits_tenants_that_are_not_contiguous(world):
    world("delta", minimal_files("delta", users=30))
    code, out, err = mspbyte("run", "--tenant", "delta", "--tenant", "alpha", "--tenant", "charlie")
    assert code == 0, err
    # bravo sits between alpha and charlie: two runs, alpha alone and charlie..delta (printed as they end)
    assert sorted(line.split()[3] for line in out.splitlines()) == ["alpha..alpha:", "charlie..delta:"]
    assert materialized("entities") == {"alpha", "charlie", "delta"}
    assert DagsterInstance.get().get_dynamic_partitions(TENANTS) == ["alpha", "bravo", "charlie", "delta"]


@pytest.mark.slow
def test_a_tenant_without_a_snapshot_row_fails_alone(world):
    DagsterInstance.get().add_dynamic_partitions(TENANTS, ["ghost"])
    result = run(["alpha", "bravo", "charlie", "ghost"])
    assert not result.success
    assert materialized("entities") == set(KEYS)
    [failure] = [e for e in result.all_events if e.event_type == DagsterEventType.STEP_FAILURE]
    assert "1 failed: ghost" in failure.event_specific_data.error.message
    logged = [record.user_message for record in DagsterInstance.get().all_logs(result.run_id)]
    assert any(m.startswith("tenant ghost: failed (unknown tenant 'ghost'") and "is no tenant" in m for m in logged)


@pytest.mark.parametrize("passes_without_users", [1, BASELINE_PAGE + 1])
def test_a_sync_without_the_users_file_does_not_become_the_users_baseline(engine, tmp_path, passes_without_users):
    """Bypass found by attack: 200 users, then a sync missing users.json, then 5 users: held. The baseline
    is read a page of ledger rows at a time: more passes without users than a page still find it."""
    import_files(engine, tmp_path / "store", minimal_files(users=200))
    assert run_tenant_pass(engine, "contoso", STAGES, PassOptions()).status == "succeeded"
    no_users = minimal_files(users=200)
    del no_users["users"], no_users["conditional_access_policies"]
    import_files(engine, tmp_path / "store", no_users)
    for _ in range(passes_without_users):  # nothing to compare
        assert run_tenant_pass(engine, "contoso", STAGES, PassOptions()).status == "succeeded"
    import_files(engine, tmp_path / "store", minimal_files(users=5))
    held = run_tenant_pass(engine, "contoso", STAGES, PassOptions())
    assert held.status == "held" and "users fell from 200 to 5" in held.reason
    with engine.connect() as conn:
        live = conn.execute(
            select(func.count())
            .select_from(entities)
            .where(entities.c.entity_type == "user", entities.c.deleted_at.is_(None))
        ).scalar()
    assert live == 200  # nobody was soft-deleted


@pytest.mark.slow
def test_the_alerts_materialization_shows_the_tenants_open_alerts_as_a_table(world):
    files = minimal_files("delta", users=5)
    licence = [{"skuId": "s1", "disabledPlans": []}]  # disabled and licensed: one licence_waste alert each
    files["users"] += [user(f"x{n}", enabled=False, assignedLicenses=licence) for n in range(110)]
    world("delta", files)
    DagsterInstance.get().add_dynamic_partitions(TENANTS, ["delta"])
    assert run(["delta"]).success
    event = (
        DagsterInstance.get()
        .fetch_materializations(AssetRecordsFilter(asset_key=AssetKey("alerts"), asset_partitions=["delta"]), limit=1)
        .records[0]
    )
    metadata = event.asset_materialization.metadata
    assert metadata["tenant"].value == "delta"  # the figures are this tenant's, not totals
    table = metadata["open_alerts"].value
    assert [c.name for c in table.schema.columns] == ["id", "severity", "type", "entity", "since", "status"]
    with engine_for_env().connect() as conn:
        still_open = conn.execute(
            select(alerts.c.id, alerts.c.severity, alerts.c.first_seen_at).where(
                alerts.c.tenant == "delta", alerts.c.status != "resolved"
            )
        ).all()
    assert len(still_open) > 100  # more than the table shows
    rows = [record.data for record in table.records]
    assert len(rows) == 100 and metadata["open_alerts_not_shown"].value == len(still_open) - 100
    most_severe = sorted(still_open, key=lambda r: (-SEVERITY_RANK[r.severity], r.first_seen_at, r.id))[:100]
    assert [row["id"] for row in rows] == [r.id for r in most_severe]  # most severe first, then oldest
    assert len({row["severity"] for row in rows}) > 1
    # the ledger keeps the figures, not the table
    assert "open_alerts_table" not in ledger_rows("delta")[-1].stages["alerts"]
