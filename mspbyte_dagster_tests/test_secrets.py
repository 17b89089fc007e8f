"""A secrets scan: with real-looking secrets configured (notification channels' included), a full run, a
failing run, failed deliveries and the CLI leave none of them in Dagster's event log, run config, tags, asset metadata, the ledger, logs or output."""

import logging
import uuid

from dagster import DagsterInstance
from sqlalchemy import select, update
from sqlalchemy.engine import make_url

from mspbyte_dagster.lib.notify.secrets import new_key
from mspbyte_dagster.lib.store.db import engine_for
from mspbyte_dagster.lib.store.schema import notification_channels, notification_outbox, pipeline_ledger, snapshots
from mspbyte_dagster_tests.conftest import delete_keys
from mspbyte_dagster_tests.services import RUN_ID, free_port, scratch_database
from mspbyte_dagster_tests.snapshots import minimal_files, mspbyte, write_folder
from mspbyte_dev.stack import delete_streams

SECRETS = {
    "DATABASE_URL": "pg-S3cret-pw-6b1f",
    "REDIS_URL": "redis-S3cret-pw-77aa",
    "NATS_URL": "nats-S3cret-pw-c0de",
    "GRAPH_CLIENT_SECRET": "graph-S3cret-9f3e~",
    "CONVEX_API_KEY": "prod:convex-S3cret-1d2c",
    "MSPBYTE_SECRET_KEY": new_key(),
}
# Secrets of notification channels, sealed with MSPBYTE_SECRET_KEY: as secret as the variables.
CHANNEL_SECRETS = {
    "webhook signing secret": "whsec-S3cret-51ab",
    "Slack URL": "https://hooks.slack.example/services/S3cret-slack-0e0e",
    "SMTP password": "smtp-S3cret-pw-9d9d",
}


HOOK = ("notify", "channels", "add", "webhook", "--name", "psa", "--url", f"http://127.0.0.1:{free_port()}/hook")
MAIL = (
    *("notify", "channels", "add", "email", "--name", "mail", "--host", "127.0.0.1", "--port", str(free_port())),
    *("--from", "alerts@msp.example", "--to", "soc@msp.example"),
)


def test_no_configured_secret_reaches_anything_a_person_or_a_log_sees(
    definitions_reloaded_after, app_env, tmp_path, monkeypatch, caplog, capfd, postgres_admin_url, redis_url, nats_url
):
    caplog.set_level(logging.DEBUG)
    namespace = f"test-{RUN_ID}-{uuid.uuid4().hex[:8]}"  # the flag keys and event streams of this test alone
    monkeypatch.setenv("MSPBYTE_NAMESPACE", namespace)
    try:
        seen = _seen_by_a_person_or_a_log(postgres_admin_url, redis_url, nats_url, tmp_path, monkeypatch, caplog, capfd)
    finally:
        delete_keys(redis_url, namespace)
        delete_streams(nats_url, namespace)
    assert any("fabrikam" in text and "unreadable" in text for text in seen)  # the failing run was seen
    assert any("notification" in text and "Connect" in text for text in seen)  # the failed deliveries were seen
    leaked = {name for name, secret in (SECRETS | CHANNEL_SECRETS).items() for text in seen if secret in text}
    assert leaked == set()


def _seen_by_a_person_or_a_log(postgres_admin_url, redis_url, nats_url, tmp_path, monkeypatch, caplog, capfd) -> list:
    """Everything the CLI printed and logged, the runs' config, tags and logs, the ledger and the channels."""
    with scratch_database(postgres_admin_url, "_secrets") as plain:
        url = make_url(plain).set(password=SECRETS["DATABASE_URL"]).render_as_string(hide_password=False)
        redis = make_url(redis_url).set(password=SECRETS["REDIS_URL"]).render_as_string(hide_password=False)
        nats = nats_url.replace("nats://", f"nats://watcher:{SECRETS['NATS_URL']}@")
        for name, value in {"DATABASE_URL": url, "REDIS_URL": redis, "NATS_URL": nats}.items():
            monkeypatch.setenv(name, value)
        for name in ("GRAPH_CLIENT_SECRET", "CONVEX_API_KEY", "MSPBYTE_SECRET_KEY"):
            monkeypatch.setenv(name, SECRETS[name])
        monkeypatch.setenv("GRAPH_CLIENT_ID", "00000000-1111-4222-8333-444444444444")

        outputs = [
            mspbyte("db", "upgrade"),
            mspbyte(*HOOK, "--secret", CHANNEL_SECRETS["webhook signing secret"]),
            mspbyte("notify", "channels", "add", "slack", "--name", "chat", "--url", CHANNEL_SECRETS["Slack URL"]),
            mspbyte(*MAIL, "--username", "mailer", "--password", CHANNEL_SECRETS["SMTP password"]),
        ]
        outputs += [mspbyte("notify", "routes", "add", "--channel", name) for name in ("psa", "chat", "mail")]
        for key in ("contoso", "fabrikam"):
            outputs.append(mspbyte("tenants", "import", str(write_folder(tmp_path / key, minimal_files(key)))))
        engine = engine_for(url)
        with engine.begin() as conn:  # fabrikam's pass fails
            conn.execute(update(snapshots).where(snapshots.c.tenant == "fabrikam").values(unreadable="lost"))
        outputs += [
            mspbyte("run", "--all"),
            mspbyte("alerts", "list", "--json"),
            mspbyte("flags", "list"),
            mspbyte("flags", "set", "new_pipeline", "off"),
            mspbyte("events", "publish", "--tenant", "contoso", "--data-source", "m365"),
            mspbyte("tenants", "list", "--json"),
            mspbyte("compare", "--tenant", "contoso"),
            mspbyte("notify", "deliver"),  # nothing listens: every channel fails, naming why
            mspbyte("notify", "channels", "list"),
            mspbyte("notify", "channels", "list", "--json"),
            mspbyte("notify", "outbox", "list", "--json"),
            mspbyte("notify", "channels", "test", "chat"),
        ]
        instance = DagsterInstance.get()
        seen = [repr(output) for output in outputs]
        seen += [*capfd.readouterr(), caplog.text, repr([record.args for record in caplog.records])]
        for run in instance.get_runs():
            seen += [repr(run.run_config), repr(run.tags), repr(instance.all_logs(run.run_id))]
        with engine.connect() as conn:
            seen += [repr(row) for row in conn.execute(select(pipeline_ledger))]
            seen += [
                repr(row)
                for table in (notification_channels, notification_outbox)
                for row in conn.execute(select(table))
            ]
        engine.dispose()
    return seen
