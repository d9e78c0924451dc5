// The federation: partners, sites and GPUs as a diagram, with each site's live load.

import {api} from "../api.js";
import {federationDiagram} from "../charts.js";
import {h, add, fill, num, when, table} from "../dom.js";

const REFRESH_MS = 4000;

export async function renderOverview(ctx) {
  const fed = ctx.fed;
  const total = fed.sites.reduce((n, x) => n + x.gpus, 0);
  const diagram = h("div", {class: "diagram"});
  const loads = h("div", {});
  const status = h("p", {role: "status", class: "muted"});
  add(ctx.main, 
    h("h1", {}, "Federation"),
    h("p", {class: "lead"}, `${fed.name}: ${fed.partners.length} partners, ${fed.sites.length} sites, ` +
      `${num(total)} GPUs, ${fed.agreements.length} agreements. Quotas and ledgers count ${fed.reference_unit}s.`),
    h("section", {"aria-labelledby": "diagram-h"}, h("h2", {id: "diagram-h"}, "Partners, sites and agreements"),
      diagram),
    h("section", {"aria-labelledby": "load-h"}, h("h2", {id: "load-h"}, "Load per site, live"), status, loads));

  let last = "";
  async function refresh() {
    const load = await api("/api/v1/federation/load");
    if (!ctx.current()) return;
    fill(diagram, federationDiagram(fed, load));
    fill(loads, loadTable(fed, load));
    const busy = load.sites.reduce((n, x) => n + (x.busy_gpus || 0), 0);
    const down = load.sites.filter((x) => !x.available).length;
    const summary = `${num(busy)} of ${num(total)} GPUs busy` + (down ? `; ${down} site(s) unreachable` : "");
    if (summary !== last) {   // announce changes, not every refresh
      status.textContent = `${summary} (as of ${when(load.at)}).`;
      last = summary;
    }
  }
  await refresh();
  ctx.every(REFRESH_MS, () => refresh().catch(() => {}));
}

function loadTable(fed, load) {
  const partner = new Map(fed.partners.map((p) => [p.id, p.name]));
  return table("GPUs per site now, as each site's scheduler reports them", [
    {label: "Site", cell: (x) => x.name},
    {label: "Partner", cell: (x) => partner.get(x.partner) || x.partner},
    {label: "GPUs", num: true, cell: (x) => num(x.gpus)},
    {label: "Busy", num: true, cell: (x) => num(x.busy_gpus)},
    {label: "Queued", num: true, cell: (x) => num(x.queued_gpus)},
    {label: "Pools", cell: (x) => x.pools.map((p) => `${p.pool} (${p.gpu_model}): ${num(p.free_gpus)} free`).join("; ")},
    {label: "Status", cell: (x) => x.available ? "reachable" : `unreachable: ${x.note}`},
  ], load.sites);
}
