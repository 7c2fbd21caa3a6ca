"""The reply as bytes: threading headers, loop-protection headers, encodings."""

from __future__ import annotations

import email
import email.policy
from datetime import UTC, datetime
from functools import partial

import pytest

from mailbot.config import SmtpSettings
from mailbot.services.outbox import bare_address, build_message, new_message_id, thread_headers
from mailbot.templating.render import SAMPLE_CONTEXT, RenderedMail, Templates

SMTP = SmtpSettings(from_address="claims@brand.example", reply_to="help@brand.example")
NOW = datetime(2023, 1, 20, 10, 0, tzinfo=UTC)


def _parse(raw: bytes) -> email.message.EmailMessage:
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    assert isinstance(msg, email.message.EmailMessage)
    return msg


# a mail to a@b.no with our SMTP settings at NOW; a call may give any of these again
_build = partial(build_message, to_addr="a@b.no", settings=SMTP, now=NOW)


def _to_kari(mail: RenderedMail, message_id: str) -> tuple[bytes, dict[str, str]]:
    """The mail as a reply to Kari in her thread (<c@example.no>)."""
    thread = thread_headers("<c@example.no>")
    return _build(mail=mail, message_id=message_id, to_addr="kari@example.no", extra_headers=thread)


def _assert_bodies_read_back(
    msg: email.message.EmailMessage, mail: RenderedMail, what: str
) -> None:
    """Both parts are there and decode to exactly what was rendered (line ends are CRLF
    on the wire, and stay so after decoding quoted-printable)."""
    text, html = msg.get_body(("plain",)), msg.get_body(("html",))
    assert text is not None and html is not None
    assert text.get_content().replace("\r\n", "\n") == mail.text, what
    assert html.get_content().replace("\r\n", "\n") == mail.html, what


def test_threading_headers_follow_the_customer_and_drop_junk() -> None:
    got = thread_headers("cafe@example.no", ["<a@x>", "not an id", "<b@x>\r\nBcc: evil@z", "<a@x>"])
    assert got == {"In-Reply-To": "<cafe@example.no>", "References": "<a@x> <cafe@example.no>"}
    assert thread_headers(None, []) == {}
    many = thread_headers("<last@x>", [f"<{i}@x>" for i in range(30)])
    refs = many["References"].split()
    assert len(refs) == 10 and refs[0] == "<0@x>" and refs[-1] == "<last@x>"


def test_message_id_is_ours_and_unique() -> None:
    a, b = new_message_id("Claims <claims@Brand.Example>"), new_message_id("claims@brand.example")
    assert a != b and a.endswith("@brand.example>") and a.startswith("<")


def test_bare_address() -> None:
    assert bare_address("Kari Nordmann <Kari@Example.NO>") == "Kari@example.no"
    assert bare_address("") == ""


@pytest.mark.parametrize("lang", ["nb", "fi"])
def test_full_mail_parses_back_with_every_header(lang: str) -> None:
    mail = Templates().render("missing_info", lang, SAMPLE_CONTEXT["missing_info"])
    raw, headers = _to_kari(mail, "<m1@brand.example>")
    assert b"\r\n" in raw and b"\n" not in raw.replace(b"\r\n", b"")  # CRLF only
    assert max(len(line) for line in raw.split(b"\r\n")) <= 998
    raw.decode("ascii")  # 7-bit on the wire: QP bodies, encoded-word subject
    msg = _parse(raw)
    assert msg["Subject"] == mail.subject and "[Ref 12345678]" in msg["Subject"]
    assert msg["Message-ID"] == "<m1@brand.example>" and msg["In-Reply-To"] == "<c@example.no>"
    assert msg["Auto-Submitted"] == "auto-replied" and msg["X-Auto-Response-Suppress"] == "All"
    assert msg["Reply-To"] == "help@brand.example" and msg["Content-Language"] == lang
    assert msg["Date"] == "Fri, 20 Jan 2023 10:00:00 +0000"
    _assert_bodies_read_back(msg, mail, lang)
    assert headers["Message-ID"] == "<m1@brand.example>"


def test_text_only_mail_is_a_single_part() -> None:
    mail = RenderedMail("Hei [Ref 12345678]", "Hei på deg\n", None, "nb")
    raw, _ = _build(mail=mail, message_id="<m2@brand.example>")
    msg = _parse(raw)
    assert msg.get_content_type() == "text/plain" and msg.get_content() == "Hei på deg\r\n"
    assert raw.count(b"MIME-Version") == 1


def test_a_line_break_in_a_header_is_refused() -> None:
    mail = RenderedMail("ok", "x\n", None, "en")
    with pytest.raises(ValueError, match="line break"):
        _build(
            mail=mail, message_id="<m3@brand.example>", to_addr="a@b.no\r\nBcc: evil@example.com"
        )


@pytest.mark.parametrize("lang", ["nb", "sv", "da", "fi", "en"])
def test_every_template_parses_back_exactly(lang: str) -> None:
    """The bytes are written by mailbot.templating.mime, not the email package: every built-in
    mail must read back (with the stdlib parser) as exactly what was rendered."""
    templates = Templates()
    for name, context in SAMPLE_CONTEXT.items():
        mail = templates.render(name, lang, context)
        raw, _ = _to_kari(mail, "<m4@brand.example>")
        raw.decode("ascii")
        assert max(len(line) for line in raw.split(b"\r\n")) <= 78, name
        msg = _parse(raw)
        assert msg["Subject"] == mail.subject, name
        _assert_bodies_read_back(msg, mail, name)


def test_long_references_fold_and_unfold_to_the_same_value() -> None:
    refs = [f"<{i}.a-rather-long-identifier@mail.customer.example>" for i in range(9)]
    headers = thread_headers("<parent@customer.example>", refs)
    mail = RenderedMail("s", "t\n", None, "en")
    raw, _ = _build(mail=mail, message_id="<m5@brand.example>", extra_headers=headers)
    assert max(len(line) for line in raw.split(b"\r\n")) <= 78
    assert _parse(raw)["References"] == headers["References"]


def test_a_non_ascii_sender_name_keeps_the_address_readable() -> None:
    smtp = SmtpSettings(from_address="Kundeservice Ærlig <claims@brand.example>")
    mail = RenderedMail("s", "t\n", None, "nb")
    raw, _ = _build(mail=mail, message_id="<m6@brand.example>", settings=smtp)
    sender = _parse(raw)["From"]
    assert sender.addresses[0].addr_spec == "claims@brand.example"
    assert sender.addresses[0].display_name == "Kundeservice Ærlig"
    assert b"<claims@brand.example>" in raw


def test_awkward_bodies_survive_quoted_printable() -> None:
    text = "a = b  \n" + "x" * 200 + "\nTabs\tand trailing tab\t\nÆØÅ æøå €\n--=_not a boundary\n"
    html = "<p>" + "é" * 120 + "</p>\n"
    mail = RenderedMail("s", text, html, "nb")
    raw, _ = _build(mail=mail, message_id="<m7@brand.example>")
    assert max(len(line) for line in raw.split(b"\r\n")) <= 78
    _assert_bodies_read_back(_parse(raw), mail, "")
