"""``nmlab gpu validate``: fit the GPU model's efficiency parameters and check it on held-out shapes.

Split (deterministic, documented in docs/gpu.md): the distinct shapes of the ok rows, keyed
by kind and (m, n, k) without dtype or implementation, are sorted by kind then FLOPs; every
third one, starting with the first, is a calibration shape, the others are held out. The
dense and 2:4 rows of one shape always fall on the same side, so held-out shapes are unseen
in every dtype and implementation.

Fit: ``scipy.optimize.least_squares`` on log(predicted) - log(measured) over the calibration
rows' eager and graph medians, parameters in log space within PARAM_BOUNDS, soft-L1 loss
(f_scale 0.2) so a few odd rows cannot drag the fit.
"""

from __future__ import annotations

import math
import os
from collections import defaultdict
from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np

from hwmodel.errors import NmlabError
from hwmodel.gpu import grid, schema
from hwmodel.gpu.model import PARAM_BOUNDS, GpuModel, GpuModelParams
from hwmodel.gpu.spec import GpuSpec, gpu_for

MODES = ("eager", "graph")
TARGET_MAPE_PCT = 10.0


def shape_key(row: dict[str, Any]) -> tuple[str, int, int, int]:
    return (row["kind"], int(row["m"]), int(row["n"]), int(row["k"]))


def split_rows(rows: Sequence[dict[str, Any]], every: int = 3) -> tuple[list[int], list[int]]:
    """(calibration indices, held-out indices): every ``every``-th shape by (kind, FLOPs) calibrates."""
    keys = sorted({shape_key(r) for r in rows}, key=lambda s: (s[0], s[1] * s[2] * s[3], s))
    calib_keys = {key for i, key in enumerate(keys) if i % every == 0}
    calib = [i for i, r in enumerate(rows) if shape_key(r) in calib_keys]
    held = [i for i, r in enumerate(rows) if shape_key(r) not in calib_keys]
    return calib, held


def _observations(rows: Sequence[dict[str, Any]], idx: Sequence[int]) -> list[tuple[int, int, float]]:
    """(row index, mode index, measured us) for every measured median among ``idx``."""
    obs = []
    for i in idx:
        for j, mode in enumerate(MODES):
            t = schema.measured_time_us(rows[i], mode)
            if t is not None:
                obs.append((i, j, t))
    return obs


def fit_params(model: GpuModel, rows: Sequence[dict[str, Any]], idx: Sequence[int],
               start: Optional[GpuModelParams] = None) -> tuple[GpuModelParams, dict[str, Any]]:
    """Least-squares fit of all parameters on the rows ``idx``; returns params and fit info."""
    from scipy.optimize import least_squares

    obs = _observations(rows, idx)
    if len(obs) < len(GpuModelParams.names()) * 2:
        raise NmlabError(f"gpu validate: only {len(obs)} calibration timings; need at least "
                         f"{len(GpuModelParams.names()) * 2}")
    r_idx = np.array([o[0] for o in obs])
    m_idx = np.array([o[1] for o in obs])
    meas = np.log(np.array([o[2] for o in obs]))
    names = GpuModelParams.names()
    lo = np.log([PARAM_BOUNDS[n][0] for n in names])
    hi = np.log([PARAM_BOUNDS[n][1] for n in names])
    x0 = np.clip(np.log((start or GpuModelParams()).vector()), lo + 1e-9, hi - 1e-9)

    def residuals(x: np.ndarray) -> np.ndarray:
        eager, graph = model.predict(GpuModelParams.from_vector(np.exp(x)))
        pred = np.where(m_idx == 0, eager[r_idx], graph[r_idx])
        return np.log(pred) - meas

    res = least_squares(residuals, x0, bounds=(lo, hi), loss="soft_l1", f_scale=0.2, x_scale=1.0)
    params = GpuModelParams.from_vector(np.exp(res.x))
    return params, {"timings": len(obs), "cost": float(res.cost), "status": int(res.status),
                    "rms_log_residual": float(np.sqrt(np.mean(res.fun ** 2)))}


def mape_pct(pred: np.ndarray, meas: np.ndarray) -> Optional[float]:
    """Mean absolute percentage error; None for no data."""
    pred, meas = np.asarray(pred, float), np.asarray(meas, float)
    if meas.size == 0:
        return None
    return float(100.0 * np.mean(np.abs(pred - meas) / meas))


def crossover(sizes: Sequence[float], speedups: Sequence[float]) -> Optional[float]:
    """Smallest size from which 2:4 wins (speedup > 1) at that size and every larger one.

    ``None`` if 2:4 does not win at the largest size. Sizes need not be sorted.
    """
    pairs = sorted(zip(sizes, speedups))
    if not pairs or pairs[-1][1] <= 1.0:
        return None
    answer = pairs[-1][0]
    for size, s in reversed(pairs):
        if s <= 1.0:
            break
        answer = size
    return answer


