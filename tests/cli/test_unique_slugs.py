"""Issue 15 #6: session-type slugs are unique — the sync numbers a clashing one, imports update by slug."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from sqlalchemy import select, text
from sqlalchemy.orm import Session

from bapp_cli.db.engine import make_engine
from bapp_cli.db.models import SessionType
from tests.cli.calendly_fixtures import (
    FAST_RETRIES,
    TOKEN,
    USER,
    fake,  # noqa: F401 (fixture)
    fake_server,  # noqa: F401 (fixture)
)
from tests.conftest import Bapp
from tests.fakes.calendly_server import FakeCalendly, make_event_type

REPO = Path(__file__).resolve().parents[2]


def _listing(tmp_path: Path, slug: str) -> Path:
    pages = json.loads((REPO / "examples/calendly/event_types.json").read_text())
    item: dict[str, Any] = dict(pages[0]["collection"][0])
    item.update(uri="https://api.calendly.com/event_types/PLAYLAB", name="Play Lab (Calendly)", slug=slug)
    path = tmp_path / "listing.json"
    path.write_text(json.dumps([{"collection": [item], "pagination": {"next_page": None}}]))
    return path


def _types(bapp: Bapp) -> dict[str, tuple[str | None, int | None]]:
    """title → (slug, invitee_limit); a later type with the same title stands under `title#id`."""
    engine = make_engine(bapp.database_url)
    try:
        with Session(engine) as session:
            found: dict[str, tuple[str | None, int | None]] = {}
            for row in session.scalars(select(SessionType).order_by(SessionType.id)):
                found[row.title if row.title not in found else f"{row.title}#{row.id}"] = (row.slug, row.invitee_limit)
            return found
    finally:
        engine.dispose()


def test_sync_numbers_a_slug_a_local_type_holds_and_import_updates_by_slug(bapp: Bapp, tmp_path: Path) -> None:
    added = bapp("sessions", "add", "--title", "Play Lab", "--slug", "play-lab", "--duration", "30", "--json")
    assert added.exit_code == 0, added.stderr
    listing = _listing(tmp_path, "Play-Lab")

    synced = bapp("calendly", "sync", "--from-file", str(listing), "--json")
    assert synced.exit_code == 0, synced.stderr
    assert synced.json()["created"] == 1
    assert _types(bapp) == {"Play Lab": ("play-lab", None), "Play Lab (Calendly)": ("play-lab-2", None)}

    # the slug names one type again (before the fix: exit 6 "names several session types")
    shown = bapp("sessions", "show", "play-lab", "--json")
    assert shown.exit_code == 0, shown.stderr
    assert shown.json()["title"] == "Play Lab"
    assert bapp("sessions", "show", "play-lab-2", "--json").json()["title"] == "Play Lab (Calendly)"

    # a second sync keeps the numbered slug instead of renaming it back and forth
    again = bapp("calendly", "sync", "--from-file", str(listing), "--json")
    assert again.exit_code == 0, again.stderr
    assert (again.json()["updated"], again.json()["unchanged"]) == (0, 1)

    # `slug,invitee_limit` of an existing (synced) type updates it, as natural keys promise
    rows = tmp_path / "limits.csv"
    rows.write_text("slug,invitee_limit\nplay-lab-2,5\nplay-lab,3\n")
    imported = bapp("import", "sessions", str(rows), "--json")
    assert imported.exit_code == 0, imported.stderr
    assert (imported.json()["created"], imported.json()["updated"]) == (0, 2)
    assert _types(bapp) == {"Play Lab": ("play-lab", 3), "Play Lab (Calendly)": ("play-lab-2", 5)}


def test_import_refuses_a_new_type_or_a_rename_onto_a_taken_slug(bapp: Bapp, tmp_path: Path) -> None:
    assert bapp("sessions", "add", "--title", "Play Lab", "--slug", "play-lab", "--duration", "30").exit_code == 0
    assert bapp("sessions", "add", "--title", "Other", "--slug", "other", "--duration", "30").exit_code == 0
    rows = tmp_path / "clash.csv"
    rows.write_text(
        "calendly_uri,slug,title,duration_minutes\nhttps://api.calendly.com/event_types/NEW,play-lab,New,30\n"
    )
    result = bapp("import", "sessions", str(rows))
    assert result.exit_code == 6, result.stderr
    assert "line 2" in result.stderr and "slug: 'play-lab' is taken" in result.stderr
    assert "Traceback" not in result.stderr
    assert set(_types(bapp)) == {"Play Lab", "Other"}

    # a title-derived slug that is taken is numbered rather than refused
    derived = tmp_path / "derived.csv"
    derived.write_text("calendly_uri,title,duration_minutes\nhttps://api.calendly.com/event_types/NEW,Play Lab,30\n")
    result = bapp("import", "sessions", str(derived))
    assert result.exit_code == 0, result.stderr
    assert [slug for slug, _ in _types(bapp).values()] == ["play-lab", "other", "play-lab-2"]


def test_one_slug_rule_for_add_and_import_and_the_sync_conforms_calendlys(bapp: Bapp, tmp_path: Path) -> None:
    """`import sessions` took a slug `sessions add` refuses (`Bad Slug!`, then unreachable by name); the
    sync takes Calendly's slug as Calendly spells it only when it keeps the rule, else the slug it makes."""
    refused = bapp("sessions", "add", "--title", "Play Lab", "--slug", "Bad Slug!", "--duration", "30")
    assert refused.exit_code == 6 and "slug: 'Bad Slug!'" in refused.stderr, refused.stderr
    rows = tmp_path / "bad.csv"
    rows.write_text("slug,title,duration_minutes\nok-slug,Fine,30\nBad Slug!,Bad,30\n")
    result = bapp("import", "sessions", str(rows))
    assert result.exit_code == 6, result.stderr
    assert "line 3" in result.stderr and "slug: 'Bad Slug!'" in result.stderr
    assert "Traceback" not in result.stderr
    assert _types(bapp) == {}

    synced = bapp("calendly", "sync", "--from-file", str(_listing(tmp_path, "Play_Lab!")), "--json")
    assert synced.exit_code == 0, synced.stderr
    assert _types(bapp) == {"Play Lab (Calendly)": ("play-lab", None)}
    assert bapp("sessions", "show", "play-lab", "--json").json()["title"] == "Play Lab (Calendly)"
    again = bapp("calendly", "sync", "--from-file", str(_listing(tmp_path, "Play_Lab!")), "--json")
    assert (again.json()["updated"], again.json()["unchanged"]) == (0, 1)


