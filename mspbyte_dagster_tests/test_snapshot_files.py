"""Import validation: every kind of broken folder is refused, naming file, record and field."""

import pytest

from mspbyte_dagster.lib.adapters.snapshot_files import SnapshotError, read_snapshot
from mspbyte_dagster_tests.snapshots import minimal_files, user, write_folder


def broken(tmp_path, change):
    files = minimal_files()
    change(files)
    return write_folder(tmp_path / "snap", files)


def problem_text(folder) -> str:
    with pytest.raises(SnapshotError) as error:
        read_snapshot(folder)
    return str(error.value)


def test_a_valid_folder_reads_with_counts(tmp_path):
    snapshot = read_snapshot(write_folder(tmp_path / "snap", minimal_files(users=4)))
    assert snapshot.key == "contoso"
    assert snapshot.counts()["users"] == 4 and snapshot.counts()["group_members"] == 1
    assert snapshot.missing() == [] and snapshot.is_complete("users")


def test_missing_tenant_json(tmp_path):
    text = problem_text(broken(tmp_path, lambda f: f.pop("tenant")))
    assert "tenant.json" in text and "missing" in text


def test_tenant_key_breaking_the_pattern(tmp_path):
    text = problem_text(broken(tmp_path, lambda f: f["tenant"].update(id="bad key!")))
    assert "tenant.json" in text and "'id'" in text and "A-Za-z0-9" in text


def test_captured_at_without_timezone(tmp_path):
    text = problem_text(broken(tmp_path, lambda f: f["tenant"].update(capturedAt="2026-11-01T00:00:00")))
    assert "capturedAt" in text and "timezone" in text


def test_file_that_is_not_json(tmp_path):
    folder = write_folder(tmp_path / "snap", minimal_files())
    (folder / "groups.json").write_text("[{not json", encoding="utf-8")
    assert "groups.json: is not valid JSON" in problem_text(folder)


def test_array_file_holding_an_object(tmp_path):
    text = problem_text(broken(tmp_path, lambda f: f.update(users={"value": []})))
    assert "users.json: must hold a JSON array" in text


def test_record_without_id(tmp_path):
    def drop_id(files):
        del files["users"][1]["id"]

    text = problem_text(broken(tmp_path, drop_id))
    assert "users.json record 1 field 'id': is missing" in text


def test_field_of_the_wrong_type_names_record_and_field(tmp_path):
    def yes(files):
        files["users"][2]["accountEnabled"] = "yes"

    assert "users.json record 2 (id 'u2') field 'accountEnabled': must be true or false" in problem_text(
        broken(tmp_path, yes)
    )


def test_duplicate_ids(tmp_path):
    text = problem_text(broken(tmp_path, lambda f: f["users"].append(user("u0"))))
    assert "users.json record 3 (id 'u0') field 'id': duplicate id" in text


def test_unknown_policy_state(tmp_path):
    def state(files):
        files["conditional_access_policies"][0]["state"] = "on"

    assert "conditional_access_policies.json record 0 (id 'p1') field 'state'" in problem_text(broken(tmp_path, state))


def test_group_members_of_the_wrong_shape(tmp_path):
    def members(files):
        files["group_members"]["g1"] = [{"id": "u0"}]

    text = problem_text(broken(tmp_path, members))
    assert "group_members.json" in text and "@odata.type" in text


def test_negative_consumed_units(tmp_path):
    def units(files):
        files["subscribed_skus"][0]["consumedUnits"] = -1

    assert "subscribed_skus.json record 0 (id 's1') field 'consumedUnits'" in problem_text(broken(tmp_path, units))


def test_security_defaults_without_is_enabled(tmp_path):
    text = problem_text(broken(tmp_path, lambda f: f.update(security_defaults={"id": "x"})))
    assert "security_defaults.json" in text and "isEnabled" in text


def test_sources_entry_without_complete(tmp_path):
    text = problem_text(broken(tmp_path, lambda f: f["tenant"].update(sources={"users": {"reason": "x"}})))
    assert "sources.users" in text


def test_a_missing_data_file_is_reported_not_read_as_empty(tmp_path):
    snapshot = read_snapshot(broken(tmp_path, lambda f: f.pop("conditional_access_policies")))
    assert "conditional_access_policies" in snapshot.missing()
    assert not snapshot.is_complete("conditional_access_policies")


def test_a_file_marked_incomplete_is_not_complete(tmp_path):
    snapshot = read_snapshot(
        broken(tmp_path, lambda f: f["tenant"].update(sources={"users": {"complete": False, "reason": "page 3"}}))
    )
    assert not snapshot.is_complete("users") and snapshot.incomplete() == {"users": "page 3"}


def test_unknown_extra_fields_are_kept(tmp_path):
    snapshot = read_snapshot(broken(tmp_path, lambda f: f["users"][0].update(department="Sales")))
    assert snapshot.files["users"][0]["department"] == "Sales"
