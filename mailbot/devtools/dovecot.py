"""Start a private Dovecot IMAP server on a loopback port, with its config in a temp dir.

Needs Debian's `dovecot-imapd`. Dovecot's login process refuses to run as root, so
as root we run logins as `dovenull`, internal processes as `dovecot` and deliver
mail as the static user `dovecot` (first_valid_uid = 100); the Maildir is owned by
dovecot. As an ordinary user everything runs as that user.

With `tls=True` it also speaks TLS: a self-signed certificate for localhost and
127.0.0.1 (made with the `openssl` CLI) serves implicit TLS on `tls_port` and
STARTTLS on the plain `port`; clients trust it through `ca_file`.
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import ssl
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

DOVECOT = shutil.which("dovecot") or "/usr/sbin/dovecot"
DOVEADM = shutil.which("doveadm") or "/usr/bin/doveadm"
OPENSSL = shutil.which("openssl")


def available(tls: bool = False) -> str | None:
    """None when Dovecot (with TLS: and openssl) can be started here, else why not."""
    if not Path(DOVECOT).exists():
        return "dovecot is not installed (Debian package dovecot-imapd)"
    if tls and OPENSSL is None:
        return "openssl is not installed (Debian package openssl)"
    return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _wait_port(port: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5) as s:
                if s.recv(64).startswith(b"* OK"):
                    return True
        except OSError:
            time.sleep(0.05)
    return False


def _wait_tls_port(port: int, ca_file: Path, timeout: float) -> bool:
    """True once the port completes a verified TLS handshake and greets."""
    ctx = ssl.create_default_context(cafile=str(ca_file))
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with (
                socket.create_connection(("127.0.0.1", port), timeout=2) as raw,
                ctx.wrap_socket(raw, server_hostname="localhost") as s,
            ):
                if s.recv(64).startswith(b"* OK"):
                    return True
        except OSError:
            time.sleep(0.05)
    return False


@dataclass
class LocalDovecot:
    users: dict[str, str] = field(default_factory=lambda: {"claims": "secret"})
    port: int = 0
    base: Path | None = None
    tls: bool = False
    """Serve TLS too: STARTTLS on `port`, implicit TLS on `tls_port`; trust `ca_file`."""
    tls_port: int = 0
    separator: str = "/"
    """The hierarchy separator of the namespace. Dovecot's own default with Maildir
    is ".", which refuses folder names with "/" in them."""
    _started: bool = False

    def __post_init__(self) -> None:
        if self.base is None:
            # Not under pytest's tmp_path: its parents are mode 0700 and the
            # unprivileged login processes must be able to reach their sockets;
            # and unix socket paths must stay short.
            self.base = Path(tempfile.mkdtemp(prefix="mbdc-"))
        self.base.chmod(0o755)
        if not self.port:
            self.port = free_port()
        if self.tls and not self.tls_port:
            self.tls_port = free_port()

    @property
    def config_path(self) -> Path:
        assert self.base is not None
        return self.base / "dovecot.conf"

    @property
    def maildir_root(self) -> Path:
        assert self.base is not None
        return self.base / "mail"

    @property
    def ca_file(self) -> Path:
        """The self-signed server certificate, which is its own CA (with tls=True)."""
        assert self.base is not None
        return self.base / "tls" / "cert.pem"

    @property
    def key_file(self) -> Path:
        assert self.base is not None
        return self.base / "tls" / "key.pem"

    def _make_certificate(self) -> None:
        """A self-signed certificate for localhost and 127.0.0.1, made once per base dir.

        The key stays 0600 of the user starting Dovecot: its config process reads
        `ssl_key = <file` as that user (root) and hands it to the login processes.
        """
        if self.ca_file.exists() and self.key_file.exists():
            return  # a restart keeps the certificate clients already trust
        if OPENSSL is None:
            raise RuntimeError("openssl is not installed (Debian package openssl)")
        self.ca_file.parent.mkdir(mode=0o700, exist_ok=True)
        # fmt: off
        cmd = [
            OPENSSL, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "30",
            "-keyout", str(self.key_file), "-out", str(self.ca_file),
            "-subj", "/CN=localhost",
            "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
            "-addext", "basicConstraints=critical,CA:TRUE",
        ]
        # fmt: on
        proc = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, timeout=60)
        if proc.returncode != 0:
            message = proc.stderr.decode(errors="replace").strip()
            raise RuntimeError(f"openssl could not make a certificate: {message}")
        self.key_file.chmod(0o600)
        self.ca_file.chmod(0o644)

    def _ssl_config(self) -> str:
        if not self.tls:
            return "ssl = no"
        return f"ssl = yes\nssl_cert = <{self.ca_file}\nssl_key = <{self.key_file}"

    def _imaps_listener(self) -> str:
        if not self.tls:
            return "    port = 0"
        return f"    address = 127.0.0.1\n    port = {self.tls_port}\n    ssl = yes"

    def _write_config(self) -> None:
        assert self.base is not None
        root = os.geteuid() == 0
        me = pwd.getpwuid(os.geteuid()).pw_name
        owner = "dovecot" if root else me
        for sub in ("run", "state", "mail"):
            (self.base / sub).mkdir(exist_ok=True)
        (self.base / "passwd").write_text(
            "".join(f"{u}:{{PLAIN}}{p}::::::\n" for u, p in self.users.items())
        )
        if root:
            shutil.chown(self.maildir_root, owner, owner)
        login_user = "dovenull" if root else me
        internal_user = "dovecot" if root else me
        uid_gid = "uid=dovecot gid=dovecot" if root else f"uid={os.getuid()} gid={os.getgid()}"
        self.config_path.write_text(
            f"""# written by mailbot.devtools.dovecot for a throwaway test server
