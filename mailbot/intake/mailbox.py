"""Thin IMAP adapter over imapclient: the only module that speaks IMAP.

It connects (implicit TLS, STARTTLS, or plain when configured), logs in with a
password or XOAUTH2, reads a folder's UIDVALIDITY/UIDNEXT, lists new UIDs with
their sizes, downloads bodies without setting \\Seen, moves or flags messages,
and waits with IDLE. Every library or socket failure is translated into
`MailboxError`, so callers have one transient error to back off on. No SEARCH is
used anywhere: charset-dependent SEARCH is a classic source of server errors.
"""

from __future__ import annotations

import logging
import shlex
import ssl
import subprocess
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from imapclient import IMAPClient
from imapclient.exceptions import IMAPClientError, LoginError
from imapclient.imapclient import SocketTimeout
from imapclient.response_parser import parse_fetch_response

from mailbot.config import ImapSettings
from mailbot.core.errors import MailboxError

log = logging.getLogger(__name__)

PROCESSED_KEYWORD = "$MailbotProcessed"
# RFC 2177: servers may drop an IDLE after 30 minutes; re-issue well before that.
IDLE_REISSUE_SECONDS = 25 * 60

# What a broken connection looks like from imapclient/imaplib/ssl.
NETWORK_ERRORS: tuple[type[BaseException], ...] = (
    IMAPClientError,
    OSError,  # socket.timeout, ConnectionError, ssl.SSLError are all OSErrors
    EOFError,
)


@dataclass(frozen=True)
class FolderStatus:
    uidvalidity: int
    uidnext: int
    messages: int


@dataclass(frozen=True)
class NewMessage:
    uid: int
    size: int


class TokenSource:
    """The XOAUTH2 access token: from a command's stdout or a file, cached until refused."""

    def __init__(self, command: str = "", path: str = "", timeout: float = 30.0) -> None:
        self.command = command
        self.path = path
        self.timeout = timeout
        self._token: str | None = None

    @property
    def configured(self) -> bool:
        return bool(self.command or self.path)

    def get(self, *, refresh: bool = False) -> str:
        if self._token is None or refresh:
            self._token = self._read()
        return self._token

    def _read(self) -> str:
        if self.command:
            try:
                proc = subprocess.run(
                    shlex.split(self.command),
                    capture_output=True,
                    text=True,
                    timeout=self.timeout,
                    check=False,
                )
            except (OSError, subprocess.TimeoutExpired) as exc:
                raise MailboxError(f"oauth2 token command failed: {exc}") from exc
            if proc.returncode != 0:
                raise MailboxError(f"oauth2 token command exited {proc.returncode}")
            token = proc.stdout.strip()
        else:
            try:
                token = Path(self.path).expanduser().read_text(encoding="utf-8").strip()
            except OSError as exc:
                raise MailboxError(f"oauth2 token file unreadable: {exc}") from exc
        if not token:
            raise MailboxError("oauth2 token source gave an empty token")
        return token


@contextmanager
def _translated(what: str) -> Iterator[None]:
    """Turn any network/library failure into MailboxError naming the operation."""
    try:
        yield
    except MailboxError:
        raise
    except NETWORK_ERRORS as exc:
        raise MailboxError(f"IMAP {what} failed: {exc.__class__.__name__}: {exc}") from exc


def _uid_set(uids: Sequence[int]) -> str:
    """Compact IMAP sequence set: 1,2,3,7 -> '1:3,7' (keeps command lines short)."""
    parts: list[str] = []
    ordered = sorted(set(uids))
    i = 0
    while i < len(ordered):
        j = i
        while j + 1 < len(ordered) and ordered[j + 1] == ordered[j] + 1:
            j += 1
        parts.append(str(ordered[i]) if i == j else f"{ordered[i]}:{ordered[j]}")
        i = j + 1
    return ",".join(parts)


