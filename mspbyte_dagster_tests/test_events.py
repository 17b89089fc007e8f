"""The sync-event rules without NATS or Dagster: checking events, debounce windows, gaps, the cursor."""

import json
from datetime import UTC, datetime

import pytest

from mspbyte_dagster.lib.events import (
    DEFAULT_STREAMS,
    MALFORMED_JSON,
    UNKNOWN_DATA_SOURCE,
    UNKNOWN_TENANT,
    WRONG_SCHEMA,
    Debounce,
    EventStreams,
    Rejection,
    StreamBatch,
    StreamMessage,
    SyncEvent,
    check_event,
    read_start,
    sync_event_payload,
)

WINDOW = 1_000
T0 = 1_800_000_000_000
REGISTRY = {"alpha": {"m365": "microsoft365"}, "bravo": {"m365": "microsoft365"}}
sync_subject = DEFAULT_STREAMS.sync_subject


def event(seq: int, at: int, tenant: str = "alpha", data_source: str = "m365", **fields) -> StreamMessage:
    payload = json.loads(sync_event_payload(tenant, data_source, f"sync-{seq}", datetime(2026, 11, 1, tzinfo=UTC)))
    payload.update(fields)
    return StreamMessage(seq, T0 + at, sync_subject(tenant, data_source), json.dumps(payload).encode())


def batch(*messages: StreamMessage, start: int | None = None, complete: bool = False) -> StreamBatch:
    return StreamBatch(start if start is not None else messages[0].seq, list(messages), complete)


def runs(state: Debounce, *messages: StreamMessage, now: int = 0, complete: bool = False, start=None):
    outcome = state.advance(batch(*messages, start=start, complete=complete), REGISTRY, WINDOW, T0 + now)
    return [(w.run_key, w.events) for w in outcome.closed]


def test_events_of_a_tenant_inside_the_window_fold_into_one_run():
    state = Debounce()
    assert runs(state, event(1, 0), event(2, 10), event(3, 999)) == []
    assert state.windows["alpha"].events == 3 and state.windows["alpha"].closes_ms == T0 + WINDOW
    assert runs(state, event(4, 1_000, tenant="bravo")) == [("sync:alpha:1", 3)]


def test_an_event_stamped_after_the_window_closes_it_and_opens_the_next():
    state = Debounce()
    assert runs(state, event(1, 0), event(2, 500), event(3, 1_000), event(4, 1_100)) == [("sync:alpha:1", 2)]
    assert (state.windows["alpha"].first_seq, state.windows["alpha"].events) == (3, 2)


def test_the_readers_clock_closes_a_quiet_window_only_when_the_read_reached_the_end():
    state = Debounce()
    assert runs(state, event(1, 0), now=5_000, complete=False) == []  # more to read: only the stream's clock counts
    assert runs(state, event(2, 10), now=500, complete=True) == []  # caught up, but the window is still open
    assert runs(state, start=3, now=1_000, complete=True) == [("sync:alpha:1", 2)]


def test_a_replay_from_a_saved_cursor_decides_the_same_as_one_long_read():
    messages = [event(seq, seq * 150, tenant="alpha" if seq % 3 else "bravo") for seq in range(1, 40)]
    whole = Debounce()
    in_one = runs(whole, *messages)
    pieces, in_pieces = Debounce(), []
    for first in range(0, len(messages), 7):
        cursor = pieces.to_cursor()
        runs(Debounce.from_cursor(cursor), *messages[first : first + 7])  # a tick whose cursor is never saved
        pieces = Debounce.from_cursor(cursor)
        in_pieces += runs(pieces, *messages[first : first + 7])
    assert in_pieces == in_one and len(in_one) > 2
    assert pieces.to_cursor() == whole.to_cursor()


def test_a_zero_window_gives_every_event_its_own_run():
    state = Debounce()
    outcome = state.advance(batch(event(1, 0), event(2, 0), complete=True), REGISTRY, 0, T0)
    assert [w.run_key for w in outcome.closed] == ["sync:alpha:1", "sync:alpha:2"]


