"""`bapp badges`: the permanent achievements a client has earned."""

from __future__ import annotations

import json  # loaded at startup already (cli.app)
import os
from typing import TYPE_CHECKING, Annotated, Any

import typer

from bapp_cli.cli.context import AppState, state, state_and_sink, utc_now
from bapp_cli.cli.files import OutputFile, read_text_input
from bapp_cli.cli.options import ClientArgument, DryRunOption, output_command
from bapp_cli.cli.unit_of_work import apply, fetch
from bapp_cli.errors import ConfigError, Conflict, InvalidInput, UsageError, cut_echo, quoted

if TYPE_CHECKING:
    from bapp_cli.config import Settings
    from bapp_cli.services.credentials import Issuer
    from bapp_cli.services.listing import Page

app = typer.Typer(
    help="List the badges clients have earned; issue, verify and revoke them as Open Badges 3.0 credentials.",
    no_args_is_help=True,
)


@output_command(app, "list", search="the badge key")
def list_command(ctx: typer.Context, email: ClientArgument, page: Page) -> None:
    """List a client's badges, oldest first.

    Every badge awarded, a revoked one too (badges are permanent; `badges revoke` withdraws its credential),
    with its revoked_at (null while held), as `clients show` and `progress show` list them. The badge counts
    of `progress table` and `reports client-progress` leave a revoked one out.

    \b
    Examples:
      bapp badges list ada@example.com
      bapp badges list ada@example.com --json
    """
    from bapp_cli.services.plain_reads import BADGE_COLUMNS, list_badges

    sink, badges = fetch(ctx, list_badges, email, page=page, plain=True)  # as `progress show`
    sink.records(badges, BADGE_COLUMNS, title=f"Badges of {email.strip().lower()}")


# -- portable badges: Open Badges 3.0 credentials (issue 17) -----------------------------------------

issuer_app = typer.Typer(help="The Open Badges issuer: its signing key and Profile.", no_args_is_help=True)
app.add_typer(issuer_app, name="issuer")

DEFAULT_KEY_FILE_NAME = "badge-signing-key.pem"

CredentialFormatOption = Annotated[
    str, typer.Option("--format", "-f", help="jwt: one signed VC-JWT per line; json: each JWT with its credential.")
]
# '-' by default, not None: an empty -o ("$FILE" unset) is refused as a path, never taken for stdout
OutputOption = Annotated[str, typer.Option("--output", "-o", help="Write here ('-' = stdout).")]


def _credential_format(value: str) -> str:
    chosen = value.strip().lower()
    if chosen not in ("jwt", "json"):
        raise UsageError(f"--format {quoted(value)}: choose jwt or json")
    return chosen


def _issuer(app_state: AppState) -> Issuer:
    """The configured issuer with its key, or exit 4 saying how to create one."""
    from bapp_cli.config import user_path
    from bapp_cli.services.credentials import Issuer
    from bapp_cli.services.signing_key import load_key_file

    settings = app_state.settings
    name, url, key_file = (settings.get(f"badges.{key}") for key in ("issuer_name", "issuer_url", "key_file"))
    if not (name and url and key_file):
        hint = "run `bapp badges issuer init --name … --url …` (sets badges.issuer_name, issuer_url and key_file)"
        raise ConfigError("no Open Badges issuer is configured", hint=hint)
    image_base = settings.get("badges.image_base_url")
    return Issuer(str(name), str(url), load_key_file(user_path(str(key_file))), image_base or None)


def _write_text(output: str, text: str, *, private: bool = False, settings: Settings | None = None) -> None:
    """stdout, or a file through bapp's one output writer (checked first, whole or not at all; never the
    database, the config file or a key `settings` name)."""
    with OutputFile(output, what="--output", private=private, settings=settings) as stream:
        stream.write(text)


def _json_text(value: Any) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False) + "\n"


