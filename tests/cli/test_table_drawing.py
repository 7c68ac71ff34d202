"""Listing tables draw exactly what Rich's own Table draws: bapp measures their columns from the cells' text
(cli/terminal.py `listing_table`) instead of Rich's cell-by-cell Measurement, for speed only."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import textwrap
from typing import Any
from unittest import mock

import pytest
from rich import box
from rich.measure import Measurement
from rich.table import Table
from rich.text import Text

from bapp_cli.cli import terminal
from bapp_cli.cli.table_width import ListingTable
from bapp_cli.cli.terminal import _safe_console_class, listing_table, make_console, print_in_parts

HEADERS = ("reference", "client", "status", "notes", "amount")
ROWS: list[tuple[Any, ...]] = [
    ("BK-1", "ada@example.com", Text("confirmed", style="green"), Text.assemble(("██░", "green"), " 66%"), "10.00"),
    ("BK-2", "李小龍@例え.jp", Text("cancelled", style="red"), "漢字の説明がここに長く続きます", "1,234.50"),
    ("BK-3", "esc\x1b[31m\x1b[0m, longest@x.example", Text("pend\x07", justify="center"), "two\nlines, 2nd longer", ""),
    ("BK-4", "tab\there@x.example", Text(""), "a " * 40, "—"),
    ("BK-5", "🏅 emoji@x.example", Text("completed ✔", style="bold"), "[bold]markup[/bold] shown as typed", "1234.5"),
    # zero-width and combining characters, a family emoji, controls in a Text, a line separator, trailing blanks
    ("BK-6", "ze\u200bro\u0301@x.example", Text("no\x1b[2Jsho", style="red"), "a\u2028b 👨\u200d👩\u200d👧 ", " 3 "),
]
FRAMES: list[dict[str, Any]] = [
    {},
    {"box": box.SIMPLE_HEAD, "caption": "a caption"},
    {"box": None, "pad_edge": False, "show_edge": False, "collapse_padding": True},
    {"padding": (0, 2), "show_lines": True, "caption": "a caption"},
    # no padding at all (Rich then holds the cells bare), and the first and last rows padded apart
    {"padding": 0},
    {"padding": (1, 1), "box": box.ASCII2},
]


class RichMeasuredTable(ListingTable):
    """A listing table measured as Rich measures a table, and fitted to the terminal by widths measured as they
    were before: by Rich's Measurement of every cell, as if the terminal had no edge."""

    _measure_column = Table._measure_column
    _render = Table._render
    _get_cells = Table._get_cells

    console = make_console(io.StringIO(), no_color=False, width=80)

    def natural_width(self, column: Any) -> int:
        unbounded = self.console.options.update(max_width=1_000_000)
        cells = (
            self.console.render_str(cell) if isinstance(cell, str) else cell for cell in (column.header, *column.cells)
        )
        return max(Measurement.get(self.console, unbounded, cell).maximum for cell in cells)


class Writes(io.StringIO):
    count = 0

    def write(self, text: str) -> int:
        self.count += 1
        return super().write(text)


def drawn(table: Any, width: int, *, fit: bool, colour: bool = True, in_parts: bool = False) -> str:
    out = Writes()
    # colours and styles drawn as on a terminal: Rich picks its colour system as the console is made (setting
    # _force_terminal afterwards, as this did first, drew every table without a single escape)
    with mock.patch.dict(os.environ, {"FORCE_COLOR": "1", "TERM": "xterm-256color"}):
        os.environ.pop("NO_COLOR", None)
        console = make_console(out, no_color=not colour, width=width)
    if fit:
        table.fit_to_terminal(console, keys=("reference", "client", "status"), drop_order=("amount",))
    print_in_parts(console, table) if in_parts else console.print(table)
    assert (console.color_system is not None) is colour
    assert out.count > 1 or not in_parts or out.getvalue().count("\n") <= terminal.LINES_PER_PRINT
    return out.getvalue()


def fill(table: Any, times: int = 2) -> Any:
    for header in HEADERS:  # a figure at least as wide as its header, as the analytics report's counts
        table.add_column(header, justify="right" if header == "amount" else "left", min_width=6 * (header == "amount"))
    for row in ROWS * times:  # drawn more than once: then from what is remembered of the first
        table.add_row(*(cell.copy() if isinstance(cell, Text) else cell for cell in row))
    return table


@pytest.mark.parametrize("frame", FRAMES)
@pytest.mark.parametrize("width", [200, 100, 60, 30, 8, 5, 3, 2, 1])  # a terminal may be a 1-column pane
@pytest.mark.parametrize("fit", [False, True])
@pytest.mark.parametrize("colour", [True, False])
def test_a_listing_table_draws_what_rich_draws(frame: dict[str, Any], width: int, fit: bool, colour: bool) -> None:
    ours = listing_table(None, (), **frame)
    rich_own = RichMeasuredTable(header_style="bold", **frame)
    assert drawn(fill(ours), width, fit=fit, colour=colour) == drawn(fill(rich_own), width, fit=fit, colour=colour)


