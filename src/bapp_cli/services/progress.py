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
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import (
    BigInteger,
    Select,
    SQLColumnExpression,
    and_,
    case,
    func,
    insert,
    literal,
    literal_column,
    or_,
    select,
)
from sqlalchemy.orm import Session

from bapp_cli.db.audit import record_audits
from bapp_cli.db.batches import batches
from bapp_cli.db.models import (
    ENROLMENT_STATUSES,
    Badge,
    Enrolment,
    Pathway,
    Skill,
    SkillPathwayLink,
    User,
    UserSkillProgress,
)
from bapp_cli.errors import InvalidInput
from bapp_cli.services.enrolment import set_enrolment_status
from bapp_cli.services.listing import ALL, Page
from bapp_cli.services.pathways import get_pathway
from bapp_cli.services.people import get_builder
from bapp_cli.services.plain_reads import FUNDAMENTALS_KEY as FUNDAMENTALS_KEY
from bapp_cli.services.plain_reads import Catalogue, percent
from bapp_cli.services.plain_reads import list_badges as list_badges
from bapp_cli.services.plain_reads import load_catalogue as load_catalogue
from bapp_cli.services.plain_reads import pathway_badge_key as pathway_badge_key
from bapp_cli.services.plain_reads import show_progress as show_progress
from bapp_cli.services.plain_reads import tier_badge_key as tier_badge_key

TABLE_TIERS = (1, 2, 3)
PROGRESS_TABLE_COLUMNS = (
    "client",
    "pathway",
    "status",
    "tier1_percent",
    "tier2_percent",
    "tier3_percent",
    "percent",
    "badges",
    "last_activity",
)
BADGE_COLUMNS = ("key", "name", "awarded_at")
# room in a signed 64-bit SUM for the packed per-tier counters of the progress table
PACKED_BITS = 62


# -- completion and badges ----------------------------------------------------------------------------


@dataclass(frozen=True)
class CompletionOutcome:
    """What one change earned a client: badge keys newly awarded and pathways newly completed."""

    badges_awarded: list[str] = field(default_factory=list)
    pathways_completed: list[str] = field(default_factory=list)
    badge_names: dict[str, str] = field(default_factory=dict)  # key → human name, for messages


def record_completions(
    session: Session,
    *,
    now: dt.datetime,
    pathway_ids: Collection[int],
    fundamentals: bool,
    client_ids: Collection[int] | None = None,
) -> dict[int, CompletionOutcome]:
    """Award the badges whose criteria are now met and complete the enrolments of completed pathways.

    Scope: the pathways (and fundamentals) a change touched — the criteria are checked "at the moment
    they are met", so an unrelated change never completes an enrolment an admin deliberately reopened.
    `client_ids=None` checks every client (catalogue changes such as archiving a skill). Already held
    badges are skipped; a badge is never removed.
    """
    scope = sorted(set(pathway_ids))
    clients = None if client_ids is None else sorted(set(client_ids))
    if (not scope and not fundamentals) or clients == []:
        return {}
    catalogue = load_catalogue(session)
    due: dict[int, list[str]] = defaultdict(list)
    completed_pathways: dict[int, list[int]] = defaultdict(list)

    if scope:
        done: dict[int, dict[tuple[int, int], int]] = defaultdict(dict)
        query = (
            select(UserSkillProgress.client_id, SkillPathwayLink.pathway_id, SkillPathwayLink.tier, func.count())
            .join(SkillPathwayLink, SkillPathwayLink.skill_id == UserSkillProgress.skill_id)
            .join(Skill, Skill.id == UserSkillProgress.skill_id)
            .where(
                UserSkillProgress.status == "completed",
                Skill.archived.is_(False),
                SkillPathwayLink.pathway_id.in_(scope),
            )
            .group_by(UserSkillProgress.client_id, SkillPathwayLink.pathway_id, SkillPathwayLink.tier)
        )
        for client_id, pathway_id, tier, count in _for_clients(session, query, clients):
            done[client_id][(pathway_id, tier)] = count
        for client_id, counts in done.items():
            for pathway_id in scope:
                info = catalogue.pathways.get(pathway_id)
                if info is None:
                    continue
                # a tier with no skills is never complete
                complete = [
                    tier for tier in info.tiers if 0 < info.totals.get(tier, 0) == counts.get((pathway_id, tier), 0)
                ]
                due[client_id].extend(tier_badge_key(info.slug, tier) for tier in complete)
                if info.tiers and len(complete) == len(info.tiers):
                    due[client_id].append(pathway_badge_key(info.slug))
                    completed_pathways[client_id].append(pathway_id)

    if fundamentals and catalogue.fundamentals > 0:
        everyone_done = (
            select(UserSkillProgress.client_id)
            .join(Skill, Skill.id == UserSkillProgress.skill_id)
            .where(
                UserSkillProgress.status == "completed",
                Skill.is_fundamental.is_(True),
                Skill.archived.is_(False),
            )
            .group_by(UserSkillProgress.client_id)
            .having(func.count() == catalogue.fundamentals)
        )
        for (client_id,) in _for_clients(session, everyone_done, clients):
            due[client_id].append(FUNDAMENTALS_KEY)

    if not due:
        return {}
    awarded = _award(session, due, now=now)
    finished = _complete_enrolments(session, completed_pathways, catalogue, now=now)
    outcomes: dict[int, CompletionOutcome] = {}
    for client_id in set(awarded) | set(finished):
        keys = sorted(awarded.get(client_id, []), key=catalogue.badge_order)
        outcomes[client_id] = CompletionOutcome(
            keys,
            sorted(finished.get(client_id, []), key=lambda slug: catalogue.badge_order(pathway_badge_key(slug))),
            {key: catalogue.badge_name(key) for key in keys},
        )
    return outcomes


