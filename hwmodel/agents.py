"""Agent labels: which trained agent a sweep point is, in the words of the RL results.

A label names an agent the way ``rl/publish.py:run_label`` names a run and the way
``hwmodel/data/workloads/published_returns.csv`` names a paper's agent:

* dense TD3 and RNM-TD3: the N:M pattern (``dense``, ``2:4``); a run trained with per-layer
  patterns (``nmlab train --layer-sparsity``) adds the layers that differ from it, in canonical
  form (``2:8 fc1=dense``, ``2:4 actor.fc3=dense,critic.fc2=1:4``; :func:`layers_text`);
* RLx2: ``rlx2 A/C`` (actor / critic fraction of weights removed, ``rlx2 0.98/0.95``);
* gradual magnitude pruning: ``gmp S`` (``gmp A/C`` when the networks differ; ``S`` a
  fraction or an N:M pattern) plus `` QATb`` after quantization-aware training;
* a point pruned one-shot (never trained): ``<pattern> one-shot``.

Numbers in labels are compared in canonical form (``0.90`` = ``0.9``), so a label typed in a
CSV matches one built from workload meta. This module reads no torch and no workload files;
:func:`agent_label` works on a workload's ``meta`` dict.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any, Optional

from hwmodel.errors import NmlabError

#: Columns of the quality table ``nmlab evaluate --csv`` writes and sweeps join (docs/sweeps.md).
QUALITY_COLUMNS = ["env", "method", "sparsity", "bits", "seed", "steps", "episodes", "return_mean", "return_std"]


def _number(text: str) -> Optional[float]:
    """``text`` as a float when it is a plain number (not an N:M pattern), else None."""
    if ":" in text:
        return None
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def normalize_label(label: str) -> str:
    """Canonical text of a label: words separated by one space, numbers as ``%g`` (``0.90`` -> ``0.9``)."""
    words = []
    for word in str(label).split():
        parts = []
        for part in word.split("/"):
            value = _number(part)
            parts.append(f"{value:g}" if value is not None else part)
        words.append("/".join(parts))
    return " ".join(words)


def parse_fractions(text: Any) -> Optional[tuple[float, float]]:
    """(actor, critic) fractions from ``"A/C"`` or ``"S"`` (both networks at S); None when ``text`` is
    not one or two fractions in [0, 1) (e.g. ``"unstructured"``, ``"2:4"``)."""
    parts = str(text).strip().split("/")
    if len(parts) > 2:
        return None
    values = [_number(p.strip()) for p in parts]
    if any(v is None or not 0.0 <= v < 1.0 for v in values):
        return None
    return (values[0], values[-1])  # type: ignore[return-value]


def label_fractions(label: Optional[str]) -> Optional[tuple[float, float]]:
    """(actor, critic) fractions of an ``rlx2 A/C`` or ``gmp S[ QATb]`` label; None for other labels."""
    words = str(label or "").split()
    if len(words) >= 2 and words[0] in ("rlx2", "gmp"):
        return parse_fractions(words[1])
    return None


def same_fractions(a: tuple[float, float], b: tuple[float, float]) -> bool:
    """Equal up to rounding of the printed form (meta and CSVs hold the same numbers as text)."""
    return all(abs(x - y) < 1e-9 for x, y in zip(a, b))


def _sparsity_text(actor: Any, critic: Any) -> str:
    a, c = normalize_label(str(actor)), normalize_label(str(critic))
    return a if a == c else f"{a}/{c}"


#: The sweep's pattern of a run trained with per-layer patterns (its label says which).
MIXED = "mixed"
def layers_pattern(layers: Any) -> str:
    """A workload's pattern read from its ``layers`` alone: ``unstructured`` where any layer is (RLx2 and GMP
    agents keep small layers dense, ERK), else the one N:M pattern its sparse layers share (layers left dense
    beside them, as methods often keep an input or output layer, do not change it), ``dense`` where every
    layer is, else :data:`MIXED` (N:M layers of two patterns)."""
    from hwmodel.sparsity import parse_pattern

    own = {str(parse_pattern(layer.pattern)) for layer in layers}
    if "unstructured" in own:
        return "unstructured"
    sparse = own - {"dense"}
    if not sparse:
        return "dense"
    return sparse.pop() if len(sparse) == 1 else MIXED


def workload_pattern(layers: Any, meta: dict[str, Any]) -> str:
    """A workload's own pattern, as ``nmlab check`` and ``nmlab sweep`` both name it (one reading for both).

    Its layers decide (:func:`layers_pattern`): ``unstructured`` where any layer is, else the one N:M
    pattern of its sparse layers (a 2:4 agent whose output layers stay dense is the 2:4 agent, run with
    those layers dense), else :data:`MIXED`; ``meta.sparsity`` does not. A run trained with per-layer
    patterns (``meta.layer_sparsity`` naming a layer that differs from ``meta.sparsity``:
    :func:`trained_per_layer`) is :data:`MIXED` even where its layers read as one pattern: its label
    (``2:8 fc1=dense``) is not a plain agent's."""
    own = layers_pattern(layers)
    if own != "unstructured" and trained_per_layer(meta):
        return MIXED
    return own


