"""`bapp calendly webhook subscribe|subscriptions|unsubscribe` against the fake Calendly (real HTTP)."""

# ruff: noqa: F811  (pytest fixtures imported from calendly_fixtures are parameters by design)

from __future__ import annotations

import json
import os
import stat
import tomllib
from pathlib import Path

import pytest

from bapp_cli.calendly.webhooks import make_signature_header
from tests.cli.calendly_fixtures import (
    cbapp,  # noqa: F401 (fixture)
    error_lines,
    fake,  # noqa: F401 (fixture)
    fake_server,  # noqa: F401 (fixture)
)
from tests.conftest import Bapp
from tests.fakes.calendly_server import FakeCalendly, Fault

URL = "https://bapp.example.com/calendly/webhook"


def _posts(fake: FakeCalendly) -> int:
    return sum(1 for request in fake.requests if request.method == "POST")


def test_subscribe_generates_a_0600_key_that_is_never_printed(cbapp: Bapp, fake: FakeCalendly, tmp_path: Path) -> None:
    fake.webhook_subscriptions.clear()
    result = cbapp("calendly", "webhook", "subscribe", "--url", URL, "--json")
    assert result.exit_code == 0, result.stderr
    record = result.json()
    assert (record["callback_url"], record["scope"], record["state"]) == (URL, "user", "active")
    assert record["events"] == [
        "invitee.created",
        "invitee.canceled",
        "invitee_no_show.created",
        "invitee_no_show.deleted",
    ]
    assert "signing_key" not in record
    key_file = Path(record["signing_key_file"])
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    key = key_file.read_text().strip()
    assert len(key) >= 32 and fake.webhook_signing_keys[record["uri"]] == key  # Calendly got the stored key
    assert key not in result.stdout + result.stderr
    config = tomllib.loads((cbapp.home / "config.toml").read_text())
    assert config["calendly"]["webhook_signing_key_file"] == str(key_file)
    [post] = [request for request in fake.requests if request.method == "POST"]
    assert post.path == "/webhook_subscriptions"

    # the stored key is the one bapp now verifies with
    body = tmp_path / "body.json"
    body.write_bytes(b'{"event": "event_type.updated", "created_at": "2031-01-01T00:00:00Z"}')
    header = cbapp("calendly", "webhook", "sign", str(body)).stdout.strip()
    assert (
        header.split("v1=")[1]
        == make_signature_header(body.read_bytes(), key, timestamp=int(header[2:12])).split("v1=")[1]
    )

    listed = cbapp("calendly", "webhook", "subscriptions", "--json")
    assert listed.exit_code == 0, listed.stderr
    assert [row["uri"] for row in listed.json()] == [record["uri"]]
    again = cbapp("calendly", "webhook", "subscribe", "--url", URL)
    assert again.exit_code == 8 and "Hook with this url already exists" in again.stderr
    shown = cbapp("calendly", "webhook", "subscribe", "--url", URL + "/2", "--show-signing-key", "--json")
    assert shown.exit_code == 0, shown.stderr
    assert shown.json()["signing_key"] == key  # reused, so a running receiver keeps verifying

    gone = cbapp("calendly", "webhook", "unsubscribe", record["uri"])
    assert gone.exit_code == 0, gone.stderr
    assert [sub["callback_url"] for sub in fake.webhook_subscriptions] == [URL + "/2"]
    missing = cbapp("calendly", "webhook", "unsubscribe", record["uri"])
    assert missing.exit_code == 7, missing.stderr
    unreadable = cbapp("calendly", "webhook", "unsubscribe", "https://[::1/webhook_subscriptions/AAAA")
    assert unreadable.exit_code == 6 and "not a Calendly webhook_subscriptions URI" in unreadable.stderr


