"""Sync events: what a sync worker publishes, how the sensor checks it, and the per-tenant debounce.

Pure Python, no NATS and no Dagster: `lib/nats_client.py` reads the stream into a
`StreamBatch`, `Debounce.advance` decides, `defs/sensors.py` turns the decisions
into runs, and the whole state goes back into the sensor's cursor (JSON).

Time comes from the data. A window opens at the JetStream timestamp of a
tenant's first pending event and takes every event of that tenant stamped
before it closes. It is due once the stream's own clock (the newest timestamp
read) has passed its end: JetStream stamps messages in sequence order, so no
later message can still fall inside it. A replay from the same cursor reads the
same messages and decides the same. The reader's clock is used once, for a
window nothing in the stream will ever close (no traffic): when the read got to
the end of the stream, the clock taken *before* reading counts as the stream's
clock. A replay at a later time may then close such a window sooner, never
later and never differently, and its run key (its first sequence) is the same,
so Dagster launches it once.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime
from typing import Annotated

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, ValidationError

from mspbyte_dagster.lib.adapters.registry import INTEGRATIONS
from mspbyte_dagster.lib.model import MICROSOFT365, is_tenant_key

SYNC_STREAM = "MSPBYTE_SYNC"
SYNC_MAX_AGE_SECONDS = 7 * 86_400
DLQ_STREAM = "MSPBYTE_DLQ"
DLQ_MAX_AGE_SECONDS = 30 * 86_400

# A dead-lettered event keeps its original bytes as payload; these headers say why and where from.
REASON_HEADER = "Mspbyte-Reason"
SUBJECT_HEADER = "Mspbyte-Subject"
SEQUENCE_HEADER = "Mspbyte-Sequence"

# One tick reads at most this many events, stops reading after the budget, and stops folding once
# this many windows have closed (Dagster resolves each run request in a few ms): well inside
# Dagster's 60 s tick limit. The rest waits for the next tick.
MAX_EVENTS_PER_TICK = 10_000
READ_BUDGET_SECONDS = 20.0
MAX_RUNS_PER_TICK = 1_000

MALFORMED_JSON = "malformed_json"
WRONG_SCHEMA = "wrong_schema"
UNKNOWN_TENANT = "unknown_tenant"
UNKNOWN_DATA_SOURCE = "unknown_data_source"
UNPROCESSABLE = "unprocessable"  # checking it raised: a defect of ours, but one message must not stop the rest
CURSOR_VERSION = 1

# tenant -> data source id -> integration
Registry = Mapping[str, Mapping[str, str]]


@dataclass(frozen=True)
class EventStreams:
    """The names of the sync and dead-letter streams and of their subjects.

    A namespace (MSPBYTE_NAMESPACE) prefixes every name, so installations sharing one
    NATS server (staging beside production, two test runs) never see each other's events.
    """

    namespace: str | None = None

    def _named(self, name: str, separator: str) -> str:
        return f"{self.namespace}{separator}{name}" if self.namespace else name

    @property
    def sync_stream(self) -> str:
        return self._named(SYNC_STREAM, "_")

    @property
    def dlq_stream(self) -> str:
        return self._named(DLQ_STREAM, "_")

    @property
    def sync_subjects(self) -> str:
        return self._named("mspbyte.sync.>", ".")

    @property
    def dlq_subject(self) -> str:
        return self._named("mspbyte.dlq.sync", ".")

    def sync_subject(self, tenant: str, data_source: str) -> str:
        return self._named(f"mspbyte.sync.{tenant}.{data_source}", ".")


DEFAULT_STREAMS = EventStreams()


def sync_event_payload(
    tenant: str, data_source: str, sync_id: str, completed_at: datetime, integration: str = MICROSOFT365
) -> bytes:
    """The JSON a sync worker publishes when a tenant's data source has been synced."""
    return json.dumps(
        {
            "tenantId": tenant,
            "dataSourceId": data_source,
            "integration": integration,
            "syncId": sync_id,
            "completedAt": completed_at.isoformat().replace("+00:00", "Z"),
        }
    ).encode()


