"""R5: the Alembic chain — single head, full round trips with data, no drift, seed data."""

from __future__ import annotations

import contextlib
import datetime as dt
import re
import sqlite3
import subprocess
import threading
import time
from decimal import Decimal
from pathlib import Path

import pytest
from alembic.script import ScriptDirectory
from sqlalchemy import func, inspect, select, text
from sqlalchemy.orm import Session

from bapp_cli.db import migration
from bapp_cli.db.engine import make_engine
from bapp_cli.db.models import (
    Badge,
    Base,
    Booking,
    ClientProfile,
    Enrolment,
    Pathway,
    SessionType,
    Skill,
    SkillPathwayLink,
    User,
    UserSkillProgress,
)
from bapp_cli.errors import quoted
from tests.conftest import Bapp, eventually
from tests.postgres_server import waits_for_lock

EXPECTED_CHAIN = [
    "0001_baseline",
    "0002_add_pathway_tracking",
    "0003_add_booking_enhancements",
    "0004_session_type_enhancements",
    "0005_add_skill_enhancements",
    "0006_create_user_skill_progress",
    "0007_unique_session_slugs",
    "0008_calendly_write_through",
    "0009_webhook_inbox",
    "0010_portable_badges",
    "0011_no_show_order",
    "0012_partial_booking_indexes",
    "0013_text_collation_c",
    "0014_session_slug_rule",
    "0015_no_pathway_named_none",
    "0016_hold_made",
    "0017_unicode_email_domains",
    "0018_checks_without_in_lists",
    "0019_names_in_nfc",
    "0020_audit_entity_index",
]


def test_single_head_matches_the_constant() -> None:
    assert migration.script_heads() == (migration.HEAD_REVISION,)
    assert [row["revision"] for row in migration.history()] == EXPECTED_CHAIN


def _populate(url: str) -> None:
    engine = make_engine(url)
    now = dt.datetime(2030, 1, 1, 10, tzinfo=dt.UTC)
    with Session(engine) as session:
        client = User(email="ada@example.com", name="Ada")
        builder = User(email="bob@example.com", name="Bob")
        session.add_all([client, builder])
        session.flush()
        pathway = session.scalars(select(Pathway).where(Pathway.slug == "accelerate")).one()
        session_type = SessionType(title="Intro", duration_minutes=30, category="free", requires_auth=False)
        skill = Skill(slug="prompting", name="Prompting")
        session.add_all([session_type, skill])
        session.flush()
        session.add_all(
            [
                Enrolment(client_id=client.id, pathway_id=pathway.id, start_date=now.date(), builder_id=builder.id),
                Booking(
                    reference="BK-TEST0001",
                    client_id=client.id,
                    builder_id=builder.id,
                    session_type_id=session_type.id,
                    start_time=now,
                    end_time=now + dt.timedelta(minutes=30),
                    status="confirmed",
                    payment_status="not_required",
                    amount=Decimal("0.00"),
                    pathway_id=pathway.id,
                    custom_question_responses=[{"question": "Goal?", "answer": "ship", "position": 0}],
                ),
                SkillPathwayLink(skill_id=skill.id, pathway_id=pathway.id, tier=1),
                UserSkillProgress(client_id=client.id, skill_id=skill.id, status="completed", attempts=1),
                Badge(client_id=client.id, key="tier:accelerate:1"),
            ]
        )
        session.commit()
    engine.dispose()


def test_round_trip_with_data_and_no_drift(empty_database_url: str) -> None:
    engine = make_engine(empty_database_url, create_sqlite_file=True)
    migration.upgrade(engine)
    assert migration.current_revision(engine) == migration.HEAD_REVISION
    assert migration.schema_drift(engine) == []
    _populate(empty_database_url)

    # step down one revision at a time, then all the way, with rows present
    for target in reversed(EXPECTED_CHAIN[:-1]):
        migration.downgrade(engine, target)
        assert migration.current_revision(engine) == target
    with engine.connect() as connection:
        assert connection.execute(text("SELECT count(*) FROM users")).scalar() == 2
        assert connection.execute(text("SELECT count(*) FROM bookings")).scalar() == 1
    migration.downgrade(engine, "base")
    assert migration.current_revision(engine) is None
    assert set(inspect(engine).get_table_names()) <= {"alembic_version"}

    migration.upgrade(engine)
    assert migration.schema_drift(engine) == []
    _populate(empty_database_url)
    with Session(engine) as session:
        assert session.scalar(select(func.count()).select_from(Pathway)) == 3
        booking = session.scalars(select(Booking)).one()
        assert booking.start_time == dt.datetime(2030, 1, 1, 10, tzinfo=dt.UTC)
        assert booking.custom_question_responses[0]["answer"] == "ship"
    engine.dispose()


def test_upgrade_keeps_existing_rows(empty_database_url: str) -> None:
    engine = make_engine(empty_database_url, create_sqlite_file=True)
    migration.upgrade(engine, "0002_add_pathway_tracking")
    now = dt.datetime(2030, 1, 1, tzinfo=dt.UTC)
    with engine.begin() as connection:
        connection.execute(
            text("INSERT INTO users (email, created_at, updated_at) VALUES ('a@example.com', :n, :n)"),
            {"n": now},
        )
        connection.execute(
            text(
                "INSERT INTO session_types (title, duration_minutes, kind, is_secret, remote_active,"
                " present_in_last_sync, enabled, created_at, updated_at)"
                " VALUES ('Old', 30, 'solo', false, true, true, true, :n, :n)"
            ),
            {"n": now},
        )
        connection.execute(
            text(
                "INSERT INTO bookings (reference, client_id, session_type_id, start_time, end_time, client_timezone,"
                " status, created_at, updated_at) VALUES ('BK-OLD00001', 1, 1, :s, :e, 'UTC', 'confirmed', :n, :n)"
            ),
            {"s": now, "e": now + dt.timedelta(hours=1), "n": now},
        )
    migration.upgrade(engine)
    with Session(engine) as session:
        booking = session.scalars(select(Booking)).one()
        assert booking.payment_status == "not_required"
        assert booking.source == "cli"
        assert booking.custom_question_responses == []
        old_type = session.scalars(select(SessionType)).one()
        assert old_type.category == "specialized" and old_type.requires_auth is True
        assert old_type.price == Decimal("0.00")
    engine.dispose()


