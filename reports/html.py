"""The interactive report page: one self-contained HTML file (plotly.js inlined, no network fetches)."""

from __future__ import annotations

import html
from typing import Any

import json

import numpy as np
import pandas as pd

from reports.data import (ENERGY_COMPONENTS, fmt_bytes, fmt_energy, fmt_time, label, pattern_order, section_key,
                          shown)
from reports.fronts import FRONT_SPECS

#: Points per plot drawn besides the fronts (big sweeps are sampled deterministically).
MAX_BACKGROUND_POINTS = 3000
COLORS = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf"]
BIT_COLORS = {32: "#4c72b0", 16: "#55a868", 8: "#dd8452", 4: "#c44e52"}
COMPONENT_COLORS = dict(zip(ENERGY_COMPONENTS, ["#4c72b0", "#dd8452", "#55a868", "#c44e52", "#8172b3", "#937860", "#8c8c8c"]))


_HOVER_COLUMNS = ["design", "pattern", "bits", "method", "mask_source", "latency_s", "energy_pj", "model_bytes",
                  "return_mean", "point_id"]


def _hover(df: pd.DataFrame) -> list[str]:
    df = df.reindex(columns=_HOVER_COLUMNS)
    return [
        f"{r.design} | {r.pattern} @ {r.bits} b | {r.method} | {r.mask_source}<br>latency {fmt_time(r.latency_s)}, "
        f"energy {fmt_energy(r.energy_pj)}<br>size {fmt_bytes(r.model_bytes)}, return "
        f"{'missing' if r.return_mean != r.return_mean else f'{r.return_mean:.0f}'}<br>id {r.point_id}"
        for r in df.itertuples()
    ]


def _num(values) -> list:
    """Plain floats for JSON; NaN becomes None (a gap in plotly)."""
    return [None if v != v else float(v) for v in np.asarray(values, dtype=float)]


def _grid(rows: int, cols: int, titles: list[str], hgap: float = 0.04, vgap: float = 0.12) -> dict[str, Any]:
    """Layout axes of a rows x cols subplot grid (x axes per column, y axes shared along a row)."""
    layout: dict[str, Any] = {"annotations": []}
    w = (1 - hgap * (cols - 1)) / cols
    h = (1 - vgap * (rows - 1)) / rows
    for r in range(rows):
        for c in range(cols):
            k = r * cols + c + 1
            sfx = "" if k == 1 else str(k)
            x0 = c * (w + hgap)
            y1 = 1 - r * (h + vgap)
            layout[f"xaxis{sfx}"] = {"domain": [x0, x0 + w], "anchor": f"y{sfx}"}
            layout[f"yaxis{sfx}"] = {"domain": [y1 - h, y1], "anchor": f"x{sfx}"}
            if c:
                layout[f"yaxis{sfx}"]["matches"] = f"y{'' if r == 0 else r * cols + 1}"
                layout[f"yaxis{sfx}"]["showticklabels"] = False
            if r == 0 and c < len(titles):
                layout["annotations"].append({"text": titles[c], "x": x0 + w / 2, "y": 1.0, "xref": "paper", "yref": "paper",
                                              "xanchor": "center", "yanchor": "bottom", "showarrow": False})
    return layout


def _axes(k: int) -> dict[str, str]:
    return {"xaxis": "x" if k == 1 else f"x{k}", "yaxis": "y" if k == 1 else f"y{k}"}


