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
        # as nmlab campaign says: K was silently ignored where the cluster's CPUs run the chunks
        raise NmlabError("--workers: sets the local pool's or local Ray instance's CPUs; a cluster (--ray ADDRESS) "
                         "has its own")
    stats = api.run(args.config, args.out, workers=args.workers, use_ray=args.ray is not None,
                    ray_address=args.ray, progress=not args.quiet)
    print(
        f"{stats['rows']} points in {args.out}/points.parquet "
        f"({stats['evaluated']} evaluated now, {stats['already_done']} already done, {stats['seconds']:.1f} s)"
    )
    return 0
