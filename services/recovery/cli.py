"""`ido recover ...`: the operators' disaster recovery (docs/operations.md, "Recovering a lost store from Kafka").

Exit status: 0 when done; 1 when refused (nothing written: a store not empty, a topic whose history is not
intact, a projector still running) or when a recovered store does not match its topic; 2 when it could not
run (a setting, the broker or the database unreachable).
"""

from __future__ import annotations

import argparse
import sys
import traceback

from services.common.definition import SERVICE_NAMES

REFUSED = 1
COULD_NOT_RUN = 2


def add_recover_commands(recover: argparse.ArgumentParser) -> None:
    recover.epilog = "exit status: 0 done; 1 refused (nothing written) or not equal to the topic; 2 could not run"
    commands = recover.add_subparsers(dest="recover_command", required=True)
    store = commands.add_parser(
        "store", help="re-record a lost event store (empty, SQLite or PostgreSQL) from its topic, every chain and "
        "seal verified first; stop the service and its relay before",
    )
    store.add_argument("service", choices=SERVICE_NAMES)
    view = commands.add_parser(
        "view", help="drop the ledger's view (never the event stores) and project the topics into it again up to "
        "their ends; stop the projector before",
    )
    view.add_argument("--timeout-s", type=float, default=3600.0, help="give up after this long (default 3600)")


def run(args: argparse.Namespace) -> int:
    from services.common.config import load_settings
    from services.common.recovery_refused import RecoveryRefused
    from services.recovery.store import recover_store

    try:
        settings = load_settings()
        if args.recover_command == "store":
            lines = recover_store(settings, args.service).lines()
        else:
            from services.common.definition import view_rebuilder

            lines = view_rebuilder()(settings, timeout_s=args.timeout_s).lines()
    except RecoveryRefused as refused:
        for line in refused.lines:
            print(line)
        return REFUSED
    except RuntimeError as error:  # written, but not equal to the topic: say so, loudly
        print(f"ido recover: {error}")
        return REFUSED
    except Exception as error:  # noqa: BLE001 - could not run: nothing judged, exit 2 with the cause
        traceback.print_exc(file=sys.stderr)
        print(f"ido recover: could not run: {error}", file=sys.stderr)
        return COULD_NOT_RUN
    for line in lines:
        print(line)
    return 0
