"""`mailbot extract FILE... [--json] [--campaign ID]` (`rules test` shares its options).

`extract --json` prints one JSON object per document, one per line (the shape
scripts depend on is documented in `parsers.document.extraction`: the four fields,
and in `other_fields` the others read, buyer company and total among them); a file
that cannot be read gets an object with "error" and the command exits 1 after
reading the others. Files go through the mail path's attachment check first, so
`extract` reads what a mail would: a HEIC photo as its JPEG, a `winmail.dat` as
the files inside it (one object each), and refuses what a mail's check refuses.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from mailbot.cli.app import App
from mailbot.services.documents import ocr_languages


def _options(args: argparse.Namespace, app: App) -> dict[str, Any]:
    rules = app.rules
    opts: dict[str, Any] = {"rules": rules.receipts, "timeout_s": app.settings.ocr.timeout_seconds}
    languages = getattr(args, "languages", None) or app.settings.ocr.languages
    if args.campaign:
        campaign = rules.campaign(args.campaign)
        opts["campaign_models"] = [m.name for m in campaign.models]
        opts["retailers"] = campaign.retailers
        opts["languages"] = ocr_languages(campaign, languages)
    else:
        opts["languages"] = languages or "eng"
    return opts


def cmd_extract(args: argparse.Namespace, app: App) -> int:
    from parsers.document.extraction import extract_files

    opts = _options(args, app)
    failed = 0
    for name in args.files:
        for obj in extract_files(Path(name), name=name, **opts):
            failed += "error" in obj
            if args.json:
                app.out.write(json.dumps(obj, ensure_ascii=False) + "\n")
            else:
                _human(obj, app)
    return 1 if failed else 0


def _human(obj: dict[str, Any], app: App) -> None:
    out = app.out
    out.write(f"{obj['file']}\n")
    if "error" in obj:
        out.write(f"  error: {obj['error']}\n")
        return
    converted = f" (converted from {obj['converted_from']})" if obj.get("converted_from") else ""
    out.write(
        f"  kind {obj['document_kind']}, read by {obj['source']} in {obj['seconds']} s{converted}\n"
    )
    for field, value in obj["fields"].items():
        if value is None:
            out.write(f"  {field:14} (not found)\n")
        else:
            _value(field, value, app)
    for field, value in obj.get("other_fields", {}).items():
        if value is not None:  # none is required: only what was read is shown
            _value(field, value, app)


def _value(field: str, value: dict[str, Any], app: App) -> None:
    country = f" [{value['country']}]" if value.get("country") else ""
    currency = f" {value['currency']}" if value.get("currency") else ""
    app.out.write(
        f"  {field:14} {value['value']}{currency}{country}  "
        f"(confidence {value['confidence']}: {value['evidence']!r})\n"
    )
