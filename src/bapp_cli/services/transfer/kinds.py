"""The kinds that import and export, in dependency order, and the two use cases over them.

`all` holds every kind of `KINDS` plus `badges` (which only a backup carries: badges are earned, not
imported by hand), written and read in this order so that every reference points backwards.
"""

from __future__ import annotations

import datetime as dt
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import IO, Any

from sqlalchemy import func, select, text
from sqlalchemy.exc import SAWarning
from sqlalchemy.orm import Session

from bapp_cli.db.audit import record_audit
from bapp_cli.db.models import (
    Badge,
    Booking,
    CalendlyInvitation,
    Enrolment,
    SessionType,
    Skill,
    User,
    UserSkillProgress,
    WebhookDelivery,
)
from bapp_cli.errors import InvalidInput, UsageError
from bapp_cli.services.transfer import store
from bapp_cli.services.transfer.bookings import EXPORT_COLUMNS as BOOKING_EXPORT_COLUMNS
from bapp_cli.services.transfer.bookings import BookingImporter, export_bookings
from bapp_cli.services.transfer.calendly_state import (
    CALENDLY_BOOKING_COLUMNS,
    INBOX_COLUMNS,
    INVITATION_COLUMNS,
    CalendlyBookingImporter,
    InboxImporter,
    InvitationImporter,
    export_calendly_bookings,
    export_inbox,
    export_invitations,
)
from bapp_cli.services.transfer.catalogue import (
    PATHWAY_EXPORT_COLUMNS,
    SESSION_EXPORT_COLUMNS,
    SKILL_EXPORT_COLUMNS,
    PathwayImporter,
    SessionImporter,
    SkillImporter,
    export_pathways,
    export_sessions,
    export_skills,
)
from bapp_cli.services.transfer.formats import RecordWriter, Source, SourceRow
from bapp_cli.services.transfer.importer import (
    ImportContext,
    ImportOptions,
    ImportSummary,
    KindImporter,
    RejectSink,
    RowError,
    refuse_if_bad,
    run_kind,
)
from bapp_cli.services.transfer.learning import (
    BADGE_EXPORT_COLUMNS,
    ENROLMENT_EXPORT_COLUMNS,
    PROGRESS_EXPORT_COLUMNS,
    BadgeImporter,
    EnrolmentImporter,
    ProgressImporter,
    export_badges,
    export_enrolments,
    export_progress,
)
from bapp_cli.services.transfer.people import (
    BUILDER_EXPORT_COLUMNS,
    CLIENT_EXPORT_COLUMNS,
    BuilderImporter,
    ClientImporter,
    export_builders,
    export_clients,
)

KINDS = ("pathways", "skills", "builders", "clients", "enrolments", "sessions", "bookings", "progress", "all")
BACKUP_FORMAT = "bapp-backup"
# 2: adds the Calendly sections (calendly_bookings, calendly_invitations, webhook_inbox); 1 is still read
BACKUP_VERSION = 2
READABLE_VERSIONS = (1, 2)


@dataclass(frozen=True)
class Kind:
    importer: type[KindImporter]
    exporter: Callable[[Session], Iterator[dict[str, Any]]]
    columns: tuple[str, ...]


