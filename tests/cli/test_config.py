"""`bapp config`: precedence, sources, masking (R6) and file permissions."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import pytest

from bapp_cli.config import normalise_database_url, resolve_settings
from tests.cli.test_foundation import run_in_terminal
from tests.conftest import REPO, Bapp

TOKEN = "cal-TOKEN-3e9d1b7a"
SIGNING = "whsec-SIGN-55aa"


@pytest.fixture
def cli(tmp_path: Path) -> Bapp:
    return Bapp(f"sqlite:///{tmp_path / 'bapp.db'}", tmp_path)


@pytest.fixture
def cli_database_at_head(tmp_path: Path, sqlite_template: Path) -> None:
    """`cli`'s database, at head: a copy of the suite's migrated template, for a test about settings, not migrating."""
    shutil.copyfile(sqlite_template, tmp_path / "bapp.db")


def settings_by_key(result_json: list[dict[str, object]]) -> dict[str, dict[str, object]]:
    return {str(row["key"]): row for row in result_json}


def test_init_creates_a_0600_file_and_refuses_to_overwrite(cli: Bapp, tmp_path: Path) -> None:
    config_path = tmp_path / "fresh" / "bapp.toml"
    result = cli("--config", str(config_path), "config", "init", "--timezone", "Europe/London")
    assert result.exit_code == 0, result.stderr
    assert stat.S_IMODE(config_path.stat().st_mode) == 0o600
    assert tomllib.loads(config_path.read_text()) == {"timezone": "Europe/London"}
    again = cli("--config", str(config_path), "config", "init")
    assert again.exit_code == 8 and "already exists" in again.stderr and "--force" in again.stderr
    forced = cli("--config", str(config_path), "config", "init", "--force", "--calendly-token-file", "/tmp/tok")
    assert forced.exit_code == 0
    assert tomllib.loads(config_path.read_text()) == {"calendly": {"token_file": "/tmp/tok"}}
    assert stat.S_IMODE(config_path.stat().st_mode) == 0o600


def test_set_keeps_mode_0600_and_unset_removes(cli: Bapp, tmp_path: Path) -> None:
    config_path = Path(cli.env["BAPP_CONFIG"])
    assert cli("config", "set", "calendly.base_url", "http://127.0.0.1:9/").exit_code == 0
    assert cli("config", "set", "timezone", "America/New_York").exit_code == 0
    assert stat.S_IMODE(config_path.stat().st_mode) == 0o600
    data = tomllib.loads(config_path.read_text())
    assert data == {"calendly": {"base_url": "http://127.0.0.1:9/"}, "timezone": "America/New_York"}
    assert cli("config", "unset", "timezone").exit_code == 0
    assert "timezone" not in tomllib.loads(config_path.read_text())
    assert cli("config", "set", "nonsense.key", "x").exit_code == 2
    bad_zone = cli("config", "set", "timezone", "Nowhere/Land")
    assert bad_zone.exit_code == 6 and "Nowhere/Land" in bad_zone.stderr


def test_set_keeps_the_files_owner(cli: Bapp) -> None:
    """The file is written anew and renamed over the old: root's `config set` (sudo, keeping HOME) on a user's file
    gave it to root, mode 0600, so every later command of its user was exit 4, 'cannot read config file'."""
    config_path = Path(cli.env["BAPP_CONFIG"])
    config_path.write_text('timezone = "UTC"\n')
    owner = (65534, 65534) if os.geteuid() == 0 else (os.getuid(), os.getgid())  # nobody's, where root may give it
    os.chown(config_path, *owner)
    config_path.chmod(0o600)
    assert cli("config", "set", "timezone", "Asia/Tokyo").exit_code == 0
    found = config_path.stat()
    assert (found.st_uid, found.st_gid, stat.S_IMODE(found.st_mode)) == (*owner, 0o600)
    assert tomllib.loads(config_path.read_text()) == {"timezone": "Asia/Tokyo"}


def test_set_writes_through_no_link_left_where_its_temporary_file_goes(cli: Bapp, tmp_path: Path) -> None:
    """The file is written first as config.toml.tmp, opened as it was found: a link there (left by anyone who may
    write the folder) had the new text written into the file it names, mode 0600, and the link renamed over the
    config file."""
    config_path = Path(cli.env["BAPP_CONFIG"])
    config_path.write_text('timezone = "UTC"\n')
    elsewhere = tmp_path / "elsewhere"
    elsewhere.write_text("not bapp's\n")
    config_path.with_name("config.toml.tmp").symlink_to(elsewhere)
    assert cli("config", "set", "timezone", "Asia/Tokyo").exit_code == 0
    assert elsewhere.read_text() == "not bapp's\n"
    assert not config_path.is_symlink() and tomllib.loads(config_path.read_text()) == {"timezone": "Asia/Tokyo"}
    assert list(config_path.parent.glob("config.toml?*")) == []


def test_secrets_are_refused_on_the_command_line(cli: Bapp) -> None:
    result = cli("config", "set", "calendly.token", TOKEN)
    assert result.exit_code == 2
    assert "secret" in result.stderr
    assert TOKEN not in result.stderr and TOKEN not in result.stdout
    assert not Path(cli.env["BAPP_CONFIG"]).exists()


def test_show_masks_secrets_and_names_sources(cli: Bapp, tmp_path: Path) -> None:
    config_path = Path(cli.env["BAPP_CONFIG"])
    config_path.write_text(f'timezone = "Asia/Tokyo"\n[calendly]\nwebhook_signing_key = "{SIGNING}"\n')
    env = {
        "CALENDLY_API_KEY": TOKEN,
        "BAPP_DATABASE_URL": "postgresql://app:hunter2-db-pw@db.example.com:5432/bapp",
    }
    for fmt in ("json", "tsv", "csv", "jsonl", "table"):
        result = cli("config", "show", "--format", fmt, env=env)
        assert result.exit_code == 0
        for secret in (TOKEN, SIGNING, "hunter2-db-pw"):
            assert secret not in result.stdout and secret not in result.stderr
    rows = settings_by_key(cli("config", "show", "--json", env=env).json())
    assert rows["calendly.token"] == {"key": "calendly.token", "value": "****", "source": "env:CALENDLY_API_KEY"}
    assert rows["calendly.webhook_signing_key"]["value"] == "****"
    assert rows["calendly.webhook_signing_key"]["source"] == "file"
    assert rows["database_url"]["value"] == "postgresql+psycopg://app:****@db.example.com:5432/bapp"
    assert rows["database_url"]["source"] == "env:BAPP_DATABASE_URL"
    assert rows["timezone"] == {"key": "timezone", "value": "Asia/Tokyo", "source": "file"}
    flagged = settings_by_key(cli("--timezone", "UTC", "config", "show", "--json", env=env).json())
    assert flagged["timezone"]["source"] == "flag"
    assert flagged["calendly.base_url"] == {
        "key": "calendly.base_url",
        "value": "https://api.calendly.com",
        "source": "default",
    }


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        # libpq and SQLAlchemy both take a ? or # in the password, which urlsplit read as the query or fragment
        ("postgresql://app:pw?hunter2@db.example.com/bapp", "postgresql+psycopg://app:****@db.example.com/bapp"),
        ("postgresql://app:pw#hunter2@db.example.com/bapp", "postgresql+psycopg://app:****@db.example.com/bapp"),
        # libpq's own parameter, its name perhaps %-escaped
        (
            "postgresql://db.example.com/bapp?user=app&password=hunter2&sslmode=require",
            "postgresql+psycopg://db.example.com/bapp?user=app&password=****&sslmode=require",
        ),
        # a ? in it: SQLAlchemy and libpq read a value up to the next &, and pw?hunter2 showed hunter2
        (
            "postgresql://db.example.com/bapp?password=pw?hunter2&sslmode=require",
            "postgresql+psycopg://db.example.com/bapp?password=****&sslmode=require",
        ),
        # a raw & in it: both readers end it there and refuse the rest, a parameter without its = (shown; all hidden)
        (
            "postgresql://db.example.com/bapp?password=pw&hunter2&&hunter2&sslmode=require",
            "postgresql+psycopg://db.example.com/bapp?password=****&sslmode=require",
        ),
        (
            "postgresql://db.example.com/bapp?password=pw&hunter2",
            "postgresql+psycopg://db.example.com/bapp?password=****",
        ),
        (
            "postgresql://db.example.com/bapp?pass%77ord=hunter2",
            "postgresql+psycopg://db.example.com/bapp?pass%77ord=****",
        ),
        # an @ in it, with a port: the user's reading took app@db.example.com as the user and the password from
        # the : to that @, and showed what follows it ('hunter2', SQLAlchemy's host). SQLAlchemy's password is
        # 5432/bapp?password=pw: both readings are hidden
        (
            "postgresql://app@db.example.com:5432/bapp?password=pw@hunter2",
            "postgresql+psycopg://app@db.example.com:****",
        ),
        # the converse: the password after the user holds `&password=` (to SQLAlchemy and libpq it is all of
        # hunter2&password=x); masking the `&password=` first hid its @, and hunter2 was shown
        ("postgresql://app:hunter2&password=x@db.example.com/bapp", "postgresql+psycopg://app:****"),
        # a value that is no URL, shown all the same (and refused): its first parameter is masked too, to the end of
        # the word: to libpq it is a keyword/value string whose password is all of hunter2&host=db.example.com
        ("password=hunter2&host=db.example.com", "password=****"),
        # libpq's keyword/value string (no URL, refused) was shown whole, its password too; quoted, or with blanks
        ("host=db.example.com dbname=bapp password=hunter2", "host=db.example.com dbname=bapp password=****"),
        ("host=db.example.com password = 'hunter2 \\' x' user=app", "host=db.example.com password = **** user=app"),
        # a URL whose scheme lost a slash (refused) showed the password after its user
        ("postgresql:/app:hunter2@db.example.com/bapp", "postgresql:/app:****@db.example.com/bapp"),
        # a ? in the password after the user, and a query after it
        (
            "postgresql://app:pw?x@db.example.com/bapp?password=hunter2",
            "postgresql+psycopg://app:****@db.example.com/bapp?password=****",
        ),
        # raw `@` and `/` in it: both readers end it at its first @ and read the rest as the database name, shown as
        # /hunter2@… or @hunter2@…; hidden to its last @ (one in a query's value is none of it, but one after a `?x=1`
        # it holds is: read as a query's, @hunter2@… was shown)
        *(
            (
                f"postgresql://app:pw{held}hunter2@db.example.com/bapp?application_name=a@b",
                "postgresql+psycopg://app:****@db.example.com/bapp?application_name=a@b",
            )
            for held in ("@/", "/@", "?#@/", "@?/#", "/?x=1@", "?x=1@/")
        ),
        # each of / ? # @, raw, at either end of it or in it
        *(
            (url.format(char), "postgresql+psycopg://app:****@db.example.com:5432/bapp")
            for char in "/?#@"
            for url in (
                "postgresql://app:{0}hunter2@db.example.com:5432/bapp",
                "postgresql://app:hunter2{0}@db.example.com:5432/bapp",
                "postgresql://app:hun{0}hunter2@db.example.com:5432/bapp",
            )
        ),
    ],
)
def test_show_masks_the_database_password_wherever_the_url_holds_it(cli: Bapp, url: str, shown: str) -> None:
    for fmt in ("json", "tsv", "csv", "jsonl", "table"):
        result = cli("config", "show", "--format", fmt, env={"BAPP_DATABASE_URL": url})
        assert result.exit_code == 0, result.stderr
        assert "hunter2" not in result.stdout + result.stderr
    rows = settings_by_key(cli("config", "show", "--json", env={"BAPP_DATABASE_URL": url}).json())
    assert rows["database_url"]["value"] == shown


def test_show_masks_the_password_of_any_url_setting(cli: Bapp) -> None:
    # a Calendly base URL (or issuer URL) with credentials is refused when used, but `config show` listed it whole
    env = {"CALENDLY_API_BASE_URL": "https://me:hunter2@calendly.example"}
    Path(cli.env["BAPP_CONFIG"]).write_text('[badges]\nissuer_url = "https://me:hunter2@b.example"\n')
    for fmt in ("json", "tsv", "table"):
        result = cli("config", "show", "--format", fmt, env=env)
        assert result.exit_code == 0 and "hunter2" not in result.stdout + result.stderr, result.stdout
    rows = settings_by_key(cli("config", "show", "--json", env=env).json())
    assert rows["calendly.base_url"]["value"] == "https://me:****@calendly.example"
    assert rows["badges.issuer_url"]["value"] == "https://me:****@b.example"
    assert rows["calendly.pathway_question"]["value"] == "pathway"  # no URL, as it was


def test_a_url_setting_refused_never_echoes_its_password(cli: Bapp) -> None:
    # `config show` masks a URL setting's password, but the errors refusing one quoted it whole, and so did the
    # refusal of an argument that is not UTF-8 (a --database-url typed in another locale)
    attempts = [
        ("config", "set", "calendly.user", "htt://me:hunter2@calendly.example"),
        ("config", "set", "badges.issuer_url", "https://me:hunter2@b.example/?x"),
        ("config", "set", "badges.image_base_url", "ftp://me:hunter2@b.example"),
        ("badges", "issuer", "init", "--name", "B", "--url", "http://me:hunter2@b.example", "--key-file", "k.pem"),
        ("calendly", "whoami"),
        ("--database-url", "postgresql://me:hunter2\udcff@db.example.com/bapp", "clients", "list"),
    ]
    env = {"CALENDLY_API_KEY": "tok-1234", "CALENDLY_API_BASE_URL": "htt://me:hunter2@calendly.example"}
    for command in attempts:
        result = cli(*command, env=env)
        assert result.exit_code in (2, 4, 6) and "me:****@" in result.stderr, (command, result.stderr)
        assert "hunter2" not in result.stderr + result.stdout, (command, result.stderr)


@pytest.mark.parametrize(
    "key", ["calendly.base_url", "calendly.user", "calendly.organization", "badges.issuer_url", "badges.image_base_url"]
)
def test_a_long_url_setting_refused_is_echoed_cut(cli: Bapp, key: str) -> None:
    """A URL setting that is no URL was quoted whole: 5,000 characters given to `config set`, or in the file (then
    every command's refusal, and `config show`'s warning), came back whole, twice with the JSON error line."""
    value = "x" * 5000
    table, name = key.split(".")
    Path(cli.env["BAPP_CONFIG"]).write_text(f'[{table}]\n{name} = "{value}"\n')
    for command in (("config", "show"), ("clients", "list"), ("config", "set", key, value)):
        result = cli(*command, env={"BAPP_FORMAT": "json"})  # the JSON error line quoted it again
        assert result.exit_code in (0, 4, 6), (command, result.stderr)
        assert "x" * 61 not in result.stderr and "…" in result.stderr, (command, result.stderr)


def test_a_long_unknown_key_in_the_file_is_echoed_cut(cli: Bapp) -> None:
    # `config show` warned of a key it does not know (a typo) with the key whole: 5,000 characters of it
    Path(cli.env["BAPP_CONFIG"]).write_text(f"{'x' * 5000} = 1\n[calendly]\n{'y' * 5000} = 1\n")
    result = cli("config", "show")
    assert result.exit_code == 0 and result.stderr.count("unknown key") == 2, result.stderr
    assert "x" * 61 not in result.stderr and "y" * 61 not in result.stderr, result.stderr


def test_show_lists_a_value_that_is_no_url_as_written(cli: Bapp) -> None:
    # every text value went through the URL password mask, which read "Cohort: 10:30@Leeds" as a user "Cohort", a
    # host " 10" and a password "30", and a word after `password=` in a pattern as a libpq password: both shown cut
    name, question = "Cohort: 10:30@Leeds", "which track password = level"
    Path(cli.env["BAPP_CONFIG"]).write_text(
        f'[badges]\nissuer_name = "{name}"\n[calendly]\npathway_question = "{question}"\n'
    )
    for fmt in ("json", "tsv"):
        shown = cli("config", "show", "--format", fmt).stdout
        assert name in shown and question in shown and "****" not in shown, shown


def test_show_masks_a_database_url_that_is_no_text_in_the_file(cli: Bapp) -> None:
    """`database_url` written as a table or an array holding the URL was shown as Python's text of it, password and
    all (it is refused as a URL all the same)."""
    config_path = Path(cli.env["BAPP_CONFIG"])
    for text in (
        'database_url = ["postgresql://app:hunter2@h/db"]\n',
        '[database_url]\nurl = "postgresql://app:hunter2@h/db"\n',
    ):
        config_path.write_text(text)
        for fmt in ("json", "tsv", "csv", "jsonl", "table"):
            result = cli("config", "show", "--format", fmt, env={"BAPP_DATABASE_URL": None})
            assert result.exit_code == 0, result.stderr
            assert "hunter2" not in result.stdout + result.stderr
            assert "key database_url: must be a string" in result.stderr
        rows = settings_by_key(cli("config", "show", "--json", env={"BAPP_DATABASE_URL": None}).json())
        assert rows["database_url"] == {"key": "database_url", "value": "****", "source": "file"}


@pytest.mark.parametrize(
    "url",
    [
        # an @ not written %40: SQLAlchemy reads the password up to the first @, the rest as the host, which the
        # failed connection names; urlsplit (the errors' old reading) gave the whole, which the message does not hold
        "postgresql://app:hunter2@tail-of-secret@127.0.0.1:1/bapp",
        # libpq's own parameter was not scrubbed at all; here SQLAlchemy reads the part after the @ as the host
        "postgresql://app@127.0.0.1:1/bapp?password=hunter2@tail-of-secret",
        # a ? in the password: urlsplit read 'hunter2' (and so scrubbed every 'hunter2'), not the password
        "postgresql://app:tail?of@secret@127.0.0.1:1/bapp",
        # an @ and a / in it (`config show` hides it to its last @): libpq reads the part after its first @ up to the
        # / as the host, which the error named; only the parts between its @s were scrubbed (secret.invalid/tail-of)
        "postgresql://app:hunter2@secret.invalid/tail-of@127.0.0.1:1/bapp",
    ],
)
def test_no_part_of_the_database_password_in_a_failed_connections_error(cli: Bapp, url: str) -> None:
    for args in (["--debug", "-vv", "db", "current"], ["-vv", "clients", "list", "--json"]):
        result = cli(*args, env={"BAPP_DATABASE_URL": url, "BAPP_DEBUG": "1"})
        assert result.exit_code == 5, result.stderr
        # the error is the one naming the host read from the URL: after its first @ (the second URL's 127.0.0.1, as
        # libpq reads it: the engine connects with libpq's reading too, as the plain reads do)
        assert "host" in result.stderr or "127.0.0.1" in result.stderr, result.stderr
        for part in ("hunter2", "tail-of-secret", "of@secret", "secret"):
            assert part not in result.stdout + result.stderr, (part, result.stderr)


def test_set_and_unset_keep_the_files_comments_and_layout(cli: Bapp) -> None:
    """The file was written anew from its values: every comment went (examples/config.toml explains each setting and
    rule in them, and holds settings commented out), as did the order a person gave the file."""
    config_path = Path(cli.env["BAPP_CONFIG"])
    example = (REPO / "examples" / "config.toml").read_text()
    config_path.write_text(example)
    organization = "https://api.calendly.com/organizations/ORG1"
    for command in (
        ("config", "set", "timezone", "America/New_York"),  # a key the file has
        ("config", "set", "calendly.organization", organization),  # one it has only commented out
        ("config", "set", "badges.issuer_name", "Build Apps"),  # one of a table it lacks
        ("config", "unset", "bookings.calendly"),
    ):
        assert cli(*command).exit_code == 0
    text = config_path.read_text()
    comments = [line for line in example.splitlines() if line.lstrip().startswith("#")]
    assert [line for line in text.splitlines() if line.lstrip().startswith("#")] == comments
    expected = tomllib.loads(example)
    expected["timezone"] = "America/New_York"
    expected["calendly"]["organization"] = organization
    expected["badges"] = {"issuer_name": "Build Apps"}
    del expected["bookings"]["calendly"]
    assert tomllib.loads(text) == expected
    assert text.index("[calendly]") < text.index(f'organization = "{organization}"') < text.index("[[calendly.rules]]")
    config_path.write_bytes(example.replace("\n", "\r\n").encode())  # a file from Windows keeps its line endings
    assert cli("config", "set", "timezone", "UTC").exit_code == 0
    assert cli("config", "set", "calendly.user", "https://api.calendly.com/users/U1").exit_code == 0
    lines = config_path.read_bytes().split(b"\n")
    assert lines[-1] == b"" and all(line.endswith(b"\r") for line in lines[:-1])


def test_a_config_file_starting_with_a_byte_order_mark_is_read(cli: Bapp) -> None:
    """Windows Notepad saves UTF-8 with a byte order mark: the file was exit 4 for every command, 'not valid TOML:
    Invalid statement (at line 1, column 1)', where nothing visible is wrong."""
    config_path = Path(cli.env["BAPP_CONFIG"])
    config_path.write_bytes(b'\xef\xbb\xbf# from Notepad\r\ntimezone = "Asia/Tokyo"\r\n')
    rows = settings_by_key(cli("config", "show", "--json").json())
    assert rows["timezone"] == {"key": "timezone", "value": "Asia/Tokyo", "source": "file"}
    assert cli("config", "set", "timezone", "UTC").exit_code == 0
    assert config_path.read_bytes() == b'# from Notepad\r\ntimezone = "UTC"\r\n'


