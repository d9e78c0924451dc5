"""The books: ``accord ledger``, ``accord statement`` and ``accord emissions``.

``accord ledger verify`` reads the store directly and ``accord statement verify FILE``
needs only the file and the operator's public key; the rest are thin shells over the
API's ledger, statement and emissions routes.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from accord.cli.common import EXIT_INPUT, Command, Doc, output, segment
from accord.domain.errors import InvalidInput, Problem

if TYPE_CHECKING:
    from accord.client import Client

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


def _statement_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("verify_args", nargs="*", metavar="verify FILE")
    parser.add_argument("--agreement")
    parser.add_argument("--period", help="YYYY-MM")
    parser.add_argument("--format", choices=["json", "html", "csv"], default="json")
    parser.add_argument("--out", type=Path, help="write to this file instead of stdout")
    parser.add_argument("--key", type=Path, help="the operator's public key (PEM) to verify with")
    parser.add_argument("--previous", type=Path, help="an earlier statement this one must extend")


def _emissions_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--group", default="project",
                        choices=["project", "site", "partner", "host_partner", "requester_partner",
                                 "agreement"], help="what to total by (partner: the host partner)")
    parser.add_argument("--period", help="YYYY-MM: jobs whose run started that month (UTC)")


# ---------------------------------------------------------------------------- without a server
def ledger_offline(args: argparse.Namespace) -> int | None:
    """``accord ledger verify`` runs here; the other actions need the server (None)."""
    return verify_ledger(args) if args.action == "verify" else None


def statement_offline(args: argparse.Namespace) -> int | None:
    """``accord statement verify FILE`` runs here; fetching a statement needs the server."""
    return verify_statement(args) if args.verify_args else None


def verify_ledger(args: argparse.Namespace) -> int:
    """Verify the ledger straight from the store (no server needed)."""
    from accord.adapters.federation_file import load_federation
    from accord.adapters.sql.store import SqlStore
    from accord.runtime import Settings, build_ledger

    settings = Settings.resolve(args.data_dir)
    if not (settings.data_dir / "ledger-signing.key").exists():
        raise InvalidInput([Problem("--data-dir", "no Accord data directory here",
                                    str(settings.data_dir), "the --data-dir of 'accord up'")])
    store = SqlStore(settings.database_url)
    try:
        report = build_ledger(load_federation(settings.federation_path), store,
                              settings.data_dir).verify()
    finally:
        store.close()
    out = {"ok": report.ok, "entries": report.entries, "closures": report.closures,
           "first_bad_seq": report.first_bad_seq, "problem": report.problem}
    if args.json:
        print(json.dumps(out))
    elif report.ok:
        print(f"ledger verified: {report.entries} entries, chain intact, balances zero, "
              f"{report.closures} closed period(s) match their signed roots")
    else:
        print(f"LEDGER VERIFICATION FAILED at entry {report.first_bad_seq}: {report.problem}",
              file=sys.stderr)
    return 0 if report.ok else EXIT_INPUT


def verify_statement(args: argparse.Namespace) -> int:
    """Verify a statement offline with only the file and the operator's public key."""
    from accord.adapters.keys import read_public_key
    from accord.domain.ledger.statement import verify_statement as problems_of

    if args.verify_args[0] != "verify" or len(args.verify_args) != 2:
        raise InvalidInput([Problem("statement", "unknown form", " ".join(args.verify_args),
                                    "accord statement verify FILE --key PUBKEY")])
    if args.key is None:
        raise InvalidInput([Problem("--key", "is required to verify", allowed="a PEM file")])
    doc = _read_json(Path(args.verify_args[1]))
    previous = _read_json(args.previous) if args.previous else None
    errors = problems_of(doc, read_public_key(args.key), previous)
    if errors:
        for e in errors:
            print(f"{args.verify_args[1]}: {e}", file=sys.stderr)
        return EXIT_INPUT
    print(f"{args.verify_args[1]}: verified — {doc['agreement']['id']} {doc['period']} "
          f"({doc['status']}), {len(doc['entries'])} entries included in the signed tree of "
          f"{doc['tree_head']['tree_size']} entries")
    return 0


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise InvalidInput([Problem(str(path), f"cannot read a statement: {exc}")]) from None


# ---------------------------------------------------------------------------- with the server
def ledger(args: argparse.Namespace, _command: list[str], client: Client) -> int:
    """``accord ledger balances|entries|close|correct|key|reconcile``."""
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
        head = client.request("POST", f"/api/v1/ledger/periods/{args.period}/close")
        output(args, head, lambda h: f"closed {h['period']}: {h['tree_size']} entries, root {h['root']}")
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
    return "\n".join(lines)


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