def trained_per_layer(meta: dict[str, Any]) -> bool:
    """The workload's ``meta`` is that of a run trained with ``--layer-sparsity`` where some layer differs
    from its ``sparsity`` (free-form meta that is no ``--layer-sparsity`` text: False)."""
    declared, spec = meta.get("sparsity"), meta.get("layer_sparsity")
    if declared is None or not isinstance(spec, str) or not spec.strip():
        return False
    try:
        return bool(layers_text(str(declared), spec))
    except NmlabError:
        return False


#: Layer keys of ``--layer-sparsity`` in network order (``critic.*`` = both critics and their targets).
LAYER_KEYS = tuple(f"{kind}.{fc}" for kind in ("actor", "critic") for fc in ("fc1", "fc2", "fc3"))


def parse_layer_overrides(spec: str) -> dict[str, Any]:
    """``--layer-sparsity`` text -> {``fcK`` / ``actor.fcK`` / ``critic.fcK``: Pattern}; NmlabError
    naming ``layer_sparsity`` for an item that is not LAYER=PATTERN (PATTERN dense or N:M)."""
    from hwmodel.sparsity import parse_pattern

    out: dict[str, Any] = {}
    for item in filter(None, (s.strip() for s in str(spec).split(","))):
        key, sep, value = item.partition("=")
        key = key.strip()
        parts = key.split(".")
        ok = sep and (
            (len(parts) == 1 and parts[0] in ("fc1", "fc2", "fc3"))
            or (len(parts) == 2 and parts[0] in ("actor", "critic") and parts[1] in ("fc1", "fc2", "fc3"))
        )
        if not ok:
            raise NmlabError(f"layer_sparsity: {item!r}: expected LAYER=PATTERN with LAYER fc1..fc3, actor.fcK or critic.fcK")
        out[key] = parse_pattern(value.strip(), field=f"layer_sparsity: {key}", allow_unstructured=False)
    return out


def layers_text(base: Any, spec: Any) -> str:
    """The layers of a run trained at ``base`` ("2:8", "dense") with ``--layer-sparsity`` ``spec`` whose
    pattern differs from ``base``, in canonical form: ``fcK=P`` where the actor's and critics' layer
    K both have P, else ``actor.fcK=P`` / ``critic.fcK=P``, in layer order, comma-separated; "" when
    every layer is at ``base`` (the run is then the plain ``base`` agent)."""
    from hwmodel.sparsity import parse_pattern

    if not str(spec or "").strip():
        return ""
    base_p = parse_pattern(str(base), field="sparsity", allow_unstructured=False)
    over = parse_layer_overrides(str(spec))
    pats = {key: over.get(key, over.get(key.split(".")[1], base_p)) for key in LAYER_KEYS}
    out = []
    for fc in ("fc1", "fc2", "fc3"):
        a, c = pats[f"actor.{fc}"], pats[f"critic.{fc}"]
        if a == c:
            out += [f"{fc}={a}"] if a != base_p else []
        else:
            out += [f"{kind}.{fc}={p}" for kind, p in (("actor", a), ("critic", c)) if p != base_p]
    return ",".join(out)


