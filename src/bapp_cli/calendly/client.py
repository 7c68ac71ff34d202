"""Synchronous Calendly API v2 client: timeouts, bounded retries, keyset pagination, strict parsing.

Failure mapping (the exit codes are README.md's table):

* 401/403 → :class:`AuthError` (exit 4) at once: a revoked token or a missing scope needs an operator,
  and retrying would only burn the rate limit.
* 429 → wait ``X-RateLimit-Reset`` seconds (else ``Retry-After``, else backoff), 5xx and transport
  failures (connect/read errors and timeouts, connection resets) → exponential backoff with jitter.
  httpx's timeouts bound each read, so a server or proxy trickling a byte at a time never meets them: one
  attempt (connecting, sending and the whole answer) also has a deadline, the connect plus the read timeout
  (:class:`_DeadlineBackend`), past which it is a timeout like any other.
  Both share one budget of ``max_retries`` retries per request; every wait is capped at ``max_wait``.
  When the budget is spent, or a 429's reset lies past every wait it has left → :class:`RemoteError` (exit 9).
* 404 → :class:`NotFound` (exit 7) from the single-resource fetches (:meth:`CalendlyClient.get_event_type`,
  ``get_scheduled_event``, ``get_invitee``) and the writes, where "gone" is an answer; everywhere else
  (listings, ``/users/me``) a 404 means a wrong base URL or scope → :class:`RemoteError`.
* Other statuses, redirects (never followed, so the token cannot travel elsewhere), invalid JSON and
  items that fail the models → :class:`RemoteError` naming the page and field path.
* Listings: a 400 on a request carrying a ``page_token`` means the token went stale; the listing restarts
  once (scheduled events resume from the last ``start_time`` instead), a second time → RemoteError. A
  repeated token or more than ``max_pages`` pages → RemoteError (loop). A ``next_page`` on another origin
  than the base URL → RemoteError, and it is never requested.

Every message is one line and never contains the token: the token is checked to be header-safe up front
(h11 echoes illegal header values in its errors), httpx exceptions are not chained, and every message is
scrubbed of the token as a last line of defence.
"""

from __future__ import annotations

import json
import math
import os
import queue
import random
import re
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from types import TracebackType
from typing import TYPE_CHECKING, Any, Generic, TypeVar, cast

import httpcore
import httpx

from bapp_cli.errors import DOCUMENT_ERRORS, AuthError, ConfigError, Conflict, InvalidInput, NotFound, RemoteError
from bapp_cli.services.plain_text import CONTROL_CHARACTER, json_may_hold_controls, strip_controls

if TYPE_CHECKING:
    import ssl

    from pydantic import BaseModel

    from bapp_cli.calendly.models import (
        AvailableTime,
        ErrorBody,
        EventType,
        Invitee,
        InviteeNoShow,
        ListedEventType,
        Page,
        Pagination,
        ScheduledEvent,
        SchedulingLink,
        User,
        WebhookSubscription,
    )

__all__ = [
    "DEFAULT_BASE_URL",
    "DEFAULT_TIMEOUT",
    "MAX_AVAILABILITY_WINDOW",
    "CalendlyClient",
    "CalendlyRefusal",
    "ListingPage",
    "OutcomeUnknown",
    "SlotTaken",
    "names_an_invitee",
]

DEFAULT_BASE_URL = "https://api.calendly.com"
DEFAULT_TIMEOUT = httpx.Timeout(connect=5.0, read=30.0, write=30.0, pool=5.0)

T = TypeVar("T")
R = TypeVar("R", bound="BaseModel")

# Calendly documents count as 1..100; bapp always asks for full pages to keep request counts low.
_MAX_COUNT = 100
# Spreads clients that were all told the same reset time, without meaningfully lengthening the wait.
_RATE_LIMIT_JITTER = 1.0
_MAX_MESSAGE = 300
# An answer's size unpacked: a page of 100 event types is well under a megabyte. A larger one (or a few MB of gzip
# that unpack to gigabytes) was read whole into memory, and parsed into twice that.
_MAX_ANSWER = 64 << 20
_DEFAULT_PORTS = {"http": 80, "https": 443}
_UUID_RE = re.compile(r"^[A-Za-z0-9_-]+$")
_TOKEN_RE = re.compile(r"^[\x21-\x7e]+$")

_HINT_401 = (
    "The token was refused (expired or revoked): create a new personal access token in Calendly "
    "(Integrations → API & Webhooks) and update CALENDLY_API_KEY or calendly.token_file."
)
_HINT_403 = (
    "The token lacks a scope (users:read, event_types:read, scheduled_events:read) or the user is not an "
    "admin of the organization: check the token, or sync with --user instead of --organization."
)

# POST /invitees has its own per-user limits on top of the general ones (calendly-scheduling-api.md §2).
_BOOKING_RATE_LIMITS = "10 a minute, 50 an hour and 100 a day per user on paid plans"
# GET /event_type_available_times refuses windows longer than this (31 days since 2026-07-09).
MAX_AVAILABILITY_WINDOW = 31 * 24 * 3600


