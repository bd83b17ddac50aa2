"""What limits each design point, from the model's own figures in points.parquet.

Per row: the latency limiter (compute, DRAM bandwidth or metadata: the largest share of
``cycles`` among compute cycles, ``stall_cycles_dram`` and ``stall_cycles_metadata``), the
largest energy component and its share, whether the weights fit the design's SRAM while dense
at the same bits does not (or the reverse: the cliff behind the most extreme ratios), whether
the design skipped any MAC at all, and a one-line explanation of the ratio against dense at the
same bits. Columns a table lacks (older or reduced sweeps) leave the matching reason out.

GPU design points (``reports.data.gpu_rows``) are explained in GPU terms: the GPU model splits no
stall cycles and reads weights from DRAM on every call (cold L2), so neither the cycle split nor
the SRAM (L2) fit says anything there. What does: ``utilization`` (the GEMMs' share of the tensor
peak or memory bandwidth: far below 1, each call costs its fixed time, not its MACs), whether the
layers ran 2:4 at all (a GPU runs 2:4 only; other masks run dense), and energy = board power x
time, mostly the assumed floor power (``energy_leakage_pj``; ``energy_mac_pj`` is the rest).
"""

from __future__ import annotations

from enum import StrEnum
from functools import lru_cache
from typing import Optional

import numpy as np
import pandas as pd

from reports.data import ENERGY_COMPONENTS, GPU_COMPONENT_NAMES, fmt_bytes, fmt_energy, fmt_ratio, gpu_rows

#: Same-bits ratios outside these bounds get a one-line explanation on the page.
SPEEDUP_EXTREME = (0.9, 4.0)
ENERGY_EXTREME = (0.1, 1.1)
#: A sparse point within this of 1.0 in speedup gained nothing: also explained.
NO_GAIN = 0.05
#: A point that skips under this share of dense's MACs skips "next to none" of them: a slower-than-dense line
#: then says nothing pays for its metadata wait. A share of MACs, not a speed ratio as NO_GAIN is: skipping 5%
#: of the MACs saves at most 5% of the compute cycles, the margin NO_GAIN already calls no gain in speed, so
#: the two take the same value (flex_nm's 4-bit unstructured points skip 0%: they run the mask 4:4).
FEW_SKIPPED = 0.05
#: A GPU point whose GEMMs use less than this share of the GPU's peak is fixed-cost bound.
FIXED_COST_UTILIZATION = 0.1
#: What the energy components of a GPU row are (hwmodel/gpu/design_point.py: energy = time x board power).
GPU_ENERGY_NAMES = {"leakage": f"{GPU_COMPONENT_NAMES['leakage']} (assumed)", "mac": GPU_COMPONENT_NAMES["mac"]}

DENSE_KEY = ("env", "design", "scenario", "batch", "bits")


class Verdict(StrEnum):
    """What limits a point, as :func:`limiters` decides it (its ``verdict`` column): the cause its why line
    gives first. The why line and the glance table's word (:func:`verdict_word`, which reads nothing else)
    both follow it."""
    NONE = ""  # nothing to say: no cycles (or no utilization) in the table
    # any point, before every other cause: the design ran another sparse N:M pattern in its place on every forward
    # GEMM (1:4 on a 2:4-only design), so the figures are that pattern's; its why line then gives that pattern's cause
    RUNS_AS = "runs as"
    # accelerator points (_why_line), strongest cause first
    SRAM_CLIFF = "SRAM cliff"  # these weights fit the SRAM, dense's do not
    MISSES_SRAM = "misses SRAM"  # the reverse: weights with metadata miss the SRAM dense fits
    RUNS_DENSE = "runs dense"  # a sparse point within NO_GAIN of dense's speed that issues every dense MAC
    DRAM_BOUND = "DRAM-bound"  # DRAM stalls are over half the cycles, or (after no gain, slower, metadata and leakage) their largest share
    NO_GAIN = "no gain"  # a sparse point within NO_GAIN of dense's speed that skips some MACs
    SLOWER = "slower than dense"  # metadata stalls make a sparse point slower than dense
    METADATA_BOUND = "metadata-bound"  # over a quarter of the cycles wait for metadata
    LEAKAGE = "leakage"  # leakage is over half the energy
    COMPUTE_BOUND = "compute-bound"  # otherwise, where compute is the largest share of the known cycles (the line quotes it)
    # GPU points (_gpu_why_line); RUNS_DENSE too: a sparse mask that does not fit 2:4
    FIXED_COST = "fixed-cost bound"  # utilization under FIXED_COST_UTILIZATION
    THROUGHPUT = "throughput-bound"


