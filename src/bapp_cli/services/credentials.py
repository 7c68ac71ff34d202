"""Portable badges: Open Badges 3.0 credentials issued, verified and revoked by bapp.

A badge (tier, pathway or fundamentals) becomes an `OpenBadgeCredential` — a W3C Verifiable Credential (VC
2.0 context plus the OB 3.0 context) signed as a VC-JWT with the issuer's Ed25519 key (EdDSA), as
1EdTech's OB 3.0 §8.2 describes: the JOSE header names the key (`kid`), the payload carries the credential
in its `vc` claim with `iss`, `jti`, `nbf` and `iat` mirroring it. Signing and signature checks are PyJWT
over `cryptography`; nothing here does cryptography of its own.

Identifiers are stable and derived from the issuer URL, so a credential exported twice names the same
things: the issuer Profile is `<url>/badges/issuer.json`, an achievement `<url>/badges/achievements/
<key with / for :>`, a credential `<url>/badges/credentials/<badge id>`, and the revocation list
`<url>/badges/revocations.json`, in which a badge's bit is its id (W3C Bitstring Status List).

The client is named only by a salted SHA-256 of the e-mail (an OB 3.0 IdentityObject), never in clear.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import gzip
import hashlib
import json
import re
import secrets
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from bapp_cli.config import with_ascii_domain
from bapp_cli.db.audit import record_audit
from bapp_cli.db.models import Badge, Pathway, PathwayTier, Skill, User
from bapp_cli.errors import Conflict, InvalidInput, NotFound, UnreadableDocument, quoted, read_json, read_json_input
from bapp_cli.services.instants import instant_text
from bapp_cli.services.pathways import tier_skills
from bapp_cli.services.people import clean_text, get_client
from bapp_cli.services.progress import FUNDAMENTALS_KEY, load_catalogue, pathway_badge_key, tier_badge_key
from bapp_cli.services.signing_key import SigningKey

VC_CONTEXT = "https://www.w3.org/ns/credentials/v2"
OB_CONTEXT = "https://purl.imsglobal.org/spec/ob/v3p0/context-3.0.3.json"
OB_CONTEXT_PATTERN = re.compile(r"^https://purl\.imsglobal\.org/spec/ob/v3p0/context(-3\.\d\.\d)*\.json$")
OB_SCHEMA = "https://purl.imsglobal.org/spec/ob/v3p0/schema/json/ob_v3p0_achievementcredential_schema.json"
ALGORITHM = "EdDSA"
# W3C Bitstring Status List: at least 131,072 entries, so one list does not single out its few holders
STATUS_LIST_MIN_BITS = 131_072
# and at most 2**27 (16 MiB inflated), as far as verify reads one: a few hundred kilobytes of gzip inflate to gigabytes
STATUS_LIST_MAX_BITS = 1 << 27
# credentials verified from one file: each takes about 1 KB of memory, so a file of millions of short lines is
# refused (exit 6) before it is split, not read into gigabytes
MAX_CREDENTIALS = 100_000
# clock difference tolerated between the issuer and a verifier, in seconds
LEEWAY_SECONDS = 60
ACHIEVEMENT_COLUMNS = ("key", "id", "name", "description", "criteria")
VERIFICATION_COLUMNS = ("credential_id", "badge", "name", "valid_from", "status", "reason")
# an IdentityObject's members and their JSON types, beside its type (OB 3.0's schema)
IDENTITY_FIELDS = (("hashed", bool), ("identityHash", str), ("identityType", str))


# -- the issuer ---------------------------------------------------------------------------------------


PROFILE_PATH = "/badges/issuer.json"  # under the issuer's URL, as every other id below


def id_key(identifier: Any) -> Any:
    """An id with its scheme and host in lower case, as RFC 3986 6.2.2.1 normalises them (case-insensitive; a path
    keeps its case): how bapp compares ids, both sides, so a credential issued under `badges.issuer_url`
    HTTPS://Org.example is this issuer's under https://org.example, and the reverse. Anything but a URL as it is."""
    origin = re.match(r"[A-Za-z][A-Za-z0-9+.-]*://[^/?#]*", identifier) if isinstance(identifier, str) else None
    return identifier if origin is None else origin[0].lower() + identifier[origin.end() :]


def achievement_id_under(base: str, key: str) -> str:
    """The id of badge `key`'s achievement under the issuer at `base` (a key's `:` are `/` there)."""
    return f"{base}/badges/achievements/{key.replace(':', '/')}"


