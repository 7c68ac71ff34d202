"""`bapp skills …` through the real CLI: exit codes, stdout/stderr separation, the database afterwards."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
from collections.abc import Callable
from functools import partial
from pathlib import Path

import pytest
from sqlalchemy import Engine, func, select, text
from sqlalchemy.orm import Session

from bapp_cli.db.engine import make_engine, unit_of_work
from bapp_cli.db.locks import COMPLETION_RULES, lock_id
from bapp_cli.db.models import AuditEntry, Badge, Enrolment, Skill, UserSkillProgress
from bapp_cli.services.pathway_admin import archive_pathway
from bapp_cli.services.skills import archive_skill
from tests.cli.test_progress_cli import seed, until_it_waits
from tests.conftest import Bapp, eventually, with_batches_of
from tests.postgres_server import waits_for_lock
from tests.services.test_progress_factories import builder, client, small_catalogue

SKILL_KEYS = ["slug", "name", "description", "domain", "is_fundamental", "archived", "links"]


def count(bapp: Bapp, model: type) -> int:
    return seed(bapp, lambda session: session.scalar(select(func.count()).select_from(model))) or 0


def test_add_list_update_link_unlink(bapp: Bapp) -> None:
    added = bapp(
        "skills", "add", "Prompt-Design", "--name", "Prompt design", "--domain", "prompting",
        "--link", "Accelerate:1", "--link", "play:2", "--json",
    )  # fmt: skip
    assert added.exit_code == 0, added.stderr
    assert added.stderr == ""
    assert added.json() == {
        "slug": "prompt-design",
        "name": "Prompt design",
        "description": None,
        "domain": "prompting",
        "is_fundamental": False,
        "archived": False,
        "links": ["accelerate:1", "play:2"],
    }
    assert bapp("skills", "add", "safety", "--name", "Safety", "--fundamental").exit_code == 0
    listing = bapp("skills", "list", "--json")
    assert [list(row) for row in listing.json()] == [SKILL_KEYS, SKILL_KEYS]
    assert [row["slug"] for row in bapp("skills", "list", "--fundamental", "--json").json()] == ["safety"]
    assert [row["slug"] for row in bapp("skills", "list", "--pathway", "PLAY", "--tier", "2", "--json").json()] == [
        "prompt-design"
    ]
    updated = bapp("skills", "update", "prompt-design", "--not-fundamental", "--description", "Write prompts", "--json")
    assert updated.json()["description"] == "Write prompts"
    assert bapp("skills", "link", "prompt-design", "pivot:3", "--json").json()["links"] == [
        "accelerate:1",
        "pivot:3",
        "play:2",
    ]
    assert bapp("skills", "unlink", "prompt-design", "Play", "--json").json()["links"] == ["accelerate:1", "pivot:3"]
    table = bapp("skills", "list", "--format", "table")
    assert "prompt-design" in table.stdout and "accelerate:1, pivot:3" in table.stdout and "★" in table.stdout
    audited = seed(
        bapp, lambda session: session.scalars(select(AuditEntry.command).where(AuditEntry.entity == "skill")).all()
    )
    assert "bapp skills link" in list(audited)


def test_bad_input_exits_6_and_writes_nothing(bapp: Bapp) -> None:
    result = bapp("skills", "add", "x", "--name", "X", "--link", "accelerate:9", "--json")
    assert result.exit_code == 6 and result.stdout == ""
    assert "Error: link: pathway 'accelerate' has no tier 9" in result.stderr
    assert json.loads(result.stderr.splitlines()[-1])["error"]["code"] == "unknown_tier"
    assert bapp("skills", "add", "x", "--name", "X", "--link", "nowhere:1").exit_code == 7
    assert bapp("skills", "add", "bad slug!", "--name", "X").exit_code == 6
    assert count(bapp, Skill) == 0
    assert bapp("skills", "add", "x", "--name", "X").exit_code == 0
    duplicate = bapp("skills", "add", "X", "--name", "Again")
    assert duplicate.exit_code == 8 and "already exists" in duplicate.stderr
    assert bapp("skills", "update", "nothing", "--name", "N").exit_code == 7


def test_a_list_filter_naming_a_tier_the_pathway_has_not_refuses_it_as_assign_does(bapp: Bapp) -> None:
    # `skills list --pathway accelerate --tier 5` answered [] (exit 0), where `skills assign --tier 5` and a link
    # refuse that tier and the list refuses an unknown pathway: a typo read as "no skills there"
    assert bapp("skills", "add", "x", "--name", "X", "--link", "accelerate:1").exit_code == 0
    for command in (("skills", "list"), ("skills", "assign", "ada@example.com")):
        if command[1] == "assign":
            assert bapp("clients", "add", "ada@example.com").exit_code == 0
        result = bapp(*command, "--pathway", "Accelerate", "--tier", "5", "--json")
        assert (result.exit_code, result.stdout) == (6, ""), result.stderr
        assert "Error: tier: pathway 'accelerate' has no tier 5" in result.stderr
        assert json.loads(result.stderr.splitlines()[-1])["error"]["code"] == "unknown_tier"
    assert bapp("skills", "list", "--pathway", "nope", "--tier", "1").exit_code == 7  # the pathway first, as before
    assert bapp("skills", "list", "--pathway", "accelerate", "--tier", "2", "--json").json() == []  # a tier, empty


def test_assign_complete_reset_through_the_cli(bapp: Bapp) -> None:
    def build(session: Session) -> None:
        small_catalogue(session)
        client(session, "ada@example.com")
        builder(session, "bob@example.com")

    seed(bapp, build)
    assigned = bapp("skills", "assign", "ada@example.com", "--pathway", "pivot", "--json")
    assert assigned.exit_code == 0, assigned.stderr
    assert assigned.json() == {
        "client": "ada@example.com",
        "pathway": "pivot",
        "tier": None,
        "status": "not_started",
        "assigned": ["shared", "p2", "p3"],
        "updated": [],
        "unchanged": [],
        "badges_awarded": [],
        "pathways_completed": [],
        "enrolled": ["pivot"],
    }
    again = bapp("skills", "assign", "ada@example.com", "--pathway", "pivot", "--json").json()
    assert (again["assigned"], again["unchanged"], again["enrolled"]) == ([], ["shared", "p2", "p3"], [])

    for slug in ("shared", "p2"):
        assert bapp("skills", "complete", "ada@example.com", slug).exit_code == 0
    # a dry run awards nothing, and says what the change would award (it said "Badge awarded", as a real one)
    dry = bapp("-v", "skills", "complete", "ada@example.com", "p3", "--dry-run", "--json")
    assert dry.exit_code == 0 and dry.json()["badges_awarded"] == ["tier:pivot:3", "pathway:pivot"], dry.stderr
    earned = [line for line in dry.stderr.splitlines() if line.startswith(("🏅", "🎉"))]
    assert earned == [
        "🏅 Badge would be awarded: Pivot · Integration",
        "🏅 Badge would be awarded: Pivot complete",
        "🎉 Pathway would be completed: pivot",
    ], dry.stderr
    assert count(bapp, Badge) == 2  # tiers 1 and 2's
    last = bapp("-v", "skills", "complete", "ada@example.com", "p3", "--validated-by", "bob@example.com", "--json")
    record = last.json()
    assert "🏅 Badge awarded: Pivot · Integration\n🏅 Badge awarded: Pivot complete\n" in last.stderr
    assert "🎉 Pathway completed: pivot" in last.stderr
    assert (record["completed_via"], record["validated_by"], record["attempts"]) == (
        "builder_validation",
        "bob@example.com",
        1,
    )
    assert record["badges_awarded"] == ["tier:pivot:3", "pathway:pivot"]
    assert record["pathways_completed"] == ["pivot"]
    assert seed(bapp, lambda session: session.scalars(select(Enrolment.status)).one()) == "completed"

    # the person's messages go to stderr (with --verbose when not on a terminal); data stays on stdout
    verbose = bapp("-v", "skills", "start", "ada@example.com", "a1", "--format", "tsv")
    assert verbose.exit_code == 0
    assert verbose.stdout.splitlines()[0].startswith("client\tskill\tstatus")
    assert "a1 for ada@example.com: new → in_progress" in verbose.stderr

    refused = bapp("skills", "reset", "ada@example.com", "p3")
    assert refused.exit_code == 2 and refused.stdout == ""
    assert "pass --yes" in refused.stderr
    assert seed(
        bapp, lambda session: session.scalar(select(func.count()).where(UserSkillProgress.status == "completed"))
    )
    reset = bapp("skills", "reset", "ada@example.com", "p3", "--yes", "--json")
    assert reset.exit_code == 0 and reset.json()["status"] == "not_started"
    assert count(bapp, Badge) == 4  # badges are permanent
    conflict = bapp("skills", "start", "ada@example.com", "p2")
    assert conflict.exit_code == 8 and "reset it first" in conflict.stderr


def test_a_dry_run_of_a_catalogue_change_says_what_it_would_complete(bapp: Bapp) -> None:
    """Unlinking the one skill left of a tier completes it for a client who did the rest: a dry run says so with
    "would complete" (it said "That change completed criteria", as the real change does), and awards nothing."""
    seed(bapp, lambda session: (small_catalogue(session), client(session, "ada@example.com")))
    assert bapp("clients", "enroll", "ada@example.com", "accelerate").exit_code == 0
    assert bapp("skills", "assign", "ada@example.com", "a1", "a2", "--status", "completed").exit_code == 0
    earned = "criteria for clients: 1 badge(s) awarded, 0 enrolment(s) completed."
    dry = bapp("-v", "skills", "unlink", "a3", "accelerate", "--dry-run")
    assert dry.exit_code == 0 and f"That change would complete {earned}" in dry.stderr.splitlines(), dry.stderr
    assert count(bapp, Badge) == 0
    real = bapp("-v", "skills", "unlink", "a3", "accelerate")
    assert real.exit_code == 0 and f"That change completed {earned}" in real.stderr.splitlines(), real.stderr
    assert count(bapp, Badge) == 1


def test_dry_run_and_archive(bapp: Bapp) -> None:
    seed(bapp, lambda session: (small_catalogue(session), client(session, "ada@example.com")))
    dry = bapp("skills", "assign", "ada@example.com", "a1", "a2", "--status", "completed", "--dry-run", "--json")
    assert dry.exit_code == 0 and dry.json()["assigned"] == ["a1", "a2"]
    assert count(bapp, UserSkillProgress) == 0
    assert bapp("skills", "archive", "a1").exit_code == 2
    archived = bapp("skills", "archive", "a1", "--yes", "--json")
    assert archived.exit_code == 0 and archived.json()["archived"] is True
    refused = bapp("skills", "assign", "ada@example.com", "a1")
    assert refused.exit_code == 6 and "archived" in refused.stderr
    assert count(bapp, UserSkillProgress) == 0


def test_a_progress_row_kept_under_a_pathway_its_skill_left_imports_again(bapp: Bapp, tmp_path: Path) -> None:
    # `skills unlink` keeps clients' progress rows, under the pathway they were assigned under; the progress import
    # refused such a row as not linked, so an export taken after an unlink did not import again. A row keeping its
    # stored pathway passes; one moved under a pathway its skill is not linked to is still refused.
    seed(bapp, lambda session: client(session, "ada@example.com"))
    assert bapp("skills", "add", "p1", "--name", "P1", "--link", "accelerate:1", "--link", "pivot:1").exit_code == 0
    assert bapp("skills", "assign", "ada@example.com", "p1", "--pathway", "accelerate").exit_code == 0
    assert bapp("skills", "unlink", "p1", "accelerate").exit_code == 0
    exported = tmp_path / "progress.json"
    assert bapp("export", "progress", "-o", str(exported)).exit_code == 0
    again = bapp("import", "progress", str(exported), "--json")
    assert again.exit_code == 0 and again.json()["unchanged"] == 1, again.stderr
    exported.write_text(exported.read_text().replace('"accelerate"', '"play"'))
    moved = bapp("import", "progress", str(exported))
    assert moved.exit_code == 6 and "skill 'p1' is not linked to pathway 'play'" in moved.stderr, moved.stderr


def test_help_is_light_and_every_command_has_examples() -> None:
    from bapp_cli.cli import badges, pathways, progress, skills
    from tests.cli.test_foundation import imported_modules

    for group in (skills.app, progress.app, badges.app, pathways.app):
        for command in group.registered_commands:
            doc = command.callback.__doc__ or ""
            summary, _, rest = doc.strip().partition("\n")
            assert summary and summary.endswith("."), command.name
            assert "\b\n    Examples:\n      bapp " in rest, command.name
    modules = imported_modules("skills", "assign", "--help")
    assert "bapp_cli.cli.app" in modules  # the measurement really saw bapp's imports
    assert not {name for name in modules if name.split(".")[0] in {"sqlalchemy", "rich", "httpx"}}
    assert not {name for name in modules if name.startswith(("bapp_cli.services", "bapp_cli.db"))}


def test_a_note_on_an_already_completed_skill_is_saved_said_and_audited(bapp: Bapp) -> None:
    """`skills complete` of a completed skill with --note saved and audited the note but said "already
    completed, nothing changed" with `changed: false`; output, row and audit now agree. A completion made with
    a note audits the note too (the audit named only the move)."""

    def build(session: Session) -> None:
        small_catalogue(session)
        client(session, "ada@example.com")

    seed(bapp, build)
    first = bapp("-v", "skills", "complete", "ada@example.com", "a1", "--note", "first", "--json")
    assert first.exit_code == 0, first.stderr
    assert (first.json()["changed"], first.json()["notes"]) == (True, "first")
    assert "a1 for ada@example.com: new → completed" in first.stderr
    runs = [("--note", "great demo"), ("--note", "great demo"), ()]
    results = [bapp("-v", "skills", "complete", "ada@example.com", "a1", *args, "--json") for args in runs]
    assert [result.exit_code for result in results] == [0, 0, 0]
    assert [(result.json()["changed"], result.json()["notes"]) for result in results] == [
        (True, "great demo"),
        (False, "great demo"),
        (False, "great demo"),
    ]
    assert [result.stderr.splitlines()[0].split(": ", 1)[1] for result in results] == [
        "already completed, note saved.",
        "already completed, nothing changed.",
        "already completed, nothing changed.",
    ]
    assert [result.json()["attempts"] for result in results] == [1, 1, 1]  # a note is no new attempt

    def progress_audit(session: Session) -> list[dict[str, object]]:
        return list(
            session.scalars(
                select(AuditEntry.changes).where(AuditEntry.entity == "skill_progress").order_by(AuditEntry.id)
            )
        )

    assert seed(bapp, progress_audit) == [
        {"status": [None, "completed"], "via": "manual", "validated_by": None, "notes": "first"},
        {"notes": "great demo"},
    ]


def test_a_blank_or_malformed_validated_by_is_refused_naming_the_flag(bapp: Bapp) -> None:
    """`--validated-by ''` was refused as "builder: '' is not a valid e-mail address": the field named was not
    the flag given. It is exit 6 as `--builder ''` and `--via ''` are, naming validated_by; nothing is written."""

    def build(session: Session) -> None:
        small_catalogue(session)
        client(session, "ada@example.com")

    seed(bapp, build)
    for command in (
        ("complete", "ada@example.com", "a1"),
        ("assign", "ada@example.com", "a1", "--status", "completed"),
    ):
        for value in ("", "  ", "not-an-email"):
            refused = bapp("skills", *command, "--validated-by", value)
            assert refused.exit_code == 6, refused.stderr
            assert refused.stderr.startswith(f"Error: validated_by: {value!r} is not a valid e-mail address"), (
                refused.stderr
            )
    assert count(bapp, UserSkillProgress) == 0


def waiting(engine: Engine) -> int:
    """How many sessions of PostgreSQL wait for a lock."""
    with engine.connect() as connection:
        return connection.scalar(text("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'")) or 0


@pytest.mark.parametrize(
    ("second", "expected"),
    [
        (("unlink", "a4", "accelerate"), (7, None)),  # the link is gone: nothing to remove, nothing audited
        (("link", "a4", "accelerate:3"), (0, {"link": "accelerate:3"})),  # a new link, not a move of the gone one
    ],
)
def test_a_link_another_process_removes_meanwhile_is_gone(
    bapp: Bapp, second: tuple[str, ...], expected: tuple[int, dict[str, str] | None]
) -> None:
    """`skills unlink a4 accelerate` has removed the link and waits to commit (here for the completion rules'
    key, which the test holds) when a second command reads the link. On PostgreSQL the second read the link as
    it was, then waited for the row: a move then updated no row (StaleDataError, exit 1) and a second unlink
    deleted none but said "Unlinked", audited it, and printed SQLAlchemy's warning. It now reads the link once
    the first has committed: gone. On SQLite the two writers take turns whole, so the second runs after."""
    seed(bapp, small_catalogue)
    postgres = not bapp.database_url.startswith("sqlite")
    engine = make_engine(bapp.database_url)
    try:
        with engine.connect() as holder:
            if postgres:
                holder.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": lock_id(COMPLETION_RULES)})
            first = bapp.popen("skills", "unlink", "a4", "accelerate", "--json")
            if postgres:  # the link deleted, waiting for the rules
                eventually(lambda: waits_for_lock(engine, "%pg_advisory_xact_lock%"), "the unlink to wait")
            else:
                first.wait(timeout=60)
            later = bapp.popen("skills", *second, "--json")
            if postgres:
                eventually(lambda: waiting(engine) == 2, "the second to wait for the first's rows")
            holder.rollback()
        outputs = [process.communicate(timeout=60) for process in (first, later)]
    finally:
        engine.dispose()
    code, audited = expected
    assert [first.returncode, later.returncode] == [0, code], outputs
    assert outputs[0][1] == ""
    if code:
        assert outputs[1][0] == "" and '"code": "link_not_found"' in outputs[1][1], outputs
    else:
        assert (json.loads(outputs[1][0])["links"], outputs[1][1]) == (["accelerate:3"], "")
    changes = [{"unlinked": "accelerate:2"}, *([audited] if audited else [])]
    commands = select(AuditEntry.changes).where(AuditEntry.entity_key == "a4", AuditEntry.command.like("bapp skills %"))
    assert seed(bapp, lambda session: list(session.scalars(commands.order_by(AuditEntry.id)))) == changes


def while_archiving(
    bapp: Bapp, archive: Callable[..., object], command: tuple[str, ...]
) -> tuple[subprocess.Popen[str], str, str]:
    """Run `command` in another process while `archive` (a pathway's or a skill's) is done in the test's transaction,
    not yet committed, in the small catalogue with Ada (no progress, no enrolment): the process, its stdout, stderr."""

    def build(session: Session) -> None:
        small_catalogue(session)
        client(session, "ada@example.com")

    seed(bapp, build)
    engine = make_engine(bapp.database_url)
    try:
        with unit_of_work(engine, actor="test", command="archive") as admin:
            archive(admin, now=dt.datetime.now(dt.UTC))
            racing = bapp.popen(*command, "--json")
            until_it_waits(bapp, engine, racing)  # for the archive to commit
        stdout, stderr = racing.communicate(timeout=60)
    finally:
        engine.dispose()
    return racing, stdout, stderr


@pytest.mark.parametrize(
    "command",
    [
        ("skills", "link", "a4", "play:1"),
        ("clients", "enroll", "ada@example.com", "play"),
        ("skills", "assign", "ada@example.com", "f2", "--pathway", "play"),  # enrols Ada in play
    ],
)
def test_a_link_or_enrolment_made_while_its_pathway_is_archived_is_refused(
    bapp: Bapp, command: tuple[str, ...]
) -> None:
    """An admin archives play (not yet committed) while another process links a skill to it or enrols Ada in it.
    On PostgreSQL the command read the pathway as it was, active, and the archived pathway took a new skill link or
    enrolment, which README says it never does. It now reads it under a share lock: it waits for the archive, then
    is refused (exit 6, nothing written). On SQLite the writer waits for the archive's whole transaction anyway."""
    racing, stdout, stderr = while_archiving(bapp, partial(archive_pathway, slug="play"), command)
    assert (racing.returncode, stdout) == (6, ""), stderr
    assert '"code": "pathway_archived"' in stderr
    assert [row["slug"] for row in bapp("skills", "list", "--pathway", "play", "--json").json()] == ["f2"]
    assert (count(bapp, Enrolment), count(bapp, UserSkillProgress)) == (0, 0)


