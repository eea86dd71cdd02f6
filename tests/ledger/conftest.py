"""Fixtures of the ledger tests: the HTTP app on the store of ``settings`` (SQLite and PostgreSQL)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from services.common.config import Settings, load_settings
from services.ledger.entrypoints.definition import create_app
from tests.support.tokens import TokenFactory

AMSTERDAM = "GM0363"
UTRECHT = "GM0344"
LIBRARY = "NL-KVK-41215098"


OPEN_YEARS = {"IDO_YEARS_OPEN_BEFORE_AWARD": "2024,2025"}
"""The write-side tests post without the grants topic, so their years are opened before an award
(issue 15; tests/integration/test_mergers.py tests the rule itself)."""


@pytest.fixture
def settings(store_env: dict[str, str]) -> Settings:
    return load_settings({**store_env, **OPEN_YEARS})


@pytest.fixture
def app(settings: Settings, tokens: TokenFactory) -> Iterator[Flask]:
    application = create_app(settings)
    yield application
    application.extensions["ledger"].application.close()


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


def expenditure(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "grant_year": 2024,
        "category": "library_funding",
        "amount_cents": 125_000,
        "booked_on": "2024-03-15",
        "counterparty": {"id": LIBRARY, "name": "Openbare Bibliotheek Amsterdam (illustrative)"},
        "description": "IDO funding Q1 (illustrative)",
        "reference": "INV-2024-001",
    }
    body.update(overrides)
    return body
