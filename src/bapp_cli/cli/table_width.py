"""Fitting a Rich table to a narrow terminal: key columns whole, the others wrapped or left out.

Rich's own answer to a table wider than the terminal is to cut every column, so at 60 columns `status`
read `co…` for confirmed, completed and cancelled alike, and references, amounts and e-mails lost
their ends (issue 15 #21). Like `gh`, bapp keeps the columns a row is identified and judged by whole,
lets free text wrap, and leaves out the least important columns — naming them under the table — until
the rest fits. Off a terminal nothing changes: tables there are as wide as their rows.

Every listing is a `ListingTable`, which measures its columns from their text (see the class).
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from rich.cells import cell_len
from rich.measure import Measurement
from rich.padding import Padding
from rich.segment import Segment
from rich.table import Table
from rich.text import Text

from bapp_cli.cli.terminal import visible

WRAP_MIN = 10  # the narrowest a wrapping column may become before it is left out instead


class ListingTable(Table):
    """A Rich table whose columns are measured from their cells' text (every cell bapp draws is a string or a
    `Text`), as Rich measures a `Text`, rather than by Rich's Measurement of each cell, twice per drawing
    (fitting, then printing): that was half the CPU of a 10,000-row listing drawn on a terminal. No listing
    fixes a column's width or collapses its padding at a padded edge (where Rich pads cells otherwise)."""

    def natural_width(self, column: Any) -> int:
        """The width `column`'s widest line needs (its header's included), however wide the terminal."""
        texts = (visible(cell) if isinstance(cell, str) else cell.plain for cell in (column.header, *column.cells))
        return max((cell_len(line) for text in texts for line in text.splitlines()), default=0)

    def _measure_column(self, console: Any, options: Any, column: Any) -> Measurement:
        # only the maximum: the one width Rich lays a table's columns out by; none where the layout left no room, as
        # Rich (a column's minimum width would widen it again, past the terminal's edge)
        padding = self._get_padding_width(column._index)
        least = None if column.min_width is None or options.max_width < 1 else column.min_width + padding
        return Measurement(0, self.natural_width(column) + padding).with_maximum(max(options.max_width, 0)).clamp(least)

    def _render(self, console: Any, options: Any, widths: list[int]) -> Any:
        # Rich draws every cell with console.render_lines: the drawer is a Console in all that Rich asks of it here
        return super()._render(_CellDrawer(console), options, widths)  # type: ignore[arg-type]

    def _get_cells(self, console: Any, column_index: int, column: Any) -> Any:
        # Rich lists every cell, each in its own Padding, before it draws the first row: ~250 MB for 100,000 bookings.
        # It pads a column's cells alike but for the first and last: its cells for a column of up to three stand in
        # for every row, and the drawer (`console`) puts each row's own cell in as Rich draws it, in order.
        if not any(self.padding):  # unpadded cells Rich holds as they are (every listing is padded)
            return super()._get_cells(console, column_index, column)
        count, first = len(column._cells), int(self.show_header)
        stand_ins = replace(column, _cells=[object() for _ in range(min(count, 3))])
        cells = list(super()._get_cells(console, column_index, stand_ins))
        rows = cells[first : first + min(count, 3)]
        console.cells_for.update(dict.fromkeys((id(cell.renderable) for cell in rows), iter(column._cells)))
        each_row = (rows[0 if row == 0 else -1 if row == count - 1 else 1] for row in range(count))
        return itertools.chain(cells[:first], each_row, cells[first + len(rows) :])  # the header first, any footer last

    def fit_to_terminal(self, console: Any, *, keys: Sequence[str], drop_order: Sequence[str]) -> None:
        """Make the table fit `console.width`, naming the columns left out in its caption.

        `keys` are headers never cut, `drop_order` the headers to leave out first (least important first);
        when those are not enough, the other non-key columns go too, from the right.
        """
        widths = {column.header: self.natural_width(column) for column in self.columns}
        # the table as wide as its widest lines (Rich's measure of a table caps each column at the terminal's width:
        # a lone column wider than the terminal seemed to fit, and its cells were cut '…')
        drawn = sum(widths.values()) + sum(map(self._get_padding_width, range(len(widths)))) + self._extra_width
        if drawn <= console.width:
            return
        # No borders or outer padding when space is short: two spaces between columns, as gh prints.
        self.box, self.pad_edge, self.show_edge = None, False, False
        least = {name: width if name in keys else min(width, WRAP_MIN) for name, width in widths.items()}

        def needed(gap: int = 2) -> int:
            return sum(least[column.header] for column in self.columns) + gap * (len(self.columns) - 1)

        # after the named ones, any other column that is not a key, right to left
        others = [column.header for column in reversed(self.columns) if column.header not in (*keys, *drop_order)]
        dropped: list[Any] = []  # headers: strings in every listing
        for name in (name for name in (*drop_order, *others) if name in widths):  # the headers this table has
            if needed(gap=1) <= console.width:  # one space between columns (below) rather than one column fewer
                break
            self.columns = [column for column in self.columns if column.header != name]
            dropped.append(name)
        keys_fit = needed(gap=1) <= console.width
        # one space between columns rather than cutting a key column: 60 columns hold a reference, a 27-character
        # e-mail, a status and an amount only this way
        self.collapse_padding = keys_fit and needed() > console.width
        for index, column in enumerate(self.columns):
            column._index = index  # Rich places padding by this position; removing columns moved them
            if column.header in keys and keys_fit:
                column.no_wrap = True
                column.min_width = widths[column.header]
            else:
                # folded, never truncated: every character stays on screen, over several lines if need be
                column.overflow = "fold"
        if dropped:
            note = f"not shown at this width: {', '.join(dropped)} (widen the terminal or use --format)"
            self.caption = f"{self.caption}\n{note}" if self.caption else note