def test_an_all_digit_slug_is_never_made_so_a_number_always_names_an_id(bapp: Bapp, tmp_path: Path) -> None:
    """`sessions show 77` read 77 as an id, so a type whose slug was 77 could not be named by it."""
    refused = bapp("sessions", "add", "--title", "Seventy", "--slug", "77", "--duration", "30")
    assert refused.exit_code == 6 and "slug: '77'" in refused.stderr, refused.stderr
    rows = tmp_path / "digits.csv"
    rows.write_text("slug,title,duration_minutes\n77,Seventy,30\n")
    imported = bapp("import", "sessions", str(rows))
    assert imported.exit_code == 6 and "line 2" in imported.stderr and "slug: '77'" in imported.stderr
    assert _types(bapp) == {}

    # a title of digits alone gives a slug that is not (sessions add and import alike)
    added = bapp("sessions", "add", "--title", "2024", "--duration", "30", "--json")
    assert added.exit_code == 0, added.stderr
    assert added.json()["slug"] == "session-2024"
    titled = tmp_path / "titled.csv"
    titled.write_text("title,duration_minutes\n2025,30\n")
    assert bapp("import", "sessions", str(titled)).exit_code == 0
    # and so does a Calendly slug of digits alone: the sync goes on, the type is named by its slug
    synced = bapp("calendly", "sync", "--from-file", str(_listing(tmp_path, "2026")), "--json")
    assert synced.exit_code == 0, synced.stderr
    assert _types(bapp) == {
        "2024": ("session-2024", None),
        "2025": ("session-2025", None),
        "Play Lab (Calendly)": ("session-2026", None),
    }
    assert bapp("sessions", "show", "session-2026", "--json").json()["title"] == "Play Lab (Calendly)"
    # an import names the session as every command does: digits its id, anything else a slug in any case
    first = added.json()["id"]
    bookings = tmp_path / "bookings.csv"
    bookings.write_text(
        f"client,session,start_time\nada@example.com,{first},2031-01-06T10:00:00Z\n"
        "ada@example.com,Session-2025,2031-01-07T10:00:00Z\n"
    )
    booked = bapp("import", "bookings", str(bookings), "--json")
    assert booked.exit_code == 0, booked.stderr
    listed = bapp("bookings", "list", "--json").json()
    assert sorted(row["session_title"] for row in listed) == ["2024", "2025"]