#: Each verdict's word in the glance table (GLANCE_HELP in reports.answer says what each means); RUNS_AS's names
#: the pattern that ran (:func:`verdict_word`).
VERDICT_WORDS = {Verdict.NONE: "", Verdict.RUNS_AS: "runs as", Verdict.SRAM_CLIFF: "SRAM cliff",
                 Verdict.MISSES_SRAM: "misses SRAM", Verdict.RUNS_DENSE: "runs dense", Verdict.DRAM_BOUND: "DRAM",
                 Verdict.NO_GAIN: "no gain", Verdict.SLOWER: "slower", Verdict.METADATA_BOUND: "metadata",
                 Verdict.LEAKAGE: "leakage", Verdict.COMPUTE_BOUND: "compute", Verdict.FIXED_COST: "fixed cost",
                 Verdict.THROUGHPUT: "throughput"}


def verdict_word(verdict: str, runs_as_pattern: str = "") -> str:
    """The glance table's word for a point: its verdict's (:data:`VERDICT_WORDS`), "runs as 2:4" naming the
    pattern that ran for :attr:`Verdict.RUNS_AS`; "" for a verdict this nmlab does not know."""
    try:
        v = Verdict(verdict)
    except ValueError:
        return ""
    word = VERDICT_WORDS[v]
    return f"{word} {runs_as_pattern}" if v is Verdict.RUNS_AS and runs_as_pattern else word


def dense_same_bits(df: pd.DataFrame) -> pd.DataFrame:
    """For each row, the dense row of its (env, design, scenario, batch, bits): columns prefixed ``dense_``
    (NaN where the sweep has no such dense row). Index aligned with ``df``."""
    cols = [c for c in ("latency_s", "energy_pj", "model_bytes", "fits_in_sram", "energy_dram_pj", "macs_issued",
                        "stall_cycles_dram", "cycles", "point_id") if c in df.columns]
    dense = df[df.pattern == "dense"]
    if "mask_source" in dense:
        dense = dense[dense.mask_source == "trained"]
    dense = dense.drop_duplicates(list(DENSE_KEY))[[*DENSE_KEY, *cols]]
    merged = df[list(DENSE_KEY)].merge(dense.rename(columns={c: f"dense_{c}" for c in cols}), on=list(DENSE_KEY),
                                       how="left")
    merged.index = df.index
    return merged[[f"dense_{c}" for c in cols]]


def _col(df: pd.DataFrame, name: str) -> np.ndarray:
    return df[name].to_numpy(dtype=float) if name in df.columns else np.full(len(df), np.nan)