def split_layers_label(text: Any) -> tuple[str, str]:
    """(pattern, canonical layers) of a label or quality-table sparsity such as ``2:8 fc1=dense``
    (layers "" for a plain pattern or any other label)."""
    words = str(text).split(None, 1)
    if len(words) == 2 and "=" in words[1] and "one-shot" not in words[1]:
        return words[0], layers_text(words[0], words[1].replace(" ", ""))
    return str(text).strip(), ""


def agent_label(meta: dict[str, Any], method: str, pattern: str, layers: Any = None) -> str:
    """The label of a trained agent from its workload's ``meta`` (as ``nmlab export`` writes it).

    Args:
        meta: the workload's meta dict (``sparsity``; for gmp ``actor_sparsity``,
            ``critic_sparsity`` and ``qat_bits``; rlx2 exports may carry the same keys).
        method: the workload's method (``td3``, ``rnm-td3``, ``rlx2``, ``gmp``, or another name).
        pattern: the workload's pattern as the sweep sees it (``dense``, ``2:4``, ``unstructured``).
        layers: the workload's layers; a ``mixed`` workload that is no ``--layer-sparsity`` run is
            labelled by them (:func:`mixed_layers_label`), else it would share the bare label
            ``mixed`` with every other such agent of its method.
    """
    actor, critic = meta.get("actor_sparsity"), meta.get("critic_sparsity")
    if method == "rlx2":
        if actor in (None, "") or critic in (None, ""):
            # rlx2 exports record "A/C", or "S" when both networks share it.
            fr = parse_fractions(meta.get("sparsity", ""))
            if fr is None:
                return normalize_label(f"rlx2 {meta.get('sparsity', pattern)}")
            actor, critic = fr
        a, c = normalize_label(str(actor)), normalize_label(str(critic))
        return f"rlx2 {a}/{c}"
    if method == "gmp":
        if actor in (None, "") or critic in (None, ""):
            actor = critic = meta.get("sparsity", pattern)
        qat = meta.get("qat_bits")
        return f"gmp {_sparsity_text(actor, critic)}" + (f" QAT{_qat_text(qat)}" if qat else "")
    spec = meta.get("layer_sparsity")
    if isinstance(spec, str) and spec.strip():
        # Per-layer patterns: the run's own agent, not the plain one of its --sparsity.
        base = str(meta.get("sparsity") or pattern)
        try:
            differing = layers_text(base, spec)
        except NmlabError:
            differing = None  # free-form meta that is no --layer-sparsity text: labelled as any other workload
        if differing is not None:
            return f"{base} {differing}" if differing else base
    if pattern == MIXED and layers is not None:
        return mixed_layers_label(layers)
    return pattern


#: Layers named per pattern in a :func:`mixed_layers_label`; past this the label counts them.
MIXED_LABEL_NAMES = 3


def mixed_layers_label(layers: Any) -> str:
    """The label of a workload whose layers carry two or more N:M patterns, from the layers: the pattern
    most layers have, then each other pattern (dense included) with the layers at it, in layer order:
    ``2:4 + 1:4 at actor.fc2`` or, past :data:`MIXED_LABEL_NAMES` layers, their count and 8 hex digits of
    the layers' names and patterns (``2:4 + 1:4 at 6 layers #3f0a9c1e``), so that two agents whose layers
    differ get two labels while seeds of one agent share theirs. No ``=`` in it: it is never read as a
    ``--layer-sparsity`` label."""
    import hashlib

    from hwmodel.sparsity import parse_pattern

    pats = [(str(layer.name), str(parse_pattern(layer.pattern))) for layer in layers]
    count: dict[str, int] = {}
    for _name, p in pats:
        if p != "dense":
            count[p] = count.get(p, 0) + 1
    base = max(count, key=lambda p: count[p])  # first of the most common (dicts keep insertion order)
    digest = hashlib.sha256(repr(pats).encode("utf-8", "surrogatepass")).hexdigest()[:8]  # of the whole workload
    parts = [base]
    for p in dict.fromkeys(p for _n, p in pats if p != base):
        names = [n for n, q in pats if q == p]
        parts.append(f"{p} at {' '.join(names)}" if len(names) <= MIXED_LABEL_NAMES
                     else f"{p} at {len(names)} layers #{digest}")
    return " + ".join(parts)


