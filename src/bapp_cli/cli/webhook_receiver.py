"""The Calendly webhook receiver: one delivery handler shared by `webhook apply` and `webhook serve`.

`DeliveryHandler.handle` is the whole rule for one delivery: verify the signature on the raw bytes
(nothing is parsed before it passes), parse, fetch an unknown event type once when a token is
configured and the database is at head, then apply or park the delivery in one transaction (services.webhook_inbox).

`ReceiverApp` is a small hand-written ASGI application around it, served by uvicorn. It has two routes
and no framework: a framework would add a dependency and start-up time for routing we do not need, and
every byte of the request (the raw body the signature covers, the size limit) stays under our control.
A delivery's database work runs in a bounded thread pool (the ORM is synchronous); the health check's outside it,
so that it never waits behind deliveries. HTTP answers:

    200  applied, unchanged, or an event bapp does not apply (acknowledged)
    202  parked in the inbox (durably recorded; applied by a later sync, pull or `webhook retry`), also
         while the database is not at head (an upgrade pending) and its inbox table is there, and for
         a JSON object bapp's model does not fit (refused, it would have Calendly disable the subscription)
    400  signed, but not a JSON object         401  missing, malformed, repeated, forged or stale signature
    404/405  wrong path or method               413  body over the size limit
    408  head or body not all sent within the read timeout (a stalled sender; the connection is closed)
    503  database busy or down (or not at head and without the inbox table), the receiver is shutting
         down, or the body read the longest, cut short to let a connection in past 100 (Calendly retries)
    500  a bug in bapp (Calendly retries; the log names the error type, never the body)

Access log lines carry the client address, method, path, status, outcome (why, for a 400 or 401) and time —
never the body, the query string or any header (the signature would let a reader replay the delivery).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import socket
import sys
import threading
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from sqlalchemy import inspect
from sqlalchemy.exc import SQLAlchemyError

from bapp_cli.calendly.webhooks import SIGNATURE_HEADER, UnfitDelivery, parse_webhook, verify_signature
from bapp_cli.cli.calendly import pathway_question
from bapp_cli.cli.context import utc_now
from bapp_cli.cli.terminal import visible
from bapp_cli.db import dbapi
from bapp_cli.db.engine import unit_of_work
from bapp_cli.db.migration import ensure_at_head
from bapp_cli.errors import AuthError, BappError, Busy, ConfigError, DatabaseNotReady, InvalidInput
from bapp_cli.services.plain_text import cleaned_message
from bapp_cli.services.sync import add_fetched_event_types, parse_rules
from bapp_cli.services.webhook_inbox import kept_headers, receive_delivery, unknown_event_type

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from bapp_cli.calendly.client import CalendlyClient
    from bapp_cli.calendly.models import EventType, WebhookPayload
    from bapp_cli.cli.context import AppState
    from bapp_cli.services.calendly_bookings import InviteeOutcome

RETRY_AFTER = {503: {"retry_after": "5"}}  # Calendly retries any non-2xx; this says when it may help
MAX_CONNECTIONS = 100  # open at once; Calendly opens one a delivery, and a file descriptor limit is often 1,024

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]


class DeliveryHandler:
    """Verifies, parses and applies (or parks) one delivery; safe to call from several threads."""

    # The receiver's: how to read the key again for each delivery (`key`); `webhook apply` reads it once.
    reread_key: Callable[[], str] | None = None
    key_problem: str | None = None  # why the key could not be read again, said once until it can

    def __init__(
        self, app_state: AppState, *, signing_key: str, source: str, tolerance: int, engine: Engine | None = None
    ) -> None:
        """Wired to the command's settings; ``source`` is ``apply`` (a command) or ``receiver`` (the service)."""
        settings = app_state.settings
        # At-head is checked after the signature and the body (nothing is looked at before they pass).
        self.engine = engine if engine is not None else app_state.engine()
        self.signing_key, self.source, self.tolerance = signing_key, source, tolerance
        self.pathway_question = pathway_question(app_state)
        self.rules = parse_rules(settings.calendly_rules())
        self.unit_of_work = functools.partial(  # in the command's zone: an enrolment a booking opens starts there
            unit_of_work, self.engine, actor=settings.actor, command=app_state.command_path, zone=settings.timezone
        )
        # The receiver must answer within Calendly's 15 s: its on-demand fetch gets a short deadline.
        within = 4.0 if source == "receiver" else None
        client = functools.partial(app_state.calendly_client, within=within, on_cleaned=self.say_cleaned)
        self.calendly_client: Callable[[], CalendlyClient] | None = client if settings.calendly_token() else None
        # Why an unknown event type could not be fetched or stored, and the text cleaned in one fetched, said as it
        # happens: on the command's stderr, or in the receiver's log (ReceiverApp).
        self.warn: Callable[[str], None] = app_state.messages.warning

    def say_cleaned(self, items: list[str]) -> None:
        self.warn(cleaned_message(items))

    def ensure_ready(self) -> None:
        """Raise DatabaseNotReady unless the database answers and is at head: the health check's and start-up's
        question; a delivery asks it inside its own transaction (`handle`)."""
        try:
            ensure_at_head(self.engine)
        except SQLAlchemyError as exc:
            raise DatabaseNotReady(f"database error: {type(exc).__name__}") from None

    def key(self) -> str:
        """The signing key, read again (a key file is: one in the environment or the config file stays as it started):
        a key file rewritten to rotate the key verifies from the next delivery on, with no restart. A key that cannot
        be read then, or none, leaves the one in use in place, and the log says why, once."""
        try:
            key = self.reread_key() if self.reread_key else self.signing_key
        except BappError as exc:
            if exc.message != self.key_problem:
                self.warn(f"signing key not read again, the one read before is kept: {exc.message}")
            self.key_problem = exc.message
            return self.signing_key
        if key != self.signing_key:
            self.warn("the signing key changed: deliveries are verified with the new one")
        self.signing_key, self.key_problem = key, None  # a problem said again if it comes back
        return key

    def handle(
        self, body: bytes, signature: str | None, headers: Mapping[str, str] | None = None, *, dry_run: bool = False
    ) -> InviteeOutcome:
        signed_at = verify_signature(signature, body, self.key(), now=time.time(), tolerance=self.tolerance)
        payload: WebhookPayload | UnfitDelivery
        try:
            payload = parse_webhook(body, self.say_cleaned)
        except UnfitDelivery as unfit:  # signed: parked, not refused into Calendly's retries (UnfitDelivery)
            payload = unfit
        unfetched: dict[str, str] = {}  # an event type Calendly would not give → why, which its parked note says
        receive = functools.partial(
            receive_delivery,
            body=body,
            payload=payload,
            source=self.source,
            headers=kept_headers(headers or {}, signed_at),
            pathway_question=self.pathway_question,
            dry_run=dry_run,
        )

        fetched: EventType | None = None
        invitee = None if self.calendly_client is None or isinstance(payload, UnfitDelivery) else payload.payload
        while True:
            with self.unit_of_work(dry_run=dry_run, at_head=False) as session:
                try:
                    # Asked of every delivery (a newer bapp's `db upgrade` may run while the receiver does), in its
                    # own transaction: a second connection, pinged, for one SELECT cost PostgreSQL a sixth of its rate.
                    dbapi.ensure_at_head(dbapi.Database.of_session(session))
                except DatabaseNotReady as not_ready:
                    # Reachable but not at head: bapp does not apply deliveries to a schema it does not know (an
                    # upgrade pending, or a newer bapp's), but keeping one as received is safe when the inbox is there.
                    with contextlib.suppress(SQLAlchemyError):  # no schema: PostgreSQL refuses the rest, the 503 below
                        if inspect(session.connection()).has_table("webhook_deliveries"):
                            return receive(session, now=utc_now(), not_ready=not_ready.message)
                    raise
                if fetched is not None:
                    try:  # a fetched type that cannot be stored must not cost the delivery (it parks)
                        add_fetched_event_types(session, [fetched], rules=self.rules, clock=utc_now)
                    except BappError as exc:
                        self.warn(f"fetched event type {fetched.uri} not stored: {exc.message}")
                        unfetched[fetched.uri] = exc.message  # a sync would not store it either
                # A type not synced yet is looked up here, at head (nothing is asked of Calendly for a schema that is
                # not), and fetched with the token outside any transaction (it may take seconds), then applied in a
                # new one: a known type's delivery (the rule) is one transaction and one at-head read, not two
                if invitee is None or (uri := unknown_event_type(session, invitee)) is None:
                    return receive(session, now=utc_now(), unfetched=unfetched)
            invitee = None
            assert self.calendly_client is not None  # an invitee is looked at only with a token
            try:  # `GET /event_types/{uuid}`; failing, not the delivery's failure: it parks, saying why
                with self.calendly_client() as client:
                    fetched = client.get_event_type(uri)
            except BappError as exc:
                self.warn(f"could not fetch event type {uri}: {exc.message}")
                unfetched[uri] = exc.message


