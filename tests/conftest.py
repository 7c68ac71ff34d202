"""Shared fixtures: one suite, two backends.

Every database fixture is parametrised over SQLite and a real PostgreSQL that the suite starts itself
(see postgres_server.py). Databases are copies of a template migrated once through the real Alembic chain
(a file copy on SQLite, CREATE DATABASE … TEMPLATE on PostgreSQL). A test that reaches the database only
through `session` shares its module's copy and rolls back (see "the shared, rolled-back database" below);
every other database test — the CLI, other processes, races, migrations — gets a fresh copy of its own.
Under pytest-xdist (`make test` runs three workers) each worker starts its own server.
"""

from __future__ import annotations

import io
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.orm import Session

from bapp_cli.db import migration
from bapp_cli.db.engine import make_engine
from tests.postgres_server import TemporaryPostgres

BACKENDS = ["sqlite", "postgresql"]
# A machine that sets PYTHONDONTWRITEBYTECODE (container images often do) had every `bapp` process a test starts
# compile bapp_cli's sources afresh (the installed packages have their bytecode from the install): ~0.1 CPU s of
# a `clients add`'s ~1.2. The processes keep it (in __pycache__, which git ignores), as they would anywhere else.
os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
_postgres = TemporaryPostgres()
_postgres_counts = {"ran": 0, "skipped": 0}
REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def postgres_admin_url() -> Iterator[str]:
    existing = os.environ.get("BAPP_TEST_POSTGRES_URL")
    if existing:
        yield existing
        return
    if not _postgres.available:
        if os.environ.get("CI") or os.environ.get("BAPP_REQUIRE_POSTGRES"):
            pytest.fail("PostgreSQL binaries (initdb, pg_ctl) not found, and PostgreSQL tests are required")
        pytest.skip("PostgreSQL binaries (initdb, pg_ctl) not found: PostgreSQL tests SKIPPED")
    url = _postgres.start()
    try:
        yield url
    finally:
        admin_engine = _admin_engines.pop(url, None)
        if admin_engine is not None:
            admin_engine.dispose()
        _postgres.stop()


# One AUTOCOMMIT engine per server, kept for the whole run: its pooled connection saves a password
# handshake on each of the thousand-odd CREATE/DROP DATABASE statements.
_admin_engines: dict[str, Engine] = {}


def _admin_execute(admin_url: str, *statements: str) -> None:
    engine = _admin_engines.get(admin_url)
    if engine is None:
        engine = _admin_engines[admin_url] = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with engine.connect() as connection:
        for statement in statements:
            connection.execute(text(statement))


def _with_database(admin_url: str, name: str) -> str:
    head, _, _ = admin_url.rpartition("/")
    return f"{head}/{name}"


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("template") / "template.db"
    engine = make_engine(f"sqlite:///{path}", create_sqlite_file=True)
    migration.upgrade(engine)
    engine.dispose()
    return path


@pytest.fixture(scope="session")
def postgres_template(postgres_admin_url: str) -> str:
    name = f"bapp_template_{uuid.uuid4().hex[:8]}"
    _admin_execute(postgres_admin_url, f'CREATE DATABASE "{name}"')
    engine = make_engine(_with_database(postgres_admin_url, name))
    migration.upgrade(engine)
    engine.dispose()
    return name


def _postgres_admin(request: pytest.FixtureRequest) -> str:
    try:
        admin_url: str = request.getfixturevalue("postgres_admin_url")
    except pytest.skip.Exception:
        _postgres_counts["skipped"] += 1
        raise
    _postgres_counts["ran"] += 1
    return admin_url


