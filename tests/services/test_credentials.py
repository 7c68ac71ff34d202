"""Portable badges (issue 17): OB 3.0 credentials issued, verified and revoked, on both backends.

Every credential is checked against 1EdTech's official JSON Schema, vendored in tests/fixtures/openbadges
with its licence; signatures are checked by PyJWT over `cryptography`, never by test code.
"""

from __future__ import annotations

import base64
import datetime as dt
import gzip
import hashlib
import json
import os
import stat
import tracemalloc
import zlib
from pathlib import Path
from typing import Any

import jwt
import pytest
from jsonschema import Draft201909Validator
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from bapp_cli.db.models import AuditEntry, Badge, User
from bapp_cli.errors import ConfigError, Conflict, InvalidInput, NotFound
from bapp_cli.services.credentials import (
    OB_CONTEXT,
    STATUS_LIST_MIN_BITS,
    Issuer,
    achievement_definitions,
    as_achievement,
    build_credential,
    build_status_list,
    check_against_database,
    check_against_status_list,
    issue_credentials,
    revoke_badge,
    shape_problems,
    sign_credential,
    split_credentials,
    verify_token,
)
from bapp_cli.services.signing_key import create_key_file, load_key_file, public_keys_from_document
from bapp_cli.services.skills import complete_skill
from tests.services.test_progress_factories import NOW, client, small_catalogue

SCHEMA_PATH = (
    Path(__file__).resolve().parent.parent / "fixtures" / "openbadges" / "ob_v3p0_achievementcredential_schema.json"
)
EMAIL = "ada@example.com"
VERIFY_AT = NOW + dt.timedelta(days=1)


@pytest.fixture(scope="module")
def schema_validator() -> Draft201909Validator:
    schema = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
    Draft201909Validator.check_schema(schema)
    return Draft201909Validator(schema, format_checker=Draft201909Validator.FORMAT_CHECKER)


def make_issuer(directory: Path, name: str = "key.pem") -> Issuer:
    return Issuer("BuildAppsWith", "https://buildappswith.example", create_key_file(directory / name))


@pytest.fixture
def issuer(tmp_path: Path) -> Issuer:
    return make_issuer(tmp_path)


def award(session: Session, now: dt.datetime = NOW) -> None:
    """Ada earns accelerate tier 1 (a1–a3), play tier 1 (f2) and Fundamentals (f1, f2) at `now`."""
    small_catalogue(session)
    client(session, EMAIL, "accelerate")
    for slug in ("a1", "a2", "a3", "f1", "f2"):
        complete_skill(session, EMAIL, slug, now=now)


def payload(token: str) -> dict[str, Any]:
    part = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))


def b64decode(part: str) -> bytes:
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


def b64encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def test_every_exported_credential_validates_against_the_official_schema_and_verifies(
    session: Session, issuer: Issuer, schema_validator: Draft201909Validator
) -> None:
    award(session)
    issued = issue_credentials(session, EMAIL, issuer=issuer, now=VERIFY_AT)
    assert [item["badge"] for item in issued] == ["tier:accelerate:1", "tier:play:1", "fundamentals"]
    for item in issued:
        errors = [error.message for error in schema_validator.iter_errors(item["credential"])]
        assert errors == [], errors
        claims = payload(item["jwt"])
        assert claims["vc"] == item["credential"]  # the signed credential is the one shown
        assert jwt.get_unverified_header(item["jwt"]) == {"alg": "EdDSA", "kid": issuer.key_id, "typ": "JWT"}
        assert claims["iss"] == issuer.profile_id and claims["jti"] == item["credential"]["id"]
        assert claims["nbf"] == int(NOW.timestamp())
        credential = item["credential"]
        assert credential["@context"][:2] == [
            "https://www.w3.org/ns/credentials/v2",
            "https://purl.imsglobal.org/spec/ob/v3p0/context-3.0.3.json",
        ]
        assert credential["type"] == ["VerifiableCredential", "OpenBadgeCredential"]
        assert credential["validFrom"] == "2030-01-15T09:30:00Z"  # the award time
        result = verify_token(item["jwt"], public_keys=[issuer.key.public_key], now=VERIFY_AT, issuer=issuer)
        assert result.valid and result.badge == item["badge"], result.reason
    tier = issued[0]["credential"]["credentialSubject"]["achievement"]
    assert tier["id"] == "https://buildappswith.example/badges/achievements/tier/accelerate/1"
    assert tier["name"] == "Accelerate · Foundation"
    assert tier["criteria"]["narrative"].endswith("Foundation tier: A1, A2, A3.")


