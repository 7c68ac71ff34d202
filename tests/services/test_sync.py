"""The event-type sync use case on both backends: classification, the one-transaction apply, run records."""

from __future__ import annotations

import datetime as dt
import json
import re
import sqlite3
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from bapp_cli.calendly.models import EventType
from bapp_cli.db.dbapi import Database
from bapp_cli.db.models import AuditEntry, BuilderProfile, Pathway, SessionType, SessionTypePathway, SyncRun, User
from bapp_cli.errors import ConfigError, Conflict, InvalidInput, RemoteError
from bapp_cli.services.calendly_bookings import RUN_COLUMNS, list_runs
from bapp_cli.services.calendly_runs import record_run
from bapp_cli.services.session_types import check_bookable
from bapp_cli.services.sync import (
    Classifier,
    SyncPlan,
    SyncReport,
    parse_listing,
    parse_rules,
    stage_event_types,
    sync_event_types,
)
from tests.fakes.calendly_server import API_ORIGIN, DEFAULT_USER_URI, make_event_type

# the conformance corpus beside the repository (../shared/reference), as the client tests use it
SAMPLES = Path(__file__).resolve().parents[3] / "shared" / "reference" / "calendly-samples"
START = dt.datetime(2030, 1, 1, 9, 0, tzinfo=dt.UTC)
PATHWAYS = {
    "accelerate": ("Accelerate", False),
    "pivot": ("Pivot", False),
    "play": ("Play", False),
}


def clock(start: dt.datetime = START) -> Callable[[], dt.datetime]:
    ticks = iter(range(1_000_000))
    return lambda: start + dt.timedelta(seconds=next(ticks))


def items(*raw: dict[str, Any]) -> list[EventType]:
    return [EventType.model_validate(entry) for entry in raw]


def run(session: Session, listing: list[EventType], **options: Any) -> Any:
    options.setdefault("source", "api")
    report = sync_event_types(session, listing, started_at=START, clock=clock(), **options)
    session.commit()
    return report


def by_uri(session: Session) -> dict[str, SessionType]:
    session.expire_all()
    return {row.calendly_uri: row for row in session.scalars(select(SessionType)) if row.calendly_uri}


def links(session: Session, session_type_id: int) -> list[str]:
    return sorted(
        session.scalars(
            select(Pathway.slug)
            .join(SessionTypePathway, SessionTypePathway.pathway_id == Pathway.id)
            .where(SessionTypePathway.session_type_id == session_type_id)
        )
    )


def uri(i: int) -> str:
    return f"{API_ORIGIN}/event_types/ET{i:08d}"


# -- classification (no database) ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "slug", "category", "requires_auth", "pathways"),
    [
        ("Free Discovery Call", "free-discovery-call", "free", False, ()),
        ("Getting Started with AI", "getting-started-with-ai", "free", False, ()),
        ("Intro chat", "x", "free", False, ()),
        ("Back to Work Clinic", "btw", "free", False, ()),
        ("Quick call", "back-to-work", "free", False, ()),
        ("Accelerate Foundation Coaching", "afc", "pathway", True, ("accelerate",)),
        ("Career session", "pivot-assessment", "pathway", True, ("pivot",)),
        ("Pivot and Play combo", "combo", "pathway", True, ("pivot", "play")),
        ("Playground build", "playground-build", "specialized", True, ()),
        ("Agent Architecture Review", "arch", "specialized", True, ()),
    ],
)
def test_built_in_defaults(name: str, slug: str, category: str, requires_auth: bool, pathways: tuple[str, ...]) -> None:
    result = Classifier([], PATHWAYS).classify(name, slug)
    assert (result.category, result.requires_auth, result.pathways) == (category, requires_auth, pathways)
    assert result.rule is None


