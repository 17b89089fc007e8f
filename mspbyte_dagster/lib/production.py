"""The production stack on one machine: a code server, the webserver, the daemon, the metrics exporter
and Celery workers, over PostgreSQL, Redis and NATS.

`up` checks every production variable and service before it starts anything, and records what it
started (pid, process group, command, log) in the stack's folder; `down` stops exactly that, and
`status` says what still runs and answers. Workers share only PostgreSQL, Redis and the installed
code, as they would on separate machines.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from mspbyte_dagster.lib.errors import InputError
from mspbyte_dagster.settings import REPO_ROOT, Settings

PRODUCTION_INSTANCE = REPO_ROOT / "deploy" / "dagster.yaml"
READY_SECONDS = 90
STOP_SECONDS = 15


class ProductionError(InputError):
    """The production stack cannot start as configured: names the variable or service at fault."""


@dataclass(frozen=True)
class Ports:
    host: str = "127.0.0.1"
    webserver: int = 3000
    code_server: int = 4000


@dataclass
class Process:
    name: str
    argv: list[str]
    log: str
    pid: int = 0
    port: int | None = None
    ready_line: str | None = None  # without a port: ready once its log says this


@dataclass
class Stack:
    """What `up` started, as recorded in `<folder>/stack.json`."""

    folder: Path
    host: str = "127.0.0.1"
    dagster_home: str = ""
    started_at: str = ""
    processes: list[Process] = field(default_factory=list)

    @property
    def record(self) -> Path:
        return self.folder / "stack.json"

    def save(self) -> None:
        body = asdict(self) | {"folder": str(self.folder)}
        self.record.write_text(json.dumps(body, indent=2))

    @classmethod
    def load(cls, folder: Path) -> Stack | None:
        record = cls(folder).record
        if not record.exists():
            return None
        body = json.loads(record.read_text())
        processes = [Process(**process) for process in body.pop("processes")]
        return cls(**(body | {"folder": folder, "processes": processes}))


def stack_folder(settings: Settings) -> Path:
    return settings.data_dir / "prod"


def production_problems(settings: Settings) -> list[str]:
    """What the environment lacks for production, each naming its variable; production never falls back
    to the embedded SQLite defaults."""
    problems = []
    if not settings.database_url.startswith("postgresql"):
        problems.append(
            "DATABASE_URL must name PostgreSQL in production (postgresql+psycopg://user@host:5432/db): "
            "tenant state on a local SQLite file would not be shared by workers on other machines"
        )
    required = {
        "DAGSTER_PG_URL": (settings.dagster_pg_url, "Dagster's runs, events and schedules (postgresql+psycopg2://)"),
        "CELERY_BROKER_URL": (settings.celery_broker_url, "the Redis that carries runs to the workers (redis://)"),
        "NATS_URL": (settings.nats_url, "the sync events that trigger tenant runs (nats://)"),
    }
    for variable, (value, meaning) in required.items():
        if value is None:
            problems.append(f"{variable} is not set: production needs {meaning}")
    return problems


def _answers(check, variable: str) -> str | None:
    try:
        check()
    except Exception as error:  # any failure to reach a service is reported with its variable
        return f"{variable}: not usable: {type(error).__name__}: {_first_line(error)}"
    return None


def _first_line(error: Exception) -> str:
    return (str(error).strip().splitlines() or [""])[0][:200]


def service_problems(settings: Settings) -> list[str]:
    """Each service the stack needs, asked once: an app database that is migrated, Dagster's database,
    the broker and NATS."""
    import redis
    from sqlalchemy import create_engine, text

    from mspbyte_dagster.lib.store.db import engine_for, require_migrated

    def dagster_database() -> None:
        engine = create_engine(settings.dagster_pg_url)
        try:
            with engine.connect() as conn:
                conn.execute(text("SELECT 1"))
        finally:
            engine.dispose()

    def nats() -> None:
        host, _, port = settings.nats_url.split("://", 1)[1].split("/")[0].rpartition("@")[2].partition(":")
        socket.create_connection((host, int(port or 4222)), timeout=3).close()

    checks = {
        "DATABASE_URL": lambda: require_migrated(engine_for(settings.database_url)),
        "DAGSTER_PG_URL": dagster_database,
        "CELERY_BROKER_URL": lambda: redis.Redis.from_url(settings.celery_broker_url, socket_timeout=3).ping(),
        "NATS_URL": nats,
    }
    return [problem for variable, check in checks.items() if (problem := _answers(check, variable))]


def _port_problems(ports: Ports, metrics_port: int) -> list[str]:
    problems = []
    for what, port in (
        ("--ui-port", ports.webserver),
        ("--code-port", ports.code_server),
        ("METRICS_PORT", metrics_port),
    ):
        if _listening(ports.host, port):
            problems.append(f"{what}: {ports.host}:{port} is already in use")
    return problems


def worker_concurrency(settings: Settings, workers: int) -> int:
    """Pool processes per worker, so that the workers together have a slot for every run the coordinator
    lets start (MAX_CONCURRENT_JOBS): a run left waiting in Celery would fail at its start timeout."""
    return max(1, math.ceil(settings.max_concurrent_jobs / workers))


def _bin(name: str) -> str:
    return str(Path(sys.executable).parent / name)


def _processes(settings: Settings, folder: Path, ports: Ports, workers: int) -> list[Process]:
    workspace, celery = str(folder / "workspace.yaml"), str(folder / "celery.yaml")
    logs = folder / "logs"
    plan = [
        Process(
            "code_server",
            [_bin("dagster"), "api", "grpc", "-m", "mspbyte_dagster.definitions"]
            + ["-h", ports.host, "-p", str(ports.code_server)],
            str(logs / "code_server.log"),
            port=ports.code_server,
        ),
        Process(
            "webserver",
            [_bin("dagster-webserver"), "-w", workspace, "-h", ports.host, "-p", str(ports.webserver)],
            str(logs / "webserver.log"),
            port=ports.webserver,
        ),
        Process(
            "daemon",
            [_bin("dagster-daemon"), "run", "-w", workspace],
            str(logs / "daemon.log"),
            ready_line="Instance is configured with the following daemons",
        ),
        Process(
            "metrics",
            [_bin("mspbyte"), "metrics", "serve", "--host", ports.host, "--port", str(settings.metrics_port)],
            str(logs / "metrics.log"),
            port=settings.metrics_port,
        ),
    ]
    concurrency = worker_concurrency(settings, workers)
    for number in range(1, workers + 1):
        plan.append(
            Process(
                f"worker-{number}",
                [_bin("dagster-celery"), "worker", "start", "-A", "dagster_celery.app", "-y", celery]
                + ["-q", settings.celery_queue, "--name", f"{settings.celery_queue}-{number}", "--"]
                + ["--pool=prefork", f"--concurrency={concurrency}", "--disable-prefetch"],
                str(logs / f"worker-{number}.log"),
                ready_line=" ready.",
            )
        )
    return plan


def _write_config(folder: Path, home: Path, ports: Ports) -> None:
    """The instance (deploy/dagster.yaml as it is), the workspace of the code server, and the workers'
    broker config (by {env:} reference: no URL is written here)."""
    home.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(PRODUCTION_INSTANCE, home / "dagster.yaml")
    (folder / "workspace.yaml").write_text(
        "load_from:\n  - grpc_server:\n"
        f"      host: {ports.host}\n      port: {ports.code_server}\n      location_name: mspbyte_dagster\n"
    )
    (folder / "celery.yaml").write_text(
        "execution:\n  config:\n    broker:\n      env: CELERY_BROKER_URL\n    backend:\n      env: CELERY_BACKEND_URL\n"
    )


def child_environment(settings: Settings, home: Path) -> dict[str, str]:
    """The stack's processes' environment: this one, the production instance, and the defaults
    dagster.yaml's {env:} references need."""
    env = dict(os.environ)
    env["DAGSTER_HOME"] = str(home)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"  # dagster-celery runs `celery`
    for variable, value in settings.instance_variables().items():
        env.setdefault(variable, value)
    env["PYTHONUNBUFFERED"] = "1"
    return env


