"""Serve the fake Calendly from the command line, for the demo (``make demo``) and for trying bapp by hand.

    python -m tests.fakes.serve_calendly [--event-types LISTING.json] [--token TOKEN]

Prints the base URL on stdout (one line, flushed) once the server listens on a free local port, then
serves until it is terminated. ``--event-types`` takes a saved ``GET /event_types`` listing (a page, a list
of pages or a list of event types), so the fake holds the same event types a database synced from it.
Offline: it binds 127.0.0.1 only.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
from pathlib import Path
from typing import Any

from tests.fakes.calendly_server import DEFAULT_TOKEN, FakeCalendly


def _event_types(path: str | None) -> list[dict[str, Any]]:
    if path is None:
        return []
    data = json.loads(Path(path).read_text(encoding="utf-8"))
    pages = data if isinstance(data, list) else [data]
    items: list[dict[str, Any]] = []
    for page in pages:
        if isinstance(page, dict) and "collection" in page:
            items.extend(page["collection"])
        elif isinstance(page, dict):
            items.append(page)
    return items


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--event-types", help="a saved GET /event_types listing to serve")
    parser.add_argument("--token", default=DEFAULT_TOKEN, help="the bearer token the fake accepts")
    options = parser.parse_args(argv)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    with FakeCalendly(options.token, event_types=_event_types(options.event_types)) as fake:
        sys.stdout.write(fake.base_url + "\n")
        sys.stdout.flush()
        # never an untimed wait: the kernel may hand SIGTERM to the server's thread, and the main thread, asleep in an
        # untimed lock wait, never ran the handler (the demo's fake outlived the demo); a timed one wakes to run it
        while not stop.wait(0.2):
            pass
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