def source_registry(tenants: list[dict]) -> dict[str, dict[str, str]]:
    """Tenant -> data source id -> integration, from `list_tenants` rows (registration order kept)."""
    return {row["tenant"]: {source["id"]: source["integration"] for source in row["data_sources"]} for row in tenants}


def read_start(after: int | None, first_seq: int, last_seq: int) -> int:
    """The first sequence to read: after the cursor, or the stream's first when there is no cursor,
    when older messages aged out, or when the stream was recreated (its last sequence is behind the cursor)."""
    if after is None or after > last_seq:
        return max(first_seq, 1)
    return max(after + 1, first_seq)


@dataclass(frozen=True)
class StreamMessage:
    """One stored message; its stream sequence and JetStream timestamp are what decisions use."""

    seq: int
    time_ms: int
    subject: str
    data: bytes
    headers: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class StreamBatch:
    """One bounded read of a stream from `start`; `complete` when it reached the end of the stream."""

    start: int
    messages: list[StreamMessage]
    complete: bool
    created: str | None = None  # when the stream was created: another value than last time means it was recreated


@dataclass(frozen=True)
class SyncEvent:
    tenant: str
    data_source: str
    sync_id: str
    seq: int
    time_ms: int


@dataclass(frozen=True)
class Rejection:
    """An event the sensor cannot use, and why: it goes to the dead-letter stream."""

    message: StreamMessage
    reason: str
    detail: str

    @property
    def header(self) -> str:
        return f"{self.reason}: {self.detail}"


def _shown(value: object) -> str:
    """A value from an event, safe in a log line and a header (no newlines, bounded)."""
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _key(value: str) -> str:
    if not is_tenant_key(value):
        raise ValueError("is not a key (letters, digits, _ and -, at most 64)")
    return value


def _integration(value: str) -> str:
    if value not in INTEGRATIONS:  # the registration's: a new integration's events need no change here
        raise ValueError(f"is not one of {', '.join(INTEGRATIONS)}")
    return value


def _timestamp_text(value: object) -> object:
    if not isinstance(value, str):  # pydantic would take a number as Unix time; the guide sends ISO-8601
        raise ValueError("is not an ISO-8601 timestamp")
    return value


def _aware(value: datetime) -> datetime:
    if value.tzinfo is None:
        raise ValueError("has no time zone")
    return value


class SyncPayload(BaseModel):
    """The payload of a sync event, as the migration guide defines it; extra fields are ignored."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    tenantId: Annotated[str, Field(strict=True), AfterValidator(_key)]
    dataSourceId: Annotated[str, Field(strict=True), AfterValidator(_key)]
    integration: Annotated[str, Field(strict=True), AfterValidator(_integration)]
    syncId: Annotated[str, Field(strict=True, min_length=1)]
    completedAt: Annotated[datetime, BeforeValidator(_timestamp_text), AfterValidator(_aware)]


def _schema_problem(event: object, subject: str, streams: EventStreams) -> str | None:
    if not isinstance(event, dict):
        return f"the payload is a JSON {type(event).__name__}, not an object"
    try:
        payload = SyncPayload.model_validate(event)
    except ValidationError as invalid:
        return _described(invalid, event)
    expected = streams.sync_subject(payload.tenantId, payload.dataSourceId)
    if subject != expected:
        return f"subject {_shown(subject)} does not match the payload's {expected!r}"
    return None


def _described(invalid: ValidationError, event: dict) -> str:
    """The first thing wrong, in the operator's words (every missing field at once)."""
    errors = invalid.errors(include_url=False)
    missing = [str(e["loc"][0]) for e in errors if e["type"] == "missing"]
    if missing:
        return f"missing field(s) {', '.join(missing)}"
    error = errors[0]
    name = str(error["loc"][0])
    problem = error["msg"].removeprefix("Value error, ")
    if error["type"] == "string_too_short":
        problem = "is not a non-empty string"
    elif error["type"] == "string_type":
        problem = "is not a string"
    elif name == "completedAt" and error["type"] != "value_error":
        problem = "is not an ISO-8601 timestamp"
    elif not problem.startswith(("is ", "has ")):
        problem = f"is not valid: {problem}"
    return f"{name} {_shown(event.get(name))} {problem}"


