"""The hub's CPU per signed agent request, against plain requests in the same run (issue 19).

With 50 agents each answer carries one or two orders, so what one signed request costs the
hub, whatever it carries, sets how many orders per second one hub can serve. This measures
that cost alone: one real ``accord up`` (plain HTTP on 127.0.0.1, SQLite, dispatcher on and
idle) over the agent federation of ``benchmarks/agent_orders.py``; one client in this
process sends ``--requests`` requests of each kind one after another (no contention), kind
after kind, for ``--rounds`` rounds. For each kind and round the hub's CPU (user + system,
``/proc``, less what the hub burns idle: measured for 3 s first) and the client's wall time
are divided by the count; the figures are each kind's median over the rounds. Kinds:

* ``GET /healthz``: the API's cheapest route (no authentication, no store) — the baseline;
* ``GET /api/v1/jobs?limit=1``: an authenticated read (bearer token) with one query;
* ``heartbeat``: a signed ``POST /api/agent/v1/heartbeat`` (RFC 9421, as ``HttpHubLink``
  sends it) with the site's loads;
* ``exchange (empty)``: a signed ``POST /api/agent/v1/exchange?wait=0`` carrying nothing:
  signature, nonce, the site's ``last_seen``, one look for orders;
* ``exchange (ack + report, 1 order)``: at a second site, each request acknowledges the order
  the one before fetched and reports it ``running``, and is answered with one new order
  (written into the hub's store by this process just before the request, as
  ``agent_orders.py --preloaded`` writes them; its wall time counts here, not its CPU): a
  round under load, with one order an answer.

Ratios are against ``GET /healthz`` measured in the same run.

    uv run python benchmarks/agent_requests.py [--requests 400] [--rounds 5] [--profile FILE]

``--profile FILE``: py-spy (``uv pip install py-spy``, not a project dependency) samples the
hub throughout the rounds into FILE (raw format; ``--nonblocking``).
"""

from __future__ import annotations

import argparse
import base64
import os
import platform
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from accord.adapters.hub_link import HttpHubLink
from accord.adapters.request_signing import new_private_key
from accord.adapters.sql.agent_store import SqlAgents
from accord.adapters.sql.store import SqlStore
from accord.domain.agent.protocol import Ack, Order, Report
from accord.domain.jobs.site import RemoteState
from accord.domain.placement.records import PoolLoad
from benchmarks.agent_orders import POOL_GPUS, cpu_s, dispatch_order, federation_text, hub, hub_database


def idle_rate(pid: int, seconds: float = 3.0) -> float:
    """The hub's CPU seconds per second with nobody asking anything (its timers' passes)."""
    c0, t0 = cpu_s(pid), time.perf_counter()
    time.sleep(seconds)
    return (cpu_s(pid) - c0) / (time.perf_counter() - t0)


class Orders:
    """Dispatch orders for one site written into the hub's store one at a time, as
    :func:`agent_orders.preload` writes them (no such jobs exist at the hub, which
    ``/exchange`` does not need)."""

    def __init__(self, database_url: str, site: str) -> None:
        self.store = SqlStore(database_url)  # at head already: migrating is a no-op
        self.agents, self.site, self.now = SqlAgents(self.store), site, datetime.now(UTC)
        self.count = 0

    def add(self) -> Order:
        self.count += 1
        order = dispatch_order(f"req-{self.count:06d}", self.site, "fr", 1, self.now)
        self.agents.add_order(order)
        return order


def round_trip(orders: Orders, link: HttpHubLink) -> Callable[[], object]:
    """Each call acknowledges the order the call before fetched and reports it running, and
    is answered with one new order (written just before it, by this process)."""
    held: list[Order] = [orders.add()]
    link.exchange([], [], 0.0)

    def call() -> object:
        new, last = orders.add(), held.pop()
        got = link.exchange([Ack(last.id, last.ref)],
                            [Report(last.ref, RemoteState.RUNNING, last.ref, orders.now)], 0.0)
        assert [o.id for o in got] == [new.id], got
        held.append(new)
        return got

    return call


