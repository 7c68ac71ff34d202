"""R6: the Calendly token, the webhook signing key and the database password never leave bapp.

A representative run — reads, a sync, a dry run with debug logging, a refused token, a bad webhook,
errors with --debug tracebacks, a config file — with known secrets, then every stdout, stderr, the
audit trail and the run records are searched for them. On PostgreSQL the URL carries a real password.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from urllib.parse import urlsplit

from sqlalchemy import text

from bapp_cli.calendly.webhooks import make_signature_header
from bapp_cli.db.engine import make_engine
from tests.conftest import Bapp, Result
from tests.fakes.calendly_server import DEFAULT_USER_URI, FakeCalendly, make_event_type

TOKEN = "calendly-TOKEN-r6-7d41c9e0aa"
SIGNING_KEY = "webhook-SIGNING-r6-93be11"


def test_no_secret_in_any_output_log_audit_row_or_run_record(bapp: Bapp, tmp_path: Path) -> None:
    password = urlsplit(bapp.database_url).password
    secrets = [TOKEN, SIGNING_KEY, *([password] if password else [])]
    results: list[Result] = []

    with FakeCalendly(token=TOKEN, event_types=[make_event_type(i) for i in range(5)]) as fake:
        env = {
            "CALENDLY_API_KEY": TOKEN,
            "CALENDLY_API_BASE_URL": fake.base_url,
            "CALENDLY_WEBHOOK_SIGNING_KEY": SIGNING_KEY,
            "BAPP_CALENDLY_BACKOFF": "0.01",
            "BAPP_CALENDLY_TIMEOUT": "2",
        }
        token_file = tmp_path / "token"
        token_file.write_text(TOKEN)

        def run(*args: str, extra: dict[str, str | None] | None = None) -> Result:
            result = bapp(*args, env={**env, **(extra or {})})
            results.append(result)
            return result

        assert run("config", "init", "--calendly-token-file", str(token_file)).exit_code == 0
        for fmt in ("json", "tsv", "table"):
            assert run("config", "show", "--format", fmt).exit_code == 0
        assert run("-vv", "calendly", "whoami", "--json").exit_code == 0
        assert run("-vv", "calendly", "sync", "--user", DEFAULT_USER_URI, "--dry-run").exit_code == 0
        assert run("calendly", "sync", "--user", DEFAULT_USER_URI, "--json").exit_code == 0
        assert run("--debug", "calendly", "status", "--json").exit_code == 0
        # a token the server refuses, in the environment and in a token file
        assert run("calendly", "sync", "--json", extra={"CALENDLY_API_KEY": TOKEN + "-old"}).exit_code == 4
        assert run("--debug", "-vv", "calendly", "whoami", extra={"CALENDLY_API_KEY": None}).exit_code == 0
        fake.fail_next("/event_types", status=500, times=20)
        assert run("--debug", "calendly", "sync", "--user", DEFAULT_USER_URI, "--json").exit_code == 9
        # webhooks: a forged signature and a good one (on a body bapp's model does not fit: parked, with its audit row)
        body = json.dumps({"event": "invitee.created", "payload": {}}).encode()
        delivery = tmp_path / "delivery.json"
        delivery.write_bytes(body)
        forged = make_signature_header(body, "not-the-key", timestamp=int(time.time()))
        assert run("calendly", "webhook", "apply", str(delivery), "--signature", forged).exit_code == 4
        good = make_signature_header(body, SIGNING_KEY, timestamp=int(time.time()))
        assert run("--debug", "calendly", "webhook", "apply", str(delivery), "--signature", good).exit_code == 3
        # ordinary commands and errors, with tracebacks allowed
        assert run("--debug", "-vv", "sessions", "list", "--json").exit_code == 0
        assert run("--debug", "pathways", "show", "nope", "--json").exit_code == 7
        assert run("--debug", "db", "current").exit_code == 0

    # an unreachable database: its URL (with the password) must not be echoed either
    if password:
        unreachable = bapp.database_url.replace(urlsplit(bapp.database_url).netloc.split("@")[1], "127.0.0.1:1")
        results.append(bapp("--debug", "pathways", "list", env={"BAPP_DATABASE_URL": unreachable}))
        assert results[-1].exit_code == 5

    for result in results:
        for secret in secrets:
            assert secret not in result.stdout, (secret, result.stdout[-500:])
            assert secret not in result.stderr, (secret, result.stderr[-500:])

    engine = make_engine(bapp.database_url)
    with engine.connect() as connection:
        stored = [
            json.dumps([str(value) for value in row])
            for table in ("audit_entries", "sync_runs")
            for row in connection.execute(text(f"SELECT * FROM {table}"))
        ]
    engine.dispose()
    assert any("calendly" in row for row in stored)  # the run really wrote audit rows and run records
    for row in stored:
        for secret in secrets:
            assert secret not in row
    config_text = Path(bapp.env["BAPP_CONFIG"]).read_text()
    assert TOKEN not in config_text  # the token stays in its own file; the config names the file
