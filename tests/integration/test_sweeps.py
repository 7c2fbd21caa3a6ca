"""Deadline sweeps over the database: idempotent, and catching up after downtime."""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, NamedTuple

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from mailbot import resources
from mailbot.config import Settings, load_settings
from mailbot.core import claim_machine as claim_sm
from mailbot.ruleset.loader import load_ruleset
from mailbot.services.claims import Registration, register_claim
from mailbot.services.records import claim_snapshot, record
from mailbot.services.rmas import issue_rma
from mailbot.services.sweeps import run_sweeps
from mailbot.store import db
from mailbot.store import models as m
from tests.integration._helpers import run_cli, store_config
from tests.unit.claim_factories import unread_photo

RULES = load_ruleset(resources.rules_dir())
T0 = datetime(2023, 1, 20, 10, tzinfo=UTC)


def _settings(tmp: Path, url: str) -> Settings:
    base = load_settings(environ={"MAILBOT_PATHS_DATA_DIR": str(tmp)})
    return dataclasses.replace(base, database=dataclasses.replace(base.database, url=url))


def _seed(
    factory: sessionmaker[Session], settings: Settings, email: str = "k@example.no"
) -> datetime:
    """An incomplete claim (deadline 14 days out) and an issued RMA; the claim's deadline."""
    campaign = RULES.campaign("cashback-2022")
    with db.transaction(factory) as s:
        row = register_claim(
            s,
            Registration("cashback-2022", email, "Kari", "WH-1000XM5", purchase_date="2022-12-12"),
            rules=RULES,
            settings=settings,
            now=T0,
        )
        # only a serial photo arrives: incomplete, with a deadline 14 days out
        photo = unread_photo("ab")
        t = claim_sm.receive_documents(claim_snapshot(row), campaign, [photo], T0)
        record(s, t, settings=settings, rules_version=RULES.version, claim_row=row)
        assert row.state == "incomplete" and row.deadline_at is not None
        deadline = row.deadline_at
        issue_rma(
            s,
            email="o@example.no",
            product="Sonos One",
            kind="warranty",
            serial=None,
            language="nb",
            rules=RULES,
            settings=settings,
            now=T0,
        )
    return deadline


class Seeded(NamedTuple):
    settings: Settings
    factory: sessionmaker[Session]
    deadline: datetime


@pytest.fixture
def seeded(tmp_path: Path, db_url: str, store: sessionmaker[Session]) -> Seeded:
    """The store with `_seed`'s claim and RMA, the settings they were made under, the
    claim's deadline."""
    settings = _settings(tmp_path, db_url)
    return Seeded(settings, store, _seed(store, settings))


def test_sweeps_are_idempotent_and_catch_up(seeded: Seeded) -> None:
    settings, factory, deadline = seeded

    def events() -> int:
        with db.transaction(factory) as s:
            return int(s.scalar(select(func.count()).select_from(m.Event)) or 0)

    # nothing due yet
    assert run_sweeps(factory, settings, RULES, T0).claims == 0
    # two days before the deadline: one reminder, once
    before = deadline.replace(hour=0) - (deadline - T0) / 7
    first = run_sweeps(factory, settings, RULES, before)
    n = events()
    again = run_sweeps(factory, settings, RULES, before)
    assert (again.claims, again.rmas) == (0, 0) and events() == n
    assert first.claims + first.rmas >= 1
    # after a long downtime: each overdue item gets exactly one transition
    late = datetime(2023, 6, 1, tzinfo=UTC)
    caught = run_sweeps(factory, settings, RULES, late)
    assert (caught.claims, caught.rmas) == (1, 1), caught
    assert run_sweeps(factory, settings, RULES, late).claims == 0
    with db.transaction(factory) as s:
        assert s.scalars(select(m.Claim.state)).one() == "void"
        assert s.scalars(select(m.Rma.state)).one() == "expired"
        # every transition that asked for a mail queued exactly one
        queued = s.scalar(select(func.count()).select_from(m.Outbox)) or 0
        with_reply = (
            s.scalar(
                select(func.count())
                .select_from(m.Event)
                .where(m.Event.id.in_(select(m.Outbox.event_id)))
            )
            or 0
        )
        assert queued == with_reply


def _everything(factory: sessionmaker[Session]) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table, in primary-key order."""
    out: dict[str, list[tuple[Any, ...]]] = {}
    with db.transaction(factory) as s:
        for table in m.Base.metadata.sorted_tables:
            query = select(table).order_by(*table.primary_key.columns)
            out[table.name] = [tuple(r) for r in s.execute(query)]
    return out


def _sweep_cli(tmp: Path, url: str, *argv: str) -> tuple[int, str, str]:
    return run_cli(store_config(tmp, url), *argv)


def test_dry_run_writes_nothing_and_tells_what_a_real_run_does(
    tmp_path: Path, db_url: str, seeded: Seeded
) -> None:
    settings, factory, deadline = seeded
    # a second claim whose mails must not go out (a no-reply address): reported as such
    _seed(factory, settings, email="no-reply@example.no")
    remind_at = (deadline - timedelta(days=2)).isoformat()
    late = "2023-06-01T09:00"
    now = ("--now", "2023-01-21T09:00")
    before = _everything(factory)

    # a future --as-of is refused without --dry-run, and changes nothing
    code, out, err = _sweep_cli(tmp_path, db_url, *now, "sweep", "--as-of", late)
    assert code == 2 and out == ""
    assert "in the future" in err and "--dry-run" in err and "2023-06-01T09:00" in err
    assert _everything(factory) == before

    for as_of in (remind_at, late):
        code, out, _ = _sweep_cli(
            tmp_path, db_url, *now, "sweep", "--dry-run", "--as-of", as_of, "--json"
        )
        assert code == 0, out
        preview = json.loads(out)
        assert preview["dry_run"] is True and preview["changes"]
        # nothing written: no state, event or outbox row differs, and a second preview agrees
        assert _everything(factory) == before
        again = _sweep_cli(tmp_path, db_url, *now, "sweep", "--dry-run", "--as-of", as_of, "--json")
        assert json.loads(again[1])["changes"] == preview["changes"]
        code, text, _ = _sweep_cli(tmp_path, db_url, *now, "sweep", "--dry-run", "--as-of", as_of)
        assert text.startswith("dry run, nothing written") and _everything(factory) == before

        # the real run at that moment (it is now) does exactly what the preview said
        code, out, _ = _sweep_cli(tmp_path, db_url, "--now", as_of, "sweep", "--json")
        assert code == 0, out
        real = json.loads(out)
        assert real["dry_run"] is False and real["changes"] == preview["changes"]
        assert [real[k] for k in ("claims", "rmas", "mails")] == [
            preview[k] for k in ("claims", "rmas", "mails")
        ]
        after = _everything(factory)
        with db.transaction(factory) as s:
            known = {row[0] for row in before["outbox"]}
            new_mails = [
                (o.template, o.to_addr) for o in s.scalars(select(m.Outbox)) if o.id not in known
            ]
        said = [(c["reply"], c["to"]) for c in preview["changes"] if c["reply"]]
        assert sorted(new_mails) == sorted(said) and len(said) == preview["mails"] == 3
        assert len(after["events"]) == len(before["events"]) + len(preview["changes"])
        before = after

    assert sorted((c["table"], c["kind"], c["suppressed"] or "") for c in real["changes"]) == [
        ("claim", "claim.void", ""),
        ("claim", "claim.void", "machine_address"),
        ("rma", "rma.expired", ""),
        ("rma", "rma.expired", ""),
    ]
