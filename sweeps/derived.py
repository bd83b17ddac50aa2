"""Columns a sweep table gets at consolidation: RL return (joined) and ratios vs a dense reference.

They depend on other rows or files, not on one point alone, so they are recomputed every
time the table is rebuilt (a newer quality table is picked up on the next run).

Return: the quality table (``hwmodel/data/workloads/quality.csv`` by default, columns
``env,method,sparsity,bits,seed,steps,episodes,return_mean,return_std``) joined on
(env, sparsity, bits), seeds averaged, restricted to rows of the point's method (rows
with an empty method match any method). An rlx2/gmp row whose sparsity is the fractions
removed (``0.98/0.95``, ``0.9``: what ``nmlab evaluate`` writes for RLx2) is an
``unstructured`` row that joins only the agent whose label has those fractions. A row of a
run trained with per-layer patterns (``2:8 fc1=dense``: ``nmlab train --layer-sparsity``) is a
``mixed`` row that joins only the agent of that label, and so is a row naming the label of a
workload of two N:M patterns (``2:4 + 1:4 at actor.fc2``). Rows
pruned one-shot and rows without a match get NaN and ``return_missing=True``.

Dense reference: per (env, design, scenario, batch), the dense row at the highest bitwidth
in the table; ``speedup_vs_dense_ref`` and ``energy_ratio_vs_dense_ref`` compare with it
(``speedup_vs_dense`` / ``energy_ratio_vs_dense`` from the model compare at the same bits).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Optional

import pyarrow as pa

from hwmodel.errors import NmlabError
from hwmodel.limits import MAX_BITS, MAX_RETURN, MIN_BITS, parse_finite, parse_int, read_csv
from hwmodel.agents import MIXED, label_fractions, normalize_label, parse_fractions, same_fractions, split_layers_label
from sweeps.config import parse_grid_pattern

QUALITY_COLUMNS = ("env", "method", "sparsity", "bits", "seed", "steps", "episodes", "return_mean", "return_std")


def bundled_quality() -> Optional[Path]:
    from hwmodel.io import data_path

    p = data_path("workloads", "quality.csv")
    return p if p.is_file() else None


#: Training steps beyond any run (the bound of the integer train options, docs/limits.md).
MAX_STEPS = 10**12


def load_quality(path: str | Path) -> dict[tuple[str, str, int], list[dict]]:
    """Quality rows grouped by (env, canonical sparsity, bits). Errors name the line and column.

    Read within the CSV limits of :mod:`hwmodel.limits`; ``bits`` must be an integer from
    ``MIN_BITS`` to ``MAX_BITS`` (1 to 32) and ``return_mean`` a finite number (NaN and inf are refused, docs/limits.md).
    """
    path = Path(path)
    groups: dict[tuple[str, str, int], list[dict]] = {}
    _header, rows = read_csv(path, "quality table", required=("env", "sparsity", "bits", "return_mean"))
    for i, rec in rows:
        where = f"quality table {path.name}: line {i}"
        # Cells without their surrounding spaces, as the header's names are read: a table written
        # "Hopper-v5, td3, dense, 8, ..." names the method "td3".
        rec = {k: v.strip() for k, v in rec.items()}
        if not rec["env"]:
            raise NmlabError(f"{where}: env: empty")
        # RLx2 rows (nmlab evaluate) record the fractions removed, "0.98/0.95" or "0.9": an
        # unstructured agent, told apart from other RLx2 agents by its label's fractions.
        fractions = parse_fractions(rec["sparsity"]) if rec.get("method") in ("rlx2", "gmp") else None
        # A run trained with per-layer patterns ("2:8 fc1=dense", nmlab evaluate): a "mixed" agent,
        # told apart from other mixed agents by its label (the workload's, hwmodel.agents.agent_label).
        label = None
        if not fractions and " + " in rec["sparsity"]:
            # A workload of two N:M patterns or more, by its label ("2:4 + 1:4 at actor.fc2",
            # hwmodel.agents.mixed_layers_label): a "mixed" agent, joined only by that label.
            parse_grid_pattern(rec["sparsity"].split(" + ", 1)[0], f"{where}: sparsity")
            label = normalize_label(rec["sparsity"])
        elif not fractions:
            base, layers = _split_layers(rec["sparsity"], f"{where}: sparsity")
            if layers:
                label = f"{parse_grid_pattern(base, f'{where}: sparsity')} {layers}"
        sparsity = ("unstructured" if fractions else MIXED if label
                    else parse_grid_pattern(rec["sparsity"], f"{where}: sparsity"))
        bits = parse_int(rec["bits"], f"{where}: bits", MIN_BITS, MAX_BITS)
        ret = parse_finite(rec["return_mean"], f"{where}: return_mean", low=-MAX_RETURN, high=MAX_RETURN)
        if (rec.get("return_std") or "").strip():
            parse_finite(rec["return_std"], f"{where}: return_std", low=0.0, high=MAX_RETURN)
        groups.setdefault((rec["env"], sparsity, bits), []).append(
            {"method": rec.get("method", ""), "seed": rec.get("seed", ""), "return_mean": ret,
             "episodes": rec.get("episodes", ""), "fractions": fractions, "label": label,
             "steps": _int_or_none(rec.get("steps"))}
        )
    return groups


def _split_layers(text: str, field: str) -> tuple[str, str]:
    """(pattern, canonical layers) of a quality row's sparsity; NmlabError naming ``field`` for
    layers that are not ``--layer-sparsity`` text."""
    try:
        return split_layers_label(text)
    except NmlabError as exc:
        raise NmlabError(f"{field}: {str(text)[:60]!r}: {exc}") from None


def _int_or_none(text: Optional[str]) -> Optional[int]:
    """``steps`` of a quality row, None where it is not a step count: steps is informative only,
    and a bad value must not stop the join (one past int64 ended the sweep in an OverflowError
    from pyarrow's return_steps column, after its parts were written)."""
    try:
        value = int(text) if text not in (None, "") and len(str(text)) <= 30 else None
    except ValueError:
        return None
    return value if value is not None and 0 <= value <= MAX_STEPS else None


def join_quality(table: pa.Table, quality: Optional[dict]) -> pa.Table:
    """Add return_mean, return_std_seeds, return_seeds, return_steps, return_missing.

    The join is made once per distinct (env, pattern, bits, method, agent) of the trained rows
    (a table has a few such agents, repeated over designs, scenarios and batches) and spread
    back to the rows.
    """
    import numpy as np

    n = len(table)
    mean = np.full(n, math.nan)
    std = np.full(n, math.nan)
    seeds = np.zeros(n, dtype=np.int64)
    steps = np.zeros(n, dtype=np.int64)
    no_steps = np.ones(n, dtype=bool)
    if quality and n:
        import pyarrow.compute as pc

        trained = np.flatnonzero(pc.fill_null(pc.equal(table.column("mask_source"), "trained"), False)
                                 .to_numpy(zero_copy_only=False))
        names = ["env", "pattern", "bits", "method"] + (["agent"] if "agent" in table.column_names else [])
        if len(trained):
            codes = np.stack([_codes(table.column(c))[trained] for c in names], axis=1)
            _, first, inverse = np.unique(codes, axis=0, return_index=True, return_inverse=True)
            agents = table.select(names).take(pa.array(trained[first], type=pa.int64())).to_pylist()
            # Per agent, then spread to its rows.
            g_mean, g_std = np.full(len(first), math.nan), np.full(len(first), math.nan)
            g_seeds, g_steps = np.zeros(len(first), dtype=np.int64), np.zeros(len(first), dtype=np.int64)
            g_no_steps = np.ones(len(first), dtype=bool)
            for j, a in enumerate(agents):
                got = _join_one(quality, a["env"], a["pattern"], a["bits"], a["method"], a.get("agent"))
                if got is not None:
                    g_mean[j], g_std[j], g_seeds[j] = got[0], got[1], got[2]
                    if got[3] is not None:
                        g_steps[j], g_no_steps[j] = got[3], False
            inverse = inverse.reshape(-1)
            mean[trained], std[trained], seeds[trained] = g_mean[inverse], g_std[inverse], g_seeds[inverse]
            steps[trained], no_steps[trained] = g_steps[inverse], g_no_steps[inverse]
    for name, values in (("return_mean", pa.array(mean, type=pa.float64())),
                         ("return_std_seeds", pa.array(std, type=pa.float64())),
                         ("return_seeds", pa.array(seeds, type=pa.int64())),
                         ("return_steps", pa.array(steps, type=pa.int64(), mask=no_steps)),
                         ("return_missing", pa.array(np.isnan(mean), type=pa.bool_()))):
        if name in table.column_names:
            table = table.drop_columns([name])
        table = table.append_column(name, values)
    return table


def _codes(col: pa.ChunkedArray):
    """Each value's code among the column's distinct values (-1 for null), as an int64 array."""
    import numpy as np
    import pyarrow.compute as pc

    enc = pc.dictionary_encode(col.combine_chunks())
    return np.asarray(pc.fill_null(enc.indices, -1).to_numpy(zero_copy_only=False), dtype=np.int64)


def _join_one(quality: dict, env, pattern, bits, method, agent) -> Optional[tuple[float, float, int, Optional[int]]]:
    """(return mean, std over seeds, seeds, steps) of one trained agent, None where no row matches.

    Only this agent's method counts (a gradual-N:M GMP agent and an RNM-TD3 agent of the same
    pattern are different agents); rows without a method match any. Rows naming fractions
    (RLx2 0.98/0.95) count only for the agent of those fractions.
    """
    want = label_fractions(agent)
    if pattern == "unstructured" and method == "gmp" and _nm_target(agent):
        # gmp N:M exported before its masks were N:M: the unstructured rows are other gmp agents'
        # (fractions removed), and nmlab evaluate --csv writes no N:M row for it (nmlab export notes it).
        return None
    recs = [r for r in quality.get((env, pattern, int(bits)), []) if r["method"] in ("", method)
            and (r["fractions"] is None or want is None or same_fractions(r["fractions"], want))
            and (r.get("label") is None or r["label"] == normalize_label(agent or ""))]
    if not recs:
        return None
    vals = [r["return_mean"] for r in recs]
    mean = sum(vals) / len(vals)
    std = (sum((v - mean) ** 2 for v in vals) / (len(vals) - 1)) ** 0.5 if len(vals) > 1 else math.nan
    # The shortest run's steps: an agent is only as trained as its least trained seed.
    known = [r["steps"] for r in recs if r["steps"] is not None]
    return mean, std, len(vals), min(known) if known else None


def _nm_target(agent: Optional[str]) -> bool:
    """The label is ``gmp N:M`` (both networks' target one N:M pattern, QAT or not)."""
    words = str(agent or "").split()
    return len(words) >= 2 and words[0] == "gmp" and ":" in words[1] and "/" not in words[1]


_REF_KEYS = ("env", "design", "scenario", "batch")


def dense_reference(table: pa.Table) -> dict[tuple, tuple[int, float, float]]:
    """(env, design, scenario, batch) -> (bits, latency_s, energy_pj) of the dense row at the highest
    bitwidth; rows in grid order, the first row wins a tie. Rows of other patterns are ignored."""
    ref: dict[tuple, tuple[int, float, float]] = {}
    if not len(table):
        return ref
    cols = {c: table.column(c).to_pylist() for c in (*_REF_KEYS, "pattern", "bits", "latency_s", "energy_pj")}
    for i in range(len(table)):
        if cols["pattern"][i] != "dense":
            continue
        key = tuple(cols[c][i] for c in _REF_KEYS)
        if key not in ref or cols["bits"][i] > ref[key][0]:
            ref[key] = (cols["bits"][i], cols["latency_s"][i], cols["energy_pj"][i])
    return ref


def apply_dense_reference(table: pa.Table, ref: dict[tuple, tuple[int, float, float]]) -> pa.Table:
    """Add dense_ref_bits, speedup_vs_dense_ref, energy_ratio_vs_dense_ref from ``ref`` (NaN without a dense row)."""
    import numpy as np

    n = len(table)
    found, ref_bits, ref_lat, ref_en = _lookup(table, ref)
    lat = table.column("latency_s").to_numpy(zero_copy_only=False).astype(np.float64) if n else np.zeros(0)
    en = table.column("energy_pj").to_numpy(zero_copy_only=False).astype(np.float64) if n else np.zeros(0)
    with np.errstate(divide="ignore", invalid="ignore"):
        speed = np.where(found & (lat != 0), ref_lat / np.where(lat != 0, lat, 1.0), np.nan)
        ratio = np.where(found & (ref_en != 0), en / np.where(ref_en != 0, ref_en, 1.0), np.nan)
    for name, values in (("dense_ref_bits", pa.array(ref_bits, type=pa.int64(), mask=~found)),
                         ("speedup_vs_dense_ref", pa.array(speed, type=pa.float64())),
                         ("energy_ratio_vs_dense_ref", pa.array(ratio, type=pa.float64()))):
        if name in table.column_names:
            table = table.drop_columns([name])
        table = table.append_column(name, values)
    return table


_REF_ARRAYS: dict[int, tuple] = {}


def _ref_arrays(ref: dict[tuple, tuple[int, float, float]]) -> tuple:
    """``ref`` as arrays, made once per reference: per key column its distinct values and each
    entry's code among them, then the entries' bits, latency and energy."""
    import numpy as np

    got = _REF_ARRAYS.get(id(ref))
    if got is not None and got[0] is ref and got[1] == len(ref):
        return got[2]
    keys = list(ref)
    values, codes = [], []
    for j in range(len(_REF_KEYS)):
        index: dict = {}
        codes.append(np.asarray([index.setdefault(k[j], len(index)) for k in keys], dtype=np.int64))
        values.append(list(index))
    entries = list(ref.values())
    arrays = (values, codes, np.asarray([e[0] for e in entries], dtype=np.int64),
              np.asarray([e[1] for e in entries], dtype=np.float64), np.asarray([e[2] for e in entries], dtype=np.float64))
    _REF_ARRAYS.clear()  # one reference at a time (a consolidation's); holding it keeps its id unique
    _REF_ARRAYS[id(ref)] = (ref, len(ref), arrays)
    return arrays


def _lookup(table: pa.Table, ref: dict[tuple, tuple[int, float, float]]):
    """(found, bits, latency_s, energy_pj) of each row's dense reference (0 / NaN where none).

    The key columns are dictionary-encoded and the reference laid out over the cross product
    of their distinct values (a few envs, designs, scenarios, batches), so every row is one
    array lookup; a cross product too big for that falls back to one dict lookup per row.
    """
    import numpy as np
    import pyarrow.compute as pc

    n = len(table)
    codes, values = [], []
    for c in _REF_KEYS:
        enc = pc.dictionary_encode(table.column(c).combine_chunks())
        codes.append(enc.indices.to_numpy(zero_copy_only=False).astype(np.int64))
        values.append(enc.dictionary.to_pylist())
    sizes = [len(v) for v in values]
    if n and int(np.prod(sizes)) <= 4 * n + 1_000_000 and not any(table.column(c).null_count for c in _REF_KEYS):
        ref_values, ref_codes, ref_bits, ref_lat, ref_en = _ref_arrays(ref)
        flat = np.zeros(len(ref_bits), dtype=np.int64)
        usable = np.ones(len(ref_bits), dtype=bool)
        for vals, here, codes_of_ref, size in zip(ref_values, values, ref_codes, sizes):
            # This row group's code of each distinct reference value (-1: no row has it).
            index = {v: i for i, v in enumerate(here)}
            to_here = np.asarray([index.get(v, -1) for v in vals], dtype=np.int64)
            c = to_here[codes_of_ref] if len(vals) else np.zeros(0, dtype=np.int64)
            usable &= c >= 0
            flat = flat * size + np.maximum(c, 0)
        total = int(np.prod(sizes))
        table_bits = np.zeros(total, dtype=np.int64)
        table_lat, table_en = np.full(total, np.nan), np.full(total, np.nan)
        table_found = np.zeros(total, dtype=bool)
        at = flat[usable]
        table_bits[at], table_lat[at], table_en[at], table_found[at] = ref_bits[usable], ref_lat[usable], ref_en[usable], True
        row = np.ravel_multi_index(codes, sizes)
        return table_found[row], table_bits[row], table_lat[row], table_en[row]
    keys = list(zip(*(table.column(c).to_pylist() for c in _REF_KEYS))) if n else []
    hits = [ref.get(k) for k in keys]
    return (np.asarray([h is not None for h in hits], dtype=bool),
            np.asarray([h[0] if h else 0 for h in hits], dtype=np.int64),
            np.asarray([h[1] if h else np.nan for h in hits], dtype=np.float64),
            np.asarray([h[2] if h else np.nan for h in hits], dtype=np.float64))


class Derivation:
    """The derived columns, streamed: :meth:`prepare` sees the dense rows (grid order) once, then
    :meth:`apply` adds the columns to each row group."""

    def __init__(self, quality_path: Optional[str | Path]):
        self.quality = load_quality(quality_path) if quality_path else None
        self.ref: dict[tuple, tuple[int, float, float]] = {}

    def prepare(self, dense_rows: pa.Table) -> None:
        self.ref = dense_reference(dense_rows)

    def apply(self, table: pa.Table) -> pa.Table:
        return apply_dense_reference(join_quality(table, self.quality), self.ref)
