"""The webhook inbox (README "The inbox"; docs/reliability.md R8): no delivery and no pulled invitee is ever dropped.

A verified delivery is applied at once when it can be. When it cannot — its event type is not synced
yet, its invitee's e-mail cannot be used, its URI is unusable — it is *parked*: stored as received in
``webhook_deliveries`` (the raw body, the headers that matter, when it came, attempts, the last error)
in the same transaction that would have applied it, and the caller answers 202 / exits 3. A pull parks
the invitees it could not apply the same way, as a delivery-shaped body. ``retry_pending`` re-applies
parked ones (run by ``webhook retry``, after a sync and after a pull); an applied one keeps its row,
marked ``applied``, so the inbox is also the record of what waited and why.

Every write here runs under the ``calendly:bookings`` transaction lock that pulls and webhooks share,
so parking is check-then-insert safe across receivers: the same delivery parked twice (Calendly retries)
is one row, found by the SHA-256 of its body.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
from collections.abc import Collection, Iterable, Mapping
from dataclasses import replace
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from bapp_cli.calendly.models import WebhookInvitee, WebhookPayload
from bapp_cli.calendly.webhooks import UnfitDelivery, parse_webhook
from bapp_cli.db.audit import record_audit
from bapp_cli.db.domains import MAX_INBOX_BODY, MAX_INBOX_ERROR, MAX_INT32, URI_LENGTH
from bapp_cli.db.locks import CALENDLY_BOOKINGS, lock_keys
from bapp_cli.db.models import SessionType, WebhookDelivery
from bapp_cli.errors import InvalidInput, NotFound, check_length, quoted
from bapp_cli.services.calendly_bookings import BookedInvitee, InviteeOutcome, apply_webhook
from bapp_cli.services.listing import ALL, Page
from bapp_cli.services.plain_text import headers_without_controls, json_with_controls_escaped

INBOX_COLUMNS = (
    *("id", "status", "event", "source", "invitee_uri", "received_at", "attempts", "last_attempt_at", "last_error"),
    *("applied_at", "outcome"),
)
# Headers worth keeping with a parked body: enough to tell where it came from and when it was signed.
# Never the signature itself (it would be a replayable credential for the body).
KEPT_HEADERS = ("content-type", "user-agent", "x-forwarded-for", "x-request-id")


def kept_headers(headers: Mapping[str, str], signed_at: str) -> dict[str, str]:
    """The headers stored with a parked delivery (``headers``: names in lower case, as ASGI hands them over),
    plus the ``t=`` of its verified signature alone (``signed_at``): when Calendly signed it."""
    return {name: headers[name][:500] for name in KEPT_HEADERS if name in headers} | {"signature_timestamp": signed_at}


def unknown_event_type(session: Session, invitee: WebhookInvitee) -> str | None:
    """The event-type URI of an invitee delivery's ``invitee`` when no session type has it yet (else None)."""
    uri = invitee.scheduled_event.event_type
    synced = select(SessionType.id).where(SessionType.calendly_uri == uri)
    return uri if uri and session.scalars(synced).first() is None else None


def receive_delivery(
    session: Session,
    body: bytes,
    payload: WebhookPayload | UnfitDelivery,
    *,
    source: str,
    headers: Mapping[str, str],
    now: dt.datetime,
    pathway_question: re.Pattern[str],
    dry_run: bool = False,
    not_ready: str | None = None,
    unfetched: Mapping[str, str] = {},
) -> InviteeOutcome:
    """Apply one verified delivery in the caller's transaction, or park it (action ``parked``): stored as
    received, or another attempt of the same one counted. One that does not fit the model (``UnfitDelivery``)
    is parked without trying, its reason the model's.

    A delivery parked earlier that now applies (Calendly retried it after a sync) is marked applied. With
    ``not_ready`` (why the database is not at the head revision) it is parked without trying: the inbox
    table is there, but bapp will not apply deliveries to a schema it does not know. ``unfetched``: its event
    type, when the receiver could not fetch it from Calendly, with why (said instead of "sync first").
    """
    lock_keys(session, CALENDLY_BOOKINGS, people=True)  # the pull's order: the tables, then its lock (db.locks)
    if not_ready is None and not isinstance(payload, UnfitDelivery):
        outcome = apply_webhook(
            session, payload, now=now, pathway_question=pathway_question, dry_run=dry_run, unfetched=unfetched
        )
    else:  # not tried: its reason the model's, or the schema's
        note = payload.message if isinstance(payload, UnfitDelivery) else f"database not ready: {not_ready}"
        outcome = InviteeOutcome("skipped", payload.invitee_uri, note=note, dry_run=dry_run)
    return _park_unless_applied(session, body, payload.event, outcome, source=source, headers=headers, now=now)


