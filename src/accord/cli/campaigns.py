"""The ``accord campaign`` commands: joint model-testing campaigns with Inspect.

::

    accord campaign create FILE                     (a TOML or JSON campaign document)
    accord campaign create --id ID --project P --partner uk --partner fr --site S... \\
        --task arithmetic:1 --task capitals:2 --model calc,http://host/v1,calc-7b[,uk] \\
        [--embargo approval|date|none] [--until YYYY-MM-DD] [--gpus N] [--time-limit-s S]
    accord campaign list | submit ID [--wait] | status ID | results ID
    accord campaign approve-release ID [--partner P]   (a partner's programme officer)

Thin shells over ``/api/v1/campaigns`` (:mod:`accord.api.campaign_routes`); ``--json``
prints the API's own JSON. Refusals (an embargo, say) exit 2 with the server's reason.
"""

from __future__ import annotations

import argparse
import json
import time
import tomllib
from pathlib import Path
from typing import Any

from accord.cli.common import EXIT_UNAVAILABLE, FINAL, Api, Doc, group, leaf, output, positionals
from accord.domain.campaigns.campaign import EmbargoKind
from accord.domain.errors import InvalidInput, Problem


# ---------------------------------------------------------------------------- arguments
def _create_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", nargs="?", type=Path, help="a TOML or JSON campaign document")
    parser.add_argument("--id")
    parser.add_argument("--name")
    parser.add_argument("--project")
    parser.add_argument("--partner", action="append", default=[], help="a partner taking part (repeat)")
    parser.add_argument("--site", action="append", default=[], help="a site its jobs may use (repeat)")
    parser.add_argument("--task", action="append", default=[], metavar="NAME:VERSION[:FILE]")
    parser.add_argument("--model", action="append", default=[], metavar="NAME,BASE_URL,MODEL[,PARTNER]")
    parser.add_argument("--embargo", choices=[k.value for k in EmbargoKind])
    parser.add_argument("--until", metavar="YYYY-MM-DD", help="the embargo date (--embargo date)")
    parser.add_argument("--gpus", type=int)
    parser.add_argument("--time-limit-s", type=int)


def _submit_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("id")
    parser.add_argument("--wait", action="store_true",
                        help="then wait until every pair's job has ended (exit 1 if one did not complete)")


def _approve_release_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("id")
    parser.add_argument("--partner", help="when you are programme officer of several partners")


# ---------------------------------------------------------------------------- documents
def document(args: argparse.Namespace) -> Doc:
    """The campaign document from a file (flags given too override its fields).

    Raises:
        InvalidInput: an unreadable file, a malformed --task or --model.
    """
    doc: Doc = _read(args.file) if args.file is not None else {}
    for key in ("id", "name", "project", "gpus", "time_limit_s"):
        if getattr(args, key) is not None:
            doc[key] = getattr(args, key)
    if args.partner:
        doc["partners"] = args.partner
    if args.site:
        doc["sites"] = args.site
    if args.task:
        doc["tasks"] = [_task(x) for x in args.task]
    if args.model:
        doc["models"] = [_model(x) for x in args.model]
    if args.embargo is not None or args.until is not None:
        results = dict(doc.get("results") or {})
        if args.embargo is not None:
            results["embargo"] = args.embargo
        if args.until is not None:
            results["until"] = args.until
        doc["results"] = results
    return doc


def _read(path: Path) -> Doc:
    try:
        text = path.read_text()
        doc = json.loads(text) if path.suffix == ".json" else tomllib.loads(text)
    except OSError as exc:
        raise InvalidInput([Problem("file", f"cannot be read: {exc.strerror}", str(path))]) from None
    except (ValueError, tomllib.TOMLDecodeError) as exc:
        raise InvalidInput([Problem("file", f"is not valid {'JSON' if path.suffix == '.json' else 'TOML'}: "
                                    f"{exc}", str(path))]) from None
    if not isinstance(doc, dict):
        raise InvalidInput([Problem("file", "must hold one campaign table", str(path))])
    return dict(_plain(doc))


def _plain(x: Any) -> Any:
    """TOML dates as ISO text (the API takes JSON)."""
    if isinstance(x, dict):
        return {k: _plain(v) for k, v in x.items()}
    if isinstance(x, list):
        return [_plain(v) for v in x]
    return x.isoformat() if hasattr(x, "isoformat") else x


def _task(text: str) -> Doc:
    name, sep, rest = text.partition(":")
    version, _, file = rest.partition(":")
    if not name or not sep or not version:
        raise InvalidInput([Problem("--task", "is not NAME:VERSION[:FILE]", text, "e.g. arithmetic:1")])
    return {"name": name, "version": int(version) if version.isdigit() else version,
            **({"file": file} if file else {})}


def _model(text: str) -> Doc:
    parts = text.split(",")
    if len(parts) not in (3, 4) or not all(parts):
        raise InvalidInput([Problem("--model", "is not NAME,BASE_URL,MODEL[,PARTNER]", text,
                                    "e.g. calc,http://127.0.0.1:8000/v1,calc-7b,uk")])
    return {"name": parts[0], "base_url": parts[1], "model": parts[2],
            **({"partner": parts[3]} if len(parts) == 4 else {})}


