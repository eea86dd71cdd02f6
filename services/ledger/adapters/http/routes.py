"""The ledger's HTTP endpoints: postings (write side) and balances (read side, from the view)."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any, TypeVar
from uuid import UUID

from flask import current_app, request

from contracts.identifiers import CBS_CODE, CBS_CODE_REASON, FIRST_YEAR, LAST_YEAR, is_year
from services.common.auth import Principal
from services.common.blueprint import Blueprint
from services.common.body_check import CheckedBodyParser
from services.common.errors import Forbidden, InvalidInput
from services.common.http import principal
from services.common.idempotency import idempotent
from services.common.json_answer import json_answer
from services.common.principal_limit import principal_key
from services.ledger.adapters.http.schemas import (
    BalancesOut,
    BridgeBalancesOut,
    CloseYearIn,
    ExpenditureIn,
    ExpenditureOut,
    ExpenditureRecordedOut,
    IdempotencyHeaders,
    ImportOut,
    JournalQuery,
    LedgerErrorSchema,
    NationalOut,
    PointInTimeQuery,
    ReversalIn,
    ReversalOut,
    SettlementProposalOut,
    SisaDeclarationIn,
    SisaDeclarationOut,
    SisaOut,
    YearClosedOut,
)
from services.ledger.adapters.http.tables import (
    balance_table,
    csv_response,
    journal_table,
    national_table,
    sisa_table,
)
from services.ledger.application.app import LedgerApplication
from services.ledger.application.service import LedgerService
from services.ledger.domain.errors import ExpenditureNotFound
from services.ledger.read_side import PointInTime

READERS = ("auditor", "finance", "ministry")
NATIONAL_READERS = ("auditor", "finance", "ministry")
BRIDGE_READERS = (*NATIONAL_READERS, "kb")
"""The bridging subsidy's figures and accounts: the national readers, and the KB that pays it."""
F = TypeVar("F", bound=Callable[..., Any])

ERROR_TEXT = {
    401: "No valid bearer token.",
    403: "The caller may not reach these books.",
    404: "Not found.",
    409: "Refused: idempotency key reused, already reversed, or the year is closed.",
    422: "Invalid input; `errors` names each field at fault.",
    429: "`includes_event_id`: this caller named more events the ledger could not answer for than "
    "`IDO_READ_YOUR_WRITES_UNANSWERED_PER_MINUTE` in 60 s; retry after `Retry-After` seconds.",
    503: "`includes_event_id`: the event is not projected yet, is none you may read, or too many reads wait "
    "already; or the database is not reachable. Retry after `Retry-After` seconds.",
}


def _service() -> LedgerService:
    found: LedgerService = current_app.extensions["ledger"]
    return found


def documented_errors(blueprint: Blueprint, *statuses: int) -> Callable[[F], F]:
    return blueprint.documented_errors(LedgerErrorSchema, [(status, ERROR_TEXT[status]) for status in statuses])


def _code(code: str) -> str:
    if not CBS_CODE.fullmatch(code):
        raise InvalidInput(CBS_CODE_REASON, field="municipality_code")
    return code


def _require_readable(code: str) -> None:
    require_readable(principal(), _service(), code)


def require_readable(caller: Principal, service: LedgerService, code: str) -> None:
    """The books of ``code`` are the caller's, a predecessor's of the caller's (a successor answers
    for the grants of the municipalities merged into it), or the caller has a reading role."""
    caller.require_books_of(_code(code), readers=READERS, predecessors=service.queries.predecessors_of)


def may_read(caller: Principal, service: LedgerService, code: str | None) -> bool:
    """The caller may read the books of ``code`` (``None``: national figures, the reading roles only)."""
    try:
        if code is None:
            caller.require_role(*READERS)
        else:
            require_readable(caller, service, code)
    except Forbidden:
        return False
    return True


def _point(args: dict[str, Any]) -> PointInTime:
    return point_in_time(principal(), _service(), args)


def point_in_time(caller: Principal, service: LedgerService, args: dict[str, Any]) -> PointInTime:
    """The point a read is answered at, once the event it names (``includes_event_id``) is projected."""
    if args.get("includes_event_id") is not None:
        service.wait_for_event(
            str(args["includes_event_id"]), partial(may_read, caller, service), principal_key(caller)
        )
    return PointInTime(as_of=args.get("as_of"), known_at=args.get("known_at"))