@pytest.mark.parametrize(
    ("kind", "rows", "archive", "refusal"),
    [
        ("enrolments", "client,pathway\nada@example.com,play\n", archive_pathway, "pathway: 'play' is archived"),
        ("skills", "slug,name,links\nnew,New,play:1\n", archive_pathway, "links: pathway 'play' is archived"),
        ("progress", "client,skill,status\nada@example.com,f2,in_progress\n", archive_skill, "skill is archived"),
    ],
)
def test_an_import_into_a_pathway_or_skill_being_archived_is_refused(
    bapp: Bapp, kind: str, rows: str, archive: Callable[..., object], refusal: str
) -> None:
    """An admin archives play or f2 (not yet committed) while an import enrols Ada in play, links a new skill to it
    or gives Ada progress in f2. On PostgreSQL the import read the pathways and skills as they were, active, and the
    archived one took the enrolment, link or progress row, which README says it never does. An import now reads
    every pathway and skill under a share lock first (db.locks.lock_for_import): it waits for the archive and refuses
    the row (exit 6, nothing written). On SQLite the import's writer waits for the archive's whole transaction."""
    path = bapp.home / f"{kind}.csv"
    path.write_text(rows)
    slug = "f2" if archive is archive_skill else "play"
    racing, stdout, stderr = while_archiving(bapp, partial(archive, slug=slug), ("import", kind, str(path)))
    assert (racing.returncode, stdout) == (6, ""), stderr
    assert refusal in stderr, stderr
    # no enrolment, no progress row, no new skill (nor its link)
    assert (count(bapp, Enrolment), count(bapp, UserSkillProgress), count(bapp, Skill)) == (0, 0, 9)


