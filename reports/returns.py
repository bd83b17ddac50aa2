"""Returns with their seed spread, as fractions of dense, and the caveats a reader needs.

Every number comes from the sweep table (``return_mean``, ``return_seeds``,
``return_std_seeds``) and, for the per-seed values (seed names, min-max), from the quality
table the sweep joined (``sweep.json``'s ``quality_table``), matched exactly as the sweep
matched it (``sweeps.derived.join_quality``: same env, pattern, bits and method; RLx2/GMP
rows by their fractions). When the per-seed values no longer average to the table's
``return_mean`` (the quality file changed since the sweep), the seeds are not shown and the
spread falls back to the table's standard deviation over seeds.

Reference: the fraction of dense is the return divided by the env's dense TD3 return as
trained (own precision, 32 bits), as in the "RL quality vs hardware" table; a sweep with no point
at that precision (bits [16, 8], bits [8]) takes it from the quality table it joined
(``reports.quality.dense_reference``), and the caption and a caveat say so.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Optional

import numpy as np
import pandas as pd

from reports.data import agent_label, agent_order, seed_range_text, with_agent
from reports.quality import _dense_agent, _own_bits, as_trained_from_quality, dense_reference, quality_groups

#: Dense TD3 has "learned" an env when its return reaches this fraction of the published dense TD3
#: return at 1M steps; below it every fraction of dense on the page gets a caveat.
LEARNED_FRACTION = 0.25
#: Published dense TD3 returns at 1M steps (Fujimoto et al. 2018, TD3 paper, Table 1, max average return;
#: shared/reference/rl.md "Dense TD3 reference returns"). v1 envs; our v5 counterparts. Table 1 also gives
#: Reacher -3.60, left out: the check needs a positive figure, and a Reacher return is never positive (so its
#: fractions of dense are never given). Swimmer, Pusher, Humanoid and HumanoidStandup are not in the paper.
PUBLISHED_DENSE_RETURN = {"HalfCheetah-v5": 9637.0, "Hopper-v5": 3564.0, "Walker2d-v5": 4683.0, "Ant-v5": 4372.0,
                          "InvertedPendulum-v5": 1000.0, "InvertedDoublePendulum-v5": 9337.0}
PUBLISHED_PAPER = "Fujimoto et al. 2018 (TD3)"
PUBLISHED_SOURCE = f"{PUBLISHED_PAPER}, max average return at 1M steps"


def seed_values(df: pd.DataFrame, quality_path: Optional[str | Path]) -> dict[tuple, list[tuple[str, float]]]:
    """(env, method, agent, bits) -> [(seed, return)] of the quality rows the sweep averaged into
    ``return_mean``; only keys whose values still average to it (1e-9 relative)."""
    groups = quality_groups(quality_path)
    if groups is None:  # no quality file, or a damaged one: the spread falls back to the table's std
        return {}
    from hwmodel.agents import label_fractions, same_fractions

    out: dict[tuple, list[tuple[str, float]]] = {}
    rows = with_agent(df)
    rows = rows[(rows.mask_source == "trained") & rows.return_mean.notna()].drop_duplicates(
        ["env", "method", "agent", "pattern", "bits"])
    for r in rows.itertuples(index=False):
        want = label_fractions(r.agent)
        recs = [q for q in groups.get((r.env, r.pattern, int(r.bits)), []) if q["method"] in ("", r.method)
                and (q["fractions"] is None or want is None or same_fractions(q["fractions"], want))]
        vals = [q["return_mean"] for q in recs]
        if vals and math.isclose(sum(vals) / len(vals), float(r.return_mean), rel_tol=1e-9, abs_tol=1e-9):
            out[(r.env, r.method, r.agent, int(r.bits))] = [(str(q["seed"]), q["return_mean"]) for q in recs]
    return out


def _own_from_quality(by: dict[tuple, dict[str, Any]], own_bits: dict[tuple, int],
                      quality_path: Optional[str | Path]) -> dict[tuple, dict[str, Any]]:
    """(env, method, agent, own bits) -> the sweep row an agent would have had at its own training precision,
    for the trained agents the sweep has a return of but no point at that precision: the quality table's row
    there, by the same rule as dense's reference (``reports.quality.as_trained_from_quality``)."""
    agents: dict[tuple, tuple[str, int, dict[int, float]]] = {}
    for (env, method, agent, bits), r in by.items():
        own = own_bits.get((env, method, agent), 32)
        if (env, method, agent, own) not in by:
            agents.setdefault((env, method, agent), (r["pattern"], own, {}))[2][bits] = r["return_mean"]
    return {(*key, agents[key][1]): {**row, "workload_bits": agents[key][1]}
            for key, row in as_trained_from_quality(quality_path, agents).items()}


