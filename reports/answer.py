"""The answer first: what each sparsity pattern buys on each design at equal bits, and what it costs.

Three views, all from points.parquet:

* **Same bits** (``same_bits``): per env, scenario, batch and design, a pattern x bitwidth table of
  ``speedup_vs_dense`` (dense latency / this latency) and ``energy_ratio_vs_dense`` (this energy /
  dense energy), both against the dense point of the same env, design, scenario, batch **and bits**
  (``sweeps/derived.py``: the model's own same-bits ratios). One row per agent (RLx2, GMP,
  each RNM-TD3 pattern, one-shot points): never averaged.
* **Quantization alone** (``quantization_gain``): dense at B bits against dense at the design's
  highest bitwidth in the sweep (the reference of ``speedup_vs_dense_ref``).
* **Return cost** (``reports.returns``): the agents' returns as fractions of dense with their seed
  spread; shown beside the hardware tables.

Each hardware cell carries what limits it (``reports.why``) as a tooltip, a mark for SRAM cliffs, and
a one-line explanation under the table where the ratio is extreme.
"""

from __future__ import annotations

import html
import math
from typing import Any, Optional

import numpy as np
import pandas as pd

from reports import returns
from reports.data import (agent_label, agent_order, design_order, design_title, fmt_bytes, fmt_energy, fmt_ratio, fmt_time,
                          is_gpu, md_text, name_digest, one_row_per, seed_range_text, with_agent)
from reports.quality import HW_BITS, hardware_scenario
from reports.style import design_colors
from reports.why import NO_GAIN, Verdict, is_extreme, limiters, skipped_share, small_pct, verdict_word

SAME_BITS = ("speedup_vs_dense", "energy_ratio_vs_dense")
SECTION = ("env", "scenario", "batch")
#: Marks written after a value: the SRAM cliff behind the most extreme ratios.
CLIFF_MARKS = {"fits, dense misses": "\u25c6", "misses, dense fits": "\u25c7"}


def same_bits(df: pd.DataFrame, gpu_fixed: Optional[dict] = None) -> pd.DataFrame:
    """Rows of the same-bits tables: section, design, agent (method, agent, label, pattern), bits, the
    two ratios, point_id and the limiter columns of ``reports.why``. One row per point: raises
    ValueError if two points share (section, design, agent, bits). ``gpu_fixed``: the GPUs' fixed
    times the sweep ran with (``reports.why.gpu_fixed_times`` of its sweep.json; None: none quoted)."""
    df = with_agent(df)
    keep = [c for c in ("point_id", *SECTION, "design", "method", "agent", "pattern", "mask_source", "bits", *SAME_BITS,
                        "latency_s", "energy_pj", "model_bytes", "sram_bytes", "datatype", "macs_issued", "macs_dense")
            if c in df.columns]
    out = df[keep].join(limiters(df, gpu_fixed))
    out["label"] = [agent_label(m, a) for m, a in zip(out.method, out.agent)]
    one_row_per(out, [*SECTION, "design", "method", "agent", "bits"], "same-bits table")
    return out


def quantization_gain(df: pd.DataFrame) -> pd.DataFrame:
    """Dense at each bitwidth vs dense at the design's highest bitwidth in the sweep, per section and design
    swept at two bitwidths or more: columns env, scenario, batch, design, bits, ref_bits, speedup (ref latency / latency), energy_ratio
    (energy / ref energy), point_id, ref_point_id."""
    dense = df[(df.pattern == "dense") & (df.get("mask_source", "trained") == "trained")]
    dense = dense[[*SECTION, "design", "bits", "latency_s", "energy_pj", "point_id"]]
    one_row_per(dense, [*SECTION, "design", "bits"], "quantization table")
    rows = []
    for key, g in dense.groupby([*SECTION, "design"], sort=True):
        if g.bits.nunique() < 2:  # one bitwidth: nothing to compare (a table of 1x / 1 said nothing)
            continue
        ref = g.loc[g.bits.idxmax()]
        for r in g.sort_values("bits", ascending=False).itertuples(index=False):
            rows.append({**dict(zip([*SECTION, "design"], key)), "bits": int(r.bits), "ref_bits": int(ref.bits),
                         "speedup": ref.latency_s / r.latency_s, "energy_ratio": r.energy_pj / ref.energy_pj,
                         "point_id": r.point_id, "ref_point_id": ref.point_id})
    return pd.DataFrame(rows)


# ----------------------------------------------------------------------------- formatting
def ratio_color(v: float, good_high: bool) -> str:
    """Cell background: green better than dense, red worse, on a log scale saturating at 10x (white at 1)."""
    if v != v or v <= 0:
        return "#f4f4f4"
    t = max(-1.0, min(1.0, math.log10(v))) * (1 if good_high else -1)
    a = 0.08 + 0.55 * abs(t) if abs(t) > 0.01 else 0.0
    rgb = (26, 152, 80) if t > 0 else (215, 48, 39)
    return f"rgba({rgb[0]},{rgb[1]},{rgb[2]},{a:.2f})"


def _tip(r: dict[str, Any]) -> str:
    parts = [f"{r['label']} at {r['bits']} bits on {r['design']}: speedup {fmt_ratio(r['speedup_vs_dense'])}x, "
             f"energy ratio {fmt_ratio(r['energy_ratio_vs_dense'])} vs dense at {r['bits']} bits."]
    if r.get("gpu"):
        u = r.get("utilization", math.nan)
        parts.append(f"GPU: latency limited by {r['latency_limiter']} (the GEMMs use {small_pct(u)} of its tensor peak "
                     f"or memory bandwidth).")
    elif r.get("latency_limiter"):
        parts.append(f"Latency limited by {r['latency_limiter']} ({r['latency_share']:.0%} of cycles).")
    if r.get("energy_top"):
        parts.append(f"Largest energy share: {r['energy_top']} ({r['energy_top_share']:.0%}).")
    if r.get("sram"):
        parts.append(f"Weights {fmt_bytes(r.get('model_bytes'))} {r['sram']} SRAM ({fmt_bytes(r.get('sram_bytes'))}).")
    if r.get("runs_as_line") and not r.get("runs_as_pattern"):  # with a pattern, the why line "runs as 2:4: ..." says it
        parts.append(f"Runs as another pattern: {r['runs_as_line']}.")
    if r.get("why"):
        parts.append(f"Why: {r['why']}.")
    parts.append(f"Point {r['point_id']}.")
    return " ".join(parts)


def _td(v: float, col: str, good_high: bool, r: dict[str, Any] | None, tip: bool = True) -> str:
    """A same-bits cell; ``tip``: with the point's tooltip (False: the energy ratio cell, whose tooltip the page's
    script copies from the speedup cell of its point, :data:`SHARED_TIPS_JS`)."""
    if r is None:
        return '<td class="na" title="not run (no datatype of that width on this design)">\u2013</td>'
    mark = CLIFF_MARKS.get(r.get("sram", ""), "")
    title = f' title="{html.escape(_tip(r))}"' if tip else ""
    return (f'<td style="background:{ratio_color(v, good_high)}"{title} '
            f'data-point="{r["point_id"]}" data-col="{col}" data-value="{v!r}">{fmt_ratio(v)}'
            f'{f"<sup>{mark}</sup>" if mark else ""}</td>')


