"""A hub with agent sites, for the site-agent tests: a private CA and the hub's certificate,
a federation whose sites run agents, site keys, and ``accord site run`` as a real process."""

from __future__ import annotations

import os
import ssl
import subprocess
import sys
from pathlib import Path

import httpx

from accord.adapters.private_ca import PrivateCa, make_private_ca
from accord.site_runtime import keygen
from tests.integration.in_force import uk_fr_federation
from tests.integration.server import AccordProcess, ManagedProcess

SITES = {"isambard": "uk", "jeanzay": "fr"}


Tls = PrivateCa


def make_tls(where: Path, addresses: tuple[str, ...] = ("127.0.0.1",)) -> Tls:
    """A private CA and a hub certificate for ``addresses`` (and localhost)."""
    return make_private_ca(where, addresses)


def site_keys(where: Path, sites: tuple[str, ...] = tuple(SITES)) -> dict[str, str]:
    """A key pair per site in ``where/SITE/``; the public keys as the federation file takes them."""
    return {s: keygen(where / s) for s in sites}


def agent_federation_text(
    keys: dict[str, list[str]],
    *,
    silence_s: int = 20,
    gpus: int = 8,
    extra: str = "",
    sites_of: dict[str, str] | None = None,
    units: int = 100000,
) -> str:
    """Two partners (uk, fr), agent sites (``sites_of``: site -> partner; default one each,
    ``isambard`` and ``jeanzay``), and an agreement between them with ``units`` each way;
    ``keys``: each site's public keys."""
    sites = ""
    for site, partner in (sites_of or SITES).items():
        listed = ", ".join(f'"{k}"' for k in keys.get(site, []))
        sites += f"""
[[sites]]
id = "{site}"
name = "{site}"
partner = "{partner}"
grid_zone = "{"GB" if partner == "uk" else "FR"}"
pue = 1.1
backend = "agent"
[sites.agent]
keys = [{listed}]
silence_s = {silence_s}
[[sites.pools]]
id = "h100"
gpu_model = "H100"
gpus = {gpus}
power_w = 700
"""
    return uk_fr_federation(sites, "agent federation", units=units, extra=extra)


class TlsHub(AccordProcess):
    """``accord up`` serving HTTPS with a certificate of the test CA."""

    def __init__(
        self,
        data_dir: Path,
        federation: Path,
        tls: Tls,
        host: str = "127.0.0.1",
        database_url: str | None = None,
    ) -> None:
        super().__init__(data_dir, federation, database_url)
        self.tls = tls
        self.host = host
        self.url = f"https://{host}:{self.port}"
        self.start_args = ["--tls-cert", str(tls.cert), "--tls-key", str(tls.key), "--host", host]
        self.verify = ssl.create_default_context(cafile=str(tls.ca))

    def client(self) -> httpx.Client:
        return httpx.Client(
            base_url=self.url,
            timeout=30,
            verify=ssl.create_default_context(cafile=str(self.tls.ca)),
            headers={"Authorization": f"Bearer {self.token}"},
        )


class AgentProcess(ManagedProcess):
    """``accord site run`` as its own process (optionally inside a network namespace, as a user)."""

    def __init__(
        self,
        hub_url: str,
        site: str,
        key: Path,
        work_dir: Path,
        ca: Path,
        *,
        backend: str = "local",
        extra: tuple[str, ...] = (),
        prefix: tuple[str, ...] = (),
        env: dict[str, str] | None = None,
    ) -> None:
        self.env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
        self.args = [
            *prefix,
            sys.executable,
            "-m",
            "accord",
            "site",
            "run",
            "--hub",
            hub_url,
            "--site",
            site,
            "--key",
            str(key),
            "--work-dir",
            str(work_dir),
            "--ca",
            str(ca),
            "--backend",
            backend,
            "--heartbeat",
            "2",
            *extra,
        ]
        self.work_dir = work_dir
        self.log = work_dir.parent / f"agent-{site}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.work_dir.mkdir(parents=True, exist_ok=True)
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                self.args,
                stdout=log,
                stderr=log,
                stdin=subprocess.DEVNULL,
                env=self.env,
            )

    def output(self) -> str:
        return self.log.read_text() if self.log.exists() else ""


def agent_hub(where: Path, extra: str = "") -> tuple[dict[str, str], Tls, TlsHub]:
    """A key per site in ``where/keys``, a federation of the two agent sites, a private CA,
    and a hub serving HTTPS with it, started; (the sites' public keys, the CA, the hub)."""
    keys = site_keys(where / "keys")
    fed = where / "federation.toml"
    fed.write_text(agent_federation_text({s: [k] for s, k in keys.items()}, extra=extra))
    tls = make_tls(where / "tls")
    hub = TlsHub(where / "hub", fed, tls)
    hub.start()
    return keys, tls, hub
