"""Safe deployment end to end: a real ``python -m serving`` process following a real MLflow registry.

Five real LightGBM versions are registered in this module's own MLflow store (trained on generated
feature rows: these tests are about which version answers, not about features): the champion, a
similar candidate, one of another feature set, one that scores the inverse, and one whose leaves are
NaN. The service polls the registry every second (``PIPELINE_SERVING_RELOAD_S=1``), with an online
store whose state is empty (features come from the live transactions) and a data dir of its own.

* shadow: answers are the champion's, and the prediction log has both scores for every request;
* canary: the candidate's share of cards is within the binomial tolerance, exactly the cards the
  hash puts below the share, and a card never flips;
* a version that fails its checks never serves; ``/readyz`` says why;
* zero downtime: 16 clients (5 requests/s each) for 20 s while a new champion is promoted, then rolled back;
* ``deploy_model`` through ``dag.test()``: a progressive rollout that switches, one that rolls back
  automatically on the shadow comparison, and one that fails its smoke test.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import re
import threading
import time
import uuid
from datetime import UTC, date, datetime, timedelta

import numpy as np
import pytest
import requests
from service_proc import start_service

from jobs.config import get_settings

RELOAD_S = 1.0
LOAD_ALLOWANCE_S = 3.0  # loading and checking a version after the poll that sees it (measured: < 1 s)
STATE_DAY = date(2025, 3, 9)
T0 = datetime(2025, 3, 10)
CARDS = [f"C{i:05d}" for i in range(3000)]


@pytest.fixture(scope="module")
def deploy_settings(tmp_path_factory):
    """A data dir and an MLflow store of this module's own; the service reloads every second."""
    root = tmp_path_factory.mktemp("deploy")
    env = {
        "PIPELINE_DATA_DIR": str(root / "data"),
        "MLFLOW_TRACKING_URI": f"sqlite:///{root / 'mlflow.db'}",
        "PIPELINE_SERVING_RELOAD_S": str(RELOAD_S),
        "PIPELINE_SERVING_WORKERS": "2",
        "PIPELINE_DEPLOY_MIN_REQUESTS": "30",
        "PIPELINE_DEPLOY_OBSERVE_S": "4",
        "PIPELINE_DEPLOY_SMOKE_TIMEOUT_S": "120",
    }
    before = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    get_settings.cache_clear()
    yield get_settings()
    for k, v in before.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v
    get_settings.cache_clear()
    from jobs.platform.tracking import mlflow_client

    mlflow_client(get_settings())


def _training_rows(seed: int = 0, n: int = 4000):
    """Feature rows shaped like the live ones (amounts, counts, no terminal history) and a label."""
    from jobs.features.registry import FEATURE_NAMES

    rng = np.random.default_rng(seed)
    X = np.zeros((n, len(FEATURE_NAMES)))
    col = {name: i for i, name in enumerate(FEATURE_NAMES)}
    X[:, col["tx_amount"]] = rng.lognormal(4, 1, n)
    for name in FEATURE_NAMES:
        if name.startswith(("customer_nb", "terminal_nb")):
            X[:, col[name]] = rng.integers(0, 5, n)
    X[:, col["tx_during_night"]] = rng.integers(0, 2, n)
    X[:, col["customer_avg_amount_30d"]] = rng.lognormal(4, 0.5, n)
    risk = X[:, col["tx_amount"]] / (1 + X[:, col["customer_avg_amount_30d"]]) + X[:, col["tx_during_night"]]
    y = (risk + rng.normal(0, 0.5, n) > np.quantile(risk, 0.9)).astype(int)
    return X, y


