"""The exporter of `mspbyte metrics serve`: /metrics and /health over HTTP, read from the app database."""

from __future__ import annotations

import json
import logging
import socket
import threading
from collections.abc import Callable
from functools import cache, partial
from pathlib import Path
from socketserver import ThreadingMixIn
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import CollectorRegistry, make_wsgi_app
from prometheus_client.registry import Collector
from sqlalchemy import Engine, create_engine
from sqlalchemy.engine import make_url

from mspbyte_dagster.lib.flag_store import flag_store, load_flags
from mspbyte_dagster.lib.flags import FlagDefault
from mspbyte_dagster.lib.metrics.collector import PipelineCollector
from mspbyte_dagster.lib.metrics.health import health
from mspbyte_dagster.lib.store.db import SQLITE_BUSY_TIMEOUT_MS, engine_for

log = logging.getLogger(__name__)


@cache
def read_engine(url: str) -> Engine:
    """The engine the exporter reads with.

    On SQLite, plain autocommit reads on an existing file: the app's engine begins every transaction
    IMMEDIATE (a write lock), so a scrape or a health check would wait behind a whole tenant pass;
    in WAL mode a plain read runs beside the writer. PostgreSQL readers never wait: its engine serves.
    """
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return engine_for(url)
    uri = Path(parsed.database).absolute().as_uri()  # file:///... ; mode=rw never creates a missing file
    return create_engine(
        f"sqlite:///{uri}?mode=rw&uri=true",
        connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000, "isolation_level": None},
    )


def metrics_app(engine: Engine, registry: CollectorRegistry, checked: Callable[[], tuple[bool, dict]]) -> Callable:
    """WSGI: /metrics (text format 0.0.4 unless the scraper asks for another) and /health (`checked`)."""
    metrics = make_wsgi_app(registry)

    def app(environ, start_response):
        path = environ.get("PATH_INFO", "")
        if path == "/metrics":
            return metrics(environ, start_response)
        if path == "/health":
            healthy, body = checked()
            status = "200 OK" if healthy else "503 Service Unavailable"
        else:
            status, body = "404 Not Found", {"status": "not found", "detail": "use /metrics or /health"}
        start_response(status, [("Content-Type", "application/json")])
        return [json.dumps(body).encode()]

    return app


class _Server(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _Server6(_Server):
    address_family = socket.AF_INET6


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format, *args) -> None:  # noqa: A002  (the stdlib's signature)
        log.debug("metrics http: " + format, *args)


class MetricsServer:
    """/metrics and /health over HTTP, served from a thread; port 0 takes any free port."""

    def __init__(
        self,
        engine: Engine,
        collector: Collector,
        host: str = "127.0.0.1",
        port: int = 9090,
        parts: tuple[str | None, str | None] = (None, None),
    ):
        self.engine = engine
        self.registry = CollectorRegistry()
        self.registry.register(collector)
        self.checked = partial(health, engine, *parts)  # (Redis URL, NATS URL)
        self._app = metrics_app(engine, self.registry, self.checked)
        self._host, self._port = host, port
        self._server: _Server | None = None

    def start(self) -> MetricsServer:
        server_class = _Server6 if ":" in self._host else _Server
        self._server = make_server(self._host, self._port, self._app, server_class, _QuietHandler)
        threading.Thread(target=self._server.serve_forever, name="metrics-http", daemon=True).start()
        return self

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> MetricsServer:
        return self.start()

    def __exit__(self, *_exc) -> None:
        self.stop()


def metrics_server(
    database_url: str,
    flag_defaults: dict[str, FlagDefault],
    redis_url: str | None = None,
    namespace: str | None = None,
    host: str = "127.0.0.1",
    port: int = 9090,
    nats_url: str | None = None,
) -> MetricsServer:
    """The exporter of `mspbyte metrics serve`: the app database read as above, flags from their store;
    /health checks the app database, and Redis and NATS where configured."""
    engine = read_engine(database_url)
    store = flag_store(redis_url, engine, namespace)
    collector = PipelineCollector(engine, lambda: load_flags(store, flag_defaults))
    return MetricsServer(engine, collector, host, port, (redis_url, nats_url))