# dependency order: what a row refers to is always imported before it
REGISTRY = {
    "pathways": Kind(PathwayImporter, export_pathways, PATHWAY_EXPORT_COLUMNS),
    "skills": Kind(SkillImporter, export_skills, SKILL_EXPORT_COLUMNS),
    "builders": Kind(BuilderImporter, export_builders, BUILDER_EXPORT_COLUMNS),
    "clients": Kind(ClientImporter, export_clients, CLIENT_EXPORT_COLUMNS),
    "sessions": Kind(SessionImporter, export_sessions, SESSION_EXPORT_COLUMNS),
    "enrolments": Kind(EnrolmentImporter, export_enrolments, ENROLMENT_EXPORT_COLUMNS),
    "progress": Kind(ProgressImporter, export_progress, PROGRESS_EXPORT_COLUMNS),
    "bookings": Kind(BookingImporter, export_bookings, BOOKING_EXPORT_COLUMNS),
    "badges": Kind(BadgeImporter, export_badges, BADGE_EXPORT_COLUMNS),
    # backup-only sections of the two-way Calendly state (see `calendly_state`)
    "calendly_bookings": Kind(CalendlyBookingImporter, export_calendly_bookings, CALENDLY_BOOKING_COLUMNS),
    "calendly_invitations": Kind(InvitationImporter, export_invitations, INVITATION_COLUMNS),
    "webhook_inbox": Kind(InboxImporter, export_inbox, INBOX_COLUMNS),
}
BACKUP_ORDER = tuple(REGISTRY)
# sections only a backup document (with its `bapp` header) may carry: they hold state bapp recorded itself
# (a `calendly_state` of `requested` makes `calendly reconcile` send a real booking to Calendly)
BACKUP_ONLY = ("calendly_bookings", "calendly_invitations", "webhook_inbox")


def _is_empty(session: Session) -> bool:
    """No people, sessions, skills or history yet (the default pathways a new database has don't count)."""
    for model in (
        User,
        Skill,
        SessionType,
        Booking,
        Enrolment,
        UserSkillProgress,
        Badge,
        CalendlyInvitation,
        WebhookDelivery,
    ):
        if session.scalar(select(func.count()).select_from(model)) != 0:
            return False
    return True


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
    """Import `source` as `kind` (or every kind, for `all`) in the caller's transaction."""
    if kind not in KINDS:
        raise UsageError(f"unknown kind {kind!r}", hint="choose one of: " + ", ".join(KINDS))
    errors: list[RowError] = []
    tallies = []
    restore = False
    if kind in ("bookings", "all") and session.get_bind().dialect.name == "postgresql":
        # Interactive creations check overlaps under per-person advisory locks; an import touches
        # thousands of people, so it holds off concurrent booking writers for its length instead.
        # (SQLite's write transactions are already exclusive.)
        session.execute(text("LOCK TABLE bookings IN SHARE ROW EXCLUSIVE MODE"))
    if kind == "all":
        if source.fmt not in ("json", "toml"):
            raise UsageError("`all` is one JSON or TOML document", hint="use a .json or .toml file, or --input-format")
        restore = _is_empty(session)
        context = ImportContext(session, now, options, restore=restore)
        done: list[str] = []
        backup = False
        for name, rows in source.sections():
            if name == "bapp":
                _check_header(rows)
                backup = True
                continue
            if name not in REGISTRY:
                raise InvalidInput(
                    f"the document holds {name!r}, which is not a kind",
                    hint="its top-level keys are kinds: " + ", ".join(BACKUP_ORDER),
                    code="unknown_section",
                )
            later = [other for other in done if BACKUP_ORDER.index(other) > BACKUP_ORDER.index(name)]
            if later:
                raise InvalidInput(
                    f"{name!r} comes after {later[0]!r}, which refers to it",
                    hint="order the document as `bapp export all` does: " + ", ".join(BACKUP_ORDER),
                    code="section_order",
                )
            if name in BACKUP_ONLY and not backup:
                raise InvalidInput(
                    f"{name!r} is restored only from a backup: the document has no 'bapp' header before it",
                    hint="restore the document `bapp export all` wrote, unedited",
                    code="not_a_backup",
                )
            done.append(name)
            importer = REGISTRY[name].importer(context)
            tallies.append(run_kind(importer, rows, errors=errors, rejects=rejects, on_batch=on_batch, label=name))
    else:
        importer = REGISTRY[kind].importer(ImportContext(session, now, options))
        source.on_header = importer.check_header
        rows = _section(source, kind)
        tallies.append(run_kind(importer, rows, errors=errors, rejects=rejects, on_batch=on_batch))
    if restore:
        from bapp_cli.db.models import Pathway

        store.reset_sequences(
            session,
            [
                model.__table__
                for model in (
                    Pathway,
                    User,
                    Skill,
                    SessionType,
                    Enrolment,
                    UserSkillProgress,
                    Booking,
                    Badge,
                    CalendlyInvitation,
                    WebhookDelivery,
                )
            ],
        )
    summary = ImportSummary(kind, tallies, options.dry_run, errors, restored=restore)
    refuse_if_bad(summary, continue_on_error=options.continue_on_error)
    record_audit(
        session,
        "import",
        kind,
        {"source": options.source_name, **{key: value for key, value in summary.as_record().items() if key != "kind"}},
    )
    return summary


