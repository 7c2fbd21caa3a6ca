"""The outbox against a real SMTP server (aiosmtpd): headers, retries, permanent
failures, unanswered messages, crashes mid-delivery, database failures after a 250,
leases, the rate limit and loop protection."""

from __future__ import annotations

import threading
import time
from datetime import UTC, date, datetime, timedelta
from random import Random
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from mailbot.config import Settings, SmtpSettings
from mailbot.devtools.faults import fail_sent_writes
from mailbot.devtools.sending import APPROVED, BOT, sink_settings
from mailbot.devtools.smtpsink import SmtpSink
from mailbot.outbound import delivery
from mailbot.outbound.delivery import DeliveryStats, deliver_pending, lease_for, requeue
from mailbot.outbound.smtp import RecipientRejected, SmtpTransport
from mailbot.services.outbox import mark_undeliverable, queue_reply
from mailbot.store import db
from mailbot.store.models import Campaign, Claim, Event, Outbox

pytestmark = pytest.mark.integration

KARI = "kari.nordmann@example.no"
T0 = datetime(2023, 1, 20, 10, 0, tzinfo=UTC)


def _settings(sink: SmtpSink, **smtp: Any) -> Settings:
    """Sending to `sink`, 5 replies per recipient an hour, 4 attempts; `smtp` overrides."""
    return sink_settings(sink.port, **({"rate_limit_per_hour": 5, "max_attempts": 4} | smtp))


@pytest.fixture
def factory(sqlite_url: str) -> sessionmaker[Session]:
    return _factory(sqlite_url)


def _factory(url: str) -> sessionmaker[Session]:
    engine = db.make_engine(url)
    db.upgrade(engine)
    f = db.session_factory(engine)
    with db.transaction(f) as s:
        s.add(Campaign(id="cashback-2022", name="Cashback"))
    return f


def _claim(s: Session, email: str = KARI, code: str = "12345674") -> Claim:
    claim = Claim(
        code=code,
        campaign_id="cashback-2022",
        email=email,
        state="approved",
        language="nb",
        created_at=T0,
        updated_at=T0,
    )
    s.add(claim)
    s.flush()
    return claim


def _event(s: Session, claim: Claim) -> Event:
    ev = Event(claim_id=claim.id, kind="approved", to_state="approved", created_at=T0)
    s.add(ev)
    s.flush()
    return ev


def _approval(settings: Settings, **fields: Any) -> dict[str, Any]:
    """`queue_reply`'s arguments for the approval mail to Kari, `fields` replaced."""
    return {
        "template": "approved",
        "language": "nb",
        "context": APPROVED,
        "to_addr": KARI,
        "now": T0,
        "settings": settings,
        **fields,
    }


def _queue(
    s: Session, settings: Settings, claim: Claim, to: str | None = None, **kw: Any
) -> Outbox | None:
    return queue_reply(
        s,
        **_approval(
            settings,
            context={**APPROVED, "code": claim.code},
            to_addr=to or claim.email,
            event_id=_event(s, claim).id,
            claim_id=claim.id,
            **kw,
        ),
    )


def _queue_one(factory: sessionmaker[Session], settings: Settings) -> None:
    """Kari's claim and one queued reply to it (its approval)."""
    with db.transaction(factory) as s:
        _queue(s, settings, _claim(s))


def _answered_first(
    factory: sessionmaker[Session], sink: SmtpSink, times: int, answer: str, **smtp: Any
) -> Settings:
    """Kari's reply queued, and the relay answers its first `times` attempts with
    `answer`; the settings to deliver with."""
    settings = _settings(sink, **smtp)
    _queue_one(factory, settings)
    sink.fail_next(times, answer)
    return settings


def _rows(factory: sessionmaker[Session]) -> list[Outbox]:
    with factory() as s:
        return list(s.scalars(select(Outbox).order_by(Outbox.id)))


