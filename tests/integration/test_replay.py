"""Rule replay, stored rules versions and re-evaluation through the `mailbot` command, on
SQLite and PostgreSQL: a claim decided under rules A is replayed with rules B (the
decision that would change is printed, nothing is written), the rules behind the
version on its event are shown exactly as they were, and `claims reevaluate` previews
(writes nothing) and then applies rules B with one reply queued."""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from mailbot import resources
from mailbot.devtools.samples import customer_mail, good_receipt_pdf
from mailbot.store import db
from mailbot.store import models as m
from mailbot.store.rawstore import RawStore
from tests.integration._helpers import claim_and_last_event, run_cli

NOW = "2023-01-20T10:00:00+00:00"
T0 = datetime(2023, 1, 20, 10, tzinfo=UTC)
CAMPAIGN = Path("campaigns") / "cashback-2022.yaml"


@dataclass
class Cli:
    tmp: Path
    db_url: str
    data: Path
    factory: sessionmaker[Session]

    def config(self, rules: Path) -> Path:
        cfg = self.tmp / f"{rules.name}.toml"
        cfg.write_text(
            f'[database]\nurl = "{self.db_url}"\n[paths]\ndata_dir = "{self.data}"\n'
            f'rules_dir = "{rules}"\n[smtp]\nhost = "127.0.0.1"\nport = 1\ntls = "none"\n'
        )
        return cfg

    def __call__(self, rules: Path, *argv: str) -> tuple[int, str, str]:
        return run_cli(self.config(rules), "--now", NOW, *argv)

    def ok(self, rules: Path, *argv: str) -> Any:
        code, out, err = self(rules, *argv, "--json")
        assert code == 0, (out, err)
        return json.loads(out)

    def counts(self) -> dict[str, int]:
        with db.transaction(self.factory) as s:
            return {
                t.name: s.scalar(select(func.count()).select_from(t)) or 0
                for t in m.Base.metadata.sorted_tables
            }

    def claim(self, code: str) -> tuple[str, list[str], str | None]:
        """(state, reasons, rules version of the newest event)."""
        with db.transaction(self.factory) as s:
            row, event = claim_and_last_event(s, code)
            return row.state, list(row.state_reasons), event.rules_version


def _rules_copy(tmp: Path, name: str) -> Path:
    target = tmp / name
    shutil.copytree(resources.rules_dir(), target)
    return target


@pytest.fixture
def cli(tmp_path: Path, db_url: str, store: sessionmaker[Session]) -> Cli:
    return Cli(tmp_path, db_url, tmp_path / "data", store)


def _claim_with_receipt(cli: Cli, rules: Path) -> str:
    """A claim decided under `rules` on one receipt (no serial photo yet)."""
    reg = ["claims", "register", "--campaign", "cashback-2022", "--model", "WH-1000XM5"]
    code = str(cli.ok(rules, *reg, "--email", "kari@example.no", "--name", "Kari")["code"])
    raw = customer_mail(
        sender="kari@example.no", to="claims@test", subject=f"Krav {code}",
        body="Her er kvitteringen.",
        attachments=[("kvittering.pdf", "application/pdf", good_receipt_pdf())],
    )  # fmt: skip
    sha, path = RawStore(cli.data / "raw").put(raw)
    with db.transaction(cli.factory) as s:
        msg = m.Message(
            account="claims@test", folder="INBOX", uidvalidity=1, uid=1,
            message_id="<1@customer.example>", sha256=sha, size=len(raw), raw_path=str(path),
            status="processed", reason="review:no_match", fetched_at=T0,
        )  # fmt: skip
        s.add(msg)
        s.flush()
        msg_id = msg.id
    cli.ok(rules, "claims", "attach", code, str(msg_id), "--why", "test", "--by", "anne")
    return code


