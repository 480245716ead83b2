"""``python -m jobs.governance {explain-decision <transaction_id>, models, reproduce <version>}``: JSON on stdout.

``reproduce`` exits with 2 when the rebuilt model differs from the registered one.
"""

from __future__ import annotations

import argparse
import json
import sys


def main(argv: list[str] | None = None) -> int:
    from jobs.platform.logs import setup_logging

    parser = argparse.ArgumentParser(prog="python -m jobs.governance", description=__doc__.split(":")[0].strip())
    sub = parser.add_subparsers(dest="command", required=True)
    e = sub.add_parser(
        "explain-decision",
        help="which version scored a transaction, its score and features, and that version's lineage and approval",
    )
    e.add_argument("transaction_id")
    sub.add_parser("models", help="what the Models page shows: versions, gate, approvals, monitoring, deployments")
    r = sub.add_parser(
        "reproduce",
        help="rebuild a version's training set from its pinned Delta versions, refit, and compare metrics and scores",
    )
    r.add_argument("version")
    args = parser.parse_args(argv)
    setup_logging()
    try:
        if args.command == "explain-decision":
            from jobs.governance.explain import explain_decision

            out = explain_decision(args.transaction_id)
        elif args.command == "reproduce":
            from jobs.governance.reproduce import reproduce

            out = reproduce(args.version)
            print(json.dumps(out, indent=2, default=str))
            return 0 if out["reproduced"] else 2
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
