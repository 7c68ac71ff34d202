"""`bapp badges issuer|achievements|export|verify|revoke|status-list` through the real CLI, on both backends.

Round trip: award → export → verify (schema, signature, database), then revoke → verify reports it, from
the database and from the published status list.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import gzip
import json
import os
import shutil
import socket
import stat
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft201909Validator
from sqlalchemy import select, text, update
from sqlalchemy.orm import Session

from bapp_cli.db.engine import make_engine
from bapp_cli.db.models import AuditEntry, Badge
from bapp_cli.services.skills import complete_skill
from bapp_cli.services.transfer import importer
from tests.cli.test_progress_cli import seed
from tests.conftest import REPO, Bapp, eventually
from tests.postgres_server import waits_for_lock
from tests.services.test_credentials import SCHEMA_PATH, award, b64decode
from tests.services.test_progress_factories import client, small_catalogue

EMAIL = "ada@example.com"
# the CLI verifies against the real clock, so the badges are awarded in the past
AWARDED = dt.datetime(2024, 5, 1, 12, tzinfo=dt.UTC)


def awarded_in_the_past(session: Session) -> None:
    award(session, now=AWARDED)


def issuer_init(bapp: Bapp) -> dict[str, str]:
    result = bapp(
        "badges", "issuer", "init", "--name", "BuildAppsWith", "--url", "https://buildappswith.example/", "--json"
    )
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout)


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)  # no database is read
def test_issuer_init_prints_its_record_in_the_chosen_format_and_checks_the_format_first(bapp: Bapp) -> None:
    # CLI.md: every command that prints records takes --format/--json, TSV with a header in a pipe; it
    # printed JSON whatever was asked. A bad --format is refused before the key file is created.
    refused = bapp("badges", "issuer", "init", "--name", "X", "--url", "https://x.example", "--format", "xml")
    assert refused.exit_code == 2 and not (bapp.home / "badge-signing-key.pem").exists()
    piped = bapp("badges", "issuer", "init", "--name", "X", "--url", "https://x.example")
    assert piped.exit_code == 0, piped.stderr
    header, row = piped.stdout.splitlines()
    assert header == "profile_id\tkey_id\tkey_file" and row.startswith("https://x.example/badges/issuer.json\t")


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)  # refused before any database is read
@pytest.mark.parametrize("command", [("export", "ada@example.com"), ("status-list",)])
def test_a_long_credential_format_is_echoed_cut(bapp: Bapp, command: tuple[str, ...]) -> None:
    # `--format` of 5,000 characters came back whole (twice, with the JSON error line)
    result = bapp("badges", *command, "--format", "x" * 5000, env={"BAPP_FORMAT": "json"})
    assert result.exit_code == 2 and "choose jwt or json" in result.stderr, result.stderr
    assert "x" * 61 not in result.stderr and "…" in result.stderr, result.stderr


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)  # no database is read
def test_issuer_init_refuses_an_empty_key_file(bapp: Bapp) -> None:
    # --key-file "$KEY_FILE" with KEY_FILE unset created the default key beside the config file and recorded
    # it, as if no --key-file were given: refused (exit 6) as an empty -o is, before anything is written
    before = sorted(bapp.home.iterdir())
    result = bapp("badges", "issuer", "init", "--name", "X", "--url", "https://x.example", "--key-file", "")
    assert result.exit_code == 6 and result.stderr.startswith("Error: --key-file must not be empty\n"), result.stderr
    assert sorted(bapp.home.iterdir()) == before and not (bapp.home / "badge-signing-key.pem").exists()


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)  # no database is read
@pytest.mark.parametrize("value", ["", "ftp://img.example"])
def test_issuer_init_names_a_bad_image_base_url_and_refuses_an_empty_one(bapp: Bapp, value: str) -> None:
    # a bad --image-base-url was refused as '--url: …', naming the other option; an empty one ("$URL" unset)
    # was taken for none given, and the issuer made without its images
    before = sorted(bapp.home.iterdir())
    result = bapp("badges", "issuer", "init", "--name", "X", "--url", "https://x.example", "--image-base-url", value)
    assert result.exit_code == 6, result.stderr
    assert result.stderr.startswith(f"Error: --image-base-url: {value!r} is not an https URL\n"), result.stderr
    assert sorted(bapp.home.iterdir()) == before


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)  # no database is read
def test_issuer_init_replaces_a_bad_issuer_in_the_config_file(bapp: Bapp) -> None:
    # --name, --url and --key-file replace badges.issuer_name, issuer_url and key_file (flag > file), as init
    # writes them: a bad old value stops nothing (it was exit 4, so init could not repair the issuer it sets).
    # One not replaced is still refused.
    config = bapp.home / "config.toml"
    old_key = bapp.home / "old.pem"
    config.write_text(
        f'[badges]\nissuer_url = "ftp://old.example"\nissuer_name = "Old\\u0007"\nkey_file = "{old_key}\\u0000"\n'
    )
    assert bapp("pathways", "list").exit_code == 4
    init = ("badges", "issuer", "init", "--name", "New", "--url", "https://new.example", "--json")
    created = bapp(*init)
    assert created.exit_code == 0, created.stderr
    assert created.json()["profile_id"] == "https://new.example/badges/issuer.json"
    assert bapp("badges", "issuer", "show").exit_code == 0  # the config now names the new issuer alone
    config.write_text('[badges]\nimage_base_url = "ftp://old.example"\n')
    refused = bapp(*init[:-1], "--key-file", str(bapp.home / "other.pem"))
    assert refused.exit_code == 4 and "key badges.image_base_url" in refused.stderr
    assert bapp(*init[:-1], "--key-file", str(old_key), "--image-base-url", "https://img.example").exit_code == 0


def badge_rows(bapp: Bapp) -> list[Badge]:
    engine = make_engine(bapp.database_url)
    try:
        with Session(engine) as session:
            return list(session.scalars(select(Badge).order_by(Badge.id)))
    finally:
        engine.dispose()


def test_award_export_verify_revoke_round_trip(bapp: Bapp, tmp_path: Path) -> None:
    seed(bapp, awarded_in_the_past)
    created = issuer_init(bapp)
    key_file = Path(created["key_file"])
    assert key_file == bapp.home / "badge-signing-key.pem"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert created["profile_id"] == "https://buildappswith.example/badges/issuer.json"

    exported = tmp_path / "ada.jwt"
    result = bapp("badges", "export", EMAIL, "-o", str(exported))
    assert result.exit_code == 0, result.stderr
    assert result.stdout == ""
    tokens = exported.read_text().splitlines()
    assert len(tokens) == 3 and all(token.count(".") == 2 for token in tokens)
    assert EMAIL not in exported.read_text()

    as_json = bapp("badges", "export", EMAIL, "--format", "json")
    assert as_json.exit_code == 0, as_json.stderr
    documents = as_json.json()
    validator = Draft201909Validator(
        json.loads(SCHEMA_PATH.read_text()), format_checker=Draft201909Validator.FORMAT_CHECKER
    )
    assert [document["badge"] for document in documents] == ["tier:accelerate:1", "tier:play:1", "fundamentals"]
    for document in documents:
        assert list(validator.iter_errors(document["credential"])) == []
    assert EMAIL not in as_json.stdout

    verified = bapp("badges", "verify", str(exported), "--against-db", "--json")
    assert verified.exit_code == 0, verified.stderr
    assert [(row["badge"], row["status"], row["reason"]) for row in verified.json()] == [
        ("tier:accelerate:1", "valid", None),
        ("tier:play:1", "valid", None),
        ("fundamentals", "valid", None),
    ]
    # the JSON export verifies too, from stdin
    piped = bapp("badges", "verify", "-", "--json", stdin=as_json.stdout)
    assert piped.exit_code == 0, piped.stderr
    assert {row["status"] for row in piped.json()} == {"valid"}

    revoked = bapp("badges", "revoke", EMAIL, "tier:play:1", "--reason", "awarded in error", "--json")
    assert revoked.exit_code == 0, revoked.stderr
    assert revoked.json()["reason"] == "awarded in error"
    after = bapp("badges", "verify", str(exported), "--against-db", "--json")
    assert after.exit_code == 6
    assert [row["status"] for row in after.json()] == ["valid", "revoked", "valid"]
    assert "1 of 3 credential(s) invalid; credential 2: revoked on " in after.stderr
    assert ": awarded in error" in after.stderr
    assert '"code": "credential_invalid"' in after.stderr
    # without --against-db the signature still holds: revocation is a database or status-list fact, and a "valid"
    # that checked neither says so on stderr (it said nothing), the JSON on stdout staying the records alone
    plain = bapp("badges", "verify", str(exported), "--json")
    assert plain.exit_code == 0 and [row["status"] for row in plain.json()] == ["valid"] * 3, plain.stderr
    assert "Revocation was not checked: --against-db or --status-list checks it." in plain.stderr
    assert "Revocation was not checked" not in verified.stderr + after.stderr

    # a verifier elsewhere: the published JWK and status list, no database, no bapp issuer config
    jwk_file, status_file = tmp_path / "issuer.jwk", tmp_path / "revocations.jwt"
    shown = bapp("badges", "issuer", "show", "--jwk")
    assert shown.exit_code == 0 and set(json.loads(shown.stdout)) == {"kty", "crv", "x"}
    jwk_file.write_text(shown.stdout)
    assert bapp("badges", "status-list", "-o", str(status_file)).exit_code == 0
    elsewhere = bapp(
        "badges",
        "verify",
        str(exported),
        "--key",
        str(jwk_file),
        "--status-list",
        str(status_file),
        "--json",
        env={"BAPP_CONFIG": str(tmp_path / "absent.toml"), "BAPP_DATABASE_URL": "sqlite:////nonexistent/x.db"},
    )
    assert elsewhere.exit_code == 6 and "Revocation was not checked" not in elsewhere.stderr, elsewhere.stderr
    assert [row["status"] for row in elsewhere.json()] == ["valid", "revoked", "valid"]

    # the revoked badge is no longer exported, and the badge row stays with its reason
    assert len(bapp("badges", "export", EMAIL).stdout.splitlines()) == 2
    rows = {row.key: row for row in badge_rows(bapp)}
    assert rows["tier:play:1"].revocation_reason == "awarded in error" and rows["tier:play:1"].revoked_at
    assert rows["fundamentals"].revoked_at is None


def test_the_status_list_has_a_bit_for_every_badge_not_only_up_to_the_last_revoked(bapp: Bapp, tmp_path: Path) -> None:
    # the list was sized by the highest revoked id (at least 131,072 bits), so once badge ids passed that, a badge
    # not revoked had no bit: `verify --status-list` of its credential failed whole with exit 6 ("the status list
    # cannot be read: index 200000 is past the end of the list"), as any verifier elsewhere would
    def badge_past_the_minimum(session: Session) -> None:
        awarded_in_the_past(session)
        session.execute(update(Badge).where(Badge.key == "fundamentals").values(id=200_000))

    seed(bapp, badge_past_the_minimum)
    issuer_init(bapp)
    assert bapp("badges", "revoke", EMAIL, "tier:play:1", "--reason", "awarded in error").exit_code == 0
    exported, listing = tmp_path / "ada.jwt", tmp_path / "revocations.jwt"
    assert bapp("badges", "export", EMAIL, "-o", str(exported)).exit_code == 0
    assert bapp("badges", "status-list", "-o", str(listing)).exit_code == 0
    result = bapp("badges", "verify", str(exported), "--status-list", str(listing), "--json")
    assert result.exit_code == 0, result.stderr
    assert [(row["credential_id"].rsplit("/", 1)[1], row["status"]) for row in result.json()][-1] == ("200000", "valid")


def test_verify_checks_the_status_lists_signature_once_not_per_credential(
    bapp: Bapp, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # verify --status-list checked the list's signature again for every credential: 3,000 took half as long again
    # (10.2 s, 6.8 s without the list), and more with a JWK Set whose later key signed the list (a key tried each)
    from bapp_cli.services import credentials

    seed(bapp, awarded_in_the_past)
    issuer_init(bapp)
    exported, listing = tmp_path / "ada.jwt", tmp_path / "revocations.jwt"
    assert bapp("badges", "export", EMAIL, "-o", str(exported)).exit_code == 0
    assert bapp("badges", "status-list", "-o", str(listing)).exit_code == 0
    checked, decode = [], credentials._decode_signature_only
    monkeypatch.setattr(
        credentials, "_decode_signature_only", lambda token, keys: checked.append(token) or decode(token, keys)
    )
    result = bapp("badges", "verify", str(exported), "--status-list", str(listing), "--json")
    assert result.exit_code == 0 and [row["status"] for row in result.json()] == ["valid"] * 3, result.stderr
    assert checked.count(listing.read_text().strip()) == 1 and len(checked) == 4  # the three credentials, the list


def test_verify_reads_each_credential_once(bapp: Bapp, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # verify read every token twice, its header alone and then whole for the signature, and PyJWT checks the base64
    # a character at a time: 2,000 credentials took 1.82 s of CPU, 1.45 s read once. Counted where bapp hands a
    # token to PyJWT, its public functions: its private loader is no contract and may change in any release
    import jwt

    seed(bapp, awarded_in_the_past)
    issuer_init(bapp)
    exported = tmp_path / "ada.jwt"
    assert bapp("badges", "export", EMAIL, "-o", str(exported)).exit_code == 0
    read: list[str] = []

    def counted(reads: Any) -> Any:
        return lambda token, *args, **kwargs: read.append(token) or reads(token, *args, **kwargs)

    for name in ("get_unverified_header", "decode", "decode_complete"):
        monkeypatch.setattr(jwt, name, counted(getattr(jwt, name)))
    result = bapp("badges", "verify", str(exported), "--json")
    assert result.exit_code == 0 and [row["status"] for row in result.json()] == ["valid"] * 3, result.stderr
    assert sorted(read) == sorted(exported.read_text().split())


def test_a_status_list_older_than_a_badge_fails_that_credential_alone(bapp: Bapp, tmp_path: Path) -> None:
    # a list published before a badge whose entry lies past its end failed the whole run (exit 6, no listing:
    # "the status list cannot be read: index 200000 is past the end of the list"), the other credentials unchecked
    seed(bapp, awarded_in_the_past)
    issuer_init(bapp)
    assert bapp("badges", "revoke", EMAIL, "tier:play:1", "--reason", "awarded in error").exit_code == 0
    exported, listing = tmp_path / "ada.jwt", tmp_path / "revocations.jwt"
    assert bapp("badges", "status-list", "-o", str(listing)).exit_code == 0  # published, then a badge comes later
    seed(bapp, lambda session: session.execute(update(Badge).where(Badge.key == "fundamentals").values(id=200_000)))
    assert bapp("badges", "export", EMAIL, "-o", str(exported)).exit_code == 0
    result = bapp("badges", "verify", str(exported), "--status-list", str(listing), "--json")
    assert result.exit_code == 6, result.stderr
    rows = [(row["credential_id"].rsplit("/", 1)[1], row["status"], row["reason"]) for row in result.json()]
    assert [status for _, status, _ in rows[:-1]] == ["valid"]  # the revoked one is no longer exported
    assert rows[-1][:2] == ("200000", "invalid") and "which predates it: use a newer list" in rows[-1][2], rows
    assert "1 of 2 credential(s) invalid; credential 2: not in the status list of " in result.stderr


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_badge_id_past_what_verify_reads_is_refused_by_status_list_not_published(bapp: Bapp, tmp_path: Path) -> None:
    # the list was sized by any badge id: a restored one near 2**31 made status-list hold 256 MiB of bits (and
    # ~480 MB of memory), publishing a list whose entry verify, which inflates at most 16 MiB, called "past the end
    # of the list (134217728 entries read)"; the last id a list holds still verifies, the next is refused
    def renumber(value: int) -> None:
        seed(bapp, lambda session: session.execute(update(Badge).where(Badge.key == "fundamentals").values(id=value)))

    seed(bapp, awarded_in_the_past)
    issuer_init(bapp)
    exported, listing = tmp_path / "ada.jwt", tmp_path / "revocations.jwt"
    renumber(2**27 - 1)
    assert bapp("badges", "export", EMAIL, "-o", str(exported)).exit_code == 0
    assert bapp("badges", "status-list", "-o", str(listing)).exit_code == 0
    result = bapp("badges", "verify", str(exported), "--status-list", str(listing), "--json")
    assert result.exit_code == 0, result.stderr
    assert result.json()[-1]["credential_id"].endswith("/134217727")
    listing.unlink()
    renumber(2**27)
    result = bapp("badges", "status-list", "-o", str(listing))
    assert result.exit_code == 6, result.stderr
    assert result.stderr.startswith("Error: badge id 134217728 is past the 134,217,728 entries a status list holds\n")
    assert not listing.exists()


def test_tampered_or_foreign_credentials_exit_6_with_the_reason(bapp: Bapp, tmp_path: Path) -> None:
    seed(bapp, awarded_in_the_past)
    issuer_init(bapp)
    token = bapp("badges", "export", EMAIL, "--badge", "fundamentals").stdout.strip()
    header, body, signature = token.split(".")
    middle = len(signature) // 2
    flipped = signature[:middle] + ("A" if signature[middle] != "A" else "B") + signature[middle + 1 :]
    tampered = tmp_path / "tampered.jwt"
    tampered.write_text(f"{header}.{body}.{flipped}\n")
    result = bapp("badges", "verify", str(tampered))
    assert result.exit_code == 6
    assert "credential 1: the signature does not match the issuer key" in result.stderr

    # a second bapp with its own issuer key cannot vouch for ours
    other = Bapp(bapp.database_url, tmp_path / "other")
    assert (
        other("badges", "issuer", "init", "--name", "Impostor", "--url", "https://buildappswith.example").exit_code == 0
    )
    good = tmp_path / "good.jwt"
    good.write_text(token + "\n")
    foreign = other("badges", "verify", str(good))
    assert foreign.exit_code == 6 and "the signature does not match the issuer key" in foreign.stderr

    garbage = tmp_path / "garbage.txt"
    garbage.write_text("a.b.c\nnot a credential\n")
    bad = bapp("badges", "verify", str(garbage))
    assert bad.exit_code == 6 and f"{garbage}: line 2: not a compact JWS" in bad.stderr
    assert bapp("badges", "verify", str(tmp_path / "missing.jwt")).exit_code == 6
    assert "Traceback" not in bad.stderr + foreign.stderr + result.stderr


def test_a_signed_credential_with_long_claims_is_refused_with_them_cut(bapp: Bapp, tmp_path: Path) -> None:
    # a credential signed with the issuer's own key whose id and key id are 5,000 characters: verify's reason quoted
    # the id whole, and the error's details named the credential by it again
    import jwt
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    seed(bapp, awarded_in_the_past)
    issuer_init(bapp)
    token = bapp("badges", "export", EMAIL, "--badge", "fundamentals").stdout.strip()
    claims, long = jwt.decode(token, options={"verify_signature": False}), "x" * 5000
    claims["vc"]["id"] = long
    key = load_pem_private_key((bapp.home / "badge-signing-key.pem").read_bytes(), None)
    forged = tmp_path / "long.jwt"
    forged.write_text(jwt.encode(claims, key, algorithm="EdDSA", headers={"kid": long}) + "\n")  # type: ignore[arg-type]
    result = bapp("badges", "verify", str(forged), env={"BAPP_FORMAT": "json"})
    assert result.exit_code == 6 and "is not the credential id" in result.stderr, result.stderr
    assert "x" * 61 not in result.stderr and "…" in result.stderr, result.stderr  # stdout's credential_id is data


@pytest.mark.parametrize(
    "url", ["https://[zz]", "https://example.com:port", "https://exa mple.com", "https://x.example/\x1b[31m"]
)
def test_an_issuer_url_that_is_no_url_is_refused_from_the_command_line_and_the_config_file(
    bapp: Bapp, url: str
) -> None:
    # an unclosed IPv6 bracket was exit 1 (urlsplit raised); a bad port, a space or ESC became every badge's id
    init = bapp("badges", "issuer", "init", "--name", "X", "--url", url)
    assert init.exit_code == 6 and "--url: " in init.stderr and "not an https URL" in init.stderr, init.stderr
    assert not (bapp.home / "badge-signing-key.pem").exists()
    assert bapp("badges", "issuer", "init", "--name", "X", "--url", "https://x.example").exit_code == 0
    local = bapp("config", "set", "badges.image_base_url", "http://localhost:8000/img")  # plain http to a local host
    assert local.exit_code == 0, local.stderr
    config = Path(bapp.env["BAPP_CONFIG"])
    config.write_text(config.read_text().replace("https://x.example", url.replace("\x1b", "\\u001b")))
    show = bapp("badges", "issuer", "show")
    assert show.exit_code == 4 and "key badges.issuer_url" in show.stderr and "not an https URL" in show.stderr


def test_an_issuer_name_with_a_control_character_is_refused_like_any_stored_name(bapp: Bapp) -> None:
    # it was stored, and signed into every credential a wallet shows: ESC and all
    init = bapp("badges", "issuer", "init", "--name", "Build\x1b[31mApps", "--url", "https://x.example")
    assert init.exit_code == 6 and "badges.issuer_name: holds the control character U+001B" in init.stderr
    assert not (bapp.home / "badge-signing-key.pem").exists()
    assert bapp("badges", "issuer", "init", "--name", "BuildApps", "--url", "https://x.example").exit_code == 0
    config = Path(bapp.env["BAPP_CONFIG"])
    config.write_text(config.read_text().replace("BuildApps", "Build\\u001bApps"))
    show = bapp("badges", "issuer", "show")
    assert show.exit_code == 4 and "key badges.issuer_name: holds the control character U+001B" in show.stderr


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)  # no database is read
def test_the_issuer_name_is_stored_and_signed_in_nfc_as_every_name(bapp: Bapp) -> None:
    # typed with a combining accent (NFD), it was stored and signed so: another spelling of the same issuer's name
    init = bapp("badges", "issuer", "init", "--name", "Cafe\u0301 Apps", "--url", "https://x.example")
    assert init.exit_code == 0, init.stderr
    config = Path(bapp.env["BAPP_CONFIG"])
    assert tomllib.loads(config.read_text())["badges"]["issuer_name"] == "Caf\u00e9 Apps"
    assert bapp("badges", "issuer", "show").json()["name"] == "Caf\u00e9 Apps"
    config.write_text(config.read_text().replace("Caf\u00e9", "Cafe\\u0301"))  # a file written by hand, in NFD
    assert bapp("badges", "issuer", "show").json()["name"] == "Caf\u00e9 Apps"
    shown = {row["key"]: row["value"] for row in bapp("config", "show", "--json").json()}
    assert shown["badges.issuer_name"] == "Caf\u00e9 Apps"


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)  # no database is read
def test_a_key_file_that_is_a_fifo_or_a_socket_is_refused_at_once(bapp: Bapp, tmp_path: Path) -> None:
    # opening it waited for a writer: every badges command hung; a socket was "No such device or address"
    fifo, sock = tmp_path / "key.pem", tmp_path / "key.sock"
    os.mkfifo(fifo)
    with contextlib.closing(socket.socket(socket.AF_UNIX)) as listener:
        listener.bind(str(sock))
    for key_file in (fifo, sock):
        Path(bapp.env["BAPP_CONFIG"]).write_text(
            f'[badges]\nissuer_name = "B"\nissuer_url = "https://b.example"\nkey_file = "{key_file}"\n'
        )
        result = bapp.process("badges", "issuer", "show", timeout=60)
        assert result.exit_code == 4 and f"the badge signing key file {key_file} is not a PEM key file" in result.stderr


def test_against_db_vouches_only_for_credentials_this_issuer_signed(bapp: Bapp, tmp_path: Path) -> None:
    # with --key naming another key, that key's copy of a badge held here verified as valid against the database
    seed(bapp, awarded_in_the_past)
    issuer_init(bapp)
    other = Bapp(bapp.database_url, tmp_path / "other")
    impostor = ("badges", "issuer", "init", "--name", "Impostor", "--url", "https://buildappswith.example/")
    assert other(*impostor).exit_code == 0
    forged, genuine = tmp_path / "forged.jwt", tmp_path / "genuine.jwt"
    other_key, own_key = tmp_path / "other.jwk", tmp_path / "own.jwk"
    forged.write_text(other("badges", "export", EMAIL).stdout)
    genuine.write_text(bapp("badges", "export", EMAIL).stdout)
    other_key.write_text(other("badges", "issuer", "show", "--jwk").stdout)
    own_key.write_text(bapp("badges", "issuer", "show", "--jwk").stdout)
    assert bapp("badges", "verify", str(forged), "--key", str(other_key)).exit_code == 0  # that key did sign it
    refused = bapp("badges", "verify", str(forged), "--key", str(other_key), "--against-db")
    assert refused.exit_code == 6 and "--key is not this issuer's key" in refused.stderr
    assert bapp("badges", "verify", str(genuine), "--key", str(own_key), "--against-db").exit_code == 0


def test_the_issuer_url_s_scheme_and_host_in_other_letter_case_name_the_same_issuer(bapp: Bapp, tmp_path: Path) -> None:
    # RFC 3986 6.2.2.1: scheme and host are case-insensitive. `config set badges.issuer_url HTTPS://BuildAppsWith.example`
    # (the same URL) made every credential issued before invalid, "issued by …, not by …": the ids were compared as
    # text. Both directions: credentials issued under either spelling verify under the other, with the status list
    # one signed and the database; a path's case is its own, and another host is still another issuer.
    seed(bapp, awarded_in_the_past)
    issuer_init(bapp)
    spellings = ("https://buildappswith.example", "HTTPS://BuildAppsWith.EXAMPLE/")
    for issued_under, verified_under in (spellings, spellings[::-1]):
        assert bapp("config", "set", "badges.issuer_url", issued_under).exit_code == 0
        (credentials := tmp_path / "issued.jwt").write_text(bapp("badges", "export", EMAIL).stdout)
        (status_list := tmp_path / "revocations.jwt").write_text(bapp("badges", "status-list").stdout)
        assert bapp("config", "set", "badges.issuer_url", verified_under).exit_code == 0
        result = bapp("badges", "verify", str(credentials), "--against-db", "--status-list", str(status_list), "--json")
        assert result.exit_code == 0, result.stderr
        assert {row["status"] for row in result.json()} == {"valid"}
        # its ids as set, as before the comparison folded case: an id exported once is the same id ever after
        assert {row["credential_id"].split("/badges/")[0] for row in result.json()} == {issued_under.rstrip("/")}
    for other in ("https://buildappswith.example/Badges", "https://other.example"):
        assert bapp("config", "set", "badges.issuer_url", other).exit_code == 0
        refused = bapp("badges", "verify", str(credentials), "--against-db")
        assert refused.exit_code == 6 and "not by" in refused.stderr


def test_verify_reads_every_key_of_a_jwk_set_so_a_rotated_keys_credentials_still_verify(
    bapp: Bapp, tmp_path: Path
) -> None:
    # an issuer that starts over with a new key (`config unset badges.key_file`, init) publishes a JWK Set of both
    # for verifiers of what each signed, as JOSE intends; verify read the set's first key alone, so every credential
    # of the other key, and a status list it signed, failed "the signature does not match the issuer key" (exit 6)
    seed(bapp, awarded_in_the_past)
    issuer_init(bapp)
    old_jwk, old_credentials = bapp("badges", "issuer", "show", "--jwk").json(), bapp("badges", "export", EMAIL).stdout
    assert bapp("config", "unset", "badges.key_file").exit_code == 0
    init = ("badges", "issuer", "init", "--name", "BuildAppsWith", "--url", "https://buildappswith.example/")
    assert bapp(*init, "--key-file", str(tmp_path / "new.pem")).exit_code == 0
    new_jwk, new_credentials = bapp("badges", "issuer", "show", "--jwk").json(), bapp("badges", "export", EMAIL).stdout
    (credentials := tmp_path / "both.jwt").write_text(old_credentials + new_credentials)
    (key_set := tmp_path / "keys.json").write_text(json.dumps({"keys": [old_jwk, new_jwk]}))
    (status_list := tmp_path / "revocations.jwt").write_text(bapp("badges", "status-list").stdout)
    result = bapp(
        "badges", "verify", str(credentials), "--key", str(key_set), "--status-list", str(status_list), "--json"
    )
    assert result.exit_code == 0, result.stderr
    statuses = [row["status"] for row in result.json()]
    assert statuses == ["valid"] * len(credentials.read_text().splitlines()) and len(statuses) > 2
    (old_only := tmp_path / "old.json").write_text(json.dumps({"keys": [old_jwk]}))
    assert bapp("badges", "verify", str(credentials), "--key", str(old_only)).exit_code == 6  # the new key's


def test_issuer_and_badge_errors_have_documented_exit_codes(bapp: Bapp, tmp_path: Path) -> None:
    seed(bapp, awarded_in_the_past)
    no_issuer = bapp("badges", "export", EMAIL)
    assert no_issuer.exit_code == 4 and "bapp badges issuer init" in no_issuer.stderr
    assert bapp("badges", "issuer", "show").exit_code == 4
    bad_url = bapp("badges", "issuer", "init", "--name", "X", "--url", "ftp://example.com")
    assert bad_url.exit_code == 6 and "not an https URL" in bad_url.stderr
    assert not (bapp.home / "badge-signing-key.pem").exists()

    # a config file that cannot be written (its directory is a file): exit 4, and no key is left behind
    (tmp_path / "not-a-directory").touch()
    unwritable = {"BAPP_CONFIG": str(tmp_path / "not-a-directory" / "config.toml")}
    orphan = tmp_path / "orphan.pem"
    init = ("badges", "issuer", "init", "--name", "X", "--url", "https://x.example", "--key-file", str(orphan))
    no_config = bapp(*init, env=unwritable)
    assert no_config.exit_code == 4 and "cannot write config file" in no_config.stderr
    assert not orphan.exists()

    created = issuer_init(bapp)
    key_file = Path(created["key_file"])
    key_before = key_file.read_bytes()
    again = bapp("badges", "issuer", "init", "--name", "X", "--url", "https://other.example")
    assert again.exit_code == 8 and "already exists" in again.stderr
    assert key_file.read_bytes() == key_before

    assert bapp("badges", "export", "nobody@example.com").exit_code == 7
    assert bapp("badges", "export", EMAIL, "--badge", "pathway:pivot").exit_code == 7
    assert bapp("badges", "export", EMAIL, "--format", "pdf").exit_code == 2
    assert bapp("badges", "revoke", EMAIL, "pathway:pivot", "--reason", "x").exit_code == 7

    dry = bapp("badges", "revoke", EMAIL, "fundamentals", "--reason", "test", "--dry-run")
    assert dry.exit_code == 0, dry.stderr
    assert all(row.revoked_at is None for row in badge_rows(bapp))
    assert bapp("badges", "revoke", EMAIL, "fundamentals", "--reason", "test").exit_code == 0
    twice = bapp("badges", "revoke", EMAIL, "fundamentals", "--reason", "test")
    assert twice.exit_code == 8 and "already revoked" in twice.stderr
    assert bapp("badges", "export", EMAIL, "--badge", "fundamentals").exit_code == 8

    engine = make_engine(bapp.database_url)
    try:
        with Session(engine) as session:
            audits = [row for row in session.scalars(select(AuditEntry)) if (row.changes or {}).get("reason") == "test"]
    finally:
        engine.dispose()
    assert [(row.entity, row.entity_key, row.actor) for row in audits] == [("badge", f"{EMAIL} fundamentals", "tester")]

    key_file.chmod(0o644)
    exposed = bapp("badges", "export", EMAIL)
    assert exposed.exit_code == 4 and "readable by others" in exposed.stderr


def test_the_private_key_never_appears_in_any_output(bapp: Bapp, tmp_path: Path) -> None:
    seed(bapp, awarded_in_the_past)
    created = issuer_init(bapp)
    pem = Path(created["key_file"]).read_text()
    body = "".join(line for line in pem.splitlines() if not line.startswith("-----"))
    from bapp_cli.services.signing_key import load_key_file

    key = load_key_file(Path(created["key_file"]))
    from cryptography.hazmat.primitives import serialization

    raw = key.private_key.private_bytes(
        serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
    )
    import base64

    secrets = {body, base64.urlsafe_b64encode(raw).rstrip(b"=").decode(), raw.hex()}
    outputs = [
        bapp("badges", "issuer", "show"),
        bapp("badges", "issuer", "show", "--jwk"),
        bapp("badges", "export", EMAIL, "--format", "json"),
        bapp("badges", "status-list", "--format", "json"),
        bapp("badges", "achievements", "--json"),
        bapp("config", "show", "--json"),
        bapp("--debug", "badges", "verify", str(tmp_path / "missing")),
    ]
    for result in outputs:
        for secret in secrets:
            assert secret not in result.stdout and secret not in result.stderr
    assert '"d"' not in outputs[1].stdout


def test_credential_json_is_shaped_as_each_commands_help_says(bapp: Bapp) -> None:
    # status-list's --format help said "json: an array of {badge, credential, jwt}", export's shape: it is one object
    seed(bapp, awarded_in_the_past)
    issuer_init(bapp)
    export_help, status_help = (
        " ".join(bapp("badges", verb, "--help").stdout.split()) for verb in ("export", "status-list")
    )
    assert "an array of {badge, credential, jwt}" in export_help
    assert "one object {credential, jwt}" in status_help and "array" not in status_help
    exported = json.loads(bapp("badges", "export", EMAIL, "--format", "json").stdout)
    assert isinstance(exported, list) and set(exported[0]) == {"badge", "credential", "jwt"}
    listing = json.loads(bapp("badges", "status-list", "--format", "json").stdout)
    assert isinstance(listing, dict) and set(listing) == {"credential", "jwt"}


def test_achievements_list_every_tier_pathway_and_fundamentals(bapp: Bapp) -> None:
    seed(bapp, awarded_in_the_past)
    before = bapp("badges", "achievements", "--json")
    assert before.exit_code == 0, before.stderr
    rows = {row["key"]: row for row in before.json()}
    assert len(rows) == 9 + 3 + 1 and rows["fundamentals"]["id"] is None
    issuer_init(bapp)
    rows = {row["key"]: row for row in bapp("badges", "achievements", "--json").json()}
    assert rows["tier:accelerate:1"]["id"] == "https://buildappswith.example/badges/achievements/tier/accelerate/1"
    assert rows["tier:accelerate:1"]["criteria"].endswith("Foundation tier: A1, A2, A3.")


@pytest.mark.parametrize("spoil", ["readable by others", "missing", "not a key"])
def test_achievements_need_the_issuer_url_not_its_key(bapp: Bapp, spoil: str) -> None:
    # the achievement ids are the issuer URL's alone, yet achievements loaded the signing key for them: a key file kept
    # where only the signing job reads it (gone, group-readable, spoilt) made the catalogue listing exit 4
    seed(bapp, awarded_in_the_past)
    key_file = Path(issuer_init(bapp)["key_file"])
    if spoil == "readable by others":
        key_file.chmod(0o644)
    elif spoil == "missing":
        key_file.unlink()
    else:
        key_file.write_text("hello\n")
    result = bapp("badges", "achievements", "--json")
    assert result.exit_code == 0, result.stderr
    rows = {row["key"]: row for row in result.json()}
    assert rows["tier:accelerate:1"]["id"] == "https://buildappswith.example/badges/achievements/tier/accelerate/1"
    assert bapp("badges", "export", EMAIL).exit_code == 4  # signing still needs the key


def test_badges_help_stays_light() -> None:
    """The badge commands import PyJWT and cryptography only when they run."""
    completed = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "bapp_cli", "badges", "export", "--help"],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=60,
    )
    assert completed.returncode == 0, completed.stderr
    loaded = {line.rsplit("|", 1)[1].strip().split(".")[0] for line in completed.stderr.splitlines() if "|" in line}
    assert not {"jwt", "cryptography", "jsonschema"} & loaded


@pytest.mark.parametrize("url", ["https://example.com?x=1", "http://example.com", "example.com"])
def test_issuer_url_must_be_https(bapp: Bapp, url: str) -> None:
    result = bapp("badges", "issuer", "init", "--name", "X", "--url", url)
    assert result.exit_code == 6, result.stderr


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)  # refused before the database
def test_an_issuer_url_carrying_credentials_is_refused_not_signed_into_every_badge(bapp: Bapp) -> None:
    # https://user:password@host was taken: the password went into the public issuer profile's id, url and key id,
    # and into every badge issued, which verifiers and wallets fetch and show
    for url in ("https://me:hunter2@x.example", "https://me@x.example"):
        init = bapp("badges", "issuer", "init", "--name", "X", "--url", url)
        assert init.exit_code == 6 and "must not carry credentials" in init.stderr and "hunter2" not in init.stderr
        assert not (bapp.home / "badge-signing-key.pem").exists()
        image = bapp("config", "set", "badges.image_base_url", url + "/img")
        assert image.exit_code == 6 and "must not carry credentials" in image.stderr, image.stderr


def test_a_backup_and_restore_keeps_revocations(bapp: Bapp, tmp_path: Path, sqlite_template: Path) -> None:
    seed(bapp, awarded_in_the_past)
    issuer_init(bapp)
    assert bapp("badges", "revoke", EMAIL, "tier:play:1", "--reason", "awarded in error").exit_code == 0
    backup = tmp_path / "backup.json"
    assert bapp("export", "all", "-o", str(backup)).exit_code == 0
    exported = {row["key"]: row for row in json.loads(backup.read_text())["badges"]}
    assert exported["tier:play:1"]["revocation_reason"] == "awarded in error"
    assert exported["fundamentals"]["revoked_at"] is None

    shutil.copyfile(sqlite_template, tmp_path / "restored.db")  # at head, as `db upgrade` leaves a new file
    restored = Bapp(f"sqlite:///{tmp_path / 'restored.db'}", bapp.home)
    result = restored("import", "all", str(backup))
    assert result.exit_code == 0, result.stderr
    again = tmp_path / "again.json"
    assert restored("export", "all", "-o", str(again)).exit_code == 0
    assert again.read_text() == backup.read_text()
    # the restored database still reports the revocation to a verifier
    token = bapp("badges", "export", EMAIL, "--badge", "fundamentals").stdout
    assert restored("badges", "verify", "-", "--against-db", stdin=token).exit_code == 0
    revoked = restored("badges", "revoke", EMAIL, "tier:play:1", "--reason", "again")
    assert revoked.exit_code == 8 and "awarded in error" in revoked.stderr


def test_hostile_credentials_signed_with_our_key_never_crash_verify(bapp: Bapp, tmp_path: Path) -> None:
    """A signed token can still carry odd ids and indices: each gives exit 6 with a reason, never exit 1."""
    from bapp_cli.services.credentials import Issuer, sign_credential
    from bapp_cli.services.signing_key import load_key_file

    seed(bapp, awarded_in_the_past)
    created = issuer_init(bapp)
    issuer = Issuer("BuildAppsWith", "https://buildappswith.example", load_key_file(Path(created["key_file"])))
    documents = bapp("badges", "export", EMAIL, "--format", "json").json()
    base = documents[0]["credential"]
    hostile = []
    for credential_id in ("99999999999999999999999", "²", "-1", "1e3"):
        credential = json.loads(json.dumps(base))
        credential["id"] = f"https://buildappswith.example/badges/credentials/{credential_id}"
        hostile.append(sign_credential(credential, issuer, now=AWARDED))
    path = tmp_path / "hostile.jwt"
    path.write_text("\n".join(hostile) + "\n")
    result = bapp("badges", "verify", str(path), "--against-db", "--json")
    assert result.exit_code == 6, result.stderr
    assert {row["reason"].split(" has ")[0] for row in result.json()} == {"no badge of this database"}

    status_list = tmp_path / "list.jwt"
    # an index past the list's end is the credential's own failure (a list older than it), the others the list's
    for index, said in (("-1", "the status list cannot be read"), ("99999999", "predates it"), ("x", "cannot be read")):
        credential = json.loads(json.dumps(base))
        credential["credentialStatus"]["statusListIndex"] = index
        token_file = tmp_path / "odd.jwt"
        token_file.write_text(sign_credential(credential, issuer, now=AWARDED) + "\n")
        assert bapp("badges", "status-list", "-o", str(status_list)).exit_code == 0
        odd = bapp("badges", "verify", str(token_file), "--status-list", str(status_list))
        assert odd.exit_code == 6 and said in odd.stderr, odd.stderr
    # a badge credential is not a status list
    not_a_list = bapp("badges", "verify", str(path), "--status-list", str(path))
    assert not_a_list.exit_code == 6 and "Traceback" not in not_a_list.stderr


def test_concurrent_revocations_of_one_badge_have_exactly_one_winner(bapp: Bapp) -> None:
    """Real processes race to revoke the same badge: one succeeds, the rest are conflicts, one audit row."""
    seed(bapp, awarded_in_the_past)
    processes = [
        bapp.popen("badges", "revoke", EMAIL, "fundamentals", "--reason", f"race {number}", "--json")
        for number in range(4)
    ]
    outcomes = [(process.wait(timeout=120), *process.communicate()) for process in processes]
    codes = sorted(code for code, _, _ in outcomes)
    assert codes == [0, 8, 8, 8], outcomes
    winner = next(json.loads(stdout) for code, stdout, _ in outcomes if code == 0)
    assert all("already revoked" in stderr and winner["reason"] in stderr for code, _, stderr in outcomes if code == 8)
    engine = make_engine(bapp.database_url)
    try:
        with Session(engine) as session:
            audits = [
                row for row in session.scalars(select(AuditEntry)) if "race" in str((row.changes or {}).get("reason"))
            ]
            badge = session.scalars(select(Badge).where(Badge.key == "fundamentals")).one()
    finally:
        engine.dispose()
    assert len(audits) == 1 and badge.revocation_reason == winner["reason"]


def test_verify_reads_the_key_file_through_the_one_input_reader(
    bapp: Bapp, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`--key` is a path like any other: a directory, a missing file or an endless one (`/dev/zero`,
    once a MemoryError and exit 1) is exit 6 naming --key; `-` reads the key from stdin."""
    seed(bapp, awarded_in_the_past)
    issuer_init(bapp)
    credential = tmp_path / "badge.jwt"
    credential.write_text(bapp("badges", "export", EMAIL, "--badge", "fundamentals").stdout)
    jwk = bapp("badges", "issuer", "show", "--jwk").stdout
    monkeypatch.setattr("bapp_cli.cli.files.MAX_WHOLE_FILE_BYTES", 1 << 20)  # /dev/zero refused after 1 MB
    for key in (str(tmp_path), str(tmp_path / "missing.jwk"), "/dev/zero"):
        result = bapp("badges", "verify", str(credential), "--key", key)
        assert result.exit_code == 6, (key, result.stderr)
        assert f"--key: cannot read {key}" in result.stderr
    assert bapp("badges", "verify", str(credential), "--key", "-", stdin=jwk).exit_code == 0
    # stdin given twice: the second reader found it empty, so `--status-list -` beside credentials from stdin
    # was "-: no credential in it", as if the list were empty; refused, naming the three, as --key always was
    listing = bapp("badges", "status-list").stdout
    only_one = "only one of the credentials, --key and --status-list can come from stdin"
    for twice in (
        ("-", "--key", "-"),
        ("-", "--status-list", "-"),
        (str(credential), "--key", "-", "--status-list", "-"),
    ):
        both = bapp("badges", "verify", *twice, stdin=jwk)
        assert both.exit_code == 6 and only_one in both.stderr, (twice, both.stderr)
    assert bapp("badges", "verify", str(credential), "--status-list", "-", stdin=listing).exit_code == 0
    unlisted = bapp("badges", "verify", str(credential), "--status-list", "-", stdin="")
    assert unlisted.exit_code == 6 and "Error: stdin: no credential in it" in unlisted.stderr
    # an empty --key or --status-list ("$FILE" unset) is a path that cannot be read: it was taken for no option
    # at all, so this issuer's key stood in for the one named and a revoked badge verified with no revocation check
    for option in ("--key", "--status-list"):
        empty = bapp("badges", "verify", str(credential), option, "")
        assert empty.exit_code == 6, (option, empty.stderr)
        assert f"{option}: cannot read '': No such file or directory" in empty.stderr


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_credential_issued_before_0015_renamed_its_pathway_still_verifies_against_the_database(
    bapp: Bapp, tmp_path: Path
) -> None:
    """0015 renames a pathway an earlier bapp let be called `none` (to `none-2`) and its badges' keys with it: a
    credential issued before, whose achievement names `tier:none:1`, is still the badge the database holds."""
    seed(bapp, awarded_in_the_past)
    issuer_init(bapp)
    engine = make_engine(bapp.database_url)
    with engine.begin() as connection:  # as an earlier bapp let it be
        connection.execute(text("UPDATE pathways SET slug = 'none' WHERE slug = 'play'"))
        connection.execute(text("UPDATE badges SET key = 'tier:none:1' WHERE key = 'tier:play:1'"))
    token = bapp("badges", "export", EMAIL, "--badge", "tier:none:1")
    assert token.exit_code == 0, token.stderr
    # back to 0015's schema for real (later revisions add to it), then marked as before 0015, which leaves the
    # schema as it is: the upgrade runs 0015 on the data an earlier bapp let be, and every revision after it
    assert bapp("db", "downgrade", "0015_no_pathway_named_none", "--yes").exit_code == 0
    with engine.begin() as connection:
        connection.execute(text("UPDATE alembic_version SET version_num = '0014_session_slug_rule'"))
    engine.dispose()
    assert bapp("db", "upgrade").exit_code == 0
    assert [row.key for row in badge_rows(bapp)].count("tier:none-2:1") == 1
    verified = bapp("badges", "verify", "-", "--against-db", "--json", stdin=token.stdout)
    assert verified.exit_code == 0, verified.stderr
    assert [(row["badge"], row["status"]) for row in verified.json()] == [("tier:none-2:1", "valid")]
    # revoke and export --badge take the new key only (a write goes by what `badges list` shows), but the old
    # one, from such a credential or a script, is refused naming the new one, not as a badge never held
    for command in (("revoke", EMAIL, "tier:None:1", "--reason", "x"), ("export", EMAIL, "--badge", "tier:none:1")):
        refused = bapp("badges", *command)
        assert refused.exit_code == 7 and "Hint: it is 'tier:none-2:1' now" in refused.stderr, refused.stderr
    assert bapp("badges", "revoke", EMAIL, "tier:none-2:1", "--reason", "x").exit_code == 0


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)  # no database is read
def test_a_directory_or_a_device_is_no_place_for_the_key(
    bapp: Bapp, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # a directory named as --key-file was 'a signing key already exists' (exit 8), as was a path to /dev/null:
    # only a file there is a key that may not be replaced (an empty one is refused before, see above)
    monkeypatch.chdir(tmp_path)
    init = ("badges", "issuer", "init", "--name", "X", "--url", "https://x.example", "--key-file")
    for given in (str(tmp_path), "/dev/null", "keys/.", "keys/..", f"{tmp_path}/keys/"):
        refused = bapp(*init, given)
        assert refused.exit_code == 4, (given, refused.stderr)
        assert "cannot create the signing key file" in refused.stderr and "already exists" not in refused.stderr
    assert not (bapp.home / "badge-signing-key.pem").exists() and not (bapp.home / "config.toml").exists()
    # a name ending in / is a directory's, as -o reads it: pathlib dropped the /, so the key became a file 'keys'
    # (and dropped the . of keys/., so it did for that; keys/.. made the directory keys, then failed)
    assert "keys/: a directory name: give a file name" in refused.stderr and not (tmp_path / "keys").exists()
    # so is BAPP_BADGES_KEY_FILE's, which init makes when no --key-file is given: it made the file 'keys', exit 0
    for named in ("keys/", "keys/.", f"{tmp_path}/keys/"):
        refused = bapp(*init[:-1], env={"BAPP_BADGES_KEY_FILE": named})
        assert refused.exit_code == 4 and f"{named}: a directory name: give a file name" in refused.stderr, named
    assert not (tmp_path / "keys").exists() and not (bapp.home / "config.toml").exists()


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_an_empty_badge_key_exports_no_badge(bapp: Bapp) -> None:
    # an empty --badge ("$BADGE" unset) was dropped, so the export signed every badge the client holds where the
    # script asked for one: it is a key the client does not hold (exit 7), as revoke's empty key is
    seed(bapp, awarded_in_the_past)
    issuer_init(bapp)
    for given in (("",), (" ", "--badge", "fundamentals")):
        refused = bapp("badges", "export", EMAIL, "--badge", *given)
        assert refused.exit_code == 7 and f"{EMAIL} holds no badge ''" in refused.stderr, refused.stderr
        assert refused.stdout == ""


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)  # no database is read
@pytest.mark.parametrize(
    ("content", "error"),
    [
        # JSON may escape half of a UTF-16 pair ("\ud800"), text no UTF-8 can carry: the JOSE library's encode of
        # the token raised UnicodeEncodeError, 'unexpected error' (exit 1)
        ('[{"jwt": "\\ud800.a.b"}]', "item 1: no jwt member holding a compact JWS"),
        # `export --format json` of a client without badges is `[]`: verify passed it (exit 0, every one of no
        # credentials valid) where an empty JWT file is refused, and as --status-list it was an IndexError (exit 1)
        ("[ \n]\n", "no credential in it"),
    ],
    ids=["half-a-utf16-pair", "empty-json-list"],
)
def test_a_file_without_a_usable_credential_is_refused_as_credentials_and_as_status_list(
    bapp: Bapp, tmp_path: Path, content: str, error: str
) -> None:
    issuer_init(bapp)
    hostile = tmp_path / "hostile.json"
    hostile.write_text(content)
    listing = tmp_path / "listing.jwt"
    listing.write_text(bapp("badges", "status-list").stdout)
    for arguments in ((str(hostile),), (str(listing), "--status-list", str(hostile))):
        refused = bapp("badges", "verify", *arguments)
        assert refused.exit_code == 6, refused.stderr
        assert f"Error: {hostile}: {error}" in refused.stderr


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)  # no database is read
def test_a_file_of_more_credentials_than_the_limit_is_refused_before_it_is_verified(bapp: Bapp, tmp_path: Path) -> None:
    # each credential verified takes about 1 KB of memory: a file of millions of short lines (256 MB may be read)
    # took gigabytes; more than the limit is exit 6 naming it, in JWT lines or a JSON list, and as --status-list
    issuer_init(bapp)
    lines, members = tmp_path / "many.jwt", tmp_path / "many.json"
    lines.write_text("a.b.c\n" * 100_001)
    members.write_text(json.dumps(["a.b.c"] * 100_001))
    listing = tmp_path / "listing.jwt"
    listing.write_text(bapp("badges", "status-list").stdout)
    for path, arguments in (
        (lines, (str(lines),)),
        (members, (str(members),)),
        (lines, (str(listing), "--status-list", str(lines))),
    ):
        refused = bapp("badges", "verify", *arguments)
        assert refused.exit_code == 6 and refused.stdout == "", refused.stderr
        assert f"Error: {path}: more than 100,000 credentials; verify at most that many at a time" in refused.stderr


