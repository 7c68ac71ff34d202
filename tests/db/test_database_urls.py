"""A database URL reads the same on both doors a command opens: the plain DB-API connection (`sessions list`,
db.dbapi) and SQLAlchemy's engine (`clients add`, `db upgrade`, `db check`, db.engine.make_engine)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from bapp_cli.db.engine import make_engine
from bapp_cli.errors import ConfigError, quoted
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


def test_a_sqlite_url_naming_no_file_or_a_parameter_twice_is_exit_4_on_both_doors(tmp_path: Path) -> None:
    """`sqlite:///:memory:` and `sqlite:///` were exit 4 on the plain reads, but an engine's database that vanished with
    the command on the others ("no schema yet", exit 5; `db upgrade` exit 0 for nothing). `?timeout=1&timeout=2` was
    read by the plain reads (exit 0) and a tuple to SQLAlchemy: exit 4 quoting Python's TypeError."""
    database = tmp_path / "q.db"
    bapp = Bapp(f"sqlite:///{database}", tmp_path / "home")
    assert bapp("db", "upgrade").exit_code == 0
    commands = (("sessions", "list"), ("clients", "add", "q@example.com"), ("db", "check"), ("db", "upgrade"))
    for url, says in (
        ("sqlite:///:memory:", "a SQLite URL needs three slashes before the path of its file"),
        ("sqlite:///", "a SQLite URL needs three slashes before the path of its file"),
        ("sqlite:///?timeout=5", "a SQLite URL needs three slashes before the path of its file"),
        (f"sqlite:///{database}?timeout=1&timeout=2", "a query parameter the driver cannot take (timeout given twice)"),
        (f"sqlite:///{database}?uri=false&foo=1&foo=1", "cannot take (foo given twice)"),
    ):
        for command in commands:
            result = bapp("--database-url", url, *command)
            assert (result.exit_code, says in result.stderr) == (4, True), (url, command, result.stderr)
    assert bapp("sessions", "list").exit_code == 0 and bapp("db", "check").exit_code == 0


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)  # libpq's parameters
def test_a_postgresql_url_reaches_the_same_server_the_same_way_on_both_doors(bapp: Bapp) -> None:
    """The engine took SQLAlchemy's reading of the URL, the plain reads libpq's: `?sslmode=require&sslmode=disable`
    was exit 4 on the engine ("invalid sslmode value: "('require', 'disable')"") and the last one to libpq (exit 0);
    an empty `?host=` was dropped by SQLAlchemy (its server reached) where libpq takes it for its default socket
    (another server, or none: exit 5). Both doors now connect with libpq's reading; the password is never shown."""
    password = str(make_url(bapp.database_url).password)
    for number, (query, code) in enumerate(
        (("sslmode=require&sslmode=disable", 0), ("application_name=a&application_name=b", 0), ("host=", 5))
    ):
        url = f"{bapp.database_url}?{query}"
        for command in (("sessions", "list"), ("db", "check"), ("clients", "add", f"q{number}@example.com")):
            result = bapp("--database-url", url, *command)
            assert result.exit_code == code, (query, command, result.stderr)
            assert password not in result.stderr
    added = {client["email"] for client in json.loads(bapp("clients", "list", "--json").stdout)}
    assert added == {"q0@example.com", "q1@example.com"}  # not the `host=` one


def test_make_engine_refuses_a_backend_sqlalchemy_cannot_load_without_showing_the_url() -> None:
    # what its last `except` still catches (the settings refuse such URLs first): it said "a query parameter the driver
    # cannot take (Can't load plugin: sqlalchemy.dialects:nosuchdb)"
    with pytest.raises(ConfigError) as refused:
        make_engine("nosuchdb://bob:s3cretpw@localhost/db")
    assert (refused.value.message, refused.value.exit_code) == ("the database URL is not valid", 4)


