"""CLI registration for `nmlab gpu validate` (GPU model). Handlers import heavy modules lazily."""

from __future__ import annotations

import argparse

from hwmodel.cli import subgroup


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``nmlab gpu validate`` to the shared ``gpu`` group."""
    gpu = subgroup(sub, "gpu", "GPU timings: measure dense vs 2:4 (bench), check the GPU model (validate)")
    p = gpu.add_parser("validate", help="fit the GPU model on part of a bench CSV and report its error on the rest")
    p.add_argument("--data", help="bench CSV (nmlab gpu bench); default: the measurement bundled in hwmodel/data/gpu_bench")
    p.add_argument("--gpu", help="design point to compare with (h100_sxm, h200_sxm, a100_sxm); default: from the rows")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.add_argument("--plots", metavar="DIR", help="write predicted_vs_measured.png and speedup_vs_size.png here")
    p.set_defaults(func=_validate)


def _validate(args: argparse.Namespace) -> int:
    import json

    from hwmodel.gpu.validate import finite_or_none, format_report, public, run_validate, write_plots
    from hwmodel.limits import check_output_dir

    if args.plots:
        check_output_dir(args.plots, "--plots")  # before the fit, not after it
    report = run_validate(args.data, args.gpu)
    plots = write_plots(report, args.plots) if args.plots else []
    if args.json:
        out = public(report)
        out["plots"] = [str(p) for p in plots]
        print(json.dumps(finite_or_none(out), indent=1, default=str))
    else:
        print(format_report(report))
        for p in plots:
            print(f"  plot: {p}")
    return 0