def test_replay_shows_the_change_and_writes_nothing(cli: Cli, tmp_path: Path) -> None:
    rules_a = _rules_copy(tmp_path, "rules_a")
    code = _claim_with_receipt(cli, rules_a)
    state, reasons, _ = cli.claim(code)
    assert (state, reasons) == ("incomplete", ["missing_document:serial_photo"])

    # the same rules: nothing would change
    same = cli.ok(rules_a, "rules", "replay", "--rules", str(rules_a))
    assert same["claims"] == 1 and same["changed"] == 0 and same["changes"] == []

    # rules B: the serial photo is no longer required
    rules_b = _rules_copy(tmp_path, "rules_b")
    text = (rules_b / CAMPAIGN).read_text()
    assert "required_documents: [receipt, serial_photo]" in text
    (rules_b / CAMPAIGN).write_text(
        text.replace("required_documents: [receipt, serial_photo]", "required_documents: [receipt]")
    )
    before = cli.counts()
    out = cli.ok(rules_a, "rules", "replay", "--rules", str(rules_b))
    assert out["claims"] == 1 and out["changed"] == 1
    assert out["by_change"] == {"incomplete -> approved": 1}
    [change] = out["changes"]
    assert change["code"] == code
    assert change["old_reasons"] == ["missing_document:serial_photo"]
    assert change["new_state"] == "approved" and change["new_reasons"] == ["approved"]
    assert change["reply"] == "approved" and change["open"] is True
    code_h, text_h, _ = cli(rules_a, "rules", "replay", "--rules", str(rules_b))
    assert code_h == 0
    assert f"{code}  incomplete -> approved" in text_h and "reply: approved" in text_h
    assert "@" not in text_h  # no addresses
    assert cli.counts() == before  # nothing written
    assert cli.claim(code)[:2] == (state, reasons)

    # scope: another campaign, or documents received later, leave nothing to replay
    other = cli.ok(rules_a, "rules", "replay", "--rules", str(rules_b), "--campaign", "promo-20pct")
    assert other["claims"] == 0
    later = cli.ok(rules_a, "rules", "replay", "--rules", str(rules_b), "--since", "2023-02-01")
    assert later["claims"] == 0
    assert cli.counts() == before

    # --reread reads the stored receipt again with the candidate receipt rules: with the
    # Norwegian VAT labels narrowed, the VAT number is no longer read off it
    vat = rules_b / "receipts" / "vat.yaml"
    vat_text = vat.read_text()
    assert "      - '\\bmva\\b'\n" in vat_text
    vat.write_text(
        vat_text.replace(
            "      - 'org\\.?\\s*n[ro]\\.?'\n      - 'organisasjonsnummer'",
            "      - 'organisasjonsnummer'",
            1,
        ).replace("      - '\\bmva\\b'\n", "", 1)
    )
    stored = cli.ok(rules_a, "rules", "replay", "--rules", str(rules_b))
    assert stored["by_change"] == {"incomplete -> approved": 1}  # the fields read then
    reread = cli.ok(rules_a, "rules", "replay", "--rules", str(rules_b), "--reread")
    [change] = reread["changes"]
    assert change["new_state"] == "incomplete"
    assert change["new_reasons"] == ["missing_field:vat_number"]
    assert change["reply"] == "missing_info"
    assert cli.counts() == before

    # broken candidate rules: file:line, exit 2, nothing read
    rules_bad = _rules_copy(tmp_path, "rules_bad")
    (rules_bad / CAMPAIGN).write_text(text.replace("reply_days: 14", "reply_days: soon"))
    code_bad, out_bad, err_bad = cli(rules_a, "rules", "replay", "--rules", str(rules_bad))
    assert code_bad == 2 and out_bad == ""
    assert "cashback-2022.yaml:" in err_bad and "reply_days" in err_bad


def test_rules_show_gives_the_exact_content_behind_an_event(cli: Cli, tmp_path: Path) -> None:
    rules_a = _rules_copy(tmp_path, "rules_a")
    code = _claim_with_receipt(cli, rules_a)
    _, _, version = cli.claim(code)
    assert version
    expected = {
        str(p.relative_to(rules_a)): p.read_text(encoding="utf-8")
        for p in sorted(rules_a.rglob("*.yaml"))
    }
    # the files change afterwards: the stored version still shows what decided
    (rules_a / CAMPAIGN).write_text("# edited later\n" + (rules_a / CAMPAIGN).read_text())
    shown = cli.ok(rules_a, "rules", "show", version)
    assert shown["version"] == version and shown["files"] == expected
    with db.transaction(cli.factory) as s:
        assert s.scalar(select(func.count()).select_from(m.RulesVersion)) == 1
    code_h, text_h, _ = cli(rules_a, "rules", "show", version)
    assert code_h == 0 and "==> campaigns/cashback-2022.yaml <==" in text_h
    assert "reply_days: 14" in text_h

    code_u, out_u, err_u = cli(rules_a, "rules", "show", "0123456789ab")
    assert code_u == 1 and out_u == "" and "no rules version '0123456789ab'" in err_u


