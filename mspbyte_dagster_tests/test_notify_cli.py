"""`mspbyte notify` (channels, routes, outbox, deliver) and the Dagster delivery: the sensor only looks,
the job sends. Secrets stay encrypted and out of every output."""

import importlib
import json
import os
import uuid

import pytest
from dagster import DagsterInstance, DagsterRun, DagsterRunStatus, RunRequest, SkipReason, build_sensor_context
from sqlalchemy import select

from mspbyte_dagster.defs.resources import DatabaseResource
from mspbyte_dagster.lib.notify.secrets import new_key
from mspbyte_dagster.lib.pipeline import STAGES, PassOptions, run_tenant_pass
from mspbyte_dagster.lib.store.db import engine_for
from mspbyte_dagster.lib.store.schema import notification_channels, notification_outbox
from mspbyte_dagster_tests.receivers import Receiver
from mspbyte_dagster_tests.snapshots import minimal_files, mspbyte, user, write_folder

SIGNING = "whsec-cli-31"
SLACK_URL = "https://hooks.slack.example/services/T000/B000/XXXXSECRET"


@pytest.fixture
def keyed(app_env, monkeypatch):
    monkeypatch.setenv("MSPBYTE_SECRET_KEY", new_key())
    assert mspbyte("db", "upgrade")[0] == 0
    return app_env


@pytest.fixture
def receiver():
    started = Receiver().start()
    yield started
    started.stop()


def stored_secrets(env) -> list[str]:
    with engine_for(env["DATABASE_URL"]).connect() as conn:
        return [row.secret or "" for row in conn.execute(select(notification_channels))]


def a_pass_with_alerts(env, tmp_path) -> None:
    files = minimal_files(users=3)
    files["users"].append(user("gone", enabled=False, assignedLicenses=[{"skuId": "s1", "disabledPlans": []}]))
    assert mspbyte("tenants", "import", str(write_folder(tmp_path / "in", files)))[0] == 0
    assert run_tenant_pass(engine_for(env["DATABASE_URL"]), "contoso", STAGES, PassOptions()).status == "succeeded"


def test_a_secret_is_refused_without_a_key_and_kept_encrypted_with_one(app_env, monkeypatch):
    assert mspbyte("db", "upgrade")[0] == 0
    code, _, err = mspbyte("notify", "channels", "add", "slack", "--name", "s", "--url", SLACK_URL)
    assert code == 2 and "MSPBYTE_SECRET_KEY" in err and "env:NAME" in err and SLACK_URL not in err
    assert stored_secrets(app_env) == []
    monkeypatch.setenv("MSPBYTE_SECRET_KEY", new_key())
    assert mspbyte("notify", "channels", "add", "slack", "--name", "s", "--url", SLACK_URL)[0] == 0
    assert mspbyte("notify", "channels", "add", "teams", "--name", "t", "--url", "env:TEAMS_HOOK")[0] == 0
    code, out, err = mspbyte("notify", "channels", "add", "webhook", "--name", "w", "--url", "ftp://x", "--secret", "s")
    assert code == 2 and "--url must be an http(s) URL" in err
    (slack, teams) = stored_secrets(app_env)
    assert slack.startswith("fernet:") and SLACK_URL not in slack and teams == "env:TEAMS_HOOK"
    listed = json.loads(mspbyte("notify", "channels", "list", "--json")[1])
    assert [(c["name"], c["kind"], c["secret"]) for c in listed] == [
        ("s", "slack", "encrypted"),
        ("t", "teams", "env:TEAMS_HOOK"),
    ]
    code, out, err = mspbyte("notify", "channels", "list")
    assert code == 0 and SLACK_URL not in out + err
    monkeypatch.setenv("MSPBYTE_SECRET_KEY", "hunter2")
    code, _, err = mspbyte("notify", "channels", "list")
    assert code == 2 and "MSPBYTE_SECRET_KEY is not a key" in err and "hunter2" not in err


def test_routes_name_a_channel_and_a_known_tenant_severity_type_and_event(keyed, tmp_path):
    a_pass_with_alerts(keyed, tmp_path)
    assert (
        mspbyte(
            "notify",
            "channels",
            "add",
            "webhook",
            "--name",
            "psa",
            "--url",
            "http://127.0.0.1:9/h",
            "--secret",
            SIGNING,
        )[0]
        == 0
    )
    wrong = {
        ("--channel", "nope"): "no notification channel 'nope'",
        ("--channel", "psa", "--tenant", "nobody"): "nobody",
        ("--channel", "psa", "--min-severity", "urgent"): "unknown severity 'urgent'",
        ("--channel", "psa", "--types", "mfa,stale_user"): "unknown alert type(s) mfa",
        ("--channel", "psa", "--events", "created,deleted"): "unknown event(s) deleted",
    }
    for args, problem in wrong.items():
        code, _, err = mspbyte("notify", "routes", "add", *args)
        assert code == 2 and problem in err, (args, err)
    code, out, _ = mspbyte(
        "notify",
        "routes",
        "add",
        "--channel",
        "psa",
        "--tenant",
        "contoso",
        "--min-severity",
        "high",
        "--types",
        "stale_user,license_waste",
        "--events",
        "created,resolved",
        "--digest",
        "60",
    )
    assert (
        code == 0
        and "contoso, high and above, license_waste, stale_user, created, resolved; digest every 60 min" in out
    )
    (route,) = json.loads(mspbyte("notify", "routes", "list", "--json")[1])
    assert (route["channel"], route["tenant"], route["digest_minutes"]) == ("psa", "contoso", 60)
    assert mspbyte("notify", "routes", "remove", str(route["id"]))[0] == 0
    assert mspbyte("notify", "routes", "remove", str(route["id"]))[0] == 2
    assert json.loads(mspbyte("notify", "routes", "list", "--json")[1]) == []


