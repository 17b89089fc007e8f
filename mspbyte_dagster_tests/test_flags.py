import hashlib
import json

import pytest

from mspbyte_dagster.lib.flags import (
    FLAG_DEFAULTS,
    FLAGS,
    FeatureFlagManager,
    FlagDefault,
    RuntimeFlag,
    UnknownFlagError,
    bucket,
    run_tags,
)

TENANTS = [f"tenant-{n:05d}" for n in range(10_000)]


def manager(runtime=None, overrides=None, **defaults) -> FeatureFlagManager:
    merged = dict(FLAG_DEFAULTS) | {flag: FlagDefault(*value) for flag, value in defaults.items()}
    return FeatureFlagManager(merged, runtime, overrides)


def test_six_flags_with_the_guides_defaults():
    assert FLAGS == (
        "new_pipeline",
        "unified_analyzer",
        "alert_manager",
        "batch_loading",
        "performance_monitoring",
        "comparison_mode",
    )
    statuses = {s.flag: s for s in manager().statuses()}
    assert all(statuses[f].global_enabled and statuses[f].rollout == 100 for f in FLAGS[:-1])
    assert not statuses["comparison_mode"].global_enabled and statuses["comparison_mode"].rollout == 0


def test_bucket_is_first_8_hex_digits_of_sha256_mod_100():
    expected = int(hashlib.sha256(b"new_pipeline:contoso").hexdigest()[:8], 16) % 100
    assert bucket("new_pipeline", "contoso") == expected
    assert manager().status("new_pipeline", "contoso").bucket == expected


def test_global_off_beats_a_tenant_override():
    flags = manager(overrides={("new_pipeline", "contoso"): True}, new_pipeline=(False, 100))
    status = flags.status("new_pipeline", "contoso")
    assert (status.effective, status.source) == (False, "global_off")


def test_override_beats_the_rollout():
    flags = manager(overrides={("batch_loading", "a"): True, ("batch_loading", "b"): False}, batch_loading=(True, 0))
    assert flags.status("batch_loading", "a").effective and flags.status("batch_loading", "a").source == "override"
    flags = manager(overrides={("batch_loading", "b"): False})
    assert not flags.is_enabled("batch_loading", "b")


def test_rollout_enables_exactly_the_tenants_below_it():
    flags = manager(alert_manager=(True, 30))
    for tenant in TENANTS[:500]:
        status = flags.status("alert_manager", tenant)
        assert status.effective == (status.bucket < 30)
        assert status.source == "env"


def test_raising_a_percentage_only_adds_tenants():
    previous: set[str] = set()
    for percent in range(0, 101, 5):
        flags = manager(new_pipeline=(True, percent))
        enabled = {t for t in TENANTS if flags.is_enabled("new_pipeline", t)}
        assert previous <= enabled
        previous = enabled
    assert previous == set(TENANTS)
    share = len({t for t in TENANTS if manager(new_pipeline=(True, 50)).is_enabled("new_pipeline", t)})
    assert 4_500 < share < 5_500  # the buckets spread evenly


def test_runtime_value_beats_the_environment_and_says_so():
    flags = manager(runtime={"unified_analyzer": RuntimeFlag(enabled=False)})
    assert flags.status("unified_analyzer", "t").source == "global_off"
    flags = manager(runtime={"unified_analyzer": RuntimeFlag(rollout=0)})
    status = flags.status("unified_analyzer", "t")
    assert (status.effective, status.source, status.rollout) == (False, "runtime", 0)


def test_unknown_flag_lists_the_known_ones():
    with pytest.raises(UnknownFlagError) as error:
        manager().status("turbo_mode")
    assert "turbo_mode" in str(error.value) and all(flag in str(error.value) for flag in FLAGS)


def test_status_json_has_effective_source_and_bucket():
    data = json.loads(json.dumps(manager().status("new_pipeline", "contoso").as_json()))
    assert {"effective", "source", "bucket"} <= data.keys()


def test_one_run_tag_holds_the_hash_and_what_differs_from_the_defaults():
    assert run_tags(FeatureFlagManager(FLAG_DEFAULTS)) == {
        "mspbyte/flags": f"{FeatureFlagManager(FLAG_DEFAULTS).state_hash()} defaults"
    }
    manager = FeatureFlagManager(
        FLAG_DEFAULTS,
        runtime={"unified_analyzer": RuntimeFlag(enabled=False, rollout=None)},
        overrides={("batch_loading", "contoso"): False},
    )
    [tag] = run_tags(manager).values()
    assert tag == f"{manager.state_hash()} unified_analyzer=off 100%, batch_loading=on 100% +1 overrides"
