"""The ``accord`` commands for secure access: the caller, API tokens, users and roles,
projects, allocations, compliance holds, the audit log, and a job's preview.

::

    accord whoami
    accord token create NAME --scope S [--scope S...] [--days N] [--for-user U]
    accord token list | revoke ID
    accord user add ID --name N --institution I [--email E] [--oidc-issuer X --oidc-subject Y]
    accord user show ID | grant ID ROLE [--partner P | --site S | --global]
    accord user second ID --institution I --kind secondment|placement --start D --end D
    accord project create ID --name N --partner P [--theme T] | list | show ID
    accord project add-member ID USER | remove-member ID USER
    accord allocation apply PROJECT --agreement A --host H --units U --start YYYY-MM --end YYYY-MM
    accord allocation list [--project P] [--state S] | approve ID [--reason R] | refuse ID --reason R
    accord allocation revoke ID --reason R | increase ID --units U [--reason R]
    accord compliance list | approve JOB [--reason R] | refuse JOB --reason R
    accord audit [--actor A] [--action X] [--since ISO] [--limit N]
    accord preview [the options of accord submit] -- COMMAND...   (or SCRIPT)

Each is a thin shell over the REST API (:mod:`accord.api.access_routes`, and
``POST /api/v1/jobs/preview``): it prints a readable table or text, or with ``--json``
the API's own JSON. Failures come back from :mod:`accord.client` as the project's
exceptions, which :func:`accord.cli.main` prints on one line: bad input and refusals
exit 2, a server that cannot be reached exits 1.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime

from accord.cli.common import (
    Api,
    Arguments,
    Doc,
    add_job_arguments,
    emit,
    group,
    job_document,
    leaf,
    positionals,
    segment,
)
from accord.domain.access.projects import AllocationState
from accord.domain.access.rules import GRANTABLE, ROLE_SCOPES, AffiliationKind, ScopeKind
from accord.domain.errors import InvalidInput, Problem

AUDIT_PAGE = 1000   # the server's default page of audit records
SHOWN_ONCE = ("warning: this token is shown once — Accord keeps only a hash of it. Save it now, "
              "then use it with --token-file FILE or $ACCORD_TOKEN.")


# ---------------------------------------------------------------------------- arguments
def _token_create_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("name", help="what the token is for, e.g. 'laptop'")
    parser.add_argument("--scope", dest="scopes", action="append", required=True, metavar="S",
                        help="repeatable: jobs:read, jobs:write, ledger:read, ledger:write, "
                             "projects:read, projects:write, compliance, audit:read (the audit log: "
                             "ledger:read does not read it), admin")
    parser.add_argument("--days", type=int, help="lifetime in days, 1..366 (default 30)")
    parser.add_argument("--for-user", metavar="U", help="admins: mint it for this user")


def _user_add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("id")
    parser.add_argument("--name", required=True)
    parser.add_argument("--institution", required=True, help="their primary institution's id")
    parser.add_argument("--email")
    parser.add_argument("--oidc-issuer", metavar="X", help="with --oidc-subject: their OIDC identity")
    parser.add_argument("--oidc-subject", metavar="Y")


def _user_grant_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("id")
    parser.add_argument("role", help=", ".join(r.value for r in GRANTABLE))
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--partner", metavar="P", help="for this partner (programme_officer, auditor)")
    where.add_argument("--site", metavar="S", help="at this site (site_operator)")
    where.add_argument("--global", dest="everywhere", action="store_true",
                       help="everywhere (admin, auditor)")


def _user_second_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("id")
    parser.add_argument("--institution", required=True, help="the host institution's id")
    parser.add_argument("--kind", required=True, choices=[AffiliationKind.SECONDMENT.value,
                                                          AffiliationKind.PLACEMENT.value])
    parser.add_argument("--start", required=True, metavar="YYYY-MM-DD")
    parser.add_argument("--end", required=True, metavar="YYYY-MM-DD", help="inclusive")


def _project_create_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("id")
    parser.add_argument("--name", required=True)
    parser.add_argument("--partner", required=True, help="its home partner (one you are affiliated with)")
    parser.add_argument("--theme")


def _allocation_apply_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("project")
    parser.add_argument("--agreement", required=True)
    parser.add_argument("--host", required=True, help="the granting partner")
    parser.add_argument("--units", required=True, type=float, help="normalised units")
    parser.add_argument("--start", required=True, metavar="YYYY-MM", help="first month")
    parser.add_argument("--end", required=True, metavar="YYYY-MM", help="last month")
    parser.add_argument("--site", dest="sites", action="append", metavar="S",
                        help="limit it to this site of the host (repeatable)")


def _allocation_list_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--project")
    parser.add_argument("--state", choices=[s.value for s in AllocationState])


def _decision_arguments(subject: str, *, reason_required: bool) -> Arguments:
    """A decision on ``subject`` (an allocation's id, a held job): a refusal needs a reason."""

    def add(parser: argparse.ArgumentParser) -> None:
        parser.add_argument(subject)
        parser.add_argument("--reason", required=reason_required, default="")

    return add


def _audit_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--actor", help="a user id")
    parser.add_argument("--action", help="e.g. user.enrol, token.create, allocation.decide, job.submit")
    parser.add_argument("--since", metavar="ISO", help="from this time (e.g. 2026-11-01T00:00:00Z)")
    parser.add_argument("--after", type=int, metavar="SEQ", help="only records after this sequence number")
    parser.add_argument("--limit", type=int, help=f"at most this many records (default {AUDIT_PAGE})")


# ---------------------------------------------------------------------------- handlers
def whoami(args: argparse.Namespace, _command: list[str], api: Api) -> int:
    """``accord whoami``: the caller as the server sees them."""
    return emit(args, api.get("/api/v1/me"), _me_text)


def token_create(args: argparse.Namespace, _command: list[str], api: Api) -> int:
    """``accord token create``: the secret goes to stdout alone (so ``> file`` keeps just
    it), the summary and the shown-once warning to stderr."""
    new = api.post("/api/v1/tokens", {"name": args.name, "scopes": args.scopes, "days": args.days,
                                      "for_user": args.for_user})
    if args.json:
        print(json.dumps(new, indent=2))
    else:
        print(f"created token {new['id']} for {new['user']}: {new['name']!r} "
              f"({', '.join(new['scopes'])}), expires {_time(new['expires_at'])}", file=sys.stderr)
        print(new["token"])
    print(SHOWN_ONCE, file=sys.stderr)
    return 0


def token_list(args: argparse.Namespace, _command: list[str], api: Api) -> int:
    """``accord token list``."""
    return emit(args, api.get("/api/v1/tokens")["tokens"], _tokens_table)


def token_revoke(args: argparse.Namespace, _command: list[str], api: Api) -> int:
    """``accord token revoke ID``."""
    t = api.delete(f"/api/v1/tokens/{segment(args.id)}")
    return emit(args, t, lambda x: f"revoked token {x['id']} ({x['name']!r} of {x['user']})")


def user_add(args: argparse.Namespace, _command: list[str], api: Api) -> int:
    """``accord user add``."""
    body = {"id": args.id, "name": args.name, "email": args.email, "institution": args.institution,
            "oidc_issuer": args.oidc_issuer, "oidc_subject": args.oidc_subject}
    return emit(args, api.post("/api/v1/users", body), lambda u: "enrolled " + _user_text(u))


def user_show(args: argparse.Namespace, _command: list[str], api: Api) -> int:
    """``accord user show ID``."""
    return emit(args, api.get(f"/api/v1/users/{segment(args.id)}"), _user_text)


def user_grant(args: argparse.Namespace, _command: list[str], api: Api) -> int:
    """``accord user grant ID ROLE [--partner P | --site S | --global]``."""
    body = grant_body(args.role, args.partner, args.site, args.everywhere)
    user = api.post(f"/api/v1/users/{segment(args.id)}/grants", body)
    return emit(args, user, lambda u: f"granted {_role(body)} to {u['id']}\n" + _user_text(u))


def user_second(args: argparse.Namespace, _command: list[str], api: Api) -> int:
    """``accord user second ID``: a secondment or placement."""
    body = {"institution": args.institution, "kind": args.kind, "start": args.start, "end": args.end}
    user = api.post(f"/api/v1/users/{segment(args.id)}/affiliations", body)
    return emit(args, user, lambda u: f"recorded {args.kind} of {u['id']} at {args.institution}\n"
                 + _user_text(u))


def project_create(args: argparse.Namespace, _command: list[str], api: Api) -> int:
    """``accord project create``."""
    body = {"id": args.id, "name": args.name, "partner": args.partner, "theme": args.theme}
    return emit(args, api.post("/api/v1/projects", body), lambda x: "created " + _project_text(x))


def project_list(args: argparse.Namespace, _command: list[str], api: Api) -> int:
    """``accord project list``."""
    return emit(args, api.get("/api/v1/projects")["projects"], _projects_table)


def project_show(args: argparse.Namespace, _command: list[str], api: Api) -> int:
    """``accord project show ID``: with its allocations."""
    return emit(args, api.get(f"/api/v1/projects/{segment(args.id)}"), _project_text)


def project_add_member(args: argparse.Namespace, _command: list[str], api: Api) -> int:
    """``accord project add-member ID USER``."""
    project = api.post(f"/api/v1/projects/{segment(args.id)}/members", {"user": args.user})
    return emit(args, project, lambda x: f"added {args.user} to {x['id']}\n" + _project_text(x))


def project_remove_member(args: argparse.Namespace, _command: list[str], api: Api) -> int:
    """``accord project remove-member ID USER``."""
    project = api.delete(f"/api/v1/projects/{segment(args.id)}/members/{segment(args.user)}")
    return emit(args, project, lambda x: f"removed {args.user} from {x['id']}\n" + _project_text(x))


def allocation_apply(args: argparse.Namespace, _command: list[str], api: Api) -> int:
    """``accord allocation apply PROJECT ...``."""
    body = {"agreement": args.agreement, "host": args.host, "units": args.units, "start": args.start,
            "end": args.end, "sites": args.sites}
    a = api.post(f"/api/v1/projects/{segment(args.project)}/allocations", body)
    return emit(args, a, lambda x: f"applied: {_allocation_line(x)}\n"
                 f"a programme officer of {x['host']} decides (accord allocation approve|refuse {x['id']})")


def allocation_list(args: argparse.Namespace, _command: list[str], api: Api) -> int:
    """``accord allocation list [--project P] [--state S]``."""
    found = api.get("/api/v1/allocations", project=args.project, state=args.state)["allocations"]
    return emit(args, found, _allocations_table)


def allocation_approve(args: argparse.Namespace, _command: list[str], api: Api) -> int:
    """``accord allocation approve ID [--reason R]``."""
    return _decide_allocation(args, api, approve=True)


def allocation_refuse(args: argparse.Namespace, _command: list[str], api: Api) -> int:
    """``accord allocation refuse ID --reason R``."""
    return _decide_allocation(args, api, approve=False)


def _decide_allocation(args: argparse.Namespace, api: Api, *, approve: bool) -> int:
    body = {"approve": approve, "reason": args.reason}
    a = api.post(f"/api/v1/allocations/{segment(args.id)}/decision", body)
    return emit(args, a, _allocation_line)


def allocation_revoke(args: argparse.Namespace, _command: list[str], api: Api) -> int:
    """``accord allocation revoke ID --reason R``: its sites close its account to new jobs."""
    a = api.post(f"/api/v1/allocations/{segment(args.id)}/revoke", {"reason": args.reason})
    return emit(args, a, _allocation_line)


def allocation_increase(args: argparse.Namespace, _command: list[str], api: Api) -> int:
    """``accord allocation increase ID --units U [--reason R]``."""
    body = {"units": args.units, "reason": args.reason}
    a = api.post(f"/api/v1/allocations/{segment(args.id)}/increase", body)
    return emit(args, a, _allocation_line)


def _increase_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("id")
    parser.add_argument("--units", required=True, type=float, help="normalised units to add")
    parser.add_argument("--reason", default="")


def compliance_list(args: argparse.Namespace, _command: list[str], api: Api) -> int:
    """``accord compliance list``: the runs held for review that you may see."""
    return emit(args, api.get("/api/v1/compliance")["held"], _held_table)


def compliance_approve(args: argparse.Namespace, _command: list[str], api: Api) -> int:
    """``accord compliance approve JOB [--reason R]``."""
    return _decide_compliance(args, api, approve=True)


def compliance_refuse(args: argparse.Namespace, _command: list[str], api: Api) -> int:
    """``accord compliance refuse JOB --reason R``."""
    return _decide_compliance(args, api, approve=False)


def _decide_compliance(args: argparse.Namespace, api: Api, *, approve: bool) -> int:
    body = {"approve": approve, "reason": args.reason}
    job = api.post(f"/api/v1/compliance/{segment(args.job)}/decision", body)
    return emit(args, job, lambda j: f"{j['id']}: {j['state']}"
                 + (f" — {j['reason']}" if j["reason"] else ""))


def audit(args: argparse.Namespace, _command: list[str], api: Api) -> int:
    """``accord audit``: oldest first, a page at a time (``--after`` the last one shown)."""
    page = api.get("/api/v1/audit", actor=args.actor, action=args.action, since=args.since,
                   after=args.after, limit=args.limit)
    records = page["records"]
    emit(args, records, _audit_table)
    if records and len(records) == (args.limit or AUDIT_PAGE) and not args.json:
        print(f"(more may follow: accord audit --after {records[-1]['seq']} ...)", file=sys.stderr)
    if page.get("spooled"):
        print(f"warning: {page['spooled']} audit record(s) wait in the server's spool (the database "
              "refused them or was down; they are retried and not shown here: see the server's log)",
              file=sys.stderr)
    return 0


def preview(args: argparse.Namespace, command: list[str], api: Api) -> int:
    """``accord preview``: what ``accord submit`` with the same arguments would do."""
    return emit(args, api.post("/api/v1/jobs/preview", job_document(args, command)), preview_text)


# ---------------------------------------------------------------------------- the commands
COMMANDS = (
    leaf("whoami", "who the server thinks you are: roles, projects, scopes", whoami),
    group("token", "API tokens for the CLI and automation",
           leaf("create", "mint a token (its secret is shown once)", token_create,
                 _token_create_arguments),
           leaf("list", "your tokens", token_list),
           leaf("revoke", "revoke a token", token_revoke, positionals("id"))),
    group("user", "users, their affiliations and roles (admins)",
           leaf("add", "enrol a user", user_add, _user_add_arguments),
           leaf("show", "a user's record", user_show, positionals("id")),
           leaf("grant", "give a user a role", user_grant, _user_grant_arguments),
           leaf("second", "record a secondment or placement", user_second, _user_second_arguments)),
    group("project", "research projects",
           leaf("create", "create a project that you lead", project_create, _project_create_arguments),
           leaf("list", "the projects you may see", project_list),
           leaf("show", "a project and its allocations", project_show, positionals("id")),
           leaf("add-member", "add a member (the PI)", project_add_member, positionals("id", "user")),
           leaf("remove-member", "remove a member (the PI); the sites take them out of its accounts",
                project_remove_member, positionals("id", "user"))),
    group("allocation", "allocations under agreements: apply, decide, list",
           leaf("apply", "apply for an allocation (the PI)", allocation_apply, _allocation_apply_arguments),
           leaf("list", "the allocations you may see", allocation_list, _allocation_list_arguments),
           leaf("approve", "approve (a programme officer)", allocation_approve,
                 _decision_arguments("id", reason_required=False)),
           leaf("refuse", "refuse, with a reason", allocation_refuse,
                 _decision_arguments("id", reason_required=True)),
           leaf("revoke", "withdraw an approved allocation, with a reason (its sites close it)",
                 allocation_revoke, _decision_arguments("id", reason_required=True)),
           leaf("increase", "add units to an approved allocation", allocation_increase,
                 _increase_arguments)),
    group("compliance", "runs held for compliance review",
           leaf("list", "the held runs you may see", compliance_list),
           leaf("approve", "let a held run go (its site's operator)", compliance_approve,
                 _decision_arguments("job", reason_required=False)),
           leaf("refuse", "refuse a held run, with a reason", compliance_refuse,
                 _decision_arguments("job", reason_required=True))),
    leaf("audit", "the audit log: who changed what, when, from where", audit, _audit_arguments),
    leaf("preview", "where, when and at what cost a job would run, and what the rules would do "
          "(takes submit's options; nothing is stored)", preview, add_job_arguments),
)


# ---------------------------------------------------------------------------- bodies
def grant_body(role: str, partner: str | None, site: str | None, everywhere: bool) -> Doc:
    """The body of a role grant from the command's flags; with no flag, the scope is
    the role's only one when it has just one (``admin``: global).

    >>> grant_body("programme_officer", "fr", None, False)
    {'role': 'programme_officer', 'scope': 'partner', 'target': 'fr'}
    >>> grant_body("admin", None, None, False)
    {'role': 'admin', 'scope': 'global', 'target': ''}

    Raises:
        InvalidInput: a role that is not granted explicitly; no scope flag where the
            role needs one; a scope the role does not take.
    """
    grantable = {r.value: r for r in GRANTABLE}
    if role not in grantable:
        raise InvalidInput([Problem("role", "is not a role that can be granted", role, ", ".join(grantable))])
    scopes = ROLE_SCOPES[grantable[role]]
    flags = {ScopeKind.PARTNER: "--partner P", ScopeKind.SITE: "--site S", ScopeKind.GLOBAL: "--global"}
    allowed = " or ".join(flags[s] for s in scopes)
    if partner is not None:
        scope, target = ScopeKind.PARTNER, partner
    elif site is not None:
        scope, target = ScopeKind.SITE, site
    elif everywhere or scopes == (ScopeKind.GLOBAL,):
        scope, target = ScopeKind.GLOBAL, ""
    else:
        raise InvalidInput([Problem("scope", f"role {role} needs a scope", None, allowed)])
    if scope not in scopes:
        raise InvalidInput([Problem("scope", f"does not fit role {role}", flags[scope].split()[0], allowed)])
    return {"role": role, "scope": scope.value, "target": target}


# ---------------------------------------------------------------------------- output
def _time(iso: str | None) -> str:
    """An ISO time shortened for a terminal: ``2026-11-22 13:45 UTC``.

    >>> _time("2026-11-22T13:45:07.123+00:00")
    '2026-11-22 13:45 UTC'
    >>> _time(None)
    '-'
    """
    if not iso:
        return "-"
    try:
        at = datetime.fromisoformat(iso).astimezone(UTC)
    except ValueError:
        return iso
    return at.strftime("%Y-%m-%d %H:%M UTC")


def _role(r: Doc) -> str:
    """A role grant in words.

    >>> _role({"role": "site_operator", "scope": "site", "target": "jean-zay"})
    'site_operator at site jean-zay'
    """
    if r["scope"] == ScopeKind.GLOBAL.value:
        return f"{r['role']} (global)"
    kind = "for partner" if r["scope"] == ScopeKind.PARTNER.value else "at site"
    return f"{r['role']} {kind} {r['target']}"


def _affiliation(a: Doc) -> str:
    """An affiliation in words.

    >>> _affiliation({"institution": "kaist", "partner": "kr", "kind": "secondment",
    ...               "start": "2026-11-01", "end": "2027-02-28"})
    'kaist (kr, secondment 2026-11-01..2027-02-28)'
    """
    when = f" {a['start']}..{a['end']}" if a.get("start") or a.get("end") else ""
    partner = f"{a['partner']}, " if a.get("partner") else ""
    return f"{a['institution']} ({partner}{a['kind']}{when})"


def _table(head: list[str], rows: list[list[str]], empty: str) -> str:
    """Left-aligned columns sized to their content; ``empty`` when there are no rows."""
    if not rows:
        return empty
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(head)]
    lines = [head, *rows]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)).rstrip()
                     for line in lines)


