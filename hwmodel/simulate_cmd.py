"""CLI registration for `nmlab simulate` (hardware model). Handlers import heavy modules lazily."""

from __future__ import annotations

import argparse

from hwmodel.limits import MAX_BITS, MIN_BITS, cli_int


def register(sub: argparse._SubParsersAction) -> None:
    """Add subcommands to the nmlab parser."""
    p = sub.add_parser("simulate", help="model a workload on an accelerator design (cycles, traffic, energy)")
    p.add_argument("--workload", help="workload file (.nmw); default: the bundled default workload")
    p.add_argument("--design", required=True, help="design YAML file or bundled design name (e.g. edge_ws), or a GPU spec (e.g. h100_sxm, docs/gpu.md)")
    p.add_argument("--batch", type=cli_int(1, limit_name="batch"), default=1, help="batch rows per GEMM (default 1: the control loop, also for train_step; TD3 trains at 256)")
    p.add_argument("--bits", type=_bits, default=8,
                   help="weight bitwidth (default 8; overrides the workload's), or 'workload' for the "
                        "workload's own weight_bits (a QAT export's 8, say)")
    p.add_argument("--scenario", choices=("inference", "train_step"), default="inference",
                   help="inference (policy forward, default) or train_step (one TD3 update per env step)")
    p.add_argument("--residency", choices=("auto", "cold", "stream"), default="auto",
                   help="auto (default): steady state, weights stay in SRAM when they fit; cold: first call, no weight "
                        "resident, every GEMM reads its weights from DRAM (the figures of stream); stream: weights "
                        "always streamed from DRAM")
    p.add_argument("--json", action="store_true", help="print JSON (totals, networks, layers)")
    p.set_defaults(func=_simulate)


def _bits(text: str):
    """--bits: a positive integer or "workload" (None: the workload's weight_bits)."""
    if text.strip().lower() == "workload":
        return None
    try:
        return cli_int(MIN_BITS, MAX_BITS)(text)
    except argparse.ArgumentTypeError as exc:
        raise argparse.ArgumentTypeError(f"{exc} (a bitwidth such as 8, or 'workload')") from None


def _fmt(x: float) -> str:
    """Compact engineering notation for a table cell."""
    ax = abs(x)
    for div, suffix in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if ax >= div:
            return f"{x / div:.3g}{suffix}"
    return f"{x:.3g}"


def _fmt_seconds(s: float) -> str:
    """A latency in the largest of s, ms, us that writes it as 1 or more, three significant digits: "14.5 us",
    "1.99 ms" (``{s * 1e6:.3g} us`` printed "1.99e+03 us" from 1 ms up)."""
    for unit, scale in (("s", 1.0), ("ms", 1e-3)):
        v = f"{s / scale:.3g}"
        if float(v) >= 1:
            return f"{v} {unit}"
    return f"{s * 1e6:.3g} us"


def _check_design_name(ref: str) -> None:
    """A --design that is neither a path nor a bundled name: one line listing both kinds it
    takes (the design loader's own message names only the accelerator designs)."""
    from hwmodel.design import bundled_designs
    from hwmodel.errors import NmlabError
    from hwmodel.gpu.design_point import bundled_gpu_names
    from hwmodel.limits import exists

    designs = bundled_designs()
    if exists(ref) or ref in designs:
        return  # without listing the GPUs: that parses every bundled GPU spec
    gpus = bundled_gpu_names()
    if ref not in gpus:
        raise NmlabError(f"design: no such file, bundled design or GPU spec: {ref[:300]} "
                         f"(designs: {', '.join(designs)}; GPUs: {', '.join(gpus)})")


