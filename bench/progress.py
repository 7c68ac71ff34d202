"""P4: `bapp progress table` at 10,000 clients × 45 skills against the same command at 100 clients.

Builds SQLite databases (migrated through the real Alembic chain, then filled with bulk Core inserts):
3 pathways × 3 tiers × 5 skills = 45 skills (3 of them fundamental), every client with a progress row for
each skill (55 % completed, 15 % in progress), enrolled in one pathway (optionally a second), with the
badges their progress earned. Then it times the
whole `bapp progress table --format json` process (median of several runs) at both sizes and counts the
SQL statements the command issues at 100 and at 10,000 clients (they must be equal). The target is
the issue's "time added from 100 to 10,000 clients ≤ 0.5 × the 100-client run", i.e. a ratio ≤ 1.5.

    python bench/progress.py [--runs 7] [--rebuild] [--second-enrolments]
"""

from __future__ import annotations

import argparse
import datetime as dt
import random
import sys
import time
from pathlib import Path
from typing import Any

from report import compare, count_statements, cpu_note, emit, emit_count, isolated_environment

REPO = Path(__file__).resolve().parent.parent
WORK = REPO / ".bench" / "progress"
TARGET_RATIO = 1.5
SIZES = (100, 10_000)
SKILLS_PER_TIER = 5
FUNDAMENTAL_SKILLS = 3
STATUS_WEIGHTS = (("completed", 55), ("in_progress", 15), ("not_started", 30))


def build(url: str, clients: int, *, second_enrolments: bool = False, seed: int = 4) -> None:
    """A database (empty, at `url`) with `clients` clients × 45 skills of progress, built with bulk Core inserts.

    Each client is enrolled in one pathway (one row of the table per client); with `second_enrolments`
    every other client also follows a second pathway (1.5 rows per client).
    """
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

    rng = random.Random(seed)
    engine = make_engine(url, create_sqlite_file=True)
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
            if second_enrolments and index % 2 == 0:
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


def database(clients: int, rebuild: bool, second_enrolments: bool) -> Path:
    WORK.mkdir(parents=True, exist_ok=True)
    path = WORK / f"progress-{clients}{'-x1.5' if second_enrolments else ''}.db"
    if rebuild or not path.exists():
        started = time.perf_counter()
        path.unlink(missing_ok=True)
        build(f"sqlite:///{path}", clients, second_enrolments=second_enrolments)
        print(f"  built {path.name} in {time.perf_counter() - started:.1f} s", file=sys.stderr)
    return path


def command(path: Path) -> list[str]:
    return [sys.executable, "-m", "bapp_cli", "--database-url", f"sqlite:///{path}", "progress", "table", "-f", "json"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--rebuild", action="store_true")
    parser.add_argument(
        "--second-enrolments", action="store_true", help="enrol every other client in a second pathway too"
    )
    options = parser.parse_args()
    paths = {size: database(size, options.rebuild, options.second_enrolments) for size in SIZES}

    env = isolated_environment(WORK)
    rows: dict[str, int] = {}

    def count_rows(name: str, output: Path) -> None:
        rows[name] = output.read_bytes().count(b'"client":')

    # interleaved, CPU beside wall: the CPU ratio stays meaningful when other work shares the cores
    figures = compare(
        {"10k": command(paths[10_000]), "100": command(paths[100])},
        env,
        options.runs,
        output=WORK / "out.json",
        check=count_rows,
        cwd=REPO,
    )
    met = emit(
        "P4 progress table",
        bapp=figures["10k"].wall,
        anchor=figures["100"].wall,
        target=TARGET_RATIO,
        anchor_label="same @100 clients",
        note=f"{rows['10k']} vs {rows['100']} rows; {cpu_note(figures['10k'], figures['100'])}; "
        f"medians of {options.runs} interleaved runs",
    )
    at_100, at_10k = (count_statements(command(paths[size])[3:], env) for size in (100, 10_000))
    met &= emit_count("P4 progress table SQL statements", value=at_10k, expected=at_100, note="target = @100 clients")
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
