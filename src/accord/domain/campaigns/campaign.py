"""Joint model-testing campaigns: Inspect tasks × model endpoints, run under agreements,
with results shared by policy.

A campaign names versioned Inspect tasks, OpenAI-compatible model endpoints, the partners
taking part, the sites its jobs may use, the project it is charged to, and a results
policy: which partners see which (task, model) results, and an embargo that lifts on a
date or once every partner's programme officer approved release. Everything here is
pure: parsing with every problem listed, the access rules (each an
:class:`~accord.domain.access.rules.Access` naming its rule and facts), and the job script a
(task, model) pair runs. See ``docs/design/campaigns.md``.
"""

from __future__ import annotations

import enum
import hashlib
import math
import re
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from urllib.parse import urlparse

from accord.domain.access.rules import Access, Principal, Role, allow, deny
from accord.domain.errors import InvalidInput
from accord.domain.federation.model import Federation
from accord.domain.fieldreader import FieldReader

LOG_DIR = "inspect-logs"          # relative to the job's working directory
MAX_ITEMS = 50                     # tasks, models, partners, sites, shares
TASK_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")
VERSION = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,63}$")
MODEL_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:/@-]{0,199}$")
Z = 1.959963984540054              # two-sided 95 % normal quantile


class EmbargoKind(enum.Enum):
    """When a campaign's results may be read."""

    NONE = "none"            # as soon as they are collected
    DATE = "date"            # from ``until`` (UTC day) on
    APPROVAL = "approval"    # once every partner's programme officer approved release


@dataclass(frozen=True, slots=True)
class TaskRef:
    """An Inspect task: ``name`` is its ``@task`` function, ``version`` must equal the
    task's own ``version``; ``file`` is an absolute path at the sites, or None for the
    task of that name shipped with Accord."""

    name: str
    version: str
    file: str | None = None


@dataclass(frozen=True, slots=True)
class ModelEndpoint:
    """A model behind an OpenAI-compatible API (``base_url`` ends before ``/chat``)."""

    name: str
    base_url: str
    model: str
    partner: str | None = None   # who provides it (informational)


@dataclass(frozen=True, slots=True)
class Share:
    """What one partner's people may read: these tasks and models (empty: all)."""

    partner: str
    tasks: tuple[str, ...] = ()
    models: tuple[str, ...] = ()

    def covers(self, task: str, model: str) -> bool:
        """Whether the (task, model) result is in this share."""
        return (not self.tasks or task in self.tasks) and (not self.models or model in self.models)


@dataclass(frozen=True, slots=True)
class Embargo:
    """Until when results stay closed (``until`` only for :attr:`EmbargoKind.DATE`)."""

    kind: EmbargoKind
    until: date | None = None


@dataclass(frozen=True, slots=True)
class ResultsPolicy:
    """Who sees what, and from when."""

    shares: tuple[Share, ...]
    embargo: Embargo

    def share(self, partner: str) -> Share | None:
        """The partner's share, if it has one."""
        return next((s for s in self.shares if s.partner == partner), None)


@dataclass(frozen=True, slots=True)
class Campaign:
    """A campaign as created; ``created_by``/``created_at`` are set by Accord."""

    id: str
    name: str
    project: str
    partners: tuple[str, ...]
    sites: tuple[str, ...]
    tasks: tuple[TaskRef, ...]
    models: tuple[ModelEndpoint, ...]
    policy: ResultsPolicy
    gpus: int = 1
    time_limit_s: int = 1800
    created_by: str = ""
    created_at: datetime | None = None

    def pairs(self) -> list[tuple[TaskRef, ModelEndpoint]]:
        """Every (task, model) pair, tasks first, in the campaign's order."""
        return [(t, m) for t in self.tasks for m in self.models]

    def site_for(self, index: int) -> str:
        """The site the ``index``-th pair is pinned to: the allowed sites in turn, so a
        campaign uses compute at each of them."""
        return self.sites[index % len(self.sites)]


@dataclass(frozen=True, slots=True)
class ScoreLine:
    """One metric of one scorer of an Inspect log, with a 95 % interval from Inspect's
    stderr when it reports one (normal approximation, clipped to [0, 1] for accuracy)."""

    scorer: str
    metric: str
    value: float
    stderr: float | None = None
    ci_low: float | None = None
    ci_high: float | None = None


