"""The payments API: the ministry (BZK) records frames, awards, payments, settlements and reclaims.

Reads: ministry, auditor and finance read everything; a municipality reads only the grants it
holds or held; the KB gets 403. Writes: role ``ministry`` only. No or a bad token: 401.
"""

from __future__ import annotations

from typing import Any

from flask import current_app, request
from werkzeug.exceptions import RequestEntityTooLarge

from services.common.blueprint import Blueprint
from services.common.errors import Forbidden
from services.common.http import principal
from services.common.idempotency import PAYMENT_KEY_TEXT, RULED_KEY_TEXT, header_doc, idempotent
from services.payments.adapters.http.schemas import (
    AdvanceRequest,
    AnnexErrorSchema,
    AnnexQuery,
    AnnexResultSchema,
    AwardRequest,
    FrameAmendRequest,
    FrameSetRequest,
    GrantDetailSchema,
    GrantListQuery,
    GrantListSchema,
    GrantSchema,
    MergerRequest,
    MergerResultSchema,
    PaymentsErrorSchema,
    ReceiptRequest,
    ReclaimRequest,
    SchemeDetailSchema,
    SchemeSchema,
    SettlementRequest,
)
from services.payments.application.app import PaymentsApplication, check_code
from services.payments.domain.errors import PaymentsError
from services.payments.domain.grant import Grant
from services.payments.domain.scheme import check_year
from services.payments.domain.settlement import BooksFigure

WRITER = "ministry"
READERS = ("ministry", "auditor", "finance")

PAYMENT_KEY = header_doc(PAYMENT_KEY_TEXT)
RULED_KEY = header_doc(RULED_KEY_TEXT)

blp = Blueprint(
    "payments", __name__, url_prefix="/v1",
    description="The SPUK IDO grant: yearly frame, awards, advances, settlement (vaststelling), reclaims, mergers.",
)


class UnsupportedMediaType(PaymentsError):
    http_status = 415
    code = "unsupported_media_type"


def _service() -> PaymentsApplication:
    app: PaymentsApplication = current_app.extensions["payments.application"]
    return app


@blp.before_request
def _authorise() -> None:
    """Authentication and the write role are checked before the body is even read."""
    caller = principal()
    if request.method not in ("GET", "HEAD", "OPTIONS"):
        caller.require_role(WRITER)


def _may_read(grant: Grant) -> bool:
    caller = principal()
    if caller.role == "municipality":
        return caller.municipality_code in grant.municipality_codes
    return caller.role in READERS


def _readable(grant: Grant) -> Grant:
    caller = principal()
    if not _may_read(grant):
        if caller.role == "municipality":
            raise Forbidden(
                f"a token of {caller.municipality_code} may not read the grant of {grant.municipality_code}"
            )
        raise Forbidden(f"role {caller.role!r} may not read grants; allowed: municipality (its own), "
                        f"{', '.join(READERS)}")
    return grant


def _checked(year: int, code: str | None = None) -> None:
    check_year(year)
    if code is not None:
        check_code(code)


AUTH_ERRORS = (
    (401, "No, an expired, revoked or invalid bearer token."),
    (403, "The token's role or municipality may not do this."),
)


def documented_errors(*extra: tuple[int, str]) -> Any:
    """The error responses (JSON `{code, status, message, errors}`) in an endpoint's docs."""
    return blp.documented_errors(PaymentsErrorSchema, (*AUTH_ERRORS, *extra))


# --- the frame ----------------------------------------------------------------------------------


@blp.route("/years/<int:year>/frame", methods=["PUT"])
@idempotent()
@blp.doc(parameters=[RULED_KEY])
@blp.arguments(FrameSetRequest)
@blp.response(201, SchemeSchema, description="The frame is set.")
@blp.alt_response(200, schema=SchemeSchema, description="The same frame was already set: nothing changed.")
@documented_errors(
    (409, "The frame is already set to another amount: it changes only by an amendment."),
    (422, "Invalid field, or a year outside the grant's years."),
)
def set_frame(body: dict[str, Any], year: int) -> Any:
    """Set the year's frame (the budget all awards of the year must fit in)."""
    _checked(year)
    outcome = _service().set_frame(year, body["frame_cents"], body["decided_on"])
    return outcome.value, (201 if outcome.created else 200)


@blp.route("/years/<int:year>/frame", methods=["GET"])
@blp.response(200, SchemeDetailSchema)
@documented_errors((404, "No frame is set for the year."), (422, "A year outside the grant's years."))
def get_frame(year: int) -> Any:
    """The year's frame, the sum awarded, and the scheme's event history."""
    principal().require_role(*READERS)
    _checked(year)
    scheme = _service().scheme(year)
    return {**SchemeSchema().dump(scheme), "events": _service().scheme_history(scheme)}


