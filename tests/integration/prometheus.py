"""A real Prometheus for tests and benchmarks: Debian's ``prometheus`` (``scripts/test``
installs it) on a free port, scraping one target every second, queried through its HTTP API."""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from tests.integration.server import free_port


class Prometheus:
    """``prometheus`` on a free port, scraping one target every second."""

    def __init__(self, tmp: Path, target: str, interval_s: float = 1.0) -> None:
        binary = shutil.which("prometheus")
        assert binary, "prometheus is not installed: scripts/test installs it (apt-get install prometheus)"
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        tmp.mkdir(parents=True, exist_ok=True)
        config = tmp / "prometheus.yml"
        config.write_text(
            f"global: {{scrape_interval: {interval_s:g}s, evaluation_interval: {interval_s:g}s}}\n"
            "scrape_configs:\n"
            "  - {job_name: accord, metrics_path: /metrics,\n"
            f"     static_configs: [{{targets: ['{target}']}}]}}\n")
        self.log = tmp / "prometheus.log"
        with open(self.log, "wb") as out:
            self.proc = subprocess.Popen(
                [binary, f"--config.file={config}", f"--web.listen-address=127.0.0.1:{self.port}",
                 f"--storage.tsdb.path={tmp / 'tsdb'}"],
                stdout=out, stderr=out, stdin=subprocess.DEVNULL)

    def wait_ready(self, timeout: float = 60.0) -> None:
        wait_until(lambda: self._ready(), timeout, "Prometheus to answer /-/ready", self.log)

    def _ready(self) -> bool:
        assert self.proc.poll() is None, f"prometheus exited: {self.log.read_text()[-2000:]}"
        try:
            return httpx.get(f"{self.url}/-/ready", timeout=2).status_code == 200
        except httpx.TransportError:
            return False

    def query(self, promql: str) -> list[dict[str, Any]]:
        """The instant vector ``promql`` evaluates to now."""
        r = httpx.get(f"{self.url}/api/v1/query", params={"query": promql}, timeout=10).json()
        assert r["status"] == "success", r
        return list(r["data"]["result"])

    def scalar(self, promql: str) -> float | None:
        """The value of a one-element result (None: empty)."""
        result = self.query(promql)
        assert len(result) <= 1, result
        return float(result[0]["value"][1]) if result else None

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def wait_until(check: Callable[[], bool], timeout: float, what: str, log: Path | None = None) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            tail = log.read_text()[-2000:] if log is not None and log.exists() else ""
            raise AssertionError(f"waited {timeout:g} s for {what}\n{tail}")
        time.sleep(0.25)
