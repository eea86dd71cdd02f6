"""The dashboard in headless Chromium: a municipality and an auditor sign in by pasting a token, and
every figure on their pages equals what the API answers; the municipality sees only its own books."""

from __future__ import annotations

import json
import re
import urllib.request
from pathlib import Path
from typing import Any

from services.ledger.adapters.http.dashboard_chart import format_eur
from tests.operators.conftest import AMSTERDAM_LIBRARY, World, build_world, serve
from tests.support.infra import KafkaInfo

CATEGORIES = ("library_funding", "promotion", "network_orchestration")
MONEY = re.compile(r"^-?€ \d{1,3}(\.\d{3})*,\d{2}$")


def parse_eur(text: str) -> int:
    """'€ 1.234,56' -> 123456, read off the page independently of the server's formatter."""
    text = text.strip()
    assert MONEY.match(text), f"not an amount in euros: {text!r}"
    cents = int(text.lstrip("-").removeprefix("€ ").replace(".", "").replace(",", ""))
    return -cents if text.startswith("-") else cents


def api(base: str, path: str, token: str) -> tuple[int, Any]:
    request = urllib.request.Request(base + path, headers={"Authorization": f"Bearer {token}"})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"{}")


def figures(page: Any, scope: str) -> dict[str, tuple[int, int]]:
    """data-figure -> (cents in the data attribute, cents read from the visible text)."""
    found = {}
    cells = page.locator(f"{scope} [data-figure]")
    for i in range(cells.count()):
        cell = cells.nth(i)
        found[cell.get_attribute("data-figure")] = (int(cell.get_attribute("data-cents")), parse_eur(cell.inner_text()))
    return found


def balance_figures(balance: dict[str, Any]) -> dict[str, int]:
    wanted = {
        "awarded_cents": balance["awarded_cents"],
        "advance_paid_cents": balance["advance_paid_cents"],
        "spent_cents": balance["spent_cents"],
        "unspent_cents": balance["unspent_cents"],
    }
    for category in CATEGORIES:
        wanted[f"spent_{category}_cents"] = balance["spent_by_category"][category]
    return wanted


def assert_page_shows(shown: dict[str, tuple[int, int]], wanted: dict[str, int], where: str) -> None:
    for name, cents in wanted.items():
        assert name in shown, f"{where}: {name} is not on the page"
        in_attribute, in_text = shown[name]
        assert in_attribute == cents, f"{where}: {name} is {in_attribute} on the page, {cents} in the API"
        assert in_text == cents, f"{where}: {name} reads {format_eur(in_text)} on the page, {cents} in the API"


def sign_in(page: Any, base: str, token: str, path: str = "/dashboard/") -> None:
    page.goto(base + path)
    assert page.locator("#token").count() == 1, "the dashboard did not ask for a token"
    page.fill("#token", token)
    with page.expect_navigation():
        page.click("#sign-in")


