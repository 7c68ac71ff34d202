"""One rule book, three doors: `bookings create`, `import bookings` and a Calendly pull decide alike.

Each case is a set of facts — a session's category, links, kind and price, the client's enrolments, the
pathway asked for, the builder's buffer and bookings nearby, the client's bookings — and the decision the
rules give for them: a refusal (its code), or the pathway and the status chosen. Every case is put through
the three entry points with the same facts (each door books on its own day, so one door's booking never
becomes another's clash), end to end through the CLI, on both backends:

* `bookings create` (interactive, strict) must give the case's strict decision;
* `import bookings` (a CSV) must give the same decision as `bookings create`, with the same message;
* a Calendly pull (a saved listing) applies the documented lenient policy: it never refuses — it takes the
  pathway the client answered, else the one active enrolment among the linked pathways, else the only
  linked one, else none with a warning — and it does not check overlaps, because the booking already
  exists in the calendar (README "Calendly"). Status always follows the price.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.orm import Session

from bapp_cli.db.models import Booking, Enrolment, Pathway, SessionType
from tests.conftest import Bapp
from tests.fakes.calendly_server import API_ORIGIN, make_invitee, make_scheduled_event
from tests.services.test_booking_factories import add_builder, add_client, add_session_type, seed_session

FIRST_DAY = dt.datetime(2031, 6, 2, 10, 0, tzinfo=dt.UTC)
MINUTES = 30
DOORS = ("create", "import", "calendly")
OK = "ok"  # a decision that books: (OK, pathway slug or None, status)


@dataclass(frozen=True)
class Case:
    name: str
    strict: tuple[Any, ...]  # ("refused", code) or (OK, pathway, status)
    lenient: tuple[Any, ...]  # (pathway, status, warned)
    category: str = "pathway"
    linked: tuple[str, ...] = ()
    enrolled: tuple[str, ...] = ()
    requested: str | None = None
    price: str = "0.00"
    kind: str = "solo"
    invitee_limit: int | None = None
    buffer: int = 0
    builder_busy: int | None = None  # minutes after the start at which the builder's other booking starts
    client_busy: int | None = None  # the same for the client's booking with another builder
    same_slot: int = 0  # other clients' bookings of this group session at the same start


def refused(code: str) -> tuple[str, ...]:
    return ("refused", code)


CONFIRMED = "confirmed"
CASES = [
    Case("pathway session linked to none", refused("pathway_required"), (None, CONFIRMED, True)),
    Case(
        "one linked, enrolled in none", refused("pathway_required"), ("agree-a", CONFIRMED, False), linked=("agree-a",)
    ),
    Case(
        "one linked, enrolled in it",
        (OK, "agree-a", CONFIRMED),
        ("agree-a", CONFIRMED, False),
        linked=("agree-a",),
        enrolled=("agree-a",),
    ),
    Case(
        "two linked, enrolled in none",
        refused("pathway_required"),
        (None, CONFIRMED, True),
        linked=("agree-a", "agree-b"),
    ),
    Case(
        "two linked, enrolled in one",
        (OK, "agree-b", CONFIRMED),
        ("agree-b", CONFIRMED, False),
        linked=("agree-a", "agree-b"),
        enrolled=("agree-b",),
    ),
    Case(
        "two linked, enrolled in both",
        refused("pathway_required"),
        (None, CONFIRMED, True),
        linked=("agree-a", "agree-b"),
        enrolled=("agree-a", "agree-b"),
    ),
    Case(
        "requested and linked",
        (OK, "agree-b", CONFIRMED),
        ("agree-b", CONFIRMED, False),
        linked=("agree-a", "agree-b"),
        requested="agree-b",
    ),
    Case(
        "requested but not linked",
        refused("pathway_not_linked"),
        ("agree-b", CONFIRMED, False),  # the client chose it in Calendly
        linked=("agree-a",),
        requested="agree-b",
    ),
    Case(
        "requested but archived",
        refused("pathway_archived"),
        ("agree-a", CONFIRMED, True),  # not taken (warned); the one enrolment decides
        linked=("agree-a", "agree-b"),
        enrolled=("agree-a",),
        requested="agree-old",
    ),
    Case("other session, no pathway", (OK, None, CONFIRMED), (None, CONFIRMED, False), category="specialized"),
    Case(
        "other session, any pathway",
        (OK, "agree-b", CONFIRMED),
        ("agree-b", CONFIRMED, False),
        category="specialized",
        requested="agree-b",
    ),
    Case(
        "other session, archived pathway",
        refused("pathway_archived"),
        (None, CONFIRMED, True),
        category="specialized",
        requested="agree-old",
    ),
    Case("priced", (OK, None, "pending"), (None, "pending", False), category="specialized", price="40.00"),
    Case("builder clash", refused("overlap"), (None, CONFIRMED, False), category="specialized", builder_busy=15),
    Case(
        "builder clash within the buffer",
        refused("overlap"),
        (None, CONFIRMED, False),
        category="specialized",
        buffer=15,
        builder_busy=MINUTES + 10,
    ),
    Case(
        "builder clear of the buffer",
        (OK, None, CONFIRMED),
        (None, CONFIRMED, False),
        category="specialized",
        buffer=15,
        builder_busy=MINUTES + 20,
    ),
    Case("back to back", (OK, None, CONFIRMED), (None, CONFIRMED, False), category="specialized", builder_busy=MINUTES),
    Case("client clash", refused("overlap"), (None, CONFIRMED, False), category="specialized", client_busy=-10),
    Case(
        "group slot not full",
        (OK, None, CONFIRMED),
        (None, CONFIRMED, False),
        category="specialized",
        kind="group",
        invitee_limit=2,
        same_slot=1,
    ),
    Case(
        "group slot full",
        refused("overlap"),
        (None, CONFIRMED, False),
        category="specialized",
        kind="group",
        invitee_limit=2,
        same_slot=2,
    ),
]


def start_of(index: int, door: str) -> dt.datetime:
    """Each case has three days, one per door, far apart enough that no buffer reaches the next."""
    return FIRST_DAY + dt.timedelta(days=3 * index + DOORS.index(door))


def iso(moment: dt.datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def event_type_uri(index: int) -> str:
    return f"{API_ORIGIN}/event_types/AGREE{index:04d}"


@pytest.fixture(name="seed")
def seed_fixture(database_url: str) -> Iterator[Session]:
    yield from seed_session(database_url)


@pytest.fixture(name="world")
def world_fixture(seed: Session) -> Session:
    """Every case's facts, once per door: its own builder, client and session (one case never sees
    another's), and the same nearby bookings on each of the three days."""
    pathways = {
        slug: Pathway(slug=slug, name=f"Agreement {slug[-1].upper()}", position=90 + n, archived=slug == "agree-old")
        for n, slug in enumerate(("agree-a", "agree-b", "agree-old"))
    }
    seed.add_all(pathways.values())
    seed.flush()
    elsewhere = add_builder(seed, "elsewhere@example.com", name="Elsewhere")
    other_client = add_client(seed, "other@example.com", name="Other")
    busy_type = add_session_type(seed, "Busy", builder=elsewhere)
    for index, case in enumerate(CASES):
        coach = add_builder(seed, f"coach{index}@example.com", buffer_minutes=case.buffer)
        client = add_client(seed, f"client{index}@example.com", name=f"Client {index}")
        session_type = add_session_type(
            seed,
            f"Case {index}",
            category=case.category,
            builder=coach,
            pathways=[],
            price=case.price,
            duration=MINUTES,
            kind=case.kind,
            invitee_limit=case.invitee_limit,
            calendly_uri=event_type_uri(index),
        )
        _link(seed, session_type, [pathways[slug] for slug in case.linked])
        for slug in case.enrolled:
            seed.add(
                Enrolment(
                    client_id=client.id, pathway_id=pathways[slug].id, status="active", start_date=FIRST_DAY.date()
                )
            )
        for door in DOORS:
            start = start_of(index, door)
            nearby: list[tuple[int, int, int, dt.datetime]] = []  # client, builder, session, start
            if case.builder_busy is not None:
                nearby.append(
                    (other_client.id, coach.id, busy_type.id, start + dt.timedelta(minutes=case.builder_busy))
                )
            if case.client_busy is not None:
                nearby.append((client.id, elsewhere.id, busy_type.id, start + dt.timedelta(minutes=case.client_busy)))
            for seat in range(case.same_slot):
                guest = add_client(seed, f"guest{index}-{door}-{seat}@example.com", name=None)
                nearby.append((guest.id, coach.id, session_type.id, start))
            for n, (client_id, builder_id, session_id, begins) in enumerate(nearby):
                seed.add(
                    Booking(
                        reference=f"BK-{index:02d}{DOORS.index(door)}{n}AAAA",
                        client_id=client_id,
                        builder_id=builder_id,
                        session_type_id=session_id,
                        start_time=begins,
                        end_time=begins + dt.timedelta(minutes=MINUTES),
                        status="confirmed",
                        payment_status="not_required",
                    )
                )
    seed.commit()
    return seed


