"""Web desk speed bench: the queue and a claim page over a big PostgreSQL database.

Seeds a fresh schema with 10 000 claims and 50 000 events (issue 15: "the queue and a
claim page render in under 200 ms of server time"), in a realistic spread: claims in
every state (500 in review, the queue's page size), one to three ledger mails each
(some quarantined, failed or held for a person), receipts and serial photos with
their extractions, replies (some undelivered) and three to seven events per claim.
Rows go in through the models (`insert(Model)` with many parameter sets), no files.

Then the desk's ASGI app is called in-process (Starlette's TestClient, logged in as an
agent): the queue and the busiest claim page in review, each `--repeat` times after
one warm-up, printing median and p95 in ms, and the five slowest SQL statements of one
render of each (to find what to index when over target). Exit status 1 when a
median is over `--target-ms`.

    .venv/bin/python bench/desk.py                 # postgresql://postgres@127.0.0.1:5432/test
    .venv/bin/python bench/desk.py --pg-url URL --claims 10000 --events 50000 --repeat 20
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import event, insert

from mailbot.cli.app import App
from mailbot.config import DatabaseSettings, PathSettings, Settings
from mailbot.services.claims import ensure_campaign_row
from mailbot.store import db
from mailbot.store import models as m
from mailbot.web import accounts
from mailbot.web.app import create_app

NOW = datetime(2023, 1, 20, 10, tzinfo=UTC)
PASSWORD = "bench password, long enough"
STATES = {  # share of claims per state
    "registered": 0.14,
    "awaiting_documents": 0.10,
    "documents_received": 0.04,
    "incomplete": 0.15,
    "review": 0.05,
    "validated": 0.05,
    "approved": 0.20,
    "paid": 0.21,
    "rejected": 0.05,
    "void": 0.01,
}
REVIEW_REASONS = (["model_mismatch"], ["duplicate_receipt_number"], ["serial_mismatch"],
                  ["fields_unsure", "retailer_mismatch"])  # fmt: skip
PERSON_MAILS = [  # (status, reason) of ledger mails that wait for a person
    ("quarantined", "too_large: 30000000 > 20000000 bytes"),
    ("failed", "parse_error"),
    ("processed", "review:sender_not_claimant"),
    ("processed", "review:no_claim_found"),
]


@contextmanager
def pg_schema(url: str, keep: bool) -> Iterator[str]:
    """A URL whose search_path is a fresh schema (dropped afterwards unless `keep`)."""
    import psycopg

    schema = f"mbbench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    sep = "&" if "?" in url else "?"
    try:
        yield f"{url}{sep}options=-csearch_path%3D{schema}"
    finally:
        if keep:
            print(f"kept schema {schema}")
        else:
            with psycopg.connect(url, autocommit=True) as conn:
                conn.execute(f'DROP SCHEMA "{schema}" CASCADE')


def _states(n: int, rnd: random.Random) -> list[str]:
    names, weights = zip(*STATES.items(), strict=True)
    states = [name for name, share in STATES.items() for _ in range(round(share * n))]
    states += rnd.choices(names, weights, k=max(0, n - len(states)))
    rnd.shuffle(states)
    return states[:n]


def _snapshot(
    code: str, email: str, i: int, state: str, reasons: list[str], created: datetime
) -> dict[str, Any]:
    """The state machine's copy of the claim (`records.claim_snapshot` reads it)."""
    paid = state in ("validated", "approved", "paid")
    return {
        "code": code, "campaign_id": "cashback-2022", "email": email, "name": f"Person {i}",
        "model": "WH-1000XM5", "state": state, "registered_at": created.isoformat(),
        "updated_at": created.isoformat(), "language": "nb", "serial": f"{5_000_000 + i}",
        "purchase_date": "2022-12-12", "retailer": "Elkjøp", "country": "NO", "price": None,
        "currency": None, "company": False, "first_campaign_mail_on": None, "documents": [],
        "facts": [], "state_reasons": reasons,
        "missing_documents": ["serial_photo"] if state == "incomplete" else [],
        "missing_fields": [], "deadline_on": None, "deadline_at": None,
        "deadline_set_at": None, "reminded_at": None, "validated_at": None,
        "approved_at": None, "paid_at": None, "payout_amount": "500.00" if paid else None,
        "payout_currency": "NOK" if paid else None, "payment_reference": None,
        "corrections": [],
    }  # fmt: skip