def test_rules_come_first_in_order_and_may_override_auth_and_price() -> None:
    rules = parse_rules(
        [
            {"pattern": "^vip", "field": "slug", "category": "specialized", "requires_auth": False, "price": "99.5"},
            {"pattern": "free", "category": "specialized", "currency": "eur"},
            {"pattern": "coaching", "category": "pathway", "pathways": ["Pivot"]},
            {"pattern": "lab", "category": "pathway"},
        ]
    )
    classifier = Classifier(rules, PATHWAYS)
    vip = classifier.classify("Free VIP session", "vip-free")
    assert (vip.category, vip.requires_auth, vip.price, vip.rule) == ("specialized", False, Decimal("99.50"), 1)
    # rule 1 matches the slug only: the name "vip…" does not count
    assert classifier.classify("VIP free", "other").rule == 2
    assert classifier.classify("VIP free", "other").currency == "EUR"
    coaching = classifier.classify("Accelerate Coaching", "accelerate-coaching")
    assert (coaching.category, coaching.pathways) == ("pathway", ("pivot",))
    # a pathway rule without pathways links the pathways named in the title
    assert classifier.classify("Play Lab", "play-lab").pathways == ("play",)


def test_archived_pathways_take_no_new_links() -> None:
    classifier = Classifier(
        parse_rules([{"pattern": "x", "category": "pathway", "pathways": ["pivot", "play"]}]),
        {**PATHWAYS, "play": ("Play", True)},
    )
    assert classifier.classify("x", "x").pathways == ("pivot",)
    assert classifier.classify("Play session", "play").category == "specialized"


@pytest.mark.parametrize(
    ("rule", "message"),
    [
        ({"pattern": "("}, "not a valid regular expression"),
        ({"pattern": "a", "category": "premium"}, "category must be one of"),
        ({"pattern": "a", "category": "free", "colour": "red"}, "unknown key 'colour'"),
        ({"category": "free"}, "'pattern'"),
        ({"pattern": "a", "category": "free", "field": "title"}, "field must be one of"),
        # an array is no field name; looked up as one, it was a TypeError (exit 1 from `calendly sync`)
        ({"pattern": "a", "category": "free", "field": ["name"]}, "slug, any (not ['name'])"),
        ({"pattern": "a", "category": "free", "field": {"name": 1}}, "field must be one of"),
        ({"pattern": "a", "category": "free", "requires_auth": "no"}, "requires_auth"),
        ({"pattern": "a", "category": "free", "price": "-1"}, "price"),
        # Decimal() read it as 1000: the config's typo became the price of every type the rule matched
        ({"pattern": "a", "category": "free", "price": "1_000"}, "calendly.rules[2].price: '1_000' is not an amount"),
        ({"pattern": "a", "category": "free", "pathways": [1]}, "pathways"),
    ],
)
def test_bad_rules_are_config_errors_naming_the_rule(rule: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_rules([{"pattern": "ok", "category": "free"}, rule])
    assert caught.value.exit_code == 4
    assert "calendly.rules[2]" in caught.value.message
    assert message in caught.value.message


def test_a_rule_naming_an_unknown_pathway_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match=r"calendly.rules\[1\]: no pathway 'growth'"):
        Classifier(parse_rules([{"pattern": "a", "category": "pathway", "pathways": ["growth"]}]), PATHWAYS)


# -- saved listings ---------------------------------------------------------------------------------


def test_parse_listing_accepts_a_page_a_list_of_pages_and_a_bare_list() -> None:
    raw = [make_event_type(i) for i in range(5)]
    page = {"collection": raw[:3], "pagination": {"next_page": None}}
    for content in (
        json.dumps({"collection": raw, "pagination": {}}),
        json.dumps([page, {"collection": raw[3:], "pagination": {}}]),
        json.dumps(raw),
    ):
        assert [item["uri"] for item in parse_listing(content, name="f")] == [uri(i) for i in range(5)]
    assert parse_listing("[]", name="f") == []


def test_parse_listing_reports_every_bad_item_with_its_place() -> None:
    raw = [make_event_type(i) for i in range(3)]
    raw[1]["duration"] = "sixty"
    del raw[2]["uri"]
    with pytest.raises(InvalidInput) as caught:
        parse_listing(json.dumps([{"collection": raw}]), name="listing.json")
    error = caught.value
    assert error.exit_code == 6
    assert "listing.json: 2 invalid value(s)" in error.message
    assert "[0].collection[1] duration" in error.message
    assert {(d["row"], d["field"]) for d in error.details} == {
        ("[0].collection[1]", "duration"),
        ("[0].collection[2]", "uri"),
    }


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", "not valid JSON (line 1, column 2: "),
        ('{"items": []}', "'collection' array"),
        ('"text"', "expected a listing page"),
        ('{"collection": {}}', "must be an array"),
    ],
)
def test_parse_listing_refuses_malformed_files(content: str, message: str) -> None:
    with pytest.raises(InvalidInput, match=re.escape(message)):
        parse_listing(content, name="f")


