"""Pydantic models of the Calendly API v2 objects bapp reads.

Tolerance rules (reference ``calendly-api.md`` §2, §7 "API churn", and the sample corpus):

* unknown keys are ignored, so new Calendly fields never break a sync;
* every documented nullable is accepted: a null ``profile``, ``slug``, descriptions, ``locations``,
  ``duration_options`` and ``answer_choices`` (the list ones are normalised to ``[]``);
* ``phone_number`` in event-type locations may arrive as a JSON number and is kept as a string;
* instants must carry an offset and come out as aware UTC ``datetime`` values.

Free-text enumerations (``kind``, ``pooling_type``, location ``type``…) stay plain strings: an unknown value
is stored, not rejected. Only the ``status`` fields bapp acts on are closed sets, so that a new status can
never be mistaken for "active".

This module imports only pydantic; the CLI imports it lazily, inside the commands that talk to Calendly. A
listing's pages, their cursor and the listed event types are read with :mod:`bapp_cli.calendly.pages`, re-exported
here, which a sync loads alone.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from typing import Annotated, Any, Generic, Literal

from pydantic import BeforeValidator, Field, model_validator
from pydantic_core import ErrorDetails

from bapp_cli.calendly.pages import (
    ApiModel,
    Int32,
    ListedEventType,
    ListedQuestion,
    Minutes,
    Page,
    Pagination,
    T,
    UtcDatetime,
    phone_as_text,
)
from bapp_cli.errors import rule_message

__all__ = [
    "INVITEE_WEBHOOK_EVENTS",
    "NO_SHOW_WEBHOOK_EVENTS",
    "ApiModel",
    "AvailableTime",
    "AvailableTimes",
    "Cancellation",
    "CustomQuestion",
    "ErrorBody",
    "ErrorDetail",
    "EventGuest",
    "EventLocation",
    "EventMembership",
    "EventType",
    "EventTypeLocation",
    "Invitee",
    "InviteeNoShow",
    "InviteesCounter",
    "LegacyWebhookPayload",
    "ListedEventType",
    "ListedQuestion",
    "NoShow",
    "OAuthErrorBody",
    "Page",
    "Pagination",
    "Payment",
    "Profile",
    "QuestionAnswer",
    "Reconfirmation",
    "Resource",
    "ScheduledEvent",
    "SchedulingLink",
    "Tracking",
    "User",
    "WebhookInvitee",
    "WebhookPayload",
    "WebhookSubscription",
    "describe_validation_error",
]


def _empty_if_null(value: Any) -> Any:
    return [] if value is None else value


# --- users ---------------------------------------------------------------------------------------


class User(ApiModel):
    """The ``resource`` of ``GET /users/me``. ``uri`` is the ``user=`` scope, ``current_organization``
    the ``organization=`` scope."""

    # each scopes a listing (``user=`` / ``organization=``): an empty one is Calendly's answer failing, where
    # a listing asked without a scope is refused as bad input (exit 6)
    uri: Annotated[str, Field(min_length=1)]
    name: str
    email: str
    current_organization: Annotated[str, Field(min_length=1)]
    slug: str | None = None
    scheduling_url: str | None = None
    timezone: str | None = None
    avatar_url: str | None = None
    created_at: UtcDatetime | None = None
    updated_at: UtcDatetime | None = None
    resource_type: str | None = None
    locale: str | None = None


# --- event types ---------------------------------------------------------------------------------


class Profile(ApiModel):
    """Who owns an event type. ``owner`` is a user URI, or a ``/teams/…`` URI for team types."""

    type: str
    name: str | None = None
    owner: str


class CustomQuestion(ApiModel):
    """A booking-form question. There is no id: questions are identified by ``name`` (the text)."""

    name: str
    type: str
    position: Int32
    enabled: bool = True
    required: bool = False
    answer_choices: Annotated[list[str], BeforeValidator(_empty_if_null)] = Field(default_factory=list)
    include_other: bool = False


class EventTypeLocation(ApiModel):
    """One configured place an event type can happen (``kind``: physical, zoom_conference, …)."""

    kind: str
    location: str | None = None
    additional_info: str | None = None
    phone_number: Annotated[str | None, BeforeValidator(phone_as_text)] = None
    position: Int32 | None = None


class EventType(ApiModel):
    """An item of ``GET /event_types`` or the ``resource`` of ``GET /event_types/{uuid}``."""

    uri: str
    name: str | None = None
    active: bool
    slug: str | None = None
    scheduling_url: str | None = None
    duration: Minutes
    duration_options: Annotated[list[Int32], BeforeValidator(_empty_if_null)] = Field(default_factory=list)
    kind: str = "solo"
    kind_description: str | None = None
    pooling_type: str | None = None
    type: str | None = None
    booking_method: str | None = None
    color: str | None = None
    created_at: UtcDatetime
    updated_at: UtcDatetime
    internal_note: str | None = None
    description_plain: str | None = None
    description_html: str | None = None
    profile: Profile | None = None
    secret: bool = False
    deleted_at: UtcDatetime | None = None
    admin_managed: bool = False
    locations: Annotated[list[EventTypeLocation], BeforeValidator(_empty_if_null)] = Field(default_factory=list)
    position: Int32 | None = None
    locale: str | None = None
    custom_questions: Annotated[list[CustomQuestion], BeforeValidator(_empty_if_null)] = Field(default_factory=list)

    @property
    def owner_uri(self) -> str | None:
        """The profile owner's URI (a user or a team), or None for types without a profile."""
        return self.profile.owner if self.profile is not None else None


