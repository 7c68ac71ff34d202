"""P1 fast paths: `--version`, piped `--help` and completion answered without Typer, and identical to it."""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bapp_cli import __version__
from tests.conftest import REPO, Bapp

FULL_APP = "import sys; from bapp_cli.cli.app import main; main(sys.argv[1:])"


def run(args: list[str], env: dict[str, str], *, full: bool = False) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-c", FULL_APP, *args] if full else [sys.executable, "-m", "bapp_cli", *args]
    return subprocess.run(command, env=env, capture_output=True, text=True, cwd=REPO, timeout=60)


def run_watching_imports(args: list[str], env: dict[str, str]) -> tuple[subprocess.CompletedProcess[str], set[str]]:
    """`bapp args` as a real process, and the top-level packages it imported (from -X importtime on stderr)."""
    completed = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "bapp_cli", *args],
        env=env,
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=60,
    )
    lines = completed.stderr.splitlines()
    loaded = {line.rsplit("|", 1)[1].strip().split(".")[0] for line in lines if line.startswith("import time:")}
    return completed, loaded


def modules_loaded(args: list[str], env: dict[str, str]) -> set[str]:
    return run_watching_imports(args, env)[1]


@pytest.fixture
def sqlite_bapp(sqlite_template: Path, tmp_path: Path) -> Bapp:
    """Most of these tests are about the command tree, not the backend: SQLite only keeps them quick."""
    import shutil

    shutil.copyfile(sqlite_template, tmp_path / "bapp.db")
    return Bapp(f"sqlite:///{tmp_path / 'bapp.db'}", tmp_path)


@pytest.fixture
def env(sqlite_bapp: Bapp) -> dict[str, str]:
    return sqlite_bapp._environment(None)


def populate(bapp: Bapp) -> None:
    for args in (
        ("clients", "add", "ada@example.com"),
        ("clients", "add", "alan@example.com"),
        ("builders", "add", "grace@example.com"),
        ("skills", "add", "prompting", "--name", "Prompting"),
    ):
        result = bapp(*args)
        assert result.exit_code == 0, result.stderr


def test_version_without_typer(env: dict[str, str]) -> None:
    result = run(["--version"], env)
    assert result.returncode == 0 and result.stdout == f"bapp {__version__}\n"
    assert result.stdout == run(["--version"], env, full=True).stdout
    assert not {"typer", "rich", "sqlalchemy"} & modules_loaded(["--version"], env)


@pytest.mark.parametrize("columns", [None, "100", "60"])
def test_piped_help_is_exactly_typers(env: dict[str, str], columns: str | None) -> None:
    if columns is None:
        env.pop("COLUMNS", None)
    else:
        env["COLUMNS"] = columns
    first = run(["--help"], env)  # builds the cache
    cached = run(["--help"], env)
    typer_help = run(["--help"], env, full=True)
    assert first.returncode == cached.returncode == 0
    assert first.stdout == cached.stdout == typer_help.stdout
    assert "Commands:" in cached.stdout and "bookings" in cached.stdout
    loaded = modules_loaded(["--help"], env)
    assert "typer" not in loaded and "sqlalchemy" not in loaded


# `bapp ARGS` whose import of the module named first is stopped by Ctrl-C, as a real interrupt lands while bapp starts
INTERRUPTED_WHILE_LOADING = (
    "import sys\n"
    "stopped_at = sys.argv.pop(1)\n"
    "class Interrupt:\n"
    "    def find_spec(self, name, path=None, target=None):\n"
    "        if name == stopped_at:\n"
    "            raise KeyboardInterrupt\n"
    "sys.meta_path.insert(0, Interrupt())\n"
    "from bapp_cli.cli.launcher import main\n"
    "main()\n"
)


