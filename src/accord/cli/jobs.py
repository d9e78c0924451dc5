"""The job commands: ``accord submit``, ``jobs``, ``show``, ``logs``, ``cancel`` and ``outputs``.

Thin shells over ``/api/v1/jobs``: each prints a readable line or table, or with
``--json`` the API's own JSON. ``accord submit --parsable`` prints the job's id alone
(``J=$(accord submit --parsable -- ...)``, as ``sbatch --parsable``); ``accord submit
--wait`` exits 1 when the job did not complete.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from accord.cli.common import (
    EXIT_UNAVAILABLE,
    FINAL,
    Command,
    Doc,
    add_job_arguments,
    input_bytes,
    job_document,
    output,
    positionals,
    segment,
)
from accord.domain.errors import InvalidInput, NotFound, Problem, Unavailable

if TYPE_CHECKING:
    from accord.client import Client


# ---------------------------------------------------------------------------- arguments
def _submit_arguments(parser: argparse.ArgumentParser) -> None:
    add_job_arguments(parser)
    parser.add_argument("--idempotency-key")
    parser.add_argument("--wait", action="store_true", help="wait until the job ends")
    parser.add_argument("--parsable", action="store_true",
                        help="print the job's id alone (for J=$(accord submit --parsable ...))")


def _jobs_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--state", action="append")
    parser.add_argument("--limit", type=int, default=50)


# ---------------------------------------------------------------------------- handlers
def submit(args: argparse.Namespace, command: list[str], client: Client) -> int:
    """``accord submit``: the job's id and state (with ``--wait``, once it has ended), the
    id alone with ``--parsable``, the job's JSON with ``--json``.

    Raises:
        InvalidInput: ``--parsable`` with ``--json``; a job document the server refuses.
    """
    if args.parsable and args.json:
        raise InvalidInput([Problem("--parsable", "goes without --json", "--parsable --json",
                                    "one of them: --parsable prints the id alone, --json the job")])
    doc = job_document(args, command)
    for path in args.input_files or ():
        client.request("POST", "/api/v1/files", content=input_bytes(path),
                       headers={"Content-Type": "application/octet-stream"})
    job = client.submit(doc, args.idempotency_key)
    if args.wait:
        job = _wait(client, job["id"])
    if args.parsable:
        print(job["id"], flush=True)
    else:
        output(args, job, lambda j: f"{j['id']}: {j['state']}" + (f" — {j['reason']}" if args.wait else ""))
    if args.wait and job["state"] != "completed":
        return EXIT_UNAVAILABLE
    return 0


def list_jobs(args: argparse.Namespace, _command: list[str], client: Client) -> int:
    """``accord jobs [--state S]... [--limit N]``."""
    return output(args, client.jobs(args.state, args.limit), _jobs_table)


def show(args: argparse.Namespace, _command: list[str], client: Client) -> int:
    """``accord show JOB``: the job, its story and, once it has ended, its footprint."""
    job = client.job(args.job)
    job["footprint"] = _footprint(client, job)
    return output(args, job, _show_text)


def logs(args: argparse.Namespace, _command: list[str], client: Client) -> int:
    """``accord logs JOB``: the job's stdout to stdout, its stderr to stderr."""
    out = client.logs(args.job)
    if args.json:
        print(json.dumps(out))
    else:
        sys.stdout.write(out["stdout"])
        sys.stderr.write(out["stderr"])
    return 0


def cancel(args: argparse.Namespace, _command: list[str], client: Client) -> int:
    """``accord cancel JOB``."""
    return output(args, client.cancel(args.job), lambda j: f"{j['id']}: {j['state']} — {j['reason']}")


def _wait(client: Client, job_id: str) -> Any:
    delay = 0.2
    while True:
        job = client.job(job_id)
        if job["state"] in FINAL:
            return job
        time.sleep(delay)
        delay = min(delay * 1.5, 2.0)


def _footprint(client: Client, job: Doc) -> Any:
    """The job's energy and emissions once it has ended (None before, or from a server
    that does not have the route)."""
    from accord.domain.errors import NotFound

    if job["state"] not in FINAL:
        return None
    try:
        return client.request("GET", f"/api/v1/jobs/{job['id']}/footprint")
    except NotFound:
        return None


# ---------------------------------------------------------------------------- the commands
#: ``submit`` is listed apart from the others: ``accord --help`` shows it before the ledger.
SUBMIT = Command("submit", "submit a job: -- COMMAND... or SCRIPT", _submit_arguments, run=submit)
def _outputs_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("job")
    parser.add_argument("name", nargs="?", help="one output file to fetch (default: list them)")
    parser.add_argument("--to", type=Path, metavar="PATH", help="write the file here (default: stdout)")


def outputs(args: argparse.Namespace, _command: list[str], client: Client) -> int:
    """``accord outputs JOB [NAME] [--to PATH]``: the job's output files at the hub, or one of
    them (checked against its SHA-256)."""
    if args.name is None:
        return output(args, client.get(f"/api/v1/jobs/{segment(args.job)}/outputs"), _outputs_table)
    listed = client.get(f"/api/v1/jobs/{segment(args.job)}/outputs")["outputs"]
    found = next((o for o in listed if o["name"] == args.name), None)
    if found is None:
        raise NotFound(f"job {args.job} has no output {args.name!r} at the hub")
    resp = client.http.get(f"/api/v1/jobs/{segment(args.job)}/outputs/{args.name}")
    if resp.status_code != 200 or hashlib.sha256(resp.content).hexdigest() != found["sha256"]:
        raise Unavailable(f"output {args.name!r} did not arrive whole (HTTP {resp.status_code})")
    if args.to is not None:
        args.to.write_bytes(resp.content)
    else:
        sys.stdout.buffer.write(resp.content)
        sys.stdout.flush()
    return 0


def _outputs_table(doc: Doc) -> str:
    rows = [f"{o['size']:>12,}  {o['sha256'][:12]}  {o['name']}" for o in doc["outputs"]]
    return "\n".join(rows) or "no output files at the hub (yet)"


COMMANDS = (
    Command("jobs", "list jobs", _jobs_arguments, run=list_jobs),
    Command("show", "a job and its story", positionals("job"), run=show),
    Command("logs", "a job's output", positionals("job"), run=logs),
    Command("cancel", "cancel a job", positionals("job"), run=cancel),
    Command("outputs", "a job's output files: list them, or fetch one", _outputs_arguments, run=outputs),
)


# ---------------------------------------------------------------------------- output
def _jobs_table(jobs: list[Doc]) -> str:
    if not jobs:
        return "no jobs"
    head = f"{'ID':<22} {'STATE':<10} {'SITE':<14} {'GPUS':>4}  {'NAME':<20} SUBMITTED"
    rows = [f"{j['id']:<22} {j['state']:<10} {(j['site'] or '-'):<14} {j['spec']['gpus']:>4}  "
            f"{j['spec']['name'][:20]:<20} {j['submitted_at'][:19]}" for j in jobs]
    return "\n".join([head, *rows])


def _show_text(j: Doc) -> str:
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
        if o.get("account") or o.get("local_user"):   # the site enforces the agreement
            who, account = o.get("local_user") or "-", o.get("account") or "-"
            lines.append(f"  ran as:   {who} in Slurm account {account}")
    lines += _footprint_lines(j.get("footprint"))
    lines.append("  story:")
    for e in j["story"]:
        move = f"{e['before'] or '·'} → {e['after']}"
        lines.append(f"    {e['at'][:23]}  {e['kind']:<9} {move:<24} {e['reason']}")
    return "\n".join(lines)


def _footprint_lines(f: Doc | None) -> list[str]:
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