# --- scheduled events and invitees -----------------------------------------------------------


class Cancellation(ApiModel):
    """Present on a canceled event or invitee. ``created_at`` only exists since 2022."""

    canceled_by: str | None = None
    reason: str | None = None
    canceler_type: str | None = None
    created_at: UtcDatetime | None = None


class EventLocation(ApiModel):
    """Where a scheduled event happens. Note ``type`` (not ``kind``) and Zoom sometimes typed ``zoom``."""

    type: str
    location: str | None = None
    join_url: str | None = None
    status: str | None = None
    additional_info: str | None = None
    data: dict[str, Any] | None = None


class InviteesCounter(ApiModel):
    total: int
    active: int
    limit: int | None = None


class EventMembership(ApiModel):
    user: str
    user_email: str | None = None
    user_name: str | None = None
    buffered_start_time: UtcDatetime | None = None
    buffered_end_time: UtcDatetime | None = None


class EventGuest(ApiModel):
    email: str
    created_at: UtcDatetime | None = None
    updated_at: UtcDatetime | None = None


class ScheduledEvent(ApiModel):
    """An item of ``GET /scheduled_events`` (also embedded in invitee webhooks)."""

    uri: str
    name: str | None = None
    status: Literal["active", "canceled"]
    start_time: UtcDatetime
    end_time: UtcDatetime
    event_type: str | None = None
    location: EventLocation | None = None
    invitees_counter: InviteesCounter | None = None
    created_at: UtcDatetime
    updated_at: UtcDatetime
    event_memberships: Annotated[list[EventMembership], BeforeValidator(_empty_if_null)] = Field(default_factory=list)
    event_guests: Annotated[list[EventGuest], BeforeValidator(_empty_if_null)] = Field(default_factory=list)
    cancellation: Cancellation | None = None
    meeting_notes_plain: str | None = None
    meeting_notes_html: str | None = None


class QuestionAnswer(ApiModel):
    """One answer on an invitee. Multi-select answers arrive newline-joined in one string."""

    question: str
    answer: str
    position: Int32


class Tracking(ApiModel):
    utm_campaign: str | None = None
    utm_source: str | None = None
    utm_medium: str | None = None
    utm_content: str | None = None
    utm_term: str | None = None
    salesforce_uuid: str | None = None


class Payment(ApiModel):
    external_id: str | None = None
    provider: str | None = None
    amount: Decimal | None = None
    currency: str | None = None
    terms: str | None = None
    successful: bool | None = None


