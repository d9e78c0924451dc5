"""Orders per second through one hub with 50 simulated site agents (issue 19, "Speed").

Starts one real ``accord up`` (plain HTTP on 127.0.0.1, a free port; SQLite by default, or
``--store postgres``: a database of its own, dropped afterwards) over a federation of
``--agents`` agent sites, each with its own Ed25519 key. Then, in this process, one thread per
site does over HTTP what ``accord site run`` does, with the real client
(:class:`accord.adapters.hub_link.HttpHubLink`, every request signed per RFC 9421): a
resynchronising heartbeat, then long polls for orders; each answer's orders are acknowledged,
reported running, and reported completed with usage signed by the site's key (no job runs;
no output is sent, so no log requests). Heartbeats go every ``--heartbeat`` seconds.
``--protocol exchange`` (the default, as ``accord site run``): one ``POST /exchange`` a round
carries the last answer's acknowledgements and running reports and the answer before's
completed reports, and fetches orders; unlike ``accord site run`` it long-polls only when it
carries nothing, so what it carries is timed as taken. ``--protocol separate``: ``GET
/orders``, ``POST /acks``, ``POST /reports``, the request pattern before ``/exchange``.

Jobs (``--jobs``, pinned round-robin to the sites with the job field ``site``) are submitted
through ``POST /api/v1/jobs`` in batches of ``--batch`` (``--connections`` at a time, as fast as
the hub takes them); the hub's dispatcher places them and writes the orders. Measured:

* orders delivered and acknowledged per second (agents' clock: first submission to last ack,
  and over the middle 80 % of the acks, the steady state);
* jobs completed end to end per second (hub's clock: first ``submitted_at`` to the last job's
  entry into ``completed``), and each job's submission-to-completed time;
* latency of the agents' requests (long polls that returned orders, acks, reports);
* the hub process's CPU time per order (``/proc``).

The baseline, measured first in the same run against the same hub, is plain submission:
``--baseline-jobs`` jobs through ``POST /api/v1/jobs`` the same way before any agent has
connected (so none is dispatched; they are cancelled before the agents start).

The 50 agents are threads of this one process (the machine has 2 cores: the hub gets one
process, the agents and the submitter share the other); their signing and HTTP work is
measured in this process's CPU time.

    uv run python benchmarks/agent_orders.py [--jobs 2000] [--agents 50] [--seconds 90]
        [--store sqlite|postgres] [--profile hub.txt] [--preloaded 10000]

``--preloaded N``: first, the order-serving path alone, on the same hub, before the
end-to-end run (``--jobs 0``: only this). N dispatch orders (round-robin over the sites, job
documents as :func:`accord.adapters.agent_backend.job_order` makes them; no such jobs exist at
the hub) are written straight into the hub's store from this process
(:class:`accord.adapters.sql.agent_store.SqlAgents` on the hub's own database: its SQLite file,
or the PostgreSQL database) while the agents are parked (heartbeating, not asking for orders);
then all are let go at once. Round 1: they fetch and acknowledge every order; round 2 (N more
orders): they fetch, acknowledge, and report each running and completed with signed usage.
Each round's rate is orders done over the time from release to the last one (``--preloaded-
seconds`` at most); the dispatcher has no work in these rounds.

``--profile FILE``: sample the hub with ``py-spy`` (``uv pip install py-spy``; not a project
dependency) during the agent phase and write its flat top functions to FILE.
"""

from __future__ import annotations

import argparse
import base64
import os
import platform
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import httpx
import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tests.agent_world import agent_federation_text
from tests.conftest import fresh_pg_schema
from tests.integration.server import AccordProcess

from accord.adapters.agent_backend import job_order
from accord.adapters.hub_link import HttpHubLink
from accord.adapters.request_signing import new_private_key
from accord.adapters.sql.agent_store import SqlAgents
from accord.adapters.sql.store import SqlStore
from accord.domain.agent import attest
from accord.domain.agent.protocol import Ack, Order, OrderKind, Report, order_id
from accord.domain.errors import AccordError
from accord.domain.jobs.codec import parse_iso
from accord.domain.jobs.model import JobSpec, Placement, new_job
from accord.domain.jobs.site import RemoteState
from accord.domain.placement.records import PoolLoad

