# The front door. `make demo` sets everything up and runs the pipeline; `make test` runs the suite.
SHELL := /bin/bash
.DEFAULT_GOAL := help
ENV := . scripts/env.sh &&

.PHONY: help setup jars demo train mlflow-ui test up down status bench lint format clean dbt-build dbt-docs bench-pipeline bench-train bench-quality serve score monitor bento bench-serving bench-monitor bench-drift bench-constraints explain reproduce maintain deploy rollback audit

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-15s %s\n", $$1, $$2}'

setup: ## install uv, the locked .venv, Delta jars; migrate Airflow's DB; create the Spark pool
	@./scripts/setup.sh

jars: ## (re)resolve the Delta jars with Maven into .cache/spark-jars
	mvn -q -B -f build/pom.xml package

demo: setup ## simulate 91 days, backfill 90, run data_pipeline for the last through Airflow, train_model once, print the model
	@./scripts/demo.sh

train: setup ## run train_model once through Airflow (dag.test); CONF='{"n_trials": 8}' sets DAG params
	@$(ENV) python scripts/run_dag_days.py train_model $$(date -u +%F) $$(date -u +%F) $(if $(CONF),--conf '$(CONF)')
	@$(ENV) python -m jobs.release.registry status 2>/dev/null

mlflow-ui: setup ## MLflow UI on the embedded store (runs, registry, artifacts) at http://localhost:5000
	@$(ENV) python -c 'from jobs.config import get_settings as g; s=g(); print(s.mlflow_tracking_uri)' > var/mlflow-uri && \
		MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false mlflow server --workers 1 --backend-store-uri "$$(cat var/mlflow-uri)" --registry-store-uri "$$(cat var/mlflow-uri)" --host 127.0.0.1 --port 5000

serve: setup ## the scoring API (BentoML) on http://localhost:3000: champion from MLflow, online store materialized by data_pipeline
	@echo "scoring API: http://localhost:$${PIPELINE_SERVING_PORT:-3000}  (docs: /docs, probes: /healthz /readyz, metrics: /metrics)"
	@echo "try:  curl -s -X POST localhost:$${PIPELINE_SERVING_PORT:-3000}/score -H 'Content-Type: application/json' \\"
	@echo "        -d '{\"transaction_id\": \"tx-1\", \"tx_datetime\": \"2026-01-02 10:00:00\", \"customer_id\": \"0\", \"terminal_id\": \"0\", \"tx_amount\": 57.25}'"
	@$(ENV) python -m serving

deploy: setup ## roll out a version to the running service through Airflow (dag.test): VERSION=N (default: the candidate), STRATEGY=progressive|canary|shadow|direct
	@$(ENV) python scripts/run_dag_days.py deploy_model $$(date -u +%F) $$(date -u +%F) --conf '{"version": $(if $(VERSION),"$(VERSION)",null), "strategy": "$(or $(STRATEGY),progressive)"}'
	@$(ENV) python -m jobs.release.registry status 2>/dev/null

rollback: setup ## champion := previous champion (ends a rollout); the running service follows within PIPELINE_SERVING_RELOAD_S
	@$(ENV) python -m jobs.release.registry rollback --approver "$${USER:-$$(id -un)}@$$(hostname)"

audit: setup ## the audit trail of model decisions (governance.audit_log); VERSION=N for one version
	@$(ENV) python -m jobs.release.registry audit $(if $(VERSION),--version $(VERSION),)

explain: setup ## which model version scored a transaction, on what it was trained, who approved it (TX=<transaction_id>)
	@$(ENV) python -m jobs.governance explain-decision $(TX)

reproduce: setup ## rebuild a model version's training set from its pinned Delta versions, refit, compare (V=<version>; default: the champion)
	@$(ENV) python -m jobs.governance reproduce $(or $(V),champion)

maintain: setup ## Delta maintenance now (OPTIMIZE, VACUUM) without Airflow, keeping every version a registered model pins
	@$(ENV) python -m jobs.governance.lakehouse

