"""Loading a sweep directory for reporting, and the display conventions shared by all outputs."""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
from contextlib import contextmanager
from functools import lru_cache, partial
from pathlib import Path
from typing import Any, Optional

import numpy as np
import pandas as pd

from hwmodel.errors import NmlabError
from hwmodel.limits import is_dir, is_file, is_int, load_json, read_parquet, short

REQUIRED = ("point_id", "env", "pattern", "bits", "design", "scenario", "batch", "latency_s", "energy_pj",
            "method", "mask_source", "speedup_vs_dense", "energy_ratio_vs_dense")

#: column -> (label with unit, factor from stored unit to displayed unit)
DISPLAY = {
    "latency_s": ("latency (us)", 1e6),
    "energy_pj": ("energy per pass (uJ)", 1e-6),
    "model_bytes": ("model size (KB)", 1e-3),
    "return_mean": ("evaluation return", 1.0),
}

ENERGY_COMPONENTS = ("mac", "sram", "reg", "metadata", "mux", "dram", "leakage")
#: What an energy component is on a GPU row (hwmodel/gpu/design_point.py: energy = time x board power):
#: its "leakage" is the board's idle/floor power over the call's time, not transistor leakage, and
#: its "mac" the power above that floor. The other components are none of a GPU's.
GPU_COMPONENT_NAMES = {"leakage": "idle/floor power", "mac": "active power"}


def component_label(component: str, gpus: bool) -> str:
    """An energy component as a legend names it: with GPU rows in the figure (``gpus``), what it is
    for them too ("leakage (GPU: idle/floor power)"); the page and the PNG use the same words."""
    gpu = GPU_COMPONENT_NAMES.get(component) if gpus else None
    return f"{component} (GPU: {gpu})" if gpu else component


def _not_a_sweep_folder(out: Path) -> Optional[str]:
    """What ``out`` is when it is a folder of another kind: its "run nmlab sweep --out DIR first"
    would have swept into a sweep's own report/ or parts/ folder, a training run or a campaign."""
    real = out.resolve()
    if real.name in ("report", "parts") and any((real.parent / f).is_file() for f in ("points.parquet", "sweep.json")):
        up = os.path.normpath(os.path.join(out, os.pardir))  # ".." for "."
        return f"report: {out}: is the {real.name}/ folder of the sweep in {up}, not a sweep folder; give {up}"
    if (out / "checkpoint.pt").is_file() or (out / "progress.csv").is_file():
        return (f"report: {out}: is a training run (nmlab train --out), not a sweep folder; a sweep runs its export "
                f"(nmlab export, then the .nmw under a sweep config's workloads)")
    if (out / "campaign.lock").is_file():
        return (f"report: {out}: is a campaign folder (nmlab campaign --out), not a sweep folder; a sweep runs its "
                f"runs' exports (RUN/workload.nmw under a sweep config's workloads)")
    return None


