"""`bapp calendly webhook apply|sign`: signature checks before anything is parsed, then the same apply as a pull."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import time
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import create_engine, text

from bapp_cli.calendly.webhooks import make_signature_header
from bapp_cli.services.instants import instant_text
from tests.cli.calendly_fixtures import catalogue, error_lines, snapshot
from tests.conftest import REPO, Bapp, restore_backup
from tests.fakes.calendly_server import API_ORIGIN, make_event_type, make_invitee, make_scheduled_event
from tests.services.test_progress_factories import counting_statements

KEY = "whsec-test-signing-key-0123456789"
EXAMPLES = REPO / "examples" / "calendly"
START = dt.datetime(2031, 3, 4, 10, 0, tzinfo=dt.UTC)
BOOKED = dt.datetime(2031, 2, 1, 9, 0, tzinfo=dt.UTC)
RECORD_KEYS = ["event", "dry_run", "action", "invitee_uri", "booking", "booking_status", "note", "warnings"]


def iso(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def delivery(name: str = "invitee.created", *, j: int = 1, cancelled_at: dt.datetime | None = None) -> bytes:
    """A delivery body as Calendly sends it: the invitee with its scheduled event embedded."""
    event = make_scheduled_event(j, f"{API_ORIGIN}/event_types/ET00000001", START + dt.timedelta(days=j))
    invitee = make_invitee(
        event["uri"],
        j,
        created_at=BOOKED,
        questions_and_answers=[{"question": "Company name", "answer": "Acme", "position": 0}],
    )
    if cancelled_at is not None:
        at = iso(cancelled_at)
        cancellation = {"canceled_by": "Client", "reason": "Clash", "canceler_type": "invitee", "created_at": at}
        invitee.update(status="canceled", updated_at=at, cancellation=cancellation)
    envelope = {
        "event": name,
        "created_at": iso(BOOKED),
        "created_by": f"{API_ORIGIN}/users/USER0001",
        "payload": {**invitee, "scheduled_event": event},
    }
    # Calendly's bytes, not ours: indentation and key order must survive as sent
    return json.dumps(envelope, indent=1).encode()


def signed(body: bytes, *, key: str = KEY, age: float = 0) -> str:
    return make_signature_header(body, key, timestamp=int(time.time() - age))


@pytest.fixture
def wbapp(bapp: Bapp) -> Bapp:
    """`bapp` with the signing key and a synced catalogue (from a saved listing: no Calendly needed)."""
    listing = bapp.home / "event_types.json"
    listing.write_text(json.dumps(catalogue(3)))
    assert bapp("calendly", "sync", "--from-file", str(listing)).exit_code == 0
    bapp.env["CALENDLY_WEBHOOK_SIGNING_KEY"] = KEY
    return bapp


def apply(
    app: Bapp, body: bytes, signature: str | None, *args: str, tmp: Path, env: dict[str, str] | None = None
) -> Any:
    path = tmp / f"body-{time.monotonic_ns()}.json"
    path.write_bytes(body)
    options = ["--signature", signature] if signature is not None else []
    return app("calendly", "webhook", "apply", str(path), *options, *args, env=dict(env or {}))


def bookings(app: Bapp) -> list[dict[str, Any]]:
    result = app("bookings", "list", "--json")
    assert result.exit_code == 0, result.stderr
    return list(result.json())


def test_a_signed_delivery_is_applied(wbapp: Bapp, tmp_path: Path) -> None:
    body = delivery()
    result = apply(wbapp, body, signed(body), "--json", tmp=tmp_path)
    assert result.exit_code == 0, result.stderr
    assert result.stderr == ""
    record = result.json()
    assert list(record) == RECORD_KEYS
    assert (record["event"], record["action"], record["booking_status"]) == ("invitee.created", "created", "confirmed")
    [booking] = bookings(wbapp)
    assert (booking["reference"], booking["client"], booking["source"]) == (
        record["booking"],
        "client1@example.com",
        "calendly",
    )
    assert booking["start_time"] == "2031-03-05T10:00:00Z"
    assert booking["pathway"] == "accelerate"  # type 1 is an Accelerate pathway session


def test_a_delivery_of_a_known_type_with_a_token_is_one_transaction(wbapp: Bapp, tmp_path: Path) -> None:
    # with a token, every delivery first looked its event type up in a transaction of its own, which read the
    # schema's head too: two at-head reads (and two transactions) where one does
    body = delivery()
    with counting_statements() as reads:  # no request reaches Calendly for a synced type: the URL is never dialled
        result = apply(wbapp, body, signed(body), "--json", tmp=tmp_path, env={"CALENDLY_API_KEY": "t0ken"})
    assert result.exit_code == 0, result.stderr
    assert result.json()["action"] == "created"
    assert len([statement for statement in reads if "alembic_version" in statement]) == 1


def _tampered(body: bytes) -> tuple[bytes, str]:
    return body.replace(b"client1@example.com", b"mallory@example.com"), signed(body)


MISMATCH = "signature does not match the body"
# case → (body and header from a good delivery, the reason stderr must give)
REFUSALS: dict[str, tuple[Any, str]] = {
    "wrong key": (lambda body: (body, signed(body, key="whsec-someone-else")), MISMATCH),
    "tampered body": (_tampered, MISMATCH),
    "stale timestamp": (lambda body: (body, signed(body, age=181)), "away from now (tolerance 180 s)"),
    "timestamp from the future": (lambda body: (body, signed(body, age=-400)), "away from now (tolerance 180 s)"),
    "malformed header": (
        lambda body: (body, "t=soon,v1=" + signed(body).split("v1=")[1]),
        "Calendly-Webhook-Signature has no valid t= timestamp",
    ),
    "header without v1": (
        lambda body: (body, signed(body).split(",")[0]),
        "Calendly-Webhook-Signature has no valid v1= signature",
    ),
    "repeated timestamp": (lambda body: (body, signed(body) + ",t=1"), "Calendly-Webhook-Signature repeats 't'"),
    "empty header": (lambda body: (body, " "), "missing Calendly-Webhook-Signature header"),
    "missing header": (lambda body: (body, None), "missing Calendly-Webhook-Signature header"),
}


@pytest.mark.parametrize("case", list(REFUSALS))
def test_a_bad_signature_is_exit_4_with_one_reason_and_nothing_applied(wbapp: Bapp, tmp_path: Path, case: str) -> None:
    make, reason = REFUSALS[case]
    body, signature = make(delivery())
    before = snapshot(wbapp.database_url)
    result = apply(wbapp, body, signature, "--json", tmp=tmp_path)
    assert result.exit_code == 4
    assert result.stdout == ""
    [line] = error_lines(result.stderr)
    assert line.startswith("Error: webhook refused: ") and reason in line
    assert json.loads(result.stderr.splitlines()[-1])["error"]["code"] == "auth"
    assert KEY not in result.stderr
    assert snapshot(wbapp.database_url) == before


def test_no_signing_key_configured_is_exit_4(wbapp: Bapp, tmp_path: Path) -> None:
    body = delivery()
    path = tmp_path / "body.json"
    path.write_bytes(body)
    refused = wbapp(
        "calendly",
        "webhook",
        "apply",
        str(path),
        "--signature",
        signed(body),
        env={"CALENDLY_WEBHOOK_SIGNING_KEY": None},
    )
    assert refused.exit_code == 4
    assert error_lines(refused.stderr) == ["Error: no Calendly webhook signing key configured"]
    assert bookings(wbapp) == []


@pytest.mark.parametrize("digits", [400, 5000])
def test_a_signed_timestamp_of_absurd_length_is_exit_4_not_a_crash(wbapp: Bapp, tmp_path: Path, digits: int) -> None:
    # signed with the right key, so only the timestamp's size is wrong: 400 digits overflowed a float and
    # 5,000 went past Python's int-parsing limit, both exit 1
    body, timestamp = delivery(), "9" * digits
    digest = hmac.new(KEY.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    result = apply(wbapp, body, f"t={timestamp},v1={digest}", tmp=tmp_path)
    assert result.exit_code == 4, result.stderr
    [line] = error_lines(result.stderr)
    assert "Calendly-Webhook-Signature has no valid t= timestamp" in line
    assert bookings(wbapp) == []


@pytest.mark.parametrize("body", [b"[" * 100_000 + b"]" * 100_000, b'{"a":' * 100_000 + b"1" + b"}" * 100_000])
def test_a_signed_body_nested_too_deeply_is_exit_6_not_a_crash(wbapp: Bapp, tmp_path: Path, body: bytes) -> None:
    # json.loads raised RecursionError, which is no ValueError: exit 1 here, 500 in the receiver
    result = apply(wbapp, body, signed(body), tmp=tmp_path)
    assert result.exit_code == 6, result.stderr
    assert error_lines(result.stderr) == ["Error: webhook body is not valid JSON (arrays or objects nested too deeply)"]
    assert bookings(wbapp) == []


def test_a_signed_body_with_an_unpaired_surrogate_escape_is_applied_without_it(wbapp: Bapp, tmp_path: Path) -> None:
    # the invitee's name "Cli\ud800ent" reached the database and crashed the insert: exit 1, 500 when served
    body = delivery().replace(b"Client 1", b"Cli\\ud800ent")
    result = apply(wbapp, body, signed(body), tmp=tmp_path)
    assert result.exit_code == 0, result.stderr
    assert result.stderr.startswith("Warning: removed control characters from the text Calendly sent")
    assert [booking["client_name"] for booking in bookings(wbapp)] == ["Client"]


@pytest.mark.parametrize("start", ["9999-12-31T23:30:00Z", "0001-01-01T00:00:00Z"])
def test_an_event_outside_the_supported_years_is_parked_not_stored(wbapp: Bapp, tmp_path: Path, start: str) -> None:
    # stored as sent, such a booking then crashed every table that showed it in a zone past the edge
    # (`--timezone Pacific/Kiritimati bookings list`: exit 1 OverflowError)
    document = json.loads(delivery())
    document["payload"]["scheduled_event"]["start_time"] = start
    document["payload"]["scheduled_event"]["end_time"] = start[:14] + "59:00Z"
    body = json.dumps(document).encode()
    result = apply(wbapp, body, signed(body), tmp=tmp_path)
    assert result.exit_code == 3, result.stderr
    # in the words of every other out-of-range refusal (services.instants.out_of_range)
    assert f"time '{start}' is outside the supported range 1900-01-01 to 2999-12-31" in result.stderr
    assert bookings(wbapp) == []
    shown = wbapp("--timezone", "Pacific/Kiritimati", "bookings", "list", "--format", "table")
    assert shown.exit_code == 0, shown.stderr


@pytest.mark.parametrize(("hours", "stored"), [(24, True), (30, False)])
def test_an_event_longer_than_a_day_is_parked_not_stored(wbapp: Bapp, tmp_path: Path, hours: int, stored: bool) -> None:
    # only end > start was checked: a 30-hour booking was stored, the overlap check of `bookings create` (which
    # reaches back a day, the longest a booking may be) missed its tail and booked the same client again inside it,
    # and the backup `export all` wrote did not restore (`import all`: "a booking lasts at most 1440 minutes")
    document = json.loads(delivery())
    event = document["payload"]["scheduled_event"]
    start = dt.datetime.fromisoformat(event["start_time"])
    event["end_time"] = iso(start + dt.timedelta(hours=hours))
    body = json.dumps(document).encode()
    result = apply(wbapp, body, signed(body), tmp=tmp_path)
    assert result.exit_code == (0 if stored else 3), result.stderr
    assert ("event lasts more than a day, the longest a booking may" in result.stderr) is not stored
    assert [booking["end_time"] for booking in bookings(wbapp)] == ([event["end_time"][:19] + "Z"] if stored else [])
    answers = ["--answer", "Company name=Acme", "--answer", "What would you like to achieve?=More"]
    tail = instant_text(start + dt.timedelta(hours=hours - 1))
    again = wbapp("bookings", "create", "--client", "client1@example.com", "--session", "1", "--start", tail, *answers)
    assert again.exit_code == (8 if stored else 0), again.stderr


def test_a_booking_stored_longer_than_a_day_before_is_still_updated_and_cancelled_by_calendly(
    wbapp: Bapp, tmp_path: Path
) -> None:
    # such a booking, stored before bapp parked these events, would take no cancellation Calendly sent for it: the
    # same check parked it, and the booking stayed active in bapp while Calendly had cancelled it. Nor any other
    # change (an answer, a payment, a no-show): parked for good, each pull after exiting 3. It keeps its length.
    from sqlalchemy import select
    from sqlalchemy.orm import Session

    from bapp_cli.db.engine import make_engine
    from bapp_cli.db.models import Booking

    created = delivery()
    assert apply(wbapp, created, signed(created), tmp=tmp_path).exit_code == 0
    engine = make_engine(wbapp.database_url)
    try:
        with Session(engine) as session, session.begin():
            stored = session.scalars(select(Booking)).one()
            stored.end_time = stored.start_time + dt.timedelta(hours=30)
            event_end = iso(stored.end_time)
    finally:
        engine.dispose()
    document = json.loads(delivery())
    document["payload"]["scheduled_event"]["end_time"] = event_end
    document["payload"]["updated_at"] = iso(BOOKED + dt.timedelta(hours=12))
    document["payload"]["questions_and_answers"][0]["answer"] = "Acme Ltd"
    body = json.dumps(document).encode()
    result = apply(wbapp, body, signed(body), "--json", tmp=tmp_path)
    assert result.exit_code == 0, result.stderr
    assert (result.json()["action"], result.json()["booking_status"]) == ("updated", "confirmed")
    [booking] = bookings(wbapp)
    assert booking["end_time"] == event_end[:19] + "Z"
    document = json.loads(delivery("invitee.canceled", cancelled_at=BOOKED + dt.timedelta(days=1)))
    document["payload"]["scheduled_event"]["end_time"] = event_end
    body = json.dumps(document).encode()
    result = apply(wbapp, body, signed(body), "--json", tmp=tmp_path)
    assert result.exit_code == 0, result.stderr
    assert (result.json()["action"], result.json()["booking_status"]) == ("cancelled", "cancelled")


@pytest.mark.parametrize(
    ("name", "path", "moment"),
    [
        ("invitee.created", "payload.updated_at", "3000-01-01T00:00:00Z"),  # the booking's remote_updated_at
        (
            "invitee.created",
            "payload.created_at",
            "1850-06-01T00:00:00Z",
        ),  # a reschedule's cancelled_at of the old half
        ("invitee.canceled", "payload.cancellation.created_at", "3000-06-01T00:00:00Z"),  # its cancelled_at
        ("invitee_no_show.created", "created_at", "1899-06-01T00:00:00Z"),  # its calendly_no_show_at
    ],
)
def test_an_invitee_time_outside_the_supported_years_is_parked_not_stored(
    wbapp: Bapp, tmp_path: Path, name: str, path: str, moment: str
) -> None:
    # only the event's start and end were held to the years: these were stored as sent, and the backup that
    # `export all` wrote of them did not restore (`import all`: "is outside the supported range", exit 6)
    document = json.loads(delivery(name, cancelled_at=BOOKED + dt.timedelta(days=1) if "cancel" in path else None))
    *parents, key = path.split(".")
    target = document
    for part in parents:
        target = target[part]
    target[key] = moment
    body = json.dumps(document).encode()
    result = apply(wbapp, body, signed(body), tmp=tmp_path)
    assert result.exit_code == 3, result.stderr
    assert f"time '{moment}' is outside the supported range 1900-01-01 to 2999-12-31" in result.stderr
    assert bookings(wbapp) == []


@pytest.mark.parametrize("command", ["apply", "sign"])
def test_a_signing_key_that_is_not_text_is_exit_4_naming_the_setting(wbapp: Bapp, tmp_path: Path, command: str) -> None:
    # an environment variable holding bytes that are not UTF-8 (Python keeps them as surrogates)
    body = delivery()
    path = tmp_path / "body.json"
    path.write_bytes(body)
    options = ["--signature", signed(body)] if command == "apply" else []
    env: dict[str, str | None] = {"CALENDLY_WEBHOOK_SIGNING_KEY": "whsec-\udcff-key"}
    result = wbapp("calendly", "webhook", command, str(path), *options, env=env)
    assert result.exit_code == 4, result.stderr
    assert result.stdout == ""
    [line] = error_lines(result.stderr)
    assert "webhook signing key" in line and "not valid UTF-8" in line
    assert "whsec-" not in result.stderr
    assert bookings(wbapp) == []


def test_tolerance_is_adjustable(wbapp: Bapp, tmp_path: Path) -> None:
    body = delivery()
    five_minutes_old = signed(body, age=300)
    assert apply(wbapp, body, five_minutes_old, tmp=tmp_path).exit_code == 4
    result = apply(wbapp, body, five_minutes_old, "--tolerance", "600", "--json", tmp=tmp_path)
    assert result.exit_code == 0, result.stderr
    assert result.json()["action"] == "created"


def test_replaying_a_delivery_changes_nothing(wbapp: Bapp, tmp_path: Path) -> None:
    body = delivery()
    first = apply(wbapp, body, signed(body), "--json", tmp=tmp_path)
    assert first.exit_code == 0, first.stderr
    before = snapshot(wbapp.database_url)
    again = apply(wbapp, body, signed(body), "--json", tmp=tmp_path)
    assert again.exit_code == 0, again.stderr
    assert (again.json()["action"], again.json()["booking"]) == ("unchanged", first.json()["booking"])
    assert snapshot(wbapp.database_url) == before


def test_a_cancel_arriving_before_its_create_wins(wbapp: Bapp, tmp_path: Path) -> None:
    cancel = delivery("invitee.canceled", cancelled_at=BOOKED + dt.timedelta(hours=1))
    create = delivery()
    first = apply(wbapp, cancel, signed(cancel), "--json", tmp=tmp_path)
    assert first.exit_code == 0, first.stderr
    assert (first.json()["action"], first.json()["booking_status"]) == ("created", "cancelled")
    late = apply(wbapp, create, signed(create), "--json", tmp=tmp_path)
    assert late.exit_code == 0, late.stderr
    assert (late.json()["action"], late.json()["booking_status"]) == ("unchanged", "cancelled")
    [booking] = bookings(wbapp)
    assert booking["status"] == "cancelled"
    shown = wbapp("clients", "show", "client1@example.com", "--json").json()
    assert shown["enrolments"] == []  # a booking that never stood enrols nobody


def test_create_then_cancel_cancels_and_verbose_says_so(wbapp: Bapp, tmp_path: Path) -> None:
    create = delivery()
    cancel = delivery("invitee.canceled", cancelled_at=BOOKED + dt.timedelta(hours=1))
    assert apply(wbapp, create, signed(create), tmp=tmp_path).exit_code == 0
    path = tmp_path / "cancel.json"
    path.write_bytes(cancel)
    result = wbapp("--verbose", "calendly", "webhook", "apply", str(path), "--signature", signed(cancel), "--json")
    assert result.exit_code == 0, result.stderr
    assert result.json()["action"] == "cancelled"
    assert result.stderr.startswith("cancelled   ") and result.stderr.rstrip().endswith(": Clash")
    assert bookings(wbapp)[0]["status"] == "cancelled"


def test_dry_run_verifies_and_reports_but_writes_nothing(wbapp: Bapp, tmp_path: Path) -> None:
    body = delivery()
    before = snapshot(wbapp.database_url)
    result = apply(wbapp, body, signed(body), "--dry-run", "--json", tmp=tmp_path)
    assert result.exit_code == 0, result.stderr
    assert (result.json()["dry_run"], result.json()["action"]) == (True, "created")
    assert result.stderr.splitlines()[0] == "Dry run: 1 change(s) planned, nothing written."
    assert snapshot(wbapp.database_url) == before


def test_other_events_are_acknowledged_and_ignored(wbapp: Bapp, tmp_path: Path) -> None:
    body = json.dumps(
        {"event": "event_type.updated", "created_at": iso(BOOKED), "payload": {"uri": f"{API_ORIGIN}/event_types/X"}}
    ).encode()
    result = apply(wbapp, body, signed(body), "--json", tmp=tmp_path)
    assert result.exit_code == 0, result.stderr
    assert (result.json()["action"], result.json()["event"]) == ("ignored", "event_type.updated")
    assert (result.json()["invitee_uri"], result.json()["booking"]) == (None, None)
    assert bookings(wbapp) == []


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"{this is not json", "Error: webhook body is not valid JSON"),
        (b"[]", "Error: webhook body is not a JSON object"),
        (b'{"event": "caf\xe9"}', "Error: webhook body is not valid JSON (not UTF-8 text, at byte 14)"),
        # half a surrogate pair in UTF-8 form: no UTF-8, though Python's JSON reader took it (exit 1 when stored)
        (b'{"event": "x\xed\xa0\x80"}', "Error: webhook body is not valid JSON (not UTF-8 text, at byte 12)"),
        # past Python's int-string limit: said in words, where it was "(ValueError)"
        (b'{"n": ' + b"1" * 5000 + b"}", "Error: webhook body is not valid JSON (a number longer than 4300 digits)"),
    ],
)
def test_a_signed_body_that_is_not_a_json_object_is_exit_6(
    wbapp: Bapp, tmp_path: Path, body: bytes, message: str
) -> None:
    before = snapshot(wbapp.database_url)
    result = apply(wbapp, body, signed(body), tmp=tmp_path)
    assert result.exit_code == 6
    assert result.stdout == ""
    assert error_lines(result.stderr)[0].startswith(message)
    assert snapshot(wbapp.database_url) == before


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"status": "awaiting_payment"}, "payload.status: Input should be 'active' or 'canceled'"),
        ({"email": ["client1@example.com"]}, "payload.email: Input should be a valid string"),
    ],
)
def test_a_signed_object_bapp_does_not_model_is_parked_exit_3(
    wbapp: Bapp, tmp_path: Path, change: dict[str, Any], reason: str
) -> None:
    # refused (exit 6, 400 from the receiver), Calendly retried it for a day, then disabled the subscription
    document = json.loads(delivery())
    document["payload"].update(change)
    body = json.dumps(document).encode()
    result = apply(wbapp, body, signed(body), "--json", tmp=tmp_path)
    assert result.exit_code == 3, result.stderr
    assert (result.json()["action"], result.json()["invitee_uri"]) == ("parked", document["payload"]["uri"])
    assert f"parked in the webhook inbox as #1: webhook body is invalid: {reason}" in result.stderr
    assert bookings(wbapp) == []
    listed = wbapp("calendly", "webhook", "list", "--pending", "--json")
    [parked] = listed.json()
    assert (parked["event"], parked["source"], parked["last_error"]) == (
        "invitee.created",
        "apply",
        f"webhook body is invalid: {reason}",
    )
    retried = wbapp("calendly", "webhook", "retry")
    assert retried.exit_code == 3
    assert f"still parked: #{parked['id']} invitee.created {parked['invitee_uri']}: webhook body is invalid" in (
        retried.stderr
    )


def test_retry_discard_gives_up_a_parked_delivery_no_bapp_will_apply(wbapp: Bapp, tmp_path: Path) -> None:
    # a body bapp cannot read stayed pending for ever: every retry (and every sync's) failed it again, exit 3, and
    # nothing but SQL removed it
    bodies = []
    for number in (1, 2):
        document = json.loads(delivery(number))
        document["payload"]["status"] = "awaiting_payment"
        bodies.append(json.dumps(document).encode())
        assert apply(wbapp, bodies[-1], signed(bodies[-1]), tmp=tmp_path).exit_code == 3
    first, second = (row["id"] for row in reversed(wbapp("calendly", "webhook", "list", "--json").json()))
    missing = wbapp("calendly", "webhook", "retry", "--discard", str(first), "--discard", "999")
    assert (missing.exit_code, missing.stderr.splitlines()[0]) == (7, "Error: no parked delivery #999")
    beyond = wbapp("calendly", "webhook", "retry", "--discard", "9" * 300)  # more digits than any id: echoed cut
    assert beyond.exit_code == 7 and "9" * 61 not in beyond.stderr and "…" in beyond.stderr, beyond.stderr
    tried = wbapp("calendly", "webhook", "retry", "--discard", str(first), "--dry-run", "--json")
    assert tried.exit_code == 3, tried.stderr
    assert [(row["id"], row["action"]) for row in tried.json()] == [(first, "discarded"), (second, "skipped")]
    assert len(wbapp("calendly", "webhook", "list", "--pending", "--json").json()) == 2  # rolled back
    done = wbapp("calendly", "webhook", "retry", "--discard", str(first), "--json")
    assert done.exit_code == 3 and f"still parked: #{second} " in done.stderr, done.stderr
    assert [row["id"] for row in wbapp("calendly", "webhook", "list", "--json").json()] == [second]
    engine = create_engine(wbapp.database_url)
    try:
        with engine.connect() as connection:
            query = "SELECT actor, changes FROM audit_entries WHERE entity = 'webhook_delivery' AND entity_key = :key"
            rows = connection.execute(text(query), {"key": str(first)}).all()
    finally:
        engine.dispose()
    given_up = [json.loads(changes) if isinstance(changes, str) else changes for _, changes in rows]
    assert given_up[-1]["body_sha256"] == hashlib.sha256(bodies[0]).hexdigest()
    assert "discarded" in given_up[-1] and given_up[-1]["reason"].startswith("webhook body is invalid: ")
    assert wbapp("calendly", "webhook", "retry", "--discard", str(second)).exit_code == 0
    assert wbapp("calendly", "webhook", "list", "--json").json() == []


def test_a_retry_leaving_deliveries_parked_is_exit_3_with_its_rows_reader_gone(wbapp: Bapp, tmp_path: Path) -> None:
    # its rows outgrew the stdout buffer: the closed pipe's error ended the run 141, saying nothing of what was parked
    for number in range(1, 61):
        document = json.loads(delivery(number))
        document["payload"]["status"] = "awaiting_payment"
        body = json.dumps(document).encode()
        assert apply(wbapp, body, signed(body), tmp=tmp_path).exit_code == 3
    retried = wbapp.process("calendly", "webhook", "retry", stdout="closed pipe")
    assert retried.exit_code == 3, retried.stderr
    assert retried.stderr.count("still parked: #") == 60
    assert "Error: 60 of 60 parked deliveries still cannot be applied" in retried.stderr
    listed = wbapp("calendly", "webhook", "list", "--pending", "--limit", "100", "--json").json()
    assert [row["attempts"] for row in listed] == [2] * 60  # parked, then retried once: committed


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_signed_object_too_long_for_a_backup_to_restore_is_exit_6_not_parked(wbapp: Bapp, tmp_path: Path) -> None:
    # parked, it was in every `export all`, and `import all` refused its row (exit 6): no backup restored
    body = b'{"pad": "' + b"x" * 10_000_000 + b'"}'
    before = snapshot(wbapp.database_url)
    result = apply(wbapp, body, signed(body), tmp=tmp_path)
    assert result.exit_code == 6, result.stderr
    assert error_lines(result.stderr) == ["Error: webhook body: 10,000,011 characters; at most 10,000,000"]
    assert snapshot(wbapp.database_url) == before


@pytest.mark.parametrize("second_database_url", ["sqlite"], indirect=True)  # the refusal is import's, on either
def test_a_parked_deliverys_reason_quoting_a_long_uri_is_cut_so_its_backup_restores(
    wbapp: Bapp, tmp_path: Path, second_database_url: str
) -> None:
    # "unknown event type <its URI>": a 200,000-character URI made a reason past the 100,000 characters `import all`
    # takes of an inbox row, so the backup `export all` wrote did not restore (exit 6), as did a long e-mail's
    document = json.loads(delivery())
    document["payload"]["scheduled_event"]["event_type"] = f"{API_ORIGIN}/event_types/{'E' * 200_000}"
    body = json.dumps(document).encode()
    assert apply(wbapp, body, signed(body), tmp=tmp_path).exit_code == 3
    restored, _ = restore_backup(wbapp, second_database_url, tmp_path, "--json")
    [parked] = restored("calendly", "webhook", "list", "--pending", "--json").json()
    assert parked["last_error"].startswith(f"unknown event type {API_ORIGIN}/event_types/EEE")
    assert len(parked["last_error"]) == 100_000


@pytest.mark.parametrize("second_database_url", ["sqlite"], indirect=True)  # the refusal is import's, on either
def test_answers_longer_than_a_booking_row_takes_are_cut_so_the_backup_restores(
    wbapp: Bapp, tmp_path: Path, second_database_url: str
) -> None:
    # stored whole, a 20,000-character answer (or a 5,000-character question) was in the booking `export all`
    # wrote, and `import all` refused that row (exit 6: "String should have at most 10000 characters")
    document = json.loads(delivery())
    document["payload"]["questions_and_answers"] = [
        {"question": "Q" * 5000, "answer": "A" * 20_000, "position": 0},
        {"question": "Tools", "answer": "B" * 20_000, "position": 1},
    ]
    body = json.dumps(document).encode()
    assert apply(wbapp, body, signed(body), tmp=tmp_path).exit_code == 0
    restored, _ = restore_backup(wbapp, second_database_url, tmp_path, "--json")
    [booking] = bookings(restored)
    assert booking["custom_question_responses"] == [
        {"question": "Q" * 1000, "answer": "A" * 10_000, "position": 0},
        {"question": "Tools", "answer": "B" * 10_000, "position": 1},
    ]


def test_a_body_on_stdin_and_the_sign_helper(wbapp: Bapp, tmp_path: Path) -> None:
    body = delivery(j=2)
    path = tmp_path / "body.json"
    path.write_bytes(body)
    header = wbapp("calendly", "webhook", "sign", str(path), "--timestamp", "1900000000")
    assert header.exit_code == 0, header.stderr
    assert header.stdout == make_signature_header(body, KEY, timestamp=1900000000) + "\n"
    fresh = wbapp("calendly", "webhook", "sign", str(path)).stdout.strip()
    result = wbapp("calendly", "webhook", "apply", "-", "--signature", fresh, "--json", stdin=body.decode())
    assert result.exit_code == 0, result.stderr
    assert result.json()["action"] == "created"
    no_key = wbapp("calendly", "webhook", "sign", str(path), env={"CALENDLY_WEBHOOK_SIGNING_KEY": None})
    assert (no_key.exit_code, no_key.stdout) == (4, "")


def test_the_example_reschedule_arrives_by_webhook_out_of_order(bapp: Bapp) -> None:
    """The demo's files: pull the saved listing, then Sam's reschedule arrives new half first."""
    assert (
        bapp("builders", "add", "priya@coach.example", "--calendly-user", f"{API_ORIGIN}/users/BAWPRIYA0001").exit_code
        == 0
    )
    assert bapp("calendly", "sync", "--from-file", str(EXAMPLES / "event_types.json")).exit_code == 0
    pulled = bapp("calendly", "pull-bookings", "--from-file", str(EXAMPLES / "scheduled_events.json"))
    # the listing's one invitee of a type never synced is parked, named, and makes the pull "applied partly"
    assert pulled.exit_code == 3, pulled.stderr
    assert "BAW0099NEWWORKSHOP" in pulled.stderr and "parked in the webhook inbox" in pulled.stderr
    bapp.env["CALENDLY_WEBHOOK_SIGNING_KEY"] = KEY
    results = []
    for name in ("webhook_invitee_created.json", "webhook_invitee_canceled.json"):
        body = (EXAMPLES / name).read_bytes()
        results.append(
            bapp("calendly", "webhook", "apply", str(EXAMPLES / name), "--signature", signed(body), "--json")
        )
    assert [result.exit_code for result in results] == [0, 0], [result.stderr for result in results]
    created, cancelled = (result.json() for result in results)
    assert created["action"] == "created" and created["note"].startswith("rescheduled from BK-")
    old_reference = created["note"].split()[-1]
    assert (cancelled["action"], cancelled["booking"]) == ("unchanged", old_reference)
    sams = {
        row["reference"]: row for row in bapp("bookings", "list", "--client", "sam@client.example", "--json").json()
    }
    assert sams[old_reference]["status"] == "cancelled" and sams[old_reference]["start_time"] == "2031-05-08T10:00:00Z"
    assert sams[created["booking"]]["status"] == "confirmed"
    assert sams[created["booking"]]["start_time"] == "2031-05-12T10:00:00Z"
    assert sams[created["booking"]]["pathway"] == "pivot"


def test_a_reschedule_whose_pathway_is_now_archived_says_so(bapp: Bapp) -> None:
    """Sam's reschedule (the demo's files) after his booking's pathway was archived: rule 4 chooses the session's
    other linked pathway, as for a booking without an answer, and a warning names the one not carried over (it was
    chosen without a word)."""
    assert bapp("calendly", "sync", "--from-file", str(EXAMPLES / "event_types.json")).exit_code == 0
    assert bapp("calendly", "pull-bookings", "--from-file", str(EXAMPLES / "scheduled_events.json")).exit_code == 3
    [old] = bapp("bookings", "list", "--client", "sam@client.example", "--json").json()
    assert bapp("sessions", "update", str(old["session_id"]), "--pathway", "accelerate").exit_code == 0
    assert bapp("pathways", "archive", "pivot", "--yes").exit_code == 0
    body = (EXAMPLES / "webhook_invitee_created.json").read_bytes()
    bapp.env["CALENDLY_WEBHOOK_SIGNING_KEY"] = KEY
    path = str(EXAMPLES / "webhook_invitee_created.json")
    created = bapp("calendly", "webhook", "apply", path, "--signature", signed(body), "--json")
    assert created.exit_code == 0, created.stderr
    record = created.json()
    assert record["note"] == f"rescheduled from {old['reference']}; enrolled in accelerate"
    assert record["warnings"] == [f"pathway 'pivot' (of {old['reference']}) is archived; not carried over"]


@pytest.mark.slow
def test_concurrent_deliveries_of_one_invitee_make_one_booking(wbapp: Bapp, database_url: str, tmp_path: Path) -> None:
    """Calendly retries while the first delivery is still being applied: real processes meet behind a barrier
    (see test_bookings_race), and the `calendly:bookings` lock lets exactly one of them create."""
    from bapp_cli.db.engine import make_engine
    from tests.cli.test_bookings_race import race

    body = delivery()
    path = tmp_path / "body.json"
    path.write_bytes(body)
    command = ["calendly", "webhook", "apply", str(path), "--signature", signed(body), "--json"]
    engine = make_engine(database_url)
    try:
        results = race(wbapp, database_url, engine, [command] * 3)
    finally:
        engine.dispose()
    assert [code for code, _, _ in results] == [0, 0, 0], [stderr for _, _, stderr in results]
    records = [json.loads(stdout) for _, stdout, _ in results]
    assert sorted(record["action"] for record in records) == ["created", "unchanged", "unchanged"]
    assert len({record["booking"] for record in records}) == 1
    assert len(bookings(wbapp)) == 1


# -- R8 / issue 15 item 3: nothing the apply cannot use is skipped silently ----------------------------------


def test_an_internationalised_email_is_applied_not_skipped(wbapp: Bapp, tmp_path: Path) -> None:
    body = delivery().replace(b"client1@example.com", "Ünïcode.User@Exämple.com".encode())
    result = apply(wbapp, body, signed(body), "--json", tmp=tmp_path)
    assert result.exit_code == 0, result.stderr
    assert result.json()["action"] == "created"
    [booking] = bookings(wbapp)
    assert booking["client"] == "ünïcode.user@exämple.com"
    shown = wbapp("clients", "show", "ÜNÏCODE.user@exämple.com", "--json")  # one key, whatever the case
    assert shown.exit_code == 0, shown.stderr


def test_an_invitee_whose_domain_comes_in_punycode_is_the_client_already_known(wbapp: Bapp, tmp_path: Path) -> None:
    """A client added with a Unicode domain books through Calendly, which sends the domain as xn--: the booking
    is that client's, not a second client's for the same address."""
    assert wbapp("clients", "add", "Ünïcode.User@Exämple.com").exit_code == 0
    body = delivery().replace(b"client1@example.com", "ünïcode.user@XN--EXMPLE-CUA.COM".encode())
    result = apply(wbapp, body, signed(body), "--json", tmp=tmp_path)
    assert (result.exit_code, result.json()["action"]) == (0, "created"), result.stderr
    assert [booking["client"] for booking in bookings(wbapp)] == ["ünïcode.user@exämple.com"]
    assert [client["email"] for client in wbapp("clients", "list", "--json").json()] == ["ünïcode.user@exämple.com"]


def test_a_delivery_for_an_unsynced_type_is_parked_named_and_exit_3_until_a_sync(wbapp: Bapp, tmp_path: Path) -> None:
    body = delivery().replace(b"/event_types/ET00000001", b"/event_types/ET00000042")
    result = apply(wbapp, body, signed(body), "--json", tmp=tmp_path)
    assert result.exit_code == 3, result.stderr
    assert result.json()["action"] == "parked"
    [line] = error_lines(result.stderr)
    assert line.startswith("Error: invitee.created for ") and "ET00000042" in line
    assert bookings(wbapp) == []
    [parked] = wbapp("calendly", "webhook", "list", "--pending", "--json").json()
    assert (parked["source"], parked["status"]) == ("apply", "pending")
    still = wbapp("calendly", "webhook", "retry")
    assert still.exit_code == 3 and f"still parked: #{parked['id']}" in still.stderr
    listing = tmp_path / "types.json"
    listing.write_text(json.dumps([*catalogue(3), make_event_type(42)]))
    assert wbapp("calendly", "sync", "--from-file", str(listing)).exit_code == 0  # applies what waited for it
    [booking] = bookings(wbapp)
    assert booking["calendly_invitee_uri"] == parked["invitee_uri"]
    assert wbapp("calendly", "webhook", "list", "--pending", "--json").json() == []
    retried = wbapp("calendly", "webhook", "retry", "--json")
    assert (retried.exit_code, retried.json()) == (0, [])


def test_a_parked_body_that_no_longer_parses_stays_parked_and_says_why(
    wbapp: Bapp, database_url: str, tmp_path: Path
) -> None:
    """A stored body that no longer validates (edited by hand, or parked by another bapp) does not stop the
    retry of the others: it counts an attempt, keeps the reason, and the retry exits 3 naming it."""
    from sqlalchemy import text

    from bapp_cli.db.engine import make_engine

    body = delivery().replace(b"/event_types/ET00000001", b"/event_types/ET00000042")
    signature = signed(body)
    assert apply(wbapp, body, signature, tmp=tmp_path).exit_code == 3
    engine = make_engine(database_url)
    try:
        with engine.begin() as connection:
            headers = connection.execute(text("SELECT headers FROM webhook_deliveries")).scalar_one()
            connection.execute(text("UPDATE webhook_deliveries SET body = '{\"event\": 42}'"))
    finally:
        engine.dispose()
    # kept with the body: when Calendly signed it, never the signature (a replayable credential)
    signed_at = signature.split(",")[0].removeprefix("t=")
    assert (json.loads(headers) if isinstance(headers, str) else headers) == {"signature_timestamp": signed_at}
    retried = wbapp("calendly", "webhook", "retry", "--json")
    assert retried.exit_code == 3, retried.stderr
    [record] = retried.json()
    assert record["action"] == "skipped" and record["note"].startswith("webhook body is invalid: event: ")
    assert f"still parked: #{record['id']} invitee.created" in retried.stderr
    [parked] = wbapp("calendly", "webhook", "list", "--pending", "--json").json()
    assert parked["attempts"] == 2 and parked["last_error"] == record["note"]


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
@pytest.mark.parametrize("command", ["apply", "retry"])
def test_the_inbox_takes_the_tables_lock_before_the_pulls_lock_as_the_pull_does(
    wbapp: Bapp, database_url: str, tmp_path: Path, command: str
) -> None:
    """The inbox took the `calendly:bookings` lock first and the tables' ROW EXCLUSIVE lock after, the pull
    the other way round: with an import queued for its SHARE ROW EXCLUSIVE lock in between, the three waited
    on one another until PostgreSQL's deadlock detector reordered the queue (deadlock_timeout later). Here
    the pull's lock is held elsewhere: the inbox, waiting for it, must already hold the tables'."""
    from sqlalchemy import text

    from bapp_cli.db.engine import make_engine
    from bapp_cli.db.locks import lock_id

    body = delivery()
    path = tmp_path / "body.json"
    path.write_bytes(body)
    args = ("apply", str(path), "--signature", signed(body)) if command == "apply" else ("retry",)
    engine = make_engine(database_url)
    try:
        with engine.connect() as holder, engine.connect() as watcher:
            holder.execute(text("SELECT pg_advisory_lock(:k)"), {"k": lock_id("calendly:bookings")})
            process = wbapp.popen("calendly", "webhook", *args)
            waiting = "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
            deadline = time.monotonic() + 60
            while (pid := watcher.execute(text(waiting)).scalar()) is None:
                assert time.monotonic() < deadline and process.poll() is None, process.communicate()
                time.sleep(0.02)
            held = (
                "SELECT pg_class.relname FROM pg_locks JOIN pg_class ON pg_class.oid = pg_locks.relation "
                "WHERE pg_locks.pid = :pid AND pg_locks.granted AND pg_locks.mode = 'RowExclusiveLock' "
                "AND pg_class.relname IN ('bookings', 'users')"
            )
            tables = sorted(watcher.execute(text(held), {"pid": pid}).scalars())
            watcher.rollback()
            holder.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": lock_id("calendly:bookings")})
            holder.commit()
            _, stderr = process.communicate(timeout=60)
        assert tables == ["bookings", "users"]
        assert process.returncode == 0, stderr
    finally:
        engine.dispose()


def test_a_parked_deliverys_attempts_stop_at_the_integer_columns_bound(
    wbapp: Bapp, database_url: str, tmp_path: Path
) -> None:
    # one more attempt than 2³¹ − 1 overflowed PostgreSQL's column (exit 1) and was stored on SQLite, where no
    # backup of it would restore (the import refuses past the bound)
    from sqlalchemy import text

    from bapp_cli.db.engine import make_engine

    body = delivery().replace(b"/event_types/ET00000001", b"/event_types/ET00000042")
    assert apply(wbapp, body, signed(body), tmp=tmp_path).exit_code == 3
    engine = make_engine(database_url)
    try:
        with engine.begin() as connection:
            connection.execute(text("UPDATE webhook_deliveries SET attempts = 2147483647"))
    finally:
        engine.dispose()
    retried = wbapp("calendly", "webhook", "retry")
    assert retried.exit_code == 3 and "still parked: #" in retried.stderr, retried.stderr
    assert apply(wbapp, body, signed(body), tmp=tmp_path).exit_code == 3  # Calendly's redelivery counts too
    [parked] = wbapp("calendly", "webhook", "list", "--pending", "--json").json()
    assert parked["attempts"] == 2**31 - 1


def test_a_delivery_to_an_unmigrated_database_is_exit_5_not_a_crash(empty_database_url: str, tmp_path: Path) -> None:
    # At-head is asked inside the delivery's own transaction: with no schema, PostgreSQL refuses every later
    # statement of it, so the look for an inbox to park in must not turn that refusal into a bug (exit 1).
    app = Bapp(empty_database_url, tmp_path)
    app.env["CALENDLY_WEBHOOK_SIGNING_KEY"] = KEY
    body = delivery()
    result = apply(app, body, signed(body), tmp=tmp_path)
    assert result.exit_code == 5, result.stderr
    assert "bapp db upgrade" in result.stderr and "Traceback" not in result.stderr


def test_a_delivery_to_an_unmigrated_database_with_a_token_is_exit_5(empty_database_url: str, tmp_path: Path) -> None:
    # with a token, the delivery's event type is looked up (to fetch it if unknown): not before at-head is known
    app = Bapp(empty_database_url, tmp_path)
    app.env.update({"CALENDLY_WEBHOOK_SIGNING_KEY": KEY, "CALENDLY_API_KEY": "tok-unit-1"})
    app.env["CALENDLY_API_BASE_URL"] = "http://127.0.0.1:9"  # nothing is asked of Calendly
    body = delivery()
    result = apply(app, body, signed(body), tmp=tmp_path)
    result = apply(app, body, signed(body), tmp=tmp_path)
    assert "bapp db upgrade" in result.stderr and "Traceback" not in result.stderr


def test_a_delivery_enrols_the_client_from_the_user_s_today(wbapp: Bapp, tmp_path: Path) -> None:
    """The enrolment a delivery opens starts today in the configured zone (--timezone; the receiver is wired the
    same way, from its settings), as `clients enroll` starts one: it started on UTC's day. A zone whose day differs
    from UTC's now: 14 hours east, or 11 west."""
    now = dt.datetime.now(dt.UTC)
    zone = "Pacific/Kiritimati" if now.hour >= 10 else "Pacific/Pago_Pago"  # UTC+14, UTC-11
    today = now.astimezone(ZoneInfo(zone)).date()
    assert today != now.date()
    body = delivery()
    result = apply(wbapp, body, signed(body), tmp=tmp_path, env={"BAPP_TIMEZONE": zone})
    assert result.exit_code == 0, result.stderr
    shown = wbapp("clients", "show", "client1@example.com", "--json").json()["enrolments"]
    assert [(item["pathway"], item["start_date"]) for item in shown] == [("accelerate", today.isoformat())]