def _simulate(args: argparse.Namespace) -> int:
    import json

    from hwmodel.limits import finite_or_none
    from hwmodel.result import ENERGY_COMPONENTS
    from hwmodel.simulate import simulate
    from hwmodel.workload import default_workload

    path = args.workload or default_workload()
    _check_design_name(args.design)
    res = simulate(path, args.design, batch=args.batch, bits=args.bits, scenario=args.scenario,
                   residency=args.residency)
    if args.json:
        doc = res.to_dict()
        doc["workload"] = str(path)
        doc["extra"] = res.extra
        # A GPU point's accelerator-only extras (technology_nm) are NaN: JSON has no NaN, they print null.
        print(json.dumps(finite_or_none(doc), indent=1, allow_nan=False))
        return 0
    s = res.summary()
    print(f"workload {path}")
    if "gpu" in res.extra:
        # The GPU model reads every GEMM's weights from DRAM (L2 cold) whatever --residency says:
        # "resident" would claim a reuse its times do not have.
        where = (f"{_fmt(res.sram_bytes)}B L2: {'fit' if res.extra['weights_resident'] else 'do not fit'}, read from "
                 f"DRAM on every call (L2 cold; --residency does not apply to a GPU)")
    else:
        where = (f"{_fmt(res.sram_bytes)}B SRAM: "
                 f"{'resident' if res.extra['weights_resident'] else 'streamed from DRAM'}")
    print(f"design {res.design}: {res.scenario}, batch {res.batch}, {res.bits}-bit ({res.extra['datatype']}), "
          f"weights {_fmt(res.extra['bytes_weights_stored'])}B stored vs {where}")
    head = (f"{'layer':<26}{'phase':<16}{'M':>5}{'K':>6}{'N':>6} {'pattern':<13}{'hw':<13}{'cycles':>9}"
            f"{'stall':>8}{'util':>6}{'energy_pj':>11}{'speedup':>8}{'E/dense':>8}  note")
    print(head)
    for r in res.layers:
        f = r.figures
        print(f"{r.name:<26}{r.phase:<16}{r.m:>5}{r.k:>6}{r.n:>6} {r.pattern:<13}{r.hw_pattern:<13}{_fmt(f.cycles):>9}"
              f"{_fmt(f.stall_cycles_dram + f.stall_cycles_metadata):>8}{f.utilization(res.peak_macs_per_cycle):>6.2f}"
              f"{_fmt(f.energy_pj):>11}{r.speedup_vs_dense:>8.2f}{r.energy_ratio_vs_dense:>8.2f}  {r.mapping_note}")
    print("per network:")
    for name in res.network_names():
        f, dn = res.network(name), res.network_dense(name)
        print(f"  {name:<18} cycles {_fmt(f.cycles):>8}  energy {_fmt(f.energy_pj):>8} pJ  "
              f"speedup {dn.cycles / f.cycles if f.cycles else 1:.2f}  E/dense {f.energy_pj / dn.energy_pj if dn.energy_pj else 1:.2f}")
    t = res.total
    parts = "  ".join(f"{c} {_fmt(getattr(t, f'energy_{c}_pj'))}" for c in ENERGY_COMPONENTS)
    print(f"total: {_fmt(s['cycles'])} cycles, {_fmt_seconds(s['latency_s'])}, utilization {s['utilization']:.3f}, "
          f"energy {_fmt(s['energy_pj'])} pJ, speedup vs dense {s['speedup_vs_dense']:.2f}, "
          f"energy ratio vs dense {s['energy_ratio_vs_dense']:.2f}")
    print(f"energy by component (pJ): {parts}")
    if "gpu" in res.extra:  # a GPU's energy is time x an assumed board power: say which, and the limit's source
        # And whose timings its latency rests on (a GPU without any: another card's fitted set).
        from hwmodel.gpu.design_point import gpu_design, spec_fitted_note

        note = spec_fitted_note(gpu_design(args.design).spec)
        print(f"latency model: {res.extra['gpu']['latency_model']}" + (f" ({note})" if note else ""))
        print(f"energy model: {res.extra['gpu']['power_model']}; mac = the part above the floor, leakage = the floor")
    area = f"{res.area_mm2:.3g} mm^2 SRAM (CACTI 7)" if res.area_mm2 is not None else res.extra["area_note"]
    print(f"area: {area}")
    return 0
