"""A witness's add-checkpoint (C2SP tlog-witness): the request format, the decisions in the
spec's order, and the witness over a real SQLite state, in process."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from accord.adapters.witness_state import SqlWitnessState
from accord.domain.errors import InvalidInput
from accord.domain.ledger.checkpoint import Checkpoint, log_key, sign_checkpoint, verify_cosignature
from accord.domain.ledger.merkle import EMPTY_ROOT, MerkleTree
from accord.domain.ledger.note import (
    VerifierKey,
    cosignature_timestamp,
    parse_signature_lines,
    parse_verifier_key,
    public_key_of,
)
from accord.domain.ledger.signing import public_key_to_pem
from accord.domain.ledger.witness import (
    EMPTY_STATE,
    SIZE_CONTENT_TYPE,
    Judgement,
    LogState,
    Submission,
    Verdict,
    admit,
    encode_add_checkpoint,
    judge,
    parse_add_checkpoint,
)
from accord.witness_runtime import Witness, keygen, load_key, parse_logs

ORIGIN = "accord.example/ledger/test"
LOG_SEED = bytes(range(32))
WITNESS_SEED = bytes(range(2, 34))
TREE = MerkleTree.from_leaves([f"entry {i}".encode() for i in range(40)])
FORK = MerkleTree.from_leaves([f"forged {i}".encode() for i in range(40)])
LOGS = {ORIGIN: (log_key(ORIGIN, public_key_of(LOG_SEED)),)}


def signed(size: int, tree: MerkleTree = TREE, seed: bytes = LOG_SEED, origin: str = ORIGIN) -> str:
    return sign_checkpoint(Checkpoint(origin, size, tree.root(size)), seed)


def request(old: int, size: int, tree: MerkleTree = TREE, **kw: object) -> bytes:
    proof = tree.consistency_proof(old, size) if old <= size else ()
    return encode_add_checkpoint(old, proof, signed(size, tree, **kw))  # type: ignore[arg-type]


def verdict(body: bytes, stored: LogState = EMPTY_STATE) -> Judgement:
    admitted = admit(body, LOGS)
    return admitted if isinstance(admitted, Judgement) else judge(admitted, stored)


def state(size: int, tree: MerkleTree = TREE) -> LogState:
    return LogState(size, tree.root(size))


# --- the request format ----------------------------------------------------------------------

def test_the_spec_example_request_parses() -> None:
    body = ("old 20852014\n"
            "PlRNCrwHpqhGrupue0L7gxbjbMiKA9temvuZZDDpkaw=\n"
            "jrJZDmY8Y7SyJE0MWLpLozkIVMSMZcD5kvuKxPC3swk=\n"
            "5+pKlUdi2LeF/BcMHBn+Ku6yhPGNCswZZD1X/6QgPd8=\n"
            "/6WVhPs2CwSsb5rYBH5cjHV/wSmA79abXAwhXw3Kj/0=\n"
            "\n"
            "example.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n"
            "\n"
            "— example.com/behind-the-sofa Az3grlgtzPICa5OS8npVmf1Myq/5IZniMp+ZJurmRDeOoRDe4URYN7u5"
            "/Zhcyv2q1gGzGku9nTo+zyWE+xeMcTOAYQ8=\n")
    parsed = parse_add_checkpoint(body.encode())
    assert parsed.old_size == 20852014 and len(parsed.proof) == 4
    assert parsed.proof[0] == base64.b64decode("PlRNCrwHpqhGrupue0L7gxbjbMiKA9temvuZZDDpkaw=")
    assert parsed.signed_checkpoint.startswith("example.com/behind-the-sofa\n20852163\n")
    assert encode_add_checkpoint(parsed.old_size, parsed.proof, parsed.signed_checkpoint) == body.encode()


BAD_REQUESTS = [
    (b"old 0\n", "no empty line"),
    (b"old 01\n\nx\n", "line 1 \\(old size\\)"),
    (b"old -1\n\nx\n", "line 1 \\(old size\\)"),
    (b"new 1\n\nx\n", "line 1 \\(old size\\)"),
    (b"old 1\nnot base64!\n\nx\n", "line 2 \\(proof hash\\)"),
    (b"old 1\n" + base64.b64encode(bytes(31)) + b"\n\nx\n", "line 2 .*32 bytes"),
    (b"old 1\n" + (base64.b64encode(bytes(32)) + b"\n") * 64 + b"\nx\n", "too many consistency proof"),
    (b"\xffold 0\n\nx\n", "not valid UTF-8"),
]


@pytest.mark.parametrize(("body", "message"), BAD_REQUESTS)
def test_malformed_requests_are_refused_naming_the_line(body: bytes, message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        parse_add_checkpoint(body)
    assert verdict(body).verdict is Verdict.MALFORMED


# --- the decisions, in the spec's order ---------------------------------------------------------

def test_a_consistent_checkpoint_is_cosigned() -> None:
    assert verdict(request(0, 5)).verdict is Verdict.COSIGNED
    assert verdict(request(5, 17), state(5)).verdict is Verdict.COSIGNED
    assert verdict(request(17, 17), state(17)).verdict is Verdict.COSIGNED   # the same again


def test_unknown_origin_is_404_before_the_signature() -> None:
    body = request(0, 3, origin="other.example/log", seed=bytes(32))
    assert verdict(body).verdict is Verdict.UNKNOWN_LOG


def test_a_checkpoint_signed_by_another_key_is_403() -> None:
    judged = verdict(request(0, 3, seed=bytes(32)))
    assert judged.verdict is Verdict.BAD_SIGNATURE and "no signature of a trusted key" in judged.reason


def test_old_above_size_is_400_not_409() -> None:
    body = encode_add_checkpoint(9, (), signed(5))
    assert verdict(body, state(9)).verdict is Verdict.MALFORMED


def test_a_stale_old_size_is_409_with_the_current_size() -> None:
    judged = verdict(request(5, 17), state(9))
    assert (judged.verdict, judged.current_size) == (Verdict.CONFLICT, 9)
    assert verdict(request(0, 17), state(9)).current_size == 9


def test_the_same_size_with_another_root_is_409() -> None:
    judged = verdict(request(9, 9, FORK), state(9))
    assert judged.verdict is Verdict.CONFLICT and judged.current_size is None and "fork" in judged.reason


def test_a_bad_proof_is_422() -> None:
    assert verdict(request(5, 17, FORK), state(5)).verdict is Verdict.BAD_PROOF   # a fork
    wrong = encode_add_checkpoint(5, TREE.consistency_proof(4, 17), signed(17))
    assert verdict(wrong, state(5)).verdict is Verdict.BAD_PROOF
    empty_old_with_proof = encode_add_checkpoint(0, TREE.consistency_proof(4, 17), signed(17))
    assert verdict(empty_old_with_proof).verdict is Verdict.BAD_PROOF


def test_admit_hands_on_the_checkpoint() -> None:
    admitted = admit(request(0, 5), LOGS)
    assert isinstance(admitted, Submission) and admitted.checkpoint.size == 5


# --- the witness over SQLite, in process ---------------------------------------------------------

@pytest.fixture
def witness(tmp_path: Path) -> Witness:
    store = SqlWitnessState(f"sqlite:///{tmp_path / 'w.db'}")
    return Witness("witness.example/w1", WITNESS_SEED, LOGS, store, clock=lambda: 1_800_000_000.5)


def test_the_witness_answers_every_code_and_remembers(witness: Witness) -> None:
    answer = witness.add_checkpoint(request(0, 5))
    assert answer.status == 200
    [line] = parse_signature_lines(answer.body.splitlines())
    key = parse_verifier_key(witness.verifier_key)
    assert verify_cosignature(Checkpoint(ORIGIN, 5, TREE.root(5)), key, line)
    assert cosignature_timestamp(line) == 1_800_000_000
    assert witness.state.get(ORIGIN) == state(5)
    stale = witness.add_checkpoint(request(0, 7))
    assert (stale.status, stale.body, stale.content_type) == (409, "5\n", SIZE_CONTENT_TYPE)
    assert witness.add_checkpoint(request(5, 9, FORK)).status == 422
    assert witness.add_checkpoint(request(5, 5, FORK)).status == 409
    assert witness.add_checkpoint(request(0, 3, seed=bytes(32))).status == 403
    assert witness.add_checkpoint(request(0, 3, origin="x.example/l", seed=bytes(32))).status == 404
    assert witness.add_checkpoint(b"old 0\n").status == 400
    assert witness.state.get(ORIGIN) == state(5)   # no refusal moved it
    assert witness.add_checkpoint(request(5, 40)).status == 200
    assert witness.state.get(ORIGIN) == state(40)


def test_a_lost_race_is_judged_again(witness: Witness) -> None:
    """Another request stores size 9 between this one's read and its write: no rollback."""
    real_get = witness.state.get

    def get_then_race(origin: str) -> LogState:
        seen = real_get(origin)
        if seen == EMPTY_STATE:
            assert witness.state.advance(origin, EMPTY_STATE, state(9))
        return seen

    witness.state.get = get_then_race  # type: ignore[method-assign]
    answer = witness.add_checkpoint(request(0, 5))
    assert (answer.status, answer.body) == (409, "9\n")
    assert real_get(ORIGIN) == state(9)