def limiters(df: pd.DataFrame, gpu_fixed: Optional[dict[str, "FixedTimes"]] = None) -> pd.DataFrame:
    """Per row of ``df`` (same index): latency_limiter, latency_share, energy_top, energy_top_share,
    leakage_share, sram ("fits, dense misses" / "misses, dense fits" / "fits" / "misses" / ""),
    skips_macs (False when the design issued every dense MAC), gpu (a GPU design point),
    utilization, verdict (a :class:`Verdict`: the cause the why line gives first), why (one line), runs_as_pattern
    and runs_as_line (what the design ran in the point's place, :func:`_runs_as_columns`). On GPU rows the limiter is "fixed per-call cost" or
    "throughput" (from ``utilization``), the latency share NaN, the energy components named as
    ``GPU_ENERGY_NAMES`` says, and sram "" (the GPU model's time does not depend on the L2 fit).
    ``gpu_fixed``: :func:`gpu_fixed_times` of the sweep's manifest (None: no fixed time is quoted)."""
    n = len(df)
    gpu = gpu_rows(df)
    util = _col(df, "utilization")
    cycles = _col(df, "cycles")
    stall_d = np.nan_to_num(_col(df, "stall_cycles_dram"))
    stall_m = np.nan_to_num(_col(df, "stall_cycles_metadata"))
    parts = np.column_stack([cycles - stall_d - stall_m, stall_d, stall_m])
    with np.errstate(invalid="ignore", divide="ignore"):
        shares = parts / cycles[:, None]
    names = np.array(["compute", "DRAM bandwidth", "metadata"])
    have_cycles = np.isfinite(cycles) & (cycles > 0)
    top = np.where(have_cycles, np.nanargmax(np.where(np.isfinite(shares), shares, -1), axis=1), 0)
    comps = [c for c in ENERGY_COMPONENTS if f"energy_{c}_pj" in df.columns]
    energy = np.column_stack([np.nan_to_num(_col(df, f"energy_{c}_pj")) for c in comps]) if comps else np.zeros((n, 0))
    total = _col(df, "energy_pj")
    with np.errstate(invalid="ignore", divide="ignore"):
        eshare = energy / total[:, None] if comps else energy
    etop = np.argmax(eshare, axis=1) if comps else np.zeros(n, dtype=int)
    leak = eshare[:, comps.index("leakage")] if "leakage" in comps else np.full(n, np.nan)
    dense = dense_same_bits(df)
    fits = df["fits_in_sram"].to_numpy() if "fits_in_sram" in df else np.full(n, None)
    dfits = dense["dense_fits_in_sram"].to_numpy() if "dense_fits_in_sram" in dense else np.full(n, None)
    sram = []
    for f, d, g in zip(fits, dfits, gpu):
        if g or f is None or f != f:
            sram.append("")
        elif d is None or d != d or bool(f) == bool(d):
            sram.append("fits" if f else "misses")
        else:
            sram.append("fits, dense misses" if f else "misses, dense fits")
    issued, dense_issued = _col(df, "macs_issued"), _col(dense, "dense_macs_issued")
    skips = ~(np.isfinite(issued) & np.isfinite(dense_issued) & (issued >= dense_issued * (1 - 1e-9)))
    limiter = np.where(have_cycles, names[top], "").astype(object)
    share = np.where(have_cycles, shares[np.arange(n), top], np.nan)
    limiter[gpu] = np.where(util[gpu] < FIXED_COST_UTILIZATION, "fixed per-call cost", "throughput")
    share[gpu] = np.nan
    etop_name = np.array(comps, dtype=object)[etop] if comps else np.full(n, "", dtype=object)
    etop_name[gpu] = [GPU_ENERGY_NAMES.get(c, c) for c in etop_name[gpu]]
    out = pd.DataFrame({
        "latency_limiter": limiter,
        "latency_share": share,
        "energy_top": etop_name,
        "energy_top_share": eshare[np.arange(n), etop] if comps else np.nan,
        "leakage_share": leak,
        "sram": sram,
        "skips_macs": skips,
        "gpu": gpu,
        "utilization": util,
    }, index=df.index)
    used = [c for c in ("design", "pattern", "model_bytes", "sram_bytes", "stall_cycles_dram", "stall_cycles_metadata", "cycles",
                        "speedup_vs_dense", "macs_issued", "macs_dense", "energy_pj", "energy_metadata_pj", "energy_mux_pj")
            if c in df.columns]
    fixed = gpu_fixed or {}
    rows = list(zip(df[used].to_dict("records"), dense.to_dict("records"), out.to_dict("records")))
    # The cause of the figures themselves, whichever pattern ran them; a point run as another pattern says that first.
    causes = [_gpu_verdict(r, lim) if lim["gpu"] else _verdict(r, lim) for r, _, lim in rows]
    whys = [_gpu_why_line(r, d, lim, v, fixed.get(str(r.get("design")))) if lim["gpu"] else _why_line(r, d, lim, v)
            for (r, d, lim), v in zip(rows, causes)]
    ran, ran_lines = _runs_as_columns(df)
    out["verdict"] = [Verdict.RUNS_AS if p else v for p, v in zip(ran, causes)]
    out["runs_as_pattern"], out["runs_as_line"] = ran, ran_lines
    out["why"] = [f"runs as {p}: {line}" + (f"; {w}" if w else "") if p else w for p, line, w in zip(ran, ran_lines, whys)]
    return out


