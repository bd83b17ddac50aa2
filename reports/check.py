"""``nmlab check``: does a design point meet latency, energy and SRAM budgets? Pass/fail with reasons in words.

Every (pattern, bitwidth) combination asked for is run through :func:`hwmodel.simulate`; a
requirement passes when every combination meets it, and its reason names each
combination's figure, e.g. "weights take 1.2 MB at dense and 8 bits and do not fit in
512 KB of SRAM; at 1:8 and 4 bits they take 170 KB and fit". Exit status: 0 all pass,
1 any fails, 2 bad input (the CLI turns :class:`NmlabError` into one line and status 2).

The budgets and the rest come from options, or from a requirements file (``--requirements FILE``,
:func:`load_requirements`; format in docs/reports.md), whose values an option given on the
command line overrides.
"""

from __future__ import annotations

import argparse
import decimal
import json
import math
import os
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Optional

from hwmodel import agents
from hwmodel.agents import MIXED
from hwmodel.errors import NmlabError
from hwmodel.limits import (MAX_BITS, MIN_BITS, check_version, config_path, is_file, is_int, limit, load_yaml,
                            not_a_file, other_kind, over_limit, short)
from hwmodel.program import SCENARIOS
from reports.data import fmt_bytes, fmt_energy, fmt_ratio, fmt_time

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
    # The decimal number times the unit, rounded once: '3426.794us' is the double nearest 0.003426794 s,
    # as '3.426794ms' is (3426.794 x 1e-6 in floats rounds twice, to 0.0034267939999999997).
    with decimal.localcontext(decimal.Context(prec=len(m.group(1)) + 40, Emax=decimal.MAX_EMAX,
                                              Emin=decimal.MIN_EMIN)):
        exact = float(decimal.Decimal(m.group(1)) * decimal.Decimal(repr(units[unit])))
    if not math.isfinite(exact):
        raise NmlabError(f"{option}: {text!r} is too large to be a finite number")
    if exact <= 0:
        raise NmlabError(f"{option}: {text!r} is too small to be a positive number")
    return exact


def parse_bits_list(text: str, option: str = "--bits") -> list[int]:
    out = []
    for item in text.split(","):
        item = item.strip()
        if not item.isdigit() or not MIN_BITS <= int(item) <= MAX_BITS:
            raise NmlabError(f"{option}: {item!r} is not a bitwidth from {MIN_BITS} to {MAX_BITS} (e.g. 8,4)")
        if int(item) not in out:
            out.append(int(item))
    return out


def parse_patterns_list(text: str, option: str = "--patterns") -> list[str]:
    """Comma list of sweep patterns: dense, N:M, unstructured (the workload's own masks) or unstructured:S."""
    from sweeps.config import parse_grid_pattern

    # First occurrence kept, in order; a dict, not a list's "in", as the sweep config's patterns do.
    return list(dict.fromkeys(parse_grid_pattern(item.strip(), option) for item in text.split(",")))


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
    """``r`` as the report writes a ratio (:func:`reports.data.fmt_ratio`: 3 significant digits, trailing zeros
    kept), with more digits where 3 read as exactly 1 (a figure just over its budget read "over (1x)")."""
    digits = 3
    while f"{r:.{digits}g}" == "1" and digits < 12:  # rounds to 1 at these digits (fmt_ratio would write "1.00")
        digits += 1
    return fmt_ratio(r, digits)


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


