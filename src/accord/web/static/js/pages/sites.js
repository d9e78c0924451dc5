// Sites: what each site enforces in its own Slurm (docs/design/site-enforcement.md): its
// allocations' accounts and limits, its visitors' local users and the drift its agent found.
// For the site's operators, the host partner's officers and auditors, and the admin.

import {api, ApiError} from "../api.js";
import {h, add, fill, num, when, table} from "../dom.js";

export function renderSites(ctx) {
  add(ctx.main, h("h1", {}, "Sites"),
    h("p", {}, "Each site's agent keeps its Slurm accounts as the agreements say; pick a site."),
    table("Sites", [
      {label: "Site", cell: (x) => h("a", {href: `#/sites/${encodeURIComponent(x.id)}`}, x.name)},
      {label: "Partner", cell: (x) => x.partner},
    ], ctx.fed.sites));
}

export async function renderSite(ctx) {
  const site = ctx.params[0];
  const title = `Site ${site}`;
  let doc;
  try {
    doc = await api(`/api/v1/sites/${encodeURIComponent(site)}/enforcement`);
  } catch (error) {
    add(ctx.main, h("h1", {}, title), h("p", {role: "alert", class: "error refusal"},
      error instanceof ApiError ? error.explain() : String(error)));
    return;
  }
  const body = h("div", {});
  add(ctx.main, h("h1", {}, title), body);
  function show(d) {
    const sync = d.last_sync;
    fill(body,
      h("p", {role: "status"}, sync === null ? "The agent has not synced yet."
        : `Last sync ${when(sync.at)}: ${sync.state}${sync.error ? ` — ${sync.error}` : ""}`),
      table("Allocations and their Slurm accounts", [
        {label: "Allocation", cell: (a) => a.allocation},
        {label: "Account", cell: (a) => a.account || "—"},
        {label: "Limit", cell: (a) => a.gpu_minutes ? `${num(a.gpu_minutes)} GPU-minutes to ${a.end}` : "—"},
        {label: "State", cell: (a) => a.state ? a.state + (a.closed_because ? ` (${a.closed_because})` : "") : "—"},
        {label: "At the site", cell: (a) => a.status + (a.reason ? ` — ${a.reason}` : "")},
      ], d.allocations, "No allocations at this site."),
      table("Visitors' local users", [
        {label: "User", cell: (x) => x.user}, {label: "Local user", cell: (x) => x.local_user || "—"},
        {label: "State", cell: (x) => x.state + (x.reason ? ` — ${x.reason}` : "")},
      ], d.identities, "No visitors."),
      h("h2", {}, "Drift"),
      d.drift.length ? h("ul", {}, ...d.drift.map((line) => h("li", {}, line))) : h("p", {}, "None found."),
      d.drift_at ? h("p", {class: "muted"}, `Last found ${when(d.drift_at)}.`) : "");
  }
  show(doc);
  ctx.every(5000, async () => {
    try {
      const d = await api(`/api/v1/sites/${encodeURIComponent(site)}/enforcement`);
      if (ctx.current()) show(d);
    } catch (error) { /* keep what is shown */ }
  });
}