def own_books_or_ministry(caller: Principal, code: str) -> None:
    """The municipality itself, or the ministry on its behalf."""
    caller.require_books_of(_code(code), readers=("ministry",))


def _authorise_first() -> None:
    """The caller, then its right to the route (the books its path names, its role), before anything of the
    request is read: a caller who may not reach these books gets 401 or 403, never the validation of its input
    (422) or an idempotency answer (409), and nothing of it is processed. Payments and bridge check the role
    before the body too (docs/decisions.md, thirty-second round)."""
    caller = principal()
    endpoint = request.endpoint
    if endpoint is not None and endpoint in RIGHTS:
        RIGHTS[endpoint](caller, request.view_args or {})


CSV_DOC = {
    "200": {
        "description": "CSV. A text that would start a spreadsheet formula (`=`, `+`, `-`, `@`, tab, carriage "
        "return; also right after `,`, `;`, a tab or a line break inside it) is written behind a single quote; "
        "every text is quoted, amounts are plain numbers (docs/api/README.md, CSV exports).",
        "content": {"text/csv": {"schema": {"type": "string"}}},
    }
}

# ----------------------------------------------------------------------------------------------
# Write side
# ----------------------------------------------------------------------------------------------

expenditures = Blueprint(
    "expenditures",
    __name__,
    url_prefix="/v1/municipalities",
    description="A municipality's own postings: expenditures, reversals, imports; closing a year.",
)
# The posting's body checked by its compiled JSON Schema first (services/common/body_check.py). Only here for
# now: payments' and bridge's schemas are not in its differential test yet (docs/decisions.md, twenty-fourth round).
expenditures.ARGUMENTS_PARSER = CheckedBodyParser()
POSTING_HEADERS, POSTING_BODY = IdempotencyHeaders, ExpenditureIn
"""The posting's arguments, loaded the same way by its fast path (posting_fast_path.py)."""


expenditures.before_request(_authorise_first)


# No claim row for a posting (the hot path): its stream id derives from the key, so the event store's
# uniqueness claims the key in the event's own commit (services/common/idempotency.py).
@expenditures.route("/<code>/expenditures", methods=["POST"])
@expenditures.arguments(POSTING_HEADERS, location="headers")
@expenditures.arguments(POSTING_BODY)
@expenditures.response(201, ExpenditureRecordedOut)
@documented_errors(expenditures, 401, 403, 409, 422)
def post_expenditure(headers: dict[str, Any], body: dict[str, Any], code: str) -> Any:
    """Record one expenditure of the grant (only the municipality itself).

    422 names `grant_year` when the ledger knows no award of that year for the municipality (unless the
    year is opened by `IDO_YEARS_OPEN_BEFORE_AWARD`), and `municipality_code`, naming the successor, when
    the municipality merged and the expenditure is booked on or after the merger's effective date."""
    status, answer = record_posting(
        _service().application, principal(), code, body, headers.get("idempotency_key")
    )
    # The answer's values are already what ExpenditureRecordedOut dumps (tests/ledger/test_write_side.py holds
    # the bytes equal): written by orjson, not dumped and encoded again (issue 17, fourteenth round).
    return json_answer(answer, status)


def may_post(caller: Principal, code: str) -> None:
    """Only the municipality itself posts to its books (403), under a CBS code (422): expenditures, imports,
    reversals."""
    caller.require_books_of(_code(code))


def record_posting(
    application: LedgerApplication, caller: Principal, code: str, body: dict[str, Any], idempotency_key: str | None
) -> tuple[int, dict[str, Any]]:
    """What a posting does once its headers and body are loaded, by the route and by its fast path
    (posting_fast_path.py): the caller's right, then the command."""
    may_post(caller, code)
    return application.record_expenditure(code, body, idempotency_key, subject=caller.subject)


