# Bootstraps from a bare python3: a virtual environment with the pinned install, then the command.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
DEMO := .mspbyte/demo
DEFAULT_HOME := $(CURDIR)/.mspbyte/dagster_home

# The instance needs every {env: X} of dagster.yaml set.
export MAX_CONCURRENT_JOBS ?= 5
ifeq ($(origin DAGSTER_HOME),undefined)
export DAGSTER_HOME := $(DEFAULT_HOME)
endif

.PHONY: install demo test home ui

$(VENV)/.installed: requirements.lock pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements.lock
	$(BIN)/python -m pip install --quiet --no-deps -e .
	touch $@

install: $(VENV)/.installed

# Only the default home is ours to create; a DAGSTER_HOME you set is used as it is.
home:
	@if [ "$(DAGSTER_HOME)" = "$(DEFAULT_HOME)" ]; then \
	  mkdir -p "$(DAGSTER_HOME)"; \
	  [ -e "$(DAGSTER_HOME)/dagster.yaml" ] || ln -s "$(CURDIR)/dagster.yaml" "$(DAGSTER_HOME)/dagster.yaml"; \
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
	$(BIN)/ruff check mspbyte_dagster mspbyte_dagster_tests
	$(BIN)/python -m pytest
