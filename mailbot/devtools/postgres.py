"""Start a private PostgreSQL cluster on a loopback port, its data in a temp dir.

For tests and benchmarks that stop or restart the server under running daemons: the
machine's shared server on 5432 is left alone (other clients would lose their
connections). Needs the PostgreSQL server binaries (`initdb`, `pg_ctl`; Debian's
`postgresql` package puts them in /usr/lib/postgresql/<version>/bin). The cluster
trusts every local connection (user `postgres`, no password), listens on 127.0.0.1
only, and trades durability for speed (no fsync): it is thrown away afterwards.

PostgreSQL refuses to run as root, so as root the cluster belongs to the `postgres`
system user and every server command runs through `runuser -u postgres`; as an
ordinary user everything runs as that user.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from mailbot.devtools.dovecot import free_port

_BINARIES = ("initdb", "pg_ctl")
# Throwaway cluster: durability is not wanted, speed is; room for several daemons'
# pools at once.
_SETTINGS = {
    "listen_addresses": "'127.0.0.1'",
    "max_connections": "200",
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "log_min_messages": "warning",
}


def bin_dir() -> Path | None:
    """The directory holding initdb and pg_ctl: the newest installed version under
    /usr/lib/postgresql, else wherever PATH finds them."""
    versions = sorted(
        Path("/usr/lib/postgresql").glob("*/bin"),
        key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0,
    )
    for d in reversed(versions):
        if all((d / b).exists() for b in _BINARIES):
            return d
    found = [shutil.which(b) for b in _BINARIES]
    if all(found):
        return Path(os.path.realpath(str(found[0]))).parent
    return None


def available() -> str | None:
    """None when a private cluster can be started here, else why not."""
    if bin_dir() is None:
        return "the PostgreSQL server (initdb, pg_ctl) is not installed (Debian package postgresql)"
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            return "running as root, and there is no `postgres` user to run the server as"
        if shutil.which("runuser") is None:
            return "running as root, and `runuser` (util-linux) is not installed"
    return None


@dataclass
class LocalPostgres:
    """A throwaway cluster: `start()` (initdb on first start), `stop()`, `restart()`,
    `cleanup()`; `url` for a database on it (`postgres` unless `database` is given)."""

    port: int = 0
    base: Path | None = None
    database: str = "test"
    _started: bool = False

    def __post_init__(self) -> None:
        if self.base is None:
            # Not under pytest's tmp_path: its parents are 0700, which the server user
            # cannot traverse; and the unix socket path must stay short.
            self.base = Path(tempfile.mkdtemp(prefix="mbpg-"))
        if not self.port:
            self.port = free_port()

    @property
    def data_dir(self) -> Path:
        assert self.base is not None
        return self.base / "data"

    @property
    def log_path(self) -> Path:
        assert self.base is not None
        return self.base / "server.log"

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{self.database}"

    @property
    def running(self) -> bool:
        return self._started

    def _run(self, tool: str, *args: str, timeout: float = 120) -> None:
        where = bin_dir()
        if where is None:
            raise RuntimeError(str(available()))
        cmd = [str(where / tool), *args]
        if os.geteuid() == 0:
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        assert self.base is not None
        err_path = self.base / f"{tool}.err"
        # pg_ctl's server inherits our descriptors: never a pipe, or reading it would
        # wait for the server to exit.
        with open(err_path, "wb") as err:
            proc = subprocess.run(
                cmd,
                cwd=self.base,
                stdin=subprocess.DEVNULL,
                stdout=err,
                stderr=subprocess.STDOUT,
                timeout=timeout,
            )
        if proc.returncode != 0:
            out = err_path.read_text(errors="replace").strip()
            raise RuntimeError(f"{tool} {' '.join(args[:1])} failed: {out}{self._log_tail()}")

    def _initdb(self) -> None:
        assert self.base is not None
        self.base.chmod(0o755)
        if os.geteuid() == 0:
            shutil.chown(self.base, "postgres", "postgres")
        self._run(
            "initdb", "-D", str(self.data_dir), "-U", "postgres", "-A", "trust",
            "-E", "UTF8", "--locale=C", "--no-sync", "--no-instructions",
        )  # fmt: skip
        conf = self.data_dir / "postgresql.conf"
        extra = {**_SETTINGS, "port": str(self.port), "unix_socket_directories": f"'{self.base}'"}
        with conf.open("a") as f:
            f.write("\n# a throwaway test cluster (mailbot.devtools.postgres)\n")
            f.writelines(f"{k} = {v}\n" for k, v in extra.items())

    def start(self, timeout: float = 60.0) -> LocalPostgres:
        why = available()
        if why:
            raise RuntimeError(why)
        fresh = not (self.data_dir / "PG_VERSION").exists()
        if fresh:
            self._initdb()
        self._run(
            "pg_ctl", "start", "-D", str(self.data_dir), "-l", str(self.log_path),
            "-w", "-t", str(int(timeout)),
            timeout=timeout + 10,
        )  # fmt: skip
        self._started = True
        if fresh and self.database != "postgres":
            self._create_database(self.database)
        return self

    def _create_database(self, name: str) -> None:
        import psycopg  # the `postgres` extra

        admin = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')

    def stop(self, mode: str = "fast") -> None:
        """Stop the server: `fast` ends every session at once (clients see their
        connections closed), `immediate` is a crash without a checkpoint."""
        if not (self.data_dir / "postmaster.pid").exists():
            self._started = False
            return
        self._run("pg_ctl", "stop", "-D", str(self.data_dir), "-m", mode, "-w", "-t", "60")
        self._started = False

    def restart(self, mode: str = "fast") -> None:
        """Stop (every client loses its connections) and start again on the same port."""
        self.stop(mode)
        self.start()

    def cleanup(self) -> None:
        try:
            self.stop("immediate")
        finally:
            if self.base is not None:
                shutil.rmtree(self.base, ignore_errors=True)

    def _log_tail(self) -> str:
        if self.log_path.exists():
            lines = self.log_path.read_text(errors="replace").splitlines()[-10:]
            return "\n" + "\n".join(lines)
        return ""

    def __enter__(self) -> LocalPostgres:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.cleanup()
