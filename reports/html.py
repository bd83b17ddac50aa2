"""The interactive report page: one self-contained HTML file (plotly.js inlined, no network fetches)."""

from __future__ import annotations

import html
import json
import math
from dataclasses import dataclass, field
from typing import Any, Optional

import numpy as np
import pandas as pd

from hwmodel.gpu.design_point import IDLE_FRACTION
from reports.data import (ENERGY_COMPONENTS, GPU_COMPONENT_NAMES, agent_label, axis_label, agent_order, design_order, design_title,
                          component_label, fmt_bytes, fmt_energy, fmt_time, front_formats, is_gpu, log_axis, one_row_per, pattern_order, per_scenario, section_key,
                          seed_range_text, shown, with_agent)
from reports.answer import CSS as ANSWER_CSS, env_anchor, scenario_anchor
from reports.fronts import FRONT_SPECS
from reports.style import (COMPONENT_COLORS, CYCLE_COLORS, bit_size, design_colors, pattern_symbol, place_front_labels,
                           plotly_template_text, plotly_text)
from reports.why import small_pct

#: Points per plot drawn besides the fronts (big sweeps are sampled deterministically).
MAX_BACKGROUND_POINTS = 3000
#: The why figures' weights axis spans the weights and the SRAM line times / divided by this.
WEIGHTS_PAD = 1.25


_HOVER_COLUMNS = ["design", "pattern", "bits", "method", "mask_source", "latency_s", "energy_pj", "model_bytes",
                  "return_mean", "point_id", "agent", "return_trained_bits", "return_eval_bits"]


def _hover(df: pd.DataFrame) -> list[str]:
    cols = {c: (df[c].tolist() if c in df.columns else [float("nan")] * len(df)) for c in _HOVER_COLUMNS}
    out = []
    for design, pattern, bits, method, src, lat, en, size, ret, pid, agent, tb, eb in zip(*cols.values()):
        rtxt = "missing" if ret != ret else f"{ret:.0f}"
        if ret == ret and tb == tb and eb == eb:
            rtxt += f" (agent trained at {int(tb)} b, evaluated at {int(eb)} b)"
        who = agent if agent == agent and agent is not None else pattern
        design, who, method, src = (plotly_text(t) for t in (design, who, method, src))  # names from users' files
        out.append(f"{design} | {who} ({method}) @ {bits} b | {src}<br>latency {fmt_time(lat)}, "
                   f"energy {fmt_energy(en)}<br>size {fmt_bytes(size)}, return {rtxt}<br>id {pid}")
    return out


def _num(values) -> list:
    """Plain floats for JSON; NaN becomes None (a gap in plotly)."""
    return [None if v != v else float(v) for v in np.asarray(values, dtype=float)]


def _axes(k: int) -> dict[str, str]:
    return {"xaxis": "x" if k == 1 else f"x{k}", "yaxis": "y" if k == 1 else f"y{k}"}


#: A front plot's height, and what its legend needs (px): the plot's margins and the legend's padding, and a row
#: per entry (plotly's 12 px legend font).
FRONT_PLOT_PX, LEGEND_BASE_PX, LEGEND_ROW_PX = 440, 130, 20