def _qat_text(qat: Any) -> str:
    """``meta.qat_bits`` as label text: an integral number as an int (8, 8.0, "8" -> "8"); meta is
    free-form, so anything else is quoted as written rather than failing."""
    try:
        value = float(qat)
    except (TypeError, ValueError, OverflowError):
        return str(qat)
    return str(int(value)) if math.isfinite(value) and value == int(value) else str(qat)


def one_shot_label(pattern: str) -> str:
    """The label of a point pruned one-shot to ``pattern`` (no trained agent behind it)."""
    return f"{pattern} one-shot"


def bundled_published() -> Optional[Path]:
    """``hwmodel/data/workloads/published_returns.csv`` when present."""
    from hwmodel.io import data_path

    p = data_path("workloads", "published_returns.csv")
    return p if p.is_file() else None


def load_published(path: Optional[str | Path]) -> dict[tuple[str, str], tuple[float, str]]:
    """(env, canonical label) -> (published fraction of dense TD3's return, source).

    The CSV has columns ``method,env,label,fraction_of_dense,source``; lines starting with
    ``#`` are comments. ``path`` None gives an empty table. Errors name the line and column.
    """
    from hwmodel.limits import parse_finite, read_csv

    if path is None:
        return {}
    path = Path(path)
    out: dict[tuple[str, str], tuple[float, str]] = {}
    _header, rows = read_csv(path, "published returns", required=("env", "label", "fraction_of_dense"), comments=True)
    for lineno, rec in rows:
        where = f"published returns {path.name}: line {lineno}"
        fraction = parse_finite(rec["fraction_of_dense"], f"{where}: fraction_of_dense")
        env = (rec.get("env") or "").strip()  # as the quality table's: "Hopper-v5, rnm-td3, ..." names Hopper-v5
        if not env or not (rec.get("label") or "").strip():
            raise NmlabError(f"{where}: env and label must not be empty")
        out[(env, normalize_label(rec["label"]))] = (fraction, (rec.get("source") or "").strip())
    return out


def check_quality_csv(path: str | os.PathLike) -> list[dict[str, Any]]:
    """The rows of the quality CSV at ``path`` (none when it does not exist yet or is empty), refused unless
    it can take a row: writable, header exactly :data:`QUALITY_COLUMNS` (any order), and rows
    whose key columns parse (``bits``, ``seed`` integers; ``return_mean`` finite)."""
    from hwmodel.limits import MAX_BITS, MAX_RETURN, MIN_BITS, check_output_file, parse_finite, parse_int, read_csv

    path = check_output_file(path, "--csv")
    if not path.exists() or path.stat().st_size == 0:  # an empty file (`touch q.csv`) is a new table
        return []
    header, rows = read_csv(path, "--csv")
    if sorted(header) != sorted(QUALITY_COLUMNS):
        extra = [c for c in header if c not in QUALITY_COLUMNS]
        missing = [c for c in QUALITY_COLUMNS if c not in header]
        why = f"column {missing[0]!r} missing" if missing else f"unknown column {extra[0][:40]!r}"
        raise NmlabError(f"--csv {path}: not a quality table ({why}; expected {','.join(QUALITY_COLUMNS)})")
    for lineno, r in rows:
        where = f"--csv {path.name}: line {lineno}"
        parse_int(r["bits"], f"{where}: bits", MIN_BITS, MAX_BITS)
        parse_int(r["seed"], f"{where}: seed")
        parse_finite(r["return_mean"], f"{where}: return_mean", low=-MAX_RETURN, high=MAX_RETURN)
    return [r for _, r in rows]