@pytest.mark.parametrize("door", ["webhook", "pull"])
def test_a_booking_answering_a_pathway_being_archived_is_taken_without_it(
    wbapp: Bapp, tmp_path: Path, door: str
) -> None:
    """An admin archives accelerate (not yet committed) while Calendly's booking answering "Accelerate" is applied,
    by a delivery or a pull. On PostgreSQL the apply chose accelerate as read past the archive, and enrolling in it
    then saw it archived and refused the whole apply: `webhook apply` exit 6 (the receiver's 400), a pull exit 6,
    though Calendly had booked the session. Now the answered pathway is read again under a share lock, so the
    archive is waited for and the answer is treated as an archived one is: said, and the booking made without it.
    On SQLite the apply's writer waits for the archive's whole transaction anyway, and sees it."""
    from functools import partial

    from bapp_cli.db.engine import make_engine, unit_of_work
    from bapp_cli.services.pathway_admin import archive_pathway
    from tests.cli.test_progress_cli import until_it_waits

    envelope = json.loads(delivery())
    envelope["payload"]["questions_and_answers"] = [{"question": "Your pathway", "answer": "Accelerate", "position": 0}]
    command = through(door, envelope, tmp_path)
    engine = make_engine(wbapp.database_url)
    try:
        with unit_of_work(engine, actor="test", command="archive") as admin:
            partial(archive_pathway, slug="accelerate")(admin, now=dt.datetime.now(dt.UTC))
            racing = wbapp.popen(*command, "--json")
            until_it_waits(wbapp, engine, racing)  # for the archive to commit
        stdout, stderr = racing.communicate(timeout=60)
    finally:
        engine.dispose()
    assert racing.returncode == 0, stderr
    said = ["pathway 'accelerate' (answer to 'Your pathway') is archived; not taken"]
    said.append(
        "pathway session 'Accelerate Foundation Coaching 1' booked without a pathway answer and no linked pathway"
    )
    assert json.loads(stdout)["warnings"] == (said if door == "webhook" else len(said)), stdout
    assert [(booking["status"], booking["pathway"]) for booking in bookings(wbapp)] == [("confirmed", None)]
    assert wbapp("clients", "show", "client1@example.com", "--json").json()["enrolments"] == []


