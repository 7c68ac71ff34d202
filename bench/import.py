"""P3: `bapp import bookings` of a 100,000-row CSV into SQLite against `sqlite-utils insert` of the same file.

The CSV is a realistic backfill with 7 columns — client, session, start_time, status, client_timezone,
pathway, amount — over 20,000 distinct clients, 200 session types and 50 builders: mostly past
bookings (completed, cancelled, no-show) and a tenth pending or confirmed in future slots, which the
overlap rule checks. bapp validates every row (e-mails, sessions, instants, zones, money, pathways,
overlaps), creates the 20,000 clients and their enrolments, and writes the bookings into the real
schema (six indexes taking an entry a row — into this empty table, two of them, on start time and on pathway
and start time, are built once after the last batch — and four partial ones taking none, CHECK constraints,
foreign keys) in one transaction; sqlite-utils inserts the rows as they are into a table it creates, with
`--batch-size 100000` (the issue-16 anchor: one batch).

Both are timed as whole processes on fresh database files, interleaved, median of --runs, by wall time
and by CPU seconds (user + system: the machine is shared, and CPU seconds say what the work costs
whatever the load). Peak RSS is the bapp process's own (os.wait4). Two lines print the floor: the
least any import of this file must spend on this stack before a business rule runs (see `floor`), by wall
time with the ceiling on the ratio it implies, and by CPU seconds with what the CPU target leaves for the
rules. With --large, a 1,000,000-row file is imported as well, its peak
RSS against the 150 MB limit (this takes a few minutes and is not part of `make bench`).

    python bench/import.py [--runs 3] [--large] [--keep]
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from report import emit, isolated_environment

REPO = Path(__file__).resolve().parent.parent
WORK = REPO / ".bench" / "import"
BIN = Path(sys.executable).parent
ROWS = 100_000
LARGE_ROWS = 1_000_000
CLIENTS = 20_000
BUILDERS = 50
SESSION_TYPES = 200
TARGET_RATIO = 1.5  # rows/s against the anchor, by wall time
TARGET_CPU_RATIO = 1.0  # and by CPU seconds
RSS_LIMIT_MB = 150.0
COLUMNS = ("client", "session", "start_time", "status", "client_timezone", "pathway", "amount")
ZONES = ("Europe/London", "Europe/Berlin", "America/New_York", "Asia/Kolkata", "UTC")
PAST = ("completed",) * 15 + ("cancelled",) * 2 + ("no_show",)


def generate(path: Path, rows: int, *, seed: int = 7) -> None:
    """The backfill CSV. Active (pending/confirmed) rows sit in distinct future hours, one builder each."""
    rng = random.Random(seed)
    first_past = dt.datetime(2022, 1, 1, 8, tzinfo=dt.UTC)
    first_future = dt.datetime(2031, 1, 1, 8, tzinfo=dt.UTC)
    active = 0
    # every client appears, equally often, in a random order
    clients = [index % CLIENTS for index in range(rows)]
    rng.shuffle(clients)
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(COLUMNS)
        for index in range(rows):
            client = f"client{clients[index]:05d}@bench.example"
            if index % 10 == 9:
                # the n-th active row: hour n, session of builder n % 50, so no builder or client overlaps
                start = first_future + dt.timedelta(hours=active)
                session = (active % BUILDERS) * (SESSION_TYPES // BUILDERS) + 1
                status = "confirmed" if active % 3 else "pending"
                active += 1
            else:
                start = first_past + dt.timedelta(minutes=15 * rng.randrange(4 * 24 * 365 * 8))
                session = rng.randrange(SESSION_TYPES) + 1
                status = rng.choice(PAST)
            pathway = rng.choice(("accelerate", "pivot", "play", "", ""))
            amount = rng.choice(("0.00", "0.00", "45.00", "95.00"))
            writer.writerow(
                (client, f"session-{session:03d}", start.strftime("%Y-%m-%dT%H:%M:%SZ"), status,
                 rng.choice(ZONES), pathway, amount)
            )  # fmt: skip


def build_template(path: Path) -> None:
    """A migrated database with the builders and session types the CSV names (and no clients yet)."""
    from sqlalchemy import insert

    from bapp_cli.db import migration
    from bapp_cli.db.engine import make_engine
    from bapp_cli.db.models import BuilderProfile, SessionType, User

    if path.exists():
        path.unlink()
    engine = make_engine(f"sqlite:///{path}", create_sqlite_file=True)
    migration.upgrade(engine)
    now = dt.datetime(2030, 1, 1, tzinfo=dt.UTC)
    with engine.begin() as connection:
        connection.execute(
            insert(User),
            [
                {"id": index + 1, "email": f"builder{index:02d}@bench.example", "created_at": now, "updated_at": now}
                for index in range(BUILDERS)
            ],
        )
        connection.execute(
            insert(BuilderProfile),
            [
                {"user_id": index + 1, "buffer_minutes": 10, "created_at": now, "updated_at": now}
                for index in range(BUILDERS)
            ],
        )
        connection.execute(
            insert(SessionType),
            [
                {
                    "id": index + 1,
                    "slug": f"session-{index + 1:03d}",
                    "title": f"Session {index + 1:03d}",
                    "duration_minutes": 45,
                    "category": ("free", "specialized")[index % 2],
                    "requires_auth": bool(index % 2),
                    "price": Decimal("0.00"),
                    "builder_id": index // (SESSION_TYPES // BUILDERS) + 1,
                    "custom_questions": [],
                    "created_at": now,
                    "updated_at": now,
                }
                for index in range(SESSION_TYPES)
            ],
        )
    engine.dispose()


def run(command: list[str], env: dict[str, str]) -> tuple[float, float, float, str]:
    """Wall seconds, CPU seconds and peak RSS (MB) of one whole process, and its stdout."""
    started = time.perf_counter()
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    # wait4 gives this child's own resource usage (RUSAGE_CHILDREN would mix every child of the bench)
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - started
    process.returncode = os.waitstatus_to_exitcode(status)
    stdout = process.stdout.read().decode() if process.stdout else ""
    stderr = process.stderr.read().decode() if process.stderr else ""
    if process.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed ({process.returncode}): {stderr[-800:]}")
    return wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024, stdout


def fresh_copy(template: Path, target: Path) -> None:
    """`target` as a copy of the migrated template, with no WAL files left from an earlier run."""
    for suffix in ("", "-wal", "-shm"):
        Path(f"{target}{suffix}").unlink(missing_ok=True)
    shutil.copyfile(template, target)


def bapp_import(
    template: Path, csv_path: Path, env: dict[str, str], *, rows: int, target: Path = WORK / "bapp.db"
) -> tuple[float, float, float]:
    """Wall, CPU and peak RSS of `bapp import bookings` of the file into a fresh copy of the template."""
    fresh_copy(template, target)
    command = [
        str(BIN / "bapp"),
        "--database-url",
        f"sqlite:///{target}",
        "import",
        "bookings",
        str(csv_path),
        "--json",
    ]
    wall, cpu, rss, stdout = run(command, env)
    summary: dict[str, Any] = json.loads(stdout)
    if (summary["created"], summary["rejected"], summary["clients_created"]) != (rows, 0, CLIENTS):
        raise SystemExit(f"unexpected import summary: {summary}")
    return wall, cpu, rss


def sqlite_utils_insert(csv_path: Path, env: dict[str, str]) -> tuple[float, float, float]:
    target = WORK / "sqlite-utils.db"
    target.unlink(missing_ok=True)
    command = [str(BIN / "sqlite-utils"), "insert", str(target), "bookings", str(csv_path), "--csv", "--batch-size"]
    wall, cpu, rss, _ = run([*command, str(ROWS)], env)
    return wall, cpu, rss


def floor(template: Path, csv_path: Path, env: dict[str, str], runs: int) -> dict[str, float]:
    """What any bapp import of this file must spend before a single business rule runs (seconds):
    the fixed cost of the command (a header-only file, whole process), reading and schema-validating the
    rows with bapp's own reader and pydantic schema (collector paused), and the database work of writing them
    the fastest way we know (staged rows, one INSERT … SELECT with every droppable index dropped and rebuilt
    after, foreign keys on, commit), timed on raw sqlite3 with the rows already converted. A lower bound,
    not an estimate: bapp does all of this and resolves references and checks the rules besides.

    Each piece is timed by wall and by CPU seconds. The writes are timed a second time the way an import
    into a database that already holds bookings must do them, with the schema's indexes kept: dropping and
    rebuilding them pays only into an empty table, so that figure is the writes' CPU floor in general. It is no
    lower bound for this file: into its empty table bapp itself builds two of those indexes after the last batch."""
    import gc
    import itertools
    import sqlite3

    from bapp_cli.services.transfer.bookings import BookingRow
    from bapp_cli.services.transfer.formats import Source
    from bapp_cli.services.transfer.importer import _adapter

    header_only = WORK / "bookings-header.csv"
    with open(csv_path, encoding="utf-8") as handle:
        header_only.write_text(handle.readline(), encoding="utf-8")
    target = WORK / "floor.db"
    fixed: list[tuple[float, float]] = []
    for _ in range(runs):
        fresh_copy(template, target)
        command = [str(BIN / "bapp"), "--database-url", f"sqlite:///{target}", "import", "bookings", str(header_only)]
        fixed.append(run(command, env)[:2])

    gc.disable()
    with open(csv_path, "rb") as stream:
        started, started_cpu = time.perf_counter(), time.process_time()
        adapter = _adapter(BookingRow)
        records: list[dict[str, Any]] = []
        for _, rows in Source("csv", stream).sections():
            while batch := list(itertools.islice(rows, 4000)):
                records.extend(adapter.validate_python([row.values for row in batch]))
        validation, validation_cpu = time.perf_counter() - started, time.process_time() - started_cpu

    now = "2030-01-01 00:00:00.000000"
    clients = sorted({record["client"] for record in records})
    client_ids = {email: index + BUILDERS + 1 for index, email in enumerate(clients)}
    pathways = {"accelerate": 1, "pivot": 2, "play": 3}
    columns = (
        "reference, client_id, session_type_id, builder_id, start_time, end_time, status, amount, payment_status, "
        "currency, client_timezone, pathway_id, custom_question_responses, source, created_at, updated_at"
    )
    staged = []
    for number, record in enumerate(records):
        start = dt.datetime.fromisoformat(record["start_time"])
        session = int(record["session"][-3:])
        staged.append(
            (f"BK-{number:08d}", client_ids[record["client"]], session, (session - 1) // 4 + 1,
             start.strftime("%Y-%m-%d %H:%M:%S.000000"),
             (start + dt.timedelta(minutes=45)).strftime("%Y-%m-%d %H:%M:%S.000000"),
             record["status"], float(record["amount"]), "not_required" if not record["amount"] else "unpaid", "USD",
             record["client_timezone"], pathways.get(record.get("pathway") or ""), "[]", "import", now, now)
        )  # fmt: skip

    def write(*, rebuild_indexes: bool) -> tuple[float, float]:
        fresh_copy(template, target)
        connection = sqlite3.connect(target, isolation_level=None)
        connection.execute("PRAGMA journal_mode = WAL")
        connection.execute("PRAGMA foreign_keys = ON")
        connection.execute(f"PRAGMA cache_size = -{16 * 1024}")
        indexes = connection.execute(
            "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND tbl_name = 'bookings' AND sql IS NOT NULL"
        ).fetchall()
        if not rebuild_indexes:
            indexes = []
        started, started_cpu = time.perf_counter(), time.process_time()
        connection.execute("BEGIN IMMEDIATE")
        connection.executemany(
            "INSERT INTO users (id, email, created_at, updated_at) VALUES (?, ?, ?, ?)",
            [(client_ids[email], email, now, now) for email in clients],
        )
        for name, _ in indexes:
            connection.execute(f"DROP INDEX {name}")
        connection.execute(f"CREATE TEMP TABLE stage AS SELECT {columns} FROM bookings WHERE 0")
        connection.executemany(f"INSERT INTO temp.stage VALUES ({', '.join('?' * 16)})", staged)
        connection.execute(f"INSERT INTO bookings ({columns}) SELECT {columns} FROM temp.stage")
        for _, sql in indexes:
            connection.execute(sql)
        connection.execute("COMMIT")
        figures = time.perf_counter() - started, time.process_time() - started_cpu
        connection.close()
        return figures

    writing, _ = write(rebuild_indexes=True)
    _, writing_cpu = write(rebuild_indexes=False)
    gc.enable()
    return {
        "fixed": statistics.median(wall for wall, _ in fixed),
        "fixed_cpu": statistics.median(cpu for _, cpu in fixed),
        "validation": validation,
        "validation_cpu": validation_cpu,
        "writing": writing,
        "writing_cpu": writing_cpu,
    }


def measure_floor(runs: int) -> dict[str, float]:
    """`floor` in a child process. It holds the 100,000 validated rows in memory, and Linux hands a
    process's peak RSS on to every child it later starts (the high-water mark survives fork and exec),
    so run here it would inflate the peak RSS measured of the 1,000,000-row import that follows."""
    done = subprocess.run(
        [sys.executable, __file__, "--floor-only", "--runs", str(runs)], capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise SystemExit(f"the floor measurement failed: {done.stderr[-800:]}")
    figures: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
    return figures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--large", action="store_true", help="also import 1,000,000 rows (a few minutes)")
    parser.add_argument("--keep", action="store_true", help="keep the generated files between runs")
    parser.add_argument("--floor-only", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.floor_only:  # the child process of measure_floor
        figures = floor(WORK / "template.db", WORK / "bookings-100k.csv", isolated_environment(WORK), args.runs)
        print(json.dumps(figures))
        return 0
    WORK.mkdir(parents=True, exist_ok=True)
    env = isolated_environment(WORK)
    csv_path = WORK / "bookings-100k.csv"
    template = WORK / "template.db"
    if not (args.keep and csv_path.exists()):
        generate(csv_path, ROWS)
    if not (args.keep and template.exists()):
        build_template(template)

    bapp_runs: list[tuple[float, float, float]] = []
    anchor_runs: list[tuple[float, float, float]] = []
    for _ in range(args.runs):
        bapp_runs.append(bapp_import(template, csv_path, env, rows=ROWS))
        anchor_runs.append(sqlite_utils_insert(csv_path, env))
    bapp_wall = statistics.median(run[0] for run in bapp_runs)
    anchor_wall = statistics.median(run[0] for run in anchor_runs)
    bapp_cpu = statistics.median(run[1] for run in bapp_runs)
    anchor_cpu = statistics.median(run[1] for run in anchor_runs)
    peak = max(run[2] for run in bapp_runs)
    emit(
        "P3 import bookings, 100k rows (rows/s)",
        bapp=ROWS / bapp_wall,
        anchor=ROWS / anchor_wall,
        target=TARGET_RATIO,
        unit="rows/s",
        higher_is_better=True,
        anchor_label="sqlite-utils insert",
        note=f"wall {bapp_wall:.2f} s vs {anchor_wall:.2f} s; median of {args.runs}",
    )
    emit(
        "P3 import bookings, 100k rows (CPU seconds)",
        bapp=bapp_cpu,
        anchor=anchor_cpu,
        target=1 / TARGET_CPU_RATIO,
        unit="s",
        anchor_label="sqlite-utils insert",
        note=f"rows per CPU second {ROWS / bapp_cpu:,.0f} vs {ROWS / anchor_cpu:,.0f}; median of {args.runs}",
    )
    emit(
        "P3 bapp peak RSS, 100k rows",
        bapp=peak,
        anchor=RSS_LIMIT_MB,
        target=1.0,
        unit="MB",
        anchor_label="limit",
        note=f"sqlite-utils peaked at {max(run[2] for run in anchor_runs):.0f} MB",
    )
    floor_figures = measure_floor(args.runs)
    fixed, validation, writing = (floor_figures[name] for name in ("fixed", "validation", "writing"))
    # Even with reading/validation and writing fully overlapped on the machine's two cores, the run cannot
    # be shorter than the fixed cost plus the longer of the two.
    least = fixed + max(validation, writing)
    ceiling = ROWS / least / (ROWS / anchor_wall)
    print(
        f"P3 floor: fixed cost {fixed:.2f} s (header-only file, whole process) + the longer of reading and "
        f"schema validation ({validation:.2f} s) and raw writes ({writing:.2f} s), as if fully parallel, = "
        f"{least:.2f} s before any business rule: at most {ROWS / least:,.0f} rows/s = {ceiling:.2f} × "
        f"sqlite-utils" + ("" if ceiling >= TARGET_RATIO else f" (the {TARGET_RATIO:g} × target is out of reach)"),
        flush=True,
    )
    # CPU seconds add up whatever runs in parallel, and the writes keep the schema's indexes (see `floor`).
    cpu_parts = [floor_figures[name] for name in ("fixed_cpu", "validation_cpu", "writing_cpu")]
    cpu_least = sum(cpu_parts)
    left = anchor_cpu * TARGET_CPU_RATIO - cpu_least  # what the CPU target leaves for every business rule
    print(
        "P3 CPU floor: fixed cost {:.2f} s + reading and schema validation {:.2f} s + raw writes with the "
        "schema's indexes {:.2f} s = {:.2f} CPU s before any business rule = {:.2f} × sqlite-utils's {:.2f} s, "
        "leaving {:.2f} s ({:.1f} µs a row) for every rule".format(
            *cpu_parts, cpu_least, cpu_least / anchor_cpu, anchor_cpu, left, left / ROWS * 1e6
        ),
        flush=True,
    )
    if args.large:
        large = WORK / "bookings-1m.csv"
        if not (args.keep and large.exists()):
            generate(large, LARGE_ROWS, seed=11)
        wall, cpu, rss = bapp_import(template, large, env, rows=LARGE_ROWS, target=WORK / "bapp-large.db")
        emit(
            "P3 bapp peak RSS, 1M rows",
            bapp=rss,
            anchor=RSS_LIMIT_MB,
            target=1.0,
            unit="MB",
            anchor_label="limit",
            note=f"1M rows in {wall:.1f} s ({LARGE_ROWS / wall:,.0f} rows/s, CPU {cpu:.1f} s); 100k rows peaked at "
            f"{peak:.0f} MB",
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
