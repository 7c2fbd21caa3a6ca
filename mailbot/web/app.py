"""The desk's ASGI application: routes, roles, CSRF, sessions, actions with a preview.

Every page but /login and /static needs a session; a viewer reads, an agent also
acts on claims, RMAs and ledger mails, an admin also retries or cancels replies and
reprocesses mail and replays candidate rules (/rules: what they would decide for
the claims holding documents; nothing is written). Every POST carries the session's
CSRF token. Actions run the
operator service (`mailbot.services.operator`) as `Actor(user, role)` with the
operator's reason, so each is an event naming who, when and why; the preview runs
the same action in a transaction that is rolled back and shows the reply it queued.
Nothing personal goes into URLs (search is a POST) or logs (staff names only).
"""

from __future__ import annotations

import io
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast
from urllib.parse import quote

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session, sessionmaker
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData
from starlette.middleware import Middleware
from starlette.middleware.base import BaseHTTPMiddleware
from starlette.middleware.sessions import SessionMiddleware
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates

from mailbot.cli.app import App
from mailbot.core import claim_machine as claim_sm
from mailbot.core.errors import InputError, MailbotError, RulesError
from mailbot.log import mask_email
from mailbot.ruleset.loader import RuleSet, load_ruleset
from mailbot.services import claims as claims_svc
from mailbot.services import messages as messages_svc
from mailbot.services import operator as op
from mailbot.services import outbox_admin
from mailbot.services import replay as replay_svc
from mailbot.services import rmas as rmas_svc
from mailbot.services.records import (
    add_event,
    claim_by_code,
    claim_snapshot,
    owned_rows,
    rma_by_number,
)
from mailbot.store import models as m
from mailbot.store.db import transaction
from mailbot.store.rawstore import RawStore
from mailbot.web import accounts, queue
from mailbot.web.accounts import RANK, Account
from mailbot.web.security import LoginLimiter, csrf_ok, csrf_token, secret_key

log = logging.getLogger("mailbot.web")
HERE = Path(__file__).resolve().parent
# Types a browser shows safely inline; anything else is converted to PNG or downloaded.
INLINE_IMAGES = ("image/png", "image/jpeg", "image/gif", "image/webp")
PDF_PAGES = 3
"""PDF pages rendered on a claim page (the rest: download the file)."""


@dataclass
class Req:
    request: Request
    user: Account
    form: FormData | None = None

    @property
    def session(self) -> dict[str, Any]:
        return self.request.session

    def field(self, name: str) -> str:
        value = self.form.get(name) if self.form is not None else None
        return value.strip() if isinstance(value, str) else ""

    def path(self, name: str) -> str:
        return str(self.request.path_params[name])

    def fields(self, name: str) -> list[str]:
        if self.form is None:
            return []
        return [v.strip() for v in self.form.getlist(name) if isinstance(v, str) and v.strip()]


@dataclass
class Desk:
    app: App
    templates: Jinja2Templates
    limiter: LoginLimiter
    wall: Callable[[], float]
    session_s: int
    extra_routes: list[BaseRoute] = field(default_factory=list)

    # --- sessions -------------------------------------------------------------------
    def current_user(self, request: Request) -> Account | None:
        s = request.session
        name = s.get("user")
        if not isinstance(name, str):
            return None
        at = s.get("at")
        if not isinstance(at, int | float) or self.wall() - at > self.session_s:
            log.info("web session expired", extra={"event": "web.session_expired", "user": name})
            s.clear()
            return None
        acc = accounts.find(self.app.factory, name)
        if acc is None or acc.disabled or acc.session_version != s.get("sv"):
            s.clear()
            return None
        return acc

    # --- rendering ------------------------------------------------------------------
    def render(
        self, request: Request, user: Account | None, name: str, status: int = 200, **ctx: Any
    ) -> Response:
        flash = request.session.pop("flash", None)
        base = {
            "user": user,
            "csrf": csrf_token(request.session),
            "flash": flash,
            "can_act": user is not None and RANK[user.role] >= RANK["agent"],
            "is_admin": user is not None and user.role == "admin",
            "now": self.app.now(),
        }
        return self.templates.TemplateResponse(request, name, base | ctx, status_code=status)

    def rules_or_none(self) -> RuleSet | None:
        """The rules in force, or None while the configured files do not load: a page
        that only reads from them (payment terms) still renders."""
        try:
            return self.app.rules
        except MailbotError:
            return None

    def error(self, r: Req, status: int, text: str) -> Response:
        return self.render(r.request, r.user, "error.html", status=status, message=text)

    def actor(self, user: Account) -> op.Actor:
        return op.Actor(user.name, "admin" if user.role == "admin" else "operator")

    def context(self, r: Req) -> op.Context:
        why = r.field("why")
        if not why:
            raise InputError("why: say why (kept in the event)")
        return op.context(
            rules=self.app.rules,
            settings=self.app.settings,
            now=self.app.now(),
            actor=self.actor(r.user),
            why=why,
        )


Handler = Callable[[Desk, Req], Response]