def _group(recs: list[dict], keys: tuple[str, ...]) -> dict[tuple, list[dict]]:
    """Records grouped by ``keys``, groups in sorted key order (one pass: no pandas selection per group)."""
    out: dict[tuple, list[dict]] = {}
    for r in recs:
        out.setdefault(tuple(r[k] for k in keys), []).append(r)
    return dict(sorted(out.items(), key=lambda kv: tuple(v if isinstance(v, (int, float, np.integer)) else str(v)
                                                         for v in kv[0])))


def _by_design(recs: list[dict]) -> list[tuple[str, list[dict]]]:
    """(design, its records) with the accelerators first and the GPUs beside them (``design_order``)."""
    groups = {d: g for (d,), g in _group(recs, ("design",)).items()}
    return [(d, groups[d]) for d in design_order(groups)]


def _mac_skips(rows: list[dict]) -> tuple[dict[str, float], list[str]]:
    """From same-bits records: (label -> the largest share of dense's MACs it skipped over its bitwidths, for
    the sparse agents that skipped some; the sparse agents that skipped none). ``macs_issued`` vs
    ``macs_dense``; an agent without MAC counts is in neither."""
    skipped: dict[str, float] = {}
    for r in rows:
        if r["pattern"] != "dense":
            share = skipped_share(r.get("macs_issued"), r.get("macs_dense"))
            if share == share:
                skipped[r["label"]] = max(skipped.get(r["label"], 0.0), share)
    return {a: v for a, v in skipped.items() if v > 0}, [a for a, v in skipped.items() if v == 0]


def _skipped_text(some: dict[str, float]) -> str:
    return "Share of dense's MACs skipped: " + ", ".join(f"{a} {small_pct(v)}" for a, v in some.items()) + "."


def gpu_mapping_note(rows: list[dict]) -> str:
    """What a GPU design point ran, from its same-bits records: the datatype per bitwidth, the share of
    dense's MACs each agent skipped (its layers whose mask fits 2:4 ran 2:4, the others dense), and the
    agents that ran entirely dense (a GPU's sparse tensor cores run 2:4 only)."""
    dtypes = sorted({(int(r["bits"]), str(r["datatype"])) for r in rows if r.get("datatype")}, reverse=True)
    out = ["GPU" + (f" ({', '.join(f'{b} b run {d}' for b, d in dtypes)})" if dtypes else "")
           + ": its sparse tensor cores run 2:4 only. A layer whose mask fits 2:4 (2:4, 1:4, 1:8) runs 2:4 "
           "(cuSPARSELt), any other runs dense, its zeros stored and multiplied (and a train step's weight gradients run dense)."]
    some, none = _mac_skips(rows)
    if some:
        out.append(_skipped_text(some))
    if none:
        out.append(f"Ran dense (no layer's mask fits 2:4): {', '.join(none)}.")
    return " ".join(out)


def accelerator_mapping_note(rows: list[dict]) -> str:
    """What an accelerator ran, from its same-bits records: each agent's share of dense's MACs skipped
    (``macs_issued`` vs ``macs_dense``), the agents that skipped none (the design ran them on dense's
    schedule), and the agents whose every cell equals another's because they issue the same MACs (a design
    without a 1:8 schedule runs a 1:8 mask as the sparsest N:M it has, so 1:4 and 1:8 read the same)."""
    some, none = _mac_skips(rows)
    out = []
    if some:
        out.append(_skipped_text(some))
    if none:
        out.append(f"None skipped (run on dense's schedule): {', '.join(none)}.")
    # Agents with the same MACs issued and the same figures at every bitwidth: one schedule, said once.
    per: dict[str, dict[int, dict]] = {}
    for r in rows:
        if r["pattern"] != "dense":
            per.setdefault(r["label"], {})[int(r["bits"])] = r
    same: dict[tuple, list[str]] = {}
    for label in some:
        same.setdefault(tuple(sorted((b, r.get("macs_issued"), fmt_ratio(r["speedup_vs_dense"]),
                                      fmt_ratio(r["energy_ratio_vs_dense"])) for b, r in per[label].items())),
                        []).append(label)
    for labels in same.values():
        if len(labels) > 1:
            names = ", ".join(labels[:-1]) + " and " + labels[-1]
            out.append(f"{names} issue the same MACs ({small_pct(1 - some[labels[0]])} of dense's): the design "
                       "runs them on one schedule, so their cells match; only their returns tell them apart.")
    return " ".join(out)


def _dense_per_bits(by: dict[tuple, dict], bits: list[int]) -> list[Optional[dict]]:
    """The dense record of each bitwidth in a design's same-bits records (dense TD3, else any trained dense)."""
    return [by.get(("td3", "dense", b)) or next((r for k, r in by.items() if k[2] == b and r["pattern"] == "dense"
                                                and r["mask_source"] == "trained"), None) for b in bits]


def design_card(rows: list[dict], design: str, color: str, agents: list[tuple[str, str]], bits: list[int]) -> str:
    """One design's pattern x bitwidth table (``rows``: its same-bits records): speedup and energy ratio vs
    dense at the same bits. Under the table, what ran: on a GPU what ran 2:4 and what ran dense
    (``gpu_mapping_note``), on an accelerator the MACs each agent skipped (``accelerator_mapping_note``)."""
    by = {(r["method"], r["agent"], int(r["bits"])): r for r in rows}
    head = ("<thead><tr><th rowspan=2 class=l>agent</th>"
            f"<th colspan={len(bits)}>speedup vs dense (x, higher is faster)</th>"
            f"<th colspan={len(bits)}>energy ratio vs dense (lower saves)</th></tr><tr>"
            + "".join(f"<th>{b} b</th>" for b in bits) * 2 + "</tr></thead>")
    body = []
    dense = _dense_per_bits(by, bits)
    if any(dense):  # a sweep without dense points has no absolute figures to give
        body.append("<tr class=abs><td class=l>dense, absolute</td>"
                    + "".join(f"<td>{fmt_time(d['latency_s']) if d else '&ndash;'}</td>" for d in dense)
                    + "".join(f"<td>{fmt_energy(d['energy_pj']) if d else '&ndash;'}</td>" for d in dense) + "</tr>")
    for method, agent in agents:
        cells = [by.get((method, agent, b)) for b in bits]
        if all(c is None for c in cells) or (cells and all(c is None or c["pattern"] == "dense" for c in cells)):
            continue
        label = agent_label(method, agent)
        body.append(f"<tr><td class=l>{html.escape(label)}</td>"
                    + "".join(_td(c["speedup_vs_dense"] if c else math.nan, "speedup_vs_dense", True, c) for c in cells)
                    + "".join(_td(c["energy_ratio_vs_dense"] if c else math.nan, "energy_ratio_vs_dense", False, c,
                                  tip=False) for c in cells) + "</tr>")
    gpu = bool(rows) and bool(rows[0].get("gpu"))
    if gpu:
        note = f'<p class="small gpunote">{html.escape(gpu_mapping_note(rows))}</p>'
    else:
        acc = accelerator_mapping_note(rows)
        note = f'<p class="small mapnote">{html.escape(acc)}</p>' if acc else ""
    return (f'<div class="card"><table class="ans" data-design="{html.escape(design)}"><caption>'
            f'<span class="sw" style="background:{color}"></span>{html.escape(design)}{" (GPU)" if gpu else ""}'
            f'</caption>{head}<tbody>{"".join(body)}</tbody></table>{note}</div>')


