"""The retailer on a receipt: a known name from the lists, else the business name.

First the campaign's retailers, then the default list (`rules/receipts/
retailers.yaml`), each with aliases, matched on case- and Nordic-letter-folded
text at word boundaries, or fuzzily (rapidfuzz, for OCR slips like "Elkjgp")
for longer names. A name at the head of the receipt is believed more than one
further down; a short name (Power, Inet) further down needs a legal form next
to it, since it is also an ordinary word.

A web domain printed anywhere on the document ("https://www.power.dk/ordre/1",
"power.dk" in a footer) that a default-list retailer owns (`domains:`) names
that retailer: a shop's own address is as good as its name at the head, and
a cropped web-shop screenshot often shows nothing else.

Without a list match, the business name is the head line (or the line by the
VAT number) carrying a legal form (AS, AB, A/S, Oy, GmbH, SIA, SDN BHD...), at
lower confidence; any other head line is below the threshold (abstain).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from rapidfuzz import fuzz, process

from mailbot.core.receipt_fields import FieldValue
from mailbot.ruleset.receipts import ReceiptRules, Retailer
from parsers.receipt.ocrtext import TextLine, fold, word_key

__all__ = ["company_name", "find_retailer"]

SHORT_NAME = 6
"""Names with fewer folded letters than this are also common words."""


SHORT_HEAD = 3
"""A short name counts as the shop's only in the first lines (logo, legal name)."""
_PRICE = re.compile(r"\d[.,]\d{2}\s*(?:[A-Z]{1,3}|kr|€|\$)?\s*$")


@dataclass(frozen=True)
class _Hit:
    name: str
    line: TextLine
    score: float
    rule: str
    evidence: str = ""
    """The lines the name came from, when it was joined from two."""


def _words(text: str) -> str:
    """Folded text with every run of non-alphanumerics as one space, padded."""
    return " " + re.sub(r"[\W_]+", " ", fold(text)).strip() + " "


def _bare(text: str) -> str:
    return " " + re.sub(r"[\W_]+", " ", text).strip() + " "


def _spellings(form: str) -> set[str]:
    # As listed, upper case or title case; never lower case ("as" is a word).
    return {form, form.upper(), " ".join(w[:1].upper() + w[1:].lower() for w in form.split())}


def _legal_name(text: str, rules: ReceiptRules) -> str | None:
    """The business name on the line: up to and including a legal form that ends
    the name (at the line's end or before a separator: "X AG - Street 1"), or the
    whole line when it starts with a form printed first (SIA "Name")."""
    first_word = _WORD_CHAR.search(text)
    if first_word is None:
        return None
    for form in rules.legal_forms:
        for spelling in _spellings(form):
            # The form's first occurrence after some word character that ends the
            # name. Searched occurrence by occurrence with a lookahead for what must
            # follow: the single pattern `^(.*?\w.*?FORM)...` backtracked
            # quadratically and took seconds on one long line.
            pattern = _ending_form(spelling)
            found = pattern.search(text, first_word.end())
            if found is None:
                continue
            end = found.end()
            dot = not spelling.endswith(".") and text[end : end + 1] == "."
            return text[:end] + ("." if dot else "")
    for form in rules.legal_forms_first:
        for spelling in _spellings(form):
            if re.match(rf"{re.escape(spelling)}\s+\S", text):
                # SIA "Name" = PVN ...: the name ends with its closing quote.
                quoted = re.match(rf"{re.escape(spelling)}\s+[\"“”„«]([^\"“”„»]+)[\"“”»]", text)
                return f'{spelling} "{quoted.group(1)}"' if quoted else text
    return None


_WORD_CHAR = re.compile(r"\w")


@functools.lru_cache(maxsize=1024)
def _ending_form(spelling: str) -> re.Pattern[str]:
    """`spelling` as a whole word that ends a name: then the line's end, a
    separator or "(reg.no)" (an optional dot of its own in between)."""
    return re.compile(
        rf"(?<![\w.]){re.escape(spelling)}(?![\w])(?=\.?(?:\s*$|\s+[-–|,]\s|,\s|\s+\())"
    )


def company_name(text: str, rules: ReceiptRules) -> str | None:
    """The company name on the line, when it ends in (or starts with) a legal form
    and looks like a printed name, not OCR debris; else None."""
    name = _legal_name(text, rules)
    if name is None:
        return None
    name = _clean_name(_without_title(name, rules))
    letters = sum(ch.isalpha() for ch in name)
    if letters < 3 or letters < len(name) * 0.5 or not _plausible_name(name, rules):
        return None
    return name


