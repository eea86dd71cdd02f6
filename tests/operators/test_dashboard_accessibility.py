"""WCAG 2.1 AA on every dashboard page, in a real browser (issue 18, Must show 6): axe-core (vendored,
version named) on each page in Dutch and in English, signed in as each role: no violation of impact
serious or critical. And the forms work with the keyboard alone: a test tabs through the reversal and
the upload forms and submits them without a mouse."""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.operators.conftest import World, build_world, serve
from tests.operators.test_dashboard_browser import sign_in
from tests.support.infra import KafkaInfo

AXE = Path(__file__).resolve().parents[1] / "support" / "vendor" / "axe-core" / "axe.min.js"
AXE_VERSION = "4.11.1"
AXE_SHA256 = "7dbfabdfc6062936d79c873ddbb5f811a1219fca3928bd8cc9dd81f1e65f4720"
WCAG_21_AA = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]
CODE = "GM0363"
BOOKS = f"/dashboard/municipalities/{CODE}/2024"
ROLES = {
    "municipality": ["/dashboard/", BOOKS, f"{BOOKS}/journal", f"/dashboard/municipalities/{CODE}/upload",
                     "@reversal", "/dashboard/national/1900"],
    "auditor": ["/dashboard/national/2024", BOOKS, f"{BOOKS}/journal?reversed=reversed",
                "/dashboard/national/2024?sort=spent_cents&order=desc"],
    "ministry": ["/dashboard/national/2024", "/dashboard/bridge"],
    "finance": ["/dashboard/national/2024"],
    "kb": ["/dashboard/", "/dashboard/bridge?as_of=2023-09-02", "/dashboard/national/2024"],  # national: 403
}
SCREENSHOTS = os.environ.get("IDO_SCREENSHOTS_DIR")
"""Set by `make screenshots`: the pages are photographed into docs/screenshots as they are checked."""
REVERSE_LINK = re.compile(r'href="(/dashboard/municipalities/GM0363/expenditures/[0-9a-f-]{36}/reversal)"')


SQLITE_ONLY = pytest.mark.parametrize("store_env", ["sqlite"], indirect=True)
"""The pages and forms are the same whatever the event store: one store is enough here."""


@pytest.fixture
def world(store_env: dict[str, str], kafka: KafkaInfo, topic_prefix: str) -> Iterator[World]:
    built = build_world(store_env, kafka, topic_prefix)
    yield built
    built.close()


def _axe_violations(page: Any) -> list[dict[str, Any]]:
    page.evaluate(AXE.read_text(encoding="utf-8"))
    assert page.evaluate("axe.version") == AXE_VERSION
    result = page.evaluate(
        "async (tags) => await axe.run(document, {runOnly: {type: 'tag', values: tags}})", WCAG_21_AA
    )
    return [v for v in result["violations"] if v["impact"] in ("serious", "critical")]


def _reversal_path(world: World) -> str:
    client = world.ledger.test_client()
    headers = world.tokens.headers("municipality", CODE)
    journal = client.get(f"/dashboard/municipalities/{CODE}/2024/journal", headers=headers)
    return REVERSE_LINK.findall(journal.get_data(as_text=True))[0]


def test_the_vendored_axe_is_the_named_version() -> None:
    assert hashlib.sha256(AXE.read_bytes()).hexdigest() == AXE_SHA256


@SQLITE_ONLY
def test_every_page_in_both_languages_as_each_role_has_no_serious_accessibility_violation(
    world: World, browser: Any
) -> None:
    reversal = _reversal_path(world)
    found: dict[str, list[str]] = {}
    checked = 0
    with serve(world.ledger) as base:
        for language in ("nl-NL", "en-GB"):
            # the test injects axe into pages whose policy forbids every script: only in this context
            context = browser.new_context(locale=language, bypass_csp=True)
            page = context.new_page()
            try:
                page.goto(f"{base}/dashboard/login")
                violations = _axe_violations(page)
                checked += 1
                if violations:
                    found[f"{language} login"] = [f"{v['id']} ({v['impact']}): {v['help']}" for v in violations]
                for role, paths in ROLES.items():
                    context.clear_cookies()
                    token = world.tokens.token(role, CODE) if role == "municipality" else world.tokens.token(role)
                    sign_in(page, base, token)
                    for path in paths:
                        page.goto(base + (reversal if path == "@reversal" else path))
                        assert page.locator(f'html[lang="{language[:2]}"]').count() == 1, (language, path)
                        _photograph(page, language, role, path)
                        violations = _axe_violations(page)
                        checked += 1
                        if violations:
                            found[f"{language} {role} {path}"] = [
                                f"{v['id']} ({v['impact']}): {v['help']} at {[n['target'] for n in v['nodes']][:3]}"
                                for v in violations
                            ]
            finally:
                context.close()
    assert checked >= 2 * (1 + sum(len(paths) for paths in ROLES.values()))
    assert found == {}


def _photograph(page: Any, language: str, role: str, path: str) -> None:
    if not SCREENSHOTS:
        return
    name = re.sub(r"[^a-z0-9]+", "-", f"{language[:2]} {role} {path.removeprefix('/dashboard/')}".lower()).strip("-")
    page.screenshot(path=str(Path(SCREENSHOTS) / f"{name}.png"), full_page=True)


def _tab_until(page: Any, element_id: str, limit: int = 60) -> list[str]:
    """Presses Tab until the element has the focus; the ids passed on the way."""
    passed = []
    for _ in range(limit):
        page.keyboard.press("Tab")
        focused = page.evaluate("document.activeElement.id || document.activeElement.tagName")
        passed.append(focused)
        if focused == element_id:
            return passed
    raise AssertionError(f"#{element_id} never got the focus by Tab; passed {passed}")


@SQLITE_ONLY
def test_the_reversal_and_upload_forms_work_with_the_keyboard_alone(
    world: World, browser: Any, tmp_path: Path
) -> None:
    reversal = _reversal_path(world)
    context = browser.new_context(locale="nl-NL")
    page = context.new_page()
    try:
        with serve(world.ledger) as base:
            sign_in(page, base, world.tokens.token("municipality", CODE))
            page.goto(base + reversal)
            passed = _tab_until(page, "reason")
            page.keyboard.type("dubbel geboekt (toetsenbord)")
            assert _tab_until(page, "booked_on", limit=3)[-1] == "booked_on"
            # a date field takes a Tab per part (day, month, year) before the focus moves on
            assert _tab_until(page, "reverse", limit=8)[-1] == "reverse"
            assert "reason" in passed or passed[-1] == "reason"
            with page.expect_navigation():
                page.keyboard.press("Enter")
            assert page.locator("#done").count() == 1 and re.fullmatch(r"[0-9a-f-]{36}", page.inner_text("#event-id"))

            csv_file = tmp_path / "uitgaven.csv"
            csv_file.write_text("grant_year,category,amount,booked_on,counterparty_id,counterparty_name,description,"
                                "reference\n2024,promotion,\"12,50\",2024-06-01,P-1,Printer,posters,KB-1\n", "utf-8")
            page.goto(f"{base}/dashboard/municipalities/{CODE}/upload")
            _tab_until(page, "file")
            # the file input has the focus; the system's file dialog it opens is outside the page, so the
            # test hands the file to the focused input as that dialog would
            page.set_input_files("#file", str(csv_file))
            assert page.evaluate("document.activeElement.id") == "file"
            assert _tab_until(page, "upload", limit=3)[-1] == "upload"
            with page.expect_navigation():
                page.keyboard.press("Enter")
            assert page.locator("#done").count() == 1, page.content()[:800]
    finally:
        context.close()
