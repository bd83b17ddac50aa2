"""The page's "GPU model vs measurements" section: how well the GPU timing model behind the sweep's GPU
design points predicts published dense and 2:4 GEMM times.

Per bundled measured GPU (``hwmodel/data/gpu_measurements``, provenance in its README): the model with
the **bundled parameters** (``hwmodel.gpu.params``, the set of the GPU's architecture: what the sweep's
GPU points use) predicts every row as its calls ran (``hwmodel.gpu.fit.GpuData``, as ``nmlab gpu
validate``: the dense call at ``Measurements.dense_k``, under the file's own timing conditions); the
rows scored are the **held-out** shapes of ``hwmodel.gpu.validate.split_shapes`` and the scores are
``hwmodel.gpu.validate.scores`` (MAPE of dense and 2:4 times, speedup error, same winner) and
``square_crossover``. Two plots per GPU: predicted vs measured time (log-log, y = x, the MAPEs written
on it) and speedup (dense / 2:4) vs size over the square GEMMs, per dtype, the measured points over the
model's curve.

The section is shown only when the sweep has GPU design points (``reports.data.gpu_rows``). It costs
about 0.1 s CPU: each file is read once, the bundled GPU specs are loaded once, and the model is numpy.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Optional

import numpy as np
import pandas as pd

from reports.data import fmt_ratio, gpu_rows
from reports.html import Section, log_tick_axis
from reports.style import plotly_text

ANCHOR = "gpu-model"
TITLE = "GPU model vs measurements"
#: Sizes on the model's speedup curve (log-spaced over the measured square sizes).
CURVE_POINTS = 40
#: Colours: dense and 2:4 in the scatter, one per dtype on the speedup plot.
KIND_COLORS = {"dense": "#4c72b0", "2:4": "#dd8452"}
DTYPE_COLORS = {"bfloat16": "#0072b2", "float16": "#009e73", "float8_e4m3fn": "#d55e00", "int8": "#cc79a7",
                "float4_e2m1": "#e69f00", "tfloat32": "#56b4e9"}  # Okabe-Ito: colour-blind-safe
DTYPE_SHORT = {"bfloat16": "bf16", "float16": "fp16", "float8_e4m3fn": "fp8", "int8": "int8", "float4_e2m1": "fp4",
               "tfloat32": "tf32"}


@dataclass
class GpuCheck:
    """One measured GPU against the model with the bundled parameters.

    Attributes:
        name: the bundled spec's name ("h100_pcie").
        device: the device as the measurement file names it.
        architecture: the parameter set used ("hopper"; "generic" when its architecture has none).
        path: the measurement file.
        meas: its rows of this GPU (``hwmodel.gpu.measurements.Measurements``).
        dense_us, sparse_us: predicted microseconds per row.
        held_out: mask of the rows scored (the held-out shapes of ``split_shapes``).
        scores: ``validate.scores`` over the held-out rows; ``dtypes``: the same per dtype, each with
            its ``crossover`` (``validate.square_crossover``, over every square row).
        curves: dtype -> (sizes, predicted speedup) of square GEMMs, for the plot.
        fitted_on: the GPUs the parameter set was fitted on, and how many rows (from its file).
    """

    name: str
    device: str
    architecture: str
    path: Path
    meas: Any
    dense_us: np.ndarray
    sparse_us: np.ndarray
    held_out: np.ndarray
    scores: dict[str, Any]
    dtypes: dict[str, dict[str, Any]]
    curves: dict[str, tuple[np.ndarray, np.ndarray]]
    fitted_on: tuple[list[str], Optional[int]]


@lru_cache(maxsize=1)
def _specs() -> dict[str, Any]:
    """The bundled GPU specs by name, loaded once per process."""
    from hwmodel.gpu.spec import bundled_gpus

    return bundled_gpus()


def _params_provenance() -> dict[str, tuple[list[str], Optional[int]]]:
    """Set name -> (GPUs it was fitted on, rows) from the bundled parameter file's metadata."""
    from hwmodel.errors import NmlabError
    from hwmodel.gpu.params import provenance

    try:
        # `gpu fit --out` rewrites this file by default, so it may be anything (a binary one was a
        # UnicodeDecodeError traceback here); provenance is optional.
        return provenance()
    except NmlabError:  # load_yaml's errors, YAML ones included
        return {}