@pytest.mark.parametrize(
    ("module", "args"),
    [
        ("bapp_cli.cli.command_index", ["--help"]),  # the fast path's
        ("bapp_cli.cli.app", ["sessions", "list"]),  # the full app's
        ("bapp_cli.cli.sessions", ["sessions", "list"]),  # a command group's, as the command runs
    ],
)
def test_ctrl_c_while_bapp_starts_is_a_stop_not_a_traceback(env: dict[str, str], module: str, args: list[str]) -> None:
    command = [sys.executable, "-c", INTERRUPTED_WHILE_LOADING, module, *args]
    completed = subprocess.run(command, env=env, capture_output=True, text=True, cwd=REPO, timeout=60)
    assert (completed.returncode, completed.stdout) == (130, "")
    assert completed.stderr == "Interrupted; nothing was changed.\n"


# `bapp ARGS` stopped (Ctrl-C, or `timeout`'s SIGTERM) as it closes its database connections, its outcome decided;
# with a module named first (else "-"), the command is also stopped as that module loads, before it ends
STOPPED_WHILE_CLOSING = INTERRUPTED_WHILE_LOADING.replace(
    "from bapp_cli.cli.launcher",
    "from bapp_cli.cli.context import AppState\n"
    "close = AppState.close\n"
    "def stopped_while_closing(self):\n"
    "    close(self)\n"
    "    raise KeyboardInterrupt\n"
    "AppState.close = stopped_while_closing\n"
    "from bapp_cli.cli.launcher",
)


@pytest.mark.parametrize(
    ("stopped_at", "code", "stderr"),
    [("-", 0, ""), ("bapp_cli.cli.clients", 130, "Interrupted; nothing was changed.\n")],
    ids=["after-its-commit", "stopped-already"],
)
def test_a_stop_while_the_command_closes_leaves_its_outcome_said_once(
    bapp: Bapp, stopped_at: str, code: int, stderr: str
) -> None:
    """The launcher's 'nothing was changed' is for a stop before the command runs: after it, the command's own
    outcome stands (committed: exit 0, not a claim that nothing was), and a stop it reported is not reported twice."""
    command = [sys.executable, "-c", STOPPED_WHILE_CLOSING, stopped_at, "clients", "add", "ada@example.com"]
    completed = subprocess.run(
        command, env=bapp._environment(None), capture_output=True, text=True, cwd=REPO, timeout=60
    )
    assert (completed.returncode, completed.stderr) == (code, stderr)
    assert bapp("clients", "show", "ada@example.com").exit_code == (0 if code == 0 else 7)  # 7: not found


def test_a_corrupt_cache_is_rebuilt(env: dict[str, str], tmp_path: Path) -> None:
    reference = run(["--help"], env).stdout
    cache_files = list(Path(env["BAPP_CACHE_DIR"]).glob("command-index-*.json"))
    assert len(cache_files) == 1
    cache_files[0].write_text("{not json")
    assert run(["--help"], env).stdout == reference
    assert run(["--help"], env).stdout == reference


COMPLETION_LINES = [
    ("bapp ", 1),
    ("bapp pa", 1),
    ("bapp pathways ", 2),
    ("bapp pathways show ", 3),
    ("bapp pathways show PL", 3),
    ("bapp bookings list --", 3),
    ("bapp bookings list --client ", 4),
    ("bapp bookings list --client a", 4),
    ("bapp sessions list --format ", 4),
    ("bapp skills assign ", 3),
    ("bapp skills assign ada@example.com ", 4),
    ("bapp clients show ", 3),
    ("bapp builders update ", 3),
    ("bapp db upgrade --", 3),
    ("bapp pathways list --format json --", 5),
    ("bapp nosuch ", 2),
    ("bapp --database-url x pa", 3),
    ("bapp -q pathways sh", 3),
    ("bapp bookings create --answer a --answer b --", 7),
    ("bapp bookings create --pathway=", 3),
    ("bapp pathways show accelerate extra ", 4),
]


