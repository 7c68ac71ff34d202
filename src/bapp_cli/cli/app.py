"""The root `bapp` app, its global options, and `main()`: the one place errors become exit codes.

Help is rendered with Rich markup only when stdout is a terminal; scripts and shell completion get
plain help, which keeps start-up light (`bapp --help` is meant to answer in well under a second).
"""

import contextlib
import functools
import itertools
import json
import os
import re
import signal
import sys
import traceback
from typing import Annotated, Any, Literal, cast

import typer
from typer.core import TyperGroup

try:  # Typer ≥ 0.28 vendors click as typer._click (its exceptions are those); older releases use click itself
    from typer._click import exceptions as click_exceptions
except ImportError:  # pragma: no cover - depends on the installed Typer
    from click import exceptions as click_exceptions  # type: ignore[no-redef]

from bapp_cli import __version__
from bapp_cli.cli import files
from bapp_cli.cli import transfer as transfer_commands
from bapp_cli.cli.context import AppState
from bapp_cli.cli.options import output_command, refuse_blank, zone
from bapp_cli.cli.terminal import forget_unusable_terminal_size, visible
from bapp_cli.config import is_terminal, mask_url_password
from bapp_cli.errors import (
    STOPS,
    BappError,
    ConfigError,
    UsageError,
    committed,
    cut_echo,
    holds_lone_surrogate,
    stop_signal,
    stopped_by,
)

MAX_DETAIL_LINES = 100
# what Click's own messages echo of the command line: a value it quotes (its repr, or its `'…'`; an apostrophe inside
# a word starts none) or a word (`No such option: --x…`, an int out of range). Click echoes them whole; bapp cuts them
# as it cuts its own (errors.quoted). A quote closed is one echo whatever '…' it holds (a value's own); one that ends
# at a '…' unclosed is bapp's BadParameter cut already, which stays as it is; a word goes on over a '…' inside it
CLICK_ECHO = re.compile(
    r"""(?<!\w)(?:'(?:\\.|[^'\\\n])*'|"(?:\\.|[^"\\\n])*"|'(?:\\.|[^'\\…])*…|"(?:\\.|[^"\\…])*…)|[^\s…]+(?:…[^\s…]+)*…?"""
)
RICH_HELP: Literal["rich"] | None = "rich" if is_terminal(sys.stdout) else None

# Command groups, in help order; each is the `app` of bapp_cli.cli.NAME. A group is imported and built only
# when it is used, so a command pays for its own group, not for all of them.
GROUPS = "db config pathways skills progress badges calendly sessions bookings clients builders reports".split()  # noqa: SIM905


class LazyGroupsRoot(TyperGroup):
    """The root group: builds a command group on first use instead of building every group up front.

    `commands` (what help, the command index and the reference walk) yields the whole tree;
    `get_command` (what running one command uses) builds just the group asked for.
    """

    @property  # type: ignore[override]
    def commands(self) -> dict[str, Any]:
        for name in GROUPS:
            self._build(name)
        return {name: self._commands[name] for name in GROUPS} | self._commands  # the groups in help order first

    @commands.setter
    def commands(self, value: dict[str, Any]) -> None:
        self._commands = dict(value)

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        if cmd_name in GROUPS:
            self._build(cmd_name)
        return self._commands.get(cmd_name)

    def _build(self, name: str) -> None:
        if name in self._commands:
            return
        import importlib

        # Built through a one-group parent exactly as add_typer would, so a group with a single
        # command stays a group (`bapp badges list`, not `bapp badges`).
        holder = typer.Typer(rich_markup_mode=RICH_HELP)
        holder.add_typer(importlib.import_module(f"bapp_cli.cli.{name}").app, name=name)
        self._commands[name] = cast(TyperGroup, typer.main.get_command(holder)).commands[name]


app = typer.Typer(
    name="bapp",
    cls=LazyGroupsRoot,
    help="Administer the BuildAppsWith pathway-based booking system.",
    no_args_is_help=True,
    context_settings={"help_option_names": ["-h", "--help"]},
    rich_markup_mode=RICH_HELP,
    pretty_exceptions_enable=False,  # tracebacks with locals could show secrets (README: secrets never shown)
)