SKILL_ADD = ("skills", "add", "new", "--name", "New", "--link", "pivot:1", "--link", "accelerate:1")
SESSION_ADD = ("sessions", "add", "--title", "New", "--duration", "30", "--pathway", "pivot", "--pathway", "accelerate")


@pytest.mark.parametrize(
    ("command", "key", "linked"),
    [(SKILL_ADD, "links", ["accelerate:1", "pivot:1"]), (SESSION_ADD, "pathways", ["accelerate", "pivot"])],
)
def test_a_command_taking_pathways_in_any_order_does_not_deadlock_with_a_renumbering(
    bapp: Bapp, command: tuple[str, ...], key: str, linked: list[str]
) -> None:
    """`pathways update --position` renumbers the display order: it updates the pathways' rows in id order (one flush).
    `skills add … --link pivot:1 --link accelerate:1` and `sessions add … --pathway pivot --pathway accelerate` took
    their share locks in the order given, pivot (the later id) first: on PostgreSQL, with the renumbering holding
    accelerate and waiting for pivot, each waited for the other, and the server ended the command (deadlock detected:
    busy, exit 75). A new link's pathway is now read after every pathway's share lock, taken in id order
    (db.locks.lock_rows), so the command waits for accelerate holding nothing the renumbering wants. The test's
    transaction plays the renumbering; on SQLite the writers take turns whole."""
    seed(bapp, small_catalogue)
    postgres = not bapp.database_url.startswith("sqlite")
    engine = make_engine(bapp.database_url)
    renumber = "UPDATE pathways SET position = position + 10 WHERE slug = :slug"
    try:
        with engine.connect() as renumbering:
            if postgres:  # the command's own check finds any deadlock first, whichever of the two it ends
                renumbering.execute(text("SET deadlock_timeout = '60s'"))
            renumbering.execute(text(renumber), {"slug": "accelerate"})
            adding = bapp.popen(*command, "--json")
            until_it_waits(bapp, engine, adding)
            renumbering.execute(text(renumber), {"slug": "pivot"})
            renumbering.commit()
        stdout, stderr = adding.communicate(timeout=60)
    finally:
        engine.dispose()
    assert adding.returncode == 0, stderr
    assert json.loads(stdout)[key] == linked


