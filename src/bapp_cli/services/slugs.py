"""Session-type slugs: unique, so that a new or renamed type is given one no other type has.

Kept apart from services.session_types so that a Calendly sync, which runs on a plain DB-API connection
(services.sync), hands out slugs without importing SQLAlchemy.
"""

from __future__ import annotations

import re

MAX_SLUG_LENGTH = 200  # session_types.slug is String(200)
_NUMBERED = re.compile(r"-(\d+)$")


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