def _link(seed: Session, session_type: SessionType, pathways: list[Pathway]) -> None:
    from bapp_cli.db.models import SessionTypePathway

    for pathway in pathways:
        seed.add(SessionTypePathway(session_type_id=session_type.id, pathway_id=pathway.id))
    seed.flush()


# -- what each door decided ---------------------------------------------------------------------------------

SPAN = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ–\d\d:\d\dZ")
REFERENCE = re.compile(r"BK-[0-9A-Z]{8}")
IMPORT_FIELDS = {"start_time": "start"}  # the CSV's column for the option `bookings create` calls --start
IMPORT_SUFFIX = " (pass --allow-overlap to import it anyway)"


def _same_words(field: str, message: str) -> tuple[str, str]:
    """A refusal's field and message with what differs by door taken out: the day and the references."""
    return field, REFERENCE.sub("BK-…", SPAN.sub("…", message))


@dataclass(frozen=True)
class Decision:
    strict: tuple[Any, ...]
    words: tuple[str, str] | None = None  # a refusal's field and message


def created_decisions(bapp: Bapp) -> list[Decision]:
    decisions = []
    for index, case in enumerate(CASES):
        args = ["bookings", "create", "--local-only", "--json", "--client", f"client{index}@example.com"]
        args += ["--session", f"case-{index}", "--start", iso(start_of(index, "create"))]
        if case.requested is not None:
            args += ["--pathway", case.requested]
        result = bapp(*args)
        if result.exit_code == 0:
            record = result.json()
            decisions.append(Decision((OK, record["pathway"], record["status"])))
            continue
        assert result.exit_code in (6, 8), (case.name, result.exit_code, result.stderr)
        error = json.loads(result.stderr.splitlines()[-1])["error"]
        assert result.exit_code == (8 if error["code"] == "overlap" else 6), (case.name, result.stderr)
        field, _, message = error["message"].partition(": ")
        decisions.append(Decision(refused(error["code"]), _same_words(field, message)))
    return decisions