def _runs_as_columns(df: pd.DataFrame) -> tuple[list[str], list[str]]:
    """Per row: the sparse N:M pattern the design ran in the point's place, when one ran on every forward GEMM
    ("2:4" for a 1:4 agent on a 2:4-only design: the point's figures are 2:4's; else ""), and the line saying
    what ran in its place and why, from the sweep's ``runs_as`` column (``hwmodel.mapping.runs_as``, what
    ``nmlab check``'s note says): "this design runs 1:4 as 2:4 (every group of 4 of the mask holds <= 2): the
    figures are 2:4's". No line where the design ran the point's own pattern, or only dense (its why line says
    so: runs dense / no gain); none at all for a table without the column (an older sweep's)."""
    from hwmodel.errors import NmlabError
    from hwmodel.mapping import runs_as_pattern
    from hwmodel.sparsity import parse_pattern

    if "runs_as" not in df.columns:
        return [""] * len(df), [""] * len(df)
    seen: dict[tuple, tuple[str, str]] = {}  # one answer per distinct (pattern, text): a big sweep repeats a few
    keys = [(str(p), t if isinstance(t, str) else "") for p, t in zip(df["pattern"], df["runs_as"])]  # null: ""
    for key in keys:
        if key in seen:
            continue
        pattern, text = key
        ran = runs_as_pattern(text)
        try:
            p = parse_pattern(ran) if ran else None
        except NmlabError:  # a pattern this nmlab does not parse: no word, the line still says what ran
            p = None
        sparse_nm = p is not None and p.is_nm and p.n < p.m  # not "4:4": a flexible design's full rows
        line = "" if not text or ran == "dense" else (
            f"this design runs {pattern} as {text}" + (f": the figures are {ran}'s" if sparse_nm else ""))
        seen[key] = (ran if sparse_nm else "", line)
    got = [seen[key] for key in keys]
    pats, lines = [g[0] for g in got], [g[1] for g in got]
    return pats, lines


def _pct(x: float) -> str:
    return f"{100 * x:.0f}%"


def skipped_share(issued, dense) -> float:
    """Share of the dense MACs a point did not issue (NaN when either count is missing)."""
    if issued is None or dense is None or issued != issued or dense != dense or not dense:
        return float("nan")
    return max(0.0, 1.0 - float(issued) / float(dense))


def small_pct(x: float) -> str:
    """A share that may be tiny (a GPU's utilization): "0.0031%", or "under 0.001%"."""
    if x != x:
        return "n/a"
    return "under 0.001%" if x < 1e-5 else f"{100 * x:.2g}%"


def _speedup(r: dict) -> float:
    sp = r.get("speedup_vs_dense")
    return sp if sp is not None and sp == sp else 1.0


def _verdict(r: dict, lim: dict) -> Verdict:
    """The strongest cause of an accelerator point's same-bits ratios (the first that holds, in this order)."""
    if lim["sram"] == "fits, dense misses":
        return Verdict.SRAM_CLIFF
    if lim["sram"] == "misses, dense fits":
        return Verdict.MISSES_SRAM
    sp = _speedup(r)
    no_gain = r.get("pattern") != "dense" and abs(sp - 1) < NO_GAIN
    if no_gain and not lim["skips_macs"]:
        # It issues every dense MAC, so sparsity shortens nothing, DRAM-bound or not: the glance word is "runs
        # dense" (verdict_word), as on a GPU. Its tooltip and the why table said "no gain", and
        # on a DRAM-bound design (stc_hbm's gmp, rlx2, one-shot cells) "DRAM-bound ...; sparsity only shortens
        # the rest" with 2:4's numbers.
        return Verdict.RUNS_DENSE
    if lim["latency_limiter"] == "DRAM bandwidth" and lim["latency_share"] > 0.5:
        return Verdict.DRAM_BOUND
    if no_gain:
        return Verdict.NO_GAIN
    if sp < 1 - NO_GAIN and r.get("stall_cycles_metadata") and r.get("cycles"):
        return Verdict.SLOWER
    if lim["latency_limiter"] == "metadata" and lim["latency_share"] > 0.25:
        return Verdict.METADATA_BOUND
    lk = lim["leakage_share"]
    if lk == lk and lk > 0.5:
        return Verdict.LEAKAGE
    if lim["latency_limiter"] == "DRAM bandwidth":  # the largest share of cycles, though not over half of them
        return Verdict.DRAM_BOUND
    if lim["latency_limiter"]:
        return Verdict.COMPUTE_BOUND
    return Verdict.NONE