def through(door: str, envelope: dict[str, Any], tmp_path: Path) -> tuple[str, ...]:
    """The command applying `envelope` (a delivery) through `door`: a webhook delivery, or a pull of its listing."""
    path = tmp_path / "body.json"
    if door == "webhook":
        body = json.dumps(envelope).encode()
        path.write_bytes(body)
        return ("calendly", "webhook", "apply", str(path), "--signature", signed(body))
    event = envelope["payload"].pop("scheduled_event")
    path.write_text(json.dumps([{**event, "invitees": [envelope["payload"]]}]))
    return ("calendly", "pull-bookings", "--from-file", str(path))


@pytest.mark.parametrize("door", ["webhook", "pull"])
def test_a_booking_of_a_session_without_pathways_does_not_wait_for_an_archive(
    wbapp: Bapp, tmp_path: Path, door: str
) -> None:
    """A booking of a free session that no answer or reschedule gives a pathway takes none: its apply does not wait
    for `pathways archive` (or a renumbering) holding a pathway. The applier share-locked every pathway for every
    invitee, so on PostgreSQL such a delivery waited for the archive's commit (the receiver's 503 after its busy
    timeout) and a no-change pull wrote a lock on every pathway. On SQLite the apply's writer waits for the archive's
    whole transaction anyway."""
    from bapp_cli.db.engine import make_engine, unit_of_work
    from bapp_cli.services.pathway_admin import archive_pathway

    envelope = json.loads(delivery())
    envelope["payload"]["scheduled_event"]["event_type"] = f"{API_ORIGIN}/event_types/ET00000000"  # a free session
    engine = make_engine(wbapp.database_url)
    try:
        with unit_of_work(engine, actor="test", command="archive") as admin:
            archive_pathway(admin, slug="accelerate", now=dt.datetime.now(dt.UTC))
            racing = wbapp.popen(*through(door, envelope, tmp_path), "--json")
            if not wbapp.database_url.startswith("sqlite"):
                racing.wait(timeout=20)  # the archive still uncommitted
        _, stderr = racing.communicate(timeout=60)
    finally:
        engine.dispose()
    assert racing.returncode == 0, stderr
    assert [(booking["status"], booking["pathway"]) for booking in bookings(wbapp)] == [("confirmed", None)]


