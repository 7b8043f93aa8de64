# The one entry point for people and CI. `make help` lists the targets.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help
MAKEFLAGS += --no-print-directory

# The target environment of every command that has one: ENV=dev|prod (a samconfig.toml
# environment, deployed on AWS) or ENV=local (the running local stage). Each target's default is on
# its help line. STAGE= is the old name of the same knob and still works.
ENV ?= $(STAGE)
REGION ?= $(or $(AWS_REGION),$(AWS_DEFAULT_REGION),us-east-1)
export AWS_DEFAULT_REGION := $(REGION)
# SAM CLI would otherwise phone home on every command.
export SAM_CLI_TELEMETRY := 0
export PIP_DISABLE_PIP_VERSION_CHECK := 1

VENV := .venv
TOOLS := .tools
PY := $(VENV)/bin/python
PIP_QUIET := -q
# The machine's pip config names local indexes that may be absent; those warnings are noise.
PIP_FILTER := grep -v '^WARNING: Location' || true

# Resolved lazily (=) so targets that do not need Python never look for it.
PYTHON313 = $(shell scripts/buildtools/find_python.sh)
PYTHON313_DIR = $(dir $(PYTHON313))

.PHONY: help
help: ## list the targets
	@grep -hE '^[a-z][a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | sort | \
	  awk 'BEGIN {FS = ":.*## "}; {printf "  make %-16s %s\n", $$1, $$2}'
	@echo "  ENV=dev|prod|local picks the target environment (samconfig.toml's dev or prod, or the"
	@echo "  running local stage) of deploy, dlq-*, perf-test and warming-cost; defaults per target"

# ---------------------------------------------------------------- environments
.PHONY: python-check
python-check:
	@scripts/buildtools/find_python.sh >/dev/null

$(VENV)/.installed: requirements/dev.txt layers/shared/requirements.txt | python-check
	@if [ ! -x $(PY) ] || ! $(PY) -c 'import sys; sys.exit(sys.version_info[:2] != (3, 13))'; then \
	  rm -rf $(VENV); echo "creating $(VENV) with $(PYTHON313)"; $(PYTHON313) -m venv $(VENV); fi
	@echo "installing pinned development requirements into $(VENV)"
	@$(PY) -m pip install $(PIP_QUIET) -r requirements/dev.txt 2>&1 | $(PIP_FILTER)
	@touch $@

$(TOOLS)/%/.installed: requirements/%.txt | python-check
	@rm -rf $(TOOLS)/$*; echo "creating $(TOOLS)/$* with $(PYTHON313)"
	@$(PYTHON313) -m venv $(TOOLS)/$*
	@$(TOOLS)/$*/bin/python -m pip install $(PIP_QUIET) -r $< 2>&1 | $(PIP_FILTER)
	@touch $@

.PHONY: venv tools
venv: $(VENV)/.installed ## create or refresh .venv (Python 3.13, pinned requirements)
tools: $(TOOLS)/sam/.installed $(TOOLS)/checkov/.installed $(TOOLS)/cfnlint/.installed ## install sam, checkov and cfn-lint, each in its own environment

.PHONY: lock
lock: | python-check ## re-pin requirements/*.txt from requirements/*.in (needs the package registry)
	@for name in dev sam checkov cfnlint; do \
	  tmp=$$(mktemp -d); $(PYTHON313) -m venv $$tmp; \
	  (cd requirements && $$tmp/bin/python -m pip install $(PIP_QUIET) -r $$name.in 2>&1 | $(PIP_FILTER)); \
	  { echo "# Frozen from requirements/$$name.in by 'make lock'. Edit the .in file, not this one."; \
	    $$tmp/bin/python -m pip freeze --exclude-editable; } > requirements/$$name.txt; \
	  rm -rf $$tmp; echo "locked requirements/$$name.txt"; done

# ---------------------------------------------------------------- quality
.PHONY: lint fmt typecheck
lint: $(VENV)/.installed ## ruff lint and format check
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

fmt: $(VENV)/.installed ## format and auto-fix with ruff
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

typecheck: $(VENV)/.installed ## mypy --strict on our packages
	$(VENV)/bin/mypy layers/shared/lambdakit layers/shared/vulnstats \
	  functions/sync/sync_fn functions/api/api_fn functions/warmer/warmer_fn \
	  functions/forwarder/forwarder_fn scripts tests