#: Why an accelerator point that issues every dense MAC costs what dense costs (Verdict.RUNS_DENSE; a NO_GAIN
#: point without MAC counts says the same).
_DENSE_SCHEDULE = ("the design runs this pattern on dense's schedule, issuing every dense MAC (it cannot exploit "
                   "this sparsity), so ")
_ON_DENSE_SCHEDULE = _DENSE_SCHEDULE + "cycles and energy stay as dense's"


def _runs_dense_figures(r: dict, d: dict) -> str:
    """Why a point that issues every dense MAC costs what it costs: dense's schedule, and, where its figures still
    differ from dense's as the tables write them (a flexible design's folds at 4:4 walk every slot yet read their
    weights' indices and drive the selection muxes: 1.02x dense's energy), by how much and why."""
    er = _ratio(r.get("energy_pj"), d.get("dense_energy_pj"))
    sp = _speedup(r)
    if fmt_ratio(er) in ("1.00", "\u2013") and fmt_ratio(sp) == "1.00":
        return _ON_DENSE_SCHEDULE
    line = _DENSE_SCHEDULE + "its cycles stay "
    line += "as dense's" if fmt_ratio(sp) == "1.00" else f"within {NO_GAIN:.0%} of dense's{_cycles_versus(r, d)}"
    if fmt_ratio(er) in ("1.00", "\u2013"):
        return line + ", and its energy as dense's"
    line += f", but its energy is {fmt_ratio(er)}x dense's"
    index = sum(v for v in (r.get("energy_metadata_pj"), r.get("energy_mux_pj")) if v is not None and v == v)
    if er > 1 and index > 0 and r.get("energy_pj"):
        line += (f": it still reads N:M/index metadata and drives the selection muxes ({fmt_energy(index)}, "
                 f"{100 * index / r['energy_pj']:.2g}% of its energy), which dense never does")
    return line


def _cycles_versus(r: dict, d: dict) -> str:
    """The point's cycles beside dense's, ' (1,234 vs dense's 1,200)', or '' where either is missing."""
    cyc, dc = r.get("cycles"), d.get("dense_cycles")
    return f" ({cyc:,.0f} vs dense's {dc:,.0f})" if cyc and dc == dc and dc else ""


def _ratio(a, b) -> float:
    """a / b, NaN where either is missing or b is 0."""
    if a is None or b is None or a != a or b != b or not b:
        return float("nan")
    return float(a) / float(b)