@pytest.mark.parametrize(
    "command",
    [
        ("assign", "ada@example.com", "a4"),
        ("assign", "ada@example.com", "--pathway", "accelerate", "--tier", "2"),
        ("complete", "ada@example.com", "a4"),
        ("link", "a4", "pivot:1"),
    ],
)
def test_a_skill_being_archived_takes_no_new_progress_row_or_link(bapp: Bapp, command: tuple[str, ...]) -> None:
    """An admin archives a4 (not yet committed) while another process gives Ada a progress row in it, or links it.
    On PostgreSQL the command read a4 as it was, active, and the archived skill took a new row or link, which
    README says it never does. It now reads the skill under a share lock: it waits for the archive and sees it
    (a4 named: refused, exit 6, nothing written; tier 2's skills: a4 is no longer among them)."""
    racing, stdout, stderr = while_archiving(bapp, partial(archive_skill, slug="a4"), ("skills", *command))
    given = ["shared"] if "--tier" in command else []  # tier 2's skills now: a4 left it
    if given:
        assert (racing.returncode, json.loads(stdout)["assigned"]) == (0, given), stderr
    else:
        assert (racing.returncode, stdout) == (6, ""), stderr
        assert '"code": "skill_archived"' in stderr
    rows = select(Skill.slug).join(UserSkillProgress, UserSkillProgress.skill_id == Skill.id)
    assert seed(bapp, lambda session: list(session.scalars(rows))) == given
    in_pivot = bapp("skills", "list", "--pathway", "pivot", "--json").json()
    assert [row["slug"] for row in in_pivot] == ["p2", "p3", "shared"]