PG_ADMIN = os.environ.get("ACCORD_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")
TARGET = 200.0  # issue 19: one hub serves >= 200 orders/s
POOL_GPUS = 64
T = TypeVar("T")


# ------------------------------------------------------------------ the federation
def federation_text(keys: dict[str, str], silence_s: int = 60) -> str:
    """Two partners (uk, fr); agent sites alternating between them, one pool each; an
    agreement with room for every job of the run. ``keys``: each site's public key."""
    partners = {site: "uk" if i % 2 == 0 else "fr" for i, site in enumerate(keys)}
    return agent_federation_text({s: [k] for s, k in keys.items()}, silence_s=silence_s, gpus=POOL_GPUS,
                                 sites_of=partners, units=100_000_000)


# ------------------------------------------------------------------ measurements
@dataclass
class Stats:
    """What the agents saw, shared by their threads."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    latency: dict[str, list[float]] = field(default_factory=dict)  # kind -> seconds
    acked_at: list[float] = field(default_factory=list)  # monotonic time of each order's ack
    completed: int = 0
    completed_at: list[float] = field(default_factory=list)  # monotonic, each completed report's
    errors: list[str] = field(default_factory=list)

    def note(self, kind: str, seconds: float) -> None:
        with self.lock:
            self.latency.setdefault(kind, []).append(seconds)

    def timed(self, kind: str, call: Callable[[], T]) -> T:
        start = time.perf_counter()
        out = call()
        self.note(kind, time.perf_counter() - start)
        return out


def pct(xs: list[float], q: float) -> float:
    """The ``q`` quantile (0..1) of ``xs`` (nearest rank)."""
    s = sorted(xs)
    return s[min(len(s) - 1, max(0, round(q * (len(s) - 1))))] if s else float("nan")


def cpu_s(pid: int) -> float:
    """CPU seconds (user + system) process ``pid`` has used so far (Linux ``/proc``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# ------------------------------------------------------------------ a simulated agent
@dataclass
class Gate:
    """For ``--preloaded``: agents ask for orders only while ``go`` is set (else they park,
    heartbeating); with ``reports`` false they only acknowledge what they get."""

    go: threading.Event = field(default_factory=threading.Event)
    reports: bool = False
    parked: set[str] = field(default_factory=set)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def open(self, site: str) -> bool:
        """Whether ``site``'s agent may ask for orders now (if not, it has waited 0.1 s)."""
        if self.go.is_set():
            with self.lock:
                self.parked.discard(site)
            return True
        with self.lock:
            self.parked.add(site)
        self.go.wait(0.1)
        return False


# due at the next exchange: acks, running reports, jobs to report completed after it, completed reports
Due = tuple[list[Ack], list[Report], list[tuple[Order, str, datetime]], list[Report]]


class SimAgent(threading.Thread):
    """One site's agent: what ``accord site run`` sends, over the real signed client, for
    jobs that end as soon as they start."""

    def __init__(
        self,
        hub: str,
        site: str,
        key: bytes,
        stats: Stats,
        stop: threading.Event,
        args: argparse.Namespace,
        gate: Gate | None = None,
    ) -> None:
        super().__init__(name=f"agent-{site}", daemon=True)
        self.site, self.key, self.stats, self.stop, self.gate = site, key, stats, stop, gate
        self.link = HttpHubLink(hub, site, key, timeout_s=60.0)
        self.wait_s, self.heartbeat_s, self.run_s = args.wait, args.heartbeat, args.run_ms / 1000
        self.exchange = args.protocol == "exchange"
        self.count = 0
        self.due: Due = ([], [], [], [])

    def run(self) -> None:
        beat_at, synced = float("-inf"), False
        loads = {"h100": PoolLoad(POOL_GPUS, 0)}
        while not self.stop.is_set():
            try:
                if time.monotonic() - beat_at >= self.heartbeat_s:
                    held: list[str] | None = None if synced else []  # resynchronise first
                    self.stats.timed("heartbeat", lambda h=held: self.link.heartbeat(loads, h))  # type: ignore[misc]
                    beat_at, synced = time.monotonic(), True
                if self.gate is not None and not self.gate.open(self.site):
                    continue
                if self.exchange:
                    self.exchange_round()
                    continue
                start = time.perf_counter()
                orders = self.link.orders(self.wait_s)
                self.stats.note(
                    "orders (answered)" if orders else "orders (empty)", time.perf_counter() - start
                )
                if orders:
                    self.carry_out(orders)
            except AccordError as exc:
                with self.stats.lock:
                    self.stats.errors.append(f"{self.site}: {exc}")
                self.stop.wait(0.5)
        self.link.close()

    def exchange_round(self) -> None:
        """``--protocol exchange``: one request carries the last answer's acknowledgements and
        ``running`` reports, the answer before's ``completed`` reports, and fetches orders;
        it long-polls only when it carries nothing (so what it carries is timed as taken)."""
        acks, running, completing, done = self.due
        start = time.perf_counter()
        orders = self.link.exchange(acks, running + done, 0.0 if acks or running or done else self.wait_s)
        took = time.perf_counter() - start
        carried = "+".join(k for k, v in (("acks", acks), ("reports", running + done)) if v) or "nothing"
        self.stats.note(f"exchange ({carried}; {'answered' if orders else 'empty'})", took)
        now = time.monotonic()
        with self.stats.lock:
            self.stats.acked_at.extend(now for _ in acks)
            self.stats.completed += len(done)
            self.stats.completed_at.extend(now for _ in done)
        ended = datetime.now(UTC)
        done = [self.completed(o, local, started, ended) for o, local, started in completing]
        local = {o.id: self.local_id() for o in orders}
        runs = [o for o in orders if o.kind is OrderKind.DISPATCH]
        if self.gate is not None and not self.gate.reports:
            runs = []
        started = datetime.now(UTC)
        self.due = (
            [Ack(o.id, local[o.id]) for o in orders],
            [Report(o.ref, RemoteState.RUNNING, local[o.id], started) for o in runs],
            [(o, local[o.id], started) for o in runs],
            done,
        )

    def local_id(self) -> str:
        self.count += 1
        return f"{self.site}-{self.count}"

    def carry_out(self, orders: list[Order]) -> None:
        local = {o.id: self.local_id() for o in orders}
        self.stats.timed("ack", lambda: self.link.ack([Ack(o.id, local[o.id]) for o in orders]))
        now = time.monotonic()
        with self.stats.lock:
            self.stats.acked_at.extend(now for _ in orders)
        runs = [o for o in orders if o.kind is OrderKind.DISPATCH]
        if not runs or (self.gate is not None and not self.gate.reports):
            return
        started = datetime.now(UTC)
        running = [Report(o.ref, RemoteState.RUNNING, local[o.id], started) for o in runs]
        self.stats.timed("report running", lambda: self.link.report(running))
        if self.run_s:
            time.sleep(self.run_s)
        ended = datetime.now(UTC)
        done = [self.completed(o, local[o.id], started, ended) for o in runs]
        self.stats.timed("report completed", lambda: self.link.report(done))
        now = time.monotonic()
        with self.stats.lock:
            self.stats.completed += len(done)
            self.stats.completed_at.extend(now for _ in done)

    def completed(self, o: Order, local_id: str, started: datetime, ended: datetime) -> Report:
        """The final report of a job that ran from ``started`` to ``ended``, its usage signed."""
        gpus = int((o.job or {}).get("spec", {}).get("gpus") or 1)
        gpu_s = round(gpus * (ended - started).total_seconds(), 6)
        usage = attest.Usage(
            self.site, o.ref, o.job_id, local_id, "", "completed", started, ended, gpus, gpu_s, 0, None
        )
        return Report(
            o.ref,
            RemoteState.COMPLETED,
            local_id,
            started,
            ended,
            exit_code=0,
            gpus=gpus,
            gpu_seconds=gpu_s,
            usage=attest.sign(usage, self.key),
        )


# ------------------------------------------------------------------ the hub
@contextmanager
def pg_database(name: str) -> Iterator[str]:
    """A PostgreSQL database of its own on ``$ACCORD_TEST_PG``'s server, at the newest schema:
    its URL; dropped afterwards."""
    try:
        with psycopg.connect(PG_ADMIN, autocommit=True, connect_timeout=3) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}"')
            admin.execute(f'CREATE DATABASE "{name}"')
    except psycopg.OperationalError as exc:
        raise SystemExit(f"PostgreSQL at {PG_ADMIN} not reachable: {exc}") from None
    try:
        yield fresh_pg_schema(PG_ADMIN.rsplit("/", 1)[0] + "/" + name)
    finally:
        with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextmanager
