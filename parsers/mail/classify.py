"""Is this mail from a person, an auto-responder, or a mail system reporting failure?

Bounce first (many bounces also carry Auto-Submitted): a standard DSN
(multipart/report with message/delivery-status), Exim's X-Failed-Recipients,
the non-standard formats flufl.bounce knows, then a heuristic (a mail-system
sender or empty Return-Path plus a failure subject). Then auto-reply (RFC 3834
and friends, from `rules/classify.yaml`), then out-of-office subjects. Anything
else is human. `reason` names the signal that decided, for `mailbot inspect`.
"""

from __future__ import annotations

import email
import email.policy
import email.utils
import logging
import re
from collections.abc import Iterable
from email.message import Message

from flufl.bounce import _scan as flufl_scan
from flufl.bounce import all_failures

from mailbot.core.mail import Classification, InboundEmail, MailKind
from mailbot.ruleset.classify_rules import ClassifyRules, default_classify_rules

log = logging.getLogger(__name__)
# flufl.bounce logs a traceback for every detector that trips on odd MIME and
# an info line per detector; we handle those failures here, so keep it quiet.
logging.getLogger("flufl.bounce").setLevel(logging.CRITICAL)

_ADDR_RE = re.compile(r"[A-Za-z0-9._%+'=-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}")
_MSGID_LINE_RE = re.compile(r"^[ \t>]*Message-ID:[ \t]*\r?\n?[ \t]*(<[^<>\s]+>)", re.I | re.M)
# Where a non-standard bounce starts quoting the original mail: addresses after
# this point are the original's headers, not failed recipients.
_ORIGINAL_START_RE = re.compile(
    r"^.*(?:(?:unsent|returned|original|undelivered) message follows|below this line is a copy|"
    r"copy of the (?:original )?message|original mail info|^-+ ?original message ?-+|"
    r"^original message:|"
    r"^received: ?from|^return-path:|^message-id:).*$",
    re.I | re.M,
)
_FAILURE_WORDS_RE = re.compile(
    r"user unknown|unknown user|no such user|does not exist|mailbox (?:unavailable|full|"
    r"not found)|could not be delivered|undeliverable|delivery (?:has )?failed|"
    r"permanent(?:ly)? (?:fatal )?error|rejected|recipient address|quota|5\.\d\.\d+|\b55\d\b",
    re.I,
)
# With an empty Return-Path (which auto-replies also use) only wording that an
# out-of-office message never contains counts.
_STRONG_FAILURE_RE = re.compile(
    r"\b[45]\.[0-7]\.\d{1,3}\b|user unknown|unknown user|no such user|does not exist|"
    r"mailbox (?:unavailable|full|not found)|could not be delivered|undeliverable|"
    r"delivery (?:has )?failed|permanent(?:ly)? (?:fatal )?error|"
    r"host (?:or domain name )?not found|"
    r"final-recipient:|\bbouncetype\b|notificationtype\W+bounce",
    re.I,
)
# DSN fields written as text (when the MIME structure is broken).
_DSN_RCPT_RE = re.compile(
    r"^(?:final|original)-recipient:[ \t]*(?:rfc822;)?[ \t]*<?([^\s<>;]+@[^\s<>;]+)", re.I | re.M
)
_DSN_ACTION_RE = re.compile(r"^(?:action:[ \t]*(\w+)|status:[ \t]*([245])\.)", re.I | re.M)
_MAX_SCAN_CHARS = 200_000
_MAX_PARTS = 300
_MAX_DETECTOR_CHARS = 50_000  # per text part handed to flufl.bounce's line scanners
_MAX_CLASSIFY_BYTES = 1024 * 1024
_DELIVERED_ACTIONS = ("delivered", "relayed", "expanded")


def classify(msg: InboundEmail, raw: bytes, rules: ClassifyRules | None = None) -> Classification:
    """Classify one mail. Never raises: a failure is reported as machine mail
    (so nothing replies to it) with the reason saying so."""
    rules = rules if rules is not None else default_classify_rules()
    try:
        return _classify(msg, raw, rules)
    except Exception as exc:
        log.warning("classification failed: %s", type(exc).__name__)
        return Classification(
            kind=MailKind.AUTO_REPLY,
            reason=f"classifier error ({type(exc).__name__}): treated as machine mail",
        )