def test_every_sample_event_type_parses_into_a_listing() -> None:
    """R7: a listing built from the captured event types of both public client libraries."""
    collected: list[dict[str, Any]] = []
    for path in sorted(SAMPLES.glob("*/*event_type*.json")):
        body = json.loads(path.read_text())
        collected.extend(body["collection"] if "collection" in body else [body["resource"]])
    assert len(collected) >= 8
    parsed = parse_listing(json.dumps({"collection": collected, "pagination": {}}), name="samples")
    assert len(parsed) == len(collected)
    # the listing's plain-dict parse (the sync's fast path) reads every sample as the models do
    staged = stage_event_types(parsed, "file")
    assert staged == stage_event_types([EventType.model_validate(raw) for raw in collected], "file")
    assert any(row["owner_uri"] is None for row in staged)
    assert any(row["owner_uri"] and "/teams/" in row["owner_uri"] for row in staged)


# -- the apply -------------------------------------------------------------------------------------


@pytest.fixture
def builder(session: Session) -> User:
    user = User(email="ada@example.com", name="Ada")
    session.add(user)
    session.flush()
    session.add(BuilderProfile(user_id=user.id, calendly_user_uri=DEFAULT_USER_URI))
    session.commit()
    return user


def test_first_sync_creates_classified_types_with_calendly_fields(session: Session, builder: User) -> None:
    team = make_event_type(3, owner_uri=f"{API_ORIGIN}/teams/TEAM1")
    orphan = {**make_event_type(4), "profile": None, "slug": None, "name": None}
    report = run(session, items(make_event_type(0), make_event_type(1), make_event_type(2), team, orphan))
    assert (report.created, report.updated, report.unchanged, report.deactivated) == (5, 0, 0, 0)
    rows = by_uri(session)
    free = rows[uri(0)]
    raw = make_event_type(0)
    assert (free.title, free.slug, free.category, free.requires_auth) == (raw["name"], raw["slug"], "free", False)
    assert free.duration_minutes == raw["duration"]
    assert free.duration_options == raw["duration_options"]
    assert free.custom_questions[3]["answer_choices"] == ["Agents", "RAG", "Automation", "Prompting"]
    assert free.custom_questions[4]["answer_choices"] == []  # null in the API, [] stored
    assert free.remote_updated_at == dt.datetime.fromisoformat(raw["updated_at"])
    assert (free.builder_id, free.owner_uri, free.display_order) == (builder.id, DEFAULT_USER_URI, 0)
    assert (free.price, free.currency, free.enabled, free.present_in_last_sync) == (Decimal("0.00"), "GBP", True, True)
    assert rows[uri(1)].category == "pathway" and links(session, rows[uri(1)].id) == ["accelerate"]
    assert rows[uri(2)].category == "pathway" and links(session, rows[uri(2)].id) == ["pivot"]
    assert rows[uri(3)].builder_id is None and rows[uri(3)].owner_uri == f"{API_ORIGIN}/teams/TEAM1"
    assert rows[uri(3)].display_order == 3
    assert (rows[uri(4)].title, rows[uri(4)].slug, rows[uri(4)].owner_uri) == ("ET00000004", None, None)
    run_row = session.get(SyncRun, report.run_id)
    assert run_row is not None
    assert (run_row.status, run_row.source, run_row.created, run_row.fetched) == ("succeeded", "api", 5, 5)
    assert session.scalar(select(func.count()).select_from(AuditEntry).where(AuditEntry.entity == "calendly_sync")) == 1


