"""Issue 15, part B: terminal safety, configuration, database states and URL errors (R9 in docs/reliability.md).

Each test drives the real `bapp` (in-process, or as a process on a pseudo-terminal where what reaches a
terminal is the point) and would fail if its fix were undone.
"""

from __future__ import annotations

import contextlib
import json
import os
import pty
import re
import select
import shutil
import socket
import stat
import subprocess
import sys
import time
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
from sqlalchemy import text

from bapp_cli.db.engine import make_engine
from tests.cli.calendly_fixtures import FAST_RETRIES, TOKEN, USER, catalogue, snapshot
from tests.conftest import REPO, Bapp, Result
from tests.fakes.calendly_server import FakeCalendly, make_event_type

EXAMPLE_LISTING = REPO / "examples" / "calendly" / "event_types.json"
MARKUP = "[bold red]Boom[/bold red] [link=http://evil.example]click[/link]"
# ESC-driven colour, an OSC-8 hyperlink, an 8-bit CSI (C1) and a right-to-left override
HOSTILE = f"{MARKUP} \x1b[31mred\x1b]8;;http://evil.example\x1b\\x \x9b2J \u202eevil"


def run_on_terminal(
    app: Bapp,
    *args: str,
    stdout_tty: bool = True,
    stderr_tty: bool = True,
    env: dict[str, str] | None = None,
    stdin: Path | None = None,
    typed: bytes | None = None,
    python: tuple[str, ...] = ("-m", "bapp_cli"),
) -> Result:
    """Run bapp as a process with stdout and/or stderr on pseudo-terminals (the others piped), stdin read from
    `stdin` (else empty) or, with `typed`, a terminal of its own on which that was typed before it started (a
    line a read), then the end of input; `python`: what the interpreter runs, given `args` after it."""
    terminals: dict[str, tuple[int, int]] = {}
    if stdout_tty:
        terminals["stdout"] = pty.openpty()
    if stderr_tty:
        terminals["stderr"] = pty.openpty()
    keyboard = None
    if typed is not None:  # then Ctrl-D: a read past the answers typed (one asked out of turn) ends, never waits
        keyboard = pty.openpty()
        os.write(keyboard[0], typed + b"\x04")
    given = stdin.open("rb") if stdin else None
    process = subprocess.Popen(
        [sys.executable, *python, *args],
        stdout=terminals["stdout"][1] if stdout_tty else subprocess.PIPE,
        stderr=terminals["stderr"][1] if stderr_tty else subprocess.PIPE,
        stdin=keyboard[1] if keyboard else given or subprocess.DEVNULL,
        env=app._environment({"COLUMNS": "250", "TERM": "xterm", **(env or {})}),
        cwd=REPO,
    )
    for _, follower in [*terminals.values(), *([keyboard] if keyboard else [])]:
        os.close(follower)
    if given is not None:
        given.close()  # the child has its own
    captured: dict[str, bytearray] = {name: bytearray() for name in ("stdout", "stderr")}
    open_fds = {leader: name for name, (leader, _) in terminals.items()}
    while open_fds:
        ready, _, _ = select.select(list(open_fds), [], [], 60)
        if not ready:
            break
        for fd in ready:
            try:
                chunk = os.read(fd, 65536)
            except OSError:
                chunk = b""
            if chunk:
                captured[open_fds[fd]] += chunk
            else:
                del open_fds[fd]
    piped_out, piped_err = process.communicate(timeout=60)
    for leader, _ in [*terminals.values(), *([keyboard] if keyboard else [])]:
        os.close(leader)
    if not stdout_tty:
        captured["stdout"] += piped_out
    if not stderr_tty:
        captured["stderr"] += piped_err
    return Result(process.returncode, captured["stdout"].decode(), captured["stderr"].decode())


END_OF_COMMAND = "<<end of a command: exit "
# One process on the terminals runs `bapp`'s entry point for each command in turn (each with its own console, as
# main() builds one a run), marking on both streams where each ended and how: one process start (~1 CPU s) for all.
IN_TURN = (
    "import json, sys\n"
    "from bapp_cli.cli.launcher import main\n"
    "for args in json.loads(sys.argv[1]):\n"
    "    sys.argv = ['bapp', *args]\n"
    "    try:\n        main()\n    except SystemExit as done:\n        code = done.code or 0\n"
    f"    for stream in (sys.stdout, sys.stderr):\n        stream.write(f'\\n{END_OF_COMMAND}{{code}}>>\\n')\n"
    "        stream.flush()\n"
)


def run_in_turn_on_terminal(
    app: Bapp,
    commands: list[tuple[str, ...]],
    *,
    stdout_tty: bool = True,
    env: dict[str, str] | None = None,
    typed: bytes | None = None,
) -> list[Result]:
    """What each of `commands` wrote on the terminals, run in turn in one process (see IN_TURN), with its exit code
    (the marks and their line breaks taken out: each command's output exactly); `typed`: as run_on_terminal's."""
    screen = run_on_terminal(
        app, json.dumps(commands), stdout_tty=stdout_tty, env=env, typed=typed, python=("-c", IN_TURN)
    )
    assert screen.exit_code == 0, screen.stderr
    mark = r"\r?\n" + re.escape(END_OF_COMMAND) + r"(\d+)>>\r?\n"
    outputs = [re.split(mark, stream) for stream in (screen.stdout, screen.stderr)]
    stdouts, stderrs = ([part for n, part in enumerate(parts[:-1]) if n % 2 == 0] for parts in outputs)
    codes = [int(code) for code in outputs[0][1::2]]
    assert codes == [int(code) for code in outputs[1][1::2]] and len(codes) == len(commands), screen
    return [Result(code, out, err) for code, out, err in zip(codes, stdouts, stderrs, strict=True)]


def store_hostile_client(database_url: str) -> None:
    """A client whose name carries markup and control characters, as an older import or a sync could store."""
    from sqlalchemy.orm import Session

    from bapp_cli.db.models import ClientProfile, User

    engine = make_engine(database_url)
    try:
        with Session(engine) as session:
            user = User(email="evil@client.example", name=HOSTILE)
            session.add(user)
            session.flush()
            session.add(ClientProfile(user_id=user.id))
            session.commit()
    finally:
        engine.dispose()


# -- item 8: one place where data meets the terminal -------------------------------------------------


def test_item8_markup_and_control_characters_in_data_are_shown_literally_in_tables(bapp: Bapp) -> None:
    store_hostile_client(bapp.database_url)
    commands = [
        ("clients", "list"),
        ("clients", "show", "evil@client.example"),
        ("progress", "show", "evil@client.example"),  # a Rich tree whose title is a Text built from the name
    ]
    for command, screen in zip(commands, run_in_turn_on_terminal(bapp, commands), strict=True):
        assert screen.exit_code == 0, (command, screen.stderr)
        assert "[bold red]Boom[/bold red]" in screen.stdout  # markup shown as typed, not applied
        assert "[link=http://evil.example]click[/link]" in screen.stdout
        assert "\x1b]8;" not in screen.stdout  # no OSC-8 hyperlink reaches the terminal
        assert "\x1b[31mred" not in screen.stdout and "\x9b" not in screen.stdout and "\u202e" not in screen.stdout
        assert "␛[31mred" in screen.stdout  # the ESC is made visible instead
        assert "\x1b[1m" in screen.stdout  # bapp's own styling still works


def test_item8_delimited_and_json_output_are_safe_on_a_terminal_and_exact_in_a_pipe(bapp: Bapp) -> None:
    store_hostile_client(bapp.database_url)
    shown, as_json = run_in_turn_on_terminal(
        bapp, [("clients", "list", "--format", "tsv"), ("clients", "list", "--json")]
    )
    assert "\x1b[31m" not in shown.stdout and "␛[31mred" in shown.stdout
    assert "\x9b" not in as_json.stdout and "\u202e" not in as_json.stdout
    document = json.loads(as_json.stdout.replace("\r\n", "\n"))
    assert document[0]["name"] == HOSTILE  # escaped, not altered: the same JSON value
    piped = bapp("clients", "list", "--format", "tsv")
    assert HOSTILE.replace("\\", "\\") in piped.stdout  # a machine gets the stored bytes


def test_item8_a_calendly_event_name_cannot_style_or_link_the_session_table(bapp: Bapp, tmp_path: Path) -> None:
    listing = tmp_path / "listing.json"
    listing.write_text(json.dumps([make_event_type(0, name=f"Intro {MARKUP} \x1b[5mblink")]))
    assert bapp("calendly", "sync", "--from-file", str(listing)).exit_code == 0
    screen = run_on_terminal(bapp, "sessions", "list")
    assert screen.exit_code == 0, screen.stderr
    assert "[bold red]Boom[/bold red]" in screen.stdout and "\x1b]8;" not in screen.stdout
    # the ESC never reaches the database: removed as the listing is read (test_calendly_control_text)
    assert "\x1b[5m" not in screen.stdout and "␛" not in screen.stdout and "[5mblink" in screen.stdout


def test_a_stored_pathway_colour_that_is_a_rich_style_is_not_obeyed_in_any_table_or_tree(bapp: Bapp) -> None:
    """A pathway's colour went into Rich styles as stored: written by raw SQL or another program as `link x`
    (it fits PostgreSQL's seven characters), every table and tree that colours the pathway made its name an
    OSC-8 hyperlink; `blink` made it blink. Only a colour is taken now; the name keeps its bold."""
    assert bapp("clients", "add", "ada@client.example", "--name", "Ada").exit_code == 0
    assert bapp("clients", "enroll", "ada@client.example", "accelerate").exit_code == 0
    engine = make_engine(bapp.database_url)
    try:
        with engine.begin() as connection:
            connection.execute(text("UPDATE pathways SET color = 'link x' WHERE slug = 'accelerate'"))
            connection.execute(text("UPDATE pathways SET color = 'blink' WHERE slug = 'pivot'"))
    finally:
        engine.dispose()
    commands = [
        ("reports", "bookings-by-pathway"),
        ("reports", "pathway-analytics"),
        ("reports", "client-progress"),
        ("pathways", "show", "accelerate"),
        ("pathways", "list"),
        ("progress", "show", "ada@client.example"),
        ("pathways", "show", "pivot"),
    ]
    screens = run_in_turn_on_terminal(bapp, commands)
    for command, screen in zip(commands, screens, strict=True):
        assert screen.exit_code == 0, (command, screen.stderr)
        assert "\x1b]8;" not in screen.stdout, command  # no hyperlink
        assert "\x1b[5m" not in screen.stdout and ";5m" not in screen.stdout, command  # nothing blinks
        assert "\x1b[1m" in screen.stdout, command  # bapp's own styling still works
    assert "Pivot" in screens[-1].stdout  # the blinking pathway's tree is drawn, its name kept


