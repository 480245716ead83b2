"""A pipeline command in a process of its own, on a data dir of its own, armed to kill itself at a failpoint.

The crash-safety tests (``test_failures.py``, ``test_feature_crash.py``) run the job they kill this way;
:mod:`jobs.platform.faults` does the killing.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from jobs.config import REPO_ROOT
from jobs.platform.faults import ENV as FAILPOINT_ENV


def run_job(
    args: list[str], data_dir: Path, failpoint: str | None = None, timeout: float = 600, **env: str
) -> subprocess.CompletedProcess:
    """``python <args>`` in the repository with ``PIPELINE_DATA_DIR=data_dir`` and ``env``, killed (SIGKILL) at
    ``failpoint`` if given (an inherited failpoint is dropped); output captured as text."""
    full_env = {**os.environ, "PIPELINE_DATA_DIR": str(data_dir), **env}
    full_env.pop(FAILPOINT_ENV, None)
    if failpoint:
        full_env[FAILPOINT_ENV] = failpoint
    return subprocess.run(
        [sys.executable, *args], env=full_env, capture_output=True, text=True, timeout=timeout, cwd=REPO_ROOT
    )