def test_a_backup_holding_a_slug_the_rule_refuses_still_restores(bapp: Bapp, tmp_path: Path) -> None:
    """A backup from before the rule may hold `77` or `Bad Slug!`: the restore gives them the slugs the
    0014 migration gives an existing database's, rather than refusing the backup."""
    backup = tmp_path / "backup.json"
    assert bapp("export", "all", "-o", str(backup)).exit_code == 0  # the empty database: default pathways
    document = json.loads(backup.read_text())
    old = {"title": "T", "duration_minutes": 30, "category": "free", "created_at": "2030-01-01T00:00:00Z"}
    uri = "https://api.calendly.com/event_types/PLAYLAB"
    document["sessions"] = [{"id": 5, "slug": "77", **old}, {"id": 6, "slug": "Bad Slug!", **old}]
    # a converted slug before the one it converts to, in id order: numbered, as 0014 numbers it (the restore gave
    # it `session-2024` and refused id 4's as taken)
    document["sessions"][:0] = [{"id": 3, "slug": "2024", **old}, {"id": 4, "slug": "session-2024", **old}]
    # and so is the slug a Calendly type without one gets from its title, after every converted one (it took
    # `play-lab`, refusing id 7's)
    document["sessions"][:0] = [{"id": 2, "slug": None, **old, "title": "Play Lab", "calendly_uri": uri + "2"}]
    # and one whose slug the rule gives is another's: numbered, as 0014 numbers it (it was refused as that
    # slug's second row, or as taken when it had a calendly_uri)
    document["sessions"] += [{"id": 7, "slug": "play-lab", **old}, {"id": 8, "slug": "Play_Lab", **old}]
    document["sessions"] += [{"id": 9, "slug": "Play Lab", "calendly_uri": uri, **old}]
    # and slugs with nothing usable left have none, as 0014 leaves them (an empty one was refused as no key)
    document["sessions"] += [{"id": 10, "slug": "!!!", **old}, {"id": 11, "slug": "", **old}]
    backup.write_text(json.dumps(document))
    restored = bapp("import", "all", str(backup), "--json")
    assert restored.exit_code == 0, restored.stderr
    assert restored.json()["restored"] is True
    assert [slug for slug, _ in _types(bapp).values()] == [
        "play-lab-4",
        "session-2024-2",
        "session-2024",
        "session-77",
        "bad-slug",
        "play-lab",
        "play-lab-2",
        "play-lab-3",
        None,
        None,
    ]


