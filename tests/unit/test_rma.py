"""RMA transitions with fixed clocks: issue, shipment notices (new, repeated, late), expiry
on day 15, receipt, closing, billing of advance replacements."""

from __future__ import annotations

from dataclasses import replace
from datetime import date, timedelta

import pytest

from mailbot.core.rma_machine import (
    Rma,
    RmaState,
    bill_due,
    close,
    expire_if_overdue,
    flag_billing,
    incomplete_notice,
    issue,
    mark_received,
    mark_replacement_shipped,
    notify_shipment,
    receive_notice,
    remind,
    reminder_due,
)
from mailbot.core.transition import TransitionError
from tests.unit.claim_factories import issued_rma, returns, utc

ISSUED = utc("2024-03-01 09:00")  # 10:00 in Oslo, 1 March
EXPIRES = utc("2024-03-15 23:00")  # 16 March 00:00 in Oslo: day 15 after the issue date


def _rma(advance: bool = False) -> Rma:
    return issued_rma(ISSUED, advance=advance, email="ola@example.no", product="Play:5")


def test_issue() -> None:
    t = issue(number="1234567", email="o@e.no", product="Sub", policy=returns(), now=ISSUED)
    assert t.from_state is None and t.to_state == "issued"
    assert t.snapshot.expires_at == EXPIRES
    assert t.reply is not None and t.reply.template == "rma_issued"
    assert t.reply.context["rma_number"] == "1234567"
    assert t.reply.context["valid_days"] == 14
    assert t.reply.context["last_day"] == date(2024, 3, 15)
    assert t.snapshot.language == "nb"


def test_shipment_notice_is_acknowledged_with_tracking_and_carrier() -> None:
    dropoff = utc("2024-03-05 14:00")
    t = notify_shipment(
        _rma(), "70 7240 0000 1234 567", "Bring", dropoff, ISSUED + timedelta(days=4)
    )
    assert (t.from_state, t.to_state) == ("issued", "shipment_notified")
    r = t.snapshot
    assert (r.tracking_number, r.carrier, r.dropoff_at) == ("70724000001234567", "Bring", dropoff)
    assert t.reply is not None and t.reply.template == "tracking_ack"
    assert t.reply.context["tracking"] == "70724000001234567"
    assert t.reply.context["carrier"] == "Bring" and t.reply.context["updated"] is False


def test_same_tracking_again_gets_no_second_ack() -> None:
    first = notify_shipment(_rma(), "JJD0001", "DHL", None, ISSUED + timedelta(days=1)).snapshot
    again = notify_shipment(first, "jjd 0001", "DHL", None, ISSUED + timedelta(days=2))
    assert not again.changed and again.reply is None and again.snapshot == first


def test_new_tracking_number_updates_and_is_acknowledged_again() -> None:
    first = notify_shipment(_rma(), "JJD0001", "DHL", None, ISSUED + timedelta(days=1)).snapshot
    t = notify_shipment(first, "1Z999AA10123456784", "UPS", None, ISSUED + timedelta(days=2))
    assert t.changed and t.reasons == ("tracking_updated",)
    assert t.snapshot.tracking_number == "1Z999AA10123456784" and t.snapshot.carrier == "UPS"
    assert [n.tracking for n in t.snapshot.notices] == ["JJD0001", "1Z999AA10123456784"]
    assert t.reply is not None and t.reply.template == "tracking_ack"
    assert t.reply.context["updated"] is True
    assert t.evidence["previous_tracking"] == "JJD0001"


def test_notice_on_the_last_valid_day_is_accepted_and_at_expiry_is_refused() -> None:
    ok = notify_shipment(_rma(), "JJD1", None, None, EXPIRES - timedelta(seconds=1))
    assert ok.to_state == "shipment_notified"
    late = notify_shipment(_rma(), "JJD1", None, None, EXPIRES)
    assert (late.from_state, late.to_state) == ("issued", "expired")
    assert late.reply is not None and late.reply.template == "rma_policy"
    assert late.snapshot.tracking_number is None


def test_notice_after_expiry_stays_expired_and_gets_the_policy() -> None:
    t = expire_if_overdue(_rma(), EXPIRES)
    assert t is not None
    late = notify_shipment(t.snapshot, "JJD1", None, None, EXPIRES + timedelta(days=3))
    assert late.to_state == "expired" and late.snapshot.tracking_number is None
    assert late.reply is not None and late.reply.template == "rma_policy"


def test_notice_without_tracking_asks_for_what_is_missing_and_moves_nothing() -> None:
    rma = _rma()
    t = incomplete_notice(rma, ("tracking_number", "dropoff_time"), ISSUED + timedelta(days=2))
    assert t.snapshot == rma and not t.changed and t.kind == "rma.notice_incomplete"
    assert t.reasons == ("tracking_number_missing", "dropoff_time_missing")
    assert t.reply is not None and t.reply.template == "rma_missing_info"
    assert t.reply.context["missing"] == ["tracking_number", "dropoff_time"]
    assert t.reply.context["last_day"] == date(2024, 3, 15)  # the 14th day after issue
    # The RMA number is the caller's business (it found this RMA): never asked for here.
    only = incomplete_notice(rma, ("rma_number", "tracking_number"), ISSUED)
    assert only.reply is not None and only.reply.context["missing"] == ["tracking_number"]


