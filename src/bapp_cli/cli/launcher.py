"""The `bapp` console entry point.

Scripts and shells start bapp constantly for `--version`, piped `--help` and Tab completion. Those three
are answered here from the cached command index (command_index.py) without importing Typer, Rich or
any database library, so they answer in a small fraction of a second; everything else — and any case
the fast path is unsure of — goes to the full Typer app in cli/app.py.
"""

from __future__ import annotations

import gc
import io
import os
import sys


def _fast_path(argv: list[str]) -> int | None:
    """An exit code if answered here, None to hand over to the full app."""
    if argv == ["--version"]:
        from bapp_cli import __version__

        sys.stdout.write(f"bapp {__version__}\n")
        return 0
    shell = os.environ.get("_BAPP_COMPLETE")
    if shell:
        from bapp_cli.cli import command_index, completion

        parsed = completion.request(shell)
        if parsed is None:  # a shell left to Typer
            return None
        tree = command_index.load_or_build()["tree"]
        sys.stdout.write(completion.render(shell, completion.complete(tree, *parsed)))
        return 0
    if argv in (["--help"], ["-h"]) and not sys.stdout.isatty():
        from bapp_cli.cli import command_index

        sys.stdout.write(command_index.root_help(command_index.load_or_build()))
        return 0
    return None


def main() -> None:
    if sys.stdout is None or sys.stderr is None:  # started with one closed: see files.ClosedStream
        from bapp_cli.cli.files import ClosedStream

        sys.stdout, sys.stderr = sys.stdout or ClosedStream(), sys.stderr or ClosedStream()
    elif isinstance(getattr(sys.stdout, "buffer", None), io.FileIO):
        # PYTHONUNBUFFERED (many container images set it) puts stdout's text straight on the file, and what one write
        # could not place (a pipe's reader gone mid-table, a disk filling) was dropped without an error: a cut table,
        # exit 0. A buffered stream on the same descriptor writes all of it or raises (main's 141 or 74).
        out = sys.stdout
        sys.stdout = open(out.fileno(), "w", encoding=out.encoding, errors=out.errors, closefd=False)  # noqa: SIM115
    argv = sys.argv[1:]
    try:
        try:
            code = _fast_path(argv)
        except Exception:  # the fast path is an optimisation: on any surprise, the full app answers
            code = None
        if code is not None:
            from bapp_cli.cli.files import flush_stdout_at_exit

            raise SystemExit(flush_stdout_at_exit(code))
        # Start-up makes 22,000 to 115,000 objects (Typer, SQLAlchemy, the models, bapp's modules) that live to
        # the end, and the cyclic garbage collector scanned them again and again as they came (~10 % of a short
        # command's instructions, callgrind): it is paused until the command's work begins (start_collecting).
        gc.disable()
        paused_for_start_up.append(True)
        ends_with_the_command.append(True)
        from bapp_cli.cli.app import main as full_main

        full_main(argv)  # it turns a stop in a command into its exit code itself
    except KeyboardInterrupt:
        # Ctrl-C while bapp starts (its modules load for a few tenths of a second): no command has run yet, so
        # the run ends as a stopped command does, not in Python's traceback
        sys.stderr.write("Interrupted; nothing was changed.\n")
        raise SystemExit(130) from None


# Set by main when it pauses the collector; a test running the app in its own process never has it set. A flag, not
# gc.get_freeze_count(): that walks every frozen object (~5 ms) on each of a command's database openings, and anything
# frozen first (a Calendly run, an import batch) would have left the collector off to the end of the process.
paused_for_start_up: list[bool] = []
# Set by main as well, and kept: this process ends with its one command, so what the command leaves alive may be frozen
# as it ends (calendly_runs) and an import's batches stay frozen (cli.transfer). Not in a process that runs the app and
# goes on (the tests, a program calling main): its objects frozen then would never be collected, however soon they
# became garbage.
ends_with_the_command: list[bool] = []


def start_collecting() -> None:
    """The command's work begins (it opens its database): start-up's objects are frozen, so no collection scans them
    again, and the collector main paused resumes for what the work makes. Only the first call acts (the Calendly runs
    pause it again for their own reasons), and only where main paused it (not in a test running the app in its own
    process). A command that never opens its database (a Calendly look-up, `config show`) is over in moments."""
    if paused_for_start_up:
        paused_for_start_up.clear()
        gc.freeze()
        gc.enable()
