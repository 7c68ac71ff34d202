"""docs/reliability.md names the tests behind each of R1–R9; every one of them must exist."""

from __future__ import annotations

import ast
import re

from tests.conftest import REPO


def test_every_ledger_entry_names_an_existing_test() -> None:
    text = (REPO / "docs" / "reliability.md").read_text(encoding="utf-8")
    sections = re.split(r"^## ", text, flags=re.MULTILINE)[1:]
    assert [section.split()[0] for section in sections] == ["R1", "R2", "R3", "R4", "R5", "R6", "R7", "R8", "R9"]
    functions_in: dict[str, set[str]] = {}  # 144 entries name 32 files: each is parsed once
    for section in sections:
        entries = re.findall(r"^- (tests/\S+\.py)::(test_\w+)$", section, flags=re.MULTILINE)
        assert entries, f"{section.split()[0]} names no test"
        for path, name in entries:
            if path not in functions_in:
                tree = ast.parse((REPO / path).read_text(encoding="utf-8"))
                functions_in[path] = {node.name for node in ast.walk(tree) if isinstance(node, ast.FunctionDef)}
            functions = functions_in[path]
            assert name in functions, f"{path}::{name} (ledger {section.split()[0]}) does not exist"
