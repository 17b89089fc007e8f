"""The message one outbox row (or a digest of rows) becomes, in each channel's format.

Names and messages come from customers' directories: a display name may hold
HTML, Markdown or Slack and Teams markup. Each format escapes them for where they
land: JSON needs nothing, a Teams card's Markdown and HTML entities are escaped,
Slack's control characters are, and e-mail HTML is escaped; none becomes markup.
"""

from __future__ import annotations

import html
import json
import re
from dataclasses import dataclass
from email.message import EmailMessage

from mspbyte_dagster.lib.model import SEVERITY_RANK

SHOWN_ITEMS = 40  # per message; the rest are counted (Slack allows 50 blocks, Teams cards ~28 KB)
# Markdown that takes effect mid-line (each TextBlock starts with our own words, newlines are folded).
TEAMS_MARKDOWN = re.compile(r"([\\`*_\[\]()~])")
EVENT_WORDS = {
    "created": "new",
    "reopened": "reopened",
    "severity_raised": "severity raised",
    "resolved": "resolved",
    "pass_failed": "pass failed",
    "pass_held": "pass held by the empty-sync guard",
    "test": "test",
}


@dataclass(frozen=True)
class Message:
    """What one delivery says: its items (alert events, failed or held passes) and the key a receiver
    uses to drop a repeat (each item carries its own too)."""

    key: str
    items: list[dict]

    @property
    def tenants(self) -> list[str]:
        return sorted({item["tenant"] for item in self.items})

    @property
    def title(self) -> str:
        worst = max(self.items, key=lambda item: SEVERITY_RANK[item["severity"]])["severity"]
        where = f"tenant {self.tenants[0]}" if len(self.tenants) == 1 else f"{len(self.tenants)} tenants"
        return f"mspbyte: {len(self.items)} event(s) for {where} (highest severity {worst})"

    def ordered(self) -> list[dict]:
        return sorted(self.items, key=lambda item: (-SEVERITY_RANK[item["severity"]], item["key"]))


def test_item(channel: str) -> dict:
    """What `mspbyte notify channels test` sends: an item shaped like an alert event, naming no tenant's data."""
    return {
        "key": "test",
        "event": "test",
        "tenant": "(none)",
        "severity": "low",
        "alert_id": 0,
        "alert_type": "channel_test",
        "entity_type": "channel",
        "entity_id": channel,
        "message": "a test message from `mspbyte notify channels test`",
    }


def _one_line(text: str | None) -> str:
    return " ".join(str(text or "").split())


def line(item: dict) -> str:
    """One item as plain text (escape it for the format it goes into)."""
    event = EVENT_WORDS[item["event"]]
    if item["event"] in ("pass_failed", "pass_held"):
        return _one_line(f"{item['severity'].upper()} {event}: tenant {item['tenant']}: {item.get('reason') or ''}")
    entity = item["entity_id"]
    raised = f" (was {item['previous_severity']})" if item.get("previous_severity") else ""
    return _one_line(
        f"{item['severity'].upper()}{raised} {event}: {item['alert_type']} on {item['entity_type']} {entity}: "
        f"{item['message']} [tenant {item['tenant']}, alert {item['alert_id']}, {item['key']}]"
    )


def _shown(message: Message) -> tuple[list[dict], int]:
    ordered = message.ordered()
    return ordered[:SHOWN_ITEMS], max(0, len(ordered) - SHOWN_ITEMS)


def webhook_body(message: Message) -> bytes:
    """Compact, stable JSON: the same bytes on every attempt, so a signature can be checked."""
    body = {"id": message.key, "source": "mspbyte", "tenants": message.tenants, "items": message.ordered()}
    return json.dumps(body, separators=(",", ":"), sort_keys=True).encode()


def teams_text(text: str) -> str:
    """Text for an Adaptive Card TextBlock (Markdown, no HTML): entities and Markdown escaped."""
    escaped = html.escape(_one_line(text), quote=False)
    return TEAMS_MARKDOWN.sub(r"\\\1", escaped)


def teams_payload(message: Message) -> dict:
    """A Teams Workflows webhook message carrying one Adaptive Card."""
    shown, more = _shown(message)
    body = [
        {"type": "TextBlock", "text": teams_text(message.title), "weight": "Bolder", "size": "Medium", "wrap": True}
    ]
    body += [{"type": "TextBlock", "text": teams_text(line(item)), "wrap": True} for item in shown]
    if more:
        body.append({"type": "TextBlock", "text": f"{more} more", "isSubtle": True, "wrap": True})
    body.append({"type": "TextBlock", "text": teams_text(f"key {message.key}"), "isSubtle": True, "size": "Small"})
    card = {
        "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
        "type": "AdaptiveCard",
        "version": "1.4",
        "body": body,
    }
    return {
        "type": "message",
        "attachments": [
            {"contentType": "application/vnd.microsoft.card.adaptive", "contentUrl": None, "content": card}
        ],
    }


def slack_text(text: str) -> str:
    """Slack's three control characters as entities; the text goes in plain_text, where no markup runs."""
    return _one_line(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def slack_payload(message: Message) -> dict:
    """A Slack incoming-webhook message in Block Kit, with `text` as the notification's fallback."""
    shown, more = _shown(message)
    blocks = [{"type": "header", "text": {"type": "plain_text", "text": slack_text(message.title)[:150]}}]
    blocks += [
        {"type": "section", "text": {"type": "plain_text", "text": slack_text(line(item))[:3000]}} for item in shown
    ]
    footer = f"{more} more; key {message.key}" if more else f"key {message.key}"
    blocks.append({"type": "context", "elements": [{"type": "plain_text", "text": slack_text(footer)}]})
    return {"text": slack_text(message.title), "blocks": blocks}


def email_message(message: Message, sender: str, recipients: list[str]) -> EmailMessage:
    """Plain text and HTML alternatives; the idempotency key in a header and in the text."""
    shown, more = _shown(message)
    mail = EmailMessage()
    mail["Subject"] = _one_line(message.title)
    mail["From"] = sender
    mail["To"] = ", ".join(recipients)
    mail["X-Mspbyte-Idempotency-Key"] = message.key
    lines = [line(item) for item in shown] + ([f"{more} more"] if more else [])
    mail.set_content("\n".join([message.title, "", *lines, "", f"key {message.key}"]) + "\n")
    rows = "".join(f"<li>{html.escape(line(item))}</li>" for item in shown)
    mail.add_alternative(
        '<!doctype html><html><body style="font-family:sans-serif">'
        f"<h2>{html.escape(message.title)}</h2><ul>{rows}</ul>"
        + (f"<p>{more} more</p>" if more else "")
        + f'<p style="color:#666">key {html.escape(message.key)}</p></body></html>',
        subtype="html",
    )
    return mail
