// The dashboard's shell: sign-in state, navigation by hash (#/jobs, #/jobs/ID, ...),
// one page at a time, and the page's periodic refreshes (stopped when it is left).

import {api, clearToken, token, whenUnauthorised, ApiError} from "./api.js";
import {announce, h, fill} from "./dom.js";
import {renderSignIn} from "./pages/signin.js";
import {renderOverview} from "./pages/overview.js";
import {renderJobs, renderJob, renderSubmit} from "./pages/jobs.js";
import {renderAgreements, renderAgreement} from "./pages/agreements.js";
import {renderEmissions} from "./pages/emissions.js";
import {renderAudit, renderCompliance} from "./pages/oversight.js";
import {renderNotifications} from "./pages/notifications.js";
import {renderSites, renderSite} from "./pages/sites.js";

const ROUTES = [
  [/^$/, "overview", renderOverview],
  [/^jobs$/, "jobs", renderJobs],
  [/^jobs\/([^/]+)$/, "jobs", renderJob],
  [/^submit$/, "submit", renderSubmit],
  [/^agreements$/, "agreements", renderAgreements],
  [/^agreements\/([^/]+)$/, "agreements", renderAgreement],
  [/^emissions$/, "emissions", renderEmissions],
  [/^compliance$/, "compliance", renderCompliance],
  [/^audit$/, "audit", renderAudit],
  [/^notifications$/, "notifications", renderNotifications],
  [/^sites$/, "sites", renderSites],
  [/^sites\/([^/]+)$/, "sites", renderSite],
];

const main = document.getElementById("main");
const session = {me: null, fed: null};
let timers = [];
let generation = 0;

/** What the signed-in user may use, from /api/v1/me (the server decides regardless). */
export function can(me, what) {
  if (!me) return false;
  const has = (...roles) => me.roles.some((g) => roles.includes(g.role));
  const scope = (name) => me.scopes === null || me.scopes.includes(name) || me.scopes.includes("admin");
  switch (what) {
    case "agreements": return has("admin", "programme_officer", "auditor") && scope("ledger:read");
    case "audit": return has("admin", "auditor") && (scope("audit:read") || scope("ledger:read"));
    case "compliance": return has("admin", "auditor", "site_operator", "programme_officer") && scope("compliance");
    case "sites": return has("admin", "site_operator", "programme_officer", "auditor") && scope("projects:read");
    case "submit": return scope("jobs:write");
    case "jobs": return scope("jobs:read");
    default: return true;
  }
}

/** Tell screen-reader users something once (polite live region). */
function stopTimers() {
  timers.forEach(clearInterval);
  timers = [];
}

function describe(me) {
  const roles = me.roles.map((g) => g.role.replace("_", " ") + (g.target ? ` (${g.target})` : ""));
  if (!roles.length) roles.push("researcher");
  return `${me.name || me.user} (${me.user}) · ${roles.join(", ")}`;
}

function showChrome(signedIn) {
  document.getElementById("nav").hidden = !signedIn;
  document.getElementById("who").hidden = !signedIn;
  if (!signedIn) return;
  document.getElementById("who-name").textContent = describe(session.me);
  for (const link of document.querySelectorAll("#nav a[data-needs]")) {
    link.parentElement.hidden = !can(session.me, link.dataset.needs);
  }
  document.getElementById("fed-name").textContent = session.fed ? session.fed.name : "";
}

function markCurrent(page) {
  for (const link of document.querySelectorAll("#nav a")) {
    if (link.dataset.page === page) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
}

async function loadSession() {
  session.me = await api("/api/v1/me");
  session.fed = await api("/api/v1/federation");
}

/** Sign out: forget the token and show the sign-in page. */
export function signOut(message) {
  clearToken();
  session.me = null;
  session.fed = null;
  showChrome(false);
  if (location.hash !== "#/signin") location.hash = "#/signin";
  else route();
  if (message) setTimeout(() => announce(message), 100);
}

async function route() {
  stopTimers();
  generation += 1;
  const mine = generation;
  const path = location.hash.replace(/^#\/?/, "");
  if (!token() || path === "signin") {
    showChrome(false);
    markCurrent("");
    document.title = "Sign in — Accord";
    renderSignIn(main, async () => {
      await loadSession();
      showChrome(true);
      location.hash = "#/";
    });
    moveFocus = true;
    return;
  }
  try {
    if (!session.me) await loadSession();
  } catch (error) {
    if (error instanceof ApiError && error.status === 401) return;  // whenUnauthorised handles it
    fill(main, h("h1", {tabindex: "-1"}, "Accord is not answering"),
      h("p", {role: "alert"}, error instanceof ApiError ? error.explain() : String(error)));
    return;
  }
  showChrome(true);
  const found = ROUTES.map(([re, page, render]) => [path.match(re), page, render]).find(([m]) => m);
  if (!found) {
    fill(main, h("h1", {tabindex: "-1"}, "No such page"), h("p", {}, h("a", {href: "#/"}, "Go to the overview")));
    return;
  }
  const [match, page, render] = found;
  markCurrent(page);
  fill(main);
  const ctx = {
    main, me: session.me, fed: session.fed, params: match.slice(1).map(decodeURIComponent),
    can: (what) => can(session.me, what),
    current: () => mine === generation,
    every(ms, fn) {
      const id = setInterval(() => { if (mine === generation) fn(); }, ms);
      timers.push(id);
    },
  };
  try {
    await render(ctx);
  } catch (error) {
    if (mine !== generation) return;
    main.append(h("p", {role: "alert", class: "error"}, error instanceof ApiError ? error.explain() : String(error)));
  }
  if (mine !== generation) return;
  const heading = main.querySelector("h1");
  if (heading) {
    heading.setAttribute("tabindex", "-1");
    document.title = `${heading.textContent} — Accord`;
    if (moveFocus) heading.focus();
  }
  moveFocus = true;
}

let moveFocus = false;   // not on the first page load: the browser's own focus order starts there

whenUnauthorised((error) => signOut(`Signed out: ${error.message}`));
document.getElementById("signout").addEventListener("click", () => signOut("Signed out."));
document.querySelector(".skip").addEventListener("click", (event) => {
  event.preventDefault();   // the hash is the route: focus the content instead of following the link
  main.focus();
});
window.addEventListener("hashchange", route);
route();
