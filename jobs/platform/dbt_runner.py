"""Run dbt (dbt-spark, session method) inside the project's Spark session.

``python -m jobs.platform.dbt_runner build`` (any dbt command and flags follow) is the one way to run
the dbt project: it exports the settings dbt's profile reads (the Spark configuration as JSON, the
lakehouse root, the label window, the target and its Thrift host), creates the SparkSession with
:mod:`jobs.platform.spark` so dbt reuses it, and invokes dbt in-process (``dbtRunner``). In Airflow
the same environment goes to cosmos (:func:`dbt_env`), whose producer task runs ``dbt build``
in-process too: one JVM for the whole project.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import sys
from pathlib import Path

from jobs.config import Settings, get_settings
from jobs.platform.logs import setup_logging

log = logging.getLogger(__name__)

PROFILE_NAME = "fraud_pipeline"


def dbt_env(settings: Settings | None = None) -> dict[str, str]:
    """Environment variables dbt_project/profiles.yml and dbt_project.yml read."""
    from jobs.platform.spark import spark_conf

    settings = settings or get_settings()
    dbt = settings.dbt
    return {
        "PIPELINE_DBT_SPARK_CONF": json.dumps(spark_conf(settings)),
        "PIPELINE_LAKEHOUSE_DIR": str(settings.storage.lakehouse_dir),
        "PIPELINE_LABEL_MATURITY_DAYS": str(settings.data.label_maturity_days),
        "DBT_TARGET": dbt.target,
        "DBT_THREADS": str(dbt.threads),
        "DBT_SPARK_HOST": dbt.spark_host,
        "DBT_SPARK_PORT": str(dbt.spark_port),
        "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
        "DBT_LOG_PATH": str(dbt.project_dir / "logs"),
    }


def project_hash(settings: Settings | None = None) -> str:
    """Hash of the dbt project's sources (models, macros, tests, yml): lineage for trained models."""
    settings = settings or get_settings()
    root = settings.dbt.project_dir
    digest = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.is_file() and p.suffix in {".sql", ".yml", ".yaml", ".md"}):
        rel = path.relative_to(root)
        if rel.parts[0] in {"target", "logs", "dbt_packages"}:
            continue
        digest.update(str(rel).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def manifest_hash(settings: Settings | None = None) -> str | None:
    """SHA-256 of the manifest the last dbt invocation wrote (None if there is none)."""
    path = (settings or get_settings()).dbt.manifest_path
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.exists() else None


class DbtFailed(RuntimeError):
    """dbt finished with failures (model errors or failing tests)."""


def run_dbt(args: list[str], settings: Settings | None = None, vars: dict | None = None, spark: bool = True):
    """Invoke dbt with ``args`` in this process; raise DbtFailed unless it succeeds.

    ``spark=False`` skips the session (for ``parse``/``ls``, which do not query).
    Returns the ``dbtRunnerResult``.
    """
    from dbt.cli.main import dbtRunner

    settings = settings or get_settings()
    os.environ.update(dbt_env(settings))
    if spark and settings.dbt.target == "local":
        from jobs.platform.spark import get_spark

        get_spark(settings, app_name="dbt")
    cli = [*args, "--project-dir", str(settings.dbt.project_dir), "--profiles-dir", str(settings.dbt.project_dir)]
    if vars:
        cli += ["--vars", json.dumps(vars)]
    log.info("dbt %s", " ".join(cli))
    result = dbtRunner().invoke(cli)
    if not result.success:
        detail = result.exception or _failures(result)
        raise DbtFailed(f"dbt {' '.join(args)} failed: {detail}")
    return result


def _failures(result) -> str:
    try:
        bad = [r for r in result.result.results if str(r.status) not in ("success", "pass", "skipped")]
        return "; ".join(f"{r.node.unique_id}: {r.status} {r.message or ''}".strip() for r in bad[:10])
    except AttributeError:
        return "see the dbt log above"


def ensure_manifest(settings: Settings | None = None) -> Path:
    """Write ``target/manifest.json`` with ``dbt parse`` when it is missing or older than the project."""
    settings = settings or get_settings()
    stamp = settings.dbt.manifest_path.with_suffix(".project-hash")
    current = project_hash(settings)
    if not settings.dbt.manifest_path.exists() or not stamp.exists() or stamp.read_text() != current:
        run_dbt(["parse", "--quiet"], settings, spark=False)
        stamp.write_text(current)
    return settings.dbt.manifest_path


def main(argv: list[str] | None = None) -> int:
    """``python -m jobs.platform.dbt_runner <dbt command> [dbt flags]``; ``--as-of YYYY-MM-DD`` sets the label date."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in {"-h", "--help"}:
        print(__doc__)
        print(
            "usage: python -m jobs.platform.dbt_runner {build,run,test,parse,docs,source,ls,...} [--as-of YYYY-MM-DD] [dbt flags]"
        )
        return 0
    vars = None
    if "--as-of" in argv:
        i = argv.index("--as-of")
        vars = {"as_of": argv[i + 1]}
        del argv[i : i + 2]
    setup_logging()
    needs_spark = argv[0] not in {"parse", "ls", "list", "deps", "clean", "debug"} and argv[:2] != ["docs", "serve"]
    try:
        run_dbt(argv, vars=vars, spark=needs_spark)
    except DbtFailed as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if argv[0] == "parse":
        stamp = get_settings().dbt.manifest_path.with_suffix(".project-hash")
        stamp.write_text(project_hash())
    return 0


if __name__ == "__main__":
    sys.exit(main())
