"""The witnessing policy and the cosigned checkpoints of statements (pure), and the federation
file's ``[witnessing]`` table: every bad field named with its value and what is allowed."""

from __future__ import annotations

import pytest

from accord.adapters.federation_file import parse_federation_text
from accord.domain.errors import InvalidInput
from accord.domain.federation.model import PartnerWitness, WitnessRule
from accord.domain.ledger.checkpoint import Checkpoint, cosign, log_key, sign_checkpoint, witness_key
from accord.domain.ledger.cosigned import (
    WitnessedTree,
    WitnessTrust,
    check_witnessing,
    contradictions,
    missing_for_policy,
    open_cosigned,
)
from accord.domain.ledger.merkle import MerkleTree
from accord.domain.ledger.note import public_key_of
from accord.domain.ledger.signing import TreeHead
from tests.conftest import SMALL_FEDERATION

LOG_SEED = bytes(range(32))
UK_SEED, FR_SEED, FR2_SEED = bytes([1] * 32), bytes([2] * 32), bytes([3] * 32)
ORIGIN = "accord.example/ledger/unit"
UK = PartnerWitness("uk-w", "uk", "http://uk", witness_key("w.uk/a", public_key_of(UK_SEED)).encode())
FR = PartnerWitness("fr-w", "fr", "http://fr", witness_key("w.fr/a", public_key_of(FR_SEED)).encode())
FR2 = PartnerWitness("fr-w2", "fr", "http://fr2", witness_key("w.fr2/a", public_key_of(FR2_SEED)).encode())
TREE = MerkleTree.from_leaves([f"e{i}".encode() for i in range(9)])


def test_every_party_needs_k_witnesses_of_each_party() -> None:
    ws = [UK, FR, FR2]
    assert missing_for_policy(WitnessRule.EVERY_PARTY, 1, ["uk", "fr"], ws, {"uk-w", "fr-w2"}) == []
    assert missing_for_policy(WitnessRule.EVERY_PARTY, 2, ["uk", "fr"], ws, {"uk-w", "fr-w2"}) == [
        "party uk: 1 of the 2 cosignature(s) required; missing none: it names no witness",
        "party fr: 1 of the 2 cosignature(s) required; missing fr-w"]
    assert missing_for_policy(WitnessRule.EVERY_PARTY, 1, ["uk", "kr"], ws, {"uk-w"}) == [
        "party kr: 0 of the 1 cosignature(s) required; missing none: it names no witness"]


def test_k_of_n_counts_any_of_the_parties_witnesses() -> None:
    ws = [UK, FR, FR2]
    assert missing_for_policy(WitnessRule.K_OF_N, 2, ["uk", "fr"], ws, {"fr-w", "fr-w2"}) == []
    assert missing_for_policy(WitnessRule.K_OF_N, 2, ["uk", "fr"], ws, {"fr-w"}) == [
        "1 of the 2 cosignature(s) required of the parties' 3 witnesses; missing uk-w, fr-w2"]


def _section(size: int, signers: list[tuple[PartnerWitness, bytes]], head_size: int) -> dict:  # type: ignore[type-arg]
    cp = Checkpoint(ORIGIN, size, TREE.root(size))
    note = sign_checkpoint(cp, LOG_SEED) + "".join(
        cosign(cp, w.key.split("+")[0], seed, 1_700_000_000).line() for w, seed in signers)
    return {"origin": ORIGIN, "policy": {"rule": "every-party", "k": 1},
            "checkpoints": [{"note": note, "consistency_proof": [
                h.hex() for h in TREE.consistency_proof(head_size, size)]}]}


def _head(size: int) -> TreeHead:
    return TreeHead(tree_size=size, root=TREE.root(size), timestamp_ms=0, period="2026-10", log_id="x")


TRUST = WitnessTrust((UK, FR), WitnessRule.EVERY_PARTY, 1)


def test_a_larger_cosigned_tree_vouches_for_the_head_through_its_proof() -> None:
    section = _section(9, [(UK, UK_SEED), (FR, FR_SEED)], 5)
    cosigners, errors = check_witnessing(section, _head(5), public_key_of(LOG_SEED), ["uk", "fr"], TRUST)
    assert (cosigners, errors) == ({"uk-w", "fr-w"}, [])
    section["checkpoints"][0]["consistency_proof"] = []
    _, errors = check_witnessing(section, _head(5), public_key_of(LOG_SEED), ["uk", "fr"], TRUST)
    assert any("does not extend the statement's tree of size 5" in e for e in errors), errors


def test_a_cosignature_by_an_untrusted_key_does_not_count() -> None:
    section = _section(5, [(UK, UK_SEED), (FR, FR2_SEED)], 5)   # France's name, another key
    cosigners, errors = check_witnessing(section, _head(5), public_key_of(LOG_SEED), ["uk", "fr"], TRUST)
    assert cosigners == {"uk-w"}
    assert errors == ["not cosigned as the policy requires (every-party, 1 witness(es) of each party): "
                      "party fr: 0 of the 1 cosignature(s) required; missing fr-w"]


