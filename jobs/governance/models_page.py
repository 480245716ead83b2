"""The Models page of the Airflow UI (``plugins/models_page.py`` serves it): data and HTML.

    python -m jobs.governance models      # the page's data as JSON

:func:`models_overview` gathers, for the registered model, every version with its aliases, gate
decision and reasons, who approved or rejected it and when, its test metrics and links (MLflow run,
evaluation report, model card); the champion's monitoring status (the last drift and performance
checks, the open alerts, a link to the latest report); and the deployment history from
``governance.audit_log``. :func:`render_html` turns it into one plain server-rendered page. The
plugin only wires these two into Airflow's API server behind its login.
"""

from __future__ import annotations

import html
from datetime import timedelta

from jobs.config import Settings, get_settings
from jobs.governance.explain import decisions
from jobs.monitoring.checks import CHECKS, read_checks, worst
from jobs.platform import delta
from jobs.platform.tracking import Alias, Metric, Tag, mlflow_artifact_url, mlflow_client, mlflow_links

DEPLOY_ACTIONS = ("deploy", "promote", "rollback", "approve")


def _versions(settings: Settings, client) -> list[dict]:
    name = settings.mlflow.model_name
    try:
        aliases_by_version: dict[str, list[str]] = {}
        for alias, version in (client.get_registered_model(name).aliases or {}).items():
            aliases_by_version.setdefault(str(version), []).append(str(alias))
        versions = client.search_model_versions(f"name = '{name}'")
    except Exception:  # no registered model yet
        return []
    experiment = client.get_experiment_by_name(name)  # training logs every version's run there
    experiment_id = experiment.experiment_id if experiment else None
    out = []
    for mv in sorted(versions, key=lambda v: -int(v.version)):
        t = mv.tags
        out.append(
            {
                "version": str(mv.version),
                "aliases": sorted(aliases_by_version.get(str(mv.version), [])),
                "created": mv.creation_timestamp,
                **decisions(t),
                "compared_with": t.get(Tag.GATE_COMPARED_WITH),
                "metrics": {
                    "auc": t.get(Tag.metric(Metric.TEST_AUC)),
                    "average_precision": t.get(Tag.metric(Metric.TEST_AP)),
                    "card_precision_at_100": t.get(Tag.metric(Metric.test_card_precision(100))),
                },
                "test_window": t.get(Tag.WINDOW_TEST),
                "links": mlflow_links(settings, mv.run_id, experiment_id),
                "run_id": mv.run_id,
            }
        )
    return out


def champion_monitoring(settings: Settings, champion: dict | None, days: int = 7) -> dict:
    """The champion's last drift and performance checks, the open alerts (of the last ``days``
    checked days), and a link to the latest monitoring report logged to its run."""
    from jobs.monitoring.alerts import read_alerts

    checked_days = delta.read(settings, CHECKS, ["check_date"]).column("check_date").to_pylist()
    if champion is None or not checked_days:
        return {"last_day": None, "checks": [], "alerts": [], "report": None}
    last_day = max(checked_days)
    day_rows = read_checks(settings, last_day)
    summary = []
    for check in ("data_drift", "prediction_drift", "performance", "staleness", "data_quality", "health"):
        rows = day_rows[day_rows["check_name"] == check]
        if rows.empty:
            continue
        status = worst(rows["status"])
        flagged = rows[rows["status"].isin(["alert", "warn"])]
        detail = "; ".join(
            f"{r.source}/{r.subject} {r.metric}={r.value:.3g}"
            if r.value == r.value and r.value is not None
            else r.metric
            for r in flagged.head(4).itertuples()
        )
        summary.append({"check": check, "status": status, "detail": detail})
    alerts = read_alerts(settings)
    alerts = alerts[alerts["alert_date"] >= last_day - timedelta(days=days - 1)]
    return {
        "last_day": str(last_day),
        "checks": summary,
        "alerts": [
            {
                k: (str(v) if k == "alert_date" else v)
                for k, v in a.items()
                if k in ("alert_date", "check_name", "source", "subject", "metric", "detail")
            }
            for a in alerts.sort_values("alert_date", ascending=False).head(20).to_dict("records")
        ],
        "report": mlflow_artifact_url(settings, champion["run_id"], f"monitoring/{last_day}/index.html"),
    }


def models_overview(settings: Settings | None = None) -> dict:
    """Everything the Models page shows, as plain data (also ``python -m jobs.governance models``)."""
    from jobs.release import audit

    settings = settings or get_settings()
    client = mlflow_client(settings)
    versions = _versions(settings, client)
    champion = next((v for v in versions if Alias.CHAMPION in v["aliases"]), None)
    deployments = [
        {k: r[k] for k in ("at", "action", "version", "decision", "actor", "strategy", "reason")}
        for r in audit.read(settings=settings)
        if r["action"].split(".")[0] in DEPLOY_ACTIONS
    ][::-1][:30]
    return {
        "model": settings.mlflow.model_name,
        "champion": champion["version"] if champion else None,
        "versions": versions,
        "monitoring": champion_monitoring(settings, champion),
        "deployments": deployments,
        "mlflow_ui": settings.mlflow.ui_url,
    }


