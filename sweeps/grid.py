"""Expand a :class:`~sweeps.config.SweepConfig` into points: one dict per (env, pattern, bits, design, scenario).

A point is its *canonical configuration* (what the id hashes: workload and design by
content hash, so a renamed file keeps its ids and an edited one does not) plus locator
fields starting with ``_`` (file paths) that say where to find the inputs on this machine.

Workloads are grouped by environment. For each grid pattern the env's trained workload of
that pattern is used (``mask_source="trained"``, lowest seed); when there is none, the
env's dense workload (or, failing that, any of its workloads with weights) is pruned
one-shot by magnitude to the pattern (``mask_source="one-shot"``; its return is missing).
``unstructured`` takes only trained unstructured workloads (an env without one has no such
points); ``unstructured:S`` is always pruned one-shot to sparsity S.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from functools import cached_property, lru_cache
from pathlib import Path
from typing import Any, Iterator, Optional

import numpy as np

from hwmodel.errors import NmlabError
from hwmodel.limits import exists, is_dir, is_file, short
from hwmodel.agents import MIXED, agent_label, one_shot_label, workload_pattern
from sweeps.config import SweepConfig, unstructured_level

#: Bumped when a point's row would change meaning: old part files then no longer match.
POINT_SCHEMA_VERSION = 2
_BATCH_TOKEN = 918273645546372819   # placeholders in a block's canonical JSON (point_ids)
_SCENARIO_TOKEN = "@@scenario@@"
_SEED_RE = re.compile(r"_s(\d+)$")


def file_sha(path: str | Path) -> str:
    """First 16 hex digits of the SHA-256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()[:16]


@lru_cache(maxsize=1)
def model_sha() -> str:
    """First 16 hex digits of the SHA-256 of what turns a point's files into its row: every Python
    file of ``hwmodel`` and ``sweeps`` and the bundled constants the model reads, each named by
    the module that reads it (``energy.yaml``, ``gpu_params.yaml``, the CACTI answers in
    ``cacti_cache.json``). Design and workload files carry their own shas in the point.

    Part of every point id, so a sweep re-run in the same directory after nmlab's model changed
    evaluates its points again (the old rows stay in ``parts/`` but out of the table) instead of
    mixing the rows of two models.
    """
    import hwmodel
    import sweeps
    from hwmodel.cacti import BUNDLED_CACHE
    from hwmodel.energy import ENERGY_CONSTANTS_PATH
    from hwmodel.gpu.params import default_path as gpu_params_path

    h = hashlib.sha256()
    for pkg in (hwmodel, sweeps):
        root = Path(pkg.__file__).resolve().parent
        for f in sorted(root.rglob("*.py")):
            h.update(f"{pkg.__name__}/{f.relative_to(root).as_posix()}\0".encode())
            h.update(f.read_bytes())
    for path in (ENERGY_CONSTANTS_PATH, gpu_params_path(), BUNDLED_CACHE):
        h.update(f"data/{path.name}\0".encode())
        h.update(path.read_bytes())
    return h.hexdigest()[:16]


def _id_text(canonical: dict[str, Any]) -> str:
    """What a point id hashes: the canonical configuration with the point schema version and
    :func:`model_sha`, as sorted compact JSON. One place for both :func:`point_id` and
    :meth:`Plan.point_ids`, whose ids must agree."""
    return json.dumps({"schema": POINT_SCHEMA_VERSION, "model": model_sha(), **canonical},
                      sort_keys=True, separators=(",", ":"))


def point_id(canonical: dict[str, Any]) -> str:
    """Stable id of a point: SHA-256 of :func:`_id_text`, 16 hex digits."""
    return hashlib.sha256(_id_text(canonical).encode()).hexdigest()[:16]


@dataclass(frozen=True)
class WorkloadInfo:
    """What planning needs from a workload file (its meta and pattern), without keeping its arrays."""

    path: str
    name: str
    sha: str
    env: str
    method: str
    pattern: str
    seed: int
    has_weights: bool
    agent: str = ""  # label of the trained agent (hwmodel.agents): "2:4", "rlx2 0.98/0.95", "gmp 0.9 QAT8"


