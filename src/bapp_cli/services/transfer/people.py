"""Builders and clients in bulk.

Builders are few: each row goes through `builders.add_builder` / `update_builder`, the same use cases as
`bapp builders add|update`, so every scheduling setting is checked by the same code. Clients may be many:
they are validated in batches (`people.normalise_email`, the 200-character limits of `clients add`),
looked up with one query per batch and written set-based. A user may be both: a client row for a
builder's e-mail adds the client profile to the existing user.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import fields
from typing import Annotated, Any, Required

from pydantic import Field, StringConstraints
from sqlalchemy import select, update
from sqlalchemy.orm import Session
from typing_extensions import TypedDict

from bapp_cli.db import bulk
from bapp_cli.db.models import BuilderProfile, ClientProfile, User
from bapp_cli.errors import InvalidInput
from bapp_cli.services import builders
from bapp_cli.services.people import clean_name, find_user, normalise_email
from bapp_cli.services.plain_text import nfc
from bapp_cli.services.transfer.catalogue import RowImporter
from bapp_cli.services.transfer.formats import SourceRow
from bapp_cli.services.transfer.importer import (
    CREATED,
    UNCHANGED,
    UPDATED,
    Email,
    KindImporter,
    RowId,
    RowResult,
    Touched,
    When,
    refusal,
)
from bapp_cli.services.transfer.store import rows_keyed

Text = Annotated[str, StringConstraints(strip_whitespace=True)]  # bounded by the rules: `clean_name`, URI_LENGTH


class BuilderRow(TypedDict, total=False):
    id: RowId | None
    email: Required[Email]
    name: Text | None
    calendly_user: Text | None
    timezone: Annotated[str, StringConstraints(strip_whitespace=True, max_length=64)] | None
    buffer_minutes: Annotated[int, Field(ge=0, le=builders.MAX_BUFFER_MINUTES)] | None
    minimum_notice_hours: Annotated[int, Field(ge=0, le=builders.MAX_NOTICE_HOURS)] | None
    max_advance_days: Annotated[int, Field(ge=0, le=builders.MAX_ADVANCE_DAYS)] | None
    accepting_bookings: bool | None
    created_at: When | None
    own_name: bool | None  # a backup's (`export_builders`): false, the name is the account's, which the builder follows
    account_name: Text | None  # a backup's: the account's name, which a name of the builder's own hides


class ClientRow(TypedDict, total=False):
    id: RowId | None
    email: Required[Email]
    name: Text | None
    company: Text | None
    industry: Text | None
    created_at: When | None


_SETTINGS = [setting.name for setting in fields(builders.BuilderSettings)]


class BuilderImporter(RowImporter):
    kind = "builders"
    schema = BuilderRow

    def apply_row(self, row: SourceRow, values: dict[str, Any]) -> str:
        email = normalise_email(values["email"])
        self.seen_once(email, row.line, "email")
        # the row's columns are the settings'; a null leaves a setting as it is, but clears the name and
        # means "no limit" for the advance (which the service spells 0)
        given = {name: values[name] for name in _SETTINGS if name in values}
        given |= {name: blank for name, blank in (("name", ""), ("max_advance_days", 0)) if given.get(name, 0) is None}
        user = find_user(self.session, email)
        profile = self.session.scalar(select(BuilderProfile).filter_by(user_id=user.id)) if user else None
        # own_name None: a builders file, or an older backup; account_name None: those, or an account without a name
        own_name, account_name = values.get("own_name"), clean_name(values.get("account_name"), "account_name")
        if own_name is False:  # a backup's builder without a name of their own: the row's is their account's
            account_name, given["name"] = clean_name(given.get("name"), "name"), ""
        # a builders file gives the account's name for a builder without one of their own: not theirs when read again
        # (a backup says which it is: a restore has no account yet to compare with), in whichever spelling it was saved
        shown = user and profile and not profile.display_name and user.name and nfc(given.get("name")) == user.name
        if own_name is None and shown:
            del given["name"]
        # a backup's settings (a restore, or `import all` under its header) are taken as it holds them: a bapp before
        # the rule let a notice outlast the advance, and its backup must still restore
        settings, recorded = builders.BuilderSettings(**given), self.restore or self.recorded is not None
        created_at = self.instant(values.get("created_at"), "created_at")
        # a savepoint, so that a refused row leaves no user behind, nor an account renamed
        with self.session.begin_nested():
            if user is None:
                # updated_at keeps its default: `now` marks the rows a clients import has written itself
                user = User(email=email, created_at=created_at or self.now, **self.restore_id(User, values))
                self.session.add(user)
                self.session.flush()
            if renamed := account_name is not None and user.name != account_name:
                user.name = account_name
            if profile is not None:
                changes = builders.update_builder(self.session, email, settings, recorded=recorded)[1]
                return UPDATED if changes or renamed else UNCHANGED
            builders.add_builder(self.session, email, settings, recorded=recorded)
            if created_at is not None:
                self.session.execute(update(BuilderProfile).filter_by(user_id=user.id).values(created_at=created_at))
        return CREATED


def export_builders(session: Session) -> Iterator[dict[str, Any]]:
    """A backup's builders: `export builders`' records, each saying whether its name is the builder's own
    (`own_name`; a restore cannot tell, as the account holding the name is restored after the builder) and the
    account's name (`account_name`: a builder's own hides it, and one who is no client has no other row)."""
    query = select(User.id, User.name, BuilderProfile.display_name).join(BuilderProfile)
    accounts = {user_id: {"own_name": bool(own), "account_name": name} for user_id, name, own in session.execute(query)}
    return ({**record, **accounts[record["id"]]} for record in builders.list_builders(session, with_id=True))


class ClientImporter(KindImporter):
    kind = "clients"
    schema = ClientRow

    def __post_init__(self) -> None:
        self.touched = Touched(self.session, User.__table__)

    def apply(self, rows: Sequence[SourceRow]) -> list[RowResult]:
        first: dict[str, SourceRow] = {}  # the batch's e-mails → their row (an earlier batch's rows: `touched`)

        def settle(row: SourceRow, values: dict[str, Any]) -> dict[str, Any]:
            email = normalise_email(values["email"])
            texts = [name for name in ("name", "company", "industry") if name in values]
            # only a restore keeps the id a row gives
            cleaned: dict[str, Any] = {"email": email, "id": values.get("id") if self.restore else None}
            cleaned |= {name: clean_name(values[name], name) for name in texts}
            cleaned["created_at"] = self.instant(values.get("created_at"), "created_at") or self.now
            # by row, not by line: the rows of a one-line JSON array (`jq -c`) share line 1
            if (earlier := first.setdefault(email, row)) is not row:
                raise InvalidInput(f"email: {email!r} is already on line {earlier.line}")
            return cleaned

        wanted, results = self.settled(rows, settle)
        existing = self._existing([values["email"] for _, values in wanted])
        # the ids a restore cannot keep (rows_keyed leaves out the rows without one)
        taken = {row[0] for row in rows_keyed(self.session, select(User.id), [values["id"] for _, values in wanted])}
        new_users: list[tuple[Any, ...]] = []
        new_user_ids: list[tuple[Any, ...]] = []  # with the id a restore keeps
        new_profiles: list[tuple[Any, ...]] = []  # (email, company, industry, created_at)
        user_changes: list[dict[str, Any]] = []
        profile_changes: list[dict[str, Any]] = []
        for row, values in wanted:
            email = values["email"]
            found = existing.get(email)
            if found is not None and found["user_id"] in self.touched:
                results.append(refusal(row, InvalidInput(f"email: {email!r} appears earlier in the file")))
                continue
            if found is None:
                user_id = values["id"]
                if user_id in taken:
                    results.append(refusal(row, InvalidInput(f"id: {user_id} belongs to another user")))
                    continue
                if user_id is None:
                    new_users.append((email, values.get("name"), values["created_at"], self.now))
                else:
                    new_user_ids.append((email, values.get("name"), values["created_at"], self.now, user_id))
                new_profiles.append((email, values.get("company"), values.get("industry"), values["created_at"]))
                results.append(RowResult(row, outcome=CREATED))
                continue
            renamed = "name" in values and found["name"] != values["name"]
            profile_change: dict[str, Any] = {
                name: values[name] for name in ("company", "industry") if name in values and found[name] != values[name]
            }
            if found["profile_id"] is None:
                new_profiles.append((email, values.get("company"), values.get("industry"), values["created_at"]))
            elif profile_change:
                profile_changes.append({"id": found["profile_id"], **profile_change})
            if renamed or profile_change or found["profile_id"] is None:
                renaming = {"name": values["name"]} if renamed else {}
                user_changes.append({"id": found["user_id"], "updated_at": self.now, **renaming})
                self.touched.add(found["user_id"])  # a later batch's row for it is a repeat (one of this: `first`)
            outcome = UPDATED if renamed or profile_change else UNCHANGED
            results.append(RowResult(row, outcome=CREATED if found["profile_id"] is None else outcome))
        table = User.__table__
        # the ids a restore keeps first, so that the others take ids after them (an id-less row took id 1 before
        # a kept 1: exit 1 on SQLite), past PostgreSQL's sequence too (insert_rows moves it)
        bulk.insert_rows(self.session, table, ("email", "name", "created_at", "updated_at", "id"), new_user_ids)
        bulk.insert_rows(self.session, table, ("email", "name", "created_at", "updated_at"), new_users)
        if new_profiles:
            ids = dict(rows_keyed(self.session, select(User.email, User.id), [email for email, *_ in new_profiles]))
            profiles = [(ids[email], *profile) for email, *profile in new_profiles]
            columns = ("user_id", "company", "industry", "created_at")
            bulk.insert_rows(self.session, ClientProfile.__table__, columns, profiles)
        bulk.update_rows(self.session, table, user_changes)
        bulk.update_rows(self.session, ClientProfile.__table__, profile_changes)
        return results

    def _existing(self, emails: Sequence[str]) -> dict[str, dict[str, Any]]:
        profile = (ClientProfile.id.label("profile_id"), ClientProfile.company, ClientProfile.industry)
        query = select(User.email, User.id.label("user_id"), User.name, *profile)
        query = query.outerjoin(ClientProfile, ClientProfile.user_id == User.id)
        return {row[0]: dict(row._mapping) for row in rows_keyed(self.session, query, emails)}
