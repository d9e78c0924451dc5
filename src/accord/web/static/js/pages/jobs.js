// Jobs: the filterable list, the submit form with its live preview, and one job's page
// (its story, why it was placed where it is, its output, energy and emissions).

import {api, query, ApiError} from "../api.js";
import {announce, h, add, fill, num, co2, when, duration, badge, field, setFieldError, table} from "../dom.js";

const STATES = ["submitted", "held", "deferred", "placed", "dispatched", "running", "completed", "failed",
  "cancelled", "timed_out"];
const FINAL = new Set(["completed", "failed", "cancelled", "timed_out"]);

// ------------------------------------------------------------------ the list
export async function renderJobs(ctx) {
  const state = h("select", {name: "state"}, h("option", {value: ""}, "Any state"),
    STATES.map((x) => h("option", {value: x}, x.replace("_", " "))));
  const text = h("input", {type: "search", name: "q", autocomplete: "off"});
  const mine = h("input", {type: "checkbox", name: "mine"});
  const results = h("div", {});
  const count = h("p", {role: "status", class: "muted"});
  const mineLabel = h("label", {class: "check"}, mine, " Only jobs I submitted");
  add(ctx.main, 
    h("h1", {}, "Jobs"),
    ctx.can("submit") ? h("p", {}, h("a", {href: "#/submit", class: "button primary"}, "Submit a job")) : null,
    h("form", {class: "filters", role: "search", "aria-label": "Filter jobs", onsubmit: (e) => e.preventDefault()},
      field("State", state).field, field("Search id, name, site or project", text).field, mineLabel),
    count, results);

  let jobs = [];
  function show() {
    const q = text.value.trim().toLowerCase();
    const shown = jobs.filter((j) => (!mine.checked || j.owner === ctx.me.user) && (!q ||
      [j.id, j.spec.name, j.site, j.spec.project, j.owner].some((x) => x && String(x).toLowerCase().includes(q))));
    count.textContent = `${shown.length} job(s) shown of the ${jobs.length} newest you may see.`;
    fill(results, table("Jobs, newest first", [
      {label: "Job", cell: (j) => h("a", {href: `#/jobs/${encodeURIComponent(j.id)}`}, j.id)},
      {label: "Name", cell: (j) => j.spec.name},
      {label: "State", cell: (j) => badge(j.state)},
      {label: "Site", cell: (j) => j.site || "—"},
      {label: "Agreement", cell: (j) => j.agreement || "—"},
      {label: "GPUs", num: true, cell: (j) => num(j.spec.gpus)},
      {label: "Project", cell: (j) => j.spec.project},
      {label: "Owner", cell: (j) => j.owner},
      {label: "Submitted", cell: (j) => when(j.submitted_at)},
    ], shown, "No jobs match."));
  }
  async function refresh() {
    const found = await api(`/api/v1/jobs${query({state: state.value, limit: 200})}`);
    if (!ctx.current()) return;
    jobs = found.jobs;
    show();
  }
  state.addEventListener("change", () => refresh().catch(() => {}));
  text.addEventListener("input", show);
  mine.addEventListener("change", show);
  await refresh();
  ctx.every(4000, () => refresh().catch(() => {}));
}

