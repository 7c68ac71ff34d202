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
