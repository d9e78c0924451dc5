# mypy: disallow-untyped-defs=False, disallow-incomplete-defs=False, disallow-untyped-calls=False
"""The simulation kernel's event loop, written once: plain Python over numbers and numpy
arrays that :func:`build` compiles to machine code (numba) for every run, or hands back as
it is, so that tests run the very same source interpreted. ``docs/design/simulator.md``
describes the model; :mod:`accord.sim.native_run` is the glue that feeds it.

Time jumps from event to event: a heap of (time, kind, sequence number, job), arrivals (a
sorted stream) merged with it; the broker places the jobs that arrived in dispatcher passes
of at most the broker's batch, over loads it updates within a pass by the broker's rule
(:func:`~accord.domain.placement.records.after_placing`). A deferred job is released at its
start (or when a reconsideration finds its best choice moved) and placed again then, once;
jobs that must WAIT are tried again when the context is rebuilt; outages; each pool first
come, first served with optional EASY backfilling (:mod:`accord.sim.native_sites`).

What placement decides is not written here: per decision the loop fills the standing table
with :func:`accord.domain.placement.table.fill_table` from what the domain said of the
job's partner under the current context (:func:`~accord.domain.placement.table.requester_terms`
per rule epoch, :func:`~accord.domain.placement.table.fill_limits` per context: asked of the
glue when a pass needs them, the loop then returning to its caller, which answers and calls
it again; a context whose quota left and balances cannot have changed the loop makes itself,
:func:`_renew`) and picks the pool with the domain's
:func:`~accord.domain.placement.pick.pick`, as ``choose()`` does. Energy, emissions and the
ledger are the glue's too: the loop says which cross-border jobs were read, in order.
"""

from __future__ import annotations

import hashlib
import marshal
import math
import types
from typing import Any

import numpy as np

from accord.domain.placement import pick as placement_pick
from accord.domain.placement import records as placement_records
from accord.domain.placement import scalar as placement_scalar
from accord.domain.placement import table as placement_table
from accord.domain.placement.pick import KW_BEST, START
from accord.domain.placement.scalar import _slots
from accord.domain.placement.table import (
    FIRST,
    FLEX,
    W_CONTEXT,
    W_EMISSIONS,
    W_FORECASTS,
    W_GAPS,
    W_SLOT,
    fill_table,
)
from accord.sim import forecast as sim_forecast
from accord.sim import native_sites
from accord.sim.forecast import forecast_window
from accord.sim.jit import INLINE, LEAN, MARKED, kernel
from accord.sim.model import DOWN, FINISH, PASS, RELEASE, REPLAN, UP
from accord.sim.native_sites import (
    CONTEXT_UNTIL,
    FROM,
    FULL,
    GIVE_UP,
    H_SIZE,
    KIND,
    MONTH_FROM,
    MONTH_UNTIL,
    N_DUE,
    N_HELD,
    N_PEND,
    N_POSTED,
    N_WAIT,
    NEED_AT,
    PASS_AT,
    READY_AT,
    SEQ,
    UNTIL,
    _heapsort,
    _pop,
    _push,
    _schedule,
)

INF = math.inf
HOUR = 3600.0
PLACE, DEFER, WAIT, REJECT = 0, 1, 2, 3
DONE, NEED_CONTEXT, NEED_TERMS, HEAP_FULL = 0, 1, 2, 3   # what run_loop returns
# more slots of the int state: the next arrival, tables filled, terms, cross-border jobs the ledger entered
I_NEXT, N_FILLS, EPOCH, N_ENTERED = 9, 10, 11, 12
# cfg: pass s, refresh s, backfill, depth, batch, replan s, context (1: the policy has one), slot s
C_PASS, C_REFRESH, C_BACKFILL, C_DEPTH, C_BATCH, C_REPLAN, C_CONTEXT, C_SLOT = range(8)

# the domain's functions the loop calls (build() compiles them with it): choose()'s last step,
# and the broker's rules for a pass's loads and for retrying jobs that wait
pick = placement_pick.pick
_after_placing = placement_records.after_placing
_retry_waiting_at = placement_records.retry_waiting_at


