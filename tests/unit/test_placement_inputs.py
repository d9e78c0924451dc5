"""A job with input files goes only to sites that run Accord's agent (only an agent fetches
them from the hub); a job without inputs goes anywhere, as before."""

from __future__ import annotations

from datetime import UTC, datetime

from accord.adapters.federation_file import parse_federation_text
from accord.domain.federation.model import Federation
from accord.domain.jobs.model import JobSpec
from accord.domain.placement.place import place
from tests.agent_world import agent_federation_text

KEY = "ed25519:" + "A" * 43 + "="
NOW = datetime(2026, 12, 6, 12, tzinfo=UTC)


def federation_with_a_direct_site() -> Federation:
    text = agent_federation_text({"isambard": [KEY], "jeanzay": [KEY]})
    # jeanzay runs no agent: its hub drives it directly (the local backend)
    start = text.index('id = "jeanzay"')
    block = text[start:]
    block = block.replace('backend = "agent"\n[sites.agent]\nkeys = ["' + KEY + '"]\nsilence_s = 20\n',
                          'backend = "local"\n', 1)
    return parse_federation_text(text[:start] + block, "f.toml")


def test_a_job_with_inputs_is_placed_only_at_an_agent_site() -> None:
    fed = federation_with_a_direct_site()
    assert {s.id: s.backend.value for s in fed.sites} == {"isambard": "agent", "jeanzay": "local"}
    spec = JobSpec("j", 1, 3600, ("true",), inputs=("a.txt=sha256:" + "0" * 64,))
    d = place(spec, fed, {}, NOW)
    assert d.chosen is not None and d.chosen.site == "isambard"
    reasons = {r.site: r.reason for r in d.rejected}
    assert "only a site that runs Accord's agent" in reasons["jeanzay"]
    pinned = place(JobSpec("j", 1, 3600, ("true",), site="jeanzay", inputs=spec.inputs), fed, {}, NOW)
    assert pinned.chosen is None
    plain = place(JobSpec("j", 1, 3600, ("true",), site="jeanzay"), fed, {}, NOW)
    assert plain.chosen is not None and plain.chosen.site == "jeanzay"
