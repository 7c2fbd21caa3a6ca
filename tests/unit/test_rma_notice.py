"""RMA shipment notifications: subject variants, RMA number, tracking, drop-off, what is missing."""

from __future__ import annotations

import random
from datetime import UTC, datetime

import pytest

from mailbot.core.codes import generate_code, generate_rma_number
from mailbot.core.mail import InboundEmail
from mailbot.ruleset.matching_rules import load_matching_rules
from parsers.returns.notice import (
    ShipmentNotice,
    find_rma_number,
    is_shipment_subject,
    parse_shipment_notification,
    strip_subject_prefixes,
)
from tests.unit.claim_factories import inbound_mail

RULES = load_matching_rules()
NOW = datetime(2023, 3, 15, 18, 0, tzinfo=UTC)
RMA = generate_rma_number(random.Random(11))
BAD_RMA = RMA[:-1] + str((int(RMA[-1]) + 1) % 10)
UPS = "1Z999AA10123456784"  # UPS's documented example, check digit 4
BODY = f"Hei!\nPakken ble levert på posten i går kl 14.\nSporingsnummer: {UPS}\n\nMvh Kari"


def parse(m: InboundEmail) -> ShipmentNotice | None:
    return parse_shipment_notification(m, RULES, NOW)


def mail(subject: str, body: str = BODY, text: str | None = None) -> InboundEmail:
    return inbound_mail(
        subject,
        body,
        sender_name="Kari",
        to="returns@example.com",
        message_id="<m1@example.no>",
        text=text,
    )


@pytest.mark.parametrize(
    "subject",
    [
        f"Shipment Notification: RMA# {RMA}",
        f"shipment notification: rma# {RMA}",
        f"SHIPMENT NOTIFICATION RMA# {RMA}",
        f"Shipment Notification: RMA #{RMA}",
        f"Shipment Notification: RMA # {RMA}",
        f"Shipment Notification: RMA-{RMA}",
        f"Shipment Notification - RMA - {RMA}",
        f"Shipment Notification RMA nr. {RMA}",
        f"Shipment Notification RMA nr {RMA}",
        f"Shipment Notification: RMA no. {RMA}",
        f"Shipment Notification: RMA number {RMA}",
        f"Shipment Notification: RMA:{RMA}",
        f"Shipment Notification: RMA{RMA}",
        f"Shipment Notification: RMA-nr. {RMA}",
        f"Shipment Notification: RMA-nummer: {RMA}",
        f"Shipment Notification: RMA#: {RMA}",
        f"Shipment Notification: RMA nr: {RMA}",
        f"Shipment Notification:RMA#{RMA}",
        f"ShipmentNotification: RMA# {RMA}",
        f"Shipment-Notification RMA# {RMA}",
        f"Shipment  Notification :  RMA#  {RMA}",
        f"Re: Shipment Notification: RMA# {RMA}",
        f"SV: Shipment Notification: RMA# {RMA}",
        f"AW: Shipment Notification: RMA# {RMA}",
        f"VS: Shipment Notification: RMA# {RMA}",
        f"Vs: Shipment Notification: RMA# {RMA}",
        f"Fwd: Shipment Notification: RMA# {RMA}",
        f"VB: Shipment Notification: RMA# {RMA}",
        f"FW: Shipment Notification: RMA# {RMA}",
        f"Re: SV: Fwd: RE: Shipment Notification: RMA# {RMA}",
        f"RE[2]: Shipment Notification: RMA# {RMA}",
        f"[EXTERNAL] Re: Shipment Notification: RMA# {RMA}",
        f"Shipment notice RMA# {RMA}",
        f"RMA# {RMA} Shipment Notification",
    ],
)
def test_subject_variants(subject: str) -> None:
    notice = parse(mail(subject))
    assert notice is not None, subject
    assert notice.rma_number == RMA and notice.rma_number_valid
    assert notice.rma_from == "subject"
    assert notice.tracking is not None and notice.tracking.number == UPS
    assert notice.tracking.carrier == "UPS"
    assert notice.dropoff == datetime(2023, 3, 14, 14, 0, tzinfo=UTC)
    assert notice.dropoff_time_known
    assert notice.missing == ()


