"""The hub's record of its witnesses (migration 0012) on SQLite and PostgreSQL, and host-attested
entries in statements: each usage entry the host signed carries the host's signed usage, which
``statement verify`` checks against the site's keys (a forged, re-keyed or missing attestation
is named)."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from accord.adapters.clock import FakeClock
from accord.adapters.sql.cosign_store import SqlCosignatures
from accord.adapters.sql.ledger_store import SqlLedger
from accord.adapters.sql.store import SqlStore
from accord.domain.agent import attest
from accord.domain.agent.protocol import SignedUsage
from accord.domain.federation.model import Federation
from accord.domain.ledger import signing
from accord.domain.ledger.cosigned import HostKeys
from accord.domain.ledger.merkle import EMPTY_ROOT
from accord.domain.ledger.statement import sign_statement, verify_statement
from accord.ports.witnesses import StoredCosignature
from accord.service.ledger import LedgerService
from tests.contract.test_ledger_store import START, usage

AT = datetime(2026, 11, 1, tzinfo=UTC)


def cosig(witness: str, size: int, root: bytes = b"\x01" * 32) -> StoredCosignature:
    return StoredCosignature(witness, size, root, "accord.example/ledger/x", f"— {witness} AAAA\n",
                             1700000000)


@pytest.fixture
def store(db_url: str) -> Iterator[SqlStore]:
    s = SqlStore(db_url)
    yield s
    s.close()


def test_a_witness_size_only_grows_and_failures_keep_it(store: SqlStore) -> None:
    record = SqlCosignatures(store)
    record.record_failure("fr-w", "witness fr-w at http://x: unreachable: connection refused", AT)
    fr = record.statuses()["fr-w"]
    assert (fr.size, fr.root, fr.cosigned_at) == (0, EMPTY_ROOT, None) and "refused" in (fr.error or "")
    record.record_cosignature(cosig("fr-w", 5), AT)
    record.record_cosignature(cosig("fr-w", 3), AT + timedelta(seconds=1))   # a slower collection
    record.record_cosignature(cosig("fr-w", 5), AT + timedelta(seconds=2))   # the same, again
    fr = record.statuses()["fr-w"]
    assert (fr.size, fr.error, fr.cosigned_at) == (5, None, AT + timedelta(seconds=2))
    record.record_failure("fr-w", "answered 503", AT + timedelta(seconds=3))
    assert record.statuses()["fr-w"].size == 5
    assert [(c.witness, c.size) for c in record.cosignatures()] == [("fr-w", 3), ("fr-w", 5)]


def test_covering_gives_each_witness_its_smallest_tree_at_least_that_large(store: SqlStore) -> None:
    record = SqlCosignatures(store)
    for witness, size in (("uk-w", 2), ("uk-w", 4), ("uk-w", 9), ("fr-w", 7)):
        record.record_cosignature(cosig(witness, size), AT)
    assert {w: c.size for w, c in record.covering(3).items()} == {"uk-w": 4, "fr-w": 7}
    assert {w: c.size for w, c in record.covering(8).items()} == {"uk-w": 9}
    assert record.covering(10) == {}


def test_pruning_keeps_what_statements_need(store: SqlStore) -> None:
    record = SqlCosignatures(store)
    for witness, size in (("uk-w", 2), ("uk-w", 4), ("uk-w", 6), ("uk-w", 9), ("fr-w", 3), ("fr-w", 7)):
        record.record_cosignature(cosig(witness, size), AT)
    before = {w: c.size for w, c in record.covering(3).items()}
    assert record.prune([3, 5]) == 1      # uk-w's 2 covers no closure and is not its largest
    assert [(c.witness, c.size) for c in record.cosignatures()] == [
        ("fr-w", 3), ("fr-w", 7), ("uk-w", 4), ("uk-w", 6), ("uk-w", 9)]
    assert {w: c.size for w, c in record.covering(3).items()} == before
    assert record.prune([]) == 3          # no closure: only the largest of each


# ------------------------------------------------------------------ host attestations
SITE_SEED = bytes(range(32))
OTHER_SEED = bytes(range(1, 33))


def signed_usage(i: int, seed: bytes = SITE_SEED, **changes: Any) -> SignedUsage:
    r = usage(i)
    u = attest.Usage(r.site, r.id, r.job_id, "7", "paris-cluster", "completed", r.start, r.end,
                     r.gpus, r.gpu_seconds, 0, None)
    return attest.sign(replace(u, **changes), seed)


@pytest.fixture
def attested(store: SqlStore, small_federation: Federation) -> dict[str, Any]:
    """A ledger of two host-attested usage records and one whose attestation the hub lost;
    its statement for 2026-10."""
    signed = {s.body: s for s in (signed_usage(0), signed_usage(1), signed_usage(2))}
    by_digest = {attest.digest(b): ("paris", s) for b, s in signed.items()}
    lost = attest.digest(signed_usage(2).body)
    key = signing.generate_private_key()
    ledger = LedgerService(small_federation, SqlLedger(store), FakeClock(START + timedelta(days=40)),
                           key, "test-log",
                           attestations=lambda d: None if d == lost else by_digest.get(d))
    for i in (0, 1, 2):
        store.add_usage(replace(usage(i), attestation=attest.digest(signed_usage(i).body)))
    store.add_usage(usage(3))   # a local site's job: no attestation to carry
    ledger.post_pending()
    return {"doc": ledger.statement("uk-fr", "2026-10"), "key": key,
            "public": signing.public_key(key)}


SITE_KEY = Ed25519PrivateKey.from_private_bytes(SITE_SEED).public_key().public_bytes_raw()
HOSTS = HostKeys({"paris": (SITE_KEY,)}, frozenset())


def test_each_attested_entry_carries_the_hosts_signed_usage(attested: dict[str, Any]) -> None:
    doc = attested["doc"]
    carried = [e["attestation"] for e in doc["entries"]]
    assert [a is not None for a in carried] == [True, True, False, False]
    assert carried[0]["site"] == "paris" and carried[0]["key_id"] == attest.key_id(HOSTS.keys["paris"][0])
    errors = verify_statement(doc, attested["public"], hosts=HOSTS)
    assert errors == ["entry 2 (leaf 2, usage:paris:1002): its host attestation "
                      f"{json.loads(doc['entries'][2]['body'])['memo']['usage_attestation'][:16]}… "
                      "is missing from the statement"]


def test_a_forged_attestation_is_named(attested: dict[str, Any]) -> None:
    doc = copy.deepcopy(attested["doc"])
    # the statement is signed again below: the forger is the operator
    forged_body = signed_usage(0, gpu_seconds=1.0)
    doc["entries"][0]["attestation"]["body"] = forged_body.body
    rekeyed = signed_usage(1, seed=OTHER_SEED)
    doc["entries"][1]["attestation"].update(key_id=rekeyed.key_id, signature=rekeyed.signature)
    doc.pop("signature")
    errors = verify_statement(sign_statement(doc, attested["key"]), attested["public"], hosts=HOSTS)
    assert any(e.startswith("entry 0 (leaf 0, usage:paris:1000): the attested usage is not the one "
                            "the entry names") for e in errors), errors
    assert any(e.startswith("entry 1 (leaf 1, usage:paris:1001): its host attestation does not verify")
               and "is not a key of this site" in e for e in errors), errors


def test_an_agent_sites_entry_without_attestation_is_named(attested: dict[str, Any]) -> None:
    hosts = HostKeys(HOSTS.keys, frozenset({"paris"}))
    doc = attested["doc"]
    errors = verify_statement(doc, attested["public"], hosts=hosts)
    assert any("leaf 3" in e and "names no host attestation" in e for e in errors), errors
