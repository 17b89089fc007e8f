"""Delivery of the outbox to real receivers on loopback: signed webhooks, Teams and Slack webhooks, and
SMTP with STARTTLS; retries, Retry-After, dead letters, and escaping of hostile names."""

import json
import logging
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from mspbyte_dagster.lib.notify.delivery import FIRST_RETRY, LONGEST_WAIT, backoff, deliver_round
from mspbyte_dagster.lib.notify.messages import Message, email_message, slack_payload, teams_payload
from mspbyte_dagster.lib.notify.secrets import SecretBox, new_key
from mspbyte_dagster.lib.store import notifications
from mspbyte_dagster.lib.store.schema import notification_channels, notification_outbox
from mspbyte_dagster.settings import REPO_ROOT
from mspbyte_dagster_tests.receivers import Receiver, SmtpServer
from mspbyte_dagster_tests.rules import person, sku
from mspbyte_dagster_tests.test_notify_outbox import EVERY_EVENT, NOW, staff

ARTIFACTS = REPO_ROOT / ".test-artifacts" / "notify"
KEY = new_key()
BOX = SecretBox(KEY)
SIGNING = "whsec-7c1d"
GIVE_UP = timedelta(hours=24)
HOSTILE = '<script>alert(1)</script> **boss** [click](http://evil) <@U123> &amp; `rm` _x_ =HYPERLINK("x")'


def waste(name: str = "Off Boarded") -> dict:
    return staff(person("off", enabled=False, skus=["e3"], displayName=name), skus=[sku("e3", 1, prepaid=1)])


def channel(engine, kind: str, config: dict, secret: str | None, name: str = "ops", **route) -> None:
    with engine.begin() as conn:
        channel_id = notifications.add_channel(conn, name, kind, config, BOX.seal(secret) if secret else None, NOW)
        chosen = {"tenant": None, "min_severity": "low", "alert_types": None, "events": EVERY_EVENT}
        notifications.add_route(conn, channel_id, NOW, **(chosen | {"digest_minutes": None} | route))


def rows(engine) -> list:
    with engine.connect() as conn:
        return list(conn.execute(select(notification_outbox).order_by(notification_outbox.c.id)))


def deliver(engine, at: datetime):
    return deliver_round(engine, BOX, GIVE_UP, now=lambda: at)


def queued(engine) -> datetime:
    """When the first message was queued: the pass's clock (the tests' passes run at a fixed time)."""
    return rows(engine)[0].queued_at


@pytest.fixture
def receiver():
    started = Receiver()
    yield started
    started.stop()


def test_a_webhook_gets_each_message_once_signed_and_keyed(tenant, receiver):
    channel(tenant.engine, "webhook", {"url": receiver.url}, SIGNING)
    tenant.sync(waste())
    receiver.start()
    figures = deliver(tenant.engine, datetime.now(UTC))
    assert (figures.delivered, figures.retried, figures.dead) == (1, 0, 0)
    (delivery,) = receiver.received
    assert delivery.signed_with(SIGNING) and not delivery.signed_with("another secret")
    body = delivery.json()
    (row,) = rows(tenant.engine)
    assert body["id"] == delivery.headers["X-Mspbyte-Idempotency-Key"] == f"mspbyte-outbox-{row.id}"
    assert [item["key"] for item in body["items"]] == [item["key"] for item in row.items]
    assert (row.status, row.attempts) == ("delivered", 1) and row.finished_at is not None
    tenant.sync(waste())  # an identical pass queues nothing, and a delivered row is never sent again
    assert deliver(tenant.engine, datetime.now(UTC) + timedelta(days=1)).messages == 0
    assert len(receiver.received) == 1


def test_a_receiver_down_for_an_hour_gets_every_message_once_it_is_back(tenant, receiver):
    channel(tenant.engine, "webhook", {"url": receiver.url}, SIGNING)
    tenant.sync(waste())
    tenant.sync(staff())  # resolves it: a second message
    at = queued(tenant.engine)
    for _minute in range(0, 60, 5):  # a round every five minutes while the receiver is down
        deliver(tenant.engine, at)
        at += timedelta(minutes=5)
    waiting = rows(tenant.engine)
    assert {row.status for row in waiting} == {"pending"} and all(row.attempts >= 3 for row in waiting)
    assert all("ConnectError" in row.last_error for row in waiting)
    receiver.start()
    deliver(tenant.engine, at + LONGEST_WAIT)
    assert {row.status for row in rows(tenant.engine)} == {"delivered"}
    assert [d.json()["items"][0]["event"] for d in receiver.received] == ["created", "resolved"]