def load_sweep(out: str | Path) -> tuple[pd.DataFrame, dict[str, Any]]:
    """The table ``DIR/points.parquet`` and the manifest ``DIR/sweep.json`` (empty if absent)."""
    out = Path(out)
    table = out / "points.parquet"
    # A file given for DIR (points.parquet itself, a config) or a misspelt folder: said
    # "DIR/points.parquet not found; run nmlab sweep --out DIR first", which would sweep into it.
    if is_file(out):
        raise NmlabError(f"report: {out}: is a file, not a sweep folder (give the --out folder of nmlab sweep, "
                         f"which holds points.parquet)")
    if not is_dir(out):
        raise NmlabError(f"report: no such folder: {out} (the --out folder of nmlab sweep, which holds points.parquet)")
    if is_dir(table):  # said "not found; run nmlab sweep first" for a folder that is there
        raise NmlabError(f"report: {table}: is a directory, not the sweep's table")
    if not table.is_file():
        if (out / "sweep.json").is_file():
            # A sweep started here and did not finish: "nmlab sweep --out DIR" alone would sweep the
            # default grid into it, not the config this sweep was started with.
            # Bounded like every JSON input (docs/limits.md): a 200,000-deep [[[...]]] was a RecursionError.
            manifest = load_json(out / "sweep.json", "report")
            _check_manifest(manifest, out / "sweep.json")
            config = manifest.get("config_file")
            what = f"config {config}" if isinstance(config, str) else "the default grid" if config is None else "its config"
            raise NmlabError(f"report: {table} not found: the sweep in {out} did not finish; run the nmlab sweep "
                             f"command that started it ({what}, --out {out}) again to finish it")
        raise NmlabError(_not_a_sweep_folder(out) or f"report: {table} not found; run nmlab sweep --out {out} first")
    # The footer first, then the decoded size, both within the limits (docs/limits.md).
    arrow = read_parquet(table, "report")
    try:
        df = arrow.to_pandas()
    except Exception as exc:  # a column type pandas cannot hold
        raise NmlabError(f"report: {table}: unreadable ({short(' '.join(str(exc).split()), 160)})") from None
    missing = [c for c in REQUIRED if c not in df.columns]
    if missing:
        raise NmlabError(f"report: {table}: column {missing[0]!r} missing (not a sweep table?)")
    if df.empty:
        raise NmlabError(f"report: {table}: no rows")
    _check_values(df, table)
    for col in ("return_mean", "model_bytes"):
        if col not in df.columns:
            df[col] = float("nan")
    # Plain Python strings: pandas' Arrow-backed string columns make the many small selections
    # and row iterations of a report several times slower.
    for col in df.columns:
        if df[col].dtype != object and (pd.api.types.is_string_dtype(df[col].dtype)):
            df[col] = df[col].astype(object)
    manifest: dict[str, Any] = {}
    mpath = out / "sweep.json"
    if mpath.is_file():
        # A damaged manifest is an error, not a report as if it were absent: that report would say
        # a sweep is complete, and which quality table it joined, without knowing.
        manifest = load_json(mpath, "report")
        _check_manifest(manifest, mpath)
    return df, manifest


def _check_manifest(manifest: Any, path: Path) -> None:
    """One NmlabError line when ``sweep.json`` parses but is not what a sweep writes, in the fields the
    report reads (they would end in an AttributeError or TypeError further on)."""
    if not isinstance(manifest, dict):
        raise NmlabError(f"report: {path}: expected a JSON object (a sweep manifest), got {type(manifest).__name__}")
    for key, ok, what in (("quality_table", lambda v: v is None or isinstance(v, str), "a path or null"),
                          ("complete", lambda v: isinstance(v, bool), "true or false"),
                          ("points", lambda v: is_int(v) and v >= 0,
                           "a count of points")):
        if key in manifest and not ok(manifest[key]):
            raise NmlabError(f"report: {path}: {key}: expected {what}, got {json.dumps(manifest[key])[:80]}")
    # A GPU's fixed times as the sweep ran it (quoted in its why line: reports.why.gpu_fixed_times).
    designs = manifest.get("designs")
    for i, entry in enumerate(designs if isinstance(designs, list) else []):
        rec = entry.get("gpu_model") if isinstance(entry, dict) else None
        if rec is None:
            continue
        where = f"report: {path}: designs[{i}].gpu_model"
        if not isinstance(rec, dict):
            raise NmlabError(f"{where}: expected an object, got {json.dumps(rec)[:80]}")
        for key, ok, what in (("params_set", lambda v: isinstance(v, str) and 0 < len(v) <= 64 and v.isprintable(),
                               "a parameter set's name"),
                              ("params_sha", lambda v: isinstance(v, str), "a sha"),
                              ("kernel_dense_us", _positive_number, "a positive number of us"),
                              ("kernel_sparse_us", _positive_number, "a positive number of us")):
            if not ok(rec.get(key)):
                raise NmlabError(f"{where}.{key}: expected {what}, got {json.dumps(rec.get(key))[:80]}")
        if not isinstance(rec.get("params_own", False), bool):
            raise NmlabError(f"{where}.params_own: expected true or false, got {json.dumps(rec.get('params_own'))[:80]}")
        for key in ("params_file", "params_note"):  # quoted in the why lines of a spec's own parameter file
            v = rec.get(key, "")
            if not (isinstance(v, str) and len(v) <= 300 and v.isprintable()):
                raise NmlabError(f"{where}.{key}: expected up to 300 printable characters, got {json.dumps(v)[:80]}")
        fitted = rec.get("params_fitted_on", [])  # absent in an older nmlab's sweep.json
        if not (isinstance(fitted, list) and len(fitted) <= 64 and all(
                isinstance(g, str) and 0 < len(g) <= 64 and g.isprintable() for g in fitted)):
            raise NmlabError(f"{where}.params_fitted_on: expected a list of GPU names, got {json.dumps(fitted)[:80]}")


