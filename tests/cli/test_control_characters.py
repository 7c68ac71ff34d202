"""Every door that stores text refuses control characters other than tab and line breaks, as `import` does.

Before, `clients add --name $'a\\x1b[31m'` (and builders, pathways, skills, sessions, notes, booking names)
stored the text; `export all` then wrote a backup that `import all` refused (the row's control character), so
a database built at the command line did not restore. Runs on SQLite and PostgreSQL.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import Bapp

ESC = "x\x1b[31my\x07"

DOORS = [
    ("clients", "add", "c1@example.com", "--name", ESC),
    ("clients", "add", "c2@example.com", "--company", ESC),
    ("builders", "add", "b1@example.com", "--name", ESC),
    ("pathways", "add", "new-path", "--name", ESC),
    ("pathways", "add", "new-path", "--name", "New", "--description", ESC),
    ("skills", "add", "new-skill", "--name", ESC),
    ("skills", "add", "new-skill", "--name", "New", "--domain", ESC),
    ("skills", "add", "new-skill", "--name", "New", "--description", ESC),
    ("sessions", "add", "--duration", "30", "--title", ESC),
    ("sessions", "add", "--title", "New", "--duration", "30", "--description", ESC),
]


@pytest.mark.parametrize("command", DOORS, ids=lambda command: "-".join(command[:2]) + command[-2])
def test_a_control_character_is_refused_naming_the_field_and_nothing_is_stored(
    bapp: Bapp, command: tuple[str, ...]
) -> None:
    before = bapp("export", "all", "--format", "json")
    result = bapp(*command)
    assert result.exit_code == 6, result.stderr
    field = command[-2].removeprefix("--")
    assert f"{field}: holds the control character U+001B" in result.stderr
    assert bapp("export", "all", "--format", "json").stdout == before.stdout


def test_tabs_and_line_breaks_are_kept_and_what_the_commands_store_restores(
    bapp: Bapp, tmp_path: Path, empty_database_url: str
) -> None:
    assert bapp("clients", "add", "t@example.com", "--name", "Tab\there\nand a line").exit_code == 0
    assert bapp("skills", "add", "s-one", "--name", "S", "--description", "one\r\ntwo").exit_code == 0
    backup = tmp_path / "backup.json"
    assert bapp("export", "all", "-o", str(backup)).exit_code == 0
    restored = Bapp(empty_database_url, tmp_path / "restored")
    assert restored("db", "upgrade").exit_code == 0
    result = restored("import", "all", str(backup))
    assert result.exit_code == 0, result.stderr
    assert restored("clients", "show", "t@example.com", "--json").json()["name"] == "Tab\there\nand a line"