@pytest.fixture(scope="module")
def versions(deploy_settings):
    """Versions 1-5: champion, similar candidate, other feature set, inverse scores, NaN scores."""
    import lightgbm as lgb
    import mlflow

    from jobs.features.registry import FEATURE_NAMES, FEATURE_SET_VERSION
    from jobs.platform.tracking import Alias, Metric, Tag, experiment_id, mlflow_client
    from jobs.release.decisions import GateDecision

    s = deploy_settings
    client = mlflow_client(s)
    name = s.mlflow.model_name
    client.create_registered_model(name)
    X, y = _training_rows()
    params = {"objective": "binary", "num_leaves": 8, "min_data_in_leaf": 5, "verbosity": -1}

    def fit(labels, seed, **extra):
        data = lgb.Dataset(X, labels, feature_name=list(FEATURE_NAMES))
        return lgb.train({**params, "seed": seed, **extra}, data, num_boost_round=30)

    def register(booster, fsv=FEATURE_SET_VERSION, gated_against="1"):
        threshold = float(np.quantile(booster.predict(X), 0.97)) if fsv == FEATURE_SET_VERSION else 0.5
        with mlflow.start_run(experiment_id=experiment_id(s)) as run:
            info = mlflow.lightgbm.log_model(booster, name="model", pip_requirements=["lightgbm"])
        mv = client.create_model_version(
            name,
            info.model_uri,
            run_id=run.info.run_id,
            model_id=info.model_id,
            tags={
                Tag.FEATURE_SET_VERSION: fsv,
                Tag.metric(Metric.ALERT_THRESHOLD): f"{threshold:.6f}",
                Tag.GATE_DECISION: GateDecision.PASSED,
                Tag.GATE_CHAMPION_AT_GATE: gated_against,
                Tag.APPROVED_BY: "model-owner@test",
            },
        )
        return str(mv.version)

    champion = fit(y, 1)
    out = {"boosters": {}}
    out["champion"] = register(champion, gated_against="none")
    out["boosters"][out["champion"]] = champion
    similar = fit(y, 2, bagging_fraction=0.8, bagging_freq=1)
    out["similar"] = register(similar)
    out["boosters"][out["similar"]] = similar
    out["other_features"] = register(fit(y, 3), fsv="v0-0000")
    inverse = fit(1 - y, 4)
    out["inverse"] = register(inverse)
    out["boosters"][out["inverse"]] = inverse
    model = re.sub(
        r"leaf_value=([^\n]*)",
        lambda m: "leaf_value=" + " ".join("nan" for _ in m.group(1).split()),
        fit(y, 5).model_to_string(),
    )
    out["nan"] = register(lgb.Booster(model_str=re.sub(r"tree_sizes=[^\n]*\n", "", model)))
    client.set_registered_model_alias(name, Alias.CHAMPION, out["champion"])
    assert out["champion"] == "1"
    return out


@pytest.fixture(scope="module")
def deploy_service(versions, deploy_settings, tmp_path_factory):
    """The service over an online store with an empty state of the code's feature set."""
    from jobs.features.registry import FEATURE_SET_VERSION
    from jobs.features.store import StoreInfo, day_end_us, open_store

    store = open_store(deploy_settings)
    info = StoreInfo(STATE_DAY, day_end_us(STATE_DAY), FEATURE_SET_VERSION, datetime.now(UTC).isoformat(), 0, 0)
    store.replace_state(info, [], [])
    store.close()
    svc = start_service(tmp_path_factory.mktemp("deploy-service"))
    yield svc
    svc.stop()


class Traffic:
    """Transactions for the service: fresh ids, times moving forward, cards from a fixed pool."""

    def __init__(self) -> None:
        self._n = 0
        self._lock = threading.Lock()

    def tx(self, card: str | None = None, rng: random.Random | None = None) -> dict:
        rng = rng or random
        with self._lock:
            self._n += 1
            n = self._n
        return {
            "transaction_id": f"tx-{uuid.uuid4().hex}",
            "tx_datetime": (T0 + timedelta(seconds=n)).strftime("%Y-%m-%d %H:%M:%S"),
            "customer_id": card or rng.choice(CARDS),
            "terminal_id": f"T{rng.randrange(500):04d}",
            "tx_amount": round(rng.lognormvariate(4, 1), 2),
        }


TRAFFIC = Traffic()


