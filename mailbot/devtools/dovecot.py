"""Start a private Dovecot IMAP server on a loopback port, with its config in a temp dir.

Needs Debian's `dovecot-imapd`. Dovecot's login process refuses to run as root, so
as root we run logins as `dovenull`, internal processes as `dovecot` and deliver
mail as the static user `dovecot` (first_valid_uid = 100); the Maildir is owned by
dovecot. As an ordinary user everything runs as that user.
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

DOVECOT = shutil.which("dovecot") or "/usr/sbin/dovecot"
DOVEADM = shutil.which("doveadm") or "/usr/bin/doveadm"


def available() -> str | None:
    """None when Dovecot can be started here, else why not."""
    if not Path(DOVECOT).exists():
        return "dovecot is not installed (Debian package dovecot-imapd)"
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


@dataclass
class LocalDovecot:
    users: dict[str, str] = field(default_factory=lambda: {"claims": "secret"})
    port: int = 0
    base: Path | None = None
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

    @property
    def config_path(self) -> Path:
        assert self.base is not None
        return self.base / "dovecot.conf"

    @property
    def maildir_root(self) -> Path:
        assert self.base is not None
        return self.base / "mail"

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
ssl = no
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
  separator = /
}}
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {self.port}
  }}
  inet_listener imaps {{
    port = 0
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
        why = available()
        if why:
            raise RuntimeError(why)
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