def _race_past_a_held_key(
    app: Bapp, database_url: str, key: str, first: tuple[str, ...], second: tuple[str, ...]
) -> tuple[str, str]:
    """Run `first` until it waits for `key` (a db.locks name) the test holds, then `second` until it waits too, then
    let go: both must exit 0 (on PostgreSQL one was ended to break a deadlock, exit 75). On SQLite nothing is held:
    the writers take turns whole. The two commands' stdout."""
    from bapp_cli.db.engine import make_engine
    from bapp_cli.db.locks import lock_id
    from tests.cli.test_bookings_race import barrier_probe
    from tests.cli.test_import import _wait_for

    engine = make_engine(database_url)
    try:
        postgres = engine.dialect.name == "postgresql"
        with engine.connect() as holder, barrier_probe(database_url, engine) as all_blocked:
            if postgres:
                holder.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": lock_id(key)})
            running = [app.popen(*first)]
            if postgres:
                _wait_for(lambda: all_blocked(running), f"{first[:2]} to wait for {key}")
            running.append(app.popen(*second))
            if postgres:
                _wait_for(lambda: all_blocked(running), f"{second[:2]} to wait too")
            holder.commit()
        outputs = [process.communicate(timeout=60) for process in running]
    finally:
        engine.dispose()
    assert [process.returncode for process in running] == [0, 0], "".join(stderr for _, stderr in outputs)
    return outputs[0][0], outputs[1][0]