def page(role: str, *, post: bool = False) -> Callable[[Handler], Callable[[Request], Any]]:
    """Login, role and (for POST) CSRF checks around a handler run in a worker thread
    (the handlers use the synchronous database layer)."""

    def wrap(fn: Handler) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            desk: Desk = request.app.state.desk
            user = await run_in_threadpool(desk.current_user, request)
            if user is None:
                target = request.url.path if request.method == "GET" else "/"
                return RedirectResponse(f"/login?next={quote(target)}", status_code=303)
            form = None
            if post:
                form = await request.form()
                if not csrf_ok(request.session, form.get("csrf_token")):
                    log.warning("web csrf refused", extra={"event": "web.csrf", "user": user.name})
                    return desk.render(
                        request,
                        user,
                        "error.html",
                        403,
                        message="The form expired: reload and try again.",
                    )
            r = Req(request, user, form)
            if RANK[user.role] < RANK[role]:
                return desk.error(r, 403, f"Your role ({user.role}) may not do this.")
            return await run_in_threadpool(fn, desk, r)

        return endpoint

    return wrap


# --- login ------------------------------------------------------------------------------


def _client(request: Request) -> str:
    return request.client.host if request.client else "-"


def _safe_next(target: str) -> str:
    return target if target.startswith("/") and not target.startswith("//") else "/"


async def login_page(request: Request) -> Response:
    desk: Desk = request.app.state.desk
    nxt = _safe_next(request.query_params.get("next", "/"))
    return desk.render(request, None, "login.html", next=nxt, error=None)


async def login(request: Request) -> Response:
    desk: Desk = request.app.state.desk
    form = await request.form()
    nxt = _safe_next(str(form.get("next") or "/"))
    if not csrf_ok(request.session, form.get("csrf_token")):
        return desk.render(
            request, None, "login.html", 403, next=nxt, error="The form expired: try again."
        )
    name = str(form.get("username") or "").strip().lower()[:64]
    password = str(form.get("password") or "")
    keys = [f"ip:{_client(request)}", f"user:{name}"]
    if desk.limiter.blocked(keys):
        log.warning("web login rate limited", extra={"event": "web.login_limited", "user": name})
        msg = "Too many failed logins: wait a few minutes and try again."
        return desk.render(request, None, "login.html", 429, next=nxt, error=msg)
    acc = await run_in_threadpool(
        accounts.authenticate, desk.app.factory, name, password, desk.app.now()
    )
    if acc is None:
        desk.limiter.failed(keys)
        log.warning("web login failed", extra={"event": "web.login_failed", "user": name})
        return desk.render(
            request, None, "login.html", 401, next=nxt, error="Wrong user name or password."
        )
    desk.limiter.succeeded(f"user:{name}")
    request.session.clear()  # a fresh session (and CSRF token) after login
    request.session.update({"user": acc.name, "sv": acc.session_version, "at": desk.wall()})
    log.info("web login", extra={"event": "web.login", "user": acc.name, "role": acc.role})
    return RedirectResponse(nxt, status_code=303)


@page("viewer", post=True)
def logout(desk: Desk, r: Req) -> Response:
    log.info("web logout", extra={"event": "web.logout", "user": r.user.name})
    r.session.clear()
    return RedirectResponse("/login", status_code=303)


# --- queue and search -------------------------------------------------------------------


@page("viewer")
def home(desk: Desk, r: Req) -> Response:
    q = r.request.query_params
    kind, campaign, reason = q.get("kind", ""), q.get("campaign", ""), q.get("reason", "")
    with transaction(desk.app.factory) as s:
        items, counts, campaigns = queue.build(
            s, kind=kind, campaign=campaign, reason=reason, rules=desk.rules_or_none()
        )
    return desk.render(
        r.request,
        r.user,
        "queue.html",
        items=items,
        counts=counts,
        campaigns=campaigns,
        kinds=queue.KINDS,
        kind_words=queue.KIND_WORDS,
        filters={"kind": kind, "campaign": campaign, "reason": reason},
    )


@page("viewer")
def search_page(desk: Desk, r: Req) -> Response:
    return desk.render(r.request, r.user, "search.html", query="", results=None)


def _hit(
    kind: str, ref: str, link: str, state: str, what: str, email: str | None
) -> dict[str, str | None]:
    """One row of the search page."""
    return {"kind": kind, "ref": ref, "link": link, "state": state, "what": what, "email": email}