def return_table(df: pd.DataFrame, quality_path: Optional[str | Path]) -> pd.DataFrame:
    """One row per (env, agent, evaluated bits) with a return: mean, seeds, spread and fractions of dense.

    Columns: env, method, agent, label, trained_bits, bits (evaluated at), return_mean, n_seeds, seeds
    (names, "" when unknown), return_min, return_max (per-seed; NaN when unknown), return_std (over seeds),
    dense_return (the env's dense TD3 as trained: ``reports.quality.dense_reference``), dense_source ("" when
    dense_return is the sweep's own point, else where it was taken from, in words), fraction, fraction_min,
    fraction_max (per-seed returns over dense_return; with only a std: mean -/+ std; NaN for an agent of one seed), spread_kind ("min-max",
    "std", or "" when there is no spread: one seed, or neither the seeds' returns nor a std known), dense_missing (why
    dense_return is NaN, in words; "" when it is not).
    """
    df = with_agent(df)
    seeds = seed_values(df, quality_path)
    cols = [c for c in ("env", "method", "agent", "pattern", "mask_source", "bits", "workload_bits", "return_mean",
                        "return_std_seeds", "return_seeds") if c in df.columns]
    # All rows of one agent and bitwidth carry the same join: the first row with a return stands for them.
    first = df[cols][df.return_mean.notna() & (df.mask_source == "trained")].drop_duplicates(
        ["env", "method", "agent", "bits"]).to_dict("records")
    by = {(r["env"], r["method"], r["agent"], int(r["bits"])): r for r in first}
    own_bits = {}
    if "workload_bits" in df.columns:
        for (env, method, agent), wb in df.groupby(["env", "method", "agent"]).workload_bits.max().items():
            own_bits[(env, method, agent)] = int(wb) if wb == wb else 32
    # An agent as trained is a fact of its RL runs: without a sweep point at its own precision, the quality table's.
    from_quality = _own_from_quality(by, own_bits, quality_path)
    by.update(from_quality)
    seeds.update(seed_values(pd.DataFrame(list(from_quality.values())), quality_path) if from_quality else {})
    out: list[dict[str, Any]] = []
    for env in sorted(df.env.unique()):
        env_rows = df[df.env == env]
        dense = _dense_agent(env_rows)
        ref = dense_reference(dense, quality_path)
        base = float(ref.return_mean) if ref is not None and ref.return_mean > 0 else math.nan
        # Why there is no reference, in words (a sweep without dense; or without dense's own precision,
        # e.g. bits [8, 4], and no quality table that still gives the sweep's returns to take it from).
        if dense is None:
            dense_missing = "the sweep has no dense TD3 agent for this env"
        elif ref is None:
            dense_missing = f"the sweep has no return of dense TD3 at its own precision ({_own_bits(dense)} bits)"
        elif base != base:
            dense_missing = f"dense TD3's return as trained ({return_text(float(ref.return_mean))}) is not positive"
        else:
            dense_missing = ""
        for method, agent in agent_order(env_rows):
            own = own_bits.get((env, method, agent), 32)
            for bits in sorted({k[3] for k in by if k[:3] == (env, method, agent)}, reverse=True):
                r = by[(env, method, agent, bits)]
                mean = float(r["return_mean"])
                per = seeds.get((env, method, agent, int(bits)))
                std = float(r.get("return_std_seeds", math.nan))
                nseeds = r.get("return_seeds", math.nan)
                n = int(nseeds) if nseeds == nseeds else (len(per) if per else 0)
                # One seed has no spread: a range "313-313" beside another agent's "5006-6292" would read
                # as a seed-stable agent, so none is given (NaN, spread_kind "").
                if per and len(per) > 1:
                    lo, hi, kind = min(v for _, v in per), max(v for _, v in per), "min-max"
                elif std == std and n > 1:
                    lo, hi, kind = mean - std, mean + std, "std"
                else:
                    lo = hi = math.nan
                    kind = ""
                out.append({
                    "env": env, "method": method, "agent": agent, "label": agent_label(method, agent),
                    "trained_bits": own, "bits": int(bits), "return_mean": mean, "n_seeds": n,
                    "seeds": ",".join(s for s, _ in per) if per else "", "return_min": lo, "return_max": hi,
                    "return_std": std, "dense_return": base, "fraction": mean / base, "fraction_min": lo / base,
                    "fraction_max": hi / base, "spread_kind": kind, "dense_missing": dense_missing,
                    "dense_source": ref.source if ref is not None else "",
                    "from_quality_table": (env, method, agent, int(bits)) in from_quality,
                    "quality_table": str(quality_path) if isinstance(quality_path, (str, Path)) else "",
                })
    return pd.DataFrame(out)


