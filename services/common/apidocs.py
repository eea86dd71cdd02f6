"""The committed API documents under docs/api/: each service's OpenAPI 3 document, generated from
its marshmallow schemas by flask-smorest, and beside them the topics' AsyncAPI document as a link
to contracts/generated/asyncapi.json (which `python -m contracts export` keeps current, and
tests/contracts checks), so a contract change never leaves a second copy behind.

    python -m services.common.apidocs           # rewrite docs/api/
    python -m services.common.apidocs --check   # exit 1 naming every stale file (what the test runs)

The services are built on throw-away SQLite stores and keys in a temporary folder: nothing here
reaches a broker or a database, and nothing under var/ is touched.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

from contracts.export import GENERATED_DIR, generated_documents
from services.common.auth import init_token_files
from services.common.config import load_settings
from services.common.definition import SERVICE_NAMES, service_definition

API_DOCS_DIR = Path(__file__).resolve().parents[2] / "docs" / "api"
ASYNCAPI = "asyncapi.json"
ASYNCAPI_LINK_TARGET = Path("..") / ".." / "contracts" / "generated" / ASYNCAPI


def render(document: Any) -> str:
    return json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def openapi_document(service: str, workdir: Path) -> dict[str, Any]:
    settings = load_settings(
        {
            "IDO_DATA_DIR": str(workdir / "data"),
            "IDO_KEYS_DIR": str(workdir / "keys"),
            "KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:9",  # never contacted while documents are made
        }
    )
    init_token_files(settings)
    app = service_definition(service).create_http_app(settings)
    try:
        document: dict[str, Any] = app.extensions["ido.api"].spec.to_dict()
    finally:
        app.extensions["ido.operations"].close()
    return document


def api_documents() -> dict[str, str]:
    """File name -> content, for the OpenAPI documents under docs/api/."""
    documents: dict[str, str] = {}
    with tempfile.TemporaryDirectory(prefix="ido-apidocs-") as workdir:
        for service in SERVICE_NAMES:
            documents[f"{service}.openapi.json"] = render(openapi_document(service, Path(workdir)))
    return documents


def asyncapi_problem(directory: Path = API_DOCS_DIR) -> str | None:
    """Why docs/api/asyncapi.json is not the current AsyncAPI document (None when it is)."""
    path = directory / ASYNCAPI
    if not path.is_symlink() or Path(str(path.readlink())) != ASYNCAPI_LINK_TARGET:
        return f"docs/api/{ASYNCAPI} must be a link to {ASYNCAPI_LINK_TARGET}"
    if path.resolve() != (GENERATED_DIR / ASYNCAPI).resolve():
        return f"docs/api/{ASYNCAPI} does not lead to contracts/generated/{ASYNCAPI}"
    if path.read_text(encoding="utf-8") != generated_documents()[ASYNCAPI]:
        return f"contracts/generated/{ASYNCAPI} is stale (run: python -m contracts export)"
    return None


def stale(directory: Path = API_DOCS_DIR) -> list[str]:
    """What under ``directory`` differs from what the code generates now."""
    found = []
    for name, content in api_documents().items():
        path = directory / name
        if not path.exists() or path.read_text(encoding="utf-8") != content:
            found.append(name)
    if asyncapi_problem(directory) is not None:
        found.append(ASYNCAPI)
    return found


def write(directory: Path = API_DOCS_DIR) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name, content in api_documents().items():
        path = directory / name
        path.write_text(content, encoding="utf-8")
        written.append(path)
    link = directory / ASYNCAPI
    if link.is_symlink() or link.exists():
        link.unlink()
    link.symlink_to(ASYNCAPI_LINK_TARGET)
    written.append(link)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Regenerate (or check) the API documents under docs/api/.")
    parser.add_argument("--check", action="store_true", help="only check; exit 1 when a document is stale")
    args = parser.parse_args(argv)
    # The folder read when called, not when defined: `ido docs api` is tested on a copy.
    if args.check:
        names = stale(API_DOCS_DIR)
        for name in names:
            reason = asyncapi_problem(API_DOCS_DIR) if name == ASYNCAPI else "run: python -m services.common.apidocs"
            print(f"stale: docs/api/{name} ({reason})", file=sys.stderr)
        return 1 if names else 0
    for path in write(API_DOCS_DIR):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
