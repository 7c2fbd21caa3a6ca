"""Mailbox simulation bench: a seeded month of customer mail through the real daemon.

A new user's month (issue 14): claims over both shipped campaigns and RMAs under
the returns policy, the customers writing in over the weeks in five languages, with
the mistakes real customers make. Each mail carries the outcome a careful human
clerk would produce from the campaign texts (`../shared/seeds/`: the cashback FAQ,
the Swedish promotion terms, the returns policy) as encoded in `rules/campaigns/`.
The bench prints, per persona and overall, how many mails mailbot handled right
automatically, parked for a person, got wrong, lost, or answered twice, and lists
the wrong ones so developers see what to fix.

Targets: right automatically >= 85 % of mails, wrong <= 2 %, lost 0, answered twice 0.

How it runs (as an operator would; only the CLI, so internal refactors do not break it):
a private Dovecot (`mailbot.devtools.dovecot`) and SMTP sink (`mailbot.devtools.smtpsink`)
on loopback, SQLite in a fresh data dir. Claims are registered with
`mailbot claims import --json` (one CSV per phase; the registration form's path), RMAs
with `mailbot rma issue --json`; their confirmation mails go out with `mailbot once`.
Then, per simulated day with mail, the day's customer mails are APPENDed to INBOX and
`mailbot --now <day 10:00> once --json` runs. Outcomes are read back with
`claims list --json`, `rma list --json` and `messages list --json` (ledger row matched
by the UID Dovecot gave the APPEND), and from the sink: a reply belongs to the mail its
In-Reply-To names; its kind (template) is recognised from the subject each template in
`templates/<lang>/*.subject.j2` renders (mailbot sets no header naming the template).
The two campaigns ran years apart (promo-20pct in spring 2018, cashback-2022 in
2022/23), so the month is run twice, each in its own mailbox and database: phase
"promo" (2018-04-16 onwards) and phase "cashback" (2023-02-01 onwards, with the RMAs).
Days between mails are not run one by one; the next `once` runs the deadline sweeps.

Persona mix (default 120 claims + 20 RMAs, about 180 mails; shares of claims / RMAs):

| persona           | share | mails | campaign | languages  | what the clerk does                  |
|-------------------|------:|------:|----------|------------|--------------------------------------|
| complete          | 22 %  | 1     | both     | (1)        | approve                              |
| shop_layout       |  7 %  | 1     | both     | (1)        | approve: clean scans of one layout   |
| forgot_serial     |  8 %  | 2     | cashback | nb en      | ask for the serial photo; approve    |
| phone_serial      |  7 %  | 1     | cashback | nb en      | approve: label shot with a phone (2) |
| reused_receipt    |  3 %  | 1     | both     | (1)        | hand to a person: another's receipt  |
| nothing_attached  |  4 %  | 1     | both     | (1)        | say nothing arrived                  |
| status_question   |  5 %  | 2     | both     | (1)        | approve; answer "when do I get paid" |
| unreadable        |  4 %  | 1     | both     | (1)        | ask for a sharper photo              |
| domain_screenshot |  3 %  | 1     | promo    | da         | approve: "power.dk" is Power         |
| b2b_invoice       |  5 %  | 1     | both     | (1)        | promo: reject company; cashback: ok  |
| better_copy       |  4 %  | 2     | both     | (1)        | ask for what is missing; approve PDF |
| forward           |  5 %  | 1     | both     | (1)        | approve: forwarded shop mail + PDF   |
| out_of_office     |  4 %  | 2     | both     | (1)        | no reply to the auto-reply; approve  |
| bounce            |  2 %  | 1     | both     | (1)        | no reply to the bounce               |
| rma_proper        | 50 %  | 1     | returns  | nb sv da fi en | acknowledge tracking             |
| rma_body_only     | 20 %  | 1     | returns  | da nb sv   | acknowledge: RMA nr. only in body    |
| rma_no_dropoff    | 20 %  | 1     | returns  | nb sv en fi | ask for the drop-off time           |
| rma_expired       | 10 %  | 1     | returns  | nb         | answer with the policy: expired      |

Shares: of claims for claim personas, of RMAs for rma_*. (1) cashback-2022 (Norway
only): nb nb nb en; promo-20pct: sv sv da fi nb en. (2) tilt, keystone, dark
surroundings, stored sideways with an EXIF orientation tag.

Claims of personas open to both campaigns go 55 % to cashback-2022, 45 % to promo-20pct.

Scoring, per inbound mail (its expectation: right reply kinds, right states, `human`):
* lost: no ledger row for the mail, or still `pending`.
* answered twice: more than one reply whose In-Reply-To is this mail (counted apart
  from right/parked/wrong, which judge the first reply).
* right: the first reply's kind is one the clerk would send (none when none is right)
  and the claim/RMA state afterwards is one the clerk would leave it in. For a
  "hand to a person" mail, parking it (claim in `review`, or the mail quarantined)
  with at most the neutral "documents received" reply is right.
* parked: not right, but handed to a person (claim in `review`, or the mail
  quarantined or failed) with no reply or only "documents received": nobody was told
  anything wrong.
* wrong: everything else: a reply of the wrong kind (rejecting a good claim, asking
  for what was sent, acknowledging an incomplete notice, answering an auto-reply),
  a wrong state change (approving a company buyer), a "hand to a person" mail
  decided automatically, or silence where the clerk would have answered.

Run (exit 0 when every mail was scored and none was lost or answered twice):
    .venv/bin/python bench/month.py                     # 120 claims, 20 RMAs, seed 1
    .venv/bin/python bench/month.py --seed 7 --claims 30 --rmas 6 --json
"""

