"""Webhook signature verification (HMAC-SHA256 over ``t.body``) and payload parsing."""

from __future__ import annotations

import hashlib
import hmac
import json
from pathlib import Path

import pytest

from bapp_cli.calendly.webhooks import (
    DEFAULT_TOLERANCE,
    SIGNATURE_HEADER,
    UnfitDelivery,
    make_signature_header,
    parse_webhook,
    verify_signature,
)
from bapp_cli.errors import AuthError, InvalidInput

KEY = "whsec-signing-key-5b8e"
NOW = 1_750_000_000
SAMPLES = Path(__file__).resolve().parents[3] / "shared" / "reference" / "calendly-samples" / "calendlyr"
BODY = (SAMPLES / "objects_webhooks_payload.json").read_bytes()


def signed(body: bytes = BODY, key: str = KEY, t: int = NOW) -> str:
    # Computed independently of make_signature_header, so a bug there cannot hide a bug in verify.
    digest = hmac.new(key.encode(), str(t).encode() + b"." + body, hashlib.sha256).hexdigest()
    return f"t={t},v1={digest}"


def refused(header: str | None, body: bytes = BODY, *, now: float = NOW, tolerance: int = DEFAULT_TOLERANCE) -> str:
    with pytest.raises(AuthError) as info:
        verify_signature(header, body, KEY, now=now, tolerance=tolerance)
    assert info.value.exit_code == 4
    assert KEY not in info.value.message and KEY not in (info.value.hint or "")
    assert "\n" not in info.value.message
    return info.value.message


def test_valid_signature_passes_and_gives_its_timestamp() -> None:
    assert verify_signature(signed(), BODY, KEY, now=NOW) == str(NOW)


def test_helper_builds_the_same_header() -> None:
    assert make_signature_header(BODY, KEY, timestamp=NOW) == signed()


def test_header_name() -> None:
    assert SIGNATURE_HEADER == "Calendly-Webhook-Signature"


def test_whitespace_and_upper_case_hex_are_accepted() -> None:
    t, v1 = signed().split(",")
    verify_signature(f" {t} , {v1.upper().replace('V1=', 'v1=')} ", BODY, KEY, now=NOW)


def test_unknown_keys_are_ignored() -> None:
    verify_signature(signed() + ",v0=legacy", BODY, KEY, now=NOW)


def test_wrong_key_is_refused() -> None:
    assert "does not match" in refused(signed(key="another-key"))


def test_tampered_body_is_refused() -> None:
    tampered = BODY.replace(b"test@example.com", b"evil@example.com")
    assert tampered != BODY
    assert "does not match" in refused(signed(), tampered)


def test_reserialised_body_is_refused() -> None:
    # The raw bytes are signed: parsing and dumping the JSON again must not verify.
    reserialised = json.dumps(json.loads(BODY)).encode()
    assert "does not match" in refused(signed(), reserialised)


def test_timestamp_is_part_of_the_signature() -> None:
    digest = signed().split("v1=")[1]
    assert "does not match" in refused(f"t={NOW + 1},v1={digest}", now=NOW + 1)


def test_stale_timestamp_is_refused() -> None:
    assert "181 s away" in refused(signed(t=NOW - 181))


def test_future_timestamp_beyond_tolerance_is_refused() -> None:
    assert "tolerance 180 s" in refused(signed(t=NOW + 181))


@pytest.mark.parametrize("offset", [-180, 0, 180])
def test_timestamps_within_tolerance_pass(offset: int) -> None:
    verify_signature(signed(t=NOW + offset), BODY, KEY, now=NOW)


def test_the_tolerance_counts_whole_seconds_as_the_timestamp_does() -> None:
    # t is whole seconds: the clock's fraction of a second counted too, so --tolerance 0 refused every delivery
    # (0.4 s old: "0 s away from now (tolerance 0 s)") and 180 refused a signature of 180 s and a fraction
    verify_signature(signed(t=NOW), BODY, KEY, now=NOW + 0.9, tolerance=0)
    verify_signature(signed(t=NOW - 180), BODY, KEY, now=NOW + 0.9)
    assert "1 s away from now (tolerance 0 s)" in refused(signed(t=NOW - 1), now=NOW + 0.9, tolerance=0)


def test_custom_tolerance() -> None:
    verify_signature(signed(t=NOW - 250), BODY, KEY, now=NOW, tolerance=300)
    refused(signed(t=NOW - 61), tolerance=60)


@pytest.mark.parametrize("header", [None, "", "   "])
def test_missing_header_is_refused(header: str | None) -> None:
    assert "missing" in refused(header)