@kernel(INLINE)
def _usec(x):
    """``datetime.fromtimestamp(x, UTC).timestamp()``: ``x`` rounded to the microsecond
    (half to even) as CPython does, then back to seconds."""
    whole = math.floor(x)
    us = np.rint((x - whole) * 1e6)
    if us >= 1e6:
        us -= 1e6
        whole += 1.0
    return (int(whole) * 1000000 + int(us)) / 1e6


@kernel(LEAN)
def deadlines(sub, req, window, out):
    """Each job's deadline, submit + requested + ``window``, as a ``datetime`` holds it."""
    for j in range(len(sub)):
        out[j] = _usec(float(sub[j] + req[j]) + window)


@kernel(INLINE)
def _schedule_pass(t, cfg, sf, heap, si):
    step = cfg[C_PASS]
    at = math.ceil(t / step) * step if step > 0 else t
    if at < sf[PASS_AT]:
        sf[PASS_AT] = at
        _push(heap, si, at, PASS, -1)


@kernel(INLINE)
def _needs(t, cfg, sf):
    """What a pass at ``t`` needs of the caller first: a new context, the terms of a new
    day, or nothing (DONE)."""
    if cfg[C_CONTEXT] == 1.0 and t >= sf[CONTEXT_UNTIL] and sf[READY_AT] != t:
        return NEED_CONTEXT
    if not sf[FROM] + 1e-3 <= t < sf[UNTIL] - 1e-3 and not sf[FROM] <= _usec(t) < sf[UNTIL]:
        return NEED_TERMS   # a rule epoch begins (an agreement or an exchange rate starts or stops)
    return DONE


@kernel(LEAN)
def _table(job, s0, jobs, terms, tables, si):
    """The row of ``tables`` holding ``job``'s standing table at a pass at ``s0``: the one
    filled for an earlier job of the same class, requested time and window under the same
    terms (at the same first start, with a context), or filled now
    (:func:`~accord.domain.placement.table.fill_table`)."""
    req, cls, home, dl = jobs[3], jobs[4], jobs[5], jobs[6]
    lim, alts, count, elig, w, fz, fv, fp = terms
    keys, at = tables[3], tables[4]
    c, d = cls[job], int(req[job])
    if w[W_CONTEXT] == 1.0:   # the table depends on the run time and window (the forecasts)
        span = -1 if math.isnan(dl[job]) else _slots(d, s0, dl[job], -1.0, w[W_EMISSIONS], w[W_SLOT])
        key_d, key_s = d, s0
    else:                     # only on the job's class
        span, key_d, key_s = 0, 0, 0.0
    h = (c * 1000003 + key_d * 7919 + span * 31 + 17) & (len(keys) - 1)   # a power of 2 rows
    if keys[h, 0] == c and keys[h, 1] == key_d and keys[h, 2] == span and keys[h, 3] == si[EPOCH] \
            and at[h] == key_s:
        return h
    p = home[job]
    fill_table(jobs[1][job], d, s0, dl[job], elig[c], lim[p], alts[p], count[p], w, fz, fv, fp, tables[0][h],
               tables[1][h], tables[2][h])
    keys[h, 0], keys[h, 1], keys[h, 2], keys[h, 3], at[h] = c, key_d, span, si[EPOCH], key_s
    si[N_FILLS] += 1
    return h


@kernel(LEAN)
def _renew(t, cfg, sf, si, lists, terms, feed):
    """A new context at ``t`` without the caller, when what the caller would ask of the
    ledger cannot have changed (no usage is due to be entered, the same month and rule
    epoch: the same quota left and balances): only the forecasts move on, made here from
    the perfect forecast's series (:func:`~accord.sim.forecast.forecast_window`). False
    when the caller must build it."""
    info, secs, vals, scratch, params = feed
    s = _usec(t)
    if params[3] != 1.0 or not (sf[MONTH_FROM] <= s < sf[MONTH_UNTIL] and sf[FROM] <= s < sf[UNTIL]):
        return False
    entered = si[N_ENTERED]
    if entered < si[N_POSTED] and lists[3][lists[2][entered]] <= t - cfg[C_PASS]:
        return False
    w, fz, fv, fp = terms[4], terms[5], terms[6], terms[7]
    if w[W_EMISSIONS] > 0:
        slot = int(params[0])
        origin = math.floor(s / slot) * slot
        some, every = False, True
        for z in range(len(fz)):
            forecast_window(z, origin, slot, int(params[1]), params[2], info, secs, vals, scratch, fz, fv, fp)
            some = some or fz[z, 0] == 1.0
            every = every and fz[z, 0] == 1.0
        w[W_FORECASTS] = 1.0 if some else 0.0
        w[W_GAPS] = 0.0 if some and every else 1.0
        si[EPOCH] += 1
    sf[READY_AT] = t
    return True