@pytest.fixture
def populated_env(sqlite_bapp: Bapp, env: dict[str, str]) -> dict[str, str]:
    from bapp_cli.cli import command_index

    populate(sqlite_bapp)
    # the command index that a first Tab builds with Typer, built here in-process (the piped --help tests build it
    # in a real one): a completion run that imports Typer then shows that its fast path handed the request over
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("BAPP_CACHE_DIR", env["BAPP_CACHE_DIR"])
        command_index.load_or_build()
    return env


@pytest.mark.parametrize("line,cword", COMPLETION_LINES)
def test_bash_completion_matches_typer(sqlite_bapp: Bapp, populated_env: dict[str, str], line: str, cword: int) -> None:
    request = {"_BAPP_COMPLETE": "complete_bash", "COMP_WORDS": line, "COMP_CWORD": str(cword)}
    # the launcher's fast path is about its process: a real one
    fast, loaded = run_watching_imports([], {**populated_env, **request})
    typer_answer = sqlite_bapp(env=request)  # Typer's own answer, the same `main`, in-process
    assert fast.returncode == typer_answer.exit_code == 0
    assert fast.stdout == typer_answer.stdout
    # a fast path that fails hands the request to Typer, whose answer is the same: only its imports tell
    assert "typer" not in loaded, "the launcher's fast path did not answer: Typer did"


@pytest.mark.parametrize(
    ("line", "values"),
    [
        ("bapp bookings list --status ", "pending confirmed completed cancelled no_show"),
        ("bapp skills complete ada@example.com prompting --via b", "builder_validation"),
        ("bapp progress table --status ", "active paused completed"),
        ("bapp clients set-status ada@example.com accelerate ", "active paused completed"),  # an argument's too
        ("bapp sessions list --category ", "free pathway specialized"),
        ("bapp calendly webhook subscriptions --scope ", "user organization"),
        # in any case, as the option takes it (`--status CO` runs): offered as stored
        ("bapp bookings list --status CO", "confirmed completed"),
        ("bapp clients set-status ada@example.com accelerate Pa", "paused"),
        ("bapp pathways list --format JS", "json jsonl"),  # no one_of, but read in any case too (`--format JSON`)
        # no_show as stored, never `no-show` beside it (one status, offered once; the option takes either): its other
        # spelling's start completes to it, as `CO` does to completed (it offered nothing)
        ("bapp bookings list --status no", "no_show"),
        ("bapp bookings list --status No-S", "no_show"),
        ("bapp bookings list --status no-show", "no_show"),
    ],
)
def test_a_flag_taking_one_of_a_few_names_completes_them(
    sqlite_bapp: Bapp, populated_env: dict[str, str], line: str, values: str
) -> None:
    """--status and --via completed nothing (their names are `bapp_cli.db.domains`', which the fast path left out of
    start-up): the command index keeps which names a `one_of` option takes, read only as its value is completed."""
    cword = str(len(line.split()) - (0 if line.endswith(" ") else 1))
    request = {"_BAPP_COMPLETE": "complete_bash", "COMP_WORDS": line, "COMP_CWORD": cword}
    fast, loaded = run_watching_imports([], {**populated_env, **request})
    assert fast.stdout.split() == values.split() and "typer" not in loaded
    assert sqlite_bapp(env=request).stdout == fast.stdout  # Typer's own answer


@pytest.mark.parametrize("line", ["bapp ", "bapp pathways sh", "bapp clients show ", "bapp bookings list --"])
def test_zsh_completion_offers_typers_values(populated_env: dict[str, str], line: str) -> None:
    env = {**populated_env, "_BAPP_COMPLETE": "complete_zsh", "_TYPER_COMPLETE_ARGS": line}
    (fast_run, loaded), slow = run_watching_imports([], env), run([], env, full=True).stdout
    fast = fast_run.stdout
    assert "typer" not in loaded, "the launcher's fast path did not answer: Typer did"

    def values(text: str) -> list[str]:
        if text.strip() == "_files":
            return []
        body = text.split("((", 1)[1].rsplit("))", 1)[0]
        return [entry.split('":"', 1)[0].strip('"') for entry in body.splitlines()]

    assert values(fast) == values(slow)


