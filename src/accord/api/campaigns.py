"""Campaign routes: create, list, status, submit, results, collected logs and release
approval. Changing routes are audited by the audit middleware; every results or log
read is audited by the service, allowed or refused."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any

from fastapi import APIRouter, Path, Request
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field

from accord.api.common import Caller, Svc, note_audit, source
from accord.domain.campaigns.campaign import EmbargoKind

NAME = Field(..., min_length=1, max_length=64)
CampaignId = Annotated[str, Path(max_length=64)]
Sha256 = Annotated[str, Path(pattern=r"^[0-9a-f]{64}$")]

router = APIRouter(tags=["campaigns"])


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TaskBody(_Body):
    """An Inspect task: its ``@task`` name, version, and file at the sites (shipped tasks: none)."""

    name: str = NAME
    version: int | Annotated[str, Field(min_length=1, max_length=64)]
    file: str | None = Field(None, min_length=1, max_length=1000)


class ModelBody(_Body):
    """An OpenAI-compatible model endpoint."""

    name: str = NAME
    base_url: str = Field(..., min_length=1, max_length=2000)
    model: str = Field(..., min_length=1, max_length=200)
    partner: str | None = Field(None, min_length=1, max_length=64)


class ShareBody(_Body):
    """What one partner's people may read (empty lists: everything)."""

    partner: str = NAME
    tasks: list[Annotated[str, Field(min_length=1, max_length=64)]] = Field(default_factory=list,
                                                                              max_length=50)
    models: list[Annotated[str, Field(min_length=1, max_length=64)]] = Field(default_factory=list,
                                                                               max_length=50)


class ResultsBody(_Body):
    """The results policy: shares (default: every partner sees all) and the embargo."""

    embargo: EmbargoKind = EmbargoKind.APPROVAL
    until: date | None = None
    shares: list[ShareBody] | None = Field(None, max_length=50)


class CampaignBody(_Body):
    """A campaign: tasks × models run at the allowed sites, charged to a project."""

    id: str = NAME
    name: str | None = Field(None, min_length=1, max_length=200)
    project: str = NAME
    partners: list[Annotated[str, Field(min_length=1, max_length=64)]] = Field(..., max_length=50)
    sites: list[Annotated[str, Field(min_length=1, max_length=64)]] = Field(..., max_length=50)
    tasks: list[TaskBody] = Field(..., max_length=50)
    models: list[ModelBody] = Field(..., max_length=50)
    results: ResultsBody = Field(default_factory=ResultsBody)
    gpus: int = Field(1, ge=1, le=1024)
    time_limit_s: int = Field(1800, ge=60, le=7 * 86400)


class ReleaseBody(_Body):
    """A release approval, for a partner the caller is programme officer of."""

    partner: str | None = Field(None, min_length=1, max_length=64)


@router.post("/api/v1/campaigns", status_code=201)
def create(body: CampaignBody, request: Request, s: Svc, p: Caller) -> dict[str, Any]:
    """Create a campaign (a member of the project it is charged to)."""
    note_audit(request, "campaign.create", f"campaign {body.id}", tuple(sorted(set(body.partners)))[:10])
    return s.campaigns.doc(s.campaigns.create(p, body.model_dump(mode="json", exclude_none=True)))


@router.get("/api/v1/campaigns")
def campaigns(s: Svc, p: Caller) -> dict[str, Any]:
    """The campaigns the caller may see."""
    return {"campaigns": [s.campaigns.doc(c) for c in s.campaigns.visible(p)]}


@router.get("/api/v1/campaigns/{campaign_id}")
def status(campaign_id: CampaignId, s: Svc, p: Caller) -> dict[str, Any]:
    """Definition, each pair's job, compute per partner and the embargo (no scores)."""
    return s.campaigns.status(p, campaign_id)


@router.post("/api/v1/campaigns/{campaign_id}/submit")
def submit(campaign_id: CampaignId, request: Request, s: Svc, p: Caller) -> dict[str, Any]:
    """Submit a job for every pair that has none yet (again: nothing new)."""
    note_audit(request, "campaign.submit", f"campaign {campaign_id}")
    runs = s.campaigns.submit(p, campaign_id)
    c = s.campaigns.get(p, campaign_id)
    note_audit(request, "campaign.submit", f"campaign {campaign_id}", c.partners,
               f"{len(runs)} job(s)")
    return {"campaign": campaign_id, "runs": [{"task": r.task, "model": r.model, "job": r.job_id}
                                              for r in runs]}


@router.get("/api/v1/campaigns/{campaign_id}/results")
def results(campaign_id: CampaignId, request: Request, s: Svc, p: Caller) -> dict[str, Any]:
    """Scores per task and model the policy gives the caller, after the embargo (audited)."""
    return s.campaigns.results(p, campaign_id, source(request))


@router.get("/api/v1/campaigns/{campaign_id}/logs/{sha256}",
            responses={200: {"content": {"application/json": {}}}})
def log_file(campaign_id: CampaignId, sha256: Sha256, request: Request,
             s: Svc, p: Caller) -> Response:
    """The stored bytes of one collected Inspect log (audited)."""
    data = s.campaigns.log_bytes(p, campaign_id, sha256, source(request))
    return Response(data, media_type="application/json")


@router.post("/api/v1/campaigns/{campaign_id}/release")
def release(campaign_id: CampaignId, body: ReleaseBody, request: Request,
            s: Svc, p: Caller) -> dict[str, Any]:
    """Approve the release of the results for a partner (its programme officer)."""
    note_audit(request, "campaign.release", f"campaign {campaign_id}", (), body.partner or "")
    out = s.campaigns.approve_release(p, campaign_id, body.partner)
    note_audit(request, "campaign.release", f"campaign {campaign_id}", (out["partner"],),
               f"release approved for {out['partner']}; lifted: {out['lifted']}")
    return out