def extreme_notes(rows: list[dict]) -> list[dict]:
    """One entry per (design, cause) for cells whose ratio is extreme, designs in the tables' order (GPUs
    last): ``design``, ``cause`` (the reason's first words: "SRAM cliff", "DRAM-bound", ...), ``numbers``
    (the rest of the reason, with the numbers of its most extreme cell), ``example`` (that cell,
    "agent @bits b", when the entry explains several) and ``cells``: (agent, "16 b 1.05x/0.814, ...") per
    agent, speedup x / energy ratio vs dense at the same bits."""
    groups: dict[tuple[str, str], list[dict]] = {}
    for r in rows:
        if is_extreme(r["pattern"], r["speedup_vs_dense"], r["energy_ratio_vs_dense"]) and r.get("why"):
            groups.setdefault((r["design"], why_cause(r)[0]), []).append(r)
    rank = {d: i for i, d in enumerate(design_order({d for d, _ in groups}))}
    out = []
    for (design, _), rs in sorted(groups.items(), key=lambda kv: (rank[kv[0][0]], kv[0][1])):
        worst = max(rs, key=lambda r: abs(math.log(max(r["energy_ratio_vs_dense"], 1e-12)))
                    + abs(math.log(max(r["speedup_vs_dense"], 1e-12))))
        by_agent: dict[str, list[str]] = {}
        for r in rs:
            by_agent.setdefault(r["label"], []).append(
                f"{r['bits']} b {fmt_ratio(r['speedup_vs_dense'])}x/{fmt_ratio(r['energy_ratio_vs_dense'])}")
        cause, numbers = why_cause(worst)
        out.append({"design": design, "cause": cause, "numbers": numbers,
                    "example": f"{worst['label']} @{worst['bits']} b" if len(rs) > 1 else "",
                    "cells": [(a, ", ".join(v)) for a, v in by_agent.items()]})
    return out


def why_cause(r: dict) -> tuple[str, str]:
    """(cause, numbers) of a same-bits record's why line for the extreme-cell table: the words before its first
    ": " and the rest ("SRAM cliff", "runs as 2:4", "no gain in speed"), or, where those words carry the record's
    own figures ("leakage is 69% of the energy: ...", "compute-bound (63% of cycles computing); ...") or there is no
    ": ", its verdict's name and the whole line: one row per cause, not one per percentage, and no line in the
    cause column."""
    why = r.get("why") or ""
    head, sep, rest = why.partition(": ")
    verdict = str(r.get("verdict") or "")
    if sep and (verdict == Verdict.RUNS_AS or not any(ch.isdigit() for ch in head)):
        return head, rest
    return (verdict, why) if verdict else (head, rest)


#: Rows of a "why the extreme cells are extreme" table shown open on the page; a longer one starts closed.
EXTREME_OPEN_MAX = 20
EXTREME_HEAD = ("design", "cause", "the numbers behind it", "cells it explains (speedup x / energy ratio vs dense)")


def extreme_html(notes: list[dict], colors: dict[str, str]) -> str:
    """The extreme-cell explanations as a table: design, cause in a word or two, its numbers, and one line
    per agent listing the cells it explains."""
    body = []
    for n in notes:
        eg = f' <span class=cells>(numbers of {html.escape(n["example"])})</span>' if n["example"] else ""
        cells = "<br>".join(f"<b>{html.escape(a)}</b> {html.escape(c)}" for a, c in n["cells"])
        sw = f'<span class="sw" style="background:{colors.get(n["design"], "#777")}"></span>'
        body.append(f'<tr data-design="{html.escape(n["design"])}"><td class=l>{sw}{html.escape(design_title(n["design"]))}</td>'
                    f'<td class=l><b>{html.escape(n["cause"])}</b></td><td class=l>{html.escape(n["numbers"])}{eg}</td>'
                    f'<td class="l cells">{cells}</td></tr>')
    head = "".join(f"<th class=l>{h}</th>" for h in EXTREME_HEAD)
    # A long table starts closed: with 15 designs each scenario's ran to 40 rows (4,000 px) between one scenario's
    # same-bits tables and the next's; each cell's tooltip still says what limits it.
    shut = len(notes) > EXTREME_OPEN_MAX
    summary = (f"Why the extreme cells are extreme ({len(notes)} rows, one per design and cause: click to open)"
               if shut else "Why the extreme cells are extreme")
    return (f"<details{'' if shut else ' open'} class=why><summary>{summary}</summary><table class=whyt>"
            f"<thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table></details>")


def extreme_markdown(notes: list[dict]) -> str:
    """The extreme-cell explanations as a Markdown table (same columns as the page)."""
    lines = ["| " + " | ".join(EXTREME_HEAD) + " |", "|---|---|---|---|"]
    for n in notes:
        eg = f" (numbers of {n['example']})" if n["example"] else ""
        cells = "<br>".join(f"**{md_text(a)}** {md_text(c)}" for a, c in n["cells"])
        lines.append(f"| {md_text(design_title(n['design']))} | **{md_text(n['cause'])}** | {md_text(n['numbers'] + eg)} | {cells} |")
    return "\n".join(lines)


def quantization_card(q: list[dict], colors: dict[str, str], bits: list[int]) -> str:
    """Quantization alone: dense at B bits vs dense at the design's highest bits, one row per design."""
    # The baseline in its own column, in words: "a100_sxm (16 b)" read as a design variant, not as what it divides by.
    head = ("<thead><tr><th rowspan=2 class=l>design</th><th rowspan=2 class=l>baseline</th>"
            f"<th colspan={len(bits)}>speedup (x)</th><th colspan={len(bits)}>energy ratio</th></tr><tr>"
            + "".join(f"<th>{b} b</th>" for b in bits) * 2 + "</tr></thead>")
    body = []
    for design, g in _by_design(q):
        by = {int(r["bits"]): r for r in g}
        ref = int(g[0]["ref_bits"])
        cells = []
        for col, good in (("speedup", True), ("energy_ratio", False)):
            for b in bits:
                r = by.get(b)
                if r is None:
                    cells.append('<td class="na">\u2013</td>')
                    continue
                v = r[col]
                cells.append(f'<td style="background:{ratio_color(v, good)}" title="dense at {b} bits (point '
                             f'{r["point_id"]}) vs dense at {ref} bits (point {r["ref_point_id"]})" data-point="{r["point_id"]}" '
                             f'data-col="quantization_{col}" data-value="{v!r}">{fmt_ratio(v)}</td>')
        body.append(f'<tr><td class=l><span class="sw" style="background:{colors.get(design, "#777")}"></span>'
                    f'{html.escape(design)}</td><td class=l>dense at {ref} bits</td>{"".join(cells)}</tr>')
    return (f'<div class="card"><table class="ans quant"><caption>Quantization alone (no sparsity): dense at B bits vs '
            f'dense at the design\'s highest bitwidth</caption>{head}<tbody>{"".join(body)}</tbody></table></div>')


