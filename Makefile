# The entry points. `make run` and `make test` install what they need themselves
# (idempotently: a second run only checks).
SHELL := /bin/bash
.DEFAULT_GOAL := help

CRM_HOME    ?= $(CURDIR)/.crm
UV_VERSION  := 0.13.8
UV          := $(CRM_HOME)/tools/bin/uv
PY          := $(CURDIR)/.venv/bin/python
export UV_PROJECT_ENVIRONMENT := $(CURDIR)/.venv
export CRM_HOME

.PHONY: help
help: ## list the targets
	@grep -hE '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN{FS=":.*## "}{printf "  %-18s %s\n",$$1,$$2}'

# --- setup --------------------------------------------------------------------------------------
$(UV):
	python3 -m venv $(CRM_HOME)/tools
	$(CRM_HOME)/tools/bin/pip install --quiet uv==$(UV_VERSION)

.venv/.synced: $(UV) uv.lock pyproject.toml $(wildcard libs/*/pyproject.toml services/*/pyproject.toml) tests/support/pyproject.toml
	$(UV) sync --frozen --all-packages
	@touch $@

.PHONY: setup
setup: .venv/.synced kafka-jars secantus-rs web-assets ## install Python deps (uv, locked), Kafka's jars, the Rust SecantusDB, the dashboard's chart library

.PHONY: web-assets
web-assets: ## the dashboard's Chart.js (npm ci, locked) copied into the gateway package
	@bash scripts/web-assets.sh ensure

.PHONY: chromium
chromium: ## Debian's Chromium for the dashboard's real-browser test
	@bash scripts/chromium.sh ensure

.PHONY: secantus-rs
secantus-rs: ## build the Rust SecantusDB server once per machine (falls back to secantusd-py)
	@bash deploy/local/build-secantus-rs.sh || \
		echo "warning: the Rust SecantusDB build failed; the stack uses secantusd-py (slower)" >&2

.PHONY: kafka-jars
kafka-jars: ## fetch Apache Kafka's jars from Maven Central into .crm/kafka
	@bash deploy/local/fetch-kafka.sh

# --- the two commands ---------------------------------------------------------------------------
.PHONY: run
run: setup ## start the stack; a simulated company lives a few days through the gateway, then its KPIs (SIMULATE=0: the platform only, with one contact and one ticket)
	$(PY) -m crm_devstack run --demo $(if $(filter 0,$(SIMULATE)),--no-simulate)

.PHONY: test
test: setup chromium ## lint, then every test (unit + integration against real Kafka and SecantusDB)
	@$(MAKE) --no-print-directory lint
	$(PY) -m pytest -p crm_devstack.pytest_plugin $(PYTEST_ARGS)

# --- contracts and code quality -----------------------------------------------------------------
.PHONY: proto
proto: .venv/.synced ## regenerate Python code from proto/
	@bash scripts/proto.sh generate

.PHONY: proto-check
proto-check: .venv/.synced ## fail if generated code is not current
	@bash scripts/proto.sh check

.PHONY: lint
lint: .venv/.synced ## ruff, mypy, buf lint, buf breaking against main, generated code current
	.venv/bin/ruff check .
	.venv/bin/ruff format --check .
	.venv/bin/mypy
	@bash scripts/proto.sh format-check
	@bash scripts/proto.sh lint
	@bash scripts/proto.sh breaking
	@bash scripts/proto.sh check

.PHONY: fmt
fmt: .venv/.synced ## format the code
	.venv/bin/ruff format .
	.venv/bin/ruff check --fix .

# --- infrastructure -----------------------------------------------------------------------------
.PHONY: up down status
up: setup ## start the local stack in the background
	$(PY) -m crm_devstack up
down: .venv/.synced ## stop the local stack
	$(PY) -m crm_devstack down
status: .venv/.synced ## show what runs where
	$(PY) -m crm_devstack status

# --- benchmarks ---------------------------------------------------------------------------------
.PHONY: bench bench-contacts bench-contacts-import bench-servicedesk bench-timers bench-secantus bench-metrics bench-gateway bench-sales
bench: bench-contacts bench-servicedesk bench-timers bench-metrics bench-gateway bench-sales ## all benchmarks
bench-contacts: setup ## contacts create/get throughput and latency, relay lag
	$(PY) bench/contacts_bench.py
	$(MAKE) bench-contacts-import
bench-contacts-import: setup ## contacts import: rows/s through ImportContacts vs bare insert_many (CRM_IMPORT_ROWS)
	$(PY) bench/contacts_import_bench.py
bench-servicedesk: setup ## service desk: tickets/messages, mention ingestion, SLA timer lateness
	$(PY) bench/servicedesk_bench.py
bench-timers: setup ## durable timers: lateness with 100,000 pending, bursts
	$(PY) bench/timers_bench.py
bench-metrics: setup ## metrics: throughput vs bare consume, freshness, GetKpis vs PostgreSQL, replay, memory
	$(PY) bench/metrics_bench.py
bench-gateway: setup ## gateway: read/write through the gateway vs direct, HTTP, GetCustomer360
	$(PY) bench/gateway_bench.py
bench-sales: setup ## sales: every bench/sales*_bench.py in turn (opportunities, quote PDFs, ...)
	@set -e; for script in bench/sales*_bench.py; do \
		echo "== $$script"; $(PY) "$$script"; \
	done
bench-secantus: setup ## SecantusDB Python vs Rust server
	$(PY) bench/secantus_compare.py

# --- stability ----------------------------------------------------------------------------------
N ?= 20
.PHONY: soak-oracle
soak-oracle: setup ## the metrics oracle tests N times in a row (N=20; K=all or a pytest -k expression); prints "N passed, M failed"
	@bash scripts/soak-oracle.sh $(N) $(if $(K),"$(K)")

.PHONY: clean
clean: ## remove local state (data, logs, leftovers of killed test runs), keep installed tools
	rm -rf $(CRM_HOME)/data $(CRM_HOME)/logs $(CRM_HOME)/run $(CRM_HOME)/test
