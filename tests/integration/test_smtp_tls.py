"""The SMTP adapter over STARTTLS and implicit TLS with AUTH, against aiosmtpd.

The server refuses MAIL FROM before STARTTLS and before a login, so a delivered
mail proves both happened. Certificates are verified: an untrusted one defers.
"""

from __future__ import annotations

import shutil
import ssl
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from mailbot.config import SmtpSettings
from mailbot.devtools.dovecot import free_port
from mailbot.outbound.delivery import deliver_pending
from mailbot.outbound.smtp import SmtpTransport, check_smtp
from mailbot.services.outbox import queue_reply
from mailbot.store import db
from mailbot.store.models import Outbox

pytestmark = [
    pytest.mark.integration,
    # implicit TLS: aiosmtpd cannot tell the session is encrypted and warns about AUTH
    pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS:UserWarning"),
]

T0 = datetime(2023, 1, 20, 10, 0, tzinfo=UTC)
USER, PASSWORD = "mailbot", "s3cret"


@dataclass
class _Handler:
    received: list[bytes] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        with self.lock:
            self.received.append(bytes(envelope.original_content or envelope.content))
        return "250 OK"


def _auth(server: Any, session: Any, envelope: Any, mechanism: str, data: Any) -> Any:
    from aiosmtpd.smtp import AuthResult, LoginPassword

    ok = isinstance(data, LoginPassword) and (data.login, data.password) == (
        USER.encode(),
        PASSWORD.encode(),
    )
    # handled=False: let aiosmtpd answer 535 itself (True means we already replied)
    return AuthResult(success=ok, handled=False)


@pytest.fixture(scope="module")
def cert(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed")
    d = tmp_path_factory.mktemp("tls")
    key, crt = d / "key.pem", d / "cert.pem"
    subprocess.run(
        [
            *("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2"),
            *("-keyout", str(key), "-out", str(crt), "-subj", "/CN=localhost"),
            *("-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"),
        ],
        check=True,
        capture_output=True,
    )
    return crt, key


def _server_context(cert: tuple[Path, Path]) -> ssl.SSLContext:
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(str(cert[0]), str(cert[1]))
    return ctx


def _trusting(cert: tuple[Path, Path]) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(cert[0]))


@pytest.fixture(params=["starttls", "ssl"])
def server(
    request: pytest.FixtureRequest, cert: tuple[Path, Path]
) -> Iterator[tuple[str, int, _Handler]]:
    from aiosmtpd.controller import Controller

    handler = _Handler()
    port = free_port()
    kwargs: dict[str, Any] = {
        "authenticator": _auth,
        "auth_required": True,
        "auth_require_tls": True,
    }
    if request.param == "starttls":
        kwargs |= {"tls_context": _server_context(cert), "require_starttls": True}
    else:
        # aiosmtpd does not see implicit TLS as TLS for its AUTH-needs-TLS rule
        kwargs |= {"ssl_context": _server_context(cert), "auth_require_tls": False}
    controller = Controller(handler, hostname="127.0.0.1", port=port, **kwargs)
    controller.start()
    try:
        yield request.param, port, handler
    finally:
        controller.stop()


def _settings(mode: str, port: int, password: str = PASSWORD) -> SmtpSettings:
    return SmtpSettings(
        host="127.0.0.1",
        port=port,
        tls=mode,
        username=USER,
        password=password,
        from_address="claims@brand.example",
        timeout_seconds=5,
    )


def _queued(tmp_path: Path, smtp: SmtpSettings) -> sessionmaker[Session]:
    from mailbot.config import Settings

    engine = db.make_engine(f"sqlite:///{tmp_path / 'tls.db'}")
    db.upgrade(engine)
    factory = db.session_factory(engine)
    with db.transaction(factory) as s:
        queue_reply(
            s,
            template="rma_policy",
            language="en",
            context={
                "name": "",
                "rma_number": None,
                "status": "unknown",
                "valid_days": 14,
                "expired_on": None,
            },
            to_addr="per@example.no",
            event_id=None,
            now=T0,
            settings=Settings(smtp=smtp),
        )
    return factory


def test_delivers_over_tls_with_login(
    tmp_path: Path, server: tuple[str, int, _Handler], cert: tuple[Path, Path]
) -> None:
    mode, port, handler = server
    smtp = _settings(mode, port)
    factory = _queued(tmp_path, smtp)
    stats = deliver_pending(factory, smtp, T0, transport=SmtpTransport(smtp, _trusting(cert)))
    assert stats.sent == 1, _rows(factory)
    assert len(handler.received) == 1 and b"Auto-Submitted: auto-replied" in handler.received[0]


def test_wrong_password_defers_and_does_not_fail_the_mail(
    tmp_path: Path, server: tuple[str, int, _Handler], cert: tuple[Path, Path]
) -> None:
    mode, port, handler = server
    smtp = _settings(mode, port, password="wrong")
    factory = _queued(tmp_path, smtp)
    stats = deliver_pending(factory, smtp, T0, transport=SmtpTransport(smtp, _trusting(cert)))
    assert (stats.sent, stats.deferred, stats.failed) == (0, 1, 0)
    [row] = _rows(factory)
    assert row.status == "queued" and "login refused" in (row.last_error or "")
    assert handler.received == []


def test_an_untrusted_certificate_is_refused(
    tmp_path: Path, server: tuple[str, int, _Handler]
) -> None:
    mode, port, handler = server
    smtp = _settings(mode, port)
    factory = _queued(tmp_path, smtp)
    assert deliver_pending(factory, smtp, T0).deferred == 1  # system CAs only
    [row] = _rows(factory)
    assert "CERTIFICATE_VERIFY_FAILED" in (row.last_error or "")
    assert handler.received == []
    assert "CERTIFICATE_VERIFY_FAILED" in (check_smtp(smtp) or "")


def _rows(factory: sessionmaker[Session]) -> list[Outbox]:
    with factory() as s:
        return list(s.scalars(select(Outbox)))
