"""A full backup carries the two-way Calendly state (issue 13 follow-up, R8 across a restore).

`export all` writes each booking's write-through state, the single-use invitations and the pending webhook
inbox; `import all` of that backup restores them exactly, on either backend and from one to the other.
After the restore `calendly reconcile` settles a booking that was waiting for Calendly, a pull of the same
invitee completes it instead of creating a second booking, a restored no-show can be undone in Calendly and
a booking made through a restored link marks it used, and a resend reconcile makes that is refused removes the
account its hold made, as in the backed-up database. A plain `import bookings` never sets the state.
"""

# ruff: noqa: F811  (pytest fixtures imported from calendly_fixtures are parameters by design)

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from bapp_cli.db.engine import make_engine
from bapp_cli.db.models import Booking, CalendlyInvitation, WebhookDelivery
from tests.cli.calendly_fixtures import (
    cbapp,  # noqa: F401 (fixture)
    fake_server,  # noqa: F401 (fixture)
)
from tests.cli.calendly_fixtures import fake as plain_fake  # noqa: F401 (fixture)
from tests.cli.test_calendly_write import (  # noqa: F401 (fake, synced, synced_copies: the write tests' fixtures, shared)
    ANSWERS,
    CLIENT,
    FREE,
    FREE_TYPE,
    bookings,
    create,
    fake,
    posts,
    reconciled_refused,
    slot,
    synced,
    synced_copies,
    z,
)
from tests.conftest import BACKENDS, Bapp, _fresh_database
from tests.fakes.calendly_server import FakeCalendly, make_invitee, make_scheduled_event

NO_SHOW_CLIENT = "nora@client.example"
LINK_CLIENT = "lin@client.example"
WRITE_STATE = (
    "reference",
    "status",
    "calendly_event_uri",
    "calendly_invitee_uri",
    "calendly_state",
    "calendly_attempts",
    "calendly_requested_at",
    "calendly_cancel_url",
    "calendly_reschedule_url",
    "calendly_join_url",
    "calendly_no_show_uri",
    "calendly_no_show_at",
    "calendly_hold_made",
)