def test_default_pathways_are_seeded(engine) -> None:  # type: ignore[no-untyped-def]
    with Session(engine) as session:
        rows = session.execute(
            select(Pathway.slug, Pathway.name, Pathway.icon, Pathway.color).order_by(Pathway.position)
        )
        assert [tuple(row) for row in rows] == [
            ("accelerate", "Accelerate", "🚀", "#10B981"),
            ("pivot", "Pivot", "🔄", "#3B82F6"),
            ("play", "Play", "🎨", "#8B5CF6"),
        ]
        # a new pathway gets the next id: the seed's explicit ids must not break the sequence
        session.add(Pathway(slug="new", name="New", position=3))
        session.commit()
        assert session.scalar(select(Pathway.id).where(Pathway.slug == "new")) == 4


# A session type as raw SQL writes one into the schema of any revision from 0006 on, before bapp's rules
SESSION_TYPE_INSERT = text(
    "INSERT INTO session_types (title, slug, calendly_uri, duration_minutes, kind, is_secret, remote_active,"
    " present_in_last_sync, enabled, category, requires_auth, price, currency, display_order,"
    " custom_questions, created_at, updated_at)"
    " VALUES (:title, :slug, :uri, 30, 'solo', false, true, true, true, 'specialized', true, 0, 'GBP', 0,"
    " '[]', :n, :n)"
)


def test_0007_renames_clashing_slugs_deterministically_then_enforces_uniqueness(empty_database_url: str) -> None:
    """Issue 15 #6: a local `play-lab` and a synced `play-lab` (and a third) upgrade to play-lab,
    play-lab-3, play-lab-4 (play-lab-2 was already taken); a new clash is then refused by the database."""
    from sqlalchemy.exc import IntegrityError

    engine = make_engine(empty_database_url, create_sqlite_file=True)
    migration.upgrade(engine, "0006_create_user_skill_progress")
    now = dt.datetime(2030, 1, 1, tzinfo=dt.UTC)
    insert = SESSION_TYPE_INSERT
    with engine.begin() as connection:
        for title, slug, uri in (
            ("Local", "play-lab", None),
            ("Other", "play-lab-2", None),
            ("Synced", "play-lab", "https://api.calendly.com/event_types/A"),
            ("Synced again", "play-lab", "https://api.calendly.com/event_types/B"),
            ("No slug", None, None),
            ("No slug either", None, None),
        ):
            connection.execute(insert, {"title": title, "slug": slug, "uri": uri, "n": now})
    migration.upgrade(engine)
    assert migration.schema_drift(engine) == []
    with engine.connect() as connection:
        slugs = dict(connection.execute(text("SELECT title, slug FROM session_types")).all())
    assert slugs == {
        "Local": "play-lab",
        "Other": "play-lab-2",
        "Synced": "play-lab-3",
        "Synced again": "play-lab-4",
        "No slug": None,
        "No slug either": None,
    }
    with pytest.raises(IntegrityError), engine.begin() as connection:
        connection.execute(insert, {"title": "Clash", "slug": "play-lab", "uri": None, "n": now})
    migration.downgrade(engine, "0006_create_user_skill_progress")
    with engine.begin() as connection:  # the old schema allowed the clash again
        connection.execute(insert, {"title": "Clash", "slug": "play-lab", "uri": None, "n": now})
    engine.dispose()


def test_0014_gives_slugs_that_break_the_rule_the_slug_it_gives(empty_database_url: str) -> None:
    """Slugs an import or a sync stored before the one rule (`Bad Slug!`, `Play_Lab`, `2024`) become the slug the
    rule gives them, numbered when taken, in id order; NULL when nothing is left."""
    engine = make_engine(empty_database_url, create_sqlite_file=True)
    migration.upgrade(engine, "0013_text_collation_c")
    now = dt.datetime(2030, 1, 1, tzinfo=dt.UTC)
    given = {
        "Fine": "play-lab",
        "Underscored": "Play_Lab",
        "Spaced": "Bad Slug!",
        "Nothing left": "!!!",
        "Bad again": "bad--slug",
        "Digits": "2024",
        "Empty": None,
        "Long": "a" * 197 + "-bc",  # 200 characters, the column's length
        "Long again": "A" * 197 + "-bc",  # numbered: cut to 198 it ends on the hyphen, which `--2` would break
    }
    with engine.begin() as connection:
        for title, slug in given.items():
            connection.execute(SESSION_TYPE_INSERT, {"title": title, "slug": slug, "uri": None, "n": now})
    said: list[str] = []
    migration.upgrade(engine, warn=said.append)
    assert migration.schema_drift(engine) == []
    with engine.connect() as connection:
        slugs = dict(connection.execute(text("SELECT title, slug FROM session_types")).all())
    assert said[:2] == [
        "session type 2: slug 'Play_Lab' is now 'play-lab-2'",
        "session type 3: slug 'Bad Slug!' is now 'bad-slug'",
    ]
    assert "session type 4: slug '!!!' has none now (name it by its id)" in said and len(said) == 6
    assert slugs == {
        "Fine": "play-lab",
        "Underscored": "play-lab-2",
        "Spaced": "bad-slug",
        "Nothing left": None,
        "Bad again": "bad-slug-2",
        "Digits": "session-2024",
        "Empty": None,
        "Long": "a" * 197 + "-bc",
        "Long again": "a" * 197 + "-2",
    }
    migration.downgrade(engine, "0013_text_collation_c")


