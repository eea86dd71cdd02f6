"""`make mutation`'s summary: the count of each verdict, the score, and every surviving mutant with its change.

Reads what `mutmut run` left in mutants/ through mutmut's own modules (mutmut is pinned in pyproject.toml), so
the verdicts are mutmut's. Writes the same text to mutants/survivors.txt for docs/DEVELOPING.md "Mutation check".
"""

from __future__ import annotations

import json
import sys
from collections import Counter
from pathlib import Path

from mutmut.mutation.data import SourceFileMutationData
from mutmut.mutation.diff_apply import get_diff_for_mutant
from mutmut.stats import status_by_exit_code
from mutmut.utils.file_utils import walk_mutatable_files

JUDGED = ("killed", "survived", "timeout", "suspicious", "segfault")
"""Verdicts of a mutant some test ran on; "no tests" (no selected test calls the function) is counted apart."""


def changed_lines(name: str, path: Path) -> list[str]:
    """The removed and added lines of one mutant's diff, without the diff's headers."""
    diff = get_diff_for_mutant(name, path=path).splitlines()
    return [line for line in diff[2:] if line[:1] in "+-" and line[1:].strip()]


def main() -> int:
    verdicts: dict[str, tuple[str, Path]] = {}
    for path in walk_mutatable_files():
        data = SourceFileMutationData(path=path)
        data.load()
        for name, exit_code in data.exit_code_by_key.items():
            verdicts[name] = (status_by_exit_code[exit_code], path)
    # mutants of functions called at import, judged again in a fresh process (scripts/mutation_import_time.py)
    again = Path("mutants/import-time.json")
    for name, verdict in (json.loads(again.read_text(encoding="utf-8")) if again.exists() else {}).items():
        verdicts[name] = (verdict, verdicts[name][1])
    counts = Counter(status for status, _ in verdicts.values())
    judged = sum(counts[status] for status in JUDGED)
    out: list[str] = ["verdicts: " + ", ".join(f"{status} {n}" for status, n in sorted(counts.items()))]
    if judged:
        out.append(f"score: {counts['killed']}/{judged} killed ({100 * counts['killed'] // judged} %)")
    for status in ("survived", "timeout", "suspicious", "no tests", "not checked"):
        names = sorted(name for name, (s, _) in verdicts.items() if s == status)
        if not names:
            continue
        out.append(f"\n== {status}: {len(names)}")
        for name in names:
            out.append(name)
            if status in ("survived", "timeout", "suspicious"):
                out.extend("    " + line for line in changed_lines(name, verdicts[name][1]))
    text = "\n".join(out) + "\n"
    Path("mutants").mkdir(exist_ok=True)
    Path("mutants/survivors.txt").write_text(text, encoding="utf-8")
    sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
