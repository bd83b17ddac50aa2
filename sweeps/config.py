"""Sweep configuration: the YAML file of ``nmlab sweep`` (format in docs/sweeps.md), validated.

Every problem is one :class:`~hwmodel.errors.NmlabError` line naming the key, e.g.
``sweep config: bits[1]: must be an integer from 1 to 32, got 'eight'``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Union

from hwmodel.errors import NmlabError
from hwmodel.limits import (MAX_BITS, MIN_BITS, check_version, config_path, config_relative, is_file, is_int, limit,
                            load_yaml, not_a_file, other_kind, over_limit, short)
from hwmodel.agents import MIXED
from hwmodel.sparsity import parse_pattern

CONFIG_VERSION = 1
SCENARIOS = ("inference", "train_step")

#: The default grid: the README's main job (bundled workloads x bundled designs).
#: "unstructured" = each env's trained unstructured workloads (RLx2, gradual pruning) as they
#: are, left out where an env has none; "unstructured:0.9" = the dense agent pruned one-shot
#: to 90% unstructured sparsity, so unstructured and N:M compare even without such runs.
DEFAULT_PATTERNS = ("dense", "2:4", "1:4", "1:8", "unstructured", "unstructured:0.9")
DEFAULT_BITS = (32, 16, 8, 4)
#: Batch-1 inference is the control loop; TD3's default minibatch is 256 (reference/rl.md).
DEFAULT_SCENARIOS = (("inference", 1), ("train_step", 256))

#: GPUs swept beside the accelerator designs by default (hwmodel/data/gpus; docs/gpu.md).
DEFAULT_GPUS = ("h100_sxm", "a100_sxm")

_KEYS = {"version", "workloads", "patterns", "bits", "designs", "gpus", "scenarios", "quality", "chunk_size"}


@dataclass(frozen=True)
class Scenario:
    """One scenario of the grid: ``name`` is "inference" or "train_step", ``batch`` the batch size."""

    name: str
    batch: int


@dataclass
class SweepConfig:
    """A validated sweep configuration.

    Attributes:
        workloads: "bundled" or a list of workload file paths (absolute after loading).
        patterns: canonical pattern strings ("dense", "2:4", ...), no duplicates.
        bits: weight bitwidths, no duplicates.
        designs: "bundled", a list of bundled design names / design YAML paths, or none (``[]``,
            ``none``): no accelerator, for a sweep of the ``gpus`` alone.
        gpus: GPU design points swept beside the designs: "bundled" (every bundled GPU spec) or
            a list of bundled GPU names / GPU spec files (empty: none). Default: DEFAULT_GPUS,
            or none when the config lists its ``designs`` and says nothing of ``gpus``.
        scenarios: (scenario, batch) pairs.
        quality: "bundled", None (no return join) or a CSV path.
        chunk_size: points per part file; None picks one from the grid size and workers.
        source: the YAML file it came from (None for the default grid).
    """

    workloads: Union[str, list[str]] = "bundled"
    patterns: list[str] = field(default_factory=lambda: list(DEFAULT_PATTERNS))
    bits: list[int] = field(default_factory=lambda: list(DEFAULT_BITS))
    designs: Union[str, list[str]] = "bundled"
    gpus: Union[str, list[str]] = field(default_factory=lambda: list(DEFAULT_GPUS))
    scenarios: list[Scenario] = field(default_factory=lambda: [Scenario(s, b) for s, b in DEFAULT_SCENARIOS])
    quality: Optional[str] = "bundled"
    chunk_size: Optional[int] = None
    source: Optional[str] = None

    def to_dict(self) -> dict[str, Any]:
        """Plain data, as written to ``DIR/sweep.json`` (paths resolved)."""
        return {
            "version": CONFIG_VERSION,
            "workloads": self.workloads,
            "patterns": list(self.patterns),
            "bits": list(self.bits),
            "designs": self.designs,
            "gpus": self.gpus,
            "scenarios": [{"scenario": s.name, "batch": s.batch} for s in self.scenarios],
            "quality": self.quality,
            "chunk_size": self.chunk_size,
        }


UNSTRUCTURED_PREFIX = "unstructured:"
#: Widest N:M group a sweep or check prunes to (real N:M hardware stops at M = 32 or so).
MAX_GROUP = 1024


def parse_grid_pattern(item: Any, field: str) -> str:
    """Canonical text of one grid pattern; NmlabError naming ``field`` when it is none.

    ``dense`` and ``N:M`` as in workload files; ``unstructured`` = the trained unstructured
    masks as they are; ``unstructured:S`` = pruned one-shot by magnitude to sparsity S (the
    fraction of zeros, 0 < S < 1) in every layer, written ``unstructured:0.9``; ``mixed`` = the
    trained agents with per-layer patterns (never pruned one-shot).
    """
    if isinstance(item, str) and item.strip().lower().startswith(UNSTRUCTURED_PREFIX):
        text = item.strip().lower()[len(UNSTRUCTURED_PREFIX):]
        try:
            level = float(text)
        except ValueError:
            level = float("nan")
        if not 0.0 < level < 1.0:  # also false for NaN
            raise NmlabError(f"{field}: {short(item)}: the sparsity after 'unstructured:' must be a fraction of "
                             "zeros between 0 and 1, e.g. 'unstructured:0.9'")
        # ``:g`` names the usual levels (0.9); a level it would round (0.9999999 -> 1, an
        # invalid sparsity found only when the point is evaluated) keeps its exact digits.
        text = f"{level:g}" if float(f"{level:g}") == level else repr(level)
        return f"{UNSTRUCTURED_PREFIX}{text}"
    if isinstance(item, str) and item.strip().lower() == MIXED:
        return MIXED  # the trained agents with per-layer patterns (nmlab train --layer-sparsity)
    pattern = parse_pattern(item, field=field)
    if pattern.kind == "nm" and pattern.m > MAX_GROUP:
        # Pruning pads every row to a multiple of M: 1:1000000000 would allocate terabytes.
        raise NmlabError(f"{field}: {short(item)} has M={pattern.m:,}; M is at most {MAX_GROUP:,} (docs/limits.md)")
    return str(pattern)


def unstructured_level(pattern: str) -> Optional[float]:
    """S of a grid pattern ``unstructured:S``; None for any other pattern."""
    return float(pattern[len(UNSTRUCTURED_PREFIX):]) if pattern.startswith(UNSTRUCTURED_PREFIX) else None


def _fail(key: str, msg: str) -> None:
    raise NmlabError(f"sweep config: {key}: {msg}")


def _list(data: dict, key: str) -> list:
    value = data[key]
    if isinstance(value, (str, int)) and not isinstance(value, bool):
        value = [value]
    if not isinstance(value, list) or not value:
        _fail(key, f"must be a non-empty list, got {short(value)}")
    return value


def _path(item: Any, where: str, base: Path, must_exist: bool, what: str = "a file path or name") -> str:
    """:func:`hwmodel.limits.config_path` with the sweep config's error prefix."""
    return config_path(item, f"sweep config: {where}", base, must_exist, what)