def run_key(campaign_id: str, task: str, model: str) -> str:
    """The idempotency key of a pair's job: submitting twice gives the same job.

    >>> run_key("c1", "arithmetic", "calc")
    'campaign:c1:arithmetic:calc'
    """
    return f"campaign:{campaign_id}:{task}:{model}"


def interval(metric: str, value: float, stderr: float | None) -> tuple[float | None, float | None]:
    """A 95 % normal interval around ``value``; (None, None) without a stderr.

    >>> interval("accuracy", 0.5, 0.25)
    (0.010009, 0.989991)
    >>> interval("accuracy", 1.0, 0.0), interval("mean", 3.0, None)
    ((1.0, 1.0), (None, None))
    """
    if stderr is None or not math.isfinite(stderr) or not math.isfinite(value):
        return None, None
    low, high = value - Z * stderr, value + Z * stderr
    if metric == "accuracy":
        low, high = max(0.0, low), min(1.0, high)
    return round(low, 6), round(high, 6)


# ------------------------------------------------------------------ parsing
FIELDS = ("id", "name", "project", "partners", "sites", "tasks", "models", "results", "gpus",
          "time_limit_s")


def parse_campaign(doc: Mapping[str, object], federation: Federation,
                   builtin: Mapping[str, str]) -> Campaign:
    """Validate a campaign document (as ``encode_campaign`` writes it) against the
    federation; ``builtin`` maps the shipped task names to their versions.

    Raises:
        InvalidInput: every problem, each naming its field, the bad value and what is
            allowed.
    """
    r = FieldReader()
    r.unknown_keys(doc, "", FIELDS)
    cid = r.ident(doc, "id", "")
    name = r.text(doc, "name", "", required=False) or cid or ""
    project = r.ident(doc, "project", "")
    partner_ids = [x.id for x in federation.partners]
    partners = _list(r, doc, "partners", partner_ids, "partner")
    site_ids = [s.id for s in federation.sites]
    sites = _list(r, doc, "sites", site_ids, "site")
    for i, site in enumerate(sites):     # the compute comes from the partners taking part
        owner = next((x.partner for x in federation.sites if x.id == site), None)
        if owner is not None and partners and owner not in partners:
            r.add(f"sites[{i}]", f"is a site of partner {owner}, which does not take part", site,
                  ", ".join(x.id for x in federation.sites if x.partner in partners))
    tasks = tuple(_task(r, t, f"tasks[{i}]", builtin) for i, t in enumerate(_tables(r, doc, "tasks")))
    models = tuple(_model(r, m, f"models[{i}]", partner_ids)
                   for i, m in enumerate(_tables(r, doc, "models")))
    _unique(r, "tasks", [t.name for t in tasks if t is not None])
    _unique(r, "models", [m.name for m in models if m is not None])
    gpus = int(r.number(doc, "gpus", "", minimum=1, maximum=1024, required=False, default=1) or 1)
    limit = int(r.number(doc, "time_limit_s", "", minimum=60, maximum=7 * 86400, required=False,
                         default=1800) or 1800)
    policy = _policy(r, doc, partners, [t.name for t in tasks if t], [m.name for m in models if m])
    if r.problems:
        raise InvalidInput(r.problems)
    assert cid is not None and project is not None and policy is not None
    return Campaign(cid, name, project, partners, sites, tuple(t for t in tasks if t is not None),
                    tuple(m for m in models if m is not None), policy, gpus, limit)


def _tables(r: FieldReader, doc: Mapping[str, object], key: str) -> list[Mapping[str, object]]:
    found = r.tables(doc, key, "")
    if not found and key in doc and isinstance(doc.get(key), list):
        r.add(key, "must name at least one", "[]", f"1 to {MAX_ITEMS} entries")
    elif key not in doc:
        r.add(key, "is required", allowed=f"1 to {MAX_ITEMS} entries")
    elif len(found) > MAX_ITEMS:
        r.add(key, "has too many entries", len(found), f"at most {MAX_ITEMS}")
        return found[:MAX_ITEMS]
    return found


