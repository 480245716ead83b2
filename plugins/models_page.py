"""The Models page in the Airflow UI's navigation: a FastAPI app in the api-server, behind its login.

Thin by design: the data and the HTML come from :mod:`jobs.governance.models_page`. The page needs a
logged-in user (the UI's session cookie, or a Bearer token) with read access to DAGs: anonymous
requests get 401, as everywhere in the API.
"""

from __future__ import annotations

import asyncio

from airflow.api_fastapi.auth.managers.models.resource_details import DagAccessEntity
from airflow.api_fastapi.core_api.security import GetUserDep, requires_access_dag
from airflow.plugins_manager import AirflowPlugin
from fastapi import Depends, FastAPI
from fastapi.responses import HTMLResponse

app = FastAPI(title="Models", description="The registered fraud model: versions, gate, approvals, monitoring")


@app.get("/", response_class=HTMLResponse, dependencies=[Depends(requires_access_dag("GET", DagAccessEntity.RUN))])
async def models(user: GetUserDep) -> str:
    from jobs.governance.models_page import models_overview, render_html

    data = await asyncio.to_thread(models_overview)  # the registry and delta-rs are blocking
    return render_html(data, user.get_name())


class ModelsPagePlugin(AirflowPlugin):
    name = "models_page"
    fastapi_apps = [{"app": app, "url_prefix": "/models", "name": "Models"}]
    external_views = [{"name": "Models", "href": "models/", "destination": "nav", "url_route": "models"}]