@page("viewer", post=True)
def search(desk: Desk, r: Req) -> Response:
    """By claim code, RMA number or email (a POST: the address never enters a URL)."""
    text = r.field("q")[:320]
    results: list[dict[str, Any]] = []
    if text:
        with transaction(desk.app.factory) as s:
            low = text.lower()
            claims = s.scalars(
                select(m.Claim)
                .where(or_(m.Claim.code == text, func.lower(m.Claim.email) == low))
                .order_by(m.Claim.id.desc())
                .limit(50)
            ).all()
            results += [
                _hit(
                    "claim",
                    c.code,
                    f"/claims/{c.code}",
                    c.state,
                    f"{c.campaign_id}, {c.model}",
                    c.email,
                )
                for c in claims
            ]
            rmas = s.scalars(
                select(m.Rma)
                .where(
                    or_(func.upper(m.Rma.number) == text.upper(), func.lower(m.Rma.email) == low)
                )
                .order_by(m.Rma.id.desc())
                .limit(50)
            ).all()
            results += [
                _hit("RMA", x.number, f"/rmas/{x.number}", x.state, x.product, x.email)
                for x in rmas
            ]
            if text.lstrip("#").isdigit() and len(text.lstrip("#")) < 10:
                msg = s.get(m.Message, int(text.lstrip("#")))
                if msg is not None:
                    cause = messages_svc.cause(msg.status, msg.reason)
                    link = f"/messages/{msg.id}"
                    results.append(
                        _hit("ledger", f"#{msg.id}", link, msg.status, cause, msg.from_masked)
                    )
    return desk.render(r.request, r.user, "search.html", query=text, results=results)


# --- claims -----------------------------------------------------------------------------


def _fields_of(extraction: m.Extraction | None) -> list[dict[str, Any]]:
    if extraction is None:
        return []
    out = []
    for name, value in sorted((extraction.fields or {}).items()):
        if isinstance(value, dict) and "value" in value:
            out.append(
                {
                    "name": name,
                    "value": value.get("value"),
                    "confidence": value.get("confidence"),
                    "evidence": value.get("evidence"),
                    "rule": value.get("rule"),
                }
            )
    return out


def _pdf_pages(doc: m.Document | None) -> int:
    """Pages of a stored PDF to show, at most PDF_PAGES: an image of a page the file
    does not have would be a broken image. Unreadable: one (its page says so)."""
    if doc is None or not doc.path:
        return 0
    try:
        import pypdfium2 as pdfium

        pdf = pdfium.PdfDocument(RawStore(Path(doc.path).parent).get(doc.path, doc.sha256))
        try:
            return min(PDF_PAGES, len(pdf))
        finally:
            pdf.close()
    except Exception:  # a damaged or missing file: the document view explains
        return 1


def _mails(s: Session, **owner: int) -> dict[str, Any]:
    """The mails in (with their cause) and out of one claim or RMA, for its page."""
    return {
        "mails_in": [
            {
                "id": x.id,
                "at": x.fetched_at,
                "status": x.status,
                "cause": messages_svc.cause(x.status, x.reason),
            }
            for x in owned_rows(s, m.Message, **owner)
        ],
        "mails_out": owned_rows(s, m.Outbox, **owner),
    }


def _claim_view(desk: Desk, s: Session, row: m.Claim) -> dict[str, Any]:
    detail = claims_svc.claim_details(s, row)
    docs = []
    for d in detail["documents"]:
        ext = s.scalars(
            select(m.Extraction)
            .where(m.Extraction.document_id == d["id"])
            .order_by(m.Extraction.id.desc())
        ).first()
        ctype = (d.get("type") or "").lower()
        pages = 0
        if ctype == "application/pdf" or d["filename"].lower().endswith(".pdf"):
            pages = _pdf_pages(s.get(m.Document, d["id"]))
        docs.append(
            d
            | {
                "fields": _fields_of(ext),
                "extraction": {"source": ext.source, "rules_version": ext.rules_version}
                if ext
                else None,
                "error": (ext.fields or {}).get("error") if ext else None,
                "is_image": ctype.startswith("image/"),
                "pdf_pages": pages,
            }
        )
    campaign = None
    try:
        campaign = desk.app.rules.campaign(row.campaign_id)
    except MailbotError:
        pass
    return {
        "claim": detail,
        "documents": docs,
        **_mails(s, claim_id=row.id),
        "required_documents": campaign.required_documents if campaign else (),
        "required_fields": campaign.required_fields if campaign else (),
        "rejection_reasons": claim_sm.OPERATOR_REJECTION_REASONS,
        "correctable": claim_sm.CORRECTABLE_FIELDS,
        "reevaluable": _reevaluable(row),
    }


def _reevaluable(row: m.Claim) -> bool:
    """Whether the current rules may decide the claim again (`services.replay.reevaluate`
    refuses the others): an open claim holding documents."""
    snap = claim_snapshot(row)
    return snap.state in replay_svc.OPEN and bool(snap.documents)


@page("viewer")
def claim_page(desk: Desk, r: Req) -> Response:
    code = r.request.path_params["code"]
    with transaction(desk.app.factory) as s:
        row = claim_by_code(s, code)
        if row is None:
            return desk.error(r, 404, f"No claim with code {code}.")
        view = _claim_view(desk, s, row)
        return desk.render(r.request, r.user, "claim.html", **view)


Action = Callable[[Session, op.Context, Req], op.Done]