def pareto_figure(rows: pd.DataFrame, spec, fronts: dict[Any, list[str]], designs: list[str],
                  hover: Optional[list[str]] = None) -> dict[str, Any]:
    """All points of one section with each design's front and the overall front. Colour = design (the
    report's one palette), marker shape = pattern (hollow: pruned one-shot), marker size = bits; the points
    on the overall front are labelled "agent @bits". ``hover``: ``_hover(rows)`` when already computed
    (the four fronts of a section share it)."""
    (xc, _), (yc, _) = spec.objectives
    hover = _hover(rows) if hover is None else hover
    x = np.asarray(shown(xc, rows[xc].to_numpy(dtype=float)))
    y = np.asarray(shown(yc, rows[yc].to_numpy(dtype=float)))
    ok = ~(np.isnan(x) | np.isnan(y))
    design_of = rows.design.to_numpy(dtype=object)
    pid = rows.point_id.to_numpy(dtype=object)
    pattern = rows.pattern.to_numpy(dtype=object)
    agent = (rows.agent if "agent" in rows else rows.pattern).to_numpy(dtype=object)
    bits = rows.bits.to_numpy()
    trained = (rows.mask_source == "trained").to_numpy() if "mask_source" in rows else np.ones(len(rows), bool)
    pos = {p: i for i, p in enumerate(pid)}
    colors = design_colors(designs)
    data = []

    def on_front(ids: list[str]) -> np.ndarray:
        idx = np.array([pos[i] for i in ids], dtype=int)
        return idx[np.argsort(x[idx], kind="stable")]

    for design in designs:
        idx = np.flatnonzero(ok & (design_of == design))
        if len(idx) > MAX_BACKGROUND_POINTS:  # deterministic sample of big sweeps
            idx = np.sort(np.random.RandomState(0).choice(idx, MAX_BACKGROUND_POINTS, replace=False))
        color = colors[design]
        data.append({
            "type": "scatter", "mode": "markers", "legendgroup": design,
            "name": plotly_text(design_title(design)),  # as the tables name it
            "x": _num(x[idx]), "y": _num(y[idx]), "customdata": pid[idx].tolist(),
            "marker": {"color": color, "opacity": 0.65, "line": {"width": 0.5, "color": "#333"},
                       "symbol": [pattern_symbol(pattern[i]) + ("" if trained[i] else "-open") for i in idx],
                       "size": [bit_size(bits[i]) for i in idx]},
            "text": [hover[i] for i in idx], "hoverinfo": "text",
        })
        ids = fronts.get(design, [])
        if ids:
            f = on_front(ids)
            data.append({"type": "scatter", "mode": "lines", "name": plotly_text(f"{design} front"), "legendgroup": design,
                         "showlegend": False, "hoverinfo": "skip", "x": _num(x[f]), "y": _num(y[f]),
                         "line": {"color": color, "dash": "dot", "shape": "hv"}})
    if any(fronts.get(d) for d in designs):  # a legend key for the dotted per-design fronts
        data.append({"type": "scatter", "mode": "lines", "name": "a design's own front", "x": [None], "y": [None],
                     "hoverinfo": "skip", "line": {"color": "#888", "dash": "dot"}})
    ids = fronts.get(None, [])
    if ids:
        f = on_front(ids)
        spread = {}
        if yc == "return_mean" and {"return_min", "return_max"} <= set(rows.columns):
            # the front's returns with their seed range: the lowest to the highest seed's return
            lo, hi = rows.return_min.to_numpy(dtype=float)[f], rows.return_max.to_numpy(dtype=float)[f]
            if np.isfinite(lo).any():
                spread = {"error_y": {"type": "data", "symmetric": False, "color": "black", "thickness": 1, "width": 4,
                                      "array": _num(np.where(np.isfinite(hi), hi - y[f], 0.0)),
                                      "arrayminus": _num(np.where(np.isfinite(lo), y[f] - lo, 0.0))}}
        # the same placement as the PNG's (reports.style.place_front_labels), on this plot's extent
        labels = place_front_labels(x[f], y[f], [f"{agent[i]} @{bits[i]}" for i in f], log_axis(xc), log_axis(yc),
                                    x[ok], y[ok])
        data.append({"type": "scatter", "mode": "lines+markers+text", "name": "front (all designs)", **spread,
                     "x": _num(x[f]), "y": _num(y[f]), "hovertext": [hover[i] for i in f],
                     "hoverinfo": "text", "customdata": pid[f].tolist(),
                     "text": [plotly_text(t) for t, _ in labels], "textposition": [f"top {side}" for _, side in labels],
                     "textfont": {"size": 10}, "cliponaxis": False,
                     "line": {"color": "black", "width": 2, "shape": "hv"},
                     "marker": {"size": 13, "color": "rgba(0,0,0,0)", "line": {"color": "black", "width": 2}}})
    excluded = int((~ok).sum())
    scenarios = rows.scenario.unique() if "scenario" in rows else []
    scenario = str(scenarios[0]) if len(scenarios) == 1 else None  # a train step's energy is per TD3 update
    # The count goes under the title: beside it, the title ran under plotly's toolbar at 1400 px.
    title = {"text": per_scenario(spec.title, scenario), "font": {"size": 14},
             **({"subtitle": {"text": f"{excluded} points without return left out", "font": {"size": 11, "color": "#555"}}}
                if excluded else {})}
    # One legend symbol size for every design: plotly sizes each by its trace's first marker, so a design swept
    # from 32 bits showed a big dot and one from 8 bits a small one, read as bits ("marker size = bits").
    # Tall enough for every legend entry: with 15 designs plotly's legend scrolled inside the plot, and the last
    # designs and the key to the black front line sat below its fold.
    keyed = sum(1 for t in data if t.get("showlegend", True))
    layout = {"title": title, "height": max(FRONT_PLOT_PX, LEGEND_BASE_PX + LEGEND_ROW_PX * keyed),
              "margin": {"l": 60, "r": 20, "t": 60, "b": 50},
              "legend": {"itemsizing": "constant", "tracegroupgap": 0},  # a design's group is one entry: no gap
              "xaxis": {"title": {"text": axis_label(xc, log_axis(xc), scenario)},
                        "type": "log" if log_axis(xc) else "linear", **(_log_format(x[ok]) if log_axis(xc) else {})},
              "yaxis": {"title": {"text": axis_label(yc, log_axis(yc), scenario)},
                        "type": "log" if log_axis(yc) else "linear", **(_log_format(y[ok]) if log_axis(yc) else {})}}
    return {"data": data, "layout": layout}


def _short_labels(rows: pd.DataFrame) -> dict[tuple[str, str], str]:
    """(method, agent) -> the shortest unambiguous name: the agent label, with the method where two share it."""
    keys = agent_order(rows)
    counts: dict[str, int] = {}
    for _, a in keys:
        counts[a] = counts.get(a, 0) + 1
    return {(m, a): (a if counts[a] == 1 else agent_label(m, a)) for m, a in keys}


def _categories(rows: pd.DataFrame) -> tuple[list[str], dict[tuple, str]]:
    """x categories "agent @B" in agent order, then bits descending; and (method, agent, bits) -> category."""
    names = _short_labels(rows)
    bits_all = sorted((int(b) for b in rows.bits.unique()), reverse=True)
    present = set(zip(rows.method, rows.agent, rows.bits.astype(int)))
    cats, by = [], {}
    for key in names:
        for b in bits_all:
            if (*key, b) in present:
                cat = plotly_text(f"{names[key]} @{b}")  # the why figures' ticks: drawn as written
                cats.append(cat)
                by[(*key, b)] = cat
    return cats, by


#: The cycle bars' causes and the energy component of the same cause (they share its colour and legend entry).
CYCLE_COMPONENT = {"compute": "mac", "DRAM stall": "dram", "metadata stall": "metadata"}
_CYCLE_WORDS = {"mac": "compute cycles", "dram": "DRAM stall cycles", "metadata": "metadata stall cycles"}


