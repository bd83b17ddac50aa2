"""RL quality next to hardware gains: one row per env and agent, in summary.md, index.html and as data.

Every figure comes from the sweep table: returns are the ones the sweep joined from the
quality table (``return_mean``, ``return_seeds``, ``return_steps``), hardware figures are the
table's ``speedup_vs_dense_ref`` / ``energy_ratio_vs_dense_ref`` (the side-by-side tables'
numbers). The only other input is the published fractions of dense
(``hwmodel/data/workloads/published_returns.csv``), matched by (env, agent label).

An agent is (env, method, agent label) of the sweep rows (``hwmodel.agents``): ``td3 dense``,
``rnm-td3 2:4``, ``rlx2 rlx2 0.98/0.95``, ``gmp gmp 0.9 QAT8``, or a pattern pruned one-shot.
"""

from __future__ import annotations

import functools
import html
import math
from pathlib import Path
from typing import Any, NamedTuple, Optional

import pandas as pd

from reports.data import design_order, fmt_ratio, md_text, pattern_order, seed_range_text
from hwmodel.agents import label_fractions, normalize_label, one_shot_label
from hwmodel.limits import is_file

FORMAT = "nmlab-quality-hw"
VERSION = 3  # 3: hardware vs dense at the same bits; 2: fractions against dense as trained (1: same bits)
#: Returns are shown at the agent's own training precision and at these weight bitwidths.
RETURN_BITS = (8, 4)
#: Hardware gains are taken at this bitwidth.
HW_BITS = 8
FILENAME = "quality_vs_hardware.json"

ONE_SHOT_REASON = "pruned one-shot: never trained, so never evaluated"


def _agent_column(df: pd.DataFrame) -> pd.Series:
    """The sweep's ``agent`` column; tables written before it existed get the pattern (one-shot marked)."""
    if "agent" in df.columns:
        return df["agent"].astype(object)
    return pd.Series([p if s == "trained" else one_shot_label(p) for p, s in zip(df.pattern, df.mask_source)],
                     index=df.index, dtype=object)


def _own_bits(rows: pd.DataFrame) -> int:
    """The precision the agent was trained at: the workload's weight bits (32 for float training)."""
    if "workload_bits" in rows.columns:
        vals = rows.workload_bits.dropna()
        if len(vals):
            return int(vals.max())
    return 32


def hardware_scenario(df: pd.DataFrame) -> tuple[str, int]:
    """Batch-1 inference (the control loop) when swept: inference at its smallest batch, else the first scenario's."""
    sc = "inference" if (df.scenario == "inference").any() else sorted(df.scenario.unique())[0]
    return sc, int(df[df.scenario == sc].batch.min())


def _num(v: Any) -> Optional[float]:
    return None if v is None or v != v else float(v)


def _sparsity(key: Any) -> str:
    """The quality table's sparsity for an agent: RLx2's fractions ("0.98/0.95"), a mixed agent's label, or the pattern."""
    fr = label_fractions(key.agent) if key.method == "rlx2" else None
    if key.pattern == "mixed":  # per-layer patterns: the table's sparsity is the agent's label ("2:8 fc1=dense")
        return key.agent
    return key.agent.split()[1] if fr else key.pattern


def _dense_agent(env_rows: pd.DataFrame) -> Optional[pd.DataFrame]:
    """Rows of the env's dense TD3 agent (trained, dense; method td3 preferred)."""
    dense = env_rows[(env_rows.mask_source == "trained") & (env_rows.pattern == "dense")]
    if not len(dense):
        return None
    td3 = dense[dense.method == "td3"]
    return td3 if len(td3) else dense[dense.method == sorted(dense.method.unique())[0]]


