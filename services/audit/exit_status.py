"""The exit statuses of `ido audit`: one table for the commands, their ``--help`` and docs/audit.md.

An automated auditor acts on the status alone, so it means the same for every command: 0 everything
was read and checked and nothing was found; 1 the command ran to its end and found a problem, which
it printed (what that is per command: ``EXIT_STATUS``); 2 it could not run, so it checked nothing.
``tests/audit/test_exit_codes.py`` checks the help and docs/audit.md against this table.
"""

from __future__ import annotations

import textwrap

OK, FOUND, COULD_NOT_RUN = 0, 1, 2
"""The exit statuses of every `ido audit` command."""
EXIT_OK = "everything was read and checked, and nothing was found"
EXIT_COULD_NOT_RUN = (
    "could not run, so nothing was checked: usage, a setting, a file missing or of the wrong format, the "
    "broker or a store unreachable, an unexpected error (its traceback on stderr)"
)
EXIT_STATUS = {
    "replay": "a message was invalid (breaks its contract), not sealed by its topic's owner, refused by the "
    "ledger's rules, or applied without its predecessor (each printed; the balances are written without it); "
    "or a posting or reversal was recorded after its year's close (printed as AFTER CLOSE; counted)",
    "verify": "a stream's chain breaks, a message is not sealed by its topic's owner, or (with --since) a log "
    "does not extend the checkpoint",
    "reconcile": "an event store and its topic differ",
    "checkpoint": "the history does not extend what was signed before: no head is signed (with --every the "
    "process tries again each tick and ends with 0 on SIGTERM)",
    "prove": "no proof: the head does not cover the event, the head or the leaves file does not verify, or "
    "NEW does not extend OLD",
    "export sisa": "the replay under the export found a problem (as replay, printed on stderr); the file is "
    "written without it",
    "export 360giving": "the document breaks its schema, holds no grant, or holds placeholders with "
    "--publishable (nothing written); or the replay under it found a problem (the file is written)",
    "export journal": "a message on a topic is not a readable envelope (written as unreadable_message)",
}
"""What exit status 1 means, per command; 0 and 2 mean the same for all (``EXIT_OK``, ``EXIT_COULD_NOT_RUN``)."""


def exit_status_text(prefix: str = "") -> str:
    """The exit statuses for a ``--help`` epilog: of the commands whose name starts with ``prefix``
    (one command's name, ``export``, or all)."""
    found = [(name, text) for name, text in EXIT_STATUS.items() if name.startswith(prefix)]
    lines = ["exit status:", *_wrapped(f"  {OK}  ", EXIT_OK)]
    if len(found) == 1:
        lines += _wrapped(f"  {FOUND}  ", found[0][1])
    else:
        lines += [f"  {FOUND}  a problem was found (printed):"]
        for name, text in found:
            lines += _wrapped(f"     {name}: ", text, indent=7)
    return "\n".join([*lines, *_wrapped(f"  {COULD_NOT_RUN}  ", EXIT_COULD_NOT_RUN)])


def _wrapped(first: str, text: str, indent: int = 5) -> list[str]:
    return textwrap.wrap(text, width=100, initial_indent=first, subsequent_indent=" " * indent)