@expenditures.route("/<code>/expenditures:import", methods=["POST"])
@idempotent(rerun_abandoned=True)
@expenditures.arguments(IdempotencyHeaders, location="headers")
@expenditures.doc(
    requestBody={
        "required": True,
        "description": "CSV with header grant_year,category,amount_cents,booked_on,counterparty_id,"
        "counterparty_name,description,reference. Validated whole; applied all or nothing. Separator `,` or "
        "`;` (the first of them on the header line). Instead of `amount_cents` (whole cents, digits only) a "
        "column `amount` may give euros: `1250.50`, `1.250,50`, `€ 1.250,50`, `1,250.50`; an ambiguous amount "
        "(one `.` or `,` followed by exactly three digits, such as `1.250`) is refused, naming the line "
        "(`line <n>.amount`). See docs/api/README.md, CSV imports.",
        "content": {"text/csv": {"schema": {"type": "string"}}},
    }
)
@expenditures.response(201, ImportOut)
@documented_errors(expenditures, 401, 403, 409, 422)
def import_expenditures(headers: dict[str, Any], code: str) -> Any:
    """Import a CSV of expenditures atomically; every bad row is named (``line <n>.<field>``), also a row
    into a grant year without a known award (``line <n>.grant_year``) or under a merged code
    (``line <n>.municipality_code``)."""
    caller = principal()
    may_post(caller, code)
    try:
        text = request.get_data(as_text=False).decode("utf-8-sig")
    except UnicodeDecodeError:
        raise InvalidInput("the CSV must be UTF-8", field="_body") from None
    status, answer = _service().application.import_expenditures(
        code, text, headers.get("idempotency_key"), subject=caller.subject
    )
    return answer, status


@expenditures.route("/<code>/expenditures/<uuid:expenditure_id>", methods=["GET"])
@expenditures.response(200, ExpenditureOut)
@documented_errors(expenditures, 401, 403, 404)
def get_expenditure(code: str, expenditure_id: UUID) -> Any:
    """One expenditure as recorded (from the event store, not the view)."""
    _require_readable(code)
    found = _service().application.find_expenditure(expenditure_id)
    if found is None or found.municipality_code != code:
        raise ExpenditureNotFound(f"no expenditure {expenditure_id} in the books of {code}", field="expenditure_id")
    return {
        "expenditure_id": found.expenditure_id,
        "municipality_code": found.municipality_code,
        "grant_year": found.grant_year,
        "category": found.category,
        "amount_cents": found.amount_cents,
        "booked_on": found.booked_on,
        "counterparty": found.counterparty,
        "description": found.description,
        "reference": found.reference,
        "event_id": found.recorded_event_id,
        "reversed": found.reversed,
        "reversal_event_id": found.reversal_event_id,
    }


@expenditures.route("/<code>/expenditures/<uuid:expenditure_id>/reversal", methods=["POST"])
@idempotent(rerun_abandoned=True)
@expenditures.arguments(IdempotencyHeaders, location="headers")
@expenditures.arguments(ReversalIn)
@expenditures.response(201, ReversalOut)
@documented_errors(expenditures, 401, 403, 404, 409, 422)
def reverse_expenditure(headers: dict[str, Any], body: dict[str, Any], code: str, expenditure_id: UUID) -> Any:
    """Reverse an expenditure once (an ExpenditureReversed event referencing it; nothing is deleted).

    A second reversal of it is 409 naming `expenditure_id`, whether it carries a new Idempotency-Key or
    none, and stores nothing. A retry with the first reversal's key and request gets the first answer,
    also when the service stopped during the first request (the reversal's event id derives from the key)."""
    caller = principal()
    may_post(caller, code)
    status, answer = _service().application.reverse_expenditure(
        code,
        expenditure_id,
        reason=body["reason"],
        booked_on=body["booked_on"],
        idempotency_key=headers.get("idempotency_key"),
        subject=caller.subject,
    )
    return answer, status


@expenditures.route("/<code>/years/<int:year>/close", methods=["POST"])
@idempotent(rerun_abandoned=True)
@expenditures.arguments(IdempotencyHeaders, location="headers")
@expenditures.arguments(CloseYearIn)
@expenditures.response(201, YearClosedOut)
@documented_errors(expenditures, 401, 403, 409, 422)
def close_year(headers: dict[str, Any], body: dict[str, Any], code: str, year: int) -> Any:
    """Close a grant year for a municipality (the ministry; auditors read only); later postings into it get 409.

    A year closes once: closing it again is 409 naming `year`, with a new Idempotency-Key or none. A retry with
    the first close's key and request gets the first answer, also when the service stopped during it."""
    caller = principal()
    caller.require_role("ministry")
    if not is_year(year):
        raise InvalidInput(f"must be a year between {FIRST_YEAR} and {LAST_YEAR}", field="year")
    status, answer = _service().application.close_year(
        _code(code),
        year,
        closed_by=caller.role,
        final_account=body["final_account"],
        closed_on=body["closed_on"],
        idempotency_key=headers.get("idempotency_key"),
        subject=caller.subject,
    )
    return answer, status