def pareto_figure(rows: pd.DataFrame, spec, fronts: dict[Any, list[str]], designs: list[str]) -> dict[str, Any]:
    """All points of one section (colour = design) with each design's front and the overall front."""
    (xc, _), (yc, _) = spec.objectives
    data = []
    ok = rows[[xc, yc]].notna().all(axis=1)
    have = rows[ok]
    indexed = rows.set_index("point_id")
    for i, design in enumerate(designs):
        d = have[have.design == design]
        if len(d) > MAX_BACKGROUND_POINTS:
            d = d.sample(MAX_BACKGROUND_POINTS, random_state=0)
        color = COLORS[i % len(COLORS)]
        data.append({
            "type": "scatter", "mode": "markers", "name": design, "legendgroup": design,
            "x": _num(shown(xc, d[xc])), "y": _num(shown(yc, d[yc])),
            "marker": {"color": color, "size": 7, "opacity": 0.55,
                       "symbol": ["circle" if s == "trained" else "x" for s in d.mask_source]},
            "text": _hover(d), "hoverinfo": "text",
        })
        ids = fronts.get(design, [])
        if ids:
            f = indexed.loc[ids].sort_values(xc)
            data.append({"type": "scatter", "mode": "lines", "name": f"{design} front", "legendgroup": design,
                         "showlegend": False, "hoverinfo": "skip", "x": _num(shown(xc, f[xc])), "y": _num(shown(yc, f[yc])),
                         "line": {"color": color, "dash": "dot", "shape": "hv"}})
    ids = fronts.get(None, [])
    if ids:
        f = indexed.loc[ids].reset_index().sort_values(xc)
        data.append({"type": "scatter", "mode": "lines+markers", "name": "front (all designs)",
                     "x": _num(shown(xc, f[xc])), "y": _num(shown(yc, f[yc])), "text": _hover(f), "hoverinfo": "text",
                     "line": {"color": "black", "width": 2, "shape": "hv"},
                     "marker": {"size": 10, "color": "rgba(0,0,0,0)", "line": {"color": "black", "width": 2}}})
    excluded = int((~ok).sum())
    title = spec.title + (f"  ({excluded} points without return left out)" if excluded else "")
    layout = {"title": {"text": title, "font": {"size": 14}}, "height": 420, "margin": {"l": 60, "r": 20, "t": 50, "b": 50},
              "xaxis": {"title": {"text": label(xc)}, "type": "linear" if xc == "return_mean" else "log"},
              "yaxis": {"title": {"text": label(yc)}, "type": "linear" if yc == "return_mean" else "log"}}
    return {"data": data, "layout": layout}


def ratio_figure(rows: pd.DataFrame, designs: list[str]) -> dict[str, Any]:
    """Speedup and energy ratio of each pattern and bitwidth vs the dense reference, per design."""
    layout = _grid(2, len(designs), designs)
    patterns = pattern_order(rows.pattern)
    bits_all = sorted(rows.bits.unique(), reverse=True)
    data = []
    for j, design in enumerate(designs):
        d = rows[rows.design == design]
        for b in bits_all:
            db = d[d.bits == b].groupby("pattern")[["speedup_vs_dense_ref", "energy_ratio_vs_dense_ref"]].mean().reindex(patterns)
            for r, col in ((0, "speedup_vs_dense_ref"), (1, "energy_ratio_vs_dense_ref")):
                data.append({"type": "bar", "x": patterns, "y": _num(db[col]), "name": f"{b} bits", "legendgroup": str(b),
                             "marker": {"color": BIT_COLORS.get(int(b), "#777")}, "showlegend": j == 0 and r == 0,
                             "hovertemplate": f"{design}<br>%{{x}} @ {b} bits<br>{col}: %{{y:.3g}}<extra></extra>",
                             **_axes(r * len(designs) + j + 1)})
    ref_txt = "dense"
    layout["yaxis"]["title"] = {"text": f"speedup vs {ref_txt}"}
    layout[f"yaxis{len(designs) + 1}"]["title"] = {"text": f"energy / {ref_txt}"}
    layout.update({"barmode": "group", "height": 520, "margin": {"l": 60, "r": 20, "t": 70, "b": 40},
                   "title": {"text": "Speedup and energy ratio vs dense at the design's highest bitwidth in the sweep "
                                      "(>1 faster; <1 less energy)", "font": {"size": 14}}})
    return {"data": data, "layout": layout}


