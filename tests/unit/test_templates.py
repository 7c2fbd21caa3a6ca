"""Mail templates: every one renders in every language, says what it must, and the
lookup order (site -> campaign -> language -> English) holds."""

from __future__ import annotations

import shutil
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from markupsafe import escape

from mailbot import resources
from mailbot.core.errors import TemplateError
from mailbot.templating.render import (
    LANGUAGES,
    SAMPLE_CONTEXT,
    TEMPLATE_NAMES,
    Templates,
    check_templates,
    format_amount,
    format_date,
)

T = Templates()


def test_all_templates_check_clean() -> None:
    assert check_templates() == []


@pytest.mark.parametrize("lang", LANGUAGES)
@pytest.mark.parametrize("name", TEMPLATE_NAMES)
def test_every_template_renders_in_every_language(name: str, lang: str) -> None:
    mail = T.render(name, lang, SAMPLE_CONTEXT[name])
    assert mail.language == lang
    assert "\n" not in mail.subject and mail.subject == mail.subject.strip()
    ctx = SAMPLE_CONTEXT[name]
    ref = f"RMA# {ctx['rma_number']}" if ctx.get("rma_number") else f"[Ref {ctx['code']}]"
    assert ref in mail.subject
    assert mail.html is not None and f'<html lang="{lang}">' in mail.html
    for part in (mail.subject, mail.text, mail.html):
        assert "{{" not in part and "{%" not in part and "None" not in part
    assert "\n\n\n" not in mail.text
    if ctx.get("name"):
        assert ctx["name"] in mail.text


@pytest.mark.parametrize("name", TEMPLATE_NAMES)
def test_a_missing_variable_is_an_error_not_a_hole(name: str) -> None:
    # Dropping any documented variable must fail loudly. The one exception:
    # rma_policy reads expired_on only for an expired RMA (tested below).
    required = [k for k in SAMPLE_CONTEXT[name] if (name, k) != ("rma_policy", "expired_on")]
    for key in required:
        context = {k: v for k, v in SAMPLE_CONTEXT[name].items() if k != key}
        with pytest.raises(TemplateError, match=key):
            T.render(name, "nb", context)


def test_conditionally_used_variables_are_still_required_where_used() -> None:
    ctx: dict[str, Any] = {**SAMPLE_CONTEXT["rma_policy"], "status": "expired"}
    del ctx["expired_on"]
    with pytest.raises(TemplateError, match="expired_on"):
        T.render("rma_policy", "en", ctx)
    reminder = {k: v for k, v in SAMPLE_CONTEXT["reminder"].items() if k != "code"}
    with pytest.raises(TemplateError, match="code"):
        T.render("reminder", "sv", reminder)


@pytest.mark.parametrize("lang", LANGUAGES)
def test_missing_info_names_each_missing_item_and_the_deadline(lang: str) -> None:
    words = T.words(lang)
    docs = ["receipt", "serial_photo"]
    fields = ["retailer", "purchase_date", "product", "vat_number"]
    deadline = date(2023, 2, 3)
    ctx = {**SAMPLE_CONTEXT["missing_info"], "missing_documents": docs, "missing_fields": fields}
    mail = T.render("missing_info", lang, ctx)
    assert mail.html is not None
    for code in docs:
        assert words["documents"][code] in mail.text
        assert str(escape(words["documents"][code])) in mail.html
    for code in fields:
        assert words["fields"][code] in mail.text
        assert str(escape(words["fields"][code])) in mail.html
    assert format_date(lang, deadline, weekday=True) in mail.text
    assert "JPG" in mail.text and "PDF" in mail.text and " 5 M" in mail.text


def test_missing_info_lists_only_what_is_missing() -> None:
    ctx = {
        **SAMPLE_CONTEXT["missing_info"],
        "missing_documents": [],
        "missing_fields": ["vat_number"],
    }
    text = T.render("missing_info", "nb", ctx).text
    assert "organisasjonsnummer (MVA-nummer)" in text
    for other in ("kjøpsdato", "serienummeret", "Dette mangler:"):
        assert other not in text


@pytest.mark.parametrize("lang", LANGUAGES)
def test_rejected_gives_each_reason_in_plain_words(lang: str) -> None:
    words = T.words(lang)["reasons"]
    codes = sorted(words)
    text = T.render("rejected", lang, {**SAMPLE_CONTEXT["rejected"], "reasons": codes}).text
    for code in codes:
        assert words[code] in text
        assert code not in text  # never the code itself


def test_unknown_codes_do_not_break_a_mail() -> None:
    ctx = {**SAMPLE_CONTEXT["rejected"], "reasons": ["something_new"]}
    assert "does not meet the campaign terms" in T.render("rejected", "en", ctx).text
    files = [{"filename": "x.heic2", "reason": "brand_new_code"}]
    ctx2 = {**SAMPLE_CONTEXT["attachment_refused"], "files": files}
    assert (
        "x.heic2: this file type is not accepted" in T.render("attachment_refused", "en", ctx2).text
    )