@expenditures.route("/<code>/sisa/<int:year>/declarations", methods=["POST"])
@idempotent(rerun_abandoned=True)
@expenditures.arguments(IdempotencyHeaders, location="headers")
@expenditures.arguments(SisaDeclarationIn)
@expenditures.response(201, SisaDeclarationOut)
@documented_errors(expenditures, 401, 403, 409, 422)
def declare_sisa_line(headers: dict[str, Any], body: dict[str, Any], code: str, year: int) -> Any:
    """Declare the eindverantwoording of one SiSa line (grant year G in the accounts of year T): the
    municipality itself, or the ministry on its behalf with a reason. A line is declared once."""
    caller = principal()
    own_books_or_ministry(caller, code)
    if not is_year(year):
        raise InvalidInput(f"must be a year between {FIRST_YEAR} and {LAST_YEAR}", field="year")
    if caller.role == "municipality" and body["declared_on"] is not None:
        raise InvalidInput("a municipality's declaration is dated the day it is recorded", field="declared_on")
    status, answer = _service().application.declare_sisa_line(
        code,
        year,
        body["grant_year"],
        final_account=body["final_account"],
        declared_by=caller.role,
        declared_on=body["declared_on"],
        reason=body["reason"],
    )
    return answer, status


# ----------------------------------------------------------------------------------------------
# Read side
# ----------------------------------------------------------------------------------------------

balances = Blueprint(
    "balances",
    __name__,
    url_prefix="/v1",
    description="Balances projected from ido.grants.v1, ido.bridge.v1 and ido.expenditures.v1, at any point in time.",
)


balances.before_request(_authorise_first)

BALANCES_OUT = BalancesOut()
"""The balance's answer, dumped by the same schema on its fast path (balance_fast_path.py)."""


@balances.route("/municipalities/<code>/balances/<int:year>", methods=["GET"])
@balances.arguments(PointInTimeQuery, location="query")
@balances.response(200, BALANCES_OUT)
@documented_errors(balances, 401, 403, 422, 429, 503)
def municipality_balances(args: dict[str, Any], code: str, year: int) -> Any:
    """A municipality's balance of one grant year (own books; auditor, finance and ministry read all)."""
    _require_readable(code)
    return balances_at(principal(), _service(), code, year, args)


def balances_at(caller: Principal, service: LedgerService, code: str, year: int, args: dict[str, Any]) -> Any:
    """The balance's work once the caller may read the books (its fast path's command too)."""
    return service.queries.balances(code, year, point_in_time(caller, service, args))


@balances.route("/municipalities/<code>/balances/<int:year>.csv", methods=["GET"])
@balances.arguments(PointInTimeQuery, location="query")
@balances.doc(responses=CSV_DOC)
@documented_errors(balances, 401, 403, 422, 429, 503)
def municipality_balances_csv(args: dict[str, Any], code: str, year: int) -> Any:
    """The same balance as CSV."""
    _require_readable(code)
    return csv_response(balance_table(_service().queries.balances(code, year, _point(args)), code, year))


@balances.route("/balances/<int:year>", methods=["GET"])
@balances.arguments(PointInTimeQuery, location="query")
@balances.response(200, NationalOut)
@documented_errors(balances, 401, 403, 422, 429, 503)
def national_balances(args: dict[str, Any], year: int) -> Any:
    """Every municipality, national totals against the year's frame, bridging subsidy per library."""
    principal().require_role(*NATIONAL_READERS)
    return _service().queries.national(year, _point(args))


@balances.route("/bridge", methods=["GET"])
@balances.arguments(PointInTimeQuery, location="query")
@balances.response(200, BridgeBalancesOut)
@documented_errors(balances, 401, 403, 422, 429, 503)
def bridge_balances(args: dict[str, Any]) -> Any:
    """The bridging subsidy: its frame and account deadline, per library the figures and the status of its
    final account (on time, late, missing, not yet due), as of a day. The KB reads it, as the national readers do."""
    principal().require_role(*BRIDGE_READERS)
    return _service().queries.bridge(_point(args))


