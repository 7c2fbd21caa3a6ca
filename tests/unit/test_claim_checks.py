"""The campaign-check table: its order and kinds as documented, every reason a check
gives is one it declares, every reason a customer reads has words in every language,
and `decide` applies the precedence reject > review > incomplete > unsure > validated."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import date, timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mailbot.core import claim_rules
from mailbot.core.campaign import Campaign
from mailbot.core.claim_rules import (
    CHECKS,
    INCOMPLETE_REASONS,
    REASONS,
    REJECTION_REASONS,
    REVIEW_REASONS,
    Case,
    Check,
    decide,
    read_case,
)
from mailbot.core.claim_state import Claim, DocumentEvidence
from mailbot.core.receipt_fields import RECEIPT_FIELDS, DocumentKind
from mailbot.ruleset.campaigns import load_campaigns
from mailbot.templating.render import LANGUAGES, Templates
from tests.unit.claim_factories import (
    cashback,
    new_claim,
    promo,
    promo_receipt,
    receipt,
    serial_photo,
    utc,
)

# The table as the README documents it, written out independently of the code:
# (name, kind, reasons). Order is the order reasons are listed within a kind.
DOCUMENTED = [
    ("receipts_agree", "review", ("receipt_conflict",)),
    ("purchase_date_matches", "review", ("bad_purchase_date", "purchase_date_mismatch")),
    ("purchase_in_window", "reject", ("purchase_outside_window",)),
    ("model_eligible", "reject", ("model_not_eligible",)),
    ("model_matches", "review", ("model_mismatch",)),
    ("retailer_matches", "review", ("retailer_mismatch",)),
    ("retailer_authorized", "reject", ("retailer_not_authorized",)),
    ("serial_matches", "review", ("serial_mismatch",)),
    ("claimed_in_window", "reject", ("claimed_too_early", "claimed_too_late")),
    ("first_mail_known", "review", ("first_mail_unknown",)),
    ("claimed_after_first_mail", "reject", ("claimed_too_late",)),
    ("private_buyer", "reject", ("company_buyer",)),
    ("country_participates", "reject", ("country_not_participating",)),
    ("documents_present", "incomplete", ("missing_document",)),
    ("fields_present", "incomplete", ("missing_field",)),
    ("fields_confident", "unsure", ("low_confidence",)),
    ("buyer_unsure", "unsure", ("possible_company_buyer",)),
]  # fmt: skip

T = Templates()


def test_checks_are_enumerated_in_the_documented_order() -> None:
    assert [(c.name, c.kind, c.reasons) for c in CHECKS] == DOCUMENTED
    assert len({c.name for c in CHECKS}) == len(CHECKS)
    assert claim_rules.PRECEDENCE == ("reject", "review", "incomplete", "unsure")


def test_reason_lists_are_derived_from_the_table() -> None:
    assert set(REJECTION_REASONS) == {
        "purchase_outside_window", "model_not_eligible", "claimed_too_early",
        "claimed_too_late", "company_buyer", "retailer_not_authorized",
        "country_not_participating",
    }  # fmt: skip
    assert set(REVIEW_REASONS) == {
        "purchase_date_mismatch", "model_mismatch", "retailer_mismatch", "serial_mismatch",
        "receipt_conflict", "low_confidence", "bad_purchase_date", "first_mail_unknown",
        "possible_company_buyer",
    }  # fmt: skip
    assert INCOMPLETE_REASONS == ("missing_document", "missing_field")
    assert set(REASONS) == set(REJECTION_REASONS) | set(REVIEW_REASONS) | set(INCOMPLETE_REASONS)
    # Each code lists once even when two checks can give it (claimed_too_late).
    assert len(REJECTION_REASONS) == len(set(REJECTION_REASONS))


@pytest.mark.parametrize("campaign_id", [None, *sorted(load_campaigns())])
@pytest.mark.parametrize("lang", LANGUAGES)
def test_every_reason_a_customer_reads_has_words(lang: str, campaign_id: str | None) -> None:
    """Rejection mails word the code; missing-info mails word the detail (a document kind
    or a receipt field); review reasons are never told to the customer."""
    words = T.words(lang, campaign_id)
    rejecting = {r for c in CHECKS if c.kind == "reject" for r in c.reasons}
    assert rejecting - set(words["reasons"]) == set()
    documents = {k.value for k in DocumentKind} - {DocumentKind.OTHER.value}
    assert documents - set(words["documents"]) == set()
    assert set(RECEIPT_FIELDS) - set(words["fields"]) == set()
    for campaign in load_campaigns().values():
        assert set(campaign.required_documents) <= set(words["documents"])
        assert set(campaign.required_fields) <= set(words["fields"])


# Claims and documents varied around the shipped campaigns' edges: the findings of every
# check, on every case, must be codes it declares.
_models = st.sampled_from(["WH-1000XM5", "WH-1000XM5", "Play:5", "PlayStation 5", ""])
_dates = st.sampled_from(
    [None, date(2022, 12, 1), date(2022, 10, 1), date(2023, 1, 20), date(2018, 4, 20)]
)
_docs = st.lists(
    st.one_of(
        st.builds(
            receipt,
            st.sampled_from(["r1", "r2", "r3"]),
            retailer=st.sampled_from([None, "Elkjøp", "Elgiganten", "Teknikmagasinet"]),
            purchase_date=st.sampled_from([None, "2022-12-01", "2023-01-20", "2022-13-45"]),
            product=st.sampled_from([None, "WH-1000XM5", "WF-1000XM4", "Play:5"]),
            vat_number=st.sampled_from([None, "NO123456785", "NO9"]),
            low=st.sampled_from([(), ("vat_number",), ("retailer", "product")]),
        ),
        st.builds(serial_photo, st.sampled_from(["s1", "s2"]), st.sampled_from([None, "X1"])),
        st.builds(promo_receipt, st.sampled_from(["p1", "p2"])),
    ),
    max_size=4,
)


@st.composite
def _cases(draw: st.DrawFn) -> tuple[Claim, Campaign]:
    campaign = draw(st.sampled_from([cashback(), promo()]))
    at = utc(draw(st.sampled_from(["2023-01-10 12:00", "2023-03-20 10:00", "2018-04-20 10:00"])))
    claim = new_claim(
        campaign,
        now=at,
        model=draw(_models),
        purchase_date=draw(_dates),
        retailer=draw(st.sampled_from([None, "Elkjøp", "Power"])),
        serial=draw(st.sampled_from([None, "S01-123"])),
        country=draw(st.sampled_from([None, "NO", "SE", "PL"])),
        company=draw(st.booleans()),
        first_campaign_mail_on=draw(st.sampled_from([None, date(2018, 4, 2)])),
    )
    docs: list[DocumentEvidence] = draw(_docs)
    received = [replace(d, received_at=at) for d in docs]
    return replace(claim, documents=tuple(received)), campaign


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=_cases(), later=st.integers(min_value=0, max_value=24 * 60))
def test_every_finding_is_a_declared_reason(case: tuple[Claim, Campaign], later: int) -> None:
    claim, campaign = case
    now = claim.registered_at + timedelta(hours=later)
    read = read_case(claim, campaign, now)
    for check in CHECKS:
        for reason in check.run(read):
            assert reason.partition(":")[0] in check.reasons, (check.name, reason)
    d = decide(claim, campaign, now)
    assert {r.partition(":")[0] for r in d.reasons} <= {*REASONS, "all_checks_passed"}


def _always(code: str) -> Check:
    def run(case: Case) -> Iterator[str]:
        yield code

    return Check(code, "review", (code,), run)


@pytest.mark.parametrize(
    ("kinds", "outcome"),
    [
        (("unsure", "incomplete", "review", "reject"), "rejected"),
        (("unsure", "incomplete", "review"), "review"),
        (("unsure", "incomplete"), "incomplete"),
        (("unsure",), "review"),
        ((), "validated"),
    ],
)
def test_decide_applies_the_precedence_between_kinds(
    monkeypatch: pytest.MonkeyPatch, kinds: tuple[claim_rules.Kind, ...], outcome: str
) -> None:
    table = tuple(replace(_always(f"{k}_found"), kind=k) for k in kinds)
    monkeypatch.setattr(claim_rules, "CHECKS", table)
    at = utc("2023-01-10 12:00")
    d = decide(new_claim(now=at), cashback(), at)
    assert d.outcome == outcome
    expected = (f"{kinds[-1]}_found",) if kinds else ("all_checks_passed",)
    assert d.reasons == expected


def test_a_fraud_signal_ranks_with_review_below_a_rejection() -> None:
    at = utc("2023-01-10 12:00")
    claim = new_claim(now=at, country="SE")
    docs = (receipt(), serial_photo())
    claim = replace(claim, documents=docs)
    d = decide(claim, cashback(), at, ["duplicate_receipt_sha256"])
    assert (d.outcome, d.reasons) == ("rejected", ("country_not_participating",))
    ok = decide(replace(claim, country=None), cashback(), at, ["duplicate_receipt_sha256"])
    assert (ok.outcome, ok.reasons) == ("review", ("duplicate_receipt_sha256",))


def test_rejection_reasons_are_listed_in_table_order_once() -> None:
    # A company buyer from Poland, registered after the last day and more than six
    # weeks after the first campaign mail: both late checks fire, the code lists once.
    at = utc("2018-06-20 10:00")
    claim = new_claim(promo(), now=at, company=True, country="PL")
    window = replace(promo().claim_window, closes_on=date(2018, 6, 1))
    campaign = replace(promo(), claim_window=window)
    claim = replace(claim, documents=(promo_receipt(),))
    read = read_case(claim, campaign, at)
    late = [c.name for c in CHECKS if "claimed_too_late" in c.run(read)]
    assert late == ["claimed_in_window", "claimed_after_first_mail"]
    d = decide(claim, campaign, at)
    assert d.outcome == "rejected"
    assert d.reasons == ("claimed_too_late", "company_buyer", "country_not_participating")


def test_two_readings_of_one_shop_or_product_do_not_conflict() -> None:
    claim = new_claim(purchase_date=None)
    pairs = [
        ("retailer", "Hansen Lyd", "Hansen Lyd AS"),  # brand on one, legal name on the other
        ("retailer", "Hansen Lyd AS", "Hansen Lvd AS"),  # an OCR slip
        ("retailer", "Elkjøp", "elkjop"),
        ("product", "WH-1000XM5", "wh 1000xm5"),
        ("vat_number", "NO 923609016 MVA", "923609016"),
    ]
    for name, a, b in pairs:
        docs = [receipt("r1", **{name: a}), receipt("r2", **{name: b})]  # type: ignore[arg-type]
        case = read_case(replace(claim, documents=tuple(docs)), cashback(), utc("2023-01-10"))
        assert case.conflicts == (), (name, a, b)
    # a receipt number on one document, another or none on the other: no conflict
    docs = [receipt("r1", receipt_number="4711"), receipt("r2", receipt_number="FA-1")]
    case = read_case(replace(claim, documents=tuple(docs)), cashback(), utc("2023-01-10"))
    assert case.conflicts == ()
    docs = [receipt("r1", retailer="Hansen Lyd AS"), receipt("r2", retailer="Nordlys Lyd AS")]
    case = read_case(replace(claim, documents=tuple(docs)), cashback(), utc("2023-01-10"))
    assert case.conflicts == ("retailer",)