class _Lent:
    """The desk's session lent to a service that opens and ends a session of its own
    (`services.replay.reevaluate`): its commit only flushes, its rollback and close are
    left to the desk, so its work is part of the desk's transaction, which the preview
    rolls back and the confirm commits. A separate session committing a savepoint would
    mark the rules version stored although the preview then rolls it back."""

    def __init__(self, session: Session) -> None:
        self._session = session

    def __getattr__(self, name: str) -> Any:
        return getattr(self._session, name)

    def commit(self) -> None:
        self._session.flush()

    def rollback(self) -> None:
        pass  # called on the way out of an error, which rolls the desk's transaction back

    def close(self) -> None:
        pass


def _reevaluate(s: Session, ctx: op.Context, r: Req) -> op.Done:
    lent = cast("sessionmaker[Session]", lambda: _Lent(s))
    done = replay_svc.reevaluate(lent, ctx, r.path("code"))
    return op.Done(done.kind, done.from_state, done.to_state, done.reply)


CLAIM_ACTIONS: dict[str, tuple[str, Action]] = {
    "approve": (
        "Approve",
        lambda s, c, r: op.approve(s, c, r.path("code"), price=r.field("price") or None),
    ),
    "reject": ("Reject", lambda s, c, r: op.reject(s, c, r.path("code"), r.field("reason"))),
    "ask": (
        "Ask for items",
        lambda s, c, r: op.ask(
            s, c, r.path("code"), documents=r.fields("document"), fields=r.fields("field")
        ),
    ),
    "reopen": ("Reopen", lambda s, c, r: op.reopen(s, c, r.path("code"))),
    "email": (
        "Change email",
        lambda s, c, r: op.change_email(s, c, r.path("code"), r.field("email")),
    ),
    "correct": (
        "Correct a field",
        lambda s, c, r: op.correct_field(s, c, r.path("code"), r.field("field"), r.field("value")),
    ),
    "pay": (
        "Mark paid",
        lambda s, c, r: op.pay(s, c, r.path("code"), reference=r.field("reference")),
    ),
    "attach": (
        "Attach a ledger mail",
        lambda s, c, r: op.attach(s, c, _ledger_id(r.field("message")), claim_code=r.path("code")),
    ),
    "reevaluate": ("Reevaluate with the current rules", _reevaluate),
}
RMA_ACTIONS: dict[str, tuple[str, Action]] = {
    "receive": ("Mark received", lambda s, c, r: op.rma_receive(s, c, r.path("number"))),
    "close": ("Close", lambda s, c, r: op.rma_close(s, c, r.path("number"), r.field("outcome"))),
    "attach": (
        "Attach a ledger mail",
        lambda s, c, r: op.attach(
            s, c, _ledger_id(r.field("message")), rma_number=r.path("number")
        ),
    ),
}


def _ledger_id(text: str) -> int:
    digits = text.lstrip("#").strip()
    if not digits.isdigit() or len(digits) > 12:
        raise InputError(f"ledger row: a number, not {text!r}")
    return int(digits)


def _pairs(r: Req) -> list[tuple[str, str]]:
    """The action's form values, carried from the preview to the confirm form."""
    if r.form is None:
        return []
    return [(k, v) for k, v in r.form.multi_items() if k != "csrf_token" and isinstance(v, str)]


def _dry_run(desk: Desk, r: Req, action: Action) -> tuple[op.Done, list[dict[str, Any]]]:
    """Run the action in a transaction that is always rolled back: what it would do
    and the replies it would queue, rendered by the same code as the real one."""
    ctx = desk.context(r)
    session = desk.app.factory()
    try:
        before = session.scalar(select(func.max(m.Outbox.id))) or 0
        done = action(session, ctx, r)
        session.flush()
        rows = session.scalars(select(m.Outbox).where(m.Outbox.id > before).order_by(m.Outbox.id))
        mails = [
            {"to": o.to_addr, "subject": o.subject, "text": o.body_text, "template": o.template}
            for o in rows
        ]
        return done, mails
    finally:
        session.rollback()
        session.close()


def _act(
    desk: Desk,
    r: Req,
    kind: str,
    ref: str,
    actions: dict[str, tuple[str, Action]],
    back: str,
    confirm: bool,
) -> Response:
    name = r.request.path_params["action"]
    if name not in actions:
        return desk.error(r, 404, f"No action {name!r}.")
    label, action = actions[name]
    try:
        if not confirm:
            done, mails = _dry_run(desk, r, action)
            return desk.render(
                r.request,
                r.user,
                "preview.html",
                kind=kind,
                ref=ref,
                action=name,
                label=label,
                done=done,
                mails=mails,
                pairs=_pairs(r),
                confirm_url=f"{back}/do/{name}",
                back=back,
            )
        ctx = desk.context(r)
        with transaction(desk.app.factory) as s:
            done = action(s, ctx, r)
    except InputError as exc:
        r.session["flash"] = f"Not done: {exc}"
        return RedirectResponse(back, status_code=303)
    log.info(
        "web action",
        extra={
            "event": "web.action",
            "user": r.user.name,
            "action": f"{kind}.{name}",
            "ref": ref,
            "to": done.to_state,
        },
    )
    reply = f"; reply queued: {done.reply}" if done.reply else "; no reply"
    r.session["flash"] = f"{label}: {done.from_state} → {done.to_state}{reply}"
    return RedirectResponse(back, status_code=303)


