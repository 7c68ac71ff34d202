"""P7: ordinary reads — `sessions list`, `bookings list --limit 50`, `clients show` and the other everyday list and
show commands — next to `sqlite-utils rows`.

Same database as bench/export.py (1,000 session types, 20,000 clients, 100,000 bookings). Each anchor reads
the same rows out of the same table as the bapp command shows, in the same format (TSV, which is what
bapp writes to a pipe): every session type; the first 50 bookings by start time; the client's user row; every
client's user row; every builder's; every pathway; one pathway; every skill; one session type; one booking.
Whole processes with stdout piped to a file, interleaved, medians of --runs for wall and CPU seconds.
`bapp --version` is timed too, to show how much of each command is start-up, and a floor: a process that
only imports bapp's command-line app (Typer, Click and bapp's command modules), which every command pays
before it reads (these commands read through a DB-API connection and never import SQLAlchemy).

    python bench/reads.py [--runs 9] [--rebuild]
"""

from __future__ import annotations

import argparse
import sqlite3
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from export import BIN, REPO, WORK, bapp, bench_environment, database
from report import compare, cpu_note, emit

TARGET = 2.0
CLIENT = "client00009@bench.example"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=9)
    parser.add_argument("--rebuild", action="store_true")
    options = parser.parse_args()
    path = database(options.rebuild)
    env = bench_environment()
    rows = [str(BIN / "sqlite-utils"), "rows", str(path)]
    with sqlite3.connect(path) as connection:  # a pathway and a booking the show commands name
        (pathway,) = connection.execute("SELECT slug FROM pathways ORDER BY position, slug").fetchone()
        (reference,) = connection.execute("SELECT reference FROM bookings ORDER BY id").fetchone()
    people = "id IN (SELECT user_id FROM {}_profiles)"
    pairs = {
        "sessions list": (bapp(path, "sessions", "list"), [*rows, "session_types", "--tsv"]),
        "bookings list --limit 50": (
            bapp(path, "bookings", "list", "--limit", "50"),
            [*rows, "bookings", "--tsv", "--order", "start_time, reference", "--limit", "50"],
        ),
        "clients show": (
            bapp(path, "clients", "show", CLIENT),
            [*rows, "users", "--tsv", "--where", "email = :email", "-p", "email", CLIENT],
        ),
        "clients list": (
            bapp(path, "clients", "list"),
            [*rows, "users", "--tsv", "--where", people.format("client"), "--order", "email"],
        ),
        "builders list": (
            bapp(path, "builders", "list"),
            [*rows, "users", "--tsv", "--where", people.format("builder"), "--order", "email"],
        ),
        "pathways list": (bapp(path, "pathways", "list"), [*rows, "pathways", "--tsv", "--order", "position, slug"]),
        "pathways show": (
            bapp(path, "pathways", "show", pathway),
            [*rows, "pathways", "--tsv", "--where", "slug = :slug", "-p", "slug", pathway],
        ),
        "skills list": (bapp(path, "skills", "list"), [*rows, "skills", "--tsv", "--order", "slug"]),
        "sessions show": (
            bapp(path, "sessions", "show", "1"),
            [*rows, "session_types", "--tsv", "--where", "id = 1"],
        ),
        "bookings show": (
            bapp(path, "bookings", "show", reference),
            [*rows, "bookings", "--tsv", "--where", "reference = :reference", "-p", "reference", reference],
        ),
    }
    commands = {
        "bapp --version": [str(BIN / "bapp"), "--version"],
        # the floor: a process that only imports the command-line app every command runs in
        "floor": [sys.executable, "-c", "import bapp_cli.cli.app"],
    }
    for name, (command, anchor) in pairs.items():
        commands[name] = command
        commands[f"anchor {name}"] = anchor
    figures = compare(commands, env, options.runs, output=WORK / "out.txt", cwd=REPO)
    version_wall = figures["bapp --version"][0]
    print(
        f"  median of {options.runs} interleaved runs each; the machine may be shared (CPU beside wall); "
        f"bapp --version {version_wall:.3f} s"
    )
    floor_wall, floor_cpu, _ = figures["floor"]
    anchor_cpu = statistics.median(figures[f"anchor {name}"][1] for name in pairs)
    print(
        f"P7 floor: importing bapp's command-line app alone takes {floor_wall:.3f} s wall, {floor_cpu:.3f} s "
        f"CPU = {floor_cpu / anchor_cpu:.2f} x the anchors' median CPU, before any query or output",
        flush=True,
    )
    results = []
    for name in pairs:
        bapp_run, anchor_run = figures[name], figures[f"anchor {name}"]
        results.append(
            emit(
                f"P7 {name}",
                bapp=bapp_run.wall,
                anchor=anchor_run.wall,
                target=TARGET,
                anchor_label="sqlite-utils rows",
                note=cpu_note(bapp_run, anchor_run),
            )
        )
    return 0 if all(results) else 1


if __name__ == "__main__":
    raise SystemExit(main())
