"""Session types (what can be booked): lookup, the bookable rule, and the session record."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from decimal import Decimal, InvalidOperation
from typing import Any

from sqlalchemy import delete, insert, select
from sqlalchemy.orm import Session

from bapp_cli.db.dbapi import Database
from bapp_cli.db.models import SessionType, SessionTypePathway
from bapp_cli.errors import InvalidInput
from bapp_cli.services.plain_reads import SESSION_COLUMNS as SESSION_COLUMNS  # the record, defined once
from bapp_cli.services.plain_reads import list_session_types, session_type_id
from bapp_cli.services.plain_reads import parse_category as parse_category  # light, for `sessions list --category`


def not_bookable_reason(session_type: SessionType) -> str | None:
    """Why a loaded session type cannot be booked, or None when it can (plain_reads.BOOKABLE in SQL)."""
    if not session_type.enabled:
        return "it is disabled locally"
    if session_type.remote_deleted_at is not None:
        return "it was deleted in Calendly"
    if not session_type.present_in_last_sync:
        return "it was missing from the last Calendly sync"
    if session_type.calendly_uri is not None and not session_type.remote_active:
        return "it is inactive in Calendly"
    return None


def is_bookable(session_type: SessionType) -> bool:
    return not_bookable_reason(session_type) is None


def get_session_type(session: Session, identifier: str) -> SessionType:
    """A session type by id, Calendly URI or slug (slugs are unique)."""
    found = session.get(SessionType, session_type_id(Database.of_session(session), identifier))
    assert found is not None  # just read in this transaction
    return found


def session_records(session: Session, ids: Iterable[int] | None = None) -> list[dict[str, Any]]:
    """Session records (SESSION_COLUMNS) of every type, or of those of `ids`, in the order clients see them:
    `sessions list`'s plain read (plain_reads.list_session_types) on the session's own transaction."""
    return list_session_types(Database.of_session(session), include_all=True, ids=ids)


def link_pathways(session: Session, session_type_id: int, pathway_ids: Sequence[int]) -> None:
    """Make `pathway_ids` exactly the pathways the session type is linked to."""
    session.execute(delete(SessionTypePathway).where(SessionTypePathway.session_type_id == session_type_id))
    if pathway_ids:
        session.execute(
            insert(SessionTypePathway),
            [{"session_type_id": session_type_id, "pathway_id": pathway_id} for pathway_id in pathway_ids],
        )


# -- curated-field values shared by sync classification and the admin commands --------------------

MAX_PRICE = Decimal("99999999.99")  # Numeric(10, 2)
CURRENCY_PATTERN = re.compile(r"^[A-Za-z]{3}$")


def default_requires_auth(category: str) -> bool:
    """Free sessions need no account; pathway and specialized ones do, unless an admin says otherwise."""
    return category != "free"


def parse_price(value: str | int | float | Decimal, *, field: str = "price") -> Decimal:
    """A non-negative amount with at most two decimals (money is never rounded silently)."""
    try:
        amount = Decimal(str(value).strip())
    except InvalidOperation:
        raise InvalidInput(f"{field}: {value!r} is not an amount", code="invalid_price") from None
    if not amount.is_finite() or amount < 0 or amount > MAX_PRICE:
        raise InvalidInput(f"{field}: {value!r} must be between 0.00 and {MAX_PRICE}", code="invalid_price")
    if amount != amount.quantize(Decimal("0.01")):
        raise InvalidInput(f"{field}: {value!r} has more than two decimal places", code="invalid_price")
    return amount.quantize(Decimal("0.01"))


def parse_currency(value: str, *, field: str = "currency") -> str:
    """An ISO 4217-shaped code, stored upper case."""
    if not CURRENCY_PATTERN.match(value.strip()):
        raise InvalidInput(f"{field}: {value!r} is not a three-letter currency code", code="invalid_currency")
    return value.strip().upper()


# -- slugs ------------------------------------------------------------------------------------------

MAX_SLUG_LENGTH = 200  # session_types.slug is String(200)
MAX_TITLE_LENGTH = 300
# Calendly allows 1..720 minutes; a local session may run a full day.
MAX_DURATION_MINUTES = 1440
_NUMBERED = re.compile(r"-(\d+)$")


def check_title(value: str) -> str:
    title = value.strip()
    if not title or len(title) > MAX_TITLE_LENGTH:
        raise InvalidInput(f"title: must be 1 to {MAX_TITLE_LENGTH} characters", code="invalid_title")
    return title


def slugify(title: str) -> str:
    """The slug a title gives a session type that is not given one (empty when the title has no letters)."""
    return re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-")[:MAX_SLUG_LENGTH].strip("-")


def numbered_slug(base: str, number: int) -> str:
    """`base-N`, shortened so that it still fits the column."""
    suffix = f"-{number}"
    return base[: MAX_SLUG_LENGTH - len(suffix)] + suffix


class SlugBook:
    """The slugs session types hold, so that a new or renamed type gets one no other type has.

    Slugs are unique (a local `play-lab` and a synced `play-lab` made `sessions show play-lab`
    ambiguous). A slug that is taken is given the first free `slug-2`, `slug-3`, … — the same rule the
    0007 migration used for old clashes. A slug held by any type at the start, or handed out since, is
    never handed out again in the same transaction, so the bulk writes cannot collide whatever order
    they run in.
    """

    def __init__(self, held: dict[str, int | None]) -> None:
        self._held = held

    @classmethod
    def load(cls, session: Session) -> SlugBook:
        rows = session.execute(select(SessionType.slug, SessionType.id).where(SessionType.slug.is_not(None)))
        return cls({slug: type_id for slug, type_id in rows if slug is not None})

    def is_free(self, slug: str, *, for_type: int | None = None) -> bool:
        return slug not in self._held or (for_type is not None and self._held[slug] == for_type)

    def claim(self, wanted: str | None, *, current: str | None = None, holder: int | None = None) -> str | None:
        """The slug a type (``holder``, None for a new one) should carry when Calendly calls it ``wanted``."""
        if wanted is None:
            return None
        if current == wanted:
            return current
        if current is not None and self._derived_from(current, wanted) and not self.is_free(wanted, for_type=holder):
            return current  # already renamed away from the clash: keep it rather than renumber every run
        number = 1
        candidate = wanted
        while not self.is_free(candidate, for_type=holder):
            number += 1
            candidate = numbered_slug(wanted, number)
        self._held[candidate] = holder
        return candidate

    @staticmethod
    def _derived_from(current: str, wanted: str) -> bool:
        match = _NUMBERED.search(current)
        return match is not None and numbered_slug(wanted, int(match.group(1))) == current
