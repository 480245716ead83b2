"""The one configuration module.

Every setting is read from the environment once (prefix ``PIPELINE_``, plus the conventional
``SPARK_MASTER``, ``RAY_ADDRESS``, ``MLFLOW_TRACKING_URI`` and ``DBT_*``) into a frozen
:class:`Settings` that is passed down. The settings are grouped by concern into small objects, as
astronomer-cosmos splits its configuration (``settings.spark.master``, ``settings.training.gap_days``,
``settings.gate.min_auc``, ...); each group checks its own fields, and :class:`Settings` checks the
rules that span groups, with an error that names every variable involved. Defaults work on a laptop
with no external services; the same code runs on a cluster by setting the variables. The README's
configuration table is generated from the declarations below (:func:`settings_table`).
"""

from __future__ import annotations

import dataclasses
import os
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from functools import lru_cache
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
CONF_DIR = Path(__file__).resolve().parent / "conf"


class ConfigError(ValueError):
    """A setting (or a combination of settings) is invalid; the message names the variables."""


def setting(env: str, default: str, help: str, minimum: float | None = None, maximum: float | None = None):
    """Declare one setting: its environment variable, default (as the string a user would write) and help."""
    return field(metadata={"env": env, "default": default, "help": help, "minimum": minimum, "maximum": maximum})


def _path(value: str) -> Path:
    p = Path(value).expanduser()
    return p if p.is_absolute() else (REPO_ROOT / p).resolve()


def _bool(value: str) -> bool:
    v = value.strip().lower()
    if v in {"1", "true", "yes", "on"}:
        return True
    if v in {"0", "false", "no", "off", ""}:
        return False
    raise ValueError("expected true/false")


_PARSERS = {Path: _path, int: int, float: float, bool: _bool, str: str, date: date.fromisoformat}


@dataclass(frozen=True)
class StorageSettings:
    """Where data lives: landing files, the lakehouse, MLflow's embedded store, training runs."""

    data_dir: Path = setting("PIPELINE_DATA_DIR", "data", "root of landing/, lakehouse/, mlflow/, training/")
    prediction_log_override: str = setting(
        "PIPELINE_PREDICTION_LOG_DIR",
        "",
        "where the scoring service writes its prediction log (a volume shared with Airflow); "
        "empty = data_dir/serving/prediction_log",
    )

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
    def mlflow_dir(self) -> Path:
        return self.data_dir / "mlflow"

    @property
    def training_dir(self) -> Path:
        """Training sets, tuning results and reports, one folder per training run."""
        return self.data_dir / "training"

    @property
    def ray_dir(self) -> Path:
        return self.data_dir / "ray"

    @property
    def serving_dir(self) -> Path:
        """The service's files: the embedded online store and the prediction log."""
        return self.data_dir / "serving"

    @property
    def prediction_log_dir(self) -> Path:
        """The service's prediction log (``PIPELINE_PREDICTION_LOG_DIR`` moves it, e.g. to a shared volume)."""
        return (
            _path(self.prediction_log_override) if self.prediction_log_override else self.serving_dir / "prediction_log"
        )

    @property
    def bentoml_home(self) -> Path:
        """BentoML's store of built Bentos (``deploy_model`` builds one per version), kept under the data dir."""
        return self.data_dir / "bentoml"

    def landing_file(self, source: str, day: date) -> Path | None:
        """The landing file of ``source`` for ``day`` (CSV preferred, JSON lines accepted), or None."""
        for suffix in (".csv", ".jsonl", ".json"):
            candidate = self.landing_dir / source / f"{day.isoformat()}{suffix}"
            if candidate.exists():
                return candidate
        return None

    def table_uri(self, table: str) -> str:
        """URI of a lakehouse table as an Airflow Asset (``schema.name`` -> file://.../schema/name)."""
        schema, name = table.split(".")
        return f"file://{self.lakehouse_dir}/{schema}/{name}"