def test_server_errors_are_retried_with_growing_waits_and_429_waits_as_long_as_it_says(tenant, receiver):
    receiver.answers = [(500, {}, "boom"), (503, {}, "later"), (429, {"Retry-After": "1200"}, "slow down")]
    channel(tenant.engine, "webhook", {"url": receiver.url}, SIGNING)
    tenant.sync(waste())
    receiver.start()
    at = queued(tenant.engine)
    waits = []
    for _ in range(3):
        deliver(tenant.engine, at)
        (row,) = rows(tenant.engine)
        waits.append(row.due_at - at)
        at = row.due_at
    assert waits[:2] == [FIRST_RETRY, 2 * FIRST_RETRY] and waits[2] == timedelta(seconds=1200)
    assert rows(tenant.engine)[0].last_error == "HTTP 429: slow down"
    deliver(tenant.engine, at)
    assert rows(tenant.engine)[0].status == "delivered" and len(receiver.received) == 4


def test_a_refusal_is_dead_lettered_at_once_with_the_answer_and_can_be_retried(tenant, receiver):
    receiver.answers = [(410, {}, "this hook was deleted")]
    channel(tenant.engine, "webhook", {"url": receiver.url}, SIGNING)
    tenant.sync(waste())
    receiver.start()
    assert deliver(tenant.engine, datetime.now(UTC)).dead == 1
    (row,) = rows(tenant.engine)
    assert (row.status, row.last_error) == ("dead", "HTTP 410: this hook was deleted")
    with tenant.engine.begin() as conn:
        notifications.retry(conn, row.id, datetime.now(UTC))
    assert deliver(tenant.engine, datetime.now(UTC)).delivered == 1
    with tenant.engine.begin() as conn, pytest.raises(Exception, match="never sent again"):
        notifications.retry(conn, row.id, datetime.now(UTC))


def test_a_message_undelivered_for_the_give_up_time_is_dead_lettered_with_its_last_error(tenant, receiver):
    channel(tenant.engine, "webhook", {"url": receiver.url}, SIGNING)  # never started: refused
    tenant.sync(waste())
    (queued,) = rows(tenant.engine)
    at = queued.queued_at
    while rows(tenant.engine)[0].status == "pending":
        deliver(tenant.engine, at)
        at = max(at + timedelta(minutes=1), rows(tenant.engine)[0].due_at)
    (row,) = rows(tenant.engine)
    assert row.status == "dead" and "ConnectError" in row.last_error
    assert GIVE_UP - LONGEST_WAIT <= row.finished_at - queued.queued_at <= GIVE_UP
    assert backoff(1) == FIRST_RETRY and backoff(30) == LONGEST_WAIT


def test_a_digest_route_merges_the_window_into_one_message(tenant, receiver):
    channel(tenant.engine, "webhook", {"url": receiver.url}, SIGNING, digest_minutes=60)
    tenant.sync(waste())
    tenant.sync(staff())
    first, second = rows(tenant.engine)
    receiver.start()
    assert deliver(tenant.engine, first.due_at - timedelta(seconds=1)).messages == 0
    figures = deliver(tenant.engine, first.due_at)
    assert (figures.messages, figures.delivered) == (1, 2)
    (delivery,) = receiver.received
    assert [item["event"] for item in delivery.json()["items"]] == ["created", "resolved"]


def test_teams_and_slack_get_their_formats_and_their_urls_stay_secret(tenant, receiver, caplog):
    channel(tenant.engine, "teams", {}, receiver.url + "/teams", name="teams")
    channel(tenant.engine, "slack", {}, receiver.url + "/slack", name="slack")
    tenant.sync(waste(HOSTILE))
    receiver.start()
    deliver(tenant.engine, datetime.now(UTC))
    by_path = {d.path: d.json() for d in receiver.received}
    card = by_path["/hook/teams"]["attachments"][0]
    assert card["contentType"] == "application/vnd.microsoft.card.adaptive"
    assert card["content"]["type"] == "AdaptiveCard" and len(card["content"]["body"]) == 3
    assert by_path["/hook/slack"]["blocks"][0]["type"] == "header"
    with tenant.engine.connect() as conn:
        stored = [row.secret for row in conn.execute(select(notification_channels))]
    assert all(secret.startswith("fernet:") and receiver.url not in secret for secret in stored)
    receiver.stop()  # down: the error names no URL, the URL being the secret
    tenant.sync(staff())
    with caplog.at_level(logging.DEBUG):
        deliver(tenant.engine, datetime.now(UTC))
    errors = [row.last_error for row in rows(tenant.engine) if row.last_error]
    assert errors and all(receiver.url not in text for text in [*errors, caplog.text])


HOSTILE_ITEM = {
    "key": "alert-event-1",
    "event": "created",
    "tenant": "contoso",
    "severity": "high",
    "alert_id": 1,
    "alert_type": "mfa_not_registered",
    "entity_type": "user",
    "entity_id": HOSTILE,
    "message": f"{HOSTILE} has not registered MFA",
}


