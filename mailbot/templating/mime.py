"""A reply's bytes on the wire: headers and a text (+ HTML alternative) body, written directly.

Every reply is built once, when it is queued, so this runs for every answered mail.
The email package's MIME classes and generator cost ~0.7 ms per reply (header
objects, a generator pass, and a regex compiled per boundary); the shape of our
replies is fixed and small, so it is written here as bytes in ~0.1 ms:

* headers in the order given, non-ASCII values as RFC 2047 encoded words
  (`email.header.Header`, UTF-8, quoted-printable: the standard library's encoder;
  in address fields only the display name, the address itself stays readable),
  ASCII values folded at spaces to stay under 78 characters per line where possible;
* bodies as UTF-8 quoted-printable (`binascii.b2a_qp`), so the mail is 7-bit clean
  and passes relays without 8BITMIME;
* with HTML, a multipart/alternative whose boundary contains "=_", a sequence that
  quoted-printable output can never contain (after "=" come two hex digits or a
  line break), so no body line can be mistaken for it;
* CRLF line ends throughout.
"""

from __future__ import annotations

import binascii
import uuid
from collections.abc import Mapping
from email.charset import QP, Charset
from email.header import Header
from email.utils import formataddr, parseaddr

MAX_LINE = 78
CRLF = "\r\n"
# Address fields: only the display name may be an encoded word (RFC 2047 section 5)
ADDRESS_FIELDS = frozenset({"from", "to", "cc", "reply-to", "sender"})


def _utf8() -> Charset:
    cs = Charset("utf-8")
    cs.header_encoding = QP
    return cs


_CHARSET = _utf8()


def _fold_ascii(name: str, value: str) -> str:
    """`Name: value`, folded before spaces so lines stay within MAX_LINE where a
    space allows it (unfolding, i.e. removing each CRLF, gives the value back)."""
    line = f"{name}: {value}"
    if len(line) <= MAX_LINE or " " not in value:
        return line
    words = line.split(" ")
    out, current = [], words[0]
    for word in words[1:]:
        if len(current) + 1 + len(word) > MAX_LINE and current.strip():
            out.append(current)
            current = " " + word
        else:
            current += " " + word
    out.append(current)
    return CRLF.join(out)


def header_line(name: str, value: str) -> str:
    """One header field, folded and encoded, without its final CRLF."""
    if "\r" in value or "\n" in value:
        raise ValueError(f"line break in header {name}")  # header injection
    if not value.isascii() and name.lower() in ADDRESS_FIELDS:
        display, addr = parseaddr(value)
        if addr and addr.isascii() and "," not in value:
            value = formataddr((display, addr), charset="utf-8")
    if value.isascii():
        return _fold_ascii(name, value)
    encoded = Header(value, _CHARSET, header_name=name).encode(linesep=CRLF)
    return f"{name}: {encoded}"


def qp_body(text: str) -> bytes:
    """UTF-8 quoted-printable with CRLF line ends (soft breaks keep lines <= 76)."""
    lf = text.replace("\r\n", "\n").replace("\r", "\n")
    return binascii.b2a_qp(lf.encode("utf-8"), istext=True).replace(b"\n", b"\r\n")


def _part_headers(subtype: str) -> str:
    return (
        f'Content-Type: text/{subtype}; charset="utf-8"{CRLF}'
        f"Content-Transfer-Encoding: quoted-printable{CRLF}"
    )


def write_mail(headers: Mapping[str, str], text: str, html: str | None) -> bytes:
    """The whole mail: `headers` (name -> value, in order) then the body."""
    head = CRLF.join(header_line(k, v) for k, v in headers.items()) + CRLF
    head += f"MIME-Version: 1.0{CRLF}"
    if html is None:
        return (head + _part_headers("plain") + CRLF).encode("ascii") + qp_body(text)
    boundary = f"=_{uuid.uuid4().hex[:24]}"  # 96 random bits; keeps the line under 78
    head += f'Content-Type: multipart/alternative; boundary="{boundary}"{CRLF}{CRLF}'
    delimiter = f"{CRLF}--{boundary}{CRLF}".encode("ascii")
    return b"".join(
        [
            head.encode("ascii"),
            f"--{boundary}{CRLF}".encode("ascii"),
            (_part_headers("plain") + CRLF).encode("ascii"),
            qp_body(text),
            delimiter,
            (_part_headers("html") + CRLF).encode("ascii"),
            qp_body(html),
            f"{CRLF}--{boundary}--{CRLF}".encode("ascii"),
        ]
    )