@pytest.mark.parametrize(
    "request_env",
    [
        {"_BAPP_COMPLETE": "bogus"},  # Click: 'Invalid completion instruction.', exit 1
        {"_BAPP_COMPLETE": "source_nosuch"},  # Click: 'Shell nosuch not supported.', exit 1
        # Typer: 'unexpected error: ValueError: invalid literal for int()', exit 1
        {"_BAPP_COMPLETE": "complete_bash", "COMP_WORDS": "bapp sk", "COMP_CWORD": "abc"},
    ],
)
def test_a_completion_request_bapp_cannot_read_is_a_usage_error(
    env: dict[str, str], request_env: dict[str, str]
) -> None:
    result = run([], {**env, **request_env})
    assert result.returncode == 2, result.stderr
    assert "Error: _BAPP_COMPLETE: not a completion request bapp can answer" in result.stderr
    assert "unexpected" not in result.stderr


def test_value_completion_reads_the_database(bapp: Bapp) -> None:
    populate(bapp)
    populated_env = bapp._environment(None)

    def complete(line: str) -> list[str]:
        env = {**populated_env, "_BAPP_COMPLETE": "complete_bash", "COMP_WORDS": line}
        env["COMP_CWORD"] = str(len(line.split()) - (0 if line.endswith(" ") else 1))
        return run([], env).stdout.split()

    assert complete("bapp clients show ") == ["ada@example.com", "alan@example.com"]
    assert complete("bapp clients show ala") == ["alan@example.com"]
    assert complete("bapp builders update ") == ["grace@example.com"]
    assert complete("bapp pathways show ") == ["accelerate", "pivot", "play"]
    assert complete("bapp skills assign ada@example.com ") == ["prompting"]
    # completion never fails, even on a database that does not exist
    broken = {**populated_env, "BAPP_DATABASE_URL": "sqlite:////nonexistent/dir/x.db"}
    broken.update({"_BAPP_COMPLETE": "complete_bash", "COMP_WORDS": "bapp clients show ", "COMP_CWORD": "3"})
    result = run([], broken)
    assert result.returncode == 0 and result.stdout.strip() == ""
    assert not os.path.exists("/nonexistent/dir/x.db")


def test_value_completion_reads_a_sqlite_file_whose_path_has_uri_syntax_in_it(
    sqlite_template: Path, tmp_path: Path
) -> None:
    """Completion opened SQLite's URI `file:PATH?mode=ro` unquoted: in `50% #2?/bapp.db` SQLite read `%` as an escape's,
    `#` as the fragment's start, `?` as the query's, and opened another file or none, so it offered nothing."""
    import shutil

    (tmp_path / "50% #2?").mkdir()
    shutil.copyfile(sqlite_template, tmp_path / "50% #2?" / "bapp.db")
    bapp = Bapp(f"sqlite:///{tmp_path / '50%25 #2%3F' / 'bapp.db'}", tmp_path)  # the URL's escapes, as SQLAlchemy's
    populate(bapp)
    line = {"_BAPP_COMPLETE": "complete_bash", "COMP_WORDS": "bapp clients show ", "COMP_CWORD": "3"}
    result = run([], {**bapp._environment(None), **line})
    assert (result.returncode, result.stdout.split()) == (0, ["ada@example.com", "alan@example.com"]), result.stderr


def test_value_completion_waits_for_postgresql_no_longer_than_its_own_2_seconds(env: dict[str, str]) -> None:
    import socket

    # a server that takes the connection and never answers: the URL's own connect_timeout (an hour here) replaced
    # completion's 2 seconds, so a TAB waited as long (the run's 60-second timeout ends it)
    with socket.create_server(("127.0.0.1", 0)) as silent:
        url = f"postgresql://nobody:pw@127.0.0.1:{silent.getsockname()[1]}/none?connect_timeout=3600"
        line = {"_BAPP_COMPLETE": "complete_bash", "COMP_WORDS": "bapp clients show ", "COMP_CWORD": "3"}
        result = run([], {**env, "BAPP_DATABASE_URL": url, **line})
    assert result.returncode == 0 and result.stdout.strip() == ""