def test_a_skill_argument_that_can_be_no_skill_is_invalid_on_every_verb(bapp: Bapp) -> None:
    """`skills complete E ''` was exit 7 ("no skill ''") where `skills assign E ''` was exit 6 ("not a valid skill
    slug"): an argument that can be no skill's slug is invalid input (exit 6) on every verb taking a skill, an
    unknown slug not found (exit 7); nothing is written. `import progress` (exit 6 either way) says the same."""

    def build(session: Session) -> None:
        small_catalogue(session)
        client(session, "ada@example.com")

    seed(bapp, build)
    verbs = [  # SKILL where the skill goes
        ("assign", "ada@example.com", "SKILL"),
        ("start", "ada@example.com", "SKILL"),
        ("complete", "ada@example.com", "SKILL"),
        ("reset", "ada@example.com", "SKILL", "--yes"),
        ("update", "SKILL", "--name", "N"),
        ("link", "SKILL", "accelerate:1"),
        ("unlink", "SKILL", "accelerate"),
        ("archive", "SKILL", "--yes"),
    ]
    for verb in verbs:
        for value, code in (("", 6), ("  ", 6), ("Bad Slug", 6), ("nothing", 7)):
            refused = bapp("skills", *(value if word == "SKILL" else word for word in verb))
            assert refused.exit_code == code, (verb, value, refused.stderr)
            if code == 6:
                assert refused.stderr.startswith(f"Error: skill: {value!r} is not a valid skill slug"), refused.stderr
    # `import progress` said "no skill 'bad slug'" of them all; each bad row is named by its line and field
    rows = bapp.home / "progress.csv"
    rows.write_text("client,skill\n" + "".join(f"ada@example.com,{value}\n" for value in ("Bad Slug", "  ", "nothing")))
    imported = bapp("import", "progress", str(rows), "--continue-on-error")
    assert imported.exit_code == 6, imported.stderr
    for line, said in ((2, "'Bad Slug' is not a valid skill slug"), (3, "'' is not"), (4, "no skill 'nothing'")):
        assert f"line {line}, field skill: {said}" in imported.stderr, imported.stderr
    assert count(bapp, UserSkillProgress) == 0