def _positive_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and 0 < v <= 1e6


#: Columns that name a point: text in every row (a sweep never writes them empty).
KEY_COLUMNS = ("env", "pattern", "design", "scenario", "method", "mask_source")
#: Figures that may be missing (NaN: left out of the fronts that use them and counted) but are
#: never negative or infinite in a sweep's table.
NONNEGATIVE_FIGURES = ("latency_s", "energy_pj", "model_bytes")


def _check_values(df: pd.DataFrame, table: Path) -> None:
    """One NmlabError line naming the column when a value could only end in a traceback or a
    false figure further on: an empty or non-text key, a batch or bitwidth that is not a whole
    number in range, a point id twice, a figure that is not a number, an infinite or negative
    latency, energy or size, an infinite return."""
    def fail(col: str, bad: np.ndarray, what: str) -> None:
        first = df.point_id.iloc[int(np.flatnonzero(bad)[0])]
        raise NmlabError(f"report: {table}: column {col!r}: {int(bad.sum())} of {len(df)} rows {what} "
                         f"(first: point {first}); not a table nmlab sweep wrote")

    def numbers(col: str) -> np.ndarray:
        """The column as float64 (None and NaN: missing); text such as "1e-6" or booleans refused,
        which a conversion here would let through to fail in the arithmetic later."""
        c = df[col]
        if pd.api.types.is_numeric_dtype(c) and not pd.api.types.is_bool_dtype(c):
            return c.to_numpy(dtype=np.float64)
        bad = ~c.map(lambda v: v is None or (isinstance(v, (int, float, np.number)) and not isinstance(v, (bool, np.bool_))))
        if bad.any():
            fail(col, bad.to_numpy(dtype=bool), "are not numbers (NaN when missing)")
        return c.to_numpy(dtype=np.float64, na_value=np.nan)

    ids = df.point_id
    if ids.isna().any():
        fail("point_id", ids.isna().to_numpy(), "are empty")
    dup = ids.duplicated(keep="first").to_numpy()
    if dup.any():
        fail("point_id", dup, "repeat an earlier row's id")
    for col in KEY_COLUMNS:
        empty = df[col].isna().to_numpy()
        if empty.any():
            fail(col, empty, "are empty")
        if pd.api.types.infer_dtype(df[col], skipna=False) != "string":
            fail(col, ~df[col].map(lambda v: isinstance(v, str)).to_numpy(dtype=bool), "are not text")
    for col in ("speedup_vs_dense", "energy_ratio_vs_dense"):
        numbers(col)
    for col, low, high in (("batch", 1, None), ("bits", 1, 32)):
        v = numbers(col)
        with np.errstate(invalid="ignore"):
            bad = ~(np.isfinite(v) & (v == np.round(v)) & (v >= low) & (v <= (high or np.inf)))
        if bad.any():
            fail(col, bad, f"are not whole numbers {f'from {low} to {high}' if high else f'of at least {low}'}")
    for col in (*NONNEGATIVE_FIGURES, "return_mean"):
        if col not in df.columns:
            continue
        v = numbers(col)
        bad = np.isinf(v)
        if col != "return_mean":
            with np.errstate(invalid="ignore"):
                bad |= v < 0
        if bad.any():
            fail(col, bad, "are infinite (NaN when missing)" if col == "return_mean"
                 else "are infinite, negative or not numbers (NaN when missing)")


#: Plots show at most this many batch sizes per scenario (fronts.json always has every group).
MAX_BATCHES_PLOTTED = 3