def test_an_output_path_naming_the_signing_key_or_the_config_file_is_refused_before_it_is_written(
    bapp: Bapp, tmp_path: Path
) -> None:
    # `badges status-list -o KEY` replaced the issuer's private key (just read to sign the list) with the list,
    # and `export … -o CONFIG` the config file with the export: both exit 0, the key lost for good
    issuer_init(bapp)
    config = Path(bapp.env["BAPP_CONFIG"])
    key_file = Path(tomllib.loads(config.read_text())["badges"]["key_file"])
    token_file = tmp_path / "token"
    token_file.write_text("cal-token\n")
    assert bapp("config", "set", "calendly.token_file", str(token_file)).exit_code == 0
    kept = {path: path.read_bytes() for path in (config, key_file, token_file)}
    for command, path, described in [
        (("badges", "status-list"), key_file, "the file of badges.key_file; writing it would destroy the secret"),
        (("export", "pathways", "--format", "json"), config, "bapp's config file; writing it would destroy the"),
        (("export", "clients", "--format", "csv"), token_file, "the file of calendly.token_file;"),
    ]:
        result = bapp(*command, "-o", str(path))
        assert result.exit_code == 6, result.stderr
        assert result.stderr.startswith(f"Error: --output: {path} is {described}"), result.stderr
    assert {path: path.read_bytes() for path in kept} == kept
    # a device is no file to lose: /dev/null is still an output when it is the config file (BAPP_CONFIG=/dev/null)
    assert bapp("export", "pathways", "-o", os.devnull, env={"BAPP_CONFIG": os.devnull}).exit_code == 0


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)  # the backup's source; the merge runs on both
def test_a_merged_backup_keeps_the_awards_and_revocations_of_the_badges_it_brings(
    bapp: Bapp, tmp_path: Path, second_database_url: str
) -> None:
    # `import all` into a database with data ran the progress section first, which awarded the badges as the history
    # met them; the badges section then took each for one held before ("never re-dated"): a badge the backup had
    # revoked came back valid (exported, verified --against-db, clear in the status list), its award re-dated
    later = AWARDED + dt.timedelta(days=1, hours=3)
    seed(bapp, awarded_in_the_past)
    seed(
        bapp,
        lambda session: session.execute(update(Badge).where(Badge.key == "tier:accelerate:1").values(awarded_at=later)),
    )
    issuer_init(bapp)
    for key in ("tier:accelerate:1", "tier:play:1"):
        assert bapp("badges", "revoke", EMAIL, key, "--reason", f"{key} in error").exit_code == 0
    backup = tmp_path / "backup.json"
    assert bapp("export", "all", "-o", str(backup)).exit_code == 0
    sent = {row["key"]: row for row in json.loads(backup.read_text())["badges"]}

    # the database merged into already holds Fundamentals and play tier 1 (f1, f2), awarded on its own dates
    merged = Bapp(second_database_url, bapp.home)  # the same issuer
    own = dt.datetime(2024, 4, 2, 8, tzinfo=dt.UTC)

    def holds_two(session: Session) -> None:
        small_catalogue(session)
        client(session, EMAIL, "accelerate")
        for slug in ("f1", "f2"):
            complete_skill(session, EMAIL, slug, now=own)

    seed(merged, holds_two)
    before = merged("badges", "list", EMAIL, "--json").json()
    assert merged("import", "all", str(backup), "--dry-run").exit_code == 0
    assert merged("badges", "list", EMAIL, "--json").json() == before  # --dry-run rolls back
    result = merged("import", "all", str(backup), "--json")
    assert result.exit_code == 0, result.stderr
    kinds = result.json()["kinds"]
    assert result.json()["restored"] is False and kinds["progress"]["badges_awarded"] == 1
    assert (kinds["badges"]["created"], kinds["badges"]["updated"], kinds["badges"]["unchanged"]) == (0, 1, 2)

    badges = {row["key"]: row for row in merged("badges", "list", EMAIL, "--json").json()}
    # awarded by this import: as the backup has it, revocation and all
    assert badges["tier:accelerate:1"]["revoked_at"] == sent["tier:accelerate:1"]["revoked_at"] is not None
    assert (
        badges["tier:accelerate:1"]["awarded_at"] == sent["tier:accelerate:1"]["awarded_at"] == "2024-05-02T15:00:00Z"
    )
    # held before: the database's own award; the backup's revocation was of another issue of it, not taken
    for key in ("tier:play:1", "fundamentals"):
        assert (badges[key]["awarded_at"], badges[key]["revoked_at"]) == ("2024-04-02T08:00:00Z", None), key
    rows = {row.key: row for row in badge_rows(merged)}
    assert rows["tier:accelerate:1"].revocation_reason == "tier:accelerate:1 in error"
    assert rows["tier:play:1"].revocation_reason is None

    # what a verifier sees: only the two valid credentials exported, both valid against the database and against
    # the status list, whose one set bit is the revoked badge's
    exported, listing = tmp_path / "merged.jwt", tmp_path / "revocations.jwt"
    assert merged("badges", "export", EMAIL, "-o", str(exported)).exit_code == 0
    assert len(exported.read_text().splitlines()) == 2
    assert merged("badges", "verify", str(exported), "--against-db").exit_code == 0
    assert merged("badges", "status-list", "-o", str(listing)).exit_code == 0
    assert merged("badges", "verify", str(exported), "--status-list", str(listing)).exit_code == 0
    encoded = json.loads(merged("badges", "status-list", "--format", "json").stdout)["credential"]
    bits = gzip.decompress(b64decode(encoded["credentialSubject"]["encodedList"][1:]))
    set_bits = [index for index in range(len(bits) * 8) if bits[index // 8] & (0x80 >> (index % 8))]
    assert set_bits == [rows["tier:accelerate:1"].id]


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)  # the backup's source; the merge runs on both
def test_a_backup_naming_a_badge_twice_is_a_bad_row_not_the_first_taken(
    bapp: Bapp, tmp_path: Path, second_database_url: str
) -> None:
    # the badges section kept the first of two rows for one badge and counted the second unchanged, whatever
    # award or revocation each gave; a second row for a key is refused as every kind's is (exit 6, nothing written)
    seed(bapp, awarded_in_the_past)
    backup = tmp_path / "backup.json"
    assert bapp("export", "all", "-o", str(backup)).exit_code == 0
    document = json.loads(backup.read_text())
    document["badges"].append(document["badges"][0] | {"revoked_at": "2024-06-01T00:00:00Z"})
    backup.write_text(json.dumps(document, indent=1))
    merged = Bapp(second_database_url, tmp_path / "merged")
    assert merged("clients", "add", "someone@example.com").exit_code == 0
    result = merged("import", "all", str(backup))
    assert result.exit_code == 6, result.stderr
    assert "key: this badge is already on line" in result.stderr, result.stderr
    assert merged("export", "clients").stdout.count("@example.com") == 1  # nothing written


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)  # the backup's source; the merge runs on both
def test_a_badge_listed_twice_batches_apart_is_a_bad_row_too(
    bapp: Bapp, tmp_path: Path, second_database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # only rows of one batch (5,000) were compared: a badge repeated further on was inserted by the first row and
    # then updated by the second (restore or merge alike), the second's award and revocation silently taken
    monkeypatch.setattr(importer, "CHUNK", 2)  # in-process: the batches of 5,000 rows, made small
    seed(bapp, awarded_in_the_past)
    backup = tmp_path / "backup.json"
    assert bapp("export", "all", "-o", str(backup)).exit_code == 0
    document = json.loads(backup.read_text())
    assert len(document["badges"]) == 3
    document["badges"].append(document["badges"][0] | {"id": None, "revoked_at": "2024-06-01T00:00:00Z"})
    backup.write_text(json.dumps(document, indent=1))
    for merge in (False, True):
        target = Bapp(second_database_url, tmp_path / f"target-{merge}")
        if merge:  # a second run on the same database: its restore was refused, so it is still empty; now with data
            assert target("clients", "add", "someone@example.com").exit_code == 0
        result = target("import", "all", str(backup), "--json")
        assert result.exit_code == 6, result.stderr
        assert "key: this badge appears earlier in the file" in result.stderr, result.stderr
        assert target("badges", "list", EMAIL, "--json").exit_code == 7  # nothing written: no such client


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)  # the backup's source; the merge runs on both
def test_a_merge_counts_and_warns_of_the_badges_it_kept_as_held_against_the_backups_revocation(
    bapp: Bapp, tmp_path: Path, second_database_url: str
) -> None:
    # a badge held here valid and revoked in the backup (or the reverse) was counted `unchanged` with every other
    # badge held: nothing told the operator that the backup disagreed, and that `badges revoke` is theirs to run
    seed(bapp, awarded_in_the_past)
    issuer_init(bapp)
    assert bapp("badges", "revoke", EMAIL, "tier:play:1", "--reason", "in error").exit_code == 0
    backup = tmp_path / "backup.json"
    assert bapp("export", "all", "-o", str(backup)).exit_code == 0
    merged = Bapp(second_database_url, bapp.home)
    seed(merged, awarded_in_the_past)  # the same three badges, valid here, and fundamentals revoked here
    assert merged("badges", "revoke", EMAIL, "fundamentals", "--reason", "here").exit_code == 0
    result = merged("import", "all", str(backup), "--json")
    assert result.exit_code == 0, result.stderr
    badges = result.json()["kinds"]["badges"]
    assert (badges["unchanged"], badges["conflicts_kept"]) == (3, 2), badges
    assert result.stderr.count("Warning: ") == 1 and "2 badge(s) held here kept" in result.stderr, result.stderr
    states = {row["key"]: row["revoked_at"] is not None for row in merged("badges", "list", EMAIL, "--json").json()}
    assert states == {"tier:accelerate:1": False, "tier:play:1": False, "fundamentals": True}  # as held here
    again = merged("import", "all", str(backup))  # text output: the warning names the count and the command
    assert again.exit_code == 0 and "`bapp badges revoke`" in again.stderr, again.stderr


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)  # SQLite's writers wait for the import
def test_skills_complete_during_a_merge_waits_for_it_and_finds_the_backups_badge(bapp: Bapp, tmp_path: Path) -> None:
    # `import all` took every badge above the highest id at its start for one its own sections awarded; on
    # PostgreSQL `skills complete` waited for no import, so a badge it awarded meanwhile was given the backup's
    # award and revocation: earned today, it arrived revoked, dated as the backup's other issue of it. Since an
    # import of `all` holds the skills table (db.locks.lock_for_import), `skills complete` waits for the merge
    # instead: what both leave is what they leave one after the other (the backup's badge, revoked, is there
    # first; completing the tier does not undo a revocation)
    def history(session: Session) -> None:
        small_catalogue(session)
        client(session, EMAIL, "accelerate")
        client(session, "dora@example.com", "accelerate")
        for slug in ("a1", "a2"):
            complete_skill(session, EMAIL, slug, now=AWARDED)
        complete_skill(session, "dora@example.com", "a4", now=AWARDED)

    seed(bapp, history)
    backup = tmp_path / "backup.json"
    assert bapp("export", "all", "-o", str(backup)).exit_code == 0
    document = json.loads(backup.read_text())
    revoked = {"revoked_at": "2024-02-01T00:00:00Z", "revocation_reason": "the backup's"}
    document["badges"] = [
        {"client": EMAIL, "key": "tier:accelerate:1", "awarded_at": "2024-01-01T00:00:00Z", **revoked}
    ]
    for row in document["progress"]:  # the one row the merge changes, where it is held up
        row["notes"] = "from the backup" if row["client"] == "dora@example.com" else row["notes"]
    backup.write_text(json.dumps(document))
    engine = make_engine(bapp.database_url)
    try:
        with engine.connect() as holder:
            holder.execute(text("SELECT 1 FROM user_skill_progress FOR UPDATE"))  # the merge's update waits
            merging = bapp.popen("import", "all", str(backup), "--json")
            eventually(lambda: waits_for_lock(engine, "%user_skill_progress%"), "the merge to wait for its update")
            completing = bapp.popen("skills", "complete", EMAIL, "a3", "--json")  # the third of tier 1: its badge
            eventually(lambda: waits_for_lock(engine, "%skills%"), "`skills complete` to wait for the merge")
            holder.rollback()
            merged, problems = merging.communicate(timeout=120)
            completed, said = completing.communicate(timeout=120)
        assert merging.returncode == 0, problems
        assert completing.returncode == 0, said
        assert json.loads(completed)["badges_awarded"] == []
    finally:
        engine.dispose()
    (badge,) = bapp("badges", "list", EMAIL, "--json").json()
    assert (badge["awarded_at"], badge["revoked_at"]) == ("2024-01-01T00:00:00Z", "2024-02-01T00:00:00Z"), badge
    badges = json.loads(merged)["kinds"]["badges"]
    assert (badges["created"], badges["updated"], badges["conflicts_kept"]) == (1, 0, 0), badges


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)  # no database is read
def test_issuer_init_never_swaps_the_configured_key_for_a_new_one(bapp: Bapp, tmp_path: Path) -> None:
    # a second init with another --key-file made a new key and pointed badges.key_file at it: every credential
    # signed with the first key stopped verifying ("the signature does not match"), though an existing key is
    # never to be replaced. Refused (exit 8) while the configured key is there; with it unset, a new key is made.
    first = issuer_init(bapp)
    config_before = (bapp.home / "config.toml").read_text()
    other = tmp_path / "other.pem"
    init = ("badges", "issuer", "init", "--name", "X", "--url", "https://x.example", "--json")
    again = bapp(*init, "--key-file", str(other))
    assert again.exit_code == 8, again.stderr
    assert f"the issuer already signs with the key in {first['key_file']}" in again.stderr
    assert not other.exists() and (bapp.home / "config.toml").read_text() == config_before
    assert bapp("badges", "issuer", "show").json()["verificationMethod"][0]["id"] == first["key_id"]
    # nor through BAPP_BADGES_KEY_FILE naming a new file: init made that key and recorded it over the config file's
    env_named = bapp(*init, env={"BAPP_BADGES_KEY_FILE": str(other)})
    assert env_named.exit_code == 8, env_named.stderr
    assert f"the issuer already signs with the key in {first['key_file']}" in env_named.stderr
    assert not other.exists() and (bapp.home / "config.toml").read_text() == config_before
    assert bapp("config", "unset", "badges.key_file").exit_code == 0
    made = bapp(*init, "--key-file", str(other))
    assert made.exit_code == 0, made.stderr
    assert made.json()["key_file"] == str(other) and made.json()["key_id"] != first["key_id"]


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)  # no database is read
def test_two_issuer_inits_at_once_with_other_key_files_leave_one_key(bapp: Bapp, tmp_path: Path) -> None:
    """Two `badges issuer init` at once, each with its own --key-file: each found no key in the config file, made its
    own and wrote the config in its turn on the file (its folder's flock), and both said exit 0, the config keeping
    the last one's key: the first's key, whose id it had printed, signed nothing. The one whose turn comes second now
    checks the file as it then stands and is refused as a later init is (exit 8), its new key removed. The test holds
    the turn while the second starts, and once it waits there writes what the first init writes in its turn."""
    import fcntl

    from bapp_cli.services.signing_key import create_key_file
    from tests.cli.test_config import _waits_for_a_lock

    config_path, first, second = bapp.home / "config.toml", tmp_path / "first.pem", tmp_path / "second.pem"
    folder = os.open(config_path.parent, os.O_RDONLY)
    try:
        fcntl.flock(folder, fcntl.LOCK_EX)  # the first init in its turn
        init = bapp.popen(
            "badges", "issuer", "init", "--name", "X", "--url", "https://x.example", "--key-file", str(second)
        )
        eventually(lambda: init.poll() is not None or _waits_for_a_lock(init.pid, os.fstat(folder).st_ino), "its turn")
        create_key_file(first)
        written = config_path.read_text() if config_path.exists() else ""
        config_path.write_text(
            f'{written}\n[badges]\nissuer_name = "F"\nissuer_url = "https://f.example"\nkey_file = "{first}"\n'
        )
        config_before = config_path.read_text()
    finally:
        os.close(folder)  # the first's turn ends
    _, stderr = init.communicate(timeout=60)
    assert init.returncode == 8 and f"the issuer already signs with the key in {first}" in stderr, stderr
    assert not second.exists() and config_path.read_text() == config_before


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)  # no database is read
def test_issuer_init_makes_the_key_the_environment_names(
    bapp: Bapp, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # with BAPP_BADGES_KEY_FILE set (it overrides badges.key_file), init made its key beside the config file and
    # printed that key's id, but every later command signed with the environment's key: the key id init printed
    # (and told to publish) was of a key never used. Init now makes the key the environment names, and refuses
    # (exit 4) a --key-file the environment would override.
    named = tmp_path / "keys" / "env.pem"
    env: dict[str, str | None] = {"BAPP_BADGES_KEY_FILE": str(named)}
    elsewhere = tmp_path / "elsewhere.pem"
    init = ("badges", "issuer", "init", "--name", "X", "--url", "https://x.example", "--json")
    refused = bapp(*init, "--key-file", str(elsewhere), env=env)
    assert refused.exit_code == 4 and "BAPP_BADGES_KEY_FILE" in refused.stderr and not elsewhere.exists()
    # one that names no file (blank) is refused as every other command refuses it, and no key is made
    monkeypatch.chdir(tmp_path)  # where a relative (blank) key file name would be made
    blank = bapp(*init, env={"BAPP_BADGES_KEY_FILE": "  "})
    assert (
        blank.exit_code == 4
        and "environment variable BAPP_BADGES_KEY_FILE, key badges.key_file: is empty" in blank.stderr
    )
    assert not (bapp.home / "config.toml").exists() and not (tmp_path / "  ").exists()
    made = bapp(*init, env=env)
    assert made.exit_code == 0, made.stderr
    assert made.json()["key_file"] == str(named) and stat.S_IMODE(named.stat().st_mode) == 0o600
    shown = bapp("badges", "issuer", "show", env=env).json()
    assert shown["verificationMethod"][0]["id"] == made.json()["key_id"]
    assert tomllib.loads((bapp.home / "config.toml").read_text())["badges"]["key_file"] == str(named)


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)  # no database is read
def test_issuer_init_takes_the_key_file_in_use_named_another_way_for_that_file(bapp: Bapp, tmp_path: Path) -> None:
    # init compared the key file in use and --key-file as written: BAPP_BADGES_KEY_FILE naming keys/../env.pem, or a
    # symlinked directory, and --key-file the very same file were refused (exit 4) as "names the key file X, not Y".
    # By real path they are one file: init makes the key there. A NUL in the config file's value names no file.
    (keys := tmp_path / "keys").mkdir()
    (tmp_path / "link").symlink_to(keys)
    init = ("badges", "issuer", "init", "--name", "X", "--url", "https://x.example", "--json")
    for named, given in (
        (keys / ".." / "keys" / "a.pem", keys / "a.pem"),
        (tmp_path / "link" / "b.pem", keys / "b.pem"),
    ):
        env: dict[str, str | None] = {"BAPP_BADGES_KEY_FILE": str(named)}
        made = bapp(*init, "--key-file", str(given), env=env)
        assert made.exit_code == 0, (named, made.stderr)
        assert made.json()["key_file"] == str(given) and given.is_file()
        shown = bapp("badges", "issuer", "show", env=env).json()
        assert shown["verificationMethod"][0]["id"] == made.json()["key_id"]
        assert bapp("config", "unset", "badges.key_file").exit_code == 0  # to start over with the next key
    (bapp.home / "config.toml").write_text('[badges]\nkey_file = "k\\u0000.pem"\n')
    unnamed = bapp(*init, "--key-file", str(tmp_path / "c.pem"))
    assert unnamed.exit_code == 0 and (tmp_path / "c.pem").is_file(), unnamed.stderr


