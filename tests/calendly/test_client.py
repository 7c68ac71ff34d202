"""CalendlyClient logic against httpx.MockTransport: retries, waits, pagination guards, error mapping."""

from __future__ import annotations

import gc
import json
import random
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta, timezone
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest

from bapp_cli.calendly.client import DEFAULT_TIMEOUT, CalendlyClient, OutcomeUnknown
from bapp_cli.errors import AuthError, ConfigError, InvalidInput, NotFound, RemoteError
from tests.fakes.calendly_server import DEFAULT_USER_URI, make_event_type, make_invitee, make_scheduled_event

BASE = "https://api.calendly.com"
TOKEN = "tok-unit-7f3a9c"
Handler = Callable[[httpx.Request], httpx.Response]


class Recorder:
    """A MockTransport handler that records every request it answers."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return self.handler(request)

    def tokens(self) -> list[str | None]:
        return [r.url.params.get("page_token") for r in self.requests]


@contextmanager
def client_for(handler: Handler, **options: Any) -> Iterator[tuple[CalendlyClient, Recorder, list[float]]]:
    recorder = Recorder(handler)
    sleeps: list[float] = []
    options.setdefault("rng", lambda: 0.0)
    with CalendlyClient(
        options.pop("base_url", BASE),
        options.pop("token", TOKEN),
        transport=httpx.MockTransport(recorder),
        sleep=sleeps.append,
        **options,
    ) as client:
        yield client, recorder, sleeps


def page(items: list[dict[str, Any]], token: str | None = None, *, next_page: str | None = "auto") -> dict[str, Any]:
    if next_page == "auto":
        next_page = f"{BASE}/event_types?{urlencode({'count': 100, 'page_token': token})}" if token else None
    return {
        "collection": items,
        "pagination": {"count": len(items), "next_page": next_page, "next_page_token": token},
    }


def paged_handler(pages: dict[str | None, dict[str, Any]]) -> Handler:
    """Serve ``pages`` keyed by the page_token of the request (None = first page)."""

    def handle(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json=pages[request.url.params.get("page_token")])

    return handle


def event_types(start: int, stop: int) -> list[dict[str, Any]]:
    return [make_event_type(i) for i in range(start, stop)]


THREE_PAGES = {
    None: page(event_types(0, 2), "t2"),
    "t2": page(event_types(2, 4), "t3"),
    "t3": page(event_types(4, 5)),
}


def user_resource() -> dict[str, Any]:
    return {
        "resource": {
            "uri": DEFAULT_USER_URI,
            "name": "Ada",
            "email": "ada@example.com",
            "current_organization": f"{BASE}/organizations/ORG1",
        }
    }


# --- requests and pagination -----------------------------------------------------------------------


def test_sends_bearer_token_and_json_accept() -> None:
    with client_for(lambda r: httpx.Response(200, json=user_resource())) as (client, rec, _):
        user = client.get_current_user()
    assert user.current_organization == f"{BASE}/organizations/ORG1"
    request = rec.requests[0]
    assert request.headers["authorization"] == f"Bearer {TOKEN}"
    assert request.headers["accept"] == "application/json"
    assert str(request.url) == f"{BASE}/users/me"


def test_default_timeouts_are_bounded() -> None:
    assert DEFAULT_TIMEOUT.connect == 5.0 and DEFAULT_TIMEOUT.read == 30.0


def test_lists_every_page_keeping_the_callers_filters() -> None:
    with client_for(paged_handler(THREE_PAGES)) as (client, rec, sleeps):
        types = client.list_event_types(organization=f"{BASE}/organizations/ORG1")
    assert [t.uri[-2:] for t in types] == ["00", "01", "02", "03", "04"]
    assert rec.tokens() == [None, "t2", "t3"]
    for request in rec.requests:
        assert request.url.path == "/event_types"
        assert request.url.params["organization"] == f"{BASE}/organizations/ORG1"
        assert request.url.params["count"] == "100"
        assert "active" not in request.url.params  # inactive types must come too
    assert sleeps == []


def test_iter_pages_numbers_pages() -> None:
    with client_for(paged_handler(THREE_PAGES)) as (client, _, _):
        pages = list(client.iter_event_type_pages(user=DEFAULT_USER_URI, count=2))
    assert [(p.number, len(p.items), p.restarted) for p in pages] == [(1, 2, False), (2, 2, False), (3, 1, False)]


def test_cursor_read_wherever_the_page_puts_it() -> None:
    # The walk reads a trailing "pagination" on its own; one placed first, with a decoy "pagination" (an
    # unknown key, so ignored) ending the last item, must still give the real cursor.
    decoy = {**make_event_type(1), "pagination": {"next_page": None, "next_page_token": None}}
    first = page([make_event_type(0), decoy], "t2")
    pages = {
        None: {"pagination": first["pagination"], "collection": first["collection"]},
        "t2": page(event_types(2, 3)),
    }
    with client_for(paged_handler(pages)) as (client, rec, _):
        assert [t.uri[-2:] for t in client.list_event_types(user="u")] == ["00", "01", "02"]
    assert rec.tokens() == [None, "t2"]


def test_token_taken_from_next_page_when_token_field_absent() -> None:
    first = page(event_types(0, 1), None, next_page=f"{BASE}/event_types?count=1&page_token=from-url&user=u")
    pages = {None: first, "from-url": page(event_types(1, 2))}
    with client_for(paged_handler(pages)) as (client, rec, _):
        assert len(client.list_event_types(user="u")) == 2
    assert rec.tokens() == [None, "from-url"]
    assert rec.requests[1].url.params["user"] == "u"


def test_listing_needs_a_scope_and_a_sane_count() -> None:
    with client_for(paged_handler(THREE_PAGES)) as (client, rec, _):
        with pytest.raises(InvalidInput):
            client.list_event_types()
        with pytest.raises(InvalidInput):
            client.list_event_types(user="u", count=101)
    assert rec.requests == []


# --- 429 -------------------------------------------------------------------------------------------


def sequence(*responses: httpx.Response | Exception) -> Handler:
    """Answer with ``responses`` in order, then repeat the last one."""
    queue = list(responses)

    def handle(request: httpx.Request) -> httpx.Response:
        item = queue.pop(0) if len(queue) > 1 else queue[0]
        if isinstance(item, Exception):
            raise item
        return item

    return handle


def ok_user() -> httpx.Response:
    return httpx.Response(200, json=user_resource())


def test_429_waits_the_reset_header_plus_jitter() -> None:
    limited = httpx.Response(429, headers={"X-RateLimit-Reset": "7", "X-RateLimit-Remaining": "0"})
    with client_for(sequence(limited, limited, ok_user()), rng=lambda: 0.25) as (client, rec, sleeps):
        client.get_current_user()
    assert sleeps == [7.25, 7.25]
    assert len(rec.requests) == 3


def test_429_falls_back_to_retry_after() -> None:
    limited = httpx.Response(429, headers={"Retry-After": "3"})
    with client_for(sequence(limited, ok_user())) as (client, _, sleeps):
        client.get_current_user()
    assert sleeps == [3.0]


def test_429_prefers_rate_limit_reset_over_retry_after() -> None:
    limited = httpx.Response(429, headers={"Retry-After": "30", "X-RateLimit-Reset": "2"})
    with client_for(sequence(limited, ok_user())) as (client, _, sleeps):
        client.get_current_user()
    assert sleeps == [2.0]


def test_429_retry_after_http_date() -> None:
    later = (datetime.now(UTC) + timedelta(minutes=4)).strftime("%a, %d %b %Y %H:%M:%S GMT")
    limited = httpx.Response(429, headers={"Retry-After": later})
    with client_for(sequence(limited, ok_user())) as (client, _, sleeps):
        client.get_current_user()
    assert sleeps == [60.0]  # four minutes away, capped (within the 5 waits of 60 s)


def test_429_wait_is_capped_at_max_wait() -> None:
    limited = httpx.Response(429, headers={"X-RateLimit-Reset": "60"})
    with client_for(sequence(limited, ok_user()), max_wait=12.5, rng=lambda: 0.99) as (client, _, sleeps):
        client.get_current_user()
    assert sleeps == [12.5]


@pytest.mark.parametrize("header", ["X-RateLimit-Reset", "Retry-After"])
def test_429_reset_past_every_wait_left_gives_up_at_once(header: str) -> None:
    # the first try spends one of 5 waits of 12.5 s; the 4 left reach 50 s, short of the reset
    limited = httpx.Response(429, headers={header: "3600"})
    with client_for(sequence(httpx.Response(503), limited), max_wait=12.5) as (client, rec, sleeps):
        with pytest.raises(RemoteError) as info:
            client.get_current_user()
    assert len(rec.requests) == 2 and len(sleeps) == 1
    assert info.value.exit_code == 9
    assert "rate limited (HTTP 429) after 1 wait; Calendly accepts again in 3600 s (at " in info.value.message
    assert info.value.message.endswith(", past the 50 s of waits left: try again then")


@pytest.mark.parametrize(("reset", "shown"), [("1e308", "1e+308"), ("1e20", "1e+20")])
def test_429_reset_past_the_calendar_says_its_seconds_short(reset: str, shown: str) -> None:
    # no date to show, and its seconds were every digit: 309 of them for 1e308
    limited = httpx.Response(429, headers={"X-RateLimit-Reset": reset})
    with client_for(sequence(limited)) as (client, _, _), pytest.raises(RemoteError) as info:
        client.get_current_user()
    assert info.value.message == (
        f"Calendly GET /users/me: rate limited (HTTP 429); Calendly accepts again in {shown} s, "
        "past the 300 s of waits left: try again then"
    )


def test_429_without_usable_header_backs_off() -> None:
    limited = httpx.Response(429, headers={"X-RateLimit-Reset": "soon"})
    with client_for(sequence(limited, limited, ok_user())) as (client, _, sleeps):
        client.get_current_user()
    assert sleeps == [0.25, 0.5]


def test_429_gives_up_after_max_retries() -> None:
    limited = httpx.Response(429, headers={"X-RateLimit-Reset": "1"})
    with client_for(sequence(limited)) as (client, rec, sleeps), pytest.raises(RemoteError) as info:
        client.get_current_user()
    assert len(rec.requests) == 6 and len(sleeps) == 5
    assert info.value.exit_code == 9
    assert "429" in info.value.message and "5 retries" in info.value.message


# --- 5xx and transport failures --------------------------------------------------------------------


@pytest.mark.parametrize("status", [500, 502, 503, 504])
def test_5xx_bursts_back_off_exponentially_then_succeed(status: int) -> None:
    failing = httpx.Response(status)
    handler = sequence(failing, failing, failing, failing, ok_user())
    with client_for(handler) as (client, rec, sleeps):
        client.get_current_user()
    # rng 0 → the lower bound of each jitter window: half of 0.5 × 2^n.
    assert sleeps == [0.25, 0.5, 1.0, 2.0]
    assert len(rec.requests) == 5


def test_backoff_upper_bound_and_cap() -> None:
    failing = httpx.Response(503)
    with client_for(sequence(failing), rng=lambda: 0.999999, backoff_cap=3.0, max_retries=5) as (client, _, sleeps):
        with pytest.raises(RemoteError):
            client.get_current_user()
    assert [round(s, 3) for s in sleeps] == [0.5, 1.0, 2.0, 3.0, 3.0]


def test_backoff_jitter_stays_in_its_window() -> None:
    rng = random.Random(7)
    failing = httpx.Response(500)
    with client_for(sequence(failing), rng=rng.random, max_retries=5) as (client, _, sleeps):
        with pytest.raises(RemoteError):
            client.get_current_user()
    for n, wait in enumerate(sleeps):
        ceiling = 0.5 * 2**n
        assert ceiling / 2 <= wait <= ceiling
    assert len(set(sleeps)) == len(sleeps)  # jittered, not a fixed ladder


def test_backoff_respects_max_wait() -> None:
    with client_for(sequence(httpx.Response(500)), max_wait=0.3, rng=lambda: 0.9) as (client, _, sleeps):
        with pytest.raises(RemoteError):
            client.get_current_user()
    assert max(sleeps) == 0.3


def test_5xx_beyond_retries_is_remote_error() -> None:
    with client_for(sequence(httpx.Response(502)), max_retries=3) as (client, rec, sleeps):
        with pytest.raises(RemoteError) as info:
            client.get_current_user()
    assert len(rec.requests) == 4 and len(sleeps) == 3
    assert info.value.message == "Calendly GET /users/me: HTTP 502 Bad Gateway; gave up after 3 retries"


def test_429_and_5xx_share_one_retry_budget() -> None:
    limited = httpx.Response(429, headers={"X-RateLimit-Reset": "1"})
    handler = sequence(limited, httpx.Response(500), limited, httpx.Response(503), limited, httpx.Response(500))
    with client_for(handler, max_retries=5) as (client, rec, _), pytest.raises(RemoteError):
        client.get_current_user()
    assert len(rec.requests) == 6


@pytest.mark.parametrize(
    "failure",
    [
        httpx.ConnectError("Connection refused"),
        httpx.ReadTimeout("timed out"),
        httpx.ConnectTimeout("timed out"),
        httpx.ReadError("Connection reset by peer"),
        httpx.RemoteProtocolError("Server disconnected without sending a response."),
    ],
    ids=lambda e: type(e).__name__,
)
def test_transport_failures_are_retried(failure: Exception) -> None:
    with client_for(sequence(failure, failure, ok_user())) as (client, rec, sleeps):
        assert client.get_current_user().name == "Ada"
    assert len(rec.requests) == 3 and sleeps == [0.25, 0.5]


def test_transport_failures_beyond_retries_name_the_failure() -> None:
    with client_for(sequence(httpx.ReadTimeout("timed out")), max_retries=2) as (client, rec, _):
        with pytest.raises(RemoteError) as info:
            client.get_current_user()
    assert len(rec.requests) == 3
    assert "read timeout" in info.value.message and "ReadTimeout" in info.value.message


def test_an_unsubscribe_whose_lost_delete_is_retried_without_connecting_may_still_have_been_carried_out() -> None:
    # the first DELETE's answer lost, the retries never connected: "gave up" alone, read as nothing deleted
    found = httpx.Response(200, json={"resource": {}})
    handler = sequence(found, httpx.ReadTimeout("timed out"), httpx.ConnectError("Connection refused"))
    with client_for(handler, max_retries=2) as (client, rec, _), pytest.raises(OutcomeUnknown) as info:
        client.delete_webhook_subscription(f"{BASE}/webhook_subscriptions/AAAAAAAAAAAAAAAA")
    assert len(rec.requests) == 5 and "the request may have been received" in info.value.message


def test_non_transient_transport_error_is_not_retried() -> None:
    with client_for(sequence(httpx.UnsupportedProtocol("nope"))) as (client, rec, sleeps):
        with pytest.raises(RemoteError):
            client.get_current_user()
    assert len(rec.requests) == 1 and sleeps == []


# --- statuses that are not retried ----------------------------------------------------------------


@pytest.mark.parametrize("status", [401, 403])
def test_auth_failures_are_not_retried(status: int) -> None:
    body = {"title": "Permission Denied", "message": "You do not have permission"}
    with client_for(sequence(httpx.Response(status, json=body))) as (client, rec, sleeps):
        with pytest.raises(AuthError) as info:
            client.list_event_types(user="u")
    assert len(rec.requests) == 1 and sleeps == []
    assert info.value.exit_code == 4 and info.value.hint
    assert str(status) in info.value.message


def test_401_mid_listing_is_auth_error() -> None:
    def handle(request: httpx.Request) -> httpx.Response:
        if request.url.params.get("page_token"):
            return httpx.Response(401, json={"title": "Unauthenticated", "message": "The access token is invalid"})
        return httpx.Response(200, json=THREE_PAGES[None])

    with client_for(handle) as (client, rec, _), pytest.raises(AuthError) as info:
        client.list_event_types(user="u")
    assert "The access token is invalid" in info.value.message and len(rec.requests) == 2


def test_404_on_listing_is_remote_error_and_on_get_event_type_not_found() -> None:
    missing = httpx.Response(404, json={"title": "Resource Not Found", "message": "The server could not find it."})
    with client_for(sequence(missing)) as (client, rec, _):
        with pytest.raises(RemoteError) as listing:
            client.list_event_types(user="u")
        with pytest.raises(NotFound) as single:
            client.get_event_type(f"{BASE}/event_types/ET404")
        with pytest.raises(RemoteError):
            client.get_current_user()
    assert "HTTP 404 Resource Not Found" in listing.value.message
    assert single.value.exit_code == 7 and "ET404" in single.value.message
    assert rec.requests[1].url.path == "/event_types/ET404"


def test_get_event_type_returns_deleted_types() -> None:
    deleted = make_event_type(3, deleted_at=datetime(2025, 2, 1, tzinfo=UTC))
    with client_for(sequence(httpx.Response(200, json={"resource": deleted}))) as (client, _, _):
        assert client.get_event_type("ET00000003").deleted_at == datetime(2025, 2, 1, tzinfo=UTC)
        with pytest.raises(InvalidInput):
            client.get_event_type(f"{BASE}/users/ET00000003")
        with pytest.raises(InvalidInput):
            client.get_event_type("../users/me")


def test_redirects_are_not_followed() -> None:
    moved = httpx.Response(302, headers={"Location": "https://elsewhere.example/users/me"})
    with client_for(sequence(moved)) as (client, rec, _), pytest.raises(RemoteError) as info:
        client.get_current_user()
    assert len(rec.requests) == 1 and "redirect" in info.value.message


def test_other_4xx_is_remote_error_with_calendly_message() -> None:
    body = {"title": "Invalid Argument", "message": "bad", "details": [{"parameter": "user", "message": "is invalid"}]}
    with client_for(sequence(httpx.Response(400, json=body))) as (client, rec, sleeps):
        with pytest.raises(RemoteError) as info:
            client.list_event_types(user="u")
    # A 400 without a page_token is not a stale token: no restart, no retry.
    assert len(rec.requests) == 1 and sleeps == []
    assert "HTTP 400 Invalid Argument: bad (user: is invalid)" in info.value.message


# --- stale page token ------------------------------------------------------------------------------

STALE = {"title": "Invalid Argument", "message": "The supplied parameters are invalid."}


def stale_once(pages: dict[str | None, dict[str, Any]], *, times: int = 1, on: str = "t3") -> Handler:
    left = [times]

    def handle(request: httpx.Request) -> httpx.Response:
        token = request.url.params.get("page_token")
        if token == on and left[0] > 0:
            left[0] -= 1
            return httpx.Response(
                400, json={**STALE, "details": [{"parameter": "page_token", "message": "is invalid"}]}
            )
        return httpx.Response(200, json=pages[token])

    return handle


def test_stale_token_restarts_listing_once_without_duplicates() -> None:
    with client_for(stale_once(THREE_PAGES)) as (client, rec, sleeps):
        types = client.list_event_types(user="u")
    assert [t.uri[-2:] for t in types] == ["00", "01", "02", "03", "04"]
    assert rec.tokens() == [None, "t2", "t3", None, "t2", "t3"]
    assert sleeps == []


def test_stale_token_restart_is_flagged_to_page_consumers() -> None:
    with client_for(stale_once(THREE_PAGES)) as (client, _, _):
        pages = [(p.number, p.restarted) for p in client.iter_event_type_pages(user="u")]
    assert pages == [(1, False), (2, False), (1, True), (2, False), (3, False)]


def test_stale_token_twice_is_remote_error() -> None:
    with client_for(stale_once(THREE_PAGES, times=2)) as (client, rec, _):
        with pytest.raises(RemoteError) as info:
            client.list_event_types(user="u")
    assert rec.tokens() == [None, "t2", "t3", None, "t2", "t3"]
    assert "page token rejected again" in info.value.message and "page_token: is invalid" in info.value.message


# --- pagination guards -----------------------------------------------------------------------------


def test_pagination_loop_is_detected() -> None:
    pages = {None: page(event_types(0, 1), "a"), "a": page(event_types(1, 2), "b"), "b": page(event_types(2, 3), "a")}
    with client_for(paged_handler(pages)) as (client, rec, _), pytest.raises(RemoteError) as info:
        client.list_event_types(user="u")
    assert rec.tokens() == [None, "a", "b"]
    assert "pagination loop" in info.value.message and "page 3" in info.value.message


def test_page_pointing_to_itself_is_a_loop() -> None:
    pages = {None: page(event_types(0, 1), "a"), "a": page(event_types(1, 2), "a")}
    with client_for(paged_handler(pages)) as (client, rec, _), pytest.raises(RemoteError):
        client.list_event_types(user="u")
    assert len(rec.requests) == 2


def test_page_count_bound_stops_endless_listings() -> None:
    def endless(request: httpx.Request) -> httpx.Response:
        n = int(request.url.params.get("page_token") or 0)
        return httpx.Response(200, json=page(event_types(n, n + 1), str(n + 1)))

    with client_for(endless, max_pages=7) as (client, rec, _), pytest.raises(RemoteError) as info:
        client.list_event_types(user="u")
    assert len(rec.requests) == 7 and "7 pages" in info.value.message


@pytest.mark.parametrize(
    "next_page",
    [
        "https://evil.example/event_types?page_token=t2",
        "http://api.calendly.com/event_types?page_token=t2",
        "https://api.calendly.com:8443/event_types?page_token=t2",
        "https://api.calendly.com.evil.example/event_types?page_token=t2",
    ],
)
def test_foreign_next_page_is_refused_and_never_requested(next_page: str) -> None:
    pages = {None: page(event_types(0, 1), "t2", next_page=next_page), "t2": page(event_types(1, 2))}
    with client_for(paged_handler(pages)) as (client, rec, _), pytest.raises(RemoteError) as info:
        client.list_event_types(user="u")
    assert len(rec.requests) == 1
    assert {r.url.host for r in rec.requests} == {"api.calendly.com"}
    assert "another origin" in info.value.message


@pytest.mark.parametrize(
    "next_page",
    [
        "",
        "/event_types?page_token=t2",
        "//api.calendly.com/event_types?page_token=t2",
        "https://[::1",
        "https://xn--zz-/event_types?page_token=t2",  # no Punycode: idna's UnicodeError was exit 1
    ],
)
def test_next_page_that_is_no_full_url_is_refused_as_malformed(next_page: str) -> None:
    # '' and a path were refused as links 'to another origin (://:0, expected https://api.calendly.com:443)'
    pages = {None: page(event_types(0, 1), "t2", next_page=next_page), "t2": page(event_types(1, 2))}
    with client_for(paged_handler(pages)) as (client, rec, _), pytest.raises(RemoteError) as info:
        client.list_event_types(user="u")
    assert len(rec.requests) == 1
    assert info.value.message == "Calendly GET /event_types: page 1 has a malformed next_page URL"


def test_same_origin_with_explicit_default_port_is_followed() -> None:
    pages = {
        None: page(event_types(0, 1), "t2", next_page="https://API.calendly.com:443/event_types?page_token=t2"),
        "t2": page(event_types(1, 2)),
    }
    with client_for(paged_handler(pages)) as (client, _, _):
        assert len(client.list_event_types(user="u")) == 2


def test_next_page_without_token_is_refused() -> None:
    pages: dict[str | None, dict[str, Any]] = {
        None: page(event_types(0, 1), None, next_page=f"{BASE}/event_types?count=1")
    }
    with client_for(paged_handler(pages)) as (client, _, _), pytest.raises(RemoteError) as info:
        client.list_event_types(user="u")
    assert "without a page_token" in info.value.message


# --- invalid responses -----------------------------------------------------------------------------


def test_invalid_item_names_page_index_field_and_uri() -> None:
    broken = event_types(2, 6)
    broken[3]["duration"] = "sixty"
    pages = {None: page(event_types(0, 2), "t2"), "t2": page(broken)}
    with client_for(paged_handler(pages)) as (client, rec, sleeps), pytest.raises(RemoteError) as info:
        client.list_event_types(user="u")
    message = info.value.message
    assert "page 2" in message and "collection[3].duration: Input should be a valid integer" in message
    assert f"{BASE}/event_types/ET00000005" in message
    assert len(rec.requests) == 2 and sleeps == []


def test_truncated_json_is_remote_error() -> None:
    body = json.dumps(THREE_PAGES[None]).encode()[:300]
    with client_for(sequence(httpx.Response(200, content=body))) as (client, rec, _):
        with pytest.raises(RemoteError) as info:
            client.list_event_types(user="u")
    assert "page 1 response is not valid JSON" in info.value.message and len(rec.requests) == 1


@pytest.mark.parametrize("encoding", ["identity", "gzip"])
def test_an_answer_past_64_mb_is_refused_unread_and_not_asked_again(encoding: str) -> None:
    # a page, 64 MB of blanks before it: a server (or a proxy) sending it, or 2 MB of gzip that unpacks to it, held
    # all of it in memory, and JSON's parse twice that (4 GB for a 2 GB bomb)
    import gzip

    body = b" " * (65 << 20) + json.dumps(THREE_PAGES[None]).encode()
    headers = {}
    if encoding == "gzip":
        body, headers = gzip.compress(body, compresslevel=1), {"Content-Encoding": "gzip"}
        assert len(body) < 1 << 20
    with client_for(sequence(httpx.Response(200, content=body, headers=headers))) as (client, rec, sleeps):
        with pytest.raises(RemoteError) as info:
            client.list_event_types(user="u")
    assert info.value.message.startswith(
        "Calendly GET /event_types: request failed (DecodingError: an answer past 64 MB"
    )
    assert len(rec.requests) == 1 and sleeps == []


def test_missing_envelope_is_remote_error() -> None:
    with client_for(sequence(httpx.Response(200, json={"data": []}))) as (client, _, _):
        with pytest.raises(RemoteError) as info:
            client.list_event_types(user="u")
    assert "collection: Field required" in info.value.message


def test_wrong_single_resource_shape_is_remote_error() -> None:
    with client_for(sequence(httpx.Response(200, json=user_resource()["resource"]))) as (client, _, _):
        with pytest.raises(RemoteError) as info:
            client.get_current_user()
    assert "resource: Field required" in info.value.message


# --- scheduled events and invitees -------------------------------------------------------------------

ET_URI = f"{BASE}/event_types/ET1"
T0 = datetime(2025, 3, 1, 9, 0, tzinfo=UTC)


def scheduled(i: int, hours: int) -> dict[str, Any]:
    return make_scheduled_event(i, ET_URI, T0 + timedelta(hours=hours))


def test_scheduled_events_query_is_keyset_on_start_time() -> None:
    handler = sequence(httpx.Response(200, json=page([scheduled(1, 0)])))
    with client_for(handler) as (client, rec, _):
        events = client.list_scheduled_events(
            organization="org",
            min_start_time=datetime(2025, 3, 1, 10, 0, tzinfo=timezone(timedelta(hours=1))),
            max_start_time=T0 + timedelta(days=30),
        )
    params = rec.requests[0].url.params
    assert params["min_start_time"] == "2025-03-01T09:00:00.000000Z"
    assert params["max_start_time"] == "2025-03-31T09:00:00.000000Z"
    assert params["sort"] == "start_time:asc" and "status" not in params
    assert events[0].start_time == T0


def test_scheduled_events_refuse_naive_times_and_unknown_status() -> None:
    with client_for(sequence(httpx.Response(500))) as (client, rec, _):
        with pytest.raises(InvalidInput):
            client.list_scheduled_events(user="u", min_start_time=datetime(2025, 1, 1))
        with pytest.raises(InvalidInput):
            client.list_scheduled_events(user="u", status="pending")
    assert rec.requests == []


def test_scheduled_events_stale_token_resumes_from_last_start_time() -> None:
    # Two events share the boundary start time; one was delivered before the token went stale.
    first = page([scheduled(1, 0), scheduled(2, 1)], "t2")
    resumed = page([scheduled(2, 1), scheduled(3, 1), scheduled(4, 2)])
    calls: list[dict[str, str]] = []

    def handle(request: httpx.Request) -> httpx.Response:
        calls.append(dict(request.url.params))
        if request.url.params.get("page_token") == "t2":
            return httpx.Response(400, json=STALE)
        if "min_start_time" in request.url.params:
            return httpx.Response(200, json=resumed)
        return httpx.Response(200, json=first)

    with client_for(handle) as (client, _, _):
        events = client.list_scheduled_events(user="u")
    assert [e.uri[-2:] for e in events] == ["01", "02", "03", "04"]
    assert calls[2]["min_start_time"] == "2025-03-01T10:00:00.000000Z" and "page_token" not in calls[2]


def test_invitees_listed_for_an_event_uri() -> None:
    event_uri = f"{BASE}/scheduled_events/EV00000001"
    invitees = [make_invitee(event_uri, j) for j in range(3)]
    pages = {None: page(invitees[:2], "i2"), "i2": page(invitees[2:])}
    with client_for(paged_handler(pages)) as (client, rec, _):
        found = client.list_event_invitees(event_uri, status="active")
        with pytest.raises(InvalidInput):
            client.list_event_invitees(f"{BASE}/event_types/EV00000001")
    assert [i.email for i in found] == ["client0@example.com", "client1@example.com", "client2@example.com"]
    assert {r.url.path for r in rec.requests} == {"/scheduled_events/EV00000001/invitees"}
    assert all(r.url.params["status"] == "active" for r in rec.requests)


# --- construction ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "base_url",
    [
        "ftp://api.calendly.com",
        "not a url",
        "https://user:pw@api.calendly.com",
        # hosts no DNS name can be, which httpx takes: idna's UnicodeError on reading the first, the socket's on
        # connecting to the others (exit 1 both)
        "https://xn--zz-",
        "https://api..calendly.com",
        f"https://{'a' * 64}.calendly.com",
    ],
)
def test_bad_base_urls_are_config_errors(base_url: str) -> None:
    with pytest.raises(ConfigError) as info:
        CalendlyClient(base_url, TOKEN)
    assert "pw" not in info.value.message


def test_base_url_path_prefix_is_kept() -> None:
    with client_for(lambda r: httpx.Response(200, json=user_resource()), base_url=f"{BASE}/proxy/") as (client, rec, _):
        client.get_current_user()
    assert rec.requests[0].url.path == "/proxy/users/me"


@pytest.mark.parametrize("token", ["", "   ", "abc def", "abc\ndef", "tökén"])
def test_unusable_tokens_are_refused_up_front(token: str) -> None:
    with pytest.raises(AuthError) as info:
        CalendlyClient(BASE, token)
    if token.strip():
        assert token.strip() not in info.value.message


def test_token_file_newline_is_stripped() -> None:
    with client_for(lambda r: httpx.Response(200, json=user_resource()), token=f"{TOKEN}\n") as (client, rec, _):
        client.get_current_user()
    assert rec.requests[0].headers["authorization"] == f"Bearer {TOKEN}"


def test_garbage_collector_state_is_restored_after_parsing() -> None:
    broken = {None: page([{**make_event_type(0), "duration": "x"}])}
    assert gc.isenabled()
    with client_for(paged_handler(THREE_PAGES)) as (client, _, _):
        client.list_event_types(user="u")
    assert gc.isenabled()
    with client_for(paged_handler(broken)) as (client, _, _), pytest.raises(RemoteError):
        client.list_event_types(user="u")
    assert gc.isenabled()
    gc.disable()
    try:
        with client_for(paged_handler(THREE_PAGES)) as (client, _, _):
            client.list_event_types(user="u")
        assert not gc.isenabled()  # a caller's choice to run without GC is kept
    finally:
        gc.enable()


def test_control_characters_in_an_answer_are_removed_and_the_items_reported() -> None:
    # Calendly's text is not bapp's to refuse: removed as it is parsed (a backup of it must restore), and said
    item = make_event_type(1, name="Intro \x1b[5mblink")
    body = json.dumps(page([item, make_event_type(2)])).encode().replace(b"Intro", b"In\xc2\x9btro\x7f")
    cleaned: list[list[str]] = []
    with client_for(lambda request: httpx.Response(200, content=body), on_cleaned=cleaned.append) as (client, _, _):
        listed = client.list_event_types(user=DEFAULT_USER_URI)
    assert [one.name for one in listed] == ["Intro [5mblink", make_event_type(2)["name"]]
    assert cleaned == [[f'{item["uri"]} "Intro [5mblink"']]


def test_a_scheduling_api_answer_is_cleaned_too() -> None:
    invitee = make_invitee(f"{BASE}/scheduled_events/EV1", 1, email="ada@example.com")
    invitee["name"] = "Ada\x00 Lovelace"
    cleaned: list[list[str]] = []
    answer = httpx.Response(201, json={"resource": invitee})
    with client_for(lambda request: answer, on_cleaned=cleaned.append) as (client, _, _):
        created = client.create_invitee({"event_type": f"{BASE}/event_types/ET1"})
    assert created.name == "Ada Lovelace" and len(cleaned) == 1
