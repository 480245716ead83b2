"""The scoring service (BentoML 1.4): ``POST /score`` answers "is this payment fraud?" in milliseconds.

One BentoML service, :class:`FraudScoring`, run by ``PIPELINE_SERVING_WORKERS`` processes. Each one
validates the raw transactions (:mod:`serving.schemas`, plus the guards of :mod:`serving.http`),
computes their features from the online store and records them there (:mod:`serving.online`),
scores them with the champion's LightGBM booster (:mod:`serving.models`, loaded from the MLflow
registry), answers, and logs the predictions off the request path (:mod:`serving.predlog`).
``/score`` is a batchable API: BentoML's adaptive batching hands concurrent requests to one call,
one store pass and one ``Booster.predict``, in the same process (an IPC hop to a separate model
service cost more than the batching saved, measured in ``bench/README.md``). The model set holds
versions by number and every answer names the version that scored it, so more than one version
can be loaded at once (the deployment strategies build on it).

Start it with ``python -m serving`` (or ``make serve``): localhost:3000. It refuses to start, with a
one-line reason, when there is no champion, when the champion's feature set is not the code's, or
when the online store is empty. ``/healthz`` = alive, ``/readyz`` = model and store loaded,
``/metrics`` = Prometheus.
"""

from __future__ import annotations

import gc
import logging
import time
import uuid
from datetime import UTC, datetime

import bentoml

from jobs.config import get_settings
from jobs.features.registry import FEATURE_NAMES
from jobs.features.store import open_store
from serving import metrics
from serving.http import RequestGuard
from serving.models import ModelSet
from serving.online import FeatureStep, to_matrix
from serving.predlog import PredictionLog
from serving.schemas import Score, Transaction, request_body

log = logging.getLogger("serving")
SETTINGS = get_settings()
S = SETTINGS.serving
ScoreRequest = request_body(S.max_request_items)


@bentoml.service(
    name="fraud_scoring",
    workers=S.workers,
    traffic={"timeout": 30},
    http={"host": S.host, "port": S.port},
    logging={"access": {"enabled": S.access_log}},
)
class FraudScoring:
    """Raw transactions in; score, alert and (with ``explain=true``) the reasons out."""

    def __init__(self) -> None:
        self.models = ModelSet(SETTINGS)  # raises ModelNotServable with the reason
        self.store = open_store(SETTINGS)
        self.store_info = self.store.ready_info()  # raises StoreNotReady with what to run
        self.step = FeatureStep(self.store)
        self.log = PredictionLog(
            SETTINGS.storage.prediction_log_dir, S.log_rotate_s, header={"feature_names": list(FEATURE_NAMES)}
        )
        m = self.models.current
        log.info(
            "serving %s version %s (alert threshold %.6f); online store %s, state of %s",
            m.name,
            m.version,
            m.alert_threshold,
            S.backend,
            self.store_info.state_date,
        )
        gc.collect()
        gc.freeze()  # the booster and the store are long-lived: keep the collector from rescanning them

    @bentoml.api(
        route="/score",
        batchable=True,
        batch_dim=0,
        max_batch_size=max(S.max_batch_size, S.max_request_items),
        max_latency_ms=S.max_latency_ms,
    )
    async def score(self, transactions: ScoreRequest, /) -> list[Score]:
        """Score transactions: a JSON object (answered with an object) or a list (answered in order).

        Concurrent requests are scored together (adaptive batching). A card's later transaction,
        in the same list or a later request, sees its earlier ones. ``?explain=true`` adds each
        transaction's feature values and their contributions to the score.
        """
        return self._score(transactions, explain=False)

    @bentoml.api(route="/score/explain")
    async def score_explained(self, transactions: ScoreRequest, /) -> list[Score]:
        """``/score`` with each transaction's feature values and their contributions (LightGBM ``pred_contrib``)."""
        return self._score(transactions, explain=True)

    def _score(self, txs: list[Transaction], explain: bool) -> list[Score]:
        started = time.perf_counter()
        feats, store_s = self.step.features(txs)
        metrics.FEATURE_LOOKUP.observe(store_s)
        matrix = to_matrix(feats)
        scores, model = self.models.score(matrix)
        contrib = model.contributions(matrix) if explain else None
        base = {
            "alert_threshold": model.alert_threshold,
            "model_name": model.name,
            "model_version": model.version,
            "feature_set_version": model.feature_set_version,
        }
        results = [
            Score(
                transaction_id=tx.transaction_id,
                score=float(s),
                alert=bool(s >= model.alert_threshold),
                request_id=uuid.uuid4().hex,
                features=f if explain else None,
                contributions=None
                if contrib is None
                else {**dict(zip(FEATURE_NAMES, contrib[i, :-1].tolist(), strict=True)), "bias": float(contrib[i, -1])},
                **base,
            )
            for i, (tx, s, f) in enumerate(zip(txs, scores, feats, strict=True))
        ]
        latency_ms = round((time.perf_counter() - started) * 1000, 3)
        served_at = datetime.now(UTC).isoformat(timespec="microseconds")
        self.log.write(
            [
                {
                    "request_id": r.request_id,
                    "transaction_id": tx.transaction_id,
                    "customer_id": tx.customer_id,
                    "terminal_id": tx.terminal_id,
                    "tx_datetime": tx.tx_datetime,
                    "tx_amount": tx.tx_amount,
                    "served_at": served_at,
                    "model_name": r.model_name,
                    "model_version": r.model_version,
                    "feature_set_version": r.feature_set_version,
                    "score": r.score,
                    "alert": r.alert,
                    "latency_ms": latency_ms,
                    "features": [f[name] for name in FEATURE_NAMES],
                }
                for tx, r, f in zip(txs, results, feats, strict=True)
            ]
        )
        alerts = sum(r.alert for r in results)
        for alert, count in (("true", alerts), ("false", len(results) - alerts)):
            if count:
                metrics.PREDICTIONS.labels(model_version=model.version, alert=alert).inc(count)
        for r in results:
            metrics.SCORES.labels(model_version=model.version).observe(r.score)
        return results

    @bentoml.api(route="/model")
    def model_info(self) -> dict:
        """The model versions loaded and the online store's state (what a caller is scored with)."""
        info = self.store.info()
        return {
            "models": self.models.describe(),
            "online_store": {
                "backend": S.backend,
                "state_date": info.state_date.isoformat() if info else None,
                "feature_set_version": info.feature_set_version if info else None,
            },
        }

    def __is_ready__(self) -> bool:
        try:
            self.store.ready_info()
        except Exception:  # noqa: BLE001 (not ready, whatever the reason; /readyz answers 503)
            log.exception("not ready")
            return False
        return bool(self.models.models)

    @bentoml.on_shutdown
    def flush_prediction_log(self) -> None:
        self.log.close()
        self.store.close()


FraudScoring.add_asgi_middleware(RequestGuard, max_body_bytes=S.max_body_bytes)


def _schema_once(spec) -> None:
    """BentoML 1.4 rebuilds a list body's JSON schema on every request, to pick its media type and
    parser: about half the CPU of a ``/score`` call, measured with py-spy. The schema never changes:
    build it once per set of arguments, and say the media type (JSON) once."""
    original, cache = spec.model_json_schema, {}

    def model_json_schema(*args, **kwargs):
        key = (args, tuple(sorted(kwargs.items())))
        if key not in cache:
            cache[key] = original(*args, **kwargs)
        return cache[key]

    spec.model_json_schema = model_json_schema
    spec.media_type = "application/json"


for _api in FraudScoring.apis.values():
    _schema_once(_api.input_spec)
    _schema_once(_api.output_spec)
