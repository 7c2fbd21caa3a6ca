"""The web desk against a real database (SQLite and PostgreSQL): login, roles, CSRF,
session expiry, the login rate limit, a review claim worked to approval through the
preview, search without addresses in URLs, the raw mail download, the users CLI."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import select
from starlette.testclient import TestClient

from mailbot.cli.app import App
from mailbot.config import load_settings
from mailbot.store import db
from mailbot.store import models as m
from mailbot.store.rawstore import RawStore
from mailbot.web import accounts
from mailbot.web.app import create_app
from tests.integration._helpers import run_cli, store_config

NOW = "2023-01-20T10:00:00+00:00"
T0 = datetime(2023, 1, 20, 10, tzinfo=UTC)
PASSWORD = "correct horse battery"


class Wall:
    def __init__(self) -> None:
        self.t = 1_000_000.0

    def __call__(self) -> float:
        return self.t


@dataclass
class Desk:
    config: Path
    app: App
    wall: Wall
    client: TestClient

    def cli(self, *argv: str, stdin: str = "") -> tuple[int, str, str]:
        return run_cli(self.config, "--now", NOW, *argv, stdin=stdin)

    def register(self, email: str = "kari@example.no") -> str:
        code, out, err = self.cli(
            "claims", "register", "--campaign", "cashback-2022", "--model", "WH-1000XM5",
            "--email", email, "--name", "Kari", "--json",
        )  # fmt: skip
        assert code == 0, err
        import json

        return str(json.loads(out)["code"])

    def login(self, name: str, password: str = PASSWORD) -> int:
        page = self.client.get("/login")
        token = csrf_of(page.text)
        resp = self.client.post(
            "/login",
            data={"username": name, "password": password, "csrf_token": token, "next": "/"},
            follow_redirects=False,
        )
        return resp.status_code

    def csrf(self, path: str = "/") -> str:
        return csrf_of(self.client.get(path).text)


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert found, html[:500]
    return found.group(1)


@contextmanager
def desk_app(cfg: Path) -> Iterator[tuple[App, Wall, TestClient]]:
    """The desk of `cfg` at T0 with a viewer (vera), an agent (anne) and an admin (ada),
    its wall clock, and a client of it."""
    app = App(load_settings(cfg, environ={}), clock=lambda: T0)
    app.ensure_schema()
    for name, role in (("vera", "viewer"), ("anne", "agent"), ("ada", "admin")):
        accounts.add_user(app.factory, name, PASSWORD, role, T0)
    wall = Wall()
    with TestClient(create_app(app, wall_clock=wall), base_url="http://127.0.0.1") as client:
        yield app, wall, client
    app.engine.dispose()


@pytest.fixture
def desk(tmp_path: Path, db_url: str) -> Iterator[Desk]:
    cfg = store_config(
        tmp_path,
        db_url,
        '[smtp]\nhost = "127.0.0.1"\nport = 1\ntls = "none"\n'
        "[web]\nsession_minutes = 60\nlogin_attempts = 3\nlogin_window_minutes = 10\n",
    )
    with desk_app(cfg) as (app, wall, client):
        yield Desk(cfg, app, wall, client)


ROUTES_GET = ["/", "/search", "/claims/12345678", "/rmas/RMA-1", "/messages/1", "/messages/1/raw",
              "/documents/1", "/documents/1/download", "/outbox/1"]  # fmt: skip
ROUTES_POST = ["/logout", "/search", "/claims/12345678/preview/approve",
               "/claims/12345678/do/approve", "/rmas/RMA-1/preview/receive",
               "/rmas/RMA-1/do/receive", "/messages/1/dismiss",
               "/messages/1/attach", "/messages/1/reprocess", "/outbox/1/retry"]  # fmt: skip


def test_every_route_needs_a_login(desk: Desk) -> None:
    for path in ROUTES_GET:
        resp = desk.client.get(path, follow_redirects=False)
        assert resp.status_code == 303 and resp.headers["location"].startswith("/login"), path
    for path in ROUTES_POST:
        resp = desk.client.post(path, data={"csrf_token": "x"}, follow_redirects=False)
        assert resp.status_code == 303 and resp.headers["location"].startswith("/login"), path
    login = desk.client.get("/login")
    assert login.status_code == 200 and 'id="login-form"' in login.text
    cookie = login.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=lax" in cookie
    assert login.headers["x-frame-options"] == "DENY"


def test_wrong_password_unknown_user_disabled_user_refused(desk: Desk) -> None:
    assert desk.login("anne", "wrong password!") == 401
    assert desk.login("nobody") == 401
    assert desk.login("Robert'); DROP TABLE web_users; --") == 401
    accounts.disable(desk.app.factory, "vera", T0)
    assert desk.login("vera") == 401
    assert desk.login("anne") == 303
    assert desk.client.get("/", follow_redirects=False).status_code == 200


def test_login_rate_limit_per_user_and_client(desk: Desk) -> None:
    for _ in range(3):
        assert desk.login("anne", "wrong password!") == 401
    assert desk.login("anne") == 429  # even the right password, until the window passed
    assert desk.login("vera") == 303  # another user from the same client still may
    desk.wall.t += 11 * 60
    assert desk.login("anne") == 303
    # per client: 4x the allowance, whatever the names
    for i in range(12):
        assert desk.login(f"guess{i}", "wrong password!") == 401
    assert desk.login("ada") == 429


def test_session_expires(desk: Desk) -> None:
    assert desk.login("anne") == 303
    assert desk.client.get("/", follow_redirects=False).status_code == 200
    desk.wall.t += 61 * 60
    resp = desk.client.get("/", follow_redirects=False)
    assert resp.status_code == 303 and resp.headers["location"].startswith("/login")


def test_new_password_ends_sessions(desk: Desk) -> None:
    assert desk.login("anne") == 303
    accounts.set_password(desk.app.factory, "anne", "another long password", T0)
    assert desk.client.get("/", follow_redirects=False).status_code == 303


def test_csrf_missing_or_wrong_is_refused(desk: Desk) -> None:
    code = desk.register()
    assert desk.login("anne") == 303
    form = {"why": "checked", "reason": "not_verified"}
    for bad in ({}, {"csrf_token": "wrong"}):
        resp = desk.client.post(f"/claims/{code}/do/reject", data=form | bad)
        assert resp.status_code == 403
    with db.transaction(desk.app.factory) as s:
        claim = s.scalars(select(m.Claim).where(m.Claim.code == code)).one()
        assert claim.state == "registered"
    # login itself checks the token too
    desk.client.post("/logout", data={"csrf_token": desk.csrf()})
    resp = desk.client.post("/login", data={"username": "anne", "password": PASSWORD})
    assert resp.status_code == 403


def test_viewer_reads_but_cannot_act(desk: Desk) -> None:
    code = desk.register()
    assert desk.login("vera") == 303
    page = desk.client.get(f"/claims/{code}")
    assert page.status_code == 200 and "action-approve-preview" not in page.text
    token = csrf_of(page.text)
    for action in ("preview", "do"):
        resp = desk.client.post(
            f"/claims/{code}/{action}/approve", data={"csrf_token": token, "why": "x"}
        )
        assert resp.status_code == 403
    assert desk.client.get("/messages/1/raw").status_code == 403


def _outbox(desk: Desk, code: str) -> list[str]:
    with db.transaction(desk.app.factory) as s:
        claim = s.scalars(select(m.Claim).where(m.Claim.code == code)).one()
        return list(
            s.scalars(
                select(m.Outbox.template).where(m.Outbox.claim_id == claim.id).order_by(m.Outbox.id)
            )
        )


def test_review_claim_worked_to_approval_with_preview(desk: Desk) -> None:
    code = desk.register()
    # into review the way a person puts it there: rejected, then reopened
    assert (
        desk.cli("claims", "decide", code, "reject", "--reason", "not_verified", "--why", "x")[0]
        == 0
    )
    assert desk.cli("claims", "reopen", code, "--why", "proof by phone")[0] == 0
    assert desk.login("anne") == 303
    queue = desk.client.get("/")
    assert f'id="queue-claim-{code}"' in queue.text
    assert f'id="queue-claim-{code}"' in desk.client.get("/?kind=review").text
    assert f'id="queue-claim-{code}"' not in desk.client.get("/?kind=outbox").text
    before = _outbox(desk, code)

    page = desk.client.get(f"/claims/{code}")
    assert 'id="action-approve-preview"' in page.text
    form = {"csrf_token": csrf_of(page.text), "why": "receipt checked", "price": ""}
    preview = desk.client.post(f"/claims/{code}/preview/approve", data=form)
    assert preview.status_code == 200 and 'id="confirm-action"' in preview.text
    assert 'id="preview-subject"' in preview.text and code in preview.text
    assert _outbox(desk, code) == before  # the preview wrote nothing
    with db.transaction(desk.app.factory) as s:
        assert s.scalars(select(m.Claim.state).where(m.Claim.code == code)).one() == "review"

    done = desk.client.post(f"/claims/{code}/do/approve", data=form, follow_redirects=False)
    assert done.status_code == 303
    assert _outbox(desk, code) == [*before, "approved"]
    with db.transaction(desk.app.factory) as s:
        claim = s.scalars(select(m.Claim).where(m.Claim.code == code)).one()
        assert claim.state == "approved"
        event = s.scalars(
            select(m.Event).where(m.Event.claim_id == claim.id).order_by(m.Event.id.desc())
        ).first()
        assert event is not None and event.kind == "claim.approved"
        assert event.evidence["actor"] == "anne" and event.evidence["why"] == "receipt checked"
    assert f'id="queue-claim-{code}"' not in desk.client.get("/").text
    # an action without a reason is refused, nothing written
    form["why"] = ""
    desk.client.post(f"/claims/{code}/do/pay", data=form)
    with db.transaction(desk.app.factory) as s:
        assert s.scalars(select(m.Claim.state).where(m.Claim.code == code)).one() == "approved"


def test_search_by_code_rma_and_email_without_address_in_urls(desk: Desk) -> None:
    code = desk.register("Per.Hansen@example.no")
    rc, out, err = desk.cli(
        "rma", "issue", "--email", "per.hansen@example.no", "--product", "WH-1000XM5", "--json"
    )
    assert rc == 0, err
    import json

    number = json.loads(out)["number"]
    assert desk.login("vera") == 303
    seen_urls: list[str] = []
    for q in (code, number, "per.hansen@EXAMPLE.no"):
        resp = desk.client.post("/search", data={"q": q, "csrf_token": desk.csrf("/search")})
        seen_urls += [str(h.url) for h in resp.history] + [str(resp.url)]
        assert resp.status_code == 200
        if q == number:
            assert f"/rmas/{number}" in resp.text
        else:
            assert f"/claims/{code}" in resp.text
    assert f"/rmas/{number}" in resp.text  # the email finds the RMA too
    assert all("@" not in u and "hansen" not in u.lower() for u in seen_urls), seen_urls
    assert desk.client.get(f"/rmas/{number}").status_code == 200


def test_raw_download_and_message_page(desk: Desk, tmp_path: Path) -> None:
    raw = b"From: a@example.no\r\nSubject: hello\r\nMessage-ID: <x@y>\r\n\r\nbody\r\n"
    sha, path = RawStore(desk.app.settings.data_dir / "raw").put(raw)
    with db.transaction(desk.app.factory) as s:
        msg = m.Message(
            account="a", folder="INBOX", uidvalidity=1, uid=1, sha256=sha, raw_path=str(path),
            status="quarantined", reason="too_large: 30000 > 4000 bytes", size=len(raw),
            from_masked="a***@example.no", fetched_at=T0,
        )  # fmt: skip
        s.add(msg)
        s.flush()
        mid = msg.id
    assert desk.login("anne") == 303
    assert f'id="queue-message-{mid}"' in desk.client.get("/").text
    page = desk.client.get(f"/messages/{mid}")
    assert page.status_code == 200 and 'id="message-raw"' in page.text
    assert 'id="action-reprocess"' not in page.text  # admin only
    got = desk.client.get(f"/messages/{mid}/raw")
    assert got.status_code == 200 and got.content == raw
    assert "attachment" in got.headers["content-disposition"]
    token = csrf_of(page.text)
    assert (
        desk.client.post(
            f"/messages/{mid}/reprocess", data={"csrf_token": token, "why": "x"}
        ).status_code
        == 403
    )
    desk.client.post(f"/messages/{mid}/dismiss", data={"csrf_token": token, "why": "spam"})
    assert f'id="queue-message-{mid}"' not in desk.client.get("/").text
    with db.transaction(desk.app.factory) as s:
        event = s.scalars(select(m.Event).where(m.Event.message_id == mid)).one()
        assert event.kind == "message.dismissed" and event.evidence["actor"] == "anne"


def test_users_cli(desk: Desk) -> None:
    assert (
        desk.cli("users", "add", "bo", "--role", "agent", "--password-stdin", stdin="short\n")[0]
        == 2
    )
    rc, out, err = desk.cli(
        "users", "add", "bo", "--role", "agent", "--password-stdin", stdin="a good long secret\n"
    )
    assert rc == 0, err
    with db.transaction(desk.app.factory) as s:
        digest = s.scalars(select(m.WebUser.password_hash).where(m.WebUser.name == "bo")).one()
    assert digest.startswith("$argon2id$") and "a good long secret" not in digest
    assert desk.login("bo", "a good long secret") == 303
    assert (
        desk.cli("users", "passwd", "bo", "--password-stdin", stdin="a newer long secret\n")[0] == 0
    )
    assert desk.client.get("/", follow_redirects=False).status_code == 303  # logged out
    assert desk.login("bo", "a good long secret") == 401
    assert desk.cli("users", "disable", "bo")[0] == 0
    assert desk.login("bo", "a newer long secret") == 401
    rc, out, _ = desk.cli("users", "list", "--json")
    assert rc == 0 and '"bo"' in out and '"disabled": true' in out
    assert desk.cli("users", "add", "bo", "--password-stdin", stdin="whatever long one\n")[0] == 2


def test_claim_page_shows_documents_with_fields_and_renders_pdf_pages(desk: Desk) -> None:
    from mailbot.devtools.samples import good_receipt_pdf, receipt_image
    from mailbot.services.documents import DocumentStore

    code = desk.register()
    store = DocumentStore(desk.app.settings.data_dir / "documents")
    pdf, png = good_receipt_pdf(), receipt_image(["ELKJØP", "Total 1990,00"])
    with db.transaction(desk.app.factory) as s:
        claim = s.scalars(select(m.Claim).where(m.Claim.code == code)).one()
        msg = m.Message(
            account="a", folder="INBOX", uidvalidity=1, uid=7, status="processed",
            claim_id=claim.id, fetched_at=T0,
        )  # fmt: skip
        s.add(msg)
        s.flush()
        ids = []
        for name, ctype, content in (
            ("r.pdf", "application/pdf", pdf),
            ("r.png", "image/png", png),
        ):
            sha, path = store.put(content)
            doc = m.Document(
                message_id=msg.id, claim_id=claim.id, filename=name, content_type=ctype,
                size=len(content), sha256=sha, path=str(path), accepted=True,
                document_kind="receipt", created_at=T0,
            )  # fmt: skip
            s.add(doc)
            s.flush()
            ids.append(doc.id)
        s.add(
            m.Extraction(
                document_id=ids[0],
                rules_version="v1",
                source="text",
                seconds=0.1,
                created_at=T0,
                fields={
                    "document_kind": "receipt",
                    "retailer": {
                        "value": "Elkjøp",
                        "confidence": 0.91,
                        "evidence": "ELKJØP NORGE AS",
                        "rule": "r",
                    },
                },
            )
        )
    assert desk.login("vera") == 303
    page = desk.client.get(f"/claims/{code}")
    assert page.status_code == 200
    assert "ELKJØP NORGE AS" in page.text and "0.91" in page.text
    assert f"/documents/{ids[0]}?page=0" in page.text and f'src="/documents/{ids[1]}"' in page.text
    rendered = desk.client.get(f"/documents/{ids[0]}?page=0")
    assert rendered.status_code == 200 and rendered.content.startswith(b"\x89PNG")
    assert desk.client.get(f"/documents/{ids[0]}?page=9").status_code == 404
    image = desk.client.get(f"/documents/{ids[1]}")
    assert image.status_code == 200 and image.content == png
    download = desk.client.get(f"/documents/{ids[0]}/download")
    assert download.content == pdf and "attachment" in download.headers["content-disposition"]


def test_queue_lists_undelivered_replies_and_held_mail_due_first(desk: Desk) -> None:
    from datetime import timedelta

    late, soon = desk.register("a@example.no"), desk.register("b@example.no")
    for code in (late, soon):
        desk.cli("claims", "decide", code, "reject", "--reason", "not_verified", "--why", "x")
        desk.cli("claims", "reopen", code, "--why", "x")
    with db.transaction(desk.app.factory) as s:
        for code, days in ((late, 9), (soon, 2)):
            claim = s.scalars(select(m.Claim).where(m.Claim.code == code)).one()
            claim.deadline_at = T0 + timedelta(days=days)
        reply = s.scalars(select(m.Outbox).order_by(m.Outbox.id)).first()
        assert reply is not None
        reply.status, reply.last_error = "failed", "550 mailbox unavailable"
        s.add(
            m.Message(
                account="a",
                folder="INBOX",
                uidvalidity=1,
                uid=3,
                status="processed",
                reason="review:sender_not_claimant",
                fetched_at=T0,
            )
        )
        s.flush()
        rid = reply.id
    assert desk.login("vera") == 303
    text = desk.client.get("/").text
    rows = re.findall(r'<tr id="(queue-[a-z]+-[^"]+)"', text)
    assert rows.index(f"queue-claim-{soon}") < rows.index(f"queue-claim-{late}")
    assert f"queue-outbox-{rid}" in rows and any(r.startswith("queue-message-") for r in rows)
    assert "550 mailbox unavailable" in text and "held: sender is not the claimant" in text
    assert "a@example.no" not in text and "b@example.no" not in text  # masked in the queue
    only_held = desk.client.get("/?kind=held").text
    assert re.findall(r'<tr id="(queue-[a-z]+)-', only_held) == ["queue-message"]
    by_reason = desk.client.get("/?reason=SENDER+is+not").text
    assert re.findall(r'<tr id="(queue-[a-z]+)-', by_reason) == ["queue-message"]
    assert desk.client.get(f"/outbox/{rid}").status_code == 200