def _no_constant(name: str) -> None:
    raise ValueError(f"{name} is not JSON")


def check_event(
    message: StreamMessage, registry: Registry, streams: EventStreams = DEFAULT_STREAMS
) -> SyncEvent | Rejection:
    """A usable sync event, or the reason it is not one; never raises, so no message can stop a tick."""
    try:
        return _checked(message, registry, streams)
    except Exception as error:
        return Rejection(message, UNPROCESSABLE, f"checking it raised {error.__class__.__name__}")


def _checked(message: StreamMessage, registry: Registry, streams: EventStreams) -> SyncEvent | Rejection:
    try:
        event = json.loads(message.data, parse_constant=_no_constant)
    except (ValueError, RecursionError) as error:  # bad UTF-8 or JSON, NaN, a 5,000-digit number, deep nesting
        where = f" at byte {error.pos}" if isinstance(error, json.JSONDecodeError) else ""
        return Rejection(message, MALFORMED_JSON, f"not JSON ({error.__class__.__name__}{where})")
    problem = _schema_problem(event, message.subject, streams)
    if problem:
        return Rejection(message, WRONG_SCHEMA, problem)
    tenant, data_source = event["tenantId"], event["dataSourceId"]
    sources = registry.get(tenant)
    if sources is None:
        return Rejection(message, UNKNOWN_TENANT, f"tenant {tenant!r} is not registered")
    if sources.get(data_source) != event["integration"]:
        registered = ", ".join(f"{key} ({kind})" for key, kind in sources.items()) or "none"
        return Rejection(
            message,
            UNKNOWN_DATA_SOURCE,
            f"data source {data_source!r} ({event['integration']}) is not registered to tenant {tenant!r}; "
            f"registered: {registered}",
        )
    return SyncEvent(tenant, data_source, event["syncId"], message.seq, message.time_ms)


@dataclass(frozen=True)
class Window:
    """A tenant's pending sync events, folded into one run when the window closes."""

    tenant: str
    first_seq: int
    last_seq: int
    events: int
    opened_ms: int
    closes_ms: int
    sources: list[str] = field(default_factory=list)  # the data sources whose syncs folded in: those refreshed

    @property
    def run_key(self) -> str:
        return f"sync:{self.tenant}:{self.first_seq}"


@dataclass(frozen=True)
class Gap:
    """Stream sequences the sensor never read: aged out or deleted, or the stream was recreated."""

    after: int
    resumed: int
    recreated: bool = False

    def describe(self, stream: str = SYNC_STREAM) -> str:
        if self.recreated:
            return (
                f"{stream} was recreated (its storage was lost): read again from sequence {self.resumed}, "
                f"the cursor was at {self.after}; events may be lost"
            )
        if self.resumed <= self.after:
            return f"{stream} restarted at sequence {self.resumed} (the cursor was at {self.after}): events may be lost"
        return f"sequences {self.after + 1}..{self.resumed - 1} left {stream} before they were read"


@dataclass
class TickOutcome:
    """What one tick decided: windows to run, events to dead-letter, gaps to refresh for."""

    closed: list[Window] = field(default_factory=list)
    rejections: list[Rejection] = field(default_factory=list)
    gaps: list[Gap] = field(default_factory=list)
    orphaned: list[Window] = field(default_factory=list)
    events: int = 0


