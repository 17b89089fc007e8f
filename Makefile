# Bootstraps from a bare python3: a virtual environment with the pinned install, then the command.
PYTHON ?= python3
SUPPORTED_PYTHONS := 3.11 3.12 3.13
VENV := .venv
BIN := $(VENV)/bin
PY_VERSION := $(shell $(PYTHON) -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null)
# The stamp names the interpreter: a .venv made by another Python is rebuilt, not reused.
INSTALLED := $(VENV)/.installed-$(PY_VERSION)
DEMO := .mspbyte/demo
DEFAULT_HOME := $(CURDIR)/.mspbyte/dagster_home

# The instance needs every {env: X} of dagster.yaml set.
export MAX_CONCURRENT_JOBS ?= 5
ifeq ($(origin DAGSTER_HOME),undefined)
export DAGSTER_HOME := $(DEFAULT_HOME)
endif

.PHONY: install demo test test-fast home ui python prod-up prod-down prod-status

python:
	@case " $(SUPPORTED_PYTHONS) " in *" $(PY_VERSION) "*) ;; \
	  *) echo "$(PYTHON) $(if $(PY_VERSION),is Python $(PY_VERSION),does not run): mspbyte_dagster needs" \
	       "Python $(SUPPORTED_PYTHONS); name one with make PYTHON=python3.12 ..." >&2; exit 2;; esac

# A failed install removes .venv, so the next attempt starts clean instead of from half an install.
# The project itself is built with the locked setuptools (no build isolation): nothing unpinned comes in.
$(INSTALLED): requirements.lock pyproject.toml | python
	@if [ -d $(VENV) ] && [ "$$($(BIN)/python -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null)" != "$(PY_VERSION)" ]; then \
	  echo "$(VENV) was made by another Python: rebuilding it with $(PYTHON) ($(PY_VERSION))"; rm -rf $(VENV); fi
	$(PYTHON) -m venv $(VENV)
	( $(BIN)/python -m pip install --quiet --upgrade pip \
	  && $(BIN)/python -m pip install --quiet -r requirements.lock \
	  && $(BIN)/python -m pip install --quiet --no-deps --no-build-isolation -e . ) || { rm -rf $(VENV); echo "install failed: $(VENV) removed" >&2; exit 1; }
	rm -f $(VENV)/.installed-*
	touch $@

install: $(INSTALLED)

# Only the default home is ours to create; a DAGSTER_HOME you set is used as it is.
home:
	@if [ "$(DAGSTER_HOME)" = "$(DEFAULT_HOME)" ]; then \
	  mkdir -p "$(DAGSTER_HOME)"; \
	  [ -e "$(DAGSTER_HOME)/dagster.yaml" ] || cp mspbyte_dagster/dagster.yaml "$(DAGSTER_HOME)/dagster.yaml"; \
	fi

demo: install home
	$(BIN)/mspbyte db upgrade
	$(BIN)/mspbyte synth --tenants 4 --users 200 --seed 7 --out $(DEMO)
	$(BIN)/mspbyte tenants import $(DEMO)/*
	$(BIN)/mspbyte run --all
	$(MAKE) ui

ui: install home
	@echo "Dagster UI on http://127.0.0.1:3000 (DAGSTER_HOME=$(DAGSTER_HOME)); Ctrl-C stops it."
	$(BIN)/dagster dev -w workspace.yaml -h 127.0.0.1 -p 3000

test: install
	$(BIN)/ruff check mspbyte_dagster mspbyte_dagster_tests mspbyte_dev
	$(BIN)/python -m pytest

# The quick loop: no PostgreSQL, Redis or NATS, and none of the tests that take a second or more.
test-fast: install
	$(BIN)/python -m pytest -m "not services and not slow"

# The production stack on this machine (README "Deployments"): every production variable must be set.
WORKERS ?= 2
prod-up: install
	$(BIN)/mspbyte prod up --workers $(WORKERS)

prod-down: install
	$(BIN)/mspbyte prod down

prod-status: install
	$(BIN)/mspbyte prod status
