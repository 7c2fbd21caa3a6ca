"""Mail templates: find them, render them, and prove they all render.

Templates live in `templates/<lang>/<name>.{subject,txt,html}.j2` (jinja2,
StrictUndefined so a missing variable is an error, never an empty hole in a mail
to a customer). For one language the lookup order is

    site override dir (paths.templates_dir) -> campaign (campaigns/<id>/) -> built-in

and when no directory has the template in the requested language the same order
is searched again for English. The customer-facing words for codes (missing
fields, rejection reasons, refused files) live in each language's `_words.j2`, so
translators edit templates only.

Dates and amounts are formatted by `mailbot.templating.langformat` (small dicts, no Babel:
the reasons are there).

An edit to a template file applies to the next mail (jinja2's auto_reload);
`reload_templates` (the daemon's SIGHUP) checks every template, logs the outcome
with the templates' version and, when all render, starts fresh Templates so newly
added override files are found too.
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from functools import lru_cache
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import jinja2
from jinja2 import pass_context
from jinja2.runtime import Context

from mailbot import resources
from mailbot.core.claim_state import ClaimState
from mailbot.core.errors import TemplateError
from mailbot.core.languages import LANGUAGES
from mailbot.core.transition import TEMPLATES
from mailbot.ruleset.loader import ReloadStatus
from mailbot.templating.langformat import (
    AT_WORD,
    DEFAULT_TIMEZONE,
    format_amount,
    format_date,
    join_words,
)
from mailbot.templating.samples import SAMPLE_CONTEXT

log = logging.getLogger(__name__)

__all__ = [
    "LANGUAGES",
    "SAMPLE_CONTEXT",
    "TEMPLATE_NAMES",
    "RenderedMail",
    "Templates",
    "check_templates",
    "format_amount",
    "format_date",
    "join_words",
    "normalize_language",
    "render",
    "templates_for",
]

FALLBACK_LANGUAGE = "en"
WORD_TABLES = ("documents", "fields", "reasons", "refusals", "states")
"""The code -> words tables every language's `_words.j2` holds."""
REQUIRED_WORDS = {"states": tuple(s.value for s in ClaimState)}
"""Codes that need words in every language, English included (the others: what
English has)."""
TEMPLATE_NAMES = TEMPLATES
PARTS = ("subject", "txt", "html")

_SAFE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
_BLANK_RUNS = re.compile(r"\n[ \t]*\n(?:[ \t]*\n)+")


@dataclass(frozen=True)
class RenderedMail:
    subject: str
    text: str
    html: str | None
    language: str
    """The language actually used (the requested one, or "en" when it had no template)."""


# ---------------------------------------------------------------- filters


def _lang(ctx: Context) -> str:
    return str(ctx.get("lang", FALLBACK_LANGUAGE))


def _as_date(value: date | datetime, ctx: Context) -> date:
    if isinstance(value, datetime):
        return _local(value, ctx).date()
    return value


def _local(value: datetime, ctx: Context) -> datetime:
    if value.tzinfo is None:  # treat naive as UTC, as the store does
        value = value.replace(tzinfo=UTC)
    zone = ctx.get("timezone") or DEFAULT_TIMEZONE.get(_lang(ctx), "UTC")
    return value.astimezone(ZoneInfo(str(zone)))


@pass_context
def _f_date(ctx: Context, value: date | datetime) -> str:
    return format_date(_lang(ctx), _as_date(value, ctx))


@pass_context
def _f_longdate(ctx: Context, value: date | datetime) -> str:
    return format_date(_lang(ctx), _as_date(value, ctx), weekday=True)


@pass_context
def _f_datetime(ctx: Context, value: datetime) -> str:
    local = _local(value, ctx)
    lang = _lang(ctx)
    clock = f"{local:%H:%M}" if lang in ("nb", "en") else f"{local:%H.%M}"
    text = f"{format_date(lang, local.date())} {AT_WORD.get(lang, 'at')} {clock}"
    if str(local.tzinfo) == "UTC":  # say so when no local zone was known
        text += " UTC"
    return text


@pass_context
def _f_money(ctx: Context, amount: Decimal | int | float | str, currency: str) -> str:
    return format_amount(_lang(ctx), amount, currency)


def _f_word(code: str, table: Mapping[str, str], fallback: str | None = None) -> str:
    """A code in words from a `_words.j2` table; unknown codes degrade to readable text
    (a rule added before its translation must not stop the mail)."""
    if code in table:
        return str(table[code])
    log.warning("no words for code", extra={"code": code})
    return fallback if fallback is not None else str(code).replace("_", " ")


@pass_context
def _f_join(ctx: Context, items: list[str], last: str = "and") -> str:
    return join_words(_lang(ctx), items, last)


# ---------------------------------------------------------------- lookup

