"""`bapp calendly webhook serve` as a real process on a free port, on SQLite and PostgreSQL (R8).

Every answer is checked against the database itself: a 2xx means the delivery is applied or parked,
anything else means nothing was written.
"""

# ruff: noqa: F811  (pytest fixtures imported from calendly_fixtures are parameters by design)

from __future__ import annotations

import datetime as dt
import json
import random
import resource
import signal
import socket
import sqlite3
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from importlib.util import find_spec
from pathlib import Path
from select import select as readable
from typing import Any, cast

import httpx
import pytest
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine, select, text

from bapp_cli.calendly.webhooks import parse_webhook
from bapp_cli.cli.webhook_receiver import MAX_CONNECTIONS
from bapp_cli.db.engine import make_engine, unit_of_work
from bapp_cli.db.locks import lock_id
from bapp_cli.db.migration import HEAD_REVISION, script_location
from bapp_cli.db.models import Booking
from bapp_cli.services.calendly_bookings import pathway_question_pattern
from bapp_cli.services.webhook_inbox import receive_delivery
from tests.cli.calendly_fixtures import (
    TOKEN,
    catalogue,
    fake,  # noqa: F401 (fixture)
    fake_server,  # noqa: F401 (fixture)
    snapshot,
)
from tests.cli.webhook_fixtures import (
    BOOKED,
    KEY,
    PATH,
    Receiver,
    bookings_by_invitee,
    delivery,
    free_port,
    invitee_uri,
    running_receiver,
    signed,
    start_receiver,
    type_uri,
)
from tests.conftest import (
    BACKENDS,
    Bapp,
    Result,
    SeededCopies,
    eventually,
    new_database,
    outlives_its_test,
    restore_backup,
)
from tests.fakes.calendly_server import API_ORIGIN, FakeCalendly, make_event_type
from tests.postgres_server import waits_for_lock

pytestmark = pytest.mark.slow

SIGNATURE = "Calendly-Webhook-Signature"


def _synced(bapp: Bapp) -> Bapp:
    listing = bapp.home / "event_types.json"
    listing.write_text(json.dumps(catalogue(3)))
    assert bapp("calendly", "sync", "--from-file", str(listing)).exit_code == 0
    bapp.env["CALENDLY_WEBHOOK_SIGNING_KEY"] = KEY
    return bapp


@pytest.fixture
def rbapp(bapp: Bapp) -> Bapp:
    """`bapp` with the signing key and three synced types (ET0–ET2) from a saved listing."""
    return _synced(bapp)


@dataclass
class _ModuleReceiver:
    receiver: Receiver
    database_url: str
    remove: Callable[[], None]


@pytest.fixture(scope="module")
def _receiver_databases(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SeededCopies]:
    yield from SeededCopies.per_module(tmp_path_factory)


@pytest.fixture(scope="module")
def _module_receivers(_receiver_databases: SeededCopies) -> Iterator[dict[str, _ModuleReceiver]]:
    running: dict[str, _ModuleReceiver] = {}
    yield running
    for shared in running.values():
        shared.receiver.stop()
        shared.remove()


@pytest.fixture(params=BACKENDS)
def module_receiver(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    tmp_path_factory: pytest.TempPathFactory,
    _receiver_databases: SeededCopies,
    _module_receivers: dict[str, _ModuleReceiver],
) -> tuple[Bapp, Receiver]:
    """The module's receiver on this backend, and `bapp` on its database, which each test gets as `rbapp`'s is (three
    types synced, the signing key set). For a test that needs no fresh receiver (~0.9 CPU s to start): one that reads
    neither its log nor its exit, gives it no flag or environment of its own and leaves its process as it was."""
    backend = request.param
    shared = _module_receivers.get(backend)
    if shared is None:
        url, remove = new_database(request, tmp_path_factory.mktemp(f"receiver-{backend}"))
        app = Bapp(url, tmp_path)

        def sync() -> None:
            _synced(app)

        _receiver_databases.seed_or_copy(url, sync)
        receiver = start_receiver(app)
        outlives_its_test(receiver.process)
        shared = _module_receivers[backend] = _ModuleReceiver(receiver, url, remove)
    else:
        _receiver_databases.restore(shared.database_url)
    app = Bapp(shared.database_url, tmp_path)
    app.env["CALENDLY_WEBHOOK_SIGNING_KEY"] = KEY
    return app, shared.receiver


# Senders open a new connection per delivery, as Calendly does; a new httpx.Client builds a new TLS context
# (about 25 ms of CPU) even for plain HTTP, so they share one: 1,000 posts no longer spend 25 s in set-up.
SENDER_TLS = ssl.create_default_context()


def inbox(app: Bapp, *args: str) -> list[dict[str, Any]]:
    result = app("calendly", "webhook", "list", "--json", *args)
    assert result.exit_code == 0, result.stderr
    return list(result.json())


def test_signed_deliveries_are_applied_once_and_bad_ones_write_nothing(rbapp: Bapp) -> None:
    with running_receiver(rbapp) as receiver:
        body = delivery(1)
        first = receiver.deliver(body)
        assert first.status_code == 200, first.text
        assert (first.json()["status"], first.json()["action"]) == ("applied", "created")
        again = receiver.deliver(body)  # Calendly's retry of the same delivery
        assert (again.status_code, again.json()["action"]) == (200, "unchanged")
        [booking] = bookings_by_invitee(rbapp).values()
        assert (booking["calendly_invitee_uri"], booking["reference"]) == (invitee_uri(1), first.json()["booking"])

        before = snapshot(rbapp.database_url)
        other = delivery(2)
        refusals = {
            "forged": receiver.post(other, signed(other, key="whsec-someone-else")),
            "stale": receiver.post(other, signed(other, age=600)),
            "unsigned": receiver.post(other),
            "tampered": receiver.post(other.replace(b"client2@", b"mallory@"), signed(other)),
        }
        assert {case: answer.status_code for case, answer in refusals.items()} == dict.fromkeys(refusals, 401)
        assert "signature" in refusals["forged"].json()["error"]
        not_json = b"{this is not json"
        assert receiver.post(not_json, signed(not_json)).status_code == 400
        oversize = b'{"pad": "' + b"x" * (1024 * 1024) + b'"}'
        assert receiver.post(oversize, signed(oversize)).status_code == 413
        streamed = receiver.http.post(receiver.url, content=iter([b"x" * 700_000, b"y" * 700_000]))  # no length
        assert streamed.status_code == 413
        assert receiver.http.get(receiver.url).status_code == 405
        assert receiver.http.post(receiver.base + "/elsewhere", content=other).status_code == 404
        assert snapshot(rbapp.database_url) == before
        health = receiver.http.get(receiver.base + "/healthz")
        assert (health.status_code, health.json()) == (200, {"status": "ok"})
    code, log = receiver.stop()  # already stopped with SIGTERM by the context manager: its exit and log
    assert code == 0, log
    assert log.splitlines()[-1] == "bapp webhook receiver stopped"
    access = [line for line in log.splitlines() if '"POST ' in line]
    assert len(access) >= 10 and any(" 401 refused " in line for line in access)
    # no body, signature or key in the access log
    for secret in ("client1@example.com", "v1=", KEY, "mallory", "xxxx"):
        assert secret not in log


def test_a_path_with_percent_escapes_is_served_as_the_url_calendly_posts_to_spells_it(rbapp: Bapp) -> None:
    # uvicorn hands the application the path percent-decoded: --path /calendly/hook%41 was compared as written, and
    # every delivery was 404 (and /health%7A was the health check's path, so every delivery 405)
    serve = ("calendly", "webhook", "serve", "--port", str(free_port()), "--path", "/health%7A")
    shadowed = rbapp.process(*serve, timeout=30)  # the old code served, until this timeout
    assert shadowed.exit_code == 2 and "--path: /healthz is the health check" in shadowed.stderr, shadowed.stderr
    with running_receiver(rbapp, "--path", "/calendly/w%C3%A9b%20hook%41") as receiver:
        body = delivery(1)
        signature = {"Calendly-Webhook-Signature": signed(body)}
        answer = receiver.http.post(receiver.base + "/calendly/w%C3%A9b%20hook%41", content=body, headers=signature)
        assert (answer.status_code, answer.json()["action"]) == (200, "created"), answer.text
    assert list(bookings_by_invitee(rbapp)) == [invitee_uri(1)]


def test_a_path_refused_is_echoed_cut(rbapp: Bapp) -> None:
    # echoed whole: a 500-character --path filled the terminal with its repr
    refused = rbapp("calendly", "webhook", "serve", "--path", "calendly/" + "x" * 500)
    assert refused.exit_code == 2 and "--path: 'calendly/xxx" in refused.stderr, refused.stderr
    assert "…" in refused.stderr and len(refused.stderr) < 200, refused.stderr


