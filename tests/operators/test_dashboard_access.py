"""The dashboard's access rules and session mechanics, without a browser: the same roles as the API,
a cookie that scripts cannot read and other sites cannot send, no script allowed on its pages."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from flask.testing import FlaskClient

from services.common.auth import RevocationList, issue_token
from services.common.config import Settings
from services.common.definition import SERVICE_NAMES
from services.ledger.adapters.http.dashboard import COOKIE
from services.ledger.adapters.http.dashboard_chart import (
    Step,
    cumulative_chart,
    cumulative_steps,
    format_eur,
    month_ends,
)
from tests.support.dashboard import csrf_field, sign_in_form
from tests.support.tokens import TokenFactory

PAGES = ("/dashboard/", "/dashboard/national/2024", "/dashboard/municipalities/GM0363/2024", "/dashboard/bridge")


def sign_in(client: FlaskClient, token: str, next_path: str | None = None) -> str:
    form = sign_in_form(client, token)
    if next_path is not None:
        form["next"] = next_path
    response = client.post("/dashboard/login", data=form)
    assert response.status_code == 303, response.data
    cookie = response.headers["Set-Cookie"]
    assert f"{COOKIE}=" in cookie and "HttpOnly" in cookie and "SameSite=Strict" in cookie
    assert "Path=/dashboard" in cookie and "Expires=" in cookie
    return str(response.headers["Location"])


@pytest.mark.parametrize(
    ("role", "code", "expected"),
    [
        ("municipality", "GM0363", {"/dashboard/": 200, "/dashboard/national/2024": 403,
                                    "/dashboard/municipalities/GM0363/2024": 200, "/dashboard/bridge": 403}),
        ("municipality", "GM0599", {"/dashboard/": 200, "/dashboard/national/2024": 403,
                                    "/dashboard/municipalities/GM0363/2024": 403, "/dashboard/bridge": 403}),
        ("auditor", None, dict.fromkeys(PAGES, 200)),
        ("finance", None, dict.fromkeys(PAGES, 200)),
        ("ministry", None, dict.fromkeys(PAGES, 200)),
        # the KB: the bridging subsidy (its home page), not the municipalities' books
        ("kb", None, {"/dashboard/": 200, "/dashboard/national/2024": 403,
                      "/dashboard/municipalities/GM0363/2024": 403, "/dashboard/bridge": 200}),
    ],
)
def test_each_role_reaches_what_the_api_lets_it_read(
    client: FlaskClient, tokens: TokenFactory, role: str, code: str | None, expected: dict[str, int]
) -> None:
    sign_in(client, tokens.token(role, code))
    got = {page: client.get(page).status_code for page in PAGES}
    assert got == expected
    # The Authorization header works too (scripts), with the same answers.
    fresh = client.application.test_client()
    header = tokens.headers(role, code)
    assert {page: fresh.get(page, headers=header).status_code for page in PAGES} == expected


def test_without_a_valid_token_every_page_is_the_login_form_with_401(
    client: FlaskClient, settings: Settings, tokens: TokenFactory
) -> None:
    for page in PAGES:
        answer = client.get(page)
        assert answer.status_code == 401 and b'name="token"' in answer.data, page
    bad = client.post("/dashboard/login", data=sign_in_form(client, "not-a-token"))
    assert bad.status_code == 401 and "Niet aangemeld" in bad.get_data(as_text=True) and "Set-Cookie" not in bad.headers
    expired, _ = issue_token(
        settings.jwt_private_key_file.read_bytes(), audience=SERVICE_NAMES, role="auditor", ttl=timedelta(seconds=-5)
    )
    assert client.post("/dashboard/login", data=sign_in_form(client, expired)).status_code == 401

    # A revoked token ends the session at the next page: 401, and the cookie is cleared.
    token, token_id = issue_token(settings.jwt_private_key_file.read_bytes(), audience=SERVICE_NAMES, role="auditor")
    sign_in(client, token)
    assert client.get("/dashboard/national/2024").status_code == 200
    RevocationList(settings.revoked_tokens_file).revoke(token_id)
    ended = client.get("/dashboard/national/2024")
    assert ended.status_code == 401 and "sessie is beëindigd" in ended.get_data(as_text=True)
    assert f"{COOKIE}=;" in ended.headers["Set-Cookie"]


def test_sign_in_returns_to_the_page_asked_for_and_never_to_another_site(
    client: FlaskClient, tokens: TokenFactory
) -> None:
    token = tokens.token("auditor")
    assert sign_in(client, token, "/dashboard/national/2024") == "/dashboard/national/2024"
    for elsewhere in ("https://evil.example/", "//evil.example/x", "/dashboard//evil", "/v1/balances/2024"):
        assert sign_in(client, token, elsewhere) == "/dashboard/", elsewhere
    out = client.post("/dashboard/logout", data=csrf_field(client, "/dashboard/"))
    assert out.status_code == 303 and f"{COOKIE}=;" in out.headers["Set-Cookie"]


def test_pages_forbid_scripts_framing_and_caching(client: FlaskClient, tokens: TokenFactory) -> None:
    sign_in(client, tokens.token("auditor"))
    for page in (*PAGES, "/dashboard/login"):
        headers = client.get(page).headers
        policy = headers["Content-Security-Policy"]
        assert "default-src 'none'" in policy and "script-src" not in policy  # so no script may run
        assert "frame-ancestors 'none'" in policy
        assert headers["Cache-Control"] == "no-store" and headers["X-Content-Type-Options"] == "nosniff"
    css = client.get("/dashboard/static/dashboard.css")
    assert css.status_code == 200 and css.mimetype == "text/css"
    page = client.get("/dashboard/national/2024").get_data(as_text=True)
    assert "<script" not in page


def test_unknown_year_or_municipality_is_a_page_not_a_stack_trace(client: FlaskClient, tokens: TokenFactory) -> None:
    sign_in(client, tokens.token("auditor"))
    assert client.get("/dashboard/national/1900").status_code == 404
    assert client.get("/dashboard/municipalities/XX12/2024").status_code == 404
    bad = client.get("/dashboard/national/2024?as_of=yesterday")
    assert bad.status_code == 422 and b"as_of" in bad.data


def test_money_and_the_chart_series() -> None:
    assert format_eur(0) == "€ 0,00"
    assert format_eur(123456789) == "€ 1.234.567,89"
    assert format_eur(-1200) == "-€ 12,00"
    rows = [
        {"booked_on": "2024-02-01", "amount_cents": 400},
        {"booked_on": "2024-03-01", "amount_cents": 100},
        {"booked_on": "2024-03-10", "amount_cents": -100},  # a reversal
        {"booked_on": "2024-03-01", "amount_cents": 50},
    ]
    steps = cumulative_steps(rows)
    assert steps == [Step(date(2024, 2, 1), 400), Step(date(2024, 3, 1), 550), Step(date(2024, 3, 10), 450)]
    ends = month_ends(2024, steps)
    assert [cents for _month, cents in ends] == [0, 400, 450, *([450] * 9)]
    svg = cumulative_chart(year=2024, steps=steps, award_cents=1000, today=date(2025, 1, 1), title="t <&>")
    assert 'data-final-cents="450"' in svg and 'data-award-cents="1000"' in svg
    assert "t &lt;&amp;&gt;" in svg and svg.count('class="point"') == 3
    assert cumulative_chart(year=2024, steps=[], award_cents=0, today=date(2024, 6, 1), title="empty")
