"""Two partners' witnesses as real processes on loopback (127.0.0.2 and 127.0.0.3; Linux routes
all of 127/8 to lo), one keeping its state in SQLite and one in PostgreSQL: every answer of
C2SP tlog-witness add-checkpoint, and 20 concurrent requests with overlapping sizes that
never roll a witness back."""

from __future__ import annotations

import base64
import contextlib
import io
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from accord.cli import main
from accord.domain.ledger.checkpoint import Checkpoint, default_origin, sign_checkpoint, verify_cosignature
from accord.domain.ledger.merkle import EMPTY_ROOT, MerkleTree
from accord.domain.ledger.note import (
    NoteSignature,
    cosignature_timestamp,
    parse_signature_lines,
    parse_verifier_key,
)
from accord.domain.ledger.signing import generate_private_key, public_key, public_key_to_pem
from accord.domain.ledger.witness import encode_add_checkpoint
from tests.conftest import fresh_pg_schema
from tests.integration.server import stop_group

pytestmark = [pytest.mark.integration]

ORIGIN = default_origin("accord-test")
LOG_SEED = generate_private_key()
TREE = MerkleTree.from_leaves([f"entry {i}".encode() for i in range(64)])
FORK = MerkleTree.from_leaves([f"entry {i}".encode() if i < 2 else b"rewritten" for i in range(72)])
SIZES = [6, 6, 10, 10, 13, 20, 20, 21, 27, 27, 33, 40, 40, 41, 47, 50, 50, 55, 59, 59]
FORKED = {3: 62, 9: 64, 16: 70}   # thread -> size of a forked tree it submits instead


def free_port(host: str) -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        port: int = s.getsockname()[1]
        return port


def accord(*args: str) -> str:
    """Run an ``accord`` command in process; its standard output."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out), pytest.raises(SystemExit) as exit_:
        main(list(args))
    assert exit_.value.code == 0, out.getvalue()
    return out.getvalue()


@dataclass
class WitnessProcess:
    """``accord witness serve`` at ``host``, with its verifier key."""

    host: str
    vkey: str
    process: subprocess.Popen[str]
    url: str

    def post(self, body: bytes, client: httpx.Client | None = None) -> httpx.Response:
        poster = client or httpx
        return poster.post(f"{self.url}/add-checkpoint", content=body, timeout=30)

    def submit(self, old: int, size: int, tree: MerkleTree = TREE, client: httpx.Client | None = None,
               seed: bytes = LOG_SEED, origin: str = ORIGIN) -> httpx.Response:
        proof = tree.consistency_proof(old, size) if 0 < old <= size else ()
        return self.post(encode_add_checkpoint(old, proof, signed(size, tree, seed, origin)), client)

    def current_size(self, client: httpx.Client | None = None) -> int:
        """The size the witness holds, asked as the spec allows: ``old 0`` of the empty tree."""
        answer = self.post(encode_add_checkpoint(0, (), signed(0)), client)
        if answer.status_code == 200:
            return 0
        assert answer.status_code == 409 and answer.headers["content-type"] == "text/x.tlog.size"
        return int(answer.text)


def signed(size: int, tree: MerkleTree = TREE, seed: bytes = LOG_SEED, origin: str = ORIGIN) -> str:
    root = tree.root(size) if size else EMPTY_ROOT
    return sign_checkpoint(Checkpoint(origin, size, root), seed)


def start_witness(tmp: Path, host: str, state: str) -> WitnessProcess:
    """Start ``accord witness serve`` (with a new key) at ``host``; not yet waited for."""
    vkey = accord("witness", "keygen", "--out", str(tmp / "key"), "--name",
                  f"witness.{host}/accord").splitlines()[0]
    pem = tmp / "ledger-signing.pub.pem"
    pem.write_text(public_key_to_pem(public_key(LOG_SEED)))
    port = free_port(host)
    process = subprocess.Popen(
        [sys.executable, "-m", "accord", "witness", "serve", "--key", str(tmp / "key" / "witness.key"),
         "--log", f"{ORIGIN}={pem}", "--state", state, "--port", str(port), "--host", host],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    return WitnessProcess(host, vkey, process, f"http://{host}:{port}")


def wait_answering(process: subprocess.Popen[str], url: str, what: str) -> None:
    """Until the witness at ``url`` answers an add-checkpoint (any status), at most 60 s.

    Raises:
        AssertionError: it exited, or did not answer in time (with its output).
    """
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"{what} exited: {process.communicate()}")
        try:
            httpx.post(f"{url}/add-checkpoint", content=b"", timeout=5)
            return
        except httpx.TransportError:
            time.sleep(0.1)
    raise AssertionError(f"{what} did not answer within 60 s")


def wait_until_up(witness: WitnessProcess) -> None:
    wait_answering(witness.process, witness.url, f"witness at {witness.host}")


def stop(witness: WitnessProcess) -> None:
    stop_group(witness.process)
    witness.process.communicate()


@pytest.fixture
def witnesses(tmp_path: Path, pg_database: str) -> Iterator[list[WitnessProcess]]:
    """Partner A's witness (SQLite) on 127.0.0.2 and partner B's (PostgreSQL) on 127.0.0.3."""
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    started: list[WitnessProcess] = []
    try:
        started.append(start_witness(tmp_path / "a", "127.0.0.2", str(tmp_path / "a" / "state.db")))
        started.append(start_witness(tmp_path / "b", "127.0.0.3", fresh_pg_schema(pg_database)))
        for witness in started:
            wait_until_up(witness)
        yield started
    finally:
        for witness in started:
            stop(witness)


def cosignature(witness: WitnessProcess, answer: httpx.Response, size: int,
                tree: MerkleTree = TREE) -> NoteSignature:
    """The one cosignature line of a 200 answer, checked against the witness's key."""
    assert answer.status_code == 200, answer.text
    [line] = parse_signature_lines(answer.text.splitlines())
    assert answer.text.endswith("\n") and answer.text.startswith("— ")
    key = parse_verifier_key(witness.vkey)
    assert verify_cosignature(Checkpoint(ORIGIN, size, tree.root(size)), key, line)
    assert abs(cosignature_timestamp(line) - time.time()) < 120
    return line


