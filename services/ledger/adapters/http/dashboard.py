"""The ledger's read-only dashboard for people: server-rendered HTML, no script, no build step.

Login: the user pastes a bearer token (from `ido tokens issue` or the identity provider) into the
login page; it is verified like an API call and kept in an HttpOnly, SameSite=Strict cookie
scoped to /dashboard for the token's lifetime, Secure when the browser spoke HTTPS (behind a proxy:
``IDO_TRUSTED_PROXIES``). The login and logout forms carry a CSRF token (``dashboard_csrf``).
Every page verifies the token again (expiry, revocation) and applies the API's own access rules:
a municipality sees only its own books; auditors, finance and the ministry see all; other roles
nothing. The figures come from the read side's queries
(``services.ledger.read_side``), the same the `/v1/...` endpoints answer with; no SQL here.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, cast

from flask import Blueprint, Flask, current_app, g, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext
from werkzeug.wrappers import Response

from contracts.events.expenditures import CATEGORIES
from contracts.identifiers import CBS_CODE, is_year
from services.common.auth import Principal, TokenVerifier
from services.common.csv_output import DUTCH_EXCEL, STANDARD
from services.common.errors import InvalidInput, NotFound, ServiceError, Unauthenticated
from services.ledger.adapters.http import dashboard_csrf, dashboard_i18n
from services.ledger.adapters.http.dashboard_chart import bar, cumulative_chart, cumulative_steps, month_ends
from services.ledger.adapters.http.routes import NATIONAL_READERS, READERS
from services.ledger.adapters.http.tables import (
    Table,
    balance_table,
    csv_response,
    journal_table,
    national_table,
    sisa_table,
    xlsx_response,
)
from services.ledger.application.service import LedgerService
from services.ledger.read_side import PointInTime, sisa_deadline

LEDGER_DIR = Path(__file__).resolve().parents[2]
COOKIE = "ido_dashboard"
COOKIE_PATH = "/dashboard"
CATEGORY_LABELS = {
    "library_funding": lazy_gettext("Funding the library's IDO"),
    "promotion": lazy_gettext("Promotion"),
    "network_orchestration": lazy_gettext("Network orchestration"),
}
ROLE_NAMES = {
    "municipality": lazy_gettext("municipality"),
    "auditor": lazy_gettext("auditor"),
    "finance": lazy_gettext("finance"),
    "ministry": lazy_gettext("ministry"),
    "kb": lazy_gettext("KB"),
}
ERROR_SUMMARIES = {
    # the page's sentence per error code; the service's own message follows in English as a detail
    "invalid_input": lazy_gettext("A value on this page is not valid."),
    "not_found": lazy_gettext("This page does not exist."),
    "forbidden": lazy_gettext("You may not see these books."),
    "conflict": lazy_gettext("This conflicts with what is already recorded."),
    "rule_broken": lazy_gettext("This breaks a rule of the grant."),
    "too_many_requests": lazy_gettext("Too many requests: try again in a moment."),
    "unavailable": lazy_gettext("The ledger cannot answer now: try again in a moment."),
    "bad_request": lazy_gettext("The request could not be read."),
    "unauthenticated": lazy_gettext("Sign in to see these books."),
}
CSV_DIALECTS = {"standard": STANDARD, "excel-nl": DUTCH_EXCEL}
"""``?dialect=``: the contracts' CSV (the default), or one that Excel with Dutch settings opens as it is."""
SECURITY_HEADERS = {
    # No script at all; styles and images only from here; forms post only here; never framed.
    "Content-Security-Policy": "default-src 'none'; style-src 'self'; img-src 'self' data:; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}

dashboard = Blueprint(
    "dashboard",
    __name__,
    url_prefix="/dashboard",
    template_folder=str(LEDGER_DIR / "templates"),
    static_folder=str(LEDGER_DIR / "static"),
    static_url_path="/static",
)
dashboard.add_app_template_filter(dashboard_i18n.eur_filter, "eur")
dashboard.add_app_template_filter(dashboard_i18n.day_filter, "day")
dashboard.add_app_template_global(dashboard_i18n.percent_of, "percent")
dashboard.add_app_template_global(dashboard_i18n.page_locale, "page_locale")
dashboard.add_app_template_global(bar, "bar")
dashboard.add_app_template_global(lambda role: ROLE_NAMES.get(role, role), "role_name")
dashboard.record_once(lambda state: dashboard_i18n.init_app(cast(Flask, state.app)))
dashboard.add_app_template_global(dashboard_csrf.csrf_token, "csrf_token")


def _service() -> LedgerService:
    found: LedgerService = current_app.extensions["ledger"]
    return found


def _verifier() -> TokenVerifier:
    found: TokenVerifier = current_app.extensions["ido.verifier"]
    return found


def _caller() -> Principal:
    """The caller from the Authorization header (scripts) or the dashboard cookie (browsers)."""
    if "principal" not in g:
        header = request.headers.get("Authorization")
        cookie = request.cookies.get(COOKIE)
        if header is None and cookie:
            header = f"Bearer {cookie}"
        g.principal = _verifier().verify(header)
    found: Principal = g.principal
    return found


def _point_in_time() -> PointInTime:
    raw = request.args.get("as_of")
    if not raw:
        return PointInTime()
    try:
        return PointInTime(as_of=date.fromisoformat(raw))
    except ValueError:
        raise InvalidInput("as_of must be a date (YYYY-MM-DD)", field="as_of") from None


def _year(year: int) -> int:
    if not is_year(year):
        raise NotFound(f"no grant year {year}")
    return year


def _years() -> list[int]:
    return _service().queries.years()


def _default_year() -> int:
    years = _years()
    today = datetime.now(UTC).date()
    if today.year in years or not years:
        return today.year
    return years[-1]


@dashboard.after_request
def _secure(response: Response) -> Response:
    for header, value in SECURITY_HEADERS.items():
        response.headers.setdefault(header, value)
    response.headers["Content-Language"] = dashboard_i18n.page_locale()
    response.headers.add("Vary", "Accept-Language, Cookie")
    dashboard_i18n.keep_choice(response, COOKIE_PATH)
    return dashboard_csrf.set_cookie(response, COOKIE_PATH)


@dashboard.errorhandler(ServiceError)
def _refused(error: ServiceError) -> Any:
    if isinstance(error, Unauthenticated):
        # 401 with the login form: sign in, then come back to the page asked for.
        ended = bool(request.cookies.get(COOKIE))
        message = _("Your session ended; paste a token again.") if ended else _("Sign in to see these books.")
        page = render_template(
            "dashboard/login.html", message=message, detail=error.message if ended else None, caller=None,
            next_path=request.path,
        )
        response = current_app.make_response((page, 401))
        if request.cookies.get(COOKIE):
            response.delete_cookie(COOKIE, path=COOKIE_PATH)
        return response
    summary = ERROR_SUMMARIES.get(error.code, ERROR_SUMMARIES["rule_broken"])
    page = render_template("dashboard/error.html", error=error, summary=summary, caller=g.get("principal"))
    return page, error.http_status


def _safe_next(path: str | None) -> str:
    """Only a path of this dashboard: never another site (no open redirect)."""
    if path and path.startswith(COOKIE_PATH + "/") and "//" not in path and "\\" not in path:
        return path
    return url_for("dashboard.home")


@dashboard.get("/login")
def login() -> Any:
    return render_template(
        "dashboard/login.html", message=None, detail=None, caller=None, next_path=request.args.get("next")
    )


@dashboard.post("/login")
def login_post() -> Any:
    token = (request.form.get("token") or "").strip().removeprefix("Bearer ").strip()
    next_path = request.form.get("next")
    try:
        dashboard_csrf.check()  # before the token is looked at: another site's form signs nobody in
        caller = _verifier().verify(f"Bearer {token}")
    except (Unauthenticated, dashboard_csrf.CsrfRefused) as error:
        page = render_template(
            "dashboard/login.html", message=_("Not signed in: the token was refused."), detail=error.message,
            caller=None, next_path=next_path,
        )
        return page, error.http_status
    g.principal = caller
    response = redirect(_safe_next(next_path), code=303)
    response.set_cookie(
        COOKIE,
        token,
        expires=_expiry(token),
        path=COOKIE_PATH,
        httponly=True,
        secure=request.is_secure,
        samesite="Strict",
    )
    return response


def _expiry(token: str) -> datetime:
    import jwt

    claims = jwt.decode(token, options={"verify_signature": False})  # verified just before
    return datetime.fromtimestamp(int(claims["exp"]), UTC)


@dashboard.post("/logout")
def logout() -> Any:
    dashboard_csrf.check()
    response = redirect(url_for("dashboard.login"), code=303)
    response.delete_cookie(COOKIE, path=COOKIE_PATH)
    return response


@dashboard.get("/")
def home() -> Any:
    """A municipality's own books, or the national view, of the latest year with figures."""
    caller = _caller()
    year = _default_year()
    if caller.role == "municipality" and caller.municipality_code:
        return municipality(caller.municipality_code, year)
    caller.require_role(*NATIONAL_READERS)
    return national(year)


@dashboard.get("/national/<int:year>")
def national(year: int) -> Any:
    caller = _caller()
    caller.require_role(*NATIONAL_READERS)
    at = _point_in_time()
    answer = _service().queries.national(_year(year), at)
    libraries = _library_rows(answer)
    return render_template(
        "dashboard/national.html",
        caller=caller,
        year=year,
        years=sorted(set(_years()) | {year}),
        at=at,
        n=answer,
        libraries=libraries,
        sisa_deadline=sisa_deadline(year),
        categories=CATEGORIES,
        labels=CATEGORY_LABELS,
    )


def _library_rows(answer: dict[str, Any]) -> list[dict[str, Any]]:
    """Per library: the bridging subsidy (KB) and the municipal funding received in the year."""
    rows: dict[str, dict[str, Any]] = {}
    for found in answer["bridge"]["libraries"]:
        rows[found["library_id"]] = {
            "library_id": found["library_id"],
            "name": found["name"],
            "bridge_granted_cents": found["granted_cents"],
            "bridge_paid_cents": found["paid_cents"],
            "municipal_funding_cents": 0,
        }
    for found in answer["library_funding_received"]:
        library_id = found["library_id"] or "(unknown)"
        row = rows.setdefault(
            library_id,
            {
                "library_id": library_id,
                "name": found["name"],
                "bridge_granted_cents": 0,
                "bridge_paid_cents": 0,
                "municipal_funding_cents": 0,
            },
        )
        row["municipal_funding_cents"] += found["received_cents"]
        row["name"] = row["name"] or found["name"]
    return sorted(rows.values(), key=lambda r: r["library_id"])


@dashboard.get("/municipalities/<code>/<int:year>")
def municipality(code: str, year: int) -> Any:
    caller = _caller()
    if not CBS_CODE.fullmatch(code):
        raise NotFound(f"no municipality {code!r}")
    queries = _service().queries
    caller.require_books_of(code, readers=READERS, predecessors=queries.predecessors_of)
    at = _point_in_time()
    balances = queries.balances(code, _year(year), at)
    rows = queries.journal_rows(code, year, at)
    steps = cumulative_steps(rows)
    today = at.as_of or datetime.now(UTC).date()
    name = queries.municipality_name(code)
    funding: dict[tuple[str, str], int] = {}
    for row in rows:
        if row["category"] == "library_funding":
            key = (row["counterparty_id"] or "", row["counterparty_name"] or "")
            funding[key] = funding.get(key, 0) + int(row["amount_cents"])
    chart = cumulative_chart(
        year=year,
        steps=steps,
        award_cents=balances["awarded_cents"],
        today=today,
        title=_("Cumulative spending of %(code)s in %(year)s against the award", code=code, year=year),
        months=dashboard_i18n.month_names(),
        award_label=_("award"),
        locale=dashboard_i18n.page_locale(),
    )
    return render_template(
        "dashboard/municipality.html",
        caller=caller,
        code=code,
        name=name,
        year=year,
        years=sorted(set(_years()) | {year}),
        at=at,
        b=balances,
        sisa=queries.sisa(code, year, at),
        categories=CATEGORIES,
        labels=CATEGORY_LABELS,
        chart=chart,
        month_ends=month_ends(year, steps, dashboard_i18n.month_names()),
        funding=sorted(funding.items()),
        national_link=caller.role in NATIONAL_READERS,
    )


@dashboard.get("/municipalities/<code>/<int:year>/<any(balances, journal, sisa):kind>.<any(csv, xlsx):file_format>")
def municipality_download(code: str, year: int, kind: str, file_format: str) -> Any:
    """A municipality's balance, journal or SiSa account of a year as a file, with the page's session."""
    caller = _caller()
    if not CBS_CODE.fullmatch(code):
        raise NotFound(f"no municipality {code!r}")
    queries = _service().queries
    caller.require_books_of(code, readers=READERS, predecessors=queries.predecessors_of)
    at = _point_in_time()
    if kind == "balances":
        table = balance_table(queries.balances(code, _year(year), at), code, year)
    elif kind == "journal":
        table = journal_table(queries.journal_rows(code, _year(year), at), code, year)
    else:
        table = sisa_table(queries.sisa(code, _year(year), at), code, year)
    return _download(table, file_format)


@dashboard.get("/national/<int:year>/balances.<any(csv, xlsx):file_format>")
def national_download(year: int, file_format: str) -> Any:
    caller = _caller()
    caller.require_role(*NATIONAL_READERS)
    return _download(national_table(_service().queries.national(_year(year), _point_in_time()), year), file_format)


def _download(table: Table, file_format: str) -> Any:
    if file_format == "xlsx":
        return xlsx_response(table)
    dialect = request.args.get("dialect", "standard")
    if dialect not in CSV_DIALECTS:
        raise InvalidInput(f"dialect must be one of {', '.join(CSV_DIALECTS)}", field="dialect")
    return csv_response(table, CSV_DIALECTS[dialect])
