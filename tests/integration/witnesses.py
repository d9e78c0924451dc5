"""Partners' witnesses as real ``accord witness serve`` processes on loopback addresses, for the
tests of the hub's cosigning: each keeps its key, port and state across a restart (a witness
that was down comes back as it was)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from tests.integration.test_witness import accord, free_port


@dataclass
class PartnerWitnessProcess:
    """One partner's witness: its key directory, address, state and the log it follows."""

    name: str
    partner: str
    host: str
    home: Path
    state: str
    log: str                       # ORIGIN=PUBKEY
    port: int = 0
    vkey: str = ""
    process: subprocess.Popen[str] | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def toml(self) -> str:
        """Its ``[[witnessing.witnesses]]`` table."""
        return (f'[[witnessing.witnesses]]\nname = "{self.name}"\npartner = "{self.partner}"\n'
                f'url = "{self.url}"\nkey = "{self.vkey}"\n')

    def keygen(self) -> None:
        self.vkey = accord("witness", "keygen", "--out", str(self.home / "key"), "--name",
                           f"witness.{self.partner}.example/accord").splitlines()[0]
        self.port = self.port or free_port(self.host)

    def start(self) -> None:
        command = [sys.executable, "-m", "accord", "witness", "serve",
                   "--key", str(self.home / "key" / "witness.key"), "--log", self.log,
                   "--state", self.state, "--port", str(self.port), "--host", self.host]
        self.process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                        text=True, start_new_session=True)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"witness {self.name} exited: {self.process.communicate()}")
            try:
                httpx.post(f"{self.url}/add-checkpoint", content=b"", timeout=5)
                return
            except httpx.TransportError:
                time.sleep(0.1)
        raise AssertionError(f"witness {self.name} did not answer within 60 s")

    def stop(self) -> None:
        if self.process is None:
            return
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        self.process.communicate()
        self.process = None
