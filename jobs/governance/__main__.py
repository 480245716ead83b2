"""``python -m jobs.governance {explain-decision <transaction_id>, models}``: JSON on stdout."""

from __future__ import annotations

import argparse
import json
import sys


def main(argv: list[str] | None = None) -> int:
    from jobs.platform.logs import setup_logging

    parser = argparse.ArgumentParser(prog="python -m jobs.governance", description=__doc__.split(":")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    e = sub.add_parser(
        "explain-decision",
        help="which version scored a transaction, its score and features, and that version's lineage and approval",
    )
    e.add_argument("transaction_id")
    sub.add_parser("models", help="what the Models page shows: versions, gate, approvals, monitoring, deployments")
    args = parser.parse_args(argv)
    setup_logging()
    try:
        if args.command == "explain-decision":
            from jobs.governance.explain import explain_decision

            out = explain_decision(args.transaction_id)
        else:
            from jobs.governance.models_page import models_overview

            out = models_overview()
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(out, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
