"""Settings and where each one came from.

The one place bapp reads its own environment variables and its config file: `resolve_settings` builds a
frozen `Settings` once per run, with the precedence flag > environment > config file > default (README,
Configuration), and records where each value came from for `config show`. The config file is TOML; bapp
writes it with tomli-w and mode 0600 because it may hold secrets. This module imports only the standard
library, and the costlier parts of it (tomllib, urllib) only when used: the launcher's fast path for
`--help` and Tab completion imports it for the cache directory, and pydantic or even dataclasses would
show in that start-up time.
"""

from __future__ import annotations

import contextlib
import glob
import math
import os
import re
import stat
import sys
from collections.abc import Callable, Collection, Iterator, Mapping
from pathlib import Path
from types import MappingProxyType
from typing import IO, TYPE_CHECKING, Any, NamedTuple, TypedDict
from urllib.parse import unquote

from bapp_cli.errors import (
    BappError,
    ConfigError,
    Conflict,
    InvalidInput,
    UnreadableDocument,
    UsageError,
    check_length,
    holds_lone_surrogate,
    quoted,
    read_at_most,
    read_small_file,
    read_toml,
)

if TYPE_CHECKING:
    from urllib.parse import SplitResult

DEFAULT_CALENDLY_BASE_URL = "https://api.calendly.com"

# Every key `config set/unset` accepts, with the environment variables that override it.
# A secret is never echoed back; `config set` refuses secrets so they do not land in shell history.
KNOWN_KEYS: dict[str, tuple[str, ...]] = {
    "database_url": ("BAPP_DATABASE_URL", "DATABASE_URL"),
    "timezone": ("BAPP_TIMEZONE",),
    "format": ("BAPP_FORMAT",),
    "calendly.token": ("CALENDLY_API_KEY",),
    "calendly.token_file": (),
    "calendly.base_url": ("CALENDLY_API_BASE_URL",),
    "calendly.webhook_signing_key": ("CALENDLY_WEBHOOK_SIGNING_KEY",),
    "calendly.webhook_signing_key_file": (),
    "calendly.user": (),
    "calendly.organization": (),
    "calendly.pathway_question": (),
    # Open Badges issuer (`bapp badges issuer init`); the key file holds the Ed25519 private key (0600)
    "badges.key_file": ("BAPP_BADGES_KEY_FILE",),
    "badges.issuer_name": (),
    "badges.issuer_url": (),
    "badges.image_base_url": (),
    # auto (through Calendly when a token is configured), always, never: how `bookings create` books a
    # session type that was synced from Calendly
    "bookings.calendly": ("BAPP_BOOKINGS_CALENDLY",),
    # age after which `calendly reconcile` gives up a booking Calendly never confirmed
    "calendly.reconcile_give_up_hours": (),
    # seconds a statement waits for another writer's lock before the command is busy (exit 75): SQLite's busy
    # timeout, PostgreSQL's lock_timeout
    "busy_timeout": ("BAPP_BUSY_TIMEOUT",),
}
# Settings taken from the environment alone (operators' tuning and the process's identity): no flag, no
# config key, so `config set` does not take them; `config show` lists them with their source all the same.
ENVIRONMENT_SETTINGS: dict[str, str] = {
    "actor": "BAPP_ACTOR",
    "debug": "BAPP_DEBUG",
    "connect_timeout": "BAPP_CONNECT_TIMEOUT",
    "calendly_timeout": "BAPP_CALENDLY_TIMEOUT",
    "calendly_backoff": "BAPP_CALENDLY_BACKOFF",
    "calendly_max_wait": "BAPP_CALENDLY_MAX_WAIT",
    "cache_dir": "BAPP_CACHE_DIR",
}
# Calendly allows waits up to a minute between retries; a longer cap would only stall cron.
CALENDLY_MAX_WAIT_CAP = 60.0
_ENVIRONMENT_DEFAULTS: dict[str, Any] = {
    "debug": False,
    "connect_timeout": 10,
    "calendly_timeout": 30.0,
    "calendly_backoff": 0.5,
    "calendly_max_wait": CALENDLY_MAX_WAIT_CAP,
}
_TRUE_WORDS, _FALSE_WORDS = frozenset({"1", "true", "yes", "on"}), frozenset({"0", "false", "no", "off", ""})
SECRET_KEYS = frozenset({"calendly.token", "calendly.webhook_signing_key"})
# The keys holding a URL, whose password `config show` masks; any other text (a name, a pattern) is shown as written
_URL_KEYS = {key for key in KNOWN_KEYS if key.endswith("_url")} | {"calendly.user", "calendly.organization"}
MASK = "****"
OUTPUT_FORMATS = ("table", "json", "jsonl", "csv", "tsv")
CALENDLY_MODES = ("auto", "always", "never")  # bookings.calendly
MAX_GIVE_UP_HOURS = 100_000  # calendly.reconcile_give_up_hours: over eleven years is no deadline
# busy_timeout's range, seconds: as the webhook receiver's --busy-timeout at the short end (PostgreSQL reads a
# lock_timeout of 0 ms as no bound at all), an hour at the long one, as the other waits
BUSY_TIMEOUT_RANGE = (0.1, 3600.0)
DEFAULT_PATHWAY_QUESTION = "pathway"
# What a key the flags, the environment and the file leave unset means (README's settings table), resolved
# as a value of source "default": `config show` lists it, and commands read it as they read a set one.
# format's depends on stdout (see resolve_settings); database_url's on the user's data directory.
_KEY_DEFAULTS: dict[str, Any] = {
    "timezone": "UTC",
    "calendly.base_url": DEFAULT_CALENDLY_BASE_URL,
    "calendly.pathway_question": DEFAULT_PATHWAY_QUESTION,
    "bookings.calendly": "auto",
    "calendly.reconcile_give_up_hours": 24,
    "busy_timeout": 30,
}
# The URL forms bapp has drivers for; anything else would fail deep inside SQLAlchemy with an import error.
SUPPORTED_DATABASE_URLS = "sqlite:///PATH, postgresql://USER@HOST/DB (or postgres://…), postgresql+psycopg://…"
_DATABASE_SCHEMES = frozenset({"sqlite", "postgres", "postgresql", "postgresql+psycopg"})


def default_config_path() -> Path:
    import platformdirs

    return Path(platformdirs.user_config_dir("bapp")) / "config.toml"


def default_database_path() -> Path:
    import platformdirs

    return Path(platformdirs.user_data_dir("bapp")) / "bapp.db"


def normalise_database_url(url: str) -> str:
    """Give `postgres://` and `postgresql://` URLs (the seed's DATABASE_URL form) the psycopg driver, and every
    scheme its lower case: a scheme is any case (RFC 3986 3.1), as the settings check it, where SQLAlchemy and libpq
    refused `SQLite://` and `PostgreSQL://` (exit 4), and the plain reads took the first."""
    scheme, separator, rest = url.partition("://")
    scheme = "postgresql+psycopg" if scheme.lower() in ("postgres", "postgresql") else scheme.lower()
    return scheme + separator + rest if separator else url