def test_controls_that_rich_text_drops_are_shown_in_trees_and_report_tables(bapp: Bapp) -> None:
    """Rich's Text() drops BEL, BS, VT, FF and CR from the string it is given, before bapp's console could make
    them visible: `pathways show`'s tree and the reports' pathway cells (all built as Texts) showed a name stored
    with them (raw SQL, an older bapp) as if it had none. They show as their control pictures now."""
    stored = "Acc\x07el\x08er\x0bat\x0ce\rX"
    assert bapp("clients", "add", "ada@client.example", "--name", "Ada").exit_code == 0
    assert bapp("clients", "enroll", "ada@client.example", "accelerate").exit_code == 0
    engine = make_engine(bapp.database_url)
    try:
        with engine.begin() as connection:
            connection.execute(text("UPDATE pathways SET name = :name WHERE slug = 'accelerate'"), {"name": stored})
    finally:
        engine.dispose()
    for command in (
        ("pathways", "show", "accelerate"),
        ("reports", "pathway-analytics"),
        ("reports", "bookings-by-pathway"),
        ("reports", "client-progress"),
        ("progress", "show", "ada@client.example"),
    ):
        result = bapp(*command, "--format", "table", env={"COLUMNS": "250"})
        assert result.exit_code == 0, (command, result.stderr)
        assert "Acc␇el␈er␋at␌e␍X" in result.stdout, command
    assert bapp("pathways", "show", "accelerate", "--json").stdout.count(json.dumps(stored)[1:-1]) == 1  # as stored


def test_item8_errors_that_echo_input_make_control_characters_visible(bapp: Bapp, tmp_path: Path) -> None:
    named = tmp_path / "\x1b[31mred\x07.toml"
    result = bapp("--config", str(named), "clients", "list")
    assert result.exit_code == 4
    assert "\x1b" not in result.stderr and "\x07" not in result.stderr
    assert "␛[31mred␇.toml" in result.stderr


def test_item8_safe_console_keeps_styles_in_place_when_it_shows_controls() -> None:
    import io

    from rich.text import Text

    from bapp_cli.cli.terminal import make_console, visible

    assert visible("a\x1bb\tc\nd\x7f\x85\u202e") == "a␛b\tc\nd␡\ufffd\ufffd"
    buffer = io.StringIO()
    console = make_console(buffer, no_color=False, width=80)
    console.print(Text.assemble(("ok ", "green"), ("\x1b[2Jwiped", "bold")), "[red]x[/red]")
    written = buffer.getvalue()
    assert "\x1b[2J" not in written and "␛[2Jwiped" in written and "[red]x[/red]" in written


def test_item8_no_command_styles_text_with_markup_strings() -> None:
    """Consoles have markup off (data must never be parsed as markup), so a `"[dim]…[/dim]"` written by a
    command would print its brackets. Styling goes through Text / style=; this keeps it that way."""
    import re

    markup = re.compile(
        r"""["']\[/?(bold|dim|italic|underline|red|green|yellow|cyan|blue|magenta|link)[]= ]|\[/\]|f"\[\{"""
    )
    offenders = []
    for module in sorted((REPO / "src" / "bapp_cli" / "cli").glob("*.py")):
        for number, line in enumerate(module.read_text(encoding="utf-8").splitlines(), 1):
            if markup.search(line) and not line.lstrip().startswith("#") and module.name != "terminal.py":
                offenders.append(f"{module.name}:{number}: {line.strip()}")
    assert offenders == []


# -- item 9: a named config file must exist ---------------------------------------------------------


def test_item9_a_config_file_named_with_config_that_does_not_exist_is_exit_4(bapp: Bapp, tmp_path: Path) -> None:
    missing = tmp_path / "nope.toml"
    result = bapp("--config", str(missing), "clients", "list")
    assert result.exit_code == 4 and result.stdout == ""
    assert f"config file {missing} (--config) does not exist" in result.stderr
    assert bapp("--config", str(tmp_path), "clients", "list").exit_code == 4  # a directory
    assert bapp("--config", os.devnull, "clients", "list").exit_code == 0  # /dev/null: "no config"
    created = bapp("--config", str(missing), "config", "init", "--timezone", "Europe/London")
    assert created.exit_code == 0 and missing.exists()
    assert bapp("--config", str(missing), "clients", "list").exit_code == 0


def test_r9_environment_values_bapp_reads_directly_are_checked(bapp: Bapp) -> None:
    for columns in ("abc", "-3", "99999999999999999999", ""):
        table = bapp("pathways", "list", "--format", "table", env={"COLUMNS": columns})
        assert table.exit_code == 0 and "accelerate" in table.stdout, table.stderr
    timeout = bapp(
        "--database-url", "postgresql://app@127.0.0.1:1/bapp", "pathways", "list", env={"BAPP_CONNECT_TIMEOUT": "abc"}
    )
    assert (
        timeout.exit_code == 4
        and "environment variable BAPP_CONNECT_TIMEOUT: must be a whole number of seconds" in timeout.stderr
    )


def test_a_terminal_whose_width_is_given_as_zero_is_drawn_at_its_own_width(bapp: Bapp) -> None:
    """COLUMNS=0 (a size "unknown", as some terminals and wrappers report it) on a terminal: Rich drew every table
    and help at width 0, which is nothing at all, and the command exited 0 as if it had shown its rows."""
    commands = [("pathways", "list"), ("clients", "--help")]
    listing, helped = run_in_turn_on_terminal(bapp, commands, env={"COLUMNS": "0", "LINES": "0"})
    assert listing.exit_code == 0 and "accelerate" in listing.stdout, listing
    assert helped.exit_code == 0 and "Usage" in helped.stdout and "enroll" in helped.stdout, helped


def test_a_dry_run_asks_no_question_on_a_terminal(bapp: Bapp) -> None:
    """A dry run changes nothing, so on a terminal it asks nothing (off one it needs --yes as the real run does:
    test_every_dry_run_says_on_stderr_that_nothing_was_written); the real run asks, and a "no" changes nothing. The
    answers are typed ahead, one line a question: a dry run that asked would take the "n" and exit 130."""
    archive = ("pathways", "archive", "play", "--json")
    commands = [(*archive, "--dry-run"), archive, archive]
    dry, asked, agreed = run_in_turn_on_terminal(bapp, commands, stdout_tty=False, typed=b"n\ny\n")
    question = "Archive pathway play? [y/N]: "
    assert dry.exit_code == 0 and json.loads(dry.stdout)["archived"] is True and question not in dry.stderr, dry
    # the question on the terminal, nothing on stdout: Click's prompt left a space there, before a "no" or the record
    assert asked.stderr.count(question) == 1 and asked.exit_code == 130 and asked.stdout == "", asked
    assert agreed.stderr.count(question) == 1 and agreed.exit_code == 0, agreed
    assert agreed.stdout.startswith("{") and json.loads(agreed.stdout)["archived"] is True