def _e(x) -> str:
    return "" if x is None else html.escape(str(x))


def _fmt(x) -> str:
    try:
        return f"{float(x):.4f}"
    except (TypeError, ValueError):
        return "–"


def render_html(data: dict, user: str | None = None) -> str:
    """The page: plain HTML, no script; every value escaped."""
    rows = []
    for v in data["versions"]:
        who = (
            f"approved by {_e(v['approved_by'])} at {_e(v['approved_at'])}"
            if v["approved_by"]
            else (f"rejected by {_e(v['rejected_by'])} at {_e(v['rejected_at'])}" if v["rejected_by"] else "–")
        )
        links = " · ".join(
            f"<a href='{_e(url)}' target='_blank' rel='noopener'>{label}</a>"
            for label, url in (
                ("run", v["links"]["run"]),
                ("evaluation", v["links"]["evaluation"]),
                ("model card", v["links"]["model_card"]),
            )
        )
        rows.append(
            f"<tr class='version' data-version='{_e(v['version'])}'><td>v{_e(v['version'])}</td>"
            f"<td>{_e(', '.join(v['aliases'])) or '–'}</td>"
            f"<td class='gate-{_e(v['gate'])}'>{_e(v['gate']) or '–'}</td>"
            f"<td class='reasons'>{'<br>'.join(_e(r) for r in v['gate_reasons']) or '–'}</td>"
            f"<td>{who}</td><td>{_fmt(v['metrics']['auc'])}</td><td>{_fmt(v['metrics']['average_precision'])}</td>"
            f"<td>{_fmt(v['metrics']['card_precision_at_100'])}</td><td>{_e(v['test_window'])}</td><td>{links}</td></tr>"
        )
    m = data["monitoring"]
    checks = "".join(
        f"<tr><td>{_e(c['check'])}</td><td class='status-{_e(c['status'])}'>{_e(c['status'])}</td><td>{_e(c['detail'])}</td></tr>"
        for c in m["checks"]
    )
    alerts = "".join(
        f"<tr><td>{_e(a['alert_date'])}</td><td>{_e(a['check_name'])}</td><td>{_e(a['source'])}</td>"
        f"<td>{_e(a['subject'])}</td><td>{_e(a['metric'])}</td><td>{_e(a['detail'])}</td></tr>"
        for a in m["alerts"]
    )
    deploys = "".join(
        f"<tr><td>{_e(d['at'])}</td><td>{_e(d['action'])}</td><td>v{_e(d['version'])}</td><td>{_e(d['decision'])}</td>"
        f"<td>{_e(d['actor'])}</td><td>{_e(d['strategy'])}</td><td>{_e(d['reason'])}</td></tr>"
        for d in data["deployments"]
    )
    report = (
        f"<a href='{_e(m['report'])}' target='_blank' rel='noopener'>latest monitoring report ({_e(m['last_day'])})</a>"
        if m["report"]
        else "no monitoring report yet"
    )
    champion = f"v{_e(data['champion'])}" if data["champion"] else "none yet"
    return f"""<!doctype html><html><head><meta charset='utf-8'><title>Models: {_e(data["model"])}</title>
<style>body{{font-family:sans-serif;margin:1.5em;font-size:14px}}table{{border-collapse:collapse;margin:.5em 0 1.5em}}
td,th{{border:1px solid #ccc;padding:3px 8px;vertical-align:top;text-align:left}}.gate-passed,.status-ok{{color:#17803d}}
.gate-rejected,.status-alert{{color:#b42318;font-weight:bold}}.status-warn{{color:#b54708}}.reasons{{max-width:28em}}</style></head><body>
<h1>Models: {_e(data["model"])}</h1>
<p>Champion: <strong id='champion'>{champion}</strong>{f" · signed in as {_e(user)}" if user else ""} ·
MLflow UI: <a href='{_e(data["mlflow_ui"])}' target='_blank' rel='noopener'>{_e(data["mlflow_ui"])}</a></p>
<h2>Versions</h2>
<table id='versions'><tr><th>version</th><th>aliases</th><th>gate</th><th>gate reasons</th><th>approval</th><th>test AUC</th>
<th>test AP</th><th>test CP@100</th><th>test window</th><th>links</th></tr>{"".join(rows) or "<tr><td colspan='10'>no registered version yet</td></tr>"}</table>
<h2>Monitoring of the champion</h2>
<p id='monitoring-day'>Last checked day: {_e(m["last_day"]) or "never"} · {report}</p>
<table id='checks'><tr><th>check</th><th>status</th><th>what was flagged</th></tr>{checks}</table>
<h3>Open alerts (last 7 checked days)</h3>
<table id='alerts'><tr><th>day</th><th>check</th><th>source</th><th>subject</th><th>metric</th><th>detail</th></tr>{alerts or "<tr><td colspan='6'>none</td></tr>"}</table>
<h2>Deployment history</h2>
<table id='deployments'><tr><th>at</th><th>action</th><th>version</th><th>decision</th><th>actor</th><th>strategy</th><th>reason</th></tr>{deploys or "<tr><td colspan='7'>none</td></tr>"}</table>
</body></html>"""
