"""P4: `bapp progress table` at 10,000 clients × 45 skills against the same command at 100 clients.

Builds SQLite databases (migrated through the real Alembic chain, then filled with bulk Core inserts):
3 pathways × 3 tiers × 5 skills = 45 skills (3 of them fundamental), every client with a progress row for
each skill, enrolled in one or two pathways, with the badges their progress earned. Then it times the
whole `bapp progress table --format json` process (median of several runs) at both sizes and counts the
SQL statements the command issues at 1,000 and at 10,000 clients (they must be equal).

    python bench/progress.py [--runs 5] [--rebuild]
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import io
import os
import random
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
WORK = REPO / ".bench" / "progress"
TARGET_RATIO = 1.5
SIZES = (100, 1_000, 10_000)
SKILLS_PER_TIER = 5
FUNDAMENTAL_SKILLS = 3
STATUS_WEIGHTS = (("completed", 55), ("in_progress", 15), ("not_started", 30))


def build(path: Path, clients: int, *, seed: int = 4) -> None:
    """A database with `clients` clients × 45 skills of progress, built with bulk Core inserts."""
    from sqlalchemy import insert, select

    from bapp_cli.db import migration
    from bapp_cli.db.engine import make_engine
    from bapp_cli.db.models import (
        Badge,
        BuilderProfile,
        ClientProfile,
        Enrolment,
        Pathway,
        PathwayTier,
        Skill,
        SkillPathwayLink,
        User,
        UserSkillProgress,
    )

    if path.exists():
        path.unlink()
    rng = random.Random(seed)
    engine = make_engine(f"sqlite:///{path}", create_sqlite_file=True)
    migration.upgrade(engine)
    now = dt.datetime(2030, 6, 1, 12, tzinfo=dt.UTC)
    with engine.begin() as connection:
        pathways = connection.execute(select(Pathway.id, Pathway.slug).order_by(Pathway.position)).all()
        tiers = connection.execute(select(PathwayTier.pathway_id, PathwayTier.tier)).all()
        skills: list[dict[str, Any]] = []
        links: list[dict[str, Any]] = []
        for pathway_id, slug in pathways:
            for _, tier in sorted(row for row in tiers if row[0] == pathway_id):
                for index in range(SKILLS_PER_TIER):
                    skill_id = len(skills) + 1
                    skills.append(
                        {
                            "id": skill_id,
                            "slug": f"{slug}-t{tier}-s{index}",
                            "name": f"{slug.title()} tier {tier} skill {index}",
                            "domain": slug,
                            "is_fundamental": skill_id <= FUNDAMENTAL_SKILLS,
                            "archived": False,
                            "created_at": now,
                            "updated_at": now,
                        }
                    )
                    links.append({"skill_id": skill_id, "pathway_id": pathway_id, "tier": tier})
        connection.execute(insert(Skill), skills)
        connection.execute(insert(SkillPathwayLink), links)

        builders = 20
        users = [
            {"id": index + 1, "email": f"builder{index}@bench.example", "name": f"Builder {index}", "created_at": now}
            for index in range(builders)
        ]
        users += [
            {
                "id": builders + index + 1,
                "email": f"client{index:06d}@bench.example",
                "name": f"Client {index}",
                "created_at": now,
            }
            for index in range(clients)
        ]
        for row in users:
            row["updated_at"] = now
        connection.execute(insert(User), users)
        connection.execute(
            insert(BuilderProfile),
            [{"user_id": index + 1, "created_at": now, "updated_at": now} for index in range(builders)],
        )
        connection.execute(
            insert(ClientProfile), [{"user_id": builders + index + 1, "created_at": now} for index in range(clients)]
        )

        skill_tier = {link["skill_id"]: (link["pathway_id"], link["tier"]) for link in links}
        statuses = [status for status, _ in STATUS_WEIGHTS]
        weights = [weight for _, weight in STATUS_WEIGHTS]
        progress: list[dict[str, Any]] = []
        enrolments: list[dict[str, Any]] = []
        badges: list[dict[str, Any]] = []
        for index in range(clients):
            client_id = builders + index + 1
            done: dict[tuple[int, int], int] = {}
            for skill in skills:
                status = rng.choices(statuses, weights)[0]
                touched = now - dt.timedelta(minutes=rng.randrange(90 * 24 * 60))
                progress.append(
                    {
                        "client_id": client_id,
                        "skill_id": skill["id"],
                        "status": status,
                        "started_at": touched if status != "not_started" else None,
                        "completed_at": touched if status == "completed" else None,
                        "completion_method": "manual" if status == "completed" else None,
                        "attempts": 1 if status == "completed" else 0,
                        "created_at": touched,
                        "updated_at": touched,
                    }
                )
                if status == "completed":
                    key = skill_tier[skill["id"]]
                    done[key] = done.get(key, 0) + 1
            first = pathways[index % len(pathways)][0]
            enrolled = [first]
            if index % 2 == 0:
                enrolled.append(pathways[(index + 1) % len(pathways)][0])
            for pathway_id in enrolled:
                enrolments.append(
                    {
                        "client_id": client_id,
                        "pathway_id": pathway_id,
                        "status": rng.choice(("active", "active", "active", "paused")),
                        "start_date": (now - dt.timedelta(days=120)).date(),
                        "builder_id": rng.randrange(builders) + 1,
                        "created_at": now,
                        "updated_at": now,
                    }
                )
            slugs = dict(pathways)
            for (pathway_id, tier), count in done.items():
                if count == SKILLS_PER_TIER:
                    badges.append(
                        {"client_id": client_id, "key": f"tier:{slugs[pathway_id]}:{tier}", "awarded_at": now}
                    )
            if len(progress) >= 50_000:
                connection.execute(insert(UserSkillProgress), progress)
                progress.clear()
        if progress:
            connection.execute(insert(UserSkillProgress), progress)
        connection.execute(insert(Enrolment), enrolments)
        if badges:
            connection.execute(insert(Badge), badges)
    with engine.connect() as connection:
        connection.exec_driver_sql("ANALYZE")
        connection.commit()
    engine.dispose()


def database(clients: int, rebuild: bool) -> Path:
    WORK.mkdir(parents=True, exist_ok=True)
    path = WORK / f"progress-{clients}.db"
    if rebuild or not path.exists():
        started = time.perf_counter()
        build(path, clients)
        print(f"  built {path.name} in {time.perf_counter() - started:.1f} s", file=sys.stderr)
    return path


def command(path: Path) -> list[str]:
    return [sys.executable, "-m", "bapp_cli", "--database-url", f"sqlite:///{path}", "progress", "table", "-f", "json"]


def environment() -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("BAPP_")}
    env["BAPP_CONFIG"] = str(WORK / "absent-config.toml")
    return env


def time_process(path: Path, runs: int) -> tuple[float, int]:
    """Median wall time of the whole process, and the number of rows it printed."""
    env = environment()
    timings = []
    rows = 0
    subprocess.run(command(path), env=env, capture_output=True, check=True, cwd=REPO)  # warm the page cache
    for _ in range(runs):
        started = time.perf_counter()
        completed = subprocess.run(command(path), env=env, capture_output=True, check=True, cwd=REPO)
        timings.append(time.perf_counter() - started)
        rows = completed.stdout.count(b'"client":')
    return statistics.median(timings), rows


def count_statements(path: Path) -> int:
    """SQL statements `progress table` sends, counted in-process with a before_cursor_execute listener."""
    from sqlalchemy import Engine, event

    from bapp_cli.cli.app import main

    statements: list[str] = []

    def counter(*args: Any) -> None:
        statements.append(args[2])

    event.listen(Engine, "before_cursor_execute", counter)
    saved = dict(os.environ)
    os.environ.clear()
    os.environ.update(environment())
    try:
        with contextlib.redirect_stdout(io.StringIO()), contextlib.suppress(SystemExit):
            main(["--database-url", f"sqlite:///{path}", "progress", "table", "--format", "json"])
    finally:
        event.remove(Engine, "before_cursor_execute", counter)
        os.environ.clear()
        os.environ.update(saved)
    return len(statements)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--rebuild", action="store_true")
    options = parser.parse_args()
    paths = {size: database(size, options.rebuild) for size in SIZES}

    big, big_rows = time_process(paths[10_000], options.runs)
    anchor, anchor_rows = time_process(paths[100], options.runs)
    ratio = big / anchor
    verdict = "MET" if ratio <= TARGET_RATIO else "NOT MET"
    print(
        f"P4 progress table: {big:.2f} s @10k clients ({big_rows} rows) | anchor {anchor:.2f} s @100 clients "
        f"({anchor_rows} rows) | ratio {ratio:.2f} (target <= {TARGET_RATIO}) {verdict}"
    )
    at_1k = count_statements(paths[1_000])
    at_10k = count_statements(paths[10_000])
    same = "MET" if at_1k == at_10k else "NOT MET"
    print(f"P4 progress table SQL statements: {at_1k} @1k clients | {at_10k} @10k clients (must be equal) {same}")
    return 0 if verdict == same == "MET" else 1


if __name__ == "__main__":
    sys.exit(main())
