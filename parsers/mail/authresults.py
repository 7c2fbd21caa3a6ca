"""Authentication-Results headers (RFC 8601) -> the verdicts they carry, never raising.

A receiving mail server that checks SPF, DKIM and DMARC writes what it found into
an `Authentication-Results` header on top of the mail, naming itself first (the
authserv-id). `authres` does the RFC grammar (comments, quoted strings, property
types); this module turns its objects into frozen `AuthResult`s, one per method,
and leaves who is trusted to the core (`mailbot.core.claim_match.dmarc_failed`):
anyone can write such headers into a mail they send, so a verdict means nothing
until we know which server wrote it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

import authres

from mailbot.core.mail import AuthResult

__all__ = ["parse_authentication_results"]

# Ours are on top; a mail carrying more than this many is odd, and its lower
# headers were written before our server saw it.
MAX_HEADERS = 10
# Servers write a few hundred characters (Fastmail's longest about 1 500); authres
# rescans the rest of the value per token (~1 ms for 300 characters, 50 ms for 8 000),
# so longer ones, which no server writes, are not read: worst case ~0.3 s a mail.
MAX_HEADER_CHARS = 4_000

# Exchange Online writes its headers without an authserv-id ("spf=pass ...; dmarc=...").
# authres rejects that as RFC 8601 requires; such a header is read as written by ''.
_NO_ID_RE = re.compile(r"^\s*[A-Za-z0-9_-]+\s*=")
_NO_ID = "x-mailbot-no-authserv-id"

# The property that names the domain a method's verdict is about.
_DOMAIN_PROPERTY = {
    "dmarc": ("header", "from"),
    "dkim": ("header", "d"),
    "spf": ("smtp", "mailfrom"),
}


def _parse_one(value: str) -> object | None:
    # authres wants the value unfolded
    value = re.sub(r"[\r\n]+", " ", value).strip()
    header: object | None = None
    try:
        header = authres.AuthenticationResultsHeader.parse_value(value)
    except Exception:  # SyntaxError on bad grammar, RecursionError on nested comments
        if _NO_ID_RE.match(value):
            try:
                header = authres.AuthenticationResultsHeader.parse_value(f"{_NO_ID}; {value}")
            except Exception:
                header = None
    return header


def _domain(method: str, properties: Iterable[object]) -> str | None:
    wanted = _DOMAIN_PROPERTY.get(method)
    if wanted is None:
        return None
    for p in properties:
        ptype = str(getattr(p, "type", "")).lower()
        name = str(getattr(p, "name", "")).lower()
        if (ptype, name) == wanted:
            value = str(getattr(p, "value", "")).strip().lower()
            # smtp.mailfrom is an address (or a bare domain); header.d and header.from a domain
            return value.rpartition("@")[2] or None
    return None


def parse_authentication_results(values: Iterable[str]) -> tuple[tuple[AuthResult, ...], int]:
    """Header values, topmost first -> (every method's verdict, how many headers were
    unreadable). `header_index` counts headers from the top, unreadable ones included."""
    results: list[AuthResult] = []
    unreadable = 0
    for index, value in enumerate(values):
        if index >= MAX_HEADERS:
            break
        header = _parse_one(value) if len(value) <= MAX_HEADER_CHARS else None
        if header is None:
            unreadable += 1
            continue
        serv = str(getattr(header, "authserv_id", "") or "").strip().lower()
        if serv == _NO_ID:
            serv = ""
        for r in getattr(header, "results", None) or ():
            method = str(getattr(r, "method", "") or "").lower()
            result = str(getattr(r, "result", "") or "").lower()
            if not method or not result:
                continue
            props = getattr(r, "properties", None) or ()
            results.append(AuthResult(serv, method, result, _domain(method, props), index))
    return tuple(results), unreadable
