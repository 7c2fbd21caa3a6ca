"""The claimant status page: registration code + email -> the claim's status.

Public (no login) and mounted by the desk's app: `GET /status` shows the form,
`POST /status` answers it. The code and the address travel only in the POST body,
never in a URL. An unknown code and a wrong address get the same page with the
same status code after the same work (`services.status.look_up`); a match shows
the state, what is missing and by when, and when payment comes, in the claim's
language, and nothing the claimant did not type (no name, address or documents).
Before a match the page speaks the language of `?lang=` (the link in the
confirmation mail carries it), else of Accept-Language, else English. The page's
own words are in `status_templates/<lang>/_page_words.j2`; the words for codes
(the claim's state, missing documents and fields) are the mails' (`states`,
`documents`, `fields` in the mail templates' `<lang>/_words.j2`, a site override
first), so the page and the claim_status reply say the same.

Look-ups are limited per client address (`RateLimiter`, in memory, per process);
behind a reverse proxy `[web] trust_proxy` takes the address from X-Forwarded-For.
The form is protected by its own CSRF check, so the page works without the
desk's sessions: a random nonce in an HttpOnly SameSite cookie and, in a hidden
field, a timestamp signed together with that nonce (double submit, signed, so a
cookie planted from a sibling domain is not enough).

The hosting Starlette app provides the composition root (a `mailbot.cli.app.App`:
settings, session factory, rules, clock) as `app.state.desk.app` (the desk's
`create_app` mounts these routes) or, for an app of its own, `app.state.mailbot`.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import jinja2
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import BaseRoute, Route

from mailbot.cli.app import App
from mailbot.core.errors import StoreUnavailable
from mailbot.core.languages import LANGUAGES
from mailbot.services.context import STATUS_PATH
from mailbot.services.status import ClaimStatus, RateLimiter, look_up
from mailbot.store import db
from mailbot.templating.render import normalize_language, templates_for

log = logging.getLogger(__name__)

TEMPLATES_DIR = Path(__file__).resolve().parent / "status_templates"
CSRF_COOKIE = "mailbot_status_csrf"
CSRF_FIELD = "csrf_token"
TOKEN_MAX_AGE_S = 2 * 3600
"""A form older than this is refused (403): the page is reloaded and sent again."""
LOOKUPS_PER_WINDOW = 10
WINDOW_S = 600.0
MAX_BODY_BYTES = 4096
"""The form has four short fields; anything larger is not this form."""

_FILTERS = ("date", "longdate", "money", "word", "join_words")
_HEADERS = {
    # the answer is for the person who typed the code, not for caches or other sites
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; "
        "frame-ancestors 'none'; base-uri 'none'"
    ),
}


def page_language(asked: str | None, accept_language: str | None) -> str:
    """`?lang=` when it names one of our languages, else the best of Accept-Language.

    Hand-written: the header is a comma list of `tag;q=weight`, and the desk needs
    nothing else from a locale library; at most 20 entries are read."""
    if asked:
        lang = normalize_language(asked[:16])
        if lang in LANGUAGES:
            return lang
    ranked: list[tuple[float, int, str]] = []
    for i, part in enumerate((accept_language or "")[:512].split(",")[:20]):
        tag, _, params = part.strip().partition(";")
        q = 1.0
        if params.strip().startswith("q="):
            try:
                q = float(params.strip()[2:])
            except ValueError:
                q = 0.0
        lang = normalize_language(tag.strip()) if tag.strip() not in ("", "*") else ""
        if lang in LANGUAGES and q > 0:
            ranked.append((-q, i, lang))
    return min(ranked)[2] if ranked else "en"


def client_address(request: Request, trust_proxy: bool) -> str:
    """The TCP peer, or behind a trusted proxy the last X-Forwarded-For hop: the one
    the proxy itself added (earlier hops are whatever the client sent)."""
    if trust_proxy:
        forwarded = request.headers.get("x-forwarded-for", "")
        hops = [h.strip() for h in forwarded.split(",") if h.strip()]
        if hops:
            return hops[-1][:64]
    return request.client.host if request.client else "unknown"


@dataclass
class CsrfSigner:
    """Signed double-submit tokens: `<unix time>.<hmac(key, nonce, time)>`."""

    key: bytes
    max_age_s: int = TOKEN_MAX_AGE_S

    def _sig(self, nonce: str, issued: int) -> str:
        msg = f"status-form|{nonce}|{issued}".encode()
        return hmac.new(self.key, msg, hashlib.sha256).hexdigest()

    def issue(self, nonce: str, now: float) -> str:
        issued = int(now)
        return f"{issued}.{self._sig(nonce, issued)}"

    def check(self, token: str, nonce: str | None, now: float) -> bool:
        if not nonce or not token or len(token) > 128:
            return False
        issued_text, _, sig = token.partition(".")
        if not issued_text.isdigit():
            return False
        issued = int(issued_text)
        if not (now - self.max_age_s <= issued <= now + 60):
            return False
        return hmac.compare_digest(sig, self._sig(nonce, issued))


class StatusPage:
    """Per-app state of the page: templates, the limiter and the CSRF key."""

    def __init__(self, app: App, *, monotonic: Callable[[], float] = time.monotonic) -> None:
        self.app = app
        self.monotonic = monotonic
        self.limiter = RateLimiter(LOOKUPS_PER_WINDOW, WINDOW_S)
        web = app.settings.web
        # A key of its own, derived from the desk's when there is one; else random per
        # process (a restart then only asks open forms to be reloaded).
        secret = web.secret_key.encode() if web.secret_key else secrets.token_bytes(32)
        self.csrf = CsrfSigner(hmac.new(secret, b"mailbot status page csrf", "sha256").digest())
        site = str(app.override_templates_dir) if app.override_templates_dir else None
        mail_env = templates_for(site).env()
        assert mail_env.loader is not None
        # the mail templates' loader too: the page reuses their `_words.j2` tables
        self.env = jinja2.Environment(
            loader=jinja2.ChoiceLoader(
                [jinja2.FileSystemLoader(str(TEMPLATES_DIR)), mail_env.loader]
            ),
            undefined=jinja2.StrictUndefined,
            autoescape=True,
            trim_blocks=True,
            lstrip_blocks=True,
            auto_reload=True,
        )
        self.env.filters.update({k: mail_env.filters[k] for k in _FILTERS})

    def render(
        self,
        request: Request,
        template: str,
        lang: str,
        status_code: int = 200,
        *,
        nonce: str | None = None,
        **values: Any,
    ) -> Response:
        nonce = nonce if _plausible_nonce(nonce) else secrets.token_urlsafe(16)
        assert nonce is not None
        ctx = {
            "lang": lang,
            "action": request.scope.get("root_path", "") + STATUS_PATH,
            "csrf_field": CSRF_FIELD,
            "csrf_token": self.csrf.issue(nonce, time.time()),
            **values,
        }
        html = self.env.get_template(f"{template}.html.j2").render(ctx)
        headers = dict(_HEADERS)
        if status_code == 429:
            headers["Retry-After"] = str(int(WINDOW_S))
        response = HTMLResponse(html, status_code=status_code, headers=headers)
        response.set_cookie(
            CSRF_COOKIE,
            nonce,
            max_age=TOKEN_MAX_AGE_S,
            path=request.scope.get("root_path", "") + STATUS_PATH,
            httponly=True,
            secure=self.app.settings.web.secure_cookies,
            samesite="strict",
        )
        return response


def _plausible_nonce(nonce: str | None) -> bool:
    return (
        bool(nonce)
        and len(str(nonce)) <= 64
        and str(nonce).replace("-", "").replace("_", "").isalnum()
    )


def _page(request: Request) -> StatusPage:
    state = request.app.state
    page = getattr(state, "status_page", None)
    if page is None:
        # the desk's app keeps the composition root in its Desk; a bare app sets it
        app = state.desk.app if hasattr(state, "desk") else state.mailbot
        page = StatusPage(app)
        state.status_page = page
    assert isinstance(page, StatusPage)
    return page


def _answer(page: StatusPage, code: str, email: str) -> ClaimStatus | None:
    app = page.app
    now: datetime = app.now()
    with db.transaction(app.factory) as session:
        return look_up(session, code, email, rules=app.rules, settings=app.settings, now=now)


async def status_form(request: Request) -> Response:
    page = _page(request)
    lang = page_language(request.query_params.get("lang"), request.headers.get("accept-language"))
    return page.render(
        request, "form", lang, nonce=request.cookies.get(CSRF_COOKIE), not_found=False
    )


async def status_answer(request: Request) -> Response:
    page = _page(request)
    nonce = request.cookies.get(CSRF_COOKIE)
    client = client_address(request, page.app.settings.web.trust_proxy)
    accept = request.headers.get("accept-language")
    if not page.limiter.allow(client, page.monotonic()):
        log.info("status lookup", extra={"outcome": "rate_limited"})
        lang = page_language(request.query_params.get("lang"), accept)
        return page.render(request, "message", lang, 429, nonce=nonce, kind="limited")
    body = await request.body()
    if len(body) > MAX_BODY_BYTES:
        log.info("status lookup", extra={"outcome": "too_large"})
        lang = page_language(request.query_params.get("lang"), accept)
        return page.render(request, "message", lang, 413, nonce=nonce, kind="forbidden")
    form = await request.form(max_files=0, max_fields=8)
    lang = page_language(str(form.get("lang") or request.query_params.get("lang") or ""), accept)
    if not page.csrf.check(str(form.get(CSRF_FIELD) or ""), nonce, time.time()):
        log.info("status lookup", extra={"outcome": "csrf_refused"})
        return page.render(request, "message", lang, 403, nonce=nonce, kind="forbidden")
    code, email = str(form.get("code") or ""), str(form.get("email") or "")
    try:
        found = await run_in_threadpool(_answer, page, code, email)
    except StoreUnavailable:
        log.warning("status lookup", extra={"outcome": "store_unavailable"})
        return page.render(request, "message", lang, 503, nonce=nonce, kind="unavailable")
    if found is None:
        log.info("status lookup", extra={"outcome": "not_found"})
        return page.render(request, "form", lang, nonce=nonce, not_found=True)
    log.info("status lookup", extra={"outcome": "found", "state": found.state})
    claim_lang = found.language if found.language in LANGUAGES else lang
    return page.render(request, "status", claim_lang, nonce=nonce, claim=found)


routes: list[BaseRoute] = [
    Route(STATUS_PATH, status_form, methods=["GET"], name="status_form"),
    Route(STATUS_PATH, status_answer, methods=["POST"], name="status_answer"),
]
