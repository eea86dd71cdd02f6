"""The dashboard's forms as a browser fills them: the CSRF field comes from a page it was given."""

from __future__ import annotations

import re

from flask.testing import FlaskClient

CSRF_FIELD = re.compile(r'name="csrf_token" value="([^"]+)"')


def csrf_field(client: FlaskClient, page: str = "/dashboard/login") -> dict[str, str]:
    """The hidden CSRF field of ``page`` (the client keeps the cookie it came with)."""
    found = CSRF_FIELD.search(client.get(page).get_data(as_text=True))
    assert found is not None, f"no CSRF field on {page}"
    return {"csrf_token": found.group(1)}


def sign_in_form(client: FlaskClient, token: str, **fields: str) -> dict[str, str]:
    """The login form's fields for ``token``, as the browser would send them."""
    return {**csrf_field(client), "token": token, **fields}