def test_a_new_skill_linked_to_pathways_does_not_deadlock_with_an_import_of_the_whole_catalogue(bapp: Bapp) -> None:
    """`import all` holds the skills table, then the pathways table (db.locks.lock_for_import). `skills add new --link
    pivot:1` share-locked the pathways, then inserted its skill: on PostgreSQL, with the import holding skills and
    waiting for the pathways the command held, each waited for the other, and the server ended the import (deadlock
    detected: busy, exit 75). The command now locks the skills table first, as `skills link` takes a skill first: it
    waits for the import holding nothing the import wants. The test's transaction renumbers pivot (the later id) so
    that the command stops in the middle of its share locks; on SQLite the writers take turns whole."""
    seed(bapp, small_catalogue)
    catalogue = bapp.home / "catalogue.toml"
    catalogue.write_text('[[skills]]\nslug = "imported"\nname = "Imported"\nlinks = ["accelerate:1"]\n')
    postgres = not bapp.database_url.startswith("sqlite")
    engine = make_engine(bapp.database_url)
    try:
        with engine.connect() as renumbering:
            renumbering.execute(text("UPDATE pathways SET position = position + 10 WHERE slug = 'pivot'"))
            adding = bapp.popen("skills", "add", "new", "--name", "New", "--link", "pivot:1", "--json")
            until_it_waits(bapp, engine, adding)
            importing = bapp.popen("import", "all", str(catalogue), "--json")
            if postgres:
                eventually(lambda: waiting(engine) == 2, "the import to wait for the command's locks")
            renumbering.commit()
        outputs = [process.communicate(timeout=60) for process in (adding, importing)]
    finally:
        engine.dispose()
    assert [adding.returncode, importing.returncode] == [0, 0], outputs
    assert json.loads(outputs[0][0])["links"] == ["pivot:1"]
    tier_one = bapp("skills", "list", "--pathway", "accelerate", "--tier", "1", "--json").json()
    assert [row["slug"] for row in tier_one] == ["a1", "a2", "a3", "imported"]


