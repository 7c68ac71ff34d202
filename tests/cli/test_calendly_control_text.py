"""Text from Calendly is cleaned of control characters as it is parsed, at every door, and the run says so.

Before, an event type Calendly named "Intro \\x1b[5mblink" was stored as sent: `export all` wrote it and
`import all` refused the row (its control character), so the backup did not restore; a NUL ("\\u0000") was
refused by PostgreSQL at the insert. The same held for invitee names, answers and cancellation reasons from a
pull, a saved listing or a webhook body. Likewise a text longer than an import reads of it is cut at the door, so
the backup restores. Runs on SQLite and PostgreSQL.
"""

# ruff: noqa: F811  (pytest fixtures imported from calendly_fixtures are parameters by design)

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

from tests.cli.calendly_fixtures import (
    catalogue,
    cbapp,  # noqa: F401 (fixture)
    fake,  # noqa: F401 (fixture)
    fake_server,  # noqa: F401 (fixture)
)
from tests.cli.webhook_fixtures import KEY, delivery, signed
from tests.conftest import Bapp, restore_backup
from tests.fakes.calendly_server import API_ORIGIN, FakeCalendly, make_event_type, make_invitee, make_scheduled_event

# ESC (a terminal escape), NUL (PostgreSQL stores no NUL), DEL, a C1 control and half a surrogate pair
DIRTY = "Intro \x1b[5mblink\x00\x7f\x85\ud800"
CLEAN = "Intro [5mblink"
WARNING = "Warning: removed control characters from the text Calendly sent"


def dirty_type(i: int) -> dict[str, Any]:
    item = make_event_type(i, name=DIRTY)
    item["description_plain"] = f"Line one\nline\x00 two\x1b[0m\t{i}"
    item["custom_questions"][2]["name"] = "Experience\x07 with AI"
    item["custom_questions"][2]["answer_choices"] = ["None", "So\x9bme", "Daily user"]
    return item


def dirty_booking(i: int, type_index: int) -> tuple[dict[str, Any], dict[str, Any]]:
    start = dt.datetime.now(dt.UTC).replace(microsecond=0) + dt.timedelta(days=3 + i)
    event = make_scheduled_event(900 + i, f"{API_ORIGIN}/event_types/ET{type_index:08d}", start)
    event["name"] = "Session\x00"
    answers = [{"question": "Company name", "answer": "Ac\x1b[1mme\x00", "position": 0}]
    invitee = make_invitee(event["uri"], 900 + i, email=f"dirty{i}@client.example", questions_and_answers=answers)
    invitee["name"] = "Ada\x1b]0;pwned\x07 Love\ud800lace"
    return event, invitee


def warnings_of(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith(WARNING)]


def session_texts(app: Bapp) -> dict[str, tuple[str, str, list[Any]]]:
    rows = app("sessions", "list", "--all", "--json").json()
    return {row["calendly_uri"]: (row["title"], row["description"], row["custom_questions"]) for row in rows}


def booking_texts(app: Bapp) -> dict[str, tuple[str, list[tuple[str, str]]]]:
    rows = app("bookings", "list", "--json").json()
    return {
        row["client"]: (row["client_name"], [(qa["question"], qa["answer"]) for qa in row["custom_question_responses"]])
        for row in rows
    }


def assert_clean_type(app: Bapp, i: int) -> None:
    title, description, questions = session_texts(app)[f"{API_ORIGIN}/event_types/ET{i:08d}"]
    assert (title, description) == (CLEAN, f"Line one\nline two[0m\t{i}")
    question = questions[2]
    assert (question["name"], question["answer_choices"]) == ("Experience with AI", ["None", "Some", "Daily user"])


