"""Settings Python's own parsers choke on — a URL with an unclosed IPv6 bracket, a regular expression too large
to compile — are configuration errors naming the setting, never a crash (found by the Calendly fault hunt)."""

from __future__ import annotations

import errno
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import REPO, Bapp


def test_a_base_url_urlsplit_refuses_is_a_bad_setting(bapp: Bapp) -> None:
    result = bapp("config", "show", env={"CALENDLY_API_BASE_URL": "http://[::1"})
    assert "CALENDLY_API_BASE_URL, key calendly.base_url: 'http://[::1' is not an http(s) URL" in result.stderr
    assert "Traceback" not in result.stderr and "unexpected error" not in result.stderr


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
@pytest.mark.parametrize("host", ["xn--zz-", "api..calendly.com", "a" * 64 + ".calendly.com"])
def test_a_base_url_whose_host_is_no_dns_name_is_exit_4(bapp: Bapp, host: str) -> None:
    # httpx takes these hosts; reading the first's (idna) or connecting to the others (the socket) raised
    # UnicodeError: exit 1. Refused as a setting, before any command (the client refuses them too: test_client.py)
    result = bapp("calendly", "whoami", env={"CALENDLY_API_KEY": "token-r9", "CALENDLY_API_BASE_URL": f"http://{host}"})
    assert result.exit_code == 4, result.stderr
    assert result.stderr.startswith(
        "Error: environment variable CALENDLY_API_BASE_URL, key calendly.base_url: its host is no DNS name\n"
    )


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
@pytest.mark.parametrize(
    "proxies",
    [
        {"ALL_PROXY": "socks5://127.0.0.1:9"},  # needs the socksio package: ImportError
        {"HTTP_PROXY": "ftp://user:proxy-secret@proxy.example"},  # no proxy scheme: ValueError
        {"HTTP_PROXY": "http://[::1"},  # InvalidURL
        {"HTTP_PROXY": "http://127.0.0.1:9", "NO_PROXY": "[::1"},
        {"HTTP_PROXY": "http://proxy..example:9"},  # an empty label: UnicodeError on connecting
    ],
)
def test_a_proxy_the_environment_names_that_httpx_cannot_use_is_exit_4(bapp: Bapp, proxies: dict[str, str]) -> None:
    # httpx reads these variables itself; each of them was exit 1 ("unexpected error") on every Calendly command
    env = {"CALENDLY_API_KEY": "token-r9", "CALENDLY_API_BASE_URL": "http://127.0.0.1:9", **proxies}
    result = bapp("calendly", "whoami", env=env)
    assert result.exit_code == 4, result.stderr
    assert result.stderr.startswith("Error: cannot use the proxy HTTP_PROXY, HTTPS_PROXY or ALL_PROXY names")
    assert "proxy-secret" not in result.stderr


@pytest.mark.parametrize("pattern", ["a{99999999999}", "(" * 1000 + ")" * 1000])
def test_a_pathway_question_too_large_to_compile_is_exit_4(bapp: Bapp, tmp_path: Path, pattern: str) -> None:
    config = tmp_path / "config.toml"
    config.write_text(f"[calendly]\npathway_question = '{pattern}'\n")
    result = bapp("--config", str(config), "clients", "list")
    assert result.exit_code == 4, result.stderr
    assert "key calendly.pathway_question: a regular expression too large to compile" in result.stderr


