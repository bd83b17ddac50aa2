"""``nmlab check``: does a design point meet latency, energy and SRAM budgets? Pass/fail with reasons in words.

Every (pattern, bitwidth) combination asked for is run through :func:`hwmodel.simulate`; a
requirement passes when every combination meets it, and its reason names each
combination's figure, e.g. "weights take 1.2 MB at dense and 8 bits and do not fit in
512 KB of SRAM; at 1:8 and 4 bits they take 170 KB and fit". Exit status: 0 all pass,
1 any fails, 2 bad input (the CLI turns :class:`NmlabError` into one line and status 2).
"""

from __future__ import annotations

import argparse
import json
import math
import re
from dataclasses import asdict, dataclass, field
from typing import Any, Optional

from hwmodel.errors import NmlabError
from hwmodel.limits import MAX_BITS, MIN_BITS
from reports.data import fmt_bytes, fmt_energy, fmt_time

_NUMBER = r"\s*([0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)\s*"
TIME_UNITS = {"s": 1.0, "ms": 1e-3, "us": 1e-6, "µs": 1e-6, "ns": 1e-9}
ENERGY_UNITS_PJ = {"J": 1e12, "mJ": 1e9, "uJ": 1e6, "µJ": 1e6, "nJ": 1e3, "pJ": 1.0}
SIZE_UNITS = {"B": 1, "kB": 1e3, "KB": 1e3, "MB": 1e6, "GB": 1e9, "KiB": 1024, "MiB": 1024 ** 2, "GiB": 1024 ** 3}


def parse_quantity(text: str, units: dict[str, float], option: str) -> float:
    """``"1.5ms"`` -> value in the base unit of ``units`` (first key scale 1). One-line errors name ``option``."""
    if not isinstance(text, str) or not text.strip():
        raise NmlabError(f"{option}: empty value")
    m = re.fullmatch(_NUMBER + r"(\S*)\s*", text)
    names = ", ".join(u for u in units if u != "µs" and u != "µJ")
    if not m:
        raise NmlabError(f"{option}: {text!r} is not a number with a unit (use {names})")
    value, unit = float(m.group(1)), m.group(2)
    if not unit:
        raise NmlabError(f"{option}: {text!r} needs a unit ({names})")
    if unit not in units:
        raise NmlabError(f"{option}: unknown unit {unit!r} in {text!r} (use {names})")
    if value <= 0:
        raise NmlabError(f"{option}: must be > 0, got {text!r}")
    if not math.isfinite(value * units[unit]):
        raise NmlabError(f"{option}: {text!r} is too large to be a finite number")
    return value * units[unit]


def parse_bits_list(text: str) -> list[int]:
    out = []
    for item in text.split(","):
        item = item.strip()
        if not item.isdigit() or not MIN_BITS <= int(item) <= MAX_BITS:
            raise NmlabError(f"--bits: {item!r} is not a bitwidth from {MIN_BITS} to {MAX_BITS} (e.g. --bits 8,4)")
        if int(item) not in out:
            out.append(int(item))
    return out


def parse_patterns_list(text: str) -> list[str]:
    """Comma list of sweep patterns: dense, N:M, unstructured (the workload's own masks) or unstructured:S."""
    from sweeps.config import parse_grid_pattern

    # First occurrence kept, in order; a dict, not a list's "in", as the sweep config's patterns do.
    return list(dict.fromkeys(parse_grid_pattern(item.strip(), "--patterns") for item in text.split(",")))


@dataclass
class Combination:
    """The model's figures for one (pattern, bits) of the checked design point."""

    pattern: str
    bits: int
    mask_source: str
    latency_s: float
    energy_pj: float
    model_bytes: float
    fits_in_sram: bool
    #: what the design runs where it does not run ``pattern`` itself ("2:4 (every group of 4 of the mask holds
    #: <= 2)", from the forward GEMMs' mappings); "" where it runs the pattern as it is
    runs_as: str = ""

    @property
    def where(self) -> str:
        return f"{self.pattern} and {self.bits} bits"


@dataclass
class Requirement:
    name: str           # "latency", "energy", "sram"
    budget_text: str
    passed: bool
    reason: str
    passing: list[str] = field(default_factory=list)  # combinations that meet it


def _ratio(r: float) -> str:
    """``r`` to 3 significant digits, more when those read "1" (a figure just over its budget read "over (1x)")."""
    digits = 3
    while f"{r:.{digits}g}" == "1" and digits < 12:
        digits += 1
    if r >= 10 ** digits:
        # 3 significant digits of 36,457 are "3.65e+04": written out in full instead ("36,500").
        return f"{float(f'{r:.{digits}g}'):,.0f}"
    return f"{r:.{digits}g}"