def test_delivery_with_threading_and_loop_headers(db_url: str, smtp_sink: SmtpSink) -> None:
    factory = _factory(db_url)
    settings = _settings(smtp_sink, reply_to="support@brand.example")
    with db.transaction(factory) as s:
        row = _queue(
            s,
            settings,
            _claim(s),
            to=f"Kari Nordmann <{KARI}>",
            in_reply_to="<cafe@example.no>",
            references=["<first@example.no>"],
        )
        assert row is not None
        mid = row.message_id
    stats = deliver_pending(factory, settings, T0 + timedelta(seconds=5), limit=10)
    assert (stats.sent, stats.deferred, stats.failed) == (1, 0, 0)
    [got] = smtp_sink.wait_for(1)
    msg = got.message
    assert got.rcpt_tos == (KARI,) and got.mail_from == BOT
    assert msg["Message-ID"] == mid and mid.endswith("@brand.example>")
    assert msg["In-Reply-To"] == "<cafe@example.no>"
    assert msg["References"] == "<first@example.no> <cafe@example.no>"
    assert msg["Auto-Submitted"] == "auto-replied"
    assert msg["X-Auto-Response-Suppress"] == "All"
    assert msg["Reply-To"] == "support@brand.example"
    assert "[Ref 12345674]" in msg["Subject"] and "godkjent" in msg["Subject"]
    assert msg.get_content_type() == "multipart/alternative"
    text = msg.get_body(preferencelist=("plain",))
    html = msg.get_body(preferencelist=("html",))
    assert text is not None and html is not None
    assert "500 NOK" in text.get_content() and "28 dager" in text.get_content()
    assert "<p>" in html.get_content() and text.get_content_charset() == "utf-8"
    [sent] = _rows(factory)
    assert sent.status == "sent" and sent.attempts == 1
    assert sent.sent_at == T0 + timedelta(seconds=5)
    # nothing left: a second run sends nothing
    assert deliver_pending(factory, settings, T0 + timedelta(hours=2)).sent == 0
    assert len(smtp_sink.wait_for(2, timeout=0.5)) == 1


def test_temporary_error_is_retried_with_backoff(
    factory: sessionmaker[Session], smtp_sink: SmtpSink
) -> None:
    settings = _answered_first(factory, smtp_sink, 1, "451 4.3.0 greylisted, try again later")
    stats = deliver_pending(factory, settings, T0, rng=Random(1))
    assert (stats.sent, stats.deferred) == (0, 1)
    [row] = _rows(factory)
    assert row.status == "queued" and row.attempts == 1 and "451" in (row.last_error or "")
    assert row.next_attempt_at is not None
    # first retry after 1 minute times a jitter of 0.5-1.0
    assert T0 + timedelta(seconds=30) <= row.next_attempt_at <= T0 + timedelta(minutes=1)
    assert deliver_pending(factory, settings, T0 + timedelta(seconds=20)).sent == 0  # not due
    assert deliver_pending(factory, settings, T0 + timedelta(minutes=2)).sent == 1
    assert len(smtp_sink.wait_for(1)) == 1
    [row] = _rows(factory)
    assert row.status == "sent" and row.attempts == 2


def test_permanent_error_fails_and_is_flagged_never_retried(
    factory: sessionmaker[Session], smtp_sink: SmtpSink
) -> None:
    settings = _answered_first(factory, smtp_sink, 1, "550 5.7.1 message refused")
    stats = deliver_pending(factory, settings, T0)
    assert (stats.sent, stats.failed) == (0, 1)
    [row] = _rows(factory)
    assert row.status == "failed" and (row.last_error or "").startswith("PERMANENT (admin)")
    assert "550" in (row.last_error or "")
    assert deliver_pending(factory, settings, T0 + timedelta(days=1)).sent == 0
    assert smtp_sink.wait_for(1, timeout=0.5) == []
    # an admin fixes the cause and requeues it: same Message-ID
    with db.transaction(factory) as s:
        assert requeue(s, row.id, T0 + timedelta(days=1))
    assert deliver_pending(factory, settings, T0 + timedelta(days=1)).sent == 1
    assert smtp_sink.wait_for(1)[0].message["Message-ID"] == row.message_id


