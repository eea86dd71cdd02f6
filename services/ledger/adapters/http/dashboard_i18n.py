"""The dashboard's languages: Dutch first, English on request (issue 18).

The language is, in this order: the one chosen with the page's switch (``?lang=``, then kept in a
cookie), the browser's ``Accept-Language`` when it prefers English, else Dutch. Texts come from the
gettext catalogues in ``services/ledger/translations`` (the source texts are English; ``make
translations`` extracts, updates and compiles them); dates, amounts and percentages are written in the
page's language. API answers are not translated: their error codes are machine-readable.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path

from babel.dates import format_date, get_month_names
from flask import Flask, request
from flask_babel import Babel, get_locale
from jinja2 import pass_context
from jinja2.runtime import Context
from werkzeug.wrappers import Response

from services.ledger.adapters.http.dashboard_chart import format_eur, percent

LOCALES = ("nl", "en")
DEFAULT_LOCALE = "nl"
LANG_COOKIE = "ido_lang"
LANG_PARAMETER = "lang"
TRANSLATIONS_DIR = Path(__file__).resolve().parents[2] / "translations"


def chosen_locale() -> str:
    asked = request.args.get(LANG_PARAMETER)
    if asked in LOCALES:
        return asked
    kept = request.cookies.get(LANG_COOKIE)
    if kept in LOCALES:
        return kept
    return request.accept_languages.best_match(LOCALES, default=DEFAULT_LOCALE) or DEFAULT_LOCALE


def init_app(app: Flask) -> None:
    app.config.setdefault("BABEL_DEFAULT_LOCALE", DEFAULT_LOCALE)
    app.config["BABEL_TRANSLATION_DIRECTORIES"] = str(TRANSLATIONS_DIR)
    Babel(app, locale_selector=chosen_locale)


def keep_choice(response: Response, cookie_path: str) -> Response:
    """A language chosen with the switch is kept for the next pages (a preference, not a session)."""
    asked = request.args.get(LANG_PARAMETER)
    if asked in LOCALES and request.cookies.get(LANG_COOKIE) != asked:
        response.set_cookie(
            LANG_COOKIE, asked, max_age=365 * 24 * 3600, path=cookie_path, httponly=True,
            secure=request.is_secure, samesite="Lax",
        )
    return response


def page_locale() -> str:
    return str(get_locale() or DEFAULT_LOCALE)


def eur(cents: int) -> str:
    return format_eur(cents, page_locale())


@pass_context
def eur_filter(_context: Context, cents: int) -> str:
    # a filter that takes the context is never folded into the compiled template, so a constant like
    # {{ 123456789|eur }} is written in each page's language, not in the first page's
    return eur(cents)


@pass_context
def day_filter(_context: Context, value: date | str | None) -> str:
    return day(value)


def percent_of(part: int, whole: int) -> str:
    return percent(part, whole, page_locale())


def day(value: date | str | None) -> str:
    """A date as a reader of the page writes it: 15 juli 2025, July 15, 2025."""
    if value is None or value == "":
        return "—"
    moment = date.fromisoformat(value) if isinstance(value, str) else value
    return format_date(moment, "long", locale=page_locale())


def month_names() -> tuple[str, ...]:
    names = get_month_names("abbreviated", locale=page_locale())
    return tuple(str(names[month]) for month in range(1, 13))
