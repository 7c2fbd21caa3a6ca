"""With ocr.workers > 1 a batch's receipts are read in parallel, and decisions are unchanged."""

from __future__ import annotations

import dataclasses
import multiprocessing
import threading
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy.orm import Session, sessionmaker

from mailbot import resources
from mailbot.config import Settings, load_settings
from mailbot.devtools.samples import customer_mail, text_pdf
from mailbot.intake.pipeline import Pipeline
from mailbot.ruleset.loader import load_ruleset
from mailbot.services.claims import Registration, register_claim
from mailbot.services.documents import ReadResult
from mailbot.store import db

NOW = datetime(2023, 1, 20, 10, tzinfo=UTC)


def _settings(tmp: Path, url: str, workers: int) -> Settings:
    base = load_settings(environ={"MAILBOT_PATHS_DATA_DIR": str(tmp)})
    return dataclasses.replace(
        base,
        database=dataclasses.replace(base.database, url=url),
        ocr=dataclasses.replace(base.ocr, workers=workers),
    )


def test_prefetched_reads_are_used(
    tmp_path: Path, db_url: str, store: sessionmaker[Session]
) -> None:
    settings = _settings(tmp_path, db_url, workers=2)
    factory = store
    rules = load_ruleset(resources.rules_dir())
    with db.transaction(factory) as s:
        claim = register_claim(
            s,
            Registration(
                "cashback-2022", "kari@example.no", "Kari", "WH-1000XM5", purchase_date="2022-12-12"
            ),
            rules=rules,
            settings=settings,
            now=NOW,
        )
        code = claim.code
    inline_reads: list[str] = []

    def inline(content: bytes, name: str, campaign: object, serial: str | None) -> ReadResult:
        inline_reads.append(name)
        return ReadResult(None, "error", 0.0, "inline read")

    pipeline = Pipeline(
        settings, rules=lambda: rules, clock=lambda: NOW, factory=factory, reader=inline
    )
    assert pipeline.prefetcher is not None
    pdf = text_pdf(
        [
            "Elkjøp Norge AS",
            "Org.nr 988 077 917 MVA",
            "Dato: 12.12.2022",
            "Sony WH-1000XM5  3 990,00",
        ]
    )
    raw = customer_mail(
        sender="kari@example.no",
        to="claims@example.com",
        subject=f"Kvittering {code}",
        body="Her.",
        attachments=[("k.pdf", "application/pdf", pdf)],
    )
    try:
        assert pipeline.prefetcher.prefetch([raw]) == 1
        read = pipeline.reader
        assert read is not None
        result = read(pdf, "k.pdf", rules.campaign("cashback-2022"), None)
        assert inline_reads == []  # came from the pool
        # threads of this process, not worker processes (each would load the stack)
        assert multiprocessing.active_children() == []
        assert any(t.name.startswith("ocr") for t in threading.enumerate())
        assert result.fields is not None and result.source == "pdf-text"
        assert result.fields.vat_number is not None
        # a document nobody prefetched is read in line
        read(b"%PDF-other", "x.pdf", rules.campaign("cashback-2022"), None)
        assert inline_reads == ["x.pdf"]
    finally:
        pipeline.close()


def test_only_mails_that_can_carry_files_are_parsed_ahead() -> None:
    from mailbot.intake.prefetch import may_have_attachments

    text = customer_mail(sender="a@b.no", to="c@d.no", subject="Hei", body="Bare tekst.")
    with_pdf = customer_mail(
        sender="a@b.no",
        to="c@d.no",
        subject="Hei",
        body="Her.",
        attachments=[("k.pdf", "application/pdf", b"%PDF-1.4")],
    )
    assert may_have_attachments(text) is False
    assert may_have_attachments(with_pdf) is True
    assert may_have_attachments(b"Subject: x\r\n\r\nno content type: text/plain") is False
    folded = b"Subject: x\r\nContent-Type:\r\n multipart/mixed; boundary=b\r\n\r\n--b--"
    assert may_have_attachments(folded) is True
    # a whole mail that is one PDF (no multipart) still counts
    assert may_have_attachments(b"Content-Type: application/pdf\r\n\r\n%PDF") is True
    # "content-type:" in the body is not a header
    assert may_have_attachments(b"Subject: x\n\nContent-Type: image/jpeg") is False
