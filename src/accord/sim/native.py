"""The kernel's event loop compiled to machine code (numba), for runs whose placement needs
no context: the home-site FIFO baseline. ``docs/design/simulator.md`` says when it is used.

It is :class:`accord.sim.kernel.Simulation`'s loop, event for event: the same heap order
(time, kind, sequence number), arrivals merged with the heap, dispatcher passes of at most
the broker's batch, jobs that must WAIT tried again when the context would be rebuilt,
outages, and each pool run first come, first served with optional EASY backfilling as
:class:`accord.sim.sites.PoolScheduler` runs it. What placement decides is not written here:
per rule epoch and job class (home partner, GPUs) the caller passes what
:func:`accord.domain.placement.place.standing_terms` says of every pool (allowed or not, the
weighted terms the loads do not change, the agreement abroad, whether a refusal may pass
later), and the loop adds the one term the loads change, the wait, as
:func:`~accord.domain.placement.place.choose` does, and picks the winner by the same tie rule
(:data:`~accord.domain.placement.records.TIE`, then the pool's place in id order). A test runs both
loops on random cases and the real Philly trace and asks for the same run.

Energy, emissions and the ledger are not here either: the caller computes them from the
starts and ends with the accounting code, and posts the cross-border jobs in the order
this loop says they were read.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from numba import njit

from accord.domain.placement import pick as placement_pick
from accord.domain.placement.records import after_placing, retry_waiting_at
from accord.sim.model import DOWN, FINISH, PASS, UP

# How the functions are compiled (cached on disk, so a process compiles them once per
# machine). ``inline`` ones are small and hot: inlined into their callers. ``lean`` ones
# allocate nothing, so they are compiled without the runtime's reference counting (a numba
# option): with it, the loop spent two thirds of its time counting references to the arrays
# it passes around (1,000,000 jobs: 2.0 s, 0.66 s without; docs/benchmarks.md).
INLINE: dict[str, Any] = {"cache": True, "inline": "always"}
LEAN: dict[str, Any] = {"cache": True, "_nrt": False}
LEAN_INLINE: dict[str, Any] = {**LEAN, "inline": "always"}

INF = math.inf

# slots of the scalar state: ints and floats
H_SIZE, SEQ, N_PEND, N_WAIT, N_POSTED, N_HELD, FULL = 0, 1, 2, 3, 4, 5, 6
PASS_AT, CONTEXT_UNTIL, GIVE_UP = 0, 1, 2


KIND = 1 << 56   # heap entries order by (time, kind × KIND + sequence number)

# the broker's own rules, compiled from the domain's code
_after_placing = njit(**INLINE)(after_placing)
_retry_waiting_at = njit(**INLINE)(retry_waiting_at)
# choose()'s last step, for the Python loop's decisions with a context (carbon-aware and the
# other policies but home-site FIFO): called from Python, once a decision
pick = njit(**LEAN)(placement_pick.pick)


@njit(**INLINE)
def _less(ht, hk, a, b):
    return ht[a] < ht[b] or (ht[a] == ht[b] and hk[a] < hk[b])


@njit(**INLINE)
def _swap(ht, hk, hj, a, b):
    ht[a], ht[b] = ht[b], ht[a]
    hk[a], hk[b] = hk[b], hk[a]
    hj[a], hj[b] = hj[b], hj[a]


@njit(**INLINE)
def _push(heap, si, t, kind, job):
    """Push (t, kind, next sequence number, job); a full heap drops it and says so in
    ``si[FULL]`` (the caller then runs the Python loop instead)."""
    ht, hk, hj = heap
    n = si[H_SIZE]
    if n == len(ht):
        si[FULL] = 1
        return
    si[SEQ] += 1
    ht[n], hk[n], hj[n] = t, kind * KIND + si[SEQ], job
    si[H_SIZE] = n + 1
    while n > 0:
        parent = (n - 1) // 2
        if not _less(ht, hk, n, parent):
            break
        _swap(ht, hk, hj, n, parent)
        n = parent


@njit(**INLINE)
def _pop(heap, si):
    ht, hk, hj = heap
    t, kind, job = ht[0], hk[0] // KIND, hj[0]
    n = si[H_SIZE] - 1
    si[H_SIZE] = n
    if n > 0:
        _swap(ht, hk, hj, 0, n)
        i = 0
        while True:
            left, right, low = 2 * i + 1, 2 * i + 2, i
            if left < n and _less(ht, hk, left, low):
                low = left
            if right < n and _less(ht, hk, right, low):
                low = right
            if low == i:
                break
            _swap(ht, hk, hj, i, low)
            i = low
    return t, kind, job


@njit(**LEAN)
def _before(a, b, key, tie):
    return key[a] < key[b] or (key[a] == key[b] and tie[a] < tie[b])


@njit(**LEAN)
def _order(key, tie, idx, n):
    """Fill ``idx[:n]`` with the indices of ``key[:n]`` by (key, tie), ascending."""
    for x in range(n):
        idx[x] = x
    _heapsort(idx, n, key, tie)


@njit(**LEAN)
def _heapsort(idx, n, key, tie):
    """Sort the entries of ``idx[:n]`` in place by (key[entry], tie[entry]), ascending (a
    heapsort: quick to compile, allocates nothing)."""
    for top in range(n // 2 - 1, -1, -1):
        _sift(idx, top, n, key, tie)
    for end in range(n - 1, 0, -1):
        idx[0], idx[end] = idx[end], idx[0]
        _sift(idx, 0, end, key, tie)


@njit(**LEAN)
def _sift(idx, i, n, key, tie):
    while True:
        left, right, big = 2 * i + 1, 2 * i + 2, i
        if left < n and _before(idx[big], idx[left], key, tie):
            big = left
        if right < n and _before(idx[big], idx[right], key, tie):
            big = right
        if big == i:
            return
        idx[i], idx[big] = idx[big], idx[i]
        i = big


# ── a pool's scheduler (accord.sim.sites.PoolScheduler over arrays) ──

@njit(**INLINE)
def _start(job, k, t, gpus, req, pools, runs, exp_end):
    sfree, squeued, qhead, qtail, qnext, qprev = pools[1], pools[2], pools[3], pools[4], pools[5], pools[6]
    run_off, run_cnt, run_jobs, run_pos = runs[0], runs[1], runs[2], runs[3]
    # unlink from the queue
    p, q = qprev[job], qnext[job]
    if p >= 0:
        qnext[p] = q
    else:
        qhead[k] = q
    if q >= 0:
        qprev[q] = p
    else:
        qtail[k] = p
    sfree[k] -= gpus[job]
    squeued[k] -= gpus[job]
    if len(exp_end):   # what runs, by expected end: only backfilling needs it
        exp_end[job] = t + req[job]
        slot = run_off[k] + run_cnt[k]
        run_jobs[slot] = job
        run_pos[job] = slot
        run_cnt[k] += 1


@njit(**LEAN)
def _schedule_pool(k, t, gpus, req, pools, runs, exp_end, backfill, depth, started):
    """The jobs queued at pool ``k`` that start at ``t``, in order, into ``started``; how many."""
    sfree, qhead, qnext = pools[1], pools[3], pools[5]
    run_off, run_cnt, run_jobs = runs[0], runs[1], runs[2]
    count = 0
    while qhead[k] >= 0 and gpus[qhead[k]] <= sfree[k]:
        job = qhead[k]
        _start(job, k, t, gpus, req, pools, runs, exp_end)
        started[count] = job
        count += 1
    if qhead[k] >= 0 and backfill:
        head = qhead[k]
        need = gpus[head]
        free = sfree[k]
        shadow = INF
        m = run_cnt[k]
        base = run_off[k]
        ends, ids, idx = runs[4], runs[5], runs[6]
        for x in range(m):
            ids[x] = run_jobs[base + x]
            ends[x] = exp_end[ids[x]]
        _order(ends, ids, idx, m)
        for y in range(m):   # by expected end, then job
            x = idx[y]
            free += gpus[ids[x]]
            if free >= need:
                shadow = ends[x]
                break
        extra = free - need
        job = qnext[head]
        seen = 0
        while job >= 0 and seen < depth:
            after = qnext[job]
            g = gpus[job]
            if g <= sfree[k] and (t + req[job] <= shadow or g <= extra):
                if t + req[job] > shadow:
                    extra -= g
                _start(job, k, t, gpus, req, pools, runs, exp_end)
                started[count] = job
                count += 1
            job = after
            seen += 1
    return count


@njit(**INLINE)
def _schedule(k, t, jobs, pools, runs, exp_end, cfg, free, queued, paused, heap, si, out):
    """Start what pool ``k`` can start at ``t`` (nothing while its site is down), with
    their FINISH events; the pool's free and queued GPUs as the broker sees them."""
    gpus, run, req = jobs[1], jobs[2], jobs[3]
    sfree, squeued, qhead = pools[1], pools[2], pools[3]
    started = out[7]
    if qhead[k] >= 0 and not paused[k]:
        count = _schedule_pool(k, t, gpus, req, pools, runs, exp_end, cfg[2] > 0, int(cfg[3]), started)
        for x in range(count):
            job = started[x]
            out[1][job] = t
            _push(heap, si, t + run[job], FINISH, job)
    free[k] = sfree[k]
    queued[k] = squeued[k]


