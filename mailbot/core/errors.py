"""The one small exception tree for failures.

Decisions ("needs more information", "reject") are values, never exceptions; these
classes are for things that went wrong. Adapters translate library errors into
them so callers can tell a transient failure (retry later) from a permanent one.
"""

from __future__ import annotations


class MailbotError(Exception):
    """Base of every failure mailbot raises on purpose."""


class ConfigError(MailbotError):
    """The configuration is wrong; the message names the key and the file."""


class RulesError(MailbotError):
    """A rules file is invalid; the message names the file and the line."""

    def __init__(self, message: str, *, path: str | None = None, line: int | None = None):
        self.path = path
        self.line = line
        where = ""
        if path is not None:
            where = f"{path}:{line}: " if line is not None else f"{path}: "
        super().__init__(f"{where}{message}")


class TemplateError(MailbotError):
    """A mail template is missing or cannot be rendered."""


class StoreError(MailbotError):
    """The database failed or is not migrated."""


class TransientError(MailbotError):
    """A failure that may go away by itself: retry with backoff."""


class PermanentError(MailbotError):
    """A failure that will not go away by retrying: flag for an admin."""


class MailboxError(TransientError):
    """The IMAP server could not be reached or answered unexpectedly."""


class DeliveryError(TransientError):
    """An SMTP delivery failed temporarily (4xx, connection lost)."""


class DeliveryRejected(PermanentError):
    """An SMTP delivery failed for good (5xx)."""


class ExtractionError(MailbotError):
    """A document could not be read (OCR failed, timed out, broken file)."""
