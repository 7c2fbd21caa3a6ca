"""Claim matching: signals strongest first, conflicts to review with a reason."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mailbot.core.claim_match import (
    ClaimDirectory,
    ClaimRef,
    InMemoryClaimDirectory,
    MatchResult,
    dmarc_failed,
    hold_reasons,
    match_claim,
)
from mailbot.core.codes import generate_code, is_valid_code
from mailbot.core.mail import AuthResult, InboundEmail
from tests.unit.claim_factories import inbound_mail

_rng = random.Random(2023)
CODE_A, CODE_B, CODE_C, CODE_UNKNOWN = (generate_code(_rng) for _ in range(4))
A = ClaimRef(1, CODE_A, "kari@example.no", "awaiting_documents")
B = ClaimRef(2, CODE_B, "ola@example.no", "incomplete")
C = ClaimRef(3, CODE_C, "Ola@Example.NO", "registered")
PAID = ClaimRef(4, generate_code(_rng), "per@example.no", "paid")
SENT_A = "<conf-1@mailbot.example.com>"
SENT_B = "<conf-2@mailbot.example.com>"

DIRECTORY = (
    InMemoryClaimDirectory()
    .with_claim(A, SENT_A)
    .with_claim(B, SENT_B)
    .with_claim(C)
    .with_claim(PAID)
)


def mail(
    subject: str = "Kvittering",
    body: str = "Her er kvitteringen.",
    sender: str | None = "kari@example.no",
    in_reply_to: tuple[str, ...] = (),
    references: tuple[str, ...] = (),
    text: str | None = None,
    auth: tuple[AuthResult, ...] = (),
) -> InboundEmail:
    return inbound_mail(
        subject,
        body,
        sender=sender,
        in_reply_to=in_reply_to,
        references=references,
        text=text,
        auth=auth,
    )


def test_directory_satisfies_protocol() -> None:
    d: ClaimDirectory = DIRECTORY
    assert d.by_code(CODE_A) == A
    assert d.by_sent_message_id("conf-1@mailbot.example.com") == A
    assert d.open_claims_for("OLA@example.no") == (B, C)
    assert d.open_claims_for("per@example.no") == ()  # paid is not open


def test_thread_reply_is_strongest() -> None:
    r = match_claim(mail(in_reply_to=(SENT_A,)), DIRECTORY)
    assert (r.status, r.claim, r.signal, r.strength) == ("matched", A, "thread", 1.0)


def test_thread_via_references_newest_first() -> None:
    r = match_claim(mail(references=("<old@elsewhere>", SENT_A)), DIRECTORY)
    assert r.matched and r.claim == A and r.signal == "thread"


def test_thread_names_the_claim_but_another_sender_is_held() -> None:
    # whoever holds a forwarded confirmation can answer in its thread: the claim is
    # found, but only its claimant may move it
    r = match_claim(mail(sender="spouse@example.no", in_reply_to=(SENT_A,)), DIRECTORY)
    assert (r.status, r.claim, r.signal, r.reason) == ("held", A, "thread", "sender_not_claimant")
    assert not r.matched


def test_thread_reply_without_from_is_held() -> None:
    r = match_claim(mail(sender=None, in_reply_to=(SENT_A,)), DIRECTORY)
    assert (r.status, r.reason) == ("held", "sender_not_claimant")


def test_thread_plus_same_code_is_fine() -> None:
    r = match_claim(mail(subject=f"Re: Registrering {CODE_A}", in_reply_to=(SENT_A,)), DIRECTORY)
    assert r.matched and r.signal == "thread"
    assert [s.name for s in r.signals] == ["thread", "subject_code"]


def test_thread_with_other_claims_code_goes_to_review() -> None:
    r = match_claim(mail(body=f"Gjelder {CODE_B}", in_reply_to=(SENT_A,)), DIRECTORY)
    assert (r.status, r.reason) == ("review", "thread_conflict")
    assert set(r.candidates) == {1, 2}


def test_thread_with_unknown_valid_number_still_matches() -> None:
    r = match_claim(
        mail(body=f"Kundenr hos butikken: x {CODE_UNKNOWN}", in_reply_to=(SENT_A,)), DIRECTORY
    )
    assert r.matched and r.claim == A and r.codes == (CODE_UNKNOWN,)


def test_reply_naming_two_of_our_claims_goes_to_review() -> None:
    r = match_claim(mail(in_reply_to=(SENT_A,), references=(SENT_B, SENT_A)), DIRECTORY)
    assert (r.status, r.reason, set(r.candidates)) == ("review", "thread_conflict", {1, 2})


def test_code_in_subject() -> None:
    r = match_claim(mail(subject=f"SV: Registrering {CODE_A}"), DIRECTORY)
    assert (r.status, r.claim, r.signal, r.strength) == ("matched", A, "subject_code", 0.9)


def test_code_in_new_text() -> None:
    r = match_claim(mail(body=f"Koden min er {CODE_A}."), DIRECTORY)
    assert (r.status, r.claim, r.signal, r.strength) == ("matched", A, "body_code", 0.7)


def test_code_only_in_quoted_text_is_not_used() -> None:
    quoted = f"Her er den.\n\n> Din kode er {CODE_B}"
    r = match_claim(mail(body="Her er den.", text=quoted, sender="nobody@example.no"), DIRECTORY)
    assert (r.status, r.reason) == ("review", "no_match")


def test_same_code_twice_is_one_code() -> None:
    r = match_claim(mail(subject=f"Kode {CODE_A}", body=f"Kode: {CODE_A}"), DIRECTORY)
    assert r.matched and r.signal == "subject_code" and r.codes == (CODE_A,)


def test_two_codes_go_to_review() -> None:
    r = match_claim(mail(subject=f"Kode {CODE_A}", body=f"eller {CODE_B}?"), DIRECTORY)
    assert (r.status, r.reason) == ("review", "two_codes")
    assert r.claim is None and set(r.candidates) == {1, 2}


def test_code_of_another_address_is_held_on_that_claim() -> None:
    r = match_claim(mail(subject=f"Kode {CODE_B}", sender="kari@example.no"), DIRECTORY)
    assert (r.status, r.reason, r.claim, r.signal) == (
        "held",
        "code_other_address",
        B,
        "subject_code",
    )


def test_address_comparison_is_case_insensitive() -> None:
    r = match_claim(mail(subject=f"Kode {CODE_C}", sender="ola@EXAMPLE.no"), DIRECTORY)
    assert r.matched and r.claim == C


def test_unknown_valid_code_goes_to_review() -> None:
    assert is_valid_code(CODE_UNKNOWN)
    r = match_claim(mail(subject=f"Kode {CODE_UNKNOWN}"), DIRECTORY)
    assert (r.status, r.reason) == ("review", "code_unknown")


def test_mistyped_code_is_ignored_and_reported() -> None:
    typo = CODE_A[:-1] + str((int(CODE_A[-1]) + 1) % 10)
    r = match_claim(mail(subject=f"Kode {typo}", sender="nobody@example.no"), DIRECTORY)
    assert (r.status, r.reason) == ("review", "no_match")
    assert r.mistyped_codes == (typo,) and r.codes == ()


def test_mistyped_code_does_not_match_someone_elses_claim() -> None:
    # every single-digit typo of A's code: never A, never anyone else
    for pos in range(8):
        for d in "0123456789":
            if d == CODE_A[pos]:
                continue
            typo = CODE_A[:pos] + d + CODE_A[pos + 1 :]
            r = match_claim(mail(subject=f"Kode {typo}", sender="x@example.no"), DIRECTORY)
            assert not r.matched


def test_order_number_is_not_taken_for_a_code() -> None:
    r = match_claim(mail(body=f"Ordrenummer: {CODE_B}", sender="kari@example.no"), DIRECTORY)
    assert r.matched and r.claim == A and r.signal == "open_claim"


def test_single_open_claim_of_sender() -> None:
    r = match_claim(mail(sender="KARI@example.no"), DIRECTORY)
    assert (r.status, r.claim, r.signal, r.strength) == ("matched", A, "open_claim", 0.5)


def test_several_open_claims_go_to_review() -> None:
    r = match_claim(mail(sender="ola@example.no"), DIRECTORY)
    assert (r.status, r.reason, r.candidates) == ("review", "ambiguous_open_claims", (2, 3))


def test_no_open_claim_no_match() -> None:
    assert match_claim(mail(sender="per@example.no"), DIRECTORY).reason == "no_match"
    assert match_claim(mail(sender=None), DIRECTORY).reason == "no_match"


def test_code_without_sender_address_goes_to_review() -> None:
    r = match_claim(mail(subject=f"Kode {CODE_A}", sender=None), DIRECTORY)
    assert (r.status, r.reason, r.claim) == ("held", "code_other_address", A)


def test_unknown_message_id_falls_through_to_code() -> None:
    r = match_claim(mail(subject=f"Kode {CODE_A}", in_reply_to=("<nope@x>",)), DIRECTORY)
    assert r.matched and r.signal == "subject_code"


def test_custom_ignore_words() -> None:
    m = mail(body=f"Bestellnummer {CODE_A}", sender="kari@example.no")
    assert match_claim(m, DIRECTORY).signal == "body_code"
    r = match_claim(m, DIRECTORY, ignore_words=("bestell",))
    assert r.codes == () and r.signal == "open_claim"


def _invariants(r: MatchResult) -> None:
    if r.status == "matched":
        assert r.claim is not None and r.reason is None and r.signal is not None
        assert r.strength > 0
    elif r.status == "held":
        assert r.claim is not None and r.reason is not None and r.signal is not None
    else:
        assert r.claim is None and r.reason is not None and r.strength == 0


@settings(max_examples=200)
@given(
    subject=st.text(max_size=40) | st.sampled_from([f"Kode {CODE_A}", f"{CODE_B} {CODE_C}"]),
    body=st.text(max_size=60) | st.sampled_from([f"kode {CODE_B}", f"{CODE_UNKNOWN}", ""]),
    sender=st.sampled_from([None, "kari@example.no", "ola@example.no", "x@y.z"]),
    irt=st.sampled_from([(), (SENT_A,), (SENT_B,), ("<z@z>",)]),
)
def test_result_is_always_consistent(
    subject: str, body: str, sender: str | None, irt: tuple[str, ...]
) -> None:
    r = match_claim(mail(subject=subject, body=body, sender=sender, in_reply_to=irt), DIRECTORY)
    _invariants(r)
    for c in r.codes:
        assert is_valid_code(c)
    if r.matched:
        # only the claimant's own mail may move a claim, whatever signal found it
        assert r.claim is not None and sender is not None
        assert r.claim.email.casefold() == sender.casefold()


@pytest.mark.parametrize("state", ["paid", "void", "rejected", "approved"])
def test_closed_claims_are_not_open(state: str) -> None:
    d = InMemoryClaimDirectory().with_claim(ClaimRef(9, CODE_A, "k@example.no", state))
    assert match_claim(mail(sender="k@example.no"), d).reason == "no_match"
    # a code still finds it; what to do with a closed claim is the claim rules' call
    assert match_claim(mail(subject=CODE_A, sender="k@example.no"), d).matched


OURS_FAIL = AuthResult("mx.ours.no", "dmarc", "fail", "example.no", 0)
OURS_PASS = AuthResult("mx.ours.no", "dmarc", "pass", "example.no", 0)
FORGED_PASS = AuthResult("mx.ours.no", "dmarc", "pass", "example.no", 1)
OTHER_FAIL = AuthResult("mx.forwarder.example", "dmarc", "fail", "example.no", 1)


def test_dmarc_fail_of_the_claimants_own_address_is_held() -> None:
    # a spoofed From naming the claimant: found by her code, but it may not move her claim
    m = mail(subject=f"Kode {CODE_A}", auth=(OURS_FAIL,))
    r = match_claim(m, DIRECTORY)
    assert (r.status, r.claim, r.reason, r.dmarc_fail) == ("held", A, "dmarc_fail", True)
    assert r.reasons == ("dmarc_fail",)
    for m in (mail(auth=(OURS_FAIL,)), mail(in_reply_to=(SENT_A,), auth=(OURS_FAIL,))):
        r = match_claim(m, DIRECTORY)
        assert (r.status, r.claim, r.reason) == ("held", A, "dmarc_fail")


def test_stranger_failing_dmarc_has_both_reasons() -> None:
    m = mail(sender="x@evil.example", in_reply_to=(SENT_A,), auth=(OURS_FAIL,))
    r = match_claim(m, DIRECTORY)
    assert (r.status, r.reasons) == ("held", ("sender_not_claimant", "dmarc_fail"))


def test_dmarc_fail_on_a_review_is_noted() -> None:
    r = match_claim(mail(sender="nobody@example.no", auth=(OURS_FAIL,)), DIRECTORY)
    assert (r.status, r.reasons, r.claim) == ("review", ("no_match", "dmarc_fail"), None)


def test_passing_or_absent_results_change_nothing() -> None:
    for auth in ((), (OURS_PASS,), (AuthResult("mx.ours.no", "dmarc", "none", None, 0),)):
        r = match_claim(mail(auth=auth), DIRECTORY)
        assert r.matched and r.claim == A and not r.dmarc_fail


def test_a_forged_pass_below_ours_does_not_hide_our_fail() -> None:
    assert dmarc_failed(mail(auth=(OURS_FAIL, FORGED_PASS)))
    assert dmarc_failed(mail(auth=(OURS_FAIL, FORGED_PASS)), ("mx.ours.no",))


def test_trusted_ids_decide_whose_verdict_counts() -> None:
    m = mail(auth=(OURS_PASS, OTHER_FAIL))
    assert dmarc_failed(m)  # nothing configured: every header counts
    assert not dmarc_failed(
        m, ("MX.ours.no",)
    )  # our server said pass; the forwarder's fail is not ours
    assert dmarc_failed(m, ("mx.forwarder.example",))
    exchange = mail(auth=(AuthResult("", "dmarc", "fail", "example.no", 0),))
    assert not dmarc_failed(exchange, ("mx.ours.no",))
    assert dmarc_failed(exchange, ("",))  # Exchange Online's headers name no server
    assert match_claim(m, DIRECTORY, trusted_authserv_ids=("mx.ours.no",)).matched
    r = match_claim(m, DIRECTORY, trusted_authserv_ids=())
    assert (r.status, r.reason) == ("held", "dmarc_fail")


def test_dkim_or_spf_fail_alone_does_not_hold() -> None:
    # DMARC is the verdict about the From a person reads; SPF and DKIM alone are not
    auth = (
        AuthResult("mx.ours.no", "spf", "fail", "example.no", 0),
        AuthResult("mx.ours.no", "dkim", "fail", "example.no", 0),
    )
    assert match_claim(mail(auth=auth), DIRECTORY).matched


def test_hold_reasons_for_an_rma_owner() -> None:
    assert hold_reasons(mail(sender="Ola@Example.no"), "ola@example.no") == ()
    assert hold_reasons(mail(sender="x@example.no"), "ola@example.no") == ("sender_not_claimant",)
    assert hold_reasons(mail(sender=None), "ola@example.no") == ("sender_not_claimant",)
    m = mail(sender="ola@example.no", auth=(OURS_FAIL,))
    assert hold_reasons(m, "ola@example.no") == ("dmarc_fail",)
    assert hold_reasons(m, "ola@example.no", ("mx.other",)) == ()
