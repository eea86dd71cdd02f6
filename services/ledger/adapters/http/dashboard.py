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

from collections.abc import Callable
from datetime import UTC, date, datetime
from fractions import Fraction
from functools import partial
from pathlib import Path
from typing import Any, cast
from uuid import UUID, uuid4

from flask import Blueprint, Flask, current_app, g, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext, ngettext
from marshmallow import ValidationError
from werkzeug.wrappers import Response

from contracts.envelope import first_error
from contracts.events.expenditures import CATEGORIES
from contracts.identifiers import CBS_CODE, is_year
from services.common.auth import Principal, TokenVerifier
from services.common.csv_output import DUTCH_EXCEL, STANDARD
from services.common.errors import InvalidInput, NotFound, ServiceError, Unauthenticated, Unavailable
from services.common.principal_limit import principal_key
from services.common.spreadsheet import SpreadsheetUnreadable, read_xlsx_table
from services.ledger.adapters.http import dashboard_csrf, dashboard_i18n
from services.ledger.adapters.http.dashboard_chart import bar, cumulative_chart, cumulative_steps, month_ends
from services.ledger.adapters.http.routes import BRIDGE_READERS, NATIONAL_READERS, READERS
from services.ledger.adapters.http.schemas import ReversalIn, SisaDeclarationIn
from services.ledger.adapters.http.tables import (
    Table,
    balance_table,
    csv_response,
    journal_table,
    national_table,
    sisa_table,
    xlsx_response,
)
from services.ledger.application.csv_import import MAX_ROWS as MAX_IMPORT_ROWS
from services.ledger.application.csv_import import ExpenditureTable
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
JOURNAL_PAGE_SIZE = 50
REVERSED_FILTERS = ("all", "reversed", "open")
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
    if caller.role == "kb":
        return bridge()
    caller.require_role(*NATIONAL_READERS)
    return national(year)


def _spent_in(category: str, m: dict[str, Any]) -> int:
    return int(m["spent_by_category"][category])


SORT_KEYS: dict[str, Callable[[dict[str, Any]], Any]] = {
    "name": lambda m: ((m["name"] or m["municipality_code"]).casefold(), m["municipality_code"]),
    "awarded_cents": lambda m: m["awarded_cents"],
    "advance_paid_cents": lambda m: m["advance_paid_cents"],
    **{f"spent_{c}_cents": partial(_spent_in, c) for c in CATEGORIES},
    "spent_cents": lambda m: m["spent_cents"],
    "unspent_cents": lambda m: m["unspent_cents"],
    "spent_share": lambda m: _share(m["spent_cents"], m["awarded_cents"]),
    "sisa": lambda m: _sisa_state(m),
    "settlement": lambda m: _settlement_state(m),
}
"""The national table's columns, each sortable (``?sort=<column>&order=asc|desc``), on the server: no script."""


def _share(part: int, whole: int) -> Fraction:
    return Fraction(part, whole) if whole > 0 else Fraction(-1)


def _sisa_state(m: dict[str, Any]) -> str:
    return "late" if m["sisa"] and m["sisa"]["late"] else "declared" if m["sisa"] and m["sisa"]["declared"] else "open"


def _settlement_state(m: dict[str, Any]) -> str:
    differs = m["settlement_differs_from_books"]
    return "differs" if differs else "none" if differs is None else "matches"


def _percent_bound(name: str) -> int | None:
    raw = request.args.get(name) or ""
    if raw == "":
        return None
    if not raw.isascii() or not raw.isdigit() or int(raw) > 1000:
        raise InvalidInput(f"{name} must be a whole percentage from 0 to 1000", field=name)
    return int(raw)