def test_0015_gives_a_pathway_called_none_a_free_slug_and_its_badges_follow(
    empty_database_url: str, tmp_path: Path
) -> None:
    """An earlier bapp accepted a pathway `none` (in any case), which now means "no pathway": it becomes the first
    free `none-N`, in id order, and the badge keys that name it by slug follow; `db upgrade` is told."""
    engine = make_engine(empty_database_url, create_sqlite_file=True)
    migration.upgrade(engine, "0014_session_slug_rule")
    now = dt.datetime(2030, 1, 1, tzinfo=dt.UTC)
    pathway = text(
        "INSERT INTO pathways (slug, name, position, archived, created_at, updated_at)"
        " VALUES (:slug, :slug, :position, false, :n, :n)"
    )
    with engine.begin() as connection:
        for position, slug in enumerate(["none", "none-2", "None", "nonesuch"], start=10):
            connection.execute(pathway, {"slug": slug, "position": position, "n": now})
        connection.execute(
            text("INSERT INTO users (email, name, created_at, updated_at) VALUES ('a@x.org', 'A', :n, :n)"), {"n": now}
        )
        badge = text("INSERT INTO badges (client_id, key, awarded_at) SELECT id, :key, :n FROM users")
        for key in ["tier:none:1", "pathway:none", "tier:None:2", "tier:none-2:1", "tier:nonesuch:1", "fundamentals"]:
            connection.execute(badge, {"key": key, "n": now})
    upgraded = Bapp(empty_database_url, tmp_path)("db", "upgrade")
    assert upgraded.exit_code == 0, upgraded.stderr
    said = [line for line in upgraded.stderr.splitlines() if line.startswith("Warning: ")]
    assert migration.schema_drift(engine) == []
    with engine.connect() as connection:
        slugs = connection.execute(text("SELECT slug FROM pathways WHERE position >= 10 ORDER BY position")).scalars()
        keys = connection.execute(text("SELECT key FROM badges ORDER BY id")).scalars()
        assert (list(slugs), list(keys)) == (
            ["none-3", "none-2", "none-4", "nonesuch"],
            ["tier:none-3:1", "pathway:none-3", "tier:none-4:2", "tier:none-2:1", "tier:nonesuch:1", "fundamentals"],
        )
    assert [message.split(" (id")[0] for message in said] == ["Warning: pathway 'none'", "Warning: pathway 'None'"]
    assert "is now 'none-3'" in said[0] and "is now 'none-4'" in said[1]
    migration.downgrade(engine, "0014_session_slug_rule")  # the slugs stay
    with engine.connect() as connection:
        assert connection.execute(text("SELECT count(*) FROM pathways WHERE slug LIKE 'none-_'")).scalar() == 3
    engine.dispose()


def test_0017_keys_an_address_stored_with_its_domain_in_punycode_as_every_door_keys_it(
    empty_database_url: str, tmp_path: Path
) -> None:
    """An earlier bapp stored an internationalised domain as typed; keyed in Unicode since, an address stored as
    xn-- was found by neither spelling and a Calendly booking of it made a second client. It is rewritten, its
    stamp kept; one whose Unicode form is already another user's stays apart, and `db upgrade` names the pair."""
    engine = make_engine(empty_database_url, create_sqlite_file=True)
    migration.upgrade(engine, "0016_hold_made")
    then = dt.datetime(2030, 1, 1, tzinfo=dt.UTC)
    stored = ["ana@xn--exmple-cua.com", "bo@bücher.de", "bo@xn--bcher-kva.de", "cy@xn--a-b.example", "dee@x.org"]
    stored.append("ana@xn--example-hie.com")  # its ä written as a + U+0308: the first address once in NFC
    with Session(engine) as session:  # the schema is head's: 0017 changes values alone
        for email in stored:
            session.add(user := User(email=email, created_at=then, updated_at=then))
            session.flush()
            session.add(ClientProfile(user_id=user.id, created_at=then))
        session.commit()
    bapp = Bapp(empty_database_url, tmp_path)
    upgraded = bapp("db", "upgrade")
    assert upgraded.exit_code == 0, upgraded.stderr
    said = [line for line in upgraded.stderr.splitlines() if line.startswith("Warning: ")]
    assert [line.split(" are one address")[0] for line in said] == [
        "Warning: users 'bo@xn--bcher-kva.de' (id 3) and 'bo@bücher.de' (id 2)",
        "Warning: users 'ana@xn--example-hie.com' (id 6) and 'ana@exämple.com' (id 1)",
    ]
    assert migration.schema_drift(engine) == []
    with Session(engine) as session:
        rows = session.execute(select(User.email, User.updated_at).order_by(User.id)).all()
    assert [email for email, _ in rows] == ["ana@exämple.com", *stored[1:]]
    assert {stamp for _, stamp in rows} == {then}
    for typed in ("ana@xn--exmple-cua.com", "ana@exämple.com"):  # found by either spelling, one client
        shown = bapp("clients", "show", typed, "--json")
        assert shown.exit_code == 0 and shown.json()["email"] == "ana@exämple.com", shown.stderr
        assert bapp("clients", "add", typed).exit_code == 8
    engine.dispose()