def test_set_keeps_a_comment_holding_a_line_separator_unicode_knows(cli: Bapp) -> None:
    """str.splitlines also splits at U+2028, NEL and the like, which TOML allows in a comment or a string: the
    edited line ended there, read back as no TOML, and the file was written anew without any of its comments."""
    config_path = Path(cli.env["BAPP_CONFIG"])
    text = '# kept\n# see the manual\u2028(section 2), or\x85the wiki\ntimezone = "Asia/Tokyo"\nformat = "json"\n'
    config_path.write_text(text, newline="")
    assert cli("config", "set", "timezone", "UTC").exit_code == 0
    assert config_path.read_bytes().decode() == text.replace("Asia/Tokyo", "UTC")


def test_set_into_a_key_that_is_no_table_is_exit_4_naming_it(cli: Bapp) -> None:
    """`calendly = "x"` (or an array of tables) in the file has no place for calendly.user: that was exit 1."""
    config_path = Path(cli.env["BAPP_CONFIG"])
    for text in ('calendly = "x"\n', '[[calendly]]\nuser = "x"\n'):
        config_path.write_text(text)
        result = cli("config", "set", "calendly.user", "https://api.calendly.com/users/AAAA")
        assert result.exit_code == 4, result.stderr
        assert f"config file {config_path}: calendly is not a table, so it cannot hold calendly.user" in result.stderr
        assert config_path.read_text() == text
        assert cli("config", "unset", "calendly.user").exit_code == 0 and config_path.read_text() == text


