"""The status page at ``/``: the federation (public), and the latest jobs when the caller
may see them (``jobs`` None: the page says how to sign in instead), server-rendered."""

from __future__ import annotations

from collections.abc import Sequence
from html import escape

from accord.domain.federation.model import Federation
from accord.domain.jobs.model import Job

_STYLE = """
body{font-family:system-ui,sans-serif;margin:2rem;color:#1a1a1a;max-width:72rem}
h1{font-size:1.6rem}h2{font-size:1.2rem;margin-top:2rem}
table{border-collapse:collapse;width:100%}th,td{text-align:left;padding:.3rem .6rem;
border-bottom:1px solid #ddd}th{background:#f3f3f3}
.state-completed{color:#0a6b2d}.state-failed,.state-timed_out{color:#a00}
.state-running{color:#0645ad}code{font-size:.9em}
"""


def render_status(federation: Federation, jobs: Sequence[Job] | None) -> str:
    """The page's HTML; every value from data is escaped."""
    sites = "".join(
        f"<tr><td>{escape(s.name)}</td><td>{escape(s.partner)}</td><td>{escape(s.grid_zone)}</td>"
        f"<td>{s.total_gpus:,}</td><td>{escape(', '.join(p.gpu_model for p in s.pools))}</td>"
        f"<td>{escape(s.backend.value)}</td></tr>"
        for s in federation.sites
    )
    rows = "".join(
        f"<tr><td><code>{escape(j.id)}</code></td><td>{escape(j.spec.name)}</td>"
        f"<td class='state-{escape(j.state.value)}'>{escape(j.state.value)}</td>"
        f"<td>{escape(j.placement.site if j.placement else '')}</td><td>{j.spec.gpus}</td>"
        f"<td>{escape(j.submitted_at.strftime('%Y-%m-%d %H:%M:%S'))}</td>"
        f"<td>{escape(j.reason[:120])}</td></tr>"
        for j in jobs or ()
    )
    if jobs is None:
        section = ("<h2>Jobs</h2><p>Jobs are shown to signed-in users: sign in to the "
                   "<a href=\"/dashboard/\">dashboard</a> with your token, or use the API "
                   "(<a href=\"/docs\">/docs</a>) or the <code>accord</code> command line.</p>")
    else:
        section = f"""<h2>Latest jobs</h2><table><thead><tr><th scope="col">Job</th><th scope="col">Name</th>
<th scope="col">State</th><th scope="col">Site</th><th scope="col">GPUs</th>
<th scope="col">Submitted (UTC)</th><th scope="col">Reason</th></tr></thead>
<tbody>{rows or '<tr><td colspan="7">No jobs yet.</td></tr>'}</tbody></table>"""
    return f"""<!doctype html><html lang="en"><head><meta charset="utf-8">
<title>Accord — {escape(federation.name)}</title><style>{_STYLE}</style></head><body>
<h1>Accord — {escape(federation.name)}</h1>
<p>{len(federation.partners)} partners, {len(federation.sites)} sites,
{sum(s.total_gpus for s in federation.sites):,} GPUs, {len(federation.agreements)} agreements.
Units: {escape(federation.reference_unit)}. Dashboard: <a href="/dashboard/">/dashboard/</a>.
API: <a href="/docs">/docs</a>.</p>
<h2>Sites</h2><table><thead><tr><th scope="col">Site</th><th scope="col">Partner</th>
<th scope="col">Grid zone</th><th scope="col">GPUs</th><th scope="col">Models</th>
<th scope="col">Backend</th></tr></thead><tbody>{sites}</tbody></table>
{section}
</body></html>"""
