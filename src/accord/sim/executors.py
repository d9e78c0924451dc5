"""Who runs a sweep's units (``--workers``): this process, local worker processes, or a Dask
distributed cluster; the outputs always come back in the plan's order.

* ``1`` (the default): in this process, one unit after another (a progress bar per run).
* ``N`` (2 to :data:`MAX_WORKERS`): N local processes (``concurrent.futures.
  ProcessPoolExecutor``, started from a fork server that has imported the simulator once).
  No extra dependency, and a worker that dies breaks the pool at once
  (``BrokenProcessPool``), which this module turns into a message.
* ``tcp://HOST:PORT``: the units are submitted to the Dask scheduler there (``pip install
  'accord[cluster]'``); its workers must run this Accord's Python environment and see the
  scenario's files at the same absolute paths. A worker that dies has its unit rerun on
  another by the scheduler; a unit that kills workers repeatedly
  (``distributed.scheduler.allowed-failures``) is an error, as is a scheduler left with no
  worker for :data:`NO_WORKER_S` seconds.

Every failure is an :class:`~accord.domain.errors.InvalidInput` naming ``--workers``, its
value and what to do; never a traceback.
"""

from __future__ import annotations

import enum
import multiprocessing
import re
import socket
import time
from collections.abc import Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from typing import Any

from accord.domain.errors import InvalidInput, Problem
from accord.sim.runner import Progress, Results
from accord.sim.scenario import Scenario
from accord.sim.sweep import Done, RunUnit, Unit, inputs_of, merge, plan, run_unit

MAX_WORKERS = 64
CONNECT_S = 10.0      # to reach the scheduler
NO_WORKER_S = 60.0    # a scheduler with no worker this long ends the sweep
ALLOWED = (f"a number of local processes, 1 to {MAX_WORKERS}, or tcp://HOST:PORT of a running Dask "
           "scheduler")
_TCP = re.compile(r"tcp://(?P<host>[A-Za-z0-9.\-]+|\[[0-9A-Fa-f:.]+\]):(?P<port>\d{1,5})")


class Mode(enum.Enum):
    """Where the units run."""

    HERE = "here"            # this process
    PROCESSES = "processes"  # local worker processes
    DASK = "dask"            # a Dask distributed scheduler's workers


@dataclass(frozen=True, slots=True)
class Workers:
    """What ``--workers`` asked for: ``text`` as given, for messages."""

    mode: Mode
    count: int = 1
    host: str = ""
    port: int = 0
    text: str = "1"
    idle_s: float = NO_WORKER_S   # a scheduler with no worker this long ends the sweep

    @property
    def address(self) -> str:
        """The scheduler's address, ``tcp://HOST:PORT``."""
        return f"tcp://{self.host}:{self.port}"


HERE = Workers(Mode.HERE)


def parse_workers(text: str) -> Workers:
    """``--workers``'s value.

    >>> parse_workers("4").count, parse_workers("tcp://127.0.0.1:8786").port
    (4, 8786)

    Raises:
        InvalidInput: at ``--workers``: not a count in range nor ``tcp://HOST:PORT``.
    """
    text = text.strip()
    if text.isdigit():
        n = int(text)
        if not 1 <= n <= MAX_WORKERS:
            raise _problem(text, "is out of range")
        return Workers(Mode.HERE if n == 1 else Mode.PROCESSES, n, text=text)
    m = _TCP.fullmatch(text)
    if m is None or not 1 <= int(m["port"]) <= 65535:
        raise _problem(text, "is neither a number of processes nor a scheduler's tcp://HOST:PORT")
    return Workers(Mode.DASK, host=m["host"].strip("[]"), port=int(m["port"]), text=text)


def run_sweep(s: Scenario, workers: Workers = HERE, progress: Progress | None = None,
              run: RunUnit = run_unit) -> Results:
    """Every run of ``s``'s sweep by ``workers``, merged: the same results whoever ran them.

    Raises:
        InvalidInput: a bad input file (read here first, before any unit is sent), too many
            runs, or ``--workers`` failing (see the module's docstring).
    """
    units = plan(s)
    inputs = inputs_of(units[0].scenario)
    return merge(inputs, units, execute(units, workers, progress, run))


def execute(units: Sequence[Unit], workers: Workers, progress: Progress | None = None,
            run: RunUnit = run_unit) -> list[Done]:
    """Each unit's output, in the units' order.

    Raises:
        InvalidInput: at ``--workers``: a worker died, or the scheduler cannot be used.
    """
    if workers.mode is Mode.HERE:
        return [run(u, progress) for u in units]
    if workers.mode is Mode.PROCESSES:
        return _processes(units, workers, progress, run)
    return _dask(units, workers, progress, run)


def _processes(units: Sequence[Unit], workers: Workers, progress: Progress | None,
               run: RunUnit) -> list[Done]:
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(["accord.sim.sweep"])
    with ProcessPoolExecutor(min(workers.count, len(units)), mp_context=ctx) as pool:
        futures = [pool.submit(run, u, None) for u in units]
        try:
            return _collect(futures, units, progress, f"{workers.count} processes")
        except BrokenProcessPool:
            raise _problem(workers.text, "lost a worker process mid-sweep (killed, or out of memory?)",
                           "run again, with fewer --workers if memory is short") from None


