"""The bridge API for the KB (writes) and the ministry, auditors and finance (reads).

Access: every request needs a bearer token. GET is open to the roles ``kb``, ``ministry``,
``auditor`` and ``finance``; a ``municipality`` token gets 403 (the arrangement is between the KB
and the libraries; municipalities are no party to it). Every other method needs role ``kb``.
The token is checked before the body, so an unauthorised caller learns nothing from validation.
"""

from __future__ import annotations

from typing import Any

from flask import current_app, request

from services.bridge.adapters.http import schemas
from services.bridge.application.app import BridgeApplication
from services.common.blueprint import Blueprint
from services.common.http import principal
from services.common.idempotency import PAYMENT_KEY_TEXT, RULED_KEY_TEXT, header_doc, idempotent

READERS = ("kb", "ministry", "auditor", "finance")
WRITERS = ("kb",)
APPLICATION_KEY = "bridge.application"

PAYMENT_KEY = header_doc(PAYMENT_KEY_TEXT)
RULED_KEY = header_doc(RULED_KEY_TEXT)

blp = Blueprint(
    "bridge",
    __name__,
    url_prefix="/bridge",
    description="The one-off bridging subsidy (overbruggingsregeling) paid by the KB to libraries.",
)


@blp.before_request
def _authorise() -> None:
    caller = principal()
    caller.require_role(*(READERS if request.method in ("GET", "HEAD", "OPTIONS") else WRITERS))


def _service() -> BridgeApplication:
    application: BridgeApplication = current_app.extensions[APPLICATION_KEY]
    return application


def documented_errors(*statuses: int) -> Any:
    """The JSON error answers of an endpoint in its docs."""
    return blp.documented_errors(
        schemas.BridgeErrorSchema, [(status, "Refused; see `errors`.") for status in (401, 403, *statuses)]
    )


# -- frame ----------------------------------------------------------------------------------------


@blp.get("/frame")
@blp.response(200, schemas.FrameSchema)
@documented_errors(404)
def get_frame() -> Any:
    """The frame, rate, deadlines and the total granted."""
    return _service().frame()


@blp.post("/frame")
@idempotent()
@blp.doc(parameters=[RULED_KEY])
@blp.arguments(schemas.FrameSetSchema)
@blp.response(201, schemas.FrameSchema)
@documented_errors(409, 422)
def set_frame(body: dict[str, Any]) -> Any:
    """Sets the frame once.

    Defaults: € 2.7 M, 15 cents per inhabitant, account period 2019-01-01 to 2023-05-01, account due 2023-09-01.
    """
    return _service().set_frame(
        frame_cents=body["frame_cents"],
        rate=body["rate_cents_per_inhabitant"],
        account_period_start=body["account_period_start"],
        spending_deadline=body["spending_deadline"],
        account_deadline=body["account_deadline"],
    )


@blp.post("/frame/amendments")
@idempotent()
@blp.doc(parameters=[RULED_KEY])
@blp.arguments(schemas.FrameAmendSchema)
@blp.response(200, schemas.FrameSchema)
@documented_errors(404, 409, 422)
def amend_frame(body: dict[str, Any]) -> Any:
    """Changes the frame, rate or deadlines (e.g. the spending deadline moved to 2023-05-01)."""
    changes = {key: value for key, value in body.items() if key != "reason"}
    if "rate_cents_per_inhabitant" in changes:
        changes["rate"] = changes.pop("rate_cents_per_inhabitant")
    return _service().amend_frame(reason=body["reason"], **changes)


@blp.get("/frame/events")
@blp.response(200, schemas.EventSchema(many=True))
@documented_errors(404)
def frame_events() -> Any:
    """The frame stream's events as published on ido.bridge.v1."""
    return _service().frame_events()


@blp.get("/overview")
@blp.response(200, schemas.OverviewSchema)
@documented_errors(404)
def overview() -> Any:
    """The frame with totals over all libraries: paid, spent, reclaimed, late accounts."""
    return _service().overview()


# -- libraries ------------------------------------------------------------------------------------


@blp.get("/libraries")
@blp.arguments(schemas.LibrariesQuerySchema, location="query")
@blp.response(200, schemas.LibrarySchema(many=True))
@documented_errors(422)
def list_libraries(query: dict[str, Any]) -> Any:
    """The library register, optionally filtered by municipality served or by late account."""
    return _service().libraries(municipality_code=query.get("municipality"), late=query.get("late"))