def why_legend_label(component: str, gpus: bool, cycles: bool) -> str:
    """An energy component's entry in the why figures' legend: with the cycle panel drawn (``cycles``), the
    components that share a colour with a cycle bar name both ("DRAM stall cycles / dram energy")."""
    label = component_label(component, gpus)
    if cycles and component in _CYCLE_WORDS:
        return f"{_CYCLE_WORDS[component]} / {label.replace(component, component + ' energy', 1)}"
    return label


#: Height of one design's panels and of the agent @bits tick labels under them (px).
WHY_ROW_PX, WHY_LABEL_PX = 170, 125
WHY_COLUMNS = ("cycles: compute vs stalls (share)", "energy by component (share)", "weights vs SRAM (log)")


def why_figure(rows: pd.DataFrame, designs: list[str]) -> dict[str, Any]:
    """What limits each point, one row of subplots per design: the cycle breakdown (compute, DRAM stalls,
    metadata stalls) and the energy breakdown as shares of the point's total, and the weights' size
    against the design's SRAM (log axis; the SRAM capacity as a line, bars over it miss the SRAM).
    One bar per point (agent and bits): never an average of two agents. A GPU's row (``is_gpu``) has no
    cycle bars (the GPU model splits no stalls: the panel gives its utilization instead) and its L2 as
    the line."""
    rows = with_agent(rows)
    # Only the columns drawn: indexing and resetting the full table (60+ columns) per design cost half the time.
    keep = {"design", "method", "agent", "pattern", "mask_source", "bits", "point_id", "cycles", "stall_cycles_dram",
            "stall_cycles_metadata", "energy_pj", "model_bytes", "fits_in_sram", "sram_bytes", "utilization",
            *(f"energy_{c}_pj" for c in ENERGY_COMPONENTS)}
    rows = rows[[c for c in rows.columns if c in keep]]
    cats, cat_of = _categories(rows)
    colors = design_colors(designs)
    nrow, ncol = len(designs), len(WHY_COLUMNS)
    layout: dict[str, Any] = {"annotations": [], "shapes": []}
    # Every row carries its own agent @bits tick labels (a reader of an upper row could not tell its bars
    # apart when only the last row had them): the gap under each row is as tall as those labels.
    plot_px = WHY_ROW_PX * nrow + WHY_LABEL_PX * max(nrow - 1, 0)
    vgap, hgap = WHY_LABEL_PX / plot_px, 0.06
    h = WHY_ROW_PX / plot_px
    w = (1 - hgap * (ncol - 1)) / ncol
    data: list[dict[str, Any]] = []
    comps = [c for c in ENERGY_COMPONENTS if f"energy_{c}_pj" in rows.columns]
    drawn = set(rows.design) & set(designs)
    any_gpu = any(is_gpu(d) for d in drawn)  # the legend says what a GPU's components are
    has_cycles = "cycles" in rows.columns
    # the cycle panel has bars (a GPU row has none): its causes then share the energy components' legend entries
    cycle_bars = has_cycles and any(not is_gpu(d) for d in drawn)
    one_row_per(rows, ["design", "method", "agent", "bits"], "why figure")  # one bar per point: refuse duplicates
    by_design = dict(tuple(rows.groupby("design", sort=False)))  # one split, not a selection per design
    for i, design in enumerate(designs):
        d = by_design.get(design, rows.iloc[:0])
        x = [cat_of[(m, a, int(b))] for m, a, b in zip(d.method, d.agent, d.bits)]
        # This design's own bars only: a bitwidth it does not run left a labelled empty slot per agent (edge_ws
        # under '2:4 @32', a GPU under every @32 and @4), read as a bar of zero.
        own = set(x)
        row_cats = [c for c in cats if c in own]
        ids = list(d.point_id)
        gpu = is_gpu(design)
        tdesign = plotly_template_text(design)
        for j in range(ncol):
            k = i * ncol + j + 1
            sfx = "" if k == 1 else str(k)
            x0, y1 = j * (w + hgap), 1 - i * (h + vgap)
            layout[f"xaxis{sfx}"] = {"domain": [x0, x0 + w], "anchor": f"y{sfx}", "type": "category",
                                     "categoryorder": "array", "categoryarray": row_cats, "tickfont": {"size": 9},
                                     "showticklabels": True, "tickangle": -60}
            layout[f"yaxis{sfx}"] = {"domain": [y1 - h, y1], "anchor": f"x{sfx}", "tickfont": {"size": 9}}
            if i == 0:
                layout["annotations"].append({"text": f"<b>{WHY_COLUMNS[j]}</b>", "x": x0 + w / 2, "y": 1.0, "xref": "paper",
                                              "yref": "paper", "xanchor": "center", "yanchor": "bottom", "showarrow": False})
            if j == 0:
                layout["annotations"].append({"text": f"<b>{plotly_text(design)}</b>" + (" (GPU)" if gpu else ""),
                                              "x": -0.045, "y": y1 - h / 2,
                                              "xref": "paper", "yref": "paper", "textangle": -90, "showarrow": False,
                                              "font": {"color": colors[design], "size": 13}})
        ax = [_axes(i * ncol + j + 1) for j in range(ncol)]
        if gpu:
            util = d.utilization.to_numpy(dtype=float) if "utilization" in d else np.full(len(d), np.nan)
            top = f"at most {small_pct(np.nanmax(util))}" if np.isfinite(util).any() else "n/a"
            layout["annotations"].append({
                "text": f"GPU: the model splits no stalls.<br>Its GEMMs use {top} of the<br>tensor peak or memory "
                        "bandwidth: each call<br>costs its fixed time, not its MACs",
                # paper coordinates: plotly misplaces "domain" references to an axis without traces
                "xref": "paper", "yref": "paper", "x": w / 2, "y": 1 - i * (h + vgap) - h / 2,
                "showarrow": False, "font": {"size": 10, "color": "#444"}})
            k0 = i * ncol + 1
            layout[f"yaxis{'' if k0 == 1 else k0}"].update({"showticklabels": False, "showgrid": False, "zeroline": False})
            # an empty trace keeps the panel's categories (and the bottom row's tick labels)
            data.append({"type": "bar", "x": x, "y": [None] * len(x), "showlegend": False, "hoverinfo": "skip",
                         "name": "", **ax[0]})
        elif has_cycles:
            cyc = d.cycles.to_numpy(dtype=float)
            stall_d = d.get("stall_cycles_dram", pd.Series(0.0, index=d.index)).fillna(0).to_numpy(dtype=float)
            stall_m = d.get("stall_cycles_metadata", pd.Series(0.0, index=d.index)).fillna(0).to_numpy(dtype=float)
            for name, vals in (("compute", cyc - stall_d - stall_m), ("DRAM stall", stall_d), ("metadata stall", stall_m)):
                # One legend entry per cause: a stall joins its energy component's entry ("DRAM: stall
                # cycles / dram energy"); two entries of one colour read as a duplicate.
                comp = CYCLE_COMPONENT[name]
                joined = comp in comps
                data.append({"type": "bar", "x": x, "y": _num(100 * vals / cyc), "name": name,
                             "legendgroup": comp if joined else name, "showlegend": i == 0 and not joined,
                             "marker": {"color": CYCLE_COLORS[name]}, "customdata": ids,
                             "textposition": "none",
                             "text": [f"{v:,.0f} of {c:,.0f} cycles" for v, c in zip(vals, cyc)],
                             "hovertemplate": f"{tdesign} %{{x}}<br>{name}: %{{y:.1f}}%% (%{{text}})<br>point %{{customdata}}"
                                              "<extra></extra>".replace("%%", "%"), **ax[0]})
        total = d.energy_pj.to_numpy(dtype=float)
        for c in comps:
            vals = d[f"energy_{c}_pj"].fillna(0).to_numpy(dtype=float)
            # A GPU row's hover says what the component is there (its "leakage" is the board's floor power).
            what = f"{GPU_COMPONENT_NAMES[c]} ({c})" if gpu and c in GPU_COMPONENT_NAMES else c
            data.append({"type": "bar", "x": x, "y": _num(100 * vals / total), "name": why_legend_label(c, any_gpu, cycle_bars),
                         "legendgroup": c,
                         "showlegend": i == 0, "marker": {"color": COMPONENT_COLORS.get(c, "#777")}, "customdata": ids,
                         "textposition": "none",
                         "text": [fmt_energy(v) for v in vals],
                         "hovertemplate": f"{tdesign} %{{x}}<br>{what}: %{{y:.1f}}%% (%{{text}})<br>point %{{customdata}}"
                                          "<extra></extra>".replace("%%", "%"), **ax[1]})
        if "model_bytes" in d and d.model_bytes.notna().any():
            fits = d.fits_in_sram.to_numpy() if "fits_in_sram" in d else np.ones(len(d), bool)
            data.append({"type": "bar", "x": x, "y": _num(d.model_bytes * 1e-3), "name": plotly_text(f"{design} weights"),
                         "showlegend": False, "customdata": ids, "textposition": "none",
                         "marker": {"color": [colors[design] if f else "rgba(0,0,0,0)" for f in fits],
                                    "line": {"color": colors[design], "width": 1.5}},
                         "text": ["fits" if f else "misses SRAM" for f in fits],
                         "hovertemplate": f"{tdesign} %{{x}}<br>weights %{{y:.3g}} KB: %{{text}}<br>point %{{customdata}}"
                                          "<extra></extra>", **ax[2]})
            k = i * ncol + 3
            kb = [float(v) for v in d.model_bytes.dropna() * 1e-3 if v > 0]  # the log axis' range: weights and SRAM
            if "sram_bytes" in d and d.sram_bytes.notna().any():
                sram_kb = float(d.sram_bytes.max()) * 1e-3
                kb.append(sram_kb)
                layout["shapes"].append({"type": "line", "xref": f"x{k} domain", "yref": f"y{k}", "x0": 0, "x1": 1,
                                         "y0": sram_kb, "y1": sram_kb, "line": {"color": "#333", "dash": "dash", "width": 1.5}})
                # In the right margin beside the line's end: inside the plot it sat on the bars reaching it.
                memory = (f"L2 {fmt_bytes(sram_kb * 1e3)}<br>(weights come<br>from DRAM<br>every call)" if gpu
                          else f"SRAM<br>{fmt_bytes(sram_kb * 1e3)}")
                layout["annotations"].append({"text": memory, "xref": f"x{k} domain", "yref": f"y{k}", "x": 1,
                                              "y": math.log10(sram_kb), "xanchor": "left", "xshift": 4,
                                              "yanchor": "middle", "align": "left", "showarrow": False,
                                              "font": {"size": 10}})
            tickvals, _ = log_ticks(min(kb), max(kb)) if kb else ([], [])
            # Ticks carry their unit as the memory line's label does ("5 MB" beside "SRAM 4.19 MB", not "5,000"
            # under a "(KB)" title).
            layout[f"yaxis{'' if k == 1 else k}"].update(
                {"type": "log", "title": {"text": "weights (log scale)"}, "tickvals": tickvals,
                 "ticktext": [fmt_bytes(t * 1e3) for t in tickvals]})
            if kb:  # the tallest bar's top in view: plotly's range ended at it, so a hollow bar's top edge was cut
                layout[f"yaxis{'' if k == 1 else k}"]["range"] = [math.log10(min(kb) / WEIGHTS_PAD),
                                                                  math.log10(max(kb) * WEIGHTS_PAD)]
        for j in (0, 1):
            k = i * ncol + j + 1
            layout[f"yaxis{'' if k == 1 else k}"].update({"range": [0, 100], "ticksuffix": "%"})
    height = 230 + plot_px  # the legend takes two rows: it names the cycle and energy causes it shares
    layout.update({"barmode": "stack", "height": height, "margin": {"l": 70, "r": 95, "t": 110, "b": 120},
                   "legend": {"orientation": "h", "y": 1.0 + 28 / height, "yanchor": "bottom", "x": 0},
                   "title": {"text": "What limits each point (one bar per agent and bits; hover for absolute figures; "
                                     "hollow weight bars miss the SRAM)", "font": {"size": 14}, "y": 0.995}})
    return {"data": data, "layout": layout}