def _action_page(
    kind: str, key: str, actions: dict[str, tuple[str, Action]], *, confirm: bool
) -> Callable[[Request], Any]:
    """The preview (confirm=False) or the do page of one kind of record's actions;
    the record is named by the path parameter `key` and its page is /{kind}s/{ref}."""

    @page("agent", post=True)
    def handler(desk: Desk, r: Req) -> Response:
        ref = r.request.path_params[key]
        return _act(desk, r, kind, ref, actions, f"/{kind}s/{ref}", confirm)

    return handler


claim_preview = _action_page("claim", "code", CLAIM_ACTIONS, confirm=False)
claim_do = _action_page("claim", "code", CLAIM_ACTIONS, confirm=True)


@page("viewer")
def rma_page(desk: Desk, r: Req) -> Response:
    number = r.request.path_params["number"]
    with transaction(desk.app.factory) as s:
        row = rma_by_number(s, number)
        if row is None:
            return desk.error(r, 404, f"No RMA {number}.")
        detail = rmas_svc.rma_details(s, row)
        return desk.render(
            r.request,
            r.user,
            "rma.html",
            rma=detail,
            **_mails(s, rma_id=row.id),
        )


rma_preview = _action_page("rma", "number", RMA_ACTIONS, confirm=False)
rma_do = _action_page("rma", "number", RMA_ACTIONS, confirm=True)


# --- documents --------------------------------------------------------------------------


def _document(desk: Desk, r: Req) -> tuple[m.Document, bytes] | Response:
    try:
        doc_id = int(r.request.path_params["id"])
    except ValueError:
        return desk.error(r, 404, "No such document.")
    with transaction(desk.app.factory) as s:
        doc = s.get(m.Document, doc_id)
        if doc is None or not doc.path:
            return desk.error(r, 404, "No such document (or its file is not kept).")
        s.expunge(doc)
    try:
        content = RawStore(Path(doc.path).parent).get(doc.path, doc.sha256)
    except (OSError, ValueError):
        return desk.error(r, 410, "The stored file is missing or damaged.")
    return doc, content


def _png(image: Any) -> Response:
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return Response(
        buf.getvalue(), media_type="image/png", headers={"Cache-Control": "private, no-store"}
    )


@page("viewer")
def document_view(desk: Desk, r: Req) -> Response:
    """An image inline, or page N of a PDF rendered to PNG (pypdfium2, which pdfplumber uses)."""
    found = _document(desk, r)
    if isinstance(found, Response):
        return found
    doc, content = found
    ctype = (doc.content_type or "").lower()
    page_no = (
        int(r.request.query_params.get("page", "0") or 0)
        if r.request.query_params.get("page", "0").isdigit()
        else 0
    )
    try:
        if ctype in INLINE_IMAGES:
            return Response(
                content, media_type=ctype, headers={"Cache-Control": "private, no-store"}
            )
        if ctype == "application/pdf" or content.startswith(b"%PDF"):
            import pypdfium2 as pdfium

            pdf = pdfium.PdfDocument(content)
            try:
                if page_no >= len(pdf):
                    return desk.error(r, 404, "No such page.")
                bitmap = pdf[page_no].render(scale=1.5)
                return _png(bitmap.to_pil())
            finally:
                pdf.close()
        if ctype.startswith("image/"):
            from PIL import Image

            try:
                import pillow_heif

                pillow_heif.register_heif_opener()
            except ImportError:  # pragma: no cover - a dependency; HEIC just is not shown
                pass
            with Image.open(io.BytesIO(content)) as img:
                img.thumbnail((2000, 2000))
                return _png(img.convert("RGB"))
    except Exception as exc:  # a damaged file is shown as such, never a crash
        log.info(
            "web document not renderable",
            extra={"document_id": doc.id, "error": type(exc).__name__},
        )
        return desk.error(r, 415, "This document cannot be shown: download it.")
    return desk.error(r, 415, "This document cannot be shown: download it.")


@page("viewer")
def document_download(desk: Desk, r: Req) -> Response:
    found = _document(desk, r)
    if isinstance(found, Response):
        return found
    doc, content = found
    safe = (
        "".join(ch for ch in doc.filename if ch.isalnum() or ch in "._- ")[:100]
        or f"document-{doc.id}"
    )
    return Response(
        content,
        media_type="application/octet-stream",
        headers={
            "Content-Disposition": f'attachment; filename="{safe}"',
            "Cache-Control": "private, no-store",
        },
    )


# --- ledger and outbox ------------------------------------------------------------------


def _message_id(r: Req) -> int | None:
    text = str(r.request.path_params["id"])
    return int(text) if text.isdigit() and len(text) < 13 else None


@page("viewer")
def message_page(desk: Desk, r: Req) -> Response:
    mid = _message_id(r)
    detail = messages_svc.message_detail(desk.app.factory, mid) if mid is not None else None
    if detail is None:
        return desk.error(r, 404, "No such ledger row.")
    return desk.render(r.request, r.user, "message.html", msg=detail, reprocessable=REPROCESSABLE)