@kernel(LEAN)
def _decide(job, t, jobs, terms, loads, out, tables, si):
    """``choose()`` for ``job`` at a pass at ``t``: (verdict, pool, start, estimated g,
    agreement)."""
    w = terms[4]
    vfree, vqueued, available = loads[2], loads[3], loads[4]
    out[5][job] += 1
    s0 = _usec(t) if w[W_CONTEXT] == 1.0 else t   # the time as a datetime holds it (no context: unused)
    g = jobs[1][job]
    h = _table(job, s0, jobs, terms, tables, si)
    table, agr, transient = tables[0][h], tables[1][h], tables[2][h]
    top = pick(g, vfree, vqueued, available, table, w[W_EMISSIONS], out[8])
    if top >= 0:
        start = table[START, top] if w[W_CONTEXT] == 1.0 else s0
        kw = table[KW_BEST, top]
        grams = math.nan if math.isnan(kw) else g * kw / HOUR
        return (DEFER if start > s0 else PLACE), top, start, grams, agr[top]
    for k in range(len(available)):   # none allowed and up: WAIT while a refusal may pass
        if (table[0, k] == 1.0 and not available[k]) or transient[k]:
            return WAIT, -1, s0, math.nan, -1
    return REJECT, -1, s0, math.nan, -1


@kernel(INLINE)
def _plan_check(job, t, start, cfg, heap, si):
    if cfg[C_REPLAN] > 0 and t + cfg[C_REPLAN] < start:
        _push(heap, si, t + cfg[C_REPLAN], REPLAN, job)


@kernel(LEAN)
def _place(job, t, jobs, terms, loads, pools, runs, exp_end, cfg, heap, si, out, lists, state, tables):
    """Place ``job`` at a pass at ``t`` (see the module docstring): queue it at the pool
    chosen, defer it, or note it as waiting or rejected."""
    gpus, req = jobs[1], jobs[3]
    dl, released, d_seq, d_start, d_site, site_of = state[0], state[1], state[2], state[3], state[4], state[5]
    verdict, top, start, grams, agreement = _decide(job, t, jobs, terms, loads, out, tables, si)
    d = int(req[job])
    if verdict == DEFER and (released[job] or (not math.isnan(dl[job]) and start + d > dl[job])):
        verdict, start, grams = PLACE, t, math.nan   # shifted in time once, never past its deadline
    released[job] = False
    if verdict == DEFER:
        if math.isnan(dl[job]):   # it keeps the window of its first deferral
            lim = terms[0][jobs[5][job]]
            flex = lim[FLEX, top] * HOUR if lim[FIRST, top] >= 0 else 0.0
            dl[job] = _usec(t + flex + d)
        out[9][job] = True
        _push(heap, si, start, RELEASE, job)
        d_seq[job], d_start[job], d_site[job] = si[SEQ], start, site_of[top]
        _plan_check(job, t, start, cfg, heap, si)
    elif verdict == PLACE:
        out[0][job] = t
        out[4][job] = agreement
        out[10][job] = grams
        vfree, vqueued = loads[2], loads[3]
        vfree[top], vqueued[top] = _after_placing(int(vfree[top]), int(vqueued[top]), gpus[job])
        _enqueue(job, top, t, jobs, loads, pools, runs, exp_end, cfg, heap, si, out)
    elif verdict == WAIT:
        lists[1][si[N_WAIT]] = job
        si[N_WAIT] += 1
    else:
        out[6][job] = True


@kernel(INLINE)
def _enqueue(job, top, t, jobs, loads, pools, runs, exp_end, cfg, heap, si, out):
    squeued, qhead, qtail, qnext, qprev = pools[2], pools[3], pools[4], pools[5], pools[6]
    out[3][job] = top
    qprev[job] = qtail[top]
    qnext[job] = -1
    if qtail[top] >= 0:
        qnext[qtail[top]] = job
    else:
        qhead[top] = job
    qtail[top] = job
    squeued[top] += jobs[1][job]
    _schedule(top, t, jobs, pools, runs, exp_end, cfg, loads[0], loads[1], loads[5], heap, si, out)