from __future__ import annotations

import argparse
import csv
import email.parser
import email.policy
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make `bench.` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from imapclient import IMAPClient

from bench.month_personas import Case, MailContext, build_cases
from mailbot.devtools.dovecot import LocalDovecot
from mailbot.devtools.samples import customer_mail
from mailbot.devtools.smtpsink import SmtpSink

BOT = "claims@brand.example"
ROOT = Path(__file__).resolve().parents[1]
HEADERS = email.parser.BytesHeaderParser(policy=email.policy.default)
PHASES = {
    "promo": (date(2018, 4, 16), ("promo-20pct",)),
    "cashback": (date(2023, 2, 1), ("cashback-2022", "returns")),
}
PARK_REPLIES = frozenset({"documents_received"})


# --- recognising reply kinds from their subjects ------------------------------------------


class SubjectKinds:
    """Template name of a reply from its subject: each `*.subject.j2` in every language
    (and campaign override) is cut at its jinja tags; the template whose longest literal
    piece occurs in the subject wins (the longest such piece over all templates)."""

    def __init__(self, templates: Path) -> None:
        self.pieces: list[tuple[str, str]] = []
        for path in templates.rglob("*.subject.j2"):
            kind = path.name.removesuffix(".subject.j2")
            text = path.read_text(encoding="utf-8")
            for piece in re.split(r"{{.*?}}|{%.*?%}", text):
                piece = piece.strip(" \n:–-#[]")
                if len(piece) >= 5:
                    self.pieces.append((piece.lower(), kind))
        self.pieces.sort(key=lambda p: len(p[0]), reverse=True)

    def kind(self, subject: str) -> str:
        low = subject.lower()
        for piece, kind in self.pieces:
            if piece in low:
                return kind
        return "unknown"


# --- the mailbot CLI ----------------------------------------------------------------------


@dataclass
class Cli:
    config: Path
    calls: int = 0
    seconds: float = 0.0

    def run(self, now: str, *args: str) -> str:
        cmd = [sys.executable, "-m", "mailbot", "--config", str(self.config), "--now", now]
        cmd += ["--log-level", "ERROR", *args]
        t0 = time.monotonic()
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=1800, cwd=ROOT)
        self.calls += 1
        self.seconds += time.monotonic() - t0
        if done.returncode != 0:
            raise RuntimeError(
                f"mailbot {' '.join(args)} exited {done.returncode}:\n{done.stderr[-3000:]}"
            )
        return done.stdout

    def json(self, now: str, *args: str) -> Any:
        out = self.run(now, *args, "--json")
        # the command's JSON comes first; a log line may follow on stdout
        return json.JSONDecoder().raw_decode(out.lstrip())[0]