@blp.post("/libraries")
@idempotent()
@blp.doc(parameters=[RULED_KEY])
@blp.arguments(schemas.LibraryRegisterSchema)
@blp.response(201, schemas.LibrarySchema)
@documented_errors(409, 422)
def register_library(body: dict[str, Any]) -> Any:
    """Registers a library organisation with its service area."""
    return _service().register_library(
        library_id=body["library_id"], name=body["name"], service_area=body["service_area"]
    )


@blp.get("/libraries/<library_id>")
@blp.response(200, schemas.LibrarySchema)
@documented_errors(404, 422)
def get_library(library_id: str) -> Any:
    """One library: service area, grant, payments, account, reclaim."""
    return _service().library(library_id)


@blp.get("/libraries/<library_id>/events")
@blp.response(200, schemas.EventSchema(many=True))
@documented_errors(404, 422)
def library_events(library_id: str) -> Any:
    """The library stream's events as published on ido.bridge.v1."""
    return _service().library_events(library_id)


@blp.put("/libraries/<library_id>/service-area")
@idempotent()
@blp.doc(parameters=[RULED_KEY])
@blp.arguments(schemas.ServiceAreaChangeSchema)
@blp.response(200, schemas.LibrarySchema)
@documented_errors(404, 409, 422)
def change_service_area(body: dict[str, Any], library_id: str) -> Any:
    """Replaces the service area (the grant stays until it is recomputed or corrected)."""
    return _service().change_service_area(library_id, service_area=body["service_area"], reason=body["reason"])


@blp.put("/libraries/<library_id>/grant")
@idempotent()
@blp.doc(parameters=[RULED_KEY])
@blp.arguments(schemas.GrantSetSchema)
@blp.response(200, schemas.LibrarySchema)
@documented_errors(404, 409, 422)
def set_grant(body: dict[str, Any], library_id: str) -> Any:
    """Enters a grant, or corrects the current one (give its `event_id` as `corrects_event_id`), within the frame."""
    corrects = body["corrects_event_id"]
    return _service().set_grant(
        library_id,
        amount_cents=body["amount_cents"],
        reason=body["reason"],
        corrects_event_id=None if corrects is None else str(corrects),
    )


@blp.post("/libraries/<library_id>/payments")
@idempotent()
@blp.doc(parameters=[PAYMENT_KEY])
@blp.arguments(schemas.PaymentSchema)
@blp.response(201, schemas.LibrarySchema)
@documented_errors(404, 409, 422)
def record_payment(body: dict[str, Any], library_id: str) -> Any:
    """Records a payment to the library; never above its grant."""
    return _service().record_payment(library_id, amount_cents=body["amount_cents"], paid_on=body["paid_on"])


@blp.post("/libraries/<library_id>/account")
@idempotent()
@blp.doc(parameters=[RULED_KEY])
@blp.arguments(schemas.AccountSchema)
@blp.response(201, schemas.LibrarySchema)
@documented_errors(404, 409, 422)
def submit_account(body: dict[str, Any], library_id: str) -> Any:
    """Records the final account; flags it late after the account deadline; reclaims what was paid and not spent.

    The account settles the subsidy at `min(spent_cents, paid)` and reclaims `paid - settled` at once; spending
    above what was paid is the library's own and is not paid out (payments stop with the account)."""
    return _service().submit_account(library_id, spent_cents=body["spent_cents"], submitted_on=body["submitted_on"])


# -- batches --------------------------------------------------------------------------------------


@blp.post("/grant-batches")
@idempotent()
@blp.doc(parameters=[RULED_KEY])
@blp.response(201, schemas.GrantBatchSchema)
@documented_errors(404, 409, 422)
def compute_grants() -> Any:
    """Computes every registered library's grant in one transaction; refused whole when above the frame."""
    return _service().compute_grants()


@blp.post("/payment-batches")
@idempotent()
@blp.doc(parameters=[PAYMENT_KEY])
@blp.arguments(schemas.PaymentBatchSchema)
@blp.response(201, schemas.PaymentBatchResultSchema)
@documented_errors(404, 409, 422)
def pay_batch(body: dict[str, Any]) -> Any:
    """Pays several libraries in one transaction (all or none); without `payments`, all outstanding grants."""
    return _service().pay_batch(paid_on=body["paid_on"], payments=body["payments"])
