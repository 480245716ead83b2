"""Model registry: challenger, promotion gate, human approval record, champion, rollback, model card.

Aliases on the registered model (``PIPELINE_MODEL_NAME``) say what serves:

* ``challenger``: the latest trained version, evaluated, waiting for (or refused by) the gate;
* ``champion``: the version serving loads (``models:/<name>@champion``);
* ``previous_champion``: the champion it replaced, for a one-command rollback.

The gate (:func:`decide`) compares the challenger with the champion **on the challenger's test
window** (the champion is re-scored on the same rows): promote only if average precision improves
by ``PIPELINE_PROMOTION_MARGIN``, no slice with enough support loses more than
``PIPELINE_SLICE_MARGIN`` of AUC, the robustness tests pass and the model beats the
logistic-regression baseline. With no champion yet, absolute floors (``PIPELINE_MIN_AUC``,
``PIPELINE_MIN_AP``) replace the comparison. The decision and its reasons go into the version's
tags and description; :func:`promote` refuses a version the gate rejected, so it never serves.

    python -m jobs.registry status
    python -m jobs.registry promote --version N --approver "jane@bank"   # gate must have passed
    python -m jobs.registry rollback --approver "jane@bank"
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from datetime import datetime, timezone
from pathlib import Path

from jobs.config import Settings, get_settings
from jobs.train import features_matrix, load_config, mlflow_client, save_ctx

log = logging.getLogger(__name__)

CHALLENGER, CHAMPION, PREVIOUS = "challenger", "champion", "previous_champion"


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def alias_version(client, name: str, alias: str):
    """The model version behind ``alias``, or None."""
    from mlflow.exceptions import MlflowException

    try:
        return client.get_model_version_by_alias(name, alias)
    except MlflowException:
        return None


def register_challenger(ctx: dict, settings: Settings | None = None) -> dict:
    """Register the run's model as a new version and point ``challenger`` at it."""
    import mlflow

    settings = settings or get_settings()
    client = mlflow_client(settings)
    try:
        client.get_registered_model(settings.model_name)
    except mlflow.exceptions.MlflowException:
        client.create_registered_model(settings.model_name, description="Card-fraud score per transaction (LightGBM on the feature registry).")
    run = client.get_run(ctx["parent_run_id"])
    lineage = {k: v for k, v in run.data.tags.items() if not k.startswith("mlflow.")}
    existing = client.search_model_versions(f"name = '{settings.model_name}' and run_id = '{ctx['parent_run_id']}'")
    if existing:  # a retried task: the version of this run is already registered
        mv = max(existing, key=lambda v: int(v.version))
    else:
        mv = client.create_model_version(settings.model_name, ctx["model_uri"], run_id=ctx["parent_run_id"], tags=lineage,
                                         model_id=ctx.get("model_id"))
    client.set_registered_model_alias(settings.model_name, CHALLENGER, mv.version)
    for k, v in ctx.get("metrics", {}).items():
        client.set_model_version_tag(settings.model_name, mv.version, f"metric.{k}", f"{v:.6f}")
    log.info("registered %s version %s as %s", settings.model_name, mv.version, CHALLENGER)
    ctx = {**ctx, "version": str(mv.version)}
    save_ctx(ctx)
    return ctx