# --- keys and --log ------------------------------------------------------------------------

def test_keygen_writes_a_key_that_loads_and_never_overwrites(tmp_path: Path) -> None:
    vkey = keygen(tmp_path / "k", "witness.example/w2")
    name, seed = load_key(tmp_path / "k" / "witness.key")
    assert name == "witness.example/w2"
    assert parse_verifier_key(vkey).public_key == public_key_of(seed)
    assert (tmp_path / "k" / "witness.pub").read_text() == vkey + "\n"
    assert (tmp_path / "k" / "witness.key").stat().st_mode & 0o777 == 0o600
    with pytest.raises(InvalidInput, match="never overwritten"):
        keygen(tmp_path / "k", "witness.example/w2")
    with pytest.raises(InvalidInput, match="no space"):
        keygen(tmp_path / "j", "bad name")


def test_log_keys_in_every_form(tmp_path: Path) -> None:
    public = public_key_of(LOG_SEED)
    pem = tmp_path / "ledger-signing.pub.pem"
    pem.write_text(public_key_to_pem(public))
    vkey = log_key(ORIGIN, public).encode()
    forms = [f"{ORIGIN}={vkey}", f"{ORIGIN}=ed25519:{base64.b64encode(public).decode()}",
             f"{ORIGIN}={base64.b64encode(public).decode()}", f"{ORIGIN}={pem}"]
    for form in forms:
        assert parse_logs([form]) == {ORIGIN: (VerifierKey(ORIGIN, log_key(ORIGIN, public).type, public),)}
    assert len(parse_logs([*forms[:2], f"b.example/l={vkey}"])[ORIGIN]) == 2


def test_bad_log_options_are_named() -> None:
    with pytest.raises(InvalidInput) as exc:
        parse_logs(["no-equals", "o=not-a-key", "a b=ed25519:AAAA"])
    wheres = [p.where for p in exc.value.problems]
    assert wheres == ["--log no-equals", "--log o=not-a-key", "--log a b=ed25519:AAAA"]
    with pytest.raises(InvalidInput, match="at least one log"):
        parse_logs([])
    cosigner = "w.example/w+" + "0" * 8
    with pytest.raises(InvalidInput):
        parse_logs([f"o={cosigner}+" + base64.b64encode(b"\x04" + bytes(32)).decode()])


def test_empty_root_is_the_never_cosigned_state() -> None:
    assert LogState(0, EMPTY_ROOT) == EMPTY_STATE
