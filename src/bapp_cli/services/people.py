"""Users, client profiles and builder profiles: lookups shared by every use case.

One user per e-mail address, stored lowercase. A user may be a client, a builder, or both.
"""

from __future__ import annotations

from typing import TypeVar

from sqlalchemy import select
from sqlalchemy.orm import Session

from bapp_cli.db.audit import record_audit
from bapp_cli.db.dbapi import Database
from bapp_cli.db.models import BuilderProfile, ClientProfile, User
from bapp_cli.errors import check_length
from bapp_cli.services.emails import normalise_email
from bapp_cli.services.plain_reads import person
from bapp_cli.services.plain_text import nfc, without_controls

__all__ = ["normalise_email"]  # re-exported: most use cases find it here beside the user lookups

MAX_TEXT = 200  # a person's name, company or industry
_Profile = TypeVar("_Profile", ClientProfile, BuilderProfile)


def clean_text(value: str | None, field: str, *, max_length: int = MAX_TEXT) -> str | None:
    """A free text of `max_length` (a reason, a key; a name is `clean_name`'s): trimmed, at most `max_length`
    characters, empty is none."""
    if value is None:
        return None
    return check_length(without_controls(value.strip(), field), max_length, field) or None


def clean_name(value: str | None, field: str) -> str | None:
    """A person's name, company or industry: as `clean_text` does, in NFC (services.plain_text.nfc)."""
    return clean_text(nfc(value), field)


def find_user(session: Session, email: str) -> User | None:
    return session.scalars(select(User).where(User.email == normalise_email(email))).one_or_none()


def _get_profiled(session: Session, email: str, profile: type[_Profile], role: str) -> tuple[User, _Profile]:
    """A user with the given profile (client or builder), or NotFound pointing at the command that adds one:
    found by the one lookup by e-mail (plain_reads.person)."""
    user_id, profile_id = person(Database.of_session(session), email, role, "u.id, p.id")
    return session.get_one(User, user_id), session.get_one(profile, profile_id)


def get_client(session: Session, email: str) -> tuple[User, ClientProfile]:
    """A user with a client profile, or NotFound."""
    return _get_profiled(session, email, ClientProfile, "client")


def get_builder(session: Session, email: str) -> tuple[User, BuilderProfile]:
    """A user with a builder profile, or NotFound."""
    return _get_profiled(session, email, BuilderProfile, "builder")


def ensure_client(
    session: Session, email: str, *, name: str | None = None, company: str | None = None, industry: str | None = None
) -> tuple[User, ClientProfile, str | None]:
    """The client for `email`, creating the user and/or client profile if needed; then says what it created:
    "account" (the user, and the client profile), "client profile" (of an existing user: a builder), or None."""
    normalised = normalise_email(email, field="client")
    user = find_user(session, normalised)
    created = "account" if user is None else None
    if user is None:
        user = User(email=normalised, name=name)
        session.add(user)
        session.flush()
    elif name and not user.name:
        user.name = name
    profile = session.scalars(select(ClientProfile).where(ClientProfile.user_id == user.id)).one_or_none()
    if profile is None:
        profile = ClientProfile(user_id=user.id, company=company, industry=industry)
        session.add(profile)
        session.flush()
        created = created or "client profile"
    if created:
        record_audit(session, "client", normalised, {"name": name, "company": company, "industry": industry})
    return user, profile, created
