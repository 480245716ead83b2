"""The scoring service end to end: a real ``python -m serving`` process over HTTP, on a real simulated day.

* parity: the online store as of day D-1, day D's transactions replayed in time order through the
  service; every served feature equals ``features.transaction_features`` (integers exactly, doubles
  within 1e-9) and every served score equals the batch score of the same row;
* refused input: a table of bad requests, each a 4xx naming the field, then a valid one still works;
  schemathesis over the OpenAPI schema finds no 5xx;
* batch_score through ``dag.test()``; the prediction log loaded into Delta after a SIGTERM, with one
  row per answered transaction, none lost, none duplicated.
"""

from __future__ import annotations

import json
import math
import os
import signal
from datetime import timedelta

import pytest
import requests
import schemathesis

from jobs.features.registry import FEATURES

from replay import REPLAY_DAY, TIMESTAMP, day_transactions

REPLAY = {}  # transaction_id -> served answer, filled by the parity test


def _body(row) -> dict:
    return {
        "transaction_id": row["transaction_id"],
        "tx_datetime": row["tx_datetime"].strftime(TIMESTAMP),
        "customer_id": row["customer_id"],
        "terminal_id": row["terminal_id"],
        "tx_amount": float(row["tx_amount"]),
    }


def test_refuses_to_start_without_a_servable_champion(tmp_path, monkeypatch, capsys, champion, online_store):
    """One line saying why, exit 1: no champion in the registry; a champion of another feature set.

    ``python -m serving`` runs these checks before it starts BentoML; called in-process here (a
    subprocess per case would cost ~10 s of imports each).
    """
    import mlflow

    from jobs.config import get_settings
    from jobs.platform.tracking import Alias, Tag
    from serving.__main__ import main

    uri = f"sqlite:///{tmp_path / 'empty.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    get_settings.cache_clear()
    try:
        assert main(["--check"]) == 1
        reason = [
            line for line in capsys.readouterr().err.splitlines() if line.startswith("error")
        ]  # not MLflow's logs
        assert len(reason) == 1 and reason[0].startswith("error: cannot serve: no alias 'champion'"), reason

        client = mlflow.MlflowClient(uri, uri)
        client.create_registered_model("fraud_detector")
        mv = client.create_model_version("fraud_detector", "file:///nowhere", tags={Tag.FEATURE_SET_VERSION: "v1-0000"})
        client.set_registered_model_alias("fraud_detector", Alias.CHAMPION, mv.version)
        assert main(["--check"]) == 1
        reason = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error")]
        assert len(reason) == 1 and "trained on feature set v1-0000" in reason[0], reason

        monkeypatch.setenv("MLFLOW_TRACKING_URI", os.environ["PIPELINE_TEST_SERVING_MLFLOW"])
        get_settings.cache_clear()
        assert main(["--check"]) == 0  # the module's champion and store: servable
    finally:
        monkeypatch.undo()
        get_settings.cache_clear()
        from jobs.platform.tracking import mlflow_client

        mlflow_client(get_settings())


def test_served_features_and_scores_equal_the_offline_ones(service, champion, serving_settings):
    """The issue's parity test: day D through HTTP against features.transaction_features and batch scores."""
    from jobs.platform import delta
    from jobs.scoring.batch import SCORES, score_day

    rows = day_transactions(serving_settings, REPLAY_DAY)
    # same-time transactions of one card or terminal would be ordered arbitrarily online: none in this day
    assert not rows.duplicated(["customer_id", "tx_datetime"]).any()
    assert not rows.duplicated(["terminal_id", "tx_datetime"]).any()
    for _, row in rows.iterrows():
        resp = service.post(_body(row), params={"explain": "true"})
        assert resp.status_code == 200, resp.text
        REPLAY[row["transaction_id"]] = resp.json()

    mismatches = []
    for _, row in rows.iterrows():
        served = REPLAY[row["transaction_id"]]["features"]
        for f in FEATURES:
            offline, online = row[f.name], served[f.name]
            same = offline == online if f.dtype == "int" else math.isclose(offline, online, rel_tol=1e-9, abs_tol=1e-9)
            if not same:
                mismatches.append((row["transaction_id"], f.name, offline, online))
    assert not mismatches, f"{len(mismatches)} feature values differ, e.g. {mismatches[:10]}"

    summary = score_day(REPLAY_DAY, serving_settings)
    assert summary["transactions"] == len(rows)
    batch = delta.read(serving_settings, SCORES, filters=[("batch_date", "=", REPLAY_DAY)]).to_pandas()
    assert len(batch) == len(rows)
    for _, b in batch.iterrows():
        served = REPLAY[b["transaction_id"]]
        assert abs(served["score"] - b["score"]) <= 1e-9, (b["transaction_id"], served["score"], b["score"])
        assert served["alert"] == bool(b["alert"]) and served["model_version"] == b["model_version"]
    # the answer's contract
    one = next(iter(REPLAY.values()))
    assert one["model_version"] == champion["version"] and one["alert_threshold"] == champion["threshold"]
    assert set(one["contributions"]) == {f.name for f in FEATURES} | {"bias"}
    logit = sum(one["contributions"].values())
    assert math.isclose(1 / (1 + math.exp(-logit)), one["score"], rel_tol=1e-6)
    assert len(rows) > 300, "the replayed day is too small to prove anything"