# --- one run ------------------------------------------------------------------------------


@dataclass
class Sent:
    case: Case
    index: int
    day: int
    message_id: str
    uid: int
    replies: list[str] = field(default_factory=list)
    state: str = ""
    ledger: str = ""
    reason: str = ""
    verdict: str = ""
    twice: bool = False


def at(start: date, day: int, hour: int = 10) -> str:
    return f"{(start + timedelta(days=day)).isoformat()}T{hour:02d}:00:00+00:00"


def write_config(path: Path, dovecot: LocalDovecot, sink: SmtpSink, data: Path) -> None:
    path.write_text(
        f'[imap]\nhost = "127.0.0.1"\nport = {dovecot.port}\ntls = "none"\n'
        'username = "claims"\npassword = "secret"\nidle = false\n'
        f'[smtp]\nhost = "127.0.0.1"\nport = {sink.port}\ntls = "none"\n'
        f'from_address = "{BOT}"\nrate_limit_per_hour = 100000\n'
        f'[paths]\ndata_dir = "{data}"\n[log]\nformat = "text"\nlevel = "ERROR"\n'
    )


def latest_to(sink: SmtpSink, address: str) -> tuple[str, str]:
    for captured in reversed(sink.messages):
        if address in captured.rcpt_tos:
            h = HEADERS.parsebytes(captured.data)
            return str(h["Subject"] or ""), str(h["Message-ID"] or "")
    return "", ""


def run_phase(
    phase: str, cases: list[Case], sink: SmtpSink, base: Path, kinds: SubjectKinds, log: Any
) -> list[Sent]:
    start = PHASES[phase][0]
    work = base / phase
    work.mkdir(parents=True)
    work.chmod(0o755)
    (work / "dovecot").mkdir()
    dovecot = LocalDovecot(base=work / "dovecot")
    dovecot.start()
    try:
        cfg = work / "mailbot.toml"
        write_config(cfg, dovecot, sink, work / "data")
        cli = Cli(cfg)
        claims = [c for c in cases if c.kind == "claim"]
        rmas = [c for c in cases if c.kind == "rma"]

        def issue_rma(c: Case, when: str) -> str:
            args = ["--email", c.email, "--product", c.registration["product"]]
            return str(cli.json(when, "rma", "issue", *args, "--language", c.language)["number"])

        for issue_day in sorted({c.rma_issue_day for c in rmas if c.rma_issue_day < 0}):
            for c in rmas:
                if c.rma_issue_day == issue_day:
                    c.rma = issue_rma(c, at(start, issue_day, 9))
            cli.run(at(start, issue_day), "once")
        if claims:
            csv_path = work / "registrations.csv"
            columns = list(claims[0].registration)
            with csv_path.open("w", newline="", encoding="utf-8") as fh:
                w = csv.DictWriter(fh, fieldnames=columns)
                w.writeheader()
                for c in claims:
                    w.writerow(c.registration)
            rows = cli.json(at(start, 0, 9), "claims", "import", str(csv_path))
            for c, row in zip(claims, rows, strict=True):
                c.code = row["code"]
        for c in rmas:
            if c.rma_issue_day >= 0:
                c.rma = issue_rma(c, at(start, 0, 9))
        cli.run(at(start, 0), "once")
        log(f"  {phase}: {len(claims)} claims and {len(rmas)} RMAs registered, confirmations sent")

        sent: list[Sent] = []
        days = sorted({m.day for c in cases for m in c.mails})
        client = IMAPClient("127.0.0.1", port=dovecot.port, ssl=False, timeout=60)
        client.login("claims", "secret")
        try:
            for day in days:
                today: list[Sent] = []
                for c in cases:
                    for k, mail in enumerate(c.mails):
                        if mail.day != day:
                            continue
                        subject, mid = latest_to(sink, c.email)
                        ctx = MailContext(c.code, c.rma, subject, mid, start + timedelta(days=day))
                        spec = mail.build(ctx)
                        raw = spec.raw or customer_mail(
                            sender=f"{c.name} <{c.email}>",
                            to=BOT,
                            subject=spec.subject,
                            body=spec.body,
                            attachments=spec.attachments,
                            in_reply_to=mid if (spec.reply_to_ours and mid) else None,
                            headers=spec.headers,
                            domain=c.email.split("@")[1],
                        )
                        resp = client.append("INBOX", raw)
                        found = re.search(rb"APPENDUID \d+ (\d+)", resp)
                        if found is None:
                            raise RuntimeError(f"no APPENDUID in {resp!r}")
                        today.append(
                            Sent(
                                c,
                                k,
                                day,
                                str(HEADERS.parsebytes(raw)["Message-ID"]),
                                int(found.group(1)),
                            )
                        )
                t0 = time.monotonic()
                cli.run(at(start, day), "once")
                log(
                    f"  {phase} day {day:2}: {len(today)} mails processed in "
                    f"{time.monotonic() - t0:.0f} s"
                )
                observe(cli, at(start, day), today, sink, kinds)
                sent += today
        finally:
            client.logout()
        # replies that came later (a second answer to an earlier mail) still count
        observe_replies(sent, sink, kinds)
        log(f"  {phase}: {cli.calls} CLI calls, {cli.seconds:.0f} s in them")
        return sent
    finally:
        dovecot.cleanup()