def _sql(database_url: str, statement: str) -> list[tuple[Any, ...]]:
    """`statement`'s rows (none for a change), run and committed in a transaction of its own."""
    from bapp_cli.db.engine import make_engine

    engine = make_engine(database_url)
    try:
        with engine.begin() as connection:
            result = connection.execute(text(statement))
            return [tuple(row) for row in result] if result.returns_rows else []
    finally:
        engine.dispose()


def _two_invitees(app: Bapp, tmp_path: Path, door: str) -> tuple[str, ...]:
    """Known clients client1 and client2, and the command applying an invitee of each in one transaction: a pull of a
    saved listing, or a retry of two parked deliveries."""
    known = tmp_path / "clients.csv"  # the enrolment of an account made with its booking runs no completion rules
    known.write_text("email\nclient1@example.com\nclient2@example.com\n")
    assert app("import", "clients", str(known)).exit_code == 0
    if door == "pull":
        invitees = [json.loads(delivery(j=j))["payload"] for j in (1, 2)]
        listing = tmp_path / "listing.json"
        listing.write_text(json.dumps([{**one.pop("scheduled_event"), "invitees": [one]} for one in invitees]))
        return ("calendly", "pull-bookings", "--from-file", str(listing))
    # parked for an event type not synced yet, then pointed at one that is (a sync would retry them itself)
    for j in (1, 2):
        body = delivery(j=j).replace(b"/event_types/ET00000001", b"/event_types/ET00000042")
        assert apply(app, body, signed(body), tmp=tmp_path).exit_code == 3
    _sql(app.database_url, "UPDATE webhook_deliveries SET body = replace(body, 'ET00000042', 'ET00000001')")
    return ("calendly", "webhook", "retry")


