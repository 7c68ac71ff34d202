"""P5: `sessions available` and `bookings create` at 1,000 session types and 100,000 bookings.

Each is timed as a whole process (median of several runs, interleaved with the anchor so machine noise
hits both alike) against the same command on a database with 10 session types and no bookings. Every
`bookings create` run books a fresh future slot of the busiest builder, so the overlap checks really
run against that builder's and client's history. The databases are SQLite, migrated through the real
Alembic chain and filled with bulk Core inserts. `bapp --version` is timed too, to show how much of each
command is start-up.

    python bench/bookings.py [--runs 7] [--rebuild]
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import functools
import json
import random
import sys
import time
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

from bapp_cli.services.instants import instant_text

sys.path.insert(0, str(Path(__file__).resolve().parent))
from report import compare, cpu_note, emit, isolated_environment

REPO = Path(__file__).resolve().parent.parent
WORK = REPO / ".bench" / "bookings"
TARGET = 1.2
BUILDERS = 50
CLIENTS = 20_000
CLIENT = "bench.client@bench.example"
BUSY_BUILDER = "builder00@bench.example"
QUESTIONS = [
    {"name": "What do you want to build?", "type": "text", "position": 0, "enabled": True, "required": False,
     "answer_choices": [], "include_other": False},
    {"name": "Tools", "type": "multi_select", "position": 1, "enabled": True, "required": False,
     "answer_choices": ["Python", "Zapier", "Excel"], "include_other": True},
]  # fmt: skip
FIRST_FREE_DAY = dt.datetime(2040, 1, 1, 9, tzinfo=dt.UTC)  # after every generated booking


def build(path: Path, session_types: int, bookings: int, *, seed: int = 5) -> None:
    from sqlalchemy import insert, select

    from bapp_cli.db import migration
    from bapp_cli.db.engine import make_engine
    from bapp_cli.db.models import (
        Booking,
        BuilderProfile,
        ClientProfile,
        Pathway,
        SessionType,
        SessionTypePathway,
        User,
    )

    if path.exists():
        path.unlink()
    rng = random.Random(seed)
    engine = make_engine(f"sqlite:///{path}", create_sqlite_file=True)
    migration.upgrade(engine)
    now = dt.datetime(2030, 1, 1, tzinfo=dt.UTC)
    clients = CLIENTS if bookings else 1
    with engine.begin() as connection:
        pathway_ids = list(connection.execute(select(Pathway.id)).scalars())
        users = [
            {"id": index + 1, "email": f"builder{index:02d}@bench.example", "name": f"Builder {index}"}
            for index in range(BUILDERS)
        ]
        users.append({"id": BUILDERS + 1, "email": CLIENT, "name": "Bench Client"})
        users += [
            {"id": BUILDERS + 2 + index, "email": f"client{index:05d}@bench.example", "name": f"Client {index}"}
            for index in range(clients - 1)
        ]
        for row in users:
            row.update(created_at=now, updated_at=now)
        connection.execute(insert(User), users)
        connection.execute(
            insert(BuilderProfile),
            [{"user_id": index + 1, "created_at": now, "updated_at": now} for index in range(BUILDERS)],
        )
        connection.execute(
            insert(ClientProfile), [{"user_id": BUILDERS + 1 + index, "created_at": now} for index in range(clients)]
        )
        categories = ("free", "pathway", "specialized")
        types: list[dict[str, Any]] = []
        links: list[dict[str, Any]] = []
        for index in range(session_types):
            category = categories[index % 3] if index else "free"  # id 1: the free session the bench books
            types.append(
                {
                    "id": index + 1,
                    "slug": f"session-{index:04d}",
                    "title": f"Session {index:04d}",
                    "description": "A benchmark session type with a realistic description. " * 3,
                    "duration_minutes": 30,
                    "duration_options": [30, 60],
                    "kind": "solo",
                    "category": category,
                    "requires_auth": category != "free",
                    "price": Decimal("0.00") if category == "free" else Decimal(rng.choice(("20.00", "45.00"))),
                    "currency": "GBP",
                    "display_order": rng.randrange(20),
                    "builder_id": 1 if index == 0 else rng.randrange(BUILDERS) + 1,
                    "is_secret": index % 50 == 49,
                    "custom_questions": QUESTIONS,
                    "created_at": now,
                    "updated_at": now,
                }
            )
            if category == "pathway":
                links.append({"session_type_id": index + 1, "pathway_id": pathway_ids[index % len(pathway_ids)]})
        connection.execute(insert(SessionType), types)
        if links:
            connection.execute(insert(SessionTypePathway), links)
        # Each builder's bookings sit on consecutive hourly slots (no overlaps), a third in the past;
        # clients are spread so the bench client has a history too.
        rows: list[dict[str, Any]] = []
        slot = dict.fromkeys(range(1, BUILDERS + 1), 0)
        for index in range(bookings):
            builder_id = index % BUILDERS + 1
            start = dt.datetime(2029, 1, 1, 8, tzinfo=dt.UTC) + dt.timedelta(hours=slot[builder_id])
            slot[builder_id] += 1
            status = rng.choice(("confirmed", "confirmed", "pending", "completed", "cancelled"))
            rows.append(
                {
                    "reference": f"BK-{index:08d}",
                    "client_id": BUILDERS + 1 + rng.randrange(clients),
                    "builder_id": builder_id,
                    "session_type_id": rng.randrange(session_types) + 1,
                    "start_time": start,
                    "end_time": start + dt.timedelta(minutes=30),
                    "client_timezone": "Europe/London",
                    "status": status,
                    "payment_status": "not_required",
                    "amount": Decimal("0.00"),
                    "currency": "GBP",
                    "custom_question_responses": [
                        {"question": "What do you want to build?", "answer": "an agent", "position": 0}
                    ],
                    "source": "import",
                    "created_at": now,
                    "updated_at": now,
                }
            )
            if len(rows) == 20_000:
                connection.execute(insert(Booking), rows)
                rows.clear()
        if rows:
            connection.execute(insert(Booking), rows)
    with engine.connect() as connection:
        connection.exec_driver_sql("ANALYZE")
        connection.commit()
    engine.dispose()


def database(name: str, session_types: int, bookings: int, rebuild: bool) -> Path:
    WORK.mkdir(parents=True, exist_ok=True)
    path = WORK / f"{name}.db"
    if rebuild or not path.exists():
        started = time.perf_counter()
        build(path, session_types, bookings)
        print(f"  built {path.name} in {time.perf_counter() - started:.1f} s", file=sys.stderr)
    return path


def bapp(path: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "bapp_cli", "--database-url", f"sqlite:///{path}", *args]


class SlotClock:
    """Hands out fresh future slots, after every booking already there, so each `bookings create` really books."""

    def __init__(self, path: Path) -> None:
        import sqlite3

        with contextlib.closing(sqlite3.connect(path)) as connection:
            latest = connection.execute("SELECT max(start_time) FROM bookings").fetchone()[0]
        self.next = FIRST_FREE_DAY
        if latest is not None:
            after = dt.datetime.fromisoformat(latest).replace(tzinfo=dt.UTC) + dt.timedelta(hours=2)
            self.next = max(self.next, after.replace(minute=0, second=0, microsecond=0))

    def create_command(self, path: Path) -> list[str]:
        start = self.next
        self.next += dt.timedelta(hours=2)
        return bapp(
            path, "bookings", "create", "--client", CLIENT, "--session", "1", "--start",
            instant_text(start), "--answer", "Tools=Python", "--answer", "Tools=Excel", "--json",
        )  # fmt: skip


def bookings_in(path: Path) -> int:
    import sqlite3

    with contextlib.closing(sqlite3.connect(path)) as connection:
        return int(connection.execute("SELECT count(*) FROM bookings").fetchone()[0])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--rebuild", action="store_true")
    options = parser.parse_args()
    big = database("big", 1_000, 100_000, options.rebuild)
    anchor = database("anchor", 10, 0, options.rebuild)
    env = isolated_environment(WORK)
    available = {path: bapp(path, "sessions", "available", "--client", CLIENT, "--json") for path in (big, anchor)}
    clocks = {big: SlotClock(big), anchor: SlotClock(anchor)}
    version = [sys.executable, "-m", "bapp_cli", "--version"]
    held = {path: bookings_in(path) for path in (big, anchor)}

    commands: dict[str, list[str] | Callable[[], list[str]]] = {}
    for path, label in ((big, "big"), (anchor, "anchor")):
        commands[f"avail-{label}"] = available[path]
        commands[f"create-{label}"] = functools.partial(clocks[path].create_command, path)
    commands["version"] = version
    listed: dict[str, int] = {}

    def check(name: str, output: Path) -> None:
        if name.startswith("avail-"):
            listed[name.removeprefix("avail-")] = len(json.loads(output.read_bytes()))
        elif name.startswith("create-"):
            assert json.loads(output.read_bytes())["existing"] is False

    # interleaved, each booking a new slot; CPU beside wall, which stays meaningful on a shared machine
    figures = compare(commands, env, options.runs, output=WORK / "out.json", check=check, cwd=REPO)
    start_up = figures["version"].wall
    print(
        f"  databases: {big.name} (1,000 types, {held[big]:,} bookings at the start; {listed['big']} types listed) | "
        f"{anchor.name} (10 types, {held[anchor]} bookings at the start; {listed['anchor']} listed) | "
        f"bapp --version {start_up:.3f} s (each run books a new slot; --rebuild starts afresh)"
    )
    results = [
        emit(
            "P5 sessions available",
            bapp=figures["avail-big"].wall,
            anchor=figures["avail-anchor"].wall,
            target=TARGET,
            anchor_label="10 types, 0 bookings",
            note=f"{cpu_note(figures['avail-big'], figures['avail-anchor'])}; "
            f"{figures['avail-big'].wall / start_up:.2f} x bapp --version; medians of {options.runs} interleaved runs",
        ),
        emit(
            "P5 bookings create",
            bapp=figures["create-big"].wall,
            anchor=figures["create-anchor"].wall,
            target=TARGET,
            anchor_label="10 types, 0 bookings",
            note=f"{cpu_note(figures['create-big'], figures['create-anchor'])}; "
            f"{figures['create-big'].wall / start_up:.2f} x bapp --version; medians of {options.runs} interleaved runs",
        ),
    ]
    return 0 if all(results) else 1


if __name__ == "__main__":
    raise SystemExit(main())
