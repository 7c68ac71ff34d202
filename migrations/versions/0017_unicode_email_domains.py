"""unicode_email_domains: an address stored with its domain in Punycode is keyed as bapp keys it now

Revision ID: 0017_unicode_email_domains
Revises: 0016_hold_made

Every door keys an e-mail with an internationalised domain in Unicode however it came
(`ana@xn--exmple-cua.com` is `ana@exämple.com`, services.emails.normalise_email). An earlier bapp stored
the domain as typed, so an address stored in its `xn--` form was found by neither spelling: `clients show`
said no such client, and a Calendly booking of that invitee made a second client. Such an address is
rewritten to the Unicode form. When that form is already another user's (the earlier bapp made two
clients of one address), both stay as they are and `bapp db upgrade` names the pair: merging two people's
bookings and progress is not a migration's to decide, and refusing the upgrade would leave every command
refused with no command to merge them.
"""

from __future__ import annotations

import contextlib
import unicodedata

import sqlalchemy as sa
from alembic import context, op

revision = "0017_unicode_email_domains"
down_revision = "0016_hold_made"
branch_labels = None
depends_on = None


def _unicode_domain(domain: str) -> str:
    # config.unicode_domain as it is at this revision (a migration does not follow the code): a label in Punycode
    # of a name not all ASCII in its Unicode form; any other label as written (`xn--hooks-` is no name for `hooks`)
    labels = domain.split(".")
    for at, label in enumerate(labels):
        if label.startswith("xn--"):
            with contextlib.suppress(UnicodeError):
                unicode = unicodedata.normalize("NFC", label[4:].encode("ascii").decode("punycode")).lower()
                labels[at] = label if unicode.isascii() else unicode
    return ".".join(labels)


def upgrade() -> None:
    connection = op.get_bind()
    users = sa.table("users", sa.column("id", sa.Integer), sa.column("email", sa.String))
    rows = connection.execute(sa.select(users.c.id, users.c.email).order_by(users.c.id)).all()
    owners = {email: user_id for user_id, email in rows}
    for user_id, email in rows:
        local, at, domain = email.rpartition("@")
        keyed = f"{local}{at}{_unicode_domain(domain)}"
        if keyed == email:
            continue
        if keyed in owners:
            said = (
                f"users {email!r} (id {user_id}) and {keyed!r} (id {owners[keyed]}) are one address, kept apart as an"
                f" earlier bapp made them: {email!r} is found by neither spelling now; its bookings stay listed"
            )
            context.config.attributes.setdefault("warnings", []).append(said)  # told once the run has committed
            continue
        # updated_at stays: the address is the same, and a hold's record of the account it made compares it
        connection.execute(users.update().where(users.c.id == user_id).values(email=keyed))
        owners[keyed] = owners.pop(email)


def downgrade() -> None:
    # The addresses stay in Unicode: an earlier bapp finds them by that spelling, as it did those typed so.
    pass