def evaluate_champion(ctx: dict, settings: Settings) -> tuple[str | None, dict | None, str | None]:
    """Score the champion on the challenger's test rows: (version, report, why-not-comparable).

    The comparison is only fair if the champion never trained on those rows (its cutoff is at or
    before the challenger's test window) and reads the same features; otherwise the gate falls back
    to the absolute floors and says why.
    """
    import mlflow

    from jobs import evaluation as ev
    from jobs.feature_registry import FEATURE_SET_VERSION
    from jobs.training_data import load_training_set

    client = mlflow_client(settings)
    champion = alias_version(client, settings.model_name, CHAMPION)
    if champion is None:
        return None, None, None
    version = str(champion.version)
    manifest, _, main, _ = load_training_set(Path(ctx["run_dir"]))
    test_start = manifest["windows"]["test"].split("..")[0]
    cutoff = champion.tags.get("window.cutoff", "")
    if champion.tags.get("feature_set_version") != FEATURE_SET_VERSION:
        return version, None, f"champion v{version} uses feature set {champion.tags.get('feature_set_version')}, not {FEATURE_SET_VERSION}"
    if not cutoff or cutoff[:10] > test_start:
        return version, None, f"champion v{version} was trained with labels up to {cutoff or 'unknown'}, after the test window starts ({test_start})"
    model = mlflow.pyfunc.load_model(f"models:/{settings.model_name}@{CHAMPION}")
    scores = model.predict(features_matrix(main.evaluate))
    return version, ev.evaluate(main.evaluate, scores, load_config(settings), settings.slice_margin), None


def decide(challenger: dict, champion: dict | None, settings: Settings) -> dict:
    """The gate: checks with pass/fail and reasons; ``promote`` only if every check passes."""
    checks = []

    def check(name, passed, detail):
        checks.append({"check": name, "passed": bool(passed), "detail": detail})

    o = challenger["overall"]
    ap = o["average_precision"] or 0.0
    failed = [t["name"] for t in challenger.get("robustness", []) if not t["passed"]]
    check("robustness", not failed, "all robustness tests pass" if not failed else f"failed: {', '.join(failed)}")
    base = challenger.get("baseline", {}).get("average_precision")
    check("beats_baseline", base is None or ap > base, f"AP {ap:.4f} vs logistic-regression baseline {base if base is None else round(base, 4)}")
    if champion is None:
        auc = o["auc"] or 0.0
        check("first_model_min_auc", auc >= settings.min_auc, f"AUC {auc:.4f} >= {settings.min_auc}")
        check("first_model_min_ap", ap >= settings.min_ap, f"AP {ap:.4f} >= {settings.min_ap}")
    else:
        cap = champion["overall"]["average_precision"] or 0.0
        check("average_precision_gain", ap >= cap + settings.promotion_margin,
              f"AP {ap:.4f} vs champion {cap:.4f} on the same rows (needs +{settings.promotion_margin})")
        theirs = {(s["slice"], s["value"]): s for s in champion["slices"]}
        regressions = []
        for s in challenger["slices"]:
            c = theirs.get((s["slice"], s["value"]))
            if s["enough_support"] and c and s["auc"] is not None and c["auc"] is not None and s["auc"] < c["auc"] - settings.slice_margin:
                regressions.append(f"{s['slice']}={s['value']} AUC {s['auc']:.3f} vs {c['auc']:.3f}")
        check("no_slice_regression", not regressions, "no slice loses more than the margin" if not regressions else "; ".join(regressions))
    passed = all(c["passed"] for c in checks)
    return {
        "decision": "passed" if passed else "rejected",
        "checks": checks,
        "reasons": [f"{c['check']}: {c['detail']}" for c in checks if not c["passed"]] or ["every check passed"],
        "flagged_slices": challenger.get("flagged_slices", []),
        "checked_at": _now(),
    }


