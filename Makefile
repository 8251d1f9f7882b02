# polyclinic: two commands on a fresh machine.
#   make demo   set up .venv and run the whole release flow on packaged data, tiny models and a local Hub server
#   make test   set up .venv and run the test suite
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.polyclinic-installed
DEMO_DIR ?= runs/demo

.PHONY: setup demo test test-fast bench clean help

help:
	@echo "make demo   - install into $(VENV) and run the end-to-end demo into $(DEMO_DIR)"
	@echo "make test   - install into $(VENV) and run the whole test suite"
	@echo "make test-fast - tests not marked slow"
	@echo "make bench  - run the benchmarks in benchmarks/"

setup: $(STAMP)

$(STAMP): pyproject.toml scripts/setup_env.sh
	VENV=$(VENV) bash scripts/setup_env.sh
	@touch $(STAMP)

demo: setup
	$(PY) -m polyclinic demo --output $(DEMO_DIR)

test: setup
	$(PY) -m pytest -q tests

test-fast: setup
	$(PY) -m pytest -q -m "not slow" tests

bench: setup
	$(PY) benchmarks/run_all.py

clean:
	rm -rf runs data release hub_storage .pytest_cache