def test_second_identical_sync_writes_nothing_but_its_run(session: Session, builder: User) -> None:
    listing = items(*(make_event_type(i) for i in range(20)))
    run(session, listing)
    before = [(row.id, row.updated_at, row.last_synced_at) for row in by_uri(session).values()]
    audits = session.scalar(select(func.count()).select_from(AuditEntry))
    report = run(session, listing)
    assert (report.created, report.updated, report.unchanged, report.deactivated, report.reactivated) == (
        0,
        0,
        20,
        0,
        0,
    )
    assert report.changes == []
    assert [(row.id, row.updated_at, row.last_synced_at) for row in by_uri(session).values()] == before
    assert session.scalar(select(func.count()).select_from(AuditEntry)) == audits
    assert session.scalar(select(func.count()).select_from(SyncRun)) == 2


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)  # only SQLite's driver adapts a bool
def test_a_sync_binds_no_bool_for_sqlite3_to_adapt(
    session: Session, builder: User, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SQLite's driver binds a bool through its adapter protocol, a failing attribute lookup of ~3,000
    instructions a value (P2: five a type, 50,000 in a 10,000-type first sync): the rows bind 0 and 1."""
    adapted: list[bool] = []
    monkeypatch.setitem(sqlite3.adapters, (bool, sqlite3.PrepareProtocol), lambda value: adapted.append(value) or value)
    listing = items(*(make_event_type(i) for i in range(30)))
    report = run(session, listing)
    assert report.created == 30
    assert len(adapted) <= 1  # the run record's dry_run, not one a type
    mixed = items({**make_event_type(0), "secret": True}, *(make_event_type(i) for i in range(1, 30)))
    assert run(session, mixed).updated == 1 and len(adapted) <= 2
    row = by_uri(session)[uri(0)]
    assert (row.is_secret, row.remote_active, row.enabled, row.present_in_last_sync) == (True, True, True, True)


def test_question_text_beyond_ascii_is_stored_and_read_back_as_listed(session: Session, builder: User) -> None:
    questions = [
        {
            "name": "Cuál es tu objetivo? 目标",
            "type": "text",
            "position": 0,
            "enabled": True,
            "required": True,
            "answer_choices": ["Ünïcode", 'naïve \\ "quoted"', "emoji 🚀"],
            "include_other": False,
        },
    ]
    raw = make_event_type(0, custom_questions=questions)
    run(session, items(raw))
    stored = by_uri(session)[uri(0)]
    assert stored.custom_questions == questions and stored.duration_options == raw["duration_options"]
    text = session.connection().exec_driver_sql("SELECT custom_questions FROM session_types").scalar_one()
    assert (json.loads(text) if isinstance(text, str) else text) == questions
    assert run(session, items(raw)).unchanged == 1  # read back equal: a re-sync writes nothing


def test_sync_updates_calendly_fields_and_never_curated_ones(session: Session, builder: User) -> None:
    run(session, items(make_event_type(1), make_event_type(5)))
    row = by_uri(session)[uri(1)]
    row.category, row.requires_auth, row.price, row.currency = "specialized", False, Decimal("45.00"), "EUR"
    row.display_order, row.enabled = 7, False
    session.query(SessionTypePathway).filter_by(session_type_id=row.id).delete()
    session.commit()
    changed = make_event_type(1, name="Renamed Accelerate Session", duration=90, active=False, secret=True)
    changed["custom_questions"] = changed["custom_questions"][:1]
    report = run(session, items(changed, make_event_type(5)))
    assert (report.updated, report.unchanged) == (1, 1)
    assert set(report.changes[0].fields) >= {"title", "slug", "duration_minutes", "remote_active", "is_secret"}
    row = by_uri(session)[uri(1)]
    assert (row.title, row.duration_minutes, row.remote_active, row.is_secret) == (
        "Renamed Accelerate Session",
        90,
        False,
        True,
    )
    assert len(row.custom_questions) == 1
    assert (row.category, row.requires_auth, row.price, row.currency) == ("specialized", False, Decimal("45.00"), "EUR")
    assert (row.display_order, row.enabled) == (7, False)
    assert links(session, row.id) == []


def test_a_builder_added_later_is_attached_on_the_next_sync(session: Session) -> None:
    run(session, items(make_event_type(0)))
    assert by_uri(session)[uri(0)].builder_id is None
    user = User(email="late@example.com")
    session.add(user)
    session.flush()
    session.add(BuilderProfile(user_id=user.id, calendly_user_uri=DEFAULT_USER_URI))
    session.commit()
    report = run(session, items(make_event_type(0)))
    assert report.updated == 1 and report.changes[0].fields == ("builder_id",)
    assert by_uri(session)[uri(0)].builder_id == user.id


def test_vanished_types_become_unbookable_once_and_come_back(session: Session, builder: User) -> None:
    run(session, items(*(make_event_type(i) for i in range(4))))
    report = run(session, items(make_event_type(0), make_event_type(1)))
    assert (report.deactivated, report.unchanged) == (2, 2)
    rows = by_uri(session)
    assert [rows[uri(i)].present_in_last_sync for i in range(4)] == [True, True, False, False]
    with pytest.raises(InvalidInput, match="missing from the last Calendly sync"):
        check_bookable(rows[uri(2)], None, None)
    again = run(session, items(make_event_type(0), make_event_type(1)))
    assert (again.deactivated, again.unchanged) == (0, 2)  # counted in the run they vanished, not after
    back = run(session, items(*(make_event_type(i) for i in range(3)), make_event_type(2, name="Pivot Returns")))
    assert (back.reactivated, back.unchanged, back.deactivated) == (1, 2, 0)
    returned = by_uri(session)[uri(2)]
    assert returned.present_in_last_sync
    check_bookable(returned, None, None)  # bookable again: no refusal
    assert returned.title == "Pivot Returns"  # the later copy of a type listed twice wins
    assert back.skipped == 1


def plan_by_pages(session: Session, *pages: list[dict[str, Any]]) -> tuple[SyncPlan, list[dict[str, Any]]]:
    """A plan made as `calendly sync` makes it, page by page against a catalogue read before the apply."""
    plan = SyncPlan([], reclassify=False)
    plan.add(pages[0])  # a page that arrives before the catalogue is read waits for it
    plan.read(Database.of(session))  # the survey reads on a plain connection
    for page in pages[1:]:
        plan.add(page)
    session.rollback()
    return plan, [entry for page in pages for entry in page]


def test_a_plan_made_page_by_page_is_written_as_made_while_the_catalogue_is_unchanged(
    session: Session, builder: User
) -> None:
    run(session, items(make_event_type(0)))
    plan, listing = plan_by_pages(
        session, *(stage_event_types(items(make_event_type(i), make_event_type(i + 1)), "api") for i in (0, 2))
    )
    report = sync_event_types(session, listing, source="api", started_at=START, clock=clock(), plan=plan)
    session.commit()
    assert report is plan.report  # not planned again
    assert (report.created, report.unchanged, report.fetched) == (3, 1, 4)
    assert sorted(by_uri(session)) == [uri(i) for i in range(4)]


def test_a_plan_is_made_again_when_the_catalogue_changed_after_it_was_read(session: Session, builder: User) -> None:
    slug = make_event_type(0)["slug"]
    plan, listing = plan_by_pages(session, stage_event_types(items(make_event_type(0), make_event_type(1)), "api"))
    # meanwhile an admin creates a local type with the slug the plan gave the first Calendly type
    session.add(SessionType(title="Local", slug=slug, category="free", requires_auth=False, duration_minutes=30))
    session.commit()
    report = sync_event_types(session, listing, source="api", started_at=START, clock=clock(), plan=plan)
    session.commit()
    assert report is not plan.report
    assert report.created == 2
    assert by_uri(session)[uri(0)].slug == f"{slug}-2"
    # (planned after the listing's last page: a type listed later might have given the slug up)
    assert f"slug {slug}-2 ({slug} is taken)" in next(change.note for change in report.changes if change.uri == uri(0))


def test_a_type_listed_on_two_pages_is_planned_again_and_its_later_copy_wins(session: Session, builder: User) -> None:
    renamed = make_event_type(1, name="Renamed On Page Two")
    plan, listing = plan_by_pages(
        session,
        stage_event_types(items(make_event_type(0), make_event_type(1)), "api"),
        stage_event_types(items(renamed), "api"),
    )
    report = sync_event_types(session, listing, source="api", started_at=START, clock=clock(), plan=plan)
    session.commit()
    assert (report.created, report.skipped, report.fetched) == (2, 1, 3)
    assert by_uri(session)[uri(1)].title == "Renamed On Page Two"


def test_empty_listing_is_refused_while_synced_types_exist(session: Session, builder: User) -> None:
    run(session, items(make_event_type(0), make_event_type(1)))
    with pytest.raises(Conflict) as caught:
        sync_event_types(session, [], source="api", started_at=START, clock=clock())
    session.rollback()
    assert caught.value.exit_code == 8
    assert "2 synced session types" in caught.value.message
    assert all(row.present_in_last_sync for row in by_uri(session).values())
    report = run(session, [], allow_empty=True)
    assert report.deactivated == 2
    # nothing left to protect: an empty listing is now just empty
    assert run(session, []).deactivated == 0


def test_an_empty_listing_on_an_empty_catalogue_is_fine(session: Session) -> None:
    report = run(session, [])
    assert (report.fetched, report.created, report.status) == (0, 0, "succeeded")


def test_reclassify_resets_the_classified_fields_only(session: Session, builder: User) -> None:
    run(session, items(make_event_type(1), make_event_type(4)))
    rows = by_uri(session)
    rows[uri(1)].category = "specialized"
    rows[uri(1)].display_order = 42
    rows[uri(4)].price = Decimal("10.00")
    session.query(SessionTypePathway).delete()
    session.commit()
    rules = parse_rules([{"pattern": "architecture", "category": "specialized", "price": "80"}])
    report = run(session, items(make_event_type(1), make_event_type(4)), reclassify=True, rules=rules)
    assert report.updated == 2
    rows = by_uri(session)
    assert (rows[uri(1)].category, rows[uri(1)].display_order) == ("pathway", 42)
    assert links(session, rows[uri(1)].id) == ["accelerate"]
    assert rows[uri(4)].price == Decimal("80.00")
    assert run(session, items(make_event_type(1), make_event_type(4)), reclassify=True, rules=rules).updated == 0


def test_dry_run_records_no_run(session: Session) -> None:
    report = sync_event_types(
        session, items(make_event_type(0)), source="api", started_at=START, clock=clock(), dry_run=True
    )
    assert report.run_id is None and report.created == 1
    assert [change.action for change in report.changes] == ["create"]
    assert session.scalar(select(func.count()).select_from(SyncRun)) == 0
    assert session.scalar(select(func.count()).select_from(AuditEntry)) == 0


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"kind": "team"}, "kind: 'team' is not one of solo, group"),
        ({"color": "#1234567"}, "color: '#1234567' is not a #RRGGBB colour"),
        # what `import all` refuses of a session row, so that the backup of a synced catalogue restores
        ({"color": "red"}, "color: 'red' is not a #RRGGBB colour"),
        ({"color": "#fff"}, "color: '#fff' is not a #RRGGBB colour"),
        ({"duration": 1441}, "duration: 1441 is not between 1 and 1440 minutes"),
        ({"duration_options": [30, 1441]}, "duration_options: 1441 is not between 1 and 1440 minutes"),
        ({"duration_options": [0, 30]}, "duration_options: 0 is not between 1 and 1440 minutes"),
        ({"name": "x" * 301}, "name: 301 characters; at most 300"),
    ],
)
def test_items_that_cannot_be_stored_fail_the_run_naming_the_field(
    session: Session, change: dict[str, Any], message: str
) -> None:
    listing = items(make_event_type(0), {**make_event_type(1), **change})
    with pytest.raises(RemoteError, match=message) as remote:
        sync_event_types(session, listing, source="api", started_at=START, clock=clock())
    assert remote.value.exit_code == 9 and uri(1) in remote.value.message
    session.rollback()
    with pytest.raises(InvalidInput, match=message):
        sync_event_types(session, listing, source="file", started_at=START, clock=clock())
    session.rollback()
    assert session.scalar(select(func.count()).select_from(SessionType)) == 0


def test_failed_runs_and_status_listing(session: Session) -> None:
    run(session, items(make_event_type(0)))
    report = SyncReport(run_id=None, status="failed", dry_run=False, source="api", fetched=3, error="boom")
    later = START + dt.timedelta(hours=1)
    failed = record_run(session, report, started_at=later, finished_at=START)
    session.commit()
    runs = list_runs(session, limit=5, kind="event_types")
    assert [view["run_id"] for view in runs] == [failed, runs[1]["run_id"]]
    assert (runs[0]["status"], runs[0]["error"], runs[0]["fetched"]) == ("failed", "boom", 3)
    assert runs[1]["status"] == "succeeded"
    assert list(runs[1]) == list(RUN_COLUMNS)  # the columns of `calendly status`, in its order
    assert len(list_runs(session, limit=1)) == 1
    with pytest.raises(InvalidInput):
        list_runs(session, limit=0)
