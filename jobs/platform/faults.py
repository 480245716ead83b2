"""Failure points: where the crash-safety tests kill a job between two of its commits.

``failpoint("ingest:after_bronze")`` does nothing unless ``PIPELINE_FAILPOINT`` names that point, in
which case the process kills itself with SIGKILL, as an out-of-memory kill or a lost node would: no
``finally`` block, no cleanup. Only the tests set the variable.
"""

from __future__ import annotations

import os
import signal

ENV = "PIPELINE_FAILPOINT"


def failpoint(name: str) -> None:
    if os.environ.get(ENV) == name:
        os.kill(os.getpid(), signal.SIGKILL)