def _has_legal_form(text: str, rules: ReceiptRules) -> bool:
    return _legal_name(text, rules) is not None


_JUNK = re.compile(r"[¥©®§¢¤|~{}<>»«£€$%*=_\\]")


def _plausible_name(text: str, rules: ReceiptRules) -> bool:
    """A business name as printed, not OCR debris: no junk characters, brackets
    and quotes that pair up, and a real word besides the legal form."""
    if _JUNK.search(text) or text.count("(") != text.count(")"):
        return False
    if text.count('"') % 2:
        return False
    forms = {f.casefold() for f in (*rules.legal_forms, *rules.legal_forms_first)}
    words = [w for w in re.findall(r"[^\W\d_]+", text) if w.casefold() not in forms]
    # A short name ("BVP") has no redundancy: one misread letter is another shop.
    if not any(len(w) >= 3 for w in words) or sum(map(len, words)) < 4:
        return False
    # A lone letter ("FUYI MI T") is a word OCR broke; initials carry dots (D.I.Y.).
    # The legal form is left out of this check: "S/B" (Sdn. Bhd.) is two lone letters.
    if re.search(r"(?<![\w.&('’-])[^\W\d_](?![\w.&'’)])", _without_forms(text, rules)):
        return False
    # Letters and digits run together ("O.1.Y", "5ON") are OCR slips in a name.
    if re.search(r"[^\W\d_]\d|\d[^\W\d_]", text):
        return False
    return _speakable(_without_forms(text, rules))


VOWELS = frozenset("aeiouyæøåäöüéèáàíóú")
VOWEL_SHARE = (0.15, 0.8)
"""A printed name's letters are vowels in about this share (Nordic, Finnish and
Malay shop names included: 0.17 "MR DIY" to 0.75 "Aanitaio"); outside it, as in
"EEE EEE" or "PEE IE", OCR made letters of a stamp, a logo or a smudge."""


def _speakable(text: str) -> bool:
    """Whether the letters could be a name: some variety, vowels in a usual share,
    no word of one letter repeated ("EEE")."""
    letters = [ch for ch in text.casefold() if ch.isalpha()]
    if not letters:
        return True  # a name of its legal form alone is judged elsewhere
    if len(set(letters)) < 3:
        return False
    share = sum(ch in VOWELS for ch in letters) / len(letters)
    if not VOWEL_SHARE[0] <= share < VOWEL_SHARE[1]:
        return False
    words = re.findall(r"[^\W\d_]{3,}", text.casefold())
    return not any(len(set(w)) == 1 for w in words)


def _without_forms(text: str, rules: ReceiptRules) -> str:
    """The text with its legal-form words (as printed, any case) blanked out."""
    for form in sorted({*rules.legal_forms, *rules.legal_forms_first}, key=len, reverse=True):
        text = re.sub(rf"(?<![\w/]){re.escape(form)}(?![\w/])", " ", text, flags=re.IGNORECASE)
    return text


def _runs(have: str, longest: int) -> set[str]:
    """Consecutive words of the line joined without spaces ("Net On Net" ->
    "netonnet"), so a match always starts and ends at a word boundary."""
    words = have.split()
    out = set()
    for i in range(len(words)):
        joined = ""
        for word in words[i:]:
            joined += word
            if len(joined) > longest + 3:
                break
            out.add(joined)
    return out


def _match(want: str, have: str, runs: set[str], fuzzy_min: float) -> tuple[bool, float] | None:
    """(exact?, score 0..100) when the spelling `want` is on the line `have` (both `_words`)."""
    if want.strip() and want in have:
        return True, 100.0
    compact_want = want.replace(" ", "")
    if len(compact_want) >= SHORT_NAME:
        if compact_want in runs:
            return True, 95.0
        near = process.extractOne(compact_want, runs, scorer=fuzz.ratio, score_cutoff=fuzzy_min)
        if near is not None:
            return False, float(near[1])
    return None