def plotted_subset(df: pd.DataFrame) -> tuple[pd.DataFrame, Optional[str]]:
    """Rows the figures, page and summary show: per scenario, all batch sizes or (when there are many) the smallest,
    median and largest. Returns the rows and a note saying what was left out (None if nothing)."""
    keep = []
    dropped = []
    for sc, g in df.groupby("scenario", sort=True):
        batches = sorted(int(b) for b in g.batch.unique())
        if len(batches) > MAX_BATCHES_PLOTTED:
            chosen = sorted({batches[0], batches[len(batches) // 2], batches[-1]})
            dropped.append(f"{sc}: batches {', '.join(map(str, chosen))} of {len(batches)}")
        else:
            chosen = batches
        keep.append(g[g.batch.isin(chosen)])
    if not dropped:
        return df, None
    note = ("Figures show a few batch sizes per scenario (" + "; ".join(dropped) + "); "
            "fronts.json covers every batch size.")
    return pd.concat(keep), note


def shown(col: str, values):
    """Values of ``col`` in display units."""
    return values * DISPLAY.get(col, ("", 1.0))[1]


def label(col: str) -> str:
    return DISPLAY.get(col, (col, 1.0))[0]


def log_axis(col: str) -> bool:
    """Whether the fronts draw ``col`` on a log axis: every objective but the return."""
    return col != "return_mean"


def per_scenario(text: str, scenario: Optional[str]) -> str:
    """``text`` for points of one scenario: a train step's "pass" is one TD3 update (all six networks, forward
    and backward, at the batch), so there "energy per pass" reads "energy per train step"."""
    return text.replace("per pass", "per train step") if scenario == "train_step" else text


def axis_label(col: str, log: bool, scenario: Optional[str] = None) -> str:
    """An axis title with its unit and, on a log axis, "log scale": "energy per pass (uJ, log scale)" (for
    ``scenario`` "train_step": "energy per train step (uJ, log scale)", ``per_scenario``)."""
    text = per_scenario(label(col), scenario)
    if not log:
        return text
    return text[:-1] + ", log scale)" if text.endswith(")") else text + " (log scale)"


#: Markdown's characters, and an underscore not between two letters or digits: Markdown counts ``_`` itself as
#: punctuation, so in ``__init__`` the inner ``_init_`` was emphasis (an underscore next to another one). A ``<``
#: only where it could open a tag or an autolink (a letter, ``/``, ``!`` or ``?`` after it), an ``&`` only where
#: it could open an entity, ``#`` and ``>`` only at the start (a heading, a quote): ``<= 2`` and ``A & B`` read
#: as written in the raw file too.
_MD_SPECIAL = re.compile(r"[\\`*|\[\]$~]|<(?=[A-Za-z/!?])|&(?=[A-Za-z#])|^[#>]|(?<![^\W_])_|_(?![^\W_])")


def md_text(text) -> str:
    """``text`` (a name or a sentence built from names in users' files) as summary.md shows it as written:
    Markdown's characters escaped with a backslash (a ``|`` split a table row into one column too many,
    ``<b>x</b>`` and ``<script>`` were raw HTML, backticks, ``*``, ``$`` and brackets were markup), an
    underscore between two letters or digits left as it is (``edge_ws``), and a line break or other control
    character as a space (it ended the table row). Text without those characters is unchanged."""
    text = "".join(ch if ch.isprintable() else " " for ch in str(text))
    return _MD_SPECIAL.sub(lambda m: "\\" + m.group(0), text)


def name_digest(name) -> str:
    """8 hex digits of ``name``'s SHA-256 (UTF-8): added where a name's plain form (a page anchor, a file
    name) would be shared with another name's or say nothing (``env_anchor``, ``figures.env_png_names``)."""
    return hashlib.sha256(str(name).encode("utf-8", "surrogatepass")).hexdigest()[:8]


def section_key(env: str, scenario: str, batch: int) -> str:
    return f"{env} - {scenario.replace('_', ' ')} (batch {batch})"


def pattern_order(patterns) -> list[str]:
    """Dense first, then N:M by decreasing density (2:4, 1:4, 1:8...), then unstructured (trained, then by level)."""
    def key(p: str):
        if p == "dense":
            return (0, 0.0, p)
        if p.startswith("unstructured"):
            level = p.partition(":")[2]
            try:
                return (2, float(level) if level else 0.0, p)
            except ValueError:
                return (3, 0.0, p)
        try:
            n, m = (int(x) for x in p.split(":"))
            return (1, -n / m, p)
        except ValueError:
            return (2, 0.0, p)
    return sorted(set(patterns), key=key)


def _scaled(value: Optional[float], units: tuple[tuple[str, float], ...], base: str, base_factor: float = 1.0,
            base_fmt: Optional[str] = None, digits: int = 3) -> str:
    """``value`` in the largest of ``units`` (name, factor) it reaches, else in ``base`` (formatted by
    ``base_fmt`` when given), to ``digits`` significant digits; NaN/None -> n/a."""
    if value is None or value != value:
        return "n/a"
    for unit, factor in units:
        if value >= factor:
            return f"{value / factor:.{digits}g} {unit}"
    return f"{value / base_factor:{base_fmt or f'.{digits}g'}} {base}"


def fmt_ratio(v: Optional[float], digits: int = 3) -> str:
    """A ratio against dense (speedup, energy ratio, quantization gain) as every table, hover, PNG and summary.md
    writes it, and ``nmlab check`` a figure against its budget: ``digits`` (3) significant digits, trailing zeros
    kept, so ratios side by side read at one precision ("0.610" beside "0.566", "1.00" for no change, "18.1",
    "0.00460"); 1,000 and over (10 ** ``digits``) as a whole number with thousands separators; NaN/None -> an en
    dash."""
    if v is None or v != v:
        return "\u2013"
    if v == 0 or math.isinf(v):
        return f"{v:g}"
    s = f"{v:#.{digits}g}"
    if "e" in s:  # %g switches to an exponent past 10 ** digits and under 1e-4: write the number out
        if abs(v) >= 10 ** digits - 0.5:
            return f"{v:,.0f}"
        return f"{v:.{digits - 1 - math.floor(math.log10(abs(v)))}f}"
    return s.rstrip(".")


def fmt_bytes(n: Optional[float], digits: int = 3) -> str:
    return _scaled(n, (("MB", 1e6), ("KB", 1e3)), "B", base_fmt=".0f", digits=digits)


def fmt_time(s: float, digits: int = 3) -> str:
    return _scaled(s, (("s", 1.0), ("ms", 1e-3), ("us", 1e-6)), "ns", base_factor=1e-9, digits=digits)


def fmt_energy(pj: float, digits: int = 3) -> str:
    return _scaled(pj, (("J", 1e12), ("mJ", 1e9), ("uJ", 1e6), ("nJ", 1e3)), "pJ", digits=digits)


def distinct_digits(values, fmt, lo: int = 3, hi: int = 6) -> int:
    """The fewest significant digits, ``lo`` to ``hi``, at which ``fmt(value, digits)`` writes every two different
    ``values`` (NaN skipped) differently: a front's table must not show two of its points at one energy when the
    one with the lower return is on the front because its energy is lower in the fifth digit."""
    vals = sorted({float(v) for v in values if v is not None and v == v})
    for d in range(lo, hi + 1):
        if len({fmt(v, d) for v in vals}) == len(vals):
            return d
    return hi


def seed_range_text(lo: Optional[float], hi: Optional[float], dash: str = "-", unknown: str = "n/a") -> str:
    """A return's seed range as the return is written (no decimals): "5006-6292" (``dash``: "-" in Markdown, an
    en dash on the page; " to " in place of "-" where an end is negative: "-120 to -5", not "-120--5");
    ``unknown`` when either end is None or NaN."""
    if lo is None or hi is None or lo != lo or hi != hi:
        return unknown
    return f"{lo:.0f}{' to ' if dash == '-' and min(lo, hi) < 0 else dash}{hi:.0f}"


def front_formats(rows: pd.DataFrame) -> dict[str, Any]:
    """Column -> formatter of a front's table (latency, energy, model size: each to the digits that tell its rows
    apart, ``distinct_digits``; the return rounded, "missing" for NaN)."""
    out: dict[str, Any] = {}
    for col, f in (("latency_s", fmt_time), ("energy_pj", fmt_energy), ("model_bytes", fmt_bytes)):
        if col in rows.columns:
            out[col] = partial(f, digits=distinct_digits(rows[col], f))
    out["return_mean"] = lambda v: "missing" if v != v else f"{v:.0f}"
    return out


# ----------------------------------------------------------------------------- agents
#: Columns naming one agent: a (method, agent label) pair of the sweep (``hwmodel.agents``).
AGENT_KEY = ("method", "agent")


def with_agent(df: pd.DataFrame) -> pd.DataFrame:
    """``df`` with an ``agent`` column (tables written before it existed: the pattern, one-shot marked)."""
    if "agent" in df.columns:
        return df
    agent = [p if s == "trained" else f"{p} one-shot" for p, s in zip(df.pattern, df.get("mask_source", ["trained"] * len(df)))]
    out = df.assign(agent=agent)
    if "method" not in out.columns:
        out["method"] = ""
    return out


def agent_label(method: str, agent: str) -> str:
    """How an agent is named on the page: its label, with the method when the label lacks it."""
    method, agent = str(method or ""), str(agent)
    if not method or method.split("(")[0] in agent or "one-shot" in agent:
        return agent
    return f"{agent} ({method})"


def agent_order(df: pd.DataFrame) -> list[tuple[str, str]]:
    """(method, agent) pairs of ``df``: dense TD3 first, then trained agents by pattern (pattern_order),
    then one-shot points; each agent separately, never merged by pattern."""
    df = with_agent(df)
    order = {p: i for i, p in enumerate(pattern_order(df.pattern))}
    keys = df[["method", "agent", "pattern", "mask_source"]].drop_duplicates(["method", "agent"])
    ranked = sorted(keys.itertuples(index=False), key=lambda k: (
        k.mask_source != "trained", order[k.pattern], k.method != "td3", str(k.method), str(k.agent)))
    return [(str(k.method), str(k.agent)) for k in ranked]


def one_row_per(df: pd.DataFrame, keys: list[str], what: str) -> pd.DataFrame:
    """``df`` indexed by ``keys``; raises NmlabError (one line, exit status 2) when two rows share a key:
    a figure or table built on it then shows each row as it is, never an average of two agents or two points."""
    dup = df.duplicated(list(keys), keep=False)
    if dup.any():
        first = df[dup].iloc[0]
        raise NmlabError(f"report: {what}: {int(dup.sum())} rows share ({', '.join(f'{k}={first[k]}' for k in keys)}); "
                         f"refusing to average them")
    return df.set_index(list(keys))


# ----------------------------------------------------------------------------- GPU design points
@lru_cache(maxsize=1)
def bundled_gpu_names() -> frozenset[str]:
    """Names of the bundled GPU specs (hwmodel/data/gpus/<name>.yaml; a file's stem is its spec's name)."""
    from hwmodel.io import data_path

    return frozenset(p.stem for p in data_path("gpus").glob("*.yaml"))


#: GPU design points of the report being built that are not bundled specs (``register_gpus``).
_OTHER_GPUS: set[str] = set()
#: Accelerator designs of the report being built that carry a bundled GPU spec's name (``register_gpus``).
_NOT_GPUS: set[str] = set()


def gpu_rows(df: pd.DataFrame) -> np.ndarray:
    """Per row: whether it is a GPU design point. With ``technology_nm``, the rows say: every accelerator
    design has a technology node, a GPU row carries NaN there (an accelerator design named ``h100_sxm``
    is no GPU). Without it, a bundled GPU spec's name or a registered GPU (``register_gpus``)."""
    if "technology_nm" in df.columns:
        return df.technology_nm.isna().to_numpy()
    return df.design.map(is_gpu).to_numpy(dtype=bool)


def register_gpus(df: pd.DataFrame) -> frozenset[str]:
    """Note the GPU design points of ``df`` (``gpu_rows``), for the report being built: a GPU spec file
    outside the bundle is a GPU too (colours, order, "(GPU)"), and an accelerator design named as a bundled
    GPU spec is not one. Replaces what an earlier report noted. Returns the GPU designs of ``df``."""
    gpus = frozenset(df.design[gpu_rows(df)].unique())
    _OTHER_GPUS.clear()
    _OTHER_GPUS.update(gpus - bundled_gpu_names())
    _NOT_GPUS.clear()
    _NOT_GPUS.update((set(df.design.unique()) - gpus) & bundled_gpu_names())
    return gpus


@contextmanager
def gpu_registry():
    """Restores the GPUs noted by ``register_gpus`` on exit: one report's notes never outlive it."""
    saved = set(_OTHER_GPUS), set(_NOT_GPUS)
    try:
        yield
    finally:
        _OTHER_GPUS.clear()
        _OTHER_GPUS.update(saved[0])
        _NOT_GPUS.clear()
        _NOT_GPUS.update(saved[1])


def is_gpu(design: str) -> bool:
    """Whether ``design`` names a GPU design point (bundled and not registered as an accelerator, or
    registered by ``register_gpus``)."""
    return (design in bundled_gpu_names() and design not in _NOT_GPUS) or design in _OTHER_GPUS


def design_title(design: str) -> str:
    """A design as the tables, legends and figures name it: a GPU marked, "h100_sxm (GPU)"."""
    return f"{design} (GPU)" if is_gpu(design) else design


def design_order(designs) -> list[str]:
    """Accelerator designs in sorted order, then the GPUs beside them (sorted)."""
    return sorted(set(designs), key=lambda d: (is_gpu(d), d))
