"""The operator's and the model owner's Airflow, in a real headless Chromium (Playwright driving
Debian's ``chromium``; no browser is downloaded).

A real ``airflow api-server`` (a subprocess, this session's metadata DB, the repository's users)
serves the UI. The tests log in through the login form, trigger ``data_pipeline`` from the trigger
form, answer a pending promotion approval of a real ``train_model`` run (``dag.test()`` parks it in
AWAITING_INPUT until the UI answers), and read the Models page. Screenshots of every step go to
``var/test-output/browser/`` (git-ignored).
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from datetime import UTC, datetime
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DAGS_DIR = ROOT / "dags"
SHOTS = ROOT / "var" / "test-output" / "browser"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
LOGIN_TIMEOUT_MS = 60_000

# A tiny history: the first-model floors are lowered (as in test_train_model_e2e), the checks still run.
TRAINING_ENV = {
    "PIPELINE_LABEL_MATURITY_DAYS": "2",
    "PIPELINE_AUTO_APPROVE": "false",
    "PIPELINE_MIN_AUC": "0.6",
    "PIPELINE_MIN_AP": "0.2",
    "PIPELINE_MIN_NET_SAVINGS": "-1e9",
    "PIPELINE_BASELINE_CP_MARGIN": "-1",
    "PIPELINE_RAY_NUM_CPUS": "2",
}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def ui(airflow_db, feature_history, tmp_path_factory):
    """The api-server on a free loopback port, with a registry of its own (the first model this
    module trains is the champion the approval makes) and the DAGs serialized in the metadata DB."""
    from airflow.configuration import conf
    from airflow.dag_processing.bundles.manager import DagBundlesManager
    from airflow.dag_processing.dagbag import BundleDagBag, sync_bag_to_db

    from jobs.config import get_settings

    assert CHROMIUM, "chromium is missing: `apt-get install chromium` (.ci/run installs it)"
    mlflow_uri = f"sqlite:///{tmp_path_factory.mktemp('ui-mlflow') / 'mlflow.db'}"
    saved = {k: os.environ.get(k) for k in [*TRAINING_ENV, "MLFLOW_TRACKING_URI"]}
    os.environ.update({**TRAINING_ENV, "MLFLOW_TRACKING_URI": mlflow_uri})
    get_settings.cache_clear()
    DagBundlesManager().sync_bundles_to_db()
    bundle = next(iter(DagBundlesManager().get_all_dag_bundles()))
    sync_bag_to_db(
        BundleDagBag(dag_folder=str(DAGS_DIR), bundle_path=DAGS_DIR, bundle_name=bundle.name), bundle.name, None
    )
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    env = {
        **os.environ,
        "AIRFLOW__API__PORT": str(port),
        "AIRFLOW__API__HOST": "127.0.0.1",
        "AIRFLOW__API__BASE_URL": base,
    }
    env.setdefault("AIRFLOW__API_AUTH__JWT_SECRET", "browser-tests-" + "x" * 64)
    log = open(tmp_path_factory.mktemp("api-server") / "api-server.log", "w")  # noqa: SIM115 (closed below)
    server = subprocess.Popen(
        [str(Path(sys.executable).parent / "airflow"), "api-server", "--port", str(port)],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 180
        while True:
            try:
                urllib.request.urlopen(f"{base}/api/v2/monitor/health", timeout=2)
                break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"the api-server did not start; see {log.name}") from None
                time.sleep(1)
        passwords = json.loads(Path(conf.get("core", "simple_auth_manager_passwords_file")).read_text())
        SHOTS.mkdir(parents=True, exist_ok=True)
        yield {"base": base, "passwords": passwords, "settings": get_settings()}
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
        log.close()
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        get_settings.cache_clear()


class Browser:
    """One headless Chromium session, logged in as ``user`` through the login form."""

    def __init__(self, ui: dict, user: str):
        from playwright.sync_api import sync_playwright

        self.base = ui["base"]
        self._pw = sync_playwright().start()
        self._browser = self._pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
        self.page = self._browser.new_page(viewport={"width": 1400, "height": 900})
        self.page.set_default_timeout(LOGIN_TIMEOUT_MS)
        self.page.goto(self.base + "/")
        self.page.locator("input[name=username]").fill(user)
        self.page.locator("input[name=password]").fill(ui["passwords"][user])
        self.page.get_by_role("button", name="Sign in").click()
        self.page.wait_for_url(self.base + "/")

    def shot(self, name: str) -> Path:
        path = SHOTS / f"{name}.png"
        self.page.screenshot(path=str(path), full_page=True)
        return path

    def close(self) -> None:
        self._browser.close()
        self._pw.stop()


def _api(ui: dict, method: str, path: str, user: str = "admin", body: dict | None = None):
    token_request = urllib.request.Request(
        ui["base"] + "/auth/token",
        data=json.dumps({"username": user, "password": ui["passwords"][user]}).encode(),
        headers={"content-type": "application/json"},
    )
    token = json.load(urllib.request.urlopen(token_request))["access_token"]
    request = urllib.request.Request(
        ui["base"] + path,
        method=method,
        data=None if body is None else json.dumps(body).encode(),
        headers={"content-type": "application/json", "Authorization": f"Bearer {token}"},
    )
    with urllib.request.urlopen(request) as response:
        return json.loads(response.read() or b"null")


def test_an_operator_triggers_data_pipeline_for_a_date_from_the_trigger_form(ui):
    b = Browser(ui, "operator")
    try:
        b.page.goto(ui["base"] + "/dags/data_pipeline")
        b.page.get_by_role("button", name="Trigger").click()
        dialog = b.page.get_by_role("dialog")
        dialog.get_by_test_id("datetime-input").click()
        picker = b.page.locator("[data-scope=popover][data-part=content][data-state=open]")
        picker.get_by_placeholder("YYYY/MM/DD").fill("2025/06/02")
        picker.get_by_placeholder("HH:mm").fill("00:00")
        dialog.get_by_text("Trigger Dag - data_pipeline").click()  # closes the date picker
        assert dialog.get_by_test_id("datetime-input").inner_text() == "Jun 02, 2025 00:00"
        dialog.get_by_text("Unpause data_pipeline on trigger").click()  # the test has no scheduler
        b.shot("01-operator-trigger-form")
        dialog.get_by_test_id("trigger-dag-submit").click()
        b.page.wait_for_url("**/dags/data_pipeline/runs/**")
        b.page.get_by_text("Dag run has been successfully triggered").wait_for()
        b.shot("02-operator-run-triggered")
    finally:
        b.close()
    runs = _api(ui, "GET", "/api/v2/dags/data_pipeline/dagRuns")["dag_runs"]
    mine = [r for r in runs if r["logical_date"] == "2025-06-02T00:00:00Z"]
    assert [(r["triggering_user_name"], r["run_type"]) for r in mine] == [("operator", "manual")]
    _api(ui, "DELETE", f"/api/v2/dags/data_pipeline/dagRuns/{mine[0]['dag_run_id']}")  # no scheduler will run it


def _approve_in_the_browser(ui: dict, result: dict, timeout_s: float = 900) -> None:
    """The model owner: waits for the pending approval, opens it, reads it, approves."""
    try:
        from airflow.models.taskinstance import TaskInstance
        from airflow.utils.session import create_session
        from airflow.utils.state import TaskInstanceState
        from sqlalchemy import select

        deadline = time.monotonic() + timeout_s
        run_id = None
        while run_id is None and time.monotonic() < deadline:
            with create_session() as session:
                ti = session.scalars(
                    select(TaskInstance).where(
                        TaskInstance.dag_id == "train_model",
                        TaskInstance.task_id == "approve_promotion",
                        TaskInstance.state == TaskInstanceState.AWAITING_INPUT,
                    )
                ).first()
                run_id = ti.run_id if ti is not None else None
            time.sleep(0.5)
        if run_id is None:
            result["error"] = "approve_promotion never waited for input"
            return
        b = Browser(ui, "model_owner")
        try:
            b.page.goto(ui["base"] + "/required_actions")
            b.page.get_by_text("Promote fraud_detector version").first.wait_for()
            b.shot("03-model-owner-required-actions")
            b.page.goto(f"{ui['base']}/dags/train_model/runs/{run_id}/tasks/approve_promotion/required_actions")
            b.page.get_by_text("Card Precision@100").first.wait_for()
            result["request_text"] = b.page.locator("body").inner_text()
            b.shot("04-model-owner-approval-request")
            b.page.get_by_role("button", name="Approve").click()
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                detail = _api(
                    ui,
                    "GET",
                    f"/api/v2/dags/train_model/dagRuns/{run_id}/taskInstances/approve_promotion/-1/hitlDetails",
                )
                if detail["response_received"]:
                    result["detail"] = detail
                    break
                time.sleep(0.5)
            b.shot("05-model-owner-approved")
        finally:
            b.close()
    except Exception as exc:  # reported to the test, which fails with it
        result["error"] = repr(exc)


def test_a_model_owner_approves_a_promotion_in_the_browser_and_the_models_page_shows_the_champion(
    ui, feature_history, load_dag
):
    from jobs.monitoring.checks import run_checks
    from jobs.platform.tracking import mlflow_client
    from jobs.scoring.batch import score_day

    s = ui["settings"]
    days = feature_history
    conf = {"last_test_day": str(days[7]), "train_days": 2, "gap_days": 2, "test_days": 1, "n_folds": 1, "n_trials": 1}
    answer: dict = {}
    person = threading.Thread(target=_approve_in_the_browser, args=(ui, answer), daemon=True)
    person.start()
    run = load_dag("train_model").test(logical_date=datetime(2025, 3, 21, tzinfo=UTC), run_conf=conf)
    person.join(timeout=180)
    assert "error" not in answer, answer
    states = {ti.task_id: str(ti.state) for ti in run.get_task_instances()}
    assert run.state == "success" and states["approve_promotion"] == "success" and states["promote"] == "success"
    assert answer["detail"]["chosen_options"] == ["Approve"]
    assert answer["detail"]["responded_by_user"]["name"] == "model_owner"
    assert "AUC" in answer["request_text"] and "baseline (logistic regression)" in answer["request_text"]
    client = mlflow_client(s)
    champion = client.get_model_version_by_alias(s.mlflow.model_name, "champion")
    assert champion.tags["approved_by"] == "model_owner"

    # the champion scores the history's last day and is monitored: the Models page shows it all
    score_day(days[-1], s)
    run_checks(days[-1], ["data_drift", "prediction_drift", "staleness"], s)
    b = Browser(ui, "viewer")
    try:
        b.page.get_by_role("link", name="Models").click()
        b.page.wait_for_url("**/plugin/models")
        frame = b.page.frame_locator("iframe")
        frame.locator("#champion").wait_for()
        b.shot("06-viewer-models-page")
        assert frame.locator("#champion").inner_text() == f"v{champion.version}"
        row = frame.locator(f"tr.version[data-version='{champion.version}']")
        assert "champion" in row.inner_text() and "approved by model_owner" in row.inner_text()
        assert "every check passed" in row.locator("td.reasons").inner_text()
        assert frame.locator("#monitoring-day").inner_text().startswith(f"Last checked day: {days[-1]}")
        checks = frame.locator("#checks").inner_text()
        assert "data_drift" in checks and "staleness" in checks
    finally:
        b.close()
