"""GPU design points: ``hwmodel/data/gpus/*.yaml`` (format ``nmlab-gpu`` version 2, docs/gpu.md).

Version 2 added the figures a GPU needs as a design point and their provenance: base clock,
memory type, power limit, a ``sources`` entry for every figure and a ``references`` list
(datasheets, whitepapers), optional fp16-accumulate rates of GeForce cards, and renamed
``hbm_bytes``/``hbm_bytes_per_s`` to ``memory_bytes``/``memory_bytes_per_s`` (GDDR and
LPDDR parts are bundled too). Version 1 files still load: their new figures are None and
:attr:`GpuSpec.hbm_bytes_per_s` keeps working for version 1 and 2 alike.
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Optional

from hwmodel.design import name_problem
from hwmodel.errors import NmlabError
from hwmodel.io import data_path
from hwmodel.limits import is_file, load_yaml, not_a_file

FORMAT_NAME = "nmlab-gpu"
FORMAT_VERSION = 2
READABLE_VERSIONS = (1, 2)

# Scalar figures every version-2 file carries, each with a `sources` entry.
FIGURES: tuple[str, ...] = (
    "sm_count", "base_clock_mhz", "boost_clock_mhz", "tensor_clock_mhz", "memory_type", "memory_bytes",
    "memory_bytes_per_s", "l2_bytes", "smem_per_sm_bytes", "power_limit_w", "launch_overhead_us",
)
# A source is "<reference id>: where", "derived: how" or "unpublished: why" (the figure is null then).
SOURCE_KINDS = ("derived", "unpublished")
# Operand dtypes of tensor_tflops (names as the bench CSV writes them).
DTYPES = ("bfloat16", "float16", "tfloat32", "float8_e4m3fn", "int8", "float4_e2m1")
# Every top-level key a file may have, per version: any other is a typo and refused.
_COMMON_KEYS = ("format", "version", "name", "display_name", "device_name_patterns", "compute_capability",
                "sm_count", "tensor_clock_mhz", "boost_clock_mhz", "l2_bytes", "smem_per_sm_bytes",
                "launch_overhead_us", "sparse_pattern", "tensor_tflops",
                "params")  # a parameter file of one's own (nmlab gpu fit --data; hwmodel.gpu.params)
#: (lowest, highest) value of a numeric figure (docs/limits.md): about 1000x past any GPU either way,
#: where the model's sums still hold (a clock of 1e-300 MHz divided by zero, 1e300 SMs overflowed).
RANGES: dict[str, tuple[float, float]] = {
    "sm_count": (1, 2**20), "tensor_clock_mhz": (1e-3, 1e6), "boost_clock_mhz": (1e-3, 1e6),
    "base_clock_mhz": (1e-3, 1e6), "l2_bytes": (1, 2**34), "smem_per_sm_bytes": (1, 2**34),
    "memory_bytes": (1, 1e15), "hbm_bytes": (1, 1e15), "memory_bytes_per_s": (1e6, 1e15),
    "hbm_bytes_per_s": (1e6, 1e15), "power_limit_w": (1e-3, 1e6), "launch_overhead_us": (1e-3, 1e6),
    "dense": (1e-3, 1e6), "sparse": (1e-3, 1e6),  # tensor rates, TFLOP/s
}
#: compute capability major.minor -> architecture (for spec files that do not name one).
ARCH_BY_CC = {"8.0": "ampere", "8.6": "ampere", "8.7": "ampere", "8.9": "ada", "9.0": "hopper",
              "10.0": "blackwell", "10.3": "blackwell", "12.0": "blackwell", "12.1": "blackwell"}
#: compute-capability major -> the architectures of its parts. The kernel tables follow the compute
#: capability (hwmodel.gpu.kernels) and the parameter set the architecture (hwmodel.gpu.params), so
#: a spec naming another architecture for a major listed here ran one GPU's kernels with another's set.
ARCHS_BY_MAJOR = {"8": ("ampere", "ada"), "9": ("hopper",), "10": ("blackwell",), "11": ("blackwell",),
                  "12": ("blackwell",)}
#: Lowest compute-capability major the model takes: 2:4 sparse tensor cores (and cuSPARSELt) start at 8.0,
#: Ampere; a Volta or Turing part (7.x) has none, so a 2:4 time for it would be made up.
MIN_CC_MAJOR = 8
KEYS = {1: frozenset(_COMMON_KEYS + ("hbm_bytes", "hbm_bytes_per_s")),
        2: frozenset(_COMMON_KEYS + FIGURES + ("architecture", "tensor_accumulate", "tensor_tflops_fp16_accumulate",
                                              "sources", "references"))}


@dataclass(frozen=True)
class GpuSpec:
    """One GPU's published figures (units in the names; rates in FLOP/s or ops/s).

    Attributes:
        name: file stem, e.g. "h200_sxm".
        display_name: human name.
        device_name_patterns: names of the part as torch's device name spells them; one
            selects this spec when it occurs in the device name as a whole word (see :meth:`matches`).
        compute_capability: "major.minor".
        sm_count: streaming multiprocessors.
        tensor_clock_mhz: clock at which the peak tensor rates hold.
        boost_clock_mhz: maximum (boost) graphics clock.
        memory_bytes: device memory capacity (decimal bytes, as vendors quote it).
        memory_bytes_per_s: peak device-memory bandwidth.
        l2_bytes: L2 cache size.
        smem_per_sm_bytes: largest shared memory per SM.
        launch_overhead_us: a per-call floor with its source, for the record (no prediction or fit
            reads it: the fixed costs are the parameter set's, hwmodel/data/gpu_params.yaml).
        sparse_pattern: the hardware sparsity pattern ("2:4").
        tensor_flops: dtype -> {"dense": FLOP/s, "sparse": FLOP/s with 2:4}; on GeForce cards
            the fp32-accumulate rate (what cuBLAS uses for bf16/fp16, cuBLASLt for fp8).
        architecture: "ampere", "hopper", "ada", "blackwell" (None in version 1 files).
        base_clock_mhz: base graphics clock (None when the vendor publishes none).
        memory_type: "HBM3", "GDDR6X", ... (None in version 1 files).
        power_limit_w: board power limit (TDP/TGP) in watts (None in version 1 files).
        tensor_accumulate: which accumulator the tensor_flops rates assume, in words.
        tensor_flops_fp16_acc: GeForce only: dtype -> {"dense", "sparse"} with fp16 accumulate.
        sources: figure (or "tensor_tflops.<dtype>") -> where it comes from.
        references: reference id -> full citation.
        format_version: the file's format version.
        own_params: the parameter set of the file the spec names under ``params:`` (a
            :class:`hwmodel.gpu.params.OwnParams`, fitted on this GPU's timings by ``nmlab gpu fit
            --data``); None: the bundled set of its architecture.
    """

    name: str
    display_name: str
    device_name_patterns: tuple[str, ...]
    compute_capability: str
    sm_count: int
    tensor_clock_mhz: float
    boost_clock_mhz: float
    memory_bytes: float
    memory_bytes_per_s: float
    l2_bytes: int
    smem_per_sm_bytes: int
    launch_overhead_us: float
    sparse_pattern: str
    tensor_flops: dict[str, dict[str, float]]
    architecture: Optional[str] = None
    base_clock_mhz: Optional[float] = None
    memory_type: Optional[str] = None
    power_limit_w: Optional[float] = None
    tensor_accumulate: str = ""
    tensor_flops_fp16_acc: dict[str, dict[str, float]] = field(default_factory=dict)
    sources: dict[str, str] = field(default_factory=dict)
    references: dict[str, str] = field(default_factory=dict)
    format_version: int = FORMAT_VERSION
    own_params: Any = None

    @property
    def hbm_bytes(self) -> float:
        """Device memory capacity (the version-1 name, kept for older callers)."""
        return self.memory_bytes

    @property
    def hbm_bytes_per_s(self) -> float:
        """Peak device-memory bandwidth (the version-1 name, kept for older callers)."""
        return self.memory_bytes_per_s

    def peak_flops(self, dtype: str, sparse: bool) -> float:
        """Peak tensor-core rate for ``dtype`` (FLOP/s), the 2:4 rate when ``sparse``."""
        if dtype not in self.tensor_flops:
            raise NmlabError(f"gpu '{self.name}': no tensor-core rate for dtype {dtype}")
        return self.tensor_flops[dtype]["sparse" if sparse else "dense"]

    def matches(self, device_name: str) -> bool:
        """Whether one of the patterns occurs in ``device_name`` as a whole word (case-insensitive):
        "H200" matches "NVIDIA H200" but not "NVIDIA GH200 480GB"."""
        return any(_word_re(p).search(device_name) for p in self.device_name_patterns)


def _word_re(pattern: str) -> re.Pattern:
    return re.compile(r"(?<![A-Za-z0-9])" + re.escape(pattern) + r"(?![A-Za-z0-9])", re.IGNORECASE)


def _fmt(x: float) -> str:
    """A bound for a message: 1,048,576 (not 1.04858e+06), 0.001, 1e+15."""
    return f"{int(x):,}" if float(x).is_integer() and abs(x) < 1e12 else f"{x:g}"


#: How a wanted type reads in a message ("is not a int" read oddly).
_KIND_WORDS = {int: "an integer", float: "a number"}


def _need(doc: dict, key: str, where: str, kind: type, positive: bool = True) -> Any:
    if key not in doc:
        raise NmlabError(f"{where}: {key}: missing")
    value = doc[key]
    if value is None:  # str(None) made memory_type 'None'; a None count read as "None is not a int"
        raise NmlabError(f"{where}: {key}: null, but the GPU model needs a value")
    if kind in (int, float) and (isinstance(value, bool) or not isinstance(value, (int, float, str))):
        raise NmlabError(f"{where}: {key}: {value!r} is not {_KIND_WORDS[kind]}")
    if kind not in (int, float):
        return kind(value)
    try:  # a string too: yaml 1.1 reads "80.0e9" (no exponent sign) as one
        number = float(value)
    except (TypeError, ValueError, OverflowError):
        raise NmlabError(f"{where}: {key}: {value!r} is not {_KIND_WORDS[kind]}") from None
    # inf passed "> 0", and int() dropped a fraction silently (l2_bytes: 5.5 ran as 5 bytes).
    if not math.isfinite(number):
        raise NmlabError(f"{where}: {key}: must be a finite number, got {value!r}")
    if kind is int and number != int(number):
        raise NmlabError(f"{where}: {key}: {value!r} is not a whole number")
    value = kind(number)
    if positive and kind in (int, float) and not value > 0:
        raise NmlabError(f"{where}: {key}: must be > 0, got {value}")
    low, high = RANGES.get(key, (-math.inf, math.inf))
    if not low <= number <= high:
        raise NmlabError(f"{where}: {key}: must be from {_fmt(low)} to {_fmt(high)}, got {_fmt(number)}")
    return value


def _rates(doc: dict, key: str, where: str, required: bool) -> dict[str, dict[str, float]]:
    """A {dtype: {dense, sparse}} block in TFLOP/s, returned in FLOP/s."""
    rates = doc.get(key)
    if rates is None and not required:
        return {}
    if not isinstance(rates, dict) or not rates:
        raise NmlabError(f"{where}: {key}: missing or empty")
    flops = {}
    for dtype, pair in rates.items():
        if dtype not in DTYPES:  # at load, not at the first GEMM of that dtype ('bf16:' names none)
            from hwmodel.gpu.measurements import DTYPE_ALIASES

            full = DTYPE_ALIASES.get(str(dtype).strip().lower())
            hint = f"; write {dtype} as {full}" if full else ""
            raise NmlabError(f"{where}: {key}.{str(dtype)[:40]}: not a dtype of the model (one of "
                             f"{', '.join(DTYPES)}{hint})")
        if not isinstance(pair, dict):
            raise NmlabError(f"{where}: {key}.{dtype}: expected {{dense, sparse}}")
        dense = _need(pair, "dense", f"{where}: {key}.{dtype}", float)
        sparse = _need(pair, "sparse", f"{where}: {key}.{dtype}", float)
        flops[str(dtype)] = {"dense": dense * 1e12, "sparse": sparse * 1e12}
    return flops


def _strings(doc: dict, key: str, where: str) -> dict[str, str]:
    block = doc.get(key)
    if not isinstance(block, dict) or not block:
        raise NmlabError(f"{where}: {key}: missing or empty")
    for k, v in block.items():
        if not isinstance(v, str) or not v.strip():
            raise NmlabError(f"{where}: {key}.{k}: expected a non-empty string")
    return {str(k): v for k, v in block.items()}


def _check_sources(doc: dict, where: str, tensor_keys: list[str]) -> tuple[dict[str, str], dict[str, str]]:
    """Every figure and every tensor rate names its source; a source names a listed reference."""
    for key in FIGURES:
        if key not in doc:
            raise NmlabError(f"{where}: {key}: missing (null with an 'unpublished:' source if the vendor gives none)")
    references = _strings(doc, "references", where)
    sources = _strings(doc, "sources", where)
    for key in list(FIGURES) + tensor_keys:
        if key not in sources:
            raise NmlabError(f"{where}: sources.{key}: missing (every figure names its source)")
    for key, text in sources.items():
        ref = text.split(":", 1)[0].strip()
        if ref not in references and ref not in SOURCE_KINDS:
            raise NmlabError(f"{where}: sources.{key}: {ref!r} is not in references "
                             f"(have {', '.join(references)}) nor one of {', '.join(SOURCE_KINDS)}")
        unpublished = ref == "unpublished"
        if key in FIGURES and (doc.get(key) is None) != unpublished:
            raise NmlabError(f"{where}: {key}: a figure is null exactly when its source says 'unpublished:'")
    return sources, references


def _compute_capability(doc: dict, where: str) -> str:
    """The spec's compute capability, "major.minor" of a part with 2:4 sparse tensor cores (8.0 on)."""
    raw = doc.get("compute_capability")
    # "sm_86", "8" or "8.60" read no kernel table of their own; a bare 8.6 is a YAML number and reads the same.
    cc = _need(doc, "compute_capability", where, str, positive=False).strip()
    if isinstance(raw, bool) or not re.fullmatch(r"[0-9]{1,2}\.[0-9]", cc):
        raise NmlabError(f"{where}: compute_capability: expected a CUDA compute capability major.minor such as "
                         f"\"8.6\", got {str(raw)[:40]!r} (the GPU model is of NVIDIA's cuBLASLt and cuSPARSELt)")
    if int(cc.split(".")[0]) < MIN_CC_MAJOR:
        raise NmlabError(f"{where}: compute_capability: {cc} has no 2:4 sparse tensor cores (cuSPARSELt needs "
                         f"{MIN_CC_MAJOR}.0, Ampere, or later), so the GPU model cannot time its 2:4 GEMMs")
    return cc


def _architecture(doc: dict, where: str, cc: str) -> str:
    """The spec's architecture, lower case ("Ampere" is ampere: it ran the generic set); refused where the
    compute capability belongs to another one (its kernel tables would run with that one's parameter set)."""
    arch = _need(doc, "architecture", where, str, positive=False).strip().lower()
    if not arch:
        raise NmlabError(f"{where}: architecture: empty")
    known = (ARCH_BY_CC[cc],) if cc in ARCH_BY_CC else ARCHS_BY_MAJOR.get(cc.split(".")[0])
    named = {a for archs in ARCHS_BY_MAJOR.values() for a in archs}
    if not known and arch in named:
        # A major no table knows is a part newer than every named architecture: naming one of them
        # would run that one's parameter set on the newer part's figures.
        majors = sorted({int(m) for m, archs in ARCHS_BY_MAJOR.items() if arch in archs})
        raise NmlabError(f"{where}: architecture: {str(doc['architecture'])[:40]!r} parts have compute capability "
                         f"{' or '.join(f'{m}.x' for m in majors)}, not {cc} (name the new part's own architecture: it "
                         f"gets the generic parameter set)")
    if known and arch not in known:
        raise NmlabError(f"{where}: architecture: {str(doc['architecture'])[:40]!r}, but compute capability {cc} "
                         f"is {' or '.join(known)} (the kernel tables follow compute_capability and the parameter set "
                         f"architecture, so the two must name one GPU)")
    return arch


def load_gpu(path: str | os.PathLike, own_params: bool = True) -> GpuSpec:
    """Read and check one GPU yaml file (``yaml.safe_load``); NmlabError names the bad field.

    A ``params:`` key names a parameter file of one's own (a path relative to the spec's folder):
    it is read and checked here (:func:`hwmodel.gpu.params.load_own_params`) and the spec holds the
    set it gives this GPU, unless ``own_params`` is False (``nmlab gpu fit --data``, which writes
    that file, reads the spec without it)."""
    path = Path(path)
    spec, given = _load_gpu(path)
    if given is None or not own_params:
        return spec
    from dataclasses import replace

    from hwmodel.gpu.params import load_own_params

    target = Path(os.path.expanduser(given))
    target = Path(os.path.abspath(target if target.is_absolute() else path.parent / target))
    return replace(spec, own_params=load_own_params(target, spec, f"gpu '{path.stem}': params"))


def _load_gpu(path: Path) -> tuple[GpuSpec, Optional[str]]:
    """The spec of the file at ``path`` without its own parameters, and its ``params:`` value (None without one)."""
    where = f"gpu '{path.stem}'"
    if not is_file(path):
        raise not_a_file(where, path)  # a folder says so: "no such file" sends the user after a typo
    # Bounded like every YAML input (size, nesting, aliases, duplicate keys): a spec may be a user's file.
    doc = load_yaml(path, where)
    if not isinstance(doc, dict):
        raise NmlabError(f"{where}: not a mapping")
    version = doc.get("version")
    if doc.get("format") == "nmlab-gpu-params":  # said "expected nmlab-gpu version 1 or 2, got nmlab-gpu-params 1"
        raise NmlabError(f"{where}: {path} is a GPU parameter file (what nmlab gpu fit --out writes), not a GPU spec: "
                         f"name it in the spec (params: FILE) and give the spec (docs/gpu.md)")
    if "format" not in doc and {"compute", "storage"} & set(doc):  # said "got None 1"
        raise NmlabError(f"{where}: {path} is an accelerator design, not a GPU spec (simulate, sweep and check take it "
                         f"as a design)")
    if doc.get("format") != FORMAT_NAME or version not in READABLE_VERSIONS:
        raise NmlabError(f"{where}: format/version: expected {FORMAT_NAME} version "
                         f"{' or '.join(map(str, READABLE_VERSIONS))}, got {doc.get('format')} {version}")
    unknown = sorted(str(k) for k in doc if k not in KEYS[version])
    if unknown:  # a misspelt optional key (tensor_tflops_fp16_accumulate) would be dropped silently
        raise NmlabError(f"{where}: {unknown[0]}: unknown key (allowed: {', '.join(sorted(KEYS[version]))})")
    given = doc.get("params")
    if "params" in doc and (not isinstance(given, str) or not given.strip() or len(given) > 4096 or "\0" in given):
        raise NmlabError(f"{where}: params: expected the path of a parameter file (nmlab gpu fit --data ... --out FILE), "
                         f"got {str(given)[:60]!r}")
    flops = _rates(doc, "tensor_tflops", where, required=True)
    sparse_pattern = doc.get("sparse_pattern", "2:4")
    if sparse_pattern != "2:4":  # the GPU model (cuSPARSELt) runs 2:4 only
        raise NmlabError(f"{where}: sparse_pattern: the GPU model runs \"2:4\" only, got {sparse_pattern!r}")
    patterns = doc.get("device_name_patterns") or []
    if not isinstance(patterns, list) or not all(isinstance(p, str) and p for p in patterns):
        raise NmlabError(f"{where}: device_name_patterns: expected a list of strings")
    # Names go into one-line messages, report tables and sweep rows, as a design's (hwmodel.design).
    names = {}
    for key in ("name", "display_name"):
        value = doc.get(key) or path.stem
        problem = name_problem(value) if isinstance(value, str) else f"must be a string, got {type(value).__name__}"
        if problem:
            raise NmlabError(f"{where}: {key}: {problem}")
        names[key] = value
    cc = _compute_capability(doc, where)
    common = dict(
        **names,
        device_name_patterns=tuple(patterns),
        compute_capability=cc,
        sm_count=_need(doc, "sm_count", where, int),
        tensor_clock_mhz=_need(doc, "tensor_clock_mhz", where, float),
        boost_clock_mhz=_need(doc, "boost_clock_mhz", where, float),
        l2_bytes=_need(doc, "l2_bytes", where, int),
        smem_per_sm_bytes=_need(doc, "smem_per_sm_bytes", where, int),
        launch_overhead_us=_need(doc, "launch_overhead_us", where, float),
        sparse_pattern=sparse_pattern,
        tensor_flops=flops,
        format_version=int(version),
    )
    if version == 1:
        return GpuSpec(memory_bytes=_need(doc, "hbm_bytes", where, float),
                       memory_bytes_per_s=_need(doc, "hbm_bytes_per_s", where, float), **common), given
    fp16_acc = _rates(doc, "tensor_tflops_fp16_accumulate", where, required=False)
    tensor_keys = [f"tensor_tflops.{d}" for d in flops] + [f"tensor_tflops_fp16_accumulate.{d}" for d in fp16_acc]
    sources, references = _check_sources(doc, where, tensor_keys)
    # Figures the model can do without may be null ('unpublished:' sources, checked above).
    optional = {key: None if doc[key] is None else _need(doc, key, where, kind, positive=kind is float)
                for key, kind in (("base_clock_mhz", float), ("memory_type", str), ("power_limit_w", float))}
    return GpuSpec(
        memory_bytes=_need(doc, "memory_bytes", where, float),
        memory_bytes_per_s=_need(doc, "memory_bytes_per_s", where, float),
        architecture=_architecture(doc, where, cc),
        base_clock_mhz=optional["base_clock_mhz"],
        memory_type=optional["memory_type"],
        power_limit_w=optional["power_limit_w"],
        tensor_accumulate=_need(doc, "tensor_accumulate", where, str, positive=False),
        tensor_flops_fp16_acc=fp16_acc,
        sources=sources,
        references=references,
        **common,
    ), given


def bundled_gpus() -> dict[str, GpuSpec]:
    """The design points under hwmodel/data/gpus, by name (a new dict; the specs are frozen)."""
    paths = sorted(data_path("gpus").glob("*.yaml"))
    key = tuple((str(p), p.stat().st_mtime_ns, p.stat().st_size) for p in paths)
    specs = _load_bundled(key)
    from hwmodel.gpu.params import is_current

    if not all(is_current(s.own_params) for _, s in specs):  # a spec's own parameter file is in the key too
        _load_bundled.cache_clear()
        specs = _load_bundled(key)
    return dict(specs)


@lru_cache(maxsize=4)
def _load_bundled(files: tuple[tuple[str, int, int], ...]) -> tuple[tuple[str, GpuSpec], ...]:
    """Parse the bundled specs once per process and set of files: a report asks for them several
    times, and each parse of all of them takes tens of ms (``python -m timeit -s "from hwmodel.gpu.spec
    import load_gpu; from hwmodel.io import data_path" "[load_gpu(p) for p in data_path('gpus').glob('*.yaml')]"``).
    The key holds each file's mtime and size, so an edited file is read again."""
    specs = [load_gpu(path) for path, _mtime, _size in files]
    return tuple((s.name, s) for s in specs)


def gpu_for(name_or_device: str, own_params: bool = True) -> GpuSpec:
    """A bundled spec by file name ("h200_sxm"), a spec file of one's own ("my_gpu.yaml", format
    nmlab-gpu, as ``simulate --design`` takes), or a torch device name ("NVIDIA H200").
    ``own_params``: False reads a spec file without the parameter file it names (:func:`load_gpu`)."""
    specs = bundled_gpus()
    if name_or_device in specs:
        return specs[name_or_device]
    # A file of one's own (a GPU not bundled); a .yaml name that is no file says "no such file",
    # not "not a bundled GPU spec" (which sent the user after the bundled names).
    if is_file(name_or_device) or str(name_or_device).lower().endswith((".yaml", ".yml")):
        return load_gpu(name_or_device, own_params=own_params)
    hits = [s for s in specs.values() if s.matches(name_or_device)]
    # Name the bundled specs: the caller's option (--gpu, --design, a sweep's gpus) is what to fix.
    # ("matches 0 design points" read oddly under `nmlab gpu predict --gpu`.)
    if not hits:
        raise NmlabError(f"gpu: {name_or_device!r} is not a bundled GPU spec, a spec file nor a device name of one "
                         f"(bundled GPU specs: {', '.join(specs)}; a GPU of your own: a spec file, docs/gpu.md)")
    if len(hits) > 1:
        raise NmlabError(f"gpu: {name_or_device!r} matches the device names of {len(hits)} GPU specs "
                         f"({', '.join(s.name for s in hits)}); give the spec name")
    return hits[0]
