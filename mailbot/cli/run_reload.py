"""What SIGHUP reloads in a running `mailbot run`, and how the last reload went.

Reloaded in place: the rules (kept when the new files are broken), the templates
(checked; see templating.reload_templates) and log.level (unless --log-level was
given on the command line). Every other changed key is logged as needing a restart:
the IMAP and SMTP connections, the database and the paths were built from the old
values. `Reloader.status()` is the one place other code (a health endpoint) reads
the outcome from.
"""

from __future__ import annotations

import dataclasses
import logging
from datetime import UTC, datetime
from typing import Any

from mailbot.cli.app import App
from mailbot.config import Settings, load_settings
from mailbot.core.errors import MailbotError
from mailbot.log import set_level
from mailbot.ruleset.loader import ReloadStatus
from mailbot.templating.render import reload_templates, templates_version

log = logging.getLogger(__name__)


def changed_keys(old: Settings, new: Settings) -> list[str]:
    """`section.key` of every setting that differs (names only: values may be secrets)."""
    out = []
    for section in dataclasses.fields(old):
        a, b = getattr(old, section.name), getattr(new, section.name)
        if not dataclasses.is_dataclass(a):
            continue  # `source`: where the file came from, not a setting
        for f in dataclasses.fields(a):
            if getattr(a, f.name) != getattr(b, f.name):
                out.append(f"{section.name}.{f.name}")
    return out


class Reloader:
    def __init__(self, app: App, config_path: str | None, *, log_level_fixed: bool) -> None:
        self.app = app
        self.config_path = config_path
        self.log_level_fixed = log_level_fixed
        self.settings = app.settings  # what is in force, log level included
        self.templates = ReloadStatus()
        # the templates in force: those the daemon started with, replaced only by a
        # reload that rendered them all (a failed one leaves the previous in force)
        self.templates_in_force = templates_version(app.settings.paths.templates_dir or None)
        self.config_error: str | None = None
        self.restart_needed: tuple[str, ...] = ()
        self.reloaded_at: datetime | None = None

    def __call__(self) -> None:
        self.reloaded_at = datetime.now(UTC)
        self._config()
        self.app.rules_cache.reload()
        self.templates = reload_templates(self.app.settings.paths.templates_dir or None)
        if self.templates.version and not self.templates.error:
            self.templates_in_force = self.templates.version

    def _config(self) -> None:
        try:
            new = load_settings(self.config_path)
        except MailbotError as exc:
            self.config_error = str(exc)
            log.warning(
                "config reload failed; the running configuration stays",
                extra={"error": str(exc)},
            )
            return
        self.config_error = None
        changed = changed_keys(self.settings, new)
        if "log.level" in changed:
            changed.remove("log.level")
            if self.log_level_fixed:
                log.info("log.level changed but --log-level was given: kept")
            elif not isinstance(logging.getLevelName(new.log.level.upper()), int):
                log.warning("log level not changed: unknown", extra={"level": new.log.level})
            else:
                # said before the change, so it is seen when the new level is quieter
                log.info(
                    "log level changed",
                    extra={"level": new.log.level, "previous": self.settings.log.level},
                )
                set_level(new.log.level)
                self.settings = dataclasses.replace(self.settings, log=new.log)
        if changed:
            self.restart_needed = tuple(sorted(set(self.restart_needed) | set(changed)))
            log.warning("config changed; these keys apply after a restart", extra={"keys": changed})
        else:
            log.info("config reloaded", extra={"source": new.source})

    def status(self) -> dict[str, Any]:
        return {
            "reloaded_at": self.reloaded_at.isoformat() if self.reloaded_at else None,
            "rules": self.app.rules_cache.status.as_dict(),
            "templates": self.templates.as_dict(),
            "templates_in_force": self.templates_in_force,
            "config_error": self.config_error,
            "restart_needed": list(self.restart_needed),
        }