def test_a_retried_transaction_counts_once(service, serving_settings):
    """The same transaction twice: the same features (it is not in its own history), recorded once."""
    rows = day_transactions(serving_settings, REPLAY_DAY)
    last = rows.iloc[-1]
    body = {
        **_body(last),
        "transaction_id": "retry-1",
        "tx_datetime": (last["tx_datetime"] + timedelta(minutes=1)).strftime(TIMESTAMP),
    }
    first = service.post(body, params={"explain": "true"}).json()
    again = service.post(body, params={"explain": "true"}).json()
    assert first["features"] == again["features"] and first["score"] == again["score"]
    later = {
        **body,
        "transaction_id": "retry-2",
        "tx_datetime": (last["tx_datetime"] + timedelta(minutes=2)).strftime(TIMESTAMP),
    }
    after = service.post(later, params={"explain": "true"}).json()["features"]
    assert after["customer_nb_tx_1d"] == first["features"]["customer_nb_tx_1d"] + 1  # retry-1 counted once
    # a list is scored in order: the second transaction of the card sees the first
    pair = [
        {
            **body,
            "transaction_id": "pair-1",
            "tx_datetime": (last["tx_datetime"] + timedelta(minutes=3)).strftime(TIMESTAMP),
        },
        {
            **body,
            "transaction_id": "pair-2",
            "tx_datetime": (last["tx_datetime"] + timedelta(minutes=4)).strftime(TIMESTAMP),
        },
    ]
    answers = service.post(pair, params={"explain": "true"}).json()
    assert [a["transaction_id"] for a in answers] == ["pair-1", "pair-2"]
    assert answers[1]["features"]["customer_nb_tx_1d"] == answers[0]["features"]["customer_nb_tx_1d"] + 1
    assert answers[0]["request_id"] != answers[1]["request_id"]  # one id per answer, as in the prediction log


VALID = {
    "transaction_id": "bad-req-ok",
    "tx_datetime": "2025-03-10 23:59:00",
    "customer_id": "C-valid",
    "terminal_id": "T-valid",
    "tx_amount": 42.5,
}


def _raw(text: str) -> bytes:
    return text.encode()


