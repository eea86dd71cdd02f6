"""Rows 2 and 3 (and row 7's relay and projection) time each run in a fresh process of its own.

`ido relay` and `ido project` are processes of their own, started with nothing but their code. Timed in the
bench's process, they ran inside what the earlier rows had left there (on the PostgreSQL pass of a whole
`make bench` ~490 MB resident, ~325 MB of it memory the allocator had been given back and kept) and, in row 2,
beside the reference's ~50,000 messages; and each forks its second process (the relay's page worker, the
projector's reading process) from the process it runs in. Row 2 on PostgreSQL read 21,600-23,400 events/s that
way in `--rows 1,2,3`, and 36,300-38,400 in a fresh process (issue 17, twenty-first round, bench/README.md).
The references (the bare producer and consumer) run in a fresh process too, so that both sides of a ratio
start alike.

The child is `python -m bench.worker <kind> <arguments as JSON>` with the row's place in its environment; it
prints its figures as one JSON object on its last line.
"""

from __future__ import annotations

import json
import os
import subprocess
from typing import TYPE_CHECKING, Any

from bench import procs

if TYPE_CHECKING:
    from bench.stores import Place

TIMEOUT_S = 3600


def run_in_own_process(place: Place, kind: str, **arguments: Any) -> dict[str, Any]:
    """Runs ``kind`` (one of bench/worker.py's) with ``arguments`` in a fresh process with ``place``'s settings."""
    # its log lines (a join rescued, a dead letter) go to the bench's output, as when it ran in the bench's process
    completed = subprocess.run(
        [procs.PYTHON, "-m", "bench.worker", kind, json.dumps(arguments)],
        cwd=procs.REPO, env={**os.environ, **place.env}, stdout=subprocess.PIPE, text=True, timeout=TIMEOUT_S,
    )
    if completed.returncode != 0:
        raise RuntimeError(f"bench.worker {kind} exited with {completed.returncode} (its output is above)")
    found: dict[str, Any] = json.loads(completed.stdout.strip().splitlines()[-1])
    return found