def test_the_schema_check_itself_rejects_what_ob3_forbids(
    session: Session, issuer: Issuer, schema_validator: Draft201909Validator
) -> None:
    """The vendored schema is not a rubber stamp: the same credential, broken, fails it (and our shape check)."""
    award(session)
    credential = issue_credentials(session, EMAIL, issuer=issuer, now=VERIFY_AT)[0]["credential"]
    breakages = {
        "validFrom": lambda c: c.pop("validFrom"),
        "@context": lambda c: c.__setitem__("@context", ["https://www.w3.org/2018/credentials/v1"]),
        "type": lambda c: c.__setitem__("type", ["VerifiableCredential"]),
        "identityType": lambda c: c["credentialSubject"]["identifier"][0].__setitem__("type", "Email"),
        "achievement": lambda c: c["credentialSubject"]["achievement"].pop("criteria"),
    }
    for name, breakage in breakages.items():
        broken = json.loads(json.dumps(credential))
        breakage(broken)
        assert list(schema_validator.iter_errors(broken)), name
        assert shape_problems(broken), name


def test_the_shape_check_names_a_context_or_identity_of_the_wrong_type(session: Session, issuer: Issuer) -> None:
    award(session)
    credential = issue_credentials(session, EMAIL, issuer=issuer, now=VERIFY_AT)[0]["credential"]
    assert shape_problems(credential) == []
    breakages = {
        "@context must start": lambda c: c["@context"].__setitem__(1, {"@vocab": OB_CONTEXT}),
        "identifier[0] is not": lambda c: c["credentialSubject"]["identifier"][0].__setitem__("hashed", "true"),
    }
    for problem, breakage in breakages.items():
        broken = json.loads(json.dumps(credential))
        breakage(broken)
        assert [found for found in shape_problems(broken) if problem in found], problem


def test_a_one_byte_change_to_payload_or_signature_fails_verification(session: Session, issuer: Issuer) -> None:
    award(session)
    token = issue_credentials(session, EMAIL, issuer=issuer, now=VERIFY_AT)[0]["jwt"]
    header, body, signature = token.split(".")
    body_bytes, signature_bytes = b64decode(body), b64decode(signature)
    for index in range(len(signature_bytes)):
        changed = bytearray(signature_bytes)
        changed[index] ^= 0x01
        forged = f"{header}.{body}.{b64encode(bytes(changed))}"
        assert not verify_token(forged, public_keys=[issuer.key.public_key], now=VERIFY_AT).valid, index
    for index in range(0, len(body_bytes), 7):
        changed = bytearray(body_bytes)
        changed[index] ^= 0x01
        forged = f"{header}.{b64encode(bytes(changed))}.{signature}"
        result = verify_token(forged, public_keys=[issuer.key.public_key], now=VERIFY_AT)
        assert not result.valid, index
    # a change that keeps the JSON valid and only renames the badge is still caught by the signature
    renamed = json.loads(body_bytes)
    renamed["vc"]["name"] = "Accelerate · Mastery"
    forged = f"{header}.{b64encode(json.dumps(renamed).encode())}.{signature}"
    result = verify_token(forged, public_keys=[issuer.key.public_key], now=VERIFY_AT)
    assert result.reason == "the signature does not match the issuer key"


def test_a_credential_signed_by_another_key_fails(session: Session, issuer: Issuer, tmp_path: Path) -> None:
    award(session)
    impostor = make_issuer(tmp_path, "other.pem")  # same name and URL, different key
    token = issue_credentials(session, EMAIL, issuer=impostor, now=VERIFY_AT)[0]["jwt"]
    result = verify_token(token, public_keys=[issuer.key.public_key], now=VERIFY_AT)
    assert result.reason == "the signature does not match the issuer key"
    assert verify_token(token, public_keys=[impostor.key.public_key], now=VERIFY_AT).valid