@pytest.mark.parametrize("door", ["pull", "retry"])
def test_a_replay_of_several_invitees_does_not_deadlock_with_a_booking_of_a_later_invitees_client(
    wbapp: Bapp, database_url: str, tmp_path: Path, door: str
) -> None:
    """A pull, or a retry of the inbox, applies several invitees in one transaction: the first one's enrolment took
    the completion rules' key (db.locks.COMPLETION_RULES), held to commit. A `bookings create` for the second one's
    client meanwhile held that client's key and its new enrolment, and waited for the rules' key; the replay then
    came to the second invitee and waited for that client's key (the retry) or enrolment (the pull). On PostgreSQL
    each waited for the other and the server ended one (deadlock detected: busy, exit 75). The test's transaction
    holds the rules' key so that the two meet there in that order; on SQLite the writers take turns whole."""
    from bapp_cli.db.locks import COMPLETION_RULES

    replay = _two_invitees(wbapp, tmp_path, door)
    book = ("bookings", "create", "--client", "client2@example.com", "--session", "accelerate-foundation-coaching-1")
    book += ("--start", "2021-05-04T10:00:00Z", "--allow-past", "--answer", "Company name=Acme")
    book += ("--pathway", "accelerate", "--json")
    _, stdout = _race_past_a_held_key(wbapp, database_url, COMPLETION_RULES, replay, book)
    assert json.loads(stdout)["pathway"] == "accelerate"
    theirs = "FROM {} JOIN users ON users.id = client_id WHERE email = 'client2@example.com'"
    assert _sql(database_url, f"SELECT source {theirs.format('bookings')} ORDER BY source") == [("calendly",), ("cli",)]
    assert _sql(database_url, f"SELECT count(*) {theirs.format('enrolments')}") == [(1,)]