def test_reevaluate_previews_then_applies_with_one_reply(cli: Cli, tmp_path: Path) -> None:
    rules_a = _rules_copy(tmp_path, "rules_a")
    code = _claim_with_receipt(cli, rules_a)
    rules_b = _rules_copy(tmp_path, "rules_b")
    text = (rules_b / CAMPAIGN).read_text()
    (rules_b / CAMPAIGN).write_text(
        text.replace("required_documents: [receipt, serial_photo]", "required_documents: [receipt]")
    )
    before = cli.counts()
    preview = cli.ok(rules_b, "claims", "reevaluate", code, "--dry-run", "--why", "rules v2")
    assert preview["from"] == "incomplete" and preview["to"] == "approved"
    assert preview["reply"] == "approved" and preview["dry_run"] is True
    assert cli.counts() == before  # nothing written, not even the rules version

    done = cli.ok(rules_b, "claims", "reevaluate", code, "--why", "rules v2", "--by", "anne")
    assert done["to"] == "approved" and done["dry_run"] is False
    after = cli.counts()
    assert after["outbox"] == before["outbox"] + 1
    assert after["events"] == before["events"] + 1
    assert after["rules_versions"] == before["rules_versions"] + 1
    state, _, version = cli.claim(code)
    assert state == "approved"
    with db.transaction(cli.factory) as s:
        event = s.scalars(select(m.Event).order_by(m.Event.id.desc())).first()
        assert event is not None and event.kind == "claim.approved"
        assert event.evidence["actor"] == "anne" and event.evidence["why"] == "rules v2"
        reply = s.scalars(select(m.Outbox).order_by(m.Outbox.id.desc())).first()
        assert reply is not None and reply.template == "approved" and reply.event_id == event.id
        stored = s.get(m.RulesVersion, version)
        assert stored is not None
        assert "required_documents: [receipt]\n" in stored.files[str(CAMPAIGN)]

    # decided for good now: refused, exit 2, nothing written
    code_r, out_r, err_r = cli(rules_b, "claims", "reevaluate", code, "--why", "again")
    assert code_r == 2 and out_r == "" and "cannot reevaluate" in err_r
    assert cli.counts() == after


def test_a_version_rolled_back_is_stored_by_the_next_commit(cli: Cli, tmp_path: Path) -> None:
    """One engine, one process: a dry run's rollback must not count as stored."""
    from mailbot.ruleset.loader import load_ruleset
    from mailbot.services.records import add_event

    rules = load_ruleset(_rules_copy(tmp_path, "rules_a"))
    session = cli.factory()
    add_event(session, kind="test", now=T0, rules_version=rules.version)
    session.flush()
    session.rollback()
    session.close()
    assert cli.counts()["rules_versions"] == 0
    for _ in range(2):  # the second commit finds it stored: no second row, no error
        with db.transaction(cli.factory) as s:
            add_event(s, kind="test", now=T0, rules_version=rules.version)
    with db.transaction(cli.factory) as s:
        stored = s.get(m.RulesVersion, rules.version)
        assert stored is not None and stored.first_used_at == T0
        assert stored.files[str(CAMPAIGN)] == (rules.directory / CAMPAIGN).read_text()
    assert cli.counts()["rules_versions"] == 1


def test_a_persons_decision_is_listed_not_compared(cli: Cli, tmp_path: Path) -> None:
    rules_a = _rules_copy(tmp_path, "rules_a")
    code = _claim_with_receipt(cli, rules_a)
    cli.ok(rules_a, "claims", "ask", code, "--document", "serial_photo", "--why", "photo")
    out = cli.ok(rules_a, "rules", "replay", "--rules", str(rules_a))
    assert out["changed"] == 0 and out["not_compared"] == 1
    [row] = out["changes"]
    assert row["code"] == code and row["note"] == "decided by a person"
    assert row["old_reasons"] == ["information_requested"] and row["new_state"] is None