def log_ticks(lo: float, hi: float) -> tuple[list[float], list[str]]:
    """Ticks of a log axis from ``lo`` to ``hi`` written out in full (plotly's own minor ticks read
    "2", "5" for 200 and 500): 1, 2, 5 per decade over up to three decades, else decades only."""
    first, last = math.floor(math.log10(lo)), math.ceil(math.log10(hi))
    steps = (1, 2, 5) if last - first <= 3 else (1,)
    vals = [m * 10.0 ** e for e in range(first, last + 1) for m in steps]
    vals = [v for v in vals if lo / 1.5 <= v <= hi * 1.5]
    return vals, [f"{v:,.0f}" if v >= 1 else f"{v:g}" for v in vals]


def _log_format(values) -> dict[str, Any]:
    """A front's log axis: :func:`log_tick_axis`'s ticks, and where plotly picks its own (under a decade) numbers
    written in full with thousands separators, "20,000" not "20k" (beside a unit, "20k uJ" read as kilo-uJ)."""
    return {"exponentformat": "none", "separatethousands": True, **log_tick_axis(values)}


def log_tick_axis(values) -> dict[str, Any]:
    """``tickvals``/``ticktext`` of a log axis over ``values`` (finite, positive ones; NaN and None skipped) by
    :func:`log_ticks`, for a layout's axis: plotly's own labels between decades are bare digits ("10  2  5  100"
    reads 20 and 50 as 2 and 5). Empty (plotly's defaults) where no value is positive, or where fewer than two of
    those ticks fall among the values: points from 14 to 21 us got ticks 10 and 20, one of them in view, so the
    axis had one label; over less than a decade plotly's own ticks are written in full."""
    v = np.asarray([x for x in np.ravel(np.asarray(values, dtype=object)) if x is not None], dtype=float)
    v = v[np.isfinite(v) & (v > 0)]
    if not v.size:
        return {}
    lo, hi = float(v.min()), float(v.max())
    vals, text = log_ticks(lo, hi)
    if sum(lo <= t <= hi for t in vals) < 2:
        return {}
    return {"tickvals": vals, "ticktext": text}