def _parse(raw: bytes) -> Message | None:
    """Our own parse of the raw mail, trimmed for the bounce detectors: they read
    every body line, so attachments are emptied and long texts cut (a 3 MB mail
    otherwise costs seconds in flufl.bounce's line scanners)."""
    try:
        # Reports are small; the head of a huge mail is enough to tell.
        parsed = email.message_from_bytes(raw[:_MAX_CLASSIFY_BYTES], policy=email.policy.compat32)
    except Exception:
        return None
    if sum(1 for _ in _walk(parsed, _MAX_PARTS + 1)) > _MAX_PARTS:
        return None  # a MIME torture test, not a bounce report: skip the detectors
    for part in _walk(parsed):
        if part.is_multipart():
            continue
        payload = part.get_payload()
        if not isinstance(payload, str):
            continue
        if part.get_content_maintype() not in ("text", "message"):
            part.set_payload("")
        elif len(payload) > _MAX_DETECTOR_CHARS:
            part.set_payload(payload[:_MAX_DETECTOR_CHARS])
    return parsed


def _classify(msg: InboundEmail, raw: bytes, rules: ClassifyRules) -> Classification:
    parsed = _parse(raw)
    if parsed is not None:
        found = _dsn(msg, raw, parsed, rules)
        if found is not None:
            return found
    failed_hdr = _clean_addrs(
        a for v in msg.header_all("X-Failed-Recipients") for a in _ADDR_RE.findall(v)
    )
    if failed_hdr:
        return _bounce(msg, raw, parsed, "X-Failed-Recipients header", failed_hdr, rules)
    if parsed is not None:
        temporary, permanent = _flufl(parsed)
        if (permanent or temporary) and _looks_machine_sent(msg, rules):
            return _bounce(
                msg,
                raw,
                parsed,
                "non-standard bounce recognised by flufl.bounce",
                permanent or temporary,
                rules,
                temporary=not permanent,
            )
    heuristic = _bounce_heuristic(msg, rules)
    if heuristic is not None:
        return _bounce(msg, raw, parsed, heuristic, (), rules)
    for rule in rules.auto_reply_headers:
        for value in msg.header_all(rule.name):
            if rule.matches(value):
                shown = " ".join(value.split())[:60]
                return Classification(MailKind.AUTO_REPLY, f"header {rule.name}: {shown}")
    ooo = rules.ooo_subject(msg.subject)
    if ooo is not None:
        lang, phrase = ooo
        return Classification(MailKind.AUTO_REPLY, f"out-of-office subject '{phrase}' ({lang})")
    return Classification(MailKind.HUMAN, "no bounce or auto-reply signal")


def _clean_addrs(addrs: Iterable[str]) -> tuple[str, ...]:
    out: dict[str, None] = {}
    for a in addrs:
        a = a.strip().strip("<>;,.").lower()
        if a.startswith("rfc822;"):
            a = a[7:].strip().strip("<>")
        if _ADDR_RE.fullmatch(a):
            out.setdefault(a, None)
    return tuple(out)


