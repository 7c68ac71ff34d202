"""Cross-process locks.

Two kinds:
- `named_lock`: held for the length of a long operation (a Calendly sync, a migration). On PostgreSQL a
  session-level advisory lock on its own connection; on SQLite an exclusive `flock` on a file beside the
  database (the OS releases it if the process dies, so a killed sync never leaves a stale lock).
- `lock_keys`: transaction-scoped locks taken before a check-then-write rule (booking overlap). On
  PostgreSQL `pg_advisory_xact_lock`, released at commit or rollback. On SQLite nothing is needed:
  write transactions begin IMMEDIATE, which already serialises writers across processes.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from bapp_cli.config import email_key
from bapp_cli.db import dbapi
from bapp_cli.errors import Busy, DatabaseNotReady

if TYPE_CHECKING:
    from sqlalchemy import Engine
    from sqlalchemy.orm import Session

POLL_SECONDS = 0.1


def lock_id(name: str) -> int:
    """A stable signed 64-bit key for PostgreSQL advisory locks."""
    digest = hashlib.blake2b(name.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


@contextlib.contextmanager
def named_lock(
    database: Engine | str,
    name: str,
    *,
    wait_seconds: float = 0.0,
    what: str = "operation",
    hint: str = "try later",
    connect_timeout: int = 10,
) -> Iterator[None]:
    """Hold lock `name` of the database (an engine or its URL) or raise Busy (exit 75) after `wait_seconds`.

    Given a URL, taken without SQLAlchemy (a plain psycopg connection opened with `connect_timeout`, or a
    file), so that a Calendly sync, which never imports SQLAlchemy, can take it and send its first request first
    (P2). Given an engine, on a connection of the engine's own (its connect settings). `hint` names the
    way out a caller offers (only the Calendly runs take --wait)."""
    url = database if isinstance(database, str) else str(database.url)  # password masked: dialect and file only
    deadline = time.monotonic() + max(wait_seconds, 0.0)

    def refuse() -> Busy:
        return Busy(f"another {what} is running", hint=hint)

    if url.startswith("postgresql"):
        if isinstance(database, str):
            connection = dbapi.connect_postgresql(url, connect_timeout)
            end_session = connection.close
        else:
            pooled = database.raw_connection()
            connection = dbapi.Database(pooled.driver_connection, "postgresql")
            end_session = pooled.invalidate  # closed, never handed back to the pool still holding the lock
        try:
            while not next(connection.rows("SELECT pg_try_advisory_lock(:k)", {"k": lock_id(name)}))[0]:
                connection.connection.rollback()
                if time.monotonic() >= deadline:
                    raise refuse()
                time.sleep(POLL_SECONDS)
            connection.connection.rollback()  # a session-level lock outlives the transaction it was taken in
            yield
        finally:
            end_session()  # ending the session releases its advisory lock
        return
    path = dbapi.sqlite_file(url)
    if path is None:  # in-memory SQLite: one process only
        yield
        return
    lock_path = path.with_name(f"{path.name}.{name}.lock")
    try:
        handle = open(lock_path, "a+b")  # noqa: SIM115 - closed by the with below
    except OSError as exc:
        raise DatabaseNotReady(
            f"cannot create the lock file {lock_path}: {exc.strerror}",
            hint="the database's folder must exist and be writable by this user",
            code="database_unwritable",
        ) from None
    with handle:
        while True:
            try:
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise refuse() from None
                time.sleep(POLL_SECONDS)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


# The tables an import holds whole on PostgreSQL instead of taking a key per person it touches (thousands).
PEOPLE_TABLES = "bookings, users"
# The table a progress import holds whole, and a progress door (`skills assign|start|complete|reset`) waits for
# before anything else: the import writes its rows in the file's order, batch by batch, the door its own in its
# order, and each waited for a row the other had written (deadlock: the server ended one, often the long import).
PROGRESS_TABLE = "user_skill_progress"
# The key of the pathways' display order: `pathways add` and a pathways import put a new pathway after the last
# position they read, `pathways update --position` renumbers the order it read; one writer of it at a time.
PATHWAY_ORDER = "pathways:order"
# The key of Calendly's bookings, held by a pull, a retry of the inbox, a delivery and the answer to a booking sent to
# Calendly, each till it commits: one at a time, so that none inserts a booking another has yet to commit.
CALENDLY_BOOKINGS = "calendly:bookings"
# Taken right after their tables by every writer of bookings, clients or progress, and of the skills (a change of
# one may complete enrolments): lock_keys' `people` or `progress`, shared, so they pass one another. A Calendly pull or
# a retry of the inbox takes it exclusive (`every_client`), for its transaction: it applies invitee after invitee, the
# first one's enrolment taking COMPLETION_RULES, and a later one's the client's key (a retry) or enrolment row (a
# pull). A `bookings create`, `clients enroll` or `skills assign --pathway` of that client held those, waiting for
# COMPLETION_RULES: each waited for the other and PostgreSQL ended one (exit 75). So did a `skills complete` or
# `skills archive` holding COMPLETION_RULES and waiting to complete an enrolment an earlier invitee gave its coach.
# Keys of every client it touches, taken first instead, would be thousands for a large pull, past PostgreSQL's shared
# lock table.
REPLAY_WRITERS = "people:writers"
# Taken by the completion rules (services.progress.record_completions) once a change is written, after every other
# key: two changes that each complete half of a criterion (a catalogue change or an enrolment, and a completion)
# checked it around the other's uncommitted change, and neither awarded the badge or completed the enrolment both
# made due (PostgreSQL; SQLite's writers already take turns). Every door's rules take it: skills, enrolments
# (clients enroll, bookings, Calendly), the imports'. A transaction that goes on writing after it (a Calendly pull or
# a retry of the inbox, which apply several invitees; an import's later sections) holds off first every writer that
# could hold what it goes on to take while waiting for this key: REPLAY_WRITERS, the imports their tables.
COMPLETION_RULES = "progress:completion-rules"


def lock_for_import(session: Session, kind: str) -> None:
    """Hold off, for the import's length, the writers of bookings and clients and every other import (whatever
    its kind: two imports of one client both inserted it), for a progress import the writers of progress
    (PROGRESS_TABLE), and for a kind that adds pathways (pathways, all) the writers of the pathways' order. Taken
    first, before the import has locked any row a writer holding the order may wait for. Then the skills and
    pathways: every row shared (lock_rows), so a change not yet committed (an archive) is waited for and seen, where
    it was read past and the import enrolled, booked, linked or gave progress in what it archived; the whole table
    for a kind that writes it (skills, pathways, all), which otherwise wrote its rows in the file's order while a
    `skills assign` or `link` held one and waited for another it had written: a deadlock.
    Skills first, as the commands that lock both take them. SQLite's write transactions are already exclusive."""
    if session.get_bind().dialect.name == "postgresql":
        from sqlalchemy import text

        from bapp_cli.db.models import Pathway, Skill

        tables = PEOPLE_TABLES + (f", {PROGRESS_TABLE}" if kind == "progress" else "")
        session.execute(text(f"LOCK TABLE {tables} IN SHARE ROW EXCLUSIVE MODE"))  # excludes itself too
        if kind in ("pathways", "all"):
            lock_keys(session, PATHWAY_ORDER)
        for model in (Skill, Pathway):
            if kind in (model.__tablename__, "all"):  # EXCLUSIVE: plain reads go on, row locks and writes wait
                session.execute(text(f"LOCK TABLE {model.__tablename__} IN EXCLUSIVE MODE"))
            else:  # ids alone: nothing loaded in the session
                lock_rows(session, model, model.id)


