"""Enrolments (the seed's ClientPathway): one per client and pathway, shared by bookings and progress."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.orm import Session

from bapp_cli.db.audit import apply_changes, record_audit
from bapp_cli.db.engine import command_zone
from bapp_cli.db.models import Enrolment, Pathway, User
from bapp_cli.errors import Conflict, InvalidInput


@dataclass(frozen=True)
class CompletionOutcome:
    """What one change earned a client: badge keys newly awarded and pathways newly completed (the completion rules
    are services.progress.record_completions; an enrolment made completed is one such change)."""

    badges_awarded: list[str] = field(default_factory=list)
    pathways_completed: list[str] = field(default_factory=list)
    badge_names: dict[str, str] = field(default_factory=dict)  # key → human name, for messages


def enrolment_day(session: Session, at: dt.datetime, *, anywhere: bool = False) -> dt.date:
    """The day `at` falls on where an enrolment's dates are days, at every door (its start, today, the day it is
    completed): the command's zone, --timezone (BAPP_TIMEZONE, the config's `timezone`; UTC by default). With
    `anywhere`, its latest day in any zone: a start day recorded elsewhere (an import's) is not after it."""
    # anywhere: Kiritimati's (UTC+14), where an instant's day comes last
    return at.astimezone(dt.timezone(dt.timedelta(hours=14)) if anywhere else command_zone(session)).date()


def find_enrolment(session: Session, client_id: int, pathway_id: int) -> Enrolment | None:
    return session.scalars(select(Enrolment).filter_by(client_id=client_id, pathway_id=pathway_id)).one_or_none()


def enrol(
    session: Session,
    client: User,
    pathway: Pathway,
    *,
    now: dt.datetime,
    builder: User | None = None,
    start_date: dt.date | None = None,
    update: bool = False,
    new_client: bool = False,
) -> tuple[Enrolment, bool, bool, CompletionOutcome]:
    """Enrol `client` in `pathway` (idempotent). Returns the enrolment, whether it was created, whether
    anything was written (created, or an existing one's coach or start date changed) and what the new enrolment
    earned the client as it was made: its pathway completed (and any badge not yet held), else nothing.

    An archived pathway takes no new enrolments; a new one whose pathway the client has completed is completed
    (services.progress.record_completions). An existing enrolment keeps its values, except that a
    missing coach is filled in from `builder` (a booking's builder); with `update` (`clients enroll`) it
    takes `builder` and `start_date` where given, audited: a start not after the day it was completed (days as
    `enrolment_day` reads them, as is today, the default start). ``new_client``: the caller
    created the client in this transaction, so there is no history to be complete with, and the completion rules
    (and their lock) are skipped.
    """
    existing = find_enrolment(session, client.id, pathway.id)
    if existing is not None:
        # as `clients set-status … completed` before the start: the enrolment would end before it began
        done = existing.completed_at and enrolment_day(session, existing.completed_at)
        if update and start_date and done and start_date > done:
            hint = f"start it by {done}, or reopen it: `bapp clients set-status {client.email} {pathway.slug} active`"
            said = f"{client.email}'s enrolment in {pathway.slug} was completed on {done}: it cannot start later"
            raise Conflict(said, hint=hint, code="enrolment_completed")
        changes = apply_changes(existing, {"start_date": start_date} if update and start_date is not None else {})
        if builder is not None and existing.builder_id != builder.id and (update or existing.builder_id is None):
            coach = session.get(User, existing.builder_id) if existing.builder_id is not None else None
            changes["builder"] = [coach.email if coach else None, builder.email]
            existing.builder_id = builder.id
        if changes:
            record_audit(session, "enrolment", f"{client.email}:{pathway.slug}", changes)
        return existing, False, bool(changes), CompletionOutcome()
    # read again under a share lock (as services.pathways.get_pathway's for_new_links): on PostgreSQL an archive
    # not yet committed was read past, and the archived pathway took the enrolment (SQLite's writers take turns)
    session.refresh(pathway, ["archived"], with_for_update={"read": True})
    if pathway.archived:
        raise InvalidInput(f"pathway {pathway.slug!r} is archived and takes no new enrolments", code="pathway_archived")
    # status is the model's default, active (as the audit below records it)
    enrolment = Enrolment(client_id=client.id, pathway_id=pathway.id, builder_id=builder.id if builder else None)
    # today in the user's zone, as `clients set-status … completed` reads it: UTC's may be their tomorrow
    enrolment.start_date = start_date or enrolment_day(session, now)
    session.add(enrolment)
    session.flush()
    changes = {"status": "active", "start_date": enrolment.start_date, "builder": builder.email if builder else None}
    record_audit(session, "enrolment", f"{client.email}:{pathway.slug}", changes)
    from bapp_cli.services.progress import record_completions  # here: services.progress imports this module

    # the client may have finished the pathway already: completed now, as `skills complete` would (one made in this
    # transaction has no history: nothing in scope, so the rules neither run nor take their lock)
    won = record_completions(session, now=now, pathway_ids=[] if new_client else [pathway.id], client_ids=[client.id])
    return enrolment, True, True, won.get(client.id, CompletionOutcome())