def _collect(futures: Sequence[Future[Done]], units: Sequence[Unit], progress: Progress | None,
             where: str) -> list[Done]:
    """The futures' results in order, reporting each unit done.

    Raises:
        BrokenProcessPool: a worker process died.
    """
    pending = set(futures)
    while pending:
        done, pending = wait(pending, return_when=FIRST_COMPLETED)
        for f in done:
            f.result()
        if progress is not None:
            progress(f"sweep on {where}", len(futures) - len(pending), len(futures))
    return [f.result() for f in futures]


def _dask(units: Sequence[Unit], workers: Workers, progress: Progress | None, run: RunUnit) -> list[Done]:
    client = _client(workers)
    try:
        futures = client.map(run, units, pure=False)
        return _gather(client, futures, units, workers, progress)
    finally:
        client.close()


def _client(workers: Workers) -> Any:
    """A Dask client of the scheduler ``workers`` names.

    Raises:
        InvalidInput: dask.distributed not installed, or no scheduler answers there.
    """
    try:
        from distributed import Client
    except ImportError:
        raise _problem(workers.text, "needs dask.distributed, which is not installed",
                       "install it: uv sync --extra cluster, or pip install 'accord[cluster]'") from None
    try:
        socket.create_connection((workers.host, workers.port), timeout=CONNECT_S).close()
        return Client(workers.address, timeout=CONNECT_S, set_as_default=False)  # type: ignore[no-untyped-call]
    except (OSError, TimeoutError) as exc:
        raise _problem(workers.text, f"no Dask scheduler answers there ({exc.strerror or exc})",
                       "start one (dask scheduler --port PORT, and dask worker tcp://HOST:PORT), or "
                       "give its address") from None


def _gather(client: Any, futures: list[Any], units: Sequence[Unit], workers: Workers,
            progress: Progress | None) -> list[Done]:
    """The units' outputs, polling the futures (every half second) and the cluster.

    Raises:
        InvalidInput: a unit failed or killed its workers, the scheduler went away, or no
            worker was connected for ``workers.idle_s`` seconds.
    """
    pending, idle_since, checked = dict(enumerate(futures)), None, time.monotonic()
    outputs: dict[int, Done] = {}
    while pending:
        # "lost": a result that died with its worker, which the scheduler computes again
        done = [i for i, f in pending.items() if f.status not in ("pending", "lost")]
        for i in done:
            f = pending.pop(i)
            if f.status != "finished":
                raise _failed(f, units[i], workers)
            try:
                outputs[i] = f.result()
            except Exception:   # its worker died as it was fetched, say
                raise _failed(f, units[i], workers) from None
            f.release()   # fetched: the cluster may forget it (and not recompute it if lost)
        if done and progress is not None:
            progress(f"sweep on {workers.text}", len(outputs), len(futures))
        if pending and not done:
            time.sleep(0.5)
            if time.monotonic() - checked > 2.0:
                idle_since, checked = _idle(client, workers, idle_since), time.monotonic()
    return [outputs[i] for i in range(len(futures))]


def _idle(client: Any, workers: Workers, since: float | None) -> float | None:
    """When the scheduler was last seen without a worker (None: it has some).

    Raises:
        InvalidInput: none for ``workers.idle_s`` seconds, or the scheduler went away.
    """
    try:
        count = len(client.nthreads())
    except (OSError, TimeoutError) as exc:
        raise _problem(workers.text, f"the Dask scheduler went away mid-sweep ({exc})",
                       "restart it and run again") from None
    if count:
        return None
    now = time.monotonic()
    if since is not None and now - since > workers.idle_s:
        raise _problem(workers.text, f"the Dask scheduler has had no worker for {workers.idle_s:.0f} s",
                       "start workers: dask worker " + workers.address)
    return since if since is not None else now


def _failed(future: Any, unit: Unit, workers: Workers) -> InvalidInput:
    """The error for a unit that did not finish on the cluster."""
    try:
        exc = future.exception(timeout=CONNECT_S)
    except Exception as cancelled:   # distributed's FutureCancelledError says why
        exc = cancelled
    name = type(exc).__name__
    if name == "KilledWorker":
        return _problem(workers.text, f"the Dask workers running {unit.label} died (killed, or out of "
                        "memory?) as often as the scheduler allows", "run again, with more memory a worker")
    if "Cancelled" in name or exc is None:
        return _problem(workers.text, f"the Dask scheduler dropped {unit.label} ({exc or 'cancelled'}): a "
                        "worker died, or the scheduler restarted", "run again")
    return _problem(workers.text, f"a Dask worker failed running {unit.label}: {name}: {exc}",
                    "run the workers in this Accord's Python environment, with the scenario's files "
                    "at the same paths")


def _problem(got: str, message: str, allowed: str = ALLOWED) -> InvalidInput:
    return InvalidInput([Problem("--workers", message, got, allowed)])