def _me_text(me: Doc) -> str:
    scopes = "all (not narrowed by an API token)" if me["scopes"] is None else ", ".join(me["scopes"])
    pi_of = set(me["pi_of"])
    return "\n".join([
        f"{me['user']} — {me['name']} (signed in with {me['via']})",
        f"  partners:     {', '.join(me['partners']) or 'none'}",
        f"  affiliations: {'; '.join(_affiliation(a) for a in me['affiliations']) or 'none'}",
        f"  roles:        {'; '.join(_role(r) for r in me['roles']) or 'none (researcher)'}",
        "  projects:     " + (", ".join(p + (" (PI)" if p in pi_of else "") for p in me["projects"])
                               or "none"),
        f"  token scopes: {scopes}",
    ])


def _token_state(t: Doc, now: datetime | None = None) -> str:
    if t["revoked_at"]:
        return "revoked"
    expired = datetime.fromisoformat(t["expires_at"]) <= (now or datetime.now(UTC))
    return "expired" if expired else "active"


def _tokens_table(tokens: list[Doc]) -> str:
    rows = [[t["id"], t["name"][:30], t["user"], ",".join(t["scopes"]), _time(t["created_at"]),
             _time(t["expires_at"]), _token_state(t)] for t in tokens]
    return _table(["ID", "NAME", "USER", "SCOPES", "CREATED", "EXPIRES", "STATE"], rows, "no tokens")