def test_a_tick_stops_folding_once_enough_windows_have_closed_and_leaves_the_rest():
    state = Debounce()
    messages = [event(seq, seq * WINDOW) for seq in range(1, 6)]  # each event closes the previous window
    outcome = state.advance(batch(*messages, complete=True), REGISTRY, WINDOW, T0 + 10 * WINDOW, max_runs=2)
    assert [w.run_key for w in outcome.closed] == ["sync:alpha:1", "sync:alpha:2"]
    assert state.seq == 3 and state.windows["alpha"].first_seq == 3  # not closed by the clock: 4 and 5 are unread
    assert runs(state, *messages[3:], now=10 * WINDOW, complete=True) == [
        ("sync:alpha:3", 1),
        ("sync:alpha:4", 1),
        ("sync:alpha:5", 1),
    ]


def test_a_window_of_a_tenant_no_longer_registered_starts_no_run():
    state = Debounce()
    runs(state, event(1, 0, tenant="bravo"))
    outcome = state.advance(batch(event(2, 2_000)), {"alpha": REGISTRY["alpha"]}, WINDOW, T0)
    assert outcome.closed == [] and [w.run_key for w in outcome.orphaned] == ["sync:bravo:1"]


@pytest.mark.parametrize(
    ("message", "reason", "detail"),
    [
        (StreamMessage(1, T0, sync_subject("alpha", "m365"), b"{not json"), MALFORMED_JSON, "not JSON"),
        (StreamMessage(1, T0, sync_subject("alpha", "m365"), b"\xff\xfe"), MALFORMED_JSON, "not JSON"),
        (StreamMessage(1, T0, sync_subject("alpha", "m365"), b"[1, 2]"), WRONG_SCHEMA, "JSON list"),
        (event(1, 0, syncId=""), WRONG_SCHEMA, "syncId"),
        (event(1, 0, completedAt="yesterday"), WRONG_SCHEMA, "completedAt"),
        (event(1, 0, completedAt=1793491200), WRONG_SCHEMA, "completedAt 1793491200 is not an ISO-8601"),
        (event(1, 0, syncId=5), WRONG_SCHEMA, "syncId 5 is not a string"),
        (event(1, 0, completedAt="2026-11-01T00:00:00"), WRONG_SCHEMA, "no time zone"),
        (event(1, 0, integration="google"), WRONG_SCHEMA, "integration 'google'"),
        (event(1, 0, tenantId="a b"), WRONG_SCHEMA, "tenantId 'a b'"),
        (event(1, 0, tenantId="bravo"), WRONG_SCHEMA, "does not match"),
        (event(1, 0, tenant="ghost"), UNKNOWN_TENANT, "tenant 'ghost' is not registered"),
        (
            event(1, 0, data_source="entra"),
            UNKNOWN_DATA_SOURCE,
            "'entra' (microsoft365) is not registered to tenant 'alpha'",
        ),
    ],
)
def test_each_kind_of_bad_event_is_rejected_with_its_reason(message, reason, detail):
    verdict = check_event(message, REGISTRY)
    assert isinstance(verdict, Rejection) and verdict.reason == reason and detail in verdict.detail
    assert "\n" not in verdict.header


def test_a_missing_field_is_named():
    payload = json.loads(event(1, 0).data)
    del payload["completedAt"], payload["syncId"]
    verdict = check_event(StreamMessage(1, T0, sync_subject("alpha", "m365"), json.dumps(payload).encode()), REGISTRY)
    assert verdict.reason == WRONG_SCHEMA and verdict.detail == "missing field(s) syncId, completedAt"


def test_a_good_event_is_read_with_its_sequence_and_timestamp():
    assert check_event(event(7, 42), REGISTRY) == SyncEvent("alpha", "m365", "sync-7", 7, T0 + 42)