def imported_decisions(bapp: Bapp, world: Session, tmp_path: Path) -> list[Decision]:
    rows = tmp_path / "agreement.csv"
    with rows.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["client", "session", "start_time", "pathway"])
        for index, case in enumerate(CASES):
            writer.writerow(
                [f"client{index}@example.com", f"case-{index}", iso(start_of(index, "import")), case.requested or ""]
            )
    rejects = tmp_path / "rejected.csv"
    result = bapp("import", "bookings", str(rows), "--continue-on-error", "--rejects", str(rejects), "--json")
    assert result.exit_code in (0, 3), result.stderr
    refusals: dict[str, tuple[str, str]] = {}
    if rejects.exists():
        with rejects.open(newline="") as handle:
            for row in csv.DictReader(handle):
                field, _, message = row["error"].partition(": ")
                refusals[row["session"]] = _same_words(
                    IMPORT_FIELDS.get(field, field), message.removesuffix(IMPORT_SUFFIX)
                )
    booked = _booked(world, "import")
    decisions = []
    for index in range(len(CASES)):
        words = refusals.get(f"case-{index}")
        if words is not None:
            decisions.append(Decision(("refused",), words))
        else:
            pathway, status, _ = booked[index]
            decisions.append(Decision((OK, pathway, status)))
    return decisions