@pytest.mark.parametrize("pattern", ["a{99999999999}", "(" * 1000 + ")" * 1000])
def test_a_sync_rule_too_large_to_compile_is_exit_4(bapp: Bapp, tmp_path: Path, pattern: str) -> None:
    config = tmp_path / "config.toml"
    config.write_text(f"[[calendly.rules]]\npattern = '{pattern}'\ncategory = 'free'\n")
    listing = REPO / "examples/calendly/event_types.json"
    result = bapp("--config", str(config), "calendly", "sync", "--from-file", str(listing))
    assert result.exit_code == 4, result.stderr
    assert "calendly.rules[1].pattern: a regular expression too large to compile" in result.stderr
    assert bapp("sessions", "list", "--all", "--json").json() == []


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_config_file_past_a_megabyte_is_exit_4_not_read_whole(bapp: Bapp, tmp_path: Path) -> None:
    # `--config /dev/zero` (or BAPP_CONFIG at a disk image) read on until memory ran out; a file over the
    # limit stands in for it here, so this test cannot exhaust the machine on a bapp without the limit
    config = tmp_path / "config.toml"
    config.write_text("# padding\n" * 110_000)
    for args, env in ((("--config", str(config)), None), ((), {"BAPP_CONFIG": str(config)})):
        result = bapp(*args, "clients", "list", env=env)
        assert result.exit_code == 4, result.stderr
        assert result.stderr == f"Error: config file {config} is larger than 1 MB; this is not the file you meant\n"


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_settings_are_never_written_over_a_device_named_as_the_config_file(bapp: Bapp, tmp_path: Path) -> None:
    """BAPP_CONFIG=/dev/null means "no config file"; `config set` or `badges issuer init` then renamed their file
    over it, so run as root they replaced the machine's /dev/null with a regular file. A null device made here
    stands in for it (root makes it, as CI runs; the suite's R9 property test makes such nodes too)."""
    import os
    import stat

    device = tmp_path / "null"
    os.mknod(device, 0o666 | stat.S_IFCHR, os.makedev(1, 3))
    for args in (
        ("config", "set", "format", "json"),
        ("config", "init"),  # said "already exists, pass --force", which then failed as here
        ("config", "init", "--force"),
        ("badges", "issuer", "init", "--name", "Academy", "--url", "https://academy.example"),
    ):
        result = bapp(*args, env={"BAPP_CONFIG": str(device)})
        assert result.exit_code == 4, result.stderr
        assert f"cannot write config file {device}: it is not a regular file" in result.stderr
        assert stat.S_ISCHR(device.stat().st_mode), args
    assert not list(tmp_path.glob("*.pem")) and not list(tmp_path.glob("*.tmp"))  # no key or temporary file left
    assert bapp("clients", "list", env={"BAPP_CONFIG": str(device)}).exit_code == 0  # still "no file"


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_config_file_behind_a_symlink_is_written_through_it(bapp: Bapp, tmp_path: Path) -> None:
    # a config kept in a dotfiles checkout and linked into place: `config set` replaced the link with a copy
    (tmp_path / "dotfiles").mkdir()
    real = tmp_path / "dotfiles" / "bapp.toml"
    real.write_text('timezone = "Europe/London"\n')
    link = tmp_path / "config.toml"
    link.symlink_to(real)
    result = bapp("config", "set", "format", "json", env={"BAPP_CONFIG": str(link)})
    assert result.exit_code == 0, result.stderr
    assert link.is_symlink() and link.resolve() == real
    assert 'format = "json"' in real.read_text() and 'timezone = "Europe/London"' in real.read_text()
    assert [path.name for path in real.parent.iterdir()] == ["bapp.toml"] and not list(tmp_path.glob("*.tmp"))


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
@pytest.mark.parametrize("command", [("calendly", "sync"), ("calendly", "pull-bookings")])
def test_an_organization_uri_too_long_for_a_url_is_exit_6(bapp: Bapp, command: tuple[str, ...]) -> None:
    # httpx refuses a query past 65,536 characters with InvalidURL, which is no HTTPError: it was exit 1
    organization = "https://api.calendly.com/organizations/" + "x" * 70_000
    env = {"CALENDLY_API_KEY": "token-r9", "CALENDLY_API_BASE_URL": "http://127.0.0.1:9"}
    result = bapp(*command, "--organization", organization, env=env)
    assert result.exit_code == 6, result.stderr
    assert "URL component 'query' too long; check the user and organization URIs" in result.stderr


