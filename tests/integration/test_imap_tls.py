"""IMAP over implicit TLS and STARTTLS against a real Dovecot with a self-signed certificate.

The certificate is trusted only through `imap.ca_file`, so every test that logs in
also proves the certificate and the host name (127.0.0.1, in its SAN) were
verified; without `ca_file` the system's CAs refuse it. Dovecot's log line for a
login says "TLS" only for a session that is encrypted, which proves STARTTLS
really happened before the password was sent.
"""

from __future__ import annotations

import io
import re
import subprocess
from collections.abc import Iterator
from contextlib import redirect_stdout
from dataclasses import replace
from pathlib import Path

import pytest

from mailbot.cli import check
from mailbot.cli.main import main
from mailbot.config import Settings
from mailbot.core.errors import MailboxError
from mailbot.daemon import loop
from mailbot.devtools import dovecot as dovecot_mod
from mailbot.devtools.dovecot import LocalDovecot
from mailbot.intake.mailbox import Mailbox
from tests.integration._ingest_helpers import (
    append_all,
    folder_count,
    make_factory,
    make_mail,
    make_settings,
    processing_counts,
    recording_processor,
    status_counts,
)

pytestmark = pytest.mark.integration

MODES = ("ssl", "starttls")


@pytest.fixture(scope="module")
def tls_dovecot() -> Iterator[LocalDovecot]:
    """A private Dovecot with TLS: implicit TLS on .tls_port, STARTTLS on .port."""
    why = dovecot_mod.available(tls=True)
    if why:
        pytest.skip(why)
    server = LocalDovecot(users={"claims": "secret"}, tls=True)
    server.start()
    try:
        yield server
    finally:
        server.cleanup()


def _settings(
    server: LocalDovecot, mode: str, tmp: Path, *, trust: bool = True, **imap: object
) -> Settings:
    port = server.tls_port if mode == "ssl" else server.port
    ca_file = str(server.ca_file) if trust else ""
    return make_settings(
        port, tmp / "data", f"sqlite:///{tmp / 'm.db'}", tls=mode, ca_file=ca_file, **imap
    )


def _tls_logins(server: LocalDovecot) -> int:
    """Logins Dovecot saw over an encrypted session ("TLS" in its log line)."""
    assert server.base is not None
    log = (server.base / "dovecot.log").read_text(errors="replace")
    return len(re.findall(r"imap-login: Info: Login: user=<claims>.*, TLS[,:]", log))


@pytest.mark.parametrize("mode", MODES)
def test_connect_login_fetch_with_ca_file(
    tls_dovecot: LocalDovecot, tmp_path: Path, mode: str
) -> None:
    folder = f"tls-fetch-{mode}"
    raw = make_mail(1, tag=f"fetch-{mode}")
    append_all(tls_dovecot.port, [raw], folder)
    before = _tls_logins(tls_dovecot)
    settings = _settings(tls_dovecot, mode, tmp_path)
    with Mailbox(settings.imap) as box:
        assert box.has("IDLE")
        box.select(folder)
        new = box.new_messages(0, 10)
        assert len(new) == 1
        assert box.fetch_bodies([new[0].uid]) == {new[0].uid: raw}
    assert _tls_logins(tls_dovecot) == before + 1


@pytest.mark.parametrize("mode", MODES)
def test_once_ingests_over_tls(tls_dovecot: LocalDovecot, tmp_path: Path, mode: str) -> None:
    folder = f"tls-once-{mode}"
    append_all(tls_dovecot.port, [make_mail(i, tag=f"once-{mode}") for i in range(3)], folder)
    settings = _settings(
        tls_dovecot,
        mode,
        tmp_path,
        folders=(folder,),
        processed_folder=f"{folder}-done",
        quarantine_folder=f"{folder}-quarantine",
    )
    factory = make_factory(settings.database_url)
    loop.once(settings, recording_processor(), factory=factory)
    assert status_counts(factory) == {"processed": 3}
    assert sorted(processing_counts(factory).values()) == [1, 1, 1]
    assert folder_count(tls_dovecot.port, folder) == 0
    assert folder_count(tls_dovecot.port, f"{folder}-done") == 3