# Each racer has imported bapp, then waits for its stdin to close: so they all start `config set` at once.
RACER = (
    "import sys, copy, fcntl, tomllib, tomli_w; from bapp_cli.cli.app import main; import bapp_cli.cli.config; "
    "print('ready', flush=True); sys.stdin.read(); main(sys.argv[1:])"
)


def test_settings_set_at_once_are_all_kept(cli: Bapp) -> None:
    """Each `config set` read the file, changed it and wrote it back: run at once, each wrote back what it had read,
    so most of the changes were lost, though every one said it was made (exit 0)."""
    values = {f"calendly.{name}": f"https://x.example/{name}" for name in ("organization", "base_url")}
    values["calendly.user"] = "https://x.example/users/U1"  # calendly.user is a user's URI
    values |= {"badges.issuer_url": "https://x.example", "badges.image_base_url": "https://x.example/img"}
    values |= {"timezone": "Asia/Tokyo", "format": "json", "bookings.calendly": "never"}
    racers = [
        subprocess.Popen(
            [sys.executable, "-c", RACER, "config", "set", key, value],
            env=cli._environment(None),
            cwd=REPO,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for key, value in values.items()
    ]
    for racer in racers:
        assert racer.stdout is not None and racer.stdout.readline() == "ready\n"
    for racer in racers:
        assert racer.stdin is not None
        racer.stdin.close()
    for racer in racers:
        assert racer.wait(timeout=60) == 0, racer.communicate()
    settings = settings_by_key(cli("config", "show", "--json").json())
    assert {key: settings[key]["value"] for key in values} == values
    assert list(Path(cli.env["BAPP_CONFIG"]).parent.glob("config.toml?*")) == []  # no temporary file left


@pytest.mark.parametrize("ending", ["/", "/.", "/.."])
def test_a_config_path_that_names_a_directory_is_exit_4_and_writes_nothing(
    cli: Bapp, tmp_path: Path, ending: str
) -> None:
    """pathlib drops a last /, /. or /..: `--config ~/.config/bapp/` made `config init` and `config set` write a
    file called bapp where a folder was meant (and a folder not there yet read as no config file at all)."""
    given = f"{tmp_path / 'settings'}{ending}"
    commands = [("config", "init"), ("config", "set", "timezone", "UTC"), ("config", "show"), ("pathways", "list")]
    for flag, env in ((("--config", given), {}), ((), {"BAPP_CONFIG": given})):
        for command in commands:
            result = cli(*flag, *command, env=env)
            assert result.exit_code == 4, (flag, command, result.stderr)
            where = "--config" if flag else "BAPP_CONFIG"
            assert f"config file {given} ({where}) is a directory name: give a file name" in result.stderr
    assert not (tmp_path / "settings").exists()


def test_unset_where_no_folder_can_be_made_changes_nothing_and_set_is_exit_4(cli: Bapp, tmp_path: Path) -> None:
    """The lock on the config file's folder made every `config unset` make the folder first: one where no folder can
    be (a file in the way, a read-only home) was exit 4 'cannot write config file', where there is nothing to
    write and an unset of a key not there is exit 0."""
    (tmp_path / "a-file").write_text("")
    env = {"BAPP_CONFIG": str(tmp_path / "a-file" / "bapp" / "config.toml")}
    unset = cli("config", "unset", "format", env=env)
    assert unset.exit_code == 0, unset.stderr
    result = cli("config", "set", "format", "json", env=env)
    assert result.exit_code == 4 and f"cannot write config file {env['BAPP_CONFIG']}" in result.stderr


def _waits_for_a_lock(pid: int, inode: int) -> bool:
    """Whether process `pid` is blocked on a lock of the file `inode` (a `->` line of /proc/locks)."""
    lines = Path("/proc/locks").read_text().splitlines()
    return any("->" in line and f" {pid} " in line and line.split()[6].endswith(f":{inode}") for line in lines)


def test_init_takes_its_turn_beside_a_config_set(cli: Bapp) -> None:
    """`config init` took no turn on the file, as `config set` does: beside a set (or another init) both found no
    file and wrote one, so one's value was lost though both said it was written. Here a set holds its turn while
    the init starts; once the init waits for it, the set writes the file, and the init then finds it there."""
    import fcntl

    config_path = Path(cli.env["BAPP_CONFIG"])
    folder = os.open(config_path.parent, os.O_RDONLY)
    try:
        fcntl.flock(folder, fcntl.LOCK_EX)  # a `config set` in its turn
        init = subprocess.Popen(
            [sys.executable, "-m", "bapp_cli", "config", "init", "--timezone", "Asia/Tokyo"],
            env=cli._environment(None),
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        inode = os.fstat(folder).st_ino
        while init.poll() is None and not _waits_for_a_lock(init.pid, inode):
            time.sleep(0.01)  # polling for the state wanted, not a guess at how long it takes
        config_path.write_text('format = "json"\n')  # what the set writes in its turn
    finally:
        os.close(folder)  # the turn ends
    _, stderr = init.communicate(timeout=60)
    assert init.returncode == 8 and "already exists" in stderr, stderr
    assert tomllib.loads(config_path.read_text()) == {"format": "json"}


def test_precedence_flag_env_file_default(tmp_path: Path) -> None:
    config_path = tmp_path / "c.toml"
    config_path.write_text('database_url = "sqlite:///from-file.db"\ntimezone = "Asia/Tokyo"\n')
    env = {"DATABASE_URL": "postgres://u@h/from-database-url", "BAPP_TIMEZONE": "Europe/Paris"}
    settings = resolve_settings(config_path=str(config_path), flags={}, environ=env)
    assert settings.database_url == "postgresql+psycopg://u@h/from-database-url"
    assert settings.values["database_url"].source == "env:DATABASE_URL"
    assert settings.timezone == "Europe/Paris"
    env["BAPP_DATABASE_URL"] = "sqlite:///from-bapp-env.db"
    settings = resolve_settings(config_path=str(config_path), flags={}, environ=env)
    assert settings.database_url == "sqlite:///from-bapp-env.db"
    settings = resolve_settings(
        config_path=str(config_path), flags={"database_url": "sqlite:///flag.db", "timezone": "UTC"}, environ=env
    )
    assert (settings.database_url, settings.timezone) == ("sqlite:///flag.db", "UTC")
    settings = resolve_settings(config_path=str(config_path), flags={}, environ={})
    assert settings.database_url == "sqlite:///from-file.db" and settings.timezone == "Asia/Tokyo"
    settings = resolve_settings(config_path=str(tmp_path / "missing.toml"), flags={}, environ={"HOME": str(tmp_path)})
    assert settings.timezone == "UTC" and settings.values["timezone"].source == "default"
    assert settings.database_url.startswith("sqlite:///") and settings.database_url.endswith("bapp.db")


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("postgres://u:p@h:5/d", "postgresql+psycopg://u:p@h:5/d"),
        ("postgresql://u@h/d", "postgresql+psycopg://u@h/d"),
        ("postgresql+psycopg://u@h/d", "postgresql+psycopg://u@h/d"),
        ("sqlite:///x.db", "sqlite:///x.db"),
        ("SQLite:///X.db", "sqlite:///X.db"),
        ("PostgreSQL://U@H/D", "postgresql+psycopg://U@H/D"),
        ("POSTGRESQL+PSYCOPG://u@h/d", "postgresql+psycopg://u@h/d"),
    ],
)
def test_database_url_driver(given: str, expected: str) -> None:
    assert normalise_database_url(given) == expected


