"""P6: `export bookings --format csv` and `bookings list --format csv` of 100,000 bookings, next to
`sqlite-utils rows --csv` of the same table.

The database is bench/bookings.py's big one (1,000 session types, 20,000 clients, 100,000 bookings, SQLite,
migrated through the real Alembic chain). Each command is a whole process writing to a file (stdout not a
terminal, as a script runs it), interleaved with the anchor so machine noise hits both alike; medians of
--runs for wall and CPU seconds, the largest peak RSS (os.wait4: the child's own). Every run's output is
checked to hold a header and 100,000 rows.

    python bench/export.py [--runs 5] [--rebuild]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from report import compare, emit, isolated_environment

REPO = Path(__file__).resolve().parent.parent
WORK = REPO / ".bench" / "reads"
BIN = Path(sys.executable).parent
BOOKINGS = 100_000
SESSION_TYPES = 1_000
TARGET = 1.5
RSS_LIMIT_MB = 100.0


def database(rebuild: bool) -> Path:
    """The 100k-booking database, built once and kept between runs (--rebuild starts afresh).

    Built in a child process: Linux carries a process's peak RSS across fork and exec into the child's
    own figure, so a bench process that had built the database in itself would inflate every peak RSS
    it measures."""
    WORK.mkdir(parents=True, exist_ok=True)
    path = WORK / "bookings-100k.db"
    if rebuild or not path.exists():
        started = time.perf_counter()
        script = "from pathlib import Path; from bookings import build; "
        script += f"build(Path({str(path)!r}), {SESSION_TYPES}, {BOOKINGS})"
        subprocess.run([sys.executable, "-c", script], check=True, cwd=Path(__file__).resolve().parent)
        print(f"  built {path.name} in {time.perf_counter() - started:.1f} s", file=sys.stderr)
    return path


def bench_environment() -> dict[str, str]:
    """bapp's defaults, and Python allowed to cache bytecode: an installed bapp has its .pyc files, and
    without them every run would compile bapp's modules afresh (a third of a short command's time)."""
    env = isolated_environment(WORK)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env


def lines_in(path: Path) -> int:
    with path.open("rb") as stream:
        return sum(chunk.count(b"\n") for chunk in iter(lambda: stream.read(1 << 20), b""))


def expecting_lines(expected: int) -> Callable[[str, Path], None]:
    """A `compare` check: every run wrote `expected` lines."""

    def check(name: str, output: Path) -> None:
        if lines_in(output) != expected:
            raise SystemExit(f"{name}: wrote {lines_in(output)} lines, expected {expected}")

    return check


def bapp(path: Path, *args: str) -> list[str]:
    return [str(BIN / "bapp"), "--database-url", f"sqlite:///{path}", *args]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--rebuild", action="store_true")
    options = parser.parse_args()
    path = database(options.rebuild)
    env = bench_environment()
    commands = {
        "export": bapp(path, "export", "bookings", "--format", "csv"),
        "list": bapp(path, "bookings", "list", "--format", "csv"),
        "anchor": [str(BIN / "sqlite-utils"), "rows", str(path), "bookings", "--csv"],
    }
    figures = compare(
        commands, env, options.runs, output=WORK / "out.txt", check=expecting_lines(BOOKINGS + 1), cwd=REPO
    )
    anchor_wall, anchor_cpu, anchor_rss = figures["anchor"]
    print(f"  median of {options.runs} interleaved runs each; the machine may be shared (CPU beside wall)")
    results = []
    for name, figure in (("export bookings --format csv", "export"), ("bookings list --format csv", "list")):
        wall, cpu, rss = figures[figure]
        results.append(
            emit(
                f"P6 {name}, 100k rows",
                bapp=wall,
                anchor=anchor_wall,
                target=TARGET,
                anchor_label="sqlite-utils rows --csv",
                note=f"CPU {cpu:.2f} s vs {anchor_cpu:.2f} s (ratio {cpu / anchor_cpu:.2f})",
            )
        )
        results.append(
            emit(
                f"P6 {name}, peak RSS",
                bapp=rss,
                anchor=RSS_LIMIT_MB,
                target=1.0,
                unit="MB",
                anchor_label="limit",
                note=f"sqlite-utils peaked at {anchor_rss:.0f} MB",
            )
        )
    return 0 if all(results) else 1


if __name__ == "__main__":
    raise SystemExit(main())