def test_a_signed_object_bapp_does_not_model_is_parked_202_and_only_what_is_no_object_is_400(
    module_receiver: tuple[Bapp, Receiver],
) -> None:
    rbapp, receiver = module_receiver
    # A refused delivery is retried for 24 h, then Calendly disables the whole subscription: one shape bapp
    # does not know (a new invitee status, a field of another type) cost every later booking as a 400
    new_status, retyped = json.loads(delivery(1)), json.loads(delivery(2))
    new_status["payload"]["status"] = "awaiting_payment"
    retyped["payload"]["email"] = [retyped["payload"]["email"]]
    no_invitee = b'{"event": "invitee.created", "created_at": "2031-01-01T00:00:00Z"}'
    # an instant with no UTC form (past year 9999), which was a 500 Calendly retried for a day
    beyond = delivery(4).replace(b'"created_at": "', b'"created_at": "9999-12-31T23:59:59-14:00", "was": "', 1)
    unfit = [json.dumps(new_status).encode(), json.dumps(retyped).encode(), no_invitee, beyond]
    for body in unfit:
        answer = receiver.deliver(body)
        assert (answer.status_code, answer.json()["status"]) == (202, "parked"), answer.text
        assert "webhook body is invalid: " in answer.json()["note"]
    assert receiver.deliver(unfit[0]).status_code == 202  # Calendly's retry: the same row
    before = snapshot(rbapp.database_url)
    # the last two are no UTF-8 (the very last half a surrogate pair, which Python's JSON reader took: a 500)
    no_utf8 = (b'{"event": "caf\xe9"}', b'{"e": "\xed\xb0\x80"}')
    for body in (b"{this is not json", b"[]", b'"invitee.created"', *no_utf8):
        answer = receiver.deliver(body)
        assert answer.status_code == 400, (body, answer.text)
        assert answer.json()["error"].startswith("webhook body is not ")
    assert snapshot(rbapp.database_url) == before
    assert bookings_by_invitee(rbapp) == {}
    parked = {row["invitee_uri"]: row for row in inbox(rbapp, "--pending")}
    assert set(parked) == {invitee_uri(1), invitee_uri(2), None, invitee_uri(4)}
    assert parked[invitee_uri(1)]["last_error"] == (
        "webhook body is invalid: payload.status: Input should be 'active' or 'canceled'"
    )
    assert parked[invitee_uri(1)]["attempts"] == 2
    assert parked[invitee_uri(2)]["last_error"].startswith("webhook body is invalid: payload.email: ")
    assert parked[None]["event"] == "invitee.created"
    assert "payload" in parked[None]["last_error"]
    retried = rbapp("calendly", "webhook", "retry", "--json")
    assert retried.exit_code == 3, retried.stderr
    assert {row["action"] for row in retried.json()} == {"skipped"}
    still = {row["invitee_uri"]: row for row in inbox(rbapp, "--pending")}
    assert {uri: row["last_error"] for uri, row in still.items()} == {
        uri: row["last_error"] for uri, row in parked.items()
    }


def test_an_unknown_event_type_is_parked_202_and_applied_after_a_sync(module_receiver: tuple[Bapp, Receiver]) -> None:
    rbapp, receiver = module_receiver
    body = delivery(5, type_index=7)  # ET7 is not synced, and there is no token to fetch it with
    answer = receiver.deliver(body)
    assert answer.status_code == 202, answer.text
    assert answer.json()["status"] == "parked" and type_uri(7) in answer.json()["note"]
    assert receiver.deliver(body).status_code == 202  # a retry is the same parked row
    assert bookings_by_invitee(rbapp) == {}
    [parked] = inbox(rbapp, "--pending")
    assert (parked["event"], parked["source"], parked["invitee_uri"], parked["attempts"]) == (
        "invitee.created",
        "receiver",
        invitee_uri(5),
        2,
    )
    assert "unknown event type" in parked["last_error"]

    listing = rbapp.home / "more_types.json"
    listing.write_text(json.dumps(catalogue(8)))
    synced = rbapp("calendly", "sync", "--from-file", str(listing))
    assert synced.exit_code == 0, synced.stderr
    assert bookings_by_invitee(rbapp)[invitee_uri(5)]["status"] in ("pending", "confirmed")
    assert inbox(rbapp, "--pending") == []
    [applied] = inbox(rbapp)
    assert applied["status"] == "applied" and applied["outcome"].startswith("created BK-")


def test_a_deeply_nested_body_is_read_alike_by_the_receiver_and_by_a_retry(
    module_receiver: tuple[Bapp, Receiver], tmp_path: Path
) -> None:
    rbapp, receiver = module_receiver

    # Python's JSON reader stops at the interpreter's depth less the caller's stack: the receiver's worker thread
    # read (and parked, its type unknown) a body nested 980 deep that `webhook retry` (or `webhook apply`) could
    # not, so it stayed pending as "not valid JSON" after the sync that should have applied it
    def nested(j: int, depth: int) -> bytes:
        text = delivery(j, type_index=7).decode()
        return (text[: text.rindex("}")] + ', "was": ' + "[" * depth + "]" * depth + "}").encode()

    deep, shallower = nested(5, 980), nested(6, 450)
    too_deep = "webhook body is not valid JSON (arrays or objects nested too deeply)"
    refused = receiver.deliver(deep)
    parked = receiver.deliver(shallower)
    assert (refused.status_code, refused.json()["error"]) == (400, too_deep)
    assert parked.status_code == 202, parked.text
    (tmp_path / "deep.json").write_bytes(deep)
    applied = rbapp("calendly", "webhook", "apply", str(tmp_path / "deep.json"), "--signature", signed(deep))
    assert applied.exit_code == 6 and too_deep in applied.stderr, applied.stderr
    listing = rbapp.home / "more_types.json"
    listing.write_text(json.dumps(catalogue(8)))
    assert rbapp("calendly", "sync", "--from-file", str(listing)).exit_code == 0  # which retries the inbox
    assert inbox(rbapp, "--pending") == []
    assert list(bookings_by_invitee(rbapp)) == [invitee_uri(6)]


def test_an_unknown_event_type_is_fetched_on_demand_with_a_token(rbapp: Bapp, fake: FakeCalendly) -> None:
    env = {"CALENDLY_API_KEY": TOKEN, "CALENDLY_API_BASE_URL": fake.base_url}
    with running_receiver(rbapp, env=env) as receiver:
        answer = receiver.deliver(delivery(6, type_index=9))  # the fake knows ET9 (12 types); bapp does not
        assert answer.status_code == 200, answer.text
        assert answer.json()["action"] == "created"
        unknown_to_calendly = receiver.deliver(delivery(7, type_index=77))  # the fake answers 404 for ET77
        assert unknown_to_calendly.status_code == 202, unknown_to_calendly.text
        # a type URI httpx cannot read (an unclosed '['): parked as unfetchable, not a 500 for a day of retries
        unreadable = delivery(8, type_index=88).replace(type_uri(88).encode(), b"https://[::1/event_types/ET88")
        assert receiver.deliver(unreadable).status_code == 202
    _, log = receiver.stop()
    assert f"warning: could not fetch event type {type_uri(77)}: Calendly has no event type" in log
    assert "warning: could not fetch event type https://[::1/event_types/ET88: not a Calendly event_types URI" in log
    assert TOKEN not in log
    assert fake.count(f"/event_types/ET{9:08d}") == 1
    assert invitee_uri(6) in bookings_by_invitee(rbapp)
    sessions = rbapp("sessions", "list", "--json").json()
    assert type_uri(9) in {row["calendly_uri"] for row in sessions}
    assert [entry["invitee_uri"] for entry in inbox(rbapp, "--pending")] == [invitee_uri(8), invitee_uri(7)]


def test_control_characters_removed_from_a_type_fetched_on_demand_are_logged_as_it_is_fetched(
    rbapp: Bapp, fake: FakeCalendly
) -> None:
    # they were kept for the command's end: a receiver said them when it stopped (days later), after its last line
    fake.add_event_type(make_event_type(51, name="Escaped\x1b name"))
    env = {"CALENDLY_API_KEY": TOKEN, "CALENDLY_API_BASE_URL": fake.base_url}
    with running_receiver(rbapp, env=env) as receiver:
        assert receiver.deliver(delivery(6, type_index=51)).json()["action"] == "created"
    code, log = receiver.stop()
    lines = log.splitlines()
    [warned] = [n for n, line in enumerate(lines) if line.startswith("warning: removed control characters")]
    assert type_uri(51) in lines[warned] and "\x1b" not in log
    assert " 200 created " in lines[warned + 1] and (code, lines[-1]) == (0, "bapp webhook receiver stopped"), log


def test_a_delivery_whose_event_type_cannot_be_fetched_is_parked_saying_why_not_to_sync_first(
    rbapp: Bapp, fake: FakeCalendly, tmp_path: Path
) -> None:
    # The receiver (and `webhook apply`) asked Calendly for a type no sync lists and was answered 404 (deleted there)
    # or 403 (the token may not read it): it logged why, but parked the delivery saying "run `bapp calendly sync`
    # first", which brings neither. The parked note now says what the fetch said and the ways out, as the pull's does.
    # One fetched that bapp cannot store (a slug longer than it keeps) said "sync first" too: a sync stores it no more.
    env = {"CALENDLY_API_KEY": TOKEN, "CALENDLY_API_BASE_URL": fake.base_url}
    fake.add_event_type(make_event_type(50, name="x" * 201))
    with running_receiver(rbapp, env=env) as receiver:
        gone = receiver.deliver(delivery(7, type_index=77))  # the fake answers 404 for ET77
        unstorable = receiver.deliver(delivery(9, type_index=50))
    receiver.stop()
    fake.fail_next("/event_types/ET00000008", 403)  # one the fake has (12 types), which the token may not read
    (withheld := tmp_path / "withheld.json").write_bytes(body := delivery(8, type_index=8))
    applied = rbapp("calendly", "webhook", "apply", str(withheld), "--signature", signed(body), "--json", env=env)
    assert (gone.status_code, unstorable.status_code, applied.exit_code) == (202, 202, 3), (gone.text, applied.stderr)
    way_out = "the next pull asks again, or `bapp calendly webhook retry --discard ID` gives the invitee up"
    notes = {row["invitee_uri"]: row["last_error"] for row in inbox(rbapp, "--pending")}
    assert gone.json()["note"].endswith(notes[invitee_uri(7)])
    assert notes[invitee_uri(7)].startswith(
        f"unknown event type {type_uri(77)}; not added from Calendly (Calendly has no event type"
    )
    assert notes[invitee_uri(8)].startswith(f"unknown event type {type_uri(8)}; not added from Calendly (")
    assert "403" in notes[invitee_uri(8)]
    assert notes[invitee_uri(9)].startswith(f"unknown event type {type_uri(50)}; not added from Calendly (")
    assert "slug: 201 characters; at most 200" in notes[invitee_uri(9)]
    assert all(note.endswith(f"); {way_out}") and "sync` first" not in note for note in notes.values()), notes


