"""The whole data model as typed SQLAlchemy 2 models.

Natural keys are unique, closed value sets are CHECK constraints, and foreign keys never cascade
deletes: removing history is done by archiving. The Alembic chain in `migrations/` must build exactly
this schema (`bapp db check` compares the two).

No `from __future__ import annotations` here: with it every `Mapped[...]` annotation is a string that SQLAlchemy
evaluates again (eval per column) while it builds the classes, which every writing command does at start-up; as
objects they are read as they are (0.046 G instructions, ~15 % of building the models).
"""

import datetime as dt
from decimal import Decimal
from typing import Any, ClassVar

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    Connection,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    event,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from bapp_cli.db.domains import (
    BOOKING_SOURCES,
    BOOKING_STATUSES,
    COMPLETION_METHODS,
    ENROLMENT_STATUSES,
    MAX_SESSION_SLUG_LENGTH,
    MAX_TITLE_LENGTH,
    PAYMENT_STATUSES,
    PROGRESS_STATUSES,
    SESSION_CATEGORIES,
    SESSION_KINDS,
    SYNC_KINDS,
    SYNC_STATUSES,
    URI_LENGTH,
)
from bapp_cli.db.types import Day, Json, Money, UTCDateTime, Whole, named_columns

# the columns' sets of values are re-exported, as most code looks for them beside the models (lengths: db.domains)
__all__ = [
    "BOOKING_SOURCES",
    "BOOKING_STATUSES",
    "COMPLETION_METHODS",
    "ENROLMENT_STATUSES",
    "PAYMENT_STATUSES",
    "PROGRESS_STATUSES",
    "SESSION_CATEGORIES",
    "SESSION_KINDS",
    "SYNC_KINDS",
    "SYNC_STATUSES",
]

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

WEBHOOK_DELIVERY_STATUSES = ("pending", "applied")
WEBHOOK_DELIVERY_SOURCES = ("receiver", "apply", "pull")
# Where a booking sent to Calendly stands (NULL: never sent, bapp-only or pulled from Calendly):
# requested — committed before POST /invitees, the answer not in yet; unknown — the answer was lost and
# neither the lookup nor one resend settled it; booked — Calendly holds the invitee; failed — given up.
CALENDLY_STATES = ("requested", "unknown", "booked", "failed")
INVITATION_STATUSES = ("open", "used")


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def one_of(column: str, values: tuple[str, ...]) -> str:
    """A CHECK's list of allowed values as `=` … `OR`: SQLite builds an ephemeral table for an `IN (…)` list of a
    CHECK at every row it writes, and a bookings import writes bookings and enrolments (migration 0018)."""
    return " OR ".join(f"{column} = '{value}'" for value in values)


def listed_in(column: str, values: tuple[str, ...]) -> str:
    """A CHECK's list of allowed values as `IN (…)`, the form the tables 0018 did not rewrite still have, so that the
    models say what a migrated database holds (the two forms mean the same)."""
    return f"{column} IN ({', '.join(repr(value) for value in values)})"


def _where_set(column: str) -> dict[str, Any]:
    """A partial index's condition, only the rows where `column` has a value, given to the backend that creates
    the table in its own keyword (`_partial_index_conditions`). Naming `postgresql_where` here would make
    SQLAlchemy import its whole PostgreSQL dialect, to check the keyword, on every command that loads the models,
    SQLite runs included (0.15 G instructions, ~0.02 s of a sync)."""
    return {"info": {"where": text(f"{column} IS NOT NULL")}}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map: ClassVar[dict[Any, Any]] = {
        dt.datetime: UTCDateTime(),
        dt.date: Day(),
        # A missing value is SQL NULL on every path (ORM, Core, db.bulk) and backend, never the JSON text
        # 'null' on some and NULL on others: `IS NULL` then means the same everywhere.
        dict[str, Any]: Json(),
        list[Any]: Json(),
    }


class TimestampMixin:
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class User(TimestampMixin, Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(254), unique=True)
    name: Mapped[str | None] = mapped_column(String(200))