def _list(r: FieldReader, doc: Mapping[str, object], key: str, known: Sequence[str],
          what: str) -> tuple[str, ...]:
    if key not in doc:
        r.add(key, "is required", allowed=", ".join(known))
        return ()
    values = r.strings(doc, key, "")
    if key in doc and isinstance(doc.get(key), list) and not doc.get(key):
        r.add(key, f"must name at least one {what}", "[]", ", ".join(known))
    for i, v in enumerate(values):
        r.member(v, f"{key}[{i}]", known, what)
    _unique(r, key, list(values))
    return tuple(values[:MAX_ITEMS])


def _unique(r: FieldReader, where: str, names: list[str]) -> None:
    seen: set[str] = set()
    for n in names:
        if n in seen:
            r.add(where, "names one entry twice", n, "distinct names")
        seen.add(n)


def _task(r: FieldReader, t: Mapping[str, object], path: str,
          builtin: Mapping[str, str]) -> TaskRef | None:
    r.unknown_keys(t, path, ("name", "version", "file"))
    name = r.text(t, "name", path)
    raw = t.get("version")
    version = str(raw) if isinstance(raw, int | str) and not isinstance(raw, bool) else None
    if version is None or not VERSION.match(version):
        r.add(f"{path}.version", "is required (Inspect's task version)" if raw is None else
              "is not a task version", raw, "an integer, or letters, digits and . _ + - (at most 64)")
        version = None
    file = r.text(t, "file", path, required=False)
    if name is not None and not TASK_NAME.match(name):
        r.add(f"{path}.name", "is not an Inspect task name", name, "a Python identifier")
        return None
    if file is not None:
        if not file.startswith("/") or not file.endswith(".py") or "\x00" in file or ".." in file.split("/"):
            r.add(f"{path}.file", "must be an absolute path to a .py file at the sites", file,
                  "/path/to/tasks.py")
            return None
    elif name is not None and name not in builtin:
        r.add(f"{path}.name", "is not a task shipped with Accord (give file for others)", name,
              ", ".join(sorted(builtin)))
        return None
    elif name is not None and version is not None and builtin[name] != version:
        r.add(f"{path}.version", f"does not match the shipped task {name}", version, builtin[name])
        return None
    if name is None or version is None:
        return None
    return TaskRef(name, version, file)


def _model(r: FieldReader, m: Mapping[str, object], path: str,
           partners: Sequence[str]) -> ModelEndpoint | None:
    r.unknown_keys(m, path, ("name", "base_url", "model", "partner"))
    name = r.ident(m, "name", path)
    url = r.text(m, "base_url", path)
    model = r.text(m, "model", path)
    partner = r.text(m, "partner", path, required=False)
    r.member(partner, f"{path}.partner", partners, "partner")
    if url is not None:
        try:
            parsed = urlparse(url)
            _ = parsed.port              # raises for a port that is not a number
        except ValueError:
            parsed = urlparse("")
        if parsed.scheme not in ("http", "https") or not parsed.netloc or any(c.isspace() for c in url):
            r.add(f"{path}.base_url", "is not an http(s) URL", url, "e.g. https://host/v1")
            url = None
    if model is not None and not MODEL_ID.match(model):
        r.add(f"{path}.model", "is not a model id", model, "letters, digits and . _ : / @ -")
        model = None
    if name is None or url is None or model is None or (partner is not None and partner not in partners):
        return None
    return ModelEndpoint(name, url.rstrip("/"), model, partner)


def _policy(r: FieldReader, doc: Mapping[str, object], partners: tuple[str, ...],
            tasks: list[str], models: list[str]) -> ResultsPolicy | None:
    res = r.table(doc, "results", "")
    r.unknown_keys(res, "results", ("shares", "embargo", "until"))
    kind = r.choice(res, "embargo", "results", EmbargoKind, default=EmbargoKind.APPROVAL)
    until = r.day(res, "until", "results", required=kind is EmbargoKind.DATE)
    if until is not None and kind is not EmbargoKind.DATE:
        r.add("results.until", "is only for embargo = \"date\"", until.isoformat(), "no until")
    shares: list[Share] = []
    if "shares" not in res:
        shares = [Share(x) for x in partners]     # default: every partner sees everything
    for i, s in enumerate(r.tables(res, "shares", "results")):
        path = f"results.shares[{i}]"
        r.unknown_keys(s, path, ("partner", "tasks", "models"))
        partner = r.text(s, "partner", path)
        r.member(partner, f"{path}.partner", partners, "partner of the campaign")
        ts, ms = r.strings(s, "tasks", path), r.strings(s, "models", path)
        for j, t in enumerate(ts):
            r.member(t, f"{path}.tasks[{j}]", tasks, "task of the campaign")
        for j, m in enumerate(ms):
            r.member(m, f"{path}.models[{j}]", models, "model of the campaign")
        if partner is not None:
            shares.append(Share(partner, ts, ms))
    _unique(r, "results.shares", [s.partner for s in shares])
    if kind is None:
        return None
    return ResultsPolicy(tuple(shares), Embargo(kind, until))