FRONT_TABLE_COLUMNS = ("point_id", "design", "pattern", "bits", "method", "mask_source", "latency_s", "energy_pj",
                       "model_bytes", "fits_in_sram", "return_mean")
#: The front table's headers, as summary.md's front tables name the columns (the cells carry units: "15 us").
FRONT_TABLE_HEADERS = {"point_id": "id", "mask_source": "mask", "latency_s": "latency", "energy_pj": "energy",
                       "model_bytes": "model size", "fits_in_sram": "fits SRAM", "return_mean": "return"}


def front_table(rows: pd.DataFrame, ids: list[str], caption: str) -> str:
    """HTML table of the points on a front."""
    if not ids:
        return f"<p><em>{html.escape(caption)}: no points.</em></p>"
    f = rows.set_index("point_id").loc[ids].reset_index()
    fmt = front_formats(f)
    cols = [c for c in FRONT_TABLE_COLUMNS if c in f.columns]
    seeds = {"return_min", "return_max"} <= set(f.columns) and f.return_min.notna().any()
    head = ("".join(f"<th>{html.escape(FRONT_TABLE_HEADERS.get(c, c))}</th>" for c in cols)
            + ("<th>return seed range</th>" if seeds else ""))
    fmt = {"fits_in_sram": lambda v: "n/a" if v is None or v != v else ("yes" if v else "no"), **fmt}
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(str(fmt.get(c, str)(r[c])))}</td>" for c in cols)
        + (f"<td>{html.escape(seed_range_text(r.return_min, r.return_max, chr(0x2013)))}</td>" if seeds else "")
        + "</tr>"
        for _, r in f.iterrows()
    )
    return f"<table><caption>{html.escape(caption)}</caption><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0 auto;max-width:1400px;padding:16px 24px;color:#222;box-sizing:border-box}