# -- HTTP ------------------------------------------------------------------------------------------


class ReceiverApp:
    """The ASGI application: POST `path` for deliveries, GET /healthz for monitoring."""

    def __init__(
        self, handler: DeliveryHandler, *, path: str, max_body: int, workers: int, read_timeout: float
    ) -> None:
        self.handler, self.path, self.max_body, self.read_timeout = handler, path, max_body, read_timeout
        self.draining = False
        self._reading: set[asyncio.Timeout] = set()  # the deadlines of the bodies being read (cut_reads)
        self.executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="bapp-webhook")
        self._log_lock = threading.Lock()
        handler.warn = lambda message: self._log(f"warning: {message}")

    def _log(self, line: str) -> None:
        # One line, nothing a terminal acts on: a request path is the caller's text (percent-decoded, so
        # %1b and %0a arrive as ESC and newline) and must not retitle a terminal or forge a log line.
        line = visible(line.replace("\r", "\\r").replace("\n", "\\n").replace("\t", " "))
        with self._log_lock:
            sys.stderr.write(line + "\n")
            sys.stderr.flush()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        started = time.monotonic()
        status, outcome = await self._route(scope, receive, send)
        address = (scope.get("client") or ["-"])[0]  # none for a Unix socket
        took = (time.monotonic() - started) * 1000
        self._log(f'{address} "{scope["method"]} {scope["path"][:200]}" {status} {outcome} {took:.1f}ms')

    async def _route(self, scope: Scope, receive: Receive, send: Send) -> tuple[int, str]:
        method, path = scope["method"], scope["path"]
        if path == "/healthz":
            if method not in ("GET", "HEAD"):
                return await _answer(send, 405, {"error": "use GET"}, allow="GET, HEAD")
            return await self._health(send)
        if path != self.path:
            return await _answer(send, 404, {"error": "not found"})
        if method != "POST":
            return await _answer(send, 405, {"error": "deliveries are POSTed"}, allow="POST")
        if self.draining:
            return await _answer(send, 503, {"error": "shutting down; retry"}, retry_after="5")
        headers: dict[str, str] = {}
        for raw_name, raw_value in scope.get("headers", []):
            # A repeated header is one list, comma-joined (RFC 9110 5.3), not the last one alone: two signature
            # headers, a forged one first, had the second verified; joined, they repeat t= and v1= and are refused.
            name, value = raw_name.decode("latin-1").lower(), raw_value.decode("latin-1")
            headers[name] = f"{headers[name]}, {value}" if name in headers else value
        declared = headers.get("content-length", "")
        # a declared size over the limit is refused before a byte of the body is read
        body = 413 if declared.isdigit() and int(declared) > self.max_body else await self._body(receive)
        if isinstance(body, int):  # refused mid-request (nothing was read far enough to write anything)
            late, over = f"body not sent within {self.read_timeout:g} s", f"body over {self.max_body} bytes"
            cut_for = "shutting down" if self.draining else f"over {MAX_CONNECTIONS} connections"  # cut_reads
            error = {408: late, 413: over, 503: f"{cut_for}; retry"}[body]
            return await _answer(send, body, {"error": error}, connection="close", **RETRY_AFTER.get(body, {}))
        try:
            applied = await asyncio.get_running_loop().run_in_executor(
                self.executor, self.handler.handle, body, headers.get(SIGNATURE_HEADER.lower()), headers
            )
        except asyncio.CancelledError:
            # The stop no longer waits (a second Ctrl-C, or its 30 s are up): uvicorn answered the cancel 500, a bug,
            # with a traceback. The worker's transaction commits or rolls back whole; either way Calendly retries.
            return await _answer(send, 503, {"error": "shutting down; retry"}, outcome="stopped", retry_after="5")
        # Why it was refused goes in the log too: the messages are bapp's (none quotes the body or the signature).
        except AuthError as exc:
            why = exc.message.removeprefix("webhook refused: ")
            return await _answer(send, 401, {"error": exc.message}, outcome=f"refused ({why})")
        except InvalidInput as exc:
            return await _answer(send, 400, {"error": exc.message}, outcome=f"invalid ({exc.message})")
        except BappError as exc:
            # The message names the failure class only (a database error text may hold a host name).
            busy = isinstance(exc, (DatabaseNotReady, Busy))
            error = "database busy or unavailable; retry" if busy else "not applied; retry"
            return await _answer(send, 503, {"error": error}, outcome=exc.code, retry_after="5")
        except Exception as exc:  # a bug: Calendly retries; the log names the type, never the body
            return await _answer(send, 500, {"error": "internal error"}, outcome=f"bug:{type(exc).__name__}")
        record = applied.as_record()
        action = record["action"]
        status = action if action in ("parked", "ignored") else "applied"
        return await _answer(send, 202 if action == "parked" else 200, {"status": status, **record}, outcome=action)

    async def _body(self, receive: Receive) -> bytes | int:
        """The body, or the status refusing it: 413 past --max-body, 408 not all sent within --read-timeout (a
        sender stalled mid-body held its connection until the socket's timeout), 503 its read cut short."""
        body = bytearray()
        try:
            async with asyncio.timeout(self.read_timeout) as deadline:
                self._reading.add(deadline)
                while True:  # an http.disconnect message has no body and no more_body: it ends the loop
                    message = await receive()
                    body += message.get("body", b"")
                    if len(body) > self.max_body:
                        return 413
                    if not message.get("more_body", False):
                        return bytes(body)
        except TimeoutError:  # a deadline cut short has left _reading
            return 408 if deadline in self._reading else 503
        finally:
            self._reading.discard(deadline)

    def cut_reads(self, *, due_before: float | None = None) -> bool:
        """Bodies being read are refused now (503, closed; Calendly retries any non-2xx): every one for a stop (a
        stalled sender held the graceful stop for its 30 s), or, in a full house, the one being read the longest if its
        deadline comes ``due_before`` the oldest idle connection's (it began first). False if none was: a delivery in a
        worker, or being answered, is never cut (it commits or rolls back whole)."""
        reads = sorted(self._reading, key=lambda deadline: deadline.when() or 0.0)
        cut = reads if due_before is None else [each for each in reads[:1] if (each.when() or 0.0) < due_before]
        for deadline in cut:
            self._reading.discard(deadline)  # cut once; and _body tells a cut (503) from a read that ran out (408)
            if not deadline.expired():
                deadline.reschedule(asyncio.get_running_loop().time())
        return bool(cut)

    async def _health(self, send: Send) -> tuple[int, str]:
        try:
            # Not in the deliveries' pool: with every worker waiting on a lock, it waited out their --busy-timeout and a
            # monitor called a busy receiver dead (and a flood of checks held deliveries back). While the workers hold
            # the pool's connections, its own is one of the engine's overflow.
            await asyncio.to_thread(self.handler.ensure_ready)
        except asyncio.CancelledError:  # the stop no longer waits (as for a delivery, _route): not uvicorn's 500
            return await _answer(send, 503, {"status": "shutting down"}, outcome="stopped")
        except BappError as exc:
            # An unreachable database's error names its host and port (db.dbapi), as does a refused login (and
            # its user; a ConfigError): a health check, which anyone who can reach it may call, says only that.
            # The other reasons with a hint (no schema, another revision) come from a database that answered,
            # and tell its operator what to run.
            reason = exc.message if exc.hint and not isinstance(exc, ConfigError) else "the database is unreachable"
            return await _answer(send, 503, {"status": "unavailable", "reason": reason}, outcome="unhealthy")
        if self.draining:
            return await _answer(send, 503, {"status": "shutting down"}, outcome="draining")
        return await _answer(send, 200, {"status": "ok"}, outcome="ok")