BATCH = 100  # rows per batch of the import processes of the races below (conftest.with_batches_of)
HELD_PROGRESS = (
    "SELECT p.id FROM user_skill_progress p JOIN users u ON u.id = p.client_id WHERE u.email = :e FOR UPDATE OF p"
)


def door_during_an_import(
    bapp: Bapp, held: str, importing: tuple[str, ...], door: tuple[str, ...], holder: str = "ada@example.com"
) -> list[str]:
    """`bapp import …` (`importing`) stopped between its batches — a later batch writes the row of `holder` that
    `held` selects, which the test's transaction holds — then `door` run against it, and both let go. Both must
    succeed; their outputs. On PostgreSQL the commands' own checks find any deadlock first (the test's transaction
    waits 60 s before it looks), whichever of the two the server ends; on SQLite the writers take turns whole."""
    postgres = not bapp.database_url.startswith("sqlite")
    engine = make_engine(bapp.database_url)
    try:
        with engine.connect() as holding:
            if postgres:
                holding.execute(text("SET deadlock_timeout = '60s'"))
                holding.execute(text(held), {"e": holder})
            importer = bapp.popen("import", *importing, "--json", python=with_batches_of(BATCH))
            until_it_waits(bapp, engine, importer)  # its first batch written, a later one waits for the held row
            other = bapp.popen(*door, "--json")
            if postgres:
                eventually(lambda: waiting(engine) == 2, f"`{' '.join(door[:2])}` to wait too")
            holding.commit()
        outputs = [process.communicate(timeout=120) for process in (importer, other)]
    finally:
        engine.dispose()
    assert [importer.returncode, other.returncode] == [0, 0], outputs
    return [stdout for stdout, _ in outputs]