@kernel(LEAN)
def _reconsider(t, jobs, terms, loads, cfg, heap, si, out, lists, state, tables):
    """Place each due deferred job again over this pass's loads; release it now if the best
    choice moved to another site or at least a slot earlier, else check it again later."""
    pend, due, flag = lists[0], lists[7], lists[8]
    d_seq, d_start, d_site, site_of = state[2], state[3], state[4], state[5]
    m = si[N_DUE]
    _heapsort(due, m, lists[6], lists[6])
    si[N_DUE] = 0
    for x in range(m):
        job = due[x]
        flag[job] = False
        if d_seq[job] < 0 or d_start[job] <= t:
            continue
        verdict, top, start, _, _ = _decide(job, t, jobs, terms, loads, out, tables, si)
        if verdict != PLACE and verdict != DEFER:
            _plan_check(job, t, d_start[job], cfg, heap, si)
            continue
        begin = start if verdict == DEFER else t
        if site_of[top] != d_site[job] or begin + cfg[C_SLOT] <= d_start[job]:
            d_seq[job] = -1
            pend[si[N_PEND]] = job
            si[N_PEND] += 1
        else:
            _plan_check(job, t, d_start[job], cfg, heap, si)


@kernel(LEAN)
def _pass(t, jobs, terms, loads, pools, runs, exp_end, cfg, sf, heap, si, out, lists, state, tables):
    """A dispatcher pass at ``t``: reconsiderations, then the jobs pending, oldest first, at
    most a batch; jobs left waiting are tried again at the next day's first refresh."""
    free, queued, vfree, vqueued = loads[0], loads[1], loads[2], loads[3]
    pend, waiting = lists[0], lists[1]
    if t >= sf[CONTEXT_UNTIL]:
        sf[CONTEXT_UNTIL] = (math.floor(t / cfg[C_REFRESH]) + 1) * cfg[C_REFRESH]
        for x in range(si[N_WAIT]):
            pend[si[N_PEND] + x] = waiting[x]
        si[N_PEND] += si[N_WAIT]
        si[N_WAIT] = 0
    for k in range(len(free)):
        vfree[k] = free[k]
        vqueued[k] = queued[k]
    if si[N_DUE] > 0:
        _reconsider(t, jobs, terms, loads, cfg, heap, si, out, lists, state, tables)
    m = si[N_PEND]
    _heapsort(pend, m, lists[6], lists[6])   # first come, first served: job numbers follow submit order
    batch, count = int(cfg[C_BATCH]), m
    if cfg[C_PASS] > 0 and m > batch:   # as the broker: a batch a pass
        count = batch
        todo = lists[5]
        for x in range(batch):
            todo[x] = pend[x]
        for x in range(m - batch):
            pend[x] = pend[batch + x]
        si[N_PEND] = m - batch
        _schedule_pass(t + cfg[C_PASS], cfg, sf, heap, si)
    else:
        todo = lists[5]
        for x in range(m):
            todo[x] = pend[x]
        si[N_PEND] = 0
    for x in range(count):
        _place(todo[x], t, jobs, terms, loads, pools, runs, exp_end, cfg, heap, si, out, lists, state, tables)
    if si[N_WAIT] > 0 and t < sf[GIVE_UP]:
        refresh = cfg[C_REFRESH]
        _schedule_pass(math.ceil(_retry_waiting_at(t) / refresh) * refresh, cfg, sf, heap, si)


@kernel(INLINE)
def _finish(job, t, jobs, loads, pools, runs, exp_end, cfg, heap, si, out, lists):
    """``job`` ended at ``t``: free its GPUs, note its usage as read (or, while its site
    is down, to be read when it answers), start what can start."""
    gpus = jobs[1]
    free, queued, paused = loads[0], loads[1], loads[5]
    sfree = pools[1]
    run_off, run_cnt, run_jobs, run_pos = runs[0], runs[1], runs[2], runs[3]
    posted, read_s, held = lists[2], lists[3], lists[4]
    k = out[3][job]
    if len(exp_end):
        slot, last = run_pos[job], run_off[k] + run_cnt[k] - 1
        moved = run_jobs[last]
        run_jobs[slot] = moved
        run_pos[moved] = slot
        run_cnt[k] -= 1
    sfree[k] += gpus[job]
    out[2][job] = t
    if out[4][job] >= 0:
        if paused[k]:   # its usage is read once the site answers again
            held[si[N_HELD]] = job
            si[N_HELD] += 1
        else:
            posted[si[N_POSTED]] = job
            si[N_POSTED] += 1
            read_s[job] = t
    _schedule(k, t, jobs, pools, runs, exp_end, cfg, free, queued, paused, heap, si, out)