// ------------------------------------------------------------------ the submit form
export async function renderSubmit(ctx) {
  const {projects} = await api("/api/v1/projects");
  const isAdmin = ctx.me.roles.some((g) => g.role === "admin");
  const mineOnly = projects.filter((p) => p.pi === ctx.me.user || p.members.includes(ctx.me.user));
  const models = [...new Set(ctx.fed.sites.flatMap((x) => x.pools.map((p) => p.gpu_model)))].sort();
  const c = {
    name: field("Name", h("input", {name: "name", maxlength: 128, autocomplete: "off"}), "Optional: a name to find it by."),
    project: field("Project", h("select", {name: "project"},
      isAdmin ? h("option", {value: ""}, "(none: run as the operator)") : null,
      mineOnly.map((p) => h("option", {value: p.id}, `${p.id} — ${p.name} (${p.partner})`))),
    "The job runs for this project, under its allocations."),
    command: field("Command", h("input", {name: "command", required: true, autocomplete: "off",
      value: "sleep 5 && echo done"}), "Run with sh -c on the site, e.g. python train.py --epochs 3"),
    gpus: field("GPUs", h("input", {name: "gpus", type: "number", min: 1, max: 1000000, value: 1, required: true})),
    gpu_model: field("GPU model", h("select", {name: "gpu_model"}, h("option", {value: ""}, "Any"),
      models.map((m) => h("option", {value: m}, m)))),
    time_limit: field("Time limit", h("input", {name: "time_limit", value: "10m", required: true, autocomplete: "off"}),
      "Seconds, or 30m, 2h, HH:MM:SS. The cost and emissions estimates assume it runs this long."),
    theme: field("Theme", h("input", {name: "theme", autocomplete: "off"}),
      "Optional: defaults to the project's theme; agreements cover some themes only."),
  };
  const preview = h("div", {class: "preview", role: "status", "aria-live": "polite", "aria-atomic": "true"},
    h("p", {class: "muted"}, "Fill in the form to see where the job would run, its cost and its emissions."));
  const submit = h("button", {type: "submit", class: "primary"}, "Submit the job");
  const formError = h("p", {role: "alert", class: "error", hidden: true});
  const form = h("form", {class: "submit-form", "aria-labelledby": "submit-h", novalidate: true},
    h("div", {class: "grid2"}, Object.values(c).map((x) => x.field)), formError, submit);
  add(ctx.main, h("h1", {id: "submit-h"}, "Submit a job"),
    !mineOnly.length && !isAdmin ? h("p", {class: "warning"}, "You belong to no project yet: create one " +
      "(accord project create) or ask a project's PI to add you.") : null,
    h("div", {class: "columns"}, form,
      h("section", {"aria-labelledby": "preview-h", class: "preview-box"},
        h("h2", {id: "preview-h"}, "Preview: where, when, cost and emissions"), preview)));

  function body() {
    const out = {command: ["sh", "-c", c.command.control.value], gpus: Number(c.gpus.control.value),
      time_limit: c.time_limit.control.value.trim()};
    for (const key of ["name", "project", "gpu_model", "theme"]) {
      const v = c[key].control.value.trim();
      if (v) out[key] = v;
    }
    if (/^\d+$/.test(out.time_limit)) out.time_limit = Number(out.time_limit);
    return out;
  }
  function showProblems(error) {
    Object.values(c).forEach((x) => setFieldError(x, ""));
    formError.hidden = true;
    if (!(error instanceof ApiError)) return;
    const unplaced = [];
    for (const p of error.problems) {
      const key = String(p.field || "").split(".")[0];
      const message = `${p.message}${p.allowed ? ` (allowed: ${p.allowed})` : ""}`;
      if (c[key]) setFieldError(c[key], message);
      else unplaced.push(`${p.field}: ${message}`);
    }
    if (!error.problems.length || unplaced.length) {
      formError.textContent = unplaced.length ? unplaced.join("; ") : error.explain();
      formError.hidden = false;
    }
  }

  let timer = null, asked = 0;
  async function runPreview() {
    const mine = ++asked;
    try {
      const doc = await api("/api/v1/jobs/preview", {method: "POST", body: body()});
      if (mine !== asked || !ctx.current()) return;
      showProblems(null);
      fill(preview, previewView(doc));
    } catch (error) {
      if (mine !== asked || !ctx.current()) return;
      showProblems(error);
      fill(preview, h("p", {class: "error"}, "No preview: " + (error instanceof ApiError ? error.explain() : String(error))));
    }
  }
  form.addEventListener("input", () => {
    clearTimeout(timer);
    timer = setTimeout(runPreview, 350);
  });
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    submit.disabled = true;
    try {
      const job = await api("/api/v1/jobs", {method: "POST", body: body()});
      announce(`Job ${job.id} submitted.`);
      location.hash = `#/jobs/${encodeURIComponent(job.id)}`;
    } catch (error) {
      showProblems(error);
      const bad = form.querySelector("[aria-invalid=true]");
      (bad || formError).focus?.();
    } finally {
      submit.disabled = false;
    }
  });
  await runPreview();
}

