"""The one check for an address an operator registers a claim to (CLI and CSV import).

Replies go to this address, so it must be exactly one addr-spec and nothing else:
no display name (`Evil <evil@example.org> kari@example.no` would send the
confirmation to evil@...), no comments, no CR/LF (a header injection that made the
confirmation disappear), no quoted local part, no IP-literal domain and no
special-use domain (`.test`, `.invalid`, `localhost`) that no mail reaches. The
syntax rules are `email-validator`'s (RFC 5321/5322 and internationalised
addresses), never a hand-written pattern; nothing is looked up in DNS here.
"""

from __future__ import annotations

from email_validator import EmailNotValidError, validate_email

from mailbot.core.errors import InputError


def registration_address(text: str, field: str = "email") -> str:
    """`text` as the address to store (domain lower-cased and IDNA-normalised), or
    InputError naming `field` and what is wrong."""
    if any(ch in text for ch in "\r\n\x00"):
        raise InputError(f"{field}: an address cannot contain line breaks: {text!r}")
    candidate = text.strip()
    try:
        checked = validate_email(
            candidate,
            check_deliverability=False,
            allow_display_name=False,
            allow_quoted_local=False,
            allow_domain_literal=False,
        )
    except EmailNotValidError as exc:
        raise InputError(f"{field}: not one plain address ({exc}): {text!r}") from None
    return checked.normalized
