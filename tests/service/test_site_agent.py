"""The site agent's rounds against a scripted hub: one exchange a round carries its
acknowledgements and reports and fetches orders; a refused exchange is sent again part by
part, so one report the hub will not take holds up nothing else; long rounds are split.
The agent's state is the real one (SQLite in a temporary directory)."""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import pytest

from accord.adapters.agent_backend import job_order
from accord.adapters.agent_state import SqliteAgentState
from accord.adapters.clock import FakeClock
from accord.adapters.request_signing import new_private_key
from accord.domain.agent.protocol import (
    MAX_REPORTS,
    Ack,
    LogChunk,
    Order,
    OrderKind,
    Report,
    Resync,
    SiteView,
    order_id,
)
from accord.domain.errors import Conflict, NotFound
from accord.domain.jobs.model import Job, JobSpec, Outcome, Placement, new_job
from accord.domain.jobs.site import Dispatched, JobLogs, RemoteState, RemoteStatus
from accord.domain.placement.records import PoolLoad
from accord.service.site_agent import SiteAgent
from tests.conftest import T0


@dataclass
class Call:
    kind: str
    acks: list[str] = field(default_factory=list)
    reports: list[tuple[str, str]] = field(default_factory=list)
    wait: float | None = None


class ScriptedHub:
    """Hands out ``queue``'s orders until acknowledged; refuses any exchange or report
    naming a reference in ``poison``; records every call."""

    def __init__(self) -> None:
        self.queue: list[Order] = []
        self.acked: dict[str, str] = {}
        self.reported: list[tuple[str, str]] = []
        self.poison: set[str] = set()
        self.calls: list[Call] = []
        self.old = False  # a hub of a version without POST /exchange

    def _pending(self) -> list[Order]:
        return [o for o in self.queue if o.id not in self.acked]

    def _refuse(self, reports: Sequence[Report]) -> None:
        bad = [r.ref for r in reports if r.ref in self.poison]
        if bad:
            raise Conflict(f"job {bad[0]} was reported ended differently")

    def _take(self, acks: Sequence[Ack], reports: Sequence[Report]) -> None:
        self.acked.update({a.order: a.local_id for a in acks})
        self.reported.extend((r.ref, r.state.value) for r in reports)

    def exchange(self, acks: Sequence[Ack], reports: Sequence[Report], wait_s: float) -> list[Order]:
        said = [(r.ref, r.state.value) for r in reports]
        self.calls.append(Call("exchange", [a.order for a in acks], said, wait_s))
        if self.old:
            raise NotFound("hub refused (404): Not Found")
        self._refuse(reports)
        self._take(acks, reports)
        return self._pending()

    def orders(self, wait_s: float) -> list[Order]:
        self.calls.append(Call("orders", wait=wait_s))
        return self._pending()

    def ack(self, acks: Sequence[Ack]) -> None:
        self.calls.append(Call("ack", [a.order for a in acks]))
        self._take(acks, [])

    def report(self, reports: Sequence[Report]) -> None:
        self.calls.append(Call("report", reports=[(r.ref, r.state.value) for r in reports]))
        self._refuse(reports)
        self._take([], reports)

    def heartbeat(self, loads: Mapping[str, PoolLoad], held: Sequence[str] | None) -> Resync:
        return Resync(list(held or []), [])

    def site(self) -> SiteView:
        return SiteView("isambard", "uk", (("h100", "H100", 8),))

    def log(self, chunk: LogChunk) -> int:
        return chunk.offset + len(chunk.data)

    def input(self, ref: str, sha256: str) -> bytes:
        raise AssertionError("no inputs here")

    def output(self, ref: str, name: str, sha256: str, data: bytes) -> None:
        raise AssertionError("no outputs here")

    def kinds(self) -> list[str]:
        return [c.kind for c in self.calls]


class Cluster:
    """A scheduler whose jobs run until ``end`` is called on their local id."""

    site_id = "isambard"

    def __init__(self) -> None:
        self.jobs: dict[str, str] = {}  # local id -> job id
        self.ended: set[str] = set()

    def loads(self) -> Mapping[str, PoolLoad]:
        return {"h100": PoolLoad(8, 0)}

    def look_up(self, job: Job) -> Dispatched | None:
        return next((Dispatched(k, adopted=True) for k, v in self.jobs.items() if v == job.id), None)

    def submit(self, job: Job) -> Dispatched:
        local = str(100 + len(self.jobs))
        self.jobs[local] = job.id
        return Dispatched(local)

    def poll(self, refs: Sequence[str]) -> Mapping[str, RemoteStatus]:
        out = {}
        done = Outcome(0, T0, T0.replace(hour=10), 3600.0, "", 1)
        for r in refs:
            ended = r in self.ended
            state = RemoteState.COMPLETED if ended else RemoteState.RUNNING
            out[r] = RemoteStatus(state, T0, done if ended else None)
        return out

    def cancel(self, ref: str) -> None:
        self.ended.add(ref)

    def logs(self, ref: str, job: Job) -> JobLogs:
        return JobLogs("", "")


def dispatch(i: int) -> Order:
    spec = JobSpec(name=f"j{i}", gpus=1, time_limit_s=600, command=("true",), partner="fr", site="isambard")
    job = replace(new_job(f"job-{i:04d}", spec, T0), placement=Placement("isambard", "h100", "uk-fr"))
    ref = f"{job.id}.1"
    kind = OrderKind.DISPATCH
    return Order(order_id(ref, kind), "isambard", kind, ref, job.id, T0, job_order(job))