def test_unreadable_config_exits_4(cli: Bapp) -> None:
    Path(cli.env["BAPP_CONFIG"]).write_text("this is = = not toml")
    result = cli("config", "show")
    assert result.exit_code == 4
    assert "not valid TOML" in result.stderr


def test_a_config_file_nested_too_deep_through_a_dotted_key_is_exit_4(cli: Bapp) -> None:
    # tomllib refuses arrays and inline tables nested a thousand deep, but not a dotted key's tables: `config set`
    # (which copies the file's data to compare it) ended in exit 1, RecursionError
    config = Path(cli.env["BAPP_CONFIG"])
    config.write_text(".".join(["deep"] * 1000) + " = 1\n")
    for command in (("config", "set", "timezone", "UTC"), ("config", "show"), ("clients", "list")):
        result = cli(*command)
        assert result.exit_code == 4, (command, result.stderr)
        assert "is not valid TOML: arrays or objects nested too deeply" in result.stderr
    assert config.read_text().startswith("deep.deep")  # left as it was
    config.write_text('[calendly]\nuser = "https://api.calendly.com/users/U"\n[[calendly.rules]]\npattern = "x"\n')
    assert cli("config", "set", "timezone", "UTC").exit_code == 0  # bapp's own tables are three deep


@pytest.mark.parametrize("line", ["{} = 1", "[{}]", "x = {{ {} = 1 }}"], ids=["key", "table", "inline"])
def test_a_config_file_of_a_dotted_key_a_megabyte_long_is_refused_at_once(cli: Bapp, line: str) -> None:
    # Python's TOML reader takes time quadratic in a dotted key's parts: a config file under the 1 MB limit holding
    # one key of 400,000 parts kept every command reading it busy for more than half an hour; quoted parts are parts
    Path(cli.env["BAPP_CONFIG"]).write_text(line.format(".".join(["a", '"a"', "'a'"] * 90_000)) + "\n")
    result = cli.process("config", "show", timeout=30)
    assert result.exit_code == 4, result.stderr
    assert "is not valid TOML: arrays or objects nested too deeply" in result.stderr