@pytest.mark.parametrize("rows", [[], [("a.value.as.wide.as.the.terminal.or.wider@x.example",), (Text("ok"),)]])
@pytest.mark.parametrize("width", [80, 30, 1])
def test_a_one_column_or_empty_listing_draws_what_rich_draws(rows: list[tuple[Any, ...]], width: int) -> None:
    tables = listing_table("one", ("client",)), RichMeasuredTable(title="one", header_style="bold")
    tables[1].add_column("client")
    for table in tables:
        for row in rows:
            table.add_row(*row)
    assert drawn(tables[0], width, fit=True) == drawn(tables[1], width, fit=True)


def test_rich_still_measures_a_listing_through_its_text_measure(monkeypatch: pytest.MonkeyPatch) -> None:
    """The speed rests on Rich's private Table._measure_column: were it renamed, listings would still draw right
    (the tests above) but measure cell by cell again, unnoticed."""
    measured: list[Any] = []
    monkeypatch.setattr(ListingTable, "natural_width", lambda table, column: measured.append(column) or 5)
    drawn(fill(listing_table(None, ())), 200, fit=False)
    assert len(measured) >= len(HEADERS)


def test_rich_still_draws_a_listing_s_cells_through_its_cell_drawer(monkeypatch: pytest.MonkeyPatch) -> None:
    """The speed of a long listing rests on Rich's private Table._render drawing each cell with the console's
    render_lines (cli/table_width.py `_CellDrawer`): were it renamed, or cells drawn another way, listings would
    still draw right (the tests above) but every cell in full again, unnoticed."""
    console_class, drawn_cells = _safe_console_class(), []
    render_lines = console_class.render_lines
    monkeypatch.setattr(
        console_class, "render_lines", lambda *args, **kwargs: drawn_cells.append(args) or render_lines(*args, **kwargs)
    )
    table = listing_table(None, ("reference", "status"))
    for number in range(100):
        table.add_row(f"BK-{number:04}", Text("confirmed", style="green"))
    drawn(table, 80, fit=False)
    assert 0 < len(drawn_cells) < 20  # the header and one template per column and width, not 200 cells


LONG = ("BK-7", "a.long.one" * 30 + "@x.example", Text("very long " * 30, style="red"), "", "1" * 50)


@pytest.mark.parametrize("frame", FRAMES)
@pytest.mark.parametrize("width", [200, 60, 30, 1])
@pytest.mark.parametrize("fit", [False, True])  # unfitted, a narrow terminal cuts long cells with '…'
def test_a_listing_written_in_parts_is_the_table_rich_draws_in_one_print(
    frame: dict[str, Any], width: int, fit: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """print_in_parts (cli/terminal.py) writes a long listing a few thousand lines at a time, so that no drawing is
    held whole: the bytes are those Rich's own table writes in one print, whatever row a part starts in."""
    monkeypatch.setattr(terminal, "LINES_PER_PRINT", 7)
    ours, rich_own = (
        listing_table("a title", (), **frame),
        RichMeasuredTable(title="a title", header_style="bold", **frame),
    )
    for table in (ours, rich_own):
        fill(table, times=6).add_row(*LONG)
    assert drawn(ours, width, fit=fit, in_parts=True) == drawn(rich_own, width, fit=fit)


def test_a_listing_longer_than_a_part_is_the_table_rich_draws_in_one_print() -> None:
    ours, rich_own = listing_table("a title", ()), RichMeasuredTable(title="a title", header_style="bold")
    for table in (ours, rich_own):
        fill(table, times=300).add_row(*LONG)
    assert drawn(ours, 60, fit=True, in_parts=True) == drawn(rich_own, 60, fit=True)


# the peak is read from /proc (VmHWM), which only Linux has; memory, not time: a loaded machine does not move it
@pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="reads the peak from /proc: Linux only")
def test_a_long_listing_is_drawn_without_holding_its_drawing() -> None:
    """Rich's print held every cell's Padding and segment, and the whole text, of a listing: 640 MB for 100,000
    bookings. A real process drawing 20,000 rows peaked at 73 MB so; it takes ~31 MB."""
    script = textwrap.dedent("""
        from bapp_cli.cli.terminal import listing_table, make_console, print_listing

        grid = listing_table("Bookings", ("reference", "start", "client", "status", "amount", "notes"))
        for row in range(20_000):
            grid.add_row(f"BK-{row:08}", "2029-01-01 08:00 UTC", f"c{row}@x.example", "confirmed", "0.00", "—")
        with open("/dev/null", "w") as out:
            print_listing(make_console(out, no_color=False, width=200), grid, empty="", keys=("reference",))
        # the peak of this program (getrusage's would be the test process's, had it been bigger when it forked)
        print(next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM")) // 1024)
    """)
    peak_mb = int(subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout)
    assert peak_mb < 50
