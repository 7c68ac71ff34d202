"""What a person may book (the seed's `/sessions/available`: availability depends on having an account).

Anonymous visitors see bookable, non-secret session types that need no account; a client with an account
sees every bookable, non-secret type. A pathway filter narrows only the *pathway* sessions to those linked
to it (free and specialized ones stay). Order: category (free, pathway, specialized), display order,
price, title. The whole listing is three queries whatever the catalogue size: the types these filters
leave, then `sessions list`'s read of the bookable ones and of their pathway links.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import exists, or_, select
from sqlalchemy.orm import Session

from bapp_cli.db.dbapi import Database
from bapp_cli.db.models import SESSION_CATEGORIES, SessionType, SessionTypePathway
from bapp_cli.services.pathways import get_pathway
from bapp_cli.services.people import get_builder, get_client
from bapp_cli.services.plain_reads import list_session_types
from bapp_cli.services.session_types import SESSION_COLUMNS, parse_category

CATEGORY_TITLES = {
    "free": "Free Sessions",
    "pathway": "Learning Pathway Sessions",
    "specialized": "Specialized Sessions",
}
AVAILABLE_COLUMNS = SESSION_COLUMNS


@dataclass(frozen=True)
class Availability:
    """The listing and who it was computed for (`client` None means anonymous)."""

    client: str | None
    sessions: list[dict[str, Any]]

    def grouped(self) -> list[tuple[str, list[dict[str, Any]]]]:
        """(heading, records) per category in display order, empty categories left out."""
        return [
            (CATEGORY_TITLES[category], [record for record in self.sessions if record["category"] == category])
            for category in SESSION_CATEGORIES
            if any(record["category"] == category for record in self.sessions)
        ]


def list_available_sessions(
    session: Session,
    *,
    client_email: str | None = None,
    pathway: str | None = None,
    category: str | None = None,
    builder_email: str | None = None,
) -> Availability:
    """Session types the client (or an anonymous visitor, when `client_email` is None) may book."""
    client = get_client(session, client_email)[0] if client_email is not None else None
    query = select(SessionType.id).where(SessionType.is_secret.is_(False))
    if client is None:
        query = query.where(SessionType.requires_auth.is_(False))
    if category is not None:
        query = query.where(SessionType.category == parse_category(category))
    if pathway is not None:
        pathway_id = get_pathway(session, pathway).id
        linked = exists().where(
            SessionTypePathway.session_type_id == SessionType.id, SessionTypePathway.pathway_id == pathway_id
        )
        query = query.where(or_(SessionType.category != "pathway", linked))
    if builder_email is not None:
        query = query.where(SessionType.builder_id == get_builder(session, builder_email)[0].id)
    sessions = list_session_types(Database.of_session(session), ids=session.scalars(query))
    return Availability(client.email if client is not None else None, sessions)
