"""Layered configuration: built-in defaults, then a TOML file, then MAILBOT_* environment.

The file comes from `--config PATH` or `MAILBOT_CONFIG`. Environment variables
named `MAILBOT_<SECTION>_<KEY>` (e.g. MAILBOT_IMAP_PASSWORD) override the file, so
secrets never need to be written into it. The result is one frozen `Settings`.
Unknown keys and wrong types are errors that name the key and where it came from.
"""

from __future__ import annotations

import dataclasses
import json
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, get_type_hints

from mailbot.core.errors import ConfigError

TLS_MODES = ("ssl", "starttls", "none")


@dataclass(frozen=True)
class ServerSettings:
    """A mail server mailbot logs in to: IMAP to read, SMTP to send (each its own section,
    with its own default port)."""

    host: str = "localhost"
    port: int = 0
    tls: str = "ssl"
    username: str = ""
    password: str = ""
    timeout_seconds: float = 30.0
    ca_file: str = ""
    """PEM file of CA certificates to trust instead of the system's; for a private CA
    or a self-signed server. Certificates and the host name are still verified."""


@dataclass(frozen=True)
class ImapSettings(ServerSettings):
    port: int = 993
    # XOAUTH2 (Microsoft 365, Gmail): a command whose stdout, or a file whose
    # content, is a fresh access token. Used instead of the password when set.
    oauth2_token_command: str = ""
    oauth2_token_file: str = ""
    folders: tuple[str, ...] = ("INBOX",)
    processed_folder: str = "mailbot/processed"
    quarantine_folder: str = "mailbot/quarantine"
    # "move": move processed mail to processed_folder; "flag": set \Seen + a keyword and keep it.
    processed_action: str = "move"
    idle: bool = True
    poll_seconds: int = 60
    batch_size: int = 100
    max_message_bytes: int = 25 * 1024 * 1024
    account: str = ""
    """A stable name for this mailbox in the ledger; defaults to username@host."""
    trusted_authserv_ids: tuple[str, ...] = ()
    """Authentication-Results headers whose DMARC verdict counts, by the authserv-id
    the receiving server writes first ("" for Exchange Online's, which names none).
    Empty: every such header counts. A verdict only ever holds a mail back, so a
    header a sender forged can only hold the sender's own mail."""


@dataclass(frozen=True)
class SmtpSettings(ServerSettings):
    port: int = 465
    from_address: str = "claims@example.com"
    reply_to: str = ""
    # how many replies one recipient may get per hour; the excess is held, not dropped
    rate_limit_per_hour: int = 5
    max_attempts: int = 8
    resend_unconfirmed: bool = True
    """A reply whose outcome is unknown (connection lost after the whole message was
    handed over) is sent once more with the same Message-ID, marked
    possible_duplicate; false flags it for an admin instead (at most once)."""


@dataclass(frozen=True)
class DatabaseSettings:
    url: str = ""
    """SQLAlchemy URL; empty means a SQLite file `mailbot.db` in data_dir."""


@dataclass(frozen=True)
class PathSettings:
    data_dir: str = "./data"
    rules_dir: str = ""
    """Empty means the rules shipped with mailbot."""
    templates_dir: str = ""
    """Site overrides, searched before the built-in templates; empty means none."""


@dataclass(frozen=True)
class OcrSettings:
    languages: str = ""
    """Tesseract languages, e.g. "nor+eng"; empty means the campaign's language."""
    workers: int = 1
    timeout_seconds: float = 15.0


@dataclass(frozen=True)
class ScheduleSettings:
    deliver_seconds: int = 2
    """How often the outbox is delivered while the daemon runs."""
    sweep_minutes: int = 15
    """How often deadline sweeps run (void overdue claims, expire RMAs, reminders)."""
    claim_reminder_days: int = 3
    """Remind an incomplete claim this many days before its deadline; 0 disables."""
    rma_reminder_days: int = 3
    """Remind about an RMA without shipment notice this many days before it expires; 0 disables."""


