"""The recovery as the runner sees it: the command group `ido recover` (services/common/definition.py)."""

from __future__ import annotations

from services.common.definition import CommandGroup
from services.recovery.cli import add_recover_commands, run

COMMANDS = CommandGroup(
    name="recover",
    help="operators: rebuild a lost event store from its topic, or the ledger's view (docs/operations.md)",
    add_arguments=add_recover_commands,
    run=run,
)