def _for_clients(session: Session, query: Select[*tuple[Any, ...]], clients: list[int] | None) -> Iterator[Any]:
    """The rows of a per-client query, for every client (None) or batch by batch for the ones given."""
    for chunk in [None] if clients is None else batches(clients):
        yield from session.execute(query if chunk is None else query.where(UserSkillProgress.client_id.in_(chunk)))


def _award(session: Session, due: dict[int, list[str]], *, now: dt.datetime) -> dict[int, list[str]]:
    """Insert the badges not yet held; returns the newly awarded keys per client."""
    held: set[tuple[int, str]] = set()
    wanted_keys = sorted({key for keys in due.values() for key in keys})
    for chunk in batches(sorted(due)):
        query = select(Badge.client_id, Badge.key).where(Badge.client_id.in_(chunk), Badge.key.in_(wanted_keys))
        held.update((client_id, key) for client_id, key in session.execute(query))
    fresh = {client_id: [key for key in keys if (client_id, key) not in held] for client_id, keys in due.items()}
    awarded = {client_id: keys for client_id, keys in fresh.items() if keys}
    if not awarded:
        return {}
    emails = _emails(session, list(awarded))
    # set-based: a catalogue change can award thousands at once; one INSERT for the badges, one for the audit
    pairs = [(client_id, key) for client_id, keys in awarded.items() for key in keys]
    session.execute(
        insert(Badge), [{"client_id": client_id, "key": key, "awarded_at": now} for client_id, key in pairs]
    )
    record_audits(
        session,
        "badge",
        [(f"{emails.get(client_id, client_id)}:{key}", {"awarded_at": now}) for client_id, key in pairs],
    )
    return awarded


def _complete_enrolments(
    session: Session, completed: dict[int, list[int]], catalogue: Catalogue, *, now: dt.datetime
) -> dict[int, list[str]]:
    """A completed pathway completes the client's enrolment in it, with the completion time."""
    if not completed:
        return {}
    pathway_ids = sorted({pathway_id for ids in completed.values() for pathway_id in ids})
    finished: dict[int, list[str]] = defaultdict(list)
    emails = _emails(session, list(completed))
    for chunk in batches(sorted(completed)):
        enrolments = session.scalars(
            select(Enrolment).where(
                Enrolment.client_id.in_(chunk),
                Enrolment.pathway_id.in_(pathway_ids),
                Enrolment.status != "completed",
            )
        ).all()
        for enrolment in enrolments:
            if enrolment.pathway_id not in completed[enrolment.client_id]:
                continue
            slug = catalogue.pathways[enrolment.pathway_id].slug
            label = f"{emails.get(enrolment.client_id, enrolment.client_id)}:{slug}"
            if set_enrolment_status(session, enrolment, "completed", now=now, label=label):
                enrolment.updated_at = now
                finished[enrolment.client_id].append(slug)
    session.flush()
    return finished