class _DeadlineStream(httpcore.NetworkStream):
    """A connection whose every read and write waits no longer than the current attempt of its thread has left."""

    def __init__(self, stream: httpcore.NetworkStream, attempt: threading.local) -> None:
        self._stream, self._attempt = stream, attempt

    def _bounded(self, timeout: float | None, error: type[httpcore.TimeoutException]) -> float | None:
        deadline: float | None = getattr(self._attempt, "deadline", None)
        if deadline is None:
            return timeout
        left = deadline - time.monotonic()
        if left <= 0:
            raise error("the request's deadline passed")
        return left if timeout is None else min(timeout, left)

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._stream.read(max_bytes, self._bounded(timeout, httpcore.ReadTimeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._stream.write(buffer, self._bounded(timeout, httpcore.WriteTimeout))

    def close(self) -> None:
        self._stream.close()

    def start_tls(
        self, ssl_context: ssl.SSLContext, server_hostname: str | None = None, timeout: float | None = None
    ) -> httpcore.NetworkStream:
        bounded = self._bounded(timeout, httpcore.ConnectTimeout)
        return _DeadlineStream(self._stream.start_tls(ssl_context, server_hostname, bounded), self._attempt)

    def get_extra_info(self, info: str) -> Any:
        return self._stream.get_extra_info(info)


class _DeadlineBackend(httpcore.NetworkBackend):
    """httpcore's network backend with :class:`_DeadlineStream` connections: the hook between two reads that
    bounds a whole attempt, where httpx bounds each read (a trickle of a byte a second never ends)."""

    def __init__(self, backend: httpcore.NetworkBackend, attempt: threading.local) -> None:
        self._backend, self._attempt = backend, attempt

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.NetworkStream:
        stream = self._backend.connect_tcp(host, port, timeout, local_address, socket_options)
        return _DeadlineStream(stream, self._attempt)

    def sleep(self, seconds: float) -> None:
        self._backend.sleep(seconds)


@dataclass(frozen=True)
class ListingPage(Generic[T]):
    """One fetched page of a listing.

    ``number`` counts from 1 within the current pass. ``restarted`` is True on the first page of a pass
    that began again from page one after a stale page token: a consumer must drop what it gathered from
    earlier pages (``list_*`` methods do exactly that).
    """

    number: int
    items: list[T]
    restarted: bool = False


@dataclass
class _Request:
    path: str
    params: dict[str, str]

    @property
    def label(self) -> str:
        return f"Calendly GET {self.path}"


class SlotTaken(Conflict):
    """Calendly refused a booking because the start is no longer open (400 ``already_filled``, or 409)."""

    code = "slot_taken"


class OutcomeUnknown(RemoteError):
    """A write whose request may have reached Calendly but whose answer was lost (timeout, reset, 5xx).

    It must not be resent blindly: POST /invitees has no idempotency key, so a resend can double-book.
    """

    code = "outcome_unknown"


class UnreadableAnswer(RemoteError):
    """Calendly answered, with something bapp cannot read (not JSON, or a value outside its model): about that
    request only, where one Calendly cannot be asked at all is about every request (exit 9 either way)."""


class CalendlyRefusal(RemoteError):
    """A definite 4xx refusal of a write (other than auth, slot taken or rate limit): nothing was created."""

    code = "calendly_refused"

    def __init__(self, message: str, *, status: int, calendly_message: str, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.status = status
        self.calendly_message = calendly_message


class _StalePageToken(Exception):
    """A 400 answered a request that carried a page_token."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


@dataclass
class _Boundary:
    """Keyset position reached in a scheduled-events listing: the last start time and the URIs seen at it."""

    start_time: datetime | None = None
    uris: set[str] = field(default_factory=set)

    def advance(self, event: ScheduledEvent) -> None:
        if self.start_time is None or event.start_time > self.start_time:
            self.start_time = event.start_time
            self.uris = set()
        self.uris.add(event.uri)

    def already_seen(self, event: ScheduledEvent) -> bool:
        if self.start_time is None:
            return False
        return event.start_time < self.start_time or event.uri in self.uris


class CalendlyClient:
    """Reads users, event types, scheduled events and invitees from Calendly's API v2.

    ``transport`` lets tests inject ``httpx.MockTransport``; ``sleep`` and ``rng`` (uniform in [0, 1))
    make waits observable and deterministic. ``max_pages`` bounds one pass of a listing.
    """

    def __init__(
        self,
        base_url: str,
        token: str,
        *,
        transport: httpx.BaseTransport | None = None,
        timeout: httpx.Timeout | float | None = None,
        max_retries: int = 5,
        sleep: Callable[[float], None] = time.sleep,
        max_wait: float = 60.0,
        rng: Callable[[], float] = random.random,
        backoff_base: float = 0.5,
        backoff_cap: float = 30.0,
        max_pages: int = 10_000,
        on_page: Callable[[int], None] | None = None,
        on_cleaned: Callable[[list[str]], None] | None = None,
    ) -> None:
        token = token.strip() if token else ""
        if not token:
            raise AuthError("no Calendly token configured", hint="Set CALENDLY_API_KEY or calendly.token_file.")
        if not _TOKEN_RE.match(token):
            # Never echo it: h11 would put the raw value into its exception text.
            raise AuthError(
                "the Calendly token contains whitespace or non-ASCII characters",
                hint="Check the token file or CALENDLY_API_KEY for a stray character.",
            )
        self._token = token
        base = _parse_base_url(base_url)
        self._origin = _origin_of(base)
        if max_retries < 0 or max_wait < 0 or max_pages < 1:
            raise ValueError("max_retries and max_wait must be >= 0, max_pages >= 1")
        self._timeout = (
            timeout
            if isinstance(timeout, httpx.Timeout)
            else (DEFAULT_TIMEOUT if timeout is None else httpx.Timeout(timeout))
        )
        # One attempt's deadline (connecting, sending, the whole answer), kept per thread: a sync's page walk sends
        # from a thread of its own, and a pooled connection serves whichever thread takes it next.
        connect, read = self._timeout.connect, self._timeout.read
        self._deadline = None if read is None else (connect or 0.0) + read
        self._attempt = threading.local()
        self.base_url = str(base)
        self.max_retries = max_retries
        self.max_wait = max_wait
        self.max_pages = max_pages
        self._sleep = sleep
        self._rng = rng
        # told the item count of every listing page as it arrives (a progress line on a terminal)
        self._on_page = on_page
        # told the items of an answer whose text held control characters, removed before it was parsed
        self._on_cleaned = on_cleaned
        self._backoff_base = backoff_base
        self._backoff_cap = backoff_cap
        # Set once a GET has been written to the network, or the client closed: work that can wait for the
        # first request (a sync's survey) waits for it rather than compete with it for the GIL.
        self.request_sent = threading.Event()
        # Set with request_sent: the page walk's "the next request is out" for the page it last handed over.
        self._handed: threading.Event | None = None
        self._trace = {"trace": self._traced}
        try:
            self._http = httpx.Client(
                base_url=base,
                headers={
                    "Authorization": f"Bearer {token}",
                    "Accept": "application/json",
                    "User-Agent": "bapp-cli",
                },
                transport=transport,
                timeout=self._timeout,
                follow_redirects=False,
                event_hooks={"response": [_read_bounded]},
            )
            if transport is None:
                # httpx takes no network backend (encode/httpx#3180): the pools it made have theirs wrapped (httpx is
                # pinned below 0.30), the proxies' HTTP(S)_PROXY name too; a transport of bapp's given to httpx.Client
                # would have turned those proxies off (None: a host NO_PROXY names, reached directly)
                for made in (self._http._transport, *filter(None, self._http._mounts.values())):
                    pool = cast(httpx.HTTPTransport, made)._pool
                    pool._network_backend = _DeadlineBackend(pool._network_backend, self._attempt)
                    if (proxy := getattr(pool, "_proxy_url", None)) is not None:  # else UnicodeError on connecting
                        proxy.host.decode("ascii").encode("idna")  # an empty label, or one past 63 characters
        except (ImportError, ValueError, httpx.InvalidURL) as exc:  # each was exit 1 on every Calendly command
            # a SOCKS proxy without the socksio package, a scheme no proxy has, a malformed URL (the proxy's or
            # NO_PROXY's); UnicodeError is a ValueError. The text may hold the proxy's address: not shown.
            raise ConfigError(
                "cannot use the proxy HTTP_PROXY, HTTPS_PROXY or ALL_PROXY names"
                + (" (a SOCKS proxy needs the socksio package)" if isinstance(exc, ImportError) else ""),
                hint="name an http:// or https:// proxy, or unset them (NO_PROXY lists the hosts reached directly)",
            ) from None
        except OSError as exc:  # ssl.SSLError is one: httpx loads the certificates these name, here, for any URL
            # a file missing, a folder or no certificates in it was exit 1 ("unexpected error"), every Calendly command
            # httpx appends the TLS keys to the file SSLKEYLOGFILE names, which it opens here too
            if exc.filename is not None and exc.filename == os.environ.get("SSLKEYLOGFILE"):
                raise ConfigError(f"cannot open the file SSLKEYLOGFILE names: {exc}", hint="unset it") from None
            raise ConfigError(
                f"cannot load the certificates SSL_CERT_FILE or SSL_CERT_DIR names: {exc}",
                hint="point them at a PEM bundle or a folder of certificates, or unset them",
            ) from None

    def __repr__(self) -> str:
        return f"CalendlyClient(base_url={self.base_url!r})"

    def __enter__(self) -> CalendlyClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()
        self.request_sent.set()

    def _traced(self, event: str, info: Mapping[str, Any]) -> None:
        if event == "http11.send_request_body.complete":
            self.request_sent.set()
            if self._handed is not None:
                self._handed.set()

    # --- public API ------------------------------------------------------------------------------

    def get_current_user(self) -> User:
        """``GET /users/me``: the token's own user; its ``uri`` / ``current_organization`` scope listings."""
        request = _Request("/users/me", {})
        response = self._get(request)
        from bapp_cli.calendly.models import Resource, User

        return self._parse(request, response, Resource[User], page=None).resource

    def get_event_type(self, uri: str) -> EventType:
        """``GET /event_types/{uuid}`` for a URI or bare uuid; deleted types come back with ``deleted_at``.

        Raises NotFound on 404, so the sync can tell "gone" from "unreachable".
        """
        uuid = _uuid_from(uri, "event_types")
        request = _Request(f"/event_types/{uuid}", {})
        response = self._get(request, missing=NotFound(f"Calendly has no event type {uuid}"))
        from bapp_cli.calendly.models import EventType, Resource

        return self._parse(request, response, Resource[EventType], page=None).resource

    def iter_event_type_pages(
        self, user: str | None = None, organization: str | None = None, count: int = _MAX_COUNT
    ) -> Iterator[ListingPage[ListedEventType]]:
        """Every page of ``GET /event_types`` for the scope, active and inactive alike (no ``active``
        filter). On a stale page token the listing restarts from page one, flagged ``restarted``."""
        params = _scope_params(user, organization, required=True)
        params["count"] = str(_checked_count(count))
        # listed event types come as dicts: a sync reads thousands of them (pages.py, ListedEventType)
        return self._paginate(_Request("/event_types", params), "ListedEventType")

    def list_event_types(
        self, user: str | None = None, organization: str | None = None, count: int = _MAX_COUNT
    ) -> list[EventType]:
        """All event types of the scope, fetched page by page; fails whole (nothing partial) on error."""
        listed = _collect(self.iter_event_type_pages(user, organization, count))
        from bapp_cli.calendly.models import EventType

        return [EventType.model_validate(item) for item in listed]

    def iter_scheduled_event_pages(
        self,
        user: str | None = None,
        organization: str | None = None,
        *,
        min_start_time: datetime | None = None,
        max_start_time: datetime | None = None,
        status: str | None = None,
        invitee_email: str | None = None,
        count: int = _MAX_COUNT,
    ) -> Iterator[ListingPage[ScheduledEvent]]:
        """Pages of ``GET /scheduled_events`` sorted ``start_time:asc``; both statuses unless ``status``.

        A stale page token resumes the listing at the last ``start_time`` reached (``min_start_time``
        keyset, boundary duplicates dropped) instead of refetching everything; that happens once.
        """
        params = _scope_params(user, organization, required=True)
        if min_start_time is not None:
            params["min_start_time"] = _utc_param("min_start_time", min_start_time)
        if max_start_time is not None:
            params["max_start_time"] = _utc_param("max_start_time", max_start_time)
        if status is not None:
            params["status"] = _checked_status(status)
        if invitee_email is not None:
            params["invitee_email"] = invitee_email
        params["sort"] = "start_time:asc"
        params["count"] = str(_checked_count(count))
        return self._paginate_scheduled_events(_Request("/scheduled_events", params))

    def list_scheduled_events(
        self,
        user: str | None = None,
        organization: str | None = None,
        *,
        min_start_time: datetime | None = None,
        max_start_time: datetime | None = None,
        status: str | None = None,
        invitee_email: str | None = None,
        count: int = _MAX_COUNT,
    ) -> list[ScheduledEvent]:
        """All scheduled events matching the filters, oldest start first."""
        return _collect(
            self.iter_scheduled_event_pages(
                user,
                organization,
                min_start_time=min_start_time,
                max_start_time=max_start_time,
                status=status,
                invitee_email=invitee_email,
                count=count,
            )
        )

    def iter_event_invitee_pages(
        self,
        event_uri: str,
        *,
        status: str | None = None,
        email: str | None = None,
        count: int = _MAX_COUNT,
    ) -> Iterator[ListingPage[Invitee]]:
        """Pages of ``GET /scheduled_events/{uuid}/invitees`` (both statuses unless ``status``)."""
        uuid = _uuid_from(event_uri, "scheduled_events")
        params: dict[str, str] = {}
        if status is not None:
            params["status"] = _checked_status(status)
        if email is not None:
            params["email"] = email
        params["count"] = str(_checked_count(count))
        return self._paginate(_Request(f"/scheduled_events/{uuid}/invitees", params), "Invitee")

    def list_event_invitees(
        self,
        event_uri: str,
        *,
        status: str | None = None,
        email: str | None = None,
        count: int = _MAX_COUNT,
    ) -> list[Invitee]:
        """All invitees of one scheduled event."""
        return _collect(self.iter_event_invitee_pages(event_uri, status=status, email=email, count=count))

    # --- the write side (calendly-scheduling-api.md): slots, bookings, cancellations, no-shows, links --

    def list_available_times(self, event_type_uri: str, start: datetime, end: datetime) -> list[AvailableTime]:
        """``GET /event_type_available_times`` for one window of at most 31 days (no pagination).

        The caller keeps ``start`` in the future (Calendly refuses a past start) and splits longer ranges.
        """
        if (end - start).total_seconds() > MAX_AVAILABILITY_WINDOW or end <= start:
            raise InvalidInput("an availability window must be positive and at most 31 days long")
        request = _Request(
            "/event_type_available_times",
            {
                "event_type": event_type_uri,
                "start_time": _utc_param("start_time", start),
                "end_time": _utc_param("end_time", end),
            },
        )
        response = self._get(request)
        from bapp_cli.calendly.models import AvailableTimes

        return self._parse(request, response, AvailableTimes, page=None).collection

    def get_scheduled_event(self, uri: str) -> ScheduledEvent:
        """``GET /scheduled_events/{uuid}``: times, location and join URL of a booked event."""
        uuid = _uuid_from(uri, "scheduled_events")
        request = _Request(f"/scheduled_events/{uuid}", {})
        response = self._get(request, missing=NotFound(f"Calendly has no scheduled event {uuid}"))
        from bapp_cli.calendly.models import Resource, ScheduledEvent

        return self._parse(request, response, Resource[ScheduledEvent], page=None).resource

    def get_invitee(self, uri: str) -> Invitee:
        """``GET /scheduled_events/{uuid}/invitees/{uuid}``: one invitee, its ``no_show`` included."""
        request = _Request(_invitee_path(uri), {})
        # a 404: the invitee, or its whole event, deleted there
        response = self._get(request, missing=NotFound(self._clean(f"Calendly has no invitee {uri}")))
        from bapp_cli.calendly.models import Invitee, Resource

        return self._parse(request, response, Resource[Invitee], page=None).resource

    def create_invitee(self, body: Mapping[str, Any]) -> Invitee:
        """``POST /invitees`` (the Scheduling API): books a real Calendly event.

        Never resent here: a 429 (the request was refused, not taken) waits for the reset and tries again
        within the retry budget; a timeout, reset or 5xx raises :class:`OutcomeUnknown` because the
        booking may exist; 400 ``already_filled`` or 409 raises :class:`SlotTaken`.
        """
        from bapp_cli.calendly.models import Invitee, Resource

        label = "Calendly POST /invitees"
        response = self._write("POST", "/invitees", body, label=label, rate_note=_BOOKING_RATE_LIMITS)
        if response.is_success:  # whatever its 2xx (a 202 or 204 too), Calendly acted: a refusal would lose it
            return self._created(label, response, Resource[Invitee]).resource
        if response.status_code == 409 or (
            response.status_code == 400 and _has_detail_code(response, "already_filled")
        ):
            raise SlotTaken(self._clean(f"{label}: the start is no longer open ({_status_text(response)})"))
        raise self._refusal(label, response)

    def cancel_event(self, event_uri: str, reason: str | None) -> bool:
        """``POST /scheduled_events/{uuid}/cancellation``: whether this call cancelled it (False when Calendly
        says it is already canceled).

        Safe to retry after a lost answer (a second cancel is "already canceled", which counts as done), so
        transport failures and 5xx use the normal retry policy. "Event in the past" is a :class:`Conflict`.
        """
        uuid = _uuid_from(event_uri, "scheduled_events")
        path = f"/scheduled_events/{uuid}/cancellation"
        label = f"Calendly POST {path}"
        body: dict[str, Any] = {"reason": reason} if reason else {}
        response = self._write("POST", path, body, label=label, retry_unknown=True)
        if response.is_success:  # whatever its 2xx and its body (a 204 has none), Calendly cancelled it
            return True
        message = _error_message(response)
        if response.status_code == 403 and "already canceled" in message.lower():
            return False
        if response.status_code == 403 and "in the past" in message.lower():
            raise Conflict(
                self._clean(f"Calendly will not cancel event {uuid}: {message}"),
                hint="a past session is completed or a no-show, not cancelled",
                code="event_in_past",
            )
        if response.status_code == 404:
            raise NotFound(f"Calendly has no scheduled event {uuid}")
        raise self._refusal(label, response)

    def create_invitee_no_show(self, invitee_uri: str) -> InviteeNoShow:
        """``POST /invitee_no_shows``: marks the invitee a no-show; the answer's URI undoes it."""
        from bapp_cli.calendly.models import InviteeNoShow, Resource

        label = "Calendly POST /invitee_no_shows"
        response = self._write("POST", "/invitee_no_shows", {"invitee": invitee_uri}, label=label)
        if response.is_success:
            return self._created(label, response, Resource[InviteeNoShow]).resource
        if response.status_code == 404:  # deleted there: a definite answer, not Calendly failing
            raise NotFound(self._clean(f"Calendly has no invitee {invitee_uri}"))
        raise self._refusal(label, response)

    def delete_invitee_no_show(self, no_show_uri: str) -> None:
        """``DELETE /invitee_no_shows/{uuid}``; a 404 means it is already gone, which counts as done."""
        uuid = _uuid_from(no_show_uri, "invitee_no_shows")
        path = f"/invitee_no_shows/{uuid}"
        label = f"Calendly DELETE {path}"
        response = self._write("DELETE", path, None, label=label, retry_unknown=True)
        if response.is_success or response.status_code == 404:
            return
        raise self._refusal(label, response)

    def create_scheduling_link(self, event_type_uri: str) -> SchedulingLink:
        """``POST /scheduling_links``: a single-use booking page for the event type (max_event_count 1).

        A lost answer (:class:`OutcomeUnknown`) cannot be looked up: Calendly lists no scheduling links. It is
        never resent here, but sending again is safe: a link Calendly may have made is one whose address no one
        has, so no one can book through it, and it holds no slot (calendly-scheduling-api.md §5)."""
        from bapp_cli.calendly.models import Resource, SchedulingLink

        label = "Calendly POST /scheduling_links"
        body = {"max_event_count": 1, "owner": event_type_uri, "owner_type": "EventType"}
        try:
            response = self._write("POST", "/scheduling_links", body, label=label)
            if response.is_success:  # whatever its 2xx, Calendly made the link: read it if the body says it
                return self._created(label, response, Resource[SchedulingLink]).resource
        except OutcomeUnknown as lost:
            lost.hint = (
                "a link Calendly may have made was never shown to anyone, so no one can book through it: "
                "run the command again for a new one"
            )
            raise
        raise self._refusal(label, response)

    def _write(
        self,
        method: str,
        path: str,
        body: Mapping[str, Any] | None,
        *,
        label: str,
        retry_unknown: bool = False,
        rate_note: str | None = None,
        maybe_received: bool = False,
    ) -> httpx.Response:
        """Send one write. 401/403-auth raise AuthError; 429 waits for the reset and tries again within the
        retry budget (a 429 means the request was not taken); a connect failure is retried (nothing was
        sent); a timeout, reset or 5xx after sending is retried only when ``retry_unknown`` (idempotent
        writes), else it raises :class:`OutcomeUnknown`, as a redirect does, and so do the retries running out once
        one of them (or an earlier send, ``maybe_received``) may have been received. Any other answer is returned."""
        retries = 0
        while True:
            try:
                self._start_attempt()
                response = (
                    self._http.request(method, path, json=body)
                    if body is not None
                    else self._http.request(method, path)
                )
            except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
                # the connection never opened, so the request was not received: trying again is safe
                failure, wait, definite = self._transport_failure(exc), self._backoff(retries), True
            except (httpx.TimeoutException, httpx.NetworkError, httpx.RemoteProtocolError) as exc:
                failure, wait, definite = self._transport_failure(exc), self._backoff(retries), False
            except httpx.HTTPError as exc:
                raise OutcomeUnknown(self._clean(f"{label}: {self._transport_failure(exc)}")) from None
            else:
                status = response.status_code
                if status == 401:
                    raise self._auth_error(_Request(path, {}), response)
                if status == 403 and _is_scope_error(response):
                    raise AuthError(
                        self._clean(f"{label}: the token lacks a scope ({_status_text(response)})"),
                        hint="grant the token scheduled_events:write (and scheduling_links:write for links)",
                    )
                if status == 429:
                    wait = self._rate_limit_wait(response, retries)
                    if retries >= self.max_retries or self._reset_out_of_reach(response, retries):
                        raise RemoteError(self._clean(self._rate_limited(label, response, rate_note, retries)))
                    retries += 1
                    self._sleep(wait)
                    continue
                # Calendly's API never redirects: a 3xx is a proxy's, which may answer a request Calendly has
                # carried out (a 303 "see other" says so), so it is no refusal of a write that cannot be resent
                if status < 500 and (retry_unknown or not 300 <= status < 400):
                    return response
                failure, wait, definite = (
                    f"HTTP {status} {response.reason_phrase}".rstrip(),
                    self._backoff(retries),
                    False,
                )
            if not definite and not retry_unknown:
                raise OutcomeUnknown(
                    self._clean(f"{label}: {failure}; the request may have been received, so it was not resent")
                )
            maybe_received = maybe_received or not definite
            if retries >= self.max_retries and maybe_received:
                # an idempotent write that Calendly may have carried out (a cancel there e-mails the client): "gave up"
                # alone reads as nothing done, where asking again settles it
                raise OutcomeUnknown(
                    self._clean(
                        f"{label}: {failure}; gave up after {retries} retries; the request may have been received"
                    ),
                    hint="run the command again: a repeat of it is safe (Calendly takes what it already did as done)",
                )
            if retries >= self.max_retries:
                raise RemoteError(self._clean(f"{label}: {failure}; gave up after {retries} retries"))
            retries += 1
            self._sleep(wait)

    def _created(self, label: str, response: httpx.Response, model: type[R]) -> R:
        """The body of a success answer to a write that has no idempotency key. Calendly acted, so a body
        that cannot be read (cut short, an HTML page from a proxy, a changed shape) is a lost answer, not a
        refusal: :class:`OutcomeUnknown`, which the caller settles by asking, never by resending or by
        forgetting what it sent."""
        try:
            return self._parse(_Request(label.rpartition(" ")[2], {}), response, model, page=None)
        except RemoteError as unreadable:
            reason = unreadable.message.partition(": ")[2] or unreadable.message
            raise OutcomeUnknown(
                self._clean(f"{label}: HTTP {response.status_code} but {reason}; the request was received")
            ) from None

    def _rate_limited(self, label: str, response: httpx.Response, rate_note: str | None, waits: int) -> str:
        seconds = _reset_seconds(response)
        when = ""
        if seconds is not None:
            when = f"; Calendly accepts again in {math.ceil(seconds)} s"
            try:
                at = datetime.fromtimestamp(time.time() + seconds, UTC).replace(microsecond=0)
                when += f" (at {at.isoformat().replace('+00:00', 'Z')})"
            except (OverflowError, ValueError, OSError):  # a reset header of 1e308 s: no date, nor its 309 digits
                when = f"; Calendly accepts again in {seconds:.3g} s"
        note = f" (this endpoint allows {rate_note})" if rate_note else ""
        if self._reset_out_of_reach(response, waits):
            when += f", past the {(self.max_retries - waits) * self.max_wait:g} s of waits left: try again then"
        after = f" after {waits} wait{'s' * (waits > 1)}" if waits else ""
        return f"{label}: rate limited (HTTP 429){after}{when}{note}"

    def _reset_out_of_reach(self, response: httpx.Response, retries: int) -> bool:
        """Whether a 429's reset lies past every wait the retries left could make: retrying then only sends
        requests Calendly is sure to refuse, and a cron job would sit minutes to fail all the same."""
        seconds = _reset_seconds(response)
        return (
            retries < self.max_retries
            and seconds is not None
            and seconds > (self.max_retries - retries) * self.max_wait
        )

    def _refusal(self, label: str, response: httpx.Response) -> AuthError | CalendlyRefusal:
        status = response.status_code
        message = _error_message(response)
        if status == 403:
            plan = "paid Calendly plans" in message
            return AuthError(
                self._clean(f"{label}: Calendly refused (HTTP 403 {_status_text(response)})"),
                hint="the Calendly plan or the token's user may not use the Scheduling API; "
                "book with --local-only, or send the client `bapp bookings link`"
                if plan
                else "check that the token's user hosts this event type",
            )
        return CalendlyRefusal(
            self._clean(f"{label}: HTTP {status} {_status_text(response)}"),
            status=status,
            calendly_message=self._clean(message),
        )

    # --- pagination ------------------------------------------------------------------------------

    def _paginate(self, first: _Request, item: str) -> Iterator[ListingPage[Any]]:
        """Every page of a listing of ``item`` (a model of calendly.pages or .models), restarted once on a stale
        token."""
        restarted = False
        while True:
            try:
                for number, page in self._pass(first, item):
                    yield ListingPage(number, page.collection, restarted=restarted and number == 1)
                return
            except _StalePageToken as stale:
                if restarted:
                    raise RemoteError(
                        self._clean(
                            f"{first.label}: page token rejected again after restarting the listing ({stale.detail})"
                        )
                    ) from None
                restarted = True

    def _paginate_scheduled_events(self, first: _Request) -> Iterator[ListingPage[ScheduledEvent]]:
        boundary = _Boundary()
        request = first
        resumed = False
        while True:
            try:
                for number, page in self._pass(request, "ScheduledEvent"):
                    self._check_event_uris(request, number, page.collection)
                    fresh = page.collection
                    if resumed:
                        fresh = [event for event in fresh if not boundary.already_seen(event)]
                    for event in fresh:
                        boundary.advance(event)
                    yield ListingPage(number, fresh)
                return
            except _StalePageToken as stale:
                if resumed:
                    raise RemoteError(
                        self._clean(
                            f"{first.label}: page token rejected again after resuming the listing ({stale.detail})"
                        )
                    ) from None
                resumed = True
                params = dict(first.params)
                if boundary.start_time is not None:
                    params["min_start_time"] = _utc_param("min_start_time", boundary.start_time)
                request = _Request(first.path, params)

    def _check_event_uris(self, request: _Request, number: int, events: list[ScheduledEvent]) -> None:
        """Every listed event's URI names a scheduled event: its invitees are asked for there, and one that does not
        is Calendly's answer failing (exit 9, the field named, as any invalid item), not the user's input (exit 6)."""
        for index, event in enumerate(events):
            try:
                _uuid_from(event.uri, "scheduled_events")
            except InvalidInput:
                raise UnreadableAnswer(
                    self._clean(
                        f"{request.label}: page {number} invalid response: collection[{index}].uri: "
                        f"not a Calendly scheduled event URI (item {event.uri})"
                    )
                ) from None

    def _pass(self, first: _Request, item: str) -> Iterator[tuple[int, Page[Any]]]:
        """One walk from page one to the end; raises _StalePageToken for the caller to restart.

        The pages are fetched by a thread of their own (:meth:`_walk`) that requests page N+1 as soon as it
        has read page N's pagination: validating page N and the caller's own work on it overlap the next
        round trip instead of adding to it (P2), and the step from a response to the next request is taken
        by the thread that received it, never waiting for another thread to wake up and take the GIL.

        Page N is validated only once request N+1 is out (or the walk has stopped): validating a page is one
        long call into pydantic-core that keeps the GIL for its whole 2–3 ms, and begun the moment page N
        was handed over it held up building and writing the next request by as much, on every page
        (≈0.2 s of a 100-page sync at 100 ms a page, measured from the fake server's side).
        """
        pages: queue.Queue[tuple[int, _Request, httpx.Response, threading.Event] | BaseException | None] = queue.Queue()
        wanted = threading.Semaphore(0)  # one release per page asked for: the walk stays one page ahead
        stopped = threading.Event()
        # A daemon thread: an interrupted run must not wait at exit for a request it no longer wants.
        walk = threading.Thread(
            target=self._walk, args=(first, item, pages, wanted, stopped), name="calendly-pages", daemon=True
        )
        walk.start()
        try:
            while True:
                wanted.release()
                fetched = pages.get()
                if fetched is None:
                    return
                if isinstance(fetched, BaseException):
                    raise fetched
                number, request, response, sent = fetched
                sent.wait()
                page = self._parse(request, response, _page_model(item), page=number)
                if self._on_page is not None:
                    self._on_page(len(page.collection))
                yield number, page
        except (Exception, GeneratorExit):
            stopped.set()  # nothing more is sent; what is in flight ends before the client is closed
            wanted.release()
            walk.join()
            raise

    def _walk(
        self,
        first: _Request,
        item: str,
        pages: queue.Queue[Any],
        wanted: threading.Semaphore,
        stopped: threading.Event,
    ) -> None:
        """Fetch the pages of one pass into ``pages``, each once the caller asks for it, then any error, then
        None. Only the token is taken from a page (never its next_page URL); a next page on another origin,
        a loop or too many pages stop the walk before that request."""
        seen_tokens: set[str] = set()
        request, number = first, 1
        handed: threading.Event | None = None  # set once the request after the page handed over is out
        try:
            while not stopped.is_set():
                self._handed = handed
                response = self._send(request)
                if handed is not None:  # a transport without trace events (httpx.MockTransport)
                    handed.set()
                # imported once the first request is out (the survey of a sync loads them meanwhile)
                from pydantic import ValidationError

                from bapp_cli.calendly.pages import PaginationOnly

                if not response.is_success:
                    if response.status_code == 400 and "page_token" in request.params:
                        raise _StalePageToken(_status_text(response))
                    raise self._status_error(request, response, page=number)
                body = response.content
                try:
                    # Calendly sends the cursor last: read as an object of its own, it needs no parse of the items
                    # (the caller parses them anyway, so the next request goes out sooner). From a "pagination"
                    # that is not the top-level object's last member, this text is no JSON object.
                    cursor = b"{" + body[body.rfind(b'"pagination"') :]
                    pagination = PaginationOnly.model_validate_json(cursor).pagination
                except ValidationError:  # the whole page, whose faults are named
                    pagination = self._parse(request, response, _page_model(item), page=number).pagination
                token = self._next_token(request, pagination, number)
                wanted.acquire()
                if stopped.is_set():
                    break
                handed = threading.Event()
                pages.put((number, request, response, handed))
                if token is None:
                    break
                if token in seen_tokens:
                    raise RemoteError(
                        f"{first.label}: pagination loop: page {number} points back to a page already fetched"
                    )
                if number >= self.max_pages:
                    raise RemoteError(f"{first.label}: listing exceeded {self.max_pages} pages; giving up")
                seen_tokens.add(token)
                # Re-send the caller's own filters with the token rather than requesting next_page verbatim:
                # the URL comes from the response, and only the token is needed from it.
                request, number = _Request(first.path, {**first.params, "page_token": token}), number + 1
        except BaseException as error:  # raised in the caller's thread
            pages.put(error)
        finally:
            self._handed = None
            if handed is not None:  # no request follows the last page handed over
                handed.set()
            pages.put(None)

    def _next_token(self, request: _Request, pagination: Pagination, number: int) -> str | None:
        if not pagination.model_fields_set & {"next_page", "next_page_token"}:
            # Calendly's pages all say where the listing goes on (null at its end): taken as the end, a page
            # without it made a sync deactivate every type on the pages after it
            raise RemoteError(
                f"{request.label}: page {number} has no pagination.next_page; the listing's end is unknown"
            )
        if pagination.next_page is not None:
            try:
                target = httpx.URL(pagination.next_page)
                if not target.is_absolute_url:  # '' or a bare path has no origin to compare (it was named '://:0')
                    raise httpx.InvalidURL(pagination.next_page)
                origin = _origin_of(target)  # an xn-- label that is no Punycode raises idna's UnicodeError here
            except (httpx.InvalidURL, UnicodeError):
                raise RemoteError(f"{request.label}: page {number} has a malformed next_page URL") from None
            if origin != self._origin:
                raise RemoteError(
                    self._clean(
                        f"{request.label}: page {number} links its next page to another origin "
                        f"({_format_origin(origin)}, expected {_format_origin(self._origin)}); "
                        "not following it"
                    )
                )
        if not pagination.has_next:
            return None
        token = pagination.next_token()
        if token is None:
            raise RemoteError(f"{request.label}: page {number} has a next_page without a page_token")
        return token

    # --- transport -------------------------------------------------------------------------------

    # --- webhook subscriptions (issue 14) ---------------------------------------------------------

    def create_webhook_subscription(
        self,
        *,
        url: str,
        events: list[str],
        organization: str,
        scope: str,
        signing_key: str,
        user: str | None = None,
    ) -> WebhookSubscription:
        """``POST /webhook_subscriptions``, sent exactly once.

        The API has no idempotency key, so a failure after the request may have reached Calendly (a
        lost connection, a timeout, a 5xx) is never retried here: it raises :class:`OutcomeUnknown`, and the
        caller looks the URL up in the listing to learn whether the subscription exists.
        """
        payload: dict[str, Any] = {
            "url": url,
            "events": events,
            "organization": organization,
            "scope": scope,
            "signing_key": signing_key,
        }
        if user is not None:
            payload["user"] = user
        label = "Calendly POST /webhook_subscriptions"
        response = self._write("POST", "/webhook_subscriptions", payload, label=label)
        status = response.status_code
        if status == 403:
            raise self._auth_error(_Request("/webhook_subscriptions", {}), response, method="POST")
        if status == 409:
            raise Conflict(
                self._clean(f"{label}: {_status_text(response)} (HTTP 409)"),
                hint="one subscription per URL: `bapp calendly webhook subscriptions` lists them",
                code="subscription_exists",
            )
        if not response.is_success:
            raise InvalidInput(self._clean(f"{label}: HTTP {status} {_status_text(response)}"), code="refused")
        from bapp_cli.calendly.models import Resource, WebhookSubscription

        return self._created(label, response, Resource[WebhookSubscription]).resource

    def list_webhook_subscriptions(
        self, *, organization: str, scope: str, user: str | None = None
    ) -> list[WebhookSubscription]:
        """``GET /webhook_subscriptions`` (every page) for an organization and scope (and user)."""
        params = {"organization": organization, "scope": scope, "count": str(_MAX_COUNT)}
        if user is not None:
            params["user"] = user
        return _collect(self._paginate(_Request("/webhook_subscriptions", params), "WebhookSubscription"))

    def delete_webhook_subscription(self, uri: str) -> None:
        """``DELETE /webhook_subscriptions/{uuid}``, under the write policy (a 429 waits for its reset).

        Raises NotFound on 404. Deleting is idempotent, so a lost answer is asked again with the retry policy;
        a 404 then is the lost attempt's deletion (or one made meanwhile): done, not "none". So that such a 404 is
        never a mistyped URI's, the subscription is looked up first (``GET``, a 404 there is "none")."""
        uuid = _uuid_from(uri, "webhook_subscriptions")
        path = f"/webhook_subscriptions/{uuid}"
        label, lookup = f"Calendly DELETE {path}", _Request(path, {})
        none = NotFound(f"Calendly has no webhook subscription {uuid}", code="subscription_not_found")
        self._get(lookup, missing=none)
        try:
            response = self._write("DELETE", path, None, label=label)
        except OutcomeUnknown:
            try:
                response = self._write("DELETE", path, None, label=label, retry_unknown=True, maybe_received=True)
            except OutcomeUnknown as lost:  # a rerun looks the subscription up first: gone, it is "none" there
                lost.hint = "run the command again: exit 7 (no such subscription) then means Calendly deleted it"
                raise
            if response.status_code == 404:
                return
        if response.status_code == 403:  # the look-up was let through: the deletion is what is denied
            raise self._auth_error(lookup, response, method="DELETE")
        if response.status_code == 404:  # deleted meanwhile, by someone else
            raise none
        if not response.is_success:
            raise RemoteError(self._clean(f"{label}: HTTP {response.status_code} {_status_text(response)}"))

    def _get(self, request: _Request, *, missing: NotFound | None = None) -> httpx.Response:
        """A GET's successful response (``_send``); a 404 raises ``missing`` where the caller tells "gone" from
        "unreachable", any other failure its status error."""
        response = self._send(request)
        if missing is not None and response.status_code == 404:
            raise missing
        if not response.is_success:
            raise self._status_error(request, response)
        return response

    def _send(self, request: _Request) -> httpx.Response:
        """GET with the retry policy; returns any response that is not retried or an auth failure."""
        retries = 0
        while True:
            try:
                self._start_attempt()
                response = self._http.get(request.path, params=request.params, extensions=self._trace)
            except (httpx.TimeoutException, httpx.NetworkError, httpx.RemoteProtocolError) as exc:
                failure = self._transport_failure(exc)
                wait = self._backoff(retries)
            except httpx.HTTPError as exc:
                raise RemoteError(self._clean(f"{request.label}: {self._transport_failure(exc)}")) from None
            except httpx.InvalidURL as exc:  # a user or organization URI past httpx's 65,536 characters
                raise InvalidInput(
                    self._clean(f"{request.label}: {exc}; check the user and organization URIs")
                ) from None
            else:
                status = response.status_code
                if status in (401, 403):
                    raise self._auth_error(request, response)
                if status == 429:
                    if self._reset_out_of_reach(response, retries):
                        raise RemoteError(self._clean(self._rate_limited(request.label, response, None, retries)))
                    failure = "rate limited (HTTP 429)"
                    wait = self._rate_limit_wait(response, retries)
                elif status >= 500:
                    failure = f"HTTP {status} {response.reason_phrase}".rstrip()
                    wait = self._backoff(retries)
                else:
                    return response
            if retries >= self.max_retries:
                raise RemoteError(self._clean(f"{request.label}: {failure}; gave up after {retries} retries"))
            retries += 1
            self._sleep(wait)

    def _start_attempt(self) -> None:
        self._attempt.deadline = None if self._deadline is None else time.monotonic() + self._deadline

    def _backoff(self, retries: int) -> float:
        ceiling = min(self._backoff_cap, self._backoff_base * 2.0**retries)
        # "Equal jitter": at least half the ceiling so retries stay spaced, the rest random.
        return min(self.max_wait, ceiling * (0.5 + 0.5 * self._rng()))

    def _rate_limit_wait(self, response: httpx.Response, retries: int) -> float:
        seconds = _reset_seconds(response)
        if seconds is None:
            return self._backoff(retries)
        return min(self.max_wait, seconds + _RATE_LIMIT_JITTER * self._rng())

    def _transport_failure(self, exc: httpx.HTTPError) -> str:
        deadline = getattr(self._attempt, "deadline", None)
        if isinstance(exc, httpx.TimeoutException) and deadline is not None and time.monotonic() >= deadline:
            what = f"timed out: no complete response within {self._deadline:g} s (connect + read timeout)"
        elif isinstance(exc, httpx.ReadTimeout):
            what = f"no response within the read timeout ({self._timeout.read} s)"
        elif isinstance(exc, httpx.ConnectTimeout):
            what = f"could not connect within {self._timeout.connect} s"
        elif isinstance(exc, httpx.TimeoutException):
            what = "request timed out"
        elif isinstance(exc, httpx.ConnectError):
            what = "could not connect"
        elif isinstance(exc, (httpx.ReadError, httpx.RemoteProtocolError)):
            what = "connection closed or reset before a complete response"
        else:
            what = "request failed"
        detail = str(exc)
        return f"{what} ({type(exc).__name__}: {detail})" if detail else f"{what} ({type(exc).__name__})"

    # --- responses -------------------------------------------------------------------------------

    def _auth_error(self, request: _Request, response: httpx.Response, *, method: str = "GET") -> AuthError:
        if response.status_code == 401:
            message = f"Calendly refused the token (HTTP 401 {_status_text(response)})"
            return AuthError(self._clean(message), hint=_HINT_401)
        message = f"Calendly denied access to {method} {request.path} (HTTP 403 {_status_text(response)})"
        return AuthError(self._clean(message), hint=_HINT_403)

    def _status_error(self, request: _Request, response: httpx.Response, page: int | None = None) -> RemoteError:
        where = f" (page {page})" if page is not None else ""
        status = response.status_code
        if 300 <= status < 400:
            message = f"{request.label}{where}: unexpected redirect (HTTP {status}); check the API base URL"
        else:
            message = f"{request.label}{where}: HTTP {status} {_status_text(response)}"
        return RemoteError(self._clean(message))

    def _parse(self, request: _Request, response: httpx.Response, model: type[R], page: int | None) -> R:
        from pydantic import ValidationError

        body = response.content
        if json_may_hold_controls(body):
            body = self._without_controls(body)
        try:
            return model.model_validate_json(body)
        except ValidationError as exc:
            from bapp_cli.calendly.models import describe_validation_error  # a sync's pages need only calendly.pages

            errors = exc.errors(include_url=False, include_input=False)
            where = f" page {page}" if page is not None else ""
            if errors and errors[0]["type"] == "json_invalid":
                message = f"{request.label}:{where} response is not valid JSON ({errors[0]['msg']})"
            else:
                message = (
                    f"{request.label}:{where} invalid response: {describe_validation_error(errors)}"
                    f"{_item_uri_note(body, errors[0]['loc'] if errors else ())}"
                )
            raise UnreadableAnswer(self._clean(message)) from None

    def _without_controls(self, body: bytes) -> bytes:
        """``body`` with control characters removed from its text (services.plain_text), re-encoded."""
        try:
            document = json.loads(body)
        except DOCUMENT_ERRORS:  # no JSON: the model's parse says what is wrong with it
            return body
        return json.dumps(document).encode() if strip_controls(document, self._on_cleaned) else body

    def _clean(self, text: str) -> str:
        """One line, bounded, without control characters and without the token whatever produced the text
        (a failed run's record keeps it)."""
        text = " ".join(CONTROL_CHARACTER.sub("", text.replace(self._token, "[redacted]")).split())
        return text if len(text) <= _MAX_MESSAGE else text[: _MAX_MESSAGE - 1] + "…"


# --- module-private helpers ------------------------------------------------------------------------


def _page_model(item: str) -> type[Page[Any]]:
    """The page model of a listing of ``item``, imported when first needed: a listing's first request goes
    out before pydantic and the models are loaded (for a sync, on its survey's thread meanwhile). A listing of
    event types needs the pages module alone, not every model of the API."""
    from bapp_cli.calendly import pages

    if (model := getattr(pages, item, None)) is None:
        from bapp_cli.calendly import models

        model = getattr(models, item)
    return cast("type[Page[Any]]", pages.Page.__class_getitem__(model))


def _read_bounded(response: httpx.Response) -> None:
    """Read `response` up to _MAX_ANSWER bytes unpacked, before httpx reads it whole (which then takes what this read);
    past it, a DecodingError: an answer no retry would make smaller."""
    chunks, size = [], 0
    for chunk in response.iter_bytes():
        size += len(chunk)
        if size > _MAX_ANSWER:
            message = f"an answer past {_MAX_ANSWER >> 20} MB, more than any Calendly page holds; not read further"
            raise httpx.DecodingError(message, request=response.request)
        chunks.append(chunk)
    response._content = b"".join(chunks)


def _collect(pages: Iterator[ListingPage[T]]) -> list[T]:
    items: list[T] = []
    for page in pages:
        if page.restarted:
            items.clear()
        items.extend(page.items)
    return items


def _parse_base_url(base_url: str) -> httpx.URL:
    # The URL is not echoed in these messages: a mis-pasted one may hold credentials.
    try:
        url = httpx.URL(base_url.strip())
        # hosts httpx takes but no DNS name can be raised UnicodeError mid-run (exit 1): an xn-- label that is no
        # Punycode on reading url.host, an empty label or one past 63 characters in the socket's encoding of it
        url.host  # noqa: B018
        url.raw_host.decode("ascii").encode("idna")
    except (httpx.InvalidURL, UnicodeError):
        raise ConfigError("the Calendly API base URL is not a valid URL") from None
    if url.userinfo or url.query or url.fragment:
        raise ConfigError("the Calendly API base URL must not carry credentials, a query or a fragment")
    if url.scheme not in _DEFAULT_PORTS or not url.host:
        raise ConfigError("the Calendly API base URL must be an http(s) URL with a host")
    return url


def _origin_of(url: httpx.URL) -> tuple[str, str, int]:
    port = url.port if url.port is not None else _DEFAULT_PORTS.get(url.scheme, 0)
    return (url.scheme, url.host.lower(), port)


def _format_origin(origin: tuple[str, str, int]) -> str:
    scheme, host, port = origin
    return f"{scheme}://{host}:{port}"


def _scope_params(user: str | None, organization: str | None, *, required: bool) -> dict[str, str]:
    params: dict[str, str] = {}
    if organization:
        params["organization"] = organization
    if user:
        params["user"] = user
    if required and not params:
        raise InvalidInput("a Calendly listing needs a user or an organization URI")
    return params


def _checked_count(count: int) -> int:
    if not 1 <= count <= _MAX_COUNT:
        raise InvalidInput(f"page size must be between 1 and {_MAX_COUNT}, not {count}")
    return count


def _checked_status(status: str) -> str:
    if status not in ("active", "canceled"):
        raise InvalidInput(f"status must be 'active' or 'canceled', not {status!r}")
    return status


def _utc_param(name: str, value: datetime) -> str:
    if value.tzinfo is None or value.utcoffset() is None:
        raise InvalidInput(f"{name} must be an aware datetime")
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def names_an_invitee(uri: str, event_uri: str) -> bool:
    """Whether an invitee's URI and its event's are ones bapp can later ask Calendly about (get_invitee,
    cancel_event): stored, any other is refused at the no-show or cancel as if the user had typed it (exit 6)."""
    try:
        _invitee_path(uri), _uuid_from(event_uri, "scheduled_events")
    except InvalidInput:
        return False
    return True


def _invitee_path(uri: str) -> str:
    """``/scheduled_events/{uuid}/invitees/{uuid}`` of an invitee URI; InvalidInput for any other shape."""
    event_uri, _, _ = uri.partition("/invitees/")
    return f"/scheduled_events/{_uuid_from(event_uri, 'scheduled_events')}/invitees/{_uuid_from(uri, 'invitees')}"


def _uuid_from(uri: str, collection: str) -> str:
    """The uuid of ``https://…/<collection>/<uuid>`` (or a bare uuid); refuses anything path-like."""
    candidate = uri.strip()
    if "/" in candidate:
        try:
            parts = httpx.URL(candidate).path.rstrip("/").split("/")
        except httpx.InvalidURL:  # not a URL at all (an unclosed '[', a port that is no number): refused below
            parts = []
        if len(parts) < 2 or parts[-2] != collection:
            raise InvalidInput(f"not a Calendly {collection} URI: {uri!r}")
        candidate = parts[-1]
    if not _UUID_RE.match(candidate):
        raise InvalidInput(f"not a Calendly {collection} URI or uuid: {uri!r}")
    return candidate


def _reset_seconds(response: httpx.Response) -> float | None:
    """Seconds until a 429's limit resets: ``X-RateLimit-Reset``, else ``Retry-After``, else unknown."""
    for header in ("X-RateLimit-Reset", "Retry-After"):
        if (seconds := _header_seconds(response.headers.get(header))) is not None:
            return seconds
    return None


def _header_seconds(value: str | None) -> float | None:
    """Seconds to wait from X-RateLimit-Reset / Retry-After (delta seconds, or an HTTP date)."""
    if value is None or not value.strip():
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            moment = parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        seconds = moment.timestamp() - time.time()
        return max(0.0, seconds)
    if not math.isfinite(seconds) or seconds < 0:
        return None
    return seconds


def _status_text(response: httpx.Response) -> str:
    """``reason`` or Calendly's ``title: message (param: problem)`` from the error body."""
    body = _error_body(response)
    summary = body.summary() if body is not None else ""
    return summary or response.reason_phrase


def _error_body(response: httpx.Response) -> ErrorBody | None:
    from pydantic import ValidationError

    from bapp_cli.calendly.models import ErrorBody

    try:
        return ErrorBody.model_validate_json(response.content)
    except ValidationError:
        return None


def _error_message(response: httpx.Response) -> str:
    body = _error_body(response)
    return body.message if body is not None else response.reason_phrase


def _has_detail_code(response: httpx.Response, code: str) -> bool:
    body = _error_body(response)
    return body is not None and any(detail.code == code for detail in body.details)


def _is_scope_error(response: httpx.Response) -> bool:
    """Calendly's InsufficientScopeError is a 403 carrying ``required_scopes``; other 403s are refusals."""
    try:
        data = json.loads(response.content)
    except (ValueError, RecursionError):  # not JSON, or nested past the parser's depth: no scope error
        return False
    return isinstance(data, dict) and "required_scopes" in data


def _item_uri_note(body: bytes, loc: tuple[int | str, ...]) -> str:
    """`` (item https://…/ET7)`` when the failing field sits in a collection item that has a uri."""
    if len(loc) < 2 or loc[0] != "collection" or not isinstance(loc[1], int):
        return ""
    try:
        item: Any = json.loads(body)["collection"][loc[1]]
        uri = item.get("uri") if isinstance(item, Mapping) else None
    except (ValueError, LookupError, TypeError):
        return ""
    return f" (item {uri})" if isinstance(uri, str) else ""