def test_the_dots_of_a_config_files_comments_and_strings_are_no_dotted_keys(cli: Bapp) -> None:
    # The refusal of a dotted key of more than 64 parts counted the dots of strings and comments too: a commented-out
    # line, a quoted key or a rule's pattern of 65 dotted words made the file "not valid TOML: … too deeply", exit 4
    words = ".".join(["a"] * 65)
    user = "https://api.calendly.com/users/U"
    text = f'# {words}\n[calendly]\nuser = "{user}"\n"{words}" = 1\n[[calendly.rules]]\npattern = """\n{words}"""""\n'
    Path(cli.env["BAPP_CONFIG"]).write_text(text)
    result = cli("config", "show")
    assert result.exit_code == 0, result.stderr
    assert f"calendly.user\t{user}\tfile" in result.stdout


def test_a_path_under_an_unknown_users_home_is_a_file_that_does_not_exist(cli: Bapp) -> None:
    # `~nosuchuser/…` made Path.expanduser raise RuntimeError: exit 1 and a traceback, for --config and BAPP_CONFIG
    missing = "~bapp-no-such-user/bapp.toml"
    result = cli("--config", missing, "config", "show")
    assert result.exit_code == 4 and f"config file {missing} (--config) does not exist" in result.stderr
    assert cli("config", "path", env={"BAPP_CONFIG": missing}).stdout.strip() == missing
    Path(cli.env["BAPP_CONFIG"]).write_text(
        '[badges]\nissuer_name = "B"\nissuer_url = "https://b.example"\nkey_file = "~bapp-no-such-user/k.pem"\n'
    )
    result = cli("badges", "issuer", "show")
    assert result.exit_code == 4 and "key file ~bapp-no-such-user/k.pem does not exist" in result.stderr


def test_an_empty_config_flag_names_no_file_and_is_never_taken_for_the_default(cli: Bapp) -> None:
    # `bapp --config "$CONF" …` with CONF unset ran on BAPP_CONFIG's file or the default one (perhaps another
    # database, and `config init` wrote that file, where a --config naming no file is refused (exit 2, as any blank
    # flag: it was exit 4 reading "." as the file)
    for command in (("clients", "list"), ("config", "show"), ("config", "set", "timezone", "UTC"), ("config", "init")):
        for blank in ("", "  "):
            result = cli("--config", blank, *command)
            assert result.exit_code == 2, (command, result.stderr)
            assert result.stderr.startswith("Error: --config is empty\n"), result.stderr
    assert not Path(cli.env["BAPP_CONFIG"]).exists()


@pytest.mark.parametrize("flag", ["--database-url", "--timezone"])
def test_a_blank_global_flag_is_a_usage_error_naming_it(cli: Bapp, flag: str) -> None:
    # `--database-url ""` was exit 4 ("database URL: unsupported form"), `--timezone " "` exit 6 (unknown timezone)
    for blank in ("", " "):
        result = cli(flag, blank, "clients", "list")
        assert (result.exit_code, result.stdout) == (2, ""), result.stderr
        assert result.stderr.splitlines() == [f"Error: {flag} is empty", f"Hint: give it a value, or leave {flag} out"]


@pytest.mark.parametrize("name", ["BAPP_ACTOR", "BAPP_CACHE_DIR", "BAPP_CONFIG"])
def test_an_environment_setting_of_spaces_is_refused_naming_it(bapp: Bapp, name: str) -> None:
    # taken as given: an audit log naming "  " as who changed a client, a cache folder and a config file called "  "
    result = bapp("clients", "add", "spaces@example.com", env={name: "  "})
    assert result.exit_code == 4, result.stderr
    said = "BAPP_CONFIG is empty: it names no config file" if name == "BAPP_CONFIG" else f"environment variable {name}"
    assert result.stderr.startswith(f"Error: {said}"), result.stderr
    assert " is empty" in result.stderr.splitlines()[0]
    assert bapp("clients", "list", "--json").json() == []
    assert not (Path.cwd() / "  ").exists()


