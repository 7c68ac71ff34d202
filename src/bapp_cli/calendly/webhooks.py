"""Verification and parsing of Calendly webhook deliveries.

Calendly signs each delivery with ``Calendly-Webhook-Signature: t=<unix seconds>,v1=<hex>`` where ``v1`` is
``hex(HMAC-SHA256(signing_key, t + "." + raw_body))`` (reference ``calendly-api.md`` §6). The body must be
the raw bytes received: re-serialised JSON would not match. Nothing here touches the database; a caller
verifies, then parses, then applies.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Callable
from typing import Any

from pydantic import ValidationError

from bapp_cli.calendly.models import LegacyWebhookPayload, WebhookPayload, describe_validation_error
from bapp_cli.errors import AuthError, InvalidInput, UnreadableDocument, quoted
from bapp_cli.services.plain_text import json_may_hold_controls, strip_controls

__all__ = [
    "DEFAULT_TOLERANCE",
    "SIGNATURE_HEADER",
    "UnfitDelivery",
    "make_signature_header",
    "parse_webhook",
    "verify_signature",
]

SIGNATURE_HEADER = "Calendly-Webhook-Signature"
DEFAULT_TOLERANCE = 180
"""Seconds. Calendly's own example sets "the application's tolerance zone to 3 minutes"."""

# How deep a delivery's arrays and objects may nest. Python's reader stops at the interpreter's limit less the
# caller's stack, which differs between the receiver's worker threads and a command: a body one read and parked,
# the other (`webhook retry`) could not, and it waited for ever. Well under either; Calendly's nest about 5 deep.
MAX_DEPTH = 500
_HEX_DIGITS = frozenset("0123456789abcdef")
_MAX_TIMESTAMP_DIGITS = 12
_HINT = (
    "Check CALENDLY_WEBHOOK_SIGNING_KEY against the key given when the subscription was created, and "
    "pass the request body exactly as received."
)


