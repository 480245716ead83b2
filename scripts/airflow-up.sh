#!/usr/bin/env bash
# Start the Airflow components (api-server, scheduler, dag-processor, triggerer) in the background.
# PIDs and output go to var/airflow/; `make down` stops them.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
RUN="$ROOT/var/airflow/run"
mkdir -p "$RUN"
for component in api-server scheduler dag-processor triggerer; do
  pidfile="$RUN/$component.pid"
  if [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then
    echo "$component already running (pid $(cat "$pidfile"))"; continue
  fi
  # --skip-serve-logs: no log server on 0.0.0.0:8793/8794; on one machine the api-server reads the
  # task logs from var/airflow/logs itself (docker/ runs the log servers, on its private network)
  flags=""; case $component in scheduler|triggerer) flags="--skip-serve-logs" ;; esac
  nohup airflow "$component" $flags >"$RUN/$component.out" 2>&1 &
  echo $! >"$pidfile"
  echo "started $component (pid $!, log var/airflow/run/$component.out)"
done
healthy=no
for _ in $(seq 1 60); do
  if curl -sf http://localhost:8080/api/v2/monitor/health >/dev/null 2>&1; then healthy=yes; break; fi
  sleep 2
done
if [ "$healthy" = no ]; then
  echo "warning: the api-server is not answering on :8080 after 2 minutes; see var/airflow/run/api-server.out" >&2
fi
echo
echo "Airflow UI: http://localhost:8080 (listening on 127.0.0.1 only). Who is who:"
python3 "$ROOT/scripts/airflow_users.py" show | sed 's/^/  /'
echo "New DAGs start paused: unpause data_pipeline and train_model in the UI, or: airflow dags unpause data_pipeline"
