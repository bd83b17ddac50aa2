"""PNG figures (matplotlib, Agg backend) for papers and pull requests."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Optional

import matplotlib

matplotlib.use("Agg")  # no display: files only
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import NullFormatter  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from hwmodel.io import atomic_write  # noqa: E402
from reports.data import (ENERGY_COMPONENTS, agent_label, component_label, axis_label, per_scenario, agent_order, design_order, design_title,  # noqa: E402
                          fmt_energy, fmt_ratio, is_gpu, log_axis, name_digest, one_row_per, shown, with_agent)
from reports.fronts import FRONT_SPECS  # noqa: E402
from reports.style import COMPONENT_COLORS, MPL_MARKERS, bit_size, design_colors, pattern_symbol, place_front_labels  # noqa: E402

MAX_POINTS = 4000


def slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", str(text).lower()).strip("_")


#: Longest slug of an env in a PNG's file name (an env name is free text of any length).
SLUG_MAX_CHARS = 60


def env_png_names(envs) -> dict[str, str]:
    """env -> the file name of its energy PNG: ``energy_<slug>.png`` (``energy_hopper_v5.png``), or with
    8 hex digits of the name's SHA-256 added where the slug alone would not do: two envs of one slug
    (``Hopper-v5`` and ``hopper_v5``: the second PNG replaced the first), an env ``ratio same bits``
    (``energy_ratio_same_bits.png`` is the heatmap's), a name with no letter or digit a-z, 0-9
    (``energy_.png``), or a slug over SLUG_MAX_CHARS (past the file system's limit)."""
    slugs = {e: slug(e) for e in envs}
    count: dict[str, int] = {"ratio_same_bits": 1}  # energy_ratio_same_bits.png: a heatmap
    for s in slugs.values():
        count[s] = count.get(s, 0) + 1
    names = {}
    for e, s in slugs.items():
        if s and count[s] == 1 and len(s) <= SLUG_MAX_CHARS:
            names[e] = f"energy_{s}.png"
        else:
            names[e] = f"energy_{s[:SLUG_MAX_CHARS] + '_' if s else ''}{name_digest(e)}.png"
    return names


def _save(fig, path: Path) -> Path:
    with atomic_write(path) as fh:
        fig.savefig(fh, format="png", dpi=100)
    plt.close(fig)
    path.chmod(0o644)  # atomic_write's temporary file is private; a report is for reading
    return path


def _sections(df: pd.DataFrame) -> list[tuple[str, int]]:
    return sorted({(s, int(b)) for s, b in zip(df.scenario, df.batch)})


#: Height of one legend row (title and entries) over the front PNGs, in inches.
LEGEND_ROW_IN = 0.5


def front_legend_groups(df: pd.DataFrame, designs: list[str]) -> list[tuple[str, list]]:
    """The front PNGs' keys, one legend row each: (title, handles) for colour = design (GPUs marked, last),
    shape = pattern with the front's line, and size = bits."""
    from matplotlib.lines import Line2D

    colors = design_colors(designs)
    des = [Line2D([], [], ls="", marker="o", color=colors[d], label=design_title(d)) for d in designs]
    pats = [Line2D([], [], ls="", marker=MPL_MARKERS.get(pattern_symbol(p), "o"), color="#555", label=p)
            for p in sorted(df.pattern.unique())]
    pats.append(Line2D([], [], color="black", lw=1.4, marker="o", mfc="none", mec="black", label="front (all designs)"))
    # markersize is in points like the scatter's sqrt(s): the same sizes as the plots
    bits = [Line2D([], [], ls="", marker="o", color="#999", markersize=(bit_size(b) ** 2 * 0.6) ** 0.5, label=f"{b} bits")
            for b in sorted({int(b) for b in df.bits.unique()}, reverse=True)]
    return [("colour = design", des), ("shape = pattern; black line and rings = the front over all designs "
                                       "(on a return axis each ring's bar spans its agent's lowest to highest seed)", pats),
            ("size = bits", bits)]


def _log_ticks_in_full(axis, values) -> None:
    """A log axis's ticks as the page writes them (``reports.html.log_tick_axis``: 0.1, 1, 10, 100, 1,000, with 2
    and 5 between over up to three decades), not matplotlib's 10^-1, 10^0; minor ticks unlabelled (they collide
    on short decades). Where fewer than two of those ticks fall among the values (the page then shows plotly's own
    ticks), evenly spaced ones written in full: matplotlib's decade ticks left such an axis with one label or
    none (a one-design sweep's train-step energies, 474-585 uJ)."""
    from matplotlib.ticker import AutoLocator, FixedLocator, FuncFormatter

    from reports.html import log_tick_axis

    ticks = log_tick_axis(values)
    axis.set_major_locator(FixedLocator(ticks["tickvals"]) if ticks else AutoLocator())
    axis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:,.0f}" if v >= 1 and v == round(v) else f"{v:,g}"))
    axis.set_minor_formatter(NullFormatter())


def front_png(df: pd.DataFrame, spec, fronts_by_key: dict, out: Path) -> Path:
    """One figure per front kind: rows = env, columns = scenario; colour = design, black = overall front."""
    envs = sorted(df.env.unique())
    secs = _sections(df)
    designs = design_order(df.design.unique())
    (xc, _), (yc, _) = spec.objectives
    xlog, ylog = log_axis(xc), log_axis(yc)
    colors = design_colors(designs)
    fig, axes = plt.subplots(len(envs), len(secs), figsize=(5.2 * len(secs), 3.9 * len(envs)), squeeze=False)
    for i, env in enumerate(envs):
        for j, (sc, batch) in enumerate(secs):
            ax = axes[i][j]
            rows = df[(df.env == env) & (df.scenario == sc) & (df.batch == batch)]
            ok = rows[[xc, yc]].notna().all(axis=1)
            data = rows[ok]
            all_x, all_y = shown(xc, data[xc]), shown(yc, data[yc])  # every point drawn: the plot's extent
            for design in designs:
                d = data[data.design == design]
                if len(d) > MAX_POINTS:
                    d = d.sample(MAX_POINTS, random_state=0)
                # Colour = design (as on the page), shape = pattern, size = bits.
                for pat, dp in d.groupby("pattern", sort=True):
                    ax.scatter(shown(xc, dp[xc]), shown(yc, dp[yc]), s=[bit_size(b) ** 2 * 0.6 for b in dp.bits],
                               alpha=0.7, color=colors[design], marker=MPL_MARKERS.get(pattern_symbol(pat), "o"),
                               edgecolors="#333", linewidths=0.3)
            ids = fronts_by_key.get((env, sc, batch), [])
            if ids:
                f = rows.set_index("point_id").loc[ids].sort_values(xc)
                xs, ys = shown(xc, f[xc]).to_numpy(float), shown(yc, f[yc]).to_numpy(float)
                ax.step(xs, ys, where="post", color="black", lw=1.4, label="front (all designs)")
                ax.scatter(xs, ys, s=40, facecolors="none", edgecolors="black", lw=1.2)
                if yc == "return_mean" and {"return_min", "return_max"} <= set(f.columns):
                    # each front point's seed range: its agent's lowest to highest seed's return (as on the page)
                    lo, hi = f.return_min.to_numpy(float), f.return_max.to_numpy(float)
                    if np.isfinite(lo).any():
                        ax.errorbar(xs, ys, yerr=[np.where(np.isfinite(lo), ys - lo, 0.0),
                                                  np.where(np.isfinite(hi), hi - ys, 0.0)],
                                    fmt="none", ecolor="black", elinewidth=0.8, capsize=2)
                names = f.agent if "agent" in f else f.pattern
                # the same placement as the page's (reports.style.place_front_labels), on this plot's extent
                labels = place_front_labels(xs, ys, [f"{p} @{b}" for p, b in zip(names, f.bits)], xlog, ylog,
                                            all_x.to_numpy(float), all_y.to_numpy(float))
                for xv, yv, (text, side) in zip(xs, ys, labels):
                    if text:  # "right": reads rightwards from its point (left third: not over the y axis)
                        ax.annotate(text, (xv, yv), textcoords="offset points",
                                    xytext=({"right": 3, "left": -3}.get(side, 0), 4),
                                    ha={"right": "left", "left": "right"}.get(side, "center"), fontsize=7)
            if xlog and len(data):
                ax.set_xscale("log")
                _log_ticks_in_full(ax.xaxis, all_x)
            if ylog and len(data):
                ax.set_yscale("log")
                _log_ticks_in_full(ax.yaxis, all_y)
            excluded = int((~ok).sum())
            ax.set_title(f"{env}, {sc.replace('_', ' ')}, batch {batch}"
                         + (f"\n({excluded} without return left out)" if excluded else ""),
                         fontsize=10)
            ax.set_xlabel(axis_label(xc, xlog and bool(len(data)), sc), fontsize=9)
            ax.set_ylabel(axis_label(yc, ylog and bool(len(data)), sc), fontsize=9)
            ax.tick_params(labelsize=8)
            ax.grid(True, alpha=0.3, which="both")
            if not len(data):
                ax.text(0.5, 0.5, "no points with all objectives", ha="center", va="center", transform=ax.transAxes)
    # One legend per key (designs, then patterns and the front, then bit sizes), each one row where it fits the
    # figure's width: one 8-column legend filled column by column had put a design over a pattern, and a key wider
    # than the figure (15 designs, or one scenario's 5.2 in figure) ran off both edges of the PNG.
    legends = [_fitted_legend(fig, title, handles, frameon=False, columnspacing=1.2, handletextpad=0.3)
               for title, handles in front_legend_groups(df, designs)]
    slots = [max(LEGEND_ROW_IN, leg.get_window_extent(fig.canvas.get_renderer()).height / fig.dpi + 0.05)
             for leg in legends]
    h_in = 3.9 * len(envs) + 0.6 + sum(slots)
    fig.set_figheight(h_in)
    fig.suptitle(spec.title, y=1 - 0.08 / h_in, va="top", fontsize=13)
    for r, leg in enumerate(legends):
        leg.set_bbox_to_anchor((0.5, 1 - (0.35 + sum(slots[:r])) / h_in), transform=fig.transFigure)
    # Margins in inches (0.85 in for the y axis's title and tick labels, as 8% of a two-scenario figure gave): 8% of a
    # one-scenario figure's 5.2 in cut the y axis title off and its ticks to ",000".
    w_in = fig.get_figwidth()
    fig.subplots_adjust(left=0.85 / w_in, right=1 - 0.2 / w_in, top=1 - (0.8 + sum(slots)) / h_in,
                        bottom=0.5 / h_in, hspace=0.6, wspace=0.28)
    return _save(fig, out)


def _fitted_legend(fig, title: Optional[str], handles: list, labels: Optional[list] = None, fontsize: float = 8,
                   **kw):
    """A figure legend of ``handles`` (under ``title``) no wider than the figure: one row when it fits, else as many
    columns as fit (its title wrapped where the title alone is too wide). ``kw``: more ``fig.legend`` options."""
    import textwrap

    renderer = fig.canvas.get_renderer()
    room = 0.98 * fig.bbox.width
    ncol, text = len(handles), title
    opts = dict(loc="upper center", fontsize=fontsize, title_fontsize=fontsize, bbox_to_anchor=(0.5, 1.0), **kw)
    given = dict(handles=handles) if labels is None else dict(handles=handles, labels=labels)
    while True:
        leg = fig.legend(ncol=ncol, title=text, **given, **opts)
        leg.nmlab_ncol = ncol  # the columns it got (the energy figure grows by the rows they make)
        width = leg.get_window_extent(renderer).width
        if width <= room or ncol == 1 and (text is None or "\n" in text):
            return leg  # fits, or one column still too wide (a label longer than the figure): left as it is
        title_w = leg.get_title().get_window_extent(renderer).width if text else 0.0
        leg.remove()
        if text and title_w > room and "\n" not in text:
            text = textwrap.fill(title, max(20, int(len(title) * room / title_w) - 2))
        else:
            ncol = max(1, min(ncol - 1, int(ncol * room / width)))


def _cell_label(sc: str, batch: int) -> str:
    """A heatmap column's scenario in the page's words ("inference, batch 1"; "inf b1" read as a code)."""
    return f"{sc.replace('_', ' ')}, batch {batch}"


#: Cells above which a heatmap carries no numbers (colour and colour bar only): no walls of text.
MAX_ANNOTATED_CELLS = 160


def same_bits_heatmap_png(df: pd.DataFrame, col: str, title: str, out: Path, good_high: bool) -> Path:
    """One heatmap per env: rows = agent @ bits (every agent apart), columns = design x scenario; colour =
    log10 of the ratio against dense at the same bits (green better); numbers only on small grids."""
    from matplotlib.colors import TwoSlopeNorm

    df = with_agent(df)
    envs = sorted(df.env.unique())
    designs = design_order(df.design.unique())
    secs = _sections(df)
    mats = []
    for env in envs:
        rows = df[(df.env == env) & (df.pattern != "dense")]
        g = one_row_per(rows, ["method", "agent", "bits", "design", "scenario", "batch"], f"heatmap {env}")[col]
        bits_all = sorted(rows.bits.unique(), reverse=True)
        ylabels = [(m, a, b) for m, a in agent_order(rows) for b in bits_all
                   if ((rows.method == m) & (rows.agent == a) & (rows.bits == b)).any()]
        xlabels = [(d, s) for d in designs for s in secs]
        m = np.full((len(ylabels), len(xlabels)), np.nan)
        for i, (me, a, b) in enumerate(ylabels):
            for j, (d, (sc, bt)) in enumerate(xlabels):
                m[i, j] = g.get((me, a, b, d, sc, bt), np.nan)
        mats.append((env, ylabels, xlabels, m))
    n_rows = max(len(y) for _, y, _, _ in mats)
    # Constrained layout keeps each panel's agent labels, the rotated design labels and the colour bar apart.
    fig, axes = plt.subplots(1, len(envs), figsize=(1.0 + (2.2 + 0.45 * len(designs) * len(secs)) * len(envs),
                                                    2.6 + 0.2 * n_rows), squeeze=False, layout="constrained")
    colors = design_colors(designs)
    im = None
    for ax, (env, ylabels, xlabels, m) in zip(axes[0], mats):
        logm = np.log10(np.where(m > 0, m, np.nan)) * (1 if good_high else -1)
        im = ax.imshow(logm, cmap="RdYlGn", norm=TwoSlopeNorm(0.0, -1.0, 1.0), aspect="auto")
        if m.size <= MAX_ANNOTATED_CELLS:
            for i in range(m.shape[0]):
                for j in range(m.shape[1]):
                    if m[i, j] == m[i, j]:
                        ax.text(j, i, fmt_ratio(m[i, j]), ha="center", va="center", fontsize=6)
        ax.set_xticks(range(len(xlabels)), [f"{d}\n{_cell_label(*s)}" for d, s in xlabels], fontsize=7, rotation=90)
        for tick, (d, _) in zip(ax.get_xticklabels(), xlabels):
            tick.set_color(colors[d])
        ax.set_yticks(range(len(ylabels)), [f"{agent_label(me, a)} @ {b} b" for me, a, b in ylabels], fontsize=7)
        ax.set_title(env, fontsize=11)
    if im is not None:
        cb = fig.colorbar(im, ax=axes[0].tolist(), shrink=0.8, pad=0.01)
        # Round ratios, 1, 2 and 5 per decade as the page's log axes: half-decade ticks read 0.316 and 3.16.
        ratios = [0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0]
        cb.set_ticks([float(np.log10(r)) * (1 if good_high else -1) for r in ratios], labels=[fmt_ratio(r) for r in ratios])
        cb.set_label(title.split(" (")[0], fontsize=8)
    # A blank cell is no point, not a ratio of 1: the design has no datatype of that width (or no such agent).
    name, hint = title.split(" (", 1) if " (" in title else (title, "")
    fig.suptitle(f"{name} vs dense at the same bits, same design and scenario ({hint.rstrip(')') + '; ' if hint else ''}"
                 f"white: not swept)", fontsize=11)
    return _save(fig, out)


def _hbars(ax, y: np.ndarray, left: np.ndarray, width: np.ndarray, color, label: str, height: float = 0.8) -> None:
    """Horizontal bars as one PolyCollection (one Rectangle artist per bar is several times slower)."""
    from matplotlib.collections import PolyCollection

    h = height / 2
    verts = [[(l0, y0 - h), (l0 + w, y0 - h), (l0 + w, y0 + h), (l0, y0 + h)] for y0, l0, w in zip(y, left, width)]
    ax.add_collection(PolyCollection(verts, facecolors=[color], edgecolors="none", label=label))


#: Energy PNG layout, inches: the bars' width, a tick label's width per character (7 pt), the right margin and the
#: gap between two panels (the totals written right of the bars stand inside the panel, at 101-122% of its width).
ENERGY_AXES_IN, ENERGY_LABEL_IN_PER_CHAR, ENERGY_RIGHT_IN, ENERGY_GAP_IN = 4.2, 0.052, 0.3, 0.25


def energy_png(df: pd.DataFrame, env: str, out: Path) -> Path:
    """Energy per pass split by component (shares, total written beside): one bar per design and pattern@bits, per scenario."""
    return _save(energy_figure(df, env), out)


def energy_figure(df: pd.DataFrame, env: str):
    """The figure of :func:`energy_png`: designs top to bottom in the tables' order (GPUs last), the env in its
    title. One row per design, agent and bitwidth, the same rows in every scenario's panel (a point a scenario lacks
    leaves its row empty there), named once, left of the first panel: each panel repeating them made a sweep of
    every bundled design and GPU 4,354 px wide, two thirds of it the same labels six times, and drew 5,000 texts."""
    rows = df[df.env == env]
    designs = design_order(rows.design.unique())
    any_gpu = any(is_gpu(d) for d in designs)  # the legend says what a GPU's "leakage" and "mac" are
    secs = _sections(rows)
    rows = with_agent(rows)
    order = {k: i for i, k in enumerate(agent_order(rows))}
    cols = [f"energy_{c}_pj" for c in ENERGY_COMPONENTS if f"energy_{c}_pj" in rows.columns]
    rank = {d: i for i, d in enumerate(designs)}
    # y grows upwards: reversed, so the first design (and agent, and highest bitwidth) is at the top
    keys = sorted({(d, m, a, int(b)) for d, m, a, b in rows[["design", "method", "agent", "bits"]].itertuples(index=False)},
                  key=lambda k: (-rank[k[0]], -order[(k[1], k[2])], k[3]))
    ypos = {k: i for i, k in enumerate(keys)}
    labels = [f"{d}  {agent_label(m, a)} @ {b} b" for d, m, a, b in keys]
    label_in = 0.2 + ENERGY_LABEL_IN_PER_CHAR * max(len(t) for t in labels)
    width = label_in + len(secs) * (ENERGY_AXES_IN + ENERGY_GAP_IN) - ENERGY_GAP_IN + ENERGY_RIGHT_IN
    height = 1.5 + 0.22 * len(keys)
    fig, axes = plt.subplots(1, len(secs), figsize=(width, height), squeeze=False, sharey=True)
    dcol = design_colors(designs)
    for k, (ax, (sc, batch)) in enumerate(zip(axes[0], secs)):
        d = rows[(rows.scenario == sc) & (rows.batch == batch)]
        g = one_row_per(d, ["design", "method", "agent", "bits"], f"energy figure {env}").reset_index()
        y = np.array([ypos[(d_, m, a, int(b))] for d_, m, a, b in zip(g.design, g.method, g.agent, g.bits)], dtype=float)
        # Shares of the total (designs differ by orders of magnitude); the total is written at the right.
        total = g[cols].fillna(0).sum(axis=1).to_numpy()
        left = np.zeros(len(g))
        for c in cols:
            vals = g[c].fillna(0).to_numpy() / np.where(total > 0, total, 1)
            comp = c[len("energy_"):-len("_pj")]
            _hbars(ax, y, left, vals, COMPONENT_COLORS.get(comp, "#777"), component_label(comp, any_gpu))
            left += vals
        for yi, t in zip(y, total):
            ax.text(1.01, yi, fmt_energy(t), va="center", ha="left", fontsize=7)
        ax.set_xlim(0, 1.22)
        ax.set_xticks([0, 0.25, 0.5, 0.75, 1.0], ["0", "25%", "50%", "75%", "100%"])
        ax.set_ylim(-0.6, len(keys) - 0.4)
        if k == 0:
            ax.set_yticks(range(len(keys)), labels, fontsize=7)
            for tick, key in zip(ax.get_yticklabels(), keys):
                tick.set_color(dcol[key[0]])
        else:
            ax.tick_params(axis="y", left=False, labelleft=False)
        ax.set_xlabel(per_scenario("share of the energy per pass (total at the right)", sc), fontsize=9)
        ax.set_title(f"{sc.replace('_', ' ')} (batch {batch})", fontsize=10)
        ax.grid(True, axis="x", alpha=0.3)
    h, lab = axes[0][0].get_legend_handles_labels()
    # Title, then legend, then the panels' titles, all inside the figure (the title sat above its top edge). A legend
    # wider than the figure (one scenario's panel, the GPU names of mac and leakage) wraps, and the figure grows by
    # the rows it adds: on one row it ran off both edges.
    leg = _fitted_legend(fig, None, h, lab, fontsize=9)
    rows_n = -(-len(lab) // leg.nmlab_ncol)
    extra = (leg.get_window_extent(fig.canvas.get_renderer()).height / fig.dpi) * (rows_n - 1) / rows_n
    height += extra
    fig.set_figheight(height)
    fig.suptitle(f"{env}: energy breakdown by component", y=1 - 0.1 / height, va="top", fontsize=12)
    leg.set_bbox_to_anchor((0.5, 1 - 0.45 / height), transform=fig.transFigure)
    fig.subplots_adjust(left=label_in / width, right=1 - ENERGY_RIGHT_IN / width, top=1 - (1.05 + extra) / height,
                        bottom=0.6 / height, wspace=ENERGY_GAP_IN / ENERGY_AXES_IN)
    return fig


def png_jobs(df: pd.DataFrame, fronts: list[dict[str, Any]], out_dir: Path) -> list[tuple]:
    """(function, args) of every PNG of a report: independent, so they can run in parallel."""
    jobs: list[tuple] = []
    for spec in FRONT_SPECS:
        by_key = {(f["group"]["env"], f["group"]["scenario"], f["group"]["batch"]): f["point_ids"]
                  for f in fronts if f["name"] == spec.name and f["group"]["design"] is None}
        jobs.append((front_png, (df, spec, by_key, out_dir / f"front_{spec.name}.png")))
    if "speedup_vs_dense" in df:
        jobs.append((same_bits_heatmap_png, (df, "speedup_vs_dense", "Speedup (>1 is faster)",
                                             out_dir / "speedup_same_bits.png", True)))
        jobs.append((same_bits_heatmap_png, (df, "energy_ratio_vs_dense", "Energy ratio (<1 saves energy)",
                                             out_dir / "energy_ratio_same_bits.png", False)))
    envs = sorted(df.env.unique())
    for env, name in env_png_names(envs).items():
        jobs.append((energy_png, (df, env, out_dir / name)))
    return jobs


def _run_job(job: tuple) -> Path:
    """Draw one PNG. Text is never mathtext: design, env and agent names come from users' files, and a
    ``$`` in one (``a$b$c``, a lone ``$\\frac{$``) would be typeset as math or fail to parse."""
    fn, args = job
    with plt.rc_context({"text.parse_math": False}):
        return fn(*args)