def alive(process: Process) -> bool:
    """The recorded process still runs and is still ours (a reused pid runs another command)."""
    try:
        cmdline = Path(f"/proc/{process.pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    state = Path(f"/proc/{process.pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    program = Path(process.argv[0]).name
    return state != "Z" and any(part.decode(errors="replace").endswith(f"/{program}") for part in cmdline)


def _listening(host: str, port: int) -> bool:
    with socket.socket() as probe:
        probe.settimeout(1)
        return probe.connect_ex((host, port)) == 0


def _ready(process: Process, host: str) -> bool:
    if process.port is not None:
        return _listening(host, process.port)
    return process.ready_line in Path(process.log).read_text(errors="replace")


_LOCATIONS = (
    "{ workspaceOrError { ... on Workspace { locationEntries { name loadStatus"
    " locationOrLoadError { __typename ... on PythonError { message } } } } } }"
)


def _code_loaded(host: str, port: int) -> tuple[bool, str]:
    """Whether the webserver serves the code location's jobs, else why not. It answers before it has
    loaded them, and a run submitted then finds no job; a load error may last only until the code server
    answers the webserver's next try, so it is the reason given only if the wait runs out."""
    request = urllib.request.Request(  # noqa: S310 (our own loopback URL)
        f"http://{host}:{port}/graphql",
        data=json.dumps({"query": _LOCATIONS}).encode(),
        headers={"Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=5) as answer:  # noqa: S310
            entries = json.loads(answer.read())["data"]["workspaceOrError"]["locationEntries"]
    except (OSError, ValueError, KeyError, TypeError) as error:
        return False, f"the webserver did not answer ({error})"
    for entry in entries:
        failure = entry.get("locationOrLoadError") or {}
        if failure.get("__typename") == "PythonError":
            return False, f"code location {entry['name']} did not load: {failure.get('message', '')[:500]}"
    loaded = bool(entries) and all(entry["loadStatus"] == "LOADED" for entry in entries)
    return loaded, "" if loaded else "the webserver is still loading the code location"


def up(settings: Settings, ports: Ports, workers: int, echo=print) -> Stack:
    """Check, then start every process; wait until the servers answer. Raises ProductionError naming what
    is wrong, having started nothing (or stopped what it started, if one of them fails to come up)."""
    folder = stack_folder(settings)
    existing = Stack.load(folder)
    if existing and any(alive(process) for process in existing.processes):
        raise ProductionError(f"the production stack of {folder} is already up: `make prod-down` stops it first")
    if not PRODUCTION_INSTANCE.exists():
        raise ProductionError(f"{PRODUCTION_INSTANCE} is missing: the production stack runs from a source checkout")
    problems = production_problems(settings)
    problems = problems or service_problems(settings)
    problems += _port_problems(ports, settings.metrics_port)
    if problems:
        raise ProductionError("the production stack did not start:\n  " + "\n  ".join(problems))
    home = folder / "dagster_home"
    (folder / "logs").mkdir(parents=True, exist_ok=True)
    folder.chmod(0o700)  # dagster-celery writes the broker URL into DAGSTER_HOME at each worker start
    _write_config(folder, home, ports)
    env = child_environment(settings, home)
    stack = Stack(folder, ports.host, str(home), datetime.now(UTC).isoformat())
    for process in _processes(settings, folder, ports, workers):
        with open(process.log, "ab") as log:
            started = subprocess.Popen(  # noqa: S603 (our own executables, no shell)
                process.argv, cwd=REPO_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        process.pid = started.pid
        stack.processes.append(process)
        stack.save()
        echo(f"started {process.name} (pid {process.pid}), log {process.log}")
    try:
        _wait_until_ready(stack, ports)
    except ProductionError:
        down(settings, echo)
        raise
    return stack


def _wait_until_ready(stack: Stack, ports: Ports) -> None:
    deadline = time.monotonic() + READY_SECONDS
    waiting = list(stack.processes)
    while waiting:
        for process in list(waiting):
            if not alive(process):
                tail = Path(process.log).read_text(errors="replace").strip().splitlines()[-5:]
                raise ProductionError(f"{process.name} exited at start; its log ends:\n    " + "\n    ".join(tail))
            if _ready(process, ports.host):
                waiting.remove(process)
        if waiting and time.monotonic() > deadline:
            names = ", ".join(process.name for process in waiting)
            raise ProductionError(f"{names} did not answer within {READY_SECONDS} s; see their logs in {stack.folder}")
        time.sleep(0.5)
    while True:
        loaded, why = _code_loaded(ports.host, ports.webserver)
        if loaded:
            return
        if time.monotonic() > deadline:
            raise ProductionError(f"the webserver did not serve the code location within {READY_SECONDS} s: {why}")
        time.sleep(0.5)


def down(settings: Settings, echo=print) -> list[str]:
    """Stop exactly what `up` recorded: each process group gets SIGTERM, then SIGKILL after STOP_SECONDS."""
    folder = stack_folder(settings)
    stack = Stack.load(folder)
    if stack is None:
        echo(f"no production stack recorded in {folder}")
        return []
    running = [process for process in stack.processes if alive(process)]
    for process in running:
        _signal_group(process.pid, signal.SIGTERM)
    deadline = time.monotonic() + STOP_SECONDS
    while any(alive(process) for process in running) and time.monotonic() < deadline:
        time.sleep(0.2)
    for process in running:
        if alive(process):
            echo(f"{process.name} (pid {process.pid}) ignored SIGTERM for {STOP_SECONDS} s: killed")
        _signal_group(process.pid, signal.SIGKILL)  # the whole group: pool children and the like included
        echo(f"stopped {process.name} (pid {process.pid})")
    stack.record.unlink()
    return [process.name for process in running]


def _signal_group(pid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError):  # the group has gone already
        os.killpg(pid, signum)


@dataclass(frozen=True)
class ProcessStatus:
    name: str
    pid: int
    running: bool
    answers: bool | None  # None: it has no port to ask
    log: str


def status(settings: Settings) -> tuple[Stack | None, list[ProcessStatus]]:
    stack = Stack.load(stack_folder(settings))
    if stack is None:
        return None, []
    rows = []
    for process in stack.processes:
        running = alive(process)
        answers = None if process.port is None else running and _listening(stack.host, process.port)
        rows.append(ProcessStatus(process.name, process.pid, running, answers, process.log))
    return stack, rows