def _emails(session: Session, user_ids: Sequence[int]) -> dict[int, str]:
    emails: dict[int, str] = {}
    for chunk in batches(sorted(set(user_ids))):
        emails.update(session.execute(select(User.id, User.email).where(User.id.in_(chunk))).all())
    return emails


# -- the progress table (every enrolment) ------------------------------------------------------------


@dataclass(slots=True)
class ProgressRow:
    """One enrolment in the progress table; counts are kept for reports that need more than percentages."""

    client: str
    pathway: str
    status: str
    tier_completed: tuple[int, ...]
    tier_total: tuple[int, ...]
    completed: int
    total: int
    badges: int
    last_activity: dt.datetime | None

    def tier_percent(self, index: int) -> int:
        return percent(self.tier_completed[index], self.tier_total[index])

    @property
    def percent(self) -> int:
        return percent(self.completed, self.total)

    def as_record(self) -> dict[str, Any]:
        tiers = {f"tier{number}_percent": self.tier_percent(index) for index, number in enumerate(TABLE_TIERS)}
        return {"client": self.client, "pathway": self.pathway, "status": self.status, **tiers} | {
            "percent": self.percent,
            "badges": self.badges,
            "last_activity": self.last_activity,
        }


# -- per-enrolment counts (the progress table and the reports) ---------------------------------------


def select_enrolment_counts(
    *columns: SQLColumnExpression[Any],
    tiers: Sequence[int] = (),
    pack_width: int | None = None,
    linked: bool = False,
    last_activity: bool = False,
) -> Select[Any]:
    """The one definition of an enrolment's skill counts: a GROUP BY to filter (on Enrolment) and wrap.

    One row per enrolment: `enrolment_id`, then `columns` (anything that depends on the enrolment: the
    query is grouped by its primary key, which both backends accept), then the completed skills among the
    non-archived skills linked to the enrolment's pathway — `done`, and `tier<n>` for each of `tiers`; or,
    with `pack_width`, all of them in one integer `packed` (done in the low `pack_width` bits, tier n in
    field n; the caller makes the fields wide enough) — then, if asked, `linked` (the non-archived skills
    linked to the pathway) and `last_activity` (the latest change to one of those skills' progress rows).
    Only what a caller asks for is aggregated: the aggregate is the hot loop (one step per enrolment ×
    linked skill).
    """
    # Packing keeps one SUM per enrolment instead of one per tier plus the total.
    weights = [(number, (1 << (pack_width * number)) + 1) for number in tiers] if pack_width is not None else []
    link_columns: list[SQLColumnExpression[Any]] = [SkillPathwayLink.skill_id, SkillPathwayLink.pathway_id]
    if tiers and pack_width is None:
        link_columns.append(SkillPathwayLink.tier)
    if pack_width is not None:
        link_columns.append(
            case(
                *(
                    (SkillPathwayLink.tier == number, literal_column(str(weight), BigInteger))
                    for number, weight in weights
                ),
                else_=literal_column("1", BigInteger),
            ).label("weight")
        )
    active_links = (
        select(*link_columns)
        .join(Skill, Skill.id == SkillPathwayLink.skill_id)
        .where(Skill.archived.is_(False))
        .subquery("active_links")
    )
    progress = UserSkillProgress.__table__.alias("progress")
    completed = progress.c.status == "completed"
    counters: list[SQLColumnExpression[Any]] = []
    if pack_width is not None:
        counters.append(func.sum(case((completed, active_links.c.weight), else_=0)).label("packed"))
    else:
        counters.extend(
            func.sum(case((and_(completed, active_links.c.tier == number), 1), else_=0)).label(f"tier{number}")
            for number in tiers
        )
        # summed rather than filtered in the join: the join then probes the (client, skill) unique index
        counters.append(func.sum(case((completed, 1), else_=0)).label("done"))
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
            progress,
            and_(progress.c.client_id == Enrolment.client_id, progress.c.skill_id == active_links.c.skill_id),
        )
        .group_by(Enrolment.id)
    )


