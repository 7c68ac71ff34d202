"""P2: `bapp calendly sync` of 10,000 event types in 100 pages from a local fake Calendly.

Two figures, each beside its anchor measured in the same run — a bare httpx script, also a whole process,
that fetches and JSON-parses the same 100 pages:

* with the fake answering every page 100 ms late (a distant API): the first sync's wall time ≤ 1.03 × the
  anchor's, i.e. bapp's own work hides behind the wait for the next page;
* with no latency: the first sync's CPU seconds (the child process's user + system time) ≤ 3 × the
  anchor's.

Then a no-change re-sync and how many catalogue rows it wrote (target 0). Every figure is the median of a
few runs (each sync on a fresh copy of a migrated database), so one scheduling hiccup on a busy machine
does not decide it; wall and CPU are printed for both.

Run: .venv/bin/python bench/sync.py [--types N] [--repeat R] [--latency SECONDS]
"""

from __future__ import annotations

import argparse
import os
import resource
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from report import compile_bapp, emit, emit_count  # noqa: E402
from tests.fakes.calendly_server import (  # noqa: E402
    DEFAULT_TOKEN,
    DEFAULT_USER_URI,
    FakeCalendly,
    make_event_type,
)

PAGE_SIZE = 100
WALL_TARGET = 1.03  # with latency: bapp's work hidden behind the network
CPU_TARGET = 3.0  # without latency: what bapp spends beyond fetching and parsing

# The anchor: what any script must do at least — start Python, import httpx, walk the pages, parse the JSON.
ANCHOR = """
import json, sys, httpx
base, token, user = sys.argv[1:4]
params = {"user": user, "count": "100"}
items = 0
with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {token}"}) as client:
    while True:
        page = json.loads(client.get("/event_types", params=params).content)
        items += len(page["collection"])
        token_next = page["pagination"]["next_page_token"]
        if not token_next:
            break
        params = {**params, "page_token": token_next}
print(items)
"""


def _environment(database: Path, base_url: str) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith(("BAPP_", "CALENDLY_"))}
    env.update(
        {
            "BAPP_DATABASE_URL": f"sqlite:///{database}",
            "BAPP_CONFIG": str(database.with_suffix(".toml")),
            "CALENDLY_API_KEY": DEFAULT_TOKEN,
            "CALENDLY_API_BASE_URL": base_url,
        }
    )
    return env