def test_an_event_type_fetch_trickled_ends_within_calendly_s_15_s(rbapp: Bapp, fake: FakeCalendly) -> None:
    # Each attempt ends at connect + read timeout: with a 4 s connect timeout too, a fetch whose answer trickled
    # took two 8 s attempts and the wait between them, and Calendly, which waits 15 s, counted the delivery failed
    env = {"CALENDLY_API_KEY": TOKEN, "CALENDLY_API_BASE_URL": fake.base_url}
    fake.trickle_next(f"/event_types/ET{9:08d}", "head", times=None)
    with running_receiver(rbapp, env=env) as receiver:
        started = time.monotonic()
        answer = receiver.deliver(delivery(6, type_index=9))
        took = time.monotonic() - started
        assert answer.status_code == 202, answer.text  # parked, to be applied once the type is synced
    _, log = receiver.stop()
    assert "could not fetch event type" in log and "no complete response within 5 s" in log, log
    assert fake.count(f"/event_types/ET{9:08d}") == 2
    assert took < 15, took


def test_an_unknown_event_type_is_fetched_with_no_transaction_of_the_delivery_open(
    rbapp: Bapp, fake: FakeCalendly
) -> None:
    # the type is looked up in the delivery's own transaction (one at-head read a delivery): the fetch that follows,
    # which may take seconds, must wait for that transaction's end, or SQLite's write lock (BEGIN IMMEDIATE) or a
    # PostgreSQL transaction is held over the network call and every other writer waits for Calendly
    env = {"CALENDLY_API_KEY": TOKEN, "CALENDLY_API_BASE_URL": fake.base_url}
    path = f"/event_types/ET{9:08d}"
    held = fake.delay_next(path, seconds=3)  # under the receiver's 4 s deadline: released once checked
    # connected before the delivery, so that the check while the fetch is held is one statement
    sqlite = rbapp.database_url.startswith("sqlite")
    writer = sqlite3.connect(rbapp.database_url.removeprefix("sqlite:///"), timeout=0) if sqlite else None
    engine = create_engine(rbapp.database_url)
    try:
        with running_receiver(rbapp, env=env) as receiver, ThreadPoolExecutor(1) as pool, engine.connect() as watcher:
            answer = pool.submit(receiver.deliver, delivery(6, type_index=9))
            eventually(lambda: fake.count(path) == 1, "the receiver to ask Calendly for the type")
            try:
                if writer is not None:
                    writer.execute("BEGIN IMMEDIATE")  # "database is locked" while another write is open
                    writer.rollback()
                else:
                    open_elsewhere = (
                        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND"
                        " pid <> pg_backend_pid() AND backend_type = 'client backend' AND xact_start IS NOT NULL"
                    )
                    assert watcher.execute(text(open_elsewhere)).scalar_one() == 0
                assert not answer.done(), "the fetch was answered before the check: nothing was checked"
            finally:
                held.released.set()
            assert (answer.result(timeout=30).json()["action"]) == "created"
    finally:
        if writer is not None:
            writer.close()
        engine.dispose()
    assert invitee_uri(6) in bookings_by_invitee(rbapp)


def _hold_write_lock(database_url: str) -> tuple[Any, Any]:
    """Take the lock every webhook apply needs and keep it: a SQLite write lock, or the advisory lock."""
    if database_url.startswith("sqlite"):
        connection = sqlite3.connect(database_url.removeprefix("sqlite:///"), isolation_level=None)
        connection.execute("BEGIN IMMEDIATE")
        return connection, None
    engine = create_engine(database_url)
    connection = engine.connect()
    connection.execute(text("SELECT pg_advisory_lock(:k)"), {"k": lock_id("calendly:bookings")})
    return connection, engine


