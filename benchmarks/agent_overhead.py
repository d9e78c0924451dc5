"""Per-job overhead of the site-agent path against plain ``sbatch`` (issue 19, "Speed").

On the Slurm testbed's cluster ``isambard`` (``scripts/slurm-testbed.sh``; run as root), the
same trivial job (``true``, 1 GPU, the testbed's partition, account ``accord``) is run two ways,
``--seq`` one after another ("sequential": each waits for the one before to end in Slurm) and
``--burst`` back to back ("burst"):

1. **plain**: ``sbatch --parsable ... --wrap true`` run directly. Measured per job: the
   ``sbatch`` command's wall time (and its CPU, from ``wait4``), and the time from its start to
   the job's first sighting RUNNING and ended in Slurm.
2. **agent**: a hub (``accord up``, SQLite, HTTPS with a private CA) and one real
   ``accord site run --backend slurm`` process for ``isambard``. Measured per job: the
   ``POST /api/v1/jobs`` call; from its return to the hub's hand-over (the job's story:
   ``dispatched``), to the agent taking the order and to its ``sbatch`` having returned (the
   agent's JSON log), to the job's first sighting in Slurm (``squeue``, job name
   ``accord-<id>``, comment ``accord:<id>``), RUNNING and ended there, and to the hub showing
   it final (this process lists the final jobs every 0.1 s while it waits; the story's time of
   ``completed`` is the end Slurm recorded, to the second, not when the hub learnt it). The
   hub's and the agent's CPU time from ``/proc`` (the agent's ``sbatch``/``squeue``/``sacct``
   children counted apart), per job, and also net of what each burns idle (measured for
   ``--idle`` seconds before the agent jobs, with the agent connected and the same status
   polling).

Slurm is watched by one ``squeue -h -t all`` every ``--poll`` seconds (about 5 ms a call on the
testbed), so sightings are late by up to that interval plus the call; the same watcher serves
both paths.

The ratio the issue's target is about (< 1): *agent path added time / sbatch's own time*, where
the added time is (POST call + POST-return-to-job-in-Slurm) minus the ``sbatch`` call it
replaces, per median. Also printed: the same against Slurm's own submit-to-ended time of the
trivial job, and the end-to-end difference (submitted to ended in Slurm vs to final at the
hub).

The testbed is shared with the test suite: the benchmark starts only once every testbed daemon
is up and neither cluster has had a job queued or running for 3 s (waiting up to 60 s for
each, and saying so), warns if other jobs appear on ``isambard`` while it runs, cancels every
Slurm job it created that has not ended, and stops the hub and the agent. Each sequential
phase is bounded by ``--seconds`` (a burst by half), all of them by ``--budget``: with the
defaults a run takes about two minutes (at most about three).

    uv run python benchmarks/agent_overhead.py [--seq 12] [--burst 20] [--poll 0.05] [--idle 5]
        [--seconds 60] [--budget 170]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tests.agent_world import AgentProcess, TlsHub, agent_federation_text, make_tls, site_keys
from tests.integration.slurm_testbed import CLUSTERS, Cluster, cluster_settings

from accord.domain.jobs.codec import parse_iso

CLUSTER = "isambard"
ACCOUNT = "accord"
ENDED = {
    "COMPLETED",
    "FAILED",
    "CANCELLED",
    "TIMEOUT",
    "NODE_FAIL",
    "OUT_OF_MEMORY",
    "PREEMPTED",
    "BOOT_FAIL",
}
STARTED = {"RUNNING", "COMPLETING", *ENDED}
HUB_FINAL = ("completed", "failed", "cancelled", "timed_out")
RUN = f"{os.getpid():x}"  # in the plain jobs' names: squeue shows ended jobs for MinJobAge


# ------------------------------------------------------------------ helpers
def slurm_env(c: Cluster) -> dict[str, str]:
    return {"SLURM_CONF": c.slurm_conf, "PATH": "/usr/bin:/bin"}


def pct(xs: Sequence[float], q: float) -> float:
    """The ``q`` quantile (0..1) of ``xs`` (nearest rank)."""
    s = sorted(xs)
    return s[min(len(s) - 1, max(0, round(q * (len(s) - 1))))] if s else float("nan")


def cpu(pid: int) -> tuple[float, float]:
    """(own, waited-for children's) CPU seconds of process ``pid`` (``/proc``)."""
    f = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    tick = os.sysconf("SC_CLK_TCK")
    return (int(f[11]) + int(f[12])) / tick, (int(f[13]) + int(f[14])) / tick


def active_jobs(clusters: Sequence[Cluster]) -> list[str]:
    """Jobs queued or running on any testbed cluster (``squeue``'s default states)."""
    out = []
    for c in clusters:
        r = subprocess.run(
            ["squeue", "-h", "-o", "%i %j %T"], env=slurm_env(c), capture_output=True, text=True, check=False
        )
        out += [f"{c.name}: {line}" for line in r.stdout.splitlines() if line.strip()]
    return out


def wait_for_quiet(clusters: Sequence[Cluster], quiet_s: float = 3.0, limit_s: float = 60.0) -> float:
    """Wait until no testbed cluster has had an active job for ``quiet_s``; seconds waited.

    Raises:
        SystemExit: still busy after ``limit_s`` (a test is using the testbed).
    """
    start = time.monotonic()
    quiet_since: float | None = None
    said = False
    while True:
        now = time.monotonic()
        busy = active_jobs(clusters)
        if busy:
            quiet_since = None
            if not said:
                print(
                    f"testbed busy ({len(busy)} active jobs, e.g. {busy[0]}); waiting {limit_s:.0f} s at most"
                )
                said = True
        elif quiet_since is None:
            quiet_since = now
        elif now - quiet_since >= quiet_s:
            return now - start
        if now - start > limit_s:
            raise SystemExit(f"the testbed stayed busy for {limit_s:.0f} s (a test is using it): {busy[:3]}")
        time.sleep(0.5)


def await_testbed(limit_s: float = 60.0) -> list[Cluster]:
    """The testbed clusters' settings, once ``scripts/slurm-testbed.sh status`` says all are up
    (a test may have stopped a controller for a while: waited out up to ``limit_s``).

    Raises:
        SystemExit: still not up after ``limit_s``.
    """
    start, said = time.monotonic(), False
    while True:
        try:
            return [cluster_settings(name) for name in CLUSTERS]
        except pytest.skip.Exception as exc:
            if time.monotonic() - start > limit_s:
                raise SystemExit(str(exc)) from None
            if not said:
                print(f"testbed not all up (a test stopped part of it?); waiting {limit_s:.0f} s at most")
                said = True
            time.sleep(1.0)


# ------------------------------------------------------------------ the Slurm watcher
@dataclass
class Sighting:
    job_id: str = ""
    seen: float | None = None  # first in squeue at all (wall clock, time.time())
    started: float | None = None  # first RUNNING or later
    ended: float | None = None  # first in a final state
    state: str = ""


@dataclass
class Watcher:
    """One ``squeue -h -t all`` every ``every`` seconds; the first sighting of each job name."""

    cluster: Cluster
    every: float
    jobs: dict[str, Sighting] = field(default_factory=dict)
    known: set[str] = field(default_factory=set)  # names present before we started (ignored)
    lock: threading.Lock = field(default_factory=threading.Lock)
    stop: threading.Event = field(default_factory=threading.Event)
    calls: int = 0

    def look(self) -> list[tuple[str, str, str]]:
        r = subprocess.run(
            ["squeue", "-h", "-t", "all", "-o", "%j|%i|%T"],
            env=slurm_env(self.cluster),
            capture_output=True,
            text=True,
            check=False,
        )
        at = time.time()
        self.calls += 1
        rows = [tuple(line.split("|", 2)) for line in r.stdout.splitlines() if line.count("|") >= 2]
        with self.lock:
            for name, job_id, state in rows:
                if name in self.known:
                    continue
                s = self.jobs.setdefault(name, Sighting(job_id))
                s.seen = s.seen or at
                if state in STARTED and s.started is None:
                    s.started = at
                if state in ENDED and s.ended is None:
                    s.ended = at
                s.state = state
        return rows  # type: ignore[return-value]

    def run(self) -> None:
        while not self.stop.is_set():
            self.look()
            self.stop.wait(self.every)

    def get(self, name: str) -> Sighting | None:
        with self.lock:
            return self.jobs.get(name)

    def wait(self, names: Sequence[str], what: str, until: float) -> bool:
        """Wait until every job of ``names`` has been sighted ``what`` (seen/started/ended)."""
        while time.monotonic() < until:
            with self.lock:
                if all(getattr(self.jobs.get(n) or Sighting(), what) is not None for n in names):
                    return True
            time.sleep(self.every / 2)
        return False


@contextmanager
def watching(cluster: Cluster, every: float) -> Iterator[Watcher]:
    w = Watcher(cluster, every)
    w.known = {row[0] for row in w.look()}
    w.jobs.clear()
    t = threading.Thread(target=w.run, name="squeue-watcher", daemon=True)
    t.start()
    try:
        yield w
    finally:
        w.stop.set()
        t.join(timeout=5)


# ------------------------------------------------------------------ plain sbatch
@dataclass
class Plain:
    name: str
    job_id: str
    start: float  # wall clock
    call_s: float
    cpu_s: float


def sbatch(c: Cluster, name: str, chdir: Path) -> Plain:
    """One plain ``sbatch --parsable`` of a trivial 1-GPU job; its wall and CPU time (wait4)."""
    argv = [
        "sbatch", "--parsable", "-J", name, f"--comment=bench:{name}", "-p", c.partition, "-A", ACCOUNT,
        "--gpus=1", "--time=5", "--no-requeue", f"--chdir={chdir}", "--output=/dev/null", "--wrap", "true",
    ]  # fmt: skip
    start, t = time.time(), time.perf_counter()
    p = subprocess.Popen(argv, env=slurm_env(c), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out, err = p.stdout.read() if p.stdout else b"", p.stderr.read() if p.stderr else b""
    _, status, usage = os.wait4(p.pid, 0)
    p.returncode = os.waitstatus_to_exitcode(status)
    call = time.perf_counter() - t
    if p.returncode != 0:
        raise SystemExit(f"sbatch failed: {err.decode(errors='replace')}")
    job_id = out.decode().strip().split(";")[0]
    return Plain(name, job_id, start, call, usage.ru_utime + usage.ru_stime)


def plain_phase(
    c: Cluster, w: Watcher, n: int, tag: str, burst: bool, chdir: Path, until: float, created: list[str]
) -> list[Plain]:
    jobs: list[Plain] = []
    for i in range(n):
        if time.monotonic() > until:
            break
        jobs.append(sbatch(c, f"bench-ovh-{RUN}-{tag}-{i}", chdir))
        created.append(jobs[-1].name)
        if not burst:
            w.wait([jobs[-1].name], "ended", min(until, time.monotonic() + 30))
    w.wait([j.name for j in jobs], "ended", until)
    return jobs


# ------------------------------------------------------------------ the agent path
@dataclass
class ViaAgent:
    job: str
    post_start: float
    post_s: float
    slurm_name: str = ""
    story: dict[str, float] = field(default_factory=dict)  # state entered -> wall clock
    took: float | None = None  # the agent took the order (its log)
    sbatched: float | None = None  # the agent's sbatch had returned (its log)


def post_job(client: httpx.Client, i: int, tag: str) -> ViaAgent:
    doc = {
        "name": f"ovh-{tag}-{i}",
        "gpus": 1,
        "site": CLUSTER,
        "partner": "fr",
        "time_limit": "5m",
        "command": ["true"],
    }
    start, t = time.time(), time.perf_counter()
    r = client.post("/api/v1/jobs", json=doc)
    call = time.perf_counter() - t
    if r.status_code != 201:
        raise SystemExit(f"submission refused ({r.status_code}): {r.text[:300]}")
    job_id = str(r.json()["id"])
    return ViaAgent(job_id, start, call, f"accord-{job_id}")


FINAL_SEEN: dict[str, float] = {}  # job id -> when this process first saw it final at the hub


class HubPoller(threading.Thread):
    """Lists the hub's final jobs every ``every`` seconds, noting in :data:`FINAL_SEEN` when
    each was first seen final (the story's time of a job's end is the end the site reported,
    to the second, not when the hub learnt it)."""

    def __init__(self, client: httpx.Client, every: float = 0.1) -> None:
        super().__init__(name="hub-poller", daemon=True)
        self.client, self.every, self.halt = client, every, threading.Event()

    def run(self) -> None:
        while not self.halt.is_set():
            try:
                r = self.client.get("/api/v1/jobs", params={"state": list(HUB_FINAL), "limit": 1000})
            except httpx.TransportError:
                r = None
            at = time.time()
            if r is not None and r.status_code == 200:
                for j in r.json()["jobs"]:
                    FINAL_SEEN.setdefault(j["id"], at)
            self.halt.wait(self.every)


def hub_final(ids: Sequence[str], until: float) -> bool:
    """Wait until the :class:`HubPoller` has seen every job final at the hub."""
    while time.monotonic() < until:
        if all(i in FINAL_SEEN for i in ids):
            return True
        time.sleep(0.02)
    return False


def agent_phase(
    client: httpx.Client, w: Watcher, n: int, tag: str, burst: bool, until: float, created: list[str]
) -> list[ViaAgent]:
    """Submit ``n`` jobs through the hub (sequential: each after the one before has ended in
    Slurm, as the plain ones); wait until all are final at the hub."""
    jobs: list[ViaAgent] = []
    for i in range(n):
        if time.monotonic() > until:
            break
        jobs.append(post_job(client, i, tag))
        created.append(jobs[-1].slurm_name)
        if not burst:
            w.wait([jobs[-1].slurm_name], "ended", min(until, time.monotonic() + 30))
    hub_final([j.job for j in jobs], until + 15)
    return jobs


def fill_in(client: httpx.Client, jobs: list[ViaAgent], agent_log: Path) -> None:
    """The hub's story and the agent's log lines of each job."""
    took: dict[str, float] = {}
    sbatched: dict[str, float] = {}
    for line in agent_log.read_text(errors="replace").splitlines():
        if not line.startswith("{"):
            continue
        try:
            d = json.loads(line)
        except ValueError:
            continue
        at = parse_iso(d.get("time"))
        if at is None:
            continue
        if m := re.match(r"took order (\S+)\.\d+/dispatch", d.get("event", "")):
            took.setdefault(m.group(1), at.timestamp())
        elif m := re.match(r"job (\S+)\.\d+ submitted as", d.get("event", "")):
            sbatched.setdefault(m.group(1), at.timestamp())
    for j in jobs:
        d = client.get(f"/api/v1/jobs/{j.job}").json()
        for e in d.get("story", []):
            at = parse_iso(e.get("at"))
            if at is not None:
                j.story.setdefault(e["after"], at.timestamp())
        j.took, j.sbatched = took.get(j.job), sbatched.get(j.job)


# ------------------------------------------------------------------ reporting
def since(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else 1000 * (b - a)


def row(label: str, xs: Sequence[float | None]) -> tuple[str, float, float, int]:
    got = [x for x in xs if x is not None]
    print(f"  {label:<58} {pct(got, 0.5):9.1f} {pct(got, 0.9):9.1f} {len(got):4d}/{len(xs)}")
    return label, pct(got, 0.5), pct(got, 0.9), len(got)


def report_plain(w: Watcher, jobs: list[Plain], title: str) -> dict[str, float]:
    print(f"\n  plain sbatch, {title} ({len(jobs)} jobs)          {'p50 ms':>9} {'p90 ms':>9} seen")
    s = [w.get(j.name) for j in jobs]
    call = row("sbatch --parsable call (wall)", [1000 * j.call_s for j in jobs])
    row("sbatch CPU (user+sys, wait4)", [1000 * j.cpu_s for j in jobs])
    run = row(
        "sbatch start -> first seen RUNNING",
        [since(j.start, x.started if x else None) for j, x in zip(jobs, s, strict=True)],
    )
    end = row(
        "sbatch start -> first seen ended",
        [since(j.start, x.ended if x else None) for j, x in zip(jobs, s, strict=True)],
    )
    return {"call": call[1], "running": run[1], "ended": end[1]}


def report_agent(w: Watcher, jobs: list[ViaAgent], title: str) -> dict[str, float]:
    print(f"\n  agent path, {title} ({len(jobs)} jobs)          {'p50 ms':>9} {'p90 ms':>9} seen")
    s = [w.get(j.slurm_name) for j in jobs]
    end_post = [j.post_start + j.post_s for j in jobs]
    post = row("POST /api/v1/jobs call (wall)", [1000 * j.post_s for j in jobs])
    row(
        "POST return -> hub hands over (story: dispatched)",
        [since(e, j.story.get("dispatched")) for e, j in zip(end_post, jobs, strict=True)],
    )
    row(
        "POST return -> agent took the order (its log)",
        [since(e, j.took) for e, j in zip(end_post, jobs, strict=True)],
    )
    row(
        "POST return -> agent's sbatch returned (its log)",
        [since(e, j.sbatched) for e, j in zip(end_post, jobs, strict=True)],
    )
    in_slurm = row(
        "POST return -> first seen in Slurm (squeue)",
        [since(e, x.seen if x else None) for e, x in zip(end_post, s, strict=True)],
    )
    row(
        "POST return -> first seen RUNNING",
        [since(e, x.started if x else None) for e, x in zip(end_post, s, strict=True)],
    )
    row(
        "POST return -> first seen ended in Slurm",
        [since(e, x.ended if x else None) for e, x in zip(end_post, s, strict=True)],
    )
    row(
        "ended in Slurm -> hub shows it final (polled)",
        [since(x.ended if x else None, FINAL_SEEN.get(j.job)) for j, x in zip(jobs, s, strict=True)],
    )
    e2e = row(
        "POST start -> hub shows it final (polled)",
        [since(j.post_start, FINAL_SEEN.get(j.job)) for j in jobs],
    )
    states = sorted({(w.get(j.slurm_name) or Sighting()).state or "never seen" for j in jobs})
    print(f"    Slurm states at the end: {', '.join(states)}")
    return {"post": post[1], "in_slurm": in_slurm[1], "completed": e2e[1]}


# ------------------------------------------------------------------ the run
def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seq", type=int, default=12, help="jobs one after another, each way")
    parser.add_argument("--burst", type=int, default=20, help="jobs back to back, each way")
    parser.add_argument("--poll", type=float, default=0.05, help="seconds between squeue looks")
    parser.add_argument("--idle", type=float, default=5.0, help="seconds of idle CPU measured")
    parser.add_argument(
        "--seconds", type=float, default=60.0, help="bound on each sequential phase (a burst: half)"
    )
    parser.add_argument("--budget", type=float, default=170.0, help="bound on the whole run's phases")
    args = parser.parse_args()
    began = time.monotonic()
    if os.geteuid() != 0:
        raise SystemExit("the Slurm testbed needs root")
    clusters = await_testbed()
    c = next(x for x in clusters if x.name == CLUSTER)
    print(
        f"machine: {os.cpu_count()} CPUs, Python {platform.python_version()}; load average "
        f"{' '.join(f'{x:.2f}' for x in os.getloadavg())} at the start; cluster {c.name}, partition "
        f"{c.partition}, account {ACCOUNT}; {args.seq} sequential and {args.burst} burst jobs each way; "
        f"squeue every {args.poll} s"
    )
    waited = wait_for_quiet(clusters)
    print(f"testbed quiet after {waited:.1f} s" + (" (waited for other jobs)" if waited > 3.6 else ""))

    deadline = began + float(args.budget)

    def bound(burst: bool) -> float:
        return min(deadline, time.monotonic() + float(args.seconds / 2 if burst else args.seconds))

    created: list[str] = []  # the Slurm job name of every job we made
    with tempfile.TemporaryDirectory(prefix="accord-ovh-") as tmp_name, watching(c, args.poll) as w:
        tmp = Path(tmp_name)
        tmp.chmod(0o755)
        chdir = tmp / "plain"
        chdir.mkdir()
        hub: TlsHub | None = None
        agent: AgentProcess | None = None
        try:
            # -- plain sbatch
            seq = plain_phase(c, w, args.seq, "seq", False, chdir, bound(False), created)
            burst = plain_phase(c, w, args.burst, "burst", True, chdir, bound(True), created)

            # -- the hub and the agent
            keys = site_keys(tmp / "keys")  # both sites need a key; only isambard's agent runs
            fed = tmp / "federation.toml"
            fed.write_text(agent_federation_text({s: [k] for s, k in keys.items()}, silence_s=30))
            tls = make_tls(tmp / "tls")
            hub = TlsHub(tmp / "hub", fed, tls)
            hub.start()
            assert hub.proc is not None
            agent = AgentProcess(
                hub.url,
                CLUSTER,
                tmp / "keys" / CLUSTER / "site.key",
                tmp / "agent",
                tls.ca,
                backend="slurm",
                extra=(
                    "--cluster", CLUSTER, "--slurm-conf", c.slurm_conf, "--partition", c.partition,
                    "--account", ACCOUNT, "--heartbeat", "10", "--log-format", "json",
                ),
            )  # fmt: skip
            agent.start()
            assert agent.proc is not None
            with hub.client() as client, hub.client() as polling:
                poller = HubPoller(polling)
                poller.start()
                warm = agent_phase(client, w, 1, "warm-up", False, time.monotonic() + 60, created)
                if not warm or not hub_final([warm[0].job], time.monotonic() + 1):
                    raise SystemExit(f"the warm-up job did not finish: agent log:\n{agent.output()[-2000:]}")
                # idle: the agent connected, the same status polling, no job
                h0, a0 = cpu(hub.proc.pid), cpu(agent.proc.pid)
                t = time.monotonic()
                hub_final(["no-such-job"], t + args.idle)
                idle_s = time.monotonic() - t
                h1, a1 = cpu(hub.proc.pid), cpu(agent.proc.pid)
                idle = {"hub": (h1[0] - h0[0]) / idle_s, "agent": (a1[0] - a0[0]) / idle_s,
                        "agent children": (a1[1] - a0[1]) / idle_s}  # fmt: skip

                phases: dict[str, tuple[list[ViaAgent], float, tuple[float, float], tuple[float, float]]] = {}
                for tag, is_burst in (("seq", False), ("burst", True)):
                    h0, a0, t = cpu(hub.proc.pid), cpu(agent.proc.pid), time.monotonic()
                    n = args.burst if is_burst else args.seq
                    jobs = agent_phase(client, w, n, tag, is_burst, bound(is_burst), created)
                    w.wait([j.slurm_name for j in jobs], "ended", time.monotonic() + 5)
                    h1, a1, took = cpu(hub.proc.pid), cpu(agent.proc.pid), time.monotonic() - t
                    hub_cpu = (h1[0] - h0[0], h1[0] - h0[0] - idle["hub"] * took)
                    agent_cpu = (a1[0] - a0[0], a1[1] - a0[1])
                    phases[tag] = (jobs, took, hub_cpu, agent_cpu)
                    fill_in(client, jobs, agent.log)
                load_end = os.getloadavg()
                poller.halt.set()
                poller.join(timeout=5)
        finally:
            if agent is not None:
                agent.stop()
            if hub is not None:
                hub.stop()
            cancel_unended(c, w, created)

    loads = " ".join(f"{x:.2f}" for x in load_end)
    print(
        f"\n(whole run {time.monotonic() - began:.0f} s; load average {loads} at the end; "
        f"{w.calls} squeue looks)"
    )
    ours = set(created)
    foreign = sorted(n for n in w.jobs if n not in ours)
    if foreign:
        print(f"WARNING: {len(foreign)} other jobs ran on {c.name} meanwhile (a test?): {foreign[:5]}")
    p_seq = report_plain(w, seq, "sequential")
    p_burst = report_plain(w, burst, "burst")
    a_res = {}
    for tag, (jobs, took, hub_cpu, agent_cpu) in phases.items():
        a_res[tag] = report_agent(w, jobs, "sequential" if tag == "seq" else "burst")
        n = max(1, len(jobs))
        print(
            f"    CPU per job over {took:.1f} s: hub {1000 * hub_cpu[0] / n:.1f} ms "
            f"(net of idle {1000 * hub_cpu[1] / n:.1f} ms; idle {1000 * idle['hub']:.0f} ms/s), "
            f"agent {1000 * agent_cpu[0] / n:.1f} ms + its Slurm commands {1000 * agent_cpu[1] / n:.1f} ms "
            f"(agent idle {1000 * idle['agent']:.0f} ms/s, children {1000 * idle['agent children']:.0f} ms/s)"
        )
    print("\n  the target (issue 19): the agent path adds less than sbatch's own time per job")
    for tag, p in (("seq", p_seq), ("burst", p_burst)):
        a = a_res.get(tag)
        if not a:
            continue
        added = a["post"] + a["in_slurm"] - p["call"]
        e2e = a["completed"] - p["ended"]
        print(
            f"  {'sequential' if tag == 'seq' else 'burst':<10}: added to reach Slurm {added:8.1f} ms "
            f"(POST {a['post']:.1f} + POST-return-to-in-Slurm {a['in_slurm']:.1f} - sbatch {p['call']:.1f}); "
            f"/ sbatch call {added / p['call']:6.1f}x ({'met' if added < p['call'] else 'NOT met'}); "
            f"/ Slurm's submit-to-ended {added / p['ended']:.2f}x; end to end {e2e:+.0f} ms "
            f"(to final at the hub {a['completed']:.0f} vs ended in Slurm {p['ended']:.0f})"
        )
    print(f"  (idle measured over {idle_s:.1f} s)")


def cancel_unended(c: Cluster, w: Watcher, created: list[str]) -> None:
    """scancel every job we made that Slurm does not show ended."""
    w.look()
    left = [name for name in created if (w.get(name) or Sighting()).ended is None]
    for name in left:
        subprocess.run(["scancel", "-n", name], env=slurm_env(c), capture_output=True, check=False)
    if left:
        print(f"cancelled {len(left)} jobs that had not ended: {left[:5]}")


if __name__ == "__main__":
    main()
