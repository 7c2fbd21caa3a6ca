"""What one inbound mail is, once read: frozen values the rest of the core reasons about.

Produced by `parsers.mail.parse.parse_email` (never raises) and `parsers.mail.classify`;
consumed by matching, the pipeline and `mailbot inspect`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum


class MailKind(StrEnum):
    HUMAN = "human"
    AUTO_REPLY = "auto_reply"
    BOUNCE = "bounce"


@dataclass(frozen=True)
class Attachment:
    """One file carried by a mail, after unpacking (TNEF, forwarded messages, HEIC->JPEG).

    `accepted` is False with a `refusal` reason a reply can quote to the customer
    (e.g. "archives (ZIP) are not accepted"). `ignored` marks inline logos and
    signature images that are neither accepted nor refused.
    """

    filename: str
    declared_type: str
    sniffed_type: str | None
    size: int
    sha256: str
    content: bytes = field(repr=False)
    accepted: bool = False
    refusal: str | None = None
    refusal_code: str | None = None
    ignored: bool = False
    content_id: str | None = None
    converted_from: str | None = None


@dataclass(frozen=True)
class AuthResult:
    """One method's verdict in an Authentication-Results header (RFC 8601).

    Only as trustworthy as the server that wrote it: a sender can write such
    headers into their own mail, so `authserv_id` says who claims the verdict."""

    authserv_id: str
    """The server that wrote the header, lower-case; '' when it names none
    (Exchange Online writes none)."""
    method: str
    """dmarc, dkim, spf, arc ... (lower-case)"""
    result: str
    """pass, fail, none, softfail, temperror ... (lower-case)"""
    domain: str | None = None
    """What the verdict is about: header.from (DMARC), header.d (DKIM), the
    domain of smtp.mailfrom (SPF); lower-case."""
    header_index: int = 0
    """0 for the topmost Authentication-Results header (the last server's)."""


@dataclass(frozen=True)
class InboundEmail:
    message_id: str | None
    in_reply_to: tuple[str, ...]
    references: tuple[str, ...]
    from_address: str | None
    from_name: str | None
    to: tuple[str, ...]
    subject: str
    date: datetime | None
    text: str
    """The whole text body (HTML turned into text when there is no text part)."""
    new_text: str
    """Only what the sender wrote now: quoted history and signature removed."""
    attachments: tuple[Attachment, ...]
    headers: tuple[tuple[str, str], ...]
    """Every header, decoded, in order (names as written)."""
    parse_defects: tuple[str, ...] = ()
    """Problems met while parsing (fallback parser used, bad charset ...)."""
    auth_results: tuple[AuthResult, ...] = ()
    """Every verdict of the mail's Authentication-Results headers, topmost first."""

    def header(self, name: str) -> str | None:
        lname = name.lower()
        for k, v in self.headers:
            if k.lower() == lname:
                return v
        return None

    def header_all(self, name: str) -> tuple[str, ...]:
        lname = name.lower()
        return tuple(v for k, v in self.headers if k.lower() == lname)


@dataclass(frozen=True)
class Classification:
    kind: MailKind
    reason: str
    """Which signal decided it, e.g. 'Auto-Submitted: auto-replied' or 'DSN multipart/report'."""
    failed_recipients: tuple[str, ...] = ()
    """For bounces: the addresses the bounce says could not be reached."""
    bounced_message_id: str | None = None
    """For bounces: the Message-ID of our mail that bounced, when the DSN carries it."""
    temporary: bool = False
    """For bounces: only a delay or temporary failure (DSN "delayed", 4.x.x); the
    address may still work, so it must not be marked dead."""
