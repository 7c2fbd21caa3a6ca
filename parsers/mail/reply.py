"""The reply's new text: what the sender wrote now, without quoted history or signature.

Used by `parsers.mail.parse` for `InboundEmail.new_text`, on which matching looks
for registration codes (a code in the quoted history is our own mail talking).
"""

from __future__ import annotations

import re

from mailparser_reply.parser import EmailMessage as _ReplySplitter

# mail-parser-reply splits a body at quote headers for the languages it ships
# (en, de, sv, da ... but no Norwegian or Finnish). Its only extension point is
# its module-global MAIL_LANGUAGES dict, and mutating a library's global would
# change it for every user in the process, so the Norwegian/Finnish headers and
# the Nordic separators it lacks are our own small rules below: we cut at the
# earliest of them first, then let mail-parser-reply split what is left.
# Its signature lists are not used: its Danish sign-off "Tak", matched case-
# insensitively at a line start, would eat Norwegian "Takk for ..." lines.

_REPLY_LANGUAGES = ["en", "de", "sv", "da"]
_MAX_REPLY_CHARS = 20_000  # what a person writes now sits at the top; bounds regex time
_Q = r"(?:> ?)*+"  # inside quoted levels; possessive: a line of 20 000 ">" stays linear
_NORDIC_QUOTE_HEADERS = [
    # "Den 12. mars 2023 skrev X:", "man. 13. mar. 2023 kl. 10:02 skrev X <x@y>:",
    # "tis 14 mars 2023 kl. 10:02 skrev X:", "ma 13.3.2023 klo 12.00 X kirjoitti:";
    # a digit (the date) is required so "som jeg skrev:" in prose is not a header.
    # Gmail wraps long attribution lines, so one continuation line is allowed.
    # (the digit is a lookahead and the prefix lazy: no quadratic backtracking)
    rf"^{_Q}(?=[^\n]*\d)[^\n]{{0,300}}?\s(?:skrev|kirjoitti|wrote|schrieb)\b"
    r"[^\n]{0,200}(?:\n[^\n]{0,120})?:[ \t]*$",
    # Outlook blocks: "Fra:/Från:/Lähettäjä:/From:" followed within three lines
    # by "Sendt:/Skickat:/Lähetetty:/Sent:/Date:/Til:/Aihe: ..."
    rf"^{_Q}\**(?:Fra|Från|Lähettäjä|From|Von)\**:[^\n]*\n(?:[^\n]*\n){{0,2}}{_Q}\**"
    r"(?:Sendt|Skickat|Lähetetty|Sent|Date|Dato|Datum|Päivämäärä|Gesendet|Til|Till|To|"
    r"Vastaanottaja|An|Emne|Ämne|Aihe|Subject|Betreff)\**:",
    # "-----Opprinnelig melding-----" and its cousins, incl. forwarded-message bars
    rf"^{_Q}[-_ ]{{3,}}\s*(?:Opprinnelig melding|Original melding|Videresendt melding|"
    r"Ursprungligt meddelande|Vidarebefordrat meddelande|Oprindelig meddelelse|"
    r"Videresendt meddelelse|Alkuperäinen viesti|Välitetty viesti|Original Message|"
    r"Forwarded message|Ursprüngliche Nachricht|Weitergeleitete Nachricht)\s*[-_ ]{3,}",
]
_QUOTE_HEADER_RE = re.compile("|".join(_NORDIC_QUOTE_HEADERS), re.MULTILINE | re.IGNORECASE)
# Phone/app signatures: everything from this line on is boilerplate.
_PHONE_SIGNATURE_RE = re.compile(
    r"^[ \t]*(?:Sent from my|Sent from Outlook|Get Outlook for|Sendt fra min|Sendt fra Outlook|"
    r"Hent Outlook|Skickat från min|Skickat från Outlook|Skaffa Outlook|Hämta Outlook|"
    r"Lähetetty (?:iPhonesta|iPadista|Android|Outlook|Samsung|Huawei|mobiili|puhelim)|"
    r"Hanki Outlook|Von meinem iPhone gesendet|Gesendet von meinem|Gesendet mit)\b.*",
    re.MULTILINE | re.IGNORECASE | re.DOTALL,
)
# Sign-offs: cut only near the end (few lines follow), never the first line.
_SIGN_OFF_RE = re.compile(
    r"^[ \t]*(?:Med vennlig hilsen|Vennlig hilsen|Med venlig hilsen|Venlig hilsen|"
    r"Med vänlig(?:a)? hälsning(?:ar)?|Vänlig(?:a)? hälsning(?:ar)?|Mvh|Hilsen|Hälsningar|"
    r"Ystävällisin terveisin|Ystävällisesti|Terveisin|Best regards|Kind regards|Regards|"
    r"Mit freundlichen Grüßen|Viele Grüße)\b[ \t,.!]*(?:\n|$)",
    re.MULTILINE | re.IGNORECASE,
)
_SIGN_OFF_MAX_TAIL_LINES = 8
_SIG_DASHES_RE = re.compile(r"^-- ?$", re.MULTILINE)


def new_text_of(text: str) -> str:
    """Only what the sender wrote now: quoted history, quote headers, phone
    signatures and the sign-off block removed. Never raises."""
    try:
        return _new_text(text[:_MAX_REPLY_CHARS])
    except Exception:
        return ""  # better no new text than a wrong one: matching then abstains


def _new_text(text: str) -> str:
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    m = _QUOTE_HEADER_RE.search(text)
    if m:
        text = text[: m.start()]
    if text.strip():
        splitter = _ReplySplitter(
            text=text, languages=list(_REPLY_LANGUAGES), keep_hyphen_lists=True
        ).read()
        first = splitter.replies[0] if splitter.replies else None
        # A first fragment that starts with a quote header means nothing was
        # written above the quote: the new text is empty, not the quote.
        text = "" if first is None or first.headers else first.content
    lines = [ln for ln in text.split("\n") if not ln.lstrip().startswith(">")]
    text = "\n".join(lines)
    m = _SIG_DASHES_RE.search(text)
    if m:
        text = text[: m.start()]
    m = _PHONE_SIGNATURE_RE.search(text)
    if m:
        text = text[: m.start()]
    for m in _SIGN_OFF_RE.finditer(text):
        if not text[: m.start()].strip():
            continue
        if text[m.end() :].count("\n") < _SIGN_OFF_MAX_TAIL_LINES:
            text = text[: m.start()]
            break
    return text.strip()