def return_text(v: float) -> str:
    """A return in words: whole numbers from 10 on (443), three significant digits below (0.241, -3.04),
    so a small dense return a caveat divides by never reads as 0."""
    return f"{v:.0f}" if abs(v) >= 10 else f"{v:.3g}"


def caveats(table: pd.DataFrame) -> dict[str, list[str]]:
    """env -> the caveats its returns need, in words with the numbers behind them:
    no dense reference (``caption_reason``), the reference taken from the quality table (``reference_source``: the
    sweep has no point of dense at its own precision), dense itself has not learned (below LEARNED_FRACTION of the
    published return), or the seeds of one agent disagree more than the agents' means differ (at the
    agents' own training precision)."""
    out: dict[str, list[str]] = {}
    if table.empty:
        return out
    for env, t in table.groupby("env", sort=True):
        notes = []
        base = float(t.dense_return.iloc[0])
        pub = PUBLISHED_DENSE_RETURN.get(env)
        # Returns as trained the sweep has no point of (its bits: a GPU-only sweep runs 16 and 8), from the quality table.
        taken = t[t.from_quality_table.astype(bool) & (t.bits == t.trained_bits)] if "from_quality_table" in t else t.iloc[:0]
        others = [lb for lb, a in zip(taken.label, taken.agent) if a != "dense"]
        if base == base and reference_source(t):
            notes.append(f"dense TD3's return as trained ({return_text(base)}), which every fraction of dense here divides by, "
                         f"is {reference_source(t)}" + (f"; so are the returns as trained of {', '.join(others)}, "
                                                        f"which the train-step points carry." if others else "."))
        elif others:
            notes.append(f"the returns as trained of {', '.join(others)}, which the train-step points carry, are "
                         f"{own_source(t)[1]}.")
        if base != base:
            notes.append(f"{caption_reason(t)}: no fraction of dense can be given; the returns are shown as they are.")
        elif pub is None:
            notes.append(f"no published dense TD3 return is known for {env} ({PUBLISHED_PAPER} gives none): "
                         f"whether dense learned is not checked.")
        elif base < LEARNED_FRACTION * pub:
            notes.append(f"dense TD3 has not learned {env}: its return ({return_text(base)}) is below {LEARNED_FRACTION:.0%} of "
                         f"the published {pub:.0f} ({PUBLISHED_SOURCE}). Fractions of dense here divide by a baseline "
                         f"that failed; read them as noise, not as a cost or gain of sparsity.")
        own = t[t.bits == t.trained_bits]
        spread = (own.return_max - own.return_min) if (own.spread_kind == "min-max").any() else 2 * own.return_std
        if len(own) > 1 and spread.notna().any():
            widest = own.loc[spread.idxmax()]
            gap = own.return_mean.max() - own.return_mean.min()
            if spread.max() > gap:
                what = "seeds" + (f" {widest.seeds}" if widest.seeds else "")
                notes.append(f"seeds disagree more than methods: {widest.label}'s {what} span {spread.max():.0f} "
                             f"while the agents' means (as trained) span {gap:.0f}; differences between agents are "
                             f"within seed noise.")
        if notes:
            out[str(env)] = notes
    return out


