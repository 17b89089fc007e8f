"""Sending one message to one channel: a signed webhook, a Teams Workflows webhook, a Slack incoming
webhook or SMTP with STARTTLS, each answer sorted into delivered, try again (when) or give up (why).

A secret (a Teams or Slack URL, a webhook's signing secret, an SMTP password)
is opened only here, for the send, and never appears in an error: an error
that could quote the URL has it replaced.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import smtplib
import ssl
import time
from dataclasses import dataclass
from email.utils import parsedate_to_datetime

import httpx

from mspbyte_dagster.lib.errors import InputError
from mspbyte_dagster.lib.notify.messages import Message, email_message, slack_payload, teams_payload, webhook_body

KINDS = ("webhook", "teams", "slack", "email")
HTTP_TIMEOUT_SECONDS = 15.0
SMTP_TIMEOUT_SECONDS = 30.0
ANSWER_SHOWN = 300  # characters of a receiver's answer kept with a failure


@dataclass(frozen=True)
class Outcome:
    """How a send ended: delivered, or an error that is retried (after `retry_after` seconds at the
    earliest, when the receiver said) or permanent (dead-lettered at once)."""

    delivered: bool
    error: str | None = None
    permanent: bool = False
    retry_after: float | None = None


DELIVERED = Outcome(True)


def check_http_url(url: str, what: str) -> str:
    if not url.startswith(("https://", "http://")) or len(url) < 12:
        raise InputError(f"{what} must be an http(s) URL")
    return url


def signature(secret: str, timestamp: str, body: bytes) -> str:
    """`sha256=<hex HMAC-SHA256 of "<timestamp>.<body>">`, what a receiver recomputes with its copy of
    the secret (and a timestamp too old tells it a replay)."""
    digest = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        try:
            return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
        except (TypeError, ValueError):
            return None


def http_outcome(response: httpx.Response) -> Outcome:
    """2xx delivered; 429 later (Retry-After honoured); 408 and 5xx later; any other 4xx never."""
    if 200 <= response.status_code < 300:
        return DELIVERED
    answer = f"HTTP {response.status_code}: {' '.join(response.text.split())[:ANSWER_SHOWN]}"
    if response.status_code == 429:
        return Outcome(False, answer, retry_after=_retry_after(response.headers.get("Retry-After")))
    return Outcome(False, answer, permanent=response.status_code < 500 and response.status_code != 408)


def post(url: str, body: bytes, headers: dict[str, str], secret_url: bool) -> Outcome:
    try:
        response = httpx.post(
            url,
            content=body,
            headers={"Content-Type": "application/json", **headers},
            timeout=HTTP_TIMEOUT_SECONDS,
        )
    except httpx.HTTPError as error:
        text = f"{type(error).__name__}: {error}"
        return Outcome(False, text.replace(url, "<the channel's URL>") if secret_url else text)
    return http_outcome(response)


def send_webhook(config: dict, secret: str, message: Message) -> Outcome:
    body = webhook_body(message)
    timestamp = str(int(time.time()))
    headers = {
        "X-Mspbyte-Timestamp": timestamp,
        "X-Mspbyte-Signature": signature(secret, timestamp, body),
        "X-Mspbyte-Idempotency-Key": message.key,
    }
    return post(config["url"], body, headers, secret_url=False)


def send_card(payload: dict, url: str, message: Message) -> Outcome:
    """Teams and Slack: the URL itself is the secret."""
    body = json.dumps(payload, separators=(",", ":")).encode()
    return post(url, body, {"X-Mspbyte-Idempotency-Key": message.key}, secret_url=True)


def send_email(config: dict, password: str | None, message: Message) -> Outcome:
    """SMTP with STARTTLS (the server's certificate checked); 4xx answers are tried again, 5xx never."""
    mail = email_message(message, config["sender"], config["recipients"])
    try:
        with smtplib.SMTP(config["host"], config["port"], timeout=SMTP_TIMEOUT_SECONDS) as smtp:
            smtp.starttls(context=ssl.create_default_context())
            if config.get("username"):
                smtp.login(config["username"], password or "")
            refused = smtp.send_message(mail)
    except smtplib.SMTPRecipientsRefused as error:
        codes = {code for code, _text in error.recipients.values()}
        return Outcome(False, f"SMTP refused every recipient: {sorted(codes)}", permanent=all(c >= 500 for c in codes))
    except smtplib.SMTPResponseException as error:
        text = error.smtp_error.decode(errors="replace") if isinstance(error.smtp_error, bytes) else error.smtp_error
        return Outcome(False, f"SMTP {error.smtp_code}: {text[:ANSWER_SHOWN]}", permanent=error.smtp_code >= 500)
    except (OSError, smtplib.SMTPException) as error:  # refused, timed out, TLS failed, disconnected
        return Outcome(False, f"{type(error).__name__}: {error}")
    if refused:
        return Outcome(False, f"SMTP refused {', '.join(sorted(refused))}", permanent=True)
    return DELIVERED


def send(kind: str, config: dict, secret: str | None, message: Message) -> Outcome:
    if kind == "webhook":
        return send_webhook(config, secret or "", message)
    if kind == "teams":
        return send_card(teams_payload(message), secret or "", message)
    if kind == "slack":
        return send_card(slack_payload(message), secret or "", message)
    return send_email(config, secret, message)