BAD_REQUESTS = [
    # (case, body bytes, content type, status, text the answer must contain)
    ("NaN amount", _raw(json.dumps(VALID).replace("42.5", "NaN")), "application/json", 400, "tx_amount"),
    ("infinite amount", _raw(json.dumps(VALID).replace("42.5", "Infinity")), "application/json", 400, "tx_amount"),
    ("negative amount", json.dumps({**VALID, "tx_amount": -1.0}).encode(), "application/json", 400, "tx_amount"),
    ("huge amount", json.dumps({**VALID, "tx_amount": 1e12}).encode(), "application/json", 400, "tx_amount"),
    ("amount as a string", json.dumps({**VALID, "tx_amount": "42.5"}).encode(), "application/json", 400, "tx_amount"),
    ("amount as a boolean", json.dumps({**VALID, "tx_amount": True}).encode(), "application/json", 400, "tx_amount"),
    ("null amount", json.dumps({**VALID, "tx_amount": None}).encode(), "application/json", 400, "tx_amount"),
    ("id as a number", json.dumps({**VALID, "customer_id": 1042}).encode(), "application/json", 400, "customer_id"),
    (
        "missing field",
        json.dumps({k: v for k, v in VALID.items() if k != "terminal_id"}).encode(),
        "application/json",
        400,
        "terminal_id",
    ),
    ("unknown field", json.dumps({**VALID, "merchant": "x"}).encode(), "application/json", 400, "merchant"),
    ("malformed JSON", b'{"transaction_id": "x", ', "application/json", 400, "json"),
    ("empty body", b"", "application/json", 400, "body"),
    ("empty list", b"[]", "application/json", 400, "at least 1"),
    ("oversize list", json.dumps([VALID] * 1001).encode(), "application/json", 400, "at most 1000"),
    (
        "impossible date",
        json.dumps({**VALID, "tx_datetime": "2025-02-30 10:00:00"}).encode(),
        "application/json",
        400,
        "tx_datetime",
    ),
    (
        "ISO timestamp",
        json.dumps({**VALID, "tx_datetime": "2025-03-10T10:00:00Z"}).encode(),
        "application/json",
        400,
        "tx_datetime",
    ),
    (
        "id with spaces",
        json.dumps({**VALID, "transaction_id": "tx 1"}).encode(),
        "application/json",
        400,
        "transaction_id",
    ),
    ("id too long", json.dumps({**VALID, "terminal_id": "T" * 65}).encode(), "application/json", 400, "terminal_id"),
    (
        "bad item in a list",
        json.dumps([VALID, {**VALID, "tx_amount": -3}]).encode(),
        "application/json",
        400,
        "tx_amount",
    ),
    (
        "year 1",
        json.dumps({**VALID, "tx_datetime": "0001-01-01 00:00:00"}).encode(),
        "application/json",
        400,
        "tx_datetime",
    ),
    ("deeply nested JSON", b"[" * 100_000 + b"]" * 100_000, "application/json", 400, "json"),
    ("wrong content type", json.dumps(VALID).encode(), "text/plain", 415, "Content-Type"),
    ("no content type", json.dumps(VALID).encode(), "", 415, "Content-Type"),
    ("body too large", b" " * (1048576 + 1), "application/json", 413, "body"),
]


@pytest.mark.parametrize(("case", "body", "ctype", "status", "names"), BAD_REQUESTS, ids=[b[0] for b in BAD_REQUESTS])
def test_bad_requests_get_a_4xx_naming_the_field(service, case, body, ctype, status, names):
    headers = {"Content-Type": ctype} if ctype else {}
    resp = service.http.post(f"{service.url}/score", data=body, headers=headers, timeout=30)
    assert resp.status_code == status, (case, resp.status_code, resp.text[:500])
    assert names.lower() in resp.text.lower(), (case, resp.text[:500])


def test_the_service_still_serves_after_bad_requests(service):
    resp = service.post(VALID)
    assert resp.status_code == 200, resp.text
    assert resp.json()["transaction_id"] == "bad-req-ok"
    assert requests.get(f"{service.url}/readyz", timeout=5).status_code == 200


