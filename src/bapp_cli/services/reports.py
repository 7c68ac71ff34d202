"""The builder dashboard (README "Reports"): bookings by pathway, client progress, pathway analytics.

Every figure is an SQL aggregate (GROUP BY, conditional sums, a window function), so each report sends
the same number of statements whatever the number of clients, skills or bookings; Python only divides
sums the database returned. Empty data gives zeros, never an error and never a division by zero.

Definitions (the commands' help repeats them):
- period: bookings whose start time is in [from, to) — from inclusive, to exclusive; either end may be open.
- bookings by pathway: bookings counted per pathway and status; bookings without a pathway form the
  "none" row; `total` is every status together.
- client progress: the progress table's records (`services.progress.progress_records`), with the per-tier and
  overall completed/total counts beside the percentages.
- pathway analytics, per pathway: `enrolled` every enrolment whatever its status, `active`/`paused`/
  `completed` enrolments in that status; `average_percent` the mean of the enrolled clients' percents
  (completed ÷ linked skills, rounded down, as `progress` shows them), so each client weighs the same;
  `completion_rate` = completed ÷ enrolled as a percentage; `average_days_to_complete` the mean over
  completed enrolments of the days from the start date to the completion date, both days in --timezone (0 for
  a completion dated before the start); `top_skills` the three
  skills linked to the pathway completed by the most clients (ties by slug; never-completed skills left
  out); `bookings` the pathway's bookings in the period, any status. Averages and rates have one decimal;
  each is None when there is nothing to take it over (nobody enrolled, nobody completed).
- totals: the same figures over every enrolment; its `top_skills` ranks every skill and its `bookings`
  counts every booking in the period, with or without a pathway.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from sqlalchemy import ColumnElement, Integer, String, and_, case, cast, func, literal, null, select, union_all
from sqlalchemy.exc import DataError
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import Session
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.functions import FunctionElement

from bapp_cli.db.domains import BOOKING_STATUSES, ENROLMENT_STATUSES
from bapp_cli.db.engine import command_zone
from bapp_cli.db.models import Booking, Enrolment, Pathway, Skill, SkillPathwayLink, User, UserSkillProgress
from bapp_cli.errors import InvalidInput, UnreadableValue
from bapp_cli.services import progress
from bapp_cli.services.instants import check_period
from bapp_cli.services.people import get_builder
from bapp_cli.services.plain_reads import BookingFilters, BookingView, booking_views

TOP_SKILLS = 3
BOOKING_COUNT_COLUMNS = ("pathway", *BOOKING_STATUSES, "total")
# `progress table`'s columns, each percentage preceded by the two counts it divides
CLIENT_PROGRESS_COLUMNS = tuple(
    f"{name.removesuffix('percent')}{part}" if name.endswith("percent") else name
    for name in progress.PROGRESS_TABLE_COLUMNS
    for part in (("completed", "total", "percent") if name.endswith("percent") else (name,))
)
ANALYTICS_AVERAGES = ("average_percent", "completion_rate", "average_days_to_complete")
ANALYTICS_COLUMNS = ("pathway", "enrolled", *ENROLMENT_STATUSES, *ANALYTICS_AVERAGES, "top_skills", "bookings")
TENTH = Decimal("0.1")


def one_decimal(numerator: int, denominator: int, *, scale: int = 1) -> float | None:
    """numerator × scale ÷ denominator to one decimal (half up); None when the denominator is 0: a mean of nothing
    is absent (CLI.md: null), where 0.0 read as "no progress" or "completed the day they started"."""
    if denominator <= 0:
        return None
    return float((Decimal(numerator * scale) / Decimal(denominator)).quantize(TENTH, rounding=ROUND_HALF_UP))


# -- shared pieces ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Period:
    """Bookings whose start is in [start, end); an open end is unbounded."""

    start: dt.datetime | None = None
    end: dt.datetime | None = None

    def __post_init__(self) -> None:
        check_period(self.start, self.end)

    def conditions(self) -> list[ColumnElement[bool]]:
        bounds = [Booking.start_time >= self.start] if self.start is not None else []
        if self.end is not None:
            bounds.append(Booking.start_time < self.end)
        return bounds


@dataclass(frozen=True)
class ReportPathway:
    """A report row's pathway: `key` is the slug, "none" (no pathway) or None (the totals row)."""

    key: str | None
    name: str
    icon: str | None = None
    color: str | None = None
    archived: bool = False
    kind: str = "pathway"  # or "none", "total"


