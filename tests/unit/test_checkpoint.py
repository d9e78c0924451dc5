"""C2SP signed notes, checkpoints and cosignatures: known answers from the specs and from
the reference implementations' tests, round trips, and every malformed input refused.

Sources of the known answers (quoted as data):

- ``golang.org/x/mod/sumdb/note``, ``note_test.go`` (``TestSign``, ``TestOpen``): the
  PeterNeumann signer key, the EnochRoot verifier key, their signatures of one text;
- c2sp.org/signed-note, "Verifier keys" example: ``example.com/foo`` and its note;
- ``transparency-dev/formats``, ``note/note_cosigv1_test.go``: a type 0x04 verifier key
  (``remora.n621.de``), a type 0x01 key whose base64 holds a ``+``, and a cosignature
  whose time is 1727964367;
- c2sp.org/tlog-checkpoint and c2sp.org/tlog-cosignature: the ``example.com/behind-the-sofa``
  checkpoint, the witness's cosignature line at time 1679315147 and the signed message.
"""

from __future__ import annotations

import base64

import pytest
from hypothesis import given
from hypothesis import strategies as st

from accord.domain.errors import Forbidden, InvalidInput
from accord.domain.ledger.checkpoint import (
    Checkpoint,
    checkpoint_for_head,
    cosign,
    default_origin,
    log_key,
    open_checkpoint,
    parse_checkpoint,
    sign_checkpoint,
    signed_checkpoint_for_head,
    verify_cosignature,
    witness_key,
)
from accord.domain.ledger.merkle import EMPTY_ROOT, MerkleTree, leaf_hash
from accord.domain.ledger.note import (
    Note,
    NoteSignature,
    SignatureType,
    cosignature_message,
    cosignature_timestamp,
    encode_signer_key,
    key_id,
    open_note,
    parse_note,
    parse_signer_key,
    parse_verifier_key,
    public_key_of,
    sign_ed25519,
    verify_signature,
)
from accord.domain.ledger.signing import TreeHead, generate_private_key

# golang.org/x/mod/sumdb/note note_test.go
PETER_SKEY = "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz"
PETER_VKEY = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
ENOCH_VKEY = "EnochRoot+af0cfe78+ATtqJ7zOtqQtYqOo0CpvDXNlMhV3HeJDpjrASKGLWdop"
GO_TEXT = ("If you think cryptography is the answer to your problem,\n"
           "then you don't know what your problem is.\n")
PETER_SIG = ("— PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXg"
             "KvqfqdngotpRZb6KE6RyyBwJnAM=\n")
ENOCH_SIG = ("— EnochRoot rwz+eBzmZa0SO3NbfRGzPCpDckykFXSdeX+MNtCOXm2/5n2tiOHp+vAF1aGrQ5ovTG01oOT"
             "GwnWLox33WWd1RvMc+QQ=\n")
# c2sp.org/signed-note, "Verifier keys", example
FOO_VKEY = "example.com/foo+530d903a+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k"
FOO_NOTE = ("This is an example message.\n\n— example.com/foo Uw2QOkn8srV1yJGh2VYRlL1Tnagv1YEq6Tf"
            "Xppzi2ONncAlTgK7Ztg1ERYNZXsYjOBH3mFXmRKuwHjG1Yu72IneyaQM=\n")
# transparency-dev/formats note/note_cosigv1_test.go
REMORA_VKEY = "remora.n621.de+da77ade7+BOvN63jn/bLvkieywe8R6UYAtVtNbZpXh34x7onlmtw2"
PLUS_VKEY = "TEST+7997405c+AQcC+FTVKf0jlTdHDY3rbevmnKxxPjigCXlVtGe6RIr6"
FORMATS_COSIG = ("ZGhGuQAAAABm/qTPeyKXD+R2rzyQsxPiP8mXum7qq/iF0u4vanlqJyocWODBt97w9uL+8qT7S5gxEHWW"
                 "OworDcFiEBYJXORmnFBOBA==")
# c2sp.org/tlog-checkpoint and c2sp.org/tlog-cosignature
SOFA = "example.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n"
SOFA_LOG_SIG = ("— example.com/behind-the-sofa Az3grlgtzPICa5OS8npVmf1Myq/5IZniMp+ZJurmRDeOoRDe4URYN7u5"
                "/Zhcyv2q1gGzGku9nTo+zyWE+xeMcTOAYQ8=\n")
SOFA_WITNESS_SIG = ("— witness.example.com/w1 jWbPPwAAAABkGFDLEZMHwSRaJNiIDoe9DYn/zXcrtPHeolMI5OWXEhZCB9dl"
                    "rDJsX3b2oyin1nPZqhf5nNo0xUe+mbIUBkBIfZ+qnA==\n")
