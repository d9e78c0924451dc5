"""The ``accord`` command line: a thin shell over the runtime and the REST client.

Exit status: 0 success, 1 Accord or a site is unavailable, 2 bad input (usage,
invalid files or specs, unknown ids, conflicts), 130 interrupted.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from accord.domain.errors import AccordError, InvalidInput, Problem, Unavailable

EXIT_UNAVAILABLE = 1
EXIT_INPUT = 2
FINAL = {"completed", "failed", "cancelled", "timed_out"}


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> Any:  # argparse prints usage; keep exit status 2
        self.print_usage(sys.stderr)
        print(f"accord: error: {message}", file=sys.stderr)
        sys.exit(EXIT_INPUT)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser for every subcommand."""
    common = _Parser(add_help=False)
    common.add_argument("--server", help="Accord's URL (default: the one 'accord up' wrote)")
    common.add_argument("--data-dir", type=Path, help="data directory (default ~/.accord)")
    common.add_argument("--json", action="store_true", help="print JSON")
    common.add_argument("--token-file", type=Path, metavar="PATH",
                        help="a file holding an API token (before $ACCORD_TOKEN and the "
                             "data directory's admin token)")
    p = _Parser(prog="accord", description="Broker for international reciprocal AI compute.")
    sub = p.add_subparsers(dest="cmd", required=True, parser_class=_Parser)

    up = sub.add_parser("up", parents=[common], help="run the API, dispatcher and status page")
    up.add_argument("--federation", type=Path, help="federation TOML (default: the demo)")
    up.add_argument("--port", type=int)
    up.add_argument("--host", help="address to listen on (default 127.0.0.1)")
    up.add_argument("--no-dispatcher", action="store_true",
                    help="serve the API only; jobs are stored but not run (benchmarks)")

    val = sub.add_parser("validate", parents=[common], help="check a federation file")
    val.add_argument("file", type=Path)

    s = sub.add_parser("submit", parents=[common], help="submit a job: -- COMMAND... or SCRIPT")
    add_job_arguments(s)
    s.add_argument("--idempotency-key")
    s.add_argument("--wait", action="store_true", help="wait until the job ends")

    led = sub.add_parser("ledger", parents=[common], help="the reciprocity ledger")
    led.add_argument("action", choices=["verify", "balances", "entries", "close", "correct", "key",
                                        "reconcile"])
    led.add_argument("entry", nargs="?", help="entry id (correct)")
    led.add_argument("--agreement")
    led.add_argument("--period", help="YYYY-MM")
    led.add_argument("--job")
    led.add_argument("--kind", choices=["refund", "reversal", "manual_credit"])
    led.add_argument("--units")
    led.add_argument("--reason")
    led.add_argument("--author")

    st = sub.add_parser("statement", parents=[common],
                        help="a signed statement: --agreement A --period P, or verify FILE --key K")
    st.add_argument("verify_args", nargs="*", metavar="verify FILE")
    st.add_argument("--agreement")
    st.add_argument("--period", help="YYYY-MM")
    st.add_argument("--format", choices=["json", "html", "csv"], default="json")
    st.add_argument("--out", type=Path, help="write to this file instead of stdout")
    st.add_argument("--key", type=Path, help="the operator's public key (PEM) to verify with")
    st.add_argument("--previous", type=Path, help="an earlier statement this one must extend")

    em = sub.add_parser("emissions", parents=[common],
                        help="energy and emissions totals of finished jobs")
    em.add_argument("--group", default="project",
                    choices=["project", "site", "partner", "host_partner", "requester_partner",
                             "agreement"], help="what to total by (partner: the host partner)")
    em.add_argument("--period", help="YYYY-MM: jobs whose run started that month (UTC)")

    j = sub.add_parser("jobs", parents=[common], help="list jobs")
    j.add_argument("--state", action="append")
    j.add_argument("--limit", type=int, default=50)
    for name, text in (("show", "a job and its story"), ("logs", "a job's output"),
                       ("cancel", "cancel a job")):
        sp = sub.add_parser(name, parents=[common], help=text)
        sp.add_argument("job")
    __import__("accord.sim.cli", fromlist=["add_parser"]).add_parser(sub)   # accord simulate
    __import__("accord.sim.cli", fromlist=["add_trace_parser"]).add_trace_parser(sub)   # accord trace
    from accord import cli_access  # here, not at the top: it imports this module

    cli_access.add_parsers(sub, common)
    __import__("accord.cli_campaign", fromlist=["add_parsers"]).add_parsers(sub, common)  # accord campaign
    return p