def _user_text(u: Doc) -> str:
    lines = [f"{u['id']} — {u['name']}" + (f" <{u['email']}>" if u["email"] else ""),
             f"  institution:  {u['institution']}"]
    if u["oidc_issuer"]:
        lines.append(f"  OIDC:         {u['oidc_subject']} at {u['oidc_issuer']}")
    extra = "; ".join(_affiliation(a) for a in u["affiliations"]) or "none (no secondment or placement)"
    lines.append(f"  affiliations: {extra}")
    lines.append(f"  roles:        {'; '.join(_role(r) for r in u['roles']) or 'none (researcher)'}")
    return "\n".join(lines)


def _project_text(x: Doc) -> str:
    lines = [f"project {x['id']} — {x['name']}",
             f"  partner: {x['partner']}   theme: {x['theme'] or '-'}   PI: {x['pi']}",
             f"  members: {', '.join(x['members'])}",
             f"  created: {_time(x['created_at'])}"]
    if "allocations" in x:
        table = _allocations_table(x["allocations"])
        lines += ["  allocations:", *(f"    {line}" for line in table.splitlines())]
    return "\n".join(lines)


def _projects_table(projects: list[Doc]) -> str:
    rows = [[x["id"], x["name"][:40], x["partner"], x["theme"] or "-", x["pi"], str(len(x["members"]))]
            for x in projects]
    return _table(["ID", "NAME", "PARTNER", "THEME", "PI", "MEMBERS"], rows, "no projects")