def test_a_sender_stalled_mid_body_holds_no_worker(rbapp: Bapp) -> None:
    # the body is read on the event loop, before a worker (a database thread) is asked: with one worker, a sender
    # that stops halfway (a byte a second, or gone) does not hold up the next delivery, nor the health check
    stalled, other = delivery(1), delivery(2)
    head = f"POST {PATH} HTTP/1.1\r\nHost: bapp\r\nContent-Type: application/json\r\n"
    head += f"Calendly-Webhook-Signature: {signed(stalled)}\r\nContent-Length: {len(stalled)}\r\n\r\n"
    with running_receiver(rbapp, "--workers", "1") as receiver:
        with socket.create_connection(("127.0.0.1", receiver.port), timeout=30) as sender:
            sender.sendall(head.encode() + stalled[: len(stalled) // 2])
            answer = receiver.deliver(other)
            assert (answer.status_code, answer.json()["action"]) == (200, "created"), answer.text
            health = receiver.http.get(receiver.base + "/healthz")
            assert health.status_code == 200, health.text
        assert list(bookings_by_invitee(rbapp)) == [invitee_uri(2)] and inbox(rbapp) == []


def test_the_health_check_is_not_queued_behind_deliveries_waiting_on_a_lock(rbapp: Bapp) -> None:
    # it asked the deliveries' pool: with every worker waiting on a lock, a monitor's probe waited out their
    # --busy-timeout (one after another) and called a receiver that was only busy dead
    body = delivery(1)
    head = f"POST {PATH} HTTP/1.1\r\nHost: bapp\r\nConnection: close\r\nCalendly-Webhook-Signature: {signed(body)}\r\n"
    connection, engine = _hold_write_lock(rbapp.database_url)
    try:
        with running_receiver(rbapp, "--workers", "1", "--busy-timeout", "40") as receiver:
            with socket.create_connection(("127.0.0.1", receiver.port), timeout=30) as sender:
                sender.sendall(f"{head}Content-Length: {len(body)}\r\n\r\n".encode() + body)
                health = receiver.http.get(receiver.base + "/healthz", timeout=20)
                assert health.status_code == 200 and readable([sender], [], [], 0)[0] == [], health.text
                connection.close()  # the lock let go (PostgreSQL's with its session): the delivery, waiting all along,
                if engine is not None:  # is applied
                    engine.dispose()
                assert _answer_until_closed(sender).startswith(b"HTTP/1.1 200 OK"), receiver.stop()[1]
    finally:
        connection.close()
        if engine is not None:
            engine.dispose()
    assert list(bookings_by_invitee(rbapp)) == [invitee_uri(1)]


# a sender that sends its head and 10 bytes of the 1,000 it declares, then nothing
STALLED = f"POST {PATH} HTTP/1.1\r\nHost: bapp\r\nContent-Length: 1000\r\n\r\n".encode() + b'{"event":'


def _answer_until_closed(sender: socket.socket) -> bytes:
    answer = b""
    while chunk := sender.recv(4096):
        answer += chunk
    return answer


def test_a_sender_stalled_mid_body_is_answered_408_at_the_read_timeout_and_writes_nothing(rbapp: Bapp) -> None:
    with running_receiver(rbapp, "--read-timeout", "0.5") as receiver:
        with socket.create_connection(("127.0.0.1", receiver.port), timeout=10) as sender:
            sender.sendall(STALLED)
            started = time.monotonic()
            answer = _answer_until_closed(sender)  # the receiver closes the connection after its answer
            assert time.monotonic() - started < 5
        assert answer.startswith(b"HTTP/1.1 408 ") and answer.endswith(b'{"error": "body not sent within 0.5 s"}')
        assert bookings_by_invitee(rbapp) == {} and inbox(rbapp) == []
        assert receiver.deliver(delivery(2)).status_code == 200
    code, log = receiver.stop()
    assert code == 0 and f'"POST {PATH}" 408 408 ' in log, log


def test_a_request_head_sent_slowly_or_not_at_all_is_answered_408_at_the_read_timeout(rbapp: Bapp) -> None:
    # a head had no deadline: a sender adding a header byte every 0.1 s, or one sending nothing, held its connection
    # until 100 others came; now a head must be in within --read-timeout of the connection's opening, or of its
    # first byte for a later request on a kept-alive connection
    with running_receiver(rbapp, "--read-timeout", "1") as receiver:
        silent = socket.create_connection(("127.0.0.1", receiver.port), timeout=10)
        with silent, socket.create_connection(("127.0.0.1", receiver.port), timeout=10) as sender:
            sender.sendall(b"GET /healthz HTTP/1.1\r\nHost: bapp\r\n\r\n")  # answered, then kept alive: the next
            health = b""  # request's head has its deadline from its first byte
            while not health.endswith(b'{"status": "ok"}'):
                health += (chunk := sender.recv(4096))
                assert chunk, health
            sender.sendall(f"POST {PATH} HTTP/1.1\r\nHost: bapp\r\nX-Slow: ".encode())
            started = time.monotonic()
            while not readable([sender], [], [], 0.1)[0]:  # until an answer (or the close) is there to read
                assert time.monotonic() - started < 8, "the head sent slowly was never cut off"
                sender.sendall(b"x")
            for each in (sender, silent):
                assert _answer_until_closed(each).startswith(b"HTTP/1.1 408 Request Timeout\r\nconnection: close\r\n")
        assert receiver.deliver(delivery(2)).status_code == 200
    code, log = receiver.stop()
    assert code == 0 and log.count('"-" 408 head-late') == 2, log
    assert list(bookings_by_invitee(rbapp)) == [invitee_uri(2)] and inbox(rbapp) == []


def test_a_stop_signal_while_a_sender_is_stalled_mid_body_stops_at_once_not_after_the_read_timeout(rbapp: Bapp) -> None:
    # a read timeout past the graceful stop's 30 s: only the stop itself can end the stalled read in time
    receiver = start_receiver(rbapp, "--read-timeout", "60")
    with socket.create_connection(("127.0.0.1", receiver.port), timeout=10) as sender:
        sender.sendall(STALLED)
        # answered after the stalled bytes were in: the receiver has read the stalled request's head by then
        assert receiver.deliver(delivery(2)).status_code == 200
        stopping = time.monotonic()
        receiver.process.send_signal(signal.SIGTERM)
        _, log = receiver.process.communicate(timeout=20)  # uvicorn's graceful stop waited 30 s for it
        assert time.monotonic() - stopping < 10  # "at once", with room for a loaded machine
        assert _answer_until_closed(sender).startswith(b"HTTP/1.1 503 ")
    receiver.http.close()
    assert receiver.process.returncode == 0 and log.splitlines()[-1] == "bapp webhook receiver stopped", log
    assert list(bookings_by_invitee(rbapp)) == [invitee_uri(2)] and inbox(rbapp) == []


def test_sockets_opened_and_left_past_the_file_limit_do_not_lock_a_delivery_out(rbapp: Bapp) -> None:
    # each open connection holds a file descriptor: 300 left open by a hostile or broken sender exhausted the
    # receiver's 256, and a delivery waited in the listen queue for ever; past 100 connections the oldest idle close
    receiver = start_receiver(rbapp)
    resource.prlimit(receiver.process.pid, resource.RLIMIT_NOFILE, (256, resource.getrlimit(resource.RLIMIT_NOFILE)[1]))
    idle = [socket.create_connection(("127.0.0.1", receiver.port), timeout=10) for _ in range(300)]
    try:
        body = delivery(1)
        headers = {"Calendly-Webhook-Signature": signed(body), "content-type": "application/json"}
        answer = httpx.post(receiver.url, content=body, headers=headers, timeout=15)
        assert (answer.status_code, answer.json()["action"]) == (200, "created"), answer.text
        for each in idle:
            each.setblocking(False)

        def still_open(each: socket.socket) -> bool:
            try:
                return each.recv(1) != b""
            except BlockingIOError:
                return True
            except ConnectionResetError:
                return False

        eventually(lambda: sum(map(still_open, idle)) <= 100, "the idlest connections past the limit closed")
    finally:
        for each in idle:
            each.close()
        code, log = receiver.stop()
    assert code == 0, log
    assert list(bookings_by_invitee(rbapp)) == [invitee_uri(1)]


def _receive_queues(receiver: Any) -> list[int]:
    """The receiver's established connections (the kernel's table of TCP sockets, accepted or not yet): how many
    bytes each holds that the receiver has not read. None held: every request head sent to it is parsed."""
    local = f"{socket.htonl(0x7F000001):08X}:{receiver.port:04X}"  # 127.0.0.1, as the kernel prints it
    rows = [row.split() for row in Path("/proc/net/tcp").read_text().splitlines()[1:]]
    return [int(row[4].split(":")[1], 16) for row in rows if row[1] == local and row[3] == "01"]


def _all_read(receiver: Any, connections: int) -> bool:
    return _receive_queues(receiver) == [0] * connections


def test_a_full_house_of_senders_stalled_mid_body_cuts_the_longest_reads_and_lets_a_burst_of_deliveries_in(
    rbapp: Bapp,
) -> None:
    # 100 senders stalled mid-body (each a request being read: busy) had every new connection closed at once until
    # --read-timeout freed one, so re-opening them kept deliveries out for as long as a sender liked; then only the
    # last of a burst of new connections was let in. Now each one cuts the body read for the longest, answered 503
    # (Calendly retries); a delivery already in a worker is never cut
    with running_receiver(rbapp, "--read-timeout", "60", "--busy-timeout", "60", "--workers", "1") as receiver:
        connection, engine = _hold_write_lock(rbapp.database_url)
        stalled: list[socket.socket] = []
        try:
            with ThreadPoolExecutor(max_workers=4) as pool:
                in_worker = pool.submit(receiver.deliver, delivery(1))  # its body read first, then the lock waited for
                eventually(lambda: _all_read(receiver, 1), "the first delivery read")
                for _ in range(MAX_CONNECTIONS - 1):
                    stalled.append(socket.create_connection(("127.0.0.1", receiver.port), timeout=10))
                    stalled[-1].sendall(STALLED)
                    if len(stalled) <= 3:  # the bodies read the longest, in this order
                        eventually(lambda: _all_read(receiver, 1 + len(stalled)), "a stalled head read")
                eventually(lambda: _all_read(receiver, MAX_CONNECTIONS), "every stalled head read")
                receiver.process.send_signal(signal.SIGSTOP)  # so the receiver accepts the burst all at once
                try:
                    burst = [pool.submit(receiver.deliver, delivery(number)) for number in (2, 3, 4)]
                    eventually(lambda: len(_receive_queues(receiver)) == MAX_CONNECTIONS + 3, "the burst queued")
                finally:
                    receiver.process.send_signal(signal.SIGCONT)
                sent = time.monotonic()
                for each in stalled[:3]:
                    assert _answer_until_closed(each).endswith(b'{"error": "over 100 connections; retry"}')
                assert time.monotonic() - sent < 5
                connection.close()
                if engine is not None:
                    engine.dispose()
                for answer in (in_worker, *burst):
                    assert (answer.result().status_code, answer.result().json()["action"]) == (200, "created")
                assert time.monotonic() - sent < 10  # deliveries in flight, not --read-timeout's 60 s
                assert readable(stalled[3:], [], [], 0)[0] == []  # the other senders are still being waited for
        finally:
            connection.close()
            if engine is not None:
                engine.dispose()
            for each in stalled:
                each.close()
    code, log = receiver.stop()
    assert code == 0 and f'"POST {PATH}" 503 503 ' in log, log
    assert sorted(bookings_by_invitee(rbapp)) == sorted(invitee_uri(number) for number in (1, 2, 3, 4))
    assert inbox(rbapp) == []


def test_a_websocket_upgrade_is_answered_as_plain_http_and_logged(rbapp: Bapp) -> None:
    # with a WebSocket library installed (the dev extra has websockets, as uvicorn[standard] brings it), uvicorn
    # handed an `Upgrade: websocket` request to its WebSocket protocol: answered 500 (a bug, by the table), an ERROR
    # line in the log and none in the access log; the receiver has no WebSocket route, so it answers as HTTP
    upgrade = "Connection: Upgrade, close\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\n"
    upgrade += "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
    assert find_spec("websockets"), "without a WebSocket library uvicorn takes no upgrade: this would test nothing"
    body = delivery(1)
    health = f"GET /healthz HTTP/1.1\r\nHost: bapp\r\n{upgrade}\r\n".encode()
    post = f"POST {PATH} HTTP/1.1\r\nHost: bapp\r\n{upgrade}Calendly-Webhook-Signature: {signed(body)}\r\n"
    post += f"Content-Length: {len(body)}\r\n\r\n"
    with running_receiver(rbapp) as receiver:
        for request, answered in [(health, b'{"status": "ok"}'), (post.encode() + body, b'"action": "created"')]:
            with socket.create_connection(("127.0.0.1", receiver.port), timeout=10) as sender:
                sender.sendall(request)
                answer = _answer_until_closed(sender)
            assert answer.startswith(b"HTTP/1.1 200 OK\r\n") and answered in answer, answer
    code, log = receiver.stop()
    assert code == 0 and '"GET /healthz" 200 ok' in log and f'"POST {PATH}" 200 created' in log, log
    assert "ERROR" not in log and "WARNING" not in log  # nor uvicorn's "install a WebSocket library", twice each
    assert list(bookings_by_invitee(rbapp)) == [invitee_uri(1)]


def test_a_database_locked_past_the_busy_timeout_answers_503_and_loses_nothing(rbapp: Bapp) -> None:
    body = delivery(3)
    with running_receiver(rbapp, "--busy-timeout", "0.5") as receiver:
        connection, engine = _hold_write_lock(rbapp.database_url)
        try:
            started = time.monotonic()
            answer = receiver.deliver(body)
            assert answer.status_code == 503, answer.text
            assert answer.headers["retry-after"] == "5"
            assert time.monotonic() - started < 10
        finally:
            connection.close()
            if engine is not None:
                engine.dispose()
        assert bookings_by_invitee(rbapp) == {} and inbox(rbapp) == []
        retried = receiver.deliver(body)  # Calendly retries after a 503
        assert retried.status_code == 200, retried.text
    assert list(bookings_by_invitee(rbapp)) == [invitee_uri(3)]


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)  # sessions waiting on a lock, counted
def test_each_worker_has_a_connection_so_none_waits_for_one_past_the_busy_timeout(rbapp: Bapp) -> None:
    # the pool was SQLAlchemy's (5 + 10): with --workers 20, five deliveries waited for a connection, then for the
    # lock: answered past --busy-timeout, and past the pool's own 30 s a 503 "database not ready" (49 s were seen)
    bodies = [delivery(20 + n) for n in range(20)]
    with running_receiver(rbapp, "--workers", "20", "--busy-timeout", "60") as receiver:
        connection, engine = _hold_write_lock(rbapp.database_url)
        try:
            with ThreadPoolExecutor(max_workers=20) as pool:
                answers = [pool.submit(receiver.deliver, body) for body in bodies]
                waiting, deadline = 0, time.monotonic() + 30
                while waiting < 20 and time.monotonic() < deadline:  # every delivery on a connection of its own
                    time.sleep(0.05)  # a polling cadence, not a wait for anything
                    waiting = connection.execute(
                        text(
                            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
                            " AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
                        )
                    ).scalar_one()
                assert waiting == 20, waiting
                connection.close()
                engine.dispose()  # the session, and its lock, end: each delivery applies in turn
                assert [answer.result().status_code for answer in answers] == [200] * 20
        finally:
            connection.close()
            engine.dispose()
    assert len(bookings_by_invitee(rbapp)) == 20


# SIGHUP: the terminal or SSH session running the receiver closed; Ctrl-C: run in a terminal. Both drain as for
# SIGTERM and exit 0: a Ctrl-C'd receiver said "Interrupted; nothing was changed." (130) of what it had applied.
@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGHUP, signal.SIGINT], ids=["SIGTERM", "SIGHUP", "SIGINT"])
def test_a_stop_signal_during_a_burst_keeps_every_2xx_and_answers_the_rest_non_2xx(rbapp: Bapp, stop: int) -> None:
    bodies = [delivery(100 + n, type_index=n % 3) for n in range(200)]
    # a suite started in the background ignores SIGINT, and so would the child: see test_interrupt.py
    saved = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        receiver = start_receiver(rbapp)
    finally:
        signal.signal(signal.SIGINT, saved)
    answers: dict[int, int | str] = {}
    sent = threading.Event()

    def send(n: int) -> None:
        try:
            with httpx.Client(timeout=60, verify=SENDER_TLS) as client:
                body = bodies[n]
                headers = {"Calendly-Webhook-Signature": signed(body), "content-type": "application/json"}
                answers[n] = client.post(receiver.url, content=body, headers=headers).status_code
        except httpx.TransportError as exc:  # refused once the listener is closed: Calendly retries
            answers[n] = type(exc).__name__
        finally:
            if len(answers) >= 20:
                sent.set()

    with ThreadPoolExecutor(max_workers=32) as pool:
        futures = [pool.submit(send, n) for n in range(200)]
        assert sent.wait(60), "the burst never got going"
        receiver.process.send_signal(stop)
        for future in futures:
            future.result(timeout=120)
    _, log = receiver.process.communicate(timeout=60)  # drained and stopped by that one signal
    receiver.http.close()
    assert receiver.process.returncode == 0, log
    assert log.splitlines()[-1] == "bapp webhook receiver stopped"
    assert len(answers) == 200  # every delivery got an answer or a refused connection; none hung
    accepted = {n for n, status in answers.items() if isinstance(status, int) and 200 <= status < 300}
    others = {n: status for n, status in answers.items() if n not in accepted}
    assert accepted and others, answers  # the stop came mid-burst: some let in (~50 seen), the rest turned away
    assert all(status == 503 or isinstance(status, str) for status in others.values()), others
    rows = bookings_by_invitee(rbapp)
    assert {invitee_uri(100 + n) for n in accepted} <= set(rows)
    # what is in the database was answered 2xx, or was being answered when the connection closed
    assert len(rows) >= len(accepted)