@output_command(issuer_app, "init")
def issuer_init_command(
    ctx: typer.Context,
    name: Annotated[str, typer.Option("--name", help="The issuing organisation's name.")],
    url: Annotated[str, typer.Option("--url", help="Its https home page; badge ids live under it.")],
    key_file: Annotated[
        str | None,
        typer.Option(
            "--key-file",
            help="Where to create the Ed25519 private key (mode 0600) [default: BAPP_BADGES_KEY_FILE when set, "
            f"else {DEFAULT_KEY_FILE_NAME} beside the config file].",
        ),
    ] = None,
    image_base_url: Annotated[
        str | None,
        typer.Option("--image-base-url", help="Optional: achievement images are <this>/<badge key with - for :>.png."),
    ] = None,
) -> None:
    """Create the issuer's signing key and record the issuer in the config file.

    The private key is written once, with mode 0600, and never printed; an existing key file is never
    replaced (exit 8), nor is the key badges.key_file names while it is there (exit 8: `config unset
    badges.key_file` first to start over), because every credential already issued verifies only with
    it. The config file gets badges.issuer_name, badges.issuer_url and badges.key_file (and
    badges.image_base_url when given), anew: a bad earlier value of them stops nothing. Prints
    profile_id, key_id and key_file. Publish what `badges issuer show` prints at the Profile id it names.

    \b
    Examples:
      bapp badges issuer init --name BuildAppsWith --url https://buildappswith.com
      bapp badges issuer init --name BuildAppsWith --url https://buildappswith.com --key-file /etc/bapp/badges.pem
    """
    from bapp_cli.config import names_a_directory, removed_on_failure, set_config_values, user_path, validate_issuer_url
    from bapp_cli.services.credentials import Issuer
    from bapp_cli.services.signing_key import create_key_file

    # the key every later command signs with: the config file's, which init replaces, or BAPP_BADGES_KEY_FILE's, which
    # it does not (so a bad one is refused) but makes when it is missing
    configured = state(ctx).unchecked_settings.values.get("badges.key_file")
    env_named = configured is not None and configured.source.startswith("env:")
    replaced = {"issuer_name", "issuer_url"} | ({"image_base_url"} if image_base_url is not None else set())
    # written anew here: a bad old value stops nothing
    state(ctx).unused |= {f"badges.{key}" for key in replaced | (set() if env_named else {"key_file"})}
    app_state, sink = state_and_sink(ctx)  # a bad --format is refused before the key file is made
    cleaned_name = " ".join(name.split())
    # an empty --key-file ("$KEY_FILE" unset) is refused, never taken for the default key file beside the config file
    for option, given, code in (("--name", cleaned_name, "missing_name"), ("--key-file", key_file, "missing_key_file")):
        if given == "":
            raise InvalidInput(f"{option} must not be empty", code=code)
    cleaned_url = validate_issuer_url(url)
    # named as given; an empty one ("$URL" unset) is refused as a URL, never taken for no images
    image_base = validate_issuer_url(image_base_url, "--image-base-url") if image_base_url is not None else None
    config_path = app_state.settings.config_path
    # as -o refuses it (keys/, keys/.): the name --key-file gives, else BAPP_BADGES_KEY_FILE's, where init makes it
    named = key_file if key_file is not None else str(configured.value) if env_named and configured else ""
    if names_a_directory(named):
        raise ConfigError(f"cannot create the signing key file {named}: a directory name: give a file name")
    in_use = user_path(str(configured.value)).absolute() if configured else None
    default = in_use if env_named and in_use else config_path.parent / DEFAULT_KEY_FILE_NAME
    path = (user_path(key_file) if key_file is not None else default).absolute()
    # by real path: the key file in use named another way (`keys/../k.pem`, a symlink) is no other file
    if env_named and in_use and os.path.realpath(in_use) != os.path.realpath(path):  # it would never sign anything
        overridden = f"BAPP_BADGES_KEY_FILE names the key file {in_use}, not {path}"
        raise ConfigError(overridden, hint="unset it, or leave out --key-file")

    def refuse_replacing(configured_key: Any) -> None:
        """The config file's key, which init replaces (BAPP_BADGES_KEY_FILE's, in use while it is set, is `path` by
        now): every credential it signed would stop verifying. A value holding a NUL names no file."""
        kept = user_path(str(configured_key or path)).absolute()
        if "\0" not in str(kept) and os.path.realpath(kept) != os.path.realpath(path) and os.path.isfile(kept):
            hint = "credentials already issued verify only with it; to start over, `bapp config unset badges.key_file`"
            raise Conflict(f"the issuer already signs with the key in {kept}", hint=hint, code="key_exists")

    refuse_replacing(app_state.settings.file_value("badges.key_file"))
    issuer = Issuer(cleaned_name, cleaned_url, create_key_file(path), image_base)
    values = dict(issuer_name=cleaned_name, issuer_url=cleaned_url, key_file=str(path), image_base_url=image_base)
    changes = {f"badges.{name}": value for name, value in values.items() if value}
    # one write: the config names all of the issuer or none of it. Checked again in the file's turn, as it then stands:
    # two inits at once with other key files both found none, and the config kept the last one's key, the first's
    # (whose key id it printed) signing nothing
    with removed_on_failure(path):
        set_config_values(config_path, changes, check=lambda held: refuse_replacing(held["badges.key_file"]))
    sink.record({"profile_id": issuer.profile_id, "key_id": issuer.key_id, "key_file": str(path)})
    sink.info(f"Publish `bapp badges issuer show` at {issuer.profile_id}.")


