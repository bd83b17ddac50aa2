"""Subcommands owned by reports. Handlers import their modules lazily."""

from __future__ import annotations

import argparse

from hwmodel.limits import cli_int


def register(sub: argparse._SubParsersAction) -> None:
    """Add this package's subcommands to the nmlab parser."""
    p = sub.add_parser("report", help="report of a sweep in DIR/report/: index.html, summary.md, fronts.json, "
                       "quality_vs_hardware.json (+ PNGs with --png)",
                       description="Self-contained HTML (index.html; works offline): what each pattern buys at equal bits and "
                       "what it costs in return, why, and the Pareto fronts; a Markdown summary (summary.md), the "
                       "fronts (fronts.json) and the RL quality vs hardware table (quality_vs_hardware.json) as "
                       "data (docs/reports.md). PNG figures only with --png.")
    p.add_argument("dir", metavar="DIR", help="the --out folder of nmlab sweep (holds points.parquet); the report goes to DIR/report/")
    p.add_argument("--png", action="store_true", help="also draw the matplotlib PNG figures (slower: several seconds)")
    p.add_argument("--no-png", action="store_true", help=argparse.SUPPRESS)  # the default since PNGs became opt-in
    p.add_argument("-q", "--quiet", action="store_true", help="no progress line")
    p.set_defaults(func=_report)

    c = sub.add_parser("check", help="check a design point against latency, energy and SRAM budgets (exit 0 pass, 1 fail)",
                       description="Pass or fail per requirement, with the reason in words. Exit status 0 when all "
                       "pass, 1 when any fails, 2 for bad input. The requirements come from the options below, or from "
                       "a file (--requirements); an option given on the command line overrides the file's value.")
    c.add_argument("design", nargs="?", default=None,
                   help="design YAML file, bundled design name, or GPU spec (e.g. h100_sxm; docs/gpu.md)")
    c.add_argument("--design", dest="design_option", default=None, metavar="DESIGN",
                   help="the design point, as an option (same as the positional DESIGN)")
    c.add_argument("--requirements", default=None, metavar="FILE",
                   help="YAML file of requirements (version: 1; keys designs, workload, latency_budget, energy_budget, "
                   "sram_budget, patterns, bits, batch, scenario, with the options' values; docs/reports.md); its "
                   "designs are checked one after another (exit 1 if any fails). An option given on the command "
                   "line overrides the file's value, DESIGN or --design its designs")
    c.add_argument("--workload", default=None, help="workload file (.nmw); default: the bundled default workload")
    c.add_argument("--latency-budget", default=None, metavar="TIME", help="e.g. 1ms, 250us (units s, ms, us, ns)")
    c.add_argument("--energy-budget", default=None, metavar="ENERGY", help="e.g. 5uJ (units J, mJ, uJ, nJ, pJ)")
    c.add_argument("--sram-budget", default=None, metavar="SIZE",
                   help="e.g. 512KB, 0.5MiB (units B, KB, MB, GB in powers of 1000; KiB, MiB, GiB in powers of 1024); "
                   "default without any budget: "
                   "the design's own SRAM for weights")
    c.add_argument("--patterns", default=None, help="comma list, e.g. 2:4,1:8 (default: the workload's own pattern)")
    c.add_argument("--bits", default=None, help="comma list, e.g. 8,4 (default: 8)")
    c.add_argument("--batch", type=cli_int(1, limit_name="batch"), default=None, help="batch size (default 1 for inference, 256 for train_step)")
    c.add_argument("--scenario", default=None, choices=("inference", "train_step"),
                   help="inference (policy forward, per pass) or train_step (one TD3 update) (default: inference)")
    c.add_argument("--json", action="store_true", help="print the verdicts as JSON")
    c.set_defaults(func=_check)


def _report(args: argparse.Namespace) -> int:
    from reports.build import build_report

    info = build_report(args.dir, pngs=args.png and not args.no_png, progress=not args.quiet)
    pngs = f", {len(info['pngs'])} PNGs" if info["pngs"] else ""
    print(f"report of {info['points']} points, {info['fronts']} fronts in {info['seconds']:.1f} s: {info['dir']}/index.html "
          f"(+ summary.md, fronts.json, quality_vs_hardware.json{pngs})")
    if info["removed_pngs"]:
        n, names = len(info["removed_pngs"]), ", ".join(p.name for p in info["removed_pngs"])
        print(f"removed {n} PNG{'s' if n != 1 else ''} of the previous report that this one does not draw"
              f"{'' if info['pngs'] else ' (no --png)'}: {names}")
    if info["missing_return"]:
        print(f"note: {info['missing_return']} points have no evaluation return ({info['missing_why']}); "
              f"they are left out of the return fronts")
    return 0


def _check(args: argparse.Namespace) -> int:
    from hwmodel.errors import NmlabError
    from reports.check import main

    if args.design and args.design_option and args.design != args.design_option:
        raise NmlabError(f"check: two designs given ({args.design} and --design {args.design_option}); give one")
    args.design = args.design or args.design_option
    if not args.design and args.requirements is None:
        raise NmlabError("check: no design: give DESIGN or --design (an accelerator design or a GPU such as h100_sxm)")
    return main(args)
