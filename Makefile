# The front door. `make demo` sets everything up and runs the pipeline; `make test` runs the suite.
SHELL := /bin/bash
.DEFAULT_GOAL := help
ENV := . scripts/env.sh &&
DEMO_START ?= 2026-01-01
DEMO_DAYS ?= 3
DEMO_CUSTOMERS ?= 500
DEMO_TERMINALS ?= 1000

.PHONY: help setup jars demo test up down status bench lint clean dbt-build dbt-docs bench-pipeline

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-8s %s\n", $$1, $$2}'

setup: ## install uv, the locked .venv, Delta jars; migrate Airflow's DB; create the Spark pool
	@./scripts/setup.sh

jars: ## (re)resolve the Delta jars with Maven into .cache/spark-jars
	mvn -q -B -f build/pom.xml package

demo: setup ## simulate a few days, run data_pipeline for each through Airflow, print table counts
	@$(ENV) python -m jobs.simulate --start-date $(DEMO_START) --days $(DEMO_DAYS) \
		--customers $(DEMO_CUSTOMERS) --terminals $(DEMO_TERMINALS) --seed 7 --bad-rows-rate 0.01
	@echo "==> data_pipeline through Airflow (dag.test) for $(DEMO_DAYS) days from $(DEMO_START); log: var/airflow/demo.log"
	@$(ENV) last=$$(python3 -c 'import datetime,sys; print(datetime.date.fromisoformat(sys.argv[1]) + datetime.timedelta(days=int(sys.argv[2]) - 1))' $(DEMO_START) $(DEMO_DAYS)); \
		python scripts/run_dag_days.py data_pipeline $(DEMO_START) $$last > var/airflow/demo.log 2>&1 \
			|| { tail -40 var/airflow/demo.log; exit 1; }; \
		grep -E '^data_pipeline ' var/airflow/demo.log
	@$(ENV) python -m jobs.lakehouse --table 2>/dev/null

dbt-build: setup ## dbt build (all models and tests) in the project's Spark session; AS_OF=YYYY-MM-DD sets the label date
	@$(ENV) python -m jobs.transform build $(if $(AS_OF),--as-of $(AS_OF))

dbt-docs: setup ## generate the dbt docs site and serve it on http://localhost:8081
	@$(ENV) python -m jobs.transform docs generate && python -m jobs.transform docs serve --port 8081 --no-browser

test: setup ## run the test suite (real Spark, Delta, Airflow)
	@$(ENV) python -m pytest tests -q

up: setup ## start the Airflow UI and components in the background (http://localhost:8080)
	@$(ENV) ./scripts/airflow-up.sh

down: ## stop what `make up` started
	@$(ENV) ./scripts/airflow-down.sh

bench: setup ## print simulator and ingestion throughput (bench/ingest.py)
	@$(ENV) python bench/ingest.py

bench-pipeline: setup ## time one large day through ingestion, dbt and features (bench/pipeline.py; DAY_ROWS=1000000)
	@$(ENV) python bench/pipeline.py --day-rows $(or $(DAY_ROWS),1000000)

lint: ## hadolint the Dockerfile
	@$(ENV) hadolint --config .hadolint.yaml docker/Dockerfile

clean: ## remove generated data, Airflow state and caches (keeps .venv and the jars)
	rm -rf data var .pytest_cache .hypothesis