# A URL's password: after the user, up to the last @ before the first / (libpq's reading, wider), else up to the
# next @, a / in it (SQLAlchemy's). A ? or # in it is no query or fragment to either, as it was to urlsplit. Found
# after a scheme written with fewer slashes too (`postgresql:/app:pw@h`), a URL refused but shown by `config show`,
# or with none (`app:pw@h/db`, `//app:pw@h`), up to its first @ then: not after a scheme's slashes (`scheme://u@h`).
_URL_PASSWORD = re.compile(r"^([^:/]+:/*[^:/]*:|/*[^:/@]+:(?!/))([^/]*|[^@]*)@")
# The password of a libpq keyword/value string (`host=h password=pw`, `password = 'p w'`): no URL, so refused, but
# shown by `config show`, which showed the password.
_DSN_PASSWORD = re.compile(r"(?<!\S)(password\s*=\s*)('(?:\\.|[^'\\])*'?|(?:\\.|\S)*)")


# A URL's query parameter, name and value: after each ? or & (a ? read as & too, so that it is found wherever
# SQLAlchemy's reading or libpq's puts the query), its value up to the next & only, as both read it: one ending at a
# ? showed the rest of a password holding one (?password=pw?rest); and past an & that begins no parameter (no =
# before the next &): to both readers ?password=pw&rest is pw and a `rest` refused, but rest is the password's too.
# Looked ahead, so one found in another's value (?x=1?password=pw) is found too.
_URL_PARAMETER = re.compile(r"(?<![^?&])(?=([^?&=]*)=((?:[^&]|&(?=[^&=]*(?:&|$)))*))")


def _query_passwords(url: str) -> list[re.Match[str]]:
    """Each `?password=` of `url` (the name perhaps %-escaped), which libpq and SQLAlchemy both take: what
    `mask_url_password` masks and `Settings.secret_values` scrubs."""
    from urllib.parse import unquote

    return [match for match in _URL_PARAMETER.finditer(url) if unquote(match[1]) == "password"]


_IN_QUERY_VALUE = re.compile(r"[?&][^?&=/@]*=[^?&]*$")
_AFTER_A_HOST = re.compile(r"@[^/?#]*(?:/[^?#]*)?\?")


def _in_query_value(url: str, at: int) -> bool:
    """Whether the @ at `at` is in a query parameter's value (`?application_name=a@b`), so no password's end: of a
    query after a host (`@h/db?`, `@h?`), not of a `?x=1` the password holds before its @ (`pw/?x=1@hunter2@h`)."""
    value = _IN_QUERY_VALUE.search(url, 0, at)
    return value is not None and _AFTER_A_HOST.search(url, 0, value.start() + 1) is not None


def _typed_password(url: str) -> tuple[int, int] | None:
    """Where the password after the user is as typed, raw `@`, `/`, `?` and `#` and all: to the last @ in no query
    parameter's value. Both readers end one holding an @ and a / (`pw@/x@h`, `pw/@x@h`) at an earlier @, reading
    the rest as the database name, which `config show` showed; but all of it is the user's secret."""
    if (user := _URL_PASSWORD.match(url)) is None:
        return None
    ats = [at.start() for at in re.finditer("@", url) if not _in_query_value(url, at.start())]
    return user.start(2), max([user.end(2), *ats])


def mask_url_password(url: str) -> str:
    """`url` with its password as ****: the one after the user, each `?password=` (`_query_passwords`), and a
    keyword/value string's."""
    # each found in the URL as given, all of two that overlap hidden: masking either first could hide the @ ending
    # the other, then shown in part (the query's first: app:pw&password=x@h showed pw, the user's whole password to
    # SQLAlchemy being pw&password=x; the user's first: app@h:5432/db?password=pw@tail showed the query's tail)
    shown, end, typed = "", 0, _typed_password(url)  # the user's, as typed
    found = [match.span(2) for match in (*_query_passwords(url), *_DSN_PASSWORD.finditer(url))]
    for start, stop in sorted(found + ([typed] if typed else [])):
        shown += (url[end:start] + MASK) if start >= end else ""  # one inside the last: hidden with it
        end = max(end, stop)
    return shown + url[end:]


def check_database_url(url: str) -> str:
    """`url` if bapp can open it, else ConfigError naming the supported forms (never the URL: it may hold a
    password)."""
    scheme, separator, rest = url.partition("://")
    scheme = scheme.lower()
    if not separator or scheme not in _DATABASE_SCHEMES:
        # only what a scheme can be (RFC 3986 3.1): a `://` later in a value that is none made all before it the
        # "scheme", shown with the password it held (`app:pw@db://x`, `password=pw x://`)
        shown = f"scheme {scheme!r}" if separator and re.fullmatch(r"[a-z][a-z0-9+.-]{0,39}", scheme) else "form"
        raise ConfigError(
            f"database URL: unsupported {shown}", hint=f"use one of: {SUPPORTED_DATABASE_URLS}", code="database_url"
        )
    if scheme == "sqlite" and "\x00" in unquote(rest.partition("?")[0]):  # `%00`: os.stat's ValueError, exit 1
        raise ConfigError("database URL: its SQLite path holds a NUL (%00), as no file name can", code="database_url")
    if scheme == "sqlite" and (not rest.startswith("/") or unquote(rest[1:].partition("?")[0]) in ("", ":memory:")):
        # `sqlite:///` and `sqlite:///:memory:` name no file: the plain reads refused them (exit 4), the engine made a
        # database that vanished with the command ("no schema yet", exit 5; `db upgrade` upgraded it for nothing)
        raise ConfigError(
            "database URL: a SQLite URL needs three slashes before the path of its file",
            hint="sqlite:///relative/path.db or sqlite:////absolute/path.db",
            code="database_url",
        )
    if scheme != "sqlite" and (port := _bad_port(url)) is not None:  # was taken, then every command refused the URL
        raise ConfigError(f"database URL: port {quoted(port)} is not a number from 1 to 65535", code="database_url")
    # The driver's reading of the rest (a host, %-escapes, `?…` options), which the database's opening refused naming
    # neither DATABASE_URL nor the config file it came from: here, the settings name them
    from bapp_cli.db.dbapi import check_sqlite_query, libpq_parameters

    try:
        if scheme == "sqlite":
            check_sqlite_query(url)
        else:
            libpq_parameters(url)
    except ImportError:  # no PostgreSQL driver: the engine names the package to install
        pass
    except ConfigError as refused:  # without its hint, which names --database-url and BAPP_DATABASE_URL only
        raise ConfigError(refused.message, code="database_url") from None
    return url


def _bad_port(url: str) -> str | None:
    """The first port of a PostgreSQL URL's hosts (`h:5432`, `[::1]:5432`, several: `h1:5432,h2:5433`) that libpq
    cannot take; an empty one is its default. It is named as read after the password where `_URL_PASSWORD` ends it,
    so what is shown is never part of it, and only if libpq, whose user ends at the first `@` before any `/`, reads
    a bad port too: `u:p@h:5432?application_name=a@b:0` is h's port 5432, and so is `h:%35432` (%-escaped)."""
    user = _URL_PASSWORD.match(url)
    name, at, after = (rest := url.partition("://")[2]).partition("@")
    as_libpq = after if at and "/" not in name else rest
    shown = _first_bad_port(url[user.end() :] if user else as_libpq)
    return shown if shown is not None and _first_bad_port(as_libpq) is not None else None


def _first_bad_port(hosts: str) -> str | None:
    for host in re.split("[/?]", hosts)[0].split(","):  # up to the path or query (a socket's `?host=` has none)
        # after an IPv6 address's bracket (one unclosed is the URL's "not valid" as before, not a port's fault)
        port = host.rpartition("]")[2].partition(":")[2] if "]" in host or not host.startswith("[") else ""
        digits = re.fullmatch(r"\s*\+?0*([0-9]{1,5})\s*", unquote(port))  # not all to int(): it refuses 4,301 digits
        if port and not (digits and 0 < int(digits[1]) < 65536):
            return port
    return None


