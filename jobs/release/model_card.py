"""The model card: what a version is, how it was trained and tested, where it must not be used.

Written by the gate for every challenger (Markdown and HTML, logged to its MLflow run under
``model_card/``), from the evaluation report, the gate's decision and the run's lineage tags.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

from jobs.config import Settings
from jobs.evaluation.report import feature_worth
from jobs.features.registry import BY_NAME
from jobs.platform.tracking import Tag, mlflow_client

TRAINED_AT = "trained_at"


def model_card_markdown(
    ctx: dict, report: dict, decision: dict, champion: dict | None, settings: Settings, tags: dict
) -> str:
    o, b = report["overall"], report.get("baseline", {})
    f = lambda v, n=4: "n/a" if v is None else f"{v:.{n}f}"
    rows = [
        f"| this model (v{ctx['version']}) | {f(o['auc'])} | {f(o['average_precision'])} | {f(o['card_precision_at_k'], 3)} |",
        f"| logistic-regression baseline | {f(b.get('auc'))} | {f(b.get('average_precision'))} | {f(b.get('card_precision_at_k'), 3)} |",
    ]
    if champion:
        c = champion["overall"]
        rows.append(
            f"| champion v{decision['champion_version']} (same rows) | {f(c['auc'])} | {f(c['average_precision'])} | {f(c['card_precision_at_k'], 3)} |"
        )
    slices = "\n".join(
        f"| {s['slice']} | {s['value']} | {s['support']} | {s['frauds']} | {f(s['auc'], 3)} | {f(s['average_precision'], 3)} | {'**flagged**' if s['flagged'] else ''} |"
        for s in report["slices"]
    )
    robust = "\n".join(
        f"| {t['name']} | {t['kind']} | {t['description']} | {f(t['value'])} | {'pass' if t['passed'] else '**fail**'} |"
        for t in report["robustness"]
    )
    versions = "\n".join(
        f"- `{k.removeprefix(Tag.DELTA_VERSION_PREFIX)}` @ Delta version {v}"
        for k, v in sorted(tags.items())
        if k.startswith(Tag.DELTA_VERSION_PREFIX)
    )
    cost = report["cost"]
    at = report.get("alert_threshold", {})
    checks = "\n".join(
        f"| {c['check']} | {'pass' if c['passed'] else '**fail**'} | {c['detail']} |"
        for c in decision.get("checks", [])
    )
    fairness = "\n".join(
        f"| {grouping} | {g['value']} | {g['rows']} | {g['alerts']} | {f(g['alert_rate'])} | {g['false_positives']} | "
        f"{f(g['false_positive_rate'])} | {'' if g['enough_support'] else 'too few rows'} |"
        for grouping, p in sorted(report.get("parity", {}).items())
        for g in p["groups"]
    )
    gaps = "; ".join(
        f"{grouping}: alert-rate gap {f(p['alert_rate_gap'])}, FPR gap {f(p['false_positive_rate_gap'])}"
        for grouping, p in sorted(report.get("parity", {}).items())
    )
    gains = report.get("feature_importance", {})
    constrained = report.get("monotone_constraints") or {}
    directions = (
        ", ".join(f"`{n}` {'↑' if d > 0 else '↓'}" for n, d in constrained.items())
        + " (LightGBM monotone constraints, `monotone_constraints` in the training YAML)"
        if constrained
        else "none"
    )

    def governance(name: str) -> str:
        f = BY_NAME.get(name)
        return f"{f.owner} | {'yes' if f.pii else 'no'}" if f else " | "

    def seconds(v) -> str:
        return "n/a" if v is None else f"{v:.3f}"

    def helps(r) -> str:
        return "n/a" if r["helps"] is None else ("yes" if r["helps"] else "**no**")

    importance = "\n".join(
        f"| {i} | `{r['feature']}` | {r['gain_share']:.1%} | {f(r['ap_drop_mean'])} | {helps(r)} | "
        f"{seconds(r['seconds_alone'])} | {governance(r['feature'])} | "
        f"{BY_NAME[r['feature']].description if r['feature'] in BY_NAME else ''} |"
        for i, r in enumerate(feature_worth(report), start=1)
    )
    worth = report.get("feature_benefit") or {}
    measured = report.get("feature_cost")
    cost_note = (
        f"Cost: Spark seconds to compute the feature alone in the feature job, measured on {measured['day']} "
        f"({measured['rows']} transactions; all {len(measured['features'])} features together "
        f"{measured['seconds_all_features']:.2f} s)."
        if measured
        else "Cost: not measured yet (`python -m jobs.features.cost`)."
    )
    return f"""# Model card: {settings.mlflow.model_name} version {ctx["version"]}