def _paths(value: list, key: str, base: Path, must_exist: bool) -> list[str]:
    return [_path(item, f"{key}[{i}]", base, must_exist) for i, item in enumerate(value)]


def _workload_paths(value: list, base: Path) -> list[str]:
    """The ``workloads`` paths, each an existing file; a training run's folder says what to give instead."""
    from hwmodel.workload import bundled_hint, run_folder_hint

    for i, item in enumerate(value):
        if isinstance(item, str) and item.strip():
            path = config_relative(item, base)
            hint = run_folder_hint(path)
            if hint:
                _fail(f"workloads[{i}]", f"{item}: {hint}")
            if not is_file(path):
                hint = bundled_hint(os.path.expanduser(item))
                if hint:
                    _fail(f"workloads[{i}]", f"no such file: {item}{hint}")
    return _paths(value, "workloads", base, must_exist=True)


def parse_config(data: Any, base: Path = Path("."), source: Optional[str] = None) -> SweepConfig:
    """Validate the loaded YAML ``data``; relative paths are relative to ``base``."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        # Name the file: a CSV or a list given as CONFIG parses as YAML, just not as a mapping.
        raise NmlabError(f"sweep config: {source + ': ' if source else ''}must be a YAML mapping of keys to values, "
                         f"got a {type(data).__name__}")
    unknown = sorted(set(map(str, data)) - _KEYS)
    if unknown:
        _fail(short(unknown[0])[1:-1],
              f"unknown key (known: {', '.join(sorted(_KEYS))}){other_kind(data, 'a sweep config')}")
    cfg = SweepConfig(source=source)
    check_version(data.get("version", CONFIG_VERSION), (CONFIG_VERSION,), "sweep config: version")

    if "workloads" in data:
        if data["workloads"] == "bundled":
            cfg.workloads = "bundled"
        else:
            cfg.workloads = _workload_paths(_list(data, "workloads"), base)

    if "patterns" in data:
        seen: dict[str, None] = {}  # ordered; a list's "in" is quadratic in a long pattern list
        for i, item in enumerate(_list(data, "patterns")):
            p = parse_grid_pattern(item, f"sweep config: patterns[{i}]")
            if p in seen:
                _fail(f"patterns[{i}]", f"duplicate pattern {p}")
            seen[p] = None
        cfg.patterns = list(seen)

    if "bits" in data:
        bits: list[int] = []
        for i, item in enumerate(_list(data, "bits")):
            if not is_int(item) or not MIN_BITS <= item <= MAX_BITS:
                _fail(f"bits[{i}]", f"must be an integer from {MIN_BITS} to {MAX_BITS}, got {short(item)}")
            if item in bits:
                _fail(f"bits[{i}]", f"duplicate bitwidth {item}")
            bits.append(item)
        cfg.bits = bits

    if "designs" in data:
        d = data["designs"]
        if d is None or d == "none" or d == []:
            cfg.designs = []  # GPUs only (gpus: must then name some)
        else:
            cfg.designs = "bundled" if d == "bundled" else _paths(_list(data, "designs"), "designs", base, must_exist=False)

    if "designs" in data and "gpus" not in data:
        cfg.gpus = []  # a config that lists its designs sweeps just those (as before GPUs were design points)
    if "gpus" in data:
        g = data["gpus"]
        if g is None or g == "none" or g == []:
            cfg.gpus = []
        elif g == "bundled":
            cfg.gpus = "bundled"
        else:
            cfg.gpus = _paths(_list(data, "gpus"), "gpus", base, must_exist=False)

    if cfg.designs == [] and not cfg.gpus:
        _fail("designs", "none, and no gpus either: nothing to sweep (list designs, or gpus for a GPU-only sweep)")

    if "scenarios" in data:
        scenarios: list[Scenario] = []
        seen_scenarios: set[Scenario] = set()  # a list's "in" would make the duplicate check quadratic in the batch list
        for i, item in enumerate(_list(data, "scenarios")):
            key = f"scenarios[{i}]"
            if isinstance(item, str):
                item = {"scenario": item}
            if not isinstance(item, dict):
                _fail(key, f"must be a mapping like {{scenario: inference, batch: 1}}, got {short(item)}")
            extra = sorted(map(str, set(item) - {"scenario", "batch"}))
            if extra:
                _fail(f"{key}.{short(extra[0])[1:-1]}", "unknown key (known: scenario, batch)")
            name = item.get("scenario")
            if not isinstance(name, str) or name not in SCENARIOS:
                _fail(f"{key}.scenario", f"must be one of {', '.join(SCENARIOS)}, got {short(name)}")
            batches = item.get("batch", dict(DEFAULT_SCENARIOS)[name])
            if batches == []:
                _fail(f"{key}.batch", "must be a positive integer or a non-empty list of them, got []")
            for j, b in enumerate(batches if isinstance(batches, list) else [batches]):
                where = f"{key}.batch" + (f"[{j}]" if isinstance(batches, list) else "")
                if not is_int(b) or b < 1:
                    _fail(where, f"must be a positive integer, got {short(b)}")
                if b > limit("batch"):
                    raise over_limit("batch", b, f"sweep config: {where}")
                if Scenario(name, b) in seen_scenarios:
                    _fail(f"{key}.batch", f"duplicate scenario {name} at batch {b}")
                seen_scenarios.add(Scenario(name, b))
                scenarios.append(Scenario(name, b))
        cfg.scenarios = scenarios

    if "quality" in data:
        q = data["quality"]
        if q is None or q == "none":
            cfg.quality = None
        elif q == "bundled":
            cfg.quality = "bundled"
        else:
            # One path, not a list: errors name "quality", not "quality[0]".
            cfg.quality = _path(q, "quality", base, True, "bundled, none or a CSV file path")

    if "chunk_size" in data and data["chunk_size"] not in (None, "auto"):
        cs = data["chunk_size"]
        if not is_int(cs) or cs < 1:
            _fail("chunk_size", f"must be a positive integer or 'auto', got {short(cs)}")
        cfg.chunk_size = cs
    return cfg


def load_config(path: Optional[str | os.PathLike]) -> SweepConfig:
    """Read a sweep YAML file (``yaml.safe_load``); None gives the default grid."""
    if path is None:
        return SweepConfig()
    p = Path(path)
    if not is_file(p):
        raise not_a_file("sweep config", p)
    data = load_yaml(p, "sweep config")
    if data is None:
        # An empty (or all-comment) file swept the whole default grid into --out without a word:
        # the default grid is what no CONFIG asks for.
        raise NmlabError(f"sweep config: {p}: empty (no keys); for the default grid give no CONFIG")
    return parse_config(data, base=p.resolve().parent, source=str(p))


def check_grid_size(n_points: int) -> int:
    """The planned grid's point count, refused past the ``sweep_points`` limit.

    Counted after planning (points a design or env cannot run are not counted): the plan's
    length is arithmetic over the config's lists, so an absurd grid is refused before any
    point id is made.
    """
    if n_points > limit("sweep_points"):
        raise over_limit("sweep_points", n_points, "sweep config: points of the planned grid")
    return n_points