def evaluate_combinations(design, workload, patterns: list[str], bits: list[int], batch: int, scenario: str,
                          patterns_label: str = "--patterns") -> list[Combination]:
    """Simulate each (pattern, bits); patterns other than the workload's own are pruned one-shot
    (``patterns_label``: where the patterns came from, for errors)."""
    from hwmodel.simulate import simulate
    from hwmodel.sparsity import parse_pattern
    from sweeps.evaluate import prune_one_shot

    own = {str(parse_pattern(layer.pattern)) for layer in workload.layers}
    own_label = workload_pattern(workload)
    combos = []
    for p in patterns:
        same = own_label == p
        if p == MIXED and not same:
            raise NmlabError(f"{patterns_label}: 'mixed' means the workload's own per-layer patterns, and this "
                             f"workload's own pattern is {own_label}")
        if p == "unstructured" and not same:
            # It said "pattern: 'unstructured' keeps trained masks ..." without naming --patterns
            # or saying the workload has none.
            raise NmlabError(f"{patterns_label}: 'unstructured' means the workload's own unstructured masks, and this "
                             f"workload's layers are {', '.join(sorted(own))}; to prune one-shot give a sparsity such "
                             f"as unstructured:0.9")
        wl = workload if same else prune_one_shot(workload, p)
        for b in bits:
            res = simulate(wl, design, batch=batch, bits=b, scenario=scenario)
            t = res.total
            # Stored weights incl. metadata of the networks the scenario runs, each layer once (simulate()
            # reports it for accelerators and GPUs alike; Figures.bytes_weights sums over the GEMMs).
            combos.append(Combination(p, b, "as trained" if same else "one-shot", t.latency_s, t.energy_pj,
                                      float(res.extra["bytes_weights_stored"]), bool(res.fits_in_sram), _runs_as(res)))
    return combos


def workload_pattern(workload) -> str:
    """The workload's own pattern as the sweep names it (:func:`hwmodel.agents.workload_pattern`):
    ``unstructured``, the one N:M pattern of its sparse layers, ``dense`` or ``mixed``."""
    return agents.workload_pattern(workload.layers, workload.meta)


def _runs_as(res) -> str:
    """What the design runs in place of the workload's sparse patterns (:func:`hwmodel.mapping.runs_as` of the
    result's GEMMs). A 1:4 agent on a 2:4-only design reads exactly as a 2:4 one, and said nothing why."""
    from hwmodel.mapping import runs_as

    return runs_as((layer.phase, layer.pattern, layer.hw_pattern, layer.mapping_note) for layer in res.layers)


#: The requirements file format version this module reads (``version:``, required).
REQUIREMENTS_VERSION = 1
#: Keys of a requirements file: each option of ``nmlab check`` it may hold (``latency_budget``
#: or ``latency-budget``), plus ``version`` and ``designs``.
REQUIREMENT_KEYS = ("version", "designs", "workload", "latency_budget", "energy_budget", "sram_budget",
                    "patterns", "bits", "batch", "scenario")


@dataclass
class RequirementsFile:
    """A validated requirements file: option values in the options' own text ("1ms", "2:4,1:8",
    "8,4"; None where the file does not give the key), paths resolved against the file's folder."""

    source: str
    designs: list[str] = field(default_factory=list)
    #: where each design is in the file, for errors ("designs[1]")
    design_keys: list[str] = field(default_factory=list)
    workload: Optional[str] = None
    latency_budget: Optional[str] = None
    energy_budget: Optional[str] = None
    sram_budget: Optional[str] = None
    patterns: Optional[str] = None
    bits: Optional[str] = None
    batch: Optional[int] = None
    scenario: Optional[str] = None


