"""What Prometheus scraping ``/metrics`` costs the API: job submissions per second with and
without a real Prometheus scraping the hub every second, in the same run, against the same
server.

Starts one ``accord up --no-dispatcher`` per store (as ``benchmarks/api_submit.py``: the
figure is the API and the store), loads ``POST /api/v1/jobs`` with ``wrk`` in alternating
rounds, ``off on on off`` repeated (so a table that grows during the run weighs on both
sides alike); during the ``on`` rounds Debian's ``prometheus`` scrapes the hub every second.
Two figures per side, medians over the rounds: submissions per second, and submissions per
CPU second of the server process (``/proc``), which other load on a shared machine disturbs
far less than the rate.
Each scrape counts every job by state and site in the store, so the table the rounds fill
(tens of thousands of jobs) is part of the cost measured. At the end it times ``GET /metrics``
itself over the filled table.

    uv run python benchmarks/metrics_scrape.py [--seconds 10] [--connections 16] [--pairs 2]
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tests.integration.prometheus import Prometheus, wait_until
from tests.integration.server import AccordProcess

from accord.service.telemetry import JOBS_EVERY_S
from benchmarks.api_submit import submission_server, wrk

HERE = Path(__file__).resolve().parent
BUDGET = 0.05   # issue 23: scraping may cost at most 5 % of the submission rate


def _cpu_s(pid: int) -> float:
    """CPU seconds (user + system) process ``pid`` has used so far (Linux ``/proc``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _round(server: AccordProcess, seconds: int, connections: int) -> tuple[float, float]:
    """Submissions per second, and per CPU second of the server, in one round of ``wrk``."""
    assert server.proc is not None
    cpu = _cpu_s(server.proc.pid)
    r = wrk(server.url + "/api/v1/jobs", server.token, seconds, connections, HERE / "submit.lua")
    if r["errors"]:
        raise SystemExit(f"{r['errors']:.0f} submissions failed: the figure would not be a rate")
    used = _cpu_s(server.proc.pid) - cpu
    return r["rate"], r["rate"] * seconds / used


def _scraping(tmp: Path, server: AccordProcess) -> Prometheus:
    """Prometheus scraping ``server`` every second, once it has scraped it successfully."""
    prom = Prometheus(tmp, f"127.0.0.1:{server.port}", interval_s=1.0)
    prom.wait_ready()
    wait_until(lambda: prom.scalar('up{job="accord"}') == 1.0, 30, "the first scrape", prom.log)
    return prom


def _get_metrics(server: AccordProcess) -> tuple[float, float, str]:
    """One ``GET /metrics``: its wall time and the server's CPU time (ms), and the text."""
    assert server.proc is not None
    cpu, start = _cpu_s(server.proc.pid), time.perf_counter()
    text = httpx.get(server.url + "/metrics", timeout=30).text
    return (time.perf_counter() - start) * 1000, (_cpu_s(server.proc.pid) - cpu) * 1000, text


def _scrape_cost(server: AccordProcess, n: int = 5) -> None:
    """Print what one scrape costs the idle server: one that counts the jobs (the first after
    ``JOBS_EVERY_S``) and one that reuses the count, as wall and server CPU time (CPU is
    read in clock ticks: means over ``n`` scrapes)."""
    counting, cached = [], []
    text = ""
    for _ in range(n):
        time.sleep(JOBS_EVERY_S + 0.5)
        counting.append(_get_metrics(server)[:2])
        wall, cpu, text = _get_metrics(server)
        cached.append((wall, cpu))
    jobs = sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith("accord_jobs{"))
    per_s = (statistics.mean(c for _, c in counting) + (JOBS_EVERY_S - 1) * statistics.mean(
        c for _, c in cached)) / JOBS_EVERY_S
    for label, xs in (("counting the jobs", counting), ("reusing the count", cached)):
        print(f"  GET /metrics over {jobs:,.0f} jobs, {label}: {statistics.mean(w for w, _ in xs):5.1f} ms "
              f"wall, {statistics.mean(c for _, c in xs):5.1f} ms server CPU")
    print(f"  at one scrape a second: {per_s / 10:.2f} % of one core of the server")


Rounds = dict[str, list[tuple[float, float]]]   # "off"/"on" -> (per second, per server CPU s)


def _rounds(tmp: Path, server: AccordProcess, args: argparse.Namespace) -> Rounds:
    rates: Rounds = {"off": [], "on": []}
    for i, mode in enumerate(["off", "on", "on", "off"] * args.pairs):
        prom = _scraping(tmp / f"prom{i}", server) if mode == "on" else None
        try:
            rate, per_cpu = _round(server, args.seconds, args.connections)
            scrapes = prom.scalar('count_over_time(up{job="accord"}[1h])') if prom else 0
        finally:
            if prom is not None:
                prom.stop()
        rates[mode].append((rate, per_cpu))
        print(f"  round {i + 1:2}: scrape {mode:<3} {rate:6.0f} submissions/s  "
              f"{per_cpu:6.0f} per server CPU-second"
              + (f"   ({scrapes:.0f} scrapes)" if prom else ""), flush=True)
    return rates


def _summary(rates: Rounds) -> tuple[float, float]:
    """Print the medians of each side; the cost of scraping in rate and in CPU per submission."""
    med = {m: (statistics.median(r for r, _ in v), statistics.median(c for _, c in v))
           for m, v in rates.items()}
    cost = 1 - med["on"][0] / med["off"][0]
    cpu_cost = 1 - med["on"][1] / med["off"][1]
    for m, (r, c) in med.items():
        print(f"  median, scrape {m:<3}: {r:6.0f} submissions/s, {c:6.0f} per server CPU-second")
    print(f"  cost of a 1 s scrape: {cost:+.1%} of the rate, {cpu_cost:+.1%} of submissions per "
          f"server CPU-second (budget {BUDGET:.0%})")
    return cost, cpu_cost


def bench(store: str, args: argparse.Namespace) -> tuple[float, float]:
    """One store's rounds; the cost of scraping as fractions of the rate and of the
    submissions per server CPU-second without it."""
    with tempfile.TemporaryDirectory() as tmp, submission_server(store, Path(tmp)) as server:
        print(f"{store} ({args.connections} connections, {args.seconds} s a round):", flush=True)
        wrk(server.url + "/api/v1/jobs", server.token, 3, args.connections, HERE / "submit.lua")
        cost = _summary(_rounds(Path(tmp), server, args))
        _scrape_cost(server)
        return cost


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--pairs", type=int, default=2, help="how many 'off on on off' sequences")
    parser.add_argument("--stores", default="sqlite,postgresql")
    args = parser.parse_args()
    for tool, package in (("wrk", "wrk"), ("prometheus", "prometheus")):
        if shutil.which(tool) is None:
            sys.exit(f"this benchmark needs {tool}: apt-get install {package}")
    print(f"machine: {os.cpu_count()} CPUs, Python {platform.python_version()}; wrk, Prometheus "
          f"and the server share the machine (load average {os.getloadavg()[0]:.1f} at the start)")
    for store in args.stores.split(","):
        bench(store, args)


if __name__ == "__main__":
    main()
