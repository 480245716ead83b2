"""Safe deployment of a model version: build, smoke test, shadow, phased canary, switch, automatic rollback.

The stages of the ``deploy_model`` DAG, one function each, runnable without Airflow. They act on the
running service only through the registry (:mod:`jobs.release.rollout`: the service polls it) and
judge it only through its prediction log (:func:`jobs.scoring.prediction_log.read_recent`):

1. :func:`plan`: which version, which strategy, which canary shares and windows;
2. :func:`build_bento`: the Bento of the service code for this version (``bentoml build``, into
   ``PIPELINE_DATA_DIR/bentoml``);
3. :func:`smoke_test`: the version loads and scores the golden rows in-process, then the Bento is
   started on a spare port, pinned to the version, read-only (it records nothing in the online
   store); valid and invalid golden requests, a latency budget; stopped;
4. :func:`observe` in ``shadow``: every request is scored by both, the champion answers; compared on
   the same transactions (:func:`compare_shadow`);
5. :func:`observe` in ``canary`` for each share: the candidate answers a stable share of cards;
   compared with the champion's cards (:func:`compare_canary`);
6. :func:`switch`: the candidate becomes the champion (``previous_champion`` kept for a rollback).

A failed stage raises :class:`DeploymentFailed` with the reason; :func:`abort` then ends the rollout
(the champion answers everything again at the next poll) and records why. Every decision, with its
numbers, is a row of ``governance.audit_log``.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np

from jobs.config import REPO_ROOT, STRATEGIES, DeploySettings, Settings, get_settings, parse_shares
from jobs.platform.tracking import Alias, Tag, mlflow_client
from jobs.release import audit, rollout

log = logging.getLogger(__name__)

BENTO_NAME = "fraud_scoring"
ROLLBACK = "rollback"  # the strategy a user picks in the UI to roll the champion back


class DeploymentFailed(RuntimeError):
    """A stage refused the version; the message is the reason recorded in the audit log."""


# -- plan -------------------------------------------------------------------------------------------------
def plan(
    version: str | None = None,
    strategy: str | None = None,
    canary_shares: list[float] | str | None = None,
    observe_s: int | None = None,
    actor: str = "deploy_model",
    settings: Settings | None = None,
) -> dict:
    """What to deploy and how. Without ``version``: the registry's ``candidate``.

    No champion yet, or ``version`` already the champion: ``direct`` (smoke test, then nothing to
    switch): there is no live model to shadow or canary against.
    """
    settings = settings or get_settings()
    cfg = settings.deploy
    strategy = strategy or cfg.strategy
    if strategy not in (*STRATEGIES, ROLLBACK):
        raise DeploymentFailed(f"strategy {strategy!r}: expected one of {', '.join((*STRATEGIES, ROLLBACK))}")
    client = mlflow_client(settings)
    name = settings.mlflow.model_name
    state = rollout.read_state(client, name)
    if strategy == ROLLBACK:
        return {"strategy": ROLLBACK, "version": state.champion, "champion": state.champion, "actor": actor}
    version = str(version or state.candidate or "")
    if not version:
        raise DeploymentFailed(
            f"nothing to deploy: no version given and no {Alias.CANDIDATE} for {name} (approve one in train_model)"
        )
    client.get_model_version(name, version)  # raises if there is no such version
    shares = parse_shares(",".join(map(str, canary_shares))) if isinstance(canary_shares, list) else None
    shares = shares or (parse_shares(canary_shares) if canary_shares else cfg.shares)
    note = None
    if state.champion in (None, version):
        note = "no champion yet" if state.champion is None else "already the champion"
        strategy = "direct"
    else:
        from jobs.release.registry import alias_version, check_promotable

        try:  # gate passed, not rejected, gated against today's champion: else it may not answer anyone
            check_promotable(client, name, version, alias_version(client, name, Alias.CHAMPION))
        except ValueError as exc:
            raise DeploymentFailed(str(exc)) from None
    return {
        "version": version,
        "champion": state.champion,
        "strategy": strategy,
        "canary_shares": shares,
        "observe_s": int(observe_s or cfg.observe_s),
        "actor": actor,
        "note": note,
    }


def _record(p: dict, step: str, decision: str, reason: str | None = None, details: dict | None = None, settings=None):
    return audit.record(
        f"deploy.{step}",
        decision,
        p["actor"],
        p.get("version"),
        strategy=p.get("strategy"),
        reason=reason,
        details=details,
        settings=settings,
    )


def _stage(step: str):
    """Record a stage's failure in the audit log, then re-raise: ``failed`` (the stage refused the version)
    or ``error`` (something else broke; the task's retry may pass, and its attempt is recorded too)."""

    def wrap(fn):
        def run(p: dict, *args, settings: Settings | None = None, **kwargs):
            settings = settings or get_settings()
            try:
                return fn(p, *args, settings=settings, **kwargs)
            except DeploymentFailed as exc:
                _record(p, step, "failed", str(exc), getattr(exc, "details", None), settings)
                raise
            except Exception as exc:
                _record(p, step, "error", f"{type(exc).__name__}: {exc}", settings=settings)
                raise

        run.__name__, run.__doc__, run.__wrapped__ = fn.__name__, fn.__doc__, fn
        return run

    return wrap


# -- build ------------------------------------------------------------------------------------------------
def bento_env(settings: Settings) -> dict:
    return {**os.environ, "BENTOML_HOME": str(settings.storage.bentoml_home), "BENTOML_DO_NOT_TRACK": "true"}


@_stage("build")
def build_bento(p: dict, settings: Settings | None = None) -> str:
    """``bentoml build`` of the service for ``p['version']``: tag ``fraud_scoring:v<version>-<commit>``.

    Idempotent: a Bento with that tag is reused. The requirements are ``uv.lock``'s (exported
    offline), as ``make bento`` does.
    """
    from jobs.training.context import git_commit

    commit = git_commit().replace("-dirty", "d")[:9] or "unknown"
    tag = f"{BENTO_NAME}:v{p['version']}-{commit}"
    home = settings.storage.bentoml_home
    if (home / "bentos" / BENTO_NAME / tag.split(":")[1] / "bento.yaml").exists():
        log.info("Bento %s already built", tag)
        return tag
    requirements = REPO_ROOT / "build" / "target" / "serving-requirements.txt"
    uv = shutil.which("uv")
    if uv:
        requirements.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            [uv, "export", "--frozen", "--no-dev", "--no-emit-project", "--no-hashes", "--no-header"]
            + ["--no-annotate", "--output-file", str(requirements), "-q"],
            cwd=REPO_ROOT,
            check=True,
            timeout=120,
        )
    elif not requirements.exists():
        raise DeploymentFailed(f"cannot build the Bento: no uv to export {requirements} (run `make bento` once)")
    started = time.perf_counter()
    bentoml = str(Path(sys.executable).with_name("bentoml"))
    out = subprocess.run(
        [bentoml, "build", "-f", "bentofile.yaml", "--version", tag.split(":")[1], "-o", "tag"]
        + ["--label", f"model_version={p['version']}", "--label", f"git_commit={commit}", "."],
        cwd=REPO_ROOT,
        env=bento_env(settings),
        capture_output=True,
        text=True,
        timeout=600,
    )
    if out.returncode != 0:
        raise DeploymentFailed(f"bentoml build failed: {(out.stderr or out.stdout).strip()[-500:]}")
    log.info("built Bento %s in %.1f s", tag, time.perf_counter() - started)
    _record(p, "build", "passed", details={"bento": tag}, settings=settings)
    return tag