def cache_directory(environ: Mapping[str, str] | None = None) -> Path:
    """Where the command index lives: BAPP_CACHE_DIR, else `$XDG_CACHE_HOME/bapp`, else `~/.cache/bapp`.

    A function of its own because the launcher answers `--help` and completion before any settings are
    resolved (it must not read the config file on every Tab press)."""
    env = os.environ if environ is None else environ
    if env.get("BAPP_CACHE_DIR", "").strip():  # a blank one is refused by the settings, never a folder called "  "
        return Path(env["BAPP_CACHE_DIR"])
    base = env.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "bapp"


MAX_ACTOR_LENGTH = 200  # db.models.AuditEntry.actor


def parse_environment_setting(key: str, raw: str) -> Any:
    """The typed value of an environment-only setting; InvalidInput saying what is wrong otherwise."""
    text = raw.strip()
    if key == "debug":
        if text.lower() in _TRUE_WORDS:
            return True
        if text.lower() in _FALSE_WORDS:
            return False
        raise InvalidInput("must be 1 or 0 (or true/false, yes/no, on/off)", code="invalid_setting")
    if key == "connect_timeout":
        # the length first: int() refuses 4,301 digits or more (exit 1)
        if not (text.isascii() and text.isdigit() and len(text) <= 9 and 0 < int(text) <= 3600):
            raise InvalidInput("must be a whole number of seconds from 1 to 3600", code="invalid_setting")
        return int(text)
    if key in ("calendly_timeout", "calendly_backoff", "calendly_max_wait"):
        try:
            seconds = float(text)
        except ValueError:
            raise InvalidInput(f"must be a number of seconds, not {raw[:40]!r}", code="invalid_setting") from None
        if not 0 < seconds <= 3600:  # a socket's timeout overflows past about 9.2e9 s (exit 1 mid-request)
            raise InvalidInput("must be a positive number of seconds, at most 3600", code="invalid_setting")
        return min(seconds, CALENDLY_MAX_WAIT_CAP) if key == "calendly_max_wait" else seconds
    if not text:  # BAPP_ACTOR="  " named no one in the audit log, BAPP_CACHE_DIR="  " a folder called "  " here
        raise InvalidInput("is empty", hint="give it a value, or unset it", code="invalid_setting")
    # an actor is kept in every audit row, whose column holds this much (PostgreSQL refuses more mid-command)
    return check_length(raw, MAX_ACTOR_LENGTH, None, code="invalid_setting") if key == "actor" else raw  # or cache_dir


def check_setting(key: str, value: Any) -> Any:
    """`value` if it is valid for `key`; InvalidInput naming the key otherwise (ConfigError for the URL)."""
    # an environment variable's bytes that are not UTF-8 (os.environ holds them as surrogates), which no database
    # driver can send: a URL holding them, or an actor (written with every change), was exit 1 at the first use
    if key in ("database_url", "actor") and isinstance(value, str) and holds_lone_surrogate(value):
        raise InvalidInput(f"{key}: is not UTF-8 text", hint="check the locale of what sets it", code="invalid_setting")
    if key in ENVIRONMENT_SETTINGS and isinstance(value, str):
        return parse_environment_setting(key, value)
    if key == "calendly.reconcile_give_up_hours":  # as --give-up-after's range
        return _number_setting(key, value, 0, MAX_GIVE_UP_HOURS, "hours")
    if key == "busy_timeout":
        return _busy_timeout(value)
    if not isinstance(value, str):
        raise InvalidInput(f"{key}: must be a string, not {type(value).__name__}", code="invalid_setting")
    if key == "database_url":
        return check_database_url(value)
    if key == "timezone":
        return validate_timezone(value)
    if key == "format" and value.lower() not in OUTPUT_FORMATS:
        raise InvalidInput(
            f"format: unknown format {quoted(value)}",
            hint="choose one of: " + ", ".join(OUTPUT_FORMATS),
            code="invalid_setting",
        )
    if key in ("calendly.base_url", "calendly.user", "calendly.organization"):
        parts = url_parts(value)
        if parts is None or parts.scheme not in ("http", "https"):
            raise InvalidInput(
                f"{key}: {quoted(mask_url_password(value))} is not an http(s) URL", code="invalid_setting"
            )
        if key == "calendly.user":
            checked_user_uri(value, key)
        if key == "calendly.base_url":
            _checked_base_url(parts, key)
    if key in ("badges.issuer_url", "badges.image_base_url"):
        validate_issuer_url(value, key)
    if key == "badges.issuer_name":  # signed into every credential, shown by every wallet: text as bapp stores it
        from bapp_cli.services.plain_text import without_controls

        without_controls(value, key)
    if key == "calendly.pathway_question":
        compile_pattern(value, key)
    if key.endswith("_file") and "\x00" in value:  # open() raises ValueError for it, not OSError
        raise InvalidInput(f"{key}: holds a NUL character, which no file name can", code="invalid_setting")
    if not value.strip():  # no way to unset a key (`config unset` is): taken as unset, `token = ""` hid token_file
        raise InvalidInput(f"{key}: is empty", hint="give it a value, or leave it out", code="invalid_setting")
    if key == "bookings.calendly" and value.strip().lower() not in CALENDLY_MODES:
        raise InvalidInput(f"{key}: {value[:40]!r} is not one of {', '.join(CALENDLY_MODES)}", code="invalid_setting")
    return value


def _checked_base_url(parts: SplitResult, key: str) -> None:
    """What every Calendly command refuses of a base URL (calendly.client's `_parse_base_url`), refused where it is
    set: `config set` stored it and only the next sync said so. Not echoed: a mis-pasted one may hold credentials."""
    if "@" in parts.netloc or parts.query or parts.fragment:
        raise InvalidInput(f"{key}: must not carry credentials, a query or a fragment", code="invalid_setting")
    try:  # a label empty or past 63 characters, or an xn-- one that is no Punycode: no DNS name, as idna says
        str(parts.hostname).encode("idna").decode("idna")
    except UnicodeError:
        raise InvalidInput(f"{key}: its host is no DNS name", code="invalid_setting") from None


def _number_setting(key: str, value: Any, low: float, high: float, unit: str) -> float:
    """`key`'s `value` (a TOML number, or text from the environment or `config set`) as a number of `unit` from `low`
    to `high`, both ends in; NaN, infinity, a boolean and anything else are refused naming the key."""
    try:
        number = math.nan if isinstance(value, bool) else float(value)
    except (TypeError, ValueError):
        number = math.nan
    if not low <= number <= high:  # NaN fails too
        raise InvalidInput(
            f"{key}: {str(value)[:40]!r} is not a number of {unit} from {low:g} to {high:g}", code="invalid_setting"
        )
    return number


def _busy_timeout(value: Any) -> float:
    return _number_setting("busy_timeout", value, *BUSY_TIMEOUT_RANGE, "seconds")


def url_parts(url: str) -> SplitResult | None:
    """The parts of `url` when it is printable, holds no space and names a host; None otherwise. urlsplit
    takes anything between "//" and "/" as the host (a blank, dotted-only or escaped one is none), and
    raises only when asked for a malformed port, or for an unclosed IPv6 bracket."""
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - a malformed port or bracketed host raises here
    except ValueError:
        return None
    host = parts.hostname or ""
    return parts if url.isprintable() and " " not in url and host.strip(".") and "%" not in host else None


