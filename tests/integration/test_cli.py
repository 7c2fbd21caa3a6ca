"""The `mailbot` command as operators use it: help, check, import, rules, extract, inspect."""

from __future__ import annotations

import io
import json
import shutil
import subprocess
import sys
import zipfile
from contextlib import redirect_stdout
from pathlib import Path

import pytest

from mailbot import resources
from mailbot.cli.main import build_parser, main
from mailbot.devtools.dovecot import LocalDovecot
from mailbot.devtools.samples import customer_mail, text_pdf
from mailbot.devtools.smtpsink import SmtpSink
from tests.integration._helpers import store_config

REPO = Path(__file__).resolve().parents[2]


def run(*argv: str) -> tuple[int, str]:
    buf = io.StringIO()
    with redirect_stdout(buf):
        code = main(list(argv))
    return code, buf.getvalue()


def _subcommands() -> list[list[str]]:
    parser = build_parser()
    out: list[list[str]] = []
    for action in parser._subparsers._group_actions:  # type: ignore[union-attr]
        for name, sub in action.choices.items():
            out.append([name])
            for sa in sub._subparsers._group_actions if sub._subparsers else []:
                out.extend([name, inner] for inner in sa.choices)
    return out


@pytest.mark.parametrize("argv", _subcommands(), ids=lambda a: " ".join(a))
def test_every_subcommand_has_help(argv: list[str]) -> None:
    buf = io.StringIO()
    with redirect_stdout(buf), pytest.raises(SystemExit) as exc:
        main([*argv, "--help"])
    assert exc.value.code == 0
    assert "usage: mailbot" in buf.getvalue()


def test_all_required_subcommands_exist() -> None:
    names = {" ".join(a) for a in _subcommands()}
    for required in (
        "run",
        "once",
        "check",
        "db upgrade",
        "claims register",
        "claims show",
        "claims list",
        "claims import",
        "rma issue",
        "rma show",
        "rma list",
        "messages list",
        "messages stats",
        "inspect",
        "extract",
        "rules check",
        "rules test",
        "reprocess",
        "sweep",
    ):
        assert required in names


def _config(tmp: Path, dovecot: LocalDovecot, sink: SmtpSink, db_url: str) -> Path:
    cfg = tmp / "m.toml"
    cfg.write_text(
        f'[imap]\nhost = "127.0.0.1"\nport = {dovecot.port}\ntls = "none"\n'
        'username = "claims"\npassword = "secret"\n'
        f'[smtp]\nhost = "127.0.0.1"\nport = {sink.port}\ntls = "none"\n'
        f'[paths]\ndata_dir = "{tmp / "data"}"\n[database]\nurl = "{db_url}"\n'
    )
    return cfg


def test_check_against_the_test_servers_is_all_ok(
    tmp_path: Path, dovecot: LocalDovecot, smtp_sink: SmtpSink, db_url: str
) -> None:
    cfg = _config(tmp_path, dovecot, smtp_sink, db_url)
    assert run("--config", str(cfg), "db", "upgrade")[0] == 0
    code, out = run("--config", str(cfg), "check")
    assert code == 0, out
    lines = out.strip().splitlines()
    assert [line.split()[1] for line in lines] == [
        "config",
        "rules",
        "templates",
        "database",
        "imap",
        "smtp",
        "tesseract",
        "daemon",
    ]
    assert all(line.startswith("OK") for line in lines[:-1]), out
    assert lines[-1] == "SKIP daemon     [health] listen not set"


def test_check_names_the_exact_problem(tmp_path: Path, dovecot: LocalDovecot) -> None:
    cfg = tmp_path / "m.toml"
    cfg.write_text(
        f'[imap]\nhost = "127.0.0.1"\nport = {dovecot.port}\ntls = "none"\n'
        'username = "claims"\npassword = "wrong"\n[smtp]\nhost = "127.0.0.1"\nport = 1\n'
        f'tls = "none"\n[paths]\ndata_dir = "{tmp_path / "data"}"\n'
    )
    code, out = run("--config", str(cfg), "--log-level", "ERROR", "check", "--json")
    assert code == 1
    by_item = {r["item"]: r for r in json.loads(out)}
    assert not by_item["imap"]["ok"] and "login" in by_item["imap"]["detail"].lower()
    assert not by_item["smtp"]["ok"] and "refused" in by_item["smtp"]["detail"].lower()
    assert not by_item["database"]["ok"] and "db upgrade" in by_item["database"]["detail"]
    assert by_item["rules"]["ok"] and by_item["config"]["ok"]


def test_claims_import_all_or_nothing(tmp_path: Path, db_url: str) -> None:
    cfg = store_config(tmp_path, db_url)
    good = tmp_path / "good.csv"
    good.write_text(
        "campaign,email,name,model,purchase_date,language\n"
        "cashback-2022,kari@example.no,Kari,WH-1000XM5,2022-12-12,nb\n"
        "promo-20pct,sven@example.se,Sven,Sonos One,2022-12-01,sv\n"
    )
    code, out = run(
        "--config", str(cfg), "--now", "2023-01-20", "claims", "import", str(good), "--json"
    )
    assert code == 0
    rows = json.loads(out)
    assert [r["line"] for r in rows] == [2, 3]
    bad = tmp_path / "bad.csv"
    bad.write_text(
        "campaign,email,name,model,purchase_date\n"
        "cashback-2022,ola@example.no,Ola,WH-1000XM5,2022-12-12\n"
        "cashback-2022,per@example.no,Per,WH-1000XM5,2022-13-45\n"
    )
    code, _ = run("--config", str(cfg), "--log-level", "ERROR", "claims", "import", str(bad))
    assert code == 2
    code, out = run("--config", str(cfg), "claims", "list", "--json")
    assert {r["email"] for r in json.loads(out)} == {"kari@example.no", "sven@example.se"}


