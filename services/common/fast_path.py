"""A JSON route answered in front of Flask: the ledger's posting (issue 17, thirtieth round) and the GET of a
balance that follows it (thirty-second round).

Flask's request context, routing, hooks, webargs and response object cost a posting ~250 µs of CPU in place,
a third of all it costs (bench/README.md, thirtieth round), for a route whose work is a token check, a body
check and one command. Here the posting's request is answered by the same checks and the same command
without them, under three rules that keep it the app's answer:

- **Taken only when every check passes.** The method, path, content type, length and body (a GET: no body), the
  breaker, the outbox gate (writes), the token, the route's own checks (``prepare``: the books, the headers, the
  body or the query string) and the write rate limit (writes), in that order, the rate limit last because it
  counts. A request that fails any of them, or that is not plainly one (a POST's query string, a chunked body,
  another content type, a query string the route's ``prepare`` does not read as it is), is **declined**: handed
  to the app untouched (its body put back), before anything was counted or stored, and the app answers it as
  always, so every refusal is the app's own.
- **The app answers what the command raises**: an error of the command is answered by the app's own error
  handlers, after-request hooks and teardown, in a request context pushed for it (``_answer_in_app``). The
  errors are translated in one place still.
- **The app's hooks are known**: ``install`` refuses an app with a request hook the fast path does not do
  itself (``REPRODUCED_HOOKS``), so a hook added later cannot be skipped unseen.

What it keeps of every request (``services/common/request_frame.py``): the request id, the events it recorded,
its outage budget, its metric and its one access-log line, as the app's hooks keep them.
tests/ledger/test_posting_fast_path.py and tests/ledger/test_balance_fast_path.py hold its answers, headers,
log lines and stored events equal to the app's, request by request, taken and declined.
"""

from __future__ import annotations

import io
import re
from collections.abc import Callable, Iterable
from typing import Any, ClassVar, Generic, Self, TypeVar

from flask import Flask, Response, g
from werkzeug.datastructures import EnvironHeaders
from werkzeug.http import HTTP_STATUS_CODES

from services.common.auth import Principal, TokenVerifier
from services.common.context_local import current
from services.common.http import DATABASE_BREAKER_KEY, OUTBOX_GATE_KEY, DatabaseBreaker
from services.common.json_answer import answer_bytes, json_answer
from services.common.json_depth import refuse_deep_json
from services.common.observability import OPERATIONS_KEY, Operations
from services.common.outbox_gate import OutboxGate
from services.common.principal_limit import principal_key
from services.common.rate_limit import WriteRateLimit
from services.common.request_frame import REQUEST_ID_HEADER, RequestFrame, account

Answer = tuple[int, dict[str, Any]]
Command = Callable[[], Answer]
PayloadT = TypeVar("PayloadT")
Prepare = Callable[[Principal, "re.Match[str]", EnvironHeaders, PayloadT], "Command | None"]
"""The route's own checks of a request (the caller, the path's match, the headers, the payload: a POST's body,
a GET's query string): the command that answers it, or None where the route would refuse it. It may raise too:
a raise declines as None does."""

REPRODUCED_HOOKS = frozenset(
    {
        "_install_request_context.<locals>._begin",  # the frame (a declined body: too deep, chunked)
        "_install_request_context.<locals>._end",
        "_install_request_context.<locals>._forget",
        "limit_writes.<locals>._limit_writes",  # writes only: a GET has none to do
        "create_service_app.<locals>._fail_fast_while_the_database_is_away",
        "enable_operations.<locals>._refuse_writes_while_events_wait",  # writes only
    }
)
"""The app's request hooks (qualified names) whose work the fast path does itself, or declines for."""

DIGITS = re.compile(r"[0-9]{1,12}")


class FastPathOutOfStep(Exception):
    """The app does something on the route's requests that the fast path would not do."""


