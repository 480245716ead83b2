"""Reproduce a registered model version: the same training set, the same configuration, the same model?

:func:`reproduce` reads the version's MLflow run, rebuilds its training set from the Delta versions the
run pinned (time travel with delta-rs; same windows, same labels as of the same instant), refits the
booster with the recorded LightGBM configuration, best hyperparameters, boosting rounds and seed, and
re-evaluates it on the same test window. It reports, each with the recorded and the rebuilt value:

* the training set's content hash (equal = the same rows, labels and features, in the same order);
* the test metrics (AUC, average precision, Card Precision@k, Brier), within :data:`TOLERANCE`;
* the registered model's scores on the test rows against the refit's (largest absolute difference);
* the git commit the version was trained at, next to the one checked out now (reported, not required).

The configuration is the run's own: the training YAML logged at build time, the hyperparameters and
rounds logged by the final fit, the seed and the label maturity from its parameters.

Tuning is not re-run: the search's trials are recorded as nested runs, and a parallel Ray Tune search
is not order-deterministic; what must reproduce is the model the search chose. A pinned version that
Delta maintenance removed (it must not, see :mod:`jobs.governance.lakehouse`) is a clear error.
"""

from __future__ import annotations

import json
import logging
import tempfile
from datetime import UTC, date, datetime
from pathlib import Path

import yaml
from deltalake.exceptions import DeltaError

from jobs.config import Settings, get_settings, load_training_config
from jobs.evaluation import metrics
from jobs.features.registry import features_matrix
from jobs.platform.tracking import Tag, mlflow_client
from jobs.training.context import fit_final, git_commit
from jobs.training.dataset import PINNED_TABLES, build_training_set, load_training_set
from jobs.training.evaluate import test_metrics
from jobs.training.train import FINAL_FIT_ARTIFACT, TRAINING_CONFIG_ARTIFACT

log = logging.getLogger(__name__)

TOLERANCE = 1e-9  # LightGBM runs deterministic, single-threaded (training.yaml): the same data gives the same trees


def _artifact(client, run_id: str, path: str) -> dict | None:
    """A JSON artifact of the run, or None if the run has none (runs older than the artifact)."""
    with tempfile.TemporaryDirectory() as tmp:
        try:
            return json.loads(Path(client.download_artifacts(run_id, path, tmp)).read_text())
        except Exception:  # noqa: BLE001 (MLflow raises several types for a missing artifact)
            return None


def _recorded_fit(client, run_id: str, params: dict) -> tuple[dict, int]:
    """The hyperparameters and rounds the model was fit with: the final fit's record, else the ``best.*`` params."""
    fit = _artifact(client, run_id, FINAL_FIT_ARTIFACT)
    if fit is not None:
        return fit["best_config"], int(fit["best_rounds"])
    best = {k.removeprefix("best."): yaml.safe_load(v) for k, v in params.items() if k.startswith("best.")}
    return best, int(best.pop("rounds"))


def _param(params: dict, key: str):
    """An MLflow param (a string) back to its YAML type: ``"31"`` -> 31, ``"0.9"`` -> 0.9."""
    if key not in params:
        raise ValueError(f"the run has no parameter {key!r}: it was not trained by train_model")
    return yaml.safe_load(params[key])


def _same(a: float | None, b: float | None) -> bool:
    return (a is None and b is None) or (a is not None and b is not None and abs(a - b) <= TOLERANCE)


def reproduce(version: str, settings: Settings | None = None, out_dir: Path | None = None) -> dict:
    """Rebuild, refit and re-evaluate ``version`` (a number, or an alias such as ``champion``).

    ``reproduced`` is true when the training set, the test metrics and the scores match.
    """
    import mlflow

    settings = settings or get_settings()
    client = mlflow_client(settings)
    name = settings.mlflow.model_name
    version = str(version)
    mv = (
        client.get_model_version(name, version)
        if version.isdigit()
        else client.get_model_version_by_alias(name, version)
    )
    version = str(mv.version)
    run = client.get_run(mv.run_id)
    tags, params, logged = run.data.tags, run.data.params, run.data.metrics
    missing = [t for t in PINNED_TABLES if Tag.delta_version(t) not in tags]
    if missing:
        raise ValueError(f"version {version}: its run pinned no Delta version of {missing}")
    versions = {t: int(tags[Tag.delta_version(t)]) for t in PINNED_TABLES}
    # the label maturity the training used decides which rows are labelled: the recorded one, not today's
    maturity = _param(params, "label_maturity_days")
    settings = settings.override(
        data={"label_maturity_days": maturity},
        training={"gap_days": max(settings.training.gap_days, maturity)},
    )
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
    out_dir = out_dir or settings.storage.training_dir / f"reproduce-v{version}-{stamp}"
    try:
        manifest = build_training_set(
            out_dir,
            settings,
            last_test_day=date.fromisoformat(tags[Tag.WINDOW_TEST].split("..")[1]),
            train_days=_param(params, "train_days"),
            gap_days=_param(params, "gap_days"),
            test_days=_param(params, "test_days"),
            n_folds=_param(params, "n_folds"),
            versions=versions,
        )
    except (OSError, RuntimeError, DeltaError) as exc:  # delta-rs: a pinned version's log or files are gone
        raise ValueError(f"version {version}: its pinned Delta versions {versions} cannot be read: {exc}") from exc
    _, _, main, _ = load_training_set(out_dir)

    cfg = _artifact(client, run.info.run_id, TRAINING_CONFIG_ARTIFACT)
    config_source = "recorded with the run"
    if cfg is None:
        cfg, config_source = load_training_config(settings), "current training.yaml (the run did not record its own)"
    best, rounds = _recorded_fit(client, run.info.run_id, params)
    booster = fit_final(main.train, cfg, best, rounds, _param(params, "seed"))
    test = main.evaluate
    scores = booster.predict(features_matrix(test))
    report = metrics.evaluate(test, scores, cfg, settings.gate.slice_margin)
    rebuilt = test_metrics(report)
    registered = mlflow.lightgbm.load_model(f"models:/{name}/{version}")
    score_diff = float(abs(registered.predict(features_matrix(test)) - scores).max())
    recorded_hash = tags.get(Tag.FRAME_HASH)
    out = {
        "version": str(version),
        "run_id": run.info.run_id,
        "delta_versions": versions,
        "windows": manifest["windows"],
        "training_set": {
            "recorded_hash": recorded_hash,
            "rebuilt_hash": manifest["frame_hash"],
            "match": recorded_hash == manifest["frame_hash"],
        },
        "configuration": {"lightgbm": config_source, "best": best, "rounds": rounds},
        "metrics": {
            key: {"registered": logged.get(key), "reproduced": value, "match": _same(logged.get(key), value)}
            for key, value in rebuilt.items()
        },
        "scores": {"rows": len(test), "max_abs_diff": score_diff, "match": score_diff <= TOLERANCE},
        "git_commit": {"recorded": tags.get(Tag.GIT_COMMIT), "now": git_commit()},
        "out_dir": str(out_dir),
    }
    out["reproduced"] = (
        out["training_set"]["match"] and out["scores"]["match"] and all(m["match"] for m in out["metrics"].values())
    )
    log.info("reproduce v%s: %s", version, "reproduced" if out["reproduced"] else "DIFFERS")
    return out