def _post_all(svc, bodies: list[dict], clients: int = 4) -> list[dict]:
    """Post each body (one transaction per request) from ``clients`` threads; the answers in order."""
    out: list = [None] * len(bodies)

    def work(k: int) -> None:
        http = requests.Session()
        for i in range(k, len(bodies), clients):
            resp = http.post(f"{svc.url}/score", json=bodies[i], timeout=30)
            assert resp.status_code == 200, resp.text
            out[i] = resp.json()

    threads = [threading.Thread(target=work, args=(k,)) for k in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return out


def _set_state(settings, champion: str, candidate: str | None = None, mode: str | None = None, share: float = 0.0):
    """Registry: champion, and a candidate in a mode (or none); no previous champion."""
    from mlflow.exceptions import MlflowException

    from jobs.platform.tracking import Alias, mlflow_client
    from jobs.release import rollout

    client = mlflow_client(settings)
    name = settings.mlflow.model_name
    rollout.clear(client, name)
    client.set_registered_model_alias(name, Alias.CHAMPION, champion)
    with contextlib.suppress(MlflowException):
        client.delete_registered_model_alias(name, Alias.PREVIOUS_CHAMPION)
    if candidate:
        rollout.set_mode(client, name, candidate, mode, share, "test")


def _wait_route(svc, expected: dict, timeout: float = 30, workers: int = 2) -> dict:
    """Until every worker process (told apart by pid) reports ``expected`` as its route, none in between not."""
    deadline, body = time.monotonic() + timeout, None
    agreed: set[int] = set()
    while time.monotonic() < deadline:
        body = requests.get(f"{svc.url}/readyz", timeout=5).json()
        route, pid = body["model"]["route"], body["model"]["pid"]
        if all(route.get(k) == v for k, v in expected.items()):
            agreed.add(pid)
            if len(agreed) >= workers:
                return body
        else:
            agreed.clear()
        time.sleep(0.02)
    raise AssertionError(f"the service's {workers} workers did not all reach {expected} in {timeout} s: {body}")


def _log_rows(settings, transaction_ids: set[str], timeout: float = 10) -> dict[str, dict]:
    """The prediction-log records of these transactions (the writer flushes within about a second)."""
    from jobs.scoring.prediction_log import read_recent

    deadline = time.monotonic() + timeout
    while True:
        rows = {r["transaction_id"]: r for r in read_recent(T0.replace(tzinfo=UTC), settings)}
        rows = {t: r for t, r in rows.items() if t in transaction_ids}
        if len(rows) == len(transaction_ids) or time.monotonic() > deadline:
            return rows
        time.sleep(0.3)


def test_shadow_answers_with_the_champion_and_logs_both_scores(deploy_service, versions, deploy_settings):
    champion, candidate = versions["champion"], versions["similar"]
    _set_state(deploy_settings, champion, candidate, "shadow")
    _wait_route(deploy_service, {"champion": champion, "candidate": candidate, "mode": "shadow"})
    bodies = [TRAFFIC.tx() for _ in range(300)]
    answers = _post_all(deploy_service, bodies)
    assert {a["model_version"] for a in answers} == {champion}
    rows = _log_rows(deploy_settings, {b["transaction_id"] for b in bodies})
    assert len(rows) == len(bodies)
    for body, answer in zip(bodies, answers, strict=True):
        row = rows[body["transaction_id"]]
        assert row["shadow_version"] == candidate and row["path"] == "champion"
        features = np.array([row["features"]])
        assert answer["score"] == pytest.approx(versions["boosters"][champion].predict(features)[0], abs=1e-12)
        assert row["score"] == answer["score"]
        assert row["shadow_score"] == pytest.approx(versions["boosters"][candidate].predict(features)[0], abs=1e-12)
    # the candidate really differs (else "both scores" would prove nothing)
    assert any(abs(r["score"] - r["shadow_score"]) > 1e-6 for r in rows.values())


def test_canary_share_of_cards_is_binomial_and_a_card_never_flips(deploy_service, versions, deploy_settings):
    from scipy import stats

    from jobs.release.rollout import canary_bucket

    champion, candidate, share = versions["champion"], versions["similar"], 0.2
    _set_state(deploy_settings, champion, candidate, "canary", share)
    _wait_route(deploy_service, {"candidate": candidate, "mode": "canary", "share": share})
    cards = CARDS[:1500]
    bodies = [TRAFFIC.tx(card) for card in cards] + [TRAFFIC.tx(card) for card in reversed(cards)]
    answers = _post_all(deploy_service, bodies, clients=8)
    by_card: dict[str, set[str]] = {}
    for body, answer in zip(bodies, answers, strict=True):
        by_card.setdefault(body["customer_id"], set()).add(answer["model_version"])
    assert all(len(v) == 1 for v in by_card.values()), "a card was answered by two versions"
    on_candidate = {c for c, v in by_card.items() if v == {candidate}}
    low, high = stats.binom.interval(0.9999, len(cards), share)
    assert low <= len(on_candidate) <= high, (len(on_candidate), low, high)
    assert on_candidate == {c for c in cards if canary_bucket(c, candidate) < share}
    rows = _log_rows(deploy_settings, {b["transaction_id"] for b in bodies})
    assert {r["path"] for r in rows.values() if r["model_version"] == candidate} == {"canary"}


def test_a_version_that_fails_its_checks_never_serves(deploy_service, versions, deploy_settings):
    """Another feature set, then NaN scores: each is refused, /readyz says why, the champion answers all."""
    champion = versions["champion"]
    for bad, why in ((versions["other_features"], "feature set v0-0000"), (versions["nan"], "golden rows")):
        _set_state(deploy_settings, champion, bad, "canary", 1.0)
        deadline = time.monotonic() + 15
        while True:
            body = requests.get(f"{deploy_service.url}/readyz", timeout=5)
            assert body.status_code == 200  # the champion still serves: ready
            refused = body.json()["model"]["refused"]
            if bad in refused or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert why in refused[bad], refused
        _wait_route(deploy_service, {"champion": champion, "candidate": None})
        answers = _post_all(deploy_service, [TRAFFIC.tx() for _ in range(100)])
        assert {a["model_version"] for a in answers} == {champion}
    text = deploy_service.log_path.read_text()
    assert f"version {versions['nan']} will not serve" in text


def test_a_pinned_version_is_checked_before_the_service_starts(versions, deploy_service, monkeypatch, capsys):
    """``PIPELINE_SERVING_VERSION`` (the smoke test's instance) is checked like the champion: NaN scores refused."""
    from serving.__main__ import main

    try:
        monkeypatch.setenv("PIPELINE_SERVING_VERSION", versions["nan"])
        get_settings.cache_clear()
        assert main(["--check"]) == 1
        errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error")]
        assert len(errors) == 1 and "golden rows" in errors[0], errors
        monkeypatch.setenv("PIPELINE_SERVING_VERSION", versions["similar"])
        get_settings.cache_clear()
        assert main(["--check"]) == 0
        assert f"version {versions['similar']}" in capsys.readouterr().out
    finally:
        monkeypatch.undo()
        get_settings.cache_clear()


class Load:
    """``clients`` threads posting single transactions, each at most ``rate`` a second, until stopped; every
    answer kept with its times.

    Paced, not flat out: what these tests prove is that concurrent requests in flight at a switch all
    succeed, which 16 clients at 5 a second show as well as clients spinning. Flat out, they took both
    cores from the rest of the suite for the whole load; throughput is ``bench/serving.py``'s to measure.
    """

    def __init__(self, url: str, clients: int = 16, rate: float = 5.0) -> None:
        self.url, self.clients, self.interval = url, clients, 1.0 / rate
        self.results: list[tuple[float, float, int, str | None]] = []  # (start, end, status, version)
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, args=(i,), daemon=True) for i in range(clients)]

    def _run(self, i: int) -> None:
        http, rng, out = requests.Session(), random.Random(i), []
        due = time.monotonic() + rng.random() * self.interval  # the clients spread over the first interval
        while not self._stop.wait(max(0.0, due - time.monotonic())):
            body = TRAFFIC.tx(rng=rng)
            start = time.monotonic()
            try:
                resp = http.post(f"{self.url}/score", json=body, timeout=30)
                version = resp.json().get("model_version") if resp.status_code == 200 else None
                out.append((start, time.monotonic(), resp.status_code, version))
            except requests.RequestException as exc:
                out.append((start, time.monotonic(), 0, repr(exc)))
            due = max(due + self.interval, time.monotonic() - self.interval)  # late: no burst to catch up
        self.results.extend(out)

    def __enter__(self):
        for t in self._threads:
            t.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        for t in self._threads:
            t.join(60)