class Mailbox:
    """One IMAP connection. Use as a context manager: connects and logs in on enter."""

    def __init__(
        self,
        settings: ImapSettings,
        *,
        tokens: TokenSource | None = None,
        client_factory: Callable[..., Any] = IMAPClient,
    ) -> None:
        self.settings = settings
        self.tokens = tokens or TokenSource(
            settings.oauth2_token_command, settings.oauth2_token_file, settings.timeout_seconds
        )
        self._client_factory = client_factory
        self._client: Any = None
        self._caps: frozenset[str] = frozenset()
        self._selected: str | None = None
        self._known_folders: set[str] = set()
        self._delimiter: tuple[str | None] | None = None

    # -- connection -------------------------------------------------------------

    @property
    def client(self) -> Any:
        if self._client is None:
            raise MailboxError("not connected")
        return self._client

    def connect(self) -> Mailbox:
        s = self.settings
        timeout = SocketTimeout(connect=s.timeout_seconds, read=s.timeout_seconds)
        try:
            # cafile=None: the system's CAs; either way certificate and host name are verified
            ctx = ssl.create_default_context(cafile=s.ca_file or None)
        except OSError as exc:  # missing file, or no certificate in it (ssl.SSLError)
            raise MailboxError(f"IMAP ca_file {s.ca_file!r} unusable: {exc}") from exc
        with _translated("connect"):
            client = self._client_factory(
                s.host, port=s.port, ssl=s.tls == "ssl", ssl_context=ctx, timeout=timeout
            )
            self._client = client
            if s.tls == "starttls":
                client.starttls(ctx)
        self._login()
        with _translated("capability"):
            self._caps = frozenset(
                c.decode().upper() if isinstance(c, bytes) else str(c).upper()
                for c in self.client.capabilities()
            )
        log.info("imap connected", extra={"host": s.host, "tls": s.tls, "idle": self.has("IDLE")})
        return self

    def _login(self) -> None:
        s = self.settings
        if not self.tokens.configured:
            with _translated("login"):
                self.client.login(s.username, s.password)
            return
        # A refused token is most often an expired one: fetch a fresh one and retry once.
        for refresh in (False, True):
            token = self.tokens.get(refresh=refresh)
            try:
                with _translated("oauth2 login"):
                    self.client.oauth2_login(s.username, token)
                return
            except MailboxError as exc:
                if not isinstance(exc.__cause__, LoginError) or refresh:
                    raise
                log.warning("oauth2 token refused, refreshing")

    def close(self) -> None:
        client, self._client = self._client, None
        self._selected = None
        if client is None:
            return
        try:
            client.logout()
        except Exception:  # closing a dead connection: nothing left to do
            try:
                client.shutdown()
            except Exception:
                pass

    def __enter__(self) -> Mailbox:
        return self.connect()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def has(self, capability: str) -> bool:
        return capability.upper() in self._caps

    # -- folders ----------------------------------------------------------------
    # Configured folder names use "/" for hierarchy (`mailbot/processed`); servers
    # differ (Gmail and Microsoft 365 use "/", Dovecot's Maildir default and Courier
    # ".", which refuse a "/" in a name), so every name is spelled the server's way
    # before it goes on the wire. The ledger keeps the configured spelling.

    @property
    def delimiter(self) -> str | None:
        """The server's hierarchy delimiter (LIST "" ""), asked once; None: flat names."""
        if self._delimiter is None:
            with _translated("list delimiter"):
                listed = self.client.list_folders("", "")
            raw = listed[0][1] if listed else None
            delim = raw.decode() if isinstance(raw, bytes) else raw
            self._delimiter = (delim or None,)
        return self._delimiter[0]

    def server_name(self, folder: str) -> str:
        """`folder` as this server spells it: "/" becomes the server's delimiter."""
        delim = self.delimiter if "/" in folder else None
        return folder.replace("/", delim) if delim else folder

    def folder_exists(self, folder: str) -> bool:
        with _translated("list folder"):
            return bool(self.client.folder_exists(self.server_name(folder)))

    def ensure_folder(self, name: str) -> bool:
        """Create the folder unless it exists; True when it was created now."""
        if name in self._known_folders:
            return False
        created = False
        wire = self.server_name(name)
        with _translated(f"create folder {wire!r}"):
            if not self.client.folder_exists(wire):
                try:
                    self.client.create_folder(wire)
                    created = True
                except IMAPClientError:
                    # a concurrent creator (or a server that auto-created it) wins
                    if not self.client.folder_exists(wire):
                        raise
                log.info("imap folder created", extra={"folder": wire})
        self._known_folders.add(name)
        return created

    def status(self, folder: str) -> FolderStatus:
        """UIDVALIDITY/UIDNEXT without selecting: the cheap "anything new?" check."""
        with _translated("status"):
            st = self.client.folder_status(
                self.server_name(folder), ["UIDVALIDITY", "UIDNEXT", "MESSAGES"]
            )
        return FolderStatus(
            int(st[b"UIDVALIDITY"]), int(st[b"UIDNEXT"]), int(st.get(b"MESSAGES", 0))
        )

    def select(self, folder: str) -> FolderStatus:
        with _translated("select"):
            info = self.client.select_folder(self.server_name(folder))
        self._selected = folder
        uidnext = int(info.get(b"UIDNEXT", 0))
        return FolderStatus(int(info[b"UIDVALIDITY"]), uidnext, int(info.get(b"EXISTS", 0)))

    # -- reading ----------------------------------------------------------------

    def new_messages(self, after_uid: int, limit: int) -> list[NewMessage]:
        """UIDs above `after_uid` (selected folder) with their sizes, at most `limit`.

        Asks for the window `after+1:after+limit` first, so a large backlog is read in
        bounded pieces instead of listing every remaining size on each batch; only
        when that window is empty (nothing new, or a gap in the UIDs) is the open
        range `after+1:*` used. That range always returns the highest message even
        when it is below after+1, hence the filter. Only UIDs and sizes travel here.
        """
        found = self._sizes(f"{after_uid + 1}:{after_uid + limit}", after_uid)
        if not found:
            found = self._sizes(f"{after_uid + 1}:*", after_uid)
        return found[:limit]

    def _sizes(self, uid_range: str, after_uid: int) -> list[NewMessage]:
        with _translated("fetch sizes"):
            # imapclient's fetch() only takes explicit UIDs; a range goes through
            # imaplib and imapclient's own response parser.
            typ, raw = self.client._imap.uid("FETCH", uid_range, "(RFC822.SIZE)")
            if typ != "OK":
                raise MailboxError(f"IMAP fetch sizes refused: {raw!r}")
            data = parse_fetch_response([r for r in raw if r is not None], True, True)
        found = [
            NewMessage(int(uid), int(item.get(b"RFC822.SIZE", 0)))
            for uid, item in data.items()
            if int(uid) > after_uid
        ]
        found.sort(key=lambda m: m.uid)
        return found

    def _fetch(self, uids: Sequence[int], item: str, what: str) -> dict[Any, Any]:
        """imapclient's answer to FETCH `item` for these UIDs (each once; none: empty)."""
        if not uids:
            return {}
        with _translated(what):
            data: dict[Any, Any] = self.client.fetch(sorted(set(uids)), [item])
        return data

    def fetch_bodies(self, uids: Sequence[int]) -> dict[int, bytes]:
        """Raw bytes of each message (BODY.PEEK: does not set \\Seen)."""
        data = self._fetch(uids, "BODY.PEEK[]", "fetch bodies")
        out: dict[int, bytes] = {}
        for uid, item in data.items():
            body = item.get(b"BODY[]")
            if body is not None:
                out[int(uid)] = bytes(body)
        return out

    def fetch_message_ids(self, uids: Sequence[int]) -> dict[int, str]:
        """Only the Message-ID header (for oversized mail whose body we never download)."""
        data = self._fetch(uids, "BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)]", "fetch headers")
        out: dict[int, str] = {}
        for uid, item in data.items():
            raw = next((v for k, v in item.items() if k.startswith(b"BODY[HEADER")), b"")
            text = bytes(raw or b"").decode("ascii", "replace")
            _, _, value = text.partition(":")
            if value.strip():
                out[int(uid)] = " ".join(value.split())
        return out

    # -- acting -----------------------------------------------------------------

    def move(self, uids: Sequence[int], target: str) -> None:
        """Move from the selected folder: MOVE when offered, else COPY + \\Deleted + UID EXPUNGE."""
        if not uids:
            return
        self.ensure_folder(target)
        try:
            self._move(_uid_set(uids), self.server_name(target))
        except MailboxError:
            # maybe the folder was deleted under us: check (and create) it again next time
            self._known_folders.discard(target)
            raise

    def _move(self, uid_set: str, target: str) -> None:
        with _translated("move"):
            if self.has("MOVE"):
                self.client.move(uid_set, target)
                return
            self.client.copy(uid_set, target)
            self.client.add_flags(uid_set, [b"\\Deleted"], silent=True)
            if self.has("UIDPLUS"):
                self.client.uid_expunge(uid_set)
            else:
                # Without UIDPLUS, a plain EXPUNGE would also remove mail another client
                # marked deleted; accepted as the server's limitation.
                self.client.expunge()

    def flag(self, uids: Sequence[int]) -> None:
        if not uids:
            return
        with _translated("flag"):
            self.client.add_flags(
                _uid_set(uids), [b"\\Seen", PROCESSED_KEYWORD.encode()], silent=True
            )

    def noop(self) -> None:
        with _translated("noop"):
            self.client.noop()

    def idle_wait(self, seconds: float, should_stop: Callable[[], bool]) -> bool:
        """IDLE on the selected folder up to `seconds`; True when the server reported news.

        Checks `should_stop` about once a second so SIGTERM is honoured promptly;
        each wait is a blocking socket read with a timeout, never a busy loop.
        """
        seconds = min(seconds, IDLE_REISSUE_SECONDS)
        deadline = time.monotonic() + seconds
        news = False
        with _translated("idle"):
            self.client.idle()
            try:
                while not should_stop():
                    left = deadline - time.monotonic()
                    if left <= 0:
                        break
                    responses = self.client.idle_check(timeout=min(1.0, left))
                    if any(
                        len(r) > 1 and r[1] in (b"EXISTS", b"RECENT")
                        for r in responses
                        if isinstance(r, tuple)
                    ):
                        news = True
                        break
            finally:
                self.client.idle_done()
        return news
