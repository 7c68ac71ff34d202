"""Fitting a Rich table to a narrow terminal: key columns whole, the others wrapped or left out.

Rich's own answer to a table wider than the terminal is to cut every column, so at 60 columns `status`
read `co…` for confirmed, completed and cancelled alike, and references, amounts and e-mails lost
their ends (issue 15 #21). Like `gh`, bapp keeps the columns a row is identified and judged by whole,
lets free text wrap, and leaves out the least important columns — naming them under the table — until
the rest fits. Off a terminal nothing changes: tables there are as wide as their rows.

Every listing is a `ListingTable`, which measures its columns from their text (see the class).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from rich.cells import cell_len
from rich.measure import Measurement
from rich.table import Table

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
