"""Ctrl-C in the middle of `bapp import bookings`, on both backends: while the import waits for the next batch
of its input, a batch's bookings may still be moving into the table on the import's second thread. The
interrupt still exits 130 with one line and leaves the database as it was, and the next import runs."""

from __future__ import annotations

import signal
from pathlib import Path

from sqlalchemy.orm import Session

from tests.cli.test_import import (
    HEADER,
    TWO_BATCHES,
    catalogue_fixture,
    import_mid_write,
    nothing_written,
    seed_fixture,
    write,
)
from tests.conftest import Bapp

__all__ = ["catalogue_fixture", "seed_fixture"]  # the fixtures this module's test takes


def test_ctrl_c_while_the_import_waits_for_input_exits_130_with_nothing_written(
    bapp: Bapp, catalogue: Session, tmp_path: Path
) -> None:
    with import_mid_write(bapp, tmp_path, interruptible=True) as process:
        process.send_signal(signal.SIGINT)
        stdout, stderr = process.communicate(timeout=60)
    assert process.returncode == 130, stderr
    assert stderr.strip().splitlines() == ["Interrupted; nothing was changed."]
    assert stdout == ""
    nothing_written(catalogue)
    after = bapp("import", "bookings", write(tmp_path, "small.csv", HEADER + TWO_BATCHES[0] + "\n"), "--json")
    assert after.exit_code == 0 and after.json()["created"] == 1