def glance_setting(table: pd.DataFrame) -> tuple[str, int, int] | None:
    """(scenario, batch, bits) of the glance table: the RL quality table's setting (``quality.hardware_scenario``:
    inference at its smallest batch, the control loop; else the first scenario's) at its ``quality.HW_BITS``
    when swept, else at the most common bitwidth there."""
    if not len(table):
        return None
    sc, batch = hardware_scenario(table)
    rows = table[(table.scenario == sc) & (table.batch == batch)]
    bits = HW_BITS if (rows.bits == HW_BITS).any() else int(rows.bits.value_counts().idxmax())
    return sc, batch, bits


def _glance_returns(ret: pd.DataFrame, env: str, scenario: str, bits: int) -> tuple[dict, str]:
    """(method, agent) -> return-table row the glance pairs with its points, and the column's title: an
    inference point at B bits pairs with the agent evaluated at B bits, a train-step point with the agent
    as trained (no agent was trained at B bits)."""
    if not len(ret):
        return {}, f"return at {bits} b"
    t = ret[ret.env == env]
    if scenario == "train_step":
        return ({(r["method"], r["agent"]): r for r in t[t.bits == t.trained_bits].to_dict("records")},
                "return as trained")
    return {(r["method"], r["agent"]): r for r in t[t.bits == bits].to_dict("records")}, f"return at {bits} b"


def limiter_word(r: dict[str, Any]) -> str:
    """What limits a same-bits record, in a word or two for the glance table (the full line is its tooltip): its
    verdict's word (``reports.why.verdict_word``), and nothing else, so the word and the why line, which gives the
    verdict's cause first, cannot disagree."""
    return verdict_word(r.get("verdict") or "", r.get("runs_as_pattern") or "")


GLANCE_HELP = ("Each design cell: speedup (x, higher is faster) / energy ratio (lower saves), both vs dense on "
               "that design at the same bits, and what limits the point, the cause its why line gives first: compute or "
               "DRAM (the largest share of its cycles; DRAM also where DRAM stalls are over half of them), metadata (over a "
               "quarter of its cycles wait for N:M index metadata), leakage (over half its energy: energy follows latency, "
               "not the MAC count), SRAM cliff (these weights fit the design's SRAM, dense's do not; misses SRAM: the "
               "reverse), runs as 2:4 (the design runs this pattern as another N:M, here 2:4, so the figures are 2:4's: "
               "a 1:4 mask on a 2:4-only design), runs dense (the design cannot skip this pattern's zeros), no gain (what it skips does not make "
               f"it {NO_GAIN:.0%} faster than dense: too few zeros skipped, or the cycles wait for their metadata or for DRAM), "
               f"slower (over {NO_GAIN:.0%} slower than dense: its cycles wait for N:M or index metadata dense never loads), "
               "fixed cost (a GPU call's fixed time, not its MACs), throughput (a GPU busy on its MACs or bandwidth). "
               "Return: evaluation return at these bits (a train step pairs with the agent as trained) as a fraction of "
               "dense TD3 as trained, min-max over seeds; "
               "two agents whose ranges overlap differ within seed noise.")
#: The glance help's last sentence: on the page, whose cells have a tooltip, and in summary.md.
GLANCE_MORE_HTML = " Hover a cell for the full reason; every scenario, batch and bitwidth is in the tables below."
GLANCE_MORE_MD = " Every scenario, batch and bitwidth is in the tables below."


def glance_rows(table: pd.DataFrame, ret: pd.DataFrame, env: str,
                agents: list[tuple[str, str]]) -> tuple[str, str, list[str], list[tuple], Optional[tuple]] | None:
    """What the glance table shows, for the page and summary.md alike: (title, return column's title,
    designs, rows, reference), a row (method, agent, its return-table row or None, its same-bits record or
    None per design) per agent with a sparse cell; ``reference``: the same for dense (dense TD3, else the
    first trained dense agent; None when the setting has none), whose return at the glance bits is what a
    sparse agent's return compares with at equal bits, and whose latency and energy the ratios divide.
    None when the env has no points or no sparse agent (the page and summary.md then show no glance table,
    not an empty one)."""
    setting = glance_setting(table[table.env == env])
    if setting is None:
        return None
    sc, batch, bits = setting
    recs = table[(table.env == env) & (table.scenario == sc) & (table.batch == batch) & (table.bits == bits)]
    by = {(r["design"], r["method"], r["agent"]): r for r in recs.to_dict("records")}
    designs = design_order(recs.design.unique())
    rt, ret_head = _glance_returns(ret, env, sc, bits)
    rows, refs = [], []
    for method, agent in agents:
        cells = [by.get((d, method, agent)) for d in designs]
        if not all(c is None or c["pattern"] == "dense" for c in cells):
            rows.append((method, agent, rt.get((method, agent)), cells))
        elif any(c is not None and c.get("mask_source", "trained") == "trained" for c in cells):
            refs.append((method, agent, rt.get((method, agent)), cells))
    if not rows:
        return None
    ref = next((r for r in refs if r[0] == "td3"), refs[0] if refs else None)
    return f"{env} at a glance: {_section_title(sc, batch)}, {bits} bits", ret_head, designs, rows, ref


def _returns_only(rows: list[tuple]) -> bool:
    """Whether a glance's return column holds returns, not fractions of dense: some return and no dense TD3
    reference to divide it by (the env's caveat says why)."""
    given = [r for _, _, r, _ in rows if r is not None]
    return bool(given) and not any(r["fraction"] == r["fraction"] for r in given)


def glance_html(table: pd.DataFrame, ret: pd.DataFrame, env: str, agents: list[tuple[str, str]]) -> str:
    """The env's answer in one table: first dense itself (:func:`_glance_reference_html`), then per sparse
    agent its return at the glance bits (fraction of dense with the seed range) and on every design its
    speedup, energy ratio and limiter at those bits."""
    glance = glance_rows(table, ret, env, agents)
    if glance is None:
        return ""
    title, ret_head, designs, rows, ref = glance
    colors = design_colors(table.design.unique())
    unit = "no dense reference: the return, seed range" if _returns_only(rows) else "of dense as trained, seed range"
    head = (f"<thead><tr><th class=l>agent</th><th>{ret_head}<br><span class=unit>{unit}</span></th>"
            + "".join(f'<th><span class="sw" style="background:{colors[d]}"></span>{html.escape(d).replace("_", "_<wbr>")}'
                      f'{"<br>(GPU)" if is_gpu(d) else ""}</th>' for d in designs) + "</tr></thead>")
    body = [] if ref is None else [_glance_reference_html(ref)]
    for method, agent, r, cells in rows:
        one_shot = any(c is not None and c.get("mask_source", "trained") != "trained" for c in cells)
        ret_cell = _glance_return_html(r, "glance_return_fraction", "pruned one-shot: never trained, so never evaluated"
                                       if one_shot else "no evaluation return at these bits")
        tds = []
        for c in cells:
            if c is None:
                tds.append('<td class="na" title="not run at these bits">\u2013</td>')
                continue
            sp, en = c["speedup_vs_dense"], c["energy_ratio_vs_dense"]
            tds.append(f'<td style="background:{ratio_color(sp, True)}" title="{html.escape(_tip(c))}" '
                       f'data-point="{c["point_id"]}" data-col="glance_speedup" data-value="{sp!r}">'
                       f'<b>{fmt_ratio(sp)}x</b> / {fmt_ratio(en)}<br><span class=lim>{html.escape(limiter_word(c))}</span></td>')
        body.append(f"<tr><td class=l>{html.escape(agent_label(method, agent))}</td>{ret_cell}{''.join(tds)}</tr>")
    return (f'<div class="card glance" id="{glance_anchor(env)}"><table class="ans glance" data-env="{html.escape(env)}"><caption>{html.escape(title)}'
            f'<br><span class=unit>{GLANCE_KEY}{"" if ref is None else GLANCE_REF_KEY}</span></caption>{head}<tbody>{"".join(body)}</tbody></table></div>')


