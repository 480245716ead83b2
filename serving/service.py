"""The scoring service (BentoML 1.4): ``POST /score`` answers "is this payment fraud?" in milliseconds.

One BentoML service, :class:`FraudScoring`, run by ``PIPELINE_SERVING_WORKERS`` processes. Each one
validates the raw transactions (:mod:`serving.schemas`, plus the guards of :mod:`serving.http`),
computes their features from the online store and records them there (:mod:`serving.online`),
scores them with the LightGBM boosters the registry says serve (:mod:`serving.router`: the champion,
and a candidate in shadow or canary; swapped without a restart), answers, and logs the predictions
off the request path (:mod:`serving.predlog`).
``/score`` is a batchable API: BentoML's adaptive batching hands concurrent requests to one call,
one store pass and one ``Booster.predict``, in the same process (an IPC hop to a separate model
service cost more than the batching saved, measured in ``bench/README.md``). Every answer names the
version that scored it.

Start it with ``python -m serving`` (or ``make serve``): localhost:3000. It refuses to start, with a
one-line reason, when there is no champion, when the champion's feature set is not the code's, or
when the online store is empty. ``/healthz`` = alive, ``/readyz`` = model and store loaded (its body
says which versions serve and which were refused, and why), ``/model`` = the same in detail,
``/metrics`` = Prometheus.
"""

from __future__ import annotations

import gc
import logging
import time
import uuid
from collections import Counter
from datetime import UTC, datetime

import bentoml

from jobs.config import get_settings
from jobs.features.registry import FEATURE_NAMES
from jobs.features.store import open_store
from serving import http, metrics
from serving.http import RequestGuard
from serving.online import FeatureStep, to_matrix
from serving.predlog import PredictionLog
from serving.router import Router
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
        self.router = Router(SETTINGS)  # raises ModelNotServable with the reason; polls the registry
        self.store = open_store(SETTINGS)
        self.store_info = self.store.ready_info()  # raises StoreNotReady with what to run
        self.step = FeatureStep(self.store, record=S.record)
        self.log = PredictionLog(
            SETTINGS.storage.prediction_log_dir, S.log_rotate_s, header={"feature_names": list(FEATURE_NAMES)}
        )
        http.STATUS = self.status
        log.info(
            "serving %s %s (reload every %s s); online store %s, state of %s%s",
            SETTINGS.mlflow.model_name,
            self.router.route.describe(),
            S.reload_s if not S.pinned_version else "- (pinned)",
            S.backend,
            self.store_info.state_date,
            "" if S.record else " (read-only)",
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
        scored = self.router.score(matrix, [tx.customer_id for tx in txs])
        contrib = _contributions(scored, matrix) if explain else None
        results = []
        for i, (tx, s, f, model) in enumerate(zip(txs, scored.scores, feats, scored.models, strict=True)):
            results.append(
                Score(
                    transaction_id=tx.transaction_id,
                    score=float(s),
                    alert=bool(s >= model.alert_threshold),
                    alert_threshold=model.alert_threshold,
                    model_name=model.name,
                    model_version=model.version,
                    feature_set_version=model.feature_set_version,
                    request_id=uuid.uuid4().hex,
                    features=f if explain else None,
                    contributions=None
                    if contrib is None
                    else {
                        **dict(zip(FEATURE_NAMES, contrib[i, :-1].tolist(), strict=True)),
                        "bias": float(contrib[i, -1]),
                    },
                )
            )
        latency_ms = round((time.perf_counter() - started) * 1000, 3)
        served_at = datetime.now(UTC).isoformat(timespec="microseconds")
        shadow = scored.shadow_model
        records = []
        for i, (tx, r, f) in enumerate(zip(txs, results, feats, strict=True)):
            record = {
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
                "path": scored.paths[i],
            }
            if scored.candidate_error and scored.paths[i] == "fallback":
                record["candidate_error"] = scored.candidate_error
            if shadow is not None:
                record["shadow_version"] = shadow.version
                record["shadow_ms"] = round(scored.shadow_ms, 3)
                if scored.shadow is not None:
                    record["shadow_score"] = float(scored.shadow[i])
                    record["shadow_alert"] = bool(scored.shadow[i] >= shadow.alert_threshold)
                else:
                    record["candidate_error"] = scored.shadow_error
            records.append(record)
        self.log.write(records)
        for (version, alert), count in Counter((r.model_version, r.alert) for r in results).items():
            metrics.PREDICTIONS.labels(model_version=version, alert="true" if alert else "false").inc(count)
        for r in results:
            metrics.SCORES.labels(model_version=r.model_version).observe(r.score)
        return results

    @bentoml.api(route="/model")
    def model_info(self) -> dict:
        """The versions that serve (route, loaded, refused and why) and the online store's state."""
        info = self.store.info()
        return {
            "models": self.router.describe(),
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
        return self.router.route is not None

    def status(self) -> dict:
        """The body of ``/readyz``: what serves and what was refused."""
        return {"model": self.router.describe(), "online_store_state": self.store_info.state_date.isoformat()}

    @bentoml.on_shutdown
    def flush_prediction_log(self) -> None:
        self.router.close()
        self.log.close()
        self.store.close()


def _contributions(scored, matrix):
    """Per row, the feature contributions (and bias) by the version that answered it."""
    import numpy as np

    out = np.empty((len(matrix), matrix.shape[1] + 1), dtype=np.float64)
    by_version: dict[str, list[int]] = {}
    for i, model in enumerate(scored.models):
        by_version.setdefault(model.version, []).append(i)
    for rows in by_version.values():
        out[rows] = scored.models[rows[0]].contributions(matrix[rows])
    return out


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