def test_0018_value_lists_of_bookings_and_enrolments_refuse_as_before_without_an_in_list(
    empty_database_url: str,
) -> None:
    """SQLite checked a CHECK's `IN (…)` list by building an ephemeral table at every row written (2.5 % of a
    bookings import's instructions); 0018 writes those lists as `=` … `OR`. The same values pass and the same are
    refused, by the same constraint, on both backends; the downgrade puts the `IN` lists back."""
    from sqlalchemy.exc import IntegrityError

    engine = make_engine(empty_database_url, create_sqlite_file=True)
    migration.upgrade(engine)
    _populate(empty_database_url)
    checked = {
        "bookings": {
            "status": ("pending", "confirmed", "completed", "cancelled", "no_show"),
            "payment_status": ("not_required", "unpaid", "paid", "refunded"),
            "source": ("cli", "import", "calendly"),
            "calendly_state": (None, "requested", "unknown", "booked", "failed"),
        },
        "enrolments": {"status": ("active", "paused", "completed")},
    }

    def lists_in_the_schema() -> bool:
        with engine.connect() as connection:
            if connection.dialect.name == "postgresql":  # PostgreSQL keeps an IN list as `= ANY (ARRAY[…])`
                found = "SELECT count(*) FROM pg_constraint WHERE contype = 'c' AND conrelid IN"
                found += " ('bookings'::regclass, 'enrolments'::regclass) AND pg_get_constraintdef(oid) LIKE '%ANY%'"
            else:
                found = "SELECT count(*) FROM sqlite_master WHERE name IN ('bookings', 'enrolments')"
                found += " AND sql LIKE '% IN (%'"
            return bool(connection.execute(text(found)).scalar())

    assert not lists_in_the_schema()
    for table, columns in checked.items():
        for column, allowed in columns.items():
            for value in allowed:
                with engine.begin() as connection:
                    connection.execute(text(f"UPDATE {table} SET {column} = :value"), {"value": value})
            for refused in ("bogus", "Pending", ""):
                with pytest.raises(IntegrityError, match=f"ck_{table}_{column}"):
                    with engine.begin() as connection:
                        connection.execute(text(f"UPDATE {table} SET {column} = :value"), {"value": refused})
    migration.downgrade(engine, "0017_unicode_email_domains")
    assert lists_in_the_schema()
    engine.dispose()


def test_the_models_check_each_value_list_in_the_form_the_migrations_left(
    sqlite_template: Path, tmp_path: Path
) -> None:
    """`db check` compares columns, keys and indexes, not CHECK texts; a table the models would create (the tests'
    `create_all`) must still hold the lists as a migrated database does: `=` … `OR` where 0018 rewrote them, `IN (…)`
    elsewhere."""

    def checks(path: Path) -> dict[str, str]:
        with contextlib.closing(sqlite3.connect(path)) as connection:
            tables = connection.execute("SELECT name, sql FROM sqlite_master WHERE type = 'table'").fetchall()
        found = {}
        for table, sql in tables:
            for name, condition in re.findall(r"CONSTRAINT (ck_\w+) CHECK \((.*?)\)(?:,|\s*\)\s*$)", sql or "", re.S):
                found[f"{table}.{name}"] = " ".join(condition.split())
        return found

    created = make_engine(f"sqlite:///{tmp_path / 'created.db'}", create_sqlite_file=True)
    Base.metadata.create_all(created)
    created.dispose()
    migrated = checks(sqlite_template)
    assert len(migrated) >= 14 and "bookings.ck_bookings_status" in migrated
    assert checks(tmp_path / "created.db") == migrated


@pytest.mark.parametrize("empty_database_url", ["postgresql"], indirect=True)
def test_every_text_column_has_the_c_collation_on_postgresql(empty_database_url: str) -> None:
    # 0013 gives each text column SQLite's order whatever the server's locale; a column a later migration adds
    # without COLLATE "C" would sort by the locale again, which neither the drift check nor a C-locale server sees
    engine = make_engine(empty_database_url)
    columns = text(
        "SELECT table_name, column_name, collation_name FROM information_schema.columns"
        " WHERE table_schema = current_schema() AND data_type IN ('text', 'character varying', 'character')"
        " AND table_name <> 'alembic_version' ORDER BY table_name, column_name"
    )
    migration.upgrade(engine)
    with engine.connect() as connection:
        found = connection.execute(columns).all()
    assert len(found) > 50 and [tuple(row) for row in found if row.collation_name != "C"] == []
    migration.downgrade(engine, "0012_partial_booking_indexes")  # back to the database's own, and up again
    with engine.connect() as connection:
        assert {row.collation_name for row in connection.execute(columns)} == {None}
    migration.upgrade(engine)
    with engine.connect() as connection:
        assert connection.execute(columns).all() == found
    engine.dispose()


@pytest.mark.parametrize("empty_database_url", ["postgresql"], indirect=True)
def test_0013_refused_by_a_view_of_the_users_is_exit_5_and_leaves_the_revision(empty_database_url: str) -> None:
    """PostgreSQL will not retype a column a view uses: that was exit 1 ('unexpected error'), where it is the
    database's state, named with the view; nothing of the run stays, and once the view is gone it upgrades."""
    from bapp_cli.errors import DatabaseNotReady

    engine = make_engine(empty_database_url)
    migration.upgrade(engine, "0012_partial_booking_indexes")
    with engine.begin() as connection:
        connection.execute(text("CREATE VIEW my_users AS SELECT email FROM users"))
    with pytest.raises(DatabaseNotReady) as refused:
        migration.upgrade(engine)
    assert refused.value.exit_code == 5
    assert "left at revision 0012_partial_booking_indexes" in refused.value.message
    assert 'view my_users depends on column "email"' in refused.value.message
    assert migration.current_revision(engine) == "0012_partial_booking_indexes"
    with engine.begin() as connection:
        connection.execute(text("DROP VIEW my_users"))
    migration.upgrade(engine)
    assert migration.current_revision(engine) == migration.HEAD_REVISION
    engine.dispose()


