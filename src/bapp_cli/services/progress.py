"""Completion tracking and badges, and the progress table.

Everything is computed from the progress rows and the catalogue's links, never stored as counters:
- a tier is complete when the client has completed every (non-archived) skill linked to it; a tier with
  no skills is never complete; a pathway is complete when it has tiers and all of them are;
- a skill linked to several pathways counts in each of them;
- percentages are completed ÷ linked skills, rounded down to a whole percent (0 when nothing is linked);
- badges (`tier:<pathway>:<n>`, `pathway:<pathway>`, `fundamentals`) are awarded once, at the moment the
  criteria are met, and are permanent: a reset or a newly linked skill never takes one away.

The catalogue, one client's progress and badges are read in plain SQL (services.plain_reads): the same
reads serve `clients show` and, on their session's connection, the ORM commands (re-exported here). The
progress table is one aggregate query (plus a constant number of catalogue queries) whatever the number of
clients, and yields its rows as the database streams them.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Collection, Iterator, Sequence
from typing import Any

from sqlalchemy import (
    ScalarSelect,
    Select,
    SQLColumnExpression,
    and_,
    case,
    func,
    insert,
    literal,
    literal_column,
    null,
    or_,
    select,
)
from sqlalchemy.orm import Session

from bapp_cli.db.audit import apply_changes, record_audit, record_audits
from bapp_cli.db.batches import BATCH_SIZE
from bapp_cli.db.dbapi import instant_sql
from bapp_cli.db.engine import command_zone
from bapp_cli.db.locks import COMPLETION_RULES, lock_keys
from bapp_cli.db.models import Badge, Enrolment, Pathway, Skill, SkillPathwayLink, User, UserSkillProgress
from bapp_cli.services.enrolment import CompletionOutcome, enrolment_day
from bapp_cli.services.listing import ALL, Page
from bapp_cli.services.pathways import get_pathway
from bapp_cli.services.people import get_builder
from bapp_cli.services.plain_reads import FUNDAMENTALS_KEY as FUNDAMENTALS_KEY
from bapp_cli.services.plain_reads import Catalogue, instant_value
from bapp_cli.services.plain_reads import check_status as check_status
from bapp_cli.services.plain_reads import load_catalogue as load_catalogue
from bapp_cli.services.plain_reads import pathway_badge_key as pathway_badge_key
from bapp_cli.services.plain_reads import tier_badge_key as tier_badge_key
from bapp_cli.services.transfer.store import rows_keyed

TABLE_TIERS = (1, 2, 3)
TIER_PERCENTS = tuple(f"tier{number}_percent" for number in TABLE_TIERS)
PROGRESS_TABLE_COLUMNS = ("client", "pathway", "status", *TIER_PERCENTS, "percent", "badges", "last_activity")
# client id → a badge's key (or a completed pathway's id) → when its criteria were met
Moments = dict[int, dict[Any, dt.datetime]]


# -- completion and badges ----------------------------------------------------------------------------


def record_completions(
    session: Session,
    *,
    now: dt.datetime,
    pathway_ids: Collection[int],
    fundamentals: bool = False,
    client_ids: Collection[int] | None = None,
    dated: bool = False,
) -> dict[int, CompletionOutcome]:
    """Award the badges whose criteria are now met and complete the enrolments of completed pathways.

    Scope: the pathways (and fundamentals) a change touched — the criteria are checked "at the moment
    they are met", so an unrelated change never completes an enrolment an admin deliberately reopened.
    `client_ids=None` checks every client (catalogue changes such as archiving a skill). Already held
    badges are skipped; a badge is never removed. Each is awarded, and an enrolment completed, `now` —
    or, `dated` (a backfill of history: `import progress`), when the data met it: the latest completion
    of the skills it counts (never after `now`), so the pathway analytics' days to complete stay true.
    """
    scope = sorted(set(pathway_ids))
    clients = None if client_ids is None else sorted(set(client_ids))
    if (not scope and not fundamentals) or clients == []:
        return {}
    lock_keys(session, COMPLETION_RULES)  # every door's rules take turns: each sees the change of the one before
    catalogue = load_catalogue(session)
    due: Moments = defaultdict(dict)
    completed_pathways: Moments = defaultdict(dict)

    if scope:
        done: dict[int, dict[tuple[int, int], tuple[int, dt.datetime]]] = defaultdict(dict)
        query = _completed_counts(SkillPathwayLink.pathway_id, SkillPathwayLink.tier, dated=dated)
        query = query.join(SkillPathwayLink, SkillPathwayLink.skill_id == UserSkillProgress.skill_id)
        query = query.where(SkillPathwayLink.pathway_id.in_(scope))
        for client_id, pathway_id, tier, count, latest in rows_keyed(session, query, clients):
            done[client_id][(pathway_id, tier)] = count, min(latest or now, now)
        infos = [catalogue.pathways[pathway_id] for pathway_id in scope if pathway_id in catalogue.pathways]
        for client_id, counts in done.items():
            for info in infos:
                # a tier with no skills is never complete
                complete = {
                    tier_badge_key(info.slug, tier): counts[(info.id, tier)][1]
                    for tier in info.tiers
                    if 0 < info.totals.get(tier, 0) == counts.get((info.id, tier), (0,))[0]
                }
                due[client_id].update(complete)
                if info.tiers and len(complete) == len(info.tiers):
                    when = completed_pathways[client_id][info.id] = max(complete.values())
                    due[client_id][pathway_badge_key(info.slug)] = when

    if fundamentals and catalogue.fundamentals > 0:
        everyone_done = _completed_counts(dated=dated).where(Skill.is_fundamental.is_(True))
        everyone_done = everyone_done.having(func.count() == catalogue.fundamentals)
        for client_id, _, latest in rows_keyed(session, everyone_done, clients):
            due[client_id][FUNDAMENTALS_KEY] = min(latest or now, now)

    if not any(due.values()):  # the loop above lists every client counted, due a badge or not (`_award` skips them)
        return {}
    awarded = _award(session, due)
    # the audit rows name only the clients they are about (most clients due a badge already hold it): one
    # lookup for those awarded one and those whose pathway may complete
    emails = dict(rows_keyed(session, select(User.id, User.email), set(awarded) | set(completed_pathways)))
    audited = [
        (f"{emails[client]}:{key}", {"awarded_at": due[client][key]}) for client in awarded for key in awarded[client]
    ]
    record_audits(session, "badge", audited)
    finished = _complete_enrolments(session, completed_pathways, catalogue, emails, now=now)
    outcomes: dict[int, CompletionOutcome] = {}
    for client_id in set(awarded) | set(finished):
        keys = sorted(awarded.get(client_id, []), key=catalogue.badge_order)
        slugs = sorted(finished.get(client_id, []), key=lambda slug: catalogue.badge_order(pathway_badge_key(slug)))
        outcomes[client_id] = CompletionOutcome(keys, slugs, {key: catalogue.badge_name(key) for key in keys})
    return outcomes


def _completed_counts(*columns: SQLColumnExpression[Any], dated: bool = False) -> Select[Any]:
    """Per client and `columns`, how many non-archived skills the client has completed, and (`dated`) the
    latest completion among them, else NULL: a change made now reads no stored times (nor fails on one)."""
    latest = func.max(UserSkillProgress.completed_at) if dated else null()
    query = select(UserSkillProgress.client_id, *columns, func.count(), latest)
    query = query.join(Skill, Skill.id == UserSkillProgress.skill_id)
    query = query.where(UserSkillProgress.status == "completed", Skill.archived.is_(False))
    return query.group_by(UserSkillProgress.client_id, *columns)


def _award(session: Session, due: Moments) -> dict[int, list[str]]:
    """Insert the badges not yet held, each awarded when `due` says; returns the newly awarded keys per client."""
    due_keys = sorted({key for keys in due.values() for key in keys})
    wanted = select(Badge.client_id, Badge.key).where(Badge.key.in_(due_keys))
    held = {(client_id, key) for client_id, key in rows_keyed(session, wanted, due)}
    fresh = {client_id: [key for key in keys if (client_id, key) not in held] for client_id, keys in due.items()}
    awarded = {client_id: keys for client_id, keys in fresh.items() if keys}
    # set-based: a catalogue change can award thousands at once, in one INSERT (and one for their audit rows)
    rows = [
        {"client_id": client_id, "key": key, "awarded_at": due[client_id][key]}
        for client_id, keys in awarded.items()
        for key in keys
    ]
    if rows:
        session.execute(insert(Badge), rows)
    return awarded


def _complete_enrolments(
    session: Session, done: Moments, catalogue: Catalogue, emails: dict[int, str], *, now: dt.datetime
) -> dict[int, list[str]]:
    """A completed pathway completes the client's enrolment in it, with the completion time `done` gives (no
    clients, no statement); a start date is a day in the command's zone (--timezone)."""
    zone = command_zone(session)  # the start day's midnight there; its days are enrolment_day's
    pathway_ids = sorted({pathway_id for ids in done.values() for pathway_id in ids})
    finished: dict[int, list[str]] = defaultdict(list)
    still_open = (Enrolment.pathway_id.in_(pathway_ids), Enrolment.status != "completed")
    open_enrolments = select(Enrolment.client_id, Enrolment).where(*still_open)
    # read whole (a list) before the first change: the changes write (audit rows) on the same connection
    for _, enrolment in rows_keyed(session, open_enrolments, done):
        if (when := done[enrolment.client_id].get(enrolment.pathway_id)) is None:
            continue
        slug = catalogue.pathways[enrolment.pathway_id].slug
        # never before the enrolment's start: a backfill may enrol the client today (or from a later day) for
        # skills completed long before, and the enrolment then completes as it starts, not ahead of it
        at = min(max(when, dt.datetime.combine(enrolment.start_date, dt.time(), zone)), now)
        # a start still ahead cannot hold (nor can this door refuse, as `clients set-status` does): the enrolment
        # starts the day it completes, audited with both dates, so it never ends before it began. The day is the
        # user's at every door: east of UTC their today, an enrolment's default start, is UTC's tomorrow
        day = enrolment_day(session, at)
        changes = apply_changes(enrolment, {"status": "completed", "start_date": min(enrolment.start_date, day)})
        enrolment.completed_at, enrolment.updated_at = at, now
        record_audit(session, "enrolment", f"{emails[enrolment.client_id]}:{slug}", changes)
        finished[enrolment.client_id].append(slug)
    session.flush()
    return finished


