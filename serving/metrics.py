"""The service's own Prometheus metrics (on ``/metrics`` next to BentoML's), declared once.

BentoML collects them across worker processes (its multiprocess registry).
"""

from __future__ import annotations

import bentoml

KNOWN_ROUTES = ("/score", "/healthz", "/livez", "/readyz", "/metrics", "/model")

RESPONSES = bentoml.metrics.Counter(
    name="fraud_scoring_responses_total",
    documentation="HTTP answers by route and status code (4xx: refused input, 5xx: errors)",
    labelnames=["route", "status"],
)
LATENCY = bentoml.metrics.Histogram(
    name="fraud_scoring_request_seconds",
    documentation="Time from request to answer of /score, seconds",
    labelnames=["route"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
)
PREDICTIONS = bentoml.metrics.Counter(
    name="fraud_scoring_predictions_total",
    documentation="Transactions scored, by model version and whether they raised an alert",
    labelnames=["model_version", "alert"],
)
SCORES = bentoml.metrics.Histogram(
    name="fraud_scoring_score",
    documentation="Fraud scores served",
    labelnames=["model_version"],
    buckets=(0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.5, 0.7, 0.9, 1.0),
)
FEATURE_LOOKUP = bentoml.metrics.Histogram(
    name="fraud_scoring_feature_lookup_seconds",
    documentation="Online-store time per request (reads and the state update), seconds",
    buckets=(0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.1),
)
MODEL_SWAPS = bentoml.metrics.Counter(
    name="fraud_scoring_model_swaps_total",
    documentation="Changes of the serving route (champion, candidate, mode, share) read from the registry",
)
CANDIDATE_ERRORS = bentoml.metrics.Counter(
    name="fraud_scoring_candidate_errors_total",
    documentation="Transactions a candidate failed to score (canary: answered by the champion; shadow: no shadow score)",
    labelnames=["model_version"],
)
