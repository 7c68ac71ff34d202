"""Names in any Unicode spelling are stored, searched and measured alike.

`Crème Brûlée` typed with combining accents (NFD: `e` + U+0300, as macOS file names and some keyboards give it)
was stored so: `--search brûlée` typed in NFC (as the web and Calendly send it) did not find it, an export held two
spellings of one name, and a name at its length limit in NFC was refused in NFD (more code points). Every door
now stores names and titles in NFC (services.plain_text.nfc), a search term is read in NFC, and migration
0019 rewrites the names an earlier bapp stored in NFD. Runs on SQLite and PostgreSQL.
"""

from __future__ import annotations

import json
import unicodedata
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import REPO, Bapp, restore_backup

NAME = "Crème Brûlée Café"
TYPED = unicodedata.normalize("NFD", NAME)  # 20 code points where NAME has 17
SOUGHT = "brûlée"  # what a search types, in NFC (lowercase: SQLite folds ASCII letters alone)
assert TYPED != NAME and unicodedata.normalize("NFC", TYPED) == NAME


def _texts(document: Any) -> list[str]:
    if isinstance(document, dict):
        return [text for value in document.values() for text in _texts(value)]
    if isinstance(document, list):
        return [text for value in document for text in _texts(value)]
    return [document] if isinstance(document, str) else []


def _spellings(bapp: Bapp) -> set[str]:
    """The texts of `export all` that hold the name, in whichever spelling."""
    exported = bapp("export", "all", "--format", "json")
    assert exported.exit_code == 0, exported.stderr
    return {text for text in _texts(json.loads(exported.stdout)) if "Cr" in text and "me Br" in text}


# each door that takes a name, and the listing whose --search looks in it (None: no listing searches it)
DOORS = [
    (("clients", "add", "c1@example.com", "--name", TYPED), "clients"),
    (("clients", "add", "c2@example.com", "--company", TYPED), "clients"),
    (("clients", "add", "c3@example.com", "--industry", TYPED), "clients"),
    (("builders", "add", "b1@example.com", "--name", TYPED), "builders"),
    (("pathways", "add", "cafe", "--name", TYPED), "pathways"),
    (("pathways", "update", "play", "--name", TYPED), "pathways"),
    (("pathways", "add", "cafe", "--name", "Cafe", "--tier", f"{TYPED}: the first"), None),
    (("pathways", "set-tier", "play", "1", "--name", TYPED), None),
    (("skills", "add", "brulee", "--name", TYPED), "skills"),
    (("skills", "add", "brulee", "--name", "Brulee", "--domain", TYPED), "skills"),
    (("sessions", "add", "--duration", "30", "--title", TYPED), "sessions"),
]


@pytest.mark.parametrize("door", DOORS, ids=lambda door: "-".join(door[0][:2]) + door[0][-2])
def test_a_name_typed_in_nfd_is_stored_in_nfc_and_found_by_either_spelling(
    bapp: Bapp, door: tuple[tuple[str, ...], str | None]
) -> None:
    command, listing = door
    result = bapp(*command)
    assert result.exit_code == 0, result.stderr
    assert _spellings(bapp) == {NAME}
    if listing is not None:
        for term in (SOUGHT, unicodedata.normalize("NFD", SOUGHT)):
            found = bapp(listing, "list", "--search", term, "--json")
            assert found.exit_code == 0, found.stderr
            assert len(found.json()) == 1, (term, found.stdout)


BOOKING = ("bookings", "create", "--client", "new@client.example", "--session", "getting-started-free-intro")
ANSWERS = ("--answer", "What brings you to BuildAppsWith?=Agents", "--answer", "Which best describes you?=Founder")


def test_a_booking_names_its_new_client_in_nfc(catalogue: Bapp) -> None:
    result = catalogue(*BOOKING, *ANSWERS, "--start", "2031-01-06T10:00Z", "--name", TYPED)
    assert result.exit_code == 0, result.stderr
    assert _spellings(catalogue) == {NAME}
    assert [row["email"] for row in catalogue("clients", "list", "--search", SOUGHT, "--json").json()] == [
        "new@client.example"
    ]


def test_calendly_titles_and_invitee_names_are_stored_in_nfc(bapp: Bapp, tmp_path: Path) -> None:
    types = json.loads((REPO / "examples/calendly/event_types.json").read_text())
    types[0]["collection"][0]["name"] = TYPED
    events = json.loads((REPO / "examples/calendly/scheduled_events.json").read_text())
    events["collection"] = events["collection"][:1]  # of a type the listing holds
    events["collection"][0]["invitees"][0]["name"] = TYPED
    for name, document in (("types.json", types), ("events.json", events)):
        (tmp_path / name).write_text(json.dumps(document))
    assert bapp("calendly", "sync", "--from-file", str(tmp_path / "types.json")).exit_code == 0
    pulled = bapp("calendly", "pull-bookings", "--from-file", str(tmp_path / "events.json"))
    assert pulled.exit_code == 0, pulled.stderr
    assert _spellings(bapp) == {NAME}
    assert len(bapp("sessions", "list", "--search", SOUGHT, "--json").json()) == 1
    assert len(bapp("clients", "list", "--search", SOUGHT, "--json").json()) == 1