@pytest.mark.slow
def test_a_progress_door_waits_for_a_progress_import_instead_of_deadlocking_with_it(bapp: Bapp) -> None:
    """`import progress` writes its rows batch by batch in the file's order; `skills assign --pathway` writes its own
    in tier order. On PostgreSQL the assign, started between the import's two batches, inserted a1 and waited for
    `shared`, which the import's first batch holds; the import's second batch then waited for a1: each waited for the
    other, and the server ended one of the two (deadlock detected: busy, exit 75) — in one run the assign, in another
    the import. A progress door now waits for a progress import before it takes anything
    (db.locks.PROGRESS_TABLE) and then sees its rows. The test's transaction holds Ada's a3, which the import's second
    batch updates, so that the import stops between its batches."""
    seed(bapp, small_catalogue)
    others = [f"c{number}@example.com" for number in range(BATCH // 9 + 1)]
    (people := bapp.home / "clients.csv").write_text("email\nada@example.com\n" + "".join(f"{e}\n" for e in others))
    assert bapp("import", "clients", str(people)).exit_code == 0
    assert bapp("skills", "assign", "ada@example.com", "a3").exit_code == 0  # a row the second batch updates
    skills = ("a1", "a2", "a3", "a4", "shared", "p2", "p3", "f1", "f2")
    first = [f"{email},{slug},not_started\n" for email in others for slug in skills][: BATCH - 1]
    ada = ["ada@example.com,shared,completed\n", "ada@example.com,a3,completed\n", "ada@example.com,a1,completed\n"]
    (rows := bapp.home / "progress.csv").write_text("client,skill,status\n" + "".join(first + ada))
    assign = ("skills", "assign", "ada@example.com", "--pathway", "accelerate", "--status", "completed")
    summary = json.loads(door_during_an_import(bapp, HELD_PROGRESS, ("progress", str(rows)), assign)[0])
    assert sum(summary[outcome] for outcome in ("created", "updated", "unchanged")) == BATCH + 2, summary
    progress = bapp("progress", "show", "ada@example.com", "--pathway", "accelerate", "--json").json()
    assert progress[0]["percent"] == 100, progress


@pytest.mark.slow
def test_an_enrolment_waits_for_an_import_that_opens_enrolments_instead_of_deadlocking_with_it(bapp: Bapp) -> None:
    """`import progress` opens the enrolments its rows' pathways need, batch by batch, and completes those its
    clients had finished under the completion rules' lock (db.locks.COMPLETION_RULES), which it then holds to its
    commit. On PostgreSQL `clients enroll ada accelerate`, started between the import's batches, inserted the
    enrolment and waited for that lock; the import's second batch then opened the same enrolment and waited for the
    enroll's: the server ended one of the two (deadlock detected: busy, exit 75). `clients enroll` now waits for an
    import before it takes anything, as the booking doors do (db.locks.PEOPLE_TABLES). The test's transaction holds
    Ada's a3, which the import's second batch moves under accelerate, so that the import stops between batches."""
    seed(bapp, small_catalogue)
    others = [f"c{number}@example.com" for number in range(BATCH)]
    (people := bapp.home / "clients.csv").write_text("email\nada@example.com\n" + "".join(f"{e}\n" for e in others))
    assert bapp("import", "clients", str(people)).exit_code == 0
    assert bapp("skills", "assign", "ada@example.com", "a3").exit_code == 0  # under no pathway: Ada is enrolled in none
    first = [f"{email},a1,not_started,accelerate\n" for email in others]  # each opens an enrolment
    (rows := bapp.home / "progress.csv").write_text(
        "client,skill,status,pathway\n" + "".join(first) + "ada@example.com,a3,completed,accelerate\n"
    )
    enroll = ("clients", "enroll", "ada@example.com", "accelerate")
    outputs = door_during_an_import(bapp, HELD_PROGRESS, ("progress", str(rows)), enroll)
    assert json.loads(outputs[0])["updated"] == 1
    assert count(bapp, Enrolment) == BATCH + 1  # Ada's once, whichever of the two opened it


@pytest.mark.slow
def test_an_assign_that_enrols_waits_for_an_import_that_opens_enrolments(bapp: Bapp) -> None:
    """The same race through `skills assign --pathway`, which enrols: racing `import enrolments` (which, as
    `import bookings`, does not hold off progress changes), it inserted Ada's enrolment and waited for the
    completion rules' lock the import's first batch had taken; the import's third batch then opened the same
    enrolment and waited for it (deadlock detected, exit 75 on PostgreSQL). An assign under a pathway now waits for
    any import first. The test's transaction holds Dee's enrolment, which the import's second batch pauses."""
    seed(bapp, small_catalogue)
    others = [f"c{number}@example.com" for number in range(BATCH)]
    (people := bapp.home / "clients.csv").write_text("email\nada@example.com\ndee@example.com\n" + "\n".join(others))
    assert bapp("import", "clients", str(people)).exit_code == 0
    assert bapp("clients", "enroll", "dee@example.com", "pivot").exit_code == 0
    first = [f"{email},accelerate,active\n" for email in others]  # each opened under the completion rules' lock
    second = [f"{email},pivot,active\n" for email in others[:-1]] + ["dee@example.com,pivot,paused\n"]
    (rows := bapp.home / "enrolments.csv").write_text(
        "client,pathway,status\n" + "".join(first + second) + "ada@example.com,accelerate,active\n"
    )
    held = "SELECT e.id FROM enrolments e JOIN users u ON u.id = e.client_id WHERE u.email = :e FOR UPDATE OF e"
    assign = ("skills", "assign", "ada@example.com", "--pathway", "accelerate")
    outputs = door_during_an_import(bapp, held, ("enrolments", str(rows)), assign, holder="dee@example.com")
    assert json.loads(outputs[0])["updated"] == 1
    assert count(bapp, Enrolment) == 2 * BATCH + 1  # Ada's once, whichever of the two opened it


def test_assign_reports_the_enrolment_it_made_completed_as_a_pathway_completed(bapp: Bapp) -> None:
    # ada had done every pivot skill unenrolled: `assign --pathway pivot` enrolled her, the enrolment was completed as
    # it was made, and the result said pathways_completed: [] (CLI.md: it reports enrolments newly completed)
    from bapp_cli.services.skills import complete_skill

    def done_unenrolled(session: Session) -> None:
        small_catalogue(session)
        for email, slugs in (("ada@example.com", ("shared", "p2", "p3")), ("cy@example.com", ("shared", "p2"))):
            client(session, email)
            for slug in slugs:
                complete_skill(session, email, slug, now=dt.datetime(2030, 1, 15, tzinfo=dt.UTC))

    seed(bapp, done_unenrolled)
    ada = bapp("skills", "assign", "ada@example.com", "--pathway", "pivot", "--json")
    assert ada.exit_code == 0, ada.stderr
    assert (ada.json()["enrolled"], ada.json()["pathways_completed"]) == (["pivot"], ["pivot"])
    # completed by the assignment's own completion, once enrolled: named once
    cy = bapp("skills", "assign", "cy@example.com", "--pathway", "pivot", "--status", "completed", "--json")
    assert cy.exit_code == 0, cy.stderr
    assert (cy.json()["enrolled"], cy.json()["pathways_completed"]) == (["pivot"], ["pivot"])
