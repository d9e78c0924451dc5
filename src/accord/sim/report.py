"""The simulator's outputs: ``results.json``, ``summary.csv``, ``partners.csv`` and a
self-contained ``report.html`` (tables and inline SVG plots; no script, no network)."""

from __future__ import annotations

import csv
import html
import io
import math
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from accord.sim.replications import FIGURES, ONE_SEED, flat
from accord.sim.runner import Results

COLOURS = ("#1b6ca8", "#d1495b", "#66a182", "#edae49", "#8d6a9f", "#00798c", "#7a7a7a", "#a05c34")
SUMMARY_COLUMNS = ("variant", "policy", "jobs", "completed", "rejected", "deferred", "abroad", "energy_mwh",
                   "emissions_t", "emissions_kg_per_job", "wait_mean_h", "wait_p50_h", "wait_p95_h",
                   "wait_p99_h", "bsld_mean", "bsld_p95", "jain_slowdown", "saving", "oracle_saving",
                   "share_of_achievable", "seconds", "emissions_unknown", "compared", "compared_t",
                   "rejected_too_large", "rejected_no_pool", "rejected_other", "seed")


def write_outputs(results: Results, out: Path) -> list[Path]:
    """Write every output into ``out`` (created if needed); the files written."""
    out.mkdir(parents=True, exist_ok=True)
    doc = {"scenario": results.scenario, "variants": results.variants, "notes": results.notes}
    files = {
        "results.json": orjson.dumps(doc, option=orjson.OPT_INDENT_2 | orjson.OPT_SERIALIZE_NUMPY),
        "summary.csv": summary_csv(results).encode(),
        "partners.csv": partners_csv(results).encode(),
        "report.html": html_report(results).encode(),
    }
    paths = []
    for name, data in files.items():
        (out / name).write_bytes(data)
        paths.append(out / name)
    return paths


def summary_rows(results: Results) -> list[dict[str, Any]]:
    """One flat row per (variant, seed, policy): with one seed, one per (variant, policy)."""
    seed = results.scenario["seeds"][0]
    rows = []
    for v in results.variants:
        for block in v.get("replications") or [{"seed": seed, "runs": v["runs"]}]:
            for r in block["runs"]:
                rows.append({"variant": v["name"], "policy": r["policy"], **flat(r), "seed": block["seed"]})
    return rows


def summary_csv(results: Results) -> str:
    """``summary.csv``: :func:`summary_rows` with a header."""
    buf = io.StringIO()
    w = csv.DictWriter(buf, SUMMARY_COLUMNS, lineterminator="\n")
    w.writeheader()
    for row in summary_rows(results):
        w.writerow({k: _cell(v) for k, v in row.items()})
    return buf.getvalue()


def partners_csv(results: Results) -> str:
    """``partners.csv``: per (variant, policy, home partner) jobs, energy, emissions, wait."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["variant", "policy", "partner", "jobs", "energy_mwh", "emissions_t", "wait_mean_h",
                "bsld_mean"])
    for v in results.variants:
        for r in v["runs"]:
            for p, x in r["partners"].items():
                w.writerow([v["name"], r["policy"], p, x["jobs"], _cell(x["energy_mwh"]),
                            _cell(x["emissions_t"]), _cell(x["wait_h"]), _cell(x["bounded_slowdown"])])
    return buf.getvalue()


def unplaced_reasons(u: Mapping[str, Any]) -> list[str]:
    """Why a run's jobs could not be placed, from its ``unplaced`` figures, one per reason."""
    why = []
    if u["too_large"]:
        why.append(f"{u['too_large']:,} {'asks' if u['too_large'] == 1 else 'ask'} for more GPUs than any "
                   f"pool has (up to {u['largest_asked']:,}; the largest pool has {u['largest_pool']:,})")
    if u.get("no_pool"):
        why.append(f"{u['no_pool']:,} may run at no pool (none of their partner's fits them, and no "
                   "agreement in force on their day covers their partner, theme and sector elsewhere)")
    if u["other"]:
        why.append(f"{u['other']:,} found no free pool their agreements allow (busy, out of quota, or "
                   "past their deadline) before the run gave up")
    return why


def _cell(v: Any) -> Any:
    if isinstance(v, float):
        return "" if math.isnan(v) else f"{v:.6g}"
    return "" if v is None else v


# ─── HTML ────────────────────────────────────────────────────────────────────────────────