def hub(store: str, tmp: Path, federation: Path) -> Iterator[AccordProcess]:
    """``accord up`` over ``federation`` on ``store`` (``postgres``: a database of its own,
    dropped afterwards)."""
    with ExitStack() as stack:
        url = stack.enter_context(pg_database(f"accord_agent_bench_{os.getpid()}")) \
            if store == "postgres" else None
        server = AccordProcess(tmp / "hub", federation, database_url=url)
        try:
            server.start()
            yield server
        finally:
            server.stop()


def job_doc(i: int, sites: list[str], tag: str) -> dict[str, Any]:
    """Job ``i``: pinned to a site round-robin, from the other partner (across the agreement)."""
    k = i % len(sites)
    return {
        "name": f"{tag}-{i}",
        "gpus": 1 + i % 2,
        "site": sites[k],
        "partner": "fr" if k % 2 == 0 else "uk",
        "time_limit": "10m",
        "command": ["true"],
    }


def submit(
    client: httpx.Client, docs: list[dict[str, Any]], batch: int, connections: int, until: float
) -> tuple[list[str], list[float], float]:
    """Submit ``docs`` in batches of ``batch``, ``connections`` at a time, no batch begun after
    ``until`` (monotonic): the job ids, each request's latency, and the wall time taken."""

    def one(doc: dict[str, Any]) -> tuple[str, float]:
        start = time.perf_counter()
        r = client.post("/api/v1/jobs", json=doc)
        if r.status_code != 201:
            raise SystemExit(f"submission refused ({r.status_code}): {r.text[:300]}")
        return str(r.json()["id"]), time.perf_counter() - start

    ids, lat = [], []
    start = time.perf_counter()
    with ThreadPoolExecutor(connections) as pool:
        for b in range(0, len(docs), batch):
            if time.monotonic() > until:
                break
            for job_id, s in pool.map(one, docs[b : b + batch]):
                ids.append(job_id)
                lat.append(s)
    return ids, lat, time.perf_counter() - start