@pytest.mark.parametrize("where", ["env", "file"])
def test_config_show_shows_a_blank_secret_as_blank_not_masked(cli: Bapp, where: str) -> None:
    # a blank token was shown as ****, as if one were set
    if where == "file":
        Path(cli.env["BAPP_CONFIG"]).write_text('[calendly]\ntoken = "  "\n')
    env: dict[str, str | None] = {"CALENDLY_API_KEY": "  "} if where == "env" else {}
    result = cli("config", "show", "--json", env=env)
    [token] = [row for row in result.json() if row["key"] == "calendly.token"]
    assert token["value"] == "  "
    assert "is empty" in result.stderr
    assert "holds a secret" not in result.stderr


@pytest.mark.parametrize("table, key", [("badges", "key_file"), ("calendly", "token_file")])
def test_a_file_setting_holding_a_nul_is_exit_4_naming_the_key(cli: Bapp, table: str, key: str) -> None:
    # TOML can spell a NUL (\u0000), and open() raises ValueError for it: `calendly sync` was exit 1
    Path(cli.env["BAPP_CONFIG"]).write_text(f'[{table}]\n{key} = "a\\u0000b"\n')
    for command in (("calendly", "sync"), ("badges", "issuer", "show"), ("clients", "list")):
        result = cli(*command)
        assert result.exit_code == 4 and f"key {table}.{key}: holds a NUL character" in result.stderr, result.stderr


def test_config_path_prints_the_resolved_path(cli: Bapp, tmp_path: Path) -> None:
    assert cli("config", "path").stdout.strip() == cli.env["BAPP_CONFIG"]
    other = tmp_path / "other.toml"
    assert cli("--config", str(other), "config", "path").stdout.strip() == str(other)


@pytest.mark.usefixtures("cli_database_at_head")
def test_format_in_the_config_file_gives_json_errors_as_well_as_json_data(cli: Bapp) -> None:
    import json

    Path(cli.env["BAPP_CONFIG"]).write_text('format = "json"\n')
    listed = cli("pathways", "list")
    assert listed.exit_code == 0 and isinstance(listed.json(), list)
    missing = cli("clients", "show", "nobody@example.com")
    assert missing.exit_code == 7
    error = json.loads(missing.stderr.strip().splitlines()[-1])["error"]
    assert error["code"] and "nobody@example.com" in error["message"]
    # as with BAPP_FORMAT, and as with --json after an import's --format naming the input
    imported = cli("import", "clients", "missing.csv", "-f", "csv", "--json", env={"BAPP_CONFIG": "/dev/null"})
    assert imported.exit_code != 0 and '{"error"' in imported.stderr


@pytest.mark.usefixtures("cli_database_at_head")
def test_a_format_flag_replaces_the_configured_json_for_errors_too(cli: Bapp, tmp_path: Path) -> None:
    # flag > environment > file holds for the error report as for the data: with JSON configured, `--format
    # table|csv` still got the JSON error line, and an import's bad rows were listed only inside it
    Path(cli.env["BAPP_CONFIG"]).write_text('format = "json"\n')
    missing = cli("clients", "show", "nobody@example.com", "--format", "table")
    assert missing.exit_code == 7 and "nobody@example.com" in missing.stderr and "{" not in missing.stderr
    rows = tmp_path / "clients.csv"
    rows.write_text("email\nnot-an-email\n")
    refused = cli("import", "clients", str(rows), "-f", "csv", env={"BAPP_FORMAT": "jsonl"})
    assert refused.exit_code == 6 and "  line 2, field email:" in refused.stderr and "{" not in refused.stderr


@pytest.mark.usefixtures("cli_database_at_head")
def test_the_calendly_mode_and_give_up_hours_are_checked_like_every_setting(cli: Bapp) -> None:
    # calendly.reconcile_give_up_hours is a number of hours, written in TOML as one (examples/config.toml):
    # it was refused as "must be a string, not int" by every command
    config = Path(cli.env["BAPP_CONFIG"])
    config.write_text("[calendly]\nreconcile_give_up_hours = 24\n")
    listed = cli("pathways", "list", "--json")
    assert listed.exit_code == 0, listed.stderr
    # config set refuses what a command would refuse later (it stored both, and only bookings create or
    # calendly reconcile found out), and keeps the file as it was
    for key, value, complaint in [
        ("calendly.reconcile_give_up_hours", "soon", "is not a number of hours from 0 to 100000"),
        ("calendly.reconcile_give_up_hours", "inf", "is not a number of hours from 0 to 100000"),
        ("bookings.calendly", "sometimes", "is not one of auto, always, never"),
    ]:
        refused = cli("config", "set", key, value)
        assert refused.exit_code == 6, refused.stderr
        assert f"Error: {key}: {value!r} {complaint}" in refused.stderr
    assert tomllib.loads(config.read_text()) == {"calendly": {"reconcile_give_up_hours": 24}}
    assert cli("config", "set", "bookings.calendly", "Never").exit_code == 0
    # one bound for the key and for --give-up-after, 100000 hours itself in (the key refused what the flag took)
    no_token = {"CALENDLY_API_KEY": None}
    for hours, taken in (("100000", True), ("100000.5", False)):
        assert (cli("config", "set", "calendly.reconcile_give_up_hours", hours).exit_code == 0) is taken, hours
        reconcile = cli("calendly", "reconcile", "--give-up-after", hours, env=no_token)
        assert reconcile.exit_code == (4 if taken else 2), reconcile.stderr  # 4: past the option, no token
    config.write_text("[calendly]\nreconcile_give_up_hours = 100000\n")
    assert cli("calendly", "reconcile", env=no_token).stderr.startswith("Error: no Calendly token configured")
    # from the environment: exit 4 naming the variable for any command, and config show says so
    env = {"BAPP_BOOKINGS_CALENDLY": "sometimes"}
    result = cli("pathways", "list", env=env)
    assert result.exit_code == 4, result.stderr
    assert "Error: environment variable BAPP_BOOKINGS_CALENDLY, key bookings.calendly: 'sometimes'" in result.stderr
    shown = cli("config", "show", "--json", env=env)
    assert shown.exit_code == 0 and "not valid: environment variable BAPP_BOOKINGS_CALENDLY" in shown.stderr


@pytest.mark.usefixtures("cli_database_at_head")
def test_the_busy_timeout_is_a_setting_of_the_file_and_the_environment_checked_like_every_other(cli: Bapp) -> None:
    # the wait for another writer's lock was a constant (30 s): a deployment could not shorten it, nor the tests
    config = Path(cli.env["BAPP_CONFIG"])
    rows = settings_by_key(cli("config", "show", "--json").json())
    assert rows["busy_timeout"] == {"key": "busy_timeout", "value": 30, "source": "default"}
    assert cli("config", "set", "busy_timeout", "2.5").exit_code == 0
    assert tomllib.loads(config.read_text()) == {"busy_timeout": "2.5"}
    config.write_text("busy_timeout = 4\n")  # a TOML number, as examples/config.toml writes it
    assert cli("pathways", "list").exit_code == 0
    rows = settings_by_key(cli("config", "show", "--json").json())
    assert rows["busy_timeout"] == {"key": "busy_timeout", "value": 4, "source": "file"}
    rows = settings_by_key(cli("config", "show", "--json", env={"BAPP_BUSY_TIMEOUT": "0.5"}).json())
    assert rows["busy_timeout"] == {"key": "busy_timeout", "value": "0.5", "source": "env:BAPP_BUSY_TIMEOUT"}
    # 0 would be no bound at all to PostgreSQL (lock_timeout 0 waits for ever); NaN and infinity no number
    for value in ("0", "0.05", "3601", "nan", "inf", "soon"):
        refused = cli("config", "set", "busy_timeout", value)
        assert refused.exit_code == 6, (value, refused.stderr)
        assert f"Error: busy_timeout: {value!r} is not a number of seconds from 0.1 to 3600" in refused.stderr
        result = cli("pathways", "list", env={"BAPP_BUSY_TIMEOUT": value})
        assert result.exit_code == 4, (value, result.stderr)
        assert "Error: environment variable BAPP_BUSY_TIMEOUT, key busy_timeout: " in result.stderr
    assert tomllib.loads(config.read_text()) == {"busy_timeout": 4}
    config.write_text("busy_timeout = true\n")
    listed = cli("pathways", "list")
    assert listed.exit_code == 4 and "key busy_timeout: 'True' is not a number of seconds" in listed.stderr


