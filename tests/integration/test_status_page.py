"""The claimant status page over a real database (SQLite and PostgreSQL, `db_url`):
a matching code + email shows the state in the claim's language and nothing else;
a wrong address and an unknown code get the same bytes; look-ups are rate limited;
the form's CSRF check refuses a missing or wrong token; and the confirmation mail
links the page only when `[web] base_url` is set."""

from __future__ import annotations

import dataclasses
import logging
import re
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import select
from starlette.applications import Starlette
from starlette.testclient import TestClient

from mailbot.cli.app import App
from mailbot.config import DatabaseSettings, PathSettings, Settings, WebSettings
from mailbot.core.codes import is_valid_code
from mailbot.core.languages import LANGUAGES
from mailbot.services import operator
from mailbot.services.claims import Registration, register_claim
from mailbot.store import db
from mailbot.store import models as m
from mailbot.web import status

pytestmark = pytest.mark.integration

T0 = datetime(2023, 1, 20, 10, tzinfo=UTC)
KARI = "kari.nordmann@example.no"
TOKEN = re.compile(r'name="csrf_token" value="[^"]*"')


def _app(tmp_path: Path, db_url: str, **web: object) -> App:
    settings = dataclasses.replace(
        Settings(),
        database=DatabaseSettings(url=db_url),
        paths=PathSettings(data_dir=str(tmp_path)),
        web=WebSettings(**web),  # type: ignore[arg-type]
    )
    app = App(settings, clock=lambda: T0)
    app.ensure_schema()
    return app


def _register(app: App, email: str = KARI, language: str = "nb", price: str | None = None) -> str:
    reg = Registration(
        campaign="cashback-2022",
        email=email,
        name="Kari Nordmann",
        model="WH-1000XM5",
        serial="5123456",
        purchase_date="2022-12-12",
        retailer="Elkjøp Lørenskog",
        country="NO",
        language=language,
        price=price,
    )
    with db.transaction(app.factory) as session:
        row = register_claim(session, reg, rules=app.rules, settings=app.settings, now=T0)
        return row.code


def _client(app: App, **kw: object) -> TestClient:
    web = Starlette(routes=status.routes)
    web.state.mailbot = app
    return TestClient(web, **kw)  # type: ignore[arg-type]


def _kari(tmp_path: Path, db_url: str, **web: object) -> tuple[App, str, TestClient]:
    """An app with Kari's claim (Norwegian) registered, its code, and a browser."""
    app = _app(tmp_path, db_url, **web)
    return app, _register(app), _client(app)


def _token(html: str) -> str:
    """The CSRF token a status form carries."""
    token = TOKEN.search(html)
    assert token is not None
    return token.group(0).split('value="')[1].rstrip('"')


def _ask(client: TestClient, code: str, email: str, **headers: str) -> tuple[int, str]:
    form = client.get("/status", headers=headers)
    assert form.status_code == 200
    value = _token(form.text)
    lang = re.search(r'name="lang" value="(\w+)"', form.text)
    assert lang is not None
    answer = client.post(
        "/status",
        data={"csrf_token": value, "lang": lang.group(1), "code": code, "email": email},
        headers=headers,
    )
    return answer.status_code, answer.text


def _unknown_code(known: str) -> str:
    n = int(known)
    while True:
        n = (n + 1) % 100_000_000
        candidate = f"{n:08d}"
        if is_valid_code(candidate):
            return candidate


def test_a_match_shows_the_state_in_the_claims_language_and_nothing_personal(
    tmp_path: Path, db_url: str
) -> None:
    _, code, client = _kari(tmp_path, db_url)
    # English browser, Norwegian claim: the answer is in Norwegian; the address is
    # compared case-insensitively and without the blanks people paste
    spaced = f"{code[:4]} {code[4:]}"
    got, html = _ask(client, spaced, "  Kari.Nordmann@EXAMPLE.no ", **{"Accept-Language": "en"})
    assert got == 200
    assert '<html lang="nb">' in html
    assert "registrert, vi venter på dokumentene dine" in html
    assert "kjøpsbevis" in html and "serienummer" in html  # what is missing, in words
    assert "innen 28 dager" in html  # the campaign's payment_days
    assert code in html  # typed by the claimant
    shown = TOKEN.sub("", html)  # a hex token may hold any digits
    for personal in ("Kari", "Nordmann", "example.no", "Elkjøp", "5123456", "WH-1000XM5"):
        assert personal not in shown, personal
    # the code and the address never travel in a URL
    assert "?code" not in html and "email=" not in html


