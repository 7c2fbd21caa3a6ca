"""The web desk and the status page in a real browser (headless Chromium), over the
real stack: Dovecot holds the claims mailbox, aiosmtpd takes the replies, SQLite
keeps the state, `mailbot web` serves the desk in a subprocess and `mailbot once`
reads mail and sends the outbox, as cron would.

A receipt for another model than the registered one parks the claim in review; an agent
logs in through the form (a wrong password is refused first), finds the claim in
the queue, approves it with a reason, sees the reply in the preview, confirms, and
the approval mail reaches the sink exactly once; the claimant's status page then
shows the new state. An admin replays candidate rules on the rules page and sees
both claims' decisions change, with nothing written or sent. With
MAILBOT_SCREENSHOTS=<dir> the queue, the claim page, the status page and the replay
are saved there as PNGs (the README's come from these tests).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from mailbot import resources
from mailbot.devtools import scenario as sc
from mailbot.devtools.dovecot import LocalDovecot, free_port
from mailbot.devtools.scenario import KARI, Operator
from mailbot.devtools.smtpsink import SmtpSink
from tests.integration._daemon_helpers import http_get, upgraded_operator

if TYPE_CHECKING:
    from selenium.webdriver.remote.webdriver import WebDriver
    from selenium.webdriver.remote.webelement import WebElement

pytestmark = [pytest.mark.integration, pytest.mark.slow]

AGENT, ADMIN, PASSWORD = "anne", "ada", "correct horse battery staple"
# The receipt (a text PDF: no OCR involved) shows another model than the registered one.
REVIEW_CLAIM = replace(sc.KARI_CLAIM, model="WF-1000XM4")
OTHER_CLAIM = replace(
    sc.KARI_CLAIM, email="ola.nordmann@example.no", name="Ola Nordmann", model="HT-A7000"
)
QUESTION_FROM = "per.olsen@example.no"


class Desk:
    """`mailbot web` in a subprocess on a free loopback port, with the operator's config."""

    def __init__(self, op: Operator) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = (op.tmp / "web.log").open("wb")
        argv = [
            "--config",
            str(op.config),
            "--now",
            op.now,
            "web",
            "--listen",
            f"127.0.0.1:{self.port}",
        ]
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "mailbot", *argv],
            cwd=op.tmp,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )

    def wait_ready(self, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"mailbot web exited {self.proc.returncode}")
            if http_get(f"{self.url}/login", timeout=2)[0] == 200:
                return
            time.sleep(0.2)
        raise RuntimeError("mailbot web did not answer in time")

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()


@pytest.fixture
def op(tmp_path: Path, dovecot: LocalDovecot, smtp_sink: SmtpSink, sqlite_url: str) -> Operator:
    return upgraded_operator(tmp_path, dovecot, smtp_sink, sqlite_url)


@pytest.fixture
def desk(op: Operator) -> Iterator[Desk]:
    server = Desk(op)
    try:
        server.wait_ready()
        yield server
    finally:
        server.stop()


def add_user(op: Operator, name: str, role: str, password: str) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "mailbot", "--config", str(op.config), "--now", op.now,
         "users", "add", name, "--role", role, "--password-stdin"],
        input=password + "\n", capture_output=True, text=True, timeout=60, cwd=op.tmp,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr


def claims_in_review(op: Operator) -> tuple[str, str]:
    """Two claims registered and confirmed by mail, then receipts for another model:
    both in review. A customer's question waits in the queue beside them."""
    code, other = op.created(REVIEW_CLAIM), op.created(OTHER_CLAIM)
    op.run("once")
    confirmations = {c.rcpt_tos[0]: c for c in op.replies_after(0, 2)}
    op.deliver(
        sc.complete_answer(confirmations[KARI], KARI),
        sc.complete_answer(confirmations[OTHER_CLAIM.email], OTHER_CLAIM.email),
        sc.write(QUESTION_FROM, "Spørsmål om kampanjen", "Hei! Gjelder kampanjen også WH-1000XM4?"),
    )
    op.run("once")
    for c in (code, other):
        state = op.json("claims", "show", c)
        assert isinstance(state, dict)
        assert state["state"] == "review", state["reasons"]
    return code, other


def staff_and_claims_in_review(op: Operator, name: str, role: str) -> tuple[str, str, int]:
    """A desk user `name` of `role` and the two claims of `claims_in_review`: their codes,
    and how many mails the sink had by then."""
    add_user(op, name, role, PASSWORD)
    code, other = claims_in_review(op)
    return code, other, len(op.sink.messages)


def shot(driver: WebDriver, name: str) -> None:
    """Saves the window as <MAILBOT_SCREENSHOTS>/<name>.png when that is set."""
    target = os.environ.get("MAILBOT_SCREENSHOTS")
    if target:
        Path(target).mkdir(parents=True, exist_ok=True)
        assert driver.save_screenshot(str(Path(target) / f"{name}.png"))


def fill(driver: WebDriver, element_id: str, text: str) -> None:
    from selenium.webdriver.common.by import By

    field = driver.find_element(By.ID, element_id)
    field.clear()
    field.send_keys(text)