@issuer_app.command("show")
def issuer_show_command(
    ctx: typer.Context, jwk: Annotated[bool, typer.Option("--jwk", help="Print only the public key, as a JWK.")] = False
) -> None:
    """Print the issuer Profile (JSON) with its public key, to publish at the Profile's id.

    The public key is under verificationMethod[0].publicKeyJwk; `--jwk` prints just that JWK, the file
    a verifier elsewhere passes to `bapp badges verify --key`. The private key is never printed.

    \b
    Examples:
      bapp badges issuer show > issuer.json
      bapp badges issuer show --jwk > issuer-key.jwk
    """
    issuer = _issuer(state(ctx))
    _write_text("-", _json_text(issuer.key.public_jwk() if jwk else issuer.profile_document()))


@output_command(app, "achievements")
def achievements_command(ctx: typer.Context) -> None:
    """List the achievements bapp awards: every tier, every pathway, and Fundamentals.

    Each has a stable key (as badges have), a name, a description and a criteria narrative naming the
    skills linked now; `id` is its Open Badges id under the issuer URL (empty until `badges issuer init`).

    \b
    Examples:
      bapp badges achievements
      bapp badges achievements --json
    """
    from bapp_cli.services.credentials import ACHIEVEMENT_COLUMNS, achievement_definitions

    app_state, sink = state_and_sink(ctx)
    # the ids need the issuer's URL alone: never its key, whose file may be kept where only the signing job reads it
    issuer_url = app_state.settings.get("badges.issuer_url") if app_state.settings.get("badges.key_file") else None
    with app_state.reading() as session:
        definitions = achievement_definitions(session, str(issuer_url).rstrip("/") if issuer_url else None)
    sink.records(definitions.values(), ACHIEVEMENT_COLUMNS, title="Achievements")


@app.command("export")
def export_command(
    ctx: typer.Context,
    email: ClientArgument,
    badge: Annotated[
        list[str] | None,
        typer.Option("--badge", "-b", help="Only this badge key (repeatable) [default: every badge held]."),
    ] = None,
    fmt: CredentialFormatOption = "jwt",
    output: OutputOption = "-",
) -> None:
    """Export a client's badges as signed Open Badges 3.0 credentials (VC-JWT, EdDSA).

    One OpenBadgeCredential per badge: the VC 2.0 and OB 3.0 contexts, the issuer Profile, validFrom =
    the award time, and a credentialSubject naming the achievement and the client by a salted SHA-256
    of the e-mail (never the address itself). Revoked badges are left out (named with --badge: exit 8).
    A client with no badges gives an empty file and exit 0. --format json: an array of {badge, credential, jwt}.

    \b
    Examples:
      bapp badges export ada@example.com -o ada.jwt
      bapp badges export ada@example.com --badge fundamentals --format json
    """
    from bapp_cli.services.credentials import issue_credentials

    chosen, app_state = _credential_format(fmt), state(ctx)
    issuer = _issuer(app_state)
    with app_state.reading() as session:
        issued = issue_credentials(session, email, issuer=issuer, now=utc_now(), only=badge or ())
    text = "".join(item["jwt"] + "\n" for item in issued) if chosen == "jwt" else _json_text(issued)
    # personal achievements: a new file is 0600, like a backup
    _write_text(output, text, private=True, settings=app_state.settings)
    where = "stdout" if output == "-" else output
    app_state.messages.info(f"Exported {len(issued)} credential(s) of {email.strip().lower()} to {where}.")


