"""Build a :class:`Federation` from a parsed document, reporting every problem.

The document is the mapping a TOML parser returns; this module does no I/O.
Problems carry dotted paths (``sites[1].pools[0].gpu_model``) that the file
adapter turns into line numbers.
"""

from __future__ import annotations

import base64
from collections import Counter
from collections.abc import Mapping
from datetime import date

from accord.domain.access.compliance import parse_compliance
from accord.domain.errors import InvalidInput
from accord.domain.federation import limits as lim
from accord.domain.federation.model import (
    AgentSettings,
    Agreement,
    BackendKind,
    ExchangeRate,
    Federation,
    GpuModel,
    GpuPool,
    Institution,
    LocalSettings,
    Partner,
    PlacementWeights,
    Quota,
    QuotaPeriod,
    Sector,
    Site,
    SlurmSettings,
)
from accord.domain.federation.witnessing import parse_witnessing
from accord.domain.fieldreader import COUNTRY_ALLOWED, FieldReader, is_country_code

Doc = Mapping[str, object]

TOP_KEYS = (
    "federation", "gpu_models", "exchange_rates", "partners", "institutions", "sites", "agreements",
    "compliance", "allocations", "witnessing",
)


def parse_federation(doc: Doc) -> Federation:
    """Validate ``doc`` and build the federation.

    Raises:
        InvalidInput: listing every problem found, each with its path.
    """
    r = FieldReader()
    r.unknown_keys(doc, "", TOP_KEYS)
    head = r.table(doc, "federation", "")
    r.unknown_keys(head, "federation", ("name", "reference_unit", "themes", "placement"))
    placement = _placement(r, r.table(head, "placement", "federation"), "federation.placement")
    models = tuple(_gpu_model(r, t, f"gpu_models[{i}]")
                   for i, t in enumerate(r.tables(doc, "gpu_models", "", max_items=lim.GPU_MODELS.maximum)))
    model_names = [m.name for m in models if m.name]
    partners = tuple(_partner(r, t, f"partners[{i}]")
                     for i, t in enumerate(r.tables(doc, "partners", "", max_items=lim.PARTNERS.maximum)))
    partner_ids = [p.id for p in partners if p.id]
    institutions = tuple(
        _institution(r, t, f"institutions[{i}]", partner_ids)
        for i, t in enumerate(r.tables(doc, "institutions", "", max_items=lim.INSTITUTIONS.maximum))
    )
    inst_ids = [i.id for i in institutions if i.id]
    inst_partner = [(i.id, i.partner) for i in institutions if i.id]
    sites = tuple(
        _site(r, t, f"sites[{i}]", partner_ids, inst_partner, model_names)
        for i, t in enumerate(r.tables(doc, "sites", "", max_items=lim.SITES.maximum))
    )
    rates = tuple(
        _rate(r, t, f"exchange_rates[{i}]", model_names)
        for i, t in enumerate(r.tables(doc, "exchange_rates", "", max_items=lim.RATES.maximum))
    )
    themes = _themes(r, head, "federation")
    agreements = tuple(
        _agreement(r, t, f"agreements[{i}]", partner_ids, themes)
        for i, t in enumerate(r.tables(doc, "agreements", "", max_items=lim.AGREEMENTS.maximum))
    )
    compliance = parse_compliance(r, doc, partner_ids, inst_ids, themes)
    witnessing = parse_witnessing(r, doc, partner_ids)
    _check_all(r, models, partner_ids, inst_ids, sites, agreements, rates, model_names)
    name = r.text(head, "name", "federation", max_length=TEXT)
    unit = r.text(head, "reference_unit", "federation", max_length=TEXT)
    if r.problems:
        raise InvalidInput(r.problems)
    return Federation(
        name=name or "",
        reference_unit=unit or "",
        partners=partners,
        institutions=institutions,
        sites=sites,
        gpu_models=models,
        exchange_rates=rates,
        agreements=agreements,
        themes=themes,
        placement=placement,
        compliance=compliance,
        witnessing=witnessing,
    )