def _allocation_line(a: Doc) -> str:
    sites = f" at {', '.join(a['sites'])}" if a["sites"] else ""
    line = (f"allocation {a['id']} of project {a['project']}: {a['units']:g} units from {a['host']}"
            f"{sites} under {a['agreement']}, {a['start']}..{a['end']} — {a['state']}")
    if a["decided_by"]:
        line += f" by {a['decided_by']}" + (f": {a['reason']}" if a["reason"] else "")
    return line


def _allocations_table(allocations: list[Doc]) -> str:
    rows = [[a["id"], a["project"], a["agreement"], a["host"], f"{a['units']:g}",
             f"{a['start']}..{a['end']}", a["state"], a["decided_by"] or "-", (a["reason"] or "")[:40]]
            for a in allocations]
    return _table(["ID", "PROJECT", "AGREEMENT", "HOST", "UNITS", "MONTHS", "STATE", "DECIDED BY",
                   "REASON"], rows, "no allocations")


def _held_table(held: list[Doc]) -> str:
    rows = [[h["job"], h["owner"], h["project"] or "-", h["requester"] or "-", h["site"], str(h["gpus"]),
             f"{h['time_limit_s'] / 3600:g}h", h["rule"], _time(h["held_at"])] for h in held]
    return _table(["JOB", "OWNER", "PROJECT", "FROM", "SITE", "GPUS", "LIMIT", "RULE", "HELD"], rows,
                  "no runs held for compliance review")


