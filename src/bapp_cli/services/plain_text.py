"""The one rule for text bapp stores, whichever door it comes through: no control characters.

Text may hold tabs and line breaks; no other C0 control, DEL, C1 control or lone surrogate. `import` refuses
them row by row (services.transfer.formats), so the commands that take a name, title, description, note or
reason refuse them too — else a value typed at the command line would be stored, and the backup that
`export all` writes of it would not restore (`import all` refuses the row).
"""

from __future__ import annotations

import re

from bapp_cli.errors import InvalidInput

# PostgreSQL refuses NUL in text — a file that SQLite took would then not restore there — no database stores
# a lone surrogate, and the rest only arrive to garble a terminal or a spreadsheet.
CONTROL_CHARACTER = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff]")
ALLOWED = "text may hold tabs and line breaks, no other control characters"


def control_message(character: str) -> str:
    """What is wrong with text holding `character`, in the same words at every door."""
    return f"holds the control character U+{ord(character):04X}; {ALLOWED}"


def without_controls(value: str, field: str) -> str:
    """`value` unchanged, or InvalidInput (exit 6) naming `field` and the first control character in it."""
    match = CONTROL_CHARACTER.search(value)
    if match is not None:
        raise InvalidInput(f"{field}: {control_message(match.group())}", code="control_character")
    return value