@lru_cache(maxsize=256)
def _workload_info(path: str) -> WorkloadInfo:
    from sweeps.evaluate import loaded_workload  # the parse the evaluation reuses

    wl = loaded_workload(path)
    meta = wl.meta
    stem = Path(path).stem
    # What nmlab check names it too: its layers' patterns (an RLx2 / GMP agent with any unstructured
    # layer is unstructured), mixed for a run trained with per-layer patterns.
    pattern = workload_pattern(wl.layers, meta)
    seed = meta.get("seed")
    if not isinstance(seed, int):
        m = _SEED_RE.search(stem)
        seed = int(m.group(1)) if m else 0
    env = str(meta.get("env") or stem.split("_")[0])
    method = str(meta.get("method") or meta.get("source") or "unknown")
    # Both name the workload's points in every table, heading, file name and stderr note: a newline
    # split a Markdown table row and an escape sequence reached the terminal. The error names where
    # each came from (a file without meta.env or meta.method has neither key).
    for where, value in (("meta.env" if meta.get("env") else "env (the file name's start; no meta.env)", env),
                         ("meta.method" if meta.get("method") else "meta.source", method)):
        if not value.isprintable():
            raise NmlabError(f"workload {path}: {where}: must be printable (no newline, tab, escape or other "
                             f"control character), got {short(value)}")
    return WorkloadInfo(
        path=str(Path(path).resolve()), name=stem, sha=file_sha(path), env=env,
        method=method, pattern=pattern, seed=seed,
        has_weights=all(layer.weight is not None for layer in wl.layers),
        agent=agent_label(meta, method, pattern, wl.layers),
    )


@dataclass(frozen=True)
class DesignInfo:
    """What planning needs from a design point (accelerator design or GPU spec): its name, the
    resolved path and content sha of its file, and the weight bitwidths it has a datatype for."""

    name: str
    path: str
    sha: str
    bits_supported: frozenset[int]


def _design_info(ref: str) -> DesignInfo:
    from hwmodel.design import Design
    from hwmodel.energy import energy_table
    from hwmodel.gpu.design_point import load_design_point  # an accelerator design or a GPU spec

    d = load_design_point(ref)
    if isinstance(d, Design):
        # Its SRAM energies (CACTI) now, before anything is written: a level CACTI cannot model
        # (over 2 GiB, or a word too wide for its banks) failed the sweep's first point of the design,
        # after sweep.json and parts/ were written.
        energy_table(d)
    return _loaded_info(d)


def _loaded_info(d) -> DesignInfo:
    """A loaded design point (accelerator or GPU) as the sweep records it."""
    bits = set()
    for b in range(1, 33):
        try:
            d.datatype_for(b)
            bits.add(b)
        except NmlabError:
            pass
    return DesignInfo(name=d.name, path=str(Path(d.source).resolve()), sha=design_sha(d), bits_supported=frozenset(bits))


def design_sha(d) -> str:
    """The content sha of a loaded design point: its file's (:func:`file_sha`), and for a GPU spec
    that names a parameter file of its own (``params:``), that file's bytes too: a point's id then
    changes when either file does, so a resumed sweep does not keep rows of the old parameters."""
    sha = file_sha(d.source)
    own = getattr(getattr(d, "spec", None), "own_params", None)
    if own is None:
        return sha
    return hashlib.sha256(f"{sha}\0params\0{own.sha256}".encode()).hexdigest()[:16]


def resolve_workloads(cfg: SweepConfig) -> list[WorkloadInfo]:
    """The config's workload files (bundled ones for "bundled"), read and described."""
    if cfg.workloads == "bundled":
        from hwmodel.workload import bundled_workloads

        files = [str(p) for p in bundled_workloads()]
        if not files:
            raise NmlabError("sweep config: workloads: no bundled workloads found; list workload files")
    else:
        files = list(cfg.workloads)
    return [_workload_info(f) for f in files]


def resolve_designs(cfg: SweepConfig) -> list[DesignInfo]:
    """The config's designs (all bundled ones for "bundled"), loaded and validated."""
    if cfg.designs == "bundled":
        from hwmodel.design import bundled_designs

        refs = [str(p) for p in bundled_designs().values()]
        if not refs:
            raise NmlabError("sweep config: designs: no bundled designs found; list design files")
    else:
        refs = list(cfg.designs)
    infos = []
    for i, r in enumerate(refs):
        try:
            infos.append(_design_info(r))
        except NmlabError as exc:
            raise NmlabError(f"sweep config: designs[{i}]: {exc}") from None
    keys = [f"designs[{i}]" for i in range(len(infos))]
    gpu_refs = _gpu_refs(cfg)
    infos += [_gpu_info(r, i) for i, r in enumerate(gpu_refs)]
    keys += [f"gpus[{i}]" for i in range(len(gpu_refs))]
    # The entry at fault is the second of a name, under its own key (a GPU listed twice is the
    # gpus list's, not "designs").
    first: dict[str, str] = {}
    for key, d in zip(keys, infos):
        if d.name in first:
            raise NmlabError(f"sweep config: {key}: a second design point named {d.name!r} ({first[d.name]}); "
                             f"names must be unique")
        first[d.name] = key
    return infos