def test_verify_refuses_export_json_whose_credential_is_not_the_one_its_jwt_signs(bapp: Bapp, tmp_path: Path) -> None:
    # verify read only each item's jwt: an export --format json whose credential (what a reader of the file sees)
    # was edited — another achievement name, another validFrom — verified as valid, exit 0, file and all. The
    # same for a status list's {credential, jwt}.
    seed(bapp, awarded_in_the_past)
    issuer_init(bapp)
    exported = bapp("badges", "export", EMAIL, "--format", "json").json()
    exported[-1]["credential"]["credentialSubject"]["achievement"]["name"] = "Grand Master"
    tampered = tmp_path / "tampered.json"
    tampered.write_text(json.dumps(exported))
    result = bapp("badges", "verify", str(tampered), "--against-db")
    assert result.exit_code == 6, result.stderr
    assert f"{tampered}: item {len(exported)}: its credential is not the one its jwt signs" in result.stderr
    listing = bapp("badges", "status-list", "--format", "json").json()
    listing["credential"]["credentialSubject"]["encodedList"] = (
        "uH4sIAAAAAAAC_-3BAQ0AAADCoPdPbQ43oAAAAAAAAAAAAAAAAAAAAAA"
    )
    forged = tmp_path / "revocations.json"
    forged.write_text(json.dumps(listing))
    untouched = bapp("badges", "export", EMAIL, "--format", "json")
    (tmp_path / "good.json").write_text(untouched.stdout)
    checked = bapp("badges", "verify", str(tmp_path / "good.json"), "--status-list", str(forged))
    assert checked.exit_code == 6 and f"{forged}: item 1: its credential is not the one its jwt signs" in checked.stderr
    assert bapp("badges", "verify", str(tmp_path / "good.json"), "--against-db").exit_code == 0