def fraction_of_dense(return_mean: float, dense_ref: Any) -> dict[str, Any]:
    """``fraction_of_dense``, ``dense_return_mean`` and ``fraction_missing`` of one return against
    the env's dense TD3 return at its training precision (``dense_ref``, a ``DenseReference`` or a row
    with ``return_mean`` and ``bits``; None when there is none: ``dense_reference``). No fraction when
    that return is not positive: a ratio to a non-positive return means nothing."""
    if dense_ref is None:
        return {"fraction_of_dense": None, "dense_return_mean": None, "fraction_missing": "no dense TD3 return"}
    base = float(dense_ref.return_mean)
    if base <= 0:
        return {"fraction_of_dense": None, "dense_return_mean": base,
                "fraction_missing": f"dense TD3's return at {int(dense_ref.bits)} bits is not positive"}
    return {"fraction_of_dense": return_mean / base, "dense_return_mean": base, "fraction_missing": None}


def _return_at(rows: pd.DataFrame, bits: int) -> Optional[pd.Series]:
    """The first row at ``bits`` with a return (all rows of one agent and bitwidth carry the same join)."""
    at = rows[(rows.bits == bits) & rows.return_mean.notna()]
    return at.iloc[0] if len(at) else None


class DenseReference(NamedTuple):
    """Dense TD3's return as trained: what every fraction of dense divides by."""

    return_mean: float
    bits: int
    #: "" when it is the sweep's own row; else where it was taken from, in words.
    source: str


@functools.lru_cache(maxsize=4)
def _quality_groups(path: str, mtime_ns: int, size: int) -> dict:
    """``sweeps.derived.load_quality`` of ``path``, read once per report (the return table and the quality
    document each ask, per env); keyed on the file's mtime and size so an edited file is read again."""
    from sweeps.derived import load_quality

    return load_quality(path)


def quality_groups(path: Any) -> Optional[dict]:
    """The quality table the sweep joined (``path``: sweep.json's ``quality_table``), as
    ``sweeps.derived.load_quality`` groups it, read once per report; None where ``path`` names no
    readable, valid file (not a path, missing, damaged or refused): then the report shows what the
    sweep table alone gives."""
    if not isinstance(path, (str, Path)) or not is_file(path):
        return None
    try:
        st = Path(path).stat()
        return _quality_groups(str(path), st.st_mtime_ns, st.st_size)
    except Exception:  # a damaged or changed quality file
        return None


def as_trained_from_quality(quality_table: Any,
                            agents: dict[tuple, tuple[str, int, dict[int, float]]]) -> dict[tuple, dict[str, Any]]:
    """The one rule for a return as trained that the sweep has no point of (a GPU-only sweep runs 16 and 8 bits;
    ``bits: [8]``): dense TD3's reference (:func:`dense_reference`) and every agent's
    (``reports.returns.return_table``) both take it here.

    ``agents``: (env, method, agent) -> (pattern, own bits, {bits: the sweep's return there}). Gives
    (env, method, agent) -> the row the sweep would have joined at the agent's own bits from the quality table it
    joined (``quality_table``, sweep.json's path), joined as the sweep joins (``sweeps.derived.join_quality``: same
    env, pattern, bits, method and fractions; seeds averaged). Only while that table still gives the sweep's returns
    of that agent at every bitwidth the sweep has (at least one, each to 1e-9): a table changed since the sweep
    gives none."""
    groups = quality_groups(quality_table)
    if groups is None or not agents:
        return {}
    import pyarrow as pa

    from sweeps.derived import join_quality

    # Each agent at its own bits, then at every bitwidth the sweep has: the check that the table is the sweep's.
    want = [{"env": env, "pattern": pattern, "bits": b, "mask_source": "trained", "method": method, "agent": agent}
            for (env, method, agent), (pattern, own, swept) in agents.items() for b in (own, *swept)]
    joined = iter(join_quality(pa.Table.from_pylist(want), groups).to_pylist())
    out: dict[tuple, dict[str, Any]] = {}
    for key, (_, _, swept) in agents.items():
        at_own, rest = next(joined), [next(joined) for _ in swept]
        if swept and at_own["return_mean"] == at_own["return_mean"] and all(
                math.isclose(j["return_mean"], float(swept[b]), rel_tol=1e-9, abs_tol=1e-9) for j, b in zip(rest, swept)):
            out[key] = at_own
    return out