def test_a_lost_answer_is_looked_up_never_resent(cbapp: Bapp, fake: FakeCalendly) -> None:
    fake.webhook_subscriptions.clear()
    fake.apply_then_reset_next("/webhook_subscriptions")  # Calendly creates it, the answer never arrives
    result = cbapp("calendly", "webhook", "subscribe", "--url", URL, "--json")
    assert result.exit_code == 0, result.stderr
    assert "the subscription was created all the same" in result.stderr
    assert result.json()["callback_url"] == URL
    assert _posts(fake) == 1 and len(fake.webhook_subscriptions) == 1

    fake.webhook_subscriptions.clear()
    fake.clear_requests()
    fake.reset_next("/webhook_subscriptions")  # the connection drops before Calendly acts
    refused = cbapp("calendly", "webhook", "subscribe", "--url", URL)
    assert refused.exit_code == 9, refused.stderr
    assert "nothing was created" in error_lines(refused.stderr)[0] and "safe to run the same command" in refused.stderr
    assert _posts(fake) == 1 and fake.webhook_subscriptions == []


def test_a_lost_answer_that_cannot_be_looked_up_says_it_may_have_been_created(cbapp: Bapp, fake: FakeCalendly) -> None:
    # The listing's failure was the error, code "remote": it did not say that the subscribe itself may have landed
    fake.webhook_subscriptions.clear()
    fake.apply_then_reset_next("/webhook_subscriptions")  # Calendly creates it, the answer never arrives
    fake.reset_next("/webhook_subscriptions", times=None)  # nor any answer to the listing
    result = cbapp("calendly", "webhook", "subscribe", "--url", URL, "--json")
    assert result.exit_code == 9, result.stderr
    [line] = error_lines(result.stderr)
    assert "POST /webhook_subscriptions" in line and "could not be listed" in line, line
    assert json.loads(result.stderr.splitlines()[-1])["error"]["code"] == "outcome_unknown"
    assert _posts(fake) == 1 and len(fake.webhook_subscriptions) == 1


def test_a_lost_answer_is_found_whatever_the_case_of_the_host_or_its_default_port(
    cbapp: Bapp, fake: FakeCalendly
) -> None:
    # Calendly may keep the URL with its host in lower case and no default port (the fake does): the look-up after
    # a lost answer compared the URL exactly, found nothing, said "nothing was created, safe to run again", and the
    # rerun made a second subscription (or met 409).
    fake.webhook_subscriptions.clear()
    fake.apply_then_reset_next("/webhook_subscriptions")
    typed = "https://Bapp.Example.COM:443/calendly/webhook"
    result = cbapp("calendly", "webhook", "subscribe", "--url", typed, "--json")
    assert result.exit_code == 0, result.stderr
    assert "the subscription was created all the same" in result.stderr
    assert result.json()["callback_url"] == URL
    assert _posts(fake) == 1 and len(fake.webhook_subscriptions) == 1

    # A trailing slash or the path's case names another resource (`webhook serve` answers one exact path): a
    # subscription of such a URL is not taken for this one.
    fake.clear_requests()
    fake.reset_next("/webhook_subscriptions")  # the connection drops before Calendly acts
    other = cbapp("calendly", "webhook", "subscribe", "--url", URL + "/", "--json")
    assert other.exit_code == 9 and "nothing was created" in other.stderr, other.stderr
    fake.reset_next("/webhook_subscriptions")
    upper = cbapp("calendly", "webhook", "subscribe", "--url", URL.upper().replace("HTTPS", "https"), "--json")
    assert upper.exit_code == 9 and "nothing was created" in upper.stderr, upper.stderr
    assert [sub["callback_url"] for sub in fake.webhook_subscriptions] == [URL]


