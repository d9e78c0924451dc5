"""The hub collects its partners' witnesses' cosignatures (issue 21, items 3 and 5), with two
real ``accord witness serve`` processes — the UK's on 127.0.0.2 (SQLite state) and France's on
127.0.0.3 (PostgreSQL state) — and the hub's ledger service over its own database:

- a closed period's statement carries both cosignatures and verifies offline against the
  federation file; one missing a required cosigner, or with a bad cosignature, does not;
- a witness that is down leaves the statement provisional, saying why, and it completes once
  the witness is back and the next collection ran;
- a database rewritten from scratch (every hash recomputed, the closures deleted), a truncated
  log, and a split view (two trees of one size shown to the two witnesses) are each caught by
  ``accord ledger verify``, naming the witness and the sizes.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import text

from accord.adapters import keys
from accord.adapters.clock import FakeClock
from accord.adapters.federation_file import parse_federation_text
from accord.adapters.sql.store import SqlStore
from accord.compose import ledger_service
from accord.domain.ledger.checkpoint import Checkpoint, default_origin, sign_checkpoint
from accord.domain.ledger.cosigned import WitnessTrust
from accord.domain.ledger.entries import chain_hash
from accord.domain.ledger.merkle import MerkleTree
from accord.domain.ledger.note import parse_note
from accord.domain.ledger.statement import sign_statement, verify_statement
from accord.domain.ledger.witness import encode_add_checkpoint
from accord.service.ledger import LedgerService
from tests.conftest import SMALL_FEDERATION, fresh_pg_schema
from tests.contract.test_ledger_store import usage
from tests.integration.test_witness import accord
from tests.integration.witnesses import PartnerWitnessProcess

pytestmark = [pytest.mark.integration]

ORIGIN = default_origin("accord-cosign-test")
NOW = datetime(2026, 12, 20, 12, tzinfo=UTC)


class Hub:
    """The hub's ledger over its data directory, and the two partners' witnesses."""

    def __init__(self, data: Path, witnesses: list[PartnerWitnessProcess]) -> None:
        self.data = data
        self.witnesses = witnesses
        self.fed_path = data / "federation.toml"
        self.fed_path.write_text(SMALL_FEDERATION + WITNESSING + "".join(w.toml() for w in witnesses))
        self.federation = parse_federation_text(self.fed_path.read_text(), "federation.toml")
        self.key = keys.load_or_create(data)
        self.store = SqlStore(f"sqlite:///{data / 'accord.db'}")
        self.clock = FakeClock(NOW)
        self.ledger: LedgerService = ledger_service(self.federation, self.store, self.clock, self.key)

    def post(self, *numbers: int) -> None:
        for i in numbers:
            self.store.add_usage(usage(i))
        self.ledger.post_pending()

    def trust(self) -> WitnessTrust:
        w = self.federation.witnessing
        assert w is not None
        return WitnessTrust(w.witnesses, w.rule, w.k)

    def verify_cli(self, *args: str) -> tuple[int, str]:
        """``accord ledger verify`` on the hub's data directory; exit status and its output."""
        import contextlib
        import io

        from accord.cli import main

        out, err = io.StringIO(), io.StringIO()
        with pytest.MonkeyPatch.context() as mp:
            mp.setenv("ACCORD_FEDERATION", str(self.fed_path))
            mp.delenv("ACCORD_DATABASE_URL", raising=False)
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err), \
                    pytest.raises(SystemExit) as exit_:
                main(["ledger", "verify", "--data-dir", str(self.data), *args])
        return int(exit_.value.code or 0), out.getvalue() + err.getvalue()


WITNESSING = f"""
[witnessing]
policy = "every-party"
interval_s = 1
timeout_s = 3
origin = "{ORIGIN}"
"""


@pytest.fixture
def hub(tmp_path: Path, pg_database: str) -> Iterator[Hub]:
    data = tmp_path / "data"
    data.mkdir()
    pem = data / keys.PUBLIC
    keys.load_or_create(data)
    witnesses = [
        PartnerWitnessProcess("uk-w", "uk", "127.0.0.2", tmp_path / "uk", str(tmp_path / "uk.db"),
                              f"{ORIGIN}={pem}"),
        PartnerWitnessProcess("fr-w", "fr", "127.0.0.3", tmp_path / "fr", fresh_pg_schema(pg_database),
                              f"{ORIGIN}={pem}"),
    ]
    try:
        for w in witnesses:
            w.keygen()
            w.start()
        h = Hub(data, witnesses)
        yield h
        h.store.close()
    finally:
        for w in witnesses:
            w.stop()


