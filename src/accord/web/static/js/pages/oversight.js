// Oversight: the audit log (admin, auditors) and the compliance holds (operators decide
// the holds at their sites; officers and auditors see them).

import {api, query, ApiError} from "../api.js";
import {h, add, fill, num, when, duration, field, table} from "../dom.js";

function refused(ctx, title, error) {
  add(ctx.main, h("h1", {}, title), h("p", {role: "alert", class: "error refusal"},
    error instanceof ApiError ? error.explain() : String(error)));
}

// ------------------------------------------------------------------ audit
export async function renderAudit(ctx) {
  const actor = h("input", {name: "actor", autocomplete: "off"});
  const action = h("input", {name: "action", autocomplete: "off"});
  const results = h("div", {});
  const count = h("p", {role: "status", class: "muted"});
  const load = () => api(`/api/v1/audit${query({actor: actor.value.trim(), action: action.value.trim(), limit: 300})}`);
  let first;
  try {
    first = await load();
  } catch (error) {
    refused(ctx, "Audit log", error);
    return;
  }
  add(ctx.main, h("h1", {}, "Audit log"),
    h("p", {}, "Every state-changing request, refused ones included: who, how authenticated, what, and the outcome."),
    h("form", {class: "filters", role: "search", "aria-label": "Filter the audit log", onsubmit: (e) => {
      e.preventDefault();
      refresh().catch(() => {});
    }}, field("Actor (user id)", actor).field, field("Action (e.g. job.submit)", action).field,
    h("button", {type: "submit"}, "Filter")),
    count, results);
  function show(doc) {
    const records = [...doc.records].reverse();
    count.textContent = `${records.length} record(s), newest first.`;
    fill(results, table("Audit records", [
      {label: "When", cell: (r) => when(r.at)}, {label: "Actor", cell: (r) => `${r.actor} (${r.via})`},
      {label: "Action", cell: (r) => r.action}, {label: "Target", cell: (r) => r.target},
      {label: "Partners", cell: (r) => r.partners.join(", ") || "—"},
      {label: "Outcome", cell: (r) => `${r.outcome} (${r.status})`}, {label: "Detail", cell: (r) => r.detail || "—"},
    ], records, "No records match."));
  }
  async function refresh() {
    const doc = await load();
    if (ctx.current()) show(doc);
  }
  show(first);
  ctx.every(5000, () => refresh().catch(() => {}));
}

// ------------------------------------------------------------------ compliance
export async function renderCompliance(ctx) {
  let doc;
  try {
    doc = await api("/api/v1/compliance");
  } catch (error) {
    refused(ctx, "Compliance", error);
    return;
  }
  const list = h("div", {});
  const status = h("p", {role: "status", class: "muted"});
  const outcome = h("p", {role: "status", class: "outcome"});
  add(ctx.main, h("h1", {}, "Compliance"),
    h("p", {}, "Runs abroad above a size by people with no tie to the host wait here until an operator of " +
      "the site approves or refuses them; every decision is audited."),
    status, outcome, list);
  const operates = (site) => ctx.me.roles.some((g) => g.role === "site_operator" && g.target === site);
  let shown = "";
  function show(held, force = false) {
    const key = held.map((x) => x.job).join(",");
    if (key === shown && !force) return;   // keep what an operator is typing
    shown = key;
    status.textContent = held.length ? `${held.length} run(s) held for review.` : "No runs are held for review.";
    fill(list, table("Runs held for compliance review", [
      {label: "Job", cell: (x) => h("a", {href: `#/jobs/${encodeURIComponent(x.job)}`}, x.job)},
      {label: "Requester", cell: (x) => `${x.owner} (${x.requester || "—"}), project ${x.project}`},
      {label: "Site", cell: (x) => x.site},
      {label: "Size", cell: (x) => `${num(x.gpus)} GPUs × ${duration(x.time_limit_s)}`},
      {label: "Rule", cell: (x) => h("span", {}, h("strong", {}, x.rule), ` — ${x.reason}`)},
      {label: "Held since", cell: (x) => when(x.held_at)},
      {label: "Decision", cell: (x) => operates(x.site) ? decide(x) : `for an operator of ${x.site}`},
    ], held, "Nothing is held."));
  }
  function decide(x) {
    const reason = h("input", {name: `reason-${x.job}`, autocomplete: "off"});
    const f = field(`Reason for job ${x.job}`, reason, "Required to refuse.");
    const go = (approve) => async () => {
      try {
        await api(`/api/v1/compliance/${encodeURIComponent(x.job)}/decision`, {method: "POST",
          body: {approve, reason: reason.value.trim()}});
        outcome.textContent = `Job ${x.job} ${approve ? "approved: it will be placed" : "refused: it fails with your reason"}.`;
        await refresh(true);
      } catch (error) {
        outcome.textContent = error instanceof ApiError ? error.explain() : String(error);
        reason.focus();
      }
    };
    return h("div", {class: "decide"}, f.field,
      h("button", {type: "button", onclick: go(true)}, `Approve ${x.job}`),
      h("button", {type: "button", class: "danger", onclick: go(false)}, `Refuse ${x.job}`));
  }
  async function refresh(force = false) {
    const found = await api("/api/v1/compliance");
    if (ctx.current()) show(found.held, force);
  }
  show(doc.held);
  ctx.every(5000, () => refresh().catch(() => {}));
}