def html_report(results: Results) -> str:
    """The report as one HTML page."""
    s = results.scenario
    parts = [f"<h1>Accord simulation: {_e(Path(s['trace']).name)}</h1>",
             f"<p>{s['jobs']:,} jobs ({s['gpu_hours']:,.0f} GPU-hours) from {_e(s['trace'])}, "
             f"first submitted {_e(s['start'])}; load ×{s['load']:g}, size ×{s['size']:g}; "
             f"dispatcher pass {s['pass_seconds']:g} s; "
             f"backfilling {'on' if s['backfill'] else 'off'}; window "
             f"{'agreements’ default' if s['window_hours'] is None else str(s['window_hours']) + ' h'}; "
             f"seed {s['seed']}.</p>"]
    if results.notes:
        parts.append("<ul class=notes>" + "".join(f"<li>{_e(n)}</li>" for n in results.notes) + "</ul>")
    parts.append(_side_by_side(results))
    parts.append(_intervals(results))
    parts.append(_emission_bars(results))
    parts.append(_wait_bars(results))
    for v in results.variants:
        parts.append(f"<h2>{_e(v['name'])}: {v['gpus']:,} GPUs at {len(v['sites'])} sites</h2>")
        if v.get("outages"):
            parts.append("<p>Sites down (they start nothing and do not answer the broker): " + "; ".join(
                f"{_e(o['site'])} from {_e(o['start'])} to {_e(o['end'])}" for o in v["outages"]) + ".</p>")
        if v.get("failures"):
            down_h = sum(_hours(o["end"]) - _hours(o["start"]) for o in v["failures"])
            parts.append(f"<p>{len(v['failures'])} outages drawn at random ({down_h:,.1f} site-hours down in "
                         "all; the list is in results.json).</p>")
        parts.append(_table(["policy", "jobs done", "rejected", "deferred", "abroad", "MWh", "t CO2e",
                             "kg/job", "wait mean h", "p50", "p95", "p99", "bsld", "Jain", "saving",
                             "share of achievable"], [_run_row(r) for r in v["runs"]]))
        parts.append(_run_notes(v["runs"]))
        for r in v["runs"]:
            parts.append(f"<h3>{_e(r['policy'])}</h3><div class=row>")
            u = r["utilisation"]
            parts.append(lines("Utilisation per site", u["t"], u["sites"], "share of GPUs busy", 0.0, 1.0))
            for a, per in r["balances"]["agreements"].items():
                if any(any(x != 0 for x in xs) for xs in per.values()):
                    parts.append(lines(f"Balance of agreement {a}", r["balances"]["t"], per,
                                       "units (provided − used)"))
            parts.append("</div>")
            parts.append(_table(["partner", "jobs", "MWh", "t CO2e", "wait mean h", "bsld"],
                                [[p, f"{x['jobs']:,}", _f(x["energy_mwh"]), _f(x["emissions_t"]),
                                  _f(x["wait_h"]), _f(x["bounded_slowdown"])]
                                 for p, x in r["partners"].items()]))
    body = "\n".join(parts)
    return (f"<!doctype html><html lang=en><head><meta charset=utf-8><title>Accord simulation</title>"
            f"<style>{_CSS}</style></head><body>{body}<footer>Generated by accord simulate, "
            f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC.</footer></body></html>")


_CSS = ("body{font:14px/1.4 system-ui,sans-serif;margin:2em;max-width:1200px;color:#222}"
        "table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:3px 6px;"
        "text-align:right}th{background:#f2f2f2}td:first-child{text-align:left}.row{display:flex;"
        "flex-wrap:wrap;gap:1em}.notes{color:#7a4b00}svg{background:#fff;border:1px solid #ddd}"
        "footer{color:#888;margin-top:2em}")


def _hours(iso: str) -> float:
    return datetime.fromisoformat(iso).timestamp() / 3600


def _run_notes(runs: Sequence[Mapping[str, Any]]) -> str:
    """What the table's figures leave out: rejected jobs and why, unknown emissions, and
    the job set the savings are over."""
    items = [f"{_e(r['policy'])}: {r['unplaced']['jobs']:,} job(s) rejected: "
             f"{_e('; '.join(unplaced_reasons(r['unplaced'])))}" for r in runs if r["unplaced"]["jobs"]]
    items += [f"{_e(r['policy'])}: t CO2e leaves out {r['emissions_unknown']:,} completed job(s) whose "
              "emissions are unknown (no intensity data for their zone and hours)"
              for r in runs if r["emissions_unknown"]]
    if runs:
        c = runs[0]["comparison"]
        items.append(f"saving and share of achievable are over the {c['jobs']:,} jobs every run completed "
                     "with known emissions (their emissions are in the side-by-side table's oracle rows "
                     "and results.json, comparison)")
    return "<ul class=notes>" + "".join(f"<li>{i}</li>" for i in items) + "</ul>"


def _run_row(r: Mapping[str, Any]) -> list[str]:
    c, wt = r["comparison"], r["wait_h"]
    unknown = r["emissions_unknown"]
    total = _f(r["emissions_t"]) + (f" + {unknown:,} jobs unknown" if unknown else "")
    return [r["policy"], f"{r['completed']:,}", f"{r['rejected']:,}", f"{r['deferred']:,}",
            f"{r['abroad']:,}",
            _f(r["energy_mwh"]), total, _f(r["emissions_kg_per_job"]), _f(wt["mean"]),
            _f(wt["p50"]), _f(wt["p95"]), _f(wt["p99"]), _f(r["bounded_slowdown"]["mean"]),
            _f(r["jain_slowdown"]), _pct(c.get("saving")), _pct(c.get("share_of_achievable"))]


def _side_by_side(results: Results) -> str:
    """Capacity planning: each policy's key figures in every variant, side by side."""
    names = [v["name"] for v in results.variants]
    policies = list(dict.fromkeys(r["policy"] for v in results.variants for r in v["runs"]))
    head = ["policy / figure", *names]
    rows = [["GPUs", *[f"{v['gpus']:,}" for v in results.variants]]]
    for p in policies:
        runs = [next((r for r in v["runs"] if r["policy"] == p), None) for v in results.variants]
        figures: list[tuple[str, Callable[[Any], str]]] = [
            ("t CO2e", lambda r: _f(r["emissions_t"])),
            ("wait mean h", lambda r: _f(r["wait_h"]["mean"])),
            ("wait p95 h", lambda r: _f(r["wait_h"]["p95"])),
            ("mean utilisation", lambda r: _pct(_mean(r["utilisation"]["mean"].values()))),
            ("oracle t CO2e", lambda r: _f(r["comparison"]["oracle_t"]))]
        for label, get in figures:
            rows.append([f"{p}: {label}", *[get(r) if r else "" for r in runs]])
    return "<h2>Side by side</h2>" + _table(head, rows)


def _intervals(results: Results) -> str:
    """Replications: each figure's mean and 95 % interval over the seeds (one seed: none)."""
    seeds = results.scenario["seeds"]
    if len(seeds) < 2:
        return f"<p>Seed {seeds[0]}: {_e(ONE_SEED)}.</p>"
    head = ["variant", "policy", *[label for _, label in FIGURES]]
    rows = []
    for v in results.variants:
        for entry in v["intervals"]:
            rows.append([v["name"], entry["policy"], *[_interval(entry["figures"][k]) for k, _ in FIGURES]])
    return (f"<h2>Replications: mean and 95 % interval over {len(seeds)} seeds</h2><p>Student t over seeds "
            f"{_e(', '.join(map(str, seeds)))}; the tables below are seed {seeds[0]}'s runs.</p>"
            + _table(head, rows))


def _interval(f: Mapping[str, Any]) -> str:
    if f["mean"] is None:
        return "–"
    if f["low"] is None:
        return f"{_f(f['mean'])} (n={f['n']})"
    return f"{_f(f['mean'])} [{_f(f['low'])}, {_f(f['high'])}]"


def _emission_bars(results: Results) -> str:
    groups = {v["name"]: {r["policy"]: r["comparison"]["emissions_t"] for r in v["runs"]}
              for v in results.variants}
    for v in results.variants:
        if v["runs"]:
            groups[v["name"]]["oracle"] = v["runs"][0]["comparison"]["oracle_t"]
    return bars("Emissions of the compared jobs (t CO2e)", groups)


def _wait_bars(results: Results) -> str:
    groups = {v["name"]: {r["policy"]: r["wait_h"]["mean"] for r in v["runs"]} for v in results.variants}
    return bars("Mean wait (hours)", groups)


def bars(title: str, groups: Mapping[str, Mapping[str, float]], width: int = 560, height: int = 260) -> str:
    """A grouped bar chart as inline SVG: one group per key, one bar per inner key."""
    names = list(dict.fromkeys(k for g in groups.values() for k in g))
    top = max([v for g in groups.values() for v in g.values() if _finite(v)], default=1.0) or 1.0
    left, bottom, plot_h = 50, 40, height - 70
    group_w = (width - left - 10) / max(1, len(groups))
    bar_w = group_w * 0.8 / max(1, len(names))
    out = [_svg_open(width, height, title), _axis_y(left, bottom, plot_h, height, top)]
    for gi, (gname, values) in enumerate(groups.items()):
        x0 = left + gi * group_w + group_w * 0.1
        for ni, n in enumerate(names):
            v = values.get(n)
            if not _finite(v):
                continue
            assert v is not None
            h = plot_h * v / top
            out.append(f'<rect x="{x0 + ni * bar_w:.1f}" y="{height - bottom - h:.1f}" '
                       f'width="{bar_w * 0.9:.1f}" '
                       f'height="{h:.1f}" fill="{COLOURS[ni % len(COLOURS)]}"><title>{_e(gname)} / {_e(n)}: '
                       f'{v:.4g}</title></rect>')
        out.append(f'<text x="{x0 + group_w * 0.4:.1f}" y="{height - bottom + 14}" text-anchor="middle">'
                   f'{_e(gname)}</text>')
    out.append(_legend(names, left, height - 8))
    return "".join(out) + "</svg>"


def lines(title: str, t: Sequence[float], series: Mapping[str, Sequence[float]], unit: str,
          low: float | None = None, high: float | None = None, width: int = 560, height: int = 240) -> str:
    """A line chart as inline SVG; ``t`` in epoch seconds (the axis shows dates)."""
    values = [v for xs in series.values() for v in xs if _finite(v)]
    lo = min(values, default=0.0) if low is None else low
    hi = max(values, default=1.0) if high is None else high
    if hi <= lo:
        hi = lo + 1
    left, bottom, plot_h, plot_w = 60, 40, height - 70, width - 70
    t0, t1 = (t[0], t[-1]) if len(t) > 1 else (0.0, 1.0)
    span = (t1 - t0) or 1.0
    out = [_svg_open(width, height, f"{title} ({unit})")]
    for frac in (0.0, 0.5, 1.0):
        y = height - bottom - plot_h * frac
        out.append(f'<line x1="{left}" x2="{left + plot_w}" y1="{y:.1f}" y2="{y:.1f}" stroke="#eee"/>'
                   f'<text x="{left - 4}" y="{y + 4:.1f}" text-anchor="end">'
                   f'{lo + (hi - lo) * frac:.3g}</text>')
    for frac in (0.0, 1.0):
        x = left + plot_w * frac
        day = datetime.fromtimestamp(t0 + span * frac, UTC).strftime("%Y-%m-%d")
        out.append(f'<text x="{x:.1f}" y="{height - bottom + 14}" text-anchor="middle">{day}</text>')
    for i, (name, xs) in enumerate(series.items()):
        pts = " ".join(f"{left + plot_w * (tt - t0) / span:.1f},"
                       f"{height - bottom - plot_h * (v - lo) / (hi - lo):.1f}"
                       for tt, v in zip(t, xs, strict=False) if _finite(v))
        out.append(f'<polyline fill="none" stroke="{COLOURS[i % len(COLOURS)]}" stroke-width="1.5" '
                   f'points="{pts}"><title>{_e(name)}</title></polyline>')
    out.append(_legend(list(series), left, height - 8))
    return "".join(out) + "</svg>"


def _svg_open(width: int, height: int, title: str) -> str:
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-size="11" '
            f'role="img" aria-label="{_e(title)}"><text x="8" y="16" font-weight="bold">{_e(title)}</text>')


