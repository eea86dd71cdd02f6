"""`ido`: one command line for running the services, tokens, demo data and contracts."""

from __future__ import annotations

import argparse
import logging
import sys
from datetime import timedelta
from typing import Any

from services.common.config import load_settings
from services.common.definition import SERVICE_NAMES, service_definition


def _serve(args: argparse.Namespace) -> None:
    from gunicorn.app.base import BaseApplication

    settings = load_settings()
    definition = service_definition(args.service)
    flask_app = definition.create_http_app(settings)
    bind = f"{settings.bind_host}:{args.port or settings.port(args.service)}"

    class _Server(BaseApplication):
        def load_config(self) -> None:
            self.cfg.set("bind", bind)
            self.cfg.set("workers", args.workers)
            self.cfg.set("threads", args.threads)
            self.cfg.set("worker_class", "gthread")
            self.cfg.set("accesslog", None)

        def load(self) -> Any:
            return flask_app

    _Server().run()


def _relay(args: argparse.Namespace) -> None:
    from services.common.entrypoints.relay import run

    run(args.service)


def _project(_args: argparse.Namespace) -> None:
    from services.ledger.entrypoints.projector import main as projector_main

    projector_main()


def _demo(args: argparse.Namespace) -> None:
    from services.common.eventstore import build_application

    settings = load_settings()
    definition = service_definition(args.service)
    if definition.load_demo_data is None:
        print(f"{args.service}: no demo data")
        return
    application = build_application(definition.application_class, settings.eventsourcing_env(args.service))
    if (application.recorder.max_notification_id() or 0) > 0 and not args.force:
        print(f"{args.service}: store already holds events; demo data not loaded again")
        return
    definition.load_demo_data(settings, application)
    print(f"{args.service}: illustrative demo data loaded")


def _tokens(args: argparse.Namespace) -> None:
    from services.common.auth import RevocationList, ensure_keypair, issue_token

    settings = load_settings()
    if args.tokens_command == "init-keys":
        ensure_keypair(settings.jwt_private_key_file, settings.jwt_public_key_file)
        print(f"keys in {settings.jwt_private_key_file.parent}")
    elif args.tokens_command == "issue":
        ensure_keypair(settings.jwt_private_key_file, settings.jwt_public_key_file)
        token, token_id = issue_token(
            settings.jwt_private_key_file.read_bytes(),
            role=args.role,
            municipality_code=args.municipality,
            ttl=timedelta(hours=args.ttl_hours),
        )
        print(token if args.quiet else f"token id: {token_id}\n{token}")
    elif args.tokens_command == "revoke":
        RevocationList(settings.revoked_tokens_file).revoke(args.token_id)
        print(f"revoked {args.token_id}")


def _contracts(_args: argparse.Namespace) -> None:
    from contracts.export import export

    for path in export():
        print(path)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ido", description="The IDO grant ledger.")
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="serve one service's HTTP API (gunicorn)")
    serve.add_argument("service", choices=SERVICE_NAMES)
    serve.add_argument("--port", type=int, help="default: IDO_<SERVICE>_PORT or 8001/8002/8003")
    serve.add_argument("--workers", type=int, default=1)
    serve.add_argument("--threads", type=int, default=4)
    serve.set_defaults(handler=_serve)

    relay = commands.add_parser("relay", help="publish a service's stored events to its Kafka topic")
    relay.add_argument("service", choices=SERVICE_NAMES)
    relay.set_defaults(handler=_relay)

    project = commands.add_parser("project", help="run the ledger's projector (three topics -> balances)")
    project.set_defaults(handler=_project)

    demo = commands.add_parser("demo", help="load a service's illustrative demo data into an empty store")
    demo.add_argument("service", choices=SERVICE_NAMES)
    demo.add_argument("--force", action="store_true", help="load even when the store holds events")
    demo.set_defaults(handler=_demo)

    tokens = commands.add_parser("tokens", help="signing keys and bearer tokens")
    token_commands = tokens.add_subparsers(dest="tokens_command", required=True)
    token_commands.add_parser("init-keys", help="create the Ed25519 key pair if missing")
    issue = token_commands.add_parser("issue", help="issue a token")
    issue.add_argument("--role", required=True, choices=["ministry", "kb", "auditor", "finance", "municipality"])
    issue.add_argument("--municipality", help="CBS code, for --role municipality")
    issue.add_argument("--ttl-hours", type=float, default=12.0)
    issue.add_argument("--quiet", action="store_true", help="print only the token")
    revoke = token_commands.add_parser("revoke", help="revoke a token by its id")
    revoke.add_argument("token_id")
    tokens.set_defaults(handler=_tokens)

    contracts = commands.add_parser("contracts", help="regenerate contracts/generated/")
    contracts.set_defaults(handler=_contracts)
    return parser


def main(argv: list[str] | None = None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    args = build_parser().parse_args(argv)
    try:
        args.handler(args)
    except ValueError as error:
        print(f"ido: {error}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
