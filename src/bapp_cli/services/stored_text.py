"""The one rule for the text bapp stores: no control characters but tabs and line breaks.

It is checked where text comes in from people: each cell of an import (services.transfer.formats), and
every value a command writes through its session (`refuse_control_characters`, attached by the CLI to
the write transactions of the commands people type values into). One rule for both doors, so whatever a
command stored restores from the next backup, whose import would refuse it otherwise. What Calendly sent
(sync, pulled bookings, webhooks) is Calendly's record, stored as it is.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from bapp_cli.errors import InvalidInput

if TYPE_CHECKING:  # the import's reader uses the rule too, and `export`'s plain reads load no SQLAlchemy
    from sqlalchemy.orm import Session

# C0 controls other than tab, line feed and carriage return, DEL, C1 controls, and lone surrogates (a JSON
# `\ud800` escape). PostgreSQL refuses NUL in text — a value SQLite took would then not restore there — no
# database stores a lone surrogate, and the rest only arrive to garble a terminal or a spreadsheet.
CONTROL_CHARACTER = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff]")


CONTROL_RULE = "text may hold tabs and line breaks, no other control characters"


def control_message(character: str) -> str:
    return f"holds the control character U+{ord(character):04X}; {CONTROL_RULE}"


def control_character(value: Any, where: str | None = None) -> tuple[str | None, str] | None:
    """The first forbidden character in `value` (text, or lists and objects of it) and the field path
    where it is, or None."""
    if isinstance(value, str):
        match = CONTROL_CHARACTER.search(value)
        return (where, match.group()) if match else None
    if isinstance(value, Mapping):
        for key, item in value.items():
            path = f"{where}.{key}" if where else str(key)
            found = control_character(str(key), where) or control_character(item, path)
            if found:
                return found
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            found = control_character(item, f"{where}[{index}]" if where else f"[{index}]")
            if found:
                return found
    return None


def refuse_control_characters(session: Session, _context: Any, _instances: Iterable[Any] | None) -> None:
    """A `before_flush` listener: a new or changed value holding a control character is bad input (exit 6)
    naming its field, and the command's transaction rolls back."""
    from sqlalchemy import inspect

    for instance in (*session.new, *session.dirty):
        state = inspect(instance)
        for attribute in state.mapper.column_attrs:
            for value in state.attrs[attribute.key].history.added:
                found = control_character(value, attribute.key)
                if found is not None:
                    where, character = found
                    raise InvalidInput(f"{where}: {control_message(character)}")