@dashboard.get("/national/<int:year>")
def national(year: int) -> Any:
    caller = _caller()
    caller.require_role(*NATIONAL_READERS)
    at = _point_in_time()
    answer = _service().queries.national(_year(year), at)
    libraries = _library_rows(answer)
    sort = _choice("sort", frozenset(SORT_KEYS), "name") or "name"
    order = _choice("order", ("asc", "desc"), "asc") or "asc"
    low, high = _percent_bound("min_spent_pct"), _percent_bound("max_spent_pct")
    shown = [
        m for m in answer["municipalities"]
        if (low is None or _share(m["spent_cents"], m["awarded_cents"]) >= Fraction(low, 100))
        and (high is None or _share(m["spent_cents"], m["awarded_cents"]) <= Fraction(high, 100))
    ]
    shown.sort(key=SORT_KEYS[sort], reverse=order == "desc")
    sisa_open = [m for m in answer["municipalities"] if _sisa_state(m) != "declared"]
    not_advanced = [m for m in answer["municipalities"] if m["advance_paid_cents"] < m["awarded_cents"]]
    return render_template(
        "dashboard/national.html",
        caller=caller,
        year=year,
        years=sorted(set(_years()) | {year}),
        at=at,
        n=answer,
        municipalities=shown,
        sort=sort,
        order=order,
        min_spent_pct=low,
        max_spent_pct=high,
        sisa_open=sorted(sisa_open, key=lambda m: (_sisa_state(m) != "late", m["municipality_code"])),
        not_advanced=not_advanced,
        libraries=libraries,
        accounts_open=_accounts_open(libraries),
        sisa_deadline=sisa_deadline(year),
        categories=CATEGORIES,
        labels=CATEGORY_LABELS,
    )


@dashboard.get("/bridge")
def bridge() -> Any:
    """The bridging subsidy: its frame, and each library's figures and final account (what the KB reads)."""
    caller = _caller()
    caller.require_role(*BRIDGE_READERS)
    at = _point_in_time()
    answer = _service().queries.bridge(at)
    libraries = [{**row, **_account_of(row)} for row in answer["libraries"]]
    return render_template(
        "dashboard/bridge.html",
        caller=caller,
        at=at,
        b={**answer, "account_deadline": _date_or_none(answer["account_deadline"])},
        libraries=libraries,
        accounts_open=_accounts_open(libraries),
    )


def _accounts_open(libraries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The libraries whose final account is missing (first) or late."""
    return sorted(
        (row for row in libraries if row["account_status"] in ("missing", "late")),
        key=lambda row: (row["account_status"] != "missing", row["library_id"]),
    )


def _library_rows(answer: dict[str, Any]) -> list[dict[str, Any]]:
    """Per library: the bridging subsidy (KB) with its final account's status, and the municipal funding
    received in the year."""
    rows: dict[str, dict[str, Any]] = {}
    for found in answer["bridge"]["libraries"]:
        rows[found["library_id"]] = {
            "library_id": found["library_id"],
            "name": found["name"],
            "bridge_granted_cents": found["granted_cents"],
            "bridge_paid_cents": found["paid_cents"],
            **_account_of(found),
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
                "account_status": None,
                "account_submitted_on": None,
                "account_deadline": None,
                "municipal_funding_cents": 0,
            },
        )
        row["municipal_funding_cents"] += found["received_cents"]
        row["name"] = row["name"] or found["name"]
    return sorted(rows.values(), key=lambda r: r["library_id"])


def _account_of(library: dict[str, Any]) -> dict[str, Any]:
    """A library's final account as the pages show it: its status, and its days as dates."""
    return {
        "account_status": library["account_status"],
        "account_submitted_on": _date_or_none(library["account_submitted_on"]),
        "account_deadline": _date_or_none(library["account_deadline"]),
    }


def _date_or_none(value: str | None) -> date | None:
    return date.fromisoformat(value) if value is not None else None


@dashboard.get("/municipalities/<code>/<int:year>")
def municipality(code: str, year: int) -> Any:
    caller = _caller()
    _books_code(caller, code)
    queries = _service().queries
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
        may_post=caller.owns_books_of(code),
    )


@dashboard.get("/municipalities/<code>/<int:year>/<any(balances, journal, sisa):kind>.<any(csv, xlsx):file_format>")
def municipality_download(code: str, year: int, kind: str, file_format: str) -> Any:
    """A municipality's balance, journal or SiSa account of a year as a file, with the page's session."""
    caller = _caller()
    _books_code(caller, code)
    queries = _service().queries
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


def _books_code(caller: Principal, code: str, *, readers: tuple[str, ...] = READERS) -> str:
    if not CBS_CODE.fullmatch(code):
        raise NotFound(f"no municipality {code!r}")
    caller.require_books_of(code, readers=readers, predecessors=_service().queries.predecessors_of)
    return code


def _choice(name: str, allowed: tuple[str, ...] | frozenset[str], default: str | None) -> str | None:
    value = request.args.get(name) or default
    if value is not None and value not in allowed:
        raise InvalidInput(f"{name} must be one of {', '.join(sorted(allowed))}", field=name)
    return value


def _page_number() -> int:
    raw = request.args.get("page") or "1"
    if not raw.isascii() or not raw.isdigit() or not 1 <= int(raw) <= 1_000_000:
        raise InvalidInput("page must be a whole number from 1", field="page")
    return int(raw)


