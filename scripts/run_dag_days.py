"""Run a DAG for a range of days through Airflow's dag.test(), in one process.

    python scripts/run_dag_days.py data_pipeline 2026-01-01 2026-01-03

Same as `airflow dags test <dag> <day>` per day, but the Spark JVM started by the first run is
reused by the next ones (a cold JVM costs about a minute on 2 cores). Exits non-zero if a run or
any of its tasks does not succeed.
"""

from __future__ import annotations

import sys
from datetime import date, datetime, timedelta, timezone
from pathlib import Path


def main(argv: list[str]) -> int:
    if len(argv) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    dag_id, first, last = argv[0], date.fromisoformat(argv[1]), date.fromisoformat(argv[2])
    from airflow.dag_processing.dagbag import DagBag

    dags_dir = Path(__file__).resolve().parent.parent / "dags"
    bag = DagBag(dag_folder=str(dags_dir))
    if bag.import_errors:
        print(f"DAG import errors: {bag.import_errors}", file=sys.stderr)
        return 1
    dag = bag.dags[dag_id]
    day = first
    while day <= last:
        run = dag.test(logical_date=datetime(day.year, day.month, day.day, tzinfo=timezone.utc))
        states = {ti.task_id: str(ti.state) for ti in run.get_task_instances()}
        ok = run.state == "success" and states and all(s == "success" for s in states.values())
        bad = {k: v for k, v in states.items() if v != "success"}
        print(f"{dag_id} {day}: {run.state}, {len(states) - len(bad)}/{len(states)} tasks succeeded {bad or ''}".rstrip(), flush=True)
        if not ok:
            return 1
        day += timedelta(days=1)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