def _writer_once_read(fifo: Path, process: subprocess.Popen[str]) -> int:
    """The write end of `fifo` once `process` has opened it to read (it then waits in read for the data)."""
    while True:
        try:
            return os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
        except OSError as error:  # ENXIO: no reader yet
            if error.errno != errno.ENXIO or process.poll() is not None:
                raise
            time.sleep(0.01)  # polling for the reader, not waiting for it to get somewhere


def _wait_until_reading(process: subprocess.Popen[str]) -> None:
    """Until `process` sleeps in the FIFO's read. A signal that lands in the microseconds between its open and
    its read is taken by CPython's C handler before the read starts (Python handlers run between bytecodes), and
    the read then waits for a writer for ever: a race only a signal sent the instant the reader appears can hit,
    as this test's would without the wait (about 1 run in 20)."""
    wchan = Path(f"/proc/{process.pid}/wchan")  # the kernel function it sleeps in: (anon_)pipe_read, pipe_wait
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not wchan.read_text().endswith(("pipe_read", "pipe_wait")):
        time.sleep(0.01)


def _finish(process: subprocess.Popen[str]) -> tuple[int, str]:
    try:
        _, stderr = process.communicate(timeout=60)  # a guard: the bug this catches is a run that never ends
    finally:
        process.kill()
        process.wait()
    return process.returncode, stderr


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_fifo_as_the_config_file_is_read_once_and_a_stop_signal_while_it_waits_is_quiet(
    bapp: Bapp, tmp_path: Path
) -> None:
    """A FIFO (or `<(…)`) config is read as `cat` reads it, once a run. Its bad TOML was read again for the error
    report, which waited for a writer for ever; a SIGTERM there printed a traceback (exit 130)."""
    fifo = tmp_path / "config.fifo"
    os.mkfifo(fifo)
    process = bapp.popen("--config", str(fifo), "clients", "list")
    writer = _writer_once_read(fifo, process)
    os.write(writer, b"x = [")
    os.close(writer)
    assert _finish(process) == (4, f"Error: config file {fifo} is not valid TOML: Invalid value (at end of document)\n")

    # a stop signal while bapp waits on the FIFO's writer: in the command, or in the report of a usage error
    # (the first read of the file there, for the format errors are written in)
    for args in (("clients", "list"), ("clients", "list", "--no-such-option")):
        process = bapp.popen("--config", str(fifo), *args)
        writer = _writer_once_read(fifo, process)
        _wait_until_reading(process)
        process.send_signal(signal.SIGTERM)
        code, stderr = _finish(process)
        os.close(writer)
        assert code == 143 and stderr.endswith("Terminated; nothing was changed.\n"), (args, stderr)
        assert "Traceback" not in stderr

    # process substitution is a pipe: its settings apply, to the command and to the report of its error
    shown = subprocess.run(
        ["bash", "-c", f"{sys.executable} -m bapp_cli --config <(printf 'format = \"json\"') clients list --nope"],
        env=bapp._environment(None),
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=60,
    )
    assert shown.returncode == 2 and shown.stderr.splitlines()[-1].startswith('{"error": {"code": "usage"')


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)  # the zone is read before any database
def test_a_zone_file_cut_short_is_an_unknown_timezone_not_a_crash(bapp: Bapp, tmp_path: Path) -> None:
    # PYTHONTZPATH names where zoneinfo looks: a TZif file cut short raised struct.error (exit 1, "unexpected")
    (tmp_path / "Europe").mkdir()
    (tmp_path / "Europe" / "London").write_bytes(b"TZif2\0\0\0")
    result = bapp.process("clients", "list", env={"PYTHONTZPATH": str(tmp_path), "BAPP_TIMEZONE": "Europe/London"})
    assert result.exit_code == 4, result.stderr
    assert result.stderr.startswith("Error: environment variable BAPP_TIMEZONE, key timezone: unknown timezone")