def _gpu_info(ref: str, i: int) -> DesignInfo:
    """A ``gpus`` entry (a bundled GPU name or a GPU spec file); errors name ``gpus[i]`` and the
    bundled GPUs, not the accelerator designs (a design loader's message would list those)."""
    from hwmodel.gpu.design_point import bundled_gpu_names, gpu_design

    key = f"sweep config: gpus[{i}]"
    try:
        gpu = gpu_design(ref)
    except NmlabError as exc:
        raise NmlabError(f"{key}: {exc}") from None
    if gpu is None:
        what = "not a GPU spec file (an accelerator design goes under designs)" if is_file(ref) else \
            "is a directory, not a GPU spec file" if is_dir(ref) else \
            "not a regular file" if exists(ref) else "no such GPU spec file or bundled GPU"
        raise NmlabError(f"{key}: {str(ref)[:300]}: {what} (bundled GPUs: {', '.join(bundled_gpu_names())})")
    return _loaded_info(gpu)  # already loaded: not parsed a second time from gpu.source


def _gpu_refs(cfg: SweepConfig) -> list[str]:
    """The config's GPU design points (``gpus``: "bundled" = every bundled GPU spec, or a list)."""
    gpus = cfg.gpus
    if gpus == "bundled":
        from hwmodel.gpu.design_point import bundled_gpu_names

        return list(bundled_gpu_names())
    return list(gpus or [])


def _agent_key(w: WorkloadInfo) -> tuple[str, str]:
    """What makes two trained workloads of one env and pattern two agents: the method, and for a
    mixed workload (per-layer patterns) its label too."""
    return (w.method, w.agent if w.pattern == MIXED else "")


def choose_sources(workloads: list[WorkloadInfo], pattern: str) -> list[tuple[WorkloadInfo, str]]:
    """Per env, the workload a grid ``pattern`` runs on and its mask source ("trained"/"one-shot")."""
    by_env: dict[str, list[WorkloadInfo]] = {}
    for w in workloads:
        by_env.setdefault(w.env, []).append(w)
    chosen = []
    for env, group in by_env.items():
        group = sorted(group, key=lambda w: (w.seed, w.method, w.name))
        trained = [w for w in group if w.pattern == pattern]
        if pattern in ("unstructured", MIXED) and not trained:
            continue  # no level / layers to prune to: the env simply has no such points (plan notes it)
        if unstructured_level(pattern) is not None:
            trained = []  # unstructured:S always means the one-shot pruned dense agent
        if trained:
            # One agent per (env, pattern, method), and per label for mixed agents (two runs of
            # different --layer-sparsity are two agents); returns average over seeds at join time.
            seen_methods: set[tuple[str, str]] = set()
            for w in trained:
                if _agent_key(w) not in seen_methods:
                    seen_methods.add(_agent_key(w))
                    chosen.append((w, "trained"))
            continue
        donors = [w for w in group if w.pattern == "dense" and w.has_weights] or [w for w in group if w.has_weights]
        if not donors:
            raise NmlabError(
                f"sweep config: workloads: env {env!r} has no {pattern} workload and none with weights to prune one-shot"
            )
        chosen.append((donors[0], "one-shot"))
    return chosen


def not_swept(workloads: list[WorkloadInfo], sources: dict[str, list[tuple[WorkloadInfo, str]]]) -> list[str]:
    """Why each listed trained workload of a grid pattern is not swept: another workload of the
    same env, pattern and method stands for that agent (``choose_sources`` keeps one per agent).
    Without this a user's own run listed beside a bundled one of the same agent vanished silently."""
    used = {w.path for chosen in sources.values() for w, _src in chosen}
    stands_for = {(w.env, w.pattern, *_agent_key(w)): w for chosen in sources.values() for w, src in chosen if src == "trained"}
    notes = []
    for w in workloads:
        other = stands_for.get((w.env, w.pattern, *_agent_key(w)))
        if w.path not in used and other is not None:
            notes.append(f"{w.name}: {other.name} stands for {w.env} {w.pattern} {w.method} "
                         f"(one workload per env, pattern and method: lowest seed, then file name)")
    return notes


