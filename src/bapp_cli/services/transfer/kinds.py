"""The kinds that import and export, in dependency order, and the two use cases over them.

`all` holds every kind `bapp import` takes (cli.transfer.KINDS) plus `badges` (which only a backup carries:
badges are earned, not imported by hand), written and read in this order so that every reference points
backwards.
"""

from __future__ import annotations

import datetime as dt
import warnings
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from functools import cache, partial
from typing import IO, Any, Required, get_origin, get_type_hints

from sqlalchemy import select
from sqlalchemy.exc import SAWarning
from sqlalchemy.orm import Session

from bapp_cli.db import bulk, models
from bapp_cli.db.audit import record_audit
from bapp_cli.db.locks import lock_for_import
from bapp_cli.errors import InvalidInput, UsageError
from bapp_cli.services.builders import BUILDER_COLUMNS, calendly_users_held_twice, list_builders
from bapp_cli.services.pathways import list_pathways
from bapp_cli.services.plain_reads import list_clients
from bapp_cli.services.transfer import bookings, calendly_state, catalogue, learning, people
from bapp_cli.services.transfer.formats import RecordWriter, RowError, Source, SourceRow
from bapp_cli.services.transfer.importer import (
    ImportOptions,
    ImportSummary,
    KindImporter,
    RejectSink,
    refuse_if_bad,
    run_kind,
)

BACKUP_FORMAT = "bapp-backup"
# 2: adds the Calendly sections (calendly_bookings, calendly_invitations, webhook_inbox); 3: builders' own_name and
# account_name (a bapp reading 2 refuses the columns); the earlier are still read. A column a kind's export gained
# since (progress' updated_at, a badge's revocation, calendly_hold_made) is one an older backup's rows lack, which
# `import_data` fills with null: its importer must read that null as a merge should (those three do)
BACKUP_VERSION = 3
READABLE_VERSIONS = (1, 2, 3)


@dataclass(frozen=True)
class Kind:
    importer: type[KindImporter]
    exporter: Callable[[Session], Iterable[dict[str, Any]]]
    # what the export writes; by default the import's row schema, so a round trip reads back what it wrote
    exported: tuple[str, ...] | None = None
    backed_up: Callable[[Session], Iterable[dict[str, Any]]] | None = None  # a backup's records, if not `exporter`'s


# dependency order: what a row refers to is always imported before it
REGISTRY = {
    # pathways, builders and clients: their listings' records with the stored id (and a pathway's creation time)
    "pathways": Kind(catalogue.PathwayImporter, partial(list_pathways, stored=True)),
    "skills": Kind(catalogue.SkillImporter, catalogue.export_skills),
    "builders": Kind(
        people.BuilderImporter, partial(list_builders, with_id=True), ("id", *BUILDER_COLUMNS), people.export_builders
    ),
    "clients": Kind(people.ClientImporter, partial(list_clients, with_id=True)),
    "sessions": Kind(catalogue.SessionImporter, catalogue.export_sessions),
    "enrolments": Kind(learning.EnrolmentImporter, learning.export_enrolments, learning.ENROLMENT_EXPORT_COLUMNS),
    "progress": Kind(learning.ProgressImporter, learning.export_progress),
    "bookings": Kind(bookings.BookingImporter, bookings.export_bookings, bookings.EXPORT_COLUMNS),
    "badges": Kind(learning.BadgeImporter, learning.export_badges, learning.BADGE_EXPORT_COLUMNS),
    # backup-only sections of the two-way Calendly state (see `calendly_state`)
    "calendly_bookings": Kind(calendly_state.CalendlyBookingImporter, calendly_state.export_calendly_bookings),
    "calendly_invitations": Kind(calendly_state.InvitationImporter, calendly_state.export_invitations),
    "webhook_inbox": Kind(calendly_state.InboxImporter, calendly_state.export_inbox),
}
BACKUP_ORDER = tuple(REGISTRY)
# each kind's columns as its export writes them (`Kind.exported`)
_EXPORTED = {name: spec.exported or tuple(spec.importer.schema.__annotations__) for name, spec in REGISTRY.items()}