# Top-level commands (not groups): `bapp import KIND PATH` (its summary in --format/--json) and `bapp export KIND`.
output_command(app, "import")(transfer_commands.import_command)
app.command("export")(transfer_commands.export_command)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"bapp {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    ctx: typer.Context,
    database_url: Annotated[
        str | None,
        typer.Option(
            "--database-url",
            help="Database URL [env BAPP_DATABASE_URL, DATABASE_URL; default: SQLite file in the user data dir].",
        ),
    ] = None,
    config: Annotated[str | None, typer.Option("--config", help="TOML config file [env BAPP_CONFIG].")] = None,
    timezone: Annotated[
        str | None, zone("IANA zone for naive times and tables [env BAPP_TIMEZONE; default UTC].")
    ] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Errors only on stderr.")] = False,
    verbose: Annotated[
        int, typer.Option("--verbose", "-v", count=True, help="More detail on stderr (repeat for debug logs).")
    ] = 0,
    debug: Annotated[bool, typer.Option("--debug", help="Tracebacks on unexpected errors [env BAPP_DEBUG=1].")] = False,
    no_color: Annotated[bool, typer.Option("--no-color", help="Plain output [env NO_COLOR].")] = False,
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    """Administer the BuildAppsWith pathway-based booking system.

    Data goes to stdout (table on a terminal, TSV when piped; --format/--json to choose); messages and
    errors go to stderr. Exit codes: 0 ok, 2 usage, 3 partial, 4 config/auth, 5 database not ready,
    6 invalid input, 7 not found, 8 conflict, 9 remote service, 74 output failed, 75 busy, 130 interrupted,
    141 stdout closed by its reader, 143 terminated (129 hung up).
    """
    refuse_blank({"--database-url": database_url, "--config": config})  # --timezone: its callback
    app_state = ctx.ensure_object(AppState)
    app_state.config_flag, app_state.quiet, app_state.verbose, app_state.no_color = config, quiet, verbose, no_color
    app_state.setting_flags = {"database_url": database_url, "timezone": timezone}
    app_state.debug = debug  # BAPP_DEBUG comes with the settings (AppState.wants_traceback)
    if verbose >= 2:
        import logging

        logging.basicConfig(level=logging.DEBUG, stream=sys.stderr)
        # header values are logged by some libraries at debug level; never let the token through
        for chatty in ("httpcore", "httpx"):
            logging.getLogger(chatty).setLevel(logging.INFO)


# JSON asked for on the command line, as a word or as a word and the next (`--format json`)
JSON_ASKED = {"--json"} | {
    f"{option}{fmt}" for option in ("--format ", "--format=", "-f ", "-f") for fmt in ("json", "jsonl")
}


def _wants_json_errors(argv: list[str], app_state: AppState) -> bool:
    """Errors go out as JSON too when JSON is asked for: `--json` or `--format json|jsonl` (in any case, as
    --format takes it) anywhere on the command line (export's `--format` names its data's format: json there
    asks for them too), else the format setting (BAPP_FORMAT or `format` in the config file) unless the command's
    --format chose another (flag > environment > file, as for the data)."""
    if JSON_ASKED.intersection(word.lower() for word in [*argv, *map(" ".join, itertools.pairwise(argv))]):
        return True
    settings = app_state.settings_for_errors
    return not app_state.chosen_format[0] and settings is not None and settings.output_format in ("json", "jsonl")


def _report(error: BappError, argv: list[str], app_state: AppState) -> int:
    """`error` on stderr (and as JSON too when JSON was asked for); returns its exit code."""

    def scrub(text: str) -> str:
        # errors echo user input (a value, a file's line): no secret and no control character gets through
        return visible(app_state.scrub(text))

    message, details = scrub(error.message), error.details
    sys.stderr.write(f"Error: {message}\n")
    json_errors = _wants_json_errors(argv, app_state)
    if details and not json_errors:
        for detail in details[:MAX_DETAIL_LINES]:
            sys.stderr.write(f"  {scrub(_detail_line(detail))}\n")
        if len(details) > MAX_DETAIL_LINES:
            sys.stderr.write(f"  … and {len(details) - MAX_DETAIL_LINES} more\n")
    if error.hint:
        sys.stderr.write(f"Hint: {scrub(error.hint)}\n")
    if json_errors:
        payload = {"error": {"code": error.code, "message": message, "details": details}}
        sys.stderr.write(scrub(json.dumps(payload, ensure_ascii=False, default=str)) + "\n")
    return error.exit_code


@functools.cache
def _root_command() -> Any:
    """The Click tree, kept for the process as Click's own decorators keep theirs: a process that runs several
    commands (the test suite runs thousands in one) builds each group once, not ~5-12 ms of it per command."""
    return typer.main.get_command(app)