@dataclass(frozen=True)
class Issuer:
    """The issuing organisation as configured (`badges.issuer_name`, `badges.issuer_url`) with its key."""

    name: str
    url: str
    key: SigningKey
    image_base_url: str | None = None

    @property
    def base(self) -> str:
        return self.url.rstrip("/")  # as set: ids stay what they were (README: stable ids); compared with id_key

    @property
    def profile_id(self) -> str:
        return self.base + PROFILE_PATH

    @property
    def key_id(self) -> str:
        return f"{self.profile_id}#{self.key.thumbprint()}"

    @property
    def status_list_id(self) -> str:
        return f"{self.base}/badges/revocations.json"

    def profile_reference(self) -> dict[str, Any]:
        """The issuer as embedded in each credential (OB 3.0 Profile, short form)."""
        return {"id": self.profile_id, "type": ["Profile"], "name": self.name, "url": self.url}

    def profile_document(self) -> dict[str, Any]:
        """The Profile to publish at `profile_id`, carrying the public key a verifier needs."""
        method = dict(id=self.key_id, type="JsonWebKey", controller=self.profile_id, publicKeyJwk=self.key.public_jwk())
        return {"@context": [VC_CONTEXT, OB_CONTEXT], **self.profile_reference(), "verificationMethod": [method]}


# -- achievements -------------------------------------------------------------------------------------


def as_achievement(definition: dict[str, Any], issuer: Issuer) -> dict[str, Any]:
    """An achievement record (`achievement_definitions`) as the OB 3.0 Achievement a credential embeds."""
    achievement: dict[str, Any] = {"id": achievement_id_under(issuer.base, definition["key"]), "type": ["Achievement"]}
    achievement |= {"achievementType": "Badge", "name": definition["name"], "description": definition["description"]}
    achievement["criteria"] = {"narrative": definition["criteria"]}
    if issuer.image_base_url:
        slug = definition["key"].replace(":", "-")
        achievement["image"] = {"id": f"{issuer.image_base_url.rstrip('/')}/{slug}.png", "type": "Image"}
    return achievement


def _skill_list(names: Sequence[str]) -> str:
    return ", ".join(names) if names else "no active skills"


def achievement_definitions(session: Session, base: str | None = None) -> dict[str, dict[str, Any]]:
    """Every badge bapp can award, keyed like badges: its record (ACHIEVEMENT_COLUMNS) with a criteria
    narrative from the linked skills, and its Open Badges id under the issuer URL `base` (None without one).

    The catalogue may change after a badge was awarded; the definitions describe it as it stands now.
    """
    catalogue = load_catalogue(session)
    descriptions = dict(session.execute(select(Pathway.id, Pathway.description)).all())
    tier_rows = select(PathwayTier.pathway_id, PathwayTier.tier, PathwayTier.description)
    tier_descriptions = {(pathway_id, tier): text for pathway_id, tier, text in session.execute(tier_rows)}
    linked = tier_skills(session, Skill.name)
    fundamental = select(Skill.name).where(Skill.is_fundamental.is_(True), Skill.archived.is_(False))
    fundamentals = session.scalars(fundamental.order_by(Skill.name)).all()

    definitions: dict[str, dict[str, Any]] = {}

    def define(key: str, description: str, criteria: str) -> None:
        named = {"key": key, "id": base and achievement_id_under(base, key), "name": catalogue.badge_name(key)}
        definitions[key] = named | {"description": description, "criteria": criteria}

    for info in sorted(catalogue.pathways.values(), key=lambda item: (item.position, item.slug)):
        skills = {number: _skill_list(linked[(info.id, number)]) for number in info.tiers}
        for number, tier_name in info.tiers.items():
            define(
                tier_badge_key(info.slug, number),
                tier_descriptions.get((info.id, number)) or f"Tier {number} ({tier_name}) of the {info.name} pathway.",
                f"Complete every skill of the {info.name} pathway's {tier_name} tier: {skills[number]}.",
            )
        tiers = "; ".join(f"{tier_name} ({skills[number]})" for number, tier_name in info.tiers.items())
        define(
            pathway_badge_key(info.slug),
            descriptions.get(info.id) or f"The whole {info.name} pathway.",
            f"Complete every tier of the {info.name} pathway: {tiers}.",
        )
    define(
        FUNDAMENTALS_KEY,
        "The core skills every BuildAppsWith client completes, whatever their pathway.",
        f"Complete every fundamental skill: {_skill_list(fundamentals)}.",
    )
    return definitions