@blp.route("/years/<int:year>/frame/amendments", methods=["POST"])
@idempotent()
@blp.doc(parameters=[RULED_KEY])
@blp.arguments(FrameAmendRequest)
@blp.response(201, SchemeSchema, description="The frame is amended.")
@documented_errors(
    (404, "No frame is set for the year."),
    (409, "Changed concurrently; retry."),
    (422, "Invalid field; the same frame; or a frame below what is already awarded."),
)
def amend_frame(body: dict[str, Any], year: int) -> Any:
    """Amend the year's frame (never below the sum already awarded; a reason is required)."""
    _checked(year)
    return _service().amend_frame(year, body["frame_cents"], body["decided_on"], body["reason"])


# --- awards -------------------------------------------------------------------------------------


@blp.route("/years/<int:year>/grants", methods=["POST"])
@idempotent()
@blp.doc(parameters=[RULED_KEY])
@blp.arguments(AwardRequest)
@blp.response(201, GrantSchema, description="The grant is awarded.")
@blp.alt_response(200, schema=GrantSchema, description="The identical award already exists: nothing changed.")
@documented_errors(
    (404, "No frame is set for the year."),
    (409, "The municipality already has another award this year, or merged into another (award the successor); "
          "or changed concurrently."),
    (422, "Invalid field, or the award would exceed the year's frame."),
)
def award_grant(body: dict[str, Any], year: int) -> Any:
    """Award one municipality its grant for the year."""
    _checked(year)
    outcome = _service().award_grant(
        year, body["municipality_code"], body["municipality_name"], body["amount_cents"], body["awarded_on"]
    )
    return outcome.value, (201 if outcome.created else 200)


@blp.route("/years/<int:year>/annex", methods=["POST"])
@idempotent()
@blp.doc(parameters=[RULED_KEY])
@blp.arguments(AnnexQuery, location="query")
@blp.doc(
    requestBody={
        "required": True,
        "description": (
            "The regulation's annex as CSV (UTF-8): `cbs_code,name,amount` per line, amount in euros with at "
            "most two decimals, e.g. `GM0363,Amsterdam,725000.00`, or as a Dutch finance office writes it, "
            "`GM0363;Amsterdam;€ 725.000,00` (separator `,` or `;`: the first of them on the first line that "
            "is not a comment). An ambiguous amount (one `.` or `,` followed by exactly three digits, such as "
            "`1.234`) is refused, naming the line. Lines starting with `#` are comments; an optional first "
            "row `cbs_code,name,amount` is a header. See docs/api/README.md, CSV imports."
        ),
        "content": {"text/csv": {"schema": {"type": "string"}}},
    }
)
@blp.response(201, AnnexResultSchema, description="The new rows are awarded, as one batch.")
@blp.alt_response(200, schema=AnnexResultSchema, description="Every row was already awarded identically.")
@blp.alt_response(
    422, schema=AnnexErrorSchema,
    description=(
        "The file is refused whole: every bad row (line, field, reason; a municipality that merged into another "
        "is a bad row), or the frame it would break."
    ),
)
@documented_errors(
    (404, "No frame is set for the year."),
    (409, "Changed concurrently; retry."),
    (413, "The file is too large."),
    (415, "The body is not text/csv."),
)
def import_annex(query: dict[str, Any], year: int) -> Any:
    """Import the annex (all municipalities' amounts) as one atomic batch of awards; idempotent."""
    _checked(year)
    if request.mimetype != "text/csv":
        raise UnsupportedMediaType(
            f"the annex must be sent as text/csv, not {request.mimetype or 'no content type'}", field="Content-Type"
        )
    data = request.get_data(cache=False)
    limit = request.max_content_length
    if limit is not None and request.content_length is None and len(data) >= limit:
        # A chunked body is cut at the limit without an error (werkzeug's LimitedStream): never import a
        # file that may have been cut short; a body with Content-Length over the limit is refused before.
        raise RequestEntityTooLarge(f"the annex must be smaller than {limit} bytes")
    result = _service().import_annex(year, data, query["awarded_on"])
    return result, (201 if result.awarded else 200)


# --- reads --------------------------------------------------------------------------------------


@blp.route("/years/<int:year>/grants", methods=["GET"])
@blp.arguments(GrantListQuery, location="query")
@blp.response(200, GrantListSchema)
@documented_errors((404, "No frame is set for the year."), (422, "Invalid year or municipality code."))
def list_grants(query: dict[str, Any], year: int) -> Any:
    """The grants of a year (a municipality sees only its own, including those it held before a merger)."""
    _checked(year)
    caller = principal()
    if caller.role != "municipality":
        caller.require_role(*READERS)
    code = query.get("municipality_code")
    app = _service()
    grants = app.grants_of(year, code) if code else app.grants(year)
    visible = [g for g in grants if _may_read(g)]
    return {"year": year, "count": len(visible), "grants": visible}