def _list_hits(
    lines: Sequence[TextLine], retailers: Sequence[Retailer], rules: ReceiptRules, bonus: float
) -> list[_Hit]:
    hits: list[_Hit] = []
    spellings = [
        (r.name, _words(s), len(re.sub(r"\W", "", fold(s))) < SHORT_NAME)
        for r in retailers
        for s in (r.name, *r.aliases)
    ]
    longest = max((len(w) for _, w, _ in spellings), default=0)
    for line in lines:
        # An item line (ending in a price) is never the shop's name line.
        priced = bool(_PRICE.search(line.text))
        head = line.index < rules.head_lines and not priced
        have = _words(line.text)
        runs = _runs(have, longest)
        best: dict[str, _Hit] = {}
        for name, want, short in spellings:
            m = _match(want, have, runs, rules.fuzzy_retailer)
            if m is None:
                continue
            exact = m[0]
            if head and (not short or line.index < SHORT_HEAD):
                score = 0.9 if exact else 0.75
            elif exact and (not short or _has_legal_form(line.text, rules)):
                score = 0.75
            elif exact and have.strip() == want.strip():
                # The name alone on its line is the logo line, also where a later
                # OCR pass put the receipt's head further down the text.
                score = 0.75
            else:
                score = 0.45
            kind = "exact" if exact else "fuzzy"
            where = "head" if head else "body"
            hit = _Hit(name, line, score + bonus, f"retailer:list:{kind}:{where}")
            if name not in best or hit.score > best[name].score:
                best[name] = hit
        hits.extend(best.values())
    return hits


DOMAIN_HEAD = 0.9
"""A listed domain in the head lines (an address bar): as a listed name there."""
DOMAIN_BODY = 0.85
"""Elsewhere (a footer, an order-confirmation link): still the shop's own address."""

# A host name as printed: after a scheme, "www." or a word boundary (never after
# "@": an e-mail address may be anyone's), before a path, a port or the end.
_HOST = re.compile(
    r"(?<![\w@.\-])(?:https?://)?(?:www\.)?"
    r"(?P<host>(?:[a-z0-9](?:[a-z0-9\-]{0,61}[a-z0-9])?\.)+[a-z]{2,63})(?![\w\-@])",
    re.IGNORECASE,
)


def _domain_hits(lines: Sequence[TextLine], rules: ReceiptRules) -> list[_Hit]:
    owners = dict(rules.retailer_domains)
    if not owners:
        return []
    hits: list[_Hit] = []
    for line in lines:
        for m in _HOST.finditer(line.text):
            host = m.group("host").lower()
            # shop.power.dk is Power's too; the longest listed suffix wins
            labels = host.split(".")
            name = next(
                (
                    owners[d]
                    for d in (".".join(labels[i:]) for i in range(len(labels) - 1))
                    if d in owners
                ),
                None,
            )
            if name is None:
                continue
            head = line.index < rules.head_lines
            score = DOMAIN_HEAD if head else DOMAIN_BODY
            where = "head" if head else "body"
            hits.append(_Hit(name, line, score, f"retailer:domain:{where}"))
    return hits


def _clean_name(text: str) -> str:
    """OCR edge noise off, typographic quotes as plain ones; a quote that pairs
    with one inside the name stays (SIA "Name")."""
    name = re.sub(r"\s+", " ", re.sub(r"[“”„«»]", '"', text)).strip(" .,:;|_-*'‘’")
    while len(name) > 1 and name.count('"') % 2 and '"' in (name[0], name[-1]):
        name = name[1:] if name.startswith('"') else name[:-1]
        name = name.strip(" .,:;|_-*'‘’")
    if re.search(r"(?<!\w)(?:\w\.)+\w$", name) and text.rstrip().endswith("."):
        name += "."  # the dot of an abbreviation (B.V., S.A.) is part of the name
    return name.strip()


