"""Settings and where each one came from.

One resolver for every setting, with the precedence of CLI.md §1: flag > environment > config file >
default. The config file is TOML; bapp writes it with tomli-w and mode 0600 because it may hold secrets.
This module imports only the standard library so that resolving settings stays cheap.
"""

from __future__ import annotations

import os
import stat
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from bapp_cli.errors import ConfigError, InvalidInput, UsageError

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
    "calendly.user": (),
    "calendly.organization": (),
    "calendly.pathway_question": (),
}
SECRET_KEYS = frozenset({"calendly.token", "calendly.webhook_signing_key"})
MASK = "****"


def default_config_path() -> Path:
    import platformdirs

    return Path(platformdirs.user_config_dir("bapp")) / "config.toml"


def default_database_path() -> Path:
    import platformdirs

    return Path(platformdirs.user_data_dir("bapp")) / "bapp.db"


def normalise_database_url(url: str) -> str:
    """Give `postgres://` and `postgresql://` URLs (the seed's DATABASE_URL form) the psycopg driver."""
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def mask_url_password(url: str) -> str:
    """Replace the password of a URL with ****, leaving everything else readable."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return MASK
    if parts.password is None:
        return url
    netloc = parts.netloc
    userinfo, _, hostinfo = netloc.rpartition("@")
    user = userinfo.split(":", 1)[0]
    return urlunsplit(parts._replace(netloc=f"{user}:{MASK}@{hostinfo}"))


@dataclass(frozen=True)
class Setting:
    value: Any
    source: str  # "flag", "env:NAME", "file", "default"


@dataclass
class Settings:
    """Resolved settings; `sources` says where each came from (for `config show`)."""

    config_path: Path
    config_path_source: str
    values: dict[str, Setting] = field(default_factory=dict)
    file_data: dict[str, Any] = field(default_factory=dict)

    def get(self, key: str) -> Any:
        setting = self.values.get(key)
        return None if setting is None else setting.value

    @property
    def database_url(self) -> str:
        return str(self.get("database_url"))

    @property
    def timezone(self) -> str:
        return str(self.get("timezone"))

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
            path = Path(str(token_file)).expanduser()
            try:
                return path.read_text(encoding="utf-8").strip() or None
            except OSError as exc:
                raise ConfigError(
                    f"cannot read calendly.token_file {path}: {exc.strerror}",
                    hint="check the path in `bapp config show`",
                ) from None
        return None

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
            if value is not None and key in SECRET_KEYS:
                value = MASK
            elif value is not None and key == "database_url":
                value = mask_url_password(str(value))
            rows.append({"key": key, "value": value, "source": None if setting is None else setting.source})
        return rows


def load_config_file(path: Path) -> dict[str, Any]:
    if not path.exists():
        return {}
    try:
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:  # not UTF-8 is not TOML either (R9)
        raise ConfigError(f"config file {path} is not valid TOML: {exc}") from None
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from None


def _file_value(data: dict[str, Any], key: str) -> Any:
    node: Any = data
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


def resolve_settings(
    *,
    config_path: str | None,
    flags: dict[str, Any],
    environ: dict[str, str] | None = None,
) -> Settings:
    env = os.environ if environ is None else environ
    if config_path:
        path, path_source = Path(config_path).expanduser(), "flag"
    elif env.get("BAPP_CONFIG"):
        path, path_source = Path(env["BAPP_CONFIG"]).expanduser(), "env:BAPP_CONFIG"
    else:
        path, path_source = default_config_path(), "default"
    data = load_config_file(path)
    settings = Settings(config_path=path, config_path_source=path_source, file_data=data)

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
            settings.values[key] = chosen

    if "database_url" in settings.values:
        found = settings.values["database_url"]
        settings.values["database_url"] = Setting(normalise_database_url(str(found.value)), found.source)
    else:
        settings.values["database_url"] = Setting(f"sqlite:///{default_database_path()}", "default")
    settings.values.setdefault("timezone", Setting("UTC", "default"))
    settings.values.setdefault("calendly.base_url", Setting(DEFAULT_CALENDLY_BASE_URL, "default"))
    return settings


def _check_key(key: str) -> None:
    if key not in KNOWN_KEYS:
        raise UsageError(f"unknown setting {key!r}", hint="known settings: " + ", ".join(KNOWN_KEYS))


def write_config_file(path: Path, data: dict[str, Any]) -> None:
    """Write the TOML atomically with mode 0600 from the first byte (it may hold secrets)."""
    import tomli_w

    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(path.name + ".tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, stat.S_IRUSR | stat.S_IWUSR)
    try:
        with os.fdopen(descriptor, "wb") as handle:
            tomli_w.dump(data, handle)
        os.chmod(temporary, stat.S_IRUSR | stat.S_IWUSR)
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def set_config_value(path: Path, key: str, value: str) -> None:
    _check_key(key)
    if key in SECRET_KEYS:
        raise UsageError(
            f"{key} is a secret and is not taken on the command line",
            hint="set CALENDLY_API_KEY / CALENDLY_WEBHOOK_SIGNING_KEY, or `bapp config set calendly.token_file PATH`",
        )
    if key == "timezone":
        validate_timezone(value)
    data = load_config_file(path)
    node = data
    parts = key.split(".")
    for part in parts[:-1]:
        node = node.setdefault(part, {})
    node[parts[-1]] = value
    write_config_file(path, data)


def unset_config_value(path: Path, key: str) -> bool:
    _check_key(key)
    data = load_config_file(path)
    node: Any = data
    parts = key.split(".")
    for part in parts[:-1]:
        node = node.get(part)
        if not isinstance(node, dict):
            return False
    if parts[-1] not in node:
        return False
    del node[parts[-1]]
    write_config_file(path, data)
    return True


def validate_timezone(name: str) -> str:
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):  # OSError: a name too long for a file (R9)
        raise InvalidInput(
            f"unknown timezone {name!r}", hint="use an IANA name such as Europe/London", code="unknown_timezone"
        ) from None
    return name