@pytest.fixture(params=BACKENDS)
def target_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A second fresh database, migrated to head, to restore into (each backend)."""
    where = tmp_path / "target"
    where.mkdir()
    yield from _fresh_database(request, where, migrated=True)


def _target(source: Bapp, url: str, home: Path) -> Bapp:
    target = Bapp(url, home)
    target.env.update({key: value for key, value in source.env.items() if key.startswith(("CALENDLY", "BAPP_CAL"))})
    return target


def _state(database_url: str) -> dict[str, Any]:
    engine = make_engine(database_url)
    try:
        with Session(engine) as session:
            return {
                "bookings": [
                    tuple(getattr(booking, name) for name in WRITE_STATE)
                    for booking in session.scalars(select(Booking).order_by(Booking.id))
                ],
                "invitations": [
                    (row.id, row.client_id, row.session_type_id, row.booking_url, row.status, row.booking_id)
                    for row in session.scalars(select(CalendlyInvitation).order_by(CalendlyInvitation.id))
                ],
                "inbox": [
                    (row.id, row.event, row.source, row.body, row.body_sha256, row.headers, row.status, row.attempts)
                    for row in session.scalars(select(WebhookDelivery).order_by(WebhookDelivery.id))
                ],
            }
    finally:
        engine.dispose()


def _park_a_delivery(database_url: str) -> None:
    body = json.dumps({"event": "invitee.created", "payload": {"email": "later@client.example"}}).encode()
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    engine = make_engine(database_url)
    try:
        with Session(engine) as session, session.begin():
            session.add(
                WebhookDelivery(
                    event="invitee.created",
                    source="receiver",
                    body=body.decode(),
                    body_sha256=hashlib.sha256(body).hexdigest(),
                    headers={"signature_timestamp": "1764000000"},
                    invitee_uri=None,
                    status="pending",
                    received_at=now,
                    attempts=2,
                    last_attempt_at=now,
                    last_error="the event type is not synced yet",
                )
            )
            # an applied delivery is a log row: it stays behind
            applied = body + b" "
            session.add(
                WebhookDelivery(
                    event="invitee.created",
                    source="receiver",
                    body=applied.decode(),
                    body_sha256=hashlib.sha256(applied).hexdigest(),
                    status="applied",
                    received_at=now,
                    applied_at=now,
                )
            )
    finally:
        engine.dispose()


def _populate(synced: Bapp, fake: FakeCalendly) -> tuple[str, str, dict[str, Any]]:
    """A booking waiting for Calendly (it has the invitee; bapp never heard), a no-show, an open link and
    a parked delivery. Returns (waiting reference, no-show reference, the past event to drop at the end)."""
    past = dt.datetime.now(dt.UTC).replace(microsecond=0) - dt.timedelta(days=1)
    event = make_scheduled_event(931, FREE_TYPE, past, duration_minutes=15)
    fake.add_scheduled_event(event, [make_invitee(event["uri"], 931, email=NO_SHOW_CLIENT)])
    assert synced("calendly", "pull-bookings", "--json").exit_code == 0
    [no_show] = bookings(synced.database_url)
    assert synced("bookings", "no-show", no_show.reference, "--json").exit_code == 0

    # last, so that no pull meets its invitee before the backup
    fake.apply_then_reset_next()
    fake.fail_next("/scheduled_events", 500, times=6)  # the lookup cannot be made either: it stays unknown
    assert create(synced, slot()).exit_code == 9
    fake.clear_faults()
    [waiting] = [booking for booking in bookings(synced.database_url) if booking.reference != no_show.reference]
    assert (waiting.status, waiting.calendly_state, waiting.calendly_invitee_uri) == ("pending", "unknown", None)

    assert synced("clients", "add", LINK_CLIENT, "--name", "Lin Park").exit_code == 0
    assert synced("bookings", "link", "--client", LINK_CLIENT, "--session", FREE, "--json").exit_code == 0
    _park_a_delivery(synced.database_url)
    return waiting.reference, no_show.reference, event


def _drop_event(fake: FakeCalendly, event: dict[str, Any]) -> None:
    with fake._lock:
        fake._scheduled_events = [e for e in fake._scheduled_events if e["uri"] != event["uri"]]
        fake._invitees.pop(event["uri"].rsplit("/", 1)[-1], None)


def test_a_backup_restores_the_calendly_state_and_reconcile_settles_it(
    synced: Bapp, fake: FakeCalendly, target_url: str, tmp_path: Path
) -> None:
    waiting, no_show, event = _populate(synced, fake)
    try:
        backup = tmp_path / "backup.json"
        assert synced("export", "all", "-o", str(backup)).exit_code == 0
        document = json.loads(backup.read_text())
        assert document["bapp"]["version"] == 3  # 2 added these sections; 3, the builders' own_name and account_name
        assert [row["reference"] for row in document["calendly_bookings"]] == sorted([waiting, no_show])
        assert len(document["calendly_invitations"]) == 1
        assert [row["status"] for row in document["webhook_inbox"]] == ["pending"]
        # the per-kind export keeps its columns
        assert "calendly_state" not in document["bookings"][0]

        target = _target(synced, target_url, tmp_path / "t")
        restored = target("import", "all", str(backup), "--json")
        assert restored.exit_code == 0, restored.stderr
        assert (restored.json()["restored"], restored.json()["rejected"]) == (True, 0)
        kinds = restored.json()["kinds"]
        assert kinds["calendly_bookings"]["updated"] == 2 and kinds["calendly_invitations"]["created"] == 1
        before = _state(synced.database_url)
        after = _state(target.database_url)
        assert after["bookings"] == before["bookings"]
        assert after["invitations"] == before["invitations"]
        assert after["inbox"] == before["inbox"][:1]  # the pending row only, with its id
        again = tmp_path / "again.json"
        assert target("export", "all", "-o", str(again)).exit_code == 0
        assert again.read_text() == backup.read_text()

        # the restored waiting booking is settled by reconcile: attached, never resent
        sent = len(posts(fake))
        settled = target("calendly", "reconcile", "--json")
        assert settled.exit_code == 0, settled.stderr
        assert [record["action"] for record in settled.json()] == ["attached"]
        assert len(posts(fake)) == sent
        [invitee] = [item for item in fake.invitees_of(FREE_TYPE) if item["email"] == CLIENT]
        row = next(b for b in bookings(target.database_url) if b.reference == waiting)
        assert (row.status, row.calendly_state, row.calendly_invitee_uri) == ("confirmed", "booked", invitee["uri"])

        # the restored no-show is undone in Calendly through its restored URI
        no_show_uri = next(b for b in bookings(target.database_url) if b.reference == no_show).calendly_no_show_uri
        assert no_show_uri
        undone = target("bookings", "no-show", no_show, "--undo", "--json")
        assert undone.exit_code == 0, undone.stderr
        assert f"/invitee_no_shows/{no_show_uri.rsplit('/', 1)[-1]}" in [
            request.path for request in fake.requests if request.method == "DELETE"
        ]

        # a booking made through the restored link marks it used
        fake.book_as_visitor(FREE_TYPE, slot(days=3), LINK_CLIENT, "Lin Park")
        pulled = target("calendly", "pull-bookings", "--json")
        assert pulled.exit_code == 0, pulled.stderr
        assert pulled.json()["created"] == 1
        [invitation] = _state(target.database_url)["invitations"]
        assert invitation[4] == "used" and invitation[5] is not None
        assert len(bookings(target.database_url)) == 3

        # merging the (now stale) backup again keeps the database's own, newer state
        settled_state = _state(target.database_url)
        merged = target("import", "all", str(backup), "--json")
        assert merged.exit_code == 0, merged.stderr
        assert merged.json()["restored"] is False
        assert merged.json()["kinds"]["calendly_bookings"]["updated"] == 0
        merged_state = _state(target.database_url)
        # (the bookings section itself merges like `import bookings`: its columns, e.g. status, are the file's)
        assert [row[4:] for row in merged_state["bookings"]] == [row[4:] for row in settled_state["bookings"]]
        assert merged_state["invitations"] == settled_state["invitations"]
        assert target("calendly", "reconcile", "--json").json() == []
    finally:
        _drop_event(fake, event)


def test_after_a_restore_the_pull_completes_the_waiting_booking_not_a_second(
    synced: Bapp, fake: FakeCalendly, tmp_path: Path, sqlite_template: Path
) -> None:
    waiting, _, event = _populate(synced, fake)
    try:
        backup = tmp_path / "backup.toml"
        assert synced("export", "all", "-o", str(backup)).exit_code == 0
        path = tmp_path / "restored.db"
        path.write_bytes(sqlite_template.read_bytes())
        target = _target(synced, f"sqlite:///{path}", tmp_path / "t")
        restored = target("import", "all", str(backup), "--json")
        assert restored.exit_code == 0, restored.stderr
        assert _state(target.database_url)["bookings"] == _state(synced.database_url)["bookings"]
        pulled = target("calendly", "pull-bookings", "--json")
        assert pulled.exit_code == 0, pulled.stderr
        assert pulled.json()["created"] == 0
        rows = bookings(target.database_url)
        assert len(rows) == 2
        row = next(b for b in rows if b.reference == waiting)
        assert (row.calendly_state, row.status) == ("booked", "confirmed")
        assert target("calendly", "reconcile", "--json").json() == []
    finally:
        _drop_event(fake, event)


def test_a_bookings_import_never_sets_the_calendly_state(bapp: Bapp, tmp_path: Path) -> None:
    added = bapp("sessions", "add", "--title", "Intro", "--duration", "30", "--category", "free", "--json")
    assert added.exit_code == 0, added.stderr
    intro = added.json()["slug"]
    start = (dt.datetime.now(dt.UTC) + dt.timedelta(days=3)).replace(microsecond=0, minute=0)
    csv_file = tmp_path / "bookings.csv"
    csv_file.write_text(
        f"client,session,start_time,calendly_state\nx@client.example,{intro},{start.isoformat()},requested\n"
    )
    refused = bapp("import", "bookings", str(csv_file))
    assert refused.exit_code == 6
    assert "calendly_state" in refused.stderr and "import all" in refused.stderr
    json_file = tmp_path / "bookings.json"
    json_file.write_text(
        json.dumps(
            [{"client": "x@client.example", "session": intro, "start_time": start.isoformat(), "calendly_attempts": 1}]
        )
    )
    refused = bapp("import", "bookings", str(json_file), "--json")
    assert refused.exit_code == 6
    assert "import all" in refused.stderr
    assert bookings(bapp.database_url) == []
    # nor a hand-made document without the backup header
    document = tmp_path / "handmade.json"
    document.write_text(json.dumps({"calendly_bookings": [{"reference": "BK-1", "calendly_state": "requested"}]}))
    refused = bapp("import", "all", str(document))
    assert refused.exit_code == 6
    assert "only from a backup" in refused.stderr


def test_a_restore_refuses_an_id_given_twice_as_a_bad_row(bapp: Bapp, tmp_path: Path) -> None:
    rows = [
        {
            "id": 5,
            "event": "invitee.created",
            "source": "receiver",
            "body": body,
            "body_sha256": hashlib.sha256(body.encode()).hexdigest(),
            "received_at": "2026-01-01T00:00:00Z",
        }
        for body in ("{}", "[]")
    ]
    document = tmp_path / "twice.json"
    document.write_text(json.dumps({"bapp": {"format": "bapp-backup", "version": 2}, "webhook_inbox": rows}))
    refused = bapp("import", "all", str(document))
    assert refused.exit_code == 6, refused.stderr
    assert "id 5 repeats" in refused.stderr
    assert _state(bapp.database_url)["inbox"] == []


def test_a_restore_names_each_missing_reference_and_repeated_id_of_an_invitation(bapp: Bapp, tmp_path: Path) -> None:
    def link(number: int, **values: Any) -> dict[str, Any]:
        return {
            "client": "ivy@client.example",
            "session": "intro",
            "booking_url": f"https://cal.example/{number}",
        } | values

    document = tmp_path / "links.json"
    document.write_text(
        json.dumps(
            {
                "bapp": {"format": "bapp-backup", "version": 2},
                "clients": [{"email": "ivy@client.example"}],
                "sessions": [{"slug": "intro", "title": "Intro", "duration_minutes": 30, "category": "free"}],
                "calendly_invitations": [
                    link(1, client="nobody@client.example", session="gone", booking="bk-missing"),
                    link(2, id=7),
                    link(3, id=7),
                    link(4, session=1),  # a session by its id, as an export writes one without URI or slug
                ],
            }
        )
    )
    refused = bapp("import", "all", str(document), "--json")
    assert refused.exit_code == 6, refused.stderr
    assert "2 bad rows" in refused.stderr  # the first link and the third; the second and fourth were good
    details = json.loads(refused.stderr.splitlines()[-1])["error"]["details"]
    assert sorted((item["field"], item["message"]) for item in details) == [
        ("booking", "no booking 'BK-MISSING'"),
        ("client", "no client with e-mail 'nobody@client.example'"),
        ("id", "id 7 repeats"),
        ("session", "no session 'gone'"),
    ]
    assert _state(bapp.database_url)["invitations"] == []


@pytest.mark.parametrize("renamed", [False, True], ids=["as-made", "renamed-since"])
def test_after_a_restore_a_refused_reconcile_takes_the_account_and_enrolment_the_hold_made(
    synced: Bapp, fake: FakeCalendly, target_url: str, tmp_path: Path, renamed: bool
) -> None:
    # A hold's record of the account it made holds the account's updated_at, and the restore wrote the account
    # anew, stamped with its own time: the resend `calendly reconcile` made was refused, the hold and its enrolment
    # went, and the account stayed (clients show: exit 0), read as changed since, where in the backed-up database
    # it went with them (test_calendly_write: ..._its_send_made_as_the_send_would). An account an import renamed
    # before the backup is someone's: the restore leaves its stamp, and it stays, as it would have there.
    group = ("--session", "accelerate-mastery-deep-dive-6", "--pathway", "accelerate", "--create-account")
    fake.fail_next("/invitees", 503)
    lost = synced("bookings", "create", "--client", CLIENT, "--start", z(slot()), *group, *ANSWERS, "--json")
    assert lost.exit_code == 9, lost.stderr
    if renamed:
        (clients := tmp_path / "clients.csv").write_text(f"email,name\n{CLIENT},Ava Renamed\n")
        assert synced("import", "clients", str(clients)).exit_code == 0
    backup = tmp_path / "backup.json"
    assert synced("export", "all", "-o", str(backup)).exit_code == 0
    target = _target(synced, target_url, tmp_path / "t")
    restored = target("import", "all", str(backup), "--json")
    assert restored.exit_code == 0, restored.stderr

    shown = reconciled_refused(target, fake)
    if renamed:  # the account is the import's; the enrolment, unchanged and unused, the hold's
        assert (shown.exit_code, shown.json()["name"], shown.json()["enrolments"]) == (0, "Ava Renamed", [])
        return
    assert shown.exit_code == 7, shown.stdout
    assert target("clients", "list", "--json").json() == []
