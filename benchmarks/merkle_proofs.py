"""Merkle tree costs for a 1,000,000-leaf ledger: build, root, inclusion and consistency proofs.

The baseline, measured in the same run, is hashing the same leaves with hashlib
alone (``SHA-256(0x00 || data)`` in a list comprehension, no tree): the ratio of
the tree build to it is what the tree costs on top of hashing the entries once.
A second baseline is ``n - 1`` SHA-256 calls on 65 bytes, the least work any
RFC 9162 tree of ``n`` leaves needs for its interior nodes.

    uv run python benchmarks/merkle_proofs.py [--leaves 1000000] [--samples 1000] [--leaf-bytes 200]
"""

from __future__ import annotations

import argparse
import gc
import hashlib
import math
import platform
import random
import statistics
import time
from collections.abc import Callable
from functools import partial
from typing import TypeVar

from accord.domain.ledger.merkle import MerkleTree, leaf_hash, root, verify_consistency, verify_inclusion

T = TypeVar("T")


def timed(fn: Callable[[], T], repeat: int = 1) -> tuple[T, float]:
    """The result of ``fn`` and the fastest of ``repeat`` wall-clock runs, in seconds."""
    best = math.inf
    result: T | None = None
    for _ in range(repeat):
        if repeat > 1:
            gc.collect()  # so one step's garbage is not collected in another's time
        start = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - start)
    assert result is not None
    return result, best


def us(seconds: float) -> str:
    return f"{seconds * 1e6:,.1f} µs"


def interior_baseline(hashes: list[bytes], repeat: int) -> float:
    """Seconds for ``len(hashes) - 1`` bare SHA-256 calls on 65-byte inputs."""
    inputs = [b"\x01" + h + h for h in hashes[1:]]
    sha256 = hashlib.sha256
    return timed(lambda: [sha256(x).digest() for x in inputs], repeat)[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--leaves", type=int, default=1_000_000)
    parser.add_argument("--samples", type=int, default=1_000, help="random indices for inclusion proofs")
    parser.add_argument("--leaf-bytes", type=int, default=200, help="bytes of data per leaf (a ledger entry)")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each O(n) step; the fastest is kept")
    args = parser.parse_args()
    n, rng = args.leaves, random.Random(6962)

    print(f"Python {platform.python_version()} on {platform.machine()}, {platform.system()}; "
          f"{n:,} leaves of {args.leaf_bytes} bytes; best of {args.repeat} for O(n) steps")
    filler = rng.randbytes(args.leaf_bytes - 8)
    data = [i.to_bytes(8, "big") + filler for i in range(n)]

    sha256 = hashlib.sha256
    _, t_hashlib = timed(lambda: [sha256(b"\x00" + d).digest() for d in data], args.repeat)
    hashes, t_leaf = timed(lambda: [leaf_hash(d) for d in data], args.repeat)
    t_interior = interior_baseline(hashes, args.repeat)
    tree, t_build = timed(lambda: MerkleTree.build(hashes), args.repeat)
    _, t_root_fn = timed(lambda: root(hashes), args.repeat)
    tree_root = tree.root()
    t_root = statistics.mean(timed(tree.root)[1] for _ in range(1000))
    stored = sum(len(level) for level in tree.levels)

    print("\nBuild (O(n), once)")
    print(f"  baseline: hash the leaves with hashlib alone     {t_hashlib:8.3f} s")
    print(f"  leaf_hash() over the leaves                      {t_leaf:8.3f} s")
    print(f"  baseline: n-1 SHA-256 of 65 bytes (interior)     {t_interior:8.3f} s")
    print(f"  MerkleTree.build(leaf hashes)                    {t_build:8.3f} s"
          f"   = {t_build / t_hashlib:.2f} x hashing the leaves,"
          f" {t_build / t_interior:.2f} x the interior baseline")
    print(f"  leaves to root, in total (leaf_hash + build)     {t_leaf + t_build:8.3f} s"
          f"   = {(t_leaf + t_build) / t_hashlib:.2f} x hashing the leaves alone")
    print(f"  root(leaf_hashes), the function (builds a tree)  {t_root_fn:8.3f} s")
    print(f"  tree.root() on the built tree                    {us(t_root):>10}")
    print(f"  stored hashes                                    {stored / 1e6:8.1f} MB"
          f" ({stored // 32:,} hashes)")

    gc.collect()
    indices = [rng.randrange(n) for _ in range(args.samples)]
    gen, ver, sizes = [], [], []
    for i in indices:
        proof, t = timed(partial(tree.inclusion_proof, i))
        ok, t_v = timed(partial(verify_inclusion, hashes[i], i, n, proof, tree_root))
        assert ok
        gen.append(t)
        ver.append(t_v)
        sizes.append(32 * len(proof))
    print(f"\nInclusion proofs ({args.samples:,} random indices)")
    print(f"  size: {min(sizes)}..{max(sizes)} bytes, mean {statistics.mean(sizes):.0f} "
          f"(32 x ceil(log2 n) = {32 * math.ceil(math.log2(n))})")
    for name, ts in (("generate", gen), ("verify", ver)):
        print(f"  {name + ':':9} mean {us(statistics.mean(ts))}, median {us(statistics.median(ts))},"
              f" p99 {us(sorted(ts)[int(0.99 * len(ts))])}")

    print("\nConsistency proofs to the full tree (mean of 100)")
    print(f"  {'old size':>10} {'hashes':>6} {'bytes':>6} {'generate':>12} {'verify':>12}")
    for old in sorted({1, 1000, 65_536, 123_457, n // 2 + 1, n - 1} & set(range(1, n))):
        proof = tree.consistency_proof(old)
        times = [timed(partial(tree.consistency_proof, old))[1] for _ in range(100)]
        old_root = tree.root(old)
        checks = [timed(partial(verify_consistency, old, n, old_root, tree_root, proof)) for _ in range(100)]
        assert all(ok for ok, _ in checks)
        t_v = statistics.mean(t for _, t in checks)
        print(f"  {old:>10,} {len(proof):>6} {32 * len(proof):>6} "
              f"{us(statistics.mean(times)):>12} {us(t_v):>12}")


if __name__ == "__main__":
    main()