# -- issuing ------------------------------------------------------------------------------------------


def _instant(value: dt.datetime) -> str:
    """An instant as Open Badges and VC-JWT readers expect it: bapp's one format, to the whole second."""
    return instant_text(value.replace(microsecond=0))


def hashed_email_identity(email: str, salt: str) -> dict[str, Any]:
    """OB 3.0 IdentityObject: `sha256$` + hex SHA-256 of the e-mail followed by the salt (UTF-8)."""
    digest = hashlib.sha256((email + salt).encode("utf-8")).hexdigest()
    return dict(
        type="IdentityObject", identityHash=f"sha256${digest}", identityType="emailAddress", hashed=True, salt=salt
    )


def identity_matches(identity: dict[str, Any], email: str) -> bool:
    salt = identity.get("salt")
    if not isinstance(salt, str) or identity.get("hashed") is not True:
        return False
    expected = hashed_email_identity(email, salt)["identityHash"]
    # as bytes: compare_digest refuses str holding non-ASCII characters
    return secrets.compare_digest(str(identity.get("identityHash", "")).encode(), expected.encode())


def _sign(vc: dict[str, Any], issuer: Issuer, now: dt.datetime, **claims: Any) -> str:
    """A VC-JWT of `vc`: `iss` and `jti` mirror the credential's issuer and id (OB 3.0 §8.2)."""
    import jwt

    claims = {"iss": issuer.profile_id, "jti": vc["id"], **claims, "iat": int(now.timestamp()), "vc": vc}
    return jwt.encode(claims, issuer.key.private_key, algorithm=ALGORITHM, headers={"kid": issuer.key_id, "typ": "JWT"})


def build_credential(
    *, issuer: Issuer, badge_id: int, email: str, awarded_at: dt.datetime, definition: dict[str, Any], salt: str
) -> dict[str, Any]:
    return {
        "@context": [VC_CONTEXT, OB_CONTEXT],
        "id": f"{issuer.base}/badges/credentials/{badge_id}",  # `_our_suffix(issuer, "credentials", …)` reads it
        "type": ["VerifiableCredential", "OpenBadgeCredential"],
        "name": definition["name"],
        "issuer": issuer.profile_reference(),
        "validFrom": _instant(awarded_at),
        "credentialSubject": {
            "type": ["AchievementSubject"],
            "identifier": [hashed_email_identity(email, salt)],
            "achievement": as_achievement(definition, issuer),
        },
        "credentialSchema": [{"id": OB_SCHEMA, "type": "1EdTechJsonSchemaValidator2019"}],
        "credentialStatus": {
            "id": f"{issuer.status_list_id}#{badge_id}",
            "type": "BitstringStatusListEntry",
            "statusPurpose": "revocation",
            "statusListIndex": str(badge_id),
            "statusListCredential": issuer.status_list_id,
        },
    }


def sign_credential(credential: dict[str, Any], issuer: Issuer, *, now: dt.datetime) -> str:
    # nbf is validFrom, which build_credential wrote as an ISO instant
    return _sign(credential, issuer, now, nbf=int(dt.datetime.fromisoformat(credential["validFrom"]).timestamp()))


def _key_before_0015(key: str) -> str:
    """Migration 0015 renamed a pathway called `none` (any case) `none-N`, and its badges' keys with it."""
    # N as 0015 and a restore write it: 2, 3, … (never none-1, none-0 or none-02, which a pathway may be called)
    return re.sub(r"^(tier|pathway):none-(?:[2-9]|[1-9][0-9]+)(?=:|$)", r"\1:none", key)


