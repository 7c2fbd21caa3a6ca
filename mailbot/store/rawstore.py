"""Content-addressed storage of raw mail bytes: data_dir/raw/ab/cd/<sha256>.eml.

The ledger keeps only the path and the hash; the bytes live here so a message can
be processed again (after a crash, or by `mailbot reprocess`) without the IMAP
server. Writes are atomic (temp file, fsync, rename, fsync of the directory), so a
file that exists is complete; writing the same content twice is a no-op.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import sys
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

_POOL: ThreadPoolExecutor | None = None
_POOL_LOCK = threading.Lock()


def _pool() -> ThreadPoolExecutor:
    """One small pool for the process: creating threads per batch costs more than fsync."""
    global _POOL
    with _POOL_LOCK:
        if _POOL is None:
            _POOL = ThreadPoolExecutor(max_workers=8, thread_name_prefix="rawstore")
        return _POOL


def _load_syncfs() -> Any:
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.syncfs
    except (OSError, AttributeError):
        return None


_SYNCFS = _load_syncfs()


def _syncfs(where: Path) -> None:
    fd = os.open(where, os.O_RDONLY)
    try:
        if _SYNCFS(fd) != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"syncfs failed: {os.strerror(err)}")
    finally:
        os.close(fd)


def _fsync_dir(where: Path) -> None:
    fd = os.open(where, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def sha256_hex(raw: bytes) -> str:
    return hashlib.sha256(raw).hexdigest()


class RawStore:
    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def path_for(self, sha: str) -> Path:
        return self.root / sha[:2] / sha[2:4] / f"{sha}.eml"

    def put(self, raw: bytes, sha: str | None = None) -> tuple[str, Path]:
        """Store `raw`; return (sha256, path). Durable when it returns."""
        return self._write(raw, sha, durable=True)

    def _write(self, raw: bytes, sha: str | None, *, durable: bool) -> tuple[str, Path]:
        sha = sha or sha256_hex(raw)
        path = self.path_for(sha)
        if path.exists() and path.stat().st_size == len(raw):
            return sha, path
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            view = memoryview(raw)
            while view:
                written = os.write(fd, view)
                view = view[written:]
            if durable:
                os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
        if durable:
            # the rename itself must survive a power cut before the ledger row points here
            _fsync_dir(path.parent)
        return sha, path

    def put_many(self, raws: Sequence[bytes]) -> list[tuple[str, Path]]:
        """Store several mails; durable when it returns.

        On Linux: write and rename them all, then one syncfs() of the filesystem
        (one journal flush for the batch instead of two fsyncs per mail). Elsewhere
        the per-file fsyncs run in parallel threads, so the journal can group them.
        """
        if len(raws) <= 1:
            return [self.put(raw) for raw in raws]
        if _SYNCFS is not None:
            self.root.mkdir(parents=True, exist_ok=True)
            out = [self._write(raw, None, durable=False) for raw in raws]
            _syncfs(self.root)
            return out
        return list(_pool().map(self.put, raws))

    def get(self, path: str | Path, sha: str | None = None) -> bytes:
        """Read stored bytes; verify the hash when given (a corrupt file is an error)."""
        raw = Path(path).read_bytes()
        if sha is not None and sha256_hex(raw) != sha:
            raise ValueError(f"raw file {path} does not match its sha256")
        return raw
