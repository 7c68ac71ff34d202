"""Clients: add, list, enrol, set status (`clients show` is a plain read: services.plain_reads.show_client).

Enrolment itself lives in `services.enrolment` (the booking flow and progress reuse it); this module is
the client-facing use cases around it.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any

from sqlalchemy import and_, exists, or_, select
from sqlalchemy.orm import Session

from bapp_cli.db.audit import apply_changes, record_audit
from bapp_cli.db.batches import BATCH_SIZE
from bapp_cli.db.models import Booking, ClientProfile, Enrolment, Pathway, User
from bapp_cli.errors import Conflict, NotFound
from bapp_cli.services.enrolment import enrol, enrolment_day, find_enrolment
from bapp_cli.services.listing import ALL, Page
from bapp_cli.services.pathways import get_pathway
from bapp_cli.services.people import clean_text, ensure_client, get_builder, get_client, normalise_email
from bapp_cli.services.plain_reads import CLIENT_COLUMNS as CLIENT_COLUMNS  # `clients show` reads it in plain SQL
from bapp_cli.services.plain_reads import check_status

ENROLMENT_COLUMNS = ("client", "pathway", "status", "start_date", "completed_at", "builder")


def add_client(
    session: Session, email: str, *, name: str | None = None, company: str | None = None, industry: str | None = None
) -> dict[str, Any]:
    """Create a client (and its user unless one exists, e.g. a builder who also books); a duplicate is a conflict.
    Returns its record (CLIENT_COLUMNS)."""
    normalised = normalise_email(email)
    name, company, industry = clean_text(name, "name"), clean_text(company, "company"), clean_text(industry, "industry")
    user, profile, created = ensure_client(session, normalised, name=name, company=company, industry=industry)
    if not created:  # the unit of work rolls back whatever ensure_client touched
        raise Conflict(f"client {normalised!r} already exists", hint=f"see `bapp clients show {normalised}`")
    # a builder's account becoming a client is named as typed (ensure_client keeps a name it has: a booking's
    # form does not rename an account); the builder's own record shows their display name
    user.name = name or user.name
    values = (user.email, user.name, profile.company, profile.industry, profile.created_at)
    return dict(zip(CLIENT_COLUMNS, values, strict=True))


def iter_clients(
    session: Session,
    *,
    pathway: str | None = None,
    status: str | None = None,
    builder: str | None = None,
    page: Page = ALL,
    with_id: bool = False,
) -> Iterator[dict[str, Any]]:
    """Client records (CLIENT_COLUMNS) by e-mail, streamed. `pathway`/`status` filter on enrolments; `builder`
    keeps the clients that builder coaches (enrolment) or has a booking with; `page.search` looks in e-mail,
    name, company, industry. `with_id`: the user's id first (`export clients`).

    The filters are checked before the first row is read, so a bad one fails before any output.
    """
    # plain columns rather than ORM objects: a 300k-row listing spends its time writing rows, not building
    # and tracking entities it never changes
    columns = (User.email, User.name, ClientProfile.company, ClientProfile.industry, ClientProfile.created_at)
    query = select(*((User.id,) if with_id else ()), *columns).join(ClientProfile, ClientProfile.user_id == User.id)
    query = query.order_by(User.email)
    if pathway is not None or status is not None:
        conditions = [Enrolment.client_id == User.id]
        if pathway is not None:
            conditions.append(Enrolment.pathway_id == get_pathway(session, pathway).id)
        if status is not None:
            conditions.append(Enrolment.status == check_status(status))
        query = query.where(exists().where(and_(*conditions)))
    if builder is not None:
        builder_user, _ = get_builder(session, builder)
        coached = exists().where(Enrolment.client_id == User.id, Enrolment.builder_id == builder_user.id)
        booked = exists().where(Booking.client_id == User.id, Booking.builder_id == builder_user.id)
        query = query.where(or_(coached, booked))
    paged = page.window(query, User.email, User.name, ClientProfile.company, ClientProfile.industry)
    rows = session.execute(paged.execution_options(yield_per=BATCH_SIZE))
    keys = ("id", *CLIENT_COLUMNS) if with_id else CLIENT_COLUMNS
    return (dict(zip(keys, row, strict=True)) for row in rows)


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
    client, target = get_client(session, email)[0], get_pathway(session, pathway)
    coach = get_builder(session, builder)[0] if builder is not None else None
    found, created, changed = enrol(session, client, target, now=now, builder=coach, start_date=start_date, update=True)
    return _enrolment_record(session, client, target, found, enrolled=created, changed=changed)


def set_client_status(session: Session, email: str, pathway: str, status: str, *, now: dt.datetime) -> dict[str, Any]:
    """Move a client's enrolment to active, paused or completed: completed not before its start date (Conflict),
    a day in the user's zone (--timezone: ahead of UTC, their today is already UTC's tomorrow); completed stamps
    the completion time."""
    client, target = get_client(session, email)[0], get_pathway(session, pathway)
    enrolment = find_enrolment(session, client.id, target.id)
    if enrolment is None:
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
