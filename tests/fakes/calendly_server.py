"""A fake Calendly API v2 on a real local socket, with scriptable faults.

``FakeCalendly`` serves, on ``http://127.0.0.1:<random port>``::

    GET /users/me
    GET /event_types?user=U|organization=O[&active=true|false][&count=N][&page_token=T]
    GET /event_types/{uuid}                      (deleted types too, with deleted_at)
    GET /scheduled_events?user=U|organization=O[&min_start_time][&max_start_time][&status]
                          [&invitee_email][&sort=start_time:asc|desc][&count][&page_token]
    GET /scheduled_events/{uuid}
    GET /scheduled_events/{uuid}/invitees[?status][&email][&count][&page_token]
    GET /scheduled_events/{uuid}/invitees/{uuid}
    POST /webhook_subscriptions                  (201; 409 for a URL already subscribed; the URL kept with its
                                                  host in lower case and no default port)
    GET /webhook_subscriptions?organization=O&scope=user|organization[&user=U][&count][&page_token]
    GET /webhook_subscriptions/{uuid}            (404 when there is none)
    DELETE /webhook_subscriptions/{uuid}         (204; 404 when there is none)

and the write side of ``shared/reference/calendly-scheduling-api.md`` (see :class:`_WriteSide`)::

    GET  /event_type_available_times?event_type&start_time&end_time   (start not past, window <= 31 days)
    POST /invitees                                (201 invitee; 400 already_filled when the slot is gone)
    POST /scheduled_events/{uuid}/cancellation    (201; 403 "Event is already canceled" / "Event in the past")
    POST /invitee_no_shows, DELETE /invitee_no_shows/{uuid}
    POST /scheduling_links

in the shapes of ``shared/reference/calendly-api.md``: ``{"resource": …}`` or ``{"collection": […],
"pagination": {…}}`` with keyset-style tokens and absolute ``next_page`` URLs on the fake's own origin that
repeat the caller's filters. Every request must carry ``Authorization: Bearer <token>`` (401 otherwise).
``user=`` selects the event types whose ``profile.owner`` is that URI; ``organization=`` must be the user's
``current_organization`` (403 otherwise) and selects every type. Types with ``deleted_at`` set are left
out of listings. Every response carries the three ``X-RateLimit-*`` headers.

Event-type pages are rendered to bytes once per (filters, count) and cached, so 10,000 types in 100 pages
are served at socket speed (the sync benchmark relies on this). ``FakeCalendly(page_latency=0.1)`` (or
setting ``fake.page_latency``) answers every GET that many seconds late, as a distant API would: the sync
benchmark measures how much of bapp's work hides behind that wait.

Faults are queued and consumed in order, first match wins; each matches a path prefix and optionally only
requests that do (or do not) carry a ``page_token``::

    fake.fail_next("/event_types", status=503, times=3)       # 5xx burst, then normal service
    fake.rate_limit_next("/event_types", reset=2)               # 429 with X-RateLimit-Reset: 2
    fake.reset_next("/event_types")                             # close the socket without a response (RST)
    fake.delay_next("/event_types", seconds=1.0)                # answer late (client read timeout)
    fake.truncate_next("/event_types")                          # 200 with half a JSON body
    fake.trickle_next("/event_types", "head", seconds=0.05)     # the answer's head a byte at a time (never a timeout)
    fake.stale_page_token(times=1)                              # 400 "page_token: is invalid" (None = always)
    fake.invalid_item(page=2, index=3, field="duration", value="sixty")
    fake.loop_pagination(at_page=3, back_to=2)                  # page 3's next token is page 2's again
    fake.foreign_next_page(at_page=1, origin="http://evil.test:8080")
    fake.lose_answer_next("/webhook_subscriptions")             # apply the request, then reset: answer lost

``fake.requests`` records every request (method, path, params, headers) for assertions.

``fake.begin_test()`` puts the API under a new path of its own (``base_url`` becomes
``http://127.0.0.1:<port>/<random>``): a request to an earlier path — sent late by a client of an earlier test
(a request its fake read only after the test had ended, a thread or process outliving it), or by one of another
module's fake whose port this one was given since — is answered 404 and listed in ``fake.strays``, never taking
this test's faults or counted in its requests.

Usage::

    with FakeCalendly(token="t0k", event_types=[make_event_type(i) for i in range(250)]) as fake:
        client = CalendlyClient(fake.base_url, "t0k")
        ...
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import re
import socket
import struct
import sys
import threading
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Literal
from urllib.parse import parse_qs, urlencode, urlsplit, urlunsplit

__all__ = [
    "API_ORIGIN",
    "DEFAULT_ORGANIZATION_URI",
    "DEFAULT_TOKEN",
    "DEFAULT_USER_URI",
    "FakeCalendly",
    "Fault",
    "RecordedRequest",
    "make_event_type",
    "make_invitee",
    "make_scheduled_event",
    "make_user",
]

API_ORIGIN = "https://api.calendly.com"
"""Resource URIs keep Calendly's real origin, as in real responses; only next_page uses the fake's."""
DEFAULT_TOKEN = "fake-calendly-token"
DEFAULT_USER_URI = f"{API_ORIGIN}/users/USER0001"
DEFAULT_ORGANIZATION_URI = f"{API_ORIGIN}/organizations/ORG0001"

_BASE_TIME = datetime(2025, 1, 6, 9, 0, tzinfo=UTC)
_ERRORS: dict[int, tuple[str, str]] = {
    400: ("Invalid Argument", "The supplied parameters are invalid."),
    401: ("Unauthenticated", "The access token is invalid"),
    403: ("Permission Denied", "You do not have permission"),
    404: ("Resource Not Found", "The server could not find the requested resource."),
    429: ("Too Many Requests", "You have exceeded the rate limit."),
    500: (
        "Internal Server Error",
        "The server encountered an unexpected condition that prevented it from fulfilling the request.",
    ),
    502: ("Bad Gateway", "Bad gateway."),
    503: ("Service Unavailable", "The service is temporarily unavailable."),
    504: ("Gateway Timeout", "Gateway timeout."),
}
_UUID_SEGMENT = r"([A-Za-z0-9_-]+)"
_EVENT_TYPE_RE = re.compile(rf"^/event_types/{_UUID_SEGMENT}$")
_EVENT_RE = re.compile(rf"^/scheduled_events/{_UUID_SEGMENT}$")
_INVITEES_RE = re.compile(rf"^/scheduled_events/{_UUID_SEGMENT}/invitees$")
_INVITEE_RE = re.compile(rf"^/scheduled_events/{_UUID_SEGMENT}/invitees/{_UUID_SEGMENT}$")


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _parse_iso(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)


# --- builders of API-shaped objects -------------------------------------------------------------

_NAME_TEMPLATES = (
    "Free Discovery Call",
    "Accelerate Foundation Coaching",
    "Pivot Career Assessment",
    "Play Creative Lab",
    "Specialized Architecture Review",
    "Getting Started Intro",
    "Accelerate Mastery Deep Dive",
)
_DURATIONS = (15, 30, 45, 60, 90)


def make_user(
    uri: str = DEFAULT_USER_URI,
    *,
    organization: str = DEFAULT_ORGANIZATION_URI,
    name: str = "Ada Builder",
    email: str = "ada@example.com",
) -> dict[str, Any]:
    """A ``/users/me`` resource."""
    slug = uri.rsplit("/", 1)[-1].lower()
    return {
        "uri": uri,
        "name": name,
        "slug": slug,
        "email": email,
        "scheduling_url": f"https://calendly.com/{slug}",
        "timezone": "Europe/London",
        "avatar_url": None,
        "created_at": _iso(_BASE_TIME - timedelta(days=400)),
        "updated_at": _iso(_BASE_TIME - timedelta(days=1)),
        "current_organization": organization,
        "resource_type": "User",
        "locale": "en",
    }


def make_event_type(
    i: int,
    owner_uri: str = DEFAULT_USER_URI,
    *,
    name: str | None = None,
    active: bool = True,
    secret: bool = False,
    duration: int | None = None,
    kind: str | None = None,
    updated_at: datetime | None = None,
    deleted_at: datetime | None = None,
    custom_questions: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """A realistic ``/event_types`` item, deterministic in ``i``: names rotate through free / pathway /
    specialised titles, every 7th type is a group type, every 3rd offers duration options, and each carries
    custom questions of all five types (some disabled or optional), unless ``custom_questions`` is given."""
    title = name if name is not None else f"{_NAME_TEMPLATES[i % len(_NAME_TEMPLATES)]} {i}"
    slug = re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-")
    length = duration if duration is not None else _DURATIONS[i % len(_DURATIONS)]
    created = _BASE_TIME + timedelta(minutes=i)
    if custom_questions is None:
        custom_questions = [
            {
                "name": "Company name",
                "type": "string",
                "position": 0,
                "enabled": True,
                "required": True,
                "answer_choices": [],
                "include_other": False,
            },
            {
                "name": "What would you like to achieve?",
                "type": "text",
                "position": 1,
                "enabled": True,
                "required": i % 2 == 0,
                "answer_choices": [],
                "include_other": False,
            },
            {
                "name": "Experience with AI",
                "type": "single_select",
                "position": 2,
                "enabled": True,
                "required": False,
                "answer_choices": ["None", "Some", "Daily user"],
                "include_other": False,
            },
            {
                "name": "Topics",
                "type": "multi_select",
                "position": 3,
                "enabled": i % 5 != 0,
                "required": False,
                "answer_choices": ["Agents", "RAG", "Automation", "Prompting"],
                "include_other": True,
            },
            {
                "name": "Phone",
                "type": "phone_number",
                "position": 4,
                "enabled": True,
                "required": False,
                "answer_choices": None if i % 4 == 0 else [],
                "include_other": False,
            },
        ]
    return {
        "uri": f"{API_ORIGIN}/event_types/ET{i:08d}",
        "name": title,
        "active": active,
        "booking_method": "instant",
        "slug": slug,
        "scheduling_url": f"https://calendly.com/builder/{slug}",
        "duration": length,
        "duration_options": [length, length * 2] if i % 3 == 0 else None,
        "kind": kind if kind is not None else ("group" if i % 7 == 6 else "solo"),
        "pooling_type": None,
        "type": "StandardEventType",
        "color": f"#{(i * 2654435761) % 0xFFFFFF:06x}",
        "created_at": _iso(created),
        "updated_at": _iso(updated_at if updated_at is not None else created),
        "internal_note": None,
        "description_plain": f"{title}: a session with a builder.",
        "description_html": f"<p>{title}: a session with a builder.</p>",
        "profile": {"type": "User", "name": "Ada Builder", "owner": owner_uri},
        "secret": secret,
        "deleted_at": _iso(deleted_at) if deleted_at is not None else None,
        "admin_managed": False,
        "locations": [{"kind": "zoom_conference"}]
        if i % 2
        else [{"kind": "inbound_call", "phone_number": 447700900123}],
        "position": i,
        "locale": "en",
        "custom_questions": custom_questions,
    }


def make_scheduled_event(
    i: int,
    event_type_uri: str,
    start_time: datetime,
    *,
    duration_minutes: int = 30,
    status: Literal["active", "canceled"] = "active",
    host_uri: str = DEFAULT_USER_URI,
) -> dict[str, Any]:
    """A ``/scheduled_events`` item."""
    event: dict[str, Any] = {
        "uri": f"{API_ORIGIN}/scheduled_events/EV{i:08d}",
        "name": f"Session {i}",
        "status": status,
        "start_time": _iso(start_time),
        "end_time": _iso(start_time + timedelta(minutes=duration_minutes)),
        "event_type": event_type_uri,
        "location": {"type": "zoom_conference", "status": "pushed", "join_url": "https://zoom.us/j/1"},
        "invitees_counter": {"total": 1, "active": 1 if status == "active" else 0, "limit": 1},
        "created_at": _iso(start_time - timedelta(days=7)),
        "updated_at": _iso(start_time - timedelta(days=7)),
        "event_memberships": [{"user": host_uri, "user_email": "ada@example.com", "user_name": "Ada Builder"}],
        "event_guests": [],
        "meeting_notes_plain": None,
        "meeting_notes_html": None,
    }
    if status == "canceled":
        event["cancellation"] = {
            "canceled_by": "Client",
            "reason": "Conflict",
            "canceler_type": "invitee",
            "created_at": _iso(start_time - timedelta(days=1)),
        }
    return event


def make_invitee(
    event_uri: str,
    j: int,
    *,
    email: str | None = None,
    status: Literal["active", "canceled"] = "active",
    created_at: datetime | None = None,
    questions_and_answers: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """A ``/scheduled_events/{uuid}/invitees`` item of the event ``event_uri``."""
    created = created_at if created_at is not None else _BASE_TIME + timedelta(minutes=j)
    uuid = f"INV{j:08d}"
    return {
        "uri": f"{event_uri}/invitees/{uuid}",
        "email": email if email is not None else f"client{j}@example.com",
        "name": f"Client {j}",
        "first_name": None,
        "last_name": None,
        "status": status,
        "questions_and_answers": questions_and_answers
        if questions_and_answers is not None
        else [{"question": "Company name", "answer": f"Company {j}", "position": 0}],
        "timezone": "Europe/London",
        "event": event_uri,
        "created_at": _iso(created),
        "updated_at": _iso(created),
        "tracking": {
            "utm_campaign": None,
            "utm_source": None,
            "utm_medium": None,
            "utm_content": None,
            "utm_term": None,
            "salesforce_uuid": None,
        },
        "text_reminder_number": None,
        "rescheduled": False,
        "old_invitee": None,
        "new_invitee": None,
        "cancel_url": f"https://calendly.com/cancellations/{uuid}",
        "reschedule_url": f"https://calendly.com/reschedulings/{uuid}",
        "routing_form_submission": None,
        "payment": None,
        "no_show": None,
        "reconfirmation": None,
        "scheduling_method": None,
        "invitee_scheduled_by": None,
    }


# --- recording and faults ---------------------------------------------------------------------------


@dataclass(frozen=True)
class RecordedRequest:
    """One request as the fake saw it. ``headers`` keys are lower-case; ``params`` keep the last value."""

    method: str
    path: str
    params: dict[str, str]
    headers: dict[str, str]
    body: bytes = b""

    @property
    def page_token(self) -> str | None:
        return self.params.get("page_token")

    def json(self) -> Any:
        return json.loads(self.body) if self.body else None


FaultAction = Literal[
    "status",
    "reset",
    "delay",
    "truncate",
    "apply_then_reset",
    "apply_then_delay",
    "apply_then_status",
    "hang",
    "trickle_head",
    "trickle_body",
]


@dataclass
class Fault:
    """A scripted misbehaviour. ``times`` None means every matching request, forever."""

    path_prefix: str
    action: FaultAction
    times: int | None = 1
    status: int = 500
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes | None = None
    seconds: float = 0.0
    keep: float = 0.5
    with_page_token: bool | None = None
    params: dict[str, str] = field(default_factory=dict)  # only requests carrying these query values
    method: str | None = None  # only requests of this method (GET, POST, DELETE)
    # set to answer a held ("delay") request at once: a test that needs a run held while it checks something
    # can hold it long enough for a loaded machine and still not wait the whole time once it is done
    released: threading.Event = field(default_factory=threading.Event)

    def matches(self, path: str, params: Mapping[str, str]) -> bool:
        if self.times is not None and self.times <= 0:
            return False
        if not path.startswith(self.path_prefix):
            return False
        if any(params.get(name) != value for name, value in self.params.items()):
            return False
        return self.with_page_token is None or self.with_page_token == ("page_token" in params)


@dataclass(frozen=True)
class _Reply:
    status: int
    body: bytes
    headers: tuple[tuple[str, str], ...] = ()


def _error_reply(status: int, message: str | None = None, details: Sequence[Mapping[str, str]] = ()) -> _Reply:
    title, default = _ERRORS.get(status, (HTTPStatus(status).phrase, HTTPStatus(status).description))
    body: dict[str, Any] = {"title": title, "message": message or default}
    if details:
        body["details"] = [dict(d) for d in details]
    return _Reply(status, json.dumps(body).encode())


def _json_reply(payload: Any) -> _Reply:
    return _Reply(200, json.dumps(payload, separators=(",", ":")).encode())


# --- the server ------------------------------------------------------------------------------------


# bytes added to a trickled answer: 100 s at the usual byte every 0.05 s
_TRICKLE_PADDING = 2000


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "FakeCalendly/1.0"
    # Idle keep-alive connections are dropped after this long, so stray threads do not pile up.
    timeout = 10
    server: _Server

    def setup(self) -> None:
        super().setup()
        # Headers and body go out in separate writes; with Nagle's algorithm on, the body waits for the
        # client's delayed ACK (~40 ms a request). A real API server does not add that.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def do_GET(self) -> None:
        self.server.fake._handle(self)

    def _refuse(self) -> None:
        self.server.fake._handle(self, allowed=False)

    def do_POST(self) -> None:
        self.server.fake._handle(self)

    def do_DELETE(self) -> None:
        self.server.fake._handle(self)

    do_PUT = do_PATCH = _refuse

    def log_message(self, format: str, *args: Any) -> None:
        # Quiet by design: tests assert on fake.requests instead of log lines.
        pass


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    fake: FakeCalendly

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that timed out or reset its side is part of the scenarios, not a failure of the fake.
        exc = sys.exc_info()[1]
        if isinstance(exc, OSError):
            return
        self.fake.errors.append(repr(exc))


@dataclass
class _Listing:
    pages: list[bytes]
    tokens: list[str]


class FakeCalendly:
    """A local fake of Calendly's API v2; a context manager that starts and stops the server thread."""

    def __init__(
        self,
        token: str = DEFAULT_TOKEN,
        *,
        user: Mapping[str, Any] | None = None,
        event_types: Iterable[Mapping[str, Any]] = (),
        scheduled_events: Iterable[Mapping[str, Any]] = (),
        invitees: Mapping[str, Iterable[Mapping[str, Any]]] | None = None,
        page_latency: float = 0.0,
    ) -> None:
        """``invitees`` maps a scheduled event URI (or uuid) to its invitee dicts; ``page_latency`` delays
        every GET by that many seconds (the network's round trip)."""
        self.token = token
        self.page_latency = page_latency
        self.user: dict[str, Any] = dict(user) if user is not None else make_user()
        self.errors: list[str] = []
        self.strays: list[str] = []  # "METHOD path" of each request to an earlier test's base URL (begin_test)
        self._prefix = ""  # the path the API is served under (begin_test), "" for the root
        self._lock = threading.Lock()
        self._event_types: list[dict[str, Any]] = []
        self._scheduled_events: list[dict[str, Any]] = []
        self._invitees: dict[str, list[dict[str, Any]]] = {}
        self._faults: list[Fault] = []
        self._requests: list[RecordedRequest] = []
        self._listings: dict[tuple[Any, ...], _Listing] = {}
        self._invalid_items: dict[tuple[int, int], tuple[str, Any]] = {}
        self._loop: tuple[int, int] | None = None
        self._foreign: tuple[int, str] | None = None
        self.webhook_subscriptions: list[dict[str, Any]] = []
        self.webhook_signing_keys: dict[str, str] = {}  # subscription URI → the key it was created with
        self._stopping = threading.Event()
        self.writes = _WriteSide(self)
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self.set_event_types(event_types)
        for event in scheduled_events:
            self.add_scheduled_event(event)
        for event_uri, items in (invitees or {}).items():
            self._invitees.setdefault(_last_segment(event_uri), []).extend(dict(item) for item in items)

    # --- lifecycle -------------------------------------------------------------------------------

    def start(self) -> FakeCalendly:
        if self._server is not None:
            return self
        server = _Server(("127.0.0.1", 0), _Handler)
        server.fake = self
        with self._lock:
            self._listings.clear()  # cached pages embed the previous port in next_page
        self._server = server
        self._stopping.clear()
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, name="FakeCalendly", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is None:
            return
        self._stopping.set()
        with self._lock:
            for fault in self._faults:
                fault.released.set()
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server = None
        self._thread = None

    def __enter__(self) -> FakeCalendly:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("FakeCalendly is not running")
        return int(self._server.server_address[1])

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:<port>`` (and the path of the test, after ``begin_test``): pass it as the client's base
        URL (CALENDLY_API_BASE_URL)."""
        return f"http://127.0.0.1:{self.port}{self._prefix}"

    def begin_test(self) -> None:
        """Serve the API under a path of its own from now on: requests to the base URL an earlier test was given
        are strays (see the module docstring)."""
        with self._lock:
            self._prefix = f"/{uuid.uuid4().hex[:12]}"  # unlike any earlier fake's too (a port is given again)
            self._listings.clear()  # cached pages embed the base URL in next_page

    # --- data ------------------------------------------------------------------------------------

    @property
    def event_types(self) -> list[dict[str, Any]]:
        with self._lock:
            return [dict(item) for item in self._event_types]

    def set_event_types(self, event_types: Iterable[Mapping[str, Any]]) -> None:
        """Replace the catalogue (listing order = the given order)."""
        with self._lock:
            self._event_types = [dict(item) for item in event_types]
            self._listings.clear()

    def add_event_type(self, event_type: Mapping[str, Any]) -> None:
        with self._lock:
            self._event_types.append(dict(event_type))
            self._listings.clear()

    def add_scheduled_event(self, event: Mapping[str, Any], invitees: Iterable[Mapping[str, Any]] = ()) -> None:
        with self._lock:
            self._scheduled_events.append(dict(event))
            bucket = self._invitees.setdefault(_last_segment(str(event["uri"])), [])
            bucket.extend(dict(item) for item in invitees)

    def clear_scheduled_events(self) -> None:
        """Forget every scheduled event and invitee (a module's fake shared by its tests starts each one empty)."""
        with self._lock:
            self._scheduled_events.clear()
            self._invitees.clear()

    def prebuild(self, *, user: str | None = None, organization: str | None = None, count: int = 100) -> None:
        """Render the event-type pages for these filters now, so the first request is not the slow one.

        Keys follow the query the client sends: ``organization`` before ``user`` when both are given.
        """
        params: dict[str, str] = {}
        if organization:
            params["organization"] = organization
        if user:
            params["user"] = user
        params["count"] = str(count)
        with self._lock:
            self._event_type_listing(params)

    # --- the write side (tests read and script it through these) ---------------------------------

    def set_open_starts(self, event_type_uri: str, starts: Iterable[datetime]) -> None:
        """Open exactly these starts for the event type (instead of the default hours)."""
        with self._lock:
            self.writes.open_starts[event_type_uri] = [start.astimezone(UTC) for start in starts]

    def invitees_of(self, event_type_uri: str, *, status: str | None = "active") -> list[dict[str, Any]]:
        """Every invitee (of ``status``; None for all) of events of this event type."""
        with self._lock:
            events = {_last_segment(e["uri"]) for e in self._scheduled_events if e.get("event_type") == event_type_uri}
            return [
                dict(invitee)
                for uuid in events
                for invitee in self._invitees.get(uuid, [])
                if status is None or invitee["status"] == status
            ]

    def scheduled_event(self, uri: str) -> dict[str, Any] | None:
        with self._lock:
            found = next((e for e in self._scheduled_events if e["uri"] == uri), None)
            return dict(found) if found is not None else None

    def book_as_visitor(
        self, event_type_uri: str, start: datetime, email: str, name: str = "Visitor"
    ) -> dict[str, Any]:
        with self._lock:
            return self.writes.book_as_visitor(event_type_uri, start, email, name)

    def reset_writes(self) -> None:
        """Forget every booking, no-show, link and open-start override (scheduled events created by writes)."""
        with self._lock:
            created = {e["uri"] for e in self._scheduled_events if e["uri"].endswith("W")}
            self._scheduled_events = [e for e in self._scheduled_events if e["uri"] not in created]
            for uri in created:
                self._invitees.pop(_last_segment(uri), None)
            self.writes = _WriteSide(self)

    # --- recorded requests ---------------------------------------------------------------------

    @property
    def requests(self) -> list[RecordedRequest]:
        with self._lock:
            return list(self._requests)

    def count(self, path_prefix: str = "/", *, with_page_token: bool | None = None) -> int:
        """How many requests hit paths starting with ``path_prefix`` (optionally with/without a token)."""
        return sum(
            1
            for r in self.requests
            if r.path.startswith(path_prefix)
            and (with_page_token is None or with_page_token == (r.page_token is not None))
        )

    def clear_requests(self) -> None:
        with self._lock:
            self._requests.clear()

    # --- fault injection -----------------------------------------------------------------------

    def add_fault(self, fault: Fault) -> Fault:
        with self._lock:
            self._faults.append(fault)
        return fault

    def fail_next(
        self,
        path_prefix: str = "/",
        status: int = 500,
        *,
        headers: Mapping[str, str] | None = None,
        body: bytes | None = None,
        times: int | None = 1,
        with_page_token: bool | None = None,
    ) -> Fault:
        """Answer the next ``times`` matching requests with ``status`` (default Calendly-shaped JSON body)."""
        return self.add_fault(
            Fault(
                path_prefix,
                "status",
                times=times,
                status=status,
                headers=dict(headers or {}),
                body=body,
                with_page_token=with_page_token,
            )
        )

    def rate_limit_next(self, path_prefix: str = "/", *, reset: float = 1, times: int | None = 1) -> Fault:
        """429 with ``X-RateLimit-Remaining: 0`` and ``X-RateLimit-Reset: <reset>`` (Retry-After unset)."""
        headers = {"X-RateLimit-Limit": "500", "X-RateLimit-Remaining": "0", "X-RateLimit-Reset": f"{reset:g}"}
        return self.fail_next(path_prefix, 429, headers=headers, times=times)

    def reset_next(self, path_prefix: str = "/", *, times: int | None = 1) -> Fault:
        """Close the connection with a TCP reset instead of answering."""
        return self.add_fault(Fault(path_prefix, "reset", times=times))

    def delay_next(self, path_prefix: str = "/", seconds: float = 1.0, *, times: int | None = 1) -> Fault:
        """Wait ``seconds`` before answering normally (longer than the client's read timeout → timeout)."""
        return self.add_fault(Fault(path_prefix, "delay", times=times, seconds=seconds))

    def truncate_next(self, path_prefix: str = "/", *, keep: float = 0.5, times: int | None = 1) -> Fault:
        """Answer 200 with only the first ``keep`` fraction of the JSON body (Content-Length matching)."""
        return self.add_fault(Fault(path_prefix, "truncate", times=times, keep=keep))

    def trickle_next(
        self, path_prefix: str, part: Literal["head", "body"], *, seconds: float = 0.05, times: int | None = 1
    ) -> Fault:
        """Carry the request out (a write too), then send the answer's ``part`` one byte every ``seconds``: each
        read of the client is answered well within its read timeout, and the answer (padded) takes minutes."""
        return self.add_fault(
            Fault(path_prefix, "trickle_head" if part == "head" else "trickle_body", times=times, seconds=seconds)
        )

    def stale_page_token(self, path_prefix: str = "/", *, times: int | None = 1) -> Fault:
        """Reject requests carrying a ``page_token`` with Calendly's 400 ``page_token: is invalid``."""
        body = _error_reply(400, details=[{"parameter": "page_token", "message": "is invalid"}]).body
        return self.add_fault(Fault(path_prefix, "status", times=times, status=400, body=body, with_page_token=True))

    def invalid_item(self, page: int, index: int = 0, field: str = "duration", value: Any = "sixty") -> None:
        """Make item ``index`` of event-types page ``page`` (1-based) carry ``field: value``."""
        with self._lock:
            self._invalid_items[(page, index)] = (field, value)
            self._listings.clear()

    def loop_pagination(self, at_page: int = 2, back_to: int = 2) -> None:
        """Make event-types page ``at_page`` link to page ``back_to`` (2 ≤ back_to ≤ at_page) again."""
        if not 2 <= back_to <= at_page:
            raise ValueError("need 2 <= back_to <= at_page: page 1 is fetched without a token")
        with self._lock:
            self._loop = (at_page, back_to)
            self._listings.clear()

    def foreign_next_page(self, at_page: int = 1, origin: str = "http://calendly.evil.test:8080") -> None:
        """Make event-types page ``at_page`` put its ``next_page`` on another origin (token still valid)."""
        with self._lock:
            self._foreign = (at_page, origin.rstrip("/"))
            self._listings.clear()

    def apply_then_reset_next(self, path_prefix: str = "/invitees", *, times: int | None = 1) -> Fault:
        """Carry out the write (e.g. create the invitee), then reset the connection instead of answering."""
        return self.add_fault(Fault(path_prefix, "apply_then_reset", times=times))

    def apply_then_delay_next(
        self, path_prefix: str = "/invitees", seconds: float = 5.0, *, times: int | None = 1
    ) -> Fault:
        """Carry out the write, then answer only after ``seconds`` (beyond the client's read timeout)."""
        return self.add_fault(Fault(path_prefix, "apply_then_delay", times=times, seconds=seconds))

    def hang_next(self, path_prefix: str = "/invitees", seconds: float = 5.0, *, times: int | None = 1) -> Fault:
        """Hold the request for ``seconds`` (or until ``released``) without carrying it out, then reset the
        connection."""
        return self.add_fault(Fault(path_prefix, "hang", times=times, seconds=seconds))

    def refuse_plan_next(self, *, times: int | None = 1) -> Fault:
        """POST /invitees answered with the Scheduling API's 403 plan refusal."""
        body = _error_reply(
            403,
            "The Scheduling API is only available on paid Calendly plans. Upgrade your plan to access this feature.",
        ).body
        return self.fail_next("/invitees", 403, body=body, times=times)

    def booking_rate_limit_next(self, *, reset: float = 1, times: int | None = 1) -> Fault:
        """429 as POST /invitees answers once its own limit (10 a minute on paid plans) is spent."""
        headers = {"X-RateLimit-Limit": "10", "X-RateLimit-Remaining": "0", "X-RateLimit-Reset": f"{reset:g}"}
        return self.fail_next("/invitees", 429, headers=headers, times=times)

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()
            self._invalid_items.clear()
            self._loop = None
            self._foreign = None
            self._listings.clear()

    # --- request handling ------------------------------------------------------------------------

    def _handle(self, handler: _Handler, *, allowed: bool = True) -> None:
        split = urlsplit(handler.path)
        params = {key: values[-1] for key, values in parse_qs(split.query, keep_blank_values=True).items()}
        length = int(handler.headers.get("Content-Length") or 0)
        body = handler.rfile.read(length) if length > 0 else b""
        with self._lock:
            prefix = self._prefix
            if prefix and split.path != prefix and not split.path.startswith(prefix + "/"):
                self.strays.append(f"{handler.command} {split.path}")  # an earlier test's base URL (begin_test)
                stray = True
            else:
                stray = False
                path = split.path[len(prefix) :].rstrip("/") or "/"
                self._requests.append(
                    RecordedRequest(
                        handler.command, path, params, {k.lower(): v for k, v in handler.headers.items()}, body
                    )
                )
                fault = next(
                    (f for f in self._faults if f.matches(path, params) and f.method in (None, handler.command)), None
                )
                if fault is not None and fault.times is not None:
                    fault.times -= 1
        if stray:
            self._send(handler, _error_reply(404, "Not a path of this test's fake."))
            return
        if fault is not None and fault.action == "reset":
            self._reset(handler)
            return
        if handler.command == "GET" and self.page_latency > 0 and self._stopping.wait(self.page_latency):
            return
        if fault is not None and fault.action == "delay":
            fault.released.wait(fault.seconds)
            if self._stopping.is_set():
                return  # the fake is shutting down: drop the request rather than hold up stop()
        if fault is not None and fault.action == "hang":
            fault.released.wait(fault.seconds)  # set by stop() too
            self._reset(handler)  # never carried out, never answered
            return
        if fault is not None and fault.action == "status":
            reply = _Reply(fault.status, fault.body if fault.body is not None else _error_reply(fault.status).body)
            self._send(handler, reply, extra_headers=fault.headers)
            return
        if not allowed:
            reply = _error_reply(405, "PUT and PATCH are not supported by the fake.")
        elif handler.headers.get("Authorization") != f"Bearer {self.token}":
            reply = _error_reply(401)
        else:
            with self._lock:
                if handler.command == "GET":
                    reply = self._route(path, dict(params))
                elif path.startswith("/webhook_subscriptions"):
                    reply = self._write_webhook_subscription(handler.command, path, body)
                else:
                    reply = self.writes.route(handler.command, path, body)
        if fault is not None and fault.action == "apply_then_reset":
            # The hard fault of R8: the write happened, the answer never arrives.
            self._reset(handler)
            return
        if fault is not None and fault.action == "apply_then_delay":
            fault.released.wait(fault.seconds)  # set by stop() too
            if self._stopping.is_set():
                return
        if fault is not None and fault.action == "apply_then_status":  # carried out, answered as scripted
            reply = _Reply(fault.status, fault.body or b"")
        if fault is not None and fault.action == "truncate":
            reply = _Reply(reply.status, reply.body[: int(len(reply.body) * fault.keep)], reply.headers)
        if fault is not None and fault.action in ("trickle_head", "trickle_body"):
            self._trickle(handler, reply, fault)
            return
        self._send(handler, reply)

    def _trickle(self, handler: _Handler, reply: _Reply, fault: Fault) -> None:
        # padded (a header, or JSON's trailing blanks) so that even a short answer takes minutes to trickle
        if fault.action == "trickle_head":
            reply = _Reply(reply.status, reply.body, (*reply.headers, ("X-Padding", "." * _TRICKLE_PADDING)))
        else:
            reply = _Reply(reply.status, reply.body + b" " * _TRICKLE_PADDING, reply.headers)
        handler.wfile = io.BytesIO()  # the answer as _send writes it, to be sent here a byte at a time
        self._send(handler, reply)
        answer = handler.wfile.getvalue()
        head_end = answer.index(b"\r\n\r\n") + 4
        steady, trickled = (b"", answer) if fault.action == "trickle_head" else (answer[:head_end], answer[head_end:])
        handler.close_connection = True
        try:
            handler.connection.sendall(steady)
            for byte in trickled:
                if self._stopping.wait(fault.seconds):
                    return
                handler.connection.sendall(bytes([byte]))
        except OSError:  # the client gave up and hung up
            return

    @staticmethod
    def _reset(handler: _Handler) -> None:
        # SO_LINGER with a zero timeout turns close() into a TCP RST: the client sees a reset, not an EOF.
        handler.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        handler.close_connection = True
        handler.connection.close()

    @staticmethod
    def _send(handler: _Handler, reply: _Reply, extra_headers: Mapping[str, str] | None = None) -> None:
        headers = {
            "Content-Type": "application/json; charset=utf-8",
            "X-RateLimit-Limit": "500",
            "X-RateLimit-Remaining": "499",
            "X-RateLimit-Reset": "60",
        }
        headers.update(dict(reply.headers))
        headers.update(extra_headers or {})
        handler.send_response(reply.status)
        for name, value in headers.items():
            handler.send_header(name, value)
        handler.send_header("Content-Length", str(len(reply.body)))
        handler.end_headers()
        handler.wfile.write(reply.body)

    def _route(self, path: str, params: dict[str, str]) -> _Reply:
        if path == "/users/me":
            return _json_reply({"resource": self.user})
        if path == "/event_type_available_times":
            return self.writes.available_times(params)
        if path == "/event_types":
            return self._list_event_types(params)
        if path == "/scheduled_events":
            return self._list_scheduled_events(params)
        if match := _EVENT_TYPE_RE.match(path):
            found = next((t for t in self._event_types if _last_segment(t["uri"]) == match[1]), None)
            return _json_reply({"resource": found}) if found is not None else _error_reply(404)
        if match := _EVENT_RE.match(path):
            event = next((e for e in self._scheduled_events if _last_segment(e["uri"]) == match[1]), None)
            return _json_reply({"resource": event}) if event is not None else _error_reply(404)
        if match := _INVITEES_RE.match(path):
            return self._list_invitees(match[1], params)
        if match := _INVITEE_RE.match(path):
            found = next((i for i in self._invitees.get(match[1], []) if _last_segment(i["uri"]) == match[2]), None)
            return _json_reply({"resource": found}) if found is not None else _error_reply(404)
        if path == "/webhook_subscriptions":
            return self._list_webhook_subscriptions(params)
        if path.startswith("/webhook_subscriptions/"):
            found = [sub for sub in self.webhook_subscriptions if _last_segment(sub["uri"]) == _last_segment(path)]
            return _json_reply({"resource": found[0]}) if found else _error_reply(404)
        return _error_reply(404)

    # --- webhook subscriptions -----------------------------------------------------------------

    def _write_webhook_subscription(self, method: str, path: str, body: bytes) -> _Reply:
        if method == "DELETE":
            uuid = _last_segment(path)
            found = [sub for sub in self.webhook_subscriptions if _last_segment(sub["uri"]) == uuid]
            if not found or path.rstrip("/") == "/webhook_subscriptions":
                return _error_reply(404)
            self.webhook_subscriptions.remove(found[0])
            return _Reply(204, b"")
        if path != "/webhook_subscriptions":
            return _error_reply(404)
        try:
            request = json.loads(body)
        except ValueError:
            return _error_reply(400, "The supplied parameters are invalid.")
        problems = [
            {"parameter": name, "message": "is required"}
            for name in ("url", "events", "organization", "scope")
            if not request.get(name)
        ]
        if request.get("scope") == "user" and not request.get("user"):
            problems.append({"parameter": "user", "message": "is required for user scope"})
        if problems:
            return _error_reply(400, "The supplied parameters are invalid.", problems)
        if request["organization"] != self.user.get("current_organization"):
            return _error_reply(403, "This user is not in your organization")
        callback_url = _as_kept(request["url"])
        if any(sub["callback_url"] == callback_url for sub in self.webhook_subscriptions):
            return _error_reply(409, "Hook with this url already exists")
        number = len(self.webhook_signing_keys) + 1
        now = _iso(datetime.now(UTC))
        subscription = {
            "uri": f"{API_ORIGIN}/webhook_subscriptions/WH{number:08d}",
            "callback_url": callback_url,
            "created_at": now,
            "updated_at": now,
            "retry_started_at": None,
            "state": "active",
            "events": list(request["events"]),
            "scope": request["scope"],
            "organization": request["organization"],
            "user": request.get("user"),
            "creator": self.user["uri"],
        }
        self.webhook_subscriptions.append(subscription)
        self.webhook_signing_keys[subscription["uri"]] = str(request.get("signing_key") or "")
        return _Reply(201, json.dumps({"resource": subscription}).encode())

    def _list_webhook_subscriptions(self, params: dict[str, str]) -> _Reply:
        if not params.get("organization") or params.get("scope") not in ("user", "organization"):
            return _error_reply(400, details=[{"parameter": "scope", "message": "organization and scope are required"}])
        if (error := _count_error(params)) is not None:
            return error
        found = [
            ((sub["created_at"], sub["uri"]), sub)
            for sub in self.webhook_subscriptions
            if sub["scope"] == params["scope"] and ("user" not in params or sub["user"] == params["user"])
        ]
        return self._keyset_page("/webhook_subscriptions", params, found, descending=False)

    # --- event types (precomputed pages) -------------------------------------------------------

    def _scope_error(self, params: Mapping[str, str]) -> _Reply | None:
        if "user" not in params and "organization" not in params:
            return _error_reply(
                400, details=[{"parameter": "user", "message": "Either organization or user are required"}]
            )
        organization = params.get("organization")
        if organization is not None and organization != self.user.get("current_organization"):
            return _error_reply(403, "This user is not in your organization")
        return None

    def _list_event_types(self, params: dict[str, str]) -> _Reply:
        error = self._scope_error(params) or _count_error(params)
        if error is not None:
            return error
        token = params.pop("page_token", None)
        listing = self._event_type_listing(params)
        index = 0
        if token is not None:
            try:
                index = listing.tokens.index(token)
            except ValueError:
                return _error_reply(400, details=[{"parameter": "page_token", "message": "is invalid"}])
        return _Reply(200, listing.pages[index])

    def _event_type_listing(self, params: Mapping[str, str]) -> _Listing:
        key = tuple(params.items())
        cached = self._listings.get(key)
        if cached is not None:
            return cached
        count = int(params.get("count", "20"))
        items = [t for t in self._event_types if _event_type_selected(t, params)]
        chunks = [items[i : i + count] for i in range(0, len(items), count)] or [[]]
        digest = hashlib.sha1(repr(key).encode()).hexdigest()[:10]
        tokens = [""] + [f"{digest}{n:05d}" for n in range(2, len(chunks) + 1)]
        pages: list[bytes] = []
        for n, chunk in enumerate(chunks, start=1):
            collection: list[dict[str, Any]] = list(chunk)
            for (page, index), (name, value) in self._invalid_items.items():
                if page == n and index < len(collection):
                    collection[index] = {**collection[index], name: value}
            next_index: int | None = n if n < len(chunks) else None  # 0-based index of page n+1
            if self._loop is not None and self._loop[0] == n:
                next_index = self._loop[1] - 1
            origin = self.base_url
            if self._foreign is not None and self._foreign[0] == n:
                origin = self._foreign[1]
            pagination = {
                "count": len(collection),
                "next_page": _page_url(origin, "/event_types", params, tokens[next_index])
                if next_index is not None
                else None,
                "previous_page": _page_url(self.base_url, "/event_types", params, tokens[n - 2]) if n > 1 else None,
                "next_page_token": tokens[next_index] if next_index is not None else None,
                "previous_page_token": (tokens[n - 2] or None) if n > 1 else None,
            }
            pages.append(
                json.dumps({"collection": collection, "pagination": pagination}, separators=(",", ":")).encode()
            )
        listing = _Listing(pages, tokens)
        self._listings[key] = listing
        return listing

    # --- scheduled events and invitees (keyset tokens) -------------------------------------------

    def _list_scheduled_events(self, params: dict[str, str]) -> _Reply:
        error = self._scope_error(params) or _count_error(params)
        if error is not None:
            return error
        sort = params.get("sort", "start_time:asc")
        if sort not in ("start_time:asc", "start_time:desc"):
            return _error_reply(400, details=[{"parameter": "sort", "message": "is invalid"}])
        try:
            low = _parse_iso(params["min_start_time"]) if "min_start_time" in params else None
            high = _parse_iso(params["max_start_time"]) if "max_start_time" in params else None
        except ValueError:
            return _error_reply(400, details=[{"parameter": "min_start_time", "message": "is invalid"}])
        user = params.get("user")
        rows = []
        for event in self._scheduled_events:
            start = _parse_iso(event["start_time"])
            if low is not None and start < low:
                continue
            if high is not None and start >= high:
                continue
            if "status" in params and event["status"] != params["status"]:
                continue
            if user is not None and user not in {m.get("user") for m in event.get("event_memberships", [])}:
                continue
            if "invitee_email" in params:
                invitees = self._invitees.get(_last_segment(event["uri"]), [])
                if params["invitee_email"] not in {i["email"] for i in invitees}:
                    continue
            rows.append(((start.isoformat(), event["uri"]), event))
        return self._keyset_page("/scheduled_events", params, rows, descending=sort.endswith("desc"))

    def _list_invitees(self, event_uuid: str, params: dict[str, str]) -> _Reply:
        if not any(_last_segment(e["uri"]) == event_uuid for e in self._scheduled_events):
            return _error_reply(404)
        error = _count_error(params)
        if error is not None:
            return error
        rows = [
            ((_parse_iso(item["created_at"]).isoformat(), item["uri"]), item)
            for item in self._invitees.get(event_uuid, [])
            if ("status" not in params or item["status"] == params["status"])
            and ("email" not in params or item["email"] == params["email"])
        ]
        descending = params.get("sort") == "created_at:desc"
        return self._keyset_page(f"/scheduled_events/{event_uuid}/invitees", params, rows, descending=descending)

    def _keyset_page(
        self,
        path: str,
        params: dict[str, str],
        rows: list[tuple[tuple[str, str], dict[str, Any]]],
        *,
        descending: bool,
    ) -> _Reply:
        rows.sort(key=lambda row: row[0], reverse=descending)
        token = params.pop("page_token", None)
        if token is not None:
            try:
                after = tuple(json.loads(base64.urlsafe_b64decode(token.encode())))
            except ValueError:
                return _error_reply(400, details=[{"parameter": "page_token", "message": "is invalid"}])
            rows = [row for row in rows if (row[0] < after if descending else row[0] > after)]
        count = int(params.get("count", "20"))
        page, rest = rows[:count], rows[count:]
        next_token = (
            base64.urlsafe_b64encode(json.dumps(list(page[-1][0])).encode()).decode() if rest and page else None
        )
        return _json_reply(
            {
                "collection": [item for _, item in page],
                "pagination": {
                    "count": len(page),
                    "next_page": _page_url(self.base_url, path, params, next_token) if next_token else None,
                    "previous_page": None,
                    "next_page_token": next_token,
                    "previous_page_token": None,
                },
            }
        )


def _event_type_selected(event_type: Mapping[str, Any], params: Mapping[str, str]) -> bool:
    if event_type.get("deleted_at"):
        return False
    if "active" in params and str(bool(event_type.get("active"))).lower() != params["active"].lower():
        return False
    if "user" in params:
        profile = event_type.get("profile") or {}
        return bool(profile.get("owner") == params["user"])
    return True


def _count_error(params: Mapping[str, str]) -> _Reply | None:
    raw = params.get("count", "20")
    if not raw.isdigit() or not 1 <= int(raw) <= 100:
        return _error_reply(400, details=[{"parameter": "count", "message": "must be between 1 and 100"}])
    return None


def _page_url(origin: str, path: str, params: Mapping[str, str], token: str) -> str:
    query = {key: value for key, value in params.items() if key != "page_token"}
    query["page_token"] = token
    return f"{origin}{path}?{urlencode(query)}"


def _as_kept(url: str) -> str:
    """A subscription's URL as the fake keeps it, as Calendly may (UNCONFIRMED; RFC 3986 6.2.2-6.2.3): the host
    in lower case, the scheme's default port dropped; the user and password and the path as given."""
    parts = urlsplit(url)
    default = parts.port == {"https": 443, "http": 80}.get(parts.scheme)
    user = parts.netloc.rpartition("@")[0]
    host = f"[{parts.hostname}]" if ":" in (parts.hostname or "") else parts.hostname or ""
    host = f"{user}@{host}" if user else host
    netloc = host if parts.port is None or default else f"{host}:{parts.port}"
    return urlunsplit(parts._replace(netloc=netloc))


def _last_segment(uri: str) -> str:
    return uri.rstrip("/").rsplit("/", 1)[-1]


# --- the write side ---------------------------------------------------------------------------------

_WRITE_EVENT_RE = re.compile(rf"^/scheduled_events/{_UUID_SEGMENT}/cancellation$")
_NO_SHOW_RE = re.compile(rf"^/invitee_no_shows/{_UUID_SEGMENT}$")
# Open hours of the default availability: every day, on the hour, 09:00 to 16:00 UTC starts.
_DEFAULT_HOURS = range(9, 17)
_GROUP_LIMIT = 3


class _WriteSide:
    """Calendly's scheduling side, in memory: open slots, created invitees, cancellations, no-shows, links.

    Slots: by default every event type is open every day at the hours of ``_DEFAULT_HOURS`` (UTC), or at
    exactly the starts given to ``set_open_starts``; a start is taken once it holds an active invitee (a
    group type holds ``_GROUP_LIMIT``). Created events and invitees join the fake's scheduled-event data,
    so listings, lookups by ``invitee_email`` and the pull see them. All methods run under the fake's lock.
    """

    def __init__(self, fake: FakeCalendly) -> None:
        self.fake = fake
        self.open_starts: dict[str, list[datetime]] = {}
        self.links: list[dict[str, Any]] = []
        self.no_shows: dict[str, dict[str, Any]] = {}
        self._serial = 0

    # -- helpers --------------------------------------------------------------------------------

    def _next(self, prefix: str) -> str:
        self._serial += 1
        return f"{prefix}{self._serial:06d}W"

    def _event_type(self, uri: str) -> dict[str, Any] | None:
        return next((t for t in self.fake._event_types if t["uri"] == uri), None)

    def _events_at(self, event_type_uri: str, start: datetime) -> list[dict[str, Any]]:
        return [
            event
            for event in self.fake._scheduled_events
            if event.get("event_type") == event_type_uri
            and event["status"] == "active"
            and _parse_iso(event["start_time"]) == start
        ]

    def _active_invitees(self, event: Mapping[str, Any]) -> list[dict[str, Any]]:
        return [i for i in self.fake._invitees.get(_last_segment(event["uri"]), []) if i["status"] == "active"]

    def _capacity(self, event_type: Mapping[str, Any]) -> int:
        return _GROUP_LIMIT if event_type.get("kind") == "group" else 1

    def remaining(self, event_type: Mapping[str, Any], start: datetime) -> int:
        taken = sum(len(self._active_invitees(event)) for event in self._events_at(event_type["uri"], start))
        return max(0, self._capacity(event_type) - taken)

    def _candidates(self, event_type_uri: str, low: datetime, high: datetime) -> list[datetime]:
        if event_type_uri in self.open_starts:
            return sorted(start for start in self.open_starts[event_type_uri] if low <= start < high)
        starts = []
        day = low.replace(hour=0, minute=0, second=0, microsecond=0)
        while day < high:
            for hour in _DEFAULT_HOURS:
                start = day.replace(hour=hour)
                if low <= start < high:
                    starts.append(start)
            day += timedelta(days=1)
        return starts

    # -- GET /event_type_available_times ---------------------------------------------------------

    def available_times(self, params: Mapping[str, str]) -> _Reply:
        missing = [name for name in ("event_type", "start_time", "end_time") if not params.get(name)]
        if missing:
            return _error_reply(400, details=[{"parameter": name, "message": "is required"} for name in missing])
        try:
            low, high = _parse_iso(params["start_time"]), _parse_iso(params["end_time"])
        except ValueError:
            return _error_reply(400, details=[{"parameter": "start_time", "message": "is invalid"}])
        if low < datetime.now(UTC):
            return _error_reply(400, details=[{"parameter": "start_time", "message": "must be in the future"}])
        if high <= low or high - low > timedelta(days=31):
            return _error_reply(
                400, details=[{"parameter": "end_time", "message": "must be after start_time and within 31 days"}]
            )
        event_type = self._event_type(params["event_type"])
        if event_type is None:
            return _error_reply(404)
        slug = event_type.get("slug") or "event"
        collection = []
        for start in self._candidates(event_type["uri"], low, high):
            remaining = self.remaining(event_type, start)
            if remaining > 0:
                collection.append(
                    {
                        "status": "available",
                        "invitees_remaining": remaining,
                        "start_time": _iso(start),
                        "scheduling_url": f"https://calendly.com/builder/{slug}/{_iso(start)[:16]}",
                    }
                )
        return _json_reply({"collection": collection})

    # -- writes ----------------------------------------------------------------------------------

    def route(self, method: str, path: str, body: bytes) -> _Reply:
        try:
            data = json.loads(body) if body else {}
        except ValueError:
            return _error_reply(400, "The request body is not valid JSON.")
        if method == "POST" and path == "/invitees":
            return self.create_invitee(data)
        if method == "POST" and path == "/invitee_no_shows":
            return self.create_no_show(data)
        if method == "POST" and path == "/scheduling_links":
            return self.create_link(data)
        if method == "POST" and (match := _WRITE_EVENT_RE.match(path)):
            return self.cancel_event(match[1], data)
        if method == "DELETE" and (match := _NO_SHOW_RE.match(path)):
            if self.no_shows.pop(match[1], None) is None:
                return _error_reply(404)
            for invitees in self.fake._invitees.values():
                for invitee in invitees:
                    if invitee.get("no_show") and _last_segment(invitee["no_show"]["uri"]) == match[1]:
                        invitee["no_show"] = None
            return _Reply(204, b"")
        return _error_reply(404)

    def create_invitee(self, data: Mapping[str, Any]) -> _Reply:
        invalid: list[dict[str, str]] = []
        event_type = self._event_type(str(data.get("event_type") or ""))
        if event_type is None:
            return _error_reply(404)
        invitee = data.get("invitee")
        if not isinstance(invitee, Mapping) or not invitee.get("email") or not invitee.get("timezone"):
            invalid.append({"parameter": "invitee", "message": "email and timezone are required"})
            invitee = {}
        try:
            start = _parse_iso(str(data.get("start_time")))
        except ValueError:
            return _error_reply(400, details=[{"parameter": "start_time", "message": "is invalid"}])
        answers = data.get("questions_and_answers") or []
        questions = {q["name"]: q for q in event_type.get("custom_questions") or [] if q.get("enabled", True)}
        for index, item in enumerate(answers):
            if not isinstance(item, Mapping) or set(item) != {"question", "answer", "position"}:
                invalid.append({"parameter": f"questions_and_answers[{index}]", "message": "is invalid"})
            elif item["question"] not in questions:
                invalid.append({"parameter": f"questions_and_answers[{index}].question", "message": "is unknown"})
        answered = {item.get("question") for item in answers if isinstance(item, Mapping)}
        for name, question in questions.items():
            if question.get("required") and name not in answered:
                invalid.append({"parameter": "questions_and_answers", "message": f"{name} is required"})
        location = data.get("location")
        kinds = [place.get("kind") for place in event_type.get("locations") or []]
        if location is not None and (not isinstance(location, Mapping) or location.get("kind") not in kinds):
            invalid.append({"parameter": "location", "message": "does not match the event type"})
        if invalid:
            return _error_reply(400, "The supplied parameters are invalid.", invalid)
        open_now = start in self._candidates(event_type["uri"], start, start + timedelta(seconds=1))
        if start <= datetime.now(UTC) or not open_now or self.remaining(event_type, start) <= 0:
            return _error_reply(
                400,
                "The supplied parameters are invalid.",
                [
                    {
                        "parameter": "event.start_time",
                        "message": "That start time has been filled",
                        "code": "already_filled",
                    }
                ],
            )
        now = datetime.now(UTC)
        existing = self._events_at(event_type["uri"], start) if event_type.get("kind") == "group" else []
        if existing:
            event = existing[0]
        else:
            event = make_scheduled_event(0, event_type["uri"], start, duration_minutes=int(event_type["duration"]))
            event["uri"] = f"{API_ORIGIN}/scheduled_events/{self._next('EVW')}"
            event["name"] = event_type.get("name")
            event["created_at"] = event["updated_at"] = _iso(now)
            owner = (event_type.get("profile") or {}).get("owner") or DEFAULT_USER_URI
            event["event_memberships"] = [{"user": owner, "user_email": "ada@example.com", "user_name": "Ada Builder"}]
            event["location"] = {
                "type": kinds[0] if kinds else "custom",
                "status": "pushed",
                "join_url": f"https://zoom.example/j/{_last_segment(event['uri'])}",
            }
            self.fake._scheduled_events.append(event)
        uuid = self._next("INVW")
        created = make_invitee(event["uri"], 0, email=str(invitee["email"]), created_at=now)
        created.update(
            {
                "uri": f"{event['uri']}/invitees/{uuid}",
                "name": invitee.get("name") or invitee.get("first_name"),
                "timezone": invitee["timezone"],
                "questions_and_answers": [dict(item) for item in answers],
                "cancel_url": f"https://calendly.com/cancellations/{uuid}",
                "reschedule_url": f"https://calendly.com/reschedulings/{uuid}",
                "scheduling_method": "api",
            }
        )
        self.fake._invitees.setdefault(_last_segment(event["uri"]), []).append(created)
        active = len(self._active_invitees(event))
        event["invitees_counter"] = {"total": active, "active": active, "limit": self._capacity(event_type)}
        return _Reply(201, json.dumps({"resource": created}).encode())

    def cancel_event(self, uuid: str, data: Mapping[str, Any]) -> _Reply:
        event = next((e for e in self.fake._scheduled_events if _last_segment(e["uri"]) == uuid), None)
        if event is None:
            return _error_reply(404)
        if event["status"] == "canceled":
            return _error_reply(403, "Event is already canceled")
        if _parse_iso(event["start_time"]) <= datetime.now(UTC):
            return _error_reply(403, "Event in the past")
        now = _iso(datetime.now(UTC))
        cancellation = {
            "canceled_by": "Ada Builder",
            "reason": data.get("reason"),
            "canceler_type": "host",
            "created_at": now,
        }
        event.update({"status": "canceled", "cancellation": cancellation, "updated_at": now})
        for invitee in self.fake._invitees.get(uuid, []):
            if invitee["status"] == "active":
                invitee.update({"status": "canceled", "cancellation": cancellation, "updated_at": now})
        return _Reply(201, json.dumps({"resource": cancellation}).encode())

    def create_no_show(self, data: Mapping[str, Any]) -> _Reply:
        uri = str(data.get("invitee") or "")
        for invitees in self.fake._invitees.values():
            for invitee in invitees:
                if invitee["uri"] == uri:
                    uuid = self._next("NS")
                    no_show = {
                        "uri": f"{API_ORIGIN}/invitee_no_shows/{uuid}",
                        "invitee": uri,
                        "created_at": _iso(datetime.now(UTC)),
                    }
                    invitee["no_show"] = {"uri": no_show["uri"], "created_at": no_show["created_at"]}
                    self.no_shows[uuid] = no_show
                    return _Reply(201, json.dumps({"resource": no_show}).encode())
        return _error_reply(404)

    def create_link(self, data: Mapping[str, Any]) -> _Reply:
        if data.get("owner_type") != "EventType" or data.get("max_event_count") not in (1, "1"):
            return _error_reply(400, details=[{"parameter": "owner_type", "message": "is invalid"}])
        if self._event_type(str(data.get("owner") or "")) is None:
            return _error_reply(404)
        link = {
            "booking_url": f"https://calendly.com/s/{self._next('LINK').lower()}",
            "owner": data["owner"],
            "owner_type": "EventType",
        }
        self.links.append(link)
        return _Reply(201, json.dumps({"resource": link}).encode())

    def book_as_visitor(
        self, event_type_uri: str, start: datetime, email: str, name: str = "Visitor"
    ) -> dict[str, Any]:
        """A booking made on Calendly's own page (a scheduling link, the embed): as POST /invitees does,
        with every required question answered "n/a"."""
        event_type = self._event_type(event_type_uri) or {}
        answers = [
            {"question": q["name"], "answer": "n/a", "position": q["position"]}
            for q in event_type.get("custom_questions") or []
            if q.get("enabled", True) and q.get("required")
        ]
        reply = self.create_invitee(
            {
                "event_type": event_type_uri,
                "start_time": _iso(start),
                "invitee": {"email": email, "name": name, "timezone": "UTC"},
                "questions_and_answers": answers,
            }
        )
        if reply.status != 201:
            raise RuntimeError(reply.body.decode())
        return dict(json.loads(reply.body)["resource"])