@dataclass
class World:
    hub: ScriptedHub
    cluster: Cluster
    agent: SiteAgent
    state: SqliteAgentState
    clock: list[float]  # the agent's monotonic clock, seconds


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    hub, cluster = ScriptedHub(), Cluster()
    state = SqliteAgentState(tmp_path / "agent.db")
    clock = [0.0]
    agent = SiteAgent(
        "isambard", cluster, hub, state, FakeClock(T0), new_private_key()[0], monotonic=lambda: clock[0]
    )
    yield World(hub, cluster, agent, state, clock)
    state.close()


def test_a_round_is_one_request_carrying_the_last_rounds_news(world: World) -> None:
    w = world
    order = dispatch(1)
    w.hub.queue.append(order)
    w.agent.step()  # takes the order and submits it
    assert w.hub.kinds() == ["exchange"] and w.cluster.jobs == {"100": "job-0001"}
    w.hub.calls.clear()
    w.agent.step()  # acknowledges it with its Slurm id and reports it running, in one request
    assert w.hub.calls == [Call("exchange", [order.id], [(order.ref, "running")], 2.0)]
    assert w.hub.acked == {order.id: "100"}
    w.hub.calls.clear()
    w.agent.step()  # nothing new: a long poll that carries nothing
    assert w.hub.calls == [Call("exchange", [], [], 2.0)]
    w.cluster.ended.add("100")
    w.hub.calls.clear()
    w.agent.step()
    assert w.hub.calls == [Call("exchange", [], [(order.ref, "completed")], 2.0)]
    assert w.state.held() == []  # a job reported ended is no longer held


def test_a_report_the_hub_refuses_holds_up_nothing_else(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    w = world
    first, second = dispatch(1), dispatch(2)
    w.hub.queue.append(first)
    w.agent.step()
    w.agent.step()
    w.hub.poison.add(first.ref)
    w.cluster.ended.add("100")
    w.hub.queue.append(second)
    w.hub.calls.clear()
    with caplog.at_level(logging.WARNING, "accord.agent"):
        w.agent.step()
    assert w.hub.kinds() == ["exchange", "report", "report", "orders"]  # the batch, then each alone
    assert "refused the report of job-0001.1 as completed" in caplog.text
    assert w.cluster.jobs == {"100": "job-0001", "101": "job-0002"}  # the new order was still run
    w.hub.calls.clear()
    w.agent.step()  # the second's ack and report still go; the refused report is sent again
    assert w.hub.kinds() == ["exchange", "ack", "report", "report", "report", "orders"]
    assert w.hub.acked[second.id] == "101"
    assert (second.ref, "running") in w.hub.reported and (first.ref, "completed") not in w.hub.reported
    w.hub.poison.clear()
    w.hub.calls.clear()
    w.agent.step()
    assert w.hub.calls == [Call("exchange", [], [(first.ref, "completed")], 2.0)]


def test_more_than_a_requests_worth_goes_in_several_and_only_the_last_waits(world: World) -> None:
    w = world
    n = MAX_REPORTS + 5
    w.hub.queue.extend(dispatch(i) for i in range(n))
    w.agent.step()
    assert len(w.cluster.jobs) == n
    w.hub.calls.clear()
    w.agent.step()
    assert [(len(c.acks), len(c.reports), c.wait) for c in w.hub.calls] == [
        (MAX_REPORTS, MAX_REPORTS, 0.0),
        (5, 5, 2.0),
    ]
    assert len(w.hub.acked) == n and len(w.hub.reported) == n


def test_against_a_hub_without_exchanges_the_agent_uses_the_separate_requests_until_its_resync(
    world: World,
) -> None:
    w = world
    w.hub.old = True
    order = dispatch(1)
    w.hub.queue.append(order)
    w.agent.step()  # nothing was refused but the exchange itself: this hub lacks the route
    assert w.hub.kinds() == ["exchange", "orders"] and w.cluster.jobs == {"100": "job-0001"}
    w.hub.calls.clear()
    w.agent.step()
    assert w.hub.kinds() == ["ack", "report", "orders"]
    assert w.hub.acked == {order.id: "100"}
    w.hub.calls.clear()
    w.clock[0] += 60
    w.agent.step()
    assert w.hub.kinds() == ["orders"]  # no more refused exchanges
    w.hub.old = False
    w.clock[0] += 3600  # the next resynchronisation: the exchange is tried again
    w.cluster.ended.add("100")
    w.hub.calls.clear()
    w.agent.step()
    assert w.hub.calls == [Call("exchange", [], [(order.ref, "completed")], 2.0)]


def test_an_answers_orders_are_kept_in_one_write_each_once(world: World) -> None:
    """``take`` keeps a whole answer in one transaction (one write to disk however many
    orders) and returns only the orders it had not kept before; a cancel marks its job."""
    d1, d2 = dispatch(1), dispatch(2)
    cancel = Order(order_id(d1.ref, OrderKind.CANCEL), "isambard", OrderKind.CANCEL, d1.ref, d1.job_id, T0)
    assert world.state.take([d1, d2], T0) == [d1, d2]
    assert world.state.take([d2, cancel, d1], T0) == [cancel], "an order delivered twice is kept once"
    assert world.state.take([], T0) == []
    held = {h.ref: h for h in world.state.held()}
    assert held[d1.ref].cancel and not held[d2.ref].cancel
    assert [o for o, _ in world.state.unacked()] == [d1.id, d2.id, cancel.id]