_USER_PATH = re.compile(r"/users/([A-Za-z0-9_-]+)/?")
USER_URI_HINT = "e.g. https://api.calendly.com/users/AAAA (see `bapp calendly whoami`)"


def calendly_user_uri(value: str) -> str | None:
    """The Calendly user `value` names, written as Calendly writes a user's URI (`/users/me`'s `uri`, an event type's
    owner): no space around it, scheme and host in lower case, no slash after the uuid, which Calendly identifies
    the user by (`GET /users/{uuid}`) and which keeps its case (a path's case is its own, RFC 3986 6.2.2.1). None
    for anything else: no /users/ path, a query, a fragment or a user and password in it."""
    parts = url_parts(value.strip())
    user = _USER_PATH.fullmatch(parts.path) if parts is not None else None
    if parts is None or user is None or parts.scheme not in ("http", "https") or "@" in parts.netloc:
        return None
    return None if parts.query or parts.fragment else f"{parts.scheme}://{parts.netloc.lower()}/users/{user[1]}"


def checked_user_uri(value: str, name: str, refusal: type[BappError] = InvalidInput) -> str:
    """`value` (`--user`, calendly.user) as calendly_user_uri writes it; else `refusal` naming `name` and the value,
    its password masked as every URL bapp shows."""
    if (uri := calendly_user_uri(value)) is None:
        message = f"{name}: {quoted(mask_url_password(value))} is not a Calendly user URI"
        raise refusal(message, hint=USER_URI_HINT, code="invalid_setting" if refusal is InvalidInput else None)
    return uri


def unicode_domain(domain: str) -> str:
    """`domain` (in lower case: a URL's host, an e-mail's domain) with each label in Punycode (``xn--``) of a name not
    all ASCII in its Unicode form: the one name DNS knows by either spelling. A label that is no such name stays as
    written: ``xn--hooks-`` is no other name for ``hooks`` (RFC 5891 5.4), and a false "same" would make two
    addresses (or callback URLs) one."""
    import unicodedata

    labels = domain.split(".")
    for at, label in enumerate(labels):
        if label.startswith("xn--"):
            with contextlib.suppress(UnicodeError):
                unicode = unicodedata.normalize("NFC", label[4:].encode("ascii").decode("punycode")).lower()
                labels[at] = label if unicode.isascii() else unicode
    return ".".join(labels)


def email_key(address: str) -> str:
    """An e-mail `address` as bapp keys it, unchecked: NFC, trimmed, lower case, its domain in Unicode
    (unicode_domain). services.emails.normalise_email checks it; db.locks.client_lock_key keys a client by it."""
    import unicodedata

    key = unicodedata.normalize("NFC", address.strip()).lower()
    if "xn--" not in key:  # nothing in Punycode, nearly every address: an import keys one a row
        return key
    local, at, domain = key.rpartition("@")
    return f"{local}{at}{unicode_domain(domain)}"


def with_ascii_domain(address: str) -> str:
    """An e-mail `address` with each label of its domain not all ASCII in its Punycode (``xn--``) form: the inverse of
    unicode_domain, the spelling an earlier bapp stored (and put in what it signed) when an address came so."""
    local, at, domain = address.rpartition("@")
    labels = [
        label if label.isascii() else "xn--" + label.encode("punycode").decode("ascii") for label in domain.split(".")
    ]
    return f"{local}{at}{'.'.join(labels)}"


def callback_key(url: str) -> tuple[Any, ...] | None:
    """What a webhook's callback URL is compared by when a lost `calendly webhook subscribe` is looked up among the
    subscriptions: scheme and host in any case, a host label in Unicode or as its xn-- (Punycode) form alike (RFC
    3987 3.1), the default port written or not, an empty path as "/". Not the path's case or a trailing slash: those
    name another resource, which `webhook serve` (one exact path) answers 404; nor a host's trailing dot
    (`example.com.`, another name to DNS and to TLS); nor two Unicode names IDNA 2003 maps to one (`ß` and `ss`, two
    domains under IDNA 2008); nor the user and password before the host, which RFC 3986 6.2 keeps (else the URL's
    older subscription without them passed for the new one made with them). Each is told apart because a false
    "same" reports a subscription made that was not. None for one that cannot be read."""
    parts = url_parts(url)
    if parts is None:
        return None
    port = parts.port if parts.port is not None else {"https": 443, "http": 80}.get(parts.scheme)
    host = unicode_domain(parts.hostname or "")
    return (parts.scheme, parts.netloc.rpartition("@")[0], host, port, parts.path or "/", parts.query)


def https_url(url: str, local_hosts: Collection[str] = ("localhost", "127.0.0.1")) -> SplitResult | None:
    """`url`'s parts if it is an https URL with a host, or http to one of `local_hosts` (a server under test)."""
    parts = url_parts(url)
    local = parts is not None and parts.scheme == "http" and parts.hostname in local_hosts
    return parts if parts is not None and (parts.scheme == "https" or local) else None


def validate_issuer_url(url: str, field: str = "--url") -> str:
    """An https URL (http only for localhost) without credentials, query or fragment, since verifiers dereference the
    Open Badges ids derived from it: the issuer's, or its achievement images'. A user and password in it were signed
    into the public issuer profile and every badge."""
    cleaned, shown = url.strip(), quoted(mask_url_password(url))  # a password in it is never echoed; a long one cut
    parts = https_url(cleaned)
    if parts is None:
        raise InvalidInput(
            f"{field}: {shown} is not an https URL", hint="e.g. https://buildappswith.com", code="bad_issuer_url"
        )
    if parts.query or parts.fragment or "@" in parts.netloc:
        raise InvalidInput(f"{field}: {shown} must not carry credentials, a query or a fragment", code="bad_issuer_url")
    return cleaned.rstrip("/")


def compile_pattern(
    text: str, where: str, error: type[BappError] = InvalidInput, hint: str | None = None
) -> re.Pattern[str]:
    """A regular expression a user wrote (a setting, a sync rule), compiled case-insensitive; else ``error``
    naming ``where``. re.compile raises OverflowError or RecursionError, not re.error, for a{99999999999} or
    groups nested a thousand deep."""
    try:
        return re.compile(text, re.IGNORECASE)
    except re.error as exc:
        problem = f"not a valid regular expression ({exc})"
    except (OverflowError, RecursionError):
        problem = "a regular expression too large to compile"
    raise error(f"{where}: {problem}", hint=hint, code="invalid_setting")


class Setting(NamedTuple):
    value: Any
    source: str  # "flag", "env:NAME", "file", "default"


class SettingProblem(NamedTuple):
    key: str
    source: str
    error: InvalidInput | ConfigError

    def describe(self, settings: Settings) -> str:
        """`<where>, key <key>: <what is wrong>` — the file (or variable) and the key to fix."""
        message = self.error.message
        for prefix in (f"{self.key}: ", "database URL: "):
            message = message.removeprefix(prefix)
        if self.key in ENVIRONMENT_SETTINGS:  # the variable is the whole name; there is no key to edit
            return f"{settings.describe_source(self.source)}: {message}"
        return f"{settings.describe_source(self.source)}, key {self.key}: {message}"


class DatabaseWaits(TypedDict):
    """The waits of a database connection, as db.engine.make_engine and db.dbapi.connect take them: whole seconds for
    the server to answer, milliseconds for another writer's lock."""

    connect_timeout: int
    busy_timeout_ms: int