def test_a_run_refused_midway_leaves_the_revision_it_started_from(empty_database_url: str) -> None:
    """A trigger of the user's refuses 0014's renames after 0013 has run: on SQLite Alembic committed each
    migration on its own, so the database stayed at 0013 while the message said nothing had changed."""
    from bapp_cli.errors import DatabaseNotReady

    engine = make_engine(empty_database_url, create_sqlite_file=True)
    migration.upgrade(engine, "0012_partial_booking_indexes")
    sqlite = engine.dialect.name == "sqlite"
    refuse = (
        "CREATE TRIGGER no_renames BEFORE UPDATE ON session_types BEGIN SELECT RAISE(ABORT, 'no renames'); END"
        if sqlite
        else "CREATE FUNCTION no_renames() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RAISE 'no renames'; END $$;"
        " CREATE TRIGGER no_renames BEFORE UPDATE ON session_types FOR EACH ROW EXECUTE FUNCTION no_renames()"
    )
    with engine.begin() as connection:
        connection.exec_driver_sql(refuse)
        connection.execute(
            text(
                "INSERT INTO session_types (title, slug, duration_minutes, kind, is_secret, remote_active,"
                " present_in_last_sync, enabled, category, requires_auth, price, currency, display_order,"
                " custom_questions, created_at, updated_at) VALUES ('T', 'Play_Lab', 30, 'solo', false, true, true,"
                " true, 'specialized', true, 0, 'GBP', 0, '[]', :n, :n)"
            ),
            {"n": dt.datetime(2030, 1, 1, tzinfo=dt.UTC)},
        )
    with pytest.raises(DatabaseNotReady) as refused:
        migration.upgrade(engine)
    assert "left at revision 0012_partial_booking_indexes" in refused.value.message
    assert "no renames" in refused.value.message
    assert migration.current_revision(engine) == "0012_partial_booking_indexes"
    with engine.begin() as connection:
        connection.exec_driver_sql("DROP TRIGGER no_renames" + ("" if sqlite else " ON session_types"))
    migration.upgrade(engine)
    with engine.connect() as connection:
        assert connection.execute(text("SELECT slug FROM session_types")).scalar() == "play-lab"
    engine.dispose()


def test_a_unique_index_of_the_users_refusing_a_step_is_a_step_refused(empty_database_url: str) -> None:
    """An index of the user's refusing a step's change is that step refused, as a trigger's is, naming the revision
    the database stays at; on PostgreSQL it was "a constraint of the database's own refused the change" (or, before,
    "another session wrote the same record meanwhile … run the command again", which fails every time)."""
    from bapp_cli.errors import DatabaseNotReady

    engine = make_engine(empty_database_url, create_sqlite_file=True)
    migration.upgrade(engine, "0013_text_collation_c")
    with engine.begin() as connection:
        # lower('Play_Lab') and lower('PLAY-LAB') differ; 0014 renames the first to 'play-lab', the second's lower()
        connection.exec_driver_sql("CREATE UNIQUE INDEX one_slug_any_case ON session_types (lower(slug))")
        for slug in ("Play_Lab", "PLAY-LAB"):
            connection.execute(
                text(
                    "INSERT INTO session_types (title, slug, duration_minutes, kind, is_secret, remote_active,"
                    " present_in_last_sync, enabled, category, requires_auth, price, currency, display_order,"
                    " custom_questions, created_at, updated_at) VALUES ('T', :slug, 30, 'solo', false, true, true,"
                    " true, 'specialized', true, 0, 'GBP', 0, '[]', :n, :n)"
                ),
                {"slug": slug, "n": dt.datetime(2030, 1, 1, tzinfo=dt.UTC)},
            )
    with pytest.raises(DatabaseNotReady) as refused:
        migration.upgrade(engine)
    assert refused.value.code == "migration_refused"
    assert "left at revision 0013_text_collation_c" in refused.value.message
    assert "one_slug_any_case" in refused.value.message
    assert migration.current_revision(engine) == "0013_text_collation_c"
    engine.dispose()