def parse_requirements(data: Any, source: str, base: Path = Path(".")) -> RequirementsFile:
    """Validate the loaded YAML ``data`` of requirements file ``source``; every error is one line
    ``requirements: <source>: <key>: ...``. Relative paths are relative to ``base``."""
    head = f"requirements: {source}"
    if data is None:
        raise NmlabError(f"{head}: empty (no keys)")
    if not isinstance(data, dict):
        raise NmlabError(f"{head}: must be a YAML mapping of keys to values, got a {type(data).__name__}")
    values: dict[str, Any] = {}
    spelled: dict[str, str] = {}
    for key, value in data.items():
        name = key.replace("-", "_") if isinstance(key, str) else key
        if name not in REQUIREMENT_KEYS:
            raise NmlabError(f"{head}: {short(str(key))[1:-1]}: unknown key (known: {', '.join(REQUIREMENT_KEYS)})"
                             f"{other_kind(data, 'check requirements')}")
        if name in values:
            raise NmlabError(f"{head}: {name}: given twice (as {spelled[name]} and {key})")
        values[name], spelled[name] = value, key
    if "version" not in values:
        raise NmlabError(f"{head}: version: missing (this nmlab reads {REQUIREMENTS_VERSION}: "
                         f"begin the file with version: {REQUIREMENTS_VERSION})")
    check_version(values["version"], (REQUIREMENTS_VERSION,), f"{head}: version")
    out = RequirementsFile(source)

    def where(name: str) -> str:
        return f"{head}: {spelled[name]}"

    if "designs" in values:
        d = values["designs"]
        items = [d] if isinstance(d, str) else d
        if not isinstance(items, list) or not items:
            raise NmlabError(f"{where('designs')}: must be a design name, path or GPU spec, or a non-empty list "
                             f"of them, got {short(d)}")
        out.design_keys = [f"{spelled['designs']}[{i}]" if isinstance(d, list) else spelled["designs"]
                           for i in range(len(items))]
        out.designs = [config_path(item, f"{head}: {key}", base, must_exist=False)
                       for item, key in zip(items, out.design_keys)]
    if "workload" in values:
        out.workload = config_path(values["workload"], where("workload"), base, must_exist=True)
    for name, units, example in (("latency_budget", TIME_UNITS, "1ms"), ("energy_budget", ENERGY_UNITS_PJ, "5uJ"),
                                 ("sram_budget", SIZE_UNITS, "512KB")):
        if name in values:
            v = values[name]
            if not isinstance(v, str):
                raise NmlabError(f"{where(name)}: must be a number with a unit such as '{example}', got {short(v)}")
            parse_quantity(v, units, where(name))
            setattr(out, name, v)
    if "patterns" in values:
        from sweeps.config import parse_grid_pattern

        v = values["patterns"]
        if isinstance(v, str):
            out.patterns = ",".join(parse_patterns_list(v, where("patterns")))
        elif isinstance(v, list) and v:
            pats = [parse_grid_pattern(item, f"{where('patterns')}[{i}]") for i, item in enumerate(v)]
            out.patterns = ",".join(dict.fromkeys(pats))
        else:
            # A lone unquoted 2:4 is YAML's base-60 integer 124: parse_grid_pattern says so.
            if not isinstance(v, list):
                parse_grid_pattern(v, where("patterns"))
            raise NmlabError(f"{where('patterns')}: must be a non-empty list of patterns or a comma list such as "
                             f"'2:4,1:8', got {short(v)}")
    if "bits" in values:
        v = values["bits"]
        if isinstance(v, str):
            out.bits = ",".join(map(str, parse_bits_list(v, where("bits"))))
        else:
            items = [v] if is_int(v) else v
            if not isinstance(items, list) or not items:
                raise NmlabError(f"{where('bits')}: must be a bitwidth or a non-empty list of them, got {short(v)}")
            for i, b in enumerate(items):
                if not is_int(b) or not MIN_BITS <= b <= MAX_BITS:
                    at = f"{where('bits')}[{i}]" if isinstance(v, list) else where("bits")
                    raise NmlabError(f"{at}: must be an integer from {MIN_BITS} to {MAX_BITS}, got {short(b)}")
            out.bits = ",".join(str(int(b)) for b in dict.fromkeys(items))
    if "batch" in values:
        b = values["batch"]
        if not is_int(b) or b < 1:
            raise NmlabError(f"{where('batch')}: must be a positive integer, got {short(b)}")
        if b > limit("batch"):
            raise over_limit("batch", b, where("batch"))
        out.batch = int(b)
    if "scenario" in values:
        sc = values["scenario"]
        if not isinstance(sc, str) or sc not in SCENARIOS:
            raise NmlabError(f"{where('scenario')}: must be one of {', '.join(SCENARIOS)}, got {short(sc)}")
        out.scenario = sc
    return out