def dense_reference(dense: Optional[pd.DataFrame], quality_table: Any = None) -> Optional[DenseReference]:
    """The env's dense TD3 return as trained (``dense``: its rows, ``_dense_agent``; None: none swept): the
    sweep's return at dense's own precision (``_own_bits``). A sweep with no point at that precision (a GPU-only
    sweep, bits [16, 8]; or bits [8]) takes it from the quality table it joined (``quality_table``, sweep.json's
    path) by :func:`as_trained_from_quality`: a table changed since the sweep gives no reference. None when neither
    has one."""
    if dense is None:
        return None
    bits = _own_bits(dense)
    row = _return_at(dense, bits)
    if row is not None:
        return DenseReference(float(row.return_mean), bits, "")
    key = (dense.env.iloc[0], dense.method.iloc[0], _agent_column(dense).iloc[0])
    swept = dense[dense.return_mean.notna()].drop_duplicates("bits")
    got = as_trained_from_quality(quality_table, {key: ("dense", bits, {int(b): float(r) for b, r in
                                                                         zip(swept.bits, swept.return_mean)})})
    if key not in got:
        return None
    return DenseReference(got[key]["return_mean"], bits, f"taken from the quality table {Path(quality_table).name}, "
                          f"which the sweep joined: the sweep has no {bits}-bit point of dense TD3, its own precision")