async def _answer(
    send: Send, status: int, document: dict[str, Any], *, outcome: str | None = None, **extra_headers: str
) -> tuple[int, str]:
    """Send the JSON ``document`` with ``status`` and the ``extra_headers`` (``retry_after`` → Retry-After);
    returns what the access log shows: the status and the ``outcome`` (else the status again)."""
    payload = json.dumps(document, default=str).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode())]
    headers += [(name.replace("_", "-").encode(), value.encode()) for name, value in extra_headers.items()]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": payload})
    return status, outcome or str(status)


def listen(host: str, port: int) -> socket.socket:
    """The receiver's listening socket, bound before the command says it is listening: an address in use or
    a host that does not resolve is this command's configuration error (exit 4, one line), where uvicorn
    would log its own ERROR line after our "listening" and exit 3, which means partial success."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
        listener = socket.socket(family, kind, proto)
    except (OSError, UnicodeError) as exc:
        reason, hint = getattr(exc, "strerror", None) or exc, "use an address of this machine"
        raise ConfigError(f"--host: cannot listen on {host!r} ({reason})", hint=hint) from None
    try:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn does: restart after a stop
        listener.bind(address)
        listener.listen(MAX_CONNECTIONS)  # as uvicorn listens again (its backlog, below)
    except OSError as exc:
        listener.close()
        hint = "choose another --port, or stop what already listens there"
        raise ConfigError(f"cannot listen on {host}:{port} ({exc.strerror or exc})", hint=hint) from None
    return listener


def serve(app: ReceiverApp, listener: socket.socket) -> None:
    """Run the receiver under uvicorn on ``listener`` until SIGTERM, SIGHUP or SIGINT; in-flight deliveries
    finish (for up to 30 s, or until a second Ctrl-C), new ones get 503."""
    import signal

    import uvicorn
    from uvicorn.protocols.http.h11_impl import H11Protocol

    class BoundedConnection(H11Protocol):
        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            # Each connection holds a file descriptor (an idle one until its head's deadline): past MAX_CONNECTIONS,
            # the one waiting the longest makes room, so sockets opened faster than their deadlines close them cannot
            # exhaust the descriptors and lock deliveries out. Waiting: idle (its request's head not all read yet, or
            # its answer sent) since its latest request began (the connection's opening, or that request's first byte;
            # data_received), and closed; or reading its body since its head was read, and cut short (a 503). A
            # delivery in a worker or being answered waits on nothing of its sender's and stays; this new one is closed
            # only when no other waits. 100 senders stalled mid-body kept deliveries out until --read-timeout freed one
            # (for as long as they re-opened them), and closed all but the last of a burst of new connections.
            super().connection_made(transport)
            self.head_late = self.loop.call_later(app.read_timeout, self.refuse_late_head)
            if len(self.connections) > MAX_CONNECTIONS:
                ours = (each for each in self.connections if isinstance(each, BoundedConnection))
                idle = [each for each in ours if each.cycle is None or each.cycle.response_complete]
                # the oldest not already closing: there is one, this new one at least
                oldest = min(idle, key=lambda each: (each.transport.is_closing(), each.head_late.when()))
                if not app.cut_reads(due_before=oldest.head_late.when()):
                    oldest.transport.close()

        def data_received(self, data: bytes) -> None:
            # A request's head must arrive within --read-timeout of the connection's opening (of its first byte, for a
            # later request on a kept-alive connection), as its body must after it: a sender trickling header bytes
            # held its connection until the cap above closed it.
            if self.head_late.cancelled() and (self.cycle is None or self.cycle.response_complete):
                self.head_late = self.loop.call_later(app.read_timeout, self.refuse_late_head)
            super().data_received(data)
            if self.cycle is not None and not self.cycle.response_complete:  # the head is read: _body's deadline runs
                self.head_late.cancel()

        def _unsupported_upgrade_warning(self) -> None:
            # uvicorn's two WARNING lines for each request asking for an upgrade, one telling to install a WebSocket
            # library: noise any sender could fill the log with; the request is answered and logged as any other
            pass

        def refuse_late_head(self) -> None:
            # Answered 408 and closed, as a late body is (RFC 9110 15.5.9), so a sender that is merely slow learns why.
            # No request was parsed, so h11 has nothing to answer: the status line is written as it is.
            if not self.transport.is_closing():  # closed meanwhile: a bad head's 400, a hang-up, the cap
                self.transport.write(b"HTTP/1.1 408 Request Timeout\r\nconnection: close\r\ncontent-length: 0\r\n\r\n")
                self.transport.close()
                app._log(f'{self.client[0] if self.client else "-"} "-" 408 head-late')

    class DrainingServer(uvicorn.Server):
        @contextlib.contextmanager
        def capture_signals(self) -> Iterator[None]:
            # uvicorn listens for SIGINT and SIGTERM only: a hang-up (the terminal or SSH session running
            # the receiver closed) would otherwise stop it mid-delivery through the command's own handler.
            # An ignored SIGHUP (nohup) stays ignored.
            main = threading.current_thread() is threading.main_thread()  # signals are the main thread's
            hangup = signal.getsignal(signal.SIGHUP) if main else signal.SIG_IGN
            if hangup not in (signal.SIG_IGN, None):  # None: a handler not set from Python, left alone
                signal.signal(signal.SIGHUP, self.handle_exit)
            try:
                with super().capture_signals():
                    yield
            finally:
                if hangup not in (signal.SIG_IGN, None):
                    signal.signal(signal.SIGHUP, hangup)

        def handle_exit(self, sig: int, frame: Any) -> None:
            app.draining = True
            super().handle_exit(sig, frame)
            # uvicorn re-raises the signal after draining, so the process would die "killed by SIGTERM", or
            # say "Interrupted; nothing was changed." (exit 130) after a Ctrl-C, of a receiver that applied
            # deliveries until then; a drained receiver has stopped as asked, and says so with exit 0.
            self._captured_signals.remove(sig)

        async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
            app.cut_reads()  # in the event loop, which the signal handler is not
            await super().shutdown(sockets)

    config = uvicorn.Config(
        app,
        http=BoundedConnection,
        backlog=MAX_CONNECTIONS,  # also how many are accepted at once, before any is counted (and its fd freed)
        lifespan="off",  # nothing to start; the pool is shut down below, once uvicorn has drained
        # no WebSocket: with a library for it installed (uvicorn[standard]), uvicorn handed an `Upgrade: websocket`
        # request to it, outside BoundedConnection and the access log, and answered the app's silence 500
        ws="none",
        access_log=False,  # ours, without query strings or headers
        log_level="warning",
        timeout_graceful_shutdown=30,
        server_header=False,
        proxy_headers=False,
    )
    DrainingServer(config).run(sockets=[listener])
    # uvicorn has let in-flight requests finish; their database threads are done or finishing.
    app.executor.shutdown(wait=True)
