"""The values each constrained column accepts (the models' CHECK constraints), and each flag that takes one of a
few names (`cli.options.one_of`), without importing SQLAlchemy."""

import re
from typing import overload

ENROLMENT_STATUSES = ("active", "paused", "completed")
SESSION_CATEGORIES = ("free", "pathway", "specialized")
SESSION_KINDS = ("solo", "group")
BOOKING_STATUSES = ("pending", "confirmed", "completed", "cancelled", "no_show")
# A user who has just run `bookings no-show` types the status as the command spells it: every door that takes a
# status (a flag, an imported file's column) reads that spelling as the stored value; every output writes no_show.
STATUS_SPELLINGS = {"no-show": "no_show"}
PAYMENT_STATUSES = ("not_required", "unpaid", "paid", "refunded")
BOOKING_SOURCES = ("cli", "import", "calendly")
PROGRESS_STATUSES = ("not_started", "in_progress", "completed")
COMPLETION_METHODS = ("manual", "assessment", "builder_validation", "auto")
SYNC_KINDS = ("event_types", "bookings")
SYNC_STATUSES = ("running", "succeeded", "failed")
WEBHOOK_SCOPES = ("user", "organization")  # a Calendly webhook subscription's


@overload
def as_status(value: str) -> str: ...
@overload
def as_status(value: object) -> object: ...
def as_status(value: object) -> object:
    """`value` as stored when it is another spelling of a status (STATUS_SPELLINGS); anything else (an import's
    number, say) as it is, for the check that follows to refuse."""
    return STATUS_SPELLINGS.get(value, value) if isinstance(value, str) else value


# the largest value of an INTEGER column (ids, counts, positions): 32 bits on PostgreSQL, where SQLite's take 64
MAX_INT32 = 2**31 - 1
# The width of every column holding a Calendly URI or link: the services cut a link to it (PostgreSQL refuses
# a longer one, SQLite keeps it whole) and refuse a URI that is a key (an invitee's, an event's) past it; the
# sync's checks and the import schemas read it too.
URI_LENGTH = 500
# a colour (a pathway's, a session type's) as every door stores it, Calendly's sync too: #RRGGBB, of either case
COLOR_PATTERN = re.compile("#[0-9A-Fa-f]{6}")
# the longest a session type lasts, and each length it offers, at every door (Calendly allows 1..720 minutes;
# a local session may run a full day): what an import reads, so the backup of a synced type restores
MAX_DURATION_MINUTES = 1440
# the longest title of a session type, at every door (`sessions add|update`, Calendly's sync, an import)
MAX_TITLE_LENGTH = 300
# the longest slug of a session type, at every door (a title's, Calendly's, an import's): not a pathway's or a
# skill's (services.pathway_admin.MAX_PATHWAY_SLUG_LENGTH)
MAX_SESSION_SLUG_LENGTH = 200
# the longest description (a pathway's, a tier's, a skill's, a session type's) a command or a sync stores:
# what an import reads, so the backup of every record restores
DESCRIPTION_LIMIT = 100_000
# the longest text of a session type's question (its name, type, each choice) a sync stores, and of a question
# a booking row keeps: what an import reads of either
QUESTION_LIMIT = 1000
# the longest reason a booking keeps for its cancellation, at every door (`bookings cancel`, Calendly's, which is
# cut to it, an import): what an import reads, so the backup of a cancelled booking restores
REASON_LIMIT = 2000
# the longest body the webhook inbox keeps (Calendly's are a few kB): what `import all` takes back of a backup
MAX_INBOX_BODY = 10_000_000
# the longest reason an inbox row keeps for waiting: a reason may quote the delivery (an unknown type's URI)
MAX_INBOX_ERROR = 100_000