@cache  # read by the imports of backups only: the type hints cost milliseconds
def _nulls(kind: str) -> dict[str, None]:
    """The columns of `kind` a backup's row lacks, as nulls (TOML leaves a null out), but for the required ones: a
    row without one is refused as "required", not as a null of the wrong type."""
    hints = get_type_hints(REGISTRY[kind].importer.schema, include_extras=True)
    return dict.fromkeys(name for name in _EXPORTED[kind] if get_origin(hints[name]) is not Required)


# sections only a backup document (with its `bapp` header) may carry: they hold state bapp recorded itself
# (a `calendly_state` of `requested` makes `calendly reconcile` send a real booking to Calendly)
BACKUP_ONLY = ("calendly_bookings", "calendly_invitations", "webhook_inbox")


# every table a backup restores with its ids, in dependency order
_RESTORED_MODELS = (
    models.Pathway,
    models.User,
    models.Skill,
    models.SessionType,
    models.Enrolment,
    models.UserSkillProgress,
    models.Booking,
    models.Badge,
    models.CalendlyInvitation,
    models.WebhookDelivery,
)


def import_data(
    session: Session,
    kind: str,
    source: Source,
    *,
    options: ImportOptions,
    now: dt.datetime,
    rejects: RejectSink | None = None,
    on_batch: Callable[[int], None] | None = None,
) -> ImportSummary:
    """Import `source` as `kind` (a kind or `all`: the command checked it) in the caller's transaction."""
    errors: list[RowError] = []
    tallies = []
    lock_for_import(session, kind)  # a new pathway goes after the last; the catalogue as it stands till commit
    if kind == "all" and source.fmt not in ("json", "toml"):
        raise UsageError("`all` is one JSON or TOML document", hint="use a .json or .toml file, or --input-format")
    # a restore: `all` into an empty database — no people, sessions, skills or history; the default pathways a new
    # database has (Pathway, first of the models) don't count
    restore = kind == "all" and all(session.scalar(select(model.id).limit(1)) is None for model in _RESTORED_MODELS[1:])
    renamed: dict[tuple[str, str], str] = {}  # by a restore's pathways and sessions, for the kinds after them
    run = partial(run_kind, source=source, errors=errors, rejects=rejects, on_batch=on_batch)
    if kind == "all":
        awarded: set[tuple[int, str]] = set()  # by the completion rules, for the badges section
        done: list[str] = []
        recorded: set[tuple[str, str]] | None = None  # a backup's: `KindImporter.recorded`
        for name, rows in source.sections():
            if name == "bapp":
                _check_header(rows)
                recorded = set()
                continue
            if name not in REGISTRY:  # None: a top-level array, one kind's rows
                held = f"holds {name!r}, which is not a kind" if name else "is an array of rows"
                hint = "its top-level keys are kinds: " + ", ".join(BACKUP_ORDER)
                raise InvalidInput(f"the document {held}", hint=hint, code="unknown_section")
            if name in done:  # both would be imported, the summary counting the second (json.loads keeps only it)
                raise _held_twice(name)
            if later := [other for other in done if BACKUP_ORDER.index(other) > BACKUP_ORDER.index(name)]:
                message = f"{name!r} comes after {later[0]!r}, which refers to it"
                hint = "order the document as `bapp export all` does: " + ", ".join(BACKUP_ORDER)
                raise InvalidInput(message, hint=hint, code="section_order")
            if name in BACKUP_ONLY and recorded is None:
                message = f"{name!r} is restored only from a backup: the document has no 'bapp' header before it"
                hint = "restore the document `bapp export all` wrote, unedited"
                raise InvalidInput(message, hint=hint, code="not_a_backup")
            done.append(name)
            if recorded is not None:  # a backup's row is the whole record: a column it lacks is null, which TOML omits
                nulls = _nulls(name)
                rows = (SourceRow(row.line, {**nulls, **row.values}, row.original, row.problem) for row in rows)
            importer = REGISTRY[name].importer(session, now, options, restore, renamed, awarded, recorded)
            tallies.append(run(importer, rows, label=name))
            if restore:  # after each kind: a later kind may create a record (a booking's unknown client, an enrolment)
                bulk.reset_sequences(session, [model.__table__ for model in _RESTORED_MODELS])
    else:
        importer = REGISTRY[kind].importer(session, now, options)
        source.on_header = importer.check_header
        tallies.append(run(importer, _section(source, kind)))
    summary = ImportSummary(kind, tallies, options.dry_run, errors, restored=restore, renamed=renamed)
    if kind == "all":
        summary.shared_calendly_users = calendly_users_held_twice(session)
    refuse_if_bad(summary, continue_on_error=options.continue_on_error)
    counts = {key: value for key, value in summary.as_record().items() if key != "kind"}
    record_audit(session, "import", kind, {"source": options.source_name, **counts})
    return summary