def _check_all(r: FieldReader, models: tuple[GpuModel, ...], partner_ids: list[str], inst_ids: list[str],
               sites: tuple[Site, ...], agreements: tuple[Agreement, ...], rates: tuple[ExchangeRate, ...],
               model_names: list[str]) -> None:
    """What holds across tables: unique ids, rates for every pool's model, a site at least."""
    _check_unique(r, "gpu_models", [m.name for m in models], "name")
    _check_unique(r, "partners", partner_ids, "id")
    _check_unique(r, "institutions", inst_ids, "id")
    _check_unique(r, "sites", [s.id for s in sites], "id")
    _check_unique(r, "agreements", [a.id for a in agreements], "id")
    _check_rates(r, rates, sites, model_names)
    if not sites:
        r.add("sites", "at least one site is required", allowed="one or more [[sites]] tables")


PLACEMENT_WEIGHTS = ("wait", "emissions", "reciprocity", "cost", "border")
MAX_WEIGHT = float(lim.WEIGHT.maximum)
MINUTES_PER_DAY = 1440
TEXT, PATH = lim.TEXT.maximum, lim.PATH.maximum


def _placement(r: FieldReader, t: Doc, path: str) -> PlacementWeights:
    """``[federation.placement]``: term weights (numbers 0..:data:`MAX_WEIGHT`) and
    ``slot_minutes`` (a whole number of minutes from 5 to 240 that divides a day); defaults
    when absent."""
    r.unknown_keys(t, path, (*PLACEMENT_WEIGHTS, "slot_minutes"))
    defaults = PlacementWeights()
    weights = {}
    for key in PLACEMENT_WEIGHTS:
        value = r.number(t, key, path, minimum=0.0, maximum=MAX_WEIGHT, required=False)
        weights[key] = float(getattr(defaults, key)) if value is None else value
    slot_s = defaults.slot_s
    if "slot_minutes" in t:
        minutes = r.integer(t, "slot_minutes", path, minimum=5)
        if minutes is not None and (minutes > lim.SLOT_MINUTES.maximum or MINUTES_PER_DAY % minutes):
            r.add(f"{path}.slot_minutes", "must divide a day and be at most 240", minutes,
                  "e.g. 15, 30, 60 (a divisor of 1440 from 5 to 240)")
        elif minutes is not None:
            slot_s = minutes * 60
    return PlacementWeights(slot_s=slot_s, **weights)


def _gpu_model(r: FieldReader, t: Doc, path: str) -> GpuModel:
    r.unknown_keys(t, path, ("name", "memory_gb", "tdp_w", "peak_tflops"))
    return GpuModel(
        name=r.text(t, "name", path, max_length=lim.GPU_MODEL_NAME.maximum) or "",
        memory_gb=r.number(t, "memory_gb", path, minimum=0, maximum=lim.MEMORY_GB.maximum, required=False),
        tdp_w=r.number(t, "tdp_w", path, minimum=0, maximum=lim.TDP_W.maximum, required=False),
        peak_tflops=r.number(t, "peak_tflops", path, minimum=0, maximum=lim.PEAK_TFLOPS.maximum,
                             required=False),
    )


def _partner(r: FieldReader, t: Doc, path: str) -> Partner:
    r.unknown_keys(t, path, ("id", "name", "country"))
    country = r.text(t, "country", path)
    if country is not None and not is_country_code(country):
        r.add(f"{path}.country", "is not an ISO 3166-1 alpha-2 code", country, COUNTRY_ALLOWED)
    return Partner(id=r.ident(t, "id", path) or "", name=r.text(t, "name", path, max_length=TEXT) or "",
                   country=country or "")


def _institution(r: FieldReader, t: Doc, path: str, partners: list[str]) -> Institution:
    r.unknown_keys(t, path, ("id", "name", "partner", "sector"))
    partner = r.text(t, "partner", path)
    r.member(partner, f"{path}.partner", partners, "partner")
    return Institution(
        id=r.ident(t, "id", path) or "",
        name=r.text(t, "name", path, max_length=TEXT) or "",
        partner=partner or "",
        sector=r.choice(t, "sector", path, Sector) or Sector.ACADEMIA,
    )


SITE_KEYS = ("id", "name", "partner", "institution", "grid_zone", "pue", "backend", "pools",
             "slurm", "local", "agent")
AGENT_KEY_PREFIX = "ed25519:"