score: setup ## batch-score one day without Airflow: DATE=YYYY-MM-DD (predictions.transaction_scores, predictions.daily_alerts)
	@$(ENV) python -m jobs.scoring.batch --date $(DATE)

monitor: setup ## run the monitoring checks of one day without Airflow: DATE=YYYY-MM-DD (monitoring.checks)
	@$(ENV) python -m jobs.monitoring.checks --date $(DATE)

bento: setup ## build the Bento (bentofile.yaml) into the local BentoML store, with the locked requirements
	@mkdir -p build/target && $(ENV) uv export --frozen --no-dev --no-emit-project --no-hashes --no-header --no-annotate --output-file build/target/serving-requirements.txt -q
	@$(ENV) BENTOML_DO_NOT_TRACK=true bentoml build -f bentofile.yaml .

dbt-build: setup ## dbt build (all models and tests) in the project's Spark session; AS_OF=YYYY-MM-DD sets the label date
	@$(ENV) python -m jobs.platform.dbt_runner build $(if $(AS_OF),--as-of $(AS_OF))

dbt-docs: setup ## generate the dbt docs site and serve it on http://localhost:8081
	@$(ENV) python -m jobs.platform.dbt_runner docs generate && python -m jobs.platform.dbt_runner docs serve --port 8081 --no-browser

TEST_WORKERS ?= 2
test: setup ## run the test suite (real Spark, Delta, Airflow) in TEST_WORKERS processes (default 2)
	@$(ENV) python -m pytest tests -q -n $(TEST_WORKERS)

up: setup ## start the Airflow UI and components in the background (http://localhost:8080)
	@$(ENV) ./scripts/airflow-up.sh

down: ## stop what `make up` started
	@$(ENV) ./scripts/airflow-down.sh

bench: setup ## print simulator and ingestion throughput (bench/ingest.py)
	@$(ENV) python bench/ingest.py

bench-train: setup ## Ray Tune + ASHA against a sequential loop of the same trials (bench/train.py)
	@$(ENV) python bench/train.py

bench-quality: setup ## model quality on 120 simulated days, 7/7/7 and default protocols (bench/quality.py)
	@$(ENV) python bench/quality.py

bench-serving: setup ## the scoring API against `mlflow models serve` at 1/16/64 clients (bench/serving.py; needs `make demo` first)
	@$(ENV) python bench/serving.py

bench-monitor: setup ## the daily monitoring step on a 1M-transaction day against Evidently's drift report alone (bench/monitor.py)
	@$(ENV) python bench/monitor.py

bench-drift: setup ## the monitoring loop end to end: a card-testing wave, flagged, retrained, recovered (bench/drift_scenario.py; ~20 min on 2 cores; KEEP=DIR keeps or resumes its work dir)
	@$(ENV) python bench/drift_scenario.py $(if $(KEEP),--keep $(KEEP))

bench-constraints: setup ## refit a kept drift run's trainings with and without the monotone constraints (bench/constraints.py; KEEP=DIR of `make bench-drift KEEP=DIR`)
	@test -n "$(KEEP)" || { echo "usage: make bench-constraints KEEP=DIR (a work dir kept by make bench-drift KEEP=DIR)"; exit 2; }
	@$(ENV) python bench/constraints.py --keep $(KEEP)

bench-pipeline: setup ## time one large day through ingestion, dbt and features (bench/pipeline.py; DAY_ROWS=1000000)
	@$(ENV) python bench/pipeline.py --day-rows $(or $(DAY_ROWS),1000000)

lint: setup ## ruff (lint rules, import order, formatting) and hadolint on the Dockerfile; the test suite runs them too
	@$(ENV) ruff check . && ruff format --check . && hadolint --config .hadolint.yaml docker/Dockerfile

format: setup ## format the code and fix the import order with ruff
	@$(ENV) ruff check --select I --fix . && ruff format .

clean: ## remove generated data, Airflow state and caches (keeps .venv and the jars)
	rm -rf data var .pytest_cache .hypothesis