# -- smoke test -----------------------------------------------------------------------------------------
def golden_requests(now: datetime | None = None) -> list[dict]:
    """Valid single-transaction requests of the smoke test (ids unique per call; never recorded)."""
    now = (now or datetime.now(UTC)).replace(microsecond=0)
    run = uuid.uuid4().hex[:8]
    amounts = (12.5, 57.25, 230.0, 1999.99)
    return [
        {
            "transaction_id": f"smoke-{run}-{i}",
            "tx_datetime": (now - timedelta(minutes=i)).strftime("%Y-%m-%d %H:%M:%S"),
            "customer_id": str(i),
            "terminal_id": str(10 * i),
            "tx_amount": amount,
        }
        for i, amount in enumerate(amounts)
    ]


def invalid_requests() -> list[tuple[str, dict, bytes, int]]:
    """(what, headers, body, expected status) the smoke test sends: each must be refused, none may be a 5xx."""
    good = golden_requests()[0]
    missing = {k: v for k, v in good.items() if k != "tx_amount"}
    import json

    return [
        ("a missing field", {"Content-Type": "application/json"}, json.dumps(missing).encode(), 400),
        ("NaN amount", {"Content-Type": "application/json"}, json.dumps(good).replace("12.5", "NaN").encode(), 400),
        ("not JSON", {"Content-Type": "application/json"}, b"{not json", 400),
        ("a text body", {"Content-Type": "text/plain"}, b"hello", 415),
    ]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@_stage("smoke_test")