def gate(ctx: dict, settings: Settings | None = None) -> dict:
    """Run :func:`decide` for the challenger; record it on the version; write the model card."""
    settings = settings or get_settings()
    client = mlflow_client(settings)
    report = json.loads(Path(ctx["run_dir"], "evaluation", "evaluation.json").read_text())
    champion_version, champion_report, not_comparable = evaluate_champion(ctx, settings)
    decision = decide(report, champion_report, settings)
    decision["champion_version"] = champion_version
    if not_comparable:
        decision["reasons"].append(f"not compared with the champion: {not_comparable}; absolute floors applied")
    name, version = settings.model_name, ctx["version"]
    client.set_model_version_tag(name, version, "gate.decision", decision["decision"])
    client.set_model_version_tag(name, version, "gate.reasons", json.dumps(decision["reasons"]))
    client.set_model_version_tag(name, version, "gate.checked_at", decision["checked_at"])
    client.set_model_version_tag(name, version, "gate.champion_at_gate", champion_version or "none")
    client.set_model_version_tag(name, version, "gate.compared_with",
                                 champion_version if champion_report else "absolute thresholds")
    card_md, card_html = write_model_card(ctx, report, decision, champion_report, settings)
    client.log_artifact(ctx["parent_run_id"], str(card_md), "model_card")
    client.log_artifact(ctx["parent_run_id"], str(card_html), "model_card")
    client.update_model_version(name, version, description=_description(report, decision))
    Path(ctx["run_dir"], "gate.json").write_text(json.dumps(decision, indent=2))
    log.info("gate for %s v%s: %s (%s)", name, version, decision["decision"], "; ".join(decision["reasons"]))
    ctx = {**ctx, "gate": decision["decision"], "gate_reasons": decision["reasons"]}
    save_ctx(ctx)
    return ctx


def _description(report: dict, decision: dict) -> str:
    o = report["overall"]
    return (f"Gate: {decision['decision'].upper()} ({decision['checked_at']}). "
            f"Test AUC {o['auc']:.4f}, AP {o['average_precision']:.4f}, CP@{o['k']} {o['card_precision_at_k']:.3f}. "
            f"Compared with: {decision.get('champion_version') or 'absolute thresholds'}. Reasons: {'; '.join(decision['reasons'])}.")


def promote(version: str, approver: str, approved_at: str | None = None, settings: Settings | None = None) -> dict:
    """Make ``version`` the champion (gate must have passed); record who approved and when."""
    settings = settings or get_settings()
    client = mlflow_client(settings)
    name = settings.model_name
    mv = client.get_model_version(name, version)
    if mv.tags.get("gate.decision") != "passed":
        raise ValueError(f"{name} version {version} did not pass the gate ({mv.tags.get('gate.decision', 'not gated')}): it cannot serve")
    if mv.tags.get("approval") == "rejected":
        raise ValueError(f"{name} version {version} was rejected by {mv.tags.get('rejected_by')} at {mv.tags.get('rejected_at')}")
    current = alias_version(client, name, CHAMPION)
    gated_against = mv.tags.get("gate.champion_at_gate", "none")
    if (str(current.version) if current else "none") != gated_against and str(getattr(current, "version", "")) != str(version):
        raise ValueError(f"{name} version {version} was gated against champion {gated_against}, but the champion is now "
                         f"{current.version if current else 'none'}: re-run the gate (train_model) before promoting")
    if current is not None and str(current.version) != str(version):
        client.set_registered_model_alias(name, PREVIOUS, current.version)
        client.set_model_version_tag(name, current.version, "retired_at", _now())
    client.set_registered_model_alias(name, CHAMPION, version)
    record = {"approved_by": approver, "approved_at": approved_at or _now(), "promoted_at": _now()}
    for k, v in record.items():
        client.set_model_version_tag(name, version, k, v)
    log.info("%s version %s is champion (approved by %s at %s)", name, version, approver, record["approved_at"])
    return {"version": str(version), "previous": None if current is None else str(current.version), **record}


def record_rejection(version: str, by: str, at: str, settings: Settings | None = None) -> dict:
    """A human rejected the promotion: say so on the version, so it can never be promoted later."""
    settings = settings or get_settings()
    client = mlflow_client(settings)
    for k, v in {"approval": "rejected", "rejected_by": by, "rejected_at": at}.items():
        client.set_model_version_tag(settings.model_name, version, k, v)
    return {"version": str(version), "approval": "rejected", "rejected_by": by, "rejected_at": at}