@pytest.mark.parametrize("database_url", ["sqlite", "postgresql"], indirect=True)
def test_every_key_and_check_of_a_migrated_database_is_known_as_bapps(database_url: str) -> None:
    """dbapi tells a unique index or check an administrator added (exit 5) from bapp's own (a key taken meanwhile, exit
    8; a bug) by the models' names, and SQLite's column lists: one a migration names otherwise would pass for the
    administrator's. Each is given as the driver reports its refusal."""
    from types import SimpleNamespace

    from bapp_cli.db.dbapi import _not_bapps_constraint

    refusals: list[Exception] = []
    engine = make_engine(database_url)
    with engine.connect() as connection:
        if engine.dialect.name == "postgresql":
            for name, kind in connection.execute(
                text(
                    "SELECT conname, contype::text FROM pg_constraint WHERE connamespace = 'public'::regnamespace"
                    " AND contype IN ('u', 'p', 'c') UNION SELECT indexrelid::regclass::text, 'i' FROM pg_index"
                    " WHERE indisunique AND indrelid::regclass::text NOT LIKE 'pg_%'"
                )
            ):
                refused = Exception(name)
                refused.sqlstate = "23514" if kind == "c" else "23505"  # type: ignore[attr-defined]
                refused.diag = SimpleNamespace(constraint_name=name)  # type: ignore[attr-defined]
                refusals.append(refused)
        else:
            for table, sql in connection.exec_driver_sql("SELECT name, sql FROM sqlite_master WHERE type = 'table'"):
                for _, index, unique, origin, _ in connection.exec_driver_sql(f"PRAGMA index_list('{table}')"):
                    columns = [info[2] for info in connection.exec_driver_sql(f"PRAGMA index_info('{index}')")]
                    refused = sqlite3.IntegrityError(
                        f"UNIQUE constraint failed: {', '.join(f'{table}.{column}' for column in columns)}"
                    )
                    refused.sqlite_errorname = f"SQLITE_CONSTRAINT_{'PRIMARYKEY' if origin == 'pk' else 'UNIQUE'}"
                    refusals.extend([refused] if unique else [])
                assert "CHECK" not in re.sub(r'CONSTRAINT "?\w+"? CHECK', "", sql)  # SQLite names a nameless one's SQL
                for name in re.findall(r'CONSTRAINT "?(\w+)"? CHECK', sql):
                    refused = sqlite3.IntegrityError(f"CHECK constraint failed: {name}")
                    refused.sqlite_errorname = "SQLITE_CONSTRAINT_CHECK"
                    refusals.append(refused)
    engine.dispose()
    assert len(refusals) > 40
    assert [str(refused) for refused in refusals if _not_bapps_constraint(refused) is not None] == []


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_migration_waits_for_another_sqlite_writer_rather_than_failing_at_once(bapp: Bapp) -> None:
    """README: exit 75 once another writer held the database past the wait (SQLite's 30 s busy timeout). The run's
    transaction began deferred and read first, and SQLite refuses a read transaction's step up to writing at once
    while another connection holds the write lock: `db upgrade`/`downgrade` beside a running sync or import was
    exit 75 ('the database is busy: database is locked') within a second. It now waits for that writer."""
    holder = sqlite3.connect(bapp.database_url.removeprefix("sqlite:///"), isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    process = bapp.popen("db", "downgrade", "0014_session_slug_rule", "--yes")
    with contextlib.suppress(subprocess.TimeoutExpired):  # the old run was refused well within this
        process.wait(timeout=5)
    holder.execute("COMMIT")
    holder.close()
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 0, stderr
    engine = make_engine(bapp.database_url)
    assert migration.current_revision(engine) == "0014_session_slug_rule"
    engine.dispose()


def test_a_step_refused_on_sqlite_names_the_revision_left_as_on_postgresql(bapp: Bapp) -> None:
    """A database stamped below what its schema holds (another program's doing): the step that adds a column already
    there is refused. PostgreSQL's refusal said 'cannot upgrade to 'head'; the database, left at revision …,
    refused: …' with what to do; SQLite's, an OperationalError like every SQLite refusal, was the bare 'database
    error: duplicate column name: calendly_no_show_at'."""
    engine = make_engine(bapp.database_url)
    with engine.begin() as connection:
        connection.execute(text("UPDATE alembic_version SET version_num = '0010_portable_badges'"))
    result = bapp("db", "upgrade")
    assert result.exit_code == 5, result.stderr
    assert result.stderr.startswith(
        "Error: cannot upgrade to 'head'; the database, left at revision 0010_portable_badges, refused: "
    ), result.stderr
    assert "calendly_no_show_at" in result.stderr and "Hint: change or drop what it names" in result.stderr
    assert migration.current_revision(engine) == "0010_portable_badges"
    engine.dispose()


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)  # PostgreSQL alters tables in place
def test_a_migration_rebuilding_a_table_on_sqlite_keeps_the_users_own_triggers_on_it(bapp: Bapp) -> None:
    """SQLite's batch mode copies a table and drops the original, and with it every trigger on it: a trigger of the
    user's own on bookings (an audit of changes, say) was gone after 0018's upgrade, silently, with exit 0."""
    engine = make_engine(bapp.database_url)
    migration.downgrade(engine, "0017_unicode_email_domains")
    _populate(bapp.database_url)
    with engine.begin() as connection:
        connection.execute(text("CREATE TABLE my_audit (what TEXT)"))
        for table in ("bookings", "enrolments"):
            audit = f"BEGIN INSERT INTO my_audit VALUES ('{table}'); END"
            connection.execute(text(f"CREATE TRIGGER my_{table} AFTER UPDATE ON {table} {audit}"))
    assert bapp("db", "upgrade").exit_code == 0
    with engine.begin() as connection:
        connection.execute(text("UPDATE bookings SET status = 'completed'"))
        connection.execute(text("UPDATE enrolments SET status = 'paused'"))
        assert connection.execute(text("SELECT what FROM my_audit ORDER BY what")).scalars().all() == [
            "bookings",
            "enrolments",
        ]
    engine.dispose()