@dataclass
class Plan:
    """The expanded grid. ``points()`` yields point dicts lazily (memory stays flat for big grids)."""

    cfg: SweepConfig
    workloads: list[WorkloadInfo]
    designs: list[DesignInfo]
    skipped: list[str]   # why some (design, bits) pairs are not in the grid
    _sources: dict[str, list[tuple[WorkloadInfo, str]]]
    #: listed workloads left out because another workload stands for the same agent (see not_swept)
    not_swept: list[str] = field(default_factory=list)

    def points(self) -> Iterator[dict[str, Any]]:
        for pattern in self.cfg.patterns:
            for w, mask_source in self._sources[pattern]:
                for bits in self.cfg.bits:
                    for d in self.designs:
                        if bits not in d.bits_supported:
                            continue
                        for sc in self.cfg.scenarios:
                            yield make_point(w, mask_source, pattern, bits, d, sc.name, sc.batch)

    def __len__(self) -> int:
        return len(self._blocks) * len(self.cfg.scenarios)

    @cached_property
    def _blocks(self) -> list[tuple[WorkloadInfo, str, str, int, DesignInfo]]:
        """(workload, mask source, pattern, bits, design) of each run of points that differ only
        in the scenario, in grid order: grid index i is scenario ``i % S`` of block ``i // S``."""
        return [(w, src, pattern, bits, d) for pattern in self.cfg.patterns for w, src in self._sources[pattern]
                for bits in self.cfg.bits for d in self.designs if bits in d.bits_supported]

    def patterns_at(self, indices: np.ndarray) -> np.ndarray:
        """The grid pattern of each point at grid ``indices`` (an object array)."""
        patterns = np.array([blk[2] for blk in self._blocks], dtype=object)
        return patterns[np.asarray(indices, dtype=np.int64) // len(self.cfg.scenarios)]

    def _block_fields(self, b: int) -> dict[str, Any]:
        """The point fields of block ``b`` (those of its first scenario; scenario, batch and id vary)."""
        w, src, pattern, bits, d = self._blocks[b]
        sc = self.cfg.scenarios[0]
        return make_point(w, src, pattern, bits, d, sc.name, sc.batch)

    def point_ids(self) -> list[str]:
        """Every point's id in grid order, as ``points()`` gives them, without building the points.

        The canonical JSON of a block is formatted once with placeholders for the scenario and
        batch; each point then costs one string format and one SHA-256.
        """
        ids: list[str] = []
        scen = [(str(sc.batch), json.dumps(sc.name)) for sc in self.cfg.scenarios]
        batch_token, scenario_token = str(_BATCH_TOKEN), json.dumps(_SCENARIO_TOKEN)
        sha = hashlib.sha256
        for b in range(len(self._blocks)):
            canonical = canonical_of(self._block_fields(b))
            text = _id_text({**canonical, "batch": _BATCH_TOKEN, "scenario": _SCENARIO_TOKEN})
            # Sorted keys put "batch" before "scenario": text = head batch mid scenario tail. The
            # head is hashed once per block and each point only hashes on from there.
            head, rest = text.split(batch_token)
            mid, tail = rest.split(scenario_token)
            hashed = sha(head.encode())
            ends = {name: (mid + name + tail).encode() for name in {name for _, name in scen}}
            for batch, name in scen:
                h = hashed.copy()
                h.update(batch.encode() + ends[name])
                ids.append(h.hexdigest()[:16])
        return ids

    def columns(self, indices: list[int], ids: Optional[Any] = None) -> dict[str, list]:
        """The points at grid ``indices`` (ascending) as columns: each key of ``points()``'s dicts -> a list.

        ``ids``: indexable by grid index giving the point's id (the grid's ``point_ids()``), when
        the caller has them; else they are computed. A key some points lack is None there.
        """
        n_sc = len(self.cfg.scenarios)
        # The given ids of every point at once (``many``: one array operation, not one lookup each).
        every = None if ids is None else ids.many(indices) if hasattr(ids, "many") else [ids[x] for x in indices]
        cols: dict[str, list] = {}
        size = 0
        i = 0
        while i < len(indices):
            b = indices[i] // n_sc
            j = i
            while j < len(indices) and indices[j] // n_sc == b:
                j += 1
            fields = self._block_fields(b)
            run = indices[i:j]
            scs = [self.cfg.scenarios[x % n_sc] for x in run]
            if every is not None:
                pids = every[i:j]
            else:
                pids = [point_id(canonical_of({**fields, "scenario": sc.name, "batch": sc.batch})) for sc in scs]
            varying = {"point_id": pids, "scenario": [sc.name for sc in scs], "batch": [sc.batch for sc in scs]}
            for k in fields:
                if k not in cols:
                    cols[k] = [None] * size
            for k, col in cols.items():
                col.extend(varying[k] if k in varying else [fields.get(k)] * len(run))
            size += len(run)
            i = j
        return cols


def make_point(w: WorkloadInfo, mask_source: str, pattern: str, bits: int, d: DesignInfo,
               scenario: str, batch: int) -> dict[str, Any]:
    """One point: canonical fields (hashed into ``point_id``) plus ``_``-prefixed locators."""
    trained = mask_source == "trained"
    canonical = {
        "env": w.env, "method": w.method if trained else f"one-shot({w.method})",
        # Which agent (its published label): what reports match RL results and papers by.
        "agent": w.agent if trained else one_shot_label(pattern),
        "workload": w.name, "workload_sha": w.sha, "mask_source": mask_source, "pattern": pattern,
        "bits": bits, "design": d.name, "design_sha": d.sha, "scenario": scenario, "batch": batch,
    }
    return {"point_id": point_id(canonical), **canonical, "_workload_path": w.path, "_design_path": d.path}


def _check_networks(sources: dict[str, list[tuple[WorkloadInfo, str]]], cfg: SweepConfig) -> None:
    """Every workload the grid runs has the networks each scenario runs (``hwmodel.program.networks_for``):
    a file without critics in a grid with train_step failed at its first such point, mid-sweep."""
    from hwmodel.program import networks_for
    from sweeps.evaluate import loaded_workload

    used = {w.path: w for pairs in sources.values() for w, _src in pairs}
    scenarios = list(dict.fromkeys(s.name for s in cfg.scenarios))
    for w in used.values():
        for scenario in scenarios:
            try:
                networks_for(loaded_workload(w.path), scenario)
            except NmlabError as exc:
                raise NmlabError(f"sweep config: scenarios: {scenario} on workload {w.name}: "
                                 f"{str(exc).removeprefix('workload: ')}") from None


def plan(cfg: SweepConfig) -> Plan:
    """Resolve files and expand the grid; errors name the config key. Every file is read as it
    is now: what an earlier plan in this process read of them is dropped first."""
    from sweeps.evaluate import forget_files

    _workload_info.cache_clear()
    forget_files()
    workloads = resolve_workloads(cfg)
    designs = resolve_designs(cfg)
    skipped = []
    for d in designs:
        missing = [b for b in cfg.bits if b not in d.bits_supported]
        if missing:
            skipped.append(f"{d.name}: {', '.join(map(str, missing))} bits")
    sources = {p: choose_sources(workloads, p) for p in cfg.patterns}
    if "unstructured" in sources:
        have = {w.env for w, _src in sources["unstructured"]}
        missing_envs = sorted({w.env for w in workloads} - have)
        if missing_envs:
            skipped.append(f"unstructured: no trained unstructured workload for {', '.join(missing_envs)}")
    _check_networks(sources, cfg)
    mixed = [w.name for w in workloads if w.pattern == MIXED]
    if mixed and MIXED not in sources:
        skipped.append(f"{', '.join(mixed)}: per-layer patterns (mixed: trained with --layer-sparsity, or N:M layers "
                       f"of more than one pattern), swept only where patterns lists mixed")
    result = Plan(cfg, workloads, designs, skipped, sources, not_swept(workloads, sources))
    if len(result) == 0:
        if not any(b in d.bits_supported for d in designs for b in cfg.bits):
            raise NmlabError("sweep config: bits: no design supports any of the bitwidths " + ", ".join(map(str, cfg.bits)))
        # Every design runs some bitwidth, so no pattern found a workload: only "unstructured"
        # (trained unstructured agents, none here) leaves an env out.
        raise NmlabError(f"sweep config: patterns: no point to sweep: no env has a workload for "
                         f"{', '.join(cfg.patterns)} (unstructured takes trained unstructured agents only; "
                         f"unstructured:S prunes the dense agent one-shot, e.g. unstructured:0.9)")
    return result


def canonical_of(point: dict[str, Any]) -> dict[str, Any]:
    """The hashed part of a point (drops the id and the locators)."""
    return {k: v for k, v in point.items() if k != "point_id" and not k.startswith("_")}
