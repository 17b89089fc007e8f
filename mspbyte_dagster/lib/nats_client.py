"""NATS JetStream for sync events: the two streams, publishing, and bounded reads from a sequence.

Sensors and the CLI are synchronous, so each call connects, works and closes
under `asyncio.run`. Nothing connects at import. Reads use an ephemeral pull
consumer that acknowledges nothing: the position lives in the caller's cursor,
so a read that is not followed by a saved cursor is simply read again.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import TypeVar
from urllib.parse import urlsplit, urlunsplit

import nats
import nats.errors
import nats.js.errors
from nats.js import JetStreamContext, api

from mspbyte_dagster.lib.events import (
    DEFAULT_STREAMS,
    DLQ_MAX_AGE_SECONDS,
    REASON_HEADER,
    SEQUENCE_HEADER,
    SUBJECT_HEADER,
    SYNC_MAX_AGE_SECONDS,
    EventStreams,
    Rejection,
    StreamBatch,
    StreamMessage,
    read_start,
)

CONNECT_TIMEOUT_SECONDS = 2.0
# No call waits longer than this, whatever NATS does (a read is bounded by its own budget, below it).
CALL_TIMEOUT_SECONDS = 45.0
# A dead letter keeps the original bytes up to this size (the server refuses payloads above 1 MiB
# by default, and headers come on top); a longer one is cut and says so in a header.
MAX_DEAD_LETTER_BYTES = 256 * 1024
TRUNCATED_HEADER = "Mspbyte-Truncated"
# One retry shortly after a refused connection (a restarting server), then the call fails.
CONNECT_ATTEMPTS = 2
RETRY_WAIT_SECONDS = 0.25
FETCH_SIZE = 1_000
FETCH_TIMEOUT_SECONDS = 5.0
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# Failures that mean "NATS is not there right now", as opposed to a refused request.
UNAVAILABLE = (
    OSError,
    asyncio.TimeoutError,
    nats.errors.NoServersError,
    nats.errors.ConnectionClosedError,
    nats.errors.StaleConnectionError,
    nats.errors.NoRespondersError,
    nats.errors.ConnectionReconnectingError,
    nats.js.errors.ServiceUnavailableError,
    nats.js.errors.NoStreamResponseError,
)
T = TypeVar("T")


class NatsUnavailableError(ConnectionError):
    """NATS (or its JetStream) could not be reached, or went away mid-call."""


def redacted(url: str) -> str:
    """The URL without user or password, for messages and logs."""
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url
    host = parts.hostname or ""
    return urlunsplit(parts._replace(netloc=f"{host}:{parts.port}" if parts.port else host))


@dataclass(frozen=True)
class OutgoingMessage:
    subject: str
    data: bytes
    headers: dict[str, str] = field(default_factory=dict)


def stream_configs(streams: EventStreams) -> list[api.StreamConfig]:
    """The sync and dead-letter streams. Their duplicate windows drop a re-published sync (same
    syncId) or a dead letter written again by a tick that is replayed (same original sequence)."""
    return [
        api.StreamConfig(
            name=name, subjects=[subjects], max_age=max_age, storage=api.StorageType.FILE, duplicate_window=duplicates
        )
        for name, subjects, max_age, duplicates in (
            (streams.sync_stream, streams.sync_subjects, SYNC_MAX_AGE_SECONDS, 120),
            (streams.dlq_stream, streams.dlq_subject, DLQ_MAX_AGE_SECONDS, 3600),
        )
    ]


def dead_letter(rejection: Rejection, streams: EventStreams = DEFAULT_STREAMS) -> OutgoingMessage:
    """The original bytes, with the reason and origin as headers; the message id makes a replay harmless."""
    message = rejection.message
    headers = {
        REASON_HEADER: rejection.header,
        SUBJECT_HEADER: message.subject,
        SEQUENCE_HEADER: str(message.seq),
        "Nats-Msg-Id": f"{streams.sync_stream}:{message.seq}:{message.time_ms}",
    }
    if len(message.data) > MAX_DEAD_LETTER_BYTES:
        headers[TRUNCATED_HEADER] = f"{len(message.data)} bytes, the first {MAX_DEAD_LETTER_BYTES} kept"
    return OutgoingMessage(streams.dlq_subject, message.data[:MAX_DEAD_LETTER_BYTES], headers)


def _time_ms(stamp: datetime) -> int:
    return (stamp - EPOCH) // timedelta(milliseconds=1)


async def _ensure_streams(js: JetStreamContext, streams: EventStreams) -> None:
    """Create the sync and dead-letter streams if they are missing (an existing one is left as it is)."""
    for config in stream_configs(streams):
        try:
            await js.stream_info(config.name)
        except nats.js.errors.NotFoundError:
            await js.add_stream(config)


class JetStream:
    """The project's JetStream streams at one NATS URL."""

    def __init__(self, url: str, streams: EventStreams = DEFAULT_STREAMS):
        self.url = url
        self.streams = streams

    def _run(self, work: Callable[[JetStreamContext], Awaitable[T]]) -> T:
        async def session() -> T:
            client = await nats.connect(
                self.url,
                connect_timeout=CONNECT_TIMEOUT_SECONDS,
                allow_reconnect=False,
                max_reconnect_attempts=CONNECT_ATTEMPTS - 1,
                reconnect_time_wait=RETRY_WAIT_SECONDS,
                error_cb=_quiet,
                name="mspbyte",
            )
            try:
                js = client.jetstream()
                await _ensure_streams(js, self.streams)
                return await asyncio.wait_for(work(js), CALL_TIMEOUT_SECONDS)
            finally:
                await client.close()

        try:
            return asyncio.run(session())
        except UNAVAILABLE as error:
            detail = str(error) or error.__class__.__name__
            raise NatsUnavailableError(f"NATS at {redacted(self.url)} is unreachable ({detail})") from None

    def ensure_streams(self) -> None:
        """Create the sync and dead-letter streams if they are missing."""

        async def nothing_more(_js: JetStreamContext) -> None:
            return None

        self._run(nothing_more)

    def publish(self, messages: list[OutgoingMessage]) -> list[int]:
        """Publish and wait for JetStream to store each message; returns their stream sequences."""

        async def work(js: JetStreamContext) -> list[int]:
            pending = [
                await js.publish_async(message.subject, message.data, headers=message.headers or None)
                for message in messages
            ]
            return [(await ack).seq for ack in pending]

        return self._run(work)

    def read(
        self, stream: str, after: int | None, limit: int, budget_seconds: float, created: str | None = None
    ) -> StreamBatch:
        """At most `limit` messages of `stream` following sequence `after` (from the first when None, or
        when the stream is not the one created at `created`: it was recreated, its sequences start over)."""

        async def work(js: JetStreamContext) -> StreamBatch:
            info = await js.stream_info(stream)
            state, now_created = info.state, str(info.created)
            same_stream = created in (None, now_created)
            start = read_start(after if same_stream else None, state.first_seq, state.last_seq)
            if start > state.last_seq:
                return StreamBatch(start, [], complete=True, created=now_created)
            batch = await _read_from(js, stream, start, limit, time.monotonic() + budget_seconds)
            return replace(batch, created=now_created)

        return self._run(work)