def energy_breakdown_figure(rows: pd.DataFrame, designs: list[str]) -> dict[str, Any]:
    """Stacked energy components of every pattern and bitwidth, per design."""
    layout = _grid(1, len(designs), designs)
    patterns = pattern_order(rows.pattern)
    data = []
    for j, design in enumerate(designs):
        d = rows[rows.design == design]
        cols = [f"energy_{c}_pj" for c in ENERGY_COMPONENTS if f"energy_{c}_pj" in d.columns]
        g = d.groupby(["pattern", "bits"])[cols].mean().reset_index()
        g["order"] = g.pattern.map({p: i for i, p in enumerate(patterns)})
        g = g.sort_values(["order", "bits"], ascending=[True, False])
        x = [f"{p} @{b}b" for p, b in zip(g.pattern, g.bits)]
        for c in cols:
            comp = c[len("energy_"):-len("_pj")]
            data.append({"type": "bar", "x": x, "y": _num(g[c] * 1e-6), "name": comp, "legendgroup": comp,
                         "showlegend": j == 0, "marker": {"color": COMPONENT_COLORS.get(comp, "#777")},
                         "hovertemplate": f"{design} %{{x}}<br>{comp}: %{{y:.4g}} uJ<extra></extra>", **_axes(j + 1)})
    layout["yaxis"]["title"] = {"text": "share of energy per pass (%)"}
    # Shares: designs differ by 100x in total energy; hover gives each component in uJ.
    layout.update({"barmode": "stack", "barnorm": "percent", "height": 440, "margin": {"l": 60, "r": 20, "t": 70, "b": 80},
                   "title": {"text": "Energy breakdown by component (share of the total; hover for uJ)", "font": {"size": 14}}})
    return {"data": data, "layout": layout}


FRONT_TABLE_COLUMNS = ("point_id", "design", "pattern", "bits", "method", "mask_source", "latency_s", "energy_pj",
                       "model_bytes", "fits_in_sram", "return_mean")


def front_table(rows: pd.DataFrame, ids: list[str], caption: str) -> str:
    """HTML table of the points on a front."""
    if not ids:
        return f"<p><em>{html.escape(caption)}: no points.</em></p>"
    f = rows.set_index("point_id").loc[ids].reset_index()
    fmt = {"latency_s": fmt_time, "energy_pj": fmt_energy, "model_bytes": fmt_bytes,
           "return_mean": lambda v: "missing" if v != v else f"{v:.0f}"}
    cols = [c for c in FRONT_TABLE_COLUMNS if c in f.columns]
    head = "".join(f"<th>{html.escape(c)}</th>" for c in cols)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(str(fmt.get(c, str)(r[c])))}</td>" for c in cols) + "</tr>"
        for _, r in f.iterrows()
    )
    return f"<table><caption>{html.escape(caption)}</caption><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0 auto;max-width:1400px;padding:16px 24px;color:#222}
