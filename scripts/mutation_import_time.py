"""Judge again, each in a fresh process, the surviving mutants of functions the money code calls at import.

mutmut 3 switches mutants inside a function at call time, in workers forked from a process that has already
imported the code. A function called while a module is imported (``movements._movement``, which builds the
handlers of ``LOOKUPS``; ``answers.balance_columns``, behind the CSV column constants) therefore ran
unmutated in every worker, and its mutants "survive" untested. Here each of them runs the same test selection
in a new Python process with ``MUTANT_UNDER_TEST`` set before the import, so the mutant is the code imported.
Verdicts go to mutants/import-time.json, which scripts/mutation_report.py reads.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tomllib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from mutmut.mutation.data import SourceFileMutationData
from mutmut.stats import status_by_exit_code
from mutmut.utils.file_utils import walk_mutatable_files

IMPORT_TIME = (
    "services.ledger.read_side.movements.x__movement__",
    "services.ledger.read_side.answers.x_balance_columns__",
)
READ_SIDE_TESTS = [
    "tests/ledger/test_answer_shapes.py",
    "tests/ledger/test_bridge_accounts.py",
    "tests/ledger/test_sisa_lines.py",
    "tests/ledger/test_movements_exact.py",
    "tests/ledger/test_sisa_answer_shape.py",
    "tests/oracle/test_compare.py",
]
"""The part of [tool.mutmut]'s test selection that reaches the read side (the rest never imports it)."""
TIMEOUT_S = 300
"""One mutant's run: the oracle comparison takes about 20 s on a busy machine; a hanging mutant is a kill."""


def survivors() -> list[str]:
    names = []
    for path in walk_mutatable_files():
        data = SourceFileMutationData(path=path)
        data.load()
        names += [n for n, code in data.exit_code_by_key.items() if status_by_exit_code[code] == "survived"]
    return sorted(n for n in names if n.startswith(IMPORT_TIME))


def judge(name: str, selection: list[str]) -> tuple[str, str]:
    env = {**os.environ, "MUTANT_UNDER_TEST": name}
    command = [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", *selection]
    try:
        done = subprocess.run(command, cwd="mutants", env=env, capture_output=True, timeout=TIMEOUT_S)
    except subprocess.TimeoutExpired:
        return name, "timeout"
    # pytest: 0 all passed, 1 a test failed, 2 interrupted (an error at collection, e.g. an import the mutant broke)
    return name, {0: "survived", 1: "killed", 2: "killed"}.get(done.returncode, f"error {done.returncode}")


def main() -> int:
    config = tomllib.loads(Path("pyproject.toml").read_text(encoding="utf-8"))["tool"]["mutmut"]
    selection = [test for test in READ_SIDE_TESTS if test in config["pytest_add_cli_args_test_selection"]]
    names = survivors()
    print(f"== {len(names)} surviving mutants of functions called at import, each judged in a fresh process")
    verdicts: dict[str, str] = {}
    with ThreadPoolExecutor(max_workers=int(os.environ.get("MUTATION_CHILDREN", "2"))) as pool:
        for name, verdict in pool.map(lambda n: judge(n, selection), names):
            verdicts[name] = verdict
            print(f"{verdict}: {name}", flush=True)
    Path("mutants/import-time.json").write_text(json.dumps(verdicts, indent=1), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
