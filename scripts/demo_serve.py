"""The demo's last act: start the scoring service, score three transactions, print the answers, stop it.

    python scripts/demo_serve.py 2026-01-02

Transactions of the given day (after the last day the online store holds): one fraud-like (the
card and terminal at the top of the day before's review queue, a large amount), one ordinary
(a card and terminal from the bottom of that day's scores, a typical amount) and one invalid (a
negative amount). Then SIGTERM: the service stops gracefully and its prediction log is complete.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from datetime import date, timedelta
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _examples(day: date) -> list[tuple[str, dict]]:
    from jobs.config import get_settings
    from jobs.platform import delta
    from jobs.scoring.batch import ALERTS, SCORES

    settings = get_settings()
    before = day - timedelta(days=1)
    alerts = delta.read(settings, ALERTS, filters=[("alert_date", "=", before)]).to_pandas()
    scores = delta.read(settings, SCORES, filters=[("batch_date", "=", before)]).to_pandas()
    top = alerts.sort_values("rank").iloc[0]
    calm = scores.sort_values("score").iloc[len(scores) // 4]
    return [
        (
            f"fraud-like: card {top['customer_id']} at terminal {top['terminal_id']} (top of {before}'s review queue), a large amount",
            {
                "transaction_id": f"demo-{day}-1",
                "tx_datetime": f"{day} 02:14:05",
                "customer_id": top["customer_id"],
                "terminal_id": top["terminal_id"],
                "tx_amount": round(float(top["tx_amount"]) * 3 + 250, 2),
            },
        ),
        (
            f"ordinary: card {calm['customer_id']} at terminal {calm['terminal_id']}, a typical amount",
            {
                "transaction_id": f"demo-{day}-2",
                "tx_datetime": f"{day} 12:30:00",
                "customer_id": calm["customer_id"],
                "terminal_id": calm["terminal_id"],
                "tx_amount": round(float(calm["tx_amount"]), 2),
            },
        ),
        (
            "invalid: a negative amount",
            {
                "transaction_id": f"demo-{day}-3",
                "tx_datetime": f"{day} 12:31:00",
                "customer_id": calm["customer_id"],
                "terminal_id": calm["terminal_id"],
                "tx_amount": -20.0,
            },
        ),
    ]


def main(argv: list[str]) -> int:
    day = date.fromisoformat(argv[0])
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    log_path = ROOT / "var" / "serving-demo.log"
    log_path.parent.mkdir(exist_ok=True)
    started = time.monotonic()
    proc = subprocess.Popen(
        [sys.executable, "-m", "serving", "--port", str(port)],
        cwd=ROOT,
        stdout=log_path.open("w"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
        env={**os.environ, "PIPELINE_SERVING_WORKERS": "1"},
    )
    try:
        while True:
            if proc.poll() is not None:
                print(log_path.read_text()[-2000:], file=sys.stderr)
                return 1
            try:
                if requests.get(f"{url}/readyz", timeout=2).status_code == 200:
                    break
            except requests.RequestException:
                pass
            if time.monotonic() - started > 180:
                print("the service did not become ready in 180 s; log: var/serving-demo.log", file=sys.stderr)
                return 1
            time.sleep(0.5)
        print(f"service ready on {url} in {time.monotonic() - started:.0f} s (log: var/serving-demo.log)")
        for what, tx in _examples(day):
            resp = requests.post(f"{url}/score", params={"explain": "true"}, json=tx, timeout=30)
            print(f"\n--- {what}\nPOST /score?explain=true {json.dumps(tx)}")
            body = resp.json()
            if resp.status_code == 200:
                top = sorted(body["contributions"].items(), key=lambda kv: -kv[1])[:3]
                print(
                    f"{resp.status_code}: score {body['score']:.4f}, alert {body['alert']} (threshold "
                    f"{body['alert_threshold']:.4f}), model {body['model_name']} v{body['model_version']}, "
                    f"features {body['feature_set_version']}"
                )
                print(
                    "    pushed up most by: "
                    + ", ".join(f"{k} = {body['features'].get(k, 0):g} ({v:+.2f})" for k, v in top)
                )
            else:
                detail = body.get("detail", [{}])[0]
                print(f"{resp.status_code}: {detail.get('msg')} (field: {detail.get('loc', ['?'])[-1]})")
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(60)
    print(
        f"\nservice stopped (SIGTERM, exit {proc.returncode}); its prediction log is under data/serving/prediction_log/"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