def test_zero_downtime_promote_then_rollback_under_load(deploy_service, versions, deploy_settings):
    """16 clients at 5 requests/s each for 20 s: promote a new champion at 5 s, roll back at 12.5 s. No failed request; every
    answer names a registered version; after each change plus the reload interval, every answer names the new one.

    Each phase outlasts the settling time (reload interval and load allowance, 4 s) by at least 3.5 s, so every
    phase has answers that must all name its version."""
    from jobs.release.registry import promote, rollback

    old, new = versions["champion"], versions["similar"]
    _set_state(deploy_settings, old)
    _wait_route(deploy_service, {"champion": old, "candidate": None})
    with Load(deploy_service.url) as load:
        started = time.monotonic()
        time.sleep(5)
        t_promote = time.monotonic()
        promote(new, "model-owner@test", settings=deploy_settings)
        time.sleep(7.5)
        t_rollback = time.monotonic()
        rollback("oncall@test", settings=deploy_settings)
        time.sleep(max(0.0, 20 - (time.monotonic() - started)))
    results = load.results
    failed = [r for r in results if r[2] != 200]
    assert not failed, failed[:5]
    assert {r[3] for r in results} == {old, new}
    settle = RELOAD_S + LOAD_ALLOWANCE_S
    assert all(r[3] == old for r in results if r[1] < t_promote)
    assert all(r[3] == new for r in results if t_promote + settle <= r[0] and r[1] < t_rollback)
    assert all(r[3] == old for r in results if r[0] >= t_rollback + settle)
    to_new = max(r[1] for r in results if r[3] == old and t_promote <= r[1] < t_rollback) - t_promote
    to_old = max(r[1] for r in results if r[3] == new and r[1] >= t_rollback) - t_rollback
    numbers = {
        "requests": len(results),
        "failed": len(failed),
        "seconds": round(max(r[1] for r in results) - started, 1),
        "requests_per_s": round(len(results) / (max(r[1] for r in results) - started), 1),
        "switch_s": round(to_new, 2),
        "rollback_s": round(to_old, 2),
        "p99_ms": round(float(np.percentile([(r[1] - r[0]) * 1000 for r in results], 99)), 1),
    }
    print("zero-downtime:", json.dumps(numbers))
    assert numbers["seconds"] >= 19 and numbers["requests"] > 1000