def quality_document(df: pd.DataFrame, published: dict[tuple[str, str], tuple[float, str]],
                     quality_table: Optional[str] = "given", spread: Optional[pd.DataFrame] = None) -> dict[str, Any]:
    """The table as data (``quality_vs_hardware.json``).

    Args:
        df: the sweep table (every row; groups by env and agent).
        published: (env, canonical label) -> (published fraction of dense, source), from
            :func:`hwmodel.agents.load_published`.
        quality_table: the quality table the sweep joined (its path), or None when it joined
            none (then a missing return says so instead of "no quality row"); where the sweep has no
            point of dense TD3 at its own precision, the reference is taken from it (``dense_reference``).
        spread: the seed spread of each return, ``reports.returns.return_table`` of the same rows (None:
            none given, the entries' ``return_min``/``return_max`` stay null).
    """
    df = df.assign(agent=_agent_column(df))
    # Only the columns used: row selections on the full table (60+ columns) dominate the time otherwise.
    df = df[[c for c in ("env", "method", "agent", "pattern", "mask_source", "bits", "design", "scenario", "batch",
                         "point_id", "return_mean", "return_seeds", "return_steps", "workload_bits", "speedup_vs_dense",
                         "energy_ratio_vs_dense") if c in df.columns]]
    scenario, batch = hardware_scenario(df)
    spreads = _spreads(spread)
    # Returns as trained the sweep has no point of, taken from the quality table (reports.returns.return_table).
    taken = ({(r.env, r.method, r.agent, int(r.bits)): r for r in spread.itertuples(index=False) if r.from_quality_table}
             if spread is not None and len(spread) and "from_quality_table" in spread.columns else {})
    designs = design_order(df.design.unique())
    has_hw = "speedup_vs_dense" in df.columns
    rows_out: list[dict[str, Any]] = []
    for env, env_rows in df.groupby("env", sort=True):
        dense = _dense_agent(env_rows)
        # One reference per env: dense TD3 as trained (full precision), so each cell says what that
        # (agent, bits) keeps of the dense agent; dense itself collapses at 4 bits, a useless yardstick.
        dense_ref = dense_reference(dense, quality_table)
        order = {p: i for i, p in enumerate(pattern_order(env_rows.pattern))}
        keys = env_rows[["method", "agent", "pattern", "mask_source"]].drop_duplicates()
        keys = sorted(keys.itertuples(index=False), key=lambda k: (
            0 if dense is not None and k.method == dense.method.iloc[0] and k.agent == dense.agent.iloc[0] else 1,
            k.mask_source != "trained", order[k.pattern], k.method, k.agent))
        for key in keys:
            g = env_rows[(env_rows.method == key.method) & (env_rows.agent == key.agent) & (env_rows.pattern == key.pattern)
                         & (env_rows.mask_source == key.mask_source)]
            own = _own_bits(g)
            trained = key.mask_source == "trained"
            returns = []
            for which, bits in [("own", own)] + [(str(b), b) for b in RETURN_BITS]:
                entry: dict[str, Any] = {"which": which, "bits": bits, "return_mean": None, "seeds": None, "steps": None,
                                         "fraction_of_dense": None, "dense_return_mean": None, "missing": None,
                                         "fraction_missing": None, "return_min": None, "return_max": None,
                                         "spread": None}
                q = taken.get((env, key.method, key.agent, bits)) if which == "own" and trained else None
                if q is not None:
                    entry["return_mean"] = float(q.return_mean)
                    entry["seeds"] = int(q.n_seeds) if q.n_seeds else None
                    entry.update(fraction_of_dense(entry["return_mean"], dense_ref))
                    entry.update(spreads.get((env, key.method, key.agent, bits), {}))
                elif not (g.bits == bits).any():
                    entry["missing"] = f"not swept at {bits} bits"
                elif not trained:
                    entry["missing"] = ONE_SHOT_REASON
                else:
                    r = _return_at(g, bits)
                    if r is None:
                        entry["missing"] = ("the sweep joined no quality table" if quality_table is None else
                                            f"no quality row for ({env}, {key.method}, {_sparsity(key)}, {bits} bits)")
                    else:
                        entry["return_mean"] = float(r.return_mean)
                        entry["seeds"] = int(r.return_seeds) if "return_seeds" in r and r.return_seeds == r.return_seeds else None
                        entry["steps"] = int(r.return_steps) if "return_steps" in r and r.return_steps == r.return_steps else None
                        entry.update(fraction_of_dense(entry["return_mean"], dense_ref))
                        entry.update(spreads.get((env, key.method, key.agent, bits), {}))
                returns.append(entry)
            pub = published.get((env, normalize_label(key.agent))) if trained else None
            hardware = []
            if has_hw:
                hw = g[(g.bits == HW_BITS) & (g.scenario == scenario) & (g.batch == batch)]
                for design in designs:
                    h = hw[hw.design == design]
                    hardware.append({
                        "design": design,
                        # One agent, one bitwidth, one scenario and batch: one row per design (no average).
                        "speedup_vs_dense": _num(h.speedup_vs_dense.iloc[0]) if len(h) else None,
                        "energy_ratio_vs_dense": _num(h.energy_ratio_vs_dense.iloc[0]) if len(h) else None,
                        "point_ids": list(h.point_id),
                    })
            rows_out.append({
                "env": env, "method": key.method, "agent": key.agent, "pattern": key.pattern,
                "mask_source": key.mask_source, "own_bits": own, "returns": returns,
                "published_fraction_of_dense": pub[0] if pub else None, "published_source": pub[1] if pub else None,
                "hardware": hardware,
            })
    return {
        "format": FORMAT, "version": VERSION, "table": "../points.parquet",
        "definition": ("One row per env and agent (method, agent label). returns: return_mean of the sweep rows of that "
                       "agent at the agent's own training precision (own_bits) and at 8 and 4 weight bits, seeds "
                       "averaged, with the fraction of the env's dense TD3 return at its own training precision "
                       "(fraction_of_dense = return_mean / dense_return_mean; null when that is not positive), and "
                       "the seed spread of return_mean: return_min and return_max, the lowest and highest seed's "
                       "return (spread 'min-max over seeds'), or mean -/+ the std over seeds where the seeds' returns "
                       "are unknown (spread 'mean +/- std over seeds'). "
                       "published_fraction_of_dense: the paper's figure for that (env, label). "
                       f"hardware: {scenario} at batch {batch} and {HW_BITS} bits, speedup and energy ratio vs dense at "
                       "the same bits (speedup_vs_dense, energy_ratio_vs_dense of the rows point_ids)."),
        "hardware_scenario": {"scenario": scenario, "batch": batch, "bits": HW_BITS},
        "designs": designs,
        "rows": rows_out,
    }


