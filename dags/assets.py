"""The Airflow Assets that connect the DAGs by data: each defined once, imported by producer and consumer.

A typo can then never split one dataset into two (Airflow's ``example_assets.py`` pattern). Not a DAG
file: ``.airflowignore`` keeps the DAG processor from parsing it on its own.
"""

from __future__ import annotations

from airflow.sdk import Asset

from jobs.config import get_settings

_settings = get_settings()


def table_asset(table: str) -> Asset:
    """The Asset of a lakehouse table, named ``schema.table`` with its storage URI."""
    return Asset(name=table, uri=_settings.storage.table_uri(table))


BRONZE_TRANSACTIONS = table_asset("bronze.transactions")
BRONZE_FRAUD_REPORTS = table_asset("bronze.fraud_reports")
# emitted by data_pipeline only after the day's features passed validation; train_model runs on it
TRANSACTION_FEATURES = table_asset("features.transaction_features")
# emitted by data_pipeline's materialize_online once the day's state is in the online store
ONLINE_STORE = Asset(name="serving.online_store", uri=f"file://{_settings.storage.serving_dir}/online_store")
# emitted by batch_score: the day's scores and the investigators' review queue
TRANSACTION_SCORES = table_asset("predictions.transaction_scores")
DAILY_ALERTS = table_asset("predictions.daily_alerts")
PREDICTION_LOG = table_asset("monitoring.prediction_log")
# emitted by monitor_model once a day's checks are recorded (extra: the days)
MONITORING_CHECKS = table_asset("monitoring.checks")
# emitted by monitor_model when a drift or performance alert asks for a new model (extra: the reason);
# train_model runs on it (or weekly)
RETRAIN_REQUEST = Asset(
    name="monitoring.retrain_request", uri=f"{_settings.storage.table_uri('monitoring.alerts')}/retrain_request"
)
# emitted by train_model's promote when a challenger is approved (extra: its version): the first
# champion at once, later ones as the registry's candidate; deploy_model runs on it and rolls it out
CHAMPION_MODEL = Asset(
    name=f"model.{_settings.mlflow.model_name}.champion",
    uri=f"models:/{_settings.mlflow.model_name}@champion",
)
# emitted by deploy_model when a version has switched to champion in the running service
DEPLOYED_MODEL = Asset(
    name=f"model.{_settings.mlflow.model_name}.deployed",
    uri=f"models:/{_settings.mlflow.model_name}@champion/deployed",
)