def test_dashboard_figures_equal_the_api_and_a_municipality_sees_only_its_books(
    store_env: dict[str, str], kafka: KafkaInfo, topic_prefix: str, browser: Any, tmp_path: Path
) -> None:
    world: World = build_world(store_env, kafka, topic_prefix)
    amsterdam = world.tokens.token("municipality", "GM0363")
    auditor = world.tokens.token("auditor")
    context = browser.new_context(locale="nl-NL")  # a Dutch reader: the pages and their amounts in Dutch
    page = context.new_page()
    try:
        with serve(world.ledger) as base:
            # -- the municipality ---------------------------------------------------------------
            answer = page.goto(f"{base}/dashboard/municipalities/GM0363/2024")
            assert answer is not None and answer.status == 401  # no token yet: the login form
            sign_in(page, base, amsterdam, "/dashboard/municipalities/GM0363/2024")  # and back to that page
            assert page.url.endswith("/dashboard/municipalities/GM0363/2024"), page.url
            status, balance = api(base, "/v1/municipalities/GM0363/balances/2024", amsterdam)
            assert status == 200, balance
            assert balance["spent_cents"] > 0 and balance["awarded_cents"] > 0
            assert_page_shows(figures(page, "#balances"), balance_figures(balance), "GM0363 page")
            chart = page.locator("svg.chart")
            assert int(chart.get_attribute("data-final-cents")) == balance["spent_cents"]
            assert int(chart.get_attribute("data-award-cents")) == balance["awarded_cents"]
            month_ends = page.locator("#month-ends td[data-cents]")
            assert month_ends.count() == 12
            assert int(month_ends.nth(11).get_attribute("data-cents")) == balance["spent_cents"]
            assert int(month_ends.nth(2).get_attribute("data-cents")) == 400_000_00 + 5_000_00  # reversal nets out
            library_row = page.locator("#library-funding tr", has_text=AMSTERDAM_LIBRARY[0])
            assert parse_eur(library_row.locator("td[data-cents]").inner_text()) == (
                balance["spent_by_category"]["library_funding"]
            )
            page.screenshot(path=str(tmp_path / "municipality.png"), full_page=True)
            assert "GM0599" not in page.content()  # nothing of another municipality's books

            # The home page is the same books; another municipality's books and the national view are refused.
            page.goto(f"{base}/dashboard/")
            assert page.locator("#municipality").get_attribute("data-code") == "GM0363"
            for path in ("/dashboard/municipalities/GM0599/2024", "/dashboard/national/2024"):
                refused = page.goto(base + path)
                assert refused is not None and refused.status == 403, path
                assert page.locator("#error-status").get_attribute("data-status") == "403"
                assert "540.000" not in page.content()  # Rotterdam's award appears nowhere
            assert api(base, "/v1/municipalities/GM0599/balances/2024", amsterdam)[0] == 403
            assert api(base, "/v1/balances/2024", amsterdam)[0] == 403

            page.goto(f"{base}/dashboard/")
            with page.expect_navigation():
                page.click("#logout")
            assert page.locator("#token").count() == 1
            # The token is gone; only the login form's CSRF nonce (no secret, no session) is left.
            assert [cookie["name"] for cookie in context.cookies()] == ["ido_csrf"]

            # -- the auditor -------------------------------------------------------------------
            sign_in(page, base, auditor)
            assert page.locator("#national").get_attribute("data-year") == "2024"
            status, national = api(base, "/v1/balances/2024", auditor)
            assert status == 200, national
            shown = figures(page, "#grant-frame")
            assert_page_shows(
                shown,
                {
                    "frame_cents": national["frame_cents"],
                    "awarded_cents": national["totals"]["awarded_cents"],
                    "frame_unawarded_cents": national["frame_unawarded_cents"],
                    "advance_paid_cents": national["totals"]["advance_paid_cents"],
                    "spent_cents": national["totals"]["spent_cents"],
                    "unspent_cents": national["totals"]["unspent_cents"],
                },
                "national frame",
            )
            assert national["frame_cents"] == 1_713_000_000  # the € 17.13 M frame
            assert_page_shows(
                figures(page, "#bridge-frame"),
                {
                    "bridge_frame_cents": national["bridge"]["frame_cents"],
                    "bridge_granted_cents": national["bridge"]["totals"]["granted_cents"],
                    "bridge_paid_cents": national["bridge"]["totals"]["paid_cents"],
                    "bridge_frame_ungranted_cents": national["bridge"]["frame_ungranted_cents"],
                },
                "bridge frame",
            )
            assert national["bridge"]["frame_cents"] == 270_000_000  # the € 2.7 M frame
            assert page.locator("#municipalities tbody tr").count() == len(national["municipalities"])
            for row in national["municipalities"]:
                code = row["municipality_code"]
                assert_page_shows(
                    figures(page, f'#municipalities tr[data-code="{code}"]'), balance_figures(row), code
                )
            funding = {r["library_id"]: r["received_cents"] for r in national["library_funding_received"]}
            for library in national["bridge"]["libraries"]:
                shown = figures(page, f'#libraries tr[data-library="{library["library_id"]}"]')
                assert_page_shows(
                    shown,
                    {
                        "bridge_granted_cents": library["granted_cents"],
                        "bridge_paid_cents": library["paid_cents"],
                        "municipal_funding_cents": funding.get(library["library_id"], 0),
                    },
                    library["library_id"],
                )
            assert funding[AMSTERDAM_LIBRARY[0]] == 550_000_00
            page.screenshot(path=str(tmp_path / "national.png"), full_page=True)

            # The auditor follows the link to Rotterdam: its own page, equal to the API.
            with page.expect_navigation():
                page.click('#municipalities tr[data-code="GM0599"] a')
            assert page.url.endswith("/dashboard/municipalities/GM0599/2024")
            status, rotterdam = api(base, "/v1/municipalities/GM0599/balances/2024", auditor)
            assert status == 200
            assert_page_shows(figures(page, "#balances"), balance_figures(rotterdam), "GM0599 page")
    finally:
        context.close()
        world.close()


def test_swagger_ui_renders_offline_from_the_packaged_assets(
    browser: Any, tmp_path: Path
) -> None:
    from services.common.auth import init_token_files
    from services.common.config import load_settings
    from services.payments.entrypoints.definition import create_app

    settings = load_settings(
        {"IDO_DATA_DIR": str(tmp_path / "data"), "IDO_KEYS_DIR": str(tmp_path / "keys"),
         "KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:9"}
    )
    init_token_files(settings)
    app = create_app(settings)
    context = browser.new_context()
    page = context.new_page()
    outside: list[str] = []
    page.on("request", lambda request: outside.append(request.url) if "127.0.0.1" not in request.url else None)
    try:
        with serve(app) as base:
            page.goto(f"{base}/docs")
            page.wait_for_selector(".swagger-ui .info .title", timeout=20_000)
            assert "IDO payments" in page.inner_text(".swagger-ui .info .title")
            paths = page.locator(".opblock-summary-path", has_text="/v1/years/{year}/frame")
            paths.first.wait_for(timeout=20_000)
            assert page.locator(".opblock-summary-path", has_text="/readyz").count() == 1
            page.screenshot(path=str(tmp_path / "docs.png"))
        assert [url for url in outside if not url.startswith("data:")] == []
    finally:
        context.close()
        app.extensions["ido.operations"].close()