SPREAD_KINDS = {"min-max": "min-max over seeds", "std": "mean +/- std over seeds"}


def _spreads(table: Optional[pd.DataFrame]) -> dict[tuple, dict[str, Any]]:
    """(env, method, agent, bits) -> return_min, return_max, spread of ``reports.returns.return_table``'s rows."""
    if table is None or table.empty:
        return {}
    out = {}
    for r in table.itertuples(index=False):
        if r.spread_kind and r.return_min == r.return_min and r.return_max == r.return_max:
            out[(r.env, r.method, r.agent, int(r.bits))] = {"return_min": float(r.return_min),
                                                           "return_max": float(r.return_max),
                                                           "spread": SPREAD_KINDS[r.spread_kind]}
    return out


# ----------------------------------------------------------------------------- rendering
def _ret_text(e: dict[str, Any]) -> str:
    if e["return_mean"] is None:
        return "-"
    frac = e["fraction_of_dense"]
    return f"{e['return_mean']:.0f}" + (f" ({frac:.2f})" if frac is not None else "")


def _spread_text(e: dict[str, Any], dash: str = "-") -> str:
    """The seed range of an entry's return, "4980-6300" ("" when unknown): ``reports.data.seed_range_text``."""
    return seed_range_text(e.get("return_min"), e.get("return_max"), dash, unknown="")


def _hw_text(h: dict[str, Any]) -> str:
    if h["speedup_vs_dense"] is None:
        return "-"
    return f"{fmt_ratio(h['speedup_vs_dense'])}x / {fmt_ratio(h['energy_ratio_vs_dense'])}"


def _seeds_text(row: dict[str, Any]) -> str:
    counts = sorted({e["seeds"] for e in row["returns"] if e["seeds"]})
    return "/".join(map(str, counts)) if counts else "-"


def _steps_text(row: dict[str, Any]) -> str:
    steps = sorted({e["steps"] for e in row["returns"] if e["steps"]})
    return "/".join(f"{s // 1000}k" if s >= 1000 and s % 1000 == 0 else str(s) for s in steps) if steps else "-"


def _why(row: dict[str, Any]) -> str:
    """Why cells are '-' or have no fraction: each reason once, with its columns unless it holds for all."""
    by: dict[str, list[str]] = {}
    for e in row["returns"]:
        col = "own" if e["which"] == "own" else f"{e['bits']} b"
        for reason in (e["missing"], e["fraction_missing"]):
            if reason:
                by.setdefault(reason, []).append(col)
    parts = [r if len(cols) == len(row["returns"]) else f"{', '.join(cols)}: {r}" for r, cols in by.items()]
    if any(h["speedup_vs_dense"] is None for h in row["hardware"]):
        parts.append(f"designs at '-': no {HW_BITS}-bit point (no datatype of that width)")
    return "; ".join(parts)


def _trained_at(row: dict[str, Any]) -> str:
    if row["mask_source"] != "trained":
        return "-"  # never trained at this sparsity
    return f"{row['own_bits']} (QAT)" if row["own_bits"] < 32 and row["method"] == "gmp" else str(row["own_bits"])


def _header(doc: dict[str, Any]) -> list[str]:
    return (["agent", "method", "seeds", "steps", "trained at (bits)", "return at own bits (of dense)"]
            + [f"at {b} bits" for b in RETURN_BITS] + ["published (of dense)"] + list(doc["designs"]) + ["why '-'"])


