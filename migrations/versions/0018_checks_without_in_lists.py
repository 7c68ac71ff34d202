"""checks_without_in_lists: the bookings' and enrolments' value lists are checked as `=` … `OR`, not `IN (…)`

Revision ID: 0018_checks_without_in_lists
Revises: 0017_unicode_email_domains

SQLite (3.40) checks `column IN ('a', 'b', 'c')` in a CHECK constraint by building an ephemeral table of the
list for every row it writes: a bookings import paid it three times a booking (status, payment status,
source) and once an enrolment, 2.5 % of all the instructions of a 10,000-row import. The same test written
as `column = 'a' OR column = 'b' OR …` is a few comparisons. The two mean the same for every value, NULL
included (both are NULL, which a CHECK lets through; the columns are NOT NULL besides), so every refusal
stays as it was, under the same constraint name, on both backends. The other tables keep their `IN` lists
(a progress or sessions import writes some of them too; only the bookings import was measured).
"""

from __future__ import annotations

from alembic import op

revision = "0018_checks_without_in_lists"
down_revision = "0017_unicode_email_domains"
branch_labels = None
depends_on = None

# table → (constraint name, column, allowed values, NULL allowed) as the models list them at this revision
_CHECKS = {
    "bookings": (
        ("ck_bookings_status", "status", ("pending", "confirmed", "completed", "cancelled", "no_show"), False),
        ("ck_bookings_payment_status", "payment_status", ("not_required", "unpaid", "paid", "refunded"), False),
        ("ck_bookings_source", "source", ("cli", "import", "calendly"), False),
        ("ck_bookings_calendly_state", "calendly_state", ("requested", "unknown", "booked", "failed"), True),
    ),
    "enrolments": (("ck_enrolments_status", "status", ("active", "paused", "completed"), False),),
}


def _condition(column: str, values: tuple[str, ...], nullable: bool, *, as_in_list: bool) -> str:
    if as_in_list:
        listed = ", ".join(f"'{value}'" for value in values)
        test = f"{column} IN ({listed})"
    else:
        test = " OR ".join(f"{column} = '{value}'" for value in values)
    return f"{column} IS NULL OR {test}" if nullable else test


def _rewrite(*, as_in_list: bool) -> None:
    for table, checks in _CHECKS.items():
        # batch mode: SQLite rewrites a CHECK only by copying the table (its indexes, partial ones included)
        with op.batch_alter_table(table) as batch:
            for name, column, values, nullable in checks:
                batch.drop_constraint(name, type_="check")
                batch.create_check_constraint(name, _condition(column, values, nullable, as_in_list=as_in_list))


def upgrade() -> None:
    _rewrite(as_in_list=False)


def downgrade() -> None:
    _rewrite(as_in_list=True)