# ---------------------------------------------------------------- tests
# Tools are found by the template tests through these variables.
TEST_ENV = TOOLS_DIR=$(abspath $(TOOLS)) PYTHON313_DIR=$(PYTHON313_DIR)

.PHONY: test unit-test template-test audit
test: lint typecheck tools ## lint, type checks and every test (unit, integration, template)
	$(TEST_ENV) $(PY) -m pytest -n 2 --dist loadgroup -m "not perf"

audit: $(VENV)/.installed ## known vulnerabilities of every pinned requirement (PyPI advisory data; also in make test)
	$(PY) scripts/ops/audit_requirements.py requirements/*.txt layers/shared/requirements.txt \
	  --ignore requirements/audit-ignore.conf

unit-test: $(VENV)/.installed ## unit tests only
	$(PY) -m pytest tests/unit

template-test: $(VENV)/.installed tools ## template tests only (cfn-lint, sam validate/build, checkov, translation)
	$(TEST_ENV) $(PY) -m pytest tests/template

# ---------------------------------------------------------------- SAM
SAM = PATH="$(PYTHON313_DIR):$$PATH" $(TOOLS)/sam/bin/sam

.PHONY: build validate deploy invoke
# sam build leaves no bytecode and Lambda's code folders are read-only, so every cold start would
# compile every module again: compile_bytecode.py ships unchecked-hash .pyc Lambda uses as is.
build: $(TOOLS)/sam/.installed ## sam build, then bytecode Lambda can use (scripts/buildtools/compile_bytecode.py)
	$(SAM) build
	$(PYTHON313) scripts/buildtools/compile_bytecode.py .aws-sam/build

validate: $(TOOLS)/sam/.installed ## sam validate --lint
	$(SAM) validate --lint

# The live alias gets a new version only when ApiVersionHash changes (template.yaml, ApiFunction):
# scripts/buildtools/version_hash.py hashes code, layers and settings, and prints samconfig's
# overrides with the hash added: sam deploy ignores them once --parameter-overrides is given.
DEPLOY_ENV = $(or $(ENV),dev)
# Checked before the build (scripts/buildtools/deploy_check.py): the environment exists in
# samconfig.toml, its overrides are values the template allows (the placeholder secret ARN is
# not) and AWS credentials are found. Each failure is one line and exit 2, in a second.
DEPLOY_CHECK = PYTHONPATH=scripts:layers/shared $(PY) -m buildtools.deploy_check --config-env $(DEPLOY_ENV)
DEPLOY_OVERRIDES = PYTHONPATH=scripts $(PY) -m buildtools.version_hash --config-env $(DEPLOY_ENV) --parameter-overrides

.PHONY: deploy-guided version-hash delete sam
deploy: $(VENV)/.installed ## check, build, then sam deploy with a samconfig environment and the API's version hash: make deploy [ENV=dev|prod|dr] (default dev)
	@$(DEPLOY_CHECK)
	@$(MAKE) build
	overrides="$$($(DEPLOY_OVERRIDES))"; \
	  $(SAM) deploy --config-env $(DEPLOY_ENV) --parameter-overrides "$$overrides"

deploy-guided: $(VENV)/.installed ## the first deploy, sam deploy --guided, after make deploy's checks: make deploy-guided [ENV=dev|prod|dr]
	@$(DEPLOY_CHECK)
	@$(MAKE) build
	overrides="$$($(DEPLOY_OVERRIDES))"; \
	  $(SAM) deploy --guided --config-env $(DEPLOY_ENV) --parameter-overrides "$$overrides"

version-hash: $(VENV)/.installed ## print the --parameter-overrides make deploy passes (samconfig's, plus ApiVersionHash): [ENV=dev|prod|dr]
	@$(DEPLOY_OVERRIDES)

delete: $(TOOLS)/sam/.installed ## tear a deployed stack down (sam delete asks to confirm): make delete ENV=dev|prod|dr
	@[ -n "$(ENV)" ] && [ "$(ENV)" != local ] || { echo "usage: make delete ENV=<samconfig environment, e.g. dev> (it deletes that stack and its artifacts)" >&2; exit 2; }
	$(SAM) delete --config-env $(ENV)

sam: $(TOOLS)/sam/.installed ## the project's pinned SAM CLI: make sam ARGS="list stack-outputs --stack-name vulnstats-dev"
	$(SAM) $(ARGS)

invoke: $(TOOLS)/sam/.installed ## sam local invoke (needs Docker): make invoke FN=ApiFunction EVENT=events/api_get_health.json
	@[ -n "$(FN)" ] && [ -n "$(EVENT)" ] || { echo "usage: make invoke FN=<logical id> EVENT=events/<file>.json" >&2; exit 2; }
	@docker info >/dev/null 2>&1 || { echo "sam local invoke needs a running Docker engine; none found. Use 'make invoke-local' (Docker-free) instead." >&2; exit 2; }
	$(SAM) local invoke $(FN) --event $(EVENT)

# ---------------------------------------------------------------- local stage
LOCALSTAGE = PYTHONPATH=scripts:layers/shared $(PY) -m localstage
LOCAL_ARGS ?=

.PHONY: local local-built invoke-local fire-local logs-local logs
local: $(VENV)/.installed ## run the whole stack on loopback without Docker (Ctrl-C stops it); LOCAL_ARGS=--help for options
	$(LOCALSTAGE) up $(LOCAL_ARGS)

local-built: build $(VENV)/.installed ## make local, running the sam build output (read-only, its own bytecode) as Lambda does
	$(LOCALSTAGE) up --build-dir .aws-sam/build $(LOCAL_ARGS)

invoke-local: $(VENV)/.installed ## Docker-free sam local invoke: make invoke-local FN=ApiFunction EVENT=events/api_get_health.json
	@[ -n "$(FN)" ] && [ -n "$(EVENT)" ] || { echo "usage: make invoke-local FN=<logical id> EVENT=events/<file>.json" >&2; exit 2; }
	$(LOCALSTAGE) invoke $(FN) $(EVENT)

fire-local: $(VENV)/.installed ## fire a template schedule now on the running stage: make fire-local SCHEDULE=SyncFunction
	@[ -n "$(SCHEDULE)" ] || { echo "usage: make fire-local SCHEDULE=<Function.Event or function logical id>" >&2; exit 2; }
	$(LOCALSTAGE) fire $(SCHEDULE)

logs-local: $(VENV)/.installed ## follow the function logs of the running local stage: make logs-local [FN=SyncFunction]
	$(LOCALSTAGE) logs $(FN)

logs: $(TOOLS)/sam/.installed ## follow a deployed function's logs (sam logs --tail): make logs ENV=dev|prod FN=ApiFunction
	@[ -n "$(ENV)" ] && [ -n "$(FN)" ] || { echo "usage: make logs ENV=<samconfig environment, e.g. dev> FN=<logical id, e.g. ApiFunction> (the local stage: make logs-local)" >&2; exit 2; }
	@stack=$$(PYTHONPATH=scripts $(PY) -c 'import sys; from locate import samconfig_environment as env; print(env(sys.argv[1]).stack())' $(ENV) 2>&1) || { echo "$$stack" | tail -1 | sed "s/^locate.LocateError: //" >&2; exit 2; }; \
	  echo "sam logs --stack-name $$stack --name $(FN) --tail"; \
	  $(SAM) logs --stack-name $$stack --name $(FN) --tail

# ---------------------------------------------------------------- load
# Not part of `make test`: a bounded run (2000 requests or 60 s, concurrency 5 by default) against
# the running local stage's API front, else against a private stage it starts and syncs first.
LOAD_ARGS ?=

.PHONY: load-test
load-test: $(VENV)/.installed ## bounded load run on the local stage's API front; LOAD_ARGS="--concurrency 5 --requests 2000 --seconds 60"
	PYTHONPATH=scripts:layers/shared $(PY) -m perftest.load_test $(LOAD_ARGS)

# ---------------------------------------------------------------- operations
# The dead-letter queue of the running local stage (ENV=local, the default), or of a deployed
# stack: ENV=dev|prod takes the stack and region from samconfig.toml, STACK=<name> names one
# directly (PROFILE=<profile>).
DLQ = PYTHONPATH=scripts:layers/shared $(PY) -m ops.dlq
DLQ_ENV = $(or $(ENV),local)
DLQ_TARGET = $(if $(STACK),--stack $(STACK),$(if $(filter-out local,$(DLQ_ENV)),--config-env $(DLQ_ENV),)) \
  $(if $(PROFILE),--profile $(PROFILE),) --max-messages $(or $(MAX),100)

.PHONY: dlq-inspect dlq-redrive
dlq-inspect: $(VENV)/.installed ## list dead-letter messages and why they failed, deleting none: [ENV=local|dev|prod] [MAX=100]
	$(DLQ) inspect $(DLQ_TARGET)

dlq-redrive: $(VENV)/.installed ## re-submit dead-lettered sync events, delete each after its run succeeded: [ENV=..] [MAX=..] [DRY_RUN=1]
	$(DLQ) redrive $(DLQ_TARGET) $(if $(DRY_RUN),--dry-run,)

# ---------------------------------------------------------------- performance
# scripts/performance_test.py (docs/performance.md). PERF_MODE picks the mode (full by default),
# PERF_ARGS passes anything else, e.g. PERF_ARGS="--cold 20 --warm 200 --function ApiFunction".
# The layer is on the path for its sync-trigger contract (a private stage's first sync).
PERF = PYTHONPATH=scripts:layers/shared $(PY) scripts/performance_test.py
PERF_MODE ?= full
PERF_ARGS ?=

.PHONY: perf-test perf-test-local
perf-test: $(VENV)/.installed ## benchmark a stack: make perf-test ENV=dev|prod|local [PROFILE=...] [PERF_MODE=cold]
	@[ -n "$(ENV)" ] || { echo "usage: make perf-test ENV=<samconfig environment, e.g. dev, or local> [PROFILE=<aws profile>]" >&2; exit 2; }
	$(PERF) $(PERF_MODE) $(if $(filter local,$(ENV)),--local,--samconfig-env $(ENV)) $(if $(PROFILE),--profile $(PROFILE)) $(PERF_ARGS)

perf-test-local: $(VENV)/.installed ## make perf-test ENV=local: every function of the local stage (the running one, else a private one)
	$(PERF) $(PERF_MODE) --local $(PERF_ARGS)

# The regression guard: not part of `make test` (a benchmark, not a test). PERF_CHECK_ARGS may add
# --margin 0.3, or --write-baseline to record docs/perf-baseline.json again.
PERF_CHECK_ARGS ?=

.PHONY: perf-check
perf-check: $(VENV)/.installed ## fail if ApiFunction's cold start / floor ratio regressed past docs/perf-baseline.json
	$(PERF) check --cold 15 --warm 100 $(PERF_CHECK_ARGS)

# Cost advice (scripts/ops/warming_cost.py, docs/performance.md "Warming cost"): the monthly cost and
# cold-start rate of each warming strategy for ENV's samconfig overrides (ENV=local: the template
# defaults the local stage runs) and a traffic profile.
# COST_ARGS passes anything else, e.g. COST_ARGS="--json" or "--profile-file my-profile.json".
COST_ARGS ?=
COST_ENV = $(or $(ENV),dev)

.PHONY: warming-cost
warming-cost: $(VENV)/.installed ## monthly cost and cold-start rate of each warming strategy, and a pick: [ENV=dev|prod|local] (default dev) [COST_ARGS=--json]
	PYTHONPATH=scripts $(PY) -m ops.warming_cost $(if $(filter-out local,$(COST_ENV)),--config-env $(COST_ENV),) $(COST_ARGS)

# The standby region's monthly cost by part (scripts/ops/dr_cost.py, docs/operations.md "Disaster
# recovery"): samconfig's dr environment, and whether prod replicates its archive there.
DR_COST_ARGS ?=

.PHONY: dr-cost
dr-cost: $(VENV)/.installed ## monthly cost of the standby region (samconfig dr) by part; DR_COST_ARGS="--json"
	PYTHONPATH=scripts $(PY) -m ops.dr_cost --config-env dr --primary-env prod $(DR_COST_ARGS)

# A disaster-recovery drill on two local stages (ports 3200-3203 and 3300-3303): Route 53's
# failover policy from the template's defaults in compressed time (scripts/ops/dr_drill.py).
DR_DRILL_ARGS ?=

.PHONY: dr-drill
dr-drill: $(VENV)/.installed ## kill the primary of two local stages, time the failover to the secondary; DR_DRILL_ARGS="--compression 30"
	PYTHONPATH=scripts $(PY) -m ops.dr_drill $(DR_DRILL_ARGS)

# ---------------------------------------------------------------- housekeeping
.PHONY: clean
clean: ## remove build output, caches and environments
	rm -rf .aws-sam .local .mypy_cache .ruff_cache .pytest_cache .hypothesis reports
	find . -name __pycache__ -type d -prune -not -path './.venv/*' -not -path './.tools/*' -exec rm -rf {} +
	rm -rf $(VENV) $(TOOLS)