def test_a_closed_period_is_cosigned_by_every_party(hub: Hub, tmp_path: Path) -> None:
    hub.post(0, 1, 2)
    hub.ledger.close_period("2026-10")
    doc = hub.ledger.statement("uk-fr", "2026-10")
    assert doc["status"] == "closed" and doc["provisional_reasons"] == []
    assert doc["witnessing"]["cosigners"] == ["fr-w", "uk-w"]
    assert doc["witnessing"]["missing"] == []
    assert verify_statement(doc, hub.ledger.public_key, witnesses=hub.trust()) == []
    path = tmp_path / "st.json"
    path.write_text(json.dumps(doc))
    out = accord("statement", "verify", str(path), "--key", str(hub.data / keys.PUBLIC),
                 "--federation", str(hub.fed_path))
    assert "cosigned by fr-w, uk-w" in out
    uk, fr = (w.vkey for w in hub.witnesses)
    out = accord("statement", "verify", str(path), "--key", str(hub.data / keys.PUBLIC),
                 "--witness", uk, "--witness", fr)
    assert "cosigned by fr-w, uk-w" in out
    code, err = _statement_verify(path, hub, "--witness", uk)    # France's key not pinned
    assert code == 2 and "party fr: 0 of the 1 cosignature(s) required; missing fr-w" in err


def _statement_verify(path: Path, hub: Hub, *args: str) -> tuple[int, str]:
    import contextlib
    import io

    from accord.cli import main

    err = io.StringIO()
    with contextlib.redirect_stderr(err), pytest.raises(SystemExit) as exit_:
        main(["statement", "verify", str(path), "--key", str(hub.data / keys.PUBLIC), *args])
    return int(exit_.value.code or 0), err.getvalue()


def test_statement_verify_rejects_a_missing_cosigner_and_a_bad_cosignature(hub: Hub) -> None:
    hub.post(0, 1)
    hub.ledger.close_period("2026-10")
    doc = hub.ledger.statement("uk-fr", "2026-10")
    fr_line = next(line for line in doc["witnessing"]["checkpoints"][0]["note"].splitlines(keepends=True)
                   if "witness.fr" in line)
    missing = _resigned(hub, doc, lambda note: note.replace(fr_line, ""))
    errors = verify_statement(missing, hub.ledger.public_key, witnesses=hub.trust())
    assert any("party fr: 0 of the 1 cosignature(s) required; missing fr-w" in e for e in errors), errors
    blob = fr_line.split(" ")[-1]
    flipped = blob[:20] + ("A" if blob[20] != "A" else "B") + blob[21:]
    bad = _resigned(hub, doc, lambda note: note.replace(blob, flipped))
    errors = verify_statement(bad, hub.ledger.public_key, witnesses=hub.trust())
    assert any("cosignature of witness fr-w (partner fr)" in e and "does not verify" in e
               for e in errors), errors


def _resigned(hub: Hub, doc: dict, edit) -> dict:  # type: ignore[no-untyped-def,type-arg]
    """The statement with its checkpoint note edited, signed again by the operator (the forger)."""
    forged = copy.deepcopy(doc)
    cp = forged["witnessing"]["checkpoints"][0]
    cp["note"] = edit(cp["note"])
    forged.pop("signature")
    return sign_statement(forged, hub.key)


def test_a_witness_down_leaves_the_statement_provisional_until_it_returns(hub: Hub) -> None:
    fr = hub.witnesses[1]
    fr.stop()
    hub.post(0, 1)
    hub.ledger.close_period("2026-10")
    doc = hub.ledger.statement("uk-fr", "2026-10")
    assert doc["status"] == "provisional"
    assert doc["witnessing"]["cosigners"] == ["uk-w"]
    reason = doc["provisional_reasons"][0]
    assert reason.startswith(f"witness fr-w at {fr.url}: unreachable: connection refused"), reason
    assert any("missing fr-w" in e for e in verify_statement(doc, hub.ledger.public_key,
                                                             witnesses=hub.trust()))
    hub.post(3)                     # the ledger grows while France's witness is down
    fr.start()
    outcomes = hub.ledger.collect_cosignatures()   # the next interval's collection
    assert [o.error for o in outcomes] == ["", ""]
    doc = hub.ledger.statement("uk-fr", "2026-10")
    assert doc["status"] == "closed" and doc["witnessing"]["cosigners"] == ["fr-w", "uk-w"]
    sizes = sorted(parse_note(c["note"]).text.split("\n")[1] for c in doc["witnessing"]["checkpoints"])
    assert sizes == ["2", "3"]      # the UK's cosigned the close, France's the tree after it
    assert verify_statement(doc, hub.ledger.public_key, witnesses=hub.trust()) == []


def test_a_rewrite_from_scratch_is_caught(hub: Hub, tmp_path: Path) -> None:
    hub.post(0, 1, 2)
    hub.ledger.close_period("2026-10")
    statement = tmp_path / "st.json"
    statement.write_text(json.dumps(hub.ledger.statement("uk-fr", "2026-10")))
    assert hub.verify_cli("--ask-witnesses")[0] == 0
    _rewrite(hub.store, forget_witnesses=False)
    assert hub.ledger.verify(ask_witnesses=False).ok is False
    code, out = hub.verify_cli()
    assert code == 2 and "witness uk-w cosigned a tree of 3 entries" in out and "rewritten" in out
    _rewrite(hub.store, forget_witnesses=True)     # the forger deletes the hub's record too
    assert hub.verify_cli()[0] == 0                # the database alone cannot tell
    code, out = hub.verify_cli("--statement", str(statement))
    assert code == 2 and "witness fr-w cosigned a tree of 3 entries" in out and str(statement) in out
    code, out = hub.verify_cli("--ask-witnesses")
    assert code == 2 and "witness uk-w at" in out and "witness fr-w at" in out, out
    assert "has cosigned a tree of 3 entries that the database's tree of 3 does not extend" in out