h1{font-size:1.6em}h2{border-bottom:2px solid #ddd;padding-bottom:4px;margin-top:2em}
.grid{display:grid;grid-template-columns:repeat(auto-fit,minmax(560px,1fr));gap:8px}
table{border-collapse:collapse;font-size:13px;margin:8px 0 16px}caption{text-align:left;font-weight:600;padding:4px 0}
td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}th{background:#f3f3f3}
.note{background:#fff8e1;border-left:4px solid #f0b400;padding:6px 12px}
nav a{margin-right:12px}
table.quality td{white-space:nowrap}table.quality td:last-child{white-space:normal;text-align:left;min-width:12em}
"""


def render(df: pd.DataFrame, fronts: list[dict[str, Any]], manifest: dict[str, Any], notes: list[str],
           quality_html: str = "") -> str:
    """The whole page as one string; ``quality_html`` (reports.quality.html_section) comes first after the notes."""
    figs: list[tuple[str, dict]] = []

    def fig_html(fig: dict, div_id: str) -> str:
        figs.append((div_id, fig))
        return f'<div id="{div_id}" class="plot"></div>'

    designs = sorted(df.design.unique())
    by_group: dict[tuple, dict[str, dict[Any, list[str]]]] = {}
    for f in fronts:
        g = f["group"]
        by_group.setdefault((g["env"], g["scenario"], g["batch"]), {}).setdefault(f["name"], {})[g["design"]] = f["point_ids"]

    sections = []
    nav = []
    n = 0
    for (env, scenario, batch), rows in df.groupby(["env", "scenario", "batch"], sort=True):
        key = (env, scenario, int(batch))
        anchor = f"s{len(nav)}"
        title = section_key(env, scenario, int(batch))
        nav.append(f'<a href="#{anchor}">{html.escape(title)}</a>')
        fr = by_group.get(key, {})
        parts = [f'<h2 id="{anchor}">{html.escape(title)}</h2><div class="grid">']
        for spec in FRONT_SPECS:
            parts.append(fig_html(pareto_figure(rows, spec, fr.get(spec.name, {}), designs), f"plot{n}"))
            n += 1
        parts.append("</div>")
        parts.append(fig_html(ratio_figure(rows, designs), f"plot{n}"))
        n += 1
        parts.append(fig_html(energy_breakdown_figure(rows, designs), f"plot{n}"))
        n += 1
        main_front = "return_vs_energy" if rows.return_mean.notna().any() else "energy_vs_latency"
        spec_title = next(s.title for s in FRONT_SPECS if s.name == main_front)
        parts.append(front_table(rows, fr.get(main_front, {}).get(None, []), f"Front (all designs): {spec_title}"))
        sections.append("\n".join(parts))

    total = manifest.get("points", len(df)) if manifest.get("complete") else len(df)
    plotted = "" if total == len(df) else f" ({len(df)} plotted)"
    summary = (
        f"<p>{total} points{plotted}: {df.env.nunique()} env(s), {len(designs)} design(s) "
        f"({', '.join(map(html.escape, designs))}), "
        f"patterns {', '.join(pattern_order(df.pattern))}, bits {', '.join(str(b) for b in sorted(df.bits.unique(), reverse=True))}. "
        f"Fronts as data: <a href=\"fronts.json\">fronts.json</a>; table: <code>points.parquet</code>. "
        f"Markers: circle = trained mask, x = pruned one-shot (no return).</p>"
    )
    note_html = "".join(f'<p class="note">{html.escape(t)}</p>' for t in notes)
    quality_nav = '<a href="#quality">RL quality vs hardware</a>' if quality_html else ""
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>nmlab sweep report</title>"
        f"<meta name=\"viewport\" content=\"width=device-width\"><style>{_CSS}</style>"
        f"<script>{_plotly_js()}</script></head><body>"
        f"<h1>nmlab sweep report</h1>{summary}{note_html}<nav>{quality_nav}{''.join(nav)}</nav>"
        + quality_html
        + "\n".join(sections)
        + f'<p style="margin-top:3em;color:#888">{n} plots. Generated by nmlab report.</p>'
        + _plots_script(figs)
        + "</body></html>\n"
    )


def _plotly_js() -> str:
    """plotly.js itself, inlined so the page needs no network ("</script" cannot occur in it)."""
    from plotly.offline import get_plotlyjs

    return get_plotlyjs().replace("</script", "<\\/script")


def _plots_script(figs: list[tuple[str, dict]]) -> str:
    """One script drawing every plot; the shared template is sent once."""
    import plotly.io as pio

    template = pio.templates["plotly_white"].to_plotly_json()
    payload = {"template": template, "figures": [{"id": i, **f} for i, f in figs]}
    text = json.dumps(payload, separators=(",", ":"), allow_nan=False).replace("</", "<\\/")
    return (
        "<script>(function(){var P=" + text + ";"
        "var C={displaylogo:false,responsive:true};"
        "P.figures.forEach(function(f){f.layout.template=P.template;"
        "Plotly.newPlot(document.getElementById(f.id),f.data,f.layout,C);});})();</script>"
    )