def _audit_table(records: list[Doc]) -> str:
    rows = [[str(r["seq"]), r["at"][:19].replace("T", " "), r["actor"], r["action"], r["target"][:40],
             f"{r['outcome']} {r['status']}", r["source"], (r["detail"] or "")[:50]] for r in records]
    return _table(["SEQ", "AT (UTC)", "ACTOR", "ACTION", "TARGET", "OUTCOME", "FROM", "DETAIL"], rows,
                  "no audit records")


GATE_WORDS = {"go": "would run", "warn": "would run, with a warning", "lower": "would run at lower priority",
              "hold": "would be held", "fail": "would be refused"}


def preview_text(p: Doc) -> str:
    """A preview in words: where and when, cost, energy, emissions, what the gate would do."""
    if p["site"] is None:
        lines = [f"would not be placed ({p['verdict']})"]
    else:
        where = f"{p['site']} / {p['pool']}" + (f" under agreement {p['agreement']}" if p["agreement"]
                                                else " (at home: no agreement)")
        kg = p["emissions_kg"]
        lines = [f"would run at {where}, from {_time(p['start'])} ({p['verdict']})",
                 f"  cost:      {p['cost_units']:g} {p['reference_unit']}"
                 + (" (estimate at the time limit)" if p["agreement"] else " (not counted: runs at home)"),
                 f"  energy:    {p['energy_kwh']:g} kWh (estimate at the time limit, PUE included)",
                 "  emissions: " + ("unknown (no carbon intensity for the site)" if kg is None
                                    else f"{kg:g} kg CO2eq (estimate)")]
        if p["gate"] is not None:
            g = p["gate"]
            lines.append(f"  gate:      {g['action']} — {GATE_WORDS.get(g['action'], g['action'])}"
                         + (f": {g['note']}" if g["note"] else ""))
    lines += [f"  rule:      {r}" for r in p["rules"]]
    lines.append(f"  why:       {p['explanation']}")
    return "\n".join(lines)