def test_a_truncated_log_is_caught(hub: Hub) -> None:
    hub.post(0, 1, 2, 3)
    hub.ledger.collect_cosignatures()
    with hub.store.engine.begin() as conn:
        conn.execute(text("DELETE FROM ledger_entries WHERE seq >= 2"))
        last = conn.execute(text("SELECT hash FROM ledger_entries WHERE seq = 1")).scalar_one()
        conn.execute(text("UPDATE ledger_head SET seq = 1, hash = :h"), {"h": last})
        conn.execute(text("DELETE FROM witness_cosignatures"))
        conn.execute(text("DELETE FROM witness_status"))
    code, out = hub.verify_cli("--ask-witnesses")
    assert code == 2, out
    assert "witness fr-w at" in out and "has cosigned a tree of 4 entries; the database holds 2" in out


def test_a_split_view_is_caught(hub: Hub) -> None:
    hub.post(0, 1, 2)
    uk, fr = hub.witnesses
    real = MerkleTree.build([_leaf(b) for b in hub.ledger.ledger.leaf_bodies(3)])
    other = MerkleTree.from_leaves([b"a", b"different", b"tree"])
    cosigned = {}
    for w, tree in ((uk, real), (fr, other)):   # the operator shows each witness another tree
        note = sign_checkpoint(Checkpoint(ORIGIN, 3, tree.root()), hub.key)
        answer = _post(w, encode_add_checkpoint(0, (), note))
        assert answer.status_code == 200, answer.text
        cosigned[w.name] = note + answer.text
    forged = {"witnessing": {"origin": ORIGIN, "checkpoints": [{"note": cosigned["fr-w"]}]}}
    report = hub.ledger.verify([("france's statement", forged)])
    assert not report.ok
    assert "witness fr-w cosigned a tree of 3 entries" in report.problem
    assert "(france's statement)" in report.problem
    code, out = hub.verify_cli("--ask-witnesses")
    assert code == 2 and f"witness fr-w at {fr.url} has cosigned a tree of 3 entries" in out
    assert "uk-w" not in out.split("FAILED")[1]


def _post(w: PartnerWitnessProcess, body: bytes):  # type: ignore[no-untyped-def]
    import httpx

    return httpx.post(f"{w.url}/add-checkpoint", content=body, timeout=10)


def _leaf(body: bytes) -> bytes:
    from accord.domain.ledger.merkle import leaf_hash

    return leaf_hash(body)


def _rewrite(store: SqlStore, *, forget_witnesses: bool) -> None:
    """The rewrite attack: every entry's body edited (its time), every hash recomputed, the
    chain head moved, the closures deleted; with ``forget_witnesses``, the hub's record of
    the witnesses too. The database is then consistent with itself."""
    with store.engine.begin() as conn:
        rows = conn.execute(text("SELECT seq, body FROM ledger_entries ORDER BY seq")).all()
        prev = "0" * 64
        for seq, old in rows:
            doc = json.loads(old)
            doc["recorded_at"] = doc["recorded_at"].replace("2026", "2025", 1)
            doc["prev_hash"] = prev
            body = json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
            prev = chain_hash(prev, body.encode())
            conn.execute(text("UPDATE ledger_entries SET body = :b, hash = :h WHERE seq = :s"),
                         {"b": body, "h": prev, "s": seq})
        conn.execute(text("UPDATE ledger_head SET hash = :h"), {"h": prev})
        conn.execute(text("DELETE FROM ledger_closures"))
        if forget_witnesses:
            conn.execute(text("DELETE FROM witness_cosignatures"))
            conn.execute(text("DELETE FROM witness_status"))


def test_the_hubs_record_is_kept_per_witness(hub: Hub) -> None:
    hub.post(0)
    assert [o.error for o in hub.ledger.collect_cosignatures()] == ["", ""]
    assert hub.ledger.cosigner is not None
    statuses = hub.ledger.cosigner.store.statuses()
    assert {n: s.size for n, s in statuses.items()} == {"uk-w": 1, "fr-w": 1}
    hub.post(1, 2)
    with hub.store.engine.begin() as conn:    # the hub forgets France's witness's size
        conn.execute(text("DELETE FROM witness_status WHERE witness = 'fr-w'"))
    assert [o.error for o in hub.ledger.collect_cosignatures()] == ["", ""]   # its 409 taught it
    assert {n: s.size for n, s in hub.ledger.cosigner.store.statuses().items()} == {"uk-w": 3, "fr-w": 3}
    hub.clock.advance(timedelta(days=1).total_seconds())
    assert hub.ledger.cosigner.last_cosigned_at() == NOW