def main(argv: list[str] | None = None) -> None:
    """Run the app and exit with the documented code (README, exit code table)."""
    args = list(sys.argv[1:] if argv is None else argv)
    command = _root_command()
    if os.environ.get("_BAPP_COMPLETE"):
        _attach_value_completion(command, [])
    app_state = AppState()
    real_stdout, real_stderr = sys.stdout, sys.stderr
    # the stream, with its write errors named (exit 74), for every command
    sys.stdout = files.GuardedStream(real_stdout, files.stdout_error)
    sys.stderr = files.MessageStream(real_stderr)
    forget_unusable_terminal_size()
    replaced_handlers = _stop_on_signals()
    try:
        try:
            _refuse_undecodable(args)
            _completion_for_a_named_shell(args)
            try:
                result = command.main(args=args, prog_name="bapp", standalone_mode=False, obj=app_state)
            except click_exceptions.NoArgsIsHelpError as error:
                # `bapp` or `bapp db` alone: the help a person was after (still exit 2 for scripts); written here, so
                # stdout that cannot take it ends the run like any command's output (74, or 141 for `| head`)
                sys.stdout.write(error.format_message() + "\n")
                result = 2
            except (SystemExit, ValueError) as error:
                # a completion request bapp cannot read (set by hand, or a shell's script gone wrong): Click exits 1
                # itself on an unknown instruction or shell, and Typer's int() of a COMP_CWORD that is no number
                # failed as a bug would; a usage error (exit 2) instead. A successful completion's exit 0 stands.
                if not os.environ.get("_BAPP_COMPLETE") or getattr(error, "code", 1) == 0:
                    raise
                raise UsageError("_BAPP_COMPLETE: not a completion request bapp can answer") from None
            exit_code = result if isinstance(result, int) else 0
            if exit_code == 130:  # Typer turns Ctrl-C into a returned 130; the transaction was rolled back
                exit_code = _stopped()  # its rows still buffered are flushed at exit, which keeps the stop's code
            else:
                sys.stdout.flush()  # here, so a full disk under `> file` is reported like any other failure
        except BappError as error:
            exit_code = _report(error, args, app_state)
        except typer.Abort:  # a declined confirmation
            exit_code = _stopped(aborted=True)
        except click_exceptions.UsageError as error:
            context, hint = error.ctx, None
            message = error.format_message()
            if context is not None:
                sys.stderr.write(context.get_usage() + "\n")
                hint = f"run `{context.command_path} --help`"
                if isinstance(error, click_exceptions.NoSuchOption):
                    placed = _option_placement(command, context, error.option_name, args)
                    if placed is not None:
                        message, hint = f"No such option here: {error.option_name}", placed
            exit_code = _report(UsageError(_cut_echoes(message), hint=hint), args, app_state)
        except typer.Exit as exit_request:
            exit_code = exit_request.exit_code
        except click_exceptions.ClickException as error:
            _report(UsageError(_cut_echoes(error.format_message())), args, app_state)
            exit_code = error.exit_code
        except (BrokenPipeError, files.StdoutClosed):
            # `bapp … | head`: the reader went away. Quiet, like cat or grep, and the status a shell shows for
            # them (128 + SIGPIPE), so `set -o pipefail` still sees that the output was cut short.
            files.drop_stream()
            exit_code = 141
        except Exception as error:
            exit_code = _failure(error, args, app_state)
    # Ctrl-C, SIGTERM or SIGHUP: in the command, or while its error is reported (which may wait on a config FIFO)
    except KeyboardInterrupt:
        exit_code = _stopped()
    finally:
        # a stop (a second Ctrl-C, `timeout`'s SIGTERM) while the connections close comes after the run's outcome,
        # which stands and was said once; the launcher's "nothing was changed" would be untrue after a commit
        with contextlib.suppress(KeyboardInterrupt):
            app_state.close()
        sys.stdout, sys.stderr = real_stdout, real_stderr
    try:
        exit_code = files.flush_stdout_at_exit(exit_code)
    except KeyboardInterrupt:  # a stop while the output waits for its reader (SIGTERM's too): said as any is
        files.drop_stream()  # the interpreter's last flush of the rows left would wait for the reader again
        exit_code = _stopped()
    finally:
        # put back what _stop_on_signals replaced, so a caller running main() in-process (the tests) keeps its own
        with contextlib.suppress(ValueError, OSError):
            for number, handler in replaced_handlers.items():
                signal.signal(number, handler)
    raise SystemExit(exit_code)


def _cut_echoes(click_message: str) -> str:
    return CLICK_ECHO.sub(lambda echo: cut_echo(echo.group()), click_message)


def _terminate(signum: int, frame: Any) -> None:
    stop_signal.append(signum)
    raise KeyboardInterrupt  # stopped exactly as Ctrl-C stops a command


