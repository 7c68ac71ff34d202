"""Listings stream (cli/output.py): every format but a table is written as rows arrive, in the same bytes
as a whole-list rendering would give."""

from __future__ import annotations

import datetime as dt
import io
import json
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest

from bapp_cli.cli.output import OutputSink
from bapp_cli.cli.terminal import json_for_terminal
from bapp_cli.services.spreadsheet import json_default

ROWS = [
    {"reference": "BK-1", "start_time": dt.datetime(2031, 3, 3, 10, tzinfo=dt.UTC), "amount": Decimal("5"),
     "answers": [{"question": "Tools", "answer": ["=x", "y"]}], "name": "Ada \x1b[31m\u202e"},
    {"reference": "BK-2", "start_time": dt.datetime(2031, 3, 3, 11, 0, 0, 5, tzinfo=dt.UTC), "amount": None,
     "answers": [], "name": "Bo"},
]  # fmt: skip
COLUMNS = ["reference", "start_time", "amount", "answers", "name"]


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


class ReaderGone(Exception):
    pass


def _rows_then_failure(stdout: io.StringIO, seen: list[str]) -> Iterator[dict[str, Any]]:
    yield ROWS[0]
    yield ROWS[1]
    seen.append(stdout.getvalue())  # what was written before the third row was asked for
    raise ReaderGone


@pytest.mark.parametrize("fmt", ["json", "jsonl"])
def test_rows_are_written_before_the_listing_ends(fmt: str) -> None:
    stdout = io.StringIO()
    seen: list[str] = []
    with pytest.raises(ReaderGone):
        OutputSink(fmt, stdout=stdout).records(_rows_then_failure(stdout, seen), COLUMNS)
    assert "BK-1" in seen[0] and "BK-2" in seen[0]


def test_a_long_csv_listing_reaches_stdout_in_pieces() -> None:
    stdout = io.StringIO()
    seen: list[str] = []

    def rows() -> Iterator[dict[str, Any]]:
        for index in range(5_000):
            yield {**ROWS[0], "reference": f"BK-{index:05d}"}
        seen.append(stdout.getvalue())
        raise ReaderGone

    with pytest.raises(ReaderGone):
        OutputSink("csv", stdout=stdout).records(rows(), COLUMNS)
    assert seen[0].startswith("reference,start_time,amount,answers,name\nBK-00000,2031-03-03T10:00:00Z,5.00,")
    assert seen[0].count("\n") > 1_000


@pytest.mark.parametrize("terminal", [False, True])
@pytest.mark.parametrize("rows", [ROWS, []], ids=["rows", "empty"])
def test_a_streamed_json_array_is_the_bytes_of_the_whole_list(terminal: bool, rows: list[dict[str, Any]]) -> None:
    stdout: io.StringIO = Terminal() if terminal else io.StringIO()
    OutputSink("json", stdout=stdout).records(iter(rows), COLUMNS)
    whole = json.dumps(rows, default=json_default, ensure_ascii=False, indent=2 if terminal else None)
    assert stdout.getvalue() == (json_for_terminal(whole) if terminal else whole) + "\n"
    assert json.loads(stdout.getvalue()) == json.loads(whole)


def test_the_progress_line_is_rewritten_in_place_throttled_and_erased(monkeypatch: pytest.MonkeyPatch) -> None:
    from bapp_cli.cli.output import Progress

    clock = iter([0.0, 0.05, 0.2, 1.0])  # an update 50 ms after the first is skipped; one 200 ms later is not
    monkeypatch.setattr("time.monotonic", lambda: next(clock))
    stream = Terminal()
    progress = Progress(stream)
    progress.update("1 row")
    progress.update("2 rows")
    progress.update("3 rows\x1b[2J")
    progress.step("done")  # always written
    progress.close()
    progress.close()  # erased once
    assert stream.getvalue() == "\r\x1b[K1 row\r\x1b[K3 rows␛[2J\r\x1b[Kdone\r\x1b[K"
    untouched = Terminal()
    Progress(untouched).close()  # nothing shown: nothing to erase
    Progress(None).update("no terminal")  # cron and pipes: silent
    assert untouched.getvalue() == ""
    sink = OutputSink("tsv", stderr=Terminal(), quiet=True)
    sink.progress().step("quiet")
    assert sink.stderr.getvalue() == ""  # type: ignore[attr-defined]
