# velero.data_restore developer toolchain. Every target installs what it needs on a fresh machine.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
VENV_PY := $(abspath $(VENV))/bin/python
VENV_BIN := $(abspath $(VENV))/bin
STAMP := $(VENV)/.installed
COLLECTIONS := $(abspath collections)
COLLECTION_LINK := collections/ansible_collections/velero/data_restore
export ANSIBLE_COLLECTIONS_PATH := $(COLLECTIONS)
export ANSIBLE_COLLECTIONS_SCAN_SYS_PATH := true
export PATH := $(VENV_BIN):$(PATH)
PYTEST := $(VENV_PY) -m pytest
PYTEST_ARGS ?=

-include tests/cluster/cluster.mk

.PHONY: help setup lint sanity unit integration molecule compat test demo build docs-check clean bench

help:
	@echo "make demo   - build/start the local test cluster and run a data-only restore end to end"
	@echo "make test   - lint, ansible-test sanity, unit, integration and molecule suites"
	@echo "pieces: setup lint sanity unit integration molecule compat build cluster-up cluster-down"

$(STAMP): requirements-dev.txt requirements.txt
	@command -v $(PYTHON) >/dev/null || { echo "python3 is required"; exit 1; }
	$(PYTHON) -m venv $(VENV) || { apt-get update -qq && apt-get install -y -qq python3-venv && $(PYTHON) -m venv $(VENV); }
	$(VENV_PY) -m pip install -q --upgrade pip
	$(VENV_PY) -m pip install -q -r requirements-dev.txt
	touch $(STAMP)

$(COLLECTION_LINK):
	mkdir -p $(dir $(COLLECTION_LINK))
	ln -sfn ../../.. $(COLLECTION_LINK)

setup: $(STAMP) $(COLLECTION_LINK)
	@$(VENV_BIN)/ansible --version | sed -n 1p

lint: setup
	$(VENV_BIN)/yamllint -s .
	$(VENV_BIN)/ansible-lint --profile production --offline

# ansible-test cannot download its pip bootstrap script here: tools/sanity.sh gives it an offline one.
sanity: setup
	bash tools/sanity.sh

unit: setup
	$(PYTEST) tests/unit $(PYTEST_ARGS)

integration: setup cluster-up
	$(PYTEST) -m integration tests/integration tests/cluster $(PYTEST_ARGS)

molecule: setup cluster-up
	@if ls molecule/*/molecule.yml >/dev/null 2>&1; then molecule/run.sh; \
	else echo "no molecule scenarios yet"; fi

build: setup
	$(VENV_BIN)/ansible-galaxy collection build --force --output-path tests/output

docs-check: setup
	@for m in $$(ls plugins/modules/*.py | xargs -n1 basename | sed 's/\.py$$//'); do \
	  $(VENV_BIN)/ansible-doc velero.data_restore.$$m >/dev/null || exit 1; done
	@for f in $$(ls plugins/filter/*.py | xargs -n1 basename | sed 's/\.py$$//'); do \
	  $(VENV_BIN)/ansible-doc -t filter velero.data_restore.$$f >/dev/null || exit 1; done
	@echo "ansible-doc renders every module and filter"

# The suites log every API request of this collection's modules (tests/request_log); tools/rbac_usage.py then
# checks them against docs/rbac.yml (strict - every required permission used - on a full run only).
REQUEST_LOG_DIR := $(abspath tests/output/requests)
REQUEST_LOG_ENV := DATA_RESTORE_REQUEST_LOG_DIR=$(REQUEST_LOG_DIR) PYTHONPATH=$(abspath tests/request_log)$(if $(PYTHONPATH),:$(PYTHONPATH))
# The integration suites also log every module result (tests/integration/ansible_run.py); tools/return_docs.py
# checks them against the modules' RETURN docs.
RESULT_LOG_DIR := $(abspath tests/output/results)

test: setup lint sanity docs-check build
	rm -rf $(REQUEST_LOG_DIR) $(RESULT_LOG_DIR) && mkdir -p $(REQUEST_LOG_DIR)
	$(REQUEST_LOG_ENV) DATA_RESTORE_RESULT_LOG_DIR=$(RESULT_LOG_DIR) $(PYTEST) tests/unit tests/integration tests/cluster -m "not e2e" $(PYTEST_ARGS)
	$(VENV_PY) tools/return_docs.py $(RESULT_LOG_DIR) --out tests/output/return-docs.md
	$(REQUEST_LOG_ENV) $(MAKE) molecule
	$(VENV_PY) tools/rbac_usage.py $(REQUEST_LOG_DIR) --out tests/output/rbac-usage.md $(if $(PYTEST_ARGS),,--strict)
	$(MAKE) compat

# The oldest supported stack (ansible-core 2.16, kubernetes.core 5.0.0, kubernetes client 24.2.0) in .venv-compat.
compat: setup cluster-up
	tests/compat/run.sh

# Not part of `make test` (slow): BENCH_SIZES="10 50 200" by default; writes docs/performance.md.
bench: setup cluster-up
	mkdir -p tests/output
	$(VENV_PY) tests/bench/bench.py

demo: setup cluster-up
	$(VENV_PY) tests/demo/demo.py

clean:
	rm -rf tests/output collections .venv-compat