def _run(command: list[str], env: dict[str, str] | None = None) -> tuple[float, float, str]:
    """(wall seconds, CPU seconds, stdout) of one whole child process; CPU is its user + system time."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    done = subprocess.run(command, env=env, capture_output=True, text=True, cwd=REPO, check=False)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command[:6])} failed ({done.returncode}): {done.stderr.strip()[-500:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu, done.stdout


def _bapp(*args: str, env: dict[str, str]) -> tuple[float, float, str]:
    return _run([sys.executable, "-m", "bapp_cli", *args], env=env)


def _anchor(base_url: str, expected: int) -> tuple[float, float]:
    wall, cpu, out = _run([sys.executable, "-c", ANCHOR, base_url, DEFAULT_TOKEN, DEFAULT_USER_URI])
    if int(out.strip() or 0) != expected:
        raise SystemExit(f"anchor fetched {out.strip()} items, expected {expected}")
    return wall, cpu


def _table_rows(database: Path) -> dict[str, dict[int, tuple[object, ...]]]:
    """Every row of every table a sync may write, bar the run log, keyed by rowid."""
    with sqlite3.connect(database) as connection:
        return {
            table: {row[0]: row[1:] for row in connection.execute(f"SELECT rowid, * FROM {table}")}
            for table in ("session_types", "session_type_pathways", "audit_entries")
        }


def _rows_written(
    before: dict[str, dict[int, tuple[object, ...]]], after: dict[str, dict[int, tuple[object, ...]]]
) -> int:
    """Rows inserted, changed or deleted between two snapshots."""
    written = 0
    for table, old in before.items():
        new = after[table]
        written += len(old.keys() ^ new.keys())
        written += sum(1 for key in old.keys() & new.keys() if old[key] != new[key])
    return written


def _summary(tsv: str) -> dict[str, str]:
    header, values = tsv.strip().splitlines()
    return dict(zip(header.split("\t"), values.split("\t"), strict=True))


def _median(samples: list[tuple[float, float]]) -> tuple[float, float]:
    return statistics.median(wall for wall, _ in samples), statistics.median(cpu for _, cpu in samples)


def _first_syncs(fake: FakeCalendly, scratch: Path, template: Path, types: int, repeat: int, label: str) -> tuple:
    """`repeat` first syncs, each on a fresh copy of the template, each beside an anchor run."""
    syncs: list[tuple[float, float]] = []
    anchors: list[tuple[float, float]] = []
    database = template
    for attempt in range(repeat):
        database = scratch / f"{label}{attempt}.db"
        database.write_bytes(template.read_bytes())
        anchors.append(_anchor(fake.base_url, types))
        wall, cpu, summary = _bapp(
            "calendly", "sync", "--user", DEFAULT_USER_URI, "--format", "tsv", env=_environment(database, fake.base_url)
        )
        if _summary(summary)["created"] != str(types):
            raise SystemExit(f"the first sync did not create {types} types: {summary}")
        syncs.append((wall, cpu))
    return _median(syncs), _median(anchors), database


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--types", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--latency", type=float, default=0.1, help="seconds per page for the first figure")
    options = parser.parse_args()
    types = options.types
    event_types = [make_event_type(i) for i in range(types)]
    with FakeCalendly(event_types=event_types) as fake, tempfile.TemporaryDirectory(prefix="bapp-bench-") as work:
        scratch = Path(work)
        fake.prebuild(user=DEFAULT_USER_URI, count=PAGE_SIZE)
        template = scratch / "template.db"
        _bapp("db", "upgrade", env=_environment(template, fake.base_url))
        # Warm the OS caches once so neither side pays a cold start, and compile bapp's bytecode as an
        # installation has it (pip compiles on install): with PYTHONDONTWRITEBYTECODE set, every run would
        # otherwise compile bapp's modules anew (about 0.2 s CPU) while httpx's arrive compiled.
        compile_bapp()
        _anchor(fake.base_url, types)
        fake.page_latency = options.latency
        (slow_wall, slow_cpu), (slow_anchor_wall, slow_anchor_cpu), _ = _first_syncs(
            fake, scratch, template, types, options.repeat, "slow"
        )
        fake.page_latency = 0.0
        fake.clear_requests()
        (fast_wall, fast_cpu), (fast_anchor_wall, fast_anchor_cpu), database = _first_syncs(
            fake, scratch, template, types, options.repeat, "fast"
        )
        pages = fake.count("/event_types") // (2 * options.repeat)  # each run: one anchor, one sync
        before = _table_rows(database)
        resync_wall, resync_cpu, summary = _bapp(
            "calendly", "sync", "--user", DEFAULT_USER_URI, "--format", "tsv", env=_environment(database, fake.base_url)
        )
        rows_written = _rows_written(before, _table_rows(database))

    print(
        f"P2 setup: {types} event types in {pages} pages of {PAGE_SIZE}; median of {options.repeat} runs each; "
        f"CPU = the child process's user + system seconds"
    )
    emit(
        f"P2 sync first run, {options.latency * 1000:g} ms/page, wall",
        bapp=slow_wall,
        anchor=slow_anchor_wall,
        target=WALL_TARGET,
        anchor_label="anchor (bare httpx fetch+parse, whole process)",
        note=f"CPU bapp {slow_cpu:.2f} s, anchor {slow_anchor_cpu:.2f} s",
    )
    emit(
        "P2 sync first run, no latency, CPU",
        bapp=fast_cpu,
        anchor=fast_anchor_cpu,
        target=CPU_TARGET,
        anchor_label="anchor CPU",
        note=f"wall bapp {fast_wall:.2f} s, anchor {fast_anchor_wall:.2f} s",
    )
    emit_count(
        "P2 no-change re-sync: catalogue rows written",
        value=rows_written,
        expected=0,
        note=f"wall {resync_wall:.2f} s, CPU {resync_cpu:.2f} s, {_summary(summary)['unchanged']} unchanged",
    )


if __name__ == "__main__":
    main()