@kernel(LEAN)
def _site(outage, up, t, jobs, loads, pools, runs, exp_end, cfg, sf, heap, si, out, lists, site_of, o_site):
    """The site of ``outage`` goes down or comes back (then: what queued there starts, the
    usage of jobs that ended meanwhile is read, the waiting jobs go to the next pass)."""
    free, queued, available, paused = loads[0], loads[1], loads[4], loads[5]
    pend, waiting, posted, read_s, held = lists[0], lists[1], lists[2], lists[3], lists[4]
    site = o_site[outage]
    for k in range(len(site_of)):
        if site_of[k] == site:
            available[k] = up
            paused[k] = not up
    if not up:
        return
    for k in range(len(site_of)):
        if site_of[k] == site:
            _schedule(k, t, jobs, pools, runs, exp_end, cfg, free, queued, paused, heap, si, out)
    kept = 0
    for x in range(si[N_HELD]):
        job = held[x]
        if site_of[out[3][job]] == site:
            posted[si[N_POSTED]] = job
            si[N_POSTED] += 1
            read_s[job] = t
        else:
            held[kept] = job
            kept += 1
    si[N_HELD] = kept
    if si[N_WAIT] > 0:
        for x in range(si[N_WAIT]):
            pend[si[N_PEND] + x] = waiting[x]
        si[N_PEND] += si[N_WAIT]
        si[N_WAIT] = 0
        _schedule_pass(t, cfg, sf, heap, si)


@kernel(INLINE)
def _event(t, kind, seq, job, cfg, sf, heap, si, lists, state):
    """A RELEASE (unless a reconsideration released the job before) or a REPLAN."""
    d_seq = state[2]
    if kind == RELEASE:
        if d_seq[job] != seq:
            return
        d_seq[job] = -1
        state[1][job] = True
        lists[0][si[N_PEND]] = job
        si[N_PEND] += 1
        _schedule_pass(t, cfg, sf, heap, si)
    elif d_seq[job] >= 0:   # a REPLAN of a job still deferred: reconsider it at the next pass
        if not lists[8][job]:
            lists[8][job] = True
            lists[7][si[N_DUE]] = job
            si[N_DUE] += 1
        _schedule_pass(t, cfg, sf, heap, si)


