"""One delivery round over the outbox: what the Dagster job and `mspbyte notify deliver` run.

Rows are claimed in a short transaction and sent outside any transaction, so a
slow receiver holds no lock; each outcome is written as soon as it is known. A
failed send is tried again with exponential backoff (or when the receiver's
Retry-After says), until the row has waited the give-up time: then it is
dead-lettered with the last error, as is a row a receiver refused outright.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine

from mspbyte_dagster.lib.notify.channels import Outcome, send
from mspbyte_dagster.lib.notify.messages import Message
from mspbyte_dagster.lib.notify.secrets import SecretBox, SecretUnavailable
from mspbyte_dagster.lib.store import notifications

log = logging.getLogger(__name__)

FIRST_RETRY = timedelta(seconds=30)
LONGEST_WAIT = timedelta(minutes=15)  # a receiver back after an outage hears within this
CLAIM_HOLD = timedelta(minutes=10)  # a round that dies mid-send frees its rows after this
ROUND_SIZE = 200

Sender = Callable[[str, dict, str | None, Message], Outcome]


@dataclass
class RoundFigures:
    delivered: int = 0
    retried: int = 0
    dead: int = 0
    messages: int = 0
    errors: list[str] = field(default_factory=list)  # "<channel>: <error>", no secret in them

    def as_json(self) -> dict:
        return {"delivered": self.delivered, "retried": self.retried, "dead": self.dead, "messages": self.messages}


def backoff(attempts: int) -> timedelta:
    """30 s, 1 min, 2 min, ... at most 15 min between tries."""
    return min(FIRST_RETRY * 2 ** min(max(attempts - 1, 0), 16), LONGEST_WAIT)  # 2**16 * 30 s: past any cap


def messages_of(rows: list) -> list[tuple[list, Message]]:
    """A row is a message; a channel's due digest rows are one message together."""
    grouped: list[tuple[list, Message]] = []
    digests: dict[int, list] = {}
    for row in rows:
        if row.digest:
            digests.setdefault(row.channel_id, []).append(row)
        else:
            grouped.append(([row], Message(f"mspbyte-outbox-{row.id}", list(row.items))))
    for channel_rows in digests.values():
        ids = [row.id for row in channel_rows]
        key = f"mspbyte-digest-{ids[0]}" if len(ids) == 1 else f"mspbyte-digest-{ids[0]}-{ids[-1]}-{len(ids)}"
        grouped.append((channel_rows, Message(key, [item for row in channel_rows for item in row.items])))
    return grouped


def _after_failure(rows: list, outcome: Outcome, now: datetime, give_up: timedelta) -> dict:
    attempts = max(row.attempts for row in rows) + 1
    oldest = min(row.queued_at for row in rows)
    wait = backoff(attempts)
    if outcome.retry_after is not None:
        wait = max(wait, timedelta(seconds=outcome.retry_after))
    if outcome.permanent or now + wait > oldest + give_up:
        return {"status": "dead", "attempts": attempts, "last_error": outcome.error, "finished_at": now}
    return {"attempts": attempts, "last_error": outcome.error, "due_at": now + wait}


def deliver_round(
    engine: Engine,
    box: SecretBox,
    give_up: timedelta,
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
    sender: Sender = send,
) -> RoundFigures:
    """Send every due message once; returns what happened."""
    claimer, figures = uuid.uuid4().hex, RoundFigures()
    with engine.begin() as conn:
        rows = notifications.claim_due(conn, now(), claimer, CLAIM_HOLD, ROUND_SIZE)
        channels = notifications.channels_by_id(conn, {row.channel_id for row in rows})
    for rows_of_message, message in messages_of(rows):
        channel = channels[rows_of_message[0].channel_id]
        try:
            secret = box.open(channel.secret) if channel.secret else None
            outcome = sender(channel.kind, channel.config, secret, message)
        except SecretUnavailable as error:
            outcome = Outcome(False, str(error))
        at = now()
        values = (
            {"status": "delivered", "attempts": max(r.attempts for r in rows_of_message) + 1, "finished_at": at}
            if outcome.delivered
            else _after_failure(rows_of_message, outcome, at, give_up)
        )
        with engine.begin() as conn:
            notifications.finish(conn, [row.id for row in rows_of_message], claimer, **values)
        figures.messages += 1
        kind = "delivered" if outcome.delivered else "dead" if values.get("status") == "dead" else "retried"
        setattr(figures, kind, getattr(figures, kind) + len(rows_of_message))
        if not outcome.delivered:
            figures.errors.append(f"{channel.name}: {outcome.error}")
            log.warning("notification %s to channel %s %s: %s", message.key, channel.name, kind, outcome.error)
    return figures
