"""Which model version answers each transaction, kept in step with the registry without a restart.

:class:`Router` holds an immutable :class:`Route` (champion, candidate, mode, share) and replaces it
in one assignment, so a request that read the route before a swap finishes with the versions it
started with, and no request ever sees half a change. Every ``PIPELINE_SERVING_RELOAD_S`` a
background thread reads the serving state from the registry (:func:`jobs.release.rollout.read_state`,
one call); a version it does not hold yet is loaded and checked (feature-set version, alert
threshold, golden rows: :func:`jobs.scoring.model.load_scoring_model`) before the new route is
built. A version that fails its checks never serves: the router keeps what it had, logs why, and
``/readyz`` lists the version and the reason. Registry errors (a tracking server down, a timeout)
leave the route as it is and are retried at the next poll; they never refuse a version.

Routing: ``shadow`` = the champion answers and the candidate scores the same rows on the side;
``canary`` = the candidate answers the cards below the share (:func:`jobs.release.rollout.canary_bucket`);
a candidate that raises or returns a non-finite score is answered for by the champion (counted as a
candidate error), so a broken candidate costs no failed request. With ``PIPELINE_SERVING_VERSION``
the router serves that version only and never polls (a smoke-test instance).
"""

from __future__ import annotations

import gc
import logging
import os
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np

from jobs.config import Settings
from jobs.release.rollout import CANARY, SHADOW, ServingState, canary_bucket, read_state
from jobs.scoring.model import ModelNotServable, ScoringModel, load_scoring_model
from serving import metrics

log = logging.getLogger("serving.router")

CHAMPION_PATH, CANARY_PATH, FALLBACK_PATH = "champion", "canary", "fallback"


@dataclass(frozen=True)
class Route:
    """What answers, at one moment: never mutated, replaced whole."""

    champion: ScoringModel
    candidate: ScoringModel | None = None
    mode: str | None = None
    share: float = 0.0

    @property
    def key(self) -> tuple:
        return (self.champion.version, getattr(self.candidate, "version", None), self.mode, self.share)

    def describe(self) -> dict:
        return {
            "champion": self.champion.version,
            "candidate": getattr(self.candidate, "version", None),
            "mode": self.mode,
            "share": self.share if self.mode == CANARY else None,
        }


@dataclass
class Scored:
    """The scores of one batch, the version and path that answered each row, and the shadow's scores."""

    scores: np.ndarray
    models: list[ScoringModel]
    paths: list[str]
    model_ms: float
    shadow: np.ndarray | None = None
    shadow_model: ScoringModel | None = None
    shadow_ms: float | None = None
    candidate_error: str | None = None
    shadow_error: str | None = None


def _finite_scores(model: ScoringModel, matrix: np.ndarray) -> np.ndarray:
    scores = np.asarray(model.predict(matrix), dtype=np.float64)
    if scores.shape != (len(matrix),) or not np.all(np.isfinite(scores)) or np.any((scores < 0) | (scores > 1)):
        raise ValueError(f"version {model.version} returned scores that are not finite numbers in [0, 1]")
    return scores


