"""Operator actions through the `mailbot` command, on SQLite and PostgreSQL: each moves the
claim or RMA through the core, writes an event naming who and why, and queues the right
reply in the outbox (one per action); a wrong state is refused with exit 2 and writes
nothing; the approval an operator gives reaches a real SMTP server once."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from mailbot.config import load_settings
from mailbot.devtools.samples import customer_mail, good_receipt_pdf
from mailbot.devtools.smtpsink import SmtpSink
from mailbot.outbound.delivery import deliver_pending
from mailbot.store import db
from mailbot.store import models as m
from mailbot.store.rawstore import RawStore
from tests.integration._helpers import claim_and_last_event, run_cli, store_config

NOW = "2023-01-20T10:00:00+00:00"
T0 = datetime(2023, 1, 20, 10, tzinfo=UTC)


@dataclass
class Cli:
    config: Path
    data: Path
    factory: sessionmaker[Session]

    def __call__(self, *argv: str, now: str = NOW) -> tuple[int, str, str]:
        return run_cli(self.config, "--now", now, *argv)

    def ok(self, *argv: str, now: str = NOW) -> dict[str, Any]:
        code, out, err = self(*argv, "--json", now=now)
        assert code == 0, err
        return json.loads(out)  # type: ignore[no-any-return]

    def refused(self, *argv: str, now: str = NOW) -> str:
        before = self.counts()
        code, out, err = self(*argv, now=now)
        assert code == 2 and out == "" and "Traceback" not in err, (code, out, err)
        assert self.counts() == before  # nothing written
        return err

    def register(self, email: str = "kari@example.no", **extra: str) -> str:
        args = ["claims", "register", "--campaign", "cashback-2022", "--model", "WH-1000XM5"]
        args += ["--email", email, "--name", "Kari"]
        for key, value in extra.items():
            args += [f"--{key}", value]
        return str(self.ok(*args)["code"])

    def counts(self) -> tuple[int, int]:
        with db.transaction(self.factory) as s:
            events = s.scalar(select(func.count()).select_from(m.Event)) or 0
            replies = s.scalar(select(func.count()).select_from(m.Outbox)) or 0
        return events, replies

    def last_event(self, code: str) -> m.Event:
        with db.transaction(self.factory) as s:
            _, event = claim_and_last_event(s, code)
            s.expunge(event)
            return event

    def replies(self, code: str) -> list[tuple[str, str, int | None]]:
        """(template, to_addr, event id) per reply of the claim, oldest first."""
        with db.transaction(self.factory) as s:
            claim = s.scalars(select(m.Claim).where(m.Claim.code == code)).one()
            rows = s.execute(
                select(m.Outbox.template, m.Outbox.to_addr, m.Outbox.event_id)
                .where(m.Outbox.claim_id == claim.id)
                .order_by(m.Outbox.id)
            ).all()
            return [tuple(r) for r in rows]  # type: ignore[misc]

    def snapshot(self, code: str) -> dict[str, Any]:
        with db.transaction(self.factory) as s:
            claim = s.scalars(select(m.Claim).where(m.Claim.code == code)).one()
            return dict(claim.facts["snapshot"])


@pytest.fixture
def cli(tmp_path: Path, db_url: str, store: sessionmaker[Session]) -> Cli:
    cfg = store_config(tmp_path, db_url, '[smtp]\nhost = "127.0.0.1"\nport = 1\ntls = "none"\n')
    return Cli(cfg, tmp_path / "data", store)


def _who(event: m.Event, why: str, who: str = "anne") -> None:
    assert event.evidence["actor"] == who
    assert event.evidence["role"] == "operator"
    assert event.evidence["why"] == why


def test_reject_reopen_approve_pay_each_recorded_with_who_and_why(cli: Cli) -> None:
    code = cli.register()
    by = ("--by", "anne")

    out = cli.ok(
        "claims", "decide", code, "reject", "--reason", "not_verified", "--why", "fake", *by
    )
    assert (out["from"], out["to"], out["reply"]) == ("registered", "rejected", "rejected")
    event = cli.last_event(code)
    assert event.kind == "claim.rejected" and event.reasons == ["not_verified"]
    _who(event, "fake")
    assert cli.replies(code)[-1][:2] == ("rejected", "kari@example.no")
    assert cli.replies(code)[-1][2] == event.id  # the reply belongs to this event

    # a rejected claim cannot be approved, paid or asked about: refused, nothing written
    err = cli.refused("claims", "decide", code, "approve", "--why", "x")
    assert f"claim {code}: cannot approve a claim in rejected" in err
    assert "cannot pay" in cli.refused("claims", "pay", code)
    assert "reason: one of" in cli.refused(
        "claims", "decide", code, "reject", "--reason", "nope", "--why", "x"
    )

    out = cli.ok("claims", "reopen", code, "--why", "customer sent proof by phone", *by)
    assert (out["from"], out["to"], out["reply"]) == ("rejected", "review", None)
    _who(cli.last_event(code), "customer sent proof by phone")
    assert len(cli.replies(code)) == 2  # confirmation, rejection: reopening says nothing

    out = cli.ok("claims", "decide", code, "approve", "--why", "checked", *by)
    assert (out["to"], out["reply"]) == ("approved", "approved")
    assert out["payout"] == {"amount": "500.00", "currency": "NOK"}
    _who(cli.last_event(code), "checked")
    assert [r[0] for r in cli.replies(code)] == ["confirmation", "rejected", "approved"]

    out = cli.ok("claims", "pay", code, "--reference", "BANK-2023-17", *by)
    assert (out["to"], out["reply"]) == ("paid", None)
    event = cli.last_event(code)
    assert event.evidence["reference"] == "BANK-2023-17" and event.evidence["actor"] == "anne"
    assert cli.snapshot(code)["payment_reference"] == "BANK-2023-17"
    assert "cannot pay a claim in paid" in cli.refused("claims", "pay", code)
    assert "cannot reopen a claim in paid" in cli.refused("claims", "reopen", code, "--why", "x")
    assert "no claim with code 00000000" in cli.refused(
        "claims", "reopen", "00000000", "--why", "x"
    )


def test_approve_without_a_computable_payout_is_refused_until_a_price_is_given(
    cli: Cli,
) -> None:
    # promo-20pct pays a percentage of the price: no price, no payout
    args = ["claims", "register", "--campaign", "promo-20pct", "--model", "Play:1"]
    code, out, err = cli(
        *args,
        "--email",
        "eva@example.se",
        "--name",
        "Eva",
        "--currency",
        "SEK",
        "--force",
        "--json",
    )
    assert code == 0, err
    claim = json.loads(out)["code"]
    cli.ok("claims", "decide", claim, "reject", "--reason", "not_verified", "--why", "x")
    cli.ok("claims", "reopen", claim, "--why", "x")
    err = cli.refused("claims", "decide", claim, "approve", "--why", "ok")
    assert "payout cannot be computed" in err and "--price" in err
    # the operator's corrected price is kept beside the value read, and used
    cli.ok("claims", "correct", claim, "price", "1 000,00", "--why", "receipt says 1000")
    snap = cli.snapshot(claim)
    assert snap["corrections"] == [["price", "1000.00"]]
    out = cli.ok("claims", "decide", claim, "approve", "--why", "ok")
    assert out["to"] == "approved" and out["payout"]["amount"] == "200.00"


def test_ask_names_items_with_the_campaign_deadline(cli: Cli) -> None:
    code = cli.register()
    out = cli.ok(
        "claims", "ask", code, "--document", "serial_photo", "--field", "purchase_date",
        "--why", "serial not readable", "--by", "anne",
    )  # fmt: skip
    assert (out["from"], out["to"], out["reply"]) == ("registered", "incomplete", "missing_info")
    # cashback-2022: 14 reply days, counted in Oslo; void from the start of 4 February
    assert datetime.fromisoformat(out["deadline_at"]) == datetime(2023, 2, 3, 23, tzinfo=UTC)
    event = cli.last_event(code)
    assert event.kind == "claim.information_requested"
    assert event.evidence["documents"] == ["serial_photo"]
    assert event.evidence["fields"] == ["purchase_date"]
    _who(event, "serial not readable")
    assert cli.replies(code)[-1][:2] == ("missing_info", "kari@example.no")
    snap = cli.snapshot(code)
    assert snap["missing_documents"] == ["serial_photo"] and snap["deadline_on"] == "2023-02-03"

    err = cli.refused("claims", "ask", code, "--field", "iban", "--why", "x")
    assert "not required by campaign cashback-2022: iban" in err
    assert "at least one" in cli.refused("claims", "ask", code, "--why", "x")
    # --why is required for a judgement
    # the customer answered by phone: approved by hand, no longer voided at the deadline
    out = cli.ok("claims", "decide", code, "approve", "--why", "confirmed by phone")
    assert (out["from"], out["to"], out["deadline_at"]) == ("incomplete", "approved", None)
    with pytest.raises(SystemExit) as exit_:
        cli("claims", "ask", code, "--document", "receipt")
    assert exit_.value.code == 2


def test_change_email_sends_later_replies_to_the_new_address(cli: Cli) -> None:
    code = cli.register("kari@exmaple.no")
    out = cli.ok("claims", "email", code, "kari@example.no", "--why", "typo on the form")
    assert out["email"] == "kari@example.no" and out["reply"] is None
    event = cli.last_event(code)
    assert event.kind == "claim.email_changed"
    assert event.evidence["previous_email"] == "kari@exmaple.no"
    assert "already has this address" in cli.refused(
        "claims", "email", code, "kari@example.no", "--why", "x"
    )
    assert "email:" in cli.refused("claims", "email", code, "not an address", "--why", "x")
    cli.ok("claims", "ask", code, "--document", "receipt", "--why", "x")
    assert cli.replies(code)[-1][:2] == ("missing_info", "kari@example.no")


def test_correct_field_is_kept_beside_the_value_read(cli: Cli) -> None:
    code = cli.register()
    cli.ok("claims", "correct", code, "purchase_date", "05.12.2022", "--why", "blurred")
    cli.ok("claims", "correct", code, "retailer", "Elkjøp", "--why", "logo only")
    snap = cli.snapshot(code)
    assert snap["corrections"] == [["purchase_date", "2022-12-05"], ["retailer", "Elkjøp"]]
    assert snap["facts"] == [] and snap["state"] == "registered"  # decides nothing
    event = cli.last_event(code)
    assert event.kind == "claim.field_corrected" and event.evidence["read"] is None
    shown = cli.ok("claims", "show", code)
    assert shown["corrections"] == {"purchase_date": "2022-12-05", "retailer": "Elkjøp"}
    assert "unknown field 'iban'" in cli.refused(
        "claims", "correct", code, "iban", "NO93", "--why", "x"
    )
    assert "purchase_date: not a date" in cli.refused(
        "claims", "correct", code, "purchase_date", "yesterday", "--why", "x"
    )


def _ledger_mail(cli: Cli, raw: bytes, status: str = "processed", uid: int = 1) -> int:
    sha, path = RawStore(cli.data / "raw").put(raw)
    with db.transaction(cli.factory) as s:
        row = m.Message(
            account="claims@test", folder="INBOX", uidvalidity=1, uid=uid,
            message_id=f"<{uid}@customer.example>", sha256=sha, size=len(raw),
            raw_path=str(path), status=status, reason="review:no_match", fetched_at=T0,
        )  # fmt: skip
        s.add(row)
        s.flush()
        return row.id


def test_attach_a_parked_mail_applies_its_documents_once(cli: Cli) -> None:
    code = cli.register()
    # sent from another address without the code: parked for review by the intake
    raw = customer_mail(
        sender="kari.work@example.no", to="claims@test", subject="kvittering",
        body="Her er kvitteringen.",
        attachments=[("kvittering.pdf", "application/pdf", good_receipt_pdf())],
    )  # fmt: skip
    msg = _ledger_mail(cli, raw)
    pending = _ledger_mail(cli, raw, status="pending", uid=2)
    assert "is pending" in cli.refused("claims", "attach", code, str(pending), "--why", "x")
    assert "does not exist" in cli.refused("claims", "attach", code, "99999", "--why", "x")

    out = cli.ok("claims", "attach", code, str(msg), "--why", "same customer", "--by", "anne")
    assert out["from"] == "registered" and out["to"] != "registered"
    assert out["reply"] is not None
    with db.transaction(cli.factory) as s:
        claim = s.scalars(select(m.Claim).where(m.Claim.code == code)).one()
        docs = s.scalars(select(m.Document).where(m.Document.claim_id == claim.id)).all()
        assert [(d.filename, d.message_id, d.accepted) for d in docs] == [
            ("kvittering.pdf", msg, True)
        ]
        events = s.scalars(
            select(m.Event).where(m.Event.message_id == msg).order_by(m.Event.id)
        ).all()
        assert events[0].kind == "claim.message_attached"
        assert events[0].evidence["actor"] == "anne"
        assert events[0].evidence["why"] == "same customer"
        assert events[-1].claim_id == claim.id and events[-1].kind == out["event"]
        assert all(e.evidence["actor"] == "anne" for e in events)
        ledger = s.get(m.Message, msg)
        assert ledger is not None and ledger.claim_id == claim.id
    assert cli.replies(code)[-1][0] == out["reply"]
    # once: the same mail again is refused
    assert "already on claim" in cli.refused("claims", "attach", code, str(msg), "--why", "x")


def test_rma_receive_close_and_attach_a_shipment_notice(cli: Cli) -> None:
    issued = cli.ok("rma", "issue", "--email", "ola@example.no", "--product", "WH-1000XM5")
    number = issued["number"]
    assert "cannot close an RMA in issued" in cli.refused(
        "rma", "close", number, "--outcome", "refunded", "--why", "x"
    )
    # sent from another address than the RMA's: held by the intake, moved by nobody
    raw = customer_mail(
        sender="kone@example.no", to="claims@test",
        subject=f"Shipment Notification: RMA# {number}",
        body="Sporingsnummer: 1Z999AA10123456784\nLevert på posten 21.01.2023 kl. 15:30\n",
    )  # fmt: skip
    msg = _ledger_mail(cli, raw)
    out = cli.ok("rma", "attach", number, str(msg), "--why", "forgot the subject")
    assert (out["to"], out["reply"]) == ("shipment_notified", "tracking_ack")
    assert out["tracking_number"] == "1Z999AA10123456784"

    out = cli.ok("rma", "receive", number, "--by", "lager")
    assert out["to"] == "received"
    out = cli.ok("rma", "close", number, "--outcome", "replaced", "--why", "new unit sent")
    assert (out["from"], out["to"], out["reply"]) == ("received", "closed", None)
    with db.transaction(cli.factory) as s:
        rma = s.scalars(select(m.Rma).where(m.Rma.number == number)).one()
        events = s.scalars(
            select(m.Event).where(m.Event.rma_id == rma.id).order_by(m.Event.id)
        ).all()
        assert [e.kind for e in events] == [
            "rma.issued", "rma.shipment_notified", "rma.received", "rma.closed",
        ]  # fmt: skip
        assert events[2].evidence["actor"] == "lager" and events[2].evidence["why"] == ""
        assert events[3].evidence["why"] == "new unit sent" and events[3].reasons == ["replaced"]
        assert rma.facts["snapshot"]["outcome"] == "replaced"
    assert "cannot close an RMA in closed" in cli.refused(
        "rma", "close", number, "--outcome", "refunded", "--why", "x"
    )


def test_the_operators_approval_is_delivered_once(tmp_path: Path, smtp_sink: SmtpSink) -> None:
    url = f"sqlite:///{tmp_path / 'm.db'}"
    smtp = f'[smtp]\nhost = "127.0.0.1"\nport = {smtp_sink.port}\ntls = "none"\n'
    cfg = store_config(tmp_path, url, smtp)
    engine = db.make_engine(url)
    db.upgrade(engine)
    cli = Cli(cfg, tmp_path / "data", db.session_factory(engine))
    code = cli.register()
    cli.ok("claims", "decide", code, "reject", "--reason", "not_verified", "--why", "x")
    cli.ok("claims", "reopen", code, "--why", "x")
    cli.ok("claims", "decide", code, "approve", "--why", "ok")
    settings = load_settings(str(cfg))
    first = deliver_pending(cli.factory, settings, T0 + timedelta(minutes=1))
    again = deliver_pending(cli.factory, settings, T0 + timedelta(hours=2))
    assert first.sent == 3 and again.sent == 0
    subjects = [c.message["Subject"] for c in smtp_sink.wait_for(3)]
    approvals = [c for c in smtp_sink.messages if "kari@example.no" in c.rcpt_tos]
    assert len(approvals) == 3 and all(f"[Ref {code}]" in s for s in subjects)
    with db.transaction(cli.factory) as s:
        rows = s.scalars(select(m.Outbox).order_by(m.Outbox.id)).all()
        assert [(r.template, r.status) for r in rows] == [
            ("confirmation", "sent"), ("rejected", "sent"), ("approved", "sent"),
        ]  # fmt: skip
    engine.dispose()