@pytest.mark.parametrize("writer", ["enroll", "assign"])
def test_an_enrolment_of_a_later_invitees_client_during_a_pull_waits_for_it_whole(
    wbapp: Bapp, database_url: str, tmp_path: Path, writer: str
) -> None:
    """As a `bookings create` (above), a `clients enroll` or `skills assign --pathway` of the second invitee's client
    inserted its enrolment and waited for the completion rules' key the pull held since its first invitee; the pull
    then waited for that enrolment row (its own insert of it): on PostgreSQL each waited for the other and the server
    ended one (exit 75). They wait for the pull first (db.locks.REPLAY_WRITERS)."""
    from bapp_cli.db.locks import COMPLETION_RULES

    pull = _two_invitees(wbapp, tmp_path, "pull")
    assert wbapp("skills", "add", "s1", "--name", "S1", "--link", "accelerate:1").exit_code == 0
    enrolling = {
        "enroll": ("clients", "enroll", "client2@example.com", "accelerate"),
        "assign": ("skills", "assign", "client2@example.com", "--pathway", "accelerate"),
    }[writer]
    _race_past_a_held_key(wbapp, database_url, COMPLETION_RULES, pull, enrolling)
    query = "SELECT email FROM enrolments JOIN users ON users.id = client_id ORDER BY email"
    assert _sql(database_url, query) == [("client1@example.com",), ("client2@example.com",)]


