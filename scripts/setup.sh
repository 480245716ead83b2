#!/usr/bin/env bash
# One-time, idempotent set-up: uv, the locked Python environment, Delta jars, Airflow metadata DB,
# secrets and the Spark pool. Safe to run again; each step is skipped when already done.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"
UV_VERSION=0.13.9
say() { printf '\033[1m==> %s\033[0m\n' "$*"; }

# 1. uv (pinned), in a private tools venv unless a uv is already on PATH
if command -v uv >/dev/null 2>&1; then UV=uv; else
  if [ ! -x .tools/bin/uv ]; then
    say "installing uv $UV_VERSION into .tools/"
    python3 -m venv .tools
    .tools/bin/pip install -q "uv==$UV_VERSION"
  fi
  UV="$ROOT/.tools/bin/uv"
fi

# 2. the locked environment (.venv) from uv.lock, compiled to bytecode once: with
#    PYTHONDONTWRITEBYTECODE set (as on CI machines) every process would otherwise recompile
#    Airflow, Great Expectations, pandas and scipy from source (importing GE: 16 s instead of 6 s)
say "syncing .venv from uv.lock"
"$UV" sync --frozen --python 3.11 -q --compile-bytecode

# 3. Delta Lake jars for Spark, resolved once by Maven into .cache/spark-jars (again when the
#    versions in build/pom.xml change: stale jars are removed, never loaded beside new ones)
command -v java >/dev/null || { echo "error: Java 17 is required (Spark runs on it)" >&2; exit 1; }
prop() { sed -n "s:.*<$1>\(.*\)</$1>.*:\1:p" build/pom.xml | head -1; }
DELTA_JAR=".cache/spark-jars/delta-spark_$(prop spark.minor)_$(prop scala.binary)-$(prop delta.version).jar"
if [ ! -f "$DELTA_JAR" ]; then
  say "resolving Delta jars with Maven into .cache/spark-jars"
  command -v mvn >/dev/null || { echo "error: Maven (mvn) is required to fetch the Delta jars" >&2; exit 1; }
  rm -rf .cache/spark-jars
  mvn -q -B -f build/pom.xml package
  [ -f "$DELTA_JAR" ] || { echo "error: Maven did not produce $DELTA_JAR" >&2; exit 1; }
fi

# 4. Airflow: secrets, users' passwords, metadata DB, Spark pool
. scripts/env.sh
mkdir -p var/airflow/logs
if [ ! -f var/airflow/secrets.env ]; then
  say "generating Airflow secrets into var/airflow/secrets.env"
  umask 077
  python3 - > var/airflow/secrets.env <<'PY'
import secrets
print(f"AIRFLOW__API_AUTH__JWT_SECRET={secrets.token_urlsafe(64)}")
print(f"AIRFLOW__API__SECRET_KEY={secrets.token_urlsafe(32)}")
PY
  umask 022
  set -a; . var/airflow/secrets.env; set +a
fi
python3 scripts/airflow_users.py ensure  # a generated password for every user of airflow.cfg (var/airflow/)
say "migrating the Airflow metadata DB"
airflow db migrate >var/airflow/db-migrate.log 2>&1 || { tail -20 var/airflow/db-migrate.log; exit 1; }
airflow pools set "${PIPELINE_SPARK_POOL:-spark}" 1 "Spark work: one JVM at a time with the embedded Derby metastore" >/dev/null
# 5. dbt: the manifest the data_pipeline DAG renders its per-model tasks from (re-parsed when the project changes)
python -c "from jobs.platform.dbt_runner import ensure_manifest; ensure_manifest()" >var/airflow/dbt-parse.log 2>&1 \
  || { tail -20 var/airflow/dbt-parse.log; exit 1; }
say "set-up complete"