def test_value_completion_waits_for_another_writers_lock_half_a_second_on_both_backends(bapp: Bapp) -> None:
    # SQLite's wait was half a second; PostgreSQL's was a command's lock_timeout (30 s): a TAB while a migration (or
    # a psql LOCK TABLE) held the table waited that long, then offered nothing
    populate(bapp)
    line = {"_BAPP_COMPLETE": "complete_bash", "COMP_WORDS": "bapp clients show ", "COMP_CWORD": "3"}
    with contextlib.ExitStack() as holding:  # let go as it ends
        if bapp.database_url.startswith("sqlite"):  # the sqlite3 shell's exclusive locking mode: not even a read
            holder = holding.enter_context(
                contextlib.closing(sqlite3.connect(bapp.database_url.removeprefix("sqlite:///")))
            )
            holder.execute("PRAGMA locking_mode = EXCLUSIVE")
            holder.execute("UPDATE users SET email = email")
            holder.commit()
        else:  # as an ALTER TABLE of it would
            import psycopg

            holder = holding.enter_context(psycopg.connect(bapp.database_url.replace("+psycopg", "")))
            holder.execute("SET idle_in_transaction_session_timeout = '60s'")
            holder.execute("LOCK TABLE users IN ACCESS EXCLUSIVE MODE")
        started = time.monotonic()
        result = run([], {**bapp._environment(None), **line})
        waited = time.monotonic() - started
    assert result.returncode == 0 and result.stdout.strip() == "", result.stderr
    assert waited < 15, f"a TAB waited {waited:.1f} s for the lock"  # the old PostgreSQL wait: 30 s at least


@pytest.mark.parametrize(
    ("shell", "script", "installed"),
    [
        ("fish", "complete --command bapp", ".config/fish/completions/bapp.fish"),
        ("zsh", "#compdef bapp", ".zfunc/_bapp"),
        ("bash", "_bapp_completion()", ".bash_completions/bapp.sh"),
    ],
)
def test_completion_is_installed_and_shown_for_the_shell_named(
    env: dict[str, str], tmp_path: Path, shell: str, script: str, installed: str
) -> None:
    # Typer's flags take no shell word: it was dropped, and the script of the shell bapp was started from (bash, here
    # or wherever the tests run from one) was shown and installed in its place
    home = {**env, "HOME": str(tmp_path / "home")}
    shown = run(["--show-completion", shell], home)
    assert (shown.returncode, shown.stdout.startswith(script)) == (0, True), shown.stdout[:200]
    done = run(["--no-color", "--install-completion", shell], home)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"{shell} completion installed in {tmp_path / 'home' / installed}\n")
    assert script in (tmp_path / "home" / installed).read_text()


@pytest.mark.parametrize("flag", ["--show-completion", "--install-completion"])
def test_completion_for_a_shell_bapp_cannot_complete_is_a_usage_error_naming_the_choices(
    env: dict[str, str], tmp_path: Path, flag: str
) -> None:
    result = run(["--config", str(tmp_path / "config.toml"), flag, "tcsh"], {**env, "HOME": str(tmp_path / "home")})
    assert (result.returncode, result.stdout) == (2, ""), result.stdout[:200]
    assert f"Error: {flag}: no completion for 'tcsh'" in result.stderr
    assert f"Hint: name one: {flag} bash|zsh|fish|powershell|pwsh" in result.stderr
    assert not (tmp_path / "home").exists()