# -- per-enrolment counts (the progress table and the reports) ---------------------------------------


def select_enrolment_counts(
    *columns: SQLColumnExpression[Any], tiers: Sequence[int] = (), linked: bool = False, last_activity: bool = False
) -> Select[Any]:
    """The one definition of an enrolment's skill counts: a GROUP BY to filter (on Enrolment) and wrap.

    One row per enrolment: `enrolment_id`, then `columns` (anything that depends on the enrolment: the
    query is grouped by its primary key, which both backends accept), then the completed skills among the
    non-archived skills linked to the enrolment's pathway — `tier<n>` for each of `tiers`, then `done` —
    then, if asked, `linked` (the non-archived skills linked to the pathway) and `last_activity` (the latest
    change to one of those skills' progress rows). Only what a caller asks for is aggregated: the aggregate
    is the hot loop (one step per enrolment × linked skill).
    """
    active_links = (
        select(SkillPathwayLink.skill_id, SkillPathwayLink.pathway_id, SkillPathwayLink.tier)
        .join(Skill, Skill.id == SkillPathwayLink.skill_id)
        .where(Skill.archived.is_(False))
        .subquery("active_links")
    )
    progress = UserSkillProgress.__table__.alias("progress")
    completed = progress.c.status == "completed"
    # counted with FILTER rather than filtered in the join: the join then probes the (client, skill) unique
    # index; FILTER rather than sum(CASE …): SQLite steps an aggregate only for the rows it counts. A tier's test
    # puts the tier first: a whole number that rules out most rows before their status text is compared
    # (SQLite tests left to right: ≈4 % fewer instructions for the whole P4 query)
    counters: list[SQLColumnExpression[Any]] = [
        func.count().filter(active_links.c.tier == number, completed).label(f"tier{number}") for number in tiers
    ]
    counters.append(func.count().filter(completed).label("done"))
    if linked:
        counters.append(func.count(active_links.c.skill_id).label("linked"))
    if last_activity:
        counters.append(func.max(progress.c.updated_at).label("last_activity"))
    # Grouped on the enrolment id alone (names are joined by the caller, outside): one key lets PostgreSQL
    # hash-aggregate in memory instead of sorting every (enrolment × skill) row to disk, and its lower
    # cost estimate keeps the JIT compiler (≈0.3 s here) out of a sub-second query. Each enrolment probes
    # its pathway's links and the client's progress rows through the (client, skill) unique index, so on
    # SQLite the work grows with the rows counted, not with all progress.
    return (
        select(Enrolment.id.label("enrolment_id"), *columns, *counters)
        .select_from(Enrolment)
        .outerjoin(active_links, active_links.c.pathway_id == Enrolment.pathway_id)
        .outerjoin(
            progress, and_(progress.c.client_id == Enrolment.client_id, progress.c.skill_id == active_links.c.skill_id)
        )
        .group_by(Enrolment.id)
    )