# ----------------------------------------------------------------------------- rendering
def _frac_cell(r: dict[str, Any], own: bool) -> str:
    import html

    if r["fraction"] != r["fraction"]:  # the return itself, with its seed range as summary.md gives it
        why = r.get("dense_missing") or "no positive dense return to divide by"
        rng = seed_range_text(r["return_min"], r["return_max"], "\u2013", unknown="") if r["spread_kind"] else ""
        return (f'<td title="return {r["return_mean"]:.0f}; {html.escape(why)}">{r["return_mean"]:.0f}'
                + (f"<br><small>{rng}</small>" if rng else "") + "</td>")
    spread = ""
    if r["spread_kind"]:
        spread = f'<br><small>{r["fraction_min"]:.2f}\u2013{r["fraction_max"]:.2f}</small>'
    one = "," not in str(r["seeds"]) if r["seeds"] else r["n_seeds"] == 1
    seeds = (f"seed{'' if one else 's'} {r['seeds']}" if r["seeds"] else f"{r['n_seeds']} seed{'' if one else 's'}")
    # One seed (or no known spread) has no range: 'nan to nan' said nothing.
    span = (f"{r['spread_kind']} {r['return_min']:.0f} to {r['return_max']:.0f}" if r["spread_kind"] else "no spread")
    tip = (f"{r['label']}, trained at {r['trained_bits']} bits, evaluated at {r['bits']} bits: return "
           f"{r['return_mean']:.0f} ({seeds}; {span}) / dense TD3 as trained {return_text(r['dense_return'])}")
    cls = ' class="own"' if own else ""
    return (f'<td{cls} title="{html.escape(tip)}" data-col="return_fraction" data-value="{r["fraction"]!r}">'
            f'{r["fraction"]:.2f}{spread}</td>')


def html_cards(table: pd.DataFrame, df: pd.DataFrame) -> dict[str, str]:
    """env -> the return table (agents x evaluated bits, fraction of dense with its seed spread)."""
    import html

    out: dict[str, str] = {}
    if table.empty:
        return out
    bits = sorted((int(b) for b in df.bits.unique()), reverse=True)
    df = with_agent(df)
    for env, t in table.groupby("env", sort=True):
        recs = t.to_dict("records")
        by = {(r["method"], r["agent"], r["bits"]): r for r in recs}
        seeds = sorted({s for r in recs for s in r["seeds"].split(",") if s})
        kinds = sorted({r["spread_kind"] for r in recs if r["spread_kind"]})
        spread_txt = ("min\u2013max over seeds " + ", ".join(seeds)) if kinds == ["min-max"] else (
            "mean \u00b1 one standard deviation over seeds" if kinds == ["std"] else "spread over seeds (min\u2013max, "
            "or \u00b1 std where the seeds are unknown)" if kinds else "no seed range (one seed, or the seeds' returns unknown)")
        rows = []
        for method, agent in dict.fromkeys((r["method"], r["agent"]) for r in recs):
            first = by[next(k for k in by if k[:2] == (method, agent))]
            own = first["trained_bits"]
            cells = [_frac_cell(by[(method, agent, b)], b == own) if (method, agent, b) in by
                     else '<td class="na">\u2013</td>' for b in bits]
            as_trained = by.get((method, agent, own))
            rows.append(f"<tr><td class=l>{html.escape(first['label'])}</td><td>{own}</td>"
                        + (_frac_cell(as_trained, True) if as_trained else '<td class="na">\u2013</td>')
                        + "".join(cells) + "</tr>")
        one_shot = sorted({a for a, s in zip(df[df.env == env].agent, df[df.env == env].mask_source) if s != "trained"})
        foot = (f"<p class=small>Pruned one-shot, never trained, so never evaluated: {html.escape(', '.join(one_shot))}.</p>"
                if one_shot else "")
        base = t.dense_return.iloc[0]
        src, (own_bits_text, own_src) = reference_source(t), own_source(t)
        what = (f"Return as a fraction of dense TD3 as trained ({return_text(base)} = 1.00"
                f"{html.escape(', ' + src) if src and not own_src else ''})" if base == base
                else f"Return (no fraction of dense: {html.escape(caption_reason(t))})")
        if own_src:  # dense's reference among them when it is the quality table's: one sentence for both
            what += f"; 'as trained' ({own_bits_text} bits{', dense TD3 included' if src else ''}) {html.escape(own_src)}"
        what += f"; below each: {spread_txt}" if kinds else f"; {spread_txt}"
        out[str(env)] = (
            f'<div class="card"><table class="ans ret"><caption>{what}</caption><thead><tr><th rowspan=2 class=l>agent</th>'
            f"<th rowspan=2>trained at (bits)</th><th rowspan=2>as trained</th><th colspan={len(bits)}>evaluated with "
            f"the actor at B bits</th></tr><tr>" + "".join(f"<th>{b} b</th>" for b in bits) + "</tr></thead><tbody>"
            + "".join(rows) + f"</tbody></table>{foot}</div>")
    return out