def add_job_arguments(parser: argparse.ArgumentParser) -> None:
    """The job's own arguments, shared by ``submit`` and ``preview``."""
    parser.add_argument("script", nargs="?", type=Path, help="a batch script file")
    parser.add_argument("--gpus", type=int, default=1)
    parser.add_argument("--gpu-model")
    parser.add_argument("--time-limit", default="1h", help="e.g. 3600, 30m, 2h, 01:00:00")
    parser.add_argument("--project")
    parser.add_argument("--partner")
    parser.add_argument("--theme")
    parser.add_argument("--site")
    parser.add_argument("--name")
    parser.add_argument("--earliest-start")
    parser.add_argument("--deadline")
    parser.add_argument("--data-residency", action="append", help="ISO country code (repeatable)")


def main(argv: list[str] | None = None) -> None:
    """Entry point of the ``accord`` console script."""
    args_in = list(sys.argv[1:] if argv is None else argv)
    command: list[str] = []
    if "--" in args_in:
        cut = args_in.index("--")
        args_in, command = args_in[:cut], args_in[cut + 1:]
    args = build_parser().parse_args(args_in)
    try:
        sys.exit(_run(args, command))
    except InvalidInput as exc:
        for problem in exc.problems:
            print(problem.render(), file=sys.stderr)
        sys.exit(EXIT_INPUT)
    except Unavailable as exc:
        print(f"accord: {exc}", file=sys.stderr)
        sys.exit(EXIT_UNAVAILABLE)
    except AccordError as exc:
        print(f"accord: {exc}", file=sys.stderr)
        sys.exit(EXIT_INPUT)
    except KeyboardInterrupt:
        sys.exit(130)


def _run(args: argparse.Namespace, command: list[str]) -> int:
    if args.cmd == "up":
        from accord.runtime import Settings, serve

        serve(Settings.resolve(args.data_dir, args.federation, args.port, args.host,
                               dispatch=not args.no_dispatcher))
        return 0
    if args.cmd == "validate":
        return _validate(args)
    if args.cmd in ("simulate", "trace"):
        return int(args.simulate(args))
    if args.cmd == "ledger" and args.action == "verify":
        return _ledger_verify(args)
    if args.cmd == "statement" and args.verify_args:
        return _statement_verify(args)
    from accord.client import Client, discover

    url, token = discover(args.server, args.data_dir, args.token_file)
    client = Client(url, token)
    try:
        return _remote(args, command, client)
    finally:
        client.close()


def _validate(args: argparse.Namespace) -> int:
    from accord.adapters.federation_file import load_federation

    fed = load_federation(args.file)
    gpus = sum(s.total_gpus for s in fed.sites)
    summary = {"file": str(args.file), "partners": len(fed.partners), "sites": len(fed.sites),
               "gpus": gpus, "agreements": len(fed.agreements)}
    if args.json:
        print(json.dumps({"valid": True, **summary}))
    else:
        print(f"{args.file}: valid — {len(fed.partners)} partners, {len(fed.sites)} sites, "
              f"{gpus:,} GPUs, {len(fed.agreements)} agreements")
    return 0


def _remote(args: argparse.Namespace, command: list[str], client: Any) -> int:
    if getattr(args, "access_handler", None) is not None:   # the commands of cli_access
        return int(args.access_handler(args, command, client))
    if args.cmd == "submit":
        return _submit(args, command, client)
    if args.cmd == "jobs":
        jobs = client.jobs(args.state, args.limit)
        _print(args, jobs, _jobs_table)
    elif args.cmd == "show":
        job = client.job(args.job)
        job["footprint"] = _footprint(client, job)
        _print(args, job, _show_text)
    elif args.cmd == "emissions":
        params = {"group": args.group, **({"period": args.period} if args.period else {})}
        _print(args, client.request("GET", "/api/v1/emissions", params=params), _emissions_table)
    elif args.cmd == "logs":
        out = client.logs(args.job)
        if args.json:
            print(json.dumps(out))
        else:
            sys.stdout.write(out["stdout"])
            sys.stderr.write(out["stderr"])
    elif args.cmd == "ledger":
        _ledger(args, client)
    elif args.cmd == "statement":
        _statement(args, client)
    elif args.cmd == "cancel":
        _print(args, client.cancel(args.job), lambda j: f"{j['id']}: {j['state']} — {j['reason']}")
    return 0


