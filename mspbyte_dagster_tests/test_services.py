"""The test run's own servers: started where none answers, owned, never confused with anyone else's."""

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import nats
import pytest

from mspbyte_dagster_tests import services
from mspbyte_dagster_tests.test_sync_sensor import delete_streams, own_streams, sync_message

TESTS = Path(__file__).resolve().parent


class BrokenRedis(services.PrivateRedis):
    """A "server" that complains and exits, as a misconfigured one would."""

    def command(self) -> list[str]:
        return ["sh", "-c", "echo 'FATAL: cannot open the data folder (made-up reason)'; exit 3"]


def test_a_server_that_does_not_start_fails_with_its_log_tail():
    server = BrokenRedis(Path("/bin/sh"))
    try:
        with pytest.raises(services.ServiceFailed) as failed:
            server.start()
    finally:
        server.remove()
    message = str(failed.value)
    assert "exited with code 3" in message and "cannot open the data folder (made-up reason)" in message
    assert str(server.log_path) in message


def test_a_private_server_answers_on_its_own_port_and_folder_and_is_gone_afterwards(private_nats):
    other = services.PrivateNats(private_nats.binary)
    try:
        assert (other.port, other.folder) != (private_nats.port, private_nats.folder)
    finally:
        other.remove()
    assert services.answers(private_nats.url)
    private_nats.stop()
    assert not services.answers(private_nats.url)
    private_nats.start()  # restartable: JetStream keeps its folder
    assert services.answers(private_nats.url)


SERVE_AND_WAIT = """
import json, sys, time
from mspbyte_dagster_tests import services
with services.private_server(services.NATS) as server:
    print(json.dumps({"pid": server.process.pid, "port": server.port, "folder": str(server.folder)}), flush=True)
    time.sleep(600)
"""


@pytest.mark.slow
def test_a_killed_test_run_leaves_no_server_to_reuse():
    run = subprocess.Popen([sys.executable, "-c", SERVE_AND_WAIT], stdout=subprocess.PIPE, text=True)
    started = json.loads(run.stdout.readline())
    os.kill(run.pid, signal.SIGKILL)  # no teardown runs
    run.wait()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and services._alive(started["pid"]):
        time.sleep(0.05)
    assert not services._alive(started["pid"]), "the server outlived its killed test run"
    assert not services.answers(f"nats://127.0.0.1:{started['port']}")
    swept = services.sweep_leftovers()
    # another test run on this machine may sweep the dead run's folder first (it belongs to no live run)
    assert Path(started["folder"]) in swept or not Path(started["folder"]).exists()
    assert not Path(started["folder"]).exists()


def test_streams_of_another_installation_on_the_same_server_survive_a_test(nats_url):
    theirs = own_streams(nats_url)
    try:
        [sequence] = theirs.publish([sync_message(theirs.streams, "alpha")])
        ours = own_streams(nats_url)
        ours.publish([sync_message(ours.streams, "alpha")] * 3)
        delete_streams(ours)
        assert [m.seq for m in theirs.read(theirs.streams.sync_stream, None, 10, 5).messages] == [sequence]
        assert ours.streams.sync_stream not in asyncio.run(_stream_names(nats_url))
    finally:
        delete_streams(theirs)


async def _stream_names(url: str) -> list[str]:
    client = await nats.connect(url)
    try:
        return [info.config.name for info in await client.jetstream().streams_info()]
    finally:
        await client.close()


def test_no_test_stops_or_empties_a_server_it_did_not_start():
    """What would reach someone else's server: killing by name, flushing Redis, purging a stream by its
    shared name. Streams are purged only through a test's own JetStream (its namespace)."""
    forbidden = re.compile(r"pkill|killall|start-stop-daemon|flushall|flushdb|FLUSHALL|FLUSHDB")
    purge = re.compile(r"purge_stream\((?!jetstream\.streams\.)")
    offenders = [
        f"{path.name}:{number}: {line.strip()}"
        for path in sorted(TESTS.glob("*.py"))
        if path.name != Path(__file__).name
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if forbidden.search(line) or purge.search(line)
    ]
    assert offenders == []
