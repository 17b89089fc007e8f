"""RULES "stale" row: enabled users not seen for stale_days before capturedAt, guests included."""

import pytest

from mspbyte_dagster_tests.rules import GLOBAL_ADMIN, analyze, person, raised, signin, sku, tenant_files


def stale(*users, **thresholds) -> dict[str, str]:
    files = tenant_files(users, skus=[sku("e3", consumed=1, prepaid=5)], assignments=[("boss", GLOBAL_ADMIN["id"])])
    return raised(analyze(files, **thresholds), "stale_user")


def test_stale_user_is_high_for_admins():
    assert stale(person("boss", sign_in=signin(200), skus=["e3"])) == {"boss": "high"}


def test_stale_user_is_low_for_a_user_without_a_licence():
    assert stale(person("idle", sign_in=signin(200))) == {"idle": "low"}


def test_stale_user_is_medium_for_a_licensed_member():
    assert stale(person("idle", sign_in=signin(200), skus=["e3"])) == {"idle": "medium"}


@pytest.mark.parametrize(("days", "is_stale"), [(90, True), (89, False), (365, True)])
def test_a_user_is_stale_from_stale_days_before_capture(days, is_stale):
    assert stale(person("u", sign_in=signin(days))) == ({"u": "low"} if is_stale else {})


def test_a_non_interactive_sign_in_counts():
    recent_token = signin(200) | signin(3, non_interactive=True)
    assert stale(person("daemon", sign_in=recent_token), person("browser", sign_in=signin(3) | signin(200, True))) == {}
    assert stale(person("old", sign_in=signin(200) | signin(100, non_interactive=True))) == {"old": "low"}


@pytest.mark.parametrize(("created_days", "is_stale"), [(120, True), (90, True), (30, False)])
def test_a_user_who_never_signed_in_is_stale_only_once_the_account_is_stale_days_old(created_days, is_stale):
    assert stale(person("new", sign_in=signin(None), created_days=created_days)) == ({"new": "low"} if is_stale else {})


def test_guests_are_in_the_stale_rule():
    assert stale(person("guest", guest=True, sign_in=signin(200))) == {"guest": "low"}


def test_disabled_users_are_never_stale():
    assert stale(person("off", enabled=False, sign_in=signin(200))) == {}


def test_stale_days_is_a_tenant_setting():
    assert stale(person("u", sign_in=signin(40)), stale_days=30) == {"u": "low"}
    assert stale(person("u", sign_in=signin(40)), stale_days=60) == {}