base_dir = {self.base}/run
state_dir = {self.base}/state
log_path = {self.base}/dovecot.log
protocols = imap
listen = 127.0.0.1
{self._ssl_config()}
disable_plaintext_auth = no
auth_mechanisms = plain login
default_login_user = {login_user}
default_internal_user = {internal_user}
first_valid_uid = 100
mail_location = maildir:{self.maildir_root}/%u
mail_fsync = never
passdb {{
  driver = passwd-file
  args = {self.base}/passwd
}}
userdb {{
  driver = static
  args = {uid_gid} home={self.maildir_root}/%u
}}
namespace inbox {{
  inbox = yes
  separator = {self.separator}
}}
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {self.port}
  }}
  inet_listener imaps {{
{self._imaps_listener()}
  }}
  process_min_avail = 1
}}
service anvil {{
  chroot =
}}
service stats {{
  unix_listener stats-reader {{
    mode = 0666
  }}
  unix_listener stats-writer {{
    mode = 0666
  }}
}}
protocol imap {{
  mail_max_userip_connections = 200
  imap_idle_notify_interval = 1 secs
}}
"""
        )

    def start(self, timeout: float = 20.0) -> LocalDovecot:
        why = available(self.tls)
        if why:
            raise RuntimeError(why)
        if self.tls:
            self._make_certificate()
        self._write_config()
        assert self.base is not None
        err_path = self.base / "start.err"
        # The daemonised master inherits our descriptors: never give it a pipe,
        # or reading the pipe waits for the server to exit.
        with open(err_path, "wb") as err:
            proc = subprocess.run(
                [DOVECOT, "-c", str(self.config_path)],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=err,
                timeout=30,
            )
        if proc.returncode != 0:
            message = err_path.read_text(errors="replace").strip()
            raise RuntimeError(f"dovecot failed to start: {message}{self._log_tail()}")
        if not _wait_port(self.port, timeout):
            self.stop()
            raise RuntimeError(f"dovecot did not answer on port {self.port}{self._log_tail()}")
        if self.tls and not _wait_tls_port(self.tls_port, self.ca_file, timeout):
            self.stop()
            raise RuntimeError(
                f"dovecot did not answer TLS on port {self.tls_port}{self._log_tail()}"
            )
        self._started = True
        return self

    def stop(self) -> None:
        if not self.config_path.exists():
            return
        subprocess.run(
            [DOVEADM, "-c", str(self.config_path), "stop"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            timeout=30,
        )
        # doveadm stop returns before the listener is gone; wait so a restart
        # on the same port does not race the old master.
        pidfile = self.base / "run" / "master.pid" if self.base else None
        deadline = time.monotonic() + 10
        while pidfile is not None and pidfile.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        self._started = False

    def restart(self) -> None:
        self.stop()
        self.start()

    def cleanup(self) -> None:
        self.stop()
        if self.base is not None:
            shutil.rmtree(self.base, ignore_errors=True)

    def _log_tail(self) -> str:
        assert self.base is not None
        log = self.base / "dovecot.log"
        if log.exists():
            return "\n" + "\n".join(log.read_text(errors="replace").splitlines()[-10:])
        return ""

    def __enter__(self) -> LocalDovecot:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.cleanup()