@dataclass(frozen=True)
class SparkSettings:
    """How the Spark session is built (:mod:`jobs.platform.spark`)."""

    master: str = setting("SPARK_MASTER", "local[*]", "Spark master URL")
    jars_dir: Path = setting("PIPELINE_SPARK_JARS_DIR", ".cache/spark-jars", "Delta jars resolved by `make setup`")
    shuffle_partitions: int = setting(
        "PIPELINE_SPARK_SHUFFLE_PARTITIONS", "4", "spark.sql.shuffle.partitions", minimum=1
    )
    driver_memory: str = setting("PIPELINE_SPARK_DRIVER_MEMORY", "4g", "spark.driver.memory")
    java_opts: str = setting(
        "PIPELINE_SPARK_JAVA_OPTS",
        "",
        "extra JVM options of the Spark driver (tests use C1-only JIT for a faster warm-up)",
    )
    ui_enabled: bool = setting("PIPELINE_SPARK_UI", "false", "start the Spark UI")
    extra_conf: str = setting(
        "PIPELINE_SPARK_CONF",
        "",
        "extra Spark properties, space-separated `key=value` (tests: interpreted expressions, "
        "`spark.sql.codegen.factoryMode=NO_CODEGEN`, cheaper on tiny data)",
    )

    def __post_init__(self) -> None:
        self.properties  # noqa: B018 -- a malformed pair fails at start-up, naming the variable

    @property
    def properties(self) -> dict[str, str]:
        """``PIPELINE_SPARK_CONF`` as a dict (applied after, so over, the project's own properties)."""
        out = {}
        for pair in self.extra_conf.split():
            key, sep, value = pair.partition("=")
            if not sep or not key.startswith("spark.") or not value:
                raise ConfigError(f"PIPELINE_SPARK_CONF: {pair!r} is not a spark.<property>=<value> pair")
            out[key] = value
        return out


@dataclass(frozen=True)
class DataSettings:
    """The landing contract: what ingestion accepts and when a label is final."""

    label_maturity_days: int = setting(
        "PIPELINE_LABEL_MATURITY_DAYS", "7", "days after which an unreported transaction counts as genuine", minimum=1
    )
    max_tx_amount: float = setting(
        "PIPELINE_MAX_TX_AMOUNT", "50000", "amounts above this are quarantined as absurd", minimum=0
    )
    validation_workers: int = setting(
        "PIPELINE_VALIDATION_WORKERS",
        "0",
        "processes validating a large landing file side by side (0 = one per core; 1 = in the ingesting process)",
        minimum=0,
    )


@dataclass(frozen=True)
class FeatureSettings:
    """The feature job (:mod:`jobs.features.build`)."""

    label_delay_days: int = setting(
        "PIPELINE_FEATURE_LABEL_DELAY_DAYS", "7", "delay D of the terminal risk windows (t-(N+D), t-D]", minimum=0
    )


@dataclass(frozen=True)
class DbtSettings:
    """The dbt project and the variables its profile reads (:mod:`jobs.platform.dbt_runner` exports them)."""

    target: str = setting(
        "DBT_TARGET",
        "local",
        "dbt target of dbt_project/profiles.yml (`local` = in-process Spark session; `thrift` = a Spark Thrift server)",
    )
    threads: int = setting(
        "DBT_THREADS",
        "4",
        "dbt threads: models and tests run concurrently in the one Spark session (small queries wait on "
        "latency more than on CPU: 4 threads halve a test-sized build on 2 cores, a 530k-row one gains 12%)",
        minimum=1,
    )
    spark_host: str = setting("DBT_SPARK_HOST", "localhost", "Spark Thrift server host (target `thrift`)")
    spark_port: int = setting(
        "DBT_SPARK_PORT", "10000", "Spark Thrift server port (target `thrift`)", minimum=1, maximum=65535
    )

    def __post_init__(self) -> None:
        if self.target not in ("local", "thrift"):
            raise ConfigError(
                f"DBT_TARGET={self.target!r}: expected `local` or `thrift` (the targets of dbt_project/profiles.yml)"
            )

    @property
    def project_dir(self) -> Path:
        return REPO_ROOT / "dbt_project"

    @property
    def manifest_path(self) -> Path:
        """The manifest the Airflow DAG renders its dbt tasks from (written by every dbt invocation)."""
        return self.project_dir / "target" / "manifest.json"


