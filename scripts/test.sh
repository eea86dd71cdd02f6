#!/usr/bin/env bash
# `make test`: lint, type and import-layer checks, then the whole suite against a real Kafka broker and a real
# PostgreSQL server started here (own ports and state dirs, so a running `make run` is not touched).
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=.venv

export KAFKA_PORT="${TEST_KAFKA_PORT:-19092}"
export KAFKA_CONTROLLER_PORT="${TEST_KAFKA_CONTROLLER_PORT:-19093}"
export KAFKA_STATE_DIR="$PWD/var/test/kafka"
export PG_STATE_DIR="$PWD/var/test/postgres"
unset PG_PORT

echo "== ruff"
$VENV/bin/ruff check .
echo "== mypy"
$VENV/bin/mypy
echo "== lint-imports (the layers: pyproject.toml [tool.importlinter])"
$VENV/bin/lint-imports --no-logo

echo "== chromium (the dashboard test drives Debian's chromium headless; no browser download)"
if [[ -z "${IDO_CHROMIUM:-}" ]] && ! command -v chromium >/dev/null 2>&1; then
    if [[ "$(id -u)" == 0 ]] && command -v apt-get >/dev/null 2>&1; then
        echo "chromium not found; installing Debian's chromium with apt-get"
        if ! (export DEBIAN_FRONTEND=noninteractive; apt-get update -qq && apt-get install -y -qq chromium) >&2; then
            echo "make test: apt-get install chromium failed; the dashboard's browser test cannot run" >&2
            exit 1
        fi
    else
        echo "make test: chromium is missing and this is not root; install Debian's chromium" \
            "(apt-get install chromium) or set IDO_CHROMIUM to a Chromium binary" >&2
        exit 1
    fi
fi

# shellcheck source=scripts/test-servers.sh
source scripts/test-servers.sh
start_test_servers "make test"

echo "== pytest"
# The slow resilience tests (30 s outages, crashes under load) run with `make resilience`.
# Every test has its own topics, database and ports, so the suite runs on IDO_TEST_WORKERS processes
# (pytest-xdist; default 2, the cores CI has; 0 runs it in this process, for debugging).
WORKERS="${IDO_TEST_WORKERS:-2}"
if ! [[ "$WORKERS" =~ ^[0-9]+$ ]]; then
    echo "make test: IDO_TEST_WORKERS must be a number of processes (0 = no workers), not '$WORKERS'" >&2
    exit 2
fi
$VENV/bin/pytest -m "not slow" -n "$WORKERS" "$@"