# ------------------------------------------------------------------ encoding
def encode_campaign(c: Campaign) -> dict[str, object]:
    """The campaign as a JSON-able document that :func:`parse_campaign` reads back."""
    results: dict[str, object] = {
        "embargo": c.policy.embargo.kind.value,
        "shares": [{"partner": s.partner, "tasks": list(s.tasks), "models": list(s.models)}
                   for s in c.policy.shares]}
    if c.policy.embargo.until is not None:
        results["until"] = c.policy.embargo.until.isoformat()
    return {
        "id": c.id, "name": c.name, "project": c.project, "partners": list(c.partners),
        "sites": list(c.sites), "gpus": c.gpus, "time_limit_s": c.time_limit_s,
        "tasks": [{"name": t.name, "version": t.version, **({"file": t.file} if t.file else {})}
                  for t in c.tasks],
        "models": [{"name": m.name, "base_url": m.base_url, "model": m.model,
                    **({"partner": m.partner} if m.partner else {})} for m in c.models],
        "results": results,
    }


# ------------------------------------------------------------------ access rules
def people_of(p: Principal, partner: str, day: date) -> bool:
    """Whether ``p`` acts for ``partner``: affiliated with it on ``day``, or its
    programme officer or auditor."""
    return (partner in p.partners(day) or p.holds(Role.PROGRAMME_OFFICER, partner)
            or p.holds(Role.AUDITOR, partner))


def can_see_campaign(p: Principal, c: Campaign, day: date, project_members: frozenset[str]) -> Access:
    """Its definition and progress (not its results): admins, the people of its
    partners, and members of the project it is charged to."""
    if p.is_admin:
        return allow("admins see every campaign")
    if p.user in project_members:
        return allow("a member of the campaign's project", ("project", c.project))
    mine = [x for x in c.partners if people_of(p, x, day)]
    if mine:
        return allow("acts for a partner of the campaign", ("partner", mine[0]))
    return deny("not a partner of the campaign", ("campaign", c.id),
                ("partners", ",".join(c.partners)))


def embargo_lifted(c: Campaign, approvals: frozenset[str], day: date) -> Access:
    """Whether the embargo has lifted on ``day`` given the partners that approved release."""
    e = c.policy.embargo
    if e.kind is EmbargoKind.NONE:
        return allow("no embargo")
    if e.kind is EmbargoKind.DATE:
        assert e.until is not None
        if day >= e.until:
            return allow("the embargo date has passed", ("until", e.until.isoformat()))
        return deny("results are embargoed until a date", ("until", e.until.isoformat()),
                    ("today", day.isoformat()))
    missing = [x for x in c.partners if x not in approvals]
    if not missing:
        return allow("every partner approved release", ("approved", ",".join(sorted(approvals))))
    return deny("results are embargoed until every partner approves release",
                ("approved", ",".join(sorted(approvals)) or "none"), ("waiting_for", ",".join(missing)))


def readable_pairs(p: Principal, c: Campaign, day: date) -> frozenset[tuple[str, str]]:
    """The (task, model) results the shares give ``p`` (the embargo aside)."""
    out: set[tuple[str, str]] = set()
    for s in c.policy.shares:
        if s.partner in c.partners and people_of(p, s.partner, day):
            out.update((t.name, m.name) for t, m in c.pairs() if s.covers(t.name, m.name))
    return frozenset(out)