def calendly_decisions(bapp: Bapp, world: Session, tmp_path: Path) -> list[tuple[Any, ...]]:
    events = []
    for index, case in enumerate(CASES):
        event = make_scheduled_event(
            9000 + index, event_type_uri(index), start_of(index, "calendly"), duration_minutes=MINUTES
        )
        answers = [{"question": "Which pathway?", "answer": case.requested, "position": 0}] if case.requested else []
        invitee = make_invitee(
            event["uri"], 9000 + index, email=f"client{index}@example.com", questions_and_answers=answers
        )
        events.append({**event, "invitees": [invitee]})
    listing = tmp_path / "scheduled_events.json"
    listing.write_text(json.dumps(events))
    result = bapp("--verbose", "calendly", "pull-bookings", "--from-file", str(listing), "--json")
    assert result.exit_code == 0, result.stderr
    assert result.json()["created"] == len(CASES)  # nothing refused, nothing skipped
    warned = {
        int(match.group(1))
        for match in re.finditer(r"^warning: \S*/scheduled_events/EV0000(\d{4})/invitees/\S*: ", result.stderr, re.M)
    }
    booked = _booked(world, "calendly")
    return [(*booked[index][:2], 9000 + index in warned) for index in range(len(CASES))]


def _booked(world: Session, door: str) -> dict[int, tuple[str | None, str, str]]:
    """The bookings a door created, by case: pathway slug, status, payment status."""
    from sqlalchemy import select

    world.rollback()
    found: dict[int, tuple[str | None, str, str]] = {}
    rows = world.execute(
        select(SessionType.slug, Booking.start_time, Pathway.slug, Booking.status, Booking.payment_status)
        .join(SessionType, SessionType.id == Booking.session_type_id)
        .outerjoin(Pathway, Pathway.id == Booking.pathway_id)
        .where(SessionType.slug.like("case-%"), Booking.client_id.is_not(None))
    )
    for slug, start, pathway, status, payment in rows:
        index = int(str(slug).removeprefix("case-"))
        if start.replace(tzinfo=dt.UTC) == start_of(index, door):
            found[index] = (pathway, status, payment)
    return found


# -- the agreement ---------------------------------------------------------------------------------------


def test_bookings_create_decides_by_the_rule_book(bapp: Bapp, world: Session) -> None:
    decided = [decision.strict for decision in created_decisions(bapp)]
    assert {case.name: got for case, got in zip(CASES, decided, strict=True)} == {
        case.name: case.strict for case in CASES
    }
    payments = {status: payment for _, status, payment in _booked(world, "create").values()}
    assert payments == {"confirmed": "not_required", "pending": "unpaid"}


def _import_disagreements(bapp: Bapp, world: Session, tmp_path: Path, *, words: bool) -> dict[str, Any]:
    """The cases where `import bookings` decided otherwise than `bookings create` (or, with ``words``, gave
    another reason): refused or booked, the field named, the pathway and status chosen."""
    created = created_decisions(bapp)
    imported = imported_decisions(bapp, world, tmp_path)

    def outcome(decision: Decision) -> tuple[Any, ...]:
        if decision.words is None:
            return decision.strict
        return ("refused", *(decision.words if words else decision.words[:1]))

    return {
        case.name: {"create": outcome(mine), "import": outcome(theirs)}
        for case, mine, theirs in zip(CASES, created, imported, strict=True)
        if outcome(mine) != outcome(theirs)
    }


def test_import_decides_as_bookings_create(bapp: Bapp, world: Session, tmp_path: Path) -> None:
    disagreements = _import_disagreements(bapp, world, tmp_path, words=False)
    assert not disagreements, json.dumps(disagreements, indent=1, ensure_ascii=False)
    payments = {status: payment for _, status, payment in _booked(world, "import").values()}
    assert payments == {"confirmed": "not_required", "pending": "unpaid"}


def test_import_gives_the_same_reasons_as_bookings_create(bapp: Bapp, world: Session, tmp_path: Path) -> None:
    disagreements = _import_disagreements(bapp, world, tmp_path, words=True)
    assert not disagreements, json.dumps(disagreements, indent=1, ensure_ascii=False)


def test_calendly_applies_the_lenient_rules(bapp: Bapp, world: Session, tmp_path: Path) -> None:
    decided = calendly_decisions(bapp, world, tmp_path)
    assert {case.name: got for case, got in zip(CASES, decided, strict=True)} == {
        case.name: case.lenient for case in CASES
    }
    payments = {status: payment for _, status, payment in _booked(world, "calendly").values()}
    assert payments == {"confirmed": "not_required", "pending": "unpaid"}
