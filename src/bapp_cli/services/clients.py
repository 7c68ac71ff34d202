"""Clients: add, enrol, set status (`clients list` and `show` are plain reads: services.plain_reads).

Enrolment itself lives in `services.enrolment` (the booking flow and progress reuse it); this module is
the client-facing use cases around it.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy.orm import Session

from bapp_cli.db.audit import apply_changes, record_audit
from bapp_cli.db.locks import client_lock_key, lock_keys
from bapp_cli.db.models import Enrolment, Pathway, User
from bapp_cli.errors import Conflict, NotFound
from bapp_cli.services.enrolment import enrol, enrolment_day, find_enrolment
from bapp_cli.services.pathways import get_pathway
from bapp_cli.services.people import clean_name, ensure_client, get_builder, get_client, normalise_email
from bapp_cli.services.plain_reads import CLIENT_COLUMNS as CLIENT_COLUMNS  # `clients show` reads it in plain SQL
from bapp_cli.services.plain_reads import check_status

ENROLMENT_COLUMNS = ("client", "pathway", "status", "start_date", "completed_at", "builder")


def add_client(
    session: Session, email: str, *, name: str | None = None, company: str | None = None, industry: str | None = None
) -> dict[str, Any]:
    """Create a client (and its user unless one exists, e.g. a builder who also books); a duplicate is a conflict.
    Returns its record (CLIENT_COLUMNS)."""
    normalised = normalise_email(email)
    name, company, industry = clean_name(name, "name"), clean_name(company, "company"), clean_name(industry, "industry")
    # first, as `clients enroll`: a builder's new profile, then its account renamed, waited at the rename for an import
    # holding users, whose later batch made the same builder a client and waited for the profile (a deadlock). The
    # client's key, as a booking making their account: both inserted it, and the second's was refused "meanwhile"
    lock_keys(session, client_lock_key(normalised), people=True)
    user, profile, created = ensure_client(session, normalised, name=name, company=company, industry=industry)
    if not created:  # the unit of work rolls back whatever ensure_client touched
        raise Conflict(f"client {normalised!r} already exists", hint=f"see `bapp clients show {normalised}`")
    # a builder's account becoming a client is named as typed (ensure_client keeps a name it has: a booking's
    # form does not rename an account); the builder's own record shows their display name
    user.name = name or user.name
    values = (user.email, user.name, profile.company, profile.industry, profile.created_at)
    return dict(zip(CLIENT_COLUMNS, values, strict=True))


def _enrolment_record(
    session: Session, client: User, pathway: Pathway, enrolment: Enrolment, **changed: bool
) -> dict[str, Any]:
    """The enrolment's record (ENROLMENT_COLUMNS), then whether the command changed it (`enrolled`, `changed`)."""
    coach = session.get(User, enrolment.builder_id) if enrolment.builder_id is not None else None
    values = (client.email, pathway.slug, enrolment.status, enrolment.start_date, enrolment.completed_at)
    return {**dict(zip(ENROLMENT_COLUMNS, (*values, coach.email if coach else None), strict=True)), **changed}


def enroll_client(
    session: Session,
    email: str,
    pathway: str,
    *,
    now: dt.datetime,
    builder: str | None = None,
    start_date: dt.date | None = None,
) -> dict[str, Any]:
    """Enrol a client in a pathway, or give their enrolment the coach and start date given: `enrolled` says
    whether it was created, `changed` whether anything was written (false for a repeat with the same values).
    The start date is a day in the user's zone (--timezone), as is the day a completed enrolment was completed."""
    # first, as a booking: an import opens enrolments batch by batch holding the completion rules' lock, which enrol
    # takes after its insert; inserting one the import was yet to open, each waited for the other (a deadlock). The
    # client's key (a booking's too): two at once both found no enrolment, and the second's insert was refused (exit 8)
    lock_keys(session, client_lock_key(email), people=True)
    client, target = get_client(session, email)[0], get_pathway(session, pathway)
    coach = get_builder(session, builder)[0] if builder is not None else None
    found, created, changed, _ = enrol(
        session, client, target, now=now, builder=coach, start_date=start_date, update=True
    )
    return _enrolment_record(session, client, target, found, enrolled=created, changed=changed)


def set_client_status(session: Session, email: str, pathway: str, status: str, *, now: dt.datetime) -> dict[str, Any]:
    """Move a client's enrolment to active, paused or completed: completed not before its start date (Conflict),
    a day in the user's zone (--timezone: ahead of UTC, their today is already UTC's tomorrow); completed stamps
    the completion time."""
    # as `clients enroll`: two changes at once each read the enrolment as it stood before the other's (and audited so)
    lock_keys(session, client_lock_key(email), people=True)
    client, target = get_client(session, email)[0], get_pathway(session, pathway)
    if (enrolment := find_enrolment(session, client.id, target.id)) is None:
        hint = f"enrol first: `bapp clients enroll {client.email} {target.slug}`"
        raise NotFound(f"{client.email} is not enrolled in {target.slug!r}", hint=hint, code="enrolment_not_found")
    # completed before it starts, the enrolment would count negative days in `reports pathway-analytics`
    status = check_status(status)  # the one wording of an unknown status (`clients list --status` too)
    if status == "completed" != enrolment.status and enrolment.start_date > enrolment_day(session, now):
        hint = f"move its start to today or before: `bapp clients enroll {client.email} {target.slug} --start DATE`"
        starts = f"{client.email}'s enrolment in {target.slug} starts on {enrolment.start_date}"
        raise Conflict(f"{starts}: it cannot be completed before it starts", hint=hint, code="enrolment_not_started")
    if changes := apply_changes(enrolment, {"status": status}):
        enrolment.completed_at = now if status == "completed" else None
        record_audit(session, "enrolment", f"{client.email}:{target.slug}", changes)
    return _enrolment_record(session, client, target, enrolment, changed=bool(changes))
