"""`ido`: one command line for running, tokens, imports, audit, API documents and benchmarks."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from services.common.config import load_settings
from services.common.definition import SERVICE_NAMES, CommandGroup, command_groups, projector, service_definition
from services.common.logging_setup import configure_from_settings


def _serve(args: argparse.Namespace) -> None:
    from gunicorn.app.base import BaseApplication

    from services.common.gunicorn_settings import gunicorn_settings, refuse_a_taken_port
    from services.common.startup_lock import startup_lock

    settings = load_settings()
    definition = service_definition(args.service)
    bind = f"{settings.bind_host}:{args.port or settings.port(args.service)}"

    if args.workers > 1:
        from services.common.observability import share_counters_between_workers

        share_counters_between_workers(settings.data_dir / "run" / f"metrics-{args.service}-{bind.rsplit(':', 1)[1]}")

    refuse_a_taken_port(bind)

    class _Server(BaseApplication):
        def load_config(self) -> None:
            for name, value in gunicorn_settings(bind, args.workers, args.threads).items():
                self.cfg.set(name, value)

        def load(self) -> Any:
            # Built in each worker after the fork: connection pools must never be shared across processes.
            # One worker at a time: each creates the tables it needs (services/common/startup_lock.py).
            with startup_lock(settings):
                return definition.create_http_app(settings)

    _Server().run()


def _relay(args: argparse.Namespace) -> None:
    from services.common.entrypoints.relay import run

    run(args.service)


def _project(args: argparse.Namespace) -> None:
    projector()(group_id=args.group_id)


def _run(_args: argparse.Namespace) -> None:
    """The whole local stack, as `make run` starts it (needs a checkout: the script lives there)."""
    import subprocess
    from pathlib import Path

    script = Path(__file__).resolve().parents[2] / "scripts" / "run.sh"
    if not script.exists():
        raise ValueError(f"{script} not found: `ido run` works from a checkout of the project")
    sys.exit(subprocess.call(["bash", str(script)]))


def _import(args: argparse.Namespace) -> None:
    from services.common.http_client import import_csv

    import_csv(args)


def _docs(args: argparse.Namespace) -> None:
    from services.common.apidocs import main as apidocs_main

    sys.exit(apidocs_main(["--check"] if args.check else []))


def _bench(args: argparse.Namespace) -> None:
    """The benchmarks with their own broker and database, as `make bench` (needs a checkout)."""
    import subprocess
    from pathlib import Path

    script = Path(__file__).resolve().parents[2] / "bench" / "run.sh"
    if not script.exists():
        raise ValueError(f"{script} not found: `ido bench` works from a checkout of the project")
    sys.exit(subprocess.call(["bash", str(script), *args.bench_args]))


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
    from services.common.auth import RevocationList, ensure_keypair, init_token_files, issue_token, new_subject

    settings = load_settings()
    if args.tokens_command == "init-keys":
        init_token_files(settings)
        print(f"keys in {settings.jwt_private_key_file.parent}; revocation list {settings.revoked_tokens_file}")
    elif args.tokens_command == "issue":
        ensure_keypair(settings.jwt_private_key_file, settings.jwt_public_key_file)
        # Each token its own subject unless told: the subject is its Idempotency-Key space, and two
        # ministry clients sharing one would answer each other's retries.
        subject = args.subject or new_subject(args.role, args.municipality)
        ttl = timedelta(hours=args.ttl_hours) if args.ttl_hours is not None else (
            timedelta(seconds=settings.token_max_lifetime_s)
        )
        try:
            token, token_id = issue_token(
                settings.jwt_private_key_file.read_bytes(),
                role=args.role,
                audience=args.audience,
                municipality_code=args.municipality,
                subject=subject,
                ttl=ttl,
                max_lifetime_s=settings.token_max_lifetime_s,
            )
        except ValueError as error:
            raise SystemExit(f"ido tokens issue: {error}") from None
        print(token if args.quiet else f"token id: {token_id}\nsubject: {subject}\n{token}")
    elif args.tokens_command == "revoke":
        RevocationList(settings.revoked_tokens_file).revoke(args.token_id)
        print(f"revoked {args.token_id}")


def _kafka(args: argparse.Namespace) -> None:
    """Provisioning and rotation as ido-admin; never prints a password."""
    from services.common.kafka_provisioning import provision, rotate

    settings = load_settings()
    if args.kafka_command == "provision":
        done = provision(settings, prefix=args.prefix)
        if settings.kafka_security_protocol == "PLAINTEXT":
            print("kafka: topics ready (KAFKA_SECURITY_PROTOCOL=PLAINTEXT: no users, no ACLs)")
            return
        print(f"kafka: topics {', '.join(done.topics)}; {done.acls} ACLs; "
              f"users made: {', '.join(done.users_made) or 'none (all existed)'}; "
              f"passwords in {settings.kafka_credentials_dir}")
    elif args.kafka_command == "init-credentials":
        from services.common.kafka_credentials import PRINCIPALS, ensure_password

        folder = settings.kafka_credentials_dir
        made = [principal for principal in PRINCIPALS if ensure_password(folder, principal)[1]]
        print(f"kafka: passwords made for {', '.join(made) or 'none (all existed)'} in {folder}")
    elif args.kafka_command == "rotate":
        rotate(settings, args.principal)
        print(f"kafka: new password of {args.principal} set on the broker and written to "
              f"{settings.kafka_credentials_dir / (args.principal + '.password')}")


def _contracts(_args: argparse.Namespace) -> None:
    from contracts import export

    for path in export.export(export.GENERATED_DIR):  # read when called: `ido contracts` is tested on a copy
        print(path)


def _keys(args: argparse.Namespace) -> None:
    import json
    from pathlib import Path

    from contracts.provenance import KeySet
    from services.common.signing import service_keys

    settings = load_settings()

    def keys_of(service: str) -> Any:
        return service_keys(settings, service, [service_definition(service).topic.name])

    if args.keys_command == "rotate":
        entry = keys_of(args.service).rotate()
        print(f"{args.service}: {entry.kid} signs from {entry.not_before}; the key before it is retired then")
        return
    services = [args.service] if args.service else list(SERVICE_NAMES)
    keyset = KeySet()
    for service in services:
        keys = keys_of(service)
        keyset = keyset.merged((keys.ensure() if args.keys_command == "init" else keys.keyset()).keys)
    text = json.dumps(keyset.document(), indent=2, sort_keys=True) + "\n"
    if args.keys_command == "export" and args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(text, encoding="utf-8")
        print(f"written {args.out} ({len(keyset.keys)} keys)", file=sys.stderr)
    else:
        sys.stdout.write(text)


def _command_group(group: CommandGroup) -> Callable[[argparse.Namespace], None]:
    def handler(args: argparse.Namespace) -> None:
        sys.exit(group.run(args))

    return handler


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ido", description="The IDO grant ledger.")
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="serve one service's HTTP API (gunicorn)")
    serve.add_argument("service", choices=SERVICE_NAMES)
    serve.add_argument("--port", type=int, help="default: IDO_<SERVICE>_PORT or the port its definition declares")
    serve.add_argument("--workers", type=int, default=1)
    serve.add_argument("--threads", type=int, default=4)
    serve.set_defaults(handler=_serve)

    relay = commands.add_parser("relay", help="publish a service's stored events to its Kafka topic")
    relay.add_argument("service", choices=SERVICE_NAMES)
    relay.set_defaults(handler=_relay)

    project = commands.add_parser("project", help="run the ledger's projector (three topics -> balances)")
    project.add_argument(
        "--group-id",
        help="consumer group (default: <IDO_TOPIC_PREFIX>ledger-balances; the projector's ACL allows names "
        "starting with that); with IDO_VIEW_DB_URL, rebuilds a view beside",
    )
    project.set_defaults(handler=_project)

    run = commands.add_parser("run", help="start Kafka, the three services, relays and projector (as `make run`)")
    run.set_defaults(handler=_run)

    imports = commands.add_parser("import", help="send a CSV to a service's import endpoint (atomic, all or nothing)")
    import_kinds = imports.add_subparsers(dest="kind", required=True)
    annex = import_kinds.add_parser("annex", help="the SPUK IDO annex of a year (ministry token)")
    annex.add_argument("file", help="CSV: cbs_code,name,amount (euros: 725000.00 or 725.000,00; , or ; between cells)")
    annex.add_argument("--year", type=int, required=True)
    annex.add_argument("--awarded-on", required=True, help="YYYY-MM-DD")
    annex.add_argument("--url", help="the payments service (default: 127.0.0.1 on its port)")
    expenditures = import_kinds.add_parser("expenditures", help="a municipality's expenditures (its own token)")
    expenditures.add_argument("file", help="CSV with the columns of POST .../expenditures:import")
    expenditures.add_argument("--municipality", required=True, help="CBS code, e.g. GM0363")
    expenditures.add_argument("--url", help="the ledger service (default: 127.0.0.1 on its port)")
    for kind in (annex, expenditures):
        kind.add_argument("--token-file", help="file holding the bearer token (default: $IDO_TOKEN)")
        kind.add_argument("--idempotency-key", help="retry-safe key (ledger); default: the file's SHA-256")
    imports.set_defaults(handler=_import)

    docs = commands.add_parser("docs", help="the committed API documents under docs/api/")
    docs_kinds = docs.add_subparsers(dest="kind", required=True)
    api_docs = docs_kinds.add_parser("api", help="regenerate docs/api/ (or --check that it is current)")
    api_docs.add_argument("--check", action="store_true")
    docs.set_defaults(handler=_docs)

    bench = commands.add_parser("bench", help="the benchmarks (as `make bench`); flags go to the bench runner")
    bench.add_argument("bench_args", nargs=argparse.REMAINDER)
    bench.set_defaults(handler=_bench)

    demo = commands.add_parser("demo", help="load a service's illustrative demo data into an empty store")
    demo.add_argument("service", choices=SERVICE_NAMES)
    demo.add_argument("--force", action="store_true", help="load even when the store holds events")
    demo.set_defaults(handler=_demo)

    tokens = commands.add_parser("tokens", help="signing keys and bearer tokens")
    token_commands = tokens.add_subparsers(dest="tokens_command", required=True)
    token_commands.add_parser("init-keys", help="create the Ed25519 key pair and an empty revocation list if missing")
    issue = token_commands.add_parser("issue", help="issue a token")
    issue.add_argument("--role", required=True, choices=["ministry", "kb", "auditor", "finance", "municipality"])
    issue.add_argument("--municipality", help="CBS code, for --role municipality")
    issue.add_argument(
        "--audience", action="append", required=True, choices=SERVICE_NAMES,
        help="a service the token is for; repeat for several (a ledger token is not a payments token)",
    )
    issue.add_argument(
        "--subject", help="the client's own id (its Idempotency-Key space); default: a new one for this token"
    )
    issue.add_argument(
        "--ttl-hours", type=float, default=None, help="lifetime (default and maximum: IDO_TOKEN_MAX_LIFETIME_S)"
    )
    issue.add_argument("--quiet", action="store_true", help="print only the token")
    revoke = token_commands.add_parser("revoke", help="revoke a token by its id")
    revoke.add_argument("token_id")
    tokens.set_defaults(handler=_tokens)

    from services.common.kafka_credentials import PRINCIPALS

    kafka = commands.add_parser("kafka", help="the broker's topics, users and ACLs (as ido-admin)")
    kafka_commands = kafka.add_subparsers(dest="kafka_command", required=True)
    provision = kafka_commands.add_parser(
        "provision", help="create the topics, the SCRAM users (passwords in IDO_KAFKA_CREDENTIALS_DIR) and the ACLs"
    )
    provision.add_argument("--prefix", help="topic prefix (default: IDO_TOPIC_PREFIX)")
    kafka_commands.add_parser(
        "init-credentials",
        help="make a random password file (0600) for every principal that has none, e.g. for docker-compose's secrets",
    )
    rotate = kafka_commands.add_parser("rotate", help="give a principal a new random password (broker and file)")
    rotate.add_argument("principal", choices=PRINCIPALS)
    kafka.set_defaults(handler=_kafka)

    keys = commands.add_parser("keys", help="the services' signing keys: show, export, rotate (docs/operations.md)")
    key_commands = keys.add_subparsers(dest="keys_command", required=True)
    for name, text in (("show", "print the public key set"), ("init", "create missing signing keys, print the set"),
                       ("export", "write the public key set (consumers' IDO_TRUSTED_KEYSET_FILE)")):
        command = key_commands.add_parser(name, help=text)
        command.add_argument("service", nargs="?", choices=SERVICE_NAMES, help="one service (default: all)")
        if name == "export":
            command.add_argument("--out", help="file (default: standard output)")
    rotate = key_commands.add_parser("rotate", help="a new key signs from now on; the current one is retired now")
    rotate.add_argument("service", choices=SERVICE_NAMES)
    keys.set_defaults(handler=_keys)

    contracts = commands.add_parser("contracts", help="regenerate contracts/generated/")
    contracts.set_defaults(handler=_contracts)
    # The tools' own command groups (`ido audit ...`), found through their declarations.
    for group in command_groups():
        group_parser = commands.add_parser(group.name, help=group.help)
        group.add_arguments(group_parser)
        group_parser.set_defaults(handler=_command_group(group))
    return parser


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    try:
        settings = load_settings()
        configure_from_settings(settings, service=getattr(args, "service", None))
        args.handler(args)
    except ValueError as error:  # SettingError included: the message names the setting
        print(f"ido: {error}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
