"""SMTP adapter: one session to the relay, errors translated into our exception tree.

The outbox sender (mailbot.outbox) is the only user. It needs three answers from a
delivery attempt: delivered, try again later (DeliveryError: 4xx, connection lost,
timeout), or never (DeliveryRejected: 5xx). Everything smtplib-specific stays here
so the outbox can be tested with a stub transport as well as a real server.
"""

from __future__ import annotations

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
        """Deliver one mail; raises DeliveryError (retry) or DeliveryRejected (give up)."""
        if self._smtp is None:
            self._smtp = self._open()
        try:
            self._smtp.sendmail(mail_from, [rcpt], raw)
        except smtplib.SMTPRecipientsRefused as exc:
            code, message = next(iter(exc.recipients.values()))
            raise _classify(code, _text(message), recipient=True) from exc
        except smtplib.SMTPServerDisconnected as exc:
            self._drop()
            raise DeliveryError(f"connection lost: {exc}") from exc
        except smtplib.SMTPResponseException as exc:
            # SMTPSenderRefused, SMTPDataError and friends carry the server's code
            raise _classify(exc.smtp_code, _text(exc.smtp_error)) from exc
        except (smtplib.SMTPException, OSError) as exc:  # timeouts, resets, TLS errors
            self._drop()
            raise DeliveryError(f"{exc.__class__.__name__}: {exc}") from exc

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