def _case_key(row: dict[str, Any]) -> tuple:
    return (row["kind"], row["name"], row["dtype"], int(row["m"]), int(row["n"]), int(row["k"]))


def _speedup_pairs(rows, idx, eager, graph) -> list[dict[str, Any]]:
    """Dense vs each 2:4 implementation of the same case and mode, measured and predicted."""
    by_case: dict[tuple, dict[str, int]] = defaultdict(dict)
    for i in idx:
        by_case[_case_key(rows[i])][rows[i]["impl"]] = i
    pairs = []
    for key, impls in by_case.items():
        if "dense" not in impls:
            continue
        d = impls["dense"]
        for impl in grid.SPARSE_IMPLS:
            if impl not in impls:
                continue
            s = impls[impl]
            for j, mode in enumerate(MODES):
                td, ts = schema.measured_time_us(rows[d], mode), schema.measured_time_us(rows[s], mode)
                if td is None or ts is None:
                    continue
                pred = (eager if j == 0 else graph)
                pairs.append({"case": key, "impl": impl, "mode": mode, "measured": td / ts,
                              "predicted": float(pred[d] / pred[s])})
    return pairs


def _crossovers(rows, eager, graph) -> list[dict[str, Any]]:
    """Measured vs predicted crossover: square GEMMs by size, hidden TD3 layers by batch."""
    out = []
    all_idx = list(range(len(rows)))
    pairs = _speedup_pairs(rows, all_idx, eager, graph)
    groups: dict[tuple, list[dict]] = defaultdict(list)
    for p in pairs:
        kind, name, dtype, m, n, k = p["case"]
        if kind == "gemm" and name == "square":
            groups[("square gemm", dtype, p["impl"], p["mode"], "size")].append({**p, "x": m})
        elif kind == "layer" and n == k:
            groups[(f"hidden layer {n}x{n}", dtype, p["impl"], p["mode"], "batch")].append({**p, "x": m})
    for (what, dtype, impl, mode, axis), ps in sorted(groups.items()):
        if len(ps) < 2:
            continue
        xs = [p["x"] for p in ps]
        out.append({"what": what, "dtype": dtype, "impl": impl, "mode": mode, "axis": axis,
                    "points": len(ps),
                    "measured": crossover(xs, [p["measured"] for p in ps]),
                    "predicted": crossover(xs, [p["predicted"] for p in ps])})
    return out


def _group_mape(rows, obs, eager, graph, select) -> Optional[float]:
    pred, meas = [], []
    for i, j, t in obs:
        if select(rows[i], MODES[j]):
            pred.append((eager if j == 0 else graph)[i])
            meas.append(t)
    return mape_pct(np.array(pred), np.array(meas))