@dataclass(frozen=True)
class AirflowSettings:
    """Scheduling of the DAGs: start date, catch-up, the landing-file sensor, the Spark pool."""

    start_date: date = setting("PIPELINE_START_DATE", "2026-01-01", "first logical date of the daily DAGs")
    catchup: bool = setting("PIPELINE_CATCHUP", "false", "let the scheduler run every missed day since the start date")
    sensor_timeout_s: int = setting(
        "PIPELINE_SENSOR_TIMEOUT_S", "21600", "how long the DAG waits for a landing file", minimum=1
    )
    sensor_poke_interval_s: int = setting(
        "PIPELINE_SENSOR_POKE_INTERVAL_S", "300", "how often the sensor looks", minimum=1
    )
    spark_pool: str = setting("PIPELINE_SPARK_POOL", "spark", "Airflow pool (1 slot) that serialises Spark tasks")

    def __post_init__(self) -> None:
        if self.sensor_poke_interval_s > self.sensor_timeout_s:
            raise ConfigError(
                f"PIPELINE_SENSOR_POKE_INTERVAL_S={self.sensor_poke_interval_s} is longer than "
                f"PIPELINE_SENSOR_TIMEOUT_S={self.sensor_timeout_s}: the sensor would time out before looking twice"
            )

    @property
    def start_datetime(self) -> datetime:
        return datetime(self.start_date.year, self.start_date.month, self.start_date.day, tzinfo=UTC)


@dataclass(frozen=True)
class RaySettings:
    """Where Ray Tune runs its trials."""

    address: str = setting("RAY_ADDRESS", "", "Ray cluster address; empty = local Ray")
    num_cpus: int = setting("PIPELINE_RAY_NUM_CPUS", "0", "CPUs of the local Ray instance (0 = all)", minimum=0)


@dataclass(frozen=True)
class MlflowSettings:
    """Tracking and registry: the store and the registered model."""

    tracking_uri: str = setting("MLFLOW_TRACKING_URI", "", "MLflow tracking URI; empty = SQLite under data_dir/mlflow")
    model_name: str = setting("PIPELINE_MODEL_NAME", "fraud_detector", "registered model name in MLflow")
    model_owner: str = setting("PIPELINE_MODEL_OWNER", "fraud-ml team", "owner named on the model card")
    ui_url: str = setting(
        "PIPELINE_MLFLOW_UI_URL",
        "http://localhost:5000",
        "the MLflow UI the approval request and the Models page link to (`make mlflow-ui`)",
    )


@dataclass(frozen=True)
class TrainingSettings:
    """Training windows, tuning budget and the YAML a data scientist edits (search space, evaluation)."""

    train_days: int = setting("PIPELINE_TRAIN_DAYS", "21", "training window (days)", minimum=1)
    gap_days: int = setting(
        "PIPELINE_GAP_DAYS", "7", "gap between training and test windows (days; at least the label maturity)", minimum=0
    )
    test_days: int = setting(
        "PIPELINE_TEST_DAYS", "7", "test window (days); also the length of each validation fold", minimum=1
    )
    tune_folds: int = setting("PIPELINE_TUNE_FOLDS", "3", "prequential validation folds used by tuning", minimum=1)
    tune_trials: int = setting("PIPELINE_TUNE_TRIALS", "20", "Ray Tune trials per training", minimum=1)
    tune_concurrency: int = setting(
        "PIPELINE_TUNE_CONCURRENCY", "1", "concurrent trials (1 = reproducible best configuration)", minimum=1
    )
    seed: int = setting("PIPELINE_SEED", "42", "seed of the searcher, LightGBM and the baseline")
    config_path: Path = setting(
        "PIPELINE_TRAINING_CONFIG", "jobs/conf/training.yaml", "search space, ASHA and evaluation settings (YAML)"
    )


