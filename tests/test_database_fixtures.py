"""The cheap database fixtures still keep tests apart (tests/conftest.py).

A pytest run of its own, on SQLite (the mechanism is the same on PostgreSQL, which the rest of the suite
exercises): a session-only test's commits are gone for the next test of its module, though both share
one database; a second connection to that database is refused; a test that takes `database_url` gets a
database of its own; and seeded copies give each test the seed, never another test's changes.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO

pytestmark = pytest.mark.slow

INNER = """
import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from bapp_cli.db.engine import make_engine
from bapp_cli.db.models import User
from tests.conftest import SeededCopies

seen = {}


def users(session):
    return session.scalar(select(func.count()).select_from(User))


def test_a_commits_on_the_shared_database(session):
    seen["url"] = session.connection().engine.url
    session.add(User(email="a@example.com", name="A"))
    session.commit()
    session.add(User(email="b@example.com", name="B"))
    session.commit()
    assert users(session) == 2


def test_b_shares_that_database_and_sees_none_of_it(session):
    assert session.connection().engine.url == seen["url"]
    assert users(session) == 0


def test_c_a_second_connection_is_refused(session, engine):
    assert users(session) == 0
    with pytest.raises(RuntimeError, match="second connection"):
        engine.connect()


def test_d_database_url_is_a_database_of_its_own(session, database_url):
    assert make_engine(database_url).url != seen["url"]
    session.add(User(email="d@example.com", name="D"))
    session.commit()
    other = make_engine(database_url)
    with Session(other) as reader:
        assert users(reader) == 1  # really committed: another connection sees it
    other.dispose()


@pytest.fixture(scope="module")
def seeded(tmp_path_factory):
    yield from SeededCopies.per_module(tmp_path_factory)


@pytest.mark.parametrize("turn", [1, 2, 3])
def test_e_each_copy_holds_the_seed_and_nothing_else(bapp, seeded, turn):
    seeded.seed_or_copy(bapp.database_url, lambda: bapp("clients", "add", "seed@example.com"))
    emails = [row["email"] for row in bapp("clients", "list", "--json").json()]
    assert emails == ["seed@example.com"]
    assert bapp("clients", "add", f"turn{turn}@example.com").exit_code == 0
"""


def test_database_fixtures_keep_tests_apart(tmp_path: Path) -> None:
    (tmp_path / "test_inner.py").write_text(INNER)
    environment = {**os.environ, "PYTHONPATH": str(REPO)}
    environment.pop("BAPP_REQUIRE_POSTGRES", None)
    completed = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-p", "tests.conftest", "-q", "-k", "sqlite"],
        cwd=tmp_path,
        env=environment,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr
    assert "7 passed" in completed.stdout, completed.stdout
