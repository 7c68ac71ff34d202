"""R7: every captured Calendly response parses with bapp's models, and the tolerance rules hold."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel, TypeAdapter, ValidationError

from bapp_cli.calendly.models import (
    CustomQuestion,
    ErrorBody,
    EventType,
    EventTypeLocation,
    Invitee,
    LegacyWebhookPayload,
    ListedEventType,
    OAuthErrorBody,
    Page,
    Pagination,
    Resource,
    ScheduledEvent,
    User,
    WebhookInvitee,
    WebhookPayload,
    describe_validation_error,
)
from tests.fakes.calendly_server import make_event_type

# The corpus lives beside the checkout: /work/shared/reference next to /work/main.
SAMPLES = Path(__file__).resolve().parents[3] / "shared" / "reference" / "calendly-samples"

Check = Callable[[Any], object]


def _event_types_list(page: Page[EventType]) -> None:
    first = page.collection[0]
    assert first.locations[0].phone_number == "380934567654"  # a JSON number upstream
    assert [q.type for q in first.custom_questions] == [
        "string",
        "text",
        "single_select",
        "multi_select",
        "phone_number",
    ]
    assert first.custom_questions[2].answer_choices == ["1", "2-10", "11-20", "20+"]
    assert first.secret is True and first.position == 0
    assert page.pagination.next_token() == "sNjq4TvMDfUHEl7zHRR0k0E1PCEJWvdi"


def _koshilife_page1(page: Page[EventType]) -> None:
    # No next_page_token key at all: the token must come out of next_page's query.
    assert page.pagination.next_page_token is None
    assert page.pagination.next_token() == "NEXT_PAGE_TOKEN"
    assert [t.uri.rsplit("/", 1)[1] for t in page.collection] == ["ET003", "ET002"]
    assert page.collection[0].kind == "group" and page.collection[0].active is False


def _no_profile(resource: Resource[EventType]) -> None:
    event_type = resource.resource
    assert event_type.profile is None and event_type.slug is None and event_type.owner_uri is None
    assert event_type.description_plain is None and event_type.duration_options == []


def _team(resource: Resource[EventType]) -> None:
    assert resource.resource.owner_uri == "https://api.calendly.com/teams/T001"
    assert resource.resource.profile is not None and resource.resource.profile.type == "Team"


def _many_questions(resource: Resource[EventType]) -> None:
    questions = resource.resource.custom_questions
    assert [q.position for q in questions] == [0, 1, 2, 3, 4, 5]
    assert questions[0].enabled is False
    assert questions[4].type == "multi_select" and questions[4].include_other is True


def _zoom_typed_zoom(page: Page[ScheduledEvent]) -> None:
    assert page.collection[1].location is not None and page.collection[1].location.type == "zoom"
    assert page.collection[0].start_time == datetime(2020, 7, 24, 1, 15, tzinfo=UTC)
    assert page.pagination.next_token() == "NEXT_PAGE_TOKEN"


def _rescheduled_invitee(resource: Resource[Invitee]) -> None:
    invitee = resource.resource
    assert invitee.status == "canceled" and invitee.rescheduled is True
    assert invitee.new_invitee == "https://api.calendly.com/scheduled_events/EV301_NEW1/invitees/INV001"
    assert invitee.old_invitee == "https://api.calendly.com/scheduled_events/EV301_OLD1/invitees/INV001"
    assert invitee.questions_and_answers[3].answer == "A1\nOther"  # multi-select, newline-joined
    assert invitee.cancellation is not None and invitee.cancellation.canceler_type == "invitee"
    assert invitee.tracking is not None and invitee.tracking.utm_source == "FOOBAR_SOURCE"


def _webhook(payload: WebhookPayload) -> None:
    assert payload.event == "invitee.created" and payload.is_invitee_event
    assert payload.payload is not None
    assert payload.payload.scheduled_event.uri == "https://api.calendly.com/scheduled_events/GBGBDCAADAEDCRZ2"
    assert payload.payload.scheduled_event.event_memberships[0].user_email == "user@example.com"
    assert payload.created_by == "https://api.calendly.com/users/AAAAAAAAAAAAAAAA"


def _webhook_invitee(invitee: WebhookInvitee) -> None:
    assert invitee.first_name == "John" and invitee.no_show is not None
    assert invitee.payment is not None and invitee.payment.amount == Decimal("1234.56")
    assert invitee.scheduled_event.location is not None
    assert invitee.scheduled_event.location.additional_info == "string"


def _scheduled_event_canceled(resource: Resource[ScheduledEvent]) -> None:
    event = resource.resource
    assert event.status == "canceled" and event.location is None
    assert event.invitees_counter is not None and event.invitees_counter.limit == 5


def _events_retrieve(resource: Resource[ScheduledEvent]) -> None:
    event = resource.resource
    assert event.cancellation is not None
    assert event.cancellation.created_at == datetime(2019, 8, 24, 14, 15, 22, 123456, tzinfo=UTC)
    assert event.event_memberships[0].buffered_start_time == datetime(2019, 8, 24, 14, 10, tzinfo=UTC)


# Every file of the corpus must be listed here: a new sample without an expectation fails the suite.
EXPECTED: dict[str, tuple[Any, Check]] = {
    "calendlyr/event_invitees_list.json": (
        Page[Invitee],
        lambda p: (
            _eq(p.collection[0].payment.provider, "stripe"),
            _eq(p.pagination.next_token(), "sNjq4TvMDfUHEl7zHRR0k0E1PCEJWvdi"),
        ),
    ),
    "calendlyr/event_invitees_list_page2.json": (
        Page[Invitee],
        lambda p: (_eq(p.collection[0].questions_and_answers, []), _eq(p.pagination.has_next, False)),
    ),
    "calendlyr/event_invitees_retrieve.json": (
        Resource[Invitee],
        lambda r: (_eq(r.resource.scheduling_method, "instant_book"), _eq(r.resource.reconfirmation is None, False)),
    ),
    "calendlyr/event_types_list.json": (Page[EventType], _event_types_list),
    "calendlyr/event_types_list_page2.json": (
        Page[EventType],
        lambda p: (_eq(p.collection[0].slug, "30min"), _eq(p.pagination.next_token(), None)),
    ),
    "calendlyr/event_types_retrieve.json": (
        Resource[EventType],
        lambda r: (_eq(r.resource.internal_note, "Internal note"), _eq(len(r.resource.custom_questions), 5)),
    ),
    "calendlyr/events_list.json": (
        Page[ScheduledEvent],
        lambda p: (_eq(p.collection[0].location.location, "Calendly Office"), _eq(p.pagination.has_next, True)),
    ),
    "calendlyr/events_list_page2.json": (
        Page[ScheduledEvent],
        lambda p: (_eq(p.collection[0].end_time, datetime(2019, 8, 25, 14, 45, 22, tzinfo=UTC)),),
    ),
    "calendlyr/events_retrieve.json": (Resource[ScheduledEvent], _events_retrieve),
    "calendlyr/objects_webhooks_invite_payload.json": (WebhookInvitee, _webhook_invitee),
    "calendlyr/objects_webhooks_payload.json": (WebhookPayload, _webhook),
    "calendlyr/webhooks_sample.json": (
        LegacyWebhookPayload,
        lambda w: (_eq(w.payload.event_type.slug, "acmesales"), _eq(w.payload.invitee.email[:12], "not-a-real-p")),
    ),
    "koshilife/error_400_invalid_grant.json": (OAuthErrorBody, lambda e: _eq(e.error, "invalid_grant")),
    "koshilife/error_404_not_found.json": (
        ErrorBody,
        lambda e: _eq(e.summary(), "Resource Not Found: The server could not find the requested resource."),
    ),
    "koshilife/event_type_001_user.json": (
        Resource[EventType],
        lambda r: (_eq(r.resource.owner_uri, "https://api.calendly.com/users/U001"), _eq(r.resource.duration, 15)),
    ),
    "koshilife/event_type_011_many_questions.json": (Resource[EventType], _many_questions),
    "koshilife/event_type_101_team.json": (Resource[EventType], _team),
    "koshilife/event_type_201_no_profile.json": (Resource[EventType], _no_profile),
    "koshilife/event_types_001.json": (
        Page[EventType],
        lambda p: (_eq([t.active for t in p.collection], [True, False, False]), _eq(p.pagination.has_next, False)),
    ),
    "koshilife/event_types_002_page1.json": (Page[EventType], _koshilife_page1),
    "koshilife/event_types_002_page1_user.json": (
        Page[EventType],
        lambda p: (
            _eq(p.pagination.next_token(), "NEXT_PAGE_TOKEN"),
            _eq("user=https" in p.pagination.next_page, True),
        ),
    ),
    "koshilife/event_types_002_page2.json": (
        Page[EventType],
        lambda p: (_eq(p.collection[0].uri, "https://api.calendly.com/event_types/ET001"),),
    ),
    "koshilife/event_types_003.json": (Page[EventType], lambda p: _eq(len(p.collection), 1)),
    "koshilife/scheduled_event_001.json": (Resource[ScheduledEvent], _scheduled_event_canceled),
    "koshilife/scheduled_event_invitee_301.json": (Resource[Invitee], _rescheduled_invitee),
    "koshilife/scheduled_event_invitees_101.json": (
        Page[Invitee],
        lambda p: (_eq(p.collection[0].first_name, "Foo"), _eq(p.collection[0].questions_and_answers[4].position, 4)),
    ),
    "koshilife/scheduled_event_invitees_201_page1.json": (
        Page[Invitee],
        lambda p: (
            _eq(p.collection[1].old_invitee, "https://api.calendly.com/scheduled_events/EV201_OLD1/invitees/INV002"),
            _eq(p.pagination.next_token(), "NEXT_PAGE_TOKEN"),
        ),
    ),
    "koshilife/scheduled_event_invitees_201_page2.json": (
        Page[Invitee],
        lambda p: _eq(p.collection[0].created_at, datetime(2020, 8, 1, 1, 0, tzinfo=UTC)),
    ),
    "koshilife/scheduled_events_001.json": (
        Page[ScheduledEvent],
        lambda p: (
            _eq([e.status for e in p.collection], ["canceled", "active"]),
            _eq(p.collection[1].location.type, "physical"),
        ),
    ),
    "koshilife/scheduled_events_002_page1.json": (Page[ScheduledEvent], _zoom_typed_zoom),
    "koshilife/scheduled_events_002_page2.json": (
        Page[ScheduledEvent],
        lambda p: _eq(p.collection[0].location.data["audioConferencing"]["conferenceId"], "foobar-conferenceId"),
    ),
    "koshilife/user_001.json": (
        Resource[User],
        lambda r: (
            _eq(r.resource.current_organization, "https://api.calendly.com/organizations/ORG001"),
            _eq(r.resource.uri, "https://api.calendly.com/users/U001"),
        ),
    ),
}

# The shapes a file could be mistaken for; each sample must match exactly its own.
CANDIDATES: list[Any] = [
    Page[EventType],
    Page[ScheduledEvent],
    Page[Invitee],
    Resource[EventType],
    Resource[ScheduledEvent],
    Resource[Invitee],
    Resource[User],
    WebhookPayload,
    WebhookInvitee,
    LegacyWebhookPayload,
    ErrorBody,
    OAuthErrorBody,
]


def _eq(actual: Any, expected: Any) -> bool:
    assert actual == expected
    return True


def _sample_files() -> list[str]:
    return sorted(str(path.relative_to(SAMPLES)) for path in SAMPLES.rglob("*.json"))


def test_corpus_is_present_and_fully_covered() -> None:
    files = _sample_files()
    assert len(files) >= 32, f"calendly-samples not found under {SAMPLES}"
    assert set(files) == set(EXPECTED), "every sample needs an expectation, and every expectation a sample"


@pytest.mark.parametrize("name", _sample_files())
def test_every_sample_parses_with_its_model(name: str) -> None:
    model, check = EXPECTED[name]
    body = (SAMPLES / name).read_bytes()
    parsed = model.model_validate_json(body)
    check(parsed)
    matching = []
    for candidate in CANDIDATES:
        try:
            candidate.model_validate_json(body)
        except ValidationError:
            continue
        matching.append(candidate)
    assert matching == [model], f"{name} should match only {model.__name__}"


@pytest.mark.parametrize("name", [n for n in _sample_files() if EXPECTED[n][0] is not ErrorBody])
def test_sample_instants_are_aware_utc(name: str) -> None:
    model, _ = EXPECTED[name]
    parsed = model.model_validate_json((SAMPLES / name).read_bytes())
    instants = list(_datetimes(parsed))
    for moment in instants:
        assert moment.tzinfo is UTC


def _datetimes(value: Any) -> Any:
    if isinstance(value, datetime):
        yield value
    elif isinstance(value, BaseModel):
        for name in type(value).model_fields:
            yield from _datetimes(getattr(value, name))
    elif isinstance(value, list):
        for item in value:
            yield from _datetimes(item)


# --- tolerance rules --------------------------------------------------------------------------


def _event_type(**changes: Any) -> dict[str, Any]:
    return {**make_event_type(1), **changes}


def test_unknown_fields_are_ignored() -> None:
    parsed = EventType.model_validate({**_event_type(), "permissions": {"x": 1}, "brand_new": [1, 2]})
    assert not hasattr(parsed, "brand_new") and parsed.uri.endswith("ET00000001")


@pytest.mark.parametrize("field", ["duration_options", "locations", "custom_questions"])
def test_null_lists_become_empty(field: str) -> None:
    assert getattr(EventType.model_validate(_event_type(**{field: None})), field) == []


def test_answer_choices_null_or_empty_become_empty_list() -> None:
    question = {"name": "Q", "type": "string", "position": 0, "enabled": True, "required": False}
    assert CustomQuestion.model_validate({**question, "answer_choices": None}).answer_choices == []
    assert CustomQuestion.model_validate({**question, "answer_choices": []}).answer_choices == []


@pytest.mark.parametrize(("raw", "expected"), [(380934567654, "380934567654"), ("+44 7700", "+44 7700"), (None, None)])
def test_location_phone_number_number_or_string(raw: Any, expected: str | None) -> None:
    assert EventTypeLocation.model_validate({"kind": "inbound_call", "phone_number": raw}).phone_number == expected


def test_phone_number_refuses_a_boolean() -> None:
    with pytest.raises(ValidationError):
        EventTypeLocation.model_validate({"kind": "inbound_call", "phone_number": True})


def test_kind_description_optional_and_kept() -> None:
    assert EventType.model_validate(_event_type()).kind_description is None
    assert EventType.model_validate(_event_type(kind_description="One-on-One")).kind_description == "One-on-One"


def test_offsets_are_converted_to_utc_and_naive_times_refused() -> None:
    parsed = EventType.model_validate(_event_type(updated_at="2025-03-01T10:00:00+02:00"))
    assert parsed.updated_at == datetime(2025, 3, 1, 8, 0, tzinfo=UTC) and parsed.updated_at.tzinfo is UTC
    with pytest.raises(ValidationError) as info:
        EventType.model_validate(_event_type(updated_at="2025-03-01T10:00:00"))
    assert info.value.errors()[0]["loc"] == ("updated_at",)


@pytest.mark.parametrize(
    ("field", "value"), [("duration", 0), ("duration", "sixty"), ("uri", None), ("active", "maybe")]
)
def test_broken_event_types_are_refused(field: str, value: Any) -> None:
    with pytest.raises(ValidationError) as info:
        EventType.model_validate(_event_type(**{field: value}))
    assert info.value.errors()[0]["loc"] == (field,)


_LISTED = TypeAdapter(ListedEventType)


@pytest.mark.parametrize(
    "changes",
    [
        {"duration": 0},
        {"uri": None},
        {"active": "maybe"},
        {"kind": None},
        {"created_at": None},
        {"updated_at": "2025-03-01T10:00:00"},
        {"deleted_at": "yesterday"},
        {"profile": {"type": "User"}},
        {"locations": [{"location": "no kind"}]},
        {"locations": [{"kind": "inbound_call", "phone_number": True}]},
        {"custom_questions": [{"name": "Q", "type": "string"}]},
        {"custom_questions": [{"name": "Q", "type": "string", "position": 0, "answer_choices": "A"}]},
    ],
)
def test_a_listed_event_type_is_refused_exactly_where_the_model_refuses_it(changes: dict[str, Any]) -> None:
    """The sync's plain-dict listing (ListedEventType) is as strict as EventType, naming the same field."""
    raw = _event_type(**changes)
    with pytest.raises(ValidationError) as by_model:
        EventType.model_validate(raw)
    with pytest.raises(ValidationError) as by_listing:
        _LISTED.validate_python(raw)
    assert [error["loc"] for error in by_listing.value.errors()] == [error["loc"] for error in by_model.value.errors()]


