"""The operator's console against real databases: `messages list|show|stats` say what a
mail is, why it ended as it did and what waits for a person; `outbox list|show|retry|
cancel` act on replies, each action an event with who and why, and a retried reply
really goes out over SMTP (aiosmtpd) while a cancelled one never does."""

from __future__ import annotations

import getpass
import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from mailbot.config import Settings
from mailbot.devtools.samples import customer_mail
from mailbot.devtools.sending import sink_settings
from mailbot.devtools.smtpsink import SmtpSink
from mailbot.outbound.delivery import deliver_pending
from mailbot.outbound.smtp import SmtpTransport
from mailbot.services import outbox_admin
from mailbot.services.messages import recent_messages
from mailbot.services.outbox import queue_reply
from mailbot.store import db
from mailbot.store import models as m
from mailbot.store.rawstore import RawStore
from tests.integration._helpers import run_cli, store_config, upgraded_factory

pytestmark = pytest.mark.integration

T0 = datetime(2023, 1, 20, 10, tzinfo=UTC)
BOT = "claims@brand.example"
KARI = "kari.nordmann@example.no"
CODE = "12345674"


def _cli(cfg: Path, *argv: str, level: str = "ERROR") -> tuple[int, str, str]:
    return run_cli(cfg, "--log-format", "json", *argv, level=level)


def _json(cfg: Path, *argv: str) -> Any:
    code, out, err = _cli(cfg, *argv, "--json")
    assert code == 0, err
    return json.loads(out)


def _setup(tmp: Path, url: str) -> tuple[Path, sessionmaker[Session]]:
    cfg = store_config(tmp, url)
    factory = upgraded_factory(url)
    with db.transaction(factory) as s:
        s.add(m.Campaign(id="cashback-2022", name="Cashback"))
        s.flush()
        s.add(
            m.Claim(
                code=CODE, campaign_id="cashback-2022", email=KARI, state="void",
                language="nb", created_at=T0, updated_at=T0,
            )
        )  # fmt: skip
    return cfg, factory


def _smtp(sink: SmtpSink) -> Settings:
    return sink_settings(sink.port, rate_limit_per_hour=50)


# (status, reason, subject, linked to the claim, event kind)
LEDGER = [
    ("processed", "review:sender_not_claimant", f"Kvittering {CODE}", True, "claim.mail_held"),
    ("processed", "review:no_match", "Hei, fra ola.hansen@example.no", False, "mail.review"),
    ("processed", "claim_message_without_documents", "Spørsmål", True, "claim.message"),
    ("processed", "claim:claim.documents_ignored", "Kvittering på nytt " * 5, True, None),
    ("processed", "claim:claim.approved", "Kvittering", True, None),
    ("quarantined", "too_large: 9000 > 4000 bytes", "Stor", False, None),
    ("failed", "exception: RuntimeError", "Feil", False, None),
    ("duplicate", "same mail as ledger #1", f"Kvittering {CODE}", False, None),
]


def _ledger(tmp: Path, factory: sessionmaker[Session]) -> dict[str, int]:
    store = RawStore(tmp / "data" / "raw")
    ids: dict[str, int] = {}
    with db.transaction(factory) as s:
        claim = s.scalars(select(m.Claim)).one()
        for uid, (status, reason, subject, linked, kind) in enumerate(LEDGER, start=1):
            raw = customer_mail(
                sender="Ola <ola.hansen@example.no>", to=BOT, subject=subject, body=f"mail {uid}"
            )
            sha, path = store.put(raw)
            row = m.Message(
                account=BOT, folder="INBOX", uidvalidity=1, uid=uid, message_id=f"<{uid}@x>",
                sha256=sha, size=len(raw), raw_path=str(path), status=status, reason=reason,
                from_masked="o***@example.no", claim_id=claim.id if linked else None,
                fetched_at=T0 + timedelta(minutes=uid), kind="human", mailbox_done=True,
                processed_at=T0 + timedelta(minutes=uid, seconds=2),
                error="Traceback: RuntimeError: for ola.hansen@example.no" if status == "failed"
                else None,
            )  # fmt: skip
            s.add(row)
            s.flush()
            ids[reason] = row.id
            if kind:
                s.add(
                    m.Event(
                        claim_id=claim.id if linked else None, message_id=row.id, kind=kind,
                        from_state="void", to_state="void", reasons=[reason.split(":")[-1]],
                        created_at=T0 + timedelta(minutes=uid, seconds=1),
                    )
                )  # fmt: skip
    return ids


