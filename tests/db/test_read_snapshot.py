"""A read-only command reads one state of the database, however many statements it takes.

On PostgreSQL the reads ran at READ COMMITTED, each statement seeing what had committed when it ran: a pathway and
an enrolment in it committed between two statements of `clients show` gave an enrolment whose pathway the command
had not read (exit 1), and a backup (`export all`) taken while another process wrote could hold a booking whose
client was not in the file. Here another connection commits a write exactly between two statements of the command
(through both doors a read opens: the plain DB-API connection and the ORM's read transaction), and the command's
output must be the state before the write. On SQLite a read transaction is a snapshot from its first statement (WAL),
or keeps writers out until it ends (rollback journal).
"""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from sqlalchemy import Engine, event, select
from sqlalchemy.orm import Session

from bapp_cli.db import dbapi
from bapp_cli.db.engine import make_engine, unit_of_work
from bapp_cli.db.models import Enrolment, Pathway, User
from tests.conftest import Bapp
from tests.services.test_booking_factories import add_booking, add_client, add_session_type

MAYA = "maya@client.example"


def commit(bapp: Bapp, build: Callable[[Session], Any]) -> None:
    engine = make_engine(bapp.database_url)
    try:
        with unit_of_work(engine, actor="test", command="seed") as session:
            build(session)
    finally:
        engine.dispose()


@pytest.fixture
def slip_in(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[str, Callable[[], None]], list[str]]]:
    """`slip_in(marker, write)`: `write()` runs once, right after the first statement whose SQL holds `marker`,
    whichever door ran it (a plain connection's `Database.rows`, or an SQLAlchemy connection); the list it returns
    gets the statement once it has."""
    listeners: list[Callable[..., None]] = []

    def arm(marker: str, write: Callable[[], None]) -> list[str]:
        done: list[str] = []

        def after(statement: str) -> None:
            if not done and marker.lower() in statement.lower():
                done.append(statement)  # first: the write's own statements do not set it off again
                write()

        read = dbapi.Database.rows

        def rows(self: dbapi.Database, sql: str, parameters: Any = None, **options: Any) -> Iterator[tuple[Any, ...]]:
            found = read(self, sql, parameters, **options)  # executed: the cursor is at its first row
            if self.orm_connection is None:  # the ORM's are seen by the event below
                after(sql)
            return found

        def on_statement(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
            after(statement)

        monkeypatch.setattr(dbapi.Database, "rows", rows)
        event.listen(Engine, "after_cursor_execute", on_statement)
        listeners.append(on_statement)
        return done

    yield arm
    for listener in listeners:
        event.remove(Engine, "after_cursor_execute", listener)


def enrol_maya_in_a_new_pathway(other: Session) -> None:
    added = Pathway(slug="late-joiners", name="Late Joiners", position=99)
    other.add(added)
    other.flush()
    maya = other.scalars(select(User.id).where(User.email == MAYA)).one()
    other.add(Enrolment(client_id=maya, pathway_id=added.id, start_date=dt.date(2030, 1, 6)))


@pytest.mark.parametrize(
    "command",
    [
        ("clients", "show", MAYA),  # the plain DB-API connection
        ("progress", "show", MAYA),
        ("reports", "client-progress"),  # the ORM's read transaction
        ("pathways", "list"),
        ("progress", "table"),  # catalogue, then counts: a skill linked between them showed 3 of 2 done
        ("badges", "achievements"),
        ("reports", "pathway-analytics"),
    ],
)
@pytest.mark.parametrize("output", [("--json",), ("--format", "table")])
def test_a_read_command_shows_the_state_before_a_write_committed_while_it_read(
    bapp: Bapp, slip_in: Any, command: tuple[str, ...], output: tuple[str, ...]
) -> None:
    assert bapp("clients", "add", MAYA, "--name", "Maya").exit_code == 0
    before = bapp(*command, *output)
    assert before.exit_code == 0, before.stderr
    # right after the schema's revision is read: the read transaction's first statement, where its snapshot starts
    slipped = slip_in("alembic_version", lambda: commit(bapp, enrol_maya_in_a_new_pathway))
    during = bapp(*command, *output)
    assert slipped, "the write was not slipped in"
    assert (during.exit_code, during.stdout) == (0, before.stdout), during.stderr
    assert "late-joiners" in bapp("pathways", "list", "--json").stdout  # committed, seen by the next command


def test_a_backup_taken_while_another_process_writes_is_one_state(bapp: Bapp, slip_in: Any) -> None:
    # `export all` reads the clients, then (statements later) the bookings: a client and a booking of theirs committed
    # between the two were a booking in the file whose client was not (an import of that backup refuses it)
    def book_a_new_client(other: Session) -> None:
        session_type = add_session_type(other, "Late Intro")
        client = add_client(other, "late@client.example", "Late")
        add_booking(other, client=client, session_type=session_type, start=dt.datetime(2031, 1, 1, 10, tzinfo=dt.UTC))

    commit(bapp, lambda other: add_client(other, MAYA, "Maya"))
    before = bapp("export", "all", "-o", "-")
    slipped = slip_in("client_profiles", lambda: commit(bapp, book_a_new_client))
    during = bapp("export", "all", "-o", "-")
    assert slipped and during.exit_code == 0, during.stderr
    backup = json.loads(during.stdout)
    clients = {client["email"] for client in backup["clients"]}
    assert {booking["client"] for booking in backup["bookings"]} <= clients, backup["bookings"]
    assert backup == json.loads(before.stdout)
    assert "late@client.example" in bapp("export", "all", "-o", "-").stdout


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)  # a rollback journal is SQLite's
def test_a_plain_read_keeps_writers_out_of_a_rollback_journal_until_it_ends(bapp: Bapp, slip_in: Any) -> None:
    # Without WAL (a file another program set to a rollback journal, bapp's writes not yet there), the plain read's
    # transaction holds its shared lock across its statements: a writer cannot commit between two of them.
    assert bapp("clients", "add", MAYA, "--name", "Maya").exit_code == 0
    path = dbapi.sqlite_file(bapp.database_url)
    assert path is not None
    with sqlite3.connect(path, isolation_level=None) as journal:
        assert journal.execute("PRAGMA journal_mode = DELETE").fetchone() == ("delete",)
    refused: list[str] = []

    def write() -> None:
        writer = sqlite3.connect(path, timeout=0.2, isolation_level=None)
        try:
            writer.execute("BEGIN")
            writer.execute("UPDATE users SET name = 'Renamed' WHERE email = ?", (MAYA,))
            writer.execute("COMMIT")
        except sqlite3.OperationalError as exc:
            refused.append(str(exc))
            writer.execute("ROLLBACK")
        finally:
            writer.close()

    slipped = slip_in("alembic_version", write)
    shown = bapp("clients", "show", MAYA, "--json")
    assert slipped and refused == ["database is locked"], refused
    assert (shown.exit_code, shown.json()["name"]) == (0, "Maya"), shown.stderr