def test_a_lost_answer_is_not_taken_for_the_subscription_of_the_url_without_its_user(
    cbapp: Bapp, fake: FakeCalendly
) -> None:
    # The look-up compared the host, not the user and password before it: a subscribe of the URL with them,
    # whose answer was lost before Calendly acted, found the older subscription of the URL without them and said
    # "created all the same" (exit 0), so the one asked for was never made and deliveries kept going to the old.
    fake.webhook_subscriptions.clear()
    assert cbapp("calendly", "webhook", "subscribe", "--url", URL, "--json").exit_code == 0
    fake.clear_requests()
    fake.reset_next("/webhook_subscriptions")  # the connection drops before Calendly acts
    with_user = URL.replace("https://", "https://hook:pass@")
    lost = cbapp("calendly", "webhook", "subscribe", "--url", with_user, "--json")
    assert lost.exit_code == 9 and "nothing was created" in lost.stderr, lost.stderr
    assert [sub["callback_url"] for sub in fake.webhook_subscriptions] == [URL]

    # and found when Calendly made it
    fake.apply_then_reset_next("/webhook_subscriptions")
    made = cbapp("calendly", "webhook", "subscribe", "--url", with_user, "--json")
    assert made.exit_code == 0 and "the subscription was created all the same" in made.stderr, made.stderr
    assert [sub["callback_url"] for sub in fake.webhook_subscriptions] == [URL, with_user]


def test_a_lost_answer_for_port_0_is_not_taken_for_the_subscription_of_the_default_port(
    cbapp: Bapp, fake: FakeCalendly
) -> None:
    # Port 0 was read as no port written (0 is falsy), so the default port's: a subscribe of the URL at port 0 whose
    # answer was lost found the URL's subscription at 443 and said "created all the same" (exit 0).
    fake.webhook_subscriptions.clear()
    assert cbapp("calendly", "webhook", "subscribe", "--url", URL, "--json").exit_code == 0
    fake.reset_next("/webhook_subscriptions")  # the connection drops before Calendly acts
    lost = cbapp("calendly", "webhook", "subscribe", "--url", URL.replace(".com/", ".com:0/"), "--json")
    assert lost.exit_code == 9 and "nothing was created" in lost.stderr, lost.stderr
    assert [sub["callback_url"] for sub in fake.webhook_subscriptions] == [URL]


def test_a_lost_answer_is_found_when_calendly_keeps_the_host_in_its_idna_form(cbapp: Bapp, fake: FakeCalendly) -> None:
    # A host typed in Unicode names the same host as its IDNA (xn--) form (RFC 3987), which Calendly may keep: the
    # look-up after a lost answer compared the two as text, found nothing and said "nothing was created, safe to run
    # again", and the rerun made a second subscription (or met 409). Here Calendly holds the xn-- form.
    fake.webhook_subscriptions.clear()
    kept = "https://xn--bcher-kva.example/calendly/webhook"
    assert cbapp("calendly", "webhook", "subscribe", "--url", kept, "--json").exit_code == 0
    fake.reset_next("/webhook_subscriptions")  # the answer to the one typed in Unicode is lost
    typed = cbapp("calendly", "webhook", "subscribe", "--url", "https://Bücher.example/calendly/webhook", "--json")
    assert typed.exit_code == 0 and "the subscription was created all the same" in typed.stderr, typed.stderr
    assert typed.json()["callback_url"] == kept

    # A trailing dot is another name (to DNS and to TLS): no subscription of it is taken for this one
    fake.reset_next("/webhook_subscriptions")
    dotted = cbapp("calendly", "webhook", "subscribe", "--url", "https://xn--bcher-kva.example./calendly/webhook")
    assert dotted.exit_code == 9 and "nothing was created" in dotted.stderr, dotted.stderr
    assert [sub["callback_url"] for sub in fake.webhook_subscriptions] == [kept]


def test_the_look_up_s_key_tells_apart_what_may_name_another_host() -> None:
    from bapp_cli.config import callback_key

    same = [
        ("https://Bücher.example/hook", "https://xn--bcher-kva.example/hook"),
        ("https://A.example", "https://a.example:443/"),
    ]
    for typed, kept in same:
        assert callback_key(typed) == callback_key(kept) is not None, (typed, kept)
    # IDNA 2003 maps ß to ss (one name), IDNA 2008 does not (two domains); a trailing dot; a label that is no Punycode
    for typed, kept in (
        ("https://straße.example/hook", "https://strasse.example/hook"),
        ("https://xn--strae-oqa.example/hook", "https://strasse.example/hook"),
        ("https://example.com./hook", "https://example.com/hook"),
        ("https://xn--!!!.example/hook", "https://example/hook"),
        # Punycode of ASCII alone is no A-label (RFC 5891 5.4): its own name, not the ASCII one nor another such
        ("https://xn--hooks-.example/hook", "https://hooks.example/hook"),
        ("https://xn--.example/hook", "https://xn---.example/hook"),
    ):
        assert callback_key(typed) != callback_key(kept), (typed, kept)
    assert callback_key("https://xn--strae-oqa.example/hook") == callback_key("https://straße.example/hook")