def test_a_migration_stopped_while_it_rebuilds_a_table_exits_130_at_the_revision_it_started_from(bapp: Bapp) -> None:
    """Ctrl-C (or SIGTERM) in 0018's copy of bookings: SQLite's batch mode then dropped its copy on the connection the
    stop had invalidated, and that PendingRollbackError, not the stop, was reported: exit 1, 'unexpected error'."""
    from sqlalchemy import Engine, event

    engine = make_engine(bapp.database_url)
    migration.downgrade(engine, "0017_unicode_email_domains")

    def stop_in_the_rebuild(cursor: object, statement: str, *_: object) -> None:
        if statement.startswith(("INSERT INTO _alembic_tmp_bookings", "ALTER TABLE bookings")):
            raise KeyboardInterrupt  # as Python raises a signal's stop inside the running statement

    event.listen(Engine, "do_execute", stop_in_the_rebuild)
    try:
        result = bapp("db", "upgrade")
    finally:
        event.remove(Engine, "do_execute", stop_in_the_rebuild)
    assert (result.exit_code, result.stderr) == (130, "Interrupted; nothing was changed.\n")
    assert migration.current_revision(engine) == "0017_unicode_email_domains"
    assert "_alembic_tmp_bookings" not in inspect(engine).get_table_names()
    engine.dispose()


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_the_check_after_a_committed_migration_does_not_wait_for_another_writer(bapp: Bapp) -> None:
    """The foreign-key check after the run's commit is a read: it began as the run did (BEGIN IMMEDIATE, since the
    run waits for another writer), so a writer that took the database the moment the migration committed (the sync
    or import it had waited for) made `db downgrade` wait again and fail busy (exit 75) with the migration done."""
    from sqlalchemy import Connection, event

    from bapp_cli.db.engine import WRITE_OPTION

    holder = sqlite3.connect(bapp.database_url.removeprefix("sqlite:///"), isolation_level=None)
    migrating: list[Connection] = []

    def another_writer_takes_over(connection: Connection) -> None:
        # the run's connection beginning again is the check after its commit: another writer got in first
        if connection in migrating and not holder.in_transaction:
            holder.execute("BEGIN IMMEDIATE")
        elif connection.get_execution_options().get(WRITE_OPTION):
            migrating.append(connection)

    event.listen(Connection, "begin", another_writer_takes_over)
    try:  # the old wait, cut short: no 30 s test
        result = bapp("db", "downgrade", "0014_session_slug_rule", "--yes", env={"BAPP_BUSY_TIMEOUT": "0.1"})
    finally:
        event.remove(Connection, "begin", another_writer_takes_over)
        took_over = holder.in_transaction
        holder.close()
    assert took_over
    assert result.exit_code == 0, result.stderr
    engine = make_engine(bapp.database_url)
    assert migration.current_revision(engine) == "0014_session_slug_rule"
    engine.dispose()


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_full_disk_during_a_migration_is_said_as_every_command_says_it(bapp: Bapp) -> None:
    """Since 24e2ae1 SQLite's refusal of a step's SQL (a column there already) is the migration's refusal, with its
    hint to change or drop what it names; a full disk took those words too ('the database, left at revision None,
    refused: database or disk is full', 'change or drop what it names'): it is no refusal of the step, and keeps the
    words of every command."""
    from sqlalchemy import Connection, event

    from bapp_cli.db.engine import WRITE_OPTION

    assert bapp("db", "downgrade", "base", "--yes").exit_code == 0
    with contextlib.closing(sqlite3.connect(bapp.database_url.removeprefix("sqlite:///"))) as shrink:
        shrink.execute("VACUUM")  # no free pages left from the downgrade: the upgrade's tables need new ones

    def disk_full(connection: Connection) -> None:  # the file may not grow: SQLite's "database or disk is full"
        if connection.get_execution_options().get(WRITE_OPTION):
            pages = connection.connection.driver_connection.execute("PRAGMA page_count").fetchone()[0]
            connection.connection.driver_connection.execute(f"PRAGMA max_page_count = {pages}")

    event.listen(Connection, "begin", disk_full)
    try:
        result = bapp("db", "upgrade")
    finally:
        event.remove(Connection, "begin", disk_full)
    assert result.exit_code == 5, result.stderr
    assert result.stderr == "Error: database error: database or disk is full\n", result.stderr
    engine = make_engine(bapp.database_url)
    assert migration.current_revision(engine) is None
    engine.dispose()


def test_a_refused_first_step_names_the_revision_left_base(empty_database_url: str, tmp_path: Path) -> None:
    """A database at no revision said 'left at revision None' where every other message says base."""
    engine = make_engine(empty_database_url, create_sqlite_file=True)
    with engine.begin() as connection:  # another program's table, named as one the baseline creates
        connection.execute(text("CREATE TABLE users (id INTEGER PRIMARY KEY)"))
    engine.dispose()
    result = Bapp(empty_database_url, tmp_path)("db", "upgrade")
    assert result.exit_code == 5, result.stderr
    assert result.stderr.startswith("Error: cannot upgrade to 'head'; the database, left at revision base, refused: ")
    assert "already exists" in result.stderr, result.stderr


def test_a_refused_step_names_its_target_cut_as_every_echo(empty_database_url: str, tmp_path: Path) -> None:
    """A target Alembic resolves (`base+000…01`, 1,000 characters) came back whole in the refusal, where every other
    message about a target quotes it cut (errors.quoted)."""
    engine = make_engine(empty_database_url, create_sqlite_file=True)
    with engine.begin() as connection:  # another program's table, named as one the baseline creates
        connection.execute(text("CREATE TABLE users (id INTEGER PRIMARY KEY)"))
    engine.dispose()
    target = "base+" + "0" * 995 + "1"
    result = Bapp(empty_database_url, tmp_path)("db", "upgrade", target)
    assert result.exit_code == 5, result.stderr
    cut = quoted(target)
    assert cut.endswith("…") and len(cut) < 100
    assert result.stderr.startswith(f"Error: cannot upgrade to {cut}; the database, left at revision base, refused: ")
    assert "0" * 100 not in result.stderr


