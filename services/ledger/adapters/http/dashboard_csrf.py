"""The dashboard forms' CSRF token: a signed double submit, no script needed.

Without it another site could post its own token into our login form (login CSRF): the victim's
browser would then show the attacker's books under our address, and whatever the victim typed or
uploaded afterwards would be done as the attacker. The first page with a form sets a random nonce
in an HttpOnly, SameSite=Strict cookie scoped to /dashboard; the form carries
``<issued_at>.<HMAC(key, nonce, issued_at)>``. A post is accepted only with both, matching and not
older than ``MAX_AGE_S``: a cross-site form can neither read our cookie nor, with SameSite=Strict,
send it, and a token is worth nothing without its own cookie.

Not Flask-WTF's CSRFProtect (docs/decisions.md, issue 16): it keeps its token in Flask's session
cookie, whose Secure flag is a fixed setting (ours follows the request's scheme behind a proxy), and
over HTTPS it requires a Referer, which the dashboard's ``Referrer-Policy: no-referrer`` withholds.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time

from flask import current_app, g, request
from werkzeug.wrappers import Response

from services.common.errors import Forbidden

COOKIE = "ido_csrf"
FIELD = "csrf_token"
KEY = "ido.dashboard.csrf_key"
"""``app.extensions`` entry: the HMAC key, shared by every worker (services/ledger/entrypoints)."""
MAX_AGE_S = 12 * 3600
"""A form left open longer is refused once (with a fresh form): as long as a token may live."""


class CsrfRefused(Forbidden):
    pass


def _mac(nonce: str, issued_at: int) -> str:
    key: bytes = current_app.extensions[KEY]
    return hmac.new(key, f"{nonce}.{issued_at}".encode(), hashlib.sha256).hexdigest()


def _nonce() -> str:
    """This browser's nonce: its cookie's, or a new one that ``set_cookie`` sends with the page."""
    if "csrf_nonce" not in g:
        found = request.cookies.get(COOKIE, "")
        if len(found) == 43 and found.replace("-", "").replace("_", "").isalnum():
            g.csrf_nonce = found
        else:
            g.csrf_nonce = secrets.token_urlsafe(32)
            g.csrf_new = True
    nonce: str = g.csrf_nonce
    return nonce


def csrf_token() -> str:
    """The hidden field's value (a template global)."""
    issued_at = int(time.time())
    return f"{issued_at}.{_mac(_nonce(), issued_at)}"


def check() -> None:
    """Refuses (403) a form post without this browser's cookie and a fresh token minted for it."""
    nonce = request.cookies.get(COOKIE)
    issued, _, mac = (request.form.get(FIELD) or "").partition(".")
    if not nonce or not issued.isdigit() or not mac:
        raise CsrfRefused("the form was not sent from this dashboard (no CSRF token); reload it and try again")
    age_s = time.time() - int(issued)
    if not -60 <= age_s <= MAX_AGE_S or not hmac.compare_digest(mac, _mac(nonce, int(issued))):
        raise CsrfRefused("the form expired or was not sent from this dashboard; reload it and try again")


def set_cookie(response: Response, path: str) -> Response:
    """After a page that made a new nonce: give it to the browser (a session cookie, like the form)."""
    if g.get("csrf_new"):
        response.set_cookie(COOKIE, g.csrf_nonce, path=path, httponly=True, secure=request.is_secure, samesite="Strict")
    return response