def job_document(args: argparse.Namespace, command: list[str]) -> dict[str, Any]:
    """The job body for the API from the arguments of :func:`add_job_arguments`.

    Raises:
        InvalidInput: nothing to run, both a script and a command, an unreadable script.
    """
    doc: dict[str, Any] = {"gpus": args.gpus, "time_limit": args.time_limit}
    if command and args.script:
        raise InvalidInput([Problem("command", "give a script file or -- COMMAND..., not both")])
    if command:
        doc["command"] = command
    elif args.script:
        try:
            doc["script"] = args.script.read_text()
        except (OSError, UnicodeDecodeError) as exc:
            raise InvalidInput([Problem("script", f"cannot read: {exc}", str(args.script))]) from None
    else:
        raise InvalidInput([Problem("command", "nothing to run",
                                    allowed=f"accord {args.cmd} [options] -- COMMAND... or SCRIPT")])
    for key in ("gpu_model", "project", "partner", "theme", "site", "name", "earliest_start",
                "deadline", "data_residency"):
        value = getattr(args, key)
        if value is not None:
            doc[key] = value
    return doc


def _submit(args: argparse.Namespace, command: list[str], client: Any) -> int:
    job = client.submit(job_document(args, command), args.idempotency_key)
    if args.wait:
        job = _wait(client, job["id"])
    _print(args, job, lambda j: f"{j['id']}: {j['state']}" + (f" — {j['reason']}" if args.wait else ""))
    if args.wait and job["state"] != "completed":
        return EXIT_UNAVAILABLE
    return 0


def _wait(client: Any, job_id: str) -> Any:
    delay = 0.2
    while True:
        job = client.job(job_id)
        if job["state"] in FINAL:
            return job
        time.sleep(delay)
        delay = min(delay * 1.5, 2.0)


def _print(args: argparse.Namespace, data: Any, human: Any) -> None:
    print(json.dumps(data, indent=2) if args.json else human(data))


def _jobs_table(jobs: list[dict[str, Any]]) -> str:
    if not jobs:
        return "no jobs"
    head = f"{'ID':<22} {'STATE':<10} {'SITE':<14} {'GPUS':>4}  {'NAME':<20} SUBMITTED"
    rows = [f"{j['id']:<22} {j['state']:<10} {(j['site'] or '-'):<14} {j['spec']['gpus']:>4}  "
            f"{j['spec']['name'][:20]:<20} {j['submitted_at'][:19]}" for j in jobs]
    return "\n".join([head, *rows])


def _show_text(j: dict[str, Any]) -> str:
    spec = j["spec"]
    what = " ".join(spec["command"]) if spec["command"] else "(batch script)"
    lines = [
        f"Job {j['id']} — {spec['name']}",
        f"  state:    {j['state']}" + (f" ({j['reason']})" if j["reason"] else ""),
        f"  command:  {what}",
        f"  gpus:     {spec['gpus']}" + (f" x {spec['gpu_model']}" if spec["gpu_model"] else ""),
        f"  site:     {j['site'] or '-'}" + (f" / {j['pool']}" if j["pool"] else "")
        + (f" under {j['agreement']}" if j["agreement"] else ""),
    ]
    if j["outcome"]:
        o = j["outcome"]
        lines.append(f"  outcome:  exit {o['exit_code']}, {o['gpu_seconds']:.1f} GPU-seconds, "
                     f"{o['started_at']} → {o['ended_at']}")
    lines += _footprint_lines(j.get("footprint"))
    lines.append("  story:")
    for e in j["story"]:
        move = f"{e['before'] or '·'} → {e['after']}"
        lines.append(f"    {e['at'][:23]}  {e['kind']:<9} {move:<24} {e['reason']}")
    return "\n".join(lines)


def _footprint(client: Any, job: dict[str, Any]) -> Any:
    """The job's energy and emissions once it has ended (None before, or from a server
    that does not have the route)."""
    from accord.domain.errors import NotFound

    if job["state"] not in FINAL:
        return None
    try:
        return client.request("GET", f"/api/v1/jobs/{job['id']}/footprint")
    except NotFound:
        return None


def _footprint_lines(f: dict[str, Any] | None) -> list[str]:
    if not f or f.get("energy_kwh") is None:
        return []
    kwh = f["energy_kwh"]
    energy = f"{kwh:,.3f} kWh" if kwh >= 1 else f"{kwh * 1000:.3g} Wh"
    lines = [f"  energy:   {energy} ({f['energy_basis']}, PUE included)"]
    grams = f.get("emissions_g")
    if grams is None:
        lines.append(f"  emissions: unknown — {_short(f['intensity_source'])}")
    else:
        amount = f"{grams / 1000:,.3f} kg" if grams >= 1000 else f"{grams:.3g} g"
        lines.append(f"  emissions: {amount} CO2eq (mean {f['mean_intensity_g_per_kwh']:.1f} g/kWh; "
                     f"{_short(f['intensity_source'])})")
    return lines


