"""Listing tables draw exactly what Rich's own Table draws: bapp measures their columns from the cells' text
(cli/terminal.py `listing_table`) instead of Rich's cell-by-cell Measurement, for speed only."""

from __future__ import annotations

import io
from typing import Any

import pytest
from rich import box
from rich.measure import Measurement
from rich.table import Table
from rich.text import Text

from bapp_cli.cli.table_width import ListingTable
from bapp_cli.cli.terminal import listing_table, make_console

HEADERS = ("reference", "client", "status", "notes", "amount")
ROWS: list[tuple[Any, ...]] = [
    ("BK-1", "ada@example.com", Text("confirmed", style="green"), "short", "10.00"),
    ("BK-2", "李小龍@例え.jp", Text("cancelled", style="red"), "漢字の説明がここに長く続きます", "1,234.50"),
    ("BK-3", "esc\x1b[31m\x1b[0m, the longest@x.example", Text("pend\x07ing"), "two\nlines, the second longer", ""),
    ("BK-4", "tab\there@x.example", Text(""), "a " * 40, "—"),
    ("BK-5", "🏅 emoji@x.example", Text("completed ✔", style="bold"), "[bold]markup[/bold] shown as typed", "7"),
]
FRAMES: list[dict[str, Any]] = [
    {},
    {"box": box.SIMPLE_HEAD, "caption": "a caption"},
    {"box": None, "pad_edge": False, "show_edge": False, "collapse_padding": True},
    {"padding": (0, 2), "show_lines": True, "caption": "a caption"},
]


class RichMeasuredTable(ListingTable):
    """A listing table measured as Rich measures a table, and fitted to the terminal by widths measured as they
    were before: by Rich's Measurement of every cell, as if the terminal had no edge."""

    _measure_column = Table._measure_column

    console = make_console(io.StringIO(), no_color=False, width=80)

    def natural_width(self, column: Any) -> int:
        unbounded = self.console.options.update(max_width=1_000_000)
        cells = (
            self.console.render_str(cell) if isinstance(cell, str) else cell for cell in (column.header, *column.cells)
        )
        return max(Measurement.get(self.console, unbounded, cell).maximum for cell in cells)


def drawn(table: Any, width: int, *, fit: bool) -> str:
    out = io.StringIO()
    console = make_console(out, no_color=False, width=width)
    console._force_terminal = True  # colours and styles drawn as on a terminal
    if fit:
        table.fit_to_terminal(console, keys=("reference", "client", "status"), drop_order=("amount",))
    console.print(table)
    return out.getvalue()


def fill(table: Any) -> Any:
    for header in HEADERS:
        table.add_column(header, justify="right" if header == "amount" else "left")
    for row in ROWS:
        table.add_row(*(cell.copy() if isinstance(cell, Text) else cell for cell in row))
    return table


@pytest.mark.parametrize("frame", FRAMES)
@pytest.mark.parametrize("width", [200, 100, 60, 30, 8])
@pytest.mark.parametrize("fit", [False, True])
def test_a_listing_table_draws_what_rich_draws(frame: dict[str, Any], width: int, fit: bool) -> None:
    ours = listing_table(None, (), **frame)
    rich_own = RichMeasuredTable(header_style="bold", **frame)
    assert drawn(fill(ours), width, fit=fit) == drawn(fill(rich_own), width, fit=fit)
