# jobfleet — every task a developer or CI runs. `make help` lists them.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
PYTEST := $(VENV)/bin/pytest
# playwright drives Debian's chromium (tests/browser); it never downloads a browser of its own.
export PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD := 1

.PHONY: help bootstrap venv tools crds demo test lint unit integration browser e2e bench clean

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/' | column -t -s $$'\t'

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install -q -U pip
	$(VENV)/bin/pip install -q -e '.[operator,dev]'
	touch $@

venv: $(VENV)/.installed  ## create the virtualenv with every dependency

bootstrap:  ## install what a fresh Debian machine lacks: packages, the venv, the e2e tools (cached)
	bash scripts/bootstrap.sh

tools:  ## build the pinned Kubernetes tools, helm, Prometheus and Alertmanager once into ~/.cache/jobfleet (cached)
	bash e2e/tools/build.sh

crds: venv  ## regenerate the Queue CRD from the operator's spec model (and the chart's copy)
	$(PY) -m jobfleet_operator.crd
	cp crds/jobfleet.dev_queues.yaml helm/jobfleet/crds/

demo: bootstrap  ## the main job, locally: a burst of jobs drained by an autoscaled fleet
	bash examples/demo.sh

lint: venv  ## ruff, mypy and the import layers (import-linter, see pyproject.toml)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports

unit: venv  ## pure-logic tests, no I/O (no redis-server: a test that would start one fails)
	JOBFLEET_REDIS_SERVER=/nonexistent/redis-server $(PYTEST) -q tests/unit tests/operator

integration: venv  ## tests against a real redis-server (the admin API's too)
	$(PYTEST) -q tests/integration tests/admin

browser: venv  ## the dashboard in headless Chromium against a real admin server, worker and redis-server
	$(PYTEST) -q tests/browser

e2e: venv  ## tests against a real Kubernetes control plane (kwok; E2E_CLUSTER=kind for kind)
	bash e2e/run.sh

test: bootstrap  ## everything, on a fresh machine too: set-up, lint, unit, integration, browser, packaging, e2e
	$(MAKE) --no-print-directory lint
	$(PYTEST) -q tests
	bash e2e/run.sh

bench: venv  ## benchmarks (not tests); results go to bench/RESULTS.md
	bash bench/run.sh

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache build *.egg-info
