"""Ctrl-C in the middle of `bapp import bookings`, on both backends: while the import waits for the next batch
of its input, a batch's bookings may still be moving into the table on the import's second thread. The
interrupt still exits 130 with one line and leaves the database as it was, and the next import runs."""

from __future__ import annotations

import os
import signal
from pathlib import Path

from sqlalchemy.orm import Session

from tests.cli.test_import import HEADER, _wait_for, _writing, catalogue_fixture, nothing_written, seed_fixture, write
from tests.conftest import Bapp

__all__ = ["catalogue_fixture", "seed_fixture"]  # the fixtures this module's test takes


def test_ctrl_c_while_the_import_waits_for_input_exits_130_with_nothing_written(
    bapp: Bapp, catalogue: Session, tmp_path: Path
) -> None:
    fifo = tmp_path / "bookings.csv"
    os.mkfifo(fifo)
    # See tests/cli/test_interrupt.py: a suite started in the background ignores SIGINT, and the child
    # would inherit that; a Python-level handler here is reset to the default in the child.
    saved = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        process = bapp.popen("import", "bookings", str(fifo), "--json")
    finally:
        signal.signal(signal.SIGINT, saved)
    rows = [f"client{index}@example.com,intro,2029-01-01T{index % 24:02d}:00Z,completed,,," for index in range(12_000)]
    with open(fifo, "w") as writer:
        writer.write(HEADER)
        # two full batches, and the file held open: the import writes them, then waits for more input
        writer.write("\n".join(rows) + "\n")
        writer.flush()
        _wait_for(lambda: _writing(bapp.database_url), "the import's write transaction")
        assert process.poll() is None, process.communicate()
        process.send_signal(signal.SIGINT)
        stdout, stderr = process.communicate(timeout=60)
    assert process.returncode == 130, stderr
    assert stderr.strip().splitlines() == ["Interrupted; nothing was changed."]
    assert stdout == ""
    nothing_written(catalogue)
    after = bapp("import", "bookings", write(tmp_path, "small.csv", HEADER + rows[0] + "\n"), "--json")
    assert after.exit_code == 0 and after.json()["created"] == 1