class ClientProfile(Base):
    __tablename__ = "client_profiles"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), unique=True)
    company: Mapped[str | None] = mapped_column(String(200))
    industry: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class BuilderProfile(TimestampMixin, Base):
    __tablename__ = "builder_profiles"
    __table_args__ = (
        CheckConstraint("buffer_minutes >= 0", name="buffer_minutes_non_negative"),
        CheckConstraint("minimum_notice_hours >= 0", name="minimum_notice_non_negative"),
        CheckConstraint("max_advance_days IS NULL OR max_advance_days > 0", name="max_advance_positive"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), unique=True)
    display_name: Mapped[str | None] = mapped_column(String(200))
    timezone: Mapped[str] = mapped_column(String(64), default="UTC")
    calendly_user_uri: Mapped[str | None] = mapped_column(String(URI_LENGTH), unique=True)
    buffer_minutes: Mapped[int] = mapped_column(Whole(), default=0)
    minimum_notice_hours: Mapped[int] = mapped_column(Whole(), default=0)
    max_advance_days: Mapped[int | None] = mapped_column(Whole())
    accepting_bookings: Mapped[bool] = mapped_column(Boolean, default=True)


class Pathway(TimestampMixin, Base):
    __tablename__ = "pathways"

    id: Mapped[int] = mapped_column(primary_key=True)
    slug: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(100))
    description: Mapped[str | None] = mapped_column(Text)
    icon: Mapped[str | None] = mapped_column(String(16))
    color: Mapped[str | None] = mapped_column(String(7))
    position: Mapped[int] = mapped_column(Whole(), default=0)
    archived: Mapped[bool] = mapped_column(Boolean, default=False)


