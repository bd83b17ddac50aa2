"""CLI registration for `nmlab gpu bench` (needs torch, so it lives in rl). Handlers import heavy modules lazily."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``nmlab gpu bench`` to the shared ``gpu`` group."""
    from hwmodel.cli import subgroup
    from hwmodel.gpu_cmd import GROUP_HELP
    from rl.gpubench import DESCRIPTION, add_arguments  # standard library only until it runs

    gpu = subgroup(sub, "gpu", GROUP_HELP)
    p = gpu.add_parser("bench", help="time dense vs 2:4 GEMMs, TD3 layers and steps on this CUDA GPU -> CSV",
                       description=DESCRIPTION)
    add_arguments(p)
    p.set_defaults(func=_bench)


def _bench(args: argparse.Namespace) -> int:
    from hwmodel.errors import NmlabError
    from rl import gpubench

    from hwmodel.limits import check_output_file

    why = gpubench.bad_argument(args)
    if why:
        raise NmlabError(why)
    out = check_output_file(args.out, "--out")  # before minutes of GPU work, not when the CSV is first written
    # The log goes beside the CSV (OUT with .log): `--out bench.log` made them one file, and a folder
    # of the log's name was an IsADirectoryError traceback once the GPU was found.
    if out.suffix == ".log":
        raise NmlabError(f"--out: {args.out}: the log is written beside the CSV as OUT with .log, here the same "
                         f"file; give the CSV a .csv name")
    check_output_file(out.with_suffix(".log"), "--out (its .log beside it)")
    try:
        return gpubench.run(args)
    except gpubench.NoGpu as exc:
        raise NmlabError(str(exc)) from None