## Model details
- **Owner:** {settings.mlflow.model_owner}
- **Type:** LightGBM gradient-boosted trees, binary objective; output = fraud score in [0, 1] per transaction.
- **Trained:** {tags.get(TRAINED_AT, "n/a")} in MLflow run `{ctx["parent_run_id"]}`; git commit `{
        tags.get(Tag.GIT_COMMIT)
    }`; config hash `{tags.get(Tag.CONFIG_HASH)}`.
- **Why it was trained:** {tags.get(Tag.TRAINING_TRIGGER, "n/a")}.
- **Hyperparameters:** {json.dumps(ctx.get("best_config", {}), sort_keys=True)}, {
        ctx.get("best_rounds")
    } boosting rounds (Ray Tune, {ctx.get("n_trials")} trials, ASHA).
- **Directional constraints** (the score never falls as a feature marked ↑ rises, all else equal): {directions}.
- **Gate decision:** **{decision["decision"]}** ({decision["checked_at"]}); {"; ".join(decision["reasons"])}.

| gate check | result | detail |
|---|---|---|
{checks}

## Intended use
Rank card transactions by fraud risk so analysts review the most suspicious cards first (about
{report["overall"]["k"]} cards a day), and score transactions online through the serving API. A score is an input
to a human or rules decision, not a decision on its own.

**Out of scope:** declining transactions automatically without review; credit or identity decisions;
populations or merchants unlike the training data (other countries, card-not-present channels not in the data).

## Data and lineage
- Training window {tags.get(Tag.WINDOW_TRAIN)}, gap {tags.get(Tag.WINDOW_GAP_DAYS)} days, test window {
        tags.get(Tag.WINDOW_TEST)
    };
  labels known at {tags.get(Tag.WINDOW_CUTOFF)} for training, at {tags.get(Tag.WINDOW_LABEL_AS_OF)} for the test.
- Tuning folds: {tags.get(Tag.WINDOW_FOLDS)}.
- Feature-set version `{tags.get(Tag.FEATURE_SET_VERSION)}`; dbt manifest hash `{
        tags.get(Tag.DBT_MANIFEST_HASH)
    }`; training-set hash `{tags.get(Tag.FRAME_HASH)}`.
{versions}

## Metrics on the test window ({report["rows"]} transactions, {report["frauds"]} frauds)
| model | AUC | average precision | Card Precision@{o["k"]} |
|---|---|---|---|
{chr(10).join(rows)}

Calibration: Brier score {f(report["calibration"]["brier"], 5)} (base rate {f(report["calibration"]["base_rate"], 5)}).
Cost view ({cost["alerts"]} alerts at {cost["review_cost_per_alert"]} each): fraud amount caught {
        cost["fraud_amount_caught"]
    } of {cost["fraud_amount"]},
review cost {cost["review_cost"]}, net {cost["net_savings"]}.
Alert threshold: **{
        f(at.get("threshold"), 6)
    }**. Serving and batch scoring alert at or above it; chosen on the test window so that
alerts match the review budget of {at.get("k")} cards a day ({
        at.get("alerts_per_day", {}).get("mean", "n/a")
    } a day on average over
{at.get("days")} days, between {at.get("alerts_per_day", {}).get("min", "n/a")} and {
        at.get("alerts_per_day", {}).get("max", "n/a")
    }).
Average-precision trend over the test days: {report["temporal"]["average_precision_trend_per_day"]} per day.