def test_an_approved_claim_in_english_says_how_much_and_by_when(
    tmp_path: Path, db_url: str
) -> None:
    app = _app(tmp_path, db_url)
    code = _register(app, email="ola@example.com", language="en", price="2500")
    ctx = operator.context(
        rules=app.rules,
        settings=app.settings,
        now=T0,
        actor=operator.Actor("agent1", "operator"),
        why="receipt checked by hand",
    )
    with db.transaction(app.factory) as session:
        operator.approve(session, ctx, code)
    got, html = _ask(_client(app), code, "OLA@example.com", **{"Accept-Language": "nb-NO,nb;q=0.9"})
    assert got == 200
    assert '<html lang="en">' in html
    assert "Status:</strong> approved" in html
    assert re.search(r"We will pay NOK [\d,.]+ to the bank account you gave us by \w+", html)
    assert "(28 days after the claim was approved)" in html
    shown = TOKEN.sub("", html)  # a hex token may hold any digits
    assert "ola@" not in shown and "2500" not in shown  # the price is not the payout


def test_a_wrong_address_and_an_unknown_code_get_the_same_bytes(
    tmp_path: Path, db_url: str
) -> None:
    _, code, client = _kari(tmp_path, db_url)
    wrong_email = _ask(client, code, "someone.else@example.no", **{"Accept-Language": "sv"})
    unknown_code = _ask(client, _unknown_code(code), KARI, **{"Accept-Language": "sv"})
    malformed = _ask(client, "12ab", KARI, **{"Accept-Language": "sv"})
    assert wrong_email[0] == unknown_code[0] == malformed[0] == 200
    first, second, third = (TOKEN.sub("", r[1]) for r in (wrong_email, unknown_code, malformed))
    assert first == second == third
    assert "Vi hittade ingen ansökan med den här koden och e-postadressen" in first
    assert code not in first and "kari" not in first.lower()


def test_lookups_are_rate_limited_per_client(tmp_path: Path, db_url: str) -> None:
    _, code, client = _kari(tmp_path, db_url, trust_proxy=True)
    proxy = {"X-Forwarded-For": "198.51.100.7, 203.0.113.9"}
    for _ in range(status.LOOKUPS_PER_WINDOW):
        assert _ask(client, _unknown_code(code), KARI, **proxy)[0] == 200
    got, html = _ask(client, code, KARI, **proxy)
    assert got == 429
    assert "Too many look-ups" in html
    assert code not in html
    # the limit is per client: the proxy's last hop names another one
    assert _ask(client, code, KARI, **{"X-Forwarded-For": "198.51.100.7, 203.0.113.10"})[0] == 200


def test_the_proxy_header_counts_only_when_trusted(tmp_path: Path, db_url: str) -> None:
    # trust_proxy = false: every request is the TCP peer
    _, code, client = _kari(tmp_path, db_url)
    for i in range(status.LOOKUPS_PER_WINDOW):
        hops = {"X-Forwarded-For": f"198.51.100.{i}"}
        assert _ask(client, _unknown_code(code), KARI, **hops)[0] == 200
    assert _ask(client, code, KARI, **{"X-Forwarded-For": "192.0.2.1"})[0] == 429


