"""Option declarations shared by many commands, so every command spells them the same way."""

from __future__ import annotations

import functools
import inspect
import unicodedata
from collections.abc import Callable
from typing import Annotated, Any, ParamSpec, TypeVar

import typer

from bapp_cli.cli.context import state
from bapp_cli.errors import InvalidInput, UsageError, quoted, too_long

FormatOption = Annotated[
    str | None,
    typer.Option(
        "--format",
        "-f",
        help="Output format: table, json, jsonl, csv or tsv "
        "[default: table on a terminal, tsv when piped; env BAPP_FORMAT].",
    ),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Same as --format json.")]
Params = ParamSpec("Params")
Result = TypeVar("Result")


def output_command(
    app: typer.Typer, name: str, *, search: str | None = None
) -> Callable[[Callable[Params, Result]], Callable[Params, Result]]:
    """`@app.command(name)` for a command that prints records: it also takes --format/-f and --json, declared
    once here and placed last, as every command lists them. The choice is kept on the AppState, where
    `state(ctx).output()`, `reading(ctx)` and `changing(ctx)` find it.

    With `search` (what --search matches, for its help) the command is a listing: it also takes --search,
    --limit and --offset, declared here and placed before --format, and gets them as its `page` parameter
    (a `services.listing.Page`, imported when the command runs: `--help` loads no service)."""

    def register(command: Callable[Params, Result]) -> Callable[Params, Result]:
        # Typer reads the wrapper's signature, with real types; `page` is not an option, and its type is left as
        # written (evaluating it would import services.listing)
        signature = inspect.signature(command, eval_str=True, locals={"Page": "Page"})
        added: list[tuple[str, Any, Any]] = [("fmt", None, FormatOption), ("as_json", False, JsonOption)]
        if search is not None:
            paging = [("search", None, Annotated[str | None, search_option(search)]), ("limit", None, LimitOption)]
            added[:0] = [*paging, ("offset", 0, OffsetOption)]

        @functools.wraps(command)
        def run(*args: Any, fmt: str | None = None, as_json: bool = False, **kwargs: Any) -> Result:
            state(kwargs["ctx"]).chosen_format = (fmt, as_json)
            if search is not None:
                from bapp_cli.services.listing import Page

                kwargs["page"] = Page(**{key: kwargs.pop(key) for key in ("limit", "offset", "search")})
            return command(*args, **kwargs)

        own = [parameter for parameter in signature.parameters.values() if parameter.name != "page"]
        keyword = inspect.Parameter.KEYWORD_ONLY
        extra = [inspect.Parameter(name, keyword, default=value, annotation=kind) for name, value, kind in added]
        run.__signature__ = signature.replace(parameters=[*own, *extra])  # type: ignore[attr-defined]
        # as evaluated above: Typer's get_type_hints would compile and evaluate each text annotation again
        run.__annotations__ = {parameter.name: parameter.annotation for parameter in own}
        app.command(name)(run)
        return command

    return register


def readable_when(ctx: typer.Context, value: str | None) -> str | None:
    """The callback of a WHEN option (`when`): a value that cannot be read as a date and time is a usage error (exit
    2) naming the option, as one `one_of` refuses is. One read but breaking a rule (a past start, a year past 2999,
    an hour the clocks skip) is the services' to refuse (exit 6), as the same value in an import row is."""
    if value is None or ctx.resilient_parsing:
        return value
    from bapp_cli.services.instants import EXAMPLE, read_iso

    if isinstance(why := read_iso(value), str):
        raise typer.BadParameter(f"{why}; use ISO 8601, e.g. {EXAMPLE}")
    return value


def when(flag: str, help: str) -> Any:
    """`typer.Option(flag)` that takes a date and time (`readable_when`)."""
    return typer.Option(flag, callback=readable_when, help=help)


def known_zone(ctx: typer.Context, param: typer.CallbackParam, value: str | None) -> str | None:
    """The callback of a --timezone option (`zone`), the global one's too: a name that is no IANA zone is a
    usage error (exit 2) naming the flag, as an unreadable WHEN is; the zone is returned trimmed (`zone_key`). Only
    BAPP_TIMEZONE and the config file's `timezone` are settings, refused as configuration (exit 4)."""
    if value is None or ctx.resilient_parsing:
        return value
    from bapp_cli.services.instants import known_zone_key

    refuse_blank({param.opts[0]: value})
    try:
        return known_zone_key(value)
    except InvalidInput as error:  # instants' refusal, as a usage error
        raise typer.BadParameter(f"{error.message}; {error.hint}") from None


def zone(help: str) -> Any:
    """`typer.Option("--timezone")` that takes an IANA zone (`known_zone`)."""
    return typer.Option("--timezone", callback=known_zone, help=help)


DryRunOption = Annotated[bool, typer.Option("--dry-run", help="Check and report everything, then roll back.")]
YesOption = Annotated[bool, typer.Option("--yes", "-y", help="Confirm without asking.")]
# a period of bookings (bookings list, the reports), half-open like every period bapp takes
FromOption = Annotated[
    str | None, when("--from", "Bookings starting at or after WHEN (a date or naive time is in --timezone).")
]
ToOption = Annotated[str | None, when("--to", "Bookings starting before WHEN (exclusive).")]
# the arguments many commands name the same way
ClientArgument = Annotated[str, typer.Argument(help="Client e-mail.")]
PathwayArgument = Annotated[str, typer.Argument(help="Pathway slug (any case).")]
SkillArgument = Annotated[str, typer.Argument(help="Skill slug.")]

# One rule for option values (issue 15 #24): what the parser can check on its own — a whole number, a
# count that cannot be negative, a value an INTEGER column can hold — it checks, and a bad value is a
# usage error (exit 2) naming the option, for every command. Rules that need the data (a duration the
# session offers, at most 1440 minutes) stay with the services: exit 6 naming the field, exactly as for
# the same value in an import row.
MAX_OPTION_INT = 2**31 - 1  # INTEGER on PostgreSQL; larger values could only overflow (issue 15 #14)

LimitOption = Annotated[
    int | None, typer.Option("--limit", min=1, max=MAX_OPTION_INT, help="Show at most N rows (default: all).")
]
OffsetOption = Annotated[
    int,
    typer.Option(
        "--offset", min=0, max=MAX_OPTION_INT, help="Skip the first N rows (with --limit, to page).", show_default=False
    ),
]


def one_of(domain: str) -> Callable[[typer.Context, str | None], str | None]:
    """The callback of an option that takes one of the values `bapp_cli.db.domains.<domain>` names (looked up as the
    value is: start-up loads no bapp_cli.db), read as the services read it (trimmed, any case, `no-show` as no_show).
    Another is a usage error (exit 2) naming the option and the values, as for every value the parser judges alone."""

    def check(ctx: typer.Context, value: str | None) -> str | None:
        if value is None or ctx.resilient_parsing:  # the command index's walk (start-up) checks no default
            return value
        from bapp_cli.db import domains

        names: tuple[str, ...] = getattr(domains, domain)
        if (cleaned := domains.as_status(value.strip().lower())) not in names:
            raise typer.BadParameter(f"{quoted(value)} is not one of {', '.join(names)}")
        return cleaned

    # what shell completion offers: the command index keeps it (Typer's wrapper of the callback keeps its attributes)
    check.domain = domain  # type: ignore[attr-defined]
    return check


def choice(flag: str, domain: str, help: str, **options: Any) -> Any:
    """`typer.Option(flag)` that takes one of the values `bapp_cli.db.domains.<domain>` names (`one_of`)."""
    return typer.Option(flag, callback=one_of(domain), help=help, **options)


MAX_SEARCH_LENGTH = 200  # services.listing's too; not imported from there, which `bapp --help` would pay for


def _search_text(value: str | None) -> str | None:
    if value is None:
        return None
    # in NFC, as names are stored (services.plain_text.nfc): it finds them typed either way, its limit counting
    # the characters read
    if len(value := unicodedata.normalize("NFC", value)) > MAX_SEARCH_LENGTH:
        raise typer.BadParameter(too_long(len(value), MAX_SEARCH_LENGTH))
    if any(ord(character) < 32 or ord(character) == 127 for character in value):
        raise typer.BadParameter("control characters cannot be searched for")
    return value


def search_option(where: str) -> Any:
    """`--search TEXT`: a substring match on `where` (the columns named in the help), blind to the case of
    ASCII letters only, as on both backends (SQLite's LIKE; the C collation 0013 gives PostgreSQL's text).

    Keep the help under 80 characters: shell completion shows it on one line.
    """
    return typer.Option(
        "--search", "-s", metavar="TEXT", callback=_search_text, help=f"Rows with TEXT in {where} (A-Z in any case)."
    )


MAX_WAIT_SECONDS = 24 * 3600  # a cron job waiting a day for a lock is already a stuck job
MAX_UNIX_SECONDS = 32_503_680_000  # 3000-01-01T00:00Z, the end of the instants bapp accepts


def finite_seconds(value: float | None) -> float | None:
    """Click's FloatRange lets `nan` through (every comparison with it is false); a wait or an age must be a number."""
    if value is not None and value != value:
        raise typer.BadParameter("must be a number, not nan")
    return value


def refuse_blank(flags: dict[str, str | None], hint: str = "give it a value, or leave {} out") -> None:
    """A flag or argument given blank (`--database-url "$URL"` with URL unset) names nothing: exit 2, as a flag given
    no value is, where it ran as the flag left out or failed as a value (`--database-url ""` exit 4, `--timezone ""`
    6, `db upgrade ""` 6). `hint` is said with the flag's name in its `{}`."""
    if blank := [flag for flag, value in flags.items() if value is not None and not value.strip()]:
        raise UsageError(f"{blank[0]} is empty", hint=hint.format(blank[0]))
