"""The webhook receiver under load: deliveries per second and latency with 16 concurrent senders.

`bapp calendly webhook serve` runs as its own process (as in production, minus the TLS proxy) on SQLite
and on a throwaway PostgreSQL (initdb/pg_ctl, as the test suite starts it; skipped when the binaries are
missing). Each sender signs and POSTs distinct `invitee.created` deliveries — every one creates a client
and a booking in its own transaction — and times each answer. No target exists yet: the figures are
reported, not judged (issue 14).

    python bench/webhook.py [--deliveries 800] [--senders 16]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

import httpx  # noqa: E402
from report import MACHINE_PREFIX  # noqa: E402
from tests.cli.webhook_fixtures import KEY, delivery, free_port, signed  # noqa: E402
from tests.fakes.calendly_server import make_event_type  # noqa: E402
from tests.postgres_server import TemporaryPostgres  # noqa: E402


def _bapp(env: dict[str, str], *args: str) -> None:
    completed = subprocess.run([sys.executable, "-m", "bapp_cli", *args], env=env, capture_output=True, text=True)
    if completed.returncode != 0:
        raise SystemExit(f"bapp {' '.join(args)} failed ({completed.returncode}): {completed.stderr.strip()}")


def measure(label: str, database_url: str, home: Path, *, deliveries: int, senders: int) -> None:
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("BAPP_", "CALENDLY_"))},
        "BAPP_DATABASE_URL": database_url,
        "BAPP_CONFIG": str(home / "config.toml"),
        "BAPP_CACHE_DIR": str(home / "cache"),
        "CALENDLY_WEBHOOK_SIGNING_KEY": KEY,
    }
    listing = home / "types.json"
    listing.write_text(json.dumps([make_event_type(i) for i in range(3)]))
    _bapp(env, "db", "upgrade")
    _bapp(env, "calendly", "sync", "--from-file", str(listing))
    bodies = [delivery(10_000 + n, type_index=n % 3) for n in range(deliveries)]
    port = free_port()
    receiver = subprocess.Popen(
        [sys.executable, "-m", "bapp_cli", "calendly", "webhook", "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}/calendly/webhook"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise SystemExit("the receiver did not start")
            time.sleep(0.05)
        latencies: list[float] = []
        failures: list[int] = []
        lock = threading.Lock()
        cursor = iter(range(deliveries))

        def sender() -> None:
            with httpx.Client(timeout=60) as client:
                while True:
                    with lock:
                        n = next(cursor, None)
                    if n is None:
                        return
                    body = bodies[n]
                    started = time.perf_counter()
                    answer = client.post(url, content=body, headers={"Calendly-Webhook-Signature": signed(body)})
                    took = time.perf_counter() - started
                    with lock:
                        latencies.append(took)
                        if answer.status_code != 200:
                            failures.append(answer.status_code)

        threads = [threading.Thread(target=sender) for _ in range(senders)]
        started = time.perf_counter()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        wall = time.perf_counter() - started
    finally:
        receiver.terminate()
        receiver.wait(timeout=60)
    if failures:
        raise SystemExit(f"{label}: {len(failures)} deliveries not answered 200: {sorted(set(failures))}")
    latencies.sort()
    p50 = statistics.median(latencies) * 1000
    p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] * 1000
    rate = deliveries / wall
    print(
        f"webhook receiver ({label}): {rate:.0f} deliveries/s with {senders} concurrent senders | "
        f"p50 {p50:.0f} ms | p99 {p99:.0f} ms | {deliveries} deliveries, every one a new booking",
        flush=True,
    )
    for figure, value, unit in ((f"webhook {label} rate", rate, "deliveries/s"), (f"webhook {label} p99", p99, "ms")):
        payload = {"figure": figure, "bapp": round(value, 1), "anchor": "—", "unit": unit, "ratio": None}
        print(MACHINE_PREFIX + json.dumps({**payload, "target": "none yet (reported)", "met": True}), flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--deliveries", type=int, default=800)
    parser.add_argument("--senders", type=int, default=16)
    options = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bapp-bench-webhook-") as directory:
        home = Path(directory)
        (home / "sqlite").mkdir()
        measure(
            "SQLite",
            f"sqlite:///{home / 'sqlite' / 'bench.db'}",
            home / "sqlite",
            deliveries=options.deliveries,
            senders=options.senders,
        )
        existing = os.environ.get("BAPP_TEST_POSTGRES_URL")
        postgres = TemporaryPostgres()
        if existing is None and not postgres.available:
            print("webhook receiver (PostgreSQL): skipped — no initdb/pg_ctl", flush=True)
            return 0
        url = existing or postgres.start()
        try:
            (home / "postgresql").mkdir()
            measure("PostgreSQL", url, home / "postgresql", deliveries=options.deliveries, senders=options.senders)
        finally:
            if existing is None:
                postgres.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
