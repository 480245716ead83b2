"""A real ``python -m serving`` process for the serving tests: started on a free port, called, stopped."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import requests

from jobs.config import REPO_ROOT


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Service:
    """A running ``python -m serving`` process and a session to call it; counts answered transactions."""

    def __init__(self, proc: subprocess.Popen, url: str, log_path: Path) -> None:
        self.proc, self.url, self.log_path = proc, url, log_path
        self.http = requests.Session()
        self.answered = 0  # transactions answered with 200 (what the prediction log must hold)

    def post(self, body, **kwargs) -> requests.Response:
        resp = self.http.post(f"{self.url}/score", json=body, timeout=30, **kwargs)
        self.count(resp)
        return resp

    def count(self, resp) -> None:
        if resp.status_code == 200:
            payload = resp.json()
            self.answered += len(payload) if isinstance(payload, list) else 1

    def stop(self, sig=signal.SIGTERM, timeout: float = 60) -> int:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, sig)
            try:
                return self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
                raise
        return self.proc.returncode


def start_service(tmp_path: Path, env: dict | None = None, timeout: float = 120) -> Service:
    port = free_port()
    log_path = tmp_path / f"service-{port}.log"
    proc = subprocess.Popen(
        [sys.executable, "-m", "serving", "--port", str(port)],
        cwd=REPO_ROOT,
        env={**os.environ, "BENTOML_DO_NOT_TRACK": "true", **(env or {})},
        stdout=log_path.open("w"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"the service exited with {proc.returncode}:\n{log_path.read_text()[-3000:]}")
        try:
            if requests.get(f"{url}/readyz", timeout=2).status_code == 200:
                return Service(proc, url, log_path)
        except requests.RequestException:  # not listening yet, or busy starting
            pass
        time.sleep(0.5)
    os.killpg(proc.pid, signal.SIGKILL)
    raise AssertionError(f"the service was not ready in {timeout} s:\n{log_path.read_text()[-3000:]}")


__all__ = ["Service", "free_port", "start_service"]