def _site(
    r: FieldReader,
    t: Doc,
    path: str,
    partners: list[str],
    insts: list[tuple[str, str]],
    models: list[str],
) -> Site:
    r.unknown_keys(t, path, SITE_KEYS)
    partner = r.text(t, "partner", path)
    r.member(partner, f"{path}.partner", partners, "partner")
    institution = r.text(t, "institution", path, required=False)
    r.member(institution, f"{path}.institution", [i for i, _ in insts], "institution")
    owner = dict(insts).get(institution or "")
    if owner and partner and owner != partner:
        r.add(f"{path}.institution", f"belongs to partner {owner}, not to the site's partner",
              institution, f"an institution of {partner}")
    backend = r.choice(t, "backend", path, BackendKind)
    pools = tuple(
        _pool(r, p, f"{path}.pools[{i}]", models)
        for i, p in enumerate(r.tables(t, "pools", path, max_items=lim.POOLS.maximum))
    )
    if not pools:
        r.add(f"{path}.pools", "a site needs at least one GPU pool", allowed="[[sites.pools]] tables")
    _check_unique(r, f"{path}.pools", [p.id for p in pools], "id")
    slurm, local = _backend_settings(r, t, path, backend)
    return Site(
        id=r.ident(t, "id", path) or "",
        name=r.text(t, "name", path, max_length=TEXT) or "",
        partner=partner or "",
        grid_zone=r.text(t, "grid_zone", path, max_length=TEXT) or "",
        pue=r.number(t, "pue", path, minimum=1.0, maximum=lim.PUE.maximum) or 1.0,
        backend=backend or BackendKind.LOCAL,
        pools=pools,
        local=local,
        slurm=slurm,
        institution=institution,
        agent=_agent_settings(r, t, path, backend),
    )


def _agent_settings(r: FieldReader, t: Doc, path: str, backend: BackendKind | None) -> AgentSettings | None:
    """The ``[sites.agent]`` table: required by, and only allowed with, ``backend = "agent"``."""
    ap = f"{path}.agent"
    if backend is not BackendKind.AGENT:
        if "agent" in t:
            r.add(ap, "only agent sites take a [sites.agent] table", got=t.get("backend"),
                  allowed='backend = "agent"')
        return None
    if "agent" not in t:
        r.add(f"{path}.backend", "an agent site needs a [sites.agent] table", "agent",
              allowed='keys = ["ed25519:BASE64"] (from `accord site keygen`), optionally silence_s')
        return AgentSettings(keys=())
    a = r.table(t, "agent", path)
    r.unknown_keys(a, ap, ("keys", "silence_s"))
    texts = r.strings(a, "keys", ap, max_items=lim.AGENT_KEYS.maximum, max_length=200)
    keys = tuple(k for i, text in enumerate(texts) if (k := _agent_key(r, text, f"{ap}.keys[{i}]")))
    if "keys" not in a or a.get("keys") == []:
        r.add(f"{ap}.keys", "lists no key", a.get("keys"), 'at least one "ed25519:BASE64" public key')
    silence = r.number(a, "silence_s", ap, minimum=5, maximum=lim.AGENT_SILENCE_S.maximum, required=False)
    return AgentSettings(keys=keys, silence_s=60.0 if silence is None else silence)


def _agent_key(r: FieldReader, text: str, where: str) -> bytes | None:
    """A site's raw Ed25519 public key from ``ed25519:BASE64`` (None, and a problem, if malformed)."""
    raw = None
    if text.startswith(AGENT_KEY_PREFIX):
        try:
            raw = base64.b64decode(text.removeprefix(AGENT_KEY_PREFIX), validate=True)
        except ValueError:
            raw = None
    if raw is None or len(raw) != 32:
        r.add(where, "is not an Ed25519 public key", text[:80],
              '"ed25519:" and the base64 of the 32-byte key, as `accord site keygen` prints it')
        return None
    return raw


