"""The balance's fast path: ``GET /v1/municipalities/<code>/balances/<year>`` answered in front of Flask
(services/common/fast_path.py), by the route's own check and work (routes.py: ``require_readable``,
``balances_at``, ``BALANCES_OUT``), at less CPU a read (issue 17, row 5: every posting there is read back so).

Only a query string the route's parser would read one way is taken: none, or ``includes_event_id`` with a
UUID written as the answers write it (lower case, with hyphens). Any other (another spelling of the UUID, a date,
a parameter more or unknown, an escape) is declined, and the route answers it through webargs as before.
"""

from __future__ import annotations

import re
from typing import Any
from uuid import UUID

from flask import Flask
from werkzeug.datastructures import EnvironHeaders

from services.common.auth import Principal
from services.common.fast_path import Command, JsonGetFastPath
from services.ledger.adapters.http.routes import (
    BALANCES_OUT,
    _authorise_first,
    balances_at,
    require_readable,
)
from services.ledger.application.service import LedgerService

ENDPOINT = "balances.municipality_balances"
RULE = "/v1/municipalities/<code>/balances/<int:year>"
PATH = re.compile(r"/v1/municipalities/(?P<code>[^/]+)/balances/(?P<year>[1-9][0-9]{3})")
"""The rule's path: ``<code>`` one segment without a slash; ``<int:year>`` Werkzeug's integer converter, of
which only four plain digits are taken (another spelling is the app's to read)."""
QUERY = re.compile(r"(?:includes_event_id=(?P<event_id>[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}))?")


def install_balance_fast_path(app: Flask) -> JsonGetFastPath:
    service: LedgerService = app.extensions["ledger"]

    def prepare(caller: Principal, match: re.Match[str], _headers: EnvironHeaders, query: str) -> Command | None:
        taken = QUERY.fullmatch(query)
        if taken is None:
            return None
        code, year = match["code"], int(match["year"])
        require_readable(caller, service, code)  # raises: declined, the route refuses it
        args: dict[str, Any] = {} if taken["event_id"] is None else {"includes_event_id": UUID(taken["event_id"])}

        def answer() -> tuple[int, dict[str, Any]]:
            dumped: dict[str, Any] = BALANCES_OUT.dump(balances_at(caller, service, code, year, args))
            return 200, dumped

        return answer

    return JsonGetFastPath.install(
        app, endpoint=ENDPOINT, rule=RULE, path=PATH, prepare=prepare,
        reproduced_blueprint_hooks=[_authorise_first.__qualname__],  # the token, then require_readable
    )