def rollback(approver: str, settings: Settings | None = None) -> dict:
    """Point ``champion`` back at ``previous_champion`` (and remember the version rolled back)."""
    settings = settings or get_settings()
    client = mlflow_client(settings)
    name = settings.model_name
    previous = alias_version(client, name, PREVIOUS)
    current = alias_version(client, name, CHAMPION)
    if previous is None:
        raise ValueError(f"{name} has no {PREVIOUS}: nothing to roll back to")
    client.set_registered_model_alias(name, CHAMPION, previous.version)
    client.delete_registered_model_alias(name, PREVIOUS)
    if current is not None:
        client.set_model_version_tag(name, current.version, "rolled_back_at", _now())
        client.set_model_version_tag(name, current.version, "rolled_back_by", approver)
    return {"champion": str(previous.version), "rolled_back": None if current is None else str(current.version)}


def status(settings: Settings | None = None) -> dict:
    settings = settings or get_settings()
    client = mlflow_client(settings)
    out = {}
    for alias in (CHAMPION, CHALLENGER, PREVIOUS):
        mv = alias_version(client, settings.model_name, alias)
        if mv is not None:
            t = mv.tags
            out[alias] = {"version": str(mv.version), "gate": t.get("gate.decision"), "approved_by": t.get("approved_by"),
                          "approved_at": t.get("approved_at"), "test_auc": t.get("metric.test_auc"),
                          "test_average_precision": t.get("metric.test_average_precision"),
                          "test_card_precision_at_100": t.get("metric.test_card_precision_at_100"), "window": t.get("window.test"),
                          **({"approval": "rejected"} if t.get("approval") == "rejected" else {})}
    return out


# ------------------------------------------------------------------------------------------
# model card


def model_card_markdown(ctx: dict, report: dict, decision: dict, champion: dict | None, settings: Settings, tags: dict) -> str:
    o, b = report["overall"], report.get("baseline", {})
    f = lambda v, n=4: "n/a" if v is None else f"{v:.{n}f}"
    rows = [f"| this model (v{ctx['version']}) | {f(o['auc'])} | {f(o['average_precision'])} | {f(o['card_precision_at_k'], 3)} |",
            f"| logistic-regression baseline | {f(b.get('auc'))} | {f(b.get('average_precision'))} | {f(b.get('card_precision_at_k'), 3)} |"]
    if champion:
        c = champion["overall"]
        rows.append(f"| champion v{decision['champion_version']} (same rows) | {f(c['auc'])} | {f(c['average_precision'])} | {f(c['card_precision_at_k'], 3)} |")
    slices = "\n".join(
        f"| {s['slice']} | {s['value']} | {s['support']} | {s['frauds']} | {f(s['auc'], 3)} | {f(s['average_precision'], 3)} | {'**flagged**' if s['flagged'] else ''} |"
        for s in report["slices"])
    robust = "\n".join(f"| {t['name']} | {t['kind']} | {t['description']} | {f(t['value'])} | {'pass' if t['passed'] else '**fail**'} |" for t in report["robustness"])
    versions = "\n".join(f"- `{k.removeprefix('delta_version.')}` @ Delta version {v}" for k, v in sorted(tags.items()) if k.startswith("delta_version."))
    cost = report["cost"]
    return f"""# Model card: {settings.model_name} version {ctx['version']}

## Model details
- **Owner:** {settings.model_owner}
- **Type:** LightGBM gradient-boosted trees, binary objective; output = fraud score in [0, 1] per transaction.
- **Trained:** {tags.get('trained_at', 'n/a')} in MLflow run `{ctx['parent_run_id']}`; git commit `{tags.get('git_commit')}`; config hash `{tags.get('config_hash')}`.
- **Hyperparameters:** {json.dumps(ctx.get('best_config', {}), sort_keys=True)}, {ctx.get('best_rounds')} boosting rounds (Ray Tune, {ctx.get('n_trials')} trials, ASHA).
- **Gate decision:** **{decision['decision']}** ({decision['checked_at']}); {'; '.join(decision['reasons'])}.

## Intended use
Rank card transactions by fraud risk so analysts review the most suspicious cards first (about
{report['overall']['k']} cards a day), and score transactions online through the serving API. A score is an input
to a human or rules decision, not a decision on its own.

**Out of scope:** declining transactions automatically without review; credit or identity decisions;
populations or merchants unlike the training data (other countries, card-not-present channels not in the data).

## Data and lineage
- Training window {tags.get('window.train')}, gap {tags.get('window.gap_days')} days, test window {tags.get('window.test')};
  labels known at {tags.get('window.cutoff')} for training, at {tags.get('window.label_as_of')} for the test.
- Tuning folds: {tags.get('window.folds')}.
- Feature-set version `{tags.get('feature_set_version')}`; dbt manifest hash `{tags.get('dbt_manifest_hash')}`; training-set hash `{tags.get('data.frame_hash')}`.
{versions}

## Metrics on the test window ({report['rows']} transactions, {report['frauds']} frauds)
| model | AUC | average precision | Card Precision@{o['k']} |
|---|---|---|---|
{chr(10).join(rows)}

Calibration: Brier score {f(report['calibration']['brier'], 5)} (base rate {f(report['calibration']['base_rate'], 5)}).
Cost view ({cost['alerts']} alerts at {cost['review_cost_per_alert']} each): fraud amount caught {cost['fraud_amount_caught']} of {cost['fraud_amount']},
review cost {cost['review_cost']}, net {cost['net_savings']}.
Average-precision trend over the test days: {report['temporal']['average_precision_trend_per_day']} per day.

## Metrics by slice
A slice is flagged when its AUC is more than {settings.slice_margin} below the overall AUC and it has enough frauds to say so.

| slice | value | support | frauds | AUC | AP | |
|---|---|---|---|---|---|---|
{slices}

## Robustness
| test | kind | what | value | result |
|---|---|---|---|---|
{robust}

## Limitations
- Trained and evaluated on simulated transactions (the handbook's simulator); real fraud patterns differ and drift.
- Labels arrive with a delay; the most recent {settings.label_maturity_days} days are not in any evaluation.
- Cards already known to be compromised are left out of the test set (they are blocked in practice).
- Scores are not calibrated probabilities under class-weighting; use rankings, or recalibrate before reading them as probabilities.

## Ethical considerations
- The features describe spending behaviour and terminals, not protected attributes; segment and region are used
  only to check that no group is served worse (slices above), but behaviour can still proxy for them.
- False positives cost customers declined or delayed payments: keep a human in the loop and monitor alert rates by slice.
- Customer and terminal ids are pseudonymous; do not join the scores with personal data outside the fraud process.
"""


