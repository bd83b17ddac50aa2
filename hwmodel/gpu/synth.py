"""Synthetic bench CSVs generated from the GPU model itself (for testing the fitter only).

Rows have the bench's schema, ``device_name`` "synthetic (<gpu>)" and times from
:class:`~hwmodel.gpu.model.GpuModel` with known parameters times log-normal noise. Fitting
them back checks the fitting pipeline, never the model: the model is right by construction.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from hwmodel.gpu import grid, schema
from hwmodel.gpu.model import GpuModel, GpuModelParams
from hwmodel.gpu.spec import GpuSpec


def synthetic_rows(gpu: GpuSpec, params: GpuModelParams, quick: bool = True, noise_sigma: float = 0.03,
                   seed: int = 0) -> list[dict[str, Any]]:
    """One ok row per (case, impl) of the (quick) grid that ``gpu`` supports.

    Args:
        gpu: design point whose model generates the times.
        params: the "true" parameters a fit should recover.
        quick: use the quick grid (fewer rows) instead of the full one.
        noise_sigma: standard deviation of the multiplicative log-normal noise.
        seed: numpy seed of the noise.
    """
    rng = np.random.default_rng(seed)
    rows = []
    for case in grid.build_grid(quick=quick):
        if case.dtype not in gpu.tensor_flops:
            continue
        for impl in grid.impls_for_case(case.kind, case.dtype):
            row = schema.empty_row()
            composite = case.kind in ("actor_fwd", "td3_step")
            mp, np_, kp = (case.m, case.n, case.k) if composite else grid.padded_shape(case.m, case.n, case.k, case.dtype, impl)
            row.update(run_id="synthetic", status="ok", error="", kind=case.kind, name=case.name, env=case.env,
                       width=case.width, dtype=case.dtype, out_dtype=grid.OUT_DTYPE[case.dtype][0], impl=impl,
                       backend="cublas" if impl == "dense" else "cusparselt", m=case.m, n=case.n, k=case.k,
                       m_pad=mp, n_pad=np_, k_pad=kp, alg_id=-1, algs_tried=0, algs_wrong=0, lib_alg_id=-1,
                       graph_error="", rotate_sets=2, set_bytes=0, max_rel_err=0.0, check_ok=True,
                       kernels_per_call=-1, flops=2 * case.m * case.n * case.k,
                       device_name=f"synthetic ({gpu.name})", compute_capability=gpu.compute_capability,
                       sm_count=gpu.sm_count, l2_bytes=gpu.l2_bytes, mem_bytes=int(gpu.hbm_bytes), driver="",
                       torch="", cuda="", cusparselt="", sm_clock_mhz=-1.0, mem_clock_mhz=-1.0,
                       max_sm_clock_mhz=-1.0, power_limit_w=-1.0, temperature_c=-1.0)
            rows.append(row)
    eager, graph = GpuModel(gpu, rows).predict(params)
    for row, e, g in zip(rows, eager, graph):
        for mode, t in (("eager", e), ("graph", g)):
            t = float(t * np.exp(rng.normal(0.0, noise_sigma)))
            row.update({f"{mode}_median_us": t, f"{mode}_p10_us": t * (1 - noise_sigma),
                        f"{mode}_p90_us": t * (1 + noise_sigma), f"{mode}_reps": 50})
    return rows