def test_verify_refuses_export_json_whose_badge_is_not_the_one_its_jwt_signs(bapp: Bapp, tmp_path: Path) -> None:
    # each item of export --format json is {badge, credential, jwt}: an edited credential was refused (exit 6), but an
    # edited badge key, which a reader or a script (`jq '.[].badge'`) takes for what was awarded, verified, exit 0.
    # It must be the key the signed achievement id names (…/achievements/tier/x/1 for tier:x:1); bapp's own export
    # verifies, whole, a badge of it alone, from stdin, and with its status list's JSON (a name beyond ASCII, images).
    seed(bapp, awarded_in_the_past)
    images = ("--image-base-url", "https://cdn.example/badges/")
    made = bapp("badges", "issuer", "init", "--name", "Bâtir ✓ 東京", "--url", "https://b.example", *images)
    assert made.exit_code == 0, made.stderr
    exported = bapp("badges", "export", EMAIL, "--format", "json").json()
    assert len({item["badge"] for item in exported}) > 1, exported
    exported[0]["badge"] = exported[-1]["badge"]
    tampered = tmp_path / "tampered.json"
    tampered.write_text(json.dumps(exported))
    result = bapp("badges", "verify", str(tampered), "--against-db")
    assert result.exit_code == 6, result.stderr
    assert f"{tampered}: item 1: its badge is not the one its jwt signs" in result.stderr
    whole = bapp("badges", "export", EMAIL, "--format", "json").stdout
    one = bapp("badges", "export", EMAIL, "--format", "json", "--badge", exported[-1]["badge"]).stdout
    (listing := tmp_path / "revocations.json").write_text(bapp("badges", "status-list", "--format", "json").stdout)
    for exported_text in (whole, one):
        assert bapp("badges", "verify", "-", "--against-db", stdin=exported_text).exit_code == 0, exported_text
        assert bapp("badges", "verify", "-", "--status-list", str(listing), stdin=exported_text).exit_code == 0


