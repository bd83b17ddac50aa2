"""CLI registration for ``nmlab gpu validate | predict | fit`` (GPU model). Handlers import lazily."""

from __future__ import annotations

import argparse

from hwmodel.cli import subgroup
from hwmodel.limits import cli_int

#: Help of the shared ``gpu`` group; rl's ``gpu bench`` registrar passes the same text (whichever
#: registers first sets it).
GROUP_HELP = ("GPU timings: measure dense vs 2:4 (bench), check the GPU model (validate), predict a GEMM "
              "(predict), refit the model, or fit it on your own timings (fit)")


def register(sub: argparse._SubParsersAction) -> None:
    """Add the GPU model's commands to the shared ``gpu`` group."""
    gpu = subgroup(sub, "gpu", GROUP_HELP)
    p = gpu.add_parser("validate", help="check the GPU model against measured dense vs 2:4 GEMM times")
    p.add_argument("--data", metavar="FILE", help="a published-format or `nmlab gpu bench` CSV; default: every file bundled "
                                  "in hwmodel/data/gpu_measurements (one block per GPU, plus leave-one-GPU-out)")
    p.add_argument("--gpu", help="GPU spec for every row of --data: a bundled name (e.g. h100_pcie) or a spec file of your "
                   "own (docs/gpu.md); default: matched from the file's GPU names")
    p.add_argument("--no-fit", action="store_true", help="fit nothing: score every row with the spec's parameters (the "
                   "file its params: key names, else the bundled set of its architecture)")
    p.add_argument("--json", action="store_true", help="print a JSON list, one object per GPU")
    p.add_argument("--plots", metavar="DIR", help="write <gpu>_predicted_vs_measured.png and <gpu>_speedup_vs_size.png into folder DIR")
    p.set_defaults(func=_validate)

    p = gpu.add_parser("predict", help="predicted dense and 2:4 time of one GEMM on a GPU spec")
    p.add_argument("--gpu", required=True, help="bundled GPU spec name (hwmodel/data/gpus), e.g. h100_sxm, a spec file of "
                   "your own (format: nmlab-gpu, docs/gpu.md; its params: key names a parameter file of `gpu fit --data`), "
                   "or a torch device name")
    p.add_argument("--gemm", required=True, metavar="M,K,N", help="Y[M,N] = X[M,K] W[N,K]^T: M batch rows, K reduction, N outputs")
    p.add_argument("--dtype", default="bf16", help="bf16 | fp16 | fp8 | int8 | fp4 (or full names); default bf16")
    p.add_argument("--l2", choices=("warm", "cold"), default="warm",
                   help="warm (default): operands reused from L2 across calls (a timing loop); cold: read from DRAM")
    p.add_argument("--calls", type=cli_int(1), default=125, help="back-to-back calls (heats the card); default 125")
    p.add_argument("--eager", action="store_true", help="add torch's eager per-call dispatch (a prior, not fitted)")
    p.set_defaults(func=_predict)

    p = gpu.add_parser(
        "fit", help="refit the bundled per-architecture parameters from the bundled measurements, or (--data) fit one "
        "set on your own GPU's timings",
        description="Without --data: refit the bundled per-architecture parameter sets from the bundled measurements. "
        "With --data CSV: fit one parameter set on every row of your timing file (nmlab gpu bench, or the published "
        "format) for one GPU, by the same code, and write it to --out FILE; then name that file in your GPU spec "
        "(params: FILE, relative to the spec's folder) and gpu predict, gpu validate --no-fit, simulate, sweep and "
        "check use it (docs/gpu.md, 'A GPU of your own').")
    p.add_argument("--data", metavar="CSV", help="fit one set on every row of this timing file (as gpu validate --data "
                   "reads it) instead of the bundled sets; needs --out")
    p.add_argument("--gpu", metavar="SPEC", help="with --data: the GPU spec of every row, a bundled name or a spec file of your own (its "
                   "own params: key is not read); default: matched from the file's GPU names")
    p.add_argument("--out", metavar="FILE", help="output YAML; without --data the default is hwmodel/data/gpu_params.yaml, "
                   "the bundled parameters every GPU prediction uses (overwritten); with --data it is required")
    p.set_defaults(func=_fit)


def _validate(args: argparse.Namespace) -> int:
    import json

    from hwmodel.gpu.validate import format_report, public, run_validate, write_plots
    from hwmodel.limits import check_output_dir

    if args.plots:
        check_output_dir(args.plots, "--plots")  # before the fit, not after it
    reports = run_validate(args.data, args.gpu, do_fit=not args.no_fit)
    plots = [p for r in reports for p in write_plots(r, args.plots)] if args.plots else []
    if args.json:
        print(json.dumps([public(r) for r in reports], indent=1, allow_nan=False))
    else:
        print("\n\n".join(format_report(r) for r in reports))
        for p in plots:
            print(f"plot: {p}")
    return 0