@pytest.mark.parametrize(("shell", "code", "said"), [("bash", 0, "_bapp_completion()"), ("sh", 2, "")])
def test_completion_with_no_shell_named_is_for_the_shell_bapp_was_started_from(
    env: dict[str, str], tmp_path: Path, shell: str, code: int, said: str
) -> None:
    # started from a shell Typer cannot complete (sh), Typer printed "Shell sh is not supported." on stdout, exit 1
    started = subprocess.run(
        # `; exit` keeps the shell as bapp's parent: a lone command is exec'd in its place, and the shell found was
        # whatever ran the tests (make's sh)
        [f"/bin/{shell}", "-c", f'"{sys.executable}" -m bapp_cli --show-completion; exit $?'],
        env={**env, "HOME": str(tmp_path / "home")},
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=60,
    )
    assert (started.returncode, started.stdout[: len(said)]) == (code, said), started.stderr
    if code:
        assert started.stderr.startswith("Error: --show-completion: no completion for sh (the shell bapp was started")


@pytest.mark.parametrize("flag", ["--show-completion", "--install-completion"])
def test_a_completion_flag_after_a_command_hints_a_command_line_that_works(
    env: dict[str, str], tmp_path: Path, flag: str
) -> None:
    # the hint put the command words after the flag (`bapp --show-completion clients list`), which reads `clients`
    # as the shell's name and is exit 2 in its turn
    home = {**env, "HOME": str(tmp_path / "home")}
    misplaced = run(["clients", "list", flag], home)
    assert misplaced.returncode == 2
    hinted = misplaced.stderr.rsplit("e.g. `bapp ", 1)[1].split("`", 1)[0].split()
    assert hinted == [flag]
    assert run([*hinted, "bash"], home).returncode == 0


# `bapp ARGS` through the console entry point, reporting on stderr, as it exits, how many collections the cyclic garbage
# collector started before anything was frozen (during start-up), whether it is on, and how many objects are frozen.
WATCHING_THE_COLLECTOR = """
import atexit, gc, json, sys
from bapp_cli.cli.launcher import main
early = []
report = lambda: {"early": len(early), "enabled": gc.isenabled(), "frozen": gc.get_freeze_count()}
atexit.register(lambda: sys.stderr.write("COLLECTOR " + json.dumps(report()) + "\\n"))
sys.argv[0] = "bapp"
# the counts start from nothing, so no collection this script's own allocations made due is counted as main's
gc.collect()
gc.callbacks.append(lambda phase, info: phase == "start" and gc.get_freeze_count() == 0 and early.append(info))
main()
"""


@pytest.mark.parametrize(
    ("first", "args"),
    [
        ("", ("clients", "add", "ada@example.com")),
        ("", ("clients", "show", "ada@example.com")),
        # objects frozen before the database opens (the Calendly runs and the import freeze too): when the collector
        # was resumed only where nothing was frozen yet, it stayed off to the end, a webhook receiver's days included
        ("import gc; gc.freeze()\n", ("clients", "add", "ada@example.com")),
    ],
    ids=["orm-write", "plain-read", "frozen-first"],
)
def test_start_up_is_not_scanned_by_the_garbage_collector(bapp: Bapp, first: str, args: tuple[str, ...]) -> None:
    """Start-up's objects (Typer, SQLAlchemy, the models) live to the end: the collector is paused while they are made
    and, when the command opens its database, they are frozen and it resumes for the command's own work."""
    if args[1] == "show":
        bapp("clients", "add", "ada@example.com")
    completed = subprocess.run(
        [sys.executable, "-c", first + WATCHING_THE_COLLECTOR, *args],
        env=bapp._environment(None),
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=60,
    )
    assert completed.returncode == 0, completed.stderr
    report = json.loads(completed.stderr.split("COLLECTOR ", 1)[1])
    assert report["early"] == 0  # the old code collected dozens of times during start-up
    assert report["enabled"] is True
    assert report["frozen"] > 10_000  # start-up's objects (~96,000 for a `clients add`, ~22,000 for a `clients show`)