#: What a glance design cell holds, under the glance's title on the page (summary.md says it beside the title).
GLANCE_KEY = "each design: speedup x / energy ratio, both vs dense on that design at the same bits; what limits it below"
#: What follows GLANCE_KEY where the glance has dense's row (a sweep with a trained dense agent).
GLANCE_REF_KEY = ". First row: dense itself, its return at these bits and its latency / energy"
#: The glance's first row: dense, whose return a sparse agent's is compared with at equal bits.
GLANCE_REF_LABEL = "reference"


def _latency_energy(r: dict) -> str:
    """A record's own latency and energy, as dense's rows show them: ``12.3 us / 4.56 uJ``."""
    return f"{fmt_time(r['latency_s'])} / {fmt_energy(r['energy_pj'])}"


def _glance_reference_html(ref: tuple) -> str:
    """The glance's dense row: its return at the glance bits (fraction of dense as trained, seed range) and on
    each design its own latency / energy, the figures the row's ratios below divide."""
    method, agent, r, cells = ref
    ret_cell = _glance_return_html(r, "glance_reference_return_fraction", "no evaluation return at these bits")
    tds = "".join(
        '<td class="na" title="not run at these bits">\u2013</td>' if c is None else
        f'<td title="dense at these bits: latency {fmt_time(c["latency_s"])}, energy {fmt_energy(c["energy_pj"])}. '
        f'Point {c["point_id"]}." data-point="{c["point_id"]}" data-col="glance_reference">'
        f'{_latency_energy(c)}<br><span class=lim>= 1x / 1</span></td>'
        for c in cells)
    return (f'<tr class=abs><td class=l>{html.escape(agent_label(method, agent))}: '
            f'{GLANCE_REF_LABEL}</td>{ret_cell}{tds}</tr>')


def _glance_return_html(r: Optional[dict], col: str, missing: str) -> str:
    """A glance row's return cell on the page: the fraction of dense TD3 as trained with its seed range (its
    ``data-col`` is ``col``), or (no dense reference) the return itself with its seed range, or, where ``r``
    is None, a dash whose title is ``missing`` (why there is no return)."""
    if r is None:
        return f'<td class=na title="{missing}">\u2013</td>'
    if r["fraction"] == r["fraction"]:
        spread = (f'<br><span class=spread>{r["fraction_min"]:.2f}\u2013{r["fraction_max"]:.2f}</span>'
                  if r["spread_kind"] else "")
        return (f'<td title="return {r["return_mean"]:.0f}, dense TD3 as trained {r["dense_return"]:.0f}" '
                f'data-col="{col}" data-value="{r["fraction"]!r}">{r["fraction"]:.2f}{spread}</td>')
    rng = seed_range_text(r["return_min"], r["return_max"], "\u2013", unknown="") if r["spread_kind"] else ""
    return (f'<td title="{html.escape(r["dense_missing"])}">{r["return_mean"]:.0f}'
            + (f"<br><span class=spread>{rng}</span>" if rng else "") + "</td>")


def _glance_return_md(r: Optional[dict]) -> str:
    """A glance row's return in summary.md: the fraction of dense with its seed range, or (no dense reference)
    the return itself with its seed range, as in the return table."""
    if r is None:
        return "-"
    if r["fraction"] == r["fraction"]:
        return f"{r['fraction']:.2f}" + (f" [{r['fraction_min']:.2f}-{r['fraction_max']:.2f}]" if r["spread_kind"] else "")
    return f"{r['return_mean']:.0f}" + (f" [{seed_range_text(r['return_min'], r['return_max'])}]" if r["spread_kind"] else "")


def glance_markdown(table: pd.DataFrame, ret: pd.DataFrame, env: str, agents: list[tuple[str, str]]) -> str:
    """``glance_html`` as Markdown: the same cells, the limiter in brackets."""
    glance = glance_rows(table, ret, env, agents)
    if glance is None:
        return ""
    title, ret_head, designs, rows, ref = glance
    of = "(no dense TD3 reference: the return itself)" if _returns_only(rows) else "as a fraction of dense TD3 as trained"
    lines = [f"**{md_text(title)}** (speedup x / energy ratio vs dense at "
             f"the same bits [limiter]; {ret_head} {of} [min-max over seeds]"
             + ("; first row: dense itself, its return and its latency / energy" if ref is not None else "") + ")\n",
             f"| agent | {ret_head} | " + " | ".join(md_text(design_title(d)) for d in designs) + " |",
             "|---|---:|" + "---:|" * len(designs)]
    if ref is not None:
        method, agent, r, cells = ref
        lines.append(f"| {md_text(agent_label(method, agent))}: {GLANCE_REF_LABEL} | {_glance_return_md(r)} | " + " | ".join(
            "-" if c is None else _latency_energy(c) for c in cells) + " |")
    for method, agent, r, cells in rows:
        lines.append(f"| {md_text(agent_label(method, agent))} | {_glance_return_md(r)} | " + " | ".join(
            "-" if c is None else f"{fmt_ratio(c['speedup_vs_dense'])}x / {fmt_ratio(c['energy_ratio_vs_dense'])} "
            f"[{limiter_word(c)}]" for c in cells) + " |")
    return "\n".join(lines) + "\n"


def _sections(table: pd.DataFrame, quant: pd.DataFrame) -> tuple[dict, dict]:
    """env -> (scenario, batch) -> same-bits records; (env, scenario, batch) -> quantization records."""
    sections: dict[str, dict[tuple, list[dict]]] = {}
    for (env, sc, batch), recs in _group(table.to_dict("records"), SECTION).items():
        sections.setdefault(env, {})[(sc, batch)] = recs
    return sections, _group(quant.to_dict("records"), SECTION)


def _section_title(scenario: str, batch: int) -> str:
    return f"{scenario.replace('_', ' ')}, batch {batch}"


