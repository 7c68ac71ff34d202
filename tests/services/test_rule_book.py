"""The rule book on its own: each rule as a table of facts and the decision they must give."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from bapp_cli.services.rule_book import (
    NearbyBooking,
    PathwayChoice,
    PathwayFacts,
    ProgressState,
    Refusal,
    SessionFacts,
    choose_pathway,
    find_clash,
    move_progress,
    price_status,
    progress_advances,
    reset_progress,
    restored_status,
    settle_progress,
    span_text,
)

ACCELERATE = PathwayFacts(1, "accelerate", False)
LAUNCH = PathwayFacts(2, "launch", False)
OLD = PathwayFacts(3, "old", True)
OTHER = PathwayFacts(4, "other", False)
REVIEW = SessionFacts(7, "Review", "pathway", "one_on_one", None, Decimal("0"))
CHAT = SessionFacts(8, "Chat", "general", "one_on_one", None, Decimal("50"))
CLASS = SessionFacts(9, "Class", "general", "group", 2, Decimal("0"))

# session, linked, requested, enrolled, holds_slot → strict decision, lenient decision
# (a decision is the chosen slug, or the refusal's code; a lenient warning is marked with "!")
PATHWAY_CASES = [
    (CHAT, [], None, set(), True, None, None),
    (CHAT, [], OTHER, set(), True, "other", "other"),
    (CHAT, [], OLD, set(), True, "pathway_archived", None),
    (CHAT, [], OLD, set(), False, "old", None),
    (REVIEW, [], None, set(), True, "pathway_required", "!"),
    (REVIEW, [], ACCELERATE, set(), True, "pathway_required", "accelerate"),
    (REVIEW, [ACCELERATE], None, set(), True, "pathway_required", "accelerate"),
    (REVIEW, [ACCELERATE], None, {1}, True, "accelerate", "accelerate"),
    (REVIEW, [ACCELERATE, LAUNCH], None, set(), True, "pathway_required", "!"),
    (REVIEW, [ACCELERATE, LAUNCH], None, {2}, True, "launch", "launch"),
    (REVIEW, [ACCELERATE, LAUNCH], None, {1, 2}, True, "pathway_required", "!"),
    (REVIEW, [ACCELERATE, LAUNCH], LAUNCH, set(), True, "launch", "launch"),
    (REVIEW, [ACCELERATE, LAUNCH], OTHER, {1}, True, "pathway_not_linked", "other"),
    (REVIEW, [ACCELERATE, LAUNCH], OLD, {1}, True, "pathway_archived", "accelerate"),
    (REVIEW, [ACCELERATE, LAUNCH], OLD, {1}, False, "old", "accelerate"),
    (REVIEW, [], OLD, set(), False, "old", "!"),
    (REVIEW, [ACCELERATE], OLD, set(), True, "pathway_archived", "accelerate"),
]


def _decision(result: PathwayChoice | Refusal) -> str | None:
    if isinstance(result, Refusal):
        return result.code
    if result.warning is not None:
        assert result.pathway is None
        return "!"
    return result.pathway.slug if result.pathway is not None else None


@pytest.mark.parametrize(
    ("session", "linked", "requested", "enrolled", "holds_slot", "strict", "lenient"), PATHWAY_CASES
)
def test_choose_pathway(
    session: SessionFacts,
    linked: list[PathwayFacts],
    requested: PathwayFacts | None,
    enrolled: set[int],
    holds_slot: bool,
    strict: str | None,
    lenient: str | None,
) -> None:
    assert (
        _decision(choose_pathway(session, linked, requested, enrolled, lenient=False, holds_slot=holds_slot)) == strict
    )
    assert (
        _decision(choose_pathway(session, linked, requested, enrolled, lenient=True, holds_slot=holds_slot)) == lenient
    )


def test_pathway_refusals_say_what_to_do() -> None:
    unlinked = choose_pathway(REVIEW, [], None, set(), lenient=False)
    assert unlinked == Refusal(
        "session",
        "pathway_required",
        "'Review' is a pathway session but is linked to no (active) pathway",
        hint="link one: `bapp sessions update 7 --pathway P`",
    )
    several = choose_pathway(REVIEW, [ACCELERATE, LAUNCH], None, {1, 2}, lenient=False)
    assert isinstance(several, Refusal)
    assert several.text == (
        "pathway: 'Review' needs a pathway and the client is actively enrolled in several of them;"
        " choose one of: accelerate, launch"
    )
    assert several.hint == "pass --pathway P" and not several.conflict
    none = choose_pathway(REVIEW, [ACCELERATE, LAUNCH], None, set(), lenient=False)
    assert isinstance(none, Refusal) and "is not actively enrolled in any of them" in none.message
    wrong = choose_pathway(REVIEW, [ACCELERATE, LAUNCH], OTHER, set(), lenient=False)
    assert isinstance(wrong, Refusal)
    assert wrong.text == "pathway: 'other' is not linked to 'Review'; choose one of: accelerate, launch"
    archived = choose_pathway(CHAT, [], OLD, set(), lenient=False)
    assert isinstance(archived, Refusal) and archived.text == "pathway: 'old' is archived and takes no new bookings"
    warned = choose_pathway(REVIEW, [], None, set(), lenient=True)
    assert warned == PathwayChoice(
        None, "pathway session 'Review' booked without a pathway answer and no linked pathway"
    )
    warned = choose_pathway(REVIEW, [ACCELERATE, LAUNCH], None, set(), lenient=True)
    assert isinstance(warned, PathwayChoice) and warned.warning is not None
    assert warned.warning.endswith("no single linked pathway")


@pytest.mark.parametrize(
    ("price", "paid", "expected"),
    [
        (Decimal("0"), False, ("confirmed", "not_required")),
        (Decimal("0"), True, ("confirmed", "not_required")),
        (Decimal("0.01"), False, ("pending", "unpaid")),
        (Decimal("50"), True, ("confirmed", "paid")),
    ],
)
def test_price_status(price: Decimal, paid: bool, expected: tuple[str, str]) -> None:
    assert price_status(price, paid=paid) == expected


def _at(hour: int, minute: int = 0) -> dt.datetime:
    return dt.datetime(2031, 3, 3, hour, minute, tzinfo=dt.UTC)


def _nearby(reference: str, start: dt.datetime, minutes: int = 60, session_id: int = 8) -> NearbyBooking:
    return NearbyBooking(reference, start, start + dt.timedelta(minutes=minutes), session_id)


# session, builder's bookings, buffer, client's bookings → None, or (code, start of the message)
CLASH_CASES = [
    (CHAT, [], 0, [], None),
    (CHAT, [_nearby("BK-B", _at(11))], 0, [], None),  # back to back is no clash
    (
        CHAT,
        [_nearby("BK-B", _at(11))],
        15,
        [],
        "builder b@x.org already has booking BK-B at 2031-03-03T11:00:00Z–12:00Z",
    ),
    (CHAT, [_nearby("BK-B", _at(9))], 0, [], None),
    (CHAT, [_nearby("BK-B", _at(9, 30))], 0, [], "builder b@x.org already has booking BK-B"),
    (CHAT, [], 0, [_nearby("BK-C", _at(10, 30), 15)], "client c@x.org already has booking BK-C"),
    (CHAT, [], 30, [_nearby("BK-C", _at(11))], None),  # the builder's buffer does not apply to the client
    (CLASS, [_nearby("BK-1", _at(10), session_id=9)], 0, [], None),
    (CLASS, [_nearby("BK-1", _at(10), session_id=9), _nearby("BK-2", _at(10), session_id=9)], 0, [], "group session"),
    (CLASS, [_nearby("BK-1", _at(10, 30), session_id=9)], 0, [], "builder b@x.org already has booking BK-1"),
    (CLASS, [_nearby("BK-1", _at(10), session_id=8)], 0, [], "builder b@x.org already has booking BK-1"),
    (CLASS, [], 0, [_nearby("BK-1", _at(10), session_id=9)], "client c@x.org already has booking BK-1"),
]


NOON = dt.datetime(2031, 5, 1, 12, 0, tzinfo=dt.UTC)


@pytest.mark.parametrize(
    ("end", "amount", "payment_status", "expected"),
    [
        (NOON - dt.timedelta(minutes=1), "0", "not_required", "completed"),
        (NOON, "40", "unpaid", "completed"),  # ended: what it owes does not matter any more
        (NOON - dt.timedelta(days=3), "40", "paid", "completed"),
        (NOON + dt.timedelta(minutes=1), "0", "not_required", "confirmed"),  # still running
        (NOON + dt.timedelta(minutes=1), "40", "unpaid", "pending"),
        (NOON + dt.timedelta(minutes=1), "40", "paid", "confirmed"),
    ],
)
def test_restored_status(end: dt.datetime, amount: str, payment_status: str, expected: str) -> None:
    assert restored_status(end=end, now=NOON, amount=Decimal(amount), payment_status=payment_status) == expected


@pytest.mark.parametrize(
    ("end", "was", "expected"),
    [
        (NOON + dt.timedelta(minutes=1), "confirmed", "confirmed"),  # confirmed unpaid before the mark: kept
        (NOON + dt.timedelta(minutes=1), "completed", "completed"),
        (NOON + dt.timedelta(minutes=1), "pending", "pending"),  # rule 8, as without one
        (NOON + dt.timedelta(minutes=1), "no_show", "pending"),  # no status a mark moves from: rule 8
        (NOON, "confirmed", "completed"),  # ended
    ],
)
def test_restored_status_keeps_the_status_before_the_mark(end: dt.datetime, was: str, expected: str) -> None:
    assert restored_status(end=end, now=NOON, amount=Decimal("40"), payment_status="unpaid", was=was) == expected


@pytest.mark.parametrize(("session", "builder", "buffer", "client", "expected"), CLASH_CASES)
def test_find_clash(
    session: SessionFacts,
    builder: list[NearbyBooking],
    buffer: int,
    client: list[NearbyBooking],
    expected: str | None,
) -> None:
    clash = find_clash(
        session,
        _at(10),
        _at(11),
        builder_email="b@x.org",
        builder_bookings=builder,
        buffer_minutes=buffer,
        client_email="c@x.org",
        client_bookings=client,
    )
    if expected is None:
        assert clash is None
    else:
        assert clash is not None and clash.code == "overlap" and clash.conflict and clash.field == "start"
        assert clash.message.startswith(expected), clash.message


def test_clash_messages_name_both_spans_and_the_buffer() -> None:
    clash = find_clash(
        CHAT,
        _at(10),
        _at(11),
        builder_email="b@x.org",
        builder_bookings=[_nearby("BK-LATE", _at(11, 10)), _nearby("BK-EARLY", _at(9, 0))],
        buffer_minutes=15,
        client_email=None,
        client_bookings=[_nearby("BK-C", _at(10))],
    )
    assert clash is not None
    assert clash.text == (
        "start: builder b@x.org already has booking BK-EARLY at 2031-03-03T09:00:00Z–10:00Z"
        " overlapping 2031-03-03T10:00:00Z–11:00Z (with a 15-minute buffer)"
    )
    assert clash.hint == "pick another time, or pass --allow-overlap to book it anyway"
    full = find_clash(
        CLASS,
        _at(10),
        _at(11),
        builder_email="b@x.org",
        builder_bookings=[_nearby(f"BK-{n}", _at(10), session_id=9) for n in range(2)],
        buffer_minutes=0,
        client_email="c@x.org",
        client_bookings=[],
    )
    assert full is not None
    assert full.message == "group session 'Class' at 2031-03-03T10:00:00Z–11:00Z is full (2 invitees)"
    assert full.hint == "pick another time"
    # without a builder there is no builder to clash with, but a group session's seats are still counted
    unowned = {"builder_email": None, "buffer_minutes": 0, "client_email": None, "client_bookings": []}
    assert find_clash(CHAT, _at(10), _at(11), builder_bookings=[_nearby("BK-B", _at(10))], **unowned) is None
    seats = [_nearby(f"BK-{n}", _at(10), session_id=9) for n in range(2)]
    assert find_clash(CLASS, _at(10), _at(11), builder_bookings=seats[:1], **unowned) is None
    unowned_full = find_clash(CLASS, _at(10), _at(11), builder_bookings=seats, **unowned)
    assert unowned_full is not None and unowned_full.message == full.message


def test_span_text_is_utc() -> None:
    paris = dt.timezone(dt.timedelta(hours=1))
    assert span_text(dt.datetime(2031, 3, 3, 11, tzinfo=paris), dt.datetime(2031, 3, 3, 12, 30, tzinfo=paris)) == (
        "2031-03-03T10:00:00Z–11:30Z"
    )
    # across midnight (in UTC) the end names its day: `–00:30Z` alone read as the start's day, before it began
    late = dt.datetime(2031, 3, 3, 23, 30, tzinfo=dt.UTC)
    assert span_text(late, late + dt.timedelta(hours=1)) == "2031-03-03T23:30:00Z–2031-03-04T00:30:00Z"
    assert span_text(late - dt.timedelta(hours=1), late) == "2031-03-03T22:30:00Z–23:30Z"


NOW = dt.datetime(2031, 1, 1, 12, tzinfo=dt.UTC)
EARLIER = dt.datetime(2030, 6, 1, 9, tzinfo=dt.UTC)


@pytest.mark.parametrize(
    ("current", "wanted", "advances"),
    [
        ("not_started", "in_progress", True),
        ("not_started", "completed", True),
        ("in_progress", "completed", True),
        ("in_progress", "in_progress", False),
        ("completed", "in_progress", False),
        ("completed", "not_started", False),
    ],
)
def test_progress_only_advances(current: str, wanted: str, advances: bool) -> None:
    assert progress_advances(current, wanted) is advances


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        (ProgressState(), ProgressState()),
        (ProgressState("in_progress"), ProgressState("in_progress", started_at=NOW)),
        (
            ProgressState("completed"),
            ProgressState("completed", NOW, NOW, "manual", None, 1, NOW),
        ),
        (
            ProgressState("completed", completed_at=EARLIER, validated_by_id=5),
            ProgressState("completed", EARLIER, EARLIER, "builder_validation", 5, 1, EARLIER),
        ),
        (
            ProgressState("completed", completed_at=EARLIER, completion_method="assessment", attempts=3),
            ProgressState("completed", EARLIER, EARLIER, "assessment", None, 3, EARLIER),
        ),
        (ProgressState("not_started", started_at=EARLIER), ProgressState("not_started", started_at=EARLIER)),
        (
            ProgressState("completed", completion_method="builder_validation"),
            Refusal("validated_by", "missing_validator", "a builder_validation completion needs validated_by"),
        ),
        (
            ProgressState("in_progress", completion_method="manual"),
            Refusal("completed_via", "completion_without_completed", "only a completed skill has this"),
        ),
        (
            ProgressState("not_started", validated_by_id=5),
            Refusal("validated_by", "completion_without_completed", "only a completed skill has this"),
        ),
        (
            ProgressState("in_progress", completed_at=EARLIER),
            Refusal("completed_at", "completion_without_completed", "only a completed skill has this"),
        ),
    ],
)
def test_settle_progress(given: ProgressState, expected: ProgressState | Refusal) -> None:
    assert settle_progress(given, now=NOW) == expected


def test_moves_made_now_count_attempts_and_reset_keeps_them() -> None:
    started = move_progress(ProgressState(), "in_progress", now=EARLIER)
    assert started == ProgressState("in_progress", started_at=EARLIER)
    assert isinstance(started, ProgressState)
    done = move_progress(started, "completed", now=NOW, completion_method="assessment")
    assert done == ProgressState("completed", EARLIER, NOW, "assessment", None, 1, NOW)
    assert isinstance(done, ProgressState)
    again = reset_progress(done)
    assert again == ProgressState("not_started", None, None, None, None, 1, NOW)
    assert move_progress(done, "not_started", now=NOW) == again  # `skills reset` moves by the same rule
    redone = move_progress(again, "completed", now=NOW + dt.timedelta(days=1), completion_method="manual")
    assert isinstance(redone, ProgressState) and redone.attempts == 2
    assert redone.started_at == redone.completed_at == NOW + dt.timedelta(days=1)