@dataclass(frozen=True)
class GateSettings:
    """The promotion gate's margins and floors, and whether a person must approve."""

    promotion_margin: float = setting(
        "PIPELINE_PROMOTION_MARGIN", "0.005", "average-precision gain a challenger needs over the champion"
    )
    slice_margin: float = setting(
        "PIPELINE_SLICE_MARGIN",
        "0.05",
        "AUC drop that flags a slice (vs overall) or a slice regression (vs champion)",
        minimum=0,
    )
    baseline_cp_margin: float = setting(
        "PIPELINE_BASELINE_CP_MARGIN",
        "0.0",
        "Card Precision@k the model needs above the logistic baseline's (it must exceed it by more than this)",
    )
    min_net_savings: float = setting(
        "PIPELINE_MIN_NET_SAVINGS",
        "0.0",
        "net savings of the cost view (fraud caught minus review cost, test window) a model needs at least",
    )
    min_auc: float = setting(
        "PIPELINE_MIN_AUC", "0.85", "absolute AUC a first model needs to be promoted", minimum=0, maximum=1
    )
    min_ap: float = setting(
        "PIPELINE_MIN_AP", "0.5", "absolute average precision a first model needs", minimum=0, maximum=1
    )
    max_fpr_gap: float = setting(
        "PIPELINE_MAX_FPR_GAP",
        "0.015",
        "largest false-positive-rate gap (max minus min, at the alert threshold) allowed between customer segments, "
        "and between regions",
        minimum=0,
        maximum=1,
    )
    max_alert_rate_gap: float = setting(
        "PIPELINE_MAX_ALERT_RATE_GAP",
        "1",
        "largest alert-rate gap allowed between customer segments, and between regions (1 = reported, not held: "
        "alert rates follow where the fraud is)",
        minimum=0,
        maximum=1,
    )
    auto_approve: bool = setting(
        "PIPELINE_AUTO_APPROVE", "false", "skip the human approval of a promotion (demo and tests only)"
    )
    approvers: str = setting(
        "PIPELINE_APPROVERS",
        "model_owner",
        "Airflow users who may answer a promotion approval, comma-separated (the approval task's assigned users)",
    )