def _parse_gemm(text: str) -> tuple[int, int, int]:
    from hwmodel.errors import NmlabError
    from hwmodel.gpu.measurements import MAX_GEMM_DIM

    parts = text.split(",")
    try:
        values = tuple(int(p) for p in parts if len(p.strip()) <= 30)
    except ValueError:
        values = ()
    if len(values) != 3 or min(values) < 1:
        raise NmlabError(f"--gemm: {text[:60]!r} is not M,K,N (three whole numbers >= 1)")
    # The bound a timing file's sizes have: past it the model extrapolates to GEMMs nobody can run.
    if max(values) > MAX_GEMM_DIM:
        raise NmlabError(f"--gemm: {max(values):,} is over the largest GEMM dimension {MAX_GEMM_DIM:,}")
    return values  # type: ignore[return-value]


def _predict(args: argparse.Namespace) -> int:
    from hwmodel.gpu.design_point import params_description
    from hwmodel.gpu.measurements import canonical_dtype
    from hwmodel.gpu.model import predict_pair_us
    from hwmodel.gpu.params import efficiency_note, params_for, set_name_for
    from hwmodel.gpu.spec import gpu_for

    m, k, n = _parse_gemm(args.gemm)
    dtype = canonical_dtype(args.dtype)
    spec = gpu_for(args.gpu)
    params = params_for(spec)
    kw = dict(loop_calls=args.calls, l2=args.l2, mode="eager" if args.eager else "kernel")
    dense, sparse = (float(t.item()) for t in predict_pair_us(spec, m, k, n, dtype, params, **kw))
    flops = 2.0 * m * k * n
    calls = "1 call" if args.calls == 1 else f"{args.calls} calls back to back"
    set_name = set_name_for(spec)
    print(f"{spec.name} ({spec.display_name}), {params_description(spec, short=True)}; GEMM {m}x{k}x{n} (M,K,N) "
          f"{dtype}, L2 {args.l2}, {calls}, {'eager torch' if args.eager else 'library kernel'}")
    unit = "TOPS" if dtype == "int8" else "TFLOP/s"  # integer operations, as the spec sheets count them
    print(f"  dense  {dense:12.2f} us  ({_rate(flops / dense / 1e6)} {unit})")
    print(f"  2:4    {sparse:12.2f} us  ({_rate(flops / sparse / 1e6)} {unit} effective)")
    print(f"  speedup dense/2:4 {dense / sparse:.3f} ({'2:4 wins' if sparse < dense else 'dense wins'})")
    note = efficiency_note(set_name, dtype, params.efficiency_source(dtype))
    if note:  # a stand-in efficiency (a twin's, or the model's default) nothing else on the screen would show
        print(f"  note: {note}")
    return 0


def _rate(tera: float) -> str:
    """A rate in 8 columns: one decimal from 10 up, else three significant digits (a batch-1
    GEMM printed 0.0 TFLOP/s)."""
    return f"{tera:8.1f}" if tera >= 10 else f"{tera:8.3g}"


def _fit(args: argparse.Namespace) -> int:
    from hwmodel.errors import NmlabError
    from hwmodel.gpu.params import default_path
    from hwmodel.gpu.tune import write_bundled_params
    from hwmodel.limits import check_output_file

    if args.data is not None:
        return _fit_own(args)
    if args.gpu:
        # The bundled files name their GPUs (as gpu validate says).
        raise NmlabError("gpu fit: --gpu applies to --data CSV (the bundled files name their GPUs)")
    # Before the fit: a folder or /proc path was an OSError traceback after it, and a special
    # file (/dev/null) was replaced by the rename.
    out = check_output_file(args.out, "--out") if args.out else default_path()
    path = write_bundled_params(out)
    print(f"wrote {path}")
    return 0


def _fit_own(args: argparse.Namespace) -> int:
    """``gpu fit --data CSV [--gpu SPEC] --out FILE``: one set fitted on the user's timings."""
    import os

    from hwmodel.errors import NmlabError
    from hwmodel.gpu.params import default_path
    from hwmodel.gpu.tune import write_own_params
    from hwmodel.limits import check_output_file

    if not args.out:
        raise NmlabError("gpu fit: --out: required with --data (the file to write; the bundled parameters stay as they are)")
    out = check_output_file(args.out, "--out", inputs=[("--data", args.data), ("--gpu", args.gpu)])
    if os.path.abspath(out) == os.path.abspath(default_path()):
        raise NmlabError(f"gpu fit: --out: {args.out} is the bundled parameter file; a set fitted on your timings goes "
                         "to a file of your own, named in your GPU spec (params: FILE)")
    path, name, entry, info = write_own_params(args.data, args.gpu, out)
    print(f"wrote {path}: the '{name}' set for {entry['fitted_on'][0]}, fitted on all {entry['rows']} rows of "
          f"{entry['data']['file']} ({info['timings']} timings, {info['parameters']} parameters, rms log residual "
          f"{info['rms_log_residual']:.3f})")
    if info.get("unpinned"):
        # Written as fitted on this card, they are not (a heat constant of rows that never throttle, say).
        print(f"not set by these timings: {', '.join(info['unpinned'])} (from the written value, a factor of 2.7 in "
              f"each moves the fitted times under 0.1% rms: the value is the fit's start, the prior's or a bound's, "
              f"not a measurement of this card; docs/gpu.md)")
    print(f"to predict with it, add to the GPU spec file: params: {path.name} (a path relative to the spec's folder)")
    return 0
