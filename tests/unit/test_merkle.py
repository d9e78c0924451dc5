"""RFC 9162 Merkle trees: published vectors, a reference recursion, exhaustive and random tampering.

Known answers come from transparency-dev/merkle, the Go library behind Trillian
and the Certificate Transparency logs:

- roots and node hashes: ``testonly/constants.go`` (commit 582a6ad190b6848f1d26f8bf08ddef29955d9db1),
  ``LeafInputs``, ``NodeHashes`` and ``RootHashes``;
- inclusion and consistency proofs: ``proof/verify_test.go``
  (commit 02194e9afb6c1d95b5381350007963aa70fff472), ``inclusionProofs`` and
  ``consistencyProofs`` (leaf numbers there are 1-based: ``{6, 8, ...}`` is index 5).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from accord.domain.errors import InvalidInput
from accord.domain.ledger.merkle import (
    EMPTY_ROOT,
    MAX_TREE_SIZE,
    MerkleTree,
    consistency_proof,
    inclusion_proof,
    leaf_hash,
    node_hash,
    root,
    verify_consistency,
    verify_inclusion,
)

H = bytes.fromhex

LEAF_INPUTS = [
    b"",
    b"\x00",
    b"\x10",
    b"\x20\x21",
    b"\x30\x31",
    b"\x40\x41\x42\x43",
    b"\x50\x51\x52\x53\x54\x55\x56\x57",
    b"\x60\x61\x62\x63\x64\x65\x66\x67\x68\x69\x6a\x6b\x6c\x6d\x6e\x6f",
]
LEAVES = [leaf_hash(d) for d in LEAF_INPUTS]

ROOTS = [  # RootHashes(): index = tree size
    H("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"),
    H("6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"),
    H("fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"),
    H("aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77"),
    H("d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"),
    H("4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4"),
    H("76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef"),
    H("ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c"),
    H("5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328"),
]

NODE_HASHES = [  # NodeHashes(): [level][index] of every complete subtree of the 8-leaf tree
    [
        H("6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"),
        H("96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7"),
        H("0298d122906dcfc10892cb53a73992fc5b9f493ea4c9badb27b791b4127a7fe7"),
        H("07506a85fd9dd2f120eb694f86011e5bb4662e5c415a62917033d4a9624487e7"),
        H("bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"),
        H("4271a26be0d8a84f0bd54c8c302e7cb3a3b5d1fa6780a40bcce2873477dab658"),
        H("b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f"),
        H("46f6ffadd3d06a09ff3c5860d2755c8b9819db7df44251788c7d8e3180de8eb1"),
    ],
    [
        H("fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"),
        H("5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e"),
        H("0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a"),
        H("ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0"),
    ],
    [
        H("d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"),
        H("6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"),
    ],
    [H("5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328")],
]

INCLUSION_VECTORS = [  # (index, tree size, proof): inclusionProofs with 0-based indices
    (0, 8, ["96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"]),
    (5, 8, ["bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"]),
    (2, 3, ["fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"]),
    (1, 5, ["6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"]),
    (0, 1, []),
]

CONSISTENCY_VECTORS = [  # (old size, new size, proof): consistencyProofs
    (1, 1, []),
    (1, 8, ["96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"]),
    (6, 8, ["0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"]),
    (2, 5, ["5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"]),
    (6, 7, ["0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
            "b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"]),
]

N_MAX = 64
BIG = [leaf_hash(i.to_bytes(2, "big")) for i in range(N_MAX)]
BIG_TREE = MerkleTree.build(BIG)
BIG_ROOTS = [BIG_TREE.root(n) for n in range(N_MAX + 1)]


# The RFC's recursive definitions, written as literally as possible, as an oracle.

def ref_mth(d: Sequence[bytes]) -> bytes:
    """RFC 9162 §2.1.1 MTH over leaf hashes."""
    n = len(d)
    if n == 0:
        return hashlib.sha256(b"").digest()
    if n == 1:
        return d[0]
    k = 1
    while k * 2 < n:
        k *= 2
    return node_hash(ref_mth(d[:k]), ref_mth(d[k:]))


def ref_path(m: int, d: Sequence[bytes]) -> list[bytes]:
    """RFC 9162 §2.1.3.1 PATH(m, D[n])."""
    n = len(d)
    if n == 1:
        return []
    k = 1
    while k * 2 < n:
        k *= 2
    if m < k:
        return [*ref_path(m, d[:k]), ref_mth(d[k:])]
    return [*ref_path(m - k, d[k:]), ref_mth(d[:k])]


def ref_subproof(m: int, d: Sequence[bytes], b: bool) -> list[bytes]:
    """RFC 9162 §2.1.4.1 SUBPROOF(m, D[n], b)."""
    n = len(d)
    if m == n:
        return [] if b else [ref_mth(d)]
    k = 1
    while k * 2 < n:
        k *= 2
    if m <= k:
        return [*ref_subproof(m, d[:k], b), ref_mth(d[k:])]
    return [*ref_subproof(m - k, d[k:], False), ref_mth(d[:k])]


def ref_sides(m: int, n: int) -> list[bool]:
    """For PATH(m, D[n]), whether each proof element is the *left* sibling."""
    if n == 1:
        return []
    k = 1
    while k * 2 < n:
        k *= 2
    return [*ref_sides(m, k), False] if m < k else [*ref_sides(m - k, n - k), True]


def ref_ops(m: int, n: int, b: bool = True) -> list[str]:
    """For SUBPROOF(m, D[n], b), how a verifier must use each element, first to last.

    ``first-hash``: the proof starts from the old root (not sent); ``start``: it
    starts from the first element; ``R``: a right sibling of the new tree only;
    ``L``: a left sibling of both trees.
    """
    if m == n:
        return ["first-hash"] if b else ["start"]
    k = 1
    while k * 2 < n:
        k *= 2
    if m <= k:
        return [*ref_ops(m, k, b), "R"]
    return [*ref_ops(m - k, n - k, False), "L"]


def flip(proof: Sequence[bytes], element: int, byte: int) -> list[bytes]:
    out = list(proof)
    h = bytearray(out[element])
    h[byte] ^= 0x01
    out[element] = bytes(h)
    return out


# Known answers.

def test_leaf_and_empty_hashes_match_rfc() -> None:
    assert root([]) == EMPTY_ROOT == ROOTS[0]
    assert leaf_hash(b"") == ROOTS[1]
    assert MerkleTree.build([]).root() == EMPTY_ROOT


@pytest.mark.parametrize("size", range(9))
def test_roots_match_published_vectors(size: int) -> None:
    assert root(LEAVES[:size]) == ROOTS[size]
    assert MerkleTree.build(LEAVES).root(size) == ROOTS[size]
    assert MerkleTree.from_leaves(LEAF_INPUTS[:size]).root() == ROOTS[size]


def test_stored_levels_are_the_published_node_hashes() -> None:
    tree = MerkleTree.build(LEAVES)
    assert tree.levels == tuple(b"".join(level) for level in NODE_HASHES)


@pytest.mark.parametrize(("index", "size", "proof_hex"), INCLUSION_VECTORS)
def test_inclusion_proofs_match_published_vectors(index: int, size: int, proof_hex: list[str]) -> None:
    proof = tuple(H(p) for p in proof_hex)
    assert MerkleTree.build(LEAVES).inclusion_proof(index, size) == proof
    assert inclusion_proof(LEAVES[:size], index) == proof
    assert verify_inclusion(LEAVES[index], index, size, proof, ROOTS[size])


@pytest.mark.parametrize(("old", "new", "proof_hex"), CONSISTENCY_VECTORS)
def test_consistency_proofs_match_published_vectors(old: int, new: int, proof_hex: list[str]) -> None:
    proof = tuple(H(p) for p in proof_hex)
    assert MerkleTree.build(LEAVES).consistency_proof(old, new) == proof
    assert consistency_proof(LEAVES, old, new) == proof
    assert verify_consistency(old, new, ROOTS[old], ROOTS[new], proof)


# Exhaustive: every tree of up to 64 leaves, every index, every pair of sizes.

def test_every_root_and_proof_equals_the_rfc_recursion() -> None:
    for n in range(N_MAX + 1):
        assert BIG_TREE.root(n) == ref_mth(BIG[:n]) == root(BIG[:n])
        for i in range(n):
            assert list(BIG_TREE.inclusion_proof(i, n)) == ref_path(i, BIG[:n])
        for m in range(1, n):
            assert list(BIG_TREE.consistency_proof(m, n)) == ref_subproof(m, BIG[:n], True)


@pytest.mark.parametrize("n", range(1, N_MAX + 1))
def test_every_inclusion_proof_verifies_and_every_tamper_fails(n: int) -> None:
    root_n = BIG_TREE.root(n)
    for i in range(n):
        proof = BIG_TREE.inclusion_proof(i, n)
        assert verify_inclusion(BIG[i], i, n, proof, root_n)
        # A flipped bit anywhere in the proof (every byte for small trees, a
        # byte that moves with the element otherwise).
        for e in range(len(proof)):
            for byte in range(32) if n <= 8 else [(7 * e + i) % 32]:
                assert not verify_inclusion(BIG[i], i, n, flip(proof, e, byte), root_n)
        # Another index, another leaf, another root: all fail.
        for j in range(n + 2):
            if j != i:
                assert not verify_inclusion(BIG[i], j, n, proof, root_n)
        assert not verify_inclusion(BIG[(i + 1) % N_MAX], i, n, proof, root_n)
        for wrong_root in (BIG_ROOTS[n - 1], BIG_ROOTS[(n + 1) % (N_MAX + 1)], leaf_hash(b"other")):
            assert not verify_inclusion(BIG[i], i, n, proof, wrong_root)
        # Another size: fails against that size's honest root; against this
        # root it passes exactly when the RFC walk for that size is the same
        # walk (harmless: a partner takes size and root from one signed head).
        for other in {*range(max(1, n - 4), n + 5), 2 * n, max(1, n // 2)} - {n}:
            if other <= N_MAX:
                assert not verify_inclusion(BIG[i], i, other, proof, BIG_ROOTS[other])
            same_walk = i < other and ref_sides(i, other) == ref_sides(i, n)
            assert verify_inclusion(BIG[i], i, other, proof, root_n) is same_walk
        # In small trees, every other (index, size) claim: it passes exactly
        # when its RFC walk is the same walk as this one's.
        if n <= 16:
            for other in range(1, 2 * n + 1):
                for j in range(other):
                    same_walk = ref_sides(j, other) == ref_sides(i, n)
                    assert verify_inclusion(BIG[i], j, other, proof, root_n) is same_walk
        # Elements removed, added, or swapped.
        if proof:
            assert not verify_inclusion(BIG[i], i, n, proof[:-1], root_n)
            assert not verify_inclusion(BIG[i], i, n, proof[1:], root_n)
        assert not verify_inclusion(BIG[i], i, n, (*proof, root_n), root_n)
        assert not verify_inclusion(BIG[i], i, n, (root_n, *proof), root_n)
        if len(proof) > 1 and proof[0] != proof[1]:
            assert not verify_inclusion(BIG[i], i, n, (proof[1], proof[0], *proof[2:]), root_n)


@pytest.mark.parametrize("new", range(1, N_MAX + 1))
def test_every_consistency_proof_verifies_and_every_tamper_fails(new: int) -> None:
    new_root = BIG_TREE.root(new)
    for old in range(new + 1):
        old_root = BIG_TREE.root(old)
        proof = BIG_TREE.consistency_proof(old, new)
        assert verify_consistency(old, new, old_root, new_root, proof)
        if old in (0, new):
            assert proof == ()
            assert not verify_consistency(old, new, old_root, new_root, (old_root,))
            continue
        for e in range(len(proof)):
            for byte in range(32) if new <= 8 else [(5 * e + old) % 32]:
                assert not verify_consistency(old, new, old_root, new_root, flip(proof, e, byte))
        # Wrong roots.
        assert not verify_consistency(old, new, new_root, old_root, proof)
        assert not verify_consistency(old, new, BIG_TREE.root(old - 1), new_root, proof)
        assert not verify_consistency(old, new, old_root, BIG_TREE.root(new - 1), proof)
        assert not verify_consistency(old, new, old_root, leaf_hash(b"other"), proof)
        # Other sizes: with their honest roots this proof never verifies; with
        # these roots, exactly when the RFC walk is the same walk.
        for o2 in range(max(1, old - 2), old + 3):
            for n2 in {*range(new - 2, new + 4), 2 * new} - {new}:
                if o2 < n2 <= N_MAX:
                    assert not verify_consistency(o2, n2, BIG_ROOTS[o2], BIG_ROOTS[n2], proof)
                if o2 < n2:
                    same_walk = ref_ops(o2, n2) == ref_ops(old, new)
                    assert verify_consistency(o2, n2, old_root, new_root, proof) is same_walk
        # Elements removed, added, or swapped.
        assert not verify_consistency(old, new, old_root, new_root, ())
        assert not verify_consistency(old, new, old_root, new_root, proof[:-1])
        assert not verify_consistency(old, new, old_root, new_root, proof[1:])
        assert not verify_consistency(old, new, old_root, new_root, (*proof, new_root))
        assert not verify_consistency(old, new, old_root, new_root, (old_root, *proof))
        if len(proof) > 1 and proof[0] != proof[1]:
            swapped = (proof[1], proof[0], *proof[2:])
            assert not verify_consistency(old, new, old_root, new_root, swapped)


def test_size_confusion_needs_the_matching_root() -> None:
    """The RFC walk for leaf 0 is the same in trees of 3 and 4 leaves.

    So the size-3 proof "verifies" leaf 0 at size 4 *against the size-3 root*;
    no signed size-4 head carries that root, which is why a partner takes
    (size, root) together from one signed head.
    """
    proof = BIG_TREE.inclusion_proof(0, 3)
    assert verify_inclusion(BIG[0], 0, 4, proof, BIG_TREE.root(3))
    assert not verify_inclusion(BIG[0], 0, 4, proof, BIG_TREE.root(4))


# Verifiers never raise on malformed input.

MALFORMED: list[object] = [
    None, -1, 2**64, 1.0, True, "1", b"", b"\x00" * 31, b"\x00" * 33, bytearray(32), [], (b"",), 2**200,
]


@pytest.mark.parametrize("bad", MALFORMED)
def test_verify_inclusion_returns_false_on_any_malformed_argument(bad: object) -> None:
    proof = BIG_TREE.inclusion_proof(5, 9)
    good: list[object] = [BIG[5], 5, 9, proof, BIG_TREE.root(9)]
    assert verify_inclusion(*good)  # type: ignore[arg-type]
    for position in range(5):
        args = list(good)
        args[position] = bad
        assert verify_inclusion(*args) is False  # type: ignore[arg-type]
    assert verify_inclusion(BIG[5], 5, 9, [*proof[:1], bad, *proof[2:]], BIG_TREE.root(9)) is False  # type: ignore[list-item]


@pytest.mark.parametrize("bad", MALFORMED)
def test_verify_consistency_returns_false_on_any_malformed_argument(bad: object) -> None:
    proof = BIG_TREE.consistency_proof(6, 13)
    good: list[object] = [6, 13, BIG_TREE.root(6), BIG_TREE.root(13), proof]
    assert verify_consistency(*good)  # type: ignore[arg-type]
    for position in range(5):
        args = list(good)
        args[position] = bad
        assert verify_consistency(*args) is False  # type: ignore[arg-type]
    bad_proof = [*proof[:1], bad, *proof[2:]]
    assert verify_consistency(6, 13, BIG_TREE.root(6), BIG_TREE.root(13), bad_proof) is False  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("old", "new", "old_root", "new_root", "expected"),
    [
        (0, 0, EMPTY_ROOT, EMPTY_ROOT, True),
        (0, 5, EMPTY_ROOT, BIG_TREE.root(5), True),
        (0, 0, EMPTY_ROOT, BIG[0], False),
        (0, 5, BIG[0], BIG_TREE.root(5), False),  # not the empty tree's root
        (5, 5, BIG_TREE.root(5), BIG_TREE.root(5), True),
        (5, 5, BIG_TREE.root(5), BIG_TREE.root(4), False),
        (5, 4, BIG_TREE.root(5), BIG_TREE.root(4), False),  # time travel
        (1, 2, BIG[0], BIG_TREE.root(2), False),  # the RFC: an empty proof fails
    ],
)
def test_consistency_without_a_proof(
    old: int, new: int, old_root: bytes, new_root: bytes, expected: bool
) -> None:
    assert verify_consistency(old, new, old_root, new_root, ()) is expected


def test_inclusion_at_the_edges() -> None:
    assert not verify_inclusion(EMPTY_ROOT, 0, 0, (), EMPTY_ROOT)  # nothing is in the empty tree
    assert verify_inclusion(BIG[0], 0, 1, (), BIG[0])
    assert not verify_inclusion(BIG[0], 1, 1, (), BIG[0])
    assert not verify_inclusion(BIG[0], 0, 1, (BIG[1],), BIG[0])
    big = MAX_TREE_SIZE
    assert not verify_inclusion(BIG[0], big - 1, big, [BIG[0]] * 64, BIG[1])


# Building and asking: the log's own bad arguments raise InvalidInput with the bad value.

@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: BIG_TREE.inclusion_proof(64), r"index: a leaf index .* \(got 64, allowed 0\.\.63\)"),
        (lambda: BIG_TREE.inclusion_proof(5, 5), r"got 5, allowed 0\.\.4"),
        (lambda: BIG_TREE.inclusion_proof(-1), r"got -1"),
        (lambda: BIG_TREE.inclusion_proof(0, 65), r"size: .* \(got 65, allowed 0\.\.64\)"),
        (lambda: MerkleTree.build([]).inclusion_proof(0), r"allowed none: the tree is empty"),
        (lambda: BIG_TREE.consistency_proof(9, 8), r"old_size: .* \(got 9, allowed 0\.\.8\)"),
        (lambda: BIG_TREE.consistency_proof(1, 65), r"new_size: .*got 65"),
        (lambda: BIG_TREE.root(65), r"size: .*got 65"),
        (lambda: BIG_TREE.root(-1), r"got -1"),
        (lambda: BIG_TREE.leaf_hash(64), r"got 64"),
        (lambda: consistency_proof(BIG[:4], 2, 5), r"new_size: .*got 5, allowed 0\.\.4"),
        (lambda: inclusion_proof(BIG[:4], 4), r"got 4, allowed 0\.\.3"),
        (lambda: root([BIG[0], b"data"]), r"leaf_hashes\[1\]: a leaf hash must be 32 bytes .*got b'data'"),
        (lambda: root([BIG[0], "text"]), r"leaf_hashes\[1\]: .*got 'text'"),  # type: ignore[list-item]
        (lambda: MerkleTree((b"\x00" * 64,)), r"levels: level lengths do not fit a tree of 2 leaves"),
        (lambda: MerkleTree((b"\x00" * 33,)), r"levels: a tree needs a first level"),
    ],
)
def test_bad_arguments_raise_invalid_input(call: Callable[[], object], match: str) -> None:
    with pytest.raises(InvalidInput, match=match):
        call()


def test_stored_leaf_hashes_come_back() -> None:
    assert [BIG_TREE.leaf_hash(i) for i in range(N_MAX)] == BIG
    assert BIG_TREE.size == N_MAX


# Random trees and random tampering (Hypothesis).

leaf_lists = st.lists(st.binary(max_size=12), min_size=1, max_size=80)


@st.composite
def tampered(draw: st.DrawFn) -> tuple[list[bytes], list[bytes], int]:
    """A leaf list, an edited copy, and the first position where they differ."""
    leaves = draw(leaf_lists)
    edit = draw(st.sampled_from(["edit", "delete", "insert", "reorder"]))
    out = list(leaves)
    pos = draw(st.integers(0, len(leaves) - 1))
    if edit == "edit":
        out[pos] = draw(st.binary(max_size=12).filter(lambda b: b != leaves[pos]))
    elif edit == "delete":
        del out[pos]
    elif edit == "insert":
        pos = draw(st.integers(0, len(leaves)))
        out.insert(pos, draw(st.binary(max_size=12)))
    else:
        other = draw(st.integers(0, len(leaves) - 1))
        out[pos], out[other] = out[other], out[pos]
    assume(out != leaves)
    pairs = enumerate(zip(leaves, out, strict=False))
    first_diff = next((i for i, (a, b) in pairs if a != b), min(len(leaves), len(out)))
    return leaves, out, first_diff


@settings(max_examples=300, deadline=None)
@given(tampered())
def test_any_tamper_changes_the_root_and_breaks_old_proofs(
    case: tuple[list[bytes], list[bytes], int],
) -> None:
    leaves, changed, first_diff = case
    old = MerkleTree.from_leaves(leaves)
    new = MerkleTree.from_leaves(changed)
    n, n2 = old.size, new.size
    assert old.root() != new.root()
    for i in range(n):
        proof = old.inclusion_proof(i)
        assert verify_inclusion(leaf_hash(leaves[i]), i, n, proof, old.root())
        assert not verify_inclusion(leaf_hash(leaves[i]), i, n, proof, new.root())
        assert not verify_inclusion(leaf_hash(leaves[i]), i, n2, proof, new.root())
    # History: the new tree extends the old one exactly when nothing before
    # the old size changed (an append); any rewrite breaks consistency.
    if n <= n2:
        proof = new.consistency_proof(n)
        assert verify_consistency(n, n2, old.root(), new.root(), proof) is (first_diff >= n)
    else:
        with pytest.raises(InvalidInput):
            new.consistency_proof(n)


@settings(max_examples=200, deadline=None)
@given(leaf_lists, st.data())
def test_random_trees_prove_every_prefix(leaves: list[bytes], data: st.DataObject) -> None:
    tree = MerkleTree.from_leaves(leaves)
    new = data.draw(st.integers(1, tree.size), label="new")
    old = data.draw(st.integers(0, new), label="old")
    index = data.draw(st.integers(0, new - 1), label="index")
    hashes = [leaf_hash(d) for d in leaves]
    assert tree.root(new) == ref_mth(hashes[:new])
    assert verify_inclusion(hashes[index], index, new, tree.inclusion_proof(index, new), tree.root(new))
    assert verify_consistency(old, new, tree.root(old), tree.root(new), tree.consistency_proof(old, new))
