"""`bapp pathways add|update|set-tier|archive` (pathway management), on both backends."""

from __future__ import annotations

import contextlib
import json
import sqlite3
import unicodedata
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from bapp_cli.db.models import AuditEntry, Enrolment, Pathway, PathwayTier
from bapp_cli.errors import InvalidInput
from bapp_cli.services.enrolment import enrol
from tests.cli.test_progress_cli import seed
from tests.conftest import Bapp
from tests.services.test_progress_factories import NOW, client, pathway

PATHWAY_KEYS = ["slug", "name", "description", "icon", "color", "position", "archived", "tiers"]


def test_add_pathway_with_tiers(bapp: Bapp) -> None:
    result = bapp(
        "pathways", "add", "Data-Leaders", "--name", "Data Leaders", "--icon", "📊", "--color", "#f59e0b",
        "--description", "Lead with data", "--tier", "Discover: Map the data you have", "--tier", "Decide",
        "--json",
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    assert result.stderr == ""
    record = result.json()
    assert list(record) == PATHWAY_KEYS
    assert record == {
        "slug": "data-leaders",
        "name": "Data Leaders",
        "description": "Lead with data",
        "icon": "📊",
        "color": "#F59E0B",
        "position": 3,
        "archived": False,
        "tiers": [
            {"tier": 1, "name": "Discover", "description": "Map the data you have", "skills": []},
            {"tier": 2, "name": "Decide", "description": None, "skills": []},
        ],
    }
    assert [row["slug"] for row in bapp("pathways", "list", "--json").json()][-1] == "data-leaders"
    assert bapp("pathways", "show", "DATA-LEADERS", "--json").json() == record
    audited = seed(
        bapp, lambda session: session.scalar(select(AuditEntry.entity_key).where(AuditEntry.entity == "pathway"))
    )
    assert audited == "data-leaders"


def test_add_refuses_duplicates_and_bad_values(bapp: Bapp) -> None:
    duplicate = bapp("pathways", "add", "ACCELERATE", "--name", "Again")
    assert duplicate.exit_code == 8 and duplicate.stdout == ""
    assert "Error: pathway 'accelerate' already exists" in duplicate.stderr
    for args, field in (
        (("bad:slug", "--name", "X"), "slug:"),
        (("None", "--name", "X"), "slug:"),  # `--pathway none` means no pathway: no pathway may be called that
        (("ok", "--name", "X", "--color", "green"), "color:"),
        (("ok", "--name", "   "), "name:"),
        (("ok", "--name", "X", "--tier", ": no name"), "tier 1:"),
        # a tier's description is named with its tier (it read 'description:', as if the pathway's)
        (
            ("ok", "--name", "X", "--tier", "A", "--tier", f"B: {'d' * 100_001}"),
            "tier 2 description: 100,001 characters; at most",
        ),
        (("ok", "--name", "X", "--tier", "A: bell \x07"), "tier 1 description: holds the control character U+0007"),
    ):
        result = bapp("pathways", "add", *args)
        assert result.exit_code == 6, (args, result.stderr)
        assert f"Error: {field}" in result.stderr
    assert seed(bapp, lambda session: session.scalar(select(func.count()).select_from(Pathway))) == 3
    assert bapp("pathways", "add", "ok", "--name", "X", "--dry-run").exit_code == 0
    assert seed(bapp, lambda session: session.scalar(select(func.count()).select_from(Pathway))) == 3


def test_no_pathway_may_be_named_as_another_is_called_in_any_case(bapp: Bapp) -> None:
    # A Calendly answer names a pathway by its slug or its name, in any case and spacing, and the first pathway
    # that reads so took the booking: with a pathway 'pivot-pro' named 'PIVOT ' placed first, a client who
    # answered "Pivot" was booked under pivot-pro and enrolled in it. Such a name (or slug) is now refused.
    for args, field, taken in (
        (("add", "pivot-pro", "--name", " PIVOT "), "name: 'PIVOT'", "pivot"),
        (("add", "pivot-pro", "--name", "Pivot pro"), None, None),
        (("update", "play", "--name", "Pivot-Pro"), "name: 'Pivot-Pro'", "pivot-pro"),
        (("update", "accelerate", "--name", "play"), "name: 'play'", "play"),
        (("add", "PLAY-pen", "--name", "Pen"), None, None),
        (("update", "play-pen", "--name", "Pivot pro  "), "name: 'Pivot pro'", "pivot-pro"),
        (("add", "pivot-Pro-2", "--name", "X"), None, None),
        (("add", "Pen", "--name", "Y"), "slug: 'pen'", "play-pen"),
    ):
        result = bapp("pathways", *args, "--json")
        if field is None:
            assert result.exit_code == 0, result.stderr
            continue
        assert result.exit_code == 8 and result.stdout == "", (args, result.stderr)
        assert result.stderr.startswith(f"Error: {field} already names pathway '{taken}'"), result.stderr
    # its own slug in another case is no other pathway's; nor is a name no other pathway has
    assert bapp("pathways", "update", "accelerate", "--name", "ACCELERATE").exit_code == 0
    assert bapp("pathways", "update", "play", "--name", "Play & Create").exit_code == 0
    names = {item["slug"]: item["name"] for item in bapp("pathways", "list", "--json").json()}
    assert names == {
        "accelerate": "ACCELERATE",
        "pivot": "Pivot",
        "play": "Play & Create",
        "pivot-pro": "Pivot pro",
        "play-pen": "Pen",
        "pivot-pro-2": "X",
    }


def test_a_name_spelt_in_other_unicode_code_points_names_the_same_pathway(bapp: Bapp) -> None:
    # 'Café' typed with a combining accent (NFD) reads as 'Café' (NFC) but was another name: a second pathway took
    # it, and a Calendly answer "Café" then named whichever came first. Names are compared in NFC, as e-mails are.
    assert bapp("pathways", "add", "cafe", "--name", "Café").exit_code == 0
    decomposed = unicodedata.normalize("NFD", "CAFÉ")
    result = bapp("pathways", "add", "cafe-2", "--name", decomposed)
    assert result.exit_code == 8 and result.stdout == "", result.stderr
    # the name said as it would be stored: in NFC (services.plain_text.nfc)
    assert result.stderr.startswith("Error: name: 'CAFÉ' already names pathway 'cafe'"), result.stderr


def test_an_import_refuses_a_new_pathway_named_as_another_and_a_backup_holding_two_restores(
    bapp: Bapp, tmp_path: Path
) -> None:
    # `import pathways` (and `import all` into a database with data) created or renamed a pathway whose slug or
    # name reads as another's, which `pathways add/update` refuse: a Calendly answer "Pivot" then booked under
    # whichever came first. It is now the same refused row, naming the pathway, and nothing is written.
    source = tmp_path / "pathways.csv"
    for rows, field, taken in (
        ("pivot-pro,  PIVOT \n", "name: 'PIVOT'", "pivot"),
        ("play,Accelerate\n", "name: 'Accelerate'", "accelerate"),
        ("pro,Pro\nPRO-2,pro\n", "name: 'pro'", "pro"),
    ):
        source.write_text("slug,name\n" + rows)
        result = bapp("import", "pathways", str(source))
        assert result.exit_code == 6, (rows, result.stderr)
        assert f"{field} already names pathway '{taken}'" in result.stderr, result.stderr
    assert [item["name"] for item in bapp("pathways", "list", "--json").json()] == ["Accelerate", "Pivot", "Play"]
    # a database an older bapp let hold two such pathways: its data imports again unchanged, and its backup
    # restores as it was (a restore takes history as recorded)
    seed(bapp, lambda session: setattr(pathway(session, "play"), "name", "PIVOT"))
    backup, again = tmp_path / "backup.json", tmp_path / "again.json"
    assert bapp("export", "all", "-o", str(backup)).exit_code == 0
    assert bapp("export", "pathways", "-o", str(tmp_path / "pathways.json")).exit_code == 0
    merged = bapp("import", "pathways", str(tmp_path / "pathways.json"), "--json")
    assert (merged.exit_code, merged.json()["unchanged"]) == (0, 3), merged.stderr
    assert bapp("import", "all", str(backup)).exit_code == 0
    assert bapp("db", "downgrade", "base", "--yes").exit_code == 0 and bapp("db", "upgrade").exit_code == 0
    restored = bapp("import", "all", str(backup), "--json")
    assert (restored.exit_code, restored.json()["restored"]) == (0, True), restored.stderr
    assert bapp("export", "all", "-o", str(again)).exit_code == 0
    assert json.loads(again.read_text())["pathways"] == json.loads(backup.read_text())["pathways"]


def test_a_backup_holding_a_pathway_called_none_restores_it_renamed_as_0015_would(bapp: Bapp, tmp_path: Path) -> None:
    """An earlier bapp let a pathway be called `none`, which now means no pathway, and its backup was refused
    (exit 6): it restores with that pathway as the first free `none-N` — counting a `none-2` later in the
    backup, as 0015 counts every slug — every reference of the backup following it, badges' keys too."""
    files: dict[str, list[dict[str, Any]]] = {
        "pathways": [
            {"slug": "placeholder", "name": "Old", "tiers": [{"tier": 1, "name": "One"}]},
            {"slug": "none-2", "name": "Genuine"},
        ],
        "skills": [{"slug": "s1", "name": "S1", "links": ["placeholder:1"]}],
        "clients": [{"email": "ada@example.com", "name": "Ada"}],
        "progress": [{"client": "ada@example.com", "skill": "s1", "status": "completed", "pathway": "placeholder"}],
    }
    for kind, rows in files.items():
        (tmp_path / f"{kind}.json").write_text(json.dumps(rows))
        assert bapp("import", kind, str(tmp_path / f"{kind}.json")).exit_code == 0
    assert bapp("sessions", "add", "--title", "Call", "--duration", "30", "--category", "free").exit_code == 0
    (tmp_path / "bookings.csv").write_text(
        "client,session,start_time,pathway\nada@example.com,call,2031-01-06T10:00Z,placeholder\n"
    )
    assert bapp("import", "bookings", str(tmp_path / "bookings.csv")).exit_code == 0
    backup, again = tmp_path / "backup.json", tmp_path / "again.json"
    assert bapp("export", "all", "-o", str(backup)).exit_code == 0
    written = backup.read_text()
    assert all(f'"{key}:placeholder' in written for key in ("tier", "pathway"))  # the badges, by slug
    backup.write_text(written.replace("placeholder", "none"))  # as an earlier bapp wrote it
    assert bapp("db", "downgrade", "base", "--yes").exit_code == 0 and bapp("db", "upgrade").exit_code == 0
    restored = bapp("import", "all", str(backup), "--json")
    assert restored.exit_code == 0, restored.stderr
    assert restored.json()["restored"] is True
    assert "Warning: pathway 'none' is restored as 'none-3', which today's slug rules take" in restored.stderr
    assert bapp("export", "all", "-o", str(again)).exit_code == 0
    assert again.read_text() == written.replace("placeholder", "none-3")


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
@pytest.mark.parametrize(
    ("command", "limit"),
    [
        (("pathways", "add", "iconic", "--name", "X", "--icon"), ("icon", 16)),
        (("skills", "add", "dom", "--name", "X", "--domain"), ("domain", 100)),
        (("pathways", "add", "wordy", "--name", "X", "--description"), ("description", 100_000)),
        (("skills", "add", "wordy", "--name", "X", "--description"), ("description", 100_000)),
    ],
)
def test_an_icon_a_domain_or_a_description_past_its_length_is_refused_and_a_blank_one_is_none(
    bapp: Bapp, command: tuple[str, ...], limit: tuple[str, int]
) -> None:
    # one rule (pathway_admin.clean_description with a length) for both fields, each with its own code
    field, length = limit
    refused = bapp(*command, "x" * (length + 1), "--json")
    assert refused.exit_code == 6, refused.stderr
    message = f"{field}: {length + 1:,} characters; at most {length:,}"
    assert refused.stderr.splitlines()[-1] == (
        f'{{"error": {{"code": "invalid_{field}", "message": "{message}", "details": []}}}}'
    )
    assert bapp(*command, "x" * length, "--json").json()[field] == "x" * length
    # another name too: no two pathways may share one (a Calendly answer names a pathway by it)
    blank = bapp(*command[:2], command[2] + "-2", "--name", "X2", command[-1], "  ", "--json")
    assert blank.json()[field] is None, blank.stderr


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_description_is_held_to_what_an_import_reads_so_the_backup_restores(bapp: Bapp, tmp_path: Path) -> None:
    # each of these stored a description of any length (exit 0), and `import all` of the backup then refused it
    assert bapp("skills", "add", "dom", "--name", "X").exit_code == 0
    for command in (
        ("pathways", "update", "accelerate", "--description"),
        ("pathways", "set-tier", "accelerate", "1", "--name", "T", "--description"),
        ("skills", "update", "dom", "--description"),
        ("sessions", "add", "--title", "T", "--duration", "30", "--description"),
    ):
        refused = bapp(*command, "d" * 100_001)
        assert refused.exit_code == 6 and "Error: description: 100,001 characters; at most 100,000" in refused.stderr, (
            command
        )
        assert bapp(*command, "d" * 100_000).exit_code == 0, command
    backup = tmp_path / "backup.json"
    assert bapp("export", "all", "-o", str(backup)).exit_code == 0
    assert bapp("db", "downgrade", "base", "--yes").exit_code == 0 and bapp("db", "upgrade").exit_code == 0
    restored = bapp("import", "all", str(backup), "--json")
    assert restored.exit_code == 0, restored.stderr
    assert bapp("sessions", "show", "t", "--json").json()["description"] == "d" * 100_000


def test_a_backup_written_before_the_limit_is_refused_naming_each_long_description(
    bapp: Bapp, second_database_url: str, tmp_path: Path
) -> None:
    # a bapp before DESCRIPTION_LIMIT stored (and backed up) a description of any length: `import all` of such a
    # backup refuses it, each row named by its line and field, exit 6, and writes nothing (no silent cut)
    assert bapp("skills", "add", "dom", "--name", "X").exit_code == 0
    assert bapp("sessions", "add", "--title", "T", "--duration", "30").exit_code == 0
    backup = tmp_path / "backup.json"
    assert bapp("export", "all", "-o", str(backup)).exit_code == 0
    document = json.loads(backup.read_text())
    long = "d" * 100_001
    document["pathways"][0]["description"] = document["skills"][0]["description"] = long
    document["pathways"][1]["tiers"][0]["description"] = document["sessions"][0]["description"] = long
    backup.write_text(json.dumps(document, indent=1))
    lines = backup.read_text().splitlines()

    def line_of(kind: str, index: int) -> int:  # the line of the index-th row of a section (`indent=1`: one deep)
        start = lines.index(f' "{kind}": [')
        return [number for number, text in enumerate(lines, 1) if number > start and text == "  {"][index]

    target = Bapp(second_database_url, tmp_path / "target")
    catalogue = ("pathways", "list", "--json"), ("skills", "list", "--all", "--json"), ("sessions", "list", "--json")
    before = [target(*command).json() for command in catalogue]  # the pathways the migrations seed
    refused = target("import", "all", str(backup))
    assert refused.exit_code == 6, refused.stderr
    for kind, index, field in (
        ("pathways", 0, "description"),
        ("pathways", 1, "tiers[0].description"),
        ("skills", 0, "description"),
        ("sessions", 0, "description"),
    ):
        assert f"line {line_of(kind, index)}, field {field}: 100,001 characters; at most 100,000" in (refused.stderr), (
            kind,
            refused.stderr,
        )
    assert [target(*command).json() for command in catalogue] == before


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_progress_note_past_its_length_is_refused_by_the_same_rule(bapp: Bapp, tmp_path: Path) -> None:
    for command in (("skills", "add", "dom", "--name", "X"), ("clients", "add", "a@x.example")):
        assert bapp(*command).exit_code == 0
    refused = bapp("skills", "complete", "a@x.example", "dom", "--note", "n" * 10_001, "--json")
    assert refused.exit_code == 6, refused.stderr
    assert '"code": "invalid_note", "message": "note: 10,001 characters; at most 10,000"' in refused.stderr
    rows = tmp_path / "progress.json"
    rows.write_text(f'[{{"client": "a@x.example", "skill": "dom", "notes": "{"n" * 10_001}"}}]')
    imported = bapp("import", "progress", str(rows))
    assert imported.exit_code == 6 and "line 1, field notes: 10,001 characters; at most 10,000" in imported.stderr
    # measured as stored: trimmed
    padded = bapp("skills", "complete", "a@x.example", "dom", "--note", f" {'n' * 10_000} ", "--json")
    assert padded.exit_code == 0 and padded.json()["notes"] == "n" * 10_000, padded.stderr
    # and an import measures it as the command does: what the command took, an import takes too, trimmed
    rows.write_text(f'[{{"client": "a@x.example", "skill": "dom", "notes": " {"m" * 10_000} "}}]')
    assert bapp("import", "progress", str(rows)).exit_code == 0
    assert [row["notes"] for row in bapp("export", "progress", "--format", "json").json()] == ["m" * 10_000]


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_an_import_cannot_name_a_pathway_none(bapp: Bapp, tmp_path: Path) -> None:
    # bookings list --pathway none and the reports' "none" row mean bookings without a pathway
    rows = tmp_path / "pathways.json"
    rows.write_text('[{"slug": "none", "name": "Nothing"}]')
    result = bapp("import", "pathways", str(rows))
    assert result.exit_code == 6 and "'none' is not a valid pathway slug" in result.stderr, result.stderr


def test_update_renames_and_reorders(bapp: Bapp) -> None:
    result = bapp("pathways", "update", "Play", "--name", "Play & Create", "--position", "0", "--json")
    assert result.exit_code == 0, result.stderr
    assert (result.json()["name"], result.json()["position"]) == ("Play & Create", 0)
    order = [(row["slug"], row["position"]) for row in bapp("pathways", "list", "--json").json()]
    assert order == [("play", 0), ("accelerate", 1), ("pivot", 2)]
    assert bapp("pathways", "update", "play", "--position", "99", "--json").json()["position"] == 2
    cleared = bapp("pathways", "update", "pivot", "--description", "", "--json").json()
    assert cleared["description"] is None
    assert bapp("pathways", "update", "nowhere", "--name", "X").exit_code == 7
    negative = bapp("pathways", "update", "pivot", "--position", "-1")  # the parser's rule: exit 2 (#24)
    assert negative.exit_code == 2 and "Invalid value for '--position'" in negative.stderr


def test_set_tier_renames_or_adds_the_next_tier(bapp: Bapp) -> None:
    renamed = bapp("pathways", "set-tier", "accelerate", "1", "--name", "Foundations", "--json")
    assert renamed.exit_code == 0, renamed.stderr
    assert renamed.json()["tiers"][0] == {
        "tier": 1,
        "name": "Foundations",
        "description": "Build a solid foundation in AI concepts and tools",
        "skills": [],
    }
    added = bapp("pathways", "set-tier", "play", "4", "--name", "Showcase", "--description", "Show it", "--json")
    assert [tier["name"] for tier in added.json()["tiers"]] == ["Exploration", "Creation", "Innovation", "Showcase"]
    gap = bapp("pathways", "set-tier", "play", "6", "--name", "Too far")
    assert gap.exit_code == 6 and "the next new tier is 5" in gap.stderr
    assert seed(bapp, lambda session: session.scalar(select(func.count()).select_from(PathwayTier))) == 10
    # the new tier takes skill links; a badge for it is named after it
    assert bapp("skills", "add", "demo-day", "--name", "Demo day", "--link", "play:4").exit_code == 0


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_set_tier_past_the_last_allowed_tier_says_so(bapp: Bapp) -> None:
    # with 20 tiers, asking for tier 21 was refused as 'the next new tier is 21': the very tier asked for
    for number in range(4, 21):
        assert bapp("pathways", "set-tier", "play", str(number), "--name", f"T{number}").exit_code == 0
    refused = bapp("pathways", "set-tier", "play", "21", "--name", "T21")
    assert refused.exit_code == 6 and refused.stdout == ""
    assert refused.stderr.startswith("Error: tier: 'play' has tiers 1–20, the most a pathway may have\n")
    # with one tier (and none), not 'has tiers 1–1'
    assert bapp("pathways", "add", "solo", "--name", "Solo", "--tier", "One: the only").exit_code == 0
    assert bapp("pathways", "add", "bare", "--name", "Bare").exit_code == 0
    for slug, held in (
        ("solo", "only tier 1; the next new tier is 2"),
        ("bare", "no tiers yet; the next new tier is 1"),
    ):
        refused = bapp("pathways", "set-tier", slug, "3", "--name", "T3")
        assert refused.exit_code == 6 and refused.stderr.startswith(f"Error: tier: {slug!r} has {held}\n")


def test_archive_needs_yes_and_refuses_new_links_and_enrolments(bapp: Bapp) -> None:
    refused = bapp("pathways", "archive", "pivot")
    assert refused.exit_code == 2 and refused.stdout == ""
    assert "pass --yes" in refused.stderr
    assert bapp("pathways", "show", "pivot", "--json").json()["archived"] is False

    seed(bapp, lambda session: client(session, "ada@example.com", "pivot"))
    archived = bapp("pathways", "archive", "PIVOT", "--yes", "--json")
    assert archived.exit_code == 0 and archived.json()["archived"] is True
    link = bapp("skills", "add", "x", "--name", "X", "--link", "pivot:1")
    assert link.exit_code == 6 and "archived" in link.stderr

    def enrol_grace(session):  # type: ignore[no-untyped-def]
        grace = client(session, "grace@example.com")
        try:
            enrol(session, grace, pathway(session, "pivot"), now=NOW)
        except InvalidInput as error:
            return error.code
        return "enrolled"

    assert seed(bapp, enrol_grace) == "pathway_archived"
    # history stays: the existing enrolment, and the pathway in listings
    assert seed(bapp, lambda session: session.scalar(select(func.count()).select_from(Enrolment))) == 1
    assert [row["archived"] for row in bapp("pathways", "list", "--json").json()] == [False, True, False]
    assert bapp("pathways", "archive", "pivot", "--yes").exit_code == 0  # idempotent


def run_held_at_their_writes(bapp: Bapp, database_url: str, held_on_postgresql: str, *commands: list[str]) -> None:
    """Run `commands` in real processes at once, all past their reads before any writes, and see each succeed:
    the test holds `held_on_postgresql` (a statement taking a lock their writes wait for) until all of them
    wait on it; SQLite's writers wait at BEGIN IMMEDIATE, with a write transaction held instead."""
    from sqlalchemy import text

    from bapp_cli.db.engine import make_engine
    from tests.cli.test_bookings_race import BLOCK_TIMEOUT, barrier_probe
    from tests.cli.test_import import _wait_for

    engine = make_engine(database_url)
    try:
        with contextlib.ExitStack() as held, barrier_probe(database_url, engine) as all_blocked:
            if engine.dialect.name == "sqlite":
                holder = held.enter_context(
                    contextlib.closing(sqlite3.connect(database_url.removeprefix("sqlite:///")))
                )
                holder.isolation_level = None
                holder.execute("BEGIN IMMEDIATE")
                held.callback(holder.execute, "ROLLBACK")
            else:
                connection = held.enter_context(engine.connect())
                connection.execute(text(held_on_postgresql))
                held.callback(connection.rollback)
            processes = [bapp.popen(*command) for command in commands]
            _wait_for(lambda: all_blocked(processes), f"{commands} to wait on the barrier", BLOCK_TIMEOUT)
        for process in processes:
            assert process.wait(timeout=60) == 0, process.communicate()
    finally:
        engine.dispose()


@pytest.mark.slow
def test_two_reorders_at_once_end_as_one_after_the_other(bapp: Bapp, database_url: str) -> None:
    # Two `pathways update --position` in real processes, both past their reads before either writes: on
    # PostgreSQL each renumbered the order it had read, and the one committing second wrote over the first's
    # rows only where its own numbers changed, leaving neither's order (two pathways at position 0 was seen).
    # The barrier: a row both moves write (accelerate, which each pushes down one place)
    held = "SELECT 1 FROM pathways WHERE slug = 'accelerate' FOR UPDATE"
    moves = [["pathways", "update", slug, "--position", "0"] for slug in ("pivot", "play")]
    run_held_at_their_writes(bapp, database_url, held, *moves)
    order = [row["slug"] for row in bapp("pathways", "list", "--json").json()]
    positions = [row["position"] for row in bapp("pathways", "list", "--json").json()]
    # pivot then play, or play then pivot: either way the positions stay 0, 1, 2
    assert order in (["play", "pivot", "accelerate"], ["pivot", "play", "accelerate"]) and positions == [0, 1, 2]


@pytest.mark.slow
def test_an_import_and_an_add_at_once_put_their_pathways_in_different_places(
    bapp: Bapp, database_url: str, tmp_path: Path
) -> None:
    # `import pathways` puts a new pathway after the last one, as `pathways add` does; it did not wait for the
    # order's lock the add takes, so on PostgreSQL both read the same last position and took the next one.
    # The barrier: inserts into pathways, so both have read the last position and then wait at their insert
    rows = tmp_path / "pathways.json"
    rows.write_text('[{"slug": "imported", "name": "Imported"}]')
    added = ["pathways", "add", "added", "--name", "Added"]
    run_held_at_their_writes(
        bapp, database_url, "LOCK TABLE pathways IN SHARE MODE", ["import", "pathways", str(rows)], added
    )
    positions = {row["slug"]: row["position"] for row in bapp("pathways", "list", "--json").json()}
    assert sorted(positions.values()) == [0, 1, 2, 3, 4], positions


def test_two_set_tier_adding_the_same_tier_at_once_take_turns(bapp: Bapp) -> None:
    """Two `pathways set-tier play 4` at once: each read tier 3 as the last and inserted tier 4. On PostgreSQL the
    second waited for the first's tier, then failed on it (exit 8, 'another session wrote the same record meanwhile:
    run again'), where SQLite, whose writers take turns, renames the tier the first added, as a set-tier run after it
    does. The second now locks the pathway's row before it reads its tiers (the first stamped it), so it waits for
    the first and then renames its tier. The test's transaction plays the first; the second is a real process."""
    import datetime as dt

    from bapp_cli.db.engine import make_engine, unit_of_work
    from bapp_cli.services.pathway_admin import set_tier
    from tests.cli.test_progress_cli import until_it_waits

    engine = make_engine(bapp.database_url)
    try:
        with unit_of_work(engine, actor="test", command="set-tier") as admin:
            set_tier(admin, "play", 4, name="Showcase", now=dt.datetime.now(dt.UTC))
            second = bapp.popen("pathways", "set-tier", "play", "4", "--name", "Demo day", "--json")
            until_it_waits(bapp, engine, second)
        stdout, stderr = second.communicate(timeout=60)
    finally:
        engine.dispose()
    assert second.returncode == 0, stderr
    assert [tier["name"] for tier in json.loads(stdout)["tiers"]] == [
        "Exploration",
        "Creation",
        "Innovation",
        "Demo day",
    ]


@pytest.mark.parametrize("fmt", ["json", "toml"])
def test_a_restore_keeps_a_default_pathway_s_cleared_fields(
    bapp: Bapp, tmp_path: Path, second_database_url: str, fmt: str
) -> None:
    # A new database has the default pathways, which a restore updates from the backup. TOML has no null: the row
    # of a pathway whose description and icon were cleared left them out, and the restore kept the defaults'.
    assert bapp("pathways", "update", "accelerate", "--description", "", "--icon", "").exit_code == 0
    backup = tmp_path / f"backup.{fmt}"
    assert bapp("export", "all", "-o", str(backup)).exit_code == 0
    restored = Bapp(second_database_url, tmp_path / "restored")
    assert restored("import", "all", str(backup)).exit_code == 0
    shown = restored("pathways", "show", "accelerate", "--json").json()
    assert (shown["description"], shown["icon"]) == (None, None)
    assert restored("pathways", "list", "--json").json() == bapp("pathways", "list", "--json").json()


def test_a_tier_s_name_holds_no_colon_at_either_door(bapp: Bapp) -> None:
    # `pathways add --tier 'NAME: DESCRIPTION'` ends a tier's name at its first colon (the help and CLI.md), while
    # `pathways set-tier --name 'Basics: first steps'` kept the colon in the name: one text, two tiers. A tier's name
    # holds no colon at either door now; set-tier names the colon and points at --description.
    added = bapp("pathways", "add", "cafe", "--name", "Cafe", "--tier", "Basics: first steps", "--json")
    assert added.exit_code == 0, added.stderr
    assert [(tier["name"], tier["description"]) for tier in added.json()["tiers"]] == [("Basics", "first steps")]
    before = bapp("export", "all", "--format", "json").stdout
    for number in ("1", "2"):  # renaming tier 1, adding tier 2
        refused = bapp("pathways", "set-tier", "cafe", number, "--name", "Basics: first steps")
        assert refused.exit_code == 6 and refused.stdout == "", refused.stderr
        assert refused.stderr.startswith("Error: name: 'Basics: first steps' holds ':', which ends a tier's name")
        assert "--description" in refused.stderr
    assert bapp("export", "all", "--format", "json").stdout == before
    renamed = bapp("pathways", "set-tier", "cafe", "1", "--name", "Basics", "--description", "first steps", "--json")
    assert renamed.exit_code == 0, renamed.stderr
    assert [(tier["name"], tier["description"]) for tier in renamed.json()["tiers"]] == [("Basics", "first steps")]


def test_without_a_backup_s_header_a_missing_key_leaves_the_field_as_it_is(bapp: Bapp, tmp_path: Path) -> None:
    # Only a backup's rows are whole records (TOML leaves a null out). A hand-made TOML file — `import pathways`,
    # `import clients`, or `import all` without the `bapp` header — updates what it gives and keeps the rest.
    assert bapp("pathways", "update", "accelerate", "--description", "Fast", "--icon", "R").exit_code == 0
    assert bapp("clients", "add", "ava@example.com", "--name", "Ava", "--company", "A Co").exit_code == 0
    before = bapp("pathways", "show", "accelerate", "--json").json()
    pathway = '[[pathways]]\nslug = "accelerate"\nname = "Accelerate"\n'
    client = '[[clients]]\nemail = "ava@example.com"\nindustry = "Tech"\n'
    for kind, text in (("pathways", pathway), ("clients", client), ("all", pathway + client)):
        (document := tmp_path / f"{kind}.toml").write_text(text)
        assert bapp("import", kind, str(document)).exit_code == 0
    assert bapp("pathways", "show", "accelerate", "--json").json() == before
    assert (before["description"], before["icon"], before["color"] is not None) == ("Fast", "R", True)
    assert bapp("clients", "show", "ava@example.com", "--json").json()["name"] == "Ava"
    assert bapp("clients", "list", "--json").json()[0]["company"] == "A Co"


def test_a_tier_named_with_a_colon_by_an_import_keeps_its_name_when_set_tier_describes_it(
    bapp: Bapp, tmp_path: Path
) -> None:
    # an import (or an earlier set-tier) may have named a tier with a colon; set-tier needs --name, and refused that
    # name, so the tier's description could not be changed without renaming it. Its own name is kept; another refused.
    rows = [{"slug": "cafe", "name": "Cafe", "tiers": [{"tier": 1, "name": "Basics: first steps"}]}]
    (tmp_path / "pathways.json").write_text(json.dumps(rows))
    assert bapp("import", "pathways", str(tmp_path / "pathways.json")).exit_code == 0
    described = bapp("pathways", "set-tier", "cafe", "1", "--name", "Basics: first steps", "--description", "New")
    assert described.exit_code == 0, described.stderr
    shown = bapp("pathways", "show", "cafe", "--json").json()["tiers"]
    assert [(tier["name"], tier["description"]) for tier in shown] == [("Basics: first steps", "New")]
    renamed = bapp("pathways", "set-tier", "cafe", "1", "--name", "Basics: second steps")
    assert renamed.exit_code == 6 and "holds ':'" in renamed.stderr, renamed.stderr
