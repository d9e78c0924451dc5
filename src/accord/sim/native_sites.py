# mypy: disallow-untyped-defs=False, disallow-incomplete-defs=False, disallow-untyped-calls=False
"""The compiled kernel's event heap and sites (:mod:`accord.sim.native`): a binary heap of
(time, kind × ``KIND`` + sequence number, job) over three arrays, an allocation-free sort,
and each pool's scheduler, :class:`accord.sim.sites.PoolScheduler` over arrays (first come,
first served by arrival at the pool, optionally EASY backfilling). Plain Python over numpy
arrays: :func:`accord.sim.native.build` compiles them (numba) with the loop, or runs them
as they are (the tests' interpreted run).
"""

from __future__ import annotations

import math

from accord.sim.jit import INLINE, LEAN, kernel
from accord.sim.model import FINISH

INF = math.inf

# slots of the scalar state: ints and floats
H_SIZE, SEQ, N_PEND, N_WAIT, N_POSTED, N_HELD, FULL, N_DUE, NEED = 0, 1, 2, 3, 4, 5, 6, 7, 8
PASS_AT, CONTEXT_UNTIL, GIVE_UP, READY_AT, FROM, UNTIL, NEED_AT, MONTH_FROM, MONTH_UNTIL = range(9)

KIND = 1 << 56   # heap entries order by (time, kind × KIND + sequence number)


@kernel(INLINE)
def _less(ht, hk, a, b):
    return ht[a] < ht[b] or (ht[a] == ht[b] and hk[a] < hk[b])


@kernel(INLINE)
def _swap(ht, hk, hj, a, b):
    ht[a], ht[b] = ht[b], ht[a]
    hk[a], hk[b] = hk[b], hk[a]
    hj[a], hj[b] = hj[b], hj[a]


@kernel(INLINE)
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


@kernel(INLINE)
def _pop(heap, si):
    """The first entry: (time, kind, sequence number, job)."""
    ht, hk, hj = heap
    t, kind, seq, job = ht[0], hk[0] // KIND, hk[0] % KIND, hj[0]
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
    return t, kind, seq, job


@kernel(LEAN)
def _before(a, b, key, tie):
    return key[a] < key[b] or (key[a] == key[b] and tie[a] < tie[b])


@kernel(LEAN)
def _order(key, tie, idx, n):
    """Fill ``idx[:n]`` with the indices of ``key[:n]`` by (key, tie), ascending."""
    for x in range(n):
        idx[x] = x
    _heapsort(idx, n, key, tie)


@kernel(LEAN)
def _heapsort(idx, n, key, tie):
    """Sort the entries of ``idx[:n]`` in place by (key[entry], tie[entry]), ascending (a
    heapsort: quick to compile, allocates nothing)."""
    for top in range(n // 2 - 1, -1, -1):
        _sift(idx, top, n, key, tie)
    for end in range(n - 1, 0, -1):
        idx[0], idx[end] = idx[end], idx[0]
        _sift(idx, 0, end, key, tie)


@kernel(LEAN)
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

@kernel(INLINE)
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


@kernel(LEAN)
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


@kernel(INLINE)
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