async def _read_from(js: JetStreamContext, stream: str, start: int, limit: int, deadline: float) -> StreamBatch:
    consumer = await js.add_consumer(
        stream,
        api.ConsumerConfig(
            name=f"mspbyte-read-{uuid.uuid4().hex}",
            deliver_policy=api.DeliverPolicy.BY_START_SEQUENCE,
            opt_start_seq=start,
            ack_policy=api.AckPolicy.NONE,
            inactive_threshold=30,
            mem_storage=True,
            num_replicas=1,
        ),
    )
    subscription = await js.pull_subscribe_bind(consumer=consumer.name, stream=stream)
    messages: list[StreamMessage] = []
    pending = consumer.num_pending
    try:
        while pending and len(messages) < limit and time.monotonic() < deadline:
            try:
                fetched = await subscription.fetch(
                    min(FETCH_SIZE, limit - len(messages)), timeout=FETCH_TIMEOUT_SECONDS
                )
            except TimeoutError:
                break
            for message in fetched:
                metadata = message.metadata
                messages.append(
                    StreamMessage(
                        metadata.sequence.stream,
                        _time_ms(metadata.timestamp),
                        message.subject,
                        message.data,
                        dict(message.headers or {}),
                    )
                )
                pending = metadata.num_pending
    finally:
        await subscription.unsubscribe()
        await js.delete_consumer(stream, consumer.name)
    return StreamBatch(start, messages, complete=pending == 0)


async def _quiet(_error: Exception) -> None:
    """Connection errors surface as exceptions of the call; nats-py's own logging of them is noise."""