NO_PATHWAY_ROW = ReportPathway("none", "No pathway", kind="none")
TOTALS_ROW = ReportPathway(None, "Total", kind="total")


def _pathways(session: Session) -> dict[int, ReportPathway]:
    """Every pathway in display order (archived ones keep their history, so they stay in reports)."""
    columns = (Pathway.id, Pathway.slug, Pathway.name, Pathway.icon, Pathway.color, Pathway.archived)
    rows = session.execute(select(*columns).order_by(Pathway.position, Pathway.slug))
    return {row.id: ReportPathway(row.slug, row.name, row.icon, row.color, bool(row.archived)) for row in rows}


@dataclass(frozen=True)
class Report:
    """A report's records in display order, its totals record last, each beside its row's pathway in
    `pathways`; `builder`, the builder it was limited to."""

    period: Period
    pathways: list[ReportPathway]
    records: list[dict[str, Any]]
    builder: str | None = None

    def as_records(self, *, totals: bool = True) -> list[dict[str, Any]]:
        return self.records if totals else self.records[:-1]


# -- bookings by pathway --------------------------------------------------------------------------------


def count_bookings_by_pathway(session: Session, *, period: Period = Period(), builder: str | None = None) -> Report:
    """Bookings per pathway and status in the period (one GROUP BY), optionally for one builder: one row
    per pathway (display order), then "none", then the totals."""
    query = select(Booking.pathway_id, Booking.status, func.count()).where(*period.conditions())
    coach = get_builder(session, builder)[0] if builder is not None else None
    if coach is not None:
        query = query.where(Booking.builder_id == coach.id)
    # status first: no index leads with it, so SQLite reads the table in one sequential pass instead of
    # walking the (pathway, start) index and fetching every row's status at random (4× slower at 100k)
    query = query.group_by(Booking.status, Booking.pathway_id)
    counted: dict[int | None, dict[str, int]] = {}
    for pathway_id, status, count in session.execute(query):
        counted.setdefault(pathway_id, {})[status] = int(count)
    labels: list[tuple[int | None, ReportPathway]] = [*_pathways(session).items(), (None, NO_PATHWAY_ROW)]
    rows = [dict.fromkeys(BOOKING_STATUSES, 0) | counted.get(key, {}) for key, _ in labels]
    rows.append({status: sum(row[status] for row in rows) for status in BOOKING_STATUSES})
    pathways = [*(label for _, label in labels), TOTALS_ROW]
    records = [
        {"pathway": label.key, **row, "total": sum(row.values())} for label, row in zip(pathways, rows, strict=True)
    ]
    return Report(period, pathways, records, coach.email if coach is not None else None)


def list_bookings_by_pathway(
    session: Session, *, period: Period = Period(), builder: str | None = None
) -> dict[ReportPathway, list[BookingView]]:
    """The period's bookings grouped by pathway (display order, "none" last), by start time within a group.

    Only groups that have bookings are returned. The listing is `bookings list`'s query, so a booking here
    reads exactly as it does there.
    """
    views = booking_views(session, BookingFilters(builder_email=builder, start_from=period.start, start_to=period.end))
    labels: dict[str | None, ReportPathway] = {label.key: label for label in _pathways(session).values()}
    labels[None] = NO_PATHWAY_ROW  # a booking without a pathway has none
    grouped: dict[str | None, list[BookingView]] = {}
    for view in views:
        grouped.setdefault(view.pathway, []).append(view)
    return {label: grouped[slug] for slug, label in labels.items() if slug in grouped}


# -- client progress ------------------------------------------------------------------------------------


def client_progress(
    session: Session, *, builder: str | None = None, pathway: str | None = None
) -> tuple[dict[str | None, ReportPathway], Iterator[dict[str, Any]]]:
    """Per client and pathway (ordered by pathway, then client): enrolment status, counts, badges, activity.

    The records (CLIENT_PROGRESS_COLUMNS) stream from the progress table's single aggregate query, the
    pathways' labels (by slug) beside them for the table. `builder` keeps the enrolments that builder coaches.
    """
    labels = {label.key: label for label in _pathways(session).values()}
    return labels, progress.progress_records(session, columns=CLIENT_PROGRESS_COLUMNS, builder=builder, pathway=pathway)


# -- pathway analytics ----------------------------------------------------------------------------------