# ── the broker's side ──

@njit(**INLINE)
def _schedule_pass(t, cfg, sf, heap, si):
    step = cfg[0]
    at = math.ceil(t / step) * step if step > 0 else t
    if at < sf[PASS_AT]:
        sf[PASS_AT] = at
        _push(heap, si, at, PASS, -1)


@njit(**INLINE)
def _epoch(t, bounds):
    e = 0
    while e < len(bounds) and bounds[e] <= t:
        e += 1
    return e


@njit(**INLINE)
def _place(job, t, jobs, terms, loads, pools, runs, exp_end, cfg, heap, si, out, lists):
    """Place ``job`` at ``t`` as ``choose()`` would without a context (see the module
    docstring); queue it at the pool chosen, or note it as waiting or rejected."""
    gpus, cls = jobs[1], jobs[4]
    ok, part, agr, transient, wait_scale, bounds = terms
    free, queued, vfree, vqueued, available, paused = loads
    placed_at, pool, agreement, decisions, rejected = out[0], out[3], out[4], out[5], out[6]
    waiting = lists[1]
    decisions[job] += 1
    e, c, g = _epoch(t, bounds), cls[job], float(gpus[job])
    allowed, others, temporary = ok[e, c], part[e, c], transient[e, c]
    scores = out[8]
    low, down, renewable = INF, False, False
    for k in range(len(vfree)):
        scores[k] = INF
        if not allowed[k]:
            renewable = renewable or temporary[k]
        elif not available[k]:
            down = True
        else:
            w = max(g - vfree[k], 0.0) + vqueued[k]
            w *= wait_scale[k]
            scores[k] = w + others[k]
            if scores[k] < low:
                low = scores[k]
    if low == INF:   # none allowed and up: WAIT while a pool may pass later, else REJECT
        if down or renewable:
            waiting[si[N_WAIT]] = job
            si[N_WAIT] += 1
        else:
            rejected[job] = True
        return
    top = 0
    while not scores[top] <= low + cfg[5]:   # within TIE of the least: the first pool in order
        top += 1
    placed_at[job] = t
    agreement[job] = agr[e, c, top]
    vfree[top], vqueued[top] = _after_placing(int(vfree[top]), int(vqueued[top]), gpus[job])
    # queue it at the pool
    squeued, qhead, qtail, qnext, qprev = pools[2], pools[3], pools[4], pools[5], pools[6]
    pool[job] = top
    qprev[job] = qtail[top]
    qnext[job] = -1
    if qtail[top] >= 0:
        qnext[qtail[top]] = job
    else:
        qhead[top] = job
    qtail[top] = job
    squeued[top] += gpus[job]
    _schedule(top, t, jobs, pools, runs, exp_end, cfg, free, queued, paused, heap, si, out)