def html_section(df: pd.DataFrame, returns_html: dict[str, str], caveats: dict[str, list[str]],
                 table: pd.DataFrame | None = None, quant: pd.DataFrame | None = None,
                 ret: pd.DataFrame | None = None) -> str:
    """The page's first section: per env, the return card and caveats, then per scenario the design
    cards (same bits), the quantization card and the explanations of extreme cells. ``table`` and
    ``quant``: ``same_bits(df)`` and ``quantization_gain(df)`` when already computed."""
    table = same_bits(df) if table is None else table
    sections, qsec = _sections(table, quantization_gain(df) if quant is None else quant)
    colors = design_colors(df.design.unique())
    bits = sorted((int(b) for b in df.bits.unique()), reverse=True)
    agents_all = agent_order(df)
    # The answer at a glance first: one table per env at the control loop's setting, then the detail.
    glances = []
    # An env with a glance table: its caveats are said there, where a reader meets them first; the env's
    # section below repeated them word for word beside its return table. It now points up to them (a link
    # from the page's "Answer:" list lands on the section, past the glance).
    in_glance = set()
    for env in sorted(df.env.unique()):
        g = glance_html(table, ret if ret is not None else pd.DataFrame(), env, agents_all)
        if g:  # the env's caveats (dense has not learned, seeds disagree) right under its numbers
            g += "".join(f'<p class="note caveat small">Caveat: {html.escape(c)}</p>' for c in caveats.get(env, []))
            in_glance.add(env)
        glances.append(g)
    parts = ['<h2 id="answer">What each pattern buys at equal bits, and what it costs</h2>']
    if any(glances):
        parts.append("".join(glances) + f'<p class=small>{html.escape(GLANCE_HELP + GLANCE_MORE_HTML)}</p>')
    key = agent_key(df)
    if key:  # the labels' words (0.9/0.85, QAT8, one-shot) said once, under the first tables that use them
        parts.append("<p class=small><b>Agents</b>: " + "; ".join(html.escape(k) for k in key) + ".</p>")
    parts += [f"<p class=lead>{html.escape(INTRO)} Hover a cell for what limits it (compute, DRAM bandwidth, "
             "metadata, SRAM fit, leakage; on a GPU: its fixed per-call cost); extreme cells are explained under "
             "each scenario.</p>"]
    for env in sorted(df.env.unique()):
        anchor = env_anchor(env)
        parts.append(f'<h3 id="{anchor}">{html.escape(env)}</h3>')
        if env in in_glance:
            n = len(caveats.get(env, []))
            env_caveats = ([f'<p class=small>{n} caveat{"s" if n > 1 else ""} on these returns: under the '
                            f'<a href="#{glance_anchor(env)}">{html.escape(env)} glance table</a> above.</p>'] if n else [])
        else:
            env_caveats = [f'<p class="note caveat">Caveat: {html.escape(c)}</p>' for c in caveats.get(env, [])]
        if returns_html.get(env):
            parts.append('<div class="cards">' + returns_html[env] + '<div class="card small">'
                         + "".join(env_caveats) + RETURN_HELP + "</div></div>")
        else:
            parts += env_caveats
        env_agents = [a for a in agents_all if ((df.env == env) & (df.method == a[0]) & (df.agent == a[1])).any()] \
            if "agent" in df.columns else agents_all
        for (sc, batch), rows in sections.get(env, {}).items():
            parts.append(f'<h4 id="{scenario_anchor(env, sc, int(batch))}">{html.escape(env)}: '
                         f'{_section_title(sc, int(batch))}</h4>')
            if sc == "train_step":
                parts.append("<p class=small>Train-step points: the hardware runs one TD3 update with B-bit "
                             "arithmetic; the return beside them is the agent <b>as trained</b> (the "
                             "'as trained' column: trained and evaluated at its own precision). No agent was "
                             "trained at the other bitwidths.</p>")
            else:
                parts.append("<p class=small>Inference points at B bits pair with the return of the agent "
                             "evaluated with its actor fake-quantized to B bits (the return table's B-bit column).</p>")
            cards = [design_card(g, d, colors[d], env_agents, sorted({int(r["bits"]) for r in g}, reverse=True))
                     for d, g in _by_design(rows)]
            if qsec.get((env, sc, batch)):  # none without dense points: no empty table
                cards.append(quantization_card(qsec[(env, sc, batch)], colors, bits))
            parts.append('<div class="cards">' + "".join(cards) + "</div>")
            notes = extreme_notes(rows)
            if notes:
                parts.append(extreme_html(notes, colors))
    parts.append(SHARED_TIPS_JS)
    return "\n".join(parts)


#: A point's tooltip is written once, on its speedup cell (half a kilobyte each: 3 MB of a 15-design sweep's page
#: said twice); this copies it to the energy ratio cell of the same point, in the same row, as the page loads.
SHARED_TIPS_JS = ("<script>document.querySelectorAll('table.ans td[data-col=\"energy_ratio_vs_dense\"]:not([title])')"
                  ".forEach(function(td){var s=td.parentNode.querySelector('td[data-col=\"speedup_vs_dense\"][data-point=\"'"
                  "+td.dataset.point+'\"][title]');if(s)td.title=s.title;});</script>")


def _pct_removed(x: float) -> str:
    return f"{100 * x:g}%"


def size_caveats(df: pd.DataFrame) -> dict[str, list[str]]:
    """env -> a caveat naming the trained agents whose networks are not dense TD3's size (another
    ``--hidden``): their speedups and energy ratios are against their own layers run dense, so they do not
    divide the 'dense, absolute' row, which is dense TD3's. Compared by ``macs_dense`` at inference (its
    smallest batch; else the first scenario). None for an env without dense TD3 or a table without the column."""
    if "macs_dense" not in df or df.empty:
        return {}
    df = with_agent(df)
    out: dict[str, list[str]] = {}
    for env, e in df.groupby("env", sort=True):
        scen = "inference" if (e.scenario == "inference").any() else sorted(map(str, e.scenario.unique()))[0]
        e = e[e.scenario == scen]
        e = e[e.batch == e.batch.min()]
        dense = e[(e.method == "td3") & (e.mask_source == "trained")].macs_dense.dropna()
        if dense.empty:
            continue
        ref = float(dense.iloc[0])
        odd = []
        for method, agent in agent_order(e):
            a = e[(e.method == method) & (e.agent == agent) & (e.mask_source == "trained")].macs_dense.dropna()
            if len(a) and method != "td3" and not math.isclose(float(a.iloc[0]), ref, rel_tol=1e-9):
                odd.append(f"{agent_label(method, agent)} ({float(a.iloc[0]):,.0f} dense MACs per {scen} at batch "
                           f"{int(e.batch.min())}, dense TD3 {ref:,.0f})")
        if odd:
            one = len(odd) == 1
            out[str(env)] = [f"{'this agent is' if one else 'these agents are'} not the size of dense TD3: "
                             f"{'; '.join(odd)}. Each speedup and energy ratio is against {'its' if one else 'each agent'}"
                             f"{'' if one else chr(39) + 's'} own layers run dense, not against dense TD3's 'dense, "
                             f"absolute' figures; compare the agents by their absolute latency and energy (the fronts)."]
    return out