def check_status(status: str, statuses: Sequence[str] = ENROLMENT_STATUSES) -> str:
    """`status` as stored (lowercase), if it is one of `statuses` (an enrolment's unless told)."""
    cleaned = status.strip().lower()
    if cleaned not in statuses:
        raise InvalidInput(f"status: {status!r} is not one of {', '.join(statuses)}", code="invalid_status")
    return cleaned


def progress_table(
    session: Session,
    *,
    pathway: str | None = None,
    builder: str | None = None,
    status: str | None = None,
    page: Page = ALL,
) -> Iterator[ProgressRow]:
    """One row per enrolment (ordered by pathway, then client) with tier and overall progress;
    `page.search` looks in the client's e-mail and name and the pathway slug.

    The per-client work is one GROUP BY over the progress rows joined to the links, so the number of
    statements does not depend on the number of clients; rows are yielded as they arrive.
    """
    wanted_status = check_status(status) if status is not None else None
    pathway_id = get_pathway(session, pathway).id if pathway is not None else None
    builder_id = get_builder(session, builder)[0].id if builder is not None else None
    catalogue = load_catalogue(session)

    # The per-tier and overall completed counts come packed into one integer per enrolment (one SUM in
    # SQL's hot loop instead of four). Field width comes from the largest pathway (no count can exceed
    # it), so fields cannot overflow into each other; absurdly large pathways fall back to plain sums.
    width = max([info.total for info in catalogue.pathways.values()] + [1]).bit_length()
    packed = width * (len(TABLE_TIERS) + 1) <= PACKED_BITS
    per_enrolment = select_enrolment_counts(tiers=TABLE_TIERS, pack_width=width if packed else None, last_activity=True)
    counters = ["packed"] if packed else [*(f"tier{number}" for number in TABLE_TIERS), "done"]
    if pathway_id is not None:
        per_enrolment = per_enrolment.where(Enrolment.pathway_id == pathway_id)
    if builder_id is not None:
        per_enrolment = per_enrolment.where(Enrolment.builder_id == builder_id)
    if wanted_status is not None:
        per_enrolment = per_enrolment.where(Enrolment.status == wanted_status)
    aggregated = per_enrolment.subquery("per_enrolment")
    badge_count = (
        select(func.count())
        .where(
            Badge.client_id == Enrolment.client_id,
            or_(
                Badge.key == literal("pathway:") + Pathway.slug,
                func.substr(Badge.key, 1, func.length(literal("tier:") + Pathway.slug + literal(":")))
                == literal("tier:") + Pathway.slug + literal(":"),
            ),
        )
        .correlate(Enrolment, Pathway)
        .scalar_subquery()
    )
    query = (
        select(
            User.email,
            Enrolment.pathway_id,
            Enrolment.status,
            badge_count,
            aggregated.c.last_activity,
            *(aggregated.c[name] for name in counters),
        )
        .select_from(aggregated)
        .join(Enrolment, Enrolment.id == aggregated.c.enrolment_id)
        .join(User, User.id == Enrolment.client_id)
        .join(Pathway, Pathway.id == Enrolment.pathway_id)
        .order_by(Pathway.position, Pathway.slug, User.email)
    )
    matched = page.matching(User.email, User.name, Pathway.slug)
    if matched is not None:
        query = query.where(matched)
    query = page.window(query)

    totals = {
        pathway_key: (
            tuple(info.totals.get(number, 0) for number in TABLE_TIERS),
            info.total,
            info.slug,
        )
        for pathway_key, info in catalogue.pathways.items()
    }
    mask = (1 << width) - 1
    shifts = tuple(width * number for number in TABLE_TIERS)
    result = session.connection().execute(query.execution_options(yield_per=1000))
    for partition in result.partitions():
        for email, row_pathway_id, row_status, badges, last_activity, *counts in partition:
            tier_total, total, slug = totals[row_pathway_id]
            if packed:
                value = int(counts[0] or 0)  # PostgreSQL sums bigints as numeric
                done = value & mask
                tiers = (value >> shifts[0] & mask, value >> shifts[1] & mask, value >> shifts[2] & mask)
            else:
                done = int(counts[-1] or 0)
                tiers = (int(counts[0] or 0), int(counts[1] or 0), int(counts[2] or 0))
            yield ProgressRow(email, slug, row_status, tiers, tier_total, done, total, int(badges or 0), last_activity)