def test_a_long_slug_numbered_where_the_cut_meets_a_hyphen_keeps_the_rule(bapp: Bapp, tmp_path: Path) -> None:
    """`slug-2` of a 200-character slug is cut to fit the column; cut at a hyphen it was `…a--2`, a slug the
    rule refuses, which no command could name: the sync's and an import's numbering alike."""
    long = "a" * 197 + "-bc"
    assert bapp("sessions", "add", "--title", "Long", "--slug", long, "--duration", "30").exit_code == 0
    synced = bapp("calendly", "sync", "--from-file", str(_listing(tmp_path, long.upper())), "--json")
    assert synced.exit_code == 0, synced.stderr
    titled = tmp_path / "titled.csv"
    titled.write_text(
        f"calendly_uri,title,duration_minutes\nhttps://api.calendly.com/event_types/NEW,{'A' * 197} BC,30\n"
    )
    assert bapp("import", "sessions", str(titled)).exit_code == 0
    assert [slug for slug, _ in _types(bapp).values()] == [long, "a" * 197 + "-2", "a" * 197 + "-3"]
    assert bapp("sessions", "show", "a" * 197 + "-3", "--json").json()["title"] == "A" * 197 + " BC"


def test_a_backup_names_its_sessions_by_the_slugs_it_holds_which_the_restore_converts(
    bapp: Bapp, tmp_path: Path
) -> None:
    """An old backup's bookings and links name a session by its slug as the backup holds it: `2024` (which would
    read as an id), `Play_Lab` beside a `play-lab` (numbered `play-lab-2`). The restore names the type it
    converted, where the rows were refused or, for `5` beside a type of id 5, given to the wrong type."""
    old = {"duration_minutes": 30, "category": "free", "created_at": "2030-01-01T00:00:00Z"}
    sessions = {5: "play-lab", 6: "Play_Lab", 7: "2024", 8: "5"}
    backup = tmp_path / "backup.json"
    backup.write_text(
        json.dumps(
            {
                "bapp": {"format": "bapp-backup", "version": 2},
                "clients": [{"email": "ivy@client.example"}],
                "sessions": [{"id": id, "slug": slug, "title": f"T{id}", **old} for id, slug in sessions.items()],
                "bookings": [
                    {"client": "ivy@client.example", "session": slug, "start_time": f"2031-01-0{id}T10:00:00Z"}
                    for id, slug in sessions.items()
                ],
                "calendly_invitations": [
                    {"client": "ivy@client.example", "session": slug, "booking_url": f"https://cal.example/{id}"}
                    for id, slug in sessions.items()
                ],
            }
        )
    )
    restored = bapp("import", "all", str(backup), "--json")
    assert restored.exit_code == 0, restored.stderr
    assert [slug for slug, _ in _types(bapp).values()] == ["play-lab", "play-lab-2", "session-2024", "session-5"]
    assert "Warning: session 'Play_Lab' is restored as 'play-lab-2'" in restored.stderr
    booked = bapp("bookings", "list", "--json").json()
    assert [row["session_title"] for row in sorted(booked, key=lambda row: row["start_time"])] == [
        "T5",
        "T6",
        "T7",
        "T8",
    ]
    engine = make_engine(bapp.database_url)
    try:
        with engine.connect() as connection:
            links = connection.execute(text("SELECT booking_url, session_type_id FROM calendly_invitations")).all()
    finally:
        engine.dispose()
    assert sorted(links) == [(f"https://cal.example/{id}", id) for id in sessions]


def test_calendly_slugs_swapped_or_rotated_settle_in_one_sync(bapp: Bapp, tmp_path: Path) -> None:
    """Types trading slugs in one Calendly change (A's becomes B's and B's A's, a rotation, or a chain)
    take theirs in one sync: each was numbered (beta-2, alpha-2) while the slug it wants was still its
    holder's, and only the next sync renamed it. The next sync now has nothing to do."""
    pages = json.loads((REPO / "examples/calendly/event_types.json").read_text())
    base: dict[str, Any] = dict(pages[0]["collection"][0])
    listing = tmp_path / "listing.json"

    def sync(*slugs: str) -> dict[str, Any]:
        items = [{**base, "uri": f"{base['uri']}-{n}", "name": f"Type {n}", "slug": s} for n, s in enumerate(slugs)]
        listing.write_text(json.dumps(items))
        synced = bapp("calendly", "sync", "--from-file", str(listing), "--json")
        assert synced.exit_code == 0, synced.stderr
        return dict(synced.json())

    sync("alpha", "beta", "gamma")
    assert sync("beta", "alpha", "gamma")["updated"] == 2  # a swap
    assert [_types(bapp)[f"Type {n}"][0] for n in range(3)] == ["beta", "alpha", "gamma"]
    assert sync("alpha", "gamma", "beta")["updated"] == 3  # a rotation
    assert sync("alpha", "beta", "delta")["updated"] == 2  # a chain: Type 1 takes Type 2's, which moves on
    assert [_types(bapp)[f"Type {n}"][0] for n in range(3)] == ["alpha", "beta", "delta"]
    again = sync("alpha", "beta", "delta")
    assert (again["updated"], again["unchanged"]) == (0, 3)
    # a new type listed after the one giving a slug up takes it at once
    moved = sync("omega", "beta", "delta", "alpha")
    assert (moved["created"], moved["updated"]) == (1, 1)
    assert [_types(bapp)[f"Type {n}"][0] for n in range(4)] == ["omega", "beta", "delta", "alpha"]