def test_tokens_not_signed_with_eddsa_are_refused(session: Session, issuer: Issuer) -> None:
    award(session)
    claims = payload(issue_credentials(session, EMAIL, issuer=issuer, now=VERIFY_AT)[0]["jwt"])
    hmac_forgery = jwt.encode(claims, "a-shared-secret-of-32-bytes-or-more!", algorithm="HS256")
    assert (
        verify_token(hmac_forgery, public_keys=[issuer.key.public_key], now=VERIFY_AT).reason == "not signed with EdDSA"
    )
    unsigned = jwt.encode(claims, None, algorithm="none")
    assert not verify_token(unsigned, public_keys=[issuer.key.public_key], now=VERIFY_AT).valid


def test_the_email_never_appears_in_clear(session: Session, issuer: Issuer) -> None:
    award(session)
    for item in issue_credentials(session, EMAIL, issuer=issuer, now=VERIFY_AT):
        decoded = json.dumps(payload(item["jwt"])) + json.dumps(jwt.get_unverified_header(item["jwt"]))
        for text in (item["jwt"], decoded, json.dumps(item)):
            assert EMAIL not in text.lower() and "ada@" not in text.lower()
        identity = item["credential"]["credentialSubject"]["identifier"][0]
        assert identity["identityType"] == "emailAddress" and identity["hashed"] is True
        expected = hashlib.sha256((EMAIL + identity["salt"]).encode()).hexdigest()
        assert identity["identityHash"] == f"sha256${expected}"
    # each export salts afresh, so two exports cannot be linked by their hash
    first, second = (
        issue_credentials(session, EMAIL, issuer=issuer, now=VERIFY_AT)[0]["credential"]["credentialSubject"][
            "identifier"
        ][0]
        for _ in range(2)
    )
    assert first["identityHash"] != second["identityHash"]


def test_dates_are_checked_against_the_clock(session: Session, issuer: Issuer) -> None:
    award(session)
    token = issue_credentials(session, EMAIL, issuer=issuer, now=VERIFY_AT)[0]["jwt"]
    early = verify_token(token, public_keys=[issuer.key.public_key], now=NOW - dt.timedelta(hours=1))
    assert early.reason == "not valid before 2030-01-15T09:30:00Z"
    assert verify_token(token, public_keys=[issuer.key.public_key], now=NOW - dt.timedelta(seconds=30)).valid  # leeway
    definitions = achievement_definitions(session)
    credential = build_credential(
        issuer=issuer,
        badge_id=1,
        email=EMAIL,
        awarded_at=NOW,
        definition=definitions["fundamentals"],
        salt="s",
    )
    credential["validUntil"] = "2030-02-01T00:00:00Z"
    expiring = sign_credential(credential, issuer, now=NOW)
    assert verify_token(expiring, public_keys=[issuer.key.public_key], now=VERIFY_AT).valid
    expired = verify_token(expiring, public_keys=[issuer.key.public_key], now=NOW + dt.timedelta(days=60))
    assert expired.reason == "expired at 2030-02-01T00:00:00Z"


def test_only_named_badges_and_never_revoked_ones_are_exported(session: Session, issuer: Issuer) -> None:
    award(session)
    only = issue_credentials(session, EMAIL, issuer=issuer, now=VERIFY_AT, only=["fundamentals"])
    assert [item["badge"] for item in only] == ["fundamentals"]
    with pytest.raises(NotFound, match="holds no badge 'pathway:accelerate'"):
        issue_credentials(session, EMAIL, issuer=issuer, now=VERIFY_AT, only=["pathway:accelerate"])
    revoke_badge(session, EMAIL, "fundamentals", reason="awarded in error", now=VERIFY_AT)
    assert [item["badge"] for item in issue_credentials(session, EMAIL, issuer=issuer, now=VERIFY_AT)] == [
        "tier:accelerate:1",
        "tier:play:1",
    ]
    with pytest.raises(Conflict, match=r"was revoked on .*: awarded in error") as refused:
        issue_credentials(session, EMAIL, issuer=issuer, now=VERIFY_AT, only=["fundamentals"])
    assert refused.value.hint == "a revoked badge is not exported"  # an export does not say "already"
    with pytest.raises(NotFound):
        issue_credentials(session, "nobody@example.com", issuer=issuer, now=VERIFY_AT)