def _digits_against(value: float, budget: float) -> int:
    """Significant digits that put ``value`` on its own side of ``budget`` when printed: 3, more
    where 3 round across it (19.987 us read "20 us ... within the 19.99us budget")."""
    digits = 3
    while digits < 12:
        shown = float(f"{value:.{digits}g}")
        if (shown <= budget) == (value <= budget) and (shown == budget) == (value == budget):
            break
        digits += 1
    return digits


def _budget_req(name: str, combos: list[Combination], value_of, budget: float, text: str,
                fmt, lead: str) -> Requirement:
    """A "value <= budget" requirement over every combination, explained in words.

    ``value_of`` reads the figure from a combination, ``fmt`` prints it, ``lead`` is the first
    clause's wording (e.g. "latency is {v}").
    """
    parts = []
    for i, c in enumerate(combos):
        value = value_of(c)
        verdict = "within" if value <= budget else f"over ({_ratio(value / budget)}x)"
        shown = fmt(value, _digits_against(value, budget))
        parts.append(f"{lead.format(v=shown)} at {c.where}, {verdict} the {text} budget"
                     if i == 0 else f"at {c.where} it is {shown}, {verdict} the budget")
    passing = [c.where for c in combos if value_of(c) <= budget]
    return Requirement(name, text, len(passing) == len(combos), "; ".join(parts), passing)


def _sram_req(combos: list[Combination], budget_bytes: float, text: str, memory: str = "SRAM") -> Requirement:
    """Stored weights (N:M metadata included) <= ``budget_bytes``; ``memory`` names what holds them."""
    parts = []
    for i, c in enumerate(combos):
        fits = "fit" if c.model_bytes <= budget_bytes else "do not fit"
        if i == 0:
            parts.append(f"weights take {fmt_bytes(c.model_bytes)} at {c.where} and {fits} in {text} of {memory}")
        else:
            parts.append(f"at {c.where} they take {fmt_bytes(c.model_bytes)} and {fits}")
    passing = [c.where for c in combos if c.model_bytes <= budget_bytes]
    return Requirement("sram", text, len(passing) == len(combos), "; ".join(parts), passing)


def evaluate_combinations(design, workload, patterns: list[str], bits: list[int], batch: int, scenario: str) -> list[Combination]:
    """Simulate each (pattern, bits); patterns other than the workload's own are pruned one-shot."""
    from hwmodel.simulate import simulate
    from hwmodel.sparsity import parse_pattern
    from sweeps.evaluate import model_bytes, prune_one_shot

    own = {str(parse_pattern(layer.pattern)) for layer in workload.layers}
    combos = []
    for p in patterns:
        same = own == {p}
        if p == "unstructured" and not same:
            # It said "pattern: 'unstructured' keeps trained masks ..." without naming --patterns
            # or saying the workload has none.
            raise NmlabError(f"--patterns: 'unstructured' means the workload's own unstructured masks, and this "
                             f"workload's layers are {', '.join(sorted(own))}; to prune one-shot give a sparsity such "
                             f"as unstructured:0.9")
        wl = workload if same else prune_one_shot(workload, p)
        for b in bits:
            res = simulate(wl, design, batch=batch, bits=b, scenario=scenario)
            t = res.total
            combos.append(Combination(p, b, "as trained" if same else "one-shot", t.latency_s, t.energy_pj,
                                      model_bytes(res), bool(res.fits_in_sram), _runs_as(res)))
    return combos


def _runs_as(res) -> str:
    """What the design runs in place of the workload's sparse patterns (:func:`hwmodel.mapping.runs_as` of the
    result's GEMMs). A 1:4 agent on a 2:4-only design reads exactly as a 2:4 one, and said nothing why."""
    from hwmodel.mapping import runs_as

    return runs_as((layer.phase, layer.pattern, layer.hw_pattern, layer.mapping_note) for layer in res.layers)


