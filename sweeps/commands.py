"""Subcommands owned by sweeps. Handlers import their modules lazily."""

from __future__ import annotations

import argparse

from hwmodel.errors import NmlabError
from hwmodel.limits import cli_int


def register(sub: argparse._SubParsersAction) -> None:
    """Add this package's subcommands to the nmlab parser."""
    p = sub.add_parser(
        "sweep",
        help="grid over N:M patterns x bitwidths x designs x workloads x scenarios -> DIR/points.parquet",
        description="Run (or resume) a sweep. Without CONFIG: bundled workloads, bundled designs, default grid "
        "(docs/sweeps.md). Re-running the same command after an interruption finishes the missing points only.",
    )
    p.add_argument("config", nargs="?", metavar="CONFIG", help="sweep YAML file (docs/sweeps.md); default: the bundled grid")
    p.add_argument("--out", default="results", help="output folder for points.parquet, sweep.json and parts/ (default: results); "
                   "one sweep at a time: it holds sweep.lock there")
    p.add_argument("--workers", type=cli_int(1, 1024), default=None, metavar="K",
                   help="local worker processes (default: the CPUs available, at most one per 5,000 points); "
                   "1 runs in this process")
    p.add_argument("--ray", nargs="?", const="local", default=None, metavar="ADDRESS",
                   help="run on Ray: start a local instance, or join the cluster at ADDRESS")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_sweep)


def _sweep(args: argparse.Namespace) -> int:
    from sweeps import api, store

    store.skip_pyarrow_pandas_import()  # this process only sweeps

    from hwmodel.raycluster import is_local

    if not is_local(args.ray) and args.workers is not None:
        # as nmlab campaign says: a cluster's own CPUs run the chunks, so K would mean nothing
        raise NmlabError("--workers: sets the local pool's or local Ray instance's CPUs; a cluster (--ray ADDRESS) "
                         "has its own")
    from hwmodel.stop import interrupt_status, sigterm_as_interrupt

    try:
        with sigterm_as_interrupt():  # a scheduler's SIGTERM stops the sweep as Ctrl-C does
            stats = api.run(args.config, args.out, workers=args.workers, use_ray=args.ray is not None,
                            ray_address=args.ray, progress=not args.quiet)
    except KeyboardInterrupt:
        _say_what_survives(args)
        return interrupt_status()  # 130 after Ctrl-C, 143 after SIGTERM
    print(
        f"{stats['rows']} points in {args.out}/points.parquet "
        f"({stats['evaluated']} evaluated now, {stats['already_done']} already done, {stats['seconds']:.1f} s)"
    )
    return 0


def _say_what_survives(args: argparse.Namespace) -> None:
    """After Ctrl-C or SIGTERM: how many evaluated points the folder keeps and the command that finishes the rest
    (it used to print only "nmlab sweep: interrupted")."""
    import shlex
    import sys
    from pathlib import Path

    from sweeps import store

    out = Path(args.out)
    kept = len(store.done_ids(out)) if store.parts_dir(out).is_dir() else 0
    argv = ["nmlab", "sweep", *([args.config] if args.config else []), "--out", str(args.out)]
    if args.workers is not None:
        argv += ["--workers", str(args.workers)]
    if args.ray is not None:
        argv += ["--ray"] + ([] if args.ray == "local" else [args.ray])
    if args.quiet:
        argv.append("--quiet")
    again = shlex.join(argv)
    if kept:
        print(f"nmlab sweep: interrupted; the {kept:,} points evaluated so far are kept in {out / 'parts'}; "
              f"the same command evaluates only the rest: {again}", file=sys.stderr)
    else:
        print(f"nmlab sweep: interrupted before any point was stored; start again with: {again}", file=sys.stderr)
