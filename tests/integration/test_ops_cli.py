"""Operator safety of the `mailbot` command: reprocess refuses what it cannot do, check
says what it skipped and names the server and the OCR language a problem is about."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from mailbot.devtools.dovecot import LocalDovecot
from mailbot.devtools.samples import customer_mail
from mailbot.devtools.smtpsink import SmtpSink
from mailbot.store import db
from mailbot.store import models as m
from mailbot.store.rawstore import RawStore
from tests.integration._helpers import run_cli, store_config

T0 = datetime(2023, 1, 20, 10, tzinfo=UTC)


def test_reprocess_refuses_unknown_and_processed_rows(
    tmp_path: Path, db_url: str, store: sessionmaker[Session]
) -> None:
    cfg = store_config(tmp_path, db_url)
    factory = store
    raw = customer_mail(
        sender="kari@example.no", to="claims@test", subject="Hei", body="Har dere fått den?"
    )
    sha, path = RawStore(tmp_path / "data" / "raw").put(raw)
    with db.transaction(factory) as s:
        for uid, status in ((1, "processed"), (2, "failed")):
            s.add(
                m.Message(
                    account="claims@test", folder="INBOX", uidvalidity=1, uid=uid,
                    message_id=f"<{uid}@test>", sha256=sha, size=len(raw), raw_path=str(path),
                    status=status, fetched_at=T0,
                )
            )  # fmt: skip
    with db.transaction(factory) as s:
        ids = {uid: i for uid, i in s.execute(select(m.Message.uid, m.Message.id))}
    done, failed = ids[1], ids[2]
    unknown = max(ids.values()) + 100

    code, out, err = run_cli(cfg, "reprocess", str(done))
    assert code == 1 and out == ""
    assert f"ledger row {done} is processed" in err and "failed" in err
    code, out, err = run_cli(cfg, "reprocess", str(unknown), "--json")
    assert code == 1 and out == "" and f"ledger row {unknown} does not exist" in err
    # one bad id refuses the whole command: the good one is not run either
    code, _, err = run_cli(cfg, "reprocess", str(failed), str(unknown))
    assert code == 1 and "does not exist" in err
    with db.transaction(factory) as s:
        assert s.get(m.Message, failed).status == "failed"  # type: ignore[union-attr]

    # a failed row is reprocessed, and says so
    code, out, err = run_cli(cfg, "reprocess", str(failed), "--json")
    assert code == 0, err
    counts = json.loads(out)
    assert counts["skipped"] == 0 and counts["failed"] == 0
    with db.transaction(factory) as s:
        assert s.get(m.Message, failed).status != "failed"  # type: ignore[union-attr]


def _check(tmp: Path, body: str, *argv: str) -> tuple[int, dict[str, dict[str, Any]]]:
    cfg = tmp / "c.toml"
    cfg.write_text(body + f'[paths]\ndata_dir = "{tmp / "data"}"\n')
    assert run_cli(cfg, "db", "upgrade")[0] == 0
    code, out, _ = run_cli(cfg, "check", "--json", *argv)
    return code, {r["item"]: r for r in json.loads(out)}


def test_check_offline_says_skip_and_checks_the_configured_ocr_languages(tmp_path: Path) -> None:
    code, by_item = _check(tmp_path, '[ocr]\nlanguages = "nor+xqz"\n', "--offline")
    assert [by_item[i]["status"] for i in ("imap", "smtp")] == ["skip", "skip"]
    tess = by_item["tesseract"]
    assert code == 1 and tess["status"] == "fail"
    assert "ocr.languages needs xqz" in tess["detail"] and "tesseract-ocr-xqz" in tess["detail"]
    # the campaigns' own languages when ocr.languages is empty; text output says SKIP
    cfg = tmp_path / "c.toml"
    cfg.write_text(f'[paths]\ndata_dir = "{tmp_path / "data"}"\n')
    code, out, _ = run_cli(cfg, "check", "--offline")
    assert code == 0, out
    lines = {line.split()[1]: line for line in out.splitlines()}
    assert lines["imap"].startswith("SKIP") and lines["smtp"].startswith("SKIP")
    assert lines["tesseract"].startswith("OK") and "the campaigns' languages nor" in out


def test_check_names_host_and_port_of_a_tls_mismatch(
    tmp_path: Path, dovecot: LocalDovecot, smtp_sink: SmtpSink
) -> None:
    code, by_item = _check(
        tmp_path,
        f'[imap]\nhost = "127.0.0.1"\nport = {dovecot.port}\ntls = "ssl"\n'
        'username = "claims"\npassword = "secret"\n'
        f'[smtp]\nhost = "127.0.0.1"\nport = {smtp_sink.port}\ntls = "ssl"\n',
    )
    assert code == 1
    for item, port in (("imap", dovecot.port), ("smtp", smtp_sink.port)):
        detail = by_item[item]["detail"]
        assert f"127.0.0.1:{port}" in detail, detail
        assert 'tls = "ssl" wants implicit TLS' in detail and "starttls" in detail, detail