@dataclass(frozen=True)
class HealthSettings:
    listen: str = ""
    """host:port of the /healthz and /metrics HTTP endpoint of `mailbot run`
    (e.g. "127.0.0.1:9187"); empty: no endpoint."""


@dataclass(frozen=True)
class WebSettings:
    listen: str = "127.0.0.1:8080"
    """host:port of the operators' web desk (`mailbot web`); loopback unless a TLS
    reverse proxy in front of it is the only way in."""
    base_url: str = ""
    """The desk's public URL (e.g. "https://desk.example.com"), for links in mails."""
    secret_key: str = ""
    """Signs the session cookies; empty: a random key kept in data_dir/web_secret.key
    (created 0600 on first start). Changing it logs everybody out."""
    secure_cookies: bool = False
    """Send the session cookie only over HTTPS: set it behind a TLS proxy."""
    session_minutes: int = 480
    """A login lasts this long, then the operator logs in again."""
    login_attempts: int = 5
    """Failed logins allowed per user name (per client address: 4x) in login_window_minutes."""
    login_window_minutes: int = 15
    in_daemon: bool = False
    """Serve the desk from `mailbot run` too (on `listen`), so one process does both."""
    trust_proxy: bool = False
    """Take the client address from X-Forwarded-For (the last hop, which the proxy
    adds): set it only behind a reverse proxy, or clients choose their own address."""


@dataclass(frozen=True)
class LogSettings:
    level: str = "INFO"
    format: str = "json"
    """"json" (one object per line, for journald/ELK) or "text"."""


@dataclass(frozen=True)
class Settings:
    imap: ImapSettings = field(default_factory=ImapSettings)
    smtp: SmtpSettings = field(default_factory=SmtpSettings)
    database: DatabaseSettings = field(default_factory=DatabaseSettings)
    paths: PathSettings = field(default_factory=PathSettings)
    ocr: OcrSettings = field(default_factory=OcrSettings)
    schedule: ScheduleSettings = field(default_factory=ScheduleSettings)
    log: LogSettings = field(default_factory=LogSettings)
    health: HealthSettings = field(default_factory=HealthSettings)
    web: WebSettings = field(default_factory=WebSettings)
    source: str = "defaults"
    """Where the settings came from (for `mailbot check`)."""

    @property
    def data_dir(self) -> Path:
        return Path(self.paths.data_dir).expanduser().resolve()

    @property
    def database_url(self) -> str:
        if self.database.url:
            return self.database.url
        return f"sqlite:///{self.data_dir / 'mailbot.db'}"

    @property
    def imap_account(self) -> str:
        return self.imap.account or f"{self.imap.username}@{self.imap.host}"

    def redacted(self) -> dict[str, Any]:
        """All settings as a dict with secrets replaced, for printing."""
        out = dataclasses.asdict(self)
        for section in ("imap", "smtp"):
            if out[section]["password"]:
                out[section]["password"] = "***"
        if out["web"]["secret_key"]:
            out["web"]["secret_key"] = "***"
        if "@" in out["database"]["url"] and ":" in out["database"]["url"].split("@")[0]:
            head, tail = out["database"]["url"].rsplit("@", 1)
            out["database"]["url"] = head.rsplit(":", 1)[0] + ":***@" + tail
        return out


_SECTIONS: dict[str, type] = {
    "imap": ImapSettings,
    "smtp": SmtpSettings,
    "database": DatabaseSettings,
    "paths": PathSettings,
    "ocr": OcrSettings,
    "schedule": ScheduleSettings,
    "log": LogSettings,
    "health": HealthSettings,
    "web": WebSettings,
}

_CHOICES: dict[tuple[str, str], tuple[str, ...]] = {
    ("imap", "tls"): TLS_MODES,
    ("smtp", "tls"): TLS_MODES,
    ("imap", "processed_action"): ("move", "flag"),
    ("log", "format"): ("json", "text"),
    ("log", "level"): ("DEBUG", "INFO", "WARNING", "ERROR"),
}


