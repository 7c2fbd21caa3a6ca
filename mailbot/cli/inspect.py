"""`mailbot inspect FILE.eml`: what mailbot understands of one mail, changing nothing.

Parse, classify and judge attachments (`inspect_cmd`), plus what the pipeline
would route it to: a shipment notice, or which claim it matches and by which
signal (read-only against the database when one exists).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from mailbot.cli.app import App
from mailbot.core.mail import Classification, InboundEmail, MailKind
from mailbot.services.inspect import run_inspect
from mailbot.store.db import check_schema


def _routing(app: App, raw_email: Any) -> dict[str, Any]:
    from mailbot.core.claim_match import match_claim
    from mailbot.store.directory import StoreClaimDirectory
    from parsers.returns.notice import parse_shipment_notification

    rules = app.rules
    now = app.now().astimezone(rules.returns.tz)
    notice = parse_shipment_notification(raw_email, rules.matching, now)
    if notice is not None:
        return {
            "route": "rma_shipment_notice",
            "rma_number": notice.rma_number,
            "rma_number_valid": notice.rma_number_valid,
            "tracking": None
            if notice.tracking is None
            else {"number": notice.tracking.number, "carrier": notice.tracking.carrier},
            "dropoff": notice.dropoff.isoformat() if notice.dropoff else None,
            "missing": list(notice.missing),
        }
    has_db = not app.settings.database_url.startswith("sqlite") or app.settings.data_dir.exists()
    if has_db and check_schema(app.engine) is None:
        with app.factory() as session:
            match = match_claim(
                raw_email,
                StoreClaimDirectory(session),
                ignore_words=rules.matching.all_code_ignore_words(),
                trusted_authserv_ids=app.settings.imap.trusted_authserv_ids,
            )
        return {
            "route": "claim",
            "status": match.status,
            "signal": match.signal,
            "strength": match.strength,
            "reason": match.reason,
            "reasons": list(match.reasons),
            "claim": match.claim.code if match.claim else None,
            "codes": list(match.codes),
            "mistyped_codes": list(match.mistyped_codes),
            "signals": [s.name for s in match.signals],
        }
    return {"route": "claim", "status": "no database to match against"}


def cmd_inspect(args: argparse.Namespace, app: App) -> int:
    def routing(parsed: InboundEmail, cls: Classification) -> dict[str, Any]:
        return {"routing": _routing(app, parsed)} if cls.kind is MailKind.HUMAN else {}

    return run_inspect(Path(args.file), args.json, app.out, extra=routing)