@njit(**LEAN)
def _pass(t, jobs, terms, loads, pools, runs, exp_end, cfg, sf, heap, si, out, lists):
    """A dispatcher pass at ``t``: the jobs pending, oldest first, at most a batch."""
    free, queued, vfree, vqueued = loads[0], loads[1], loads[2], loads[3]
    pend, waiting = lists[0], lists[1]
    if t >= sf[CONTEXT_UNTIL]:
        sf[CONTEXT_UNTIL] = (math.floor(t / cfg[1]) + 1) * cfg[1]
        for x in range(si[N_WAIT]):
            pend[si[N_PEND] + x] = waiting[x]
        si[N_PEND] += si[N_WAIT]
        si[N_WAIT] = 0
    for k in range(len(free)):
        vfree[k] = free[k]
        vqueued[k] = queued[k]
    m = si[N_PEND]
    _heapsort(pend, m, lists[6], lists[6])   # first come, first served: job numbers follow submit order
    batch, count = int(cfg[4]), m
    if cfg[0] > 0 and m > batch:   # as the broker: a batch a pass
        count = batch
        todo = lists[5]
        for x in range(batch):
            todo[x] = pend[x]
        for x in range(m - batch):
            pend[x] = pend[batch + x]
        si[N_PEND] = m - batch
        _schedule_pass(t + cfg[0], cfg, sf, heap, si)
    else:
        todo = pend
        si[N_PEND] = 0
    for x in range(count):
        _place(todo[x], t, jobs, terms, loads, pools, runs, exp_end, cfg, heap, si, out, lists)
    if si[N_WAIT] > 0 and t < sf[GIVE_UP]:
        refresh = cfg[1]
        _schedule_pass(math.ceil(_retry_waiting_at(t) / refresh) * refresh, cfg, sf, heap, si)