class JsonFastPath(Generic[PayloadT]):
    """WSGI in front of ``app``: answers the requests of ``METHOD`` to ``path`` (its named groups: the rule's
    arguments) that ``prepare`` takes, and hands every other request to the app (or to the fast path of another
    route installed before it)."""

    METHOD: ClassVar[str]
    WRITES: ClassVar[bool]
    """The outbox gate and the write rate limit are the route's too."""

    def __init__(self, app: Flask, *, rule: str, path: re.Pattern[str], prepare: Prepare[PayloadT]):
        self.app = app
        self.app_wsgi: Callable[[dict[str, Any], Any], Iterable[bytes]] = app.wsgi_app
        self.rule = rule
        self.path = path
        self.prepare = prepare
        self.max_body_bytes: int = app.config["MAX_CONTENT_LENGTH"]
        self.verifier: TokenVerifier = app.extensions["ido.verifier"]
        self.write_limit: WriteRateLimit = app.extensions["ido.write_rate_limit"]
        self.breaker: DatabaseBreaker = app.extensions[DATABASE_BREAKER_KEY]
        self.gate: OutboxGate | None = app.extensions.get(OUTBOX_GATE_KEY)
        self.operations: Operations = app.extensions[OPERATIONS_KEY]
        self.taken = 0
        """Requests answered here (the tests read it: the route's requests must be taken)."""

    @classmethod
    def install(
        cls, app: Flask, *, endpoint: str, rule: str, path: re.Pattern[str], prepare: Prepare[PayloadT],
        reproduced_blueprint_hooks: Iterable[str] = (),
    ) -> Self:
        """In front of ``app``'s WSGI callable, for ``endpoint``'s ``METHOD`` ``rule``. ``reproduced_blueprint_hooks``:
        the qualified names of the blueprint's own before-request hooks ``prepare`` does the work of."""
        found = [r for r in app.url_map.iter_rules() if r.endpoint == endpoint]
        if [(r.rule, cls.METHOD in (r.methods or ())) for r in found] != [(rule, True)]:
            raise FastPathOutOfStep(f"{endpoint} is not one {cls.METHOD} route {rule}: {[r.rule for r in found]}")
        blueprint = endpoint.rpartition(".")[0] or None
        unknown = sorted(
            _qualified(hook)
            for hooks in (app.before_request_funcs, app.after_request_funcs, app.teardown_request_funcs)
            for scope in {None, blueprint}
            for hook in hooks.get(scope, ())
            if _qualified(hook) not in REPRODUCED_HOOKS | set(reproduced_blueprint_hooks)
        )
        preprocessors = [*app.url_value_preprocessors.get(None, ()), *app.url_value_preprocessors.get(blueprint, ())]
        if unknown or preprocessors:
            raise FastPathOutOfStep(f"request hooks the fast path of {rule} does not do: {unknown or preprocessors}")
        fast_path = cls(app, rule=rule, path=path, prepare=prepare)
        app.wsgi_app = fast_path  # type: ignore[method-assign]
        return fast_path

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        match = (
            self.path.fullmatch(environ.get("PATH_INFO", "")) if environ.get("REQUEST_METHOD") == self.METHOD else None
        )
        taken = self._take(environ, match) if match is not None else None
        if taken is None:
            return self.app_wsgi(environ, start_response)
        caller, command = taken
        self.taken += 1
        frame = RequestFrame.open(environ.get("HTTP_X_REQUEST_ID", ""))
        try:
            status, body = command()
            data = answer_bytes(self.app, body)
        except Exception as error:  # noqa: BLE001 - every error is the app's to answer
            return self._answer_in_app(environ, start_response, frame, caller, error=error)
        except BaseException:
            frame.close()
            raise
        if data is None:  # a value orjson would write otherwise than Flask: Flask writes it
            return self._answer_in_app(environ, start_response, frame, caller, answer=(status, body))
        try:
            start_response(
                f"{status} {HTTP_STATUS_CODES[status].upper()}",
                [("Content-Type", "application/json"), ("Content-Length", str(len(data))),
                 (REQUEST_ID_HEADER, frame.request_id)],
            )
            account(
                self.operations, method=self.METHOD, route=self.rule, path=environ["PATH_INFO"], status=status,
                frame=frame, caller=caller,
            )
        finally:
            frame.close()
        return [data]

    def _payload(self, environ: dict[str, Any]) -> PayloadT | None:
        """What ``prepare`` is given of the request; None: not plainly one of the route's, declined."""
        raise NotImplementedError

    def _check_payload(self, payload: PayloadT) -> None:
        """Raises where the app refuses the payload before its hooks (a POST's body nested too deep)."""

    def _take(self, environ: dict[str, Any], match: re.Match[str]) -> tuple[Principal, Command] | None:
        """The caller and the command of a request whose every check passes, a write counted; None: declined."""
        payload = self._payload(environ)
        if payload is None:
            return None
        try:
            self._check_payload(payload)
            if self.breaker.is_open() or (self.WRITES and self.gate is not None and self.gate.refusal() is not None):
                return None
            headers = EnvironHeaders(environ)
            caller = self.verifier.verify(headers.get("Authorization"))
            command = self.prepare(caller, match, headers, payload)
            if command is None:
                return None
            if self.WRITES:
                self.write_limit.check(principal_key(caller))  # counts the write, or raises: the app refuses it
        except Exception:  # noqa: BLE001 - a refusal, or a fault the app meets again: the app answers either
            return None
        return caller, command

    def _answer_in_app(
        self, environ: dict[str, Any], start_response: Any, frame: RequestFrame, caller: Principal,
        *, error: Exception | None = None, answer: tuple[int, dict[str, Any]] | None = None,
    ) -> Iterable[bytes]:
        """The app answers the command's ``error`` (or writes its ``answer``) as if its view had raised or
        returned it: its error handlers, after-request hooks (the access line) and teardown, which closes ``frame``."""
        app = self.app
        context = app.request_context(environ)
        unexpected: Exception | None = None
        try:
            context.push()
        except BaseException:
            frame.close()
            raise
        try:
            kept = current(g)
            kept.frame, kept.principal = frame, caller
            try:
                response = app.finalize_request(self._outcome(error, answer))
            except Exception as failure:  # noqa: BLE001 - as Flask's wsgi_app: a 500 of the app's own
                unexpected = failure
                response = app.handle_exception(failure)
            return response(environ, start_response)
        finally:
            context.pop(unexpected)

    def _outcome(self, error: Exception | None, answer: tuple[int, dict[str, Any]] | None) -> Any:
        if error is None:
            assert answer is not None
            status, body = answer
            found: Response = json_answer(body, status)
            return found
        try:
            raise error  # Flask's handler re-raises what it has no handler for: it must be the one in hand
        except Exception as raised:  # noqa: BLE001
            return self.app.handle_user_exception(raised)