def test_revocation_is_reported_against_the_database_and_the_status_list(session: Session, issuer: Issuer) -> None:
    award(session)
    issued = issue_credentials(session, EMAIL, issuer=issuer, now=VERIFY_AT)
    results = [verify_token(item["jwt"], public_keys=[issuer.key.public_key], now=VERIFY_AT) for item in issued]
    for result in results:
        check_against_database(session, result, issuer=issuer)
        assert result.valid, result.reason
    _, clean_list = build_status_list(session, issuer=issuer, now=VERIFY_AT)

    revocation = revoke_badge(session, EMAIL, "tier:accelerate:1", reason="  awarded   in error ", now=VERIFY_AT)
    assert revocation["reason"] == "awarded in error"
    session.commit()
    audit = session.scalars(select(AuditEntry).where(AuditEntry.entity == "badge")).all()
    assert [(row.entity_key, row.changes["reason"]) for row in audit if "reason" in row.changes] == [
        ("ada@example.com tier:accelerate:1", "awarded in error")
    ]
    badge = session.scalars(select(Badge).where(Badge.key == "tier:accelerate:1")).one()
    assert badge.revoked_at == VERIFY_AT  # the badge stays, marked

    against_db = [verify_token(item["jwt"], public_keys=[issuer.key.public_key], now=VERIFY_AT) for item in issued]
    for result in against_db:
        check_against_database(session, result, issuer=issuer)
    assert against_db[0].revoked and against_db[0].reason == "revoked on 2030-01-16T09:30:00Z: awarded in error"
    assert against_db[1].valid

    revoked, status_list = build_status_list(session, issuer=issuer, now=VERIFY_AT)
    assert revoked == 1
    offline = [verify_token(item["jwt"], public_keys=[issuer.key.public_key], now=VERIFY_AT) for item in issued]
    check_against_status_list(offline, status_list["jwt"], public_keys=[issuer.key.public_key])
    assert offline[0].revoked and offline[1].valid
    # the list published before the revocation does not show it
    before = verify_token(issued[0]["jwt"], public_keys=[issuer.key.public_key], now=VERIFY_AT)
    check_against_status_list([before], clean_list["jwt"], public_keys=[issuer.key.public_key])
    assert before.valid

    with pytest.raises(Conflict, match="already revoked"):
        revoke_badge(session, EMAIL, "tier:accelerate:1", reason="again", now=VERIFY_AT)
    with pytest.raises(NotFound):
        revoke_badge(session, EMAIL, "pathway:accelerate", reason="x", now=VERIFY_AT)
    with pytest.raises(InvalidInput, match="--reason"):
        revoke_badge(session, EMAIL, "fundamentals", reason="   ", now=VERIFY_AT)
    # stored, it made the backup unrestorable: `import all` refuses the row
    with pytest.raises(InvalidInput, match=r"--reason: holds the control character U\+001B"):
        revoke_badge(session, EMAIL, "fundamentals", reason="awarded \x1b[31min error", now=VERIFY_AT)
    with pytest.raises(InvalidInput, match="--reason: 501 characters; at most 500"):
        revoke_badge(session, EMAIL, "fundamentals", reason="x" * 501, now=VERIFY_AT)


def test_a_status_list_signed_by_another_key_is_refused(session: Session, issuer: Issuer, tmp_path: Path) -> None:
    award(session)
    token = issue_credentials(session, EMAIL, issuer=issuer, now=VERIFY_AT)[0]["jwt"]
    _, forged_list = build_status_list(session, issuer=make_issuer(tmp_path, "other.pem"), now=VERIFY_AT)
    result = verify_token(token, public_keys=[issuer.key.public_key], now=VERIFY_AT)
    with pytest.raises(InvalidInput, match="status list does not verify"):
        check_against_status_list([result], forged_list["jwt"], public_keys=[issuer.key.public_key])