def test_rules_on_the_slug_classify_by_calendlys_slug_not_a_numbered_one(bapp: Bapp, tmp_path: Path) -> None:
    """A rule on the slug (examples/config.toml: '^play-innovation-showcase$') classified a type by the
    numbered slug a clash gave it: a Calendly type that a local type's slug made `showcase-2` missed its
    rule, and in a swap with --reclassify the type taking `showcase` was classified as `showcase-2`, so the
    next --reclassify changed its category again."""
    (bapp.home / "config.toml").write_text(
        '[[calendly.rules]]\npattern = "^(showcase|extra)$"\nfield = "slug"\ncategory = "free"\nrequires_auth = false\n'
    )
    pages = json.loads((REPO / "examples/calendly/event_types.json").read_text())
    base: dict[str, Any] = dict(pages[0]["collection"][0], name="Workshop")
    listing = tmp_path / "listing.json"

    def sync(*slugs: str) -> dict[str, Any]:
        listing.write_text(json.dumps([{**base, "uri": f"{base['uri']}-{n}", "slug": s} for n, s in enumerate(slugs)]))
        synced = bapp("calendly", "sync", "--from-file", str(listing), "--reclassify", "--json")
        assert synced.exit_code == 0, synced.stderr
        return dict(synced.json())

    def categories() -> list[tuple[str, str]]:
        listed = bapp("sessions", "list", "--json").json()
        return [(item["slug"], item["category"]) for item in sorted(listed, key=lambda item: item["id"])]

    assert bapp("sessions", "add", "--title", "Local", "--slug", "extra", "--duration", "30").exit_code == 0
    sync("workshop", "showcase", "extra")
    assert categories() == [
        ("extra", "specialized"),
        ("workshop", "specialized"),
        ("showcase", "free"),
        ("extra-2", "free"),
    ]
    sync("showcase", "workshop", "extra")  # a swap: the first type takes `showcase` from the second
    assert categories()[1:3] == [("showcase", "free"), ("workshop", "specialized")]
    again = sync("showcase", "workshop", "extra")
    assert (again["updated"], again["unchanged"]) == (0, 3)


