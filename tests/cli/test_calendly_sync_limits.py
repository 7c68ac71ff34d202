"""A sync stores only what `import all` reads back of a session type, so the backup of a synced catalogue restores.

Before, an event type coloured `red` (not `#RRGGBB`) or lasting 1441 minutes (a session type lasts at most a day)
was stored by `calendly sync` (exit 0) and written by `export all`, and `import all` then refused its row (exit 6).
Now the sync refuses such a listing, naming the type and its field, as it does a name too long to store (exit 6
from a file, 9 from Calendly's API), and stores nothing. Runs on SQLite and PostgreSQL.
"""

# ruff: noqa: F811  (pytest fixtures imported from calendly_fixtures are parameters by design)

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.cli.calendly_fixtures import (
    cbapp,  # noqa: F401 (fixture)
    fake,  # noqa: F401 (fixture)
    fake_server,  # noqa: F401 (fixture)
)
from tests.conftest import Bapp, restore_backup
from tests.fakes.calendly_server import FakeCalendly, make_event_type


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        ({"color": "red"}, "color: 'red' is not a #RRGGBB colour"),
        ({"duration": 1441}, "duration: 1441 is not between 1 and 1440 minutes"),
        ({"duration_options": [60, 1441]}, "duration_options: 1441 is not between 1 and 1440 minutes"),
    ],
)
def test_a_type_the_import_would_refuse_fails_the_sync_naming_it(
    cbapp: Bapp, fake: FakeCalendly, tmp_path: Path, change: dict[str, Any], problem: str
) -> None:
    item = make_event_type(1) | change
    listing = tmp_path / "event_types.json"
    listing.write_text(json.dumps([make_event_type(0), item]))
    from_file = cbapp("calendly", "sync", "--from-file", str(listing))
    assert from_file.exit_code == 6, from_file.stderr
    assert f"invalid event type {item['uri']}: {problem}" in from_file.stderr
    fake.set_event_types([make_event_type(0), item])
    from_api = cbapp("calendly", "sync")
    assert from_api.exit_code == 9 and problem in from_api.stderr, from_api.stderr
    assert cbapp("sessions", "list", "--all", "--json").json() == []  # neither stored the other type


def test_a_type_at_the_limits_syncs_and_its_backup_restores(
    cbapp: Bapp, second_database_url: str, tmp_path: Path
) -> None:
    item = make_event_type(0) | {"color": "#FFF200", "duration": 1440, "duration_options": [1, 1440]}
    listing = tmp_path / "event_types.json"
    listing.write_text(json.dumps([item]))
    assert cbapp("calendly", "sync", "--from-file", str(listing)).exit_code == 0

    restored, _ = restore_backup(cbapp, second_database_url, tmp_path, "--json")
    [row] = [json.loads(line) for line in restored("export", "sessions", "--format", "jsonl").stdout.splitlines()]
    assert (row["color"], row["duration_minutes"], row["duration_options"]) == ("#FFF200", 1440, [1, 1440])