def _run_deploy(load_dag, conf: dict):
    dag = load_dag("deploy_model")
    run = dag.test(run_conf=conf)
    return run, {ti.task_id: str(ti.state) for ti in run.get_task_instances()}


def test_deploy_model_rolls_out_progressively_and_switches(
    load_dag, airflow_db, deploy_service, versions, deploy_settings
):
    """dag.test(): Bento, smoke test, shadow, canary 50% then 100%, switch; under load, nothing fails."""
    from jobs.release import audit
    from jobs.release.rollout import read_state

    old, new = versions["champion"], versions["similar"]
    _set_state(deploy_settings, old)
    _wait_route(deploy_service, {"champion": old, "candidate": None})
    with Load(deploy_service.url, clients=4, rate=10) as load:
        run, states = _run_deploy(
            load_dag, {"version": new, "strategy": "progressive", "canary_shares": [0.5, 1.0], "observe_seconds": 4}
        )
    assert str(run.state) == "success", states
    assert states == {
        "plan": "success",
        "route": "success",
        "build_bento": "success",
        "smoke_test": "success",
        "shadow": "success",
        "canary": "success",
        "switch": "success",
        "rollback": "skipped",
        "manual_rollback": "skipped",
        "outcome": "success",
    }
    from jobs.platform.tracking import mlflow_client

    state = read_state(mlflow_client(deploy_settings), deploy_settings.mlflow.model_name)
    assert (state.champion, state.candidate, state.mode) == (new, None, None)
    assert all(r[2] == 200 for r in load.results) and {r[3] for r in load.results} <= {old, new}
    steps = [(r["action"], r["decision"]) for r in audit.read(new, settings=deploy_settings)]
    for step in ("deploy.build", "deploy.smoke_test", "deploy.shadow", "deploy.canary_0.5", "deploy.canary_1"):
        assert (step, "passed") in steps, steps
    assert ("deploy.switch", "done") in steps and ("promote", "done") in steps
    shadow = next(r for r in audit.read(new, settings=deploy_settings) if r["action"] == "deploy.shadow")
    assert shadow["details"]["transactions"] >= 30 and shadow["details"]["rank_correlation"] > 0.5
    _wait_route(deploy_service, {"champion": new, "candidate": None})

    # the UI's rollback strategy: champion := previous champion, in the running service too
    run, states = _run_deploy(load_dag, {"strategy": "rollback"})
    assert str(run.state) == "success" and states["manual_rollback"] == "success", states
    assert states["build_bento"] == "skipped"
    _wait_route(deploy_service, {"champion": old, "candidate": None})