# Codes people and systems write for the languages we have ("no" is what most mail
# clients and CRMs say for Norwegian; Nynorsk readers get Bokmål, not English).
_LANGUAGE_ALIASES = {"no": "nb", "nn": "nb", "nob": "nb", "swe": "sv", "dan": "da", "fin": "fi"}


def normalize_language(code: str | None) -> str:
    """`nb-NO`, `NO`, `sv_SE` -> `nb`, `nb`, `sv`; empty -> English."""
    primary = (code or FALLBACK_LANGUAGE).strip().lower().replace("_", "-").split("-")[0]
    return _LANGUAGE_ALIASES.get(primary, primary) or FALLBACK_LANGUAGE


def _is_html(name: str | None) -> bool:
    return bool(name) and str(name).endswith(".html.j2")


def _environment(site_dir: str | None, campaign_id: str | None, builtin: str) -> jinja2.Environment:
    """One environment per (site dir, campaign): its loader searches, for any name,
    site/campaigns/<id> -> site -> built-in/campaigns/<id> -> built-in."""
    roots: list[Path] = []
    for base in ([Path(site_dir)] if site_dir else []) + [Path(builtin)]:
        if campaign_id:
            roots.append(base / "campaigns" / campaign_id)
        roots.append(base)
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader([str(r) for r in roots]),
        undefined=jinja2.StrictUndefined,
        autoescape=_is_html,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=False,
        auto_reload=True,  # an admin's edit applies to the next mail
    )
    env.filters.update(
        date=_f_date,
        longdate=_f_longdate,
        datetime=_f_datetime,
        money=_f_money,
        join_words=_f_join,
        word=_f_word,
    )
    return env


class Templates:
    """Renders named mails; holds the site override dir (from settings) for lookups."""

    def __init__(self, site_dir: str | Path | None = None, builtin_dir: Path | None = None):
        self.site_dir = str(Path(site_dir).expanduser().resolve()) if site_dir else None
        self.builtin_dir = str(builtin_dir or resources.templates_dir())
        self._envs: dict[str | None, jinja2.Environment] = {}

    def env(self, campaign_id: str | None = None) -> jinja2.Environment:
        # One environment (and its compiled-template cache) per campaign for the life
        # of this object: edits to a template file apply to the next mail, a newly
        # added override file once a new Templates is made (daemon restart).
        if campaign_id is not None and not _SAFE_ID.fullmatch(campaign_id):
            # it becomes a directory name: no "..", no separators
            raise TemplateError(f"campaign id {campaign_id!r} is not a plain name")
        if campaign_id not in self._envs:
            self._envs[campaign_id] = _environment(self.site_dir, campaign_id, self.builtin_dir)
        return self._envs[campaign_id]

    def _find(self, env: jinja2.Environment, name: str, language: str) -> tuple[str, str]:
        if not _SAFE_ID.fullmatch(language):
            language = FALLBACK_LANGUAGE  # a language code is a directory name too
        for lang in dict.fromkeys((language, FALLBACK_LANGUAGE)):
            try:
                env.get_template(f"{lang}/{name}.txt.j2")
                return lang, f"{lang}/{name}"
            except jinja2.TemplateNotFound:
                continue
        raise TemplateError(f"no template {name!r} for language {language!r} or English")

    def render(
        self,
        name: str,
        language: str,
        context: Mapping[str, Any],
        campaign_id: str | None = None,
    ) -> RenderedMail:
        """Subject, text and HTML of one mail; TemplateError names the template and why."""
        env = self.env(campaign_id)
        stem = name
        try:
            lang, stem = self._find(env, name, normalize_language(language))
            if lang != language:
                log.info(
                    "template fallback", extra={"template": name, "asked": language, "used": lang}
                )
            values = {**context, "lang": lang}
            subject = env.get_template(f"{stem}.subject.j2").render(values)
            text = env.get_template(f"{stem}.txt.j2").render(values)
            try:
                html_tpl = env.get_template(f"{stem}.html.j2")
            except jinja2.TemplateNotFound:
                html = None  # a site may ship plain text only
            else:
                html = html_tpl.render(values)
        except jinja2.TemplateNotFound as exc:
            raise TemplateError(f"{stem}: template part missing: {exc.name}") from exc
        except jinja2.UndefinedError as exc:
            raise TemplateError(f"{stem}: {exc.message}") from exc
        except jinja2.TemplateSyntaxError as exc:
            raise TemplateError(f"{exc.filename or stem}:{exc.lineno}: {exc.message}") from exc
        except (TypeError, ValueError, KeyError, AttributeError) as exc:
            raise TemplateError(f"{stem}: {exc.__class__.__name__}: {exc}") from exc
        # A subject is one header line: newlines from the template would break the mail.
        subject = " ".join(subject.split())
        # Optional sections that render empty leave runs of blank lines behind.
        text = _BLANK_RUNS.sub("\n\n", text).strip() + "\n"
        return RenderedMail(subject=subject, text=text, html=html, language=lang)

    def words(self, language: str, campaign_id: str | None = None) -> dict[str, dict[str, str]]:
        """The code -> words tables of one language's `_words.j2` (for checks)."""
        module = self.env(campaign_id).get_template(f"{language}/_words.j2").module
        return {k: dict(getattr(module, k)) for k in WORD_TABLES}


