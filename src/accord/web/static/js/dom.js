// Building the page: elements are made with h(), never from HTML strings, so no value
// from the API is ever parsed as markup.

const SVG_NS = "http://www.w3.org/2000/svg";

function put(el, attrs) {
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key === "text") el.textContent = String(value);
    else if (key.startsWith("on") && typeof value === "function") el.addEventListener(key.slice(2), value);
    else if (key === "dataset") Object.assign(el.dataset, value);
    else if (key === "style") el.style.cssText = String(value);   // CSSOM: allowed by the CSP, unlike the attribute
    else if (value === true) el.setAttribute(key, "");
    else el.setAttribute(key, String(value));
  }
}

function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

/** An HTML element: h("a", {href: "#/jobs"}, "Jobs"). */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  put(el, attrs);
  append(el, children);
  return el;
}

/** An SVG element (same calling convention as h). */
export function s(tag, attrs = {}, ...children) {
  const el = document.createElementNS(SVG_NS, tag);
  put(el, attrs);
  append(el, children);
  return el;
}

/** Append children (skipping null, undefined and false, unlike Element.append). */
export function add(el, ...children) {
  append(el, children);
  return el;
}

/** Replace an element's children. */
export function fill(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

let ids = 0;
/** A fresh element id with a readable prefix. */
export function uid(prefix) {
  ids += 1;
  return `${prefix}-${ids}`;
}

const NUMBER = new Intl.NumberFormat("en-GB", {maximumFractionDigits: 2});
const PRECISE = new Intl.NumberFormat("en-GB", {maximumFractionDigits: 4});

/** A number for people (thousands separated), or "—" when unknown. */
export function num(value, precise = false) {
  if (value === null || value === undefined || value === "" || Number.isNaN(Number(value))) return "—";
  return (precise ? PRECISE : NUMBER).format(Number(value));
}

/** An ISO time as "YYYY-MM-DD HH:MM:SS UTC", or "—". */
export function when(iso) {
  if (!iso) return "—";
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return String(iso);
  return d.toISOString().replace("T", " ").slice(0, 19) + " UTC";
}

/** A duration in seconds as "1 h 30 min" / "45 s". */
export function duration(seconds) {
  if (seconds === null || seconds === undefined) return "—";
  const s = Math.round(Number(seconds));
  if (s < 60) return `${s} s`;
  const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60);
  return h ? `${h} h${m ? ` ${m} min` : ""}` : `${m} min`;
}

/** "YYYY-MM" of the month `back` months before this one (UTC). */
export function monthsAgo(back) {
  const now = new Date();
  const index = now.getUTCFullYear() * 12 + now.getUTCMonth() - back;
  return `${Math.floor(index / 12)}-${String((index % 12) + 1).padStart(2, "0")}`;
}

/** The last `n` months, oldest first, ending with this one. */
export function lastMonths(n) {
  return Array.from({length: n}, (_, i) => monthsAgo(n - 1 - i));
}

/** A state badge: text plus a class for its colour (the text alone carries the meaning). */
export function badge(state) {
  return h("span", {class: `badge state-${state}`}, state.replace("_", " "));
}

/** A labelled form control wrapped in a field: returns {field, control}. */
export function field(label, control, hint) {
  const id = control.id || uid("f");
  control.id = id;
  const parts = [h("label", {for: id}, label), control];
  if (hint) {
    const hintId = `${id}-hint`;
    control.setAttribute("aria-describedby", hintId);
    parts.push(h("p", {class: "hint", id: hintId}, hint));
  }
  const error = h("p", {class: "field-error", id: `${id}-error`, hidden: true});
  parts.push(error);
  return {field: h("div", {class: "field"}, parts), control, error};
}

/** Show (or clear, with "") a field's problem, linked to its control for screen readers. */
export function setFieldError(f, message) {
  const hint = f.control.getAttribute("aria-describedby") || "";
  const ids = hint.split(" ").filter((x) => x && x !== f.error.id);
  if (message) {
    f.error.textContent = message;
    f.error.hidden = false;
    f.control.setAttribute("aria-invalid", "true");
    ids.push(f.error.id);
  } else {
    f.error.textContent = "";
    f.error.hidden = true;
    f.control.removeAttribute("aria-invalid");
  }
  if (ids.length) f.control.setAttribute("aria-describedby", ids.join(" "));
  else f.control.removeAttribute("aria-describedby");
}

/** Save `blob` as a file named `name` (the browser's download). */
export function saveBlob(blob, name) {
  const url = URL.createObjectURL(blob);
  const a = h("a", {href: url, download: name, hidden: true});
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
}

/** A table: columns [{label, cell(row) -> node|string, num?}], with a caption. */
export function table(caption, columns, rows, empty = "Nothing to show.") {
  const head = h("tr", {}, columns.map((c) => h("th", {scope: "col", class: c.num ? "n" : null}, c.label)));
  const body = rows.length
    ? rows.map((r) => h("tr", {}, columns.map((c) => h("td", {class: c.num ? "n" : null}, c.cell(r)))))
    : [h("tr", {}, h("td", {colspan: columns.length}, empty))];
  return h("div", {class: "table-wrap"},
    h("table", {}, caption ? h("caption", {}, caption) : null, h("thead", {}, head), h("tbody", {}, body)));
}

/** A mass of CO2e for people: grams below a kilogram. */
export function co2(kg) {
  if (kg === null || kg === undefined) return "—";
  return Math.abs(kg) < 1 ? `${num(kg * 1000)} g CO2e` : `${num(kg)} kg CO2e`;
}

/** "1 job", "3 jobs". */
export function plural(n, word) {
  return `${num(n)} ${word}${Number(n) === 1 ? "" : "s"}`;
}

// Say `text` to screen readers (the page's live region): cleared first, so that the same
// text said twice is announced twice.
export function announce(text) {
  const region = document.getElementById("announce");
  region.textContent = "";
  setTimeout(() => { region.textContent = text; }, 50);
}