@dataclass(frozen=True)
class ServingSettings:
    """The scoring service (``serving/``), its online feature store and batch scoring."""

    online_store_url: str = setting(
        "PIPELINE_ONLINE_STORE_URL",
        "",
        "online feature store: empty = SQLite file under data_dir/serving; redis://host:port/db = Redis",
    )
    host: str = setting("PIPELINE_SERVING_HOST", "127.0.0.1", "address the service listens on")
    port: int = setting("PIPELINE_SERVING_PORT", "3000", "port of the service", minimum=1, maximum=65535)
    workers: int = setting(
        "PIPELINE_SERVING_WORKERS",
        "2",
        "service worker processes (each loads the model and batches on its own)",
        minimum=1,
    )
    max_batch_size: int = setting(
        "PIPELINE_SERVING_MAX_BATCH", "1000", "adaptive batching: most transactions scored in one call", minimum=1
    )
    access_log: bool = setting("PIPELINE_SERVING_ACCESS_LOG", "false", "log every HTTP request (BentoML access log)")
    max_latency_ms: int = setting(
        "PIPELINE_SERVING_MAX_LATENCY_MS",
        "1000",
        "adaptive batching: a batch waits at most this long before BentoML sheds it (503); keep it generous",
        minimum=1,
    )
    max_request_items: int = setting(
        "PIPELINE_SERVING_MAX_ITEMS", "1000", "most transactions in one /score request", minimum=1
    )
    max_body_bytes: int = setting(
        "PIPELINE_SERVING_MAX_BODY_BYTES", "1048576", "largest /score request body (413 above)", minimum=1024
    )
    reload_s: float = setting(
        "PIPELINE_SERVING_RELOAD_S",
        "10",
        "the service reads the registry (champion, candidate, rollout) this often and swaps models without a restart; "
        "0 = never",
        minimum=0,
    )
    pinned_version: str = setting(
        "PIPELINE_SERVING_VERSION",
        "",
        "serve this model version only, ignoring aliases and rollouts (deploy_model's smoke test); empty = the registry",
    )
    record: bool = setting(
        "PIPELINE_SERVING_RECORD",
        "true",
        "record scored transactions in the online store (false: read-only, for a smoke-test instance)",
    )
    log_rotate_s: int = setting(
        "PIPELINE_PREDICTION_LOG_ROTATE_S",
        "300",
        "a worker closes its prediction-log file and starts a new one this often (closed files are loaded)",
        minimum=1,
    )

    @property
    def backend(self) -> str:
        return "redis" if self.online_store_url.startswith(("redis://", "rediss://", "unix://")) else "sqlite"


@dataclass(frozen=True)
class DeploySettings:
    """``deploy_model``: smoke test, shadow, phased canary and the comparisons that decide each step."""

    strategy: str = setting(
        "PIPELINE_DEPLOY_STRATEGY",
        "progressive",
        "default rollout: progressive (shadow, then canary phases), canary, shadow, or direct (smoke test, switch)",
    )
    observe_s: int = setting(
        "PIPELINE_DEPLOY_OBSERVE_S", "300", "observation window of the shadow and of each canary phase", minimum=1
    )
    canary_shares: str = setting(
        "PIPELINE_DEPLOY_CANARY_SHARES",
        "0.05,0.25,1.0",
        "canary phases: shares of cards answered by the candidate, in order (hash of customer_id)",
    )
    min_requests: int = setting(
        "PIPELINE_DEPLOY_MIN_REQUESTS",
        "200",
        "transactions the candidate must score in a window to be judged (fewer: no evidence, rolled back)",
        minimum=1,
    )
    min_rank_correlation: float = setting(
        "PIPELINE_DEPLOY_MIN_RANK_CORRELATION",
        "0.5",
        "shadow: Spearman correlation of candidate and champion scores on the same transactions, at least",
        minimum=-1,
        maximum=1,
    )
    min_alert_agreement: float = setting(
        "PIPELINE_DEPLOY_MIN_ALERT_AGREEMENT",
        "0.95",
        "shadow: share of transactions on which candidate and champion take the same alert decision, at least",
        minimum=0,
        maximum=1,
    )
    max_score_ks: float = setting(
        "PIPELINE_DEPLOY_MAX_SCORE_KS",
        "0.75",
        "largest Kolmogorov-Smirnov distance between candidate and champion scores (canary: only when significant); "
        "loose on purpose: retrains differ in calibration (KS about 0.5 between near-identical models, measured), "
        "and alerts are compared on each version's own threshold",
        minimum=0,
        maximum=1,
    )
    max_alert_rate_ratio: float = setting(
        "PIPELINE_DEPLOY_MAX_ALERT_RATE_RATIO",
        "3.0",
        "candidate alert rate over champion's (or its inverse) at most this, when the difference is significant",
        minimum=1,
    )
    max_error_rate: float = setting(
        "PIPELINE_DEPLOY_MAX_ERROR_RATE",
        "0.001",
        "share of the candidate's transactions it failed to score (answered by the champion instead), at most",
        minimum=0,
        maximum=1,
    )
    max_p99_ms: float = setting(
        "PIPELINE_DEPLOY_MAX_P99_MS", "250", "p99 scoring time of the candidate's requests (ms), at most", minimum=1
    )
    smoke_p99_ms: float = setting(
        "PIPELINE_DEPLOY_SMOKE_P99_MS",
        "500",
        "smoke test: p99 latency of single-transaction requests to the new Bento, at most (ms)",
        minimum=1,
    )
    smoke_timeout_s: int = setting(
        "PIPELINE_DEPLOY_SMOKE_TIMEOUT_S", "180", "smoke test: the new Bento must be ready within this", minimum=5
    )

    def __post_init__(self) -> None:
        if self.strategy not in STRATEGIES:
            raise ConfigError(f"PIPELINE_DEPLOY_STRATEGY={self.strategy!r}: expected one of {', '.join(STRATEGIES)}")
        try:
            parse_shares(self.canary_shares)
        except ValueError as exc:
            raise ConfigError(f"PIPELINE_DEPLOY_CANARY_SHARES: {exc}") from None

    @property
    def shares(self) -> list[float]:
        """The canary phases' shares, parsed; each in (0, 1], increasing, the last 1.0."""
        return parse_shares(self.canary_shares)