def lock_rows(session: Session, model: Any, *columns: Any) -> list[Any]:
    """Every row of `model` (pathways, skills), or its `columns`, read under a share lock held to commit: a writer
    archiving one waits for this transaction, and this one for it, then sees its change (PostgreSQL; SQLite's writers
    take turns). In id order, as every holder of several takes them: two never wait for each other's rows."""
    from sqlalchemy import select

    query = select(*columns or (model,)).order_by(model.id).with_for_update(read=True)
    return list(session.scalars(query.execution_options(populate_existing=True)))  # objects read before: as now


def client_lock_key(email: str) -> str:
    """The key every door takes before it writes a client's bookings, account or enrolments (a booking, `clients add`,
    `enroll` and `set-status`, `skills assign --pathway`, Calendly's deliveries and pulls, the removal of a hold
    Calendly turned down), of the address as bapp keys it (config.email_key: NFC, lower case, trimmed, the domain in
    Unicode), so that ``Ann@X.com`` and ``ann@x.com`` wait for each other, and so do an invitee Calendly sends as
    ``xn--`` and a booking typed in Unicode. Before the client's progress key (``progress:ID``) wherever both are
    taken, in two calls (lock_keys sorts the keys of one call by their hash): the other order would deadlock. Not
    validated: an address that services.emails.normalise_email refuses is never a client's, and its key meets no
    other door."""
    return f"client:{email_key(email)}"


def booking_keys(email: str, builder_id: int | None, group_id: int | None = None, key: str | None = None) -> list[str]:
    """The keys a booking's creation takes (services.booking, rules 6 and 7) for its client, builder, group session
    type (its invitee limit, per start) and idempotency key; a no-show taken back into its slot (rule 6) takes them."""
    owner = f"builder:{builder_id}" if builder_id is not None else None
    group = f"session:{group_id}" if group_id is not None else None
    once = f"idempotency:{key}" if key is not None else None
    return [name for name in (client_lock_key(email), group, owner, once) if name]


def lock_keys(
    session: Session, *names: str, people: bool = False, progress: bool = False, every_client: bool = False
) -> None:
    """Serialise transactions that touch the same keys (sorted, so two callers cannot deadlock). A writer of
    bookings or clients (`people`), or of progress (`progress`), first waits for an import holding PEOPLE_TABLES (or
    PROGRESS_TABLE): otherwise its check-then-insert would read around the import's uncommitted rows and wait only at
    its insert, holding rows the import goes on to write. Both: PEOPLE_TABLES alone, which every import holds. Then a
    writer of bookings, clients or progress takes REPLAY_WRITERS shared, one applying invitees of any client one after
    another (`every_client`: a Calendly pull, a retry of the inbox) exclusive. Every writer's order: the tables,
    REPLAY_WRITERS, the keys, the rows it writes, COMPLETION_RULES."""
    if session.get_bind().dialect.name != "postgresql":
        return
    from sqlalchemy import text

    if people or progress:  # the mode an INSERT takes anyway
        session.execute(text(f"LOCK TABLE {PEOPLE_TABLES if people else PROGRESS_TABLE} IN ROW EXCLUSIVE MODE"))
    # not by a writer taking CALENDLY_BOOKINGS: a pull or retry holds that key whole, so it waits for one there anyway
    if every_client or ((people or progress) and CALENDLY_BOOKINGS not in names):
        mode = "" if every_client else "_shared"
        session.execute(text(f"SELECT pg_advisory_xact_lock{mode}(:k)"), {"k": lock_id(REPLAY_WRITERS)})
    for key in sorted({lock_id(name) for name in names}):
        session.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": key})