class NoShow(ApiModel):
    uri: str
    created_at: UtcDatetime | None = None


class Reconfirmation(ApiModel):
    created_at: UtcDatetime | None = None
    confirmed_at: UtcDatetime | None = None


class Invitee(ApiModel):
    """An item of ``GET /scheduled_events/{uuid}/invitees``. Bookings are keyed on ``uri``.

    A reschedule is two invitees: the old one ``canceled`` with ``rescheduled`` true and ``new_invitee``
    set, the new one ``active`` with ``old_invitee`` set.
    """

    uri: str
    email: str
    name: str | None = None
    first_name: str | None = None
    last_name: str | None = None
    status: Literal["active", "canceled"]
    questions_and_answers: Annotated[list[QuestionAnswer], BeforeValidator(_empty_if_null)] = Field(
        default_factory=list
    )
    timezone: str | None = None
    event: str
    created_at: UtcDatetime
    updated_at: UtcDatetime
    tracking: Tracking | None = None
    text_reminder_number: str | None = None
    rescheduled: bool = False
    old_invitee: str | None = None
    new_invitee: str | None = None
    cancel_url: str | None = None
    reschedule_url: str | None = None
    routing_form_submission: str | None = None
    cancellation: Cancellation | None = None
    payment: Payment | None = None
    no_show: NoShow | None = None
    reconfirmation: Reconfirmation | None = None
    scheduling_method: str | None = None
    invitee_scheduled_by: str | None = None


# --- envelopes -----------------------------------------------------------------------------------


class WebhookSubscription(ApiModel):
    """An item of ``GET /webhook_subscriptions`` (and the ``resource`` of its POST)."""

    uri: str
    callback_url: str
    created_at: UtcDatetime | None = None
    updated_at: UtcDatetime | None = None
    retry_started_at: UtcDatetime | None = None
    state: str
    events: list[str] = Field(default_factory=list)
    scope: str
    organization: str | None = None
    user: str | None = None
    group: str | None = None
    creator: str | None = None


class Resource(ApiModel, Generic[T]):
    """A single-resource response: ``{"resource": {...}}``."""

    resource: T


class ErrorDetail(ApiModel):
    parameter: str | None = None
    message: str | None = None
    # e.g. "already_filled" on POST /invitees when the slot went meanwhile: branch on this, not on text
    code: str | None = None


class ErrorBody(ApiModel):
    """Calendly's error response (``title``, ``message``, optional per-parameter ``details``)."""

    title: str
    message: str
    details: Annotated[list[ErrorDetail], BeforeValidator(_empty_if_null)] = Field(default_factory=list)

    def summary(self) -> str:
        """``title: message (param: problem; …)`` — for error messages; the body never holds a secret."""
        head = f"{self.title}: {self.message}" if self.message else self.title
        extra = "; ".join(f"{d.parameter}: {d.message}" if d.parameter else (d.message or "") for d in self.details)
        return f"{head} ({extra})" if extra else head


class OAuthErrorBody(ApiModel):
    """Errors of the OAuth token endpoint use the OAuth shape, not :class:`ErrorBody`."""

    error: str
    error_description: str | None = None


# --- webhooks ------------------------------------------------------------------------------------

NO_SHOW_WEBHOOK_EVENTS = frozenset({"invitee_no_show.created", "invitee_no_show.deleted"})
"""No-show deliveries carry the invitee too (``no_show`` set on created, null on deleted)."""
INVITEE_WEBHOOK_EVENTS = frozenset({"invitee.created", "invitee.canceled"}) | NO_SHOW_WEBHOOK_EVENTS
"""Webhook events whose ``payload`` is an invitee with its ``scheduled_event`` embedded."""


class WebhookInvitee(Invitee):
    """The ``payload`` of an ``invitee.*`` webhook: an invitee plus the full scheduled event."""

    scheduled_event: ScheduledEvent