class PathwayTier(Base):
    __tablename__ = "pathway_tiers"
    __table_args__ = (
        UniqueConstraint("pathway_id", "tier"),
        CheckConstraint("tier >= 1", name="tier_positive"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    pathway_id: Mapped[int] = mapped_column(ForeignKey("pathways.id"))
    tier: Mapped[int] = mapped_column(Whole())
    name: Mapped[str] = mapped_column(String(100))
    description: Mapped[str | None] = mapped_column(Text)


class Enrolment(TimestampMixin, Base):
    """The seed's ClientPathway: one per client and pathway."""

    __tablename__ = "enrolments"
    __table_args__ = (
        UniqueConstraint("client_id", "pathway_id"),
        CheckConstraint(one_of("status", ENROLMENT_STATUSES), name="status"),
        Index("ix_enrolments_pathway_status", "pathway_id", "status"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    client_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    pathway_id: Mapped[int] = mapped_column(ForeignKey("pathways.id"))
    status: Mapped[str] = mapped_column(String(16), default="active")
    start_date: Mapped[dt.date] = mapped_column()
    completed_at: Mapped[dt.datetime | None] = mapped_column()
    builder_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"), index=True)


class SessionType(TimestampMixin, Base):
    """A bookable session: Calendly-owned fields (sync writes them) and curated ones (sync never does)."""

    __tablename__ = "session_types"
    __table_args__ = (
        CheckConstraint(listed_in("category", SESSION_CATEGORIES), name="category"),
        CheckConstraint(listed_in("kind", SESSION_KINDS), name="kind"),
        CheckConstraint("duration_minutes > 0", name="duration_positive"),
        CheckConstraint("price >= 0", name="price_non_negative"),
        Index("ix_session_types_bookable_order", "category", "display_order"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    # Calendly-owned
    calendly_uri: Mapped[str | None] = mapped_column(String(URI_LENGTH), unique=True)
    # unique: sessions are named by slug on the command line and in imports (issue 15 #6)
    slug: Mapped[str | None] = mapped_column(String(MAX_SESSION_SLUG_LENGTH), index=True, unique=True)
    title: Mapped[str] = mapped_column(String(MAX_TITLE_LENGTH))
    description: Mapped[str | None] = mapped_column(Text)
    duration_minutes: Mapped[int] = mapped_column(Whole(least=1))
    duration_options: Mapped[list[Any] | None] = mapped_column()
    kind: Mapped[str] = mapped_column(String(8), default="solo")
    color: Mapped[str | None] = mapped_column(String(7))
    scheduling_url: Mapped[str | None] = mapped_column(String(URI_LENGTH))
    is_secret: Mapped[bool] = mapped_column(Boolean, default=False)
    remote_active: Mapped[bool] = mapped_column(Boolean, default=True)
    custom_questions: Mapped[list[Any]] = mapped_column(default=list)
    owner_uri: Mapped[str | None] = mapped_column(String(URI_LENGTH))
    builder_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"), index=True)
    calendly_position: Mapped[int | None] = mapped_column(Whole())
    remote_updated_at: Mapped[dt.datetime | None] = mapped_column()
    remote_deleted_at: Mapped[dt.datetime | None] = mapped_column()
    invitee_limit: Mapped[int | None] = mapped_column(Whole())
    # sync bookkeeping: false once the type vanished from the last successful listing
    present_in_last_sync: Mapped[bool] = mapped_column(Boolean, default=True)
    last_synced_at: Mapped[dt.datetime | None] = mapped_column()
    # curated locally
    category: Mapped[str] = mapped_column(String(16), default="specialized")
    requires_auth: Mapped[bool] = mapped_column(Boolean, default=True)
    price: Mapped[Decimal] = mapped_column(Money(), default=Decimal("0.00"))
    currency: Mapped[str] = mapped_column(String(3), default="GBP")
    display_order: Mapped[int] = mapped_column(Whole(), default=0)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)


class SessionTypePathway(Base):
    __tablename__ = "session_type_pathways"

    session_type_id: Mapped[int] = mapped_column(ForeignKey("session_types.id"), primary_key=True)
    pathway_id: Mapped[int] = mapped_column(ForeignKey("pathways.id"), primary_key=True, index=True)


class Booking(TimestampMixin, Base):
    __tablename__ = "bookings"
    __table_args__ = (
        CheckConstraint(one_of("status", BOOKING_STATUSES), name="status"),
        CheckConstraint(one_of("payment_status", PAYMENT_STATUSES), name="payment_status"),
        CheckConstraint(one_of("source", BOOKING_SOURCES), name="source"),
        CheckConstraint("end_time > start_time", name="end_after_start"),
        CheckConstraint("amount >= 0", name="amount_non_negative"),
        # the booking overlap checks (a builder or client in two sessions at once) scan these by person and time
        Index("ix_bookings_builder_time", "builder_id", "start_time"),
        Index("ix_bookings_client_time", "client_id", "start_time"),
        Index("ix_bookings_pathway_time", "pathway_id", "start_time"),
        Index("ix_bookings_session_time", "session_type_id", "start_time"),
        Index("ix_bookings_start_time", "start_time"),
        # Most bookings have none of these (every import, every booking made here without a key): partial
        # indexes hold only the rows with a value, so those cost no index work (migration 0012)
        *(
            Index(name, column, unique=unique, **_where_set(column))
            for name, column, unique in (
                ("ix_bookings_calendly_event_uri", "calendly_event_uri", False),
                ("uq_bookings_calendly_invitee_uri", "calendly_invitee_uri", True),
                ("uq_bookings_idempotency_key", "idempotency_key", True),
                ("ix_bookings_calendly_state", "calendly_state", False),
            )
        ),
        CheckConstraint(
            "calendly_state IS NULL OR " + one_of("calendly_state", CALENDLY_STATES), name="calendly_state"
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    reference: Mapped[str] = mapped_column(String(16), unique=True)
    client_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    builder_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    session_type_id: Mapped[int] = mapped_column(ForeignKey("session_types.id"))
    start_time: Mapped[dt.datetime] = mapped_column()
    end_time: Mapped[dt.datetime] = mapped_column()
    client_timezone: Mapped[str] = mapped_column(String(64), default="UTC")
    status: Mapped[str] = mapped_column(String(16))
    payment_status: Mapped[str] = mapped_column(String(16))
    amount: Mapped[Decimal] = mapped_column(Money(), default=Decimal("0.00"))
    currency: Mapped[str] = mapped_column(String(3), default="GBP")
    pathway_id: Mapped[int | None] = mapped_column(ForeignKey("pathways.id"))
    custom_question_responses: Mapped[list[Any]] = mapped_column(default=list)
    calendly_event_uri: Mapped[str | None] = mapped_column(String(URI_LENGTH))
    calendly_invitee_uri: Mapped[str | None] = mapped_column(String(URI_LENGTH))
    idempotency_key: Mapped[str | None] = mapped_column(String(200))
    # a digest of the request that created the booking: same key + other data is a conflict
    request_fingerprint: Mapped[str | None] = mapped_column(String(64))
    source: Mapped[str] = mapped_column(String(16), default="cli")
    cancellation_reason: Mapped[str | None] = mapped_column(Text)
    cancelled_at: Mapped[dt.datetime | None] = mapped_column()
    # Calendly's updated_at of the invitee last applied: older deliveries are ignored
    remote_updated_at: Mapped[dt.datetime | None] = mapped_column()
    # write-through to Calendly (R8 in docs/reliability.md): the intent is committed before the request is sent, and
    # attempts is raised before each POST /invitees, so a lost answer is looked up, never resent blindly
    calendly_state: Mapped[str | None] = mapped_column(String(16))
    calendly_attempts: Mapped[int] = mapped_column(Whole(), default=0, server_default="0")
    calendly_requested_at: Mapped[dt.datetime | None] = mapped_column()
    calendly_cancel_url: Mapped[str | None] = mapped_column(String(URI_LENGTH))
    calendly_reschedule_url: Mapped[str | None] = mapped_column(String(URI_LENGTH))
    calendly_join_url: Mapped[str | None] = mapped_column(String(URI_LENGTH))
    calendly_no_show_uri: Mapped[str | None] = mapped_column(String(URI_LENGTH))
    # when the no-show change last applied happened in Calendly: no-show deliveries leave the invitee's
    # updated_at alone, so this orders them (a retried .created after its .deleted changes nothing)
    calendly_no_show_at: Mapped[dt.datetime | None] = mapped_column()
    # what holding it for Calendly made (the client's account, their enrolment), as it left them: a removal of the
    # hold deletes only those still so, in the sending process or a later reconcile (migration 0016)
    calendly_hold_made: Mapped[dict[str, Any] | None] = mapped_column()


@event.listens_for(Booking.__table__, "before_create")
def _partial_index_conditions(table: Table, connection: Connection, **_kw: Any) -> None:
    """Each partial index's condition, in the keyword of the dialect creating the table (`sqlite_where`,
    `postgresql_where`), before its indexes are created (see `_where_set`)."""
    for index in table.indexes:
        if "where" in index.info:
            index.dialect_kwargs[f"{connection.dialect.name}_where"] = index.info["where"]


class CalendlyInvitation(Base):
    """A single-use Calendly scheduling link sent to a client (`bookings link`); the pull or a webhook
    marks it used when the client's booking of that event type arrives."""

    __tablename__ = "calendly_invitations"
    __table_args__ = (
        CheckConstraint(listed_in("status", INVITATION_STATUSES), name="status"),
        Index("ix_calendly_invitations_client_status", "client_id", "status"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    client_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    session_type_id: Mapped[int] = mapped_column(ForeignKey("session_types.id"))
    booking_url: Mapped[str] = mapped_column(String(URI_LENGTH), unique=True)
    status: Mapped[str] = mapped_column(String(16), default="open")
    booking_id: Mapped[int | None] = mapped_column(ForeignKey("bookings.id"))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    used_at: Mapped[dt.datetime | None] = mapped_column()


class Skill(TimestampMixin, Base):
    __tablename__ = "skills"

    id: Mapped[int] = mapped_column(primary_key=True)
    slug: Mapped[str] = mapped_column(String(100), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str | None] = mapped_column(Text)
    domain: Mapped[str | None] = mapped_column(String(100))
    is_fundamental: Mapped[bool] = mapped_column(Boolean, default=False)
    archived: Mapped[bool] = mapped_column(Boolean, default=False)


class SkillPathwayLink(Base):
    """A skill sits in a pathway at exactly one tier, and that tier must exist."""

    __tablename__ = "skill_pathway_links"
    __table_args__ = (
        UniqueConstraint("skill_id", "pathway_id"),
        ForeignKeyConstraint(
            ["pathway_id", "tier"],
            ["pathway_tiers.pathway_id", "pathway_tiers.tier"],
            name="fk_skill_pathway_links_pathway_tier",
        ),
        Index("ix_skill_pathway_links_pathway_tier", "pathway_id", "tier"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    skill_id: Mapped[int] = mapped_column(ForeignKey("skills.id"))
    pathway_id: Mapped[int] = mapped_column(ForeignKey("pathways.id"))
    tier: Mapped[int] = mapped_column(Whole())


class UserSkillProgress(TimestampMixin, Base):
    __tablename__ = "user_skill_progress"
    __table_args__ = (
        UniqueConstraint("client_id", "skill_id"),
        CheckConstraint(listed_in("status", PROGRESS_STATUSES), name="status"),
        CheckConstraint(
            "completion_method IS NULL OR " + listed_in("completion_method", COMPLETION_METHODS),
            name="completion_method",
        ),
        CheckConstraint("attempts >= 0", name="attempts_non_negative"),
        Index("ix_user_skill_progress_skill_status", "skill_id", "status"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    client_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    skill_id: Mapped[int] = mapped_column(ForeignKey("skills.id"))
    status: Mapped[str] = mapped_column(String(16), default="not_started")
    started_at: Mapped[dt.datetime | None] = mapped_column()
    completed_at: Mapped[dt.datetime | None] = mapped_column()
    completion_method: Mapped[str | None] = mapped_column(String(32))
    validated_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    notes: Mapped[str | None] = mapped_column(Text)
    attempts: Mapped[int] = mapped_column(Whole(), default=0)
    last_attempt_at: Mapped[dt.datetime | None] = mapped_column()
    pathway_id: Mapped[int | None] = mapped_column(ForeignKey("pathways.id"))


class Badge(Base):
    __tablename__ = "badges"
    __table_args__ = (UniqueConstraint("client_id", "key"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    client_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    key: Mapped[str] = mapped_column(String(100))
    awarded_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    # Badges stay awarded; a revocation only stops the exported credential verifying.
    revoked_at: Mapped[dt.datetime | None] = mapped_column()
    revocation_reason: Mapped[str | None] = mapped_column(Text)


class SyncRun(Base):
    __tablename__ = "sync_runs"
    __table_args__ = (
        CheckConstraint(listed_in("kind", SYNC_KINDS), name="kind"),
        CheckConstraint(listed_in("status", SYNC_STATUSES), name="status"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(16), default="event_types")
    source: Mapped[str] = mapped_column(String(16))
    started_at: Mapped[dt.datetime] = mapped_column(index=True)
    finished_at: Mapped[dt.datetime | None] = mapped_column()
    status: Mapped[str] = mapped_column(String(16))
    dry_run: Mapped[bool] = mapped_column(Boolean, default=False)
    fetched: Mapped[int] = mapped_column(Whole(), default=0)
    created: Mapped[int] = mapped_column(Whole(), default=0)
    updated: Mapped[int] = mapped_column(Whole(), default=0)
    unchanged: Mapped[int] = mapped_column(Whole(), default=0)
    deactivated: Mapped[int] = mapped_column(Whole(), default=0)
    reactivated: Mapped[int] = mapped_column(Whole(), default=0)
    skipped: Mapped[int] = mapped_column(Whole(), default=0)
    error: Mapped[str | None] = mapped_column(Text)


class WebhookDelivery(Base):
    """The webhook inbox: a verified delivery (or pulled invitee) that could not be applied when it came.

    Kept as received so a later sync, pull or `webhook retry` can apply it; never deleted, so the inbox
    is also the record of what was parked and when it was finally applied. ``body_sha256`` makes parking
    idempotent: Calendly's retries of one delivery are one row.
    """

    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        CheckConstraint(listed_in("status", WEBHOOK_DELIVERY_STATUSES), name="status"),
        CheckConstraint(listed_in("source", WEBHOOK_DELIVERY_SOURCES), name="source"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    event: Mapped[str] = mapped_column(String(64))
    source: Mapped[str] = mapped_column(String(16))
    body: Mapped[str] = mapped_column(Text)
    body_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    headers: Mapped[dict[str, Any]] = mapped_column(default=dict)
    invitee_uri: Mapped[str | None] = mapped_column(String(URI_LENGTH), index=True)
    status: Mapped[str] = mapped_column(String(16), index=True)
    received_at: Mapped[dt.datetime] = mapped_column()
    attempts: Mapped[int] = mapped_column(Whole(), default=1)
    last_attempt_at: Mapped[dt.datetime | None] = mapped_column()
    last_error: Mapped[str | None] = mapped_column(Text)
    applied_at: Mapped[dt.datetime | None] = mapped_column()
    outcome: Mapped[str | None] = mapped_column(String(200))


class AuditEntry(Base):
    __tablename__ = "audit_entries"
    # db.audit.moved_from reads one entity's key newest first (a no-show taken back): without a sort (migration 0020)
    __table_args__ = (Index("ix_audit_entries_entity_key", "entity", "entity_key", "id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[dt.datetime] = mapped_column(default=utcnow, index=True)
    actor: Mapped[str] = mapped_column(String(200))
    command: Mapped[str] = mapped_column(String(200))
    entity: Mapped[str] = mapped_column(String(64))
    entity_key: Mapped[str | None] = mapped_column(String(500))
    changes: Mapped[dict[str, Any]] = mapped_column(default=dict)


named_columns(Base.metadata)
