"""A real PostgreSQL (with pgvector) from the ``pgserver`` wheel, on a free loopback port.

``shared_server()`` starts one server per test session, on first use, and stops it at exit;
``server.create_database()`` gives each test a fresh database in it. Tests that stop and
start a server (outages) make a ``PostgresServer`` of their own.

PostgreSQL refuses to run as root: as root (CI, these machines) the server runs as a system
user ``pgserver`` (created if missing, as the ``pgserver`` package itself does). The wheel's
binaries are used directly rather than through ``pgserver.get_server``, which listens on a
Unix socket only and cannot be restarted on the same address.
"""

from __future__ import annotations

import atexit
import importlib.util
import os
import pwd
import shutil
import signal
import socket
import stat
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

import psycopg

SYSTEM_USER = "pgserver"
#: Databases kept when a new one is made: earlier tests' are dropped, one test's (a few, or
#: a property test's one per example) are not.
KEEP_DATABASES = 48


def bin_path() -> Path:
    spec = importlib.util.find_spec("pgserver")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("the pgserver wheel is not installed (pip install -e '.[dev]')")
    return Path(spec.submodule_search_locations[0]) / "pginstall" / "bin"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _run_as() -> str | None:
    """The user the server runs as: ``pgserver`` when we are root, else ourselves."""
    if os.geteuid() != 0:
        return None
    try:
        pwd.getpwnam(SYSTEM_USER)
    except KeyError:
        subprocess.run(["useradd", "-M", "-s", "/usr/sbin/nologin", SYSTEM_USER], check=True)
    # The server user must reach the wheel's binaries and libraries (the venv may sit under
    # a folder only root can enter): let others traverse (not list) the folders on the way.
    install = bin_path().parent
    for folder in [install, *install.parents]:
        mode = folder.stat().st_mode
        if not mode & stat.S_IXOTH:
            folder.chmod(mode | stat.S_IXOTH)
    return SYSTEM_USER


class PostgresServer:
    def __init__(self, *, durable: bool = False) -> None:
        # Tests skip fsync (durability is not under test); a benchmark asks for the default
        # fsync with ``synchronous_commit = off``, which, like SQLite's synchronous=normal,
        # survives a killed process but not a power cut.
        self.durable = durable
        self.bin = bin_path()
        self.user = _run_as()
        self.folder = Path(tempfile.mkdtemp(prefix="personae-pg-"))
        self.data = self.folder / "data"
        self.port = free_port()
        self._process: subprocess.Popen[bytes] | None = None
        self._databases: list[str] = []
        self._init()

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def _init(self) -> None:
        self.data.mkdir()
        if self.user is not None:
            entry = pwd.getpwnam(self.user)
            os.chown(self.folder, entry.pw_uid, entry.pw_gid)
            os.chown(self.data, entry.pw_uid, entry.pw_gid)
        subprocess.run(
            [
                str(self.bin / "initdb"),
                "-D",
                str(self.data),
                "-U",
                "postgres",
                "--auth=trust",
                "--encoding=UTF8",
                "--locale=C",
                "--no-sync",
            ],
            check=True,
            capture_output=True,
            user=self.user,
        )

    def start(self) -> None:
        log = (self.folder / "server.log").open("ab")
        durability = (
            ["-c", "synchronous_commit=off"]
            if self.durable
            else ["-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off"]
        )
        self._process = subprocess.Popen(
            [
                str(self.bin / "postgres"),
                "-D",
                str(self.data),
                "-h",
                "127.0.0.1",
                "-p",
                str(self.port),
                "-k",
                "",
                "-c",
                "max_connections=200",
                *durability,
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            user=self.user,
        )
        log.close()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                with psycopg.connect(self.url(), connect_timeout=2) as conn:
                    conn.execute("SELECT 1")
                    return
            except psycopg.OperationalError:
                if self._process.poll() is not None:
                    break
                time.sleep(0.05)
        self.stop()
        log_text = (self.folder / "server.log").read_text()
        raise RuntimeError(f"postgres did not start on port {self.port}: {log_text}")

    def stop(self) -> None:
        """Fast shutdown: open sessions are cut, as when a server restarts under a node."""
        if self._process is not None:
            self._process.send_signal(signal.SIGINT)
            try:
                self._process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
            self._process = None

    def remove(self) -> None:
        self.stop()
        shutil.rmtree(self.folder, ignore_errors=True)

    def create_database(self) -> str:
        """A new empty database; returns its URL. All but the newest ``KEEP_DATABASES`` are
        dropped on the way (when nobody is connected to them), so the disk does not fill."""
        name = f"t_{uuid.uuid4().hex[:16]}"
        with psycopg.connect(self.url(), autocommit=True) as conn:
            old, recent = self._databases[:-KEEP_DATABASES], self._databases[-KEEP_DATABASES:]
            kept = []
            for database in old:
                try:
                    conn.execute(f'DROP DATABASE IF EXISTS "{database}"')
                except psycopg.errors.ObjectInUse:
                    kept.append(database)
            self._databases = kept + recent
            conn.execute(f'CREATE DATABASE "{name}" TEMPLATE template0 STRATEGY FILE_COPY')
        self._databases.append(name)
        return self.url(name)


_shared: PostgresServer | None = None


def shared_server() -> PostgresServer:
    """The session's server, started on first use and removed when the process exits."""
    global _shared
    if _shared is None:
        server = PostgresServer()
        server.start()
        atexit.register(server.remove)
        _shared = server
    return _shared


async def postgres_snapshot(url: str) -> dict[str, list[tuple[object, ...]]]:
    """Every row of every table of the database, in a stable order: proves that a failed
    operation changed nothing."""
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        cursor = await conn.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY tablename"
        )
        tables = [str(row[0]) for row in await cursor.fetchall()]
        snapshot: dict[str, list[tuple[object, ...]]] = {}
        for table in tables:
            cursor = await conn.execute(f'SELECT * FROM "{table}"')
            snapshot[table] = sorted(await cursor.fetchall(), key=repr)
        return snapshot
