"""`bapp export …` end to end, and full backups: export → import into a fresh database of the other backend
→ export is identical, SQLite → PostgreSQL → SQLite."""

from __future__ import annotations

import json
import shutil
import tomllib
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from bapp_cli.db.engine import make_engine
from bapp_cli.db.models import Badge, Booking, SessionType, User
from tests.conftest import BACKENDS, REPO, Bapp, SeededCopies, _admin_execute, _fresh_database, _with_database
from tests.services.test_booking_factories import count, seed_session

EXAMPLES = REPO / "examples"


@pytest.fixture(name="seed")
def seed_fixture(database_url: str) -> Iterator[Session]:
    yield from seed_session(database_url)


@pytest.fixture(scope="module")
def seeded_copies(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SeededCopies]:
    yield from SeededCopies.per_module(tmp_path_factory)


def populated(bapp: Bapp, copies: SeededCopies) -> None:
    """`populate`d: run once per backend (18 commands), then copied into each later test's fresh database."""
    copies.seed_or_copy(bapp.database_url, lambda: populate(bapp))


def populate(bapp: Bapp) -> None:
    """A database touched by every feature: catalogue, Calendly types, people, bookings, progress, badges."""
    config = str(EXAMPLES / "config.toml")
    steps = [
        ("import", "all", str(EXAMPLES / "catalog.toml")),
        ("builders", "add", "priya@coach.example", "--name", "Priya", "--buffer", "10",
         "--calendly-user", "https://api.calendly.com/users/BAWPRIYA0001"),
        ("--config", config, "calendly", "sync", "--from-file", str(EXAMPLES / "calendly" / "event_types.json")),
        ("sessions", "update", "rag-architecture-review", "--price", "120", "--display-order", "3"),
        ("sessions", "update", "accelerate-foundation-coaching", "--price", "45"),
        ("sessions", "add", "--title", "Office Hours", "--duration", "30", "--category", "free"),
        ("clients", "add", "nina@client.example", "--name", "Nina Kowalski", "--company", "Kowalski Bakery"),
        ("import", "clients", str(EXAMPLES / "clients.csv")),
        ("import", "bookings", str(EXAMPLES / "bookings.csv")),
        ("bookings", "create", "--client", "nina@client.example", "--session", "accelerate-foundation-coaching",
         "--start", "2031-04-01T14:00", "--timezone", "Europe/London", "--duration", "90", "--pathway", "accelerate",
         "--answer", "Company name=Kowalski Bakery", "--answer", "What are you building?=An ordering assistant",
         "--answer", "AI tools you use today=ChatGPT", "--idempotency-key", "nina-1"),
        ("clients", "enroll", "nina@client.example", "pivot", "--builder", "priya@coach.example"),
        ("skills", "assign", "nina@client.example", "--pathway", "play", "--tier", "1", "--status", "completed",
         "--via", "assessment"),
        ("skills", "complete", "maya@client.example", "ai-literacy", "--validated-by", "priya@coach.example",
         "--note", "Solid: 'quotes', \"double\", and a\nnewline"),
        ("pathways", "add", "data-leaders", "--name", "Data Leaders", "--tier", "Start: first steps"),
        ("skills", "link", "ai-literacy", "data-leaders:1"),
        ("pathways", "archive", "data-leaders", "--yes"),
    ]  # fmt: skip
    for step in steps:
        result = bapp(*step, "--format", "tsv")
        assert result.exit_code == 0, (step, result.stderr)
    reference = bapp("bookings", "list", "--client", "nina@client.example", "--format", "tsv").stdout.splitlines()[1]
    assert bapp("bookings", "confirm", reference.split("\t")[0], "--paid", "--format", "tsv").exit_code == 0