def _backend_settings(
    r: FieldReader, t: Doc, path: str, backend: BackendKind | None
) -> tuple[SlurmSettings | None, LocalSettings | None]:
    slurm_t = r.table(t, "slurm", path)
    local_t = r.table(t, "local", path)
    if backend is BackendKind.SLURM:
        if "local" in t:
            r.add(f"{path}.local", "only local sites take a [sites.local] table",
                  got=t.get("backend"), allowed='backend = "local", or remove the table')
        if "slurm" not in t:
            r.add(f"{path}.backend", "a slurm site needs a [sites.slurm] table", "slurm",
                  allowed="cluster = NAME, and optionally slurm_conf, partition, account, workdir")
            return SlurmSettings(cluster=""), None
        sp = f"{path}.slurm"
        r.unknown_keys(slurm_t, sp, ("cluster", "slurm_conf", "partition", "account", "workdir"))
        return SlurmSettings(
            cluster=r.text(slurm_t, "cluster", sp, max_length=TEXT) or "",
            slurm_conf=r.text(slurm_t, "slurm_conf", sp, required=False, max_length=PATH),
            partition=r.text(slurm_t, "partition", sp, required=False, max_length=TEXT),
            account=r.text(slurm_t, "account", sp, required=False, max_length=TEXT),
            workdir=r.text(slurm_t, "workdir", sp, required=False, max_length=PATH),
        ), None
    if "slurm" in t:
        r.add(f"{path}.slurm", "only slurm sites take a [sites.slurm] table",
              got=t.get("backend"), allowed='backend = "slurm"')
    if backend is BackendKind.AGENT:
        if "local" in t:
            r.add(f"{path}.local", "only local sites take a [sites.local] table (an agent site's "
                  "scheduler is the agent's own setting)", got=t.get("backend"), allowed='backend = "local"')
        return None, None
    r.unknown_keys(local_t, f"{path}.local", ("workdir",))
    return None, LocalSettings(workdir=r.text(local_t, "workdir", f"{path}.local", required=False,
                                              max_length=PATH))


def _pool(r: FieldReader, t: Doc, path: str, models: list[str]) -> GpuPool:
    r.unknown_keys(t, path, ("id", "gpu_model", "gpus", "power_w"))
    model = r.text(t, "gpu_model", path)
    r.member(model, f"{path}.gpu_model", models, "GPU model", "declare it in [[gpu_models]]")
    return GpuPool(
        id=r.ident(t, "id", path) or "",
        gpu_model=model or "",
        gpus=r.integer(t, "gpus", path, maximum=lim.POOL_GPUS.maximum) or 0,
        power_w=r.number(t, "power_w", path, minimum=1, maximum=lim.POWER_W.maximum) or 0.0,
    )


def _rate(r: FieldReader, t: Doc, path: str, models: list[str]) -> ExchangeRate:
    r.unknown_keys(t, path, ("gpu_model", "units_per_gpu_hour", "valid_from", "valid_until"))
    model = r.text(t, "gpu_model", path)
    r.member(model, f"{path}.gpu_model", models, "GPU model")
    start = _day(r, t, "valid_from", path)
    until = _day(r, t, "valid_until", path, required=False)
    if start and until and until <= start:
        r.add(f"{path}.valid_until", "must be after valid_from", until.isoformat(),
              f"a date after {start.isoformat()}")
    return ExchangeRate(
        gpu_model=model or "",
        units_per_gpu_hour=r.number(t, "units_per_gpu_hour", path, minimum=0.0,
                                    maximum=lim.UNITS_PER_GPU_HOUR.maximum) or 0.0,
        valid_from=start or date.min,
        valid_until=until,
    )


AGREEMENT_KEYS = ("id", "name", "parties", "start", "end", "quotas", "themes", "sectors",
                  "default_flexibility_hours", "residency_countries")


def _agreement(
    r: FieldReader, t: Doc, path: str, partners: list[str], themes: tuple[str, ...]
) -> Agreement:
    r.unknown_keys(t, path, AGREEMENT_KEYS)
    parties = r.strings(t, "parties", path, max_items=lim.PARTNERS.maximum)
    for party in parties:
        r.member(party, f"{path}.parties", partners, "partner")
    if len(set(parties)) < 2:
        r.add(f"{path}.parties", "an agreement needs two or more distinct partners", list(parties),
              "a list of partner ids")
    start, end = _day(r, t, "start", path), _day(r, t, "end", path)
    if start and end and end < start:
        r.add(f"{path}.end", "must not be before start", end.isoformat(),
              f"a date on or after {start.isoformat()}")
    agreement_themes = _themes(r, t, path)
    if themes:
        for theme in agreement_themes:
            r.member(theme, f"{path}.themes", themes, "theme", "declare it in federation.themes")
    quotas = tuple(
        _quota(r, q, f"{path}.quotas[{i}]", parties)
        for i, q in enumerate(r.tables(t, "quotas", path, max_items=lim.QUOTAS.maximum))
    )
    _check_unique(r, f"{path}.quotas", [f"{q.requester}->{q.host}" for q in quotas
                                        if q.requester and q.host], "host")
    residency = r.strings(t, "residency_countries", path, max_items=lim.COUNTRIES.maximum)
    for country in residency:
        if not is_country_code(country):
            r.add(f"{path}.residency_countries", "is not an ISO 3166-1 alpha-2 code", country,
                  COUNTRY_ALLOWED)
    return Agreement(
        id=r.ident(t, "id", path) or "",
        name=r.text(t, "name", path, max_length=TEXT) or "",
        parties=parties,
        start=start or date.min,
        end=end or date.max,
        quotas=quotas,
        themes=agreement_themes,
        sectors=_sectors(r, t, path),
        default_flexibility_hours=r.number(
            t, "default_flexibility_hours", path, minimum=0, maximum=lim.FLEXIBILITY_H.maximum,
            required=False, default=0.0) or 0.0,
        residency_countries=residency,
    )