@pytest.mark.usefixtures("cli_database_at_head")
def test_a_flag_wins_over_a_bad_environment_or_file_value_of_its_setting(cli: Bapp) -> None:
    # flag > environment > file: a value a flag replaces is not used, so a bad one stops nothing (it did, exit 4);
    # where no flag replaces it, it is still refused
    config = Path(cli.env["BAPP_CONFIG"])
    for env, flag in [
        ({"BAPP_FORMAT": "xml"}, ("pathways", "list", "--json")),
        ({"BAPP_FORMAT": "xml"}, ("pathways", "list", "-f", "csv")),
        ({"BAPP_DEBUG": "maybe"}, ("--debug", "pathways", "list")),
        ({"BAPP_TIMEZONE": "Mars/Olympus"}, ("sessions", "slots", "nosuch", "--timezone", "UTC")),
    ]:
        flagged = cli(*flag, env=env)
        assert flagged.exit_code == (7 if "nosuch" in flag else 0), flagged.stderr  # 7: past the settings
        unflagged = cli("pathways", "list", env=env)
        assert unflagged.exit_code == 4 and "environment variable BAPP_" in unflagged.stderr
    config.write_text('format = "xml"\n[calendly]\nreconcile_give_up_hours = "soon"\n')
    listed = cli("pathways", "list", "--json")
    assert listed.exit_code == 4 and "key calendly.reconcile_give_up_hours" in listed.stderr
    assert "key format" not in listed.stderr
    reconcile = cli("calendly", "reconcile", "--give-up-after", "5", "--json", env={"CALENDLY_API_KEY": None})
    assert reconcile.stderr.startswith("Error: no Calendly token configured"), reconcile.stderr  # past the settings
    # --user/--organization (or --from-file, which asks no one) replace both scope keys
    config.write_text('[calendly]\nuser = "me"\n')
    saved = str(REPO / "examples" / "calendly" / "event_types.json")
    assert cli("calendly", "sync", "--from-file", saved, "--dry-run").exit_code == 0
    for scope, uri in (("--user", "users/1"), ("--organization", "organizations/1")):
        scoped = cli("calendly", "sync", scope, f"https://api.calendly.com/{uri}", env={"CALENDLY_API_KEY": None})
        assert scoped.stderr.startswith("Error: no Calendly token configured"), scoped.stderr
    assert "key calendly.user: 'me' is not an http(s) URL" in cli("calendly", "sync").stderr
    config.write_text("")
    added = cli("sessions", "add", "--title", "Local chat", "--duration", "30", "--category", "free")
    assert added.exit_code == 0, added.stderr
    book = (
        "bookings",
        "create",
        "--client",
        "ada@example.com",
        "--session",
        "local-chat",
        "--start",
        "2031-03-03T10:00",
    )
    env = {"BAPP_BOOKINGS_CALENDLY": "sometimes"}
    assert cli(*book, env=env).exit_code == 4
    booked = cli(*book, "--local-only", "--json", env=env)
    assert booked.exit_code == 0, booked.stderr
    assert booked.json()["client"] == "ada@example.com"


def test_environment_only_settings_are_shown_with_their_source(cli: Bapp) -> None:
    env = {"BAPP_CALENDLY_TIMEOUT": "2.5", "BAPP_CONNECT_TIMEOUT": "7", "BAPP_DEBUG": None}
    rows = settings_by_key(cli("config", "show", "--json", env=env).json())
    assert rows["actor"] == {"key": "actor", "value": "tester", "source": "env:BAPP_ACTOR"}
    assert rows["calendly_timeout"] == {
        "key": "calendly_timeout",
        "value": "2.5",
        "source": "env:BAPP_CALENDLY_TIMEOUT",
    }
    assert rows["connect_timeout"]["source"] == "env:BAPP_CONNECT_TIMEOUT"
    assert rows["debug"] == {"key": "debug", "value": False, "source": "default"}
    assert rows["calendly_max_wait"] == {"key": "calendly_max_wait", "value": 60.0, "source": "default"}
    assert rows["cache_dir"]["source"] == "env:BAPP_CACHE_DIR"


@pytest.mark.parametrize(
    ("variable", "value", "complaint"),
    [
        ("BAPP_CALENDLY_TIMEOUT", "soon", "must be a number of seconds, not 'soon'"),
        ("BAPP_CALENDLY_BACKOFF", "-1", "must be a positive number of seconds"),
        ("BAPP_CALENDLY_MAX_WAIT", "inf", "must be a positive number of seconds"),
        ("BAPP_CALENDLY_TIMEOUT", "1e10", "must be a positive number of seconds, at most 3600"),
        ("BAPP_CONNECT_TIMEOUT", "0", "must be a whole number of seconds from 1 to 3600"),
        ("BAPP_DEBUG", "perhaps", "must be 1 or 0"),
    ],
)
def test_a_bad_environment_setting_is_exit_4_naming_the_variable(
    cli: Bapp, variable: str, value: str, complaint: str
) -> None:
    result = cli("pathways", "list", env={variable: value})
    assert result.exit_code == 4, result.stderr
    assert f"Error: environment variable {variable}: {complaint}" in result.stderr
    shown = cli("config", "show", "--json", env={variable: value})  # config show still shows it, and says so
    assert shown.exit_code == 0 and f"not valid: environment variable {variable}" in shown.stderr


def test_settings_are_typed_frozen_and_cap_the_calendly_wait(tmp_path: Path) -> None:
    env = {"BAPP_CALENDLY_MAX_WAIT": "600", "BAPP_CALENDLY_TIMEOUT": "4", "BAPP_DEBUG": "yes", "HOME": str(tmp_path)}
    settings = resolve_settings(config_path=str(tmp_path / "none.toml"), flags={}, environ=env)
    assert settings.calendly_max_wait == 60.0 and settings.calendly_timeout == 4.0 and settings.debug is True
    assert settings.connect_timeout == 10 and settings.values["connect_timeout"].source == "default"
    assert settings.cache_dir.name == "bapp" and settings.values["cache_dir"].source == "default"
    cached = resolve_settings(config_path=None, flags={}, environ={"XDG_CACHE_HOME": str(tmp_path)}, read_file=False)
    assert cached.cache_dir == tmp_path / "bapp"
    with pytest.raises(AttributeError):
        settings.config_path = tmp_path  # type: ignore[misc]
    with pytest.raises(TypeError):
        settings.values["timezone"] = settings.values["timezone"]  # type: ignore[index]


