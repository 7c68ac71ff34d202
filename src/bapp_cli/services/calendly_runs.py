"""Calendly runs: the one shape of the cron jobs (event-type sync, bookings pull) and their run records.

A run, :func:`run_calendly_job`:

1. takes the job's named lock (a second run exits 75 at once, or waits up to ``--wait``); the lock comes
   before any request, so a run refused as busy never reached Calendly and leaves no record. It needs
   no SQLAlchemy (db.locks), so the first request goes out before anything else is imported;
2. fetches the whole listing — unless a saved one was given — preparing each page (checks, values that
   need no database) while the client already fetches the next, so that work hides behind the network;
   meanwhile the job's ``survey`` runs on a thread in a read transaction (the imports, and for a sync the
   catalogue its pages are planned against as they arrive). A sync reads and writes on plain DB-API
   connections (db.dbapi) and never imports SQLAlchemy; a pull applies through the ORM;
3. applies the listing in the command's one write transaction, opened only once every page has arrived
   (a failed fetch changes nothing, and other writers are not held up by a slow API) — for a plain job on
   its survey's connection, kept open meanwhile, where a sync stages its new rows in temporary tables;
4. on any failure, fetch or apply, records the failed run in a small transaction of its own, hands its
   summary to ``on_failure`` (unless no record could be written: the database may be what failed) and
   re-raises; a run stopped by Ctrl-C or a stop signal rolls back and is recorded as failed (``STOPPED``), but a
   dry run, which records nothing.

Run records: a successful run inserts its ``sync_runs`` row in the same transaction as its changes (the
two commit or vanish together: a run killed mid-apply leaves neither). A failed run's record is its only
write. A dry run writes nothing, not even a record.

Saved listings (``--from-file``) are read by :func:`read_listing`, shared by both kinds of run so both
accept the same file shapes.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import gc
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

from bapp_cli.errors import BappError, Interrupted, InvalidInput, committed, read_json_input, rule_message
from bapp_cli.services.plain_text import json_may_hold_controls, strip_controls

if TYPE_CHECKING:
    from pydantic import ValidationError
    from sqlalchemy.orm import Session

    from bapp_cli.calendly.client import CalendlyClient, ListingPage
    from bapp_cli.db.dbapi import Transaction

Item = TypeVar("Item")
# the runs' own way out (a migration or a booking has no --wait); a --wait given already was too short
WAIT_HINTS = ("try later, or pass --wait SECONDS", "try later, or a longer --wait")
# The error recorded of a run stopped by Ctrl-C or a stop signal (SIGTERM, SIGHUP; cli.app), a kill's unrecorded.
STOPPED = "interrupted (Ctrl-C or a stop signal); nothing applied"
# How long a stopped run's failed-run record waits for another writer's lock (the one it may have been stopped
# waiting for): a moment, not the 30 s busy timeout a Ctrl-C would otherwise wait out before the command ends
STOPPED_RECORD_WAIT_MS = 1000
# the head of every run's record (`calendly sync`, `calendly pull-bookings`); each kind adds its own counters
RUN_HEAD = ("run_id", "status", "dry_run", "fetched", "created", "updated")


@dataclass
class RunReport:
    """What every Calendly run reports, an event-type sync or a bookings pull; a failed run's summary of
    either kind is built from these fields alone. Each kind says which of them its record shows."""

    run_id: int | None
    status: str
    dry_run: bool
    source: str
    fetched: int = 0
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    skipped: int = 0
    error: str | None = None
    # the run record's kind, and its two columns each kind fills with its own counters (a pull's: cancelled
    # and rescheduled bookings)
    kind: ClassVar[str]
    recorded_as: ClassVar[tuple[str, str]] = ("deactivated", "reactivated")
    columns: ClassVar[tuple[str, ...]]  # its record's: RUN_HEAD, then its own counters

    def as_record(self) -> dict[str, Any]:
        """The run's summary under its command's documented keys."""
        return {name: getattr(self, name) for name in self.columns}


# -- run records -------------------------------------------------------------------------------------

# what a run record copies from the report as it is
_RECORDED_COUNTS = ("source", "status", "fetched", "created", "updated", "unchanged", "skipped")


def record_run(
    source_db: Transaction | Session, report: RunReport, *, started_at: dt.datetime, finished_at: dt.datetime
) -> int:
    """Add the record of a run, succeeded or failed, to the transaction — a plain one, or an ORM unit of
    work's (a pull's), written through its connection; returns its id. Everything but the times comes from
    the report."""
    from bapp_cli.db.dbapi import Transaction

    return Transaction.of_unit(source_db).insert(
        "sync_runs",
        {
            "kind": report.kind,
            "started_at": started_at,
            "finished_at": finished_at,
            "dry_run": False,
            "error": report.error[:2000] if report.error is not None else None,
            "deactivated": getattr(report, report.recorded_as[0]),
            "reactivated": getattr(report, report.recorded_as[1]),
            **{name: getattr(report, name) for name in _RECORDED_COUNTS},
        },
    )


# -- saved listings ----------------------------------------------------------------------------------


def read_listing(
    content: bytes | str,
    *,
    name: str,
    items: str,
    hint: str,
    validate: Callable[[list[Any], str, list[dict[str, Any]]], Iterable[Item]],
    on_cleaned: Callable[[list[str]], None] | None = None,
) -> list[Item]:
    """A saved Calendly listing (``--from-file``): one page ``{collection, pagination}``, a list of pages, or a
    bare list of ``items``. ``validate(collection, where, details)`` gives a page's items and adds a detail
    record for each bad one (``where``: the page's place in the file); every bad item is reported in one
    error (exit 6), its message naming the first. Its text is cleaned of control characters as the API's is
    (``on_cleaned`` is told the items)."""
    data = read_json_input(content, name, code="invalid_listing")
    # stored as saved, a lone surrogate crashed the insert, as a NUL did on PostgreSQL
    if isinstance(content, str) or json_may_hold_controls(content):
        strip_controls(data, on_cleaned)
    if isinstance(data, Mapping):
        if "collection" not in data:
            message = f"{name}: a JSON object must be a listing page with a 'collection' array"
            raise InvalidInput(message, hint=hint, code="invalid_listing")
        pages = [("collection", data["collection"])]
    elif isinstance(data, list) and data and all(isinstance(item, Mapping) and "collection" in item for item in data):
        pages = [(f"[{number}].collection", page["collection"]) for number, page in enumerate(data)]
    elif isinstance(data, list):
        pages = [("", data)]
    else:
        raise InvalidInput(f"{name}: expected a listing page, a list of pages or a list of {items}")
    details: list[dict[str, Any]] = []
    parsed: list[Item] = []
    for where, collection in pages:
        if isinstance(collection, list):
            parsed.extend(validate(collection, where, details))
        else:
            details.append({"row": where or "(top level)", "message": f"must be an array of {items}"})
    if details:
        first = details[0]
        place = " ".join(str(first[key]) for key in ("row", "field") if first.get(key))
        message = f"{name}: {len(details)} invalid value(s) in the listing; first: {place}: {first['message']}"
        raise InvalidInput(message, details=details, code="invalid_listing")
    return parsed


def listing_error_details(exc: ValidationError, where: str) -> list[dict[str, Any]]:
    """A listing's validation errors as detail records: ``row`` names the item (``where`` plus its index),
    ``field`` the path inside it."""
    details = []
    for error in exc.errors(include_url=False, include_input=False):
        row, loc = where, error["loc"]
        if loc and isinstance(loc[0], int):
            row, loc = f"{where}[{loc[0]}]", loc[1:]
        path = "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in loc).lstrip(".")
        details.append({"row": row, "field": path or None, "message": rule_message(error)})
    return details


# -- the run -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CalendlyJob:
    """What one kind of run supplies: its lock, how to list, prepare and apply, and its report's type."""

    lock: str
    what: str  # "Calendly sync": the busy message names it
    # pages of the listing of a user, an organization (or both)
    fetch: Callable[[CalendlyClient, str | None, str | None], Iterable[ListingPage[Any]]]
    # a page's database-free preparation (while the client fetches the next page)
    prepare: Callable[[Sequence[Any], str], list[Any]]
    # the whole prepared listing into the open transaction: (transaction, listing, source=, started_at=,
    # clock=, dry_run=)
    apply: Callable[..., Any]
    # the failed run's summary of this kind
    failed_report: Callable[..., RunReport]
    # what needs the database but not the listing, read while the listing is fetched (on another thread); a
    # plain job's survey ends its read (its connection is kept for the write, and the fetch holds no snapshot)
    survey: Callable[[Any], None] = lambda session: None
    # whether it reads and writes on plain DB-API connections (db.dbapi, so a sync never imports
    # SQLAlchemy), or on ORM sessions
    plain: bool = False


def run_calendly_job(
    job: CalendlyJob,
    *,
    database_url: str,
    connect_timeout: int,
    transaction: Callable[..., AbstractContextManager[Any]],
    reading: Callable[[], AbstractContextManager[Any]],
    open_client: Callable[[], AbstractContextManager[CalendlyClient]],
    scope: tuple[str | None, str | None],
    listing: Sequence[Any] | None,
    wait: float,
    dry_run: bool,
    clock: Callable[[], dt.datetime],
    scrub: Callable[[str], str],
    on_apply: Callable[[int], None],
    on_failure: Callable[[RunReport], None],
    process_ends_after: bool = False,
) -> Any:
    """Run ``job`` as the module docstring says; ``listing`` is a saved one (``--from-file``), else the
    listing is fetched for ``scope`` — (user, organization), else the token's own user (``/users/me``).
    ``transaction(dry_run=)`` opens the command's unit of work — for a plain job ``transaction(dry_run=,
    on=connection)``, on its survey's connection —, ``reading()`` a read transaction (plain ones or ORM
    sessions, as ``job.plain`` says), ``scrub`` removes secrets from a failure's message. ``process_ends_after``:
    the process ends with the run (bapp's own command), so what the run leaves alive is frozen as it ends."""
    from concurrent.futures import ThreadPoolExecutor

    from bapp_cli.db.locks import named_lock

    # A plain job's survey connection, kept open: its write transaction goes on in it (``transaction(dry_run=,
    # on=connection)``), so that what the job staged there while the pages came (a sync's new rows, in temporary
    # tables) is at hand. Closed here unless the transaction took it over.
    kept: list[tuple[Any, contextlib.ExitStack]] = []

    def survey(client: CalendlyClient | None = None) -> None:
        if client is not None:
            client.request_sent.wait()
        import bapp_cli.calendly.pages  # noqa: F401 - first: the pages are parsed with it as they arrive

        with contextlib.ExitStack() as ending:
            database = ending.enter_context(reading())
            job.survey(database)
            if job.plain:
                kept.append((database, ending.pop_all()))

    def close_kept() -> None:
        while kept:
            kept.pop()[1].close()

    source = "file" if listing is not None else "api"
    hint = WAIT_HINTS[wait > 0]
    with (
        _tuned_for_the_run(freeze_at_end=process_ends_after),
        named_lock(
            database_url, job.lock, wait_seconds=wait, what=job.what, hint=hint, connect_timeout=connect_timeout
        ),
    ):
        started_at = clock()
        fetched = 0
        try:
            # leaving the with waits for the survey, so a failed fetch is recorded with no read still open
            with ThreadPoolExecutor(1, thread_name_prefix="calendly-survey") as pool:
                if listing is not None:
                    surveyed = pool.submit(survey)
                    prepared = job.prepare(listing, source)
                else:
                    prepared = []
                    # each page prepared as it arrives, while the client already fetches the next one (see
                    # ``CalendlyClient._pass``), so preparing hides behind the network's latency; the survey
                    # waits for the first request to be out, so that its imports and reads do not delay it
                    with open_client() as client:
                        surveyed = pool.submit(survey, client)
                        user, organization = scope
                        if not (user or organization):
                            user = client.get_current_user().uri
                        for page in job.fetch(client, user, organization):
                            if page.restarted:  # the listing began again from page one (a stale page token)
                                prepared.clear()
                            prepared.extend(job.prepare(page.items, source))
                surveyed.result()
            fetched = len(prepared)
            on_apply(fetched)
            survey_connection = {"on": kept.pop()[0]} if kept else {}  # its closing is the transaction's now
            with transaction(dry_run=dry_run, **survey_connection) as written:
                return job.apply(written, prepared, source=source, started_at=started_at, clock=clock, dry_run=dry_run)
        except (Exception, KeyboardInterrupt) as error:
            close_kept()  # the failed run is recorded with no connection of its own still open
            # Ctrl-C or a stop signal (cli.app) is recorded too, else `calendly status` showed the last run that
            # finished as the latest to a cron job's `timeout` that stopped every run since; not a dry run, nor one
            # stopped once its commit was under way (errors.committed), whose record is committed with it
            if (stopped := isinstance(error, KeyboardInterrupt)) and (dry_run or committed[0]):
                raise
            unexpected = f"unexpected error: {type(error).__name__}: {error}"
            message = STOPPED if stopped else error.message if isinstance(error, BappError) else unexpected
            message = " ".join(scrub(message).split())
            failed = job.failed_report(
                run_id=None, status="failed", dry_run=dry_run, source=source, fetched=fetched, error=message
            )
            if not dry_run:
                try:
                    # a stopped run's record waits a moment only; else the transaction's own wait (busy_timeout)
                    with transaction(**({"busy_timeout_ms": STOPPED_RECORD_WAIT_MS} if stopped else {})) as written:
                        failed.run_id = record_run(written, failed, started_at=started_at, finished_at=clock())
                except Exception as unrecorded:  # the database itself may be what failed: the original error counts
                    said = unrecorded.message if isinstance(unrecorded, BappError) else type(unrecorded).__name__
                    stop = Interrupted(f"with nothing applied; its failed run was not recorded ({said})")
                    raise stop if stopped else error from None
            on_failure(failed)
            if stopped:  # its own words: the generic "nothing was changed" is untrue of a run whose record was written
                raise Interrupted(f"with nothing applied, recorded as failed run {failed.run_id}") from None
            raise
        finally:
            close_kept()  # interrupted (Ctrl-C) before the write transaction took it over


@contextlib.contextmanager
def _tuned_for_the_run(*, freeze_at_end: bool) -> Iterator[None]:
    """Pause the cyclic garbage collector and shorten the GIL's switch interval for the run.

    The page walk's thread (calendly.client) sends each request as soon as the page before it arrives, but
    while the survey imports and reads on its thread it must first get the GIL, which a busy thread holds
    for up to the switch interval (5 ms by default): 0.5 ms keeps the first request and each next one
    from waiting behind that work.

    A 10,000-type sync creates hundreds of thousands of small, acyclic objects (models, rows, parameters)
    that the collector kept re-scanning: 0.8 of its 1.6 CPU seconds (bench/sync.py, no latency).
    Reference counting still frees everything. When the run ends a process that ends with it, what it left alive
    is frozen before the collector resumes, so that neither re-enabling it nor the interpreter's exit sets off a
    full collection of objects the ending command is about to drop anyway. Not in a process that goes on: there,
    every object alive at that moment (the caller's too) would stay frozen for good, and a cycle among them never be
    collected once dropped, run after run.
    """
    enabled, interval = gc.isenabled(), sys.getswitchinterval()
    gc.disable()
    sys.setswitchinterval(0.0005)
    try:
        yield
    finally:
        sys.setswitchinterval(interval)
        if freeze_at_end:
            gc.freeze()
        if enabled:
            gc.enable()


# -- the two jobs ------------------------------------------------------------------------------------


def event_type_sync_job(*, rules: Sequence[Any], allow_empty: bool, reclassify: bool) -> CalendlyJob:
    """``calendly sync``: every page of the scope's event types, staged and planned page by page (against
    the catalogue the survey read), applied whole; the plan is written if the catalogue is unchanged by then."""
    from bapp_cli.services import sync

    plan = sync.SyncPlan(rules, reclassify=reclassify)
    scope_owner: str | None = None  # the user whose listing is fetched; none for an organization's or a saved one

    def fetch(client: CalendlyClient, user: str | None, organization: str | None) -> Iterable[ListingPage[Any]]:
        nonlocal scope_owner
        scope_owner = user
        return client.iter_event_type_pages(user=user, organization=organization)

    def prepare(items: Sequence[Any], source: str) -> list[dict[str, Any]]:
        staged = sync.stage_event_types(items, source)
        plan.add(staged)
        return staged

    apply_listing = functools.partial(
        sync.sync_event_types, plan=plan, rules=rules, allow_empty=allow_empty, reclassify=reclassify
    )
    return CalendlyJob(
        lock="calendly-sync",
        what="Calendly sync",
        fetch=fetch,
        prepare=prepare,
        # the scope's user is known once the fetch has begun (the token's own is asked for first)
        apply=lambda written, listing, **run: apply_listing(written, listing, owner=scope_owner, **run),
        failed_report=sync.SyncReport,
        survey=functools.partial(plan.read, stage=True),
        plain=True,
    )


def bookings_pull_job(
    *, since: dt.datetime | None, until: dt.datetime | None, pathway_question: Any, rules: Sequence[Any], reading: Any
) -> CalendlyJob:
    """``calendly pull-bookings``: the window's scheduled events and their invitees, applied whole; every
    invitee the pull cannot apply is parked in the webhook inbox in the same transaction (never dropped).
    ``reading()`` reads which event types bapp knows (a plain read); ``rules`` classify one it fetches."""
    from bapp_cli.calendly.client import ListingPage
    from bapp_cli.services import calendly_bookings as bookings
    from bapp_cli.services.sync import add_fetched_event_types
    from bapp_cli.services.webhook_inbox import park_pulled

    fetched: list[Any] = []
    unfetched: dict[str, str] = {}  # an event type Calendly did not give → why, said by its parked invitees
    pull = functools.partial(bookings.pull_bookings, pathway_question=pathway_question, unfetched=unfetched)

    def fetch(client: CalendlyClient, user: str | None, organization: str | None) -> Iterable[ListingPage[Any]]:
        # Walked in one piece (it fails whole): every scheduled event of the scope starting in [since, until)
        # — both statuses, every page, keyset on start_time — then every invitee of each (both statuses).
        events = client.list_scheduled_events(
            user=user, organization=organization, min_start_time=since, max_start_time=until
        )
        booked = [
            bookings.BookedInvitee(one, event) for event in events for one in client.list_event_invitees(event.uri)
        ]
        # An event type no sync lists (deleted since, another user's) is fetched by itself, as the receiver does: its
        # invitees were parked for ever, no sync bringing it. One that cannot be fetched leaves them parked, saying why
        # (a sync brings neither a type deleted in Calendly nor one the token may not read) and what may be done.
        # One Calendly answered 404 for is asked again by every pull that meets its invitees, on purpose: that is one
        # request a type (not an invitee), beside the listing's one per event, and only until its events leave the
        # pull's window; remembering the 404 would need a table of refusals (a migration) and a way to forget one,
        # and would make "the next pull asks again" (README, the parked note) false the day the answer changes
        # (another token configured, a 404 that came from a proxy or an outage, not from the type).
        with reading() as database:
            known = {uri for (uri,) in database.rows("SELECT calendly_uri FROM session_types")}
        for uri in {event.event_type for event in events if event.event_type} - known:
            try:
                fetched.append(client.get_event_type(uri))
            except BappError as exc:
                unfetched[uri] = exc.message
        return [ListingPage(1, booked)]

    def apply(session: Session, listing: list[Any], clock: Callable[[], dt.datetime], **run: Any) -> Any:
        try:  # one that cannot be stored (a slug longer than bapp keeps) leaves the invitees of all parked, saying why
            if fetched:
                add_fetched_event_types(session, fetched, rules=rules, clock=clock)
        except BappError as exc:  # a sync would not store it either
            unfetched.update(dict.fromkeys((item.uri for item in fetched), exc.message))
        report = pull(session, listing, clock=clock, **run)
        park_pulled(session, zip(listing, report.outcomes, strict=True), now=clock())
        return report

    return CalendlyJob(
        lock="calendly-bookings",
        what="Calendly bookings pull",
        fetch=fetch,
        prepare=lambda items, source: list(items),
        apply=apply,
        failed_report=bookings.BookingPullReport,
    )