class Settings(NamedTuple):
    """Every setting of one run, resolved once and immutable: `values` holds each with where it came from
    (for `config show`); the typed properties are what commands use."""

    config_path: Path
    config_path_source: str
    values: Mapping[str, Setting] = MappingProxyType({})
    file_data: Mapping[str, Any] = MappingProxyType({})

    def get(self, key: str) -> Any:
        setting = self.values.get(key)
        return None if setting is None else setting.value

    def file_value(self, key: str) -> Any:
        """`key`'s value in the config file itself (the environment may override it); None when it has none."""
        return _file_value(self.file_data, key)

    def text(self, key: str) -> str | None:
        """A setting as stripped text; unset or blank is None."""
        value = self.get(key)
        return str(value).strip() or None if value is not None else None

    def describe_source(self, source: str) -> str:
        """Where a value came from, in words a person can act on."""
        if source == "file":
            return f"config file {self.config_path}"
        if source.startswith("env:"):
            return f"environment variable {source[4:]}"
        return "the command line" if source == "flag" else source

    def problems(self) -> list[SettingProblem]:
        """Every resolved setting whose value is not valid, with where it came from."""
        found = []
        for key, setting in self.values.items():
            if setting.source == "default" or setting.value is None:
                continue
            try:
                check_setting(key, setting.value)
            except (InvalidInput, ConfigError) as error:
                found.append(SettingProblem(key, setting.source, error))
        return found

    def check(self, ignoring: Collection[str] = ()) -> None:
        """Refuse settings that are not valid, but those in `ignoring` (a command's flag replaces them). From the
        command line an error keeps its own code (the parser refuses a bad --timezone first: exit 2); from a file or the
        environment it is configuration (4), naming the file or variable and the key, so the user knows what
        to edit."""
        problems = [problem for problem in self.problems() if problem.key not in ignoring]
        if not problems:
            return
        first = problems[0]
        if first.source == "flag" and len(problems) == 1:
            raise first.error
        lines = [problem.describe(self) for problem in problems]
        hint = first.error.hint
        if any(problem.source == "file" for problem in problems):
            hint = (hint + "; " if hint else "") + "`bapp config show` lists every setting and its source"
        raise ConfigError(
            lines[0] if len(lines) == 1 else f"{len(lines)} settings are not valid",
            hint=hint,
            details=lines if len(lines) > 1 else None,
            code="invalid_setting",
        )

    def unknown_file_keys(self) -> list[str]:
        """Keys in the config file that bapp does not read (a typo such as `timezon`), dotted."""
        known_tables = {key.split(".")[0] for key in KNOWN_KEYS if "." in key}
        read = set(KNOWN_KEYS) | {"calendly.rules"}
        found: list[str] = []
        for key, value in self.file_data.items():
            if key in known_tables and isinstance(value, dict):
                found.extend(f"{key}.{sub}" for sub in value if f"{key}.{sub}" not in read)
            elif key not in read:
                found.append(key)
        return found

    def secrets_exposed(self) -> bool:
        """True when the config file holds a secret and others can read it (group/other permission bits)."""
        if not any(_holds_secret(_file_value(self.file_data, key)) for key in SECRET_KEYS):
            return False
        try:
            return bool(self.config_path.stat().st_mode & (stat.S_IRWXG | stat.S_IRWXO))
        except OSError:
            return False

    def own_files(self) -> list[tuple[str, str, str]]:
        """The files of bapp's own these settings name, which no output may replace: the SQLite database (and its
        journal), the config file, and the files of the secrets — each (its path, what it is, the noun of what
        writing over it would destroy)."""
        from bapp_cli.db.dbapi import sqlite_file

        found = [(str(self.config_path), "bapp's config file", "configuration")]
        database = sqlite_file(self.database_url)
        # named after the file a symlink leads to: SQLite opens that one, and keeps its journal beside it
        for suffix in ("", "-wal", "-shm", "-journal") if database is not None else ():
            path = f"{os.path.realpath(str(database))}{suffix}"
            found.append((path, f"the database bapp is using ({path})", "database"))
        # a sync's or an import's flock holds the lock file's inode: one renamed over it lets a second run beside it
        for lock in database.parent.glob(f"{glob.escape(database.name)}.*.lock") if database is not None else ():
            found.append((str(lock), f"a lock file of the database bapp is using ({lock})", "database"))
        for key in ("badges.key_file", "calendly.token_file", "calendly.webhook_signing_key_file"):
            if named := self.get(key):
                found.append((str(user_path(str(named))), f"the file of {key}", "secret"))
        return found

    def secret_values(self) -> set[str]:
        """The secrets these settings hold — SECRET_KEYS' values, the database passwords as written and decoded,
        read as `mask_url_password` reads them — which every error text is scrubbed of (R6)."""
        from urllib.parse import unquote, unquote_plus

        found = {str(value) for key in SECRET_KEYS if (value := self.get(key))}
        user = _URL_PASSWORD.match(url := self.database_url)
        # a ?password= as SQLAlchemy decodes its query (parse_qsl: a + is a space)
        passwords = [unquote_plus(match[2]) for match in _query_passwords(url) if match[2]]
        start, end = _typed_password(url) or (0, 0)  # and as typed (`pw@/x`): the readers' pw, and all of it
        passwords += [user[2], url[start:end]] if user else []
        parts = {text for password in passwords for text in (password, unquote(password))}
        for password in passwords:
            # each part of one holding an @ too: a reader ends it at one and reads what follows as the host, up to a
            # / : , ? or # (`pw@HOST/rest@h`), which a failed connection names ("failed to resolve host 'HOST'");
            # not a part of one without an @ ('pass' of my/pass/word: every "password" in a message)
            first, *after = password.split("@")
            parts |= {first, *after, *(text for host in after for text in re.split("[/:,?#]", host))}
        return found | parts

    def _environment_value(self, key: str) -> Any:
        value = self.get(key)
        return parse_environment_setting(key, value) if isinstance(value, str) else value

    @property
    def output_format(self) -> str | None:
        """The configured output format (lower case), or None to choose by whether stdout is a terminal."""
        value = self.text("format")
        return value.lower() if value else None

    @property
    def actor(self) -> str:
        """Who the audit log names for this run's changes (BAPP_ACTOR, else the login name)."""
        return str(self.get("actor"))

    @property
    def debug(self) -> bool:
        return bool(self._environment_value("debug"))

    @property
    def connect_timeout(self) -> int:
        """Whole seconds to wait for PostgreSQL to answer."""
        return int(self._environment_value("connect_timeout"))

    @property
    def calendly_timeout(self) -> float:
        """Read timeout of one Calendly request, seconds."""
        return float(self._environment_value("calendly_timeout"))

    @property
    def calendly_backoff(self) -> float:
        """First step of the retry back-off against Calendly, seconds."""
        return float(self._environment_value("calendly_backoff"))

    @property
    def calendly_max_wait(self) -> float:
        """Cap on any one wait before retrying Calendly, seconds (at most a minute)."""
        return float(self._environment_value("calendly_max_wait"))

    @property
    def busy_timeout_ms(self) -> int:
        """How long a statement waits for another writer's lock, in milliseconds (the busy_timeout setting)."""
        return round(_busy_timeout(self.get("busy_timeout")) * 1000)

    @property
    def database_waits(self) -> DatabaseWaits:
        return {"connect_timeout": self.connect_timeout, "busy_timeout_ms": self.busy_timeout_ms}

    @property
    def cache_dir(self) -> Path:
        return Path(str(self.get("cache_dir")))

    @property
    def database_url(self) -> str:
        return str(self.get("database_url"))

    @property
    def timezone(self) -> str:
        """The zone of the run, trimmed as every door reads one (a bad one is refused before a command runs)."""
        return str(self.get("timezone")).strip()

    @property
    def calendly_base_url(self) -> str:
        return str(self.get("calendly.base_url")).rstrip("/")

    def calendly_token(self) -> str | None:
        """The token from env or file, or read from `calendly.token_file`."""
        token = self.get("calendly.token")
        if token:
            return str(token).strip()
        token_file = self.get("calendly.token_file")
        if token_file:
            return _read_secret_file("calendly.token_file", token_file, hint="check the path in `bapp config show`")
        return None

    def webhook_signing_key(self, *, unwritten_ok: bool = False) -> str:
        """The webhook signing key from env or config, else read from `calendly.webhook_signing_key_file`;
        ``unwritten_ok``: that file not there yet is no key (`webhook subscribe`, which writes it there)."""
        key = self.get("calendly.webhook_signing_key")
        if key:
            return str(key).strip()
        key_file = self.get("calendly.webhook_signing_key_file")
        if key_file:
            secret = _read_secret_file(
                "calendly.webhook_signing_key_file",
                key_file,
                hint="check the path in `bapp config show`, or run `bapp calendly webhook subscribe` again",
                missing_ok=unwritten_ok,
            )
            return secret or ""
        return ""

    def calendly_user(self) -> str | None:
        """calendly.user as Calendly writes a user's URI (calendly_user_uri), which every door sends and compares;
        None when unset. Checked as it was read: a user's URI."""
        value = self.text("calendly.user")
        return value and calendly_user_uri(value)

    def calendly_rules(self) -> list[dict[str, Any]]:
        calendly = self.file_data.get("calendly", {})
        rules = calendly.get("rules", []) if isinstance(calendly, dict) else []
        if not isinstance(rules, list):
            raise ConfigError(f"{self.config_path}: calendly.rules must be an array of tables")
        return rules

    def display_rows(self) -> list[dict[str, Any]]:
        """Every known setting with its source, secrets masked; for `config show`."""
        rows: list[dict[str, Any]] = [
            {"key": "config_path", "value": str(self.config_path), "source": self.config_path_source}
        ]
        for key in KNOWN_KEYS:
            setting = self.values.get(key)
            value = None if setting is None else setting.value
            if key in SECRET_KEYS and _holds_secret(value):
                value = MASK
            elif isinstance(value, str) and key in _URL_KEYS:  # calendly.base_url's `https://user:pw@…` was shown
                value = mask_url_password(value)  # (not in a name: issuer_name "Cohort: 10:30@Leeds" lost its 30)
            elif value is not None and key == "database_url":
                value = MASK
            rows.append({"key": key, "value": value, "source": None if setting is None else setting.source})
        for key in ENVIRONMENT_SETTINGS:
            setting = self.values[key]
            value = str(setting.value) if isinstance(setting.value, Path) else setting.value
            rows.append({"key": key, "value": value, "source": setting.source})
        return rows