def _sectors(r: FieldReader, t: Doc, path: str) -> tuple[Sector, ...]:
    names = r.strings(t, "sectors", path)
    allowed = [s.value for s in Sector]
    out = []
    for name in names:
        r.member(name, f"{path}.sectors", allowed, "sector")
        if name in allowed:
            out.append(Sector(name))
    return tuple(out)


def _quota(r: FieldReader, t: Doc, path: str, parties: tuple[str, ...]) -> Quota:
    r.unknown_keys(t, path, ("requester", "host", "units", "per"))
    requester, host = r.text(t, "requester", path), r.text(t, "host", path)
    r.member(requester, f"{path}.requester", parties, "party of this agreement")
    r.member(host, f"{path}.host", parties, "party of this agreement")
    if requester and requester == host:
        r.add(f"{path}.host", "must differ from requester", host, "another party")
    return Quota(
        requester=requester or "",
        host=host or "",
        units=r.number(t, "units", path, minimum=0.0, maximum=lim.QUOTA_UNITS.maximum) or 0.0,
        per=r.choice(t, "per", path, QuotaPeriod, default=QuotaPeriod.YEAR) or QuotaPeriod.YEAR,
    )


def _check_unique(r: FieldReader, path: str, ids: list[str], key: str) -> None:
    for value, count in Counter(i for i in ids if i).items():
        if count > 1:
            index = max(n for n, i in enumerate(ids) if i == value)
            r.add(f"{path}[{index}].{key}", f"is used {count} times", value, "a unique value")


def _check_rates(
    r: FieldReader, rates: tuple[ExchangeRate, ...], sites: tuple[Site, ...], models: list[str]
) -> None:
    for i, a in enumerate(rates):
        for b in rates[:i]:
            if a.gpu_model == b.gpu_model and a.gpu_model and _overlap(a, b):
                r.add(f"exchange_rates[{i}].valid_from", "overlaps another rate for the same GPU model",
                      a.valid_from.isoformat(),
                      f"a period not overlapping {b.valid_from.isoformat()}.."
                      f"{b.valid_until.isoformat() if b.valid_until else 'open'}")
    rated = {x.gpu_model for x in rates}
    for si, site in enumerate(sites):
        for pi, pool in enumerate(site.pools):
            if pool.gpu_model and pool.gpu_model not in rated and pool.gpu_model in models:
                r.add(f"sites[{si}].pools[{pi}].gpu_model", "has no exchange rate", pool.gpu_model,
                      "add an [[exchange_rates]] entry for this model")


def _themes(r: FieldReader, t: Doc, path: str) -> tuple[str, ...]:
    """A list of themes, within their bounds (:mod:`~accord.domain.federation.limits`)."""
    return r.strings(t, "themes", path, max_items=lim.THEMES.maximum, max_length=lim.THEME.maximum)


def _day(r: FieldReader, t: Doc, key: str, path: str, *, required: bool = True) -> date | None:
    """A date of the file, within the federation's calendar (:mod:`~accord.domain.federation.limits`)."""
    return r.day(t, key, path, required=required, earliest=lim.EARLIEST_DAY, latest=lim.LATEST_DAY)


def _overlap(a: ExchangeRate, b: ExchangeRate) -> bool:
    a_end = a.valid_until or date.max
    b_end = b.valid_until or date.max
    return a.valid_from < b_end and b.valid_from < a_end
