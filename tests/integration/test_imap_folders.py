"""Folder names on servers with different hierarchy delimiters, and what `check` says.

Configured names use "/" (`mailbot/processed`); Dovecot's Maildir default
separator is ".", which refuses "/" in a name. Both layouts run against a real
Dovecot here.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from contextlib import redirect_stdout
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from mailbot.cli.main import main
from mailbot.daemon import loop
from mailbot.devtools import dovecot as dovecot_mod
from mailbot.devtools.dovecot import LocalDovecot
from mailbot.devtools.smtpsink import SmtpSink
from mailbot.store.db import transaction
from mailbot.store.models import Message
from tests.integration._ingest_helpers import (
    RAISE_MARK,
    append_all,
    folder_count,
    make_factory,
    make_mail,
    make_settings,
    recording_processor,
)


@pytest.fixture(params=[".", "/"], ids=["dot", "slash"])
def any_dovecot(request: pytest.FixtureRequest) -> Iterator[LocalDovecot]:
    why = dovecot_mod.available()
    if why:
        pytest.skip(why)
    server = LocalDovecot(separator=request.param).start()
    try:
        yield server
    finally:
        server.cleanup()


def test_default_folders_work_whatever_the_delimiter(
    any_dovecot: LocalDovecot, tmp_path: Path, sqlite_url: str
) -> None:
    sep = any_dovecot.separator
    factory = make_factory(sqlite_url)
    settings = make_settings(any_dovecot.port, tmp_path, sqlite_url)
    assert settings.imap.processed_folder == "mailbot/processed"  # the default
    append_all(any_dovecot.port, [make_mail(1), make_mail(2, extra_header=RAISE_MARK)])
    counts = loop.once(settings, recording_processor(), factory=factory)
    assert (counts.processed, counts.failed, counts.mailbox_errors) == (1, 1, 0)
    assert folder_count(any_dovecot.port, f"mailbot{sep}processed") == 1
    assert folder_count(any_dovecot.port, f"mailbot{sep}quarantine") == 1
    assert folder_count(any_dovecot.port, "INBOX") == 0
    with transaction(factory) as s:
        assert set(s.scalars(select(Message.mailbox_done))) == {True}


def _check(
    tmp: Path, server: LocalDovecot, sink: SmtpSink, *argv: str, imap: str = "", more: str = ""
) -> tuple[int, dict[str, dict[str, Any]]]:
    """`mailbot check --json` against these servers; `imap` adds [imap] keys, `more` tables."""
    cfg = tmp / "m.toml"
    cfg.write_text(
        f'[imap]\nhost = "127.0.0.1"\nport = {server.port}\ntls = "none"\n'
        f'username = "claims"\npassword = "secret"\n{imap}'
        f'[smtp]\nhost = "127.0.0.1"\nport = {sink.port}\ntls = "none"\n'
        f'[paths]\ndata_dir = "{tmp / "data"}"\n{more}'
    )
    buf = io.StringIO()
    with redirect_stdout(buf):
        main(["--config", str(cfg), "--log-level", "ERROR", "db", "upgrade"])
    buf = io.StringIO()
    with redirect_stdout(buf):
        code = main(["--config", str(cfg), "--log-level", "ERROR", "check", "--json", *argv])
    return code, {r["item"]: r for r in json.loads(buf.getvalue())}


def test_check_names_the_folders_as_the_server_spells_them(
    any_dovecot: LocalDovecot, smtp_sink: SmtpSink, tmp_path: Path
) -> None:
    sep = any_dovecot.separator
    code, by_item = _check(tmp_path, any_dovecot, smtp_sink)
    assert code == 0, by_item
    imap = by_item["imap"]["detail"]
    assert f"127.0.0.1:{any_dovecot.port}" in imap and f"delimiter {sep!r}" in imap
    assert f"mailbot{sep}processed (created)" in imap
    assert f"mailbot{sep}quarantine (created)" in imap
    # the folders now exist: `run` finds them, and a second check says so
    assert folder_count(any_dovecot.port, f"mailbot{sep}processed") == 0
    code, by_item = _check(tmp_path, any_dovecot, smtp_sink)
    assert code == 0 and "(created)" not in by_item["imap"]["detail"]


def test_check_fails_on_a_folder_the_server_refuses(
    dovecot: LocalDovecot, smtp_sink: SmtpSink, tmp_path: Path
) -> None:
    # this Dovecot's "/" namespace on Maildir++ refuses "." inside a name
    code, by_item = _check(tmp_path, dovecot, smtp_sink, imap='processed_folder = "mailbot/v1.0"\n')
    assert code == 1
    imap = by_item["imap"]
    assert not imap["ok"] and imap["status"] == "fail"
    assert "mailbot/v1.0" in imap["detail"] and f"127.0.0.1:{dovecot.port}" in imap["detail"]