def _short(text: str, limit: int = 90) -> str:
    """A source citation cut for a terminal line (--json has it whole)."""
    return text if len(text) <= limit else text[:limit - 1] + "…"


def _emissions_table(doc: dict[str, Any]) -> str:
    rows = [*doc["totals"], {"key": "TOTAL", **doc["total"]}]
    head = (f"{doc['group'].upper():<24} {'JOBS':>6} {'GPU-HOURS':>12} {'ENERGY KWH':>12} "
            f"{'EMISSIONS KG':>13}  CO2 UNKNOWN")
    lines = [head] + [
        f"{r['key'][:24]:<24} {r['jobs']:>6} {r['gpu_hours']:>12.2f} {r['energy_kwh']:>12.3f} "
        f"{r['emissions_kg']:>13.3f}  {r['emissions_unknown'] or ''}" for r in rows]
    period = doc["period"] or "all periods"
    return "\n".join([f"emissions by {doc['group']}, {period} (a job counts in the month it "
                      "started):", *lines]) if doc["totals"] else f"no finished jobs ({period})"


def _ledger_verify(args: argparse.Namespace) -> int:
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


def _statement_verify(args: argparse.Namespace) -> int:
    """Verify a statement offline with only the file and the operator's public key."""
    from accord.adapters.keys import read_public_key
    from accord.domain.ledger.statement import verify_statement

    if args.verify_args[0] != "verify" or len(args.verify_args) != 2:
        raise InvalidInput([Problem("statement", "unknown form", " ".join(args.verify_args),
                                    "accord statement verify FILE --key PUBKEY")])
    if args.key is None:
        raise InvalidInput([Problem("--key", "is required to verify", allowed="a PEM file")])
    doc = _read_json(Path(args.verify_args[1]))
    previous = _read_json(args.previous) if args.previous else None
    errors = verify_statement(doc, read_public_key(args.key), previous)
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


def _ledger(args: argparse.Namespace, client: Any) -> None:
    params = {k: v for k, v in (("agreement", args.agreement), ("period", args.period),
                                ("job", args.job)) if v}
    if args.action == "balances":
        _print(args, client.request("GET", "/api/v1/ledger/balances", params=params), _balances)
    elif args.action == "entries":
        data = client.request("GET", "/api/v1/ledger/entries", params=params)["entries"]
        _print(args, data, lambda es: "\n".join(
            f"{e['seq']:>6} {e['kind']:<13} {e['requester']}->{e['host']:<4} {e['site']:<14} "
            f"{e['units']:>14} {e['id']}" for e in es) or "no entries")
    elif args.action == "close":
        if not args.period:
            raise InvalidInput([Problem("--period", "is required", allowed="YYYY-MM")])
        head = client.request("POST", f"/api/v1/ledger/periods/{args.period}/close")
        _print(args, head, lambda h: f"closed {h['period']}: {h['tree_size']} entries, "
                                     f"root {h['root']}")
    elif args.action == "correct":
        from accord.client import segment

        missing = [name for name, value in (("entry", args.entry), ("--kind", args.kind),
                                            ("--units", args.units), ("--reason", args.reason))
                   if not value]
        if missing:
            raise InvalidInput([Problem(name, "is required", allowed="accord ledger correct ENTRY "
                                        "--kind KIND --units UNITS --reason TEXT") for name in missing])
        body = {"kind": args.kind, "units": args.units, "reason": args.reason,
                "author": args.author}
        # the id quoted as one path segment: a month's entry id has a '#' (usage:site:ref#YYYY-MM)
        e = client.request("POST", f"/api/v1/ledger/entries/{segment(args.entry)}/corrections",
                           json=body)
        _print(args, e, lambda x: f"{x['seq']}: {x['kind']} {x['units']} ({x['id']})")
    elif args.action == "key":
        print(client.http.get("/api/v1/ledger/public-key").text, end="")
    elif args.action == "reconcile":
        if not args.period:
            raise InvalidInput([Problem("--period", "is required", allowed="YYYY-MM")])
        report = client.request("GET", "/api/v1/ledger/reconcile", params={"period": args.period})
        _print(args, report, _reconcile_text)


def _reconcile_text(r: dict[str, Any]) -> str:
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


def _balances(b: dict[str, Any]) -> str:
    lines = [f"{b['entries']} entries; sum of all legs: {b['total']} {b['unit']}"]
    for group in ("net_by_partner", "by_direction", "by_site", "by_project"):
        lines.append(f"{group}:")
        lines += [f"  {k:<30} {v:>16}" for k, v in b[group].items()]
    return "\n".join(lines)


def _statement(args: argparse.Namespace, client: Any) -> None:
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
