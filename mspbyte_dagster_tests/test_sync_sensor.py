"""sync_event_sensor and tenant_registry_sensor against the real NATS JetStream, app database and Dagster instance."""

from __future__ import annotations

import asyncio
import json
import shutil
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

import nats
import nats.js.errors
import pytest
from click.testing import CliRunner
from dagster import AddDynamicPartitionsRequest, DagsterInstance, DeleteDynamicPartitionsRequest, build_sensor_context

from mspbyte_dagster.cli import main
from mspbyte_dagster.definitions import defs
from mspbyte_dagster.defs.partitions import RANGE_END_TAG, RANGE_START_TAG, TENANTS
from mspbyte_dagster.defs.resources import DatabaseResource, NatsResource
from mspbyte_dagster.defs.sensors import SYNC_EVENTS_TAG, sync_event_sensor, tenant_registry_sensor
from mspbyte_dagster.lib.events import (
    REASON_HEADER,
    SEQUENCE_HEADER,
    Debounce,
    EventStreams,
    sync_event_payload,
)
from mspbyte_dagster.lib.nats_client import MAX_DEAD_LETTER_BYTES, TRUNCATED_HEADER, JetStream, OutgoingMessage
from mspbyte_dagster.lib.store.db import engine_for
from mspbyte_dagster.lib.store.tenants import ensure_m365_source, upsert_tenant
from mspbyte_dagster_tests.services import RUN_ID, free_port
from mspbyte_dev import stack

# --- helpers (the benchmark uses them too) -------------------------------------------------------


def own_streams(url: str) -> JetStream:
    """Streams of a namespace nobody else uses, on a shared server: a test or a benchmark reads only its own."""
    jetstream = JetStream(url, EventStreams(f"test-{RUN_ID}-{uuid.uuid4().hex[:8]}"))
    jetstream.ensure_streams()
    return jetstream


def delete_streams(jetstream: JetStream) -> None:
    """Remove the streams `own_streams` made, and nothing else."""
    stack.delete_streams(jetstream.url, jetstream.streams.namespace)


def register_tenants(database_url: str, keys: list[str]) -> None:
    """Tenants with their Microsoft 365 data source (`m365`), in this order."""
    with engine_for(database_url).begin() as conn:
        for key in keys:
            upsert_tenant(conn, key, f"Tenant {key}", None)
            ensure_m365_source(conn, key, "files", None)


def sync_message(streams: EventStreams, tenant: str, data_source: str = "m365", sync_id: str = "s") -> OutgoingMessage:
    completed = datetime(2026, 11, 1, tzinfo=UTC)
    return OutgoingMessage(
        streams.sync_subject(tenant, data_source), sync_event_payload(tenant, data_source, sync_id, completed)
    )


def tick(instance: DagsterInstance, cursor: str | None = None, sensor=sync_event_sensor, **nats_config):
    """One sensor evaluation as the daemon does it; partitions it asks for are added, as the daemon would."""
    resources = {"database": DatabaseResource(), "nats": NatsResource(**nats_config)}
    with build_sensor_context(
        instance_ref=instance.get_ref(), definitions=defs, cursor=cursor, resources=resources
    ) as context:
        result = sensor.evaluate_tick(context)
    for request in result.dynamic_partitions_requests or []:
        if isinstance(request, AddDynamicPartitionsRequest):
            instance.add_dynamic_partitions(TENANTS, list(request.partition_keys))
        else:
            for key in request.partition_keys:
                instance.delete_dynamic_partition(TENANTS, key)
    return result


def sync_runs(result) -> dict[str, int]:
    """Run key -> number of events folded, of the tick's single-tenant runs."""
    return {r.run_key: int(r.tags[SYNC_EVENTS_TAG]) for r in result.run_requests if r.partition_key}


def all_messages(jetstream: JetStream, stream: str):
    return jetstream.read(stream, None, 1_000_000, 60).messages


def sync_messages(jetstream: JetStream):
    return all_messages(jetstream, jetstream.streams.sync_stream)


def dead_letters(jetstream: JetStream):
    return all_messages(jetstream, jetstream.streams.dlq_stream)