def test_a_namespace_names_every_stream_and_subject_and_checks_subjects_by_it():
    staging = EventStreams("staging")
    assert (staging.sync_stream, staging.dlq_stream) == ("staging_MSPBYTE_SYNC", "staging_MSPBYTE_DLQ")
    assert (staging.sync_subjects, staging.dlq_subject) == ("staging.mspbyte.sync.>", "staging.mspbyte.dlq.sync")
    assert (DEFAULT_STREAMS.sync_stream, DEFAULT_STREAMS.sync_subjects) == ("MSPBYTE_SYNC", "mspbyte.sync.>")
    message = StreamMessage(1, T0, staging.sync_subject("alpha", "m365"), event(1, 0).data)
    assert isinstance(check_event(message, REGISTRY, staging), SyncEvent)
    refused = check_event(message, REGISTRY)  # the same event read as an installation without the namespace
    assert refused.reason == WRONG_SCHEMA and "does not match" in refused.detail


def test_bad_events_are_counted_and_skipped_and_the_good_ones_go_on():
    state = Debounce()
    outcome = state.advance(batch(event(1, 0, tenant="ghost"), event(2, 0)), REGISTRY, WINDOW, T0)
    assert [r.message.seq for r in outcome.rejections] == [1] and outcome.events == 1
    assert state.seq == 2 and state.stats["dead_lettered.unknown_tenant"] == 1 and state.stats["events"] == 1


def test_reading_starts_at_the_first_sequence_without_a_cursor_and_reports_no_gap():
    assert read_start(None, 40, 90) == 40
    assert read_start(None, 0, 0) == 1  # a new, empty stream
    state = Debounce()
    assert state.advance(batch(event(40, 0)), REGISTRY, WINDOW, T0).gaps == []


def test_messages_that_aged_out_before_being_read_are_a_gap():
    assert read_start(10, 25, 90) == 25
    state = Debounce(seq=10)
    outcome = state.advance(batch(event(25, 0), event(27, 1)), REGISTRY, WINDOW, T0)
    assert [gap.describe() for gap in outcome.gaps] == [
        "sequences 11..24 left MSPBYTE_SYNC before they were read",
        "sequences 26..26 left MSPBYTE_SYNC before they were read",
    ]
    assert state.seq == 27 and state.stats["gaps"] == 2


def test_a_recreated_stream_is_read_from_its_start_and_reported():
    assert read_start(500, 1, 3) == 1
    outcome = Debounce(seq=500).advance(batch(event(1, 0)), REGISTRY, WINDOW, T0)
    assert "restarted at sequence 1 (the cursor was at 500)" in outcome.gaps[0].describe()


def test_an_empty_read_keeps_the_position():
    state = Debounce(seq=12)
    state.advance(StreamBatch(13, [], complete=True), REGISTRY, WINDOW, T0)
    assert state.seq == 12


def test_the_cursor_keeps_open_windows_and_counts():
    state = Debounce()
    runs(state, event(1, 0), event(2, 5, tenant="bravo"), event(3, 7, tenant="ghost"))
    again = Debounce.from_cursor(state.to_cursor())
    assert again == state and again.windows["bravo"].first_seq == 2


def test_a_foreign_cursor_is_refused_with_what_to_do():
    with pytest.raises(ValueError, match="reset it in the UI"):
        Debounce.from_cursor('{"last": 3}')


@pytest.mark.parametrize("key", ["alpha\n", "alpha\r\n", " alpha", "alpha\x00"])
def test_a_look_alike_tenant_key_is_refused(key):
    """`$` matches before a final newline: the key check is a full match."""
    from mspbyte_dagster.lib.model import is_tenant_key

    assert not is_tenant_key(key)
    verdict = check_event(event(1, 0, tenantId=key), REGISTRY)
    assert verdict.reason == WRONG_SCHEMA and "is not a key" in verdict.detail