@njit(**INLINE)
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


@njit(**LEAN)
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


@njit(cache=True)
def run_loop(jobs, terms, caps, site_of, outages, cfg, give_up, out, lists):
    """Simulate every job to its end, rejection or the end of retries; fills ``out`` and
    ``lists`` (see :meth:`accord.sim.kernel.Simulation.run`). Returns (how many jobs still
    wait, at the start of ``lists[1]``; how many cross-border jobs were read, in order, at
    the start of ``lists[2]``; whether the run completed: False if the heap filled up)."""
    sub = jobs[0]
    o_site, o_start, o_end = outages
    n, npools = len(sub), len(caps)
    size = 2 * n + 2 * len(o_site) + 1024
    heap = (np.empty(size), np.empty(size, np.int64), np.empty(size, np.int64))
    si = np.zeros(7, np.int64)
    sf = np.array([INF, -INF, give_up])
    sfree = caps.copy()
    pools = (caps, sfree, np.zeros(npools, np.int64), np.full(npools, -1, np.int64),
             np.full(npools, -1, np.int64), np.full(n, -1, np.int64), np.full(n, -1, np.int64))
    run_off = np.zeros(npools, np.int64)
    for k in range(1, npools):
        run_off[k] = run_off[k - 1] + caps[k - 1]
    scratch = n if cfg[2] > 0 else 0   # only backfilling sorts what runs
    runs = (run_off, np.zeros(npools, np.int64), np.empty(max(1, caps.sum()), np.int64),
            np.zeros(n, np.int64),
            np.empty(scratch), np.empty(scratch, np.int64), np.empty(scratch, np.int64))
    exp_end = np.empty(n if cfg[2] > 0 else 0)   # only backfilling looks at what runs
    loads = (caps.astype(np.float64), np.zeros(npools), caps.astype(np.float64), np.zeros(npools),
             np.ones(npools, np.bool_), np.zeros(npools, np.bool_))
    for x in range(len(o_site)):
        _push(heap, si, o_start[x], DOWN, x)
        _push(heap, si, o_end[x], UP, x)
    return _main(jobs, terms, site_of, outages, cfg, out, lists, heap, si, sf, pools, runs, exp_end, loads)


@njit(**LEAN)
def _main(jobs, terms, site_of, outages, cfg, out, lists, heap, si, sf, pools, runs, exp_end, loads):
    sub = jobs[0]
    o_site = outages[0]
    n = len(sub)
    pend = lists[0]
    i = 0
    while (i < n or si[H_SIZE] > 0 or si[N_PEND] > 0 or si[N_WAIT] > 0) and si[FULL] == 0:
        t_arrive = sub[i] if i < n else INF
        t_event = heap[0][0] if si[H_SIZE] > 0 else INF
        if i < n and (t_arrive < t_event or (t_arrive == t_event and heap[1][0] // KIND > DOWN)):
            pend[si[N_PEND]] = i
            si[N_PEND] += 1
            if cfg[0] <= 0:
                sf[PASS_AT] = INF
                _pass(t_arrive, jobs, terms, loads, pools, runs, exp_end, cfg, sf, heap, si, out, lists)
            else:
                _schedule_pass(t_arrive, cfg, sf, heap, si)
            i += 1
            continue
        if si[H_SIZE] == 0:
            break
        t, kind, job = _pop(heap, si)
        if kind == FINISH:
            _finish(job, t, jobs, loads, pools, runs, exp_end, cfg, heap, si, out, lists)
        elif kind in (UP, DOWN):
            _site(job, kind == UP, t, jobs, loads, pools, runs, exp_end, cfg, sf, heap, si, out, lists,
                  site_of, o_site)
        elif kind == PASS:
            sf[PASS_AT] = INF
            _pass(t, jobs, terms, loads, pools, runs, exp_end, cfg, sf, heap, si, out, lists)
    return si[N_WAIT], si[N_POSTED], si[FULL] == 0
