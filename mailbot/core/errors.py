"""The one small exception tree for failures, and what callers decide on.

Decisions ("needs more information", "reject") are values, never exceptions; these
classes are for things that went wrong. Adapters translate library errors into
them (the store's transaction helper, the IMAP and SMTP adapters, the OCR runner),
so a caller decides by class, never by a private tuple of library errors:

    MailbotError
      ConfigError, RulesError, TemplateError   an admin's file is wrong
      InputError                               an operator's argument or CSV row is wrong
      TransitionError                          a state change asked of the wrong state (a bug)
      StoreError                               the database failed or is not migrated
      TransientError                           retry later, with backoff
        StoreUnavailable (also a StoreError)   the database cannot be reached right now
        MailboxError                           IMAP
        DeliveryError                          SMTP 4xx, connection lost (mailbot.outbound.smtp
                                               adds SmtpConnectError below it)
      PermanentError                           retrying will not help: flag for an admin
        DeliveryRejected                       SMTP 5xx (mailbot.outbound.smtp: RecipientRejected)
      ExtractionError > OcrTimeout             a document could not be read
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


class InputError(MailbotError):
    """Operator input (CLI arguments, CSV rows) is invalid; the message says which."""


class TransitionError(MailbotError, ValueError):
    """A function was called on a snapshot in a state it does not apply to: a bug in
    the caller (or a stale snapshot), never a customer decision. Also a ValueError,
    as it always was, so existing handlers of bad values still see it."""


class StoreError(MailbotError):
    """The database failed or is not migrated."""


class TransientError(MailbotError):
    """A failure that may go away by itself: retry with backoff."""


class PermanentError(MailbotError):
    """A failure that will not go away by retrying: flag for an admin."""


class StoreUnavailable(StoreError, TransientError):
    """The database could not be reached or dropped the connection (the driver's
    OperationalError / InterfaceError): not the message's fault, retry later."""


class RowBusy(TransientError):
    """A row this decision must lock is held by another process right now: the work
    is put back and redone in a transaction of its own (several daemons)."""


class MailboxError(TransientError):
    """The IMAP server could not be reached or answered unexpectedly."""


class DeliveryError(TransientError):
    """An SMTP delivery failed temporarily (4xx, connection lost)."""


class DeliveryRejected(PermanentError):
    """An SMTP delivery failed for good (5xx)."""


class ExtractionError(MailbotError):
    """A document could not be read (OCR failed, timed out, broken file)."""


class OcrTimeout(ExtractionError):
    """An OCR engine ran past its time budget for one image."""