def test_only_config_py_reads_bapps_environment_variables() -> None:
    """Every setting is resolved in one place; a stray os.environ read would bypass `config show` and the
    checks. What remains elsewhere is the terminal's (COLUMNS, NO_COLOR), shell completion's own and httpx's
    (SSLKEYLOGFILE, read only to name it when httpx cannot open the file)."""
    import re

    source = Path(__file__).resolve().parents[2] / "src" / "bapp_cli"
    allowed = {"COLUMNS", "NO_COLOR", "_BAPP_COMPLETE", "COMP_WORDS", "COMP_CWORD", "_TYPER_COMPLETE_ARGS"}
    allowed.add("SSLKEYLOGFILE")
    reads = re.compile(r"""(?:environ(?:\.get|\.pop)?\s*[\[(]|getenv\s*\()\s*["']([A-Z_]+)["']""")
    strays = []
    for path in source.rglob("*.py"):
        if path.name == "config.py" and path.parent == source:
            continue
        for name in reads.findall(path.read_text()):
            if name not in allowed:
                strays.append(f"{path.relative_to(source)}: {name}")
    assert strays == []
    assert reads.findall('os.environ.get("BAPP_X") or os.getenv("BAPP_Y")') == ["BAPP_X", "BAPP_Y"]


def test_a_relative_file_setting_is_stored_from_where_it_was_typed(
    cli: Bapp, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # stored as typed, `tok` was later read from whatever directory a cron job started in
    here = tmp_path / "here"
    here.mkdir()
    monkeypatch.chdir(here)
    assert cli("config", "set", "calendly.webhook_signing_key_file", "keys/signing").exit_code == 0
    assert cli("config", "set", "badges.key_file", "~/badge.pem", env={"HOME": str(tmp_path)}).exit_code == 0
    stored = tomllib.loads(Path(cli.env["BAPP_CONFIG"]).read_text())
    assert stored["calendly"] == {"webhook_signing_key_file": str(here / "keys" / "signing")}
    assert stored["badges"] == {"key_file": str(tmp_path / "badge.pem")}
    fresh = tmp_path / "fresh.toml"
    assert cli("--config", str(fresh), "config", "init", "--calendly-token-file", "tok").exit_code == 0
    assert tomllib.loads(fresh.read_text()) == {"calendly": {"token_file": str(here / "tok")}}


def test_show_lists_each_unset_setting_with_its_default(cli: Bapp) -> None:
    # format, bookings.calendly, calendly.reconcile_give_up_hours and calendly.pathway_question were listed as
    # null with no source when unset, where timezone and calendly.base_url showed their defaults: each is used
    # all the same (README's settings table), so the user could not see what a command would do
    env = {"BAPP_FORMAT": None, "BAPP_BOOKINGS_CALENDLY": None}
    rows = settings_by_key(cli("config", "show", "--json", env=env).json())
    shown = {key: (row["value"], row["source"]) for key, row in rows.items()}
    assert shown["format"] == ("tsv", "default")  # stdout is piped here
    assert shown["bookings.calendly"] == ("auto", "default")
    assert shown["calendly.reconcile_give_up_hours"] == (24, "default")
    assert shown["calendly.pathway_question"] == ("pathway", "default")
    assert shown["timezone"] == ("UTC", "default")
    # those with no default are unset, and say so
    assert {key for key, (value, source) in shown.items() if source is None} == {
        "calendly.token",
        "calendly.token_file",
        "calendly.webhook_signing_key",
        "calendly.webhook_signing_key_file",
        "calendly.user",
        "calendly.organization",
        "badges.key_file",
        "badges.issuer_name",
        "badges.issuer_url",
        "badges.image_base_url",
    }
    assert all(value is None for value, source in shown.values() if source is None)
    # on a terminal, the default is a table
    rows_seen = [
        line.replace("│", " ").split() for line in run_in_terminal(cli, "--no-color", "config", "show").splitlines()
    ]
    assert ["format", "table", "default"] in rows_seen


@pytest.mark.parametrize("flag", [True, False])
def test_unset_into_a_folder_not_there_makes_no_folder(cli: Bapp, tmp_path: Path, flag: bool) -> None:
    """The lock on the config file's folder made the folder (and every one above it) for a `config unset`, which
    has nothing to change when there is no file: a typo in --config left a tree of empty folders behind."""
    given = tmp_path / "typo" / "deeper" / "config.toml"
    args = ("--config", str(given)) if flag else ()
    result = cli(*args, "--verbose", "config", "unset", "timezone", env={"BAPP_CONFIG": None if flag else str(given)})
    assert result.exit_code == 0, result.stderr
    assert "Not set: timezone" in result.stderr
    assert not (tmp_path / "typo").exists()


@pytest.mark.parametrize(
    "table, key",
    [
        ("calendly", "token"),
        ("calendly", "webhook_signing_key"),
        ("calendly", "webhook_signing_key_file"),
        ("calendly", "pathway_question"),
        ("badges", "key_file"),
        ("badges", "issuer_name"),
        ("bookings", "calendly"),
    ],
)
@pytest.mark.parametrize("blank", ["", "  "])
def test_a_blank_key_in_the_config_file_is_exit_4_naming_it_and_the_file(
    cli: Bapp, table: str, key: str, blank: str
) -> None:
    # these were taken as unset (pathway_question as the default "pathway", token as no token, so token_file
    # was read instead) while a blank calendly.user or timezone was exit 4, and `--user ""` exit 2
    config = Path(cli.env["BAPP_CONFIG"])
    config.write_text(f'[{table}]\n{key} = "{blank}"\n')
    config.chmod(0o600)
    result = cli("clients", "list")
    assert result.exit_code == 4, result.stderr
    assert result.stderr.startswith(f"Error: config file {config}, key {table}.{key}: is empty\n"), result.stderr


def test_config_set_and_init_refuse_an_empty_value_and_write_nothing(cli: Bapp) -> None:
    # init dropped an empty --timezone without a word; set wrote `pathway_question = ""` into the file
    config = Path(cli.env["BAPP_CONFIG"])
    result = cli("config", "init", "--timezone", "")  # a blank flag: a usage error, as every --timezone's (was 6)
    assert result.exit_code == 2 and not config.exists(), result.stderr
    assert result.stderr.startswith("Error: --timezone is empty\n"), result.stderr
    result = cli("config", "set", "calendly.pathway_question", "")
    assert result.exit_code == 6 and "calendly.pathway_question: is empty" in result.stderr, result.stderr
    assert not config.exists()


def test_the_default_database_is_made_and_read_in_a_data_folder_with_a_percent_or_question_mark(
    cli: Bapp, tmp_path: Path
) -> None:
    """The default URL was `sqlite:///` + the data folder's path as it is: in `50%25 ?q` the `%25` was read as an
    escape and the `?` as the query's start, so `db upgrade` made the file `50% ` beside the folder, not its bapp.db."""
    data = tmp_path / "50%25 ?q"
    env: dict[str, str | None] = {"BAPP_DATABASE_URL": None, "XDG_DATA_HOME": str(data)}
    for args in (("db", "upgrade"), ("clients", "add", "ada@example.com"), ("sessions", "list"), ("db", "check")):
        result = cli(*args, env=env)
        assert result.exit_code == 0, (args, result.stderr)
    assert (data / "bapp" / "bapp.db").is_file()
    assert sorted(path.name for path in tmp_path.iterdir() if path.name.startswith("50")) == ["50%25 ?q"]
    assert "ada@example.com" in cli("clients", "list", env=env).stdout
