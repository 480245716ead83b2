"""The auditor's question: which model decided this payment, trained on what, approved by whom?

:func:`explain_decision` finds every score given to a transaction (the service's answers in
``monitoring.prediction_log``, the nightly ``predictions.transaction_scores``), with the score, the
alert and the features the model saw, and for each model version involved: its training windows,
the Delta versions of the tables it was trained on, the git commit and configuration, the gate's
decision, who approved or rejected it and when, links to its model card and evaluation report, and
its rows of ``governance.audit_log``. No JVM: delta-rs and the MLflow registry.

    python -m jobs.governance explain-decision <transaction_id>
"""

from __future__ import annotations

import json
from datetime import date, datetime

from jobs.config import Settings, get_settings
from jobs.features.build import FEATURES_TABLE
from jobs.features.registry import FEATURE_NAMES
from jobs.platform import delta
from jobs.platform.tracking import Tag, mlflow_client

APPROVAL_TAGS = {
    "approved_by": Tag.APPROVED_BY,
    "approved_at": Tag.APPROVED_AT,
    "promoted_at": Tag.PROMOTED_AT,
    "rejected_by": Tag.REJECTED_BY,
    "rejected_at": Tag.REJECTED_AT,
}


def _plain(value):
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, list) and value and isinstance(value[0], tuple):  # an Arrow map
        return dict(value)
    return value


def _rows(settings: Settings, spec: delta.TableSpec, transaction_id: str) -> list[dict]:
    table = delta.read(settings, spec, filters=[("transaction_id", "=", transaction_id)])
    return [{k: _plain(v) for k, v in r.items()} for r in table.to_pylist()]


def _batch_features(settings: Settings, transaction_id: str, batch_date) -> dict[str, float]:
    if not delta.exists(settings, FEATURES_TABLE):
        return {}
    from deltalake import DeltaTable

    filters = [("transaction_id", "=", transaction_id)]
    if batch_date:
        filters.append(("batch_date", "=", date.fromisoformat(str(batch_date)[:10])))
    rows = (
        DeltaTable(str(delta.path(settings, FEATURES_TABLE)))
        .to_pyarrow_table(columns=["transaction_id", *FEATURE_NAMES], filters=filters)
        .to_pylist()
    )
    return {k: v for k, v in rows[0].items() if k != "transaction_id"} if rows else {}


def decisions(tags: dict) -> dict:
    """A version's gate decision and reasons, and who approved or rejected it and when (from its tags)."""
    return {
        "gate": tags.get(Tag.GATE_DECISION),
        "gate_reasons": json.loads(tags.get(Tag.GATE_REASONS) or "[]"),
        **{key: tags.get(tag) for key, tag in APPROVAL_TAGS.items()},
    }


def version_lineage(version: str, settings: Settings) -> dict:
    """What a model version was trained on and who let it serve."""
    from jobs.platform.tracking import mlflow_links
    from jobs.release import audit

    client = mlflow_client(settings)
    mv = client.get_model_version(settings.mlflow.model_name, str(version))
    t = mv.tags
    run = client.get_run(mv.run_id)
    decided = decisions(t)
    return {
        "version": str(version),
        "run_id": mv.run_id,
        "trigger": run.data.tags.get(Tag.TRAINING_TRIGGER),
        "windows": {
            "train": t.get(Tag.WINDOW_TRAIN),
            "gap_days": t.get(Tag.WINDOW_GAP_DAYS),
            "test": t.get(Tag.WINDOW_TEST),
            "cutoff": t.get(Tag.WINDOW_CUTOFF),
            "labels_as_of": t.get(Tag.WINDOW_LABEL_AS_OF),
        },
        "delta_versions": {
            k.removeprefix(Tag.DELTA_VERSION_PREFIX): int(v)
            for k, v in t.items()
            if k.startswith(Tag.DELTA_VERSION_PREFIX)
        },
        "git_commit": t.get(Tag.GIT_COMMIT),
        "config_hash": t.get(Tag.CONFIG_HASH),
        "feature_set_version": t.get(Tag.FEATURE_SET_VERSION),
        "training_data_hash": t.get(Tag.FRAME_HASH),
        "gate": {"decision": decided["gate"], "reasons": decided["gate_reasons"]},
        "approval": {key: decided[key] for key in APPROVAL_TAGS},
        "links": mlflow_links(settings, mv.run_id, run.info.experiment_id),
        "audit": [
            {k: r[k] for k in ("at", "action", "decision", "actor", "reason")}
            for r in audit.read(str(version), settings=settings)
        ],
    }


def explain_decision(transaction_id: str, settings: Settings | None = None) -> dict:
    """Every decision on ``transaction_id`` and the lineage of each version that took one.

    Raises ValueError when the transaction was never scored.
    """
    from jobs.scoring.batch import SCORES
    from jobs.scoring.prediction_log import SPEC as PREDICTION_LOG

    settings = settings or get_settings()
    transaction_id = str(transaction_id)
    decisions = []
    for r in _rows(settings, PREDICTION_LOG, transaction_id):
        decisions.append(
            {
                "source": "service (monitoring.prediction_log)",
                "at": r["served_at"],
                "request_id": r["request_id"],
                "model_version": r["model_version"],
                "path": r.get("path"),
                "score": r["score"],
                "alert": r["alert"],
                "features": r["features"],
                "shadow": {"version": r.get("shadow_version"), "score": r.get("shadow_score")}
                if r.get("shadow_version")
                else None,
            }
        )
    for r in _rows(settings, SCORES, transaction_id):
        decisions.append(
            {
                "source": "batch (predictions.transaction_scores)",
                "at": r["scored_at"],
                "batch_date": r["batch_date"],
                "model_version": r["model_version"],
                "score": r["score"],
                "alert": r["alert"],
                "alert_threshold": r["alert_threshold"],
                "features": _batch_features(settings, transaction_id, r["batch_date"]),
            }
        )
    if not decisions:
        raise ValueError(
            f"transaction {transaction_id} was never scored (not in monitoring.prediction_log "
            "nor predictions.transaction_scores)"
        )
    decisions.sort(key=lambda d: str(d["at"]))
    first = decisions[0]
    versions = sorted({d["model_version"] for d in decisions}, key=int)
    return {
        "transaction_id": transaction_id,
        "model": settings.mlflow.model_name,
        "decisions": decisions,
        "versions": {v: version_lineage(v, settings) for v in versions},
        "summary": (
            f"transaction {transaction_id}: scored {len(decisions)} time(s); first by version "
            f"{first['model_version']} ({first['source'].split(' ')[0]}) at {first['at']}: score "
            f"{first['score']:.4f}, {'alert' if first['alert'] else 'no alert'}"
        ),
    }
