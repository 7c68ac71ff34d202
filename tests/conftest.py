"""Shared fixtures: one suite, two backends.

Every database fixture is parametrised over SQLite and a real PostgreSQL that the suite starts itself
(see postgres_server.py). Each test gets a fresh database copied from a template migrated once through
the real Alembic chain.
"""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.orm import Session

from bapp_cli.db import migration
from bapp_cli.db.engine import make_engine
from tests.postgres_server import TemporaryPostgres

BACKENDS = ["sqlite", "postgresql"]
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
        _postgres.stop()


def _admin_execute(admin_url: str, *statements: str) -> None:
    engine = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as connection:
            for statement in statements:
                connection.execute(text(statement))
    finally:
        engine.dispose()


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


def _fresh_database(request: pytest.FixtureRequest, tmp_path: Path, *, migrated: bool) -> Iterator[str]:
    backend = request.param
    if backend == "sqlite":
        path = tmp_path / "bapp.db"
        if migrated:
            shutil.copyfile(request.getfixturevalue("sqlite_template"), path)
        yield f"sqlite:///{path}"
        return
    try:
        admin_url = request.getfixturevalue("postgres_admin_url")
    except pytest.skip.Exception:
        _postgres_counts["skipped"] += 1
        raise
    _postgres_counts["ran"] += 1
    name = f"bapp_test_{uuid.uuid4().hex[:12]}"
    if migrated:
        template = request.getfixturevalue("postgres_template")
        _admin_execute(admin_url, f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
    else:
        _admin_execute(admin_url, f'CREATE DATABASE "{name}"')
    try:
        yield _with_database(admin_url, name)
    finally:
        _admin_execute(admin_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(params=BACKENDS)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh database migrated to head, on each backend."""
    yield from _fresh_database(request, tmp_path, migrated=True)


@pytest.fixture(params=BACKENDS)
def empty_database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty (unmigrated) database, on each backend."""
    yield from _fresh_database(request, tmp_path, migrated=False)


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    engine = make_engine(database_url)
    yield engine
    engine.dispose()


@pytest.fixture
def session(engine: Engine) -> Iterator[Session]:
    """A session for service tests; the test commits when it wants rows to persist."""
    with Session(bind=engine.execution_options(bapp_write=True), expire_on_commit=False) as db_session:
        db_session.info.update(actor="test", command="pytest")
        yield db_session
        db_session.rollback()


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
    ) -> Result:
        completed = subprocess.run(
            [sys.executable, "-m", "bapp_cli", *args],
            env=self._environment(env),
            input=stdin,
            capture_output=True,
            text=True,
            timeout=timeout,
            cwd=REPO,
        )
        return Result(completed.returncode, completed.stdout, completed.stderr)

    def popen(self, *args: str, env: dict[str, str | None] | None = None) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [sys.executable, "-m", "bapp_cli", *args],
            env=self._environment(env),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=REPO,
        )


@pytest.fixture
def bapp(database_url: str, tmp_path: Path) -> Bapp:
    """The CLI against a fresh migrated database (both backends)."""
    return Bapp(database_url, tmp_path)


def pytest_terminal_summary(terminalreporter: Any) -> None:
    ran, skipped = _postgres_counts["ran"], _postgres_counts["skipped"]
    if skipped:
        terminalreporter.write_line(
            f"!!! PostgreSQL tests SKIPPED: {skipped} (no initdb/pg_ctl found) — only SQLite was tested !!!",
            red=True,
        )
    else:
        terminalreporter.write_line(f"PostgreSQL: {ran} database fixtures ran on a real PostgreSQL server.")