def _dsn(
    msg: InboundEmail, raw: bytes, parsed: Message, rules: ClassifyRules
) -> Classification | None:
    """RFC 3464 DSNs (and RFC 5965 ARF reports, which are not bounces)."""
    report_type = (
        (parsed.get_param("report-type") or "")
        if parsed.get_content_type() == ("multipart/report")
        else ""
    )
    failed: list[str] = []
    delayed: list[str] = []
    other: list[str] = []
    seen_status = False
    for part in _walk(parsed):
        ctype = part.get_content_type()
        if ctype == "message/feedback-report":
            return Classification(MailKind.AUTO_REPLY, "ARF feedback/abuse report")
        if ctype not in ("message/delivery-status", "message/global-delivery-status"):
            continue
        seen_status = True
        payload = part.get_payload()
        blocks = payload if isinstance(payload, list) else []
        for block in blocks:
            if not isinstance(block, Message):
                continue
            rcpt = block.get("final-recipient") or block.get("original-recipient")
            if not rcpt:
                continue
            addr = _clean_addrs([str(rcpt).split(";", 1)[-1]])
            action = str(block.get("action", "")).strip().lower()
            status = str(block.get("status", "")).strip()
            if action.startswith(("fail", "error")) or status.startswith("5"):
                failed.extend(addr)
            elif action.startswith("delayed") or status.startswith("4"):
                delayed.extend(addr)
            else:
                other.append(action)
    if str(report_type).lower() == "feedback-report":
        return Classification(MailKind.AUTO_REPLY, "ARF feedback/abuse report")
    if not seen_status and str(report_type).lower() != "delivery-status":
        return None
    if failed:
        return _bounce(msg, raw, parsed, "DSN multipart/report (failed)", tuple(failed), rules)
    if delayed:
        return _bounce(
            msg,
            raw,
            parsed,
            "DSN multipart/report (delayed)",
            tuple(delayed),
            rules,
            temporary=True,
        )
    if other and all(a.startswith(_DELIVERED_ACTIONS) for a in other):
        return Classification(MailKind.AUTO_REPLY, "DSN success report (delivered/relayed)")
    # A delivery-status report without usable recipient blocks: still a bounce;
    # let flufl.bounce try to name the recipient from the human-readable part.
    temporary, permanent = _flufl(parsed)
    return _bounce(msg, raw, parsed, "DSN multipart/report", permanent or temporary, rules)


def _walk(parsed: Message, limit: int = _MAX_PARTS) -> Iterable[Message]:
    for count, part in enumerate(parsed.walk(), 1):
        if count > limit:
            return
        yield part


def _flufl(parsed: Message) -> tuple[tuple[str, ...], tuple[str, ...]]:
    try:
        temporary, permanent = all_failures(parsed)
    except Exception:
        # all_failures stops at the first detector that raises (Yale's does on
        # a mail without From). Run the rest one by one; the list is private,
        # hence the getattr with an empty default.
        temporary, permanent = _flufl_each(parsed)

    def dec(items: Iterable[bytes]) -> tuple[str, ...]:
        # heuristic detectors sometimes return the address with its line around it
        return _clean_addrs(
            a for i in items for a in _ADDR_RE.findall(i.decode("ascii", "replace"))
        )

    return dec(temporary), dec(permanent)


def _flufl_each(parsed: Message) -> tuple[frozenset[bytes], frozenset[bytes]]:
    detectors = getattr(flufl_scan, "_DETECTORS", [])
    for detector in detectors:
        try:
            temporary, permanent = detector().process(parsed)
        except Exception:
            continue
        if temporary or permanent:
            return frozenset(temporary), frozenset(permanent)
    return frozenset(), frozenset()


def _looks_machine_sent(msg: InboundEmail, rules: ClassifyRules) -> bool:
    """flufl.bounce's heuristic detectors also fire on a person's reply that
    quotes a list of addresses; trust them only with a sign of a mail system."""
    if _sender_localpart(msg) in rules.bounce_sender_localparts or not msg.from_address:
        return True
    if any(v.strip() == "<>" for v in msg.header_all("Return-Path")):
        return True
    if any(v.strip().lower() not in ("", "no") for v in msg.header_all("Auto-Submitted")):
        return True
    if rules.bounce_subject(msg.subject):
        return True
    return bool(_STRONG_FAILURE_RE.search(msg.text[:_MAX_SCAN_CHARS]))


def _sender_localpart(msg: InboundEmail) -> str:
    addr = msg.from_address or ""
    return addr.split("@", 1)[0].lower()


def _bounce_heuristic(msg: InboundEmail, rules: ClassifyRules) -> str | None:
    """A mail-system sender (or an empty Return-Path) with a failure subject."""
    local = _sender_localpart(msg)
    machine_sender = local in rules.bounce_sender_localparts
    null_path = any(v.strip() == "<>" for v in msg.header_all("Return-Path"))
    phrase = rules.bounce_subject(msg.subject)
    if phrase and (machine_sender or null_path or not msg.from_address):
        who = "mail-system sender" if machine_sender else "empty sender"
        return f"{who} with failure subject '{phrase}'"
    if machine_sender and _FAILURE_WORDS_RE.search(msg.text[:_MAX_SCAN_CHARS]):
        return "mail-system sender with failure text"
    if (null_path or not msg.from_address) and _STRONG_FAILURE_RE.search(
        msg.text[:_MAX_SCAN_CHARS]
    ):
        return "empty sender with delivery-failure text"
    return None