def test_a_sqlite_paths_percent_escapes_are_read_alike_on_both_doors(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SQLAlchemy undoes a SQLite URL's %-escapes, bapp's file checks and plain reads did not: `sqlite:///p%25q.db` was
    the file p%q.db to `db upgrade` (made it, exit 0) and p%25q.db to every command after ("database file p%25q.db does
    not exist", exit 5); `file%3Ax.db?uri=true` was SQLite's URI of x.db past the `file:` check; `%3Amemory%3A` a
    database vanishing with the command. Each is now one reading: the file p%q.db; exit 4; exit 4."""
    bapp = Bapp("sqlite:///none.db", tmp_path / "home")  # SQLite URLs: no database fixture
    monkeypatch.chdir(tmp_path)
    url = "sqlite:///p%25q.db"
    for command in (("db", "upgrade"), ("sessions", "list"), ("clients", "add", "q@example.com"), ("db", "check")):
        result = bapp("--database-url", url, *command)
        assert result.exit_code == 0, (command, result.stderr)
    assert (tmp_path / "p%q.db").is_file() and not (tmp_path / "p%25q.db").exists()
    for url, says in (
        ("sqlite:///file%3Ax.db?uri=true", "(uri=true with a file: path)"),
        ("sqlite:///%3Amemory%3A", "a SQLite URL needs three slashes before the path of its file"),
    ):
        for command in (("db", "upgrade"), ("sessions", "list"), ("clients", "add", "q@example.com")):
            result = bapp("--database-url", url, *command)
            assert (result.exit_code, says in result.stderr) == (4, True), (url, command, result.stderr)
    assert sorted(path.name for path in tmp_path.glob("*.db")) == ["p%q.db"]


def test_a_postgresql_port_libpq_cannot_take_is_refused_by_config_set_and_the_settings_naming_it(
    tmp_path: Path,
) -> None:
    """`config set database_url postgresql://u@h:99999/db` was taken (exit 0), then every command was exit 4 "the
    database URL is not valid", naming nothing. The port is now refused where the setting is given: `config set` exit
    6, as for another bad URL, and the environment's exit 4, in the same words; the password is never shown, and
    the URLs that work (several hosts, IPv6, a socket's `?host=`, an empty port: libpq's default) are still taken."""
    bapp = Bapp("sqlite:///none.db", tmp_path / "home")
    config = tmp_path / "home" / "config.toml"
    for url, port in (
        ("postgresql://u@h:99999/db", "99999"),
        ("postgresql://u:s3:cr@t@h:0/db", "0"),  # a password holding : and @, or /
        ("postgresql://u:s3:c/r@h:0/db", "0"),
        ("postgres://u:s3cr@tpw@h1:5432,h2:65536/db?sslmode=disable", "65536"),
        ("postgresql+psycopg://u:s3cretpw@[::1]:http/db", "http"),
        ("postgresql://h:-5432", "-5432"),
        ("postgresql://h:" + "9" * 4400, "9" * 4400),  # past int()'s 4,300 digits: exit 1; echoed cut
    ):
        said = f"database URL: port {quoted(port)} is not a number from 1 to 65535"
        given = bapp("config", "set", "database_url", url)
        assert (given.exit_code, given.stderr.splitlines()[0]) == (6, f"Error: {said}"), (url, given.stderr)
        assert not config.exists() or url not in config.read_text()
        for command in (("sessions", "list"), ("clients", "add", "q@example.com"), ("db", "upgrade")):
            used = bapp(*command, env={"BAPP_DATABASE_URL": url})
            first = used.stderr.splitlines()[0]
            assert used.exit_code == 4 and first.startswith("Error: environment variable BAPP_DATABASE_URL"), first
            assert first.endswith(f"port {quoted(port)} is not a number from 1 to 65535"), (url, command, first)
        shown = bapp("config", "show", env={"BAPP_DATABASE_URL": url})  # shows every setting, warning of this one
        assert shown.exit_code == 0 and f"port {quoted(port)} is not a number" in shown.stderr, shown.stderr
        assert "s3" not in given.stderr + used.stderr + shown.stdout + shown.stderr
    for url in (
        "postgresql://u@h1:5432,h2:5433/db",
        "postgresql://u:p:w@[::1]:5432/db",
        "postgresql:///db?host=/run/postgresql",
        "postgresql://u:pw@h:/db",
        "postgresql://u:a%40b:c@h/db",  # a password holding @ is %-escaped: libpq reads `u:a@b:c@h` as host b, port c@h
        "postgresql://%2Frun%2Fpostgresql:5432/db",
        # libpq ends the user at the first @ (a later one in the query is the query's) and undoes a port's %-escapes:
        # both were refused, naming '99999' and '%35432', and both reach h on port 5432
        "postgresql://u:pw@h:5432?application_name=x@y:99999",
        "postgresql://u:pw@h:%35432/db",
    ):
        assert bapp("config", "set", "database_url", url).exit_code == 0, url


def test_a_database_url_the_driver_cannot_read_is_refused_naming_where_it_was_given(tmp_path: Path) -> None:
    """A URL whose host, %-escapes or `?…` options the driver cannot read (`[::1` unclosed, `?connect_timeout=abc`,
    SQLite's `?timeout=abc`) passed the settings and was refused as the database opened: "the database URL is not
    valid", hinting at --database-url / BAPP_DATABASE_URL, where the URL came from DATABASE_URL or the config file
    and neither was named. It is refused with the settings now, naming the variable or file, as a bad port is; `config
    set` refuses it (exit 6) and `config show` warns of it. The password is never shown."""
    bapp = Bapp("sqlite:///none.db", tmp_path / "home")
    config = tmp_path / "home" / "config.toml"
    config.parent.mkdir()
    for url, says in (
        ("postgresql://app:s3cretpw@[::1/bapp", "the database URL is not valid"),
        ("postgresql://app:s3cretpw@h:5432/bapp?connect_timeout=abc", "the database URL is not valid"),
        ("postgresql://app:s3cretpw@h:5432/bapp?%zz=1", "the database URL is not valid"),
        ("postgresql://u:s3cretpw@b:c@h/db", "the database URL is not valid"),  # to libpq: password s3cretpw, port c@h
        (f"sqlite:///{tmp_path}/q.db?timeout=abc", "a query parameter the driver cannot take (timeout=abc)"),
    ):
        config.write_text(f"database_url = {json.dumps(url)}\n")
        for where, environment in (
            (f"config file {config}, key database_url", {"BAPP_DATABASE_URL": None, "DATABASE_URL": None}),
            ("environment variable DATABASE_URL, key database_url", {"BAPP_DATABASE_URL": None, "DATABASE_URL": url}),
        ):
            for command in (("sessions", "list"), ("clients", "add", "q@example.com"), ("db", "upgrade")):
                used = bapp("--config", str(config), *command, env=environment)
                first = used.stderr.splitlines()[0]
                assert used.exit_code == 4 and first.startswith(f"Error: {where}: "), (url, command, used.stderr)
                assert says in first and "s3cretpw" not in used.stderr, (url, command, used.stderr)
        shown = bapp("--config", str(config), "config", "show", env={"BAPP_DATABASE_URL": None})
        assert shown.exit_code == 0 and says in shown.stderr and "s3cretpw" not in shown.stdout + shown.stderr
        config.unlink()
        given = bapp("config", "set", "database_url", url)
        assert given.exit_code == 6 and says in given.stderr and "s3cretpw" not in given.stderr, given.stderr
    assert not list(tmp_path.glob("q.db*"))