def test_a_numbered_type_takes_its_slug_when_the_holder_listed_after_it_gives_it_up(bapp: Bapp, tmp_path: Path) -> None:
    """A type numbered `alpha-2` because another held `alpha` moved back to `alpha` in the sync where the
    holder was renamed only when the holder came first in the listing; listed after it, the holder's rename
    freed `alpha` too late and the next sync wrote the move."""
    pages = json.loads((REPO / "examples/calendly/event_types.json").read_text())
    base: dict[str, Any] = dict(pages[0]["collection"][0])
    listing = tmp_path / "listing.json"

    def sync(*types: tuple[int, str, str]) -> dict[str, Any]:
        items = [{**base, "uri": f"{base['uri']}-{n}", "name": name, "slug": s} for n, name, s in types]
        listing.write_text(json.dumps([{"collection": [item], "pagination": {"next_page": None}} for item in items]))
        synced = bapp("calendly", "sync", "--from-file", str(listing), "--json")
        assert synced.exit_code == 0, synced.stderr
        return dict(synced.json())

    sync((0, "Holder", "alpha"), (1, "Numbered", "alpha"), (2, "Other", "beta"))
    # (a new type whose slug is taken is planned, and inserted, after the others: the holder may give it up)
    assert {title: slug for title, (slug, _) in _types(bapp).items()} == {
        "Holder": "alpha",
        "Numbered": "alpha-2",
        "Other": "beta",
    }
    # the numbered type (renamed in Calendly too, a change besides its slug) is listed before the holder
    moved = sync((1, "Numbered again", "alpha"), (2, "Other", "beta"), (0, "Holder", "omega"))
    assert (moved["updated"], moved["unchanged"]) == (2, 1)
    assert _types(bapp)["Numbered again"][0] == "alpha" and _types(bapp)["Holder"][0] == "omega"
    again = sync((1, "Numbered again", "alpha"), (2, "Other", "beta"), (0, "Holder", "omega"))
    assert (again["updated"], again["unchanged"]) == (0, 3)


def test_a_numbered_type_takes_a_slug_another_held_only_while_its_own_was_taken(bapp: Bapp, tmp_path: Path) -> None:
    """A known type numbered `alpha-2` while its page was planned (its holder listed later gives `alpha` up)
    still held `alpha-2` once it took `alpha`: a type after it that Calendly now calls `alpha-2` was made
    `alpha-2-2`, and the next sync wrote the move."""
    pages = json.loads((REPO / "examples/calendly/event_types.json").read_text())
    base: dict[str, Any] = dict(pages[0]["collection"][0])
    listing = tmp_path / "listing.json"

    def sync(*types: tuple[int, str]) -> dict[str, Any]:
        items = [{**base, "uri": f"{base['uri']}-{n}", "name": f"Type {n}", "slug": s} for n, s in types]
        listing.write_text(json.dumps([{"collection": [item], "pagination": {"next_page": None}} for item in items]))
        synced = bapp("calendly", "sync", "--from-file", str(listing), "--json")
        assert synced.exit_code == 0, synced.stderr
        return dict(synced.json())

    sync((0, "alpha"), (1, "one"), (2, "two"))
    moved = sync((1, "alpha"), (2, "alpha-2"), (0, "omega"))
    assert moved["updated"] == 3
    assert [slug for slug, _ in _types(bapp).values()] == ["omega", "alpha", "alpha-2"]
    again = sync((1, "alpha"), (2, "alpha-2"), (0, "omega"))
    assert (again["updated"], again["unchanged"]) == (0, 3)


def test_slugs_given_up_in_a_sync_are_taken_in_it_so_a_dry_run_then_has_nothing_to_do(
    bapp: Bapp, tmp_path: Path
) -> None:
    """A type Calendly lists without a slug kept its old one booked for the sync, and a new type listed before
    the one renaming away from its slug was numbered: the types wanting those slugs were `gamma-2` and
    `delta-2`, and the next sync (its --dry-run too) said "updated 1" and moved them."""
    pages = json.loads((REPO / "examples/calendly/event_types.json").read_text())
    base: dict[str, Any] = dict(pages[0]["collection"][0])
    listing = tmp_path / "listing.json"

    def sync(*types: tuple[int, str | None], dry_run: bool = False) -> dict[str, Any]:
        items = [{**base, "uri": f"{base['uri']}-{n}", "name": f"Type {n}", "slug": s} for n, s in types]
        listing.write_text(json.dumps([{"collection": [item], "pagination": {"next_page": None}} for item in items]))
        synced = bapp("calendly", "sync", "--from-file", str(listing), "--json", *["--dry-run"] * dry_run)
        assert synced.exit_code == 0, synced.stderr
        return dict(synced.json())

    sync((0, "gamma"), (1, "delta"))
    # one page a type: the new types are staged as their pages are planned, the second one set aside
    changed = [(3, "epsilon"), (2, "delta"), (0, None), (1, "gamma")]
    moved = sync(*changed)
    assert (moved["created"], moved["updated"]) == (2, 2)
    assert {title: slug for title, (slug, _) in _types(bapp).items()} == {
        "Type 0": None,
        "Type 1": "gamma",
        "Type 2": "delta",
        "Type 3": "epsilon",
    }
    for dry_run in (True, False):
        again = sync(*changed, dry_run=dry_run)
        assert (again["created"], again["updated"], again["unchanged"]) == (0, 0, 4)


