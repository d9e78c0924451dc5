"""``[witnessing]`` of a federation file: the partners' witnesses and the cosigning policy.

```toml
[witnessing]
policy = "every-party"     # or "k-of-n"
k = 1                      # every-party: witnesses of each party; k-of-n: of all the parties'
interval_s = 300           # the hub asks for cosignatures this often, and at every close
timeout_s = 10             # one add-checkpoint request
origin = "accord.example/ledger/uk-hub"   # optional: the log's name in its checkpoints

[[witnessing.witnesses]]
name = "fr-genci"          # an id, used in statements and messages
partner = "fr"
url = "https://witness.genci.fr/accord"    # add-checkpoint is POSTed to URL/add-checkpoint
key = "witness.genci.fr/accord+1a2b3c4d+BB..."   # as `accord witness keygen` prints it
```

Pure: the reader collects problems with their paths (:class:`~accord.domain.fieldreader.FieldReader`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from accord.domain.errors import InvalidInput
from accord.domain.federation import limits as lim
from accord.domain.federation.model import PartnerWitness, Witnessing, WitnessRule
from accord.domain.fieldreader import FieldReader
from accord.domain.ledger.note import SignatureType, check_key_name, parse_verifier_key

Doc = Mapping[str, object]
KEYS = ("policy", "k", "interval_s", "timeout_s", "origin", "witnesses")
WITNESS_KEYS = ("name", "partner", "url", "key")
URL_LENGTH = 2000


def parse_witnessing(r: FieldReader, doc: Doc, partners: list[str]) -> Witnessing | None:
    """The ``[witnessing]`` table of ``doc`` (None when absent); problems go to ``r``."""
    if "witnessing" not in doc:
        return None
    t = r.table(doc, "witnessing", "")
    r.unknown_keys(t, "witnessing", KEYS)
    witnesses = tuple(_witness(r, w, f"witnessing.witnesses[{i}]", partners) for i, w in
                      enumerate(r.tables(t, "witnesses", "witnessing", max_items=lim.WITNESSES.maximum)))
    if not witnesses:
        r.add("witnessing.witnesses", "names no witness", allowed="one or more [[witnessing.witnesses]]")
    _unique(r, [w.name for w in witnesses], "name")
    _unique(r, [w.key for w in witnesses], "key")
    k = r.integer(t, "k", "witnessing", minimum=1, maximum=lim.WITNESSES.maximum) if "k" in t else 1
    origin = r.text(t, "origin", "witnessing", required=False)
    if origin is not None:
        _check(r, lambda: check_key_name(origin, "origin"), "witnessing.origin", origin,
               "a name with no space or '+', e.g. accord.example/ledger/uk-hub")
    return Witnessing(
        witnesses=witnesses,
        rule=r.choice(t, "policy", "witnessing", WitnessRule, default=WitnessRule.EVERY_PARTY)
        or WitnessRule.EVERY_PARTY,
        k=k or 1,
        interval_s=_seconds(r, t, "interval_s", 300.0, lim.WITNESS_INTERVAL_S.maximum),
        timeout_s=_seconds(r, t, "timeout_s", 10.0, lim.WITNESS_TIMEOUT_S.maximum),
        origin=origin,
    )


def _witness(r: FieldReader, t: Doc, path: str, partners: list[str]) -> PartnerWitness:
    r.unknown_keys(t, path, WITNESS_KEYS)
    partner = r.text(t, "partner", path)
    r.member(partner, f"{path}.partner", partners, "partner")
    url = r.text(t, "url", path, max_length=URL_LENGTH) or ""
    if url and not url.startswith(("http://", "https://")):
        r.add(f"{path}.url", "is not an HTTP URL", url, "http://HOST:PORT[/PREFIX] or https://...")
    key = r.text(t, "key", path, max_length=200) or ""
    if key:
        _check(r, lambda: _cosigner_key(key), f"{path}.key", key,
               "the verifier key `accord witness keygen` prints (name+hex8+base64, type 0x04)")
    return PartnerWitness(name=r.ident(t, "name", path) or "", partner=partner or "", url=url, key=key)


def _cosigner_key(text: str) -> None:
    """Raises:
        InvalidInput: ``text`` is not a type 0x04 verifier key."""
    if parse_verifier_key(text).type is not SignatureType.COSIGNATURE_V1:
        raise InvalidInput.single("key", "is a log key (type 0x01), not a witness's cosignature key")


def _check(r: FieldReader, check: Callable[[], None], where: str, got: str, allowed: str) -> None:
    try:
        check()
    except InvalidInput as exc:
        r.add(where, "; ".join(p.message for p in exc.problems), got[:80], allowed)


def _seconds(r: FieldReader, t: Doc, key: str, default: float, maximum: int) -> float:
    value = r.number(t, key, "witnessing", minimum=1.0, maximum=float(maximum), required=False)
    return default if value is None else value


def _unique(r: FieldReader, values: list[str], key: str) -> None:
    seen: set[str] = set()
    for i, value in enumerate(values):
        if value and value in seen:
            r.add(f"witnessing.witnesses[{i}].{key}", "is used twice", value[:80], "a unique value")
        seen.add(value)