def _nfd(document: Any) -> Any:
    if isinstance(document, dict):
        return {key: _nfd(value) for key, value in document.items()}
    if isinstance(document, list):
        return [_nfd(value) for value in document]
    return unicodedata.normalize("NFD", document) if isinstance(document, str) else document


def _with_the_name_everywhere(catalogue: Bapp) -> None:
    """The name (in NFC) in every column that holds a name or title."""
    for command in (
        ("clients", "add", "c1@example.com", "--name", NAME, "--company", NAME, "--industry", NAME),
        ("builders", "add", "b1@example.com", "--name", NAME),
        ("pathways", "add", "cafe", "--name", NAME, "--tier", f"{NAME}: the first"),
        ("skills", "add", "brulee", "--name", NAME, "--domain", NAME, "--link", "cafe:1"),
        ("sessions", "add", "--duration", "30", "--title", NAME),
        (*BOOKING, *ANSWERS, "--start", "2031-01-06T10:00Z", "--name", NAME),
    ):
        assert catalogue(*command).exit_code == 0, command


def test_export_all_then_restore_keeps_names_in_nfc_exactly(
    catalogue: Bapp, tmp_path: Path, second_database_url: str
) -> None:
    _with_the_name_everywhere(catalogue)
    exported = catalogue("export", "all", "--format", "json").stdout
    restored, _ = restore_backup(catalogue, second_database_url, tmp_path)
    assert restored("export", "all", "--format", "json").stdout == exported


def test_every_import_stores_the_names_of_a_file_written_in_nfd_in_nfc(
    catalogue: Bapp, tmp_path: Path, second_database_url: str
) -> None:
    _with_the_name_everywhere(catalogue)
    backup = tmp_path / "backup.json"
    assert catalogue("export", "all", "-o", str(backup)).exit_code == 0
    # every text of the backup written in NFD: clients, builders, pathways and tiers, skills, sessions, bookings
    backup.write_text(json.dumps(_nfd(json.loads(backup.read_text(encoding="utf-8")))), encoding="utf-8")
    restored = Bapp(second_database_url, tmp_path / "restored")
    result = restored("import", "all", str(backup))
    assert result.exit_code == 0, result.stderr
    assert _spellings(restored) == {NAME}


# -- limits count the characters read -------------------------------------------------------------------------
# "é" typed as e + U+0301: at each limit in NFC, twice it in code points (refused, as too long, before)
def _at(limit: int) -> str:
    return unicodedata.normalize("NFD", "é" * limit)


LIMITED = [
    ("clients", "add", "c1@example.com", "--name", _at(200)),
    ("clients", "add", "c2@example.com", "--company", _at(200)),
    ("builders", "add", "b1@example.com", "--name", _at(200)),
    ("pathways", "add", "cafe", "--name", _at(100)),
    ("pathways", "set-tier", "play", "1", "--name", _at(100)),
    ("skills", "add", "brulee", "--name", _at(200)),
    ("skills", "add", "brulee", "--name", "Brulee", "--domain", _at(100)),
    ("sessions", "add", "--duration", "30", "--title", _at(300)),
]


@pytest.mark.parametrize("command", LIMITED, ids=lambda command: "-".join(command[:2]) + command[-2])
def test_a_name_at_its_limit_is_taken_in_either_spelling_and_one_more_is_refused(
    bapp: Bapp, command: tuple[str, ...]
) -> None:
    taken = bapp(*command)
    assert taken.exit_code == 0, taken.stderr
    assert unicodedata.normalize("NFC", command[-1]) in _texts(
        json.loads(bapp("export", "all", "--format", "json").stdout)
    )
    longer = bapp(*command[:-1], command[-1] + "e\u0301")
    assert longer.exit_code in (6, 8), longer.stderr  # 8: the pathway and skill are there now; 6 first
    if longer.exit_code == 6:
        assert command[-2].removeprefix("--") in longer.stderr


def test_a_booking_s_new_client_named_at_the_limit_in_nfd_is_taken(catalogue: Bapp) -> None:
    result = catalogue(*BOOKING, *ANSWERS, "--start", "2031-01-06T10:00Z", "--name", _at(200))
    assert result.exit_code == 0, result.stderr
    assert catalogue("clients", "show", "new@client.example", "--json").json()["name"] == "é" * 200