def agent_key(df: pd.DataFrame) -> list[str]:
    """What each agent label of ``df`` means, one sentence each in agent order (RNM-TD3's N:M agents in one),
    built from the label (``hwmodel.agents``: ``rlx2 A/C``, ``gmp S QATb``, ``<pattern> one-shot``, RNM-TD3's
    N:M pattern); a method the report does not know gets no sentence. A one-shot label pruned from a
    different agent in different envs (an env without dense TD3 prunes whichever agent it has) names the
    envs of each of its sentences: ``dense one-shot (Ant-v5)``."""
    from hwmodel.agents import label_fractions, split_layers_label

    df = with_agent(df)
    donors = df.groupby("agent").method.nunique()
    envs = df.groupby(["method", "agent"]).env.agg(lambda e: ", ".join(sorted(map(str, e.unique()))))
    out, nm = [], []
    for method, agent in agent_order(df):
        label, m, words = agent_label(method, agent), method.split("(")[0], agent.split()
        if agent.endswith(" one-shot"):
            if donors.get(agent, 1) > 1:  # the label alone would not say which env's agent this sentence is
                label = f"{label} ({envs[(method, agent)]})"
            pattern = agent[:-len(" one-shot")]
            donor = method[method.find("(") + 1:-1] if "(" in method else "dense"
            frac = pattern.split(":", 1)[1] if pattern.startswith("unstructured:") else ""
            to = (f"({_pct_removed(float(frac))} of each layer's weights removed)" if frac.replace(".", "", 1).isdigit()
                  else f"to {pattern}")
            who = f"the {'dense TD3' if donor == 'td3' else donor} agent's weights"
            if pattern == "dense":  # nothing pruned: the env has no dense TD3 agent, so another one runs dense
                text = (f"{who} run dense as they are (its zeros stored and multiplied), as the env has no dense TD3 "
                        f"agent; never evaluated at that (hardware figures only)")
            else:
                text = f"{who} pruned once by magnitude {to}, never trained after it, so never evaluated (hardware figures only)"
        elif m in ("td3", "rnm-td3") and (layers := split_layers_label(agent))[1]:
            text = (f"{'RNM-TD3' if m == 'rnm-td3' else 'TD3'} with per-layer patterns (nmlab train --layer-sparsity): "
                    f"{layers[0]} in every layer but {layers[1].replace(',', ', ')} (fcK: layer K of the actor and of "
                    f"the critics; actor.fcK / critic.fcK: of one network)")
        elif m == "td3":
            text = "TD3 (Fujimoto et al. 2018), dense: the reference of every ratio and fraction"
        elif m == "rnm-td3":
            nm.append(agent)
            if len(nm) > 1:
                continue
            text = ""  # written once all N:M agents are known
        elif m == "rlx2" and (fr := label_fractions(agent)):
            text = (f"RLx2 (Tan et al. 2023): sparse from the start, {_pct_removed(fr[0])} of the actor's and "
                    f"{_pct_removed(fr[1])} of the critic's weights removed (unstructured)")
        elif m == "gmp" and len(words) >= 2:
            fr = label_fractions(agent)
            to = (f"{_pct_removed(fr[0])} of the weights removed (unstructured)" if fr and fr[0] == fr[1] else
                  f"{_pct_removed(fr[0])} / {_pct_removed(fr[1])} of the actor's / critic's weights removed"
                  if fr else words[1])
            qat = next((w[3:] for w in words[2:] if w.startswith("QAT")), "")
            text = (f"gradual magnitude pruning during training to {to}"
                    + (f", then quantization-aware training at {qat} bits" if qat else ""))
        else:
            continue
        out.append((label, text))
    if nm:
        at = next(i for i, (_, t) in enumerate(out) if t == "")
        out[at] = (f"{', '.join(nm)} (rnm-td3)", "RNM-TD3, TD3 trained with N:M weights in every layer (of each M "
                   "consecutive weights of a row, at most N kept)")
    return [f"{label}: {text}" for label, text in out]


INTRO = ("Hardware: speedup = dense latency / this latency, energy ratio = this energy / dense energy, both "
         "against dense at the same design, scenario, batch and bits (points.parquet's speedup_vs_dense, "
         "energy_ratio_vs_dense), so sparsity is not mixed with quantization; quantization's own gain is the "
         "separate table 'Quantization alone' under each scenario (for designs swept at two bitwidths or more). Colour: green better than dense, red worse "
         "(log scale, full at 10x). \u25c6: the weights fit the design's SRAM while dense's do not (SRAM cliff); "
         "\u25c7: they miss it while dense's fit. Return: evaluation return as a fraction of dense TD3 as trained, "
         "with the lowest and highest seed.")
RETURN_HELP = ("<p>How to read the return table: each cell is the agent's mean evaluation return over its seeds "
               "divided by dense TD3's return as trained (at its own training precision), the figure the caption "
               "gives as 1.00: the sweep's own point of dense there or, where the sweep has no point at that "
               "precision, the quality table the sweep joined (the caption and a caveat then say so). Without a "
               "dense TD3 return to divide by, a cell is the return itself and the caption says why. Below each "
               "cell, the lowest and highest seed on the same scale (mean ± one standard deviation where the "
               "seeds' returns are unknown; none for an agent of one seed). "
               "'as trained' is the agent at its own training precision (what a train-step point pairs with; "
               "from the quality table, like dense's, where the sweep has no point at that precision); "
               "the B-bit columns evaluate the same agent with its actor fake-quantized to B bits (what an "
               "inference point at B bits pairs with). Where two agents' ranges overlap, their difference is "
               "within seed noise.</p>")


def env_anchor(env: str) -> str:
    """The page anchor of an env's answer: ``answer-Hopper-v5``, one per env name. Ids are case-sensitive,
    so case is kept; a character outside a-z, A-Z, 0-9 and ``-`` becomes ``-`` and 8 hex digits of the
    name's SHA-256 are added (``hopper_v5`` and ``hopper-v5`` got one anchor, and a link jumped to the other)."""
    env = str(env)
    plain = "".join(ch if (ch.isascii() and ch.isalnum()) or ch == "-" else "-" for ch in env)
    if plain != env or not env:
        plain += "-" + name_digest(env)
    return "answer-" + plain


def scenario_anchor(env: str, scenario: str, batch: int) -> str:
    """The page anchor of an env's same-bits tables at one scenario and batch: ``answer-Hopper-v5-inference-1``."""
    return f"{env_anchor(env)}-{scenario}-{int(batch)}"


def glance_anchor(env: str) -> str:
    """The page anchor of an env's glance table."""
    return "glance-" + env_anchor(env)[len("answer-"):]


CSS = """
.cards{display:grid;grid-template-columns:repeat(auto-fill,minmax(600px,1fr));gap:10px 18px;align-items:start}
.card{overflow-x:auto;max-width:100%}
table.ans{font-size:12.5px;margin:4px 0 8px}table.ans td,table.ans th{padding:2px 6px}
table.ans td.l,table.ans th.l{text-align:left;white-space:nowrap}table.ans tr.abs td{color:#555;font-size:11.5px}
table.ans td.na{color:#aaa}table.ans sup{color:#333}
.sw{display:inline-block;width:11px;height:11px;border-radius:2px;margin-right:6px;vertical-align:-1px}
.caveat{background:#fdecea;border-left-color:#d62728}.small{font-size:13px;color:#444;margin:4px 0}
.lead{font-size:14px}details.why{font-size:13px;margin:4px 0 14px}table.whyt{border-collapse:collapse;font-size:12.5px;margin-top:4px}
table.whyt td,table.whyt th{border:1px solid #ddd;padding:3px 6px;vertical-align:top;text-align:left}
table.whyt th{background:#f3f3f3}table.whyt td.cells,table.whyt td:nth-child(-n+2){white-space:nowrap}
table.whyt td:nth-child(3){min-width:22em}
h4{margin:18px 0 4px}.cells{color:#555}
.glance{overflow-x:auto;max-width:100%}table.glance{font-size:13px}table.glance td{white-space:nowrap;line-height:1.2}
table.glance tr>:first-child{position:sticky;left:0;z-index:1;background:#fff;box-shadow:inset -1px 0 #ccc}table.glance th:first-child{background:#f3f3f3}
table.glance caption{font-size:14px}table.glance .lim,table.glance .spread,.unit{font-size:11px;color:#444;font-weight:normal}
"""


