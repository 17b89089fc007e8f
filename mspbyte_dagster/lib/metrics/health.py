"""`/health`: the app database, Redis and NATS, each checked on its own and marked required or not.

A part is required when the configuration uses it (REDIS_URL, NATS_URL set); the health is bad only
when a required part does not answer. Details name hosts, never credentials.
"""

from __future__ import annotations

import socket
from dataclasses import asdict, dataclass
from urllib.parse import urlsplit

import redis
from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from mspbyte_dagster.lib.store.db import DatabaseNotReadyError, require_migrated

TIMEOUT_SECONDS = 2.0


@dataclass(frozen=True)
class PartHealth:
    required: bool
    ok: bool
    detail: str


def database_health(engine: Engine) -> tuple[bool, str]:
    """Whether the app database answers with the code's schema, and if not, why."""
    try:
        require_migrated(engine)
    except DatabaseNotReadyError as error:
        return False, str(error)
    except SQLAlchemyError as error:
        cause = getattr(error, "orig", None) or error
        first_line = (str(cause).strip().splitlines() or [""])[0]
        where = engine.url.render_as_string(hide_password=True)
        return False, f"the app database {where} does not answer: {type(cause).__name__}: {first_line}"
    return True, "the app database answers"


def _where(url: str, default_port: int) -> tuple[str, int]:
    """Host and port only: user and password never leave the URL."""
    parsed = urlsplit(url)
    return parsed.hostname or "127.0.0.1", parsed.port or default_port


def redis_health(url: str | None) -> PartHealth:
    if not url:
        return PartHealth(False, True, "not configured (REDIS_URL unset): run-time flags live in the app database")
    host, port = _where(url, 6379)
    try:
        client = redis.Redis.from_url(url, socket_timeout=TIMEOUT_SECONDS, socket_connect_timeout=TIMEOUT_SECONDS)
        with client:
            client.ping()
    except redis.RedisError as error:
        return PartHealth(True, False, f"Redis at {host}:{port} does not answer: {type(error).__name__}")
    return PartHealth(True, True, f"Redis at {host}:{port} answers")


def nats_health(url: str | None) -> PartHealth:
    """A NATS server greets every connection with an INFO line: reading it proves a server, not a port."""
    if not url:
        return PartHealth(False, True, "not configured (NATS_URL unset): no sync events are read")
    host, port = _where(url.split(",")[0], 4222)
    try:
        with socket.create_connection((host, port), timeout=TIMEOUT_SECONDS) as connection:
            greeting = connection.recv(4096)
    except OSError as error:
        return PartHealth(True, False, f"NATS at {host}:{port} does not answer: {error.strerror or error}")
    if not greeting.startswith(b"INFO "):
        return PartHealth(True, False, f"{host}:{port} answers, but not as a NATS server")
    return PartHealth(True, True, f"NATS at {host}:{port} answers")


def health(engine: Engine, redis_url: str | None, nats_url: str | None) -> tuple[bool, dict]:
    """Every part's health, and whether all the required ones answer (the app database always is)."""
    database_ok, database_detail = database_health(engine)
    parts = {
        "database": PartHealth(True, database_ok, database_detail),
        "redis": redis_health(redis_url),
        "nats": nats_health(nats_url),
    }
    healthy = all(part.ok for part in parts.values() if part.required)
    failing = [name for name, part in parts.items() if part.required and not part.ok]
    body = {
        "status": "ok" if healthy else "unavailable",
        "detail": "; ".join(parts[name].detail for name in failing) or "every required part answers",
        "parts": {name: asdict(part) for name, part in parts.items()},
    }
    return healthy, body
