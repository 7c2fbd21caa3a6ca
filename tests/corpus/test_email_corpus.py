"""Every real mail in ../shared/corpus/emails is read, classified, fast; bounces name recipients.

Skipped (with the reason) when the shared corpus is not there. Run with `-s`
to see the counts per kind.
"""

from __future__ import annotations

import re
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import pytest

from mailbot.core.mail import Classification, MailKind
from parsers.mail.classify import classify
from parsers.mail.parse import parse_email

pytestmark = pytest.mark.corpus

CORPUS = Path(__file__).parents[2].parent / "shared/corpus/emails"
# CPU time of this process: wall-clock time on a shared test machine measures
# the neighbours' load as much as our code.
TIME_LIMIT_S = 1.0

# sisimai files it calls bounces that we do not, and why (checked: these are
# the only ones; a new miss fails the test).
KNOWN_NOT_BOUNCE = {
    "lhost-fml-02.eml": "mailing-list manager 'you are not a member' notice from a list admin",
    "lhost-fml-03.eml": "mailing-list manager 'loop alert' notice from a list admin",
    "lhost-kddi-01.eml": "Japanese-only notice from a no-reply sender, no DSN structure",
    "lhost-sendmail-14.eml": "a person forwarding a bounce ('Fwd: Returned mail'): human is right",
    # Amazon SES JSON notices that are not failures: machine mail (auto_reply) is right
    "lhost-amazonses-11.eml": "SES 'Complaint' notification, not a failed delivery",
    "lhost-amazonses-12.eml": "SES 'Delivery' (success) notification",
    "lhost-amazonses-13.eml": "SES 'Delivery' (success) notification",
}
# sisimai bounces where the bounce itself does not state the failed address
# (only the quoted original's To header has it, or the report is empty).
KNOWN_NO_RECIPIENT = {
    "lhost-postfix-64.eml": "'Delivery report unavailable', recipient block missing",
    "lhost-v5sendmail-01.eml": "transcript names a host only; address only in the quoted original",
    "lhost-verizon-01.eml": "address only in the quoted original's To header",
}


@dataclass(frozen=True)
class Result:
    path: Path
    seconds: float
    cls: Classification | None
    error: str | None


def _files() -> list[Path]:
    if not CORPUS.is_dir():
        return []
    return sorted(p for p in CORPUS.rglob("*") if p.is_file())


@pytest.fixture(scope="module")
def results() -> list[Result]:
    files = _files()
    if not files:
        pytest.skip(f"shared email corpus not found at {CORPUS}")
    out = []
    for path in files:
        raw = path.read_bytes()
        start = time.process_time()
        try:
            cls: Classification | None = classify(parse_email(raw), raw)
            error = None
        except Exception as exc:  # the point of the test: there must be none
            cls, error = None, f"{type(exc).__name__}: {exc}"
        out.append(Result(path, time.process_time() - start, cls, error))
    return out


def _sisimai(results: list[Result], prefix: str | None = None) -> list[Result]:
    return [
        r
        for r in results
        if r.path.parent.name == "sisimai" and (prefix is None or r.path.name.startswith(prefix))
    ]


def test_every_file_read_and_classified_in_time(results: list[Result]) -> None:
    errors = [(r.path.name, r.error) for r in results if r.error]
    assert not errors
    assert all(r.cls is not None and r.cls.kind in set(MailKind) and r.cls.reason for r in results)
    slow = [(r.path.name, round(r.seconds, 2)) for r in results if r.seconds >= TIME_LIMIT_S]
    assert not slow


def test_rfc3834_files_are_auto_replies(results: list[Result]) -> None:
    files = _sisimai(results, "rfc3834-")
    assert files
    wrong = [(r.path.name, r.cls) for r in files if r.cls and r.cls.kind is not MailKind.AUTO_REPLY]
    assert not wrong


def _bounce_files(results: list[Result]) -> list[Result]:
    return [r for r in _sisimai(results) if not r.path.name.startswith(("rfc3834-", "arf-"))]


def test_sisimai_bounces_are_bounces(results: list[Result]) -> None:
    files = _bounce_files(results)
    assert len(files) > 500
    missed = {r.path.name for r in files if r.cls and r.cls.kind is not MailKind.BOUNCE}
    assert missed <= set(KNOWN_NOT_BOUNCE), sorted(missed - set(KNOWN_NOT_BOUNCE))


def test_sisimai_bounces_name_the_failed_recipient(results: list[Result]) -> None:
    bounces = [r for r in _bounce_files(results) if r.cls and r.cls.kind is MailKind.BOUNCE]
    nameless = {r.path.name for r in bounces if r.cls and not r.cls.failed_recipients}
    assert nameless <= set(KNOWN_NO_RECIPIENT), sorted(nameless - set(KNOWN_NO_RECIPIENT))
    # every address we name is really in the mail: in the raw bytes (line breaks
    # removed: some reports wrap long addresses) or in the decoded text (base64,
    # quoted-printable soft breaks)
    invented = []
    for r in bounces:
        raw = r.path.read_bytes()
        flat = re.sub(rb"\r?\n", b"", raw).decode("latin-1").lower()
        text = parse_email(raw).text.lower()
        for addr in r.cls.failed_recipients if r.cls else ():
            if addr not in flat and addr not in text and addr not in flat.replace("=", ""):
                invented.append((r.path.name, addr))
    assert not invented


def test_counts(results: list[Result]) -> None:
    kinds = Counter((r.path.parent.name, r.cls.kind.value) for r in results if r.cls)
    bounces = [r for r in _bounce_files(results) if r.cls and r.cls.kind is MailKind.BOUNCE]
    named = sum(1 for r in bounces if r.cls and r.cls.failed_recipients)
    total = Counter(r.cls.kind.value for r in results if r.cls)
    print(f"\nemail corpus: {len(results)} files; by kind: {dict(sorted(total.items()))}")
    for (folder, kind), n in sorted(kinds.items()):
        print(f"  {folder:13} {kind:11} {n}")
    print(
        f"  sisimai bounce files: {len(_bounce_files(results))}, classified bounce: "
        f"{len(bounces)}, naming a recipient: {named}"
    )
    print(f"  slowest: {max(r.seconds for r in results):.2f} s")
    assert sum(total.values()) == len(results)