#: summary.md's key to the design tables of a scenario.
DESIGN_TABLE_KEY_MD = "Each design's table: speedup x | energy ratio, vs dense on that design at the same bits"
#: Added to it where the tables have dense's own row.
DESIGN_TABLE_REF_MD = "; first row: dense's latency / energy"


def markdown(df: pd.DataFrame, ret: pd.DataFrame, caveats: dict[str, list[str]],
             table: pd.DataFrame | None = None, quant: pd.DataFrame | None = None) -> str:
    """The answer section of summary.md: the same tables as the page, as Markdown."""
    table = same_bits(df) if table is None else table
    sections, qsec = _sections(table, quantization_gain(df) if quant is None else quant)
    bits = sorted((int(b) for b in df.bits.unique()), reverse=True)
    out = ["\n## What each pattern buys at equal bits, and what it costs\n"]
    agents = agent_order(df)
    in_glance = set()
    for env in sorted(df.env.unique()):
        g = glance_markdown(table, ret, env, agents)
        if g:
            out.append(g + "".join(f"\n> Caveat: {md_text(c)}\n" for c in caveats.get(env, [])))
            in_glance.add(env)
    out.append(GLANCE_HELP + GLANCE_MORE_MD + "\n")
    key = agent_key(df)
    if key:
        out.append("**Agents**: " + "; ".join(map(md_text, key)) + ".\n")
    out.append(INTRO + "\n")
    for env in sorted(df.env.unique()):
        out.append(f"\n### {md_text(env)}\n")
        if env not in in_glance:  # said under its glance table above, where a reader meets them first
            out += [f"> Caveat: {md_text(c)}\n" for c in caveats.get(env, [])]
        t = ret[ret.env == env] if len(ret) else ret
        if len(t):
            seeds = sorted({s for x in t.seeds for s in str(x).split(",") if s})
            base = t.dense_return.iloc[0]
            spread = (f"[min-max over seeds {', '.join(seeds) or 'unknown'}]" if (t.spread_kind != "").any()
                      else "no seed range (one seed, or the seeds' returns unknown)")
            src = md_text(returns.reference_source(t))
            out.append(f"Return as a fraction of dense TD3 as trained ({returns.return_text(base)}{', ' + src if src else ''}); {spread}\n"
                       if base == base else
                       f"Return (no fraction of dense: {md_text(returns.caption_reason(t))}); {spread}\n")
            # An agent's return as trained taken from the quality table (no sweep point at its bits) gets its column.
            rbits = sorted(set(bits) | {int(b) for b in t.bits}, reverse=True)
            own_bits_text, own_src = returns.own_source(t)
            lines = ["| agent | trained at | " + " | ".join(f"eval {b} b" for b in rbits) + " |",
                     "|---|---:|" + "---:|" * len(rbits)]
            for (method, agent), g in t.groupby(["method", "agent"], sort=False):
                by = {int(r.bits): r for r in g.itertuples(index=False)}
                own = int(g.trained_bits.iloc[0])
                cells = []
                for b in rbits:
                    r = by.get(b)
                    if r is None:
                        cells.append("-")
                        continue
                    if r.fraction == r.fraction:
                        txt = f"{r.fraction:.2f}" + (f" [{r.fraction_min:.2f}-{r.fraction_max:.2f}]" if r.spread_kind else "")
                    else:  # no dense reference: the return itself, as on the page
                        txt = f"{r.return_mean:.0f}" + (f" [{seed_range_text(r.return_min, r.return_max)}]"
                                                       if r.spread_kind else "")
                    cells.append(f"**{txt}**" if b == own else txt)
                out_label = md_text(agent_label(method, agent))
                lines.append(f"| {out_label} | {own} | " + " | ".join(cells) + " |")
            out.append("\n".join(lines) + f"\n\n(bold: as trained{f'; eval {own_bits_text} b: {md_text(own_src)}' if own_src else ''})\n")
        for (sc, batch), rows in sections.get(env, {}).items():
            out.append(f"\n#### {md_text(env)}: {_section_title(sc, int(batch))}\n")
            # What a design's table holds, said once per scenario, not under each of its (up to 15) designs.
            designs = []
            for design, g in _by_design(rows):
                by = {(r["method"], r["agent"], int(r["bits"])): r for r in g}
                designs.append((design, g, by, _dense_per_bits(by, bits)))
            any_dense = any(any(dense) for *_, dense in designs)
            out.append(f"{DESIGN_TABLE_KEY_MD}{DESIGN_TABLE_REF_MD if any_dense else ''}.\n")
            for design, g, by, dense in designs:
                gpu = bool(g[0].get("gpu"))
                lines = [f"**{md_text(design)}**{' (GPU)' if gpu else ''}\n",
                         "| agent | " + " | ".join(f"{b} b" for b in bits) + " |", "|---|" + "---:|" * len(bits)]
                if any(dense):  # dense's own latency and energy, the page's "dense, absolute" row: what the ratios divide
                    lines.append("| dense, absolute | " + " | ".join(_latency_energy(d) if d else "-" for d in dense) + " |")
                for method, agent in agents:
                    cells = [by.get((method, agent, b)) for b in bits]
                    if all(c is None or c["pattern"] == "dense" for c in cells):
                        continue
                    lines.append(f"| {md_text(agent_label(method, agent))} | " + " | ".join(
                        "-" if c is None else f"{fmt_ratio(c['speedup_vs_dense'])}x / {fmt_ratio(c['energy_ratio_vs_dense'])}"
                        + CLIFF_MARKS.get(c.get("sram", ""), "") for c in cells) + " |")
                note = gpu_mapping_note(g) if gpu else accelerator_mapping_note(g)
                out.append("\n".join(lines) + "\n" + (f"\n{md_text(note)}\n" if note else ""))
            q = qsec.get((env, sc, batch), [])
            lines = [] if not q else ["**Quantization alone** (dense at B bits vs dense at the design's highest bits: speedup x | energy ratio)\n",
                     "| design | baseline | " + " | ".join(f"{b} b" for b in bits) + " |", "|---|---|" + "---:|" * len(bits)]
            for design, g in _by_design(q):
                by = {int(r["bits"]): r for r in g}
                lines.append(f"| {md_text(design)} | dense at {int(g[0]['ref_bits'])} bits | " + " | ".join(
                    f"{fmt_ratio(by[b]['speedup'])}x / {fmt_ratio(by[b]['energy_ratio'])}" if b in by else "-"
                    for b in bits) + " |")
            out.append("\n".join(lines) + "\n")
            notes = extreme_notes(rows)
            if notes:
                out.append("Why the extreme cells are extreme:\n\n" + extreme_markdown(notes) + "\n")
    return "\n".join(out)