def test_schemathesis_finds_no_server_error(service):
    """Requests generated from the service's own OpenAPI schema (BentoML's /docs.json): never a 5xx.

    Schemathesis's pytest plugin does not run under pytest 9, so its Hypothesis strategy is driven
    directly; every generated request (valid or not) must get an answer below 500.
    """
    from hypothesis import HealthCheck, given, settings

    schema = schemathesis.openapi.from_url(f"{service.url}/docs.json")
    operation = schema["/score"]["POST"]
    answered = {"4xx": 0, "2xx": 0}

    @settings(max_examples=80, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    @given(case=operation.as_strategy())
    def call(case):
        resp = case.call(base_url=service.url, session=service.http, timeout=30)
        service.count(resp)
        assert resp.status_code < 500, (case.body, resp.status_code, resp.text[:300])
        answered["2xx" if resp.status_code < 300 else "4xx"] += 1

    call()
    assert answered["2xx"] and answered["4xx"], answered  # both valid and invalid requests were generated


def test_probes_and_metrics(service, serving_settings):
    assert requests.get(f"{service.url}/healthz", timeout=5).status_code == 200
    assert requests.get(f"{service.url}/readyz", timeout=5).status_code == 200
    text = requests.get(f"{service.url}/metrics", timeout=5).text
    for name in (
        "fraud_scoring_responses_total",
        "fraud_scoring_request_seconds_bucket",
        "fraud_scoring_predictions_total",
        "fraud_scoring_score_bucket",
        "fraud_scoring_feature_lookup_seconds_bucket",
    ):
        assert name in text, name
    assert 'status="415"' in text and 'status="200"' in text
    # Its workers' Prometheus files are its own (BentoML empties that folder when any server starts):
    # a service started in the other test worker meanwhile erased these counts when it was shared.
    from serving.__main__ import bentoml_home

    own = bentoml_home(int(service.url.rsplit(":", 1)[1])) / "prometheus_multiproc_dir"
    assert list(own.glob("*.db")), own


def test_batch_score_dag(load_dag, airflow_db, champion, serving_settings, online_store):
    """dag.test() scores the day; the review queue: k cards, none known compromised, three reasons each."""
    from jobs.platform import delta
    from jobs.scoring.batch import ALERTS, SCORES, known_compromised

    dag = load_dag("batch_score")
    for _ in range(2):  # a re-run replaces the day
        run = dag.test(run_conf={"date": REPLAY_DAY.isoformat()})
        states = {ti.task_id: str(ti.state) for ti in run.get_task_instances()}
        assert states == {"days_to_score": "success", "score": "success", "load_prediction_log": "success"}, states
    scores = delta.read(serving_settings, SCORES, filters=[("batch_date", "=", REPLAY_DAY)]).to_pandas()
    rows = day_transactions(serving_settings, REPLAY_DAY)
    assert len(scores) == len(rows) and scores["transaction_id"].is_unique
    assert (scores["alert"] == (scores["score"] >= champion["threshold"])).all()
    alerts = delta.read(serving_settings, ALERTS, filters=[("alert_date", "=", REPLAY_DAY)]).to_pandas()
    from jobs.config import load_training_config

    k = load_training_config(serving_settings)["evaluation"]["top_k"]
    excluded = known_compromised(serving_settings, REPLAY_DAY)
    eligible = scores[~scores["customer_id"].isin(excluded)]
    assert len(alerts) == min(k, eligible["customer_id"].nunique())
    assert alerts["customer_id"].is_unique and not alerts["customer_id"].isin(excluded).any()
    expected = eligible.groupby("customer_id")["score"].max().sort_values(ascending=False).head(len(alerts))
    assert sorted(alerts["score"].round(12)) == sorted(expected.round(12))  # the top cards by highest score
    assert list(alerts["rank"]) == list(range(1, len(alerts) + 1))
    # up to three reasons, each a feature that pushed the score up; a card above the threshold has at least one
    assert all(len(r) <= 3 and all(x["contribution"] > 0 for x in r) for r in alerts["reasons"])
    assert all(len(r) >= 1 for r, above in zip(alerts["reasons"], alerts["above_threshold"], strict=True) if above)
    assert (alerts["above_threshold"] == (alerts["score"] >= champion["threshold"])).all()
    assert all(r.count("(+") == len(x) for r, x in zip(alerts["reason_codes"], alerts["reasons"], strict=True))


def test_prediction_log_after_sigterm(service, serving_settings):
    """SIGTERM: the service stops gracefully; every answered transaction is in the log, once, after loading."""
    from jobs.platform import delta
    from jobs.scoring.prediction_log import SPEC, load_prediction_log

    assert service.answered > 300
    assert service.stop(signal.SIGTERM) == 0, service.log_path.read_text()[-3000:]
    directory = serving_settings.storage.prediction_log_dir
    assert not list(directory.glob("*.jsonl.open"))  # closed at shutdown
    first = load_prediction_log(serving_settings)
    again = load_prediction_log(serving_settings)  # a retried task loads nothing twice
    assert again["files_loaded"] == 0 and again["rows"] == 0
    table = delta.read(serving_settings, SPEC).to_pandas()
    assert first["files_loaded"] >= 1 and len(table) == service.answered
    assert set(REPLAY) <= set(table["transaction_id"])
    served = table.set_index("transaction_id").loc[list(REPLAY)]
    assert all(abs(served.loc[t, "score"] - REPLAY[t]["score"]) < 1e-12 for t in REPLAY)
    assert (table["features"].map(len) == len(FEATURES)).all()