def element(driver: WebDriver, element_id: str, timeout: float = 20) -> WebElement:
    """The element once the page that has it loaded (a click does not wait for it)."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    found: WebElement = WebDriverWait(driver, timeout).until(
        ec.presence_of_element_located((By.ID, element_id))
    )
    return found


def broken_images(driver: WebDriver, timeout: float = 20) -> list[str]:
    """The images of the page that did not load, once all have been tried (lazy ones
    too: the page is scrolled through and back)."""
    from selenium.webdriver.support.ui import WebDriverWait

    driver.execute_script("window.scrollTo(0, document.body.scrollHeight)")
    WebDriverWait(driver, timeout).until(
        lambda d: d.execute_script("return [...document.images].every(i => i.complete)")
    )
    driver.execute_script("window.scrollTo(0, 0)")
    broken: list[str] = driver.execute_script(
        "return [...document.images].filter(i => !i.naturalWidth).map(i => i.src)"
    )
    return broken


def log_in(driver: WebDriver, url: str, name: str, password: str) -> None:
    from selenium.webdriver.common.by import By

    driver.get(f"{url}/login")
    fill(driver, "login-username", name)
    fill(driver, "login-password", password)
    driver.find_element(By.ID, "login-submit").click()


def test_agent_approves_a_review_claim_and_the_claimant_sees_it(
    op: Operator, desk: Desk, browser: WebDriver
) -> None:
    from selenium.webdriver.common.by import By

    code, other, sent_before = staff_and_claims_in_review(op, AGENT, "agent")

    # a wrong password is refused, and nothing of the desk is shown
    log_in(browser, desk.url, AGENT, "not the password")
    assert "Wrong user name or password" in element(browser, "login-error").text
    assert not browser.find_elements(By.ID, "nav-queue")
    browser.get(f"{desk.url}/")
    assert browser.find_elements(By.ID, "login-form")  # still sent to the login page

    log_in(browser, desk.url, AGENT, PASSWORD)
    row = element(browser, f"queue-claim-{code}")
    assert "model mismatch" in row.text
    assert element(browser, f"queue-claim-{other}")
    shot(browser, "queue")

    row.find_element(By.CLASS_NAME, "queue-link").click()
    assert element(browser, "claim-code").text == code
    assert element(browser, "claim-state").text == "review"
    assert broken_images(browser) == []
    shot(browser, "claim")

    fill(browser, "why-approve", "receipt checked with the shop: model typed wrong")
    element(browser, "action-approve-preview").click()
    assert "approved" in element(browser, "preview-outcome").text
    assert element(browser, "preview-subject").text
    assert len(op.sink.messages) == sent_before  # the preview sent and queued nothing
    element(browser, "confirm-action").click()
    assert "review → approved" in element(browser, "flash").text
    assert element(browser, "claim-state").text == "approved"
    element(browser, "nav-queue").click()
    element(browser, "queue-count")
    assert not browser.find_elements(By.ID, f"queue-claim-{code}")
    assert browser.find_elements(By.ID, f"queue-claim-{other}")

    op.run("once")
    op.run("once")  # a second run sends nothing again
    op.replies_after(sent_before, 1)
    time.sleep(0.5)  # anything sent twice would have arrived by now
    replies = op.sink.messages[sent_before:]
    assert [r.rcpt_tos for r in replies] == [(KARI,)], [r.message["Subject"] for r in replies]
    assert "godkjent" in str(replies[0].message["Subject"])
    assert code in str(replies[0].message["Subject"]) + sc.text_of(replies[0])

    browser.get(f"{desk.url}/status")
    fill(browser, "status-code", code)
    fill(browser, "status-email", KARI)
    element(browser, "status-submit").click()
    assert element(browser, "status-state").text.endswith("godkjent")
    shot(browser, "status")


def test_admin_replays_candidate_rules_and_nothing_changes(
    op: Operator, desk: Desk, browser: WebDriver
) -> None:
    code, other, sent_before = staff_and_claims_in_review(op, ADMIN, "admin")
    # the candidate: a campaign that ended before the receipts' purchase date (12.12.2022)
    candidate = op.tmp / "rules-candidate"
    shutil.copytree(resources.rules_dir(), candidate)
    campaign = candidate / "campaigns" / "cashback-2022.yaml"
    text = campaign.read_text()
    assert "  end: 2023-01-15\n" in text
    campaign.write_text(text.replace("  end: 2023-01-15\n", "  end: 2022-12-10\n"))

    log_in(browser, desk.url, ADMIN, PASSWORD)
    element(browser, "nav-rules").click()
    in_force = element(browser, "rules-in-force-version").text
    fill(browser, "replay-rules", str(candidate))
    element(browser, "replay-submit").click()
    assert element(browser, "replay-changed").text == "2"
    assert element(browser, "replay-version").text != in_force
    for c in (code, other):
        row = element(browser, f"replay-claim-{c}")
        assert "review → rejected" in row.text and "purchase outside window" in row.text
    shot(browser, "rules")

    for c in (code, other):  # a replay decides nothing
        state = op.json("claims", "show", c)
        assert isinstance(state, dict) and state["state"] == "review"
    op.run("once")
    assert len(op.sink.messages) == sent_before
