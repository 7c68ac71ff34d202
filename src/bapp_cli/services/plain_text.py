"""The one rule for text bapp stores, whichever door it comes through: no control characters.

Text may hold tabs and line breaks; no other C0 control, DEL, C1 control or lone surrogate. `import` refuses
them row by row (services.transfer.formats), so the commands that take a name, title, description, note or
reason refuse them too — else a value typed at the command line would be stored, and the backup that
`export all` writes of it would not restore (`import all` refuses the row). Text from Calendly is not
refused but cleaned as it is parsed (:func:`strip_controls`), and the command warns once naming the items.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

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


# -- names: one spelling of each -------------------------------------------------------------------
# A name or title (a person's, a company's or industry, a builder's, a pathway's or tier's, a skill's or its
# domain, a session type's) is what a `--search` looks in and an export shows; typed with combining accents
# (NFD: `e` + U+0301, as macOS file names and some keyboards give it) it reads as the `é` the web and Calendly
# send (NFC). So every door stores it in NFC, read so before its length limit counts the characters: each
# field's rule (pathway_admin.check_name, people.clean_name, session_types.check_title, the skill domain's),
# shared by the commands and the imports, the Calendly doors (sync titles, invitee names) and the badge issuer's
# (config.as_meant_here); a `--search` term is read so too (cli.options), and migration 0019 rewrote what an
# earlier bapp stored. Lossless for what the text means. Slugs are ASCII, an e-mail is keyed in NFC already
# (services.emails); keys, descriptions, notes, reasons and answers are kept as given (answers compare in NFC:
# pathways.answer_key).
def nfc(value: Any) -> Any:
    """Text `value` in NFC (a name as stored); anything else, None say, as it is."""
    return unicodedata.normalize("NFC", value) if isinstance(value, str) else value


# What joins the character before it into one a reader sees, beside the combining marks (Unicode category M): a
# zero-width joiner (U+200D, as in 👩‍💻) with what follows it, a skin tone (U+1F3FB–U+1F3FF), and a tag (U+E0020–
# U+E007F: 🏴 and the tags gbeng are England's flag). Not a flag of two regional indicators: cut between them, the
# first shows as its letter
_JOINS = re.compile("\u200d|.[\u200d\U0001f3fb-\U0001f3ff\U000e0020-\U000e007f]", re.DOTALL)


def cut_whole(text: str, limit: int) -> str:
    """`text` in at most `limit` characters (code points, as a column counts them), cut before a character a reader
    sees (a letter and its marks, a joined emoji) that the limit would split: `q̃` cut after its `q` read as a plain
    q, an emoji sequence cut after its joiner as a broken one. An invitee's name from Calendly is cut so."""
    end = min(limit, len(text))
    while 0 < end < len(text) and (unicodedata.category(text[end])[0] == "M" or _JOINS.match(text, end - 1)):
        end -= 1
    return text[:end]


# -- text from Calendly: cleaned at the door, not refused --------------------------------------------
# Calendly's text (names, descriptions, answers, reasons) is not bapp's to refuse, so the Calendly doors (API
# answers, saved listings, webhook bodies) remove these characters instead, and the commands say so.
# In JSON text such a character is a \u escape (C0 but tab/LF/CR, DEL, C1, half a surrogate pair) or the raw
# UTF-8 of DEL or a C1 control (7F, C2 80–9F); raw C0 is no valid JSON. Three memchr scans clear a plain body
# (a 100-type page in microseconds: P2), and only a body they cannot clear is searched, then parsed and cleaned.
_JSON_CONTROL = re.compile(
    rb"\\u(?:00(?:0[0-8bBcCeEfF]|1[0-9a-fA-F]|7[fF]|[89][0-9a-fA-F])|[dD][89a-fA-F][0-9a-fA-F]{2})|\x7f|\xc2[\x80-\x9f]"
)


def json_with_controls_escaped(text: str) -> str:
    """JSON text `text` with raw DEL and C1 characters written as their \\u escapes: the same document, and one
    a backup can hold (the webhook inbox keeps bodies as received)."""
    return re.sub("[\x7f-\x9f]", lambda found: f"\\u{ord(found.group()):04x}", text)


def headers_without_controls(headers: Mapping[str, str]) -> dict[str, str]:
    """A delivery's headers as the webhook inbox keeps them: the sender's unsigned text, its control characters
    removed, as Calendly's text is (`import all` refuses a row holding one)."""
    return {name: CONTROL_CHARACTER.sub("", value) for name, value in headers.items()}


def json_may_hold_controls(body: bytes) -> bool:
    """Whether JSON text `body` may hold a control character (false alarms cost only a closer look)."""
    return (b"\\" in body or b"\x7f" in body or b"\xc2" in body) and _JSON_CONTROL.search(body) is not None


def strip_controls(document: Any, on_cleaned: Callable[[list[str]], None] | None = None) -> list[str]:
    """Remove control characters from every text value of parsed JSON `document`, in place; returns the
    items whose text changed, each named by its ``uri`` (and ``name``): the nearest object around the text
    that has one; `on_cleaned` is told them too, when there are any. Iterative, as a document may be nested
    as deep as the parser allows."""
    changed: dict[int, Any] = {}
    stack: list[tuple[Any, Any]] = [(document, None)]
    while stack:
        node, owner = stack.pop()
        if isinstance(node, dict):
            owner = node if isinstance(node.get("uri"), str) else owner
            places: Iterable[tuple[Any, Any]] = node.items()
        elif isinstance(node, list):
            places = enumerate(node)
        else:
            continue
        for place, value in places:
            if not isinstance(value, str):
                stack.append((value, owner))
            elif CONTROL_CHARACTER.search(value):
                node[place] = CONTROL_CHARACTER.sub("", value)
                changed[id(owner)] = owner
    named = [_named(item) for item in changed.values()]
    if named and on_cleaned is not None:
        on_cleaned(named)
    return named


def _named(item: Any) -> str:
    if item is None:
        return "(text outside any item)"
    name = item.get("name")
    return f'{item["uri"]} "{name}"' if isinstance(name, str) and name else item["uri"]


def cleaned_message(items: Sequence[str]) -> str:
    """The one warning of a run that cleaned Calendly text, naming (the first few of) `items`."""
    items = list(dict.fromkeys(items))  # a pull reads an event once per listing that holds it
    shown = ", ".join(items[:3]) + (f" and {len(items) - 3} more" if len(items) > 3 else "")
    return f"removed control characters from the text Calendly sent ({ALLOWED}) in {len(items)} item(s): {shown}"