h1{font-size:1.6em}h2{border-bottom:2px solid #ddd;padding-bottom:4px;margin-top:2em}h3{margin-top:1.6em}
.grid{display:grid;grid-template-columns:repeat(auto-fit,minmax(560px,1fr));gap:8px}
table{border-collapse:collapse;font-size:13px;margin:8px 0 16px}caption{text-align:left;font-weight:600;padding:4px 0}
td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}th{background:#f3f3f3}
.note{background:#fff8e1;border-left:4px solid #f0b400;padding:6px 12px}
.frame{overflow-x:auto;max-width:100%}
nav{line-height:1.8}nav a{margin-right:8px;white-space:nowrap}nav b{margin-right:6px;white-space:nowrap}nav .sub{margin-right:16px}nav .sub a{margin-right:0}
table.quality{font-size:12.5px}table.quality td,table.quality th{padding:3px 5px}
table.quality tr>:first-child{position:sticky;left:0;z-index:1;background:#fff;box-shadow:inset -1px 0 #ccc}table.quality th:first-child{background:#f3f3f3}
table.quality td{white-space:nowrap}table.quality td.ret{white-space:normal;min-width:4.5em}
table.quality td:last-child{white-space:normal;text-align:left;min-width:12em}table.quality th:last-child{text-align:left}
table.quality td.agent{white-space:normal;text-align:left;min-width:8em}table.quality th.l{text-align:left}
table.quality .unit{font-weight:normal;font-size:11px;color:#555}table.quality td.hw{line-height:1.15}
ul.cols{margin:4px 0 10px;padding-left:1.4em;line-height:1.4}
"""


@dataclass
class Section:
    """An optional section of the page (added by ``reports.build.OPTIONAL_SECTIONS``): its anchor, its
    title in the navigation, its HTML (a ``<div class="plot" id=...>`` per figure) and its plotly figures
    as (div id, figure dict)."""

    anchor: str
    title: str
    html: str
    figures: list[tuple[str, dict]] = field(default_factory=list)


#: How the legend names each plotly symbol (reports.style.pattern_symbol).
SYMBOL_WORDS = {"circle": "circle", "square": "square", "diamond": "diamond", "triangle-up": "triangle",
                "star": "star", "x": "x", "cross": "cross (+)", "hexagon": "hexagon", "pentagon": "pentagon",
                "triangle-down": "downward triangle", "triangle-left": "left triangle",
                "triangle-right": "right triangle", "diamond-tall": "tall diamond", "octagon": "octagon"}


def marker_legend(patterns) -> str:
    """MARKER_LEGEND with the shape of each pattern of the sweep (in pattern order), not a fixed list:
    patterns beyond the bundled ones take spare shapes the reader must be told."""
    from reports.data import pattern_order

    pats = pattern_order(list(patterns))
    shapes = ", ".join(f"{SYMBOL_WORDS.get(pattern_symbol(p), pattern_symbol(p))} "
                       f"{p if p != 'unstructured' else 'unstructured as trained'}" for p in pats)
    return MARKER_LEGEND.replace("SHAPES", shapes)


MARKER_LEGEND = ("Colour = design; marker shape = pattern (SHAPES; hollow = pruned one-shot); marker size = bits "
                 "(largest 32, smallest 4); the black line with rings is the front over all designs, its points "
                 "labelled agent @bits ('first @bits +N here': N more of the front's points at that spot, all in "
                 "the front's table), and on a return axis each ring's bar spans its agent's lowest to highest "
                 "seed's return (a return is the mean over seeds: two rings whose bars overlap differ within seed "
                 "noise); a dotted line in a design's colour is that design's own front. Hover any point "
                 "for its agent, method and figures. Train-step points carry the return of the agent as trained "
                 "(at its own precision: no agent was trained at the other bitwidths); inference points carry the "
                 "return evaluated with the actor at the point's bits.")


def render(df: pd.DataFrame, fronts: list[dict[str, Any]], manifest: dict[str, Any], notes: list[str],
           quality_html: str = "", answer_html: str = "", extra: Optional[list[Section]] = None,
           progress: Optional[Any] = None) -> str:
    """The whole page as one string.

    Args:
        df: the rows shown (maybe a subset of the sweep: ``reports.data.plotted_subset``).
        fronts: ``reports.fronts.compute_fronts`` of the whole table.
        manifest: the sweep's ``sweep.json`` (point count when complete).
        notes: lines shown in a highlighted box under the title.
        quality_html: the "RL quality vs hardware" section (``reports.quality.html_section``).
        answer_html: the first section (``reports.answer.html_section``).
        extra: optional sections after the fronts (e.g. measurements), each in the navigation.
        progress: called with a short text as each part is built (None: silent).
    """
    figs: list[tuple[str, dict]] = []
    say = progress or (lambda text: None)

    def fig_html(fig: dict) -> str:
        div_id = f"plot{len(figs)}"
        figs.append((div_id, fig))
        return f'<div id="{div_id}" class="plot"></div>'

    designs = design_order(df.design.unique())
    by_group: dict[tuple, dict[str, dict[Any, list[str]]]] = {}
    for f in fronts:
        g = f["group"]
        by_group.setdefault((g["env"], g["scenario"], g["batch"]), {}).setdefault(f["name"], {})[g["design"]] = f["point_ids"]

    groups = list(df.groupby(["env", "scenario", "batch"], sort=True))
    say("why figures")
    why = ['<h2 id="why">Why: what limits each point</h2>',
           "<p>From the model's figures in points.parquet, one bar per agent and bitwidth (never averaged): the "
           "share of cycles spent computing or stalled on DRAM or N:M metadata; the share of energy per component "
           "(leakage dominates at batch 1 on most designs); and the weights' size against the design's SRAM on a "
           "log axis (hollow bars miss the SRAM: the cliff behind the largest ratios).</p>"]
    gpus = [d for d in designs if is_gpu(d)]
    if gpus:
        why.append(f"<p class=small>GPU rows ({', '.join(map(html.escape, gpus))}): the GPU timing model splits no "
                   "stall cycles, so their cycle panel gives their utilization instead; their energy is time x board "
                   f"power: 'leakage' is the board's idle/floor power (assumed {IDLE_FRACTION:.0%} of the power limit: "
                   "docs/gpu.md) over the call's time, not transistor leakage, "
                   "and 'mac' the active power above it (the legend and the hover say so); their line is the L2, which does not change their time (the model reads the "
                   "weights from DRAM on every call). The GPU model itself is checked against published "
                   "measurements in <a href=\"#gpu-model\">GPU model vs measurements</a>.</p>")
    why_nav = []
    for (env, scenario, batch), rows in groups:
        anchor = f"why{len(why_nav)}"
        title = section_key(env, scenario, int(batch))
        why_nav.append(f'<a href="#{anchor}">{html.escape(title)}</a>')
        why.append(f'<h3 id="{anchor}">{html.escape(title)}</h3>' + fig_html(why_figure(rows, designs)))

    say("front figures")
    sections, nav = [], []
    for (env, scenario, batch), rows in groups:
        key = (env, scenario, int(batch))
        anchor = f"s{len(nav)}"
        title = section_key(env, scenario, int(batch))
        nav.append(f'<a href="#{anchor}">{html.escape(title)}</a>')
        fr = by_group.get(key, {})
        parts = [f'<h3 id="{anchor}">{html.escape(title)}</h3><div class="grid">']
        hover = _hover(rows)
        for spec in FRONT_SPECS:
            cols = [c for c, _ in spec.objectives]
            if not rows[cols].notna().all(axis=1).any():  # nothing to draw: say why instead of an empty plot
                reason = (" (train-step points carry the return of the agent as trained, and no agent here has a "
                          "return at its own precision)" if scenario == "train_step" and "return_mean" in cols else "")
                parts.append(f"<p class=small><b>{html.escape(per_scenario(spec.title, scenario))}</b>: no point has every objective{reason}.</p>")
                continue
            parts.append(fig_html(pareto_figure(rows, spec, fr.get(spec.name, {}), designs, hover)))
        parts.append("</div>")
        main_front = "return_vs_energy" if rows.return_mean.notna().any() else "energy_vs_latency"
        spec_title = per_scenario(next(s.title for s in FRONT_SPECS if s.name == main_front), scenario)
        parts.append('<div class="frame">' + front_table(rows, fr.get(main_front, {}).get(None, []),
                                                        f"Front (all designs): {spec_title}") + "</div>")
        sections.append("\n".join(parts))

    extra = list(extra or [])
    for sec in extra:
        figs.extend(sec.figures)
    total = manifest.get("points", len(df)) if manifest.get("complete") else len(df)
    plotted = "" if total == len(df) else f" ({len(df)} plotted)"
    summary = (
        f"<p>{total} points{plotted}: {df.env.nunique()} env(s), {len(designs)} design(s) "
        f"({', '.join(map(html.escape, designs))}), "
        f"patterns {', '.join(pattern_order(df.pattern))}, bits {', '.join(str(b) for b in sorted(df.bits.unique(), reverse=True))}. "
        f"Fronts as data: <a href=\"fronts.json\">fronts.json</a>; table: <code>points.parquet</code>.</p>"
    )
    note_html = "".join(f'<p class="note">{html.escape(t)}</p>' for t in notes)
    envs = sorted(df.env.unique())
    # Each env, then each of its scenario and batch's same-bits tables: with many designs a scenario's tables and
    # their explanations run to 10,000 px, and the env's link alone left the reader scrolling past the others.
    answer_nav = []
    for e in envs:
        batches: dict[str, list[int]] = {}
        for sc, b in sorted({(str(sc), int(b)) for sc, b in zip(df.scenario[df.env == e], df.batch[df.env == e])}):
            batches.setdefault(sc, []).append(b)
        answer_nav.append(f'<a href="#{env_anchor(e)}">{html.escape(e)}</a><span class=sub>(' + "; ".join(
            f"{html.escape(sc.replace('_', ' '))}, batch "
            + " \u00b7 ".join(f'<a href="#{scenario_anchor(e, sc, b)}">{b}</a>' for b in bs)
            for sc, bs in batches.items()) + ")</span>")
    nav_html = ("<nav>"
                + (("<b>Answer:</b>" + " ".join(answer_nav) + "<br>")
                   if answer_html else "")
                + "<b>Why:</b>" + " ".join(why_nav) + "<br>"
                + ('<a href="#quality">RL quality vs hardware (published figures)</a><br>' if quality_html else "")
                + '<b id="fronts">Pareto fronts:</b>' + " ".join(nav)
                + ("<br>" + "".join(f'<a href="#{s.anchor}">{html.escape(s.title)}</a>' for s in extra) if extra else "")
                + "</nav>")
    say("page")
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>nmlab sweep report</title>"
        f"<meta name=\"viewport\" content=\"width=device-width\"><style>{_CSS}{ANSWER_CSS}</style>"
        f"<script>{_plotly_js()}</script></head><body>"
        f"<h1>nmlab sweep report</h1>{summary}{note_html}{nav_html}"
        + answer_html
        + "\n".join(why)
        + quality_html
        + '<h2 id="pareto">Pareto fronts</h2><p class=small>' + html.escape(marker_legend(list(df.pattern.unique()))) + "</p>"
        + "\n".join(sections)
        + "\n".join(s.html for s in extra)
        + f'<p style="margin-top:3em;color:#888">{len(figs)} plots. Generated by nmlab report.</p>'
        + _plots_script(figs)
        + "</body></html>\n"
    )


def _plotly_js() -> str:
    """plotly.js itself, inlined so the page needs no network ("</script" cannot occur in it)."""
    from plotly.offline import get_plotlyjs

    return get_plotlyjs().replace("</script", "<\\/script")


#: A list of plain values this long (as JSON) or longer that occurs twice or more in the page's figures is
#: sent once: a why figure repeats each design's categories and point ids in all ten of its traces, and the
#: four fronts of a section repeat their points' hover texts.
SHARED_MIN_CHARS = 64
#: The placeholder of a shared list in the payload: an object with this one key, the list's index in "S".
SHARED_KEY = "$s"


def share_repeats(figures: list[dict]) -> tuple[list[dict], list[list]]:
    """``figures`` with every list of plain values (no list or object in it) of at least
    ``SHARED_MIN_CHARS`` JSON characters that occurs more than once replaced by ``{SHARED_KEY: k}``, and the
    shared lists (``k`` indexes them). :func:`expand_shared` undoes it exactly; the page's script does the same."""
    def key(v: list) -> str:
        return json.dumps(v, separators=(",", ":"), allow_nan=False)

    count: dict[str, int] = {}

    def scan(o: Any) -> None:
        if isinstance(o, dict):
            if list(o) == [SHARED_KEY]:  # the script would draw a shared list in its place
                raise ValueError(f"a figure holds an object whose one key is {SHARED_KEY!r}, the shared-list placeholder")
            for v in o.values():
                scan(v)
        elif isinstance(o, list):
            if all(not isinstance(v, (list, dict)) for v in o):
                k = key(o)
                if len(k) >= SHARED_MIN_CHARS:
                    count[k] = count.get(k, 0) + 1
            else:
                for v in o:
                    scan(v)

    scan(figures)
    index: dict[str, int] = {}
    shared: list[list] = []

    def swap(o: Any) -> Any:
        if isinstance(o, dict):
            return {k: swap(v) for k, v in o.items()}
        if isinstance(o, list):
            if all(not isinstance(v, (list, dict)) for v in o):
                k = key(o)
                if count.get(k, 0) > 1:
                    if k not in index:
                        index[k] = len(shared)
                        shared.append(o)
                    return {SHARED_KEY: index[k]}
                return o
            return [swap(v) for v in o]
        return o

    return swap(figures), shared


def expand_shared(figures: Any, shared: list[list]) -> Any:
    """The figures :func:`share_repeats` was given (each shared list a copy of its own)."""
    if isinstance(figures, dict):
        if len(figures) == 1 and SHARED_KEY in figures:
            return list(shared[figures[SHARED_KEY]])
        return {k: expand_shared(v, shared) for k, v in figures.items()}
    if isinstance(figures, list):
        return [expand_shared(v, shared) for v in figures]
    return figures


def page_figures(page: str) -> list[dict]:
    """The plotly figures of a report page as its script draws them (shared lists expanded)."""
    start = "<script>(function(){var P="
    doc, _end = json.JSONDecoder().raw_decode(page, page.index(start) + len(start))
    return expand_shared(doc["figures"], doc.get("S", []))


def _plots_script(figs: list[tuple[str, dict]]) -> str:
    """One script drawing every plot; the shared template is sent once, and so is each repeated list
    (``share_repeats``; the script puts a copy back in each place before drawing)."""
    import plotly.io as pio

    template = pio.templates["plotly_white"].to_plotly_json()
    figures, shared = share_repeats([{"id": i, **f} for i, f in figs])
    payload = {"template": template, "S": shared, "figures": figures}
    # No "<" in the script at all: a name's "<!--<script>" (a legendgroup is the design's name as it is)
    # put the parser in the script's escaped state, where the closing </script> did not end it, and no
    # plot of the page was drawn. Inside JSON strings \u003c is the same character.
    text = (json.dumps(payload, separators=(",", ":"), allow_nan=False)
            .replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026"))
    return (
        "<script>(function(){var P=" + text + ";"
        "var C={displaylogo:false,responsive:true};"
        # one shared list back in each place, a copy each (plotly may write into a trace's arrays)
        "function X(o){if(Array.isArray(o))return o.map(X);"
        "if(o!==null&&typeof o==='object'){var k=Object.keys(o);"
        "if(k.length===1&&k[0]==='" + SHARED_KEY + "')return P.S[o['" + SHARED_KEY + "']].slice();"
        "k.forEach(function(j){o[j]=X(o[j]);});}return o;}"
        # One plot per task, those in or near the window first (an IntersectionObserver says which), then the rest in
        # page order: the page reads, scrolls and follows its links while they draw (a 15-design sweep's 68 plots
        # take 20 s), and a link from the navigation lands on plots drawn next. Each plot's place has its height
        # from the start, so the page does not move under the reader as they draw. The root element's data-plots
        # is "drawn" once all are. (No less-than sign in this script: see above.)
        "var F=P.figures,V={},n=0,E=document.documentElement;E.setAttribute('data-plots','drawing');"
        "function D(i){var f=X(F[i]);F[i]=null;f.layout.template=P.template;"
        "Plotly.newPlot(document.getElementById(f.id),f.data,f.layout,C);}"
        "function G(){var i=-1;Object.keys(V).forEach(function(k){if(i===-1&&F[+k])i=+k;});"
        "while(i===-1&&n!==F.length){if(F[n])i=n;n++;}"
        "if(i===-1){E.setAttribute('data-plots','drawn');return;}D(i);setTimeout(G,0);}"
        "var O=window.IntersectionObserver?new IntersectionObserver(function(es){es.forEach(function(e){"
        "var k=e.target.getAttribute('data-i');if(e.isIntersecting)V[k]=1;else delete V[k];});},"
        "{rootMargin:'600px 0px'}):null;"
        "F.forEach(function(f,i){var d=document.getElementById(f.id);d.style.minHeight=(f.layout.height||450)+'px';"
        "d.setAttribute('data-i',i);if(O)O.observe(d);});"
        "setTimeout(G,0);})();</script>"
    )
