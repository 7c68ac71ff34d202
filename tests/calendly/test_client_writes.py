"""The write side of CalendlyClient against httpx.MockTransport: which failures are retried, which are
reported as "the outcome is unknown" (never resent), and how Calendly's refusals map to exit codes."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from bapp_cli.calendly.client import CalendlyRefusal, OutcomeUnknown, SlotTaken
from bapp_cli.errors import AuthError, Conflict, InvalidInput, RemoteError
from tests.calendly.test_client import TOKEN, client_for
from tests.fakes.calendly_server import make_invitee

EVENT = "https://api.calendly.com/scheduled_events/EV1"
BODY = {"event_type": "https://api.calendly.com/event_types/ET1", "start_time": "2031-01-01T10:00:00.000000Z"}


def created(request: httpx.Request) -> httpx.Response:
    return httpx.Response(201, json={"resource": make_invitee(EVENT, 1)})


def error(status: int, message: str = "The supplied parameters are invalid.", **extra: Any) -> httpx.Response:
    return httpx.Response(status, json={"title": "Error", "message": message, **extra})


@pytest.mark.parametrize(
    "failure",
    [httpx.ReadTimeout("slow"), httpx.RemoteProtocolError("dropped"), httpx.ReadError("reset")],
    ids=["read-timeout", "dropped", "reset"],
)
def test_a_lost_answer_is_outcome_unknown_and_sent_once(failure: Exception) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise failure

    with client_for(handler) as (client, recorder, _):
        with pytest.raises(OutcomeUnknown) as caught:
            client.create_invitee(BODY)
    assert len(recorder.requests) == 1
    assert "was not resent" in caught.value.message and TOKEN not in caught.value.message
    assert caught.value.exit_code == 9


@pytest.mark.parametrize("status", [500, 502, 503])
def test_a_5xx_on_post_invitees_is_not_retried(status: int) -> None:
    with client_for(lambda request: error(status)) as (client, recorder, _):
        with pytest.raises(OutcomeUnknown):
            client.create_invitee(BODY)
    assert len(recorder.requests) == 1


@pytest.mark.parametrize(
    "answer",
    [
        httpx.Response(201, content=json.dumps({"resource": make_invitee(EVENT, 1)}).encode()[:120]),
        httpx.Response(201, content=b"<html><body>Created</body></html>", headers={"Content-Type": "text/html"}),
        httpx.Response(201, json={"resource": []}),
    ],
    ids=["cut-short", "html", "wrong-shape"],
)
def test_a_201_whose_body_cannot_be_read_is_outcome_unknown_not_a_refusal(answer: httpx.Response) -> None:
    # Calendly answered "created": the booking exists, so an unreadable body is a lost answer to settle by
    # asking — a plain RemoteError would read as a refusal and the caller would forget the booking.
    with client_for(lambda request: answer) as (client, recorder, _):
        with pytest.raises(OutcomeUnknown) as caught:
            client.create_invitee(BODY)
        with pytest.raises(OutcomeUnknown):
            client.create_invitee_no_show(f"{EVENT}/invitees/INV1")
    assert len(recorder.requests) == 2
    assert caught.value.message.startswith("Calendly POST /invitees: HTTP 201 but ")
    assert "GET" not in caught.value.message and TOKEN not in caught.value.message


def test_a_201_past_64_mb_is_outcome_unknown_read_no_further_and_not_resent() -> None:
    # the booking exists whatever its answer holds: refused for its size, it is a lost answer to settle by asking
    chunks_read = []

    def endless(request: httpx.Request) -> httpx.Response:
        def blanks() -> Any:
            for _ in range(100):  # 100 MB, if read whole
                chunks_read.append(1)
                yield b" " * (1 << 20)

        return httpx.Response(201, content=blanks())

    with client_for(endless) as (client, recorder, sleeps):
        with pytest.raises(OutcomeUnknown) as caught:
            client.create_invitee(BODY)
    assert caught.value.message.startswith("Calendly POST /invitees: request failed (DecodingError: an answer past 64")
    assert len(recorder.requests) == 1 and sleeps == [] and len(chunks_read) == 65


def test_a_refused_connection_is_retried_because_nothing_was_sent() -> None:
    calls: list[int] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(1)
        if len(calls) < 3:
            raise httpx.ConnectError("refused")
        return created(request)

    with client_for(handler) as (client, _, sleeps):
        invitee = client.create_invitee(BODY)
    assert invitee.uri.startswith(EVENT) and len(calls) == 3 and len(sleeps) == 2


def test_429_waits_for_the_reset_and_over_the_cap_names_the_limits() -> None:
    limited = httpx.Response(429, headers={"X-RateLimit-Reset": "42"}, json={"title": "Too Many", "message": "slow"})
    with client_for(lambda request: limited, max_retries=2) as (client, recorder, sleeps):
        with pytest.raises(RemoteError) as caught:
            client.create_invitee(BODY)
    assert len(recorder.requests) == 3 and sleeps == [42.0, 42.0]
    assert not isinstance(caught.value, OutcomeUnknown)
    assert "Calendly accepts again in 42 s" in caught.value.message
    assert "10 a minute, 50 an hour and 100 a day" in caught.value.message


@pytest.mark.parametrize(
    "response",
    [
        error(400, details=[{"parameter": "event.start_time", "message": "filled", "code": "already_filled"}]),
        error(409, "conflict"),
    ],
    ids=["400-already_filled", "409"],
)
def test_slot_taken_is_a_conflict(response: httpx.Response) -> None:
    with client_for(lambda request: response) as (client, _, _):
        with pytest.raises(SlotTaken) as caught:
            client.create_invitee(BODY)
    assert caught.value.exit_code == 8


def test_other_refusals_are_definite() -> None:
    plan = "The Scheduling API is only available on paid Calendly plans. Upgrade your plan to access this feature."
    with client_for(lambda request: error(403, plan)) as (client, _, _):
        with pytest.raises(AuthError) as auth:
            client.create_invitee(BODY)
    assert "paid Calendly plans" in auth.value.message and "--local-only" in (auth.value.hint or "")
    scope = error(403, "scopes", required_scopes=["scheduled_events:write"])
    with client_for(lambda request: scope) as (client, _, _):
        with pytest.raises(AuthError, match="lacks a scope"):
            client.create_invitee(BODY)
    bad = error(400, details=[{"parameter": "questions_and_answers[0].question", "message": "is unknown"}])
    with client_for(lambda request: bad) as (client, _, _):
        with pytest.raises(CalendlyRefusal, match=r"questions_and_answers\[0\]\.question: is unknown"):
            client.create_invitee(BODY)


def test_cancel_is_retried_and_already_canceled_counts_as_done() -> None:
    answers = [error(503), error(403, "Event is already canceled")]
    with client_for(lambda request: answers.pop(0)) as (client, recorder, _):
        assert client.cancel_event(EVENT, "moved") is False
    assert [json.loads(r.content) for r in recorder.requests] == [{"reason": "moved"}] * 2
    with client_for(lambda request: error(403, "Event in the past")) as (client, _, _):
        with pytest.raises(Conflict, match="Event in the past"):
            client.cancel_event(EVENT, None)


def test_deleting_a_no_show_that_is_gone_counts_as_done() -> None:
    with client_for(lambda request: error(404, "not found")) as (client, recorder, _):
        client.delete_invitee_no_show("https://api.calendly.com/invitee_no_shows/NS1")
    assert recorder.requests[0].method == "DELETE" and recorder.requests[0].url.path == "/invitee_no_shows/NS1"


def test_available_times_refuses_a_window_over_31_days_before_asking() -> None:
    start = datetime(2031, 1, 1, tzinfo=UTC)
    with client_for(lambda request: httpx.Response(200, json={"collection": []})) as (client, recorder, _):
        with pytest.raises(InvalidInput):
            client.list_available_times("https://api.calendly.com/event_types/ET1", start, start + timedelta(days=32))
        assert (
            client.list_available_times("https://api.calendly.com/event_types/ET1", start, start + timedelta(days=31))
            == []
        )
    assert len(recorder.requests) == 1