def _qualified(hook: Callable[..., Any]) -> str:
    return getattr(hook, "__qualname__", repr(hook))


class JsonPostFastPath(JsonFastPath[bytes]):
    """A JSON POST: its body, of the content type ``application/json`` and a plain length, is the payload."""

    METHOD = "POST"
    WRITES = True

    def _payload(self, environ: dict[str, Any]) -> bytes | None:
        length = environ.get("CONTENT_LENGTH", "")
        if (
            environ.get("CONTENT_TYPE") != "application/json"
            or environ.get("QUERY_STRING")
            or "HTTP_TRANSFER_ENCODING" in environ
            or not DIGITS.fullmatch(length)
            or int(length) > self.max_body_bytes
        ):
            return None
        body: bytes = environ["wsgi.input"].read(int(length))
        environ["wsgi.input"] = io.BytesIO(body)  # a declined request's body, for the app to read
        return body if len(body) == int(length) else None

    def _check_payload(self, payload: bytes) -> None:
        refuse_deep_json(payload)


class JsonGetFastPath(JsonFastPath[str]):
    """A GET without a body: its query string (as the server gave it, not decoded) is the payload."""

    METHOD = "GET"
    WRITES = False

    def _payload(self, environ: dict[str, Any]) -> str | None:
        if environ.get("CONTENT_LENGTH", "") not in ("", "0") or "HTTP_TRANSFER_ENCODING" in environ:
            return None
        query: str = environ.get("QUERY_STRING", "")
        return query