@pytest.mark.parametrize("stand_in", [1, 1.0])
def test_verify_refuses_export_json_whose_credential_equals_the_signed_one_only_in_python(
    bapp: Bapp, tmp_path: Path, stand_in: float
) -> None:
    # the credential was compared with its jwt's vc by Python's ==, for which true == 1 == 1.0: an identifier's
    # `"hashed": true` edited to 1 (which a JSON reader elsewhere takes for no boolean, no hashed e-mail) verified,
    # exit 0. The very same JSON values it must be; key order and spacing are no part of them (`jq -S` keeps it).
    seed(bapp, awarded_in_the_past)
    issuer_init(bapp)
    exported = bapp("badges", "export", EMAIL, "--format", "json").json()
    exported[0]["credential"]["credentialSubject"]["identifier"][0]["hashed"] = stand_in
    tampered = tmp_path / "tampered.json"
    tampered.write_text(json.dumps(exported))
    result = bapp("badges", "verify", str(tampered), "--against-db")
    assert result.exit_code == 6, result.stderr
    assert f"{tampered}: item 1: its credential is not the one its jwt signs" in result.stderr
    exported[0]["credential"]["credentialSubject"]["identifier"][0]["hashed"] = True
    reordered = json.dumps(exported, sort_keys=True, indent=1)
    assert bapp("badges", "verify", "-", "--against-db", stdin=reordered).exit_code == 0