def _not_a_config_file(path: Path) -> str | None:
    """Why `path` cannot be the config file ("does not exist", "is a directory"), or None if it can."""
    try:
        mode = path.stat().st_mode
    except (FileNotFoundError, NotADirectoryError):
        return "does not exist"
    except OSError as exc:
        return f"cannot be read ({exc.strerror})"
    return "is a directory" if stat.S_ISDIR(mode) else None


# A config file is a few hundred bytes; reading `/dev/zero` or a disk image whole would only exhaust memory.
MAX_CONFIG_BYTES = 1 << 20


def load_config_file(path: Path, text: str | None = None) -> dict[str, Any]:
    """The config file's data, read from `text` when the caller has the file's text already (`_config_text`)."""
    try:
        return read_toml(_config_text(path) if text is None else text)
    except UnreadableDocument as exc:
        raise ConfigError(f"config file {path} is not valid TOML: {exc}") from None


def _config_text(path: Path) -> str:
    """The config file as written (CRLF kept), without a byte order mark (Windows Notepad's, no TOML error); "" when
    there is none yet."""
    try:
        with path.open("rb") as handle:
            content = read_at_most(
                handle,
                MAX_CONFIG_BYTES,
                lambda size: ConfigError(f"config file {path} is {size}; this is not the file you meant"),
            )
        return content.decode("utf-8-sig")
    except (FileNotFoundError, NotADirectoryError):  # not created yet
        return ""
    except UnicodeDecodeError as exc:
        raise ConfigError(f"config file {path} is not UTF-8 (byte {exc.start})") from None
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from None


def _holds_secret(value: Any) -> bool:
    """Whether a secret setting's value is one: a blank one is shown blank and exposes nothing."""
    return value is not None and bool(str(value).strip())


def _file_value(data: Mapping[str, Any], key: str) -> Any:
    node: Any = data
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


def user_path(text: str) -> Path:
    """A path a person wrote (a flag, a setting), `~` expanded as a shell would. os.path.expanduser leaves
    `~nosuchuser/…` as written, a file that does not exist, where Path.expanduser raises RuntimeError."""
    return Path(os.path.expanduser(text))


def names_a_directory(path: str) -> bool:
    """Whether `path` ends as a directory's name (`out/`, `out/.`, `out/..`, `.`): pathlib and realpath drop such
    an ending, so a file of the directory's name would be written where a directory was meant."""
    return path.endswith(("/", os.sep)) or path.rsplit("/", 1)[-1] in (".", "..")


def config_file_path(config_path: str | None, environ: Mapping[str, str] | None = None) -> tuple[Path, str]:
    """The config file in use and where that choice came from: --config, else BAPP_CONFIG, else the default."""
    env = os.environ if environ is None else environ
    # an empty --config ("$CONF" unset) names no file: never the environment's or the default
    if config_path is not None:
        given, source, where = config_path, "flag", "--config"
    elif env.get("BAPP_CONFIG"):
        given, source, where = env["BAPP_CONFIG"], "env:BAPP_CONFIG", "BAPP_CONFIG"
    else:
        return default_config_path(), "default"
    if not given.strip():  # --config "" read the current directory as the file; BAPP_CONFIG="  " a file called "  "
        raise ConfigError(f"{where} is empty: it names no config file", hint=f"name a file, or leave {where} out")
    if names_a_directory(given):  # `config set` wrote a file called bapp for --config ~/.config/bapp/
        raise ConfigError(f"config file {given} ({where}) is a directory name: give a file name", code="config_missing")
    return user_path(given), source


