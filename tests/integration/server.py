"""Run a real ``accord up`` in a subprocess for end-to-end tests."""

from __future__ import annotations

import contextlib
import io
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any
from unittest import mock

import httpx

from accord.cli import main


def stop_group(proc: subprocess.Popen[Any], first: signal.Signals = signal.SIGTERM,
               timeout: float = 20) -> None:
    """Stop a child started with ``start_new_session=True`` and its whole process group:
    ``first``, then SIGKILL after ``timeout`` seconds. Raises nothing if it has already ended."""
    if proc.poll() is not None:
        return
    os.killpg(proc.pid, first)
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class ManagedProcess:
    """A child process a test starts, stops (SIGINT, then SIGKILL) and may kill -9."""

    proc: subprocess.Popen[bytes] | None = None

    def kill9(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=30)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


class AccordProcess(ManagedProcess):
    """``accord up`` on a free port with its own data directory."""

    def __init__(self, data_dir: Path, federation: Path | None = None,
                 database_url: str | None = None) -> None:
        self.data_dir = data_dir
        self.federation = federation
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {**os.environ, "ACCORD_DATA_DIR": str(data_dir)}
        self.env.pop("ACCORD_DATABASE_URL", None)
        if database_url:
            self.env["ACCORD_DATABASE_URL"] = database_url
        self.proc: subprocess.Popen[bytes] | None = None
        self.start_args: list[str] = []
        self.log = data_dir / "server.log"
        self.verify: Any = True   # how the health check verifies an HTTPS hub (an SSLContext)

    def start(self, timeout: float = 30.0) -> None:
        args = [sys.executable, "-m", "accord", "up", "--port", str(self.port), *self.start_args]
        if self.federation:
            args += ["--federation", str(self.federation)]
        self.data_dir.mkdir(parents=True, exist_ok=True)
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(args, env=self.env, stdout=log, stderr=log,
                                         stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"accord up exited: {self.log.read_text()[-2000:]}")
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1, verify=self.verify).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        raise AssertionError(f"accord up did not answer: {self.log.read_text()[-2000:]}")

    @property
    def token(self) -> str:
        shared = self.env.get("ACCORD_ADMIN_TOKEN_FILE")
        return Path(shared or self.data_dir / "admin.token").read_text().strip()

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=30,
                            headers={"Authorization": f"Bearer {self.token}"})

    def cli(self, *args: str, check: bool = False) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "accord", *args], env=self.env,
                              capture_output=True, text=True, timeout=120, check=check)


def run_cli(data_dir: Path, *args: str, token: str | None = None) -> tuple[int, str, str]:
    """Run ``accord ARGS`` in this process against the data directory's server: as the local
    admin (its token), or with ``token`` in ``$ACCORD_TOKEN``. (exit status, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    with mock.patch.dict(os.environ, {"ACCORD_DATA_DIR": str(data_dir)}), \
            contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        os.environ.pop("ACCORD_SERVER", None)
        os.environ.pop("ACCORD_TOKEN", None)
        if token is not None:
            os.environ["ACCORD_TOKEN"] = token
        try:
            main(list(args))
            code = 0
        except SystemExit as exc:
            code = int(exc.code or 0)
    return code, out.getvalue(), err.getvalue()
