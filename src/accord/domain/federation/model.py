"""The federation: partners, institutions, sites, GPU pools, units and agreements.

Records are frozen and hold only tuples and mappings that are never mutated, so a
:class:`Federation` can be shared between the broker and the simulator freely.
Building one from a file is :mod:`accord.domain.federation.schema`'s job.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import date, datetime

from accord.domain.access.compliance import Compliance
from accord.domain.errors import NotFound


class Sector(enum.Enum):
    """Who an institution is: the agreements say which sectors may use them."""

    ACADEMIA = "academia"
    INDUSTRY = "industry"
    GOVERNMENT = "government"


class BackendKind(enum.Enum):
    """How Accord drives a site."""

    LOCAL = "local"
    SLURM = "slurm"
    AGENT = "agent"   # the site runs ``accord site run``, which dials out to the hub


class QuotaPeriod(enum.Enum):
    """The span a quota amount is granted for."""

    MONTH = "month"
    YEAR = "year"
    AGREEMENT = "agreement"


@dataclass(frozen=True, slots=True)
class Partner:
    """A country (or bloc) that signs agreements."""

    id: str
    name: str
    country: str


@dataclass(frozen=True, slots=True)
class Institution:
    """A university, company or agency belonging to a partner."""

    id: str
    name: str
    partner: str
    sector: Sector


@dataclass(frozen=True, slots=True)
class GpuPool:
    """A set of identical GPUs at a site."""

    id: str
    gpu_model: str
    gpus: int
    power_w: float


@dataclass(frozen=True, slots=True)
class LocalSettings:
    """Settings of a site run by the local backend (processes on this machine)."""

    workdir: str | None = None


@dataclass(frozen=True, slots=True)
class SlurmSettings:
    """Connection settings of a real Slurm cluster."""

    cluster: str
    slurm_conf: str | None = None
    partition: str | None = None
    account: str | None = None
    workdir: str | None = None


@dataclass(frozen=True, slots=True)
class AgentSettings:
    """A site whose own agent dials out to the hub (``docs/design/site-agent.md``).

    ``keys`` are the site's Ed25519 public keys (raw, 32 bytes each): any of them may sign
    the agent's requests and usage reports, so a key is rotated by listing the new one
    beside the old, then removing the old; a key removed is revoked. ``silence_s``: after
    this long without a request from the agent, the hub counts the site as unreachable.
    """

    keys: tuple[bytes, ...]
    silence_s: float = 60.0


@dataclass(frozen=True, slots=True)
class Site:
    """A compute centre with one or more GPU pools, driven by one backend."""

    id: str
    name: str
    partner: str
    grid_zone: str
    pue: float
    backend: BackendKind
    pools: tuple[GpuPool, ...]
    local: LocalSettings | None = None
    slurm: SlurmSettings | None = None
    institution: str | None = None
    agent: AgentSettings | None = None

    @property
    def total_gpus(self) -> int:
        """All GPUs of all pools."""
        return sum(p.gpus for p in self.pools)

    def pool(self, pool_id: str) -> GpuPool:
        """The pool with this id.

        Raises:
            NotFound: no such pool at this site.
        """
        for p in self.pools:
            if p.id == pool_id:
                return p
        raise NotFound(f"site {self.id!r} has no pool {pool_id!r}")


@dataclass(frozen=True, slots=True)
class GpuModel:
    """A GPU model known to the federation (for units and checks)."""

    name: str
    memory_gb: float | None = None
    tdp_w: float | None = None
    peak_tflops: float | None = None   # dense BF16, for compliance's FLOP estimates


@dataclass(frozen=True, slots=True)
class ExchangeRate:
    """Normalised units per GPU-hour of a model, valid on [valid_from, valid_until)."""

    gpu_model: str
    units_per_gpu_hour: float
    valid_from: date
    valid_until: date | None = None

    def covers(self, day: date) -> bool:
        """Whether the rate is in force on ``day``."""
        return self.valid_from <= day and (self.valid_until is None or day < self.valid_until)


@dataclass(frozen=True, slots=True)
class Quota:
    """Normalised units the host partner grants the requesting partner per period."""

    requester: str
    host: str
    units: float
    per: QuotaPeriod


@dataclass(frozen=True, slots=True)
class Agreement:
    """A reciprocal compute agreement between partners."""

    id: str
    name: str
    parties: tuple[str, ...]
    start: date
    end: date
    quotas: tuple[Quota, ...]
    themes: tuple[str, ...]
    sectors: tuple[Sector, ...]
    default_flexibility_hours: float = 0.0
    residency_countries: tuple[str, ...] = ()

    def in_force(self, day: date) -> bool:
        """Whether ``day`` lies in the agreement's period (both ends included)."""
        return self.start <= day <= self.end

    def quota(self, requester: str, host: str) -> Quota | None:
        """The quota for work of ``requester`` run at ``host``, if the agreement grants one."""
        for q in self.quotas:
            if q.requester == requester and q.host == host:
                return q
        return None


