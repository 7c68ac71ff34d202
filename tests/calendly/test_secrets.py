"""R6: the Calendly token never appears in any error the client raises, whatever the failure.

The mock transport is hostile on purpose: it echoes the Authorization header into error bodies and into
the text of the transport exceptions it raises, the way a misbehaving proxy or library might.
"""

from __future__ import annotations

import json
import traceback
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from bapp_cli.calendly.client import CalendlyClient
from bapp_cli.errors import BappError
from tests.fakes.calendly_server import make_event_type

TOKEN = "SECRET-TOKEN-c4l3ndly-0xDEADBEEF"
BASE = "https://api.calendly.com"
Handler = Callable[[httpx.Request], httpx.Response]


def echo(request: httpx.Request) -> str:
    return str(request.headers.get("authorization", ""))


def listing(items: list[dict[str, Any]], token: str | None, next_page: str | None = None) -> dict[str, Any]:
    if token and next_page is None:
        next_page = f"{BASE}/event_types?page_token={token}"
    return {"collection": items, "pagination": {"next_page": next_page, "next_page_token": token}}


def status(code: int, headers: dict[str, str] | None = None) -> Handler:
    return lambda r: httpx.Response(
        code, headers=headers, json={"title": f"echo {echo(r)}", "message": f"token was {TOKEN}"}
    )


def raising(kind: type[httpx.TransportError]) -> Handler:
    def handle(request: httpx.Request) -> httpx.Response:
        raise kind(f"failed while sending {echo(request)}", request=request)

    return handle


def on_second_page(second: Handler) -> Handler:
    def handle(request: httpx.Request) -> httpx.Response:
        if request.url.params.get("page_token"):
            return second(request)
        return httpx.Response(200, json=listing([make_event_type(0)], "p2"))

    return handle


def bad_item(request: httpx.Request) -> httpx.Response:
    item = {**make_event_type(0), "duration": TOKEN, "uri": f"{BASE}/event_types/{TOKEN}"}
    return httpx.Response(200, json=listing([item], None))


SCENARIOS: dict[str, Handler] = {
    "401": status(401),
    "403": status(403),
    "404": status(404),
    "400 first page": status(400),
    "429 exhausted": status(429, {"X-RateLimit-Reset": "0"}),
    "500 exhausted": status(500),
    "503 exhausted": status(503),
    "redirect": lambda r: httpx.Response(302, headers={"Location": f"https://x.example/?t={TOKEN}"}),
    "connect error": raising(httpx.ConnectError),
    "read timeout": raising(httpx.ReadTimeout),
    "connection reset": raising(httpx.ReadError),
    "protocol error": raising(httpx.RemoteProtocolError),
    "unsupported protocol": raising(httpx.UnsupportedProtocol),
    "truncated json": lambda r: httpx.Response(200, content=json.dumps({"collection": [TOKEN]}).encode()[:25]),
    "invalid item": bad_item,
    "stale token twice": on_second_page(status(400)),
    "loop": on_second_page(lambda r: httpx.Response(200, json=listing([make_event_type(1)], "p2"))),
    "foreign next_page": lambda r: httpx.Response(
        200, json=listing([make_event_type(0)], "p2", next_page=f"https://evil.example/?u={TOKEN}&page_token=p2")
    ),
}


def _all_text(exc: BaseException) -> str:
    parts = [str(exc), repr(exc), "".join(traceback.format_exception(exc))]
    if isinstance(exc, BappError):
        parts += [exc.message, exc.hint or "", json.dumps(exc.details, default=str)]
    return "\n".join(parts)


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_token_never_appears_in_errors(name: str) -> None:
    with CalendlyClient(
        BASE, TOKEN, transport=httpx.MockTransport(SCENARIOS[name]), sleep=lambda s: None, max_retries=1
    ) as client:
        assert TOKEN not in repr(client)
        with pytest.raises(BappError) as info:
            client.list_event_types(user="u")
    exc = info.value
    text = _all_text(exc)
    assert TOKEN not in text
    assert "c4l3ndly" not in text
    assert "\n" not in exc.message, "error messages are one line"
    # No chained httpx exception whose request (and headers) would ride along in a traceback.
    assert not any(isinstance(link, httpx.HTTPError) for link in _chain(exc))


def _chain(exc: BaseException) -> list[BaseException]:
    links: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in links:
        links.append(current)
        current = current.__cause__ or (None if current.__suppress_context__ else current.__context__)
    return links


def test_user_lookup_errors_do_not_leak_either() -> None:
    with CalendlyClient(BASE, TOKEN, transport=httpx.MockTransport(status(401))) as client:
        with pytest.raises(BappError) as info:
            client.get_current_user()
    assert TOKEN not in _all_text(info.value)