def _queue(factory: sessionmaker[Session], settings: Settings, n: int) -> list[int]:
    ids = []
    with db.transaction(factory) as s:
        claim = s.scalars(select(m.Claim)).one()
        for i in range(n):
            ev = m.Event(claim_id=claim.id, kind="claim.approved", created_at=T0)
            s.add(ev)
            s.flush()
            row = queue_reply(
                s,
                template="approved",
                language="nb",
                context={
                    "name": "Kari Nordmann", "code": CODE, "amount": Decimal("500"),
                    "currency": "NOK", "payment_days": 28,
                },
                to_addr=KARI,
                event_id=ev.id,
                claim_id=claim.id,
                now=T0 + timedelta(seconds=i),
                settings=settings,
            )  # fmt: skip
            assert row is not None
            s.flush()
            ids.append(row.id)
    return ids


def _status(factory: sessionmaker[Session], outbox_id: int, **values: Any) -> None:
    with db.transaction(factory) as s:
        row = s.get(m.Outbox, outbox_id)
        assert row is not None
        for k, v in values.items():
            setattr(row, k, v)


def test_messages_list_show_and_stats(tmp_path: Path, db_url: str, smtp_sink: SmtpSink) -> None:
    cfg, factory = _setup(tmp_path, db_url)
    ids = _ledger(tmp_path, factory)
    failed_reply, unsure, held, sent = _queue(factory, _smtp(smtp_sink), 4)
    _status(factory, failed_reply, status="failed", last_error="550 5.1.1 no such user")
    _status(factory, unsure, status="unconfirmed")
    _status(factory, held, status="held", next_attempt_at=T0 + timedelta(hours=1))
    _status(factory, sent, status="sent", sent_at=T0)

    rows = {r["id"]: r for r in _json(cfg, "messages", "list")}
    held_mail = rows[ids["review:sender_not_claimant"]]
    assert held_mail["cause"] == "held: sender is not the claimant"
    assert held_mail["claim"] == CODE and held_mail["subject"] == f"Kvittering {CODE}"
    assert held_mail["reason"] == "review:sender_not_claimant"  # scripts keep the code
    assert rows[ids["review:no_match"]]["subject"] == "Hei, fra o***@example.no"
    assert rows[ids["review:no_match"]]["claim"] is None
    assert rows[ids["claim:claim.approved"]]["cause"] == "claim approved"
    assert rows[ids["claim_message_without_documents"]]["subject"] == "Spørsmål"  # RFC 2047
    assert rows[ids["claim_message_without_documents"]]["cause"] == (
        "question or note without documents"
    )
    assert rows[ids["claim:claim.documents_ignored"]]["needs_person"] == "closed_claim"
    # a folded, encoded subject comes back as one line of text
    assert rows[ids["claim:claim.documents_ignored"]]["subject"] == "Kvittering på nytt " * 4 + (
        "Kvittering på nytt"
    )
    assert rows[ids["claim:claim.approved"]]["needs_person"] is None
    code, text, _ = _cli(cfg, "messages", "list")
    assert code == 0
    assert "held: sender is not the claimant" in text and CODE in text
    assert "claim:claim" not in text.split("\n", 1)[1].split("cause")[0]
    assert "ola.hansen" not in text and "ola.hansen" not in json.dumps(rows)

    stats = _json(cfg, "messages", "stats")
    assert stats["needs_attention"] == {
        "pending": 0, "review": 1, "held": 1, "question": 1, "closed_claim": 1,
        "quarantined": 1, "failed": 1, "outbox_failed": 1, "outbox_unconfirmed": 1,
        "outbox_held": 1,
    }  # fmt: skip
    assert stats["needs_person"] == 6 and stats["outbox"]["sent"] == 1
    code, text, _ = _cli(cfg, "messages", "stats")
    assert code == 0
    assert "needs attention: 1 review, 1 held, 1 question, 1 closed_claim" in text
    assert "1  replies failed" in text and "1  replies unconfirmed" in text

    # one row in full: masked headers, cause, history, the linked claim
    detail = _json(cfg, "messages", "show", str(ids["review:sender_not_claimant"]))
    assert detail["headers"]["From"] == "Ola <o***@example.no>"
    assert detail["headers"]["Subject"] == f"Kvittering {CODE}"
    assert [h["what"] for h in detail["history"]] == ["fetched", "claim.mail_held", "processed"]
    assert detail["history"][-1]["detail"] == "held: sender is not the claimant"
    assert detail["raw_stored"] is True
    failed = _json(cfg, "messages", "show", str(ids["exception: RuntimeError"]))
    assert "o***@example.no" in failed["error"] and "ola.hansen" not in failed["error"]
    code, text, _ = _cli(cfg, "messages", "show", str(ids["review:no_match"]))
    assert code == 0 and "review: no claim found for this mail" in text
    assert "mail.review" in text and "ola.hansen" not in text

    # --raw: the stored bytes as they came (unmasked, on purpose)
    code, raw, _ = _cli(cfg, "messages", "show", str(ids["review:no_match"]), "--raw")
    assert code == 0 and "ola.hansen@example.no" in raw and "mail 2" in raw
    with db.transaction(factory) as s:
        path = s.get(m.Message, ids["review:no_match"]).raw_path  # type: ignore[union-attr]
    assert raw.encode() == Path(str(path)).read_bytes()
    code, out, err = _cli(cfg, "messages", "show", "9999")
    assert code == 1 and out == "" and "ledger row 9999 does not exist" in err
    code, out, err = _cli(cfg, "messages", "show", "9999", "--raw")
    assert code == 1 and "does not exist" in err


