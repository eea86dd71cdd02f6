"""Dutch first (issue 18, Must show 1): every page in Dutch by default and in English on request, the
catalogue complete and compiled, no text left outside it, dates and amounts written in each language, and
the API's machine-readable error codes untouched."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path

import pytest
from babel.messages.extract import extract_from_dir
from babel.messages.mofile import read_mo
from babel.messages.pofile import read_po
from flask import Flask
from flask.testing import FlaskClient

from services.ledger.adapters.http.dashboard_i18n import LANG_COOKIE, TRANSLATIONS_DIR
from tests.operators.test_dashboard_access import sign_in
from tests.support.tokens import TokenFactory

REPO = Path(__file__).resolve().parents[2]
TEMPLATES = REPO / "services" / "ledger" / "templates" / "dashboard"
PO = TRANSLATIONS_DIR / "nl" / "LC_MESSAGES" / "messages.po"
MO = PO.with_suffix(".mo")
SAME_IN_BOTH = {"Nederlands", "English", "KB", "SPUK IDO", "IDO", "XLSX", "CSV"}
"""Texts that are the same in Dutch and English on purpose: the languages' own names, and names."""
PLACEHOLDER = re.compile(r"%\((\w+)\)[sd]")
JINJA = re.compile(r"\{\{.*?\}\}|\{%.*?%\}|\{#.*?#\}", re.DOTALL)


class _Text(HTMLParser):
    """The texts a reader sees, outside elements marked translate="no" (names, codes, identifiers)."""

    VOID = {"meta", "link", "input", "br", "img", "hr", "line", "rect", "circle", "path"}

    def __init__(self) -> None:
        super().__init__()
        self.stack: list[bool] = []
        self.texts: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        for name in ("aria-label", "title", "alt", "placeholder"):
            if found.get(name) and not (self.stack and self.stack[-1]):
                self.texts.append(str(found[name]))
        if tag not in self.VOID:
            hidden = (self.stack[-1] if self.stack else False) or found.get("translate") == "no" or tag == "code"
            self.stack.append(hidden)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        if found.get("aria-label") and not (self.stack and self.stack[-1]):
            self.texts.append(str(found["aria-label"]))

    def handle_endtag(self, tag: str) -> None:
        if tag not in self.VOID and self.stack:
            self.stack.pop()

    def handle_data(self, data: str) -> None:
        text = " ".join(data.split())
        if text and not (self.stack and self.stack[-1]):
            self.texts.append(text)


def visible_texts(html: str) -> list[str]:
    parser = _Text()
    parser.feed(html)
    return [text for text in parser.texts if re.search(r"[A-Za-z]{2,}", text)]


def test_no_template_has_text_outside_the_catalogue() -> None:
    # every literal text of a template (what is left without its {{ }} and {% %}) is a language's own
    # name, a name marked translate="no", or punctuation: the rest goes through _()
    found = {}
    for template in sorted(TEMPLATES.glob("*.html")):
        literal = JINJA.sub(" ", template.read_text(encoding="utf-8"))
        left = [text for text in visible_texts(literal) if text not in SAME_IN_BOTH]
        if left:
            found[template.name] = left
    assert found == {}


def _catalogue_ids() -> set[str]:
    mapping = [
        ("services/ledger/adapters/http/dashboard.py", "python"),
        ("services/ledger/adapters/http/dashboard_*.py", "python"),
        ("services/ledger/templates/**.html", "jinja2"),
    ]
    keywords = {"_": None, "gettext": None, "ngettext": (1, 2), "lazy_gettext": None}
    ids = set()
    for _file, _line, message, _comments, _context in extract_from_dir(
        str(REPO), method_map=mapping, keywords=keywords,
        options_map={"services/ledger/templates/**.html": {"silent": "false"}},  # a broken template fails
    ):
        ids.add(message if isinstance(message, str) else message[0])
    return ids


def test_the_dutch_catalogue_has_every_text_translated_and_compiled() -> None:
    with PO.open("rb") as po_file:
        catalogue = read_po(po_file, locale="nl")
    translated = {m.id if isinstance(m.id, str) else m.id[0]: m for m in catalogue if m.id}
    in_code = _catalogue_ids()
    assert in_code, "no texts found in the code"
    assert sorted(in_code - set(translated)) == [], "texts in the code but not in messages.po: make translations"
    for text, message in translated.items():
        strings = [message.string] if isinstance(message.string, str) else list(message.string)
        assert all(strings) and not message.fuzzy, f"untranslated or fuzzy in messages.po: {text!r}"
        ids = [message.id] if isinstance(message.id, str) else list(message.id)
        for string in strings:
            assert set(PLACEHOLDER.findall(string)) == set(PLACEHOLDER.findall(ids[0])), text
    with MO.open("rb") as mo_file:
        compiled = read_mo(mo_file)
    def strings(message: object) -> tuple[str, ...]:
        found = message.string  # type: ignore[attr-defined]
        return (found,) if isinstance(found, str) else tuple(found)

    compiled_strings = {m.id if isinstance(m.id, str) else m.id[0]: strings(m) for m in compiled if m.id}
    assert compiled_strings == {text: strings(m) for text, m in translated.items()}, "messages.mo is stale"