def test_verify_takes_bapps_own_export_of_a_badge_whose_key_holds_a_slash_or_the_achievements_path(
    bapp: Bapp, tmp_path: Path, second_database_url: str
) -> None:
    # the badge of an export item was checked against the key read back from the signed achievement id (/ for :,
    # after the last /badges/achievements/): a restored badge `legacy/2023 cohort` (…/achievements/legacy/2023
    # cohort, read back as legacy:2023 cohort) or `tier:badges:achievements:1` (read back as 1) made bapp's own
    # export fail its verify, exit 6 "its badge is not the one its jwt signs". The badge's id as export writes it,
    # under the signed issuer, is compared instead; another badge is still refused.
    seed(bapp, awarded_in_the_past)
    backup = tmp_path / "backup.json"
    assert bapp("export", "all", "-o", str(backup)).exit_code == 0
    document = json.loads(backup.read_text())
    keys = ["legacy/2023 cohort", "tier:badges:achievements:1"]
    for row, key in zip(document["badges"], keys, strict=False):
        row["key"] = key
    backup.write_text(json.dumps(document))
    restored = Bapp(second_database_url, tmp_path / "restored")
    assert restored("import", "all", str(backup)).exit_code == 0
    issuer_init(restored)
    exported = restored("badges", "export", EMAIL, "--format", "json")
    assert exported.exit_code == 0 and set(keys) <= {item["badge"] for item in exported.json()}, exported.stderr
    checked = restored("badges", "verify", "-", stdin=exported.stdout)
    assert checked.exit_code == 0, checked.stderr
    checked = restored("badges", "verify", "-", "--against-db", "--json", stdin=exported.stdout)
    assert checked.exit_code == 0, checked.stdout
    for key in keys:
        one = restored("badges", "export", EMAIL, "--format", "json", "--badge", key).json()
        one[0]["badge"] = "1" if key.endswith(":1") else "legacy/2024 cohort"  # the first, what the old check read
        relabelled = restored("badges", "verify", "-", stdin=json.dumps(one))
        assert relabelled.exit_code == 6 and "item 1: its badge is not the one its jwt signs" in relabelled.stderr
