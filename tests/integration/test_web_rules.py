"""The desk's rules page against a real database (SQLite and PostgreSQL): the version in
force and the stored versions for everyone, a replay of candidate rules for admins
only (CSRF checked) that lists the claims whose decision would change and writes
nothing, candidate rules that do not load shown with file:line (400), a stored
version's files, and a claim reevaluated with the current rules through the preview
(nothing queued) and the confirm (the event names who and why, one reply)."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from mailbot.store import db
from mailbot.store import models as m
from tests.integration.test_replay import CAMPAIGN, Cli, _claim_with_receipt, _rules_copy
from tests.integration.test_web import Desk, csrf_of, desk_app

SERIAL_REQUIRED = "required_documents: [receipt, serial_photo]"
RECEIPT_ONLY = "required_documents: [receipt]"


class RulesDesk(Desk):
    cli_: Cli
    rules: Path
    """The desk's configured rules directory (a copy of the built-in rules)."""

    def claim_with_receipt(self) -> str:
        """A claim decided on one receipt under the desk's rules: incomplete, the serial
        photo missing."""
        return _claim_with_receipt(self.cli_, self.rules)

    def counts(self) -> dict[str, int]:
        return self.cli_.counts()

    def claim(self, code: str) -> tuple[str, list[str], str | None]:
        return self.cli_.claim(code)

    def post(self, path: str, data: dict[str, str], page: str = "/rules") -> httpx.Response:
        resp: httpx.Response = self.client.post(path, data={"csrf_token": self.csrf(page), **data})
        return resp


def receipt_only(rules: Path) -> Path:
    """`rules` edited: the campaign no longer asks for a serial photo."""
    campaign = rules / CAMPAIGN
    text = campaign.read_text()
    assert SERIAL_REQUIRED in text
    campaign.write_text(text.replace(SERIAL_REQUIRED, RECEIPT_ONLY))
    return rules


@pytest.fixture
def desk(tmp_path: Path, db_url: str) -> Iterator[RulesDesk]:
    rules = _rules_copy(tmp_path, "rules")
    probe = Cli(tmp_path, db_url, tmp_path / "data", None)  # type: ignore[arg-type]
    cfg = probe.config(rules)
    with desk_app(cfg) as (app, wall, client):
        d = RulesDesk(cfg, app, wall, client)
        d.cli_ = Cli(tmp_path, db_url, tmp_path / "data", app.factory)
        d.rules = rules
        yield d


def test_a_viewer_sees_the_rules_but_may_not_replay(desk: RulesDesk) -> None:
    code = desk.claim_with_receipt()
    _, _, version = desk.claim(code)
    assert version == desk.app.rules.version
    assert desk.login("vera") == 303
    page = desk.client.get("/rules")
    assert page.status_code == 200
    assert 'id="nav-rules"' in page.text
    assert f'href="/rules/versions/{version}" id="rules-in-force-version"' in page.text
    assert f'id="rules-version-{version}"' in page.text  # stored by the claim's event
    assert 'id="replay-form"' not in page.text
    before = desk.counts()
    resp = desk.post("/rules/replay", {"rules": str(desk.rules)})
    assert resp.status_code == 403
    assert "may not do this" in resp.text
    assert desk.counts() == before


def test_a_replay_needs_the_forms_token(desk: RulesDesk) -> None:
    assert desk.login("ada") == 303
    assert 'id="replay-form"' in desk.client.get("/rules").text
    for bad in ({}, {"csrf_token": "wrong"}):
        resp = desk.client.post("/rules/replay", data={"rules": str(desk.rules)} | bad)
        assert resp.status_code == 403 and "The form expired" in resp.text
        assert 'id="replay-report"' not in resp.text


