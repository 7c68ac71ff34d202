"""R1 against real sockets: CalendlyClient versus the local FakeCalendly, one test per injected fault."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any, Literal
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from bapp_cli.calendly.client import CalendlyClient
from bapp_cli.errors import AuthError, NotFound, RemoteError
from tests.fakes.calendly_server import (
    DEFAULT_ORGANIZATION_URI,
    DEFAULT_TOKEN,
    DEFAULT_USER_URI,
    FakeCalendly,
    make_event_type,
    make_invitee,
    make_scheduled_event,
)

OTHER_USER = "https://api.calendly.com/users/OTHER"
READ_TIMEOUT = 0.3  # the read-timeout tests' own; every other test reads with SLOW_READ_TIMEOUT
# wide enough that a loaded machine never turns a slow answer into a timeout and an unexpected retry
SLOW_READ_TIMEOUT = 30.0


def catalogue(n: int = 250) -> list[dict[str, Any]]:
    # Every 4th type is switched off in Calendly: the sync must still see it.
    return [make_event_type(i, active=i % 4 != 0) for i in range(n)]


@pytest.fixture
def fake() -> Iterator[FakeCalendly]:
    with FakeCalendly(event_types=catalogue()) as server:
        yield server


@contextmanager
def client_for(fake: FakeCalendly, **options: Any) -> Iterator[tuple[CalendlyClient, list[float]]]:
    sleeps: list[float] = []
    options.setdefault("rng", lambda: 0.0)
    options.setdefault("timeout", httpx.Timeout(5.0, read=SLOW_READ_TIMEOUT))
    with CalendlyClient(fake.base_url, options.pop("token", DEFAULT_TOKEN), sleep=sleeps.append, **options) as client:
        yield client, sleeps


def uris(n: int) -> list[str]:
    return [f"https://api.calendly.com/event_types/ET{i:08d}" for i in range(n)]


# --- the happy path the faults disturb -----------------------------------------------------------


def test_lists_all_pages_active_and_inactive(fake: FakeCalendly) -> None:
    with client_for(fake) as (client, sleeps):
        types = client.list_event_types(user=DEFAULT_USER_URI)
    assert [t.uri for t in types] == uris(250)
    assert sum(not t.active for t in types) == 63
    listing = [r for r in fake.requests if r.path == "/event_types"]
    assert [r.params.get("page_token") is None for r in listing] == [True, False, False]
    assert all(r.params["user"] == DEFAULT_USER_URI and r.params["count"] == "100" for r in listing)
    assert all("active" not in r.params for r in listing)
    assert all(r.headers["authorization"] == f"Bearer {DEFAULT_TOKEN}" for r in listing)
    assert sleeps == []


def test_fake_next_page_is_absolute_on_its_origin_and_repeats_filters(fake: FakeCalendly) -> None:
    with httpx.Client(headers={"Authorization": f"Bearer {DEFAULT_TOKEN}"}) as http:
        body = http.get(f"{fake.base_url}/event_types", params={"user": DEFAULT_USER_URI, "count": 100}).json()
    pagination = body["pagination"]
    target = urlsplit(pagination["next_page"])
    assert f"{target.scheme}://{target.netloc}" == fake.base_url
    query = parse_qs(target.query)
    assert query["user"] == [DEFAULT_USER_URI] and query["count"] == ["100"]
    assert query["page_token"] == [pagination["next_page_token"]]
    assert len(body["collection"]) == pagination["count"] == 100


def test_scope_selects_types(fake: FakeCalendly) -> None:
    fake.add_event_type(make_event_type(900, OTHER_USER))
    fake.add_event_type(make_event_type(901, deleted_at=datetime(2025, 1, 1, tzinfo=UTC)))
    with client_for(fake) as (client, _):
        mine = client.list_event_types(user=DEFAULT_USER_URI)
        theirs = client.list_event_types(user=OTHER_USER)
        everyone = client.list_event_types(organization=DEFAULT_ORGANIZATION_URI)
        with pytest.raises(AuthError) as info:
            client.list_event_types(organization="https://api.calendly.com/organizations/NOT-MINE")
        deleted = client.get_event_type("ET00000901")
    assert len(mine) == 250 and [t.uri[-3:] for t in theirs] == ["900"] and len(everyone) == 251
    assert "not in your organization" in info.value.message
    assert deleted.deleted_at == datetime(2025, 1, 1, tzinfo=UTC)


def test_current_user_and_missing_event_type(fake: FakeCalendly) -> None:
    with client_for(fake) as (client, _):
        user = client.get_current_user()
        with pytest.raises(NotFound):
            client.get_event_type("https://api.calendly.com/event_types/NOPE")
    assert user.uri == DEFAULT_USER_URI and user.current_organization == DEFAULT_ORGANIZATION_URI


def test_ten_thousand_types_in_one_hundred_pages() -> None:
    with FakeCalendly(event_types=[make_event_type(i) for i in range(10_000)]) as big:
        big.prebuild(user=DEFAULT_USER_URI)
        # not a timeout test: a patient read timeout, so a loaded machine cannot add a retried request
        with client_for(big, timeout=httpx.Timeout(5.0)) as (client, _):
            types = client.list_event_types(user=DEFAULT_USER_URI)
        assert len(types) == 10_000 and len({t.uri for t in types}) == 10_000
        assert big.count("/event_types") == 100
        assert sum(len(t.custom_questions) for t in types) == 50_000


# --- R1 faults -------------------------------------------------------------------------------------


def _wait_until(condition: Any, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def test_the_next_page_is_on_its_way_while_the_caller_holds_this_one(fake: FakeCalendly) -> None:
    # P2: a page's validation and the caller's work on it overlap the next round trip instead of adding to it.
    fake.page_latency = 0.05
    with client_for(fake) as (client, _):
        pages = client.iter_event_type_pages(user=DEFAULT_USER_URI)
        first = next(pages)
        assert len(first.items) == 100
        assert _wait_until(lambda: fake.count("/event_types", with_page_token=True) == 1), "page 2 never requested"
        time.sleep(0.2)
        assert fake.count("/event_types") == 2  # one page ahead, never more
        assert [len(page.items) for page in pages] == [100, 50]
    assert fake.count("/event_types") == 3


def test_a_fault_on_the_page_fetched_ahead_fails_the_listing_after_the_pages_before_it(fake: FakeCalendly) -> None:
    fake.fail_next("/event_types", status=401, with_page_token=True)
    with client_for(fake) as (client, sleeps):
        pages = client.iter_event_type_pages(user=DEFAULT_USER_URI)
        assert len(next(pages).items) == 100
        with pytest.raises(AuthError) as info:
            next(pages)
    assert "HTTP 401" in info.value.message and sleeps == []
    assert fake.count("/event_types") == 2


def test_a_listing_left_early_ends_its_walk_and_requests_nothing_more(fake: FakeCalendly) -> None:
    fake.page_latency = 0.05
    with client_for(fake) as (client, _):
        pages = client.iter_event_type_pages(user=DEFAULT_USER_URI)
        assert len(next(pages).items) == 100
        assert _wait_until(lambda: fake.count("/event_types", with_page_token=True) == 1), "page 2 never requested"
        pages.close()  # the caller stops here: the page in flight ends before the client may close
        assert not [thread for thread in threading.enumerate() if thread.name == "calendly-pages"]
        time.sleep(0.2)
    assert fake.count("/event_types") == 2


def test_request_sent_is_set_once_a_request_is_written_or_the_client_closed(fake: FakeCalendly) -> None:
    # a sync's survey waits for it, so that its imports do not hold up the first request (P2)
    with client_for(fake) as (client, _):
        assert not client.request_sent.is_set()
        client.get_current_user()
        assert client.request_sent.is_set()
    with client_for(fake) as (unused, _):
        assert not unused.request_sent.is_set()
    assert unused.request_sent.is_set()  # a client closed before any request releases whoever waits


def test_the_client_loads_without_pydantic_the_models_or_httpx_command_line() -> None:
    # P2: the first request of a sync goes out before these load (about 0.2 s of imports on another thread)
    code = (
        "import sys, bapp_cli.calendly.client; "
        "print(sorted(m for m in ('pydantic', 'bapp_cli.calendly.models', 'click', 'rich', 'pygments') "
        "if sys.modules.get(m)))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


def test_the_fake_answers_every_get_after_its_page_latency(fake: FakeCalendly) -> None:
    fake.page_latency = 0.2
    with client_for(fake, timeout=httpx.Timeout(5.0)) as (client, _):
        started = time.monotonic()
        client.get_current_user()
        assert time.monotonic() - started >= 0.2


def test_429_with_reset_header_waits_then_completes(fake: FakeCalendly) -> None:
    fake.rate_limit_next("/event_types", reset=2, times=2)
    with client_for(fake, rng=lambda: 0.5) as (client, sleeps):
        types = client.list_event_types(user=DEFAULT_USER_URI)
    assert sleeps == [2.5, 2.5]
    assert [t.uri for t in types] == uris(250)
    assert fake.count("/event_types") == 5


@pytest.mark.parametrize("status", [500, 502, 503])
def test_5xx_burst_then_success(fake: FakeCalendly, status: int) -> None:
    fake.fail_next("/event_types", status, times=3, with_page_token=True)
    with client_for(fake) as (client, sleeps):
        types = client.list_event_types(user=DEFAULT_USER_URI)
    assert len(types) == 250
    assert sleeps == [0.25, 0.5, 1.0]
    assert fake.count("/event_types", with_page_token=True) == 5


def test_mixed_5xx_burst_then_success(fake: FakeCalendly) -> None:
    for status in (500, 502, 503):
        fake.fail_next("/event_types", status)
    with client_for(fake) as (client, sleeps):
        assert len(client.list_event_types(user=DEFAULT_USER_URI)) == 250
    assert len(sleeps) == 3 and fake.count("/event_types") == 6


def test_5xx_beyond_retries_is_remote_error(fake: FakeCalendly) -> None:
    fake.fail_next("/event_types", 503, times=None)
    with client_for(fake) as (client, sleeps), pytest.raises(RemoteError) as info:
        client.list_event_types(user=DEFAULT_USER_URI)
    assert fake.count("/event_types") == 6 and len(sleeps) == 5
    assert info.value.exit_code == 9
    assert info.value.message == "Calendly GET /event_types: HTTP 503 Service Unavailable; gave up after 5 retries"


def test_connection_reset_is_retried(fake: FakeCalendly) -> None:
    fake.reset_next("/event_types", times=2)
    with client_for(fake) as (client, sleeps):
        assert len(client.list_event_types(user=DEFAULT_USER_URI)) == 250
    assert len(sleeps) == 2 and fake.count("/event_types") == 5


def test_connection_resets_beyond_retries(fake: FakeCalendly) -> None:
    fake.reset_next("/users/me", times=None)
    with client_for(fake, max_retries=2) as (client, _), pytest.raises(RemoteError) as info:
        client.get_current_user()
    assert fake.count("/users/me") == 3
    assert "connection closed or reset" in info.value.message


def test_read_timeout_is_retried(fake: FakeCalendly) -> None:
    fake.delay_next("/event_types", seconds=READ_TIMEOUT * 4)
    with client_for(fake, timeout=httpx.Timeout(5.0, read=READ_TIMEOUT)) as (client, sleeps):
        assert len(client.list_event_types(user=DEFAULT_USER_URI)) == 250
    assert sleeps == [0.25] and fake.count("/event_types") == 4


def test_read_timeouts_beyond_retries(fake: FakeCalendly) -> None:
    fake.delay_next("/users/me", seconds=READ_TIMEOUT * 4, times=None)
    timeout = httpx.Timeout(5.0, read=READ_TIMEOUT)
    with client_for(fake, max_retries=1, timeout=timeout) as (client, _), pytest.raises(RemoteError) as info:
        client.get_current_user()
    assert fake.count("/users/me") == 2
    assert f"read timeout ({READ_TIMEOUT} s)" in info.value.message


@pytest.mark.parametrize("part", ["head", "body"])
def test_a_trickled_answer_ends_at_the_attempt_s_deadline_and_the_client_goes_on(
    fake: FakeCalendly, part: Literal["head", "body"]
) -> None:
    # a byte every 0.05 s never meets the 0.5 s read timeout; the attempt as a whole ends at connect + read, 1 s
    fake.trickle_next("/users/me", part)
    with client_for(fake, max_retries=0, timeout=httpx.Timeout(0.5)) as (client, _):
        started = time.monotonic()
        with pytest.raises(RemoteError) as info:
            client.get_current_user()
        assert 1.0 <= time.monotonic() - started < 1.0 + 3
        assert "timed out: no complete response within 1 s (connect + read timeout)" in info.value.message
        assert DEFAULT_TOKEN not in info.value.message
        assert client.get_current_user().uri  # the timed-out connection was dropped, the pool serves the next
    assert fake.count("/users/me") == 2


def test_a_proxy_from_the_environment_is_used_and_its_answer_bound_by_the_deadline(
    fake: FakeCalendly, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The deadline's first transport, given to httpx.Client, turned off the proxies the environment names: bapp
    # connected directly. The fake answers a proxy's request (GET http://host/path) as it answers Calendly's.
    for name in ("NO_PROXY", "no_proxy", "ALL_PROXY", "all_proxy", "http_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HTTP_PROXY", fake.base_url)
    fake.trickle_next("/users/me", "head")
    base = f"http://calendly.invalid:{urlsplit(fake.base_url).port}"  # no such host: reached through the proxy only
    with CalendlyClient(base, DEFAULT_TOKEN, max_retries=0, timeout=httpx.Timeout(0.5)) as client:
        with pytest.raises(RemoteError) as info:
            client.get_current_user()
        assert "timed out: no complete response within 1 s (connect + read timeout)" in info.value.message
        assert client.get_current_user().uri
    assert fake.count("/users/me") == 2


def test_truncated_json_is_remote_error(fake: FakeCalendly) -> None:
    fake.truncate_next("/event_types", keep=0.6)
    with client_for(fake) as (client, sleeps), pytest.raises(RemoteError) as info:
        client.list_event_types(user=DEFAULT_USER_URI)
    assert "page 1 response is not valid JSON" in info.value.message
    assert fake.count("/event_types") == 1 and sleeps == []


def test_schema_invalid_item_names_page_and_field(fake: FakeCalendly) -> None:
    fake.invalid_item(page=2, index=3, field="duration", value="sixty")
    with client_for(fake) as (client, _), pytest.raises(RemoteError) as info:
        client.list_event_types(user=DEFAULT_USER_URI)
    message = info.value.message
    assert "page 2" in message and "collection[3].duration" in message
    assert "ET00000103" in message
    # page 3 was already on its way while page 2 was validated (the client reads one page ahead), never more
    assert fake.count("/event_types") == 3


def test_stale_page_token_restarts_once(fake: FakeCalendly) -> None:
    fake.stale_page_token("/event_types", times=1)
    with client_for(fake) as (client, sleeps):
        types = client.list_event_types(user=DEFAULT_USER_URI)
    assert [t.uri for t in types] == uris(250)  # complete and without duplicates
    listing = [r.page_token is None for r in fake.requests if r.path == "/event_types"]
    assert listing == [True, False, True, False, False]
    assert sleeps == []


def test_stale_page_token_again_is_remote_error(fake: FakeCalendly) -> None:
    fake.stale_page_token("/event_types", times=None)
    with client_for(fake) as (client, _), pytest.raises(RemoteError) as info:
        client.list_event_types(user=DEFAULT_USER_URI)
    assert fake.count("/event_types") == 4
    assert "page_token: is invalid" in info.value.message


def test_401_is_auth_error_without_retry(fake: FakeCalendly) -> None:
    with client_for(fake, token="revoked-token") as (client, sleeps), pytest.raises(AuthError) as info:
        client.list_event_types(user=DEFAULT_USER_URI)
    assert info.value.exit_code == 4 and "401" in info.value.message and "revoked-token" not in info.value.message
    assert fake.count() == 1 and sleeps == []


def test_403_is_auth_error_without_retry(fake: FakeCalendly) -> None:
    fake.fail_next("/event_types", 403, times=None)
    with client_for(fake) as (client, sleeps), pytest.raises(AuthError) as info:
        client.list_event_types(user=DEFAULT_USER_URI)
    assert "403" in info.value.message and info.value.hint
    assert fake.count() == 1 and sleeps == []


def test_pagination_loop_is_remote_error(fake: FakeCalendly) -> None:
    fake.loop_pagination(at_page=3, back_to=2)
    with client_for(fake) as (client, _), pytest.raises(RemoteError) as info:
        client.list_event_types(user=DEFAULT_USER_URI, count=50)
    assert "pagination loop" in info.value.message
    assert fake.count("/event_types") == 3


def test_foreign_next_page_is_never_followed(fake: FakeCalendly) -> None:
    with FakeCalendly() as elsewhere:
        fake.foreign_next_page(at_page=1, origin=elsewhere.base_url)
        with client_for(fake) as (client, _), pytest.raises(RemoteError) as info:
            client.list_event_types(user=DEFAULT_USER_URI)
        assert elsewhere.requests == []
    assert "another origin" in info.value.message
    assert fake.count("/event_types") == 1


def test_faults_are_consumed_in_order_and_cleared(fake: FakeCalendly) -> None:
    fake.fail_next("/users/me", 500)
    fake.fail_next("/users/me", 502)
    with httpx.Client(headers={"Authorization": f"Bearer {DEFAULT_TOKEN}"}) as http:
        codes = [http.get(f"{fake.base_url}/users/me").status_code for _ in range(3)]
        fake.fail_next("/users/me", 503, times=None)
        fake.clear_faults()
        after = http.get(f"{fake.base_url}/users/me").status_code
        unauthenticated = httpx.get(f"{fake.base_url}/users/me").status_code
    assert codes == [500, 502, 200] and after == 200 and unauthenticated == 401


def test_a_request_to_an_earlier_tests_base_url_is_a_stray_that_takes_no_fault(fake: FakeCalendly) -> None:
    # session 32's CI: a one-shot 401 queued for a test's sync was taken by a request that was not the sync's (the
    # sync then succeeded, exit 0). Under a path of each test's own, a late request of an earlier test cannot take it.
    fake.begin_test()
    earlier = fake.base_url
    fake.begin_test()
    fake.fail_next("/event_types", 401)
    scope = {"user": DEFAULT_USER_URI}
    with httpx.Client(headers={"Authorization": f"Bearer {DEFAULT_TOKEN}"}) as http:
        stray = http.get(f"{earlier}/event_types", params=scope)
        root = http.get(f"http://127.0.0.1:{fake.port}/event_types", params=scope)  # a fake without begin_test's path
        own = http.get(f"{fake.base_url}/event_types", params=scope).status_code
        then = http.get(f"{fake.base_url}/event_types", params=scope)
    assert (stray.status_code, root.status_code, own, then.status_code) == (404, 404, 401, 200)
    assert fake.strays == [f"GET {urlsplit(earlier).path}/event_types", "GET /event_types"]
    assert [request.path for request in fake.requests] == ["/event_types", "/event_types"]  # this test's alone
    # the pages' links stay under the test's path (the client takes only their token, but a person reads them)
    assert then.json()["pagination"]["next_page"].startswith(f"{fake.base_url}/event_types?")


# --- scheduled events and invitees -----------------------------------------------------------------

T0 = datetime(2025, 3, 3, 9, 0, tzinfo=UTC)
ET = "https://api.calendly.com/event_types/ET00000001"


@pytest.fixture
def bookings() -> Iterator[FakeCalendly]:
    with FakeCalendly() as server:
        for i in range(25):
            event = make_scheduled_event(
                i, ET, T0 + timedelta(hours=i // 2), status="canceled" if i % 5 == 0 else "active"
            )
            server.add_scheduled_event(event, [make_invitee(event["uri"], j) for j in range(i % 3 + 1)])
        yield server


def test_scheduled_events_keyset_window_and_both_statuses(bookings: FakeCalendly) -> None:
    with client_for(bookings) as (client, _):
        events = client.list_scheduled_events(
            user=DEFAULT_USER_URI,
            min_start_time=T0 + timedelta(hours=2),
            max_start_time=T0 + timedelta(hours=10),
            count=4,
        )
    assert [e.uri[-2:] for e in events] == [f"{i:02d}" for i in range(4, 20)]
    assert {e.status for e in events} == {"active", "canceled"}
    assert bookings.count("/scheduled_events") == 4


def test_scheduled_events_stale_token_resumes_without_duplicates(bookings: FakeCalendly) -> None:
    bookings.stale_page_token("/scheduled_events", times=1)
    with client_for(bookings) as (client, _):
        events = client.list_scheduled_events(user=DEFAULT_USER_URI, count=5)
    assert [e.uri[-2:] for e in events] == [f"{i:02d}" for i in range(25)]
    resumed = [r for r in bookings.requests if r.path == "/scheduled_events"][2]
    assert resumed.page_token is None and resumed.params["min_start_time"] == "2025-03-03T11:00:00.000000Z"


def test_event_invitees(bookings: FakeCalendly) -> None:
    with client_for(bookings) as (client, _):
        invitees = client.list_event_invitees("https://api.calendly.com/scheduled_events/EV00000005", count=1)
        with pytest.raises(RemoteError):
            client.list_event_invitees("EV99999999")
    assert [i.email for i in invitees] == ["client0@example.com", "client1@example.com", "client2@example.com"]
    assert bookings.count("/scheduled_events/EV00000005/invitees") == 3
