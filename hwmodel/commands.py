"""Subcommands owned by hwmodel. Handlers import their modules lazily."""

from __future__ import annotations

import argparse
import json


def register(sub: argparse._SubParsersAction) -> None:
    from hwmodel import gpu_cmd, peer_cmd, simulate_cmd

    simulate_cmd.register(sub)
    peer_cmd.register(sub)
    gpu_cmd.register(sub)
    p = sub.add_parser("workload", help="inspect a workload file (layers, shapes, patterns, padding)")
    p.add_argument("file", nargs="?", metavar="FILE", help="workload file (.nmw); default: the bundled default workload")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(func=_workload_info)


def _workload_info(args: argparse.Namespace) -> int:
    from hwmodel.limits import one_line
    from hwmodel.sparsity import group_padding, parse_pattern
    from hwmodel.workload import default_workload, load_workload

    path = args.file or default_workload()
    wl = load_workload(path)
    rows = []
    for layer in wl.layers:
        p = parse_pattern(layer.pattern)
        rows.append(
            {
                "name": layer.name,
                "network": layer.network,
                "in_features": layer.in_features,
                "out_features": layer.out_features,
                "pattern": layer.pattern,
                "weight_bits": layer.weight_bits,
                "density": round(layer.density, 6),
                "padding_columns": group_padding(layer.in_features, p),
                "has_weight": layer.weight is not None,
            }
        )
    if args.json:
        print(json.dumps({"file": str(path), "meta": wl.meta, "layers": rows}, indent=1))
        return 0
    print(f"{path}")
    for key, value in wl.meta.items():
        # meta is free text of the file's: a newline split its line, an escape sequence reached the terminal
        print(f"  {one_line(key)}: {one_line(value)}")
    print(f"{'layer':<24}{'network':<16}{'in':>6}{'out':>6}  {'pattern':<13}{'bits':>4}{'density':>9}{'pad':>5}")
    for r in rows:
        print(
            f"{r['name']:<24}{r['network']:<16}{r['in_features']:>6}{r['out_features']:>6}  "
            f"{r['pattern']:<13}{r['weight_bits']:>4}{r['density']:>9.4f}{r['padding_columns']:>5}"
        )
    return 0