function previewView(doc) {
  const where = doc.site ? `${doc.site} (pool ${doc.pool})${doc.agreement ? ` under agreement ${doc.agreement}` : ", at home"}`
    : "nowhere yet";
  const gate = doc.gate;
  return h("div", {},
    h("dl", {class: "facts"},
      h("dt", {}, "Decision"), h("dd", {}, doc.verdict),
      h("dt", {}, "Would run at"), h("dd", {}, where),
      h("dt", {}, "Start"), h("dd", {}, when(doc.start)),
      h("dt", {}, "Cost"), h("dd", {}, `${num(doc.cost_units, true)} ${doc.reference_unit}` +
        (doc.agreement ? "" : " (at home: no agreement is charged)")),
      h("dt", {}, "Energy"), h("dd", {}, doc.energy_kwh === null ? "—" : `${num(doc.energy_kwh)} kWh`),
      h("dt", {}, "Emissions"), h("dd", {}, doc.emissions_kg === null ? "unknown (no forecast)" : co2(doc.emissions_kg)),
      h("dt", {}, "Rules"), h("dd", {}, gate ? `${gate.action}${gate.note ? `: ${gate.note}` : ""}` : "—",
        doc.rules.length ? ` ${doc.rules.join("; ")}` : "")),
    h("p", {class: "explanation"}, doc.explanation));
}

// ------------------------------------------------------------------ one job
export async function renderJob(ctx) {
  const id = ctx.params[0];
  const state = h("p", {role: "status", "aria-live": "polite", class: "job-state"});
  const facts = h("div", {});
  const why = h("div", {});
  const story = h("div", {});
  const footprint = h("div", {});
  const output = h("div", {});
  const actions = h("div", {class: "actions"});
  let job;
  try {
    job = await api(`/api/v1/jobs/${encodeURIComponent(id)}`);
  } catch (error) {
    add(ctx.main, h("h1", {}, `Job ${id}`), h("p", {role: "alert", class: "error"},
      error instanceof ApiError ? error.explain() : String(error)));
    return;
  }
  const explanation = h("details", {class: "explanation-box", id: "explanation"},
    h("summary", {}, "Why here? The placement explanation"), why);
  add(ctx.main, 
    h("h1", {}, `Job ${job.id}`), h("p", {class: "lead"}, job.spec.name), state, actions,
    h("div", {class: "columns"},
      h("section", {"aria-labelledby": "facts-h"}, h("h2", {id: "facts-h"}, "Details"), facts),
      h("section", {"aria-labelledby": "fp-h"}, h("h2", {id: "fp-h"}, "Energy and emissions"), footprint)),
    h("section", {"aria-labelledby": "why-h"}, h("h2", {id: "why-h"}, "Placement"), explanation),
    h("section", {"aria-labelledby": "story-h"}, h("h2", {id: "story-h"}, "Story"), story),
    h("section", {"aria-labelledby": "out-h"}, h("h2", {id: "out-h"}, "Output"), output));

  let lastState = null;
  async function refresh() {
    job = await api(`/api/v1/jobs/${encodeURIComponent(id)}`);
    if (!ctx.current()) return;
    if (job.state !== lastState) {
      fill(state, "State: ", badge(job.state), ` — ${job.reason}`);
      lastState = job.state;
    }
    fill(facts, factsView(job));
    fill(why, whyView(job));
    fill(story, storyView(job));
    fill(actions, FINAL.has(job.state) ? null : h("button", {type: "button", onclick: cancel}, "Cancel this job"));
    const [fp, logs] = await Promise.allSettled([
      api(`/api/v1/jobs/${encodeURIComponent(id)}/footprint`),
      api(`/api/v1/jobs/${encodeURIComponent(id)}/logs`)]);
    if (!ctx.current()) return;
    fill(footprint, fp.status === "fulfilled" ? footprintView(fp.value) : refusal(fp.reason));
    fill(output, logs.status === "fulfilled" ? logsView(logs.value) : refusal(logs.reason));
  }
  async function cancel() {
    try {
      await api(`/api/v1/jobs/${encodeURIComponent(id)}/cancel`, {method: "POST"});
      announce(`Job ${id} cancelled.`);
      await refresh();
    } catch (error) {
      announce(error instanceof ApiError ? error.explain() : String(error));
    }
  }
  await refresh();
  let settled = FINAL.has(job.state) ? 1 : 0;
  ctx.every(2500, () => {
    if (settled > 1) return;   // final, and refreshed once more for its footprint
    if (FINAL.has(job.state)) settled += 1;
    refresh().catch(() => {});
  });
}

