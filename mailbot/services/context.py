"""Turn a core `ReplyIntent` into the full context its template needs.

The core says *what* to tell the customer in its own terms (reason codes, the
snapshot's dates); templates need presentation values (`max_mb`, `valid_until`,
`files` with refusal codes, a greeting name). This adapter is the one place that
maps between the two, so neither the state machine nor the templates have to
know the other's vocabulary. Every key a template may test is present (None when
not applicable) because templates render with StrictUndefined.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any
from urllib.parse import quote

from mailbot.config import Settings
from mailbot.core.claim_state import Claim, base_context
from mailbot.core.rma_machine import Rma
from mailbot.core.transition import ReplyIntent

STATUS_PATH = "/status"
"""Where the claimant status page answers, under `[web] base_url`."""

_DEFAULT_FILE_TYPES = ["JPG", "PNG", "PDF"]
_DEFAULT_MAX_BYTES = 5 * 1024 * 1024


def _file_rules(ctx: dict[str, Any]) -> None:
    types = ctx.get("file_types") or _DEFAULT_FILE_TYPES
    ctx["file_types"] = [str(t).upper().lstrip(".") for t in types]
    max_bytes = int(ctx.get("max_bytes") or _DEFAULT_MAX_BYTES)
    ctx["max_bytes"] = max_bytes
    mb = max_bytes / (1024 * 1024)
    ctx["max_mb"] = int(mb) if mb == int(mb) else round(mb, 1)


def status_url(settings: Settings, language: str | None = None) -> str | None:
    """The status page's address for mails, or None when no `[web] base_url` is set.
    It carries the page's language at most: the page asks for the code and the
    address, so nothing personal is ever in a link (or in a proxy's access log)."""
    base = settings.web.base_url.strip().rstrip("/")
    if not base:
        return None
    return f"{base}{STATUS_PATH}" + (f"?lang={quote(language)}" if language else "")


def _claim_defaults(claim: Claim) -> dict[str, Any]:
    return base_context(claim) | {
        "rma_number": None,
        "missing_documents": list(claim.missing_documents),
        "missing_fields": list(claim.missing_fields),
        "deadline": claim.deadline_on,
        "reasons": list(claim.state_reasons),
        "amount": claim.payout_amount,
        "currency": claim.payout_currency,
        "payment_days": None,
        "files": [],
        "filenames": [],
    }


def _rma_defaults(rma: Rma) -> dict[str, Any]:
    # Days as the customer counts them: in the policy's zone, which `expires_at`
    # carries (local midnight); `issued_at` is stored in UTC.
    zone = rma.expires_at.tzinfo
    issued_on = rma.issued_at.astimezone(zone).date()
    expired_on = rma.expires_at.date()
    last_day = expired_on - timedelta(days=1)
    return {
        "code": None,
        "name": "",
        "rma_number": rma.number,
        "product": rma.product,
        "language": rma.language,
        "valid_days": (expired_on - issued_on).days - 1,
        "valid_until": last_day,
        "issued_on": issued_on,
        "expired_on": expired_on,
        "tracking_number": rma.tracking_number,
        "carrier": rma.carrier,
        "dropoff_at": rma.dropoff_at,
        "status": rma.state.value,
        "deadline": last_day,
        "missing_documents": [],
        "missing_fields": [],
    }


def reply_context(
    intent: ReplyIntent, snapshot: object, settings: Settings, extra: dict[str, Any]
) -> dict[str, Any]:
    if isinstance(snapshot, Claim):
        ctx = _claim_defaults(snapshot)
    elif isinstance(snapshot, Rma):
        ctx = _rma_defaults(snapshot)
    else:
        ctx = {"code": None, "name": "", "rma_number": None}
    ctx.update(intent.context)
    ctx.update(extra)
    _file_rules(ctx)
    # The core lists refused files as {filename, reason=<refusal code>}.
    refused = ctx.get("refused") or []
    if refused and not ctx.get("files"):
        ctx["files"] = [{"filename": r["filename"], "reason": r["reason"]} for r in refused]
    if ctx.get("tracking") and not ctx.get("tracking_number"):
        ctx["tracking_number"] = ctx["tracking"]
    if ctx.get("dropoff") is not None and ctx.get("dropoff_at") is None:
        ctx["dropoff_at"] = ctx["dropoff"]
    if intent.template == "rma_policy":
        ctx["status"] = "expired" if ctx.get("reason") == "rma_expired" else "unknown"
    ctx.setdefault("valid_days", 14)
    ctx.setdefault("expired_on", None)
    ctx.setdefault("payment_days", None)
    ctx["status_url"] = status_url(settings, ctx.get("language"))
    if intent.template != "claim_status":
        ctx["payment_days"] = ctx["payment_days"] or 28
    # else: a status answer states no payment time the campaign does not promise
    return ctx