def run_check(design_ref: str, workload_path: Optional[str], latency: Optional[str], energy: Optional[str],
              sram: Optional[str], patterns: Optional[str], bits: Optional[str], batch: Optional[int],
              scenario: str) -> dict[str, Any]:
    """Parse, simulate and judge; returns a dict (requirements, combinations, passed). Bad input raises NmlabError."""
    from hwmodel.gpu.design_point import gpu_design, load_design_point  # an accelerator design or a GPU spec
    from hwmodel.workload import default_workload, load_workload

    latency_s = parse_quantity(latency, TIME_UNITS, "--latency-budget") if latency is not None else None
    energy_pj = parse_quantity(energy, ENERGY_UNITS_PJ, "--energy-budget") if energy is not None else None
    sram_b = parse_quantity(sram, SIZE_UNITS, "--sram-budget") if sram is not None else None
    if batch is not None and batch < 1:
        raise NmlabError(f"--batch: must be a positive integer, got {batch}")
    design = load_design_point(design_ref)
    wpath = workload_path or str(default_workload())
    workload = load_workload(wpath)
    # An empty --patterns or --bits is bad input, not a request for the defaults.
    if patterns is not None:
        pats = parse_patterns_list(patterns)
    else:
        from hwmodel.sparsity import parse_pattern

        own = sorted({str(parse_pattern(layer.pattern)) for layer in workload.layers})
        if len(own) != 1:
            raise NmlabError(f"--patterns: the workload mixes patterns {', '.join(own)}; name the ones to check")
        pats = own
    if bits is not None:
        bit_list = parse_bits_list(bits)
    else:
        bit_list = [8]
        try:
            design.datatype_for(8)
        except NmlabError:
            bit_list = [max(b for b in range(1, 33) if _supports(design, b))]
    for b in bit_list:
        design.datatype_for(b)  # NmlabError naming the design's datatypes
    batch = batch or (1 if scenario == "inference" else 256)
    combos = evaluate_combinations(design, workload, pats, bit_list, batch, scenario)
    unit = "inference" if scenario == "inference" else "training step"
    reqs = []
    if latency_s is not None:
        reqs.append(_budget_req("latency", combos, lambda c: c.latency_s, latency_s, latency.strip(), fmt_time, "latency is {v}"))
    if energy_pj is not None:
        reqs.append(_budget_req("energy", combos, lambda c: c.energy_pj, energy_pj, energy.strip(), fmt_energy,
                                f"energy is {{v}} per {unit}"))
    if sram_b is not None:
        reqs.append(_sram_req(combos, sram_b, sram.strip()))
    if not reqs:
        own = design.weight_sram_bytes()
        if gpu_design(design) is not None:
            # A GPU's on-chip store is its L2, and its timing model reads the weights from DRAM on
            # every call: the fit is reported as the L2's, with no time attached to it.
            reqs.append(_sram_req(combos, own, f"the GPU's {fmt_bytes(own)}",
                                  "L2 (the GPU model reads the weights from DRAM on every call, fit or not)"))
        else:
            reqs.append(_sram_req(combos, own, f"the design's {fmt_bytes(own)}"))
    all_ok = [c.where for c in combos if all(c.where in r.passing for r in reqs)]
    return {
        "design": design.name, "workload": wpath, "scenario": scenario, "batch": batch,
        "combinations": [asdict(c) for c in combos], "requirements": [asdict(r) for r in reqs],
        "meeting_all": all_ok, "passed": all(r.passed for r in reqs),
    }


def _supports(design, bits: int) -> bool:
    try:
        design.datatype_for(bits)
        return True
    except NmlabError:
        return False


def main(args: argparse.Namespace) -> int:
    """CLI entry: print verdicts; 0 all pass, 1 any fails (2 comes from NmlabError in the dispatcher)."""
    result = run_check(args.design, args.workload, args.latency_budget, args.energy_budget, args.sram_budget,
                       args.patterns, args.bits, args.batch, args.scenario)
    if args.json:
        print(json.dumps(result, indent=1))
    else:
        print(f"design {result['design']}, workload {result['workload']}, {result['scenario']} at batch {result['batch']}")
        for pattern, runs in dict.fromkeys((c["pattern"], c["runs_as"]) for c in result["combinations"] if c["runs_as"]):
            print(f"note: {result['design']} runs {pattern} as {runs}")
        for r in result["requirements"]:
            print(f"{'PASS' if r['passed'] else 'FAIL'} {r['name']} <= {r['budget_text']}: {r['reason']}")
        n_fail = sum(not r["passed"] for r in result["requirements"])
        n_req = len(result["requirements"])
        meeting = ", ".join(result["meeting_all"]) or "none"
        verdict = "all requirements pass" if not n_fail else f"{n_fail} of {n_req} requirements fail"
        print(f"{verdict}; combinations meeting every requirement: {meeting}")
    return 0 if result["passed"] else 1