function refusal(error) {
  return h("p", {class: "muted"}, error instanceof ApiError ? error.explain() : String(error));
}

function factsView(job) {
  const o = job.outcome;
  const rows = [
    ["Owner", job.owner], ["Project", job.spec.project], ["Partner", job.spec.partner || "—"],
    ["Theme", job.spec.theme || "—"], ["GPUs", `${job.spec.gpus}${job.spec.gpu_model ? ` × ${job.spec.gpu_model}` : ""}`],
    ["Time limit", duration(job.spec.time_limit_s)], ["Site", job.site ? `${job.site} (pool ${job.pool})` : "—"],
    ["Agreement", job.agreement || "— (at home)"], ["Submitted", when(job.submitted_at)],
    ["Command", job.spec.command.join(" ") || "(batch script)"],
  ];
  if (o) rows.push(["Ran", `${when(o.started_at)} → ${when(o.ended_at)}`], ["Exit code", String(o.exit_code)],
    ["GPU-hours", num(o.gpu_seconds / 3600, true)]);
  if (o && (o.account || o.local_user)) rows.push(["Ran as", `${o.local_user || "—"} in Slurm account ${o.account || "—"}`]);
  return h("dl", {class: "facts"}, rows.map(([k, v]) => [h("dt", {}, k), h("dd", {}, v)]));
}

function whyView(job) {
  const place = [...job.story].reverse().find((e) => e.kind === "place");
  const defer = [...job.story].reverse().find((e) => e.kind === "defer" || e.kind === "hold");
  if (!place) {
    return h("p", {}, defer ? defer.reason : "Not placed yet: the dispatcher places submitted jobs within a second or so.");
  }
  const d = place.data || {};
  const parts = [h("p", {}, place.reason)];
  if (d.emissions_g !== undefined && d.baseline_g !== undefined) {
    const est = Number(d.emissions_g), base = Number(d.baseline_g);
    const saved = base - est;
    parts.push(h("p", {class: "saving"}, `Estimated at placement: ${co2(est / 1000)} here, against ` +
      `${co2(base / 1000)} starting at once at ${d.baseline_site}/${d.baseline_pool} (the home-site baseline): ` +
      (saved >= 0 ? `${co2(saved / 1000)} saved.` : `${co2(-saved / 1000)} more.`)));
  }
  return parts;
}

function storyView(job) {
  return h("ol", {class: "story"}, job.story.map((e) => h("li", {},
    h("span", {class: "story-head"}, `${when(e.at)} · ${e.kind}`,
      e.before && e.before !== e.after ? ` · ${e.before} → ${e.after}` : e.before ? "" : ` → ${e.after}`),
    h("span", {class: "story-reason"}, e.reason))));
}

function footprintView(fp) {
  if (!fp.recorded) return h("p", {}, `Not recorded yet: ${fp.reason}.`);
  return h("dl", {class: "facts"},
    h("dt", {}, "Energy"), h("dd", {}, `${num(fp.energy_kwh, true)} kWh (${fp.energy_basis || "—"})`),
    h("dt", {}, "Emissions"), h("dd", {}, fp.emissions_kg === null ? "unknown" : co2(fp.emissions_kg)),
    h("dt", {}, "Grid intensity"), h("dd", {}, fp.mean_intensity_g_per_kwh === null || fp.mean_intensity_g_per_kwh === undefined
      ? "—" : `${num(fp.mean_intensity_g_per_kwh)} g/kWh (${fp.intensity_source || "—"})`),
    h("dt", {}, "GPU-hours"), h("dd", {}, fp.gpu_seconds === undefined ? "—" : num(fp.gpu_seconds / 3600, true)));
}

function logsView(logs) {
  return [h("h3", {}, "Standard output"), h("pre", {class: "log", tabindex: "0", "aria-label": "Standard output"}, logs.stdout || "(empty)"),
    logs.stderr ? [h("h3", {}, "Standard error"), h("pre", {class: "log", tabindex: "0", "aria-label": "Standard error"}, logs.stderr)] : null];
}