def test_a_configured_user_is_asked_of_calendly_as_it_writes_the_user(cbapp: Bapp, fake: FakeCalendly) -> None:
    """calendly.user is taken with a trailing slash or the host in capitals, as the sync takes it; the subscription
    commands sent it as written, which names no user Calendly knows: none of the user's subscriptions was listed, and
    a lost answer of `subscribe` was not found among them."""
    user = fake.user["uri"]
    typed = user.replace("https://api.calendly.com", "HTTPS://API.Calendly.COM") + "/"
    (cbapp.home / "config.toml").write_text(f'[calendly]\nuser = "{typed}"\n')
    fake.webhook_subscriptions.clear()
    fake.apply_then_reset_next("/webhook_subscriptions")
    made = cbapp("calendly", "webhook", "subscribe", "--url", URL, "--json")
    assert made.exit_code == 0 and "the subscription was created all the same" in made.stderr, made.stderr
    listed = cbapp("calendly", "webhook", "subscriptions", "--json")
    assert [row["callback_url"] for row in listed.json()] == [URL], listed.stderr
    asked = [request for request in fake.requests if request.path == "/webhook_subscriptions"]
    assert {request.params.get("user") or request.json()["user"] for request in asked} == {user}


def test_subscriptions_and_a_lost_answers_look_up_read_every_page(cbapp: Bapp, fake: FakeCalendly) -> None:
    user = fake.user["uri"]
    fake.webhook_subscriptions[:] = [
        {
            "uri": f"https://api.calendly.com/webhook_subscriptions/OLD{number:05d}",
            "callback_url": f"https://old.example.com/hook/{number}",
            "created_at": f"2020-01-01T00:{number // 60:02d}:{number % 60:02d}Z",
            "updated_at": "2020-01-01T00:00:00Z",
            "retry_started_at": None,
            "state": "active",
            "events": ["invitee.created"],
            "scope": "user",
            "organization": fake.user["current_organization"],
            "user": user,
            "creator": user,
        }
        for number in range(205)
    ]
    fake.clear_requests()
    listed = cbapp("calendly", "webhook", "subscriptions", "--json")
    assert listed.exit_code == 0, listed.stderr
    assert [row["callback_url"] for row in listed.json()] == [f"https://old.example.com/hook/{n}" for n in range(205)]
    assert fake.count("/webhook_subscriptions", with_page_token=True) == 2  # pages of 100, 100 and 5

    fake.apply_then_reset_next("/webhook_subscriptions")  # the new one is listed last, on the third page
    made = cbapp("calendly", "webhook", "subscribe", "--url", URL, "--json")
    assert made.exit_code == 0 and "the subscription was created all the same" in made.stderr, made.stderr
    assert made.json()["callback_url"] == URL and _posts(fake) == 1 and len(fake.webhook_subscriptions) == 206


