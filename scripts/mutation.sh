#!/usr/bin/env bash
# `make mutation` (issue 20): mutmut over the money code ([tool.mutmut] in pyproject.toml), judged by the fast unit
# tests only (no Kafka, no PostgreSQL), then every surviving mutant printed (scripts/mutation_report.py).
# By hand, not in CI: about 45 minutes on 2 quiet cores (docs/DEVELOPING.md, "Mutation check").
# MUTATION_KEEP=1 keeps mutants/ of the last run, so only mutants not yet judged are run.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=.venv
if [[ "${MUTATION_KEEP:-0}" != 1 ]]; then
    rm -rf mutants
fi
# the property tests' profile for judging mutants (tests/conftest.py): no shrinking, no health checks, no database
export IDO_HYPOTHESIS_PROFILE=mutation
started=$(date +%s)
# low priority: the run keeps both cores busy for most of an hour
nice -n 19 $VENV/bin/mutmut run --max-children "${MUTATION_CHILDREN:-2}"
nice -n 19 $VENV/bin/python scripts/mutation_import_time.py
echo "== mutation run took $(( ($(date +%s) - started) / 60 )) min at commit $(git rev-parse --short HEAD)"
$VENV/bin/python scripts/mutation_report.py