class DaysBetween(FunctionElement[int]):
    """Whole calendar days from a date column to the date of an instant column in a zone (the third clause, an IANA
    name: --timezone, in which an enrolment's days are), 0 for an instant on an earlier day. PostgreSQL reads the
    day in the transaction's TimeZone, which `_enrolment_figures` sets to that zone."""

    type = Integer()
    inherit_cache = True


@compiles(DaysBetween, "sqlite")
def _days_between_sqlite(element: DaysBetween, compiler: SQLCompiler, **kw: Any) -> str:
    start, instant, zone = (compiler.process(clause, **kw) for clause in element.clauses)
    # instants are stored as naive UTC text on SQLite (db.types.UTCDateTime). NULL unless both are dates as
    # stored (`_enrolment_figures` then names the value): julianday() makes raw SQL's text NULL, 30 February 2 March
    dated = f"date(julianday({instant})) = substr({instant}, 1, 10) AND date({start}) = {start}"
    # SQLite has no zone data: the day is Python's (db.types.local_date, on every connection), asked only outside UTC
    day = f"CASE WHEN {zone} = 'UTC' THEN date({instant}) ELSE bapp_local_date({instant}, {zone}) END"
    return f"CASE WHEN {dated} THEN CAST(max(0, julianday({day}) - julianday({start})) AS INTEGER) END"


@compiles(DaysBetween)
def _days_between_default(element: DaysBetween, compiler: SQLCompiler, **kw: Any) -> str:
    start, instant, _ = (compiler.process(clause, **kw) for clause in element.clauses)
    # the day in the transaction's TimeZone, which `_enrolment_figures` sets to the zone: AT TIME ZONE 'CET' (EET,
    # MET, WET) would read PostgreSQL's abbreviation, a fixed offset with no summer time, not the IANA zone
    return f"GREATEST(CAST({instant} AS DATE) - {start}, 0)"


def _figures_record(
    label: ReportPathway, figures: tuple[int, ...], top_skills: list[dict[str, Any]], bookings: int
) -> dict[str, Any]:
    """One `pathway-analytics` record from `_enrolment_figures`' sums, divided only here so totals add up
    exactly."""
    enrolled, *statuses, percent_sum, days_sum, days_count = figures
    counts = dict(zip(ENROLMENT_STATUSES, statuses, strict=True))
    record: dict[str, Any] = {"pathway": label.key, "enrolled": enrolled, **counts}
    record["average_percent"] = one_decimal(percent_sum, enrolled)
    record["completion_rate"] = one_decimal(counts["completed"], enrolled, scale=100)
    record["average_days_to_complete"] = one_decimal(days_sum, days_count)
    return record | {"top_skills": top_skills, "bookings": bookings}


def _enrolment_figures(session: Session) -> dict[int, tuple[int, ...]]:
    """Per pathway: enrolled, active, paused, completed, Σ percent, Σ days to complete, completions dated
    (the figures `_figures_record` divides).

    The inner query is the progress table's per-enrolment count (`select_enrolment_counts`: completed and
    linked non-archived skills) and the outer one folds them per pathway.
    """
    zone = str(command_zone(session))
    completed_in = DaysBetween(Enrolment.start_date, Enrolment.completed_at, literal(zone))
    days = case((Enrolment.completed_at.is_(None), None), else_=completed_in).label("days")
    finished = Enrolment.completed_at.is_not(None).label("finished")
    counts = progress.select_enrolment_counts(Enrolment.pathway_id, Enrolment.status, days, finished, linked=True)
    per_enrolment = counts.subquery("per_enrolment")

    dated = and_(per_enrolment.c.status == "completed", per_enrolment.c.days.is_not(None))
    percent = (per_enrolment.c.done * 100) // per_enrolment.c.linked
    query = select(
        per_enrolment.c.pathway_id,
        func.count(),
        *(func.count().filter(per_enrolment.c.status == status) for status in ENROLMENT_STATUSES),
        func.coalesce(func.sum(case((per_enrolment.c.linked > 0, percent), else_=0)), 0),
        func.coalesce(func.sum(case((dated, per_enrolment.c.days), else_=0)), 0),
        func.count().filter(dated),
        func.count().filter(per_enrolment.c.finished, per_enrolment.c.days.is_(None)),
    ).group_by(per_enrolment.c.pathway_id)
    if session.get_bind().dialect.name == "postgresql":  # the zone of DaysBetween's day, for this transaction only
        try:
            session.execute(select(func.set_config("TimeZone", zone, True)))
        except DataError:  # a zone Python's data has and the PostgreSQL server's older tzdata lacks: not exit 1
            raise InvalidInput(f"the database does not know the timezone {zone!r}", code="unknown_timezone") from None
    figures = {row[0]: tuple(int(value) for value in row[1:]) for row in session.execute(query)}
    # A completion whose days the database could not count (raw SQL's text on SQLite; PostgreSQL's typed columns
    # hold none) would drop out of the average unsaid: counted above, then refused as the plain reads refuse it,
    # naming the column, the enrolment and the value.
    if any(row[-1] for row in figures.values()):
        # the start as DaysBetween reads it (a date as stored); only when it reads is the completion to blame
        start_reads = func.coalesce(func.date(Enrolment.start_date) == Enrolment.start_date, False)
        texts = (cast(Enrolment.start_date, String), cast(Enrolment.completed_at, String))
        joined = (User.id == Enrolment.client_id, Pathway.id == Enrolment.pathway_id, finished)
        undated = select(User.email + " in " + Pathway.slug, start_reads, *texts).where(*joined)
        for of, start_read, *stored in session.execute(undated.where(completed_in.is_(None)).limit(1)):
            column = ("enrolments.start_date", "enrolments.completed_at")[start_read]
            raise UnreadableValue(column, stored[start_read], of=of)
    return {pathway_id: row[:-1] for pathway_id, row in figures.items()}


