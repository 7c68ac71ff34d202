"""The Open Badges issuer's Ed25519 signing key: a PEM file of mode 0600, created once, never printed.

The private key only ever leaves this module as a `cryptography` key object handed to the JOSE library;
errors name the file, never its content. The public half is published as a JWK (RFC 8037) whose
RFC 7638 thumbprint is the key id, so a verifier can tell which key signed a credential.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from bapp_cli.config import removed_on_failure
from bapp_cli.errors import ConfigError, Conflict, InvalidInput, read_json_input, read_small_file

KEY_FILE_MODE = stat.S_IRUSR | stat.S_IWUSR


@dataclass(frozen=True)
class SigningKey:
    private_key: Ed25519PrivateKey

    @property
    def public_key(self) -> Ed25519PublicKey:
        return self.private_key.public_key()

    def public_jwk(self) -> dict[str, str]:
        """The RFC 8037 JWK of the public key."""
        from jwt.utils import base64url_encode  # unpadded, as JOSE writes it; PyJWT loads only when used

        raw = self.public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        return {"kty": "OKP", "crv": "Ed25519", "x": base64url_encode(raw).decode("ascii")}

    def thumbprint(self) -> str:
        """RFC 7638: SHA-256 over the JWK's required members, sorted, without whitespace."""
        from jwt.utils import base64url_encode

        canonical = json.dumps(self.public_jwk(), separators=(",", ":"), sort_keys=True)
        return base64url_encode(hashlib.sha256(canonical.encode("utf-8")).digest()).decode("ascii")

    def __repr__(self) -> str:  # a key object in a traceback or log line shows nothing of the key (R6)
        return f"SigningKey(thumbprint={self.thumbprint()})"


MAX_KEY_FILE_BYTES = 64 << 10


def create_key_file(path: Path) -> SigningKey:
    """A new key written to `path` with mode 0600 from the first byte; an existing file is never replaced.

    Replacing a key would silently make every credential already handed out fail verification, so an
    existing file is a conflict the operator resolves by hand.
    """
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, KEY_FILE_MODE)
    except OSError as exc:
        # only a file there is a key to keep; mkdir raises FileExistsError too, for a parent that is a file
        if not os.path.isfile(path):
            raise ConfigError(f"cannot create the signing key file {path}: {exc.strerror} ({exc.filename})") from None
        hint = "credentials already issued verify only with that key; keep it, or move it away first"
        raise Conflict(f"a signing key already exists at {path}", hint=hint, code="key_exists") from None
    with removed_on_failure(path), os.fdopen(descriptor, "wb") as handle:
        handle.write(pem)
        os.chmod(path, KEY_FILE_MODE)  # the umask may have narrowed it; never widened
    return SigningKey(key)


def load_key_file(path: Path) -> SigningKey:
    """The issuer key from its PEM file; refused (exit 4) when others may read it, as ssh refuses."""
    not_a_key = ConfigError(f"the badge signing key file {path} is not a PEM key file")
    try:
        # a PEM key is a few hundred bytes: a FIFO, a device or a larger file is no key file
        data, mode = read_small_file(path, MAX_KEY_FILE_BYTES, lambda _: not_a_key)
    except FileNotFoundError:
        hint = "create the issuer with `bapp badges issuer init --name … --url …`"
        raise ConfigError(f"the badge signing key file {path} does not exist", hint=hint) from None
    except OSError as exc:
        raise ConfigError(f"cannot read the badge signing key file {path}: {exc.strerror}") from None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        message = f"the badge signing key file {path} is readable by others (mode {stat.S_IMODE(mode):o})"
        raise ConfigError(message, hint=f"chmod 600 {path}")
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        raise ConfigError(f"the badge signing key file {path} does not hold an unencrypted PEM private key") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise ConfigError(f"the badge signing key in {path} is not an Ed25519 key")
    return SigningKey(key)


def public_key_from_jwk(jwk: Any, where: str) -> Ed25519PublicKey:
    if not isinstance(jwk, dict) or jwk.get("kty") != "OKP" or jwk.get("crv") != "Ed25519":
        raise InvalidInput(f"{where}: not an Ed25519 JWK (kty OKP, crv Ed25519)", code="bad_key")
    if "d" in jwk:
        raise InvalidInput(f"{where}: holds a private key; give the public JWK only", code="bad_key")
    from jwt.utils import base64url_decode

    try:
        return Ed25519PublicKey.from_public_bytes(base64url_decode(str(jwk.get("x"))))
    except ValueError:
        raise InvalidInput(f"{where}: member x is not a 32-byte base64url Ed25519 key", code="bad_key") from None


def public_keys_from_document(text: str, where: str) -> list[Ed25519PublicKey]:
    """The public keys of a JWK, a JWK Set, or the issuer Profile that `badges issuer show` prints.

    Every Ed25519 key of a set (others, an RSA key beside it, are no issuer's key here) or of the Profile's
    verification methods: an issuer that rotated its key lists the old one beside the new, whose credentials still
    verify. The command reads the file through bapp's one input reader (a directory or `/dev/zero` is refused
    there); `where` names it in errors."""
    document = read_json_input(text, where, code="bad_key")
    members, found = document if isinstance(document, dict) else {}, [(where, document)]
    if isinstance(keys := members.get("keys"), list) and keys:
        found = [(f"{where}: keys[{index}]", jwk) for index, jwk in enumerate(keys)]
    elif isinstance(methods := members.get("verificationMethod"), list) and methods:
        jwks = [method.get("publicKeyJwk") if isinstance(method, dict) else None for method in methods]
        found = [(f"{where}: verificationMethod[{index}].publicKeyJwk", jwk) for index, jwk in enumerate(jwks)]
    ours = [(named, jwk) for named, jwk in found if isinstance(jwk, dict) and jwk.get("crv") == "Ed25519"]
    return [public_key_from_jwk(jwk, named) for named, jwk in ours or found[:1]]  # none: the first, refused naming it