def test_a_title_with_accents_keeps_its_base_letters_and_a_resync_renames_no_stored_slug(
    bapp: Bapp,
    fake: FakeCalendly,  # noqa: F811 (fixture)
    tmp_path: Path,
) -> None:
    """`sessions add --title "Ünïcode Title"` made `n-code-title`: an accented letter was dropped with its
    accent. A title's letters now keep their base letter (`import sessions` alike); Calendly's slugs are
    conformed as they were when stored, so a re-sync neither renames nor duplicates a synced type."""
    added = bapp("sessions", "add", "--title", "Ünïcode Title", "--duration", "30", "--json")
    assert added.exit_code == 0, added.stderr
    assert added.json()["slug"] == "unicode-title"
    rows = tmp_path / "titled.csv"
    rows.write_text("title,duration_minutes\nStraße Ångström,30\n", encoding="utf-8")
    assert bapp("import", "sessions", str(rows)).exit_code == 0
    assert _types(bapp)["Straße Ångström"] == ("strasse-angstrom", None)

    # Calendly's own slug for an accented title, and one spelled with the accents: stored as before the change
    accented = [
        make_event_type(0, name="Ünïcode Title"),
        {**make_event_type(1, name="Café Crème"), "slug": "café-crème"},
    ]
    assert accented[0]["slug"] == "n-code-title"  # the fake drops what is not a-z, as the old rule did
    fake.set_event_types(accented)
    bapp.env.update({"CALENDLY_API_KEY": TOKEN, "CALENDLY_API_BASE_URL": fake.base_url, **FAST_RETRIES})
    synced = bapp("calendly", "sync", "--user", USER, "--json")
    assert synced.exit_code == 0, synced.stderr
    assert synced.json()["created"] == 2
    stored = _types(bapp)
    again = bapp("calendly", "sync", "--user", USER, "--json")
    assert again.exit_code == 0, again.stderr
    assert (again.json()["created"], again.json()["updated"], again.json()["unchanged"]) == (0, 0, 2)
    assert _types(bapp) == stored
    assert (stored["Ünïcode Title#3"], stored["Café Crème"]) == (("n-code-title", None), ("caf-cr-me", None))
    assert bapp("sessions", "show", "unicode-title", "--json").json()["id"] == added.json()["id"]


def test_a_title_only_row_still_names_the_type_its_title_made_before_accents_kept_their_letters(
    bapp: Bapp, tmp_path: Path
) -> None:
    """A title-only session row imported before a8cc80c made `cr-me-br-l-e` (the accented letters dropped). The
    same file imported again must change nothing (README: importing a file twice reports it unchanged), not
    create `creme-brulee` beside it; a new title-only row still takes its base letters."""
    made = bapp("sessions", "add", "--title", "Crème Brûlée", "--slug", "cr-me-br-l-e", "--duration", "30", "--json")
    assert made.exit_code == 0, made.stderr  # as the old rule named a title-only row's type
    rows = tmp_path / "titled.csv"
    rows.write_text("title,duration_minutes\nCrème Brûlée,30\nÉclair Étude,45\n", encoding="utf-8")
    imported = bapp("import", "sessions", str(rows), "--json")
    assert imported.exit_code == 0, imported.stderr
    assert (imported.json()["created"], imported.json()["unchanged"]) == (1, 1), imported.json()
    assert _types(bapp) == {"Crème Brûlée": ("cr-me-br-l-e", None), "Éclair Étude": ("eclair-etude", None)}
