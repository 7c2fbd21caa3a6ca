"""Authentication-Results headers as receiving servers write them, read into AuthResults."""

from __future__ import annotations

import time

from mailbot.core.mail import AuthResult
from parsers.mail.authresults import parse_authentication_results
from parsers.mail.parse import parse_email

GMAIL = (
    'mx.google.com;\r\n       dkim=pass header.i=@gmail.com header.s=20230601 header.b="Ab/c+D";'
    "\r\n       spf=pass (google.com: domain of kari@gmail.com designates 209.85.220.41 as"
    " permitted sender) smtp.mailfrom=kari@gmail.com;\r\n"
    "       dmarc=pass (p=NONE sp=QUARANTINE dis=NONE) header.from=gmail.com"
)
FASTMAIL = (
    "mx6.messagingengine.com; arc=none (no signatures found);"
    " dkim=pass (2048-bit rsa key sha256) header.d=example.no header.i=@example.no"
    " header.b=AbCd header.a=rsa-sha256 header.s=fm1 x-bits=2048;"
    " dmarc=fail policy.published-domain-policy=reject (p=reject,d=none,d.eval=reject)"
    " policy.policy-from=p header.from=Example.NO;"
    " x-tls=pass smtp.version=TLSv1.3 smtp.cipher=TLS_AES_256_GCM_SHA384 smtp.bits=256/256"
)
# Exchange Online names no authserv-id (not RFC 8601, but what it writes)
EXCHANGE = (
    "spf=fail (sender IP is 192.0.2.7) smtp.mailfrom=example.no; dkim=none (message not"
    " signed) header.d=none;dmarc=fail action=oreject header.from=example.no;"
    "compauth=fail reason=000"
)


def read_clean(header: str) -> dict[str, AuthResult]:
    """The results of one header, by method; none of it may be unreadable."""
    results, bad = parse_authentication_results([header])
    assert bad == 0
    return {r.method: r for r in results}


def test_gmail_header() -> None:
    got = read_clean(GMAIL)
    assert set(got) == {"dkim", "spf", "dmarc"}
    assert got["dmarc"] == AuthResult("mx.google.com", "dmarc", "pass", "gmail.com", 0)
    assert got["spf"].domain == "gmail.com"  # the domain of smtp.mailfrom, not the address


def test_extension_methods_and_policy_properties() -> None:
    got = read_clean(FASTMAIL)
    assert got["dmarc"] == AuthResult("mx6.messagingengine.com", "dmarc", "fail", "example.no", 0)
    assert got["dkim"].domain == "example.no"
    assert "x-tls" in got


def test_exchange_header_without_authserv_id_is_read_as_written_by_nobody() -> None:
    got = read_clean(EXCHANGE)
    assert got["dmarc"] == AuthResult("", "dmarc", "fail", "example.no", 0)
    assert got["compauth"].result == "fail"


def test_none_and_garbage() -> None:
    results, bad = parse_authentication_results(
        ["mx.ours.no; none", "ÆØÅ ;;; ===", "x; dkim=pass " + "(" * 5000, ""]
    )
    assert results == () and bad == 3


def test_header_index_counts_from_the_top() -> None:
    results, _ = parse_authentication_results(
        ["mx.ours.no; dmarc=pass header.from=example.no", "junk", GMAIL]
    )
    assert [(r.authserv_id, r.header_index) for r in results if r.method == "dmarc"] == [
        ("mx.ours.no", 0),
        ("mx.google.com", 2),
    ]


def test_pathological_headers_are_bounded() -> None:
    many = "mx.ours.no; " + "; ".join(f"dkim=pass header.d=d{i}.no" for i in range(2000))
    start = time.perf_counter()
    results, bad = parse_authentication_results([many] * 200)
    assert time.perf_counter() - start < 2.0
    assert results == () and bad == 10  # too long to be a server's; only the first 10 looked at


def test_parse_email_carries_the_results_topmost_first() -> None:
    raw = (
        b"Authentication-Results: mx.ours.no;\r\n"
        b"\tdmarc=fail (p=reject dis=none) header.from=example.no\r\n"
        b"Received: from evil.example by mx.ours.no\r\n"
        b"Authentication-Results: mx.ours.no; dmarc=pass header.from=example.no\r\n"
        b"Authentication-Results: broken ((\r\n"
        b"From: Kari <kari@example.no>\r\n"
        b"To: claims@example.com\r\n"
        b"Subject: Kvittering\r\n"
        b"Message-ID: <a@example.no>\r\n"
        b"\r\n"
        b"Her er den.\r\n"
    )
    email = parse_email(raw)
    assert [(r.result, r.header_index) for r in email.auth_results] == [("fail", 0), ("pass", 1)]
    assert "Authentication-Results unreadable (1)" in email.parse_defects
    assert parse_email(b"From: a@b.c\r\n\r\nhi").auth_results == ()
