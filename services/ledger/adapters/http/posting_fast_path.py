"""The posting's fast path: ``POST /v1/municipalities/<code>/expenditures`` answered in front of Flask
(services/common/fast_path.py), by the route's own checks and command (routes.py: ``may_post``,
``record_posting``, ``POSTING_HEADERS``, ``POSTING_BODY``), at a third less CPU a posting (issue 17).

Its headers and its body are loaded by the same fast checks the route's parser tries first
(services/common/header_check.py, services/common/body_check.py); one they do not pass (a body marshmallow
might refuse or read otherwise) is declined, and the route answers it through webargs as before.
"""

from __future__ import annotations

import re
from functools import partial

from flask import Flask
from werkzeug.datastructures import EnvironHeaders

from services.common.auth import Principal
from services.common.body_check import checkable
from services.common.fast_path import Command, FastPathOutOfStep, JsonPostFastPath
from services.common.header_check import checkable_headers
from services.ledger.adapters.http.routes import (
    POSTING_BODY,
    POSTING_HEADERS,
    _authorise_first,
    may_post,
    record_posting,
)
from services.ledger.application.service import LedgerService

ENDPOINT = "expenditures.post_expenditure"
RULE = "/v1/municipalities/<code>/expenditures"
PATH = re.compile(r"/v1/municipalities/(?P<code>[^/]+)/expenditures")
"""The rule's path: ``<code>`` is Werkzeug's default converter, one segment without a slash."""


def install_posting_fast_path(app: Flask) -> JsonPostFastPath:
    service: LedgerService = app.extensions["ledger"]
    application = service.application
    headers_check, body_check = checkable_headers(POSTING_HEADERS()), checkable(POSTING_BODY())
    if headers_check is None or body_check is None:
        raise FastPathOutOfStep("the posting's headers or body have no fast check: the route's parser must load them")

    def prepare(caller: Principal, match: re.Match[str], headers: EnvironHeaders, body: bytes) -> Command | None:
        code = match["code"]
        may_post(caller, code)  # raises: declined, the route refuses it
        key = headers_check.load(headers)
        values = body_check.load(body) if key is not None else None
        if key is None or values is None:
            return None
        return partial(record_posting, application, caller, code, values, key.get("idempotency_key"))

    return JsonPostFastPath.install(
        app, endpoint=ENDPOINT, rule=RULE, path=PATH, prepare=prepare,
        reproduced_blueprint_hooks=[_authorise_first.__qualname__],  # prepare checks the token, then may_post
    )