def _curve(spec, meas, params, dtype: str) -> Optional[tuple[np.ndarray, np.ndarray]]:
    """The model's speedup over square sizes spanning the measured squares of ``dtype``, each call
    as the file's rows ran it (a published dense fp4 call ran k/2: ``Measurements.dense_k``)."""
    from hwmodel.gpu.model import predict_s

    sq = np.flatnonzero((meas.dtype == dtype) & (meas.m == meas.k) & (meas.k == meas.n))
    if sq.size == 0:
        return None
    lo, hi = float(meas.m[sq].min()), float(meas.m[sq].max())
    sizes = np.unique(np.round(np.geomspace(lo, hi, CURVE_POINTS)))
    dense_k = sizes * float(meas.dense_k[sq[0]] / meas.k[sq[0]])
    kw = {"loop_calls": meas.loop_calls, "l2": meas.l2, "out_bytes": float(meas.out_bytes[sq[0]])}
    dense = predict_s(spec, sizes, dense_k, sizes, dtype, False, params, **kw)
    sparse = predict_s(spec, sizes, sizes, sizes, dtype, True, params, **kw)
    return sizes, dense / sparse


def check_bundled() -> list[GpuCheck]:
    """Every bundled measured GPU against the model with the bundled parameters (held-out rows scored):
    the blocks, predictions and scores of ``nmlab gpu validate``, with the bundled sets instead of a fit."""
    from hwmodel.gpu.fit import GpuData
    from hwmodel.gpu.measurements import bundled_files
    from hwmodel.gpu.params import bundled_params, params_for, set_name_for
    from hwmodel.gpu.validate import dtype_scores, load_blocks, scores, split_shapes

    sets = bundled_params()
    prov = _params_provenance()
    out = []
    for block in load_blocks(bundled_files()):
        spec, meas = block.spec, block.meas
        params = params_for(spec, sets)
        set_name = set_name_for(spec, sets)
        dense, sparse = GpuData.build(spec, meas).predict_us(params)
        held = ~split_shapes(meas)
        per_dtype = dtype_scores(meas, dense, sparse, held)
        curves = {dtype: c for dtype in per_dtype if (c := _curve(spec, meas, params, dtype)) is not None}
        out.append(GpuCheck(spec.name, str(meas.gpu[0]), set_name, Path(meas.path), meas, dense, sparse, held,
                            scores(meas, dense, sparse, held), per_dtype, curves, prov.get(set_name, ([], None))))
    return out


def _provenance_line() -> str:
    """Source of the bundled measurements, from the bullets of its README (Repository, Paper, Commits)."""
    from hwmodel.io import data_path

    readme = data_path("gpu_measurements") / "README.md"
    try:
        text = readme.read_text()
    except OSError:
        return "hwmodel/data/gpu_measurements (no README found)"
    bullets = {}
    for m in re.finditer(r"^- \*\*(Repository|Paper|Commits)\*\*: (.*(?:\n  .*)*)", text, re.MULTILINE):
        bullets[m.group(1)] = " ".join(m.group(2).split()).rstrip(".")
    parts = [f"{k.lower()}: {bullets[k]}" for k in ("Paper", "Repository", "Commits") if k in bullets]
    return "; ".join(parts)


# ----------------------------------------------------------------------------- figures
def _pct(x: Optional[float]) -> str:
    return "n/a" if x is None or x != x else f"{100 * x:.1f}%"


def _log_range(values: np.ndarray) -> list[float]:
    lo, hi = float(np.min(values)), float(np.max(values))
    return [np.log10(lo) - 0.08, np.log10(hi) + 0.08]