def load_requirements(path: str | os.PathLike) -> RequirementsFile:
    """Read a requirements file (``yaml.safe_load`` through :func:`hwmodel.limits.load_yaml`: its
    size, nesting, alias expansion and keys given twice are checked before any value is built)."""
    if not str(path).strip():
        raise NmlabError("requirements: no file name given (--requirements FILE)")
    p = Path(os.path.expanduser(str(path)))
    if not is_file(p):
        raise not_a_file("requirements", p, given=str(path))
    data = load_yaml(p, "requirements")
    return parse_requirements(data, str(path), base=p.resolve().parent)


def run_check(design_ref: str, workload_path: Optional[str], latency: Optional[str], energy: Optional[str],
              sram: Optional[str], patterns: Optional[str], bits: Optional[str], batch: Optional[int],
              scenario: str, design_point: Any = None, labels: Optional[dict[str, str]] = None) -> dict[str, Any]:
    """Parse, simulate and judge; returns a dict (requirements, combinations, passed). Bad input raises NmlabError.

    ``design_point``: ``design_ref`` already loaded. ``labels``: where each value came from, for
    errors (``{"patterns": "requirements: r.yaml: patterns"}``); default the option's name.
    """
    from hwmodel.gpu.design_point import gpu_design, load_design_point, params_description  # an accelerator design or a GPU spec
    from hwmodel.workload import default_workload, load_workload

    label = {"latency_budget": "--latency-budget", "energy_budget": "--energy-budget", "sram_budget": "--sram-budget",
             "patterns": "--patterns", "bits": "--bits", "batch": "--batch", **(labels or {})}
    latency_s = parse_quantity(latency, TIME_UNITS, label["latency_budget"]) if latency is not None else None
    energy_pj = parse_quantity(energy, ENERGY_UNITS_PJ, label["energy_budget"]) if energy is not None else None
    sram_b = parse_quantity(sram, SIZE_UNITS, label["sram_budget"]) if sram is not None else None
    if batch is not None and batch < 1:
        raise NmlabError(f"{label['batch']}: must be a positive integer, got {batch}")
    design = design_point if design_point is not None else load_design_point(design_ref)
    wpath = workload_path or str(default_workload())
    workload = load_workload(wpath)
    # An empty --patterns or --bits is bad input, not a request for the defaults.
    if patterns is not None:
        pats = parse_patterns_list(patterns, label["patterns"])
    else:
        from hwmodel.sparsity import parse_pattern

        own_label = workload_pattern(workload)
        if own_label == MIXED:
            own = sorted({str(parse_pattern(layer.pattern)) for layer in workload.layers})
            what = (f"was trained with per-layer patterns (layer_sparsity {str(workload.meta.get('layer_sparsity'))[:60]!r})"
                    if agents.trained_per_layer(workload.meta) else f"mixes patterns {', '.join(own)}")
            raise NmlabError(f"--patterns: the workload {what}; name the ones to check "
                             f"(mixed: its own per-layer patterns, as trained)")
        pats = [own_label]
    if bits is not None:
        bit_list = parse_bits_list(bits, label["bits"])
    else:
        bit_list = [8]
        try:
            design.datatype_for(8)
        except NmlabError:
            bit_list = [max(b for b in range(1, 33) if _supports(design, b))]
    for b in bit_list:
        design.datatype_for(b)  # NmlabError naming the design's datatypes
    batch = batch or (1 if scenario == "inference" else 256)
    combos = evaluate_combinations(design, workload, pats, bit_list, batch, scenario, label["patterns"])
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
    out = {
        "design": design.name, "workload": wpath, "scenario": scenario, "batch": batch,
        "combinations": [asdict(c) for c in combos], "requirements": [asdict(r) for r in reqs],
        "meeting_all": all_ok, "passed": all(r.passed for r in reqs),
    }
    gpu = gpu_design(design)
    if gpu is not None:  # whose timings a GPU's verdict rests on: a card without any borrows another's set
        out["gpu_parameters"] = params_description(gpu.spec)
    return out


