"""Session types (what can be booked): lookup, the bookable rule, and the session record."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import delete, insert
from sqlalchemy.orm import Session

from bapp_cli.db.dbapi import Database
from bapp_cli.db.domains import MAX_SESSION_SLUG_LENGTH, MAX_TITLE_LENGTH
from bapp_cli.db.models import BuilderProfile, SessionType, SessionTypePathway, User
from bapp_cli.errors import InvalidInput
from bapp_cli.services.pathway_admin import SESSION_SLUG_PATTERN, check_name, checked_slug
from bapp_cli.services.plain_reads import SESSION_COLUMNS as SESSION_COLUMNS  # the record, defined once
from bapp_cli.services.plain_reads import list_session_types, session_type_id
from bapp_cli.services.plain_reads import parse_category as parse_category  # light, for `sessions list --category`
from bapp_cli.services.session_values import session_slug, title_slug


def check_bookable(session_type: SessionType, builder: User | None, profile: BuilderProfile | None) -> None:
    """Rule 1: refuse (exit 6) a loaded session type that cannot be booked, saying why (plain_reads.BOOKABLE in
    SQL), or one whose booking goes to a `builder` (with their `profile`) not accepting bookings; `sessions
    available` offers neither. `bookings link` gives no builder: what comes through a link skips that half."""
    reasons = (  # the first that holds is said
        (not session_type.enabled, "it is disabled locally"),
        (session_type.remote_deleted_at is not None, "it was deleted in Calendly"),
        (not session_type.present_in_last_sync, "it was missing from the last Calendly sync"),
        (session_type.calendly_uri is not None and not session_type.remote_active, "it is inactive in Calendly"),
    )
    if reason := next((text for failed, text in reasons if failed), None):
        message = f"session: {session_type.title!r} is not bookable ({reason})"
        raise InvalidInput(message, hint="see `bapp sessions available`", code="not_bookable")
    if profile is not None and builder is not None and not profile.accepting_bookings:
        hint = f"`bapp builders update {builder.email} --accepting` to reopen"
        raise InvalidInput(f"builder: {builder.email} is not accepting bookings", hint=hint, code="not_accepting")


def get_session_type(session: Session, identifier: str) -> SessionType:
    """A session type by id, Calendly URI or slug (slugs are unique)."""
    return session.get_one(SessionType, session_type_id(Database.of_session(session), identifier))


def session_records(session: Session, ids: Iterable[int] | None = None) -> list[dict[str, Any]]:
    """Session records (SESSION_COLUMNS) of every type, or of those of `ids`, in the order clients see them:
    `sessions list`'s plain read (plain_reads.list_session_types) on the session's own transaction."""
    return list_session_types(Database.of_session(session), include_all=True, ids=ids)


def link_pathways(session: Session, session_type_id: int, pathway_ids: Sequence[int]) -> None:
    """Make `pathway_ids` exactly the pathways the session type is linked to."""
    session.execute(delete(SessionTypePathway).where(SessionTypePathway.session_type_id == session_type_id))
    if pathway_ids:
        links = [{"session_type_id": session_type_id, "pathway_id": pathway_id} for pathway_id in pathway_ids]
        session.execute(insert(SessionTypePathway), links)


# -- slugs ------------------------------------------------------------------------------------------


def check_title(value: str) -> str:
    return check_name(value, field="title", max_length=MAX_TITLE_LENGTH, code="invalid_title")


def check_session_slug(value: str) -> str:
    """A slug a user gives a session type (`sessions add`, imports), as stored, or InvalidInput (exit 6)."""
    hint = "use lowercase letters, digits and single hyphens, not digits alone (a number is an id), e.g. 'play-lab'"
    return checked_slug(value, SESSION_SLUG_PATTERN, MAX_SESSION_SLUG_LENGTH, field="slug", what="session", hint=hint)


def row_slug(given: str | None, title: str, *, restore: bool) -> str | None:
    """A session row's slug: the one given, held to the rule — or, from a backup made before the rule, the
    one the rule gives it, as migration 0014 gives a database's — else the one its title gives (or None)."""
    if given is not None and not restore:
        return check_session_slug(given)
    return session_slug(given) if given is not None else title_slug(title)