@page("agent")
def message_raw(desk: Desk, r: Req) -> Response:
    mid = _message_id(r)
    if mid is None:
        return desk.error(r, 404, "No such ledger row.")
    try:
        raw = messages_svc.raw_bytes(desk.app.factory, mid)
    except InputError as exc:
        return desk.error(r, 404, str(exc))
    except MailbotError as exc:
        return desk.error(r, 500, f"The stored mail does not match its hash: {exc}")
    log.info(
        "web raw mail downloaded", extra={"event": "web.raw", "user": r.user.name, "ledger_id": mid}
    )
    return Response(
        raw,
        media_type="message/rfc822",
        headers={
            "Content-Disposition": f'attachment; filename="ledger-{mid}.eml"',
            "Cache-Control": "private, no-store",
        },
    )


REPROCESSABLE = ("failed", "pending", "quarantined", "ignored")


def _message_event(desk: Desk, r: Req, mid: int, kind: str) -> m.Message | Response:
    ctx = desk.context(r)
    with transaction(desk.app.factory) as s:
        msg = s.get(m.Message, mid)
        if msg is None:
            return desk.error(r, 404, "No such ledger row.")
        add_event(
            s,
            kind=kind,
            now=ctx.now,
            claim_id=msg.claim_id,
            rma_id=msg.rma_id,
            message_row_id=msg.id,
            from_state=msg.status,
            to_state=msg.status,
            reasons=["operator"],
            evidence={"actor": ctx.actor.who, "role": ctx.actor.role, "why": ctx.why},
            rules_version=ctx.rules.version,
        )
        s.flush()
        s.expunge(msg)
        return msg


@page("agent", post=True)
def message_dismiss(desk: Desk, r: Req) -> Response:
    """Nothing more to do for this mail (answered by phone, spam): off the queue, with why."""
    mid = _message_id(r)
    if mid is None:
        return desk.error(r, 404, "No such ledger row.")
    try:
        found = _message_event(desk, r, mid, "message.dismissed")
    except InputError as exc:
        r.session["flash"] = f"Not done: {exc}"
        return RedirectResponse(f"/messages/{mid}", status_code=303)
    if isinstance(found, Response):
        return found
    log.info(
        "web message dismissed",
        extra={"event": "web.action", "user": r.user.name, "ledger_id": mid},
    )
    r.session["flash"] = f"Ledger row {mid} done: off the queue."
    return RedirectResponse(f"/messages/{mid}", status_code=303)


@page("agent", post=True)
def message_attach(desk: Desk, r: Req) -> Response:
    """Attach this mail to a claim or an RMA: goes to that page's preview."""
    mid = _message_id(r)
    target = r.field("target").strip()
    if mid is None or not target:
        r.session["flash"] = "Not done: give a claim code or RMA number"
        return RedirectResponse(f"/messages/{mid or ''}", status_code=303)
    with transaction(desk.app.factory) as s:
        is_claim = claim_by_code(s, target) is not None
        is_rma = not is_claim and rma_by_number(s, target) is not None
    if not (is_claim or is_rma):
        r.session["flash"] = f"Not done: no claim or RMA {target}"
        return RedirectResponse(f"/messages/{mid}", status_code=303)
    kind, path, acts = (
        ("claim", f"/claims/{target}", CLAIM_ACTIONS)
        if is_claim
        else ("rma", f"/rmas/{target}", RMA_ACTIONS)
    )
    r.request.scope["path_params"] = {"code" if is_claim else "number": target, "action": "attach"}
    form = FormData([*[(k, v) for k, v in _pairs(r) if k != "target"], ("message", str(mid))])
    return _act(desk, Req(r.request, r.user, form), kind, target, acts, path, confirm=False)


@page("admin", post=True)
def message_reprocess(desk: Desk, r: Req) -> Response:
    from mailbot.intake.pipeline import Pipeline
    from mailbot.intake.sync import reprocess

    mid = _message_id(r)
    if mid is None:
        return desk.error(r, 404, "No such ledger row.")
    with transaction(desk.app.factory) as s:
        msg = s.get(m.Message, mid)
        status = msg.status if msg is not None else None
    if status is None:
        return desk.error(r, 404, "No such ledger row.")
    if status not in REPROCESSABLE:
        r.session["flash"] = f"Not done: a {status} mail is not processed again"
        return RedirectResponse(f"/messages/{mid}", status_code=303)
    try:
        _message_event(desk, r, mid, "message.reprocess_requested")
    except InputError as exc:
        r.session["flash"] = f"Not done: {exc}"
        return RedirectResponse(f"/messages/{mid}", status_code=303)
    app = desk.app
    pipeline = Pipeline(app.settings, rules=lambda: app.rules, clock=app.now, factory=app.factory)
    try:
        counts = reprocess(app.factory, pipeline, message_ids=[mid], raw_store=None)
    finally:
        pipeline.close()
    log.info("web reprocess", extra={"event": "web.action", "user": r.user.name, "ledger_id": mid})
    summary = ", ".join(f"{k} {v}" for k, v in counts.as_dict().items() if v) or "nothing changed"
    r.session["flash"] = f"Reprocessed ledger row {mid}: {summary}"
    return RedirectResponse(f"/messages/{mid}", status_code=303)