def validate(rows: Sequence[dict[str, Any]], gpu: GpuSpec) -> dict[str, Any]:
    """Fit on the calibration shapes, report on the held-out ones. Rows: schema dicts."""
    ok = [r for r in rows if r.get("status") == "ok" and (r.get("dtype") in gpu.tensor_flops)]
    if not ok:
        raise NmlabError("gpu validate: the csv has no ok rows for this GPU")
    calib, held = split_rows(ok)
    model = GpuModel(gpu, ok)
    params, fit = fit_params(model, ok, calib)
    eager, graph = model.predict(params)
    held_obs = _observations(ok, held)
    is_sparse = lambda r: r["impl"] in grid.SPARSE_IMPLS  # noqa: E731
    metrics: dict[str, Any] = {}
    for mode in MODES + ("all",):
        in_mode = (lambda m, mode=mode: mode == "all" or m == mode)
        metrics[mode] = {
            "mape_dense_pct": _group_mape(ok, held_obs, eager, graph, lambda r, m: in_mode(m) and not is_sparse(r)),
            "mape_sparse_pct": _group_mape(ok, held_obs, eager, graph, lambda r, m: in_mode(m) and is_sparse(r)),
        }
        for impl in grid.IMPLS:
            metrics[mode][f"mape_{impl}_pct"] = _group_mape(ok, held_obs, eager, graph,
                                                            lambda r, m, impl=impl: in_mode(m) and r["impl"] == impl)
        for kind in ("gemm", "layer", "actor_fwd", "td3_step"):
            metrics[mode][f"mape_{kind}_pct"] = _group_mape(ok, held_obs, eager, graph,
                                                            lambda r, m, kind=kind: in_mode(m) and r["kind"] == kind)
    pairs = _speedup_pairs(ok, held, eager, graph)
    speed = {}
    for mode in MODES:
        ps = [p for p in pairs if p["mode"] == mode]
        speed[mode] = {
            "pairs": len(ps),
            "mean_abs_error_pct": (float(np.mean([abs(p["predicted"] / p["measured"] - 1) * 100 for p in ps]))
                                   if ps else None),
            "winner_agreement": (float(np.mean([(p["predicted"] > 1) == (p["measured"] > 1) for p in ps]))
                                 if ps else None),
        }
    kernel_counts = [(int(model.kernels_per_row[i]), r["kernels_per_call"]) for i, r in enumerate(ok)
                     if r.get("kernels_per_call") is not None and r["kernels_per_call"] >= 0]
    kinds = sorted({r["kind"] for r in ok})
    devices = sorted({r["device_name"] for r in ok})
    headline = metrics["all"]
    return {
        "gpu": gpu.name,
        "devices": devices,
        "torch": sorted({r.get("torch") or "" for r in ok}),
        "cusparselt": sorted({r.get("cusparselt") or "" for r in ok}),
        "rows_ok": len(ok),
        "rows_not_ok": len(rows) - len(ok),
        "shapes_calibration": len({shape_key(ok[i]) for i in calib}),
        "shapes_held_out": len({shape_key(ok[i]) for i in held}),
        "timings_held_out": len(held_obs),
        "params": params.as_dict(),
        "fit": fit,
        "metrics": metrics,
        "speedup": speed,
        "crossovers": _crossovers(ok, eager, graph),
        "kinds": kinds,
        "kernel_count_rows": len(kernel_counts),
        "kernel_count_mean_abs_diff": (float(np.mean([abs(a - b) for a, b in kernel_counts]))
                                       if kernel_counts else None),
        "target_mape_pct": TARGET_MAPE_PCT,
        "meets_target": bool(headline["mape_dense_pct"] is not None and headline["mape_sparse_pct"] is not None
                             and headline["mape_dense_pct"] < TARGET_MAPE_PCT
                             and headline["mape_sparse_pct"] < TARGET_MAPE_PCT),
        "_model": model, "_rows": ok, "_held": held, "_pred": (eager, graph),
    }


def public(report: dict[str, Any]) -> dict[str, Any]:
    """The report without the in-memory objects (what --json prints)."""
    return {k: v for k, v in report.items() if not k.startswith("_")}


def _fmt(x: Optional[float], unit: str = "%") -> str:
    return "n/a" if x is None else f"{x:.1f}{unit}"


def format_report(report: dict[str, Any]) -> str:
    """Plain-text summary of a validation report."""
    lines = [f"GPU model {report['gpu']} vs measured rows from {', '.join(report['devices'])}",
             f"  torch {', '.join(report['torch'])}; cuSPARSELt {', '.join(report['cusparselt'])}",
             f"  rows ok {report['rows_ok']} (not ok {report['rows_not_ok']}); shapes: {report['shapes_calibration']} "
             f"calibration, {report['shapes_held_out']} held out ({report['timings_held_out']} held-out timings)",
             "  fitted: " + ", ".join(f"{k}={v:.3g}" for k, v in report["params"].items()),
             f"  held-out MAPE (target < {report['target_mape_pct']:.0f}%):"]
    for mode in ("graph", "eager", "all"):
        m = report["metrics"][mode]
        lines.append(f"    {mode:<5} dense {_fmt(m['mape_dense_pct']):>7}  2:4 {_fmt(m['mape_sparse_pct']):>7}  "
                     f"(cslt {_fmt(m['mape_sparse_cslt_pct'])}, api {_fmt(m['mape_sparse_api_pct'])}; "
                     f"gemm {_fmt(m['mape_gemm_pct'])}, layer {_fmt(m['mape_layer_pct'])}, "
                     f"actor fwd {_fmt(m['mape_actor_fwd_pct'])}, td3 step {_fmt(m['mape_td3_step_pct'])})")
    lines.append(f"  meets target: {'yes' if report['meets_target'] else 'no'}")
    for mode in MODES:
        s = report["speedup"][mode]
        agree = "n/a" if s["winner_agreement"] is None else f"{100 * s['winner_agreement']:.0f}%"
        lines.append(f"  speedup dense/2:4 ({mode}): {s['pairs']} held-out pairs, mean abs error "
                     f"{_fmt(s['mean_abs_error_pct'])}, same winner {agree}")
    if report["kernel_count_mean_abs_diff"] is not None:
        lines.append(f"  kernels per call, model vs profiler: mean |diff| {report['kernel_count_mean_abs_diff']:.1f} "
                     f"over {report['kernel_count_rows']} rows")
    if report["crossovers"]:
        lines.append("  crossover where 2:4 starts to win (measured / predicted; none = never):")
        for c in report["crossovers"]:
            meas = "none" if c["measured"] is None else f"{c['measured']:g}"
            pred = "none" if c["predicted"] is None else f"{c['predicted']:g}"
            lines.append(f"    {c['what']:<22} {c['dtype']:<14} {c['impl']:<12} {c['mode']:<5} {c['axis']} "
                         f"{meas} / {pred}")
    return "\n".join(lines)


