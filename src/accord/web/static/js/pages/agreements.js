// Agreements: quota used per direction, the balance over time, and statements to
// download and verify (signatures and proofs checked by the server's offline verifier).

import {api, query, ApiError} from "../api.js";
import {lineChart, barChart, meter} from "../charts.js";
import {announce, h, add, fill, num, lastMonths, field, saveBlob, table} from "../dom.js";

const MONTHS = 6;

function oversees(me, agreement) {
  return me.roles.some((g) => g.role === "admin" || (g.role === "auditor" && g.scope === "global") ||
    (["programme_officer", "auditor"].includes(g.role) && agreement.parties.includes(g.target)));
}

export async function renderAgreements(ctx) {
  const partner = new Map(ctx.fed.partners.map((p) => [p.id, p.name]));
  add(ctx.main, h("h1", {}, "Agreements"),
    h("p", {}, "An agreement's books (quota used, balances, statements) are open to the programme officers " +
      "and auditors of its parties."),
    table("The federation's agreements", [
      {label: "Agreement", cell: (a) => oversees(ctx.me, a)
        ? h("a", {href: `#/agreements/${encodeURIComponent(a.id)}`}, `${a.name} (${a.id})`) : `${a.name} (${a.id})`},
      {label: "Parties", cell: (a) => a.parties.map((p) => partner.get(p) || p).join(" – ")},
      {label: "In force", cell: (a) => `${a.start} to ${a.end}`},
      {label: "Your access", cell: (a) => oversees(ctx.me, a) ? "books open to you" : "not yours to read"},
    ], ctx.fed.agreements));
}

export async function renderAgreement(ctx) {
  const id = ctx.params[0];
  let info;
  try {
    info = await api(`/api/v1/agreements/${encodeURIComponent(id)}/quotas`);
  } catch (error) {
    add(ctx.main, h("h1", {}, `Agreement ${id}`),
      h("p", {role: "alert", class: "error refusal"}, error instanceof ApiError ? error.explain() : String(error)),
      h("p", {}, h("a", {href: "#/agreements"}, "Back to the agreements")));
    return;
  }
  const quotas = h("div", {});
  const balance = h("div", {});
  const cosigners = h("div", {});
  const months = lastMonths(MONTHS);
  add(ctx.main, h("h1", {}, info.name),
    h("p", {class: "lead"}, `${info.agreement}: between ${info.parties.join(" and ")}, ${info.start} to ${info.end}` +
      ` (${info.in_force ? "in force" : "not in force"}). Themes: ${info.themes.join(", ")}. Sectors: ${info.sectors.join(", ")}.`),
    h("section", {"aria-labelledby": "q-h"}, h("h2", {id: "q-h"}, "Quota used per direction"), quotas),
    h("section", {"aria-labelledby": "b-h"}, h("h2", {id: "b-h"}, "Balance over time"), balance),
    h("section", {"aria-labelledby": "c-h"}, h("h2", {id: "c-h"}, "Cosigners of the statements"), cosigners),
    statements(info, months));

  const showQuotas = (doc) => fill(quotas, doc.quotas.length ? doc.quotas.map((q) =>
    meter(`${q.requester} → ${q.host}, ${q.per === "agreement" ? "whole agreement" : `${q.per} ${q.period}`}`,
      q.used, q.units, doc.unit)) : h("p", {}, "This agreement sets no quotas."));
  showQuotas(info);
  async function refreshBalance() {
    const docs = await Promise.all(months.map((m) =>
      api(`/api/v1/ledger/balances${query({agreement: id, period: m})}`)));
    if (!ctx.current()) return;
    fill(balance, balanceView(info, months, docs));
  }
  await refreshBalance();
  async function refreshCosigners() {
    const doc = await api(`/api/v1/agreements/${encodeURIComponent(id)}/cosigners`);
    if (ctx.current()) fill(cosigners, cosignersView(doc));
  }
  await refreshCosigners().catch(() => {});
  ctx.every(5000, async () => {
    try {
      const doc = await api(`/api/v1/agreements/${encodeURIComponent(id)}/quotas`);
      if (ctx.current()) showQuotas(doc);
      await refreshBalance();
      await refreshCosigners();
    } catch { /* the next refresh tries again */ }
  });
}

function balanceView(info, months, docs) {
  const partners = info.parties;
  let running = partners.map(() => 0);
  const cumulative = partners.map(() => []);
  docs.forEach((doc) => {
    running = running.map((v, i) => v + Number(doc.net_by_partner[partners[i]] || 0));
    running.forEach((v, i) => cumulative[i].push(v));
  });
  const directions = [...new Set(docs.flatMap((d) => Object.keys(d.by_direction)))].sort();
  return [
    lineChart({title: `Net balance per partner since ${months[0]} (provided − used)`,
      description: `Cumulative ${info.unit}s each party provided minus used under ${info.agreement}, month by month.`,
      categories: months, series: partners.map((p) => ({label: p})), values: cumulative, unit: info.unit}),
    directions.length ? barChart({title: "Units used per direction and month",
      description: `${info.unit}s used by each requester at each host, per month.`,
      categories: months, series: directions.map((d) => ({label: d})),
      values: directions.map((d) => docs.map((doc) => Number(doc.by_direction[d] || 0))), unit: info.unit})
      : h("p", {class: "muted"}, `No units crossed a border under ${info.agreement} in these months.`),
  ];
}

