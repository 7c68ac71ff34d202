"""P2: `bapp calendly sync` of 10,000 event types in 100 pages from a local fake Calendly.

Prints the first sync's wall time (whole process), the anchor — a bare httpx script, also a whole process,
that fetches and JSON-parses the same 100 pages — and their ratio (target <= 2.0); then a no-change re-sync
and how many rows it wrote to the catalogue (target 0). Each process is timed as the median of a few runs
on a fresh database, so one scheduling hiccup on a busy machine does not decide the figure.

A last line prints the floor: bapp's fixed cost (the same command on an empty saved listing with --dry-run:
start-up, SQLAlchemy and the models, the engine, the lock, a transaction), plus everything the anchor does,
plus what validating the pages into bapp's API models costs beyond json.loads, as a ratio to the anchor —
the least any sync on this stack can reach before it writes a single type.

Run: .venv/bin/python bench/sync.py [--types N] [--repeat R]
"""

from __future__ import annotations

import argparse
import os
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

from report import emit, emit_count  # noqa: E402
from tests.fakes.calendly_server import (  # noqa: E402
    DEFAULT_TOKEN,
    DEFAULT_USER_URI,
    FakeCalendly,
    make_event_type,
)

PAGE_SIZE = 100
TARGET_RATIO = 2.0

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


def _bapp(*args: str, env: dict[str, str]) -> tuple[float, str]:
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "bapp_cli", *args], env=env, capture_output=True, text=True, cwd=REPO, check=False
    )
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"bapp {' '.join(args)} failed ({done.returncode}): {done.stderr.strip()}")
    return elapsed, done.stdout


def _anchor(base_url: str, expected: int) -> float:
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-c", ANCHOR, base_url, DEFAULT_TOKEN, DEFAULT_USER_URI],
        capture_output=True,
        text=True,
        check=False,
    )
    elapsed = time.perf_counter() - started
    if done.returncode != 0 or int(done.stdout.strip() or 0) != expected:
        raise SystemExit(f"anchor failed: {done.stderr.strip() or done.stdout.strip()}")
    return elapsed


def _validation_over_parse(base_url: str) -> float:
    """What validating the listing's pages into bapp's API models costs beyond json.loads (median of 3),
    measured in this process on the very pages the anchor fetches, with the collector paused as the client
    pauses it."""
    import gc
    import json

    import httpx

    from bapp_cli.calendly.models import EventType, Page

    bodies: list[bytes] = []
    params = {"user": DEFAULT_USER_URI, "count": str(PAGE_SIZE)}
    with httpx.Client(base_url=base_url, headers={"Authorization": f"Bearer {DEFAULT_TOKEN}"}) as client:
        while True:
            bodies.append(client.get("/event_types", params=params).content)
            token = json.loads(bodies[-1])["pagination"]["next_page_token"]
            if not token:
                break
            params = {**params, "page_token": token}
    page_model = Page[EventType]
    page_model.model_validate_json(bodies[0])  # build the validator before timing
    extra: list[float] = []
    gc.disable()
    try:
        for _ in range(3):
            started = time.perf_counter()
            for body in bodies:
                page_model.model_validate_json(body)
            validated = time.perf_counter() - started
            started = time.perf_counter()
            for body in bodies:
                json.loads(body)
            extra.append(validated - (time.perf_counter() - started))
    finally:
        gc.enable()
    return max(0.0, statistics.median(extra))


def _process_time(command: list[str]) -> float:
    started = time.perf_counter()
    subprocess.run(command, capture_output=True, check=True)
    return time.perf_counter() - started


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--types", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=3)
    options = parser.parse_args()
    types = options.types
    event_types = [make_event_type(i) for i in range(types)]
    with FakeCalendly(event_types=event_types) as fake, tempfile.TemporaryDirectory(prefix="bapp-bench-") as scratch:
        fake.prebuild(user=DEFAULT_USER_URI, count=PAGE_SIZE)
        template = Path(scratch) / "template.db"
        _bapp("db", "upgrade", env=_environment(template, fake.base_url))
        # Warm the OS caches (Python bytecode, libraries) once so neither side pays a cold start.
        _anchor(fake.base_url, types)

        sync_times: list[float] = []
        anchor_times: list[float] = []
        database = template
        for attempt in range(options.repeat):
            database = Path(scratch) / f"run{attempt}.db"
            database.write_bytes(template.read_bytes())
            env = _environment(database, fake.base_url)
            anchor_times.append(_anchor(fake.base_url, types))
            fake.clear_requests()
            elapsed, summary = _bapp("calendly", "sync", "--user", DEFAULT_USER_URI, "--format", "tsv", env=env)
            sync_times.append(elapsed)
            pages = fake.count("/event_types")
            if _summary(summary)["created"] != str(types):
                raise SystemExit(f"the first sync did not create {types} types: {summary}")

        env = _environment(database, fake.base_url)
        before = _table_rows(database)
        resync, summary = _bapp("calendly", "sync", "--user", DEFAULT_USER_URI, "--format", "tsv", env=env)
        report = _summary(summary)
        rows_written = _rows_written(before, _table_rows(database))

        # The floor (see the module docstring); a bare interpreter is subtracted once, as both pay it.
        # (on the migrated template, whose catalogue is empty: nothing to plan, as on a first sync)
        empty_catalogue = _environment(template, fake.base_url)
        empty = Path(scratch) / "empty-listing.json"
        empty.write_text('{"collection": [], "pagination": {"next_page": null, "next_page_token": null}}')
        fixed = statistics.median(
            _bapp("calendly", "sync", "--from-file", str(empty), "--allow-empty", "--dry-run", env=empty_catalogue)[0]
            for _ in range(options.repeat)
        )
        bare = statistics.median(_process_time([sys.executable, "-c", "pass"]) for _ in range(options.repeat))
        validation = _validation_over_parse(fake.base_url)

    print(f"P2 setup: {types} event types in {pages} pages of {PAGE_SIZE}; median of {options.repeat} runs each")
    emit(
        "P2 sync first run",
        bapp=statistics.median(sync_times),
        anchor=statistics.median(anchor_times),
        target=TARGET_RATIO,
        anchor_label="anchor (bare httpx fetch+parse, whole process)",
    )
    emit_count(
        "P2 no-change re-sync: catalogue rows written",
        value=rows_written,
        expected=0,
        note=f"{resync:.2f} s, {report['unchanged']} unchanged",
    )
    anchor = statistics.median(anchor_times)
    least = (fixed - bare + anchor + validation) / anchor
    print(
        f"P2 floor: bapp's fixed cost {fixed:.2f} s (empty --from-file, --dry-run) + the anchor's own work "
        f"({anchor:.2f} s, less a bare interpreter {bare:.2f} s) + validating the pages into bapp's models "
        f"rather than json.loads ({validation:.2f} s) = {least:.2f} × the anchor before one type is written"
        + ("" if least <= TARGET_RATIO else f" (the {TARGET_RATIO:g} × target is out of reach)"),
        flush=True,
    )


if __name__ == "__main__":
    main()