PLACEHOLDER = "\ue000"  # private use: one cell wide, in no padding or frame


class _CellDrawer:
    """The console a listing's rows are drawn on (Rich's Table._render draws each cell with `render_lines`),
    remembering what Rich drew. A cell of one line that fits its column is drawn from the lines Rich drew once for
    a placeholder of the same width, padding and styles, the placeholder replaced by the cell's text: Rich lays
    such a line out by its width alone, so the bytes are Rich's. Any other cell (wrapped, styled spans, tabs,
    trailing blanks Rich strips) Rich draws once per text and layout: statuses, sessions, amounts and days repeat.
    Drawing each cell in full (padding, wrapping, cropping) was most of the CPU of a 10,000-row listing."""

    def __init__(self, console: Any) -> None:
        self.console, self.get_style = console, console.get_style
        self.drawn: dict[tuple[Any, ...], Any] = {}  # lines by text (or width) and layout
        self.cells_for: dict[int, Any] = {}  # a column's cells by the id of the cell Rich holds for each of its rows

    def __getattr__(self, name: str) -> Any:
        return getattr(self.console, name)

    def render_lines(self, cell: Any, options: Any, *, style: Any = None) -> Any:
        if (cells := self.cells_for.get(id(cell))) is not None:  # a row's stand-in (ListingTable._get_cells)
            cell.renderable = next(cells)
        text = cell.renderable if isinstance(cell, Padding) else None
        if isinstance(text, Text):
            shown, one_style = visible(text.plain), not text.spans
            look = (text.style, text.justify, text.overflow, text.no_wrap, text.end, text.tab_size, *text.spans)
        elif isinstance(text, str):
            shown, one_style, look = visible(text), not options.highlight, options.highlight
        else:
            return self.console.render_lines(cell, options, style=style)
        padding = cell.top, cell.right, cell.bottom, cell.left
        layout = (look, style, padding, options.max_width, options.justify, options.overflow, options.no_wrap)
        width = cell_len(shown)
        one_line = 0 < width <= options.max_width - cell.left - cell.right and "\n" not in shown and "\t" not in shown
        if not (one_style and one_line and not shown[-1].isspace()):
            if (shown, *layout) not in self.drawn:
                self.drawn[shown, *layout] = self.console.render_lines(cell, options, style=style)
            return self.drawn[shown, *layout]
        if (width, *layout) not in self.drawn:
            self.drawn[width, *layout] = self._template(Padding(text, padding), width, options, style)
        if self.drawn[width, *layout] is None:  # the placeholder was split: never seen, but Rich's to say
            return self.console.render_lines(cell, options, style=style)
        lines, row, index = self.drawn[width, *layout]
        part, line = lines[row][index], [*lines[row]]
        line[index] = Segment(part.text.replace(PLACEHOLDER * width, shown), part.style, part.control)
        return [*lines[:row], line, *lines[row + 1 :]]

    def _template(self, cell: Any, width: int, options: Any, style: Any) -> tuple[Any, int, int] | None:
        """Rich's lines for `cell` with a placeholder of `width` cells for its text, and the row and segment that
        hold the placeholder (None when it did not stay in one piece)."""
        placeholder = PLACEHOLDER * width
        cell.renderable = cell.renderable.blank_copy(placeholder) if isinstance(cell.renderable, Text) else placeholder
        lines = self.console.render_lines(cell, options, style=style)
        spots = [
            (row, at) for row, line in enumerate(lines) for at, part in enumerate(line) if PLACEHOLDER in part.text
        ]
        whole = len(spots) == 1 and lines[spots[0][0]][spots[0][1]].text.count(PLACEHOLDER) == width
        return (lines, *spots[0]) if whole else None