@pytest.mark.parametrize(
    "header",
    [
        "garbage",
        "t=,v1=" + "a" * 64,
        f"t=abc,v1={'a' * 64}",
        f"t=-5,v1={'a' * 64}",
        f"t={NOW}",
        f"v1={'a' * 64}",
        f"t={NOW},v1=not-hex",
        f"t={NOW},v1={'a' * 63}",
        f"t={NOW},v1={'g' * 64}",
        f"t={NOW},t={NOW},v1={'a' * 64}",
        f"t={NOW},=x,v1={'a' * 64}",
    ],
)
def test_malformed_headers_are_refused(header: str) -> None:
    refused(header)


def test_duplicate_v1_is_refused_even_if_one_matches() -> None:
    good = signed().split("v1=")[1]
    assert "repeats" in refused(f"t={NOW},v1={'0' * 64},v1={good}")


def test_empty_signing_key_is_refused() -> None:
    with pytest.raises(AuthError):
        verify_signature(signed(key=""), BODY, "", now=NOW)


# --- parsing ---------------------------------------------------------------------------------------


def test_parse_invitee_created() -> None:
    payload = parse_webhook(BODY)
    assert payload.event == "invitee.created" and payload.payload is not None
    assert payload.payload.uri.endswith("/invitees/AAAAAAAAAAAAAAAA")
    assert payload.payload.scheduled_event.event_type == "https://api.calendly.com/event_types/GBGBDCAADAEDCRZ2"


def test_parse_invitee_canceled_reschedule() -> None:
    raw = json.loads(BODY)
    raw["event"] = "invitee.canceled"
    raw["payload"].update(
        status="canceled",
        rescheduled=True,
        new_invitee="https://api.calendly.com/scheduled_events/NEW/invitees/NEW1",
        cancellation={"canceled_by": "Client", "reason": None, "canceler_type": "invitee"},
    )
    payload = parse_webhook(json.dumps(raw).encode())
    assert payload.payload is not None and payload.payload.status == "canceled"
    assert payload.payload.rescheduled and payload.payload.new_invitee is not None


def test_parse_other_events_without_payload() -> None:
    body = json.dumps(
        {"event": "routing_form_submission.created", "created_at": "2025-01-01T00:00:00Z", "payload": {"form": 1}}
    )
    parsed = parse_webhook(body.encode())
    assert parsed.event == "routing_form_submission.created" and parsed.payload is None


def test_no_show_deliveries_must_carry_the_invitee() -> None:
    # Calendly sends the invitee (with its no_show) for both no-show events: bapp applies them
    body = json.dumps(
        {"event": "invitee_no_show.created", "created_at": "2025-01-01T00:00:00Z", "payload": {"no_show": 1}}
    )
    with pytest.raises(InvalidInput) as info:
        parse_webhook(body.encode())
    assert info.value.message.startswith("webhook body is invalid: payload.")


def test_parse_refuses_v1_deliveries_with_a_hint() -> None:
    with pytest.raises(InvalidInput) as info:
        parse_webhook((SAMPLES / "webhooks_sample.json").read_bytes())
    assert "API v1" in info.value.message and info.value.hint and "v2" in info.value.hint


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"{not json",
        b"\xff\xfe",
        b"[1, 2]",
        b'"text"',
        # what Python's reader refuses besides malformed JSON: deep nesting (RecursionError), a huge number
        b'{"event": "invitee.created", "payload": ' + b"[" * 5000 + b"]" * 5000 + b"}",
        b'{"event": "invitee.created", "payload": ' + b"9" * 5000 + b"}",
    ],
)
def test_parse_refuses_non_objects(body: bytes) -> None:
    with pytest.raises(InvalidInput) as info:
        parse_webhook(body)
    assert info.value.exit_code == 6
    assert not isinstance(info.value, UnfitDelivery)  # refused (400), not parked: there is no delivery to keep


@pytest.mark.parametrize(
    ("body", "event", "invitee"),
    [
        # an event name that is not text (a list or an object cannot be looked up among the event names)
        (b'{"event": [], "created_at": "2025-01-01T00:00:00Z", "payload": {}}', "", ""),
        (b'{"event": {"a": 1}, "created_at": "2025-01-01T00:00:00Z", "payload": {"uri": 5}}', "", ""),
        (
            b'{"event": "invitee.created", "payload": {"uri": "https://x/invitees/I", "status": "new"}}',
            "invitee.created",
            "https://x/invitees/I",
        ),
    ],
)
def test_an_object_that_does_not_fit_the_model_says_what_it_names(body: bytes, event: str, invitee: str) -> None:
    # the receiver parks it under these (UnfitDelivery), so `webhook list` shows and searches them
    with pytest.raises(UnfitDelivery) as info:
        parse_webhook(body)
    assert (info.value.exit_code, info.value.event, info.value.invitee_uri) == (6, event, invitee)
    assert info.value.message.startswith("webhook body is invalid: ")


def test_parse_names_the_missing_field() -> None:
    raw = json.loads(BODY)
    del raw["payload"]["scheduled_event"]
    with pytest.raises(InvalidInput) as info:
        parse_webhook(json.dumps(raw).encode())
    assert "payload.scheduled_event: Field required" in info.value.message