def intro(doc: dict[str, Any], spread_where: str = "in square brackets") -> str:
    hw = doc["hardware_scenario"]
    return (f"Per env and agent: evaluation return (the quality table's mean over seeds, joined by the sweep) at the "
            f"agent's own training precision and with the actor fake-quantized to {' and '.join(map(str, RETURN_BITS))} "
            f"bits; in round brackets the fraction of the env's dense TD3 return as trained (full precision; none when "
            f"that is not positive), so a cell says what that agent keeps of the dense agent at that bitwidth; then "
            f"{spread_where} the seed range: the lowest to the highest seed's return (mean -/+ std where the seeds' "
            f"returns are unknown), so two agents whose ranges overlap differ within seed noise. `steps`: training "
            f"steps of the evaluated runs (ours are reduced-scale runs). Published: the "
            f"paper's final return as a fraction of its own dense TD3 (full precision, 1M steps unless noted). "
            f"Designs: {hw['scenario']} at batch {hw['batch']} and {hw['bits']} bits, speedup / energy ratio vs dense "
            f"at the same bits (the answer tables' figures). Data: `{FILENAME}`.")


def intro_html(doc: dict[str, Any]) -> str:
    """The page's words for :func:`intro`: a short lead and one line per column (one paragraph of it was a
    wall of text a reader skipped)."""
    esc = html.escape
    hw = doc["hardware_scenario"]
    bits = " and ".join(map(str, RETURN_BITS))
    at = " / ".join(f"at {b} bits" for b in RETURN_BITS)
    items = [
        ("seeds, steps", "how many seeds the return averages, and the least-trained seed's training steps (ours are "
                          "reduced-scale runs)."),
        ("trained at (bits)", "the agent's own training precision ('-': pruned one-shot, never trained)."),
        (f"return at own bits, {at}", f"evaluation return at the agent's own precision and with the actor "
         f"fake-quantized to {bits} bits; in round brackets the fraction of the env's dense TD3 return as trained "
         "(full precision; none when that is not positive): what the agent keeps of dense at that bitwidth."),
        ("under a return", "the seed range, the lowest to the highest seed's return (mean -/+ std where the seeds' "
         "returns are unknown): two agents whose ranges overlap differ within seed noise."),
        ("published (of dense)", "the paper's final return as a fraction of its own dense TD3 (full precision, 1M "
         "steps unless noted); hover it for its source."),
        ("one column per design", f"{hw['scenario']} at batch {hw['batch']} and {hw['bits']} bits: speedup over "
         "energy ratio vs dense at the same bits (the answer tables' figures); hover a cell for its point id."),
        ("why '-'", "why a cell has no figure (hover a '-' for its reason)."),
    ]
    return ("<p>Per env, one row per agent: returns are the quality table's means over seeds, joined by the sweep. "
            f"Data: {esc(FILENAME)}.</p><ul class=cols>"
            + "".join(f"<li><b>{esc(k)}</b>: {esc(v)}</li>" for k, v in items) + "</ul>")


def markdown(doc: dict[str, Any], caveats: Optional[dict[str, list[str]]] = None) -> str:
    """The section "RL quality vs hardware" of summary.md; each env's ``caveats`` (``reports.returns.caveats``)
    under its table, as under its return table: this table's fractions of dense need them as much."""
    out = ["\n## RL quality vs hardware\n", intro(doc) + "\n"]
    head = _header(doc)
    for env in sorted({r["env"] for r in doc["rows"]}):
        rows = [r for r in doc["rows"] if r["env"] == env]
        sources: list[str] = []
        lines = ["| " + " | ".join(map(md_text, head)) + " |",
                 "|---|---|---:|---:|---:|" + "---:|" * (2 + len(RETURN_BITS) + len(doc["designs"])) + "---|"]
        for r in rows:
            pub = "-"
            if r["published_fraction_of_dense"] is not None:
                if r["published_source"] not in sources:
                    sources.append(r["published_source"])
                # Two decimals as every fraction of dense here (the paper's own figure: the footnote's source, the JSON).
                pub = f"{r['published_fraction_of_dense']:.2f} [{sources.index(r['published_source']) + 1}]"
            cells = ([md_text(r["agent"]), md_text(r["method"]), _seeds_text(r), _steps_text(r), md_text(_trained_at(r))]
                     + [_ret_text(e) + (f" [{_spread_text(e)}]" if _spread_text(e) else "") for e in r["returns"]]
                     + [pub] + [_hw_text(h) for h in r["hardware"]]
                     + [md_text(_why(r))])
            lines.append("| " + " | ".join(cells) + " |")
        out.append(f"\n### {md_text(env)}\n\n" + "\n".join(lines) + "\n")
        if sources:
            out.append("\n" + "\n".join(f"[{i + 1}] {md_text(s)}  " for i, s in enumerate(sources)) + "\n")
        out += [f"\n> Caveat: {md_text(c)}\n" for c in (caveats or {}).get(env, [])]
    return "\n".join(out)