def observe(cli: Cli, now: str, today: list[Sent], sink: SmtpSink, kinds: SubjectKinds) -> None:
    claims = {c["code"]: c for c in cli.json(now, "claims", "list", "--limit", "100000")}
    rmas = (
        {r["number"]: r for r in cli.json(now, "rma", "list", "--limit", "100000")}
        if any(s.case.kind == "rma" for s in today)
        else {}
    )
    ledger = {
        (r["folder"], r["uid"]): r for r in cli.json(now, "messages", "list", "--limit", "100000")
    }
    for s in today:
        if s.case.kind == "claim":
            s.state = str(claims.get(s.case.code, {}).get("state", "?"))
        else:
            s.state = str(rmas.get(s.case.rma, {}).get("state", "?"))
        row = ledger.get(("INBOX", s.uid))
        s.ledger = row["status"] if row else "missing"
        s.reason = (row or {}).get("reason") or ""
    observe_replies(today, sink, kinds)


def observe_replies(sent: list[Sent], sink: SmtpSink, kinds: SubjectKinds) -> None:
    by_mid: dict[str, list[str]] = defaultdict(list)
    for captured in sink.messages:
        h = HEADERS.parsebytes(captured.data)
        parent = str(h.get("In-Reply-To") or "").strip()
        if parent:
            by_mid[parent].append(kinds.kind(str(h["Subject"] or "")))
    for s in sent:
        s.replies = by_mid.get(s.message_id, [])


def score(s: Sent) -> str:
    e = s.case.mails[s.index].expect
    first = s.replies[0] if s.replies else ""
    s.twice = len(s.replies) > 1
    if s.ledger in ("missing", "pending"):
        return "lost"
    handed = s.state == "review" or s.ledger in ("quarantined", "failed")
    neutral = first == "" or first in PARK_REPLIES
    if e.human:
        return "right" if handed and neutral else "wrong"
    reply_ok = (first in e.replies) if e.replies else first == ""
    state_ok = not e.states or s.state in e.states
    if reply_ok and state_ok:
        return "right"
    if handed and neutral:
        return "parked"
    return "wrong"


# --- report -------------------------------------------------------------------------------

COLS = ("right", "parked", "wrong", "lost", "twice")


def summarise(sent: list[Sent]) -> dict[str, Any]:
    per: dict[str, Counter[str]] = defaultdict(Counter)
    for s in sent:
        s.verdict = score(s)
        for key in (s.case.persona, "overall"):
            per[key]["mails"] += 1
            per[key][s.verdict] += 1
            per[key]["twice"] += int(s.twice)
    wrong = [
        {
            "persona": s.case.persona,
            "campaign": s.case.campaign,
            "language": s.case.language,
            "mail": f"{s.case.code or s.case.rma} #{s.index + 1} day {s.day}",
            "expected": s.case.mails[s.index].expect.label,
            "got": f"reply {'+'.join(s.replies) or 'none'}, state {s.state}, ledger {s.ledger}"
            + (f" ({s.reason})" if s.reason else ""),
        }
        for s in sent
        if s.verdict in ("wrong", "lost") or s.twice
    ]
    return {"personas": {k: dict(v) for k, v in per.items()}, "wrong": wrong}