def test_a_relative_path_in_a_working_directory_deleted_since_is_exit_4_not_a_crash(
    bapp: Bapp, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A run started in a directory removed since (a cron job's, a shell left in a deleted checkout) cannot make a
    relative path absolute (os.getcwd fails): `config set` of a file setting, `export -o`, `badges issuer init`, `db
    upgrade` of a relative SQLite file and `config init` ended in exit 1, "unexpected error: FileNotFoundError"."""
    config = Path(bapp.env["BAPP_CONFIG"])
    config.write_text('timezone = "UTC"\n')
    gone = tmp_path / "gone"
    gone.mkdir()
    monkeypatch.chdir(gone)
    gone.rmdir()
    commands = [
        ("config", "set", "calendly.token_file", "token.txt"),
        ("export", "clients", "-o", "clients.csv"),
        ("badges", "issuer", "init", "--name", "B", "--url", "https://b.example", "--key-file", "issuer.pem"),
        ("--database-url", "sqlite:///relative.db", "db", "upgrade"),
        ("--config", "relative.toml", "config", "init"),
    ]
    for command in commands:
        result = bapp(*command)
        assert result.exit_code == 4, (command, result.stderr)
        assert result.stderr.startswith("Error: the working directory no longer exists\nHint: cd to"), command
    assert config.read_text() == 'timezone = "UTC"\n'  # nothing written
    assert bapp("badges", "issuer", "show").exit_code == 4  # no issuer made


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)  # no database is reached
def test_a_missing_file_with_no_name_in_a_working_directory_that_exists_is_not_blamed_on_it(bapp: Bapp) -> None:
    # ssl's FileNotFoundError for a missing SSL_CERT_FILE (read by httpx) has no file name, as os.getcwd()'s has: it
    # was reported as "the working directory no longer exists", with a hint to cd elsewhere, from a directory that is
    env = {"CALENDLY_API_KEY": TOKEN, "SSL_CERT_FILE": str(Path(bapp.env["BAPP_CONFIG"]).parent / "no-such-ca.pem")}
    result = bapp("calendly", "whoami", env=env)
    assert "working directory" not in result.stderr, result.stderr


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)  # no database is reached
@pytest.mark.parametrize("certificates", ["no-such-ca.pem", ".", "bapp.toml"])
def test_certificates_ssl_cert_file_names_that_cannot_be_loaded_are_exit_4(bapp: Bapp, certificates: str) -> None:
    # httpx loads SSL_CERT_FILE for every Calendly client: one missing, a folder or a file holding no certificate was
    # exit 1, "unexpected error", on every Calendly command
    folder = Path(bapp.env["BAPP_CONFIG"]).parent
    (folder / "bapp.toml").write_text('timezone = "UTC"\n')
    env = {"CALENDLY_API_KEY": TOKEN, "SSL_CERT_FILE": str(folder / certificates)}
    for command in (("calendly", "whoami"), ("calendly", "sync", "--dry-run")):
        result = bapp(*command, env=env)
        assert result.exit_code == 4, (command, result.stderr)
        assert result.stderr.startswith("Error: cannot load the certificates SSL_CERT_FILE or SSL_CERT_DIR names")


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)  # no database is reached
def test_a_tls_key_log_file_that_cannot_be_opened_is_exit_4_naming_sslkeylogfile(bapp: Bapp, tmp_path: Path) -> None:
    # httpx opens SSLKEYLOGFILE for every Calendly client: a missing folder or a folder was blamed on SSL_CERT_FILE
    for key_log in (tmp_path / "no-such-folder" / "keys.log", tmp_path):
        result = bapp("calendly", "whoami", env={"CALENDLY_API_KEY": TOKEN, "SSLKEYLOGFILE": str(key_log)})
        assert result.exit_code == 4, result.stderr
        assert result.stderr.startswith("Error: cannot open the file SSLKEYLOGFILE names: [Errno"), result.stderr
        assert str(key_log) in result.stderr and "SSL_CERT_FILE" not in result.stderr


def test_an_actor_longer_than_the_audit_keeps_is_exit_4_on_both_backends(bapp: Bapp) -> None:
    # The audit row's actor holds 200 characters: PostgreSQL refused a longer BAPP_ACTOR mid-command (exit 1)
    long_actor = bapp("clients", "add", "actor@example.com", env={"BAPP_ACTOR": "a" * 201})
    assert long_actor.exit_code == 4, long_actor.stderr
    assert "environment variable BAPP_ACTOR: 201 characters; at most 200" in long_actor.stderr
    assert bapp("clients", "show", "actor@example.com").exit_code == 7
    fits = bapp("clients", "add", "actor@example.com", env={"BAPP_ACTOR": "é" * 200})
    assert fits.exit_code == 0, fits.stderr


def test_an_actor_in_bytes_that_are_not_utf8_or_a_login_name_too_long_is_never_exit_1(bapp: Bapp) -> None:
    # Every change writes its actor into the audit: BAPP_ACTOR, or the login name (LOGNAME, USER…) in bytes that are
    # not UTF-8 (os.environ holds them as surrogates) could not be sent to the database, and a login name longer
    # than the column was refused by PostgreSQL: exit 1 mid-command
    undecodable = os.fsdecode(b"ops-\xff")
    refused = bapp("clients", "add", "actor@example.com", env={"BAPP_ACTOR": undecodable})
    assert refused.exit_code == 4 and "environment variable BAPP_ACTOR: is not UTF-8 text" in refused.stderr
    for number, login in enumerate((undecodable, "l" * 300)):
        added = bapp("clients", "add", f"login{number}@example.com", env={"BAPP_ACTOR": None, "LOGNAME": login})
        assert added.exit_code == 0, added.stderr
    engine = make_engine(bapp.database_url)
    try:
        with engine.connect() as connection:
            actors = set(connection.execute(text("SELECT actor FROM audit_entries")).scalars())
    finally:
        engine.dispose()
    assert actors == {"ops-\ufffd", "l" * 200}  # as much of the login name as the audit can hold


def test_a_database_url_in_bytes_that_are_not_utf8_is_exit_4(bapp: Bapp) -> None:
    # BAPP_DATABASE_URL (or DATABASE_URL) holding bytes that are not UTF-8, a password's or a SQLite file's: neither
    # libpq nor SQLite can be given it, and every command ended in exit 1 (UnicodeEncodeError)
    scheme, _, rest = bapp.database_url.partition("://")
    url = os.fsdecode(f"{scheme}://".encode() + rest.encode().replace(b"@", b"\xff@", 1).replace(b".db", b"\xff.db"))
    assert url != bapp.database_url
    for variable in ("BAPP_DATABASE_URL", "DATABASE_URL"):
        for command in (("sessions", "list"), ("clients", "add", "ada@example.com"), ("db", "upgrade")):
            result = bapp(*command, env={"BAPP_DATABASE_URL": None, variable: url})
            assert result.exit_code == 4, (command, result.stderr)
            assert f"environment variable {variable}, key database_url: is not UTF-8 text" in result.stderr


def test_r9_config_files_bapp_cannot_read_or_write_are_exit_4(bapp: Bapp, tmp_path: Path) -> None:
    not_utf8 = tmp_path / "latin1.toml"
    not_utf8.write_bytes('timezone = "Europe/Z\xfcrich"\n'.encode("latin-1"))
    assert bapp("--config", str(not_utf8), "pathways", "list").exit_code == 4
    folder = tmp_path / "folder"
    folder.mkdir()
    as_env = bapp("pathways", "list", env={"BAPP_CONFIG": str(folder)})
    assert as_env.exit_code == 4 and f"cannot read config file {folder}" in as_env.stderr
    token = tmp_path / "token"
    token.write_bytes(b"\xff\xfe\x00")
    with_token = tmp_path / "with-token.toml"
    with_token.write_text(f'[calendly]\ntoken_file = "{token}"\n')
    whoami = bapp("--config", str(with_token), "calendly", "whoami")
    assert whoami.exit_code == 4 and "is not UTF-8 text" in whoami.stderr
    under_a_file = not_utf8 / "config.toml"
    for args in (("config", "init"), ("config", "set", "timezone", "UTC")):
        refused = bapp(*args, env={"BAPP_CONFIG": str(under_a_file)})
        assert refused.exit_code == 4 and f"cannot write config file {under_a_file}" in refused.stderr
    assert not_utf8.is_file() and not list(tmp_path.glob("*.tmp"))  # nothing written, nothing left behind


def test_r9_secret_files_named_in_config_are_short_utf8_text_or_exit_4(bapp: Bapp, tmp_path: Path) -> None:
    """The webhook signing key file once crashed (exit 1, UnicodeDecodeError) where the token file did
    not; both are read by one rule now, which also stops at a file that cannot be a secret. Only a regular
    file is read: a directory was "Is a directory", a socket "No such device or address", /dev/zero read."""
    binary = tmp_path / "binary"
    binary.write_bytes(b"\xff\xfe\x00")
    big = tmp_path / "big"
    big.write_bytes(b"k" * (65 << 10))
    sock = tmp_path / "sock"
    with contextlib.closing(socket.socket(socket.AF_UNIX)) as listener:
        listener.bind(str(sock))
    delivery = str(REPO / "examples" / "calendly" / "webhook_invitee_created.json")
    irregular = "is not a regular file; it should hold the secret alone"
    for secret, expected in (
        (binary, "is not UTF-8 text"),
        (big, "is larger than 64 KB"),
        *((path, irregular) for path in (tmp_path, sock, Path("/dev/zero"))),
    ):
        config = tmp_path / "with-key.toml"
        config.write_text(f'[calendly]\nwebhook_signing_key_file = "{secret}"\ntoken_file = "{secret}"\n')
        applied = bapp("--config", str(config), "calendly", "webhook", "apply", delivery)
        assert applied.exit_code == 4 and "calendly.webhook_signing_key_file" in applied.stderr, applied.stderr
        assert expected in applied.stderr
        whoami = bapp("--config", str(config), "calendly", "whoami")
        assert whoami.exit_code == 4 and "calendly.token_file" in whoami.stderr and expected in whoami.stderr


# -- item 10: every key validated on set; errors from config name the file and key -------------------


@pytest.mark.parametrize(
    ("key", "value", "says"),
    [
        ("format", "xml", "unknown format 'xml'"),
        ("timezone", "Mars/Olympus", "unknown timezone"),
        ("database_url", "mysql://u@h/d", "unsupported scheme 'mysql'"),
        ("calendly.base_url", "ftp://calendly.example", "not an http(s) URL"),
        # stored, then refused by every Calendly command (and the password was in the file)
        ("calendly.base_url", "https://u:s3cret@api.calendly.com", "must not carry credentials, a query or a fragment"),
        ("calendly.base_url", "https://api.calendly.com/?page=2", "must not carry credentials, a query or a fragment"),
        ("calendly.base_url", "https://api..calendly.com", "its host is no DNS name"),
        ("calendly.base_url", "https://xn--zz-", "its host is no DNS name"),
        ("calendly.base_url", f"https://{'a' * 64}.calendly.com", "its host is no DNS name"),
        ("calendly.user", "me", "not an http(s) URL"),
        ("calendly.pathway_question", "(unclosed", "not a valid regular expression"),
    ],
)
def test_item10_config_set_refuses_a_bad_value_for_every_key(bapp: Bapp, key: str, value: str, says: str) -> None:
    config = Path(bapp.env["BAPP_CONFIG"])
    config.write_text('timezone = "UTC"\n')
    result = bapp("config", "set", key, value)
    assert result.exit_code == 6
    assert says in result.stderr and "s3cret" not in result.stderr
    assert config.read_text() == 'timezone = "UTC"\n'


def test_item10_a_bad_value_in_the_file_or_environment_names_its_source_and_key(bapp: Bapp) -> None:
    config = Path(bapp.env["BAPP_CONFIG"])
    config.write_text('format = "xml"\n')
    from_file = bapp("clients", "list")
    assert from_file.exit_code == 4 and from_file.stdout == ""
    assert f"config file {config}, key format: unknown format 'xml'" in from_file.stderr
    config.write_text("timezone = 5\n")
    wrong_type = bapp("clients", "list")
    assert wrong_type.exit_code == 4 and "key timezone: must be a string, not int" in wrong_type.stderr
    config.write_text("")
    from_env = bapp("clients", "list", env={"BAPP_FORMAT": "xml"})
    assert from_env.exit_code == 4
    assert "environment variable BAPP_FORMAT, key format: unknown format 'xml'" in from_env.stderr


# -- item 20: unsupported database URLs ---------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "mysql://app:s3cretpw@db.example/bapp",
        "http://x",
        "postgresql+psycopg2://app:s3cretpw@h/d",
        "bapp.db",
        # a `://` after the password: all before it was shown as the scheme, password too (config show's warning
        # without even the scrub errors get)
        "postgresql:app:s3cretpw@db.example://bapp",
        # no scheme at all (`user:password@host/db` pasted without it): config show listed it whole
        "app:s3cretpw@db.example/bapp",
        "app:s3cretpw@db.example://bapp",
        "password=s3cretpw host=h://y",
    ],
)
def test_item20_an_unsupported_database_url_is_exit_4_naming_the_supported_forms(bapp: Bapp, url: str) -> None:
    for args in (("clients", "list"), ("db", "upgrade")):
        result = bapp(*args, env={"BAPP_DATABASE_URL": url})
        assert result.exit_code == 4, result.stderr
        assert "sqlite:///PATH" in result.stderr and "postgresql+psycopg://" in result.stderr
        assert "ModuleNotFoundError" not in result.stderr and "s3cretpw" not in result.stderr
    flagged = bapp("--database-url", url, "pathways", "list")
    assert flagged.exit_code == 4 and "s3cretpw" not in flagged.stderr
    shown = bapp("--database-url", url, "config", "show")
    assert shown.exit_code == 0 and "s3cretpw" not in shown.stdout + shown.stderr, shown.stderr


def test_a_sqlite_url_whose_path_escapes_a_nul_is_exit_4(bapp: Bapp, tmp_path: Path) -> None:
    # the path's %-escapes are undone as SQLAlchemy undoes them, and `%00` made os.stat raise ValueError ("embedded
    # null byte"): every command, `db upgrade` too, ended in exit 1
    url = f"sqlite:///{tmp_path}/bapp%00.db"
    for command in (("db", "upgrade"), ("sessions", "list"), ("clients", "add", "ada@example.com")):
        for result in (bapp("--database-url", url, *command), bapp(*command, env={"BAPP_DATABASE_URL": url})):
            assert result.exit_code == 4, (command, result.stderr)
            assert "its SQLite path holds a NUL (%00)" in result.stderr


def test_item20_a_malformed_database_url_of_a_supported_form_is_exit_4(bapp: Bapp) -> None:
    for url in ("postgresql://app:s3cretpw@[::1", "postgresql://app:s3cretpw@[::1/bapp"):
        result = bapp("--database-url", url, "pathways", "list")
        assert result.exit_code == 4, result.stderr
        assert "the database URL is not valid" in result.stderr and "s3cretpw" not in result.stderr


def test_a_database_url_scheme_in_capitals_is_the_same_url_on_every_path(bapp: Bapp) -> None:
    """A scheme is any case (RFC 3986), and the settings took `SQLite://` and `PostgreSQL://`; SQLAlchemy and libpq
    did not: every write (and on PostgreSQL every read) was exit 4 "the database URL is not valid", while SQLite's
    plain reads read the file."""
    scheme, _, rest = bapp.database_url.partition("://")
    url = f"{scheme.split('+')[0].upper()}://{rest}"
    for command in (("clients", "add", "caps@example.com"), ("clients", "list"), ("db", "current")):
        result = bapp("--database-url", url, *command)
        assert result.exit_code == 0, (command, result.stderr)
    assert "caps@example.com" in bapp("clients", "list").stdout


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_a_libpq_environment_variable_the_server_or_libpq_refuses_is_named_in_the_hint(bapp: Bapp) -> None:
    # libpq sends PGTZ as a setting of the session and reads PGSSLMODE as the URL's sslmode: a bad value is refused
    # as if the URL held it, and the hint named only the URL, which had nothing wrong in it
    for variable, value in (("PGTZ", "Mars/Olympus"), ("PGSSLMODE", "bogus")):
        for command in (("sessions", "list"), ("clients", "add", "ada@example.com")):
            result = bapp(*command, env={variable: value})
            assert result.exit_code == 4, (variable, command, result.stderr)
            assert value in result.stderr and "the PG* environment variables libpq reads" in result.stderr


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
@pytest.mark.parametrize("query", ["host=%zz", "application_name=x&bad"])
def test_a_postgresql_url_query_libpq_cannot_parse_is_exit_4_on_every_path(bapp: Bapp, query: str) -> None:
    # plain reads hand the URL to libpq, which refuses it; SQLAlchemy's parser let `%zz` through as a host name
    # to look up (exit 5) and dropped `bad` without a word (accepted)
    password = bapp.database_url.partition("://")[2].partition("@")[0].partition(":")[2]
    url = f"{bapp.database_url}?{query}"
    for command in (("sessions", "list"), ("clients", "add", "q@example.com"), ("db", "upgrade")):
        result = bapp("--database-url", url, *command)
        assert result.exit_code == 4, (command, result.stderr)
        assert "the database URL is not valid" in result.stderr and password not in result.stderr


def test_a_database_url_query_parameter_the_driver_cannot_take_is_exit_4(
    bapp: Bapp, tmp_path: Path, sqlite_template: Path
) -> None:
    # SQLAlchemy converts pysqlite's query parameters when the engine is made: a bad one was a ValueError (exit 1).
    # The plain reads (`sessions list`, without SQLAlchemy) took no notice of the values: `?timeout=abc` was exit 0
    # there. Both read the URL alike now, in the same words. SQLite's own URI parameters (`uri=true&mode=ro`) were
    # handed to SQLite by the engine as part of the file's name: a new, empty file "q.db?mode=ro", and exit 5
    database = tmp_path / "q.db"
    shutil.copyfile(sqlite_template, database)  # at head, as `db upgrade` leaves a new file
    for query, says in (
        ("timeout=abc", "(timeout=abc)"),
        ("detect_types=x", "(detect_types=x)"),
        ("check_same_thread=maybe", "(check_same_thread=maybe)"),
        ("foo=1", "(foo)"),  # was a SQLAlchemy warning on stderr, then ignored
        ("uri=true&mode=ro", "(mode)"),
        # a whole number past the driver's C int: the engine's first connection was an OverflowError (exit 1)
        ("detect_types=2147483648", "(detect_types=2147483648)"),
        ("cached_statements=-99999999999", "(cached_statements=-99999999999)"),
    ):
        url = f"sqlite:///{database}?{query}"
        for command in (
            ("db", "upgrade"),
            ("clients", "add", "q@example.com"),
            ("sessions", "list"),
            ("pathways", "list"),
        ):
            result = bapp("--database-url", url, *command)
            assert result.exit_code == 4, (query, command, result.stderr)
            assert f"the database URL is not valid: a query parameter the driver cannot take {says}" in result.stderr
            assert "unexpected" not in result.stderr and "Warning" not in result.stderr
    assert not [path.name for path in tmp_path.iterdir() if "?" in path.name]  # no file named after the query
    # what the driver takes still works
    for query in ("timeout=5", "uri=true", "check_same_thread=no", "timeout=", "cached_statements=2147483647"):
        for command in (("sessions", "list"), ("pathways", "list")):
            assert bapp("--database-url", f"sqlite:///{database}?{query}", *command).exit_code == 0, (query, command)


# -- item 27: a readable config file holding a token; config show with a bad setting ------------------


def test_item27_a_config_file_holding_a_secret_readable_by_others_gets_a_warning(bapp: Bapp) -> None:
    config = Path(bapp.env["BAPP_CONFIG"])
    config.write_text('[calendly]\ntoken = "tok-abcdef123456"\n')
    config.chmod(0o644)
    warned = bapp("pathways", "list")
    assert warned.exit_code == 0
    assert f"Warning: config file {config} holds a secret and others can read it" in warned.stderr
    assert "tok-abcdef123456" not in warned.stderr
    config.chmod(0o600)
    assert bapp("pathways", "list").stderr == ""


def test_item27_config_show_still_shows_every_setting_when_one_is_bad(bapp: Bapp) -> None:
    config = Path(bapp.env["BAPP_CONFIG"])
    config.write_text('timezone = "Mars/Olympus"\nformat = "xml"\ntimezon = "UTC"\n[calendly]\nusr = "x"\n')
    result = bapp("config", "show", "--json")
    assert result.exit_code == 0
    rows = {row["key"]: row for row in result.json()}
    assert rows["timezone"] == {"key": "timezone", "value": "Mars/Olympus", "source": "file"}
    assert rows["format"]["value"] == "xml"
    assert f"not valid: config file {config}, key timezone: unknown timezone 'Mars/Olympus'" in result.stderr
    assert "key format: unknown format 'xml'" in result.stderr
    assert "unknown key 'timezon' (ignored)" in result.stderr and "unknown key 'calendly.usr'" in result.stderr


# -- item 17: a database that cannot be written during a sync -----------------------------------------


def make_read_only(database_url: str) -> Any:
    """Make the database refuse writes; returns the undo. SQLite: the file immutable (root) or 0444;
    PostgreSQL: every new session read-only."""
    if database_url.startswith("sqlite"):
        path = Path(database_url.removeprefix("sqlite:///"))
        if os.geteuid() == 0:
            if shutil.which("chattr") is None or subprocess.run(["chattr", "+i", str(path)]).returncode != 0:
                pytest.skip("as root a read-only SQLite file needs chattr +i, which this filesystem refuses")
            return lambda: subprocess.run(["chattr", "-i", str(path)], check=True)
        path.chmod(0o444)
        return lambda: path.chmod(0o644)
    engine = make_engine(database_url)
    name = database_url.rsplit("/", 1)[1]
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        connection.execute(text(f'ALTER DATABASE "{name}" SET default_transaction_read_only = on'))
    engine.dispose()

    def undo() -> None:
        engine = make_engine(database_url)
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            connection.execute(text("SET default_transaction_read_only = off"))
            connection.execute(text(f'ALTER DATABASE "{name}" RESET default_transaction_read_only'))
        engine.dispose()

    return undo


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_sqlite_database_in_a_folder_this_user_cannot_write_says_so(bapp: Bapp, tmp_path: Path) -> None:
    """Every reader of a WAL database makes its -wal and -shm files beside it. In a folder (or mount) read-only to
    this user, every command, reads too, said "database error: unable to open database file", naming neither the
    cause nor a way out."""
    import sqlite3

    folder = tmp_path / "read-only"
    folder.mkdir()
    copy = folder / "bapp.db"
    with contextlib.closing(sqlite3.connect(bapp.database_url.removeprefix("sqlite:///"))) as source:
        with contextlib.closing(sqlite3.connect(copy)) as target:
            source.backup(target)
    assert sorted(path.name for path in folder.iterdir()) == ["bapp.db"]
    if os.geteuid() == 0:  # root writes through modes, not through the immutable flag
        if shutil.which("chattr") is None or subprocess.run(["chattr", "+i", str(folder)]).returncode != 0:
            pytest.skip("as root a folder read-only to bapp needs chattr +i, which this filesystem refuses")
    else:
        folder.chmod(0o555)
    try:
        for command in (("sessions", "list"), ("clients", "add", "ada@example.com"), ("db", "current")):
            result = bapp("--database-url", f"sqlite:///{copy}", *command)
            assert result.exit_code == 5, (command, result.stderr)
            assert result.stderr.startswith("Error: the database cannot be written: unable to open database file")
            assert "may write the database and its folder" in result.stderr
    finally:
        if os.geteuid() == 0:
            subprocess.run(["chattr", "-i", str(folder)], check=True)
        folder.chmod(0o755)


def test_item17_a_sync_into_a_read_only_database_is_exit_5_with_nothing_on_stdout(bapp: Bapp) -> None:
    before = snapshot(bapp.database_url)
    undo = make_read_only(bapp.database_url)
    try:
        for extra in ((), ("--json",)):
            result = bapp("calendly", "sync", "--from-file", str(EXAMPLE_LISTING), *extra)
            assert result.exit_code == 5, result.stderr
            assert result.stdout == ""  # no summary of a run that was never recorded
            assert "Error: the database cannot be written" in result.stderr
            assert "unexpected error" not in result.stderr
        imported = bapp("import", "clients", str(REPO / "examples" / "clients.csv"))
        assert imported.exit_code == 5 and imported.stdout == "", imported.stderr
        assert "Error: the database cannot be written" in imported.stderr
    finally:
        undo()
    assert snapshot(bapp.database_url) == before


def test_a_pull_into_a_read_only_database_is_exit_5_after_its_read(bapp: Bapp) -> None:
    """A pull reads (its survey) before it writes, in one process: on PostgreSQL the pooled connection its read
    transaction (REPEATABLE READ READ ONLY) gave back was reset to READ WRITE, which beat the database's
    default_transaction_read_only, and the pull wrote its run record and parked its invitees (exit 3)."""
    before = snapshot(bapp.database_url)
    undo = make_read_only(bapp.database_url)
    try:
        result = bapp("calendly", "pull-bookings", "--from-file", str(REPO / "examples/calendly/scheduled_events.json"))
    finally:
        undo()
    assert (result.exit_code, result.stdout) == (5, ""), result.stderr
    assert "Error: the database cannot be written" in result.stderr
    assert snapshot(bapp.database_url) == before


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_a_postgresql_user_not_granted_the_tables_is_exit_5_saying_so(bapp: Bapp) -> None:
    """A role that may log in but was granted none of the schema's tables (a reporting role, a grant forgotten):
    `db current`, `db upgrade` and `db downgrade` were exit 1 ('unexpected error: ProgrammingError'), and every
    other command said "the database has no schema yet; run `bapp db upgrade`", which that role cannot."""
    from sqlalchemy.engine import make_url

    role = f"ungranted_{os.getpid()}"
    engine = make_engine(bapp.database_url)
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        connection.execute(text(f"CREATE ROLE {role} LOGIN PASSWORD 'role-pw'"))
    url = make_url(bapp.database_url).set(username=role, password="role-pw").render_as_string(hide_password=False)
    try:
        for command in (
            ("db", "current"),
            ("db", "upgrade"),
            ("db", "downgrade", "base", "--yes"),
            ("clients", "list"),
            ("bookings", "list"),
        ):
            result = bapp(*command, env={"BAPP_DATABASE_URL": url})
            assert result.exit_code == 5, (command, result.stderr)
            assert "the database refused this user: permission denied for table alembic_version" in result.stderr
            assert "no schema" not in result.stderr and "role-pw" not in result.stderr
    finally:
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            connection.execute(text(f"DROP ROLE {role}"))
        engine.dispose()
    assert bapp("db", "current").exit_code == 0  # the schema's owner still reads it at head


@pytest.mark.parametrize("empty_database_url", ["postgresql"], indirect=True)
def test_a_postgresql_database_in_an_encoding_short_of_bapps_text_says_so(
    empty_database_url: str, tmp_path: Path
) -> None:
    """A database created in LATIN1 (createdb -E LATIN1, a cluster's old default): `db upgrade` stopped at the seeded
    pathways' emoji and was refused as a step is, with the hint to "change or drop what it names (a view of your own
    …)", which no change of the user's can meet: the database's encoding is what must change."""
    from sqlalchemy.engine import make_url

    name = f"latin1_{os.getpid()}"
    admin = make_engine(make_url(empty_database_url).set(database="postgres").render_as_string(hide_password=False))
    with admin.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        connection.execute(
            text(f"CREATE DATABASE {name} ENCODING 'LATIN1' TEMPLATE template0 LOCALE 'C' LOCALE_PROVIDER libc")
        )
    url = make_url(empty_database_url).set(database=name).render_as_string(hide_password=False)
    try:
        result = Bapp(url, tmp_path)("db", "upgrade")
        current = Bapp(url, tmp_path)("db", "current")
    finally:
        with admin.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            connection.execute(text(f"DROP DATABASE {name} WITH (FORCE)"))
        admin.dispose()
    assert result.exit_code == 5, result.stderr
    assert result.stderr.startswith("Error: the database's encoding cannot hold bapp's text: character with"), (
        result.stderr
    )
    assert "Hint: bapp keeps its text in UTF-8: create the database with --encoding UTF8" in result.stderr
    assert "change or drop" not in result.stderr
    assert current.exit_code == 5 and "no schema yet" in current.stderr  # nothing of the run was kept


@pytest.mark.parametrize("database_url", ["sqlite", "postgresql"], indirect=True)
def test_a_trigger_of_the_databases_own_refusing_a_write_is_exit_5_saying_so(bapp: Bapp, tmp_path: Path) -> None:
    """bapp makes no triggers: one that refuses a write (another program's, an administrator's: SQLite's RAISE(ABORT),
    PL/pgSQL's RAISE EXCEPTION) is the database's state. It was exit 1, "unexpected error: IntegrityError" on SQLite
    and "ProgrammingError" on PostgreSQL, with the hint to report a bug."""
    engine = make_engine(bapp.database_url)
    with engine.begin() as connection:
        if engine.dialect.name == "sqlite":
            for table in ("users", "session_types"):  # the latter written by a sync's plain writer (dbapi)
                connection.exec_driver_sql(
                    f"CREATE TRIGGER no_{table} BEFORE INSERT ON {table} "
                    "BEGIN SELECT RAISE(ABORT, 'no new users today'); END"
                )
        else:
            connection.exec_driver_sql(
                "CREATE FUNCTION no_users() RETURNS trigger LANGUAGE plpgsql AS "
                "$$ BEGIN RAISE EXCEPTION 'no new users today'; END $$"
            )
            for table in ("users", "session_types"):
                connection.exec_driver_sql(
                    f"CREATE TRIGGER no_{table} BEFORE INSERT ON {table} FOR EACH ROW EXECUTE FUNCTION no_users()"
                )
    engine.dispose()
    clients = tmp_path / "clients.csv"
    clients.write_text("email,name,company,industry\nada@example.com,Ada,,\n")
    synced = ("calendly", "sync", "--from-file", str(EXAMPLE_LISTING))
    for command in (("clients", "add", "bo@example.com"), ("import", "clients", str(clients)), synced):
        result = bapp(*command)
        assert result.exit_code == 5, (command, result.stderr)
        assert result.stdout == "" or "\tfailed\t" in result.stdout  # a sync prints the failed run it recorded
        assert result.stderr.startswith(
            "Error: a trigger in the database refused the change: no new users today\n"
            "Hint: the trigger is not bapp's: change or drop it (or ask whoever made it), then run the command again\n"
        ), (command, result.stderr)
    assert bapp("clients", "list", "--json").json() == []


@pytest.mark.parametrize("database_url", ["sqlite", "postgresql"], indirect=True)
def test_a_constraint_of_the_databases_own_refusing_a_write_is_exit_5_saying_so(bapp: Bapp) -> None:
    """A unique index or check an administrator added to bapp's tables: SQLite's refusal was exit 1 ("unexpected
    error: IntegrityError"), PostgreSQL's check too, and its unique index exit 8, "another session wrote the same
    record meanwhile … run the command again", which fails the same way every time. bapp's own keys keep their words."""
    engine = make_engine(bapp.database_url)
    with engine.begin() as connection:
        connection.exec_driver_sql("CREATE UNIQUE INDEX one_user_a_name ON users (name)")
        if engine.dialect.name == "postgresql":  # SQLite adds a check only with the table made again
            connection.exec_driver_sql("ALTER TABLE client_profiles ADD CONSTRAINT short_company CHECK (company < 'M')")
    engine.dispose()
    assert bapp("clients", "add", "ann@example.com", "--name", "Ann").exit_code == 0
    commands = [("clients", "add", "bo@example.com", "--name", "Ann")]
    if bapp.database_url.startswith("postgresql"):
        commands.append(("clients", "add", "cy@example.com", "--company", "Zeta"))
    for command in commands:
        result = bapp(*command)
        assert (result.exit_code, result.stdout) == (5, ""), (command, result.stderr)
        assert result.stderr.startswith("Error: a constraint of the database's own refused the change: "), result.stderr
        assert "Hint: the constraint is not bapp's: change or drop it" in result.stderr
    assert bapp("clients", "list", "--json").json()[0]["email"] == "ann@example.com"


@pytest.mark.parametrize("database_url", ["sqlite", "postgresql"], indirect=True)
def test_a_table_missing_from_a_database_at_head_is_exit_5_on_both_backends(bapp: Bapp) -> None:
    """A schema someone changed by hand (a table dropped, a restore of part of a dump): SQLite's 'no such table' was
    a database error (exit 5), PostgreSQL's UndefinedTable 'unexpected error: ProgrammingError' (exit 1, a bug)."""
    engine = make_engine(bapp.database_url)
    with engine.begin() as connection:
        connection.execute(text("DROP TABLE audit_entries"))
    engine.dispose()
    result = bapp("clients", "add", "ada@example.com", "--name", "Ada")
    assert result.exit_code == 5, result.stderr
    assert "database error:" in result.stderr and "audit_entries" in result.stderr
    assert bapp("clients", "list", "--json").json() == []  # nothing half-written


def test_item17_raw_driver_errors_of_the_bulk_writer_map_to_database_not_ready() -> None:
    import sqlite3

    from bapp_cli.db.engine import database_failure

    read_only = database_failure(sqlite3.OperationalError("attempt to write a readonly database"))
    assert read_only is not None and read_only.exit_code == 5 and read_only.code == "database_read_only"
    garbage = database_failure(sqlite3.DatabaseError("file is not a database"))
    assert garbage is not None and garbage.exit_code == 5
    # a broken rule or a programming error is not a database state: it stays a bug (exit 1)
    assert database_failure(sqlite3.IntegrityError("UNIQUE constraint failed: users.email")) is None
    assert database_failure(sqlite3.ProgrammingError("closed")) is None
    assert database_failure(ValueError("not a database error")) is None


def test_a_postgresql_failure_is_classed_by_its_code_not_by_english_words() -> None:
    # A server whose lc_messages is not English (or a libpq built with NLS, in the client's language) words its
    # errors in that language: a read-only transaction (25006) was "database error" without its hint, and a login
    # with no password exit 5 "cannot reach" instead of exit 4. The exceptions are psycopg's own, as it raises them
    # (no cluster here has another locale): a SQLSTATE where the server sends one, libpq's flag where it does not.
    from types import SimpleNamespace

    import psycopg
    import psycopg.errors

    from bapp_cli.db.engine import database_failure

    read_only = database_failure(
        psycopg.errors.ReadOnlySqlTransaction("FEHLER:  kann INSERT nicht in einer Nur-Lese-Transaktion ausführen")
    )
    assert read_only is not None and (read_only.exit_code, read_only.code) == (5, "database_read_only")
    refused = 'connection to server at "127.0.0.1", port 5432 failed: fe_sendauth: kein Passwort angegeben'
    login = database_failure(psycopg.OperationalError(refused, pgconn=SimpleNamespace(needs_password=True)))
    assert login is not None and (login.exit_code, login.code) == (4, "database_login")
    down = database_failure(psycopg.OperationalError(refused, pgconn=SimpleNamespace(needs_password=False)))
    assert down is not None and down.exit_code == 5


def test_an_interrupt_stays_an_interrupt_when_the_rollback_fails() -> None:
    # Ctrl-C or SIGTERM while psycopg sends an executemany's pipeline (a sync's new types on PostgreSQL) can
    # leave the connection busy in pipeline mode, so the rollback then fails ("cannot exit pipeline mode while
    # busy"). That error replaced the interrupt: the sync recorded a failed run and exited 5 instead of 130 with
    # nothing written. Seen about once in 30 Ctrl-Cs in a 20,000-type first sync; the unwinding is shown here.
    from bapp_cli.db.dbapi import settled

    class OperationalError(Exception):
        pass

    class BusyConnection:
        closed = False

        def commit(self) -> None:
            raise AssertionError("an interrupted transaction is never committed")

        def rollback(self) -> None:
            raise OperationalError("sending query failed: cannot exit pipeline mode while busy")

        def close(self) -> None:
            self.closed = True  # closing the connection discards the transaction on the server

    connection = BusyConnection()
    with pytest.raises(KeyboardInterrupt), settled(connection, keep=True):
        raise KeyboardInterrupt
    assert connection.closed


def test_an_interrupt_psycopg_raises_a_pipeline_error_in_place_of_stays_an_interrupt() -> None:
    # Ctrl-C while psycopg ends an executemany's pipeline (a restore's staging on PostgreSQL) can come out of the
    # executemany as "cannot exit pipeline mode while busy", raised while the interrupt was handled: `import all`
    # stopped so exited 5 ("database error"), not 130. Seen once in five Ctrl-Cs of a 150,000-client restore.
    import psycopg
    from sqlalchemy.exc import OperationalError

    from bapp_cli.db.dbapi import settled

    class BusyConnection:
        def commit(self) -> None:
            raise AssertionError("an interrupted transaction is never committed")

        def rollback(self) -> None:
            raise psycopg.OperationalError("sending query failed: cannot exit pipeline mode while busy")

        def close(self) -> None:
            pass

    with pytest.raises(KeyboardInterrupt), settled(BusyConnection(), keep=True):
        try:
            try:
                raise KeyboardInterrupt
            except KeyboardInterrupt:
                raise psycopg.OperationalError("cannot exit pipeline mode while busy")  # noqa: B904 - psycopg's way
        except psycopg.OperationalError as error:
            raise OperationalError("INSERT …", None, error) from error


def test_an_error_a_transaction_raises_of_its_own_stop_in_place_of_the_interrupt_is_kept() -> None:
    # The interrupt counts through the errors raised while it was handled (psycopg's pipeline error above), but not
    # through one raised `from None`: a command's own words for its stop ("… stays pending (Calendly may have it)")
    # were replaced by the generic "Interrupted; nothing was changed"
    from bapp_cli.db.dbapi import settled
    from bapp_cli.errors import Interrupted

    class Connection:
        def commit(self) -> None:
            raise AssertionError("an interrupted transaction is never committed")

        def rollback(self) -> None:
            pass

        def close(self) -> None:
            pass

    with pytest.raises(BaseException) as raised, settled(Connection(), keep=True):  # not pytest's own stop: caught
        try:
            raise KeyboardInterrupt
        except KeyboardInterrupt:
            raise Interrupted("while Calendly was asked about it") from None
    assert isinstance(raised.value, Interrupted), repr(raised.value)


def test_a_stop_that_comes_while_the_commit_runs_is_said_to_come_after_it() -> None:
    # A signal that arrives during the commit is raised as soon as commit() returns, before the statement after
    # it, which was the one marking the commit: a sync terminated then said "nothing was changed" of its
    # committed run (test_interrupt's test_a_sync_terminated_after_its_commit..., about 1 run in 6 under load).
    from bapp_cli.db.dbapi import settled
    from bapp_cli.errors import committed

    class StoppedAsItCommits:
        def commit(self) -> None:
            raise KeyboardInterrupt  # committed; the SIGTERM's handler runs as the call returns

        def rollback(self) -> None:
            pass  # after a commit, nothing to undo

        def close(self) -> None:
            pass

    committed[0] = False
    try:
        with pytest.raises(KeyboardInterrupt), settled(StoppedAsItCommits(), keep=True):
            pass
        assert committed[0]
    finally:
        committed[0] = False


def test_a_lock_wait_that_runs_out_is_busy_exit_75_not_database_not_ready(bapp: Bapp) -> None:
    # Another writer holding the database past the busy timeout is "try again later" (75, like a held sync
    # lock), not a database that needs fixing (5).
    import sqlite3

    from bapp_cli.db.engine import database_failure

    locked = database_failure(sqlite3.OperationalError("database is locked"))
    assert locked is not None and locked.exit_code == 75 and locked.code == "database_locked"

    class LockNotAvailable(Exception):  # psycopg's, as lock_timeout raises it (SQLSTATE 55P03)
        sqlstate = "55P03"

    class OperationalError(Exception):
        orig = LockNotAvailable("canceling statement due to lock timeout")

    timed_out = database_failure(OperationalError("wrapped"))
    assert timed_out is not None and timed_out.exit_code == 75
    # Another session holds the tables a command writes (SQLite's write lock; on PostgreSQL a LOCK TABLE, as
    # a psql session or a long import does): the ORM's writer and the sync's plain one wait the busy timeout,
    # then exit 75. PostgreSQL waited for ever: no lock_timeout was set but the webhook receiver's.
    commands = [("clients", "add", "lock@example.com"), ("calendly", "sync", "--from-file", str(EXAMPLE_LISTING))]
    if bapp.database_url.startswith("sqlite"):
        holder: Any = sqlite3.connect(bapp.database_url.removeprefix("sqlite:///"), isolation_level=None)
        holder.execute("BEGIN EXCLUSIVE")
    else:
        import psycopg

        holder = psycopg.connect(bapp.database_url.replace("+psycopg", ""))
        # the server ends the holder after a while, so a command that waits for ever fails here, not hangs
        holder.execute("SET idle_in_transaction_session_timeout = '20s'")
        holder.execute("LOCK TABLE users, session_types IN EXCLUSIVE MODE")
    try:
        results = [_timed(bapp, command, wait=1.0) for command in commands]
    finally:
        holder.close()
    for result, seconds in results:
        assert result.exit_code == 75, result.stderr
        assert "another process" in result.stderr and "unexpected" not in result.stderr
        # the setting's second, not the default's 30 s, nor none at all (a wait in the wrong unit); however slow
        # the machine, a command cannot have waited a second in less than one
        assert 1.0 <= seconds < 10, f"waited {seconds:.2f} s, not the busy_timeout setting's 1 s"
    for command in commands:  # released: the same command now works
        assert bapp(*command).exit_code == 0


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
@pytest.mark.parametrize("isolation", ["repeatable read", "serializable"])
def test_a_write_sees_what_the_writer_it_waited_for_committed_whatever_the_databases_default_isolation(
    bapp: Bapp, isolation: str
) -> None:
    """A database (or role) whose default_transaction_isolation is REPEATABLE READ or SERIALIZABLE: a write waiting for
    a row another session changed was refused once that one committed (SQLSTATE 40001: "database error: could not
    serialize access due to concurrent update", exit 5), and a write that waited for another's advisory lock (two
    bookings of one slot) read from a snapshot taken before it, blind to that one's booking. Writes run at READ
    COMMITTED, the ORM's and the sync's plain writer's. A serialization failure still left (a hot standby's read
    cancelled by its recovery) is busy, as a deadlock is."""
    import psycopg
    from sqlalchemy.engine import make_url

    from bapp_cli.db import dbapi
    from bapp_cli.errors import Busy
    from tests.conftest import eventually

    assert bapp("clients", "add", "ada@example.com").exit_code == 0
    assert bapp("clients", "enroll", "ada@example.com", "accelerate").exit_code == 0
    engine = make_engine(bapp.database_url)
    name = make_url(bapp.database_url).database
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        connection.execute(text(f"ALTER DATABASE \"{name}\" SET default_transaction_isolation = '{isolation}'"))
    try:
        with engine.connect() as holder:
            holder.execute(text("UPDATE enrolments SET status = status"))
            process = bapp.popen("clients", "set-status", "ada@example.com", "accelerate", "paused")

            def waiting_for_the_row() -> bool:
                with engine.connect() as connection:
                    return connection.execute(text("SELECT count(*) FROM pg_locks WHERE NOT granted")).scalar() == 1

            eventually(waiting_for_the_row, "set-status to wait for the row the holder changed")
            holder.commit()  # the row changed after set-status began: it writes over what the holder committed
            _, stderr = process.communicate(timeout=60)
    finally:
        engine.dispose()
    assert process.returncode == 0, stderr
    assert bapp("clients", "show", "ada@example.com", "--json").json()["enrolments"][0]["status"] == "paused"
    with dbapi.writing(bapp.database_url, dry_run=True) as transaction:
        assert transaction.one("SHOW transaction_isolation") == ("read committed",)
    cancelled = psycopg.errors.SerializationFailure("canceling statement due to conflict with recovery")
    assert isinstance(dbapi.database_failure(cancelled), Busy)


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_a_listing_the_server_ends_while_its_reader_is_slow_says_why(bapp: Bapp, tmp_path: Path) -> None:
    """A role's or URL's idle_in_transaction_session_timeout ends the session of a plain read whose output a slow
    reader (a pager, a pipe) holds back between two batches of rows: `clients list` said only "the connection is
    lost" (its close's rollback on the ended connection), where `export` gives the server's reason."""
    rows = [f"c{n}@example.com,Client number {n:05d} with a long name,Company {n},Industry" for n in range(3000)]
    (tmp_path / "clients.csv").write_text("email,name,company,industry\n" + "\n".join(rows) + "\n")
    assert bapp("import", "clients", str(tmp_path / "clients.csv")).exit_code == 0
    ending = Bapp(f"{bapp.database_url}?options=-c%20idle_in_transaction_session_timeout%3D1000", tmp_path)
    process = ending.popen("clients", "list")
    time.sleep(3)  # the pipe is full: the command waits to write, its transaction idle
    stdout, stderr = process.communicate(timeout=60)
    assert process.returncode == 5, stderr
    assert stderr.startswith("Error: database error: terminating connection due to idle-in-transaction timeout\n")
    assert 0 < len(stdout.splitlines()) < 3000


def _timed(bapp: Bapp, command: tuple[str, ...], wait: float = 0.2) -> tuple[Result, float]:
    """`command` run waiting `wait` seconds for another writer's lock (the busy_timeout setting), and how long it
    took."""
    started = time.monotonic()
    result = bapp(*command, env={"BAPP_BUSY_TIMEOUT": str(wait)})
    return result, time.monotonic() - started


# Holds the SQLite file as another program may (the sqlite3 shell's `PRAGMA locking_mode=EXCLUSIVE` and a write):
# no other connection may even read it until this process lets go, when stdin closes.
_EXCLUSIVE_HOLDER = """
import sqlite3, sys
holder = sqlite3.connect(sys.argv[1], isolation_level=None)
holder.execute("PRAGMA locking_mode = EXCLUSIVE")
holder.execute("BEGIN")
holder.execute("UPDATE alembic_version SET version_num = version_num")
holder.execute("COMMIT")
print("held", flush=True)
sys.stdin.read()
"""


def test_another_process_holding_the_database_is_busy_exit_75_at_start_up(bapp: Bapp) -> None:
    # Every command's first step, the "schema at head?" check, waits out the lock: the plain reads' (sessions
    # list) and the engine's, whose connection's PRAGMAs wait first on SQLite (clients add). Both said "cannot
    # reach the database" (exit 5), as if it were down, for a database another process holds for now.
    commands = [("sessions", "list"), ("clients", "add", "held@example.com")]
    with contextlib.ExitStack() as holding:  # let go as it ends
        if bapp.database_url.startswith("sqlite"):
            path = bapp.database_url.removeprefix("sqlite:///")
            process = subprocess.Popen(
                [sys.executable, "-c", _EXCLUSIVE_HOLDER, path],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
            )
            holding.callback(process.communicate, "")
            assert process.stdout is not None and process.stdout.readline() == "held\n"
        else:  # a psql session holding the revision table as an ALTER TABLE of it would (ACCESS EXCLUSIVE)
            import psycopg

            holder = holding.enter_context(psycopg.connect(bapp.database_url.replace("+psycopg", "")))
            holder.execute("SET idle_in_transaction_session_timeout = '20s'")
            holder.execute("LOCK TABLE alembic_version IN ACCESS EXCLUSIVE MODE")
        results = [_timed(bapp, command) for command in commands]
    for result, seconds in results:
        assert result.exit_code == 75, result.stderr
        assert result.stderr.startswith("Error: the database is busy: "), result.stderr
        assert seconds < 10, "the wait was not the busy_timeout setting's"  # set to 0.2 s; the default is 30
        assert "another process" in result.stderr and "cannot reach" not in result.stderr
        assert "Traceback" not in result.stderr and "unexpected" not in result.stderr
    for command in commands:  # let go: the same commands work
        assert bapp(*command).exit_code == 0


# -- item 18: a garbage file as the database, an unwritable folder -----------------------------------


def test_item18_a_file_that_is_not_a_database_is_exit_5(tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.db"
    garbage.write_bytes(b"this is not a SQLite database, just some bytes\n" * 100)
    app = Bapp(f"sqlite:///{garbage}", tmp_path)
    # one wording, with its hint, for every command: those that check the revision first (the plain reads, and
    # every command on the engine) said "cannot reach the database: file is not a database", without a hint
    for args in (("db", "upgrade"), ("clients", "list"), ("db", "current"), ("db", "check"), ("export", "all")):
        result = app(*args)
        assert result.exit_code == 5, (args, result.stderr)
        assert result.stderr.startswith(
            "Error: the database file is not a SQLite database bapp can use: file is not a database\n"
            "Hint: check --database-url / BAPP_DATABASE_URL; `bapp db upgrade` creates a new file at a new path\n"
        ), (args, result.stderr)
    assert garbage.read_bytes().startswith(b"this is not a SQLite database")


def test_a_fifo_as_the_database_is_refused_as_no_regular_file(tmp_path: Path) -> None:
    # SQLite said only "database error: disk I/O error" (and a device "the database has no schema yet")
    fifo = tmp_path / "bapp.db"
    os.mkfifo(fifo)
    app = Bapp(f"sqlite:///{fifo}", tmp_path)
    for args in (("db", "upgrade"), ("clients", "list"), ("db", "current")):
        result = app(*args)
        assert result.exit_code == 5, (args, result.stderr)
        assert "the database file is not a SQLite database bapp can use: it is not a regular file" in result.stderr
    assert stat.S_ISFIFO(fifo.stat().st_mode)


def test_a_file_that_is_not_a_database_is_refused_before_a_lock_file_is_made_beside_it(tmp_path: Path) -> None:
    """`db upgrade` (and a sync) took its lock first, a file beside the database, and only then heard SQLite refuse
    the garbage: exit 5 "nothing is written", and garbage.db.migrations.lock was left there."""
    folder = tmp_path / "data"
    folder.mkdir()
    for content in (b"this is not a SQLite database\n" * 100, b"SQLite"):  # a short one too: no header at all
        (folder / "garbage.db").write_bytes(content)
        app = Bapp(f"sqlite:///{folder}/garbage.db", tmp_path)
        for args in (("db", "upgrade"), ("calendly", "sync", "--from-file", str(EXAMPLE_LISTING))):
            result = app(*args)
            assert result.exit_code == 5 and "is not a SQLite database" in result.stderr, (args, result.stderr)
        assert sorted(path.name for path in folder.iterdir()) == ["garbage.db"]
        assert (folder / "garbage.db").read_bytes() == content
    (folder / "garbage.db").write_bytes(b"")  # an empty file is a new database, as SQLite takes it
    assert Bapp(f"sqlite:///{folder}/garbage.db", tmp_path)("db", "upgrade").exit_code == 0


def test_item18_a_folder_bapp_cannot_write_is_exit_5(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    under_a_file = Bapp(f"sqlite:///{blocker}/bapp.db", tmp_path)("db", "upgrade")
    assert under_a_file.exit_code == 5 and "cannot create the database folder" in under_a_file.stderr
    # The lock file beside the database cannot be created (a directory is in its way; without root, a
    # folder without write permission gives the same error).
    folder = tmp_path / "data"
    folder.mkdir()
    (folder / "bapp.db.migrations.lock").mkdir()
    blocked = Bapp(f"sqlite:///{folder}/bapp.db", tmp_path)("db", "upgrade")
    assert blocked.exit_code == 5
    assert f"cannot create the lock file {folder}/bapp.db.migrations.lock" in blocked.stderr
    if os.geteuid() != 0:
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o555)
        refused = Bapp(f"sqlite:///{locked}/bapp.db", tmp_path)("db", "upgrade")
        assert refused.exit_code == 5 and "unexpected error" not in refused.stderr


def test_db_upgrade_makes_the_folder_a_sqlite_link_points_into_and_names_a_file_in_the_folders_place(
    tmp_path: Path,
) -> None:
    """`db upgrade` makes the file's folder; SQLite makes the file where a link at the URL's path points. A link into
    a folder not there yet was "the database cannot be written: unable to open database file" with a hint about
    permissions (the link's own folder was made, not its target's), after every other command had sent the user to
    `bapp db upgrade`. A file where the folder goes was "cannot create the database folder …: File exists"."""
    link = tmp_path / "bapp.db"
    link.symlink_to(tmp_path / "data" / "bapp.db")
    linked = Bapp(f"sqlite:///{link}", tmp_path)
    assert "run `bapp db upgrade`" in linked("clients", "list").stderr
    upgraded = linked("db", "upgrade")
    assert upgraded.exit_code == 0, upgraded.stderr
    assert link.is_symlink() and (tmp_path / "data" / "bapp.db").is_file()
    assert linked("clients", "list").exit_code == 0
    (tmp_path / "plain").write_text("a file, not a folder\n")
    result = Bapp(f"sqlite:///{tmp_path / 'plain' / 'bapp.db'}", tmp_path)("db", "upgrade")
    assert result.exit_code == 5, result.stderr
    assert result.stderr.startswith(f"Error: cannot create the database folder {tmp_path / 'plain'}: it is a file\n")
    assert (tmp_path / "plain").read_text() == "a file, not a folder\n"


def test_a_sqlite_url_naming_a_directory_is_exit_5_saying_so(tmp_path: Path) -> None:
    """A directory was "database error: unable to open database file" (SQLite's words, naming neither the path
    nor the reason), and a URL ending in / for a folder not there yet made `db upgrade` create a database file of
    the folder's name."""
    folder = tmp_path / "data"
    folder.mkdir()
    for given, named in ((folder, folder), (f"{folder}/.", folder), (f"{tmp_path}/new/", tmp_path / "new")):
        for args in (("db", "upgrade"), ("db", "current"), ("clients", "list"), ("bookings", "list")):
            result = Bapp(f"sqlite:///{given}", tmp_path)(*args)
            assert result.exit_code == 5, (given, args, result.stderr)
            assert f"the database URL names a directory ({named}), not a file" in result.stderr
    assert not (tmp_path / "new").exists() and list(folder.iterdir()) == []


def test_a_sqlite_file_name_too_long_for_the_file_system_is_exit_5(tmp_path: Path) -> None:
    """Asking whether the file was there raised OSError (ENAMETOOLONG): exit 1, 'unexpected error'."""
    too_long = tmp_path / ("x" * 300 + ".db")
    for args in (("db", "upgrade"), ("db", "current"), ("clients", "list"), ("bookings", "list")):
        result = Bapp(f"sqlite:///{too_long}", tmp_path)(*args)
        assert result.exit_code == 5, (args, result.stderr)
        assert f"cannot open the database file {too_long}: File name too long" in result.stderr


# -- item 19: a revision from a newer bapp; unknown migration targets ---------------------------------


def test_item19_a_database_from_a_newer_bapp_says_so_everywhere(bapp: Bapp) -> None:
    engine = make_engine(bapp.database_url)
    with engine.begin() as connection:
        connection.execute(text("UPDATE alembic_version SET version_num = '0099_from_the_future'"))
    engine.dispose()
    for args in (("clients", "list"), ("db", "upgrade"), ("db", "current"), ("db", "downgrade", "base", "--yes")):
        result = bapp(*args)
        assert result.exit_code == 5, (args, result.stderr)
        assert "0099_from_the_future" in result.stderr and "made by a newer bapp" in result.stderr
        assert "bapp db upgrade`" not in result.stderr and "unexpected error" not in result.stderr
    engine = make_engine(bapp.database_url)
    with engine.connect() as connection:
        assert connection.execute(text("SELECT version_num FROM alembic_version")).scalar() == "0099_from_the_future"
    engine.dispose()


def test_item19_an_unknown_migration_target_is_invalid_input(bapp: Bapp) -> None:
    for args in (("db", "downgrade", "nonsense", "--yes"), ("db", "upgrade", "nonsense")):
        result = bapp(*args)
        assert result.exit_code == 6, result.stderr
        assert "'nonsense'" in result.stderr and "bapp db history" in result.stderr
        assert "unexpected error" not in result.stderr
    assert bapp("db", "current").exit_code == 0  # still at head


# -- item 23: progress on a terminal only -------------------------------------------------------------


@pytest.fixture
def paged_fake() -> Any:
    with FakeCalendly(event_types=catalogue(250)) as fake:
        yield fake


def test_item23_sync_progress_is_shown_on_a_terminal_and_silent_otherwise(bapp: Bapp, paged_fake: FakeCalendly) -> None:
    bapp.env.update({"CALENDLY_API_KEY": TOKEN, "CALENDLY_API_BASE_URL": paged_fake.base_url, **FAST_RETRIES})
    shown = run_on_terminal(bapp, "calendly", "sync", "--user", USER, stdout_tty=False)
    assert shown.exit_code == 0, shown.stderr
    # the first page always shows; later ones at most ten times a second
    assert "Calendly sync: fetched 1 page (100 items)…" in shown.stderr
    assert "Calendly sync: applying 250 items…" in shown.stderr
    assert shown.stderr.endswith("\r\x1b[K")  # the line is erased: the terminal is left clean
    assert shown.stdout.startswith("run_id\t")
    silent = bapp.process("calendly", "sync", "--user", USER)
    assert silent.exit_code == 0 and silent.stderr == ""  # cron: nothing on stderr


def test_item23_pull_bookings_progress_counts_pages_on_a_terminal(bapp: Bapp, paged_fake: FakeCalendly) -> None:
    from tests.fakes.calendly_server import make_invitee, make_scheduled_event

    bapp.env.update({"CALENDLY_API_KEY": TOKEN, "CALENDLY_API_BASE_URL": paged_fake.base_url, **FAST_RETRIES})
    assert bapp("calendly", "sync", "--user", USER).exit_code == 0
    import datetime as dt

    start = dt.datetime.now(dt.UTC) + dt.timedelta(days=3)
    for n in range(3):
        event = make_scheduled_event(n, paged_fake.event_types[0]["uri"], start + dt.timedelta(hours=n))
        paged_fake.add_scheduled_event(event, [make_invitee(event["uri"], n)])
    shown = run_on_terminal(bapp, "calendly", "pull-bookings", stdout_tty=False)
    assert shown.exit_code == 0, shown.stderr
    assert "Calendly bookings pull: fetched 1 page (3 items)…" in shown.stderr
    assert "Calendly bookings pull: applying 3 items…" in shown.stderr
    quiet = run_on_terminal(bapp, "--quiet", "calendly", "pull-bookings", stdout_tty=False)
    assert quiet.exit_code == 0 and quiet.stderr == ""


def test_item23_import_progress_counts_rows_and_the_share_of_the_file_on_a_terminal(bapp: Bapp, tmp_path: Path) -> None:
    source = tmp_path / "clients.csv"
    source.write_text("email,name\n" + "".join(f"client{n}@example.com,Client {n}\n" for n in range(3)))
    shown, quiet = run_in_turn_on_terminal(
        bapp, [("import", "clients", str(source)), ("--quiet", "import", "clients", str(source))], stdout_tty=False
    )
    assert shown.exit_code == 0, shown.stderr
    assert "importing: 3 rows (100% of the file)…\r\x1b[K" in shown.stderr  # shown, then erased
    assert "Imported clients: 3 created" in shown.stderr
    # stdin has no size to share; --quiet and a piped stderr (cron) show nothing
    piped = run_on_terminal(bapp, "import", "clients", "-", "--input-format", "csv", stdout_tty=False, stdin=source)
    assert piped.exit_code == 0 and "importing: 3 rows…\r\x1b[K" in piped.stderr
    assert quiet.exit_code == 0 and quiet.stderr == ""
    silent = bapp.process("import", "clients", str(source))
    assert silent.exit_code == 0 and silent.stderr == ""


# -- item 25: options on the wrong side of the command ------------------------------------------------


def test_item25_a_misplaced_option_says_where_it_goes(bapp: Bapp) -> None:
    root_side = bapp("--json", "clients", "list")
    assert root_side.exit_code == 2
    assert "--json is an option of `bapp clients list`" in root_side.stderr
    assert "`bapp clients list --json`" in root_side.stderr and "Possible options: --version" not in root_side.stderr
    with_value = bapp("--format", "json", "clients", "list")
    assert with_value.exit_code == 2 and "`bapp clients list --format …`" in with_value.stderr
    command_side = bapp("clients", "list", "--database-url", "sqlite:///x.db")
    assert command_side.exit_code == 2
    assert "--database-url is a global option: put it before the command" in command_side.stderr
    unknown = bapp("--nonsense", "clients", "list")
    assert unknown.exit_code == 2 and "No such option: --nonsense" in unknown.stderr


def test_item25_with_debug_an_unexpected_error_does_not_ask_for_debug(
    bapp: Bapp, monkeypatch: pytest.MonkeyPatch
) -> None:
    import bapp_cli.services.plain_reads as pathways

    def broken(*_args: Any, **_kwargs: Any) -> Any:
        raise RuntimeError("a bug")

    monkeypatch.setattr(pathways, "list_pathways", broken)  # a stand-in bug: the error path is under test
    plain = bapp("pathways", "list")
    assert plain.exit_code == 1 and "rerun with --debug" in plain.stderr
    debugged = bapp("--debug", "pathways", "list")
    assert debugged.exit_code == 1
    assert "Traceback" in debugged.stderr and "rerun with --debug" not in debugged.stderr


def test_a_held_migration_lock_is_busy_without_offering_a_wait_flag_db_upgrade_lacks(bapp: Bapp) -> None:
    # Only calendly sync and pull-bookings take --wait; a busy `db upgrade` (or Calendly booking) told the
    # user to pass it, and the flag then failed as unknown.
    from bapp_cli.db.engine import make_engine
    from bapp_cli.db.locks import named_lock

    engine = make_engine(bapp.database_url)
    try:
        with (
            named_lock(engine, "migrations", what="migration"),
            mock.patch("bapp_cli.db.migration.MIGRATION_LOCK_WAIT_SECONDS", 0.0),
        ):
            result = bapp("db", "upgrade")
    finally:
        engine.dispose()
    assert result.exit_code == 75, result.stderr
    assert "another migration is running" in result.stderr
    assert "try later" in result.stderr and "--wait" not in result.stderr


def test_a_change_to_a_row_another_session_deleted_meanwhile_is_written_meanwhile_exit_8(session: Any) -> None:
    # Since 1635e4b a hold Calendly turns down deletes the account and enrolment it made, so a command that read one
    # of those rows just before may flush an UPDATE that matches no row: the ORM's StaleDataError, which no
    # command turns into a BappError. It is another session's change, as a key taken meanwhile is (exit 8), not a bug.
    from sqlalchemy import delete
    from sqlalchemy.orm.exc import StaleDataError

    from bapp_cli.db.engine import database_failure
    from bapp_cli.db.models import Skill

    skill = Skill(slug="gone-meanwhile", name="Gone")
    session.add(skill)
    session.flush()
    session.execute(delete(Skill.__table__).where(Skill.__table__.c.id == skill.id))  # as another session's delete
    skill.name = "Renamed"
    with pytest.raises(StaleDataError) as raised:
        session.flush()
    failure = database_failure(raised.value)
    assert failure is not None and failure.exit_code == 8 and failure.code == "written_meanwhile", failure
    assert "removed a record this one changes" in str(failure)


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_a_row_whose_referent_another_session_removed_meanwhile_is_written_meanwhile_exit_8(session: Any) -> None:
    # PostgreSQL's foreign key refusing a row (23503): bapp looked its referent up, so another session removed it
    # since. `clients enroll` met it once (a turned-down hold took the account); it now waits for that removal
    import datetime as dt

    from sqlalchemy.exc import IntegrityError

    from bapp_cli.db.engine import database_failure
    from bapp_cli.db.models import Enrolment

    session.add(Enrolment(client_id=987654, pathway_id=987654, start_date=dt.date(2031, 1, 1)))
    with pytest.raises(IntegrityError) as raised:
        session.flush()
    failure = database_failure(raised.value)
    assert failure is not None and failure.exit_code == 8 and failure.code == "written_meanwhile", failure
    assert "another session removed a record this one refers to meanwhile" in str(failure)
