"""The one configuration module.

Every setting is read from the environment once (prefix ``PIPELINE_``, plus the conventional
``SPARK_MASTER``, ``RAY_ADDRESS`` and ``MLFLOW_TRACKING_URI``) into a frozen :class:`Settings`
that is passed down. Defaults work on a laptop with no external services; the same code runs on a
cluster by setting the variables. The README's configuration table documents each field.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from functools import lru_cache
from pathlib import Path
from typing import Mapping

REPO_ROOT = Path(__file__).resolve().parent.parent


def _path(value: str) -> Path:
    p = Path(value).expanduser()
    return p if p.is_absolute() else (REPO_ROOT / p).resolve()


def _bool(value: str) -> bool:
    return value.strip().lower() in {"1", "true", "yes", "on"}


@dataclass(frozen=True)
class Settings:
    """Resolved configuration. Build it with :func:`load_settings`."""

    data_dir: Path = field(metadata={"env": "PIPELINE_DATA_DIR", "help": "root of landing/, lakehouse/, mlflow/"})
    spark_master: str = field(metadata={"env": "SPARK_MASTER", "help": "Spark master URL"})
    spark_jars_dir: Path = field(metadata={"env": "PIPELINE_SPARK_JARS_DIR", "help": "Delta jars resolved by `make setup`"})
    spark_shuffle_partitions: int = field(metadata={"env": "PIPELINE_SPARK_SHUFFLE_PARTITIONS", "help": "spark.sql.shuffle.partitions"})
    spark_driver_memory: str = field(metadata={"env": "PIPELINE_SPARK_DRIVER_MEMORY", "help": "spark.driver.memory"})
    spark_java_opts: str = field(metadata={"env": "PIPELINE_SPARK_JAVA_OPTS", "help": "extra JVM options of the Spark driver (tests use C1-only JIT for a faster warm-up)"})
    spark_ui_enabled: bool = field(metadata={"env": "PIPELINE_SPARK_UI", "help": "start the Spark UI"})
    ray_address: str = field(metadata={"env": "RAY_ADDRESS", "help": "Ray cluster address; empty = local Ray"})
    mlflow_tracking_uri: str = field(metadata={"env": "MLFLOW_TRACKING_URI", "help": "MLflow tracking URI; empty = SQLite under data_dir/mlflow"})
    label_maturity_days: int = field(metadata={"env": "PIPELINE_LABEL_MATURITY_DAYS", "help": "days after which an unreported transaction counts as genuine"})
    max_tx_amount: float = field(metadata={"env": "PIPELINE_MAX_TX_AMOUNT", "help": "amounts above this are quarantined as absurd"})
    start_date: date = field(metadata={"env": "PIPELINE_START_DATE", "help": "first logical date of the daily DAGs"})
    catchup: bool = field(metadata={"env": "PIPELINE_CATCHUP", "help": "let the scheduler run every missed day since the start date"})
    sensor_timeout_s: int = field(metadata={"env": "PIPELINE_SENSOR_TIMEOUT_S", "help": "how long the DAG waits for a landing file"})
    sensor_poke_interval_s: int = field(metadata={"env": "PIPELINE_SENSOR_POKE_INTERVAL_S", "help": "how often the sensor looks"})
    spark_pool: str = field(metadata={"env": "PIPELINE_SPARK_POOL", "help": "Airflow pool (1 slot) that serialises Spark tasks"})
    feature_label_delay_days: int = field(metadata={"env": "PIPELINE_FEATURE_LABEL_DELAY_DAYS", "help": "delay D of the terminal risk windows (t-(N+D), t-D]"})
    dbt_target: str = field(metadata={"env": "DBT_TARGET", "help": "dbt target of dbt_project/profiles.yml (`local` = in-process Spark session; `thrift` = a Spark Thrift server)"})
    dbt_threads: int = field(metadata={"env": "DBT_THREADS", "help": "dbt threads (models built concurrently in the one Spark session)"})
    model_name: str = field(metadata={"env": "PIPELINE_MODEL_NAME", "help": "registered model name in MLflow"})
    train_days: int = field(metadata={"env": "PIPELINE_TRAIN_DAYS", "help": "training window (days)"})
    gap_days: int = field(metadata={"env": "PIPELINE_GAP_DAYS", "help": "gap between training and test windows (days; = the label delay)"})
    test_days: int = field(metadata={"env": "PIPELINE_TEST_DAYS", "help": "test window (days); also the length of each validation fold"})
    tune_folds: int = field(metadata={"env": "PIPELINE_TUNE_FOLDS", "help": "prequential validation folds used by tuning"})
    tune_trials: int = field(metadata={"env": "PIPELINE_TUNE_TRIALS", "help": "Ray Tune trials per training"})
    tune_concurrency: int = field(metadata={"env": "PIPELINE_TUNE_CONCURRENCY", "help": "concurrent trials (1 = reproducible best configuration)"})
    ray_num_cpus: int = field(metadata={"env": "PIPELINE_RAY_NUM_CPUS", "help": "CPUs of the local Ray instance (0 = all)"})
    seed: int = field(metadata={"env": "PIPELINE_SEED", "help": "seed of the searcher, LightGBM and the baseline"})
    training_config: Path = field(metadata={"env": "PIPELINE_TRAINING_CONFIG", "help": "search space, ASHA and evaluation settings (YAML)"})
    promotion_margin: float = field(metadata={"env": "PIPELINE_PROMOTION_MARGIN", "help": "average-precision gain a challenger needs over the champion"})
    slice_margin: float = field(metadata={"env": "PIPELINE_SLICE_MARGIN", "help": "AUC drop that flags a slice (vs overall) or a slice regression (vs champion)"})
    min_auc: float = field(metadata={"env": "PIPELINE_MIN_AUC", "help": "absolute AUC a first model needs to be promoted"})
    min_ap: float = field(metadata={"env": "PIPELINE_MIN_AP", "help": "absolute average precision a first model needs"})
    auto_approve: bool = field(metadata={"env": "PIPELINE_AUTO_APPROVE", "help": "skip the human approval of a promotion (demo and tests only)"})
    model_owner: str = field(metadata={"env": "PIPELINE_MODEL_OWNER", "help": "owner named on the model card"})

    # Derived locations: one place that knows the layout of the data directory.
    @property
    def landing_dir(self) -> Path:
        return self.data_dir / "landing"

    @property
    def lakehouse_dir(self) -> Path:
        return self.data_dir / "lakehouse"

    @property
    def warehouse_dir(self) -> Path:
        return self.lakehouse_dir / "warehouse"

    @property
    def metastore_dir(self) -> Path:
        return self.lakehouse_dir / "metastore_db"

    @property
    def start_datetime(self) -> datetime:
        return datetime(self.start_date.year, self.start_date.month, self.start_date.day, tzinfo=timezone.utc)

    @property
    def mlflow_dir(self) -> Path:
        return self.data_dir / "mlflow"

    @property
    def resolved_mlflow_tracking_uri(self) -> str:
        return self.mlflow_tracking_uri or f"sqlite:///{self.mlflow_dir / 'mlflow.db'}"

    def table_uri(self, table: str) -> str:
        """URI of a lakehouse table as an Airflow Asset (``schema.name`` -> file://.../schema/name)."""
        schema, name = table.split(".")
        return f"file://{self.lakehouse_dir}/{schema}/{name}"

    @property
    def training_dir(self) -> Path:
        """Training sets, tuning results and reports, one folder per training run."""
        return self.data_dir / "training"

    @property
    def ray_dir(self) -> Path:
        return self.data_dir / "ray"

    @property
    def dbt_project_dir(self) -> Path:
        return REPO_ROOT / "dbt_project"

    @property
    def dbt_manifest_path(self) -> Path:
        """The manifest the Airflow DAG renders its dbt tasks from (written by every dbt invocation)."""
        return self.dbt_project_dir / "target" / "manifest.json"

    def landing_file(self, source: str, day: date) -> Path | None:
        """The landing file of ``source`` for ``day`` (CSV preferred, JSON lines accepted), or None."""
        for suffix in (".csv", ".jsonl", ".json"):
            candidate = self.landing_dir / source / f"{day.isoformat()}{suffix}"
            if candidate.exists():
                return candidate
        return None


DEFAULTS: dict[str, str] = {
    "PIPELINE_DATA_DIR": "data",
    "SPARK_MASTER": "local[*]",
    "PIPELINE_SPARK_JARS_DIR": ".cache/spark-jars",
    "PIPELINE_SPARK_SHUFFLE_PARTITIONS": "4",
    "PIPELINE_SPARK_DRIVER_MEMORY": "4g",
    "PIPELINE_SPARK_JAVA_OPTS": "",
    "PIPELINE_SPARK_UI": "false",
    "RAY_ADDRESS": "",
    "MLFLOW_TRACKING_URI": "",
    "PIPELINE_LABEL_MATURITY_DAYS": "7",
    "PIPELINE_MAX_TX_AMOUNT": "50000",
    "PIPELINE_START_DATE": "2026-01-01",
    "PIPELINE_CATCHUP": "false",
    "PIPELINE_SENSOR_TIMEOUT_S": "21600",
    "PIPELINE_SENSOR_POKE_INTERVAL_S": "300",
    "PIPELINE_SPARK_POOL": "spark",
    "PIPELINE_FEATURE_LABEL_DELAY_DAYS": "7",
    "DBT_TARGET": "local",
    "DBT_THREADS": "1",
    "PIPELINE_MODEL_NAME": "fraud_detector",
    "PIPELINE_TRAIN_DAYS": "21",
    "PIPELINE_GAP_DAYS": "7",
    "PIPELINE_TEST_DAYS": "7",
    "PIPELINE_TUNE_FOLDS": "3",
    "PIPELINE_TUNE_TRIALS": "20",
    "PIPELINE_TUNE_CONCURRENCY": "1",
    "PIPELINE_RAY_NUM_CPUS": "0",
    "PIPELINE_SEED": "42",
    "PIPELINE_TRAINING_CONFIG": "jobs/conf/training.yaml",
    "PIPELINE_PROMOTION_MARGIN": "0.005",
    "PIPELINE_SLICE_MARGIN": "0.05",
    "PIPELINE_MIN_AUC": "0.85",
    "PIPELINE_MIN_AP": "0.5",
    "PIPELINE_AUTO_APPROVE": "false",
    "PIPELINE_MODEL_OWNER": "fraud-ml team",
}

_PARSERS = {Path: _path, int: int, float: float, bool: _bool, str: str, date: date.fromisoformat}


def load_settings(env: Mapping[str, str] | None = None) -> Settings:
    """Read the settings from ``env`` (default: ``os.environ``), falling back to :data:`DEFAULTS`."""
    env = os.environ if env is None else env
    values = {}
    for f in dataclasses.fields(Settings):
        name = f.metadata["env"]
        raw = env.get(name, DEFAULTS[name])
        ftype = {"Path": Path, "int": int, "float": float, "bool": bool, "str": str, "date": date}[str(f.type)]
        try:
            values[f.name] = _PARSERS[ftype](raw)
        except ValueError as exc:
            raise ValueError(f"invalid value for {name}={raw!r}: {exc}") from None
    return Settings(**values)


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """Process-wide settings, read once from the environment."""
    return load_settings()


def settings_table() -> str:
    """The configuration table of the README, in Markdown."""
    rows = ["| variable | default | what it sets |", "|---|---|---|"]
    for f in dataclasses.fields(Settings):
        name = f.metadata["env"]
        rows.append(f"| `{name}` | `{DEFAULTS[name] or '(empty)'}` | {f.metadata['help']} |")
    return "\n".join(rows)