# ---------------------------------------------------------------------------- handlers
def create(args: argparse.Namespace, _command: list[str], api: Api) -> int:
    """``accord campaign create``."""
    return output(args, api.post("/api/v1/campaigns", document(args)),
                 lambda c: f"campaign {c['id']} created: {len(c['tasks'])} task(s) × {len(c['models'])} "
                           f"model(s), charged to project {c['project']}; results embargo: "
                           f"{c['results']['embargo']}")


def list_campaigns(args: argparse.Namespace, _command: list[str], api: Api) -> int:
    """``accord campaign list``."""
    return output(args, api.get("/api/v1/campaigns"), lambda d: "\n".join(
        f"{c['id']}  {c['project']}  partners {','.join(c['partners'])}  {c['name']}"
        for c in d["campaigns"]) or "no campaigns")


def submit(args: argparse.Namespace, _command: list[str], api: Api) -> int:
    """``accord campaign submit ID``: each pair's job; with ``--wait``, the campaign's status
    once every job has ended, and status 1 if one did not complete (as ``accord submit --wait``)."""
    runs = api.post(f"/api/v1/campaigns/{args.id}/submit")
    if not args.wait:
        return output(args, runs, lambda d: "\n".join(f"{r['task']} × {r['model']}: job {r['job']}"
                                                     for r in d["runs"]))
    status = _wait(api, args.id)
    output(args, status, status_text)
    return 0 if all(r["state"] == "completed" for r in status["runs"]) else EXIT_UNAVAILABLE


def _wait(api: Api, campaign_id: str) -> Doc:
    """The campaign's status once every pair's job has ended (polled, backing off to 2 s)."""
    delay = 0.2
    while True:
        status: Doc = api.get(f"/api/v1/campaigns/{campaign_id}")
        if all(r["state"] in FINAL for r in status["runs"]):
            return status
        time.sleep(delay)
        delay = min(delay * 1.5, 2.0)


def status(args: argparse.Namespace, _command: list[str], api: Api) -> int:
    """``accord campaign status``."""
    return output(args, api.get(f"/api/v1/campaigns/{args.id}"), status_text)


def results(args: argparse.Namespace, _command: list[str], api: Api) -> int:
    """``accord campaign results``."""
    return output(args, api.get(f"/api/v1/campaigns/{args.id}/results"), results_text)


def approve_release(args: argparse.Namespace, _command: list[str], api: Api) -> int:
    """``accord campaign approve-release``."""
    body = {"partner": args.partner} if args.partner else {}
    return output(args, api.post(f"/api/v1/campaigns/{args.id}/release", body), lambda d: (
        f"release approved for {d['partner']}; "
        + ("the embargo has lifted" if d["lifted"] else f"still embargoed ({d['rule']})")))


# ---------------------------------------------------------------------------- the commands
COMMANDS = (
    group("campaign", "joint model-testing campaigns (Inspect)",
          leaf("create", "create a campaign from a file or from flags", create, _create_arguments),
          leaf("list", "the campaigns you may see", list_campaigns),
          leaf("submit", "submit a job for every (task, model) pair", submit, _submit_arguments),
          leaf("status", "each pair's job, compute per partner, the embargo", status, positionals("id")),
          leaf("results", "scores per task and model (after the embargo)", results, positionals("id")),
          leaf("approve-release", "approve the release of the results for your partner", approve_release,
               _approve_release_arguments)),
)


# ---------------------------------------------------------------------------- output
def status_text(d: Doc) -> str:
    """A campaign's status as a few lines and a table."""
    c, e = d["campaign"], d["embargo"]
    lines = [f"campaign {c['id']}: {c['name']} (project {c['project']}, partners {', '.join(c['partners'])})",
             f"results: {'released' if e['lifted'] else 'embargoed'} — {e['rule']}"]
    lines += [f"  {r['task']} × {r['model']}: {r['state']} at {r['site'] or '-'}"
              f"{' under ' + r['agreement'] if r['agreement'] else ''} (job {r['job']}, {r['logs']} log(s))"
              for r in d["runs"]] or [f"  not submitted ({d['pairs']} pair(s))"]
    for partner, x in sorted(d["compute"]["by_host_partner"].items()):
        lines.append(f"compute at {partner}: {x['gpu_hours']:.4f} GPU-h, {x['energy_kwh']:.4f} kWh, "
                     f"{x['emissions_kg']:.4f} kgCO2e ({x['jobs']} job(s)"
                     f"{', under ' + ', '.join(x['agreements']) if x['agreements'] else ''})")
    return "\n".join(lines)


def results_text(d: Doc) -> str:
    """Scores per task and model, with Inspect's stderr and a 95 % interval."""
    rows = []
    for x in sorted(d["results"], key=lambda r: (r["task"], r["model"])):
        for s in x["scores"]:
            ci = (f"[{s['ci_low']:.3f}, {s['ci_high']:.3f}]" if s["ci_low"] is not None else "-")
            err = f"{s['stderr']:.3f}" if s["stderr"] is not None else "-"
            rows.append(f"{x['task']:<14} {x['model']:<14} {s['metric']:<10} {s['value']:>7.3f}  "
                        f"{err:>7}  {ci}  ({x['completed']}/{x['samples']} samples, v{x['task_version']})")
    head = f"{'TASK':<14} {'MODEL':<14} {'METRIC':<10} {'VALUE':>7}  {'STDERR':>7}  95% CI"
    pending = [f"pending: {', '.join(d['pending'])}"] if d["pending"] else []
    return "\n".join([head, *rows, *pending]) if rows else "\n".join(["no results yet", *pending])
