"""The composition root of a witness (``accord witness serve``): a partner's cosigner of the
ledger (``docs/design/witnesses.md``).

A small HTTP server implementing C2SP ``tlog-witness``'s ``add-checkpoint``: the witness's
key (a signed-note signer key file from ``accord witness keygen``), the logs it follows
(origin and the log's public key(s)), and its state in a database of its own
(:class:`~accord.adapters.witness_state.SqlWitnessState`). The decisions are the domain's
(:mod:`accord.domain.ledger.witness`); here they meet the clock, the database and HTTP.
"""

from __future__ import annotations

import base64
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from accord.adapters.witness_state import SqlWitnessState, state_url
from accord.domain.errors import InvalidInput, Problem, Unavailable
from accord.domain.ledger.checkpoint import cosign, log_key, witness_key
from accord.domain.ledger.note import (
    SignatureType,
    VerifierKey,
    check_key_name,
    encode_signer_key,
    parse_signer_key,
    parse_verifier_key,
    public_key_of,
)
from accord.domain.ledger.signing import generate_private_key, public_key_from_pem
from accord.domain.ledger.witness import (
    SIZE_CONTENT_TYPE,
    Judgement,
    LogState,
    Submission,
    Verdict,
    admit,
    judge,
)

PRIVATE = "witness.key"
PUBLIC = "witness.pub"
MAX_BODY = 64 * 1024
"""The largest request body accepted: a checkpoint, 63 proof lines and a few signatures."""
MAX_RACES = 1000
"""How often one request re-judges after losing a compare-and-swap (each loss is progress)."""


@dataclass(frozen=True, slots=True)
class WitnessOptions:
    """``accord witness serve``'s options."""

    key: Path
    logs: tuple[str, ...]
    state: str
    port: int
    host: str = "127.0.0.1"


@dataclass(frozen=True, slots=True)
class Answer:
    """An HTTP answer: status, body and media type."""

    status: int
    body: str
    content_type: str = "text/plain; charset=utf-8"