def _badges_held(session: Session, client: User, keys: Sequence[str], *, revoking: bool = False) -> list[Badge]:
    """The client's unrevoked badges, oldest first: those of `keys`, or every one when no key is named.

    A named key the client does not hold is not found; a named revoked one is a conflict, since a revoked
    badge is neither exported nor revoked again. `revoking` locks the rows and words the conflict for it."""
    query = select(Badge).where(Badge.client_id == client.id).order_by(Badge.awarded_at, Badge.id)
    badges = {badge.key: badge for badge in session.scalars(query.with_for_update() if revoking else query)}
    for key in keys:
        if (badge := badges.get(key)) is None:
            # a key from before 0015 (a credential's, a script's) is refused naming the one its badge has now
            renamed = " or ".join(repr(held) for held in badges if key.lower() == _key_before_0015(held) != held)
            hint = f"it is {renamed} now" if renamed else f"`bapp badges list {client.email}` shows the badges held"
            raise NotFound(f"{client.email} holds no badge {quoted(key)}", hint=hint, code="badge_not_found")
        if badge.revoked_at is not None:
            revocation = f"{_instant(badge.revoked_at)}: {badge.revocation_reason}"
            message = f"badge {key!r} of {client.email} was {'already ' if revoking else ''}revoked on {revocation}"
            raise Conflict(message, hint=None if revoking else "a revoked badge is not exported", code="badge_revoked")
    return [badge for badge in badges.values() if badge.revoked_at is None and (badge.key in keys or not keys)]


def issue_credentials(
    session: Session, email: str, *, issuer: Issuer, now: dt.datetime, only: Iterable[str] = ()
) -> list[dict[str, Any]]:
    """One signed credential per badge the client holds (or per badge in `only`), oldest first, each as
    `badges export --format json` writes it: {badge, credential, jwt}.

    A revoked badge is left out; named in `only` it is a conflict, as is a key the client does not hold.
    Each credential gets a fresh random salt, so two exports do not share an identity hash to link them by.
    """
    client, _ = get_client(session, email)
    # an empty key ("$BADGE" unset) is one the client does not hold, never no --badge at all
    badges = _badges_held(session, client, list(dict.fromkeys(key.strip() for key in only)))
    definitions = achievement_definitions(session)
    issued = []
    for badge in badges:
        # a badge the catalogue no longer defines (its pathway or tier removed) still exports, plainly described
        fallback = {"key": badge.key, "name": badge.key}
        fallback |= {"description": f"Badge {badge.key}.", "criteria": f"Awarded as {badge.key}."}
        definition = definitions.get(badge.key) or fallback
        credential = build_credential(
            issuer=issuer,
            badge_id=badge.id,
            email=client.email,
            awarded_at=badge.awarded_at,
            definition=definition,
            salt=secrets.token_hex(16),
        )
        signed = sign_credential(credential, issuer, now=now)
        issued.append({"badge": badge.key, "credential": credential, "jwt": signed})
    return issued


# -- revocation ---------------------------------------------------------------------------------------


def revoke_badge(session: Session, email: str, key: str, *, reason: str, now: dt.datetime) -> dict[str, Any]:
    """Mark a badge revoked, with the reason, and audit it. The badge row stays: badges are permanent.

    The record `badges revoke` prints: {client, badge, revoked_at, reason}."""
    # the one rule for stored text: a control character would also make the backup of this row unrestorable
    cleaned = clean_text(" ".join(reason.split()), "--reason", max_length=500)
    if not cleaned:
        raise InvalidInput("--reason must not be empty", code="missing_reason")
    client, _ = get_client(session, email)
    [badge] = _badges_held(session, client, [key.strip()], revoking=True)
    badge.revoked_at, badge.revocation_reason = now, cleaned
    record_audit(session, "badge", f"{client.email} {badge.key}", {"revoked_at": now, "reason": cleaned})
    session.flush()
    return {"client": client.email, "badge": badge.key, "revoked_at": now, "reason": cleaned}