def test_a_listed_event_type_keeps_the_models_conversions() -> None:
    raw = _event_type(
        updated_at="2025-03-01T10:00:00+02:00", locations=[{"kind": "inbound_call", "phone_number": 447700900123}]
    )
    listed = _LISTED.validate_python(raw)
    assert listed["updated_at"] == datetime(2025, 3, 1, 8, 0, tzinfo=UTC) and listed["updated_at"].tzinfo is UTC
    assert listed["locations"] == [{"kind": "inbound_call", "phone_number": "447700900123"}]
    assert "permissions" not in _LISTED.validate_python({**raw, "permissions": {"x": 1}})


def test_unknown_status_is_refused_not_treated_as_active() -> None:
    event = {
        "uri": "u",
        "status": "tentative",
        "start_time": "2025-01-01T10:00:00Z",
        "end_time": "2025-01-01T10:30:00Z",
        "created_at": "2025-01-01T09:00:00Z",
        "updated_at": "2025-01-01T09:00:00Z",
    }
    with pytest.raises(ValidationError):
        ScheduledEvent.model_validate(event)


def test_describe_validation_error_names_item_path() -> None:
    body = {"collection": [_event_type(), _event_type(), _event_type(), _event_type(duration="x")], "pagination": {}}
    with pytest.raises(ValidationError) as info:
        Page[EventType].model_validate(body)
    text = describe_validation_error(info.value.errors(include_input=False))
    assert text.startswith("collection[3].duration: Input should be a valid integer")


