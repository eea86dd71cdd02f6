"""Two ledgers, one answering through its fast paths (as served), the other through its Flask app alone (every
fast path stepped around): the tests of each fast path send both the same requests and hold the answers equal
(tests/ledger/test_posting_fast_path.py, tests/ledger/test_balance_fast_path.py)."""

from __future__ import annotations

import io
import json
import re
from collections.abc import Callable, Iterable
from typing import Any

from flask import Flask
from werkzeug.test import EnvironBuilder

from services.common.fast_path import JsonFastPath

MADE_ANEW = re.compile(r"^[0-9a-f]{32}$")
"""A request id the ledger made (the request named none)."""
Wsgi = Callable[[dict[str, Any], Any], Iterable[bytes]]


def fast_paths(app: Flask) -> list[JsonFastPath[Any]]:
    """The fast paths in front of ``app``, outermost first."""
    found: list[JsonFastPath[Any]] = []
    layer: Any = app.wsgi_app
    while isinstance(layer, JsonFastPath):
        found.append(layer)
        layer = layer.app_wsgi
    return found


def app_alone(app: Flask) -> Wsgi:
    """``app``'s own WSGI callable, behind every fast path."""
    layers = fast_paths(app)
    bare: Wsgi = layers[-1].app_wsgi if layers else app.wsgi_app
    return bare


class Twins:
    """The same request to a ledger through its fast paths and to another through its app alone."""

    def __init__(
        self, fast: Flask, plain: Flask, lines: io.StringIO, *, method: str, path: str,
        same: Callable[[dict[str, Any], dict[str, Any]], dict[str, Any]],
    ):
        """``same(answer, request)``: the answer without what is made anew for each request."""
        self.fast, self.plain, self.lines = fast, plain, lines
        self.method, self.path, self.same = method, path, same
        assert fast_paths(fast) and fast_paths(plain)

    def taken(self) -> int:
        return sum(layer.taken for layer in fast_paths(self.fast))

    def send(self, **request: Any) -> tuple[dict[str, Any], dict[str, Any]]:
        """Each twin's answer (status, headers, body, log lines; ``taken``: by a fast path); asserted equal."""
        taken = self.taken()
        fast = self._send(self.fast.wsgi_app, request)
        fast["taken"] = self.taken() - taken
        plain = self._send(app_alone(self.plain), request)
        assert self.same(fast, request) == self.same(plain, request), request
        return fast, plain

    def _send(self, wsgi: Wsgi, request: dict[str, Any]) -> dict[str, Any]:
        started: list[Any] = []
        self.lines.seek(0)
        self.lines.truncate()
        environ = EnvironBuilder(**{"method": self.method, "path": self.path, **request}).get_environ()
        body = b"".join(wsgi(environ, lambda status, headers, exc_info=None: started.append((status, headers))))
        status, headers = started[0]
        lines = [json.loads(line) for line in self.lines.getvalue().splitlines() if line.strip()]
        return {
            "status": status, "headers": headers, "body": body,
            "access": [line for line in lines if line["logger"] == "ido.http"],
            "others": [
                (line["logger"], line["level"], line["message"]) for line in lines if line["logger"] != "ido.http"
            ],
        }


def without_made_anew(answer: dict[str, Any], body_fields: Iterable[str] = (), log_fields: Iterable[str] = ()
                      ) -> dict[str, Any]:
    """The answer without what is made anew for each request: a made request id, the time and duration of its
    access line, and ``body_fields`` of a JSON body and ``log_fields`` of the access line."""
    headers = [(name, "<made>" if name == "X-Request-Id" and MADE_ANEW.match(value) else value)
               for name, value in answer["headers"]]
    body: Any = answer["body"]
    if dict(answer["headers"]).get("Content-Type") == "application/json" and body:  # (a HEAD: none)
        body = json.loads(body)
        for made in body_fields:
            if made in body:
                body[made] = "<made>"
    access = []
    for line in answer["access"]:
        line = {key: value for key, value in line.items() if key not in ("ts", "duration_ms", *log_fields)}
        if MADE_ANEW.match(str(line.get("request_id"))):
            line["request_id"] = "<made>"
        access.append(line)
    return {"status": answer["status"], "headers": headers, "body": body, "access": access, "others": answer["others"]}
