"""Header and charset decoding shared by the mail readers: encoded words, raw 8-bit,
and declared charsets -> text, safely: only text codecs, bounded input, never raising.

A mail names its charsets itself, and Python's codec registry holds more than
charsets: bytes-to-bytes transforms (base64, zlib, rot13) and codecs whose
decoding is quadratic (punycode, idna: 600 KB took 25 s). Only text encodings
that are charsets are used; anything else is treated as undeclared.
"""

from __future__ import annotations

import codecs
import email.header
import functools
import re
from typing import Any

__all__ = ["MAX_DECODE_BYTES", "decode_text", "names_unsafe_charset", "text_codec"]

MAX_DECODE_BYTES = 8 * 1024 * 1024
"""Bytes decoded per call; a mail's text never needs more (bodies are cut at 2 M
characters after decoding anyway)."""

_NOT_CHARSETS = frozenset(
    {
        "punycode",  # quadratic in pure Python
        "idna",  # punycode per label
        "unicode_escape",
        "raw_unicode_escape",
        "undefined",  # always raises
        "mbcs",
        "oem",
    }
)
"""Text codecs Python has that are not charsets a mail may declare."""

# Aliases that in practice mean their superset: Outlook and friends label
# Windows-1252 text as ISO-8859-1 (the € sign, curly quotes).
_CHARSET_ALIASES = {
    "iso-8859-1": "cp1252",
    "iso8859-1": "cp1252",
    "latin1": "cp1252",
    "latin-1": "cp1252",
    "us-ascii": "cp1252",
    "ascii": "cp1252",
    "ks_c_5601-1987": "cp949",
    "gb2312": "gb18030",
    "gbk": "gb18030",
}


@functools.lru_cache(maxsize=256)
def text_codec(charset: str | None) -> str | None:
    """The codec to decode a declared charset with, or None when it is not a
    text charset Python knows (then the text is treated as undeclared)."""
    if not charset:
        return None
    name = charset.strip().strip("\"'").lower()[:64]
    name = _CHARSET_ALIASES.get(name, name)
    try:
        info = codecs.lookup(name)
    except (LookupError, ValueError):
        return None
    # CodecInfo._is_text_encoding is how the str.encode / bytes.decode
    # machinery itself refuses bytes-to-bytes codecs.
    if not getattr(info, "_is_text_encoding", True) or info.name.replace("-", "_") in _NOT_CHARSETS:
        return None
    return info.name


def decode_text(data: bytes, charset: str | None = None) -> str:
    """Bytes of a declared or undeclared charset -> text, never raising.

    Without a usable declared charset: UTF-8 if it decodes, else Windows-1252
    (the common case for undeclared Nordic letters), else Latin-1 (total). At
    most MAX_DECODE_BYTES are decoded."""
    data = bytes(data[:MAX_DECODE_BYTES])
    codec = text_codec(charset)
    if codec is not None:
        try:
            return data.decode(codec)
        except (UnicodeDecodeError, UnicodeError, ValueError):
            pass
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        pass
    try:
        return data.decode("cp1252")
    except UnicodeDecodeError:
        return data.decode("latin-1")


_DECLARED = re.compile(
    rb"charset\*?\s*=\s*[\"']?([A-Za-z0-9_.:+-]{1,64})"  # Content-Type parameter
    rb"|=\?([A-Za-z0-9_.:+-]{1,64})(?:\*[A-Za-z-]*)?\?[bBqQ]\?"  # RFC 2047 encoded word
    rb"|\*=\s*[\"']?([A-Za-z0-9_.:+-]{1,64})'",  # RFC 2231 parameter value
    re.IGNORECASE,
)


def names_unsafe_charset(raw: bytes) -> bool:
    """Whether the mail declares a charset somewhere that is not a text charset
    (a header scan over the whole mail: linear, a few ms per MB)."""
    seen: set[bytes] = set()
    for found in _DECLARED.finditer(raw):
        name = (found.group(1) or found.group(2) or found.group(3)).lower()
        if name in seen:
            continue
        seen.add(name)
        if len(seen) > 50:
            return True  # no real mail declares fifty charsets
        if text_codec(name.decode("ascii")) is None and _known(name.decode("ascii")):
            return True
    return False


def _known(name: str) -> bool:
    """A name Python has a codec for (an unknown name is merely undeclared)."""
    try:
        codecs.lookup(name)
    except (LookupError, ValueError):
        return False
    return True


# Headers longer than this are cut: a claim mail never needs more, and
# pathological headers must not cost time downstream.
MAX_HEADER_CHARS = 20_000


def decode_bytes(data: bytes, charset: str | None = None) -> str:
    """Bytes of a declared or undeclared charset -> text, never raising
    (only text charsets, bounded input)."""
    return decode_text(data, charset)


def raw_to_text(value: Any) -> str:
    """A raw header value from the compat32 parser -> str with 8-bit decoded.

    The parser keeps undeclared 8-bit bytes as surrogate escapes (or returns a
    Header object); turn them back into bytes and guess the charset."""
    if isinstance(value, email.header.Header):
        try:
            return str(value)
        except Exception:  # a Header with a broken charset
            value = value.encode()
    text = str(value)
    if any("\udc80" <= ch <= "\udcff" for ch in text):
        text = decode_bytes(text.encode("utf-8", "surrogateescape"))
    return text[:MAX_HEADER_CHARS]


def decode_header_value(value: Any) -> str:
    """Decode RFC 2047 encoded words (any charset) and raw 8-bit in one header."""
    text = raw_to_text(value)
    if "=?" not in text:
        return unfold(text)
    try:
        parts = email.header.decode_header(text)
    except Exception:
        return unfold(text)
    out: list[str] = []
    for chunk, charset in parts:
        if isinstance(chunk, bytes):
            out.append(decode_bytes(chunk, charset))
        else:
            out.append(chunk)
    return unfold("".join(out))


def unfold(text: str) -> str:
    return re.sub(r"\r?\n[ \t]*", " ", text).strip()