def seed(app: App, n_claims: int, n_events: int, rnd: random.Random) -> dict[str, int]:
    """Bulk rows through the models; the counts written per table."""
    rows: dict[str, list[dict[str, Any]]] = {k: [] for k in
        ("claims", "messages", "documents", "extractions", "events", "outbox")}  # fmt: skip
    models = [m.Claim, m.Message, m.Document, m.Extraction, m.Event, m.Outbox]
    states = _states(n_claims, rnd)
    per_claim = [3] * n_claims  # at least three events each, the rest spread at random
    for _ in range(max(0, n_events - 3 * n_claims)):
        per_claim[rnd.randrange(n_claims)] += 1
    msg_id = doc_id = event_id = outbox_id = 0
    for i, state in enumerate(states, start=1):
        created = NOW - timedelta(days=rnd.uniform(1, 120))
        code = f"{10_000_000 + i * 7919 % 89_999_999:08d}"
        reasons = rnd.choice(REVIEW_REASONS) if state == "review" else [state]
        email = f"person{i}@example.no"
        rows["claims"].append({
            "id": i, "code": code, "campaign_id": "cashback-2022", "email": email,
            "name": f"Person {i}", "model": "WH-1000XM5", "serial": f"{5_000_000 + i}",
            "purchase_date": "2022-12-12", "retailer": "Elkjøp", "country": "NO",
            "language": rnd.choice(["nb", "nb", "sv", "da", "fi", "en"]), "state": state,
            "state_reasons": reasons,
            "deadline_at": created + timedelta(days=14) if state == "incomplete" else None,
            "payout_amount": 500 if state in ("validated", "approved", "paid") else None,
            "payout_currency": "NOK" if state in ("validated", "approved", "paid") else None,
            "facts": {"snapshot": _snapshot(code, email, i, state, reasons, created)},
            "created_at": created, "updated_at": created + timedelta(hours=2),
        })  # fmt: skip
        mails = 0 if state == "registered" else rnd.choice([1, 1, 2, 3])
        for j in range(mails):
            msg_id += 1
            status, reason = "processed", "claim_documents"
            if rnd.random() < 0.03:
                status, reason = rnd.choice(PERSON_MAILS)
            rows["messages"].append({
                "id": msg_id, "account": "claims", "folder": "INBOX", "uidvalidity": 1,
                "uid": msg_id, "message_id": f"<m{msg_id}@example.no>", "sha256": f"{msg_id:064x}",
                "size": 40_000, "status": status, "reason": reason, "kind": "human",
                "from_masked": f"p***{i}@example.no", "claim_id": i, "attempts": 1,
                "mailbox_done": True, "fetched_at": created + timedelta(hours=j + 1),
                "processed_at": created + timedelta(hours=j + 1),
            })  # fmt: skip
            if j == 0:
                for name, kind in (("kvittering.jpg", "receipt"), ("serienr.jpg", "serial_photo")):
                    doc_id += 1
                    rows["documents"].append({
                        "id": doc_id, "message_id": msg_id, "claim_id": i, "filename": name,
                        "content_type": "image/jpeg", "size": 180_000, "sha256": f"{doc_id:064x}",
                        "path": None, "accepted": True, "document_kind": kind,
                        "created_at": created,
                    })  # fmt: skip
                    rows["extractions"].append({
                        "id": doc_id, "document_id": doc_id, "rules_version": "bench",
                        "source": "ocr", "seconds": 1.2, "created_at": created,
                        "fields": {"document_kind": kind, "retailer": {
                            "value": "Elkjøp", "confidence": 0.9,
                            "evidence": "ELKJØP NORGE AS", "rule": "retailer.known"}},
                    })  # fmt: skip
        for k in range(per_claim[i - 1]):
            event_id += 1
            rows["events"].append({
                "id": event_id, "claim_id": i, "kind": "claim.registered" if k == 0
                else rnd.choice(["claim.documents", "claim.reminded", "claim.incomplete",
                                 "claim.validated", "claim.note"]),
                "from_state": None if k == 0 else "registered", "to_state": state,
                "reasons": reasons, "evidence": {"fields": ["retailer"]},
                "rules_version": "bench", "created_at": created + timedelta(minutes=k),
            })  # fmt: skip
            if k < 2:
                outbox_id += 1
                failed = rnd.random() < 0.005
                rows["outbox"].append({
                    "id": outbox_id, "message_id": f"<o{outbox_id}@brand.example>",
                    "event_id": event_id, "claim_id": i,
                    "template": "confirmation" if k == 0 else "documents_received",
                    "language": "nb", "to_addr": email, "subject": f"Krav [Ref {code}]",
                    "body_text": "Hei,\n\n" + "tekst " * 80, "headers": {},
                    "status": "failed" if failed else "sent", "attempts": 1,
                    "last_error": "550 mailbox unavailable" if failed else None,
                    "created_at": created, "sent_at": None if failed else created,
                    "attempted_at": created,
                })  # fmt: skip
    with db.transaction(app.factory) as s:
        ensure_campaign_row(s, app.rules, "cashback-2022", NOW)
    with db.transaction(app.factory) as s:
        for model, key in zip(models, rows, strict=True):
            for start in range(0, len(rows[key]), 5000):
                s.execute(insert(model), rows[key][start : start + 5000])
    with app.engine.connect() as conn:  # fresh statistics, as autovacuum would make them
        conn.exec_driver_sql("ANALYZE")
        conn.commit()
    return {k: len(v) for k, v in rows.items()}


