"""P4 for the dashboard: `reports pathway-analytics` and `reports bookings-by-pathway` at 10,000 clients.

The databases are bench/progress.py's (10,000 clients × 45 skills of progress, built with bulk Core inserts
through the real Alembic chain; here every other client follows a second pathway), plus what analytics
needs on top: a tenth of the enrolments completed, 20 session types and 10 bookings per client (100,000 at
10,000 clients; a quarter without a pathway, every status). Each command runs as a whole process
(`--format json`, median of interleaved runs) at 10,000 clients against the same command at 100 clients:
the ratio must be ≤ 1.5 (the time added from 100 to 10,000 clients ≤ 0.5 × the 100-client run). The SQL
statements each command sends are counted in-process at 100 and at 10,000 clients: they must be equal.

    python bench/reports.py [--runs 7] [--rebuild]
"""

from __future__ import annotations

import argparse
import datetime as dt
import random
import sys
import time
from pathlib import Path
from typing import Any

from progress import build as build_progress  # bench/progress.py: the same clients × skills database
from report import compare, count_statements, cpu_note, emit, emit_count, isolated_environment

REPO = Path(__file__).resolve().parent.parent
WORK = REPO / ".bench" / "reports"
TARGET_RATIO = 1.5
SIZES = (100, 10_000)
BOOKINGS_PER_CLIENT = 10
SESSION_TYPES = 20
BOOKING_STATUS_WEIGHTS = (("confirmed", 45), ("completed", 25), ("pending", 10), ("cancelled", 15), ("no_show", 5))
COMMANDS = {
    "pathway-analytics": ["reports", "pathway-analytics", "--format", "json"],
    "bookings-by-pathway": ["reports", "bookings-by-pathway", "--format", "json"],
}


def build(path: Path, clients: int, *, seed: int = 6) -> None:
    """bench/progress.py's database, then completed enrolments, session types and bookings."""
    from sqlalchemy import func, insert, select, update

    from bapp_cli.db.engine import make_engine
    from bapp_cli.db.models import Booking, ClientProfile, Enrolment, Pathway, SessionType, SessionTypePathway

    build_progress(f"sqlite:///{path}", clients, second_enrolments=True)
    rng = random.Random(seed)
    engine = make_engine(f"sqlite:///{path}")
    now = dt.datetime(2030, 6, 1, 12, tzinfo=dt.UTC)
    with engine.begin() as connection:
        # every tenth enrolment completed, 30 to 120 days after it started
        for days in (30, 60, 90, 120):
            connection.execute(
                update(Enrolment)
                .where(Enrolment.id % 40 == days // 30)
                .values(status="completed", completed_at=now - dt.timedelta(days=120 - days))
            )
        pathway_ids = list(connection.scalars(select(Pathway.id).order_by(Pathway.position)))
        builders = int(connection.scalar(select(func.min(ClientProfile.user_id))) or 1) - 1
        client_ids = list(connection.scalars(select(ClientProfile.user_id).order_by(ClientProfile.user_id)))
        session_types = []
        for index in range(SESSION_TYPES):
            category = ("free", "pathway", "pathway", "specialized")[index % 4]
            session_types.append(
                {
                    "id": index + 1,
                    "slug": f"bench-session-{index}",
                    "title": f"Bench session {index}",
                    "duration_minutes": 30,
                    "category": category,
                    "requires_auth": category != "free",
                    "builder_id": index % builders + 1,
                    "custom_questions": [],
                    "created_at": now,
                    "updated_at": now,
                }
            )
        connection.execute(insert(SessionType), session_types)
        connection.execute(
            insert(SessionTypePathway),
            [
                {"session_type_id": row["id"], "pathway_id": pathway_ids[row["id"] % len(pathway_ids)]}
                for row in session_types
                if row["category"] == "pathway"
            ],
        )
        statuses = [status for status, _ in BOOKING_STATUS_WEIGHTS]
        weights = [weight for _, weight in BOOKING_STATUS_WEIGHTS]
        start = dt.datetime(2030, 1, 1, tzinfo=dt.UTC)
        bookings: list[dict[str, Any]] = []
        for number in range(clients * BOOKINGS_PER_CLIENT):
            session_type = session_types[rng.randrange(SESSION_TYPES)]
            begins = start + dt.timedelta(minutes=30 * rng.randrange(365 * 48))
            status = rng.choices(statuses, weights)[0]
            bookings.append(
                {
                    "reference": f"BK-{number:08d}",
                    "client_id": client_ids[number % len(client_ids)],
                    "builder_id": session_type["builder_id"],
                    "session_type_id": session_type["id"],
                    "start_time": begins,
                    "end_time": begins + dt.timedelta(minutes=30),
                    "status": status,
                    "payment_status": "not_required",
                    "pathway_id": None if rng.random() < 0.25 else rng.choice(pathway_ids),
                    "custom_question_responses": [],
                    "source": "import",
                    "created_at": now,
                    "updated_at": now,
                }
            )
            if len(bookings) >= 20_000:
                connection.execute(insert(Booking), bookings)
                bookings.clear()
        if bookings:
            connection.execute(insert(Booking), bookings)
    with engine.connect() as connection:
        connection.exec_driver_sql("ANALYZE")
        connection.commit()
    engine.dispose()


def database(clients: int, rebuild: bool) -> Path:
    WORK.mkdir(parents=True, exist_ok=True)
    path = WORK / f"reports-{clients}.db"
    if rebuild or not path.exists():
        started = time.perf_counter()
        build(path, clients)
        print(f"  built {path.name} in {time.perf_counter() - started:.1f} s", file=sys.stderr)
    return path


def command(path: Path, arguments: list[str]) -> list[str]:
    return [sys.executable, "-m", "bapp_cli", "--database-url", f"sqlite:///{path}", *arguments]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--rebuild", action="store_true")
    options = parser.parse_args()
    paths = {size: database(size, options.rebuild) for size in SIZES}
    met = True
    env = isolated_environment(WORK)
    for name, arguments in COMMANDS.items():
        big, anchor = command(paths[10_000], arguments), command(paths[100], arguments)
        figures = compare({"10k": big, "100": anchor}, env, options.runs, output=WORK / "out", cwd=REPO)
        met &= emit(
            f"P4 reports {name} @10k clients",
            bapp=figures["10k"].wall,
            anchor=figures["100"].wall,
            target=TARGET_RATIO,
            anchor_label="same @100 clients",
            note=f"{10_000 * BOOKINGS_PER_CLIENT:,} vs {100 * BOOKINGS_PER_CLIENT:,} bookings; "
            f"{cpu_note(figures['10k'], figures['100'])}; medians of {options.runs} interleaved runs",
        )
        at_100 = count_statements(["--database-url", f"sqlite:///{paths[100]}", *arguments], env)
        at_10k = count_statements(["--database-url", f"sqlite:///{paths[10_000]}", *arguments], env)
        met &= emit_count(
            f"P4 reports {name} SQL statements @10k clients",
            value=at_10k,
            expected=at_100,
            note="target = @100 clients",
        )
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
