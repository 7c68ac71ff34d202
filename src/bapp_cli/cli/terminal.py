"""The one place where data meets the terminal.

Names, answers, error texts and file paths come from people (the public Calendly booking form, CSV
files, the command line). Printed as they are, `[bold]…[/]` or `[link=…]` would be taken as Rich
markup (styling, a clickable OSC-8 link) and an ESC byte would drive the terminal itself. So:

- every console bapp draws on is a `SafeConsole`: markup is off, so every string is shown literally,
  and every string or `Text` it renders has its control characters made visible first; styling is
  given as `Text`/`style=` objects by the code, never parsed out of strings;
- every message for stderr (errors, hints, warnings, progress) goes through `visible()`.

A control character becomes one visible character of the same length (ESC → `␛`, so `ESC[31m` shows as
`␛[31m`), which keeps the style spans of a `Text` in place. Newline and tab are kept: they lay out
multi-line cells and messages. C1 controls (8-bit CSI and friends) and the bidirectional overrides that
can reorder what a line appears to say become `�`.

Import-light: Rich is imported only when a console is built.
"""

from __future__ import annotations

import functools
import itertools
import os
import re
from collections.abc import Container, Iterable, Sequence
from typing import IO, Any

_C0 = {code: 0x2400 + code for code in range(0x20) if chr(code) not in "\t\n"}  # ␀ … ␟ (control pictures)
_C1_AND_BIDI = [*range(0x80, 0xA0), *range(0x202A, 0x202F), *range(0x2066, 0x206A)]
# DEL → ␡; C1 controls and bidirectional overrides → the replacement character
_STAND_INS: dict[int, int | str] = {**_C0, 0x7F: 0x2421, **dict.fromkeys(_C1_AND_BIDI, "\N{REPLACEMENT CHARACTER}")}
_VISIBLE = str.maketrans(_STAND_INS)
_UNSAFE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
# In JSON the same characters are written as \\u escapes: the document keeps its exact meaning (C0 controls
# are escaped by the encoder already).
_JSON_UNSAFE = re.compile("[\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def visible(text: str) -> str:
    """`text` with every control character except newline and tab replaced by a visible stand-in."""
    if _UNSAFE.search(text) is None:  # the common case costs one C-level scan
        return text
    return text.translate(_VISIBLE)


def json_for_terminal(document: str) -> str:
    """A JSON text with the characters a terminal would act on written as `\\u` escapes (same JSON value)."""
    return _JSON_UNSAFE.sub(lambda match: f"\\u{ord(match.group()):04x}", document)


def _plain_digits(value: str) -> bool:
    # str.isdigit also accepts `²` and other digits int() refuses or reads differently
    return value.isascii() and value.isdigit()


def forget_unusable_terminal_size() -> None:
    """Rich reads COLUMNS and LINES wherever it draws and int()s anything str.isdigit accepts, so
    COLUMNS=² crashed every table (R9): a value that is not plain ASCII digits is treated as unset. So is
    zero, the size "unknown" (a terminal that reports none): at width 0 every table and help drew nothing, exit 0."""
    for name in ("COLUMNS", "LINES"):
        value = os.environ.get(name)
        if value is not None and not (_plain_digits(value) and int(value)):
            del os.environ[name]


def columns_from_environment() -> int | None:
    """COLUMNS when it is a usable width for output that is not a terminal; anything else (text,
    negative, too narrow for a table, absurd) means "not set" (R9)."""
    raw = os.environ.get("COLUMNS", "").strip()
    width = int(raw) if _plain_digits(raw) else 0
    return width if 20 <= width <= 10_000 else None


def make_console(file: IO[str], *, no_color: bool, width: int | None) -> Any:
    """A Rich console for data: markup off, control characters made visible, no highlighting."""
    return _safe_console_class()(
        file=file,
        color_system=None if no_color else "auto",
        highlight=False,
        markup=False,
        emoji=False,
        soft_wrap=False,
        width=width,
    )


def styled(text: str, style: str | None) -> Any:
    """`text` in `style` (bapp's own, or one `coloured` made)."""
    from rich.text import Text

    return Text(text, style=style or "")


def coloured(colour: str | None, style: str = "") -> str:
    """`style` in a stored colour (a pathway's `#RRGGBB`), or `style` alone when the colour is none: the column
    holds what raw SQL or another program wrote, and Rich would obey a style there (`link https://…` a hyperlink,
    `blink`), not show it."""
    from rich.color import Color, ColorParseError

    try:
        Color.parse(colour or "")
    except ColorParseError:
        return style
    return f"{style} {colour}".lstrip()


def detail_table(title: str | None, rows: Iterable[tuple[str, Any]], **frame: Any) -> Any:
    """One record as a two-column table, the names bold: what every `show` command draws first. A value wider
    than the terminal is folded, never cut: an e-mail or a link is what it is copied for."""
    from rich.table import Table

    table = Table(title=title, show_header=False, box=None, padding=(0, 2), **frame)
    table.add_column(style="bold")
    table.add_column(overflow="fold")
    for name, value in rows:
        table.add_row(name, value)
    return table


def listing_table(title: str | None, headers: Iterable[str], *, right: Container[str] = (), **frame: Any) -> Any:
    """A table with one bold-headed column per header (those in `right` right-aligned); `frame`: Rich's options."""
    from bapp_cli.cli.table_width import ListingTable

    table = ListingTable(title=title, header_style="bold", **frame)
    for header in headers:
        table.add_column(header, justify="right" if header in right else "left")
    return table


def print_listing(console: Any, grid: Any, *, empty: str, keys: Sequence[str], drop_order: Sequence[str] = ()) -> None:
    """`grid` fitted to the terminal (cli.table_width: the `keys` columns whole, those of `drop_order` left out
    first), and under its headers the dim `empty` line when it has no rows (`(no skills)`)."""
    grid.fit_to_terminal(console, keys=keys, drop_order=drop_order)
    print_in_parts(console, grid)
    if not grid.row_count:
        console.print(empty, style="dim")


LINES_PER_PRINT = 2000


def print_in_parts(console: Any, renderable: Any) -> None:
    """What console.print(renderable) writes, written LINES_PER_PRINT lines at a time: print holds every segment of
    a drawing, then its whole text, until the last line is drawn (~110 MB for 100,000 bookings)."""
    from rich.segment import Segment, Segments

    lines = Segment.split_and_crop_lines(console.render(renderable), console.width, pad=False)  # cropped as print crops
    while part := list(itertools.islice(lines, LINES_PER_PRINT)):
        console.print(Segments(itertools.chain.from_iterable(part)), crop=False)


@functools.cache
def _safe_console_class() -> type[Any]:
    import rich.text
    from rich.console import Console

    # Text(), Text.append and Text.plain drop BEL, BS, VT, FF and CR as they take a string (Rich's
    # strip_control_codes), before any console sees them: a name or description holding one lost it unseen in
    # every cell and tree label bapp builds as a Text. They are made visible there instead, like every control.
    rich.text.strip_control_codes = visible  # type: ignore[attr-defined,assignment]

    class SafeConsole(Console):
        """Every string and Text passes `visible()` on its way to the screen (see the module docstring)."""

        def render_str(self, text: str, **kwargs: Any) -> rich.text.Text:
            return super().render_str(visible(text), **{**kwargs, "markup": False, "emoji": False})

        def render(self, renderable: Any, options: Any = None) -> Any:
            if isinstance(renderable, rich.text.Text) and _UNSAFE.search(renderable.plain) is not None:
                renderable = renderable.copy()
                renderable.plain = renderable.plain.translate(_VISIBLE)  # same length: spans stay in place
            return super().render(renderable, options)

    return SafeConsole