def test_a_checkpoint_the_log_did_not_sign_and_another_policy_are_refused() -> None:
    section = _section(5, [(UK, UK_SEED), (FR, FR_SEED)], 5)
    section["policy"] = {"rule": "k-of-n", "k": 1}
    _, errors = check_witnessing(section, _head(5), public_key_of(UK_SEED), ["uk", "fr"], TRUST)
    assert any(e.startswith("the statement names the policy") for e in errors), errors
    assert any((e.startswith("checkpoint 0:") and "does not verify" in e) or "no signature" in e
               for e in errors), errors
    _, errors = check_witnessing(None, _head(5), public_key_of(LOG_SEED), ["uk", "fr"], TRUST)
    assert errors and errors[0].startswith("the statement carries no cosigned checkpoint")


def test_checkpoints_of_another_log_than_the_federation_files_are_refused() -> None:
    section = _section(5, [(UK, UK_SEED), (FR, FR_SEED)], 5)
    trust = WitnessTrust((UK, FR), WitnessRule.EVERY_PARTY, 1, "accord.example/ledger/other")
    _, errors = check_witnessing(section, _head(5), public_key_of(LOG_SEED), ["uk", "fr"], trust)
    assert errors == [f"the statement's checkpoints are of the log {ORIGIN!r}; the federation file's "
                      "witnesses follow 'accord.example/ledger/other'"]


def test_open_cosigned_names_a_bad_cosignature() -> None:
    section = _section(5, [(UK, UK_SEED)], 5)
    note = section["checkpoints"][0]["note"]
    blob = note.splitlines()[-1].split(" ")[-1]
    bad = note.replace(blob, blob[:30] + ("A" if blob[30] != "A" else "B") + blob[31:])
    opened = open_cosigned(bad, ORIGIN, public_key_of(LOG_SEED), [UK])
    assert opened.cosigners == () and "uk-w (partner uk)" in opened.problems[0]
    assert log_key(ORIGIN, public_key_of(LOG_SEED)).name == ORIGIN


def test_contradictions_name_the_witness_and_the_sizes() -> None:
    trees = [WitnessedTree("uk-w", 9, TREE.root(9), "the hub's record"),
             WitnessedTree("fr-w", 12, TREE.root(9), "st.json"),
             WitnessedTree("fr-w2", 9, b"\x07" * 32, "st.json")]
    found = contradictions(trees, 10, TREE.root)
    assert found[0].startswith("witness fr-w cosigned a tree of 12 entries (st.json); the database holds 10")
    assert found[1].startswith("witness fr-w2 cosigned a tree of 9 entries with root 0707")
    assert found[2].startswith("split view: different trees of 9 entries were cosigned")


WITNESSING = """
[witnessing]
policy = "{policy}"
interval_s = {interval}

[[witnessing.witnesses]]
name = "fr-w"
partner = "{partner}"
url = "{url}"
key = "{key}"
"""


@pytest.mark.parametrize(("changes", "where", "message"), [
    ({"partner": "de"}, "witnessing.witnesses[0].partner", "names an unknown partner"),
    ({"url": "ftp://x"}, "witnessing.witnesses[0].url", "is not an HTTP URL"),
    ({"key": "ed25519:AAAA"}, "witnessing.witnesses[0].key", "verifier key"),
    ({"key": log_key("x.example/log", public_key_of(LOG_SEED)).encode()}, "witnessing.witnesses[0].key",
     "a log key (type 0x01)"),
    ({"policy": "most"}, "witnessing.policy", "is not a known value"),
    ({"interval": "0"}, "witnessing.interval_s", "is out of range"),
])
def test_a_bad_witnessing_table_is_named(changes: dict[str, str], where: str, message: str) -> None:
    fields = {"policy": "every-party", "interval": "300", "partner": "fr", "url": "http://w:1",
              "key": FR.key, **changes}
    with pytest.raises(InvalidInput) as exc:
        parse_federation_text(SMALL_FEDERATION + WITNESSING.format(**fields), "f.toml")
    problems = [(p.where, p.message) for p in exc.value.problems]
    assert any(w.endswith(where) and message in m for w, m in problems), problems


def test_a_good_witnessing_table_is_read() -> None:
    fields = {"policy": "k-of-n", "interval": "60", "partner": "fr", "url": "http://w:1", "key": FR.key}
    fed = parse_federation_text(SMALL_FEDERATION + WITNESSING.format(**fields), "f.toml")
    assert fed.witnessing is not None
    assert (fed.witnessing.rule, fed.witnessing.k, fed.witnessing.interval_s) == (WitnessRule.K_OF_N, 1, 60.0)
    assert fed.witnessing.of_parties(("uk", "fr")) == (PartnerWitness("fr-w", "fr", "http://w:1", FR.key),)