SOFA_COSIGNED_MESSAGE = ("cosignature/v1\ntime 1679315147\nexample.com/behind-the-sofa\n20852163\n"
                         "CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n")

SEED = bytes(range(32))
OTHER_SEED = bytes(range(1, 33))


def _problems(exc: pytest.ExceptionInfo[InvalidInput]) -> str:
    return "; ".join(p.render() for p in exc.value.problems)


# --- known answers -----------------------------------------------------------------------

def test_go_signer_key_signs_exactly_the_reference_signature() -> None:
    name, seed = parse_signer_key(PETER_SKEY)
    assert name == "PeterNeumann"
    assert sign_ed25519(GO_TEXT, name, seed).line() == PETER_SIG
    assert encode_signer_key(name, seed) == PETER_SKEY
    assert public_key_of(seed) == parse_verifier_key(PETER_VKEY).public_key


def test_go_verifier_keys_parse_and_encode_back() -> None:
    for vkey, kid in ((PETER_VKEY, 0xC74F20A3), (ENOCH_VKEY, 0xAF0CFE78), (FOO_VKEY, 0x530D903A),
                      (PLUS_VKEY, 0x7997405C)):
        key = parse_verifier_key(vkey)
        assert key.type is SignatureType.ED25519
        assert key.key_id == kid == key_id(key.name, SignatureType.ED25519, key.public_key)
        assert key.encode() == vkey


def test_the_cosignature_key_id_uses_type_0x04() -> None:
    key = parse_verifier_key(REMORA_VKEY)
    assert key.type is SignatureType.COSIGNATURE_V1
    assert key.key_id == 0xDA77ADE7
    assert key_id(key.name, SignatureType.ED25519, key.public_key) != 0xDA77ADE7


def test_go_open_verifies_one_and_ignores_the_unknown_key() -> None:
    note = parse_note(GO_TEXT + "\n" + PETER_SIG + ENOCH_SIG)
    assert note.text == GO_TEXT
    opened = open_note(note, [parse_verifier_key(PETER_VKEY)])
    assert [s.name for s in opened.verified] == ["PeterNeumann"]
    assert [(s.name, s.key_id) for s in opened.unknown] == [("EnochRoot", 0xAF0CFE78)]
    both = open_note(note, [parse_verifier_key(PETER_VKEY), parse_verifier_key(ENOCH_VKEY)])
    assert len(both.verified) == 2 and not both.failed
    assert note.encode() == GO_TEXT + "\n" + PETER_SIG + ENOCH_SIG


def test_go_open_a_corrupted_signature_of_a_known_key_fails() -> None:
    bad = PETER_SIG[:60] + "ABCD" + PETER_SIG[60:]
    opened = open_note(parse_note(GO_TEXT + "\n" + bad), [parse_verifier_key(PETER_VKEY)])
    assert not opened.verified and len(opened.failed) == 1


def test_signed_note_spec_example_verifies() -> None:
    note = parse_note(FOO_NOTE)
    assert note.text == "This is an example message.\n"
    assert open_note(note, [parse_verifier_key(FOO_VKEY)]).verified
    assert note.encode() == FOO_NOTE
    tampered = parse_note(FOO_NOTE.replace("example message", "example massage"))
    assert open_note(tampered, [parse_verifier_key(FOO_VKEY)]).failed


def test_the_tlog_checkpoint_example_parses_and_encodes_back() -> None:
    note = parse_note(SOFA + "\n" + SOFA_LOG_SIG + SOFA_WITNESS_SIG)
    checkpoint = parse_checkpoint(note.text)
    assert (checkpoint.origin, checkpoint.size) == ("example.com/behind-the-sofa", 20852163)
    assert checkpoint.root == base64.b64decode("CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=")
    assert checkpoint.body() == SOFA
    assert [s.name for s in note.signatures] == ["example.com/behind-the-sofa", "witness.example.com/w1"]


def test_the_tlog_cosignature_example_time_and_signed_message() -> None:
    witness_sig = parse_note(SOFA + "\n" + SOFA_WITNESS_SIG).signatures[0]
    assert witness_sig.key_id == 0x8D66CF3F
    assert cosignature_timestamp(witness_sig) == 1679315147
    assert cosignature_message(SOFA, 1679315147) == SOFA_COSIGNED_MESSAGE.encode()


def test_the_formats_cosignature_time() -> None:
    raw = base64.b64decode(FORMATS_COSIG)
    assert cosignature_timestamp(NoteSignature("w", int.from_bytes(raw[:4], "big"), raw[4:])) == 1727964367
    not_a_cosignature = base64.b64decode(PETER_SIG.split()[-1])
    with pytest.raises(InvalidInput, match="72 bytes"):
        cosignature_timestamp(NoteSignature("w", 1, not_a_cosignature[4:]))


