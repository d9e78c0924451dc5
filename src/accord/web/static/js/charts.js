// Charts as inline SVG, drawn from API data. Each chart is a <figure> whose SVG has a
// title and description for screen readers, followed by the same numbers as a table.

import {h, s, num, uid, table} from "./dom.js";

// Colours with at least 3:1 contrast on white (WCAG non-text contrast), distinguishable
// in the common colour-vision deficiencies; the legend and table name every series.
export const PALETTE = ["#1f5fa8", "#b35900", "#2e7d32", "#8e24aa", "#c62828", "#00695c", "#5d4037",
  "#3949ab", "#ad1457", "#546e7a"];

function niceMax(value) {
  if (!(value > 0)) return 1;
  const step = 10 ** Math.floor(Math.log10(value));
  for (const m of [1, 2, 2.5, 5, 10]) if (m * step >= value) return m * step;
  return 10 * step;
}

function frame(title, description, width, height, body) {
  const titleId = uid("chart-title"), descId = uid("chart-desc");
  return s("svg", {viewBox: `0 0 ${width} ${height}`, role: "img", class: "chart",
    "aria-labelledby": `${titleId} ${descId}`, preserveAspectRatio: "xMidYMid meet"},
  s("title", {id: titleId}, title), s("desc", {id: descId}, description), body);
}

function legend(series) {
  return h("ul", {class: "legend"}, series.map((x, i) => h("li", {},
    h("span", {class: "swatch", style: `background:${x.color || PALETTE[i % PALETTE.length]}`,
      "aria-hidden": "true"}), x.label)));
}

/** A tick label with as many decimals as the axis' scale needs. */
function tick(value, max) {
  const decimals = max >= 10 ? 0 : Math.min(6, Math.max(1, Math.ceil(-Math.log10(max)) + 2));
  return new Intl.NumberFormat("en-GB", {maximumFractionDigits: decimals}).format(value);
}

function yAxis(max, top, bottom, left, right, unit) {
  const ticks = [0, 0.25, 0.5, 0.75, 1];
  return s("g", {class: "axis", "aria-hidden": "true"}, ticks.map((t) => {
    const y = bottom - t * (bottom - top);
    return s("g", {}, s("line", {x1: left, x2: right, y1: y, y2: y, class: t ? "grid" : "base"}),
      s("text", {x: left - 6, y: y + 4, "text-anchor": "end"}, tick(t * max, max)));
  }), s("text", {x: left, y: top - 10, "text-anchor": "start", class: "unit"}, unit));
}

/**
 * Vertical bars: one group per category, one bar per series (stacked when `stacked`).
 * values[seriesIndex][categoryIndex]; negative values are drawn as zero-height bars and
 * still listed in the table.
 */
export function barChart({title, description, categories, series, values, unit, stacked = false}) {
  const width = 720, height = 280, left = 64, right = width - 12, top = 28, bottom = height - 40;
  const totals = categories.map((_, c) => stacked
    ? values.reduce((sum, row) => sum + Math.max(0, row[c] || 0), 0)
    : Math.max(0, ...values.map((row) => row[c] || 0)));
  const max = niceMax(Math.max(0, ...totals));
  const slot = (right - left) / Math.max(1, categories.length);
  const groupWidth = Math.min(slot * 0.7, 70 * (stacked ? 1 : series.length));
  const bars = [];
  categories.forEach((cat, c) => {
    let base = bottom;
    series.forEach((x, i) => {
      const v = Math.max(0, values[i][c] || 0);
      const barH = (v / max) * (bottom - top);
      const color = x.color || PALETTE[i % PALETTE.length];
      if (stacked) {
        bars.push(s("rect", {x: left + c * slot + (slot - groupWidth) / 2, y: base - barH, width: groupWidth,
          height: barH, fill: color}, s("title", {}, `${x.label}, ${cat}: ${num(values[i][c])} ${unit}`)));
        base -= barH;
      } else {
        const w = groupWidth / series.length;
        bars.push(s("rect", {x: left + c * slot + (slot - groupWidth) / 2 + i * w, y: bottom - barH,
          width: Math.max(1, w - 2), height: barH, fill: color},
        s("title", {}, `${x.label}, ${cat}: ${num(values[i][c])} ${unit}`)));
      }
    });
  });
  const labels = categories.map((cat, c) => s("text", {x: left + c * slot + slot / 2, y: bottom + 18,
    "text-anchor": "middle", class: "cat"}, cat));
  const svg = frame(title, description, width, height,
    [yAxis(max, top, bottom, left, right, unit), s("g", {"aria-hidden": "true"}, bars),
      s("g", {"aria-hidden": "true"}, labels)]);
  return figure(title, svg, series, categories, values, unit);
}