def _park_unless_applied(
    session: Session,
    body: bytes,
    event: str,
    outcome: InviteeOutcome,
    *,
    source: str,
    headers: Mapping[str, str],
    now: dt.datetime,
) -> InviteeOutcome:
    """What follows an attempt at a delivery (``outcome``, which names its invitee and whether it was a dry run):
    counted on its inbox row if it waits there, and unless it applied, parked — stored as received when it is new
    (found by the SHA-256 of its body)."""
    digest = hashlib.sha256(body).hexdigest()
    known = session.scalars(select(WebhookDelivery).where(WebhookDelivery.body_sha256 == digest)).one_or_none()
    if known is not None and known.status == "pending":
        _attempted(known, outcome, now=now)
    if outcome.applied:
        return outcome
    reason = (outcome.note or "could not be applied")[:MAX_INBOX_ERROR]  # as `import all` takes it back
    if known is None:
        known = WebhookDelivery(
            event=event[:64],
            source=source,
            body=json_with_controls_escaped(body.decode(json.detect_encoding(body))),
            body_sha256=digest,
            headers=headers_without_controls(headers),
            invitee_uri=outcome.invitee_uri[:URI_LENGTH] or None,
            status="pending",
            received_at=now,
            last_attempt_at=now,
            last_error=reason,
        )
        # kept, it was in every backup, and no `import all` took one back
        check_length(known.body, MAX_INBOX_BODY, "webhook body", code=InvalidInput.code)
        session.add(known)
        session.flush()
        record_audit(session, "webhook_delivery", str(known.id), {"parked": event, "reason": reason})
    note = f"parked in the webhook inbox as #{known.id}: {reason}"
    return replace(outcome, action="parked", note=note, event=event)


def park_pulled(session: Session, pulled: Iterable[tuple[BookedInvitee, InviteeOutcome]], *, now: dt.datetime) -> None:
    """Park the invitees a pull could not apply (of its ``pulled`` invitees and their outcomes), each as the
    delivery Calendly would have sent for it, so the inbox holds one shape; the pull's own attempt is the one
    counted (it is not applied again).

    The body is deterministic for the same invitee data (sorted keys), so a pull that meets the same
    unapplicable invitee again parks nothing new.
    """
    for item, outcome in pulled:
        if outcome.applied:
            continue
        event = "invitee.canceled" if item.invitee.status == "canceled" else "invitee.created"
        if (mark := item.no_show_at) is not None:  # the pull applied it as a no-show delivery: parked as one
            event = "invitee_no_show.created"
        invitee = item.invitee.model_dump(mode="json", exclude_none=True)
        invitee["scheduled_event"] = item.event.model_dump(mode="json", exclude_none=True)
        at = mark.isoformat() if mark else invitee["updated_at"]
        envelope = {"event": event, "created_at": at, "payload": invitee}
        body = json.dumps(envelope, sort_keys=True, separators=(",", ":")).encode()
        _park_unless_applied(session, body, event, outcome, source="pull", headers={}, now=now)