def test_gives_up_after_max_attempts(factory: sessionmaker[Session], smtp_sink: SmtpSink) -> None:
    settings = _answered_first(factory, smtp_sink, 2, "421 4.7.0 try later", max_attempts=2)
    assert deliver_pending(factory, settings, T0).deferred == 1
    assert deliver_pending(factory, settings, T0 + timedelta(hours=1)).failed == 1
    [row] = _rows(factory)
    assert row.status == "failed" and "GAVE UP" in (row.last_error or "")


def test_relay_down_defers_and_keeps_the_rest(
    factory: sessionmaker[Session], smtp_sink: SmtpSink
) -> None:
    settings = _settings(smtp_sink)
    with db.transaction(factory) as s:
        _queue(s, settings, _claim(s))
        _queue(s, settings, _claim(s, "ola@example.no", "87654325"))
    down = _settings(smtp_sink, port=1)  # nothing listens on port 1
    stats = deliver_pending(factory, down, T0)
    assert (stats.sent, stats.deferred) == (0, 1)  # the batch stops at the first
    rows = _rows(factory)
    assert [r.attempts for r in rows] == [1, 0]
    assert deliver_pending(factory, settings, T0 + timedelta(minutes=5)).sent == 2


class _Crash(BaseException):
    """kill -9 stand-in: not an Exception, so nothing in the sender catches it."""


class _CrashingTransport:
    def __init__(self, real: SmtpTransport | None) -> None:
        self.real = real

    def send(self, mail_from: str, rcpt: str, raw: bytes) -> None:
        if self.real is not None:
            self.real.send(mail_from, rcpt, raw)  # the relay says 250 ...
        raise _Crash  # ... and we die before recording it

    def close(self) -> None:
        if self.real is not None:
            self.real.close()


def _queue_many(factory: sessionmaker[Session], settings: Settings, n: int) -> list[str]:
    with db.transaction(factory) as s:
        rows = [_queue(s, settings, _claim(s, f"c{i}@example.no", f"{i:08d}")) for i in range(n)]
        return [r.message_id for r in rows if r is not None]


def test_sender_killed_mid_batch_its_rows_are_taken_over_within_a_minute(
    db_url: str, smtp_sink: SmtpSink
) -> None:
    """The row being sent when the sender died may be with the relay: flagged, not
    resent. The rows it had claimed and not started go out with the next sender once
    the (short) lease has run out."""
    factory = _factory(db_url)
    settings = _settings(smtp_sink, resend_unconfirmed=False, rate_limit_per_hour=0)
    mids = _queue_many(factory, settings, 3)
    with pytest.raises(_Crash):
        deliver_pending(factory, settings, T0, transport=_CrashingTransport(None))
    rows = _rows(factory)
    assert [r.status for r in rows] == ["sending", "claimed", "claimed"]
    assert all(r.next_attempt_at is not None for r in rows)
    assert max(r.next_attempt_at for r in rows if r.next_attempt_at) <= T0 + timedelta(seconds=61)
    # another sender while the lease runs: hands off
    assert deliver_pending(factory, settings, T0 + timedelta(seconds=30)) == DeliveryStats()
    stats = deliver_pending(factory, settings, T0 + timedelta(seconds=61))
    assert (stats.sent, stats.recovered, stats.unconfirmed) == (2, 2, 1)
    rows = _rows(factory)
    assert [r.status for r in rows] == ["unconfirmed", "sent", "sent"]
    assert (rows[0].last_error or "").startswith("UNCONFIRMED (admin)")
    assert rows[0].attempted_at == T0 and rows[0].attempts == 1
    assert [r.attempts for r in rows[1:]] == [1, 1]  # a takeover is no attempt
    assert deliver_pending(factory, settings, T0 + timedelta(hours=1)) == DeliveryStats()
    smtp_sink.wait_for(2)
    got = smtp_sink.wait_for(3, timeout=0.3)
    assert sorted(g.message["Message-ID"] for g in got) == sorted(mids[1:])