@dataclass(frozen=True, slots=True)
class PlacementWeights:
    """How placement weighs its score terms, per federation (``[federation.placement]``).

    Each term is on a comparable, dimensionless scale (``docs/design/placement.md``) and
    is multiplied by its weight; a weight of 0 turns the term off. ``slot_s`` is the
    spacing of the start times placement considers (at most 48 of them per job).
    """

    wait: float = 1.0          # per pool-full of GPUs queued ahead of the job
    emissions: float = 1.0     # per 100 % of the emissions of running now at home
    reciprocity: float = 0.25  # +1 when a move adds fully to an agreement's imbalance, -1 when it cuts it
    cost: float = 0.1          # per reference unit per GPU-hour (the pool's exchange rate)
    border: float = 0.5        # for leaving the job's home partner
    slot_s: int = 1800


class WitnessRule(enum.Enum):
    """Which cosignatures make an agreement's statement complete (``[witnessing] policy``)."""

    EVERY_PARTY = "every-party"   # at least ``k`` witnesses of each party of the agreement
    K_OF_N = "k-of-n"             # at least ``k`` of the n witnesses of the agreement's parties


@dataclass(frozen=True, slots=True)
class PartnerWitness:
    """A witness a partner runs (``accord witness serve``): its short name, partner, URL (the
    ``add-checkpoint`` endpoint is under it) and cosignature verifier key (``name+hex8+base64``,
    type 0x04, as ``accord witness keygen`` prints it)."""

    name: str
    partner: str
    url: str
    key: str


@dataclass(frozen=True, slots=True)
class Witnessing:
    """``[witnessing]``: the partners' witnesses of the ledger and the cosigning policy
    (``docs/design/witnesses.md``). ``interval_s``: the hub asks every witness to cosign its
    current tree this often (and at every period close); ``timeout_s`` bounds one request;
    ``origin`` names the log in its checkpoints (None: ``accord.example/ledger/<log id>``)."""

    witnesses: tuple[PartnerWitness, ...]
    rule: WitnessRule = WitnessRule.EVERY_PARTY
    k: int = 1
    interval_s: float = 300.0
    timeout_s: float = 10.0
    origin: str | None = None

    def of_parties(self, parties: tuple[str, ...]) -> tuple[PartnerWitness, ...]:
        """The witnesses of these partners, in file order."""
        return tuple(w for w in self.witnesses if w.partner in parties)


@dataclass(frozen=True, slots=True)
class Federation:
    """Everything Accord knows about the partnership, as loaded from one file."""

    name: str
    reference_unit: str
    partners: tuple[Partner, ...]
    institutions: tuple[Institution, ...]
    sites: tuple[Site, ...]
    gpu_models: tuple[GpuModel, ...]
    exchange_rates: tuple[ExchangeRate, ...]
    agreements: tuple[Agreement, ...]
    themes: tuple[str, ...] = field(default=())
    placement: PlacementWeights = field(default_factory=PlacementWeights)
    compliance: Compliance = field(default_factory=Compliance)
    witnessing: Witnessing | None = None

    def site(self, site_id: str) -> Site:
        """The site with this id.

        Raises:
            NotFound: no such site, with the list of valid ids.
        """
        for s in self.sites:
            if s.id == site_id:
                return s
        raise NotFound(f"no site {site_id!r}; sites are: {', '.join(s.id for s in self.sites)}")

    def partner(self, partner_id: str) -> Partner:
        """The partner with this id.

        Raises:
            NotFound: no such partner, with the list of valid ids.
        """
        for p in self.partners:
            if p.id == partner_id:
                return p
        ids = ", ".join(p.id for p in self.partners)
        raise NotFound(f"no partner {partner_id!r}; partners are: {ids}")

    def agreement(self, agreement_id: str) -> Agreement:
        """The agreement with this id.

        Raises:
            NotFound: no such agreement, with the list of valid ids.
        """
        for a in self.agreements:
            if a.id == agreement_id:
                return a
        ids = ", ".join(a.id for a in self.agreements)
        raise NotFound(f"no agreement {agreement_id!r}; agreements are: {ids}")

    def rate(self, gpu_model: str, at: datetime) -> ExchangeRate:
        """The exchange rate in force for ``gpu_model`` at ``at``.

        Raises:
            NotFound: no rate covers that model on that day.
        """
        day = at.date()
        for r in self.exchange_rates:
            if r.gpu_model == gpu_model and r.covers(day):
                return r
        raise NotFound(f"no exchange rate for GPU model {gpu_model!r} on {day.isoformat()}")

    @property
    def max_pool_gpus(self) -> int:
        """The largest GPU count of any single pool (the most one job can get)."""
        return max((p.gpus for s in self.sites for p in s.pools), default=0)

    @property
    def gpu_model_names(self) -> tuple[str, ...]:
        """Names of the known GPU models."""
        return tuple(m.name for m in self.gpu_models)