def test_hostile_names_are_text_in_every_format():
    message = Message("k", [HOSTILE_ITEM])
    teams = json.dumps(teams_payload(message))
    assert "<script>" not in teams and "**boss**" not in teams and "](http" not in teams and "<@U123>" not in teams
    assert "&lt;script&gt;" in teams
    slack = slack_payload(message)
    shown = json.dumps(slack)
    assert "<script>" not in shown and "<@U123>" not in shown and "&lt;@U123&gt;" in shown
    assert all(block["text"]["type"] == "plain_text" for block in slack["blocks"] if "text" in block)
    mail = email_message(message, "alerts@msp.example", ["soc@msp.example"])
    html_part = mail.get_body(("html",)).get_content()
    assert "<script>" not in html_part and "&lt;script&gt;" in html_part
    assert HOSTILE in mail.get_body(("plain",)).get_content()  # plain text shows it as it is


@pytest.mark.slow
def test_an_email_with_a_hostile_name_shows_it_as_text_in_a_browser(chromium_page):
    """The HTML part as a mail client's browser renders it: the name is text, nothing runs or links."""
    dialogs = []
    chromium_page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    mail = email_message(Message("mspbyte-outbox-7", [HOSTILE_ITEM]), "a@msp.example", ["b@msp.example"])
    chromium_page.set_content(mail.get_body(("html",)).get_content())
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    chromium_page.screenshot(path=ARTIFACTS / "email_hostile_name.png")
    shown = chromium_page.inner_text("body")
    assert "<script>alert(1)</script> **boss** [click](http://evil)" in shown and "mspbyte-outbox-7" in shown
    assert chromium_page.locator("script").count() == 0 and chromium_page.locator("a").count() == 0
    assert dialogs == []


def test_email_goes_over_starttls_with_login_as_text_and_html(tenant, tmp_path, monkeypatch, caplog):
    with SmtpServer(tmp_path, "mailer", "smtp-pa55") as server:
        monkeypatch.setenv("SSL_CERT_FILE", str(server.cert))  # the client checks the server's certificate
        config = {
            "host": "127.0.0.1",
            "port": server.port,
            "sender": "alerts@msp.example",
            "recipients": ["soc@msp.example", "oncall@msp.example"],
            "username": "mailer",
        }
        channel(tenant.engine, "email", config, "smtp-pa55")
        tenant.sync(waste(HOSTILE))
        with caplog.at_level(logging.DEBUG):
            figures = deliver(tenant.engine, datetime.now(UTC))
        assert figures.delivered == 1, figures.errors
        (mail,) = server.store.messages
    (row,) = rows(tenant.engine)
    assert mail["To"] == "soc@msp.example, oncall@msp.example"
    assert mail["X-Mspbyte-Idempotency-Key"] == f"mspbyte-outbox-{row.id}"
    assert "license_waste" in mail.get_body(("plain",)).get_content()
    assert "&lt;script&gt;" in mail.get_body(("html",)).get_content()
    assert "smtp-pa55" not in caplog.text


def test_a_wrong_smtp_password_is_dead_lettered_and_an_untrusted_certificate_retried(tenant, tmp_path, monkeypatch):
    with SmtpServer(tmp_path, "mailer", "right") as server:
        config = {
            "host": "127.0.0.1",
            "port": server.port,
            "sender": "a@msp.example",
            "recipients": ["b@msp.example"],
            "username": "mailer",
        }
        channel(tenant.engine, "email", config, "wrong")
        tenant.sync(waste())
        deliver(tenant.engine, queued(tenant.engine))  # the certificate is not trusted yet: no login tried
        (row,) = rows(tenant.engine)
        assert row.status == "pending" and "CERTIFICATE_VERIFY_FAILED" in row.last_error
        monkeypatch.setenv("SSL_CERT_FILE", str(server.cert))
        deliver(tenant.engine, row.due_at)
        (row,) = rows(tenant.engine)
        assert (row.status, row.last_error.split(":")[0]) == ("dead", "SMTP 535")
        assert server.store.messages == []


def test_a_channel_whose_secret_cannot_be_opened_waits_naming_why(tenant, receiver, monkeypatch):
    channel(tenant.engine, "slack", {}, "env:MSPBYTE_TEST_SLACK_URL")
    tenant.sync(waste())
    receiver.start()
    monkeypatch.delenv("MSPBYTE_TEST_SLACK_URL", raising=False)
    deliver(tenant.engine, queued(tenant.engine))
    (row,) = rows(tenant.engine)
    assert row.status == "pending" and "MSPBYTE_TEST_SLACK_URL" in row.last_error
    monkeypatch.setenv("MSPBYTE_TEST_SLACK_URL", receiver.url)
    deliver_round(tenant.engine, SecretBox(new_key()), GIVE_UP, now=lambda: row.due_at)  # env: needs no key
    assert rows(tenant.engine)[0].status == "delivered" and len(receiver.received) == 1
