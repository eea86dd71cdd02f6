# Two commands for a fresh machine: `make run` and `make test`. Everything else is set up on the way.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
STAMP := $(VENV)/.installed-$(shell sha1sum pyproject.toml | cut -c1-12)

.PHONY: run test lint typecheck contracts bench resilience soak clean venv translations screenshots mutation

venv: $(STAMP)

$(STAMP): pyproject.toml
	@test -n "$(PYTHON)" || { echo "make: no python3.11 found"; exit 1; }
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info[:2] == (3, 11) else "make: Python 3.11 is required, found " + sys.version)'
	@test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet -e '.[dev]'
	@rm -f $(VENV)/.installed-*
	@touch $@

run: venv
	@bash scripts/run.sh

test: venv
	@bash scripts/test.sh

resilience: venv
	@bash tests/resilience/run.sh

# issue 19, Must show 4: the soak (tests/resilience/SOAK.md); SOAK_MINUTES (default 10), SOAK_SEED (default random)
soak: venv
	@$(VENV)/bin/python -m tests.resilience.soak $(if $(SOAK_MINUTES),--minutes $(SOAK_MINUTES)) \
		$(if $(SOAK_SEED),--seed $(SOAK_SEED))

lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/lint-imports --no-logo

typecheck: venv
	$(VENV)/bin/mypy

contracts: venv
	$(VENV)/bin/python -m contracts export

# The dashboard's texts: new ones from the code into messages.pot, merged into each language's .po (translate the
# empty ones there), then compiled; tests/operators/test_dashboard_language.py fails while one is untranslated
translations: venv
	$(VENV)/bin/pybabel extract -F babel.cfg -k lazy_gettext --no-location --sort-output --project "IDO ledger" \
		-o services/ledger/translations/messages.pot .
	$(VENV)/bin/pybabel update -i services/ledger/translations/messages.pot -d services/ledger/translations \
		--ignore-obsolete --no-fuzzy-matching --width 120
	$(VENV)/bin/pybabel compile -d services/ledger/translations --statistics

# docs/screenshots: every dashboard page as the accessibility test sees it (docs/dashboard.md shows them)
screenshots: venv
	rm -f docs/screenshots/*.png && mkdir -p docs/screenshots
	IDO_SCREENSHOTS_DIR="$$PWD/docs/screenshots" bash scripts/test.sh \
		"tests/operators/test_dashboard_accessibility.py::test_every_page_in_both_languages_as_each_role_has_no_serious_accessibility_violation"

# Hot paths beside their references (bench/README.md); sizes: make bench BENCH_ARGS="--replay-events 1000000"
bench: venv
	@bash bench/run.sh $(BENCH_ARGS)

# issue 20: mutants of the money code judged by the fast unit tests; by hand, not in CI (docs/DEVELOPING.md, "Mutation check")
mutation: venv
	@bash scripts/mutation.sh

clean:
	bash scripts/kafka.sh stop || true
	rm -rf var
