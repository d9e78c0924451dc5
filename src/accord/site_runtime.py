"""The composition root of a site agent (``accord site run``): the site's key, its scheduler
(the local or Slurm backend, on the site's own machine), the agent's state in its work
directory and the signed line to the hub, driven by :class:`~accord.service.site_agent.SiteAgent`
until interrupted. The agent needs nothing from the hub's host but its URL (and the CA that
signed the hub's certificate, if private). See ``docs/design/site-agent.md``.
"""

from __future__ import annotations

import base64
import logging
import os
import threading
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from accord.adapters import keys
from accord.adapters.agent_metrics import AgentMetrics, MeteredHub, MeteredScheduler
from accord.adapters.agent_state import SqliteAgentState
from accord.adapters.clock import SystemClock
from accord.adapters.hub_link import HttpHubLink
from accord.adapters.job_files import JobDirectories
from accord.adapters.local_backend import LocalBackend
from accord.adapters.local_users import UnixUsers
from accord.adapters.slurm.accounts import SacctmgrAccounts
from accord.adapters.slurm.backend import SlurmBackend
from accord.domain.agent.protocol import SiteView
from accord.domain.enforcement.identity import parse_policy
from accord.domain.errors import AccordError, InvalidInput, Problem, Unavailable
from accord.domain.federation.model import BackendKind, GpuPool, LocalSettings, Site, SlurmSettings
from accord.ports import HubLink, SiteBackend
from accord.ports.enforcement import AppliedTree, EnforcementLink
from accord.service import log_context
from accord.service.site_agent import AgentSettings, SiteAgent
from accord.service.site_enforcer import EnforcementSettings, SiteEnforcer

log = logging.getLogger("accord.agent")
PRIVATE = "site.key"
PUBLIC = "site.pub"
MAX_BACKOFF_S = 30.0


@dataclass(frozen=True, slots=True)
class AgentOptions:
    """``accord site run``'s options."""

    hub: str
    site: str
    key: Path
    work_dir: Path
    backend: BackendKind = BackendKind.LOCAL
    cluster: str = ""
    ca: Path | None = None
    slurm_conf: str | None = None
    partition: str | None = None
    account: str | None = None
    heartbeat_s: float = 10.0
    resync_s: float = 3600.0
    log_format: str = "text"
    metrics_port: int | None = None
    metrics_host: str = "127.0.0.1"
    identity: str | None = None     # site enforcement: the identity policy (create:PREFIX, map:TEMPLATE)
    drift: str = "repair"           # repair: put drift back; report: only report it
    sync_s: float = 60.0            # seconds between enforcement syncs