def _axis_y(left: int, bottom: int, plot_h: int, height: int, top: float) -> str:
    out = []
    for frac in (0.0, 0.5, 1.0):
        y = height - bottom - plot_h * frac
        out.append(f'<line x1="{left}" x2="9999" y1="{y:.1f}" y2="{y:.1f}" stroke="#eee"/>'
                   f'<text x="{left - 4}" y="{y + 4:.1f}" text-anchor="end">{top * frac:.3g}</text>')
    return "".join(out)


def _legend(names: Sequence[str], x: int, y: int) -> str:
    out, cursor = [], float(x)
    for i, n in enumerate(names):
        out.append(f'<rect x="{cursor:.0f}" y="{y - 9}" width="10" height="10" '
                   f'fill="{COLOURS[i % len(COLOURS)]}"/>'
                   f'<text x="{cursor + 13:.0f}" y="{y}">{_e(n)}</text>')
        cursor += 20 + 7 * len(n)
    return "".join(out)


def _table(head: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    h = "".join(f"<th>{_e(c)}</th>" for c in head)
    body = "".join("<tr>" + "".join(f"<td>{_e(str(c))}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><tr>{h}</tr>{body}</table>"


def _mean(xs: Any) -> float:
    values = [x for x in xs if _finite(x)]
    return sum(values) / len(values) if values else math.nan


def _finite(v: float | None) -> bool:
    return v is not None and isinstance(v, int | float) and math.isfinite(v)


def _f(v: float | None) -> str:
    return f"{v:,.3g}" if _finite(v) and v is not None and abs(v) < 1000 else (
        f"{v:,.0f}" if _finite(v) and v is not None else "–")


def _pct(v: float | None) -> str:
    return f"{v:.1%}" if _finite(v) and v is not None else "–"


def _e(text: str) -> str:
    return html.escape(str(text))