def _why_line(r: dict, d: dict, lim: dict, verdict: Verdict) -> str:
    """One line on why this point's same-bits ratios are what they are: its ``verdict`` (:func:`_verdict`)
    with the numbers behind it."""
    sram_b = r.get("sram_bytes")
    if verdict is Verdict.SRAM_CLIFF:
        dram = d.get("dense_energy_dram_pj")
        share = f" ({_pct(dram / d['dense_energy_pj'])} of dense's energy)" if dram == dram and dram is not None and d.get(
            "dense_energy_pj") else ""
        return (f"SRAM cliff: these weights ({fmt_bytes(r.get('model_bytes'))}) fit the {fmt_bytes(sram_b)} SRAM, dense "
                f"({fmt_bytes(d.get('dense_model_bytes'))}) does not and streams them from DRAM{share}")
    if verdict is Verdict.MISSES_SRAM:
        return (f"SRAM cliff: these weights with their metadata ({fmt_bytes(r.get('model_bytes'))}) miss the "
                f"{fmt_bytes(sram_b)} SRAM that dense ({fmt_bytes(d.get('dense_model_bytes'))}) fits")
    if verdict is Verdict.DRAM_BOUND:
        dense = ""
        if d.get("dense_cycles") == d.get("dense_cycles") and d.get("dense_cycles"):
            dense = (f" (dense at these bits: {d['dense_stall_cycles_dram']:,.0f} of {d['dense_cycles']:,.0f})")
        return (f"DRAM-bound: {r['stall_cycles_dram']:,.0f} of {r['cycles']:,.0f} cycles are DRAM stalls{dense}; "
                f"sparsity only shortens the rest")
    if verdict is Verdict.RUNS_DENSE:
        return f"runs dense: {_runs_dense_figures(r, d)}"
    if verdict is Verdict.NO_GAIN:
        skip = skipped_share(r.get("macs_issued"), r.get("macs_dense"))
        if skip != skip:
            return f"no gain: {_ON_DENSE_SCHEDULE}"
        # It does skip MACs (its energy may be well below dense's): say what ate the time they saved, e.g. a
        # 32x32 array at 4 bits whose 2:4 index metadata arrives slower than the halved weight folds compute.
        cyc, stall_m, dc = r.get("cycles"), r.get("stall_cycles_metadata"), d.get("dense_cycles")
        versus = _cycles_versus(r, d)
        if skip < FEW_SKIPPED:
            return (f"no gain: the design issues {100 * (1 - skip):.4g}% of dense's MACs (it cannot exploit this "
                    f"sparsity), so its cycles stay within {NO_GAIN:.0%} of dense's{versus}")
        line = f"no gain in speed: it skips {_pct(skip)} of dense's MACs"
        if stall_m and cyc and stall_m / cyc >= NO_GAIN:
            return (line + f", but {stall_m:,.0f} of {cyc:,.0f} cycles wait for N:M/index metadata, which dense "
                    f"never loads, so the time those MACs saved is spent waiting")
        stall_d, dd = r.get("stall_cycles_dram"), d.get("dense_stall_cycles_dram")
        if stall_d and cyc and stall_d / cyc >= NO_GAIN and dc == dc and dc and dd == dd and dd is not None:
            # Neither cause above: the compute cycles fall less than the MACs (folds of an unstructured mask) and
            # the DRAM stalls, which no skipped MAC shortens, dilute what they do save (scalesim_default_ws, the
            # RLx2 agent's train step at 16 bits: 25% skipped, compute cycles 6.9% fewer, 40% of cycles DRAM).
            comp, dcomp = cyc - stall_d - (stall_m or 0.0), dc - dd
            fall = f"fall {_pct(1 - comp / dcomp)}" if comp < dcomp else "do not fall"
            return (line + f", but its compute cycles {fall} ({comp:,.0f} vs dense's {dcomp:,.0f}) and DRAM stalls, "
                    f"which skipping does not shorten, are {stall_d:,.0f} of its cycles, so its cycles stay within "
                    f"{NO_GAIN:.0%} of dense's{versus}")
        return line + f", but its cycles stay within {NO_GAIN:.0%} of dense's{versus}"
    lk = lim["leakage_share"]
    if verdict is Verdict.SLOWER:
        line = (f"slower than dense: {r['stall_cycles_metadata']:,.0f} of {r['cycles']:,.0f} cycles wait for N:M/index "
                f"metadata, which dense never loads")
        # No MAC (or next to none) skipped pays for the wait: e.g. flex_nm at 4 bits runs an unstructured mask 4:4
        # (each fold at its densest row's N) and still sends every weight's index.
        skip = skipped_share(r.get("macs_issued"), r.get("macs_dense"))
        if skip == skip and skip < FEW_SKIPPED:
            issued = "every dense MAC" if skip == 0 else f"{_pct(1 - skip)} of dense's MACs"
            line += f", while the design issues {issued} (it cannot exploit this sparsity), so nothing pays for that wait"
        if lk == lk and lk > 0.5:
            line += f"; leakage is {_pct(lk)} of the energy, so energy follows latency"
        return line
    if verdict is Verdict.METADATA_BOUND:
        return f"metadata-bound: {_pct(lim['latency_share'])} of the cycles wait for N:M index metadata"
    if verdict is Verdict.LEAKAGE:
        return f"leakage is {_pct(lk)} of the energy: energy follows latency, not the MAC count"
    if verdict is Verdict.COMPUTE_BOUND:
        return (f"compute-bound ({_pct(lim['latency_share'])} of cycles computing); energy mostly "
                f"{lim['energy_top']} ({_pct(lim['energy_top_share'])})")
    return ""


