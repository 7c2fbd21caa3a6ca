"""parse_email: headers and Nordic charsets, bodies, reply splitting, fallback, fuzzing."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta, timezone
from email.message import EmailMessage
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import parsers.mail.parse as parser_mod
from mailbot.core.mail import InboundEmail
from parsers.mail.headers import decode_header_value
from parsers.mail.parse import normalise_message_ids, parse_email
from parsers.mail.reply import new_text_of


def raw_mail(headers: list[tuple[str, bytes | str]], body: bytes = b"Hei\r\n") -> bytes:
    out = b""
    for k, v in headers:
        out += k.encode() + b": " + (v if isinstance(v, bytes) else v.encode()) + b"\r\n"
    return out + b"\r\n" + body


# --- subjects and names in Nordic charsets ---------------------------------


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        # RFC 2047, ISO-8859-1, Q and B
        (
            b"=?ISO-8859-1?Q?Kvittering_for_kj=F8p_p=E5_=C6rlig_pris?=",
            "Kvittering for kjøp på Ærlig pris",
        ),
        (
            b"=?iso-8859-1?B?" + base64.b64encode("Kvitto från Åhléns".encode("latin-1")) + b"?=",
            "Kvitto från Åhléns",
        ),
        # RFC 2047, Windows-1252 (with the euro sign and a dash only it has)
        (
            b"=?windows-1252?B?"
            + base64.b64encode("Kvittering – 1 620 € Økern".encode("cp1252"))
            + b"?=",
            "Kvittering – 1 620 € Økern",
        ),
        # ISO-8859-1 label on Windows-1252 bytes (Outlook does this)
        (b"=?ISO-8859-1?Q?Pris_=80_100?=", "Pris € 100"),
        # UTF-8, Finnish and Danish letters, split encoded words
        (
            b"=?UTF-8?Q?Kuitti_ost=C3=B6st=C3=A4?= =?UTF-8?Q?_=C3=A6=C3=B8=C3=A5?=",
            "Kuitti ostöstä æøå",
        ),
        # raw, undeclared 8-bit: Windows-1252 and UTF-8
        ("Kjøpt på Elkjøp – €".encode("cp1252"), "Kjøpt på Elkjøp – €"),
        ("Köpt på Åhléns".encode("latin-1"), "Köpt på Åhléns"),
        ("Ostettu Tampereelta – äö".encode(), "Ostettu Tampereelta – äö"),
        # mixed plain and encoded words
        (b"Re: =?utf-8?q?S=C3=B8knad?= 12345678", "Re: Søknad 12345678"),
        # unknown charset does not raise
        (b"=?x-unknown?Q?abc?=", "abc"),
    ],
)
def test_subject_decoding(header: bytes, expected: str) -> None:
    msg = parse_email(raw_mail([("From", "a@example.no"), ("Subject", header)]))
    assert msg.subject == expected


def test_from_name_and_address_decoded_and_to_collected() -> None:
    raw = raw_mail(
        [
            ("From", b"=?iso-8859-1?Q?S=F8ren_=C5se=2C_Jr?= <Soren@Example.DK>"),
            ("To", "Kampanje <kampanje@example.com>, other@example.com"),
            ("Cc", "copy@example.com"),
            ("Subject", "x"),
        ]
    )
    msg = parse_email(raw)
    assert msg.from_address == "soren@example.dk"
    assert msg.from_name == "Søren Åse, Jr"
    assert msg.to == ("kampanje@example.com", "other@example.com")  # Cc is not To


def test_raw_8bit_from_name() -> None:
    raw = raw_mail([("From", "Åsa Nyström <asa@example.se>".encode("cp1252")), ("Subject", "x")])
    msg = parse_email(raw)
    assert (msg.from_name, msg.from_address) == ("Åsa Nyström", "asa@example.se")


def test_every_header_kept_decoded_in_order() -> None:
    raw = raw_mail(
        [
            ("Received", "from a by b"),
            ("Received", "from c by d"),
            ("Subject", b"=?utf-8?q?Bl=C3=A5b=C3=A6r?="),
            ("X-Custom", "yes"),
        ]
    )
    msg = parse_email(raw)
    assert msg.headers == (
        ("Received", "from a by b"),
        ("Received", "from c by d"),
        ("Subject", "Blåbær"),
        ("X-Custom", "yes"),
    )
    assert msg.header_all("received") == ("from a by b", "from c by d")


def test_decode_header_value_folded() -> None:
    assert decode_header_value("Hello\r\n world") == "Hello world"


# --- ids and dates ----------------------------------------------------------


def test_message_ids_normalised() -> None:
    raw = raw_mail(
        [
            ("Message-ID", "  <abc@example.no>  "),
            ("In-Reply-To", "<our-1@mailbot.example> (Kampanje's message of today)"),
            ("References", "<r1@x>\r\n <r2@x>\t<our-1@mailbot.example>\r\n <r1@x>"),
            ("Subject", "x"),
        ]
    )
    msg = parse_email(raw)
    assert msg.message_id == "<abc@example.no>"
    assert msg.in_reply_to == ("<our-1@mailbot.example>",)
    assert msg.references == ("<r1@x>", "<r2@x>", "<our-1@mailbot.example>")


def test_bare_message_id_gets_brackets() -> None:
    assert normalise_message_ids("abc@example.no") == ("<abc@example.no>",)
    assert normalise_message_ids("not an id") == ()
    assert normalise_message_ids(None) == ()


def test_dates() -> None:
    msg = parse_email(raw_mail([("Date", "Mon, 13 Mar 2023 10:02:00 +0100")]))
    assert msg.date == datetime(2023, 3, 13, 10, 2, tzinfo=timezone(timedelta(hours=1)))
    assert parse_email(raw_mail([("Date", "Mon, 13 Mar 2023 10:02:00 -0000")])).date == (
        datetime(2023, 3, 13, 10, 2, tzinfo=UTC)
    )
    assert parse_email(raw_mail([("Date", "yesterday-ish")])).date is None


# --- bodies -----------------------------------------------------------------


def test_text_body_in_latin1() -> None:
    m = EmailMessage()
    m["From"] = "a@example.no"
    m.set_content("Hei, her er kvitteringen for kjøpet på Økern.", charset="iso-8859-1")
    msg = parse_email(m.as_bytes())
    assert "kjøpet på Økern" in msg.text
    assert msg.new_text == "Hei, her er kvitteringen for kjøpet på Økern."


def test_html_only_body_turned_into_text_and_quote_dropped() -> None:
    m = EmailMessage()
    m["From"] = "a@example.no"
    html = (
        "<div>Hei!<br>Kvitteringen ligger ved. Kode <b>12345674</b>.</div>"
        '<div class="gmail_quote">Den man. 13. mar. 2023 kl. 10:02 skrev Kampanje '
        "&lt;k@example.com&gt;:<blockquote>Vi mangler kvittering for 87654321</blockquote></div>"
    )
    m.set_content(html, subtype="html")
    msg = parse_email(m.as_bytes())
    assert "Kvitteringen ligger ved" in msg.text and "<div>" not in msg.text
    assert "12345674" in msg.new_text
    assert "87654321" not in msg.new_text and "skrev" not in msg.new_text


def test_text_part_preferred_over_html() -> None:
    m = EmailMessage()
    m["From"] = "a@example.no"
    m.set_content("plain version")
    m.add_alternative("<p>html version</p>", subtype="html")
    assert parse_email(m.as_bytes()).text.strip() == "plain version"


# --- reply styles -----------------------------------------------------------

REPLIES = {
    "gmail_nb": (
        "Hei,\nTakk for svar. Her er kvitteringen, kode 12345674.\n\nMvh\nOla\n\n"
        "man. 13. mar. 2023 kl. 10:02 skrev Kampanje <kampanje@example.com>:\n"
        "> Hei Ola,\n> vi mangler kvittering for 87654321\n",
        "Hei,\nTakk for svar. Her er kvitteringen, kode 12345674.",
    ),
    "gmail_nb_den": (
        "Vedlagt.\n\nDen 12. mars 2023 kl. 10:02 skrev Kampanje Support <\n"
        "kampanje@example.com>:\n\n> 87654321\n",
        "Vedlagt.",
    ),
    "outlook_nb_separator": (
        "Her kommer bildet.\n\n-----Opprinnelig melding-----\nFra: Kampanje <k@example.com>\n"
        "Sendt: 13. mars 2023 10:02\nTil: Ola\nEmne: Re: 87654321\n\ngammel tekst",
        "Her kommer bildet.",
    ),
    "outlook_nb_block": (
        "Her kommer bildet.\n\nFra: Kampanje <k@example.com>\nSendt: mandag 13. mars 2023 "
        "10:02\nTil: Ola <o@x.no>\nEmne: Re: 87654321\n\ngammel tekst",
        "Her kommer bildet.",
    ),
    "iphone_nb": (
        "Her er kvitteringen\n\nSendt fra min iPhone\n\n> Den 13. mar. 2023 kl. 10:02 "
        "skrev Kampanje <k@example.com>:\n>\n> 87654321",
        "Her er kvitteringen",
    ),
    "gmail_sv": (
        "Hej!\nHär är kvittot.\n\ntis 14 mars 2023 kl. 10:02 skrev Kampanj <k@example.com>:\n"
        "> 87654321",
        "Hej!\nHär är kvittot.",
    ),
    "outlook_sv": (
        "Kvitto bifogat.\n\n-----Ursprungligt meddelande-----\nFrån: Kampanj\n"
        "Skickat: den 14 mars 2023 10:02\nTill: x\nÄmne: 87654321\n\ngammalt",
        "Kvitto bifogat.",
    ),
    "iphone_sv": (
        "Kvitto bifogat.\n\nSkickat från min iPhone\n\n> 14 mars 2023 kl. 10:02 skrev "
        "Kampanj <k@example.com>:\n> 87654321",
        "Kvitto bifogat.",
    ),
    "gmail_fi": (
        "Hei,\nkuitti liitteenä.\n\nma 13.3.2023 klo 12.00 Kampanja <k@example.com> kirjoitti:\n"
        "> 87654321",
        "Hei,\nkuitti liitteenä.",
    ),
    "outlook_fi": (
        "Kuitti liitteenä.\n\nLähettäjä: Kampanja <k@example.com>\nLähetetty: maanantai 13. "
        "maaliskuuta 2023 12.00\nVastaanottaja: Matti\nAihe: Re: 87654321\n\nvanha",
        "Kuitti liitteenä.",
    ),
    "iphone_fi": (
        "Tässä kuitti\n\nLähetetty iPhonesta\n\n> 13.3.2023 kello 12.00 Kampanja "
        "<k@example.com> kirjoitti:\n> 87654321",
        "Tässä kuitti",
    ),
    "gmail_en": (
        "Here it is.\n\nOn Mon, Mar 13, 2023 at 10:02 AM Campaign <c@example.com> wrote:\n"
        "> 87654321",
        "Here it is.",
    ),
    "outlook_en": (
        "Attached.\n\n________________________________\nFrom: Campaign <c@example.com>\n"
        "Sent: Monday, March 13, 2023 10:02 AM\nTo: Me\nSubject: 87654321\n\nold",
        "Attached.",
    ),
    "iphone_en": (
        "Here\n\nSent from my iPhone\n\n> On 13 Mar 2023, at 10:02, Campaign <c@example.com> "
        "wrote:\n>\n> 87654321",
        "Here",
    ),
    "outlook_de": (
        "Anbei.\n\nVon: Kampagne <k@example.com>\nGesendet: Montag, 13. März 2023 10:02\n"
        "An: Ich\nBetreff: 87654321\n\nalt",
        "Anbei.",
    ),
    "da_gmail": (
        "Hej\nHer er kvitteringen\n\nDen 13. mar. 2023 kl. 10.02 skrev Kampagne "
        "<k@example.com>:\n> 87654321",
        "Hej\nHer er kvitteringen",
    ),
    "only_quote": (
        "On Mon, 13 Mar 2023 at 10:02, Campaign <c@example.com> wrote:\n> old 87654321",
        "",
    ),
    "no_quote_takk_lines_kept": (
        "Hei,\nTakk for sist.\nTakk skal du ha, kode 12345674\n",
        "Hei,\nTakk for sist.\nTakk skal du ha, kode 12345674",
    ),
    "prose_skrev_is_not_a_header": (
        "Som jeg skrev i går:\nkoden er 12345674\n",
        "Som jeg skrev i går:\nkoden er 12345674",
    ),
    "hyphen_list_kept": (
        "Vedlagt:\n- kvittering\n- serienummer\n",
        "Vedlagt:\n- kvittering\n- serienummer",
    ),
}


@pytest.mark.parametrize("name", sorted(REPLIES))
def test_reply_styles_new_text(name: str) -> None:
    body, expected = REPLIES[name]
    assert new_text_of(body) == expected


def test_new_text_in_a_full_mail() -> None:
    body, expected = REPLIES["outlook_nb_separator"]
    m = EmailMessage()
    m["From"] = "ola@example.no"
    m["Subject"] = "SV: Re: 87654321"
    m.set_content(body, charset="windows-1252")
    msg = parse_email(m.as_bytes())
    assert msg.new_text == expected
    assert "gammel tekst" in msg.text


# --- robustness --------------------------------------------------------------


def test_empty_and_garbage_input() -> None:
    for raw in (b"", b"\x00\xff\xfe", b"\r\n\r\n", b"Subject", b":::\r\n\r\nbody"):
        msg = parse_email(raw)
        assert isinstance(msg, InboundEmail)


def test_fallback_to_stdlib_when_mail_parser_raises(monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(_raw: bytes) -> None:
        raise ValueError("mail-parser failed")

    monkeypatch.setattr(parser_mod.mailparser, "parse_from_bytes", boom)
    m = EmailMessage()
    m["From"] = "Kari <kari@example.no>"
    m["Subject"] = "Kvittering for kjøp"
    m["Message-ID"] = "<k1@example.no>"
    m.set_content("Hei\n\nDen 12. mars 2023 kl. 10:02 skrev K <k@example.com>:\n> gammelt")
    msg = parse_email(m.as_bytes())
    assert any("mail-parser failed (ValueError)" in d for d in msg.parse_defects)
    assert msg.subject == "Kvittering for kjøp"
    assert msg.from_address == "kari@example.no" and msg.message_id == "<k1@example.no>"
    assert msg.new_text == "Hei"


def test_every_parser_failing_still_returns(monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(*_a: object, **_k: object) -> None:
        raise RecursionError

    monkeypatch.setattr(parser_mod.mailparser, "parse_from_bytes", boom)
    monkeypatch.setattr(parser_mod.email, "message_from_bytes", boom)
    msg = parse_email(raw_mail([("Subject", "still here")]))
    assert msg.subject == "still here"
    assert any("headers only" in d for d in msg.parse_defects)


def test_deeply_nested_multipart_does_not_raise() -> None:
    depth = 3000
    parts = b"".join(
        b'--b%d\r\nContent-Type: multipart/mixed; boundary="b%d"\r\n\r\n' % (i, i + 1)
        for i in range(depth)
    )
    raw = b'From: a@example.no\r\nSubject: deep\r\nContent-Type: multipart/mixed; boundary="b0"'
    raw += b"\r\n\r\n" + parts + b"--b%d\r\n\r\ntext\r\n" % depth
    msg = parse_email(raw)
    assert msg.subject == "deep"
    assert any("standard library" in d for d in msg.parse_defects)


_HEADER_NAMES = st.sampled_from(
    [
        "From",
        "To",
        "Subject",
        "Message-ID",
        "In-Reply-To",
        "References",
        "Date",
        "Content-Type",
        "Content-Transfer-Encoding",
        "Return-Path",
        "X-\u00e6",
    ]
)
_VALUES = st.one_of(
    st.binary(max_size=80),
    st.text(max_size=60).map(lambda s: s.encode("utf-8", "surrogatepass")),
    st.sampled_from(
        [
            b"=?utf-8?q?=C3=A6?=",
            b"=?bogus?B?!!!?=",
            b"multipart/mixed; boundary=x",
            b"base64",
            b"<a@b> <c",
            b"=?iso-8859-1?q?=E6",
            b"text/plain; charset=x-nope",
        ]
    ),
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    headers=st.lists(st.tuples(_HEADER_NAMES, _VALUES), max_size=8),
    body=st.one_of(st.binary(max_size=400), st.sampled_from([b"--x\r\n\r\n--x--", b"=E6=\r\n"])),
)
def test_fuzz_mail_like_input_never_raises(headers: list[tuple[str, bytes]], body: bytes) -> None:
    raw = b"".join(k.encode("utf-8") + b": " + v + b"\r\n" for k, v in headers) + b"\r\n" + body
    msg = parse_email(raw)
    assert isinstance(msg, InboundEmail)
    assert isinstance(msg.subject, str) and isinstance(msg.new_text, str)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=2000))
def test_fuzz_arbitrary_bytes_never_raise(raw: bytes) -> None:
    assert isinstance(parse_email(raw), InboundEmail)


def test_line_of_twenty_thousand_quote_markers_is_fast() -> None:
    # a real reply (github/email_reply_parser's corpus) has such a line; a
    # backtracking quote-header pattern took 15 s on it
    import time

    body = "Hi\n" + ">" * 20_000 + "\nOn Mon, 1 Jan 2024 at 10:00 X <x@example.com> wrote:\n> old"
    start = time.process_time()
    assert new_text_of(body) == "Hi"
    assert time.process_time() - start < 1.0


def test_inspect_command_human_and_json(tmp_path: Path) -> None:
    import io
    import json

    from mailbot.services.inspect import run_inspect

    m = EmailMessage()
    m["From"] = "Kari <kari@example.no>"
    m["Subject"] = "=?utf-8?q?Kvittering_kj=C3=B8p?="
    m["Message-ID"] = "<k1@example.no>"
    m.set_content("Her.\n\nDen 12. mars 2023 kl. 10:02 skrev K <k@example.com>:\n> 87654321")
    m.add_attachment(
        b"PK\x03\x04" + b"\x00" * 30,
        maintype="application",
        subtype="zip",
        filename="kvittering.zip",
    )
    path = tmp_path / "m.eml"
    path.write_bytes(m.as_bytes())
    before = path.read_bytes()

    out = io.StringIO()
    assert run_inspect(path, True, out) == 0
    data = json.loads(out.getvalue())
    assert data["classification"]["kind"] == "human"
    assert data["new_text"] == "Her."
    assert data["extra"] == {}
    [att] = data["attachments"]
    assert att["refusal_code"] == "archive" and att["verdict"] == "refused"
    assert "content" not in att

    out = io.StringIO()
    assert run_inspect(path, False, out) == 0
    text = out.getvalue()
    assert "Kind:         human" in text and "kvittering.zip" in text and "(archive)" in text
    assert path.read_bytes() == before  # changes nothing

    out = io.StringIO()
    assert run_inspect(tmp_path / "missing.eml", False, out) == 2
    assert "cannot read" in out.getvalue()


def test_attached_mail_text_is_not_new_text() -> None:
    inner = EmailMessage()
    inner["From"] = "kampanje@example.com"
    inner["Subject"] = "Registrering 87654321"
    inner.set_content("Din registreringskode er 87654321.")
    outer = EmailMessage()
    outer["From"] = "ola@example.no"
    outer["Subject"] = "Se vedlagt"
    outer.set_content("Se vedlagt e-post.")
    outer.add_attachment(inner)
    msg = parse_email(outer.as_bytes())
    assert msg.new_text == "Se vedlagt e-post."


_OUTLOOK_HTML = (
    "<html><body><div class=WordSection1><p class=MsoNormal>{new}<o:p></o:p></p>"
    "<div style='border:none;border-top:solid #E1E1E1 1.0pt'><p class=MsoNormal>"
    "<b>{f}:</b> Kampanje &lt;k@example.com&gt;<br><b>{s}:</b> 13.3.2023 10:02<br>"
    "<b>{t}:</b> Ola &lt;ola@example.no&gt;<br><b>{e}:</b> Registrering 87654321</p></div>"
    "<p class=MsoNormal>Vi mangler kvittering for 87654321.</p></div></body></html>"
)
_GMAIL_HTML = (
    '<div dir="ltr">{new}</div><br><div class="gmail_quote"><div dir="ltr" '
    'class="gmail_attr">{attr}<br></div><blockquote class="gmail_quote">Koodi 87654321'
    "</blockquote></div>"
)


@pytest.mark.parametrize(
    ("html", "expected"),
    [
        (
            _OUTLOOK_HTML.format(
                new="Hei, her er kvitteringen.", f="Fra", s="Sendt", t="Til", e="Emne"
            ),
            "Hei, her er kvitteringen.",
        ),
        (
            _OUTLOOK_HTML.format(
                new="Hej, kvittot bifogat.", f="Från", s="Skickat", t="Till", e="Ämne"
            ),
            "Hej, kvittot bifogat.",
        ),
        (
            _OUTLOOK_HTML.format(
                new="Kuitti liitteenä.", f="Lähettäjä", s="Lähetetty", t="Vastaanottaja", e="Aihe"
            ),
            "Kuitti liitteenä.",
        ),
        (
            _GMAIL_HTML.format(
                new="Tässä kuitti.",
                attr="ma 13.3.2023 klo 12.00 Kampanja &lt;k@example.com&gt; kirjoitti:",
            ),
            "Tässä kuitti.",
        ),
        (
            _GMAIL_HTML.format(
                new="Her er den.",
                attr="man. 13. mar. 2023 kl. 10:02 skrev Kampanje &lt;k@example.com&gt;:",
            ),
            "Her er den.",
        ),
    ],
)
def test_html_only_replies(html: str, expected: str) -> None:
    m = EmailMessage()
    m["From"] = "ola@example.no"
    m.set_content(html, subtype="html")
    msg = parse_email(m.as_bytes())
    assert msg.new_text == expected
    assert "87654321" in msg.text
