"""The reference of row 1: a bare endpoint under the same gunicorn settings as `ido serve`.

It parses the same JSON body as the ledger's POST expenditure and answers 201 without checking a
token, validating or storing anything. `python -m bench.bare --port P --workers W --threads T`.
"""

from __future__ import annotations

import argparse
import uuid
from typing import Any

from flask import Flask, jsonify, request


def create_bare_app() -> Flask:
    app = Flask("bare")

    @app.post("/v1/municipalities/<code>/expenditures")
    def _post(code: str) -> Any:
        body = request.get_json()
        response = jsonify(
            expenditure_id=str(uuid.uuid4()),
            event_id=str(uuid.uuid4()),
            municipality_code=code,
            grant_year=body["grant_year"],
        )
        response.status_code = 201
        return response

    @app.get("/healthz")
    def _healthz() -> Any:
        return jsonify(status="ok", service="bare")

    return app


def serve(port: int, workers: int, threads: int, host: str = "127.0.0.1") -> None:
    run_gunicorn(create_bare_app(), port, workers, threads, host)


def run_gunicorn(flask_app: Flask, port: int, workers: int, threads: int, host: str = "127.0.0.1") -> None:
    """The same gunicorn configuration `ido serve` sets (services/common/gunicorn_settings.py)."""
    from gunicorn.app.base import BaseApplication

    from services.common.gunicorn_settings import gunicorn_settings, refuse_a_taken_port

    refuse_a_taken_port(f"{host}:{port}")

    class _Server(BaseApplication):
        def load_config(self) -> None:
            for name, value in gunicorn_settings(f"{host}:{port}", workers, threads).items():
                self.cfg.set(name, value)

        def load(self) -> Any:
            return flask_app

    _Server().run()


def main() -> None:
    parser = argparse.ArgumentParser(description="bare 201 endpoint (reference of bench row 1)")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--threads", type=int, default=4)
    args = parser.parse_args()
    serve(args.port, args.workers, args.threads)


if __name__ == "__main__":
    main()