def _dsn_text_blocks(text: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(failed, delayed) from DSN fields found as plain text, block by block."""
    failed: list[str] = []
    delayed: list[str] = []
    for block in re.split(r"\n[ \t]*\n", text[:_MAX_SCAN_CHARS]):
        rcpts = _DSN_RCPT_RE.findall(block)
        if not rcpts:
            continue
        verdicts = " ".join(a.lower() + s for a, s in _DSN_ACTION_RE.findall(block))
        if "fail" in verdicts or "error" in verdicts or "5" in verdicts:
            failed.extend(rcpts[:1])
        elif "delayed" in verdicts or "4" in verdicts:
            delayed.extend(rcpts[:1])
    return _clean_addrs(failed), _clean_addrs(delayed)


def _recipients_from_text(
    msg: InboundEmail, rules: ClassifyRules, raw_text: str = ""
) -> tuple[str, ...]:
    """Addresses the bounce's own text names, before it quotes the original mail;
    the bounce's sender and addressees (that is us) are not failed recipients."""
    text = msg.text[:_MAX_SCAN_CHARS]
    failed, delayed = _dsn_text_blocks(raw_text or text)
    if failed or delayed:
        return failed or delayed
    exclude = {a.lower() for a in msg.to}
    if msg.from_address:
        exclude.add(msg.from_address.lower())
    own_domain = (msg.from_address or "@").split("@", 1)[1]

    def ours(addr: str) -> bool:  # the reporting system's own contact addresses
        local, _, domain = addr.partition("@")
        return local in rules.bounce_sender_localparts and domain == own_domain

    found: list[str] = []
    # The decoded text first; when MIME is too broken for that to hold the
    # report, the raw body (bounce headers skipped) as written.
    raw_body = raw_text.replace("\r\n", "\n").split("\n\n", 1)[-1]
    for source in (text, raw_body):
        cut = _ORIGINAL_START_RE.search(source)
        head = source[: cut.start()] if cut and cut.start() > 0 else source
        found = [
            a for a in _clean_addrs(_ADDR_RE.findall(head)) if a not in exclude and not ours(a)
        ]
        if found:
            break
    return tuple(found[:10])


def _bounced_message_id(msg: InboundEmail, parsed: Message | None) -> str | None:
    """The Message-ID of the mail that bounced, from the quoted original."""
    own = msg.message_id
    if parsed is not None:
        for part in _walk(parsed):
            ctype = part.get_content_type()
            if ctype in ("message/rfc822", "message/global") and part.is_multipart():
                inner = part.get_payload(0)
                if isinstance(inner, Message):
                    mid = inner.get("Message-ID")
                    if mid:
                        m = re.search(r"<[^<>\s]+>", str(mid))
                        if m and m.group(0) != own:
                            return m.group(0)
            elif ctype in ("text/rfc822-headers", "message/rfc822-headers"):
                data = part.get_payload(decode=True)
                if isinstance(data, bytes):
                    m = _MSGID_LINE_RE.search(data.decode("utf-8", "replace"))
                    if m and m.group(1) != own:
                        return m.group(1)
    for m in _MSGID_LINE_RE.finditer(msg.text[:_MAX_SCAN_CHARS]):
        if m.group(1) != own:
            return m.group(1)
    return None


def _bounce(
    msg: InboundEmail,
    raw: bytes,
    parsed: Message | None,
    reason: str,
    recipients: Iterable[str],
    rules: ClassifyRules,
    *,
    temporary: bool = False,
) -> Classification:
    found = _clean_addrs(recipients)
    if not found:
        # The structured signals named nobody: read the bounce's own words.
        found = _recipients_from_text(msg, rules, raw[: _MAX_SCAN_CHARS * 5].decode("latin-1"))
        if found:
            reason += "; recipient read from the bounce text"
    return Classification(
        kind=MailKind.BOUNCE,
        reason=reason,
        failed_recipients=found,
        bounced_message_id=_bounced_message_id(msg, parsed),
        temporary=temporary,
    )