def test_crash_after_relay_accepted_is_flagged_when_resending_is_off(
    db_url: str, smtp_sink: SmtpSink
) -> None:
    """Killed between the relay's 250 and the `sent` write: the mail arrived once and
    is not sent again; an admin who requeues it gets the same bytes, recorded as a
    possible duplicate."""
    factory = _factory(db_url)
    settings = _settings(smtp_sink, resend_unconfirmed=False)
    [mid] = _queue_many(factory, settings, 1)
    crashing = _CrashingTransport(SmtpTransport(settings.smtp))
    with pytest.raises(_Crash):
        deliver_pending(factory, settings, T0, transport=crashing)
    crashing.close()
    after = T0 + lease_for(settings.smtp) + timedelta(seconds=1)
    stats = deliver_pending(factory, settings, after)
    assert (stats.sent, stats.unconfirmed) == (0, 1)
    assert deliver_pending(factory, settings, after + timedelta(days=1)).sent == 0
    assert len(smtp_sink.wait_for(2, timeout=0.5)) == 1
    [row] = _rows(factory)
    assert row.status == "unconfirmed" and row.possible_duplicate is False
    with db.transaction(factory) as s:
        assert requeue(s, row.id, after + timedelta(days=1))
    assert deliver_pending(factory, settings, after + timedelta(days=1)).sent == 1
    got = smtp_sink.wait_for(2)
    assert [g.message["Message-ID"] for g in got] == [mid, mid]
    assert got[0].data == got[1].data  # byte for byte: stored when queued
    [row] = _rows(factory)
    assert row.status == "sent" and row.possible_duplicate is True


@pytest.mark.parametrize("fault", ["drop", "slow"])
def test_no_answer_after_the_message_is_flagged_when_resending_is_off(
    db_url: str, smtp_sink: SmtpSink, fault: str
) -> None:
    """The relay got the whole message, then the connection dropped (or the answer
    came after our timeout): it may have accepted the mail, so the row is flagged and
    never sent again; the rest of the batch waits a little and goes out."""
    factory = _factory(db_url)
    settings = _settings(
        smtp_sink, resend_unconfirmed=False, rate_limit_per_hour=0, timeout_seconds=1
    )
    mids = _queue_many(factory, settings, 3)
    if fault == "drop":
        smtp_sink.drop_next(1, keep=True)
    else:
        smtp_sink.slow_next(1, 2.0, keep=True)
    first = deliver_pending(factory, settings, T0, rng=Random(1))
    after_first = [(r.status, r.attempts) for r in _rows(factory)]
    for minutes in (2, 30, 600):
        deliver_pending(factory, settings, T0 + timedelta(minutes=minutes))
    smtp_sink.wait_for(3)
    got = smtp_sink.wait_for(4, timeout=0.3)
    assert sorted(g.message["Message-ID"] for g in got) == sorted(mids)  # each once
    assert (first.sent, first.unconfirmed, first.deferred) == (0, 1, 0)
    assert after_first == [("unconfirmed", 1), ("queued", 0), ("queued", 0)]
    rows = _rows(factory)
    assert [r.status for r in rows] == ["unconfirmed", "sent", "sent"]
    assert "no answer after the message was sent" in (rows[0].last_error or "")


def test_a_definite_refusal_after_the_message_is_retried(
    factory: sessionmaker[Session], smtp_sink: SmtpSink
) -> None:
    """421 to the message itself is an answer, not a doubt: retried, delivered once."""
    settings = _settings(smtp_sink)
    _queue_many(factory, settings, 1)
    smtp_sink.fail_next(1, "421 4.4.2 closing connection")
    assert deliver_pending(factory, settings, T0).deferred == 1
    assert deliver_pending(factory, settings, T0 + timedelta(minutes=5)).sent == 1
    assert len(smtp_sink.wait_for(2, timeout=0.5)) == 1


def test_database_failure_after_250_is_retried(db_url: str, smtp_sink: SmtpSink) -> None:
    factory = _factory(db_url)
    settings = _settings(smtp_sink)
    _queue_many(factory, settings, 1)
    left = fail_sent_writes(factory, 2)
    stats = deliver_pending(factory, settings, T0)
    assert (stats.sent, stats.unrecorded, left) == (1, 0, [0])
    [row] = _rows(factory)
    assert row.status == "sent" and row.sent_at == T0


