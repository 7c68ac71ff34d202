"""What a listing's pages are read with: the page envelope, its cursor, the event types a sync lists, and
the base and field types every Calendly model shares (:mod:`bapp_cli.calendly.models` holds the rest and
re-exports these).

A sync loads this module alone: the thirty-odd other model classes, which it never reads, were 1 % of the
instructions of a 10,000-type first sync (callgrind of bench/sync.py's sync: 6.05 → 5.98 billion).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Generic, NotRequired, TypeVar
from urllib.parse import parse_qs, urlsplit

from pydantic import AfterValidator, AwareDatetime, BaseModel, BeforeValidator, ConfigDict, Field
from typing_extensions import TypedDict  # pydantic needs this TypedDict before Python 3.12


def _as_utc(value: datetime) -> datetime:
    try:
        return value.astimezone(UTC)
    except OverflowError:  # 9999-12-31T23:59:59-14:00 (or 0001-01-01T00:00:00+01:00) has no UTC form; pydantic
        # names a ValueError's field
        raise ValueError("the instant is outside the calendar's years 1 to 9999 in UTC") from None


def phone_as_text(value: Any) -> Any:
    # Calendly's own example sends phone_number as a JSON number (380934567654) while request bodies
    # type it as a string; bool is an int subclass but never a phone number, so let it fail.
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return value


UtcDatetime = Annotated[AwareDatetime, AfterValidator(_as_utc)]
"""An ISO 8601 instant with an offset, converted to UTC. Naive values are rejected."""

T = TypeVar("T")


class ApiModel(BaseModel):
    """Base of every Calendly model: unknown keys ignored, instances immutable.

    Validators are built on first use (``defer_build``), so importing the models stays cheap for a
    command that needs only one or two of them.
    """

    model_config = ConfigDict(extra="ignore", frozen=True, defer_build=True)


# The whole numbers bapp stores (a duration, a position) fit an INTEGER column of either backend: a larger
# one from Calendly or a saved listing is a validation error, not an overflow at the insert.
Int32 = Annotated[int, Field(ge=-(2**31), le=2**31 - 1)]
Minutes = Annotated[int, Field(ge=1, le=2**31 - 1)]  # a zero or negative length ends every booking at its start


# --- event types as a listing gives them, for a sync ---------------------------------------------
# The same fields and the same checks as models.EventType and its parts, but validated into plain dicts: pydantic-core
# then builds no model instance per type, question and location, which makes a 10,000-type listing parse
# about 3× faster (P2, docs/benchmarks.md). Absent keys stay absent and listed nulls stay null; the
# reader (services/sync.py) applies the models' defaults. tests/calendly/test_models.py checks that
# every sample reads the same either way.


class ListedQuestion(TypedDict):
    name: str
    type: str
    position: Int32
    enabled: NotRequired[bool]
    required: NotRequired[bool]
    answer_choices: NotRequired[list[str] | None]
    include_other: NotRequired[bool]


class ListedProfile(TypedDict):
    type: str
    name: NotRequired[str | None]
    owner: str


class ListedLocation(TypedDict):
    kind: str
    location: NotRequired[str | None]
    additional_info: NotRequired[str | None]
    phone_number: NotRequired[Annotated[str | None, BeforeValidator(phone_as_text)]]
    position: NotRequired[Int32 | None]


class ListedEventType(TypedDict):
    """:class:`bapp_cli.calendly.models.EventType` as a dict."""

    uri: str
    name: NotRequired[str | None]
    active: bool
    slug: NotRequired[str | None]
    scheduling_url: NotRequired[str | None]
    duration: Minutes
    duration_options: NotRequired[list[Int32] | None]
    kind: NotRequired[str]
    kind_description: NotRequired[str | None]
    pooling_type: NotRequired[str | None]
    type: NotRequired[str | None]
    booking_method: NotRequired[str | None]
    color: NotRequired[str | None]
    created_at: UtcDatetime
    updated_at: UtcDatetime
    internal_note: NotRequired[str | None]
    description_plain: NotRequired[str | None]
    description_html: NotRequired[str | None]
    profile: NotRequired[ListedProfile | None]
    secret: NotRequired[bool]
    deleted_at: NotRequired[UtcDatetime | None]
    admin_managed: NotRequired[bool]
    locations: NotRequired[list[ListedLocation] | None]
    position: NotRequired[Int32 | None]
    locale: NotRequired[str | None]
    custom_questions: NotRequired[list[ListedQuestion] | None]


# --- envelopes -----------------------------------------------------------------------------------


class Pagination(ApiModel):
    """Keyset cursor of a listing. ``next_page`` null means the listing is complete."""

    count: int | None = None
    next_page: str | None = None
    previous_page: str | None = None
    next_page_token: str | None = None
    previous_page_token: str | None = None

    @property
    def has_next(self) -> bool:
        return self.next_page is not None or self.next_page_token is not None

    def next_token(self) -> str | None:
        """The token for the next page; older responses only carry ``next_page``, so read it from there."""
        if self.next_page_token:
            return self.next_page_token
        if self.next_page:
            values = parse_qs(urlsplit(self.next_page).query).get("page_token")
            if values and values[0]:
                return values[0]
        return None


class PaginationOnly(ApiModel):
    """A listing page read for its cursor alone: the items are skipped, not built."""

    pagination: Pagination


class Page(ApiModel, Generic[T]):
    """One page of a listing: ``{"collection": [...], "pagination": {...}}``."""

    collection: list[T]
    pagination: Pagination