@lru_cache(maxsize=8)
def templates_for(site_dir: str | None) -> Templates:
    """A shared Templates per site dir, so compiled templates are reused across mails."""
    return Templates(site_dir)


def render(
    name: str,
    language: str,
    context: Mapping[str, Any],
    campaign_id: str | None = None,
    *,
    site_dir: str | Path | None = None,
) -> RenderedMail:
    """Module-level shortcut for `Templates(site_dir).render(...)`."""
    site = str(site_dir) if site_dir else None
    return templates_for(site).render(name, language, context, campaign_id)


def templates_version(site_dir: str | Path | None = None) -> str:
    """A short hash of every template file's name and bytes (site override dir, then
    built-in), like the rules version: it says which templates were in force."""
    digest = hashlib.sha256()
    for root in [Path(site_dir)] if site_dir else []:
        for path in sorted(p for p in root.rglob("*.j2") if p.is_file()):
            digest.update(b"site/" + str(path.relative_to(root)).encode() + b"\0")
            digest.update(path.read_bytes())
    builtin = resources.templates_dir()
    for path in sorted(p for p in builtin.rglob("*.j2") if p.is_file()):
        digest.update(str(path.relative_to(builtin)).encode() + b"\0")
        digest.update(path.read_bytes())
    return digest.hexdigest()[:12]


def reload_templates(site_dir: str | None) -> ReloadStatus:
    """Check every template (as `mailbot check` does) and log the outcome.

    All render: the shared Templates are dropped, so the next mail is rendered by a
    fresh one that also sees newly added override files; `templates reloaded` is
    logged with the version. Otherwise `templates reload failed` names the problems
    (file:line for syntax errors) and the current Templates object stays; note that
    an edited existing file is read by the next mail either way (auto_reload).
    """
    now = datetime.now(UTC)
    version = templates_version(site_dir)
    problems = check_templates(site_dir)
    if problems:
        error = "; ".join(problems[:5])
        log.warning(
            "templates reload failed",
            extra={"version": version, "problems": len(problems), "error": error},
        )
        return ReloadStatus(version=version, error=error, failed_at=now)
    templates_for.cache_clear()
    log.info("templates reloaded", extra={"version": version})
    return ReloadStatus(version=version, loaded_at=now)


def _campaigns(root: str | None) -> list[str]:
    if not root or not (Path(root) / "campaigns").is_dir():
        return []
    return sorted(p.name for p in (Path(root) / "campaigns").iterdir() if p.is_dir())


def check_templates(
    site_dir: str | Path | None = None, *, builtin_dir: Path | None = None
) -> list[str]:
    """Render every template in every language (and campaign) with SAMPLE_CONTEXT.

    Returns the problems found, empty when all is well: a missing built-in
    translation, a render error, a code without words in some language (a code
    English has, or a claim state).
    """
    problems: list[str] = []
    templates = Templates(site_dir, builtin_dir=builtin_dir)
    builtin = Path(templates.builtin_dir)
    for lang in LANGUAGES:
        for name in TEMPLATE_NAMES:
            for part in PARTS:
                if not (builtin / lang / f"{name}.{part}.j2").is_file():
                    problems.append(f"built-in {lang}/{name}.{part}.j2 is missing")
    try:
        reference = templates.words(FALLBACK_LANGUAGE)
    except (jinja2.TemplateError, AttributeError):
        reference = {table: {} for table in WORD_TABLES}  # English's own line says why
    for lang in LANGUAGES:
        try:
            words = templates.words(lang)
        except (jinja2.TemplateError, AttributeError) as exc:
            problems.append(f"{lang}/_words.j2: {exc}")
            continue
        for table, codes in reference.items():
            wanted = set(codes) | set(REQUIRED_WORDS.get(table, ()))
            for code in sorted(wanted - set(words[table])):
                problems.append(f"{lang}/_words.j2: {table} has no words for {code!r}")
    campaigns = sorted(set(_campaigns(templates.site_dir)) | set(_campaigns(str(builtin))))
    for campaign in [None, *campaigns]:
        for lang in LANGUAGES:
            for name in TEMPLATE_NAMES:
                try:
                    mail = templates.render(name, lang, SAMPLE_CONTEXT[name], campaign)
                except TemplateError as exc:
                    where = f"campaign {campaign}: " if campaign else ""
                    problems.append(f"{where}{exc}")
                    continue
                if not mail.subject or not mail.text.strip():
                    problems.append(f"{lang}/{name}: empty subject or text")
    return problems
