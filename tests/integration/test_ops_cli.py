"""Operator safety of the `mailbot` command: reprocess refuses what it cannot do."""

from __future__ import annotations

import io
import json
from contextlib import redirect_stderr, redirect_stdout
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import select

from mailbot.cli.main import main
from mailbot.devtools.samples import customer_mail
from mailbot.rawstore import RawStore
from mailbot.store import db
from mailbot.store import models as m

T0 = datetime(2023, 1, 20, 10, tzinfo=UTC)


def _cli(cfg: Path, *argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        code = main(["--config", str(cfg), "--log-level", "ERROR", *argv])
    return code, out.getvalue(), err.getvalue()


def _config(tmp: Path, url: str) -> Path:
    cfg = tmp / "m.toml"
    cfg.write_text(f'[database]\nurl = "{url}"\n[paths]\ndata_dir = "{tmp / "data"}"\n')
    return cfg


def test_reprocess_refuses_unknown_and_processed_rows(tmp_path: Path, db_url: str) -> None:
    cfg = _config(tmp_path, db_url)
    engine = db.make_engine(db_url)
    db.upgrade(engine)
    factory = db.session_factory(engine)
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

    code, out, err = _cli(cfg, "reprocess", str(done))
    assert code == 1 and out == ""
    assert f"ledger row {done} is processed" in err and "failed" in err
    code, out, err = _cli(cfg, "reprocess", str(unknown), "--json")
    assert code == 1 and out == "" and f"ledger row {unknown} does not exist" in err
    # one bad id refuses the whole command: the good one is not run either
    code, _, err = _cli(cfg, "reprocess", str(failed), str(unknown))
    assert code == 1 and "does not exist" in err
    with db.transaction(factory) as s:
        assert s.get(m.Message, failed).status == "failed"  # type: ignore[union-attr]

    # a failed row is reprocessed, and says so
    code, out, err = _cli(cfg, "reprocess", str(failed), "--json")
    assert code == 0, err
    counts = json.loads(out)
    assert counts["skipped"] == 0 and counts["failed"] == 0
    with db.transaction(factory) as s:
        assert s.get(m.Message, failed).status != "failed"  # type: ignore[union-attr]
    engine.dispose()
