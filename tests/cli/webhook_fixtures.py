"""Shared pieces of the webhook receiver tests: delivery bodies, signing, and the receiver as a real process."""

from __future__ import annotations

import datetime as dt
import json
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx

from bapp_cli.calendly.webhooks import make_signature_header
from tests.conftest import Bapp
from tests.fakes.calendly_server import API_ORIGIN, make_invitee, make_scheduled_event

KEY = "whsec-receiver-test-key-0123456789"
START = dt.datetime(2031, 3, 4, 10, 0, tzinfo=dt.UTC)
BOOKED = dt.datetime(2031, 2, 1, 9, 0, tzinfo=dt.UTC)
PATH = "/calendly/webhook"


def iso(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def type_uri(i: int) -> str:
    return f"{API_ORIGIN}/event_types/ET{i:08d}"


def invitee_uri(j: int) -> str:
    return f"{API_ORIGIN}/scheduled_events/EV{j:08d}/invitees/INV{j:08d}"


def delivery(
    j: int,
    *,
    event_name: str = "invitee.created",
    type_index: int = 0,
    email: str | None = None,
    cancelled_at: dt.datetime | None = None,
    no_show: bool | None = None,
    start: dt.datetime | None = None,
    sent_at: dt.datetime = BOOKED,
) -> bytes:
    """A delivery body as Calendly sends it: invitee ``j`` of its own event, the scheduled event embedded;
    ``sent_at`` is the envelope's ``created_at`` (when the change happened in Calendly)."""
    event = make_scheduled_event(j, type_uri(type_index), start or START + dt.timedelta(hours=j))
    invitee = make_invitee(event["uri"], j, email=email, created_at=BOOKED)
    if cancelled_at is not None:
        at = iso(cancelled_at)
        cancellation = {"canceled_by": "Client", "reason": "Clash", "canceler_type": "invitee", "created_at": at}
        invitee.update(status="canceled", updated_at=at, cancellation=cancellation)
    if no_show:
        invitee["no_show"] = {"uri": f"{API_ORIGIN}/invitee_no_shows/NS{j:08d}", "created_at": iso(sent_at)}
    envelope = {
        "event": event_name,
        "created_at": iso(sent_at),
        "created_by": f"{API_ORIGIN}/users/USER0001",
        "payload": {**invitee, "scheduled_event": event},
    }
    return json.dumps(envelope, indent=1).encode()


def signed(body: bytes, *, key: str = KEY, age: float = 0) -> str:
    return make_signature_header(body, key, timestamp=int(time.time() - age))


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class Receiver:
    """`bapp calendly webhook serve` running as its own process on a free port."""

    def __init__(self, process: subprocess.Popen[str], port: int) -> None:
        self.process = process
        self.port = port
        self.base = f"http://127.0.0.1:{port}"
        self.url = self.base + PATH
        self.http = httpx.Client(timeout=30)

    def post(self, body: bytes, signature: str | None = None, **headers: str) -> httpx.Response:
        sent = {"content-type": "application/json", **headers}
        if signature is not None:
            sent["Calendly-Webhook-Signature"] = signature
        return self.http.post(self.url, content=body, headers=sent)

    def deliver(self, body: bytes) -> httpx.Response:
        return self.post(body, signed(body))

    def stop(self) -> tuple[int, str]:
        self.http.close()
        if self.process.poll() is None:
            self.process.terminate()
        try:
            _, stderr = self.process.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            self.process.kill()
            _, stderr = self.process.communicate()
        return self.process.returncode, stderr


def start_receiver(app: Bapp, *args: str, env: dict[str, str | None] | None = None) -> Receiver:
    port = free_port()
    process = app.popen(
        "calendly",
        "webhook",
        "serve",
        "--port",
        str(port),
        *args,
        env={"CALENDLY_WEBHOOK_SIGNING_KEY": KEY, **(env or {})},
    )
    receiver = Receiver(process, port)
    deadline = time.monotonic() + 60
    # One client for the polls, closed with its connection once the receiver answers: httpx.get() made a client
    # (and its TLS context) a poll, ~37 CPU ms each, taken from the receiver starting up on the same two cores
    with httpx.Client(timeout=2) as poll:
        while True:
            if process.poll() is not None:
                _, stderr = process.communicate()
                raise AssertionError(f"the receiver exited with {process.returncode}: {stderr}")
            try:
                if poll.get(receiver.base + "/healthz").status_code in (200, 503):
                    return receiver
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                receiver.stop()
                raise AssertionError("the receiver did not start listening")
            time.sleep(0.05)


@contextmanager
def running_receiver(app: Bapp, *args: str, env: dict[str, str | None] | None = None) -> Iterator[Receiver]:
    receiver = start_receiver(app, *args, env=env)
    try:
        yield receiver
    finally:
        receiver.stop()


def bookings_by_invitee(app: Bapp) -> dict[str, dict[str, Any]]:
    result = app("bookings", "list", "--json")
    assert result.exit_code == 0, result.stderr
    return {row["calendly_invitee_uri"]: row for row in result.json()}
