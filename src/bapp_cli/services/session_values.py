"""A session type's values that are checked or chosen without the database: price, currency, default
access, and unique slugs.

Kept apart from services.session_types (re-exported there) so that a Calendly sync, which runs on plain
DB-API connections (services.sync), checks its rules and hands out slugs without importing SQLAlchemy.
"""

from __future__ import annotations

import re
import unicodedata
from decimal import Decimal
from typing import Any

from bapp_cli.db.domains import MAX_SESSION_SLUG_LENGTH
from bapp_cli.errors import InvalidInput, quoted

MAX_PRICE = Decimal("99999999.99")  # Numeric(10, 2)
CURRENCY_PATTERN = re.compile(r"^[A-Za-z]{3}$")
_AMOUNT = re.compile(r"-?[0-9]+(\.[0-9]{1,2})?")


def offered_minutes(duration_minutes: int, options: Any) -> list[int]:
    """The durations a session may be booked for: its own and each whole positive number of its stored options.
    Options of another shape (raw SQL's or another program's JSON) add nothing rather than failing (R9)."""
    offered = options if isinstance(options, list) else []
    return sorted({duration_minutes, *(option for option in offered if type(option) is int and option > 0)})


def default_requires_auth(category: str) -> bool:
    """Free sessions need no account; pathway and specialized ones do, unless an admin says otherwise."""
    return category != "free"


def read_amount(value: str | int | float | Decimal) -> Decimal:
    """Money as every door reads it (a flag, a config rule, an import cell, Calendly's charge): ASCII digits and at
    most two decimals after a point, 0.00 to MAX_PRICE. A ValueError says what is wrong (an import's row
    validation takes it as the cell's error); a minus sign is read to refuse it as out of range, except on
    a zero: `-0.00` is what a script's `f"{-0.0:.2f}"` writes for nothing owed."""
    # Decimal() also reads `1_000`, `١٠٠`, `1e2` and `+5`: a script's typo is no price; nor is money rounded silently
    if (written := _AMOUNT.fullmatch(str(value).strip())) is None:
        raise ValueError(f"{quoted(value)} is not an amount (digits, and at most two decimals after a point)")
    if (amount := Decimal(written[0])) < 0 or amount > MAX_PRICE:
        raise ValueError(f"{quoted(value)} must be between 0.00 and {MAX_PRICE}")
    return abs(amount).quantize(Decimal("0.01"))


def parse_price(value: str | int | float | Decimal, *, field: str = "price") -> Decimal:
    """`read_amount`, refused as invalid input (exit 6) naming the field."""
    try:
        return read_amount(value)
    except ValueError as exc:
        raise InvalidInput(f"{field}: {exc}", code="invalid_price") from None


def parse_currency(value: str, *, field: str = "currency") -> str:
    """An ISO 4217-shaped code, stored upper case."""
    if not CURRENCY_PATTERN.match(value.strip()):
        raise InvalidInput(f"{field}: {quoted(value)} is not a three-letter currency code", code="invalid_currency")
    return value.strip().upper()


_NUMBERED = re.compile(r"-(\d+)$")
_NOT_IN_SLUGS = re.compile(r"[^a-z0-9]+")  # compiled once: a first sync makes a slug of every listed type


def session_slug(text: str) -> str | None:
    """The slug `text` gives a session type under the one rule (check_session_slug): a title's, or a slug
    from Calendly or from a backup made before the rule, which are taken in rather than refused. None
    when nothing is left (a title without letters or digits). Digits alone would read as an id: `2024`
    gives `session-2024`."""
    lowered = text.lower()
    # most are slugs already (Calendly's): then the regex, which tries a match at every position, would change nothing
    as_is = lowered.isascii() and "--" not in lowered and lowered.replace("-", "").isalnum()
    slug = (lowered if as_is else _NOT_IN_SLUGS.sub("-", lowered)).strip("-")[:MAX_SESSION_SLUG_LENGTH].strip("-")
    return f"session-{slug}"[:MAX_SESSION_SLUG_LENGTH] if slug.isdigit() else slug or None


def title_slug(title: str) -> str | None:
    """The slug a new session type's title gives (session_slug): a letter keeps its base letter (`Ünïcode` gives
    `unicode`, `Straße` `strasse`). Only titles: a slug Calendly or an old backup stored goes through
    session_slug as it did when stored, so that a re-sync or a restore renames no type."""
    decomposed = unicodedata.normalize("NFKD", title.casefold())
    return session_slug("".join(letter for letter in decomposed if not unicodedata.combining(letter)))


def numbered_slug(base: str, number: int) -> str:
    """`base-N`, shortened so that it still fits the column (and never with `--` where the cut met a hyphen)."""
    suffix = f"-{number}"
    return base[: MAX_SESSION_SLUG_LENGTH - len(suffix)].rstrip("-") + suffix


class SlugBook:
    """The slugs session types hold, so that a new or renamed type gets one no other type has.

    Slugs are unique (a local `play-lab` and a synced `play-lab` made `sessions show play-lab`
    ambiguous). A slug that is taken is given the first free `slug-2`, `slug-3`, … — the same rule the
    0007 migration used for old clashes. A slug held by any type at the start, or handed out since, is
    never handed out again in the same transaction, so the bulk writes cannot collide whatever order
    they run in — but a slug its type gives up (renamed, or listed without one), which the writer clears first.
    """

    def __init__(self, held: dict[str, int | None]) -> None:
        self._held = held

    def is_free(self, slug: str, *, for_type: int | None = None) -> bool:
        return slug not in self._held or (for_type is not None and self._held[slug] == for_type)

    def claim(self, wanted: str | None, *, current: str | None = None, holder: int | None = None) -> str | None:
        """The slug a type (``holder``, None for a new one) should carry when Calendly calls it ``wanted``; a
        known type's ``current`` slug is free again once it gives it up, renamed away from it or listed without
        one (sync._write clears a changed slug first, whatever order the writes run in)."""
        if current is not None and current != wanted:  # this type's own: free, unless it keeps it below
            self._held.pop(current, None)
        if wanted is None or current == wanted:
            return wanted
        numbered = _NUMBERED.search(current or "")
        derived = current if numbered and numbered_slug(wanted, int(numbered.group(1))) == current else None
        # already renamed away from the clash: keep it rather than renumber every run
        candidate, number = derived if derived and not self.is_free(wanted, for_type=holder) else wanted, 1
        while not self.is_free(candidate, for_type=holder):
            number += 1
            candidate = numbered_slug(wanted, number)
        self._held[candidate] = holder
        return candidate
