"""Completion tracking (skill progress and badges) at its edges, on SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt
import io

import pytest
from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from bapp_cli.db.models import AuditEntry, Badge, Enrolment, User, UserSkillProgress
from bapp_cli.errors import InvalidInput, NotFound
from bapp_cli.services.enrolment import CompletionOutcome, enrol
from bapp_cli.services.instants import instant_text
from bapp_cli.services.plain_reads import Catalogue, PathwayInfo, list_badges, percent, show_progress
from bapp_cli.services.progress import progress_records
from bapp_cli.services.reports import CLIENT_PROGRESS_COLUMNS
from bapp_cli.services.skills import (
    archive_skill,
    assign_skills,
    complete_skill,
    link_skill,
    reset_skill,
    unlink_skill,
    update_skill,
)
from bapp_cli.services.transfer.formats import Source
from bapp_cli.services.transfer.importer import ImportOptions
from bapp_cli.services.transfer.kinds import import_data
from tests.services.test_progress_factories import (
    LATER,
    NOW,
    client,
    counting_statements,
    pathway,
    skill,
    small_catalogue,
)


def badge_keys(session: Session, user_id: int) -> list[str]:
    return sorted(session.scalars(select(Badge.key).where(Badge.client_id == user_id)))


def enrolment(session: Session, user_id: int, slug: str) -> Enrolment:
    return session.scalars(
        select(Enrolment).where(Enrolment.client_id == user_id, Enrolment.pathway_id == pathway(session, slug).id)
    ).one()


def test_percent_rounds_down() -> None:
    assert [percent(done, 3) for done in range(4)] == [0, 33, 66, 100]
    assert percent(199, 200) == 99
    assert percent(0, 0) == 0


def test_tier_badges_then_an_empty_tier_keeps_the_pathway_open(session: Session) -> None:
    small_catalogue(session)
    ada = client(session, "ada@example.com", "accelerate")
    for slug in ("a1", "a2"):
        assert complete_skill(session, ada.email, slug, now=NOW)[0]["badges_awarded"] == []
    finished_tier, _ = complete_skill(session, ada.email, "a3", now=NOW)
    assert finished_tier["badges_awarded"] == ["tier:accelerate:1"]
    complete_skill(session, ada.email, "a4", now=NOW)
    last, _ = complete_skill(session, ada.email, "shared", now=NOW)
    # tier 2 done and `shared` also finishes nothing in pivot (p2 is missing); tier 3 has no skills
    assert last["badges_awarded"] == ["tier:accelerate:2", "tier:pivot:1"]
    assert last["pathways_completed"] == []
    assert "tier:accelerate:3" not in badge_keys(session, ada.id)
    assert enrolment(session, ada.id, "accelerate").status == "active"

    # the moment tier 3 gets a skill and it is done, tier 3 and the pathway complete, with the enrolment
    skill(session, "a5", "accelerate:3")
    done, _ = complete_skill(session, ada.email, "a5", now=LATER)
    assert done["badges_awarded"] == ["tier:accelerate:3", "pathway:accelerate"]
    assert done["pathways_completed"] == ["accelerate"]
    finished = enrolment(session, ada.id, "accelerate")
    assert finished.status == "completed" and finished.completed_at == LATER


def test_a_skill_in_two_pathways_counts_in_both(session: Session) -> None:
    small_catalogue(session)
    ada = client(session, "ada@example.com", "accelerate", "pivot")
    complete_skill(session, ada.email, "shared", now=NOW)
    views = {view["pathway"]: view for view in show_progress(session, ada.email).pathways}
    assert [(t["tier"], t["completed"], t["total"], t["percent"]) for t in views["accelerate"]["tiers"]] == [
        (1, 0, 3, 0),
        (2, 1, 2, 50),
        (3, 0, 0, 0),
    ]
    assert [(t["tier"], t["completed"], t["total"]) for t in views["pivot"]["tiers"]] == [
        (1, 1, 1),
        (2, 0, 1),
        (3, 0, 1),
    ]
    assert (views["accelerate"]["percent"], views["pivot"]["percent"]) == (20, 33)
    table = {record["pathway"]: record for record in progress_records(session)}
    assert table["accelerate"]["tier2_percent"] == 50 and table["pivot"]["tier1_percent"] == 100
    assert badge_keys(session, ada.id) == ["tier:pivot:1"]


def test_badges_survive_a_reset_and_a_new_skill(session: Session) -> None:
    small_catalogue(session)
    ada = client(session, "ada@example.com", "pivot")
    complete_skill(session, ada.email, "shared", now=NOW)
    assert badge_keys(session, ada.id) == ["tier:pivot:1"]

    reset, _ = reset_skill(session, ada.email, "shared", now=LATER)
    assert (reset["previous_status"], reset["status"], reset["attempts"]) == ("completed", "not_started", 1)
    skill(session, "p1b", "pivot:1")
    assert badge_keys(session, ada.id) == ["tier:pivot:1"]
    [badge] = list_badges(session, ada.email)
    assert (badge["name"], badge["awarded_at"]) == ("Pivot · Assessment", NOW)
    tier1 = show_progress(session, ada.email).pathways[0]["tiers"][0]
    assert (tier1["completed"], tier1["total"], tier1["percent"]) == (0, 2, 0)

    # completing it again counts a second attempt but awards nothing new
    again, _ = complete_skill(session, ada.email, "shared", now=LATER)
    assert again["attempts"] == 2 and again["badges_awarded"] == []
    assert session.scalar(select(func.count()).select_from(Badge).where(Badge.client_id == ada.id)) == 1


def test_completing_twice_awards_once(session: Session) -> None:
    small_catalogue(session)
    ada = client(session, "ada@example.com", "pivot")
    complete_skill(session, ada.email, "p2", now=NOW)
    complete_skill(session, ada.email, "p3", now=NOW)
    first, _ = complete_skill(session, ada.email, "shared", now=NOW)
    assert first["badges_awarded"] == ["tier:pivot:1", "pathway:pivot"]
    assert first["pathways_completed"] == ["pivot"]
    second, _ = complete_skill(session, ada.email, "shared", now=LATER)
    assert (second["changed"], second["attempts"], second["completed_at"]) == (False, 1, NOW)
    assert second["badges_awarded"] == [] and second["pathways_completed"] == []
    assert badge_keys(session, ada.id) == ["pathway:pivot", "tier:pivot:1", "tier:pivot:2", "tier:pivot:3"]
    assert session.scalar(select(func.count()).select_from(Badge)) == 4
    # one audit row per badge, written with the award
    audited = session.scalars(select(AuditEntry.entity_key).where(AuditEntry.entity == "badge")).all()
    assert sorted(audited) == [f"ada@example.com:{key}" for key in badge_keys(session, ada.id)]


def test_assigning_completed_under_a_pathway_enrols_and_completes_it(session: Session) -> None:
    small_catalogue(session)
    ada = client(session)
    result, _ = assign_skills(session, ada.email, now=NOW, pathway="PIVOT", status="completed", via="assessment")
    assert result["assigned"] == ["shared", "p2", "p3"]
    assert result["enrolled"] == ["pivot"]
    assert result["badges_awarded"] == ["tier:pivot:1", "tier:pivot:2", "tier:pivot:3", "pathway:pivot"]
    assert result["pathways_completed"] == ["pivot"]
    assert enrolment(session, ada.id, "pivot").completed_at == NOW
    rows = session.scalars(select(UserSkillProgress).where(UserSkillProgress.client_id == ada.id)).all()
    assert {(row.completion_method, row.attempts, row.pathway_id) for row in rows} == {
        ("assessment", 1, pathway(session, "pivot").id)
    }


def test_enrol_returns_what_the_enrolment_it_made_earned(session: Session) -> None:
    """An enrolment made in a pathway the client has finished is completed as it is made: enrol says so (its
    callers, `skills assign` and a booking, report it), where it computed it and dropped it. Its badges were
    awarded with the last skill: none again. An enrolment found, or one of a client made now, earns nothing."""
    small_catalogue(session)
    ada = client(session)
    for slug in ("shared", "p2", "p3"):
        complete_skill(session, ada.email, slug, now=NOW)
    made, created, changed, earned = enrol(session, ada, pathway(session, "pivot"), now=LATER)
    assert (made.status, created, changed) == ("completed", True, True)
    assert (earned.pathways_completed, earned.badges_awarded) == (["pivot"], [])
    assert enrol(session, ada, pathway(session, "pivot"), now=LATER)[1:] == (False, False, CompletionOutcome())
    accelerate = enrol(session, ada, pathway(session, "accelerate"), now=LATER)
    assert (accelerate[0].status, accelerate[3]) == ("active", CompletionOutcome())
    # new_client: the caller made the client in this transaction, so enrol asks the rules nothing (nor takes their
    # lock); given a history all the same, it would enrol them active, earning nothing
    newcomer = client(session, "grace@example.com")
    for slug in ("shared", "p2", "p3"):
        complete_skill(session, newcomer.email, slug, now=NOW)
    made = enrol(session, newcomer, pathway(session, "pivot"), now=LATER, new_client=True)
    assert (made[0].status, made[3]) == ("active", CompletionOutcome())


def test_assign_names_the_badges_the_enrolment_it_made_awarded(session: Session) -> None:
    """A client who has done every skill of a pathway but holds none of its badges (a backup restored without its
    badges section) is awarded them by the enrolment `skills assign --pathway` makes: the result names them, as it
    names the pathway completed; it dropped them, awarded but unsaid."""
    small_catalogue(session)
    ada = client(session)
    for slug in ("shared", "p2", "p3"):
        complete_skill(session, ada.email, slug, now=NOW)
    session.execute(delete(Badge).where(Badge.client_id == ada.id))
    result, names = assign_skills(session, ada.email, now=LATER, pathway="pivot")
    assert (result["enrolled"], result["pathways_completed"]) == (["pivot"], ["pivot"])
    assert result["badges_awarded"] == ["tier:pivot:1", "tier:pivot:2", "tier:pivot:3", "pathway:pivot"]
    assert set(names) == set(result["badges_awarded"]) and badge_keys(session, ada.id) == sorted(names)


def test_fundamentals_badge_and_group(session: Session) -> None:
    small_catalogue(session)
    ada = client(session, "ada@example.com", "accelerate")
    assert complete_skill(session, ada.email, "f1", now=NOW)[0]["badges_awarded"] == []
    # f2 is also linked to play tier 1, alone there: its tier badge comes with the fundamentals one
    assert complete_skill(session, ada.email, "f2", now=LATER)[0]["badges_awarded"] == [
        "tier:play:1",
        "fundamentals",
    ]
    record = show_progress(session, ada.email).pathways[-1]
    assert record["pathway"] is None and record["name"] == "Fundamentals"
    assert (record["completed"], record["total"], record["percent"], record["status"]) == (2, 2, 100, "completed")
    assert record["completed_at"] == LATER
    assert [item["skill"] for item in record["progress"]["fundamentals"]] == ["f1", "f2"]


def test_catalogue_changes_award_at_the_moment_criteria_are_met(session: Session) -> None:
    small_catalogue(session)
    ada = client(session, "ada@example.com", "accelerate")
    grace = client(session, "grace@example.com", "accelerate")
    for slug in ("a1", "a2"):
        complete_skill(session, ada.email, slug, now=NOW)
    complete_skill(session, ada.email, "f1", now=NOW)
    complete_skill(session, grace.email, "a1", now=NOW)

    archived = archive_skill(session, "a3", now=LATER)  # ada had done everything else in tier 1
    assert (archived.badges_awarded, archived.pathways_completed) == (1, 0)
    assert badge_keys(session, ada.id) == ["tier:accelerate:1"]
    assert badge_keys(session, grace.id) == []

    unflagged = update_skill(session, "f2", now=LATER, fundamental=False)
    assert unflagged.badges_awarded == 1
    assert "fundamentals" in badge_keys(session, ada.id)

    complete_skill(session, grace.email, "a2", now=LATER)
    assert "tier:accelerate:1" in badge_keys(session, grace.id)

    # moving a4 out of tier 2 leaves `shared` alone there; unlinking it from accelerate empties tier 2
    complete_skill(session, grace.email, "shared", now=LATER)
    moved = link_skill(session, "a4", "accelerate:3", now=LATER)
    assert moved.badges_awarded == 1 and "tier:accelerate:2" in badge_keys(session, grace.id)
    unlinked = unlink_skill(session, "shared", "accelerate", now=LATER)
    assert unlinked.badges_awarded == 0


@pytest.mark.parametrize("how", ["link", "import"])
def test_linking_a_completed_skill_to_an_empty_tier_completes_that_tier(session: Session, how: str) -> None:
    """A tier with no skills is never complete; once a skill the client has already completed is linked to it,
    it is, and its badge (and here the pathway's) comes with the link, by `skills link` or a catalogue import."""
    small_catalogue(session)  # accelerate tier 3 is empty
    ada = client(session, "ada@example.com", "accelerate")
    skill(session, "x")
    for slug in ("a1", "a2", "a3", "a4", "shared", "x"):
        complete_skill(session, ada.email, slug, now=NOW)
    assert badge_keys(session, ada.id) == ["tier:accelerate:1", "tier:accelerate:2", "tier:pivot:1"]
    if how == "link":
        linked = link_skill(session, "x", "accelerate:3", now=LATER)
        assert (linked.badges_awarded, linked.pathways_completed) == (2, 1)
    else:
        source = Source("csv", io.BytesIO(b"slug,links\nx,accelerate:3\n"))
        summary = import_data(session, "skills", source, options=ImportOptions(), now=LATER)
        assert summary.total("updated") == 1
    assert {"tier:accelerate:3", "pathway:accelerate"} <= set(badge_keys(session, ada.id))
    enrolment = session.scalars(select(Enrolment).where(Enrolment.client_id == ada.id)).one()
    assert (enrolment.status, enrolment.completed_at) == ("completed", LATER)


def test_flagging_the_first_fundamental_skill_awards_its_badge_to_those_who_completed_it(session: Session) -> None:
    """With no fundamental skills the Fundamentals badge cannot be earned; once a skill the client has already
    completed becomes the only one, it has been, at that moment (as a catalogue import already awarded it)."""
    skill(session, "x")
    ada = client(session, "ada@example.com")
    complete_skill(session, ada.email, "x", now=NOW)
    assert badge_keys(session, ada.id) == []
    flagged = update_skill(session, "x", now=LATER, fundamental=True)
    assert flagged.badges_awarded == 1
    assert badge_keys(session, ada.id) == ["fundamentals"]


def test_a_catalogue_change_awards_every_badge_in_one_insert_with_its_audit_rows(session: Session) -> None:
    """Archiving a skill can finish a tier for many clients at once: the badges go in as one INSERT and
    their audit rows as one more, whatever the number of awards, with record_audit's row shape."""
    small_catalogue(session)
    people = [client(session, f"c{index}@example.com", "accelerate") for index in range(7)]
    for person in people:
        for slug in ("a1", "a2"):
            complete_skill(session, person.email, slug, now=NOW)
    complete_skill(session, people[0].email, "f1", now=NOW)
    session.flush()
    audited_before = session.scalar(select(func.max(AuditEntry.id)))

    with counting_statements() as statements:
        archived = archive_skill(session, "a3", now=LATER)
        unflagged = update_skill(session, "f2", now=LATER, fundamental=False)  # c0 now has every fundamental
    assert (archived.badges_awarded, unflagged.badges_awarded) == (7, 1)
    inserts = [text.split("(")[0].split()[-1] for text in statements if text.lstrip().upper().startswith("INSERT")]
    # one badges INSERT per change; audit: the skill's own row and the badges' rows for each change
    assert inserts.count("badges") == 2 and inserts.count("audit_entries") == 4

    rows = session.execute(
        select(User.email, Badge.key, Badge.awarded_at).join(User, User.id == Badge.client_id).order_by(User.email)
    ).all()
    assert sorted(tuple(row) for row in rows) == [
        ("c0@example.com", "fundamentals", LATER),
        *((f"c{index}@example.com", "tier:accelerate:1", LATER) for index in range(7)),
    ]
    entries = session.scalars(
        select(AuditEntry).where(AuditEntry.id > audited_before, AuditEntry.entity == "badge").order_by(AuditEntry.id)
    ).all()
    assert sorted((entry.entity_key, entry.actor, entry.command) for entry in entries) == sorted(
        [
            ("c0@example.com:fundamentals", "test", "pytest"),
            *((f"c{index}@example.com:tier:accelerate:1", "test", "pytest") for index in range(7)),
        ]
    )
    assert all(entry.changes == {"awarded_at": LATER.isoformat()} and entry.at is not None for entry in entries)


def test_a_badge_already_held_is_not_awarded_again_and_its_client_is_not_looked_up(session: Session) -> None:
    """The audit rows name only the clients written about: clients due a badge they already hold cost no
    e-mail lookup (a catalogue change re-checks every client, most of whom hold their badges)."""
    from bapp_cli.services.progress import record_completions

    small_catalogue(session)
    people = [client(session, f"c{index}@example.com", "accelerate") for index in range(3)]
    for person in people:
        for slug in ("a1", "a2", "a3"):
            complete_skill(session, person.email, slug, now=NOW)
    session.flush()
    scope = [pathway(session, "accelerate").id]
    with counting_statements() as statements:
        assert record_completions(session, now=LATER, pathway_ids=scope, fundamentals=False) == {}
    assert statements and not [text for text in statements if "users.email" in text]
    assert sorted(badge_keys(session, person.id) for person in people) == [["tier:accelerate:1"]] * 3


def test_reset_of_an_unassigned_skill_is_not_found_and_bad_input_names_the_field(session: Session) -> None:
    small_catalogue(session)
    ada = client(session)
    with pytest.raises(NotFound, match="not assigned"):
        reset_skill(session, ada.email, "a1", now=NOW)
    with pytest.raises(InvalidInput, match=r"^via:"):
        complete_skill(session, ada.email, "a1", now=NOW, via="telepathy")
    with pytest.raises(InvalidInput, match=r"^validated_by:"):
        complete_skill(session, ada.email, "a1", now=NOW, via="builder_validation")
    with pytest.raises(InvalidInput, match=r"^status:"):
        list(progress_records(session, status="finished"))
    assert session.scalar(select(func.count()).select_from(UserSkillProgress)) == 0


def test_progress_table_filters_and_counts(session: Session) -> None:
    from tests.services.test_progress_factories import builder

    small_catalogue(session)
    coach = builder(session, "bob@example.com")
    ada = client(session, "ada@example.com")
    grace = client(session, "grace@example.com", "pivot")
    from bapp_cli.services.enrolment import enrol

    enrol(session, ada, pathway(session, "accelerate"), now=NOW, builder=coach)
    for slug in ("a1", "a2"):
        complete_skill(session, ada.email, slug, now=NOW)
    assign_skills(session, ada.email, ["a4"], now=LATER, status="in_progress")
    complete_skill(session, grace.email, "shared", now=NOW)

    rows = list(progress_records(session, columns=CLIENT_PROGRESS_COLUMNS))
    assert [(row["pathway"], row["client"]) for row in rows] == [
        ("accelerate", "ada@example.com"),
        ("pivot", "grace@example.com"),
    ]
    ada_row = next(progress_records(session))
    assert ada_row == {
        "client": "ada@example.com",
        "pathway": "accelerate",
        "status": "active",
        "tier1_percent": 66,
        "tier2_percent": 0,
        "tier3_percent": 0,
        "percent": 40,
        "badges": 0,
        "last_activity": instant_text(LATER),  # written by the database, as every instant bapp prints
    }
    tier_completed = tuple(rows[1][f"tier{number}_completed"] for number in (1, 2, 3))
    assert (rows[0]["last_activity"], rows[1]["badges"], tier_completed) == (instant_text(LATER), 1, (1, 0, 0))
    assert [row["client"] for row in progress_records(session, builder="BOB@example.com")] == ["ada@example.com"]
    assert [row["client"] for row in progress_records(session, pathway="Pivot")] == ["grace@example.com"]
    assert list(progress_records(session, status="completed")) == []
    # an archived skill leaves the counts
    archive_skill(session, "a3", now=LATER)
    assert next(progress_records(session, pathway="accelerate"))["tier1_percent"] == 100
    assert dt.datetime(2030, 1, 18, 9, 30, tzinfo=dt.UTC) == LATER


def test_progress_table_records_of_two_pathways(session: Session) -> None:
    """A skill shared by two pathways counts in both; the percentages the database divides are the counts it
    returns divided as `percent` does."""
    small_catalogue(session)
    ada = client(session, "ada@example.com", "accelerate", "pivot")
    for slug in ("a1", "a2", "a4", "shared", "p3"):
        complete_skill(session, ada.email, slug, now=NOW)
    assign_skills(session, ada.email, ["a3"], now=LATER, status="in_progress")
    rows = [
        (
            *(percent(row[f"tier{n}_completed"], row[f"tier{n}_total"]) for n in (1, 2, 3)),
            percent(row["completed"], row["total"]),
        )
        for row in progress_records(session, columns=CLIENT_PROGRESS_COLUMNS)
    ]
    records = [
        (row["tier1_percent"], row["tier2_percent"], row["tier3_percent"], row["percent"])
        for row in progress_records(session)
    ]
    assert (
        records
        == rows
        == [
            (66, 100, 0, 80),
            (100, 0, 100, 66),
        ]
    )


@pytest.mark.parametrize(
    ("key", "name", "order"),
    [
        ("tier:accelerate:2", "Accelerate · Build", (0, 0, 2, "tier:accelerate:2")),
        ("pathway:accelerate", "Accelerate complete", (0, 1, 0, "pathway:accelerate")),
        # keys `import badges` can store: a non-ASCII digit (int() refuses '²'), no number, an unknown tier or
        # pathway. Each is shown as stored and sorted after the known pathways, never a crash (was exit 1).
        ("tier:accelerate:²", "tier:accelerate:²", (0, 0, 0, "tier:accelerate:²")),
        ("tier:accelerate:", "tier:accelerate:", (0, 0, 0, "tier:accelerate:")),
        ("tier:accelerate:9", "tier:accelerate:9", (0, 0, 9, "tier:accelerate:9")),
        ("tier:x:²", "tier:x:²", (1 << 29, 0, 0, "tier:x:²")),
        ("pathway:gone", "pathway:gone", (1 << 29, 1, 0, "pathway:gone")),
    ],
)
def test_badge_names_and_order_for_stored_keys(key: str, name: str, order: tuple[int, int, int, str]) -> None:
    accelerate = PathwayInfo(1, "accelerate", "Accelerate", None, None, 0, {1: "Start", 2: "Build"}, {})
    catalogue = Catalogue(pathways={1: accelerate}, fundamentals=0)
    assert catalogue.badge_name(key) == name
    assert catalogue.badge_order(key) == order