def test_a_201_cut_short_is_looked_up_as_a_lost_answer(cbapp: Bapp, fake: FakeCalendly) -> None:
    # Calendly made it and the body arrived cut short: it was exit 9 "not valid JSON", and the rerun the
    # user would try met 409 "already exists"
    fake.webhook_subscriptions.clear()
    fake.truncate_next("/webhook_subscriptions")
    result = cbapp("calendly", "webhook", "subscribe", "--url", URL, "--json")
    assert result.exit_code == 0, result.stderr
    assert "the subscription was created all the same" in result.stderr
    assert result.json()["callback_url"] == URL
    assert _posts(fake) == 1 and len(fake.webhook_subscriptions) == 1


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_subscribe_with_a_config_file_it_cannot_write_leaves_no_key_behind(cbapp: Bapp, fake: FakeCalendly) -> None:
    """The new key was written, then naming it in the config file failed (exit 4): the key file stayed, named
    nowhere, and each later run made another. Now the run leaves nothing, and Calendly is never asked."""
    fake.webhook_subscriptions.clear()
    config = cbapp.home / "config.toml"
    config.write_text('format = "tsv"\n')
    (cbapp.home / "config.toml.tmp").mkdir()  # where the config is written before its rename: even root cannot
    for _ in range(2):
        result = cbapp("calendly", "webhook", "subscribe", "--url", URL)
        assert result.exit_code == 4 and f"cannot write config file {config}" in result.stderr, result.stderr
        assert sorted(path.name for path in cbapp.home.iterdir() if "key" in path.name) == []
    assert config.read_text() == 'format = "tsv"\n' and _posts(fake) == 0


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_configured_key_file_not_written_yet_is_written_by_subscribe(cbapp: Bapp, fake: FakeCalendly) -> None:
    """Reading a configured key file that is not there says "run `bapp calendly webhook subscribe` again", and
    subscribe failed on that same read (exit 4), where an empty file gets the new key."""
    fake.webhook_subscriptions.clear()
    key_file = cbapp.home / "keys" / "webhook.key"
    (cbapp.home / "config.toml").write_text(f'[calendly]\nwebhook_signing_key_file = "{key_file}"\n')
    unsigned = cbapp("calendly", "webhook", "sign", "-", stdin="{}")
    assert unsigned.exit_code == 4 and "or run `bapp calendly webhook subscribe` again" in unsigned.stderr
    result = cbapp("calendly", "webhook", "subscribe", "--url", URL, "--json")
    assert result.exit_code == 0, result.stderr
    assert result.json()["signing_key_file"] == str(key_file) and stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert fake.webhook_signing_keys[result.json()["uri"]] == key_file.read_text().strip()
    assert cbapp("calendly", "webhook", "sign", "-", stdin="{}").exit_code == 0


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_configured_key_file_that_cannot_be_looked_up_is_exit_4_naming_it(cbapp: Bapp, fake: FakeCalendly) -> None:
    """Whether the configured key file is there yet was asked with Path.exists(), which raises for a name the
    system refuses (ENAMETOOLONG; EACCES too): subscribe crashed (exit 1), where sign says which setting."""
    fake.webhook_subscriptions.clear()
    key_file = cbapp.home / ("k" * 300) / "webhook.key"
    (cbapp.home / "config.toml").write_text(f'[calendly]\nwebhook_signing_key_file = "{key_file}"\n')
    for command in (["sign", "-"], ["subscribe", "--url", URL]):
        result = cbapp("calendly", "webhook", *command, stdin="{}")
        assert result.exit_code == 4, result.stderr
        [line] = error_lines(result.stderr)
        assert line.startswith("Error: cannot read calendly.webhook_signing_key_file ") and "too long" in line
    assert _posts(fake) == 0 and fake.webhook_subscriptions == []


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_fifo_as_the_key_file_is_exit_4_naming_it_and_never_waits_for_a_writer(
    cbapp: Bapp, fake: FakeCalendly
) -> None:
    """Opened to be read, a FIFO waits for a writer: sign, subscribe (and apply, serve) hung for ever."""
    fake.webhook_subscriptions.clear()
    fifo = cbapp.home / "webhook.key"
    os.mkfifo(fifo)
    (cbapp.home / "config.toml").write_text(f'[calendly]\nwebhook_signing_key_file = "{fifo}"\n')
    for command in (["sign", "-"], ["subscribe", "--url", URL]):
        result = cbapp.process("calendly", "webhook", *command, stdin="{}", timeout=60)  # a guard, not a measure
        assert result.exit_code == 4, result.stderr
        assert error_lines(result.stderr) == [
            f"Error: calendly.webhook_signing_key_file {fifo} is not a regular file; it should hold the secret alone"
        ]
    assert _posts(fake) == 0 and stat.S_ISFIFO(fifo.stat().st_mode)


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_subscribe_never_writes_its_key_over_a_device_named_as_the_key_file(
    cbapp: Bapp, fake: FakeCalendly, tmp_path: Path
) -> None:
    """calendly.webhook_signing_key_file = "/dev/null" read as no key, so subscribe made one and renamed its file
    over the device: as root, the machine's /dev/null became a regular file. A device is no key file now, and
    refused before anything is written. A null device of the test's own stands in for it."""
    device = tmp_path / "null"
    os.mknod(device, stat.S_IFCHR | 0o666, os.makedev(1, 3))
    (cbapp.home / "config.toml").write_text(f'[calendly]\nwebhook_signing_key_file = "{device}"\n')
    result = cbapp("calendly", "webhook", "subscribe", "--url", URL)
    assert result.exit_code == 4, result.stderr
    assert f"calendly.webhook_signing_key_file {device} is not a regular file" in result.stderr
    assert stat.S_ISCHR(device.stat().st_mode) and _posts(fake) == 0