def _create_database(
    request: pytest.FixtureRequest, directory: Path, *, migrated: bool
) -> tuple[str, Callable[[], None]]:
    """A new database on the backend `request.param`, and the call that removes it."""
    if request.param == "sqlite":
        # its own file: a test taking a migrated and an empty database (a backup restored) has two, not one twice
        path = directory / ("bapp.db" if migrated else "empty.db")
        if migrated:
            shutil.copyfile(request.getfixturevalue("sqlite_template"), path)
        return f"sqlite:///{path}", lambda: None
    admin_url = _postgres_admin(request)
    name = f"bapp_test_{uuid.uuid4().hex[:12]}"
    if migrated:
        template = request.getfixturevalue("postgres_template")
        _admin_execute(admin_url, f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
    else:
        _admin_execute(admin_url, f'CREATE DATABASE "{name}"')
    return _with_database(admin_url, name), lambda: _admin_execute(
        admin_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'
    )


def _fresh_database(request: pytest.FixtureRequest, tmp_path: Path, *, migrated: bool) -> Iterator[str]:
    url, remove = _create_database(request, tmp_path, migrated=migrated)
    try:
        yield url
    finally:
        remove()


class SeededCopies:
    """One seeding per backend, then a copy of its result for each test.

    For CLI tests whose every test needs the same rows and may change them: the first test of a backend
    seeds its own fresh database, which is then kept as a snapshot (a SQLite backup; a PostgreSQL database
    made from it as a template); each later test's fresh database is replaced by a copy of the snapshot.
    Every test still owns its database, so nothing one test writes reaches another. Use one per module:
    ``@pytest.fixture(scope="module")`` yielding from ``SeededCopies.per_module(tmp_path_factory)``.
    """

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.snapshots: dict[str, str] = {}

    @classmethod
    def per_module(cls, tmp_path_factory: pytest.TempPathFactory) -> Iterator[SeededCopies]:
        copies = cls(tmp_path_factory.mktemp("seeded"))
        try:
            yield copies
        finally:
            for url in copies.snapshots.values():
                if not url.startswith("sqlite"):
                    _admin_execute(_admin_url_of(url), f'DROP DATABASE IF EXISTS "{_database_name(url)}" WITH (FORCE)')

    def seed_or_copy(self, database_url: str, seed: Callable[[], None]) -> None:
        """Run `seed` against the (fresh, unused) database at `database_url`, or copy the seeded snapshot
        into it. Nothing may be connected to that database meanwhile."""
        backend = "sqlite" if database_url.startswith("sqlite") else "postgresql"
        snapshot = self.snapshots.get(backend)
        if snapshot is not None:
            _copy_database(snapshot, database_url)
            return
        seed()
        if backend == "sqlite":
            snapshot = f"sqlite:///{self.directory / f'snapshot-{len(self.snapshots)}.db'}"
        else:
            snapshot = _with_database(_admin_url_of(database_url), f"bapp_seeded_{uuid.uuid4().hex[:12]}")
        _copy_database(database_url, snapshot)
        self.snapshots[backend] = snapshot

    def restore(self, database_url: str) -> None:
        """Copy the snapshot of `database_url`'s backend back into it while another process (a receiver) holds it
        open, idle: on SQLite through the backup API into the file in place (its write-ahead log and shared memory
        stay, mapped as they are by that process); on PostgreSQL the database is dropped with its sessions, which that
        process replaces, and made again from the snapshot."""
        if not database_url.startswith("sqlite"):
            _copy_database(self.snapshots["postgresql"], database_url)
            return
        source_path, target_path = (url.removeprefix("sqlite:///") for url in (self.snapshots["sqlite"], database_url))
        with closing(sqlite3.connect(source_path)) as source, closing(sqlite3.connect(target_path)) as target:
            source.backup(target)


def new_database(request: pytest.FixtureRequest, directory: Path) -> tuple[str, Callable[[], None]]:
    """A new database migrated to head on the backend `request.param`, for a fixture of a wider scope than the test
    asking for it (`database_url`'s is removed after the test), and the call that removes it."""
    return _create_database(request, directory, migrated=True)


def _database_name(url: str) -> str:
    return url.rpartition("/")[2]


def _admin_url_of(url: str) -> str:
    return _with_database(url, "postgres")


def _copy_database(source_url: str, target_url: str) -> None:
    if source_url.startswith("sqlite"):
        # SQLite's backup API, not a file copy: it includes what is still in the write-ahead log
        source_path, target_path = (url.removeprefix("sqlite:///") for url in (source_url, target_url))
        for stale in (target_path + "-wal", target_path + "-shm"):
            Path(stale).unlink(missing_ok=True)
        with closing(sqlite3.connect(source_path)) as source, closing(sqlite3.connect(target_path)) as target:
            source.backup(target)
        return
    target = _database_name(target_url)
    _admin_execute(
        _admin_url_of(target_url),
        f'DROP DATABASE IF EXISTS "{target}" WITH (FORCE)',
        f'CREATE DATABASE "{target}" TEMPLATE "{_database_name(source_url)}"',
    )


# -- the shared, rolled-back database of session-only tests ------------------------------------------
#
# Creating and migrating a database per test dominated the suite's time. A test that touches the database
# only through the `session` fixture (and perhaps `engine`, to listen to its statements) cannot tell a
# fresh database from a shared one whose every change is rolled back: its session joins an outer
# transaction on one connection, the session's own commits only release savepoints, and the outer
# transaction is rolled back after the test. Anything else that reaches the database — the CLI, another
# process, `seed_session`, a fixture or test taking `database_url` — commits for real, so those tests keep
# a fresh database each (`@pytest.mark.fresh_database` asks for one explicitly).

# Fixtures the rolled-back mode provides itself; any other fixture that depends on one of them, or a test
# that takes `database_url` directly, reaches the database outside the session.
_ROLLED_BACK_CHAIN = {"database_url": {"engine"}, "engine": {"session"}}


def _rolls_back(request: pytest.FixtureRequest) -> bool:
    item = request.node
    if "session" not in item.fixturenames or item.get_closest_marker("fresh_database"):
        return False
    info = item._fixtureinfo
    if "database_url" in info.argnames:
        return False
    for name in item.fixturenames:
        definitions = info.name2fixturedefs.get(name)
        if not definitions:
            continue
        for used in definitions[-1].argnames:
            if used in _ROLLED_BACK_CHAIN and name not in _ROLLED_BACK_CHAIN[used]:
                return False
    return True


@dataclass
class _SharedDatabase:
    url: str
    engine: Engine
    remove: Callable[[], None]


@pytest.fixture(scope="module")
def _module_databases() -> Iterator[dict[str, _SharedDatabase]]:
    """This module's shared databases, one per backend, created on first use and removed after the module."""
    databases: dict[str, _SharedDatabase] = {}
    yield databases
    for database in databases.values():
        database.engine.dispose()
        database.remove()


def _shared_database(request: pytest.FixtureRequest) -> _SharedDatabase:
    databases: dict[str, _SharedDatabase] = request.getfixturevalue("_module_databases")
    backend = request.param
    if backend not in databases:
        directory = request.getfixturevalue("tmp_path_factory").mktemp(f"shared-{backend}")
        url, remove = _create_database(request, directory, migrated=True)
        databases[backend] = _SharedDatabase(url, _guarded_engine(url), remove)
    elif backend == "postgresql":
        _postgres_admin(request)  # counted per test, like a fresh database
    return databases[backend]


def _guarded_engine(url: str) -> Engine:
    """The shared engine; it refuses a second connection, whose commits would outlive the test."""
    engine = make_engine(url)
    checked_out: set[int] = set()

    @event.listens_for(engine, "checkout")
    def one_connection_only(dbapi_connection: Any, *_: Any) -> None:
        if checked_out:
            raise RuntimeError(
                "this test shares its module's rolled-back database, yet opened a second connection whose "
                "commits would outlive it: take `database_url` or mark it @pytest.mark.fresh_database"
            )
        checked_out.add(id(dbapi_connection))

    @event.listens_for(engine, "checkin")
    def released(dbapi_connection: Any, *_: Any) -> None:
        checked_out.discard(id(dbapi_connection))

    return engine


@pytest.fixture(params=BACKENDS)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh database migrated to head, on each backend."""
    if _rolls_back(request):
        # nothing but `engine` and `session` sees this URL, and they roll back whatever the test did
        yield _shared_database(request).url
        return
    yield from _fresh_database(request, tmp_path, migrated=True)


@pytest.fixture(params=BACKENDS)
def empty_database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty (unmigrated) database, on each backend."""
    yield from _fresh_database(request, tmp_path, migrated=False)


@pytest.fixture(params=BACKENDS)
def second_database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """Another fresh database migrated to head, on each backend: where a test restores or merges a backup.
    A copy of the template, as `database_url` is: `db upgrade` of an empty database (0.25–0.4 CPU s in-process)
    is the migration tests' to run, not every restore's."""
    directory = tmp_path / "second-database"  # its SQLite file is not database_url's tmp_path/bapp.db
    directory.mkdir()
    yield from _fresh_database(request, directory, migrated=True)


@pytest.fixture
def engine(request: pytest.FixtureRequest, database_url: str) -> Iterator[Engine]:
    if _rolls_back(request):
        databases: dict[str, _SharedDatabase] = request.getfixturevalue("_module_databases")
        yield next(shared.engine for shared in databases.values() if shared.url == database_url)
        return
    engine = make_engine(database_url)
    yield engine
    engine.dispose()


@pytest.fixture
def session(request: pytest.FixtureRequest, engine: Engine) -> Iterator[Session]:
    """A session for service tests; the test commits when it wants rows to persist (for this test)."""
    if not _rolls_back(request):
        with Session(bind=engine.execution_options(bapp_write=True), expire_on_commit=False) as db_session:
            db_session.info.update(actor="test", command="pytest")
            yield db_session
            db_session.rollback()
        return
    with engine.connect() as connection:
        connection.execution_options(bapp_write=True)
        outer = connection.begin()
        try:
            with Session(
                bind=connection, join_transaction_mode="create_savepoint", expire_on_commit=False
            ) as db_session:
                db_session.info.update(actor="test", command="pytest")
                yield db_session
        finally:
            outer.rollback()


@dataclass
class Result:
    exit_code: int
    stdout: str
    stderr: str

    def json(self) -> Any:
        import json

        return json.loads(self.stdout)


class Bapp:
    """Runs the real `bapp` entry point in-process (fast) or as a subprocess (real I/O)."""

    def __init__(self, database_url: str, home: Path) -> None:
        self.database_url = database_url
        self.home = home
        self.env: dict[str, str] = {
            "BAPP_DATABASE_URL": database_url,
            "BAPP_CONFIG": str(home / "config.toml"),
            "XDG_CONFIG_HOME": str(home / "config"),
            "XDG_DATA_HOME": str(home / "data"),
            "BAPP_ACTOR": "tester",
            "BAPP_CACHE_DIR": str(home / "cache"),
        }

    def _environment(self, env: dict[str, str | None] | None) -> dict[str, str]:
        merged = {
            key: value
            for key, value in os.environ.items()
            if not key.startswith(("BAPP_", "CALENDLY_")) and key not in ("DATABASE_URL", "NO_COLOR")
        }
        merged.update(self.env)
        for key, value in (env or {}).items():
            if value is None:
                merged.pop(key, None)
            else:
                merged[key] = value
        return merged

    def __call__(self, *args: str, env: dict[str, str | None] | None = None, stdin: str | None = None) -> Result:
        from bapp_cli.cli.app import main

        saved = (sys.stdin, sys.stdout, sys.stderr, dict(os.environ))
        stdout, stderr = io.StringIO(), io.StringIO()
        os.environ.clear()
        os.environ.update(self._environment(env))
        sys.stdin, sys.stdout, sys.stderr = io.StringIO(stdin or ""), stdout, stderr
        try:
            main(list(args))
            code = 0
        except SystemExit as exit_request:
            code = int(exit_request.code or 0)
        finally:
            sys.stdin, sys.stdout, sys.stderr = saved[0], saved[1], saved[2]
            os.environ.clear()
            os.environ.update(saved[3])
        return Result(code, stdout.getvalue(), stderr.getvalue())

    def process(
        self,
        *args: str,
        env: dict[str, str | None] | None = None,
        stdin: str | None = None,
        timeout: float = 120,
        stdout: str | None = None,
    ) -> Result:
        """`args` run as a real process. `stdout`: captured when None; else "closed pipe" (its reader gone before
        it starts) or a device's path such as /dev/full, written there (the Result's stdout is then empty)."""
        target: int | None = None
        if stdout == "closed pipe":
            reader, target = os.pipe()
            os.close(reader)
        elif stdout is not None:
            target = os.open(stdout, os.O_WRONLY)
        try:
            completed = subprocess.run(
                [sys.executable, "-m", "bapp_cli", *args],
                env=self._environment(env),
                input=stdin,
                stdout=subprocess.PIPE if target is None else target,
                stderr=subprocess.PIPE,
                text=True,
                timeout=timeout,
                cwd=REPO,
            )
        finally:
            if target is not None:
                os.close(target)
        return Result(completed.returncode, completed.stdout or "", completed.stderr)

    def popen(
        self, *args: str, env: dict[str, str | None] | None = None, python: tuple[str, ...] = ("-m", "bapp_cli")
    ) -> subprocess.Popen[str]:
        """`args` run as a real process, left running; `python`: what the interpreter runs, given `args` after it."""
        process = subprocess.Popen(
            [sys.executable, *python, *args],
            env=self._environment(env),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=REPO,
        )
        _started_processes.append(process)
        return process


_started_processes: list[subprocess.Popen[str]] = []


def outlives_its_test(process: subprocess.Popen[str]) -> None:
    """`process` (from Bapp.popen) is not killed after the test that started it: a module fixture's, which stops it."""
    _started_processes.remove(process)


def with_batches_of(rows: int) -> tuple[str, ...]:
    """For `Bapp.popen(…, python=…)`: bapp's own entry point with `rows` rows per import batch (db.bulk.CHUNK, 5,000),
    set before any of its modules reads it. A process test that needs an import stopped between its batches then
    takes a file of a few hundred rows, not of 5,000-odd that cost seconds of CPU to say the same."""
    return (
        "-c",
        f"import sys; sys.argv[0] = 'bapp'\nimport bapp_cli.db.bulk as bulk; bulk.CHUNK = {rows}\n"
        "from bapp_cli.cli.launcher import main; main()",
    )


@pytest.fixture(autouse=True)
def _no_bapp_process_outlives_its_test() -> Iterator[None]:
    """A test failing before it stops a `bapp` it started (one held in a slow trigger, a receiver) must not leave it
    running: such leftovers burned CPU for the rest of the run and slowed every later test into timeouts."""
    yield
    while _started_processes:
        process = _started_processes.pop()
        if process.poll() is None:
            process.kill()
            process.communicate(timeout=30)


def eventually(condition: Callable[[], bool], what: str, timeout: float = 30) -> None:
    """Waits until `condition()` holds, failing the test naming `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def restore_backup(app: Bapp, second_database_url: str, tmp_path: Path, *options: str) -> tuple[Bapp, Result]:
    """`app`'s data backed up (`export all` to tmp_path/backup.json) and restored (`import all`) into the second
    database, fresh and migrated: the restored copy, and the import's result, which exited 0."""
    backup = tmp_path / "backup.json"
    assert app("export", "all", "-o", str(backup)).exit_code == 0
    restored = Bapp(second_database_url, tmp_path / "restored")
    result = restored("import", "all", str(backup), *options)
    assert result.exit_code == 0, result.stderr
    return restored, result


@pytest.fixture
def bapp(database_url: str, tmp_path: Path) -> Bapp:
    """The CLI against a fresh migrated database (both backends)."""
    return Bapp(database_url, tmp_path)


@pytest.fixture
def catalogue(bapp: Bapp) -> Bapp:
    """`bapp` with the example catalogue synced from its saved Calendly listing and the example clients."""
    assert bapp("calendly", "sync", "--from-file", str(REPO / "examples/calendly/event_types.json")).exit_code == 0
    assert bapp("import", "clients", str(REPO / "examples/clients.csv")).exit_code == 0
    return bapp


def pytest_configure(config: pytest.Config) -> None:
    # A suite started in the background (`make test &`, some CI runners) inherits SIGINT ignored, and an ignored
    # signal stays ignored across exec: each bapp process a test stops with Ctrl-C ignored it, ran on until its
    # held request timed out (~10 s each) and failed the test. A Python-level handler is reset to the default in
    # a child, where Python then installs its own KeyboardInterrupt. Workers of pytest-xdist run this too.
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    # `nohup make test` ignores SIGHUP, which bapp (rightly) keeps ignored: the hang-up tests' processes ran on to
    # exit 3 instead of 129. A Python handler that ignores it keeps the run nohup's while its children get the default.
    if signal.getsignal(signal.SIGHUP) is signal.SIG_IGN:
        signal.signal(signal.SIGHUP, lambda *_: None)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # The long process tests (marked slow) first, in their order. pytest-xdist hands each worker a run of
    # the collection and a worker that runs dry steals from the end of the other's: a long test left near
    # the end kept one worker busy while the other had nothing more to take.
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)


def pytest_sessionfinish(session: pytest.Session) -> None:
    # under pytest-xdist each worker counts its own fixtures; the controller adds them up (below)
    workeroutput = getattr(session.config, "workeroutput", None)
    if workeroutput is not None:
        workeroutput["bapp_postgres_counts"] = dict(_postgres_counts)


@pytest.hookimpl(optionalhook=True)  # a pytest-xdist hook
def pytest_testnodedown(node: Any, error: Any) -> None:
    for key, value in getattr(node, "workeroutput", {}).get("bapp_postgres_counts", {}).items():
        _postgres_counts[key] += value


def pytest_terminal_summary(terminalreporter: Any) -> None:
    ran, skipped = _postgres_counts["ran"], _postgres_counts["skipped"]
    if skipped:
        terminalreporter.write_line(
            f"!!! PostgreSQL tests SKIPPED: {skipped} (no initdb/pg_ctl found) — only SQLite was tested !!!",
            red=True,
        )
    else:
        terminalreporter.write_line(f"PostgreSQL: {ran} database fixtures ran on a real PostgreSQL server.")