def _listening(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=5).close()
    except ConnectionRefusedError:
        return False
    return True


def test_deliveries_in_workers_when_a_second_ctrl_c_forces_the_stop_are_answered_503_not_500(rbapp: Bapp) -> None:
    # uvicorn cancels what still runs (a second Ctrl-C; the graceful stop's 30 s past): the cancel reached a delivery
    # waiting on its worker, and uvicorn answered it 500, "a bug in bapp", logging a traceback for each
    saved = signal.signal(signal.SIGINT, signal.default_int_handler)  # as in the burst test above
    try:
        receiver = start_receiver(rbapp, "--workers", "3", "--busy-timeout", "3")
    finally:
        signal.signal(signal.SIGINT, saved)
    bodies = [delivery(1), delivery(2)]
    connection, engine = _hold_write_lock(rbapp.database_url)
    try:
        senders = [socket.create_connection(("127.0.0.1", receiver.port), timeout=30) for _ in bodies]
        for sender, body in zip(senders, bodies, strict=True):
            head = f"POST {PATH} HTTP/1.1\r\nHost: bapp\r\nCalendly-Webhook-Signature: {signed(body)}\r\n"
            sender.sendall(f"{head}Content-Length: {len(body)}\r\n\r\n".encode() + body)
        # answered once the two deliveries, sent before it, are in their workers waiting on the lock
        assert receiver.http.get(receiver.base + "/healthz").status_code == 200
        receiver.process.send_signal(signal.SIGINT)
        # two signals sent at once may arrive as one: the second is sent once the first has closed the listener
        eventually(lambda: not _listening(receiver.port), "the first Ctrl-C to close the listener")
        receiver.process.send_signal(signal.SIGINT)
        answers = [_answer_until_closed(sender).split(b"\r\n", 1)[0] for sender in senders]
        _, log = receiver.process.communicate(timeout=60)
    finally:
        connection.close()
        if engine is not None:
            engine.dispose()
    receiver.http.close()
    assert answers == [b"HTTP/1.1 503 Service Unavailable"] * 2, log
    assert receiver.process.returncode == 0 and "Traceback" not in log, log
    assert bookings_by_invitee(rbapp) == {} and inbox(rbapp) == []


# PostgreSQL alone: SQLite's WAL lets a read through every lock another connection can take of an open database,
# so no health check there waits on the database to be cancelled
@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_a_health_check_waiting_on_the_database_when_a_second_ctrl_c_forces_the_stop_is_answered_503(
    rbapp: Bapp,
) -> None:
    # as a delivery in its worker is (above): uvicorn answered the cancel 500 and logged a traceback
    saved = signal.signal(signal.SIGINT, signal.default_int_handler)  # as in the burst test above
    try:
        receiver = start_receiver(rbapp, "--busy-timeout", "20")
    finally:
        signal.signal(signal.SIGINT, saved)
    import psycopg

    holder = psycopg.connect(rbapp.database_url.replace("+psycopg", ""))  # a psql session's ALTER TABLE, held
    holder.execute("SET idle_in_transaction_session_timeout = '60s'")  # never outlives a test that failed
    holder.execute("LOCK TABLE alembic_version IN ACCESS EXCLUSIVE MODE")
    try:
        with socket.create_connection(("127.0.0.1", receiver.port), timeout=30) as prober:
            prober.sendall(b"GET /healthz HTTP/1.1\r\nHost: bapp\r\n\r\n")
            # answered on the event loop once the health check, sent before it, waits on the database in its thread
            assert receiver.http.get(receiver.base + "/elsewhere").status_code == 404
            receiver.process.send_signal(signal.SIGINT)
            eventually(lambda: not _listening(receiver.port), "the first Ctrl-C to close the listener")
            receiver.process.send_signal(signal.SIGINT)
            answer = _answer_until_closed(prober).split(b"\r\n", 1)[0]
        holder.close()  # the check's thread, which the stop waits for, gets its answer
        _, log = receiver.process.communicate(timeout=60)
    finally:
        holder.close()
    receiver.http.close()
    assert answer == b"HTTP/1.1 503 Service Unavailable", log
    assert receiver.process.returncode == 0 and "Traceback" not in log and '"GET /healthz" 503 stopped' in log, log


def test_an_address_in_use_is_exit_4_in_one_line_and_never_said_to_listen(rbapp: Bapp) -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = str(taken.getsockname()[1])
        result = rbapp.process("calendly", "webhook", "serve", "--port", port, timeout=60)
    assert result.exit_code == 4, result.stderr
    assert result.stderr.splitlines()[0] == f"Error: cannot listen on 127.0.0.1:{port} (Address already in use)"
    assert "listening" not in result.stderr and "Traceback" not in result.stderr
    unknown = rbapp.process("calendly", "webhook", "serve", "--host", "no-such-host.invalid", timeout=60)
    assert unknown.exit_code == 4 and unknown.stderr.startswith("Error: --host: cannot listen on"), unknown.stderr