def can_read_results(p: Principal, c: Campaign, approvals: frozenset[str], day: date) -> Access:
    """Results: only the people of a partner whose share covers some result, and only
    once the embargo has lifted. Admins are not a partner: they are refused too."""
    if not readable_pairs(p, c, day):
        return deny("the results policy gives you no results of this campaign", ("campaign", c.id),
                    ("shared_with", ",".join(s.partner for s in c.policy.shares)))
    return embargo_lifted(c, approvals, day)


def can_approve_release(p: Principal, c: Campaign, partner: str) -> Access:
    """Release approval for ``partner``: its programme officer, for a partner of the
    campaign whose embargo waits for approvals."""
    if c.policy.embargo.kind is not EmbargoKind.APPROVAL:
        return deny("this campaign's embargo does not wait for approvals",
                    ("embargo", c.policy.embargo.kind.value))
    if partner not in c.partners:
        return deny("not a partner of the campaign", ("partner", partner))
    if not p.holds(Role.PROGRAMME_OFFICER, partner):
        return deny("only a programme officer of the partner approves its release", ("partner", partner))
    return allow("programme officer of a campaign partner", ("partner", partner))


# ------------------------------------------------------------------ the job
def api_key_env(m: ModelEndpoint) -> str:
    """The variable Inspect's ``openai-api`` provider reads the endpoint's key from.

    >>> api_key_env(ModelEndpoint("eu-model-1", "http://x/v1", "m"))
    'EU_MODEL_1_API_KEY'
    """
    return re.sub(r"[^A-Z0-9]", "_", m.name.upper()) + "_API_KEY"


def inspect_model(m: ModelEndpoint) -> str:
    """Inspect's model name for an OpenAI-compatible endpoint.

    >>> inspect_model(ModelEndpoint("calc", "http://127.0.0.1:9/v1", "calc-7b"))
    'openai-api/calc/calc-7b'
    """
    return f"openai-api/{m.name}/{m.model}"


def job_script(c: Campaign, t: TaskRef, m: ModelEndpoint, python: str, task_file: str,
               task_source: str | None = None) -> str:
    """The batch script of a pair: Inspect evaluates the task against the endpoint and
    writes a JSON log into ``inspect-logs/`` of the job's working directory. The
    endpoint's key is taken from the site's environment; a dummy when it has none
    (endpoints that need no key).

    With ``task_source`` (a task shipped with Accord, as the hub checked its version), the
    script carries the task itself and writes it into the job's directory, and runs the
    site's ``python3`` when ``python`` (the hub's) is not there: the job then runs at any
    site, one whose agent dials in from abroad too."""
    key = api_key_env(m)
    lines = ["#!/bin/bash",
             f"# Accord campaign {c.id}: task {t.name} (version {t.version}) on model {m.name}",
             "set -eu"]
    run = shlex.quote(python)
    if task_source is not None:
        task_file = f"accord_task_{t.name}.py"
        end = "ACCORD_TASK_" + hashlib.sha256(task_source.encode()).hexdigest()[:16].upper()
        lines += [f"cat > {task_file} <<'{end}'", task_source.rstrip("\n"), end,
                  f"PY={shlex.quote(python)}", '[ -x "$PY" ] || PY=python3']
        run = '"$PY"'
    argv = ["-m", "inspect_ai", "eval", f"{task_file}@{t.name}", "--model", inspect_model(m),
            "--model-base-url", m.base_url, "--log-dir", LOG_DIR, "--log-format", "json",
            "--display", "none", "--max-connections", "4",
            "--tags", f"accord-campaign={c.id}", "--metadata", f"accord_campaign={c.id}"]
    lines += [f'export {key}="${{{key}:-accord-no-key}}"', "export INSPECT_DISPLAY=none",
              f"exec {run} {shlex.join(argv)}"]
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------ stored facts
@dataclass(frozen=True, slots=True)
class Run:
    """A pair's job; ``collected_at`` is set once its Inspect logs are stored."""

    campaign: str
    task: str
    model: str
    job_id: str
    submitted_by: str
    submitted_at: datetime
    collected_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class CollectedLog:
    """An Inspect log collected from a site: its bytes' SHA-256 and Accord's summary
    (JSON text); ``content`` is only loaded when asked for."""

    campaign: str
    task: str
    model: str
    job_id: str
    name: str
    sha256: str
    size: int
    summary: str
    collected_at: datetime
    content: bytes | None = None