def smoke_test(p: dict, bento: str, settings: Settings | None = None) -> dict:
    """The version in-process (loads, golden rows), then its Bento over HTTP; raises DeploymentFailed with the reason."""
    import requests

    from jobs.scoring.model import ModelNotServable, load_scoring_model

    version, cfg = p["version"], settings.deploy
    try:
        load_scoring_model(version=version, settings=settings)
    except ModelNotServable as exc:
        raise DeploymentFailed(f"version {version} cannot serve: {exc}") from None
    scratch = Path(tempfile.mkdtemp(prefix=f"smoke-v{version}-"))
    port = _free_port()
    env = {
        **bento_env(settings),
        "PIPELINE_DATA_DIR": str(settings.storage.data_dir),
        "PIPELINE_SERVING_VERSION": version,
        "PIPELINE_SERVING_RECORD": "false",
        "PIPELINE_SERVING_WORKERS": "1",
        "PIPELINE_SERVING_RELOAD_S": "0",
        "PIPELINE_PREDICTION_LOG_DIR": str(scratch / "prediction_log"),
        "PIPELINE_SERVING_PORT": str(port),
        "MLFLOW_TRACKING_URI": settings.mlflow_tracking_uri,
    }
    bentoml = str(Path(sys.executable).with_name("bentoml"))
    log_path = scratch / "service.log"
    started = time.monotonic()
    with log_path.open("w") as out:
        proc = subprocess.Popen(
            [bentoml, "serve", bento, "--host", "127.0.0.1", "--port", str(port)],
            cwd=scratch,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            preexec_fn=_die_with_parent,  # noqa: PLW1509 (a new session, and SIGTERM if the task dies)
        )
    url = f"http://127.0.0.1:{port}"
    http = requests.Session()
    try:
        _wait_ready(proc, url, cfg.smoke_timeout_s, log_path)
        ready_s = time.monotonic() - started
        for body in golden_requests():
            resp = http.post(f"{url}/score", json=body, timeout=30)
            answer = resp.json() if resp.status_code == 200 else None
            if answer is None or str(answer.get("model_version")) != version or not 0 <= answer["score"] <= 1:
                raise DeploymentFailed(f"golden request {body['transaction_id']}: {resp.status_code} {resp.text[:300]}")
        for what, headers, body, expected in invalid_requests():
            resp = http.post(f"{url}/score", data=body, headers=headers, timeout=30)
            if resp.status_code != expected:
                raise DeploymentFailed(f"{what}: answered {resp.status_code}, expected {expected}: {resp.text[:200]}")
        for body in golden_requests():  # warm-up: first calls pay for imports and caches
            http.post(f"{url}/score", json=body, timeout=30)
        latencies = []
        for body in golden_requests() * 25:
            t0 = time.perf_counter()
            http.post(f"{url}/score", json=body, timeout=30).raise_for_status()
            latencies.append((time.perf_counter() - t0) * 1000)
        p99 = float(np.percentile(latencies, 99))
        numbers = {"bento": bento, "ready_s": round(ready_s, 1), "requests": len(latencies), "p99_ms": round(p99, 1)}
        if p99 > cfg.smoke_p99_ms:
            err = DeploymentFailed(f"p99 latency {p99:.0f} ms is over the budget of {cfg.smoke_p99_ms:.0f} ms")
            err.details = numbers
            raise err
    finally:
        _stop(proc)
        shutil.rmtree(scratch, ignore_errors=True)
    log.info("smoke test of version %s passed: %s", version, numbers)
    _record(p, "smoke_test", "passed", details=numbers, settings=settings)
    return numbers