def test_a_step_of_more_digits_than_python_reads_is_refused_not_exit_1(bapp: Bapp) -> None:
    # Alembic read it with int(), which refuses past 4,300 digits: "unexpected error: ValueError" (exit 1); digits
    # of any script (U+0663 ARABIC-INDIC DIGIT THREE) as well, which both read
    for action, target in (
        ("upgrade", "base+" + "0" * 4400 + "1"),
        ("downgrade", "head-" + "0" * 4400 + "1"),
        ("upgrade", "base+" + "\u0663" * 4400),
    ):
        result = bapp("db", action, target, *(["--yes"] if action == "downgrade" else []))
        assert result.exit_code == 6, result.stderr
        assert result.stderr.startswith(f"Error: cannot {action} to {quoted(target)}: not a revision\n"), result.stderr
    assert bapp("db", "current").exit_code == 0  # at head, untouched


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_a_migration_waits_for_a_command_that_read_the_revision_and_has_yet_to_write(bapp: Bapp) -> None:
    # a command asked at-head on a connection of its own, then began its transaction: a downgrade (as a newer bapp's
    # upgrade would) committed between the two had the write made to a schema its bapp does not know
    engine = make_engine(bapp.database_url)
    scripts = ScriptDirectory(str(migration.script_location()))
    previous = str(scripts.get_revision(migration.HEAD_REVISION).down_revision)
    try:
        with engine.connect() as holder:
            holder.execute(text("LOCK TABLE users IN EXCLUSIVE MODE"))  # its reads pass, its insert waits
            adding = bapp.popen("clients", "add", "held@example.com", "--name", "Held")
            eventually(lambda: waits_for_lock(engine, "%users%"), "the command to wait for its insert")
            migrating = bapp.popen("db", "downgrade", previous, "--yes")
            waits = lambda: migrating.poll() is not None or waits_for_lock(engine, "LOCK TABLE alembic_version%")  # noqa: E731
            eventually(waits, "the downgrade to end or wait")
            assert migrating.poll() is None, "the downgrade did not wait for the command in flight"
            holder.rollback()
            _, added = adding.communicate(timeout=60)
            _, migrated = migrating.communicate(timeout=60)
        assert (adding.returncode, migrating.returncode) == (0, 0), (added, migrated)
        assert migration.current_revision(engine) == previous
    finally:
        engine.dispose()


def _wchan(path: str) -> str:
    """The kernel function a task sleeps in ('0' while it runs), or why it cannot be read."""
    try:
        return Path(path).read_text()
    except OSError as exc:
        return f"unreadable: {exc.strerror}"


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_sqlite_writer_asks_at_head_inside_its_transaction_not_before_it(bapp: Bapp) -> None:
    # A migration holding SQLite's write lock: a command's at-head read before its transaction (WAL: the revision
    # as last committed) passed, its BEGIN IMMEDIATE then waited for the migration's commit, and the write went on
    # into the schema the migration left, exit 0. Both writers (the ORM's unit of work, a Calendly run's plain one)
    # now read the revision after their BEGIN IMMEDIATE, so they see the migration's and refuse (exit 5).
    from bapp_cli.db import dbapi
    from bapp_cli.errors import DatabaseNotReady

    scripts = ScriptDirectory(str(migration.script_location()))
    previous = str(scripts.get_revision(migration.HEAD_REVISION).down_revision)
    holder = sqlite3.connect(bapp.database_url.removeprefix("sqlite:///"), isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    holder.execute("UPDATE alembic_version SET version_num = ?", (previous,))
    adding = bapp.popen("clients", "add", "held@example.com", "--name", "Held")
    plain: list[BaseException | None] = []
    writer_task: list[int] = []

    def write_plainly() -> None:
        writer_task.append(threading.get_native_id())
        try:
            with dbapi.writing(bapp.database_url, actor="test", command="test"):
                plain.append(None)
        except DatabaseNotReady as refused:
            plain.append(refused)

    writer = threading.Thread(target=write_plainly)
    writer.start()
    # both past their start (the old code's at-head read) and asleep in SQLite's busy handler, waiting for the
    # write lock; seen twice in a row, so a passing sleep is not taken for it (a fixed 4 s wait before)
    deadline, seen = time.monotonic() + 60, 0
    # A kernel or sandbox that hides wchan (no KALLSYMS, gVisor: '0' or no file) ends this in 60 s, saying so: a
    # fixed wait instead would take the waiting on trust again (test_bookings_race needs wchan as well)
    while seen < 2:
        wchans = [
            _wchan(f"/proc/{adding.pid}/wchan"),
            *(_wchan(f"/proc/self/task/{task}/wchan") for task in writer_task),
        ]
        waiting = time.monotonic() < deadline and adding.poll() is None
        said = f"`clients add` exit {adding.returncode}, their /proc wchan (its first): {wchans}"
        assert waiting, f"the writers never waited for the lock ({said})"
        seen = seen + 1 if len(wchans) == 2 and all("nanosleep" in wchan for wchan in wchans) else 0
        time.sleep(0.05)
    holder.execute("COMMIT")
    holder.close()
    writer.join(timeout=60)
    _, stderr = adding.communicate(timeout=60)
    assert adding.returncode == 5, stderr
    assert f"the database is at revision {previous}, not at head" in stderr
    assert isinstance(plain[0], DatabaseNotReady) and previous in plain[0].message, plain
    with sqlite3.connect(bapp.database_url.removeprefix("sqlite:///")) as reader:
        assert reader.execute("SELECT count(*) FROM users WHERE email = 'held@example.com'").fetchone() == (0,)
