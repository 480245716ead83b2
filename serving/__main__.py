"""``python -m serving [--host H] [--port P]``: check that the service can start, then run it (BentoML).

The checks come first, each with a one-line reason, so a user is not left reading a worker's
traceback: a champion (or the version ``PIPELINE_SERVING_VERSION`` pins) must exist with the code's
feature set, an alert threshold and finite scores on the golden rows, and the online store must hold
a materialized state of that feature set.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from jobs.config import REPO_ROOT, get_settings


def preflight() -> str | None:
    """None when the service can start, else the reason it cannot."""
    from jobs.features.store import StoreNotReady, open_store
    from jobs.scoring.model import ModelNotServable, load_scoring_model, redact

    settings = get_settings()
    pinned = settings.serving.pinned_version or None  # PIPELINE_SERVING_VERSION: that version, not the champion
    try:
        model = load_scoring_model(version=pinned, settings=settings)
    except ModelNotServable as exc:
        return str(exc)
    except Exception as exc:  # noqa: BLE001 (the registry is unreachable: say so in one line)
        return f"the model registry ({redact(settings.mlflow_tracking_uri)}) cannot be read: {exc}"
    try:
        store = open_store(settings)
        info = store.ready_info()
        store.close()
    except StoreNotReady as exc:
        return str(exc)
    except Exception as exc:  # noqa: BLE001 (e.g. Redis unreachable: say so in one line)
        return f"the online store ({settings.serving.backend}) cannot be opened: {exc}"
    print(
        f"serving {model.name} version {model.version} (features {model.feature_set_version}, alert threshold "
        f"{model.alert_threshold:.6f}); online store {settings.serving.backend}, state of {info.state_date}",
        flush=True,
    )
    return None


def bentoml_home(port: int) -> Path:
    """BentoML's home for the server on ``port`` (unless ``BENTOML_HOME`` is set): one per port.

    BentoML keeps its workers' Prometheus files in ``$BENTOML_HOME/prometheus_multiproc_dir`` and empties
    that folder whenever a server starts, so two servers sharing a home (a second ``make serve``, a
    rollout's smoke test, a test run) would erase each other's metrics. Serving from source needs no
    Bento store, so each port gets a home of its own under the service's files.
    """
    return get_settings().storage.serving_dir / "bentoml" / str(port)


def main(argv: list[str] | None = None) -> int:
    s = get_settings().serving
    parser = argparse.ArgumentParser(prog="python -m serving", description="Run the scoring service.")
    parser.add_argument("--host", default=s.host, help=f"listen address (default {s.host}, PIPELINE_SERVING_HOST)")
    parser.add_argument("--port", type=int, default=s.port, help=f"port (default {s.port}, PIPELINE_SERVING_PORT)")
    parser.add_argument("--check", action="store_true", help="only run the start-up checks")
    args = parser.parse_args(argv)
    reason = preflight()
    if reason:
        print(f"error: cannot serve: {reason}", file=sys.stderr)
        return 1
    if args.check:
        return 0
    os.environ.update({"PIPELINE_SERVING_HOST": args.host, "PIPELINE_SERVING_PORT": str(args.port)})
    os.environ.setdefault("BENTOML_HOME", str(bentoml_home(args.port)))
    os.environ.setdefault("BENTOML_DO_NOT_TRACK", "true")
    os.chdir(REPO_ROOT)
    bentoml = os.path.join(os.path.dirname(sys.executable), "bentoml")
    cmd = [bentoml, "serve", "serving.service:FraudScoring", "--host", args.host, "--port", str(args.port)]
    os.execv(bentoml, cmd)  # signals (Ctrl-C, SIGTERM) reach BentoML itself: a graceful stop
    return 0


if __name__ == "__main__":
    sys.exit(main())