#: A GPU's fixed per-kernel times as quoted: (cuBLASLt dense us, cuSPARSELt 2:4 us, what they are), or
#: a sentence saying why none is quoted.
FixedTimes = "tuple[float, float, str] | str"


@lru_cache(maxsize=None)
def gpu_fixed_us(design: str) -> Optional[tuple[float, float, str]]:
    """(fixed time of a dense kernel, of a 2:4 kernel, the parameter set) of a bundled GPU design in the GPU
    timing model as nmlab has it now (``hwmodel.gpu``: ``kernel_dense_us``, ``kernel_sparse_us``), us; None
    for any other design."""
    from hwmodel.errors import NmlabError
    from hwmodel.gpu.design_point import bundled_gpu_names, gpu_design, model_params
    from hwmodel.gpu.params import set_name_for

    if design not in bundled_gpu_names():  # a name only: a file of that name beside the report is not the GPU
        return None
    try:
        g = gpu_design(design)
        p = model_params(g.spec)
        return float(p.kernel_dense_us), float(p.kernel_sparse_us), set_name_for(g.spec)
    except (NmlabError, OSError, KeyError, AttributeError):  # an unreadable parameter file: the sentence is optional
        return None


#: Said for a GPU whose fixed times the sweep did not record (a sweep.json of an older nmlab) where the
#: model changed since it ran: the figures nmlab has now need not be those the sweep used.
NOT_RECORDED = ("the sweep's sweep.json does not record the GPU model's fixed times it ran with, and nmlab's model "
                "has changed since, so they are not quoted")


def gpu_fixed_times(manifest: Optional[dict]) -> dict[str, FixedTimes]:
    """Design -> the fixed per-kernel times the sweep ran that GPU with, as quoted in its why line.

    From ``sweep.json``'s ``designs[].gpu_model`` (written at sweep time, ``sweeps.api.gpu_model_record``):
    the figures of the parameter set the sweep used, whatever the bundled file says when the report is
    built (named as changed since where its sha differs). A sweep.json without them (an older nmlab's):
    nmlab's figures now where the manifest's ``model_sha`` (which covers the parameter file) is today's,
    else :data:`NOT_RECORDED`. The report's text depends only on its inputs: deterministic."""
    from hwmodel.gpu.params import default_path, fitted_on_note
    from sweeps.grid import file_sha, model_sha

    manifest = manifest or {}
    out: dict[str, FixedTimes] = {}
    now_sha: Optional[str] = None
    same_model: Optional[bool] = None
    for entry in manifest.get("designs") or []:
        if not isinstance(entry, dict) or not isinstance(entry.get("name"), str):
            continue
        name, rec = entry["name"], entry.get("gpu_model")
        if isinstance(rec, dict):
            what = f"the sweep's {rec['params_set']} parameters"
            if rec.get("params_own"):  # the spec's own parameter file: what it was fitted on, as recorded
                what += f" of {rec.get('params_file', 'its parameter file')}"
                if rec.get("params_note"):
                    what += f", {rec['params_note']}"
            else:  # the bundled file: whose timings its set rests on, and whether it has changed since
                note = fitted_on_note(name, rec.get("params_fitted_on") or [])  # another card's set: says so
                if note:
                    what += f", {note}"
                if now_sha is None:
                    try:
                        now_sha = file_sha(default_path())
                    except OSError:
                        now_sha = ""
                if rec.get("params_sha") != now_sha:
                    what += f"; nmlab's {rec.get('params_file', 'parameter file')} has changed since"
            out[name] = (float(rec["kernel_dense_us"]), float(rec["kernel_sparse_us"]), what)
            continue
        if gpu_fixed_us(name) is None:
            continue
        if same_model is None:
            same_model = manifest.get("model_sha") == model_sha()
        if same_model:
            dense_us, sparse_us, set_name = gpu_fixed_us(name)
            out[name] = (dense_us, sparse_us, f"the model's {set_name} parameters")
        else:
            out[name] = NOT_RECORDED
    return out