@kernel(LEAN)
def run_loop(run, terms, site_of, outages, cfg, out, lists, state, tables, heap, si, sf, pools, runs, exp_end,
             loads, feed):
    """Simulate from where the last call stopped (the state is in the arrays) until every
    job has ended, been rejected or waited past the last retry (DONE), or a pass needs a
    new context or new terms first (a new rule epoch) (NEED_CONTEXT, NEED_TERMS: at ``sf[NEED_AT]``), or
    the heap is full (HEAP_FULL). ``run`` holds the jobs: submit, GPUs, run, requested,
    class, home partner, deadline; ``feed`` what :func:`_renew` needs."""
    jobs = run
    sub = jobs[0]
    o_site = outages[0]
    n = len(sub)
    pend = lists[0]
    while si[I_NEXT] < n or si[H_SIZE] > 0 or si[N_PEND] > 0 or si[N_WAIT] > 0:
        if si[FULL] != 0:
            return HEAP_FULL
        i = si[I_NEXT]
        t_arrive = sub[i] if i < n else INF
        t_event = heap[0][0] if si[H_SIZE] > 0 else INF
        if i < n and (t_arrive < t_event or (t_arrive == t_event and heap[1][0] // KIND > DOWN)):
            if cfg[C_PASS] <= 0:
                need = _needs(t_arrive, cfg, sf)
                if need == NEED_CONTEXT and _renew(t_arrive, cfg, sf, si, lists, terms, feed):
                    need = _needs(t_arrive, cfg, sf)
                if need != DONE:
                    sf[NEED_AT] = t_arrive
                    return need
                pend[si[N_PEND]] = i
                si[N_PEND] += 1
                sf[PASS_AT] = INF
                _pass(t_arrive, jobs, terms, loads, pools, runs, exp_end, cfg, sf, heap, si, out, lists,
                      state, tables)
            else:
                pend[si[N_PEND]] = i
                si[N_PEND] += 1
                _schedule_pass(t_arrive, cfg, sf, heap, si)
            si[I_NEXT] = i + 1
            continue
        if si[H_SIZE] == 0:
            break
        if heap[1][0] // KIND == PASS:
            need = _needs(heap[0][0], cfg, sf)
            if need == NEED_CONTEXT and _renew(heap[0][0], cfg, sf, si, lists, terms, feed):
                need = _needs(heap[0][0], cfg, sf)
            if need != DONE:
                sf[NEED_AT] = heap[0][0]
                return need
        t, kind, seq, job = _pop(heap, si)
        if kind == FINISH:
            _finish(job, t, jobs, loads, pools, runs, exp_end, cfg, heap, si, out, lists)
        elif kind in (UP, DOWN):
            _site(job, kind == UP, t, jobs, loads, pools, runs, exp_end, cfg, sf, heap, si, out, lists,
                  site_of, o_site)
        elif kind == PASS:
            sf[PASS_AT] = INF
            _pass(t, jobs, terms, loads, pools, runs, exp_end, cfg, sf, heap, si, out, lists, state, tables)
        else:
            _event(t, kind, seq, job, cfg, sf, heap, si, lists, state)
    return HEAP_FULL if si[FULL] != 0 else DONE


def build(compiled: bool = True) -> types.SimpleNamespace:
    """The kernel's functions (those marked with :func:`~accord.sim.jit.kernel`, and the
    domain's placement functions the loop calls) bound to one another: compiled with numba
    (cached on disk, so a machine compiles them once), or, with ``compiled=False``, as they
    are, so the same source runs interpreted. Raises nothing."""
    chosen: dict[str, tuple[Any, dict[str, Any]]] = dict(MARKED)
    chosen["pick"] = (pick, LEAN)
    chosen["_after_placing"] = (_after_placing, INLINE)
    chosen["_retry_waiting_at"] = (_retry_waiting_at, INLINE)
    for f in placement_table.SCALAR:
        chosen[f.__name__] = (f, LEAN)
    shared: dict[str, Any] = {}
    for module in (placement_pick, placement_scalar, placement_table, sim_forecast, native_sites, globals()):
        shared.update(module if isinstance(module, dict) else vars(module))
    if compiled:
        from numba import njit  # imported on first use: numba takes a second or two to load
    stamp = _sources_stamp(chosen, shared)
    for name, (f, options) in chosen.items():
        clone = types.FunctionType(f.__code__, shared, name, f.__defaults__, f.__closure__)
        clone.__qualname__ = f"{name}_{stamp}"   # numba's cache is kept per qualified name
        shared[name] = njit(**options)(clone) if compiled else clone
    return types.SimpleNamespace(**{name: shared[name] for name in chosen})


def _sources_stamp(chosen: dict[str, tuple[Any, dict[str, Any]]], shared: dict[str, Any]) -> str:
    """A digest of the kernel: every function's code and options, and the constants it reads.
    numba's disk cache checks only the source file of the function it compiled, not those of
    the functions and constants compiled into it: naming each function after this digest
    makes a change to any of them compile afresh. Raises nothing."""
    digest = hashlib.sha256()
    for name in sorted(chosen):
        f, options = chosen[name]
        digest.update(name.encode() + marshal.dumps(f.__code__) + repr(sorted(options.items())).encode())
    for name in sorted(shared):
        value = shared[name]
        if _constant(value) and not name.startswith("__"):
            digest.update(f"{name}={value!r};".encode())
    return digest.hexdigest()[:12]


def _constant(value: object) -> bool:
    """Whether numba would freeze ``value`` into the machine code as a constant."""
    if isinstance(value, tuple):
        return all(_constant(v) for v in value)
    return isinstance(value, int | float | str | bytes)