def _held_twice(kind: str) -> InvalidInput:
    """A document naming `kind` twice, which `import all` and `import <kind>` refuse alike."""
    return InvalidInput(f"the document holds {kind!r} twice; nothing was written", code="section_twice")


def _section(source: Source, kind: str) -> Iterator[SourceRow]:
    """The rows for `kind`: the whole file, or its `kind` array in a document that holds several kinds (none in an
    empty one)."""
    names: list[str] = []
    for name, rows in source.sections():  # read to its end: a second array of the kind, or a flaw after it, is found
        if name in (None, kind) and kind in names:
            raise _held_twice(kind)
        names.append(name or kind)
        yield from rows if name in (None, kind) else ()
        for _ in rows:  # skip another kind's rows (streamed past, not kept)
            pass
    # an empty document holds no rows: an export of nothing in TOML, which has no empty array of tables
    if names and kind not in names:
        raise InvalidInput(f"the document holds no {kind!r} (it holds: {', '.join(names)})", code="missing_section")


def _check_header(rows: Iterator[SourceRow]) -> None:
    for row in rows:
        header = row.original.get("value")  # the header is a value, not an array of rows
        if not isinstance(header, dict) or header.get("format") != BACKUP_FORMAT:
            raise InvalidInput(f"'bapp' must describe a {BACKUP_FORMAT} document", code="bad_backup")
        version = header.get("version")
        if type(version) is not int or version not in READABLE_VERSIONS:
            readable = ", ".join(map(str, READABLE_VERSIONS))
            message = f"backup version {version!r} is not supported (this bapp reads versions {readable})"
            raise InvalidInput(message, code="bad_backup")


def export_data(session: Session, kind: str, stream: IO[str], fmt: str, *, raw: bool = False) -> int:
    """Write every record of `kind` to `stream`; returns how many records were written.

    `kind` is a kind or `all` (the command checked it); `raw`: CSV/TSV text cells exactly as stored, without the
    spreadsheet-safe prefix."""
    if session.get_bind().dialect.name == "postgresql":
        # One snapshot for every query, so a backup taken while others write is consistent (SQLite's read
        # transaction already is one). A caller whose transaction has already run a query keeps its own
        # isolation, which SQLAlchemy says with a warning.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", SAWarning)
            session.connection(execution_options={"isolation_level": "REPEATABLE READ"})
    if kind != "all":
        return _write_kind(session, kind, stream, fmt, raw=raw)
    if fmt not in ("json", "toml"):
        raise UsageError("`export all` writes one JSON or TOML document", hint="use --format json or toml")
    from bapp_cli.db.migration import HEAD_REVISION

    header = {"format": BACKUP_FORMAT, "version": BACKUP_VERSION, "revision": HEAD_REVISION}
    if fmt == "toml":
        import tomli_w

        stream.write(tomli_w.dumps({"bapp": header}) + "\n")
        return sum(_write_kind(session, name, stream, fmt, backup=True) for name in BACKUP_ORDER)
    import json

    stream.write("{" + json.dumps("bapp") + ": " + json.dumps(header))
    total = 0
    for name in BACKUP_ORDER:
        stream.write(",\n" + json.dumps(name) + ": ")
        total += _write_kind(session, name, stream, fmt, backup=True)
    stream.write("}\n")
    return total


def _write_kind(session: Session, kind: str, out: IO[str], fmt: str, *, raw: bool = False, backup: bool = False) -> int:
    spec = REGISTRY[kind]
    exporter = (backup and spec.backed_up) or spec.exporter  # a backup's columns beyond the kind's come last
    return RecordWriter(out, fmt, _EXPORTED[kind], kind=kind, raw=raw).write_all(exporter(session))