@dataclass(frozen=True)
class MonitoringSettings:
    """Monitoring (``jobs.monitoring``, DAG ``monitor_model``): thresholds file and where alerts go."""

    config_path: Path = setting(
        "PIPELINE_MONITORING_CONFIG", "jobs/conf/monitoring.yaml", "monitoring thresholds, each documented (YAML)"
    )
    alert_email: str = setting(
        "PIPELINE_ALERT_EMAIL",
        "",
        "alert recipients, comma-separated, mailed through Airflow's SMTP connection `smtp_default`; "
        "empty: alerts are only rows of monitoring.alerts",
    )


def parse_shares(text: str) -> list[float]:
    """``"0.05,0.25,1.0"`` -> [0.05, 0.25, 1.0]; refuses shares outside (0, 1], not increasing, or not ending at 1."""
    try:
        shares = [float(x) for x in str(text).replace(" ", "").split(",") if x]
    except ValueError:
        raise ValueError(f"canary shares {text!r}: expected numbers separated by commas") from None
    if not shares or any(not 0 < x <= 1 for x in shares) or shares != sorted(set(shares)) or shares[-1] != 1.0:
        raise ValueError(f"canary shares {text!r}: each in (0, 1], increasing, the last 1.0 (all traffic)")
    return shares


@dataclass(frozen=True)
class MaintenanceSettings:
    """Delta maintenance (the weekly ``maintain_lakehouse`` DAG): compaction and vacuum retention."""

    vacuum_retention_hours: float = setting(
        "PIPELINE_VACUUM_RETENTION_HOURS",
        "168",
        "VACUUM keeps removed files this long (hours) at least; longer where a registered model pins an older version",
        minimum=0,
    )
    vacuum_safety_margin_s: float = setting(
        "PIPELINE_VACUUM_SAFETY_MARGIN_S",
        "600",
        "extra retention (seconds) on top of a pinned version's age, for clock skew and the time until VACUUM starts",
        minimum=0,
    )
    optimize: bool = setting("PIPELINE_OPTIMIZE", "true", "compact small files (OPTIMIZE) before vacuuming")
    vacuum_full: bool = setting(
        "PIPELINE_VACUUM_FULL",
        "false",
        "VACUUM FULL: also delete files no commit references (orphans of failed writes); lists every directory, "
        "slower (LITE reads the Delta log only)",
    )


STRATEGIES = ("progressive", "canary", "shadow", "direct")


