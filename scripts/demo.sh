#!/usr/bin/env bash
# `make demo`: simulate a history, backfill it, run data_pipeline for a few days through Airflow,
# then train_model once (auto-approved), and print the tables and the champion's metrics.
# Tunables (environment): DEMO_START, DEMO_DAYS, DEMO_HISTORY_DAYS, DEMO_CUSTOMERS, DEMO_TERMINALS, DEMO_TRAIN_CONF.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/env.sh
START=${DEMO_START:-2026-01-01}
DAYS=${DEMO_DAYS:-3}
HISTORY=${DEMO_HISTORY_DAYS:-42}
CUSTOMERS=${DEMO_CUSTOMERS:-500}
TERMINALS=${DEMO_TERMINALS:-1000}
TRAIN_CONF=${DEMO_TRAIN_CONF:-'{"train_days": 7, "gap_days": 7, "test_days": 7, "n_folds": 1, "n_trials": 8}'}
day() { python3 -c 'import datetime,sys; print(datetime.date.fromisoformat(sys.argv[1]) + datetime.timedelta(days=int(sys.argv[2])))' "$1" "$2"; }
FIRST=$(day "$START" "-$HISTORY"); BEFORE=$(day "$START" -1); LAST=$(day "$START" $((DAYS - 1))); TRAIN_DAY=$(day "$START" "$DAYS")
mkdir -p var/airflow
LOG=var/airflow/demo.log
: > "$LOG"

echo "==> simulate $FIRST..$LAST ($CUSTOMERS customers, $TERMINALS terminals)"
python -m jobs.data.simulate --start-date "$FIRST" --days $((HISTORY + DAYS)) --customers "$CUSTOMERS" --terminals "$TERMINALS" \
  --seed 7 --bad-rows-rate 0.01 >> "$LOG" 2>&1
echo "==> backfill the history $FIRST..$BEFORE (ingestion, dbt build, features) in one Spark session"
python -m jobs.data.backfill --from "$FIRST" --to "$BEFORE" 2>>"$LOG" | tee -a "$LOG" || { tail -40 "$LOG"; exit 1; }
echo "==> data_pipeline through Airflow (dag.test) for $START..$LAST; log: $LOG"
python scripts/run_dag_days.py data_pipeline "$START" "$LAST" >> "$LOG" 2>&1 || { tail -40 "$LOG"; exit 1; }
grep -E '^data_pipeline ' "$LOG"
echo "==> train_model through Airflow (dag.test), promotion auto-approved for the demo"
# A 45-day demo history is short: the 30-day windows and the terminal-risk features are still
# warming up, and a model scores AUC ~0.77 on it (bench/quality.py measures 120 days). The demo
# therefore lowers the first-model floors, explicitly and here only; the gate still runs every check.
PIPELINE_AUTO_APPROVE=true PIPELINE_MIN_AUC=${DEMO_MIN_AUC:-0.70} PIPELINE_MIN_AP=${DEMO_MIN_AP:-0.30} python scripts/run_dag_days.py train_model "$TRAIN_DAY" "$TRAIN_DAY" --conf "$TRAIN_CONF" >> "$LOG" 2>&1 \
  || { tail -60 "$LOG"; exit 1; }
grep -E '^train_model ' "$LOG"
python -m jobs.platform.lakehouse --table 2>/dev/null
echo "==> registered model (python -m jobs.release.registry status)"
python -m jobs.release.registry status 2>/dev/null
