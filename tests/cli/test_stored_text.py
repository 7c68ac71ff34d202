"""One rule for stored text at both doors (services.stored_text): a value typed into a command holding a
control character is refused as an imported cell holding it is, so every backup restores; both backends."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import REPO, Bapp

CLIENT = "ava.chen@client.example"
SESSION = "getting-started-free-intro"
START = "2031-01-06T10:00Z"


@pytest.fixture
def catalogue(bapp: Bapp) -> Bapp:
    assert bapp("calendly", "sync", "--from-file", str(REPO / "examples/calendly/event_types.json")).exit_code == 0
    assert bapp("import", "clients", str(REPO / "examples/clients.csv")).exit_code == 0
    return bapp


def _backup(bapp: Bapp) -> str:
    result = bapp("export", "all", "--format", "json")
    assert result.exit_code == 0, result.stderr
    return result.stdout


@pytest.mark.parametrize(
    ("command", "field", "character"),
    [
        (("clients", "add", "new@client.example", "--name", "Red \x1b[31mtext"), "name", "001B"),
        (("clients", "add", "new@client.example", "--company", "Co\x85op"), "company", "0085"),  # a C1 control
        (("sessions", "add", "--title", "Bell\x07", "--duration", "30", "--category", "free"), "title", "0007"),
        (("pathways", "update", "play", "--name", "Pl\x7fay"), "name", "007F"),
        (("skills", "add", "new-skill", "--name", "Back\x08space"), "name", "0008"),
        (
            (
                *("bookings", "create", "--client", CLIENT, "--session", SESSION, "--start", START),
                *("--answer", "What brings you to BuildAppsWith?=Agents\x1b[2J"),
                *("--answer", "Which best describes you?=Founder"),
            ),
            "custom_question_responses[0].answer",
            "001B",
        ),
    ],
)
def test_a_typed_value_holding_a_control_character_is_refused_naming_its_field_and_nothing_is_written(
    catalogue: Bapp, command: tuple[str, ...], field: str, character: str
) -> None:
    before = _backup(catalogue)
    result = catalogue(*command)
    assert result.exit_code == 6, result.stderr
    assert f"{field}: holds the control character U+{character}; text may hold tabs" in result.stderr
    assert "Traceback" not in result.stderr
    assert _backup(catalogue) == before


def test_the_rule_is_the_imports_a_cell_and_an_option_with_the_same_text_are_refused_alike(
    catalogue: Bapp, tmp_path: Path
) -> None:
    names = ("Tab\there", "Line\nbreak", "Carriage\rreturn", "Escape\x1b", "Nul\x00l", "Del\x7f", "C1\x9b")
    for number, name in enumerate(names):
        email = f"rule{number}@client.example"
        rows = tmp_path / "clients.csv"
        quoted = name.replace('"', '""')
        rows.write_text(f'email,name\n{email},"{quoted}"\n', encoding="utf-8")
        imported = catalogue("import", "clients", str(rows), "--dry-run")
        if "\x00" in name:  # argv cannot carry NUL; the import's refusal of it is enough
            assert imported.exit_code == 6
            continue
        typed = catalogue("clients", "add", email, "--name", name)
        assert (imported.exit_code == 0) == (typed.exit_code == 0), (name, imported.stderr, typed.stderr)
        assert typed.exit_code in (0, 6), typed.stderr


def test_text_with_tabs_and_line_breaks_typed_into_commands_restores_from_a_backup(
    catalogue: Bapp, tmp_path: Path
) -> None:
    assert catalogue("clients", "add", "lines@client.example", "--name", "Tab\there", "--company", "A\nB").exit_code == 0
    booked = catalogue(
        *("bookings", "create", "--client", CLIENT, "--session", SESSION, "--start", START, "--json"),
        *("--answer", "What brings you to BuildAppsWith?=Agents\nand tools"),
        *("--answer", "Which best describes you?=Founder"),
    )
    assert booked.exit_code == 0, booked.stderr
    backup = tmp_path / "backup.json"
    backup.write_text(_backup(catalogue), encoding="utf-8")
    restored = Bapp(f"sqlite:///{tmp_path / 'restored.db'}", tmp_path / "home")
    assert restored("db", "upgrade").exit_code == 0
    result = restored("import", "all", str(backup))
    assert result.exit_code == 0, result.stderr
    shown = restored("clients", "show", "lines@client.example", "--json").json()
    assert (shown["name"], shown["company"]) == ("Tab\there", "A\nB")
