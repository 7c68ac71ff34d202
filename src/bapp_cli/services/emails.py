"""E-mail addresses as bapp keys them: one module without database imports, so the plain reads use it too."""

from __future__ import annotations

import re
import unicodedata

from bapp_cli.config import email_key
from bapp_cli.errors import InvalidInput, quoted

# Deliberately practical rather than RFC 5322-complete: one @, a dotted domain, no spaces.
EMAIL_PATTERN = re.compile(
    r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)+$"
)
MAX_EMAIL_LENGTH = 254


def normalise_email(value: str, *, field: str = "email") -> str:
    """The canonical (NFC, lowercase, trimmed) form of an e-mail address, or InvalidInput naming the field.

    Internationalised addresses (RFC 6531: ``Ünïcode.User@Exämple.com``) are valid: clients type them into
    Calendly's form, and refusing one would lose their booking. The local part may hold any non-ASCII
    letter; the domain is checked in its IDNA (punycode) form but stored in Unicode, the form people type,
    whichever form it came in (``xn--exmple-cua.com`` is ``exämple.com``), so the same address always has
    the same key.
    """
    email = email_key(value)
    if len(email) > MAX_EMAIL_LENGTH or ".." in email or not _is_email(email):
        raise InvalidInput(f"{field}: {quoted(value)} is not a valid e-mail address", code="invalid_email")
    return email


def _is_email(email: str) -> bool:
    if email.isascii():
        return EMAIL_PATTERN.match(email) is not None
    local, at, domain = email.rpartition("@")
    if not at or not local or any(char.isspace() or unicodedata.category(char)[0] == "C" for char in email):
        return False
    try:
        ascii_domain = domain.encode("idna").decode("ascii")
    except (UnicodeError, ValueError):
        return False
    ascii_local = "".join(char if char.isascii() else "a" for char in local)
    return EMAIL_PATTERN.match(f"{ascii_local}@{ascii_domain}") is not None