def _events(factory: sessionmaker[Session]) -> list[m.Event]:
    with factory() as s:
        return list(
            s.scalars(select(m.Event).where(m.Event.kind.like("outbox.%")).order_by(m.Event.id))
        )


def test_outbox_retry_and_cancel_are_recorded_and_sent(
    tmp_path: Path, db_url: str, smtp_sink: SmtpSink
) -> None:
    cfg, factory = _setup(tmp_path, db_url)
    settings = _smtp(smtp_sink)
    refused, unwanted, busy = _queue(factory, settings, 3)
    _status(factory, busy, status="sending", claimed_by="other", attempts=1)
    # the relay refuses the first reply for good (5xx): flagged, not retried by itself
    smtp_sink.fail_next(1, "550 5.7.1 mailbox unavailable")
    _status(factory, unwanted, next_attempt_at=T0 + timedelta(days=1))
    stats = deliver_pending(factory, settings, T0)
    assert stats.failed == 1 and stats.sent == 0
    assert smtp_sink.messages == []

    listed = {r["id"]: r for r in _json(cfg, "outbox", "list")}
    assert listed[refused]["status"] == "failed" and "550" in listed[refused]["last_error"]
    assert listed[refused]["claim"] == CODE and listed[refused]["to"] == "k***@example.no"
    assert [r["id"] for r in _json(cfg, "outbox", "list", "--status", "failed")] == [refused]
    code, text, _ = _cli(cfg, "outbox", "list")
    assert code == 0 and "kari.nordmann" not in text and "550" in text
    code, _, _ = _cli(cfg, "outbox", "list", "--status", "nope")
    assert code == 2

    # cancel a queued reply: never sent
    code, out, err = _cli(
        cfg, "--now", "2023-01-20T11:00:00", "outbox", "cancel", str(unwanted),
        "--by", "anna", "--reason", "kari.nordmann@example.no asked us not to", level="INFO",
    )  # fmt: skip
    assert code == 0, err
    assert "queued -> cancelled" in out
    assert "outbox cancel by operator" in err and "kari.nordmann" not in err
    # a reply that may be with the relay right now, or is sent, is not cancelled
    code, _, err = _cli(cfg, "outbox", "cancel", str(busy), "--json")
    assert code == 1 and "is sending" in err
    code, _, err = _cli(cfg, "outbox", "retry", str(unwanted + 1000))
    assert code == 1 and "does not exist" in err

    # retry the refused one, as the OS user; it goes out over SMTP
    done = _json(cfg, "--now", "2023-01-20T11:05:00", "outbox", "retry", str(refused))
    assert done["from"] == "failed" and done["to"] == "queued"
    assert done["by"] == getpass.getuser()
    stats = deliver_pending(factory, settings, T0 + timedelta(hours=2))
    assert stats.sent == 1, stats
    (mail,) = smtp_sink.wait_for(1)
    assert mail.rcpt_tos == (KARI,)
    with db.transaction(factory) as s:
        row = s.get(m.Outbox, refused)
        assert row is not None and row.status == "sent"
        assert mail.message["Message-ID"] == row.message_id
        cancelled = s.get(m.Outbox, unwanted)
        assert cancelled is not None and cancelled.status == "cancelled"
    code, _, err = _cli(cfg, "outbox", "cancel", str(refused))
    assert code == 1 and "is sent" in err

    # both actions are events on the claim, with who, when and why
    cancel, retried = _events(factory)
    assert (cancel.kind, cancel.from_state, cancel.to_state) == (
        "outbox.cancelled", "queued", "cancelled"
    )  # fmt: skip
    assert cancel.evidence["by"] == "anna" and cancel.evidence["outbox_id"] == unwanted
    assert cancel.created_at == datetime(2023, 1, 20, 11, tzinfo=UTC)
    assert cancel.claim_id is not None
    assert retried.kind == "outbox.retried" and retried.evidence["outbox_id"] == refused
    shown = _json(cfg, "outbox", "show", str(unwanted))
    assert shown["status"] == "cancelled"
    assert shown["actions"] == [
        {
            "at": "2023-01-20T11:00:00+00:00", "action": "cancelled", "from": "queued",
            "to": "cancelled", "by": "anna", "reason": "k***@example.no asked us not to",
        }
    ]  # fmt: skip
    code, text, _ = _cli(cfg, "outbox", "show", str(refused))
    assert code == 0 and "retried by" in text and "caused by:  event #" in text


