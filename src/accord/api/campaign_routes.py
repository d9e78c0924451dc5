"""Campaign routes: create, list, status, submit, results, collected logs and release
approval. Changing routes are audited by the audit middleware; every results or log
read is audited by the service, allowed or refused."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Path, Request
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field

from accord.adapters.sql.campaign_store import SqlCampaigns
from accord.api.common import note_audit
from accord.domain.access.rules import Principal
from accord.domain.campaigns.campaign import EmbargoKind
from accord.service.access import AccessService
from accord.service.broker import Broker
from accord.service.campaigns import CampaignService
from accord.service.gate import Gate

NAME = Field(..., min_length=1, max_length=64)
CampaignId = Annotated[str, Path(max_length=64)]
Sha256 = Annotated[str, Path(pattern=r"^[0-9a-f]{64}$")]


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


def add_campaign_routes(app: FastAPI, broker: Broker, gate: Gate, access: AccessService, caller: Any) -> None:
    """Add the campaign routes to ``app``; ``caller`` is the authenticated-caller dependency."""
    service = CampaignService(broker, gate, access, SqlCampaigns(broker.store))  # type: ignore[arg-type]

    def source(request: Request) -> str:
        return request.client.host if request.client else "?"

    @app.post("/api/v1/campaigns", status_code=201, tags=["campaigns"])
    def create(body: CampaignBody, request: Request, p: Principal = Depends(caller)) -> dict[str, Any]:
        """Create a campaign (a member of the project it is charged to)."""
        note_audit(request, "campaign.create", f"campaign {body.id}", tuple(sorted(set(body.partners)))[:10])
        return service.doc(service.create(p, body.model_dump(mode="json", exclude_none=True)))

    @app.get("/api/v1/campaigns", tags=["campaigns"])
    def campaigns(p: Principal = Depends(caller)) -> dict[str, Any]:
        """The campaigns the caller may see."""
        return {"campaigns": [service.doc(c) for c in service.visible(p)]}

    @app.get("/api/v1/campaigns/{campaign_id}", tags=["campaigns"])
    def status(campaign_id: CampaignId, p: Principal = Depends(caller)) -> dict[str, Any]:
        """Definition, each pair's job, compute per partner and the embargo (no scores)."""
        return service.status(p, campaign_id)

    @app.post("/api/v1/campaigns/{campaign_id}/submit", tags=["campaigns"])
    def submit(campaign_id: CampaignId, request: Request, p: Principal = Depends(caller)) -> dict[str, Any]:
        """Submit a job for every pair that has none yet (again: nothing new)."""
        note_audit(request, "campaign.submit", f"campaign {campaign_id}")
        runs = service.submit(p, campaign_id)
        c = service.get(p, campaign_id)
        note_audit(request, "campaign.submit", f"campaign {campaign_id}", c.partners,
                   f"{len(runs)} job(s)")
        return {"campaign": campaign_id, "runs": [{"task": r.task, "model": r.model, "job": r.job_id}
                                                  for r in runs]}

    @app.get("/api/v1/campaigns/{campaign_id}/results", tags=["campaigns"])
    def results(campaign_id: CampaignId, request: Request, p: Principal = Depends(caller)) -> dict[str, Any]:
        """Scores per task and model the policy gives the caller, after the embargo (audited)."""
        return service.results(p, campaign_id, source(request))

    @app.get("/api/v1/campaigns/{campaign_id}/logs/{sha256}", tags=["campaigns"],
             responses={200: {"content": {"application/json": {}}}})
    def log_file(campaign_id: CampaignId, sha256: Sha256, request: Request,
                 p: Principal = Depends(caller)) -> Response:
        """The stored bytes of one collected Inspect log (audited)."""
        data = service.log_bytes(p, campaign_id, sha256, source(request))
        return Response(data, media_type="application/json")

    @app.post("/api/v1/campaigns/{campaign_id}/release", tags=["campaigns"])
    def release(campaign_id: CampaignId, body: ReleaseBody, request: Request,
                p: Principal = Depends(caller)) -> dict[str, Any]:
        """Approve the release of the results for a partner (its programme officer)."""
        note_audit(request, "campaign.release", f"campaign {campaign_id}", (), body.partner or "")
        out = service.approve_release(p, campaign_id, body.partner)
        note_audit(request, "campaign.release", f"campaign {campaign_id}", (out["partner"],),
                   f"release approved for {out['partner']}; lifted: {out['lifted']}")
        return out