def test_channels_test_sends_now_and_says_when_it_did_not_arrive(keyed, receiver):
    url = receiver.url
    assert mspbyte("notify", "channels", "add", "webhook", "--name", "psa", "--url", url, "--secret", SIGNING)[0] == 0
    code, out, _ = mspbyte("notify", "channels", "test", "psa")
    assert code == 0 and "delivered" in out
    (delivery,) = receiver.received
    assert delivery.signed_with(SIGNING) and delivery.json()["items"][0]["alert_type"] == "channel_test"
    receiver.answers = [(401, {}, "bad signature")]
    code, _, err = mspbyte("notify", "channels", "test", "psa")
    assert code == 1 and "not delivered: HTTP 401: bad signature" in err
    assert mspbyte("notify", "routes", "add", "--channel", "psa")[0] == 0
    assert mspbyte("notify", "channels", "remove", "psa")[0] == 0
    assert mspbyte("notify", "channels", "test", "psa")[0] == 2
    assert json.loads(mspbyte("notify", "routes", "list", "--json")[1]) == []  # its routes went with it


def test_dead_letters_are_listed_with_the_answer_and_retried_by_hand(keyed, tmp_path, receiver):
    assert (
        mspbyte("notify", "channels", "add", "webhook", "--name", "psa", "--url", receiver.url, "--secret", SIGNING)[0]
        == 0
    )
    assert mspbyte("notify", "routes", "add", "--channel", "psa")[0] == 0
    a_pass_with_alerts(keyed, tmp_path)
    receiver.answers = [(404, {}, "no such hook")]
    code, out, _ = mspbyte("notify", "deliver")
    assert code == 1 and "1 dead-lettered" in out
    (dead,) = json.loads(mspbyte("notify", "outbox", "list", "--dead", "--json")[1])
    assert (dead["status"], dead["last_error"], dead["channel"]) == ("dead", "HTTP 404: no such hook", "psa")
    assert dead["keys"] and all(key.startswith("alert-event-") for key in dead["keys"])
    assert mspbyte("notify", "outbox", "retry", str(dead["id"]))[0] == 0
    code, out, _ = mspbyte("notify", "deliver")
    assert code == 0 and "1 row(s) delivered" in out and len(receiver.received) == 2
    code, _, err = mspbyte("notify", "outbox", "retry", str(dead["id"]))
    assert code == 2 and "never sent again" in err
    assert json.loads(mspbyte("notify", "outbox", "list", "--dead", "--json")[1]) == []


def test_the_sensor_requests_delivery_when_messages_are_due_and_the_job_delivers_them(
    definitions_reloaded_after, keyed, tmp_path, receiver
):
    definitions = importlib.reload(definitions_reloaded_after)  # the notifier fed by EnvVar
    from mspbyte_dagster.defs.notifications import notification_outbox_sensor

    instance = DagsterInstance.get()

    def tick():
        return notification_outbox_sensor(
            build_sensor_context(instance=instance, resources={"database": DatabaseResource()})
        )

    assert isinstance(tick(), SkipReason)
    assert (
        mspbyte("notify", "channels", "add", "webhook", "--name", "psa", "--url", receiver.url, "--secret", SIGNING)[0]
        == 0
    )
    assert mspbyte("notify", "routes", "add", "--channel", "psa")[0] == 0
    a_pass_with_alerts(keyed, tmp_path)
    request = tick()
    assert isinstance(request, RunRequest) and request.tags["mspbyte/due"] == "1"
    going = DagsterRun(job_name="notification_delivery", run_id=str(uuid.uuid4()), status=DagsterRunStatus.STARTED)
    instance.add_run(going)
    skipped = tick()
    assert isinstance(skipped, SkipReason) and going.run_id in skipped.skip_message
    instance.report_run_failed(going, message="a delivery run that died")
    job = definitions.defs.resolve_job_def("notification_delivery")
    result = job.execute_in_process(instance=instance, tags=request.tags)
    assert result.success and len(receiver.received) == 1 and receiver.received[0].signed_with(SIGNING)
    assert result.output_for_node("deliver_notifications")["delivered"] == 1
    with engine_for(keyed["DATABASE_URL"]).connect() as conn:
        assert [row.status for row in conn.execute(select(notification_outbox))] == ["delivered"]
    assert isinstance(tick(), SkipReason)
    shown = [str(record) for record in instance.all_logs(result.run_id)] + [repr(instance.get_run_by_id(result.run_id))]
    key = os.environ["MSPBYTE_SECRET_KEY"]
    assert all(key not in text and SIGNING not in text for text in shown)