def verify_signature(
    header: str | None,
    body: bytes,
    signing_key: str,
    *,
    now: float,
    tolerance: int = DEFAULT_TOLERANCE,
) -> str:
    """The signature's timestamp (its ``t``: when Calendly signed the delivery), or AuthError (exit 4) unless
    ``header`` is a valid, fresh signature of ``body``.

    Refused: a missing or empty header; a malformed one (no ``t`` or ``v1``, a repeated key, a
    non-integer timestamp, a ``v1`` that is not 64 hex digits); a signature that does not match; a
    timestamp more than ``tolerance`` seconds from ``now`` either way (replays, or clocks far apart).
    Keys other than ``t`` and ``v1`` are ignored, so a future scheme can be added alongside.
    """
    if not signing_key:
        raise AuthError("no Calendly webhook signing key configured", hint="Set CALENDLY_WEBHOOK_SIGNING_KEY.")
    if header is None or not header.strip():
        raise AuthError(f"webhook refused: missing {SIGNATURE_HEADER} header", hint=_HINT)
    timestamp, signature = _parse_header(header)
    expected = hmac.new(signing_key.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    # Checked before freshness so that a forged header learns nothing about the clock window.
    if not hmac.compare_digest(expected, signature):
        raise AuthError("webhook refused: signature does not match the body", hint=_HINT)
    # whole seconds, as t is: the clock's fraction made --tolerance 0 refuse all, as '0 s away (tolerance 0 s)'
    skew = abs(int(now) - int(timestamp))
    if skew > tolerance:
        raise AuthError(
            f"webhook refused: signature timestamp is {skew} s away from now (tolerance {tolerance} s)",
            hint="Old deliveries are refused to stop replays; check this machine's clock if all are refused.",
        )
    return timestamp


def _parse_header(header: str) -> tuple[str, str]:
    """``(t, v1)`` from ``t=…,v1=…``; splits on commas then on the first ``=``, whitespace allowed."""
    fields: dict[str, str] = {}
    for part in header.split(","):
        key, sep, value = part.partition("=")
        key, value = key.strip(), value.strip()
        if not sep or not key:
            raise AuthError(f"webhook refused: malformed {SIGNATURE_HEADER} header", hint=_HINT)
        if key in fields:
            # A second t or v1 would make "which one was checked" ambiguous (calendlyr refuses too); the receiver
            # joins a repeated header into one, so two signature headers are refused here too.
            why = f"repeats {quoted(key)} (a delivery has one signature, in one header)"
            raise AuthError(f"webhook refused: {SIGNATURE_HEADER} {why}", hint=_HINT)
        fields[key] = value
    timestamp = fields.get("t", "")
    signature = fields.get("v1", "").lower()
    # Unix seconds need 11 digits until the year 5138: a longer one is no timestamp (and would overflow
    # the float arithmetic of the freshness check, or Python's int parsing limit).
    if not timestamp.isascii() or not timestamp.isdigit() or len(timestamp) > _MAX_TIMESTAMP_DIGITS:
        raise AuthError(f"webhook refused: {SIGNATURE_HEADER} has no valid t= timestamp", hint=_HINT)
    if len(signature) != 64 or not set(signature) <= _HEX_DIGITS:
        raise AuthError(f"webhook refused: {SIGNATURE_HEADER} has no valid v1= signature", hint=_HINT)
    return timestamp, signature


class UnfitDelivery(InvalidInput):
    """A JSON object bapp's model refuses (a new invitee status, a field of another type, an event name of
    another form; a well-formed event name bapp does not know is acknowledged as ignored instead).

    Signed, it is parked in the inbox (202, exit 3) with this message as its reason, not refused: Calendly
    retries a refused delivery for 24 hours, then disables the whole subscription, so one shape bapp does
    not know would cost every later booking. ``event`` and ``invitee_uri`` are what its envelope names, as
    far as they are text ("" otherwise), so `webhook list` can show and search them.
    """

    def __init__(self, message: str, raw: dict[str, Any], *, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        payload = raw.get("payload")
        self.event = _text(raw.get("event"))
        self.invitee_uri = _text(payload.get("uri")) if isinstance(payload, dict) else ""


def _text(value: object) -> str:
    return value if isinstance(value, str) else ""


def make_signature_header(body: bytes, signing_key: str, *, timestamp: int) -> str:
    """The header Calendly would send for ``body`` at ``timestamp`` (for tests and local replays)."""
    digest = hmac.new(signing_key.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


def parse_webhook(body: bytes, on_cleaned: Callable[[list[str]], None] | None = None) -> WebhookPayload:
    """Parse a verified delivery. Raises InvalidInput (exit 6) for a body that is not a JSON object, and
    UnfitDelivery (an InvalidInput) naming the bad field for one that does not fit the model. Control
    characters are removed from its text, and ``on_cleaned`` told the items that held them.

    ``payload`` is None for events bapp does not apply (see :class:`WebhookPayload`). API v1 "hooks"
    deliveries are recognised and said to be, with a hint, as v1 no longer exists.
    """
    try:  # decoded strictly: json.loads(bytes) lets a UTF-8-encoded lone surrogate through, which no database stores
        raw = json.loads(body.decode(json.detect_encoding(body)))
        if body.count(b"[") + body.count(b"{") > MAX_DEPTH and _depth(raw) > MAX_DEPTH:
            raise RecursionError  # as the reader's own refusal is said
    except UnicodeDecodeError as exc:  # where, not the class name "UnicodeDecodeError", as for any other document
        raise InvalidInput(
            f"webhook body is not valid JSON (not {exc.encoding.upper()} text, at byte {exc.start})"
        ) from None
    except (RecursionError, ValueError) as exc:
        # nested past the parser's depth or bapp's, a number past Python's 4,300 digits (R9), or no JSON: in words (a
        # class name, "ValueError", told neither the sender nor the receiver's log what was wrong)
        raise InvalidInput(f"webhook body is not valid JSON ({UnreadableDocument(exc)})") from None
    if not isinstance(raw, dict):
        raise InvalidInput("webhook body is not a JSON object")
    # stored as sent, a lone surrogate crashed the insert (exit 1, or 500 from the receiver), as a NUL did on PostgreSQL
    if json_may_hold_controls(body):
        strip_controls(raw, on_cleaned)
    try:
        return WebhookPayload.model_validate(raw)
    except ValidationError as exc:
        errors = exc.errors(include_url=False, include_input=False)
        if _is_legacy(raw):
            raise UnfitDelivery(
                "webhook body is an API v1 delivery, which bapp does not accept",
                raw,
                hint="Re-create the webhook subscription with API v2 (POST /webhook_subscriptions).",
            ) from None
        raise UnfitDelivery(f"webhook body is invalid: {describe_validation_error(errors)}", raw) from None


def _depth(document: Any) -> int:
    """How deep arrays and objects nest in parsed JSON `document` (a scalar: 0); iterative, as it may be deep."""
    deepest, stack = 0, [(document, 1)]
    while stack:
        node, level = stack.pop()
        if isinstance(node, dict | list):
            deepest = max(deepest, level)
            stack.extend((child, level + 1) for child in (node.values() if isinstance(node, dict) else node))
    return deepest


def _is_legacy(raw: dict[str, object]) -> bool:
    try:
        LegacyWebhookPayload.model_validate(raw)
    except ValidationError:
        return False
    return True
