// Emissions per partner, site (or project, agreement) over the last months, and what
// placement saved against running each job at once at its home site.

import {api, query} from "../api.js";
import {barChart} from "../charts.js";
import {h, add, fill, num, co2, plural, lastMonths, field, table} from "../dom.js";

const GROUPS = [["requester_partner", "Partner (whose researchers ran it)"], ["host_partner", "Partner (whose site ran it)"],
  ["site", "Site"], ["project", "Project"], ["agreement", "Agreement"]];

export async function renderEmissions(ctx) {
  const group = h("select", {name: "group"}, GROUPS.map(([v, label]) => h("option", {value: v}, label)));
  const span = h("select", {name: "months"}, [3, 6, 12].map((n) => h("option", {value: n, selected: n === 6}, `${n} months`)));
  const chart = h("div", {});
  const saving = h("div", {});
  const summary = h("p", {role: "status", class: "lead"});
  add(ctx.main, h("h1", {}, "Emissions"),
    h("p", {}, "Energy and emissions of the jobs you may see, from their usage records (a job counts in the " +
      "UTC month its run started)."),
    h("form", {class: "filters", "aria-label": "Choose what to show", onsubmit: (e) => e.preventDefault()},
      field("Group by", group).field, field("Over", span).field),
    summary,
    h("section", {"aria-labelledby": "e-h"}, h("h2", {id: "e-h"}, "Emissions over time"), chart),
    h("section", {"aria-labelledby": "s-h"}, h("h2", {id: "s-h"}, "Saving against the home-site baseline"), saving));

  async function refresh() {
    const months = lastMonths(Number(span.value));
    const g = group.value;
    const [used, savings] = await Promise.all([
      Promise.all(months.map((m) => api(`/api/v1/emissions${query({group: g, period: m})}`))),
      api(`/api/v1/emissions/savings${query({group: g, since: months[0]})}`)]);
    const saved = [savings];
    if (!ctx.current()) return;
    const label = GROUPS.find(([v]) => v === g)[1].toLowerCase();
    const keys = [...new Set(used.flatMap((d) => d.totals.map((t) => t.key ?? "(none)")))].sort();
    const kg = keys.map((k) => used.map((d) => (d.totals.find((t) => (t.key ?? "(none)") === k) || {}).emissions_kg || 0));
    const total = used.reduce((n, d) => n + d.total.emissions_kg, 0);
    const kwh = used.reduce((n, d) => n + d.total.energy_kwh, 0);
    const jobs = used.reduce((n, d) => n + d.total.jobs, 0);
    const base = saved.reduce((n, d) => n + d.total.baseline_kg, 0);
    const est = saved.reduce((n, d) => n + d.total.estimated_kg, 0);
    summary.textContent = `${plural(jobs, "job")}, ${num(kwh, true)} kWh, ${co2(total)} over ${months.length} months.` +
      (base > 0 ? ` Placement estimated ${co2(est)} against ${co2(base)} at the home sites: ` +
        `${co2(base - est)} (${num(((base - est) / base) * 100)}%) saved.` : "");
    fill(chart, keys.length ? barChart({title: `Emissions per ${label} and month`,
      description: `Kilograms of CO2e per ${label}, stacked per month, from ${months[0]} to ${months[months.length - 1]}.`,
      categories: months, series: keys.map((k) => ({label: k})), values: kg, unit: "kg CO2e", stacked: true})
      : h("p", {class: "muted"}, "No usage recorded in these months."));
    fill(saving, savingView(saved, months, label));
  }
  group.addEventListener("change", () => refresh().catch(() => {}));
  span.addEventListener("change", () => refresh().catch(() => {}));
  await refresh();
  ctx.every(15000, () => refresh().catch(() => {}));
}

function savingView(saved, months, label) {
  const keys = new Map();
  for (const d of saved) {
    for (const t of d.totals) {
      const row = keys.get(t.key) || {key: t.key, jobs: 0, estimated_kg: 0, baseline_kg: 0};
      row.jobs += t.jobs;
      row.estimated_kg += t.estimated_kg;
      row.baseline_kg += t.baseline_kg;
      keys.set(t.key, row);
    }
  }
  const rows = [...keys.values()].sort((a, b) => String(a.key).localeCompare(String(b.key)));
  const missing = saved.reduce((n, d) => n + d.without_estimate, 0);
  return [
    h("p", {}, `Basis: ${saved[0] ? saved[0].basis : ""}. Jobs placed without a grid forecast have no estimate` +
      (missing ? ` (${missing} here).` : ".")),
    rows.length ? barChart({title: `Estimated emissions per ${label}: as placed and at the home site`,
      description: `Per ${label}, over ${months[0]} to ${months[months.length - 1]}: placement's estimate for where and when ` +
        "each job ran, and for the same job starting at once at its home site.",
      categories: rows.map((r) => r.key), series: [{label: "As placed"}, {label: "Home-site baseline"}],
      values: [rows.map((r) => r.estimated_kg), rows.map((r) => r.baseline_kg)], unit: "kg CO2e"}) : null,
    table(`Saving per ${label}`, [
      {label: label[0].toUpperCase() + label.slice(1), cell: (r) => r.key},
      {label: "Jobs", num: true, cell: (r) => num(r.jobs)},
      {label: "As placed (kg)", num: true, cell: (r) => num(r.estimated_kg, true)},
      {label: "Baseline (kg)", num: true, cell: (r) => num(r.baseline_kg, true)},
      {label: "Saved (kg)", num: true, cell: (r) => num(r.baseline_kg - r.estimated_kg, true)},
      {label: "Saved (%)", num: true, cell: (r) => r.baseline_kg > 0 ? num(((r.baseline_kg - r.estimated_kg) / r.baseline_kg) * 100) : "—"},
    ], rows, "No placed jobs with an estimate in these months."),
  ];
}