def test_export_formats_files_and_errors(bapp: Bapp, seed: Session, tmp_path: Path) -> None:
    assert bapp("import", "clients", str(EXAMPLES / "clients.csv")).exit_code == 0
    listing = bapp("export", "clients")
    assert listing.exit_code == 0 and listing.stderr == ""
    records = json.loads(listing.stdout)
    assert [record["email"] for record in records][:2] == ["ava.chen@client.example", "ben.okoro@client.example"]
    assert list(records[0]) == ["id", "email", "name", "company", "industry", "created_at"]
    target = tmp_path / "clients.tsv"
    written = bapp("export", "clients", "-o", str(target))
    assert written.exit_code == 0 and written.stdout == "" and written.stderr == ""
    lines = target.read_text().splitlines()
    assert lines[0] == "id\temail\tname\tcompany\tindustry\tcreated_at" and len(lines) == 8
    assert not list(tmp_path.glob("*.partial-*"))
    jsonl = bapp("export", "clients", "--format", "jsonl")
    assert [json.loads(line)["email"] for line in jsonl.stdout.splitlines()] == [record["email"] for record in records]
    toml_path = tmp_path / "clients.toml"
    assert bapp("export", "clients", "-o", str(toml_path)).exit_code == 0
    assert toml_path.read_text().count("[[clients]]") == 7 and "industry" in toml_path.read_text()
    # the export imports back unchanged, in each format
    for path in (target, toml_path):
        again = bapp("import", "clients", str(path), "--json")
        assert again.json()["unchanged"] == 7, again.stderr
    unknown = bapp("export", "widgets")
    assert unknown.exit_code == 2 and "unknown kind 'widgets'" in unknown.stderr
    all_csv = bapp("export", "all", "--format", "csv")
    assert all_csv.exit_code == 2 and "one JSON or TOML document" in all_csv.stderr
    unwritable = bapp("export", "clients", "-o", str(tmp_path / "missing" / "x.csv"))
    assert unwritable.exit_code == 6 and "cannot write" in unwritable.stderr


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)  # reading the file: no backend's part
@pytest.mark.parametrize("fmt", ["csv", "tsv"])
def test_a_record_as_long_as_the_import_takes_exports_as_csv_that_imports_back(
    bapp: Bapp, tmp_path: Path, fmt: str
) -> None:
    # A pathway's description and each tier's may hold 100,000 characters: three such tiers are one CSV line of about
    # 1.6 MB, which the CSV reader refused (exit 6: "a line longer than 1048576 bytes") though JSON reads the record.
    long = "é😀" * 50_000
    tiers = [{"tier": number, "name": f"Tier {number}", "description": long} for number in (1, 2, 3)]
    document = tmp_path / "long.json"
    document.write_text(json.dumps([{"slug": "long", "name": "Long", "description": long, "tiers": tiers}]))
    assert bapp("import", "pathways", str(document)).exit_code == 0
    exported = tmp_path / f"pathways.{fmt}"
    assert bapp("export", "pathways", "-o", str(exported)).exit_code == 0
    again = bapp("import", "pathways", str(exported), "--json")
    assert again.exit_code == 0, again.stderr[:500]
    assert (again.json()["updated"], again.json()["unchanged"]) == (0, 4)  # the three default pathways too


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)  # the option's reading: no backend's part
@pytest.mark.parametrize("command", [("export", "all"), ("badges", "status-list")])
def test_an_empty_output_path_is_refused_not_taken_for_stdout(bapp: Bapp, command: tuple[str, ...]) -> None:
    # `-o "$BACKUP"` with BACKUP unset printed the whole backup (or the signed status list) to the terminal or
    # log, as an empty --from listed every booking; '-' is how stdout is asked for
    assert bapp("badges", "issuer", "init", "--name", "Bapp", "--url", "https://bapp.example/").exit_code == 0
    refused = bapp(*command, "-o", "")
    said = "--output: cannot write '': an empty file name: give a file name, or '-' for stdout"
    assert refused.exit_code == 6 and said in refused.stderr, refused.stderr
    assert refused.stdout == ""


def test_export_bookings_carry_the_session_by_natural_key(
    bapp: Bapp, seed: Session, tmp_path: Path, seeded_copies: SeededCopies
) -> None:
    populated(bapp, seeded_copies)
    exported = bapp("export", "bookings", "--format", "csv")
    assert exported.exit_code == 0
    header = exported.stdout.splitlines()[0].split(",")
    assert header[:8] == [
        "id",
        "reference",
        "client",
        "client_name",
        "builder",
        "session_id",
        "session",
        "session_title",
    ]
    records = json.loads(bapp("export", "bookings").stdout)
    nina = next(record for record in records if record["client"] == "nina@client.example")
    assert nina["session"].startswith("https://api.calendly.com/event_types/")
    assert (nina["status"], nina["payment_status"], nina["idempotency_key"]) == ("confirmed", "paid", "nina-1")
    assert nina["request_fingerprint"] and len(nina["custom_question_responses"]) == 3