def _gpu_verdict(r: dict, lim: dict) -> Verdict:
    """What limits a GPU point: a sparse mask that does not fit 2:4 runs dense, else its utilization decides."""
    if r.get("pattern") not in (None, "dense") and not lim["skips_macs"]:
        return Verdict.RUNS_DENSE
    u = lim["utilization"]
    if u == u and u < FIXED_COST_UTILIZATION:
        return Verdict.FIXED_COST
    return Verdict.THROUGHPUT if u == u else Verdict.NONE


def _gpu_why_line(r: dict, d: dict, lim: dict, verdict: Verdict, fixed: Optional[FixedTimes] = None) -> str:
    """The one line of a GPU point: 2:4 or not (a GPU runs 2:4 only), then what the time is made of: its
    ``verdict`` (:func:`_gpu_verdict`) with the numbers behind it. ``fixed``: the GPU's entry of
    :func:`gpu_fixed_times` (None: no fixed time is quoted)."""
    sp = _speedup(r)
    sparse = r.get("pattern") not in (None, "dense")
    if verdict is Verdict.RUNS_DENSE:
        return ("runs dense: a GPU's sparse tensor cores run 2:4 only and this mask does not fit 2:4, so its zeros "
                "are stored and multiplied and it costs what dense costs")
    u = lim["utilization"]
    skipped = skipped_share(r.get("macs_issued"), r.get("macs_dense"))
    gain = (f"; the layers that run 2:4 skip {small_pct(skipped)} of dense's MACs but not that fixed time "
            f"({fmt_ratio(sp)}x dense's speed)" if sparse and skipped == skipped else "")
    slower = bool(gain) and sp < 1 - NO_GAIN
    if slower and isinstance(fixed, str):
        gain = gain[:-1] + f"; {fixed})"
    elif slower and fixed and fixed[1] > fixed[0]:  # why slower, not only why no faster
        gain = (f"; the layers that run 2:4 skip {small_pct(skipped)} of dense's MACs, but a 2:4 kernel's fixed time "
                f"(cuSPARSELt, {fixed[1]:.3g} us) is longer than a dense one's (cuBLASLt, {fixed[0]:.3g} us; "
                f"{fixed[2]}), so 2:4 runs at {fmt_ratio(sp)}x dense's speed")
    if verdict is Verdict.FIXED_COST:
        lk = lim["leakage_share"]
        energy = (f"; {_pct(lk)} of the energy is the board's assumed floor power x time, so energy follows latency"
                  if lk == lk and lk > 0.5 else "")
        return (f"fixed-cost bound: the GEMMs use {small_pct(u)} of the GPU's tensor peak or memory bandwidth, so "
                f"each call costs its fixed time (issue floor, kernel start and end), not its MACs{gain}{energy}")
    if verdict is Verdict.THROUGHPUT:
        return (f"throughput-bound: the GEMMs use {_pct(u)} of the GPU's tensor peak or memory bandwidth"
                + (f"; 2:4 gives {fmt_ratio(sp)}x" if sparse else ""))
    return ""


def is_extreme(pattern: str, speedup: float, energy_ratio: float) -> bool:
    """Whether a same-bits cell deserves its one-line explanation on the page."""
    if pattern == "dense" or speedup != speedup:
        return False
    return (speedup < SPEEDUP_EXTREME[0] or speedup > SPEEDUP_EXTREME[1] or energy_ratio < ENERGY_EXTREME[0]
            or energy_ratio > ENERGY_EXTREME[1] or abs(speedup - 1) < NO_GAIN)