def resolve_settings(
    *,
    config_path: str | None,
    flags: Mapping[str, Any],
    environ: Mapping[str, str] | None = None,
    require_named_file: bool = False,
    read_file: bool = True,
) -> Settings:
    """Every setting with its source. With `require_named_file`, a file named by --config must exist: a typo
    there would otherwise run silently on the defaults (perhaps another database). BAPP_CONFIG and the
    default location may point at a file not created yet, as `config init` expects. `read_file=False`
    leaves the file out (to report an error about the file itself in the format the environment asks for).
    Values are resolved, not checked: `Settings.check()` refuses bad ones, `config show` lists them."""
    if environ is None:
        # libpq sends PGDATESTYLE from the environment as a startup setting of its own, which the server applies after
        # the DateStyle of bapp's `options` (db.dbapi.session_options): with `PGDATESTYLE=SQL,DMY` psycopg could not
        # read a timestamp (`clients list`: exit 1). Dropped from the process's environment once, here, where bapp
        # reads it, before any connection is made
        os.environ.pop("PGDATESTYLE", None)
    env = os.environ if environ is None else environ
    path, path_source = config_file_path(config_path, env)
    # /dev/null stays usable as "no config file at all"
    if read_file and require_named_file and path_source == "flag" and (what := _not_a_config_file(path)):
        raise ConfigError(
            f"config file {path} (--config) {what}",
            hint="check the path, or create it with `bapp --config PATH config init`",
            code="config_missing",
        )
    data = load_config_file(path) if read_file else {}
    values: dict[str, Setting] = {}
    for key, env_names in KNOWN_KEYS.items():
        chosen: Setting | None = None
        if flags.get(key) is not None:
            chosen = Setting(flags[key], "flag")
        else:
            for name in env_names:
                if env.get(name):
                    chosen = Setting(env[name], f"env:{name}")
                    break
        if chosen is None:
            file_value = _file_value(data, key)
            if file_value is not None:
                chosen = Setting(file_value, "file")
        if chosen is not None:
            values[key] = chosen

    if "badges.issuer_name" in values:
        # signed into each credential as typed, `Cafe\u0301` and `Caf\u00e9` were two names of one issuer: read in NFC,
        # as as_meant_here stores it, from a file written by hand or by an earlier bapp too
        from bapp_cli.services.plain_text import nfc

        found = values["badges.issuer_name"]
        values["badges.issuer_name"] = Setting(nfc(found.value), found.source)
    if "database_url" in values:
        found = values["database_url"]
        # one that is no text (a table holding the URL) stays as it is: refused as no text, shown as ****
        url = normalise_database_url(found.value) if isinstance(found.value, str) else found.value
        values["database_url"] = Setting(url, found.source)
    else:
        # a `%` or `?` of the path escaped: in the URL they are an escape's and the query's (db.dbapi.sqlite_file)
        escaped = str(default_database_path()).replace("%", "%25").replace("?", "%3F")
        values["database_url"] = Setting(f"sqlite:///{escaped}", "default")
    for key, default in _KEY_DEFAULTS.items():
        values.setdefault(key, Setting(default, "default"))
    # as the output chooses when no format is set: a table for a person at a terminal, TSV for a pipe or file
    values.setdefault("format", Setting("table" if is_terminal(sys.stdout) else "tsv", "default"))

    for key, name in ENVIRONMENT_SETTINGS.items():
        if env.get(name):
            values[key] = Setting(env[name], f"env:{name}")
        elif key == "actor":
            values[key] = Setting(_login_name(), "default")
        elif key == "cache_dir":
            values[key] = Setting(cache_directory(env), "default")
        else:
            values[key] = Setting(_ENVIRONMENT_DEFAULTS[key], "default")
    return Settings(config_path=path, config_path_source=path_source, values=MappingProxyType(values), file_data=data)


def is_terminal(stream: IO[str]) -> bool:
    """Whether a person reads `stream`: here for the format's default, and for the output that follows it."""
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # no such stream (None), or one closed
        return False


def _login_name() -> str:
    import getpass

    try:
        # as the audit can hold it: a name from LOGNAME or USER in bytes that are not UTF-8 (which no database takes),
        # or longer than its column (PostgreSQL's refusal), ended every change in exit 1
        return os.fsencode(getpass.getuser()).decode("utf-8", "replace")[:MAX_ACTOR_LENGTH]
    except (KeyError, OSError):  # no passwd entry (a container running as an arbitrary uid)
        return "unknown"


def _check_key(key: str) -> None:
    if key not in KNOWN_KEYS:
        raise UsageError(f"unknown setting {quoted(key)}", hint="known settings: " + ", ".join(KNOWN_KEYS))


def write_config_file(path: Path, data: dict[str, Any]) -> None:
    """Write the TOML atomically with mode 0600 from the first byte (it may hold secrets)."""
    import tomli_w

    write_private_file(path, tomli_w.dumps(data).encode(), "config file")


def write_private_file(path: Path, content: bytes, what: str) -> None:
    """Write a config file or a secret (a webhook signing key) atomically, mode 0600 from the first byte; a file
    bapp cannot write is ConfigError (exit 4) naming `what` and the path."""
    path = Path(os.path.realpath(path))  # through a symlink (a dotfiles checkout's): the file changes, not the link
    temporary = path.with_name(path.name + ".tmp")
    try:
        # renamed over a device (BAPP_CONFIG=/dev/null, "no config file") the file would replace the device
        if path.exists() and not path.is_file():
            raise ConfigError(f"cannot write {what} {path}: it is not a regular file", code="config_unwritable")
        path.parent.mkdir(parents=True, exist_ok=True)
        # made anew, never opened as found: a link there would have the text written into the file it names (and be
        # renamed over this one); one put there again meanwhile is refused (O_EXCL)
        temporary.unlink(missing_ok=True)
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, stat.S_IRUSR | stat.S_IWUSR)
    except OSError as exc:
        raise ConfigError(f"cannot write {what} {path}: {exc.strerror}", code="config_unwritable") from None
    try:
        # the file's owner kept: root's edit of a user's file (sudo) left it root's, unreadable to its user. Only root
        # may give a file away; anyone else's edit (or a new file) stays theirs
        with contextlib.suppress(OSError):
            old = path.stat()
            os.fchown(descriptor, old.st_uid, old.st_gid)
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(content)
        os.chmod(temporary, stat.S_IRUSR | stat.S_IWUSR)
        os.replace(temporary, path)
    except OSError as exc:
        temporary.unlink(missing_ok=True)
        raise ConfigError(f"cannot write {what} {path}: {exc.strerror}", code="config_unwritable") from None
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def set_config_values(
    path: Path, values: Mapping[str, str], *, check: Callable[[dict[str, Any]], None] | None = None
) -> None:
    """Set each dotted key of `values` in the config file, in one write: all of them or none. `check` is given what
    the file holds for those keys (None for one it lacks) once the command's turn on it has come, and may refuse
    the change: a check made before the turn reads the file as it was, before another command's change in its own."""
    for key, value in values.items():
        _check_key(key)
        if key in SECRET_KEYS:
            raise UsageError(
                f"{key} is a secret and is not taken on the command line",
                hint="set CALENDLY_API_KEY / CALENDLY_WEBHOOK_SIGNING_KEY, "
                "or `bapp config set calendly.token_file PATH`",
            )
        check_given_setting(key, value)
    with _editing_config_file(path) as data:
        if check is not None:
            check({key: _file_value(data, key) for key in values})
        for key, value in values.items():
            put_setting(data, key, as_meant_here(key, value), path)


def as_meant_here(key: str, value: str) -> str:
    """A `*_file` setting given on the command line as the user meant it: from the directory they typed it in
    (`~` expanded), stored absolute, as `badges issuer init` stores its key file. Kept relative, it was read
    from whatever directory a later run (a cron job's) started in."""
    if key == "timezone":  # as every door reads it, as `config init --timezone` stores it
        return validate_timezone(value)
    if key == "badges.issuer_name":  # a name, stored in NFC as every name is (services.plain_text.nfc)
        from bapp_cli.services.plain_text import nfc

        return str(nfc(value))
    return str(user_path(value).absolute()) if key.endswith("_file") else value