def unfinished(client: httpx.Client) -> int:
    """How many jobs are not yet in a final state (counted up to 1000)."""
    states = ["submitted", "deferred", "held", "placed", "dispatched", "running"]
    r = client.get("/api/v1/jobs", params={"state": states, "limit": 1000})
    r.raise_for_status()
    return len(r.json()["jobs"])


def completion_times(client: httpx.Client, ids: list[str]) -> list[tuple[datetime, datetime]]:
    """(submitted, entered ``completed``) by the hub's clock, of each completed job."""

    def one(job_id: str) -> tuple[datetime, datetime] | None:
        d = client.get(f"/api/v1/jobs/{job_id}").json()
        done = [e["at"] for e in d.get("story", []) if e["after"] == "completed"]
        sub = parse_iso(d["submitted_at"])
        end = parse_iso(done[-1]) if done else None
        return None if sub is None or end is None else (sub, end)

    with ThreadPoolExecutor(8) as pool:
        return [t for t in pool.map(one, ids) if t is not None]


@contextmanager
def profiling(pid: int, out: Path | None) -> Iterator[None]:
    """``py-spy record`` on the hub while the block runs (``out``: its folded stacks, busy
    samples only; ``--nonblocking``, so the hub is not paused to be sampled)."""
    spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    if out is None:
        yield
        return
    if not Path(spy).exists():
        raise SystemExit("--profile needs py-spy: uv pip install py-spy")
    args = [spy, "record", "--pid", str(pid), "--rate", "100", "--nonblocking", "--format", "raw"]
    proc = subprocess.Popen(
        [*args, "--threads", "-o", str(out)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    time.sleep(1.0)
    try:
        yield
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=60)


def summarise_profile(raw: Path, top: int = 25) -> None:
    """Where the hub's busy samples went: by thread, then by Accord function (inclusive)."""
    threads: Counter[str] = Counter()
    funcs: Counter[str] = Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        frames, n = stack.split(";"), int(count)
        total += n
        threads[re.sub(r"\s*\(\d+\)", "", frames[0]).removeprefix("thread ").strip()] += n
        names = {re.sub(r" \(.*/", " (", f) for f in frames if "accord/" in f}
        for f in names:
            funcs[f] += n
    if not total:
        print("  (no busy samples)")
        return
    print(f"\n  hub profile ({raw}): {total} busy samples")
    for name, n in threads.most_common(8):
        print(f"    {n / total:6.1%}  thread {name}")
    for name, n in funcs.most_common(top):
        print(f"    {n / total:6.1%}  {name}")


# ------------------------------------------------------------------ --preloaded: the serving path alone
def hub_database(server: AccordProcess) -> str:
    """The hub's own database URL (SQLite: the file in its data directory)."""
    return server.env.get("ACCORD_DATABASE_URL") or f"sqlite:///{server.data_dir / 'accord.db'}"


def preload(url: str, sites: list[str], n: int, tag: str) -> float:
    """Write ``n`` dispatch orders (round-robin over ``sites``) straight into the hub's store,
    as :meth:`accord.adapters.agent_backend.AgentBackend.submit` writes them (one
    transaction each, the job document of :func:`job_order`), from this process; no job
    exists at the hub for them. The seconds it took."""
    store = SqlStore(url)  # its schema is at head already: migrating is a no-op
    agents = SqlAgents(store)
    now = datetime.now(UTC)
    start = time.perf_counter()
    try:
        for i in range(n):
            k = i % len(sites)
            agents.add_order(dispatch_order(f"{tag}-{i:06d}", sites[k], "fr" if k % 2 == 0 else "uk",
                                            1 + i % 2, now))
    finally:
        store.close()
    return time.perf_counter() - start


def dispatch_order(job_id: str, site: str, partner: str, gpus: int, now: datetime) -> Order:
    """The dispatch order ``AgentBackend.submit`` would write for a one-line job ``job_id``
    placed at ``site`` (no such job exists at the hub)."""
    spec = JobSpec(name=job_id, gpus=gpus, time_limit_s=600, command=("true",), partner=partner, site=site)
    job = replace(new_job(job_id, spec, now), placement=Placement(site, "h100", "uk-fr"))
    ref = f"{job.id}.{job.version}"
    kind = OrderKind.DISPATCH
    return Order(order_id(ref, kind), site, kind, ref, job.id, now, job_order(job))


@dataclass
class Round:
    """One --preloaded round's figures."""

    what: str
    orders: int
    done: int  # acknowledged (ack-only round) or reported completed (the other)
    seconds: float  # gate opened to the last one done
    preload_s: float
    hub_cpu: float
    my_cpu: float
    stats: Stats

    @property
    def rate(self) -> float:
        return self.done / self.seconds if self.seconds > 0 else 0.0


def preloaded_rounds(
    server: AccordProcess, private: dict[str, tuple[bytes, bytes]], args: argparse.Namespace
) -> list[Round]:
    """Two rounds over ``args.preloaded`` orders each, written into the store while the
    agents are parked: (1) fetch and acknowledge; (2) fetch, acknowledge, report running and
    completed with signed usage."""
    assert server.proc is not None
    pid, url, sites = server.proc.pid, hub_database(server), list(private)
    gate, stop, stats = Gate(), threading.Event(), Stats()
    rounds = []
    preload_s = preload(url, sites, args.preloaded, "pre1")  # before the agents start
    agents = [SimAgent(server.url, s, private[s][0], stats, stop, args, gate) for s in sites]
    try:
        for a in agents:
            a.start()
        for what, reports in (("fetched+acked", False), ("fetched+acked+running+completed", True)):
            deadline = time.monotonic() + 2 * args.wait + 15
            while len(gate.parked) < len(agents) and time.monotonic() < deadline:
                time.sleep(0.05)  # every agent heartbeated and parked
            if reports:
                preload_s = preload(url, sites, args.preloaded, "pre2")
            stats = Stats()
            for a in agents:
                a.stats = stats
            gate.reports = reports
            cpu0, me0 = cpu_s(pid), time.process_time()
            t0 = time.monotonic()
            gate.go.set()
            times = stats.completed_at if reports else stats.acked_at
            limit = t0 + args.preloaded_seconds
            while len(times) < args.preloaded and time.monotonic() < limit and not stats.errors:
                time.sleep(0.02)
            hub_cpu, my_cpu = cpu_s(pid) - cpu0, time.process_time() - me0
            gate.go.clear()
            done = sorted(times)
            rounds.append(
                Round(
                    what,
                    args.preloaded,
                    len(done),
                    (done[-1] - t0) if done else 0.0,
                    preload_s,
                    hub_cpu,
                    my_cpu,
                    stats,
                )
            )
    finally:
        stop.set()
        gate.go.set()
        for a in agents:
            a.join(timeout=args.wait + 15)
    return rounds


def report_preloaded(args: argparse.Namespace, rounds: list[Round]) -> None:
    print(
        f"\nORDER-SERVING PATH ALONE (--preloaded): {args.preloaded} dispatch orders written straight "
        f"into the hub's store ({args.agents} sites, round-robin) while the agents are parked, then "
        "released at once; no dispatcher work, no jobs at the hub"
    )
    for r in rounds:
        s = r.stats
        print(
            f"\n  round: {r.what}: {r.done} of {r.orders} in {r.seconds:.2f} s = {r.rate:.1f} orders/s "
            f"({r.rate / TARGET:.2f}x the target of {TARGET:.0f}/s: "
            f"{'met' if r.rate >= TARGET else 'NOT met'}); "
            f"preloading took {r.preload_s:.1f} s"
        )
        if s.errors:
            print(f"    agent errors: {len(s.errors)} (first: {s.errors[0][:200]})")
        answered = [x for k, v in s.latency.items() if "answered" in k for x in v]
        print(
            f"    hub CPU {1000 * r.hub_cpu / max(1, r.done):.2f} ms per order; agents' CPU "
            f"{1000 * r.my_cpu / max(1, r.done):.2f} ms per order; orders per answered long poll "
            f"{len(s.acked_at) / max(1, len(answered)):.1f}"
        )
        print(f"    {'latency (ms)':<28} {'count':>7} {'p50':>8} {'p90':>8} {'p99':>8} {'max':>8}")
        for kind, xs in s.latency.items():
            ms = [1000 * x for x in xs]
            print(
                f"    {kind:<28} {len(ms):7d} {pct(ms, 0.5):8.1f} {pct(ms, 0.9):8.1f} {pct(ms, 0.99):8.1f} "
                f"{max(ms, default=float('nan')):8.1f}"
            )


# ------------------------------------------------------------------ the run
def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--store", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument("--agents", type=int, default=50)
    parser.add_argument("--jobs", type=int, default=2000)
    parser.add_argument("--baseline-jobs", type=int, default=400)
    parser.add_argument("--batch", type=int, default=100, help="jobs submitted per batch")
    parser.add_argument("--connections", type=int, default=8, help="concurrent submissions")
    parser.add_argument(
        "--seconds", type=float, default=75.0, help="bound: no batch and no wait after this long"
    )
    parser.add_argument(
        "--wait", type=float, default=2.0, help="agents' long-poll seconds (as accord site run)"
    )
    parser.add_argument("--heartbeat", type=float, default=10.0, help="agents' heartbeat seconds")
    parser.add_argument("--run-ms", type=float, default=0.0, help="simulated run time of each job")
    parser.add_argument(
        "--protocol", choices=("exchange", "separate"), default="exchange",
        help="exchange: one POST /exchange a round (as accord site run); separate: GET /orders, "
        "POST /acks, POST /reports (the protocol before /exchange)",
    )  # fmt: skip
    parser.add_argument("--profile", type=Path, help="py-spy the hub during the agent phase into this file")
    parser.add_argument(
        "--preloaded", type=int, default=0, metavar="N",
        help="first measure the order-serving path alone: N orders written into the store, twice",
    )  # fmt: skip
    parser.add_argument(
        "--preloaded-seconds", type=float, default=60.0, help="bound on each --preloaded round"
    )
    args = parser.parse_args()
    began = started = time.monotonic()

    private = {f"a{i:02d}": new_private_key() for i in range(args.agents)}
    keys = {s: "ed25519:" + base64.b64encode(pub).decode() for s, (_, pub) in private.items()}
    sites = list(private)
    print(
        f"machine: {os.cpu_count()} CPUs, Python {platform.python_version()}; hub: accord up "
        f"(plain HTTP, 127.0.0.1), store {args.store}; {args.agents} agents as threads of this process "
        f"({args.protocol} protocol); "
        f"load average {os.getloadavg()[0]:.1f} at the start"
    )
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        fed = tmp / "federation.toml"
        fed.write_text(federation_text(keys))
        with hub(args.store, tmp, fed) as server, server.client() as client:
            assert server.proc is not None
            pid = server.proc.pid
            client.timeout = httpx.Timeout(60.0)
            rounds = preloaded_rounds(server, private, args) if args.preloaded else []
            if rounds:
                report_preloaded(args, rounds)
            if args.jobs <= 0:
                print(
                    f"(no end-to-end run: --jobs 0; whole run {time.monotonic() - started:.0f} s; "
                    f"load average {os.getloadavg()[0]:.1f} at the end)"
                )
                return
            began = time.monotonic()  # the end-to-end run's own bound (from here)

            # -- baseline: plain submission, no agent connected yet (nothing is dispatched)
            base_docs = [job_doc(i, sites, "baseline") for i in range(args.baseline_jobs)]
            cpu0 = cpu_s(pid)
            base_ids, base_lat, base_wall = submit(
                client, base_docs, args.batch, args.connections, began + args.seconds
            )
            base_cpu = cpu_s(pid) - cpu0
            with ThreadPoolExecutor(args.connections) as pool:
                list(pool.map(lambda i: client.post(f"/api/v1/jobs/{i}/cancel").raise_for_status(), base_ids))

            # -- the agents, then the jobs
            stats, stop = Stats(), threading.Event()
            agents = [SimAgent(server.url, s, private[s][0], stats, stop, args) for s in sites]
            for a in agents:
                a.start()
            deadline = time.monotonic() + 15
            while len(stats.latency.get("heartbeat", [])) < len(agents) and time.monotonic() < deadline:
                time.sleep(0.1)
            time.sleep(1.0)  # the dispatcher's next pass sees the agents alive
            docs = [job_doc(i, sites, "run") for i in range(args.jobs)]
            with profiling(pid, args.profile):
                cpu0, me0 = cpu_s(pid), time.process_time()
                t0 = time.monotonic()
                limit = began + args.seconds
                ids, sub_lat, sub_wall = submit(client, docs, args.batch, args.connections, limit)
                while stats.completed < len(ids) and time.monotonic() < limit and not stop.is_set():
                    time.sleep(0.2)
                while time.monotonic() < limit and unfinished(client) > 0:
                    time.sleep(0.25)
                t_end = time.monotonic()
                hub_cpu, my_cpu = cpu_s(pid) - cpu0, time.process_time() - me0
            stop.set()
            for a in agents:
                a.join(timeout=args.wait + 15)
            times = completion_times(client, ids)
            load_end = os.getloadavg()[0]
        hub_log = server.log.read_text(errors="replace")

    rates = report(
        args,
        stats,
        t0,
        t_end,
        ids,
        times,
        (base_ids, base_lat, base_wall, base_cpu),
        (sub_lat, sub_wall),
        hub_cpu,
        my_cpu,
    )
    failures = hub_log.count("Traceback")
    print(f"  hub log: {failures} tracebacks" + (f"; the last:\n{hub_log[-1500:]}" if failures else ""))
    if args.profile:
        summarise_profile(args.profile)
    for r in rounds:
        print(
            f"  order-serving path alone (--preloaded, {r.what}): {r.rate:.1f} orders/s, "
            f"{r.rate / TARGET:.2f}x the target"
        )
    if rounds:
        print(
            f"  end to end (submitted through the dispatcher, acked): {rates[0]:.1f} orders/s, "
            f"{rates[0] / TARGET:.2f}x the target; completed: {rates[1]:.1f} jobs/s"
        )
    print(f"(whole run {time.monotonic() - started:.0f} s; load average {load_end:.1f} at the end)")


def report(
    args: argparse.Namespace,
    stats: Stats,
    t0: float,
    t_end: float,
    ids: list[str],
    times: list[tuple[datetime, datetime]],
    base: tuple[list[str], list[float], float, float],
    sub: tuple[list[float], float],
    hub_cpu: float,
    my_cpu: float,
) -> tuple[float, float]:
    """Print the end-to-end figures; (orders acked /s, jobs completed /s)."""
    base_ids, base_lat, base_wall, base_cpu = base
    sub_lat, sub_wall = sub
    acked = sorted(stats.acked_at)
    n = len(acked)
    order_rate = n / (acked[-1] - t0) if n else 0.0
    lo, hi = (acked[n // 10], acked[(9 * n) // 10]) if n >= 10 else (0.0, 0.0)
    steady = 0.8 * n / (hi - lo) if hi > lo else float("nan")
    done = len(times)
    first_sub = min((s for s, _ in times), default=None)
    last_end = max((e for _, e in times), default=None)
    e2e_rate = done / (last_end - first_sub).total_seconds() if first_sub and last_end else 0.0
    e2e = [(e - s).total_seconds() for s, e in times]
    base_rate = len(base_ids) / base_wall
    print(
        f"\n{len(ids)} jobs (of {args.jobs}) over {args.agents} agent sites, batches of {args.batch}, "
        f"{args.connections} submissions at a time; {n} orders acknowledged, {done} jobs completed "
        f"in {t_end - t0:.1f} s"
    )
    if stats.errors:
        print(f"  agent errors: {len(stats.errors)} (first: {stats.errors[0][:200]})")
    print(f"\n  {'figure':<44} {'value':>10}")
    rows = [
        ("baseline: plain POST /api/v1/jobs (jobs/s)", base_rate),
        ("submissions during the agent run (jobs/s)", len(ids) / sub_wall),
        ("orders delivered+acked /s (first sub. to last ack)", order_rate),
        ("orders delivered+acked /s (middle 80 %)", steady),
        ("jobs completed end to end /s (hub clock)", e2e_rate),
        ("hub CPU ms per plain submission", 1000 * base_cpu / max(1, len(base_ids))),
        ("hub CPU ms per job, submitted to completed", 1000 * hub_cpu / max(1, len(ids))),
        ("agents+submitter CPU ms per job (this process)", 1000 * my_cpu / max(1, len(ids))),
    ]
    for label, v in rows:
        print(f"  {label:<52} {v:10.1f}")
    print(f"\n  {'latency (ms)':<30} {'count':>7} {'p50':>8} {'p90':>8} {'p99':>8} {'max':>8}")
    lat = {
        "baseline POST /api/v1/jobs": base_lat,
        "POST /api/v1/jobs (agent run)": sub_lat,
        **stats.latency,
        "job: submitted to completed": e2e,
    }
    for kind, xs in lat.items():
        ms = [1000 * x for x in xs]
        print(
            f"  {kind:<30} {len(ms):7d} {pct(ms, 0.5):8.1f} {pct(ms, 0.9):8.1f} {pct(ms, 0.99):8.1f} "
            f"{max(ms, default=float('nan')):8.1f}"
        )
    mean_batch = n / max(1, sum(len(v) for k, v in stats.latency.items() if k == "ack" or "(acks" in k))
    requests = sum(len(v) for v in stats.latency.values())
    print(
        f"\n  orders per ack request: {mean_batch:.1f}; "
        f"signed agent requests per order: {requests / max(1, n):.1f}"
    )
    print(
        f"  orders/s against the target of {TARGET:.0f}: {order_rate / TARGET:.2f}x "
        f"(steady {steady / TARGET:.2f}x): {'met' if order_rate >= TARGET else 'NOT met'}"
    )
    print(f"  end-to-end completions/s against plain submissions/s: {e2e_rate / base_rate:.0%}")
    return order_rate, e2e_rate


if __name__ == "__main__":
    main()