def test_the_form_refuses_a_missing_or_wrong_csrf_token(tmp_path: Path, db_url: str) -> None:
    app, code, client = _kari(tmp_path, db_url)
    page = client.get("/status?lang=da")
    assert page.status_code == 200 and '<html lang="da">' in page.text
    assert status.CSRF_COOKIE in page.cookies
    assert "no-store" in page.headers["cache-control"]
    good = _token(page.text)
    form = {"code": code, "email": KARI, "lang": "da"}

    missing = client.post("/status", data=form)
    assert missing.status_code == 403 and "Formularen er udløbet" in missing.text
    issued, _, sig = good.partition(".")
    forged = f"{issued}.{'0' * len(sig)}"
    assert client.post("/status", data={**form, "csrf_token": forged}).status_code == 403
    # a token from another browser's form: right signature, other nonce
    other = _client(app).get("/status")
    stolen = _token(other.text)
    assert client.post("/status", data={**form, "csrf_token": stolen}).status_code == 403
    # without the cookie the token alone is not enough
    bare = _client(app)
    assert bare.post("/status", data={**form, "csrf_token": good}).status_code == 403
    ok = client.post("/status", data={**form, "csrf_token": good})
    assert ok.status_code == 200 and "Status:" in ok.text


def _confirmation(app: App, code: str) -> m.Outbox:
    with db.transaction(app.factory) as session:
        row = session.scalars(
            select(m.Outbox)
            .join(m.Claim, m.Claim.id == m.Outbox.claim_id)
            .where(m.Claim.code == code)
        ).one()
        session.expunge(row)
        return row


def test_the_confirmation_mail_links_the_page_only_with_a_base_url(
    tmp_path: Path, db_url: str
) -> None:
    app = _app(tmp_path, db_url, base_url="https://claims.example.com/")
    mail = _confirmation(app, _register(app))
    assert mail.template == "confirmation"
    assert "Se status for kravet ditt: https://claims.example.com/status?lang=nb" in mail.body_text
    assert mail.body_html is not None
    assert 'href="https://claims.example.com/status?lang=nb"' in mail.body_html
    # nothing personal in the link: the page asks for the code and the address
    link = re.search(r"https://claims\.example\.com/\S*", mail.body_text)
    assert link is not None and KARI not in link.group(0)

    plain = _app(tmp_path, db_url)  # the same database, no base_url
    other = _confirmation(plain, _register(plain, email="per@example.no"))
    assert "/status" not in other.body_text and "Se status" not in other.body_text
    assert other.body_html is not None and "/status" not in other.body_html


def test_the_desk_serves_the_page_without_a_login(tmp_path: Path, db_url: str) -> None:
    from mailbot.web.app import create_app

    app = _app(tmp_path, db_url, secret_key="k" * 32)
    code = _register(app)
    client = TestClient(create_app(app))
    got, html = _ask(client, code, KARI)
    assert got == 200 and "registrert, vi venter på dokumentene dine" in html
    assert "mailbot_desk" not in client.cookies  # no desk session for a claimant


REGISTERED = {
    "nb": "registrert,",
    "sv": "registrerad,",
    "da": "registreret,",
    "fi": "rekisteröity,",
    "en": "registered,",
}


@pytest.mark.parametrize("lang", LANGUAGES)
def test_every_page_speaks_every_language(
    tmp_path: Path, db_url: str, lang: str, caplog: pytest.LogCaptureFixture
) -> None:
    app = _app(tmp_path, db_url)
    email = f"claimant-{lang}@example.org"
    code = _register(app, email=email, language=lang)
    client = _client(app)
    page = client.get(f"/status?lang={lang}")
    assert f'<html lang="{lang}">' in page.text
    caplog.set_level(logging.INFO)
    got, html = _ask(client, code, email, **{"Accept-Language": "en"})
    assert got == 200 and f'<html lang="{lang}">' in html
    state = re.search(r'id="status-state"><strong>[^<]+</strong> ([^<]+)<', html)
    assert state is not None and state.group(1).startswith(REGISTERED[lang])
    assert "{" not in TOKEN.sub("", html)  # every placeholder filled
    unknown = _unknown_code(code)
    got, html = _ask(client, unknown, email, **{"Accept-Language": lang})
    assert got == 200 and f'<html lang="{lang}">' in html and 'role="alert"' in html
    refused = client.post("/status", data={"code": code, "email": email, "lang": lang})
    assert refused.status_code == 403 and f'<html lang="{lang}">' in refused.text
    # the log says what happened, never who asked about what
    logged = " ".join(f"{r.getMessage()} {vars(r)}" for r in caplog.records)
    assert "status lookup" in logged
    for typed in (code, unknown, email, "claimant-", "example.org"):
        assert typed not in logged, typed