def test_every_answer_of_add_checkpoint(witnesses: list[WitnessProcess]) -> None:
    for w in witnesses:
        cosignature(w, w.submit(0, 5), 5)
        assert w.submit(0, 3, seed=bytes(32), origin="unknown.example/log").status_code == 404
        forbidden = w.submit(5, 9, seed=bytes(32))
        assert forbidden.status_code == 403 and "no signature of a trusted key" in forbidden.text
        malformed = w.post(b"old 01\n\n" + signed(9).encode())
        assert malformed.status_code == 400 and "line 1 (old size)" in malformed.text
        assert w.post(b"old 5\nnot base64\n\n" + signed(9).encode()).status_code == 400
        assert w.post(encode_add_checkpoint(9, (), signed(5))).status_code == 400    # old > size
        stale = w.submit(3, 9)
        assert (stale.status_code, stale.text) == (409, "5\n")
        assert stale.headers["content-type"] == "text/x.tlog.size"
        assert w.submit(5, 5, FORK).status_code == 409          # same size, another root
        bad_proof = w.submit(5, 9, FORK)
        assert bad_proof.status_code == 422 and "does not verify" in bad_proof.text
        wrong_proof = w.post(encode_add_checkpoint(5, TREE.consistency_proof(4, 9), signed(9)))
        assert wrong_proof.status_code == 422
        assert w.current_size() == 5                              # no refusal moved it
        cosignature(w, w.submit(5, 5), 5)                         # the same checkpoint again
        cosignature(w, w.submit(5, 9), 9)
        assert w.current_size() == 9


def run_submitter(w: WitnessProcess, thread: int, start: threading.Barrier,
                  outcomes: list[tuple[int, int, NoteSignature | None]], retries: list[int]) -> None:
    """One client: submit its size from size 4; on 409 retry from the size the witness gives,
    until cosigned, superseded (the witness holds as much or more), or refused (a fork)."""
    tree, size = (FORK, FORKED[thread]) if thread in FORKED else (TREE, SIZES[thread])
    old = 4
    with httpx.Client() as client:
        start.wait()
        while True:
            answer = w.submit(old, size, tree, client)
            if answer.status_code == 409 and int(answer.text) < size:
                old = int(answer.text)
                retries.append(old)
                continue
            line = cosignature(w, answer, size, tree) if answer.status_code == 200 else None
            outcomes.append((size, answer.status_code, line))
            return


def watch(w: WitnessProcess, done: threading.Event, seen: list[int]) -> None:
    with httpx.Client() as client:
        while not done.is_set():
            seen.append(w.current_size(client))


@pytest.mark.parametrize("which", [0, 1], ids=["sqlite-127.0.0.2", "postgresql-127.0.0.3"])
def test_concurrent_overlapping_checkpoints_never_roll_back(witnesses: list[WitnessProcess],
                                                            which: int) -> None:
    w = witnesses[which]
    cosignature(w, w.submit(0, 4), 4)
    outcomes: list[tuple[int, int, NoteSignature | None]] = []
    seen: list[int] = []
    retries: list[int] = []
    start, done = threading.Barrier(len(SIZES)), threading.Event()
    watcher = threading.Thread(target=watch, args=(w, done, seen))
    threads = [threading.Thread(target=run_submitter, args=(w, i, start, outcomes, retries))
               for i in range(len(SIZES))]
    watcher.start()
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    done.set()
    watcher.join(timeout=60)
    assert len(outcomes) == len(SIZES)
    # all start from size 4 at once and only one can move the witness from 4: every other
    # honest client was told 409 at least once (and retried, or found itself superseded)
    final_conflicts = sum(1 for _, status, _ in outcomes if status == 409)
    assert len(retries) + final_conflicts >= len(SIZES) - len(FORKED) - 1
    assert seen == sorted(seen), f"the witness went back: {seen}"
    forks = [o for o in outcomes if o[0] in FORKED.values()]
    assert [status for _, status, _ in forks] == [422] * len(FORKED)
    honest = [o for o in outcomes if o[0] not in FORKED.values()]
    assert {status for _, status, _ in honest} <= {200, 409}
    assert max(size for size, status, _ in honest if status == 200) == max(SIZES)
    assert w.current_size() == max(SIZES)
    cosignature(w, w.submit(max(SIZES), max(SIZES)), max(SIZES))
    assert w.submit(max(SIZES), max(SIZES), FORK).status_code == 409


def test_a_garbage_body_is_400_and_the_root_is_base64(witnesses: list[WitnessProcess]) -> None:
    w = witnesses[0]
    assert w.post(b"\xff\xfe").status_code == 400
    assert w.post(b"old 0\n\n" + b"x" * 70_000).status_code == 400
    answer = w.submit(0, 1)
    line = cosignature(w, answer, 1)
    assert base64.b64encode(line.key_id.to_bytes(4, "big") + line.signature).decode() in answer.text
