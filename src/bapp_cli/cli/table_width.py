"""Fitting a Rich table to a narrow terminal: key columns whole, the others wrapped or left out.

Rich's own answer to a table wider than the terminal is to cut every column, so at 60 columns `status`
read `co…` for confirmed, completed and cancelled alike, and references, amounts and e-mails lost
their ends (issue 15 #21). Like `gh`, bapp keeps the columns a row is identified and judged by whole,
lets free text wrap, and leaves out the least important columns — naming them under the table — until
the rest fits. Off a terminal nothing changes: tables there are as wide as their rows.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

WRAP_MIN = 10  # the narrowest a wrapping column may become before it is left out instead


def _natural_width(console: Any, column: Any) -> int:
    from rich.measure import Measurement

    # measured as if the terminal had no edge: Measurement.get caps a width at the console's, so a key wider than
    # the terminal (an 82-character e-mail at 60 columns) seemed to fit exactly, was held on one line and cut '…'
    unbounded, widest = console.options.update(max_width=1_000_000), 0
    for cell in (column.header, *column.cells):
        renderable = console.render_str(cell) if isinstance(cell, str) else cell
        widest = max(widest, Measurement.get(console, unbounded, renderable).maximum)
    return widest


def fit_to_terminal(grid: Any, console: Any, *, keys: Sequence[str], drop_order: Sequence[str]) -> None:
    """Make `grid` fit `console.width`, naming the columns left out in its caption.

    `keys` are headers never cut, `drop_order` the headers to leave out first (least important first);
    when those are not enough, the other non-key columns go too, from the right.
    """
    if grid.__rich_measure__(console, console.options).maximum <= console.width:
        return
    # No borders or outer padding when space is short: two spaces between columns, as gh prints.
    grid.box = None
    grid.pad_edge = False
    grid.show_edge = False
    widths = {column.header: _natural_width(console, column) for column in grid.columns}

    def needed(gap: int = 2) -> int:
        present = [column.header for column in grid.columns]
        cells = sum(widths[name] if name in keys else min(widths[name], WRAP_MIN) for name in present)
        return cells + gap * (len(present) - 1)

    # after the named ones, any other column that is not a key, right to left
    others = [column.header for column in reversed(grid.columns) if column.header not in (*keys, *drop_order)]
    dropped: list[str] = []
    for name in (*drop_order, *others):
        if needed(gap=1) <= console.width:  # one space between columns (below) rather than one column fewer
            break
        if name in (column.header for column in grid.columns):
            grid.columns = [column for column in grid.columns if column.header != name]
            dropped.append(name)
    for index, column in enumerate(grid.columns):
        column._index = index  # Rich places padding by this position; removing columns moved them
    if needed() > console.width and needed(gap=1) <= console.width:
        # one space between columns rather than cutting a key column: 60 columns hold a reference, a
        # 27-character e-mail, a status and an amount only this way
        grid.collapse_padding = True
    keys_fit = needed(gap=1 if grid.collapse_padding else 2) <= console.width
    for column in grid.columns:
        if column.header in keys and keys_fit:
            column.no_wrap = True
            column.min_width = widths[column.header]
        else:
            # folded, never truncated: every character stays on screen, over several lines if need be
            column.overflow = "fold"
    if dropped:
        note = f"not shown at this width: {', '.join(dropped)} (widen the terminal or use --format)"
        grid.caption = f"{grid.caption}\n{note}" if grid.caption else note