class SqlTimer:
    """Time of each SQL statement run while `active` (the slowest tell what to index)."""

    def __init__(self, engine: Any) -> None:
        self.active = False
        self.seen: list[tuple[float, str]] = []
        event.listen(engine, "before_cursor_execute", self._before)
        event.listen(engine, "after_cursor_execute", self._after)

    def _before(self, conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        conn.info["bench_t0"] = time.perf_counter()

    def _after(self, conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if self.active:
            took = time.perf_counter() - conn.info.pop("bench_t0", time.perf_counter())
            self.seen.append((took * 1000, " ".join(statement.split())))


def timed(client: Any, path: str, repeat: int) -> list[float]:
    client.get(path)  # warm-up: templates compiled, connections open
    out = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        resp = client.get(path)
        out.append((time.perf_counter() - t0) * 1000)
        if resp.status_code != 200:
            raise SystemExit(f"GET {path}: {resp.status_code}")
    return out


def p95(values: list[float]) -> float:
    return statistics.quantiles(values, n=20, method="inclusive")[-1]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument(
        "--pg-url",
        default=os.environ.get("MAILBOT_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/test"),
    )
    ap.add_argument("--claims", type=int, default=10_000)
    ap.add_argument("--events", type=int, default=50_000)
    ap.add_argument("--repeat", type=int, default=20)
    ap.add_argument("--target-ms", type=float, default=200.0)
    ap.add_argument("--seed", type=int, default=15)
    ap.add_argument("--keep", action="store_true", help="keep the seeded schema")
    args = ap.parse_args(argv)
    from starlette.testclient import TestClient

    with pg_schema(args.pg_url, args.keep) as url, tempfile.TemporaryDirectory() as tmp:
        settings = replace(
            Settings(),
            database=DatabaseSettings(url=url),
            paths=PathSettings(data_dir=str(Path(tmp))),
        )
        app = App(settings, clock=lambda: NOW)
        app.ensure_schema()
        t0 = time.perf_counter()
        counts = seed(app, args.claims, args.events, random.Random(args.seed))
        print(f"seeded in {time.perf_counter() - t0:.1f} s: "
              + ", ".join(f"{v} {k}" for k, v in counts.items()))  # fmt: skip
        accounts.add_user(app.factory, "bench", PASSWORD, "agent", NOW)
        with db.transaction(app.factory) as s:
            from sqlalchemy import func, select

            busiest = s.execute(
                select(m.Claim.code)
                .join(m.Event, m.Event.claim_id == m.Claim.id)
                .where(m.Claim.state == "review")
                .group_by(m.Claim.code)
                .order_by(func.count().desc())
                .limit(1)
            ).scalar_one()
        sql = SqlTimer(app.engine)
        slow = False
        with TestClient(create_app(app), base_url="http://127.0.0.1") as client:
            page = client.get("/login")
            token = page.text.split('name="csrf_token" value="')[1].split('"')[0]
            client.post(
                "/login", data={"username": "bench", "password": PASSWORD, "csrf_token": token}
            )
            for name, path in (("queue", "/"), ("claim page", f"/claims/{busiest}")):
                ms = timed(client, path, args.repeat)
                median = statistics.median(ms)
                slow |= median > args.target_ms
                verdict = "ok" if median <= args.target_ms else "OVER TARGET"
                print(f"{name:<11} {path:<18} median {median:7.1f} ms  p95 {p95(ms):7.1f} ms  "
                      f"(n={len(ms)}, target {args.target_ms:.0f} ms: {verdict})")  # fmt: skip
                sql.seen.clear()
                sql.active = True
                client.get(path)
                sql.active = False
                total = sum(t for t, _ in sql.seen)
                print(f"  {len(sql.seen)} SQL statements, {total:.1f} ms; slowest:")
                for took, text in sorted(sql.seen, reverse=True)[:5]:
                    print(f"    {took:6.1f} ms  {text[:150]}")
        app.engine.dispose()
    return 1 if slow else 0


if __name__ == "__main__":
    sys.exit(main())