@output_command(app, "verify")
def verify_command(
    ctx: typer.Context,
    path: Annotated[str, typer.Argument(help="Credentials file (JWT lines or export JSON), or '-' for stdin.")],
    key: Annotated[
        str | None,
        typer.Option(
            "--key",
            help="The issuer's public key: a JWK, JWK Set or issuer Profile JSON file [default: this issuer's key].",
        ),
    ] = None,
    against_db: Annotated[
        bool, typer.Option("--against-db", help="Also check each badge still stands in this database (not revoked).")
    ] = False,
    status_list: Annotated[
        str | None,
        typer.Option("--status-list", help="Also check revocation in a status list file (badges status-list)."),
    ] = None,
) -> None:
    """Verify Open Badges credentials: signature, OB 3.0 shape, dates and, optionally, revocation.

    Exit 0 when every credential is valid; 6 when any is not, each with its reason (also in the
    listing). The signature must be EdDSA by the issuer key (this issuer's, or --key); `--against-db`
    checks the badge exists here for the same client and achievement and is not revoked;
    `--status-list` checks a published revocation list instead, without the database. Without either,
    stderr says revocation was not checked.

    \b
    Examples:
      bapp badges verify ada.jwt
      bapp badges export ada@example.com | bapp badges verify - --against-db
      bapp badges verify ada.jwt --key issuer-key.jwk --status-list revocations.jwt
    """

    from bapp_cli.services import credentials as service
    from bapp_cli.services.signing_key import public_keys_from_document

    app_state, sink = state_and_sink(ctx)
    if [path, key, status_list].count("-") > 1:  # stdin is read once: the second reader found it empty
        raise InvalidInput("only one of the credentials, --key and --status-list can come from stdin", code="stdin")
    tokens = service.split_credentials(read_text_input(path), "stdin" if path == "-" else path)
    given_keys = None
    if key is not None:  # an empty --key ("$KEY" unset) is refused as a path, never taken for this issuer's key
        given_keys = public_keys_from_document(read_text_input(key, what="--key"), "stdin" if key == "-" else key)
    issuer = _issuer(app_state) if against_db or given_keys is None else None
    if issuer is not None and given_keys is not None and issuer.key.public_key not in given_keys:
        # this database vouches only for what its issuer signed: another key's copy of a badge is a forgery here
        raise InvalidInput("--key is not this issuer's key, and --against-db checks its credentials", code="bad_key")
    public_keys = [issuer.key.public_key] if issuer else given_keys or []  # one of the two is set
    now = utc_now()
    results = [service.verify_token(token, public_keys=public_keys, now=now, issuer=issuer) for token in tokens]
    if status_list is not None:  # an empty one is refused as a path: never a revocation check silently skipped
        status_text = read_text_input(status_list, what="--status-list")
        status_tokens = service.split_credentials(status_text, "stdin" if status_list == "-" else status_list)
        service.check_against_status_list(results, status_tokens[0], public_keys=public_keys)
    if against_db and issuer is not None:  # always set above when against_db
        with app_state.reading() as session:
            for result in results:
                service.check_against_database(session, result, issuer=issuer)
    sink.records([item.as_record() for item in results], service.VERIFICATION_COLUMNS, title="Verification")
    if not against_db and status_list is None:  # a "valid" of a revoked badge then: said on stderr, never in the data
        sink.notice("Revocation was not checked: --against-db or --status-list checks it.")
    if invalid := [(index, item) for index, item in enumerate(results, start=1) if not item.valid]:
        details = [f"credential {n} ({cut_echo(item.credential_id or 'no id')}): {item.reason}" for n, item in invalid]
        first = f"credential {invalid[0][0]}: {invalid[0][1].reason}"
        message = f"{len(invalid)} of {len(results)} credential(s) invalid; {first}"
        raise InvalidInput(message, details=details, code="credential_invalid")


@output_command(app, "revoke")
def revoke_command(
    ctx: typer.Context,
    email: ClientArgument,
    key: Annotated[str, typer.Argument(help="Badge key, e.g. tier:accelerate:1 or fundamentals.")],
    reason: Annotated[str, typer.Option("--reason", help="Why (kept, audited, shown by verify).")],
    dry_run: DryRunOption = False,
) -> None:
    """Revoke a badge's credential: it stays in the client's record, but stops verifying.

    `badges verify --against-db` reports it with the reason, and `badges status-list` sets its bit for
    verifiers elsewhere — publish the new list. Audited; revoking twice is a conflict (exit 8). `badges
    list`, `clients show` and `progress show` list it, marked revoked; the badge counts of `progress table`
    and `reports client-progress` no longer count it.

    \b
    Examples:
      bapp badges revoke ada@example.com tier:accelerate:1 --reason "awarded in error"
    """
    from bapp_cli.services.credentials import revoke_badge

    sink, revocation = apply(ctx, revoke_badge, email, key, reason=reason, dry_run=dry_run)
    sink.record(revocation)
    if not dry_run:  # a dry run's line is `changing`'s
        sink.info("Publish the new revocation list: bapp badges status-list -o revocations.jwt")


@app.command("status-list")
def status_list_command(ctx: typer.Context, fmt: CredentialFormatOption = "jwt", output: OutputOption = "-") -> None:
    """Print the signed revocation list to publish at <issuer url>/badges/revocations.json.

    A W3C Bitstring Status List credential (statusPurpose revocation) with one bit per badge, set when the
    badge is revoked; every exported credential points at its bit. Signed as a VC-JWT like the badges.
    --format json: one object {credential, jwt}.

    \b
    Examples:
      bapp badges status-list -o revocations.jwt
      bapp badges status-list --format json
    """
    from bapp_cli.services.credentials import build_status_list

    chosen, app_state = _credential_format(fmt), state(ctx)
    issuer = _issuer(app_state)
    with app_state.reading() as session:
        revoked, listing = build_status_list(session, issuer=issuer, now=utc_now())
    _write_text(output, listing["jwt"] + "\n" if chosen == "jwt" else _json_text(listing), settings=app_state.settings)
    app_state.messages.info(f"{revoked} revoked badge(s) in the list.")