def test_attachment_refused_names_each_file_with_its_reason() -> None:
    mail = T.render("attachment_refused", "nb", SAMPLE_CONTEXT["attachment_refused"])
    assert "stort-bilde.jpg: filen er større enn 5 MB" in mail.text
    assert "dokumenter.zip: komprimerte filer (som ZIP) godtas ikke" in mail.text
    unmatched = {**SAMPLE_CONTEXT["attachment_refused"], "code": None}
    assert "Ref" not in T.render("attachment_refused", "nb", unmatched).subject


def test_approved_states_amount_and_payment_time() -> None:
    ctx = {**SAMPLE_CONTEXT["approved"], "amount": Decimal("1620.00"), "currency": "NOK"}
    assert "Du får 1 620 NOK utbetalt" in T.render("approved", "nb", ctx).text
    assert "innen 28 dager" in T.render("approved", "nb", ctx).text
    assert "NOK 1,620" in T.render("approved", "en", ctx).text
    assert "1.620 NOK" in T.render("approved", "da", ctx).text


def test_rma_mails_carry_number_tracking_carrier_and_time() -> None:
    ack = T.render("tracking_ack", "nb", SAMPLE_CONTEXT["tracking_ack"]).text
    assert "1Z999AA10123456784" in ack and "UPS" in ack
    assert "21. januar 2023 kl. 15:30" in ack  # 14:30 UTC shown in Oslo time
    no_time = {**SAMPLE_CONTEXT["tracking_ack"], "dropoff_at": None, "carrier": None}
    assert "ikke oppgitt" in T.render("tracking_ack", "nb", no_time).text
    issued = T.render("rma_issued", "en", SAMPLE_CONTEXT["rma_issued"]).text
    assert 'subject "Shipment Notification: RMA# 7654321"' in issued
    assert "14 days" in issued and "Friday 3 February 2023" in issued


def test_rma_policy_states_the_rule_for_unknown_and_expired() -> None:
    unknown = T.render("rma_policy", "nb", SAMPLE_CONTEXT["rma_policy"]).text
    assert "gyldig i 14 dager" in unknown and "dag 15" in unknown
    expired = {
        **SAMPLE_CONTEXT["rma_policy"],
        "status": "expired",
        "expired_on": date(2023, 2, 4),
    }
    text = T.render("rma_policy", "en", expired).text
    assert "has expired (on 4 February 2023)" in text and "expires on day 15" in text
    no_number = {**SAMPLE_CONTEXT["rma_policy"], "rma_number": None}
    assert "RMA#" not in T.render("rma_policy", "sv", no_number).subject


def test_html_escapes_customer_text_and_plain_text_does_not() -> None:
    ctx = {
        **SAMPLE_CONTEXT["documents_received"],
        "filenames": ["<b>x</b>.pdf"],
        "name": "Ann & Bo",
    }
    mail = T.render("documents_received", "en", ctx)
    assert mail.html is not None
    assert "&lt;b&gt;x&lt;/b&gt;.pdf" in mail.html and "Ann &amp; Bo" in mail.html
    assert "<b>x</b>.pdf" in mail.text and "Ann & Bo" in mail.text


def test_formatting_per_language() -> None:
    d = date(2023, 3, 16)
    assert format_date("nb", d) == "16. mars 2023"
    assert format_date("sv", d, weekday=True) == "torsdagen den 16 mars 2023"
    assert format_date("da", d, weekday=True) == "torsdag den 16. marts 2023"
    assert format_date("da", d) == "16. marts 2023"
    assert format_date("fi", d, weekday=True) == "torstaina 16.3.2023"
    assert format_date("en", d) == "16 March 2023"
    assert format_amount("sv", Decimal("1650"), "SEK") == "1 650 SEK"
    assert format_amount("fi", Decimal("199.5"), "EUR") == "199,50 EUR"
    assert format_amount("en", 200, "USD") == "USD 200"


def test_datetime_shown_in_the_given_zone() -> None:
    ctx = {
        **SAMPLE_CONTEXT["tracking_ack"],
        "dropoff_at": datetime(2023, 1, 21, 14, 30, tzinfo=UTC),
        "timezone": "Europe/Helsinki",
    }
    assert "21.1.2023 klo 16.30" in T.render("tracking_ack", "fi", ctx).text
    assert (
        "21 January 2023 at 14:30 UTC"
        in T.render("tracking_ack", "en", {**ctx, "timezone": None}).text
    )


# ------------------------------------------------------------------ lookup order


def _tree(tmp: Path) -> tuple[Path, Path]:
    builtin = tmp / "builtin"
    shutil.copytree(resources.templates_dir(), builtin)
    site = tmp / "site"
    return builtin, site


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