def _heuristic(lines: Sequence[TextLine], rules: ReceiptRules, vat_line: int | None) -> _Hit | None:
    near_vat: set[int] = set()
    # By the seller's number as every OCR pass read it: the pass that read the
    # number best need not have read the name best.
    for shown in _showing_number(lines, vat_line) if vat_line is not None else ():
        near_vat |= {shown - 2, shown - 1, shown, shown + 1}
    for line in lines:
        if line.row >= rules.head_lines and line.index not in near_vat:
            continue
        name = _legal_name(line.text, rules)
        evidence = line.text
        if line.row and _only_legal_form(line.text, rules):
            # "Sdn Bhd" alone under "Nando's Chickenland Malaysia": a name
            # broken before its legal form.
            upper = lines[line.index - 1]
            name = None
            if _caps_name(upper.text, rules):
                name = f"{_clean_name(upper.text)} {_clean_name(line.text)}"
                evidence = f"{upper.text} / {line.text}"
        if name is not None:
            name = _without_title(name, rules)
            letters = sum(ch.isalpha() for ch in name)
            if letters < 3 or letters < len(name) * 0.5:
                continue
        if name is not None and _plausible_name(name, rules):
            above = lines[line.index - 1] if line.index and line.row else None
            if above is not None and _wrapped(name, above.text, rules):
                # "LIAN CHI PU TIAN VEGETARIAN" / "RESTAURANT SDN BHD": one
                # word before the form is the tail of a name wrapped at the margin.
                name = f"{_clean_name(above.text)} {name}"
                evidence = f"{above.text} / {line.text}"
            return _Hit(_clean_name(name), line, 0.7, "retailer:legal-form", evidence)
    # A name line right above a company registration number "(123456-X)".
    for line in lines[: rules.head_lines]:
        nxt = line.index + 1
        if nxt < len(lines) and _REGISTRATION.match(lines[nxt].text) and _name_like(line.text):
            name, evidence = _clean_name(line.text), line.text
            if _only_legal_form(name, rules):
                # "SDN BHD" alone: the end of a name broken over two lines.
                above = lines[line.index - 1] if line.row else None
                if above is None or not _caps_name(above.text, rules):
                    continue
                name = f"{_clean_name(above.text)} {name}"
                evidence = f"{above.text} / {line.text}"
            return _Hit(name, line, 0.65, "retailer:above-registration", evidence)
    if vat_line is not None and _seller_quoted(lines, vat_line, rules):
        # The seller's legal name stands in quotes by its VAT number (SIA "X"
        # PVN ...) and was not readable: a name at the head is then the shop's
        # brand, not the seller the proof of purchase must name.
        return None
    return _head_block(lines, rules)


_QUOTED = re.compile(r"[\"“”„«][^\W\d_][^\"“”„»]{1,40}[\"“”»']")


def _showing_number(lines: Sequence[TextLine], vat_line: int) -> list[int]:
    """The lines showing the number on line `vat_line` (its last eight digits), in
    every OCR pass; at least that line."""
    runs = re.findall(r"\d{8,}", re.sub(r"[\s.\-]", "", lines[vat_line].text))
    number = max(runs, key=len)[-8:] if runs else None
    found = [ln.index for ln in lines if number and number in re.sub(r"\D", "", ln.text)]
    return found or [vat_line]


def _seller_quoted(lines: Sequence[TextLine], vat_line: int, rules: ReceiptRules) -> bool:
    """Whether a line showing the seller's number (in any OCR pass) names the seller
    in quotes, or opens a quote after a legal form printed first (SIA "KONGS PVN ...:
    OCR lost the closing quote)."""
    showing = [lines[i] for i in _showing_number(lines, vat_line)]
    forms = "|".join(re.escape(f) for f in rules.legal_forms_first)
    opened = re.compile(rf"^\W*(?:{forms})\s+[\"“”„«][^\W\d_]", re.IGNORECASE) if forms else None
    return any(
        _QUOTED.search(ln.text) or (opened is not None and opened.match(ln.text)) for ln in showing
    )


def _head_block(lines: Sequence[TextLine], rules: ReceiptRules) -> _Hit | None:
    """The shop's name as receipts print it first: the first real line at the
    top of a page (or of an OCR pass over it), in capitals or title case and
    without digits, right above the shop's details (address, registration or
    phone number: a line with digits). A name broken over two lines is joined
    when the second holds only its legal form ("SDN BHD") or the first ends in
    "&". Lines OCR made of a stamp, a handwritten note (lower case) or a logo
    (under three letters) are skipped; any other line first means abstain."""
    for block in sorted({ln.block for ln in lines}):
        head = [ln for ln in lines if ln.block == block and ln.row < rules.head_lines]
        logo = False
        for i, line in enumerate(head):
            if _skippable(line.text):
                continue
            if not logo and len(line.text.split()) == 1:
                if _spaces_lost(line.text):
                    # "RESTAURANTJIAWEI" over "JIAWEI HOUSE": the first line of
                    # the name, its spaces lost (RapidOCR), not a logo; the line
                    # under it is only the name's end, so abstain.
                    break
                logo = True  # one word over the name: a logo as OCR read it
                continue
            if not _caps_name(line.text, rules):
                break
            name, last, evidence = _clean_name(line.text), i, line.text
            nxt = head[i + 1] if i + 1 < len(head) else None
            if nxt is not None and (
                _only_legal_form(nxt.text, rules)
                or (re.search(r"(&|\bAND)$", name) and _caps_name(nxt.text, rules, min_words=1))
            ):
                name, last = f"{name} {_clean_name(nxt.text)}", i + 1
                evidence = f"{line.text} / {nxt.text}"
            after = head[last + 1] if last + 1 < len(head) else None
            if after is not None and last == i and _caps_name(after.text, rules):
                if _shared_word(name, after.text):
                    # "RESTAURANT JIAWEI" / "JIAWEI HOUSE": one name over two
                    # lines, not a tagline; where it ends is not clear.
                    break
                # A tagline under the name ("THREE STOOGES" / "BISTRO & CAFE").
                after = head[last + 2] if last + 2 < len(head) else None
            if after is not None and len(re.findall(r"\d", after.text)) >= 2:
                return _Hit(name, line, 0.62, "retailer:head-block", evidence)
            break
    return None