@pytest.mark.parametrize("door", ["complete", "archive"])
def test_a_completion_during_a_retry_that_gave_its_enrolment_a_coach_waits_for_it_whole(
    wbapp: Bapp, database_url: str, tmp_path: Path, door: str
) -> None:
    """A retry of the inbox applies invitee after invitee in one transaction: the first one's booking gave its
    client's enrolment a coach (that row locked to commit), the second one's enrolment takes the completion rules'
    key. A `skills complete` of the first client's last skill, or a `skills archive` of the last one they had not
    done, meanwhile took the rules' key and waited for that enrolment row to complete it: on PostgreSQL each waited
    for the other and the server ended one (exit 75). The progress and skill doors wait for the replay first
    (db.locks.REPLAY_WRITERS). The test holds the second client's key so the replay stops between its two invitees."""
    from bapp_cli.db.locks import client_lock_key

    retry = _two_invitees(wbapp, tmp_path, "retry")
    host = f"{API_ORIGIN}/users/USER0001"  # the scheduled events' host: the coach the booking brings
    assert wbapp("builders", "add", "ada@example.com", "--calendly-user", host).exit_code == 0
    for tier, skill in ((1, "s1"), (2, "s2"), (3, "s3"), (3, "extra")):  # a pathway is complete once every tier is
        assert wbapp("skills", "add", skill, "--name", skill, "--link", f"accelerate:{tier}").exit_code == 0
    assert wbapp("clients", "enroll", "client1@example.com", "accelerate").exit_code == 0  # no coach yet
    done = ("s1", "s2") if door == "complete" else ("s1", "s2", "s3")
    assert wbapp("skills", "assign", "client1@example.com", *done, "--status", "completed").exit_code == 0
    if door == "complete":
        assert wbapp("skills", "archive", "extra", "--yes").exit_code == 0
    completion = {
        "complete": ("skills", "complete", "client1@example.com", "s3"),
        "archive": ("skills", "archive", "extra", "--yes"),
    }[door]
    _race_past_a_held_key(wbapp, database_url, client_lock_key("client2@example.com"), retry, completion)
    query = "SELECT u.email, e.status, coach.email FROM enrolments e JOIN users u ON u.id = e.client_id"
    query += " LEFT JOIN users coach ON coach.id = e.builder_id ORDER BY u.email"
    assert _sql(database_url, query) == [
        ("client1@example.com", "completed", "ada@example.com"),
        ("client2@example.com", "active", "ada@example.com"),
    ]