def html_section(doc: dict[str, Any], anchor: str = "quality", caveats: Optional[dict[str, list[str]]] = None) -> str:
    """The section as HTML: one table per env, its ``caveats`` (``reports.returns.caveats``) under it; the
    published source and each '-' reason as tooltips."""
    esc = html.escape
    parts = [f'<h2 id="{anchor}">RL quality vs hardware</h2>',
             intro_html(doc)]
    designs = set(doc["designs"])
    # Design columns: the name may break after an underscore and each cell holds speedup over energy ratio,
    # so the table fits a 1400 px page instead of hiding the last designs (the GPUs) behind a scroll.
    head = "".join(f"<th class=l>{esc(h)}</th>" if h == "agent" else
                   f"<th>{esc(h).replace('_', '_<wbr>')}<br><span class=unit>speedup<br>energy ratio</span></th>"
                   if h in designs else f"<th>{esc(h)}</th>" for h in _header(doc))
    for env in sorted({r["env"] for r in doc["rows"]}):
        body = []
        for r in (r for r in doc["rows"] if r["env"] == env):
            cells = [f"<td class=agent>{esc(r['agent'])}</td>", f"<td>{esc(r['method'])}</td>",
                     f"<td>{_seeds_text(r)}</td>", f"<td>{_steps_text(r)}</td>", f"<td>{esc(_trained_at(r))}</td>"]
            for e in r["returns"]:
                tip = e["missing"] or e["fraction_missing"] or (
                    f"dense TD3: {e['dense_return_mean']:.0f}" if e["dense_return_mean"] is not None else "")
                if _spread_text(e):
                    tip += f"; {e['spread']}: {_spread_text(e, chr(0x2013))}"
                    spread = f"<br><small>{esc(_spread_text(e, chr(0x2013)))}</small>"
                else:
                    spread = ""
                cells.append(f"<td class=ret title=\"{esc(tip)}\">{esc(_ret_text(e))}{spread}</td>")
            if r["published_fraction_of_dense"] is not None:
                cells.append(f"<td title=\"{esc(r['published_source'])}: {r['published_fraction_of_dense']:g} of dense\">"
                             f"<u>{r['published_fraction_of_dense']:.2f}</u></td>")
            else:
                cells.append('<td title="no published figure for this env and agent">-</td>')
            for h in r["hardware"]:
                tip = ("point " + ", ".join(h["point_ids"])) if h["point_ids"] else f"not run at {HW_BITS} bits"
                text = esc(_hw_text(h)).replace(" / ", "<br>")
                cells.append(f"<td class=hw title=\"{esc(tip)}\" data-design=\"{esc(h['design'])}\">{text}</td>")
            cells.append(f"<td style=\"text-align:left\">{esc(_why(r))}</td>")
            body.append("<tr>" + "".join(cells) + "</tr>")
        parts.append(f"<div class=\"frame\"><table class=\"quality\"><caption>{esc(env)}</caption>"
                     f"<thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table></div>")
        parts += [f'<p class="note caveat">Caveat: {esc(c)}</p>' for c in (caveats or {}).get(env, [])]
    return "\n".join(parts)
