"""The books: ``accord ledger``, ``accord statement`` and ``accord emissions``.

``accord ledger verify`` reads the store directly — one that exists: it never creates
one — or, with ``--via-server`` (or ``--server URL``), asks the running server;
``accord statement verify FILE`` needs only the file and the operator's public key; the
rest are thin shells over the API's ledger, statement and emissions routes.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from accord.cli.common import EXIT_INPUT, Command, Doc, output, segment
from accord.domain.errors import InvalidInput, Problem

if TYPE_CHECKING:
    from accord.client import Client
    from accord.domain.ledger.cosigned import HostKeys, WitnessTrust

PERIOD_NEEDED = Problem("--period", "is required", allowed="YYYY-MM")


# ---------------------------------------------------------------------------- arguments
def _ledger_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("action", choices=["verify", "balances", "entries", "close", "correct", "key",
                                           "reconcile"])
    parser.add_argument("entry", nargs="?", help="entry id (correct)")
    parser.add_argument("--agreement")
    parser.add_argument("--period", help="YYYY-MM")
    parser.add_argument("--job")
    parser.add_argument("--kind", choices=["refund", "reversal", "manual_credit"])
    parser.add_argument("--units")
    parser.add_argument("--reason")
    parser.add_argument("--author")
    parser.add_argument("--early", action="store_true",
                        help="close: close the current month before it has ended; usage of the rest "
                             "of the month is then booked to the next open period")
    parser.add_argument("--statement", action="append", default=[], type=Path, dest="statements",
                        metavar="FILE", help="verify: also check the trees the witnesses cosigned in "
                        "this statement against the database (repeatable)")
    parser.add_argument("--ask-witnesses", action="store_true",
                        help="verify: also submit the database's current tree to every witness of the "
                             "federation file: one holding a larger tree, or one this tree does not "
                             "extend, proves a truncation, a rewrite or a fork")
    parser.add_argument("--via-server", action="store_true",
                        help="verify: through the running server (found as other commands find it; "
                             "--server URL implies it) instead of reading the database directly")


def _statement_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("verify_args", nargs="*", metavar="verify FILE")
    parser.add_argument("--agreement")
    parser.add_argument("--period", help="YYYY-MM")
    parser.add_argument("--format", choices=["json", "html", "csv"], default="json")
    parser.add_argument("--out", type=Path, help="write to this file instead of stdout")
    parser.add_argument("--key", type=Path, help="the operator's public key (PEM) to verify with")
    parser.add_argument("--previous", type=Path, help="an earlier statement this one must extend")
    parser.add_argument("--federation", type=Path, dest="trust_federation", metavar="FILE",
                        help="verify: the federation file whose witnesses, policy and site keys "
                             "to check the statement's cosignatures and host attestations against")
    parser.add_argument("--witness", action="append", default=[], metavar="VKEY",
                        help="verify, without --federation: a witness verifier key to trust "
                             "(repeatable); the policy is then the statement's own")


def _emissions_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--group", default="project",
                        choices=["project", "site", "partner", "host_partner", "requester_partner",
                                 "agreement"], help="what to total by (partner: the host partner)")
    parser.add_argument("--period", help="YYYY-MM: jobs whose run started that month (UTC)")


# ---------------------------------------------------------------------------- without a server
def ledger_offline(args: argparse.Namespace) -> int | None:
    """``accord ledger verify`` runs here (unless it goes through the server); the other
    actions need the server (None)."""
    if args.action != "verify" or args.via_server or args.server:
        return None
    return verify_ledger(args)


def statement_offline(args: argparse.Namespace) -> int | None:
    """``accord statement verify FILE`` runs here; fetching a statement needs the server."""
    return verify_statement(args) if args.verify_args else None


def verify_ledger(args: argparse.Namespace) -> int:
    """Verify the ledger straight from the store (no server needed); 0 when it verifies
    (or is empty, which it says), :data:`EXIT_INPUT` when it does not.

    Raises:
        InvalidInput: no Accord data directory, or no store to verify (nothing is created).
        NotFound: the database named holds no Accord ledger.
        Unavailable: the database cannot be reached.
    """
    from accord.adapters.federation_file import load_federation
    from accord.adapters.sql.existing import open_existing, shown
    from accord.runtime import Settings, build_ledger

    settings = Settings.resolve(args.data_dir)
    _check_local(settings.data_dir, settings.database_url)
    statements = [(str(p), _read_json(p, "--statement")) for p in args.statements]
    store = open_existing(settings.database_url)
    try:
        report = build_ledger(load_federation(settings.federation_path), store,
                              settings.data_dir).verify(statements, args.ask_witnesses)
    finally:
        store.close()
    out = {"ok": report.ok, "entries": report.entries, "closures": report.closures,
           "first_bad_seq": report.first_bad_seq, "problem": report.problem,
           "cosigned": report.cosigned, "notes": list(report.notes)}
    return _verified(args, out, f"database {shown(settings.database_url)}")


def _check_local(data_dir: Path, database_url: str) -> None:
    """Raises:
        InvalidInput: ``data_dir`` is not an Accord data directory (no signing key, and no
            ``ACCORD_SIGNING_KEY_FILE``), or
            ``ACCORD_DATABASE_URL`` is not set and the data directory has no database."""
    from accord.adapters.sql.existing import sqlite_file

    hint = "or verify through the running server: accord ledger verify --via-server (or --server URL)"
    if not os.environ.get("ACCORD_SIGNING_KEY_FILE") and not (data_dir / "ledger-signing.key").exists():
        raise InvalidInput([Problem("--data-dir", "no Accord data directory here (no ledger-signing.key)",
                                    str(data_dir), f"the --data-dir of 'accord up'; {hint}")])
    default = sqlite_file(database_url)
    if not os.environ.get("ACCORD_DATABASE_URL") and default is not None and not default.is_file():
        raise InvalidInput([Problem(
            "ACCORD_DATABASE_URL", "is not set, and the data directory holds no database", str(default),
            f"the database URL 'accord up' uses (e.g. postgresql://user@host/db); {hint}")])


def _verified(args: argparse.Namespace, out: Doc, where: str) -> int:
    """Print a verification report (``out``, as the API's) of the ledger in ``where``;
    0 when it verifies, :data:`EXIT_INPUT` when it does not."""
    if args.json:
        print(json.dumps({**out, "verified": where}))
        return 0 if out["ok"] else EXIT_INPUT
    for note in out.get("notes") or ():
        print(f"note: {note}", file=sys.stderr)
    if not out["ok"]:
        at = "" if out["first_bad_seq"] is None else f" at entry {out['first_bad_seq']}"
        print(f"LEDGER VERIFICATION FAILED{at}: {out['problem']} ({where})", file=sys.stderr)
    elif out["entries"] == 0:
        print(f"the ledger is empty: no entries to verify ({where}; is it the hub's database?)")
    else:
        cosigned = f", {out['cosigned']} cosigned tree(s) consistent" if out.get("cosigned") else ""
        print(f"ledger verified: {out['entries']} entries, chain intact, balances zero, "
              f"{out['closures']} closed period(s) match their signed roots{cosigned} ({where})")
    return 0 if out["ok"] else EXIT_INPUT


def verify_statement(args: argparse.Namespace) -> int:
    """Verify a statement offline with only the file, the operator's public key and (for its
    cosignatures and host attestations) the federation file or pinned witness keys."""
    from accord.adapters.keys import read_public_key
    from accord.domain.ledger.statement import verify_statement as problems_of

    if args.verify_args[0] != "verify" or len(args.verify_args) != 2:
        raise InvalidInput([Problem("statement", "unknown form", " ".join(args.verify_args),
                                    "accord statement verify FILE --key PUBKEY")])
    if args.key is None:
        raise InvalidInput([Problem("--key", "is required to verify", allowed="a PEM file")])
    doc = _read_json(Path(args.verify_args[1]), "statement")
    previous = _read_json(args.previous, "--previous") if args.previous else None
    witnesses, hosts = _trust(args, doc)
    errors = problems_of(doc, read_public_key(args.key), previous, witnesses=witnesses, hosts=hosts)
    if errors:
        for e in errors:
            print(f"{args.verify_args[1]}: {e}", file=sys.stderr)
        return EXIT_INPUT
    print(f"{args.verify_args[1]}: verified — {doc['agreement']['id']} {doc['period']} "
          f"({doc['status']}), {len(doc['entries'])} entries included in the signed tree of "
          f"{doc['tree_head']['tree_size']} entries{_witnessed(doc, witnesses, hosts)}")
    return 0


def _trust(args: argparse.Namespace, doc: Doc) -> tuple[WitnessTrust | None, HostKeys | None]:
    """The witnesses and site keys ``statement verify`` checks against: the federation file's
    (``--federation``), else the statement's witnesses whose keys ``--witness`` pins.

    Raises:
        InvalidInput: the federation file is invalid, both are given, a ``--witness`` is not a
            verifier key, or the statement's witnessing section is malformed.
    """
    from accord.adapters.federation_file import load_federation
    from accord.domain.federation.model import PartnerWitness, WitnessRule
    from accord.domain.ledger.cosigned import HostKeys, WitnessTrust, trust_from_statement
    from accord.domain.ledger.note import parse_verifier_key

    if args.trust_federation and args.witness:
        raise InvalidInput([Problem("--witness", "cannot be combined with --federation",
                                    allowed="the federation file's witnesses, or pinned keys")])
    if args.trust_federation:
        fed = load_federation(args.trust_federation)
        hosts = HostKeys({s.id: s.agent.keys for s in fed.sites if s.agent},
                         frozenset(s.id for s in fed.sites if s.agent))
        w = fed.witnessing
        return (WitnessTrust(w.witnesses, w.rule, w.k, w.origin) if w else None), hosts
    section = doc.get("witnessing")
    if not args.witness:
        return None, None
    try:
        names = [parse_verifier_key(k).name for k in args.witness]
    except InvalidInput as exc:
        raise InvalidInput([Problem("--witness", p.message, p.got, p.allowed)
                            for p in exc.problems]) from None
    if not isinstance(section, dict):   # keys pinned, but nothing cosigned: a failure to report
        pinned = tuple(PartnerWitness(n, "?", "", k) for n, k in zip(names, args.witness, strict=True))
        return WitnessTrust(pinned, WitnessRule.EVERY_PARTY, 1), None
    try:
        return trust_from_statement(section, args.witness), None
    except (KeyError, TypeError) as exc:
        raise InvalidInput([Problem("statement", f"malformed witnessing section: {exc!r}")]) from None


def _witnessed(doc: Doc, witnesses: WitnessTrust | None, hosts: HostKeys | None) -> str:
    """What else was checked, or what was not (for the success line)."""
    out = ""
    if witnesses is not None and doc.get("witnessing"):
        out += "; cosigned by " + (", ".join(doc["witnessing"]["cosigners"]) or "no witness")
    elif doc.get("witnessing"):
        why = "the federation file names no witness" if hosts else "give --federation FILE or --witness VKEY"
        out += f"; cosignatures NOT checked ({why})"
    attested = sum(1 for e in doc["entries"] if e.get("attestation"))
    if attested:
        out += f"; {attested} host attestation(s) " + ("checked" if hosts else
                                                        "NOT checked (give --federation FILE)")
    return out


def _read_json(path: Path, field: str) -> Doc:
    """The statement in ``path`` (``field`` names the argument that gave it).

    Raises:
        InvalidInput: unreadable, not JSON, or JSON that is not an object.
    """
    allowed = "a statement: the JSON object 'accord statement --format json' writes"
    try:
        doc = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise InvalidInput([Problem(field, f"cannot be read: {exc}", None, allowed, str(path))]) from None
    if not isinstance(doc, dict):
        kind = {list: "a JSON array", str: "a JSON string", bool: "a JSON boolean", int: "a JSON number",
                float: "a JSON number"}.get(type(doc), "JSON null")
        raise InvalidInput([Problem(field, "is not a statement", kind, allowed, str(path))])
    return doc


# ---------------------------------------------------------------------------- with the server
def ledger(args: argparse.Namespace, _command: list[str], client: Client) -> int:
    """``accord ledger balances|entries|close|correct|key|reconcile``, and ``verify``
    through the server."""
    params = {k: v for k, v in (("agreement", args.agreement), ("period", args.period),
                                ("job", args.job)) if v}
    if args.action == "balances":
        output(args, client.request("GET", "/api/v1/ledger/balances", params=params), _balances)
    elif args.action == "entries":
        data = client.request("GET", "/api/v1/ledger/entries", params=params)["entries"]
        output(args, data, lambda es: "\n".join(
            f"{e['seq']:>6} {e['kind']:<13} {e['requester']}->{e['host']:<4} {e['site']:<14} "
            f"{e['units']:>14} {e['id']}" for e in es) or "no entries")
    elif args.action == "close":
        if not args.period:
            raise InvalidInput([PERIOD_NEEDED])
        head = client.request("POST", f"/api/v1/ledger/periods/{segment(args.period)}/close",
                              params={"early": "true"} if args.early else None)
        output(args, head, lambda h: f"closed {h['period']}: {h['tree_size']} entries, root {h['root']}")
    elif args.action == "verify":
        return _verified(args, client.request("GET", "/api/v1/ledger/verify"), f"the server at {client.url}")
    elif args.action == "correct":
        _correct(args, client)
    elif args.action == "key":
        print(client.http.get("/api/v1/ledger/public-key").text, end="")
    elif args.action == "reconcile":
        if not args.period:
            raise InvalidInput([PERIOD_NEEDED])
        report = client.request("GET", "/api/v1/ledger/reconcile", params={"period": args.period})
        output(args, report, _reconcile_text)
    return 0


def _correct(args: argparse.Namespace, client: Client) -> None:
    missing = [name for name, value in (("entry", args.entry), ("--kind", args.kind),
                                        ("--units", args.units), ("--reason", args.reason))
               if not value]
    if missing:
        raise InvalidInput([Problem(name, "is required", allowed="accord ledger correct ENTRY "
                                    "--kind KIND --units UNITS --reason TEXT") for name in missing])
    body = {"kind": args.kind, "units": args.units, "reason": args.reason, "author": args.author}
    # the id quoted as one path segment: a month's entry id has a '#' (usage:site:ref#YYYY-MM)
    e = client.request("POST", f"/api/v1/ledger/entries/{segment(args.entry)}/corrections", json=body)
    output(args, e, lambda x: f"{x['seq']}: {x['kind']} {x['units']} ({x['id']})")


def statement(args: argparse.Namespace, _command: list[str], client: Client) -> int:
    """``accord statement --agreement A --period P [--format F] [--out FILE]``."""
    if not args.agreement or not args.period:
        raise InvalidInput([Problem("--agreement/--period", "are required",
                                    allowed="accord statement --agreement ID --period YYYY-MM")])
    path = f"/api/v1/statements/{args.agreement}/{args.period}"
    if args.format == "json":
        text = json.dumps(client.request("GET", path), indent=2) + "\n"
    else:
        resp = client.http.get(path, params={"format": args.format})
        if resp.status_code >= 400:
            client.request("GET", path)  # raises the matching error
        text = resp.text
    if args.out:
        args.out.write_text(text)
        print(f"wrote {args.out}")
    else:
        sys.stdout.write(text)
    return 0


def emissions(args: argparse.Namespace, _command: list[str], client: Client) -> int:
    """``accord emissions [--group G] [--period P]``."""
    params = {"group": args.group, **({"period": args.period} if args.period else {})}
    return output(args, client.request("GET", "/api/v1/emissions", params=params), _emissions_table)


# ---------------------------------------------------------------------------- the commands
COMMANDS = (
    Command("ledger", "the reciprocity ledger", _ledger_arguments, run=ledger, offline=ledger_offline),
    Command("statement", "a signed statement: --agreement A --period P, or verify FILE --key K",
            _statement_arguments, run=statement, offline=statement_offline),
    Command("emissions", "energy and emissions totals of finished jobs", _emissions_arguments,
            run=emissions),
)


# ---------------------------------------------------------------------------- output
def _reconcile_text(r: Doc) -> str:
    lines = [f"period {r['period']}: {'books agree' if r['ok'] else 'DIFFERENCES'}",
             f"  {'site':<16} {'site GPU-s':>14} {'usage GPU-s':>14} {'x-border':>12} "
             f"{'ledger':>12}"]
    for site, s in r["sites"].items():
        if "error" in s:
            lines.append(f"  {site:<16} cannot read the site's accounting: {s['error']}")
            continue
        lines.append(f"  {site:<16} {s['site_gpu_seconds']:>14.1f} {s['usage_gpu_seconds']:>14.1f}"
                     f" {s['cross_border_gpu_seconds']:>12.1f} {s['ledger_gpu_seconds']:>12.1f}")
        lines += [f"    {d['ref']} (job {d['job']}): {d['note']} (site {d['site_gpu_seconds']}, "
                  f"Accord {d['accord_gpu_seconds']})" for d in s["differences"]]
    if r.get("allocations"):   # site enforcement: Slurm's own totals, per allocation's account
        lines.append(f"  {'site/allocation (account)':<44} {'Slurm GPU-s':>14} {'usage GPU-s':>14} "
                     f"{'ledger':>12}")
        lines += [_allocation_line(c) for c in r["allocations"]]
    return "\n".join(lines)


def _allocation_line(c: Doc) -> str:
    """One allocation's row; usage naming no allocation's account has no Slurm figure."""
    if c["allocation"] is None:
        name = f"{c['site']}/{c['project']}/{c['agreement']} (no allocation's account)"
        slurm = f"{'-':>14}"
    else:
        name = f"{c['site']}/{c['allocation']} ({c['account']})"
        slurm = f"{c['slurm_gpu_seconds']:>14.1f}"
    return (f"  {name:<44} {slurm} {c['usage_gpu_seconds']:>14.1f} {c['ledger_gpu_seconds']:>12.1f}"
            f"{'' if c['ok'] else '  DIFFERS'}")


def _balances(b: Doc) -> str:
    lines = [f"{b['entries']} entries; sum of all legs: {b['total']} {b['unit']}"]
    for group in ("net_by_partner", "by_direction", "by_site", "by_project"):
        lines.append(f"{group}:")
        lines += [f"  {k:<30} {v:>16}" for k, v in b[group].items()]
    return "\n".join(lines)


def _emissions_table(doc: Doc) -> str:
    rows = [*doc["totals"], {"key": "TOTAL", **doc["total"]}]
    head = (f"{doc['group'].upper():<24} {'JOBS':>6} {'GPU-HOURS':>12} {'ENERGY KWH':>12} "
            f"{'EMISSIONS KG':>13}  CO2 UNKNOWN")
    lines = [head] + [
        f"{r['key'][:24]:<24} {r['jobs']:>6} {r['gpu_hours']:>12.2f} {r['energy_kwh']:>12.3f} "
        f"{r['emissions_kg']:>13.3f}  {r['emissions_unknown'] or ''}" for r in rows]
    period = doc["period"] or "all periods"
    return "\n".join([f"emissions by {doc['group']}, {period} (a job counts in the month it "
                      "started):", *lines]) if doc["totals"] else f"no finished jobs ({period})"
