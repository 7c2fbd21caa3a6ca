"""SMTP adapter: one session to the relay, errors translated into our exception tree.

The outbox sender (mailbot.outbound.delivery) is the only user. It needs four answers from a
delivery attempt: delivered (250), try again later (DeliveryError: 4xx, or the
connection failed before the whole message was handed over), never
(DeliveryRejected: 5xx), or unknown (DeliveryUnconfirmed: the whole message went
to the relay and its final answer never came, so the relay may have accepted it).
Everything smtplib-specific stays here so the outbox can be tested with a stub
transport as well as a real server.
"""

from __future__ import annotations

import re
import smtplib
import ssl
from typing import Protocol

from mailbot.config import SmtpSettings
from mailbot.core.errors import DeliveryError, DeliveryRejected


class SmtpConnectError(DeliveryError):
    """The relay could not be reached, TLS failed or it refused our login.

    Not the message's fault: the sender stops the batch and tries again later.
    """


class RecipientRejected(DeliveryRejected):
    """The relay refused the recipient address itself (5xx to RCPT TO)."""


class DeliveryUnconfirmed(DeliveryError):
    """The message was handed over whole (the final "." sent) but no answer came: the
    connection dropped, or the relay took longer than the timeout to answer.

    Not a plain temporary failure: the relay may have accepted the mail, so sending
    it again may deliver it twice. The sender flags the row instead of retrying.
    """


# The lines of a message that start with "." get a second one (RFC 5321 4.5.2).
# smtplib.sendmail does this too, but it does not tell whether the connection died
# before or after the message was handed over, which is the difference between
# "retry" and "maybe delivered"; so the SMTP transaction is spelled out below.
_LEADING_DOT = re.compile(rb"(?m)^\.")


class Transport(Protocol):
    def send(self, mail_from: str, rcpt: str, raw: bytes) -> None: ...

    def close(self) -> None: ...


def _text(error: bytes | str) -> str:
    if isinstance(error, bytes):
        return error.decode("utf-8", "replace")
    return str(error)


def _classify(
    code: int, message: str, *, recipient: bool = False
) -> DeliveryError | DeliveryRejected:
    text = f"{code} {message}".strip()
    if 500 <= code < 600:
        return RecipientRejected(text) if recipient else DeliveryRejected(text)
    return DeliveryError(text)


