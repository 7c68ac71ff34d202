"""`bapp sessions list|show|add|update`: the admin view and the curated fields, on both backends."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from bapp_cli.db.engine import make_engine
from bapp_cli.db.models import AuditEntry, BuilderProfile, Pathway, SessionType, User
from bapp_cli.services.session_types import SESSION_COLUMNS
from tests.cli.calendly_fixtures import snapshot
from tests.conftest import Bapp
from tests.fakes.calendly_server import API_ORIGIN, DEFAULT_USER_URI, make_event_type


def _db(bapp: Bapp) -> Session:
    return Session(make_engine(bapp.database_url))


def _add_builder(bapp: Bapp, email: str = "ada@example.com", calendly: str | None = None) -> None:
    with _db(bapp) as session:
        user = User(email=email, name="Ada")
        session.add(user)
        session.flush()
        session.add(BuilderProfile(user_id=user.id, calendly_user_uri=calendly))
        session.commit()


def _audits(bapp: Bapp) -> int:
    with _db(bapp) as session:
        return int(
            session.scalar(select(func.count()).select_from(AuditEntry).where(AuditEntry.entity == "session_type")) or 0
        )


def _add(bapp: Bapp, *args: str) -> dict[str, Any]:
    result = bapp("sessions", "add", *args, "--json")
    assert result.exit_code == 0, result.stderr
    assert result.stderr == ""
    record = result.json()
    assert list(record) == list(SESSION_COLUMNS)
    return record


def _synced_catalogue(bapp: Bapp, tmp_path: Path, count: int = 8) -> None:
    listing = tmp_path / "listing.json"
    listing.write_text(json.dumps([make_event_type(i) for i in range(count)]))
    assert bapp("calendly", "sync", "--from-file", str(listing)).exit_code == 0


def test_add_a_local_session_with_defaults(bapp: Bapp) -> None:
    record = _add(bapp, "--title", "Agent Build Sprint", "--duration", "90")
    assert record | {"id": 0} == {
        "id": 0,
        "slug": "agent-build-sprint",
        "title": "Agent Build Sprint",
        "description": None,
        "category": "specialized",
        "requires_auth": True,
        "bookable": True,
        "enabled": True,
        "is_secret": False,
        "duration_minutes": 90,
        "duration_options": None,
        "price": "0.00",
        "currency": "GBP",
        "display_order": 0,
        "pathways": [],
        "builder": None,
        "calendly_uri": None,
        "scheduling_url": None,
        "custom_questions": [],
    }
    assert _audits(bapp) == 1
    shown = bapp("sessions", "show", "agent-build-sprint", "--json")
    assert shown.exit_code == 0 and shown.json() == record


def test_add_with_every_option(bapp: Bapp) -> None:
    _add_builder(bapp)
    record = _add(
        bapp,
        *("--title", "Accelerate Review", "--duration", "45", "--category", "pathway"),
        *("--pathway", "ACCELERATE", "--pathway", "pivot", "--price", "30", "--currency", "eur"),
        *("--builder", "Ada@Example.com", "--description", "Review your build", "--slug", "acc-review"),
        *("--display-order", "3", "--no-requires-auth"),
    )
    assert (record["slug"], record["category"], record["requires_auth"]) == ("acc-review", "pathway", False)
    assert (record["pathways"], record["price"], record["currency"]) == (["accelerate", "pivot"], "30.00", "EUR")
    assert (record["builder"], record["display_order"], record["description"]) == (
        "ada@example.com",
        3,
        "Review your build",
    )
    free = _add(bapp, "--title", "Office Hours", "--duration", "30", "--category", "free")
    assert free["requires_auth"] is False


def test_a_blank_description_is_none_and_a_description_is_trimmed(bapp: Bapp) -> None:
    """`sessions add --description ""` stored "" (JSON "", where a pathway's or a skill's blank description is null),
    and kept the blanks around one: the rule of every other description now holds (trimmed; blank is none)."""
    for given, stored in (("", None), ("   ", None), ("  Review your build  ", "Review your build")):
        record = _add(bapp, "--title", f"Sprint {len(given)}", "--duration", "30", "--description", given)
        assert record["description"] == stored, given
        assert bapp("sessions", "show", record["slug"], "--json").json()["description"] == stored


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        # a count the parser refuses on its own is a usage error naming the option (issue 15 #24) …
        (("--duration", "0"), 2, "Invalid value for '--duration': 0 is not in the range 1<=x"),
        # … a rule about the value is invalid input naming the field
        (("--duration", "1441"), 6, "duration: 1441 is not between 1 and 1440 minutes"),
        (
            ("--category", "premium"),
            2,
            "Invalid value for '--category': 'premium' is not one of free, pathway, special",
        ),
        # an empty one was taken as not given (specialized), where `sessions update --category ''` is refused
        (("--category", ""), 2, "Invalid value for '--category': '' is not one of free, pathway, specialized"),
        (("--category", "pathway"), 6, "pathway: a pathway session needs at least one --pathway"),
        (("--pathway", "growth"), 7, "no pathway 'growth'"),
        (("--price", "12.345"), 6, "price: '12.345' is not an amount (digits, and at most two decimals after a point)"),
        (("--price", "-1"), 6, "price: '-1' must be between"),
        (("--price", "ten"), 6, "price: 'ten' is not an amount"),
        # Decimal() read these as 1000, 100, 100 and 5: a script's typo became a price (ASCII digits and a point only)
        (("--price", "1_000"), 6, "price: '1_000' is not an amount (digits, and at most two decimals after a point)"),
        (("--price", "١٠٠"), 6, "price: '١٠٠' is not an amount"),
        (("--price", "1e2"), 6, "price: '1e2' is not an amount"),
        (("--price", "+5"), 6, "price: '+5' is not an amount"),
        (("--price", "-0.01"), 6, "price: '-0.01' must be between 0.00 and 99999999.99"),
        (("--currency", "pounds"), 6, "currency: 'pounds' is not a three-letter currency code"),
        (("--builder", "nobody@example.com"), 7, "no builder with e-mail 'nobody@example.com'"),
        (("--builder", "not-an-email"), 6, "builder: 'not-an-email' is not a valid e-mail address"),
        (("--slug", "Bad Slug!"), 6, "slug:"),
        (("--title", "   "), 6, "title: must not be empty"),
        (("--title", "t" * 301), 6, "title: 301 characters; at most 300"),
        # a title that gives no slug was refused as "slug: '' is not a valid session slug", a slug no one gave
        (("--title", "日本語セッション"), 6, "title: '日本語セッション' gives no slug (no a-z or 0-9)"),
    ],
)
def test_add_refuses_bad_input_and_writes_nothing(bapp: Bapp, args: tuple[str, ...], code: int, message: str) -> None:
    before = snapshot(bapp.database_url)
    base = {"--title": "Sprint", "--duration": "60"}
    for flag, value in zip(args[::2], args[1::2], strict=True):
        base[flag] = value
    result = bapp("sessions", "add", *(item for pair in base.items() for item in pair))
    assert result.exit_code == code, result.stderr
    assert result.stdout == ""
    assert message in next(line for line in result.stderr.splitlines() if line.startswith("Error: "))
    assert snapshot(bapp.database_url) == before


def test_add_refuses_an_archived_pathway_and_a_duplicate_slug(bapp: Bapp) -> None:
    with _db(bapp) as session:
        session.execute(update(Pathway).where(Pathway.slug == "play").values(archived=True))
        session.commit()
    archived = bapp("sessions", "add", "--title", "Lab", "--duration", "30", "--pathway", "play")
    assert archived.exit_code == 6 and "archived" in archived.stderr
    _add(bapp, "--title", "Office Hours", "--duration", "30")
    duplicate = bapp("sessions", "add", "--title", "Office hours", "--duration", "45")
    assert duplicate.exit_code == 8
    assert "slug 'office-hours' already exists" in duplicate.stderr and "--slug" in duplicate.stderr


def test_update_refuses_a_pathway_session_linked_only_to_archived_pathways(bapp: Bapp) -> None:
    # `add` refuses an archived pathway; `update --category pathway` took an archived link as the one it needs,
    # and made a pathway session every booking refused ("linked to no (active) pathway") and no client was offered
    _add(bapp, "--title", "Lab", "--duration", "30", "--pathway", "play")
    with _db(bapp) as session:
        session.execute(update(Pathway).where(Pathway.slug == "play").values(archived=True))
        session.commit()
    before = snapshot(bapp.database_url)
    refused = bapp("sessions", "update", "lab", "--category", "pathway")
    assert refused.exit_code == 6, refused.stderr
    assert "a pathway session needs at least one linked pathway that is not archived" in refused.stderr
    assert snapshot(bapp.database_url) == before
    moved = bapp("sessions", "update", "lab", "--category", "pathway", "--pathway", "pivot", "--json")
    assert moved.exit_code == 0, moved.stderr
    assert (moved.json()["category"], sorted(moved.json()["pathways"])) == ("pathway", ["pivot", "play"])
    assert bapp("sessions", "update", "lab", "--price", "5").exit_code == 0  # no link touched: nothing to say


def test_a_pathway_session_left_without_an_open_pathway_updates_and_imports_say_so_of_a_change_only(
    bapp: Bapp, tmp_path: Path
) -> None:
    # `pathways archive` may take a pathway session's last open pathway: the session keeps its other updates
    # (`--category pathway` given again was exit 6) and its export imports unchanged; `import sessions` making a
    # session linked to archived pathways alone a pathway session was exit 0, where `sessions update` refuses it
    _add(bapp, "--title", "Lab", "--duration", "30", "--category", "pathway", "--pathway", "play")
    _add(bapp, "--title", "Side", "--duration", "30", "--pathway", "play")
    assert bapp("pathways", "archive", "play", "--yes").exit_code == 0
    again = bapp("sessions", "update", "lab", "--category", "pathway", "--price", "5", "--json")
    assert again.exit_code == 0, again.stderr
    assert (again.json()["category"], again.json()["price"]) == ("pathway", "5.00")
    exported = tmp_path / "sessions.csv"
    assert bapp("export", "sessions", "-o", str(exported)).exit_code == 0
    reimported = bapp("import", "sessions", str(exported), "--json")
    assert reimported.exit_code == 0, reimported.stderr
    assert reimported.json()["unchanged"] == 2
    rows = tmp_path / "side.csv"
    rows.write_text("slug,category\nside,pathway\n")
    before = snapshot(bapp.database_url)
    refused = bapp("import", "sessions", str(rows))
    assert refused.exit_code == 6, refused.stderr
    assert "a pathway session needs at least one pathway that is not archived" in refused.stderr
    assert snapshot(bapp.database_url) == before
    rows.write_text('slug,category,pathways\nside,pathway,"[""play"",""pivot""]"\n')
    assert bapp("import", "sessions", str(rows)).exit_code == 0  # an open pathway with it: a pathway session


def test_add_dry_run_writes_nothing_and_gives_no_id(bapp: Bapp) -> None:
    """`sessions add --dry-run` printed the id its rolled-back insert drew: on PostgreSQL a sequence value the real
    run never gets (the sequence does not roll back: it draws the next), on SQLite the next id. A dry run gives no
    id (null, and — in a table) on both backends, as a dry sync gives no run_id."""
    before = snapshot(bapp.database_url)
    add = ("sessions", "add", "--title", "Sprint", "--duration", "60", "--dry-run")
    result = bapp(*add, "--json")
    assert result.exit_code == 0 and (result.json()["title"], result.json()["id"]) == ("Sprint", None)
    table = bapp("--verbose", *add, "--format", "table")
    assert re.search(r"^\s*id\s+—\s*$", table.stdout, re.MULTILINE), table.stdout
    assert "Would add session type sprint: Sprint (specialized)." in table.stderr
    assert snapshot(bapp.database_url) == before


def test_list_is_grouped_by_category_and_shows_only_bookable_by_default(bapp: Bapp, tmp_path: Path) -> None:
    _add_builder(bapp, calendly=DEFAULT_USER_URI)
    _synced_catalogue(bapp, tmp_path)
    _add(bapp, "--title", "Office Hours", "--duration", "30", "--category", "free", "--display-order", "-1")
    disabled = _add(bapp, "--title", "Retired", "--duration", "30")
    assert bapp("sessions", "update", str(disabled["id"]), "--disable").exit_code == 0
    result = bapp("sessions", "list", "--json")
    assert result.exit_code == 0 and result.stderr == ""
    listed = result.json()
    categories = [item["category"] for item in listed]
    assert categories == sorted(categories, key=["free", "pathway", "specialized"].index)
    assert listed[0]["title"] == "Office Hours"  # display order -1 leads the free group
    assert "Retired" not in {item["title"] for item in listed}
    assert all(item["bookable"] for item in listed)
    everything = bapp("sessions", "list", "--all", "--json").json()
    assert {item["title"] for item in everything} - {item["title"] for item in listed} == {"Retired"}
    pathway = bapp("sessions", "list", "--pathway", "Pivot", "--json").json()
    assert [item["title"] for item in pathway] == ["Pivot Career Assessment 2"]
    assert {item["category"] for item in bapp("sessions", "list", "--category", "free", "--json").json()} == {"free"}
    mine = bapp("sessions", "list", "--builder", "ada@example.com", "--json").json()
    assert len(mine) == 8 and {item["builder"] for item in mine} == {"ada@example.com"}
    tsv = bapp("sessions", "list")
    assert tsv.stdout.splitlines()[0].split("\t") == list(SESSION_COLUMNS)
    table = bapp("sessions", "list", "--format", "table")
    assert table.exit_code == 0
    positions = [table.stdout.index(title) for title in ("Free — no account needed", "Pathway sessions", "Specialized")]
    assert positions == sorted(positions)
    unknown = bapp("sessions", "list", "--builder", "nobody@example.com")
    assert unknown.exit_code == 7


def test_show_by_id_slug_or_uri_with_questions(bapp: Bapp, tmp_path: Path) -> None:
    _synced_catalogue(bapp, tmp_path, count=2)
    uri = f"{API_ORIGIN}/event_types/ET00000001"
    by_uri = bapp("sessions", "show", uri, "--json").json()
    assert by_uri["custom_questions"][2]["answer_choices"] == ["None", "Some", "Daily user"]
    assert bapp("sessions", "show", str(by_uri["id"]), "--json").json() == by_uri
    assert bapp("sessions", "show", by_uri["slug"].upper(), "--json").json() == by_uri
    table = bapp("sessions", "show", uri, "--format", "table")
    assert table.exit_code == 0 and "Custom questions" in table.stdout and "Daily user" in table.stdout
    missing = bapp("sessions", "show", "9999")
    assert missing.exit_code == 7 and "no session type with id 9999" in missing.stderr


def test_update_curated_fields(bapp: Bapp) -> None:
    created = _add(bapp, "--title", "Sprint", "--duration", "60", "--pathway", "play")
    ident = str(created["id"])
    result = bapp(
        "sessions",
        "update",
        ident,
        *("--price", "45.5", "--currency", "usd", "--display-order", "9", "--category", "free", "--json"),
    )
    assert result.exit_code == 0, result.stderr
    record = result.json()
    assert (record["price"], record["currency"], record["display_order"]) == ("45.50", "USD", 9)
    assert (record["category"], record["requires_auth"]) == ("free", False)  # the new category's default
    assert record["pathways"] == ["play"]
    relinked = bapp(
        "sessions", "update", ident, "--category", "pathway", "--clear-pathways", "--pathway", "pivot", "--json"
    )
    assert relinked.json()["pathways"] == ["pivot"] and relinked.json()["requires_auth"] is True
    added = bapp("sessions", "update", ident, "--pathway", "accelerate", "--requires-auth", "--json").json()
    assert added["pathways"] == ["accelerate", "pivot"]
    off = bapp("sessions", "update", ident, "--disable", "--json").json()
    assert (off["enabled"], off["bookable"]) == (False, False)
    assert bapp("sessions", "update", ident, "--enable", "--json").json()["bookable"] is True
    assert _audits(bapp) == 6  # one for the add, one per effective update


def test_update_without_changes_or_with_bad_values(bapp: Bapp) -> None:
    ident = str(_add(bapp, "--title", "Sprint", "--duration", "60", "--price", "10")["id"])
    nothing = bapp("sessions", "update", ident)
    assert nothing.exit_code == 2 and "nothing to update" in nothing.stderr
    same = bapp("sessions", "update", ident, "--price", "10.00", "--json")
    assert same.exit_code == 0 and same.json()["price"] == "10.00"
    assert _audits(bapp) == 1  # an update that changes nothing writes nothing
    # a negative zero (a script's f"{-0.0:.2f}") is zero, not a price out of range
    free = bapp("sessions", "update", ident, "--price", "-0.00", "--json")
    assert free.exit_code == 0 and free.json()["price"] == "0.00"
    assert bapp("sessions", "update", ident, "--price", "10", "--json").json()["price"] == "10.00"
    before = snapshot(bapp.database_url)
    for args, code in (
        (("--price", "1.001"), 6),
        (("--category", "pathway"), 6),
        (("--pathway", "nope"), 7),
        (("--currency", "1AB"), 6),
    ):
        result = bapp("sessions", "update", ident, *args)
        assert result.exit_code == code, (args, result.stderr)
    missing = bapp("sessions", "update", "no-such-session", "--price", "1")
    assert missing.exit_code == 7
    dry = bapp("sessions", "update", ident, "--price", "99", "--dry-run", "--json")
    assert dry.exit_code == 0 and dry.json()["price"] == "99.00"
    assert snapshot(bapp.database_url) == before


def test_curated_edits_survive_the_next_sync(bapp: Bapp, tmp_path: Path) -> None:
    _synced_catalogue(bapp, tmp_path, count=3)
    uri = f"{API_ORIGIN}/event_types/ET00000001"
    edited = bapp(
        "sessions",
        "update",
        uri,
        "--category",
        "specialized",
        "--clear-pathways",
        "--price",
        "75",
        "--display-order",
        "2",
    )
    assert edited.exit_code == 0, edited.stderr
    listing = tmp_path / "listing.json"
    listing.write_text(json.dumps([make_event_type(i, duration=120) for i in range(3)]))
    synced = bapp("calendly", "sync", "--from-file", str(listing), "--json")
    assert synced.exit_code == 0 and synced.json()["updated"] == 3
    after = bapp("sessions", "show", uri, "--json").json()
    assert after["duration_minutes"] == 120  # Calendly-owned: updated
    assert (after["category"], after["pathways"], after["price"], after["display_order"]) == (
        "specialized",
        [],
        "75.00",
        2,
    )


def test_a_synced_type_that_vanished_is_listed_only_with_all(bapp: Bapp, tmp_path: Path) -> None:
    _synced_catalogue(bapp, tmp_path, count=3)
    listing = tmp_path / "fewer.json"
    listing.write_text(json.dumps([make_event_type(0), make_event_type(1)]))
    assert bapp("calendly", "sync", "--from-file", str(listing)).exit_code == 0
    assert len(bapp("sessions", "list", "--json").json()) == 2
    gone = [item for item in bapp("sessions", "list", "--all", "--json").json() if not item["bookable"]]
    assert [item["calendly_uri"] for item in gone] == [f"{API_ORIGIN}/event_types/ET00000002"]
    with _db(bapp) as session:
        assert session.scalar(select(SessionType.present_in_last_sync).where(SessionType.id == gone[0]["id"])) is False


def test_an_import_row_whose_title_gives_no_slug_says_so(bapp: Bapp, tmp_path: Path) -> None:
    # it said the row needed 'a calendly_uri, a slug or a title' of a row that has a title
    rows = tmp_path / "titles.csv"
    rows.write_text("title,duration_minutes\n日本語セッション,30\n", encoding="utf-8")
    result = bapp("import", "sessions", str(rows))
    assert result.exit_code == 6, result.stderr
    assert "line 2, field slug: a session row needs a calendly_uri, a slug, or a title with a-z or 0-9 in it" in (
        result.stderr
    )
