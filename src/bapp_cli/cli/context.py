"""Resolved settings, the output sink, the clock, and lazy engine / unit-of-work / Calendly client factories.

The root callback stores an `AppState` in the Typer context; commands call `state(ctx)` to get it.
Nothing here imports SQLAlchemy or httpx until a command asks for a database or a client.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from bapp_cli.cli.launcher import start_collecting
from bapp_cli.cli.output import OutputSink
from bapp_cli.config import OUTPUT_FORMATS, Settings, config_file_path, is_terminal, resolve_settings
from bapp_cli.errors import AuthError, BappError, UsageError, quoted

if TYPE_CHECKING:
    from sqlalchemy import Engine
    from sqlalchemy.orm import Session

    from bapp_cli.calendly.client import CalendlyClient
    from bapp_cli.db.dbapi import Database


@dataclass
class AppState:
    config_flag: str | None = None
    # --database-url and --timezone; a command's own flag for a setting (--local-only, --give-up-after) too
    setting_flags: dict[str, str | float | None] = field(default_factory=dict)
    quiet: bool = False
    verbose: int = 0
    debug: bool = False
    no_color: bool = False
    command_path: str = ""
    _engine: Engine | None = None
    _sink: OutputSink | None = None
    chosen_format: tuple[str | None, bool] = (None, False)  # --format and --json of an output_command
    secrets: set[str] = field(default_factory=set)
    # Calendly items whose text held control characters, removed as it was parsed: warned of once, at the end
    cleaned: list[str] = field(default_factory=list)
    config_read: bool = False  # see settings_for_errors
    unused: set[str] = field(default_factory=set)  # settings this command's flags replace (see `settings`)

    # -- settings -------------------------------------------------------------------------------
    @functools.cached_property
    def settings(self) -> Settings:
        """Every setting, checked (once: kept only when the check passes): a bad value stops the command naming
        its key and source."""
        settings = self.unchecked_settings
        # a flag that is no setting's value but replaces it (flag > environment > file): --format/--json, --debug,
        # and those a command names in `unused`; the setting's own value is then not used, so a bad one stops nothing
        flagged = {"format": any(self.chosen_format), "debug": self.debug}
        settings.check(ignoring=self.unused | {key for key, given in flagged.items() if given})
        return settings

    @functools.cached_property
    def unchecked_settings(self) -> Settings:
        """Every setting as resolved, valid or not (for `config show`, which must show the bad one)."""
        self.config_read = True
        settings = resolve_settings(config_path=self.config_flag, flags=self.setting_flags, require_named_file=True)
        self.secrets |= settings.secret_values()
        if settings.secrets_exposed():  # said once: the settings are resolved once
            path = settings.config_path
            self.messages.warning(f"config file {path} holds a secret and others can read it; run `chmod 600 {path}`")
        return settings

    @functools.cached_property
    def settings_for_errors(self) -> Settings | None:
        """The settings an error report follows (its format, whether to show a traceback), even when the
        command failed before resolving them or because of them: the config file if it can be read, else
        the flags and the environment alone; None only if even those cannot be resolved. The file is read
        once a run: a FIFO's (or `<(…)`'s) writer has gone after the first read, and a second would wait for
        another forever."""
        if "unchecked_settings" in vars(self):
            return self.unchecked_settings
        for read_file in (False,) if self.config_read else (True, False):
            with contextlib.suppress(BappError):
                return resolve_settings(config_path=self.config_flag, flags=self.setting_flags, read_file=read_file)
        return None

    def wants_traceback(self) -> bool:
        """--debug, or BAPP_DEBUG set to a true value."""
        if self.debug:
            return True
        settings = self.settings_for_errors
        try:
            return settings is not None and settings.debug
        except BappError:  # BAPP_DEBUG itself is not valid: no traceback, the command's error says why
            return False

    @property
    def config_path(self) -> Path:
        """The config file to create or edit (it need not exist yet)."""
        return config_file_path(self.config_flag)[0]

    def scrub(self, text: str) -> str:
        """`text` with every known secret replaced by **** (R6)."""
        for secret in sorted(self.secrets, key=len, reverse=True):
            if secret and len(secret) >= 4:
                text = text.replace(secret, "****")
        return text

    # -- output ---------------------------------------------------------------------------------
    def output(self, *, check_settings: bool = True) -> OutputSink:
        """The sink for this command, in the format its --format/--json chose. `check_settings=False` (config
        show) falls back to the defaults for a format or time zone that is not valid instead of refusing to run."""
        fmt, as_json = self.chosen_format
        settings = self.settings if check_settings else self.unchecked_settings
        bad: set[str] = set() if check_settings else {problem.key for problem in settings.problems()}
        configured = None if "format" in bad else settings.output_format
        zone = "UTC" if "timezone" in bad else settings.timezone
        # --format beside --json is checked as well: a value the user wrote is never silently dropped
        chosen = (fmt or ("json" if as_json else configured) or ("table" if is_terminal(sys.stdout) else "tsv")).lower()
        if chosen not in OUTPUT_FORMATS:
            raise UsageError(f"unknown format {quoted(chosen)}", hint="choose one of: " + ", ".join(OUTPUT_FORMATS))
        if as_json and chosen != "json":
            raise UsageError(f"--json and --format {chosen} ask for different formats", hint="pass one of them")
        self._sink = OutputSink(chosen, quiet=self.quiet, verbose=self.verbose, no_color=self.no_color, timezone=zone)
        return self._sink

    @property
    def messages(self) -> OutputSink:
        """A sink for stderr messages when the command prints no records."""
        if self._sink is None:
            self._sink = OutputSink("table", quiet=self.quiet, verbose=self.verbose, no_color=self.no_color)
        return self._sink

    # -- database -------------------------------------------------------------------------------
    def engine(self, *, create_sqlite_file: bool = False) -> Engine:
        """The command's engine. The schema's revision is not asked here, on a connection of its own, but in each
        transaction (`db.engine.unit_of_work`): a migration committed between the two went unseen (0dcadd6)."""
        if self._engine is None:
            from bapp_cli.db.engine import make_engine

            start_collecting()
            settings = self.settings
            self._engine = make_engine(
                settings.database_url, create_sqlite_file=create_sqlite_file, **settings.database_waits
            )
        return self._engine

    def transaction(
        self, *, dry_run: bool = False, write: bool = True, busy_timeout_ms: int | None = None
    ) -> contextlib.AbstractContextManager[Session]:
        """The one write transaction of a mutating command (rolled back with --dry-run), or with `write=False` a
        read-only one (always rolled back), at the head revision (asked inside it: `db.engine.unit_of_work`)."""
        from bapp_cli.db.engine import unit_of_work

        settings = self.settings
        who: dict[str, Any] = {"actor": settings.actor, "command": self.command_path, "zone": settings.timezone}
        return unit_of_work(self.engine(), write=write, dry_run=dry_run, busy_timeout_ms=busy_timeout_ms, **who)

    def reading(self) -> contextlib.AbstractContextManager[Session]:
        return self.transaction(write=False)

    def plain_reading(self) -> contextlib.closing[Database]:
        """A read on a plain DB-API connection, without SQLAlchemy (`services.plain_reads`), at head."""
        from bapp_cli.db.dbapi import connect

        start_collecting()
        settings = self.settings
        return contextlib.closing(connect(settings.database_url, **settings.database_waits))

    # -- Calendly -------------------------------------------------------------------------------
    def calendly_client(
        self,
        on_page: Callable[[int], None] | None = None,
        *,
        within: float | None = None,
        on_cleaned: Callable[[list[str]], None] | None = None,
    ) -> CalendlyClient:
        """A client for the configured Calendly API; no token → exit 4 naming where a token goes. The items whose
        text it cleans are said when the command ends, or told to ``on_cleaned`` (the receiver, which runs for days).

        The read timeout, the first back-off step and the cap on each wait come from the settings
        (BAPP_CALENDLY_TIMEOUT, BAPP_CALENDLY_BACKOFF, BAPP_CALENDLY_MAX_WAIT) for slow links and the tests.
        """
        from bapp_cli.calendly.client import DEFAULT_TIMEOUT, CalendlyClient

        settings = self.settings
        token = settings.calendly_token()
        if not token:
            raise AuthError(
                "no Calendly token configured",
                hint="set CALENDLY_API_KEY, or point calendly.token_file at a file holding the token "
                "(`bapp config set calendly.token_file PATH`)",
            )
        self.secrets.add(token)  # a token read from calendly.token_file is a secret too (R6)
        import httpx

        read, max_wait, max_retries = settings.calendly_timeout, settings.calendly_max_wait, 5
        connect = DEFAULT_TIMEOUT.connect or 5.0
        if within is not None:
            # A caller with a deadline (the webhook receiver answers Calendly within 15 s): one short try and one quick
            # retry at most, rather than the cron jobs' patient back-off; a quick connect too, as an attempt ends at
            # connect + read timeout: 4 + 4 twice and the wait between them outlasted the 15 s, 1 + 4 does not.
            read, max_wait, max_retries, connect = min(read, within), min(max_wait, within / 4), 1, within / 4
        timeout = httpx.Timeout(connect=min(connect, read), read=read, write=read, pool=read)
        return CalendlyClient(
            settings.calendly_base_url,
            token,
            timeout=timeout,
            max_retries=max_retries,
            backoff_base=settings.calendly_backoff,
            max_wait=max_wait,
            on_page=on_page,
            on_cleaned=on_cleaned or self.cleaned.extend,
        )

    def close(self) -> None:
        if self.cleaned:
            from bapp_cli.services.plain_text import cleaned_message

            self.messages.warning(cleaned_message(self.cleaned))
            self.cleaned.clear()
        if self._engine is not None:
            self._engine.dispose()
            self._engine = None

    # -- interaction ----------------------------------------------------------------------------
    def confirm(self, yes: bool, question: str, *, dry_run: bool = False) -> None:
        """`--yes`, or ask on a terminal; without a terminal it is a usage error (exit 2), a dry run's too (it exits
        as the real run would), which is not asked: it changes nothing."""
        if yes:
            return
        if not is_terminal(sys.stdin) or not is_terminal(sys.stderr):
            raise UsageError(f"{question} — pass --yes to confirm (no terminal to ask on)")
        if not dry_run:
            # asked and read here, not by typer.confirm: Click's prompt left a space on stdout, the data's stream
            sys.stderr.write(f"{question} [y/N]: ")
            sys.stderr.flush()
            if sys.stdin.readline().strip().lower() not in ("y", "yes"):
                raise typer.Abort  # declined (an empty line or end of input too): exit 130, nothing changed


def utc_now() -> dt.datetime:
    """The instant a command hands its service as `now`: services never read the clock themselves."""
    return dt.datetime.now(dt.UTC)


def state(ctx: typer.Context) -> AppState:
    root = ctx.find_root()
    app_state = root.ensure_object(AppState)  # main() passes one in; a bare Typer runner gets a fresh one
    app_state.command_path = ctx.command_path.replace(root.info_name or "bapp", "bapp", 1)
    return app_state


def state_and_sink(ctx: typer.Context, flags: dict[str, Any] | None = None) -> tuple[AppState, OutputSink]:
    """The command's state and its output sink, opened first: a bad --format fails before anything is done.
    `flags`: the command's own flags for settings (None where not given), which win as the global ones do."""
    app_state = state(ctx)
    app_state.setting_flags |= {key: value for key, value in (flags or {}).items() if value is not None}
    return app_state, app_state.output()