class _CancelWhileSending:
    """The real SMTP transport; while the first reply is with the relay, an operator
    cancels the next one, which the sender has claimed in the same batch already."""

    def __init__(self, settings: Settings, cfg: Path, victim: int) -> None:
        self.link = SmtpTransport(settings.smtp)
        self.cfg, self.victim = cfg, victim
        self.results: list[tuple[int, str, str]] = []

    def send(self, mail_from: str, rcpt: str, raw: bytes) -> None:
        if not self.results:
            self.results.append(_cli(self.cfg, "outbox", "cancel", str(self.victim)))
        self.link.send(mail_from, rcpt, raw)

    def close(self) -> None:
        self.link.close()


def test_a_claimed_reply_cancelled_before_sending_is_never_sent(
    tmp_path: Path, db_url: str, smtp_sink: SmtpSink
) -> None:
    cfg, factory = _setup(tmp_path, db_url)
    settings = _smtp(smtp_sink)
    first, victim = _queue(factory, settings, 2)
    link = _CancelWhileSending(settings, cfg, victim)
    stats = deliver_pending(factory, settings, T0, transport=link)
    (code, out, err), *_ = link.results
    assert code == 0 and "claimed -> cancelled" in out, err
    assert stats.sent == 1
    (mail,) = smtp_sink.wait_for(1, timeout=2)
    with db.transaction(factory) as s:
        assert s.get(m.Outbox, victim).status == "cancelled"  # type: ignore[union-attr]
        sent = s.get(m.Outbox, first)
        assert sent is not None and sent.status == "sent"
        assert mail.message["Message-ID"] == sent.message_id
    assert deliver_pending(factory, settings, T0 + timedelta(days=1)).sent == 0
    assert len(smtp_sink.messages) == 1


def test_lists_refuse_a_status_they_do_not_know(store: sessionmaker[Session]) -> None:
    with pytest.raises(ValueError, match=r"unknown status 'lost'; one of: pending, "):
        recent_messages(store, status="lost")
    with pytest.raises(ValueError, match=r"unknown outbox status 'lost'; one of: queued, "):
        outbox_admin.list_outbox(store, status="lost")
    assert recent_messages(store, status="pending") == []
    assert outbox_admin.list_outbox(store, status="queued") == []
