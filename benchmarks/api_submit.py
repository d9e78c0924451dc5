"""Job submissions per second through the REST API, with p50/p99 latency.

Starts a real ``accord up --no-dispatcher`` (the figure is the API and the
store, not the running of the jobs) on SQLite and on PostgreSQL, and loads it
with ``wrk`` (Debian package ``wrk``; C, so the load generator takes little of
the 2 cores it shares with the server). The baseline, measured in the same run
against the same server, is ``GET /healthz``: the HTTP stack with no store.

    uv run python benchmarks/api_submit.py [--seconds 15] [--connections 16]
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tests.conftest import fresh_pg_schema
from tests.integration.server import AccordProcess

HERE = Path(__file__).resolve().parent
PG_ADMIN = os.environ.get("ACCORD_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")
_UNIT = {"us": 0.001, "ms": 1.0, "s": 1000.0}


def _ms(text: str) -> float:
    m = re.match(r"([\d.]+)(us|ms|s)", text)
    if not m:
        raise ValueError(f"cannot read a latency from {text!r}")
    return float(m.group(1)) * _UNIT[m.group(2)]


def wrk(url: str, token: str, seconds: int, connections: int, script: Path | None
        ) -> dict[str, float]:
    """Run wrk; return requests/s, p50 and p99 in ms, and the count of non-2xx answers."""
    args = ["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "--latency", "--timeout", "10s"]
    if script:
        args += ["-s", str(script)]
    env = {**os.environ, "ACCORD_TOKEN": token, "RUN_TAG": f"r{time.time_ns()}"}
    out = subprocess.run([*args, url], capture_output=True, text=True, env=env, check=True).stdout
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    p50 = _ms(re.search(r"\s50%\s+(\S+)", out).group(1))  # type: ignore[union-attr]
    p99 = _ms(re.search(r"\s99%\s+(\S+)", out).group(1))  # type: ignore[union-attr]
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return {"rate": rate, "p50": p50, "p99": p99, "errors": float(bad.group(1)) if bad else 0.0}


def _line(label: str, r: dict[str, float]) -> None:
    print(f"  {label:<24} {r['rate']:8.0f} req/s   p50 {r['p50']:6.1f} ms   "
          f"p99 {r['p99']:6.1f} ms   errors {r['errors']:.0f}")


@contextmanager
def submission_server(store: str, tmp: Path) -> Iterator[AccordProcess]:
    """``accord up --no-dispatcher`` on ``store`` (``sqlite`` or ``postgresql``: a database of
    its own, dropped afterwards) with the project ``submit.lua`` charges its jobs to, warmed up."""
    url, name = None, f"accord_bench_{os.getpid()}"
    if store == "postgresql":
        with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}"')
            admin.execute(f'CREATE DATABASE "{name}"')
        url = fresh_pg_schema(PG_ADMIN.rsplit("/", 1)[0] + "/" + name)
    server = AccordProcess(tmp / "data", database_url=url)
    server.start_args = ["--no-dispatcher"]
    server.start()
    try:
        with server.client() as client:
            client.post("/api/v1/projects", json={"id": "bench", "name": "Benchmark",
                                                  "partner": "uk"}).raise_for_status()
        yield server
    finally:
        server.stop()
        if store == "postgresql":
            with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
                admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def bench(store: str, seconds: int, connections: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp, submission_server(store, Path(tmp)) as server:
        print(f"{store} ({connections} connections, {seconds} s each):")
        wrk(server.url + "/api/v1/jobs", server.token, 3, connections, HERE / "submit.lua")
        base = wrk(server.url + "/healthz", server.token, seconds, connections, None)
        _line("baseline GET /healthz", base)
        sub = wrk(server.url + "/api/v1/jobs", server.token, seconds, connections,
                  HERE / "submit.lua")
        _line("POST /api/v1/jobs", sub)
        print(f"  submissions: {sub['rate'] / base['rate']:.0%} of the baseline's rate")
        with server.client() as client:
            stored = len(client.get("/api/v1/jobs", params={"limit": 1000}).json()["jobs"])
        print(f"  (store check: listing returns {stored} jobs)")
        return sub


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=int, default=15)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--stores", default="sqlite,postgresql")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("this benchmark needs wrk: apt-get install wrk")
    print(f"machine: {os.cpu_count()} CPUs, Python {platform.python_version()}; "
          "wrk and the server share the machine")
    results = {s: bench(s, args.seconds, args.connections) for s in args.stores.split(",")}
    pg = results.get("postgresql")
    if pg:
        ok = pg["rate"] >= 500 and pg["p99"] < 100 and pg["errors"] == 0
        print(f"target (PostgreSQL >= 500/s with p99 < 100 ms): {'met' if ok else 'NOT met'}")


if __name__ == "__main__":
    main()