def keygen(out: Path, name: str) -> str:
    """Make the witness's key in ``out``: ``witness.key`` (a signed-note signer key, mode
    0600) and ``witness.pub`` (its cosignature verifier key, type 0x04); the latter's text.

    Raises:
        InvalidInput: the name is not a valid key name, a key is already there (never
            overwritten), or ``out`` cannot be written.
    """
    check_key_name(name, "--name")
    seed = generate_private_key()
    vkey = witness_key(name, public_key_of(seed)).encode()
    try:
        out.mkdir(parents=True, exist_ok=True)
        fd = os.open(out / PRIVATE, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise InvalidInput([Problem("--out", "a witness key is already there; it is never overwritten",
                                    str(out / PRIVATE), "another directory")]) from None
    except OSError as exc:
        raise InvalidInput([Problem("--out", f"cannot write the key: {exc.strerror}", str(out))]) from exc
    with os.fdopen(fd, "w") as fh:
        fh.write(encode_signer_key(name, seed) + "\n")
    (out / PUBLIC).write_text(vkey + "\n")
    return vkey


def load_key(path: Path) -> tuple[str, bytes]:
    """The witness's name and Ed25519 seed from its key file.

    Raises:
        InvalidInput: the file cannot be read or is not a signer key.
    """
    try:
        content = path.read_text()
    except OSError as exc:
        raise InvalidInput([Problem("--key", f"cannot read the witness key: {exc.strerror}",
                                    str(path), "the witness.key 'accord witness keygen' wrote")]) from exc
    return parse_signer_key(content)


def parse_logs(specs: Sequence[str]) -> dict[str, tuple[VerifierKey, ...]]:
    """The followed logs of ``--log ORIGIN=PUBKEY`` options: origin -> trusted keys.

    ``PUBKEY`` is a signed-note verifier key (``name+hex8+base64``, type 0x01),
    ``ed25519:BASE64`` or the base64 of the raw 32-byte key, or the path of a PEM public
    key (the ledger's ``ledger-signing.pub.pem``); the last three are named as the origin.
    Repeating an origin adds a key (a log rotating its key).

    Raises:
        InvalidInput: naming every ``--log`` that is malformed.
    """
    logs: dict[str, tuple[VerifierKey, ...]] = {}
    problems: list[Problem] = []
    for spec in specs:
        origin, sep, material = spec.partition("=")
        try:
            if not sep or not material:
                raise InvalidInput.single("--log", "must be ORIGIN=PUBKEY", got=spec)
            key = _log_key(origin, material)
        except InvalidInput as exc:
            problems += [Problem(f"--log {spec[:60]}", p.render()) for p in exc.problems]
            continue
        logs[origin] = (*logs.get(origin, ()), key)
    if problems:
        raise InvalidInput(problems)
    if not logs:
        raise InvalidInput([Problem("--log", "a witness must follow at least one log",
                                    allowed="--log ORIGIN=PUBKEY, repeated")])
    return logs


def _log_key(origin: str, material: str) -> VerifierKey:
    check_key_name(origin, "origin")
    if "+" in material and not material.startswith("ed25519:"):
        key = parse_verifier_key(material)
        if key.type is not SignatureType.ED25519:
            raise InvalidInput.single("PUBKEY", "a log's key signs with type 0x01 (Ed25519)",
                                      got=key.type.name)
        return key
    if material.startswith("ed25519:") or not Path(material).is_file():
        blob = material.removeprefix("ed25519:")
        try:
            return log_key(origin, base64.b64decode(blob, validate=True))
        except ValueError as exc:
            raise InvalidInput.single("PUBKEY", "not base64, a vkey or a PEM file", got=blob) from exc
    return log_key(origin, public_key_from_pem(Path(material).read_bytes()))


class Witness:
    """One witness: its key, the logs it follows, its state and its clock."""

    def __init__(self, name: str, seed: bytes, logs: Mapping[str, Sequence[VerifierKey]],
                 state: SqlWitnessState, clock: Callable[[], float] = time.time) -> None:
        self.name = name
        self.seed = seed
        self.logs = logs
        self.state = state
        self.clock = clock

    @property
    def verifier_key(self) -> str:
        """The witness's cosignature verifier key (``name+hex8+base64(0x04 || key)``)."""
        return witness_key(self.name, public_key_of(self.seed)).encode()

    def add_checkpoint(self, body: bytes) -> Answer:
        """Answer one ``add-checkpoint`` request body (see :mod:`accord.domain.ledger.witness`).

        Raises:
            Unavailable: the state database cannot be reached.
        """
        admitted = admit(body, self.logs)
        if isinstance(admitted, Judgement):
            return _refusal(admitted)
        for _ in range(MAX_RACES):
            stored = self.state.get(admitted.checkpoint.origin)
            judgement = judge(admitted, stored)
            if judgement.verdict is not Verdict.COSIGNED:
                return _refusal(judgement)
            new = LogState(admitted.checkpoint.size, admitted.checkpoint.root)
            if self.state.advance(admitted.checkpoint.origin, stored, new):
                return self._cosigned(admitted)
        raise Unavailable(f"{admitted.checkpoint.origin}: the state kept moving; try again")

    def _cosigned(self, admitted: Submission) -> Answer:
        signature = cosign(admitted.checkpoint, self.name, self.seed, int(self.clock()))
        return Answer(200, signature.line())


def _refusal(judgement: Judgement) -> Answer:
    if judgement.current_size is not None:
        return Answer(judgement.verdict.status, f"{judgement.current_size}\n", SIZE_CONTENT_TYPE)
    return Answer(judgement.verdict.status, judgement.reason + "\n")


def create_app(witness: Witness) -> FastAPI:
    """The ASGI app: ``POST /add-checkpoint`` (bodies over 64 KiB are refused, 400)."""
    app = FastAPI(title=f"Accord witness {witness.name}", docs_url=None, redoc_url=None,
                  openapi_url=None)

    @app.post("/add-checkpoint")
    async def add_checkpoint(request: Request) -> Response:
        body = await request.body()
        if len(body) > MAX_BODY:
            answer = Answer(400, f"the body is over {MAX_BODY} bytes\n")
        else:
            try:
                answer = await run_in_threadpool(witness.add_checkpoint, body)
            except Unavailable as exc:
                answer = Answer(503, f"{exc}\n")
        # the header as given: Starlette would append "; charset=utf-8" to a media_type
        return Response(answer.body.encode("utf-8"), status_code=answer.status,
                        headers={"content-type": answer.content_type})

    return app


def build(options: WitnessOptions) -> Witness:
    """The witness of ``options``: key, logs and state, checked before serving.

    Raises:
        InvalidInput: a bad port, key or ``--log``.
        Unavailable: the state database cannot be opened.
    """
    if not 0 < options.port < 65536:
        raise InvalidInput([Problem("--port", "is not a TCP port", str(options.port), "1..65535")])
    name, seed = load_key(options.key)
    logs = parse_logs(options.logs)
    return Witness(name, seed, logs, SqlWitnessState(state_url(options.state)))


def serve(options: WitnessOptions) -> None:
    """Run the witness until interrupted.

    Raises:
        InvalidInput, Unavailable: as :func:`build`.
    """
    import uvicorn

    witness = build(options)
    url = f"http://{options.host}:{options.port}"
    print(f"witness {witness.verifier_key} is up at {url}, following "
          f"{', '.join(sorted(witness.logs))}", flush=True)
    try:
        uvicorn.run(create_app(witness), host=options.host, port=options.port,
                    log_level="warning", access_log=False)
    finally:
        witness.state.close()
