"""CLI registration for `nmlab gpu bench` (needs torch, so it lives in rl). Handlers import heavy modules lazily."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``nmlab gpu bench`` to the shared ``gpu`` group."""
    # Imported here: `python -m rl.gpubench` reuses _add_arguments on machines without numpy,
    # which hwmodel's package __init__ needs.
    from hwmodel.cli import subgroup

    gpu = subgroup(sub, "gpu", "GPU timings: measure dense vs 2:4 (bench), check the GPU model (validate)")
    p = gpu.add_parser("bench", help="time dense vs 2:4 GEMMs, TD3 layers and steps on this CUDA GPU -> CSV")
    # The options live with the harness so `python -m rl.gpubench` takes the same ones.
    _add_arguments(p)
    p.set_defaults(func=_bench)


def _add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", required=True, help="CSV to write (a .log is written beside it)")
    p.add_argument("--quick", action="store_true", help="small grid (about an eighth of the full one)")
    p.add_argument("--max-seconds", type=float, default=480.0,
                   help="time budget for the whole run; later cases are written as skipped (default 480)")
    p.add_argument("--target-ms", type=float, default=20.0, help="GPU time per timing statistic (default 20 ms)")
    p.add_argument("--no-profile", action="store_true", help="do not count kernels with the torch profiler")


def _bench(args: argparse.Namespace) -> int:
    from hwmodel.errors import NmlabError
    from rl import gpubench

    if args.max_seconds <= 0:
        raise NmlabError(f"--max-seconds: must be > 0, got {args.max_seconds}")
    try:
        return gpubench.run(args)
    except gpubench.NoGpu as exc:
        raise NmlabError(str(exc)) from None