@contextmanager
def streams_at(url: str, monkeypatch) -> Iterator[JetStream]:
    """NATS_URL and MSPBYTE_NAMESPACE of fresh streams, for the sensor and `mspbyte`; removed afterwards."""
    jetstream = own_streams(url)
    monkeypatch.setenv("NATS_URL", url)
    monkeypatch.setenv("MSPBYTE_NAMESPACE", jetstream.streams.namespace)
    try:
        yield jetstream
    finally:
        delete_streams(jetstream)


# --- fixtures -------------------------------------------------------------------------------------


@pytest.fixture
def streams(app_env, monkeypatch, nats_url):
    """Streams of this test alone on the test run's NATS server."""
    with streams_at(nats_url, monkeypatch) as jetstream:
        yield jetstream


@pytest.fixture(scope="session")
def dagster_home_template(tmp_path_factory):
    """One initialised Dagster home; each test gets a copy (creating its storage takes seconds)."""
    home = tmp_path_factory.mktemp("dagster_home")
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    DagsterInstance.from_config(str(home)).dispose()
    return home


@pytest.fixture
def instance(app_env, dagster_home_template):
    """The Dagster instance of the test's DAGSTER_HOME, as `mspbyte` and the daemon open it."""
    shutil.copytree(dagster_home_template, app_env["DAGSTER_HOME"], dirs_exist_ok=True)
    return DagsterInstance.get()


@pytest.fixture
def window(monkeypatch):
    """A short debounce window, so a test can see windows close without waiting five minutes."""
    milliseconds = 400
    monkeypatch.setenv("MAX_DEBOUNCE_WINDOW_MS", str(milliseconds))
    return milliseconds / 1000


@pytest.fixture
def restartable_streams(app_env, monkeypatch, private_nats):
    """Streams on a NATS server of this test alone, which it stops and starts."""
    with streams_at(private_nats.url, monkeypatch) as jetstream:
        yield jetstream, private_nats
        if private_nats.process.poll() is not None:
            private_nats.start()  # the streams go with the server, but only a running one says so


# --- tests ----------------------------------------------------------------------------------------


def test_events_of_one_tenant_inside_the_window_make_one_run(streams, instance, app_env, window):
    register_tenants(app_env["DATABASE_URL"], ["alpha", "bravo"])
    [first, *_] = streams.publish([sync_message(streams.streams, "alpha", sync_id=str(n)) for n in range(5)])
    time.sleep(window)
    result = tick(instance)
    assert sync_runs(result) == {f"sync:alpha:{first}": 5}
    [request] = result.run_requests
    assert request.partition_key == "alpha" and request.tags["mspbyte/tenant"] == "alpha"
    assert [d.partition_keys for d in result.dynamic_partitions_requests] == [["alpha", "bravo"]]
    assert tick(instance, result.cursor).run_requests == []


def test_events_across_windows_make_one_run_per_window(streams, instance, app_env, window):
    register_tenants(app_env["DATABASE_URL"], ["alpha", "bravo"])
    early = streams.publish(
        [
            sync_message(streams.streams, "alpha"),
            sync_message(streams.streams, "alpha"),
            sync_message(streams.streams, "bravo"),
        ]
    )
    time.sleep(window * 1.5)
    late = streams.publish([sync_message(streams.streams, "alpha"), sync_message(streams.streams, "alpha")])
    time.sleep(window * 1.5)
    result = tick(instance)
    assert sync_runs(result) == {
        f"sync:alpha:{early[0]}": 2,
        f"sync:bravo:{early[2]}": 1,
        f"sync:alpha:{late[0]}": 2,
    }


def test_no_cursor_starts_at_the_streams_first_event_and_reports_no_gap(streams, instance, app_env, window):
    register_tenants(app_env["DATABASE_URL"], ["alpha"])
    streams.publish([sync_message(streams.streams, "alpha")] * 3)
    first = sync_messages(streams)[0].seq
    result = tick(instance)
    assert "read 3 event(s)" in result.skip_message and "0 gap(s)" in result.skip_message
    assert Debounce.from_cursor(result.cursor).windows["alpha"].first_seq == first


