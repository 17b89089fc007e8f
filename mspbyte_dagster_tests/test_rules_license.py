"""RULES "license" rows: license_waste, license_overuse, license_unused."""

import pytest

from mspbyte_dagster_tests.rules import analyze, evaluation_of, person, raised, signin, sku, tenant_files

SKUS = [sku("e3", consumed=2, prepaid=2), sku("ems", consumed=1, prepaid=1)]


def waste(*users) -> dict[str, str]:
    return raised(analyze(tenant_files(users, skus=SKUS)), "license_waste")


def skus(*subscribed, **thresholds) -> dict[str, dict[str, str]]:
    analysis = analyze(tenant_files([person("alice")], skus=subscribed), **thresholds)
    return {t: raised(analysis, t) for t in ("license_overuse", "license_unused")}


def test_license_waste_is_medium_for_each_sku_a_disabled_user_holds():
    assert waste(person("off", enabled=False, skus=["e3", "ems"])) == {"off:e3": "medium", "off:ems": "medium"}


def test_license_waste_is_low_for_a_stale_enabled_user():
    assert waste(person("idle", skus=["e3"], sign_in=signin(120))) == {"idle:e3": "low"}


def test_license_waste_is_not_raised_for_an_active_user_or_a_disabled_user_without_licences():
    assert waste(person("alice", skus=["e3"]), person("off", enabled=False)) == {}


def test_license_waste_carries_the_sku_in_its_fingerprint():
    analysis = analyze(tenant_files([person("off", enabled=False, skus=["e3"])], skus=SKUS))
    (finding,) = [f for f in analysis.findings if f.alert_type == "license_waste"]
    assert finding.fingerprint == ("license_waste", "user", "off", "e3")
    assert finding.details["sku"] == "e3"


def test_license_overuse_is_high_when_more_units_are_consumed_than_bought():
    assert skus(sku("e3", consumed=6, prepaid=5), sku("ems", consumed=5, prepaid=5)) == {
        "license_overuse": {"e3": "high"},
        "license_unused": {},
    }


def test_a_sku_without_prepaid_units_is_skipped():
    assert skus(sku("e3", consumed=6)) == {"license_overuse": {}, "license_unused": {}}


@pytest.mark.parametrize(("consumed", "unused"), [(4, True), (5, False), (0, True)])
def test_license_unused_is_low_from_one_unused_unit_by_default(consumed, unused):
    assert skus(sku("e3", consumed=consumed, prepaid=5))["license_unused"] == ({"e3": "low"} if unused else {})


@pytest.mark.parametrize(("consumed", "unused"), [(2, True), (3, False)])
def test_license_unused_follows_the_tenants_threshold(consumed, unused):
    found = skus(sku("e3", consumed=consumed, prepaid=5), unused_license_threshold=3)
    assert found["license_unused"] == ({"e3": "low"} if unused else {})


@pytest.mark.parametrize(("prepaid", "unused"), [(9_999, True), (10_000, False), (1_000_000, False)])
def test_license_unused_skips_free_and_trial_skus(prepaid, unused):
    assert skus(sku("free", consumed=3, prepaid=prepaid))["license_unused"] == ({"free": "low"} if unused else {})


def test_license_rules_are_evaluated_with_subscribed_skus_read():
    analysis = analyze(tenant_files([person("alice")], skus=SKUS))
    assert all(evaluation_of(analysis, t).evaluated for t in ("license_waste", "license_overuse", "license_unused"))
