"""Calendly: talks to the Calendly API v2 and verifies its webhooks; never touches the database.

Contract:

* ``models`` — pydantic models of the API objects bapp reads (tolerant of unknown fields and of every
  documented null); importing it pulls in pydantic only.
* ``client`` — ``CalendlyClient`` on httpx: bearer token, timeouts, bounded retries, keyset pagination,
  strict validation. Failures are ``bapp_cli.errors`` types (AuthError 4, NotFound 7, RemoteError 9), one
  line each, never carrying the token.
* ``webhooks`` — signature verification (AuthError) and payload parsing (InvalidInput).

Text Calendly sends is cleaned as it is parsed, by the client and the webhook parser alike (and by the saved
listings' reader): control characters are removed (services.plain_text) and the caller is told which items.

Nothing is imported here, so ``import bapp_cli.calendly.webhooks`` does not load httpx, and the CLI can
import these modules lazily inside the commands that need them.
"""

import sys

# httpx's package imports its own command-line client (httpx._main: click, rich, pygments) only to offer
# httpx.main, which bapp never calls: about 60 ms of every Calendly command's start. Marked absent here,
# before the client imports httpx, that import fails and httpx defines a stub main instead.
sys.modules.setdefault("httpx._main", None)  # type: ignore[arg-type]