@pytest.mark.parametrize(
    "subject",
    [
        "Spørsmål om kampanjen",
        f"Re: Registrering {generate_code(random.Random(1))}",
        "Shipping costs?",
        "",
    ],
)
def test_other_mail_is_not_a_notice(subject: str) -> None:
    assert parse(mail(subject, "Hei, når får jeg pengene?")) is None


def test_rma_subject_with_tracking_in_body_counts_without_the_phrase() -> None:
    notice = parse(mail(f"Retur RMA# {RMA}"))
    assert notice is not None and notice.rma_number == RMA
    # without a tracking number it is just a question about an RMA
    assert parse(mail(f"Retur RMA# {RMA}", "Når kommer den nye?")) is None


def test_rma_number_missing_from_subject_taken_from_body() -> None:
    body = f"RMA# {RMA}\n{BODY}"
    notice = parse(mail("Shipment Notification", body))
    assert notice is not None
    assert (notice.rma_number, notice.rma_from, notice.missing) == (RMA, "body", ())


def test_no_rma_number_anywhere_is_missing() -> None:
    notice = parse(mail("Shipment Notification:"))
    assert notice is not None
    assert notice.rma_number is None and notice.missing == ("rma_number",)


def test_mistyped_rma_number_is_kept_but_invalid() -> None:
    notice = parse(mail(f"Shipment Notification: RMA# {BAD_RMA}"))
    assert notice is not None
    assert notice.rma_number == BAD_RMA and not notice.rma_number_valid
    assert notice.missing == ("rma_number",)


def test_valid_body_number_beats_mistyped_subject_number() -> None:
    body = f"Beklager, riktig nummer er RMA {RMA}.\n{BODY}"
    notice = parse(mail(f"Shipment Notification: RMA# {BAD_RMA}", body))
    assert notice is not None and notice.rma_number == RMA and notice.rma_number_valid


def test_missing_tracking_and_dropoff_are_named() -> None:
    notice = parse(mail(f"Shipment Notification: RMA# {RMA}", "Hei, den er sendt nå."))
    assert notice is not None
    assert notice.tracking is None and notice.dropoff is None
    assert notice.missing == ("tracking_number", "dropoff_time")


def test_rma_number_is_never_the_tracking_number() -> None:
    body = f"RMA# {RMA} levert i dag kl 10"
    notice = parse(mail(f"Shipment Notification: RMA# {RMA}", body))
    assert notice is not None and notice.tracking is None


def test_tracking_below_quote_separator_still_found() -> None:
    # the reply splitter may cut a pasted receipt; the full text is the fallback
    full = f"Levert i går kl 14.\n\n--\nKari\nSporingsnummer: {UPS}"
    notice = parse(mail(f"Shipment Notification: RMA# {RMA}", "Levert i går kl 14.", text=full))
    assert notice is not None and notice.tracking is not None and notice.tracking.number == UPS


def test_forwarded_notice_read_from_the_full_text() -> None:
    # "Fwd:" with nothing typed above: the splitter leaves new_text empty
    full = f"---------- Forwarded message ---------\n{BODY}"
    notice = parse(mail(f"Fwd: Shipment Notification: RMA# {RMA}", "", text=full))
    assert notice is not None and notice.missing == ()
    assert notice.dropoff == datetime(2023, 3, 14, 14, 0, tzinfo=UTC)


def test_dropoff_below_quote_separator_still_found() -> None:
    new = f"Sporingsnummer: {UPS}"
    full = f"{new}\n\n--\nLevert på posten i går kl 14"
    notice = parse(mail(f"Shipment Notification: RMA# {RMA}", new, text=full))
    assert notice is not None and notice.missing == ()


def test_swedish_notice_with_postnord_and_iso_date() -> None:
    # S10: 4*8+7*6+1*4+1*2+0*3+8*5+1*9+5*7 = 164; 164 % 11 = 10; 11 - 10 = 1
    s10 = "UA471108151SE"
    body = f"Hej! Jag lämnade paketet 2023-03-14 kl 9 hos ombudet. Kolli-ID: {s10}"
    notice = parse(mail(f"SV: Shipment notification RMA {RMA}", body))
    assert notice is not None
    assert notice.tracking is not None and notice.tracking.carrier == "PostNord"
    assert notice.dropoff == datetime(2023, 3, 14, 9, 0, tzinfo=UTC)