@pytest.mark.parametrize("mode", MODES)
def test_untrusted_certificate_is_refused_before_login(
    tls_dovecot: LocalDovecot, tmp_path: Path, mode: str
) -> None:
    before = _tls_logins(tls_dovecot)
    settings = _settings(tls_dovecot, mode, tmp_path, trust=False)  # the system's CAs only
    with pytest.raises(MailboxError) as exc:
        Mailbox(settings.imap).connect()
    message = str(exc.value)
    assert message.startswith("IMAP connect failed")
    assert "certificate verify failed" in message and "CERTIFICATE_VERIFY_FAILED" in message
    assert _tls_logins(tls_dovecot) == before


@pytest.mark.parametrize("mode", MODES)
def test_host_name_is_verified(tls_dovecot: LocalDovecot, tmp_path: Path, mode: str) -> None:
    """The certificate names localhost and 127.0.0.1: both work, any other name is refused.

    "127.1" reaches the same server (inet_aton shorthand) under a name the certificate
    does not carry.
    """
    settings = _settings(tls_dovecot, mode, tmp_path, host="localhost")
    with Mailbox(settings.imap) as box:
        assert box.has("IDLE")
    settings = replace(settings, imap=replace(settings.imap, host="127.1"))
    with pytest.raises(MailboxError, match="Hostname mismatch"):
        Mailbox(settings.imap).connect()


def test_another_ca_is_not_trusted(tls_dovecot: LocalDovecot, tmp_path: Path) -> None:
    """Trusting some other self-signed certificate does not make this one valid."""
    other = tmp_path / "other.pem"
    subprocess.run(
        [
            *("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2"),
            *("-keyout", str(tmp_path / "other.key"), "-out", str(other)),
            *("-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"),
        ],
        check=True,
        capture_output=True,
    )
    settings = _settings(tls_dovecot, "ssl", tmp_path)
    settings = replace(settings, imap=replace(settings.imap, ca_file=str(other)))
    with pytest.raises(MailboxError, match="certificate verify failed"):
        Mailbox(settings.imap).connect()


def test_unreadable_ca_file_is_named(tls_dovecot: LocalDovecot, tmp_path: Path) -> None:
    settings = _settings(tls_dovecot, "ssl", tmp_path)
    missing = tmp_path / "no-such-ca.pem"
    settings = replace(settings, imap=replace(settings.imap, ca_file=str(missing)))
    with pytest.raises(MailboxError, match=r"ca_file .*no-such-ca\.pem"):
        Mailbox(settings.imap).connect()


def _check_imap(cfg: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[int, str]:
    """`mailbot check` with only its IMAP item (the others have their own tests)."""
    monkeypatch.setattr(check, "CHECKS", tuple(c for c in check.CHECKS if c[0] == "imap"))
    buf = io.StringIO()
    with redirect_stdout(buf):
        code = main(["--config", str(cfg), "--log-level", "ERROR", "check"])
    return code, buf.getvalue()


@pytest.mark.parametrize("mode", MODES)
def test_mailbot_check_imap_over_tls(
    tls_dovecot: LocalDovecot, tmp_path: Path, mode: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    port = tls_dovecot.tls_port if mode == "ssl" else tls_dovecot.port
    head = (
        f'[imap]\nhost = "127.0.0.1"\nport = {port}\ntls = "{mode}"\n'
        'username = "claims"\npassword = "secret"\ntimeout_seconds = 5.0\n'
    )
    tail = f'[paths]\ndata_dir = "{tmp_path / "data"}"\n'
    trusted, untrusted = tmp_path / "trusted.toml", tmp_path / "untrusted.toml"
    trusted.write_text(head + f'ca_file = "{tls_dovecot.ca_file}"\n' + tail)
    untrusted.write_text(head + tail)

    code, out = _check_imap(trusted, monkeypatch)
    assert code == 0 and out.startswith(f"OK   imap       logged in to 127.0.0.1:{port}, IDLE")

    code, out = _check_imap(untrusted, monkeypatch)
    assert code == 1
    assert out.startswith(f"FAIL imap       127.0.0.1:{port}: IMAP connect failed")
    assert "certificate verify failed" in out