def keygen(out: Path) -> str:
    """Make the site's key pair in ``out`` (``site.key``, mode 0600, and ``site.pub``); the
    public key as the federation file takes it (``ed25519:BASE64``).

    Raises:
        InvalidInput: a key is already there (never overwritten) or ``out`` cannot be written.
    """
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    public = "ed25519:" + base64.b64encode(key.public_key().public_bytes_raw()).decode()
    try:
        out.mkdir(parents=True, exist_ok=True)
        fd = os.open(out / PRIVATE, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise InvalidInput(
            [
                Problem(
                    "--out",
                    "already holds a site key (never overwritten)",
                    str(out / PRIVATE),
                    "an empty directory, or rotate into a new one",
                )
            ]
        ) from None
    except OSError as exc:
        raise InvalidInput([Problem("--out", f"cannot be written: {exc.strerror}", str(out))]) from None
    with os.fdopen(fd, "wb") as fh:
        fh.write(pem)
    (out / PUBLIC).write_text(public + "\n")
    return public


def site_record(view: SiteView, o: AgentOptions) -> Site:
    """The site as the agent's backend needs it: the hub's pools, the agent's scheduler settings."""
    pools = tuple(GpuPool(pid, model, gpus, 1.0) for pid, model, gpus in view.pools)
    jobs = o.work_dir / "jobs"
    if o.backend is BackendKind.SLURM:
        slurm = SlurmSettings(o.cluster, o.slurm_conf, o.partition, o.account, str(jobs))
        return Site(view.site, view.site, view.partner, "", 1.0, BackendKind.SLURM, pools, slurm=slurm)
    return Site(
        view.site, view.site, view.partner, "", 1.0, BackendKind.LOCAL, pools, local=LocalSettings(str(jobs))
    )


def backend_for(site: Site, o: AgentOptions, enforcer: SiteEnforcer | None = None) -> SiteBackend:
    """The site's own scheduler (with enforcement, jobs run as their owners' local users)."""
    if site.backend is BackendKind.SLURM:
        return SlurmBackend(site, o.work_dir / "jobs", run_as=enforcer.run_as if enforcer else None)
    return LocalBackend(site, o.work_dir / "jobs")


INTERVALS = {"--heartbeat": (1.0, 600.0), "--resync": (10.0, 7 * 86400.0), "--sync": (1.0, 86400.0)}
"""The agent's intervals in seconds, (least, most) each (``docs/design/site-agent.md``)."""


def check_intervals(o: AgentOptions) -> None:
    """Refuse an interval out of :data:`INTERVALS` (NaN and infinity included).

    Raises:
        InvalidInput: naming each option, its value and the range allowed.
    """
    given = {"--heartbeat": o.heartbeat_s, "--resync": o.resync_s, "--sync": o.sync_s}
    problems = [Problem(name, "is out of range", str(value), f"{lo:g} to {hi:g} seconds")
                for name, value in given.items()
                for lo, hi in [INTERVALS[name]] if not lo <= value <= hi]
    if problems:
        raise InvalidInput(problems)


def enforcer_for(o: AgentOptions, link: EnforcementLink,
                 memory: AppliedTree | None = None) -> SiteEnforcer | None:
    """The site's enforcer when ``--identity`` is given.

    Raises:
        InvalidInput: a bad policy or drift setting, or enforcement without Slurm.
    """
    if o.identity is None:
        return None
    policy = parse_policy(o.identity)
    if o.backend is not BackendKind.SLURM:
        raise InvalidInput([Problem("--identity", "site enforcement needs --backend slurm", o.backend.value,
                                    "slurm")])
    if o.drift not in ("repair", "report"):
        raise InvalidInput([Problem("--drift", "is not a drift setting", o.drift, "repair, report")])
    env = {"TZ": "UTC", **({"SLURM_CONF": o.slurm_conf} if o.slurm_conf else {})}
    settings = EnforcementSettings(policy, o.drift == "repair", o.sync_s)
    return SiteEnforcer(link, SacctmgrAccounts(o.cluster, env), UnixUsers(), settings, SystemClock(),
                        memory=memory)


def run(o: AgentOptions, stop: threading.Event | None = None) -> None:
    """Run the agent until ``stop`` is set (or interrupted); the hub being away is waited out.

    Raises:
        InvalidInput: the key file is unreadable or not an Ed25519 key, or the options are wrong.
    """
    if o.backend is BackendKind.SLURM and not o.cluster:
        raise InvalidInput(
            [Problem("--cluster", "is required with --backend slurm", None, "the Slurm cluster name")]
        )
    check_intervals(o)
    log_context.configure(o.log_format)
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per request otherwise
    private = keys.load(o.key, "--key")
    link = HttpHubLink(o.hub, o.site, private, ca=o.ca)
    state = SqliteAgentState(o.work_dir / "agent.db")
    enforcer = enforcer_for(o, link, state)
    if enforcer is not None:
        _open_to_visitors(o.work_dir)
    metrics = AgentMetrics(lambda: len(state.held()))
    if o.metrics_port is not None:
        metrics.serve(o.metrics_port, o.metrics_host)
    hub = MeteredHub(link, metrics)
    stop = stop or threading.Event()
    try:
        view = _site_view(hub, stop)
        if view is None:
            return
        agent = _agent(o, view, hub, state, private, metrics, enforcer)
        print(
            f"Accord site agent for {o.site} is up (hub {o.hub}; backend {o.backend.value}; "
            f"work dir {o.work_dir})",
            flush=True,
        )
        _loop(agent, stop, enforcer)
    finally:
        link.close()
        state.close()


def _agent(
    o: AgentOptions,
    view: SiteView,
    hub: HubLink,
    state: SqliteAgentState,
    private: bytes,
    metrics: AgentMetrics,
    enforcer: SiteEnforcer | None = None,
) -> SiteAgent:
    """The agent over the site's scheduler (as the hub describes the site), metered."""
    backend = backend_for(site_record(view, o), o, enforcer)
    root = Path(getattr(backend, "root", o.work_dir / "jobs" / o.site))
    return SiteAgent(
        o.site,
        MeteredScheduler(backend, metrics),
        hub,
        state,
        SystemClock(),
        private,
        _with_cluster(o),
        files=JobDirectories(lambda job: root / job.id),
        labels=enforcer.job_owner if enforcer else None,
    )


def _with_cluster(o: AgentOptions) -> AgentSettings:
    return AgentSettings(o.heartbeat_s, o.resync_s, cluster=o.cluster or o.site)


def _site_view(hub: HubLink, stop: threading.Event) -> SiteView | None:
    """The site as the hub knows it, waiting out a hub that is away.

    Raises:
        AccordError: the hub refused the agent (an unknown site or key).
    """
    delay = 1.0
    while not stop.is_set():
        try:
            return hub.site()
        except Unavailable as exc:
            log.warning("hub not reached (%s); again in %.0f s", exc, delay)
            stop.wait(delay)
            delay = min(MAX_BACKOFF_S, delay * 2)
    return None


def _open_to_visitors(work_dir: Path) -> None:
    """With enforcement, visitors' jobs run in directories below the work directory: it must
    be traversable (0711, never listable), and the agent's state readable by root only."""
    work_dir.chmod(0o711)
    for name in ("agent.db", "agent.db-wal", "agent.db-shm"):
        path = work_dir / name
        if path.exists():
            path.chmod(0o600)


def _enforce(enforcer: SiteEnforcer | None) -> None:
    """One enforcement sync when due; its failures are logged, never stop the agent's jobs."""
    if enforcer is None:
        return
    try:
        enforcer.step()
    except Unavailable as exc:
        log.warning("enforcement: hub not reached (%s)", exc)
    except AccordError as exc:
        log.error("enforcement: the hub refused: %s", exc)


def _loop(agent: SiteAgent, stop: threading.Event, enforcer: SiteEnforcer | None = None) -> None:
    delay = 1.0
    while not stop.is_set():
        try:
            _enforce(enforcer)
            agent.step()
            delay = 1.0
        except Unavailable as exc:
            log.warning("hub not reached (%s); again in %.0f s", exc, delay)
            stop.wait(delay)
            delay = min(MAX_BACKOFF_S, delay * 2)
        except AccordError as exc:
            log.error("the hub refused this agent: %s; again in %.0f s", exc, MAX_BACKOFF_S)
            stop.wait(MAX_BACKOFF_S)
        except Exception:
            log.exception("unexpected error in the agent's round; again in %.0f s", MAX_BACKOFF_S)
            stop.wait(MAX_BACKOFF_S)
