"""Signed tree heads: canonical bytes, Ed25519 round trips, and every tamper failing."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from hypothesis import given, settings
from hypothesis import strategies as st

from accord.domain.errors import InvalidInput
from accord.domain.ledger.merkle import EMPTY_ROOT
from accord.domain.ledger.signing import (
    SignedHead,
    TreeHead,
    decode_head,
    decode_signed_head,
    encode_head,
    encode_signed_head,
    generate_private_key,
    key_id,
    public_key,
    public_key_from_pem,
    public_key_to_pem,
    sign_head,
    verify_head,
)

SEED = bytes(range(32))
PUBLIC = public_key(SEED)
ROOT8 = bytes.fromhex("5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328")
T_MS = 1_793_610_000_000  # 2026-11-02T09:00:00Z
HEAD = TreeHead(tree_size=8, root=ROOT8, timestamp_ms=T_MS, period="2026-11", log_id="accord-uk")

# The layout of docs/design/merkle.md, field by field.
GOLDEN_HEAD = (
    b"accord-tree-head"                 # context
    + b"\x01"                           # version
    + (8).to_bytes(8, "big")            # tree_size
    + ROOT8                             # root
    + T_MS.to_bytes(8, "big")           # timestamp_ms
    + b"\x07" + b"2026-11"              # period
    + b"\x09" + b"accord-uk"            # log_id
)
GOLDEN_HEAD_HEX = (
    "6163636f72642d747265652d68656164" "01" "0000000000000008"
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328"
    "000001a19b7ca680" "07323032362d3131" "096163636f72642d756b"
)
# Ed25519 is deterministic (RFC 8032 §5.1.6): this key and head always give this signature.
GOLDEN_SIGNATURE = bytes.fromhex(
    "85686a17110ade09231fbda1fef7cf3e211b089278f907d75561d021930e285e"
    "e73adf069853f3119970114ab3a8a919c3db1538e8f1cff92e9e2445bdba2602"
)
GOLDEN_PEM = (
    "-----BEGIN PUBLIC KEY-----\n"
    "MCowBQYDK2VwAyEAA6EHv/POEL4dcN0Y50vAmWfk1jCbpQ1fHdyGZBJVMbg=\n"
    "-----END PUBLIC KEY-----\n"
)


def test_encoding_is_the_documented_layout() -> None:
    assert encode_head(HEAD) == GOLDEN_HEAD == bytes.fromhex(GOLDEN_HEAD_HEX)
    assert len(GOLDEN_HEAD) == 67 + len("2026-11") + len("accord-uk")
    assert decode_head(GOLDEN_HEAD) == HEAD


def test_signature_is_stable() -> None:
    signed = sign_head(HEAD, SEED)
    assert signed.signature == GOLDEN_SIGNATURE
    assert encode_signed_head(signed) == GOLDEN_HEAD + GOLDEN_SIGNATURE
    assert decode_signed_head(GOLDEN_HEAD + GOLDEN_SIGNATURE) == signed


def test_keys_are_standard_ed25519() -> None:
    # RFC 8032 §7.1, TEST 1: secret key -> public key.
    secret = bytes.fromhex("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60")
    assert public_key(secret).hex() == "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a"
    assert key_id(PUBLIC).hex() == "56475aa75463474c0285df5dbf2bcab73da651358839e9b77481b2eab107708c"


def test_sign_verify_round_trip_with_a_new_key() -> None:
    private = generate_private_key()
    assert len(private) == 32
    signed = sign_head(HEAD, private)
    assert verify_head(signed, public_key(private))
    assert verify_head(decode_signed_head(encode_signed_head(signed)), public_key(private))
    assert generate_private_key() != private


def test_wrong_key_fails() -> None:
    signed = sign_head(HEAD, SEED)
    assert not verify_head(signed, public_key(generate_private_key()))
    assert not verify_head(signed, public_key(bytes(32)))


CHANGES = [
    ("tree_size", 9), ("tree_size", 7), ("tree_size", 8 + 2**32),
    ("root", ROOT8[:-1] + b"\x29"), ("root", bytes(32)),
    ("timestamp_ms", T_MS + 1), ("timestamp_ms", 0),
    ("period", "2026-12"), ("period", "2026-11x"),
    ("log_id", "accord-fr"), ("log_id", "accord-u"),
]


@pytest.mark.parametrize(("field", "value"), CHANGES)
def test_any_change_to_a_head_field_fails(field: str, value: Any) -> None:
    signed = sign_head(HEAD, SEED)
    changes: dict[str, Any] = {field: value}
    forged = SignedHead(dataclasses.replace(HEAD, **changes), signed.signature)
    assert not verify_head(forged, PUBLIC)


def test_any_change_to_any_signature_bit_fails() -> None:
    signed = sign_head(HEAD, SEED)
    for i in range(64):
        for bit in range(8):
            sig = bytearray(signed.signature)
            sig[i] ^= 1 << bit
            assert not verify_head(SignedHead(HEAD, bytes(sig)), PUBLIC)


@pytest.mark.parametrize(
    "signature",
    [b"", GOLDEN_SIGNATURE[:-1], GOLDEN_SIGNATURE + b"\x00", bytes(64), b"\xff" * 64, "text", None],
)
def test_malformed_signatures_fail_without_raising(signature: object) -> None:
    assert verify_head(SignedHead(HEAD, signature), PUBLIC) is False  # type: ignore[arg-type]


def test_not_a_signed_head_fails_without_raising() -> None:
    assert verify_head(GOLDEN_HEAD + GOLDEN_SIGNATURE, PUBLIC) is False  # type: ignore[arg-type]
    assert verify_head(SignedHead(GOLDEN_HEAD, GOLDEN_SIGNATURE), PUBLIC) is False  # type: ignore[arg-type]


def test_every_byte_of_the_signed_bytes_matters() -> None:
    wire = GOLDEN_HEAD + GOLDEN_SIGNATURE
    for i in range(len(wire)):
        tampered = bytearray(wire)
        tampered[i] ^= 0x01
        try:
            signed = decode_signed_head(bytes(tampered))
        except InvalidInput:
            continue  # no longer a head at all
        assert not verify_head(signed, PUBLIC), f"byte {i} changed and still verified"


def test_public_key_pem_round_trip() -> None:
    pem = public_key_to_pem(PUBLIC)
    assert pem == GOLDEN_PEM
    assert public_key_from_pem(pem) == PUBLIC
    assert public_key_from_pem(pem.encode()) == PUBLIC
    fresh = public_key(generate_private_key())
    assert public_key_from_pem(public_key_to_pem(fresh)) == fresh


def test_pem_that_is_not_an_ed25519_public_key_is_refused() -> None:
    with pytest.raises(InvalidInput, match="public_key: not a PEM public key"):
        public_key_from_pem("-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n")
    with pytest.raises(InvalidInput, match="not a PEM public key"):
        public_key_from_pem("hello")
    p256 = ec.generate_private_key(ec.SECP256R1()).public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )  # a PEM public key, but an ECDSA one
    with pytest.raises(InvalidInput, match="not an Ed25519 key"):
        public_key_from_pem(p256)


@pytest.mark.parametrize("bad", [b"", bytes(31), bytes(33), "00" * 32])
def test_keys_of_the_wrong_size_raise(bad: object) -> None:
    with pytest.raises(InvalidInput, match="an Ed25519 key is 32 raw bytes"):
        sign_head(HEAD, bad)  # type: ignore[arg-type]
    with pytest.raises(InvalidInput, match="an Ed25519 key is 32 raw bytes"):
        verify_head(sign_head(HEAD, SEED), bad)  # type: ignore[arg-type]
    with pytest.raises(InvalidInput, match="an Ed25519 key is 32 raw bytes"):
        key_id(bad)  # type: ignore[arg-type]
    with pytest.raises(InvalidInput, match="an Ed25519 key is 32 raw bytes"):
        public_key_to_pem(bad)  # type: ignore[arg-type]


def test_invalid_heads_list_every_problem() -> None:
    with pytest.raises(InvalidInput) as caught:
        TreeHead(tree_size=-1, root=b"short", timestamp_ms=2**64, period="", log_id="has space")
    wheres = [p.where for p in caught.value.problems]
    assert wheres == ["tree_size", "root", "timestamp_ms", "period", "log_id"]
    with pytest.raises(InvalidInput, match="root: the empty tree's root is SHA-256 of nothing"):
        TreeHead(tree_size=0, root=ROOT8, timestamp_ms=0, period="2026-11", log_id="l")
    with pytest.raises(InvalidInput, match="period: must be 1 to 64 printable ASCII"):
        TreeHead(tree_size=0, root=EMPTY_ROOT, timestamp_ms=0, period="x" * 65, log_id="l")
    with pytest.raises(InvalidInput, match="tree_size"):
        TreeHead(tree_size=True, root=EMPTY_ROOT, timestamp_ms=0, period="p", log_id="l")


@pytest.mark.parametrize(
    ("data", "match"),
    [
        (b"", "shorter than the smallest head"),
        (b"accord-tree-hea!" + GOLDEN_HEAD[16:], "does not start with the tree head context"),
        (GOLDEN_HEAD[:16] + b"\x02" + GOLDEN_HEAD[17:], "does not start with the tree head context"),
        (GOLDEN_HEAD[:-1], "ends inside log_id"),
        (GOLDEN_HEAD[:66] + b"202", "ends inside period"),
        (GOLDEN_HEAD[:65] + b"\x00\x02ab", "period: must be 1 to 64"),
        (GOLDEN_HEAD + b"\x00", "1 bytes follow the log_id"),
        (GOLDEN_HEAD[:65] + b"\x02\xff\xfe\x01l", "period is not ASCII"),
        (GOLDEN_HEAD[:73], "ends before the length of log_id"),
    ],
)
def test_non_canonical_bytes_are_refused(data: bytes, match: str) -> None:
    with pytest.raises(InvalidInput, match=match):
        decode_head(data)


def test_a_signed_head_needs_a_64_byte_signature_on_the_wire() -> None:
    with pytest.raises(InvalidInput, match="an Ed25519 signature is 64 bytes"):
        encode_signed_head(SignedHead(HEAD, b"short"))
    with pytest.raises(InvalidInput, match="too short to hold a head"):
        decode_signed_head(GOLDEN_SIGNATURE)


labels = st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=1, max_size=64)
heads = st.builds(
    TreeHead,
    tree_size=st.integers(1, 2**64 - 1),
    root=st.binary(min_size=32, max_size=32),
    timestamp_ms=st.integers(0, 2**64 - 1),
    period=labels,
    log_id=labels,
)


@settings(max_examples=200, deadline=None)
@given(heads, heads)
def test_encoding_is_a_bijection(a: TreeHead, b: TreeHead) -> None:
    assert decode_head(encode_head(a)) == a
    assert (encode_head(a) == encode_head(b)) is (a == b)


@settings(max_examples=50, deadline=None)
@given(heads, heads)
def test_a_signature_covers_exactly_its_head(a: TreeHead, b: TreeHead) -> None:
    signed = sign_head(a, SEED)
    assert verify_head(signed, PUBLIC)
    assert verify_head(SignedHead(b, signed.signature), PUBLIC) is (a == b)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 200), st.integers(0, 255)), max_size=4), st.integers(0, 90))
def test_whatever_decodes_re_encodes_to_the_same_bytes(edits: list[tuple[int, int]], cut: int) -> None:
    data = bytearray(GOLDEN_HEAD + bytes(10))[: 69 + cut]
    for pos, value in edits:
        if pos < len(data):
            data[pos] = value
    try:
        head = decode_head(bytes(data))
    except InvalidInput:
        return
    assert encode_head(head) == bytes(data)