function cosignersView(doc) {
  if (!doc.witnessing) {
    return h("p", {class: "muted"}, "The federation file names no witness: the statements are signed by the " +
      "operator alone.");
  }
  const rule = doc.policy.rule === "k-of-n" ? `any ${doc.policy.k} of the parties' witnesses`
    : `${doc.policy.k} witness${doc.policy.k === 1 ? "" : "es"} of each party`;
  return [
    h("p", {}, `Each closed period's statement carries the partners' witnesses' cosignatures of the ledger's ` +
      `tree; it is complete once ${rule} cosigned (witnesses: ${doc.witnesses.map((w) => `${w.name} (${w.partner})`).join(", ")}).`),
    table("Cosigners per closed period", [
      {label: "Period", cell: (r) => r.period},
      {label: "Tree size", num: true, cell: (r) => num(r.tree_size)},
      {label: "Status", cell: (r) => r.complete ? "complete" : "provisional"},
      {label: "Cosigned by", cell: (r) => r.cosigners.map((c) => `${c.name} (${c.partner})`).join(", ") || "nobody yet"},
      {label: "Missing", cell: (r) => r.missing.map((m) => m.reason).join("; ") || "—"},
    ], doc.periods, "No period is closed yet."),
  ];
}

function statements(info, months) {
  const period = h("select", {name: "period"}, [...months].reverse().map((m) => h("option", {value: m}, m)));
  const status = h("p", {role: "status", class: "muted"});
  const download = (format) => async () => {
    const m = period.value;
    try {
      const blob = await api(`/api/v1/statements/${encodeURIComponent(info.agreement)}/${m}${query({format})}`, {as: "blob"});
      saveBlob(blob, `statement-${info.agreement}-${m}.${format}`);
      status.textContent = `Downloaded the ${format.toUpperCase()} statement of ${info.agreement} for ${m}.`;
    } catch (error) {
      status.textContent = error instanceof ApiError ? error.explain() : String(error);
    }
  };
  return h("section", {"aria-labelledby": "s-h"}, h("h2", {id: "s-h"}, "Statements"),
    h("p", {}, "A statement lists the period's entries with proofs that they are in the operator's signed " +
      "ledger; anyone with the operator's public key can check it, here or offline with " +
      "accord statement verify FILE.json --key KEY.pem."),
    h("div", {class: "inline"}, field("Period", period).field,
      h("div", {class: "buttons", role: "group", "aria-label": "Download the statement"},
        h("button", {type: "button", onclick: download("json")}, "Download JSON"),
        h("button", {type: "button", onclick: download("html")}, "Download HTML"),
        h("button", {type: "button", onclick: download("csv")}, "Download CSV"))),
    status, verifier());
}

function verifier() {
  const file = h("input", {type: "file", name: "statement", accept: ".json,application/json"});
  const pem = h("textarea", {name: "public_key_pem", rows: 4, spellcheck: "false"});
  const fFile = field("Statement file (JSON)", file);
  const fPem = field("Operator's public key (PEM)", pem,
    "Filled in with the key this server publishes; a partner should paste the key it was given " +
    "out of band, so that the check does not trust this server.");
  const result = h("div", {role: "status", "aria-live": "polite", class: "verify-result"});
  api("/api/v1/ledger/public-key", {as: "text"}).then((text) => { if (!pem.value) pem.value = text; }).catch(() => {});
  const form = h("form", {class: "verify", "aria-labelledby": "v-h"}, h("h3", {id: "v-h"}, "Verify a statement"),
    fFile.field, fPem.field, h("button", {type: "submit", class: "primary"}, "Verify"), result);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    fill(result);
    if (!file.files.length) {
      fill(result, h("p", {class: "error"}, "Choose a statement file (JSON) first."));
      file.focus();
      return;
    }
    let doc;
    try {
      doc = JSON.parse(await file.files[0].text());
    } catch (error) {
      fill(result, h("p", {class: "bad"}, `Does not verify: the file is not JSON (${error.message}).`));
      return;
    }
    try {
      const r = await api("/api/v1/statements/verify", {method: "POST", body: {statement: doc, public_key_pem: pem.value}});
      fill(result, r.ok
        ? h("p", {class: "good"}, `Verified: ${r.agreement} ${r.period} (${r.status}), ${r.entries} entries included ` +
          `in the signed tree of ${r.tree_size} entries; signed by key ${String(r.key_id).slice(0, 16)}….`)
        : [h("p", {class: "bad"}, "Does not verify:"), h("ul", {}, r.problems.map((p) => h("li", {}, p)))]);
      announce(r.ok ? "The statement verifies." : "The statement does not verify.");
    } catch (error) {
      fill(result, h("p", {class: "bad"}, `Could not check it: ${error instanceof ApiError ? error.explain() : error}`));
    }
  });
  return form;
}