# --- round trips --------------------------------------------------------------------------

def test_a_cosignature_round_trips_and_binds_time_text_and_key() -> None:
    checkpoint = Checkpoint("example.org/log", 3, leaf_hash(b"x"))
    key = witness_key("witness.example/w1", public_key_of(SEED))
    signature = cosign(checkpoint, "witness.example/w1", SEED, 1700000000)
    assert verify_cosignature(checkpoint, key, signature)
    assert cosignature_timestamp(signature) == 1700000000
    line = parse_note(checkpoint.body() + "\n" + signature.line()).signatures[0]
    assert verify_cosignature(checkpoint, key, line)
    later = NoteSignature(signature.name, signature.key_id,
                          (1700000001).to_bytes(8, "big") + signature.signature[8:])
    assert not verify_cosignature(checkpoint, key, later)
    assert not verify_cosignature(Checkpoint("example.org/log", 4, leaf_hash(b"x")), key, signature)
    assert not verify_cosignature(checkpoint, witness_key("witness.example/w1", public_key_of(OTHER_SEED)),
                                  signature)
    as_plain = log_key("witness.example/w1", public_key_of(SEED))   # type 0x01: not a cosigner
    assert not verify_cosignature(checkpoint, as_plain, signature)


def test_a_checkpoint_of_the_ledger_head_says_the_same_size_and_root() -> None:
    tree = MerkleTree.from_leaves([b"a", b"b", b"c"])
    head = TreeHead(3, tree.root(), 1_700_000_000_000, "2026-11", "accord-uk")
    origin = default_origin("accord-uk")
    assert origin == "accord.example/ledger/accord-uk"
    assert checkpoint_for_head(head, origin) == Checkpoint(origin, 3, tree.root())
    signed = signed_checkpoint_for_head(head, origin, SEED)
    assert signed.startswith(f"{origin}\n3\n{base64.b64encode(tree.root()).decode()}\n\n— {origin} ")
    assert open_checkpoint(signed, [log_key(origin, public_key_of(SEED))]).size == 3


@given(size=st.integers(0, 2**64 - 1), root=st.binary(min_size=32, max_size=32),
       extensions=st.lists(st.text(st.characters(min_codepoint=0x20, max_codepoint=0x2FF),
                                   min_size=1, max_size=8), max_size=2))
def test_any_checkpoint_round_trips(size: int, root: bytes, extensions: list[str]) -> None:
    checkpoint = Checkpoint("example.org/log", size, EMPTY_ROOT if size == 0 else root, tuple(extensions))
    assert parse_checkpoint(checkpoint.body()) == checkpoint
    key = log_key("example.org/log", public_key_of(SEED))
    assert open_checkpoint(sign_checkpoint(checkpoint, SEED), [key]) == checkpoint


def test_open_checkpoint_refuses_untrusted_and_failing_signatures() -> None:
    checkpoint = Checkpoint("example.org/log", 0, EMPTY_ROOT)
    signed = sign_checkpoint(checkpoint, SEED)
    with pytest.raises(Forbidden, match="no signature of a trusted key"):
        open_checkpoint(signed, [log_key("example.org/log", public_key_of(OTHER_SEED))])
    forged = signed.replace("\n0\n", "\n1\n").replace(base64.b64encode(EMPTY_ROOT).decode(),
                                                      base64.b64encode(leaf_hash(b"x")).decode())
    with pytest.raises(Forbidden, match="does not verify"):
        open_checkpoint(forged, [log_key("example.org/log", public_key_of(SEED))])


def test_a_key_generated_here_signs_notes_go_can_read() -> None:
    seed = generate_private_key()
    skey = encode_signer_key("example.org/k", seed)
    assert parse_signer_key(skey) == ("example.org/k", seed)
    vkey = f"example.org/k+{key_id('example.org/k', SignatureType.ED25519, public_key_of(seed)):08x}+" \
           + base64.b64encode(b"\x01" + public_key_of(seed)).decode()
    note = Note("hi\n", (sign_ed25519("hi\n", "example.org/k", seed),))
    assert verify_signature(parse_verifier_key(vkey), "hi\n", note.signatures[0])


# --- malformed input, each refused naming what is wrong --------------------------------------

