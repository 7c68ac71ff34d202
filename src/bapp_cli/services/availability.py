"""What a person may book (the seed's `/sessions/available`: availability depends on having an account).

Anonymous visitors see bookable, non-secret session types that need no account; a client with an account
sees every bookable, non-secret type; neither sees those of a builder not accepting bookings. A pathway
filter narrows only the *pathway* sessions to those linked to it (free and specialized ones stay). Order:
category (free, pathway, specialized), display order, price, title. The listing is `sessions list`'s read
(plain_reads.list_session_types): two queries whatever the catalogue size, the types and their pathway
links, after the lookups of the names it is given.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session

from bapp_cli.db.dbapi import Database
from bapp_cli.services.plain_reads import list_session_types, person


@dataclass(frozen=True)
class Availability:
    """The listing and who it was computed for (`client` None means anonymous)."""

    client: str | None
    sessions: list[dict[str, Any]]


def list_available_sessions(
    session: Session,
    *,
    client_email: str | None = None,
    pathway: str | None = None,
    category: str | None = None,
    builder_email: str | None = None,
) -> Availability:
    """Session types the client (or an anonymous visitor, when `client_email` is None) may book."""
    db = Database.of_session(session)
    client = person(db, client_email, "client", "u.email")[0] if client_email is not None else None
    sessions = list_session_types(
        db, available_to="client" if client else "anonymous", category=category, pathway=pathway, builder=builder_email
    )
    return Availability(client, sessions)
