"""PNG figures (matplotlib, Agg backend) for papers and pull requests."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # no display: files only
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import NullFormatter  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from hwmodel.io import atomic_write  # noqa: E402
from reports.data import ENERGY_COMPONENTS, fmt_energy, label, pattern_order, shown  # noqa: E402
from reports.fronts import FRONT_SPECS  # noqa: E402

COLORS = plt.get_cmap("tab10").colors
BIT_COLORS = {32: "#4c72b0", 16: "#55a868", 8: "#dd8452", 4: "#c44e52"}
MAX_POINTS = 4000


def slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", str(text).lower()).strip("_")


def _save(fig, path: Path) -> Path:
    with atomic_write(path) as fh:
        fig.savefig(fh, format="png", dpi=100)
    plt.close(fig)
    path.chmod(0o644)  # atomic_write's temporary file is private; a report is for reading
    return path


def _sections(df: pd.DataFrame) -> list[tuple[str, int]]:
    return sorted({(s, int(b)) for s, b in zip(df.scenario, df.batch)})


def front_png(df: pd.DataFrame, spec, fronts_by_key: dict, out: Path) -> Path:
    """One figure per front kind: rows = env, columns = scenario; colour = design, black = overall front."""
    envs = sorted(df.env.unique())
    secs = _sections(df)
    designs = sorted(df.design.unique())
    (xc, _), (yc, _) = spec.objectives
    fig, axes = plt.subplots(len(envs), len(secs), figsize=(5.2 * len(secs), 3.9 * len(envs)), squeeze=False)
    for i, env in enumerate(envs):
        for j, (sc, batch) in enumerate(secs):
            ax = axes[i][j]
            rows = df[(df.env == env) & (df.scenario == sc) & (df.batch == batch)]
            ok = rows[[xc, yc]].notna().all(axis=1)
            data = rows[ok]
            for k, design in enumerate(designs):
                d = data[data.design == design]
                if len(d) > MAX_POINTS:
                    d = d.sample(MAX_POINTS, random_state=0)
                ax.scatter(shown(xc, d[xc]), shown(yc, d[yc]), s=14, alpha=0.6, color=COLORS[k % 10], label=design)
            ids = fronts_by_key.get((env, sc, batch), [])
            if ids:
                f = rows.set_index("point_id").loc[ids].sort_values(xc)
                ax.step(shown(xc, f[xc]), shown(yc, f[yc]), where="post", color="black", lw=1.4,
                        label="front (all designs)")
                ax.scatter(shown(xc, f[xc]), shown(yc, f[yc]), s=40, facecolors="none", edgecolors="black", lw=1.2)
            if xc != "return_mean" and len(data):
                ax.set_xscale("log")
                ax.xaxis.set_minor_formatter(NullFormatter())  # minor labels collide on short decades
            if yc != "return_mean" and len(data):
                ax.set_yscale("log")
                ax.yaxis.set_minor_formatter(NullFormatter())
            excluded = int((~ok).sum())
            ax.set_title(f"{env}, {sc.replace('_', ' ')} b={batch}" + (f"\n({excluded} without return left out)" if excluded else ""),
                         fontsize=10)
            ax.set_xlabel(label(xc), fontsize=9)
            ax.set_ylabel(label(yc), fontsize=9)
            ax.tick_params(labelsize=8)
            ax.grid(True, alpha=0.3, which="both")
            if not len(data):
                ax.text(0.5, 0.5, "no points with all objectives", ha="center", va="center", transform=ax.transAxes)
    handles, labels = axes[0][0].get_legend_handles_labels()
    for row in axes:
        for ax in row:
            h, lab = ax.get_legend_handles_labels()
            if len(h) > len(handles):
                handles, labels = h, lab
    h_in = 3.9 * len(envs) + 0.8
    fig.set_figheight(h_in)
    fig.suptitle(spec.title, y=1 - 0.08 / h_in, va="top", fontsize=13)
    fig.legend(handles, labels, loc="upper center", ncol=min(len(labels), 6), fontsize=9,
               bbox_to_anchor=(0.5, 1 - 0.4 / h_in))
    fig.subplots_adjust(left=0.08, right=0.98, top=1 - 1.25 / h_in, bottom=0.5 / h_in, hspace=0.6, wspace=0.28)
    return _save(fig, out)


def _cell_label(sc: str, batch: int) -> str:
    return f"{'inf' if sc == 'inference' else 'train'} b{batch}"


def ratio_heatmap_png(df: pd.DataFrame, col: str, title: str, out: Path, good_high: bool) -> Path:
    """One heatmap per env: rows = pattern@bits, columns = design x scenario, value annotated in each cell."""
    envs = sorted(df.env.unique())
    designs = sorted(df.design.unique())
    secs = _sections(df)
    fig, axes = plt.subplots(1, len(envs), figsize=(1.0 + 1.15 * len(designs) * len(secs) * len(envs), 7.0), squeeze=False)
    for ax, env in zip(axes[0], envs):
        rows = df[df.env == env]
        patterns = pattern_order(rows.pattern)
        bits_all = sorted(rows.bits.unique(), reverse=True)
        ylabels = [(p, b) for p in patterns for b in bits_all if ((rows.pattern == p) & (rows.bits == b)).any()]
        xlabels = [(d, s) for d in designs for s in secs]
        g = rows.groupby(["pattern", "bits", "design", "scenario", "batch"])[col].mean()
        m = np.full((len(ylabels), len(xlabels)), np.nan)
        for i, (p, b) in enumerate(ylabels):
            for j, (d, (sc, bt)) in enumerate(xlabels):
                m[i, j] = g.get((p, b, d, sc, bt), np.nan)
        # Colour by log ratio, centred on 1 (= as good as dense): green better, red worse.
        logm = np.log2(np.where(m > 0, m, np.nan))
        lim = max(0.5, float(np.nanmax(np.abs(logm)))) if np.isfinite(logm).any() else 1.0
        ax.imshow(logm if good_high else -logm, cmap="RdYlGn", vmin=-lim, vmax=lim, aspect="auto")
        for i in range(m.shape[0]):
            for j in range(m.shape[1]):
                ax.text(j, i, "-" if np.isnan(m[i, j]) else f"{m[i, j]:.2f}", ha="center", va="center", fontsize=7)
        ax.set_xticks(range(len(xlabels)), [f"{d}\n{_cell_label(*s)}" for d, s in xlabels], fontsize=7, rotation=90)
        ax.set_yticks(range(len(ylabels)), [f"{p} @ {b} b" for p, b in ylabels], fontsize=8)
        ax.set_title(env, fontsize=11)
    fig.suptitle(title + " (reference: dense at the design's highest bitwidth in the sweep, same scenario)", fontsize=12)
    fig.subplots_adjust(left=0.08, right=0.99, top=0.9, bottom=0.22, wspace=0.35)
    return _save(fig, out)


def _hbars(ax, y: np.ndarray, left: np.ndarray, width: np.ndarray, color, label: str, height: float = 0.8) -> None:
    """Horizontal bars as one PolyCollection (one Rectangle artist per bar is several times slower)."""
    from matplotlib.collections import PolyCollection

    h = height / 2
    verts = [[(l0, y0 - h), (l0 + w, y0 - h), (l0 + w, y0 + h), (l0, y0 + h)] for y0, l0, w in zip(y, left, width)]
    ax.add_collection(PolyCollection(verts, facecolors=[color], edgecolors="none", label=label))


def energy_png(df: pd.DataFrame, env: str, out: Path) -> Path:
    """Energy per pass split by component (shares, total written beside): one bar per design and pattern@bits, per scenario."""
    rows = df[df.env == env]
    designs = sorted(rows.design.unique())
    secs = _sections(rows)
    patterns = pattern_order(rows.pattern)
    cols = [f"energy_{c}_pj" for c in ENERGY_COMPONENTS if f"energy_{c}_pj" in rows.columns]
    n_bars = rows.groupby(["design", "pattern", "bits"]).ngroups
    fig, axes = plt.subplots(1, len(secs), figsize=(7.0 * len(secs), 1.2 + 0.22 * n_bars), squeeze=False)
    for ax, (sc, batch) in zip(axes[0], secs):
        d = rows[(rows.scenario == sc) & (rows.batch == batch)]
        g = d.groupby(["design", "pattern", "bits"])[cols].mean().reset_index()
        g["order"] = g.pattern.map({p: i for i, p in enumerate(patterns)})
        g = g.sort_values(["design", "order", "bits"], ascending=[False, False, True])
        y = np.arange(len(g))
        # Shares of the total (designs differ by orders of magnitude); the total is written at the right.
        total = g[cols].fillna(0).sum(axis=1).to_numpy()
        left = np.zeros(len(g))
        for k, c in enumerate(cols):
            vals = g[c].fillna(0).to_numpy() / np.where(total > 0, total, 1)
            _hbars(ax, y, left, vals, plt.get_cmap("tab10").colors[k], c[len("energy_"):-len("_pj")])
            left += vals
        for yi, t in zip(y, total):
            ax.text(1.01, yi, fmt_energy(t), va="center", ha="left", fontsize=7)
        ax.set_xlim(0, 1.22)
        ax.set_xticks([0, 0.25, 0.5, 0.75, 1.0], ["0", "25%", "50%", "75%", "100%"])
        ax.set_ylim(-0.6, len(g) - 0.4)
        ax.set_yticks(y, [f"{d}  {p} @ {b} b" for d, p, b in zip(g.design, g.pattern, g.bits)], fontsize=7)
        ax.set_xlabel("share of the energy per pass (total at the right)", fontsize=9)
        ax.set_title(f"{sc.replace('_', ' ')} (batch {batch})", fontsize=10)
        ax.grid(True, axis="x", alpha=0.3)
    h, lab = axes[0][0].get_legend_handles_labels()
    fig.legend(h, lab, loc="upper center", ncol=len(lab), fontsize=9, bbox_to_anchor=(0.5, 0.995))
    fig.suptitle(f"{env}: energy breakdown by component", y=1.0 + 0.5 / (1.2 + 0.22 * n_bars), fontsize=12)
    fig.subplots_adjust(left=0.6 / len(secs), right=0.98, top=1 - 0.8 / (1.2 + 0.22 * n_bars),
                        bottom=0.6 / (1.2 + 0.22 * n_bars), wspace=0.55)
    return _save(fig, out)


def png_jobs(df: pd.DataFrame, fronts: list[dict[str, Any]], out_dir: Path) -> list[tuple]:
    """(function, args) of every PNG of a report: independent, so they can run in parallel."""
    jobs: list[tuple] = []
    for spec in FRONT_SPECS:
        by_key = {(f["group"]["env"], f["group"]["scenario"], f["group"]["batch"]): f["point_ids"]
                  for f in fronts if f["name"] == spec.name and f["group"]["design"] is None}
        jobs.append((front_png, (df, spec, by_key, out_dir / f"front_{spec.name}.png")))
    if "speedup_vs_dense_ref" in df:
        jobs.append((ratio_heatmap_png, (df, "speedup_vs_dense_ref", "Speedup vs dense (>1 is faster)",
                                         out_dir / "speedup_vs_dense.png", True)))
        jobs.append((ratio_heatmap_png, (df, "energy_ratio_vs_dense_ref", "Energy ratio vs dense (<1 saves energy)",
                                         out_dir / "energy_ratio_vs_dense.png", False)))
    for env in sorted(df.env.unique()):
        jobs.append((energy_png, (df, env, out_dir / f"energy_{slug(env)}.png")))
    return jobs


def _run_job(job: tuple) -> Path:
    fn, args = job
    return fn(*args)


def write_pngs(df: pd.DataFrame, fronts: list[dict[str, Any]], out_dir: Path) -> list[Path]:
    """All PNGs of a report, in this process; returns their paths."""
    return [_run_job(j) for j in png_jobs(df, fronts, out_dir)]