@dataclass
class Kind:
    """One kind of request: its name, the call, and each round's (hub CPU ms, wall ms)."""

    name: str
    call: Callable[[], object]
    figures: list[tuple[float, float]] = field(default_factory=list)

    def run(self, pid: int, n: int, idle: float) -> None:
        c0, w0 = cpu_s(pid), time.perf_counter()
        for _ in range(n):
            self.call()
        wall = time.perf_counter() - w0
        self.figures.append((1000 * (cpu_s(pid) - c0 - idle * wall) / n, 1000 * wall / n))


def kinds(client: httpx.Client, link: HttpHubLink, rounds: Callable[[], object]) -> list[Kind]:
    """The kinds of the module's docstring, in its order."""
    loads = {"h100": PoolLoad(POOL_GPUS, 0)}
    return [
        Kind("GET /healthz", lambda: client.get("/healthz").raise_for_status()),
        Kind("GET /api/v1/jobs?limit=1", lambda: client.get("/api/v1/jobs?limit=1").raise_for_status()),
        Kind("heartbeat (signed)", lambda: link.heartbeat(loads, None)),
        Kind("exchange (empty, signed)", lambda: link.exchange([], [], 0.0)),
        Kind("exchange (ack + report, 1 order)", rounds),
    ]


@contextmanager
def spying(pid: int, out: Path | None) -> Iterator[None]:
    """py-spy on the hub into ``out`` (raw) while the block runs; nothing if ``out`` is None."""
    if out is None:
        yield
        return
    spy = subprocess.Popen(["py-spy", "record", "--nonblocking", "-r", "200", "-f", "raw", "-o", str(out),
                            "-p", str(pid)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(1.0)
    try:
        yield
    finally:
        spy.send_signal(signal.SIGINT)
        spy.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=400, help="requests of each kind a round")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--profile", type=Path, help="py-spy the hub throughout, into this file")
    args = parser.parse_args()
    private = {f"a{i:02d}": new_private_key() for i in range(2)}
    keys = {s: "ed25519:" + base64.b64encode(pub).decode() for s, (_, pub) in private.items()}
    print(f"machine: {os.cpu_count()} CPUs, Python {platform.python_version()}; hub: accord up (plain HTTP, "
          f"127.0.0.1, SQLite); {args.rounds} rounds of {args.requests} requests of each kind, one at a "
          f"time; load average {os.getloadavg()[0]:.1f} at the start")
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        (tmp / "federation.toml").write_text(federation_text(keys))
        with hub("sqlite", tmp, tmp / "federation.toml") as server, server.client() as client:
            assert server.proc is not None
            pid = server.proc.pid
            links = [HttpHubLink(server.url, s, private[s][0], timeout_s=60.0) for s in ("a00", "a01")]
            for link in links:
                link.heartbeat({"h100": PoolLoad(POOL_GPUS, 0)}, [])
            orders = Orders(hub_database(server), "a01")
            time.sleep(1.0)
            idle = idle_rate(pid)
            todo = kinds(client, links[0], round_trip(orders, links[1]))
            with spying(pid, args.profile):
                for _ in range(args.rounds):
                    for kind in todo:
                        kind.run(pid, args.requests, idle)
            for link in links:
                link.close()
            orders.store.close()
    report(todo, idle)


def report(todo: list[Kind], idle: float) -> None:
    base = statistics.median(c for c, _ in todo[0].figures)
    print(f"  the hub idle: {1000 * idle:.0f} ms of CPU a second (taken off the figures below)")
    print(f"\n  {'request':34s} {'hub CPU ms':>10s} {'(min-max)':>13s} {'÷ /healthz':>10s} {'wall ms':>8s}")
    for k in todo:
        cpus, walls = [c for c, _ in k.figures], [w for _, w in k.figures]
        c = statistics.median(cpus)
        print(f"  {k.name:34s} {c:10.2f} {f'({min(cpus):.2f}-{max(cpus):.2f})':>13s} {c / base:9.1f}x "
              f"{statistics.median(walls):8.2f}")
    print(f"  (load average {os.getloadavg()[0]:.1f} at the end)")


if __name__ == "__main__":
    main()
