"""Access to the project's real Slurm testbed (``scripts/slurm-testbed.sh``)."""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from accord.adapters.federation_file import parse_federation_text
from accord.domain.federation.model import Federation
from tests.integration.in_force import uk_fr_federation

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "slurm-testbed.sh"
CLUSTERS = ("isambard", "jeanzay")

# The testbed's clusters are shared (queues, nodes, controllers a test stops): the tests that
# use them never run at the same time. Under pytest-xdist (scripts/test: ``-n logical --dist
# loadgroup``) every one is in this group, so they run one after another on one worker. A
# module that uses the testbed says ``pytestmark = SERIAL`` (or marks its testbed tests).
GROUP = "slurm-testbed"
SERIAL = pytest.mark.xdist_group(GROUP)


@dataclass(frozen=True)
class Cluster:
    name: str
    slurm_conf: str
    partition: str
    jobs_dir: str


def cluster_settings(name: str) -> Cluster:
    """The settings of one testbed cluster; skips (which fails CI) if the testbed is down.

    Raises:
        AssertionError: called, under pytest-xdist, by a test outside the testbed's group.
    """
    _check_serialised()
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


def _check_serialised() -> None:
    """Under pytest-xdist, refuse a test outside :data:`GROUP` (with ``--dist loadgroup``
    its node id ends in ``@slurm-testbed``): it could run beside another testbed test."""
    if "PYTEST_XDIST_WORKER" not in os.environ:
        return
    current = os.environ.get("PYTEST_CURRENT_TEST", "")   # "NODEID@GROUP[_GROUP...] (setup)"
    groups = current.rsplit("@", 1)[-1].split(" ")[0].split("_") if "@" in current else []
    assert GROUP in groups, (
        f"{current}: a test that uses the Slurm testbed must be in xdist group {GROUP!r} "
        "(pytestmark = SERIAL from tests/integration/slurm_testbed.py) and run with --dist loadgroup")


def ctld(action: str, cluster: str) -> None:
    """Stop or start one cluster's slurmctld (``stop-ctld`` / ``start-ctld``)."""
    _check_serialised()
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
    return uk_fr_federation(sites, "slurm testbed federation")