class WebhookPayload(ApiModel):
    """A webhook delivery envelope.

    ``payload`` is parsed for ``invitee.created`` / ``invitee.canceled``; for every other event
    (``event_type.*``, ``invitee_no_show.*``, routing forms…) it is None, which lets a receiver
    acknowledge events bapp does not apply instead of failing them into Calendly's retry loop.
    """

    # Event names look like "invitee.created"; the pattern keeps a bare invitee (whose "event" is a URI)
    # from passing for an envelope.
    event: str = Field(pattern=r"^[a-z_]+(\.[a-z_]+)+$")
    created_at: UtcDatetime
    created_by: str | None = None
    payload: WebhookInvitee | None = None

    @model_validator(mode="before")
    @classmethod
    def _drop_foreign_payload(cls, data: Any) -> Any:
        # an event that is not text (a list, an object) is no invitee event; the field's check then refuses it
        if isinstance(data, dict) and not (
            isinstance(event := data.get("event"), str) and event in INVITEE_WEBHOOK_EVENTS
        ):
            return {**data, "payload": None}
        return data

    @model_validator(mode="after")
    def _require_invitee(self) -> WebhookPayload:
        if self.is_invitee_event and self.payload is None:
            raise ValueError(f"payload: an {self.event} webhook must carry the invitee")
        return self

    @property
    def is_invitee_event(self) -> bool:
        return self.event in INVITEE_WEBHOOK_EVENTS

    @property
    def invitee_uri(self) -> str:
        """The invitee's URI, "" for an event without one."""
        return self.payload.uri if self.payload is not None else ""


class _LegacyEventType(ApiModel):
    uuid: str
    name: str | None = None
    slug: str | None = None
    duration: int | None = None
    kind: str | None = None


class _LegacyEvent(ApiModel):
    uuid: str
    start_time: UtcDatetime | None = None


class _LegacyInvitee(ApiModel):
    uuid: str
    email: str
    name: str | None = None


class _LegacyHookBody(ApiModel):
    event_type: _LegacyEventType
    event: _LegacyEvent
    invitee: _LegacyInvitee


class LegacyWebhookPayload(ApiModel):
    """An API v1 "hooks" delivery (``payload.event_type/event/invitee`` objects keyed by ``uuid``).

    v1 was shut down in 2025; bapp parses the shape only to recognise it and refuse it clearly.
    """

    event: str
    payload: _LegacyHookBody


def describe_validation_error(errors: Sequence[ErrorDetails], *, limit: int = 1) -> str:
    """Render pydantic errors as ``collection[3].duration: Input should be …`` (first ``limit`` shown).

    Uses only ``loc`` and ``msg``, never the offending input, so no response text leaks into messages.
    """
    rendered: list[str] = []
    for error in errors[:limit]:
        path = ""
        for part in error["loc"]:
            path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
        rendered.append(f"{path}: {rule_message(error)}" if path else rule_message(error))
    more = len(errors) - limit
    text = "; ".join(rendered)
    return f"{text} (and {more} more)" if more > 0 else text


# --- the write side: open slots, bookings, no-shows, links (calendly-scheduling-api.md §1–5) -----------


class AvailableTime(ApiModel):
    """One open start of ``GET /event_type_available_times``; the end is start + the type's duration."""

    status: str
    invitees_remaining: int = Field(ge=0)
    start_time: UtcDatetime
    scheduling_url: str | None = None


class AvailableTimes(ApiModel):
    """That endpoint has no pagination: one window (at most 31 days) is one ``collection``."""

    collection: list[AvailableTime]


class InviteeNoShow(ApiModel):
    """``POST /invitee_no_shows`` answer: the no-show's own URI is what ``DELETE`` needs to undo it."""

    uri: str
    invitee: str | None = None
    created_at: UtcDatetime | None = None


class SchedulingLink(ApiModel):
    """``POST /scheduling_links`` answer: a single-use booking page for one event type."""

    booking_url: str
    owner: str | None = None
    owner_type: str | None = None