SPACES_LOST = 12
"""Capital letters in one word from which it is words run together ("RESTAURANTJIAWEI",
"MEDANNIAGADAMAI": RapidOCR drops the spaces of wide print), not a shop's logo."""


def _shared_word(one: str, other: str) -> bool:
    """Whether the two lines have a word of three letters or more in common."""
    words = {w.casefold() for w in re.findall(r"[^\W\d_]{3,}", one)}
    return any(w.casefold() in words for w in re.findall(r"[^\W\d_]{3,}", other))


def _spaces_lost(text: str) -> bool:
    word = _clean_name(text)
    return word.isupper() and sum(ch.isalpha() for ch in word) >= SPACES_LOST


def _without_title(name: str, rules: ReceiptRules) -> str:
    """ "FACTUUR. Coolblue B.V.": the document's title printed before the name."""
    m = re.match(r"(\w+)[.:]\s+(?=\S)", name)
    title = m is not None and any(p.fullmatch(fold(m.group(1))) for p in rules.document_titles)
    if m is not None and title and m.end() < len(name):
        return name[m.end() :]
    return name


def _doubted(hit: _Hit, lines: Sequence[TextLine], doubts: Mapping[str, frozenset[str]]) -> bool:
    """Whether OCR was unsure of a word of the name on the lines it came from
    (a name may join its line with the one above or below), or, in another
    pass's reading of the same printed line, of a word like one of the name's
    ('"NMIGLA' at 0.10 where this pass read '"HICLA' with confidence: the
    print is hard to read there, whichever pass is believed)."""
    if not doubts:
        return False
    near = lines[max(0, hit.line.index - 1) : hit.line.index + 2]
    unsure = set().union(*(doubts.get(word_key(ln.text), frozenset()) for ln in near))
    keys = [word_key(w) for w in hit.name.split() if word_key(w)]
    if any(k in unsure for k in keys):
        return True
    others = [ln for ln in lines if ln.block != hit.line.block]
    twin = process.extractOne(hit.line.text, [ln.text for ln in others], scorer=fuzz.ratio)
    if twin is None or twin[1] < SAME_LINE:
        return False
    unsure_there = doubts.get(word_key(twin[0]), frozenset())
    return any(fuzz.ratio(k, u) >= SIMILAR_WORD for k in keys for u in unsure_there)


SAME_LINE = 70
"""rapidfuzz ratio from which lines of two OCR passes are readings of one printed line."""
SIMILAR_WORD = 50
"""rapidfuzz ratio from which two words are readings of one printed word."""


def _wrapped(name: str, above: str, rules: ReceiptRules) -> bool:
    rest = _without_forms(name, rules)
    return len(rest.split()) == 1 and _caps_name(above, rules) and name.isupper() == above.isupper()


def _skippable(text: str) -> bool:
    """Not print that could be the name: debris, a stamp number, a note by hand."""
    letters = re.findall(r"[^\W\d_]", text)
    return len(letters) < 3 or text == text.lower() or not re.search(r"[^\W\d_]{3}", text)