@balances.route("/balances/<int:year>.csv", methods=["GET"])
@balances.arguments(PointInTimeQuery, location="query")
@balances.doc(responses=CSV_DOC)
@documented_errors(balances, 401, 403, 422, 429, 503)
def national_balances_csv(args: dict[str, Any], year: int) -> Any:
    """Every municipality's balance of the year as CSV (one row each), with the national view's flags
    (a settlement that differs from the books, a late SiSa account)."""
    principal().require_role(*NATIONAL_READERS)
    return csv_response(national_table(_service().queries.national(year, _point(args)), year))


@balances.route("/municipalities/<code>/sisa/<int:year>", methods=["GET"])
@balances.arguments(PointInTimeQuery, location="query")
@balances.response(200, SisaOut)
@documented_errors(balances, 401, 403, 422, 429, 503)
def sisa(args: dict[str, Any], code: str, year: int) -> Any:
    """The SiSa account of accounts year T: a line per grant decision G <= T (spending in T on G, the
    cumulative on G up to T, the municipality's eindverantwoording), late after 15 July of T+1."""
    _require_readable(code)
    return _service().queries.sisa(code, year, _point(args))


@balances.route("/municipalities/<code>/sisa/<int:year>.csv", methods=["GET"])
@balances.arguments(PointInTimeQuery, location="query")
@balances.doc(responses=CSV_DOC)
@documented_errors(balances, 401, 403, 422, 429, 503)
def sisa_csv(args: dict[str, Any], code: str, year: int) -> Any:
    """The same SiSa account as CSV: one row per line (per grant decision)."""
    _require_readable(code)
    return csv_response(sisa_table(_service().queries.sisa(code, year, _point(args)), code, year))


@balances.route("/municipalities/<code>/years/<int:year>/settlement-proposal", methods=["GET"])
@balances.arguments(PointInTimeQuery, location="query")
@balances.response(200, SettlementProposalOut)
@documented_errors(balances, 401, 403, 422, 429, 503)
def settlement_proposal(args: dict[str, Any], code: str, year: int) -> Any:
    """The ledger's own figure for settling the grant of the year, with the offsets it was read at:
    pass its ``books`` to payments' ``POST /v1/years/{year}/grants/{code}/settlements``."""
    _require_readable(code)
    return _service().queries.settlement_proposal(code, year, _point(args))


@balances.route("/municipalities/<code>/journal.csv", methods=["GET"])
@balances.arguments(JournalQuery, location="query")
@balances.doc(responses=CSV_DOC)
@documented_errors(balances, 401, 403, 422, 429, 503)
def journal_csv(args: dict[str, Any], code: str) -> Any:
    """The expenditure journal (recordings and reversals, signed) as CSV."""
    _require_readable(code)
    rows = _service().queries.journal_rows(code, args.get("year"), _point(args))
    return csv_response(journal_table(rows, code, None))


Right = Callable[[Principal, dict[str, Any]], None]


def _readable_books(caller: Principal, view_args: dict[str, Any]) -> None:
    require_readable(caller, _service(), view_args["code"])


def _in_path(rule: Callable[[Principal, str], None]) -> Right:
    return lambda caller, view_args: rule(caller, view_args["code"])


def _role(*roles: str) -> Right:
    return lambda caller, _view_args: caller.require_role(*roles)


RIGHTS: dict[str, Right] = {
    "expenditures.post_expenditure": _in_path(may_post),
    "expenditures.import_expenditures": _in_path(may_post),
    "expenditures.get_expenditure": _readable_books,
    "expenditures.reverse_expenditure": _in_path(may_post),
    "expenditures.close_year": _role("ministry"),
    "expenditures.declare_sisa_line": _in_path(own_books_or_ministry),
    "balances.municipality_balances": _readable_books,
    "balances.municipality_balances_csv": _readable_books,
    "balances.national_balances": _role(*NATIONAL_READERS),
    "balances.bridge_balances": _role(*BRIDGE_READERS),
    "balances.national_balances_csv": _role(*NATIONAL_READERS),
    "balances.sisa": _readable_books,
    "balances.sisa_csv": _readable_books,
    "balances.settlement_proposal": _readable_books,
    "balances.journal_csv": _readable_books,
}
"""Each route's rule of who may reach it, by endpoint: checked by its blueprint's first hook, before the route
reads a body, a header or a query string (``_authorise_first``). The routes check it again where they act."""

BLUEPRINTS = (expenditures, balances)