class Router:
    """The route of this worker process, refreshed from the registry in the background."""

    def __init__(self, settings: Settings) -> None:
        from jobs.platform.tracking import mlflow_client

        self.settings = settings
        self.name = settings.mlflow.model_name
        self.pinned = settings.serving.pinned_version or None
        self.reload_s = settings.serving.reload_s
        self.refused: dict[str, str] = {}  # version -> why it cannot serve (never retried)
        self.last_error: str | None = None  # the last registry or load error, if the last poll failed
        self.last_poll: str | None = None
        self.swaps = 0
        self._cache: dict[str, ScoringModel] = {}
        self._client = mlflow_client(settings)
        if self.pinned:
            self.route = Route(load_scoring_model(version=self.pinned, settings=settings))
        else:
            state = read_state(self._client, self.name)
            if state.champion is None:
                load_scoring_model(settings=settings)  # raises ModelNotServable, saying there is no champion
            champion = load_scoring_model(version=state.champion, settings=settings)  # or raises: cannot start
            self._cache[champion.version] = champion
            self.route = Route(champion)
            self._apply(state)
        self._stop = threading.Event()
        self._thread = None
        if not self.pinned and self.reload_s > 0:
            self._thread = threading.Thread(target=self._poll, name="registry-poll", daemon=True)
            self._thread.start()

    # -- keeping in step with the registry ---------------------------------------------------------
    def _poll(self) -> None:
        while not self._stop.wait(self.reload_s):
            try:
                self.refresh()
            except Exception:  # noqa: BLE001 (the poll thread must outlive any one bad poll)
                log.exception("registry poll failed; retrying in %s s", self.reload_s)

    def refresh(self) -> bool:
        """Read the registry once and swap the route if it changed; True when it did. Never raises."""
        try:
            state = read_state(self._client, self.name)
        except Exception as exc:  # noqa: BLE001 (a registry outage must not stop the serving)
            self.last_error = f"registry unreachable: {exc}"
            log.warning("cannot read the registry, still serving %s: %s", self.route.describe(), exc)
            return False
        self.last_poll = datetime.now(UTC).isoformat(timespec="seconds")
        return self._apply(state)

    def _apply(self, state: ServingState) -> bool:
        self.last_error = None
        current = self.route
        champion = self._get(state.champion) if state.champion else None
        if champion is None:
            champion = current.champion  # no servable champion in the registry: keep the one that serves
        candidate = self._get(state.candidate) if state.mode and state.candidate != champion.version else None
        new = Route(champion, candidate, state.mode if candidate else None, state.share if candidate else 0.0)
        if new.key == current.key:
            return False
        self.route = new  # one assignment: requests in flight keep the route they read
        self.swaps += 1
        metrics.MODEL_SWAPS.inc()
        # keep the versions that serve, and the champion that served before (a rollback is then instant)
        keep = {champion.version, current.champion.version} | ({candidate.version} if candidate else set())
        self._cache = {v: m for v, m in self._cache.items() if v in keep}
        gc.freeze()  # the new booster is long-lived too (see FraudScoring.__init__)
        log.info("now serving %s (was %s)", new.describe(), current.describe())
        return True

    def _get(self, version: str) -> ScoringModel | None:
        """The loaded and checked ``version``, or None (why: in ``refused``, or ``last_error`` to retry)."""
        if version in self._cache:
            return self._cache[version]
        if version in self.refused:
            return None
        started = time.perf_counter()
        try:
            model = load_scoring_model(version=version, settings=self.settings)
        except ModelNotServable as exc:
            self.refused[version] = str(exc)
            log.error("version %s will not serve: %s", version, exc)
            return None
        except Exception as exc:  # noqa: BLE001 (e.g. the artifact store is down: try again at the next poll)
            self.last_error = f"loading version {version}: {exc}"
            log.exception("loading version %s failed; retrying at the next poll", version)
            return None
        log.info("loaded and checked version %s in %.2f s", version, time.perf_counter() - started)
        self._cache[version] = model
        return model

    def close(self) -> None:
        self._stop.set()

    # -- answering -------------------------------------------------------------------------------------
    def score(self, matrix: np.ndarray, customer_ids: list[str]) -> Scored:
        """Scores of the rows of ``matrix`` by the route's versions (one read of the route for the batch)."""
        route = self.route
        n = len(matrix)
        to_candidate = np.zeros(n, dtype=bool)
        if route.mode == CANARY and route.candidate is not None and route.share > 0:
            version = route.candidate.version
            to_candidate = np.fromiter(
                (canary_bucket(c, version) < route.share for c in customer_ids), dtype=bool, count=n
            )
        scores = np.empty(n, dtype=np.float64)
        models, paths = [route.champion] * n, [CHAMPION_PATH] * n
        candidate_error = None
        t0 = time.perf_counter()
        if to_candidate.any():
            try:
                scores[to_candidate] = _finite_scores(route.candidate, matrix[to_candidate])
                for i in np.flatnonzero(to_candidate):
                    models[i], paths[i] = route.candidate, CANARY_PATH
            except Exception as exc:  # noqa: BLE001 (the champion answers instead; counted and logged)
                candidate_error = f"{type(exc).__name__}: {exc}"
                metrics.CANDIDATE_ERRORS.labels(model_version=route.candidate.version).inc(int(to_candidate.sum()))
                log.error("candidate %s failed, the champion answered: %s", route.candidate.version, candidate_error)
                for i in np.flatnonzero(to_candidate):
                    paths[i] = FALLBACK_PATH
                to_candidate[:] = False
        rest = ~to_candidate
        if rest.any():
            scores[rest] = route.champion.predict(matrix[rest])
        out = Scored(scores, models, paths, (time.perf_counter() - t0) * 1000, candidate_error=candidate_error)
        if route.mode == SHADOW and route.candidate is not None:
            t0 = time.perf_counter()
            out.shadow_model = route.candidate
            try:
                out.shadow = _finite_scores(route.candidate, matrix)
            except Exception as exc:  # noqa: BLE001 (a shadow never affects the answer)
                out.shadow_error = f"{type(exc).__name__}: {exc}"
                metrics.CANDIDATE_ERRORS.labels(model_version=route.candidate.version).inc(n)
            out.shadow_ms = (time.perf_counter() - t0) * 1000
        return out

    def describe(self) -> dict:
        """What this process serves and holds, and what it refused (for ``/model`` and ``/readyz``)."""
        return {
            "pid": os.getpid(),
            "route": self.route.describe(),
            "versions": {v: m.describe() for v, m in self._route_models().items()},
            "pinned": self.pinned,
            "reload_s": None if self.pinned else self.reload_s,
            "last_poll": self.last_poll,
            "last_error": self.last_error,
            "refused": dict(self.refused),
        }

    def _route_models(self) -> dict[str, ScoringModel]:
        route = self.route
        models = {route.champion.version: route.champion}
        if route.candidate is not None:
            models[route.candidate.version] = route.candidate
        return models