def test_each_kind_of_bad_event_lands_on_the_dead_letter_stream_with_its_reason(streams, instance, app_env, window):
    register_tenants(app_env["DATABASE_URL"], ["alpha"])
    good = sync_message(streams.streams, "alpha")
    bad = {
        "malformed_json": OutgoingMessage(streams.streams.sync_subject("alpha", "m365"), b"{oops"),
        "wrong_schema": OutgoingMessage(
            streams.streams.sync_subject("alpha", "m365"), json.dumps({"tenantId": "alpha"}).encode()
        ),
        "unknown_tenant": sync_message(streams.streams, "ghost"),
        "unknown_data_source": sync_message(streams.streams, "alpha", data_source="entra"),
    }
    sequences = streams.publish([*bad.values(), good])
    time.sleep(window)
    result = tick(instance)
    assert sync_runs(result) == {f"sync:alpha:{sequences[-1]}": 1}  # the sensor went on
    letters = dead_letters(streams)
    assert [m.headers[REASON_HEADER].split(":")[0] for m in letters] == list(bad)
    assert [int(m.headers[SEQUENCE_HEADER]) for m in letters] == sequences[:-1]
    assert [m.data for m in letters] == [m.data for m in bad.values()]  # the original bytes, to replay
    assert "missing field(s) dataSourceId" in letters[1].headers[REASON_HEADER]
    stats = json.loads(result.cursor)["stats"]
    assert {reason: stats[f"dead_lettered.{reason}"] for reason in bad} == dict.fromkeys(bad, 1)


def test_a_sequence_gap_requests_a_full_refresh_in_ranges_of_50(streams, instance, app_env, window):
    keys = [f"t{n:03d}" for n in range(120)]
    register_tenants(app_env["DATABASE_URL"], keys)
    streams.publish([sync_message(streams.streams, "t000")])
    cursor = tick(instance).cursor
    unread = streams.publish([sync_message(streams.streams, "t001")] * 3)
    asyncio.run(_purge_before(streams, unread[-1] + 1))  # what max_age does to messages nobody read in 7 days
    streams.publish([sync_message(streams.streams, "t002")])
    result = tick(instance, cursor)
    refresh = [r for r in result.run_requests if r.partition_key is None]
    assert [(r.tags[RANGE_START_TAG], r.tags[RANGE_END_TAG]) for r in refresh] == [
        ("t000", "t049"),
        ("t050", "t099"),
        ("t100", "t119"),
    ]
    assert all(r.run_key.startswith(f"refresh:{unread[0] - 1}-{unread[-1] + 1}:") for r in refresh)
    assert json.loads(result.cursor)["stats"]["gaps"] == 1


async def _purge_before(jetstream: JetStream, sequence: int) -> None:
    """Drop this test's own sync events before `sequence`."""
    client = await nats.connect(jetstream.url)
    await client.jetstream().purge_stream(jetstream.streams.sync_stream, seq=sequence)
    await client.close()


def test_without_nats_url_the_sensor_says_it_is_not_configured(app_env, instance, monkeypatch):
    monkeypatch.delenv("NATS_URL", raising=False)
    result = tick(instance)
    assert "not configured" in result.skip_message and "NATS_URL" in result.skip_message


def test_unreachable_nats_is_reported_and_the_cursor_kept(streams, instance, app_env, monkeypatch):
    register_tenants(app_env["DATABASE_URL"], ["alpha"])
    cursor = tick(instance).cursor
    port = free_port()  # nothing listens there
    monkeypatch.setenv("NATS_URL", f"nats://watcher:hunter2@127.0.0.1:{port}")
    result = tick(instance, cursor)
    assert f"NATS at nats://127.0.0.1:{port} is unreachable" in result.skip_message
    assert "resumes after sequence" in result.skip_message and "hunter2" not in result.skip_message
    assert result.cursor == cursor and result.run_requests == []


def test_registry_sensor_adds_and_removes_partitions(app_env, instance):
    register_tenants(app_env["DATABASE_URL"], ["alpha", "bravo", "charlie"])
    instance.add_dynamic_partitions(TENANTS, ["bravo", "gone"])
    result = tick(instance, sensor=tenant_registry_sensor)
    [add, delete] = result.dynamic_partitions_requests
    assert isinstance(add, AddDynamicPartitionsRequest) and isinstance(delete, DeleteDynamicPartitionsRequest)
    assert (list(add.partition_keys), list(delete.partition_keys)) == (["alpha", "charlie"], ["gone"])
    assert sorted(instance.get_dynamic_partitions(TENANTS)) == ["alpha", "bravo", "charlie"]
    assert tick(instance, sensor=tenant_registry_sensor).dynamic_partitions_requests == []


