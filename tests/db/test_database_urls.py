"""A database URL reads the same on both doors a command opens: the plain DB-API connection (`sessions list`,
db.dbapi) and SQLAlchemy's engine (`clients add`, `db upgrade`, `db check`, db.engine.make_engine)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import Bapp


@pytest.mark.parametrize("query", ["uri=true", "uri=1", "uri=yes&timeout=5"])
def test_a_sqlite_file_uri_is_refused_on_both_doors_not_opened_as_another_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, query: str
) -> None:
    """`sqlite:///file:x.db?uri=true`: the engine handed SQLite the URI `file:x.db`, which it opens as x.db, where
    the plain reads and bapp's file checks took the path `file:x.db`: `db upgrade` made x.db (exit 0), then every
    command said "database file file:x.db does not exist" (exit 5). It is exit 4 on both doors, naming it; no file
    is made. And a relative `file:z.db` without uri=true was the file `file:z.db` to the engine, but z.db to the plain
    reads (this SQLite is built to read a `file:` name as a URI always): "no schema yet" after `db upgrade`."""
    bapp = Bapp("sqlite:///none.db", tmp_path / "home")  # SQLite URLs: no database fixture
    monkeypatch.chdir(tmp_path)
    url = f"sqlite:///file:x.db?{query}"
    for command in (("db", "upgrade"), ("sessions", "list"), ("clients", "add", "q@example.com"), ("db", "check")):
        result = bapp("--database-url", url, *command)
        assert result.exit_code == 4, (command, result.stderr)
        assert result.stderr.startswith(
            "Error: the database URL is not valid: a query parameter the driver cannot take (uri="
        ), result.stderr
        assert "with a file: path)" in result.stderr
    assert sorted(path.name for path in tmp_path.iterdir() if "x.db" in path.name) == []
    # a path that is no `file:` URI is read alike with or without uri=true; and `file:` without it is a path
    assert bapp("--database-url", "sqlite:///y.db?uri=true", "db", "upgrade").exit_code == 0
    assert bapp("--database-url", "sqlite:///y.db?uri=true", "sessions", "list").exit_code == 0
    assert bapp("--database-url", "sqlite:///file:z.db?uri=false", "db", "upgrade").exit_code == 0
    assert (tmp_path / "file:z.db").is_file() and not (tmp_path / "z.db").exists()
    assert bapp("--database-url", "sqlite:///file:z.db?uri=false", "sessions", "list").exit_code == 0
