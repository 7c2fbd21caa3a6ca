"""Dates, amounts and lists written the way each mail language writes them.

Used by the template filters in `mailbot.templating.render` (date, longdate, datetime,
money, join_words); "at" in a date-time is AT_WORD ("kl.", "klo").

Babel is deliberately not a dependency: five languages need month and weekday
names and two number formats, a few small dicts, against a large package (CLDR
data) whose output also changes between releases and would move our golden
texts. If more languages or locales with unusual number systems are added, Babel
becomes the better choice.
"""

from __future__ import annotations

from datetime import date
from decimal import ROUND_HALF_UP, Decimal

# Times are shown in the customer's zone; the context may name one (`timezone`).
DEFAULT_TIMEZONE = {
    "nb": "Europe/Oslo",
    "sv": "Europe/Stockholm",
    "da": "Europe/Copenhagen",
    "fi": "Europe/Helsinki",
    "en": "UTC",
}

_MONTHS = {
    "nb": "januar februar mars april mai juni juli august september oktober november desember",
    "da": "januar februar marts april maj juni juli august september oktober november december",
    "sv": "januari februari mars april maj juni juli augusti september oktober november december",
    "en": "January February March April May June July August September October November December",
}
_WEEKDAYS = {
    "nb": "mandag tirsdag onsdag torsdag fredag lørdag søndag",
    "da": "mandag tirsdag onsdag torsdag fredag lørdag søndag",
    "sv": "måndag tisdag onsdag torsdag fredag lördag söndag",
    "fi": "maanantaina tiistaina keskiviikkona torstaina perjantaina lauantaina sunnuntaina",
    "en": "Monday Tuesday Wednesday Thursday Friday Saturday Sunday",
}
# (decimal mark, thousands separator); currency code after the number in the Nordics.
_NUMBERS = {
    "nb": (",", " "),
    "sv": (",", " "),
    "da": (",", "."),
    "fi": (",", " "),
    "en": (".", ","),
}
_AND = {"nb": "og", "sv": "och", "da": "og", "fi": "ja", "en": "and"}
_OR = {"nb": "eller", "sv": "eller", "da": "eller", "fi": "tai", "en": "or"}
AT_WORD = {"nb": "kl.", "sv": "kl.", "da": "kl.", "fi": "klo", "en": "at"}


def format_date(lang: str, d: date, *, weekday: bool = False) -> str:
    """`3. februar 2023` (nb/da), `3 februari 2023` (sv), `3.2.2023` (fi), `3 February 2023`;
    with weekday: `fredag 3. februar 2023`, `fredagen den 3 februari 2023`, `perjantaina 3.2.2023`.
    """
    if lang == "fi":
        text = f"{d.day}.{d.month}.{d.year}"
    else:
        month = _MONTHS.get(lang, _MONTHS["en"]).split()[d.month - 1]
        dot = "." if lang in ("nb", "da") else ""
        text = f"{d.day}{dot} {month} {d.year}"
    if weekday:
        day = _WEEKDAYS.get(lang, _WEEKDAYS["en"]).split()[d.weekday()]
        # "fredagen den 3 februari" (sv), "fredag den 3. februar" (da): how dates are said
        if lang == "sv":
            day += "en den"
        elif lang == "da":
            day += " den"
        text = f"{day} {text}"
    return text


def format_amount(lang: str, amount: Decimal | int | float | str, currency: str) -> str:
    """`1 620 NOK`, `1 620,50 NOK` (Nordic), `NOK 1,620.50` (en); no decimals when whole."""
    value = Decimal(str(amount)).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)
    point, sep = _NUMBERS.get(lang, _NUMBERS["en"])
    whole, _, cents = f"{abs(value):.2f}".partition(".")
    groups: list[str] = []
    while len(whole) > 3:
        groups.insert(0, whole[-3:])
        whole = whole[:-3]
    groups.insert(0, whole)
    number = ("-" if value < 0 else "") + sep.join(groups)
    if cents != "00":
        number += point + cents
    return f"{currency} {number}" if lang == "en" else f"{number} {currency}"


def join_words(lang: str, items: list[str] | tuple[str, ...], last: str = "and") -> str:
    words = [str(i) for i in items]
    glue = (_OR if last == "or" else _AND).get(lang, "and")
    if len(words) <= 1:
        return "".join(words)
    return f"{', '.join(words[:-1])} {glue} {words[-1]}"