def _pages(client: FlaskClient, tokens: TokenFactory, language: str) -> dict[str, str]:
    headers = {"Accept-Language": "en-GB,en;q=0.9"} if language == "en" else {"Accept-Language": "nl-NL"}
    pages = {"login": client.get("/dashboard/login", headers=headers).get_data(as_text=True)}
    pages["401"] = client.get("/dashboard/national/2024", headers=headers).get_data(as_text=True)
    for role, code in (("auditor", None), ("municipality", "GM0363"), ("kb", None)):
        sign_in(client, tokens.token(role, code) if code else tokens.token(role))
        for path in ("/dashboard/", "/dashboard/national/2024", "/dashboard/municipalities/GM0363/2024",
                     "/dashboard/national/1900", "/dashboard/national/2024?as_of=yesterday"):
            pages[f"{role} {path}"] = client.get(path, headers=headers).get_data(as_text=True)
    return pages


def test_every_page_is_dutch_by_default_and_english_on_request(dashboard_app: Flask, tokens: TokenFactory) -> None:
    dutch = _pages(dashboard_app.test_client(), tokens, "nl")
    english = _pages(dashboard_app.test_client(), tokens, "en")
    assert dutch.keys() == english.keys()
    untranslated = {}
    for name in dutch:
        assert '<html lang="nl">' in dutch[name] and '<html lang="en">' in english[name], name
        same = set(visible_texts(dutch[name])) & set(visible_texts(english[name])) - SAME_IN_BOTH
        if same:
            untranslated[name] = sorted(same)
    assert untranslated == {}
    national = dutch["auditor /dashboard/national/2024"]
    assert "Landelijk overzicht · 2024" in national and "15 juli 2025" in national and "€ 1.234.567,89" in national
    national_en = english["auditor /dashboard/national/2024"]
    assert "National view · 2024" in national_en and "July 15, 2025" in national_en and "€1,234,567.89" in national_en
    assert "Deze pagina bestaat niet." in dutch["auditor /dashboard/national/1900"]
    assert "U mag deze boeken niet inzien." in dutch["kb /dashboard/national/2024"]


@pytest.mark.parametrize(
    ("accept_language", "expected"),
    [(None, "nl"), ("nl-NL,nl;q=0.9", "nl"), ("en-US,en;q=0.9", "en"), ("de-DE,de;q=0.9", "nl"),
     ("de-DE, en;q=0.5, nl;q=0.4", "en"), ("fr, nl;q=0.8, en;q=0.5", "nl")],
)
def test_the_browsers_language_chooses_dutch_or_english(
    client: FlaskClient, accept_language: str | None, expected: str
) -> None:
    answer = client.get("/dashboard/login", headers={"Accept-Language": accept_language} if accept_language else {})
    assert f'<html lang="{expected}">' in answer.get_data(as_text=True)
    assert answer.headers["Content-Language"] == expected and "Accept-Language" in answer.headers["Vary"]


def test_the_switch_is_kept_and_beats_the_browsers_language(client: FlaskClient) -> None:
    switched = client.get("/dashboard/login?lang=en", headers={"Accept-Language": "nl"})
    assert '<html lang="en">' in switched.get_data(as_text=True)
    cookie = switched.headers["Set-Cookie"]
    assert f"{LANG_COOKIE}=en" in cookie and "Path=/dashboard" in cookie and "HttpOnly" in cookie
    later = client.get("/dashboard/login", headers={"Accept-Language": "nl"})
    assert '<html lang="en">' in later.get_data(as_text=True) and "Set-Cookie" not in later.headers
    back = client.get("/dashboard/login?lang=nl", headers={"Accept-Language": "en"})
    assert '<html lang="nl">' in back.get_data(as_text=True) and f"{LANG_COOKIE}=nl" in back.headers["Set-Cookie"]
    ignored = client.get("/dashboard/login?lang=xx", headers={"Accept-Language": "en"})
    assert '<html lang="nl">' in ignored.get_data(as_text=True)  # the kept choice, not an unknown one


def test_api_errors_keep_their_machine_readable_codes_whatever_the_language(client: FlaskClient) -> None:
    answer = client.get("/v1/balances/2024", headers={"Accept-Language": "nl-NL"})
    assert answer.status_code == 401 and answer.json is not None
    assert answer.json["status"] == "unauthenticated" and "Content-Language" not in answer.headers