def print_report(summary: dict[str, Any], out: Any = sys.stdout) -> None:
    per = summary["personas"]
    head = f"{'persona':18} {'mails':>5} " + " ".join(f"{c:>13}" for c in COLS)
    out.write("\n" + head + "\n" + "-" * len(head) + "\n")
    for name in sorted(per, key=lambda n: (n == "overall", n)):
        row = per[name]
        n = row["mails"]
        cells = " ".join(f"{row.get(c, 0):>5} {100 * row.get(c, 0) / n:5.1f} %" for c in COLS)
        out.write(f"{name:18} {n:>5} {cells}\n")
    out.write("\nTargets: right >= 85 %, wrong <= 2 %, lost 0, answered twice 0.\n")
    if summary["wrong"]:
        out.write("\nwrong / lost / answered twice:\n")
        for w in summary["wrong"]:
            out.write(
                f"  {w['persona']:18} {w['campaign']:13} {w['language']} {w['mail']}: "
                f"expected {w['expected']}; got {w['got']}\n"
            )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--claims", type=int, default=120)
    ap.add_argument("--rmas", type=int, default=20)
    ap.add_argument(
        "--workdir", help="where the run's mailboxes and databases go (default: a temp dir)"
    )
    ap.add_argument("--keep", action="store_true", help="keep the work dir")
    ap.add_argument("--json", action="store_true", help="print the result as JSON")
    args = ap.parse_args(argv)
    t_start = time.monotonic()
    quiet = args.json

    def log(text: str) -> None:
        if not quiet:
            print(text, flush=True)
        else:
            print(text, file=sys.stderr, flush=True)

    cases = build_cases(
        args.claims,
        args.rmas,
        args.seed,
        {
            "promo-20pct": PHASES["promo"][0],
            "cashback-2022": PHASES["cashback"][0],
            "returns": PHASES["cashback"][0],
        },
    )
    total_mails = sum(len(c.mails) for c in cases)
    log(
        f"mailbot month bench: seed {args.seed}, {args.claims} claims, {args.rmas} RMAs, "
        f"{total_mails} mails; cpus {os.cpu_count()}"
    )
    base = Path(args.workdir) if args.workdir else Path(tempfile.mkdtemp(prefix="mbmonth-"))
    base.mkdir(parents=True, exist_ok=True)
    base.chmod(0o755)
    kinds = SubjectKinds(ROOT / "templates")
    sink = SmtpSink().start()
    sent: list[Sent] = []
    try:
        for phase, (_, campaigns) in PHASES.items():
            mine = [c for c in cases if c.campaign in campaigns]
            if mine:
                sent += run_phase(phase, mine, sink, base, kinds, log)
    finally:
        sink.stop()
        if not args.keep:
            shutil.rmtree(base, ignore_errors=True)
    summary = summarise(sent)
    summary["seconds"] = round(time.monotonic() - t_start, 1)
    summary["seed"] = args.seed
    summary["mails"] = len(sent)
    summary["scored"] = sum(1 for s in sent if s.verdict)
    summary["mails_detail"] = [
        {
            "persona": s.case.persona,
            "campaign": s.case.campaign,
            "language": s.case.language,
            "id": s.case.code or s.case.rma,
            "mail": s.index + 1,
            "day": s.day,
            "expected": asdict(s.case.mails[s.index].expect)
            | {
                "replies": sorted(s.case.mails[s.index].expect.replies),
                "states": sorted(s.case.mails[s.index].expect.states),
            },
            "replies": s.replies,
            "state": s.state,
            "ledger": s.ledger,
            "verdict": s.verdict,
        }
        for s in sent
    ]
    if args.json:
        print(json.dumps(summary, ensure_ascii=False, indent=1))
    else:
        print_report(summary)
        print(f"\n{len(sent)} mails scored in {summary['seconds']:.0f} s")
    overall = summary["personas"].get("overall", {})
    ok = summary["scored"] == total_mails and not overall.get("lost") and not overall.get("twice")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