def test_a_bookings_import_names_a_new_client_in_nfc_and_counts_the_characters_read(
    catalogue: Bapp, tmp_path: Path
) -> None:
    rows = tmp_path / "bookings.csv"
    header = "client,client_name,session,start_time,status\n"
    for email, name, day in (("one@client.example", _at(200), "06"), ("two@client.example", TYPED, "07")):
        rows.write_text(header + f"{email},{name},free-discovery-call,2030-09-{day}T10:00,completed\n", "utf-8")
        result = catalogue("import", "bookings", str(rows))
        assert result.exit_code == 0, result.stdout + result.stderr
    assert catalogue("clients", "show", "one@client.example", "--json").json()["name"] == "é" * 200
    assert [row["email"] for row in catalogue("clients", "list", "--search", SOUGHT, "--json").json()] == [
        "two@client.example"
    ]
    rows.write_text(header + f"three@client.example,{_at(201)},free-discovery-call,2030-09-08T10:00,completed\n")
    refused = catalogue("import", "bookings", str(rows))
    assert refused.exit_code == 6 and "client_name" in refused.stdout + refused.stderr, refused.stderr


def test_a_search_term_is_read_in_nfc_and_its_limit_counts_the_characters_read(bapp: Bapp) -> None:
    assert bapp("clients", "add", "c1@example.com", "--name", "é" * 200).exit_code == 0
    found = bapp("clients", "list", "--search", _at(200), "--json")
    assert found.exit_code == 0, found.stderr
    assert [row["email"] for row in found.json()] == ["c1@example.com"]
    refused = bapp("clients", "list", "--search", _at(201))
    assert refused.exit_code == 2 and "'--search' / '-s': 201 characters; at most 200" in refused.stderr, refused.stderr


# -- names an earlier bapp stored in NFD ----------------------------------------------------------------------
def test_0019_rewrites_the_names_an_earlier_bapp_stored_in_nfd_in_nfc(catalogue: Bapp) -> None:
    from sqlalchemy import text

    from bapp_cli.db.engine import make_engine

    _with_the_name_everywhere(catalogue)
    assert catalogue("pathways", "add", "tibetan", "--name", "Tibetan").exit_code == 0
    before = json.loads(catalogue("export", "all", "--format", "json").stdout)
    columns = {
        "users": ("name",),
        "client_profiles": ("company", "industry"),
        "builder_profiles": ("display_name",),
        "pathways": ("name",),
        "pathway_tiers": ("name",),
        "skills": ("name", "domain"),
        "session_types": ("title",),
    }
    # U+0F73 is one of the few characters NFC writes as two: 100 of them fill a pathway name, NFC would overflow it
    overflowing = "\u0f73" * 100
    # back to 0018 through the real chain (the later revisions' schema undone), then the names as it stored them
    assert catalogue("db", "downgrade", "0018_checks_without_in_lists", "--yes").exit_code == 0
    engine = make_engine(catalogue.database_url)
    try:
        with engine.begin() as connection:  # as an earlier bapp stored them: in NFD, at revision 0018
            written = [
                connection.execute(
                    text(f"UPDATE {table} SET {column} = :typed WHERE {column} = :name"), {"typed": TYPED, "name": NAME}
                ).rowcount
                for table, names in columns.items()
                for column in names
            ]
            assert written == [3, 1, 1, 1, 1, 1, 1, 1, 1]  # two clients' and a builder's accounts, then one each
            connection.execute(text("UPDATE pathways SET name = :name WHERE slug = 'tibetan'"), {"name": overflowing})
    finally:
        engine.dispose()
    upgraded = catalogue("db", "upgrade")
    assert upgraded.exit_code == 0, upgraded.stderr
    after = json.loads(catalogue("export", "all", "--format", "json").stdout)
    tibetan = next(item for item in after["pathways"] if item["slug"] == "tibetan")
    assert tibetan["name"] == overflowing  # kept as it was: PostgreSQL would refuse it longer than the column
    tibetan["name"] = "Tibetan"
    assert after == before  # every name as the commands store it; updated_at too, the names being the same
    assert len(catalogue("pathways", "list", "--search", SOUGHT, "--json").json()) == 1


def test_a_builders_file_written_in_nfd_keeps_a_builder_following_the_account_s_name(
    bapp: Bapp, tmp_path: Path
) -> None:
    # `export builders` shows the account's name for a builder without one of their own; the file saved again in
    # NFD (macOS) gave it back as a name of their own: "updated", and the builder no longer followed the account
    assert bapp("clients", "add", "b1@example.com", "--name", NAME).exit_code == 0
    assert bapp("builders", "add", "b1@example.com").exit_code == 0
    builders = tmp_path / "builders.csv"
    assert bapp("export", "builders", "--format", "csv", "-o", str(builders)).exit_code == 0
    builders.write_text(unicodedata.normalize("NFD", builders.read_text(encoding="utf-8")), encoding="utf-8")
    before = bapp("export", "all", "--format", "json").stdout
    imported = bapp("import", "builders", str(builders), "--json")
    assert imported.exit_code == 0, imported.stderr
    assert (imported.json()["updated"], imported.json()["unchanged"]) == (0, 1), imported.stdout
    assert bapp("export", "all", "--format", "json").stdout == before  # own_name still false
