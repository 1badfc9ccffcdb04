# kmseg: two commands do all the set-up on a fresh machine with only Python 3.10+ installed.
#   make demo   create .venv, install kmseg, segment the bundled photo into demo-out/
#   make test   install the test dependencies (and Debian's chromium for the browser tests), run pytest
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
PIP    := $(BIN)/python -m pip

.PHONY: demo test bench chromium clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip

# Stamps record which extras are installed; they are redone when pyproject.toml changes.
$(VENV)/.stamp-base: pyproject.toml | $(BIN)/python
	$(PIP) install --quiet -e .
	touch $@

$(VENV)/.stamp-dev: pyproject.toml | $(BIN)/python
	$(PIP) install --quiet -e ".[dev]"
	touch $@ $(VENV)/.stamp-base

$(VENV)/.stamp-bench: pyproject.toml | $(BIN)/python
	$(PIP) install --quiet -e ".[bench]"
	touch $@ $(VENV)/.stamp-base

demo: $(VENV)/.stamp-base
	$(BIN)/kmseg demo -o demo-out --force

# The browser tests drive Debian's chromium; Playwright's own browser download does not work offline.
chromium:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; \
	  else sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; fi; }

test: $(VENV)/.stamp-dev chromium
	$(BIN)/python -m pytest $(PYTEST_ARGS)

bench: $(VENV)/.stamp-bench
	$(BIN)/python -m bench $(BENCH_ARGS)

clean:
	rm -rf $(VENV) demo-out build dist src/*.egg-info .pytest_cache .hypothesis