class SmtpTransport:
    """One SMTP session opened on first use and reused for a batch of mails.

    tls: "ssl" (implicit TLS, port 465), "starttls" (port 587) or "none" (local
    relay, tests). Logs in only when a username is set.
    """

    def __init__(self, settings: SmtpSettings, context: ssl.SSLContext | None = None) -> None:
        self.settings = settings
        # Certificates are verified against the system's CAs, or settings.ca_file when set;
        # tests may pass their own context.
        self.context = context
        self._smtp: smtplib.SMTP | None = None

    def _open(self) -> smtplib.SMTP:
        s = self.settings
        if self.context is None and s.tls != "none":
            try:
                # cafile=None: the system's CAs; certificate and host name are verified either way
                self.context = ssl.create_default_context(cafile=s.ca_file or None)
            except OSError as exc:  # missing file, or no certificate in it (ssl.SSLError)
                raise SmtpConnectError(f"SMTP ca_file {s.ca_file!r} unusable: {exc}") from exc
        context = self.context
        try:
            smtp: smtplib.SMTP
            if s.tls == "ssl":
                smtp = smtplib.SMTP_SSL(s.host, s.port, timeout=s.timeout_seconds, context=context)
            else:
                smtp = smtplib.SMTP(s.host, s.port, timeout=s.timeout_seconds)
            smtp.ehlo()
            if s.tls == "starttls":
                smtp.starttls(context=context)
                smtp.ehlo()
            if s.username:
                smtp.login(s.username, s.password)
        except smtplib.SMTPAuthenticationError as exc:
            raise SmtpConnectError(
                f"login refused: {exc.smtp_code} {_text(exc.smtp_error)}"
            ) from exc
        except (smtplib.SMTPException, OSError) as exc:
            raise SmtpConnectError(
                f"cannot connect to {s.host}:{s.port} ({s.tls}): {exc.__class__.__name__}: {exc}"
            ) from exc
        return smtp

    def send(self, mail_from: str, rcpt: str, raw: bytes) -> None:
        """Deliver one mail; raises DeliveryError (retry), DeliveryRejected (give up)
        or DeliveryUnconfirmed (handed over, no answer: maybe delivered)."""
        if self._smtp is None:
            self._smtp = self._open()
        smtp = self._smtp
        handed_over = False
        try:
            self._envelope(smtp, mail_from, rcpt, len(raw))
            code, reply = smtp.docmd("DATA")
            if code != 354:
                raise smtplib.SMTPDataError(code, reply)
            data = _LEADING_DOT.sub(b"..", raw)
            if not data.endswith(b"\r\n"):
                data += b"\r\n"
            smtp.send(data + b".\r\n")
            handed_over = True
            code, reply = smtp.getreply()
            if code != 250 and not 400 <= code < 600:  # garbled: as good as no answer
                raise smtplib.SMTPServerDisconnected(f"unreadable final reply {code}")
            if code != 250:
                raise smtplib.SMTPDataError(code, reply)
        except smtplib.SMTPRecipientsRefused as exc:
            self._reset(smtp)
            code, message = next(iter(exc.recipients.values()))
            raise _classify(code, _text(message), recipient=True) from exc
        except smtplib.SMTPResponseException as exc:
            # SMTPSenderRefused, SMTPDataError and friends carry the server's code
            if exc.smtp_code == 421:
                self._drop()
            else:
                self._reset(smtp)
            raise _classify(exc.smtp_code, _text(exc.smtp_error)) from exc
        except (smtplib.SMTPException, OSError) as exc:  # lost connection, timeout, TLS
            self._drop()
            what = f"{exc.__class__.__name__}: {exc}"
            if handed_over:
                raise DeliveryUnconfirmed(f"no answer after the message was sent: {what}") from exc
            if isinstance(exc, smtplib.SMTPServerDisconnected):
                raise DeliveryError(f"connection lost: {exc}") from exc
            raise DeliveryError(what) from exc

    @staticmethod
    def _envelope(smtp: smtplib.SMTP, mail_from: str, rcpt: str, size: int) -> None:
        """MAIL FROM and RCPT TO, as smtplib.sendmail sends them."""
        smtp.ehlo_or_helo_if_needed()
        options = [f"size={size}"] if smtp.does_esmtp and smtp.has_extn("size") else []
        code, reply = smtp.mail(mail_from, options)
        if code != 250:
            raise smtplib.SMTPSenderRefused(code, reply, mail_from)
        code, reply = smtp.rcpt(rcpt)
        if code not in (250, 251):
            raise smtplib.SMTPRecipientsRefused({rcpt: (code, reply)})

    def _reset(self, smtp: smtplib.SMTP) -> None:
        """End a refused transaction so the session can carry the next mail."""
        try:
            smtp.rset()
        except (smtplib.SMTPException, OSError):
            self._drop()

    def _drop(self) -> None:
        smtp, self._smtp = self._smtp, None
        if smtp is not None:
            try:
                smtp.close()
            except OSError:
                pass

    def close(self) -> None:
        smtp, self._smtp = self._smtp, None
        if smtp is None:
            return
        try:
            smtp.quit()
        except (smtplib.SMTPException, OSError):
            smtp.close()


def check_smtp(settings: SmtpSettings) -> str | None:
    """None when the relay greets us (and accepts the login), else what went wrong."""
    transport = SmtpTransport(settings)
    try:
        transport._smtp = transport._open()
        code, _ = transport._smtp.noop()
        if code != 250:
            return f"NOOP answered {code}"
    except SmtpConnectError as exc:
        return str(exc)
    except (smtplib.SMTPException, OSError) as exc:
        return f"{exc.__class__.__name__}: {exc}"
    finally:
        transport.close()
    return None