def test_registry_sensor_never_wipes_the_fleet_and_removes_a_tenth_a_tick(app_env, instance):
    fleet = [f"t{n:02d}" for n in range(30)]
    instance.add_dynamic_partitions(TENANTS, fleet)
    empty = tick(instance, sensor=tenant_registry_sensor)  # DATABASE_URL at a new, empty database
    assert empty.dynamic_partitions_requests == [] and "registry is empty" in empty.skip_message
    assert instance.get_dynamic_partitions(TENANTS) == fleet
    register_tenants(app_env["DATABASE_URL"], fleet[:20])  # ten tenants really left
    removed = []
    for _ in range(5):
        result = tick(instance, sensor=tenant_registry_sensor)
        removed += [key for request in result.dynamic_partitions_requests for key in request.partition_keys]
    assert (
        removed == fleet[20:23] + fleet[23:26] + fleet[26:28] + fleet[28:30]
    )  # a tenth of the partitions a tick, at least one
    assert instance.get_dynamic_partitions(TENANTS) == fleet[:20]


def test_mspbyte_events_publish_writes_what_the_sensor_reads(streams, instance, app_env, window):
    register_tenants(app_env["DATABASE_URL"], ["alpha"])
    runner = CliRunner()
    result = runner.invoke(main, ["events", "publish", "--tenant", "alpha", "--data-source", "m365", "--json"])
    assert result.exit_code == 0, result.stderr
    published = json.loads(result.stdout)
    assert published["subject"] == f"{streams.streams.namespace}.mspbyte.sync.alpha.m365"
    assert published["stream"] == f"{streams.streams.namespace}_MSPBYTE_SYNC"
    assert {"tenantId", "dataSourceId", "integration", "syncId", "completedAt"} <= published["event"].keys()
    time.sleep(window)
    assert sync_runs(tick(instance)) == {f"sync:alpha:{published['sequence']}": 1}
    for args, named in (
        (["--tenant", "ghost", "--data-source", "m365"], "tenant 'ghost' is not registered"),
        (["--tenant", "alpha", "--data-source", "entra"], "'entra' (microsoft365) is not registered"),
    ):
        refused = runner.invoke(main, ["events", "publish", *args])
        assert refused.exit_code == 2 and named in refused.stderr
    assert len(sync_messages(streams)) == 1


def test_ten_thousand_events_over_200_tenants_run_every_window_once(restartable_streams, instance, app_env, window):
    """Ticks of 1,500 events; one tick fails (its cursor is never saved) and NATS restarts between ticks."""
    streams, server = restartable_streams
    keys = [f"t{n:03d}" for n in range(200)]
    register_tenants(app_env["DATABASE_URL"], keys)
    bad = [sync_message(streams.streams, "ghost")] * 5

    def publish_round(round_no: int) -> int:
        messages = [sync_message(streams.streams, keys[n % 200], sync_id=f"{round_no}-{n}") for n in range(5_000)]
        if round_no == 0:
            messages[1_600:1_600] = bad  # inside the tick that fails
        return streams.publish(messages)[-1]

    kept: list = []

    def saved(result) -> str:
        kept.append(result)
        return result.cursor

    publish_round(0)
    cursor = saved(tick(instance, None, max_events_per_tick=1_500))
    failed = tick(instance, cursor, max_events_per_tick=1_500)  # its cursor is lost: the tick failed
    replayed = tick(instance, cursor, max_events_per_tick=1_500)
    assert sync_runs(replayed) == sync_runs(failed)  # not at the stream's end: decided by the data alone
    cursor = saved(replayed)
    server.stop()
    down = tick(instance, cursor, max_events_per_tick=1_500)
    assert "is unreachable" in down.skip_message and down.cursor == cursor
    server.start()
    cursor = saved(tick(instance, cursor, max_events_per_tick=1_500))
    time.sleep(window)
    last = publish_round(1)
    time.sleep(window)
    for _ in range(20):
        cursor = saved(tick(instance, cursor, max_events_per_tick=1_500))
        state = Debounce.from_cursor(cursor)
        if state.seq == last and not state.windows:
            break
    else:
        pytest.fail(f"the sensor did not catch up with sequence {last}: {cursor}")

    launched = [key for result in kept for key in sync_runs(result)]
    assert len(launched) == len(set(launched)), "a window was requested twice"
    assert {key: n for result in kept for key, n in sync_runs(result).items()} == expected_windows(streams, window)
    assert sum(n for result in kept for n in sync_runs(result).values()) == 10_000
    assert {key.split(":")[1] for key in launched} == set(keys)
    assert [m.headers[REASON_HEADER].split(":")[0] for m in dead_letters(streams)] == ["unknown_tenant"] * 5


