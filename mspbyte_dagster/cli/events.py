"""`mspbyte events publish`: a sync event on NATS, exactly as the sync workers publish it."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime

import click

from mspbyte_dagster.cli.common import app_engine, echo_json, expected_errors, fail, main, settings


@main.group()
def events() -> None:
    """Sync events on NATS JetStream (NATS_URL)."""


@events.command("publish")
@click.option("--tenant", required=True, help="Tenant key.")
@click.option("--data-source", "data_source", required=True, help="The tenant's data source id (e.g. m365).")
@click.option("--sync-id", "sync_id", help="The sync's id (a new UUID by default); JetStream drops a repeat.")
@click.option("--json", "as_json", is_flag=True)
@expected_errors
def events_publish(tenant: str, data_source: str, sync_id: str | None, as_json: bool) -> None:
    """Publish a sync-completed event to MSPBYTE_SYNC (the stream is created if missing).

    With MSPBYTE_NAMESPACE=NS the stream is NS_MSPBYTE_SYNC and the subject NS.mspbyte.sync.<tenant>.<source>."""
    from mspbyte_dagster.lib.events import (
        EventStreams,
        Rejection,
        StreamMessage,
        check_event,
        source_registry,
        sync_event_payload,
    )
    from mspbyte_dagster.lib.model import MICROSOFT365
    from mspbyte_dagster.lib.nats_client import JetStream, NatsUnavailableError, OutgoingMessage
    from mspbyte_dagster.lib.store.tenants import list_tenants

    current = settings()
    url, streams = current.nats_url, EventStreams(current.namespace)
    if url is None:
        fail("NATS_URL is not set: point it at the NATS server (e.g. nats://localhost:4222)")
    with app_engine(read_only=True).connect() as conn:
        registry = source_registry(list_tenants(conn))
    integration = registry.get(tenant, {}).get(data_source, MICROSOFT365)
    sync_id = sync_id or str(uuid.uuid4())
    subject = streams.sync_subject(tenant, data_source)
    payload = sync_event_payload(tenant, data_source, sync_id, datetime.now(UTC), integration)
    verdict = check_event(StreamMessage(0, 0, subject, payload), registry, streams)  # the sensor's own rules
    if isinstance(verdict, Rejection):
        fail(f"refused: {verdict.detail}; `mspbyte tenants list` shows tenants and their data sources")
    try:
        [sequence] = JetStream(url, streams).publish([OutgoingMessage(subject, payload, {"Nats-Msg-Id": sync_id})])
    except NatsUnavailableError as error:
        fail(str(error), code=1)
    if as_json:
        echo_json(
            {"stream": streams.sync_stream, "sequence": sequence, "subject": subject, "event": json.loads(payload)}
        )
        return
    click.echo(f"published sync {sync_id} for {tenant}/{data_source}: {streams.sync_stream} sequence {sequence}")
