"""docs/cli.md is generated from the commands' help and must match it (run `make docs` after a change)."""

from __future__ import annotations

from bapp_cli.cli import reference
from tests.conftest import REPO


def test_reference_is_current() -> None:
    generated = reference.render()
    on_disk = (REPO / "docs" / "cli.md").read_text(encoding="utf-8")
    assert on_disk == generated, "docs/cli.md is stale: run `make docs`"


def test_every_command_is_documented_with_a_summary_and_examples() -> None:
    leaves = [
        (path, command) for path, command, _ in reference.commands() if getattr(command, "commands", None) is None
    ]
    assert len(leaves) >= 50
    text = (REPO / "docs" / "cli.md").read_text(encoding="utf-8")
    for path, command in leaves:
        title = " ".join(["bapp", *path])
        assert f"## `{title}`" in text
        help_text = command.help or ""
        assert help_text.strip().splitlines()[0], f"{title} has no summary"
        assert "Examples:" in help_text, f"{title} has no Examples block"


# Commands that print no records: a message on stderr, a path, a signature header, a server; or a document
# whose own format --format names (export's data, a credential), never a listing of records.
WITHOUT_RECORD_FORMATS = {
    ("db", "upgrade"),
    ("db", "downgrade"),
    ("config", "init"),
    ("config", "set"),
    ("config", "unset"),
    ("config", "path"),
    ("badges", "issuer", "show"),
    ("calendly", "webhook", "sign"),
    ("calendly", "webhook", "serve"),
    ("calendly", "webhook", "unsubscribe"),
    ("export",),
    ("badges", "export"),
    ("badges", "status-list"),
}


def test_every_command_that_prints_records_takes_format_and_json() -> None:
    """CLI.md §2: every command that prints records takes --format/-f table|json|jsonl|csv|tsv and --json. A new
    command must take them, or be named above as printing none (`badges issuer init` printed JSON whatever
    was asked)."""
    from tests.cli.command_tree import leaf_commands

    for path, command in leaf_commands():
        options = {option for parameter in command.params for option in getattr(parameter, "opts", [])}
        if path in WITHOUT_RECORD_FORMATS:
            assert "--json" not in options, f"{path} takes --json: take it off the list above"
        else:
            assert {"--format", "-f", "--json"} <= options, f"bapp {' '.join(path)} has no --format/--json"
