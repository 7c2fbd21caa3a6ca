"""`claims register` and `claims import` as an operator meets them, on SQLite and PostgreSQL.

Operator values are refused (exit 2, the field and the reason on stderr, nothing
written) when they would not fit their column, when the address is not exactly one
plain address, when the model is not the campaign's or when the campaign is closed.
Imports read comma and semicolon files, common date forms and extra columns, and a
second import of the same file registers nothing and sends nothing.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from mailbot.cli.main import main
from mailbot.store import db
from mailbot.store import models as m
from tests.integration._helpers import store_config

NOW = "2023-01-20T10:00:00+00:00"
REGISTER = ["claims", "register", "--campaign", "cashback-2022", "--model", "WH-1000XM5"]


class Cli:
    def __init__(self, tmp: Path, db_url: str, capsys: pytest.CaptureFixture[str]) -> None:
        self.err = ""
        self.tmp = tmp
        self.db_url = db_url
        self.capsys = capsys
        self.config = store_config(tmp, db_url)

    def __call__(self, *argv: str, now: str = NOW) -> tuple[int, str, str]:
        self.capsys.readouterr()
        code = main(["--config", str(self.config), "--log-level", "ERROR", "--now", now, *argv])
        out, err = self.capsys.readouterr()
        return code, out, err

    def csv(self, name: str, text: str, encoding: str = "utf-8") -> Path:
        """`text` written as the file `name` to import."""
        path = self.tmp / name
        path.write_text(text, encoding=encoding)
        return path

    def imported(self, csv_file: Path, *options: str) -> list[dict[str, Any]]:
        """`claims import FILE --json` that succeeds: a row per line read; stderr is
        kept in `self.err`."""
        code, out, self.err = self("claims", "import", str(csv_file), *options, "--json")
        assert code == 0, self.err
        rows: list[dict[str, Any]] = json.loads(out)
        return rows

    def counts(self) -> tuple[int, int]:
        """(claims, queued replies) in the database."""
        engine = db.make_engine(self.db_url)
        try:
            with engine.connect() as conn:
                claims = conn.execute(select(func.count()).select_from(m.Claim)).scalar_one()
                replies = conn.execute(select(func.count()).select_from(m.Outbox)).scalar_one()
        finally:
            engine.dispose()
        return claims, replies


@pytest.fixture
def cli(tmp_path: Path, db_url: str, capsys: pytest.CaptureFixture[str]) -> Cli:
    c = Cli(tmp_path, db_url, capsys)
    assert c("db", "upgrade")[0] == 0
    return c


@pytest.mark.parametrize(
    ("email", "why"),
    [
        ("r2@example.no\r\nBcc: evil@example.org", "an address cannot contain line breaks"),
        ("Evil <evil@example.org> r4@example.no", "not one plain address"),
        ("Evil <evil@example.org>", "not one plain address"),
        ("(comment)kari@example.no", "not one plain address"),
        ("kari@example.no, ola@example.no", "not one plain address"),
        ("kari@localhost", "not one plain address"),
    ],
)
def test_register_refuses_anything_but_one_plain_address(cli: Cli, email: str, why: str) -> None:
    code, out, err = cli(*REGISTER, "--email", email, "--name", "Kari")
    assert code == 2, (out, err)
    assert f"email: {why}" in err and "Traceback" not in err
    assert cli.counts() == (0, 0)


def test_register_refuses_values_longer_than_their_column(cli: Cli) -> None:
    code, _, err = cli(*REGISTER, "--email", "kari@example.no", "--name", "K" * 201)
    assert code == 2
    assert "name: at most 200 characters, got 201" in err and "Traceback" not in err
    code, _, err = cli(
        *REGISTER, "--email", "kari@example.no", "--name", "Kari", "--serial", "9" * 121
    )
    assert code == 2 and "serial: at most 120 characters" in err
    assert cli.counts() == (0, 0)
    # at the limit is fine, on both engines
    code, _, err = cli(*REGISTER, "--email", "kari@example.no", "--name", "K" * 200, "--json")
    assert code == 0, err
    assert cli.counts() == (1, 1)


def test_register_refuses_unknown_models_and_closed_campaigns(cli: Cli) -> None:
    args = ["claims", "register", "--campaign", "cashback-2022", "--email", "kari@example.no"]
    code, _, err = cli(*args, "--name", "Kari", "--model", "iPhone 14")
    assert code == 2 and "model: 'iPhone 14' is not a model of cashback-2022" in err
    after = "2023-03-17T10:00:00+00:00"  # accept_until is 2023-03-16
    code, _, err = cli(*args, "--name", "Kari", "--model", "WH-1000XM5", now=after)
    assert code == 2 and "closed for registrations after 2023-03-16" in err and "--force" in err
    assert cli.counts() == (0, 0)
    code, _, err = cli(*args, "--name", "Kari", "--model", "WH-1000XM5", "--force", now=after)
    assert code == 0, err
    assert cli.counts() == (1, 1)


def test_import_semicolons_day_first_dates_and_kept_columns_twice(cli: Cli) -> None:
    csv_file = cli.csv(
        "eksport.csv",
        "Campaign;Email;Name;Model;Serial;Purchase date;Price;Currency;Skjema-ID;Kanal\n"
        "cashback-2022;kari@example.no;Kari;WH-1000XM5;5123456;12.12.2022;3990,00;NOK;;web\n"
        "cashback-2022;ola@example.no;Ola;WF-1000XM4;;03/01/2023;;;;butikk\n"
        ";;;;;;;;;\n",
        encoding="utf-8-sig",
    )
    first = cli.imported(csv_file, "--extra-columns", "keep")
    assert [(r["line"], r["status"]) for r in first] == [(2, "registered"), (3, "registered")]
    assert cli.counts() == (2, 2)
    _, out, _ = cli("claims", "show", first[1]["code"], "--json")
    shown = json.loads(out)
    assert shown["registered"]["purchase_date"] == "2023-01-03"  # day first
    # kept columns are stored with the claim (empty cells are not)
    assert shown["registration_form"] == {"external_id": None, "extra": {"kanal": "butikk"}}

    # the same file again: nothing registered, no second confirmation
    again = cli.imported(csv_file)
    assert [(r["code"], r["status"]) for r in again] == [(r["code"], "exists") for r in first]
    assert cli.counts() == (2, 2)
    assert "ignored columns skjema_id, kanal" in cli.err


def test_import_is_idempotent_by_external_id(cli: Cli) -> None:
    csv_file = cli.csv(
        "form.csv",
        "external_id,campaign,email,name,model\n"
        "F-1001,cashback-2022,kari@example.no,Kari,WH-1000XM5\n"
        "F-1002,cashback-2022,kari@example.no,Kari,WH-1000XM5\n",
    )
    assert [r["status"] for r in cli.imported(csv_file)] == ["registered", "registered"]
    # the form's export again, one row corrected (name) and one new
    cli.csv(
        "form.csv",
        "external_id,campaign,email,name,model\n"
        "F-1001,cashback-2022,kari@example.no,Kari Nordmann,WH-1000XM5\n"
        "F-1002,cashback-2022,kari@example.no,Kari,WH-1000XM5\n"
        "F-1003,cashback-2022,ola@example.no,Ola,WH-1000XM5\n",
    )
    assert [r["status"] for r in cli.imported(csv_file)] == ["exists", "exists", "registered"]
    assert cli.counts() == (3, 3)


def test_import_without_ids_knows_a_claim_however_the_model_was_typed(cli: Cli) -> None:
    first = cli.csv(
        "a.csv",
        "campaign,email,name,model,serial\ncashback-2022,kari@example.no,Kari,wh1000xm5,1\n",
    )
    cli.imported(first)
    second = cli.csv(
        "b.csv",
        "campaign,email,name,model,serial\n"
        "cashback-2022,Kari@Example.no,Kari N.,WH-1000XM5,1\n"
        "cashback-2022,kari@example.no,Kari,WH-1000XM5,2\n",
    )
    assert [r["status"] for r in cli.imported(second)] == ["exists", "registered"]
    assert cli.counts() == (2, 2)


def test_import_names_every_bad_row_and_registers_none(cli: Cli) -> None:
    csv_file = cli.csv(
        "bad.csv",
        "campaign,email,name,model,purchase_date,note\n"
        "cashback-2022,kari@example.no,Kari,WH-1000XM5,2022-12-12,ok\n"
        "cashback-2022,ola@example.no,Ola,Galaxy S23,2022-12-12,\n"
        "cashback-2022,per@example.no,Per,WH-1000XM5,12/31/2022,\n"
        f"cashback-2022,evil@example.no,{'N' * 300},WH-1000XM5,,\n"
        "cashback-2022,Evil <evil@example.org>,Eve,WH-1000XM5,,\n"
        "cashback-2022,kari@example.no,Kari,WH-1000XM5,2022-12-12,again\n",
    )
    code, out, err = cli("claims", "import", str(csv_file), "--extra-columns", "refuse")
    assert code == 2 and f"{csv_file}:1: unknown columns note" in err
    code, out, err = cli("claims", "import", str(csv_file))
    assert code == 2, out
    assert "Traceback" not in err
    assert f"{csv_file}:3: model: 'Galaxy S23' is not a model of cashback-2022" in err
    assert f"{csv_file}:4: purchase date: not a date" in err
    assert f"{csv_file}:5: name: at most 200 characters, got 300" in err
    assert f"{csv_file}:6: email: not one plain address" in err
    assert f"{csv_file}:7: the same registration as line 2" in err
    assert cli.counts() == (0, 0)


def test_rma_issue_checks_address_and_lengths_the_same_way(cli: Cli) -> None:
    args = ["rma", "issue", "--product", "Sonos One"]
    code, _, err = cli(*args, "--email", "Evil <evil@example.org> ola@example.no")
    assert code != 0 and "email: not one plain address" in err
    code, _, err = cli("rma", "issue", "--email", "ola@example.no", "--product", "P" * 201)
    assert code != 0 and "product: at most 200 characters, got 201" in err
    assert "Traceback" not in err
    code, _, err = cli(*args, "--email", "ola@example.no", "--json")
    assert code == 0, err