def test_subscribe_refuses_a_plain_http_url_and_a_bad_scope(cbapp: Bapp, fake: FakeCalendly) -> None:
    assert cbapp("calendly", "webhook", "subscribe", "--url", "http://bapp.example.com/hook").exit_code == 2
    # plain http to 127.0.0.1 only (a receiver under test), not to localhost as an issuer URL may be
    local = cbapp("calendly", "webhook", "subscribe", "--url", "http://localhost:8787/hook")
    assert local.exit_code == 2 and "Error: --url: 'http://localhost:8787/hook' must be an https:// URL" in local.stderr
    for no_host in (
        "https://",
        "https:// /hook",
        "https://./hook",
        "https://%20/hook",
        "https://[::1",
        "https://:443/hook",
    ):
        refused = cbapp("calendly", "webhook", "subscribe", "--url", no_host)
        assert refused.exit_code == 2 and "--url" in refused.stderr, (no_host, refused.stderr)
    assert cbapp("calendly", "webhook", "subscribe", "--url", "https://bapp.example.com:99999/hook").exit_code == 2
    assert cbapp("calendly", "webhook", "subscribe", "--url", URL, "--scope", "team").exit_code == 2
    assert _posts(fake) == 0


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)  # no database involved
def test_an_unsubscribe_whose_answer_is_lost_is_done_not_exit_7(cbapp: Bapp, fake: FakeCalendly) -> None:
    """Calendly deleted the subscription and the answer was lost: the one retry met 404 and the command said
    "Calendly has no webhook subscription" (exit 7) for the deletion it had just made."""
    fake.webhook_subscriptions.clear()
    made = cbapp("calendly", "webhook", "subscribe", "--url", URL, "--json")
    assert made.exit_code == 0, made.stderr
    fake.add_fault(Fault("/webhook_subscriptions/", "apply_then_reset", method="DELETE"))
    gone = cbapp("calendly", "webhook", "unsubscribe", made.json()["uri"])
    assert gone.exit_code == 0, gone.stderr
    assert fake.webhook_subscriptions == []
    again = cbapp("calendly", "webhook", "unsubscribe", made.json()["uri"])  # asked once, answered: none there
    assert again.exit_code == 7 and "has no webhook subscription" in again.stderr, again.stderr


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)  # no database involved
def test_an_unsubscribe_whose_answers_are_all_lost_says_what_the_rerun_s_exit_7_means(
    cbapp: Bapp, fake: FakeCalendly
) -> None:
    """Calendly deleted it and every answer was lost: the hint said a rerun takes what Calendly did as done, where
    the rerun finds no subscription and exits 7."""
    fake.webhook_subscriptions.clear()
    made = cbapp("calendly", "webhook", "subscribe", "--url", URL, "--json")
    assert made.exit_code == 0, made.stderr
    fake.add_fault(Fault("/webhook_subscriptions/", "apply_then_reset", method="DELETE", times=None))
    lost = cbapp("calendly", "webhook", "unsubscribe", made.json()["uri"])
    assert lost.exit_code == 9 and "the request may have been received" in lost.stderr, lost.stderr
    assert "Hint: run the command again: exit 7 (no such subscription) then means Calendly deleted it" in lost.stderr
    fake.clear_faults()
    again = cbapp("calendly", "webhook", "unsubscribe", made.json()["uri"])
    assert again.exit_code == 7 and "has no webhook subscription" in again.stderr, again.stderr


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)  # no database involved
def test_an_unsubscribe_met_by_429_waits_for_the_reset_as_every_write(cbapp: Bapp, fake: FakeCalendly) -> None:
    """DELETE /webhook_subscriptions took a 429 for a failure (exit 9) where every other request waits for the
    reset Calendly names and asks again."""
    fake.webhook_subscriptions.clear()
    made = cbapp("calendly", "webhook", "subscribe", "--url", URL, "--json")
    assert made.exit_code == 0, made.stderr
    limited = {"X-RateLimit-Limit": "500", "X-RateLimit-Remaining": "0", "X-RateLimit-Reset": "0"}
    fake.add_fault(Fault("/webhook_subscriptions/", "status", status=429, headers=limited, method="DELETE"))
    gone = cbapp("calendly", "webhook", "unsubscribe", made.json()["uri"])
    assert gone.exit_code == 0, gone.stderr
    assert fake.webhook_subscriptions == []


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)  # no database involved
def test_an_unsubscribe_of_a_mistyped_uri_whose_answer_is_lost_is_exit_7(cbapp: Bapp, fake: FakeCalendly) -> None:
    """The first DELETE's answer lost, the retry's 404 was taken for the lost attempt's deletion: a URI that never
    named a subscription was reported deleted (exit 0). It is looked up first now: none there, exit 7."""
    fake.webhook_subscriptions.clear()
    made = cbapp("calendly", "webhook", "subscribe", "--url", URL, "--json")
    assert made.exit_code == 0, made.stderr
    mistyped = made.json()["uri"][:-1] + "X"
    fake.add_fault(Fault("/webhook_subscriptions/", "apply_then_reset", method="DELETE"))
    gone = cbapp("calendly", "webhook", "unsubscribe", mistyped)
    assert gone.exit_code == 7 and "has no webhook subscription" in gone.stderr, gone.stderr
    assert len(fake.webhook_subscriptions) == 1


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)  # no database involved
def test_a_refused_unsubscribe_or_subscribe_names_the_request_refused(cbapp: Bapp, fake: FakeCalendly) -> None:
    """A 403 to the DELETE (or to the POST of a subscribe) said "Calendly denied access to GET
    /webhook_subscriptions/…": since d09a74d a GET of it comes first and was answered, so the message named the one
    request that was let through. Exit 4 either way, and nothing is deleted."""
    fake.webhook_subscriptions.clear()
    made = cbapp("calendly", "webhook", "subscribe", "--url", URL, "--json")
    assert made.exit_code == 0, made.stderr
    denied = b'{"title": "Permission Denied", "message": "You do not have permission"}'
    fake.add_fault(Fault("/webhook_subscriptions/", "status", status=403, body=denied, method="DELETE"))
    refused = cbapp("calendly", "webhook", "unsubscribe", made.json()["uri"])
    assert refused.exit_code == 4, refused.stderr
    assert f"denied access to DELETE /webhook_subscriptions/{made.json()['uri'].rsplit('/')[-1]}" in refused.stderr
    assert len(fake.webhook_subscriptions) == 1
    upgrade = b'{"title": "Permission Denied", "message": "Please upgrade your Calendly account to Standard"}'
    fake.add_fault(Fault("/webhook_subscriptions", "status", status=403, body=upgrade, method="POST"))
    plan = cbapp("calendly", "webhook", "subscribe", "--url", URL + "/2")
    assert plan.exit_code == 4 and "denied access to POST /webhook_subscriptions (HTTP 403" in plan.stderr, plan.stderr