def write_model_card(ctx: dict, report: dict, decision: dict, champion: dict | None, settings: Settings) -> tuple[Path, Path]:
    import markdown

    client = mlflow_client(settings)
    run = client.get_run(ctx["parent_run_id"])
    trained_at = datetime.fromtimestamp(run.info.start_time / 1000, timezone.utc).isoformat(timespec="seconds")
    tags = {**run.data.tags, "trained_at": trained_at}
    md = model_card_markdown(ctx, report, decision, champion, settings, tags)
    out = Path(ctx["run_dir"], "model_card")
    out.mkdir(parents=True, exist_ok=True)
    md_path, html_path = out / "model_card.md", out / "model_card.html"
    md_path.write_text(md)
    body = markdown.markdown(md, extensions=["tables"])
    html_path.write_text(
        "<html><head><meta charset='utf-8'><title>Model card</title><style>body{font-family:sans-serif;margin:2em;max-width:60em}"
        "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:3px 8px}</style></head><body>" + body + "</body></html>"
    )
    return md_path, html_path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m jobs.registry", description="Inspect, promote or roll back the registered model.")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("status", help="champion, challenger and previous champion")
    p = sub.add_parser("promote", help="make a gate-passed version the champion")
    p.add_argument("--version", required=True)
    p.add_argument("--approver", required=True)
    r = sub.add_parser("rollback", help="champion := previous champion")
    r.add_argument("--approver", required=True)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        if args.command == "status":
            out = status()
        elif args.command == "promote":
            out = promote(args.version, args.approver)
        else:
            out = rollback(args.approver)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