@page("viewer")
def outbox_page(desk: Desk, r: Req) -> Response:
    text = str(r.request.path_params["id"])
    row = (
        outbox_admin.show_outbox(desk.app.factory, int(text))
        if text.isdigit() and len(text) < 13
        else None
    )
    if row is None:
        return desk.error(r, 404, "No such reply.")
    return desk.render(r.request, r.user, "outbox.html", reply=row)


@page("admin", post=True)
def outbox_act(desk: Desk, r: Req) -> Response:
    text, action = str(r.request.path_params["id"]), r.request.path_params["action"]
    if not text.isdigit() or action not in ("retry", "cancel"):
        return desk.error(r, 404, "No such reply or action.")
    why = r.field("why")
    back = f"/outbox/{text}"
    if not why:
        r.session["flash"] = "Not done: why: say why (kept in the event)"
        return RedirectResponse(back, status_code=303)
    fn = outbox_admin.retry if action == "retry" else outbox_admin.cancel
    try:
        fn(desk.app.factory, int(text), by=r.user.name, why=why, now=desk.app.now())
    except InputError as exc:
        r.session["flash"] = f"Not done: {exc}"
        return RedirectResponse(back, status_code=303)
    r.session["flash"] = f"Reply {text}: {action} done"
    return RedirectResponse(back, status_code=303)


# --- rules ------------------------------------------------------------------------------


def _in_force(desk: Desk) -> tuple[str | None, str | None]:
    """The version of the rules the desk decides with, and the problem with the
    configured files (a reload that failed keeps the previous rules in force)."""
    try:
        rules = desk.app.rules
    except MailbotError as exc:
        return None, str(exc)
    problem = desk.app.rules_cache.last_error
    return rules.version, str(problem) if problem else None


def _rules_page(
    desk: Desk, r: Req, name: str = "rules.html", status: int = 200, **ctx: Any
) -> Response:
    version, problem = _in_force(desk)
    with transaction(desk.app.factory) as s:
        # the two columns only: `files` is every rules file of the version
        stored = s.execute(
            select(m.RulesVersion.version, m.RulesVersion.first_used_at).order_by(
                m.RulesVersion.first_used_at.desc(), m.RulesVersion.version
            )
        ).all()
        seen = set(s.scalars(select(m.Claim.campaign_id).distinct()))
    if version is not None:
        seen |= set(desk.app.rules.campaigns)
    form = {"rules": str(desk.app.rules_dir), "since": "", "campaign": "", "reread": False}
    return desk.render(
        r.request,
        r.user,
        name,
        status,
        in_force=version,
        rules_problem=problem,
        rules_dir=str(desk.app.rules_dir),
        versions=[{"version": v, "first_used_at": at} for v, at in stored],
        campaigns=sorted(seen),
        form=form | ctx.pop("form", {}),
        **ctx,
    )


@page("viewer")
def rules_page(desk: Desk, r: Req) -> Response:
    return _rules_page(desk, r)


@page("viewer")
def rules_version_page(desk: Desk, r: Req) -> Response:
    version = r.path("version").strip()[:64]
    with transaction(desk.app.factory) as s:
        row = s.get(m.RulesVersion, version)
        if row is None:
            return desk.error(
                r,
                404,
                f"No rules version {version} stored "
                "(one is stored when an event first records it).",
            )
        files = dict(row.files)
        first_used = row.first_used_at
    return desk.render(
        r.request,
        r.user,
        "rules_version.html",
        version=version,
        first_used_at=first_used,
        files=sorted(files.items()),
        in_force=_in_force(desk)[0],
    )


def _since(text: str) -> datetime | None:
    if not text:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise InputError(f"since: a date such as 2023-01-31, not {text[:40]!r}") from None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _candidate(text: str) -> RuleSet:
    """The rules in a directory of the server, as the loader reads them (file:line)."""
    directory = Path(text)
    if directory.is_dir() and not (directory / "campaigns").is_dir():
        # the loader reads every *.yaml below the directory: not a walk of /
        raise RulesError("not a rules directory (it has no campaigns/)", path=text)
    return load_ruleset(directory)