def test_no_show_deliveries_mark_and_unmark_the_booking(rbapp: Bapp, tmp_path: Path) -> None:
    past = dt.datetime(2025, 6, 2, 9, 0, tzinfo=dt.UTC)

    def apply(body: bytes) -> dict[str, Any]:
        path = tmp_path / f"body-{time.monotonic_ns()}.json"
        path.write_bytes(body)
        result = rbapp("calendly", "webhook", "apply", str(path), "--signature", signed(body), "--json")
        assert result.exit_code == 0, result.stderr
        return dict(result.json())

    def at(hours: int) -> dt.datetime:
        return BOOKED + dt.timedelta(hours=hours)

    # the no-show arrives before its booking: the booking is created, then marked
    mark = delivery(8, event_name="invitee_no_show.created", no_show=True, start=past, sent_at=at(1))
    marked = apply(mark)
    assert (marked["event"], marked["action"], marked["booking_status"]) == (
        "invitee_no_show.created",
        "no_show",
        "no_show",
    )
    assert apply(mark)["action"] == "unchanged"
    unmarked = apply(delivery(8, event_name="invitee_no_show.deleted", start=past, sent_at=at(2)))
    assert (unmarked["action"], unmarked["booking_status"]) == ("updated", "completed")  # the session is over
    # Calendly retries the .created after its .deleted was applied: older, so the mark stays taken back
    late = apply(mark)
    assert (late["action"], late["booking_status"]) == ("unchanged", "completed")
    future = apply(delivery(9))
    assert future["booking_status"] == "confirmed"
    # out of order the other way: the .deleted first, then its (older) .created
    assert apply(delivery(9, event_name="invitee_no_show.deleted", sent_at=at(2)))["booking_status"] == "confirmed"
    early = apply(delivery(9, event_name="invitee_no_show.created", no_show=True, sent_at=at(1)))
    assert early["booking_status"] == "confirmed"
    rows = bookings_by_invitee(rbapp)
    assert (rows[invitee_uri(8)]["status"], rows[invitee_uri(9)]["status"]) == ("completed", "confirmed")
    # a mark made in Calendly is kept with its URI, so `bookings no-show --undo` can delete it there
    apply(delivery(11, event_name="invitee_no_show.created", no_show=True, start=past, sent_at=at(1)))
    engine = make_engine(rbapp.database_url)
    try:
        with engine.connect() as connection:
            kept_uri = connection.execute(
                select(Booking.calendly_no_show_uri).where(Booking.calendly_invitee_uri == invitee_uri(11))
            ).scalar_one()
    finally:
        engine.dispose()
    assert kept_uri == f"{API_ORIGIN}/invitee_no_shows/NS{11:08d}"
    cancelled = apply(delivery(10, cancelled_at=BOOKED + dt.timedelta(days=1)))
    assert cancelled["booking_status"] == "cancelled"
    kept = apply(delivery(10, event_name="invitee_no_show.created", no_show=True, cancelled_at=BOOKED))
    assert kept["booking_status"] == "cancelled" and kept["warnings"]


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)  # several receivers: a PostgreSQL setup
def test_two_receivers_on_one_postgresql_agree_with_applying_in_order(
    rbapp: Bapp, tmp_path: Path, sqlite_template: Path
) -> None:
    # 100 invitees: each created; the odd ones later cancelled, the even ones' creates sent twice. 250 (1,000 posts)
    # took ~2.5 times the CPU for the same cases: 400 posts from 16 senders still meet each other in both
    # receivers, and with the `calendly:bookings` and client locks gone they are answered 503.
    deliveries: list[bytes] = []
    for j in range(1, 101):
        deliveries.append(delivery(j, type_index=j % 3))
        if j % 2:
            deliveries.append(delivery(j, type_index=j % 3, cancelled_at=BOOKED + dt.timedelta(days=1, minutes=j)))
        else:
            deliveries.append(delivery(j, type_index=j % 3))
    assert len(deliveries) == 200

    # the reference: the same deliveries applied once, in order, by `webhook apply` on a fresh database
    reference = Bapp(f"sqlite:///{tmp_path / 'reference.db'}", tmp_path / "reference")
    (tmp_path / "reference.db").write_bytes(sqlite_template.read_bytes())
    reference.env["CALENDLY_WEBHOOK_SIGNING_KEY"] = KEY
    listing = tmp_path / "types.json"
    listing.write_text(json.dumps(catalogue(3)))
    assert reference("calendly", "sync", "--from-file", str(listing)).exit_code == 0
    reference_engine = make_engine(reference.database_url)
    pattern = pathway_question_pattern(None)
    try:
        for body in deliveries:  # in order, one transaction each, through the same service as the receiver
            with unit_of_work(reference_engine) as session:
                receive_delivery(
                    session, body, parse_webhook(body), source="apply", headers={}, now=BOOKED, pathway_question=pattern
                )
    finally:
        reference_engine.dispose()

    # every delivery goes to both receivers (as when a relay fans out, or Calendly retries one that the
    # other answered too late), all 400 posts in one random order
    shuffled = [(n, body) for n in (0, 1) for body in deliveries]
    random.Random(14).shuffle(shuffled)
    with running_receiver(rbapp) as one, running_receiver(rbapp) as two:

        def send(pair: tuple[int, bytes]) -> int:
            n, body = pair
            receiver = (one, two)[n]
            with httpx.Client(timeout=60, verify=SENDER_TLS) as client:
                headers = {"Calendly-Webhook-Signature": signed(body)}
                return client.post(receiver.url, content=body, headers=headers).status_code

        with ThreadPoolExecutor(max_workers=16) as pool:
            statuses = list(pool.map(send, shuffled))
    assert len(statuses) == 400 and set(statuses) == {200}

    def final(app: Bapp) -> dict[str, tuple[Any, ...]]:
        engine = make_engine(app.database_url)
        try:
            with engine.connect() as connection:
                rows = connection.execute(
                    text(
                        "SELECT b.calendly_invitee_uri, b.status, b.start_time, b.cancellation_reason, u.email,"
                        " t.calendly_uri FROM bookings b JOIN users u ON u.id = b.client_id"
                        " JOIN session_types t ON t.id = b.session_type_id"
                    )
                ).all()
        finally:
            engine.dispose()
        return {row[0]: (row[1], str(row[2])[:19], *row[3:]) for row in rows}

    expected = final(reference)
    assert len(expected) == 100
    assert final(rbapp) == expected


def _stamp(database_url: str, revision: str) -> None:
    engine = make_engine(database_url)
    try:
        with engine.begin() as connection:
            connection.execute(text("UPDATE alembic_version SET version_num = :r"), {"r": revision})
    finally:
        engine.dispose()


def test_a_database_not_at_head_parks_the_delivery_202_until_it_is(rbapp: Bapp) -> None:
    body = delivery(4)
    # A new bapp installed before `bapp db upgrade` ran: the database is one revision behind (the inbox
    # table itself is older than head, so it is there).
    previous = ScriptDirectory(str(script_location())).get_revision(HEAD_REVISION).down_revision
    assert isinstance(previous, str)
    _stamp(rbapp.database_url, previous)
    with running_receiver(rbapp) as receiver:
        health = receiver.http.get(receiver.base + "/healthz")
        assert health.status_code == 503 and "not at head" in health.json()["reason"]
        answer = receiver.deliver(body)
        assert answer.status_code == 202, answer.text
        assert "database not ready" in answer.json()["note"]
    _stamp(rbapp.database_url, HEAD_REVISION)
    assert bookings_by_invitee(rbapp) == {}
    [parked] = inbox(rbapp, "--pending")
    assert (parked["invitee_uri"], parked["source"]) == (invitee_uri(4), "receiver")
    retried = rbapp("calendly", "webhook", "retry", "--json")
    assert retried.exit_code == 0, retried.stderr
    assert [(row["id"], row["action"]) for row in retried.json()] == [(parked["id"], "created")]
    assert list(bookings_by_invitee(rbapp)) == [invitee_uri(4)]
    assert inbox(rbapp, "--pending") == []


def test_a_database_not_at_head_parks_a_delivery_of_an_unknown_type_without_asking_calendly(
    rbapp: Bapp, fake: FakeCalendly
) -> None:
    # with a token, the receiver fetched the delivery's unknown event type from Calendly before its at-head check
    # parked the delivery: a request to Calendly (up to 4 s of the 15 Calendly waits) for a type it then never
    # stored, of a delivery bapp would not apply to a schema it does not know
    previous = ScriptDirectory(str(script_location())).get_revision(HEAD_REVISION).down_revision
    assert isinstance(previous, str)
    _stamp(rbapp.database_url, previous)
    env = {"CALENDLY_API_KEY": TOKEN, "CALENDLY_API_BASE_URL": fake.base_url}
    with running_receiver(rbapp, env=env) as receiver:
        answer = receiver.deliver(delivery(6, type_index=9))  # the fake knows ET9 (12 types); bapp does not
    assert answer.status_code == 202, answer.text
    assert "database not ready" in answer.json()["note"]
    assert fake.requests == []
    _stamp(rbapp.database_url, HEAD_REVISION)
    assert [entry["invitee_uri"] for entry in inbox(rbapp, "--pending")] == [invitee_uri(6)]


def test_a_database_migrated_while_the_receiver_runs_parks_what_comes_after_202(rbapp: Bapp) -> None:
    # the receiver asked whether the database was at head until it once was: a newer bapp's `db upgrade` run
    # while it ran (before the service was restarted) had it apply deliveries to a schema it does not know
    with running_receiver(rbapp) as receiver:
        assert receiver.deliver(delivery(1)).status_code == 200
        _stamp(rbapp.database_url, "f00dfacef00d")  # a revision this bapp has never heard of
        try:
            answer = receiver.deliver(delivery(2))
            health = receiver.http.get(receiver.base + "/healthz")
        finally:
            _stamp(rbapp.database_url, HEAD_REVISION)
        assert answer.status_code == 202, answer.text
        assert "made by a newer bapp" in answer.json()["note"]
        assert health.status_code == 503
        assert receiver.deliver(delivery(3)).status_code == 200  # at head again
    assert set(bookings_by_invitee(rbapp)) == {invitee_uri(1), invitee_uri(3)}
    assert [entry["invitee_uri"] for entry in inbox(rbapp, "--pending")] == [invitee_uri(2)]


def _answers_only_unreachable(receiver: Any) -> None:
    """/healthz says no more than that the database is unreachable, and a delivery is 503."""
    health = receiver.http.get(receiver.base + "/healthz")
    assert (health.status_code, health.json()) == (
        503,
        {"status": "unavailable", "reason": "the database is unreachable"},
    )
    assert receiver.deliver(delivery(1)).status_code == 503


def test_the_health_check_of_an_unreachable_database_names_no_host_port_or_password(bapp: Bapp) -> None:
    # nothing listens on port 1: the connection is refused, and psycopg's error names the host and port
    unreachable = "postgresql://bapp:hunter2secret@127.0.0.1:1/bapp"
    with running_receiver(
        bapp, env={"BAPP_DATABASE_URL": unreachable, "CALENDLY_WEBHOOK_SIGNING_KEY": KEY}
    ) as receiver:
        _answers_only_unreachable(receiver)
    _, log = receiver.stop()
    assert "hunter2secret" not in log and "unhealthy" in log


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)  # a login SQLite does not have
def test_the_health_check_of_a_database_refusing_the_login_names_no_host_port_or_user(rbapp: Bapp) -> None:
    # the refusal's message is libpq's: 'connection to server at "127.0.0.1", port N failed: FATAL: password
    # authentication failed for user "…"', and it carries a hint, which let it through to anyone asking
    from sqlalchemy.engine import make_url

    url = make_url(rbapp.database_url)
    wrong = url.set(password="not-the-password").render_as_string(hide_password=False)
    with running_receiver(rbapp, env={"BAPP_DATABASE_URL": wrong}) as receiver:
        _answers_only_unreachable(receiver)
    _, log = receiver.stop()
    assert "unhealthy" in log and "not-the-password" not in log


