"""Partners' witnesses as real ``accord witness serve`` processes on loopback addresses, for the
tests of the hub's cosigning: each keeps its key, port and state across a restart (a witness
that was down comes back as it was)."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from tests.integration.server import stop_group
from tests.integration.test_witness import accord, free_port, wait_answering


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
        wait_answering(self.process, self.url, f"witness {self.name}")

    def stop(self) -> None:
        if self.process is None:
            return
        stop_group(self.process)
        self.process.communicate()
        self.process = None