@dashboard.get("/municipalities/<code>/<int:year>/journal")
def journal(code: str, year: int) -> Any:
    """A municipality's journal of a year: each posting and reversal with its event id, filtered and paged."""
    caller = _caller()
    _books_code(caller, code)
    at = _point_in_time()
    category = _choice("category", tuple(CATEGORIES), None)
    reversed_filter = _choice("reversed", REVERSED_FILTERS, "all") or "all"
    page = _page_number()
    rows, total = _service().queries.journal_page(
        code, _year(year), at, category=category, reversed_filter=reversed_filter,
        offset=(page - 1) * JOURNAL_PAGE_SIZE, limit=JOURNAL_PAGE_SIZE,
    )
    pages = max(1, -(-total // JOURNAL_PAGE_SIZE))
    if page > pages:
        raise NotFound(f"the journal has {pages} page(s) with these filters")
    return render_template(
        "dashboard/journal.html",
        caller=caller, code=code, name=_service().queries.municipality_name(code), year=year,
        years=sorted(set(_years()) | {year}), at=at, rows=rows, total=total, page=page, pages=pages,
        category=category, reversed_filter=reversed_filter, categories=CATEGORIES, labels=CATEGORY_LABELS,
        may_post=caller.owns_books_of(code),
    )


def _expenditure_in(code: str, expenditure_id: UUID) -> Any:
    found = _service().application.find_expenditure(expenditure_id)
    if found is None or found.municipality_code != code:
        raise NotFound(f"no expenditure {expenditure_id} in the books of {code}")
    return found


def _reversal_form(code: str, found: Any, *, status: int = 200, **context: Any) -> Any:
    page = render_template(
        "dashboard/reversal.html", caller=_caller(), code=code, expenditure=found, labels=CATEGORY_LABELS,
        idempotency_key=context.pop("idempotency_key", None) or str(uuid4()),
        values=context.pop("values", {}), field_errors=context.pop("field_errors", {}),
        refusal=context.pop("refusal", None),
    )
    return page, status


@dashboard.get("/municipalities/<code>/expenditures/<uuid:expenditure_id>/reversal")
def reversal_form(code: str, expenditure_id: UUID) -> Any:
    caller = _caller()
    _books_code(caller, code, readers=())
    return _reversal_form(code, _expenditure_in(code, expenditure_id))


@dashboard.post("/municipalities/<code>/expenditures/<uuid:expenditure_id>/reversal")
def reversal_post(code: str, expenditure_id: UUID) -> Any:
    """The API's reversal command from a form: the same schema, the same rules, an idempotency key per form."""
    caller = _caller()
    dashboard_csrf.check()
    _books_code(caller, code, readers=())
    values = {"reason": request.form.get("reason", ""), "booked_on": request.form.get("booked_on", "")}
    idempotency_key = _form_key()
    found = _expenditure_in(code, expenditure_id)
    try:
        body = ReversalIn().load({k: v for k, v in values.items() if v != ""})
    except ValidationError as error:
        return _reversal_form(code, found, status=422, values=values, idempotency_key=idempotency_key,
                              field_errors=error.messages)
    try:
        _status, answer = _service().application.reverse_expenditure(
            code, expenditure_id, reason=body["reason"], booked_on=body["booked_on"],
            idempotency_key=f"dashboard-{idempotency_key}", subject=caller.subject,
        )
    except ServiceError as error:
        if error.http_status in (401, 403):
            raise
        # read again: the refusal may come from a change since (a reversal by another request)
        return _reversal_form(code, _expenditure_in(code, expenditure_id), status=error.http_status, values=values,
                              idempotency_key=idempotency_key, field_errors=error.errors, refusal=error)
    return _action_done(caller, code, found.grant_year, str(answer["event_id"]), _("The expenditure was reversed."))


def _form_key() -> str:
    """The idempotency key a form was rendered with: a second submit of the same form is a retry."""
    raw = request.form.get("idempotency_key") or ""
    try:
        return str(UUID(raw))
    except ValueError:
        raise InvalidInput("the form's idempotency_key is missing or not a UUID", field="idempotency_key") from None


def _action_done(caller: Principal, code: str, year: int, event_id: str, done: str) -> Any:
    """The event the action recorded and the balance after it (read-your-writes, bounded)."""
    balance = None
    try:
        _service().wait_for_event(event_id, lambda owner: owner == code, principal_key(caller))
        balance = _service().queries.balances(code, year, PointInTime())
    except Unavailable:
        pass  # the page says the balance follows; the event is recorded either way
    page = render_template(
        "dashboard/done.html", caller=caller, code=code, year=year, event_id=event_id, done=done, b=balance,
    )
    return page, 201


def _upload_form(caller: Principal, code: str, *, status: int = 200, **context: Any) -> Any:
    page = render_template(
        "dashboard/upload.html", caller=caller, code=code, name=_service().queries.municipality_name(code),
        idempotency_key=context.pop("idempotency_key", None) or str(uuid4()),
        line_errors=sorted((context.pop("errors", None) or {}).items(), key=_line_order),
        refusal=context.pop("refusal", None),
    )
    return page, status


def _line_order(item: tuple[str, list[str]]) -> tuple[int, str]:
    """``line 12.amount`` after ``line 2.amount``: errors in the file's order."""
    key = item[0]
    number = key.removeprefix("line ").split(".", 1)[0]
    return (int(number) if number.isdigit() else 0, key)


@dashboard.get("/municipalities/<code>/upload")
def upload_form(code: str) -> Any:
    caller = _caller()
    _books_code(caller, code, readers=())
    return _upload_form(caller, code)


@dashboard.post("/municipalities/<code>/upload")
def upload_post(code: str) -> Any:
    """The API's import command from a form: a CSV or an XLSX, all rows or none, every refused line named."""
    caller = _caller()
    dashboard_csrf.check()
    _books_code(caller, code, readers=())
    idempotency_key = _form_key()
    upload = request.files.get("file")
    try:
        if upload is None or not upload.filename:
            raise InvalidInput("choose a CSV or XLSX file", field="file")
        source = _import_source(upload.filename, upload.read())
        _status, answer = _service().application.import_expenditures(
            code, source, f"dashboard-{idempotency_key}", subject=caller.subject
        )
    except ServiceError as error:
        if error.http_status in (401, 403):
            raise
        return _upload_form(caller, code, status=error.http_status, idempotency_key=idempotency_key,
                            errors=error.errors, refusal=error)
    lines = answer["expenditures"]
    last = _service().application.find_expenditure(lines[-1]["expenditure_id"])
    assert last is not None  # just recorded
    done = ngettext("%(num)d expenditure was imported.", "%(num)d expenditures were imported.", len(lines))
    return _action_done(caller, code, last.grant_year, str(lines[-1]["event_id"]), done)


def _import_source(filename: str, data: bytes) -> str | ExpenditureTable:
    if filename.lower().endswith(".xlsx"):
        try:
            header, rows = read_xlsx_table(data, max_rows=MAX_IMPORT_ROWS)
        except SpreadsheetUnreadable as error:
            raise InvalidInput(str(error), field="file") from None
        return ExpenditureTable(header, rows)
    if filename.lower().endswith(".csv"):
        try:
            return data.decode("utf-8-sig")
        except UnicodeDecodeError:
            raise InvalidInput("the CSV must be UTF-8", field="file") from None
    raise InvalidInput("the file must be a .csv or an .xlsx", field="file")


@dashboard.post("/municipalities/<code>/sisa/<int:year>/declarations")
def sisa_declaration_post(code: str, year: int) -> Any:
    """The API's SiSa declaration from the municipal page: the municipality itself, dated today."""
    caller = _caller()
    dashboard_csrf.check()
    _books_code(caller, code, readers=())
    _year(year)
    # a form sends text: the JSON types the API's schema expects, else the text itself for the schema to refuse
    grant_year, final_account = request.form.get("grant_year", ""), request.form.get("final_account", "")
    raw: dict[str, Any] = {
        "grant_year": int(grant_year) if grant_year.isascii() and grant_year.isdigit() else grant_year,
        "final_account": {"true": True, "false": False}.get(final_account, final_account),
        "reason": request.form.get("reason", ""),
    }
    try:
        body = SisaDeclarationIn().load({key: value for key, value in raw.items() if value != ""})
        _status, answer = _service().application.declare_sisa_line(
            code, year, body["grant_year"], final_account=body["final_account"], declared_by=caller.role,
            declared_on=None, reason=body["reason"],
        )
    except ValidationError as error:
        raise InvalidInput(first_error(error.messages), field=next(iter(error.messages), None)) from None
    return _action_done(caller, code, year, str(answer["event_id"]), _("The SiSa line was declared."))