def test_what_sync_pull_and_a_webhook_bring_is_stored_clean_and_the_backup_restores(
    cbapp: Bapp, fake: FakeCalendly, second_database_url: str, tmp_path: Path
) -> None:
    fake.set_event_types([dirty_type(0), *catalogue()[1:]])
    synced = cbapp("calendly", "sync")
    assert synced.exit_code == 0, synced.stderr
    # said once, naming the event type (its cleaned name), never the raw control characters
    assert warnings_of(synced.stderr) == [
        f"{WARNING} (text may hold tabs and line breaks, no other control characters) in 1 item(s): "
        f'{API_ORIGIN}/event_types/ET00000000 "{CLEAN}"'
    ]
    assert_clean_type(cbapp, 0)

    event, invitee = dirty_booking(1, type_index=1)
    fake.add_scheduled_event(event, [invitee])
    pulled = cbapp("calendly", "pull-bookings", "--json")
    assert pulled.exit_code == 0, pulled.stderr
    assert pulled.json()["created"] == 1
    [warning] = warnings_of(pulled.stderr)
    assert f'{invitee["uri"]} "Ada]0;pwned Lovelace"' in warning
    assert booking_texts(cbapp)["dirty1@client.example"] == ("Ada]0;pwned Lovelace", [("Company name", "Ac[1mme")])

    cbapp.env["CALENDLY_WEBHOOK_SIGNING_KEY"] = KEY
    for j, type_index, exit_code in ((2, 2, 0), (3, 99, 3)):  # type 99 is unknown: that delivery is parked
        document = json.loads(delivery(j, type_index=type_index))
        document["payload"]["name"] = "Bea\x1b[2J Rossi"
        document["payload"]["questions_and_answers"] = [{"question": "Company name", "answer": "RAW", "position": 0}]
        body = json.dumps(document).encode().replace(b'"RAW"', b'"Bo\xc2\x85ld\x7f"')  # raw C1 and DEL bytes
        (tmp_path / "body.json").write_bytes(body)
        applied = cbapp("calendly", "webhook", "apply", str(tmp_path / "body.json"), "--signature", signed(body))
        assert applied.exit_code == exit_code, applied.stderr
        assert len(warnings_of(applied.stderr)) == 1 and "Bea[2J Rossi" in applied.stderr
    assert booking_texts(cbapp)["client2@example.com"] == ("Bea[2J Rossi", [("Company name", "Bold")])

    restored, result = restore_backup(cbapp, second_database_url, tmp_path, "--json")
    assert result.json()["rejected"] == 0
    # the parked delivery too: its raw C1 and DEL bytes are kept as \u escapes, the same JSON
    assert len(restored("calendly", "webhook", "list", "--pending", "--json").json()) == 1
    assert_clean_type(restored, 0)
    assert booking_texts(restored) == booking_texts(cbapp)


def test_saved_listings_are_cleaned_as_the_api_is(bapp: Bapp, tmp_path: Path) -> None:
    types = tmp_path / "event_types.json"
    types.write_text(json.dumps({"collection": [dirty_type(0), *catalogue(3)[1:]], "pagination": {}}))
    synced = bapp("calendly", "sync", "--from-file", str(types))
    assert synced.exit_code == 0, synced.stderr
    assert len(warnings_of(synced.stderr)) == 1
    assert_clean_type(bapp, 0)

    event, invitee = dirty_booking(1, type_index=1)
    listing = tmp_path / "scheduled_events.json"
    listing.write_text(json.dumps([{**event, "invitees": [invitee]}]))
    pulled = bapp("calendly", "pull-bookings", "--from-file", str(listing), "--json")
    assert pulled.exit_code == 0, pulled.stderr
    [warning] = warnings_of(pulled.stderr)
    assert invitee["uri"] in warning
    assert booking_texts(bapp)["dirty1@client.example"] == ("Ada]0;pwned Lovelace", [("Company name", "Ac[1mme")])


def test_a_clean_run_warns_of_nothing(bapp: Bapp, tmp_path: Path) -> None:
    # tabs and line breaks are text; escaped quotes, slashes and a "\\u001b" that is no escape are no alarm
    item = make_event_type(0, name='Say "hi" \\u001b \u00e9 \U0001f680')
    item["description_plain"] = "one\ttwo\r\nthree"
    listing = tmp_path / "event_types.json"
    listing.write_text(json.dumps([item]))
    synced = bapp("calendly", "sync", "--from-file", str(listing))
    assert synced.exit_code == 0 and synced.stderr == ""
    [(title, description, _)] = session_texts(bapp).values()
    assert (title, description) == ('Say "hi" \\u001b \u00e9 \U0001f680', "one\ttwo\r\nthree")


def test_a_synced_text_longer_than_an_import_reads_is_cut_so_the_backup_restores(
    cbapp: Bapp, fake: FakeCalendly, second_database_url: str, tmp_path: Path
) -> None:
    # stored whole, a 100,001-character description (or a 1001-character question, type or choice) was in the
    # backup `export all` wrote, and `import all` refused the row (exit 6: "String should have at most 100000
    # characters"), as it did a question a blank name
    item = make_event_type(0)
    item["description_plain"] = "d" * 100_001
    item["custom_questions"][0] |= {"name": "Q" * 1001, "type": "t" * 1001}
    item["custom_questions"][2]["answer_choices"] = ["None", "C" * 1001]
    item["custom_questions"][4]["name"] = " "
    listing = tmp_path / "event_types.json"
    listing.write_text(json.dumps([item]))
    assert cbapp("calendly", "sync", "--from-file", str(listing)).exit_code == 0
    fake.set_event_types([item])
    again = cbapp("calendly", "sync", "--json")  # the API's door cuts them alike: nothing to change
    assert again.exit_code == 0 and (again.json()["unchanged"], again.json()["updated"]) == (1, 0), again.stderr

    restored, _ = restore_backup(cbapp, second_database_url, tmp_path, "--json")
    [(_, description, questions)] = session_texts(restored).values()
    assert description == "d" * 100_000
    assert (questions[0]["name"], questions[0]["type"]) == ("Q" * 1000, "t" * 1000)
    assert (questions[2]["answer_choices"], questions[4]["name"]) == (["None", "C" * 1000], "")  # read trimmed