_NUMBERS: dict[Any, tuple[str, tuple[type, ...]]] = {
    int: ("an integer", (int,)),
    float: ("a number", (int, float)),
}
"""Number fields: how an error names the type, and the TOML values that fit (an
integer is a number)."""


def _coerce(value: Any, typ: Any, where: str, from_env: bool) -> Any:
    """Check (file) or convert (environment strings) one value to the field's type."""
    if typ is bool:
        if from_env:
            low = str(value).strip().lower()
            if low in ("1", "true", "yes", "on"):
                return True
            if low in ("0", "false", "no", "off"):
                return False
        elif isinstance(value, bool):
            return value
        raise ConfigError(f"{where}: expected true or false, got {value!r}")
    number = _NUMBERS.get(typ)
    if number is not None:
        words, accepted = number
        if from_env:
            try:
                return typ(str(value).strip())
            except ValueError:
                pass
        elif isinstance(value, accepted) and not isinstance(value, bool):
            return typ(value)
        raise ConfigError(f"{where}: expected {words}, got {value!r}")
    if typ == tuple[str, ...]:
        if from_env:
            text = str(value).strip()
            if text.startswith("["):
                try:
                    value = json.loads(text)
                except ValueError:
                    raise ConfigError(f"{where}: expected a JSON list, got {text!r}") from None
            else:
                value = [part.strip() for part in text.split(",") if part.strip()]
        if isinstance(value, list) and all(isinstance(v, str) for v in value):
            return tuple(value)
        raise ConfigError(f"{where}: expected a list of strings, got {value!r}")
    if typ is str:
        if isinstance(value, str):
            return value
        raise ConfigError(f"{where}: expected a string, got {value!r}")
    raise ConfigError(f"{where}: unsupported type")  # pragma: no cover - a bug in this module


def _apply(
    current: dict[str, dict[str, Any]],
    section: str,
    key: str,
    value: Any,
    where: str,
    from_env: bool,
) -> None:
    cls = _SECTIONS.get(section)
    if cls is None:
        raise ConfigError(f"{where}: unknown section [{section}]")
    hints = get_type_hints(cls)
    if key not in hints:
        raise ConfigError(f"{where}: unknown key {section}.{key}")
    coerced = _coerce(value, hints[key], where, from_env)
    choices = _CHOICES.get((section, key))
    if choices is not None and coerced not in choices:
        raise ConfigError(f"{where}: {section}.{key} must be one of {', '.join(choices)}")
    current[section][key] = coerced


def load_settings(
    path: str | os.PathLike[str] | None = None,
    environ: Mapping[str, str] | None = None,
) -> Settings:
    """Build the settings: defaults <- file (path or $MAILBOT_CONFIG) <- MAILBOT_* env."""
    env = os.environ if environ is None else environ
    values: dict[str, dict[str, Any]] = {name: {} for name in _SECTIONS}
    sources = ["defaults"]
    file_path = path if path is not None else env.get("MAILBOT_CONFIG") or None
    if file_path is not None:
        fp = Path(file_path)
        try:
            data = tomllib.loads(fp.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError(f"{fp}: config file not found") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{fp}: cannot read: {exc}") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{fp}: TOML syntax: {exc}") from None
        for section, body in data.items():
            if not isinstance(body, dict):
                raise ConfigError(f"{fp}: [{section}] must be a table")
            for key, value in body.items():
                _apply(values, section, key, value, f"{fp}: {section}.{key}", from_env=False)
        sources.append(str(fp))
    for name, raw in sorted(env.items()):
        if not name.startswith("MAILBOT_") or name == "MAILBOT_CONFIG":
            continue
        rest = name[len("MAILBOT_") :].lower()
        section, _, key = rest.partition("_")
        if section not in _SECTIONS:
            continue  # other MAILBOT_* variables (e.g. MAILBOT_DEMO_*) are not ours
        _apply(values, section, key, raw, f"environment {name}", from_env=True)
        if "environment" not in sources:
            sources.append("environment")
    built = {name: cls(**values[name]) for name, cls in _SECTIONS.items()}
    return Settings(**built, source=" <- ".join(sources))