def _supports(design, bits: int) -> bool:
    try:
        design.datatype_for(bits)
        return True
    except NmlabError:
        return False


#: Options a requirements file can give (``args`` attributes of the same names); one given on the
#: command line overrides the file's value.
_FILE_OPTIONS = ("workload", "latency_budget", "energy_budget", "sram_budget", "patterns", "bits", "batch", "scenario")


def main(args: argparse.Namespace) -> int:
    """CLI entry: print verdicts; 0 all pass, 1 any fails (2 comes from NmlabError in the dispatcher).

    With ``--requirements FILE`` the file gives each value the command line does not; its designs
    are checked one after another (DESIGN or ``--design`` replaces them). Every design is checked
    before anything is printed, so bad input prints nothing but its error line.
    """
    from hwmodel.gpu.design_point import load_design_point

    req = load_requirements(args.requirements) if getattr(args, "requirements", None) is not None else None
    values, labels = {}, {}
    for key in _FILE_OPTIONS:
        given = getattr(args, key, None)
        values[key] = given if given is not None or req is None else getattr(req, key)
        if given is None and req is not None and getattr(req, key) is not None:
            labels[key] = f"requirements: {req.source}: {key}"
    if args.design:
        points = [(args.design, None)]
    elif req is not None and req.designs:
        points = []
        for ref, key in zip(req.designs, req.design_keys):
            try:
                points.append((ref, load_design_point(ref)))
            except NmlabError as exc:
                raise NmlabError(f"requirements: {req.source}: {key}: {exc}") from None
    else:
        raise NmlabError("check: no design: give DESIGN or --design (an accelerator design or a GPU such as h100_sxm)"
                         + (f", or designs: in {req.source}" if req is not None else ""))
    results = [run_check(ref, values["workload"], values["latency_budget"], values["energy_budget"],
                         values["sram_budget"], values["patterns"], values["bits"], values["batch"],
                         values["scenario"] or "inference", design_point=point, labels=labels)
               for ref, point in points]
    passed = all(r["passed"] for r in results)
    if args.json:
        print(json.dumps(results[0] if len(results) == 1 else {"checks": results, "passed": passed}, indent=1))
        return 0 if passed else 1
    for i, result in enumerate(results):
        if i:
            print()
        _print_result(result)
    if len(results) > 1:
        failed = [r["design"] for r in results if not r["passed"]]
        print(f"\n{len(failed)} of {len(results)} designs fail: {', '.join(failed)}" if failed
              else f"\nall {len(results)} designs pass")
    return 0 if passed else 1


def _print_result(result: dict[str, Any]) -> None:
    """One design's verdicts, one line per requirement."""
    print(f"design {result['design']}, workload {result['workload']}, {result['scenario']} at batch {result['batch']}")
    if result.get("gpu_parameters"):
        print(f"note: GPU times from the model with {result['gpu_parameters']}")
    for pattern, runs in dict.fromkeys((c["pattern"], c["runs_as"]) for c in result["combinations"] if c["runs_as"]):
        print(f"note: {result['design']} runs {pattern} as {runs}")
    for r in result["requirements"]:
        print(f"{'PASS' if r['passed'] else 'FAIL'} {r['name']} <= {r['budget_text']}: {r['reason']}")
    n_fail = sum(not r["passed"] for r in result["requirements"])
    n_req = len(result["requirements"])
    meeting = ", ".join(result["meeting_all"]) or "none"
    verdict = "all requirements pass" if not n_fail else f"{n_fail} of {n_req} requirements fail"
    print(f"{verdict}; combinations meeting every requirement: {meeting}")