def _caps_name(text: str, rules: ReceiptRules, min_words: int = 2) -> bool:
    """A name as printed at a receipt's head: two or more words, each in
    capitals or title case, no digits, no receipt words (TAX INVOICE, TOTAL)."""
    text = _clean_name(text)
    if re.search(r"\d", text) or any(p.search(text.casefold()) for p in rules.receipt_signals):
        return False
    if re.search(r"[^\w\s&.'()/,-]", text):
        return False  # "RES!AURANT": a letter OCR could not read
    words = re.findall(r"[^\W\d_][\w'.]*", text)
    if len(words) < min_words or not _plausible_name(text, rules):
        return False
    if sum(len(w.rstrip(".")) < 3 for w in words) > 1:
        return False  # "SAA. GL AL LID": fragments OCR made of a smudged line
    return all(w.isupper() or (w[0].isupper() and w[1:].islower()) for w in words)


def _only_legal_form(text: str, rules: ReceiptRules) -> bool:
    forms = {f.casefold() for f in rules.legal_forms}
    rest = re.sub(r"\s+", " ", _clean_name(text).casefold())
    return rest in forms or rest.replace(".", "") in {f.replace(".", "") for f in forms}


_REGISTRATION = re.compile(r"^\W*\(\s*[A-Z]{0,3}\d{4,}[\d-]*-?\s*[A-Z]?\s*\)\W*$")


def _name_like(text: str) -> bool:
    """Letters and spaces (and & . ' -) only, a few words, no OCR debris."""
    if not re.fullmatch(r"[^\W\d_][\w&.'\- ]*[\w.]", text) or re.search(r"\d", text):
        return False
    words = re.findall(r"[^\W\d_]+", text)
    return sum(len(w) >= 3 for w in words) >= 1 and sum(len(w) <= 1 for w in words) == 0


def find_retailer(
    lines: Sequence[TextLine],
    rules: ReceiptRules,
    retailers: Sequence[Retailer] = (),
    vat_line: int | None = None,
    doubts: Mapping[str, frozenset[str]] | None = None,
) -> FieldValue | None:
    """The retailer: best list match (campaign list first), else the business
    name, unless OCR was unsure of one of its words (`doubts`, per line)."""
    hits = (
        _list_hits(lines, retailers, rules, 0.02)
        + _list_hits(lines, rules.retailers, rules, 0.0)
        + _domain_hits(lines, rules)
    )
    if hits:
        # Best score; on a tie the one higher up the page.
        best = sorted(hits, key=lambda h: (-h.score, h.line.index))[0]
        rivals = {h.name for h in hits if h.score >= best.score - 0.05 and h.name != best.name}
        conf = best.score - (0.2 if rivals else 0.0)
        if conf >= rules.threshold("retailer"):
            return FieldValue(best.name, round(min(conf, 0.99), 3), best.line.text, best.rule)
    guess = _heuristic(lines, rules, vat_line)
    if (
        guess is None
        or _doubted(guess, lines, doubts or {})
        or _read_otherwise(guess, lines, rules)
    ):
        return None
    return FieldValue(guess.name, guess.score, guess.evidence or guess.line.text, guess.rule)


READ_ALIKE = (55, 90)
"""rapidfuzz ratios between which two lines are readings of one name that disagree
(over 90 they agree; under 55 they are different lines, a brand over a company)."""


def _read_otherwise(hit: _Hit, lines: Sequence[TextLine], rules: ReceiptRules) -> bool:
    """Whether the page's head shows the legal-form name again, read differently:
    "FYNSHIFT" at the top, "Fyes Hin AS" in the footer. One of the two readings
    holds an OCR slip and nothing tells which. Measured on hard holdout seeds 6
    and 7: six of eight misread names abstain so, and no name read right; a brand
    over its company's longer name ("LYDHUSET" / "Lydhuset Aarhus ApS") is one
    reading contained in the other (partial ratio), not a disagreement."""
    if hit.rule != "retailer:legal-form":
        return False
    core = fold(_without_forms(hit.name, rules)).strip()
    heads = [
        fold(ln.text)
        for ln in lines
        if ln.block == hit.line.block
        and ln.row < 3
        and ln.index != hit.line.index
        and not _skippable(ln.text)
        and sum(ch.isalpha() for ch in ln.text) >= 3
    ]
    if not core or not heads:
        return False
    ratios = [(fuzz.ratio(core, h), fuzz.partial_ratio(core, h)) for h in heads]
    if any(r >= READ_ALIKE[1] or part >= READ_ALIKE[1] for r, part in ratios):
        return False
    return any(READ_ALIKE[0] <= r for r, _ in ratios)