def _section(source: Source, kind: str) -> Iterator[SourceRow]:
    """The rows for `kind`: the whole file, or its `kind` array in a document that holds several kinds."""
    names = []
    for name, rows in source.sections():
        if name is None or name == kind:
            yield from rows
            return
        names.append(name)
        for _ in rows:  # skip another kind's rows (streamed past, not kept)
            pass
    raise InvalidInput(
        f"the document holds no {kind!r}" + (f" (it holds: {', '.join(names)})" if names else ""),
        code="missing_section",
    )


def _check_header(rows: Iterator[SourceRow]) -> None:
    for row in rows:
        header = row.original.get("value")  # the header is a value, not an array of rows
        if not isinstance(header, dict) or header.get("format") != BACKUP_FORMAT:
            raise InvalidInput(f"'bapp' must describe a {BACKUP_FORMAT} document", code="bad_backup")
        version = header.get("version")
        if type(version) is not int or version not in READABLE_VERSIONS:
            raise InvalidInput(
                f"backup version {version!r} is not supported (this bapp reads versions "
                + ", ".join(str(known) for known in READABLE_VERSIONS)
                + ")",
                code="bad_backup",
            )


def export_data(session: Session, kind: str, stream: IO[str], fmt: str, *, raw: bool = False) -> int:
    """Write every record of `kind` to `stream`; returns how many records were written.

    `raw`: CSV/TSV text cells exactly as stored, without the spreadsheet-safe prefix."""
    if kind not in KINDS:
        raise UsageError(f"unknown kind {kind!r}", hint="choose one of: " + ", ".join(KINDS))
    if session.get_bind().dialect.name == "postgresql":
        # One snapshot for every query, so a backup taken while others write is consistent (SQLite's read
        # transaction already is one). A caller whose transaction has already run a query keeps its own
        # isolation, which SQLAlchemy says with a warning.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", SAWarning)
            session.connection(execution_options={"isolation_level": "REPEATABLE READ"})
    if kind != "all":
        spec = REGISTRY[kind]
        writer = RecordWriter(stream, fmt, spec.columns, kind=kind, raw=raw)
        for record in spec.exporter(session):
            writer.write(record)
        writer.close()
        return writer.count
    if fmt not in ("json", "toml"):
        raise UsageError("`export all` writes one JSON or TOML document", hint="use --format json or toml")
    from bapp_cli.db.migration import HEAD_REVISION

    header = {"format": BACKUP_FORMAT, "version": BACKUP_VERSION, "revision": HEAD_REVISION}
    total = 0
    if fmt == "json":
        import json

        stream.write("{" + json.dumps("bapp") + ": " + json.dumps(header))
        for name in BACKUP_ORDER:
            spec = REGISTRY[name]
            stream.write(",\n" + json.dumps(name) + ": ")
            writer = RecordWriter(stream, "json", spec.columns, kind=name)
            for record in spec.exporter(session):
                writer.write(record)
            writer.close()
            total += writer.count
        stream.write("}\n")
        return total
    import tomli_w

    stream.write(tomli_w.dumps({"bapp": header}) + "\n")
    for name in BACKUP_ORDER:
        spec = REGISTRY[name]
        writer = RecordWriter(stream, "toml", spec.columns, kind=name)
        for record in spec.exporter(session):
            writer.write(record)
        writer.close()
        total += writer.count
    return total
