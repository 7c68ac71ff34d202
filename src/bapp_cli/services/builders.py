"""Builders: the people who run sessions, with the scheduling settings bookings enforce."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from bapp_cli.config import calendly_user_uri
from bapp_cli.db.audit import apply_changes, record_audit
from bapp_cli.db.domains import URI_LENGTH
from bapp_cli.db.models import BuilderProfile, User
from bapp_cli.errors import Conflict, InvalidInput, UnreadableValue, quoted
from bapp_cli.services.instants import get_zone
from bapp_cli.services.people import clean_name, find_user, get_builder, normalise_email
from bapp_cli.services.plain_reads import BUILDER_COLUMNS as BUILDER_COLUMNS  # the record, defined once
from bapp_cli.services.plain_reads import list_builders as list_builders  # builders add/update print it; exports
from bapp_cli.services.plain_text import without_controls

# Upper bounds catch typos (minutes typed as seconds) rather than express policy.
MAX_BUFFER_MINUTES = 24 * 60
MAX_NOTICE_HOURS = 365 * 24
MAX_ADVANCE_DAYS = 10 * 365
# each scheduling setting's bound, and the `builders update` flag that sets it
_SETTING_BOUNDS = {
    "buffer_minutes": (MAX_BUFFER_MINUTES, "--buffer"),
    "minimum_notice_hours": (MAX_NOTICE_HOURS, "--minimum-notice"),
    "max_advance_days": (MAX_ADVANCE_DAYS, "--max-advance"),
}
URI_PATTERN = re.compile(r"^https?://[^\s/]+/\S*$")


@dataclass(frozen=True)
class BuilderSettings:
    """Flags of `builders add/update`; None leaves a value as it is. `max_advance_days=0` means no limit."""

    name: str | None = None
    calendly_user: str | None = None
    timezone: str | None = None
    buffer_minutes: int | None = None
    minimum_notice_hours: int | None = None
    max_advance_days: int | None = None
    accepting_bookings: bool | None = None


def bounded_settings(builder: User, profile: BuilderProfile | None) -> tuple[User, BuilderProfile | None]:
    """The builder and their settings, which must be within the bounds `builders add/update` keeps them in wherever
    they are read (bookings create, no-show --undo, sessions slots; the bookings import holds the one setting it reads,
    the buffer: transfer.bookings.References.buffer): raw SQL's larger value would overflow the date arithmetic of the
    time rules and of rule 6's buffer (R9)."""
    if profile is None:
        return builder, profile
    for name, (most, _) in _SETTING_BOUNDS.items():
        if not 0 <= (value := getattr(profile, name) or 0) <= most:
            raise unreadable_setting(builder.email, name, value)
    return builder, profile


def unreadable_setting(email: str, name: str, value: int) -> UnreadableValue:
    """A setting raw SQL put past its bound (exit 5), with the `builders update` flag that sets it right."""
    hint = f"set it with `bapp builders update {email} {_SETTING_BOUNDS[name][1]} N`"
    return UnreadableValue(f"builder_profiles.{name}", value, of=f"builder {email}", hint=hint)