@dataclass
class Debounce:
    """The sensor's whole state: the last stream sequence consumed, the stream's clock, open windows, counts."""

    seq: int | None = None
    clock_ms: int = 0
    windows: dict[str, Window] = field(default_factory=dict)
    stats: Counter = field(default_factory=Counter)
    stream_created: str | None = None  # the stream this cursor's sequences belong to

    @classmethod
    def from_cursor(cls, cursor: str | None) -> Debounce:
        if not cursor:
            return cls()
        try:
            state = json.loads(cursor)
            if state.get("version") != CURSOR_VERSION:
                raise ValueError(f"version {state.get('version')!r}, not {CURSOR_VERSION}")
            return cls(
                seq=state["seq"],
                clock_ms=state["clock_ms"],
                stream_created=state.get("stream_created"),
                windows={tenant: Window(tenant=tenant, **window) for tenant, window in state["windows"].items()},
                stats=Counter(state["stats"]),
            )
        except (ValueError, KeyError, TypeError, AttributeError) as error:
            raise ValueError(
                f"the sync_event_sensor cursor is not one this code wrote ({error}): "
                "reset it in the UI (Sensors > sync_event_sensor) to start again from the stream's first event"
            ) from None

    def to_cursor(self) -> str:
        windows = {}
        for tenant, window in sorted(self.windows.items()):
            fields = asdict(window)
            del fields["tenant"]
            windows[tenant] = fields
        return json.dumps(
            {
                "version": CURSOR_VERSION,
                "seq": self.seq,
                "clock_ms": self.clock_ms,
                "stream_created": self.stream_created,
                "windows": windows,
                "stats": dict(sorted(self.stats.items())),
            },
            separators=(",", ":"),
        )

    def advance(
        self,
        batch: StreamBatch,
        registry: Registry,
        window_ms: int,
        now_ms: int,
        max_runs: int = MAX_RUNS_PER_TICK,
        streams: EventStreams = DEFAULT_STREAMS,
    ) -> TickOutcome:
        """Consume one batch: fold good events into windows, reject bad ones, note gaps, close due windows.

        `now_ms` is the reader's clock taken before the batch was read; it only counts
        when the batch reached the end of the stream (see the module docstring). Once
        `max_runs` windows have closed, the rest of the batch is left for the next tick.
        """
        outcome = TickOutcome()
        ended: list[Window] = []
        expected = batch.start
        recreated = self.seq is not None and None not in (self.stream_created, batch.created)
        recreated = recreated and batch.created != self.stream_created
        if recreated or (self.seq is not None and batch.start != self.seq + 1):
            outcome.gaps.append(Gap(self.seq, batch.start, recreated))
        self.stream_created = batch.created or self.stream_created
        consumed = 0
        for message in batch.messages:
            if len(ended) >= max_runs:
                break
            consumed += 1
            if message.seq != expected:
                outcome.gaps.append(Gap(expected - 1, message.seq))
            expected = message.seq + 1
            self.clock_ms = max(self.clock_ms, message.time_ms)
            verdict = check_event(message, registry, streams)
            if isinstance(verdict, Rejection):
                outcome.rejections.append(verdict)
                self.stats[f"dead_lettered.{verdict.reason}"] += 1
                continue
            outcome.events += 1
            previous = self._fold(verdict, window_ms)
            if previous:
                ended.append(previous)
        self.seq = expected - 1
        whole = batch.complete and consumed == len(batch.messages)
        clock = max(self.clock_ms, now_ms) if whole else self.clock_ms
        due = [window for window in self.windows.values() if window.closes_ms <= clock]
        for window in due:
            del self.windows[window.tenant]
        for window in sorted(ended + due, key=lambda w: w.first_seq):
            (outcome.closed if window.tenant in registry else outcome.orphaned).append(window)
        self.stats.update(
            events=outcome.events, runs=len(outcome.closed), gaps=len(outcome.gaps), orphaned=len(outcome.orphaned)
        )
        return outcome

    def _fold(self, event: SyncEvent, window_ms: int) -> Window | None:
        """Fold an event into its tenant's window; an event stamped after the window's end closes it
        (returned) and opens the next."""
        current = self.windows.get(event.tenant)
        if current and event.time_ms < current.closes_ms:
            sources = sorted({*current.sources, event.data_source})
            self.windows[event.tenant] = replace(
                current, last_seq=event.seq, events=current.events + 1, sources=sources
            )
            return None
        self.windows[event.tenant] = Window(
            event.tenant, event.seq, event.seq, 1, event.time_ms, event.time_ms + window_ms, [event.data_source]
        )
        return current
