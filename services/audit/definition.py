"""The audit as the runner sees it: the command group `ido audit` (services/common/definition.py)."""

from __future__ import annotations

from services.audit.cli import add_audit_commands, run
from services.common.definition import CommandGroup

COMMANDS = CommandGroup(
    name="audit",
    help="auditors: replay, verify chains, reconcile, checkpoints, exports",
    add_arguments=add_audit_commands,
    run=run,
)