def test_notice_without_tracking_after_expiry_or_once_tracked() -> None:
    late = incomplete_notice(_rma(), ("tracking_number",), EXPIRES)
    assert late.to_state == "expired"
    assert late.reply is not None and late.reply.template == "rma_policy"
    notified = notify_shipment(_rma(), "JJD1", None, None, ISSUED).snapshot
    thanks = incomplete_notice(notified, ("tracking_number",), ISSUED + timedelta(days=1))
    assert thanks.reply is None and not thanks.changed and thanks.snapshot == notified
    assert thanks.reasons == ("tracking_known",)
    back = mark_received(notified, ISSUED + timedelta(days=3)).snapshot
    after = incomplete_notice(back, ("tracking_number",), ISSUED + timedelta(days=4))
    assert after.reply is None and after.reasons == ("already_received",)


def test_expiry() -> None:
    rma = _rma()
    assert expire_if_overdue(rma, EXPIRES - timedelta(seconds=1)) is None
    t = expire_if_overdue(rma, EXPIRES)
    assert t is not None and t.to_state == "expired" and t.reasons == ("no_shipment_notice",)
    assert t.reply is not None and t.reply.template == "rma_expired"
    assert expire_if_overdue(t.snapshot, EXPIRES + timedelta(days=1)) is None
    notified = notify_shipment(rma, "JJD1", None, None, ISSUED).snapshot
    assert expire_if_overdue(notified, EXPIRES + timedelta(days=30)) is None


def test_received_and_closed() -> None:
    notified = notify_shipment(_rma(), "JJD1", None, None, ISSUED).snapshot
    received = mark_received(notified, ISSUED + timedelta(days=6))
    assert received.to_state == "received" and received.reply is None
    closed = close(received.snapshot, "replaced", ISSUED + timedelta(days=7))
    assert closed.to_state == "closed" and closed.snapshot.outcome == "replaced"
    # Received without a notice is fine (the parcel speaks for itself).
    assert mark_received(_rma(), ISSUED).to_state == "received"
    with pytest.raises(TransitionError):
        close(notified, "refunded", ISSUED)
    with pytest.raises(TransitionError):
        mark_received(replace(notified, state=RmaState.EXPIRED), ISSUED)
    with pytest.raises(TransitionError):
        close(received.snapshot, "kept", ISSUED)  # type: ignore[arg-type]
    ignored = notify_shipment(closed.snapshot, "JJD9", None, None, ISSUED)
    assert not ignored.changed and ignored.reply is None


def test_reminder_before_expiry_once() -> None:
    rma = _rma()
    before = timedelta(days=3)
    assert not reminder_due(rma, EXPIRES - before - timedelta(seconds=1), before)
    assert reminder_due(rma, EXPIRES - before, before)
    t = remind(rma, EXPIRES - before)
    assert t.reply is not None and t.reply.template == "reminder"
    assert t.reply.context["deadline"] == date(2024, 3, 15)
    assert not reminder_due(t.snapshot, EXPIRES - timedelta(days=1), before)
    assert not reminder_due(rma, EXPIRES, before)


def test_advance_replacement_billing() -> None:
    rma = _rma(advance=True)
    assert rma.bill_due_at == EXPIRES
    shipped = mark_replacement_shipped(rma, returns(), utc("2024-03-04 12:00")).snapshot
    # 14 days after the replacement shipped (4 March) is later: billing from 19 March.
    assert shipped.bill_due_at == utc("2024-03-18 23:00")
    expired = expire_if_overdue(shipped, EXPIRES)
    assert expired is not None and expired.reasons == ("no_shipment_notice",)
    assert not bill_due(expired.snapshot, utc("2024-03-18 22:59"))
    assert bill_due(expired.snapshot, utc("2024-03-18 23:00"))
    flagged = flag_billing(expired.snapshot, utc("2024-03-19 08:00"))
    assert flagged.reply is None and flagged.snapshot.billing_flagged_at is not None
    assert not bill_due(flagged.snapshot, utc("2024-04-01 00:00"))
    with pytest.raises(TransitionError):
        flag_billing(flagged.snapshot, utc("2024-04-01 00:00"))


def test_expiry_and_billing_at_the_same_moment_is_one_event() -> None:
    t = expire_if_overdue(_rma(advance=True), EXPIRES + timedelta(days=2))
    assert t is not None and t.reasons == ("no_shipment_notice", "bill_original")
    assert t.snapshot.billing_flagged_at is not None