def scatter_figure(c: GpuCheck) -> dict[str, Any]:
    """Predicted vs measured time of the held-out rows (dense and 2:4), log-log, with y = x and the MAPEs."""
    m, h = c.meas, c.held_out
    shapes = [f"{DTYPE_SHORT.get(d, d)} {int(a)}x{int(b)}x{int(n)}" for d, a, b, n in zip(m.dtype, m.m, m.k, m.n)]
    data = []
    both = np.concatenate([m.dense_us[h], m.sparse_us[h], c.dense_us[h], c.sparse_us[h]])
    rng = _log_range(both)
    data.append({"type": "scatter", "mode": "lines", "x": [10 ** rng[0], 10 ** rng[1]], "y": [10 ** rng[0], 10 ** rng[1]],
                 "name": "y = x", "hoverinfo": "skip", "line": {"color": "#333", "dash": "dash", "width": 1}})
    for kind, got, pred, symbol in (("dense", m.dense_us, c.dense_us, "circle"), ("2:4", m.sparse_us, c.sparse_us,
                                                                                   "triangle-up")):
        idx = np.flatnonzero(h)
        data.append({"type": "scatter", "mode": "markers", "name": kind, "x": got[idx].round(4).tolist(),
                     "y": pred[idx].round(4).tolist(),
                     "marker": {"color": KIND_COLORS[kind], "symbol": symbol, "size": 5, "opacity": 0.6},
                     "text": [f"{shapes[i]} {kind}: measured {got[i]:.3g} us, predicted {pred[i]:.3g} us "
                              f"({100 * (pred[i] / got[i] - 1):+.0f}%)" for i in idx], "hoverinfo": "text"})
    s = c.scores
    note = (f"{s['rows']} held-out rows (all dtypes)<br>MAPE dense {_pct(s['mape_dense'])}, 2:4 {_pct(s['mape_sparse'])}"
            f"<br>speedup error {_pct(s['speedup_mape'])}")
    layout = {"title": {"text": f"{plotly_text(c.device)}: predicted vs measured", "font": {"size": 13}},
              "height": 380, "margin": {"l": 60, "r": 15, "t": 40, "b": 45},
              "xaxis": {"type": "log", "range": rng, "title": {"text": "measured time per call (us, log scale)"},
                        **log_tick_axis([10 ** rng[0], 10 ** rng[1]])},
              "yaxis": {"type": "log", "range": rng, "title": {"text": "predicted time per call (us, log scale)"},
                        **log_tick_axis([10 ** rng[0], 10 ** rng[1]])},
              "legend": {"x": 1, "xanchor": "right", "y": 0, "yanchor": "bottom", "bgcolor": "rgba(255,255,255,0.8)"},
              "annotations": [{"text": note, "xref": "paper", "yref": "paper", "x": 0.02, "y": 0.98, "xanchor": "left",
                               "yanchor": "top", "align": "left", "showarrow": False, "font": {"size": 11},
                               "bgcolor": "rgba(255,255,255,0.85)"}]}
    return {"data": data, "layout": layout}


#: At most this many ticks on the speedup plot's size axis (every other measured size past it).
MAX_SIZE_TICKS = 10