def write_plots(report: dict[str, Any], folder: str | os.PathLike) -> list[Path]:
    """predicted_vs_measured.png and speedup_vs_size.png in ``folder``; returns the paths."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from hwmodel.io import atomic_write

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    rows, held, (eager, graph) = report["_rows"], report["_held"], report["_pred"]
    paths = []

    fig, ax = plt.subplots(figsize=(6, 6))
    for impl, marker in zip(grid.IMPLS, ("o", "^", "s")):
        for j, mode in enumerate(MODES):
            pts = [(schema.measured_time_us(rows[i], mode), (eager if j == 0 else graph)[i]) for i in held
                   if rows[i]["impl"] == impl and schema.measured_time_us(rows[i], mode) is not None]
            if pts:
                xs, ys = zip(*pts)
                ax.scatter(xs, ys, s=10, marker=marker, alpha=0.6, label=f"{impl} {mode}")
    lo_hi = [1.0, 1e5]
    ax.plot(lo_hi, lo_hi, "k--", lw=0.8)
    ax.set(xscale="log", yscale="log", xlabel="measured time per call (us)", ylabel="predicted (us)",
           title=f"GPU model {report['gpu']} vs {', '.join(report['devices'])}: held-out rows")
    ax.legend(fontsize=7)
    paths.append(_save(fig, folder / "predicted_vs_measured.png", atomic_write))

    pairs = _speedup_pairs(rows, list(range(len(rows))), eager, graph)
    squares = [p for p in pairs if p["case"][0] == "gemm" and p["case"][1] == "square" and p["mode"] == "graph"]
    fig, ax = plt.subplots(figsize=(7, 4.5))
    groups: dict[tuple, list] = defaultdict(list)
    for p in squares:
        groups[(p["case"][2], p["impl"])].append((p["case"][3], p["measured"], p["predicted"]))
    for (dtype, impl), pts in sorted(groups.items()):
        pts.sort()
        xs = [p[0] for p in pts]
        line = ax.plot(xs, [p[2] for p in pts], "-", lw=1, label=f"{dtype} {impl} model")[0]
        ax.plot(xs, [p[1] for p in pts], "o", color=line.get_color(), label=f"{dtype} {impl} measured")
    ax.axhline(1.0, color="k", lw=0.8)
    ax.set(xscale="log", xlabel="square GEMM size (m = n = k)", ylabel="speedup dense / 2:4 (graph)",
           title="2:4 speedup vs size")
    ax.legend(fontsize=6, ncol=2)
    paths.append(_save(fig, folder / "speedup_vs_size.png", atomic_write))
    return paths


def _save(fig, path: Path, atomic_write) -> Path:
    import matplotlib.pyplot as plt

    with atomic_write(path) as fh:
        fig.savefig(fh, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return path


def gpu_for_rows(rows: Sequence[dict[str, Any]], name: Optional[str]) -> GpuSpec:
    """The design point to compare with: ``name`` if given, else the one matching the rows' device."""
    if name:
        return gpu_for(name)
    devices = sorted({r["device_name"] for r in rows if r.get("device_name")})
    if len(devices) != 1:
        raise NmlabError(f"gpu validate: rows come from {len(devices)} devices ({', '.join(devices)}); pass --gpu NAME")
    return gpu_for(devices[0])


def bundled_measurements() -> list[Path]:
    """Measured CSVs committed under hwmodel/data/gpu_bench (none until a GPU session runs the bench)."""
    from hwmodel.io import data_path

    return sorted(data_path("gpu_bench").glob("*.csv"))


def run_validate(data: Optional[str], gpu_name: Optional[str]) -> dict[str, Any]:
    """Load the CSV (or the bundled measurement), pick the GPU and validate."""
    if data is None:
        found = bundled_measurements()
        if not found:
            raise NmlabError("gpu validate: no measured CSV is bundled yet (hwmodel/data/gpu_bench); pass --data FILE")
        data = str(found[-1])
    rows = schema.read_rows(data)
    if not rows:
        raise NmlabError(f"gpu validate: {data}: no rows")
    gpu = gpu_for_rows([r for r in rows if r.get("status") == "ok"] or rows, gpu_name)
    report = validate(rows, gpu)
    report["data"] = str(data)
    return report


def finite_or_none(x: Any) -> Any:
    """JSON-safe floats (NaN/inf become None)."""
    if isinstance(x, float) and not math.isfinite(x):
        return None
    if isinstance(x, dict):
        return {k: finite_or_none(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [finite_or_none(v) for v in x]
    return x