def test_the_access_log_shows_control_characters_of_a_request_path_escaped(rbapp: Bapp) -> None:
    # an unauthenticated request's path went to the log raw: a terminal title escape, and a newline that
    # forged a log line of the caller's choosing
    import socket

    receiver = start_receiver(rbapp)
    with socket.create_connection(("127.0.0.1", receiver.port), timeout=30) as connection:
        connection.sendall(b"GET /%1b]0;pwned%07/x%0a127.0.0.1%20FORGED HTTP/1.1\r\nHost: x\r\n\r\n")
        assert connection.recv(1000).startswith(b"HTTP/1.1 404")
    code, stderr = receiver.stop()
    assert code == 0, stderr
    assert "\x1b" not in stderr and "\x07" not in stderr
    assert not any(line.startswith("127.0.0.1 FORGED") for line in stderr.splitlines())
    [line] = [line for line in stderr.splitlines() if "pwned" in line]
    assert line.startswith('127.0.0.1 "GET /') and line.endswith("404 404 " + line.rsplit(" ", 1)[1])


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)  # HTTP and the log: no backend's own
def test_a_second_signature_header_and_a_number_past_python_s_digits_are_refused_saying_why_in_the_log(
    rbapp: Bapp,
) -> None:
    # The headers were a dict, the last of a name kept: a forged signature header, then a valid one, was applied
    # (200); and a body with a 5,000-digit number was "not valid JSON (ValueError)", with "400 invalid" in the log
    # and no why. And --path was printed raw, its control characters reaching the terminal.
    receiver = start_receiver(rbapp, "--path", "/calendly/w\x1b]0;t\x07é%41")
    url = f"{receiver.base}/calendly/w%1B%5D0;t%07%C3%A9A"  # as the listening line spells it, and uvicorn matches it
    before = snapshot(rbapp.database_url)
    body = delivery(1)
    forged = f"t={int(time.time())},v1={'0' * 64}"
    for headers in ([forged, signed(body)], [signed(body), forged]):
        answer = receiver.http.post(url, content=body, headers=[(SIGNATURE, each) for each in headers])
        assert answer.status_code == 401, answer.text
        assert answer.json()["error"].endswith("repeats 't' (a delivery has one signature, in one header)")
    huge = b'{"event": "invitee.created", "n": ' + b"1" * 5000 + b"}"
    answer = receiver.http.post(url, content=huge, headers={SIGNATURE: signed(huge)})
    too_long = "webhook body is not valid JSON (a number longer than 4300 digits)"
    assert (answer.status_code, answer.json()["error"]) == (400, too_long)
    assert snapshot(rbapp.database_url) == before
    assert receiver.http.post(url, content=body, headers={SIGNATURE: signed(body)}).status_code == 200
    code, log = receiver.stop()
    assert code == 0, log
    assert log.splitlines()[0] == f"bapp webhook receiver listening on {url}"
    assert "\x1b" not in log and "\x07" not in log
    posts = [line.split('" ', 1)[1].rsplit(" ", 1)[0] for line in log.splitlines() if '"POST ' in line]
    assert posts == [
        *["401 refused (Calendly-Webhook-Signature repeats 't' (a delivery has one signature, in one header))"] * 2,
        f"400 invalid ({too_long})",
        "200 created",
    ]


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)  # the key file: no backend's own
def test_a_signing_key_file_rewritten_rotates_the_key_with_no_restart_and_a_bad_one_keeps_the_old(
    rbapp: Bapp, tmp_path: Path
) -> None:
    # The key was read once, at the start: rotating it meant a restart, and until then every delivery signed with
    # the new key was answered 401.
    key_file = tmp_path / "signing-key"
    new_key = "whsec-the-rotated-key-9876543210"
    key_file.write_text(KEY + "\n")
    set_file = rbapp("config", "set", "calendly.webhook_signing_key_file", str(key_file))
    assert set_file.exit_code == 0, set_file.stderr
    receiver = start_receiver(rbapp, env={"CALENDLY_WEBHOOK_SIGNING_KEY": None})

    def answer(j: int, key: str) -> int:
        body = delivery(j)
        return receiver.post(body, signed(body, key=key)).status_code

    assert answer(1, KEY) == 200
    key_file.write_text(new_key + "\n")
    assert (answer(2, new_key), answer(3, KEY)) == (200, 401)
    key_file.write_bytes(b"\xff not UTF-8")  # a bad key: the one in use stays, and the log says why, once
    assert (answer(4, new_key), answer(5, new_key), answer(6, KEY)) == (200, 200, 401)
    key_file.unlink()
    assert (answer(7, new_key), answer(8, new_key)) == (200, 200)
    key_file.write_text(new_key)  # read again, then gone again: said again
    assert answer(9, new_key) == 200
    key_file.unlink()
    assert answer(10, new_key) == 200
    code, log = receiver.stop()
    assert code == 0, log
    assert sorted(bookings_by_invitee(rbapp)) == sorted(invitee_uri(j) for j in (1, 2, 4, 5, 7, 8, 9, 10))
    warnings = [line for line in log.splitlines() if line.startswith("warning: ")]
    kept = "warning: signing key not read again, the one read before is kept: "
    assert warnings == [
        "warning: the signing key changed: deliveries are verified with the new one",
        f"{kept}calendly.webhook_signing_key_file {key_file} is not UTF-8 text",
        *[f"{kept}cannot read calendly.webhook_signing_key_file {key_file}: No such file or directory"] * 2,
    ]
    assert KEY not in log and new_key not in log


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)  # the listening line: no backend's own
def test_the_listening_line_brackets_an_ipv6_host_into_a_url_that_answers(rbapp: Bapp) -> None:
    # It said "http://::1:8787/calendly/webhook", which no client takes for a URL.
    with socket.socket(socket.AF_INET6) as probe:  # a port free on ::1 (free_port's is free on 127.0.0.1)
        probe.bind(("::1", 0))
        port = probe.getsockname()[1]
    process = rbapp.popen("calendly", "webhook", "serve", "--host", "::1", "--port", str(port))
    assert process.stderr is not None
    url = process.stderr.readline().removeprefix("bapp webhook receiver listening on ").rstrip("\n")
    assert url == f"http://[::1]:{port}/calendly/webhook"
    # the delivery path, reached at the URL as printed (the socket listens before the line: the request waits for it)
    assert httpx.post(url, content=b"{}", timeout=60).status_code == 401
    process.terminate()
    assert process.wait(timeout=60) == 0


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)  # SQLite has no server to lose
def test_pooled_connections_the_server_dropped_are_replaced_not_answered_503(rbapp: Bapp) -> None:
    # PostgreSQL restarted (or failed over, or its idle_session_timeout ended the receiver's idle sessions) while
    # the receiver ran: the database was up again, yet the next health check answered 503 "unreachable" with a
    # traceback in the log, and the next delivery 503, each on a pooled connection the server had closed
    with running_receiver(rbapp) as receiver:
        assert receiver.deliver(delivery(1)).status_code == 200
        engine = create_engine(rbapp.database_url)
        try:
            with engine.connect() as connection:  # waits (up to 30 s) until each of them has ended
                ended = connection.execute(
                    text(
                        "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid, 30000)) FROM pg_stat_activity"
                        " WHERE datname = current_database() AND pid <> pg_backend_pid()"
                    )
                ).scalar_one()
        finally:
            engine.dispose()
        assert ended >= 1
        health = receiver.http.get(receiver.base + "/healthz")
        assert (health.status_code, health.json()) == (200, {"status": "ok"})
        assert receiver.deliver(delivery(2)).status_code == 200
    code, log = receiver.stop()
    assert code == 0 and "Traceback" not in log, log
    assert set(bookings_by_invitee(rbapp)) == {invitee_uri(1), invitee_uri(2)}


@pytest.mark.parametrize("second_database_url", ["sqlite"], indirect=True)  # the refusal is import's, on either
def test_a_parked_deliverys_headers_are_kept_without_control_characters_so_its_backup_restores(
    rbapp: Bapp, tmp_path: Path, second_database_url: str
) -> None:
    # the kept headers are the sender's text, and not signed: stored with an ESC, a C1 control or a DEL in them,
    # `export all` wrote them and `import all` refused the inbox row, so the backup did not restore
    import socket

    body = delivery(5, type_index=77)  # an event type bapp does not know: parked
    head = f"POST {PATH} HTTP/1.1\r\nHost: x\r\nCalendly-Webhook-Signature: {signed(body)}\r\n"
    head += f"Content-Length: {len(body)}\r\nConnection: close\r\n"
    receiver = start_receiver(rbapp)
    with socket.create_connection(("127.0.0.1", receiver.port), timeout=30) as connection:
        connection.sendall(head.encode() + b"User-Agent: Calendly\x1b[2J\x85\r\nX-Request-Id: a\x7fb\r\n\r\n" + body)
        assert connection.recv(1000).startswith(b"HTTP/1.1 202")
    code, log = receiver.stop()
    assert code == 0, log
    restored, _ = restore_backup(rbapp, second_database_url, tmp_path, "--json")
    [kept] = [row["headers"] for row in json.loads((tmp_path / "backup.json").read_text())["webhook_inbox"]]
    assert (kept["user-agent"], kept["x-request-id"]) == ("Calendly[2J", "ab")
    assert [row["invitee_uri"] for row in inbox(restored, "--pending")] == [invitee_uri(5)]