def _stopped(*, aborted: bool = False) -> int:
    """Says on stderr that the run stopped (a declined confirmation, Ctrl-C, SIGTERM or SIGHUP) with nothing
    changed, or (stopped after a commit: a sync showing its changes) with what it committed standing; its exit
    code."""
    signum = stopped_by()
    how = "Aborted" if aborted else STOPS[signum]
    changed = "what was committed before the stop stands" if committed[0] else "nothing was changed"
    sys.stderr.write(f"{how}; {changed}.\n")
    # 128 + the signal, as a shell reports a process the signal stopped: `timeout` and systemd tell a
    # terminated run (143; 129 for a hang-up) from one stopped by Ctrl-C (130)
    return 130 if aborted else 128 + signum


def _stop_on_signals() -> dict[int, Any]:
    """SIGTERM (`kill`, `timeout`, systemd) and SIGHUP (a closed terminal or SSH session) unwind the command
    like Ctrl-C — the transaction rolled back, a half-written output or rejects file removed, exit 128 + the
    signal — instead of Python's default of dying where it stands, which left an export's or a rejects
    file's `.partial` temporary file behind. An ignored signal stays ignored (`nohup`); a server command
    (webhook serve) installs its own handlers, which drain, when it starts. Returns the handlers to put back."""
    stop_signal.clear()
    committed[0] = False  # a command run before this one in the process (in-process tests) may have set it
    replaced: dict[int, Any] = {}
    with contextlib.suppress(ValueError, OSError):  # not the main thread (an embedding caller): leave it alone
        for number in (signal.SIGTERM, signal.SIGHUP):
            if signal.getsignal(number) == signal.SIG_DFL:
                replaced[number] = signal.signal(number, _terminate)
    return replaced


def _failure(error: Exception, args: list[str], app_state: AppState) -> int:
    """An exception no command turned into a BappError: a database state, or a bug (one line, the traceback only
    with --debug)."""
    # the database itself failed (read-only, garbage, gone): a state, not a bug. Only looked at when a database
    # library is loaded, so `bapp --help` pays nothing for it.
    if "sqlalchemy" in sys.modules or "sqlite3" in sys.modules:
        from bapp_cli.db.engine import database_failure

        failure = database_failure(error)
        if failure is not None:
            return _report(failure, args, app_state)
    if isinstance(error, FileNotFoundError) and error.filename is None:  # os.getcwd()'s, if it fails here too
        # a relative path (a SQLite file, an output, a setting's file) made absolute in a directory deleted since the
        # run started in it (a cron job's, a shell's in a removed checkout): the environment, not a bug in bapp. Asked
        # again: ssl's for a missing SSL_CERT_FILE has no file name either, and was told to cd elsewhere
        try:
            os.getcwd()
        except FileNotFoundError:
            hint = "cd to a directory that exists, or give absolute paths"
            return _report(ConfigError("the working directory no longer exists", hint=hint), args, app_state)
    hint = "rerun with --debug for the traceback, and report it"
    if app_state.wants_traceback():
        sys.stderr.write(visible(app_state.scrub(traceback.format_exc())))
        hint = "the traceback is above; please report it"
    summary = f"unexpected error: {type(error).__name__}: {error}".splitlines()[0]
    return _report(BappError(summary, hint=hint, code="unexpected"), args, app_state)  # exit 1: a bug in bapp


# Root options that take a value: their value is not a command word.
_ROOT_VALUE_OPTIONS = frozenset({"--database-url", "--config", "--timezone"})


def _option_placement(root: Any, context: Any, option: str, argv: list[str]) -> str | None:
    """Where `option` goes, when it is a real option given on the wrong side of the command words.

    `bapp --json clients list` gives --json to bapp itself, which has no such option (Click's "Possible
    options: --version" then misleads); `bapp clients list --database-url …` gives a global option to the
    command. Either way the user meant an option that exists, one place over.
    """
    name = option.split("=", 1)[0]
    words, target = _command_words(root, context, argv, name)
    written = _written(root, name)
    if context.parent is not None and written is not None:
        # The completion flags end bapp's command line: a command after them would be read as the shell.
        example = "" if name.endswith("-completion") else " " + " ".join(words)
        return f"{name} is a global option: put it before the command, e.g. `bapp {written}{example}`"
    written = _written(target, name) if target is not context.command else None
    if written is None:
        return None
    command_line = " ".join(["bapp", *words])
    return f"{name} is an option of `{command_line}`: put it after the command, e.g. `{command_line} {written}`"