def check_given_setting(key: str, value: str) -> Any:
    """`check_setting` for a value given on the command line, where a bad one is bad input (exit 6) whatever
    the key (a database URL's ConfigError included)."""
    try:
        return check_setting(key, value)
    except ConfigError as error:
        raise InvalidInput(error.message, hint=error.hint, code=error.code) from None


def put_setting(data: dict[str, Any], key: str, value: Any, path: Path | None = None) -> None:
    """Set the dotted `key` (`calendly.token_file`) in the config file's `data` (the file at `path`), making its
    tables."""
    *tables, name = key.split(".")
    for table in tables:
        data = data.setdefault(table, {})
        if not isinstance(data, dict):  # `calendly = "x"` (or an array of tables) has no place for calendly.user
            raise ConfigError(
                f"config file {path}: {table} is not a table, so it cannot hold {key}",
                hint=f"edit the file: make {table} a [{table}] table, or remove it",
            )
    data[name] = value


@contextlib.contextmanager
def _editing_config_file(path: Path, *, make_folder: bool = True) -> Iterator[dict[str, Any]]:
    """The config file's data to change, written back if the caller changed it, with the file's folder locked
    from the read to the write (`_config_turn`, which makes the folder unless told not to)."""
    import copy

    with _config_turn(path, make_folder=make_folder):
        text = _config_text(path)  # read once: the data to change, and the lines an edit keeps
        data = load_config_file(path, text)
        before = copy.deepcopy(data)
        yield data
        if data != before:
            changed = [key for key in KNOWN_KEYS if _file_value(data, key) != _file_value(before, key)]
            write_private_file(path, _edited_config_text(text, changed, data).encode(), "config file")


@contextlib.contextmanager
def _config_turn(path: Path, *, make_folder: bool = True) -> Iterator[None]:
    """The config file's folder locked (flock) while a command reads and writes the file: two `config set` at once
    each wrote back the file as it had read it, so one of the changes was lost though both said it was made."""
    import fcntl

    folder = Path(os.path.realpath(path)).parent
    try:
        if make_folder:
            folder.mkdir(parents=True, exist_ok=True)
        descriptor = os.open(folder, os.O_RDONLY)
    except OSError:  # no folder there or to be made: no file to change either; a change is refused when written
        descriptor = None
    try:
        if descriptor is not None:
            with contextlib.suppress(OSError):  # a file system without locks (an NFS home without lockd): edit unlocked
                fcntl.flock(descriptor, fcntl.LOCK_EX)
        yield
    finally:
        if descriptor is not None:
            os.close(descriptor)


def init_config_file(path: Path, values: Mapping[str, str | None], *, force: bool) -> None:
    """`config init`: a new config file holding the `values` given, checked first (as `config set` checks them),
    then written in its turn (`_config_turn`): two at once both found no file and wrote one, and an init beside a
    `config set` wrote over its value."""
    data: dict[str, Any] = {}
    for key, value in values.items():
        if value is not None:  # given, if empty: refused as `config set` refuses it
            put_setting(data, key, as_meant_here(key, check_given_setting(key, value)))
    with _config_turn(path):
        if path.is_file() and not force:  # else no --force could write it: refused as not a file
            raise Conflict(f"config file {path} already exists", hint="pass --force to overwrite it")
        write_config_file(path, data)


def _edited_config_text(text: str, keys: list[str], data: dict[str, Any]) -> str:
    """`text` with each of `keys` set to its value in `data`, or removed, line by line: a file written anew from
    `data` lost every comment (examples/config.toml explains itself in them) and every key commented out. When
    the edit does not read back as `data` (a key written dotted, quoted or across lines) the file is written anew."""
    import tomli_w

    newline = "\r\n" if "\r\n" in text else "\n"  # the file's own, for the lines written
    # lines end at \n alone: str.splitlines ends one at U+2028 or NEL too, which a TOML comment or string may hold
    lines = [line if line.endswith("\n") else line + newline for line in re.findall(r"[^\n]*\n|[^\n]+$", text)]
    for key in keys:
        table, _, name = key.rpartition(".")
        value = _file_value(data, key)
        new = [] if value is None else [tomli_w.dumps({name: value}).replace("\n", newline)]
        headers = [index for index, line in enumerate(lines) if line.lstrip().startswith("[")]
        own = [
            index for index in headers if re.fullmatch(rf"\s*\[\s*{re.escape(table)}\s*\]\s*(#.*)?\s*", lines[index])
        ]
        if table and not own:
            lines += [*([newline] if lines else []), f"[{table}]{newline}", *new]
            continue
        start = own[0] + 1 if table else 0
        end = next((index for index in headers if index >= start), len(lines))
        section = range(start, end)
        found = [index for index in section if re.match(rf"\s*{re.escape(name)}\s*=", lines[index])]
        keyed = [index for index in section if lines[index].strip() and not lines[index].lstrip().startswith("#")]
        at = found[0] if found else max(keyed, default=start - 1) + 1
        lines[at : at + len(found[:1])] = new
    edited = "".join(lines)
    try:
        return edited if read_toml(edited) == data else tomli_w.dumps(data)
    except UnreadableDocument:  # a key the file holds quoted (`"user" = …`), now there twice
        return tomli_w.dumps(data)


@contextlib.contextmanager
def removed_on_failure(path: Path) -> Iterator[None]:
    """For the writes of a secret file just made at `path` (a signing key) and of the config that names it: should
    one fail (a config file bapp cannot write is exit 4; or a stop signal), `path` is removed. A key half written,
    or that no config names, is lost to bapp, and the next run would make another."""
    try:
        yield
    except BaseException:
        path.unlink(missing_ok=True)
        raise


def unset_config_value(path: Path, key: str) -> bool:
    _check_key(key)
    table, _, name = key.rpartition(".")
    # no folder made for the lock: with none there, there is no file, so nothing to unset and nothing to write
    with _editing_config_file(path, make_folder=False) as data:
        node = _file_value(data, table) if table else data
        return isinstance(node, dict) and node.pop(name, None) is not None


def validate_timezone(name: str) -> str:
    """The zone `name` names, trimmed as every door reads one; InvalidInput when it names none (instants' rule)."""
    from bapp_cli.services.instants import known_zone_key

    return known_zone_key(name)


# A token or signing key is a line of text; past this the path names the wrong file (`/dev/zero`, a
# disk image) and reading on would only exhaust memory.
MAX_SECRET_FILE_BYTES = 64 << 10


def _read_secret_file(key: str, value: Any, *, hint: str, missing_ok: bool = False) -> str | None:
    """The text of the file a `*_file` setting names, stripped (None when empty, or not there and
    ``missing_ok``); any file that is not a short UTF-8 text is a configuration error naming the setting
    (exit 4), never a crash (R9)."""
    path = user_path(str(value))
    try:
        data, _ = read_small_file(
            path,
            MAX_SECRET_FILE_BYTES,
            lambda why: ConfigError(f"{key} {path} is {why}; it should hold the secret alone", hint=hint),
        )
    except OSError as exc:
        # asked by opening it: Path.exists() raised for a name too long, or a directory that may not be searched
        if missing_ok and isinstance(exc, FileNotFoundError):
            return None
        raise ConfigError(f"cannot read {key} {path}: {exc.strerror or type(exc).__name__}", hint=hint) from None
    try:
        return data.decode("utf-8").strip() or None
    except UnicodeDecodeError:
        raise ConfigError(
            f"{key} {path} is not UTF-8 text", hint="the file should hold the secret alone, as text"
        ) from None