def test_find_rma_number() -> None:
    assert find_rma_number(f"Gjelder RMA# {RMA}, takk") == RMA
    assert find_rma_number(f"rma-{RMA}") == RMA
    assert find_rma_number(f"RMA# {BAD_RMA}") is None
    assert find_rma_number(f"ordre {RMA}") is None  # a bare number is not an RMA number
    assert find_rma_number(f"RMA# {RMA}0") is None  # too long
    assert find_rma_number(f"RMA# {RMA}", RULES) == RMA


@pytest.mark.parametrize("label", ["RMA#", "RMA-nr.", "rma nummer:", "RMA no", "RMA :", "RMA"])
def test_builtin_defaults_agree_with_the_rules_file(label: str) -> None:
    text = f"Gjelder {label} {RMA} og {label} {BAD_RMA}"
    assert find_rma_number(text) == find_rma_number(text, RULES) == RMA


def test_prefix_and_phrase_helpers() -> None:
    assert strip_subject_prefixes("Re: SV:  Fwd: Hei", RULES) == "Hei"
    assert strip_subject_prefixes("Reise til Oslo", RULES) == "Reise til Oslo"
    assert is_shipment_subject("shipment-notification", RULES)
    assert not is_shipment_subject("shipment delayed", RULES)


def test_huge_body_is_fast() -> None:
    # a pasted log or a newsletter must not stall the pipeline
    import time

    noise = " ".join(f"kl {i % 24}.{i % 60:02d} 14.03 +47 {i}0000" for i in range(20_000))
    start = time.perf_counter()
    notice = parse(mail(f"Shipment Notification: RMA# {RMA}", noise + "\n" + BODY))
    assert time.perf_counter() - start < 3.0
    assert notice is not None and notice.rma_number == RMA


# --- the RMA number in the body alone ---------------------------------------------------

S10_DK = "CP123456785DK"  # UPU S10, check digit 5


@pytest.mark.parametrize(
    "label", ["RMA nr.", "RMA-nummer:", "RMA#", "RMA", "returnummer", "Retur nr.", "rma nr.:"]
)
def test_body_only_rma_number_after_an_rma_word_is_a_notice(label: str) -> None:
    body = (
        f"Hej,\n{label} {RMA}\nPakken er sendt med Posten, trackingnummer {S10_DK}.\n"
        "Indleveret 14.03.2023 kl. 15:30.\n\nVenlig hilsen Kari"
    )
    notice = parse(mail("Returnering af Sonos Roam", body))
    assert notice is not None and notice.body_only
    assert notice.rma_number == RMA and notice.rma_number_valid and notice.rma_from == "body"
    assert notice.tracking is not None and notice.tracking.number == S10_DK
    assert notice.dropoff is not None and notice.missing == ()


def test_body_only_needs_a_valid_number_an_rma_word_and_a_tracking_number() -> None:
    tracked = f"\nSporingsnummer: {UPS}"
    # a wrong check digit, a bare number, no tracking number: not a notice
    assert parse(mail("Retur av Sonos Roam", f"RMA nr. {BAD_RMA}{tracked}")) is None
    assert parse(mail("Retur av Sonos Roam", f"Ordre {RMA}{tracked}")) is None
    assert parse(mail("Retur av Sonos Roam", f"RMA nr. {RMA}\nHvor er pengene?")) is None
    # the number in a quoted earlier mail only is not this mail's
    quoted = mail("Re: Retur", f"Sendt!{tracked}", text=f"Sendt!{tracked}\n> RMA nr. {RMA}")
    assert parse(quoted) is None


def test_subject_notices_are_not_body_only() -> None:
    notice = parse(mail(f"Shipment Notification: RMA# {RMA}"))
    assert notice is not None and not notice.body_only
    phrase_only = parse(mail("Shipment Notification", f"RMA nr. {RMA}\n{BODY}"))
    assert phrase_only is not None and not phrase_only.body_only
    assert phrase_only.rma_number == RMA


def test_body_words_are_validated() -> None:
    from mailbot.core.errors import RulesError
    from mailbot.resources import rules_dir
    from mailbot.ruleset.matching_rules import parse_matching_rules

    text = (rules_dir() / "matching.yaml").read_text(encoding="utf-8")
    broken = text.replace("    - returnummer\n", "    - '--'\n", 1)
    assert broken != text
    with pytest.raises(RulesError, match="body_words"):
        parse_matching_rules(broken, "matching.yaml")