def _fresh_sqlite(sqlite_template: Path, path: Path) -> str:
    shutil.copyfile(sqlite_template, path)
    return f"sqlite:///{path}"


def test_a_backup_moves_sqlite_to_postgresql_and_back_exactly(
    tmp_path: Path,
    sqlite_template: Path,
    postgres_template: str,
    postgres_admin_url: str,
    seeded_copies: SeededCopies,
) -> None:
    source = Bapp(_fresh_sqlite(sqlite_template, tmp_path / "source.db"), tmp_path / "a")
    populated(source, seeded_copies)
    backup = tmp_path / "backup.json"
    assert source("export", "all", "-o", str(backup)).exit_code == 0
    document = json.loads(backup.read_text())
    assert document["bapp"]["format"] == "bapp-backup"
    assert [key for key in document if key != "bapp"] == [
        "pathways",
        "skills",
        "builders",
        "clients",
        "sessions",
        "enrolments",
        "progress",
        "bookings",
        "badges",
        "calendly_bookings",
        "calendly_invitations",
        "webhook_inbox",
    ]
    # nina's play tier; and linking ai-literacy, which maya and nina had completed, to data-leaders' only tier
    # completed that tier and that pathway for both of them
    assert len(document["badges"]) == 5 and len(document["bookings"]) == 11

    name = f"bapp_restore_{uuid.uuid4().hex[:10]}"
    _admin_execute(postgres_admin_url, f'CREATE DATABASE "{name}" TEMPLATE "{postgres_template}"')
    try:
        postgres = Bapp(_with_database(postgres_admin_url, name), tmp_path / "p")
        restored = postgres("import", "all", str(backup), "--json")
        assert restored.exit_code == 0, restored.stderr
        assert (restored.json()["restored"], restored.json()["rejected"]) == (True, 0)
        second = tmp_path / "second.json"
        assert postgres("export", "all", "-o", str(second)).exit_code == 0
        assert second.read_text() == backup.read_text()
        # ids stayed valid and the sequences moved past them: new rows get fresh ids
        assert (
            postgres("sessions", "show", str(document["sessions"][0]["id"]), "--json").json()["slug"]
            == (document["sessions"][0]["slug"])
        )
        added = postgres("clients", "add", "late@client.example", "--json")
        assert added.exit_code == 0, added.stderr
        engine = make_engine(postgres.database_url)
        with Session(engine) as session:
            late = session.scalars(select(User.id).where(User.email == "late@client.example")).one()
            assert late > max(record["id"] for record in document["clients"])
            assert count(session, Booking) == 11 and count(session, Badge) == len(document["badges"])
        engine.dispose()
        toml_backup = tmp_path / "backup.toml"
        assert postgres("export", "all", "-o", str(toml_backup)).exit_code == 0
    finally:
        _admin_execute(postgres_admin_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    back = Bapp(_fresh_sqlite(sqlite_template, tmp_path / "back.db"), tmp_path / "b")
    assert back("import", "all", str(toml_backup), "--json").json()["restored"] is True
    third = tmp_path / "third.json"
    assert back("export", "all", "-o", str(third)).exit_code == 0
    finished = json.loads(third.read_text())
    assert finished == {**document, "clients": finished["clients"]}
    assert [client for client in finished["clients"] if client["email"] != "late@client.example"] == document["clients"]
    engine = make_engine(back.database_url)
    with Session(engine) as session:
        assert count(session, SessionType) == len(document["sessions"])
    engine.dispose()


def test_importing_a_backup_into_the_database_it_came_from_changes_nothing(
    bapp: Bapp, seed: Session, tmp_path: Path, seeded_copies: SeededCopies
) -> None:
    populated(bapp, seeded_copies)
    backup = tmp_path / "backup.json"
    assert bapp("export", "all", "-o", str(backup)).exit_code == 0
    result = bapp("import", "all", str(backup), "--json")
    assert result.exit_code == 0, result.stderr
    summary = result.json()
    assert (summary["restored"], summary["created"], summary["updated"], summary["rejected"]) == (False, 0, 0, 0)
    again = tmp_path / "again.json"
    assert bapp("export", "all", "-o", str(again)).exit_code == 0
    assert again.read_text() == backup.read_text()


# every column a backup's rows may hold null, of every kind that has one, set in `populate`d data (and the builder's
# advance) but for the badges' revocation (a merge keeps a badge the database holds as it is). Not a pathway
# session's booking's pathway, which a merge chooses (rule 4), nor the answers a session requires, nor a
# builder-validated completion's validator; and not a builder's Calendly user or a session's Calendly URI, which no
# import clears (a null leaves them, in JSON too)
NULLED = {
    "pathways": ("description", "icon", "color"),
    "skills": ("description", "domain"),
    "builders": ("max_advance_days",),
    "clients": ("name", "company", "industry"),
    "sessions": ("description", "duration_options", "builder", "scheduling_url", "color", "invitee_limit",
                 "calendly_position", "owner_uri", "remote_updated_at", "last_synced_at"),
    "enrolments": ("completed_at", "builder"),
    "progress": ("started_at", "validated_by", "pathway", "notes", "last_attempt_at"),
    "bookings": ("client_name", "builder", "pathway", "idempotency_key", "cancellation_reason", "cancelled_at",
                 "request_fingerprint", "remote_updated_at"),
    "badges": ("revoked_at", "revocation_reason"),
}  # fmt: skip


@pytest.mark.parametrize("fmt", ["json", "toml"])
def test_a_backup_of_null_fields_merged_over_set_ones_is_exact_in_every_format(
    bapp: Bapp, tmp_path: Path, second_database_url: str, seeded_copies: SeededCopies, fmt: str
) -> None:
    # TOML has no null: a backup's row leaves a null column out, which a merge read as "leave it as it is". Merged
    # into a database holding those fields set, a TOML backup so kept every one of them (JSON's cleared them).
    populated(bapp, seeded_copies)
    handmade = tmp_path / "handmade.toml"  # without the header, a column a row leaves out is left as it is
    handmade.write_text('[[clients]]\nemail = "nina@client.example"\nname = "Nina K"\n')
    assert bapp("import", "all", str(handmade)).exit_code == 0
    nina = bapp("clients", "show", "nina@client.example", "--json").json()
    assert (nina["name"], nina["company"]) == ("Nina K", "Kowalski Bakery")
    assert bapp("builders", "update", "priya@coach.example", "--max-advance", "30").exit_code == 0
    full = tmp_path / "full.json"
    assert bapp("export", "all", "-o", str(full)).exit_code == 0
    document = json.loads(full.read_text())
    for kind, names in NULLED.items():
        for row in document[kind]:
            kept = {"validated_by"} if row.get("completed_via") == "builder_validation" else set()
            kept |= {"pathway"} if row.get("category") == "pathway" else set()
            row.update(dict.fromkeys(set(names) - kept))
    for tier in (tier for pathway in document["pathways"] for tier in pathway["tiers"]):
        tier["description"] = None
    nulls = tmp_path / "nulls.json"
    nulls.write_text(json.dumps(document))
    source = Bapp(second_database_url, tmp_path / "source")
    assert source("import", "all", str(nulls)).exit_code == 0  # restored as recorded
    backup = tmp_path / f"backup.{fmt}"
    assert source("export", "all", "-o", str(backup)).exit_code == 0
    merged = bapp("import", "all", str(backup), "--json")
    assert merged.exit_code == 0 and merged.json()["rejected"] == 0, merged.stderr
    for out, read in (("json", json.loads), ("toml", tomllib.loads)):
        ours, theirs = tmp_path / f"merged.{out}", tmp_path / f"source.{out}"
        assert bapp("export", "all", "-o", str(ours)).exit_code == 0
        assert source("export", "all", "-o", str(theirs)).exit_code == 0
        merged_records, source_records = read(ours.read_text()), read(theirs.read_text())
        for row in (*merged_records["progress"], *source_records["progress"]):
            del row["updated_at"]  # a merge stamps the progress rows it changed with its own time
        assert merged_records == source_records


@pytest.mark.parametrize("fmt", ["toml", "json"])
def test_a_backup_of_nulls_inside_answers_and_questions_restores(
    bapp: Bapp, tmp_path: Path, second_database_url: str, fmt: str
) -> None:
    # TOML has no null: an export leaves out a null answer, or a question's null position, enabled, required or
    # include_other (stored so by another program). The restore read the answer as missing ("custom_question_
    # responses[0].answer: required") and refused a null flag that JSON carried ("position: Input should be …").
    question = {"name": "Goal", "type": "string"}
    session = {"slug": "intro", "title": "Intro", "duration_minutes": 30, "custom_questions": [question]}
    booking = {"client": "ann@example.com", "session": "intro", "start_time": "2030-01-01T10:00:00Z"}
    for kind, row in (("sessions", session), ("bookings", booking)):
        (tmp_path / f"{kind}.json").write_text(json.dumps([row]))
        assert bapp("import", kind, str(tmp_path / f"{kind}.json")).exit_code == 0
    answers = [{"question": "Goal", "answer": None, "position": 0}]
    flags = dict.fromkeys(("position", "enabled", "required", "answer_choices", "include_other"))
    engine = make_engine(bapp.database_url)
    with Session(engine) as db, db.begin():
        db.execute(update(Booking).values(custom_question_responses=answers))
        db.execute(update(SessionType).values(custom_questions=[question | flags]))
    engine.dispose()
    backup = tmp_path / f"backup.{fmt}"
    assert bapp("export", "all", "-o", str(backup)).exit_code == 0
    restored = Bapp(second_database_url, tmp_path / "restored")
    result = restored("import", "all", str(backup))
    assert result.exit_code == 0, result.stderr
    (row,) = restored("export", "bookings", "--format", "json").json()
    assert row["custom_question_responses"] == answers
    (kept,) = restored("sessions", "show", "intro", "--json").json()["custom_questions"]
    defaults = {"position": 0, "enabled": True, "required": False, "answer_choices": [], "include_other": False}
    assert kept == question | defaults


def test_a_restored_backup_reports_the_same_figures(
    tmp_path: Path, sqlite_template: Path, seeded_copies: SeededCopies
) -> None:
    # "last activity" is the latest change to a client's progress rows: a restore that stamped them with its own
    # time moved every client's last activity to the moment of the restore
    source = Bapp(_fresh_sqlite(sqlite_template, tmp_path / "source.db"), tmp_path / "a")
    populated(source, seeded_copies)
    backup = tmp_path / "backup.json"
    assert source("export", "all", "-o", str(backup)).exit_code == 0
    restored = Bapp(_fresh_sqlite(sqlite_template, tmp_path / "restored.db"), tmp_path / "r")
    assert restored("import", "all", str(backup), "--json").json()["restored"] is True
    reports = [("progress", "table"), ("reports", "client-progress"), ("reports", "pathway-analytics")]
    for report in [*reports, ("reports", "bookings-by-pathway", "--list"), ("clients", "show", "nina@client.example")]:
        before, after = source(*report, "--json"), restored(*report, "--json")
        assert before.exit_code == after.exit_code == 0 and after.stdout == before.stdout, report
    assert restored("export", "all", "-o", str(tmp_path / "again.json")).exit_code == 0
    assert (tmp_path / "again.json").read_text() == backup.read_text()


def test_a_restore_that_creates_a_record_gives_it_a_fresh_id_on_both_backends(bapp: Bapp, tmp_path: Path) -> None:
    # a booking whose client the backup lacks (trimmed by hand, or a client row --continue-on-error rejected)
    # creates the client; on PostgreSQL it drew id 1 from a sequence the restore had not moved yet, so the restore
    # failed on the restored client 1 as 'another session wrote the same record meanwhile' (exit 8, every time)
    backup = tmp_path / "backup.json"
    document = {
        "bapp": {"format": "bapp-backup", "version": 2},
        "clients": [{"id": 1, "email": "ada@example.com", "name": "Ada"}],
        "sessions": [{"id": 1, "slug": "intro", "title": "Intro", "category": "free", "duration_minutes": 30}],
        "bookings": [{"id": 1, "client": "bob@example.com", "session": "intro", "start_time": "2030-01-01T10:00:00Z"}],
    }
    backup.write_text(json.dumps(document))
    restored = bapp("import", "all", str(backup), "--json")
    assert restored.exit_code == 0, restored.stderr
    assert restored.json()["kinds"]["bookings"]["clients_created"] == 1
    clients = json.loads(bapp("export", "clients").stdout)
    assert [(client["id"], client["email"]) for client in clients] == [(1, "ada@example.com"), (2, "bob@example.com")]


MIXED_IDS = {  # a hand-made restore whose rows keep an id, then one without: the second takes the next id
    "skills": (
        [{"id": 1, "slug": "aa", "name": "A"}, {"slug": "bb", "name": "B"}],
        ("skills", "add", "cc", "--name", "C"),
    ),
    "sessions": (
        [
            {"id": 1, "slug": "one", "title": "One", "category": "free", "duration_minutes": 30},
            {"slug": "two", "title": "Two", "category": "free", "duration_minutes": 30},
        ],
        ("sessions", "add", "--slug", "three", "--title", "Three", "--category", "free", "--duration", "30"),
    ),
    "builders": (
        [{"id": 1, "email": "b1@example.com"}, {"email": "b2@example.com"}],
        ("builders", "add", "b3@example.com"),
    ),
    "pathways": (
        [{"id": 4, "slug": "xx", "name": "X"}, {"slug": "yy", "name": "Y"}],
        ("pathways", "add", "zz", "--name", "Z"),
    ),
    "enrolments": (
        [{"id": 1, "client": "a@example.com", "pathway": "pivot"}, {"client": "b@example.com", "pathway": "pivot"}],
        ("clients", "enroll", "a@example.com", "play"),
    ),
}


@pytest.mark.parametrize("kind", sorted(MIXED_IDS))
def test_a_restore_mixing_kept_ids_and_none_gives_the_others_fresh_ids(bapp: Bapp, tmp_path: Path, kind: str) -> None:
    # each row is written as it comes: on PostgreSQL the id-less row drew id 1 (4 for pathways, past the defaults)
    # from a sequence the kept ids had not moved, and the restore failed on it as 'another session wrote the same
    # record meanwhile' (exit 8), where SQLite gave it the next id
    rows, add = MIXED_IDS[kind]
    clients = [{"id": 1, "email": "a@example.com"}, {"id": 2, "email": "b@example.com"}]
    backup = tmp_path / "backup.json"
    backup.write_text(json.dumps({"clients": clients, kind: rows} if kind == "enrolments" else {kind: rows}))
    restored = bapp("import", "all", str(backup), "--json")
    assert restored.exit_code == 0, restored.stderr
    assert restored.json()["restored"] and restored.json()["kinds"][kind]["created"] == 2
    created = bapp(*add)  # and what the commands create afterwards takes an id after them too
    assert created.exit_code == 0, created.stderr
    exported = json.loads(bapp("export", kind).stdout)
    assert sorted(record["id"] for record in exported)[-3:] == [rows[0]["id"], rows[0]["id"] + 1, rows[0]["id"] + 2]


@pytest.fixture(params=BACKENDS)
def restore_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A second fresh database, migrated to head, to restore into: each backend, so with `bapp`'s each pair."""
    where = tmp_path / "restore"
    where.mkdir()
    yield from _fresh_database(request, where, migrated=True)


def _backup_after(bapp: Bapp, steps: list[tuple[str, ...]], tmp_path: Path, stdin: str | None = None) -> Path:
    """`export all` of the database once each of `steps` has run."""
    for step in steps:
        result = bapp(*step, "--format", "tsv", stdin=stdin)
        assert result.exit_code == 0, (step, result.stderr)
    backup = tmp_path / "backup.json"
    assert bapp("export", "all", "-o", str(backup)).exit_code == 0
    return backup


def _restores_as_recorded(restore_url: str, tmp_path: Path, backup: Path) -> dict[str, Any]:
    """`import all` of `backup` into an empty database of `restore_url`, whose own backup is then the same file;
    the import's summary."""
    restored = Bapp(restore_url, tmp_path / "restored")
    result = restored("import", "all", str(backup), "--json")
    assert result.exit_code == 0, result.stderr
    again = tmp_path / "again.json"
    assert restored("export", "all", "-o", str(again)).exit_code == 0
    assert again.read_text() == backup.read_text()
    summary: dict[str, Any] = result.json()
    return summary


def test_a_backup_holding_overlapping_bookings_restores_them_as_recorded(
    bapp: Bapp, restore_url: str, tmp_path: Path
) -> None:
    # Two active bookings of one builder at one time are history a database can hold (`--allow-overlap`; the
    # Calendly doors never refuse what Calendly's calendar already has). A restore takes them as recorded, on and
    # across both backends: were rule 6 applied to it, the move to PostgreSQL would stop at exit 6 on the second
    steps = [
        ("builders", "add", "coach@example.com"),
        ("sessions", "add", "--slug", "talk", "--title", "Talk", "--duration", "30", "--category", "free",
         "--builder", "coach@example.com"),
        ("bookings", "create", "--client", "ann@example.com", "--create-account", "--session", "talk",
         "--start", "2031-05-05T10:00:00Z"),
        ("bookings", "create", "--client", "bob@example.com", "--create-account", "--session", "talk",
         "--start", "2031-05-05T10:15:00Z", "--allow-overlap"),
    ]  # fmt: skip
    backup = _backup_after(bapp, steps, tmp_path)
    statuses = [booking["status"] for booking in json.loads(backup.read_text())["bookings"]]
    assert statuses == ["confirmed", "confirmed"]
    summary = _restores_as_recorded(restore_url, tmp_path, backup)
    assert (summary["restored"], summary["kinds"]["bookings"]["created"]) == (True, 2)


def test_a_backup_holding_a_pathway_sessions_booking_without_a_pathway_restores_it_as_recorded(
    bapp: Bapp, restore_url: str, tmp_path: Path
) -> None:
    # A session made a pathway session after it was booked keeps its bookings without a pathway (as a Calendly
    # booking no pathway could be found for is kept). A restore takes them as recorded: were rule 4 asked of it, the
    # booking's client, enrolled in no linked pathway, would stop it at exit 6 naming the pathway
    steps = [
        ("sessions", "add", "--slug", "talk", "--title", "Talk", "--duration", "30", "--category", "free"),
        ("bookings", "create", "--client", "ann@example.com", "--create-account", "--session", "talk",
         "--start", "2031-05-05T10:00:00Z"),
        ("sessions", "update", "talk", "--category", "pathway", "--pathway", "pivot"),
    ]  # fmt: skip
    backup = _backup_after(bapp, steps, tmp_path)
    document = json.loads(backup.read_text())
    assert [(booking["category"], booking["pathway"]) for booking in document["bookings"]] == [("pathway", None)]
    assert document["enrolments"] == []
    summary = _restores_as_recorded(restore_url, tmp_path, backup)
    assert (summary["restored"], summary["kinds"]["bookings"]["created"]) == (True, 1)


def test_a_backup_holding_a_booking_of_a_length_its_session_no_longer_offers_restores_it_as_recorded(
    bapp: Bapp, restore_url: str, tmp_path: Path
) -> None:
    # A session's length changed after it was booked: the booking keeps the length it was booked for. A restore takes
    # it as recorded: were the session's durations asked of it, the 30-minute booking would stop it at exit 6
    longer = json.dumps([{"slug": "talk", "duration_minutes": 45}])
    steps = [
        ("sessions", "add", "--slug", "talk", "--title", "Talk", "--duration", "30", "--category", "free"),
        ("bookings", "create", "--client", "ann@example.com", "--create-account", "--session", "talk",
         "--start", "2031-05-05T10:00:00Z"),
        ("import", "sessions", "-", "--input-format", "json"),  # the length is changed by an import row
    ]  # fmt: skip
    backup = _backup_after(bapp, steps, tmp_path, stdin=longer)
    assert [session["duration_minutes"] for session in json.loads(backup.read_text())["sessions"]] == [45]
    [booking] = json.loads(backup.read_text())["bookings"]
    assert (booking["start_time"], booking["end_time"]) == ("2031-05-05T10:00:00Z", "2031-05-05T10:30:00Z")
    assert _restores_as_recorded(restore_url, tmp_path, backup)["kinds"]["bookings"]["created"] == 1