def _restored_as_an_older_bapp_parked_it(
    rbapp: Bapp, tmp_path: Path, second_database_url: str, stored: Callable[[Any], None]
) -> dict[str, Any]:
    """Park a delivery, give its inbox row what `stored` sets (as an older bapp stored it), back it up and restore
    it; returns the backup's row, once the restored inbox holds the delivery, still pending."""
    from sqlalchemy.orm import Session

    from bapp_cli.db.models import WebhookDelivery

    body = delivery(5, type_index=77)  # an event type bapp does not know: parked
    (tmp_path / "body.json").write_bytes(body)
    parked = rbapp("calendly", "webhook", "apply", str(tmp_path / "body.json"), "--signature", signed(body))
    assert parked.exit_code == 3, parked.stderr
    engine = make_engine(rbapp.database_url)
    try:
        with Session(engine) as session, session.begin():
            stored(session.scalars(select(WebhookDelivery)).one())
    finally:
        engine.dispose()
    restored, _ = restore_backup(rbapp, second_database_url, tmp_path)
    assert [row["invitee_uri"] for row in inbox(restored, "--pending")] == [invitee_uri(5)]
    [row] = json.loads((tmp_path / "backup.json").read_text())["webhook_inbox"]
    return cast(dict[str, Any], row)


@pytest.mark.parametrize("second_database_url", ["sqlite"], indirect=True)  # the refusal is import's, on either
def test_headers_parked_with_control_characters_by_an_older_bapp_are_backed_up_without_them(
    rbapp: Bapp, tmp_path: Path, second_database_url: str
) -> None:
    # 238a4e2 cleaned the kept headers of a delivery parked since; a row an older bapp parked kept them, and the
    # backup `export all` wrote of it did not restore ('import all', exit 6, 'holds the control character')
    def stored(row: Any) -> None:
        row.headers = {**row.headers, "user-agent": "Calendly\x1b[2J\x85", "x-request-id": "a\x7fb"}

    kept = _restored_as_an_older_bapp_parked_it(rbapp, tmp_path, second_database_url, stored)["headers"]
    assert (kept["user-agent"], kept["x-request-id"]) == ("Calendly[2J", "ab")


@pytest.mark.parametrize("second_database_url", ["sqlite"], indirect=True)  # the refusal is import's, on either
def test_a_body_parked_with_raw_c1_characters_by_an_older_bapp_is_backed_up_with_them_escaped(
    rbapp: Bapp, tmp_path: Path, second_database_url: str
) -> None:
    # b37c999 stores a parked body's raw DEL and C1 characters as \u escapes; a body an older bapp parked kept them
    # raw, and the backup `export all` wrote of it did not restore ('import all', exit 6, 'body: holds the control
    # character U+0085'), as its headers did not before ad75a29
    as_stored: list[str] = []

    def stored(row: Any) -> None:
        row.body = row.body[:-1] + ',"note":"a\x85b\x7f"}'
        as_stored.append(row.body)

    kept = _restored_as_an_older_bapp_parked_it(rbapp, tmp_path, second_database_url, stored)["body"]
    assert "\\u0085" in kept and "\x85" not in kept
    assert json.loads(kept) == json.loads(as_stored[0])  # the same document


def _older_backup_restored(
    rbapp: Bapp, tmp_path: Path, second_database_url: str, dirty: Callable[[dict[str, Any]], None]
) -> tuple[dict[str, Any], Bapp, Result]:
    """A parked delivery's backup as an older bapp wrote it (`dirty` puts into its inbox row what that bapp kept:
    written with raw DEL and C1 characters, \\u001b for an ESC), restored into the second database: the row as
    written, the restored copy, and the import's result."""
    body = delivery(5, type_index=77)  # an event type bapp does not know: parked
    (tmp_path / "body.json").write_bytes(body)
    parked = rbapp("calendly", "webhook", "apply", str(tmp_path / "body.json"), "--signature", signed(body))
    assert parked.exit_code == 3, parked.stderr
    assert rbapp("export", "all", "-o", str(tmp_path / "clean.json")).exit_code == 0
    document = json.loads((tmp_path / "clean.json").read_text())
    [row] = document["webhook_inbox"]
    dirty(row)
    backup = tmp_path / "older.json"
    backup.write_text(json.dumps(document, ensure_ascii=False), encoding="utf-8")
    restored = Bapp(second_database_url, tmp_path / "restored")
    return row, restored, restored("import", "all", str(backup), "--json")


def test_a_backup_an_older_bapp_wrote_with_a_dirty_inbox_row_restores_it_cleaned(
    rbapp: Bapp, tmp_path: Path, second_database_url: str
) -> None:
    # ad75a29 and 1aa10be clean such a row as `export all` writes it; a backup an older bapp wrote holds its headers'
    # control characters and its body's raw DEL and C1 characters, and `import all` refused the row (exit 6, 'holds
    # the control character'): the backup a user kept did not restore. The import now reads it as the export would.
    def dirty(row: dict[str, Any]) -> None:
        row["body"] = row["body"][:-1] + ',"note":"a\x85b\x7f"}'
        row["headers"] = {**row["headers"], "user-agent": "Calendly\x1b[2J\x85", "x-id": "a\x7fb"}

    row, restored, result = _older_backup_restored(rbapp, tmp_path, second_database_url, dirty)
    assert "\x85" in (tmp_path / "older.json").read_text(encoding="utf-8")
    assert result.exit_code == 0, result.stderr
    assert result.json()["kinds"]["webhook_inbox"]["created"] == 1, result.stdout
    [kept] = inbox(restored, "--pending")
    assert kept["invitee_uri"] == invitee_uri(5)
    assert restored("export", "all", "-o", str(tmp_path / "again.json")).exit_code == 0
    [again] = json.loads((tmp_path / "again.json").read_text())["webhook_inbox"]
    assert (again["headers"]["user-agent"], again["headers"]["x-id"]) == ("Calendly[2J", "ab")
    assert "\\u0085" in again["body"] and "\x85" not in again["body"]
    assert json.loads(again["body"]) == json.loads(row["body"])  # the same document
    assert again["body_sha256"] == row["body_sha256"]


def test_a_dirty_inbox_row_of_an_older_backup_with_a_control_character_elsewhere_is_refused_naming_that_field(
    rbapp: Bapp, tmp_path: Path, second_database_url: str
) -> None:
    # The import cleans the body's raw C1 characters of such a row (above); the ESC in last_error is no text bapp
    # stores, so the row is refused, and the error names last_error: it named the body, which is taken as it is.
    def dirty(row: dict[str, Any]) -> None:
        row["body"], row["last_error"] = row["body"][:-1] + ',"note":"a\x85b"}', "could not\x1b[2J apply"

    _, restored, result = _older_backup_restored(rbapp, tmp_path, second_database_url, dirty)
    assert result.exit_code == 6, result.stderr
    [refused] = json.loads(result.stderr.splitlines()[-1])["error"]["details"]
    assert (refused["kind"], refused["field"]) == ("webhook_inbox", "last_error"), refused
    assert refused["message"].startswith("holds the control character U+001B"), refused
    assert inbox(restored, "--pending") == []  # nothing written


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)  # SQLite's write lock serialises them
def test_a_migration_waits_for_a_delivery_in_flight_which_is_applied_at_the_revision_it_read(rbapp: Bapp) -> None:
    # the delivery asks at-head in its own transaction, then writes: a migration committed between the two (here
    # a downgrade, as a newer bapp's upgrade would be) had it applied to a schema its bapp does not know
    engine = make_engine(rbapp.database_url)
    previous = ScriptDirectory(str(script_location())).get_revision(HEAD_REVISION).down_revision
    try:
        with running_receiver(rbapp) as receiver, ThreadPoolExecutor(1) as pool, engine.connect() as holder:
            holder.execute(text("LOCK TABLE bookings IN EXCLUSIVE MODE"))  # its reads pass, its insert waits
            in_flight = pool.submit(receiver.deliver, delivery(1))
            eventually(lambda: waits_for_lock(engine, "%bookings%"), "the delivery to wait for its insert")
            migrating = rbapp.popen("db", "downgrade", str(previous), "--yes")
            waits = lambda: migrating.poll() is not None or waits_for_lock(engine, "LOCK TABLE alembic_version%")  # noqa: E731
            eventually(waits, "the downgrade to end or wait")
            assert migrating.poll() is None, "the downgrade did not wait for the delivery in flight"
            holder.rollback()
            answer = in_flight.result(timeout=30)
            _, stderr = migrating.communicate(timeout=60)
        assert (answer.status_code, answer.json()["action"]) == (200, "created"), answer.text
        assert migrating.returncode == 0, stderr
    finally:
        engine.dispose()


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)  # SQLite's write lock serialises them
def test_a_delivery_during_a_migration_waits_for_it_and_sees_its_revision(rbapp: Bapp) -> None:
    # the delivery read the revision the migration was replacing, and went on as if it stood
    engine = make_engine(rbapp.database_url)
    previous = "0017_unicode_email_domains"
    # stepped down for real, so the step rewriting the bookings' CHECKs (0018) runs again, then 0019 as the last
    assert rbapp("db", "downgrade", previous, "--yes").exit_code == 0
    try:
        with running_receiver(rbapp) as receiver, ThreadPoolExecutor(1) as pool, engine.connect() as holder:
            holder.execute(text("LOCK TABLE bookings IN ACCESS EXCLUSIVE MODE"))  # 0018 alters bookings
            migrating = rbapp.popen("db", "upgrade")
            eventually(lambda: waits_for_lock(engine, "ALTER TABLE bookings%"), "the upgrade to reach 0018's step")
            during = pool.submit(receiver.deliver, delivery(1))
            waits = lambda: during.done() or waits_for_lock(engine, "SELECT version_num FROM alembic_version%")  # noqa: E731
            eventually(waits, "the delivery to be answered or wait")
            assert not during.done(), f"the delivery did not wait for the upgrade: {during.result().text}"
            holder.rollback()
            answer = during.result(timeout=30)
            _, stderr = migrating.communicate(timeout=60)
        assert migrating.returncode == 0, stderr
        assert (answer.status_code, answer.json()["action"]) == (200, "created"), answer.text
    finally:
        engine.dispose()