@page("admin", post=True)
def rules_replay(desk: Desk, r: Req) -> Response:
    """Candidate rules against the claims holding documents: what would change. Read
    only (`services.replay.replay` rolls its session back)."""
    directory = r.field("rules")[:4096] or str(desk.app.rules_dir)
    since_text, campaign = r.field("since")[:40], r.field("campaign")[:64]
    reread = bool(r.field("reread"))
    form = {"rules": directory, "since": since_text, "campaign": campaign, "reread": reread}
    try:
        since = _since(since_text)
        rules = _candidate(directory)
        if campaign and campaign not in rules.campaigns:
            known = ", ".join(sorted(rules.campaigns)) or "none"
            raise InputError(f"the candidate rules have no campaign {campaign!r} (known: {known})")
    except MailbotError as exc:
        return _rules_page(desk, r, status=400, form=form, error=str(exc))
    reader = None
    if reread:
        from mailbot.services.documents import make_reader

        ocr = desk.app.settings.ocr
        reader = make_reader(lambda: rules, ocr.languages, ocr.timeout_seconds)
    report = replay_svc.replay(
        desk.app.factory,
        rules,
        desk.app.now(),
        since=since,
        campaign=campaign or None,
        reread=reader,
    )
    summary = report.as_dict()
    log.info(
        "web rules replay",
        extra={
            "event": "web.rules_replay",
            "user": r.user.name,
            "rules_version": rules.version,
            "in_force": _in_force(desk)[0],
            "reread": reread,
            "claims": summary["claims"],
            "changed": summary["changed"],
            "not_compared": summary["not_compared"],
        },
    )
    return _rules_page(
        desk, r, "replay.html", form=form, report=report, summary=summary, candidate=rules
    )


# --- the application --------------------------------------------------------------------


def _template_env(templates: Jinja2Templates) -> None:
    env = templates.env
    env.filters["mask"] = mask_email
    env.filters["words"] = lambda code: str(code).replace("_", " ")
    env.filters["when"] = lambda t: t.strftime("%Y-%m-%d %H:%M UTC") if t else "—"
    env.filters["age"] = lambda t, now: queue.human_age(now - t) if t else "—"


async def _headers(  # security headers: no framing, no sniffing, same origin only
    request: Request, call_next: Callable[[Request], Awaitable[Response]]
) -> Response:
    response = await call_next(request)
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("X-Frame-Options", "DENY")
    response.headers.setdefault("Referrer-Policy", "same-origin")
    response.headers.setdefault(
        "Content-Security-Policy",
        "default-src 'self'; img-src 'self' data:; style-src 'self'; "
        "form-action 'self'; frame-ancestors 'none'",
    )
    return response


def routes() -> Sequence[BaseRoute]:
    return [
        Route("/login", login_page, methods=["GET"]),
        Route("/login", login, methods=["POST"]),
        Route("/logout", logout, methods=["POST"]),
        Route("/", home, methods=["GET"]),
        Route("/search", search_page, methods=["GET"]),
        Route("/search", search, methods=["POST"]),
        Route("/claims/{code}", claim_page, methods=["GET"]),
        Route("/claims/{code}/preview/{action}", claim_preview, methods=["POST"]),
        Route("/claims/{code}/do/{action}", claim_do, methods=["POST"]),
        Route("/rmas/{number}", rma_page, methods=["GET"]),
        Route("/rmas/{number}/preview/{action}", rma_preview, methods=["POST"]),
        Route("/rmas/{number}/do/{action}", rma_do, methods=["POST"]),
        Route("/documents/{id}", document_view, methods=["GET"]),
        Route("/documents/{id}/download", document_download, methods=["GET"]),
        Route("/messages/{id}", message_page, methods=["GET"]),
        Route("/messages/{id}/raw", message_raw, methods=["GET"]),
        Route("/messages/{id}/dismiss", message_dismiss, methods=["POST"]),
        Route("/messages/{id}/attach", message_attach, methods=["POST"]),
        Route("/messages/{id}/reprocess", message_reprocess, methods=["POST"]),
        Route("/outbox/{id}", outbox_page, methods=["GET"]),
        Route("/outbox/{id}/{action}", outbox_act, methods=["POST"]),
        Route("/rules", rules_page, methods=["GET"]),
        Route("/rules/versions/{version}", rules_version_page, methods=["GET"]),
        Route("/rules/replay", rules_replay, methods=["POST"]),
        Mount("/static", app=StaticFiles(directory=HERE / "static"), name="static"),
    ]


def create_app(app: App, *, wall_clock: Callable[[], float] = time.time) -> Starlette:
    """The desk for `app`'s settings, database and rules; `wall_clock` (seconds) times
    sessions and the login limit (the business clock `app.now` may be a fixed `--now`)."""
    web = app.settings.web
    templates = Jinja2Templates(directory=str(HERE / "templates"))
    _template_env(templates)
    desk = Desk(
        app=app,
        templates=templates,
        limiter=LoginLimiter(web.login_attempts, web.login_window_minutes * 60, wall_clock),
        wall=wall_clock,
        session_s=web.session_minutes * 60,
    )
    extra: list[BaseRoute] = []
    try:  # the claimants' public status page, when that module is installed
        from mailbot.web import status

        extra = list(status.routes)
    except ImportError:
        pass
    asgi = Starlette(
        routes=[*extra, *routes()],
        middleware=[
            Middleware(
                SessionMiddleware,
                secret_key=secret_key(app.settings),
                session_cookie="mailbot_desk",
                max_age=web.session_minutes * 60,
                same_site="lax",
                https_only=web.secure_cookies,
            ),
            Middleware(BaseHTTPMiddleware, dispatch=_headers),
        ],
    )
    asgi.state.desk = desk
    return asgi