def _apply(
    session: Session, user: User, profile: BuilderProfile, settings: BuilderSettings, recorded: bool
) -> dict[str, Any]:
    """Validate every setting first, then apply them; returns {field: [old, new]} for the audit row. `recorded`: the
    settings a backup holds, taken as it holds them (see `add_builder`)."""
    updates: dict[str, Any] = {}
    if settings.name is not None:
        updates["display_name"] = clean_name(settings.name, "name")
    if settings.calendly_user is not None:
        uri = without_controls(settings.calendly_user.strip(), "calendly-user")  # as the import refuses it
        if len(uri) > URI_LENGTH or not URI_PATTERN.match(uri):
            hint = "e.g. https://api.calendly.com/users/AAAA (see `bapp calendly whoami`)"
            message = f"calendly-user: {quoted(settings.calendly_user)} is not a URI"
            raise InvalidInput(message, hint=hint, code="invalid_uri")
        # the user as Calendly names it, and as a sync or pull tells builders apart (`builder_ids_by_calendly_uri`):
        # a URI stored in another spelling (a slash after the uuid, the host in capitals) is the same user's. Only
        # where the builder takes a user they do not hold: an earlier bapp let two builders hold one user in two
        # spellings, and a backup of theirs restores, and their rows re-import, as they are (the column's key kept)
        loose = not recorded and calendly_user_uri(uri) != calendly_user_uri(profile.calendly_user_uri or "")

        def named(held: str | None) -> str | None:
            return (calendly_user_uri(held or "") or held) if loose else held

        held = session.execute(_held_calendly_users().where(BuilderProfile.id != profile.id))
        if owner := next((email for email, other in held if named(other) == named(uri)), None):
            raise Conflict(f"calendly-user: {uri} already belongs to builder {owner}")
        updates["calendly_user_uri"] = uri
    if settings.timezone is not None:
        updates["timezone"] = get_zone(settings.timezone, field="timezone").key
    for name, (most, flag) in _SETTING_BOUNDS.items():
        if (value := getattr(settings, name)) is not None and not 0 <= value <= most:
            raise InvalidInput(f"{flag[2:]}: {value} is out of range (0 to {most})", code="out_of_range")
        if value is not None:  # a max-advance of 0 is no limit, stored as none
            updates[name] = None if name == "max_advance_days" and value == 0 else value
    notice, advance = (updates.get(key, getattr(profile, key)) for key in ("minimum_notice_hours", "max_advance_days"))
    # a booking starts at least the notice and at most the advance ahead: a notice as long leaves no start. Said
    # of a change only, so that a re-import of the settings an older bapp let a builder keep still runs, and not of
    # a backup's, which restores as it was
    changed = (notice, advance) != (profile.minimum_notice_hours, profile.max_advance_days)
    if changed and not recorded and advance and notice >= advance * 24:
        message = f"minimum-notice: {notice} hours' notice leaves no start within the max-advance of {advance} days"
        raise InvalidInput(message, hint="lower --minimum-notice or raise --max-advance", code="no_booking_window")
    if settings.accepting_bookings is not None:
        updates["accepting_bookings"] = settings.accepting_bookings
    changes = apply_changes(profile, updates)
    if "display_name" in updates and updates["display_name"] and not user.name:
        user.name = updates["display_name"]
    return changes


def _held_calendly_users() -> Any:
    """Each builder's e-mail and the Calendly user URI they hold, as stored, for the builders who hold one."""
    held = select(User.email, BuilderProfile.calendly_user_uri).join(BuilderProfile, User.id == BuilderProfile.user_id)
    return held.where(BuilderProfile.calendly_user_uri != "")


def calendly_users_held_twice(session: Session) -> dict[str, list[str]]:
    """The Calendly users (as Calendly writes them) that builders hold in more than one spelling, with those builders'
    e-mails: an earlier bapp let them (see `_apply`), and a backup restores them as they were. A sync or pull tells
    builders apart by the user (`plain_reads.builder_ids_by_calendly_uri`), so one of them alone gets its events."""
    holders: dict[str, list[str]] = {}
    for email, uri in session.execute(_held_calendly_users().order_by(User.email)):
        holders.setdefault(calendly_user_uri(uri) or uri, []).append(email)
    return {user: emails for user, emails in holders.items() if len(emails) > 1}


def add_builder(session: Session, email: str, settings: BuilderSettings, *, recorded: bool = False) -> str:
    """Create a builder (and the user unless one exists, e.g. a client who also coaches); returns their e-mail as stored
    (the record is `list_builders`', read by the command that prints it, not per row of an import). `recorded`: the
    settings are a backup's (`import all`), which an older bapp may have let leave no booking window: they restore as
    they were."""
    normalised = normalise_email(email)
    user = find_user(session, normalised)
    if user is None:
        user = User(email=normalised)  # added only once every setting has validated
    elif session.scalar(select(BuilderProfile.id).where(BuilderProfile.user_id == user.id)) is not None:
        hint = f"change it with `bapp builders update {normalised}`"
        raise Conflict(f"builder {normalised!r} already exists", hint=hint)
    # the column defaults, set here because the changes are measured against them (max_advance_days: None)
    profile = BuilderProfile(timezone="UTC", buffer_minutes=0, minimum_notice_hours=0, accepting_bookings=True)
    changes = _apply(session, user, profile, settings, recorded)
    session.add(user)  # a no-op for an existing user
    session.flush()
    profile.user_id = user.id
    session.add(profile)
    session.flush()
    record_audit(session, "builder", normalised, {"created": True, **changes})
    return normalised


def update_builder(
    session: Session, email: str, settings: BuilderSettings, *, recorded: bool = False
) -> tuple[str, dict[str, Any]]:
    """Change a builder's settings; returns their e-mail as stored and {field: [old, new]} (empty when nothing
    changed). `recorded`: as for `add_builder`."""
    user, profile = get_builder(session, email)
    if changes := _apply(session, user, profile, settings, recorded):
        session.flush()
        record_audit(session, "builder", user.email, changes)
    return user.email, changes