def _top_skills(session: Session) -> dict[int | None, list[dict[str, Any]]]:
    """The top skills by completions in one statement: per pathway (its linked skills) and, under None, over
    every skill."""
    # Each skill's completions counted once, in a CTE both rankings read (as a subquery in each, every completed
    # row was counted twice), by a count per skill over the (skill, status) index: a GROUP BY over all progress
    # compared every row's skill with the last one's. P4 at 10,000 clients: 469 M -> 181 M instructions on SQLite.
    completed = (UserSkillProgress.skill_id == Skill.id, UserSkillProgress.status == "completed")
    counted = select(func.count()).where(*completed).scalar_subquery()
    skills = select(Skill.id, Skill.slug, Skill.name, counted.label("completions")).where(Skill.archived.is_(False))
    completions = skills.cte("completions")
    order = (completions.c.completions.desc(), completions.c.slug)
    # never-completed skills are left out
    ranked_skills = select(completions.c.slug, completions.c.name, completions.c.completions).where(
        completions.c.completions > 0
    )
    per_pathway = ranked_skills.join(SkillPathwayLink, SkillPathwayLink.skill_id == completions.c.id)
    rank = func.row_number().over(partition_by=SkillPathwayLink.pathway_id, order_by=order)
    per_pathway = per_pathway.add_columns(rank.label("rank"), SkillPathwayLink.pathway_id)
    overall = ranked_skills.add_columns(func.row_number().over(order_by=order).label("rank"), null())
    both = union_all(per_pathway, overall).subquery("ranked")
    top: dict[int | None, list[dict[str, Any]]] = {}
    for slug, name, count, _, pathway_id in session.execute(
        select(both).where(both.c.rank <= TOP_SKILLS).order_by(both.c.pathway_id, both.c.rank)
    ):
        top.setdefault(pathway_id, []).append({"skill": slug, "name": name, "completions": int(count)})
    return top


def pathway_analytics(session: Session, *, period: Period = Period()) -> Report:
    """Per pathway: enrolments by status, average progress, completion rate and time, top skills, bookings."""
    pathways = _pathways(session)
    enrolments = _enrolment_figures(session)
    top = _top_skills(session)
    per_pathway = select(Booking.pathway_id, func.count()).where(*period.conditions()).group_by(Booking.pathway_id)
    bookings: dict[int | None, int] = {pathway_id: int(count) for pathway_id, count in session.execute(per_pathway)}
    no_figures = (0,) * (len(ENROLMENT_STATUSES) + 4)
    figures = [enrolments.get(pathway_id, no_figures) for pathway_id in pathways]
    records = [
        _figures_record(label, row, top.get(pathway_id, []), bookings.get(pathway_id, 0))
        for (pathway_id, label), row in zip(pathways.items(), figures, strict=True)
    ]
    totals = tuple(map(sum, zip(no_figures, *figures, strict=True)))  # no_figures: zeros when there is no pathway
    records.append(_figures_record(TOTALS_ROW, totals, top.get(None, []), sum(bookings.values())))
    return Report(period, [*pathways.values(), TOTALS_ROW], records)