def test_a_250_whose_write_failed_is_never_resent(
    db_url: str, smtp_sink: SmtpSink, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The database refuses the `sent` write through all retries: the process keeps
    the 250 in memory, never sends the row again, and records it once the database
    answers, even after the lease ran out. Had the process died instead, the row
    would be flagged (not resent) when its lease ran out."""
    monkeypatch.setattr(delivery, "CONFIRM_WAITS", (0.01, 0.01))
    factory = _factory(db_url)
    settings = _settings(smtp_sink)
    _queue_many(factory, settings, 2)
    left = fail_sent_writes(factory, 3)
    stats = deliver_pending(factory, settings, T0, limit=1)
    assert (stats.sent, stats.unrecorded) == (1, 1)
    assert [r.status for r in _rows(factory)] == ["sending", "queued"]
    assert left == [0]  # the database answers again
    later = T0 + timedelta(minutes=5)  # the first row's lease ran out long ago
    stats = deliver_pending(factory, settings, later)
    assert (stats.sent, stats.unconfirmed, stats.recovered) == (1, 0, 0)
    rows = _rows(factory)
    assert [r.status for r in rows] == ["sent", "sent"] and rows[0].sent_at == T0
    assert len(smtp_sink.wait_for(3, timeout=0.5)) == 2


def test_a_250_whose_write_failed_then_the_process_died_is_flagged(
    db_url: str, smtp_sink: SmtpSink, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(delivery, "CONFIRM_WAITS", (0.01,))
    factory = _factory(db_url)
    settings = _settings(smtp_sink, resend_unconfirmed=False)
    _queue_many(factory, settings, 1)
    fail_sent_writes(factory, 2)
    assert deliver_pending(factory, settings, T0).unrecorded == 1
    delivery._UNRECORDED.clear()  # the process died: its memory is gone
    stats = deliver_pending(factory, settings, T0 + timedelta(minutes=5))
    assert (stats.sent, stats.unconfirmed) == (0, 1)
    assert len(smtp_sink.wait_for(2, timeout=0.5)) == 1


def test_a_live_sender_renews_its_lease(db_url: str, smtp_sink: SmtpSink) -> None:
    """A sender behind a slow relay keeps its rows past the lease (the heartbeat
    renews it); a second sender meanwhile takes nothing, and each mail goes once."""
    factory = _factory(db_url)
    settings = _settings(smtp_sink, rate_limit_per_hour=0)
    _queue_many(factory, settings, 2)
    smtp_sink.slow_next(1, 2.0)  # answered, but late (timeout is 10 s)
    lease = timedelta(seconds=1)
    results: list[DeliveryStats] = []
    started = time.monotonic()
    live = threading.Thread(
        target=lambda: results.append(deliver_pending(factory, settings, T0, lease=lease))
    )
    live.start()
    time.sleep(1.6)
    other = deliver_pending(factory, settings, T0 + timedelta(seconds=time.monotonic() - started))
    live.join(timeout=30)
    assert other == DeliveryStats()
    assert [(r.sent, r.unconfirmed) for r in results] == [(2, 0)]
    assert [r.status for r in _rows(factory)] == ["sent", "sent"]
    assert len(smtp_sink.wait_for(3, timeout=0.5)) == 2


def test_two_senders_never_send_a_row_twice(db_url: str, smtp_sink: SmtpSink) -> None:
    factory = _factory(db_url)
    settings = _settings(smtp_sink, rate_limit_per_hour=0)  # 0: no limit
    with db.transaction(factory) as s:
        for i in range(12):
            _queue(s, settings, _claim(s, f"c{i}@example.no", f"1000000{i:02d}"[-8:]))
    errors: list[BaseException] = []

    def run() -> None:
        try:
            deliver_pending(factory, settings, T0, limit=50)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert errors == []
    got = smtp_sink.wait_for(12)
    smtp_sink.wait_for(13, timeout=0.5)
    ids = [g.message["Message-ID"] for g in smtp_sink.messages]
    assert len(ids) == 12 and len(set(ids)) == 12, got
    assert {r.status for r in _rows(factory)} == {"sent"}


def test_rate_limit_holds_the_excess_then_releases_it(
    factory: sessionmaker[Session], smtp_sink: SmtpSink
) -> None:
    settings = _settings(smtp_sink, rate_limit_per_hour=2)
    with db.transaction(factory) as s:
        claim = _claim(s)
        for _ in range(4):
            _queue(s, settings, claim)
        _queue(s, settings, _claim(s, "ola@example.no", "87654325"))
    stats = deliver_pending(factory, settings, T0)
    assert (stats.sent, stats.held) == (3, 2)  # 2 to Kari, 1 to Ola
    held = [r for r in _rows(factory) if r.status == "held"]
    assert len(held) == 2 and all(r.next_attempt_at == T0 + timedelta(hours=1) for r in held)
    assert deliver_pending(factory, settings, T0 + timedelta(minutes=30)).sent == 0
    assert deliver_pending(factory, settings, T0 + timedelta(minutes=61)).sent == 2
    assert len(smtp_sink.wait_for(5)) == 5
    assert {r.status for r in _rows(factory)} == {"sent"}


def test_rate_limit_counts_recent_sends_and_other_senders_in_flight(
    factory: sessionmaker[Session], smtp_sink: SmtpSink
) -> None:
    """The limit looks at mail sent in the last hour and at rows another sender holds
    right now (a live lease), read in one query per claim round."""
    settings = _settings(smtp_sink, rate_limit_per_hour=2)
    with db.transaction(factory) as s:
        claim = _claim(s)
        sent, sending, new = (_queue(s, settings, claim) for _ in range(3))
        assert sent is not None and sending is not None and new is not None
        sent.status, sent.sent_at = "sent", T0 - timedelta(minutes=10)
        # claimed by another sender, not on the wire yet
        sending.status, sending.next_attempt_at = "claimed", T0 + timedelta(minutes=5)
        sending.claimed_by = "another-sender"
    stats = deliver_pending(factory, settings, T0)
    assert (stats.sent, stats.held) == (0, 1)
    [held] = [r for r in _rows(factory) if r.status == "held"]
    assert held.next_attempt_at == T0 + timedelta(minutes=50)  # when the sent one ages out
    # the other sender's lease ran out (it died): its row is sent again, the held one waits
    later = T0 + timedelta(minutes=6)
    assert deliver_pending(factory, settings, later).sent == 1
    assert deliver_pending(factory, settings, T0 + timedelta(minutes=51)).sent == 1


@pytest.mark.parametrize(
    "address, reason",
    [
        (BOT, "own_address"),
        ("Claims@BRAND.example", "own_address"),
        ("support@brand.example", "own_address"),  # our Reply-To
        ("MAILER-DAEMON@mx.example.no", "machine_address"),
        ("postmaster@example.no", "machine_address"),
        ("noreply@shop.example", "machine_address"),
        ("no-reply@shop.example", "machine_address"),
        ("do-not-reply@bank.example", "machine_address"),
        ("info.noreply@shop.example", "machine_address"),
        ("bounces+123@lists.example", "machine_address"),
        ("not an address", "invalid_address"),
    ],
)
def test_loop_protection_refuses_and_records_why(
    factory: sessionmaker[Session], smtp_sink: SmtpSink, address: str, reason: str
) -> None:
    settings = _settings(smtp_sink, reply_to="support@brand.example")
    with db.transaction(factory) as s:
        claim = _claim(s)
        ev = _event(s, claim)
        row = queue_reply(s, **_approval(settings, to_addr=address, event_id=ev.id))
        assert row is None
        assert ev.evidence["reply_suppressed"] == {"template": "approved", "reason": reason}
    assert _rows(factory) == []


@pytest.mark.parametrize("address", ["nora@example.no", "reply@example.no", "Kari <kari@x.no>"])
def test_people_whose_address_looks_close_still_get_replies(
    factory: sessionmaker[Session], smtp_sink: SmtpSink, address: str
) -> None:
    with db.transaction(factory) as s:
        assert _queue(s, _settings(smtp_sink), _claim(s), to=address) is not None


def test_bounced_address_stops_replies(factory: sessionmaker[Session], smtp_sink: SmtpSink) -> None:
    settings = _settings(smtp_sink)
    with db.transaction(factory) as s:
        claim = _claim(s)
        assert _queue(s, settings, claim) is not None
    with db.transaction(factory) as s:
        assert mark_undeliverable(s, "KARI.NORDMANN@example.NO") == 1
    [row] = _rows(factory)
    assert row.status == "failed" and "undeliverable" in (row.last_error or "")
    with db.transaction(factory) as s:
        claim = s.scalars(select(Claim)).one()
        assert claim.address_undeliverable is True
        assert _queue(s, settings, claim) is None
    assert deliver_pending(factory, settings, T0).sent == 0


def test_recipient_refused_marks_the_address(factory: sessionmaker[Session]) -> None:
    class Refusing:
        def send(self, mail_from: str, rcpt: str, raw: bytes) -> None:
            raise RecipientRejected("550 5.1.1 no such user")

        def close(self) -> None:
            pass

    settings = Settings(smtp=SmtpSettings(from_address=BOT))
    _queue_one(factory, settings)
    assert deliver_pending(factory, settings, T0, transport=Refusing()).failed == 1
    with factory() as s:
        assert s.scalars(select(Claim.address_undeliverable)).one() is True


def test_one_reply_per_event(factory: sessionmaker[Session], smtp_sink: SmtpSink) -> None:
    settings = _settings(smtp_sink)
    with db.transaction(factory) as s:
        claim = _claim(s)
        ev = _event(s, claim)
        kwargs = _approval(settings, event_id=ev.id)
        first = queue_reply(s, **kwargs)
        second = queue_reply(s, **kwargs)
        assert first is not None and second is first
        # the pipeline decides without autoflush: a reply queued (not yet flushed)
        # earlier in the transaction is still found
        with s.no_autoflush:
            assert queue_reply(s, **kwargs) is first
    with factory() as s:
        assert s.scalar(select(func.count(Outbox.id))) == 1
        ev = _event(s, _claim(s, email="nora@example.no", code="87654321"))
        with s.no_autoflush:
            kwargs["event_id"] = ev.id
            third = queue_reply(s, **kwargs)
            assert third is not None and queue_reply(s, **kwargs) is third
        s.commit()
        assert s.scalar(select(func.count(Outbox.id))) == 2


def test_reply_queued_with_an_unflushed_event(
    factory: sessionmaker[Session], smtp_sink: SmtpSink
) -> None:
    """The pipeline queues a reply with its event before either is flushed (both go
    out with the group's commit); a bounce later in the same transaction still
    stops it, and a second call for the same event still finds it."""
    settings = _settings(smtp_sink)
    with db.transaction(factory) as s:
        claim = _claim(s)
        s.flush()
        with s.no_autoflush:
            ev = Event(claim_id=claim.id, kind="approved", to_state="approved", created_at=T0)
            s.add(ev)
            kwargs = _approval(settings, event=ev)
            row = queue_reply(s, **kwargs)
            assert row is not None and ev.id is None and row.id is None
            assert queue_reply(s, **kwargs) is row
    [sent] = _rows(factory)
    assert sent.event_id is not None and sent.status == "queued"
    with db.transaction(factory) as s, s.no_autoflush:
        ev = Event(claim_id=claim.id, kind="approved", to_state="approved", created_at=T0)
        s.add(ev)
        assert queue_reply(s, **{**kwargs, "event": ev}) is not None
        assert mark_undeliverable(s, KARI) == 1
    rows = _rows(factory)
    assert len(rows) == 2 and {r.status for r in rows} == {"failed"}


def test_rolled_back_transaction_leaves_no_reply(
    factory: sessionmaker[Session], smtp_sink: SmtpSink
) -> None:
    settings = _settings(smtp_sink)
    with pytest.raises(RuntimeError), db.transaction(factory) as s:
        _queue(s, settings, _claim(s))
        raise RuntimeError("the decision failed after queueing")
    assert _rows(factory) == []
    assert deliver_pending(factory, settings, T0).sent == 0


def test_rma_reply_subject_carries_the_number(
    factory: sessionmaker[Session], smtp_sink: SmtpSink
) -> None:
    settings = _settings(smtp_sink)
    with db.transaction(factory) as s:
        row = queue_reply(
            s,
            template="rma_issued",
            language="sv",
            context={
                "name": "Ola",
                "rma_number": "7654321",
                "product": "Sonos One",
                "valid_days": 14,
                "valid_until": date(2023, 2, 3),
            },
            to_addr="ola@example.se",
            event_id=None,
            now=T0,
            settings=settings,
        )
        assert row is not None and row.language == "sv"
    deliver_pending(factory, settings, T0)
    [got] = smtp_sink.wait_for(1)
    assert "RMA# 7654321" in got.message["Subject"]
    body = got.message.get_body(("plain",))
    assert body is not None
    assert "Shipment Notification: RMA# 7654321" in body.get_content()


def test_bounced_rma_address_stops_replies_even_after_the_rma_changes(
    factory: sessionmaker[Session], smtp_sink: SmtpSink
) -> None:
    from mailbot.store.models import Rma

    settings = _settings(smtp_sink)
    with db.transaction(factory) as s:
        s.add(
            Rma(
                number="7654321",
                email="Ola@Example.no",
                state="issued",
                issued_at=T0,
                expires_at=T0 + timedelta(days=15),
                created_at=T0,
                updated_at=T0,
            )
        )
    with db.transaction(factory) as s:
        assert mark_undeliverable(s, "ola@example.no") == 1
    with db.transaction(factory) as s:
        rma = s.scalars(select(Rma)).one()
        rma.facts = {"snapshot": {"state": "shipment_notified"}}  # the RMA is saved again
        rma.state = "shipment_notified"
    with db.transaction(factory) as s:
        reply = queue_reply(
            s,
            template="rma_policy",
            language="nb",
            context={**APPROVED, "rma_number": "7654321", "status": "unknown", "valid_days": 14},
            to_addr="ola@example.no",
            event_id=None,
            now=T0,
            settings=settings,
        )
        assert reply is None


@pytest.mark.parametrize("relay_kept_it", [False, True])
def test_no_answer_after_the_message_is_resent_once_with_the_same_message_id(
    db_url: str, smtp_sink: SmtpSink, relay_kept_it: bool
) -> None:
    """The default: an unknown outcome is sent once more, same bytes and Message-ID,
    recorded as a possible duplicate. A relay that had lost the mail delivers it
    now (nothing lost); one that had kept it shows the same message twice."""
    factory = _factory(db_url)
    settings = _settings(smtp_sink, rate_limit_per_hour=0, timeout_seconds=1)
    [mid] = _queue_many(factory, settings, 1)
    smtp_sink.drop_next(1, keep=relay_kept_it)
    first = deliver_pending(factory, settings, T0, rng=Random(1))
    assert (first.sent, first.unconfirmed, first.deferred) == (0, 0, 1)
    [row] = _rows(factory)
    assert row.status == "queued" and row.possible_duplicate is True
    assert deliver_pending(factory, settings, T0 + timedelta(hours=1)).sent == 1
    got = smtp_sink.wait_for(2 if relay_kept_it else 1)
    assert [g.message["Message-ID"] for g in got] == [mid] * len(got)
    assert len(smtp_sink.wait_for(3, timeout=0.3)) == (2 if relay_kept_it else 1)
    [row] = _rows(factory)
    assert row.status == "sent" and row.possible_duplicate is True


def test_a_second_unknown_outcome_waits_for_an_admin(db_url: str, smtp_sink: SmtpSink) -> None:
    """Resent at most once: a relay that drops us again gets no third copy."""
    factory = _factory(db_url)
    settings = _settings(smtp_sink, rate_limit_per_hour=0, timeout_seconds=1)
    _queue_many(factory, settings, 1)
    smtp_sink.drop_next(2, keep=True)
    deliver_pending(factory, settings, T0, rng=Random(1))
    second = deliver_pending(factory, settings, T0 + timedelta(hours=1), rng=Random(1))
    assert second.unconfirmed == 1
    assert deliver_pending(factory, settings, T0 + timedelta(days=1)).sent == 0
    assert len(smtp_sink.wait_for(3, timeout=0.5)) == 2
    [row] = _rows(factory)
    assert row.status == "unconfirmed" and row.possible_duplicate is True