def _written(command: Any, name: str) -> str | None:
    """`name` as an example writes it for `command` (`--json`, `--format …`); None if `command` has no such option."""
    for param in getattr(command, "params", []):
        if name in (*param.opts, *param.secondary_opts):
            return name if getattr(param, "is_flag", False) or getattr(param, "count", False) else f"{name} …"
    return None


def _command_words(root: Any, context: Any, argv: list[str], option: str) -> tuple[list[str], Any]:
    """The command words of `argv` (`clients list`), skipping options and their values, and the command they name."""
    words: list[str] = []
    group = root
    skip_value = False
    for arg in argv:
        if arg.startswith("-"):
            # a root option's value, or the misplaced option's own (`--format json`), is not a command word
            skip_value = "=" not in arg and (arg == option or (not words and arg in _ROOT_VALUE_OPTIONS))
            continue
        found = group.get_command(context, arg) if hasattr(group, "get_command") else None
        if found is None and not skip_value:
            break
        skip_value = False
        if found is not None:
            words.append(arg)
            group = found
    return words, group


def _refuse_undecodable(args: list[str]) -> None:
    """R9: bytes that are not UTF-8 reach Python as lone surrogates, which no database, file or terminal
    accepts; refuse them up front (exit 2) instead of failing wherever the text first goes."""
    for position, arg in enumerate(args, start=1):
        if holds_lone_surrogate(arg):
            shown = mask_url_password(arg.encode("utf-8", "backslashreplace").decode("ascii", "replace"))
            hint = "bapp reads its arguments as UTF-8 text; check the terminal's or the script's encoding"
            raise UsageError(f"argument {position} ({cut_echo(shown)}) is not valid UTF-8", hint=hint)


def _completion_for_a_named_shell(args: list[str]) -> None:
    """`bapp --install-completion SHELL` or `--show-completion SHELL`, done for that shell. Typer's flags act for
    the shell bapp was started from and take no word: it was dropped (`--install-completion fish` under bash installed
    bash's script), and a shell found that Typer cannot serve (sh, tcsh) was exit 1. A shell without completion,
    named or found, is exit 2 naming the choices; with none named, the one found is served."""
    from typer._completion_shared import Shells, _get_shell_name, get_completion_script, install

    flags = [at for at, arg in enumerate(args) if arg in ("--install-completion", "--show-completion")]
    # the root's options only: no command's name before it (a word that is not a root option's value)
    before = itertools.pairwise(["", *args[: flags[0] if flags else 0]])
    if not flags or any(word[:1] != "-" and last not in _ROOT_VALUE_OPTIONS for last, word in before):
        return
    flag, word = args[flags[0]], next(iter(args[flags[0] + 1 :]), "-")
    shell = _get_shell_name() if word.startswith("-") else word
    if shell not in (shells := [choice.value for choice in Shells]):
        found = repr(shell) if shell == word else f"{shell or 'no shell'} (the shell bapp was started from)"
        raise UsageError(f"{flag}: no completion for {found}", hint=f"name one: {flag} {'|'.join(shells)}")
    if flag == "--show-completion":
        typer.echo(get_completion_script(prog_name="bapp", complete_var="_BAPP_COMPLETE", shell=shell))
    else:
        path = install(shell=shell, prog_name="bapp", complete_var="_BAPP_COMPLETE")[1]
        typer.echo(f"{shell} completion installed in {path}\nCompletion will take effect once you restart the terminal")
    raise typer.Exit(0)


def _attach_value_completion(command: Any, path: list[str]) -> None:
    """Database-backed values (pathways, skills, sessions, e-mails), and the names a `one_of` option takes, for shells
    the launcher leaves to Typer."""
    from bapp_cli.cli.completion import domain_values, value_kind, values_for

    for param in command.params:
        kind, domain = value_kind(path, param.name or ""), getattr(param.callback, "domain", None)
        if (kind or domain) is not None and getattr(param, "_custom_shell_complete", None) is None:

            def complete(ctx: Any, _param: Any, incomplete: str, kind: Any = kind, domain: Any = domain) -> list[str]:
                return domain_values(domain, incomplete) if domain else values_for(kind, incomplete, sys.argv[1:])

            param._custom_shell_complete = complete
    for name, child in (getattr(command, "commands", None) or {}).items():
        _attach_value_completion(child, [*path, name])


def _detail_line(detail: Any) -> str:
    if isinstance(detail, dict):
        where = ", ".join(f"{key} {detail[key]}" for key in ("line", "row", "field") if detail.get(key) is not None)
        message = detail.get("message", "")
        return f"{where}: {message}" if where else str(message or detail)
    return str(detail)
