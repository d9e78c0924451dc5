"""Access to the project's real Slurm testbed (``scripts/slurm-testbed.sh``)."""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from accord.adapters.federation_file import parse_federation_text
from accord.domain.federation.model import Federation
from tests.integration.in_force import agreements_end

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "slurm-testbed.sh"
CLUSTERS = ("isambard", "jeanzay")


@dataclass(frozen=True)
class Cluster:
    name: str
    slurm_conf: str
    partition: str
    jobs_dir: str


def cluster_settings(name: str) -> Cluster:
    """The settings of one testbed cluster; skips (which fails CI) if the testbed is down."""
    if os.geteuid() != 0:
        pytest.skip("the Slurm testbed needs root")
    status = subprocess.run([str(SCRIPT), "status"], capture_output=True, text=True, check=False)
    if status.returncode != 0:
        pytest.skip(f"Slurm testbed not running (scripts/slurm-testbed.sh start): {status.stdout}")
    out = subprocess.run([str(SCRIPT), "env", name], capture_output=True, text=True, check=True)
    env = dict(line.removeprefix("export ").split("=", 1) for line in out.stdout.splitlines()
               if line.startswith("export "))
    return Cluster(name, env["SLURM_CONF"], env["ACCORD_SLURM_PARTITION"],
                   env["ACCORD_SLURM_JOBS_DIR"])


def ctld(action: str, cluster: str) -> None:
    """Stop or start one cluster's slurmctld (``stop-ctld`` / ``start-ctld``)."""
    subprocess.run([str(SCRIPT), f"{action}-ctld", cluster], check=True, capture_output=True)


def slurm_federation(partner_of: dict[str, str] | None = None) -> Federation:
    """A federation whose sites are the testbed's clusters (isambard: uk, jeanzay: fr)."""
    return parse_federation_text(slurm_federation_text(partner_of), "slurm-testbed.toml")


def slurm_federation_text(partner_of: dict[str, str] | None = None) -> str:
    """The TOML of :func:`slurm_federation`."""
    partner_of = partner_of or {"isambard": "uk", "jeanzay": "fr"}
    sites = ""
    for name in CLUSTERS:
        c = cluster_settings(name)
        sites += f"""
[[sites]]
id = "{name}"
name = "{name}"
partner = "{partner_of[name]}"
grid_zone = "{'GB' if partner_of[name] == 'uk' else 'FR'}"
pue = 1.1
backend = "slurm"
[sites.slurm]
cluster = "{name}"
slurm_conf = "{c.slurm_conf}"
partition = "{c.partition}"
account = "accord"
workdir = "{c.jobs_dir}"
[[sites.pools]]
id = "h100"
gpu_model = "H100"
gpus = 8
power_w = 700
"""
    return f"""
[federation]
name = "slurm testbed federation"
reference_unit = "H100-hour"
[[gpu_models]]
name = "H100"
[[exchange_rates]]
gpu_model = "H100"
units_per_gpu_hour = 1.0
valid_from = 2024-01-01
[[partners]]
id = "uk"
name = "UK"
country = "GB"
[[partners]]
id = "fr"
name = "France"
country = "FR"
{sites}
[[agreements]]
id = "uk-fr"
name = "UK-France"
parties = ["uk", "fr"]
start = 2025-01-01
end = {agreements_end().isoformat()}
[[agreements.quotas]]
requester = "uk"
host = "fr"
units = 100000
[[agreements.quotas]]
requester = "fr"
host = "uk"
units = 100000
"""