@blp.route("/years/<int:year>/grants/<string:code>", methods=["GET"])
@blp.response(200, GrantDetailSchema)
@documented_errors(
    (404, "No such grant."),
    (409, "The code holds several grants of the year through mergers: use the original code."),
    (422, "Invalid year or municipality code."),
)
def get_grant(year: int, code: str) -> Any:
    """One grant with its full event history; found by its original code or by its current holder's."""
    _checked(year, code)
    grant = _readable(_service().grant(year, code))
    return {**GrantSchema().dump(grant), "events": _service().grant_history(grant)}


# --- payments, settlement, reclaim --------------------------------------------------------------

GRANT_WRITE_ERRORS = (
    (404, "No such grant."),
    (409, "The grant's state does not allow it (e.g. not settled, already settled, a stale correction), "
          "or it changed concurrently."),
    (422, "Invalid field, or a rule of the grant broken (stated in the message)."),
)


@blp.route("/years/<int:year>/grants/<string:code>/advances", methods=["POST"])
@idempotent()
@blp.doc(parameters=[PAYMENT_KEY])
@blp.arguments(AdvanceRequest)
@blp.response(201, GrantSchema)
@documented_errors(*GRANT_WRITE_ERRORS)
def pay_advance(body: dict[str, Any], year: int, code: str) -> Any:
    """Record a payment of (part of) the advance; payments never exceed the award."""
    _checked(year, code)
    return _service().pay_advance(year, code, body["amount_cents"], body["paid_on"])


@blp.route("/years/<int:year>/grants/<string:code>/settlements", methods=["POST"])
@idempotent()
@blp.doc(parameters=[RULED_KEY])
@blp.arguments(SettlementRequest)
@blp.response(201, GrantSchema)
@documented_errors(*GRANT_WRITE_ERRORS)
def settle(body: dict[str, Any], year: int, code: str) -> Any:
    """Record the settlement (vaststelling), or correct the latest one by naming it in corrects_event_id.

    Settling from the books: pass the ledger's settlement proposal as ``books``; the reported spending
    then defaults to its figure, and one that differs needs a ``reason``. The cap and the reclaim follow
    the year's settlement rules (``IDO_SETTLEMENT_RULES``)."""
    _checked(year, code)
    corrects = body.get("corrects_event_id")
    books = body.get("books")
    return _service().settle(
        year, code,
        reported_spending_cents=body.get("reported_spending_cents"),
        books=BooksFigure(books["spent_cents"], books["offsets"]) if books is not None else None,
        settled_cents=body.get("settled_cents"),
        settled_on=body["settled_on"],
        corrects_event_id=str(corrects) if corrects else None,
        reason=body.get("reason"),
    )


@blp.route("/years/<int:year>/grants/<string:code>/reclaims", methods=["POST"])
@idempotent()
@blp.doc(parameters=[RULED_KEY])
@blp.arguments(ReclaimRequest)
@blp.response(201, GrantSchema)
@documented_errors(*GRANT_WRITE_ERRORS)
def issue_reclaim(body: dict[str, Any], year: int, code: str) -> Any:
    """Record the reclaim (terugvordering) issued: exactly what was paid and not settled."""
    _checked(year, code)
    return _service().issue_reclaim(year, code, body["amount_cents"], body["issued_on"])


@blp.route("/years/<int:year>/grants/<string:code>/reclaims/receipts", methods=["POST"])
@idempotent()
@blp.doc(parameters=[PAYMENT_KEY])
@blp.arguments(ReceiptRequest)
@blp.response(201, GrantSchema)
@documented_errors(*GRANT_WRITE_ERRORS)
def receive_reclaim(body: dict[str, Any], year: int, code: str) -> Any:
    """Record a receipt of the reclaimed money; never more than is outstanding."""
    _checked(year, code)
    return _service().receive_reclaim(year, code, body["amount_cents"], body["received_on"])


# --- mergers ------------------------------------------------------------------------------------


@blp.route("/municipalities/<string:code>/merger", methods=["POST"])
@idempotent()
@blp.doc(parameters=[RULED_KEY])
@blp.arguments(MergerRequest)
@blp.response(200, MergerResultSchema)
@documented_errors(
    (404, "The municipality never held a grant."),
    (409, "A grant of it passed to another successor before, the successor merged itself (merge into where it "
          "went), this merger was recorded with another effective date, or every grant it holds is closed (a "
          "merger is recorded by the open grants it passes on; nothing is stored); or changed concurrently."),
    (422, "Invalid field (e.g. merging into itself)."),
)
def merge(body: dict[str, Any], code: str) -> Any:
    """The municipality merged into a successor: its open grants, of every year, pass to the successor."""
    check_code(code, "code")
    return _service().merge_municipality(code, body["successor_code"], body["effective_on"])
