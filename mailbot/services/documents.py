"""Attachments of a claim mail: store them, read the accepted ones, hand the core evidence.

Each attachment becomes a `documents` row (accepted or refused with its reason);
each accepted one is read (`parsers.document.extraction`: pdfplumber or OCR) into an
`extractions` row carrying the rules version; the core gets one
`DocumentEvidence` per attachment. Files are stored content-addressed under
data_dir/documents, never under a name the sender chose.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from PIL import Image
from sqlalchemy.orm import Session

from mailbot.core.campaign import Campaign
from mailbot.core.claim_state import DocumentEvidence
from mailbot.core.errors import ExtractionError
from mailbot.core.fraud import receipt_identity
from mailbot.core.mail import Attachment
from mailbot.core.receipt_fields import DocumentKind, ReceiptFields
from mailbot.core.snapshots import to_plain
from mailbot.ruleset.loader import RuleSet
from mailbot.store import models as m
from mailbot.store.limits import fit
from mailbot.store.rawstore import RawStore

log = logging.getLogger(__name__)

TESSERACT_LANG = {
    "nb": "nor",
    "nn": "nor",
    "no": "nor",
    "sv": "swe",
    "da": "dan",
    "fi": "fin",
    "en": "eng",
}


class DocumentStore(RawStore):
    """Attachment bytes by sha256 (no file extension: the type is in the database)."""

    def path_for(self, sha: str) -> Path:
        return self.root / sha[:2] / sha[2:4] / sha


@dataclass(frozen=True)
class ReadResult:
    fields: ReceiptFields | None
    source: str
    seconds: float
    error: str | None = None


Reader = Callable[[bytes, str, Campaign, str | None], ReadResult]
"""(content, filename, campaign, registered serial) -> what the document says."""


def ocr_languages(campaign: Campaign, configured: str) -> str:
    """The configured languages, else the campaign's one language (never all installed:
    every extra language makes tesseract slower without reading receipts better)."""
    return configured or TESSERACT_LANG.get(campaign.language, "eng")


def read_receipt(
    content: bytes,
    filename: str,
    campaign: Campaign,
    serial: str | None,
    *,
    receipt_rules: Any,
    languages: str,
    timeout_s: float,
) -> ReadResult:
    """Read one document for `campaign` (module level: prefetch runs it in workers)."""
    from parsers.document.extraction import extract

    try:
        result = extract(
            content,
            rules=receipt_rules,
            campaign_models=[item.name for item in campaign.models],
            retailers=campaign.retailers,
            languages=ocr_languages(campaign, languages),
            serial=serial,
            timeout_s=timeout_s,
            name=filename,
        )
    except ExtractionError as exc:
        return ReadResult(None, "error", 0.0, str(exc)[:300])
    return ReadResult(result.fields, result.document.source, result.seconds)


def make_reader(rules: Callable[[], RuleSet], languages: str, timeout_s: float) -> Reader:
    """The production reader: pdfplumber / tesseract through `parsers.document.extraction`."""

    def read(content: bytes, filename: str, campaign: Campaign, serial: str | None) -> ReadResult:
        return read_receipt(
            content,
            filename,
            campaign,
            serial,
            receipt_rules=rules().receipts,
            languages=languages,
            timeout_s=timeout_s,
        )

    return read


def dhash(content: bytes) -> int | None:
    """64-bit difference hash of an image, to spot the same receipt photographed or
    re-encoded twice. Written here (ten lines over Pillow) instead of adding the
    ImageHash package, which pulls in numpy, SciPy and PyWavelets for this."""
    try:
        with Image.open(io.BytesIO(content)) as img:
            small = img.convert("L").resize((9, 8), Image.Resampling.LANCZOS)
            px = list(small.getdata())
    except Exception:  # not an image we can read: no hash, not an error
        return None
    bits = 0
    for row in range(8):
        for col in range(8):
            bits = (bits << 1) | (px[row * 9 + col] > px[row * 9 + col + 1])
    # signed 64-bit, so it fits a BIGINT column
    return bits - (1 << 64) if bits >= 1 << 63 else bits


def handle_attachments(
    session: Session,
    attachments: tuple[Attachment, ...],
    *,
    message_row: m.Message,
    claim_row: m.Claim,
    campaign: Campaign,
    serial: str | None,
    reader: Reader,
    store: DocumentStore,
    rules_version: str,
    now: datetime,
) -> list[DocumentEvidence]:
    # Read first, write after: on SQLite the first write takes the database's write
    # lock until commit, and OCR can take seconds; nothing else may wait that long.
    files = [a for a in attachments if not a.ignored]
    results = {
        att.sha256: reader(att.content, att.filename, campaign, serial)
        for att in files
        if att.accepted
    }
    evidence: list[DocumentEvidence] = []
    for att in files:
        # Everything here comes from the mail: cut to the columns (mailbot.store.limits),
        # so a long Content-Type or filename is stored, not a DataError on PostgreSQL.
        doc = m.Document(
            message_id=message_row.id,
            claim_id=claim_row.id,
            filename=fit(m.Document.filename, att.filename) or "",
            content_type=fit(m.Document.content_type, att.sniffed_type or att.declared_type),
            size=att.size,
            sha256=att.sha256,
            accepted=att.accepted,
            refusal_code=fit(m.Document.refusal_code, att.refusal_code),
            refusal=fit(m.Document.refusal, att.refusal),
            created_at=now,
        )
        session.add(doc)
        if not att.accepted:
            session.flush()
            evidence.append(
                DocumentEvidence(
                    kind=DocumentKind.OTHER,
                    fields=None,
                    refused=att.refusal_code or "unsupported_type",
                    sha256=att.sha256,
                    filename=att.filename,
                )
            )
            continue
        _, path = store.put(att.content, att.sha256)
        doc.path = str(path)
        doc.phash = dhash(att.content) if (att.sniffed_type or "").startswith("image/") else None
        result = results[att.sha256]
        fields = result.fields
        doc.document_kind = fields.document_kind.value if fields else None
        identity = receipt_identity(fields, campaign.min_confidence)
        if identity is not None and len(identity.key) <= 80:  # the column; a longer one
            doc.receipt_key = identity.key  # is still compared among recent claims
        session.flush()
        session.add(
            m.Extraction(
                document_id=doc.id,
                rules_version=rules_version,
                source=result.source,
                seconds=result.seconds,
                fields=to_plain(fields) if fields else {"error": result.error},
                created_at=now,
            )
        )
        if fields is None:
            log.info("document unreadable", extra={"document_id": doc.id, "error": result.error})
            evidence.append(
                DocumentEvidence(
                    kind=DocumentKind.OTHER,
                    fields=None,
                    refused="image_unreadable",
                    sha256=att.sha256,
                    filename=att.filename,
                )
            )
            continue
        evidence.append(
            DocumentEvidence(
                kind=fields.document_kind,
                fields=fields,
                refused=None,
                sha256=att.sha256,
                phash=None if doc.phash is None else doc.phash & 0xFFFF_FFFF_FFFF_FFFF,
                filename=att.filename,
            )
        )
    return evidence
