"""The promotion gate: is the challenger good enough to replace the champion?

:func:`decide` compares the challenger with the champion **on the challenger's test rows** (the
champion is re-scored on the same rows): promote only if average precision improves by
``PIPELINE_PROMOTION_MARGIN``, no slice with enough support loses more than ``PIPELINE_SLICE_MARGIN``
of AUC, the robustness tests pass, the model beats the logistic-regression baseline on average
precision and on Card Precision@k (by more than ``PIPELINE_BASELINE_CP_MARGIN``: the review budget is
what the business spends), and the cost view's net savings reach ``PIPELINE_MIN_NET_SAVINGS`` (a
model whose alerts cost more than the fraud they catch never serves), and the gaps of alert rate and
false-positive rate between customer segments, and between regions, stay within
``PIPELINE_MAX_FPR_GAP`` (and ``PIPELINE_MAX_ALERT_RATE_GAP``, when set below 1). With no
champion, or one that is not comparable (another feature set, or trained on labels from after the
test window starts), absolute floors (``PIPELINE_MIN_AUC``, ``PIPELINE_MIN_AP``) replace the
comparison and the reasons say why. :func:`gate` records the decision and its reasons in the
version's tags and description and writes the model card; :func:`jobs.release.registry.promote`
refuses a version the gate rejected, so it never serves.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from jobs.config import Settings, get_settings, load_training_config
from jobs.evaluation import metrics, report
from jobs.features.registry import FEATURE_SET_VERSION, features_matrix
from jobs.platform.tracking import NO_CHAMPION, Alias, Tag, mlflow_client, mlflow_links
from jobs.release import audit
from jobs.release.approval import approval_request
from jobs.release.decisions import GateDecision
from jobs.release.registry import alias_version, load_booster, now_iso

log = logging.getLogger(__name__)

GATE_FILE = "gate.json"
COMPARED_WITH_FLOORS = "absolute thresholds"


def evaluate_champion(ctx: dict, settings: Settings) -> tuple[str | None, dict | None, str | None]:
    """Score the champion on the challenger's test rows: (version, report, why-not-comparable).

    The comparison is only fair if the champion never trained on those rows (its cutoff is at or
    before the challenger's test window) and reads the same features; otherwise the gate falls back
    to the absolute floors and says why.
    """
    client = mlflow_client(settings)
    champion = alias_version(client, settings.mlflow.model_name, Alias.CHAMPION)
    if champion is None:
        return None, None, None
    version = str(champion.version)
    test_start = client.get_run(ctx["parent_run_id"]).data.tags[Tag.WINDOW_TEST].split("..")[0]
    cutoff = champion.tags.get(Tag.WINDOW_CUTOFF, "")
    features = champion.tags.get(Tag.FEATURE_SET_VERSION)
    if features != FEATURE_SET_VERSION:
        return version, None, f"champion v{version} uses feature set {features}, not {FEATURE_SET_VERSION}"
    if not cutoff or cutoff[:10] > test_start:
        return (
            version,
            None,
            f"champion v{version} was trained with labels up to {cutoff or 'unknown'}, after the test window starts ({test_start})",
        )
    test = report.read_test_frame(Path(ctx["run_dir"], report.EVALUATION_DIR))
    scores = load_booster(Alias.CHAMPION, settings).predict(features_matrix(test))
    return version, metrics.evaluate(test, scores, load_training_config(settings), settings.gate.slice_margin), None


def decide(challenger: dict, champion: dict | None, settings: Settings) -> dict:
    """The gate: checks with pass/fail and reasons; ``passed`` only if every check passes."""
    gate_settings = settings.gate
    checks = []

    def check(name, passed, detail):
        checks.append({"check": name, "passed": bool(passed), "detail": detail})

    o = challenger["overall"]
    ap = o["average_precision"] or 0.0
    failed = [t["name"] for t in challenger.get("robustness", []) if not t["passed"]]
    check("robustness", not failed, "all robustness tests pass" if not failed else f"failed: {', '.join(failed)}")
    base = challenger.get("baseline", {}).get("average_precision")
    check(
        "beats_baseline",
        base is None or ap > base,
        f"AP {ap:.4f} vs logistic-regression baseline {base if base is None else round(base, 4)}",
    )
    cp, base_cp = o.get("card_precision_at_k"), challenger.get("baseline", {}).get("card_precision_at_k")
    margin = gate_settings.baseline_cp_margin
    if cp is not None and base_cp is not None:
        check(
            "beats_baseline_card_precision",
            cp > base_cp + margin,
            f"CP@{o.get('k')} {cp:.4f} vs logistic-regression baseline {base_cp:.4f} (needs more than +{margin})",
        )
    net = challenger.get("cost", {}).get("net_savings")
    if net is not None:
        check(
            "net_savings",
            net >= gate_settings.min_net_savings,
            f"net savings {net:,.2f} on the test window (fraud caught minus review cost; floor "
            f"{gate_settings.min_net_savings:,.2f})",
        )
    parity = challenger.get("parity")
    if parity is not None:
        check("fairness_parity", *parity_check(parity, gate_settings))
    if champion is None:
        auc = o["auc"] or 0.0
        check("first_model_min_auc", auc >= gate_settings.min_auc, f"AUC {auc:.4f} (floor {gate_settings.min_auc})")
        check("first_model_min_ap", ap >= gate_settings.min_ap, f"AP {ap:.4f} (floor {gate_settings.min_ap})")
    else:
        cap = champion["overall"]["average_precision"] or 0.0
        check(
            "average_precision_gain",
            ap >= cap + gate_settings.promotion_margin,
            f"AP {ap:.4f} vs champion {cap:.4f} on the same rows (needs +{gate_settings.promotion_margin})",
        )
        theirs = {(s["slice"], s["value"]): s for s in champion["slices"]}
        regressions = []
        for s in challenger["slices"]:
            c = theirs.get((s["slice"], s["value"]))
            if (
                s["enough_support"]
                and c
                and s["auc"] is not None
                and c["auc"] is not None
                and s["auc"] < c["auc"] - gate_settings.slice_margin
            ):
                regressions.append(f"{s['slice']}={s['value']} AUC {s['auc']:.3f} vs {c['auc']:.3f}")
        check(
            "no_slice_regression",
            not regressions,
            "no slice loses more than the margin" if not regressions else "; ".join(regressions),
        )
    passed = all(c["passed"] for c in checks)
    return {
        "decision": GateDecision.PASSED.value if passed else GateDecision.REJECTED.value,
        "checks": checks,
        "reasons": [f"{c['check']}: {c['detail']}" for c in checks if not c["passed"]] or ["every check passed"],
        "flagged_slices": challenger.get("flagged_slices", []),
        "checked_at": now_iso(),
    }


def parity_check(parity: dict, gate_settings) -> tuple[bool, str]:
    """Alert-rate and false-positive-rate gaps between segments and between regions, against their margins."""
    over, seen = [], []
    for grouping, p in sorted(parity.items()):
        for key, label, margin in (
            ("false_positive_rate_gap", "FPR", gate_settings.max_fpr_gap),
            ("alert_rate_gap", "alert-rate", gate_settings.max_alert_rate_gap),
        ):
            value = p.get(key)
            if value is None:
                continue
            seen.append(f"{grouping} {label} gap {value:.4f}")
            if value > margin:
                over.append(f"{grouping} {label} gap {value:.4f} > {margin}")
    if over:
        return False, "; ".join(over)
    held = gate_settings.max_alert_rate_gap < 1
    margins = (
        f"FPR {gate_settings.max_fpr_gap}, alert rate {gate_settings.max_alert_rate_gap if held else 'reported only'}"
    )
    return True, (", ".join(seen) or "no group with enough rows to compare") + f" (margins: {margins})"


def gate(ctx: dict, settings: Settings | None = None) -> dict:
    """Run :func:`decide` for the registered challenger; record it on the version; write the model card."""
    from jobs.release.model_card import write_model_card

    settings = settings or get_settings()
    client = mlflow_client(settings)
    evaluation = report.read_report(Path(ctx["run_dir"], report.EVALUATION_DIR))
    champion_version, champion_report, not_comparable = evaluate_champion(ctx, settings)
    decision = decide(evaluation, champion_report, settings)
    decision["champion_version"] = champion_version
    if not_comparable:
        decision["reasons"].append(f"not compared with the champion: {not_comparable}; absolute floors applied")
    name, version = settings.mlflow.model_name, ctx["version"]
    client.set_model_version_tag(name, version, Tag.GATE_DECISION, decision["decision"])
    client.set_model_version_tag(name, version, Tag.GATE_REASONS, json.dumps(decision["reasons"]))
    client.set_model_version_tag(name, version, Tag.GATE_CHECKED_AT, decision["checked_at"])
    client.set_model_version_tag(name, version, Tag.GATE_CHAMPION_AT_GATE, champion_version or NO_CHAMPION)
    client.set_model_version_tag(
        name, version, Tag.GATE_COMPARED_WITH, champion_version if champion_report else COMPARED_WITH_FLOORS
    )
    card_md, card_html = write_model_card(ctx, evaluation, decision, champion_report, settings)
    client.log_artifact(ctx["parent_run_id"], str(card_md), "model_card")
    client.log_artifact(ctx["parent_run_id"], str(card_html), "model_card")
    client.update_model_version(name, version, description=_description(evaluation, decision))
    Path(ctx["run_dir"], GATE_FILE).write_text(json.dumps(decision, indent=2))
    log.info("gate for %s v%s: %s (%s)", name, version, decision["decision"], "; ".join(decision["reasons"]))
    audit.record(
        "gate",
        decision["decision"],
        "train_model gate",
        version,
        reason="; ".join(decision["reasons"]),
        details={
            "challenger": evaluation["overall"],
            "champion": (champion_report or {}).get("overall"),
            "champion_version": champion_version,
            "baseline": evaluation.get("baseline"),
            "flagged_slices": decision.get("flagged_slices"),
        },
        key=f"gate/{version}",
        settings=settings,
    )
    run = client.get_run(ctx["parent_run_id"])
    links = mlflow_links(settings, ctx["parent_run_id"], run.info.experiment_id)
    body = approval_request(version, evaluation, champion_version, champion_report, decision, links)
    return {**ctx, "gate": decision["decision"], "gate_reasons": decision["reasons"], "approval_request": body}


def _description(evaluation: dict, decision: dict) -> str:
    o = evaluation["overall"]
    return (
        f"Gate: {decision['decision'].upper()} ({decision['checked_at']}). "
        f"Test AUC {o['auc']:.4f}, AP {o['average_precision']:.4f}, CP@{o['k']} {o['card_precision_at_k']:.3f}. "
        f"Compared with: {decision.get('champion_version') or COMPARED_WITH_FLOORS}. Reasons: {'; '.join(decision['reasons'])}."
    )