def expected_windows(streams: JetStream, window_seconds: float) -> dict[str, int]:
    """The windows the stream's own timestamps call for, worked out independently of the sensor."""
    window_ms, opened, windows = window_seconds * 1000, {}, Counter()
    for message in sync_messages(streams):
        tenant = message.subject.split(".")[-2]
        if tenant == "ghost":
            continue
        first, at = opened.get(tenant, (None, None))
        if first is None or message.time_ms >= at + window_ms:
            first, at = opened[tenant] = (message.seq, message.time_ms)
        windows[f"sync:{tenant}:{first}"] += 1
    return dict(windows)


def test_poison_messages_are_dead_lettered_and_the_sensor_goes_on(streams, instance, app_env, window):
    """Deep nesting, a 5,000-digit number, NaN and a payload near NATS's 1 MiB limit: each once in the
    dead-letter stream (the big one cut, saying so), and the good event behind them still runs."""
    register_tenants(app_env["DATABASE_URL"], ["alpha"])
    subject = streams.streams.sync_subject("alpha", "m365")
    near_limit = b'{"tenantId": "' + b"a" * 1_000_000 + b'"}'
    poison = {
        "deep": b"[" * 100_000 + b"]" * 100_000,
        "digits": b'{"tenantId": ' + b"9" * 5_000 + b"}",
        "nan": b'{"tenantId": NaN}',
        "huge": near_limit,
    }
    sequences = streams.publish([*(OutgoingMessage(subject, data) for data in poison.values())])
    [good] = streams.publish([sync_message(streams.streams, "alpha")])
    time.sleep(window)
    result = tick(instance)
    assert sync_runs(result) == {f"sync:alpha:{good}": 1}
    letters = dead_letters(streams)
    assert [int(m.headers[SEQUENCE_HEADER]) for m in letters] == sequences
    assert {m.headers[REASON_HEADER].split(":")[0] for m in letters[:3]} == {"malformed_json"}
    assert letters[3].headers[REASON_HEADER].startswith("wrong_schema")
    assert letters[3].headers[TRUNCATED_HEADER] == f"{len(near_limit)} bytes, the first {MAX_DEAD_LETTER_BYTES} kept"
    assert letters[3].data == near_limit[:MAX_DEAD_LETTER_BYTES] and letters[0].data == poison["deep"]
    assert tick(instance, result.cursor).run_requests == []  # read once: the cursor moved past them


def test_a_stream_recreated_past_the_cursor_is_noticed_and_read_again_from_its_start(
    streams, instance, app_env, window
):
    """Storage lost: the new stream grew past the saved sequence before the next tick."""
    register_tenants(app_env["DATABASE_URL"], ["alpha", "bravo"])
    streams.publish([sync_message(streams.streams, "alpha", sync_id=str(n)) for n in range(3)])
    cursor = tick(instance).cursor
    delete_streams(streams)
    streams.ensure_streams()
    again = streams.publish([sync_message(streams.streams, "bravo", sync_id=f"b{n}") for n in range(6)])
    assert again[-1] > Debounce.from_cursor(cursor).seq  # the new stream is past the cursor: no visible gap
    time.sleep(window)
    result = tick(instance, cursor)
    refresh = [r for r in result.run_requests if r.partition_key is None]
    assert refresh and json.loads(result.cursor)["stats"]["gaps"] == 1
    assert sync_runs(result)[f"sync:bravo:{again[0]}"] == 6  # every event of the new stream, from its first