def _wait_ready(proc: subprocess.Popen, url: str, timeout: float, log_path: Path) -> None:
    import requests

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            tail = [line for line in log_path.read_text().splitlines() if line.strip()][-5:]
            raise DeploymentFailed(f"the Bento exited with {proc.returncode} before it was ready: " + " | ".join(tail))
        try:
            if requests.get(f"{url}/readyz", timeout=2).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.5)
    raise DeploymentFailed(f"the Bento was not ready within {timeout} s")


def _stop(proc: subprocess.Popen) -> None:
    """Stop the Bento's whole process group (the arbiter and its workers), even if the arbiter already died."""
    try:
        os.killpg(proc.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        proc.poll()  # reap the arbiter
        try:
            os.killpg(proc.pid, 0)  # raises once no process of the group is left
        except ProcessLookupError:
            return
        time.sleep(0.5)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(10)


def _die_with_parent() -> None:
    """In the Bento's process: receive SIGTERM when the task process dies (Linux), so a killed task leaks nothing."""
    os.setsid()
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except OSError:  # not Linux: the finally clause of the smoke test still stops it
        pass


# -- comparisons ----------------------------------------------------------------------------------------
@dataclass
class Comparison:
    passed: bool
    reasons: list[str] = field(default_factory=list)
    numbers: dict = field(default_factory=dict)

    def fail(self, reason: str) -> None:
        self.passed = False
        self.reasons.append(reason)


def _p99(values) -> float | None:
    return float(np.percentile(values, 99)) if len(values) else None


def compare_shadow(records: list[dict], candidate: str, cfg: DeploySettings) -> Comparison:
    """Candidate against champion on the same transactions: rank correlation, alert agreement, alert rate
    (failed when the ratio is over the threshold and McNemar's test on the discordant pairs says p < 0.01),
    KS, errors, p99."""
    from scipy import stats

    rows = [r for r in records if r.get("shadow_version") == candidate]
    scored = [r for r in rows if r.get("shadow_score") is not None]
    out = Comparison(True, numbers={"transactions": len(rows), "min_requests": cfg.min_requests})
    if len(rows) < cfg.min_requests:
        out.fail(f"only {len(rows)} transactions were shadowed, fewer than {cfg.min_requests}: no evidence")
        return out
    error_rate = 1 - len(scored) / len(rows)
    out.numbers["error_rate"] = round(error_rate, 6)
    if error_rate > cfg.max_error_rate:
        out.fail(f"the candidate failed on {error_rate:.2%} of transactions (max {cfg.max_error_rate:.2%})")
    if len(scored) >= 2:
        champion = np.array([r["score"] for r in scored])
        shadow = np.array([r["shadow_score"] for r in scored])
        rho = float(stats.spearmanr(champion, shadow).statistic) if np.ptp(champion) and np.ptp(shadow) else 0.0
        agreement = float(np.mean([r["alert"] == r["shadow_alert"] for r in scored]))
        ks = float(stats.ks_2samp(champion, shadow).statistic)
        p99 = _p99([r["shadow_ms"] for r in scored if r.get("shadow_ms") is not None])
        # paired alerts: only the discordant pairs tell the two apart (McNemar's exact test)
        only_champion = sum(r["alert"] and not r["shadow_alert"] for r in scored)
        only_candidate = sum(r["shadow_alert"] and not r["alert"] for r in scored)
        discordant = only_champion + only_candidate
        p_alerts = float(stats.binomtest(min(only_champion, only_candidate), discordant).pvalue) if discordant else 1.0
        ra, rb = float(np.mean([r["shadow_alert"] for r in scored])), float(np.mean([r["alert"] for r in scored]))
        ratio = (max(ra, rb) / min(ra, rb)) if min(ra, rb) > 0 else (float("inf") if max(ra, rb) > 0 else 1.0)
        out.numbers |= {
            "rank_correlation": round(rho, 4),
            "alert_agreement": round(agreement, 4),
            "champion_alert_rate": round(float(np.mean([r["alert"] for r in scored])), 5),
            "candidate_alert_rate": round(float(np.mean([r["shadow_alert"] for r in scored])), 5),
            "score_ks": round(ks, 4),
            "candidate_p99_ms": None if p99 is None else round(p99, 2),
            "alerts_only_champion": only_champion,
            "alerts_only_candidate": only_candidate,
            "alert_pvalue": float(f"{p_alerts:.3g}"),
        }
        if ratio > cfg.max_alert_rate_ratio and p_alerts < 0.01:
            out.fail(f"alert rate {ra:.4f} against the champion's {rb:.4f} on the same transactions (p={p_alerts:.2g})")
        if rho < cfg.min_rank_correlation:
            out.fail(f"rank correlation with the champion {rho:.3f} < {cfg.min_rank_correlation}")
        if agreement < cfg.min_alert_agreement:
            out.fail(f"alert agreement with the champion {agreement:.3f} < {cfg.min_alert_agreement}")
        if ks > cfg.max_score_ks:
            out.fail(f"score distribution shift (KS) {ks:.3f} > {cfg.max_score_ks}")
        if p99 is not None and p99 > cfg.max_p99_ms:
            out.fail(f"candidate p99 {p99:.1f} ms > {cfg.max_p99_ms} ms")
    return out


def compare_canary(records: list[dict], candidate: str, cfg: DeploySettings, alpha: float = 0.01) -> Comparison:
    """The candidate's cards against the champion's in the same window: errors, p99, and (when
    both groups are large enough) score distribution and alert rate, failed only when a difference is
    both large and significant (the cards are split at random, so the groups are comparable)."""
    from scipy import stats

    cand = [r for r in records if r.get("path") == "canary" and str(r["model_version"]) == candidate]
    fallback = [r for r in records if r.get("path") == "fallback"]
    champ = [r for r in records if r.get("path", "champion") == "champion"]
    n = len(cand) + len(fallback)
    out = Comparison(
        True,
        numbers={
            "candidate_transactions": n,
            "champion_transactions": len(champ),
            "candidate_cards": len({r["customer_id"] for r in cand}),
            "min_requests": cfg.min_requests,
        },
    )
    if n < cfg.min_requests:
        out.fail(f"the candidate answered only {n} transactions, fewer than {cfg.min_requests}: no evidence")
        return out
    error_rate = len(fallback) / n
    p99 = _p99([r["latency_ms"] for r in cand])
    out.numbers |= {"error_rate": round(error_rate, 6), "candidate_p99_ms": None if p99 is None else round(p99, 2)}
    if error_rate > cfg.max_error_rate:
        out.fail(f"the candidate failed on {error_rate:.2%} of its transactions (max {cfg.max_error_rate:.2%})")
    if p99 is not None and p99 > cfg.max_p99_ms:
        out.fail(f"candidate p99 {p99:.1f} ms > {cfg.max_p99_ms} ms")
    if len(champ) >= cfg.min_requests and len(cand) >= 2:
        a = np.array([r["score"] for r in cand])
        b = np.array([r["score"] for r in champ])
        ks = stats.ks_2samp(a, b)
        ra, rb = float(np.mean([r["alert"] for r in cand])), float(np.mean([r["alert"] for r in champ]))
        alerts = np.array([[sum(r["alert"] for r in cand), len(cand)], [sum(r["alert"] for r in champ), len(champ)]])
        pooled = alerts[:, 0].sum() / alerts[:, 1].sum()
        se = np.sqrt(pooled * (1 - pooled) * (1 / len(cand) + 1 / len(champ))) if 0 < pooled < 1 else 0.0
        p_alert = float(2 * stats.norm.sf(abs(ra - rb) / se)) if se else 1.0
        ratio = (max(ra, rb) / min(ra, rb)) if min(ra, rb) > 0 else (float("inf") if max(ra, rb) > 0 else 1.0)
        out.numbers |= {
            "score_ks": round(float(ks.statistic), 4),
            "score_ks_pvalue": float(f"{ks.pvalue:.3g}"),
            "candidate_alert_rate": round(ra, 5),
            "champion_alert_rate": round(rb, 5),
            "alert_rate_pvalue": float(f"{p_alert:.3g}"),
        }
        if ks.statistic > cfg.max_score_ks and ks.pvalue < alpha:
            out.fail(f"score distribution shift (KS) {ks.statistic:.3f} > {cfg.max_score_ks} (p={ks.pvalue:.2g})")
        if ratio > cfg.max_alert_rate_ratio and p_alert < alpha:
            out.fail(f"alert rate {ra:.4f} against the champion's {rb:.4f} (p={p_alert:.2g})")
    return out


# -- observe ----------------------------------------------------------------------------------------------
def observe(p: dict, mode: str, share: float = 0.0, settings: Settings | None = None) -> dict:
    """Put the candidate in ``mode`` (with ``share``), wait the observation window, compare; raise if it failed."""
    from jobs.scoring.prediction_log import read_recent

    settings = settings or get_settings()
    step = "shadow" if mode == rollout.SHADOW else f"canary_{share:g}"
    try:
        client = mlflow_client(settings)
        name, version = settings.mlflow.model_name, p["version"]
        started = datetime.fromisoformat(rollout.set_mode(client, name, version, mode, share, p["actor"]))
        window = p["observe_s"]
        log.info("%s: version %s for %s s (share %g)", step, version, window, share)
        deadline = time.monotonic() + window
        while (left := deadline - time.monotonic()) > 0:
            time.sleep(min(left, 30))
            if left > 30:
                seen = read_recent(started, settings)
                log.info("%s: %d transactions logged so far, %.0f s left", step, len(seen), deadline - time.monotonic())
        now = rollout.read_state(client, name)
        expected = (version, mode, share if mode == rollout.CANARY else 0.0, p["actor"])
        if (now.candidate, now.mode, now.share, now.by) != expected:
            raise DeploymentFailed(
                f"{step}: the rollout was changed during the window (now {now.describe()}): "
                "someone rolled back or started another rollout"
            )
        records = read_recent(started, settings)
        cfg = settings.deploy
        result = (
            compare_shadow(records, version, cfg) if mode == rollout.SHADOW else compare_canary(records, version, cfg)
        )
    except DeploymentFailed as exc:
        _record(p, step, "failed", str(exc), settings=settings)
        raise
    except Exception as exc:
        _record(p, step, "error", f"{type(exc).__name__}: {exc}", settings=settings)
        raise
    details = {**result.numbers, "share": share if mode == rollout.CANARY else None, "window_s": p["observe_s"]}
    log.info("%s of version %s: %s", step, version, details)
    if not result.passed:
        reason = f"{step}: " + "; ".join(result.reasons)
        _record(p, step, "failed", reason, details, settings)
        raise DeploymentFailed(reason)
    _record(p, step, "passed", details=details, settings=settings)
    return details


# -- switch, abort, rollback -------------------------------------------------------------------------------
@_stage("switch")
def switch(p: dict, settings: Settings | None = None) -> dict:
    """The candidate becomes the champion, the rollout ends; the service swaps at its next poll."""
    from jobs.release.registry import promote

    client = mlflow_client(settings)
    name, version = settings.mlflow.model_name, p["version"]
    state = rollout.read_state(client, name)
    if state.champion == version:
        out = {"champion": version, "previous": None, "note": p.get("note") or "already the champion"}
    else:
        mv = client.get_model_version(name, version)
        approver = mv.tags.get(Tag.APPROVED_BY) or p["actor"]
        promoted = promote(version, approver, mv.tags.get(Tag.APPROVED_AT), settings, actor=p["actor"])
        out = {"champion": version, "previous": promoted["previous"], "approved_by": approver}
    if state.candidate == version:
        rollout.clear(client, name)
    client.set_model_version_tag(name, version, Tag.DEPLOYED_AT, datetime.now(UTC).isoformat(timespec="seconds"))
    _record(p, "switch", "done", details=out, settings=settings)
    return out


def abort(p: dict, settings: Settings | None = None) -> dict:
    """After a failed stage: end the rollout (the champion answers everything) and record why on the version.

    The reason is the last failure this run recorded. A version that is already the champion (a first
    model, promoted at once) cannot be rolled back here: the row says so, and ``make rollback`` or a
    new training is the way out. After an infrastructure error before any traffic reached the
    candidate (the build, say), the ``candidate`` alias is kept so the deployment can be re-triggered.
    """
    settings = settings or get_settings()
    client = mlflow_client(settings)
    name, version = settings.mlflow.model_name, p.get("version")
    failures = [
        r
        for r in audit.read(version, settings=settings)
        if r["actor"] == p["actor"] and r["decision"] in ("failed", "error")
    ]
    last = failures[-1] if failures else None
    reason = (last or {}).get("reason") or "a stage failed (see the failed task's log)"
    state = rollout.read_state(client, name)
    if version is not None and state.champion == version:
        out = {
            "version": version,
            "champion": version,
            "reason": reason,
            "note": "already the champion: not rolled back",
        }
        _record(p, "rollback", "not_rolled_back", reason, out, settings)
        log.error("version %s failed a deployment stage but is the champion already: %s", version, reason)
        return out
    infrastructure = last is not None and last["decision"] == "error" and state.mode is None
    cleared = rollout.clear(client, name) if state.candidate == version and not infrastructure else None
    if version:
        client.set_model_version_tag(
            name, version, Tag.DEPLOY_ROLLED_BACK_AT, datetime.now(UTC).isoformat(timespec="seconds")
        )
        client.set_model_version_tag(name, version, Tag.DEPLOY_ROLLBACK_REASON, reason[:4000])
    out = {"version": version, "champion": state.champion, "candidate_cleared": cleared, "reason": reason}
    _record(p, "rollback", "rolled_back", reason, out, settings)
    log.warning("deployment of version %s rolled back: %s", version, reason)
    return out


def manual_rollback(p: dict, settings: Settings | None = None) -> dict:
    """The UI's ``rollback`` strategy: champion := previous champion (as ``python -m jobs.release.registry rollback``)."""
    from jobs.release.registry import rollback

    try:
        return rollback(p["actor"], settings)
    except ValueError as exc:
        raise DeploymentFailed(str(exc)) from None


__all__ = [
    "Comparison",
    "DeploymentFailed",
    "abort",
    "build_bento",
    "compare_canary",
    "compare_shadow",
    "manual_rollback",
    "observe",
    "plan",
    "smoke_test",
    "switch",
]
