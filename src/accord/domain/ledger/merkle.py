"""RFC 9162 Merkle trees: tree hash, inclusion proofs and consistency proofs (pure).

The ledger's entries are the leaves of one append-only Merkle tree, hashed as in
Certificate Transparency (RFC 9162 §2.1, the same hashing as RFC 6962 §2.1):

- leaf hash ``SHA-256(0x00 || data)``, interior node ``SHA-256(0x01 || left || right)``;
- a tree of ``n > 1`` leaves splits at ``k``, the largest power of two smaller than
  ``n``: ``MTH(D[n]) = node(MTH(D[0:k]), MTH(D[k:n]))``;
- the hash of the empty tree is ``SHA-256()`` of nothing.

:class:`MerkleTree` is built once in O(n) and keeps every *complete* subtree
hash, so the root of any prefix, an inclusion proof or a consistency proof costs
O(log n) lookups and O(log n) hashes. The module-level
functions (:func:`root`, :func:`inclusion_proof`, :func:`consistency_proof`)
build a tree and ask it; call them once per tree, or keep the tree.

Verification (:func:`verify_inclusion`, :func:`verify_consistency`) follows
RFC 9162 §2.1.3.2 and §2.1.4.2 step by step. The verifiers take bytes a partner
received from someone else, so they **never raise**: any malformed argument
(a hash that is not 32 bytes, a negative or absurd size, an index past the end,
a proof of the wrong length) is simply a proof that does not verify: ``False``.
Building a tree or a proof from the log's own data raises :class:`InvalidInput`
instead, because a bad argument there is a bug in the caller, not an attack.

>>> leaves = [leaf_hash(b"a"), leaf_hash(b"b"), leaf_hash(b"c")]
>>> tree = MerkleTree.build(leaves)
>>> proof = tree.inclusion_proof(2)
>>> verify_inclusion(leaves[2], 2, 3, proof, tree.root())
True
>>> verify_inclusion(leaves[1], 2, 3, proof, tree.root())
False
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from accord.domain.errors import InvalidInput

HASH_SIZE = 32
"""Bytes in every hash: SHA-256."""
MAX_TREE_SIZE = 2**64 - 1
"""RFC 9162 sizes and indices are uint64; larger values are refused (or fail to verify)."""
EMPTY_ROOT = hashlib.sha256(b"").digest()
"""``MTH({})``: the root of the tree with no leaves."""

_LEAF_PREFIX = b"\x00"
_NODE_PREFIX = b"\x01"
_sha256 = hashlib.sha256


def leaf_hash(data: bytes) -> bytes:
    """The RFC 9162 hash of one leaf: ``SHA-256(0x00 || data)``.

    >>> leaf_hash(b"").hex()[:16]
    '6e340b9cffb37a98'
    """
    return _sha256(_LEAF_PREFIX + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """The RFC 9162 hash of an interior node: ``SHA-256(0x01 || left || right)``."""
    return _sha256(_NODE_PREFIX + left + right).digest()


@dataclass(frozen=True, slots=True)
class MerkleTree:
    """Every complete subtree hash of one tree, level by level.

    ``levels[k]`` is the concatenation of the hashes of the ``size >> k``
    complete, aligned subtrees of ``2**k`` leaves, left to right (``levels[0]``
    holds the leaf hashes); the top level holds one hash. Subtrees that are not
    complete (the right edge of a tree whose size is not a power of two) are not
    stored: they are folded from complete ones when needed, in O(log n).

    Storing each level as one ``bytes`` keeps the record truly immutable and
    compact: 64 bytes a leaf for a whole tree (1,000,000 leaves: 64 MB).
    Build it with :meth:`build`; the constructor only checks the level lengths.

    Raises:
        InvalidInput: the level lengths do not fit one tree.
    """

    levels: tuple[bytes, ...]

    def __post_init__(self) -> None:
        if not self.levels or len(self.levels[0]) % HASH_SIZE:
            raise InvalidInput.single(
                "levels", "a tree needs a first level of whole 32-byte hashes",
                got=len(self.levels[0]) if self.levels else None,
                allowed="a multiple of 32 bytes; build trees with MerkleTree.build",
            )
        n = len(self.levels[0]) // HASH_SIZE
        expected = [(n >> k) * HASH_SIZE for k in range(max(n.bit_length(), 1))]
        if [len(level) for level in self.levels] != expected:
            raise InvalidInput.single(
                "levels", f"level lengths do not fit a tree of {n} leaves",
                got=[len(level) for level in self.levels], allowed=str(expected),
            )

    @classmethod
    def build(cls, leaf_hashes: Sequence[bytes]) -> MerkleTree:
        """Build the tree over ``leaf_hashes`` (each ``leaf_hash(data)``), in O(n).

        Raises:
            InvalidInput: a leaf hash is not 32 bytes, or there are more than
                ``MAX_TREE_SIZE`` leaves.
        """
        _check_leaf_hashes(leaf_hashes)
        return cls.from_leaf_level(b"".join(leaf_hashes))

    @classmethod
    def from_leaf_level(cls, leaf_level: bytes) -> MerkleTree:
        """Build the tree over leaf hashes given as one concatenation (32 bytes each).

        The same tree as :meth:`build`, without a ``bytes`` object per leaf.

        Raises:
            InvalidInput: ``leaf_level`` is not a whole number of 32-byte hashes.
        """
        size = len(leaf_level) // HASH_SIZE
        return cls(tuple(lower_levels(leaf_level, max(size.bit_length() - 1, 0))))

    @classmethod
    def join(cls, parts: Sequence[Sequence[bytes]]) -> MerkleTree:
        """The whole tree from the :func:`lower_levels` of consecutive runs of its leaves.

        Every run but the last must start and end on a multiple of ``2**depth``
        leaves (``depth + 1`` levels each): then no complete subtree of those
        levels crosses two runs, so level ``k`` of the tree is the concatenation
        of the runs' levels ``k``, and only the levels above ``depth`` are left
        to hash. This lets runs of a large tree be hashed in parallel.

        Raises:
            InvalidInput: no runs, runs of different depths, a run but the last
                that is not a whole number of ``2**depth`` leaves, or a level
                that is not whole 32-byte hashes.
        """
        depths = {len(part) for part in parts}
        if len(depths) != 1 or not parts[0]:
            raise InvalidInput.single("parts", "runs must all have the same number of levels",
                                      got=sorted(depths), allowed="one depth, at least 1 level")
        depth = len(parts[0]) - 1
        for i, part in enumerate(parts[:-1]):
            if len(part[0]) % (HASH_SIZE << depth):
                raise InvalidInput.single(
                    f"parts[{i}]", f"a run before the last must be a multiple of {1 << depth} "
                    "leaves", got=len(part[0]) // HASH_SIZE, allowed=f"k * {1 << depth}")
        levels = [b"".join(part[k] for part in parts) for k in range(depth + 1)]
        size = len(levels[0]) // HASH_SIZE
        top = max(size.bit_length() - 1, 0)
        if top <= depth:
            return cls(tuple(levels[: top + 1]))
        return cls((*levels[:-1], *lower_levels(levels[-1], top - depth)))

    @classmethod
    def from_leaves(cls, leaves: Iterable[bytes]) -> MerkleTree:
        """Build the tree over raw leaf data (hashing each with :func:`leaf_hash`).

        Raises:
            InvalidInput: more than ``MAX_TREE_SIZE`` leaves.
        """
        return cls.build([leaf_hash(data) for data in leaves])

    @property
    def size(self) -> int:
        """The number of leaves."""
        return len(self.levels[0]) // HASH_SIZE

    def leaf_hash(self, index: int) -> bytes:
        """The stored hash of leaf ``index``.

        Raises:
            InvalidInput: ``index`` is not in ``0 .. size - 1``.
        """
        _check_index(index, self.size, "index")
        return self._node(0, index)

    def root(self, size: int | None = None) -> bytes:
        """``MTH(D[0:size])``: the root of the tree's first ``size`` leaves (default: all).

        Raises:
            InvalidInput: ``size`` is not in ``0 .. self.size``.
        """
        size = self._size_arg(size, "size")
        return self._subtree(0, size) if size else EMPTY_ROOT

    def inclusion_proof(self, index: int, size: int | None = None) -> tuple[bytes, ...]:
        """RFC 9162 §2.1.3.1 ``PATH(index, D[0:size])``, from the leaf's sibling up.

        ``size`` (default: the whole tree) lets the log prove inclusion in an
        earlier tree head that a partner already holds.

        Raises:
            InvalidInput: ``size`` is not in ``0 .. self.size``, or ``index`` is
                not in ``0 .. size - 1``.
        """
        size = self._size_arg(size, "size")
        _check_index(index, size, "index")
        proof: list[bytes] = []
        start, end, m = 0, size, index
        while end - start > 1:
            # PATH(m, D[n]) = PATH(m, D[0:k]) : MTH(D[k:n])  if m < k
            #               = PATH(m - k, D[k:n]) : MTH(D[0:k]) otherwise
            k = _split(end - start)
            if m < k:
                proof.append(self._subtree(start + k, end))
                end = start + k
            else:
                proof.append(self._subtree(start, start + k))
                start, m = start + k, m - k
        proof.reverse()  # collected top-down; PATH lists the leaf's sibling first
        return tuple(proof)

    def consistency_proof(self, old_size: int, new_size: int | None = None) -> tuple[bytes, ...]:
        """RFC 9162 §2.1.4.1 ``PROOF(old_size, D[0:new_size])`` (default: the whole tree).

        For ``old_size == 0`` or ``old_size == new_size`` there is nothing to
        prove and the proof is empty (outside the RFC's ``0 < m < n``; see
        :func:`verify_consistency`).

        Raises:
            InvalidInput: ``new_size`` is not in ``0 .. self.size``, or
                ``old_size`` is not in ``0 .. new_size``.
        """
        new_size = self._size_arg(new_size, "new_size")
        if not _is_size(old_size) or old_size > new_size:
            raise InvalidInput.single(
                "old_size", "an old tree size must be a whole number no larger than the new size",
                got=old_size, allowed=f"0..{new_size}",
            )
        if old_size in (0, new_size):
            return ()
        proof: list[bytes] = []
        start, end, m, complete = 0, new_size, old_size, True
        while m != end - start:
            # SUBPROOF(m, D[n], b) = SUBPROOF(m, D[0:k], b) : MTH(D[k:n])         if m <= k
            #                      = SUBPROOF(m - k, D[k:n], false) : MTH(D[0:k])  otherwise
            k = _split(end - start)
            if m <= k:
                proof.append(self._subtree(start + k, end))
                end = start + k
            else:
                proof.append(self._subtree(start, start + k))
                start, m, complete = start + k, m - k, False
        if not complete:  # SUBPROOF(m, D[m], false) = {MTH(D[m])}
            proof.append(self._subtree(start, end))
        proof.reverse()
        return tuple(proof)

    def _size_arg(self, size: int | None, where: str) -> int:
        if size is None:
            return self.size
        if not _is_size(size) or size > self.size:
            raise InvalidInput.single(
                where, "a tree size must be a whole number no larger than the tree",
                got=size, allowed=f"0..{self.size}",
            )
        return size

    def _node(self, level: int, index: int) -> bytes:
        offset = index * HASH_SIZE
        return self.levels[level][offset : offset + HASH_SIZE]

    def _subtree(self, start: int, end: int) -> bytes:
        """``MTH(D[start:end])`` for a range the RFC recursion produces.

        Such a range starts at a multiple of the smallest power of two not below
        its length, so it splits, largest first, into complete aligned subtrees
        (one per set bit of ``end - start``) whose right fold is its hash.
        """
        parts = []
        pos, length = start, end - start
        for k in range(length.bit_length() - 1, -1, -1):
            if length >> k & 1:
                parts.append(self._node(k, pos >> k))
                pos += 1 << k
        acc = parts[-1]
        for part in reversed(parts[:-1]):
            acc = node_hash(part, acc)
        return acc


def lower_levels(leaf_level: bytes, depth: int) -> list[bytes]:
    """Levels ``0 .. depth`` of complete aligned subtrees over concatenated hashes.

    ``leaf_level`` is a run of node hashes (leaf hashes, or any one level),
    32 bytes each; level ``k`` of the result holds the hashes of its
    ``len >> k`` complete subtrees of ``2**k`` of them, left to right, as in
    :class:`MerkleTree` (an empty ``bytes`` where there is none).

    >>> leaves = b"".join(leaf_hash(x) for x in (b"a", b"b", b"c"))
    >>> [len(level) // HASH_SIZE for level in lower_levels(leaves, 2)]
    [3, 1, 0]

    Raises:
        InvalidInput: ``leaf_level`` is not a whole number of 32-byte hashes, or
            ``depth`` is negative.
    """
    if len(leaf_level) % HASH_SIZE or depth < 0:
        raise InvalidInput.single(
            "leaf_level", "a level must be whole 32-byte hashes and the depth at least 0",
            got=f"{len(leaf_level)} bytes, depth {depth}", allowed="a multiple of 32; depth >= 0")
    level = bytes(leaf_level)
    levels = [level]
    count = len(level) // HASH_SIZE
    for _ in range(depth):
        # One hash per 64-byte slice of the level below: a complete pair.
        level = b"".join([
            _sha256(_NODE_PREFIX + level[i : i + 2 * HASH_SIZE]).digest()
            for i in range(0, (count // 2) * 2 * HASH_SIZE, 2 * HASH_SIZE)
        ])
        levels.append(level)
        count //= 2
    return levels


def root(leaf_hashes: Sequence[bytes]) -> bytes:
    """``MTH`` of the tree whose leaves hash to ``leaf_hashes`` (builds it: O(n)).

    Raises:
        InvalidInput: a leaf hash is not 32 bytes.
    """
    return MerkleTree.build(leaf_hashes).root()


def inclusion_proof(leaf_hashes: Sequence[bytes], index: int) -> tuple[bytes, ...]:
    """The inclusion proof of leaf ``index`` in the whole tree (builds it: O(n)).

    Raises:
        InvalidInput: a leaf hash is not 32 bytes, or ``index`` is out of range.
    """
    return MerkleTree.build(leaf_hashes).inclusion_proof(index)


def consistency_proof(
    leaf_hashes: Sequence[bytes], old_size: int, new_size: int | None = None
) -> tuple[bytes, ...]:
    """The proof that the first ``old_size`` leaves are a prefix of the first ``new_size``.

    ``new_size`` defaults to all of ``leaf_hashes``; only that prefix is hashed.

    Raises:
        InvalidInput: a leaf hash is not 32 bytes, or the sizes are not
            ``0 <= old_size <= new_size <= len(leaf_hashes)``.
    """
    if new_size is not None and (not _is_size(new_size) or new_size > len(leaf_hashes)):
        raise InvalidInput.single(
            "new_size", "a tree size must be a whole number no larger than the number of leaves",
            got=new_size, allowed=f"0..{len(leaf_hashes)}",
        )
    prefix = leaf_hashes if new_size is None else leaf_hashes[:new_size]
    return MerkleTree.build(prefix).consistency_proof(old_size)


def verify_inclusion(
    leaf_hash: bytes, index: int, tree_size: int, proof: Sequence[bytes], root: bytes
) -> bool:
    """Whether ``proof`` shows leaf ``index`` of the tree of ``tree_size`` leaves
    with root ``root`` hashes to ``leaf_hash`` (RFC 9162 §2.1.3.2, step by step).

    Never raises: anything malformed is an invalid proof and returns ``False``.
    The verifier must take ``tree_size`` and ``root`` together from one signed
    tree head: a proof checks a (size, root) pair, not a size alone.
    """
    if not (_is_size(index) and _is_size(tree_size) and _is_hash(leaf_hash) and _is_hash(root)):
        return False
    if not _are_hashes(proof):
        return False
    # 1. leaf_index >= tree_size fails.
    if index >= tree_size:
        return False
    # 2-3. fn = leaf_index, sn = tree_size - 1, r = hash.
    fn, sn, r = index, tree_size - 1, leaf_hash
    # 4. Fold in each p of the inclusion path.
    for p in proof:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            # "If LSB(fn) is not set, right-shift fn and sn until LSB(fn) is set or fn is 0."
            while not fn & 1 and fn != 0:
                fn, sn = fn >> 1, sn >> 1
        else:
            r = node_hash(r, p)
        fn, sn = fn >> 1, sn >> 1
    # 5. sn must be 0 and r must be the root.
    return sn == 0 and r == root


def verify_consistency(
    old_size: int, new_size: int, old_root: bytes, new_root: bytes, proof: Sequence[bytes]
) -> bool:
    """Whether ``proof`` shows the tree (``old_size``, ``old_root``) is a prefix of
    (``new_size``, ``new_root``) (RFC 9162 §2.1.4.2, step by step).

    RFC 9162 defines proofs only for ``0 < old_size < new_size``; the two other
    cases have nothing to prove, and verify only with an empty proof:

    - ``old_size == new_size``: the roots must be equal;
    - ``old_size == 0``: ``old_root`` must be :data:`EMPTY_ROOT` (and so must
      ``new_root`` if ``new_size`` is 0 too); the empty tree is a prefix of all.

    Never raises: anything malformed (including ``old_size > new_size``) is an
    invalid proof and returns ``False``.
    """
    if not (_is_size(old_size) and _is_size(new_size) and old_size <= new_size):
        return False
    if not (_is_hash(old_root) and _is_hash(new_root) and _are_hashes(proof)):
        return False
    if old_size == 0:
        return not proof and old_root == EMPTY_ROOT and (new_size > 0 or new_root == EMPTY_ROOT)
    if old_size == new_size:
        return not proof and old_root == new_root
    return _verify_consistency_rfc(old_size, new_size, old_root, new_root, list(proof))


def _verify_consistency_rfc(
    first: int, second: int, first_hash: bytes, second_hash: bytes, path: list[bytes]
) -> bool:
    """RFC 9162 §2.1.4.2 for ``0 < first < second``, numbered as in the RFC."""
    # 1. An empty consistency_path fails.
    if not path:
        return False
    # 2. If first is an exact power of 2, prepend first_hash.
    if first & (first - 1) == 0:
        path.insert(0, first_hash)
    # 3. fn = first - 1, sn = second - 1.
    fn, sn = first - 1, second - 1
    # 4. While LSB(fn) is set, right-shift fn and sn.
    while fn & 1:
        fn, sn = fn >> 1, sn >> 1
    # 5. fr = sr = the first value of the path.
    fr = sr = path[0]
    # 6. For each subsequent value c.
    for c in path[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            while not fn & 1 and fn != 0:
                fn, sn = fn >> 1, sn >> 1
        else:
            sr = node_hash(sr, c)
        fn, sn = fn >> 1, sn >> 1
    # 7. fr must be first_hash, sr must be second_hash, and sn must be 0.
    return fr == first_hash and sr == second_hash and sn == 0


def _split(n: int) -> int:
    """The largest power of two smaller than ``n`` (``n >= 2``)."""
    return 1 << ((n - 1).bit_length() - 1)


def _is_size(value: object) -> bool:
    return type(value) is int and 0 <= value <= MAX_TREE_SIZE


def _is_hash(value: object) -> bool:
    return type(value) is bytes and len(value) == HASH_SIZE


def _are_hashes(proof: object) -> bool:
    return isinstance(proof, (list, tuple)) and all(_is_hash(p) for p in proof)


def _check_index(index: int, size: int, where: str) -> None:
    if not _is_size(index) or index >= size:
        raise InvalidInput.single(
            where, f"a leaf index must be a whole number below the tree size {size}",
            got=index, allowed=f"0..{size - 1}" if size else "none: the tree is empty",
        )


def _check_leaf_hashes(leaf_hashes: Sequence[bytes]) -> None:
    if len(leaf_hashes) > MAX_TREE_SIZE:
        raise InvalidInput.single("leaf_hashes", "too many leaves", got=len(leaf_hashes),
                                  allowed=f"at most {MAX_TREE_SIZE}")
    if set(map(type, leaf_hashes)) <= {bytes} and set(map(len, leaf_hashes)) <= {HASH_SIZE}:
        return  # the common case, checked in C; the loop below finds the culprit
    for i, h in enumerate(leaf_hashes):
        if not _is_hash(h):
            raise InvalidInput.single(
                f"leaf_hashes[{i}]", "a leaf hash must be 32 bytes (leaf_hash(data), not the data)",
                got=h if not isinstance(h, bytes) or len(h) <= 64 else f"{len(h)} bytes",
                allowed="bytes of length 32",
            )