def _encode_bits(revoked: Iterable[int], highest: int) -> str:
    """The list's bits, one per badge id up to `highest`: a credential's index past the end cannot be checked."""
    from jwt.utils import base64url_encode  # multibase 'u': unpadded base64url

    bits = bytearray(max(STATUS_LIST_MIN_BITS // 8, highest // 8 + 1))
    for index in revoked:
        # bit 0 is the most significant bit of the first byte (Bitstring Status List §3.2)
        bits[index // 8] |= 0x80 >> (index % 8)
    return "u" + base64url_encode(gzip.compress(bytes(bits), mtime=0)).decode("ascii")


def _bit_is_set(encoded: str, index: int) -> bool | None:
    """Whether the list's bit `index` is set; None when the list ends before it (published before that badge)."""
    if not encoded.startswith("u"):
        raise ValueError("encodedList is not multibase base64url ('u' prefix)")
    from jwt.utils import base64url_decode

    if not 0 <= index < STATUS_LIST_MAX_BITS:
        raise ValueError(f"index {index} is not a list index (0 to {STATUS_LIST_MAX_BITS - 1:,})")
    # inflated no further than the byte holding the bit: whoever issued the credential publishes the list
    bits = zlib.decompressobj(wbits=31).decompress(base64url_decode(encoded[1:]), index // 8 + 1)
    return bool(bits[index // 8] & (0x80 >> (index % 8))) if index // 8 < len(bits) else None


def build_status_list(session: Session, *, issuer: Issuer, now: dt.datetime) -> tuple[int, dict[str, Any]]:
    """The signed revocation list to publish at `issuer.status_list_id`, a bit per badge id set if revoked: how
    many are, and the list as `badges status-list --format json` writes it, {credential, jwt}."""
    revoked = list(session.scalars(select(Badge.id).where(Badge.revoked_at.is_not(None))))
    # every badge's bit, revoked or not; a badge id past the longest list (a restored one near 2**31 would be 256 MiB
    # of bits) is refused, as verify would refuse its credential's entry
    if (highest := session.scalar(select(func.max(Badge.id))) or 0) >= STATUS_LIST_MAX_BITS:
        raise InvalidInput(f"badge id {highest} is past the {STATUS_LIST_MAX_BITS:,} entries a status list holds")
    subject = dict(id=f"{issuer.status_list_id}#list", type="BitstringStatusList", statusPurpose="revocation")
    credential = {
        "@context": [VC_CONTEXT],
        "id": issuer.status_list_id,
        "type": ["VerifiableCredential", "BitstringStatusListCredential"],
        "issuer": issuer.profile_id,
        "validFrom": _instant(now),
        "credentialSubject": subject | {"encodedList": _encode_bits(revoked, highest)},
    }
    return len(revoked), {"credential": credential, "jwt": _sign(credential, issuer, now)}


# -- verifying ----------------------------------------------------------------------------------------


@dataclass
class Verification:
    """The outcome for one credential; `reason` is None when it is valid."""

    credential_id: str | None = None
    badge: str | None = None
    name: str | None = None
    valid_from: str | None = None
    reason: str | None = None
    revoked: bool = False
    credential: dict[str, Any] = field(default_factory=dict)

    @property
    def valid(self) -> bool:
        return self.reason is None

    @property
    def status(self) -> str:
        return "valid" if self.valid else ("revoked" if self.revoked else "invalid")

    def as_record(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in VERIFICATION_COLUMNS}


def _types(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _parse_instant(value: Any) -> dt.datetime | None:
    try:
        parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except (AttributeError, ValueError):  # no string (a number, an object), or no ISO 8601 instant
        return None
    return parsed if parsed.tzinfo is not None else None


def shape_problems(credential: Any) -> list[str]:
    """What makes `credential` not an OB 3.0 OpenBadgeCredential (the schema's required shape)."""
    if not isinstance(credential, dict):
        return ["the vc claim is not an object"]
    problems = []
    context = credential.get("@context")
    contexts = context if isinstance(context, list) else []
    # str(): a context that is no string (an object, a list) never reads as the OB 3.0 URL
    if len(contexts) < 2 or contexts[0] != VC_CONTEXT or not OB_CONTEXT_PATTERN.match(str(contexts[1])):
        problems.append("@context must start with the VC 2.0 and the OB 3.0 contexts")
    types = _types(credential.get("type"))
    # membership tests, never a set: a member may be a list or an object, which does not hash
    if "VerifiableCredential" not in types or not ("OpenBadgeCredential" in types or "AchievementCredential" in types):
        problems.append("type must hold VerifiableCredential and OpenBadgeCredential")
    if not isinstance(credential.get("id"), str):
        problems.append("id is missing")
    if not isinstance(credential.get("issuer"), str) and not isinstance(nested_member(credential, "issuer", "id"), str):
        problems.append("issuer must be a Profile with an id")
    if _parse_instant(credential.get("validFrom")) is None:
        problems.append("validFrom must be a date-time with a time zone")
    if "validUntil" in credential and _parse_instant(credential.get("validUntil")) is None:
        problems.append("validUntil must be a date-time with a time zone")
    subject = credential.get("credentialSubject")
    if not isinstance(subject, dict):
        return [*problems, "credentialSubject is missing"]
    if "AchievementSubject" not in _types(subject.get("type")):
        problems.append("credentialSubject.type must hold AchievementSubject")
    identifiers = subject.get("identifier", [])
    if not isinstance(identifiers, list) or not (identifiers or "id" in subject):
        problems.append("credentialSubject needs an id or a list of identifiers")
    for index, identity in enumerate(identifiers if isinstance(identifiers, list) else []):
        typed = isinstance(identity, dict) and all(isinstance(identity.get(key), kind) for key, kind in IDENTITY_FIELDS)
        if not typed or identity.get("type") != "IdentityObject":
            problems.append(f"credentialSubject.identifier[{index}] is not an IdentityObject")
    achievement = subject.get("achievement")
    if not isinstance(achievement, dict):
        return [*problems, "credentialSubject.achievement is missing"]
    for name in ("id", "name", "description"):
        if not isinstance(achievement.get(name), str):
            problems.append(f"credentialSubject.achievement.{name} is missing")
    if "Achievement" not in _types(achievement.get("type")):
        problems.append("credentialSubject.achievement.type must hold Achievement")
    if not isinstance(achievement.get("criteria"), dict):
        problems.append("credentialSubject.achievement.criteria is missing")
    return problems


def _decode_signature_only(token: str, public_keys: Sequence[Any]) -> dict[str, Any]:
    """The header and claims ({header, payload, signature}) of an EdDSA token signed by one of `public_keys` (an
    issuer's current and rotated keys), read once for each key tried (PyJWT checks its base64 a character at a time:
    the header comes from the same read). Dates are checked by the caller, against the credential itself and with the
    injected clock."""
    import jwt
    from jwt.types import Options

    options: Options = {"verify_exp": False, "verify_nbf": False, "verify_iat": False, "verify_aud": False}
    for public_key in public_keys[:-1]:
        with contextlib.suppress(jwt.InvalidSignatureError):
            return jwt.decode_complete(token, public_key, algorithms=[ALGORITHM], options=options)
    return jwt.decode_complete(token, public_keys[-1], algorithms=[ALGORITHM], options=options)


def verify_token(
    token: str, *, public_keys: Sequence[Any], now: dt.datetime, issuer: Issuer | None = None
) -> Verification:
    """Signature (EdDSA only), then the OB 3.0 shape, the JWT claims against the credential, and the dates:
    the first thing wrong is the reason; what the credential shows is filled in once the signature checks.
    With `issuer`, it must be the one that issued the credential, and the badge is read as its key."""
    import jwt

    try:
        decoded = _decode_signature_only(token, public_keys)
    except jwt.InvalidSignatureError:
        return Verification(reason="the signature does not match the issuer key")
    except jwt.InvalidAlgorithmError:
        return Verification(reason="not signed with EdDSA")
    except jwt.PyJWTError as exc:
        return Verification(reason=f"not a valid JWS: {exc}")
    header, claims = decoded["header"], decoded["payload"]
    vc = claims.get("vc")
    result = Verification(credential=vc if isinstance(vc, dict) else {})
    result.badge = achievement_key(issuer, result.credential) if issuer is not None else None
    result.credential_id, result.name, result.valid_from = (
        value if isinstance(value, str) else None
        for value in (result.credential.get(name) for name in ("id", "name", "validFrom"))
    )
    if problems := shape_problems(vc):
        result.reason = "not an Open Badges 3.0 credential: " + "; ".join(problems)
        return result
    assert isinstance(vc, dict)
    named = vc["issuer"] if isinstance(vc["issuer"], str) else vc["issuer"]["id"]
    expected = issuer.profile_id if issuer is not None else None
    ours = id_key(expected)  # the credential's ids are folded alike
    valid_from, valid_until = _parse_instant(vc["validFrom"]), _parse_instant(vc.get("validUntil"))
    leeway, nbf, kid = dt.timedelta(seconds=LEEWAY_SECONDS), claims.get("nbf"), id_key(header.get("kid"))
    assert valid_from is not None  # shape_problems checked it
    # in the order a reader fixes them: the claims against the credential, the issuer, then the dates
    checks = (
        (claims.get("iss") != named, f"iss {quoted(claims.get('iss'))} is not the credential's issuer {quoted(named)}"),
        (claims.get("jti") != vc["id"], f"jti {quoted(claims.get('jti'))} is not the credential id {quoted(vc['id'])}"),
        (ours not in (None, id_key(named)), f"issued by {quoted(named)}, not by {expected}"),
        (ours and not str(kid).startswith(f"{ours}#"), f"signed with key {quoted(kid)}, not one of {expected}"),
        (not isinstance(nbf, int) or abs(nbf - int(valid_from.timestamp())) > 1, "nbf does not match validFrom"),
        (valid_from > now + leeway, f"not valid before {vc['validFrom']}"),
        (valid_until is not None and valid_until < now - leeway, f"expired at {vc.get('validUntil')}"),
    )
    result.reason = next((reason for failed, reason in checks if failed), None)
    return result


def _our_suffix(issuer: Issuer, kind: str, identifier: Any) -> str | None:
    """What follows `<issuer url>/badges/<kind>/` in one of this issuer's ids; None for anyone else's."""
    folded, prefix = id_key(identifier), id_key(f"{issuer.base}/badges/{kind}/")  # only origins fold: same suffix
    return folded[len(prefix) :] if isinstance(folded, str) and folded.startswith(prefix) else None


def nested_member(credential: Any, *path: str) -> Any:
    """`credential[path[0]][path[1]]…` as it is (the achievement id a credential names, its issuer's); None when
    one of them is not there."""
    for name in path:
        credential = credential.get(name) if isinstance(credential, dict) else None
    return credential


def achievement_key(issuer: Issuer, credential: dict[str, Any]) -> str | None:
    """The badge key that the credential's achievement id names under this issuer; None for anyone else's."""
    suffix = _our_suffix(issuer, "achievements", nested_member(credential, "credentialSubject", "achievement", "id"))
    return suffix.replace("/", ":") if suffix is not None else None


def check_against_database(session: Session, verification: Verification, *, issuer: Issuer) -> None:
    """That the verified credential still stands here: its badge exists, matches, and is not revoked."""
    if not verification.valid:
        return
    vc = verification.credential
    credential_id = str(vc.get("id", ""))
    badge_id = _our_suffix(issuer, "credentials", credential_id) or ""
    row = None
    # never an integer the database would overflow on, nor one too long for int() to read
    if badge_id.isascii() and badge_id.isdigit() and len(badge_id) <= 10 and int(badge_id) < 2**31:
        query = select(Badge, User.email).join(User, User.id == Badge.client_id).where(Badge.id == int(badge_id))
        row = session.execute(query).one_or_none()
    if row is None:
        verification.reason = f"no badge of this database has the credential id {credential_id}"
        return
    badge, email = row
    verification.badge = badge.key
    # one issued before migration 0017 keyed the domain in Unicode may name the address as it came, in xn-- form
    spellings = {email, with_ascii_domain(email)}
    identities = vc["credentialSubject"].get("identifier") or []
    achieved, named = achievement_key(issuer, vc) or "", nested_member(vc, "credentialSubject", "achievement", "id")
    # the badge's id as export writes it (its key read back from an id would not tell x/y from x:y); a credential
    # issued before 0015 names the badge by its old key (`tier:none:1`): the badge of that id is still it
    ours = id_key(achievement_id_under(issuer.base, badge.key))  # the two origins folded alike
    if id_key(named) != ours and achieved.lower() != _key_before_0015(badge.key):
        verification.reason = f"the achievement is not badge {badge.key!r} of this database"
    elif not any(identity_matches(identity, spelling) for identity in identities for spelling in spellings):
        verification.reason = "the recipient is not the client this database awarded the badge to"
    elif badge.revoked_at is not None:
        verification.revoked = True
        verification.reason = f"revoked on {_instant(badge.revoked_at)}: {badge.revocation_reason}"


def _unusable_status_list(problem: str) -> InvalidInput:
    return InvalidInput(f"the status list {problem}", code="bad_status_list")


def check_against_status_list(verifications: Sequence[Verification], token: str, *, public_keys: Sequence[Any]) -> None:
    """Revocation from a published status list (signed by the same issuer), for a verifier without the db. The list's
    signature is checked once for them all: checked per credential, it made verifying half as long again."""
    import jwt

    if not (valid := [verification for verification in verifications if verification.valid]):
        return
    try:
        claims = _decode_signature_only(token, public_keys)["payload"]
    except jwt.PyJWTError as exc:
        raise _unusable_status_list(f"does not verify with the issuer key: {exc}") from None
    for item in valid:
        status, vc = item.credential.get("credentialStatus"), claims.get("vc")
        if not isinstance(status, dict) or not isinstance(vc, dict):
            item.reason = "the credential names no status list entry"
            continue
        if id_key(named := status.get("statusListCredential")) != id_key(vc.get("id")):
            raise _unusable_status_list(f"is {quoted(vc.get('id'))}, but the credential's is {quoted(named)}")
        try:
            revoked = _bit_is_set(str(vc["credentialSubject"]["encodedList"]), int(status["statusListIndex"]))
        except (KeyError, TypeError, ValueError, OverflowError, OSError, EOFError, zlib.error) as exc:  # int(inf)
            raise _unusable_status_list(f"cannot be read: {exc}") from None
        if revoked is None:  # the credential's alone: the others' entries are read all the same
            item.reason = f"not in the status list of {vc.get('validFrom')}, which predates it: use a newer list"
        elif revoked:
            item.revoked = True
            item.reason = f"revoked (status list of {vc.get('validFrom')})"


def split_credentials(text: str, source: str) -> list[str]:
    """The compact JWS tokens in a file: one per line, or JSON as `badges export --format json` writes it."""
    stripped = text.strip()
    # an empty JSON list (a client without badges exported) holds none either: never a verification of nothing
    if not stripped.strip("[] \t\r\n"):
        raise InvalidInput(f"{source}: no credential in it", code="no_credential")
    too_many = f"{source}: more than {MAX_CREDENTIALS:,} credentials; verify at most that many at a time"
    if stripped[0] not in "[{":
        # the lines that are not blank, to their last non-space (a CRLF's \r is left out), split at \n alone and one
        # past the limit at most: millions of short lines are never held (nor split at \r or \f into millions uncounted)
        found = [line for _, line in zip(range(MAX_CREDENTIALS + 1), re.finditer(r"(?m)^.*\S", text), strict=False)]
        if len(found) > MAX_CREDENTIALS:
            raise InvalidInput(too_many, code="too_many_credentials")
        if bad := next((line for line in found if line.group().strip().count(".") != 2), None):
            why = "lines end in LF or CRLF, not CR alone" if "\r" in bad.group() else "three dot-separated parts"
            row = text.count("\n", 0, bad.start()) + 1
            raise InvalidInput(f"{source}: line {row}: not a compact JWS ({why})", code="bad_jws")
        return [line.group().strip() for line in found]
    document = read_json_input(stripped, source, code="bad_json")
    items = [item if isinstance(item, dict) else {"jwt": item} for item in _types(document)]
    if len(items) > MAX_CREDENTIALS:
        raise InvalidInput(too_many, code="too_many_credentials")
    for index, item in enumerate(items, start=1):  # counted from 1, as the credentials and a file's lines are
        # a compact JWS is ASCII: never half a UTF-16 pair ("\ud800"), which the JOSE library cannot encode
        if not isinstance(member := item.get("jwt"), str) or not member.isascii():
            raise InvalidInput(f"{source}: item {index}: no jwt member holding a compact JWS", code="no_credential")
        _refuse_edited(item, member, f"{source}: item {index}")
    return [item["jwt"].strip() for item in items]


def _refuse_edited(item: dict[str, Any], token: str, where: str) -> None:
    """Beside its jwt, what a reader of an export item sees, though verify vouches for the jwt alone: the credential
    it signs, and the badge whose achievement id, as export writes it under the signed issuer, is the signed one.
    Never the key read back from that id, which cannot tell the key x/y from x:y (nor x:badges:achievements:y from
    y): bapp's own export of such a badge failed its verify."""
    from jwt.utils import base64url_decode

    # the vc claim as it is, None when the claims cannot be read (verify reports that token invalid): read here, not
    # by PyJWT's decode, whose base64 check a character at a time is six times slower; verify's signature check
    # covers these very bytes (a token of more or fewer parts, or not base64url, does not verify)
    signed = None
    with contextlib.suppress(ValueError, IndexError, UnreadableDocument):
        signed = nested_member(read_json(base64url_decode(token.split(".")[1])), "vc")
    if signed is None:
        return
    achieved = nested_member(signed, "credentialSubject", "achievement", "id")
    if isinstance(badge := item.get("badge", achieved), str) and "badge" in item:
        badge = achievement_id_under(str(nested_member(signed, "issuer", "id")).removesuffix(PROFILE_PATH), badge)
    for name, given, value in (("credential", item.get("credential", signed), signed), ("badge", badge, achieved)):
        # the very same JSON values, keys in any order: never equal to Python alone (true == 1 == 1.0)
        if json.dumps(given, sort_keys=True) != json.dumps(value, sort_keys=True):
            raise InvalidInput(f"{where}: its {name} is not the one its jwt signs", code="credential_mismatch")