@dataclass(frozen=True)
class Settings:
    """Resolved configuration, one small object per concern. Build it with :func:`load_settings`."""

    storage: StorageSettings
    spark: SparkSettings
    data: DataSettings
    features: FeatureSettings
    dbt: DbtSettings
    airflow: AirflowSettings
    ray: RaySettings
    mlflow: MlflowSettings
    training: TrainingSettings
    gate: GateSettings
    serving: ServingSettings
    deploy: DeploySettings
    monitoring: MonitoringSettings
    maintenance: MaintenanceSettings

    def __post_init__(self) -> None:
        if self.training.gap_days < self.data.label_maturity_days:
            raise ConfigError(
                f"PIPELINE_GAP_DAYS={self.training.gap_days} is shorter than PIPELINE_LABEL_MATURITY_DAYS="
                f"{self.data.label_maturity_days}: the last training days would keep their reported frauds and lose "
                "their unreported rows (a biased training set); raise the gap or lower the maturity"
            )

    @property
    def mlflow_tracking_uri(self) -> str:
        """The tracking (and registry) URI: the configured one, or SQLite under the data directory."""
        return self.mlflow.tracking_uri or f"sqlite:///{self.storage.mlflow_dir / 'mlflow.db'}"

    def override(self, **groups: Mapping[str, Any]) -> Settings:
        """A copy with some fields replaced, e.g. ``s.override(data={"label_maturity_days": 2})``; rules re-checked."""
        changes = {name: dataclasses.replace(getattr(self, name), **values) for name, values in groups.items()}
        return dataclasses.replace(self, **changes)


GROUPS: dict[str, type] = typing.get_type_hints(Settings)  # group name -> its settings class


def _declared():
    """(group name, group class, field, resolved type) for every setting, in declaration order."""
    for group, cls in GROUPS.items():
        hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            yield group, cls, f, hints[f.name]


DEFAULTS: dict[str, str] = {f.metadata["env"]: f.metadata["default"] for _, _, f, _ in _declared()}


def load_settings(env: Mapping[str, str] | None = None) -> Settings:
    """Read the settings from ``env`` (default: ``os.environ``), falling back to :data:`DEFAULTS`."""
    env = os.environ if env is None else env
    values: dict[str, dict[str, Any]] = {group: {} for group in GROUPS}
    for group, _, f, ftype in _declared():
        name, meta = f.metadata["env"], f.metadata
        raw = env.get(name, meta["default"])
        try:
            value = _PARSERS[ftype](raw)
        except ValueError as exc:
            raise ConfigError(f"invalid value for {name}={raw!r}: {exc}") from None
        if meta["minimum"] is not None and value < meta["minimum"]:
            raise ConfigError(f"invalid value for {name}={raw!r}: must be at least {meta['minimum']:g}")
        if meta["maximum"] is not None and value > meta["maximum"]:
            raise ConfigError(f"invalid value for {name}={raw!r}: must be at most {meta['maximum']:g}")
        values[group][f.name] = value
    return Settings(**{group: GROUPS[group](**fields) for group, fields in values.items()})


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """Process-wide settings, read once from the environment."""
    return load_settings()


def load_training_config(settings: Settings) -> dict:
    """The YAML a data scientist edits between experiments (search space, ASHA, evaluation)."""
    import yaml

    return yaml.safe_load(Path(settings.training.config_path).read_text())


def load_monitoring_config(settings: Settings) -> dict:
    """The monitoring thresholds (``jobs/conf/monitoring.yaml``)."""
    import yaml

    return yaml.safe_load(Path(settings.monitoring.config_path).read_text())


def settings_table() -> str:
    """The configuration table of the README, in Markdown, one row per variable, grouped."""
    rows = ["| variable | default | what it sets |", "|---|---|---|"]
    current = None
    for group, cls, f, _ in _declared():
        if group != current:
            current = group
            rows.append(f"| **`settings.{group}`** | | {(cls.__doc__ or '').strip()} |")
        meta = f.metadata
        rows.append(f"| `{meta['env']}` | `{meta['default'] or '(empty)'}` | {meta['help']} |")
    return "\n".join(rows)