def test_lookup_order_site_then_campaign_then_language_then_english(tmp_path: Path) -> None:
    builtin, site = _tree(tmp_path)
    ctx = SAMPLE_CONTEXT["approved"]
    _write(builtin / "campaigns" / "promo" / "nb" / "approved.subject.j2", "campaign {{ code }}")
    _write(site / "nb" / "approved.subject.j2", "site {{ code }}")

    with_site = Templates(site, builtin_dir=builtin)
    without_site = Templates(None, builtin_dir=builtin)
    assert with_site.render("approved", "nb", ctx, "promo").subject == "site 12345678"
    assert without_site.render("approved", "nb", ctx, "promo").subject == "campaign 12345678"
    # the campaign's override only applies to that campaign
    assert without_site.render("approved", "nb", ctx).subject.startswith("Kravet ditt er godkjent")
    # a campaign override in the site dir beats the site's language override
    _write(site / "campaigns" / "promo" / "nb" / "approved.subject.j2", "site campaign {{ code }}")
    fresh = Templates(site, builtin_dir=builtin)
    assert fresh.render("approved", "nb", ctx, "promo").subject == "site campaign 12345678"
    # parts not overridden come from the built-in language
    assert "Gode nyheter" in fresh.render("approved", "nb", ctx, "promo").text


def test_a_language_without_the_template_falls_back_to_english(tmp_path: Path) -> None:
    builtin, _ = _tree(tmp_path)
    for part in ("subject", "txt", "html"):
        (builtin / "fi" / f"approved.{part}.j2").unlink()
    templates = Templates(None, builtin_dir=builtin)
    mail = templates.render("approved", "fi", SAMPLE_CONTEXT["approved"])
    assert mail.language == "en" and "approved" in mail.subject
    assert "NOK 1,620" in mail.text  # English number format, not Finnish
    assert templates.render("approved", "de", SAMPLE_CONTEXT["approved"]).language == "en"
    assert "built-in fi/approved.txt.j2 is missing" in check_templates(builtin_dir=builtin)


def test_unknown_template_and_syntax_errors_are_template_errors(tmp_path: Path) -> None:
    with pytest.raises(TemplateError, match="no template 'nonsense'"):
        T.render("nonsense", "nb", {})
    builtin, site = _tree(tmp_path)
    _write(site / "nb" / "approved.txt.j2", "{% if %}")
    with pytest.raises(TemplateError, match=r"approved\.txt\.j2:1"):
        Templates(site, builtin_dir=builtin).render("approved", "nb", SAMPLE_CONTEXT["approved"])


def test_check_reports_a_language_missing_words(tmp_path: Path) -> None:
    builtin, _ = _tree(tmp_path)
    words = builtin / "sv" / "_words.j2"
    words.write_text(words.read_text(encoding="utf-8").replace('"vat_number"', '"vat_nr"'))
    problems = check_templates(builtin_dir=builtin)
    assert "sv/_words.j2: fields has no words for 'vat_number'" in problems


@pytest.mark.parametrize("lang", LANGUAGES)
def test_the_promotion_says_an_incomplete_claim_becomes_void(lang: str) -> None:
    # promo terms: no answer within the deadline voids the claim; the cashback FAQ
    # only says payment is not guaranteed. Same words, different consequence.
    ctx = SAMPLE_CONTEXT["missing_info"]
    promo = T.render("missing_info", lang, ctx, "promo-20pct")
    cashback = T.render("missing_info", lang, ctx, "cashback-2022")
    assert promo.text != cashback.text and promo.subject == cashback.subject
    assert cashback.text == T.render("missing_info", lang, ctx).text
    assert promo.html is not None and promo.html != cashback.html


def test_ids_that_would_escape_the_template_tree_are_refused() -> None:
    with pytest.raises(TemplateError, match="not a plain name"):
        T.render("approved", "nb", SAMPLE_CONTEXT["approved"], "../../etc")
    # a strange language code falls back to English instead of reading elsewhere
    assert T.render("approved", "../nb", SAMPLE_CONTEXT["approved"]).language == "en"


@pytest.mark.parametrize("lang", LANGUAGES)
def test_every_code_the_core_and_parsers_produce_has_words(lang: str) -> None:
    """The contract between the rules, the attachment judge and the mail wording."""
    import re

    from mailbot.core.claim_rules import REJECTION_REASONS

    words = T.words(lang)
    assert set(REJECTION_REASONS) | {"deadline_passed"} <= set(words["reasons"])
    parsers = resources.templates_dir().parent / "parsers" / "mail"
    source = "".join((parsers / f).read_text("utf-8") for f in ("attachments.py", "filecheck.py"))
    refusals = set(re.findall(r'(?:refusal_code=|refuse\(\s*)"([a-z_]+)"', source))
    assert {"archive", "too_large"} <= refusals  # the scan itself works
    assert refusals <= set(words["refusals"])


@pytest.mark.parametrize(
    "code, used", [("nb-NO", "nb"), ("NO", "nb"), ("nn", "nb"), ("sv_SE", "sv"), ("", "en")]
)
def test_language_codes_as_people_write_them(code: str, used: str) -> None:
    assert T.render("approved", code, SAMPLE_CONTEXT["approved"]).language == used