def test_the_database_check_matches_recipient_and_achievement(session: Session, issuer: Issuer) -> None:
    award(session)
    client(session, "grace@example.com")
    definitions = achievement_definitions(session)
    badge = session.scalars(select(Badge).where(Badge.key == "fundamentals")).one()

    def checked(email: str, key: str, badge_id: int) -> str | None:
        credential = build_credential(
            issuer=issuer, badge_id=badge_id, email=email, awarded_at=NOW, definition=definitions[key], salt="pepper"
        )
        result = verify_token(
            sign_credential(credential, issuer, now=NOW), public_keys=[issuer.key.public_key], now=VERIFY_AT
        )
        check_against_database(session, result, issuer=issuer)
        return result.reason

    assert checked(EMAIL, "fundamentals", badge.id) is None
    assert checked("grace@example.com", "fundamentals", badge.id) == (
        "the recipient is not the client this database awarded the badge to"
    )
    assert checked(EMAIL, "pathway:pivot", badge.id) == "the achievement is not badge 'fundamentals' of this database"
    assert checked(EMAIL, "fundamentals", 999_999) == (
        "no badge of this database has the credential id https://buildappswith.example/badges/credentials/999999"
    )


def test_a_credential_issued_to_an_address_in_punycode_is_still_its_client_s(session: Session, issuer: Issuer) -> None:
    """An earlier bapp stored (and hashed into the credentials it issued) an internationalised domain as it came;
    migration 0017 keys it in Unicode, and the recipient of each such credential was then no client of the database.
    Either spelling of the client's address is the client; another address is not."""
    award(session)
    session.execute(update(User).where(User.email == EMAIL).values(email="ada@exämple.com"))
    badge = session.scalars(select(Badge).where(Badge.key == "fundamentals")).one()
    definition = achievement_definitions(session)["fundamentals"]

    def reason(email: str) -> str | None:
        built = build_credential(
            issuer=issuer, badge_id=badge.id, email=email, awarded_at=NOW, definition=definition, salt="pepper"
        )
        token = sign_credential(built, issuer, now=NOW)
        result = verify_token(token, public_keys=[issuer.key.public_key], now=VERIFY_AT)
        check_against_database(session, result, issuer=issuer)
        return result.reason

    assert reason("ada@xn--exmple-cua.com") is None and reason("ada@exämple.com") is None
    assert reason("ada@xn--bcher-kva.com") == "the recipient is not the client this database awarded the badge to"


# members of a signed credential of a type or size the checks did not expect: each crashed verify (exit 1)
HOSTILE_MEMBERS = {
    "a type member that does not hash": lambda c: c.__setitem__("type", [["x"], "VerifiableCredential"]),
    "identifier not a list": lambda c: c["credentialSubject"].update(id="urn:x", identifier="sha256$00"),
    "a non-ASCII identity hash": lambda c: c["credentialSubject"]["identifier"][0].update(identityHash="sha256$é"),
    "an id of 5,000 digits": lambda c: c.__setitem__("id", c["id"].rsplit("/", 1)[0] + "/" + "9" * 5000),
    "an infinite status list index": lambda c: c["credentialStatus"].update(statusListIndex=float("inf")),
}


@pytest.mark.parametrize("breakage", HOSTILE_MEMBERS.values(), ids=HOSTILE_MEMBERS.keys())
def test_a_signed_credential_with_hostile_members_is_invalid_never_a_crash(
    session: Session, issuer: Issuer, breakage: Any
) -> None:
    award(session)
    credential = issue_credentials(session, EMAIL, issuer=issuer, now=VERIFY_AT)[0]["credential"]
    breakage(credential)
    token = sign_credential(credential, issuer, now=NOW)
    _, status_list = build_status_list(session, issuer=issuer, now=VERIFY_AT)
    result = verify_token(token, public_keys=[issuer.key.public_key], now=VERIFY_AT)
    check_against_database(session, result, issuer=issuer)
    if result.valid:  # only the status list index is left to read: an unusable list is exit 6 naming it
        with pytest.raises(InvalidInput, match="status list cannot be read"):
            check_against_status_list([result], status_list["jwt"], public_keys=[issuer.key.public_key])
    else:
        assert result.reason