BAD_NOTES = [
    (GO_TEXT, "must end with a newline|no blank line"),
    (GO_TEXT + "\n", "at least one signature line"),
    (GO_TEXT + "\n" + PETER_SIG[:-1], "must end with a newline"),
    ("\x01" + GO_TEXT + "\n" + PETER_SIG, "control character"),
    (b"\xff" + GO_TEXT.encode() + b"\n" + PETER_SIG.encode(), "not valid UTF-8"),
    (GO_TEXT + "\n— Bad Name x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotp"
     "RZb6KE6RyyBwJnAM=\n", "line 4: .*'— <key name> <base64>'"),
    (GO_TEXT + "\n" + PETER_SIG + "Unexpected line.\n", "line 5: .*starts with '— '"),
    (GO_TEXT + "\n— PeterNeumann not*base64\n", "line 4: .*base64"),
    (GO_TEXT + "\n— PeterNeumann AAAA\n", "line 4: .*at least 5 bytes"),
    (GO_TEXT + "\n— a+b " + PETER_SIG.split()[-1] + "\n", "no space, '\\+'"),
    (GO_TEXT + "\n" + PETER_SIG * 101, "too many signature lines"),
]


@pytest.mark.parametrize(("data", "message"), BAD_NOTES)
def test_malformed_notes_are_refused(data: str | bytes, message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        parse_note(data)


BAD_CHECKPOINTS = [
    ("example.org/log\n1\n", "at least three lines"),
    ("example.org/log\n1\n" + base64.b64encode(bytes(32)).decode(), "end with a newline"),
    ("example.org/log\n01\n" + base64.b64encode(bytes(32)).decode() + "\n", "line 2 .*leading zero"),
    ("example.org/log\n-1\n" + base64.b64encode(bytes(32)).decode() + "\n", "line 2"),
    ("example.org/log\n" + str(2**64) + "\n" + base64.b64encode(bytes(32)).decode() + "\n", "line 2"),
    ("example.org/log\n1\n" + base64.b64encode(bytes(31)).decode() + "\n", "line 3 .*32-byte"),
    ("example.org/log\n1\nnot base64!\n", "line 3 .*base64"),
    ("example.org/log\n0\n" + base64.b64encode(bytes(32)).decode() + "\n", "empty tree"),
    ("\n1\n" + base64.b64encode(bytes(32)).decode() + "\n", "line 1 .*origin"),
    ("o\n1\n" + base64.b64encode(bytes(32)).decode() + "\n\n", "line 4 .*extension"),
]


@pytest.mark.parametrize(("text", "message"), BAD_CHECKPOINTS)
def test_malformed_checkpoints_are_refused(text: str, message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        parse_checkpoint(text)


BAD_VKEYS = [
    (PETER_VKEY[:-1], "base64|33 bytes"),
    (PETER_VKEY.replace("c74f20a3", "c74f20a4"), "key ID does not match"),
    (PETER_VKEY.replace("+c74f20a3", ""), "name\\+hex8"),
    ("PeterNeumann+173116ae+ZRpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW", "type byte"),
    ("PeterNeumann+cc469956+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TWBADKEY==", "base64|33 bytes"),
    ("rekor.sigstore.dev+NOT_A_NU+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW", "hex8"),
]


@pytest.mark.parametrize(("vkey", "message"), BAD_VKEYS)
def test_malformed_verifier_keys_are_refused(vkey: str, message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        parse_verifier_key(vkey)


def test_every_prefix_and_mangling_of_the_go_keys_is_refused() -> None:
    """As x/mod's TestNewVerifier and TestNewSigner: no substring or one-byte change passes."""
    for key, parse in ((PETER_VKEY, parse_verifier_key), (PETER_SKEY, parse_signer_key)):
        for i in range(len(key)):
            for j in range(i + 1, len(key) + 1):
                if (i, j) != (0, len(key)):
                    with pytest.raises(InvalidInput):
                        parse(key[i:j])
            mangled = key[:i] + chr(ord(key[i]) + 1) + key[i + 1:]
            with pytest.raises(InvalidInput):
                parse(mangled)


def test_bad_signing_inputs_are_refused() -> None:
    with pytest.raises(InvalidInput, match="ending in a newline"):
        sign_ed25519("abc", "n", SEED)
    with pytest.raises(InvalidInput, match="32 raw bytes"):
        sign_ed25519("abc\n", "n", SEED[:31])
    with pytest.raises(InvalidInput, match="2\\*\\*63"):
        cosign(Checkpoint("o", 0, EMPTY_ROOT), "w", SEED, 2**63)
    with pytest.raises(InvalidInput, match="no space"):
        Checkpoint("o", 0, EMPTY_ROOT) and sign_checkpoint(Checkpoint("o", 0, EMPTY_ROOT), SEED, "a b")
    with pytest.raises(InvalidInput, match="line 2"):
        Checkpoint("o", -1, EMPTY_ROOT)