/** Lines over categories (e.g. months): values[seriesIndex][categoryIndex]. */
export function lineChart({title, description, categories, series, values, unit}) {
  const width = 720, height = 280, left = 64, right = width - 40, top = 28, bottom = height - 40;
  const all = values.flat().filter((v) => v !== null && v !== undefined);
  const hi = niceMax(Math.max(0, ...all.map(Math.abs)));
  const lo = Math.min(0, ...all) < 0 ? -hi : 0;
  const y = (v) => bottom - ((v - lo) / (hi - lo)) * (bottom - top);
  const x = (c) => left + (categories.length <= 1 ? (right - left) / 2 : (c * (right - left)) / (categories.length - 1));
  const ticks = [0, 0.25, 0.5, 0.75, 1].map((t) => lo + t * (hi - lo));
  const axis = s("g", {class: "axis", "aria-hidden": "true"},
    ticks.map((v) => s("g", {}, s("line", {x1: left, x2: right, y1: y(v), y2: y(v), class: v === 0 ? "base" : "grid"}),
      s("text", {x: left - 6, y: y(v) + 4, "text-anchor": "end"}, tick(v, hi)))),
    s("text", {x: left, y: top - 10, class: "unit"}, unit),
    categories.map((cat, c) => s("text", {x: x(c), y: bottom + 18, "text-anchor": "middle", class: "cat"}, cat)));
  const lines = series.map((ser, i) => {
    const color = ser.color || PALETTE[i % PALETTE.length];
    const pts = values[i].map((v, c) => [x(c), y(v || 0)]);
    return s("g", {}, s("polyline", {points: pts.map((p) => p.join(",")).join(" "), fill: "none",
      stroke: color, "stroke-width": 2.5}),
    pts.map((p, c) => s("circle", {cx: p[0], cy: p[1], r: 4, fill: color},
      s("title", {}, `${ser.label}, ${categories[c]}: ${num(values[i][c])} ${unit}`))));
  });
  const svg = frame(title, description, width, height, [axis, s("g", {"aria-hidden": "true"}, lines)]);
  return figure(title, svg, series, categories, values, unit);
}

function figure(title, svg, series, categories, values, unit) {
  const rows = series.map((x, i) => ({label: x.label, values: values[i]}));
  const columns = [{label: "Series", cell: (r) => r.label},
    ...categories.map((cat, c) => ({label: cat, num: true, cell: (r) => num(r.values[c])}))];
  return h("figure", {class: "chart-figure"}, h("figcaption", {}, title), svg, legend(series),
    h("details", {class: "chart-data"}, h("summary", {}, `${title}: the numbers (${unit})`),
      table(null, columns, rows)));
}

/** A horizontal meter: used of total, labelled in words. */
export function meter(label, used, total, unit) {
  const fraction = total > 0 ? Math.max(0, used) / total : 0;
  const pct = Math.min(100, fraction * 100);
  const level = fraction >= 1 ? "over" : fraction >= 0.8 ? "high" : "ok";
  return h("div", {class: "meter-row"},
    h("div", {class: "meter-label"}, label),
    h("div", {class: `meter meter-${level}`, role: "meter", "aria-valuemin": 0, "aria-valuemax": total,
      "aria-valuenow": Math.max(0, used), "aria-label": label,
      "aria-valuetext": `${num(used)} of ${num(total)} ${unit} (${num(fraction * 100)}%)`},
    h("span", {class: "meter-fill", style: `width:${pct}%`})),
    h("div", {class: "meter-text"}, `${num(used)} of ${num(total)} ${unit} (${num(fraction * 100)}%)`));
}

/**
 * The federation as a diagram: one column per partner with its sites (GPUs and live
 * load), and the agreements as arcs between partners (named in the legend).
 */
