"""Who may do what, through Airflow's REST API (the real app and auth manager, with airflow.cfg's users).

viewer reads and cannot trigger or pause; operator triggers and pauses; anonymous requests are
refused. Answering a promotion approval (only model_owner, not operator) is tested on a real
pending approval in test_train_model_e2e.py.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

DAGS_DIR = Path(__file__).resolve().parents[2] / "dags"


@pytest.fixture(scope="module")
def api(airflow_db):
    """A client of the api-server app, with the DAGs serialized in its metadata DB (as the
    dag-processor would have them) and a login per configured user."""
    from airflow.api_fastapi.app import create_app
    from airflow.configuration import conf
    from airflow.dag_processing.bundles.manager import DagBundlesManager
    from airflow.dag_processing.dagbag import BundleDagBag, sync_bag_to_db
    from fastapi.testclient import TestClient

    DagBundlesManager().sync_bundles_to_db()
    bundle = next(iter(DagBundlesManager().get_all_dag_bundles()))
    sync_bag_to_db(
        BundleDagBag(dag_folder=str(DAGS_DIR), bundle_path=DAGS_DIR, bundle_name=bundle.name), bundle.name, None
    )
    with TestClient(create_app("core"), base_url="http://localhost") as client:
        passwords = json.loads(Path(conf.get("core", "simple_auth_manager_passwords_file")).read_text())

        def headers(user: str | None) -> dict:
            if user is None:
                return {}
            response = client.post("/auth/token", json={"username": user, "password": passwords[user]})
            assert response.status_code in (200, 201), response.text
            return {"Authorization": f"Bearer {response.json()['access_token']}"}

        yield client, headers


def test_the_configured_users_and_roles():
    from airflow.configuration import conf

    users = dict(u.split(":") for u in conf.get("core", "simple_auth_manager_users").split(","))
    assert users == {"admin": "admin", "operator": "user", "viewer": "viewer", "model_owner": "user"}


def test_viewer_reads_operator_triggers_and_pauses_anonymous_is_refused(api):
    client, headers = api
    trigger = "/api/v2/dags/data_pipeline/dagRuns"
    body = {"logical_date": "2025-06-01T00:00:00Z", "conf": {}}
    seen = {}
    for user in (None, "viewer", "operator"):
        h = headers(user)
        seen[user] = {
            "list": client.get("/api/v2/dags", headers=h).status_code,
            "trigger": client.post(trigger, json=body, headers=h).status_code,
            "pause": client.patch("/api/v2/dags/data_pipeline", json={"is_paused": True}, headers=h).status_code,
        }
    assert seen == {
        None: {"list": 401, "trigger": 401, "pause": 401},
        "viewer": {"list": 200, "trigger": 403, "pause": 403},
        "operator": {"list": 200, "trigger": 200, "pause": 200},
    }
    # the operator's run exists, triggered by them; clean it away so other tests' runs are alone
    runs = client.get(trigger, headers=headers("viewer")).json()["dag_runs"]
    mine = [r for r in runs if r["logical_date"].startswith("2025-06-01")]
    assert len(mine) == 1 and mine[0]["triggering_user_name"] == "operator"
    assert client.delete(f"{trigger}/{mine[0]['dag_run_id']}", headers=headers("operator")).status_code == 204