def test_status_list_bits(session: Session, issuer: Issuer) -> None:
    award(session)
    ids = [badge.id for badge in session.scalars(select(Badge).order_by(Badge.id))]
    revoke_badge(session, EMAIL, "fundamentals", reason="test", now=VERIFY_AT)
    revoked_id = session.scalars(select(Badge.id).where(Badge.key == "fundamentals")).one()
    _, listing = build_status_list(session, issuer=issuer, now=VERIFY_AT)
    encoded = listing["credential"]["credentialSubject"]["encodedList"]
    assert encoded.startswith("u")
    bits = gzip.decompress(b64decode(encoded[1:]))
    assert len(bits) * 8 == STATUS_LIST_MIN_BITS
    set_bits = [index for index in range(len(bits) * 8) if bits[index // 8] & (0x80 >> (index % 8))]
    assert set_bits == [revoked_id] and revoked_id in ids
    assert listing["credential"]["type"] == ["VerifiableCredential", "BitstringStatusListCredential"]
    # the list is a VC-JWT signed by the same key
    claims = jwt.decode(listing["jwt"], issuer.key.public_key, algorithms=["EdDSA"], options={"verify_iat": False})
    assert claims["vc"] == listing["credential"] and claims["iss"] == issuer.profile_id


def test_a_status_list_is_inflated_only_as_far_as_the_bit_it_is_asked_for(session: Session, issuer: Issuer) -> None:
    # a list is published by whoever issued the credential: 64 KiB of gzip inflating to 64 MiB was read whole
    award(session)
    issued = issue_credentials(session, EMAIL, issuer=issuer, now=VERIFY_AT)[0]
    packer = zlib.compressobj(9, zlib.DEFLATED, 31)
    bomb = b"".join(packer.compress(bytes(1 << 20)) for _ in range(64)) + packer.flush()
    status = {"id": issuer.status_list_id, "credentialSubject": {"encodedList": "u" + b64encode(bomb)}}
    listing = jwt.encode({"vc": status}, issuer.key.private_key, algorithm="EdDSA")
    result = verify_token(issued["jwt"], public_keys=[issuer.key.public_key], now=VERIFY_AT)
    tracemalloc.start()
    try:
        check_against_status_list([result], listing, public_keys=[issuer.key.public_key])
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert result.valid and peak < 4 << 20, peak


def test_achievement_ids_are_stable_and_cover_every_tier_pathway_and_fundamentals(
    session: Session, issuer: Issuer
) -> None:
    small_catalogue(session)
    definitions = achievement_definitions(session)
    assert "fundamentals" in definitions and "pathway:accelerate" in definitions and "tier:play:3" in definitions
    assert len([key for key in definitions if key.startswith("tier:")]) == 9
    assert definitions["tier:accelerate:3"]["criteria"].endswith(": no active skills.")
    # in the pathway's criteria, each tier's skills are in parentheses already: "Mastery ((no active skills))"
    assert definitions["pathway:accelerate"]["criteria"].endswith("; Mastery (no active skills).")
    assert definitions["fundamentals"]["criteria"] == "Complete every fundamental skill: F1, F2."
    assert as_achievement(definitions["pathway:pivot"], issuer)["id"] == (
        "https://buildappswith.example/badges/achievements/pathway/pivot"
    )
    with_image = Issuer(issuer.name, issuer.url, issuer.key, "https://cdn.example/badges")
    assert as_achievement(definitions["tier:pivot:2"], with_image)["image"] == {
        "id": "https://cdn.example/badges/tier-pivot-2.png",
        "type": "Image",
    }


def test_the_key_file_is_0600_never_replaced_and_refused_when_others_can_read_it(tmp_path: Path) -> None:
    path = tmp_path / "keys" / "issuer.pem"
    key = create_key_file(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_key_file(path).thumbprint() == key.thumbprint()
    before = path.read_bytes()
    with pytest.raises(Conflict, match="already exists"):
        create_key_file(path)
    assert path.read_bytes() == before
    assert "PRIVATE" not in repr(key) and key.thumbprint() in repr(key)
    os.chmod(path, 0o644)
    with pytest.raises(ConfigError, match="readable by others"):
        load_key_file(path)
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("not a key")
    garbage.chmod(0o600)
    with pytest.raises(ConfigError, match="does not hold an unencrypted PEM private key") as refused:
        load_key_file(garbage)
    assert "not a key" not in str(refused.value)
    with pytest.raises(ConfigError, match="does not exist"):
        load_key_file(tmp_path / "missing.pem")
    # a device or an endless file is refused without reading it whole (once /dev/zero filled memory)
    with pytest.raises(ConfigError, match="is not a PEM key file"):
        load_key_file(Path("/dev/zero"))
    huge = tmp_path / "huge.pem"
    huge.write_bytes(b"k" * (65 << 10))
    huge.chmod(0o600)
    with pytest.raises(ConfigError, match="is not a PEM key file"):
        load_key_file(huge)
    with pytest.raises(ConfigError, match="is not a PEM key file"):  # a directory, as a FIFO or a device
        load_key_file(tmp_path)


def test_a_key_file_under_a_regular_file_cannot_be_created_rather_than_already_existing(tmp_path: Path) -> None:
    # mkdir's FileExistsError for the parent read as "a signing key already exists" (a conflict, exit 8)
    (tmp_path / "config.toml").touch()
    with pytest.raises(ConfigError, match=r"cannot create the signing key file .*: File exists \(.*config.toml\)"):
        create_key_file(tmp_path / "config.toml" / "key.pem")


def test_public_keys_load_from_a_jwk_a_jwk_set_or_the_profile(tmp_path: Path, issuer: Issuer) -> None:
    jwk = issuer.key.public_jwk()
    for name, document in (
        ("key.jwk", jwk),
        ("keys.json", {"keys": [jwk]}),
        ("issuer.json", issuer.profile_document()),
    ):
        path = tmp_path / name
        path.write_text(json.dumps(document))
        [loaded] = public_keys_from_document(path.read_text(), str(path))
        assert loaded.public_bytes_raw() == issuer.key.public_key.public_bytes_raw()
    private = tmp_path / "private.jwk"
    private.write_text(json.dumps({**jwk, "d": "secret"}))
    with pytest.raises(InvalidInput, match="private key"):
        public_keys_from_document(private.read_text(), str(private))
    wrong = tmp_path / "rsa.jwk"
    rsa = {"kty": "RSA", "n": "x", "e": "AQAB"}
    wrong.write_text(json.dumps(rsa))
    with pytest.raises(InvalidInput, match="not an Ed25519 JWK"):
        public_keys_from_document(wrong.read_text(), str(wrong))
    with pytest.raises(InvalidInput, match=r"keys\[0\]: not an Ed25519 JWK"):  # a set with no Ed25519 key at all
        public_keys_from_document(json.dumps({"keys": [rsa]}), "keys.json")


def test_every_ed25519_key_of_a_jwk_set_or_profile_is_read(tmp_path: Path, issuer: Issuer) -> None:
    # an issuer that rotated its key publishes the old one beside the new: only the first key of a set (or the
    # Profile's first verification method) was read, so the other's credentials failed "the signature does not
    # match". A key of another type in a set (RSA) is no issuer key here, skipped; a bad Ed25519 one is named.
    rotated = make_issuer(tmp_path, "rotated.pem").key
    keys = [{"kty": "RSA", "n": "x", "e": "AQAB"}, issuer.key.public_jwk(), rotated.public_jwk()]
    profile = issuer.profile_document()
    profile["verificationMethod"].append({**profile["verificationMethod"][0], "publicKeyJwk": rotated.public_jwk()})
    for document in ({"keys": keys}, profile):
        loaded = public_keys_from_document(json.dumps(document), "issuer.json")
        assert loaded == [issuer.key.public_key, rotated.public_key]
    with pytest.raises(InvalidInput, match=r"keys\[3\]: member x is not a 32-byte"):
        public_keys_from_document(json.dumps({"keys": [*keys, {"kty": "OKP", "crv": "Ed25519", "x": "AA"}]}), "k.json")
    # a credential of either key verifies with the set, and with that key alone
    definition = {"key": "fundamentals", "name": "Fundamentals", "description": "d", "criteria": "c"}
    credential = build_credential(
        issuer=issuer, badge_id=7, email=EMAIL, awarded_at=NOW, definition=definition, salt="s"
    )
    old_issuer = Issuer(issuer.name, issuer.url, rotated)
    for signer in (issuer, old_issuer):
        token = sign_credential(credential, signer, now=NOW)
        both = [issuer.key.public_key, rotated.public_key]
        assert verify_token(token, public_keys=both, now=VERIFY_AT).valid
        assert verify_token(token, public_keys=[both[signer is issuer]], now=VERIFY_AT).reason == (
            "the signature does not match the issuer key"
        )


def test_credential_files_are_split_with_line_numbers_for_bad_lines() -> None:
    assert split_credentials("a.b.c\n\n d.e.f \n", "x.jwt") == ["a.b.c", "d.e.f"]
    assert split_credentials('[{"jwt": "a.b.c"}, "d.e.f"]', "x.json") == ["a.b.c", "d.e.f"]
    with pytest.raises(InvalidInput, match=r"x.jwt: line 2: not a compact JWS"):
        split_credentials("a.b.c\nhello\n", "x.jwt")
    with pytest.raises(InvalidInput, match="no credential"):
        split_credentials("  \n", "x.jwt")
    with pytest.raises(InvalidInput, match=r"x.json: not valid JSON \(line 1, column 3: "):
        split_credentials("[{", "x.json")
    with pytest.raises(InvalidInput, match="item 1: no jwt member"):
        split_credentials('[{"credential": {}}]', "x.json")
    # items count from 1, as verify's credentials and a file's lines do: the second was "item 1", the first "item 0"
    with pytest.raises(InvalidInput, match=r"x.json: item 2: no jwt member"):
        split_credentials('["a.b.c", {"credential": {}}]', "x.json")


def test_a_file_holds_at_most_max_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("bapp_cli.services.credentials.MAX_CREDENTIALS", 3)
    assert split_credentials("a.b.c\n" * 3, "x.jwt") == ["a.b.c"] * 3
    assert split_credentials(json.dumps(["a.b.c"] * 3), "x.json") == ["a.b.c"] * 3
    for text in ("a.b.c\n" * 4, json.dumps(["a.b.c"] * 4), "\n \r\n".join(["a.b.c"] * 4)):
        with pytest.raises(InvalidInput, match="more than 3 credentials"):
            split_credentials(text, "x")
    # a blank line holds no credential: three with blank lines between were 'more than 3 credentials'
    assert split_credentials("a.b.c\n\n \r\n\t\na.b.c\n\n\na.b.c\n\n", "x.jwt") == ["a.b.c"] * 3
    with pytest.raises(InvalidInput, match=r"x\.jwt: line 4: not a compact JWS \(three dot-separated parts\)$"):
        split_credentials("a.b.c\n\n\r\nhello\n", "x.jwt")
    # lines end at \n, as they are counted: split at \r or \f too, millions of lines went past the count
    assert split_credentials("a.b.c\r\nd.e.f\r\n", "x.jwt") == ["a.b.c", "d.e.f"]
    for separator in ("\r", "\f", "\u2028"):
        with pytest.raises(InvalidInput, match=r"x\.jwt: line 1: not a compact JWS") as refused:
            split_credentials("a.b.c" + separator * 4 + "a.b.c", "x.jwt")
        # a file of CR-only line endings (classic Mac) is one line: the message says why its tokens do not split
        assert str(refused.value).endswith("(lines end in LF or CRLF, not CR alone)") == (separator == "\r")


def test_only_a_whole_none_n_slug_is_read_as_0015s_renaming() -> None:
    # 0015 renamed `none` to `none-N`; a pathway created since as `none-2-extra` (a valid slug) is no renaming, so its
    # badge is not offered as the one an old key `tier:none-extra:1` now has
    from bapp_cli.services.credentials import _key_before_0015

    assert [_key_before_0015(key) for key in ("tier:none-2:1", "pathway:none-13", "fundamentals")] == [
        "tier:none:1",
        "pathway:none",
        "fundamentals",
    ]
    assert [_key_before_0015(key) for key in ("tier:none-2-extra:1", "pathway:none-2x")] == [
        "tier:none-2-extra:1",
        "pathway:none-2x",
    ]
    # 0015 and a restore number from 2 with no leading zero: a pathway created since as none-1 (or none-0, none-02)
    # is no renaming either, so revoke's hint never offers its badge for an old key's
    assert [_key_before_0015(key) for key in ("tier:none-1:1", "pathway:none-0", "tier:none-02:1")] == [
        "tier:none-1:1",
        "pathway:none-0",
        "tier:none-02:1",
    ]
    assert _key_before_0015("tier:none-20:1") == "tier:none:1"