def square_size_ticks(sizes) -> dict[str, Any]:
    """Ticks of the speedup plot's size axis at the measured square sizes (64, 128, ..., 16,384: powers of two),
    written in full: decade ticks (100, 1,000, 10,000) fell between the measured sizes, so neither the points nor
    the table's crossover sizes (1024 / 2048) could be read off the axis. Every other size past ``MAX_SIZE_TICKS``;
    :func:`log_tick_axis`'s ticks where there are fewer than two sizes."""
    vals = sorted({int(v) for v in np.asarray(sizes, dtype=float) if np.isfinite(v) and v > 0})
    if len(vals) < 2:
        return log_tick_axis(vals)
    step = -(-len(vals) // MAX_SIZE_TICKS)
    vals = vals[::step]
    return {"tickvals": vals, "ticktext": [f"{v:,}" for v in vals]}


def speedup_figure(c: GpuCheck) -> dict[str, Any]:
    """Speedup (dense / 2:4) vs size over the square GEMMs, per dtype: measured points (filled: held-out
    shapes, hollow: calibration shapes) over the model's curve; a line at 1 (above it 2:4 wins)."""
    m = c.meas
    data = []
    for dtype, (sizes, curve) in c.curves.items():
        color = DTYPE_COLORS.get(dtype, "#777")
        short = DTYPE_SHORT.get(dtype, dtype)
        err = c.dtypes.get(dtype, {}).get("speedup_mape")
        # the held-out error of this dtype's speedup in its legend entry: the plot says how far off the line is
        name = f"{short} ({_pct(err)})" if err is not None else short
        data.append({"type": "scatter", "mode": "lines", "name": name, "legendgroup": dtype,
                     "x": sizes.tolist(), "y": curve.round(4).tolist(), "line": {"color": color, "width": 1.5},
                     "hovertemplate": f"{short} model: %{{x}}^3, %{{y:.3g}}x<extra></extra>"})
        sq = np.flatnonzero((m.dtype == dtype) & (m.m == m.k) & (m.k == m.n))
        sq = sq[np.argsort(m.m[sq], kind="stable")]
        held = c.held_out[sq]
        data.append({"type": "scatter", "mode": "markers", "name": f"{short} measured", "legendgroup": dtype,
                     "showlegend": False,
                     "x": m.m[sq].astype(int).tolist(), "y": (m.dense_us[sq] / m.sparse_us[sq]).round(4).tolist(),
                     "marker": {"color": [color if x else "white" for x in held], "size": 6,
                                "line": {"color": color, "width": 1.5}},
                     "text": [f"{short} {int(s)}^3 measured {fmt_ratio(v)}x ({'held out' if x else 'calibration shape'}), "
                              f"model {fmt_ratio(p)}x" for s, v, x, p in zip(m.m[sq], m.dense_us[sq] / m.sparse_us[sq], held,
                                                                       c.dense_us[sq] / c.sparse_us[sq])],
                     "hoverinfo": "text"})
    # legend keys for the dots (colour = dtype as its line): filled = held-out shape, hollow = calibration shape
    for name, fill in (("measured,<br>held-out shape", "#777"), ("measured,<br>calibration shape", "white")):
        data.append({"type": "scatter", "mode": "markers", "name": name, "x": [None], "y": [None], "hoverinfo": "skip",
                     "marker": {"color": fill, "size": 6, "line": {"color": "#777", "width": 1.5}}})
    layout = {"title": {"text": f"{plotly_text(c.device)}: 2:4 speedup vs square size", "font": {"size": 13}},
              "height": 380, "margin": {"l": 55, "r": 15, "t": 40, "b": 45},
              "xaxis": {"type": "log", "title": {"text": "square GEMM size (m = k = n, log scale)"},
                        **square_size_ticks(m.m[(m.m == m.k) & (m.k == m.n)])},
              "yaxis": {"title": {"text": "2:4 speedup (dense time / 2:4 time; above 1: 2:4 wins)"}},
              "legend": {"font": {"size": 10}, "title": {"text": "colour = dtype<br>line = model (held-out<br>"
                                                                  "speedup error)", "font": {"size": 10}}},
              "shapes": [{"type": "line", "xref": "x domain", "yref": "y", "x0": 0, "x1": 1, "y0": 1, "y1": 1,
                          "line": {"color": "#333", "width": 1}}]}
    return {"data": data, "layout": layout}


# ----------------------------------------------------------------------------- table and section
def _cell(c: GpuCheck, dtype: str, col: str, v: Optional[float]) -> str:
    return (f'<td data-gpu="{html.escape(c.name)}" data-dtype="{html.escape(dtype)}" data-col="{col}" '
            f'data-value="{"nan" if v is None else repr(float(v))}">{_pct(v)}</td>')


def _size(x: Optional[float]) -> str:
    return "never" if x is None else str(int(x))


def scores_table(checks: list[GpuCheck]) -> str:
    """Per GPU and dtype: held-out rows, MAPE dense and 2:4, speedup error, same winner, square crossover."""
    head = ("<thead><tr><th class=l>GPU</th><th class=l>dtype</th><th>held-out rows</th><th>MAPE dense</th>"
            "<th>MAPE 2:4</th><th>speedup error</th><th>same winner</th><th>crossover measured / model</th>"
            "</tr></thead>")
    body = []
    for c in checks:
        rows = [(d, s) for d, s in c.dtypes.items()] + [("all", c.scores)]
        for i, (dtype, s) in enumerate(rows):
            cross = s.get("crossover")
            cross_txt = (f"{_size(cross['measured'])} / {_size(cross['predicted'])}" if cross and cross["sizes"]
                         else ("no squares" if cross else ""))
            first = (f'<td class=l rowspan={len(rows)}><b>{html.escape(c.name)}</b><br><span class=small>'
                     f'{html.escape(c.device)}; {html.escape(c.architecture)} set</span></td>') if i == 0 else ""
            body.append(f"<tr{' class=all' if dtype == 'all' else ''}>{first}<td class=l>"
                        f"{html.escape(DTYPE_SHORT.get(dtype, dtype))}</td><td>{s['rows']}</td>"
                        + _cell(c, dtype, "mape_dense", s["mape_dense"]) + _cell(c, dtype, "mape_sparse", s["mape_sparse"])
                        + _cell(c, dtype, "speedup_mape", s["speedup_mape"])
                        + f"<td>{_pct(s['winner_agreement'])}</td><td>{cross_txt}</td></tr>")
    return (f'<div class="frame"><table class="gpumodel"><caption>The model with the bundled parameters on the '
            f'held-out shapes</caption>{head}<tbody>{"".join(body)}</tbody></table></div>')


def _fit_note(c: GpuCheck) -> str:
    gpus, rows = c.fitted_on
    if c.name in gpus and rows is not None and rows >= len(c.meas):
        return f"{c.name}: the {c.architecture} set was fitted on all {len(c.meas)} of its rows, these included"
    if c.name in gpus:
        return f"{c.name}: the {c.architecture} set was fitted on {', '.join(gpus)} ({rows} rows)"
    from hwmodel.gpu.params import fitted_on_note

    return f"{c.name}: the {c.architecture} set was {fitted_on_note(c.name, gpus) or 'fitted on other GPUs, not on this GPU'}"


def _sweep_gpus_line(df: pd.DataFrame, checks: list[GpuCheck], own: dict[str, dict]) -> str:
    """Which parameter set (and so which measured GPU) stands behind each GPU design point of the sweep;
    for a spec naming a parameter file of its own, that file and what it was fitted on, as the sweep's
    ``sweep.json`` recorded them (``own``: :func:`_own_records`)."""
    from hwmodel.gpu.params import bundled_params, set_name_for

    specs, sets = _specs(), bundled_params()
    by_set: dict[str, list[str]] = {}
    for c in checks:
        by_set.setdefault(c.architecture, []).append(c.name)
    parts = []
    for d in sorted(set(df.design[gpu_rows(df)])):
        rec = own.get(d)
        if rec is not None:
            note = rec.get("params_note")
            parts.append(f"{d} uses the {rec.get('params_set')} set of its own parameter file {rec.get('params_file')}"
                         + (f" ({note})" if note else ""))
            continue
        spec = specs.get(d)
        if spec is None:
            parts.append(f"{d}: a GPU spec file outside the bundle")
            continue
        name = set_name_for(spec, sets)
        measured = by_set.get(name)
        parts.append(f"{d} uses the {name} set" + (f" (checked here on {', '.join(measured)})" if measured else
                                                   " (no measured GPU of its architecture)"))
    return "; ".join(parts)


def _own_records(manifest: Optional[dict]) -> dict[str, dict]:
    """Design -> its ``gpu_model`` record in sweep.json, for the GPU design points that ran with a
    parameter file of their own (``params_own``; checked by ``reports.data``)."""
    designs = (manifest or {}).get("designs")
    return {e["name"]: e["gpu_model"] for e in (designs if isinstance(designs, list) else [])
            if isinstance(e, dict) and isinstance(e.get("gpu_model"), dict) and e["gpu_model"].get("params_own")}


def build_section(df: pd.DataFrame, checks: Optional[list[GpuCheck]] = None, manifest: Optional[dict] = None) -> Section:
    """The section for a sweep table ``df`` (its GPU design points named in the text; ``manifest``, the
    sweep's sweep.json, names the parameter files of their own that some may have run with)."""
    checks = check_bundled() if checks is None else checks
    figs: list[tuple[str, dict]] = []
    parts = [f'<style>{CSS}</style><h2 id="{ANCHOR}">{TITLE}</h2>']
    if not checks:
        parts.append("<p>No bundled GPU measurements to check the GPU model against.</p>")
        return Section(ANCHOR, TITLE, "\n".join(parts), figs)
    m0 = checks[0].meas
    own = _own_records(manifest)
    own_clause = ", or with the parameter file of their own that their spec names" if own else ""
    parts.append(
        "<p>The sweep's GPU design points take their times from the GPU timing model (hwmodel/gpu/model.py) with the "
        f"bundled parameters of their architecture{own_clause}: "
        f"{html.escape(_sweep_gpus_line(df, checks, own))}. Here that model, with "
        "the same bundled parameters, predicts published dense (cuBLASLt) and 2:4 (cuSPARSELt) GEMM times of the "
        f"GPUs that have measurements, under the conditions they were measured in ({m0.loop_calls} back-to-back calls "
        f"on the same operands, L2 {html.escape(m0.l2)}; the sweep's GPU points read their weights with L2 cold). "
        f"Source of the measurements: {html.escape(_provenance_line())} (hwmodel/data/gpu_measurements/README.md).</p>"
        "<p class=small>Rows scored: the held-out shapes of <code>nmlab gpu validate</code>'s split (per GPU, one "
        "shape in three is a calibration shape, across every dtype; the other two are held out). The bundled "
        "parameters themselves come from <code>nmlab gpu fit</code>: "
        + html.escape("; ".join(_fit_note(c) for c in checks))
        + ". So where a set saw these rows, this is how well the sweep's model fits the data, not a test on unseen "
        "shapes; <code>nmlab gpu validate</code> fits on the calibration shapes alone and scores the held-out ones, "
        "and its leave-one-GPU-out scores predict each GPU from its spec alone (docs/gpu.md). MAPE = mean |predicted "
        "/ measured - 1|; speedup error the same on dense / 2:4; same winner: the share of rows where model and "
        "measurement agree on whether 2:4 beats dense; crossover: the smallest square size from which 2:4 keeps "
        "winning.</p>")
    parts.append(scores_table(checks))
    for c in checks:
        parts.append(f"<h3>{html.escape(c.device)} ({html.escape(c.name)})</h3><div class=\"grid\">")
        for fig in (scatter_figure(c), speedup_figure(c)):
            div = f"gpuplot{len(figs)}"
            figs.append((div, fig))
            parts.append(f'<div id="{div}" class="plot"></div>')
        parts.append("</div>")
    return Section(ANCHOR, TITLE, "\n".join(parts), figs)


def section(shown_df: pd.DataFrame, df: pd.DataFrame, manifest: dict, out: Path) -> Optional[Section]:
    """``reports.build.OPTIONAL_SECTIONS`` entry: the section when the sweep has GPU design points."""
    if not gpu_rows(df).any():
        return None
    return build_section(df, manifest=manifest)


CSS = """
table.gpumodel td.l,table.gpumodel th.l{text-align:left}table.gpumodel tr.all td{font-weight:600;background:#fafafa}
table.gpumodel .small{font-weight:normal}
"""