def progress_records(
    session: Session,
    *,
    columns: Sequence[str] = PROGRESS_TABLE_COLUMNS,
    pathway: str | None = None,
    builder: str | None = None,
    status: str | None = None,
    page: Page = ALL,
) -> Iterator[dict[str, Any]]:
    """`progress table`: one record (`columns`) per enrolment, ordered by pathway then client, streamed from one
    statement (plus the catalogue's). Every value is written by the database, so a row costs Python nothing but its
    dict: the client, pathway slug and status; for each of TABLE_TIERS (`tier<n>_`) and for the whole pathway (no
    prefix) the completed skills, the linked ones (`total`) and the `percent` of the two (a tier the pathway lacks:
    NULL); the pathway's badges held; the last activity as bapp's instant text. `reports client-progress` asks for the
    counts beside the percentages. `page.search` looks in the client's e-mail and name and the pathway slug. Filters are
    checked before it runs."""
    wanted = {
        Enrolment.status: check_status(status) if status is not None else None,
        Enrolment.pathway_id: get_pathway(session, pathway).id if pathway is not None else None,
        Enrolment.builder_id: get_builder(session, builder)[0].id if builder is not None else None,
    }
    infos = load_catalogue(session).pathways.values()
    per_enrolment = select_enrolment_counts(tiers=TABLE_TIERS, last_activity=True)
    per_enrolment = per_enrolment.where(*(column == value for column, value in wanted.items() if value is not None))
    aggregated = per_enrolment.subquery("per_enrolment")
    last = instant_sql(session.get_bind().dialect.name, f"{aggregated.name}.last_activity")
    named: dict[str, Any] = {"client": User.email, "pathway": Pathway.slug, "status": Enrolment.status}
    parts = {
        f"tier{n}_": (aggregated.c[f"tier{n}"], {info.id: info.totals.get(n, 0) for info in infos if n in info.tiers})
        for n in TABLE_TIERS
    }
    parts[""] = (aggregated.c.done, {info.id: info.total for info in infos})
    for prefix, (done, totals) in parts.items():
        # a pathway without the tier has no total: NULL, all three columns (CLI.md: absent values are null)
        total = case(totals, value=Enrolment.pathway_id) if totals else null()
        named[f"{prefix}completed"], named[f"{prefix}total"] = case((total.is_not(None), done)), total
        # `/` on integers divides whole on both backends (SQLAlchemy's `//` would wrap it in FLOOR); a NULL
        # division is the total's: 0 when nothing is linked, NULL without the tier
        named[f"{prefix}percent"] = func.coalesce((done * 100).op("/")(func.nullif(total, 0)), total)
    named |= {"badges": _badge_count(), "last_activity": literal_column(last)}
    query = (
        select(*(named[name].label(name) for name in columns))
        .select_from(aggregated)
        .join(Enrolment, Enrolment.id == aggregated.c.enrolment_id)
        .join(User, User.id == Enrolment.client_id)
        .join(Pathway, Pathway.id == Enrolment.pathway_id)
        .order_by(Pathway.position, Pathway.slug, User.email)
    )
    paged = page.window(query, User.email, User.name, Pathway.slug)
    rows = session.connection().execute(paged.execution_options(yield_per=BATCH_SIZE))
    return (_activity_checked(dict(zip(columns, row, strict=True))) for row in rows)


def _activity_checked(record: dict[str, Any]) -> dict[str, Any]:
    """`record`, if its last activity is an instant: SQLite keeps raw SQL's text in a DATETIME column, which the
    query hands on with a Z ('garbageZ'); refused as the plain reads refuse it (UnreadableValue)."""
    # this runs per row (P4): the row's name is written only when the text is no instant, for instant_value's error
    if (text := record["last_activity"]) is not None:
        try:
            dt.datetime.fromisoformat(text)
        except ValueError:
            instant_value(text, "user_skill_progress.updated_at", of=f"{record['client']} in {record['pathway']}")
    return record


def _badge_count() -> ScalarSelect[int]:
    """The badges the client holds (not revoked) of the enrolment's pathway: its tier badges and its pathway badge."""
    tier_prefix = literal("tier:") + Pathway.slug + literal(":")
    return (
        select(func.count())
        .where(
            Badge.client_id == Enrolment.client_id,
            Badge.revoked_at.is_(None),
            or_(
                Badge.key == literal("pathway:") + Pathway.slug,
                func.substr(Badge.key, 1, func.length(tier_prefix)) == tier_prefix,
            ),
        )
        .correlate(Enrolment, Pathway)
        .scalar_subquery()
    )