def test_deploy_model_rolls_back_automatically_when_the_shadow_disagrees(
    load_dag, airflow_db, deploy_service, versions, deploy_settings
):
    """A candidate that ranks transactions the other way passes the smoke test, fails the shadow comparison and
    is rolled back: it never answered a request, the champion is untouched, the reason is in the audit log."""
    from jobs.platform.tracking import Tag, mlflow_client
    from jobs.release import audit
    from jobs.release.rollout import read_state

    old, bad = versions["champion"], versions["inverse"]
    _set_state(deploy_settings, old)
    _wait_route(deploy_service, {"champion": old, "candidate": None})
    with Load(deploy_service.url, clients=4, rate=10) as load:
        run, states = _run_deploy(load_dag, {"version": bad, "strategy": "progressive", "observe_seconds": 4})
    assert str(run.state) == "failed", states
    assert (states["smoke_test"], states["shadow"], states["canary"], states["switch"], states["rollback"]) == (
        "success",
        "failed",
        "upstream_failed",
        "upstream_failed",
        "success",
    ), states
    assert states["outcome"] == "failed"  # the run is red: the version was not deployed
    client = mlflow_client(deploy_settings)
    state = read_state(client, deploy_settings.mlflow.model_name)
    assert (state.champion, state.candidate, state.mode) == (old, None, None)
    assert {r[3] for r in load.results} == {old} and all(r[2] == 200 for r in load.results)
    rows = audit.read(bad, settings=deploy_settings)
    rollback = next(r for r in rows if r["action"] == "deploy.rollback")
    assert rollback["decision"] == "rolled_back" and "rank correlation" in rollback["reason"], rollback
    reason = client.get_model_version(deploy_settings.mlflow.model_name, bad).tags[Tag.DEPLOY_ROLLBACK_REASON]
    assert "rank correlation" in reason
    print("rolled back:", json.dumps([{k: r[k] for k in ("action", "decision", "reason", "details")} for r in rows]))

    # a version of another feature set fails the smoke test before any Bento is started
    run, states = _run_deploy(load_dag, {"version": versions["other_features"], "strategy": "progressive"})
    assert str(run.state) == "failed" and states["smoke_test"] == "failed" and states["rollback"] == "success"
    rows = audit.read(versions["other_features"], settings=deploy_settings)
    assert any(r["action"] == "deploy.smoke_test" and "feature set v0-0000" in r["reason"] for r in rows), rows
    reason = client.get_model_version(deploy_settings.mlflow.model_name, versions["other_features"]).tags
    assert "feature set v0-0000" in reason[Tag.DEPLOY_ROLLBACK_REASON]
    assert read_state(client, deploy_settings.mlflow.model_name).champion == old