export function federationDiagram(fed, load) {
  const bySite = new Map((load ? load.sites : []).map((x) => [x.site, x]));
  const partners = fed.partners;
  const width = 1000, colW = width / Math.max(1, partners.length), boxW = colW - 24;
  const siteH = 80, headY = 96, headH = 40;
  const most = Math.max(1, ...partners.map((p) => fed.sites.filter((x) => x.partner === p.id).length));
  const height = headY + headH + 16 + most * (siteH + 12) + 8;
  const cx = (i) => i * colW + colW / 2;
  const index = new Map(partners.map((p, i) => [p.id, i]));
  const color = (k) => PALETTE[k % PALETTE.length];
  const arcs = fed.agreements.map((a, k) => {
    const [p1, p2] = a.parties.map((x) => index.get(x)).filter((x) => x !== undefined);
    if (p1 === undefined || p2 === undefined) return null;
    const x1 = cx(Math.min(p1, p2)) + (k - fed.agreements.length / 2) * 6, x2 = cx(Math.max(p1, p2));
    const lift = 20 + Math.abs(p2 - p1) * 18;
    return s("path", {d: `M ${x1} ${headY} Q ${(x1 + x2) / 2} ${headY - lift * 1.6} ${x2} ${headY}`,
      class: "arc", stroke: color(k)}, s("title", {}, `${a.id}: ${a.name}`));
  });
  const columns = partners.map((p, i) => {
    const sites = fed.sites.filter((x) => x.partner === p.id);
    const x0 = i * colW + 12;
    return s("g", {},
      s("rect", {x: x0, y: headY, width: boxW, height: headH, rx: 6, class: "partner"}),
      s("text", {x: cx(i), y: headY + 25, "text-anchor": "middle", class: "partner-name"}, fit(p.name, boxW - 12, 9)),
      sites.map((site, j) => siteBox(site, bySite.get(site.id), x0, headY + headH + 16 + j * (siteH + 12), boxW, siteH)));
  });
  const busy = load ? load.sites.reduce((n, x) => n + (x.busy_gpus || 0), 0) : null;
  const total = fed.sites.reduce((n, x) => n + x.gpus, 0);
  const svg = frame("The federation: partners, their sites and agreements",
    `${partners.length} partners, ${fed.sites.length} sites, ${num(total)} GPUs` +
    (busy === null ? "" : `, ${num(busy)} busy now`) + `; ${fed.agreements.length} agreements: ` +
    fed.agreements.map((a) => `${a.id} between ${a.parties.join(" and ")}`).join("; ") + ".",
    width, height, s("g", {"aria-hidden": "true"}, arcs, columns));
  return h("div", {}, svg, h("p", {class: "legend-title"}, "Agreements (arcs):"),
    legend(fed.agreements.map((a, k) => ({label: `${a.id}: ${a.name}`, color: color(k)}))));
}

/** Text cut to fit `width` px at about `perChar` px per character. */
function fit(text, width, perChar) {
  const most = Math.floor(width / perChar);
  return text.length > most ? `${text.slice(0, most - 1)}…` : text;
}

function siteBox(site, load, x, y, w, hgt) {
  const known = load && load.busy_gpus !== null && load.busy_gpus !== undefined;
  const frac = known && site.gpus ? load.busy_gpus / site.gpus : 0;
  const barW = w - 16;
  const state = !load ? "load unknown" : load.available
    ? `${num(load.busy_gpus)} busy (${num(frac * 100)}%)${load.queued_gpus ? `, ${num(load.queued_gpus)} queued` : ""}`
    : "unreachable";
  return s("g", {class: "site"},
    s("rect", {x, y, width: w, height: hgt, rx: 6, class: load && !load.available ? "site-box down" : "site-box"}),
    s("text", {x: x + 8, y: y + 18, class: "site-name"}, fit(site.name, w - 16, 7.8)),
    s("text", {x: x + 8, y: y + 35, class: "site-gpus"},
      fit(`${num(site.gpus)} GPUs · ${site.pools.map((p) => p.gpu_model).join(", ")}`, w - 16, 6.6)),
    s("rect", {x: x + 8, y: y + 44, width: barW, height: 10, rx: 3, class: "load-bg"}),
    s("rect", {x: x + 8, y: y + 44, width: Math.max(known && load.busy_gpus > 0 ? 2 : 0, barW * Math.min(1, frac)),
      height: 10, rx: 3, class: "load-fg"}),
    s("text", {x: x + 8, y: y + 70, class: "site-gpus"}, fit(state, w - 16, 6.6)),
    s("title", {}, `${site.name}: ${num(site.gpus)} GPUs; ${state}`));
}