def test_rules_check_reports_file_and_line(tmp_path: Path) -> None:
    rules = tmp_path / "rules"
    shutil.copytree(resources.rules_dir(), rules)
    campaign = rules / "campaigns" / "cashback-2022.yaml"
    lines = campaign.read_text().splitlines()
    # break the first "start:" date in the file
    idx = next(i for i, line in enumerate(lines) if line.strip().startswith("start:"))
    lines[idx] = lines[idx].split(":")[0] + ": 2022-13-45"
    campaign.write_text("\n".join(lines) + "\n")
    cfg = tmp_path / "m.toml"
    cfg.write_text(f'[paths]\ndata_dir = "{tmp_path}"\nrules_dir = "{rules}"\n')
    code, out = run("--config", str(cfg), "rules", "check")
    assert code == 1
    assert f"{campaign}:{idx + 1}:" in out


def test_extract_json_shape(tmp_path: Path) -> None:
    pdf = tmp_path / "kvittering.pdf"
    pdf.write_bytes(
        text_pdf(
            [
                "Elkjøp Norge AS",
                "Org.nr 988 077 917 MVA",
                "Dato: 12.12.2022",
                "Sony WH-1000XM5   3 990,00",
            ]
        )
    )
    code, out = run("extract", str(pdf), "--json", "--campaign", "cashback-2022")
    assert code == 0
    obj = json.loads(out.strip().splitlines()[0])
    assert set(obj) >= {"file", "document_kind", "fields", "source", "seconds"}
    assert obj["source"] == "pdf-text" and obj["document_kind"] == "receipt"
    assert set(obj["fields"]) == {"retailer", "purchase_date", "product", "vat_number"}
    assert obj["fields"]["purchase_date"]["value"] == "2022-12-12"
    assert obj["fields"]["vat_number"] == {
        **obj["fields"]["vat_number"],
        "value": "988077917",
        "country": "NO",
    }
    assert obj["fields"]["product"]["value"] == "WH-1000XM5"


def test_inspect_routes_a_shipment_notice(tmp_path: Path) -> None:
    eml = tmp_path / "m.eml"
    eml.write_bytes(
        customer_mail(
            sender="ola@example.no",
            to="claims@brand.example",
            subject="SV: shipment notification RMA #1234567",
            body="Sporingsnummer 1Z999AA10123456784",
        )
    )
    code, out = run("inspect", str(eml), "--json")
    assert code == 0
    data = json.loads(out)
    assert data["classification"]["kind"] == "human"
    assert data["extra"]["routing"]["route"] == "rma_shipment_notice"
    assert data["extra"]["routing"]["tracking"]["carrier"] == "UPS"


@pytest.mark.slow
def test_wheel_ships_rules_and_templates(tmp_path: Path) -> None:
    wheels = tmp_path / "wheels"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(wheels),
            str(REPO),
        ],
        check=True,
        timeout=300,
    )
    # the distribution is mailbot-claims ("mailbot" on the index is another project)
    [wheel] = list(wheels.glob("mailbot_claims-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    [entry_points] = [n for n in names if n.endswith(".dist-info/entry_points.txt")]
    assert "mailbot = mailbot.cli.main:main" in zipfile.ZipFile(wheel).read(entry_points).decode()
    assert "mailbot/_data/rules/campaigns/cashback-2022.yaml" in names
    assert "mailbot/_data/templates/nb/missing_info.txt.j2" in names
    assert "mailbot/store/migrations/versions/0001_initial_schema.py" in names
    assert any(n.startswith("parsers/") for n in names)
    target = tmp_path / "site"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--no-deps",
            "-q",
            "--target",
            str(target),
            str(wheel),
        ],
        check=True,
        timeout=300,
    )
    # from an unrelated directory, the installed copy finds its own rules and templates
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            "import mailbot.resources as r, sys; "
            "print(r.rules_dir()); sys.exit(__import__('mailbot.cli.main').cli.main.main("
            "['rules', 'check']))",
        ],
        cwd=tmp_path,
        env={
            "PYTHONPATH": str(target),
            "PATH": "/usr/bin:/bin",
            "MAILBOT_PATHS_DATA_DIR": str(tmp_path / "d"),
        },
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert str(target) in proc.stdout and "OK" in proc.stdout


def test_the_demo_runs_the_whole_conversation() -> None:
    # The README's first quick-start command, as `scripts/demo.sh` runs it after setup.
    done = subprocess.run(
        [sys.executable, "-m", "mailbot", "--log-format", "text", "--log-level", "WARNING", "demo"],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=REPO,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    out = done.stdout
    assert out.rstrip().endswith("demo finished")
    for seen in (
        "approved",
        "shipment_notified",
        "Sporingsnummer mangler",
        "no reply, as intended",
    ):
        assert seen in out, seen
    ledger = out[out.index("== Ledger") :]
    assert "failed              0" in ledger and "quarantined         0" in ledger