def test_returned_original_is_not_billed() -> None:
    received = mark_received(_rma(advance=True), ISSUED + timedelta(days=3)).snapshot
    assert not bill_due(received, EXPIRES + timedelta(days=10))
    with pytest.raises(TransitionError):
        mark_replacement_shipped(_rma(), returns(), ISSUED)


def test_unknown_rma_gets_the_policy_notice() -> None:
    from mailbot.core.rma_machine import unknown_rma_reply

    reply = unknown_rma_reply("7654321", "sv")
    assert reply.template == "rma_policy" and reply.context["reason"] == "rma_unknown"
    assert reply.context["rma_number"] == "7654321" and reply.context["language"] == "sv"


def test_reply_context_contract_is_enforced() -> None:
    from mailbot.core.transition import ReplyIntent

    with pytest.raises(ValueError, match="unknown reply template"):
        ReplyIntent("hello", {})
    with pytest.raises(ValueError, match="lacks tracking"):
        ReplyIntent(
            "tracking_ack",
            {
                "rma_number": "1",
                "product": "Sub",
                "language": "nb",
                "expires_at": EXPIRES,
                "last_day": date(2024, 3, 15),
                "carrier": None,
                "dropoff": None,
                "updated": False,
            },
        )


# --- what a notice must carry (returns policy `notice`) ----------------------------------


def test_notice_without_dropoff_time_asks_for_it_and_moves_nothing() -> None:
    rma = _rma()
    t = receive_notice(
        rma, returns(), "JJD0001", "DHL", None, ("dropoff_time",), ISSUED + timedelta(days=2)
    )
    assert t.kind == "rma.notice_incomplete" and not t.changed and t.snapshot == rma
    assert t.to_state == "issued" and t.reasons == ("dropoff_time_missing",)
    assert t.reply is not None and t.reply.template == "rma_missing_info"
    assert t.reply.context["missing"] == ["dropoff_time"]


def test_notice_with_both_is_acknowledged() -> None:
    dropoff = utc("2024-03-02 13:00")
    t = receive_notice(_rma(), returns(), "JJD0001", "DHL", dropoff, (), ISSUED + timedelta(days=2))
    assert t.to_state == "shipment_notified" and t.snapshot.dropoff_at == dropoff
    assert t.reply is not None and t.reply.template == "tracking_ack"


def test_notice_without_anything_asks_for_both() -> None:
    t = receive_notice(
        _rma(), returns(), None, None, None, ("tracking_number", "dropoff_time"), ISSUED
    )
    assert t.reply is not None and t.reply.context["missing"] == ["tracking_number", "dropoff_time"]
    assert t.reasons == ("tracking_number_missing", "dropoff_time_missing")


def test_tracking_proves_handover_when_the_admin_says_so() -> None:
    lenient = replace(returns(), tracking_proves_handover=True)
    t = receive_notice(_rma(), lenient, "JJD0001", "DHL", None, ("dropoff_time",), ISSUED)
    assert t.to_state == "shipment_notified"
    assert t.reply is not None and t.reply.template == "tracking_ack"
    # a drop-off time alone is still no proof: the tracking number is asked for
    t2 = receive_notice(_rma(), lenient, None, None, utc("2024-03-01 12:00"), (), ISSUED)
    assert t2.reply is not None and t2.reply.context["missing"] == ["tracking_number"]
    # a policy requiring only the tracking number accepts it without a drop-off time
    only_tracking = replace(returns(), notice_requires=("tracking_number",))
    t3 = receive_notice(_rma(), only_tracking, "JJD0001", None, None, ("dropoff_time",), ISSUED)
    assert t3.to_state == "shipment_notified"


def test_returns_policy_notice_keys_are_validated() -> None:
    from mailbot.core.errors import RulesError
    from mailbot.resources import rules_dir
    from mailbot.ruleset.campaigns import parse_returns_policy

    text = (rules_dir() / "campaigns" / "returns.yaml").read_text(encoding="utf-8")
    policy = parse_returns_policy(text)
    assert policy.notice_requires == ("tracking_number", "dropoff_time")
    assert policy.tracking_proves_handover is False
    for bad, msg in (
        ("requires: [tracking_number, dropoff_time]", "requires: [tracking_number, parcel]"),
        ("requires: [tracking_number, dropoff_time]", "requires: [dropoff_time, dropoff_time]"),
        ("tracking_proves_handover: false", "tracking_proves_handover: maybe"),
    ):
        assert bad in text
        with pytest.raises(RulesError, match="notice"):
            parse_returns_policy(text.replace(bad, msg), "returns.yaml")
    no_tracking = text.replace(
        "requires: [tracking_number, dropoff_time]", "requires: [dropoff_time]"
    ).replace("tracking_proves_handover: false", "tracking_proves_handover: true")
    with pytest.raises(RulesError, match="tracking_proves_handover"):
        parse_returns_policy(no_tracking, "returns.yaml")