def reference_source(t: pd.DataFrame) -> str:
    """Where an env's dense TD3 return as trained was taken from when it is no point of the sweep ("" when it is
    one; its rows share it)."""
    return str(t.dense_source.iloc[0]) if "dense_source" in t.columns and len(t) else ""


def own_source(t: pd.DataFrame) -> tuple[str, str]:
    """(those bits, where) an env's returns as trained were taken from when the sweep has no point at those agents'
    own precision (("", "") when every one is the sweep's own): e.g. ("32", "taken from the quality table
    quality.csv, which the sweep joined; the sweep has no 32-bit point")."""
    if "from_quality_table" not in t.columns or not t.from_quality_table.any():
        return "", ""
    bits = sorted({int(b) for b in t[t.from_quality_table.astype(bool)].bits}, reverse=True)
    b = ", ".join(map(str, bits))
    name = f" {Path(str(t.quality_table.iloc[0])).name}" if "quality_table" in t.columns and t.quality_table.iloc[0] else ""
    return b, f"taken from the quality table{name}, which the sweep joined; the sweep has no {b}-bit point"


def caption_reason(t: pd.DataFrame) -> str:
    """Why an env's return table gives returns rather than fractions of dense (its rows share it)."""
    return str(t.dense_missing.iloc[0]) if "dense_missing" in t.columns else "no positive dense TD3 return"


def with_seed_range(df: pd.DataFrame, table: pd.DataFrame) -> pd.DataFrame:
    """``df`` (after :func:`as_trained`) with ``return_min`` / ``return_max``: the seed range of the return each
    row shows (the agent's at ``return_eval_bits``, from :func:`return_table`), NaN where the row has no
    return or its seeds' spread is unknown. Row order and index kept."""
    df = df.drop(columns=[c for c in ("return_min", "return_max") if c in df.columns])
    nan = np.full(len(df), np.nan)
    if table.empty or "return_eval_bits" not in df.columns:
        return df.assign(return_min=nan, return_max=nan)
    t = table[table.spread_kind != ""][["env", "method", "agent", "bits", "return_min", "return_max"]]
    t = t.rename(columns={"bits": "return_eval_bits"}).astype({"return_eval_bits": "int64"})
    key = with_agent(df)[["env", "method", "agent"]].assign(return_eval_bits=df.return_eval_bits.astype("int64"))
    m = key.merge(t, on=["env", "method", "agent", "return_eval_bits"], how="left")
    shown = df.return_mean.notna().to_numpy()
    return df.assign(return_min=np.where(shown, m.return_min.to_numpy(dtype=float), nan),
                     return_max=np.where(shown, m.return_max.to_numpy(dtype=float), nan))


def as_trained(df: pd.DataFrame, table: Optional[pd.DataFrame] = None) -> pd.DataFrame:
    """``df`` with the return a train-step point stands for: the agent **as trained** (its return at its own
    training precision, ``workload_bits``, 32 when absent), not the return of its actor fake-quantized to the
    point's bits: no agent was trained at those bits. Inference rows keep their own return (evaluated at
    the point's bits). Adds ``return_eval_bits`` (the bits the shown return was evaluated at) and
    ``return_trained_bits``. Where the sweep has no point at an agent's own bits, the return as trained is
    :func:`return_table`'s (``table``) taken from the quality table the sweep joined (a GPU-only sweep runs 16
    and 8 bits only). A train-step row whose agent has neither gets NaN."""
    df = with_agent(df)
    own = (df["workload_bits"].fillna(32).astype(int) if "workload_bits" in df.columns
           else pd.Series(32, index=df.index))
    key = ["env", "method", "agent"]
    at_own = df[df.bits.astype(int) == own][[*key, "return_mean"]].dropna().drop_duplicates(key)
    if table is not None and len(table) and "from_quality_table" in table.columns:
        quality = table[table.from_quality_table.astype(bool) & (table.bits == table.trained_bits)]
        at_own = pd.concat([at_own, quality[[*key, "return_mean"]]]).drop_duplicates(key)
    merged = df[key].merge(at_own.rename(columns={"return_mean": "_own_return"}), on=key, how="left")
    train = (df.scenario == "train_step").to_numpy()
    out = df.copy()
    out["return_mean"] = np.where(train, merged["_own_return"].to_numpy(), df.return_mean.to_numpy())
    out["return_eval_bits"] = np.where(train, own.to_numpy(), df.bits.astype(int).to_numpy())
    out["return_trained_bits"] = own.to_numpy()
    return out