## Features: benefit and cost
The {len(gains)} features of feature set `{tags.get(Tag.FEATURE_SET_VERSION)}` (definitions in the feature registry; a
report counts in a feature only from the end of the day its file covers), by benefit. Gain share: of the booster's
total split gain. Benefit: {worth.get("method", "n/a")}, {worth.get("folds", 0)} fold(s) x {worth.get("repeats", 0)}
shuffles; a feature whose mean drop is not above {worth.get("min_drop", "n/a")} does **not help** (not helping:
{", ".join(f"`{n}`" for n in worth.get("not_helping", [])) or "none"}). {cost_note}

| rank | feature | gain share | AP drop when shuffled | helps | cost (s) | owner | personal data | definition |
|---|---|---|---|---|---|---|---|---|
{importance}

## Metrics by slice
A slice is flagged when its AUC is more than {
        settings.gate.slice_margin
    } below the overall AUC and it has enough frauds to say so.

| slice | value | support | frauds | AUC | AP | |
|---|---|---|---|---|---|---|
{slices}

## Fairness: alert rate and false-positive rate by customer group
At the alert threshold, per customer segment and region of the test window. Gaps (largest minus smallest, groups
with enough rows): {gaps or "n/a"}. The gate refuses a model whose FPR gap exceeds {settings.gate.max_fpr_gap}
(`PIPELINE_MAX_FPR_GAP`: false alerts on genuine customers){
        f" or whose alert-rate gap exceeds {settings.gate.max_alert_rate_gap} (`PIPELINE_MAX_ALERT_RATE_GAP`)"
        if settings.gate.max_alert_rate_gap < 1
        else "; the alert-rate gap is reported, not held (alert rates follow where the fraud is)"
    }.

| grouping | group | rows | alerts | alert rate | false positives | FPR | |
|---|---|---|---|---|---|---|---|
{fairness}

## Robustness
| test | kind | what | value | result |
|---|---|---|---|---|
{robust}

## Limitations
- Trained and evaluated on simulated transactions (the handbook's simulator); real fraud patterns differ and drift.
- Labels arrive with a delay; the most recent {settings.data.label_maturity_days} days are not in any evaluation.
- Cards already known to be compromised are left out of the test set (they are blocked in practice).
- Scores are not calibrated probabilities under class-weighting; use rankings, or recalibrate before reading them as probabilities.

## Ethical considerations
- The features describe spending behaviour and terminals, not protected attributes; segment and region are used
  only to check that no group is served worse (slices above), but behaviour can still proxy for them.
- False positives cost customers declined or delayed payments: keep a human in the loop and monitor alert rates by slice.
- Customer and terminal ids are pseudonymous; do not join the scores with personal data outside the fraud process.
- Personal data: the features marked so above describe the cardholder's own spending. The customers' home
  coordinates are not a feature and are read by neither training nor scoring; `marts.dim_customers` (what
  dashboards read) keeps only the 10x10 cell they fall in, the exact ones stay in the bronze snapshot.
"""


def write_model_card(
    ctx: dict, report: dict, decision: dict, champion: dict | None, settings: Settings
) -> tuple[Path, Path]:
    import markdown

    run = mlflow_client(settings).get_run(ctx["parent_run_id"])
    trained_at = datetime.fromtimestamp(run.info.start_time / 1000, UTC).isoformat(timespec="seconds")
    tags = {**run.data.tags, TRAINED_AT: trained_at}
    md = model_card_markdown(ctx, report, decision, champion, settings, tags)
    out = Path(ctx["run_dir"], "model_card")
    out.mkdir(parents=True, exist_ok=True)
    md_path, html_path = out / "model_card.md", out / "model_card.html"
    md_path.write_text(md)
    body = markdown.markdown(md, extensions=["tables"])
    html_path.write_text(
        "<html><head><meta charset='utf-8'><title>Model card</title><style>body{font-family:sans-serif;margin:2em;max-width:60em}"
        "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:3px 8px}</style></head><body>"
        + body
        + "</body></html>"
    )
    return md_path, html_path