def test_describe_validation_error_counts_the_rest() -> None:
    with pytest.raises(ValidationError) as info:
        EventType.model_validate({"uri": "u"})
    text = describe_validation_error(info.value.errors())
    assert text.startswith("active: Field required") and "more)" in text


def test_pagination_token_from_either_field() -> None:
    assert Pagination(next_page_token="abc").next_token() == "abc"
    assert Pagination(next_page="https://x/event_types?count=2&page_token=tok%2B1").next_token() == "tok+1"
    assert Pagination(next_page="https://x/event_types?count=2").next_token() is None
    assert Pagination().has_next is False


def test_webhook_for_other_events_has_no_payload() -> None:
    body = b'{"event":"event_type.updated","created_at":"2025-01-01T00:00:00Z","payload":{"uri":"x"}}'
    parsed = WebhookPayload.model_validate_json(body)
    assert parsed.payload is None and parsed.is_invitee_event is False


def test_invitee_webhook_without_invitee_is_refused() -> None:
    with pytest.raises(ValidationError):
        WebhookPayload.model_validate({"event": "invitee.canceled", "created_at": "2025-01-01T00:00:00Z"})


def test_error_body_summary_lists_details() -> None:
    body = ErrorBody.model_validate(
        {
            "title": "Invalid Argument",
            "message": "The supplied parameters are invalid.",
            "details": [{"parameter": "page_token", "message": "is invalid"}],
        }
    )
    assert body.summary() == "Invalid Argument: The supplied parameters are invalid. (page_token: is invalid)"


@pytest.mark.parametrize("written", ["1E+2", "1e2", "100.0", "1.0E2", "100"])
def test_a_payment_amount_written_in_exponent_form_is_read_as_its_value(written: str) -> None:
    # Calendly's JSON number may be written with an exponent: pydantic reads a JSON number by its value, so the
    # amount is 100 (not Decimal('1E+2'), which services.session_values.read_amount refuses as "not an amount")
    # and the charge is recorded as the booking's, not warned of as one that "cannot be recorded".
    from bapp_cli.calendly.models import Payment
    from bapp_cli.services.session_values import read_amount

    payment = Payment.model_validate_json(f'{{"amount": {written}, "currency": "GBP", "successful": true}}')
    assert read_amount(str(payment.amount)) == Decimal("100.00")