def test_a_replay_lists_the_changed_decision_and_writes_nothing(
    desk: RulesDesk, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    code = desk.claim_with_receipt()
    assert desk.claim(code)[:2] == ("incomplete", ["missing_document:serial_photo"])
    assert desk.login("ada") == 303

    # the rules in force (the form's default directory): nothing would change
    page = desk.client.get("/rules")
    assert f'value="{desk.rules}"' in page.text
    same = desk.post("/rules/replay", {"rules": ""})
    assert same.status_code == 200, same.text
    text = same.text
    assert 'id="replay-claims">1<' in text and 'id="replay-changed">0<' in text
    assert 'id="replay-changes"' not in text

    candidate = receipt_only(_rules_copy(tmp_path, "candidate"))
    before = desk.counts()
    # the command line above set the root's handlers and level: the desk's logger is heard here
    caplog.set_level(logging.INFO, logger="mailbot.web")
    web_log = logging.getLogger("mailbot.web")
    web_log.addHandler(caplog.handler)
    try:
        resp = desk.post("/rules/replay", {"rules": str(candidate), "campaign": "cashback-2022"})
    finally:
        web_log.removeHandler(caplog.handler)
    assert resp.status_code == 200
    text = resp.text
    assert 'id="replay-claims">1<' in text and 'id="replay-changed">1<' in text
    row = text.split(f'id="replay-claim-{code}"', 1)[1].split("</tr>", 1)[0]
    assert f'<a href="/claims/{code}">{code}</a>' in row
    assert "incomplete → <strong>approved</strong>" in row
    assert "missing document:serial photo" in row  # the reasons in words
    assert "can apply" in row and "<td>approved</td>" in row  # the reply it would send
    assert "@" not in row
    assert desk.counts() == before  # nothing written, not even the candidate's version
    assert desk.claim(code)[:2] == ("incomplete", ["missing_document:serial_photo"])
    [logged] = [r for r in caplog.records if getattr(r, "event", None) == "web.rules_replay"]
    assert vars(logged)["user"] == "ada" and vars(logged)["changed"] == 1
    assert vars(logged)["rules_version"] != desk.app.rules.version
    assert vars(logged)["in_force"] == desk.app.rules.version

    # another campaign: nothing to replay
    other = desk.post("/rules/replay", {"rules": str(candidate), "campaign": "promo-20pct"})
    assert 'id="replay-claims">0<' in other.text
    assert desk.counts() == before


def test_rules_that_do_not_load_are_shown_not_a_crash(desk: RulesDesk, tmp_path: Path) -> None:
    assert desk.login("ada") == 303
    missing = desk.post("/rules/replay", {"rules": str(tmp_path / "nowhere")})
    assert missing.status_code == 400
    assert "rules directory not found" in missing.text
    assert 'id="replay-form"' in missing.text

    not_rules = desk.post("/rules/replay", {"rules": str(tmp_path / "data")})
    assert not_rules.status_code == 400
    assert "not a rules directory" in not_rules.text

    broken = _rules_copy(tmp_path, "broken")
    text = (broken / CAMPAIGN).read_text()
    (broken / CAMPAIGN).write_text(text.replace("reply_days: 14", "reply_days: soon"))
    line = text[: text.index("reply_days: 14")].count("\n") + 1
    resp = desk.post("/rules/replay", {"rules": str(broken)})
    assert resp.status_code == 400
    error = resp.text.split('id="replay-error">', 1)[1].split("</p>", 1)[0]
    assert f"{broken / CAMPAIGN}:{line}:" in error and "reply_days" in error
    assert f'value="{broken}"' in resp.text  # kept in the form

    unknown = desk.post("/rules/replay", {"rules": str(desk.rules), "campaign": "nope"})
    assert unknown.status_code == 400
    assert "no campaign &#39;nope&#39;" in unknown.text
    since = desk.post("/rules/replay", {"rules": str(desk.rules), "since": "last week"})
    assert since.status_code == 400
    assert "since: a date" in since.text

    # the configured rules broken: the page says so, the previous ones stay in force
    in_force = desk.app.rules.version
    (desk.rules / CAMPAIGN).write_text(text.replace("reply_days: 14", "reply_days: soon"))
    desk.app.rules_cache.reload()
    page = desk.client.get("/rules")
    assert page.status_code == 200
    problem = page.text.split('id="rules-problem">', 1)[1].split("</p>", 1)[0]
    assert f"{desk.rules / CAMPAIGN}:{line}:" in problem and "previous ones stay" in problem
    assert f"<code>{in_force}</code>" in page.text


def test_a_stored_version_shows_its_files(desk: RulesDesk) -> None:
    code = desk.claim_with_receipt()
    _, _, version = desk.claim(code)
    original = (desk.rules / CAMPAIGN).read_text()
    (desk.rules / CAMPAIGN).write_text("# edited later\n" + original)
    assert desk.login("vera") == 303
    page = desk.client.get(f"/rules/versions/{version}")
    assert page.status_code == 200
    assert f'data-name="{CAMPAIGN}"' in page.text
    shown = page.text.split(f'data-name="{CAMPAIGN}"', 1)[1].split("</pre>", 1)[0]
    assert "reply_days: 14" in shown and "edited later" not in shown
    assert desk.client.get("/rules/versions/0123456789ab").status_code == 404


def _newest(desk: RulesDesk) -> tuple[m.Event, list[m.Outbox]]:
    with db.transaction(desk.app.factory) as s:
        event = s.scalars(select(m.Event).order_by(m.Event.id.desc())).first()
        assert event is not None
        replies = list(s.scalars(select(m.Outbox).where(m.Outbox.event_id == event.id)))
        s.expunge_all()
        return event, replies


def test_reevaluate_previews_then_applies_the_current_rules_once(desk: RulesDesk) -> None:
    code = desk.claim_with_receipt()
    bare = desk.register("ola@example.no")  # no documents: nothing to decide on
    # an admin edited the configured rules: the serial photo is no longer asked for
    receipt_only(desk.rules)
    desk.app.rules_cache.reload()
    new_version = desk.app.rules.version

    assert desk.login("vera") == 303
    token = desk.csrf(f"/claims/{code}")
    resp = desk.client.post(
        f"/claims/{code}/preview/reevaluate", data={"csrf_token": token, "why": "x"}
    )
    assert resp.status_code == 403
    desk.client.post("/logout", data={"csrf_token": token})

    assert desk.login("anne") == 303
    assert 'id="action-reevaluate-form"' not in desk.client.get(f"/claims/{bare}").text
    page = desk.client.get(f"/claims/{code}")
    assert 'id="action-reevaluate-form"' in page.text
    before = desk.counts()
    why = "serial photo no longer required"
    preview = desk.client.post(
        f"/claims/{code}/preview/reevaluate", data={"csrf_token": csrf_of(page.text), "why": why}
    )
    assert preview.status_code == 200
    outcome = preview.text.split('id="preview-outcome">', 1)[1].split("</p>", 1)[0]
    assert "incomplete → <strong>approved</strong>" in outcome and "claim.approved" in outcome
    assert "template approved" in preview.text and 'id="preview-subject"' in preview.text
    assert desk.counts() == before  # the preview queued and stored nothing
    assert desk.claim(code)[0] == "incomplete"

    confirm = desk.client.post(
        f"/claims/{code}/do/reevaluate",
        data={"csrf_token": csrf_of(preview.text), "why": why},
        follow_redirects=False,
    )
    assert confirm.status_code == 303 and confirm.headers["location"] == f"/claims/{code}"
    after = desk.counts()
    assert after["outbox"] == before["outbox"] + 1
    assert after["events"] == before["events"] + 1
    # stored by the confirm although the preview had the same version rolled back
    assert after["rules_versions"] == before["rules_versions"] + 1
    state, _, version = desk.claim(code)
    assert state == "approved" and version == new_version
    event, replies = _newest(desk)
    assert event.kind == "claim.approved" and event.evidence["reevaluated"] is True
    assert (event.evidence["actor"], event.evidence["role"]) == ("anne", "operator")
    assert event.evidence["why"] == why
    assert [r.template for r in replies] == ["approved"]
    page = desk.client.get(f"/claims/{code}")
    assert "incomplete → approved; reply queued: approved" in page.text
    assert 'id="action-reevaluate-form"' not in page.text  # decided for good now

    # confirmed again (a second tab): refused, nothing queued twice
    again = desk.client.post(
        f"/claims/{code}/do/reevaluate",
        data={"csrf_token": csrf_of(page.text), "why": why},
    )
    assert "Not done" in again.text and "cannot reevaluate" in again.text
    assert desk.counts() == after
