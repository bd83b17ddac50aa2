"""CLI registration for `nmlab crosscheck`, `nmlab export-timeloop` and `nmlab import-timeloop`. Handlers import heavy modules lazily."""

from __future__ import annotations

import argparse
import json
import sys

from hwmodel.limits import MAX_BITS, MIN_BITS, cli_int


def register(sub: argparse._SubParsersAction) -> None:
    """Add subcommands to the nmlab parser."""
    from hwmodel.cli import subgroup

    cross = subgroup(sub, "crosscheck", "run a peer simulator and our model side by side")
    p = cross.add_parser("scalesim", help="SCALE-Sim v3 vs our model: compute cycles per GEMM shape (WS systolic)")
    p.add_argument("--gemm", action="extend", nargs="+", required=True, metavar="M,K,N[,n:m]",
                   help="GEMM shape: M batch rows, K reduction, N outputs, optional layer-wise n:m (repeatable)")
    p.add_argument("--array", metavar="R,C",
                   help="systolic array rows (along K), columns (along N), the design resized to it; default: the "
                        "design's own (scalesim_default_ws: 32,32, SCALE-Sim's default)")
    p.add_argument("--design", default="scalesim_default_ws",
                   help="WS systolic design file or bundled name (default scalesim_default_ws); its array unless "
                        "--array, and its SRAM sizes go to SCALE-Sim too")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(func=_crosscheck_scalesim)

    p = sub.add_parser("export-timeloop", help="write Timeloop v0.4 / Sparseloop / Accelergy files for one layer on a design")
    p.add_argument("--design", required=True, help="design YAML file or bundled design name (e.g. edge_ws)")
    p.add_argument("--workload", help="workload file (.nmw); default: the bundled default workload")
    p.add_argument("--layer", required=True, help="layer name in the workload, e.g. actor.fc1 (its forward GEMM)")
    p.add_argument("--out", required=True, help="output folder (written atomically)")
    p.add_argument("--batch", type=cli_int(1, limit_name="batch"), default=1, help="batch rows M of the GEMM (default 1)")
    p.add_argument("--bits", type=cli_int(MIN_BITS, MAX_BITS), default=8, help="weight bitwidth (default 8)")
    p.set_defaults(func=_export_timeloop)

    p = sub.add_parser("import-timeloop", help="write an nmlab design YAML from a Timeloop v0.4 architecture")
    p.add_argument("arch", help="Timeloop arch YAML: v0.4 subtree/local form (as export-timeloop writes, or timeloopfe's "
                                     "parsed-processed-input.yaml), v0.4 nodes form (!Container/!Component, as "
                                     "timeloop-accelergy-exercises), or v0.2/v0.3 subtree form; Jinja2 templates and "
                                     "!Include are refused (process the spec with timeloopfe first)")
    p.add_argument("--constraints", help="Timeloop constraints YAML: dataspace keep -> the operands each level holds, "
                                         "spatial permutation -> the dataflow (default: the arch file's own "
                                         "constraints, else every level holds all, WS)")
    p.add_argument("--sparse-opt", help="Sparseloop sparse_optimizations YAML: the weight format -> N:M or "
                                        "unstructured support (default: the arch file's own, else dense)")
    p.add_argument("--ert", help="Accelergy ERT YAML (pJ per action): its energies replace nmlab's in the design's "
                                 "energy: section (default: nmlab's own energies)")
    p.add_argument("--problem", help="Timeloop problem YAML: its K, needed with --ert on an unstructured arch "
                                     "(the ERT's MAC energy includes a distribution network over K inputs)")
    p.add_argument("--out", required=True, help="design YAML to write (atomically)")
    p.add_argument("--name", help="design name (default: the --out file name without .yaml)")
    p.set_defaults(func=_import_timeloop)


def _crosscheck_scalesim(args: argparse.Namespace) -> int:
    from hwmodel.peers.crosscheck import crosscheck, format_table, ws_design
    from hwmodel.peers.scalesim import parse_array, parse_gemm, ws_compute_cycles_reference

    gemms = [parse_gemm(g) for g in args.gemm]       # validate everything before the slow part
    design = ws_design(args.design)
    own = (design.compute.rows, design.compute.cols)
    rows, cols = own if args.array is None else parse_array(args.array)
    if args.array is None:
        source = "the design's own"
    elif (rows, cols) == own:
        source = "--array, the design's own"
    else:
        source = f"--array; design {design.name}'s own is {own[0]}x{own[1]}"
    cycles = sum(ws_compute_cycles_reference(g, rows, cols) for g in gemms)
    if cycles > 200_000:
        # SCALE-Sim simulates about 10,000 cycles per second (docs/crosscheck.md).
        print(f"nmlab crosscheck: SCALE-Sim will simulate {cycles:,} cycles, about {cycles / 1e4:,.0f} s",
              file=sys.stderr)
    results = crosscheck(gemms, rows, cols, design=args.design)
    if args.json:
        print(json.dumps({"array": [rows, cols], "array_source": "design" if args.array is None else "--array",
                          "design": args.design, "design_array": list(own),
                          "all_equal": all(r.equal for r in results),
                          "shapes": [r.to_dict() for r in results]}, indent=1))
    else:
        print(f"array {rows}x{cols} ({source}), design {args.design}")
        print(format_table(results, design.name))
    return 0


def _export_timeloop(args: argparse.Namespace) -> int:
    from hwmodel.timeloop import FILES, export_timeloop
    from hwmodel.workload import default_workload

    out = export_timeloop(args.design, args.workload or default_workload(), args.layer, args.out,
                          batch=args.batch, bits=args.bits)
    print(f"wrote {out}/: {', '.join(FILES)}")
    return 0


def _import_timeloop(args: argparse.Namespace) -> int:
    from hwmodel.timeloop_import import import_timeloop

    out, defaults = import_timeloop(args.arch, args.out, constraints=args.constraints, sparse_opt=args.sparse_opt,
                                    name=args.name, ert=args.ert, problem=args.problem)
    print(f"nmlab import-timeloop: defaulted (not in the Timeloop files; listed in {out}): "
          + "; ".join(defaults), file=sys.stderr)
    print(f"wrote {out}")
    return 0