def retry_pending(
    session: Session,
    *,
    now: dt.datetime,
    pathway_question: re.Pattern[str],
    discard: Collection[int] = (),
    tried: Collection[str] = (),
) -> list[InviteeOutcome]:
    """Re-apply parked deliveries, oldest first, in the caller's transaction; not those of the invitees in ``tried``
    (a pull's retry after it parked them: attempted once, they keep the reason the pull gave, not the retry's).

    One that applies is marked ``applied`` (with what it did); one that still cannot counts an attempt
    and keeps its latest reason. A stored body that does not parse (it did not fit the model when it came)
    stays pending with the reason, rather than failing the others, until a bapp that knows its shape applies it.
    Those whose ids are in ``discard`` are given up instead: removed, an audit entry keeping what and why.
    """
    lock_keys(session, CALENDLY_BOOKINGS, people=True, every_client=True)  # as the pull: one invitee after another
    pending = WebhookDelivery.status == "pending"
    query = select(WebhookDelivery).where(pending).order_by(WebhookDelivery.received_at, WebhookDelivery.id)
    results: list[InviteeOutcome] = []
    deliveries = [delivery for delivery in session.scalars(query) if delivery.invitee_uri not in tried]
    if missing := sorted(set(discard) - {delivery.id for delivery in deliveries}):
        hint = "`bapp calendly webhook list --pending` lists them"
        raise NotFound(f"no parked delivery #{quoted(missing[0])}", hint=hint)
    for delivery in deliveries:
        if delivery.id in discard:  # one no bapp can read (nested past the parser's depth) waited for ever, exit 3
            given_up = {"discarded": delivery.event, "reason": delivery.last_error, "body_sha256": delivery.body_sha256}
            record_audit(session, "webhook_delivery", str(delivery.id), given_up)
            session.delete(delivery)
            outcome = InviteeOutcome("discarded", delivery.invitee_uri or "")
        else:
            outcome = _reapplied(session, delivery, now=now, pathway_question=pathway_question)
        results.append(replace(outcome, event=delivery.event, dry_run=False, id=delivery.id))
    session.flush()
    return results


def _reapplied(
    session: Session, delivery: WebhookDelivery, *, now: dt.datetime, pathway_question: re.Pattern[str]
) -> InviteeOutcome:
    """A parked delivery applied again, its attempt counted: what it did, or why it still cannot be applied."""
    try:  # cleaned as it was when received (its warning was said then)
        payload = parse_webhook(delivery.body.encode())
    except InvalidInput as exc:
        outcome = InviteeOutcome("skipped", delivery.invitee_uri or "", note=exc.message)
    else:
        outcome = apply_webhook(session, payload, now=now, pathway_question=pathway_question)
    _attempted(delivery, outcome, now=now)
    return outcome


def _attempted(delivery: WebhookDelivery, outcome: InviteeOutcome, *, now: dt.datetime) -> None:
    """Another attempt at a parked delivery: applied now (with what it did), or still waiting and why."""
    # the count stops at its column's bound (past it PostgreSQL's overflowed, and SQLite's held what no restore
    # takes): refusing here would roll back a delivery just applied, and Calendly would send it again
    delivery.attempts, delivery.last_attempt_at = min(delivery.attempts + 1, MAX_INT32), now
    if not outcome.applied:
        delivery.last_error = (outcome.note or "could not be applied")[:MAX_INBOX_ERROR]
        return
    delivery.status, delivery.applied_at = "applied", now
    delivery.outcome = (outcome.action + (f" {outcome.reference}" if outcome.reference else ""))[:200]


def list_deliveries(session: Session, *, pending_only: bool = False, page: Page = ALL) -> list[dict[str, Any]]:
    """The inbox, newest first (or only the deliveries still waiting), searched and cut to ``page``: one
    record of ``INBOX_COLUMNS`` each."""
    query = select(WebhookDelivery).where(*([WebhookDelivery.status == "pending"] if pending_only else []))
    searched = (WebhookDelivery.event, WebhookDelivery.invitee_uri, WebhookDelivery.last_error, WebhookDelivery.outcome)
    newest_first = query.order_by(WebhookDelivery.received_at.desc(), WebhookDelivery.id.desc())
    rows = session.scalars(page.window(newest_first, *searched))
    return [{name: getattr(row, name) for name in INBOX_COLUMNS} for row in rows]
